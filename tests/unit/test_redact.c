/* test_redact.c — personal data and secrets never reach the audit trail: PII keys, containers
 * (customer, addresses) keeping only "country", secrets at any depth, case-insensitivity, the
 * input left untouched, deep nesting failing closed. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "baton/redact.h"

static json_t *load(const char *text)
{
	json_error_t e;
	json_t *j = json_loads(text, JSON_DECODE_ANY, &e);

	if (!j)
		fail_msg("bad test JSON: %s", e.text);
	return j;
}

/* Asserts that redact(in) equals want (both JSON texts). */
static void check(const char *in, const char *want)
{
	json_t *src = load(in), *exp = load(want), *got = baton_redact(src);
	char *before = json_dumps(src, JSON_SORT_KEYS | JSON_ENCODE_ANY);

	assert_non_null(got);
	if (!json_equal(got, exp)) {
		char *g = json_dumps(got, JSON_SORT_KEYS | JSON_ENCODE_ANY);
		fail_msg("redact(%s)\n got  %s\n want %s", in, g, want);
	}
	/* a deep copy: the input is unchanged */
	char *after = json_dumps(src, JSON_SORT_KEYS | JSON_ENCODE_ANY);
	assert_string_equal(before, after);
	free(before);
	free(after);
	json_decref(src);
	json_decref(exp);
	json_decref(got);
}

static void test_pii_keys(void **state)
{
	check("{\"email\":\"a@b.c\",\"phone\":\"+49 1\",\"name\":\"Ann\",\"first_name\":\"A\","
	      "\"last_name\":\"B\",\"line1\":\"x\",\"line2\":\"y\",\"address1\":\"1\","
	      "\"address2\":\"2\",\"street\":\"s\",\"postal_code\":\"10115\",\"zip\":\"12345\","
	      "\"tax_id\":\"DE1\",\"iban\":\"DE89\",\"card\":{\"last4\":\"4242\"},"
	      "\"ip\":\"1.2.3.4\","
	      "\"birth_date\":\"1990-01-01\",\"order_id\":\"SO-1\",\"total\":12.5,\"qty\":3}",
	      "{\"email\":\"[redacted]\",\"phone\":\"[redacted]\",\"name\":\"[redacted]\","
	      "\"first_name\":\"[redacted]\",\"last_name\":\"[redacted]\",\"line1\":\"[redacted]\","
	      "\"line2\":\"[redacted]\",\"address1\":\"[redacted]\",\"address2\":\"[redacted]\","
	      "\"street\":\"[redacted]\",\"postal_code\":\"[redacted]\",\"zip\":\"[redacted]\","
	      "\"tax_id\":\"[redacted]\",\"iban\":\"[redacted]\",\"card\":\"[redacted]\","
	      "\"ip\":\"[redacted]\",\"birth_date\":\"[redacted]\",\"order_id\":\"SO-1\","
	      "\"total\":12.5,\"qty\":3}");
}

static void test_case_insensitive_and_nested(void **state)
{
	check("{\"Email\":\"a@b.c\",\"PHONE\":1234,\"lines\":[{\"sku\":\"X\",\"Name\":\"Shirt\"}],"
	      "\"meta\":{\"deep\":{\"IBAN\":\"DE89\",\"iban_country\":\"DE\"}},\"nothing\":null,"
	      "\"email_address\":\"e\"}",
	      "{\"Email\":\"[redacted]\",\"PHONE\":\"[redacted]\",\"lines\":[{\"sku\":\"X\","
	      "\"Name\":\"[redacted]\"}],\"meta\":{\"deep\":{\"IBAN\":\"[redacted]\","
	      "\"iban_country\":\"DE\"}},\"nothing\":null,\"email_address\":\"[redacted]\"}");
	/* exact key names only: no substring matches for personal data */
	check("{\"username_hint\":\"x\",\"zipped\":true,\"hostname\":\"h\"}",
	      "{\"username_hint\":\"x\",\"zipped\":true,\"hostname\":\"h\"}");
	/* a null personal field stays null */
	check("{\"email\":null}", "{\"email\":null}");
}

static void test_containers_keep_only_country(void **state)
{
	check("{\"customer\":{\"id\":42,\"ref\":\"C-9\",\"vip\":true,\"note\":null,"
	      "\"tags\":[\"gold\",\"early\"],\"company\":{\"label\":\"ACME\"}},"
	      "\"shipping_address\":{\"city\":\"Berlin\",\"country\":\"DE\",\"region\":\"BE\"},"
	      "\"billing_address\":{\"country\":\"FR\",\"city\":\"Paris\"},"
	      "\"payment\":{\"address\":{\"country\":\"IT\",\"city\":\"Roma\"}},"
	      "\"Customer\":\"C-1\",\"address\":\"1 Main St\",\"status\":\"new\"}",
	      "{\"customer\":{\"id\":42,\"ref\":\"[redacted]\",\"vip\":true,\"note\":null,"
	      "\"tags\":[\"[redacted]\",\"[redacted]\"],\"company\":{\"label\":\"[redacted]\"}},"
	      "\"shipping_address\":{\"city\":\"[redacted]\",\"country\":\"DE\","
	      "\"region\":\"[redacted]\"},"
	      "\"billing_address\":{\"country\":\"FR\",\"city\":\"[redacted]\"},"
	      "\"payment\":{\"address\":{\"country\":\"IT\",\"city\":\"[redacted]\"}},"
	      "\"Customer\":\"[redacted]\",\"address\":\"[redacted]\",\"status\":\"new\"}");
	/* "country" is kept only inside containers; outside them it is an ordinary field */
	check("{\"country\":\"DE\",\"customer\":{\"addresses\":[{\"country\":\"AT\","
	      "\"street\":\"S 1\"}]}}",
	      "{\"country\":\"DE\",\"customer\":{\"addresses\":[{\"country\":\"AT\","
	      "\"street\":\"[redacted]\"}]}}");
}

static void test_secrets(void **state)
{
	check("{\"password\":\"p\",\"db_password\":\"p\",\"client_secret\":\"s\","
	      "\"access_token\":{\"v\":1},\"headers\":{\"Authorization\":\"Bearer x\","
	      "\"X-API-Key\":\"k\",\"accept\":\"json\"},\"api_key\":\"k\",\"ApiKey\":\"k\","
	      "\"customer\":{\"token\":\"t\",\"country\":\"DE\"},\"tokens_used\":5}",
	      "{\"password\":\"[secret]\",\"db_password\":\"[secret]\","
	      "\"client_secret\":\"[secret]\","
	      "\"access_token\":\"[secret]\",\"headers\":{\"Authorization\":\"[secret]\","
	      "\"X-API-Key\":\"[secret]\",\"accept\":\"json\"},\"api_key\":\"[secret]\","
	      "\"ApiKey\":\"[secret]\",\"customer\":{\"token\":\"[secret]\",\"country\":\"DE\"},"
	      "\"tokens_used\":\"[secret]\"}");
}

static void test_scalars_arrays_and_null(void **state)
{
	assert_null(baton_redact(NULL));
	check("\"plain\"", "\"plain\"");
	check("[1,\"a\",{\"email\":\"x\"},[{\"phone\":\"1\"}]]",
	      "[1,\"a\",{\"email\":\"[redacted]\"},[{\"phone\":\"[redacted]\"}]]");
	check("{}", "{}");
}

static void test_hostile_keys(void **state)
{
	/* a key with a NUL byte that starts with a PII name is still redacted (fail closed), and
	 * the copy keeps the exact key */
	json_t *o = json_object(), *got;
	json_object_setn_new(o, "email\0x", 7, json_string("a@b.c"));
	json_object_setn_new(o, "ok\0y", 4, json_string("v"));
	got = baton_redact(o);
	assert_non_null(got);
	assert_string_equal(json_string_value(json_object_getn(got, "email\0x", 7)), "[redacted]");
	assert_string_equal(json_string_value(json_object_getn(got, "ok\0y", 4)), "v");
	assert_null(json_object_get(got, "email"));
	json_decref(got);
	json_decref(o);
}

static void test_deep_nesting_fails_closed(void **state)
{
	json_t *root = json_object(), *cur = root;

	for (int i = 0; i < 200; i++) {
		json_t *n = json_object();
		json_object_set_new(cur, "k", n);
		cur = n;
	}
	json_object_set_new(cur, "leaf", json_string("secret-ish"));
	json_t *got = baton_redact(root), *g = got;
	int depth = 1;
	assert_non_null(got);
	while (json_is_object(g)) {
		g = json_object_get(g, json_object_get(g, "k") ? "k" : "leaf");
		depth++;
	}
	assert_true(json_is_string(g));
	assert_string_equal(json_string_value(g), "[redacted]");
	assert_true(depth <= 130);
	json_decref(got);
	json_decref(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pii_keys),
		cmocka_unit_test(test_case_insensitive_and_nested),
		cmocka_unit_test(test_containers_keep_only_country),
		cmocka_unit_test(test_secrets),
		cmocka_unit_test(test_scalars_arrays_and_null),
		cmocka_unit_test(test_hostile_keys),
		cmocka_unit_test(test_deep_nesting_fails_closed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
