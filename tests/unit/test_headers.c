/* test_headers.c — x-baton-* header building, reading and truncation; reconnect back-off. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "baton/amqp.h"
#include "baton/headers.h"

static const amqp_field_value_t *get(const amqp_table_t *t, const char *k)
{
	return baton_header_find(t, k);
}

static void test_build_and_read_back(void **state)
{
	baton_failure_t f = {0}, back;
	amqp_table_entry_t in_e[4];
	amqp_table_t in = {4, in_e}, out;
	amqp_pool_t pool;
	char buf[256];

	(void)state;
	in_e[0].key = amqp_cstring_bytes("x-death");
	in_e[0].value.kind = AMQP_FIELD_KIND_UTF8;
	in_e[0].value.value.bytes = amqp_cstring_bytes("dropped");
	in_e[1].key = amqp_cstring_bytes("x-baton-attempts");
	in_e[1].value.kind = AMQP_FIELD_KIND_I32;
	in_e[1].value.value.i32 = 1;
	in_e[2].key = amqp_cstring_bytes("tenant");
	in_e[2].value.kind = AMQP_FIELD_KIND_UTF8;
	in_e[2].value.value.bytes = amqp_cstring_bytes("eu");
	in_e[3].key = amqp_cstring_bytes("x-delivery-count");
	in_e[3].value.kind = AMQP_FIELD_KIND_I64;
	in_e[3].value.value.i64 = 3;

	strcpy(f.flow, "orders");
	f.cls = BATON_CLASS_EXHAUSTED;
	strcpy(f.code, "erp.http_503");
	strcpy(f.message, "ERP unavailable");
	f.http_status = 503;
	f.attempts = 5;
	strcpy(f.first_failed_at, "2026-11-22T10:00:00.000Z");
	strcpy(f.last_failed_at, "2026-11-22T10:36:00.000Z");
	strcpy(f.worker, "w1");
	strcpy(f.orig_exchange, "baton.events");
	strcpy(f.orig_routing_key, "storefront.order.created");
	f.replays = 2;
	init_amqp_pool(&pool, 1024);
	assert_int_equal(baton_headers_build(&f, &in, &pool, &out), 0);
	/* broker headers and the old x-baton-* dropped, the caller's own kept */
	assert_null(get(&out, "x-death"));
	assert_null(get(&out, "x-delivery-count"));
	assert_null(get(&out, BATON_H_RETRY_TIER));
	assert_string_equal(baton_header_str(&out, "tenant", buf, sizeof(buf)), "eu");
	assert_int_equal(baton_header_int(&out, BATON_H_ATTEMPTS, -1), 5);
	assert_string_equal(baton_header_str(&out, BATON_H_CLASS, buf, sizeof(buf)), "exhausted");
	assert_string_equal(baton_header_str(&out, BATON_H_CODE, buf, sizeof(buf)), "erp.http_503");
	assert_int_equal(baton_header_int(&out, BATON_H_HTTP_STATUS, -1), 503);
	assert_string_equal(baton_header_str(&out, BATON_H_FLOW, buf, sizeof(buf)), "orders");
	/* only one x-baton-attempts */
	int n = 0;
	for (int i = 0; i < out.num_entries; i++)
		n += out.entries[i].key.len == strlen(BATON_H_ATTEMPTS) &&
		     !memcmp(out.entries[i].key.bytes, BATON_H_ATTEMPTS, strlen(BATON_H_ATTEMPTS));
	assert_int_equal(n, 1);
	baton_failure_read(&back, &out);
	assert_int_equal(back.attempts, 5);
	assert_int_equal(back.replays, 2);
	assert_string_equal(back.first_failed_at, f.first_failed_at);
	assert_string_equal(back.orig_exchange, "baton.events");
	assert_string_equal(back.orig_routing_key, "storefront.order.created");
	strcpy(f.retry_tier, "30s");
	assert_int_equal(baton_headers_build(&f, NULL, &pool, &out), 0);
	assert_string_equal(baton_header_str(&out, BATON_H_RETRY_TIER, buf, sizeof(buf)), "30s");
	empty_amqp_pool(&pool);
}

static void test_read_ignores_wrong_types(void **state)
{
	amqp_table_entry_t e[2];
	amqp_table_t t = {2, e};
	baton_failure_t f;

	(void)state;
	e[0].key = amqp_cstring_bytes(BATON_H_ATTEMPTS);
	e[0].value.kind = AMQP_FIELD_KIND_UTF8;
	e[0].value.value.bytes = amqp_cstring_bytes("7");
	e[1].key = amqp_cstring_bytes(BATON_H_REPLAYS);
	e[1].value.kind = AMQP_FIELD_KIND_I64;
	e[1].value.value.i64 = -4;
	baton_failure_read(&f, &t);
	assert_int_equal(f.attempts, 0);
	assert_int_equal(f.replays, 0);
	baton_failure_read(&f, NULL);
	assert_int_equal(f.attempts, 0);
	assert_int_equal(baton_header_int(NULL, "x", 42), 42);
}

static void test_truncate_utf8(void **state)
{
	char out[64], big[3000];

	(void)state;
	assert_string_equal(baton_truncate_utf8(out, sizeof(out), "short", 20), "short");
	/* "ééé" is 6 bytes; max 6 fits exactly */
	assert_string_equal(baton_truncate_utf8(out, sizeof(out), "\xC3\xA9\xC3\xA9\xC3\xA9", 6),
			    "\xC3\xA9\xC3\xA9\xC3\xA9");
	/* max 7 with 8 bytes: cut at a boundary, then the ellipsis (3 bytes) */
	assert_string_equal(baton_truncate_utf8(out, sizeof(out), "\xC3\xA9\xC3\xA9\xC3\xA9zz", 7),
			    "\xC3\xA9\xC3\xA9\xE2\x80\xA6");
	assert_string_equal(baton_truncate_utf8(out, sizeof(out), "a\nb\tc", 20), "a b c");
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	{
		char msg[BATON_ERROR_MESSAGE_MAX + 8];
		baton_truncate_utf8(msg, sizeof(msg), big, BATON_ERROR_MESSAGE_MAX);
		assert_true(strlen(msg) <= BATON_ERROR_MESSAGE_MAX);
		assert_memory_equal(msg + strlen(msg) - 3, "\xE2\x80\xA6", 3);
	}
	assert_string_equal(baton_truncate_utf8(out, 4, "abcdef", 100), "\xE2\x80\xA6");
}

static void test_error_class_names(void **state)
{
	(void)state;
	assert_string_equal(baton_error_class_name(BATON_CLASS_TRANSIENT), "transient");
	assert_string_equal(baton_error_class_name(BATON_CLASS_PERMANENT), "permanent");
	assert_string_equal(baton_error_class_name(BATON_CLASS_EXHAUSTED), "exhausted");
	assert_string_equal(baton_error_class_name(BATON_CLASS_POISON), "poison");
	assert_string_equal(baton_error_class_name((baton_error_class_t)9), "unknown");
}

static void test_backoff(void **state)
{
	(void)state;
	srandom(1);
	for (unsigned a = 0; a < 40; a++) {
		for (int k = 0; k < 200; k++) {
			unsigned v = baton_amqp_backoff_ms(a, 250, 30000);
			unsigned ceil = a >= 7 ? 30000 : 250u << a;
			assert_true(v >= 26 && v <= (ceil > 30000 ? 30000 : ceil));
		}
	}
	/* jitter: not always the same value */
	unsigned first = baton_amqp_backoff_ms(5, 250, 30000), differs = 0;
	for (int k = 0; k < 50; k++)
		differs |= baton_amqp_backoff_ms(5, 250, 30000) != first;
	assert_true(differs);
}

static void test_parse_url(void **state)
{
	baton_amqp_params_t p;
	char err[256];

	(void)state;
	assert_int_equal(baton_amqp_parse_url("amqp://u:p@127.0.0.1:5673/v1", &p, err, sizeof(err)),
			 0);
	assert_string_equal(p.host, "127.0.0.1");
	assert_int_equal(p.port, 5673);
	assert_string_equal(p.vhost, "v1");
	assert_int_equal(baton_amqp_parse_url("http://x", &p, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "AMQP URL"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_build_and_read_back),
		cmocka_unit_test(test_read_ignores_wrong_types),
		cmocka_unit_test(test_truncate_utf8),
		cmocka_unit_test(test_error_class_names),
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_parse_url),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
