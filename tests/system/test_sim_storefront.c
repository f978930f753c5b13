/* test_sim_storefront.c — baton-sim-storefront as a real process: the leaky-bucket rate limiter
 * (burst of 60: 40 accepted, then 429 with Retry-After, accepted again after waiting as told),
 * inventory compare-and-set, order notes and fulfillments, and a checkout that stops selling at 0
 * and emits storefront.order.created to RabbitMQ. */
#include "testkit.h"
#include "../../tools/sim/testing/simtest.h"
#include "../../tools/sim/testing/simamqp.h"

#include <jansson.h>

#define SF BATON_BINARY_DIR "/tools/sim/baton-sim-storefront"

static bt_stack_t S;
static simt_proc_t P;
static simt_resp_t R;
static amqp_connection_state_t C;

static int setup(void **state)
{
	char amqp[600];
	const char *args[] = {"--amqp", amqp, "--leak-rate", "1", NULL};

	C = bt_amqp_open(&S);
	/* Bind before the simulator runs so that no event can be missed. */
	simt_bind_events(C, "sf.events", "storefront.#");
	snprintf(amqp, sizeof(amqp), "%s", S.amqp_url);
	return simt_start(&P, SF, args, NULL);
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

static void test_rate_limiter(void **state)
{
	const char *shop[] = {"X-Shopify-Shop-Domain: burst.myshopify.com", NULL};
	const char *other[] = {"X-Shopify-Shop-Domain: other.myshopify.com", NULL};
	int accepted = 0, limited = 0, first_429 = -1;
	char hv[64], retry[16] = "";

	for (int i = 0; i < 60; i++) {
		simt_req(&P, "GET", "/admin/api/inventory_levels", NULL, shop, 0, &R);
		assert_int_equal(R.rc, CURLE_OK);
		assert_true(R.status == 200 || R.status == 429);
		assert_non_null(simt_header(&R, "X-Shopify-Shop-Api-Call-Limit", hv, sizeof(hv)));
		if (i == 0)
			assert_string_equal(hv, "1/40");
		if (R.status == 200) {
			assert_int_equal(limited, 0); /* no acceptance after the first refusal */
			accepted++;
			continue;
		}
		if (first_429 < 0) {
			json_t *j = body_json();
			first_429 = i;
			assert_string_equal(err_code(j), "rate_limited");
			json_decref(j);
			assert_string_equal(hv, "40/40");
			assert_non_null(simt_header(&R, "Retry-After", retry, sizeof(retry)));
		}
		limited++;
	}
	assert_int_equal(accepted, 40);
	assert_int_equal(limited, 20);
	assert_int_equal(first_429, 40);
	/* Another shop has its own bucket. */
	simt_req(&P, "GET", "/admin/api/inventory_levels", NULL, other, 0, &R);
	assert_int_equal(R.status, 200);
	/* Wait as told, then the request is accepted again. */
	assert_true(atoi(retry) >= 1);
	bt_sleep_ms(atoi(retry) * 1000);
	simt_req(&P, "GET", "/admin/api/inventory_levels", NULL, shop, 0, &R);
	assert_int_equal(R.status, 200);
	/* The checkout is not part of the Admin API: not limited. */
	simt_req(&P, "POST", "/checkout", "{\"lines\":[{\"sku\":\"NONE\",\"quantity\":1}]}", NULL,
		 0, &R);
	assert_int_equal(R.status, 409);
}

static void set_qty(const char *body, long want)
{
	simt_req(&P, "POST", "/admin/api/inventory/set_quantities", body, NULL, 0, &R);
	if (R.status != want)
		fprintf(stderr, "set_quantities: %ld %s\n", R.status, R.body);
	assert_int_equal(R.status, want);
}

static int64_t available(const char *sku, const char *loc)
{
	char path[256];
	json_t *j;
	int64_t v;

	snprintf(path, sizeof(path), "/admin/api/inventory_levels?sku=%s&location_id=%s", sku, loc);
	simt_req(&P, "GET", path, NULL, NULL, 0, &R);
	assert_int_equal(R.status, 200);
	j = body_json();
	assert_int_equal(json_array_size(json_object_get(j, "inventory_levels")), 1);
	v = json_integer_value(
		json_object_get(json_array_get(json_object_get(j, "inventory_levels"), 0),
				"available"));
	json_decref(j);
	return v;
}

static void test_compare_and_set(void **state)
{
	json_t *j, *st;

	set_qty("{\"reason\":\"correction\",\"quantities\":[{\"sku\":\"TSHIRT-RED-M\","
		"\"location_id\":1,\"quantity\":5,\"compare_quantity\":null}]}",
		200);
	assert_int_equal(available("TSHIRT-RED-M", "1"), 5);
	/* Stale expectation: refused with its own code, listing the current quantity. */
	set_qty("{\"reason\":\"correction\",\"quantities\":[{\"sku\":\"TSHIRT-RED-M\","
		"\"location_id\":1,\"quantity\":9,\"compare_quantity\":3}]}",
		409);
	j = body_json();
	assert_string_equal(err_code(j), "compare_quantity_stale");
	st = json_array_get(json_object_get(json_object_get(j, "error"), "stale"), 0);
	assert_int_equal(json_integer_value(json_object_get(st, "quantity")), 5);
	assert_int_equal(json_integer_value(json_object_get(st, "compare_quantity")), 3);
	json_decref(j);
	assert_int_equal(available("TSHIRT-RED-M", "1"), 5);
	/* Correct expectation (by inventory item id): accepted. */
	set_qty("{\"reason\":\"correction\",\"quantities\":[{\"inventory_item_id\":1001,"
		"\"location_id\":\"1\",\"quantity\":7,\"compare_quantity\":5}]}",
		200);
	j = body_json();
	assert_int_equal(json_integer_value(json_object_get(
				 json_array_get(json_object_get(json_object_get(
							    j, "inventory_adjustment_group"),
								"changes"),
						0),
				 "delta")),
			 2);
	json_decref(j);
	assert_int_equal(available("TSHIRT-RED-M", "1"), 7);
	/* All or nothing: one stale entry refuses the whole batch. */
	set_qty("{\"reason\":\"correction\",\"quantities\":["
		"{\"sku\":\"MUG\",\"location_id\":1,\"quantity\":3,\"compare_quantity\":null},"
		"{\"sku\":\"TSHIRT-RED-M\",\"location_id\":1,\"quantity\":1,\"compare_quantity\":6}]}",
		409);
	simt_req(&P, "GET", "/admin/api/inventory_levels?sku=MUG", NULL, NULL, 0, &R);
	assert_non_null(strstr(R.body, "\"inventory_levels\":[]"));
	/* Precise 400s. */
	set_qty("{\"quantities\":[{\"sku\":\"A\",\"location_id\":1,\"quantity\":1}]}", 400);
	j = body_json();
	assert_string_equal(err_code(j), "field_missing");
	json_decref(j);
	set_qty("{\"reason\":\"x\",\"quantities\":[{\"sku\":\"A\",\"location_id\":1,"
		"\"quantity\":\"1\"}]}",
		400);
	set_qty("{\"reason\":\"x\",\"quantities\":[{\"inventory_item_id\":424242,"
		"\"location_id\":1,\"quantity\":1}]}",
		422);
	set_qty("{\"reason\":", 400);
	j = body_json();
	assert_string_equal(err_code(j), "invalid_json");
	json_decref(j);
}

static void test_checkout_stops_at_zero_and_emits(void **state)
{
	json_t *j, *ev, *data, *tot;
	char oid[2][64];
	int64_t sum = 0, v;

	set_qty("{\"reason\":\"received\",\"quantities\":[{\"sku\":\"CAP\",\"location_id\":2,"
		"\"quantity\":2}]}",
		200);
	for (int i = 0; i < 2; i++) {
		simt_req(&P, "POST", "/checkout",
			 "{\"channel\":\"shop-eu\",\"lines\":[{\"sku\":\"CAP\",\"quantity\":1,"
			 "\"unit_price\":\"19.90\"}]}",
			 NULL, 0, &R);
		assert_int_equal(R.status, 201);
		j = body_json();
		snprintf(oid[i], sizeof(oid[i]), "%s",
			 json_string_value(json_object_get(json_object_get(j, "order"), "order_id")));
		json_decref(j);
	}
	simt_req(&P, "POST", "/checkout",
		 "{\"channel\":\"shop-eu\",\"lines\":[{\"sku\":\"CAP\",\"quantity\":1}]}", NULL, 0,
		 &R);
	assert_int_equal(R.status, 409);
	j = body_json();
	assert_string_equal(err_code(j), "out_of_stock");
	json_decref(j);
	assert_int_equal(available("CAP", "2"), 0);

	for (int i = 0; i < 2; i++) {
		char subject[160];
		ev = simt_next_event(C, "baton-sim-storefront");
		assert_string_equal(json_string_value(json_object_get(ev, "type")),
				    "storefront.order.created");
		assert_string_equal(json_string_value(json_object_get(ev, "source")),
				    "storefront/shop-eu");
		snprintf(subject, sizeof(subject), "order/%s", oid[i]);
		assert_string_equal(json_string_value(json_object_get(ev, "subject")), subject);
		data = json_object_get(ev, "data");
		assert_string_equal(json_string_value(json_object_get(data, "order_id")), oid[i]);
		assert_int_equal(json_integer_value(json_object_get(data, "version")), 1);
		assert_non_null(json_object_get(data, "customer"));
		assert_non_null(json_object_get(data, "shipping_address"));
		tot = json_object_get(data, "totals");
		assert_string_equal(json_string_value(json_object_get(tot, "subtotal")), "19.90");
		/* grand_total = subtotal - discount + tax + shipping */
		const char *k[] = {"subtotal", "tax", "shipping"};
		sum = 0;
		for (int x = 0; x < 3; x++) {
			double d = atof(json_string_value(json_object_get(tot, k[x])));
			sum += (int64_t)(d * 100 + 0.5);
		}
		v = (int64_t)(atof(json_string_value(json_object_get(tot, "grand_total"))) * 100 +
			      0.5);
		assert_int_equal(sum, v);
		json_decref(ev);
	}
	simt_req(&P, "GET", "/_sim/state", NULL, NULL, 0, &R);
	j = body_json();
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "counts"),
							    "checkouts_sold")),
			 2);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "counts"),
							    "checkouts_refused")),
			 1);
	json_decref(j);
	/* Every emitted event was confirmed by the broker (bounded wait). */
	for (int i = 0; i < 100; i++) {
		simt_req(&P, "GET", "/_sim/events", NULL, NULL, 0, &R);
		if (strstr(R.body, "\"published\":2"))
			break;
		bt_sleep_ms(50);
	}
	assert_non_null(strstr(R.body, "\"published\":2"));
}

static void test_notes_and_fulfillments(void **state)
{
	json_t *j, *o;
	const char *f = "{\"fulfillment\":{\"location_id\":1,\"tracking_number\":\"1Z999\","
			"\"tracking_company\":\"UPS\",\"line_items\":[{\"sku\":\"CAP\","
			"\"quantity\":1}]}}";

	simt_req(&P, "PUT", "/admin/api/2024-01/orders/SO-1001.json",
		 "{\"order\":{\"note\":\"ERP SO-000042\",\"note_attributes\":[{\"name\":"
		 "\"erp_document\",\"value\":\"SO-000042\"}]}}",
		 NULL, 0, &R);
	assert_int_equal(R.status, 200);
	j = body_json();
	o = json_object_get(j, "order");
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(json_object_get(o, "note_attributes"), 0), "value")),
			    "SO-000042");
	json_decref(j);
	simt_req(&P, "PUT", "/admin/api/orders/SO-1001", "{\"order\":{\"total_price\":\"1\"}}",
		 NULL, 0, &R);
	assert_int_equal(R.status, 400);
	simt_req(&P, "POST", "/admin/api/orders/SO-1001/fulfillments", f, NULL, 0, &R);
	assert_int_equal(R.status, 201);
	j = body_json();
	assert_string_equal(json_string_value(json_object_get(json_object_get(j, "fulfillment"),
							      "tracking_number")),
			    "1Z999");
	json_decref(j);
	simt_req(&P, "POST", "/admin/api/orders/SO-1001/fulfillments", f, NULL, 0, &R);
	assert_int_equal(R.status, 201);
	simt_req(&P, "POST", "/admin/api/orders/SO-1001/fulfillments", "{\"tracking\":1}", NULL, 0,
		 &R);
	assert_int_equal(R.status, 400);
	/* Duplicates are visible in the inspection state. */
	simt_req(&P, "GET", "/_sim/state", NULL, NULL, 0, &R);
	j = body_json();
	o = json_object_get(j, "counts");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(o,
									    "fulfillments_by_order"),
							    "SO-1001")),
			 2);
	assert_string_equal(json_string_value(json_array_get(json_object_get(o,
									     "duplicate_fulfillments"),
							     0)),
			    "SO-1001");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(o,
									    "order_updates_by_order"),
							    "SO-1001")),
			 1);
	json_decref(j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_rate_limiter, reset_each),
		cmocka_unit_test_setup(test_compare_and_set, reset_each),
		cmocka_unit_test_setup(test_checkout_stops_at_zero_and_emits, reset_each),
		cmocka_unit_test_setup(test_notes_and_fulfillments, reset_each),
	};
	int rc = bt_stack_open(&S, "sim_storefront");
	if (rc != 0)
		return rc;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	rc = cmocka_run_group_tests(tests, setup, teardown);
	bt_stack_close(&S);
	return rc;
}
