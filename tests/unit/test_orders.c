/* test_orders.c — baton-orders' pure rules: configuration (every problem reported), payment
 * rule, SKU map, the ERP request body, the waiting bounds, the order document. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "orders.h"

static baton_config_t cfg_with(const char *file)
{
	baton_config_t c;

	memset(&c, 0, sizeof(c));
	c.erp_url = "http://127.0.0.1:1";
	c.storefront_url = "http://127.0.0.1:2";
	c.http_timeout_ms = 30000;
	c.n_retry_tiers = 3;
	c.retry_tiers_ms[0] = 1000;
	c.retry_tiers_ms[1] = 2000;
	c.retry_tiers_ms[2] = 4000;
	c.file = file ? json_loads(file, 0, NULL) : NULL;
	if (file)
		assert_non_null(c.file);
	return c;
}

static void test_config_defaults(void **state)
{
	baton_config_t bc = cfg_with(NULL);
	orders_config_t c;
	char errs[1024];

	(void)state;
	assert_int_equal(orders_config_parse(&bc, &c, errs, sizeof(errs)), 0);
	assert_string_equal(errs, "");
	assert_int_equal(c.item_lookup, 1);
	assert_int_equal(c.writeback, 1);
	assert_int_equal(c.tolerance, 1);
	assert_int_equal(c.pending_max_ms, 30 * 60 * 1000);
	assert_int_equal(c.not_found_max_ms, 2 * 60 * 1000);
	assert_int_equal(orders_payment_rule(&c, "paid"), ORDERS_PAY_IMPORT);
	assert_int_equal(orders_payment_rule(&c, "authorized"), ORDERS_PAY_IMPORT);
	assert_int_equal(orders_payment_rule(&c, "pending"), ORDERS_PAY_WAIT);
	assert_int_equal(orders_payment_rule(&c, "voided"), ORDERS_PAY_REFUSE);
	assert_int_equal(orders_payment_rule(&c, NULL), ORDERS_PAY_REFUSE);
	orders_config_free(&c);
}

static void test_config_values(void **state)
{
	baton_config_t bc = cfg_with(
		"{\"sku_map\": {\"shop-eu\": {\"A\": \"TOP-A\"}}, \"orders\": {\"sku_map\": "
		"{\"shop-eu\": {\"B\": \"ITEM-B\"}}, \"item_master_lookup\": false, \"payment\": "
		"{\"import\": [\"paid\"], \"wait\": [\"pending\", \"authorized\"], \"pending_max\": "
		"\"2h\"}, \"not_found_max\": \"5m\", \"lease\": \"90s\", \"total_tolerance_minor\": 3,"
		" \"writeback\": false}}");
	orders_config_t c;
	char errs[1024];

	(void)state;
	assert_int_equal(orders_config_parse(&bc, &c, errs, sizeof(errs)), 0);
	assert_string_equal(orders_sku_lookup(&c, "shop-eu", "B"), "ITEM-B");
	assert_null(orders_sku_lookup(&c, "shop-eu", "A")); /* orders.sku_map wins */
	assert_null(orders_sku_lookup(&c, "shop-us", "B"));
	assert_int_equal(c.item_lookup, 0);
	assert_int_equal(c.writeback, 0);
	assert_int_equal(c.tolerance, 3);
	assert_int_equal(c.pending_max_ms, 2 * 3600 * 1000);
	assert_int_equal(c.not_found_max_ms, 5 * 60 * 1000);
	assert_int_equal(c.lease_ms, 90000);
	assert_int_equal(orders_payment_rule(&c, "authorized"), ORDERS_PAY_WAIT);
	orders_config_free(&c);
	json_decref(bc.file);
}

static int count_lines(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static void test_config_problems(void **state)
{
	baton_config_t bc = cfg_with(
		"{\"orders\": {\"colour\": 1, \"sku_map\": {\"shop-eu\": {\"A\": 7}, \"x\": 3}, "
		"\"payment\": {\"pending_max\": \"soon\", \"import\": \"paid\", \"when\": 1}, "
		"\"lease\": \"1s\", \"total_tolerance_minor\": -1, \"writeback\": \"yes\"}}");
	orders_config_t c;
	char errs[4096];
	int n;

	(void)state;
	bc.erp_url = NULL;
	n = orders_config_parse(&bc, &c, errs, sizeof(errs));
	assert_int_equal(n, count_lines(errs));
	assert_int_equal(n, 10);
	assert_non_null(strstr(errs, "BATON_CONFIG orders.colour: unknown member"));
	assert_non_null(strstr(errs, "BATON_CONFIG orders.sku_map.shop-eu.A: expected a non-empty"));
	assert_non_null(strstr(errs, "BATON_CONFIG orders.sku_map.x: expected an object"));
	assert_non_null(strstr(errs, "BATON_CONFIG orders.payment.pending_max: expected a duration"));
	assert_non_null(strstr(errs, "BATON_CONFIG orders.payment.import: expected an array"));
	assert_non_null(strstr(errs, "BATON_CONFIG orders.payment.when: unknown member"));
	assert_non_null(strstr(errs, "BATON_CONFIG orders.lease: must be longer than"));
	assert_non_null(strstr(errs, "BATON_CONFIG orders.total_tolerance_minor: expected"));
	assert_non_null(strstr(errs, "BATON_CONFIG orders.writeback: expected true or false"));
	assert_non_null(strstr(errs, "BATON_ERP_URL: required"));
	/* writeback stayed at its default (true) and the storefront URL is there: no problem */
	assert_null(strstr(errs, "BATON_STOREFRONT_URL"));
	orders_config_free(&c);
	json_decref(bc.file);
}

static void test_config_storefront_required(void **state)
{
	baton_config_t bc = cfg_with("{\"orders\": []}");
	orders_config_t c;
	char errs[1024];

	(void)state;
	bc.storefront_url = NULL;
	assert_int_equal(orders_config_parse(&bc, &c, errs, sizeof(errs)), 2);
	assert_non_null(strstr(errs, "BATON_CONFIG orders: expected an object\n"));
	assert_non_null(strstr(errs, "BATON_STOREFRONT_URL: required"));
	orders_config_free(&c);
	json_decref(bc.file);
}

static void test_waiting_bounds(void **state)
{
	baton_config_t bc = cfg_with(NULL);

	(void)state;
	assert_int_equal(orders_waited_ms(&bc, 1), 0);
	assert_int_equal(orders_waited_ms(&bc, 2), 1000);
	assert_int_equal(orders_waited_ms(&bc, 3), 3000);
	assert_int_equal(orders_waited_ms(&bc, 4), 7000);
	assert_int_equal(orders_waited_ms(&bc, 9), 7000);
	assert_false(orders_wait_exceeded(&bc, 1, 3000));
	assert_false(orders_wait_exceeded(&bc, 2, 3000));
	assert_true(orders_wait_exceeded(&bc, 3, 3000));
	/* a bound longer than the tiers: parked before the runtime would call it exhausted */
	assert_false(orders_wait_exceeded(&bc, 3, 3600000));
	assert_true(orders_wait_exceeded(&bc, 4, 3600000));
}

static const char *const ORDER =
	"{\"order_id\": \"SO-1\", \"channel\": \"shop-eu\", \"version\": 3, \"currency\": \"EUR\","
	" \"financial_status\": \"paid\", \"shipping_address\": {\"line1\": \"Calle Mayor 1\","
	" \"city\": \"Madrid\", \"country\": \"ES\"}, \"note\": \"ring twice\", \"lines\":"
	" [{\"line_id\": \"1\", \"sku\": \"A\", \"quantity\": 2, \"unit_price\": \"19.9\"},"
	" {\"sku\": \"B\", \"quantity\": 1, \"unit_price\": \"5.00\", \"discount\": \"0.50\"}],"
	" \"totals\": {\"subtotal\": \"44.80\", \"discount\": \"0.50\", \"tax\": \"0.00\","
	" \"grand_total\": \"44.30\"}, \"placed_at\": \"2026-11-22T10:14:58Z\"}";

static void test_erp_body(void **state)
{
	json_t *d = json_loads(ORDER, 0, NULL), *b, *l;
	baton_order_t o;
	char err[BATON_MODEL_ERR_MAX], ref[64];
	const char *items[] = {"ITEM-A", "ITEM-B"};

	(void)state;
	assert_int_equal(baton_order_decode(d, &o, err, sizeof(err)), 0);
	assert_int_equal(baton_order_check_totals(&o, 0, err, sizeof(err)), 0);
	orders_ref(&o, ref, sizeof(ref));
	assert_string_equal(ref, "shop-eu:SO-1");
	b = orders_erp_body(&o, items, 1);
	assert_non_null(b);
	assert_string_equal(json_string_value(json_object_get(b, "external_ref")), "shop-eu:SO-1");
	assert_string_equal(json_string_value(json_object_get(b, "note")), "ring twice");
	l = json_array_get(json_object_get(b, "lines"), 0);
	assert_string_equal(json_string_value(json_object_get(l, "sku")), "ITEM-A");
	assert_string_equal(json_string_value(json_object_get(l, "unit_price")), "19.90");
	l = json_array_get(json_object_get(b, "lines"), 1);
	assert_string_equal(json_string_value(json_object_get(l, "discount")), "0.50");
	assert_string_equal(json_string_value(json_object_get(
				    json_object_get(b, "attributes"), "baton_version")), "3");
	assert_string_equal(json_string_value(json_object_get(json_object_get(b, "totals"),
							      "grand_total")), "44.30");
	json_decref(b);
	b = orders_erp_body(&o, items, 0); /* PATCH: no external_ref */
	assert_null(json_object_get(b, "external_ref"));
	json_decref(b);
	/* the same order gives the same body (the Idempotency-Key contract) */
	b = orders_erp_body(&o, items, 1);
	l = orders_erp_body(&o, items, 1);
	assert_true(json_equal(b, l));
	json_decref(b);
	json_decref(l);
	b = orders_doc_new(&o, "open", "SO-000001", NULL, "m-1");
	assert_string_equal(json_string_value(json_object_get(b, "status")), "open");
	assert_int_equal(json_integer_value(json_object_get(b, "source_version")), 3);
	assert_string_equal(json_string_value(json_object_get(b, "erp_order_id")), "SO-000001");
	assert_non_null(json_object_get(json_object_get(b, "order"), "lines"));
	json_decref(b);
	b = orders_doc_new(&o, "pending_payment", NULL, NULL, "m-1");
	assert_null(json_object_get(b, "erp_order_id"));
	json_decref(b);
	baton_order_free(&o);
	json_decref(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_defaults),
		cmocka_unit_test(test_config_values),
		cmocka_unit_test(test_config_problems),
		cmocka_unit_test(test_config_storefront_required),
		cmocka_unit_test(test_waiting_bounds),
		cmocka_unit_test(test_erp_body),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
