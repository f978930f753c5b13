/* test_audit.c — the batched audit writer against the dev stack's FerretDB: 1,000 entries in
 * batches of 100 all confirmed and stored exactly once with personal data redacted, at most
 * BATON_AUDIT_MAX_IN_FLIGHT batches written at once, the flush timer, close flushing what is
 * pending, a refused entry failing alone, 11000 on a re-sent document counting as already
 * stored, and an unreachable server failing every entry (never dropping one silently). */
#include "testkit.h"

#include <jansson.h>
#include <mongoc/mongoc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "baton/audit.h"
#include "baton/store.h"

#define POOL 4
#define WATCHDOG_MS 60000

static bt_stack_t S;
static uv_loop_t loop;
static baton_store_t *store;

typedef struct tally {
	int calls, ok, unavailable, error;
	size_t max_store_in_flight; /* observed from the callbacks */
	char last_err[512];
} tally_t;

static void on_entry(baton_store_status_t st, const char *errmsg, void *ud)
{
	tally_t *t = ud;
	size_t inf = baton_store_in_flight(store);

	t->calls++;
	t->ok += st == BATON_STORE_OK;
	t->unavailable += st == BATON_STORE_UNAVAILABLE;
	t->error += st == BATON_STORE_ERROR;
	if (st == BATON_STORE_OK && errmsg[0])
		fail_msg("OK with a message: %s", errmsg);
	if (st != BATON_STORE_OK)
		snprintf(t->last_err, sizeof(t->last_err), "%s", errmsg);
	if (inf > t->max_store_in_flight)
		t->max_store_in_flight = inf;
}

static int timed_out;

static void on_watchdog(uv_timer_t *t)
{
	timed_out = 1;
}

/* Runs the loop until *count reaches want (bounded by WATCHDOG_MS). */
static void run_until(const int *count, int want)
{
	uv_timer_t dog;

	timed_out = 0;
	uv_timer_init(&loop, &dog);
	uv_timer_start(&dog, on_watchdog, WATCHDOG_MS, 0);
	while (*count < want && !timed_out)
		uv_run(&loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&dog, NULL);
	uv_run(&loop, UV_RUN_NOWAIT);
	assert_false(timed_out);
}

static int closed;

static void on_closed(void *ud)
{
	(*(int *)ud)++;
}

static void close_audit(baton_audit_t *a)
{
	closed = 0;
	baton_audit_close(a, on_closed, &closed);
	run_until(&closed, 1);
	assert_int_equal(closed, 1);
}

/* Documents of "audit" whose field equals the string value. */
static int64_t count_str(const char *field, const char *value)
{
	bson_t *f = BCON_NEW(field, BCON_UTF8(value));
	int64_t n = bt_count_docs(&S, "audit", f);

	bson_destroy(f);
	return n;
}

static int setup(void **state)
{
	char err[256];

	uv_loop_init(&loop);
	store = baton_store_open(&loop, S.mongo_uri, S.db_name, POOL, err, sizeof(err));
	if (!store || baton_store_ensure_indexes(store, err, sizeof(err))) {
		fprintf(stderr, "store: %s\n", err);
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	baton_store_close(store);
	uv_run(&loop, UV_RUN_DEFAULT);
	return uv_loop_close(&loop) == 0 ? 0 : -1;
}

#define N_ENTRIES 1000

static json_t *order_entry(int i)
{
	char id[32];

	snprintf(id, sizeof(id), "msg-%d", i);
	return json_pack("{s:s, s:s, s:s, s:s, s:{s:s, s:s, s:s, s:i}, s:{s:s, s:s}, s:{s:s, s:f}}",
			 "message_id", id, "correlation_id", "corr-bulk", "subject",
			 "orders.created", "event", "processed", "customer", "email",
			 "ann@example.com", "name", "Ann Example", "country", "DE", "id", i,
			 "headers", "authorization", "Bearer abc", "accept", "application/json",
			 "payload", "phone", "+49 30 1234", "total", 12.5);
}

static void test_thousand_entries_batched_and_redacted(void **state)
{
	baton_audit_t *a = baton_audit_new(store, &loop, 100, 50);
	tally_t t = {0};

	assert_non_null(a);
	for (int i = 0; i < N_ENTRIES; i++)
		assert_int_equal(baton_audit_append(a, order_entry(i), on_entry, &t), 0);
	assert_int_equal(t.calls, 0); /* never from inside append */
	assert_int_equal(baton_audit_pending(a), N_ENTRIES);
	run_until(&t.calls, N_ENTRIES);
	if (t.ok != N_ENTRIES)
		fail_msg("%d OK of %d: %s", t.ok, N_ENTRIES, t.last_err);
	assert_int_equal(baton_audit_pending(a), 0);
	/* the callback's own batch counts as in flight while it runs */
	assert_true(t.max_store_in_flight >= 1);
	assert_true(t.max_store_in_flight <= BATON_AUDIT_MAX_IN_FLIGHT);
	close_audit(a);

	assert_int_equal(count_str("correlation_id", "corr-bulk"), N_ENTRIES);
	assert_int_equal(count_str("message_id", "msg-999"), 1);
	assert_int_equal(count_str("customer.email", "ann@example.com"), 0);
	assert_int_equal(count_str("customer.email", "[redacted]"), N_ENTRIES);
	assert_int_equal(count_str("customer.name", "[redacted]"), N_ENTRIES);
	assert_int_equal(count_str("customer.country", "DE"), N_ENTRIES);
	assert_int_equal(count_str("headers.authorization", "[secret]"), N_ENTRIES);
	assert_int_equal(count_str("payload.phone", "[redacted]"), N_ENTRIES);
	bson_t *total = BCON_NEW("payload.total", BCON_DOUBLE(12.5));
	assert_int_equal(bt_count_docs(&S, "audit", total), N_ENTRIES);
	bson_destroy(total);

	/* one stored entry in full: ObjectId _id, ts as RFC 3339 UTC with milliseconds */
	mongoc_client_t *c = mongoc_client_new(S.mongo_uri);
	mongoc_collection_t *col = mongoc_client_get_collection(c, S.db_name, "audit");
	bson_t *f = BCON_NEW("message_id", BCON_UTF8("msg-7"));
	mongoc_cursor_t *cur = mongoc_collection_find_with_opts(col, f, NULL, NULL);
	const bson_t *d;
	bson_iter_t it;
	assert_true(mongoc_cursor_next(cur, &d));
	assert_true(bson_iter_init_find(&it, d, "_id"));
	assert_int_equal(bson_iter_type(&it), BSON_TYPE_OID);
	assert_true(bson_iter_init_find(&it, d, "ts"));
	const char *ts = bson_iter_utf8(&it, NULL);
	assert_int_equal(strlen(ts), 24);
	assert_true(ts[4] == '-' && ts[10] == 'T' && ts[19] == '.' && ts[23] == 'Z');
	assert_false(mongoc_cursor_next(cur, &d));
	mongoc_cursor_destroy(cur);
	bson_destroy(f);
	mongoc_collection_destroy(col);
	mongoc_client_destroy(c);
}

static void test_timer_flush_and_close_flush(void **state)
{
	baton_audit_t *a = baton_audit_new(store, &loop, 100, 20);
	tally_t t = {0};

	/* three entries, far below batch_max: the flush timer writes them */
	for (int i = 0; i < 3; i++)
		assert_int_equal(baton_audit_append(a, json_pack("{s:s}", "correlation_id",
								 "corr-timer"),
						    on_entry, &t),
				 0);
	run_until(&t.calls, 3);
	assert_int_equal(t.ok, 3);
	close_audit(a);
	assert_int_equal(count_str("correlation_id", "corr-timer"), 3);

	/* a flush timer of 10 minutes: close writes what is pending before finishing */
	memset(&t, 0, sizeof(t));
	a = baton_audit_new(store, &loop, 100, 600000);
	for (int i = 0; i < 10; i++)
		assert_int_equal(baton_audit_append(a, json_pack("{s:s}", "correlation_id",
								 "corr-close"),
						    on_entry, &t),
				 0);
	closed = 0;
	baton_audit_close(a, on_closed, &closed);
	assert_int_equal(baton_audit_append(a, json_object(), on_entry, &t), -1); /* closing */
	run_until(&closed, 1);
	assert_int_equal(t.calls, 10); /* every callback before done */
	assert_int_equal(t.ok, 10);
	assert_int_equal(count_str("correlation_id", "corr-close"), 10);

	/* close with nothing pending finishes too */
	a = baton_audit_new(store, &loop, 10, 10);
	close_audit(a);
}

static void test_refused_entry_fails_alone(void **state)
{
	baton_audit_t *a = baton_audit_new(store, &loop, 100, 10);
	tally_t good = {0}, bad = {0};

	assert_int_equal(baton_audit_append(a, json_pack("{s:s}", "correlation_id", "corr-mix"),
					    on_entry, &good),
			 0);
	assert_int_equal(baton_audit_append(a, json_pack("{s:s,s:{s:i}}", "correlation_id",
							 "corr-mix", "detail", "$where", 1),
					    on_entry, &bad),
			 0);
	assert_int_equal(baton_audit_append(a, json_pack("{s:s}", "correlation_id", "corr-mix"),
					    on_entry, &good),
			 0);
	assert_int_equal(baton_audit_append(a, json_string("not an object"), on_entry, &bad), -1);
	baton_audit_flush(a);
	run_until(&good.calls, 2);
	run_until(&bad.calls, 1);
	assert_int_equal(good.ok, 2);
	assert_int_equal(bad.error, 1);
	assert_non_null(strstr(bad.last_err, "/detail/$where"));
	close_audit(a);
	assert_int_equal(count_str("correlation_id", "corr-mix"), 2);
}

/* --- the retry rule underneath: a re-sent document reports DUPLICATE, the rest are written -- */

typedef struct many {
	int calls;
	baton_store_status_t res[8];
	size_t n;
} many_t;

static void on_many(const baton_store_status_t *results, size_t n, const char *errmsg, void *ud)
{
	many_t *m = ud;

	m->calls++;
	m->n = n;
	memcpy(m->res, results, n * sizeof(*results));
}

static void test_resent_documents_count_as_stored(void **state)
{
	bson_t *docs[5];
	many_t m = {0};

	for (int i = 0; i < 5; i++) {
		bson_oid_t oid;
		bson_oid_init(&oid, NULL);
		docs[i] = BCON_NEW("_id", BCON_OID(&oid), "correlation_id",
				   BCON_UTF8("corr-resend"), "i", BCON_INT32(i));
	}
	/* first attempt reaches the server for documents 1 and 3 only */
	const bson_t *first[2] = {docs[1], docs[3]};
	assert_int_equal(baton_store_insert_many_bson(store, "audit", first, 2, 1, on_many, &m), 0);
	run_until(&m.calls, 1);
	assert_int_equal(m.res[0], BATON_STORE_OK);
	assert_int_equal(m.res[1], BATON_STORE_OK);

	/* the whole batch again (ordered=false): 1 and 3 are duplicates, the others are written */
	memset(&m, 0, sizeof(m));
	assert_int_equal(baton_store_insert_many_bson(store, "audit", (const bson_t *const *)docs,
						      5, 3, on_many, &m),
			 0);
	run_until(&m.calls, 1);
	assert_int_equal(m.n, 5);
	for (int i = 0; i < 5; i++)
		assert_int_equal(m.res[i], (i == 1 || i == 3) ? BATON_STORE_DUPLICATE
							      : BATON_STORE_OK);
	assert_int_equal(count_str("correlation_id", "corr-resend"), 5);

	/* an empty batch completes too */
	memset(&m, 0, sizeof(m));
	assert_int_equal(baton_store_insert_many_bson(store, "audit", NULL, 0, 1, on_many, &m), 0);
	run_until(&m.calls, 1);
	assert_int_equal(m.n, 0);
	for (int i = 0; i < 5; i++)
		bson_destroy(docs[i]);
}

static void test_unreachable_server_fails_every_entry(void **state)
{
	char err[256];
	baton_store_t *dead = baton_store_open(
		&loop, "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=500", "x", 2, err,
		sizeof(err));
	baton_audit_t *a;
	tally_t t = {0};

	assert_non_null(dead);
	a = baton_audit_new(dead, &loop, 3, 10);
	for (int i = 0; i < 5; i++) /* two batches: 3 + 2 */
		assert_int_equal(baton_audit_append(a, json_pack("{s:i}", "n", i), on_entry, &t),
				 0);
	run_until(&t.calls, 5);
	assert_int_equal(t.unavailable, 5);
	assert_non_null(strstr(t.last_err, "insert_many: ")); /* the reason, not just a status */
	close_audit(a);
	baton_store_close(dead);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_thousand_entries_batched_and_redacted),
		cmocka_unit_test(test_timer_flush_and_close_flush),
		cmocka_unit_test(test_refused_entry_fails_alone),
		cmocka_unit_test(test_resent_documents_count_as_stored),
		cmocka_unit_test(test_unreachable_server_fails_every_entry),
	};
	setenv("UV_THREADPOOL_SIZE", "4", 1); /* = POOL, as the workers do */
	int rc = bt_stack_open(&S, "audit");
	if (rc != 0)
		return rc;
	rc = cmocka_run_group_tests(tests, setup, teardown);
	bt_stack_close(&S);
	mongoc_cleanup();
	return rc;
}
