/* baton/topology.h — the RabbitMQ topology, from ONE table in topology.c.
 *
 * Workers declare what they need at start over AMQP (idempotent), apply the policies over the
 * management HTTP API (AMQP cannot set policies), and broker-config/definitions.json is generated
 * from the same table (`baton-topology definitions`).
 *
 *   baton.events  (topic)   -> baton.<flow>          one binding per routing key of the flow
 *   baton.retry   (headers) -> baton.retry.<tier>    x-match=all-with-x, x-baton-retry-tier=<tier>
 *   baton.requeue (direct)  -> baton.<flow>          routing key <flow>
 *   baton.dead    (direct)  -> baton.<flow>.dead     routing key <flow>
 *
 * Every queue is a durable quorum queue whose only declared argument is x-queue-type=quorum;
 * everything tunable is a policy:
 *   baton.retry.<tier>  message-ttl=<tier>, dead-letter-exchange=baton.requeue,
 *                       dead-letter-strategy=at-least-once, overflow=reject-publish
 *   baton.flow.<flow>   dead-letter-exchange=baton.dead, dead-letter-routing-key=<flow>,
 *                       delivery-limit=<n>, dead-letter-strategy=at-least-once,
 *                       overflow=reject-publish
 *   (no policy on parking queues: a parked message is never dropped)
 *
 * A retry is published to baton.retry with routing key = flow name and header
 * x-baton-retry-tier = tier name; when its TTL expires the broker dead-letters it to
 * baton.requeue with that routing key, i.e. back to the one flow that failed it (never through
 * baton.events, which would fan it out to every flow bound to its original key). */
#ifndef BATON_TOPOLOGY_H
#define BATON_TOPOLOGY_H

#include <amqp.h>
#include <jansson.h>
#include <stddef.h>

#define BATON_EXCHANGE_EVENTS "baton.events"
#define BATON_EXCHANGE_RETRY "baton.retry"
#define BATON_EXCHANGE_REQUEUE "baton.requeue"
#define BATON_EXCHANGE_DEAD "baton.dead"
#define BATON_HEADER_RETRY_TIER "x-baton-retry-tier"
/* The headers exchange ignores x- headers under x-match=all (every tier queue would match every
 * retry); all-with-x (RabbitMQ >= 3.10) matches them. */
#define BATON_RETRY_MATCH "all-with-x"
/* Priority of baton's policies: above a catch-all policy at 0; an operator who wants to replace
 * one defines a policy with a higher priority (see broker-config/README.md). */
#define BATON_POLICY_PRIORITY 10

typedef struct baton_flow_topology {
	const char *name;
	const char *const *routing_keys; /* NULL-terminated; NULL means none */
} baton_flow_topology_t;

typedef struct baton_topology_opts {
	const unsigned *tiers_ms; /* strictly increasing, non-zero */
	size_t n_tiers;
	unsigned delivery_limit;
} baton_topology_opts_t;

/* The flow table (static storage) and its size. */
const baton_flow_topology_t *baton_topology_flows(size_t *n);
/* The table entry of a flow; NULL if unknown. */
const baton_flow_topology_t *baton_topology_find(const char *flow);
/* Tier name from its duration, in the largest unit that divides it: 5000 -> "5s", 300000 -> "5m",
 * 1500 -> "1500ms", 3600000 -> "1h". 0, or -1 when out is too small or ms is 0. */
int baton_topology_tier_name(unsigned ms, char *out, size_t outlen);
/* 5s, 30s, 5m, 30m; delivery limit 10. */
void baton_topology_default_opts(baton_topology_opts_t *o);

/* Declares the shared exchanges, the retry tier queues and their bindings, and this flow's work
 * queue, parking queue and bindings, with blocking RPCs on channel ch (the caller has set
 * amqp_set_rpc_timeout). Works for any flow description (tests use flows not in the table).
 * Returns 0, or -1 with a sentence in err. After a channel error (e.g. PRECONDITION_FAILED: a
 * queue of that name exists with other arguments) channel ch is re-opened before returning, so
 * the connection stays usable; after a connection error or a timeout the caller must reconnect. */
int baton_topology_declare(amqp_connection_state_t c, amqp_channel_t ch,
			   const baton_flow_topology_t *flow, const baton_topology_opts_t *o,
			   char *err, size_t errlen);

/* PUT /api/policies/<vhost>/<name> on the management API at mgmt_url (http(s)://user:pass@host:
 * port, credentials in the URL) for the tier policies and this flow's policy. vhost is given
 * unescaped ("/"); it is percent-encoded here. Blocking libcurl, for start-up only. 0, or -1
 * with a sentence in err (no credentials in it). */
int baton_topology_apply_policies(const char *mgmt_url, const char *vhost,
				  const baton_flow_topology_t *flow, const baton_topology_opts_t *o,
				  char *err, size_t errlen);

/* The policy baton wants for this flow's work queue / a retry tier queue, as the body of a PUT
 * /api/policies request: {"pattern", "apply-to", "priority", "definition"}. New references. */
json_t *baton_topology_flow_policy(const baton_flow_topology_t *flow,
				   const baton_topology_opts_t *o);
json_t *baton_topology_tier_policy(unsigned tier_ms);

/* definitions.json for every flow in the table: vhosts, exchanges, queues, bindings, policies,
 * all in vhost "/", no users or permissions. Arrays are in table order; dump with
 * JSON_SORT_KEYS | JSON_INDENT(2) for a stable file. New reference; NULL on out of memory. */
json_t *baton_topology_definitions(const baton_topology_opts_t *o);

#endif
