/* amqp.c — consumer and publisher connections on a libuv loop. See baton/amqp.h. */
#include "baton/amqp.h"

#include <amqp_tcp_socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "baton/log.h"

#define BACKOFF_BASE_MS 250
#define BACKOFF_CAP_MS 30000
#define PUBLISH_SEQ_HEADER "x-baton-publish-seq"

/* ---------------------------------------------------------------------------------------- */
/* helpers                                                                                  */

int baton_amqp_parse_url(const char *url, baton_amqp_params_t *p, char *err, size_t errlen)
{
	struct amqp_connection_info ci;
	char *copy = url ? strdup(url) : NULL;
	int rc = -1;

	if (!copy) {
		snprintf(err, errlen, "no AMQP URL");
		return -1;
	}
	amqp_default_connection_info(&ci);
	if (amqp_parse_url(copy, &ci) != AMQP_STATUS_OK) {
		snprintf(err, errlen, "not an AMQP URL (expected amqp://user:pass@host:port/vhost)");
		goto out;
	}
	memset(p, 0, sizeof(*p));
	snprintf(p->host, sizeof(p->host), "%s", ci.host);
	snprintf(p->user, sizeof(p->user), "%s", ci.user);
	snprintf(p->pass, sizeof(p->pass), "%s", ci.password);
	snprintf(p->vhost, sizeof(p->vhost), "%s", ci.vhost);
	p->port = ci.port;
	p->heartbeat_s = 30;
	p->rpc_timeout_ms = 10000;
	p->frame_max = 131072;
	rc = 0;
out:
	free(copy);
	return rc;
}

const char *baton_amqp_reply_str(amqp_rpc_reply_t r, char *buf, size_t len)
{
	switch (r.reply_type) {
	case AMQP_RESPONSE_NORMAL:
		snprintf(buf, len, "%s", "");
		break;
	case AMQP_RESPONSE_NONE:
		snprintf(buf, len, "no RPC reply");
		break;
	case AMQP_RESPONSE_LIBRARY_EXCEPTION:
		snprintf(buf, len, "%s", amqp_error_string2(r.library_error));
		break;
	case AMQP_RESPONSE_SERVER_EXCEPTION:
		if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
			amqp_connection_close_t *m = r.reply.decoded;
			snprintf(buf, len, "connection closed by broker: %u %.*s", m->reply_code,
				 (int)m->reply_text.len, (char *)m->reply_text.bytes);
		} else if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
			amqp_channel_close_t *m = r.reply.decoded;
			snprintf(buf, len, "channel closed by broker: %u %.*s", m->reply_code,
				 (int)m->reply_text.len, (char *)m->reply_text.bytes);
		} else {
			snprintf(buf, len, "broker error, method 0x%08x", r.reply.id);
		}
		break;
	}
	return buf;
}

unsigned baton_amqp_backoff_ms(unsigned attempt, unsigned base_ms, unsigned cap_ms)
{
	uint64_t ceiling = base_ms;

	for (unsigned i = 0; i < attempt && ceiling < cap_ms; i++)
		ceiling *= 2;
	if (ceiling > cap_ms)
		ceiling = cap_ms;
	/* full jitter, but never below a tenth of base: no hot reconnect loop */
	uint64_t floor = base_ms / 10 + 1;
	uint64_t v = floor + (uint64_t)random() % (ceiling - floor + 1);
	return (unsigned)v;
}

amqp_connection_state_t baton_amqp_connect(const baton_amqp_params_t *p, const char *name,
					   char *err, size_t errlen)
{
	amqp_connection_state_t c = amqp_new_connection();
	amqp_socket_t *sock;
	struct timeval tv = {p->rpc_timeout_ms / 1000, (p->rpc_timeout_ms % 1000) * 1000};
	amqp_table_entry_t props[1];
	amqp_table_t client_props = {1, props};
	amqp_rpc_reply_t r;
	char why[256];
	int st;

	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	sock = amqp_tcp_socket_new(c);
	if (!sock) {
		snprintf(err, errlen, "cannot create socket");
		goto fail;
	}
	st = amqp_socket_open_noblock(sock, p->host, p->port, &tv);
	if (st != AMQP_STATUS_OK) {
		snprintf(err, errlen, "connect to %s:%d: %s", p->host, p->port,
			 amqp_error_string2(st));
		goto fail;
	}
	amqp_set_rpc_timeout(c, &tv);
	props[0].key = amqp_cstring_bytes("connection_name");
	props[0].value.kind = AMQP_FIELD_KIND_UTF8;
	props[0].value.value.bytes = amqp_cstring_bytes(name ? name : "baton");
	r = amqp_login_with_properties(c, p->vhost, 0, (int)p->frame_max, (int)p->heartbeat_s,
				       &client_props, AMQP_SASL_METHOD_PLAIN, p->user, p->pass);
	if (r.reply_type != AMQP_RESPONSE_NORMAL) {
		snprintf(err, errlen, "login to %s:%d vhost %s: %s", p->host, p->port, p->vhost,
			 baton_amqp_reply_str(r, why, sizeof(why)));
		goto fail;
	}
	amqp_channel_open(c, 1);
	r = amqp_get_rpc_reply(c);
	if (r.reply_type != AMQP_RESPONSE_NORMAL) {
		snprintf(err, errlen, "channel open: %s", baton_amqp_reply_str(r, why, sizeof(why)));
		goto fail;
	}
	return c;
fail:
	amqp_destroy_connection(c);
	return NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* the connection core shared by consumer and publisher                                     */

enum core_state { CORE_DOWN, CORE_CONNECTING, CORE_UP, CORE_CLOSING };

typedef struct core core_t;
struct core {
	uv_loop_t *loop;
	baton_amqp_params_t params;
	const char *name;
	enum core_state state;
	int closing;                   /* close requested: no more reconnects */
	amqp_connection_state_t conn;  /* loop thread only, while CORE_UP */
	uint64_t gen;
	unsigned attempt;
	uv_poll_t *poll;               /* per connection; freed in its close callback */
	uv_timer_t reconnect;
	uv_timer_t heartbeat;
	uv_work_t work;
	/* connect thread results */
	amqp_connection_state_t pending;
	char error[512];
	/* hooks */
	int (*setup)(core_t *k, amqp_connection_state_t conn, char *err, size_t len);
	void (*drain)(core_t *k);
	void (*went_up)(core_t *k);
	void (*went_down)(core_t *k, const char *why);
	void (*all_closed)(core_t *k);
	int handles_open;
};

static void core_connect(core_t *k);

/* The reconnect timer's callback: the timer's data is its core (the timer is not the core). */
static void core_on_reconnect(uv_timer_t *t)
{
	core_connect(t->data);
}

static void core_poll_closed(uv_handle_t *h)
{
	/* The fd is no longer watched: only now may the connection (and its socket) go. */
	amqp_connection_state_t conn = h->data;

	if (conn)
		amqp_destroy_connection(conn);
	free(h);
}

/* Drops the current connection without the close handshake (it may be dead) and schedules a
 * reconnect unless closing. */
static void core_lost(core_t *k, const char *why)
{
	if (k->state != CORE_UP)
		return;
	k->state = CORE_DOWN;
	uv_timer_stop(&k->heartbeat);
	k->poll->data = k->conn;
	uv_close((uv_handle_t *)k->poll, core_poll_closed);
	k->poll = NULL;
	k->conn = NULL;
	baton_log(k->closing ? BATON_LOG_INFO : BATON_LOG_WARN, NULL, "amqp.down",
		  "%s connection down: %s", k->name, why);
	k->went_down(k, why);
	if (!k->closing) {
		unsigned ms = baton_amqp_backoff_ms(k->attempt++, BACKOFF_BASE_MS, BACKOFF_CAP_MS);
		uv_timer_start(&k->reconnect, core_on_reconnect, ms, 0);
	} else if (k->all_closed) {
		k->all_closed(k);
	}
}

static void core_on_poll(uv_poll_t *h, int status, int events)
{
	core_t *k = h->data;

	if (status < 0) {
		core_lost(k, uv_strerror(status));
		return;
	}
	k->drain(k);
}

static void core_on_heartbeat(uv_timer_t *t)
{
	core_t *k = t->data;

	/* Draining services rabbitmq-c's heartbeat send and its missed-heartbeat detection even
	 * when no frame has arrived. */
	if (k->state == CORE_UP)
		k->drain(k);
}

static void core_work(uv_work_t *w)
{
	core_t *k = w->data;
	char err[400] = "";

	k->error[0] = '\0';
	k->pending = baton_amqp_connect(&k->params, k->name, err, sizeof(err));
	if (!k->pending) {
		snprintf(k->error, sizeof(k->error), "%s", err);
		return;
	}
	if (k->setup && k->setup(k, k->pending, err, sizeof(err)) != 0) {
		snprintf(k->error, sizeof(k->error), "%s", err);
		amqp_destroy_connection(k->pending);
		k->pending = NULL;
	}
}

static void core_after_work(uv_work_t *w, int status)
{
	core_t *k = w->data;
	amqp_connection_state_t conn = k->pending;

	k->pending = NULL;
	if (!conn || k->closing) {
		if (conn)
			amqp_destroy_connection(conn);
		k->state = CORE_DOWN;
		if (k->closing) {
			if (k->all_closed)
				k->all_closed(k);
			return;
		}
		baton_log(BATON_LOG_WARN, NULL, "amqp.connect_failed", "%s: %s", k->name,
			  k->error[0] ? k->error : "cancelled");
		unsigned ms = baton_amqp_backoff_ms(k->attempt++, BACKOFF_BASE_MS, BACKOFF_CAP_MS);
		uv_timer_start(&k->reconnect, core_on_reconnect, ms, 0);
		return;
	}
	k->poll = malloc(sizeof(*k->poll));
	if (!k->poll || uv_poll_init(k->loop, k->poll, amqp_get_sockfd(conn)) != 0) {
		free(k->poll);
		k->poll = NULL;
		amqp_destroy_connection(conn);
		k->state = CORE_DOWN;
		uv_timer_start(&k->reconnect, core_on_reconnect, BACKOFF_CAP_MS / 10, 0);
		return;
	}
	k->poll->data = k;
	k->conn = conn;
	k->gen++;
	k->attempt = 0;
	k->state = CORE_UP;
	uv_poll_start(k->poll, UV_READABLE | UV_DISCONNECT, core_on_poll);
	if (k->params.heartbeat_s) {
		uint64_t every = k->params.heartbeat_s * 1000 / 4;
		uv_timer_start(&k->heartbeat, core_on_heartbeat, every, every);
	}
	baton_log(BATON_LOG_INFO, NULL, "amqp.up", "%s connected to %s:%d (generation %llu)",
		  k->name, k->params.host, k->params.port, (unsigned long long)k->gen);
	k->went_up(k);
	k->drain(k); /* frames may already sit in rabbitmq-c's buffer: uv_poll would not see them */
}

static void core_connect(core_t *k)
{
	if (k->closing || k->state != CORE_DOWN)
		return;
	k->state = CORE_CONNECTING;
	k->work.data = k;
	if (uv_queue_work(k->loop, &k->work, core_work, core_after_work) != 0) {
		k->state = CORE_DOWN;
		uv_timer_start(&k->reconnect, core_on_reconnect, BACKOFF_CAP_MS / 10, 0);
	}
}

static void core_init(core_t *k, uv_loop_t *loop, const baton_amqp_params_t *p, const char *name)
{
	memset(k, 0, sizeof(*k));
	k->loop = loop;
	k->params = *p;
	k->name = name;
	uv_timer_init(loop, &k->reconnect);
	uv_timer_init(loop, &k->heartbeat);
	k->reconnect.data = k;
	k->heartbeat.data = k;
	k->handles_open = 2;
}

static void core_timer_closed(uv_handle_t *h)
{
	core_t *k = h->data;

	if (--k->handles_open == 0 && k->all_closed)
		k->all_closed(k);
}

/* Stops for good: destroys the connection, closes the timers. all_closed runs when done (and
 * after any connect still running on a worker thread has returned). */
static void core_close(core_t *k)
{
	k->closing = 1;
	uv_timer_stop(&k->reconnect);
	if (k->state == CORE_UP)
		core_lost(k, "closing");
	if (!uv_is_closing((uv_handle_t *)&k->reconnect)) {
		uv_close((uv_handle_t *)&k->reconnect, core_timer_closed);
		uv_close((uv_handle_t *)&k->heartbeat, core_timer_closed);
	}
}

/* Sends on the current connection; a failed write means the connection is gone. */
static int core_check(core_t *k, int st, const char *what)
{
	char why[256];

	if (st == AMQP_STATUS_OK)
		return 0;
	snprintf(why, sizeof(why), "%s failed: %s", what, amqp_error_string2(st));
	core_lost(k, why);
	return -1;
}

/* Handles a non-content frame that arrived on a connection. Returns -1 if the connection is
 * finished (broker closed channel or connection). */
static int core_control_frame(core_t *k, const amqp_frame_t *f)
{
	char why[300];

	if (f->frame_type != AMQP_FRAME_METHOD)
		return 0;
	switch (f->payload.method.id) {
	case AMQP_CHANNEL_CLOSE_METHOD: {
		amqp_channel_close_t *m = f->payload.method.decoded;
		snprintf(why, sizeof(why), "broker closed the channel: %u %.*s", m->reply_code,
			 (int)m->reply_text.len, (char *)m->reply_text.bytes);
		amqp_channel_close_ok_t ok = {0};
		amqp_send_method(k->conn, f->channel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
		core_lost(k, why);
		return -1;
	}
	case AMQP_CONNECTION_CLOSE_METHOD: {
		amqp_connection_close_t *m = f->payload.method.decoded;
		snprintf(why, sizeof(why), "broker closed the connection: %u %.*s", m->reply_code,
			 (int)m->reply_text.len, (char *)m->reply_text.bytes);
		amqp_connection_close_ok_t ok = {0};
		amqp_send_method(k->conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
		core_lost(k, why);
		return -1;
	}
	case AMQP_BASIC_CANCEL_METHOD:
		core_lost(k, "the broker cancelled the consumer (queue deleted or node down)");
		return -1;
	default:
		return 0;
	}
}

/* ---------------------------------------------------------------------------------------- */
/* consumer                                                                                 */

struct baton_consumer {
	core_t core; /* first: core_t* <-> baton_consumer_t* */
	baton_consumer_opts_t o;
	int paused;
	void (*done)(void *);
	void *done_ud;
};

void baton_delivery_free(baton_delivery_t *d)
{
	if (!d)
		return;
	amqp_destroy_envelope(&d->env);
	free(d);
}

static int consumer_setup(core_t *k, amqp_connection_state_t conn, char *err, size_t len)
{
	baton_consumer_t *c = (baton_consumer_t *)k;
	return c->o.setup ? c->o.setup(conn, c->o.ud, err, len) : 0;
}

static void consumer_drain(core_t *k)
{
	baton_consumer_t *c = (baton_consumer_t *)k;
	struct timeval zero = {0, 0};
	char why[256];

	while (k->state == CORE_UP) {
		baton_delivery_t *d = calloc(1, sizeof(*d));
		amqp_rpc_reply_t r;

		if (!d)
			return;
		amqp_maybe_release_buffers(k->conn);
		r = amqp_consume_message(k->conn, &d->env, &zero, 0);
		if (r.reply_type == AMQP_RESPONSE_NORMAL) {
			d->gen = k->gen;
			c->o.deliver(c, d, c->o.ud); /* d now belongs to the flow */
			continue;
		}
		free(d);
		if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
		    r.library_error == AMQP_STATUS_TIMEOUT)
			return; /* buffer and socket empty */
		if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
		    r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
			amqp_frame_t f;
			int st = amqp_simple_wait_frame_noblock(k->conn, &f, &zero);
			if (st == AMQP_STATUS_TIMEOUT)
				return;
			if (st != AMQP_STATUS_OK) {
				core_lost(k, amqp_error_string2(st));
				return;
			}
			if (core_control_frame(k, &f) != 0)
				return;
			continue;
		}
		core_lost(k, baton_amqp_reply_str(r, why, sizeof(why)));
		return;
	}
}

static void consumer_up(core_t *k)
{
	baton_consumer_t *c = (baton_consumer_t *)k;
	if (c->o.on_state)
		c->o.on_state(1, k->gen, "", c->o.ud);
}

static void consumer_down(core_t *k, const char *why)
{
	baton_consumer_t *c = (baton_consumer_t *)k;
	if (c->o.on_state)
		c->o.on_state(0, k->gen, why, c->o.ud);
}

static void consumer_closed(core_t *k)
{
	baton_consumer_t *c = (baton_consumer_t *)k;

	if (k->handles_open || k->state == CORE_CONNECTING || k->state == CORE_UP)
		return;
	if (c->done)
		c->done(c->done_ud);
	free(c);
}

baton_consumer_t *baton_consumer_new(uv_loop_t *loop, const baton_consumer_opts_t *o)
{
	baton_consumer_t *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	core_init(&c->core, loop, &o->params, "consumer");
	c->o = *o;
	c->core.setup = consumer_setup;
	c->core.drain = consumer_drain;
	c->core.went_up = consumer_up;
	c->core.went_down = consumer_down;
	return c;
}

void baton_consumer_start(baton_consumer_t *c)
{
	core_connect(&c->core);
}

int baton_consumer_is_up(const baton_consumer_t *c)
{
	return c->core.state == CORE_UP;
}

uint64_t baton_consumer_gen(const baton_consumer_t *c)
{
	return c->core.gen;
}

int baton_consumer_ack(baton_consumer_t *c, uint64_t gen, uint64_t tag)
{
	core_t *k = &c->core;

	if (k->state != CORE_UP || gen != k->gen)
		return -1;
	return core_check(k, amqp_basic_ack(k->conn, 1, tag, 0), "basic.ack");
}

int baton_consumer_nack(baton_consumer_t *c, uint64_t gen, uint64_t tag, int requeue)
{
	core_t *k = &c->core;

	if (k->state != CORE_UP || gen != k->gen)
		return -1;
	return core_check(k, amqp_basic_nack(k->conn, 1, tag, 0, requeue), "basic.nack");
}

void baton_consumer_pause(baton_consumer_t *c)
{
	core_t *k = &c->core;

	c->paused = 1;
	k->closing = 1; /* no reconnect: in-flight work finishes or is redelivered elsewhere */
	uv_timer_stop(&k->reconnect);
	if (k->state == CORE_UP) {
		/* Cancels the consumer tag "baton" that setup used; an error only means the
		 * connection is already gone. */
		amqp_basic_cancel_t m = {.consumer_tag = amqp_cstring_bytes("baton")};
		core_check(k, amqp_send_method(k->conn, 1, AMQP_BASIC_CANCEL_METHOD, &m),
			   "basic.cancel");
	}
}

void baton_consumer_close(baton_consumer_t *c, void (*done)(void *), void *ud)
{
	c->done = done;
	c->done_ud = ud;
	c->core.all_closed = consumer_closed;
	core_close(&c->core);
}

/* ---------------------------------------------------------------------------------------- */
/* publisher                                                                                */

typedef struct pending_pub {
	uint64_t seq;
	int returned;
	baton_publish_cb cb;
	void *ud;
	struct pending_pub *next;
} pending_pub_t;

struct baton_publisher {
	core_t core;
	baton_conn_state_fn on_state;
	void *ud;
	uint64_t next_seq;      /* confirm delivery tag of the next publish on this connection */
	pending_pub_t *head, *tail; /* ascending seq */
	size_t n_pending;
	void (*done)(void *);
	void *done_ud;
};

static int publisher_setup(core_t *k, amqp_connection_state_t conn, char *err, size_t len)
{
	char why[256];

	amqp_confirm_select(conn, 1);
	amqp_rpc_reply_t r = amqp_get_rpc_reply(conn);
	if (r.reply_type != AMQP_RESPONSE_NORMAL) {
		snprintf(err, len, "confirm.select: %s", baton_amqp_reply_str(r, why, sizeof(why)));
		return -1;
	}
	return 0;
}

/* Completes every pending publish with seq <= upto (or only seq == upto). */
static void publisher_complete(baton_publisher_t *p, uint64_t upto, int multiple, int ok,
			       const char *why)
{
	pending_pub_t **pp = &p->head, *prev = NULL;

	while (*pp) {
		pending_pub_t *e = *pp;
		if (e->seq > upto)
			break;
		if (!multiple && e->seq != upto) {
			prev = e;
			pp = &e->next;
			continue;
		}
		*pp = e->next;
		if (p->tail == e)
			p->tail = prev;
		p->n_pending--;
		if (ok && e->returned)
			e->cb(0, "unroutable: the broker returned the message (no queue bound)", e->ud);
		else
			e->cb(ok, ok ? "" : why, e->ud);
		free(e);
	}
}

static void publisher_fail_all(baton_publisher_t *p, const char *why)
{
	publisher_complete(p, UINT64_MAX, 1, 0, why);
}

static void publisher_returned(baton_publisher_t *p, amqp_connection_state_t conn)
{
	amqp_message_t msg;
	amqp_rpc_reply_t r = amqp_read_message(conn, 1, &msg, 0);

	if (r.reply_type != AMQP_RESPONSE_NORMAL)
		return; /* connection trouble shows up on the next read */
	if (msg.properties._flags & AMQP_BASIC_HEADERS_FLAG) {
		amqp_table_t *t = &msg.properties.headers;
		for (int i = 0; i < t->num_entries; i++) {
			amqp_table_entry_t *e = &t->entries[i];
			if (e->key.len == strlen(PUBLISH_SEQ_HEADER) &&
			    !memcmp(e->key.bytes, PUBLISH_SEQ_HEADER, e->key.len) &&
			    e->value.kind == AMQP_FIELD_KIND_U64) {
				for (pending_pub_t *q = p->head; q; q = q->next)
					if (q->seq == e->value.value.u64)
						q->returned = 1;
			}
		}
	}
	amqp_destroy_message(&msg);
}

static void publisher_drain(core_t *k)
{
	baton_publisher_t *p = (baton_publisher_t *)k;
	struct timeval zero = {0, 0};

	while (k->state == CORE_UP) {
		amqp_frame_t f;
		amqp_maybe_release_buffers(k->conn);
		int st = amqp_simple_wait_frame_noblock(k->conn, &f, &zero);
		if (st == AMQP_STATUS_TIMEOUT)
			return;
		if (st != AMQP_STATUS_OK) {
			core_lost(k, amqp_error_string2(st));
			return;
		}
		if (f.frame_type != AMQP_FRAME_METHOD)
			continue;
		switch (f.payload.method.id) {
		case AMQP_BASIC_ACK_METHOD: {
			amqp_basic_ack_t *a = f.payload.method.decoded;
			publisher_complete(p, a->delivery_tag, a->multiple, 1, "");
			break;
		}
		case AMQP_BASIC_NACK_METHOD: {
			amqp_basic_nack_t *n = f.payload.method.decoded;
			publisher_complete(p, n->delivery_tag, n->multiple, 0,
					   "the broker refused the message (basic.nack)");
			break;
		}
		case AMQP_BASIC_RETURN_METHOD:
			publisher_returned(p, k->conn);
			break;
		default:
			if (core_control_frame(k, &f) != 0)
				return;
		}
	}
}

static void publisher_up(core_t *k)
{
	baton_publisher_t *p = (baton_publisher_t *)k;
	p->next_seq = 1;
	if (p->on_state)
		p->on_state(1, k->gen, "", p->ud);
}

static void publisher_down(core_t *k, const char *why)
{
	baton_publisher_t *p = (baton_publisher_t *)k;
	char msg[400];

	snprintf(msg, sizeof(msg), "publisher connection lost before the confirm: %s", why);
	publisher_fail_all(p, msg);
	if (p->on_state)
		p->on_state(0, k->gen, why, p->ud);
}

static void publisher_closed(core_t *k)
{
	baton_publisher_t *p = (baton_publisher_t *)k;

	if (k->handles_open || k->state == CORE_CONNECTING || k->state == CORE_UP)
		return;
	if (p->done)
		p->done(p->done_ud);
	free(p);
}

baton_publisher_t *baton_publisher_new(uv_loop_t *loop, const baton_amqp_params_t *params,
				       baton_conn_state_fn on_state, void *ud)
{
	baton_publisher_t *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	core_init(&p->core, loop, params, "publisher");
	p->on_state = on_state;
	p->ud = ud;
	p->core.setup = publisher_setup;
	p->core.drain = publisher_drain;
	p->core.went_up = publisher_up;
	p->core.went_down = publisher_down;
	return p;
}

void baton_publisher_start(baton_publisher_t *p)
{
	core_connect(&p->core);
}

int baton_publisher_is_up(const baton_publisher_t *p)
{
	return p->core.state == CORE_UP;
}

size_t baton_publisher_pending(const baton_publisher_t *p)
{
	return p->n_pending;
}

/* Copies props and appends our sequence header so a basic.return can be matched. */
static int publisher_send(baton_publisher_t *p, const char *exchange, const char *rk,
			  const amqp_basic_properties_t *props, amqp_bytes_t body, uint64_t seq,
			  int mandatory)
{
	amqp_basic_properties_t pr = *props;
	int n = (props->_flags & AMQP_BASIC_HEADERS_FLAG) ? props->headers.num_entries : 0;
	amqp_table_entry_t *entries = calloc((size_t)n + 1, sizeof(*entries));
	int st;

	if (!entries)
		return AMQP_STATUS_NO_MEMORY;
	if (n)
		memcpy(entries, props->headers.entries, (size_t)n * sizeof(*entries));
	entries[n].key = amqp_cstring_bytes(PUBLISH_SEQ_HEADER);
	entries[n].value.kind = AMQP_FIELD_KIND_U64;
	entries[n].value.value.u64 = seq;
	pr._flags |= AMQP_BASIC_HEADERS_FLAG;
	pr.headers.num_entries = n + 1;
	pr.headers.entries = entries;
	st = amqp_basic_publish(p->core.conn, 1, amqp_cstring_bytes(exchange),
				amqp_cstring_bytes(rk), mandatory ? 1 : 0, 0, &pr, body);
	free(entries);
	return st;
}

int baton_publisher_publish(baton_publisher_t *p, const char *exchange, const char *routing_key,
			    const amqp_basic_properties_t *props, amqp_bytes_t body, int mandatory,
			    baton_publish_cb cb, void *ud)
{
	pending_pub_t *e;

	if (p->core.state != CORE_UP)
		return -1;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -1;
	e->seq = p->next_seq;
	e->cb = cb;
	e->ud = ud;
	if (core_check(&p->core, publisher_send(p, exchange, routing_key, props, body, e->seq, mandatory),
		       "basic.publish") != 0) {
		free(e);
		return -1;
	}
	p->next_seq++;
	if (p->tail)
		p->tail->next = e;
	else
		p->head = e;
	p->tail = e;
	p->n_pending++;
	return 0;
}

void baton_publisher_close(baton_publisher_t *p, void (*done)(void *), void *ud)
{
	p->done = done;
	p->done_ud = ud;
	p->core.all_closed = publisher_closed;
	core_close(&p->core);
}
