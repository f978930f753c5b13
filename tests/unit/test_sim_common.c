/* test_sim_common.c — the simulators' pure parts: leaky-bucket arithmetic, fault rule parsing,
 * matching and seeded reproducibility, money parsing/formatting/rates, ids and times. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "sim.h"

static void test_bucket(void **state)
{
	sim_bucket_t b = {0, 100.0};
	double retry, used;
	int ok = 0;

	/* 60 requests at the same instant: exactly 40 fit. */
	for (int i = 0; i < 60; i++)
		ok += sim_bucket_take(&b, 40, 2, 100.0, &retry, &used);
	assert_int_equal(ok, 40);
	assert_false(sim_bucket_take(&b, 40, 2, 100.0, &retry, &used));
	assert_true(retry > 0.49 && retry < 0.51); /* one request leaks in 0.5 s at 2/s */
	assert_true(used > 39.99 && used < 40.01);
	/* After the advised wait, one request fits, and only one. */
	assert_true(sim_bucket_take(&b, 40, 2, 100.0 + retry, &retry, &used));
	assert_false(sim_bucket_take(&b, 40, 2, 100.5, &retry, &used));
	/* A long pause empties the bucket completely (never below zero). */
	assert_true(sim_bucket_take(&b, 40, 2, 1000.0, &retry, &used));
	assert_true(used > 0.99 && used < 1.01);
	/* Time going backwards never refills. */
	assert_true(sim_bucket_take(&b, 40, 2, 999.0, &retry, &used));
	assert_true(used > 1.99 && used < 2.01);
}

static sim_faults_t parse(const char *spec, uint64_t seed)
{
	sim_faults_t f = {0};
	char err[256];
	json_t *j = json_loads(spec, 0, NULL);

	assert_non_null(j);
	assert_int_equal(sim_faults_parse(&f, j, seed, 0, err, sizeof(err)), 0);
	json_decref(j);
	return f;
}

static void test_fault_matching(void **state)
{
	sim_faults_t f = parse("{\"rules\":[{\"route\":\"POST /api/sales_orders\",\"kind\":"
			       "\"error\"},{\"route\":\"/api/stock/*\",\"kind\":\"latency\","
			       "\"ms\":100},{\"route\":\"*\",\"kind\":\"status\",\"status\":418,"
			       "\"share\":0}]}",
			       1);
	sim_fault_decision_t d;

	sim_faults_decide(&f, "POST", "/api/sales_orders", 1, &d);
	assert_int_equal(d.kind, SIM_FAULT_ERROR);
	assert_int_equal(d.status, 503);
	assert_int_equal(d.rule, 0);
	sim_faults_decide(&f, "GET", "/api/sales_orders", 1, &d);
	assert_int_equal(d.kind, SIM_FAULT_NONE);
	sim_faults_decide(&f, "post", "/api/sales_orders/SO-1/cancel", 1, &d);
	assert_int_equal(d.kind, SIM_FAULT_NONE); /* exact path, no prefix match */
	sim_faults_decide(&f, "PUT", "/api/stock/A/WH-1", 1, &d); /* '*' crosses '/' */
	assert_int_equal(d.kind, SIM_FAULT_NONE);
	assert_int_equal(d.latency_ms, 100);
	assert_int_equal(f.rules[1].hit, 1);
	assert_int_equal(f.rules[2].matched, 4);
	assert_int_equal(f.rules[2].hit, 0);
	sim_faults_clear(&f);
}

static void sequence(const char *spec, uint64_t seed, char out[201])
{
	sim_faults_t f = parse(spec, seed);
	sim_fault_decision_t d;

	for (int i = 0; i < 200; i++) {
		/* Unrelated traffic in between must not disturb the rule's sequence. */
		if (i % 3 == 0)
			sim_faults_decide(&f, "GET", "/other", 0, &d);
		sim_faults_decide(&f, "GET", "/api/items", 0, &d);
		out[i] = d.kind == SIM_FAULT_ERROR ? 'E' : d.latency_ms ? 'L' : '.';
	}
	out[200] = '\0';
	sim_faults_clear(&f);
}

static void test_fault_reproducible(void **state)
{
	const char *spec = "{\"rules\":[{\"route\":\"/api/items\",\"kind\":\"error\","
			   "\"share\":0.3},{\"route\":\"/api/items\",\"kind\":\"latency\","
			   "\"ms\":0,\"jitter_ms\":20,\"share\":0.5},{\"route\":\"/other\","
			   "\"kind\":\"error\",\"share\":0.5}]}";
	char a[201], b[201], c[201];
	int e = 0;

	sequence(spec, 42, a);
	sequence(spec, 42, b);
	sequence(spec, 43, c);
	assert_string_equal(a, b);
	assert_string_not_equal(a, c);
	for (int i = 0; i < 200; i++)
		e += a[i] == 'E';
	assert_true(e > 30 && e < 90); /* about 30% of 200 */
}

static void test_fault_limit_and_outage(void **state)
{
	sim_faults_t f = parse("{\"rules\":[{\"route\":\"*\",\"kind\":\"outage\",\"start_s\":10,"
			       "\"end_s\":20,\"mode\":\"reset\"},{\"route\":\"GET *\",\"kind\":"
			       "\"timeout\",\"seconds\":2,\"limit\":1}]}",
			       1);
	sim_fault_decision_t d;

	/* t0 = 0: offsets are from the installation. */
	sim_faults_decide(&f, "POST", "/x", 5, &d);
	assert_int_equal(d.kind, SIM_FAULT_NONE);
	sim_faults_decide(&f, "POST", "/x", 10, &d);
	assert_int_equal(d.kind, SIM_FAULT_RESET);
	sim_faults_decide(&f, "POST", "/x", 19.9, &d);
	assert_int_equal(d.kind, SIM_FAULT_RESET);
	sim_faults_decide(&f, "GET", "/x", 20, &d);
	assert_int_equal(d.kind, SIM_FAULT_TIMEOUT);
	assert_true(d.seconds == 2);
	sim_faults_decide(&f, "GET", "/x", 21, &d);
	assert_int_equal(d.kind, SIM_FAULT_NONE); /* limit reached */
	sim_faults_clear(&f);
}

static void test_fault_errors(void **state)
{
	const char *bad[] = {
		"[]",
		"{\"rules\":{}}",
		"{\"rules\":[{\"kind\":\"nope\"}]}",
		"{\"rules\":[{\"kind\":\"error\",\"share\":1.5}]}",
		"{\"rules\":[{\"kind\":\"error\",\"status\":404}]}",
		"{\"rules\":[{\"kind\":\"status\"}]}",
		"{\"rules\":[{\"kind\":\"latency\"}]}",
		"{\"rules\":[{\"kind\":\"outage\",\"start_s\":1}]}",
		"{\"rules\":[{\"kind\":\"outage\",\"end_s\":1,\"mode\":\"x\"}]}",
		"{\"seed\":\"1\",\"rules\":[]}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		sim_faults_t f = {0};
		char err[256] = "";
		json_t *j = json_loads(bad[i], 0, NULL);
		assert_int_equal(sim_faults_parse(&f, j, 1, 0, err, sizeof(err)), -1);
		assert_true(strlen(err) > 0);
		assert_int_equal(f.n, 0);
		json_decref(j);
	}
}

static void test_money(void **state)
{
	int64_t m;
	char buf[32];
	const char *bad[] = {"", "-", "1.", ".5", "1.234", "1,00", "abc", "1e3", " 1", "1 ",
			     "--1", "99999999999999999999"};

	assert_int_equal(sim_money_parse("19.90", &m), 0);
	assert_int_equal(m, 1990);
	assert_int_equal(sim_money_parse("19.9", &m), 0);
	assert_int_equal(m, 1990);
	assert_int_equal(sim_money_parse("7", &m), 0);
	assert_int_equal(m, 700);
	assert_int_equal(sim_money_parse("-0.05", &m), 0);
	assert_int_equal(m, -5);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(sim_money_parse(bad[i], &m), -1);
	assert_string_equal(sim_money_format(5329, buf, sizeof(buf)), "53.29");
	assert_string_equal(sim_money_format(5, buf, sizeof(buf)), "0.05");
	assert_string_equal(sim_money_format(-50, buf, sizeof(buf)), "-0.50");
	assert_string_equal(sim_money_format(0, buf, sizeof(buf)), "0.00");
	assert_string_equal(sim_money_format(INT64_MIN, buf, sizeof(buf)),
			    "-92233720368547758.08");
	/* Tax rounding: half away from zero on minor units. */
	assert_int_equal(sim_money_rate(3980, 1900), 756);  /* 7.562 */
	assert_int_equal(sim_money_rate(490, 2100), 103);   /* 1.029 */
	assert_int_equal(sim_money_rate(50, 1000), 5);
	assert_int_equal(sim_money_rate(25, 1000), 3);      /* 2.5 -> 3 */
	assert_int_equal(sim_money_rate(-25, 1000), -3);
}

static void test_ids_and_time(void **state)
{
	char a[37], b[37], t[32];
	sim_rng_t r1, r2;

	sim_uuid(a);
	sim_uuid(b);
	assert_int_equal(strlen(a), 36);
	assert_string_not_equal(a, b);
	assert_int_equal(a[14], '4');
	assert_true(strchr("89ab", a[19]) != NULL);
	sim_rng_seed(&r1, 5);
	sim_rng_seed(&r2, 5);
	sim_uuid_rng(&r1, a);
	sim_uuid_rng(&r2, b);
	assert_string_equal(a, b);
	sim_rfc3339(t, sizeof(t));
	assert_int_equal(strlen(t), 20);
	assert_int_equal(t[10], 'T');
	assert_int_equal(t[19], 'Z');
	for (int i = 0; i < 1000; i++) {
		int64_t v = sim_rng_range(&r1, 3, 7);
		double u = sim_rng_uniform(&r1);
		assert_true(v >= 3 && v <= 7);
		assert_true(u >= 0 && u < 1);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bucket),
		cmocka_unit_test(test_fault_matching),
		cmocka_unit_test(test_fault_reproducible),
		cmocka_unit_test(test_fault_limit_and_outage),
		cmocka_unit_test(test_fault_errors),
		cmocka_unit_test(test_money),
		cmocka_unit_test(test_ids_and_time),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
