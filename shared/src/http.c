/* http.c — libcurl multi driven by libuv. See baton/http.h.
 *
 * libcurl tells us which sockets to watch (socket callback -> uv_poll per socket) and when to
 * call it back (timer callback -> one uv_timer). Both callbacks only (re)arm libuv handles: all
 * curl_multi_* calls happen from libuv callbacks, never from inside a libcurl callback. After
 * every curl_multi_socket_action the finished transfers are read (curl_multi_info_read) and
 * their callbacks run there. */
#define _GNU_SOURCE
#include "baton/http.h"

#include <ctype.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "baton/log.h"
#include "baton/version.h"

typedef struct sock_ctx {
	uv_poll_t poll;
	curl_socket_t fd;
	struct baton_http *h;
	struct sock_ctx *next, *prev;
} sock_ctx_t;

typedef struct req {
	struct baton_http *h;
	CURL *easy;
	struct curl_slist *hdrs;
	char *body;          /* request body copy */
	char *url;
	char method[16];
	char *resp;          /* response body */
	size_t resp_len, resp_cap;
	int too_large;
	char content_type[128];
	char retry_after[128];
	char errbuf[CURL_ERROR_SIZE];
	uint64_t t0;
	baton_http_cb cb;
	void *ud;
	struct req *next, *prev;
} req_t;

struct baton_http {
	uv_loop_t *loop;
	CURLM *multi;
	uv_timer_t timer;
	uv_timer_t reaper;   /* deferred teardown after close */
	baton_http_opts_t o;
	char *ua;
	req_t *reqs;
	sock_ctx_t *socks;
	size_t in_flight;
	int closing, handles_open, delivering;
	void (*done)(void *);
	void *done_ud;
};

/* ---------------------------------------------------------------------------------------- */
/* pure helpers                                                                             */

baton_http_class_t baton_http_classify(long status, int curl_code)
{
	switch (curl_code) {
	case CURLE_OK:
		break;
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_WRITE_ERROR:
	case CURLE_FILESIZE_EXCEEDED:
		return BATON_HTTP_PERMANENT;
	default:
		return BATON_HTTP_TRANSIENT;
	}
	if (status == 0)
		return BATON_HTTP_TRANSIENT;
	if (status >= 100 && status < 400)
		return BATON_HTTP_OK;
	if (status == 408 || status == 429 || (status >= 500 && status < 600))
		return BATON_HTTP_TRANSIENT;
	if (status == 409)
		return BATON_HTTP_CONFLICT;
	return BATON_HTTP_PERMANENT;
}

const char *baton_http_class_name(baton_http_class_t cls)
{
	static const char *const n[] = {"ok", "transient", "permanent", "conflict"};
	return (unsigned)cls < 4 ? n[cls] : "unknown";
}

char *baton_http_error_code(const baton_http_resp_t *r, const char *prefix, char *buf, size_t len)
{
	const char *dot = strchr(r->code, '.');

	if (r->status)
		snprintf(buf, len, "%s.http_%ld", prefix, r->status);
	else
		snprintf(buf, len, "%s.%s", prefix, dot ? dot + 1 : "unreachable");
	return buf;
}

long baton_http_parse_retry_after(const char *value, time_t now)
{
	static const char *const fmts[] = {"%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT",
					   "%a %b %e %H:%M:%S %Y"};
	char buf[128];
	size_t n;
	const char *end;

	if (!value)
		return -1;
	while (*value == ' ' || *value == '\t')
		value++;
	n = strlen(value);
	while (n && (value[n - 1] == ' ' || value[n - 1] == '\t' || value[n - 1] == '\r' ||
		     value[n - 1] == '\n'))
		n--;
	if (n == 0 || n >= sizeof(buf))
		return -1;
	memcpy(buf, value, n);
	buf[n] = '\0';
	if (isdigit((unsigned char)buf[0])) {
		unsigned long long v = 0;
		size_t i;
		for (i = 0; i < n && isdigit((unsigned char)buf[i]); i++) {
			v = v * 10 + (unsigned)(buf[i] - '0');
			if (v > 2147483647ULL)
				return -1;
		}
		if (i == n)
			return (long)(v * 1000);
	}
	for (size_t f = 0; f < sizeof(fmts) / sizeof(*fmts); f++) {
		struct tm tm;
		memset(&tm, 0, sizeof(tm));
		end = strptime(buf, fmts[f], &tm);
		if (end && *end == '\0') {
			time_t t = timegm(&tm);
			return t <= now ? 0 : (long)(t - now) * 1000;
		}
	}
	return -1;
}

static int secret_param(const char *name, size_t len)
{
	static const char *const exact[] = {"token", "key", "secret", "password", "signature",
					    "sig", "access_token", "api_key"};
	static const char *const part[] = {"token", "secret", "passw", "signature"};
	char low[64];

	if (len == 0 || len >= sizeof(low))
		return len >= sizeof(low); /* absurdly long names: hide */
	for (size_t i = 0; i < len; i++)
		low[i] = (char)tolower((unsigned char)name[i]);
	low[len] = '\0';
	for (size_t i = 0; i < sizeof(exact) / sizeof(*exact); i++)
		if (!strcmp(low, exact[i]))
			return 1;
	for (size_t i = 0; i < sizeof(part) / sizeof(*part); i++)
		if (strstr(low, part[i]))
			return 1;
	return len >= 3 && !strcmp(low + len - 3, "key");
}

typedef struct sbuf {
	char *out;
	size_t cap, len;
} sbuf_t;

static void sb_put(sbuf_t *b, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++, b->len++)
		if (b->cap && b->len < b->cap - 1)
			b->out[b->len] = s[i];
}

/* Copies "name=value&name=value" (up to end) with secret values masked. */
static void redact_params(sbuf_t *b, const char *p, const char *end)
{
	while (p < end) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *stop = amp ? amp : end;
		const char *eq = memchr(p, '=', (size_t)(stop - p));
		if (eq && secret_param(p, (size_t)(eq - p))) {
			sb_put(b, p, (size_t)(eq - p) + 1);
			sb_put(b, "***", 3);
		} else {
			sb_put(b, p, (size_t)(stop - p));
		}
		if (amp)
			sb_put(b, "&", 1);
		p = amp ? amp + 1 : end;
	}
}

size_t baton_http_redact_url(const char *url, char *out, size_t outlen)
{
	sbuf_t b = {out, outlen, 0};
	const char *p = url ? url : "", *end = p + strlen(p);
	const char *scheme = strstr(p, "://");
	const char *auth = scheme ? scheme + 3 : p;
	const char *auth_end = auth + strcspn(auth, "/?#");
	const char *at = NULL, *q, *hash;

	for (const char *c = auth; c < auth_end; c++)
		if (*c == '@')
			at = c;
	sb_put(&b, p, (size_t)(auth - p));
	if (at) {
		sb_put(&b, "***", 3);
		auth = at;
	}
	hash = strchr(auth, '#');
	q = strchr(auth, '?');
	if (q && hash && q > hash)
		q = NULL;
	sb_put(&b, auth, (size_t)((q ? q : hash ? hash : end) - auth));
	if (q) {
		sb_put(&b, "?", 1);
		redact_params(&b, q + 1, hash ? hash : end);
	}
	if (hash) {
		sb_put(&b, "#", 1);
		redact_params(&b, hash + 1, end);
	}
	if (outlen)
		out[b.len < outlen ? b.len : outlen - 1] = '\0';
	return b.len;
}

/* ---------------------------------------------------------------------------------------- */
/* completion                                                                               */

static const char *error_code(CURLcode rc, int too_large)
{
	if (too_large)
		return BATON_HTTP_CODE_BODY_TOO_LARGE;
	switch (rc) {
	case CURLE_OK: return "";
	case CURLE_OPERATION_TIMEDOUT: return BATON_HTTP_CODE_TIMEOUT;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY: return BATON_HTTP_CODE_RESOLVE;
	case CURLE_COULDNT_CONNECT: return BATON_HTTP_CODE_CONNECT;
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL: return BATON_HTTP_CODE_BAD_REQUEST;
	case CURLE_ABORTED_BY_CALLBACK: return BATON_HTTP_CODE_CANCELLED;
	default: return BATON_HTTP_CODE_TRANSPORT;
	}
}

static void req_unlink(req_t *r)
{
	baton_http_t *h = r->h;

	if (r->prev)
		r->prev->next = r->next;
	else
		h->reqs = r->next;
	if (r->next)
		r->next->prev = r->prev;
	h->in_flight--;
}

static void req_free(req_t *r)
{
	if (r->easy)
		curl_easy_cleanup(r->easy);
	curl_slist_free_all(r->hdrs);
	free(r->body);
	free(r->url);
	free(r->resp);
	free(r);
}

/* Runs the callback of a finished (or cancelled) request and frees it. */
static void req_complete(req_t *r, CURLcode rc, int cancelled)
{
	baton_http_resp_t resp;
	char red[384];
	long status = 0;

	memset(&resp, 0, sizeof(resp));
	if (!cancelled)
		curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
	else
		rc = CURLE_ABORTED_BY_CALLBACK;
	req_unlink(r);
	resp.status = status;
	resp.curl_code = rc;
	resp.code = error_code(rc, r->too_large);
	resp.cls = r->too_large ? BATON_HTTP_PERMANENT
		   : cancelled  ? BATON_HTTP_TRANSIENT
				: baton_http_classify(rc == CURLE_OK ? status : 0, rc);
	resp.body = r->resp && !r->too_large ? r->resp : "";
	resp.body_len = r->too_large ? 0 : r->resp_len;
	resp.content_type = r->content_type[0] ? r->content_type : NULL;
	resp.retry_after_ms = r->retry_after[0]
				      ? baton_http_parse_retry_after(r->retry_after, time(NULL))
				      : -1;
	resp.latency_ms = (double)(uv_hrtime() - r->t0) / 1e6;
	if (cancelled)
		snprintf(resp.error, sizeof(resp.error), "cancelled");
	else if (r->too_large)
		snprintf(resp.error, sizeof(resp.error), "response body over %ld bytes",
			 r->h->o.max_body_bytes);
	else if (rc != CURLE_OK)
		snprintf(resp.error, sizeof(resp.error), "%s",
			 r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc));
	baton_http_redact_url(r->url, red, sizeof(red));
	if (resp.error[0])
		snprintf(resp.summary, sizeof(resp.summary), "%s %.250s -> error: %.200s in %.1f ms",
			 r->method, red, resp.error, resp.latency_ms);
	else
		snprintf(resp.summary, sizeof(resp.summary), "%s %.400s -> %ld in %.1f ms",
			 r->method, red, status, resp.latency_ms);
	resp.method = r->method;
	resp.url_redacted = red;
	r->cb(&resp, r->ud);
	req_free(r);
}

static void check_done(baton_http_t *h)
{
	CURLMsg *msg;
	int left;

	while (!h->closing && (msg = curl_multi_info_read(h->multi, &left))) {
		req_t *r = NULL;
		if (msg->msg != CURLMSG_DONE)
			continue;
		CURLcode rc = msg->data.result;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
		curl_multi_remove_handle(h->multi, msg->easy_handle);
		req_complete(r, rc, 0);
	}
}

/* ---------------------------------------------------------------------------------------- */
/* libuv <-> libcurl                                                                        */

static void on_poll(uv_poll_t *p, int status, int events)
{
	sock_ctx_t *s = p->data;
	baton_http_t *h = s->h;
	int flags = 0, running;

	if (status < 0)
		flags = CURL_CSELECT_ERR;
	if (events & UV_READABLE)
		flags |= CURL_CSELECT_IN;
	if (events & UV_WRITABLE)
		flags |= CURL_CSELECT_OUT;
	curl_multi_socket_action(h->multi, s->fd, flags, &running);
	check_done(h);
}

static void on_timeout(uv_timer_t *t)
{
	baton_http_t *h = t->data;
	int running;

	curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(h);
}

static void maybe_finish_close(baton_http_t *h);

static void sock_closed(uv_handle_t *hd)
{
	sock_ctx_t *s = hd->data;
	baton_http_t *h = s->h;

	free(s);
	h->handles_open--;
	maybe_finish_close(h);
}

static void sock_release(baton_http_t *h, sock_ctx_t *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		h->socks = s->next;
	if (s->next)
		s->next->prev = s->prev;
	uv_poll_stop(&s->poll);
	uv_close((uv_handle_t *)&s->poll, sock_closed);
}

/* CURLMOPT_SOCKETFUNCTION: only (re)arms uv handles. */
static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	baton_http_t *h = userp;
	sock_ctx_t *s = socketp;
	int ev = 0;

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (s) {
			curl_multi_assign(h->multi, fd, NULL);
			sock_release(h, s);
		}
		return 0;
	}
	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s || uv_poll_init_socket(h->loop, &s->poll, fd) != 0) {
			free(s);
			return -1;
		}
		s->fd = fd;
		s->h = h;
		s->poll.data = s;
		s->next = h->socks;
		if (h->socks)
			h->socks->prev = s;
		h->socks = s;
		h->handles_open++;
		curl_multi_assign(h->multi, fd, s);
	}
	if (what & CURL_POLL_IN)
		ev |= UV_READABLE;
	if (what & CURL_POLL_OUT)
		ev |= UV_WRITABLE;
	uv_poll_start(&s->poll, ev, on_poll);
	return 0;
}

/* CURLMOPT_TIMERFUNCTION: only (re)arms the uv timer (0 ms: on the next loop iteration). */
static int on_timer(CURLM *multi, long timeout_ms, void *userp)
{
	baton_http_t *h = userp;

	(void)multi;
	if (timeout_ms < 0)
		uv_timer_stop(&h->timer);
	else
		uv_timer_start(&h->timer, on_timeout, (uint64_t)timeout_ms, 0);
	return 0;
}

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
	req_t *r = ud;
	size_t len = size * n;

	if (r->resp_len + len > (size_t)r->h->o.max_body_bytes) {
		r->too_large = 1;
		return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
	}
	if (r->resp_len + len + 1 > r->resp_cap) {
		size_t cap = r->resp_cap ? r->resp_cap : 4096;
		while (cap < r->resp_len + len + 1)
			cap *= 2;
		char *p = realloc(r->resp, cap);
		if (!p)
			return 0;
		r->resp = p;
		r->resp_cap = cap;
	}
	memcpy(r->resp + r->resp_len, data, len);
	r->resp_len += len;
	r->resp[r->resp_len] = '\0';
	return len;
}

static void header_value(const char *line, size_t len, size_t name_len, char *out,
			 size_t outlen)
{
	const char *v = line + name_len;
	size_t n = len - name_len;

	while (n && (*v == ' ' || *v == '\t'))
		v++, n--;
	while (n && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' '))
		n--;
	if (n >= outlen)
		n = outlen - 1;
	memcpy(out, v, n);
	out[n] = '\0';
}

static size_t on_header(char *line, size_t size, size_t n, void *ud)
{
	req_t *r = ud;
	size_t len = size * n;

	if (len >= 5 && !strncmp(line, "HTTP/", 5)) { /* a new response (after 1xx) */
		r->content_type[0] = r->retry_after[0] = '\0';
	} else if (len > 12 && !strncasecmp(line, "Retry-After:", 12)) {
		header_value(line, len, 12, r->retry_after, sizeof(r->retry_after));
	} else if (len > 13 && !strncasecmp(line, "Content-Type:", 13)) {
		header_value(line, len, 13, r->content_type, sizeof(r->content_type));
	}
	return len;
}

/* ---------------------------------------------------------------------------------------- */
/* public API                                                                               */

baton_http_t *baton_http_new(uv_loop_t *loop, const baton_http_opts_t *opts)
{
	baton_http_t *h = calloc(1, sizeof(*h));
	char ua[64];

	if (!h)
		return NULL;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		free(h);
		return NULL;
	}
	if (opts)
		h->o = *opts;
	if (!h->o.connect_timeout_ms)
		h->o.connect_timeout_ms = 5000;
	if (!h->o.timeout_ms)
		h->o.timeout_ms = 30000;
	if (!h->o.max_host_conns)
		h->o.max_host_conns = 16;
	if (!h->o.max_body_bytes)
		h->o.max_body_bytes = 8 * 1024 * 1024;
	snprintf(ua, sizeof(ua), "baton/%s", baton_version());
	h->ua = strdup(h->o.user_agent ? h->o.user_agent : ua);
	h->o.user_agent = h->ua;
	h->multi = curl_multi_init();
	if (!h->ua || !h->multi) {
		if (h->multi)
			curl_multi_cleanup(h->multi);
		free(h->ua);
		free(h);
		curl_global_cleanup();
		return NULL;
	}
	if (!(curl_version_info(CURLVERSION_NOW)->features & CURL_VERSION_ASYNCHDNS))
		BATON_WARN(NULL, "http.dns", "libcurl lacks an asynchronous resolver: DNS lookups "
			   "block the loop");
	h->loop = loop;
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_timer);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
	curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS, h->o.max_host_conns);
	uv_timer_init(loop, &h->timer);
	uv_timer_init(loop, &h->reaper);
	h->timer.data = h->reaper.data = h;
	h->handles_open = 2;
	return h;
}

static int valid_method(const char *m)
{
	size_t n = strlen(m);

	if (n == 0 || n > 15)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (m[i] < 'A' || m[i] > 'Z')
			return 0;
	return 1;
}

static int req_setup(req_t *r, const baton_http_req_t *q)
{
	baton_http_t *h = r->h;
	CURL *e = r->easy;
	int has_expect = 0;

	for (const char *const *x = q->headers; x && *x; x++) {
		if (strpbrk(*x, "\r\n"))
			return -1;
		has_expect |= !strncasecmp(*x, "Expect:", 7);
		struct curl_slist *n = curl_slist_append(r->hdrs, *x);
		if (!n)
			return -1;
		r->hdrs = n;
	}
	if (!has_expect) {
		struct curl_slist *n = curl_slist_append(r->hdrs, "Expect:");
		if (!n)
			return -1;
		r->hdrs = n;
	}
	curl_easy_setopt(e, CURLOPT_URL, r->url);
	curl_easy_setopt(e, CURLOPT_PRIVATE, r);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, h->o.connect_timeout_ms);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, q->timeout_ms ? q->timeout_ms : h->o.timeout_ms);
	curl_easy_setopt(e, CURLOPT_USERAGENT, h->ua);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->hdrs);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	if (!strcmp(r->method, "HEAD"))
		curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
	else if (strcmp(r->method, "GET") != 0)
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
	if (r->body || (strcmp(r->method, "GET") && strcmp(r->method, "HEAD"))) {
		if (strcmp(r->method, "GET") && strcmp(r->method, "HEAD") &&
		    strcmp(r->method, "DELETE")) {
			curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)q->body_len);
			curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body ? r->body : "");
		} else if (r->body) {
			curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)q->body_len);
			curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
		}
	}
	return 0;
}

int baton_http_request(baton_http_t *h, const baton_http_req_t *q, baton_http_cb cb, void *ud)
{
	req_t *r;

	if (!h || !q || !cb || !q->method || !q->url || h->closing || !valid_method(q->method))
		return -1;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -1;
	r->h = h;
	r->cb = cb;
	r->ud = ud;
	snprintf(r->method, sizeof(r->method), "%s", q->method);
	r->url = strdup(q->url);
	r->easy = curl_easy_init();
	if (q->body) {
		r->body = malloc(q->body_len + 1);
		if (r->body) {
			memcpy(r->body, q->body, q->body_len);
			r->body[q->body_len] = '\0';
		}
	}
	if (!r->url || !r->easy || (q->body && !r->body) || req_setup(r, q) != 0)
		goto fail;
	r->t0 = uv_hrtime();
	if (curl_multi_add_handle(h->multi, r->easy) != CURLM_OK)
		goto fail;
	r->next = h->reqs;
	if (h->reqs)
		h->reqs->prev = r;
	h->reqs = r;
	h->in_flight++;
	return 0;
fail:
	req_free(r);
	return -1;
}

size_t baton_http_in_flight(const baton_http_t *h)
{
	return h ? h->in_flight : 0;
}

static void maybe_finish_close(baton_http_t *h)
{
	void (*done)(void *);
	void *ud;

	if (!h->closing || h->handles_open > 0)
		return;
	done = h->done;
	ud = h->done_ud;
	free(h->ua);
	free(h);
	curl_global_cleanup();
	if (done)
		done(ud);
}

static void timer_closed(uv_handle_t *hd)
{
	baton_http_t *h = hd->data;

	h->handles_open--;
	maybe_finish_close(h);
}

/* On the loop, after close(): nothing of libcurl is running any more. */
static void on_reap(uv_timer_t *t)
{
	baton_http_t *h = t->data;

	/* Our sockets' polls are closed here, not from libcurl's REMOVE callbacks. */
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, NULL);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, NULL);
	while (h->socks)
		sock_release(h, h->socks);
	curl_multi_cleanup(h->multi);
	h->multi = NULL;
	uv_close((uv_handle_t *)&h->timer, timer_closed);
	uv_close((uv_handle_t *)&h->reaper, timer_closed);
}

void baton_http_close(baton_http_t *h, void (*done)(void *ud), void *ud)
{
	if (!h || h->closing)
		return;
	h->closing = 1;
	h->done = done;
	h->done_ud = ud;
	uv_timer_stop(&h->timer);
	while (h->reqs) {
		req_t *r = h->reqs;
		curl_multi_remove_handle(h->multi, r->easy);
		req_complete(r, CURLE_ABORTED_BY_CALLBACK, 1);
	}
	uv_timer_start(&h->reaper, on_reap, 0, 0);
}
