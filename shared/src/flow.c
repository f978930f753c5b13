/* flow.c — one message's life: decode, handler, audit, forward, ack. See baton/flow.h.
 *
 * States of a message (loop thread only):
 *   HANDLING    the handler runs; ops counts its HTTP calls and unconfirmed publishes
 *   AUDITING    its audit entries are being written
 *   FORWARDING  its copy for a retry tier or the parking queue awaits the broker's confirm
 *   WAITING     the publisher is down: the forward is tried again from the worker's tick
 * then it is acked (on the connection generation it came from) and freed. */
#define _GNU_SOURCE
#include "flow_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

enum msg_phase { PH_HANDLING, PH_AUDITING, PH_FORWARDING, PH_WAITING };

struct baton_msg {
	baton_flow_t *f;
	baton_delivery_t *d;
	struct baton_msg *prev, *next;
	enum msg_phase phase;
	json_t *event, *data;         /* owned: event; data borrowed from it */
	const char *type, *subject;
	char id[160], corr[160];
	baton_log_ctx_t log;
	baton_failure_t fail;         /* story so far (headers), completed at the end */
	int64_t delivery_count;       /* x-delivery-count: earlier deliveries that never ended */
	uint64_t t0_ns;
	json_t *audit;                /* array of entries not yet written */
	void *state;
	void (*state_free)(void *);
	int ops;                      /* HTTP calls and publishes not yet called back */
	int done, audit_pending, audit_failed, publish_failed;
	char audit_err[256], publish_err[256];
	baton_outcome_t outcome;
	baton_error_class_t cls;
	char code[96];
	char message[BATON_ERROR_MESSAGE_MAX + 8];
	long http_status, retry_after_ms;
	const baton_handler_t *handler;
};

static const char *const outcome_names[] = {"ok", "retry", "dead"};

const char *baton_outcome_name(baton_outcome_t o)
{
	return (unsigned)o < 3 ? outcome_names[o] : "unknown";
}

/* ---------------------------------------------------------------------------------------- */
/* accessors                                                                                */

baton_flow_t *baton_msg_flow(baton_msg_t *m) { return m->f; }
json_t *baton_msg_event(baton_msg_t *m) { return m->event; }
json_t *baton_msg_data(baton_msg_t *m) { return m->data; }
const char *baton_msg_id(const baton_msg_t *m) { return m->id; }
const char *baton_msg_type(const baton_msg_t *m) { return m->type ? m->type : ""; }
const char *baton_msg_subject(const baton_msg_t *m) { return m->subject ? m->subject : ""; }
const char *baton_msg_correlation_id(const baton_msg_t *m) { return m->corr; }
unsigned baton_msg_attempt(const baton_msg_t *m) { return m->fail.attempts + 1; }
const baton_log_ctx_t *baton_msg_log(const baton_msg_t *m) { return &m->log; }
void *baton_msg_state(const baton_msg_t *m) { return m->state; }

void baton_msg_set_state(baton_msg_t *m, void *state, void (*free_fn)(void *))
{
	if (m->state && m->state_free && m->state != state)
		m->state_free(m->state);
	m->state = state;
	m->state_free = free_fn;
}

void baton_msg_retry_after(baton_msg_t *m, long ms)
{
	m->retry_after_ms = ms;
}

/* ---------------------------------------------------------------------------------------- */
/* lifecycle helpers                                                                        */

static void msg_free(baton_msg_t *m)
{
	baton_flow_t *f = m->f;

	if (m->prev)
		m->prev->next = m->next;
	else
		f->head = m->next;
	if (m->next)
		m->next->prev = m->prev;
	f->n_msgs--;
	if (m->state && m->state_free)
		m->state_free(m->state);
	json_decref(m->event);
	json_decref(m->audit);
	baton_delivery_free(m->d);
	baton_metrics_in_flight_add(f->metrics, -1);
	free(m);
	worker_msg_freed(f);
}

static void copy_prop(char *dst, size_t len, const amqp_basic_properties_t *p, int flag,
		      amqp_bytes_t b)
{
	dst[0] = '\0';
	if (p->_flags & flag) {
		size_t n = b.len < len - 1 ? b.len : len - 1;
		memcpy(dst, b.bytes, n);
		dst[n] = '\0';
	}
}

void baton_msg_audit(baton_msg_t *m, const char *step, json_t *detail)
{
	char ts[40];
	json_t *e = json_object();

	if (!e) {
		json_decref(detail);
		return;
	}
	json_object_set_new(e, "step", json_string(step));
	json_object_set_new(e, "flow", json_string(m->f->cfg.flow));
	json_object_set_new(e, "worker", json_string(m->f->cfg.worker_id));
	json_object_set_new(e, "message_id", json_string(m->id));
	json_object_set_new(e, "correlation_id", json_string(m->corr));
	if (m->subject)
		json_object_set_new(e, "subject", json_string(m->subject));
	if (m->type)
		json_object_set_new(e, "type", json_string(m->type));
	json_object_set_new(e, "attempt", json_integer(baton_msg_attempt(m)));
	json_object_set_new(e, "ts", json_string(baton_now_rfc3339(ts, sizeof(ts))));
	if (json_is_object(detail))
		json_object_update(e, detail);
	json_decref(detail);
	json_array_append_new(m->audit, e);
}

/* ---------------------------------------------------------------------------------------- */
/* the end of a message: ack / forward                                                      */

static void msg_ack(baton_msg_t *m)
{
	baton_flow_t *f = m->f;

	if (baton_consumer_ack(f->consumer, m->d->gen, m->d->env.delivery_tag) == 0)
		baton_metrics_inc(f->metrics, BATON_M_ACKED, 1);
	else
		BATON_WARN(&m->log, "msg.ack_stale",
			   "not acked: the connection it came on is gone, the broker redelivers it");
	msg_free(m);
}

static void msg_forward(baton_msg_t *m);

static void msg_forwarded(int ok, const char *why, void *ud)
{
	baton_msg_t *m = ud;
	baton_flow_t *f = m->f;

	if (f->aborting) {
		msg_free(m);
		return;
	}
	if (!ok) {
		baton_metrics_inc(f->metrics, BATON_M_PUBLISH_NACKED, 1);
		BATON_WARN(&m->log, "msg.forward_failed", "forward to %s not confirmed (%s); trying again",
			   m->outcome == BATON_RETRY ? "retry tier" : "parking queue", why);
		m->phase = PH_WAITING;
		return;
	}
	if (m->outcome == BATON_RETRY) {
		baton_metrics_inc(f->metrics, BATON_M_RETRIED, 1);
	} else {
		baton_metrics_inc(f->metrics, BATON_M_DEAD_LETTERED, 1);
		baton_metrics_dead_code(f->metrics, m->code);
		if (m->cls == BATON_CLASS_POISON)
			baton_metrics_inc(f->metrics, BATON_M_POISON, 1);
	}
	msg_ack(m);
}

/* Fills m->fail with this attempt's failure (class, code, times, tier). */
static void msg_failure_story(baton_msg_t *m, const char *tier)
{
	baton_failure_t *s = &m->fail;
	baton_flow_t *f = m->f;

	snprintf(s->flow, sizeof(s->flow), "%s", f->cfg.flow);
	s->cls = m->cls;
	snprintf(s->code, sizeof(s->code), "%s", m->code);
	baton_truncate_utf8(s->message, sizeof(s->message), m->message, BATON_ERROR_MESSAGE_MAX);
	s->http_status = m->http_status;
	baton_now_rfc3339(s->last_failed_at, sizeof(s->last_failed_at));
	if (!s->first_failed_at[0])
		memcpy(s->first_failed_at, s->last_failed_at, sizeof(s->first_failed_at));
	snprintf(s->worker, sizeof(s->worker), "%s", f->cfg.worker_id);
	if (!s->orig_exchange[0] && !s->orig_routing_key[0]) {
		amqp_bytes_t ex = m->d->env.exchange, rk = m->d->env.routing_key;
		snprintf(s->orig_exchange, sizeof(s->orig_exchange), "%.*s", (int)ex.len,
			 (char *)ex.bytes);
		snprintf(s->orig_routing_key, sizeof(s->orig_routing_key), "%.*s", (int)rk.len,
			 (char *)rk.bytes);
	}
	snprintf(s->retry_tier, sizeof(s->retry_tier), "%s", tier ? tier : "");
}

static int msg_publish_forward(baton_msg_t *m)
{
	baton_flow_t *f = m->f;
	amqp_basic_properties_t props = m->d->env.message.properties;
	const amqp_table_t *in = (props._flags & AMQP_BASIC_HEADERS_FLAG) ? &props.headers : NULL;
	amqp_pool_t pool;
	int rc;
	int retry = m->outcome == BATON_RETRY;

	init_amqp_pool(&pool, 4096);
	if (baton_headers_build(&m->fail, in, &pool, &props.headers) != 0) {
		empty_amqp_pool(&pool);
		return -1;
	}
	props._flags |= AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
	props.delivery_mode = 2;
	rc = baton_publisher_publish(f->publisher, retry ? BATON_EXCHANGE_RETRY : BATON_EXCHANGE_DEAD,
				     f->cfg.flow, &props, m->d->env.message.body, 1, msg_forwarded, m);
	empty_amqp_pool(&pool);
	return rc;
}

static void msg_forward(baton_msg_t *m)
{
	m->phase = PH_FORWARDING;
	if (msg_publish_forward(m) != 0)
		m->phase = PH_WAITING; /* publisher down: the tick tries again */
}

void flow_msg_retry_forwards(baton_flow_t *f)
{
	baton_msg_t *m = f->head, *next;

	for (; m; m = next) {
		next = m->next;
		if (m->phase != PH_WAITING)
			continue;
		if (m->d->gen != baton_consumer_gen(f->consumer)) {
			/* The delivery went back to the queue with its connection: it is redelivered
			 * (perhaps elsewhere) and must not be forwarded as well. */
			BATON_WARN(&m->log, "msg.abandoned",
				   "consumer connection changed while waiting to forward; the broker "
				   "redelivers the message");
			msg_free(m);
			continue;
		}
		if (baton_publisher_is_up(f->publisher))
			msg_forward(m);
	}
}

void flow_msg_abort_waiting(baton_flow_t *f)
{
	baton_msg_t *m = f->head, *next;

	for (; m; m = next) {
		next = m->next;
		if (m->phase == PH_WAITING)
			msg_free(m);
	}
}

/* RETRY -> the tier for this attempt (Retry-After respected), or DEAD/exhausted after the last
 * tier. Returns the tier index or -1. */
static int msg_pick_tier(baton_msg_t *m)
{
	const baton_config_t *c = &m->f->cfg;
	size_t i = m->fail.attempts; /* failed attempts before this one */

	if (i >= c->n_retry_tiers)
		return -1;
	while (m->retry_after_ms > 0 && i + 1 < c->n_retry_tiers &&
	       c->retry_tiers_ms[i] < (unsigned long)m->retry_after_ms)
		i++;
	return (int)i;
}

static void msg_after_audit(baton_msg_t *m)
{
	baton_flow_t *f = m->f;
	const char *tier = NULL;
	char tier_name[32];
	int t;

	if (f->aborting) {
		msg_free(m);
		return;
	}
	if (m->audit_failed && m->outcome == BATON_OK) {
		/* The effect is done but its record is not: run the message again later (the
		 * flow's idempotency makes the effect a no-op) so the record gets written. */
		m->outcome = BATON_RETRY;
		m->cls = BATON_CLASS_TRANSIENT;
		snprintf(m->code, sizeof(m->code), "audit.unavailable");
		snprintf(m->message, sizeof(m->message), "audit trail not written: %s", m->audit_err);
	}
	if (m->outcome == BATON_OK) {
		msg_ack(m);
		return;
	}
	if (m->outcome == BATON_RETRY) {
		t = msg_pick_tier(m);
		baton_topology_tier_name(t >= 0 ? f->cfg.retry_tiers_ms[t] : 1, tier_name,
					 sizeof(tier_name));
		tier = tier_name;
	}
	m->fail.attempts++;
	msg_failure_story(m, m->outcome == BATON_RETRY ? tier : NULL);
	msg_forward(m);
}

static void msg_audited(baton_store_status_t st, const char *errmsg, void *ud)
{
	baton_msg_t *m = ud;

	if (st == BATON_STORE_OK) {
		baton_metrics_inc(m->f->metrics, BATON_M_AUDIT_WRITTEN, 1);
	} else if (!m->audit_failed) {
		m->audit_failed = 1;
		snprintf(m->audit_err, sizeof(m->audit_err), "%s: %s", baton_store_status_name(st),
			 errmsg);
	}
	if (--m->audit_pending == 0)
		msg_after_audit(m);
}

/* Turns a RETRY past the last tier into DEAD/exhausted; adds the final audit entry. */
static void msg_settle(baton_msg_t *m)
{
	const char *step = "completed";
	json_t *d = json_object();

	if (m->outcome == BATON_OK && m->publish_failed) {
		m->outcome = BATON_RETRY;
		m->cls = BATON_CLASS_TRANSIENT;
		snprintf(m->code, sizeof(m->code), "publish.failed");
		snprintf(m->message, sizeof(m->message), "%s", m->publish_err);
	}
	if (m->outcome == BATON_RETRY && msg_pick_tier(m) < 0) {
		char why[sizeof(m->message)];
		snprintf(why, sizeof(why), "gave up after %u attempts; last: %.900s",
			 m->fail.attempts + 1, m->message);
		memcpy(m->message, why, sizeof(m->message));
		m->outcome = BATON_DEAD;
		m->cls = BATON_CLASS_EXHAUSTED;
	}
	if (m->outcome == BATON_RETRY)
		step = "retried";
	else if (m->outcome == BATON_DEAD)
		step = "dead_lettered";
	json_object_set_new(d, "outcome", json_string(baton_outcome_name(m->outcome)));
	if (m->outcome != BATON_OK) {
		json_object_set_new(d, "error_class", json_string(baton_error_class_name(m->cls)));
		json_object_set_new(d, "error_code", json_string(m->code));
		json_object_set_new(d, "error_message", json_string(m->message));
		if (m->http_status)
			json_object_set_new(d, "http_status", json_integer(m->http_status));
	}
	json_object_set_new(d, "duration_ms",
			    json_real((double)(uv_hrtime() - m->t0_ns) / 1e6));
	baton_msg_audit(m, step, d);
}

static void msg_finish(baton_msg_t *m)
{
	baton_flow_t *f = m->f;
	size_t i, n;
	json_t *e;

	if (f->aborting) {
		msg_free(m);
		return;
	}
	msg_settle(m);
	if (m->outcome != BATON_OK)
		baton_log(m->outcome == BATON_DEAD ? BATON_LOG_WARN : BATON_LOG_INFO, &m->log,
			  m->outcome == BATON_DEAD ? "msg.dead" : "msg.retry", "%s %s (%s): %s",
			  baton_error_class_name(m->cls), m->code,
			  m->type ? m->type : "event not decoded", m->message);
	m->phase = PH_AUDITING;
	n = json_array_size(m->audit);
	m->audit_pending = (int)n + 1; /* +1: held until every append is issued */
	json_array_foreach(m->audit, i, e) {
		if (baton_audit_append(f->audit, json_incref(e), msg_audited, m) != 0) {
			m->audit_pending--;
			m->audit_failed = 1;
			snprintf(m->audit_err, sizeof(m->audit_err), "audit writer refused the entry");
		}
	}
	if (m->audit_failed) {
		char *dump = json_dumps(m->audit, JSON_COMPACT);
		BATON_ERROR(&m->log, "audit.failed", "audit entries kept in this log: %s",
			    dump ? dump : "(out of memory)");
		free(dump);
	}
	json_array_clear(m->audit);
	if (--m->audit_pending == 0)
		msg_after_audit(m);
}

/* Records how the message ends; finishes it once no HTTP call or publish is outstanding. */
static void msg_end(baton_msg_t *m, baton_outcome_t outcome, baton_error_class_t cls,
		    const char *code, long http_status, const char *text)
{
	if (m->done) {
		BATON_ERROR(&m->log, "flow.bug", "baton_msg_done called twice; second call ignored");
		return;
	}
	m->done = 1;
	m->outcome = outcome;
	m->cls = cls;
	snprintf(m->code, sizeof(m->code), "%s", code ? code : "");
	m->http_status = http_status;
	snprintf(m->message, sizeof(m->message), "%s", text ? text : "");
	if (m->handler)
		baton_metrics_observe_handler(m->f->metrics,
					      (double)(uv_hrtime() - m->t0_ns) / 1e9);
	if (m->ops == 0)
		msg_finish(m);
}

void baton_msg_done(baton_msg_t *m, baton_outcome_t outcome, const char *code, long http_status,
		    const char *fmt, ...)
{
	char text[BATON_ERROR_MESSAGE_MAX + 8] = "";
	va_list ap;

	if (fmt) {
		va_start(ap, fmt);
		vsnprintf(text, sizeof(text), fmt, ap);
		va_end(ap);
	}
	msg_end(m, outcome, outcome == BATON_DEAD ? BATON_CLASS_PERMANENT : BATON_CLASS_TRANSIENT,
		code, http_status, text);
}

void baton_msg_done_http(baton_msg_t *m, const baton_http_resp_t *r, const char *prefix)
{
	char code[96];

	if (r->cls == BATON_HTTP_OK) {
		baton_msg_done(m, BATON_OK, NULL, r->status, NULL);
		return;
	}
	baton_http_error_code(r, prefix, code, sizeof(code));
	if (r->cls == BATON_HTTP_TRANSIENT) {
		if (r->retry_after_ms >= 0)
			baton_msg_retry_after(m, r->retry_after_ms);
		baton_msg_done(m, BATON_RETRY, code, r->status, "%s", r->summary);
	} else {
		baton_msg_done(m, BATON_DEAD, code, r->status, "%s%s%.300s", r->summary,
			       r->body_len ? ": " : "", r->body);
	}
}

/* ---------------------------------------------------------------------------------------- */
/* HTTP and publish on behalf of a message                                                  */

typedef struct http_call {
	baton_msg_t *m;
	baton_msg_http_cb cb;
} http_call_t;

static void msg_http_done(const baton_http_resp_t *r, void *ud)
{
	http_call_t *c = ud;
	baton_msg_t *m = c->m;
	baton_msg_http_cb cb = c->cb;
	json_t *d;

	free(c);
	m->ops--;
	baton_metrics_http_status(m->f->metrics, r->status);
	d = json_pack("{s:s, s:s, s:I, s:f, s:s}", "method", r->method, "url", r->url_redacted,
		      "status", (json_int_t)r->status, "latency_ms", r->latency_ms, "summary",
		      r->summary);
	if (d && r->error[0])
		json_object_set_new(d, "error", json_string(r->error));
	baton_msg_audit(m, "http", d);
	if (m->done) { /* the handler already ended (or is being aborted): nothing to tell it */
		if (m->ops == 0)
			msg_finish(m);
		return;
	}
	cb(m, r);
}

int baton_msg_http(baton_msg_t *m, const baton_http_req_t *req, baton_msg_http_cb cb)
{
	http_call_t *c = malloc(sizeof(*c));

	if (!c || !cb)
		goto fail;
	c->m = m;
	c->cb = cb;
	if (baton_http_request(m->f->http, req, msg_http_done, c) != 0)
		goto fail;
	m->ops++;
	return 0;
fail:
	free(c);
	return -1;
}

static void msg_published(int ok, const char *why, void *ud)
{
	baton_msg_t *m = ud;

	m->ops--;
	if (ok) {
		baton_metrics_inc(m->f->metrics, BATON_M_PUBLISHED, 1);
	} else {
		baton_metrics_inc(m->f->metrics, BATON_M_PUBLISH_NACKED, 1);
		m->publish_failed = 1;
		snprintf(m->publish_err, sizeof(m->publish_err), "event not published: %s", why);
	}
	if (m->done && m->ops == 0)
		msg_finish(m);
}

static void uuid4(char out[37])
{
	unsigned char b[16];

	if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
		for (size_t i = 0; i < sizeof(b); i++)
			b[i] = (unsigned char)random();
	b[6] = (unsigned char)((b[6] & 0x0F) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3F) | 0x80);
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
		 b[13], b[14], b[15]);
}

int baton_msg_publish(baton_msg_t *m, const char *type, const char *subject, json_t *data,
		      const char *id)
{
	baton_flow_t *f = m->f;
	char uuid[37], ts[40], source[96], app[96];
	amqp_basic_properties_t p = {0};
	json_t *ev;
	char *body = NULL;
	int rc = -1;

	if (!type || !json_is_object(data))
		goto out;
	if (!id) {
		uuid4(uuid);
		id = uuid;
	}
	snprintf(source, sizeof(source), "baton/%s", f->cfg.flow);
	snprintf(app, sizeof(app), "baton-%s", f->cfg.flow);
	ev = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:O}", "specversion", "1.0", "id", id,
		       "source", source, "type", type, "time", baton_now_rfc3339(ts, sizeof(ts)),
		       "datacontenttype", "application/json", "data", data);
	if (!ev)
		goto out;
	if (subject)
		json_object_set_new(ev, "subject", json_string(subject));
	body = json_dumps(ev, JSON_COMPACT);
	json_decref(ev);
	if (!body)
		goto out;
	p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
		   AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG |
		   AMQP_BASIC_TYPE_FLAG | AMQP_BASIC_APP_ID_FLAG;
	p.content_type = amqp_cstring_bytes("application/json");
	p.delivery_mode = 2;
	p.message_id = amqp_cstring_bytes(id);
	p.correlation_id = amqp_cstring_bytes(m->corr);
	p.type = amqp_cstring_bytes(type);
	p.app_id = amqp_cstring_bytes(app);
	/* Not mandatory: a baton.* event nobody has subscribed to yet is not a failure. */
	rc = baton_publisher_publish(f->publisher, BATON_EXCHANGE_EVENTS, type, &p,
				     amqp_cstring_bytes(body), 0, msg_published, m);
	if (rc == 0) {
		m->ops++;
		baton_msg_audit(m, "published", json_pack("{s:s, s:s}", "event_type", type,
							  "event_id", id));
	}
out:
	free(body);
	json_decref(data);
	return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* receiving                                                                                */

/* Ends a message the runtime itself rejects, before (or instead of) any handler. */
static void msg_reject(baton_msg_t *m, baton_error_class_t cls, const char *code,
		       const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void msg_reject(baton_msg_t *m, baton_error_class_t cls, const char *code,
		       const char *fmt, ...)
{
	va_list ap;
	char msg[sizeof(m->message)];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (cls != BATON_CLASS_POISON)
		baton_metrics_inc(m->f->metrics, BATON_M_REJECTED_INVALID, 1);
	msg_end(m, BATON_DEAD, cls, code, 0, msg);
}

static const char *str_member(json_t *o, const char *k, int required, const char **why)
{
	json_t *v = json_object_get(o, k);

	if (!v) {
		if (required)
			*why = "missing";
		return NULL;
	}
	if (!json_is_string(v) || (required && json_string_length(v) == 0)) {
		*why = "wrong type";
		return NULL;
	}
	return json_string_value(v);
}

/* Decodes the envelope. 0, or -1 after rejecting the message. */
static int msg_decode(baton_msg_t *m)
{
	amqp_bytes_t body = m->d->env.message.body;
	size_t max = m->f->def->max_body_bytes ? m->f->def->max_body_bytes : BATON_FLOW_MAX_BODY;
	static const char *const required[] = {"id", "source", "type"};
	const char *why = NULL, *v;
	json_error_t je;

	if (body.len > max) {
		msg_reject(m, BATON_CLASS_PERMANENT, "payload.too_large",
			   "body of %zu bytes is over the limit of %zu bytes", body.len, max);
		return -1;
	}
	m->event = json_loadb(body.bytes, body.len, JSON_REJECT_DUPLICATES, &je);
	if (!m->event) {
		msg_reject(m, BATON_CLASS_PERMANENT, "payload.invalid",
			   "malformed JSON at line %d column %d: %s", je.line, je.column, je.text);
		return -1;
	}
	if (!json_is_object(m->event)) {
		msg_reject(m, BATON_CLASS_PERMANENT, "payload.invalid",
			   "the event is not a JSON object");
		return -1;
	}
	v = str_member(m->event, "specversion", 1, &why);
	if (!v) {
		msg_reject(m, BATON_CLASS_PERMANENT, "payload.invalid",
			   "CloudEvents member \"specversion\": %s (expected \"1.0\")", why);
		return -1;
	}
	if (strcmp(v, "1.0") != 0) {
		msg_reject(m, BATON_CLASS_PERMANENT, "payload.unsupported_version",
			   "CloudEvents specversion \"%.40s\" is not supported (expected \"1.0\")", v);
		return -1;
	}
	for (size_t i = 0; i < sizeof(required) / sizeof(*required); i++) {
		if (!str_member(m->event, required[i], 1, &why)) {
			msg_reject(m, BATON_CLASS_PERMANENT, "payload.invalid",
				   "CloudEvents member \"%s\": %s (a non-empty string is required)",
				   required[i], why);
			return -1;
		}
	}
	why = NULL;
	m->subject = str_member(m->event, "subject", 0, &why);
	if (why) {
		msg_reject(m, BATON_CLASS_PERMANENT, "payload.invalid",
			   "CloudEvents member \"subject\": must be a string");
		return -1;
	}
	m->data = json_object_get(m->event, "data");
	if (!json_is_object(m->data)) {
		m->data = NULL;
		msg_reject(m, BATON_CLASS_PERMANENT, "payload.invalid",
			   "CloudEvents member \"data\": %s (a JSON object is required)",
			   json_object_get(m->event, "data") ? "wrong type" : "missing");
		return -1;
	}
	snprintf(m->id, sizeof(m->id), "%s", json_string_value(json_object_get(m->event, "id")));
	if (!m->corr[0])
		snprintf(m->corr, sizeof(m->corr), "%s", m->id);
	m->type = json_string_value(json_object_get(m->event, "type"));
	return 0;
}

static const baton_handler_t *find_handler(const baton_flow_def_t *def, const char *type)
{
	for (const baton_handler_t *h = def->handlers; h && h->type; h++)
		if (strcmp(h->type, type) == 0)
			return h;
	return NULL;
}

static baton_msg_t *msg_new(baton_flow_t *f, baton_delivery_t *d)
{
	baton_msg_t *m = calloc(1, sizeof(*m));
	const amqp_basic_properties_t *p = &d->env.message.properties;
	const amqp_table_t *h = (p->_flags & AMQP_BASIC_HEADERS_FLAG) ? &p->headers : NULL;

	if (!m || !(m->audit = json_array())) {
		free(m);
		return NULL;
	}
	m->f = f;
	m->d = d;
	m->t0_ns = uv_hrtime();
	copy_prop(m->id, sizeof(m->id), p, AMQP_BASIC_MESSAGE_ID_FLAG, p->message_id);
	copy_prop(m->corr, sizeof(m->corr), p, AMQP_BASIC_CORRELATION_ID_FLAG, p->correlation_id);
	m->log.message_id = m->id;
	m->log.correlation_id = m->corr;
	baton_failure_read(&m->fail, h);
	m->delivery_count = baton_header_int(h, "x-delivery-count", 0);
	m->next = f->head;
	if (f->head)
		f->head->prev = m;
	f->head = m;
	f->n_msgs++;
	baton_metrics_in_flight_add(f->metrics, 1);
	return m;
}

void flow_msg_receive(baton_flow_t *f, baton_delivery_t *d)
{
	baton_msg_t *m;

	if (f->stage != STAGE_RUN) {
		/* Cancelled but already on the wire: not acked, so the broker hands it to another
		 * consumer when this connection closes. */
		baton_delivery_free(d);
		return;
	}
	m = msg_new(f, d);
	if (!m) {
		BATON_ERROR(NULL, "msg.oom", "out of memory: delivery left unacked");
		baton_delivery_free(d); /* redelivered when the connection goes */
		return;
	}
	baton_metrics_inc(f->metrics, BATON_M_CONSUMED, 1);
	if (d->env.redelivered)
		baton_metrics_inc(f->metrics, BATON_M_REDELIVERED, 1);
	if (m->delivery_count >= (int64_t)f->cfg.delivery_limit - 1) {
		msg_reject(m, BATON_CLASS_POISON, "message.poison",
			   "delivered %lld times without completing (a worker crashed or was killed "
			   "while processing it each time); parked before another attempt",
			   (long long)m->delivery_count + 1);
		return;
	}
	if (msg_decode(m) != 0)
		return;
	m->handler = find_handler(f->def, m->type);
	if (!m->handler) {
		msg_reject(m, BATON_CLASS_PERMANENT, "event.unhandled",
			   "flow %s has no handler for event type \"%.100s\"", f->cfg.flow, m->type);
		return;
	}
	baton_msg_audit(m, "received", json_pack("{s:b}", "redelivered", d->env.redelivered));
	m->handler->fn(m);
}
