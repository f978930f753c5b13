/* test_config.c — configuration from the environment: defaults, one precise line per bad value,
 * every problem reported at once, secrets never echoed, the BATON_CONFIG file. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <mongoc/mongoc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "baton/config.h"

#define MAX_VARS 32

static struct {
	const char *name, *value;
} vars[MAX_VARS];
static size_t n_vars;

static const char *fake_getenv(const char *name)
{
	for (size_t i = 0; i < n_vars; i++)
		if (strcmp(vars[i].name, name) == 0)
			return vars[i].value;
	return NULL;
}

static void set(const char *name, const char *value)
{
	for (size_t i = 0; i < n_vars; i++) {
		if (strcmp(vars[i].name, name) == 0) {
			vars[i].value = value;
			return;
		}
	}
	assert_true(n_vars < MAX_VARS);
	vars[n_vars].name = name;
	vars[n_vars++].value = value;
}

/* The two required variables, valid. */
static int setup(void **state)
{
	n_vars = 0;
	set("BATON_AMQP_URL", "amqp://baton:hunter2@127.0.0.1:5672/%2f");
	set("BATON_MONGO_URI", "mongodb://127.0.0.1:27017/");
	return 0;
}

static size_t count_lines(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* Loads expecting failure; returns the error text (caller frees). */
static char *load_fails(void)
{
	baton_config_t cfg;
	char *errors = NULL;

	assert_int_equal(baton_config_load(&cfg, "orders", fake_getenv, &errors), -1);
	assert_non_null(errors);
	assert_null(cfg.amqp_url); /* nothing left behind */
	assert_null(cfg.flow);
	baton_config_free(&cfg);
	assert_true(strlen(errors) > 0 && errors[strlen(errors) - 1] == '\n');
	return errors;
}

static void load_ok(baton_config_t *cfg)
{
	char *errors = NULL;
	int rc = baton_config_load(cfg, "orders", fake_getenv, &errors);
	if (rc != 0)
		fail_msg("unexpected configuration errors:\n%s", errors ? errors : "(none)");
	assert_null(errors);
}

static void test_defaults(void **state)
{
	baton_config_t cfg;
	char pid[32];

	load_ok(&cfg);
	assert_string_equal(cfg.flow, "orders");
	assert_string_equal(cfg.amqp_url, "amqp://baton:hunter2@127.0.0.1:5672/%2f");
	assert_string_equal(cfg.mongo_uri, "mongodb://127.0.0.1:27017/");
	assert_string_equal(cfg.mongo_db, "baton");
	assert_null(cfg.erp_url);
	assert_null(cfg.storefront_url);
	assert_null(cfg.mgmt_url);
	assert_null(cfg.config_path);
	assert_null(cfg.file);
	assert_int_equal(cfg.prefetch, 64);
	assert_int_equal(cfg.log_level, BATON_LOG_INFO);
	assert_string_equal(cfg.metrics_addr, "127.0.0.1:9464");
	assert_int_equal(cfg.n_retry_tiers, 4);
	assert_int_equal(cfg.retry_tiers_ms[0], 5000);
	assert_int_equal(cfg.retry_tiers_ms[1], 30000);
	assert_int_equal(cfg.retry_tiers_ms[2], 300000);
	assert_int_equal(cfg.retry_tiers_ms[3], 1800000);
	assert_int_equal(cfg.delivery_limit, 10);
	assert_int_equal(cfg.shutdown_grace_ms, 30000);
	assert_int_equal(cfg.http_connect_timeout_ms, 5000);
	assert_int_equal(cfg.http_timeout_ms, 30000);
	assert_int_equal(cfg.http_max_host_conns, 16);
	assert_int_equal(cfg.mongo_pool_size, 8);
	assert_int_equal(cfg.heartbeat_s, 30);
	assert_int_equal(cfg.audit_batch, 100);
	assert_int_equal(cfg.audit_flush_ms, 200);
	/* <hostname>-<pid>, within the allowed set */
	snprintf(pid, sizeof(pid), "-%ld", (long)getpid());
	size_t n = strlen(cfg.worker_id);
	assert_true(n >= strlen(pid) + 1 && n <= 64);
	assert_string_equal(cfg.worker_id + n - strlen(pid), pid);
	assert_int_equal(strspn(cfg.worker_id,
				"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
				"0123456789._-"),
			 n);
	baton_config_free(&cfg);
	baton_config_free(&cfg); /* safe twice */
}

static void test_all_set(void **state)
{
	baton_config_t cfg;

	set("BATON_MONGO_URI", "mongodb+srv://app:pw@cluster0.example.net/?authSource=admin");
	set("BATON_MONGO_DB", "baton_test-1");
	set("BATON_ERP_URL", "https://erp.example/api");
	set("BATON_STOREFRONT_URL", "http://shop.example");
	set("BATON_RABBITMQ_MGMT_URL", "http://baton:pw@127.0.0.1:15672");
	set("BATON_PREFETCH", "65535");
	set("BATON_LOG_LEVEL", "debug");
	set("BATON_METRICS_ADDR", "[::1]:0");
	set("BATON_WORKER_ID", "orders-7.a_b");
	set("BATON_RETRY_TIERS", "300ms, 600ms ,1h");
	set("BATON_DELIVERY_LIMIT", "2");
	set("BATON_SHUTDOWN_GRACE", "0s");
	set("BATON_HTTP_CONNECT_TIMEOUT", "250ms");
	set("BATON_HTTP_TIMEOUT", "1m");
	set("BATON_HTTP_MAX_HOST_CONNS", "1");
	set("BATON_MONGO_POOL", "64");
	set("BATON_HEARTBEAT", "0");
	set("BATON_AUDIT_BATCH", "1");
	set("BATON_AUDIT_FLUSH", "1s");
	load_ok(&cfg);
	assert_string_equal(cfg.mongo_db, "baton_test-1");
	assert_string_equal(cfg.erp_url, "https://erp.example/api");
	assert_string_equal(cfg.storefront_url, "http://shop.example");
	assert_string_equal(cfg.mgmt_url, "http://baton:pw@127.0.0.1:15672");
	assert_int_equal(cfg.prefetch, 65535);
	assert_int_equal(cfg.log_level, BATON_LOG_DEBUG);
	assert_string_equal(cfg.metrics_addr, "[::1]:0");
	assert_string_equal(cfg.worker_id, "orders-7.a_b");
	assert_int_equal(cfg.n_retry_tiers, 3);
	assert_int_equal(cfg.retry_tiers_ms[0], 300);
	assert_int_equal(cfg.retry_tiers_ms[1], 600);
	assert_int_equal(cfg.retry_tiers_ms[2], 3600000);
	assert_int_equal(cfg.delivery_limit, 2);
	assert_int_equal(cfg.shutdown_grace_ms, 0);
	assert_int_equal(cfg.http_connect_timeout_ms, 250);
	assert_int_equal(cfg.http_timeout_ms, 60000);
	assert_int_equal(cfg.http_max_host_conns, 1);
	assert_int_equal(cfg.mongo_pool_size, 64);
	assert_int_equal(cfg.heartbeat_s, 0);
	assert_int_equal(cfg.audit_batch, 1);
	assert_int_equal(cfg.audit_flush_ms, 1000);
	baton_config_free(&cfg);
}

static void test_empty_means_unset_and_off(void **state)
{
	baton_config_t cfg;

	set("BATON_PREFETCH", "");
	set("BATON_METRICS_ADDR", "off");
	set("BATON_HEARTBEAT", "45s");
	load_ok(&cfg);
	assert_int_equal(cfg.prefetch, 64);
	assert_null(cfg.metrics_addr);
	assert_int_equal(cfg.heartbeat_s, 45);
	baton_config_free(&cfg);
}

/* Each bad value gives exactly one line: NAME="value": <expected...>. */
static const struct bad {
	const char *name, *value, *shown, *expect;
} bad_values[] = {
	{"BATON_AMQP_URL", "http://rabbit/", "http://rabbit/", "expected amqp://"},
	{"BATON_AMQP_URL", "amqp://u:hunter2@h:notaport/", "amqp://u:***@h:notaport/",
	 "expected amqp://"},
	{"BATON_MONGO_URI", "postgres://u:hunter2@h/db", "postgres://u:***@h/db",
	 "mongodb:// or mongodb+srv://"},
	{"BATON_MONGO_URI", "mongodb://", "mongodb://", "no host in the URI"},
	{"BATON_MONGO_URI", "mongodb://u:hunter2@/db", "mongodb://u:***@/db", "no host in the URI"},
	{"BATON_MONGO_URI", "mongodb://h/?password=hunter2&tls=maybe",
	 "mongodb://h/?password=***&tls=maybe",
	 "not a valid MongoDB URI"},
	{"BATON_MONGO_DB", "my.db", "my.db", "database name"},
	{"BATON_MONGO_DB", "a b", "a b", "database name"},
	{"BATON_MONGO_DB", "0123456789012345678901234567890123456789012345678901234567890123",
	 "0123456789012345678901234567890123456789012345678901234567890123", "1 to 63"},
	{"BATON_ERP_URL", "ftp://erp", "ftp://erp", "http:// or https://"},
	{"BATON_ERP_URL", "https://", "https://", "with a host"},
	{"BATON_STOREFRONT_URL", "shop.example", "shop.example", "http:// or https://"},
	{"BATON_RABBITMQ_MGMT_URL", "amqp://u:hunter2@h", "amqp://u:***@h", "http:// or https://"},
	{"BATON_PREFETCH", "0", "0", "from 1 to 65535"},
	{"BATON_PREFETCH", "65536", "65536", "from 1 to 65535"},
	{"BATON_PREFETCH", "-1", "-1", "from 1 to 65535"},
	{"BATON_PREFETCH", "12abc", "12abc", "from 1 to 65535"},
	{"BATON_PREFETCH", "99999999999999999999999", "99999999999999999999999", "from 1 to 65535"},
	{"BATON_LOG_LEVEL", "verbose", "verbose", "debug, info, warn, error"},
	{"BATON_METRICS_ADDR", "9464", "9464", "host:port"},
	{"BATON_METRICS_ADDR", ":9464", ":9464", "host:port"},
	{"BATON_METRICS_ADDR", "h:65536", "h:65536", "host:port"},
	{"BATON_METRICS_ADDR", "::1:80", "::1:80", "host:port"},
	{"BATON_WORKER_ID", "has space", "has space", "1 to 64 characters"},
	{"BATON_WORKER_ID", "w/1", "w/1", "1 to 64 characters"},
	{"BATON_WORKER_ID", "x123456789x123456789x123456789x123456789x123456789x123456789x1234",
	 "x123456789x123456789x123456789x123456789x123456789x123456789x1234", "1 to 64"},
	{"BATON_RETRY_TIERS", "5s,5s", "5s,5s", "tier 2 (5s) is not longer than tier 1 (5s)"},
	{"BATON_RETRY_TIERS", "30s,5s", "30s,5s", "tier 2 (5s) is not longer than tier 1 (30s)"},
	{"BATON_RETRY_TIERS", "5s,,30s", "5s,,30s", "tier 2 is empty"},
	{"BATON_RETRY_TIERS", "5", "5", "tier 1 (5) is not a non-zero duration"},
	{"BATON_RETRY_TIERS", "0s", "0s", "tier 1 (0s) is not a non-zero duration"},
	{"BATON_RETRY_TIERS", "1s,2s,3s,4s,5s,6s,7s,8s,9s", "1s,2s,3s,4s,5s,6s,7s,8s,9s",
	 "more than 8 tiers"},
	{"BATON_DELIVERY_LIMIT", "1", "1", "from 2 to 1000"},
	{"BATON_DELIVERY_LIMIT", "1001", "1001", "from 2 to 1000"},
	{"BATON_SHUTDOWN_GRACE", "30", "30", "with a unit"},
	{"BATON_SHUTDOWN_GRACE", "2h", "2h", "from 0ms to 1h"},
	{"BATON_HTTP_CONNECT_TIMEOUT", "0s", "0s", "from 1ms to 10m"},
	{"BATON_HTTP_TIMEOUT", "5 s", "5 s", "duration"},
	{"BATON_HTTP_MAX_HOST_CONNS", "0", "0", "from 1 to 1024"},
	{"BATON_MONGO_POOL", "65", "65", "from 1 to 64"},
	{"BATON_HEARTBEAT", "3601", "3601", "from 0 (disabled) to 3600"},
	{"BATON_HEARTBEAT", "1500ms", "1500ms", "whole seconds"},
	{"BATON_AUDIT_BATCH", "10001", "10001", "from 1 to 10000"},
	{"BATON_AUDIT_FLUSH", "2m", "2m", "from 1ms to 1m"},
	{"BATON_PREFETCH", "1\n2\"", "1\\x0a2\\\"", "from 1 to 65535"},
};

static void test_each_bad_value(void **state)
{
	for (size_t i = 0; i < sizeof(bad_values) / sizeof(bad_values[0]); i++) {
		const struct bad *b = &bad_values[i];
		char head[512];

		setup(NULL);
		set(b->name, b->value);
		char *errors = load_fails();
		snprintf(head, sizeof(head), "%s=\"%s\": ", b->name, b->shown);
		if (count_lines(errors) != 1 || strncmp(errors, head, strlen(head)) != 0 ||
		    !strstr(errors, b->expect) || strstr(errors, "hunter2"))
			fail_msg("%s=%s: got\n%s\nwant one line starting with %s and containing %s",
				 b->name, b->value, errors, head, b->expect);
		free(errors);
	}
}

static void test_required_missing(void **state)
{
	n_vars = 0;
	char *errors = load_fails();
	assert_int_equal(count_lines(errors), 2);
	assert_non_null(strstr(errors, "BATON_AMQP_URL is not set: required"));
	assert_non_null(strstr(errors, "BATON_MONGO_URI is not set: required"));
	free(errors);

	set("BATON_AMQP_URL", ""); /* empty counts as unset */
	set("BATON_MONGO_URI", "mongodb://h/");
	errors = load_fails();
	assert_int_equal(count_lines(errors), 1);
	assert_non_null(strstr(errors, "BATON_AMQP_URL is not set"));
	free(errors);
}

static void test_all_problems_reported(void **state)
{
	set("BATON_AMQP_URL", "amqp://u:hunter2@h:bad/");
	set("BATON_PREFETCH", "0");
	set("BATON_LOG_LEVEL", "loud");
	set("BATON_RETRY_TIERS", "5m,5s");
	set("BATON_MONGO_POOL", "100");
	set("BATON_CONFIG", "/nonexistent/baton.json");
	char *errors = load_fails();
	assert_int_equal(count_lines(errors), 6);
	const char *names[] = {"BATON_AMQP_URL=", "BATON_PREFETCH=",	"BATON_LOG_LEVEL=",
			       "BATON_RETRY_TIERS=", "BATON_MONGO_POOL=", "BATON_CONFIG="};
	for (size_t i = 0; i < 6; i++)
		assert_non_null(strstr(errors, names[i]));
	assert_null(strstr(errors, "hunter2"));
	free(errors);
	/* errors may be NULL */
	baton_config_t cfg;
	assert_int_equal(baton_config_load(&cfg, "orders", fake_getenv, NULL), -1);
}

static char *write_tmp(const char *content)
{
	char *path = strdup("/tmp/baton-test-config-XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
	close(fd);
	return path;
}

static void test_config_file(void **state)
{
	baton_config_t cfg;
	char *good = write_tmp("{\"mappings\": {\"shop-eu\": \"SO\"}}\n");
	char *bad = write_tmp("{\"mappings\": {\"shop-eu\": }\n");
	char *arr = write_tmp("[1, 2]\n");
	char *dup = write_tmp("{\"a\": 1, \"a\": 2}\n");

	set("BATON_CONFIG", good);
	load_ok(&cfg);
	assert_string_equal(cfg.config_path, good);
	assert_true(json_is_object(cfg.file));
	assert_string_equal(json_string_value(json_object_get(json_object_get(cfg.file, "mappings"),
							      "shop-eu")),
			    "SO");
	baton_config_free(&cfg);

	set("BATON_CONFIG", "/nonexistent/baton.json");
	char *errors = load_fails();
	assert_int_equal(count_lines(errors), 1);
	assert_non_null(strstr(errors, "BATON_CONFIG=\"/nonexistent/baton.json\": cannot read the "
					"file"));
	assert_non_null(strstr(errors, "No such file"));
	free(errors);

	set("BATON_CONFIG", bad);
	errors = load_fails();
	assert_int_equal(count_lines(errors), 1);
	assert_non_null(strstr(errors, "not valid JSON at line 1"));
	free(errors);

	set("BATON_CONFIG", arr);
	errors = load_fails();
	assert_int_equal(count_lines(errors), 1);
	assert_non_null(strstr(errors, "the file holds an array; expected a JSON object"));
	free(errors);

	set("BATON_CONFIG", dup);
	errors = load_fails();
	assert_int_equal(count_lines(errors), 1);
	assert_non_null(strstr(errors, "duplicate"));
	free(errors);

	unlink(good);
	unlink(bad);
	unlink(arr);
	unlink(dup);
	free(good);
	free(bad);
	free(arr);
	free(dup);
}

static void test_duration_parse(void **state)
{
	static const struct {
		const char *s;
		unsigned ms;
	} ok[] = {{"250ms", 250},   {"5s", 5000},	     {"5m", 300000},
		  {"1h", 3600000},  {"0s", 0},		     {"0ms", 0},
		  {"1193h", 4294800000u}, {"4294967295ms", UINT_MAX}, {"007s", 7000}};
	static const char *const bad[] = {"",	 "5",	   "s",	    "5x",    "-5s",
					  " 5s", "5s ",   "5 s",   "5S",    "1194h",
					  "4294967296ms", "71583m", "99999999999999999999999ms",
					  "1.5s", "5sec", "+5s"};
	unsigned ms;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		ms = 12345;
		if (baton_duration_parse(ok[i].s, &ms) != 0 || ms != ok[i].ms)
			fail_msg("duration \"%s\": got %u, want %u", ok[i].s, ms, ok[i].ms);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (baton_duration_parse(bad[i], &ms) == 0)
			fail_msg("duration \"%s\" accepted (%u)", bad[i], ms);
	assert_int_equal(baton_duration_parse(NULL, &ms), -1);
}

static void test_parse_tiers(void **state)
{
	unsigned t[8];
	size_t n = 0;
	char why[160];

	assert_int_equal(baton_config_parse_tiers("1s,2s,3s,4s,5s,6s,7s,8s", t, 8, &n, why,
						  sizeof(why)),
			 0);
	assert_int_equal(n, 8);
	assert_int_equal(t[7], 8000);
	assert_int_equal(baton_config_parse_tiers("1s,2s", t, 1, &n, why, sizeof(why)), -1);
	assert_string_equal(why, "more than 1 tiers");
	assert_int_equal(baton_config_parse_tiers("5s,", t, 8, &n, why, sizeof(why)), -1);
	assert_string_equal(why, "tier 2 is empty");
	assert_int_equal(baton_config_parse_tiers("", t, 8, &n, why, sizeof(why)), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_defaults, setup),
		cmocka_unit_test_setup(test_all_set, setup),
		cmocka_unit_test_setup(test_empty_means_unset_and_off, setup),
		cmocka_unit_test_setup(test_each_bad_value, setup),
		cmocka_unit_test_setup(test_required_missing, setup),
		cmocka_unit_test_setup(test_all_problems_reported, setup),
		cmocka_unit_test_setup(test_config_file, setup),
		cmocka_unit_test(test_duration_parse),
		cmocka_unit_test(test_parse_tiers),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	mongoc_cleanup();
	return rc;
}
