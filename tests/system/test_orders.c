/* test_orders.c — baton-orders end to end: replicas of the worker on the real broker and
 * FerretDB, the ERP and storefront simulators on the other side of the wire.
 *
 *   duplicates      the same created event 3 times, and an order whose worker is killed -9
 *                   while its ERP call is in flight (redelivered to a second replica): one ERP
 *                   order each, written back once, transferred published
 *   bulk            2,000 orders through 3 replicas, the ERP answering 10% 503 and 2% timeouts:
 *                   exactly 2,000 ERP orders with the right lines and totals, every audit trail
 *                   complete, nothing parked
 *   lifecycle       update before create, update, stale update, cancel, update after ship,
 *                   cancel after ship, pending payment then paid, pending that never clears,
 *                   update of an order that never comes, unknown SKUs, an SKU known only to the
 *                   ERP item master, ERP 422, storefront 429 on the write-back: each ends where
 *                   README.md says
 *   concurrent_updates  eight updates of one order at once through two replicas, out of order:
 *                   the ERP ends with the newest version (lease and version check)
 *   malformed       each kind of invalid order: parked as payload.invalid naming the field
 *   bad_config      invalid BATON_CONFIG: exit 2, one line per problem */
#define _GNU_SOURCE
#include "flowtest.h"

#include "baton/headers.h"

#define OT_BIN BATON_BINARY_DIR "/workers/orders/baton-orders"
#define OT_SF_BIN BATON_BINARY_DIR "/tools/sim/baton-sim-storefront"
#define OT_QUEUE "baton.orders"
#define OT_PARKING "baton.orders.dead"
#define OT_EVENTS "t.orders.events"
#define OT_NSKU 50

static bt_stack_t S;
static simt_proc_t ERP, SF;
static amqp_connection_state_t C;
static char CONFIG[512];

/* ---------------------------------------------------------------------------------------- */
/* orders                                                                                   */

typedef struct ot_line {
	char sku[32];
	long qty, price, disc, tax; /* minor units */
} ot_line_t;

typedef struct ot_order {
	char id[64];
	int version;
	const char *status;
	int n;
	ot_line_t l[8];
	long sub, disc, tax, ship, ship_tax, grand;
} ot_order_t;

static void money(long v, char *b)
{
	sprintf(b, "%s%ld.%02ld", v < 0 ? "-" : "", labs(v) / 100, labs(v) % 100);
}

/* A deterministic order from seed: 1..5 lines over SKU-000..SKU-049; version changes the first
 * line's quantity (as the storefront's updates do). */
static void ot_make(ot_order_t *o, const char *id, int version, const char *status,
		    unsigned seed)
{
	memset(o, 0, sizeof(*o));
	snprintf(o->id, sizeof(o->id), "%s", id);
	o->version = version;
	o->status = status;
	o->n = 1 + (int)(seed % 5);
	o->ship = 490;
	o->ship_tax = 103;
	o->tax = o->ship_tax;
	for (int i = 0; i < o->n; i++) {
		ot_line_t *l = &o->l[i];
		unsigned k = (seed * 7 + (unsigned)i * 13) % OT_NSKU;
		snprintf(l->sku, sizeof(l->sku), "SKU-%03u", k);
		l->qty = 1 + (long)((seed + (unsigned)i) % 3) + (i == 0 ? version - 1 : 0);
		l->price = 190 + (long)k * 100;
		l->disc = (i == 1) ? l->qty * l->price / 10 : 0;
		l->tax = (l->qty * l->price - l->disc) * 21 / 100;
		o->sub += l->qty * l->price;
		o->disc += l->disc;
		o->tax += l->tax;
	}
	o->grand = o->sub - o->disc + o->tax + o->ship;
}

/* The CloudEvent; extra: raw JSON members appended to data (may be NULL). */
static char *ot_event(const ot_order_t *o, const char *type, const char *evid, const char *extra)
{
	char *b = malloc(8192), m[6][32];
	int n;

	assert_non_null(b);
	n = snprintf(b, 8192,
		     "{\"specversion\":\"1.0\",\"id\":\"%s\",\"source\":\"storefront/shop-eu\","
		     "\"type\":\"%s\",\"subject\":\"order/%s\",\"time\":\"2026-11-22T10:15:00Z\","
		     "\"datacontenttype\":\"application/json\",\"data\":{\"order_id\":\"%s\","
		     "\"channel\":\"shop-eu\",\"version\":%d,\"currency\":\"EUR\","
		     "\"financial_status\":\"%s\",\"customer\":{\"email\":\"ana@example.com\","
		     "\"name\":\"Ana\"},\"shipping_address\":{\"name\":\"Ana\",\"line1\":\"Calle "
		     "Mayor 1\",\"city\":\"Madrid\",\"postal_code\":\"28013\",\"country\":\"ES\"},"
		     "\"lines\":[",
		     evid, type, o->id, o->id, o->version, o->status);
	for (int i = 0; i < o->n; i++) {
		money(o->l[i].price, m[0]);
		money(o->l[i].disc, m[1]);
		money(o->l[i].tax, m[2]);
		n += snprintf(b + n, 8192 - (size_t)n,
			      "%s{\"line_id\":\"%d\",\"sku\":\"%s\",\"quantity\":%ld,\"unit_price\":"
			      "\"%s\",\"discount\":\"%s\",\"tax\":\"%s\"}",
			      i ? "," : "", i + 1, o->l[i].sku, o->l[i].qty, m[0], m[1], m[2]);
	}
	money(o->ship, m[0]);
	money(o->ship_tax, m[1]);
	money(o->sub, m[2]);
	money(o->disc, m[3]);
	money(o->tax, m[4]);
	money(o->grand, m[5]);
	snprintf(b + n, 8192 - (size_t)n,
		 "],\"shipping\":{\"method\":\"standard\",\"price\":\"%s\",\"tax\":\"%s\"},"
		 "\"totals\":{\"subtotal\":\"%s\",\"discount\":\"%s\",\"tax\":\"%s\",\"shipping\":"
		 "\"%s\",\"grand_total\":\"%s\"},\"placed_at\":\"2026-11-22T10:14:58Z\"%s%s}}",
		 m[0], m[1], m[2], m[3], m[4], m[0], m[5], extra ? "," : "", extra ? extra : "");
	return b;
}

static void ot_publish(const ot_order_t *o, const char *type, const char *evid)
{
	char *b = ot_event(o, type, evid, NULL);

	bt_publish(C, "baton.events", type, evid, b);
	free(b);
}

/* ---------------------------------------------------------------------------------------- */
/* fixtures                                                                                 */

static void write_config(const char *extra)
{
	const char *tmp = getenv("BATON_TEST_TMP") ? getenv("BATON_TEST_TMP") : "/tmp";
	FILE *f;

	snprintf(CONFIG, sizeof(CONFIG), "%s/orders-%s.json", tmp, S.db_name);
	f = fopen(CONFIG, "w");
	assert_non_null(f);
	fprintf(f, "{\"orders\": {\"lease\": \"10s\", \"sku_map\": {\"shop-eu\": {");
	for (int k = 0; k < OT_NSKU; k++)
		fprintf(f, "%s\"SKU-%03d\": \"ITEM-%03d\"", k ? ", " : "", k, k);
	fprintf(f, "}}%s%s}}\n", extra ? ", " : "", extra ? extra : "");
	fclose(f);
}

static int setup(void **state)
{
	static int n;
	static const char *const env[] = {"BATON_AMQP_URL=", NULL};
	static const char *const sf_args[] = {"--bucket-size", "100000", "--leak-rate", "100000",
					      NULL};
	char name[64];

	(void)state;
	snprintf(name, sizeof(name), "test_orders_%d", ++n);
	if (bt_stack_open(&S, name) != 0)
		return -1;
	ft_erp_start(&ERP);
	assert_int_equal(simt_start(&SF, OT_SF_BIN, sf_args, env), 0);
	C = bt_amqp_open(&S);
	/* what a downstream consumer of baton.order.* events would bind; the tests read the
	 * published events from it */
	amqp_exchange_declare(C, 1, amqp_cstring_bytes("baton.events"), amqp_cstring_bytes("topic"),
			      0, 1, 0, 0, amqp_empty_table);
	amqp_queue_declare(C, 1, amqp_cstring_bytes(OT_EVENTS), 0, 1, 0, 0, amqp_empty_table);
	amqp_queue_bind(C, 1, amqp_cstring_bytes(OT_EVENTS), amqp_cstring_bytes("baton.events"),
			amqp_cstring_bytes("baton.order.#"), amqp_empty_table);
	assert_int_equal(amqp_get_rpc_reply(C).reply_type, AMQP_RESPONSE_NORMAL);
	write_config(NULL);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	ft_kill_all();
	simt_stop(&ERP);
	simt_stop(&SF);
	amqp_destroy_connection(C);
	unlink(CONFIG);
	bt_stack_close(&S);
	return 0;
}

static pid_t ot_worker(const char *id, const char *const *extra)
{
	static char erp[128], sf[128], cfg[600];
	const char *env[24];
	int n = 0;

	snprintf(erp, sizeof(erp), "BATON_ERP_URL=%s", ERP.base);
	snprintf(sf, sizeof(sf), "BATON_STOREFRONT_URL=%s", SF.base);
	snprintf(cfg, sizeof(cfg), "BATON_CONFIG=%s", CONFIG);
	env[n++] = erp;
	env[n++] = sf;
	env[n++] = cfg;
	env[n++] = "BATON_RETRY_TIERS=1s,2s,4s,8s,16s,32s";
	env[n++] = "BATON_HTTP_TIMEOUT=2s";
	env[n++] = "BATON_SHUTDOWN_GRACE=20s";
	env[n++] = "BATON_AUDIT_FLUSH=50ms";
	for (const char *const *e = extra; e && *e && n < 22; e++)
		env[n++] = *e;
	env[n] = NULL;
	pid_t pid = bt_spawn_worker(&S, OT_BIN, id, env, NULL);
	for (int i = 0; i < 64; i++) {
		if (ft_pids[i] == 0) {
			ft_pids[i] = pid;
			break;
		}
	}
	return pid;
}

static void sf_faults(const char *rules)
{
	char body[4096];
	json_t *j;

	snprintf(body, sizeof(body), "{\"seed\": 1, \"rules\": %s}", rules);
	j = ft_sim_json(&SF, "PUT", "/_sim/faults", body);
	assert_non_null(j);
	json_decref(j);
}

/* ---------------------------------------------------------------------------------------- */
/* probes                                                                                   */

static int64_t count_where(const char *coll, const char *k1, const char *v1, const char *k2,
			   const char *v2)
{
	bson_t *q = bson_new();
	int64_t n;

	if (k1)
		BSON_APPEND_UTF8(q, k1, v1);
	if (k2)
		BSON_APPEND_UTF8(q, k2, v2);
	n = bt_count_docs(&S, coll, q);
	bson_destroy(q);
	return n;
}

/* Waits until count_where(...) >= n; returns the count seen last. */
static int64_t wait_count(const char *coll, const char *k1, const char *v1, const char *k2,
			  const char *v2, int64_t n, int timeout_s)
{
	double end = ft_now() + timeout_s;
	int64_t have = -1;

	while (ft_now() < end) {
		have = count_where(coll, k1, v1, k2, v2);
		if (have >= n)
			break;
		bt_sleep_ms(200);
	}
	return have;
}

/* Distinct values of key among the audit entries matching step (and type if not NULL). */
static int64_t audit_distinct(const char *step, const char *type)
{
	mongoc_client_t *cl = mongoc_client_new(S.mongo_uri);
	bson_t *cmd, reply;
	bson_iter_t it, ai;
	int64_t n = -1;

	assert_non_null(cl);
	cmd = BCON_NEW("distinct", "audit", "key", "message_id", "query", "{", "step", step, "}");
	if (type)
		cmd = (bson_destroy(cmd), BCON_NEW("distinct", "audit", "key", "message_id", "query",
						   "{", "step", step, "type", type, "}"));
	if (mongoc_client_command_simple(cl, S.db_name, cmd, NULL, &reply, NULL) &&
	    bson_iter_init_find(&it, &reply, "values") && BSON_ITER_HOLDS_ARRAY(&it) &&
	    bson_iter_recurse(&it, &ai)) {
		n = 0;
		while (bson_iter_next(&ai))
			n++;
	}
	bson_destroy(&reply);
	bson_destroy(cmd);
	mongoc_client_destroy(cl);
	return n;
}

/* The ERP's sales orders with that external_ref (parsed list; caller frees). */
static json_t *erp_orders(const char *order_id)
{
	char path[256];
	json_t *j, *l;

	snprintf(path, sizeof(path), "/api/sales_orders?external_ref=shop-eu%%3A%s", order_id);
	j = ft_get_json(&ERP, path);
	assert_non_null(j);
	l = json_incref(json_object_get(j, "sales_orders"));
	json_decref(j);
	return l;
}

static const char *erp_field(json_t *so, const char *k)
{
	return json_string_value(json_object_get(so, k));
}

static void erp_post(const char *path, const char *body)
{
	json_t *j = ft_sim_json(&ERP, "POST", path, body);

	assert_non_null(j);
	json_decref(j);
}

/* Waits for the order's transfer (its document open, which it is after the write-back). */
static void wait_transferred(const char *order_id, int timeout_s)
{
	char id[128];

	snprintf(id, sizeof(id), "shop-eu:%s", order_id);
	assert_int_equal(wait_count("orders", "_id", id, "status", "open", 1, timeout_s), 1);
}

/* The order document's string member (copied into buf); "" when absent. */
static const char *doc_field(const char *order_id, const char *k, char *buf, size_t len)
{
	mongoc_client_t *cl = mongoc_client_new(S.mongo_uri);
	mongoc_collection_t *c = mongoc_client_get_collection(cl, S.db_name, "orders");
	char id[128];
	bson_t *q;
	const bson_t *doc;
	bson_iter_t it;
	mongoc_cursor_t *cur;

	snprintf(id, sizeof(id), "shop-eu:%s", order_id);
	q = BCON_NEW("_id", id);
	cur = mongoc_collection_find_with_opts(c, q, NULL, NULL);
	buf[0] = '\0';
	if (mongoc_cursor_next(cur, &doc) && bson_iter_init_find(&it, doc, k)) {
		if (BSON_ITER_HOLDS_UTF8(&it))
			snprintf(buf, len, "%s", bson_iter_utf8(&it, NULL));
		else if (BSON_ITER_HOLDS_INT64(&it))
			snprintf(buf, len, "%lld", (long long)bson_iter_int64(&it));
		else if (BSON_ITER_HOLDS_INT32(&it))
			snprintf(buf, len, "%d", bson_iter_int32(&it));
	}
	mongoc_cursor_destroy(cur);
	bson_destroy(q);
	mongoc_collection_destroy(c);
	mongoc_client_destroy(cl);
	return buf;
}

/* Parked messages, drained: message id -> {"code", "message", "class"}. */
static json_t *drain_parked(void)
{
	json_t *all = json_object();
	amqp_message_t msg;
	char b[1200], id[200];

	while (ft_get(C, OT_PARKING, &msg) == 0) {
		size_t n = msg.properties.message_id.len < sizeof(id) - 1
				   ? msg.properties.message_id.len
				   : sizeof(id) - 1;
		memcpy(id, msg.properties.message_id.bytes, n);
		id[n] = '\0';
		json_t *e = json_object();
		json_object_set_new(e, "code", json_string(baton_header_str(
						       &msg.properties.headers, BATON_H_CODE, b, sizeof(b))));
		json_object_set_new(e, "message", json_string(baton_header_str(
							  &msg.properties.headers, BATON_H_MESSAGE, b,
							  sizeof(b))));
		json_object_set_new(e, "class", json_string(baton_header_str(
							&msg.properties.headers, BATON_H_CLASS, b,
							sizeof(b))));
		json_object_set_new(all, id, e);
		amqp_destroy_message(&msg);
	}
	return all;
}

static void expect_parked(json_t *parked, const char *id, const char *code, const char *needle)
{
	json_t *e = json_object_get(parked, id);
	const char *msg;

	if (!e)
		fail_msg("%s was not parked", id);
	if (strcmp(json_string_value(json_object_get(e, "code")), code))
		fail_msg("%s: parked as %s, expected %s (%s)", id,
			 json_string_value(json_object_get(e, "code")), code,
			 json_string_value(json_object_get(e, "message")));
	msg = json_string_value(json_object_get(e, "message"));
	if (needle && !strstr(msg, needle))
		fail_msg("%s: message '%s' lacks '%s'", id, msg, needle);
}

/* ---------------------------------------------------------------------------------------- */
/* tests                                                                                    */

static void check_one_erp_order(const char *order_id)
{
	json_t *l = erp_orders(order_id);

	assert_int_equal(json_array_size(l), 1);
	assert_string_equal(erp_field(json_array_get(l, 0), "status"), "open");
	json_decref(l);
}

static void test_duplicates(void **state)
{
	ot_order_t o;
	pid_t w1, w2;
	json_t *st;
	char b[128], *dump;

	(void)state;
	w1 = ot_worker("w1", NULL);
	ft_wait_consumers(&S, OT_QUEUE, 1, 60);
	/* the same event three times */
	ot_make(&o, "D-1", 1, "paid", 3);
	for (int i = 0; i < 3; i++)
		ot_publish(&o, "storefront.order.created", "ev-d1");
	wait_transferred("D-1", 60);
	assert_int_equal(ft_wait_depth(C, OT_QUEUE, 0, 60), 0);
	/* killed while the ERP holds the create */
	ft_faults(&ERP, "[{\"route\": \"POST /api/sales_orders\", \"kind\": \"latency\", "
			"\"ms\": 1500}]");
	ot_make(&o, "D-2", 1, "paid", 4);
	ot_publish(&o, "storefront.order.created", "ev-d2");
	for (int t = 0; t < 100 && ft_erp_requests(&ERP, "POST", "/api/sales_orders", 0) +
					   ft_erp_requests(&ERP, "POST", "/api/sales_orders", 201) <
				      2; t++)
		bt_sleep_ms(50);
	ft_kill9(w1);
	ft_faults(&ERP, "[]");
	w2 = ot_worker("w2", NULL);
	wait_transferred("D-2", 60);
	assert_int_equal(ft_wait_depth(C, OT_QUEUE, 0, 60), 0);
	assert_int_equal(ft_stop(w2, 30), 0);
	check_one_erp_order("D-1");
	check_one_erp_order("D-2");
	st = ft_get_json(&ERP, "/_sim/state");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(st, "counts"),
							    "sales_orders")), 2);
	assert_int_equal(json_array_size(json_object_get(json_object_get(st, "counts"),
							 "duplicate_external_refs")), 0);
	json_decref(st);
	st = ft_get_json(&SF, "/admin/api/orders/D-2");
	assert_non_null(st);
	dump = json_dumps(st, 0);
	assert_non_null(strstr(dump ? dump : "", "erp_order_id")); /* written back */
	free(dump);
	json_decref(st);
	assert_string_equal(doc_field("D-2", "status", b, sizeof(b)), "open");
	assert_int_equal(strncmp(doc_field("D-2", "erp_order_id", b, sizeof(b)), "SO-", 3), 0);
	assert_int_equal(bt_queue_depth(C, OT_PARKING), 0);
	assert_int_equal(count_where("orders", NULL, NULL, NULL, NULL), 2);
	/* each order's event at least once, always under the same id */
	assert_true(bt_queue_depth(C, OT_EVENTS) >= 2);
	assert_true(count_where("audit", "step", "transferred", "order", "shop-eu:D-1") >= 1);
	assert_int_equal(count_where("audit", "step", "transferred", "event_id",
				     "baton.order.transferred:shop-eu:D-1"),
			 count_where("audit", "step", "transferred", "order", "shop-eu:D-1"));
}

/* The ERP order carries the lines and totals of o. */
static void check_erp_matches(json_t *so, const ot_order_t *o)
{
	json_t *lines = json_object_get(so, "lines"), *totals = json_object_get(so, "totals");
	char m[32], item[32];

	assert_int_equal(json_array_size(lines), o->n);
	for (int i = 0; i < o->n; i++) {
		json_t *l = json_array_get(lines, (size_t)i);
		snprintf(item, sizeof(item), "ITEM-%s", o->l[i].sku + 4);
		assert_string_equal(json_string_value(json_object_get(l, "sku")), item);
		assert_int_equal(json_integer_value(json_object_get(l, "quantity")), o->l[i].qty);
		money(o->l[i].price, m);
		assert_string_equal(json_string_value(json_object_get(l, "unit_price")), m);
		money(o->l[i].disc, m);
		assert_string_equal(json_string_value(json_object_get(l, "discount")), m);
	}
	money(o->grand, m);
	assert_string_equal(json_string_value(json_object_get(totals, "grand_total")), m);
	money(o->tax, m);
	assert_string_equal(json_string_value(json_object_get(totals, "tax")), m);
}

#define BULK 2000

static void test_bulk(void **state)
{
	static const char *const bulk_env[] = {"BATON_AUDIT_FLUSH=200ms", NULL};
	static ot_order_t orders[BULK];
	pid_t w[3];
	json_t *st, *list, *so;
	size_t i;
	long n_orders = 0, dups = -1;
	char id[64], ev[64];

	(void)state;
	if (!getenv("OT_NO_FAULTS"))
		ft_faults(&ERP, "[{\"route\": \"*\", \"kind\": \"error\", \"share\": 0.10, "
				"\"status\": 503}, {\"route\": \"*\", \"kind\": \"timeout\", "
				"\"share\": 0.02, \"seconds\": 3}]");
	for (int r = 0; r < 3; r++) {
		snprintf(id, sizeof(id), "bulk-%d", r);
		w[r] = ot_worker(id, bulk_env);
	}
	ft_wait_consumers(&S, OT_QUEUE, 3, 60);
	double t0 = ft_now();
	for (int k = 0; k < BULK; k++) {
		snprintf(id, sizeof(id), "B-%d", k);
		snprintf(ev, sizeof(ev), "ev-b-%d", k);
		ot_make(&orders[k], id, 1, k % 2 ? "paid" : "authorized", (unsigned)k * 31 + 7);
		ot_publish(&orders[k], "storefront.order.created", ev);
	}
	/* Bounds for a broken run, not timing assertions: a slow shared machine only waits.
	 * The queue is polled over AMQP (cheap); the database once it is drained. */
	for (double end = ft_now() + 900; ft_now() < end; bt_sleep_ms(1000))
		if (bt_queue_depth(C, OT_QUEUE) == 0 &&
		    count_where("orders", "status", "open", NULL, NULL) == BULK)
			break;
	fprintf(stderr, "bulk: %d orders through 3 replicas in %.0f s\n", BULK, ft_now() - t0);
	assert_int_equal(count_where("orders", "status", "open", NULL, NULL), BULK);
	assert_int_equal(bt_queue_depth(C, OT_QUEUE), 0);
	for (int r = 0; r < 3; r++)
		assert_int_equal(ft_stop(w[r], 30), 0);
	ft_erp_counts(&ERP, &n_orders, &dups);
	assert_int_equal(n_orders, BULK);
	assert_int_equal(dups, 0);
	assert_int_equal(bt_queue_depth(C, OT_PARKING), 0);
	/* every ERP order has the lines and totals of its storefront order */
	ft_faults(&ERP, "[]");
	st = ft_get_json(&ERP, "/_sim/state");
	assert_non_null(st);
	list = json_object_get(st, "sales_orders");
	assert_int_equal(json_array_size(list), BULK);
	json_array_foreach(list, i, so) {
		const char *ref = erp_field(so, "external_ref");
		int k;
		assert_non_null(ref);
		assert_int_equal(sscanf(ref, "shop-eu:B-%d", &k), 1);
		assert_true(k >= 0 && k < BULK);
		check_erp_matches(so, &orders[k]);
	}
	json_decref(st);
	/* every trail complete: each created message validated, created or found its ERP order,
	 * stored it, wrote it back, published and completed */
	assert_int_equal(count_where("ledger", NULL, NULL, NULL, NULL), BULK);
	assert_true(bt_queue_depth(C, OT_EVENTS) >= BULK);
	assert_int_equal(audit_distinct("received", "storefront.order.created"), BULK);
	assert_int_equal(audit_distinct("http", NULL), BULK);
	assert_int_equal(audit_distinct("transferred", NULL), BULK);
	assert_int_equal(audit_distinct("completed", NULL), BULK);
	assert_true(audit_distinct("erp_created", NULL) + audit_distinct("erp_existing", NULL) >=
		    BULK);
	if (!getenv("OT_NO_FAULTS"))
		assert_true(audit_distinct("retried", NULL) > 0); /* the faults did hit */
}

static void publish_raw(const char *type, const char *evid, const ot_order_t *o,
			const char *extra)
{
	char *b = ot_event(o, type, evid, extra);

	bt_publish(C, "baton.events", type, evid, b);
	free(b);
}

static void expect_depth(int64_t n, int timeout_s)
{
	assert_int_equal(ft_wait_depth(C, OT_PARKING, n, timeout_s), n);
}

static void test_lifecycle(void **state)
{
	ot_order_t o;
	json_t *l, *parked;
	pid_t w;
	char b[128], erp_id[64], path[128];
	int parked_n = 0;

	(void)state;
	write_config("\"payment\": {\"pending_max\": \"3s\"}, \"not_found_max\": \"3s\"");
	w = ot_worker("w-life", NULL);
	ft_wait_consumers(&S, OT_QUEUE, 1, 60);

	/* update before create: waits, then applies on top of the create */
	ot_make(&o, "L-1", 2, "paid", 11);
	ot_publish(&o, "storefront.order.updated", "ev-l1-u2");
	assert_true(wait_count("audit", "message_id", "ev-l1-u2", "step", "retried", 1, 30) >= 1);
	ot_make(&o, "L-1", 1, "paid", 11);
	ot_publish(&o, "storefront.order.created", "ev-l1-c");
	assert_int_equal(wait_count("orders", "_id", "shop-eu:L-1", "status", "open", 1, 30), 1);
	for (int t = 0; t < 150 && strcmp(doc_field("L-1", "source_version", b, sizeof(b)), "2");
	     t++)
		bt_sleep_ms(200);
	assert_string_equal(b, "2");
	l = erp_orders("L-1");
	assert_int_equal(json_array_size(l), 1);
	assert_string_equal(json_string_value(json_object_get(
				    json_object_get(json_array_get(l, 0), "attributes"), "baton_version")),
			    "2");
	ot_make(&o, "L-1", 2, "paid", 11);
	check_erp_matches(json_array_get(l, 0), &o);
	json_decref(l);

	/* stale update: v3 applied, then v2 skipped and audited */
	ot_make(&o, "L-1", 3, "paid", 11);
	ot_publish(&o, "storefront.order.updated", "ev-l1-u3");
	assert_true(wait_count("audit", "message_id", "ev-l1-u3", "step", "erp_updated", 1, 30) >= 1);
	ot_make(&o, "L-1", 2, "paid", 11);
	ot_publish(&o, "storefront.order.updated", "ev-l1-u2-late");
	assert_true(wait_count("audit", "message_id", "ev-l1-u2-late", "step", "stale", 1, 30) >= 1);
	l = erp_orders("L-1");
	ot_make(&o, "L-1", 3, "paid", 11);
	check_erp_matches(json_array_get(l, 0), &o);
	json_decref(l);

	/* cancel of an open order */
	ot_make(&o, "L-2", 1, "paid", 12);
	ot_publish(&o, "storefront.order.created", "ev-l2-c");
	wait_transferred("L-2", 30);
	o.version = 2;
	publish_raw("storefront.order.cancelled", "ev-l2-x", &o, "\"cancel_reason\":\"customer\"");
	assert_int_equal(wait_count("orders", "_id", "shop-eu:L-2", "status", "cancelled", 1, 30), 1);
	l = erp_orders("L-2");
	assert_string_equal(erp_field(json_array_get(l, 0), "status"), "cancelled");
	json_decref(l);

	/* update after ship, cancel after ship */
	ot_make(&o, "L-3", 1, "paid", 13);
	ot_publish(&o, "storefront.order.created", "ev-l3-c");
	wait_transferred("L-3", 30);
	snprintf(path, sizeof(path), "/api/sales_orders/%s/ship",
		 doc_field("L-3", "erp_order_id", erp_id, sizeof(erp_id)));
	erp_post(path, "{\"carrier\": \"dhl\"}");
	ot_make(&o, "L-3", 2, "paid", 13);
	ot_publish(&o, "storefront.order.updated", "ev-l3-u");
	expect_depth(++parked_n, 30);
	o.version = 3;
	publish_raw("storefront.order.cancelled", "ev-l3-x", &o, NULL);
	expect_depth(++parked_n, 30);

	/* pending payment that clears with an update; one that never clears */
	ot_make(&o, "L-4", 1, "pending", 14);
	ot_publish(&o, "storefront.order.created", "ev-l4-c");
	assert_int_equal(wait_count("orders", "_id", "shop-eu:L-4", "status", "pending_payment", 1,
				    30), 1);
	ot_make(&o, "L-4", 2, "paid", 14);
	ot_publish(&o, "storefront.order.updated", "ev-l4-u");
	wait_transferred("L-4", 30);
	l = erp_orders("L-4");
	assert_int_equal(json_array_size(l), 1);
	check_erp_matches(json_array_get(l, 0), &o);
	json_decref(l);
	assert_true(wait_count("audit", "message_id", "ev-l4-c", "step", "superseded", 1, 30) >= 1);
	ot_make(&o, "L-5", 1, "pending", 15);
	ot_publish(&o, "storefront.order.created", "ev-l5-c");
	expect_depth(++parked_n, 40);

	/* an update whose order never comes */
	ot_make(&o, "L-6", 2, "paid", 16);
	ot_publish(&o, "storefront.order.updated", "ev-l6-u");
	expect_depth(++parked_n, 40);

	/* unknown SKUs: every one named; an SKU only the ERP item master knows is fine */
	erp_post("/api/items", "{\"sku\": \"MASTER-1\", \"name\": \"from the item master\"}");
	ot_make(&o, "L-7", 1, "paid", 17);
	snprintf(o.l[0].sku, sizeof(o.l[0].sku), "MASTER-1");
	ot_publish(&o, "storefront.order.created", "ev-l7-c");
	wait_transferred("L-7", 30);
	l = erp_orders("L-7");
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(json_object_get(json_array_get(l, 0), "lines"), 0),
				    "sku")), "MASTER-1");
	json_decref(l);
	ot_make(&o, "L-8", 3, "paid", 18);
	snprintf(o.l[0].sku, sizeof(o.l[0].sku), "NOPE-1");
	snprintf(o.l[2].sku, sizeof(o.l[2].sku), "NOPE-2");
	ot_publish(&o, "storefront.order.created", "ev-l8-c");
	expect_depth(++parked_n, 30);

	/* ERP 4xx: parked with the ERP's message */
	ft_faults(&ERP, "[{\"route\": \"POST /api/sales_orders\", \"kind\": \"status\", \"status\": "
			"422, \"body\": {\"error\": {\"code\": \"credit_limit\", \"message\": "
			"\"customer over credit limit\"}}, \"limit\": 1}]");
	ot_make(&o, "L-9", 1, "paid", 19);
	ot_publish(&o, "storefront.order.created", "ev-l9-c");
	expect_depth(++parked_n, 30);
	ft_faults(&ERP, "[]");

	/* storefront 429 on the write-back: retried, not lost, nothing created twice */
	sf_faults("[{\"route\": \"PUT /admin/api/orders/*\", \"kind\": \"status\", \"status\": 429,"
		  " \"body\": {\"error\": {\"code\": \"rate_limited\", \"message\": \"slow down\"}},"
		  " \"limit\": 2}]");
	ot_make(&o, "L-10", 1, "paid", 20);
	ot_publish(&o, "storefront.order.created", "ev-l10-c");
	wait_transferred("L-10", 60);
	check_one_erp_order("L-10");
	assert_int_equal(ft_erp_requests(&SF, "PUT", "/admin/api/orders/L-10", 429), 2);
	assert_int_equal(ft_erp_requests(&SF, "PUT", "/admin/api/orders/L-10", 200), 1);

	assert_int_equal(ft_wait_depth(C, OT_QUEUE, 0, 30), 0);
	assert_int_equal(ft_stop(w, 30), 0);
	parked = drain_parked();
	assert_int_equal(json_object_size(parked), parked_n);
	expect_parked(parked, "ev-l3-u", "order.locked", "shipped");
	expect_parked(parked, "ev-l3-x", "order.cancel_after_ship", "shipped");
	expect_parked(parked, "ev-l5-c", "order.payment_pending", "pending");
	expect_parked(parked, "ev-l6-u", "order.not_found", "shop-eu:L-6");
	expect_parked(parked, "ev-l8-c", "sku.unmapped", "NOPE-1, NOPE-2");
	expect_parked(parked, "ev-l9-c", "erp.http_422", "customer over credit limit");
	json_decref(parked);
	l = erp_orders("L-5");
	assert_int_equal(json_array_size(l), 0); /* never paid, never in the ERP */
	json_decref(l);
	l = erp_orders("L-3");
	assert_string_equal(erp_field(json_array_get(l, 0), "status"), "shipped");
	json_decref(l);
	assert_string_equal(doc_field("L-3", "status", b, sizeof(b)), "shipped");
}

/* Two replicas, eight updates of one order at once, out of order: the ERP ends with the newest
 * version, the older ones are stale or applied before it, nothing is parked. */
static void test_concurrent_updates(void **state)
{
	static const int order[] = {5, 9, 2, 7, 3, 8, 4, 6};
	ot_order_t o;
	pid_t w1, w2;
	json_t *l;
	char ev[32], b[64];

	(void)state;
	w1 = ot_worker("w-c1", NULL);
	w2 = ot_worker("w-c2", NULL);
	ft_wait_consumers(&S, OT_QUEUE, 2, 60);
	ot_make(&o, "C-1", 1, "paid", 21);
	ot_publish(&o, "storefront.order.created", "ev-c1-c");
	wait_transferred("C-1", 30);
	for (size_t i = 0; i < 8; i++) {
		ot_make(&o, "C-1", order[i], "paid", 21);
		snprintf(ev, sizeof(ev), "ev-c1-u%d", order[i]);
		ot_publish(&o, "storefront.order.updated", ev);
	}
	/* distinct messages: an entry can be written twice when an audit batch half failed and
	 * the message ran again */
	for (double end = ft_now() + 120; ft_now() < end; bt_sleep_ms(500))
		if (audit_distinct("completed", "storefront.order.updated") == 8)
			break;
	assert_int_equal(audit_distinct("completed", "storefront.order.updated"), 8);
	assert_string_equal(doc_field("C-1", "source_version", b, sizeof(b)), "9");
	assert_string_equal(doc_field("C-1", "status", b, sizeof(b)), "open");
	assert_null(doc_field("C-1", "lease_owner", b, sizeof(b))[0] ? b : NULL);
	l = erp_orders("C-1");
	assert_int_equal(json_array_size(l), 1);
	assert_string_equal(json_string_value(json_object_get(
				    json_object_get(json_array_get(l, 0), "attributes"), "baton_version")),
			    "9");
	ot_make(&o, "C-1", 9, "paid", 21);
	check_erp_matches(json_array_get(l, 0), &o);
	json_decref(l);
	assert_int_equal(bt_queue_depth(C, OT_PARKING), 0);
	assert_int_equal(ft_stop(w1, 30), 0);
	assert_int_equal(ft_stop(w2, 30), 0);
}

/* One malformed order: a substitution in the event text of a valid order. */
typedef struct bad_case {
	const char *from, *to, *field;
} bad_case_t;

static void test_malformed(void **state)
{
	static const bad_case_t cases[] = {
		{"\"order_id\":\"M\",", "", "data.order_id: required"},
		{"\"quantity\":1,", "\"quantity\":0,", "data.lines[0].quantity: must be an integer > 0"},
		{"\"quantity\":1,", "\"quantity\":\"1\",", "data.lines[0].quantity"},
		{"\"quantity\":1,", "\"quantity\":1.5,", "data.lines[0].quantity"},
		{"\"unit_price\":\"1.90\"", "\"unit_price\":1.90", "data.lines[0].unit_price"},
		{"\"unit_price\":\"1.90\"", "\"unit_price\":\"1.905\"", "more than 2 decimals"},
		{"\"unit_price\":\"1.90\"", "\"unit_price\":\"1.9e0\"", "data.lines[0].unit_price"},
		{"\"unit_price\":\"1.90\"", "\"unit_price\":\"-1.90\"", "must not be negative"},
		{"\"currency\":\"EUR\"", "\"currency\":\"XXX\"", "data.currency"},
		{"\"grand_total\":\"", "\"grand_total\":\"1", "data.totals.grand_total"},
		{"\"country\":\"ES\"", "\"country\":\"Spain\"", "data.shipping_address.country"},
		{"\"placed_at\":\"2026-11-22T10:14:58Z\"", "\"placed_at\":\"yesterday\"",
		 "data.placed_at"},
		{"\"version\":1,", "\"version\":0,", "data.version"},
		{"\"financial_status\":\"paid\",", "", "data.financial_status: required"},
	};
	size_t n = sizeof(cases) / sizeof(cases[0]);
	ot_order_t o;
	char *good, *bad, id[32];
	json_t *parked;
	pid_t w;

	(void)state;
	w = ot_worker("w-bad", NULL);
	ft_wait_consumers(&S, OT_QUEUE, 1, 60);
	ot_make(&o, "M", 1, "paid", 0); /* one line, SKU-000, quantity 1, 1.90 */
	for (size_t i = 0; i < n; i++) {
		snprintf(id, sizeof(id), "bad-%zu", i);
		good = ot_event(&o, "storefront.order.created", id, NULL);
		char *at = strstr(good, cases[i].from);
		assert_non_null(at);
		bad = malloc(strlen(good) + 64);
		snprintf(bad, strlen(good) + 64, "%.*s%s%s", (int)(at - good), good, cases[i].to,
			 at + strlen(cases[i].from));
		bt_publish(C, "baton.events", "storefront.order.created", id, bad);
		free(bad);
		free(good);
	}
	bt_publish(C, "baton.events", "storefront.order.updated", "bad-json", "{oops");
	bt_publish(C, "baton.events", "storefront.order.created", "bad-lines",
		   "{\"specversion\":\"1.0\",\"id\":\"bad-lines\",\"source\":\"t\",\"type\":"
		   "\"storefront.order.created\",\"data\":{\"order_id\":\"M\",\"channel\":\"shop-eu\","
		   "\"version\":1,\"currency\":\"EUR\",\"financial_status\":\"paid\","
		   "\"shipping_address\":{\"line1\":\"a\",\"city\":\"b\",\"country\":\"ES\"},"
		   "\"placed_at\":\"2026-11-22T10:14:58Z\","
		   "\"lines\":[],\"totals\":{}}}");
	assert_int_equal(ft_wait_depth(C, OT_PARKING, (int64_t)n + 2, 60), (int64_t)n + 2);
	assert_int_equal(ft_stop(w, 30), 0);
	parked = drain_parked();
	for (size_t i = 0; i < n; i++) {
		snprintf(id, sizeof(id), "bad-%zu", i);
		expect_parked(parked, id, "payload.invalid", cases[i].field);
	}
	expect_parked(parked, "bad-json", "payload.invalid", NULL);
	expect_parked(parked, "bad-lines", "payload.invalid", "data.lines: must hold 1 to 500");
	assert_string_equal(json_string_value(json_object_get(json_object_get(parked, "bad-1"),
							      "class")), "permanent");
	json_decref(parked);
	assert_int_equal(count_where("orders", NULL, NULL, NULL, NULL), 0);
	assert_int_equal(ft_erp_requests(&ERP, "POST", "/api/sales_orders", -1), 0);
}

static void test_bad_config(void **state)
{
	static char log[600], cmd[700], cfg[600];
	const char *env[] = {cfg, "BATON_ERP_URL=http://127.0.0.1:9", "BATON_STOREFRONT_URL=",
			     NULL};
	const char *wrap[] = {"sh", "-c", cmd, NULL};
	FILE *f = fopen(CONFIG, "w");
	char line[2048];
	int st, problems = 0;
	pid_t pid;

	(void)state;
	assert_non_null(f);
	fprintf(f, "{\"orders\": {\"payment\": {\"pending_max\": \"soon\"}, \"colour\": 1, "
		   "\"sku_map\": {\"shop-eu\": {\"A\": 7}}}}\n");
	fclose(f);
	snprintf(cfg, sizeof(cfg), "BATON_CONFIG=%s", CONFIG);
	snprintf(log, sizeof(log), "%s.log", CONFIG);
	snprintf(cmd, sizeof(cmd), "exec \"$0\" 2>'%s'", log);
	pid = bt_spawn_worker(&S, OT_BIN, "w-cfg", env, wrap);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 2);
	f = fopen(log, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		if (!strstr(line, "config.invalid"))
			continue;
		problems += strstr(line, "orders.payment.pending_max") != NULL;
		problems += strstr(line, "orders.colour: unknown member") != NULL;
		problems += strstr(line, "sku_map.shop-eu.A") != NULL;
		problems += strstr(line, "BATON_STOREFRONT_URL") != NULL;
	}
	fclose(f);
	unlink(log);
	assert_int_equal(problems, 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_duplicates, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lifecycle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_updates, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_config, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bulk, setup, teardown),
	};
	if (getenv("BATON_TEST_FILTER")) /* e.g. test_bulk */
		cmocka_set_test_filter(getenv("BATON_TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
