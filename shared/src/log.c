/* log.c — JSON-lines logging; see baton/log.h. */
#include "baton/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Caps for the fields that may come from untrusted input (ids taken from message headers). */
#define FIELD_MAX 256

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_int log_min = BATON_LOG_INFO;
static FILE *log_stream; /* NULL: stderr */
static char *log_flow, *log_worker;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

/* --- a growable byte buffer ---------------------------------------------------------------- */

typedef struct sbuf {
	char *p;
	size_t len, cap;
	int oom;
} sbuf_t;

static void sb_put(sbuf_t *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 512;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p) {
			b->oom = 1;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void sb_puts(sbuf_t *b, const char *s)
{
	sb_put(b, s, strlen(s));
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 when it is not valid
 * (overlong forms, surrogates and code points above U+10FFFF are invalid). */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	size_t len;
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return len;
}

/* Appends s[0..n) as a JSON string literal (with quotes). Invalid UTF-8 bytes become U+FFFD. */
static void sb_json_str(sbuf_t *b, const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	char esc[8];
	size_t i = 0, run = 0;

	sb_put(b, "\"", 1);
	while (i < n) {
		unsigned c = u[i];
		size_t len = utf8_seq(u + i, n - i);

		if (len > 1 || (len == 1 && c >= 0x20 && c != '"' && c != '\\' && c != 0x7f)) {
			i += len;
			run += len;
			continue;
		}
		sb_put(b, (const char *)u + i - run, run);
		run = 0;
		if (len == 0) {
			sb_puts(b, "\\ufffd");
		} else if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			sb_put(b, esc, 2);
		} else if (c == '\n') {
			sb_puts(b, "\\n");
		} else if (c == '\r') {
			sb_puts(b, "\\r");
		} else if (c == '\t') {
			sb_puts(b, "\\t");
		} else {
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			sb_puts(b, esc);
		}
		i++;
	}
	sb_put(b, (const char *)u + i - run, run);
	sb_put(b, "\"", 1);
}

/* ,"key":"value" with value capped at max bytes. */
static void sb_field(sbuf_t *b, const char *key, const char *val, size_t max)
{
	size_t n = strnlen(val, max);

	sb_put(b, ",\"", 2);
	sb_puts(b, key);
	sb_put(b, "\":", 2);
	sb_json_str(b, val, n);
}

/* --- public -------------------------------------------------------------------------------- */

void baton_log_init(const char *flow, const char *worker_id, baton_log_level_t min_level)
{
	char *f = flow ? strdup(flow) : NULL, *w = worker_id ? strdup(worker_id) : NULL;

	pthread_mutex_lock(&log_lock);
	free(log_flow);
	free(log_worker);
	log_flow = f;
	log_worker = w;
	atomic_store(&log_min, (int)min_level);
	pthread_mutex_unlock(&log_lock);
}

void baton_log_set_stream(FILE *f)
{
	pthread_mutex_lock(&log_lock);
	log_stream = f;
	pthread_mutex_unlock(&log_lock);
}

int baton_log_level_parse(const char *s, baton_log_level_t *out)
{
	if (!s)
		return -1;
	for (int i = BATON_LOG_DEBUG; i <= BATON_LOG_ERROR; i++) {
		if (strcasecmp(s, level_names[i]) == 0) {
			*out = (baton_log_level_t)i;
			return 0;
		}
	}
	return -1;
}

const char *baton_log_level_name(baton_log_level_t lvl)
{
	return (unsigned)lvl <= BATON_LOG_ERROR ? level_names[lvl] : "unknown";
}

/* Drops a UTF-8 sequence cut in half at the end of buf[0..*n). */
static void trim_partial_utf8(const char *buf, size_t *n)
{
	const unsigned char *u = (const unsigned char *)buf;
	size_t i = *n, back = 0;

	while (i > 0 && back < 4 && (u[i - 1] & 0xc0) == 0x80) {
		i--;
		back++;
	}
	if (i == 0 || u[i - 1] < 0xc0)
		return;
	/* u[i - 1] leads a sequence of `want` bytes; only back continuation bytes follow it */
	size_t want = u[i - 1] >= 0xf0 ? 4 : u[i - 1] >= 0xe0 ? 3 : 2;
	if (back + 1 < want)
		*n = i - 1;
}

static void format_ts(char *out, size_t len)
{
	struct timespec ts;
	struct tm tm;
	char base[32];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, len, "%s.%03ldZ", base, ts.tv_nsec / 1000000);
}

void baton_log(baton_log_level_t lvl, const baton_log_ctx_t *ctx, const char *event,
	       const char *fmt, ...)
{
	char msg[BATON_LOG_MSG_MAX + 1], ts[48];
	sbuf_t b = {0};
	va_list ap;
	int n;
	size_t mlen;

	if ((int)lvl < atomic_load(&log_min))
		return;
	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt ? fmt : "", ap);
	va_end(ap);
	mlen = n < 0 ? 0 : (size_t)n;
	if (mlen > BATON_LOG_MSG_MAX) {
		mlen = BATON_LOG_MSG_MAX;
		trim_partial_utf8(msg, &mlen);
	}
	format_ts(ts, sizeof(ts));

	sb_puts(&b, "{\"ts\":\"");
	sb_puts(&b, ts);
	sb_puts(&b, "\",\"level\":\"");
	sb_puts(&b, baton_log_level_name(lvl));
	sb_puts(&b, "\"");
	pthread_mutex_lock(&log_lock);
	if (log_flow)
		sb_field(&b, "flow", log_flow, FIELD_MAX);
	if (log_worker)
		sb_field(&b, "worker", log_worker, FIELD_MAX);
	pthread_mutex_unlock(&log_lock);
	sb_field(&b, "event", event ? event : "", FIELD_MAX);
	sb_puts(&b, ",\"msg\":");
	sb_json_str(&b, msg, mlen);
	if (n > BATON_LOG_MSG_MAX)
		sb_puts(&b, ",\"truncated\":true");
	if (ctx && ctx->message_id)
		sb_field(&b, "message_id", ctx->message_id, FIELD_MAX);
	if (ctx && ctx->correlation_id)
		sb_field(&b, "correlation_id", ctx->correlation_id, FIELD_MAX);
	sb_puts(&b, "}\n");

	pthread_mutex_lock(&log_lock);
	FILE *f = log_stream ? log_stream : stderr;
	if (b.oom) {
		fputs("{\"level\":\"error\",\"event\":\"log.oom\",\"msg\":\"out of memory\"}\n", f);
	} else {
		/* stderr is unbuffered: one fwrite is one write(2), so lines never interleave with
		 * other processes' lines on a shared pipe (up to PIPE_BUF). */
		fwrite(b.p, 1, b.len, f);
	}
	fflush(f);
	pthread_mutex_unlock(&log_lock);
	free(b.p);
}

/* --- URL redaction ------------------------------------------------------------------------- */

typedef struct obuf {
	char *out;
	size_t cap, len; /* len counts everything, also what did not fit */
} obuf_t;

static void ob_put(obuf_t *o, const char *s, size_t n)
{
	if (o->cap && o->len < o->cap - 1) {
		size_t room = o->cap - 1 - o->len;
		memcpy(o->out + o->len, s, n < room ? n : room);
	}
	o->len += n;
}

static int secret_param(const char *name, size_t n)
{
	static const char *const words[] = {"password", "passwd", "pwd", "token",
					    "secret",   "key",    "signature"};
	char low[64];

	if (n >= sizeof(low))
		n = sizeof(low) - 1;
	for (size_t i = 0; i < n; i++)
		low[i] = (name[i] >= 'A' && name[i] <= 'Z') ? (char)(name[i] + 32) : name[i];
	low[n] = '\0';
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strstr(low, words[i]))
			return 1;
	return 0;
}

/* Emits query[0..n) (without the '?') with secret parameter values replaced. */
static void redact_query(obuf_t *o, const char *q, size_t n)
{
	size_t i = 0;

	while (i <= n) {
		size_t end = i;
		while (end < n && q[end] != '&' && q[end] != ';')
			end++;
		const char *eq = memchr(q + i, '=', end - i);
		if (eq && secret_param(q + i, (size_t)(eq - (q + i)))) {
			ob_put(o, q + i, (size_t)(eq - (q + i)) + 1);
			ob_put(o, "***", 3);
		} else {
			ob_put(o, q + i, end - i);
		}
		if (end < n)
			ob_put(o, q + end, 1);
		i = end + 1;
	}
}

static const char *last_at(const char *s, size_t n)
{
	for (size_t i = n; i > 0; i--)
		if (s[i - 1] == '@')
			return s + i - 1;
	return NULL;
}

size_t baton_log_redact_url(const char *url, char *out, size_t outlen)
{
	obuf_t o = {out, outlen, 0};
	const char *start, *sep, *at, *colon, *rest;
	size_t pre, auth;

	if (!url)
		url = "";
	sep = strstr(url, "://");
	start = (sep && (size_t)(sep - url) < strcspn(url, "/?#@")) ? sep + 3 : url;
	pre = strcspn(start, "?#");
	auth = strcspn(start, "/?#");
	at = last_at(start, auth);
	if (!at)
		at = last_at(start, pre); /* unencoded '/' in a password: hide rather than leak */
	colon = at ? memchr(start, ':', (size_t)(at - start)) : NULL;
	if (colon) {
		ob_put(&o, url, (size_t)(colon + 1 - url));
		ob_put(&o, "***", 3);
		rest = at;
	} else {
		rest = url;
	}
	/* rest .. '?' as is, then the query redacted, then the fragment as is */
	const char *q = start + pre;
	ob_put(&o, rest, (size_t)(q - rest));
	if (*q == '?') {
		size_t qn = strcspn(q + 1, "#");
		ob_put(&o, "?", 1);
		redact_query(&o, q + 1, qn);
		q += 1 + qn;
	}
	ob_put(&o, q, strlen(q));
	if (outlen)
		out[o.len < outlen ? o.len : outlen - 1] = '\0';
	return o.len;
}
