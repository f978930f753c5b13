/* test_money.c — decimal strings <-> int64 minor units: strict parsing, formatting, overflow. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "baton/money.h"

static int64_t parse_ok(const char *s, int dec)
{
	int64_t v = -999;
	char why[80];

	if (baton_money_parse(s, dec, &v, why, sizeof(why)) != 0)
		fail_msg("'%s' refused: %s", s, why);
	return v;
}

static void parse_bad(const char *s, int dec, const char *reason)
{
	int64_t v = 42;
	char why[80] = "";

	if (baton_money_parse(s, dec, &v, why, sizeof(why)) == 0)
		fail_msg("'%s' accepted as %lld", s, (long long)v);
	assert_int_equal(v, 42);
	if (reason && !strstr(why, reason))
		fail_msg("'%s': reason '%s' lacks '%s'", s, why, reason);
}

static void test_parse(void **state)
{
	(void)state;
	assert_int_equal(parse_ok("19.90", 2), 1990);
	assert_int_equal(parse_ok("19.9", 2), 1990);
	assert_int_equal(parse_ok("19", 2), 1900);
	assert_int_equal(parse_ok("0", 2), 0);
	assert_int_equal(parse_ok("0.05", 2), 5);
	assert_int_equal(parse_ok("-0.05", 2), -5);
	assert_int_equal(parse_ok("-0.00", 2), 0);
	assert_int_equal(parse_ok("1990", 0), 1990);
	assert_int_equal(parse_ok("1.234", 3), 1234);
	assert_int_equal(parse_ok("92233720368547758.07", 2), INT64_MAX);
	assert_int_equal(parse_ok("-92233720368547758.08", 2), INT64_MIN);
}

static void test_parse_strict(void **state)
{
	(void)state;
	parse_bad("19.905", 2, "more than 2 decimals");
	parse_bad("19.5", 0, "more than 0 decimals");
	parse_bad("1e3", 2, "not a decimal number");
	parse_bad("1.9e0", 2, "not a decimal number");
	parse_bad("+1.00", 2, "not a decimal number");
	parse_bad(" 1.00", 2, NULL);
	parse_bad("1.00 ", 2, NULL);
	parse_bad("1,00", 2, NULL);
	parse_bad("01.00", 2, "leading zeros");
	parse_bad("1.", 2, "digits are required");
	parse_bad(".5", 2, NULL);
	parse_bad("", 2, NULL);
	parse_bad("-", 2, NULL);
	parse_bad("NaN", 2, NULL);
	parse_bad("92233720368547758.08", 2, "out of range");
	parse_bad("99999999999999999999", 0, "out of range");
	parse_bad("92233720368547758", 3, "out of range");
	parse_bad(NULL, 2, NULL);
}

static void test_format(void **state)
{
	char b[40];

	(void)state;
	baton_money_format(1990, 2, b, sizeof(b));
	assert_string_equal(b, "19.90");
	baton_money_format(5, 2, b, sizeof(b));
	assert_string_equal(b, "0.05");
	baton_money_format(-5, 2, b, sizeof(b));
	assert_string_equal(b, "-0.05");
	baton_money_format(0, 2, b, sizeof(b));
	assert_string_equal(b, "0.00");
	baton_money_format(1990, 0, b, sizeof(b));
	assert_string_equal(b, "1990");
	baton_money_format(1234, 3, b, sizeof(b));
	assert_string_equal(b, "1.234");
	baton_money_format(INT64_MIN, 2, b, sizeof(b));
	assert_string_equal(b, "-92233720368547758.08");
	assert_int_equal(baton_money_format(1990, 2, b, 3), 5); /* like snprintf */
	assert_string_equal(b, "19");
}

static void test_round_trip(void **state)
{
	static const int64_t vals[] = {0, 1, -1, 99, 100, 123456789, INT64_MAX, INT64_MIN};
	char b[40];

	(void)state;
	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++)
		for (int dec = 0; dec <= 3; dec++) {
			baton_money_format(vals[i], dec, b, sizeof(b));
			assert_int_equal(parse_ok(b, dec), vals[i]);
		}
}

static void test_arith(void **state)
{
	int64_t r = 7;

	(void)state;
	assert_int_equal(baton_money_add(1, 2, &r), 0);
	assert_int_equal(r, 3);
	assert_int_equal(baton_money_add(INT64_MAX, 1, &r), -1);
	assert_int_equal(r, 3);
	assert_int_equal(baton_money_sub(INT64_MIN, 1, &r), -1);
	assert_int_equal(baton_money_mul(INT64_MAX / 2, 3, &r), -1);
	assert_int_equal(baton_money_mul(1990, 3, &r), 0);
	assert_int_equal(r, 5970);
}

static void test_currencies(void **state)
{
	(void)state;
	assert_int_equal(baton_currency_decimals("EUR"), 2);
	assert_int_equal(baton_currency_decimals("JPY"), 0);
	assert_int_equal(baton_currency_decimals("KWD"), 3);
	assert_int_equal(baton_currency_decimals("XXX"), -1);
	assert_int_equal(baton_currency_decimals("eur"), -1);
	assert_int_equal(baton_currency_decimals("EURO"), -1);
	assert_int_equal(baton_currency_decimals(NULL), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),      cmocka_unit_test(test_parse_strict),
		cmocka_unit_test(test_format),     cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_arith),      cmocka_unit_test(test_currencies),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
