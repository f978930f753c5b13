/* test_model.c — strict decoding of the canonical order: every field refused with its path,
 * totals checked within the tolerance, round trip to JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "baton/model.h"

/* The order of CONTRACTS.md. */
static const char *const GOOD =
	"{\"order_id\": \"SO-1001\", \"channel\": \"shop-eu\", \"version\": 1, \"currency\": \"EUR\","
	" \"financial_status\": \"paid\", \"customer\": {\"email\": \"ana@example.com\", \"name\":"
	" \"Ana D\\u00edaz\", \"phone\": \"+34600000000\"}, \"shipping_address\": {\"name\": \"Ana\","
	" \"line1\": \"Calle Mayor 1\", \"city\": \"Madrid\", \"postal_code\": \"28013\", \"country\":"
	" \"ES\"}, \"billing_address\": {\"name\": \"Ana\", \"line1\": \"Calle Mayor 1\", \"city\":"
	" \"Madrid\", \"postal_code\": \"28013\", \"country\": \"ES\"}, \"lines\": [{\"line_id\": \"1\","
	" \"sku\": \"TSHIRT-RED-M\", \"quantity\": 2, \"unit_price\": \"19.90\", \"discount\": \"0.00\","
	" \"tax\": \"7.56\"}], \"shipping\": {\"method\": \"standard\", \"price\": \"4.90\", \"tax\":"
	" \"1.03\"}, \"totals\": {\"subtotal\": \"39.80\", \"discount\": \"0.00\", \"tax\": \"8.59\","
	" \"shipping\": \"4.90\", \"grand_total\": \"53.29\"}, \"placed_at\": \"2026-11-22T10:14:58Z\","
	" \"updated_at\": \"2026-11-22T10:14:58Z\", \"future_field\": {\"x\": 1}}";

static json_t *good(void)
{
	json_t *j = json_loads(GOOD, 0, NULL);

	assert_non_null(j);
	return j;
}

static void test_decode_contract_example(void **state)
{
	json_t *d = good();
	baton_order_t o;
	char err[BATON_MODEL_ERR_MAX];

	(void)state;
	assert_int_equal(baton_order_decode(d, &o, err, sizeof(err)), 0);
	assert_string_equal(o.order_id, "SO-1001");
	assert_string_equal(o.channel, "shop-eu");
	assert_int_equal(o.version, 1);
	assert_int_equal(o.decimals, 2);
	assert_int_equal(o.n_lines, 1);
	assert_int_equal(o.lines[0].quantity, 2);
	assert_int_equal(o.lines[0].unit_price, 1990);
	assert_int_equal(o.lines[0].tax, 756);
	assert_int_equal(o.shipping_price, 490);
	assert_int_equal(o.totals.grand_total, 5329);
	assert_int_equal(baton_order_check_totals(&o, 0, err, sizeof(err)), 0);
	json_decref(d); /* the order holds its own reference */
	assert_string_equal(o.lines[0].sku, "TSHIRT-RED-M");
	baton_order_free(&o);
	baton_order_free(&o); /* twice is safe */
}

/* Applies a change to the example (set key at a JSON pointer-ish path, or delete when v is
 * NULL) and expects the decoder's error to be exactly want. */
static void expect_error(const char *obj_path, const char *key, json_t *v, const char *want)
{
	json_t *d = good(), *at = d;
	baton_order_t o;
	char err[BATON_MODEL_ERR_MAX], path[128], *tok, *save;

	snprintf(path, sizeof(path), "%s", obj_path);
	for (tok = strtok_r(path, "/", &save); tok; tok = strtok_r(NULL, "/", &save))
		at = json_is_array(at) ? json_array_get(at, (size_t)atoi(tok))
				       : json_object_get(at, tok);
	assert_non_null(at);
	if (v)
		json_object_set_new(at, key, v);
	else
		json_object_del(at, key);
	if (baton_order_decode(d, &o, err, sizeof(err)) == 0) {
		if (baton_order_check_totals(&o, 1, err, sizeof(err)) == 0)
			fail_msg("accepted; expected '%s'", want);
		baton_order_free(&o);
	}
	if (strcmp(err, want))
		fail_msg("error '%s', expected '%s'", err, want);
	json_decref(d);
}

static void test_required_and_types(void **state)
{
	(void)state;
	expect_error("", "order_id", NULL, "data.order_id: required");
	expect_error("", "order_id", json_string("SO 1"),
		     "data.order_id: may hold only letters, digits and '._:-'");
	expect_error("", "channel", json_integer(1), "data.channel: must be a string");
	expect_error("", "version", json_integer(0), "data.version: must be an integer >= 1");
	expect_error("", "version", json_string("1"), "data.version: must be an integer >= 1");
	expect_error("", "currency", json_string("XYZ"),
		     "data.currency: \"XYZ\" is not a known ISO 4217 currency");
	expect_error("", "financial_status", NULL, "data.financial_status: required");
	expect_error("", "placed_at", json_string("22/11/2026"),
		     "data.placed_at: must be an RFC 3339 time such as 2026-11-22T10:15:00Z");
	expect_error("", "shipping_address", NULL, "data.shipping_address: required");
	expect_error("shipping_address", "country", json_string("Spain"),
		     "data.shipping_address.country: longer than 2 bytes");
	expect_error("billing_address", "country", json_string("es"),
		     "data.billing_address.country: must be an ISO 3166-1 alpha-2 code such as "
		     "\"ES\"");
	expect_error("customer", "email", json_string("nobody"),
		     "data.customer.email: not an email address");
	expect_error("", "lines", json_array(), "data.lines: must hold 1 to 500 lines");
	expect_error("", "lines", json_object(), "data.lines: must be an array");
	expect_error("", "totals", NULL, "data.totals: required");
}

static void test_lines(void **state)
{
	(void)state;
	expect_error("lines/0", "quantity", json_integer(0),
		     "data.lines[0].quantity: must be an integer > 0");
	expect_error("lines/0", "quantity", json_integer(-2),
		     "data.lines[0].quantity: must be an integer > 0");
	expect_error("lines/0", "quantity", json_real(2.0),
		     "data.lines[0].quantity: must be an integer > 0");
	expect_error("lines/0", "quantity", json_string("2"),
		     "data.lines[0].quantity: must be an integer > 0");
	expect_error("lines/0", "quantity", NULL, "data.lines[0].quantity: required");
	expect_error("lines/0", "sku", json_string(""), "data.lines[0].sku: must not be empty");
	expect_error("lines/0", "unit_price", json_real(19.9),
		     "data.lines[0].unit_price: must be a decimal string such as \"19.90\", not a "
		     "JSON number");
	expect_error("lines/0", "unit_price", json_string("19.901"),
		     "data.lines[0].unit_price: \"19.901\": more than 2 decimals");
	expect_error("lines/0", "unit_price", json_string("1e3"),
		     "data.lines[0].unit_price: \"1e3\": not a decimal number");
	expect_error("lines/0", "discount", json_string("-1.00"),
		     "data.lines[0].discount: must not be negative");
	expect_error("lines/0", "discount", json_string("40.00"),
		     "data.lines[0].discount: larger than quantity * unit_price");
	expect_error("lines/0", "unit_price", json_string("92233720368547758.07"),
		     "data.lines[0].unit_price: quantity * unit_price is out of range");
}

static void test_totals(void **state)
{
	(void)state;
	expect_error("totals", "grand_total", json_string("53.31"),
		     "data.totals.grand_total: 53.31 does not match subtotal - discount + tax + "
		     "shipping = 53.29 (tolerance 0.01)");
	expect_error("totals", "subtotal", json_string("39.70"),
		     "data.totals.subtotal: 39.70 does not match sum of quantity * unit_price = "
		     "39.80 (tolerance 0.01)");
	expect_error("totals", "tax", json_string("7.56"),
		     "data.totals.tax: 7.56 does not match sum of line taxes + shipping tax = 8.59 "
		     "(tolerance 0.01)");
}

static void test_tolerance(void **state)
{
	json_t *d = good();
	baton_order_t o;
	char err[BATON_MODEL_ERR_MAX];

	(void)state;
	json_object_set_new(json_object_get(d, "totals"), "grand_total", json_string("53.30"));
	assert_int_equal(baton_order_decode(d, &o, err, sizeof(err)), 0);
	assert_int_equal(baton_order_check_totals(&o, 1, err, sizeof(err)), 0);
	assert_int_equal(baton_order_check_totals(&o, 0, err, sizeof(err)), -1);
	baton_order_free(&o);
	json_decref(d);
}

static void test_to_json(void **state)
{
	json_t *d = good(), *j;
	baton_order_t o;
	char err[BATON_MODEL_ERR_MAX];

	(void)state;
	assert_int_equal(baton_order_decode(d, &o, err, sizeof(err)), 0);
	j = baton_order_to_json(&o);
	assert_non_null(j);
	assert_null(json_object_get(j, "future_field")); /* only what the model knows */
	assert_string_equal(json_string_value(json_object_get(json_object_get(j, "totals"),
							      "grand_total")), "53.29");
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(json_object_get(j, "lines"), 0), "unit_price")),
			    "19.90");
	baton_order_free(&o);
	/* what it wrote decodes to the same order */
	assert_int_equal(baton_order_decode(j, &o, err, sizeof(err)), 0);
	assert_int_equal(o.totals.grand_total, 5329);
	baton_order_free(&o);
	json_decref(j);
	json_decref(d);
}

static void test_not_object(void **state)
{
	baton_order_t o;
	char err[BATON_MODEL_ERR_MAX];
	json_t *a = json_array();

	(void)state;
	assert_int_equal(baton_order_decode(a, &o, err, sizeof(err)), -1);
	assert_string_equal(err, "data: must be an object");
	assert_int_equal(baton_order_decode(NULL, &o, err, sizeof(err)), -1);
	json_decref(a);
}

static void test_rfc3339(void **state)
{
	(void)state;
	assert_true(baton_rfc3339_valid("2026-11-22T10:15:00Z"));
	assert_true(baton_rfc3339_valid("2026-11-22T10:15:00.123Z"));
	assert_true(baton_rfc3339_valid("2026-11-22T10:15:00+01:00"));
	assert_false(baton_rfc3339_valid("2026-11-22 10:15:00Z"));
	assert_false(baton_rfc3339_valid("2026-11-22T10:15:00"));
	assert_false(baton_rfc3339_valid("2026-11-22T10:15:00Zjunk"));
	assert_false(baton_rfc3339_valid(""));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decode_contract_example),
		cmocka_unit_test(test_required_and_types),
		cmocka_unit_test(test_lines),
		cmocka_unit_test(test_totals),
		cmocka_unit_test(test_tolerance),
		cmocka_unit_test(test_to_json),
		cmocka_unit_test(test_not_object),
		cmocka_unit_test(test_rfc3339),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
