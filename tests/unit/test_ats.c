/* test_ats.c — the available-to-sell formula of baton-inventory over a table of cases. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../workers/inventory/ats.c"

#define MAXP 4
#define MAXC 3

typedef struct ats_case {
	const char *name;
	ats_position_t pos[MAXP];
	size_t n;
	int64_t open_orders, buffer;
	uint32_t share_ppm;
	int64_t want_pool, want_ats;
} ats_case_t;

static const ats_case_t cases[] = {
	{"one location", {{120, 8, 0, 2}}, 1, 0, 0, ATS_SHARE_FULL, 110, 110},
	{"two locations", {{10, 2, 1, 0}, {5, 0, 0, 1}}, 2, 0, 0, ATS_SHARE_FULL, 11, 11},
	{"open orders", {{10, 0, 0, 0}, {5, 0, 0, 0}}, 2, 4, 0, ATS_SHARE_FULL, 11, 11},
	{"buffer", {{10, 0, 0, 0}}, 1, 0, 3, ATS_SHARE_FULL, 10, 7},
	{"buffer above stock", {{2, 0, 0, 0}}, 1, 0, 3, ATS_SHARE_FULL, 2, 0},
	{"share 50 % floors", {{15, 0, 0, 0}}, 1, 0, 0, 500000, 15, 7},
	{"share after buffer", {{15, 0, 0, 0}}, 1, 0, 5, 333333, 15, 3},
	{"share 0", {{15, 0, 0, 0}}, 1, 0, 0, 0, 15, 0},
	{"share above 100 % caps", {{15, 0, 0, 0}}, 1, 0, 0, 2000000, 15, 15},
	{"over-allocated location counts", {{10, 15, 0, 0}, {10, 0, 0, 0}}, 2, 0, 0,
	 ATS_SHARE_FULL, 5, 5},
	{"negative result clamps", {{1, 5, 0, 0}}, 1, 2, 0, ATS_SHARE_FULL, -6, 0},
	{"negative inputs count as 0", {{-5, -3, -1, -7}, {4, 0, 0, 0}}, 2, -9, -2, ATS_SHARE_FULL,
	 4, 4},
	{"no location", {{0}}, 0, 0, 0, ATS_SHARE_FULL, 0, 0},
	{"on hand saturates", {{INT64_MAX, 0, 0, 0}, {INT64_MAX, 0, 0, 0}}, 2, 0, 0,
	 ATS_SHARE_FULL, INT64_MAX, INT64_MAX},
	{"saturated with share", {{INT64_MAX, 0, 0, 0}}, 1, 0, 0, 500000, INT64_MAX,
	 INT64_MAX / 2},
	{"huge deductions saturate", {{0, INT64_MAX, INT64_MAX, INT64_MAX}}, 1, INT64_MAX, 0,
	 ATS_SHARE_FULL, INT64_MIN, 0},
	{"huge buffer", {{100, 0, 0, 0}}, 1, 0, INT64_MAX, ATS_SHARE_FULL, 100, 0},
};

static void test_table(void **st)
{
	(void)st;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const ats_case_t *c = &cases[i];
		int64_t pool = ats_pool(c->pos, c->n, c->open_orders);
		int64_t got = ats_final(pool, c->buffer, c->share_ppm);

		if (pool != c->want_pool || got != c->want_ats)
			fail_msg("case '%s': pool %lld (want %lld), ATS %lld (want %lld)", c->name,
				 (long long)pool, (long long)c->want_pool, (long long)got,
				 (long long)c->want_ats);
	}
}

typedef struct kit_case {
	const char *name;
	ats_component_t c[MAXC];
	size_t n;
	int64_t want;
} kit_case_t;

static const kit_case_t kits[] = {
	{"single component", {{10, 3}}, 1, 3},
	{"minimum of components", {{10, 2}, {7, 1}, {30, 4}}, 3, 5},
	{"exact multiple", {{12, 4}, {9, 3}}, 2, 3},
	{"one component empty", {{10, 2}, {0, 1}}, 2, 0},
	{"negative component", {{10, 2}, {-4, 1}}, 2, 0},
	{"invalid per_kit", {{10, 0}}, 1, 0},
	{"no components", {{0}}, 0, 0},
	{"huge pools", {{INT64_MAX, 1}, {INT64_MAX, 2}}, 2, INT64_MAX / 2},
};

static void test_kits(void **st)
{
	(void)st;
	for (size_t i = 0; i < sizeof(kits) / sizeof(kits[0]); i++) {
		int64_t got = ats_kit_pool(kits[i].c, kits[i].n);

		if (got != kits[i].want)
			fail_msg("kit case '%s': %lld (want %lld)", kits[i].name, (long long)got,
				 (long long)kits[i].want);
	}
	/* a kit's own buffer and share apply to its pool */
	ats_component_t c[2] = {{21, 2}, {50, 5}};
	assert_int_equal(ats_final(ats_kit_pool(c, 2), 2, 500000), 4);
}

static void test_saturating(void **st)
{
	(void)st;
	assert_true(ats_add(INT64_MAX, 1) == INT64_MAX);
	assert_true(ats_add(INT64_MIN, -1) == INT64_MIN);
	assert_true(ats_sub(INT64_MIN, 1) == INT64_MIN);
	assert_true(ats_sub(INT64_MAX, -1) == INT64_MAX);
	assert_true(ats_sub(0, INT64_MIN) == INT64_MAX);
	assert_int_equal(ats_add(2, 3), 5);
	assert_int_equal(ats_sub(2, 3), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_kits),
		cmocka_unit_test(test_saturating),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
