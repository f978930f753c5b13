/* test_inventory.c — baton-inventory end to end: the real broker and FerretDB, the ERP
 * simulator emitting erp.stock.changed, the storefront simulator taking the writes (and
 * selling at /checkout, emitting storefront.order.created).
 *
 *   out_of_order   stock events replayed stale and duplicated: audited as such, the published
 *                  number never moves backwards (every write the storefront saw is checked)
 *   oversell_b0    concurrent checkouts against limited stock while the ERP changes stock and
 *   oversell_b3    allocates late, buffer 0 and 3: checkouts accepted never exceed the stock
 *                  that existed minus the buffer; at rest the level equals the computed ATS,
 *                  before and after the ERP's allocations retire the reservations
 *   two_replicas   two replicas on one queue, checkouts (one and two lines) racing ERP changes
 *                  on three SKUs: never oversold; at rest every level equals the ATS of the final
 *                  state (reservations open, retired, a value flipped back and forth), before and
 *                  after a drift pass of each replica
 *   rate_limit     10 changes for each of 40 SKUs against a 40-request bucket leaking 2/s:
 *                  every final value arrives, at most a handful of 429s, few writes
 *   drift          levels changed behind baton's back are found (audit) and corrected by
 *                  on-demand drift passes (SIGUSR1)
 *   bad_input      invalid events are parked with payload.invalid naming the field
 *   store_find     baton_store_find: equality, limit, order; operators refused (key or value)
 *   crash_catch_up a replica killed -9 after acking a change it could not publish (storefront
 *                  503): the next replica's start-up drift pass publishes it */
#define _GNU_SOURCE
#include "flowtest.h"

#include <pthread.h>

#include "baton/store.h"

#define INV_BIN BATON_BINARY_DIR "/workers/inventory/baton-inventory"
#define SF_BIN BATON_BINARY_DIR "/tools/sim/baton-sim-storefront"
#define INV_QUEUE "baton.inventory"
#define INV_PARKING "baton.inventory.dead"
#define LOC "WH1"

static bt_stack_t S;
static simt_proc_t ERP, SF;
static amqp_connection_state_t C;
static pid_t W;
static char cfg_path[512];

static int setup(void **state)
{
	static int n;
	char name[64];

	(void)state;
	snprintf(name, sizeof(name), "test_inventory_%d", ++n);
	if (bt_stack_open(&S, name) != 0)
		return -1;
	C = bt_amqp_open(&S);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	ft_kill_all();
	simt_stop(&ERP);
	simt_stop(&SF);
	amqp_destroy_connection(C);
	bt_stack_close(&S);
	unlink(cfg_path);
	return 0;
}

/* A worker replica against the simulators and the config file; waits for its consumer. */
static pid_t spawn_worker(const char *id, int consumers)
{
	static char sfu[128], cfg[600];
	const char *env[] = {sfu, cfg, "BATON_AUDIT_FLUSH=50ms", "BATON_RETRY_TIERS=1s,2s,3s",
			     "BATON_SHUTDOWN_GRACE=10s", NULL};
	pid_t pid;

	snprintf(sfu, sizeof(sfu), "BATON_STOREFRONT_URL=%s", SF.base);
	snprintf(cfg, sizeof(cfg), "BATON_CONFIG=%s", cfg_path);
	pid = bt_spawn_worker(&S, INV_BIN, id, env, NULL);
	for (int i = 0; i < 64; i++)
		if (ft_pids[i] == 0) {
			ft_pids[i] = pid;
			break;
		}
	ft_wait_consumers(&S, INV_QUEUE, consumers, 60);
	return pid;
}

/* Simulators publishing to the test's vhost, then the worker with this config. */
static void start_all(const char *inventory_cfg, const char *const *sf_args)
{
	const char *erp_args[] = {"--amqp", S.amqp_url, NULL};
	const char *sfa[16] = {"--amqp", S.amqp_url};
	char *tmp = getenv("BATON_TEST_TMP");
	size_t n = 2;
	FILE *f;

	for (const char *const *a = sf_args; a && *a && n < 15; a++)
		sfa[n++] = *a;
	assert_int_equal(simt_start(&ERP, FT_ERP_BIN, erp_args, NULL), 0);
	assert_int_equal(simt_start(&SF, SF_BIN, sfa, NULL), 0);
	snprintf(cfg_path, sizeof(cfg_path), "%s/inventory-%s.json", tmp ? tmp : "/tmp", S.db_name);
	f = fopen(cfg_path, "w");
	assert_non_null(f);
	fprintf(f, "{\"inventory\": %s}\n", inventory_cfg);
	fclose(f);
	W = spawn_worker("inv1", 1);
}

static void erp_put(const char *sku, const char *body)
{
	char path[256];
	json_t *j;

	snprintf(path, sizeof(path), "/api/stock/%s/" LOC, sku);
	j = ft_sim_json(&ERP, "PUT", path, body);
	assert_non_null(j);
	json_decref(j);
}

/* The storefront's level of sku at LOC, -1 when it has none. */
static long long sf_level(const char *sku)
{
	json_t *st = ft_get_json(&SF, "/_sim/state"), *l;
	long long v = -1;
	size_t i;

	assert_non_null(st);
	json_array_foreach(json_object_get(st, "inventory_levels"), i, l)
		if (!strcmp(json_string_value(json_object_get(l, "sku")), sku) &&
		    !strcmp(json_string_value(json_object_get(l, "location_id")), LOC))
			v = json_integer_value(json_object_get(l, "available"));
	json_decref(st);
	return v;
}

/* Polls until the level is want (bounded); returns the last level seen. */
static long long wait_level(const char *sku, long long want, int timeout_s)
{
	long long v = -1;

	for (int i = 0; i < timeout_s * 20; i++) {
		if ((v = sf_level(sku)) == want)
			break;
		bt_sleep_ms(50);
	}
	return v;
}

static long sf_count(const char *name)
{
	json_t *st = ft_get_json(&SF, "/_sim/state");
	long v;

	assert_non_null(st);
	v = (long)json_integer_value(json_object_get(json_object_get(st, "counts"), name));
	json_decref(st);
	return v;
}

static int64_t audit_count(const char *step)
{
	bson_t *f = BCON_NEW("step", BCON_UTF8(step));
	int64_t n = bt_count_docs(&S, "audit", f);

	bson_destroy(f);
	return n;
}

static int64_t wait_audit(const char *step, int64_t n, int timeout_s)
{
	int64_t got = 0;

	for (int i = 0; i < timeout_s * 10 && (got = audit_count(step)) < n; i++)
		bt_sleep_ms(100);
	return got;
}

/* Requests to path answered with status (storefront request log). */
static long count_status(const char *path, long status)
{
	json_t *j = ft_get_json(&SF, "/_sim/requests?limit=1000"), *r;
	long n = 0;
	size_t i;

	assert_non_null(j);
	json_array_foreach(json_object_get(j, "requests"), i, r)
		n += !strcmp(json_string_value(json_object_get(r, "path")) ?: "", path) &&
		     json_integer_value(json_object_get(r, "status")) == status;
	json_decref(j);
	return n;
}

/* --- out of order and duplicates -------------------------------------------------------------- */

static void publish_stock(const char *id, const char *sku, int on_hand, int seq)
{
	char body[1024];

	snprintf(body, sizeof(body),
		 "{\"specversion\":\"1.0\",\"id\":\"%s\",\"source\":\"erp/test\","
		 "\"type\":\"erp.stock.changed\",\"subject\":\"sku/%s\","
		 "\"time\":\"2026-11-22T10:00:00Z\",\"datacontenttype\":\"application/json\","
		 "\"data\":{\"sku\":\"%s\",\"location\":\"" LOC "\",\"on_hand\":%d,\"allocated\":0,"
		 "\"reserved\":0,\"unavailable\":0,\"sequence\":%d}}",
		 id, sku, sku, on_hand, seq);
	bt_publish(C, "baton.events", "erp.stock.changed", id, body);
}

/* Every quantity written for sku through set_quantities, in order (at most max). */
static size_t written_values(const char *sku, long long *out, size_t max)
{
	json_t *j = ft_get_json(&SF, "/_sim/requests?limit=1000"), *r;
	size_t i, n = 0;

	assert_non_null(j);
	json_array_foreach(json_object_get(j, "requests"), i, r) {
		json_t *b, *q;
		size_t k;
		if (strcmp(json_string_value(json_object_get(r, "path")) ?: "",
			   "/admin/api/inventory/set_quantities") ||
		    json_integer_value(json_object_get(r, "status")) != 200)
			continue;
		b = json_loads(json_string_value(json_object_get(r, "body")) ?: "", 0, NULL);
		json_array_foreach(json_object_get(b, "quantities"), k, q)
			if (!strcmp(json_string_value(json_object_get(q, "sku")) ?: "", sku) &&
			    n < max)
				out[n++] = json_integer_value(json_object_get(q, "quantity"));
		json_decref(b);
	}
	json_decref(j);
	return n;
}

static const char CFG_SIMPLE[] =
	"{\"channels\": {\"shop-eu\": {\"locations\": [\"" LOC "\"], \"storefront_location\": \"" LOC
	"\"}}, \"drift_interval\": \"10m\", \"unheard_grace\": \"0s\"}";

static void test_out_of_order(void **state)
{
	long long vals[64];
	size_t n;

	(void)state;
	start_all(CFG_SIMPLE, NULL);
	publish_stock("s1", "OOO-1", 10, 10);
	assert_int_equal(wait_level("OOO-1", 10, 60), 10);
	publish_stock("s3", "OOO-1", 30, 30);
	publish_stock("s2", "OOO-1", 20, 20); /* older than what is stored */
	publish_stock("s3-dup", "OOO-1", 30, 30);
	publish_stock("s1-again", "OOO-1", 10, 10);
	assert_int_equal(wait_audit("position.stale", 2, 60), 2);
	assert_int_equal(wait_audit("position.duplicate", 1, 60), 1);
	assert_int_equal(wait_level("OOO-1", 30, 60), 30);
	n = written_values("OOO-1", vals, 64);
	assert_true(n >= 2);
	for (size_t i = 1; i < n; i++)
		assert_true(vals[i] >= vals[i - 1]); /* never backwards */
	for (size_t i = 0; i < n; i++)
		assert_true(vals[i] == 10 || vals[i] == 30);
	assert_int_equal(bt_queue_depth(C, INV_PARKING), 0);
	assert_int_equal(ft_stop(W, 60), 0); /* clean shutdown (and no leak under ASan) */
	ft_forget(W);
}

/* --- oversell ------------------------------------------------------------------------------------ */

#define SHOPPERS 4
#define TRIES 25

static void tr_dump(const char *sku);

static void *shopper(void *ud)
{
	simt_resp_t *r = malloc(sizeof(*r));
	long *sold = ud;

	for (int i = 0; r && i < TRIES; i++) {
		const char *body = "{\"location_id\": \"" LOC "\", \"lines\": "
				   "[{\"sku\": \"HOT-1\", \"quantity\": 1}]}";
		if (simt_req(&SF, "POST", "/checkout", body, NULL, 20000, r) == CURLE_OK &&
		    r->status < 300)
			(*sold)++;
		usleep(8000);
	}
	free(r);
	return NULL;
}

static void oversell(int buffer)
{
	char cfg[512], body[128];
	pthread_t th[SHOPPERS];
	long sold[SHOPPERS] = {0}, total = 0, want;
	const int stock = 40, receipt = 2;
	int changes = 1, unavailable = 0;

	snprintf(cfg, sizeof(cfg),
		 "{\"channels\": {\"shop-eu\": {\"locations\": [\"" LOC "\"], "
		 "\"storefront_location\": \"" LOC "\", \"safety_buffer\": %d}}, "
		 "\"coalesce\": \"20ms\", \"drift_interval\": \"10m\"}", buffer);
	start_all(cfg, NULL);
	snprintf(body, sizeof(body), "{\"on_hand\": %d}", stock);
	erp_put("HOT-1", body);
	assert_int_equal(wait_level("HOT-1", stock - buffer, 60), stock - buffer);
	for (int i = 0; i < SHOPPERS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, shopper, &sold[i]), 0);
	/* the ERP keeps moving during the burst (a receipt, a unit found damaged and then
	 * repaired, again and again); none of its events knows about the checkouts, so every
	 * recompute races orders baton has not heard of yet */
	for (int i = 0; i < 12; i++, changes++) {
		bt_sleep_ms(20);
		unavailable = i % 2;
		snprintf(body, sizeof(body), "{\"on_hand\": %d, \"unavailable\": %d}",
			 stock + receipt, unavailable);
		erp_put("HOT-1", body);
	}
	for (int i = 0; i < SHOPPERS; i++) {
		pthread_join(th[i], NULL);
		total += sold[i];
	}
	assert_int_equal(sf_count("checkouts_sold"), total);
	printf("oversell (buffer %d): %ld of %d checkouts sold, %ld stale compare(s)\n", buffer,
	       total, SHOPPERS * TRIES, count_status("/admin/api/inventory/set_quantities", 409));
	if (getenv("BATON_TEST_DUMP")) {
		json_t *j = ft_get_json(&SF, "/_sim/requests?limit=1000");
		json_dumpf(j, stdout, JSON_INDENT(0));
		json_decref(j);
	}
	/* never more than the stock that existed, less the buffer */
	assert_true(total <= stock + receipt - buffer);
	assert_true(total > 0);
	/* at rest, with the reservations still open: level = computed ATS. The ERP's last change
	 * left a unit unavailable (i = 11): it counts, and stays in the later PUTs (the simulator
	 * keeps absent fields). Without it the expectation was one high whenever the shoppers did
	 * not sell all 42 (the level, rightly at ATS, "stuck" one below); and the state must be
	 * final (every position applied) before a level is compared with it. */
	assert_int_equal(wait_audit("reservation.added", total, 60), total);
	assert_int_equal(wait_audit("position.applied", changes, 60), changes);
	want = stock + receipt - unavailable - buffer - total;
	want = want < 0 ? 0 : want;
	if (wait_level("HOT-1", want, 60) != want)
		tr_dump("HOT-1");
	assert_int_equal(sf_level("HOT-1"), want);
	/* the ERP allocates the orders late (after baton reserved them: see README, known limits),
	 * in two steps: the reservations retire, no double count, and the number does not move */
	snprintf(body, sizeof(body), "{\"on_hand\": %d, \"allocated\": %ld}", stock + receipt,
		 total / 2 ? total / 2 : total);
	erp_put("HOT-1", body);
	snprintf(body, sizeof(body), "{\"on_hand\": %d, \"allocated\": %ld}", stock + receipt,
		 total);
	erp_put("HOT-1", body);
	changes += total / 2 ? 2 : 1;
	assert_int_equal(wait_audit("position.applied", changes, 60), changes);
	snprintf(body, sizeof(body), "{\"on_hand\": %d, \"reserved\": 1}", stock + receipt);
	erp_put("HOT-1", body); /* a last change: ATS one lower */
	want = want - 1 < 0 ? 0 : want - 1;
	changes++;
	assert_int_equal(wait_audit("position.applied", changes, 60), changes);
	if (wait_level("HOT-1", want, 60) != want)
		tr_dump("HOT-1");
	assert_int_equal(sf_level("HOT-1"), want);
	assert_int_equal(bt_queue_depth(C, INV_PARKING), 0);
}

static void test_oversell_b0(void **state)
{
	(void)state;
	oversell(0);
}

static void test_oversell_b3(void **state)
{
	(void)state;
	oversell(3);
}

/* --- two replicas ------------------------------------------------------------------------------ */

#define TR_SKUS 3
#define TR_SHOPPERS 4
#define TR_TRIES 45
#define TR_RECEIPT 2
#define TR_BUFFER 2

static const char *const TR_SKU[TR_SKUS] = {"TWO-HOT", "TWO-WARM", "TWO-COOL"};
static const int TR_STOCK[TR_SKUS] = {30, 120, 80};

typedef struct tr_shopper {
	int idx;
	long sold[TR_SKUS]; /* units sold per SKU (one per accepted line) */
} tr_shopper_t;

/* Checkouts rotating over the SKUs; every fifth is a two-line order (two SKU documents). */
static void *tr_shop(void *ud)
{
	tr_shopper_t *sh = ud;
	simt_resp_t *r = malloc(sizeof(*r));
	char body[512];

	for (int i = 0; r && i < TR_TRIES; i++) {
		int a = (sh->idx + i) % TR_SKUS, b = (a + 1) % TR_SKUS, two = i % 5 == 4;
		snprintf(body, sizeof(body),
			 "{\"location_id\": \"" LOC "\", \"lines\": [{\"sku\": \"%s\", "
			 "\"quantity\": 1}%s%s%s]}", TR_SKU[a], two ? ", {\"sku\": \"" : "",
			 two ? TR_SKU[b] : "", two ? "\", \"quantity\": 1}" : "");
		if (simt_req(&SF, "POST", "/checkout", body, NULL, 20000, r) == CURLE_OK &&
		    r->status < 300) {
			sh->sold[a]++;
			sh->sold[b] += two;
		}
		usleep(5000);
	}
	free(r);
	return NULL;
}

/* The ERP moves every SKU during the burst (receipts, units found damaged and repaired). */
static int tr_erp_churn(int rounds)
{
	char body[128];
	int events = 0;

	for (int i = 0; i < rounds; i++) {
		for (int k = 0; k < TR_SKUS; k++, events++) {
			snprintf(body, sizeof(body), "{\"on_hand\": %d, \"unavailable\": %d}",
				 TR_STOCK[k] + TR_RECEIPT, (i + k) % 3);
			erp_put(TR_SKU[k], body);
		}
		bt_sleep_ms(15);
	}
	return events;
}

/* What baton recorded for sku (published document, SKU document), for a failure's report. */
static void tr_dump(const char *sku)
{
	mongoc_client_t *c = mongoc_client_new(S.mongo_uri);
	const char *colls[] = {"inventory_published", "inventory"};
	char id[160];

	for (int i = 0; c && i < 2; i++) {
		mongoc_collection_t *coll = mongoc_client_get_collection(c, S.db_name, colls[i]);
		bson_t *f, *opts = BCON_NEW("projection", "{", "reservations", BCON_BOOL(false),
					    "inputs", BCON_BOOL(false), "}");
		mongoc_cursor_t *cur;
		const bson_t *d;
		snprintf(id, sizeof(id), i ? "%s" : "shop-eu:%s", sku);
		f = BCON_NEW("_id", BCON_UTF8(id));
		cur = mongoc_collection_find_with_opts(coll, f, opts, NULL);
		while (mongoc_cursor_next(cur, &d)) {
			char *s = bson_as_relaxed_extended_json(d, NULL);
			printf("  %s: %s\n", colls[i], s);
			bson_free(s);
		}
		mongoc_cursor_destroy(cur);
		bson_destroy(f);
		bson_destroy(opts);
		mongoc_collection_destroy(coll);
	}
	mongoc_client_destroy(c);
}

/* Stock events handled (two replicas apply them in any order: the older ones are stale). */
static int64_t tr_positions_handled(int64_t n, int timeout_s)
{
	int64_t got = 0;

	for (int i = 0; i < timeout_s * 10; i++) {
		got = audit_count("position.applied") + audit_count("position.stale") +
		      audit_count("position.duplicate");
		if (got >= n)
			break;
		bt_sleep_ms(100);
	}
	return got;
}

/* Every SKU's level reaches want[k] (bounded: the first one waits, the others have had that
 * time too); reports and dumps the ones that do not. */
static int tr_levels_settle(const char *when, const long *want, int timeout_s)
{
	int bad = 0;

	for (int k = 0; k < TR_SKUS; k++) {
		long long got = wait_level(TR_SKU[k], want[k], k ? 5 : timeout_s);
		if (got != want[k]) {
			printf("two_replicas %s: %s at %lld, ATS %ld\n", when, TR_SKU[k], got,
			       want[k]);
			tr_dump(TR_SKU[k]);
			bad++;
		}
	}
	return bad;
}

/* ATS from the final state: on_hand - allocated - unavailable - open orders, less the buffer.
 * The units sold count once, as open orders until the ERP allocates them, then as allocated. */
static void tr_want(long *want, const long *sold, int unavailable)
{
	for (int k = 0; k < TR_SKUS; k++) {
		long pool = TR_STOCK[k] + TR_RECEIPT - sold[k] - unavailable;
		want[k] = pool - TR_BUFFER > 0 ? pool - TR_BUFFER : 0;
	}
}

/* The ERP's final position of every SKU (the orders allocated or not). */
static void tr_set_all(const long *sold, int allocated, int unavailable)
{
	char body[160];

	for (int k = 0; k < TR_SKUS; k++) {
		snprintf(body, sizeof(body),
			 "{\"on_hand\": %d, \"allocated\": %ld, \"unavailable\": %d}",
			 TR_STOCK[k] + TR_RECEIPT, allocated ? sold[k] : 0, unavailable);
		erp_put(TR_SKU[k], body);
	}
}

/* Two replicas on the same queue while checkouts race ERP changes: never oversold, and at rest
 * every level equals the ATS of the final state (the bookkeeping of checkouts not heard of yet
 * must not drift when the replicas interleave), also after a drift pass of both. */
static void test_two_replicas(void **state)
{
	char cfg[512], body[64];
	pthread_t th[TR_SHOPPERS];
	tr_shopper_t sh[TR_SHOPPERS] = {{0}};
	long sold[TR_SKUS] = {0}, want[TR_SKUS], lines = 0;
	int64_t passes, drifts;
	pid_t w2;
	int changes = TR_SKUS, bad = 0;

	(void)state;
	snprintf(cfg, sizeof(cfg),
		 "{\"channels\": {\"shop-eu\": {\"locations\": [\"" LOC "\"], "
		 "\"storefront_location\": \"" LOC "\", \"safety_buffer\": %d}}, "
		 "\"coalesce\": \"20ms\", \"drift_interval\": \"10m\"}", TR_BUFFER);
	start_all(cfg, NULL);
	w2 = spawn_worker("inv2", 2);
	for (int k = 0; k < TR_SKUS; k++) {
		snprintf(body, sizeof(body), "{\"on_hand\": %d}", TR_STOCK[k]);
		erp_put(TR_SKU[k], body);
	}
	for (int k = 0; k < TR_SKUS; k++)
		assert_int_equal(wait_level(TR_SKU[k], TR_STOCK[k] - TR_BUFFER, 60),
				 TR_STOCK[k] - TR_BUFFER);
	for (int i = 0; i < TR_SHOPPERS; i++) {
		sh[i].idx = i;
		assert_int_equal(pthread_create(&th[i], NULL, tr_shop, &sh[i]), 0);
	}
	changes += tr_erp_churn(20);
	for (int i = 0; i < TR_SHOPPERS; i++) {
		pthread_join(th[i], NULL);
		for (int k = 0; k < TR_SKUS; k++)
			sold[k] += sh[i].sold[k];
	}
	for (int k = 0; k < TR_SKUS; k++) {
		printf("two_replicas: %s sold %ld of %d\n", TR_SKU[k], sold[k],
		       TR_STOCK[k] + TR_RECEIPT);
		/* (a) never more than the stock that existed, less the buffer */
		assert_true(sold[k] <= TR_STOCK[k] + TR_RECEIPT - TR_BUFFER);
		assert_true(sold[k] > 0);
		lines += sold[k];
	}
	/* (b) at rest: every order heard of, the reservations still open */
	assert_int_equal(wait_audit("reservation.added", lines, 60), lines);
	tr_set_all(sold, 0, 3); /* 3: never a value of the churn, so every SKU changes */
	changes += TR_SKUS;
	assert_int_equal(tr_positions_handled(changes, 60), changes);
	tr_want(want, sold, 3);
	bad += tr_levels_settle("at rest", want, 30);
	/* the ERP allocates the orders: the reservations retire, the number does not move */
	tr_set_all(sold, 1, 3);
	changes += TR_SKUS;
	assert_int_equal(tr_positions_handled(changes, 60), changes);
	bad += tr_levels_settle("allocated", want, 30);
	/* units found damaged and repaired, back and forth: each value is published by one replica
	 * or the other, and the last one is a value published before */
	for (int i = 0; i < 8; i++, changes += TR_SKUS) {
		tr_set_all(sold, 1, i % 2 ? 3 : 4);
		bt_sleep_ms(40);
	}
	assert_int_equal(tr_positions_handled(changes, 60), changes);
	bad += tr_levels_settle("flipped", want, 30);
	/* a drift pass of each replica finds nothing to correct and leaves every level at ATS */
	passes = audit_count("inventory.drift_pass");
	drifts = audit_count("inventory.drift");
	kill(W, SIGUSR1);
	kill(w2, SIGUSR1);
	assert_int_equal(wait_audit("inventory.drift_pass", passes + 2, 60), passes + 2);
	bad += tr_levels_settle("after drift", want, 30);
	assert_int_equal(bad, 0);
	assert_int_equal(audit_count("inventory.drift"), drifts);
	assert_int_equal(bt_queue_depth(C, INV_PARKING), 0);
	assert_int_equal(ft_stop(w2, 60), 0);
	assert_int_equal(ft_stop(W, 60), 0);
	ft_forget(W);
}

/* --- rate limit ---------------------------------------------------------------------------------- */

static void test_rate_limit(void **state)
{
	const char *const sfa[] = {"--bucket-size", "40", "--leak-rate", "2", NULL};
	char sku[32], body[64];
	long writes = 0, r429 = 0;
	json_t *j, *r;
	size_t i;

	(void)state;
	start_all(CFG_SIMPLE, sfa);
	/* someone else (another app on the shop) fills the bucket first: baton's mirror of the
	 * bucket cannot know, so it meets 429s and must pace itself by Retry-After */
	for (int k = 0; k < 40; k++) {
		json_t *x = ft_sim_json(&SF, "GET", "/admin/api/inventory_levels?sku=OTHER-APP",
					NULL);
		json_decref(x);
	}
	for (int round = 0; round < 10; round++)
		for (int k = 0; k < 40; k++) {
			snprintf(sku, sizeof(sku), "RL-%02d", k);
			snprintf(body, sizeof(body), "{\"on_hand\": %d}", 100 + 10 * k + round);
			erp_put(sku, body);
		}
	for (int k = 0; k < 40; k++) {
		snprintf(sku, sizeof(sku), "RL-%02d", k);
		assert_int_equal(wait_level(sku, 100 + 10 * k + 9, 90), 100 + 10 * k + 9);
	}
	j = ft_get_json(&SF, "/_sim/requests?limit=1000");
	assert_non_null(j);
	json_array_foreach(json_object_get(j, "requests"), i, r) {
		if (strncmp(json_string_value(json_object_get(r, "path")) ?: "", "/admin/", 7) ||
		    json_object_get(json_object_get(r, "query"), "sku"))
			continue; /* not baton's */
		writes++;
		r429 += json_integer_value(json_object_get(r, "status")) == 429;
	}
	json_decref(j);
	printf("rate_limit: 400 stock changes -> %ld storefront request(s), %ld answered 429\n",
	       writes, r429);
	assert_true(r429 <= 5);
	assert_true(writes < 100);
	assert_int_equal(bt_queue_depth(C, INV_PARKING), 0);
}

/* --- drift --------------------------------------------------------------------------------------- */

static void sf_set_behind(const char *sku, long long q)
{
	char body[256];
	json_t *j;

	snprintf(body, sizeof(body),
		 "{\"reason\": \"manual\", \"quantities\": [{\"sku\": \"%s\", \"location_id\": \""
		 LOC "\", \"quantity\": %lld}]}", sku, q);
	j = ft_sim_json(&SF, "POST", "/admin/api/inventory/set_quantities", body);
	assert_non_null(j);
	json_decref(j);
}

static void test_drift(void **state)
{
	int64_t passes;

	(void)state;
	start_all(CFG_SIMPLE, NULL);
	erp_put("DR-UP", "{\"on_hand\": 10}");
	erp_put("DR-DOWN", "{\"on_hand\": 20}");
	erp_put("DR-SAME", "{\"on_hand\": 5}");
	assert_int_equal(wait_level("DR-UP", 10, 60), 10);
	assert_int_equal(wait_level("DR-DOWN", 20, 60), 20);
	assert_int_equal(wait_level("DR-SAME", 5, 60), 5);
	passes = wait_audit("inventory.drift_pass", 1, 60); /* the one at start */
	assert_int_equal(passes, 1);
	sf_set_behind("DR-UP", 17);   /* would oversell: corrected by the next pass */
	sf_set_behind("DR-DOWN", 12); /* first read as checkouts not heard of yet */
	kill(W, SIGUSR1);
	assert_int_equal(wait_audit("inventory.drift_pass", 2, 60), 2);
	assert_true(audit_count("inventory.drift") >= 2);
	assert_int_equal(wait_level("DR-UP", 10, 30), 10);
	kill(W, SIGUSR1); /* no order explains it: the second pass restores it */
	assert_int_equal(wait_audit("inventory.drift_pass", 3, 60), 3);
	assert_int_equal(wait_level("DR-DOWN", 20, 30), 20);
	assert_int_equal(sf_level("DR-SAME"), 5);
	assert_int_equal(ft_stop(W, 60), 0);
	ft_forget(W);
}

/* --- crash between ack and publish ------------------------------------------------------------ */

static void test_crash_catch_up(void **state)
{
	pid_t w2;

	(void)state;
	start_all(CFG_SIMPLE, NULL);
	erp_put("CR-1", "{\"on_hand\": 10}");
	assert_int_equal(wait_level("CR-1", 10, 60), 10);
	/* the storefront refuses writes: the change is stored and acked, not published */
	ft_faults(&SF, "[{\"route\": \"POST /admin/api/inventory/set_quantities\", "
		       "\"kind\": \"error\", \"status\": 503}]");
	erp_put("CR-1", "{\"on_hand\": 4}");
	assert_int_equal(wait_audit("position.applied", 2, 60), 2);
	ft_kill9(W); /* the replica dies with the write pending in memory */
	ft_forget(W);
	ft_faults(&SF, "[]");
	assert_int_equal(sf_level("CR-1"), 10); /* the storefront still over-states it */
	/* a new replica's start-up drift pass finds and corrects it from the durable state */
	w2 = spawn_worker("inv2", 1);
	assert_int_equal(wait_level("CR-1", 4, 60), 4);
	assert_true(audit_count("inventory.drift") >= 1);
	assert_int_equal(ft_stop(w2, 60), 0);
}

/* --- bad input ----------------------------------------------------------------------------------- */

static void test_bad_input(void **state)
{
	const char *body =
		"{\"specversion\":\"1.0\",\"id\":\"bad-1\",\"source\":\"erp/test\","
		"\"type\":\"erp.stock.changed\",\"datacontenttype\":\"application/json\","
		"\"data\":{\"sku\":\"B-1\",\"location\":\"" LOC "\",\"on_hand\":-4,\"sequence\":1}}";
	const char *order =
		"{\"specversion\":\"1.0\",\"id\":\"bad-2\",\"source\":\"storefront/x\","
		"\"type\":\"storefront.order.created\",\"datacontenttype\":\"application/json\","
		"\"data\":{\"order_id\":\"SO-1\",\"channel\":\"shop-eu\",\"lines\":[{\"sku\":\"B-1\","
		"\"quantity\":\"2\"}]}}";
	amqp_message_t msg;
	int got = 0;

	(void)state;
	start_all(CFG_SIMPLE, NULL);
	bt_publish(C, "baton.events", "erp.stock.changed", "bad-1", body);
	bt_publish(C, "baton.events", "storefront.order.created", "bad-2", order);
	assert_int_equal(ft_wait_depth(C, INV_PARKING, 2, 60), 2);
	for (int i = 0; i < 2; i++) {
		char msgtext[512] = "";
		assert_int_equal(ft_get(C, INV_PARKING, &msg), 0);
		amqp_table_t *h = &msg.properties.headers;
		for (int k = 0; k < h->num_entries; k++)
			if (!strncmp(h->entries[k].key.bytes, "x-baton-error-message",
				     h->entries[k].key.len))
				snprintf(msgtext, sizeof(msgtext), "%.*s",
					 (int)h->entries[k].value.value.bytes.len,
					 (char *)h->entries[k].value.value.bytes.bytes);
		got += strstr(msgtext, "data.on_hand") != NULL;
		got += strstr(msgtext, "data.lines[0].quantity") != NULL;
		amqp_destroy_message(&msg);
	}
	assert_int_equal(got, 2);
}

/* --- baton_store_find (added for this flow) -------------------------------------------------- */

typedef struct find_res {
	int done;
	baton_store_status_t st;
	json_t *docs;
	char err[256];
} find_res_t;

static void found(baton_store_status_t st, json_t *res, const char *errmsg, void *ud)
{
	find_res_t *f = ud;

	f->done = 1;
	f->st = st;
	f->docs = json_incref(res);
	snprintf(f->err, sizeof(f->err), "%s", errmsg);
}

static find_res_t find(baton_store_t *st, uv_loop_t *loop, const char *filter, size_t limit)
{
	find_res_t f = {0};
	json_t *j = json_loads(filter, 0, NULL);

	assert_int_equal(baton_store_find(st, "things", j, limit, found, &f), 0);
	while (!f.done)
		uv_run(loop, UV_RUN_ONCE);
	json_decref(j);
	return f;
}

static void put_done(baton_store_status_t st, json_t *res, const char *errmsg, void *ud)
{
	(void)res, (void)errmsg;
	*(int *)ud = st == BATON_STORE_OK ? 1 : -1;
}

static void test_store_find(void **state)
{
	uv_loop_t loop;
	char err[256];
	baton_store_t *st;
	find_res_t f;

	(void)state;
	uv_loop_init(&loop);
	st = baton_store_open(&loop, S.mongo_uri, S.db_name, 2, err, sizeof(err));
	assert_non_null(st);
	for (int i = 0; i < 5; i++) {
		char id[16];
		int done = 0;
		json_t *d = json_pack("{s:s, s:i}", "kind", i % 2 ? "odd" : "even", "n", i);
		snprintf(id, sizeof(id), "t%d", i);
		assert_int_equal(baton_store_doc_put(st, "things", id, d, 0, put_done, &done), 0);
		while (!done)
			uv_run(&loop, UV_RUN_ONCE);
		assert_int_equal(done, 1);
		json_decref(d);
	}
	f = find(st, &loop, "{\"kind\": \"odd\"}", 100);
	assert_int_equal(f.st, BATON_STORE_OK);
	assert_int_equal(json_array_size(f.docs), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(f.docs, 0), "_id")),
			    "t1");
	json_decref(f.docs);
	f = find(st, &loop, "{}", 3);
	assert_int_equal(json_array_size(f.docs), 3);
	json_decref(f.docs);
	f = find(st, &loop, "{\"kind\": \"none\"}", 10);
	assert_int_equal(f.st, BATON_STORE_OK);
	assert_int_equal(json_array_size(f.docs), 0);
	json_decref(f.docs);
	/* no operator can come in, through a key or a value */
	f = find(st, &loop, "{\"n\": {\"$gt\": 0}}", 10);
	assert_int_equal(f.st, BATON_STORE_ERROR);
	json_decref(f.docs);
	f = find(st, &loop, "{\"$where\": \"1\"}", 10);
	assert_int_equal(f.st, BATON_STORE_ERROR);
	assert_non_null(strstr(f.err, "$where"));
	json_decref(f.docs);
	baton_store_close(st);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_out_of_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_oversell_b0, setup, teardown),
		cmocka_unit_test_setup_teardown(test_oversell_b3, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_replicas, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rate_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_drift, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_find, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_catch_up, setup, teardown),
	};
	const char *ci = getenv("CI");

	if (!getenv("BATON_TEST_AMQP_URL") || !getenv("BATON_TEST_MONGO_URI")) {
		fprintf(stderr, "test_inventory: no test stack (BATON_TEST_* unset)\n");
		return ci && !strcmp(ci, "true") ? 1 : BT_SKIP;
	}
	if (getenv("BATON_TEST_FILTER")) /* e.g. "test_drift" */
		cmocka_set_test_filter(getenv("BATON_TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
