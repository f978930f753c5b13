/* message.h — reading a parked message's story from its AMQP properties and body, and the
 * headers of its replayed copy (pure, unit-tested). */
#ifndef RP_MESSAGE_H
#define RP_MESSAGE_H

#include <amqp.h>
#include <jansson.h>

#include "item.h"

/* Fills it from a message parked in flow's queue. Headers the worker wrote (x-baton-*) give the
 * failure; a message the broker parked itself (quorum delivery-limit) has none, so the class
 * and code come from its x-death story ("poison", "broker.delivery_limit"). Subject and type
 * come from the CloudEvents body when it parses. */
void rp_item_read(rp_item_t *it, const char *flow, const amqp_basic_properties_t *p,
		  amqp_bytes_t body);

/* Headers of the replayed copy: every header of in except the broker's own (x-death,
 * x-delivery-count, x-first-death-*, x-last-death-*), x-baton-retry-tier, x-baton-attempts and
 * x-baton-replays; then x-baton-attempts = 0 (the worker's retry tiers start over) and
 * x-baton-replays = replays. The failure headers of the last attempt stay, so the management UI
 * still tells why it was parked. Memory from *pool. 0 or -1 (out of memory). */
int rp_replay_headers(const amqp_table_t *in, unsigned replays, amqp_pool_t *pool,
		      amqp_table_t *out);

/* A header value as JSON (strings, numbers, booleans, timestamps as numbers, arrays, tables;
 * bytes as strings). New reference. */
json_t *rp_field_json(const amqp_field_value_t *v);
/* Every header as a JSON object. */
json_t *rp_table_json(const amqp_table_t *t);

#endif
