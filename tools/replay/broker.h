/* broker.h — baton-replay's side of RabbitMQ: blocking rabbitmq-c, one connection.
 *
 * Reading without taking: a parking queue is consumed with manual acks (consumer after
 * consumer, 1000 messages each, as quorum queues cap a consumer's prefetch), up to the number of messages it held when the command started (a passive declare gives it),
 * so the set is fixed then. Every delivery stays unacked (invisible to any other operator)
 * until this command acts on it; whatever it does not act on goes back to the queue, headers
 * intact, when its channel closes (or the process dies: the broker requeues the unacked
 * deliveries of a dead connection). An action is: publish the copy with publisher confirms and
 * the mandatory flag, and only once the broker confirmed it (and did not return it as
 * unroutable), ack the parked copy. */
#ifndef RP_BROKER_H
#define RP_BROKER_H

#include <amqp.h>
#include <stddef.h>
#include <stdint.h>

#include "item.h"

typedef struct rp_msg {
	rp_item_t it;
	amqp_envelope_t env;   /* the delivery (message, channel, delivery tag) */
	int acked;             /* 1 once the parked copy is acked */
	int outcome;           /* 0 pending, 1 done, -1 failed */
	char why[256];         /* failure reason */
	uint64_t seq;          /* publisher confirm sequence number */
	int returned;
} rp_msg_t;

typedef struct rp_broker {
	amqp_connection_state_t c;
	char host[256];
	int port;
	char vhost[256];
	amqp_channel_t next_ch; /* next consume channel (2 is the publish channel) */
	int confirm_on;
	uint64_t pub_seq;
	unsigned idle_ms;       /* scan ends when no delivery came for this long */
	amqp_channel_t consume_chs[4096]; /* consume channels still open */
	size_t n_consume;
} rp_broker_t;

#define RP_PUB_CH 2

/* Connects (heartbeats off: a confirmation prompt may wait for a human; a killed process
 * closes its socket anyway). 0, or -1 with a sentence (no credentials) in err. */
int rp_broker_open(rp_broker_t *b, const char *url, char *err, size_t errlen);
/* Closes politely: every unacked delivery goes back to its queue. */
void rp_broker_close(rp_broker_t *b);

/* Passive declare: 0 and the number of ready messages; 1 when the queue does not exist; -1
 * with err on a broker failure. */
int rp_broker_count(rp_broker_t *b, const char *queue, uint32_t *n, char *err, size_t errlen);

/* What rp_broker_scan's visitor wants done with a delivery. */
#define RP_KEEP 1 /* the caller owns the rp_msg_t (and must free it with rp_msg_free) */
#define RP_STOP 2 /* stop the scan after this one */

typedef int (*rp_visit_fn)(rp_msg_t *m, void *ud);

/* Consumes up to max messages of queue (flow's parking queue) on a channel of its own and
 * hands each to visit; a message not kept is forgotten here but stays unacked (it goes back
 * when the channel closes). 0, or -1 with err. */
int rp_broker_scan(rp_broker_t *b, const char *queue, const char *flow, uint32_t max,
		   rp_visit_fn visit, void *ud, char *err, size_t errlen);

void rp_msg_free(rp_msg_t *m);

/* Publishes msgs[i] (headers hdrs[i]) to exchange with routing key = its flow, mandatory,
 * persistent, then waits for every confirm: outcome 1 when confirmed and routed, -1 (with why)
 * otherwise. -1 with err when the connection failed (outcomes then stay 0 for the unconfirmed:
 * they were not acked, so they are still parked). */
int rp_broker_publish(rp_broker_t *b, const char *exchange, rp_msg_t **msgs,
		      const amqp_table_t *hdrs, size_t n, char *err, size_t errlen);
/* Acks the parked copy. 0 or -1 with err. */
int rp_broker_ack(rp_broker_t *b, rp_msg_t *m, char *err, size_t errlen);

#endif
