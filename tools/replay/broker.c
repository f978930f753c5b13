/* broker.c — scan, publish with confirms, ack. See broker.h. */
#include "broker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "baton/amqp.h"
#include "message.h"

#define RP_CONFIRM_TIMEOUT_S 30

int rp_broker_open(rp_broker_t *b, const char *url, char *err, size_t errlen)
{
	baton_amqp_params_t p;
	char why[512];

	memset(b, 0, sizeof(*b));
	if (baton_amqp_parse_url(url, &p, why, sizeof(why)) != 0) {
		snprintf(err, errlen, "BATON_AMQP_URL: %s", why);
		return -1;
	}
	p.heartbeat_s = 0;
	p.rpc_timeout_ms = 15000;
	snprintf(b->host, sizeof(b->host), "%s", p.host);
	b->port = p.port;
	snprintf(b->vhost, sizeof(b->vhost), "%s", p.vhost);
	b->c = baton_amqp_connect(&p, "baton-replay", why, sizeof(why));
	if (!b->c) {
		snprintf(err, errlen, "RabbitMQ unreachable: %s", why);
		return -1;
	}
	b->next_ch = RP_PUB_CH + 1;
	b->idle_ms = 5000;
	return 0;
}

void rp_broker_close(rp_broker_t *b)
{
	if (!b->c)
		return;
	/* Each consume channel is closed with a round trip first: the broker has then handled
	 * every ack sent on it before the rest of its deliveries go back to their queue
	 * (untouched, x-baton-* headers intact). */
	for (size_t i = 0; i < b->n_consume; i++) {
		amqp_channel_close(b->c, b->consume_chs[i], AMQP_REPLY_SUCCESS);
		if (amqp_get_rpc_reply(b->c).reply_type != AMQP_RESPONSE_NORMAL)
			break; /* the connection is gone: the broker returns everything itself */
	}
	amqp_connection_close(b->c, AMQP_REPLY_SUCCESS);
	amqp_destroy_connection(b->c);
	b->c = NULL;
}

static int rpc_ok(rp_broker_t *b, const char *what, char *err, size_t errlen)
{
	amqp_rpc_reply_t r = amqp_get_rpc_reply(b->c);
	char why[256];

	if (r.reply_type == AMQP_RESPONSE_NORMAL)
		return 0;
	snprintf(err, errlen, "%s: %s", what, baton_amqp_reply_str(r, why, sizeof(why)));
	return -1;
}

static int open_channel(rp_broker_t *b, amqp_channel_t ch, char *err, size_t errlen)
{
	amqp_channel_open(b->c, ch);
	return rpc_ok(b, "channel open", err, errlen);
}

int rp_broker_count(rp_broker_t *b, const char *queue, uint32_t *n, char *err, size_t errlen)
{
	amqp_channel_t ch = b->next_ch++;
	amqp_queue_declare_ok_t *ok;
	amqp_rpc_reply_t r;
	char why[256];

	if (open_channel(b, ch, err, errlen) != 0)
		return -1;
	ok = amqp_queue_declare(b->c, ch, amqp_cstring_bytes(queue), 1, 0, 0, 0, amqp_empty_table);
	r = amqp_get_rpc_reply(b->c);
	if (ok && r.reply_type == AMQP_RESPONSE_NORMAL) {
		*n = ok->message_count;
		amqp_channel_close(b->c, ch, AMQP_REPLY_SUCCESS);
		return 0;
	}
	if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
	    r.reply.id == AMQP_CHANNEL_CLOSE_METHOD &&
	    ((amqp_channel_close_t *)r.reply.decoded)->reply_code == AMQP_NOT_FOUND) {
		amqp_channel_close_ok_t close_ok = {0};
		amqp_send_method(b->c, ch, AMQP_CHANNEL_CLOSE_OK_METHOD, &close_ok);
		return 1;
	}
	snprintf(err, errlen, "queue %s: %s", queue, baton_amqp_reply_str(r, why, sizeof(why)));
	return -1;
}

void rp_msg_free(rp_msg_t *m)
{
	if (!m)
		return;
	amqp_destroy_envelope(&m->env);
	free(m);
}

/* A frame that is not a delivery arrived while consuming: fatal only when it closes us. */
static int other_frame(rp_broker_t *b, char *err, size_t errlen)
{
	amqp_frame_t f;

	if (amqp_simple_wait_frame(b->c, &f) != AMQP_STATUS_OK) {
		snprintf(err, errlen, "RabbitMQ connection lost while reading");
		return -1;
	}
	if (f.frame_type == AMQP_FRAME_METHOD &&
	    (f.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD ||
	     f.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD ||
	     f.payload.method.id == AMQP_BASIC_CANCEL_METHOD)) {
		snprintf(err, errlen, "RabbitMQ closed the channel or cancelled the consumer "
				      "(queue deleted?)");
		return -1;
	}
	return 0;
}

/* 1 delivery, 0 nothing within tv, -1 error. */
static int next_delivery(rp_broker_t *b, amqp_envelope_t *env, struct timeval *tv, char *err,
			 size_t errlen)
{
	for (;;) {
		amqp_rpc_reply_t r;

		amqp_maybe_release_buffers(b->c);
		r = amqp_consume_message(b->c, env, tv, 0);
		if (r.reply_type == AMQP_RESPONSE_NORMAL)
			return 1;
		if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
		    r.library_error == AMQP_STATUS_TIMEOUT)
			return 0;
		if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
		    r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
			if (other_frame(b, err, errlen) != 0)
				return -1;
			continue;
		}
		snprintf(err, errlen, "RabbitMQ connection lost while reading: %s",
			 r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION
				 ? amqp_error_string2(r.library_error)
				 : "server error");
		return -1;
	}
}

/* Stops the consumer and forgets what was already on its way: those stay unacked. */
static int stop_consumer(rp_broker_t *b, amqp_channel_t ch, amqp_bytes_t tag, char *err,
			 size_t errlen)
{
	struct timeval zero = {0, 0};
	amqp_envelope_t env;
	int rc;

	amqp_basic_cancel(b->c, ch, tag);
	if (rpc_ok(b, "basic.cancel", err, errlen) != 0)
		return -1;
	while ((rc = next_delivery(b, &env, &zero, err, errlen)) == 1)
		amqp_destroy_envelope(&env);
	return rc;
}

/* Messages one consumer holds at most. Quorum queues cap an unlimited prefetch (at 2000 in
 * 3.10), so a scan that leaves messages unacked opens one consumer after another, each on a
 * channel of its own, to read past that. */
#define RP_PREFETCH 1000

static int consume(rp_broker_t *b, amqp_channel_t ch, const char *queue, amqp_bytes_t *tag,
		   char *err, size_t errlen)
{
	amqp_basic_consume_ok_t *ok;

	if (open_channel(b, ch, err, errlen) != 0)
		return -1;
	if (b->n_consume < sizeof(b->consume_chs) / sizeof(b->consume_chs[0]))
		b->consume_chs[b->n_consume++] = ch;
	amqp_basic_qos(b->c, ch, 0, RP_PREFETCH, 0);
	if (rpc_ok(b, "basic.qos", err, errlen) != 0)
		return -1;
	ok = amqp_basic_consume(b->c, ch, amqp_cstring_bytes(queue), amqp_empty_bytes, 0, 0, 0,
				amqp_empty_table);
	if (rpc_ok(b, "basic.consume", err, errlen) != 0 || !ok)
		return -1;
	*tag = amqp_bytes_malloc_dup(ok->consumer_tag);
	return 0;
}

typedef struct scan_state {
	const char *flow;
	uint32_t max, seen;
	int stop, idle;
	rp_visit_fn visit;
	void *ud;
} scan_state_t;

/* One consumer: up to RP_PREFETCH deliveries, then it is cancelled (what it got stays held). */
static int scan_one(rp_broker_t *b, const char *queue, scan_state_t *st, char *err, size_t errlen)
{
	amqp_channel_t ch = b->next_ch++;
	amqp_bytes_t tag = amqp_empty_bytes;
	struct timeval idle = {b->idle_ms / 1000, (b->idle_ms % 1000) * 1000};
	uint32_t here = 0;
	int rc = -1;

	int cmax = amqp_get_channel_max(b->c);

	if (ch == 0 || (cmax > 0 && ch > cmax)) {
		snprintf(err, errlen, "more parked messages than one command can hold (about %d "
				      "thousand); use --limit or narrower filters", cmax ? cmax : 65535);
		return -1;
	}
	if (consume(b, ch, queue, &tag, err, errlen) != 0)
		goto out;
	while (st->seen < st->max && here < RP_PREFETCH && !st->stop) {
		rp_msg_t *m = calloc(1, sizeof(*m));
		int got, what;

		if (!m) {
			snprintf(err, errlen, "out of memory");
			goto out;
		}
		got = next_delivery(b, &m->env, &idle, err, errlen);
		if (got <= 0) {
			free(m);
			if (got < 0)
				goto out;
			st->idle = 1; /* the rest is held by someone else (another operator) */
			break;
		}
		st->seen++;
		here++;
		rp_item_read(&m->it, st->flow, &m->env.message.properties, m->env.message.body);
		what = st->visit(m, st->ud);
		st->stop = what & RP_STOP;
		if (!(what & RP_KEEP))
			rp_msg_free(m);
	}
	rc = stop_consumer(b, ch, tag, err, errlen);
out:
	amqp_bytes_free(tag);
	return rc;
}

int rp_broker_scan(rp_broker_t *b, const char *queue, const char *flow, uint32_t max,
		   rp_visit_fn visit, void *ud, char *err, size_t errlen)
{
	scan_state_t st = {flow, max, 0, 0, 0, visit, ud};

	while (st.seen < st.max && !st.stop && !st.idle)
		if (scan_one(b, queue, &st, err, errlen) != 0)
			return -1;
	return 0;
}

int rp_broker_ack(rp_broker_t *b, rp_msg_t *m, char *err, size_t errlen)
{
	int st = amqp_basic_ack(b->c, m->env.channel, m->env.delivery_tag, 0);

	if (st != AMQP_STATUS_OK) {
		snprintf(err, errlen, "ack of %s failed: %s", m->it.id, amqp_error_string2(st));
		return -1;
	}
	m->acked = 1;
	return 0;
}

static int confirm_on(rp_broker_t *b, char *err, size_t errlen)
{
	if (b->confirm_on)
		return 0;
	if (open_channel(b, RP_PUB_CH, err, errlen) != 0)
		return -1;
	amqp_confirm_select(b->c, RP_PUB_CH);
	if (rpc_ok(b, "confirm.select", err, errlen) != 0)
		return -1;
	b->confirm_on = 1;
	return 0;
}

static void settle(rp_msg_t **msgs, size_t n, uint64_t tag, int multiple, int ok)
{
	for (size_t i = 0; i < n; i++) {
		rp_msg_t *m = msgs[i];
		if (m->outcome != 0 || !m->seq || (multiple ? m->seq > tag : m->seq != tag))
			continue;
		if (ok && !m->returned) {
			m->outcome = 1;
		} else {
			m->outcome = -1;
			if (!m->why[0])
				snprintf(m->why, sizeof(m->why), "the broker refused the copy (nack)");
		}
	}
}

/* basic.return: the copy was not routed (no binding for the flow): mark it. */
static int on_return(rp_broker_t *b, rp_msg_t **msgs, size_t n, char *err, size_t errlen)
{
	amqp_message_t msg;
	amqp_rpc_reply_t r = amqp_read_message(b->c, RP_PUB_CH, &msg, 0);

	if (r.reply_type != AMQP_RESPONSE_NORMAL) {
		snprintf(err, errlen, "RabbitMQ connection lost while reading a returned message");
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		amqp_bytes_t body = msgs[i]->env.message.body;
		if (msgs[i]->outcome || msgs[i]->returned || !msgs[i]->seq ||
		    body.len != msg.body.len || memcmp(body.bytes, msg.body.bytes, body.len))
			continue;
		msgs[i]->returned = 1;
		snprintf(msgs[i]->why, sizeof(msgs[i]->why),
			 "unroutable: no queue bound to %s with key %s", "baton.requeue",
			 msgs[i]->it.flow);
		break;
	}
	amqp_destroy_message(&msg);
	return 0;
}

static size_t unsettled(rp_msg_t **msgs, size_t n)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		k += msgs[i]->seq && msgs[i]->outcome == 0;
	return k;
}

static int wait_confirms(rp_broker_t *b, rp_msg_t **msgs, size_t n, char *err, size_t errlen)
{
	struct timeval tv = {RP_CONFIRM_TIMEOUT_S, 0};
	amqp_frame_t f;

	while (unsettled(msgs, n)) {
		int st = amqp_simple_wait_frame_noblock(b->c, &f, &tv);
		if (st == AMQP_STATUS_TIMEOUT) {
			snprintf(err, errlen, "RabbitMQ did not confirm within %d s",
				 RP_CONFIRM_TIMEOUT_S);
			return -1;
		}
		if (st != AMQP_STATUS_OK) {
			snprintf(err, errlen, "RabbitMQ connection lost while waiting for confirms: %s",
				 amqp_error_string2(st));
			return -1;
		}
		if (f.frame_type != AMQP_FRAME_METHOD || f.channel != RP_PUB_CH)
			continue;
		switch (f.payload.method.id) {
		case AMQP_BASIC_ACK_METHOD: {
			amqp_basic_ack_t *a = f.payload.method.decoded;
			settle(msgs, n, a->delivery_tag, a->multiple, 1);
			break;
		}
		case AMQP_BASIC_NACK_METHOD: {
			amqp_basic_nack_t *a = f.payload.method.decoded;
			settle(msgs, n, a->delivery_tag, a->multiple, 0);
			break;
		}
		case AMQP_BASIC_RETURN_METHOD:
			if (on_return(b, msgs, n, err, errlen) != 0)
				return -1;
			break;
		case AMQP_CHANNEL_CLOSE_METHOD: {
			amqp_channel_close_t *c = f.payload.method.decoded;
			snprintf(err, errlen, "RabbitMQ closed the publish channel: %.*s",
				 (int)c->reply_text.len, (char *)c->reply_text.bytes);
			return -1;
		}
		default:
			break;
		}
	}
	return 0;
}

int rp_broker_publish(rp_broker_t *b, const char *exchange, rp_msg_t **msgs,
		      const amqp_table_t *hdrs, size_t n, char *err, size_t errlen)
{
	if (confirm_on(b, err, errlen) != 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		rp_msg_t *m = msgs[i];
		amqp_basic_properties_t props = m->env.message.properties;
		int st;

		props.headers = hdrs[i];
		props._flags |= AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
		props.delivery_mode = 2;
		st = amqp_basic_publish(b->c, RP_PUB_CH, amqp_cstring_bytes(exchange),
					amqp_cstring_bytes(m->it.flow), 1, 0, &props,
					m->env.message.body);
		if (st != AMQP_STATUS_OK) {
			snprintf(err, errlen, "publish failed: %s", amqp_error_string2(st));
			return -1;
		}
		m->seq = ++b->pub_seq;
		m->outcome = 0;
		m->returned = 0;
		m->why[0] = '\0';
	}
	return wait_confirms(b, msgs, n, err, errlen);
}
