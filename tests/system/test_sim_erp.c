/* test_sim_erp.c — baton-sim-erp as a real process: Idempotency-Key on sales orders (same key:
 * one order, 201 then 200 with the same body; other body: 422), lookup by external reference and
 * duplicates visible in /_sim/state, cancel refused once shipped, stock changes emitted to
 * RabbitMQ as erp.stock.changed with an increasing sequence, customers, journal entries. */
#include "testkit.h"
#include "../../tools/sim/testing/simtest.h"
#include "../../tools/sim/testing/simamqp.h"

#include <jansson.h>

#define ERP BATON_BINARY_DIR "/tools/sim/baton-sim-erp"

static bt_stack_t S;
static simt_proc_t P;
static simt_resp_t R;
static amqp_connection_state_t C;

static const char *ORDER = "{\"external_ref\":\"shop-eu:SO-1001\",\"channel\":\"shop-eu\","
			   "\"currency\":\"EUR\",\"lines\":[{\"sku\":\"TSHIRT-RED-M\","
			   "\"quantity\":2,\"unit_price\":\"19.90\",\"tax\":\"7.56\"}]}";

static int setup(void **state)
{
	char amqp[600];
	const char *args[] = {"--amqp", amqp, "--source", "erp/test", NULL};

	C = bt_amqp_open(&S);
	simt_bind_events(C, "erp.events", "erp.#");
	snprintf(amqp, sizeof(amqp), "%s", S.amqp_url);
	return simt_start(&P, ERP, args, NULL);
}

static int teardown(void **state)
{
	int rc = simt_stop(&P);
	amqp_channel_close(C, 1, AMQP_REPLY_SUCCESS);
	amqp_connection_close(C, AMQP_REPLY_SUCCESS);
	amqp_destroy_connection(C);
	return rc == 0 ? 0 : -1;
}

static int reset_each(void **state)
{
	simt_req(&P, "POST", "/_sim/reset", NULL, NULL, 0, &R);
	return R.status == 200 ? 0 : -1;
}

static json_t *body_json(void)
{
	json_t *j = json_loads(R.body, 0, NULL);
	assert_non_null(j);
	return j;
}

static const char *err_code(json_t *j)
{
	return json_string_value(json_object_get(json_object_get(j, "error"), "code"));
}

static json_t *counts(void)
{
	simt_req(&P, "GET", "/_sim/state", NULL, NULL, 0, &R);
	json_t *j = body_json(), *c = json_incref(json_object_get(j, "counts"));
	json_decref(j);
	return c;
}

static void test_idempotency(void **state)
{
	const char *key[] = {"Idempotency-Key: erp.sales_order:shop-eu:SO-1001", NULL};
	char first[4096];
	json_t *c, *j;

	simt_req(&P, "POST", "/api/sales_orders", ORDER, key, 0, &R);
	assert_int_equal(R.status, 201);
	assert_true(R.len < sizeof(first));
	memcpy(first, R.body, R.len + 1);
	simt_req(&P, "POST", "/api/sales_orders", ORDER, key, 0, &R);
	assert_int_equal(R.status, 200);
	assert_string_equal(R.body, first);
	c = counts();
	assert_int_equal(json_integer_value(json_object_get(c, "sales_orders")), 1);
	assert_int_equal(json_integer_value(json_object_get(
				 json_object_get(c, "sales_orders_by_external_ref"), "shop-eu:SO-1001")),
			 1);
	json_decref(c);
	/* Same key, different body: refused. */
	simt_req(&P, "POST", "/api/sales_orders",
		 "{\"external_ref\":\"shop-eu:SO-1001\",\"lines\":[{\"sku\":\"X\",\"quantity\":1,"
		 "\"unit_price\":\"1.00\"}]}",
		 key, 0, &R);
	assert_int_equal(R.status, 422);
	j = body_json();
	assert_string_equal(err_code(j), "idempotency_key_reused");
	json_decref(j);
	/* Without a key, a second POST makes a duplicate, visible in the state. */
	simt_req(&P, "POST", "/api/sales_orders", ORDER, NULL, 0, &R);
	assert_int_equal(R.status, 201);
	c = counts();
	assert_int_equal(json_integer_value(json_object_get(
				 json_object_get(c, "sales_orders_by_external_ref"), "shop-eu:SO-1001")),
			 2);
	assert_string_equal(json_string_value(json_array_get(
				    json_object_get(c, "duplicate_external_refs"), 0)),
			    "shop-eu:SO-1001");
	json_decref(c);
	/* Lookup by external reference finds both. */
	simt_req(&P, "GET", "/api/sales_orders?external_ref=shop-eu:SO-1001", NULL, NULL, 0, &R);
	j = body_json();
	assert_int_equal(json_array_size(json_object_get(j, "sales_orders")), 2);
	json_decref(j);
	/* The request log keeps the key. */
	simt_req(&P, "GET", "/_sim/requests", NULL, NULL, 0, &R);
	assert_non_null(strstr(R.body, "\"idempotency_key\":\"erp.sales_order:shop-eu:SO-1001\""));
}

static void test_validation(void **state)
{
	const char *bad[][2] = {
		{"{\"lines\":[{\"sku\":\"A\",\"quantity\":1,\"unit_price\":\"1.00\"}]}",
		 "field_missing"},
		{"{\"external_ref\":\"r\",\"lines\":[]}", "field_invalid"},
		{"{\"external_ref\":\"r\",\"lines\":[{\"sku\":\"A\",\"quantity\":-1,"
		 "\"unit_price\":\"1.00\"}]}",
		 "field_invalid"},
		{"{\"external_ref\":\"r\",\"lines\":[{\"sku\":\"A\",\"quantity\":1,"
		 "\"unit_price\":19.9}]}",
		 "field_invalid"},
		{"{\"external_ref\":\"r\",\"lines\":[{\"sku\":\"A\",\"quantity\":1,"
		 "\"unit_price\":\"1.001\"}]}",
		 "field_invalid"},
		{"{\"external_ref\":\"r\",\"bogus\":1,\"lines\":[{\"sku\":\"A\",\"quantity\":1,"
		 "\"unit_price\":\"1.00\"}]}",
		 "field_unknown"},
		{"[1,2]", "invalid_json"},
		{"{\"external_ref\":", "invalid_json"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		simt_req(&P, "POST", "/api/sales_orders", bad[i][0], NULL, 0, &R);
		assert_int_equal(R.status, 400);
		json_t *j = body_json();
		assert_string_equal(err_code(j), bad[i][1]);
		assert_non_null(json_string_value(
			json_object_get(json_object_get(j, "error"), "message")));
		json_decref(j);
	}
	simt_req(&P, "GET", "/api/sales_orders/SO-999999", NULL, NULL, 0, &R);
	assert_int_equal(R.status, 404);
	simt_req(&P, "DELETE", "/api/sales_orders", NULL, NULL, 0, &R);
	assert_int_equal(R.status, 405);
}

static void test_cancel_refused_after_ship(void **state)
{
	json_t *j;
	char id[64], path[128];

	simt_req(&P, "POST", "/api/sales_orders", ORDER, NULL, 0, &R);
	j = body_json();
	snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(j, "id")));
	json_decref(j);
	snprintf(path, sizeof(path), "/api/sales_orders/%s", id);
	simt_req(&P, "PATCH", path, "{\"note\":\"gift wrap\"}", NULL, 0, &R);
	assert_int_equal(R.status, 200);
	snprintf(path, sizeof(path), "/api/sales_orders/%s/ship", id);
	simt_req(&P, "POST", path, "{\"tracking_number\":\"1Z1\",\"carrier\":\"UPS\"}", NULL, 0,
		 &R);
	assert_int_equal(R.status, 200);
	snprintf(path, sizeof(path), "/api/sales_orders/%s/cancel", id);
	simt_req(&P, "POST", path, "{\"reason\":\"customer\"}", NULL, 0, &R);
	assert_int_equal(R.status, 409);
	j = body_json();
	assert_string_equal(err_code(j), "order_shipped");
	json_decref(j);
	snprintf(path, sizeof(path), "/api/sales_orders/%s", id);
	simt_req(&P, "PATCH", path, "{\"note\":\"too late\"}", NULL, 0, &R);
	assert_int_equal(R.status, 409);
	simt_req(&P, "GET", path, NULL, NULL, 0, &R);
	j = body_json();
	assert_string_equal(json_string_value(json_object_get(j, "status")), "shipped");
	json_decref(j);

	/* An open order cancels (twice is fine); a cancelled one cannot be shipped. */
	simt_req(&P, "POST", "/api/sales_orders", ORDER, NULL, 0, &R);
	j = body_json();
	snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(j, "id")));
	json_decref(j);
	snprintf(path, sizeof(path), "/api/sales_orders/%s/cancel", id);
	simt_req(&P, "POST", path, NULL, NULL, 0, &R);
	assert_int_equal(R.status, 200);
	simt_req(&P, "POST", path, NULL, NULL, 0, &R);
	assert_int_equal(R.status, 200);
	simt_req(&P, "POST", "/api/shipments", "{\"sales_order_id\":\"SO-000002\"}", NULL, 0, &R);
	assert_int_equal(R.status, 409);
	j = body_json();
	assert_string_equal(err_code(j), "order_cancelled");
	json_decref(j);
}

static void test_stock_events(void **state)
{
	int64_t last = 0;
	const char *puts[] = {"{\"on_hand\":120,\"allocated\":8,\"unavailable\":2}",
			      "{\"on_hand\":119}", "{\"on_hand\":119}", "{\"on_hand\":100}"};
	int emitted = 0;

	for (int i = 0; i < 4; i++) {
		simt_req(&P, "PUT", "/api/stock/TSHIRT-RED-M/WH-MAD", puts[i], NULL, 0, &R);
		assert_int_equal(R.status, 200);
		emitted += strstr(R.body, "\"changed\":true") != NULL;
	}
	assert_int_equal(emitted, 3); /* an unchanged PUT emits nothing */
	simt_req(&P, "PUT", "/api/stock/TSHIRT-RED-M/WH-MAD", "{\"on_hand\":-1}", NULL, 0, &R);
	assert_int_equal(R.status, 400);
	for (int i = 0; i < 3; i++) {
		json_t *ev = simt_next_event(C, "baton-sim-erp"), *d = json_object_get(ev, "data");
		assert_string_equal(json_string_value(json_object_get(ev, "type")),
				    "erp.stock.changed");
		assert_string_equal(json_string_value(json_object_get(ev, "source")), "erp/test");
		assert_string_equal(json_string_value(json_object_get(ev, "subject")),
				    "sku/TSHIRT-RED-M");
		assert_string_equal(json_string_value(json_object_get(d, "location")), "WH-MAD");
		assert_int_equal(json_integer_value(json_object_get(d, "allocated")), 8);
		assert_true(json_integer_value(json_object_get(d, "sequence")) > last);
		last = json_integer_value(json_object_get(d, "sequence"));
		assert_int_equal(json_integer_value(json_object_get(d, "on_hand")),
				 i == 0 ? 120 : i == 1 ? 119 : 100);
		assert_non_null(json_string_value(json_object_get(d, "as_of")));
		json_decref(ev);
	}
	simt_req(&P, "GET", "/api/stock?sku=TSHIRT-RED-M", NULL, NULL, 0, &R);
	assert_non_null(strstr(R.body, "\"on_hand\":100"));
}

static void test_customers_journal_items(void **state)
{
	json_t *j;

	simt_req(&P, "POST", "/api/customers", "{\"email\":\"ana@example.com\",\"name\":\"Ana\"}",
		 NULL, 0, &R);
	assert_int_equal(R.status, 201);
	simt_req(&P, "POST", "/api/customers", "{\"email\":\"ana@example.com\"}", NULL, 0, &R);
	assert_int_equal(R.status, 409);
	j = body_json();
	assert_string_equal(err_code(j), "customer_exists");
	assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"),
							      "customer_id")),
			    "C-000001");
	json_decref(j);
	simt_req(&P, "GET", "/api/customers?email=ana@example.com", NULL, NULL, 0, &R);
	assert_non_null(strstr(R.body, "C-000001"));

	simt_req(&P, "POST", "/api/journal_entries",
		 "{\"reference\":\"settlement-1\",\"lines\":[{\"account\":\"1200\",\"debit\":"
		 "\"53.29\"},{\"account\":\"4000\",\"credit\":\"53.30\"}]}",
		 NULL, 0, &R);
	assert_int_equal(R.status, 422);
	j = body_json();
	assert_string_equal(err_code(j), "unbalanced");
	json_decref(j);
	simt_req(&P, "POST", "/api/journal_entries",
		 "{\"reference\":\"settlement-1\",\"lines\":[{\"account\":\"1200\",\"debit\":"
		 "\"53.29\"},{\"account\":\"4000\",\"credit\":\"44.70\"},{\"account\":\"4770\","
		 "\"credit\":\"8.59\"}]}",
		 NULL, 0, &R);
	assert_int_equal(R.status, 201);
	assert_non_null(strstr(R.body, "\"total\":\"53.29\""));

	simt_req(&P, "POST", "/api/items", "{\"sku\":\"MUG\",\"price\":\"4.5\"}", NULL, 0, &R);
	assert_int_equal(R.status, 201);
	assert_non_null(strstr(R.body, "\"price\":\"4.50\""));
	simt_req(&P, "POST", "/api/items", "{\"sku\":\"MUG\"}", NULL, 0, &R);
	assert_int_equal(R.status, 409);
	/* Reset forgets everything created. */
	simt_req(&P, "POST", "/_sim/reset", NULL, NULL, 0, &R);
	json_t *c = counts();
	assert_int_equal(json_integer_value(json_object_get(c, "customers")), 0);
	assert_int_equal(json_integer_value(json_object_get(c, "items")), 0);
	json_decref(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_idempotency, reset_each),
		cmocka_unit_test_setup(test_validation, reset_each),
		cmocka_unit_test_setup(test_cancel_refused_after_ship, reset_each),
		cmocka_unit_test_setup(test_stock_events, reset_each),
		cmocka_unit_test_setup(test_customers_journal_items, reset_each),
	};
	int rc = bt_stack_open(&S, "sim_erp");
	if (rc != 0)
		return rc;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	rc = cmocka_run_group_tests(tests, setup, teardown);
	bt_stack_close(&S);
	return rc;
}
