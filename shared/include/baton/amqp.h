/* baton/amqp.h — RabbitMQ connections driven by a libuv loop (rabbitmq-c 0.11).
 *
 * Two kinds of connection, each owned by the loop thread once connected:
 *   - a consumer (manual acks, prefetch) that hands every delivery to a callback;
 *   - a publisher with publisher confirms, whose callbacks run when the broker confirms.
 * Connecting (TCP, login, the caller's setup such as topology declaration) is blocking in
 * rabbitmq-c, so it runs on a libuv worker thread; the connection is handed to the loop thread
 * only when it is ready. Lost connections are destroyed (never closed politely) and re-made with
 * exponential back-off and full jitter. Every connection has a generation number: a delivery
 * tag is only ever acked on the connection generation it came from. */
#ifndef BATON_AMQP_H
#define BATON_AMQP_H

#include <amqp.h>
#include <stdint.h>
#include <uv.h>

typedef struct baton_amqp_params {
	char host[256];
	int port;
	char user[128];
	char pass[256];
	char vhost[256];
	unsigned heartbeat_s;  /* 0 disables */
	unsigned rpc_timeout_ms;
	unsigned frame_max;
} baton_amqp_params_t;

/* Parses amqp://user:pass@host:port/vhost. 0, or -1 with a sentence in err. */
int baton_amqp_parse_url(const char *url, baton_amqp_params_t *p, char *err, size_t errlen);

/* Blocking: socket, login, channel 1, RPC timeout. Returns NULL with err on failure. For worker
 * threads and tools; never call it on a loop thread. */
amqp_connection_state_t baton_amqp_connect(const baton_amqp_params_t *p, const char *name,
					   char *err, size_t errlen);

/* Describes an RPC reply as a sentence ("" for success). Returns buf. */
const char *baton_amqp_reply_str(amqp_rpc_reply_t r, char *buf, size_t len);

/* Back-off for reconnect attempt n (0-based): full jitter over min(cap, base * 2^n). */
unsigned baton_amqp_backoff_ms(unsigned attempt, unsigned base_ms, unsigned cap_ms);

/* --- consumer ------------------------------------------------------------------------------ */

typedef struct baton_consumer baton_consumer_t;

/* One delivery. Owned by the receiver of the deliver callback; release with baton_delivery_free. */
typedef struct baton_delivery {
	uint64_t gen;          /* connection generation the tag belongs to */
	amqp_envelope_t env;   /* body, properties, delivery tag, exchange, routing key */
} baton_delivery_t;

void baton_delivery_free(baton_delivery_t *d);

/* Runs on the connect thread right after login: declare topology, set qos, start consuming.
 * Returns 0 or -1 with err. */
typedef int (*baton_consumer_setup_fn)(amqp_connection_state_t conn, void *ud, char *err,
				       size_t errlen);
typedef void (*baton_consumer_deliver_fn)(baton_consumer_t *c, baton_delivery_t *d, void *ud);
/* Called on the loop thread when the connection comes up (up=1) or is lost (up=0). */
typedef void (*baton_conn_state_fn)(int up, uint64_t gen, const char *why, void *ud);

typedef struct baton_consumer_opts {
	baton_amqp_params_t params;
	baton_consumer_setup_fn setup;
	baton_consumer_deliver_fn deliver;
	baton_conn_state_fn on_state;
	void *ud;
} baton_consumer_opts_t;

baton_consumer_t *baton_consumer_new(uv_loop_t *loop, const baton_consumer_opts_t *o);
void baton_consumer_start(baton_consumer_t *c);
/* Ack / nack on the current connection. Returns -1 without sending when gen is not the current
 * generation (the broker has already re-queued that delivery) or the connection is down. */
int baton_consumer_ack(baton_consumer_t *c, uint64_t gen, uint64_t tag);
int baton_consumer_nack(baton_consumer_t *c, uint64_t gen, uint64_t tag, int requeue);
int baton_consumer_is_up(const baton_consumer_t *c);
uint64_t baton_consumer_gen(const baton_consumer_t *c);
/* Stops taking new deliveries (basic.cancel on the current connection, no reconnects). */
void baton_consumer_pause(baton_consumer_t *c);
/* Destroys the connection (unacked deliveries go back to the queue) and frees c once every
 * handle is closed; done(ud) runs then. */
void baton_consumer_close(baton_consumer_t *c, void (*done)(void *), void *ud);

/* --- publisher ----------------------------------------------------------------------------- */

typedef struct baton_publisher baton_publisher_t;

/* ok=1 when the broker confirmed (basic.ack) and did not return the message; ok=0 with a
 * reason otherwise (nack, returned as unroutable, connection lost before the confirm). */
typedef void (*baton_publish_cb)(int ok, const char *why, void *ud);

baton_publisher_t *baton_publisher_new(uv_loop_t *loop, const baton_amqp_params_t *p,
				       baton_conn_state_fn on_state, void *ud);
void baton_publisher_start(baton_publisher_t *p);
int baton_publisher_is_up(const baton_publisher_t *p);
/* Publishes and waits for the broker's confirm. mandatory=1 makes an unroutable message a
 * failure (retry and dead-letter forwarding: their queues must exist); mandatory=0 is for events
 * other systems may or may not subscribe to (baton.<entity>.<event>), where no subscriber is not
 * an error. Returns 0 and later calls cb exactly once, or -1 (cb not called) when the publisher
 * is not connected or the write failed. */
int baton_publisher_publish(baton_publisher_t *p, const char *exchange, const char *routing_key,
			    const amqp_basic_properties_t *props, amqp_bytes_t body, int mandatory,
			    baton_publish_cb cb, void *ud);
size_t baton_publisher_pending(const baton_publisher_t *p);
void baton_publisher_close(baton_publisher_t *p, void (*done)(void *), void *ud);

#endif
