/* test_load.c — baton-load against the test's own vhost: every event it reports as confirmed
 * arrives in a queue bound to baton.events, with a valid CloudEvents envelope and AMQP
 * properties, and its report adds up; pacing with --rate; refusal without a broker. */
#include "testkit.h"
#include "../../tools/sim/testing/simtest.h"
#include "../../tools/sim/testing/simamqp.h"

#include <jansson.h>

#define LOAD BATON_BINARY_DIR "/tools/load/baton-load"

static bt_stack_t S;

/* Runs baton-load with args; returns its parsed report and exit status. */
static json_t *run_load(const char *args, int *status)
{
	char cmd[2048], out[1 << 16];
	size_t len;
	FILE *p;
	json_error_t e;
	json_t *j;

	snprintf(cmd, sizeof(cmd), "'%s' --amqp '%s' %s", LOAD, S.amqp_url, args);
	p = popen(cmd, "r");
	assert_non_null(p);
	len = fread(out, 1, sizeof(out) - 1, p);
	out[len] = '\0';
	*status = WEXITSTATUS(pclose(p));
	j = json_loads(out, 0, &e);
	if (!j)
		fail_msg("no JSON report (%s): %s", e.text, out);
	return j;
}

static void test_all_confirmed_events_arrive(void **state)
{
	amqp_connection_state_t c = bt_amqp_open(&S);
	int status, n = 600;
	json_t *rep, *by = json_object();
	const char *k;
	json_t *v;

	simt_bind_events(c, "load.all", "#");
	rep = run_load("--count 600 --seed 3 --window 64 --unmapped-share 0.1", &status);
	assert_int_equal(status, 0);
	assert_int_equal(json_integer_value(json_object_get(rep, "sent")), n);
	assert_int_equal(json_integer_value(json_object_get(rep, "confirmed")), n);
	assert_int_equal(json_integer_value(json_object_get(rep, "nacked")), 0);
	assert_true(json_real_value(json_object_get(rep, "rate")) > 0);
	for (int i = 0; i < n; i++) {
		json_t *ev = simt_next_event(c, "baton-load");
		const char *type = json_string_value(json_object_get(ev, "type"));
		json_object_set_new(by, type,
				    json_integer(json_integer_value(json_object_get(by, type)) + 1));
		json_decref(ev);
	}
	/* Nothing more than reported. */
	amqp_envelope_t env;
	struct timeval tv = {0, 300 * 1000};
	assert_int_not_equal(amqp_consume_message(c, &env, &tv, 0).reply_type,
			     AMQP_RESPONSE_NORMAL);
	json_object_foreach(json_object_get(rep, "by_type"), k, v)
		assert_int_equal(json_integer_value(v), json_integer_value(json_object_get(by, k)));
	assert_true(json_integer_value(json_object_get(by, "storefront.order.created")) > 0);
	assert_true(json_integer_value(json_object_get(by, "erp.stock.changed")) > 0);
	json_decref(by);
	json_decref(rep);
	amqp_connection_close(c, AMQP_REPLY_SUCCESS);
	amqp_destroy_connection(c);
}

static void test_rate_pacing(void **state)
{
	int status;
	json_t *rep = run_load("--count 100 --rate 200 --mix stock=1", &status);

	assert_int_equal(status, 0);
	assert_int_equal(json_integer_value(json_object_get(rep, "confirmed")), 100);
	/* 100 events at 200/s cannot take less than (100 - 1) / 200 s. */
	assert_true(json_real_value(json_object_get(rep, "elapsed_s")) >= 0.49);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(rep, "by_type"),
							    "erp.stock.changed")),
			 100);
	json_decref(rep);
}

static void test_usage_errors(void **state)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd), "env -u BATON_AMQP_URL '%s' --count 1 >/dev/null 2>&1", LOAD);
	assert_int_equal(WEXITSTATUS(system(cmd)), 2);
	snprintf(cmd, sizeof(cmd), "'%s' --mix nonsense=1 >/dev/null 2>&1", LOAD);
	assert_int_equal(WEXITSTATUS(system(cmd)), 2);
	snprintf(cmd, sizeof(cmd), "'%s' --help | grep -q 'TEST TOOL'", LOAD);
	assert_int_equal(WEXITSTATUS(system(cmd)), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_all_confirmed_events_arrive),
		cmocka_unit_test(test_rate_pacing),
		cmocka_unit_test(test_usage_errors),
	};
	int rc = bt_stack_open(&S, "load");
	if (rc != 0)
		return rc;
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	bt_stack_close(&S);
	return rc;
}
