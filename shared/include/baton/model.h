/* baton/model.h — the canonical order (CONTRACTS.md) and its strict decoding.
 *
 * baton_order_decode() checks an event's "data" object and fills a baton_order_t, or fails with
 * one precise sentence naming the exact field as a path from the event: "data.lines[2].quantity:
 * must be an integer > 0". Unknown members are accepted (the contracts let shapes grow); missing
 * required members, wrong types, malformed money, negative amounts, unknown currencies,
 * oversize strings or arrays are refused, never a crash. Pure functions. */
#ifndef BATON_MODEL_H
#define BATON_MODEL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define BATON_ORDER_MAX_LINES 500
#define BATON_ORDER_MAX_QUANTITY 1000000
#define BATON_MODEL_MAX_STRING 1000
#define BATON_MODEL_ERR_MAX 320

/* An address or the customer: the members the project knows, copied as JSON strings. */
typedef struct baton_order_line {
	const char *line_id;  /* may be NULL */
	const char *sku;
	int64_t quantity;     /* > 0 */
	int64_t unit_price;   /* minor units, >= 0 */
	int64_t discount;     /* minor units, >= 0, <= quantity * unit_price */
	int64_t tax;          /* minor units, >= 0 */
} baton_order_line_t;

typedef struct baton_order_totals {
	int64_t subtotal, discount, tax, shipping, grand_total;
} baton_order_totals_t;

/* Strings and JSON members are borrowed from `src` (a reference the order holds), valid until
 * baton_order_free(). */
typedef struct baton_order {
	json_t *src;                 /* the decoded "data" object (one reference, owned) */
	const char *order_id;        /* [A-Za-z0-9._:-]{1,100} (safe in URLs and ids) */
	const char *channel;         /* [A-Za-z0-9._-]{1,64} */
	int64_t version;             /* >= 1 */
	const char *currency;        /* ISO 4217, known to baton/money.h */
	int decimals;                /* of the currency */
	const char *financial_status;
	json_t *customer;            /* object or NULL */
	json_t *shipping_address;    /* object (required) */
	json_t *billing_address;     /* object or NULL */
	const char *note;            /* may be NULL */
	const char *cancel_reason;   /* may be NULL */
	baton_order_line_t *lines;   /* n_lines >= 1, owned */
	size_t n_lines;
	const char *shipping_method; /* may be NULL */
	int64_t shipping_price, shipping_tax;
	baton_order_totals_t totals;
	const char *placed_at;       /* RFC 3339 */
	const char *updated_at;      /* RFC 3339 or NULL */
} baton_order_t;

/* 0, or -1 with err (BATON_MODEL_ERR_MAX is enough) naming the field; on -1 o holds nothing
 * (baton_order_free is still safe). data is borrowed (a reference is taken). */
int baton_order_decode(json_t *data, baton_order_t *o, char *err, size_t errlen);
void baton_order_free(baton_order_t *o);

/* The totals against the lines: subtotal = sum(quantity * unit_price), discount = sum(line
 * discounts), tax = sum(line taxes) + shipping tax, shipping = shipping price, grand_total =
 * subtotal - discount + tax + shipping, each within tolerance minor units. 0, or -1 with err
 * naming the first inconsistent total and both amounts. */
int baton_order_check_totals(const baton_order_t *o, int64_t tolerance, char *err,
			     size_t errlen);

/* The canonical order as JSON (known members only, money as decimal strings): what documents
 * store. New reference, NULL when out of memory. */
json_t *baton_order_to_json(const baton_order_t *o);

/* "2026-11-22T10:15:00Z", with optional fraction and numeric offset: 1 if well formed. */
int baton_rfc3339_valid(const char *s);

#endif
