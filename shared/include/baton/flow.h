/* baton/flow.h — the worker runtime: what every flow binary is built on.
 *
 * A flow is a table of handlers, one per event type; baton_worker_main() does everything else:
 * configuration, logging, topology, the AMQP consumer and publisher, the HTTP client, the store,
 * the audit trail, metrics and health, signals. One libuv loop runs it all; many messages are in
 * flight at once (up to BATON_PREFETCH), each an asynchronous state machine:
 *
 *   delivery -> decode (CloudEvents JSON) -> handler -> done(OK | RETRY | DEAD)
 *            -> audit entries durable -> forward (retry tier / parking queue, confirmed)
 *            -> ack
 *
 * Nothing is acked before its audit entries and its forwarded copy are durable; a crash at any
 * point means redelivery, so handlers must be idempotent (use the store's ledger). Before any
 * handler runs, the runtime itself parks:
 *   - bodies over the size limit (payload.too_large), malformed JSON or envelopes
 *     (payload.invalid), other specversions (payload.unsupported_version), event types the flow
 *     has no handler for (event.unhandled): class permanent;
 *   - a message delivered delivery_limit - 1 times without completing (the worker crashed or was
 *     killed on it every time): class poison, code message.poison. The broker's quorum
 *     delivery-limit parks it too, should the worker not get that far.
 * RETRY goes through the retry tiers (x-baton-attempts counts the failed attempts); after the
 * last tier the message is parked with class exhausted and the code of its last failure.
 *
 * Handlers and every callback run on the loop thread. A handler must call baton_msg_done()
 * exactly once, after every HTTP and store call it started has called back. */
#ifndef BATON_FLOW_H
#define BATON_FLOW_H

#include <jansson.h>
#include <stddef.h>
#include <uv.h>

#include "baton/config.h"
#include "baton/http.h"
#include "baton/log.h"
#include "baton/metrics.h"
#include "baton/store.h"

typedef struct baton_flow baton_flow_t;
typedef struct baton_msg baton_msg_t;

typedef enum baton_outcome {
	BATON_OK,    /* the effect is done (or was already done) */
	BATON_RETRY, /* transient failure: try again later through the retry tiers */
	BATON_DEAD   /* permanent failure: park now for support staff */
} baton_outcome_t;

typedef void (*baton_handler_fn)(baton_msg_t *m);

typedef struct baton_handler {
	const char *type; /* CloudEvents type, e.g. "storefront.order.created" */
	baton_handler_fn fn;
} baton_handler_t;

typedef struct baton_flow_def {
	const char *name;                 /* flow name: queue baton.<name> */
	const char *const *routing_keys;  /* NULL-terminated; NULL: the topology table's */
	const baton_handler_t *handlers;  /* terminated by {NULL, NULL} */
	/* Optional, on the main thread after the configuration is loaded and before anything
	 * connects: read business mappings from baton_flow_config(f)->file. 0, or -1 with a
	 * sentence in err (the worker then exits with status 2). */
	int (*setup)(baton_flow_t *f, char *err, size_t errlen);
	/* Optional, after the loop has stopped. */
	void (*teardown)(baton_flow_t *f);
	size_t max_body_bytes; /* 0: BATON_FLOW_MAX_BODY */
} baton_flow_def_t;

#define BATON_FLOW_MAX_BODY (1024 * 1024)

/* The whole life of a worker process. Returns the exit status: 0 after a clean shutdown
 * (SIGTERM/SIGINT), 2 on a configuration error, 1 on another start-up failure. argv: --help and
 * --version only; everything else is configured through BATON_* variables (baton/config.h). */
int baton_worker_main(const baton_flow_def_t *def, int argc, char **argv);

/* --- the flow ------------------------------------------------------------------------------ */

const baton_config_t *baton_flow_config(const baton_flow_t *f);
baton_store_t *baton_flow_store(baton_flow_t *f);
baton_http_t *baton_flow_http(baton_flow_t *f);
baton_metrics_t *baton_flow_metrics(baton_flow_t *f);
uv_loop_t *baton_flow_loop(baton_flow_t *f);
const char *baton_flow_name(const baton_flow_t *f);
/* The flow's own state (set in setup, freed in teardown). */
void baton_flow_set_data(baton_flow_t *f, void *data);
void *baton_flow_data(const baton_flow_t *f);

/* --- one message --------------------------------------------------------------------------- */

baton_flow_t *baton_msg_flow(baton_msg_t *m);
/* The decoded CloudEvents envelope and its "data" object (borrowed, valid until done). */
json_t *baton_msg_event(baton_msg_t *m);
json_t *baton_msg_data(baton_msg_t *m);
const char *baton_msg_id(const baton_msg_t *m);
const char *baton_msg_type(const baton_msg_t *m);
const char *baton_msg_subject(const baton_msg_t *m);        /* "" when absent */
const char *baton_msg_correlation_id(const baton_msg_t *m); /* the event id when absent */
/* 1 on the first attempt, 2 after one retry... */
unsigned baton_msg_attempt(const baton_msg_t *m);
/* Context for baton_log(): message and correlation ids. */
const baton_log_ctx_t *baton_msg_log(const baton_msg_t *m);
/* Handler's per-message state, freed with free_fn (may be NULL) when the message is done. */
void baton_msg_set_state(baton_msg_t *m, void *state, void (*free_fn)(void *));
void *baton_msg_state(const baton_msg_t *m);

/* Adds an audit entry for this message: {"step": step, ...detail} plus flow, worker, message
 * and correlation ids, subject, type, attempt and time. detail (an object or NULL) is stolen.
 * Entries are written (batched, redacted) before the message is acked. */
void baton_msg_audit(baton_msg_t *m, const char *step, json_t *detail);

typedef void (*baton_msg_http_cb)(baton_msg_t *m, const baton_http_resp_t *resp);
/* baton_http_request() on the flow's client with an audit entry ("http": method, redacted URL,
 * status, latency, error) and the HTTP metrics. 0, or -1 (cb not called). */
int baton_msg_http(baton_msg_t *m, const baton_http_req_t *req, baton_msg_http_cb cb);

/* Publishes a CloudEvent {specversion, id, source "baton/<flow>", type, subject, time,
 * datacontenttype, data} to baton.events with routing key = type, persistent, correlation id
 * of this message. id NULL: a random UUID (give a stable id derived from the effect's key so
 * that a redelivery publishes the same event). data is stolen. The message is not acked before
 * the broker has confirmed it; a failed publish turns an OK into a RETRY. Not mandatory: an
 * event no queue is bound to yet is confirmed and dropped by the broker, which is not an error
 * (subscribers bind their own queues to baton.events). 0, or -1. */
int baton_msg_publish(baton_msg_t *m, const char *type, const char *subject, json_t *data,
		      const char *id);

/* Milliseconds the source asked us to wait (Retry-After); the retry goes to the first tier at
 * least that long. */
void baton_msg_retry_after(baton_msg_t *m, long ms);

/* Ends the handler's work: outcome, a stable dotted code ("erp.http_422", "" or NULL for OK),
 * the HTTP status behind it (0: none) and a human sentence. Exactly once per message. */
void baton_msg_done(baton_msg_t *m, baton_outcome_t outcome, const char *code, long http_status,
		    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* The usual mapping of an HTTP response: OK -> OK; TRANSIENT -> RETRY (Retry-After honoured);
 * PERMANENT and CONFLICT -> DEAD. Code "<prefix>.http_<status>", or "<prefix>.<what>" when no
 * response came (e.g. "erp.timeout", "erp.connect"). */
void baton_msg_done_http(baton_msg_t *m, const baton_http_resp_t *resp, const char *prefix);

/* Outcome name: "ok" | "retry" | "dead". */
const char *baton_outcome_name(baton_outcome_t o);

#endif
