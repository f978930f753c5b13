/* test_log.c — JSON-lines logging: every line is valid JSON whatever the strings hold, levels
 * are filtered, long messages are cut, threads never interleave lines, URLs are redacted. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "baton/log.h"

static char *buf;
static size_t buflen;
static FILE *mem;

static int setup(void **state)
{
	mem = open_memstream(&buf, &buflen);
	assert_non_null(mem);
	baton_log_set_stream(mem);
	baton_log_init("orders", "w1", BATON_LOG_DEBUG);
	return 0;
}

static int teardown(void **state)
{
	baton_log_set_stream(NULL);
	fclose(mem);
	free(buf);
	buf = NULL;
	baton_log_init(NULL, NULL, BATON_LOG_INFO);
	return 0;
}

static void reset(void)
{
	teardown(NULL);
	setup(NULL);
}

/* Every line of the captured output parsed (each must be valid JSON, UTF-8 included). */
static json_t *lines(void)
{
	json_t *arr = json_array();
	char *copy, *save = NULL;

	fflush(mem);
	assert_true(buflen == 0 || buf[buflen - 1] == '\n');
	copy = strndup(buf, buflen);
	for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		json_error_t e;
		json_t *j = json_loads(l, JSON_REJECT_DUPLICATES, &e);
		if (!j)
			fail_msg("invalid JSON line (%s): %s", e.text, l);
		assert_true(json_is_object(j));
		json_array_append_new(arr, j);
	}
	free(copy);
	return arr;
}

static json_t *only_line(void)
{
	json_t *arr = lines(), *l;

	assert_int_equal(json_array_size(arr), 1);
	l = json_incref(json_array_get(arr, 0));
	json_decref(arr);
	return l;
}

static const char *str(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static void test_line_format(void **state)
{
	baton_log_ctx_t ctx = {"m-1", "c-9"};

	baton_log(BATON_LOG_INFO, &ctx, "amqp.connected", "connected to %s:%d", "rabbit", 5672);
	json_t *l = only_line();
	const char *ts = str(l, "ts");
	assert_non_null(ts);
	assert_int_equal(strlen(ts), 24); /* 2026-11-22T10:15:00.123Z */
	assert_true(ts[4] == '-' && ts[10] == 'T' && ts[19] == '.' && ts[23] == 'Z');
	assert_string_equal(str(l, "level"), "info");
	assert_string_equal(str(l, "flow"), "orders");
	assert_string_equal(str(l, "worker"), "w1");
	assert_string_equal(str(l, "event"), "amqp.connected");
	assert_string_equal(str(l, "msg"), "connected to rabbit:5672");
	assert_string_equal(str(l, "message_id"), "m-1");
	assert_string_equal(str(l, "correlation_id"), "c-9");
	assert_null(json_object_get(l, "truncated"));
	json_decref(l);
	/* the line starts with the timestamp: what people grep for */
	assert_memory_equal(buf, "{\"ts\":\"", 7);
}

static void test_no_ctx_fields_without_ctx(void **state)
{
	baton_log_ctx_t half = {NULL, "c-only"};

	BATON_WARN(NULL, "x.y", "plain");
	BATON_ERROR(&half, "x.z", "half");
	json_t *arr = lines();
	assert_int_equal(json_array_size(arr), 2);
	json_t *a = json_array_get(arr, 0), *b = json_array_get(arr, 1);
	assert_string_equal(str(a, "level"), "warn");
	assert_null(json_object_get(a, "message_id"));
	assert_null(json_object_get(a, "correlation_id"));
	assert_string_equal(str(b, "level"), "error");
	assert_null(json_object_get(b, "message_id"));
	assert_string_equal(str(b, "correlation_id"), "c-only");
	json_decref(arr);
}

static void test_hostile_strings(void **state)
{
	/* quotes, backslashes, every control character, DEL, invalid UTF-8 of every kind */
	static const char ctl[] = "\x01\x02\x07\x08\t\n\x0b\x0c\r\x1b\x1f\x7f";
	const char *bad_utf8 = "a\xff" "b\xc3" "c\xc0\xaf" "d\xed\xa0\x80" "e\xf4\x90\x80\x80"
			       "f\xe2\x82";
	baton_log_ctx_t ctx = {"id\"}\n{\"x\":1", "\xfe\xfe\\"};

	BATON_INFO(&ctx, "ev\"il\n", "q\"uote \\back %s %s é 😀", ctl, bad_utf8);
	json_t *l = only_line();
	char want[256];
	snprintf(want, sizeof(want), "q\"uote \\back %s %s é 😀", ctl,
		 "a\xef\xbf\xbd" "b\xef\xbf\xbd" "c\xef\xbf\xbd\xef\xbf\xbd"
		 "d\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
		 "e\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
		 "f\xef\xbf\xbd\xef\xbf\xbd");
	assert_string_equal(str(l, "msg"), want);
	assert_string_equal(str(l, "event"), "ev\"il\n");
	assert_string_equal(str(l, "message_id"), "id\"}\n{\"x\":1");
	assert_string_equal(str(l, "correlation_id"), "\xef\xbf\xbd\xef\xbf\xbd\\");
	json_decref(l);
	/* one physical line: the newlines inside were escaped */
	assert_non_null(memchr(buf, '\n', buflen));
	assert_ptr_equal(memchr(buf, '\n', buflen), buf + buflen - 1);
}

static void test_hostile_flow_and_worker(void **state)
{
	baton_log_init("fl\"ow\x01", "w\xff", BATON_LOG_DEBUG);
	BATON_DEBUG(NULL, "e", "%s", "");
	json_t *l = only_line();
	assert_string_equal(str(l, "flow"), "fl\"ow\x01");
	assert_string_equal(str(l, "worker"), "w\xef\xbf\xbd");
	assert_string_equal(str(l, "msg"), "");
	json_decref(l);
}

static void test_truncation(void **state)
{
	char *big = malloc(10001);
	memset(big, 'x', 10000);
	big[10000] = '\0';
	BATON_INFO(NULL, "big", "%s", big);
	json_t *l = only_line();
	assert_int_equal(strlen(str(l, "msg")), BATON_LOG_MSG_MAX);
	assert_true(json_is_true(json_object_get(l, "truncated")));
	json_decref(l);

	/* a multi-byte character cut at the limit is dropped, not turned into garbage */
	reset();
	memset(big, 'y', BATON_LOG_MSG_MAX - 1);
	strcpy(big + BATON_LOG_MSG_MAX - 1, "é and more");
	BATON_INFO(NULL, "big", "%s", big);
	l = only_line();
	assert_int_equal(strlen(str(l, "msg")), BATON_LOG_MSG_MAX - 1);
	assert_true(json_is_true(json_object_get(l, "truncated")));
	json_decref(l);

	/* exactly the limit: kept whole, not marked */
	reset();
	memset(big, 'z', BATON_LOG_MSG_MAX);
	big[BATON_LOG_MSG_MAX] = '\0';
	BATON_INFO(NULL, "big", "%s", big);
	l = only_line();
	assert_int_equal(strlen(str(l, "msg")), BATON_LOG_MSG_MAX);
	assert_null(json_object_get(l, "truncated"));
	json_decref(l);
	free(big);
}

static void test_level_filter(void **state)
{
	baton_log_init("orders", "w1", BATON_LOG_WARN);
	BATON_DEBUG(NULL, "d", "no");
	BATON_INFO(NULL, "i", "no");
	BATON_WARN(NULL, "w", "yes");
	BATON_ERROR(NULL, "e", "yes");
	json_t *arr = lines();
	assert_int_equal(json_array_size(arr), 2);
	assert_string_equal(str(json_array_get(arr, 0), "event"), "w");
	assert_string_equal(str(json_array_get(arr, 1), "event"), "e");
	json_decref(arr);
}

static void test_level_parse(void **state)
{
	baton_log_level_t l = BATON_LOG_ERROR;

	assert_int_equal(baton_log_level_parse("debug", &l), 0);
	assert_int_equal(l, BATON_LOG_DEBUG);
	assert_int_equal(baton_log_level_parse("info", &l), 0);
	assert_int_equal(l, BATON_LOG_INFO);
	assert_int_equal(baton_log_level_parse("WARN", &l), 0);
	assert_int_equal(l, BATON_LOG_WARN);
	assert_int_equal(baton_log_level_parse("error", &l), 0);
	assert_int_equal(l, BATON_LOG_ERROR);
	assert_int_equal(baton_log_level_parse("verbose", &l), -1);
	assert_int_equal(baton_log_level_parse("", &l), -1);
	assert_int_equal(baton_log_level_parse(NULL, &l), -1);
	assert_int_equal(l, BATON_LOG_ERROR); /* untouched on failure */
	assert_string_equal(baton_log_level_name(BATON_LOG_WARN), "warn");
}

#define N_THREADS 4
#define N_LINES 300

static void *writer(void *arg)
{
	char id[32];
	snprintf(id, sizeof(id), "t%ld", (long)(intptr_t)arg);
	baton_log_ctx_t ctx = {id, NULL};
	for (int i = 0; i < N_LINES; i++)
		BATON_INFO(&ctx, "thread.line", "line %d of %s with some padding to make it longer",
			   i, id);
	return NULL;
}

static void test_threads_never_interleave(void **state)
{
	pthread_t t[N_THREADS];
	int per[N_THREADS] = {0};

	for (long i = 0; i < N_THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, writer, (void *)(intptr_t)i), 0);
	for (int i = 0; i < N_THREADS; i++)
		pthread_join(t[i], NULL);
	json_t *arr = lines(); /* fails on any broken line */
	assert_int_equal(json_array_size(arr), N_THREADS * N_LINES);
	for (size_t i = 0; i < json_array_size(arr); i++) {
		const char *id = str(json_array_get(arr, i), "message_id");
		per[id[1] - '0']++;
	}
	for (int i = 0; i < N_THREADS; i++)
		assert_int_equal(per[i], N_LINES);
	json_decref(arr);
}

static void check_redact(const char *in, const char *want)
{
	char out[512];
	size_t n = baton_log_redact_url(in, out, sizeof(out));
	if (strcmp(out, want) != 0)
		fail_msg("redact(%s) = %s, want %s", in, out, want);
	assert_int_equal(n, strlen(want));
}

static void test_redact_url(void **state)
{
	check_redact("amqp://user:pass@h", "amqp://user:***@h");
	check_redact("amqps://baton:s3cr3t@rabbit.example:5671/%2f",
		     "amqps://baton:***@rabbit.example:5671/%2f");
	check_redact("amqp://guest@h/%2f", "amqp://guest@h/%2f");
	check_redact("amqp://h:5672/", "amqp://h:5672/");
	check_redact("mongodb://app:p%40ss@db1:27017,db2:27017/baton?replicaSet=rs0",
		     "mongodb://app:***@db1:27017,db2:27017/baton?replicaSet=rs0");
	check_redact("mongodb+srv://app:pw@cluster.example/?authSource=admin",
		     "mongodb+srv://app:***@cluster.example/?authSource=admin");
	check_redact("http://baton:cb96@127.0.0.1:23901", "http://baton:***@127.0.0.1:23901");
	check_redact("https://erp.example/api?token=abc&page=2&api_key=k1&Password=x#frag",
		     "https://erp.example/api?token=***&page=2&api_key=***&Password=***#frag");
	check_redact("https://erp.example/?client_secret=zz;x=1",
		     "https://erp.example/?client_secret=***;x=1");
	check_redact("https://erp.example/a@b", "https://erp.example/a@b");
	/* an unencoded '/' in the password still does not leak it */
	check_redact("amqp://u:pa/ss@h/v", "amqp://u:***@h/v");
	/* the password may hold '@': the last one ends the user info */
	check_redact("amqp://u:p@ss@h", "amqp://u:***@h");
	check_redact("not a url", "not a url");
	check_redact("user:pw@host", "user:***@host");
	check_redact("", "");
	check_redact(NULL, "");

	/* snprintf-like truncation */
	char small[12];
	size_t n = baton_log_redact_url("amqp://user:pass@host/", small, sizeof(small));
	assert_int_equal(n, strlen("amqp://user:***@host/"));
	assert_string_equal(small, "amqp://user");
	assert_int_equal(baton_log_redact_url("amqp://a:b@c", NULL, 0), strlen("amqp://a:***@c"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_line_format, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_ctx_fields_without_ctx, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_strings, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_flow_and_worker, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_level_filter, setup, teardown),
		cmocka_unit_test(test_level_parse),
		cmocka_unit_test_setup_teardown(test_threads_never_interleave, setup, teardown),
		cmocka_unit_test(test_redact_url),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
