/* test_faults.c — the runtime against infrastructure failures, on a stack of the test's own
 * (tools/stack.sh under $BATON_TEST_TMP) so that it can restart the broker and stop the
 * database:
 *   broker_restart   RabbitMQ restarted while 2 replicas work through 500 messages
 *   db_outage        FerretDB stopped for ~6 s mid-run
 * Both end with every effect exactly once, nothing parked, nothing left in the queue. */
#define _GNU_SOURCE
#include "flowtest.h"

static bt_stack_t S;
static char DIR_[512];
static simt_proc_t ERP;

static int setup(void **state)
{
	(void)state;
	if (bt_private_stack_up(&S, "test_faults", DIR_, sizeof(DIR_)) != 0)
		return -1; /* a failure, never a skip: the stack is ours to start */
	ft_erp_start(&ERP);
	return 0;
}

/* Each test on a fresh database and a clean ERP (the broker's queues are empty between tests). */
static void fresh(const char *name)
{
	json_t *j;

	snprintf(S.db_name, sizeof(S.db_name), "faults_%s_%d", name, (int)getpid());
	j = ft_sim_json(&ERP, "POST", "/_sim/reset", NULL);
	json_decref(j);
}

static int teardown(void **state)
{
	(void)state;
	ft_kill_all();
	simt_stop(&ERP);
	bt_private_stack(DIR_, "down");
	return 0;
}

static void publish_n(int n, const char *prefix)
{
	amqp_connection_state_t c = bt_amqp_open(&S);
	char id[64], key[64];

	for (int i = 0; i < n; i++) {
		snprintf(id, sizeof(id), "%s-ev-%d", prefix, i);
		snprintf(key, sizeof(key), "%s-k-%d", prefix, i);
		ft_publish_event(c, id, key, "effect");
	}
	amqp_destroy_connection(c);
}

static void finish_and_check(pid_t a, pid_t b, int n)
{
	amqp_connection_state_t c;
	long orders = -1, dups = -1;

	assert_int_equal(ft_wait_ledger(&S, n, 240), n);
	c = bt_amqp_open(&S);
	assert_int_equal(ft_wait_depth(c, FT_QUEUE, 0, 60), 0);
	assert_int_equal(bt_queue_depth(c, FT_PARKING), 0);
	amqp_destroy_connection(c);
	ft_erp_counts(&ERP, &orders, &dups);
	assert_int_equal(orders, n);
	assert_int_equal(dups, 0);
	assert_int_equal(ft_stop(a, 60), 0);
	assert_int_equal(ft_stop(b, 60), 0);
}

static void test_broker_restart(void **state)
{
	static const char *const env[] = {"BATON_HEARTBEAT=5", "BATON_RETRY_TIERS=1s,2s,4s,8s,16s", "BATON_LOG_LEVEL=info",
					  NULL};
	pid_t a, b;

	(void)state;
	fresh("broker");
	ft_faults(&ERP, "[{\"route\": \"POST /api/sales_orders\", \"kind\": \"latency\", "
			"\"ms\": 10}]");
	a = ft_worker(&S, &ERP, "w-a", env, NULL);
	b = ft_worker(&S, &ERP, "w-b", env, NULL);
	ft_wait_consumers(&S, FT_QUEUE, 2, 60);
	publish_n(500, "br");
	assert_true(ft_wait_ledger(&S, 100, 120) >= 100);
	assert_int_equal(bt_private_stack(DIR_, "broker-restart"), 0);
	finish_and_check(a, b, 500);
}

static void test_db_outage(void **state)
{
	static const char *const env[] = {"BATON_RETRY_TIERS=1s,2s,4s,8s,16s,32s", NULL};
	pid_t a, b;

	(void)state;
	fresh("db");
	ft_faults(&ERP, "[{\"route\": \"POST /api/sales_orders\", \"kind\": \"latency\", "
			"\"ms\": 10}]");
	a = ft_worker(&S, &ERP, "w-a", env, NULL);
	b = ft_worker(&S, &ERP, "w-b", env, NULL);
	ft_wait_consumers(&S, FT_QUEUE, 2, 60);
	publish_n(500, "db");
	assert_true(ft_wait_ledger(&S, 100, 120) >= 100);
	assert_int_equal(bt_private_stack(DIR_, "db-stop"), 0);
	bt_sleep_ms(6000);
	assert_int_equal(bt_private_stack(DIR_, "db-start"), 0);
	finish_and_check(a, b, 500);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_broker_restart),
		cmocka_unit_test(test_db_outage),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
