/* test_store_bson.c — the store's explicit JSON <-> BSON conversion: types kept (int64, double,
 * UTF-8), hostile input refused with the path of the offending key ($-keys, dotted keys, NUL in
 * keys, invalid UTF-8, nesting deeper than 64), BSON types mapped back (date, ObjectId...), error
 * classification, and data errors reported through the callback without contacting a server. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <mongoc/mongoc.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "baton/store.h"

static json_t *load(const char *text)
{
	json_error_t e;
	json_t *j = json_loads(text, 0, &e);

	if (!j)
		fail_msg("bad test JSON: %s", e.text);
	return j;
}

/* Converts obj and expects failure with an error containing each of the given fragments. */
static void expect_refused(json_t *obj, const char *frag1, const char *frag2)
{
	bson_t b = BSON_INITIALIZER;
	char err[512] = "";

	assert_int_equal(baton_store_json_to_bson(obj, &b, err, sizeof(err)), -1);
	if (!strstr(err, frag1) || (frag2 && !strstr(err, frag2)))
		fail_msg("error \"%s\" lacks \"%s\" / \"%s\"", err, frag1, frag2 ? frag2 : "");
	bson_destroy(&b);
	json_decref(obj);
}

static bson_type_t type_of(const bson_t *b, const char *dotted)
{
	bson_iter_t it, f;

	assert_true(bson_iter_init(&it, b));
	assert_true(bson_iter_find_descendant(&it, dotted, &f));
	return bson_iter_type(&f);
}

static void test_round_trip_types(void **state)
{
	const char *text = "{\"s\":\"h\\u00e9llo \\u2713\",\"i\":9223372036854775807,"
			   "\"n\":-9223372036854775808,\"small\":7,\"r\":1.5,\"big\":1e308,"
			   "\"t\":true,\"f\":false,\"z\":null,"
			   "\"o\":{\"a\":[1,\"x\",{\"b\":null}],\"e\":[],\"eo\":{}},"
			   "\"a$b\":1,\"\":2}";
	json_t *in = load(text), *out;
	bson_t b = BSON_INITIALIZER;
	char err[256];

	assert_int_equal(baton_store_json_to_bson(in, &b, err, sizeof(err)), 0);
	assert_int_equal(type_of(&b, "i"), BSON_TYPE_INT64);
	assert_int_equal(type_of(&b, "small"), BSON_TYPE_INT64); /* integers stay int64 */
	assert_int_equal(type_of(&b, "r"), BSON_TYPE_DOUBLE);
	assert_int_equal(type_of(&b, "s"), BSON_TYPE_UTF8);
	assert_int_equal(type_of(&b, "o"), BSON_TYPE_DOCUMENT);
	assert_int_equal(type_of(&b, "o.a"), BSON_TYPE_ARRAY);
	assert_int_equal(type_of(&b, "o.a.2.b"), BSON_TYPE_NULL);
	assert_int_equal(type_of(&b, "t"), BSON_TYPE_BOOL);
	out = baton_store_bson_to_json(&b, err, sizeof(err));
	assert_non_null(out);
	assert_true(json_equal(in, out));
	assert_int_equal(json_integer_value(json_object_get(out, "i")), INT64_MAX);
	assert_int_equal(json_integer_value(json_object_get(out, "n")), INT64_MIN);
	json_decref(out);
	json_decref(in);
	bson_destroy(&b);
}

static void test_string_with_nul_value(void **state)
{
	json_t *in = json_object(), *out;
	bson_t b = BSON_INITIALIZER;
	char err[256];

	json_object_set_new(in, "v", json_stringn("a\0b", 3));
	assert_int_equal(baton_store_json_to_bson(in, &b, err, sizeof(err)), 0);
	out = baton_store_bson_to_json(&b, err, sizeof(err));
	assert_non_null(out);
	assert_int_equal(json_string_length(json_object_get(out, "v")), 3);
	assert_memory_equal(json_string_value(json_object_get(out, "v")), "a\0b", 3);
	json_decref(out);
	json_decref(in);
	bson_destroy(&b);
}

static void test_dollar_keys_refused(void **state)
{
	expect_refused(load("{\"$where\":\"1\"}"), "/$where", "'$'");
	expect_refused(load("{\"ok\":1,\"a\":{\"b\":[0,{\"$gt\":1}]}}"), "/a/b/1/$gt", "'$'");
	expect_refused(load("{\"$set\":{\"x\":1}}"), "/$set", NULL);
	/* extended-JSON look-alikes are refused, never interpreted */
	expect_refused(load("{\"d\":{\"$date\":\"2020-01-01T00:00:00Z\"}}"), "/d/$date", NULL);
	expect_refused(load("{\"p/q~r\":{\"$x\":1}}"), "/p~1q~0r/$x", NULL);
}

static void test_dotted_and_nul_keys_refused(void **state)
{
	json_t *o;

	expect_refused(load("{\"a.b\":1}"), "/a.b", "'.'");
	expect_refused(load("{\"x\":[{\"y\":{\"c.d\":true}}]}"), "/x/0/y/c.d", "'.'");
	o = json_object();
	json_object_setn_new(o, "a\0b", 3, json_integer(1));
	expect_refused(o, "/a\\x00b", "NUL");
	/* NUL is checked before '$': the message names the real problem */
	o = json_object();
	json_object_set_new(o, "k", json_object());
	json_object_setn_new(json_object_get(o, "k"), "$\0", 2, json_null());
	expect_refused(o, "/k/$\\x00", "NUL");
}

static void test_invalid_utf8_refused(void **state)
{
	json_error_t e;
	json_t *o;

	/* jansson already refuses invalid UTF-8 in text and in json_string() */
	assert_null(json_loads("{\"a\":\"\xff\"}", 0, &e));
	assert_null(json_string("\xc3\x28"));
	/* values and keys that bypassed the checks are refused by the conversion */
	o = json_object();
	json_object_set_new(o, "a", json_stringn_nocheck("ok\xff", 3));
	expect_refused(o, "/a", "UTF-8");
	o = json_object();
	json_object_set_new_nocheck(o, "k\xc3\x28", json_integer(1));
	expect_refused(o, "UTF-8", NULL);
}

/* {"k":{"k":...{"k":1}}} with `levels` objects in all (the top-level document counts). */
static json_t *nested(int levels, int arrays)
{
	json_t *root = json_object(), *cur = root;

	for (int i = 1; i < levels; i++) {
		json_t *n = arrays ? json_array() : json_object();
		if (json_is_array(cur))
			json_array_append_new(cur, n);
		else
			json_object_set_new(cur, "k", n);
		cur = n;
	}
	if (json_is_array(cur))
		json_array_append_new(cur, json_integer(1));
	else
		json_object_set_new(cur, "k", json_integer(1));
	return root;
}

static void test_depth_limit(void **state)
{
	bson_t b = BSON_INITIALIZER;
	json_t *ok = nested(BATON_STORE_MAX_DEPTH, 0), *back;
	char err[4096];

	assert_int_equal(baton_store_json_to_bson(ok, &b, err, sizeof(err)), 0);
	back = baton_store_bson_to_json(&b, err, sizeof(err));
	assert_non_null(back);
	assert_true(json_equal(ok, back));
	json_decref(back);
	json_decref(ok);
	bson_destroy(&b);
	expect_refused(nested(BATON_STORE_MAX_DEPTH + 1, 0), "nesting deeper than 64", "/k/k/k");
	expect_refused(nested(BATON_STORE_MAX_DEPTH + 1, 1), "nesting deeper than 64", "/k/0/0");
	/* far beyond the limit (jansson parses up to 2048): refused, no stack exhaustion */
	expect_refused(nested(2000, 1), "nesting deeper than 64", NULL);
}

static void test_huge_numbers(void **state)
{
	json_error_t e;
	json_t *o;
	bson_t b = BSON_INITIALIZER;
	char err[256];

	/* beyond int64: jansson refuses the text, nothing silently wraps */
	assert_null(json_loads("{\"a\":9223372036854775808}", 0, &e));
	assert_null(json_loads("{\"a\":-9223372036854775809}", 0, &e));
	assert_null(json_loads("{\"a\":18446744073709551616}", 0, &e));
	/* non-finite reals cannot exist in jansson */
	assert_null(json_real(NAN));
	assert_null(json_real(INFINITY));
	o = load("{\"a\":-1.7976931348623157e308,\"b\":5e-324}");
	assert_int_equal(baton_store_json_to_bson(o, &b, err, sizeof(err)), 0);
	json_t *back = baton_store_bson_to_json(&b, err, sizeof(err));
	assert_true(json_equal(o, back));
	json_decref(back);
	json_decref(o);
	bson_destroy(&b);
}

static void test_not_an_object(void **state)
{
	expect_refused(load("[1,2]"), "JSON object", NULL);
	expect_refused(json_string("x"), "JSON object", NULL);
}

static void test_bson_types_to_json(void **state)
{
	bson_t b = BSON_INITIALIZER, sub;
	bson_oid_t oid;
	bson_decimal128_t dec;
	char err[256];
	json_t *j;

	bson_oid_init_from_string(&oid, "65f1c0ffee00112233445566");
	bson_decimal128_from_string("12.50", &dec);
	BSON_APPEND_INT32(&b, "i32", -5);
	BSON_APPEND_INT64(&b, "i64", 1LL << 40);
	BSON_APPEND_DOUBLE(&b, "d", 0.25);
	BSON_APPEND_DOUBLE(&b, "nan", NAN);
	BSON_APPEND_DATE_TIME(&b, "at", 1700000000123LL);
	BSON_APPEND_DATE_TIME(&b, "old", -1);
	BSON_APPEND_OID(&b, "_id", &oid);
	BSON_APPEND_DECIMAL128(&b, "dec", &dec);
	BSON_APPEND_ARRAY_BEGIN(&b, "arr", &sub);
	BSON_APPEND_BOOL(&sub, "0", true);
	BSON_APPEND_NULL(&sub, "1");
	bson_append_array_end(&b, &sub);
	j = baton_store_bson_to_json(&b, err, sizeof(err));
	assert_non_null(j);
	json_t *want = load("{\"i32\":-5,\"i64\":1099511627776,\"d\":0.25,\"nan\":null,"
			    "\"at\":\"2023-11-14T22:13:20.123Z\","
			    "\"old\":\"1969-12-31T23:59:59.999Z\","
			    "\"_id\":\"65f1c0ffee00112233445566\",\"dec\":\"12.50\","
			    "\"arr\":[true,null]}");
	if (!json_equal(j, want))
		fail_msg("got %s", json_dumps(j, JSON_SORT_KEYS));
	json_decref(want);
	json_decref(j);
	bson_destroy(&b);

	/* unsupported types are an error naming the path */
	bson_init(&b);
	BSON_APPEND_DOCUMENT_BEGIN(&b, "a", &sub);
	BSON_APPEND_REGEX(&sub, "re", "^x", "i");
	bson_append_document_end(&b, &sub);
	assert_null(baton_store_bson_to_json(&b, err, sizeof(err)));
	assert_non_null(strstr(err, "/a/re"));
	assert_non_null(strstr(err, "unsupported BSON type"));
	bson_destroy(&b);
}

static void test_rfc3339(void **state)
{
	char buf[40];

	baton_store_rfc3339_ms(0, buf, sizeof(buf));
	assert_string_equal(buf, "1970-01-01T00:00:00.000Z");
	baton_store_rfc3339_ms(-1001, buf, sizeof(buf));
	assert_string_equal(buf, "1969-12-31T23:59:58.999Z");
	baton_store_rfc3339_ms(951782400007LL, buf, sizeof(buf)); /* leap day */
	assert_string_equal(buf, "2000-02-29T00:00:00.007Z");
}

static baton_store_status_t classify(uint32_t domain, uint32_t code)
{
	bson_error_t e = {.domain = domain, .code = code};
	return baton_store_classify(&e, NULL);
}

static void test_classify(void **state)
{
	assert_int_equal(classify(MONGOC_ERROR_STREAM, MONGOC_ERROR_STREAM_SOCKET),
			 BATON_STORE_UNAVAILABLE);
	assert_int_equal(classify(MONGOC_ERROR_STREAM, MONGOC_ERROR_STREAM_CONNECT),
			 BATON_STORE_UNAVAILABLE);
	assert_int_equal(classify(MONGOC_ERROR_SERVER_SELECTION,
				  MONGOC_ERROR_SERVER_SELECTION_FAILURE),
			 BATON_STORE_UNAVAILABLE);
	assert_int_equal(classify(MONGOC_ERROR_SERVER, 11000), BATON_STORE_DUPLICATE);
	assert_int_equal(classify(MONGOC_ERROR_SERVER, 10107), BATON_STORE_UNAVAILABLE);
	assert_int_equal(classify(MONGOC_ERROR_SERVER, 91), BATON_STORE_UNAVAILABLE);
	assert_int_equal(classify(MONGOC_ERROR_SERVER, 2 /* BadValue */), BATON_STORE_ERROR);
	assert_int_equal(classify(MONGOC_ERROR_SERVER, 13 /* Unauthorized */), BATON_STORE_ERROR);
	assert_int_equal(classify(MONGOC_ERROR_CLIENT, MONGOC_ERROR_CLIENT_AUTHENTICATE),
			 BATON_STORE_ERROR);
	assert_int_equal(classify(MONGOC_ERROR_WRITE_CONCERN, 64), BATON_STORE_UNAVAILABLE);

	bson_t *reply = BCON_NEW("errorLabels", "[", "RetryableWriteError", "]");
	bson_error_t e = {.domain = MONGOC_ERROR_SERVER, .code = 12345};
	assert_int_equal(baton_store_classify(&e, reply), BATON_STORE_UNAVAILABLE);
	bson_destroy(reply);
}

static void test_open_validates(void **state)
{
	char err[256];
	uv_loop_t loop;

	uv_loop_init(&loop);
	assert_null(baton_store_open(&loop, "http://x", "db", 2, err, sizeof(err)));
	assert_non_null(strstr(err, "URI"));
	assert_null(baton_store_open(&loop, "mongodb://127.0.0.1:1/", "a.b", 2, err, sizeof(err)));
	assert_non_null(strstr(err, "database name"));
	assert_null(baton_store_open(&loop, "mongodb://127.0.0.1:1/", "db", 0, err, sizeof(err)));
	assert_non_null(strstr(err, "pool size"));
	uv_loop_close(&loop);
}

/* --- data errors arrive through the callback, without contacting a server ------------------ */

typedef struct got {
	int calls;
	baton_store_status_t st;
	char msg[512];
} got_t;

static void on_done(baton_store_status_t st, json_t *result, const char *errmsg, void *ud)
{
	got_t *g = ud;

	g->calls++;
	g->st = st;
	snprintf(g->msg, sizeof(g->msg), "%s", errmsg);
}

static void test_data_errors_through_callback(void **state)
{
	char err[256];
	uv_loop_t loop;
	got_t g1 = {0}, g2 = {0}, g3 = {0}, g4 = {0};
	baton_store_t *s;
	json_t *bad = load("{\"ok\":1,\"nested\":{\"$inc\":{\"n\":1}}}");

	uv_loop_init(&loop);
	/* nothing listens on port 1: any server contact would be UNAVAILABLE, not ERROR */
	s = baton_store_open(&loop, "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=200", "db", 2,
			     err, sizeof(err));
	assert_non_null(s);
	assert_int_equal(baton_store_insert(s, "things", bad, on_done, &g1), 0);
	assert_int_equal(baton_store_doc_put(s, "things", "id-1", bad, 0, on_done, &g2), 0);
	assert_int_equal(baton_store_ledger_put(s, "k", bad, on_done, &g3), 0);
	assert_int_equal(baton_store_set(s, "things", "id-1", bad, on_done, &g4), 0);
	assert_int_equal(g1.calls + g2.calls + g3.calls + g4.calls, 0); /* never synchronous */
	assert_int_equal(baton_store_in_flight(s), 4);
	assert_int_equal(baton_store_doc_get(s, "things", NULL, on_done, &g1), -1);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(baton_store_in_flight(s), 0);
	assert_int_equal(g1.calls, 1);
	assert_int_equal(g1.st, BATON_STORE_ERROR);
	assert_non_null(strstr(g1.msg, "/nested/$inc"));
	assert_int_equal(g2.st, BATON_STORE_ERROR);
	assert_non_null(strstr(g2.msg, "/nested/$inc"));
	assert_int_equal(g3.st, BATON_STORE_ERROR);
	assert_non_null(strstr(g3.msg, "/outcome/nested/$inc"));
	assert_int_equal(g4.st, BATON_STORE_ERROR);
	assert_non_null(strstr(g4.msg, "/nested/$inc"));
	baton_store_close(s);
	uv_loop_close(&loop);
	json_decref(bad);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_types),
		cmocka_unit_test(test_string_with_nul_value),
		cmocka_unit_test(test_dollar_keys_refused),
		cmocka_unit_test(test_dotted_and_nul_keys_refused),
		cmocka_unit_test(test_invalid_utf8_refused),
		cmocka_unit_test(test_depth_limit),
		cmocka_unit_test(test_huge_numbers),
		cmocka_unit_test(test_not_an_object),
		cmocka_unit_test(test_bson_types_to_json),
		cmocka_unit_test(test_rfc3339),
		cmocka_unit_test(test_classify),
		cmocka_unit_test(test_open_validates),
		cmocka_unit_test(test_data_errors_through_callback),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	mongoc_cleanup();
	return rc;
}
