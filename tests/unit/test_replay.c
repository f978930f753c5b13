/* test_replay.c — baton-replay's pure parts: filters and time parsing, command line, table and
 * progress formatting, stats, the rate limiter, reading a parked message, replay headers. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "args.h"
#include "baton/headers.h"
#include "filter.h"
#include "format.h"
#include "message.h"
#include "rate.h"

#define NOW 1795000000000LL /* 2026-11-18T... as epoch ms */

static void test_time_parse(void **state)
{
	int64_t t;

	(void)state;
	assert_int_equal(rp_time_parse("1970-01-01T00:00:00Z", 0, &t), 0);
	assert_int_equal(t, 0);
	assert_int_equal(rp_time_parse("2026-11-22T10:15:00Z", 0, &t), 0);
	assert_int_equal(t, 1795342500000LL);
	assert_int_equal(rp_time_parse("2026-11-22T10:15:00.250Z", 0, &t), 0);
	assert_int_equal(t, 1795342500250LL);
	assert_int_equal(rp_time_parse("2026-11-22T11:15:00+01:00", 0, &t), 0);
	assert_int_equal(t, 1795342500000LL);
	assert_int_equal(rp_time_parse("2026-11-22", 0, &t), 0);
	assert_int_equal(t, 1795305600000LL);
	assert_int_equal(rp_time_parse("90m", NOW, &t), 0);
	assert_int_equal(t, NOW - 90 * 60000LL);
	assert_int_equal(rp_time_parse("2h", NOW, &t), 0);
	assert_int_equal(t, NOW - 7200000LL);
	assert_int_equal(rp_time_parse("3d", NOW, &t), 0);
	assert_int_equal(t, NOW - 3 * 86400000LL);
	assert_int_equal(rp_time_parse("", 0, &t), -1);
	assert_int_equal(rp_time_parse("yesterday", 0, &t), -1);
	assert_int_equal(rp_time_parse("2026-13-01", 0, &t), -1);
	assert_int_equal(rp_time_parse("2026-11-22T10:15Z", 0, &t), -1);
	assert_int_equal(rp_time_parse("2026-11-22T10:15:00", 0, &t), -1);
	assert_int_equal(rp_time_parse("5w", NOW, &t), -1);
	assert_int_equal(rp_time_parse("-5m", NOW, &t), -1);
}

static rp_item_t item(const char *id, const char *flow, const char *cls, const char *code,
		      const char *msg, const char *subject, const char *last)
{
	rp_item_t it;

	memset(&it, 0, sizeof(it));
	snprintf(it.id, sizeof(it.id), "%s", id);
	snprintf(it.flow, sizeof(it.flow), "%s", flow);
	snprintf(it.cls, sizeof(it.cls), "%s", cls);
	snprintf(it.code, sizeof(it.code), "%s", code);
	snprintf(it.message, sizeof(it.message), "%s", msg);
	snprintf(it.subject, sizeof(it.subject), "%s", subject);
	snprintf(it.last_failed_at, sizeof(it.last_failed_at), "%s", last);
	if (rp_time_parse(last, 0, &it.last_ms) != 0)
		it.last_ms = -1;
	return it;
}

static void test_filter(void **state)
{
	rp_filter_t f;
	char err[256];
	rp_item_t a = item("a", "orders", "permanent", "sku.unmapped", "SKU TSHIRT-RED-M unmapped",
			   "order/SO-1001", "2026-11-22T10:00:00.000Z");
	rp_item_t b = item("b", "inventory", "exhausted", "erp.http_503", "gave up after 5",
			   "sku/X", "2026-11-22T12:00:00.000Z");
	rp_item_t c = item("c", "orders", "poison", "broker.delivery_limit", "", "", "");

	(void)state;
	rp_filter_init(&f);
	assert_false(rp_filter_has_criteria(&f));
	assert_true(rp_filter_match(&f, &a) && rp_filter_match(&f, &b) && rp_filter_match(&f, &c));
	assert_int_equal(rp_filter_set(&f, "flow", "orders", NOW, err, sizeof(err)), 0);
	assert_true(rp_filter_match(&f, &a));
	assert_false(rp_filter_match(&f, &b));
	assert_true(rp_filter_has_criteria(&f));
	assert_int_equal(rp_filter_set(&f, "code", "sku.*", NOW, err, sizeof(err)), 0);
	assert_true(rp_filter_match(&f, &a));
	assert_false(rp_filter_match(&f, &c));

	rp_filter_init(&f);
	assert_int_equal(rp_filter_set(&f, "grep", "tshirt-red", NOW, err, sizeof(err)), 0);
	assert_true(rp_filter_match(&f, &a));
	assert_false(rp_filter_match(&f, &b));
	rp_filter_init(&f);
	assert_int_equal(rp_filter_set(&f, "subject", "order/SO-10*", NOW, err, sizeof(err)), 0);
	assert_true(rp_filter_match(&f, &a));
	assert_false(rp_filter_match(&f, &b));
	rp_filter_init(&f);
	assert_int_equal(rp_filter_set(&f, "since", "2026-11-22T11:00:00Z", NOW, err, sizeof(err)),
			 0);
	assert_false(rp_filter_match(&f, &a));
	assert_true(rp_filter_match(&f, &b));
	assert_false(rp_filter_match(&f, &c)); /* no time: no match under a time filter */
	assert_int_equal(rp_filter_set(&f, "until", "2026-11-22T12:00:00Z", NOW, err, sizeof(err)),
			 0);
	assert_true(rp_filter_match(&f, &b)); /* bounds included */
	rp_filter_init(&f);
	assert_int_equal(rp_filter_set(&f, "class", "poison", NOW, err, sizeof(err)), 0);
	assert_true(rp_filter_match(&f, &c));
	assert_false(rp_filter_match(&f, &a));
	rp_filter_init(&f);
	assert_int_equal(rp_filter_add_id(&f, "b", err, sizeof(err)), 0);
	assert_false(rp_filter_has_criteria(&f));
	assert_true(rp_filter_match(&f, &b));
	assert_false(rp_filter_match(&f, &a));
	/* usage errors */
	assert_int_equal(rp_filter_set(&f, "class", "fatal", NOW, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "--class"));
	assert_int_equal(rp_filter_set(&f, "since", "soon", NOW, err, sizeof(err)), -1);
	assert_int_equal(rp_filter_set(&f, "code", "", NOW, err, sizeof(err)), -1);
	assert_int_equal(rp_filter_set(&f, "code", "a\nb", NOW, err, sizeof(err)), -1);
	assert_int_equal(rp_filter_set(&f, "colour", "red", NOW, err, sizeof(err)), -1);
}

static int parse(rp_args_t *a, const char *const *argv, char *err)
{
	int argc = 0;

	while (argv[argc])
		argc++;
	return rp_args_parse(a, argc, (char **)argv, NOW, err, 256);
}

static void test_args(void **state)
{
	rp_args_t a;
	char err[256];

	(void)state;
	assert_int_equal(parse(&a, (const char *const[]){"r", "list", "--flow", "orders", "--json",
							 NULL}, err), 0);
	assert_int_equal(a.cmd, RP_LIST);
	assert_true(a.json);
	assert_int_equal(a.filter.n_flows, 1);
	assert_int_equal(parse(&a, (const char *const[]){"r", "replay", "--code=erp.*", "--rate",
							 "20/s", "--limit", "5", "--yes", NULL},
			       err), 0);
	assert_int_equal(a.cmd, RP_REPLAY);
	assert_true(a.rate == 20.0);
	assert_int_equal(a.limit, 5);
	assert_string_equal(a.filter.code, "erp.*");
	assert_int_equal(parse(&a, (const char *const[]){"r", "replay", "id1", "id2", NULL}, err), 0);
	assert_int_equal(a.filter.n_ids, 2);
	assert_int_equal(parse(&a, (const char *const[]){"r", "show", "id1", NULL}, err), 0);
	assert_int_equal(parse(&a, (const char *const[]){"r", "discard", "--all", "--reason", "x",
							 NULL}, err), 0);
	assert_int_equal(parse(&a, (const char *const[]){"r", "stats", "--help", NULL}, err), 0);
	assert_true(a.help);
	/* usage errors: exit 2 */
	assert_int_equal(parse(&a, (const char *const[]){"r", NULL}, err), RP_EXIT_USAGE);
	assert_int_equal(parse(&a, (const char *const[]){"r", "frobnicate", NULL}, err),
			 RP_EXIT_USAGE);
	assert_int_equal(parse(&a, (const char *const[]){"r", "replay", NULL}, err), RP_EXIT_USAGE);
	assert_non_null(strstr(err, "--all"));
	assert_int_equal(parse(&a, (const char *const[]){"r", "discard", "id1", NULL}, err),
			 RP_EXIT_USAGE);
	assert_non_null(strstr(err, "--reason"));
	assert_int_equal(parse(&a, (const char *const[]){"r", "show", NULL}, err), RP_EXIT_USAGE);
	assert_int_equal(parse(&a, (const char *const[]){"r", "list", "id1", NULL}, err),
			 RP_EXIT_USAGE);
	assert_int_equal(parse(&a, (const char *const[]){"r", "list", "--yes", NULL}, err),
			 RP_EXIT_USAGE);
	assert_int_equal(parse(&a, (const char *const[]){"r", "replay", "--all", "--rate", "fast",
							 NULL}, err), RP_EXIT_USAGE);
	assert_int_equal(parse(&a, (const char *const[]){"r", "replay", "--all", "--limit", "0",
							 NULL}, err), RP_EXIT_USAGE);
	assert_int_equal(parse(&a, (const char *const[]){"r", "list", "--flow", NULL}, err),
			 RP_EXIT_USAGE);
	assert_int_equal(parse(&a, (const char *const[]){"r", "list", "--nope", NULL}, err),
			 RP_EXIT_USAGE);
}

static void test_rate(void **state)
{
	rp_rate_t r;
	double v, t = 100.0, waited = 0;

	(void)state;
	assert_int_equal(rp_rate_parse("20/s", &v), 0);
	assert_true(v == 20);
	assert_int_equal(rp_rate_parse("120/m", &v), 0);
	assert_true(v == 2);
	assert_int_equal(rp_rate_parse("7", &v), 0);
	assert_true(v == 7);
	assert_int_equal(rp_rate_parse("0", &v), -1);
	assert_int_equal(rp_rate_parse("-1/s", &v), -1);
	assert_int_equal(rp_rate_parse("5/h", &v), -1);
	assert_int_equal(rp_rate_parse("nan", &v), -1);
	/* 10 messages at 5/s on a simulated clock: the first at once, then one per 200 ms */
	rp_rate_init(&r, 5, t);
	for (int i = 0; i < 10; i++) {
		double d;
		while ((d = rp_rate_delay(&r, t)) > 0) {
			t += d;
			waited += d;
		}
	}
	assert_true(waited > 1.79 && waited < 1.81);
	/* unlimited */
	rp_rate_init(&r, 0, t);
	assert_true(rp_rate_delay(&r, t) == 0 && rp_rate_delay(&r, t) == 0);
	/* no burst after an idle time */
	rp_rate_init(&r, 1, 0);
	assert_true(rp_rate_delay(&r, 0) == 0);
	assert_true(rp_rate_delay(&r, 100) == 0);
	assert_true(rp_rate_delay(&r, 100) > 0.99);
}

static void test_format(void **state)
{
	char buf[512];
	rp_item_t it = item("0b9d3c1e-6f1a-4f7e-9a51-5c2f3f0e8a11-and-more", "orders", "permanent",
			    "sku.unmapped", "x", "order/SO-1001", "2026-11-22T10:15:00.123Z");

	(void)state;
	assert_string_equal(rp_fit(buf, sizeof(buf), "abc", 5, 1), "abc  ");
	assert_string_equal(rp_fit(buf, sizeof(buf), "abcdef", 4, 1), "abc\xE2\x80\xA6");
	assert_string_equal(rp_fit(buf, sizeof(buf), "D\xC3\xAD" "az", 4, 1), "D\xC3\xAD" "az");
	assert_string_equal(rp_fit(buf, sizeof(buf), "a\tb", 3, 0), "a b");
	assert_string_equal(rp_short_time(buf, sizeof(buf), "2026-11-22T10:15:00.123Z"),
			    "2026-11-22 10:15:00");
	assert_string_equal(rp_short_time(buf, sizeof(buf), ""), "-");
	rp_table_row(buf, sizeof(buf), &it);
	assert_non_null(strstr(buf, "0b9d3c1e-6f1a-4f7e-9a51-5c2f3f0e8a1\xE2\x80\xA6"));
	assert_non_null(strstr(buf, "orders"));
	assert_non_null(strstr(buf, "2026-11-22 10:15:00"));
	assert_non_null(strstr(buf, "order/SO-1001"));
	rp_table_header(buf, sizeof(buf));
	assert_true(strncmp(buf, "ID ", 3) == 0);
	rp_progress(buf, sizeof(buf), 5, 10, 2.5, 10);
	assert_string_equal(buf, "[#####     ] 5/10  50% 2.5 msg/s");
	rp_progress(buf, sizeof(buf), 0, 0, 0, 4);
	assert_string_equal(buf, "[####] 0/0 100% 0.0 msg/s");

	json_t *j = rp_item_json(&it);
	assert_string_equal(json_string_value(json_object_get(j, "error_code")), "sku.unmapped");
	assert_true(json_is_null(json_object_get(j, "http_status")));
	json_decref(j);
}

static void test_stats(void **state)
{
	rp_stats_t s = {0};
	json_t *j;

	(void)state;
	rp_stats_add(&s, "orders", "b");
	rp_stats_add(&s, "orders", "a");
	rp_stats_add(&s, "orders", "b");
	rp_stats_add(&s, "inventory", "z");
	rp_stats_sort(&s);
	assert_int_equal(s.total, 4);
	assert_string_equal(s.rows[0].flow, "inventory");
	assert_string_equal(s.rows[1].code, "b");
	assert_int_equal(s.rows[1].n, 2);
	j = rp_stats_json(&s);
	assert_int_equal(json_integer_value(json_object_get(j, "total")), 4);
	assert_int_equal(json_integer_value(json_object_get(
				 json_object_get(json_object_get(json_object_get(j, "flows"), "orders"),
						 "codes"),
				 "b")),
			 2);
	json_decref(j);
	rp_stats_free(&s);
}

/* A message as the worker parks it; reading it back, and the headers of its replay. */
static void test_message(void **state)
{
	baton_failure_t f;
	amqp_pool_t pool;
	amqp_basic_properties_t p = {0};
	amqp_table_entry_t extra[2];
	amqp_table_t in = {2, extra}, out;
	rp_item_t it;
	const char *body = "{\"subject\":\"order/SO-1\",\"type\":\"storefront.order.created\"}";

	(void)state;
	memset(&f, 0, sizeof(f));
	snprintf(f.flow, sizeof(f.flow), "orders");
	f.cls = BATON_CLASS_PERMANENT;
	snprintf(f.code, sizeof(f.code), "erp.http_422");
	snprintf(f.message, sizeof(f.message), "refused");
	f.http_status = 422;
	f.attempts = 3;
	f.replays = 1;
	snprintf(f.last_failed_at, sizeof(f.last_failed_at), "2026-11-22T10:15:00.000Z");
	extra[0].key = amqp_cstring_bytes("traceparent");
	extra[0].value.kind = AMQP_FIELD_KIND_UTF8;
	extra[0].value.value.bytes = amqp_cstring_bytes("00-abc");
	extra[1].key = amqp_cstring_bytes("x-delivery-count");
	extra[1].value.kind = AMQP_FIELD_KIND_I64;
	extra[1].value.value.i64 = 4;
	init_amqp_pool(&pool, 4096);
	assert_int_equal(baton_headers_build(&f, &in, &pool, &p.headers), 0);
	p._flags = AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG;
	p.message_id = amqp_cstring_bytes("ev-1");
	rp_item_read(&it, "orders", &p, amqp_cstring_bytes(body));
	assert_string_equal(it.id, "ev-1");
	assert_string_equal(it.code, "erp.http_422");
	assert_string_equal(it.cls, "permanent");
	assert_int_equal(it.http_status, 422);
	assert_int_equal(it.attempts, 3);
	assert_int_equal(it.replays, 1);
	assert_string_equal(it.subject, "order/SO-1");
	assert_string_equal(it.type, "storefront.order.created");
	assert_int_equal(it.last_ms, 1795342500000LL);

	assert_int_equal(rp_replay_headers(&p.headers, 2, &pool, &out), 0);
	assert_int_equal(baton_header_int(&out, "x-baton-attempts", -1), 0);
	assert_int_equal(baton_header_int(&out, "x-baton-replays", -1), 2);
	assert_int_equal(baton_header_int(&out, "x-baton-http-status", -1), 422);
	assert_null(baton_header_find(&out, "x-delivery-count"));
	assert_non_null(baton_header_find(&out, "traceparent"));
	/* the worker reads attempts 0 and replays 2 back */
	baton_failure_read(&f, &out);
	assert_int_equal(f.attempts, 0);
	assert_int_equal(f.replays, 2);

	/* no id, no x-baton headers, parked by the broker */
	amqp_table_entry_t d[1];
	amqp_basic_properties_t q = {0};
	d[0].key = amqp_cstring_bytes("x-first-death-reason");
	d[0].value.kind = AMQP_FIELD_KIND_UTF8;
	d[0].value.value.bytes = amqp_cstring_bytes("delivery_limit");
	q._flags = AMQP_BASIC_HEADERS_FLAG;
	q.headers = (amqp_table_t){1, d};
	rp_item_read(&it, "orders", &q, amqp_cstring_bytes("not json"));
	assert_true(strncmp(it.id, "h-", 2) == 0 && strlen(it.id) == 18);
	assert_string_equal(it.code, "broker.delivery_limit");
	assert_string_equal(it.cls, "poison");
	assert_int_equal(it.last_ms, -1);
	json_t *hj = rp_table_json(&q.headers);
	assert_string_equal(json_string_value(json_object_get(hj, "x-first-death-reason")),
			    "delivery_limit");
	json_decref(hj);
	empty_amqp_pool(&pool);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_time_parse), cmocka_unit_test(test_filter),
		cmocka_unit_test(test_args),	   cmocka_unit_test(test_rate),
		cmocka_unit_test(test_format),	   cmocka_unit_test(test_stats),
		cmocka_unit_test(test_message),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
