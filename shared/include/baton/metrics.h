/* baton/metrics.h — the worker's metrics registry and its HTTP listener.
 *
 * The registry holds counters, one gauge and one histogram, and renders them in the Prometheus
 * text format 0.0.4; every sample carries the labels flow="..." and worker="..." given to
 * baton_metrics_new(). Counters, the gauge and the histogram are C11 atomics, so any thread may
 * bump them (libuv worker threads included); render may run concurrently with them.
 *
 * The listener (libmicrohttpd, epoll mode, no thread of its own) is driven by a libuv loop:
 * a uv_poll_t on MHD's epoll fd and a uv_timer_t for connection timeouts. It serves
 *   GET /metrics  200, content-type "text/plain; version=0.0.4; charset=utf-8"
 *   GET /healthz  200 "ok\n" or 503 "<why>\n"
 *   GET /readyz   200 "ok\n" or 503 "<why>\n"
 *   anything else 404, any method but GET 405 (with "Allow: GET").
 * Connections time out after BATON_METRICS_CONN_TIMEOUT_S idle seconds; at most
 * BATON_METRICS_MAX_CONNS at once. listen, port and stop are for the loop thread only. */
#ifndef BATON_METRICS_H
#define BATON_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef enum baton_metric {
	BATON_M_CONSUMED,         /* baton_messages_consumed_total */
	BATON_M_ACKED,            /* baton_messages_acked_total */
	BATON_M_RETRIED,          /* baton_messages_retried_total */
	BATON_M_DEAD_LETTERED,    /* baton_messages_dead_lettered_total */
	BATON_M_POISON,           /* baton_messages_poison_total */
	BATON_M_REDELIVERED,      /* baton_messages_redelivered_total */
	BATON_M_REJECTED_INVALID, /* baton_messages_rejected_invalid_total */
	BATON_M_PUBLISHED,        /* baton_messages_published_total */
	BATON_M_PUBLISH_NACKED,   /* baton_publish_nacked_total */
	BATON_M_AMQP_RECONNECTS,  /* baton_amqp_reconnects_total */
	BATON_M_STORE_ERRORS,     /* baton_store_errors_total */
	BATON_M_AUDIT_WRITTEN,    /* baton_audit_records_written_total */
	BATON_M__COUNT
} baton_metric_t;

/* Distinct dead-letter codes kept; later new codes are counted under code="other". */
#define BATON_METRICS_MAX_DEAD_CODES 64
/* Longest dead-letter code kept (bytes); longer codes are cut at a UTF-8 boundary. */
#define BATON_METRICS_DEAD_CODE_MAX 128
#define BATON_METRICS_CONN_TIMEOUT_S 10
#define BATON_METRICS_MAX_CONNS 64

typedef struct baton_metrics baton_metrics_t;

/* New empty registry; flow and worker_id are copied (NULL -> ""). NULL only when out of memory. */
baton_metrics_t *baton_metrics_new(const char *flow, const char *worker_id);

/* Adds by to a counter (out-of-range which is ignored). Any thread. */
void baton_metrics_inc(baton_metrics_t *m, baton_metric_t which, uint64_t by);
/* Gauge baton_in_flight_messages += delta. Any thread. */
void baton_metrics_in_flight_add(baton_metrics_t *m, int delta);
/* Histogram baton_handler_duration_seconds, buckets .005 .01 .025 .05 .1 .25 .5 1 2.5 5 10 30
 * +Inf. Negative values count as 0; NaN is ignored. Any thread. */
void baton_metrics_observe_handler(baton_metrics_t *m, double seconds);
/* Counter baton_http_responses_total{code="503"}: exact codes 100..599, code="0" for "no
 * response" (status 0), code="other" for anything else. Any thread. */
void baton_metrics_http_status(baton_metrics_t *m, long status);
/* Counter baton_dead_letters_total{code="..."}. At most BATON_METRICS_MAX_DEAD_CODES distinct
 * codes; later new ones (and the literal "other") count as code="other". NULL or "" counts as
 * code="unknown". Invalid UTF-8 bytes become '?'; the label value is escaped when rendered. Any
 * thread (takes a mutex). */
void baton_metrics_dead_code(baton_metrics_t *m, const char *code);

/* A flow's own counters (e.g. baton_inventory_drift_differences_total), at most
 * BATON_METRICS_MAX_EXTRA. name: a Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*), copied
 * with help. Returns its id (registering the same name again returns the same id), or -1 for a
 * bad name, a full table or out of memory. Any thread (takes a mutex). */
#define BATON_METRICS_MAX_EXTRA 16
int baton_metrics_counter_new(baton_metrics_t *m, const char *name, const char *help);
/* Adds by to counter id (ids out of range are ignored). Any thread. */
void baton_metrics_counter_add(baton_metrics_t *m, int id, uint64_t by);

/* Renders the whole registry in Prometheus text format (HELP/TYPE lines, labels flow and worker
 * on every sample). *out is NUL-terminated, *len excludes the NUL; caller frees *out.
 * 0, or -1 when out of memory. */
int baton_metrics_render(baton_metrics_t *m, char **out, size_t *len);

/* Health check: returns 1 when healthy/ready; otherwise may write a short reason into why
 * (whylen bytes, already zeroed), shown as the 503 body. Runs on the loop thread. */
typedef int (*baton_health_fn)(void *ud, char *why, size_t whylen);

/* Starts the listener on addr "host:port": host is an IPv4 literal, "localhost" (127.0.0.1) or
 * a bracketed IPv6 literal; port 0 picks a free port (see baton_metrics_port). healthz/readyz
 * NULL means always OK; ud is passed to both. 0, or -1 with a sentence in err. */
int baton_metrics_listen(baton_metrics_t *m, uv_loop_t *loop, const char *addr,
			 baton_health_fn healthz, baton_health_fn readyz, void *ud, char *err,
			 size_t errlen);
/* Bound port, 0 if not listening. */
int baton_metrics_port(const baton_metrics_t *m);
/* Stops the listener: closes the uv handles, stops MHD (dropping open connections), then calls
 * done(ud) (done may be NULL) from the handles' close callback. When not listening, done is
 * called right away. The registry stays usable (render, inc) and may listen again after done. */
void baton_metrics_stop(baton_metrics_t *m, void (*done)(void *ud), void *ud);
/* Frees the registry: only after stop's done ran, or if it never listened. NULL is a no-op. */
void baton_metrics_free(baton_metrics_t *m);

#endif
