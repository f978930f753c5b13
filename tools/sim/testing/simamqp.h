/* simamqp.h — AMQP helpers for the simulators' system tests (test code only, header-only). */
#ifndef BATON_SIMAMQP_H
#define BATON_SIMAMQP_H

#include <amqp.h>
#include <jansson.h>
#include <string.h>
#include <sys/time.h>

/* Declares baton.events (topic, durable) and an exclusive queue bound with key; starts a
 * consumer on it (no-ack). */
static inline void simt_bind_events(amqp_connection_state_t c, const char *queue, const char *key)
{
	amqp_exchange_declare(c, 1, amqp_cstring_bytes("baton.events"),
			      amqp_cstring_bytes("topic"), 0, 1, 0, 0, amqp_empty_table);
	assert_int_equal(amqp_get_rpc_reply(c).reply_type, AMQP_RESPONSE_NORMAL);
	amqp_queue_declare(c, 1, amqp_cstring_bytes(queue), 0, 0, 1, 1, amqp_empty_table);
	assert_int_equal(amqp_get_rpc_reply(c).reply_type, AMQP_RESPONSE_NORMAL);
	amqp_queue_bind(c, 1, amqp_cstring_bytes(queue), amqp_cstring_bytes("baton.events"),
			amqp_cstring_bytes(key), amqp_empty_table);
	assert_int_equal(amqp_get_rpc_reply(c).reply_type, AMQP_RESPONSE_NORMAL);
	amqp_basic_consume(c, 1, amqp_cstring_bytes(queue), amqp_empty_bytes, 0, 1, 0,
			   amqp_empty_table);
	assert_int_equal(amqp_get_rpc_reply(c).reply_type, AMQP_RESPONSE_NORMAL);
}

static inline char *simt_bytes(amqp_bytes_t b)
{
	char *s = malloc(b.len + 1);
	memcpy(s, b.bytes, b.len);
	s[b.len] = '\0';
	return s;
}

/* Next message (bounded wait of 15 s): its parsed body, and checks of the AMQP properties every
 * event must carry (persistent, JSON, message_id = event id, type = routing key = event type,
 * app_id when given). Returns the body (caller decrefs). */
static inline json_t *simt_next_event(amqp_connection_state_t c, const char *app_id)
{
	amqp_envelope_t env;
	struct timeval tv = {15, 0};
	amqp_basic_properties_t *p;
	json_t *j;
	char *body, *s;

	amqp_maybe_release_buffers(c);
	assert_int_equal(amqp_consume_message(c, &env, &tv, 0).reply_type, AMQP_RESPONSE_NORMAL);
	p = &env.message.properties;
	body = simt_bytes(env.message.body);
	j = json_loads(body, 0, NULL);
	assert_non_null(j);
	free(body);
	assert_true(p->_flags & AMQP_BASIC_DELIVERY_MODE_FLAG);
	assert_int_equal(p->delivery_mode, AMQP_DELIVERY_PERSISTENT);
	s = simt_bytes(p->content_type);
	assert_string_equal(s, "application/json");
	free(s);
	s = simt_bytes(p->message_id);
	assert_string_equal(s, json_string_value(json_object_get(j, "id")));
	free(s);
	s = simt_bytes(p->type);
	assert_string_equal(s, json_string_value(json_object_get(j, "type")));
	free(s);
	s = simt_bytes(env.routing_key);
	assert_string_equal(s, json_string_value(json_object_get(j, "type")));
	free(s);
	if (app_id) {
		s = simt_bytes(p->app_id);
		assert_string_equal(s, app_id);
		free(s);
	}
	/* CloudEvents 1.0 structured envelope. */
	assert_string_equal(json_string_value(json_object_get(j, "specversion")), "1.0");
	assert_int_equal(json_string_length(json_object_get(j, "id")), 36);
	assert_non_null(json_string_value(json_object_get(j, "source")));
	assert_non_null(json_string_value(json_object_get(j, "subject")));
	assert_int_equal(json_string_length(json_object_get(j, "time")), 20);
	assert_string_equal(json_string_value(json_object_get(j, "datacontenttype")),
			    "application/json");
	assert_true(json_is_object(json_object_get(j, "data")));
	amqp_destroy_envelope(&env);
	return j;
}

#endif
