/* test_topology.c — the topology table and what is derived from it: the committed
 * broker-config/definitions.json is exactly what the table generates, tier names, the table's
 * sanity, the policies' content, and that every policy matches exactly its queue. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "baton/topology.h"

#define DEFS_PATH BATON_SOURCE_DIR "/broker-config/definitions.json"

static char *read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t cap = 0, n = 0;

	if (!f)
		return NULL;
	for (;;) {
		if (n + 4096 > cap) {
			cap = cap ? cap * 2 : 65536;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
		size_t r = fread(buf + n, 1, cap - n - 1, f);
		n += r;
		if (r == 0)
			break;
	}
	fclose(f);
	buf[n] = '\0';
	*len = n;
	return buf;
}

static json_t *defaults_definitions(void)
{
	baton_topology_opts_t o;
	baton_topology_default_opts(&o);
	json_t *d = baton_topology_definitions(&o);
	assert_non_null(d);
	return d;
}

static void test_committed_definitions_are_current(void **state)
{
	json_t *d = defaults_definitions();
	char *want = json_dumps(d, JSON_INDENT(2) | JSON_SORT_KEYS);
	size_t len = 0, wlen = strlen(want);
	char *have = read_all(DEFS_PATH, &len);

	if (!have || len != wlen + 1 || memcmp(have, want, wlen) != 0 || have[wlen] != '\n')
		fail_msg("%s is %s the topology table in shared/src/topology.c. Regenerate it:\n"
			 "  cmake --build build &&\n"
			 "  build/tools/topology/baton-topology definitions > "
			 "broker-config/definitions.json",
			 DEFS_PATH, have ? "out of date with" : "missing; it is generated from");
	free(have);
	free(want);
	json_decref(d);
}

static void test_tier_names(void **state)
{
	static const struct {
		unsigned ms;
		const char *name;
	} cases[] = {{5000, "5s"},	 {30000, "30s"},  {300000, "5m"},  {1800000, "30m"},
		     {1500, "1500ms"}, {3600000, "1h"}, {300, "300ms"},   {90000, "90s"},
		     {5400000, "90m"}, {7200000, "2h"}, {1, "1ms"},	   {60000, "1m"},
		     {4294967295u, "4294967295ms"}};
	char out[24];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(baton_topology_tier_name(cases[i].ms, out, sizeof(out)), 0);
		assert_string_equal(out, cases[i].name);
	}
	assert_int_equal(baton_topology_tier_name(0, out, sizeof(out)), -1);
	assert_int_equal(baton_topology_tier_name(300000, out, 2), -1); /* "5m" needs 3 */
	assert_int_equal(baton_topology_tier_name(300000, out, 3), 0);
}

static void test_table(void **state)
{
	static const char *const expected[] = {"orders",      "inventory", "payments", "customers",
					       "fulfillment", "returns",   "catalog"};
	size_t n;
	const baton_flow_topology_t *f = baton_topology_flows(&n);

	assert_int_equal(n, sizeof(expected) / sizeof(expected[0]));
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(f[i].name, expected[i]);
		assert_ptr_equal(baton_topology_find(f[i].name), &f[i]);
		for (size_t j = 0; j < i; j++)
			assert_string_not_equal(f[i].name, f[j].name);
		assert_non_null(f[i].routing_keys);
		assert_non_null(f[i].routing_keys[0]); /* at least one key */
		for (size_t k = 0; f[i].routing_keys[k]; k++) {
			/* <source>.<entity>.<event> */
			const char *rk = f[i].routing_keys[k];
			const char *d1 = strchr(rk, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
			assert_true(d1 && d2 && !strchr(d2 + 1, '.') && d2[1]);
			for (size_t l = 0; l < k; l++)
				assert_string_not_equal(rk, f[i].routing_keys[l]);
		}
	}
	assert_null(baton_topology_find("nope"));
	assert_null(baton_topology_find(NULL));
	/* inventory hears about orders too: the case the requeue exchange exists for */
	const baton_flow_topology_t *inv = baton_topology_find("inventory");
	int found = 0;
	for (size_t k = 0; inv->routing_keys[k]; k++)
		found += strcmp(inv->routing_keys[k], "storefront.order.created") == 0;
	assert_int_equal(found, 1);
}

static void test_default_opts(void **state)
{
	baton_topology_opts_t o;

	baton_topology_default_opts(&o);
	assert_int_equal(o.n_tiers, 4);
	assert_int_equal(o.tiers_ms[0], 5000);
	assert_int_equal(o.tiers_ms[1], 30000);
	assert_int_equal(o.tiers_ms[2], 300000);
	assert_int_equal(o.tiers_ms[3], 1800000);
	assert_int_equal(o.delivery_limit, 10);
}

static void test_flow_policy(void **state)
{
	static const char *const keys[] = {"a.b.c", NULL};
	baton_flow_topology_t f = {"my-flow_1", keys};
	baton_topology_opts_t o = {NULL, 0, 7};
	json_t *p = baton_topology_flow_policy(&f, &o);
	json_t *want = json_pack("{s:s, s:s, s:i, s:{s:s, s:s, s:i, s:s, s:s}}", "pattern",
				 "^baton\\.my\\-flow_1$", "apply-to", "queues", "priority",
				 BATON_POLICY_PRIORITY, "definition", "dead-letter-exchange",
				 "baton.dead", "dead-letter-routing-key", "my-flow_1",
				 "delivery-limit", 7, "dead-letter-strategy", "at-least-once",
				 "overflow", "reject-publish");

	assert_non_null(p);
	if (!json_equal(p, want))
		fail_msg("flow policy: %s", json_dumps(p, JSON_SORT_KEYS));
	json_decref(p);
	json_decref(want);
}

static void test_tier_policy(void **state)
{
	json_t *p = baton_topology_tier_policy(300000);
	/* no dead-letter-routing-key: the message keeps its routing key, the flow name */
	json_t *want = json_pack("{s:s, s:s, s:i, s:{s:i, s:s, s:s, s:s}}", "pattern",
				 "^baton\\.retry\\.5m$", "apply-to", "queues", "priority",
				 BATON_POLICY_PRIORITY, "definition", "message-ttl", 300000,
				 "dead-letter-exchange", "baton.requeue", "dead-letter-strategy",
				 "at-least-once", "overflow", "reject-publish");

	assert_non_null(p);
	if (!json_equal(p, want))
		fail_msg("tier policy: %s", json_dumps(p, JSON_SORT_KEYS));
	json_decref(p);
	json_decref(want);
	assert_null(baton_topology_tier_policy(0));
}

static int has_binding(json_t *bindings, const char *src, const char *dst, const char *rk)
{
	size_t i;
	json_t *b;

	json_array_foreach(bindings, i, b) {
		if (!strcmp(json_string_value(json_object_get(b, "source")), src) &&
		    !strcmp(json_string_value(json_object_get(b, "destination")), dst) &&
		    !strcmp(json_string_value(json_object_get(b, "routing_key")), rk))
			return 1;
	}
	return 0;
}

static void test_definitions_content(void **state)
{
	json_t *d = defaults_definitions(), *queues = json_object_get(d, "queues"),
	       *bindings = json_object_get(d, "bindings"),
	       *policies = json_object_get(d, "policies");
	json_t *quorum = json_pack("{s:s}", "x-queue-type", "quorum"), *q, *p, *e;
	size_t n, i, j;
	const baton_flow_topology_t *f = baton_topology_flows(&n);
	char name[128];

	assert_null(json_object_get(d, "users"));
	assert_null(json_object_get(d, "permissions"));
	assert_int_equal(json_array_size(json_object_get(d, "exchanges")), 4);
	json_array_foreach(json_object_get(d, "exchanges"), i, e) {
		assert_string_equal(json_string_value(json_object_get(e, "vhost")), "/");
		assert_true(json_is_true(json_object_get(e, "durable")));
	}
	/* 4 tier queues + 2 per flow, all durable quorum queues with no other argument */
	assert_int_equal(json_array_size(queues), 4 + 2 * n);
	json_array_foreach(queues, i, q) {
		assert_true(json_equal(json_object_get(q, "arguments"), quorum));
		assert_true(json_is_true(json_object_get(q, "durable")));
		assert_string_equal(json_string_value(json_object_get(q, "vhost")), "/");
	}
	for (i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "baton.%s", f[i].name);
		for (j = 0; f[i].routing_keys[j]; j++)
			assert_true(
				has_binding(bindings, "baton.events", name, f[i].routing_keys[j]));
		assert_true(has_binding(bindings, "baton.requeue", name, f[i].name));
		snprintf(name, sizeof(name), "baton.%s.dead", f[i].name);
		assert_true(has_binding(bindings, "baton.dead", name, f[i].name));
	}
	/* the retry tiers are headers bindings on baton.retry */
	json_t *tb = json_array_get(bindings, 0);
	assert_string_equal(json_string_value(json_object_get(tb, "source")), "baton.retry");
	assert_string_equal(json_string_value(json_object_get(tb, "destination")),
			    "baton.retry.5s");
	/* all-with-x: plain "all" ignores x- headers and would send a retry to every tier */
	json_t *targs =
		json_pack("{s:s, s:s}", "x-match", "all-with-x", "x-baton-retry-tier", "5s");
	assert_true(json_equal(json_object_get(tb, "arguments"), targs));
	json_decref(targs);

	/* 4 tier policies + 1 per flow; each pattern matches exactly one queue, its own, and
	 * never a parking queue */
	assert_int_equal(json_array_size(policies), 4 + n);
	json_array_foreach(policies, i, p) {
		regex_t re;
		const char *pname = json_string_value(json_object_get(p, "name"));
		const char *pat = json_string_value(json_object_get(p, "pattern"));
		int matches = 0;
		char want_q[128];

		assert_string_equal(json_string_value(json_object_get(p, "vhost")), "/");
		assert_string_equal(json_string_value(json_object_get(p, "apply-to")), "queues");
		assert_int_equal(regcomp(&re, pat, REG_EXTENDED | REG_NOSUB), 0);
		if (!strncmp(pname, "baton.flow.", 11))
			snprintf(want_q, sizeof(want_q), "baton.%s", pname + 11);
		else
			snprintf(want_q, sizeof(want_q), "%s", pname);
		json_array_foreach(queues, j, q) {
			const char *qn = json_string_value(json_object_get(q, "name"));
			if (regexec(&re, qn, 0, NULL, 0) == 0) {
				matches++;
				assert_string_equal(qn, want_q);
				assert_null(strstr(qn, ".dead"));
			}
		}
		assert_int_equal(matches, 1);
		regfree(&re);
	}
	json_decref(quorum);
	json_decref(d);
}

static void test_definitions_follow_opts(void **state)
{
	unsigned tiers[] = {300, 600};
	baton_topology_opts_t o = {tiers, 2, 3};
	json_t *d = baton_topology_definitions(&o);
	json_t *pol = json_object_get(d, "policies");

	assert_non_null(d);
	assert_string_equal(json_string_value(json_object_get(json_array_get(pol, 0), "name")),
			    "baton.retry.300ms");
	assert_int_equal(
		json_integer_value(json_object_get(
			json_object_get(json_array_get(pol, 1), "definition"), "message-ttl")),
		600);
	assert_int_equal(json_integer_value(json_object_get(
				 json_object_get(json_array_get(pol, 2), "definition"),
				 "delivery-limit")),
			 3);
	json_decref(d);

	/* tiers must increase */
	unsigned bad[] = {600, 300};
	baton_topology_opts_t ob = {bad, 2, 3};
	assert_null(baton_topology_definitions(&ob));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_committed_definitions_are_current),
		cmocka_unit_test(test_tier_names),
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_default_opts),
		cmocka_unit_test(test_flow_policy),
		cmocka_unit_test(test_tier_policy),
		cmocka_unit_test(test_definitions_content),
		cmocka_unit_test(test_definitions_follow_opts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
