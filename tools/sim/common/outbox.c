/* outbox.c — events the simulators emit: kept for GET /_sim/events and, when an AMQP URL is given,
 * published to the events exchange by one dedicated thread with its own rabbitmq-c connection
 * (persistent, publisher confirms). An event stays pending until the broker confirms it; a lost
 * connection is re-opened with back-off and the unconfirmed batch is published again. */
#include "sim.h"

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

enum ev_state { EV_KEPT, EV_PENDING, EV_PUBLISHED };

typedef struct sim_event {
	char *id, *type, *body;
	enum ev_state state;
	int refs;              /* ring + publisher queue; under the outbox lock */
	struct sim_event *next; /* publisher queue link */
} sim_event_t;

#define RING_CAP 20000
#define BATCH_MAX 256

struct sim_outbox {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thread;
	bool has_thread, stop;
	char *url, *app_id, *exchange;
	sim_event_t *ring[RING_CAP];
	size_t ring_head, ring_len;
	sim_event_t *qhead, *qtail;
	size_t queued;
	uint64_t emitted, published, republished;
	char last_error[256];
	bool connected;
	uint64_t tag; /* last delivery tag of the publisher's connection (publisher thread only) */
};

static void ev_unref(sim_event_t *e)
{
	if (--e->refs > 0)
		return;
	free(e->id);
	free(e->type);
	free(e->body);
	free(e);
}

static void set_error(sim_outbox_t *o, const char *what)
{
	pthread_mutex_lock(&o->lock);
	snprintf(o->last_error, sizeof(o->last_error), "%s", what);
	o->connected = false;
	pthread_mutex_unlock(&o->lock);
	fprintf(stderr, "%s: amqp: %s\n", o->app_id, what);
}

static bool rpc_ok(amqp_connection_state_t c)
{
	return amqp_get_rpc_reply(c).reply_type == AMQP_RESPONSE_NORMAL;
}

/* Answers the broker's channel.close so that the channel number can be used again. */
static void close_ok(amqp_connection_state_t c, amqp_channel_t ch)
{
	amqp_rpc_reply_t r = amqp_get_rpc_reply(c);
	amqp_channel_close_ok_t ok = {0};

	if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
	    r.reply.id == AMQP_CHANNEL_CLOSE_METHOD)
		amqp_send_method(c, ch, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
}

int sim_amqp_declare_exchange(amqp_connection_state_t c, const char *exchange)
{
	amqp_channel_open(c, 2);
	if (!rpc_ok(c))
		return -1;
	/* Passive first (never fight an existing declaration), create when missing. */
	amqp_exchange_declare(c, 2, amqp_cstring_bytes(exchange), amqp_cstring_bytes("topic"), 1,
			      1, 0, 0, amqp_empty_table);
	if (!rpc_ok(c)) {
		close_ok(c, 2);
		amqp_channel_open(c, 2);
		if (!rpc_ok(c))
			return -1;
		amqp_exchange_declare(c, 2, amqp_cstring_bytes(exchange),
				      amqp_cstring_bytes("topic"), 0, 1, 0, 0, amqp_empty_table);
		if (!rpc_ok(c)) {
			close_ok(c, 2);
			return -1;
		}
	}
	amqp_channel_close(c, 2, AMQP_REPLY_SUCCESS);
	return rpc_ok(c) ? 0 : -1;
}

static amqp_connection_state_t amqp_open(sim_outbox_t *o)
{
	struct amqp_connection_info ci;
	char *url = strdup(o->url);
	amqp_connection_state_t c = amqp_new_connection();
	amqp_socket_t *sock = amqp_tcp_socket_new(c);
	struct timeval tv = {5, 0};
	const char *why = "bad URL";

	if (!url || amqp_parse_url(url, &ci) != AMQP_STATUS_OK)
		goto fail;
	why = "connect failed";
	if (!sock || amqp_socket_open_noblock(sock, ci.host, ci.port, &tv) != AMQP_STATUS_OK)
		goto fail;
	why = "login failed";
	if (amqp_login(c, ci.vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, ci.user, ci.password)
		    .reply_type != AMQP_RESPONSE_NORMAL)
		goto fail;
	why = "channel open failed";
	amqp_channel_open(c, 1);
	if (!rpc_ok(c))
		goto fail;
	why = "exchange declare failed";
	if (sim_amqp_declare_exchange(c, o->exchange) != 0)
		goto fail;
	why = "confirm.select failed";
	amqp_confirm_select(c, 1);
	if (!rpc_ok(c))
		goto fail;
	free(url);
	pthread_mutex_lock(&o->lock);
	o->connected = true;
	o->last_error[0] = '\0';
	pthread_mutex_unlock(&o->lock);
	return c;
fail:
	set_error(o, why);
	amqp_destroy_connection(c);
	free(url);
	return NULL;
}

/* Publishes batch[0..n) and waits for every confirm. Returns the number confirmed from the start
 * of the batch (all of them on success); a nack or error stops there. */
static size_t publish_batch(sim_outbox_t *o, amqp_connection_state_t c, sim_event_t **batch,
			    size_t n)
{
	uint64_t base, acked = 0;
	amqp_basic_properties_t p;

	for (size_t i = 0; i < n; i++) {
		memset(&p, 0, sizeof(p));
		p._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG |
			   AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_TYPE_FLAG |
			   AMQP_BASIC_APP_ID_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG;
		p.delivery_mode = AMQP_DELIVERY_PERSISTENT;
		p.content_type = amqp_cstring_bytes("application/json");
		p.message_id = amqp_cstring_bytes(batch[i]->id);
		p.correlation_id = amqp_cstring_bytes(batch[i]->id);
		p.type = amqp_cstring_bytes(batch[i]->type);
		p.app_id = amqp_cstring_bytes(o->app_id);
		if (amqp_basic_publish(c, 1, amqp_cstring_bytes(o->exchange),
				       amqp_cstring_bytes(batch[i]->type), 0, 0, &p,
				       amqp_cstring_bytes(batch[i]->body)) != AMQP_STATUS_OK) {
			set_error(o, "publish failed");
			return 0;
		}
	}
	/* Delivery tags restart at 1 on every connection (the caller zeroes o->tag). */
	base = o->tag;
	o->tag += n;
	while (acked < n) {
		amqp_frame_t f;
		struct timeval tv = {10, 0};
		if (amqp_simple_wait_frame_noblock(c, &f, &tv) != AMQP_STATUS_OK) {
			set_error(o, "no confirm from the broker");
			return 0;
		}
		if (f.frame_type != AMQP_FRAME_METHOD)
			continue;
		if (f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
			amqp_basic_ack_t *a = f.payload.method.decoded;
			uint64_t upto = a->delivery_tag - base;
			if (a->multiple || upto == acked + 1)
				acked = upto > acked ? upto : acked;
			else
				acked++; /* out-of-order single ack: count it */
		} else if (f.payload.method.id == AMQP_BASIC_NACK_METHOD) {
			set_error(o, "broker nacked a publish");
			return 0;
		} else if (f.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD ||
			   f.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD) {
			set_error(o, "broker closed the channel");
			return 0;
		}
	}
	return n;
}

static void *publisher(void *arg)
{
	sim_outbox_t *o = arg;
	amqp_connection_state_t c = NULL;
	sim_event_t *batch[BATCH_MAX];
	double backoff = 0.1;

	for (;;) {
		size_t n = 0, done;

		pthread_mutex_lock(&o->lock);
		while (!o->qhead && !o->stop)
			pthread_cond_wait(&o->cond, &o->lock);
		if (o->stop) {
			pthread_mutex_unlock(&o->lock);
			break;
		}
		for (sim_event_t *e = o->qhead; e && n < BATCH_MAX; e = e->next)
			batch[n++] = e;
		pthread_mutex_unlock(&o->lock);

		if (!c) {
			c = amqp_open(o);
			o->tag = 0;
			if (!c) {
				bool stop;
				usleep((useconds_t)(backoff * 1e6));
				backoff = backoff * 2 > 2 ? 2 : backoff * 2;
				pthread_mutex_lock(&o->lock);
				stop = o->stop;
				pthread_mutex_unlock(&o->lock);
				if (stop)
					break;
				continue;
			}
			backoff = 0.1;
		}
		done = publish_batch(o, c, batch, n);
		if (done < n) {
			amqp_destroy_connection(c);
			c = NULL;
			pthread_mutex_lock(&o->lock);
			o->republished += n;
			pthread_mutex_unlock(&o->lock);
			continue;
		}
		pthread_mutex_lock(&o->lock);
		for (size_t i = 0; i < n; i++) {
			sim_event_t *e = o->qhead;
			o->qhead = e->next;
			e->state = EV_PUBLISHED;
			o->queued--;
			o->published++;
			ev_unref(e);
		}
		if (!o->qhead)
			o->qtail = NULL;
		pthread_cond_broadcast(&o->cond);
		pthread_mutex_unlock(&o->lock);
	}
	/* Stopping: whatever is still queued is dropped, the simulator is going away. */
	pthread_mutex_lock(&o->lock);
	while (o->qhead) {
		sim_event_t *e = o->qhead;
		o->qhead = e->next;
		ev_unref(e);
	}
	o->qtail = NULL;
	o->queued = 0;
	pthread_mutex_unlock(&o->lock);
	if (c) {
		amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
		amqp_connection_close(c, AMQP_REPLY_SUCCESS);
		amqp_destroy_connection(c);
	}
	return NULL;
}

sim_outbox_t *sim_outbox_new(const char *amqp_url, const char *app_id, const char *exchange)
{
	sim_outbox_t *o = calloc(1, sizeof(*o));

	if (!o)
		return NULL;
	pthread_mutex_init(&o->lock, NULL);
	pthread_cond_init(&o->cond, NULL);
	o->app_id = strdup(app_id);
	o->exchange = strdup(exchange);
	if (amqp_url && *amqp_url) {
		o->url = strdup(amqp_url);
		if (pthread_create(&o->thread, NULL, publisher, o) == 0)
			o->has_thread = true;
	}
	return o;
}

void sim_outbox_emit(sim_outbox_t *o, const json_t *event)
{
	sim_event_t *e = calloc(1, sizeof(*e));

	if (!e)
		return;
	e->id = strdup(json_string_value(json_object_get(event, "id")));
	e->type = strdup(json_string_value(json_object_get(event, "type")));
	e->body = json_dumps(event, JSON_COMPACT);
	e->state = o->has_thread ? EV_PENDING : EV_KEPT;
	pthread_mutex_lock(&o->lock);
	o->emitted++;
	e->refs = 1;
	if (o->ring_len == RING_CAP) {
		ev_unref(o->ring[o->ring_head]);
		o->ring_head = (o->ring_head + 1) % RING_CAP;
		o->ring_len--;
	}
	o->ring[(o->ring_head + o->ring_len++) % RING_CAP] = e;
	if (o->has_thread) {
		e->refs++;
		if (o->qtail)
			o->qtail->next = e;
		else
			o->qhead = e;
		o->qtail = e;
		o->queued++;
		pthread_cond_broadcast(&o->cond);
	}
	pthread_mutex_unlock(&o->lock);
}

json_t *sim_outbox_json(sim_outbox_t *o, size_t limit)
{
	static const char *const names[] = {"kept", "pending", "published"};
	json_t *evs = json_array(), *out;
	size_t from;

	pthread_mutex_lock(&o->lock);
	from = limit && o->ring_len > limit ? o->ring_len - limit : 0;
	for (size_t i = from; i < o->ring_len; i++) {
		sim_event_t *e = o->ring[(o->ring_head + i) % RING_CAP];
		json_t *ev = json_loads(e->body, 0, NULL);
		json_array_append_new(evs, json_pack("{s:s, s:o}", "state", names[e->state],
						     "event", ev ? ev : json_null()));
	}
	out = json_pack("{s:b, s:b, s:s, s:I, s:I, s:I, s:I, s:o}", "amqp", o->has_thread,
			"connected", o->connected, "last_error", o->last_error, "emitted",
			(json_int_t)o->emitted, "published", (json_int_t)o->published, "pending",
			(json_int_t)o->queued, "retried", (json_int_t)o->republished, "events", evs);
	pthread_mutex_unlock(&o->lock);
	return out;
}

void sim_outbox_reset(sim_outbox_t *o)
{
	pthread_mutex_lock(&o->lock);
	while (o->ring_len) {
		ev_unref(o->ring[o->ring_head]);
		o->ring_head = (o->ring_head + 1) % RING_CAP;
		o->ring_len--;
	}
	o->ring_head = 0;
	o->emitted = o->published = o->republished = 0;
	pthread_mutex_unlock(&o->lock);
}

void sim_outbox_free(sim_outbox_t *o, double flush_s)
{
	if (!o)
		return;
	if (o->has_thread) {
		double until = sim_now() + flush_s;
		pthread_mutex_lock(&o->lock);
		while (o->qhead && sim_now() < until) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 100 * 1000 * 1000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&o->cond, &o->lock, &ts);
		}
		o->stop = true;
		pthread_cond_broadcast(&o->cond);
		pthread_mutex_unlock(&o->lock);
		pthread_join(o->thread, NULL);
	}
	sim_outbox_reset(o);
	free(o->url);
	free(o->app_id);
	free(o->exchange);
	pthread_mutex_destroy(&o->lock);
	pthread_cond_destroy(&o->cond);
	free(o);
}
