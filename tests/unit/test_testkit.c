/* test_testkit.c — the harness itself: it must refuse to run system tests silently without a
 * stack (skip outside CI, fail under CI=true). */
#include "testkit.h"

#include <stdlib.h>

static void test_missing_stack_skips_outside_ci(void **state)
{
	bt_stack_t s;
	unsetenv("BATON_TEST_AMQP_URL");
	unsetenv("CI");
	assert_int_equal(bt_stack_open(&s, "x"), BT_SKIP);
}

static void test_missing_stack_fails_under_ci(void **state)
{
	bt_stack_t s;
	unsetenv("BATON_TEST_AMQP_URL");
	setenv("CI", "true", 1);
	assert_int_equal(bt_stack_open(&s, "x"), 1);
}

static void test_missing_mongo_fails_under_ci(void **state)
{
	bt_stack_t s;
	setenv("BATON_TEST_AMQP_URL", "amqp://u:p@127.0.0.1:1/%2f", 1);
	unsetenv("BATON_TEST_MONGO_URI");
	setenv("CI", "true", 1);
	assert_int_equal(bt_stack_open(&s, "x"), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_missing_stack_skips_outside_ci),
		cmocka_unit_test(test_missing_stack_fails_under_ci),
		cmocka_unit_test(test_missing_mongo_fails_under_ci),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
