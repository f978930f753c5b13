/* test_runtime.c — the worker runtime end to end: baton-testflow replicas on the real broker and
 * FerretDB, the ERP simulator as the HTTP endpoint whose sales orders are the effects.
 *
 *   exactly_once      1,000 messages + 100 duplicates through 3 replicas, one killed -9
 *                     mid-flight and replaced: every effect exactly once, nothing parked
 *   retry_tiers       HTTP 503 twice then 201: completes through the tiers, attempts recorded
 *   http_400_parked   HTTP 400: parked at once with the x-baton-* headers, body untouched
 *   bad_input         malformed JSON, wrong specversion, missing data, unknown type, oversize
 *                     body: each parked with its code; the worker lives on
 *   poison            a message that aborts the worker: parked as poison at the delivery limit
 *   sigterm           SIGTERM under load: exit 0, nothing lost or done twice
 *   valgrind          one worker's start/consume/shutdown under valgrind: no definite leak, no
 *                     invalid access (release build; the ASan build checks the same itself) */
#define _GNU_SOURCE
#include "flowtest.h"

#include "baton/headers.h"

static bt_stack_t S;
static simt_proc_t ERP;
static amqp_connection_state_t C;

static int setup(void **state)
{
	static int n;
	char name[64];

	(void)state;
	snprintf(name, sizeof(name), "test_runtime_%d", ++n);
	if (bt_stack_open(&S, name) != 0)
		return -1;
	ft_erp_start(&ERP);
	C = bt_amqp_open(&S);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	ft_kill_all();
	simt_stop(&ERP);
	amqp_destroy_connection(C);
	bt_stack_close(&S);
	return 0;
}

static void check_exactly_once(long want)
{
	long orders = -1, dups = -1;

	ft_erp_counts(&ERP, &orders, &dups);
	assert_int_equal(orders, want);
	assert_int_equal(dups, 0);
	assert_int_equal(bt_count_docs(&S, "ledger", NULL), want);
	assert_int_equal(bt_queue_depth(C, FT_PARKING), 0);
}

static void test_exactly_once(void **state)
{
	const char *const w[] = {"w1", "w2", "w3"};
	pid_t pid[3], extra;
	char id[64], key[64];

	(void)state;
	ft_faults(&ERP, "[{\"route\": \"POST /api/sales_orders\", \"kind\": \"latency\", \"ms\": 3}]");
	for (int i = 0; i < 3; i++)
		pid[i] = ft_worker(&S, &ERP, w[i], NULL, NULL);
	ft_wait_consumers(&S, FT_QUEUE, 3, 60);
	for (int i = 0; i < 1000; i++) {
		snprintf(id, sizeof(id), "ev-%d", i);
		snprintf(key, sizeof(key), "k-%d", i);
		ft_publish_event(C, id, key, "effect");
		if (i % 10 == 0) { /* a duplicate delivery of an earlier event */
			snprintf(id, sizeof(id), "ev-%d", i / 2);
			snprintf(key, sizeof(key), "k-%d", i / 2);
			ft_publish_event(C, id, key, "effect");
		}
	}
	assert_true(ft_wait_ledger(&S, 200, 120) >= 200);
	ft_kill9(pid[1]); /* mid-flight: its unacked messages go back to the queue */
	extra = ft_worker(&S, &ERP, "w4", NULL, NULL);
	assert_int_equal(ft_wait_ledger(&S, 1000, 180), 1000);
	assert_int_equal(ft_wait_depth(C, FT_QUEUE, 0, 60), 0);
	check_exactly_once(1000);
	assert_int_equal(ft_stop(pid[0], 30), 0);
	assert_int_equal(ft_stop(pid[2], 30), 0);
	assert_int_equal(ft_stop(extra, 30), 0);
	/* every completed message left its trail */
	assert_true(bt_count_docs(&S, "audit", NULL) >= 2000);
}

static void test_retry_tiers(void **state)
{
	pid_t pid;
	bson_t *q;

	(void)state;
	ft_faults(&ERP, "[{\"route\": \"POST /api/sales_orders\", \"kind\": \"error\", "
			"\"status\": 503, \"limit\": 2}]");
	pid = ft_worker(&S, &ERP, "w1", NULL, NULL);
	ft_wait_consumers(&S, FT_QUEUE, 1, 60);
	ft_publish_event(C, "ev-retry", "k-retry", "effect");
	assert_int_equal(ft_wait_ledger(&S, 1, 60), 1);
	assert_int_equal(ft_stop(pid, 30), 0);
	check_exactly_once(1);
	assert_int_equal(ft_erp_requests(&ERP, "POST", "/api/sales_orders", 503), 2);
	assert_int_equal(ft_erp_requests(&ERP, "POST", "/api/sales_orders", 201), 1);
	q = BCON_NEW("message_id", "ev-retry", "step", "retried", "error_code", "erp.http_503");
	assert_int_equal(bt_count_docs(&S, "audit", q), 2);
	bson_destroy(q);
	q = BCON_NEW("message_id", "ev-retry", "step", "completed", "attempt", BCON_INT64(3));
	assert_int_equal(bt_count_docs(&S, "audit", q), 1);
	bson_destroy(q);
}

static const char *hdr(const amqp_message_t *m, const char *k, char *buf, size_t len)
{
	return baton_header_str(&m->properties.headers, k, buf, len);
}

static int64_t hdr_int(const amqp_message_t *m, const char *k)
{
	return baton_header_int(&m->properties.headers, k, -1);
}

static void test_http_400_parked(void **state)
{
	amqp_message_t msg;
	char b[1200];
	pid_t pid;

	(void)state;
	ft_faults(&ERP, "[{\"route\": \"POST /api/sales_orders\", \"kind\": \"status\", "
			"\"status\": 400, \"body\": {\"error\": {\"code\": \"field_invalid\", "
			"\"message\": \"lines[0].sku is not known\"}}}]");
	pid = ft_worker(&S, &ERP, "w-400", NULL, NULL);
	ft_wait_consumers(&S, FT_QUEUE, 1, 60);
	ft_publish_event(C, "ev-400", "k-400", "effect");
	assert_int_equal(ft_wait_depth(C, FT_PARKING, 1, 30), 1);
	assert_int_equal(ft_stop(pid, 30), 0);
	assert_int_equal(ft_get(C, FT_PARKING, &msg), 0);
	assert_string_equal(hdr(&msg, "x-baton-flow", b, sizeof(b)), "testflow");
	assert_string_equal(hdr(&msg, "x-baton-error-class", b, sizeof(b)), "permanent");
	assert_string_equal(hdr(&msg, "x-baton-error-code", b, sizeof(b)), "erp.http_400");
	assert_non_null(strstr(hdr(&msg, "x-baton-error-message", b, sizeof(b)),
			       "lines[0].sku is not known"));
	assert_int_equal(hdr_int(&msg, "x-baton-http-status"), 400);
	assert_int_equal(hdr_int(&msg, "x-baton-attempts"), 1);
	assert_int_equal(hdr_int(&msg, "x-baton-replays"), 0);
	assert_string_equal(hdr(&msg, "x-baton-worker", b, sizeof(b)), "w-400");
	assert_string_equal(hdr(&msg, "x-baton-original-exchange", b, sizeof(b)), "baton.events");
	assert_string_equal(hdr(&msg, "x-baton-original-routing-key", b, sizeof(b)), "test.effect");
	assert_int_equal(strlen(hdr(&msg, "x-baton-first-failed-at", b, sizeof(b))), 24);
	assert_int_equal(strlen(hdr(&msg, "x-baton-last-failed-at", b, sizeof(b))), 24);
	assert_null(baton_header_find(&msg.properties.headers, "x-baton-retry-tier"));
	assert_non_null(memmem(msg.body.bytes, msg.body.len, "\"id\":\"ev-400\"", 13));
	assert_int_equal(msg.properties.message_id.len, 6); /* properties kept */
	amqp_destroy_message(&msg);
	/* parked at once: one request, no retry */
	assert_int_equal(ft_erp_requests(&ERP, "POST", "/api/sales_orders", -1), 1);
	assert_int_equal(bt_count_docs(&S, "ledger", NULL), 0);
}

static void expect_parked(const char *id, const char *code, const char *needle)
{
	amqp_message_t msg;
	char b[1200];

	assert_int_equal(ft_get(C, FT_PARKING, &msg), 0);
	if (msg.properties._flags & AMQP_BASIC_MESSAGE_ID_FLAG)
		assert_memory_equal(msg.properties.message_id.bytes, id, strlen(id));
	assert_string_equal(hdr(&msg, "x-baton-error-class", b, sizeof(b)), "permanent");
	assert_string_equal(hdr(&msg, "x-baton-error-code", b, sizeof(b)), code);
	if (!strstr(hdr(&msg, "x-baton-error-message", b, sizeof(b)), needle))
		fail_msg("%s: message '%s' lacks '%s'", id, b, needle);
	amqp_destroy_message(&msg);
}

static void test_bad_input(void **state)
{
	size_t big = 1100 * 1024;
	char *huge = malloc(big + 1);
	pid_t pid;

	(void)state;
	pid = ft_worker(&S, &ERP, "w-bad", NULL, NULL);
	ft_wait_consumers(&S, FT_QUEUE, 1, 60);
	/* one at a time, so that the parking order is known */
	bt_publish(C, "baton.events", "test.effect", "bad-1", "{\"specversion\": \"1.0\", \"id\": ");
	assert_int_equal(ft_wait_depth(C, FT_PARKING, 1, 30), 1);
	expect_parked("bad-1", "payload.invalid", "malformed JSON at line 1");
	bt_publish(C, "baton.events", "test.effect", "bad-2",
		   "{\"specversion\":\"0.3\",\"id\":\"bad-2\",\"source\":\"t\",\"type\":\"test.effect\","
		   "\"data\":{}}");
	assert_int_equal(ft_wait_depth(C, FT_PARKING, 1, 30), 1);
	expect_parked("bad-2", "payload.unsupported_version", "\"0.3\"");
	bt_publish(C, "baton.events", "test.effect", "bad-3",
		   "{\"specversion\":\"1.0\",\"id\":\"bad-3\",\"source\":\"t\",\"type\":\"test.effect\"}");
	assert_int_equal(ft_wait_depth(C, FT_PARKING, 1, 30), 1);
	expect_parked("bad-3", "payload.invalid", "\"data\": missing");
	bt_publish(C, "baton.events", "test.other", "bad-4",
		   "{\"specversion\":\"1.0\",\"id\":\"bad-4\",\"source\":\"t\",\"type\":\"test.other\","
		   "\"data\":{}}");
	assert_int_equal(ft_wait_depth(C, FT_PARKING, 1, 30), 1);
	expect_parked("bad-4", "event.unhandled", "test.other");
	bt_publish(C, "baton.events", "test.effect", "bad-5", "[1, 2, 3]");
	assert_int_equal(ft_wait_depth(C, FT_PARKING, 1, 30), 1);
	expect_parked("bad-5", "payload.invalid", "not a JSON object");
	assert_non_null(huge);
	memset(huge, ' ', big);
	huge[0] = '{';
	huge[big - 1] = '}';
	huge[big] = '\0';
	bt_publish(C, "baton.events", "test.effect", "bad-6", huge);
	free(huge);
	assert_int_equal(ft_wait_depth(C, FT_PARKING, 1, 30), 1);
	expect_parked("bad-6", "payload.too_large", "over the limit");
	bt_publish(C, "baton.events", "test.effect", "bad-7",
		   "{\"specversion\":\"1.0\",\"id\":\"bad-7\",\"source\":\"t\",\"type\":\"test.effect\","
		   "\"data\":{\"key\":\"$where\"},\"subject\":7}");
	assert_int_equal(ft_wait_depth(C, FT_PARKING, 1, 30), 1);
	expect_parked("bad-7", "payload.invalid", "subject");
	/* the worker is alive and still does its job */
	assert_int_equal(kill(pid, 0), 0);
	ft_publish_event(C, "good-1", "k-good", "effect");
	assert_int_equal(ft_wait_ledger(&S, 1, 30), 1);
	assert_int_equal(ft_stop(pid, 30), 0);
}

static void test_poison(void **state)
{
	static const char *const env[] = {"BATON_DELIVERY_LIMIT=3", "BATON_PREFETCH=1", NULL};
	amqp_message_t msg;
	char b[1200];
	int crashes = 0, st;
	pid_t pid = 0;

	(void)state;
	ft_no_cores();
	/* A supervisor's restart loop: each replica dies on the poison message until the
	 * runtime parks it (delivery count = limit - 1) instead of handing it over again. */
	for (int i = 0; i < 6 && bt_queue_depth(C, FT_PARKING) < 1; i++) {
		pid = ft_worker(&S, &ERP, "w-poison", env, NULL);
		if (i == 0) { /* the first replica declares the topology */
			ft_wait_consumers(&S, FT_QUEUE, 1, 60);
			ft_publish_event(C, "ev-poison", "k-poison", "abort");
		}
		for (int t = 0; t < 300; t++) {
			if (waitpid(pid, &st, WNOHANG) == pid) {
				ft_forget(pid);
				crashes++;
				pid = 0;
				break;
			}
			if (bt_queue_depth(C, FT_PARKING) >= 1)
				break;
			bt_sleep_ms(100);
		}
	}
	assert_int_equal(crashes, 2);
	assert_true(pid > 0);
	ft_publish_event(C, "ev-fine", "k-fine", "effect"); /* the survivor works normally */
	assert_int_equal(ft_wait_ledger(&S, 1, 30), 1);
	assert_int_equal(ft_stop(pid, 30), 0);
	assert_int_equal(ft_get(C, FT_PARKING, &msg), 0);
	assert_string_equal(hdr(&msg, "x-baton-error-class", b, sizeof(b)), "poison");
	assert_string_equal(hdr(&msg, "x-baton-error-code", b, sizeof(b)), "message.poison");
	assert_non_null(strstr(hdr(&msg, "x-baton-error-message", b, sizeof(b)), "3 times"));
	amqp_destroy_message(&msg);
	assert_int_equal(bt_queue_depth(C, FT_QUEUE), 0);
}

static void test_sigterm(void **state)
{
	static const char *const env[] = {"BATON_PREFETCH=20", NULL};
	char id[64], key[64];
	pid_t a, b, c;
	int64_t seen;

	(void)state;
	ft_faults(&ERP, "[{\"route\": \"POST /api/sales_orders\", \"kind\": \"latency\", "
			"\"ms\": 40, \"jitter_ms\": 40}]");
	a = ft_worker(&S, &ERP, "w-a", env, NULL);
	b = ft_worker(&S, &ERP, "w-b", env, NULL);
	ft_wait_consumers(&S, FT_QUEUE, 2, 60);
	for (int i = 0; i < 600; i++) {
		snprintf(id, sizeof(id), "ev-%d", i);
		snprintf(key, sizeof(key), "k-%d", i);
		ft_publish_event(C, id, key, "effect");
	}
	assert_true(ft_wait_ledger(&S, 60, 60) >= 60);
	assert_int_equal(ft_stop(a, 30), 0); /* with up to 20 messages in flight */
	seen = bt_count_docs(&S, "ledger", NULL);
	assert_true(seen < 600); /* it really stopped under load */
	c = ft_worker(&S, &ERP, "w-c", env, NULL);
	assert_int_equal(ft_wait_ledger(&S, 600, 120), 600);
	assert_int_equal(ft_wait_depth(C, FT_QUEUE, 0, 60), 0);
	assert_int_equal(ft_stop(b, 30), 0);
	assert_int_equal(ft_stop(c, 30), 0);
	check_exactly_once(600);
}

static void test_valgrind(void **state)
{
#ifdef BATON_SANITIZE_BUILD
	(void)state; /* valgrind cannot run ASan binaries; this build checks the same itself */
#else
	static const char *const vg[] = {"valgrind", "--leak-check=full",
					 "--errors-for-leak-kinds=definite", "--error-exitcode=99",
					 "--quiet", NULL};
	static const char *const env[] = {"BATON_METRICS_ADDR=127.0.0.1:0", NULL};
	char id[64], key[64];
	pid_t pid;

	(void)state;
	assert_int_equal(system("valgrind --version >/dev/null 2>&1"), 0);
	pid = ft_worker(&S, &ERP, "w-vg", env, vg);
	ft_wait_consumers(&S, FT_QUEUE, 1, 120);
	for (int i = 0; i < 30; i++) {
		snprintf(id, sizeof(id), "ev-%d", i);
		snprintf(key, sizeof(key), "k-%d", i);
		ft_publish_event(C, id, key, i == 7 ? "dead" : "effect");
	}
	bt_publish(C, "baton.events", "test.effect", "bad", "{oops");
	assert_int_equal(ft_wait_ledger(&S, 29, 120), 29);
	assert_int_equal(ft_wait_depth(C, FT_PARKING, 2, 60), 2);
	assert_int_equal(ft_stop(pid, 120), 0); /* 99 would be a valgrind error */
#endif
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_exactly_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retry_tiers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_http_400_parked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
		cmocka_unit_test_setup_teardown(test_poison, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sigterm, setup, teardown),
		cmocka_unit_test_setup_teardown(test_valgrind, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
