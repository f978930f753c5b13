/* bench_replay_park — helper of bench_replay.sh (BENCHMARK TOOL, not a test).
 *
 *   bench_replay_park park N       parks N messages over orders/inventory/payments as workers
 *                                  would (baton.dead, x-baton-* headers), with confirms
 *   bench_replay_park baseline -   the bare loop replay is measured against: consume every
 *                                  parked message, publish it to baton.requeue with confirms
 *                                  (batches of 100), ack; prints messages/s
 *
 * BATON_AMQP_URL names the broker (vhost included). */
#include <amqp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "baton/amqp.h"
#include "baton/headers.h"
#include "baton/topology.h"

static const char *const flows[] = {"orders", "inventory", "payments"};
static const char *const codes[] = {"sku.unmapped", "erp.http_422", "payload.invalid"};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "bench_replay_park: %s\n", what);
	exit(1);
}

static void wait_acks(amqp_connection_state_t c, amqp_channel_t ch, uint64_t upto)
{
	uint64_t acked = 0;
	amqp_frame_t f;

	while (acked < upto) {
		if (amqp_simple_wait_frame(c, &f) != AMQP_STATUS_OK)
			die("connection lost waiting for confirms");
		if (f.frame_type != AMQP_FRAME_METHOD || f.channel != ch)
			continue;
		if (f.payload.method.id == AMQP_BASIC_NACK_METHOD)
			die("nack");
		if (f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
			amqp_basic_ack_t *a = f.payload.method.decoded;
			if (a->delivery_tag > acked)
				acked = a->delivery_tag;
		}
	}
}

static void confirm_channel(amqp_connection_state_t c, amqp_channel_t ch)
{
	amqp_channel_open(c, ch);
	if (amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL)
		die("channel open");
	amqp_confirm_select(c, ch);
	if (amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL)
		die("confirm.select");
}

static void park_one(amqp_connection_state_t c, long i)
{
	baton_failure_t f;
	amqp_pool_t pool;
	amqp_basic_properties_t p = {0};
	char id[32], body[600];

	memset(&f, 0, sizeof(f));
	snprintf(f.flow, sizeof(f.flow), "%s", flows[i % 3]);
	f.cls = BATON_CLASS_PERMANENT;
	snprintf(f.code, sizeof(f.code), "%s", codes[(i / 3) % 3]);
	snprintf(f.message, sizeof(f.message), "benchmark message %ld", i);
	f.attempts = 1;
	baton_now_rfc3339(f.first_failed_at, sizeof(f.first_failed_at));
	memcpy(f.last_failed_at, f.first_failed_at, sizeof(f.last_failed_at));
	snprintf(f.worker, sizeof(f.worker), "bench");
	init_amqp_pool(&pool, 4096);
	if (baton_headers_build(&f, NULL, &pool, &p.headers) != 0)
		die("out of memory");
	snprintf(id, sizeof(id), "b-%06ld", i);
	snprintf(body, sizeof(body),
		 "{\"specversion\":\"1.0\",\"id\":\"%s\",\"source\":\"bench\",\"type\":"
		 "\"storefront.order.created\",\"subject\":\"order/SO-%ld\",\"time\":"
		 "\"2026-11-22T10:00:00Z\",\"datacontenttype\":\"application/json\",\"data\":"
		 "{\"order_id\":\"SO-%ld\",\"lines\":[{\"sku\":\"TSHIRT-RED-M\",\"quantity\":2}]}}",
		 id, i, i);
	p._flags = AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
		   AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG;
	p.delivery_mode = 2;
	p.message_id = amqp_cstring_bytes(id);
	p.content_type = amqp_cstring_bytes("application/json");
	if (amqp_basic_publish(c, 2, amqp_cstring_bytes(BATON_EXCHANGE_DEAD),
			       amqp_cstring_bytes(f.flow), 1, 0, &p, amqp_cstring_bytes(body)))
		die("publish");
	empty_amqp_pool(&pool);
}

static void park(amqp_connection_state_t c, long n)
{
	baton_topology_opts_t o;
	char err[512];

	baton_topology_default_opts(&o);
	for (int f = 0; f < 3; f++)
		if (baton_topology_declare(c, 1, baton_topology_find(flows[f]), &o, err, sizeof(err)))
			die(err);
	confirm_channel(c, 2);
	for (long i = 0; i < n; i++) {
		park_one(c, i);
		if ((i + 1) % 500 == 0 || i + 1 == n)
			wait_acks(c, 2, (uint64_t)i + 1);
	}
	printf("parked %ld messages\n", n);
}

static uint32_t depth(amqp_connection_state_t c, const char *q)
{
	amqp_queue_declare_ok_t *ok = amqp_queue_declare(c, 1, amqp_cstring_bytes(q), 1, 0, 0, 0,
							 amqp_empty_table);
	if (!ok)
		die("passive declare");
	return ok->message_count;
}

/* Moves n messages of queue q (consumed on channel ch) to baton.requeue, key flow. */
static void move(amqp_connection_state_t c, amqp_channel_t ch, const char *q, const char *flow,
		 long n, uint64_t *seq)
{
	amqp_envelope_t env[100];
	long done = 0;

	amqp_channel_open(c, ch);
	amqp_basic_qos(c, ch, 0, 100, 0); /* = the batch: no delivery while confirms are awaited */
	amqp_basic_consume(c, ch, amqp_cstring_bytes(q), amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
	if (amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL)
		die("consume");
	while (done < n) {
		int k = 0;
		struct timeval tv = {30, 0};
		/* read a batch, then publish it (confirms must not interleave with deliveries) */
		while (k < 100 && done + k < n) {
			amqp_maybe_release_buffers(c);
			amqp_rpc_reply_t r = amqp_consume_message(c, &env[k], &tv, 0);
			if (r.reply_type != AMQP_RESPONSE_NORMAL) {
				fprintf(stderr, "after %ld of %ld from %s: ", done + k, n, q);
				die("consume_message");
			}
			k++;
		}
		for (int i = 0; i < k; i++) {
			amqp_basic_properties_t p = env[i].message.properties;
			if (amqp_basic_publish(c, 2, amqp_cstring_bytes(BATON_EXCHANGE_REQUEUE),
					       amqp_cstring_bytes(flow), 1, 0, &p, env[i].message.body))
				die("publish");
		}
		*seq += (uint64_t)k;
		wait_acks(c, 2, *seq);
		for (int i = 0; i < k; i++) {
			amqp_basic_ack(c, ch, env[i].delivery_tag, 0);
			amqp_destroy_envelope(&env[i]);
		}
		done += k;
	}
	amqp_channel_close(c, ch, AMQP_REPLY_SUCCESS);
}

/* Consume + publish with confirms (batches of 100) + ack over every parking queue: what replay
 * does minus its filters, header rewrite and records. */
static void baseline(amqp_connection_state_t c)
{
	uint64_t seq = 0;
	long total = 0;
	double t0 = now_s();
	char q[64];

	confirm_channel(c, 2);
	for (int f = 0; f < 3; f++) {
		snprintf(q, sizeof(q), "baton.%s.dead", flows[f]);
		long n = (long)depth(c, q);
		move(c, (amqp_channel_t)(3 + f), q, flows[f], n, &seq);
		total += n;
	}
	double dt = now_s() - t0;
	printf("baseline: %ld messages in %.2f s: %.0f msg/s\n", total, dt, (double)total / dt);
}

int main(int argc, char **argv)
{
	const char *url = getenv("BATON_AMQP_URL");
	baton_amqp_params_t p;
	amqp_connection_state_t c;
	char err[512];

	if (argc != 3 || !url)
		die("usage: BATON_AMQP_URL=... bench_replay_park park|baseline N");
	if (baton_amqp_parse_url(url, &p, err, sizeof(err)) != 0)
		die(err);
	p.heartbeat_s = 0;
	c = baton_amqp_connect(&p, "bench_replay_park", err, sizeof(err));
	if (!c)
		die(err);
	if (!strcmp(argv[1], "park"))
		park(c, atol(argv[2]));
	else if (!strcmp(argv[1], "baseline"))
		baseline(c);
	else
		die("park or baseline");
	amqp_connection_close(c, AMQP_REPLY_SUCCESS);
	amqp_destroy_connection(c);
	return 0;
}
