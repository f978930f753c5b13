/* metrics.c — atomic metrics registry, Prometheus text rendering, and a libmicrohttpd listener
 * driven by a libuv loop (MHD in epoll mode without a thread: its epoll fd is watched by a
 * uv_poll_t and its connection timeouts by a uv_timer_t re-armed after every MHD_run). */
#include "baton/metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "baton/log.h"

#define N_BOUNDS 12
static const double bounds[N_BOUNDS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
					0.5,   1,    2.5,   5,    10,  30};
/* Written as Prometheus shows them, so le labels never depend on float formatting. */
static const char *const bound_labels[N_BOUNDS] = {"0.005", "0.01", "0.025", "0.05",
						   "0.1",   "0.25", "0.5",   "1",
						   "2.5",   "5",    "10",    "30"};

/* http[] slots: 0 = "no response", 1..500 = codes 100..599, 501 = anything else. */
#define HTTP_SLOTS 502
#define HTTP_OTHER (HTTP_SLOTS - 1)

static const struct {
	const char *name;
	const char *help;
} counter_info[BATON_M__COUNT] = {
	[BATON_M_CONSUMED] = {"baton_messages_consumed_total",
			      "Messages received from the input queue."},
	[BATON_M_ACKED] = {"baton_messages_acked_total", "Messages acknowledged as done."},
	[BATON_M_RETRIED] = {"baton_messages_retried_total",
			     "Messages sent to a retry tier after a transient failure."},
	[BATON_M_DEAD_LETTERED] = {"baton_messages_dead_lettered_total",
				   "Messages sent to the dead-letter queue."},
	[BATON_M_POISON] = {"baton_messages_poison_total",
			    "Messages dead-lettered for exceeding the delivery limit."},
	[BATON_M_REDELIVERED] = {"baton_messages_redelivered_total",
				 "Deliveries flagged as redelivered by the broker."},
	[BATON_M_REJECTED_INVALID] = {"baton_messages_rejected_invalid_total",
				      "Messages rejected as invalid (bad JSON or schema)."},
	[BATON_M_PUBLISHED] = {"baton_messages_published_total",
			       "Messages published and confirmed by the broker."},
	[BATON_M_PUBLISH_NACKED] = {"baton_publish_nacked_total",
				    "Publishes negatively confirmed or returned by the broker."},
	[BATON_M_AMQP_RECONNECTS] = {"baton_amqp_reconnects_total",
				     "RabbitMQ connections re-made after a loss."},
	[BATON_M_STORE_ERRORS] = {"baton_store_errors_total", "MongoDB operations that failed."},
	[BATON_M_AUDIT_WRITTEN] = {"baton_audit_records_written_total",
				   "Audit records written to MongoDB."},
};

enum listen_state { L_IDLE, L_LISTENING, L_STOPPING };

struct baton_metrics {
	char *labels; /* flow="...",worker="..." already escaped (owned) */

	_Atomic uint64_t counters[BATON_M__COUNT];
	_Atomic int64_t in_flight;
	_Atomic uint64_t hist[N_BOUNDS + 1]; /* per bucket, not cumulative; last = above 30 s */
	_Atomic uint64_t hist_sum_bits;      /* double, updated by compare-and-swap */
	_Atomic uint64_t http[HTTP_SLOTS];

	pthread_mutex_t dead_mu; /* guards n_dead and dead_codes (counts are atomic) */
	size_t n_dead;
	char *dead_codes[BATON_METRICS_MAX_DEAD_CODES]; /* sanitized UTF-8, unescaped (owned) */
	_Atomic uint64_t dead_counts[BATON_METRICS_MAX_DEAD_CODES];
	_Atomic uint64_t dead_other;

	/* flows' own counters: names and helps guarded by dead_mu, counts atomic */
	int n_extra;
	char *extra_name[BATON_METRICS_MAX_EXTRA], *extra_help[BATON_METRICS_MAX_EXTRA];
	_Atomic uint64_t extra[BATON_METRICS_MAX_EXTRA];

	/* Listener: loop thread only. */
	enum listen_state state;
	struct MHD_Daemon *mhd;
	uv_poll_t poll;
	uv_timer_t timer;
	int port;
	int pending_closes;
	baton_health_fn healthz, readyz;
	void *health_ud;
	void (*done)(void *ud);
	void *done_ud;
	char mhd_err[256]; /* last message MHD logged, for listen's err */
};

/* ---- registry ---------------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (n bytes available), 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	size_t len;
	uint32_t cp, min;

	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xE0) == 0xC0)
		len = 2, cp = s[0] & 0x1F, min = 0x80;
	else if ((s[0] & 0xF0) == 0xE0)
		len = 3, cp = s[0] & 0x0F, min = 0x800;
	else if ((s[0] & 0xF8) == 0xF0)
		len = 4, cp = s[0] & 0x07, min = 0x10000;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3F);
	}
	if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return len;
}

/* Copy of s with invalid UTF-8 bytes replaced by '?', cut to at most max bytes on a character
 * boundary. NULL when out of memory. */
static char *sanitize_utf8(const char *s, size_t max)
{
	size_t n = strlen(s), o = 0;
	char *out = malloc((n < max ? n : max) + 1);

	if (!out)
		return NULL;
	for (size_t i = 0; i < n;) {
		size_t l = utf8_seq((const unsigned char *)s + i, n - i);

		if (o + (l ? l : 1) > max)
			break;
		if (l) {
			memcpy(out + o, s + i, l);
			o += l;
			i += l;
		} else {
			out[o++] = '?';
			i++;
		}
	}
	out[o] = '\0';
	return out;
}

/* Growable text buffer; err sticks once an allocation failed. */
typedef struct sbuf {
	char *p;
	size_t len, cap;
	int err;
} sbuf_t;

static int sb_reserve(sbuf_t *b, size_t extra)
{
	size_t cap;
	char *np;

	if (b->err)
		return -1;
	if (b->len + extra + 1 <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 4096;
	while (cap < b->len + extra + 1)
		cap *= 2;
	np = realloc(b->p, cap);
	if (!np) {
		b->err = 1;
		return -1;
	}
	b->p = np;
	b->cap = cap;
	return 0;
}

static void sb_put(sbuf_t *b, const char *s, size_t n)
{
	if (sb_reserve(b, n) != 0)
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void sb_puts(sbuf_t *b, const char *s)
{
	sb_put(b, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static void sb_printf(sbuf_t *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->err = 1;
		return;
	}
	if (sb_reserve(b, (size_t)n) != 0)
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

/* Label value escaping of the text format: backslash, double quote and line feed. */
static void sb_label_value(sbuf_t *b, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\')
			sb_puts(b, "\\\\");
		else if (*s == '"')
			sb_puts(b, "\\\"");
		else if (*s == '\n')
			sb_puts(b, "\\n");
		else
			sb_put(b, s, 1);
	}
}

baton_metrics_t *baton_metrics_new(const char *flow, const char *worker_id)
{
	baton_metrics_t *m = calloc(1, sizeof(*m));
	char *f = NULL, *w = NULL;
	sbuf_t b = {0};

	if (!m)
		return NULL;
	f = sanitize_utf8(flow ? flow : "", SIZE_MAX - 1);
	w = sanitize_utf8(worker_id ? worker_id : "", SIZE_MAX - 1);
	if (!f || !w)
		goto fail;
	sb_puts(&b, "flow=\"");
	sb_label_value(&b, f);
	sb_puts(&b, "\",worker=\"");
	sb_label_value(&b, w);
	sb_puts(&b, "\"");
	if (b.err)
		goto fail;
	if (pthread_mutex_init(&m->dead_mu, NULL) != 0)
		goto fail;
	m->labels = b.p;
	free(f);
	free(w);
	return m;
fail:
	free(b.p);
	free(f);
	free(w);
	free(m);
	return NULL;
}

void baton_metrics_inc(baton_metrics_t *m, baton_metric_t which, uint64_t by)
{
	if ((unsigned)which >= BATON_M__COUNT)
		return;
	atomic_fetch_add_explicit(&m->counters[which], by, memory_order_relaxed);
}

void baton_metrics_in_flight_add(baton_metrics_t *m, int delta)
{
	atomic_fetch_add_explicit(&m->in_flight, (int64_t)delta, memory_order_relaxed);
}

void baton_metrics_observe_handler(baton_metrics_t *m, double seconds)
{
	uint64_t old, upd;
	double sum;
	size_t i = 0;

	if (isnan(seconds))
		return;
	if (seconds < 0)
		seconds = 0;
	while (i < N_BOUNDS && seconds > bounds[i])
		i++;
	atomic_fetch_add_explicit(&m->hist[i], 1, memory_order_relaxed);
	old = atomic_load_explicit(&m->hist_sum_bits, memory_order_relaxed);
	do {
		memcpy(&sum, &old, sizeof(sum));
		sum += seconds;
		memcpy(&upd, &sum, sizeof(upd));
	} while (!atomic_compare_exchange_weak_explicit(&m->hist_sum_bits, &old, upd,
							memory_order_relaxed,
							memory_order_relaxed));
}

void baton_metrics_http_status(baton_metrics_t *m, long status)
{
	size_t slot = HTTP_OTHER;

	if (status == 0)
		slot = 0;
	else if (status >= 100 && status <= 599)
		slot = (size_t)(status - 99);
	atomic_fetch_add_explicit(&m->http[slot], 1, memory_order_relaxed);
}

void baton_metrics_dead_code(baton_metrics_t *m, const char *code)
{
	char *clean;
	size_t i;

	if (!code || !*code)
		code = "unknown";
	/* Sanitized first so that codes differing only in invalid bytes share one series. */
	clean = sanitize_utf8(code, BATON_METRICS_DEAD_CODE_MAX);
	if (!clean || strcmp(clean, "other") == 0) {
		atomic_fetch_add_explicit(&m->dead_other, 1, memory_order_relaxed);
		free(clean);
		return;
	}
	pthread_mutex_lock(&m->dead_mu);
	for (i = 0; i < m->n_dead; i++)
		if (strcmp(m->dead_codes[i], clean) == 0)
			break;
	if (i == m->n_dead && i < BATON_METRICS_MAX_DEAD_CODES) {
		m->dead_codes[i] = clean; /* the registry owns it now */
		clean = NULL;
		m->n_dead++;
	}
	if (i < m->n_dead)
		atomic_fetch_add_explicit(&m->dead_counts[i], 1, memory_order_relaxed);
	else
		atomic_fetch_add_explicit(&m->dead_other, 1, memory_order_relaxed);
	pthread_mutex_unlock(&m->dead_mu);
	free(clean);
}

static uint64_t ld(_Atomic uint64_t *a)
{
	return atomic_load_explicit(a, memory_order_relaxed);
}

static void family(sbuf_t *b, const char *name, const char *type, const char *help)
{
	sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void render_histogram(baton_metrics_t *m, sbuf_t *b)
{
	const char *name = "baton_handler_duration_seconds";
	uint64_t cum = 0, bits;
	double sum;

	family(b, name, "histogram", "Time spent handling one message, in seconds.");
	for (size_t i = 0; i <= N_BOUNDS; i++) {
		cum += ld(&m->hist[i]);
		sb_printf(b, "%s_bucket{%s,le=\"%s\"} %" PRIu64 "\n", name, m->labels,
			  i < N_BOUNDS ? bound_labels[i] : "+Inf", cum);
	}
	bits = ld(&m->hist_sum_bits);
	memcpy(&sum, &bits, sizeof(sum));
	if (isinf(sum))
		sb_printf(b, "%s_sum{%s} +Inf\n", name, m->labels);
	else
		sb_printf(b, "%s_sum{%s} %.17g\n", name, m->labels, sum);
	/* _count is the +Inf bucket, so the two always agree even while others observe. */
	sb_printf(b, "%s_count{%s} %" PRIu64 "\n", name, m->labels, cum);
}

static void render_http(baton_metrics_t *m, sbuf_t *b)
{
	const char *name = "baton_http_responses_total";

	family(b, name, "counter",
	       "Responses from the ERP/storefront HTTP APIs by status code (0 = no response).");
	for (size_t i = 0; i < HTTP_SLOTS; i++) {
		uint64_t v = ld(&m->http[i]);

		if (!v)
			continue;
		if (i == HTTP_OTHER)
			sb_printf(b, "%s{%s,code=\"other\"} %" PRIu64 "\n", name, m->labels, v);
		else
			sb_printf(b, "%s{%s,code=\"%zu\"} %" PRIu64 "\n", name, m->labels,
				  i ? i + 99 : 0, v);
	}
}

static void render_dead(baton_metrics_t *m, sbuf_t *b)
{
	const char *name = "baton_dead_letters_total";
	uint64_t other;

	family(b, name, "counter", "Messages dead-lettered, by error code.");
	pthread_mutex_lock(&m->dead_mu);
	for (size_t i = 0; i < m->n_dead; i++) {
		sb_printf(b, "%s{%s,code=\"", name, m->labels);
		sb_label_value(b, m->dead_codes[i]);
		sb_printf(b, "\"} %" PRIu64 "\n", ld(&m->dead_counts[i]));
	}
	pthread_mutex_unlock(&m->dead_mu);
	other = ld(&m->dead_other);
	if (other)
		sb_printf(b, "%s{%s,code=\"other\"} %" PRIu64 "\n", name, m->labels, other);
}

static int metric_name_ok(const char *n)
{
	if (!n || !*n || (*n >= '0' && *n <= '9'))
		return 0;
	for (; *n; n++)
		if (!((*n >= 'a' && *n <= 'z') || (*n >= 'A' && *n <= 'Z') ||
		      (*n >= '0' && *n <= '9') || *n == '_' || *n == ':'))
			return 0;
	return 1;
}

int baton_metrics_counter_new(baton_metrics_t *m, const char *name, const char *help)
{
	int id = -1;

	if (!m || !metric_name_ok(name))
		return -1;
	pthread_mutex_lock(&m->dead_mu);
	for (int i = 0; i < m->n_extra && id < 0; i++)
		if (!strcmp(m->extra_name[i], name))
			id = i;
	if (id < 0 && m->n_extra < BATON_METRICS_MAX_EXTRA) {
		char *n = strdup(name), *h = strdup(help ? help : "");
		if (n && h) {
			id = m->n_extra++;
			m->extra_name[id] = n;
			m->extra_help[id] = h;
		} else {
			free(n);
			free(h);
		}
	}
	pthread_mutex_unlock(&m->dead_mu);
	return id;
}

void baton_metrics_counter_add(baton_metrics_t *m, int id, uint64_t by)
{
	if (m && id >= 0 && id < BATON_METRICS_MAX_EXTRA)
		atomic_fetch_add_explicit(&m->extra[id], by, memory_order_relaxed);
}

static void render_extra(baton_metrics_t *m, sbuf_t *b)
{
	pthread_mutex_lock(&m->dead_mu);
	for (int i = 0; i < m->n_extra; i++) {
		family(b, m->extra_name[i], "counter", m->extra_help[i]);
		sb_printf(b, "%s{%s} %" PRIu64 "\n", m->extra_name[i], m->labels,
			  ld(&m->extra[i]));
	}
	pthread_mutex_unlock(&m->dead_mu);
}

int baton_metrics_render(baton_metrics_t *m, char **out, size_t *len)
{
	sbuf_t b = {0};

	for (size_t i = 0; i < BATON_M__COUNT; i++) {
		family(&b, counter_info[i].name, "counter", counter_info[i].help);
		sb_printf(&b, "%s{%s} %" PRIu64 "\n", counter_info[i].name, m->labels,
			  ld(&m->counters[i]));
	}
	family(&b, "baton_in_flight_messages", "gauge",
	       "Deliveries received and not yet settled.");
	sb_printf(&b, "baton_in_flight_messages{%s} %" PRId64 "\n", m->labels,
		  atomic_load_explicit(&m->in_flight, memory_order_relaxed));
	render_histogram(m, &b);
	render_http(m, &b);
	render_dead(m, &b);
	render_extra(m, &b);
	if (b.err) {
		free(b.p);
		return -1;
	}
	*out = b.p;
	*len = b.len;
	return 0;
}

void baton_metrics_free(baton_metrics_t *m)
{
	if (!m)
		return;
	if (m->state != L_IDLE)
		BATON_ERROR(NULL, "metrics.free", "freed while the listener is still open");
	for (size_t i = 0; i < m->n_dead; i++)
		free(m->dead_codes[i]);
	for (int i = 0; i < m->n_extra; i++) {
		free(m->extra_name[i]);
		free(m->extra_help[i]);
	}
	pthread_mutex_destroy(&m->dead_mu);
	free(m->labels);
	free(m);
}

/* ---- HTTP listener ----------------------------------------------------------------------- */

__attribute__((format(printf, 2, 0))) static void mhd_log(void *cls, const char *fmt,
							   va_list ap)
{
	baton_metrics_t *m = cls;
	size_t n;

	vsnprintf(m->mhd_err, sizeof(m->mhd_err), fmt, ap);
	n = strlen(m->mhd_err);
	while (n && (m->mhd_err[n - 1] == '\n' || m->mhd_err[n - 1] == '\r'))
		m->mhd_err[--n] = '\0';
	BATON_WARN(NULL, "metrics.http", "%s", m->mhd_err);
}

static enum MHD_Result respond(struct MHD_Connection *c, unsigned status, const char *ctype,
			       char *body, size_t len, enum MHD_ResponseMemoryMode mode)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
	enum MHD_Result ret;

	if (!r) {
		if (mode == MHD_RESPMEM_MUST_FREE)
			free(body);
		return MHD_NO; /* MHD closes the connection */
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET");
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result respond_text(struct MHD_Connection *c, unsigned status, const char *text)
{
	return respond(c, status, "text/plain; charset=utf-8", (char *)text, strlen(text),
		       MHD_RESPMEM_MUST_COPY);
}

static enum MHD_Result respond_health(baton_metrics_t *m, struct MHD_Connection *c,
				      baton_health_fn fn, const char *what)
{
	char why[256] = {0}, body[sizeof(why) + 2];

	if (!fn || fn(m->health_ud, why, sizeof(why)) == 1)
		return respond_text(c, MHD_HTTP_OK, "ok\n");
	why[sizeof(why) - 1] = '\0';
	snprintf(body, sizeof(body), "%s\n", why[0] ? why : what);
	return respond_text(c, MHD_HTTP_SERVICE_UNAVAILABLE, body);
}

static enum MHD_Result answer(baton_metrics_t *m, struct MHD_Connection *c, const char *url)
{
	char *text;
	size_t len;

	if (strcmp(url, "/metrics") == 0) {
		if (baton_metrics_render(m, &text, &len) != 0)
			return respond_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
		/* MHD frees text with free() once sent. */
		return respond(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", text,
			       len, MHD_RESPMEM_MUST_FREE);
	}
	if (strcmp(url, "/healthz") == 0)
		return respond_health(m, c, m->healthz, "unhealthy");
	if (strcmp(url, "/readyz") == 0)
		return respond_health(m, c, m->readyz, "not ready");
	return respond_text(c, MHD_HTTP_NOT_FOUND, "not found\n");
}

static int has_body(struct MHD_Connection *c)
{
	const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
						     MHD_HTTP_HEADER_CONTENT_LENGTH);

	return (cl && strcmp(cl, "0") != 0) ||
	       MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
}

/* MHD calls this first once the headers are in, then once the request is complete. Answering
 * on the first call makes MHD close the connection afterwards (it skips the body), so plain
 * GETs are answered on the second call to keep the connection alive; requests with a body
 * (none is needed here) are answered at once rather than reading a body of any size. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version,
				  const char *upload_data, size_t *upload_data_size,
				  void **con_cls)
{
	static int seen; /* marks a request whose first call is done */
	baton_metrics_t *m = cls;

	if (!*con_cls) {
		if (strcmp(method, MHD_HTTP_METHOD_GET) != 0)
			return respond_text(c, MHD_HTTP_METHOD_NOT_ALLOWED,
					    "method not allowed\n");
		if (has_body(c))
			return answer(m, c, url);
		*con_cls = &seen;
		return MHD_YES;
	}
	if (*upload_data_size) { /* a body despite the headers: drop it */
		*upload_data_size = 0;
		return MHD_YES;
	}
	return answer(m, c, url);
}

static void on_timer(uv_timer_t *t);

/* Lets MHD do all pending work, then arms the timer for what MHD says it needs next. */
static void drive(baton_metrics_t *m)
{
	MHD_UNSIGNED_LONG_LONG ms;

	MHD_run(m->mhd);
	if (MHD_get_timeout(m->mhd, &ms) == MHD_YES)
		uv_timer_start(&m->timer, on_timer, (uint64_t)ms, 0);
	else
		uv_timer_stop(&m->timer);
}

static void on_timer(uv_timer_t *t)
{
	drive(t->data);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
	if (status < 0)
		BATON_WARN(NULL, "metrics.poll", "polling the listener failed: %s",
			   uv_strerror(status));
	drive(p->data);
}

static void on_closed(uv_handle_t *h)
{
	baton_metrics_t *m = h->data;
	void (*done)(void *ud);

	if (--m->pending_closes > 0)
		return;
	m->state = L_IDLE;
	done = m->done;
	m->done = NULL;
	if (done)
		done(m->done_ud);
}

/* Closes the handles (both initialized) and stops MHD; done runs from the last close cb. */
static void shut(baton_metrics_t *m)
{
	m->state = L_STOPPING;
	m->pending_closes = 2;
	uv_close((uv_handle_t *)&m->poll, on_closed);
	uv_close((uv_handle_t *)&m->timer, on_closed);
	/* uv_close already took the epoll fd out of the loop, so MHD may close it now. */
	MHD_stop_daemon(m->mhd);
	m->mhd = NULL;
	m->port = 0;
}

/* "host:port" -> socket address. 0, or -1 with err. */
static int parse_addr(const char *addr, struct sockaddr_storage *ss, char *err, size_t errlen)
{
	const char *colon = addr ? strrchr(addr, ':') : NULL;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	char host[64], *end;
	size_t hl;
	unsigned long port;

	memset(ss, 0, sizeof(*ss));
	if (!colon || colon == addr || !colon[1])
		goto bad;
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (*end || errno || port > 65535 || colon[1] < '0' || colon[1] > '9')
		goto bad;
	hl = (size_t)(colon - addr);
	if (addr[0] == '[') {
		if (hl < 3 || addr[hl - 1] != ']' || hl - 2 >= sizeof(host))
			goto bad;
		memcpy(host, addr + 1, hl - 2);
		host[hl - 2] = '\0';
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
			goto bad;
		return 0;
	}
	if (hl >= sizeof(host))
		goto bad;
	memcpy(host, addr, hl);
	host[hl] = '\0';
	s4->sin_family = AF_INET;
	s4->sin_port = htons((uint16_t)port);
	if (strcmp(host, "localhost") == 0)
		s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	else if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
		goto bad;
	return 0;
bad:
	snprintf(err, errlen,
		 "metrics address \"%s\" is not host:port (host an IPv4 literal, [IPv6] or "
		 "localhost; port 0 to 65535)",
		 addr ? addr : "(null)");
	return -1;
}

int baton_metrics_listen(baton_metrics_t *m, uv_loop_t *loop, const char *addr,
			 baton_health_fn healthz, baton_health_fn readyz, void *ud, char *err,
			 size_t errlen)
{
	struct sockaddr_storage ss;
	const union MHD_DaemonInfo *info;
	unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
	uint16_t port;
	int rc, fd;

	if (m->state != L_IDLE) {
		snprintf(err, errlen, "metrics listener already started");
		return -1;
	}
	if (parse_addr(addr, &ss, err, errlen) != 0)
		return -1;
	if (ss.ss_family == AF_INET6) {
		flags |= MHD_USE_IPv6;
		port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	} else {
		port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	}
	m->mhd_err[0] = '\0';
	/* The port argument only shows in MHD's messages: MHD_OPTION_SOCK_ADDR is what binds. */
	m->mhd = MHD_start_daemon(flags, port, NULL, NULL, on_request, m,
				  MHD_OPTION_EXTERNAL_LOGGER, mhd_log, m, /* first, or MHD complains */
				  MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
				  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)BATON_METRICS_CONN_TIMEOUT_S,
				  MHD_OPTION_CONNECTION_LIMIT, (unsigned)BATON_METRICS_MAX_CONNS,
				  MHD_OPTION_END);
	if (!m->mhd) {
		snprintf(err, errlen, "cannot listen on %s: %s", addr,
			 m->mhd_err[0] ? m->mhd_err : "libmicrohttpd failed to start");
		return -1;
	}
	info = MHD_get_daemon_info(m->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	fd = info ? info->epoll_fd : -1;
	info = MHD_get_daemon_info(m->mhd, MHD_DAEMON_INFO_BIND_PORT);
	m->port = info ? info->port : 0;
	rc = fd < 0 || m->port == 0 ? UV_EINVAL : uv_poll_init(loop, &m->poll, fd);
	if (rc != 0) { /* no handle exists yet: nothing to close */
		snprintf(err, errlen, "cannot watch the metrics listener: %s", uv_strerror(rc));
		MHD_stop_daemon(m->mhd);
		m->mhd = NULL;
		m->port = 0;
		return -1;
	}
	uv_timer_init(loop, &m->timer);
	m->poll.data = m;
	m->timer.data = m;
	m->healthz = healthz;
	m->readyz = readyz;
	m->health_ud = ud;
	m->state = L_LISTENING;
	rc = uv_poll_start(&m->poll, UV_READABLE, on_poll);
	if (rc != 0) {
		snprintf(err, errlen, "cannot watch the metrics listener: %s (run the loop to "
				      "close its handles before freeing)",
			 uv_strerror(rc));
		shut(m);
		return -1;
	}
	drive(m);
	return 0;
}

int baton_metrics_port(const baton_metrics_t *m)
{
	return m->state == L_LISTENING ? m->port : 0;
}

void baton_metrics_stop(baton_metrics_t *m, void (*done)(void *ud), void *ud)
{
	if (m->state == L_IDLE) {
		if (done)
			done(ud);
		return;
	}
	if (m->state == L_STOPPING) {
		/* Already closing (a failed listen, or a second stop): first done wins. */
		if (!m->done) {
			m->done = done;
			m->done_ud = ud;
		} else {
			BATON_WARN(NULL, "metrics.stop", "stop called twice; second ignored");
		}
		return;
	}
	m->done = done;
	m->done_ud = ud;
	shut(m);
}
