/* testkit.h — what system tests share: a private slice of the test stack per test.
 *
 * tools/test.sh starts a private RabbitMQ node and FerretDB and exports BATON_TEST_AMQP_URL,
 * BATON_TEST_MONGO_URI and BATON_TEST_MGMT_URL. bt_stack_open() gives each test its own fresh
 * RabbitMQ vhost and database name, so tests running in parallel never see each other's data;
 * bt_stack_close() deletes both. */
#ifndef BATON_TESTKIT_H
#define BATON_TESTKIT_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

typedef struct bt_stack {
	char vhost[96];      /* fresh vhost, e.g. "t-test_stack-1234-1" */
	char amqp_url[512];  /* URL that points at that vhost */
	char amqp_host[128];
	int amqp_port;
	char amqp_user[128];
	char amqp_pass[128];
	char mgmt_url[512];  /* management API base, credentials included */
	char mongo_uri[512];
	char db_name[96];    /* fresh database name */
} bt_stack_t;

/* Exit code ctest reads as "skipped" (SKIP_RETURN_CODE). */
#define BT_SKIP 77

/* Prepares a fresh vhost and database name for test `name`. Returns 0 on success. When the
 * stack variables are missing it returns BT_SKIP outside CI and 1 under CI=true (a missing stack
 * is a failure there), having printed why. Other errors print the reason and return 1. */
int bt_stack_open(bt_stack_t *s, const char *name);

/* Deletes the vhost and drops the database. Safe to call twice. */
void bt_stack_close(bt_stack_t *s);

/* HTTP request against the management API: method, path (e.g. "/api/vhosts/x"), optional JSON
 * body. Returns the HTTP status or -1; the response body goes to out (may be NULL). */
long bt_mgmt(const bt_stack_t *s, const char *method, const char *path, const char *body,
	     char *out, size_t outlen);

#endif
