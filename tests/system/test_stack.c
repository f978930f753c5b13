/* test_stack.c — proves the test stack for real: rabbitmq-c publish with publisher confirms and
 * consume with manual ack (including redelivery of an unacked message), and libmongoc insert,
 * unique-index violation and find against FerretDB. */
#include "testkit.h"

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <mongoc/mongoc.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

static bt_stack_t S;

#define N_MSG 200
#define QUEUE "stack.check"

static amqp_connection_state_t open_conn(void)
{
	return bt_amqp_open(&S);
}

static void close_conn(amqp_connection_state_t c)
{
	amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
	amqp_connection_close(c, AMQP_REPLY_SUCCESS);
	amqp_destroy_connection(c);
}

static uint32_t declare_quorum(amqp_connection_state_t c, amqp_boolean_t passive)
{
	amqp_table_entry_t e = {.key = amqp_cstring_bytes("x-queue-type"),
				.value = {.kind = AMQP_FIELD_KIND_UTF8,
					  .value.bytes = amqp_cstring_bytes("quorum")}};
	amqp_table_t args = {passive ? 0 : 1, &e};
	amqp_queue_declare_ok_t *ok =
		amqp_queue_declare(c, 1, amqp_cstring_bytes(QUEUE), passive, 1, 0, 0, args);
	assert_non_null(ok);
	return ok->message_count;
}

/* Publishes N_MSG persistent messages and waits until the broker has confirmed every one. */
static void publish_confirmed(amqp_connection_state_t c)
{
	amqp_basic_properties_t props = {
		._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG,
		.delivery_mode = AMQP_DELIVERY_PERSISTENT,
		.content_type = amqp_cstring_bytes("text/plain")};
	uint64_t confirmed = 0;
	char body[32];

	amqp_confirm_select(c, 1);
	assert_int_equal(amqp_get_rpc_reply(c).reply_type, AMQP_RESPONSE_NORMAL);
	for (int i = 0; i < N_MSG; i++) {
		snprintf(body, sizeof(body), "msg-%d", i);
		assert_int_equal(amqp_basic_publish(c, 1, amqp_empty_bytes, amqp_cstring_bytes(QUEUE),
						    1, 0, &props, amqp_cstring_bytes(body)),
				 AMQP_STATUS_OK);
	}
	while (confirmed < N_MSG) {
		amqp_frame_t f;
		struct timeval tv = {10, 0};
		assert_int_equal(amqp_simple_wait_frame_noblock(c, &f, &tv), AMQP_STATUS_OK);
		if (f.frame_type != AMQP_FRAME_METHOD)
			continue;
		assert_int_equal(f.payload.method.id, AMQP_BASIC_ACK_METHOD); /* never a nack */
		amqp_basic_ack_t *ack = f.payload.method.decoded;
		assert_true(ack->delivery_tag > confirmed || !ack->multiple);
		confirmed = ack->multiple ? ack->delivery_tag : confirmed + 1;
	}
	assert_int_equal(confirmed, N_MSG);
}

static void test_amqp_confirms_and_manual_ack(void **state)
{
	amqp_connection_state_t c = open_conn();
	int seen[N_MSG] = {0};

	assert_int_equal(declare_quorum(c, 0), 0); /* fresh vhost: nothing from other tests */
	publish_confirmed(c);
	assert_int_equal(declare_quorum(c, 1), N_MSG);

	/* A consumer that takes one message and closes without acking must hand it back. */
	amqp_connection_state_t c2 = open_conn();
	amqp_basic_qos(c2, 1, 0, 1, 0);
	amqp_basic_consume(c2, 1, amqp_cstring_bytes(QUEUE), amqp_empty_bytes, 0, 0, 0,
			   amqp_empty_table);
	assert_int_equal(amqp_get_rpc_reply(c2).reply_type, AMQP_RESPONSE_NORMAL);
	amqp_envelope_t env;
	struct timeval tv = {10, 0};
	assert_int_equal(amqp_consume_message(c2, &env, &tv, 0).reply_type, AMQP_RESPONSE_NORMAL);
	assert_false(env.redelivered);
	amqp_destroy_envelope(&env);
	close_conn(c2);

	/* Now consume everything with manual acks. */
	amqp_basic_qos(c, 1, 0, 50, 0);
	amqp_basic_consume(c, 1, amqp_cstring_bytes(QUEUE), amqp_empty_bytes, 0, 0, 0,
			   amqp_empty_table);
	assert_int_equal(amqp_get_rpc_reply(c).reply_type, AMQP_RESPONSE_NORMAL);
	int redelivered = 0;
	for (int got = 0; got < N_MSG; got++) {
		int idx = -1;
		assert_int_equal(amqp_consume_message(c, &env, &tv, 0).reply_type,
				 AMQP_RESPONSE_NORMAL);
		assert_int_equal(sscanf((char *)env.message.body.bytes, "msg-%d", &idx), 1);
		assert_true(idx >= 0 && idx < N_MSG);
		seen[idx]++;
		redelivered += env.redelivered;
		assert_int_equal(amqp_basic_ack(c, 1, env.delivery_tag, 0), 0);
		amqp_destroy_envelope(&env);
	}
	assert_int_equal(redelivered, 1);
	for (int i = 0; i < N_MSG; i++)
		assert_int_equal(seen[i], 1);
	amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
	amqp_channel_open(c, 1);
	assert_int_equal(declare_quorum(c, 1), 0); /* all acked: queue empty */
	close_conn(c);
}

static void test_mongo_insert_unique_find(void **state)
{
	bson_error_t err;
	mongoc_client_t *client = mongoc_client_new(S.mongo_uri);
	assert_non_null(client);
	mongoc_client_set_error_api(client, MONGOC_ERROR_API_VERSION_2);
	mongoc_collection_t *coll = mongoc_client_get_collection(client, S.db_name, "ledger");

	/* unique index on "key" */
	bson_t *cmd = BCON_NEW("createIndexes", "ledger", "indexes", "[", "{", "key", "{", "key",
			       BCON_INT32(1), "}", "name", "key_1", "unique", BCON_BOOL(true), "}",
			       "]");
	bool ok = mongoc_collection_write_command_with_opts(coll, cmd, NULL, NULL, &err);
	assert_true(ok || (fprintf(stderr, "%s\n", err.message), 0));

	bson_t *doc = BCON_NEW("key", "erp.sales_order:shop-eu:SO-1", "n", BCON_INT32(1));
	ok = mongoc_collection_insert_one(coll, doc, NULL, NULL, &err);
	assert_true(ok || (fprintf(stderr, "%s\n", err.message), 0));

	bson_t *dup = BCON_NEW("key", "erp.sales_order:shop-eu:SO-1", "n", BCON_INT32(2));
	assert_false(mongoc_collection_insert_one(coll, dup, NULL, NULL, &err));
	assert_int_equal(err.domain, MONGOC_ERROR_SERVER);
	assert_int_equal(err.code, 11000); /* duplicate key: "already done" */

	bson_t *filter = BCON_NEW("key", "erp.sales_order:shop-eu:SO-1");
	mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, filter, NULL, NULL);
	const bson_t *got;
	int count = 0;
	while (mongoc_cursor_next(cur, &got)) {
		bson_iter_t it;
		assert_true(bson_iter_init_find(&it, got, "n"));
		assert_int_equal(bson_iter_int32(&it), 1); /* the first insert won */
		count++;
	}
	assert_false(mongoc_cursor_error(cur, &err));
	assert_int_equal(count, 1);

	mongoc_cursor_destroy(cur);
	bson_destroy(filter);
	bson_destroy(dup);
	bson_destroy(doc);
	bson_destroy(cmd);
	mongoc_collection_destroy(coll);
	mongoc_client_destroy(client);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_amqp_confirms_and_manual_ack),
		cmocka_unit_test(test_mongo_insert_unique_find),
	};
	int rc = bt_stack_open(&S, "stack");
	if (rc != 0)
		return rc;
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	bt_stack_close(&S);
	mongoc_cleanup();
	return rc;
}
