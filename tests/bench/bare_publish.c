/* bare_publish.c — the baseline for baton-load: a bare rabbitmq-c loop publishing one fixed
 * persistent body of SIZE bytes with publisher confirms and the same confirm window algorithm
 * (publish while fewer than WINDOW are unconfirmed, otherwise wait for confirms).
 *
 *   bare_publish URL EXCHANGE COUNT WINDOW SIZE        -> {"confirmed","elapsed_s","rate"}
 *   bare_publish URL EXCHANGE --setup QUEUE            -> declares EXCHANGE (topic, durable) and
 *                                                          a durable QUEUE bound with "#", purged */
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die_if(int bad, const char *what)
{
	if (bad) {
		fprintf(stderr, "bare_publish: %s\n", what);
		exit(1);
	}
}

static amqp_connection_state_t open_conn(const char *url_in)
{
	struct amqp_connection_info ci;
	char *url = strdup(url_in);
	amqp_connection_state_t c = amqp_new_connection();
	amqp_socket_t *s = amqp_tcp_socket_new(c);

	die_if(amqp_parse_url(url, &ci) != AMQP_STATUS_OK, "bad URL");
	die_if(amqp_socket_open(s, ci.host, ci.port) != AMQP_STATUS_OK, "connect");
	die_if(amqp_login(c, ci.vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, ci.user, ci.password)
			       .reply_type != AMQP_RESPONSE_NORMAL,
	       "login");
	amqp_channel_open(c, 1);
	die_if(amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL, "channel");
	return c;
}

int main(int argc, char **argv)
{
	amqp_connection_state_t c;
	uint64_t count, window, size, sent = 0, confirmed = 0;
	amqp_basic_properties_t p = {0};
	char *body;
	double t0, el;

	if (argc == 5 && !strcmp(argv[3], "--setup")) {
		c = open_conn(argv[1]);
		amqp_exchange_declare(c, 1, amqp_cstring_bytes(argv[2]), amqp_cstring_bytes("topic"),
				      0, 1, 0, 0, amqp_empty_table);
		die_if(amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL, "exchange");
		amqp_queue_declare(c, 1, amqp_cstring_bytes(argv[4]), 0, 1, 0, 0, amqp_empty_table);
		die_if(amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL, "queue");
		amqp_queue_bind(c, 1, amqp_cstring_bytes(argv[4]), amqp_cstring_bytes(argv[2]),
				amqp_cstring_bytes("#"), amqp_empty_table);
		amqp_queue_purge(c, 1, amqp_cstring_bytes(argv[4]));
		die_if(amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL, "purge");
		amqp_connection_close(c, AMQP_REPLY_SUCCESS);
		amqp_destroy_connection(c);
		return 0;
	}
	if (argc != 6) {
		fprintf(stderr, "usage: bare_publish URL EXCHANGE COUNT WINDOW SIZE\n");
		return 2;
	}
	count = strtoull(argv[3], NULL, 10);
	window = strtoull(argv[4], NULL, 10);
	size = strtoull(argv[5], NULL, 10);
	body = malloc(size + 1);
	memset(body, 'x', size);
	c = open_conn(argv[1]);
	amqp_confirm_select(c, 1);
	die_if(amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL, "confirm.select");
	/* The same properties as baton-load's events, so that the broker does the same work. */
	p._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG |
		   AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_TYPE_FLAG | AMQP_BASIC_APP_ID_FLAG |
		   AMQP_BASIC_CORRELATION_ID_FLAG;
	p.delivery_mode = AMQP_DELIVERY_PERSISTENT;
	p.content_type = amqp_cstring_bytes("application/json");
	p.message_id = amqp_cstring_bytes("0b9d3c1e-6f1a-4f7e-9a51-5c2f3f0e8a11");
	p.correlation_id = p.message_id;
	p.type = amqp_cstring_bytes("storefront.order.created");
	p.app_id = amqp_cstring_bytes("baton-load");
	t0 = now();
	while (confirmed < count) {
		if (sent < count && sent - confirmed < window) {
			die_if(amqp_basic_publish(c, 1, amqp_cstring_bytes(argv[2]),
						  amqp_cstring_bytes("storefront.order.created"), 0, 0, &p,
						  (amqp_bytes_t){size, body}) != AMQP_STATUS_OK,
			       "publish");
			sent++;
			continue;
		}
		amqp_frame_t f;
		struct timeval tv = {30, 0};
		die_if(amqp_simple_wait_frame_noblock(c, &f, &tv) != AMQP_STATUS_OK, "no confirm");
		if (f.frame_type == AMQP_FRAME_METHOD && f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
			amqp_basic_ack_t *a = f.payload.method.decoded;
			confirmed = a->multiple ? a->delivery_tag : confirmed + 1;
		}
		die_if(f.frame_type == AMQP_FRAME_METHOD &&
			       f.payload.method.id == AMQP_BASIC_NACK_METHOD,
		       "nack");
		amqp_maybe_release_buffers(c);
	}
	el = now() - t0;
	printf("{\"confirmed\":%llu,\"elapsed_s\":%.3f,\"rate\":%.0f}\n",
	       (unsigned long long)confirmed, el, (double)confirmed / el);
	amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
	amqp_connection_close(c, AMQP_REPLY_SUCCESS);
	amqp_destroy_connection(c);
	free(body);
	return 0;
}
