/* baton/headers.h — the x-baton-* headers a retried or parked message carries (the contract
 * support staff read in the RabbitMQ management UI), and reading them back.
 *
 * Pure functions: no I/O, unit-tested. Values are truncated well below frame_max. */
#ifndef BATON_HEADERS_H
#define BATON_HEADERS_H

#include <amqp.h>
#include <stddef.h>
#include <stdint.h>

#define BATON_H_FLOW "x-baton-flow"
#define BATON_H_CLASS "x-baton-error-class"
#define BATON_H_CODE "x-baton-error-code"
#define BATON_H_MESSAGE "x-baton-error-message"
#define BATON_H_HTTP_STATUS "x-baton-http-status"
#define BATON_H_ATTEMPTS "x-baton-attempts"
#define BATON_H_FIRST_FAILED "x-baton-first-failed-at"
#define BATON_H_LAST_FAILED "x-baton-last-failed-at"
#define BATON_H_WORKER "x-baton-worker"
#define BATON_H_ORIG_EXCHANGE "x-baton-original-exchange"
#define BATON_H_ORIG_RK "x-baton-original-routing-key"
#define BATON_H_REPLAYS "x-baton-replays"
#define BATON_H_RETRY_TIER "x-baton-retry-tier"

/* Longest x-baton-error-message kept (bytes, cut at a UTF-8 boundary, "…" appended). */
#define BATON_ERROR_MESSAGE_MAX 1024

typedef enum baton_error_class {
	BATON_CLASS_TRANSIENT,
	BATON_CLASS_PERMANENT,
	BATON_CLASS_EXHAUSTED,
	BATON_CLASS_POISON
} baton_error_class_t;

const char *baton_error_class_name(baton_error_class_t c);

/* The failure story of one message, as read from its headers and updated by the worker. */
typedef struct baton_failure {
	char flow[64];
	baton_error_class_t cls;
	char code[96];
	char message[BATON_ERROR_MESSAGE_MAX + 8];
	long http_status;          /* 0: none */
	unsigned attempts;         /* failed attempts so far */
	char first_failed_at[40];  /* RFC 3339 UTC, "" until the first failure */
	char last_failed_at[40];
	char worker[80];
	char orig_exchange[256];
	char orig_routing_key[256];
	unsigned replays;
	char retry_tier[32];       /* set only on a message headed for a retry tier */
} baton_failure_t;

/* Reads what a delivery's headers say (attempts, replays, original exchange/key, first failure).
 * Missing headers leave zero values; wrong types are ignored. */
void baton_failure_read(baton_failure_t *f, const amqp_table_t *headers);

/* Copies src into dst (size dstlen) cut at a UTF-8 character boundary so that it fits in max
 * bytes; appends "…" when cut. Control characters become spaces. Returns dst. */
char *baton_truncate_utf8(char *dst, size_t dstlen, const char *src, size_t max);

/* Builds the headers of the copy to forward: every header of `in` except the broker's own
 * (x-death, x-delivery-count, x-first-death-*, x-last-death-*) and old x-baton-* ones, plus the
 * x-baton-* headers of f. The table's memory lives in *pool (amqp_pool_t initialised by the
 * caller, freed with empty_amqp_pool). Returns 0 or -1 (out of memory). */
int baton_headers_build(const baton_failure_t *f, const amqp_table_t *in, amqp_pool_t *pool,
			amqp_table_t *out);

/* Finds a header; NULL when absent. */
const amqp_field_value_t *baton_header_find(const amqp_table_t *t, const char *key);
/* Integer value of a header of any integer kind; def when absent or not an integer. */
int64_t baton_header_int(const amqp_table_t *t, const char *key, int64_t def);
/* String value copied into buf; "" when absent or not a string. Returns buf. */
char *baton_header_str(const amqp_table_t *t, const char *key, char *buf, size_t len);

/* RFC 3339 UTC with milliseconds for now (buf >= 32). Returns buf. */
char *baton_now_rfc3339(char *buf, size_t len);

#endif
