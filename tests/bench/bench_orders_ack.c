/* bench_orders_ack.c — the baseline of tests/bench/bench_orders.sh (benchmark tool, not run by
 * ctest): a bare rabbitmq-c consumer that acks every message of a queue, one by one, with the
 * same prefetch as a worker, until it has acked COUNT messages; prints the elapsed seconds.
 *
 *   bench_orders_ack AMQP_URL QUEUE COUNT PREFETCH
 *   bench_orders_ack AMQP_URL QUEUE --purge      (empties the queue)
 *   bench_orders_ack AMQP_URL QUEUE --depth      (ready messages, from a passive declare: exact,
 *                                                  unlike the management API's sampled figures) */
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int ok(amqp_rpc_reply_t r, const char *what)
{
	if (r.reply_type == AMQP_RESPONSE_NORMAL)
		return 1;
	fprintf(stderr, "bench_orders_ack: %s failed\n", what);
	return 0;
}

int main(int argc, char **argv)
{
	struct amqp_connection_info ci;
	amqp_connection_state_t c;
	amqp_socket_t *s;
	char *url;
	long count, prefetch, got = 0;
	double t0;

	if (argc != 5 && !(argc == 4 && (!strcmp(argv[3], "--depth") ||
					 !strcmp(argv[3], "--purge")))) {
		fprintf(stderr, "usage: bench_orders_ack AMQP_URL QUEUE COUNT PREFETCH | --depth\n");
		return 2;
	}
	url = strdup(argv[1]);
	count = argc == 5 ? atol(argv[3]) : 0;
	prefetch = argc == 5 ? atol(argv[4]) : 1;
	if (amqp_parse_url(url, &ci) != AMQP_STATUS_OK)
		return 2;
	c = amqp_new_connection();
	s = amqp_tcp_socket_new(c);
	if (!s || amqp_socket_open(s, ci.host, ci.port) != AMQP_STATUS_OK)
		return 1;
	if (!ok(amqp_login(c, ci.vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, ci.user,
			   ci.password), "login"))
		return 1;
	amqp_channel_open(c, 1);
	if (!ok(amqp_get_rpc_reply(c), "channel"))
		return 1;
	if (argc == 4 && !strcmp(argv[3], "--purge")) {
		amqp_queue_purge(c, 1, amqp_cstring_bytes(argv[2]));
		if (!ok(amqp_get_rpc_reply(c), "purge"))
			return 1;
		amqp_connection_close(c, AMQP_REPLY_SUCCESS);
		amqp_destroy_connection(c);
		free(url);
		return 0;
	}
	if (argc == 4) {
		amqp_queue_declare_ok_t *q = amqp_queue_declare(
			c, 1, amqp_cstring_bytes(argv[2]), 1, 0, 0, 0, amqp_empty_table);
		if (!q)
			return 1;
		printf("%u\n", q->message_count);
		amqp_connection_close(c, AMQP_REPLY_SUCCESS);
		amqp_destroy_connection(c);
		free(url);
		return 0;
	}
	amqp_basic_qos(c, 1, 0, (uint16_t)prefetch, 0);
	amqp_basic_consume(c, 1, amqp_cstring_bytes(argv[2]), amqp_empty_bytes, 0, 0, 0,
			   amqp_empty_table);
	if (!ok(amqp_get_rpc_reply(c), "consume"))
		return 1;
	t0 = now(); /* the messages wait in the queue: from the consume on */
	while (got < count) {
		amqp_envelope_t env;
		amqp_maybe_release_buffers(c);
		if (!ok(amqp_consume_message(c, &env, NULL, 0), "consume_message"))
			return 1;
		amqp_basic_ack(c, 1, env.delivery_tag, 0);
		amqp_destroy_envelope(&env);
		got++;
	}
	printf("%.6f\n", now() - t0);
	amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
	amqp_connection_close(c, AMQP_REPLY_SUCCESS);
	amqp_destroy_connection(c);
	free(url);
	return 0;
}
