/* baton/config.h — a worker's configuration: environment variables (names fixed by the project's
 * contracts) plus an optional JSON file of business mappings (BATON_CONFIG).
 *
 * Everything is validated at start and every problem is reported, one line each, naming the
 * variable, the value (secrets redacted) and what is expected, so that a misconfigured
 * deployment is fixed in one round. An empty variable counts as unset. Durations take a unit:
 * "250ms", "5s", "5m", "1h". */
#ifndef BATON_CONFIG_H
#define BATON_CONFIG_H

#include <jansson.h>
#include <stddef.h>

#include "baton/log.h"

#define BATON_MAX_RETRY_TIERS 8

typedef const char *(*baton_getenv_fn)(const char *name);

typedef struct baton_config {
	char *flow;
	char *amqp_url;       /* BATON_AMQP_URL, required, must parse (amqp_parse_url) */
	char *mongo_uri;      /* BATON_MONGO_URI, required, mongodb:// or mongodb+srv:// */
	char *mongo_db;       /* BATON_MONGO_DB, default "baton", valid database name */
	char *erp_url;        /* BATON_ERP_URL, optional, http(s):// */
	char *storefront_url; /* BATON_STOREFRONT_URL, optional, http(s):// */
	char *mgmt_url;       /* BATON_RABBITMQ_MGMT_URL, optional http(s):// (policies applied) */
	char *config_path;    /* BATON_CONFIG, optional: JSON object file (business mappings) */
	json_t *file;         /* parsed BATON_CONFIG object or NULL (owned) */
	unsigned prefetch;    /* BATON_PREFETCH, default 64, 1..65535 */
	baton_log_level_t log_level; /* BATON_LOG_LEVEL, default info */
	char *metrics_addr; /* BATON_METRICS_ADDR "host:port", default "127.0.0.1:9464"; "off" ->
			     * NULL; port 0 allowed (ephemeral) */
	char *worker_id;    /* BATON_WORKER_ID, default "<hostname>-<pid>", [A-Za-z0-9._-]{1,64} */
	unsigned retry_tiers_ms[BATON_MAX_RETRY_TIERS];
	size_t n_retry_tiers;           /* BATON_RETRY_TIERS, default "5s,30s,5m,30m", 1..8
					 * strictly increasing durations */
	unsigned delivery_limit;        /* BATON_DELIVERY_LIMIT, default 10, 2..1000 */
	unsigned shutdown_grace_ms;     /* BATON_SHUTDOWN_GRACE, default 30s, 0..1h */
	unsigned http_connect_timeout_ms; /* BATON_HTTP_CONNECT_TIMEOUT, default 5s, 1ms..10m */
	unsigned http_timeout_ms;       /* BATON_HTTP_TIMEOUT, default 30s, 1ms..1h */
	unsigned http_max_host_conns;   /* BATON_HTTP_MAX_HOST_CONNS, default 16, 1..1024 */
	unsigned mongo_pool_size;       /* BATON_MONGO_POOL, default 8, 1..64 */
	unsigned heartbeat_s;           /* BATON_HEARTBEAT, default 30, 0 disables, 0..3600
					 * (whole seconds: "30" or "30s") */
	unsigned audit_batch;           /* BATON_AUDIT_BATCH, default 100, 1..10000 */
	unsigned audit_flush_ms;        /* BATON_AUDIT_FLUSH, default 200ms, 1ms..1m */
} baton_config_t;

/* Loads and validates the configuration of `flow` (copied to cfg->flow). getenv_fn NULL means
 * getenv. Returns 0, or -1 with *errors = malloc'd text (caller frees), one '\n'-terminated line
 * per problem; on -1 cfg holds nothing (baton_config_free is still safe). errors may be NULL. */
int baton_config_load(baton_config_t *cfg, const char *flow, baton_getenv_fn getenv_fn,
		      char **errors);
void baton_config_free(baton_config_t *cfg);

/* "250ms", "5s", "5m", "1h" (unit required, no sign, no spaces) -> milliseconds. 0, or -1 on
 * a malformed value or one above UINT_MAX ms. */
int baton_duration_parse(const char *s, unsigned *ms);

/* A comma-separated list of 1..max strictly increasing, non-zero durations (spaces around the
 * commas allowed), as in BATON_RETRY_TIERS. 0, or -1 with a reason in why. */
int baton_config_parse_tiers(const char *s, unsigned *tiers_ms, size_t max, size_t *n, char *why,
			     size_t whylen);

#endif
