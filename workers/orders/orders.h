/* orders.h — the order transfer flow (baton-orders): business rules and the handlers.
 *
 * orders.c holds the pure parts (configuration, payment rule, SKU mapping, ERP request bodies,
 * order documents, bounds); handlers.c the asynchronous steps of each event type. See
 * README.md in this folder for the behaviour, the configuration schema and the error codes. */
#ifndef BATON_ORDERS_H
#define BATON_ORDERS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "baton/config.h"
#include "baton/flow.h"
#include "baton/model.h"

#define ORDERS_COLLECTION "orders"

/* The "orders" member of the BATON_CONFIG file, validated. */
typedef struct orders_config {
	json_t *sku_map;            /* {channel: {channel sku: ERP item}} (owned) */
	int item_lookup;            /* ask the ERP item master for SKUs the map lacks */
	json_t *pay_import;         /* financial statuses imported at once (array, owned) */
	json_t *pay_wait;           /* financial statuses that wait (array, owned) */
	unsigned pending_max_ms;    /* park an order whose payment is still pending after this */
	unsigned not_found_max_ms;  /* park an update/cancel whose order is unknown after this */
	unsigned lease_ms;          /* how long one event may hold an order for its ERP call */
	int64_t tolerance;          /* totals check, minor units */
	int writeback;              /* write the ERP number back to the storefront */
} orders_config_t;

/* Parses cfg->file's "orders" member (absent: every default). Problems are appended to errs
 * (one line each, '\n'-terminated, naming the JSON path); returns their number. c is filled
 * with defaults where a value is bad; orders_config_free() it in every case. */
int orders_config_parse(const baton_config_t *cfg, orders_config_t *c, char *errs, size_t len);
void orders_config_free(orders_config_t *c);

typedef enum orders_payment {
	ORDERS_PAY_IMPORT,
	ORDERS_PAY_WAIT,
	ORDERS_PAY_REFUSE
} orders_payment_t;

orders_payment_t orders_payment_rule(const orders_config_t *c, const char *financial_status);

/* The ERP item of a channel SKU from the configured map, or NULL. */
const char *orders_sku_lookup(const orders_config_t *c, const char *channel, const char *sku);

/* "shop-eu:SO-1001": the order's document id and the ERP external reference. */
void orders_ref(const baton_order_t *o, char *out, size_t len);

/* Sales order body for the ERP: create (with external_ref) or PATCH (without). items[i] is the
 * ERP item of line i. New reference. */
json_t *orders_erp_body(const baton_order_t *o, const char *const *items, int create);

/* Minimum time a message has waited, from its attempt number and the retry tiers it went
 * through (each tier's TTL is a lower bound on its delay). */
uint64_t orders_waited_ms(const baton_config_t *cfg, unsigned attempt);

/* 1 when a message that waits (payment pending, order not yet known) must be parked now:
 * it has waited at least max_ms, or no retry tier is left. */
int orders_wait_exceeded(const baton_config_t *cfg, unsigned attempt, unsigned max_ms);

/* A new order document from o (status, ERP id may be NULL), keeping created_at of prev (may be
 * NULL). No lease. New reference. */
json_t *orders_doc_new(const baton_order_t *o, const char *status, const char *erp_id,
		       const json_t *prev, const char *msg_id);

/* --- handlers (handlers.c) ----------------------------------------------------------------- */

int orders_setup(baton_flow_t *f, char *err, size_t errlen);
void orders_teardown(baton_flow_t *f);
void orders_on_created(baton_msg_t *m);
void orders_on_updated(baton_msg_t *m);
void orders_on_cancelled(baton_msg_t *m);

#endif
