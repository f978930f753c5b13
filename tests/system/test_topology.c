/* test_topology.c — the topology against a real broker (fresh vhost): declaration is idempotent
 * and uses quorum queues with no argument but the type, policies are applied through the
 * management API, and the three paths work end to end with plain rabbitmq-c:
 *   retry:  baton.retry (tier header) -> baton.retry.<tier> -TTL-> baton.requeue -> baton.<flow>
 *           and only that flow, although another flow is bound to the same routing key;
 *   dead:   baton.dead (key = flow) -> baton.<flow>.dead;
 *   poison: a message requeued past the delivery limit is parked by the broker with x-death
 *           reason delivery_limit.
 * Also: a conflicting queue gives a precise error and leaves the channel usable, wrong
 * management credentials give an error without them, definitions.json imports cleanly. */
#include "testkit.h"

#include <amqp.h>
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "baton/topology.h"

static bt_stack_t S;

static const unsigned TIERS[] = {300, 600};
static const baton_topology_opts_t OPTS = {TIERS, 2, 2};
/* tx and ty both hear t.order.created; only tx hears t.x.only */
static const char *const X_KEYS[] = {"t.order.created", "t.x.only", NULL};
static const char *const Y_KEYS[] = {"t.order.created", NULL};
static const baton_flow_topology_t FX = {"tx", X_KEYS};
static const baton_flow_topology_t FY = {"ty", Y_KEYS};

/* Bound for every wait on the broker. The management API reports effective policies from its
 * statistics, refreshed every 5 s by default. */
#define WAIT_MS 30000
#define POLL_MS 25

/* --- helpers ------------------------------------------------------------------------------- */

static void close_conn(amqp_connection_state_t c)
{
	amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
	amqp_connection_close(c, AMQP_REPLY_SUCCESS);
	amqp_destroy_connection(c);
}

/* "/api/<what>/<vhost>/<name>" with both parts percent-encoded (name may be NULL). */
static void api_path(char *out, size_t len, const char *what, const char *name)
{
	char *vh = curl_easy_escape(NULL, S.vhost, 0);
	char *nm = name ? curl_easy_escape(NULL, name, 0) : NULL;

	snprintf(out, len, "/api/%s/%s%s%s", what, vh, nm ? "/" : "", nm ? nm : "");
	curl_free(vh);
	curl_free(nm);
}

static json_t *mgmt_get(const char *path)
{
	static char out[1 << 20];
	json_error_t e;
	long st = bt_mgmt(&S, "GET", path, NULL, out, sizeof(out));

	if (st != 200)
		fail_msg("GET %s: HTTP %ld %s", path, st, out);
	json_t *j = json_loads(out, 0, &e);
	if (!j)
		fail_msg("GET %s: bad JSON (%s)", path, e.text);
	return j;
}

/* Waits (bounded) until RabbitMQ reports the policy `key` = value as effective on queue q:
 * policies are applied asynchronously. */
static void wait_effective(const char *q, const char *key, json_int_t value)
{
	char path[512];

	api_path(path, sizeof(path), "queues", q);
	for (int waited = 0;; waited += POLL_MS) {
		json_t *j = mgmt_get(path);
		json_t *v = json_object_get(json_object_get(j, "effective_policy_definition"), key);
		int ok = json_integer_value(v) == value;
		json_decref(j);
		if (ok)
			return;
		if (waited >= WAIT_MS)
			fail_msg("policy %s=%lld not effective on %s after %d ms", key,
				 (long long)value, q, WAIT_MS);
		bt_sleep_ms(POLL_MS);
	}
}

/* Declares tx and ty and applies their policies (idempotent: every test starts with it). */
static void ensure_topology(amqp_connection_state_t c)
{
	char err[1024] = "";

	if (baton_topology_declare(c, 1, &FX, &OPTS, err, sizeof(err)) != 0 ||
	    baton_topology_declare(c, 1, &FY, &OPTS, err, sizeof(err)) != 0)
		fail_msg("declare: %s", err);
	if (baton_topology_apply_policies(S.mgmt_url, S.vhost, &FX, &OPTS, err, sizeof(err)) != 0 ||
	    baton_topology_apply_policies(S.mgmt_url, S.vhost, &FY, &OPTS, err, sizeof(err)) != 0)
		fail_msg("policies: %s", err);
	wait_effective("baton.tx", "delivery-limit", 2);
	wait_effective("baton.ty", "delivery-limit", 2);
	wait_effective("baton.retry.300ms", "message-ttl", 300);
	wait_effective("baton.retry.600ms", "message-ttl", 600);
}

/* Connection to the test's vhost: channel 1 for RPCs and gets, channel 2 publishes with
 * confirms. */
static amqp_connection_state_t open_conn(void)
{
	amqp_connection_state_t c = bt_amqp_open(&S);

	amqp_channel_open(c, 2);
	assert_int_equal(amqp_get_rpc_reply(c).reply_type, AMQP_RESPONSE_NORMAL);
	amqp_confirm_select(c, 2);
	assert_int_equal(amqp_get_rpc_reply(c).reply_type, AMQP_RESPONSE_NORMAL);
	return c;
}

/* Persistent publish on channel 2 (mandatory): returns once the broker has confirmed it,
 * asserting that it was routed to some queue (routed=1) or returned as unroutable (routed=0).
 * tier may be NULL. */
static void publish_ex(amqp_connection_state_t c, const char *exchange, const char *rk,
		       const char *id, const char *tier, int routed)
{
	int returned = 0;
	amqp_table_entry_t h = {.key = amqp_cstring_bytes(BATON_HEADER_RETRY_TIER),
				.value = {.kind = AMQP_FIELD_KIND_UTF8,
					  .value.bytes = amqp_cstring_bytes(tier ? tier : "")}};
	amqp_basic_properties_t p = {
		._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG |
			  (tier ? AMQP_BASIC_HEADERS_FLAG : 0),
		.delivery_mode = AMQP_DELIVERY_PERSISTENT,
		.message_id = amqp_cstring_bytes(id),
		.headers = {1, &h}};

	assert_int_equal(amqp_basic_publish(c, 2, amqp_cstring_bytes(exchange),
					    amqp_cstring_bytes(rk), 1, 0, &p,
					    amqp_cstring_bytes("{}")),
			 AMQP_STATUS_OK);
	for (;;) {
		amqp_frame_t f;
		struct timeval tv = {WAIT_MS / 1000, 0};
		assert_int_equal(amqp_simple_wait_frame_noblock(c, &f, &tv), AMQP_STATUS_OK);
		if (f.frame_type != AMQP_FRAME_METHOD || f.channel != 2)
			continue; /* e.g. the returned message's header and body */
		if (f.payload.method.id == AMQP_BASIC_RETURN_METHOD) {
			returned = 1;
			continue;
		}
		assert_int_equal(f.payload.method.id, AMQP_BASIC_ACK_METHOD);
		break;
	}
	if (returned == routed)
		fail_msg("%s to %s with key %s: %s", id, exchange, rk,
			 routed ? "not routed" : "routed, expected unroutable");
}

static void publish(amqp_connection_state_t c, const char *exchange, const char *rk,
		    const char *id, const char *tier)
{
	publish_ex(c, exchange, rk, id, tier, 1);
}

typedef struct got {
	amqp_message_t msg;
	uint64_t tag;
	char exchange[256], rk[256]; /* where the delivery came from */
} got_t;

/* basic.get on channel 1, polled until a message arrives (1) or the bound passes (0). */
static int get_msg(amqp_connection_state_t c, const char *q, int timeout_ms, got_t *g)
{
	for (int waited = 0;; waited += POLL_MS) {
		amqp_rpc_reply_t r = amqp_basic_get(c, 1, amqp_cstring_bytes(q), 0);
		assert_int_equal(r.reply_type, AMQP_RESPONSE_NORMAL);
		if (r.reply.id == AMQP_BASIC_GET_OK_METHOD) {
			amqp_basic_get_ok_t *ok = r.reply.decoded;
			g->tag = ok->delivery_tag;
			snprintf(g->exchange, sizeof(g->exchange), "%.*s", (int)ok->exchange.len,
				 (char *)ok->exchange.bytes);
			snprintf(g->rk, sizeof(g->rk), "%.*s", (int)ok->routing_key.len,
				 (char *)ok->routing_key.bytes);
			assert_int_equal(amqp_read_message(c, 1, &g->msg, 0).reply_type,
					 AMQP_RESPONSE_NORMAL);
			return 1;
		}
		if (waited >= timeout_ms)
			return 0;
		bt_sleep_ms(POLL_MS);
	}
}

static void assert_bytes(amqp_bytes_t b, const char *want)
{
	if (b.len != strlen(want) || memcmp(b.bytes, want, b.len) != 0)
		fail_msg("got \"%.*s\", want \"%s\"", (int)b.len, (char *)b.bytes, want);
}

static const amqp_field_value_t *table_get(const amqp_table_t *t, const char *key)
{
	for (int i = 0; i < t->num_entries; i++)
		if (t->entries[i].key.len == strlen(key) &&
		    !memcmp(t->entries[i].key.bytes, key, t->entries[i].key.len))
			return &t->entries[i].value;
	return NULL;
}

/* The most recent x-death entry must say queue q, reason `reason`. */
static void assert_x_death(const amqp_message_t *m, const char *q, const char *reason)
{
	assert_true(m->properties._flags & AMQP_BASIC_HEADERS_FLAG);
	const amqp_field_value_t *xd = table_get(&m->properties.headers, "x-death");
	assert_non_null(xd);
	assert_int_equal(xd->kind, AMQP_FIELD_KIND_ARRAY);
	assert_true(xd->value.array.num_entries >= 1);
	const amqp_field_value_t *e = &xd->value.array.entries[0];
	assert_int_equal(e->kind, AMQP_FIELD_KIND_TABLE);
	const amqp_field_value_t *fq = table_get(&e->value.table, "queue");
	const amqp_field_value_t *fr = table_get(&e->value.table, "reason");
	assert_non_null(fq);
	assert_non_null(fr);
	assert_bytes(fq->value.bytes, q);
	assert_bytes(fr->value.bytes, reason);
}

/* --- tests --------------------------------------------------------------------------------- */

static void test_declare_is_idempotent(void **state)
{
	amqp_connection_state_t c = open_conn();
	char err[1024] = "", path[512];

	for (int i = 0; i < 2; i++) {
		if (baton_topology_declare(c, 1, &FX, &OPTS, err, sizeof(err)) != 0)
			fail_msg("declare #%d: %s", i + 1, err);
	}
	/* quorum queues whose only argument is the type: everything else is policy */
	const char *queues[] = {"baton.tx", "baton.tx.dead", "baton.retry.300ms",
				"baton.retry.600ms"};
	json_t *want_args = json_pack("{s:s}", "x-queue-type", "quorum");
	for (size_t i = 0; i < 4; i++) {
		api_path(path, sizeof(path), "queues", queues[i]);
		json_t *q = mgmt_get(path);
		assert_string_equal(json_string_value(json_object_get(q, "type")), "quorum");
		assert_true(json_is_true(json_object_get(q, "durable")));
		assert_true(json_equal(json_object_get(q, "arguments"), want_args));
		json_decref(q);
	}
	json_decref(want_args);
	/* bindings of baton.tx, once each: default + 2 routing keys + requeue */
	api_path(path, sizeof(path), "queues", "baton.tx");
	strncat(path, "/bindings", sizeof(path) - strlen(path) - 1);
	json_t *b = mgmt_get(path);
	assert_int_equal(json_array_size(b), 4);
	json_decref(b);
	const char *ex[][2] = {{"baton.events", "topic"},
			       {"baton.retry", "headers"},
			       {"baton.requeue", "direct"},
			       {"baton.dead", "direct"}};
	for (size_t i = 0; i < 4; i++) {
		api_path(path, sizeof(path), "exchanges", ex[i][0]);
		json_t *e = mgmt_get(path);
		assert_string_equal(json_string_value(json_object_get(e, "type")), ex[i][1]);
		assert_true(json_is_true(json_object_get(e, "durable")));
		json_decref(e);
	}
	assert_int_equal(bt_queue_depth(c, "baton.tx"), 0); /* channel still fine */
	close_conn(c);
}

static void test_policies_applied(void **state)
{
	amqp_connection_state_t c = open_conn();
	char path[512];

	ensure_topology(c);
	api_path(path, sizeof(path), "policies", "baton.flow.tx");
	json_t *have = mgmt_get(path), *want = baton_topology_flow_policy(&FX, &OPTS);
	assert_true(json_equal(json_object_get(have, "definition"),
			       json_object_get(want, "definition")));
	assert_true(json_equal(json_object_get(have, "pattern"), json_object_get(want, "pattern")));
	assert_string_equal(json_string_value(json_object_get(have, "apply-to")), "queues");
	json_decref(have);
	json_decref(want);
	/* the parking queue has no policy: nothing ever drops a parked message */
	api_path(path, sizeof(path), "queues", "baton.tx.dead");
	json_t *q = mgmt_get(path);
	assert_true(json_is_null(json_object_get(q, "policy")) ||
		    !json_object_get(q, "policy"));
	json_decref(q);
	close_conn(c);
}

static void test_retry_returns_to_its_flow_only(void **state)
{
	amqp_connection_state_t c = open_conn();
	static const char *const tiers[] = {"300ms", "600ms"};
	got_t g;
	char q[64], id[32];

	ensure_topology(c);
	/* the tier header selects the tier queue: a tier nobody declared routes nowhere (with
	 * x-match=all the broker would ignore x- headers and copy the message to every tier) */
	publish_ex(c, BATON_EXCHANGE_RETRY, "tx", "retry-none", "7s", 0);
	for (size_t i = 0; i < 2; i++) {
		snprintf(id, sizeof(id), "retry-%zu", i);
		snprintf(q, sizeof(q), "baton.retry.%s", tiers[i]);
		publish(c, BATON_EXCHANGE_RETRY, "tx", id, tiers[i]);
		if (!get_msg(c, "baton.tx", WAIT_MS, &g))
			fail_msg("retried message %s not back in baton.tx after %d ms", id,
				 WAIT_MS);
		assert_bytes(g.msg.properties.message_id, id);
		assert_x_death(&g.msg, q, "expired");
		assert_string_equal(g.exchange, "baton.requeue");
		assert_string_equal(g.rk, "tx");
		/* the dead-lettering routed it to tx only: ty, bound to the same event key,
		 * got nothing (routing to all queues happens at once) */
		assert_int_equal(bt_queue_depth(c, "baton.ty"), 0);
		assert_int_equal(bt_queue_depth(c, q), 0);
		assert_int_equal(amqp_basic_ack(c, 1, g.tag, 0), 0);
		amqp_destroy_message(&g.msg);
	}
	close_conn(c);
}

static void test_dead_exchange_parks(void **state)
{
	amqp_connection_state_t c = open_conn();
	got_t g;

	ensure_topology(c);
	publish(c, BATON_EXCHANGE_DEAD, "tx", "dead-1", NULL);
	assert_int_equal(bt_queue_depth(c, "baton.tx.dead"), 1);
	assert_int_equal(bt_queue_depth(c, "baton.ty.dead"), 0);
	assert_int_equal(bt_queue_depth(c, "baton.tx"), 0);
	assert_true(get_msg(c, "baton.tx.dead", 0, &g));
	assert_bytes(g.msg.properties.message_id, "dead-1");
	assert_int_equal(amqp_basic_ack(c, 1, g.tag, 0), 0);
	amqp_destroy_message(&g.msg);
	close_conn(c);
}

static void test_poison_parked_at_delivery_limit(void **state)
{
	amqp_connection_state_t c = open_conn();
	int deliveries = 0;
	got_t g;

	ensure_topology(c);
	/* the events exchange fans a shared key out to both flows */
	publish(c, BATON_EXCHANGE_EVENTS, "t.order.created", "fan-1", NULL);
	assert_int_equal(bt_queue_depth(c, "baton.tx"), 1);
	assert_int_equal(bt_queue_depth(c, "baton.ty"), 1);
	assert_true(get_msg(c, "baton.ty", 0, &g));
	assert_int_equal(amqp_basic_ack(c, 1, g.tag, 0), 0);
	amqp_destroy_message(&g.msg);
	assert_true(get_msg(c, "baton.tx", 0, &g));
	assert_int_equal(amqp_basic_ack(c, 1, g.tag, 0), 0);
	amqp_destroy_message(&g.msg);

	/* a poison message for tx only: requeued (as by a crashing worker) again and again */
	publish(c, BATON_EXCHANGE_EVENTS, "t.x.only", "poison-1", NULL);
	for (int waited = 0; bt_queue_depth(c, "baton.tx.dead") == 0;) {
		if (get_msg(c, "baton.tx", 0, &g)) {
			deliveries++;
			assert_true(deliveries <= 10);
			assert_bytes(g.msg.properties.message_id, "poison-1");
			assert_int_equal(amqp_basic_nack(c, 1, g.tag, 0, 1), 0);
			amqp_destroy_message(&g.msg);
			continue;
		}
		if (waited >= WAIT_MS)
			fail_msg("not parked after %d deliveries and %d ms (delivery-limit 2)",
				 deliveries, WAIT_MS);
		bt_sleep_ms(POLL_MS);
		waited += POLL_MS;
	}
	/* delivered limit + 1 times: the return after the third delivery exceeds the limit */
	assert_int_equal(deliveries, 3);
	assert_true(get_msg(c, "baton.tx.dead", WAIT_MS, &g));
	assert_bytes(g.msg.properties.message_id, "poison-1");
	assert_string_equal(g.exchange, "baton.dead");
	assert_string_equal(g.rk, "tx");
	assert_x_death(&g.msg, "baton.tx", "delivery_limit");
	assert_int_equal(amqp_basic_ack(c, 1, g.tag, 0), 0);
	amqp_destroy_message(&g.msg);
	assert_int_equal(bt_queue_depth(c, "baton.tx"), 0);
	assert_int_equal(bt_queue_depth(c, "baton.ty"), 0);
	close_conn(c);
}

static void test_conflict_error_keeps_channel(void **state)
{
	amqp_connection_state_t c = open_conn();
	static const char *const keys[] = {"t.cz.happened", NULL};
	const baton_flow_topology_t fz = {"cz", keys};
	char err[1024] = "";

	/* a classic queue squatting the flow's queue name */
	amqp_queue_declare(c, 1, amqp_cstring_bytes("baton.cz"), 0, 1, 0, 0, amqp_empty_table);
	assert_int_equal(amqp_get_rpc_reply(c).reply_type, AMQP_RESPONSE_NORMAL);
	assert_int_equal(baton_topology_declare(c, 1, &fz, &OPTS, err, sizeof(err)), -1);
	if (!strstr(err, "baton.cz") || !strstr(err, "406") || !strstr(err, "x-queue-type") ||
	    !strstr(err, "(channel re-opened)"))
		fail_msg("unexpected error: %s", err);
	/* the same channel works */
	amqp_exchange_declare(c, 1, amqp_cstring_bytes("baton.events"), amqp_cstring_bytes("topic"),
			      1, 0, 0, 0, amqp_empty_table);
	assert_int_equal(amqp_get_rpc_reply(c).reply_type, AMQP_RESPONSE_NORMAL);
	/* invalid descriptions are refused before anything is sent */
	const baton_flow_topology_t bad = {"a.b", keys};
	assert_int_equal(baton_topology_declare(c, 1, &bad, &OPTS, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "invalid flow name"));
	close_conn(c);
}

static void test_policy_errors_hide_credentials(void **state)
{
	char url[600], err[1024] = "";
	const char *scheme = strstr(S.mgmt_url, "://"), *at = strrchr(S.mgmt_url, '@');
	const char *colon = scheme ? strchr(scheme + 3, ':') : NULL;

	assert_true(scheme && at && colon && colon < at);
	snprintf(url, sizeof(url), "%.*s:wrongpass%s", (int)(colon - S.mgmt_url), S.mgmt_url, at);
	assert_int_equal(baton_topology_apply_policies(url, S.vhost, &FX, &OPTS, err, sizeof(err)),
			 -1);
	if (!strstr(err, "401") || strstr(err, "wrongpass"))
		fail_msg("unexpected error: %s", err);
	/* a vhost that does not exist */
	assert_int_equal(baton_topology_apply_policies(S.mgmt_url, "no-such-vhost-baton", &FX,
						       &OPTS, err, sizeof(err)),
			 -1);
	assert_non_null(strstr(err, "baton.retry.300ms"));
}

static void test_definitions_import(void **state)
{
	char path[512], *body, resp[4096];
	FILE *f = fopen(BATON_SOURCE_DIR "/broker-config/definitions.json", "rb");
	long len;

	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	rewind(f);
	body = malloc((size_t)len + 1);
	assert_int_equal(fread(body, 1, (size_t)len, f), (size_t)len);
	body[len] = '\0';
	fclose(f);
	api_path(path, sizeof(path), "definitions", NULL);
	long st = bt_mgmt(&S, "POST", path, body, resp, sizeof(resp));
	if (st != 201 && st != 204)
		fail_msg("import: HTTP %ld %s", st, resp);
	free(body);
	api_path(path, sizeof(path), "queues", "baton.orders");
	json_t *q = mgmt_get(path);
	assert_string_equal(json_string_value(json_object_get(q, "type")), "quorum");
	json_decref(q);
	wait_effective("baton.orders", "delivery-limit", 10);
	wait_effective("baton.retry.5m", "message-ttl", 300000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_declare_is_idempotent),
		cmocka_unit_test(test_policies_applied),
		cmocka_unit_test(test_retry_returns_to_its_flow_only),
		cmocka_unit_test(test_dead_exchange_parks),
		cmocka_unit_test(test_poison_parked_at_delivery_limit),
		cmocka_unit_test(test_conflict_error_keeps_channel),
		cmocka_unit_test(test_policy_errors_hide_credentials),
		cmocka_unit_test(test_definitions_import),
	};
	int rc = bt_stack_open(&S, "topology");
	if (rc != 0)
		return rc;
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	bt_stack_close(&S);
	return rc;
}
