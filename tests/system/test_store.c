/* test_store.c — baton_store against the dev stack's FerretDB, driven from a libuv loop: the
 * idempotency ledger (duplicate puts hand back the first outcome, 50 concurrent puts of one key
 * give exactly one OK), versioned documents (insert, conflicting insert, versioned update, stale
 * version, not found), plain insert and $set, types surviving a round trip through the server,
 * hostile documents refused before reaching it, idempotent indexes, and an unreachable server
 * giving UNAVAILABLE callbacks instead of a crash or a hang. */
#include "testkit.h"

#include <jansson.h>
#include <mongoc/mongoc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "baton/store.h"

#define POOL 8
#define WATCHDOG_MS 60000

static bt_stack_t S;
static uv_loop_t loop;
static baton_store_t *store;

typedef struct res {
	int calls;
	baton_store_status_t st;
	json_t *result; /* kept reference */
	char msg[512];
} res_t;

static int total_calls; /* callbacks so far, all operations */

static void on_res(baton_store_status_t st, json_t *result, const char *errmsg, void *ud)
{
	res_t *r = ud;

	total_calls++;
	r->calls++;
	r->st = st;
	json_decref(r->result);
	r->result = json_incref(result);
	snprintf(r->msg, sizeof(r->msg), "%s", errmsg);
}

static void res_clear(res_t *r)
{
	json_decref(r->result);
	memset(r, 0, sizeof(*r));
}

static int timed_out;

static void on_watchdog(uv_timer_t *t)
{
	timed_out = 1;
}

/* Runs the loop until *count reaches want; fails the test after WATCHDOG_MS (bounded wait). */
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

/* Waits for one operation started into r. */
static void wait_one(res_t *r)
{
	run_until(&r->calls, 1);
	assert_int_equal(r->calls, 1);
}

static json_t *load(const char *text)
{
	json_error_t e;
	json_t *j = json_loads(text, 0, &e);

	if (!j)
		fail_msg("bad test JSON: %s", e.text);
	return j;
}

static void assert_json(const json_t *got, const char *want_text)
{
	json_t *want = load(want_text);

	if (!json_equal(got, want)) {
		char *g = got ? json_dumps(got, JSON_SORT_KEYS | JSON_ENCODE_ANY) : NULL;
		fail_msg("got %s, want %s", g ? g : "NULL", want_text);
	}
	json_decref(want);
}

static void assert_st(const res_t *r, baton_store_status_t want)
{
	if (r->st != want)
		fail_msg("status %s (%s), want %s", baton_store_status_name(r->st), r->msg,
			 baton_store_status_name(want));
}

static int setup(void **state)
{
	char err[256];

	uv_loop_init(&loop);
	store = baton_store_open(&loop, S.mongo_uri, S.db_name, POOL, err, sizeof(err));
	if (!store) {
		fprintf(stderr, "store open: %s\n", err);
		return -1;
	}
	if (baton_store_ensure_indexes(store, err, sizeof(err))) {
		fprintf(stderr, "ensure_indexes: %s\n", err);
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

/* --- tests ---------------------------------------------------------------------------------- */

static int has_index(const char *coll, const char *name, int unique)
{
	mongoc_client_t *c = mongoc_client_new(S.mongo_uri);
	mongoc_collection_t *col = mongoc_client_get_collection(c, S.db_name, coll);
	mongoc_cursor_t *cur = mongoc_collection_find_indexes_with_opts(col, NULL);
	const bson_t *d;
	int found = 0;

	while (mongoc_cursor_next(cur, &d)) {
		bson_iter_t it;
		if (!bson_iter_init_find(&it, d, "name") || strcmp(bson_iter_utf8(&it, NULL), name))
			continue;
		int u = bson_iter_init_find(&it, d, "unique") && bson_iter_as_bool(&it);
		found = (u == unique);
	}
	mongoc_cursor_destroy(cur);
	mongoc_collection_destroy(col);
	mongoc_client_destroy(c);
	return found;
}

static void test_ping_and_indexes_idempotent(void **state)
{
	char err[256];

	if (baton_store_ping(store, err, sizeof(err)))
		fail_msg("ping: %s", err);
	/* setup already created them once: twice more changes nothing and does not fail */
	assert_int_equal(baton_store_ensure_indexes(store, err, sizeof(err)), 0);
	assert_int_equal(baton_store_ensure_indexes(store, err, sizeof(err)), 0);
	assert_true(has_index("ledger", "key_1", 1));
	assert_true(has_index("audit", "message_id_1", 0));
	assert_true(has_index("audit", "correlation_id_1", 0));
	assert_true(has_index("audit", "subject_1", 0));
	assert_true(has_index("audit", "ts_1", 0));
	assert_true(has_index("dead_letters", "message_id_1", 0));
	assert_true(has_index("dead_letters", "flow_1_status_1", 0));

	res_t r = {0};
	assert_int_equal(baton_store_ping_async(store, on_res, &r), 0);
	wait_one(&r);
	assert_st(&r, BATON_STORE_OK);
	assert_string_equal(r.msg, "");
	res_clear(&r);
}

static void test_ledger_duplicate_returns_first_outcome(void **state)
{
	const char *key = "erp.sales_order:shop-eu:SO-1";
	json_t *first = load("{\"erp_id\":\"SO-1\",\"lines\":2}");
	json_t *second = load("{\"erp_id\":\"SO-9\"}");
	res_t r = {0};

	assert_int_equal(baton_store_ledger_get(store, key, on_res, &r), 0);
	wait_one(&r);
	assert_st(&r, BATON_STORE_NOT_FOUND);
	res_clear(&r);

	assert_int_equal(baton_store_ledger_put(store, key, first, on_res, &r), 0);
	wait_one(&r);
	assert_st(&r, BATON_STORE_OK);
	assert_string_equal(json_string_value(json_object_get(r.result, "key")), key);
	assert_true(json_equal(json_object_get(r.result, "outcome"), first));
	res_clear(&r);

	assert_int_equal(baton_store_ledger_put(store, key, second, on_res, &r), 0);
	wait_one(&r);
	assert_st(&r, BATON_STORE_DUPLICATE);
	assert_true(json_equal(json_object_get(r.result, "outcome"), first)); /* the first one */
	assert_null(json_object_get(r.result, "_id"));
	res_clear(&r);

	assert_int_equal(baton_store_ledger_get(store, key, on_res, &r), 0);
	wait_one(&r);
	assert_st(&r, BATON_STORE_OK);
	assert_true(json_equal(json_object_get(r.result, "outcome"), first));
	const char *at = json_string_value(json_object_get(r.result, "at"));
	assert_non_null(at);
	assert_int_equal(strlen(at), 24); /* 2024-05-06T07:08:09.123Z */
	assert_int_equal(at[23], 'Z');
	res_clear(&r);

	/* a scalar or missing outcome is fine too */
	assert_int_equal(baton_store_ledger_put(store, "k-null", NULL, on_res, &r), 0);
	wait_one(&r);
	assert_st(&r, BATON_STORE_OK);
	assert_true(json_is_null(json_object_get(r.result, "outcome")));
	res_clear(&r);
	json_decref(first);
	json_decref(second);
	bson_t *f = BCON_NEW("key", BCON_UTF8(key));
	assert_int_equal(bt_count_docs(&S, "ledger", f), 1);
	bson_destroy(f);
}

#define N_CONCURRENT 50

static void test_ledger_concurrent_puts_one_winner(void **state)
{
	const char *key = "storefront.fulfillment:shop-eu:F-77";
	res_t r[N_CONCURRENT];
	int ok = 0, dup = 0, winner = -1, base = total_calls;

	memset(r, 0, sizeof(r));
	for (int i = 0; i < N_CONCURRENT; i++) {
		json_t *outcome = json_pack("{s:i}", "attempt", i);
		assert_int_equal(baton_store_ledger_put(store, key, outcome, on_res, &r[i]), 0);
		json_decref(outcome); /* borrowed: already converted */
	}
	assert_int_equal(baton_store_in_flight(store), N_CONCURRENT);
	run_until(&total_calls, base + N_CONCURRENT);
	for (int i = 0; i < N_CONCURRENT; i++) {
		assert_int_equal(r[i].calls, 1);
		if (r[i].st == BATON_STORE_OK) {
			ok++;
			winner = i;
		} else {
			assert_st(&r[i], BATON_STORE_DUPLICATE);
			dup++;
		}
	}
	assert_int_equal(ok, 1);
	assert_int_equal(dup, N_CONCURRENT - 1);
	/* every loser was handed the winner's outcome */
	for (int i = 0; i < N_CONCURRENT; i++) {
		json_t *o = json_object_get(r[i].result, "outcome");
		assert_int_equal(json_integer_value(json_object_get(o, "attempt")), winner);
		res_clear(&r[i]);
	}
	bson_t *f = BCON_NEW("key", BCON_UTF8(key));
	assert_int_equal(bt_count_docs(&S, "ledger", f), 1);
	bson_destroy(f);
	assert_int_equal(baton_store_in_flight(store), 0);
}

static void test_doc_versions(void **state)
{
	json_t *d1 = load("{\"status\":\"new\",\"_id\":\"ignored\",\"version\":99,\"total\":10}");
	json_t *d2 = load("{\"status\":\"paid\",\"total\":10}");
	json_t *d3 = load("{\"status\":\"stale\"}");
	res_t r = {0};

	assert_int_equal(baton_store_doc_put(store, "orders", "SO-1", d1, 0, on_res, &r), 0);
	wait_one(&r);
	assert_st(&r, BATON_STORE_OK);
	assert_json(r.result, "{\"_id\":\"SO-1\",\"version\":1,\"status\":\"new\",\"total\":10}");
	res_clear(&r);

	/* a second insert of the same id */
	assert_int_equal(baton_store_doc_put(store, "orders", "SO-1", d2, 0, on_res, &r), 0);
	wait_one(&r);
	assert_st(&r, BATON_STORE_CONFLICT);
	res_clear(&r);

	assert_int_equal(baton_store_doc_put(store, "orders", "SO-1", d2, 1, on_res, &r), 0);
	wait_one(&r);
	assert_st(&r, BATON_STORE_OK);
	assert_json(r.result, "{\"_id\":\"SO-1\",\"version\":2,\"status\":\"paid\",\"total\":10}");
	res_clear(&r);

	/* stale version: someone else updated first */
	assert_int_equal(baton_store_doc_put(store, "orders", "SO-1", d3, 1, on_res, &r), 0);
	wait_one(&r);
	assert_st(&r, BATON_STORE_CONFLICT);
	assert_non_null(strstr(r.msg, "stored version is 2"));
	res_clear(&r);

	assert_int_equal(baton_store_doc_get(store, "orders", "SO-1", on_res, &r), 0);
	wait_one(&r);
	assert_st(&r, BATON_STORE_OK);
	assert_json(r.result, "{\"_id\":\"SO-1\",\"version\":2,\"status\":\"paid\",\"total\":10}");
	res_clear(&r);

	assert_int_equal(baton_store_doc_put(store, "orders", "SO-404", d2, 3, on_res, &r), 0);
	wait_one(&r);
	assert_st(&r, BATON_STORE_NOT_FOUND);
	res_clear(&r);
	assert_int_equal(baton_store_doc_get(store, "orders", "SO-404", on_res, &r), 0);
	wait_one(&r);
	assert_st(&r, BATON_STORE_NOT_FOUND);
	assert_null(r.result);
	res_clear(&r);

	assert_int_equal(baton_store_doc_put(store, "orders", "x", d2, -1, on_res, &r), -1);
	assert_int_equal(r.calls, 0);
	json_decref(d1);
	json_decref(d2);
	json_decref(d3);
}

static void test_types_survive_the_server(void **state)
{
	const char *text = "{\"big\":9223372036854775807,\"neg\":-9223372036854775808,"
			   "\"r\":0.1,\"s\":\"Gr\\u00fc\\u00dfe \\ud83d\\ude00\",\"b\":false,"
			   "\"z\":null,\"nest\":{\"arr\":[1,{\"in\":[2,{\"k\":[3]}]},"
			   "{\"k\":\"v\"}],\"empty\":{},\"none\":[]}}";
	json_t *doc = load(text);
	res_t r = {0};

	assert_int_equal(baton_store_doc_put(store, "types", "t-1", doc, 0, on_res, &r), 0);
	wait_one(&r);
	assert_st(&r, BATON_STORE_OK);
	res_clear(&r);
	assert_int_equal(baton_store_doc_get(store, "types", "t-1", on_res, &r), 0);
	wait_one(&r);
	assert_st(&r, BATON_STORE_OK);
	json_object_del(r.result, "_id");
	json_object_del(r.result, "version");
	if (!json_equal(r.result, doc))
		fail_msg("round trip changed the document: %s",
			 json_dumps(r.result, JSON_SORT_KEYS));
	res_clear(&r);
	json_decref(doc);

	/* FerretDB v1 refuses an array directly inside an array; whatever the server, such a
	 * refusal must be permanent (ERROR), never UNAVAILABLE (which would retry forever) */
	doc = load("{\"m\":[[1,2],[3]]}");
	assert_int_equal(baton_store_doc_put(store, "types", "t-2", doc, 0, on_res, &r), 0);
	wait_one(&r);
	assert_true(r.st == BATON_STORE_OK || r.st == BATON_STORE_ERROR);
	res_clear(&r);
	json_decref(doc);
}

static void test_insert_and_set(void **state)
{
	json_t *dl = load("{\"_id\":\"dl-1\",\"message_id\":\"m-1\",\"flow\":\"orders\","
			  "\"status\":\"parked\"}");
	json_t *dl_again = load("{\"_id\":\"dl-1\",\"message_id\":\"m-1\",\"flow\":\"orders\"}");
	/* the same event parked by another flow is a record of its own */
	json_t *dl_other = load("{\"_id\":\"dl-3\",\"message_id\":\"m-1\",\"flow\":\"inventory\"}");
	json_t *anon = load("{\"message_id\":\"m-2\",\"flow\":\"orders\",\"status\":\"parked\"}");
	json_t *fate = load("{\"status\":\"replayed\",\"fate\":{\"by\":\"ops\",\"n\":1}}");
	res_t r = {0};

	assert_int_equal(baton_store_insert(store, "dead_letters", dl, on_res, &r), 0);
	wait_one(&r);
	assert_st(&r, BATON_STORE_OK);
	assert_true(json_equal(r.result, dl));
	res_clear(&r);

	/* a second insert of the same record is a duplicate (unique _id) */
	assert_int_equal(baton_store_insert(store, "dead_letters", dl_again, on_res, &r), 0);
	wait_one(&r);
	assert_st(&r, BATON_STORE_DUPLICATE);
	res_clear(&r);
	assert_int_equal(baton_store_insert(store, "dead_letters", dl_other, on_res, &r), 0);
	wait_one(&r);
	assert_st(&r, BATON_STORE_OK);
	res_clear(&r);

	/* no _id: an ObjectId is generated and handed back as hex */
	assert_int_equal(baton_store_insert(store, "dead_letters", anon, on_res, &r), 0);
	wait_one(&r);
	assert_st(&r, BATON_STORE_OK);
	const char *oid = json_string_value(json_object_get(r.result, "_id"));
	assert_non_null(oid);
	assert_int_equal(strlen(oid), 24);
	assert_true(bson_oid_is_valid(oid, 24));
	res_clear(&r);

	assert_int_equal(baton_store_set(store, "dead_letters", "dl-1", fate, on_res, &r), 0);
	wait_one(&r);
	assert_st(&r, BATON_STORE_OK);
	res_clear(&r);
	assert_int_equal(baton_store_doc_get(store, "dead_letters", "dl-1", on_res, &r), 0);
	wait_one(&r);
	assert_json(r.result, "{\"_id\":\"dl-1\",\"message_id\":\"m-1\",\"flow\":\"orders\","
			      "\"status\":\"replayed\",\"fate\":{\"by\":\"ops\",\"n\":1}}");
	res_clear(&r);

	assert_int_equal(baton_store_set(store, "dead_letters", "dl-404", fate, on_res, &r), 0);
	wait_one(&r);
	assert_st(&r, BATON_STORE_NOT_FOUND);
	res_clear(&r);

	json_t *bad_set = load("{\"_id\":\"other\"}");
	assert_int_equal(baton_store_set(store, "dead_letters", "dl-1", bad_set, on_res, &r), 0);
	wait_one(&r);
	assert_st(&r, BATON_STORE_ERROR);
	res_clear(&r);
	json_decref(bad_set);
	json_decref(dl);
	json_decref(dl_again);
	json_decref(dl_other);
	json_decref(anon);
	json_decref(fate);
}

static void test_hostile_documents_never_reach_the_server(void **state)
{
	json_t *bad =
		load("{\"status\":\"x\",\"items\":[{\"sku\":\"A\",\"$where\":\"sleep(1)\"}]}");
	json_t *dotted = load("{\"a\":{\"b.c\":1}}");
	res_t r = {0};

	assert_int_equal(baton_store_doc_put(store, "hostile", "h-1", bad, 0, on_res, &r), 0);
	wait_one(&r);
	assert_st(&r, BATON_STORE_ERROR);
	assert_non_null(strstr(r.msg, "/items/0/$where"));
	res_clear(&r);
	assert_int_equal(baton_store_insert(store, "hostile", dotted, on_res, &r), 0);
	wait_one(&r);
	assert_st(&r, BATON_STORE_ERROR);
	assert_non_null(strstr(r.msg, "/a/b.c"));
	res_clear(&r);
	/* a hostile collection name is refused as well */
	assert_int_equal(baton_store_doc_get(store, "x$cmd", "h-1", on_res, &r), 0);
	wait_one(&r);
	assert_st(&r, BATON_STORE_ERROR);
	res_clear(&r);
	assert_int_equal(bt_count_docs(&S, "hostile", NULL), 0);
	json_decref(bad);
	json_decref(dotted);
}

static void test_unreachable_server(void **state)
{
	char err[256];
	baton_store_t *dead = baton_store_open(
		&loop, "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=500", "x", 2, err,
		sizeof(err));
	json_t *doc = load("{\"a\":1}");
	res_t r[4];
	int base = total_calls;

	memset(r, 0, sizeof(r));
	assert_non_null(dead);
	assert_int_equal(baton_store_ping(dead, err, sizeof(err)), -1);
	assert_true(strlen(err) > 0);
	assert_int_equal(baton_store_ensure_indexes(dead, err, sizeof(err)), -1);
	assert_int_equal(baton_store_ledger_put(dead, "k", doc, on_res, &r[0]), 0);
	assert_int_equal(baton_store_doc_get(dead, "c", "id", on_res, &r[1]), 0);
	assert_int_equal(baton_store_doc_put(dead, "c", "id", doc, 0, on_res, &r[2]), 0);
	assert_int_equal(baton_store_set(dead, "c", "id", doc, on_res, &r[3]), 0);
	/* closing with operations in flight defers the destruction to the last callback */
	baton_store_close(dead);
	run_until(&total_calls, base + 4);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(r[i].calls, 1);
		assert_st(&r[i], BATON_STORE_UNAVAILABLE);
		assert_true(strlen(r[i].msg) > 0);
		res_clear(&r[i]);
	}
	json_decref(doc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ping_and_indexes_idempotent),
		cmocka_unit_test(test_ledger_duplicate_returns_first_outcome),
		cmocka_unit_test(test_ledger_concurrent_puts_one_winner),
		cmocka_unit_test(test_doc_versions),
		cmocka_unit_test(test_types_survive_the_server),
		cmocka_unit_test(test_insert_and_set),
		cmocka_unit_test(test_hostile_documents_never_reach_the_server),
		cmocka_unit_test(test_unreachable_server),
	};
	/* as the workers do: as many libuv pool threads as MongoDB pool clients */
	setenv("UV_THREADPOOL_SIZE", "8", 1);
	int rc = bt_stack_open(&S, "store");
	if (rc != 0)
		return rc;
	rc = cmocka_run_group_tests(tests, setup, teardown);
	bt_stack_close(&S);
	mongoc_cleanup();
	return rc;
}
