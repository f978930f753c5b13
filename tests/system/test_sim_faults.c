/* test_sim_faults.c — every fault kind of the simulators, observed from a libcurl client against
 * a real baton-sim-erp process: latency, a seeded 5xx share (same seed, same sequence), timeout,
 * 4xx with a body, malformed JSON, connection reset, outage window, rule limits, rules loaded
 * at start with --faults, and refusal of bad rules. Needs no broker. */
#include "testkit.h"
#include "../../tools/sim/testing/simtest.h"

#include <jansson.h>

#define ERP BATON_BINARY_DIR "/tools/sim/baton-sim-erp"

static simt_proc_t P;
static simt_resp_t R;

static void put_faults(const char *spec)
{
	simt_req(&P, "PUT", "/_sim/faults", spec, NULL, 0, &R);
	assert_int_equal(R.rc, CURLE_OK);
	if (R.status != 200)
		fprintf(stderr, "faults refused: %s\n", R.body);
	assert_int_equal(R.status, 200);
}

static int setup(void **state)
{
	if (simt_start(&P, ERP, NULL, NULL) != 0)
		return -1;
	return 0;
}

static int teardown(void **state)
{
	return simt_stop(&P) == 0 ? 0 : -1;
}

static int reset_each(void **state)
{
	put_faults("{\"rules\":[]}");
	simt_req(&P, "POST", "/_sim/reset", NULL, NULL, 0, &R);
	return R.status == 200 ? 0 : -1;
}

static json_t *rule_stats(int idx)
{
	json_t *j;

	simt_req(&P, "GET", "/_sim/faults", NULL, NULL, 0, &R);
	j = json_loads(R.body, 0, NULL);
	assert_non_null(j);
	json_t *r = json_incref(json_array_get(json_object_get(j, "rules"), (size_t)idx));
	json_decref(j);
	assert_non_null(r);
	return r;
}

static void test_latency(void **state)
{
	put_faults("{\"rules\":[{\"route\":\"GET /api/items\",\"kind\":\"latency\",\"ms\":300},"
		   "{\"route\":\"GET /api/stock\",\"kind\":\"latency\",\"ms\":0,\"jitter_ms\":50}]}");
	simt_req(&P, "GET", "/api/items", NULL, NULL, 0, &R);
	assert_int_equal(R.status, 200);
	assert_true(R.seconds >= 0.3); /* the injected delay was served */
	simt_req(&P, "GET", "/api/customers", NULL, NULL, 0, &R); /* other route: not delayed */
	assert_int_equal(R.status, 200);
	for (int i = 0; i < 5; i++) {
		simt_req(&P, "GET", "/api/stock", NULL, NULL, 0, &R);
		assert_int_equal(R.status, 200);
	}
	json_t *r0 = rule_stats(0), *r1 = rule_stats(1);
	assert_int_equal(json_integer_value(json_object_get(r0, "hit")), 1);
	assert_int_equal(json_integer_value(json_object_get(r1, "hit")), 5);
	json_decref(r0);
	json_decref(r1);
}

/* 40 requests under a 50% 503 rule: '1' for 503, '0' for 200. */
static void error_sequence(const char *spec, char out[41])
{
	put_faults(spec);
	for (int i = 0; i < 40; i++) {
		simt_req(&P, "GET", "/api/items", NULL, NULL, 0, &R);
		assert_int_equal(R.rc, CURLE_OK);
		assert_true(R.status == 200 || R.status == 503);
		out[i] = R.status == 503 ? '1' : '0';
		if (R.status == 503) {
			json_t *j = json_loads(R.body, 0, NULL);
			assert_string_equal(json_string_value(json_object_get(
						    json_object_get(j, "error"), "code")),
					    "injected_fault");
			json_decref(j);
		}
	}
	out[40] = '\0';
}

static void test_error_share_reproducible(void **state)
{
	const char *s7 = "{\"seed\":7,\"rules\":[{\"route\":\"/api/items\",\"kind\":\"error\","
			 "\"share\":0.5,\"status\":503}]}";
	const char *s8 = "{\"seed\":8,\"rules\":[{\"route\":\"/api/items\",\"kind\":\"error\","
			 "\"share\":0.5,\"status\":503}]}";
	char a[41], b[41], c[41];
	int ones = 0;

	error_sequence(s7, a);
	error_sequence(s7, b); /* re-installing the rules restarts the seeded sequence */
	error_sequence(s8, c);
	assert_string_equal(a, b);
	assert_string_not_equal(a, c);
	for (int i = 0; i < 40; i++)
		ones += a[i] == '1';
	assert_true(ones > 5 && ones < 35);
	fprintf(stderr, "seed 7: %s\nseed 8: %s\n", a, c);
}

static void test_timeout(void **state)
{
	put_faults("{\"rules\":[{\"route\":\"GET /api/items\",\"kind\":\"timeout\",\"seconds\":3},"
		   "{\"route\":\"GET /api/stock\",\"kind\":\"timeout\",\"seconds\":0.5}]}");
	/* The client gives up first: no answer at all. */
	simt_req(&P, "GET", "/api/items", NULL, NULL, 800, &R);
	assert_int_equal(R.rc, CURLE_OPERATION_TIMEDOUT);
	/* A patient client sees the connection closed without any answer. */
	simt_req(&P, "GET", "/api/stock", NULL, NULL, 10000, &R);
	assert_int_equal(R.rc, CURLE_GOT_NOTHING);
	assert_true(R.seconds >= 0.5);
}

static void test_status_with_body(void **state)
{
	put_faults("{\"rules\":[{\"route\":\"POST /api/sales_orders\",\"kind\":\"status\","
		   "\"status\":422,\"body\":{\"error\":{\"code\":\"credit_limit\","
		   "\"message\":\"customer over credit limit\"}}}]}");
	simt_req(&P, "POST", "/api/sales_orders",
		 "{\"external_ref\":\"R-1\",\"lines\":[{\"sku\":\"A\",\"quantity\":1,"
		 "\"unit_price\":\"1.00\"}]}",
		 NULL, 0, &R);
	assert_int_equal(R.status, 422);
	assert_string_equal(R.body,
			    "{\"error\":{\"code\":\"credit_limit\",\"message\":\"customer over "
			    "credit limit\"}}");
	/* Nothing was created. */
	simt_req(&P, "GET", "/api/sales_orders?external_ref=R-1", NULL, NULL, 0, &R);
	assert_non_null(strstr(R.body, "\"sales_orders\":[]"));
}

static void test_malformed(void **state)
{
	json_error_t e;

	put_faults("{\"rules\":[{\"route\":\"POST /api/items\",\"kind\":\"malformed\"}]}");
	simt_req(&P, "POST", "/api/items", "{\"sku\":\"M-1\",\"name\":\"mug\",\"price\":\"4.50\"}",
		 NULL, 0, &R);
	assert_int_equal(R.rc, CURLE_OK);
	assert_int_equal(R.status, 201);
	assert_true(R.len > 0);
	assert_null(json_loads(R.body, 0, &e)); /* the answer is not JSON */
	/* ...but the effect happened, as when a proxy mangles a successful answer. */
	simt_req(&P, "GET", "/api/items/M-1", NULL, NULL, 0, &R);
	assert_int_equal(R.status, 200);
}

static void test_reset(void **state)
{
	put_faults("{\"rules\":[{\"route\":\"GET /api/items\",\"kind\":\"reset\"}]}");
	simt_req(&P, "GET", "/api/items", NULL, NULL, 0, &R);
	assert_int_equal(R.rc, CURLE_RECV_ERROR); /* "Connection reset by peer" */
	assert_int_equal(R.status, 0);
	simt_req(&P, "GET", "/api/customers", NULL, NULL, 0, &R);
	assert_int_equal(R.status, 200);
	/* The request log records the request and the fault. */
	simt_req(&P, "GET", "/_sim/requests", NULL, NULL, 0, &R);
	assert_non_null(strstr(R.body, "\"fault\":\"reset\""));
}

static void test_outage_window(void **state)
{
	int ok_after = 0;

	put_faults("{\"rules\":[{\"route\":\"*\",\"kind\":\"outage\",\"start_s\":0,"
		   "\"end_s\":1.5},{\"route\":\"/api/stock*\",\"kind\":\"outage\","
		   "\"start_s\":0,\"end_s\":1.5,\"mode\":\"reset\"}]}");
	simt_req(&P, "GET", "/api/items", NULL, NULL, 0, &R);
	assert_int_equal(R.status, 503);
	simt_req(&P, "POST", "/api/customers", "{\"email\":\"a@b.c\"}", NULL, 0, &R);
	assert_int_equal(R.status, 503);
	simt_req(&P, "GET", "/api/stock", NULL, NULL, 0, &R);
	assert_true(R.status == 503 || R.rc == CURLE_RECV_ERROR); /* first matching rule wins */
	/* Inspection keeps working during an outage. */
	simt_req(&P, "GET", "/_sim/state", NULL, NULL, 0, &R);
	assert_int_equal(R.status, 200);
	/* The window ends: service comes back (bounded wait). */
	for (int i = 0; i < 100 && !ok_after; i++) {
		simt_req(&P, "GET", "/api/items", NULL, NULL, 0, &R);
		ok_after = R.status == 200;
		if (!ok_after) {
			assert_int_equal(R.status, 503);
			bt_sleep_ms(100);
		}
	}
	assert_true(ok_after);

	put_faults("{\"rules\":[{\"route\":\"/api/*\",\"kind\":\"outage\",\"end_s\":60,"
		   "\"mode\":\"reset\"}]}");
	simt_req(&P, "GET", "/api/items", NULL, NULL, 0, &R);
	assert_int_equal(R.rc, CURLE_RECV_ERROR);
}

static void test_limit(void **state)
{
	put_faults("{\"rules\":[{\"route\":\"GET /api/items\",\"kind\":\"error\",\"status\":500,"
		   "\"limit\":2}]}");
	simt_req(&P, "GET", "/api/items", NULL, NULL, 0, &R);
	assert_int_equal(R.status, 500);
	simt_req(&P, "GET", "/api/items", NULL, NULL, 0, &R);
	assert_int_equal(R.status, 500);
	simt_req(&P, "GET", "/api/items", NULL, NULL, 0, &R);
	assert_int_equal(R.status, 200);
}

static void test_bad_rules_refused(void **state)
{
	simt_req(&P, "PUT", "/_sim/faults", "{\"rules\":[{\"route\":\"*\",\"kind\":\"explode\"}]}",
		 NULL, 0, &R);
	assert_int_equal(R.status, 400);
	assert_non_null(strstr(R.body, "faults_invalid"));
	simt_req(&P, "PUT", "/_sim/faults",
		 "{\"rules\":[{\"route\":\"*\",\"kind\":\"error\",\"share\":2}]}", NULL, 0, &R);
	assert_int_equal(R.status, 400);
	simt_req(&P, "PUT", "/_sim/faults", "{\"rules\":[", NULL, 0, &R);
	assert_int_equal(R.status, 400);
	assert_non_null(strstr(R.body, "invalid_json"));
}

static void test_faults_file_at_start(void **state)
{
	char path[] = "/tmp/sim-faults-XXXXXX";
	int fd = mkstemp(path);
	const char *spec = "{\"rules\":[{\"route\":\"GET /api/items\",\"kind\":\"error\","
			   "\"share\":0.5}]}";
	char a[41], b[41];
	simt_proc_t q;
	const char *args[] = {"--faults", path, "--seed", "99", NULL};

	assert_true(fd >= 0);
	assert_int_equal(write(fd, spec, strlen(spec)), (ssize_t)strlen(spec));
	close(fd);
	/* Two processes with the same --seed and --faults answer the same sequence. */
	for (int run = 0; run < 2; run++) {
		char *out = run ? b : a;
		assert_int_equal(simt_start(&q, ERP, args, NULL), 0);
		for (int i = 0; i < 40; i++) {
			simt_req(&q, "GET", "/api/items", NULL, NULL, 0, &R);
			assert_true(R.status == 200 || R.status == 503);
			out[i] = R.status == 503 ? '1' : '0';
		}
		out[40] = '\0';
		assert_int_equal(simt_stop(&q), 0);
	}
	unlink(path);
	assert_string_equal(a, b);
	assert_non_null(strchr(a, '1'));
	assert_non_null(strchr(a, '0'));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_latency, reset_each),
		cmocka_unit_test_setup(test_error_share_reproducible, reset_each),
		cmocka_unit_test_setup(test_timeout, reset_each),
		cmocka_unit_test_setup(test_status_with_body, reset_each),
		cmocka_unit_test_setup(test_malformed, reset_each),
		cmocka_unit_test_setup(test_reset, reset_each),
		cmocka_unit_test_setup(test_outage_window, reset_each),
		cmocka_unit_test_setup(test_limit, reset_each),
		cmocka_unit_test_setup(test_bad_rules_refused, reset_each),
		cmocka_unit_test(test_faults_file_at_start),
	};
	curl_global_init(CURL_GLOBAL_DEFAULT);
	return cmocka_run_group_tests(tests, setup, teardown);
}
