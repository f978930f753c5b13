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

/* --- probes shared by system tests (blocking, test code only) --- */
#include <amqp.h>
#include <mongoc/mongoc.h>
#include <sys/types.h>

/* Connection to the test's vhost with channel 1 open; fails the test on error. */
amqp_connection_state_t bt_amqp_open(const bt_stack_t *s);
/* Messages in queue q (ready + unacked) through a passive declare; -1 when it does not exist. */
int64_t bt_queue_depth(amqp_connection_state_t c, const char *q);
/* Persistent JSON publish (message_id = id), confirmed by the broker before it returns; uses a
 * short-lived channel of its own. */
void bt_publish(amqp_connection_state_t c, const char *exchange, const char *rk, const char *id,
		const char *body);
/* count_documents in the test's database; filter may be NULL. */
int64_t bt_count_docs(const bt_stack_t *s, const char *coll, const bson_t *filter);
void bt_sleep_ms(int ms);

/* Starts a worker binary against s with the usual BATON_* variables plus extra "K=V" pairs
 * (NULL-terminated, may be NULL). When wrapper is non-NULL it is a NULL-terminated command that
 * runs the worker (e.g. valgrind and its flags). Returns the pid. */
pid_t bt_spawn_worker(const bt_stack_t *s, const char *bin, const char *worker_id,
		      const char *const *extra_env, const char *const *wrapper);

/* A stack of the test's own (for tests that restart the broker or stop the database), started
 * with tools/stack.sh in a directory under $BATON_TEST_TMP (or /tmp). Fills s (vhost "/", a
 * fresh database name) and dir. 0 or -1 with the reason printed. */
int bt_private_stack_up(bt_stack_t *s, const char *name, char *dir, size_t dirlen);
/* Runs tools/stack.sh <cmd> on that stack (down, broker-restart, db-stop, db-start). */
int bt_private_stack(const char *dir, const char *cmd);

#endif
