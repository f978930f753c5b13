/* baton-sim-storefront — a storefront simulator shaped like Shopify's Admin API (TEST TOOL):
 * inventory writes with compare-and-set, level reads, fulfillments, order notes/attributes, a
 * leaky-bucket rate limiter per shop, and a checkout that sells only what it has and emits the
 * order as a canonical storefront.order.created event. */
#include "sim.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SHOPS 64

typedef struct shop_bucket {
	char shop[128];
	sim_bucket_t b;
} shop_bucket_t;

typedef struct sf {
	const char *channel;     /* default channel (CloudEvents source storefront/<channel>) */
	const char *currency;
	int tax_bp;              /* tax rate in basis points (2100 = 21%) */
	double bucket_size, leak_rate;
	sim_outbox_t *outbox;
	json_t *levels;          /* "sku|location" -> level */
	json_t *items;           /* sku -> inventory_item_id */
	json_t *item_skus;       /* "inventory_item_id" -> sku */
	json_t *orders;          /* id -> order */
	json_t *fulfillments;    /* [fulfillment] */
	json_t *ful_by_order;    /* order id -> count */
	json_t *upd_by_order;    /* order id -> count */
	uint64_t next_item, next_order, next_ful, next_adj;
	uint64_t sold, refused;
	shop_bucket_t shops[MAX_SHOPS];
	int nshops;
} sf_t;

static void sf_clear(sf_t *s)
{
	json_t **all[] = {&s->levels, &s->items, &s->item_skus, &s->orders, &s->fulfillments,
			  &s->ful_by_order, &s->upd_by_order};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		json_decref(*all[i]);
		*all[i] = i == 4 ? json_array() : json_object();
	}
	s->next_item = 1000;
	s->next_order = 1000;
	s->next_ful = 0;
	s->next_adj = 0;
	s->sold = s->refused = 0;
	s->nshops = 0;
}

static void bump(json_t *counts, const char *key)
{
	json_object_set_new(counts, key,
			    json_integer(json_integer_value(json_object_get(counts, key)) + 1));
}

static json_t *values(json_t *obj)
{
	json_t *arr = json_array(), *v;
	const char *k;

	json_object_foreach(obj, k, v)
		json_array_append(arr, v);
	return arr;
}

/* ---------- rate limiter ---------- */

/* Returns false (with the 429 set) when the shop's bucket is full. */
static bool rate_limit(sf_t *s, sim_req_t *req, sim_resp_t *r)
{
	const char *shop = sim_req_header(req, "X-Shopify-Shop-Domain");
	shop_bucket_t *sb = NULL;
	double retry, used;
	bool ok;

	if (!shop || !*shop)
		shop = "default";
	for (int i = 0; i < s->nshops; i++)
		if (!strcmp(s->shops[i].shop, shop))
			sb = &s->shops[i];
	if (!sb) {
		sb = &s->shops[s->nshops < MAX_SHOPS ? s->nshops++ : MAX_SHOPS - 1];
		memset(sb, 0, sizeof(*sb));
		snprintf(sb->shop, sizeof(sb->shop), "%s", shop);
		sb->b.last = sim_now();
	}
	ok = sim_bucket_take(&sb->b, s->bucket_size, s->leak_rate, sim_now(), &retry, &used);
	if (!ok) {
		long secs = (long)ceil(retry);
		sim_resp_error(r, 429, "rate_limited",
			       "Exceeded %g calls per second for api client. Reduce request rates "
			       "to resume uninterrupted service.",
			       s->leak_rate);
		sim_resp_header(r, "Retry-After", "%ld", secs < 1 ? 1 : secs);
	}
	sim_resp_header(r, "X-Shopify-Shop-Api-Call-Limit", "%ld/%ld", (long)ceil(used - 1e-9),
			(long)s->bucket_size);
	return ok;
}

/* ---------- inventory ---------- */

/* Accepts an integer or a non-empty string id; writes its text form to out. */
static bool id_text(const json_t *v, char *out, size_t len)
{
	if (json_is_integer(v) && json_integer_value(v) >= 0) {
		snprintf(out, len, "%lld", (long long)json_integer_value(v));
		return true;
	}
	if (json_is_string(v) && json_string_length(v) > 0 && json_string_length(v) < len - 1) {
		snprintf(out, len, "%s", json_string_value(v));
		return true;
	}
	return false;
}

static json_int_t item_id(sf_t *s, const char *sku)
{
	json_t *v = json_object_get(s->items, sku);
	char k[32];

	if (v)
		return json_integer_value(v);
	s->next_item++;
	json_object_set_new(s->items, sku, json_integer((json_int_t)s->next_item));
	snprintf(k, sizeof(k), "%llu", (unsigned long long)s->next_item);
	json_object_set_new(s->item_skus, k, json_string(sku));
	return (json_int_t)s->next_item;
}

static json_t *level_get(sf_t *s, const char *sku, const char *loc, bool create)
{
	char key[512];
	json_t *l;

	snprintf(key, sizeof(key), "%s|%s", sku, loc);
	l = json_object_get(s->levels, key);
	if (!l && create) {
		l = json_pack("{s:I, s:s, s:s, s:i, s:n}", "inventory_item_id", item_id(s, sku),
			      "sku", sku, "location_id", loc, "available", 0, "updated_at");
		json_object_set_new(s->levels, key, l);
	}
	return l;
}

typedef struct qty_change {
	char sku[256], loc[128];
	int64_t quantity, compare;
	bool has_compare;
} qty_change_t;

static bool parse_change(sf_t *s, const json_t *q, size_t i, qty_change_t *c, sim_resp_t *r)
{
	json_t *iid = json_object_get(q, "inventory_item_id"), *sku = json_object_get(q, "sku");
	json_t *cq = json_object_get(q, "compare_quantity"), *qty = json_object_get(q, "quantity");
	char idt[64];

	if (!json_is_object(q)) {
		sim_resp_error(r, 400, "field_invalid", "quantities[%zu] must be an object", i);
		return false;
	}
	if (sku) {
		if (!json_is_string(sku) || json_string_length(sku) == 0 ||
		    json_string_length(sku) >= sizeof(c->sku)) {
			sim_resp_error(r, 400, "field_invalid",
				       "quantities[%zu].sku must be a non-empty string", i);
			return false;
		}
		snprintf(c->sku, sizeof(c->sku), "%s", json_string_value(sku));
	} else if (iid) {
		const char *known;
		if (!id_text(iid, idt, sizeof(idt))) {
			sim_resp_error(r, 400, "field_invalid",
				       "quantities[%zu].inventory_item_id must be an id", i);
			return false;
		}
		known = json_string_value(json_object_get(s->item_skus, idt));
		if (!known) {
			sim_resp_error(r, 422, "inventory_item_not_found",
				       "quantities[%zu]: no inventory item %s", i, idt);
			return false;
		}
		snprintf(c->sku, sizeof(c->sku), "%s", known);
	} else {
		sim_resp_error(r, 400, "field_missing",
			       "quantities[%zu] needs inventory_item_id or sku", i);
		return false;
	}
	if (!id_text(json_object_get(q, "location_id"), c->loc, sizeof(c->loc))) {
		sim_resp_error(r, 400, "field_invalid", "quantities[%zu].location_id is required", i);
		return false;
	}
	if (!json_is_integer(qty)) {
		sim_resp_error(r, 400, "field_invalid", "quantities[%zu].quantity must be an integer",
			       i);
		return false;
	}
	c->quantity = json_integer_value(qty);
	c->has_compare = cq != NULL;
	if (cq && !json_is_integer(cq) && !json_is_null(cq)) {
		sim_resp_error(r, 400, "field_invalid",
			       "quantities[%zu].compare_quantity must be an integer or null", i);
		return false;
	}
	c->compare = json_is_integer(cq) ? json_integer_value(cq) : -1;
	if (json_is_null(cq))
		c->has_compare = false;
	return true;
}

static void set_quantities(sf_t *s, sim_req_t *req, sim_resp_t *r)
{
	json_t *b = sim_req_json(req, r), *qs, *stale, *changes;
	const char *reason, *name;
	qty_change_t *cs = NULL;
	size_t n, i;
	char now[32];

	if (!b || !sim_get_str(b, "reason", true, &reason, r) ||
	    !sim_get_str(b, "name", false, &name, r))
		return;
	if (name && strcmp(name, "available") != 0) {
		sim_resp_error(r, 400, "field_invalid", "only the 'available' quantity can be set");
		return;
	}
	qs = json_object_get(b, "quantities");
	n = json_array_size(qs);
	if (!json_is_array(qs) || n == 0 || n > 250) {
		sim_resp_error(r, 400, "field_invalid",
			       "'quantities' must be an array of 1 to 250 entries");
		return;
	}
	cs = calloc(n, sizeof(*cs));
	if (!cs) {
		sim_resp_error(r, 500, "internal", "out of memory");
		return;
	}
	for (i = 0; i < n; i++)
		if (!parse_change(s, json_array_get(qs, i), i, &cs[i], r))
			goto out;
	/* Compare-and-set: all or nothing. */
	stale = json_array();
	for (i = 0; i < n; i++) {
		json_t *l = level_get(s, cs[i].sku, cs[i].loc, false);
		int64_t cur = l ? json_integer_value(json_object_get(l, "available")) : 0;
		if (cs[i].has_compare && cur != cs[i].compare)
			json_array_append_new(
				stale, json_pack("{s:i, s:s, s:s, s:I, s:I}", "index", (int)i, "sku",
						 cs[i].sku, "location_id", cs[i].loc,
						 "compare_quantity", (json_int_t)cs[i].compare,
						 "quantity", (json_int_t)cur));
	}
	if (json_array_size(stale)) {
		sim_resp_error(r, 409, "compare_quantity_stale",
			       "%zu of %zu quantities changed since they were read; nothing was set",
			       json_array_size(stale), n);
		json_object_set_new(json_object_get(r->body, "error"), "stale", stale);
		goto out;
	}
	json_decref(stale);
	changes = json_array();
	sim_rfc3339(now, sizeof(now));
	for (i = 0; i < n; i++) {
		json_t *l = level_get(s, cs[i].sku, cs[i].loc, true);
		int64_t cur = json_integer_value(json_object_get(l, "available"));
		json_object_set_new(l, "available", json_integer(cs[i].quantity));
		json_object_set_new(l, "updated_at", json_string(now));
		json_array_append_new(
			changes, json_pack("{s:s, s:s, s:O, s:s, s:I, s:I}", "name", "available",
					   "sku", cs[i].sku, "inventory_item_id",
					   json_object_get(l, "inventory_item_id"), "location_id",
					   cs[i].loc, "quantity_after", (json_int_t)cs[i].quantity,
					   "delta", (json_int_t)(cs[i].quantity - cur)));
	}
	sim_resp_json(r, 200,
		      json_pack("{s:{s:I, s:s, s:s, s:o}}", "inventory_adjustment_group", "id",
				(json_int_t)++s->next_adj, "reason", reason, "created_at", now,
				"changes", changes));
out:
	free(cs);
}

static void inventory_levels(sf_t *s, sim_req_t *req, sim_resp_t *r)
{
	const char *sku = sim_req_query(req, "sku"), *loc = sim_req_query(req, "location_id");
	const char *iid = sim_req_query(req, "inventory_item_id"), *k;
	json_t *list = json_array(), *l;
	char idt[32];

	json_object_foreach(s->levels, k, l) {
		if (sku && strcmp(sku, json_string_value(json_object_get(l, "sku"))))
			continue;
		if (loc && strcmp(loc, json_string_value(json_object_get(l, "location_id"))))
			continue;
		snprintf(idt, sizeof(idt), "%lld",
			 (long long)json_integer_value(json_object_get(l, "inventory_item_id")));
		if (iid && strcmp(iid, idt))
			continue;
		json_array_append(list, l);
	}
	sim_resp_json(r, 200, json_pack("{s:o}", "inventory_levels", list));
}

/* ---------- orders ---------- */

static json_t *order_get(sf_t *s, const char *id, bool create)
{
	json_t *o = json_object_get(s->orders, id);

	if (!o && create) {
		/* Orders the storefront did not sell itself (published by tests or baton-load)
		 * are accepted and remembered, so flows can write back to them. */
		o = json_pack("{s:s, s:b}", "order_id", id, "sold_here", 0);
		json_object_set_new(s->orders, id, o);
	}
	return o;
}

static void order_update(sf_t *s, const char *id, sim_req_t *req, sim_resp_t *r)
{
	json_t *b = sim_req_json(req, r), *o, *upd, *attrs, *a, *v;
	const char *note, *tags, *k;
	char now[32];
	size_t i;

	if (!b)
		return;
	upd = json_object_get(b, "order");
	if (!json_is_object(upd)) {
		sim_resp_error(r, 400, "field_missing", "'order' object is required");
		return;
	}
	json_object_foreach(upd, k, v) {
		if (strcmp(k, "id") && strcmp(k, "note") && strcmp(k, "note_attributes") &&
		    strcmp(k, "tags")) {
			sim_resp_error(r, 400, "field_readonly",
				       "order.%s cannot be changed (note, note_attributes, tags can)",
				       k);
			return;
		}
	}
	if (!sim_get_str(upd, "note", false, &note, r) || !sim_get_str(upd, "tags", false, &tags, r))
		return;
	attrs = json_object_get(upd, "note_attributes");
	if (attrs && !json_is_array(attrs)) {
		sim_resp_error(r, 400, "field_invalid", "order.note_attributes must be an array");
		return;
	}
	json_array_foreach(attrs, i, a) {
		if (!json_is_object(a) || !json_is_string(json_object_get(a, "name")) ||
		    !json_is_string(json_object_get(a, "value"))) {
			sim_resp_error(r, 400, "field_invalid",
				       "order.note_attributes[%zu] must be {\"name\",\"value\"} strings",
				       i);
			return;
		}
	}
	o = order_get(s, id, true);
	if (note)
		json_object_set_new(o, "note", json_string(note));
	if (tags)
		json_object_set_new(o, "tags", json_string(tags));
	if (attrs)
		json_object_set(o, "note_attributes", attrs);
	json_object_set_new(o, "updated_at", json_string(sim_rfc3339(now, sizeof(now))));
	bump(s->upd_by_order, id);
	sim_resp_json(r, 200, json_pack("{s:O}", "order", o));
}

static void fulfillment_create(sf_t *s, const char *id, sim_req_t *req, sim_resp_t *r)
{
	json_t *b = sim_req_json(req, r), *f, *o, *lines, *l, *loc;
	const char *num, *company, *url;
	char now[32], fid[32], loct[128] = "";
	size_t i;

	if (!b)
		return;
	f = json_object_get(b, "fulfillment");
	if (!json_is_object(f)) {
		sim_resp_error(r, 400, "field_missing", "'fulfillment' object is required");
		return;
	}
	if (!sim_get_str(f, "tracking_number", false, &num, r) ||
	    !sim_get_str(f, "tracking_company", false, &company, r) ||
	    !sim_get_str(f, "tracking_url", false, &url, r))
		return;
	loc = json_object_get(f, "location_id");
	if (loc && !id_text(loc, loct, sizeof(loct))) {
		sim_resp_error(r, 400, "field_invalid", "fulfillment.location_id must be an id");
		return;
	}
	lines = json_object_get(f, "line_items");
	if (lines && !json_is_array(lines)) {
		sim_resp_error(r, 400, "field_invalid", "fulfillment.line_items must be an array");
		return;
	}
	json_array_foreach(lines, i, l) {
		json_t *q = json_object_get(l, "quantity");
		if (!json_is_object(l) || !json_is_integer(q) || json_integer_value(q) < 1 ||
		    (!json_is_string(json_object_get(l, "sku")) &&
		     !json_object_get(l, "id"))) {
			sim_resp_error(r, 400, "field_invalid",
				       "fulfillment.line_items[%zu] needs sku (or id) and a "
				       "positive quantity",
				       i);
			return;
		}
	}
	o = order_get(s, id, true);
	snprintf(fid, sizeof(fid), "%llu", (unsigned long long)++s->next_ful + 5000);
	sim_rfc3339(now, sizeof(now));
	f = json_pack("{s:s, s:s, s:s, s:s*, s:s*, s:s*, s:s*, s:O*, s:s}", "id", fid, "order_id",
		      id, "status", "success", "location_id", loct[0] ? loct : NULL,
		      "tracking_number", num, "tracking_company", company, "tracking_url", url,
		      "line_items", lines, "created_at", now);
	json_array_append(s->fulfillments, f);
	json_object_set_new(o, "fulfillment_status", json_string("fulfilled"));
	json_object_set_new(o, "updated_at", json_string(now));
	bump(s->ful_by_order, id);
	sim_resp_json(r, 201, json_pack("{s:o}", "fulfillment", f));
}

/* ---------- checkout ---------- */

typedef struct want {
	const char *sku;
	int64_t qty;
	json_t *level; /* chosen level */
} want_t;

/* The location with the most available that covers qty (or the requested one). */
static json_t *pick_level(sf_t *s, const char *sku, const char *loc, int64_t qty)
{
	json_t *best = NULL, *l;
	const char *k;

	if (loc) {
		l = level_get(s, sku, loc, false);
		return l && json_integer_value(json_object_get(l, "available")) >= qty ? l : NULL;
	}
	json_object_foreach(s->levels, k, l) {
		int64_t av = json_integer_value(json_object_get(l, "available"));
		if (strcmp(json_string_value(json_object_get(l, "sku")), sku) || av < qty)
			continue;
		if (!best || av > json_integer_value(json_object_get(best, "available")))
			best = l;
	}
	return best;
}

static json_t *default_party(void)
{
	return json_pack("{s:s, s:s, s:s}", "email", "buyer@example.com", "name", "Sim Buyer",
			 "phone", "+34600000000");
}

static json_t *default_address(void)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s}", "name", "Sim Buyer", "line1",
			 "Calle Mayor 1", "city", "Madrid", "postal_code", "28013", "country",
			 "ES");
}

static void checkout(sf_t *s, sim_req_t *req, sim_resp_t *r)
{
	json_t *b = sim_req_json(req, r), *lines, *l, *outl, *data, *ev, *ship;
	const char *channel, *oid, *loc, *currency, *method = "standard";
	want_t *w = NULL;
	size_t n, i, nw = 0;
	int64_t sub = 0, disc = 0, tax = 0, ship_price = 490, ship_tax;
	char id[64], buf[5][32], now[32], evid[37], src[160], subject[96];

	if (!b || !sim_get_str(b, "channel", false, &channel, r) ||
	    !sim_get_str(b, "order_id", false, &oid, r) ||
	    !sim_get_str(b, "location_id", false, &loc, r) ||
	    !sim_get_str(b, "currency", false, &currency, r))
		return;
	lines = json_object_get(b, "lines");
	n = json_array_size(lines);
	if (!json_is_array(lines) || n == 0 || n > 100) {
		sim_resp_error(r, 400, "field_invalid", "'lines' must be an array of 1 to 100 lines");
		return;
	}
	if (oid && (strlen(oid) > 60 || json_object_get(s->orders, oid))) {
		sim_resp_error(r, 409, "order_exists", "order '%s' already exists (or id too long)",
			       oid);
		return;
	}
	ship = json_object_get(b, "shipping");
	if (ship && (!json_is_object(ship) || !sim_get_str(ship, "method", false, &method, r) ||
		     !sim_get_money(ship, "price", false, &ship_price, r))) {
		if (!r->status)
			sim_resp_error(r, 400, "field_invalid", "'shipping' must be an object");
		return;
	}
	if (!method)
		method = "standard";
	w = calloc(n, sizeof(*w));
	outl = json_array();
	if (!w || !outl) {
		sim_resp_error(r, 500, "internal", "out of memory");
		goto out;
	}
	/* Validate and sum the quantity wanted per SKU. */
	json_array_foreach(lines, i, l) {
		const char *sku;
		int64_t q, price = 1000, d = 0;
		size_t k;
		if (!json_is_object(l) || !sim_get_str(l, "sku", true, &sku, r) ||
		    !sim_get_int(l, "quantity", true, 1, &q, NULL, r) ||
		    !sim_get_money(l, "unit_price", false, &price, r) ||
		    !sim_get_money(l, "discount", false, &d, r)) {
			if (!r->status)
				sim_resp_error(r, 400, "field_invalid", "lines[%zu] must be an object",
					       i);
			goto out;
		}
		for (k = 0; k < nw && strcmp(w[k].sku, sku); k++)
			;
		if (k == nw)
			w[nw++].sku = sku;
		w[k].qty += q;
		snprintf(buf[0], sizeof(buf[0]), "%zu", i + 1);
		json_array_append_new(
			outl, json_pack("{s:s, s:s, s:I, s:s, s:s, s:s}", "line_id", buf[0], "sku",
					sku, "quantity", (json_int_t)q, "unit_price",
					sim_money_format(price, buf[1], sizeof(buf[1])), "discount",
					sim_money_format(d, buf[2], sizeof(buf[2])), "tax",
					sim_money_format(sim_money_rate(q * price - d, s->tax_bp),
							 buf[3], sizeof(buf[3]))));
		sub += q * price;
		disc += d;
		tax += sim_money_rate(q * price - d, s->tax_bp);
	}
	/* Sell only what is available: every SKU must be covered, or nothing is sold. */
	for (i = 0; i < nw; i++) {
		w[i].level = pick_level(s, w[i].sku, loc, w[i].qty);
		if (!w[i].level) {
			s->refused++;
			sim_resp_error(r, 409, "out_of_stock", "'%s' has fewer than %lld available",
				       w[i].sku, (long long)w[i].qty);
			json_object_set_new(json_object_get(r->body, "error"), "sku",
					    json_string(w[i].sku));
			goto out;
		}
	}
	sim_rfc3339(now, sizeof(now));
	for (i = 0; i < nw; i++) {
		json_t *lv = w[i].level;
		json_object_set_new(lv, "available",
				    json_integer(json_integer_value(json_object_get(lv, "available")) -
						 w[i].qty));
		json_object_set_new(lv, "updated_at", json_string(now));
	}
	if (!oid)
		snprintf(id, sizeof(id), "SF-%llu", (unsigned long long)++s->next_order);
	else
		snprintf(id, sizeof(id), "%s", oid);
	ship_tax = sim_money_rate(ship_price, s->tax_bp);
	tax += ship_tax;
	channel = channel ? channel : s->channel;
	data = json_pack("{s:s, s:s, s:i, s:s, s:s, s:O*, s:O*, s:O*, s:O, s:{s:s, s:s, s:s}}",
			 "order_id", id, "channel", channel, "version", 1, "currency",
			 currency ? currency : s->currency, "financial_status", "paid",
			 "customer", json_object_get(b, "customer"), "shipping_address",
			 json_object_get(b, "shipping_address"), "billing_address",
			 json_object_get(b, "billing_address"), "lines", outl, "shipping",
			 "method", method, "price", sim_money_format(ship_price, buf[0], 32), "tax",
			 sim_money_format(ship_tax, buf[1], 32));
	if (!json_object_get(data, "customer"))
		json_object_set_new(data, "customer", default_party());
	if (!json_object_get(data, "shipping_address"))
		json_object_set_new(data, "shipping_address", default_address());
	if (!json_object_get(data, "billing_address"))
		json_object_set(data, "billing_address", json_object_get(data, "shipping_address"));
	json_object_set_new(
		data, "totals",
		json_pack("{s:s, s:s, s:s, s:s, s:s}", "subtotal",
			  sim_money_format(sub, buf[0], 32), "discount",
			  sim_money_format(disc, buf[1], 32), "tax", sim_money_format(tax, buf[2], 32),
			  "shipping", sim_money_format(ship_price, buf[3], 32), "grand_total",
			  sim_money_format(sub - disc + tax + ship_price, buf[4], 32)));
	json_object_set_new(data, "placed_at", json_string(now));
	json_object_set_new(data, "updated_at", json_string(now));
	sim_uuid(evid);
	snprintf(src, sizeof(src), "storefront/%s", channel);
	snprintf(subject, sizeof(subject), "order/%s", id);
	ev = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:O}", "specversion", "1.0", "id",
		       evid, "source", src, "type", "storefront.order.created", "subject", subject,
		       "time", now, "datacontenttype", "application/json", "data", data);
	sim_outbox_emit(s->outbox, ev);
	json_decref(ev);
	json_object_set_new(data, "sold_here", json_true());
	json_object_set_new(s->orders, id, data);
	s->sold++;
	sim_resp_json(r, 201, json_pack("{s:O, s:s}", "order", data, "event_id", evid));
out:
	json_decref(outl);
	free(w);
}

/* ---------- wiring ---------- */

/* "/admin/api/2024-01/orders/1.json" -> "/admin/api/orders/1" (Shopify's versioned paths). */
static void normalize(const char *in, char *out, size_t len)
{
	const char *p = in;

	if (!strncmp(p, "/admin/api/", 11) && isdigit((unsigned char)p[11]) &&
	    strlen(p) > 19 && p[15] == '-' && p[18] == '/')
		snprintf(out, len, "/admin/api/%s", p + 19);
	else
		snprintf(out, len, "%s", p);
	len = strlen(out);
	if (len > 5 && !strcmp(out + len - 5, ".json"))
		out[len - 5] = '\0';
}

static void sf_handle(void *ctx, sim_req_t *req, sim_resp_t *r)
{
	sf_t *s = ctx;
	char path[1024], seg[3][128];
	const char *m = req->method;
	int n;

	normalize(req->path, path, sizeof(path));
	if (!strcmp(path, "/checkout")) {
		if (!strcmp(m, "POST"))
			checkout(s, req, r);
		else
			sim_resp_error(r, 405, "method_not_allowed", "%s not allowed here", m);
		return;
	}
	if (strncmp(path, "/admin/api/", 11) != 0 || !rate_limit(s, req, r))
		return;
	if (!strcmp(path, "/admin/api/inventory/set_quantities")) {
		if (!strcmp(m, "POST"))
			set_quantities(s, req, r);
		else
			sim_resp_error(r, 405, "method_not_allowed", "%s not allowed here", m);
	} else if (!strcmp(path, "/admin/api/inventory_levels")) {
		if (!strcmp(m, "GET"))
			inventory_levels(s, req, r);
		else
			sim_resp_error(r, 405, "method_not_allowed", "%s not allowed here", m);
	} else if ((n = sim_path_split(path, "/admin/api/orders", seg, 2)) >= 1 && n <= 2) {
		json_t *o = order_get(s, seg[0], false);
		if (n == 1 && !strcmp(m, "PUT"))
			order_update(s, seg[0], req, r);
		else if (n == 1 && !strcmp(m, "GET") && o)
			sim_resp_json(r, 200, json_pack("{s:O}", "order", o));
		else if (n == 1 && !strcmp(m, "GET"))
			sim_resp_error(r, 404, "order_not_found", "no order '%s'", seg[0]);
		else if (n == 2 && !strcmp(seg[1], "fulfillments") && !strcmp(m, "POST"))
			fulfillment_create(s, seg[0], req, r);
		else if (n == 2 && !strcmp(seg[1], "fulfillments") && !strcmp(m, "GET")) {
			json_t *list = json_array(), *f;
			size_t i;
			json_array_foreach(s->fulfillments, i, f)
				if (!strcmp(json_string_value(json_object_get(f, "order_id")), seg[0]))
					json_array_append(list, f);
			sim_resp_json(r, 200, json_pack("{s:o}", "fulfillments", list));
		} else if (n == 1 || !strcmp(seg[1], "fulfillments"))
			sim_resp_error(r, 405, "method_not_allowed", "%s not allowed here", m);
	}
}

static void sf_state(void *ctx, json_t *out)
{
	sf_t *s = ctx;
	json_t *dups = json_array(), *v, *rl = json_object();
	const char *k;

	json_object_foreach(s->ful_by_order, k, v)
		if (json_integer_value(v) > 1)
			json_array_append_new(dups, json_string(k));
	for (int i = 0; i < s->nshops; i++)
		json_object_set_new(rl, s->shops[i].shop,
				    json_pack("{s:f, s:f, s:f}", "level", s->shops[i].b.level,
					      "size", s->bucket_size, "leak_per_s", s->leak_rate));
	json_object_set_new(
		out, "counts",
		json_pack("{s:I, s:I, s:I, s:I, s:I, s:O, s:O, s:o}", "inventory_levels",
			  (json_int_t)json_object_size(s->levels), "orders",
			  (json_int_t)json_object_size(s->orders), "checkouts_sold",
			  (json_int_t)s->sold, "checkouts_refused", (json_int_t)s->refused,
			  "fulfillments", (json_int_t)json_array_size(s->fulfillments),
			  "fulfillments_by_order", s->ful_by_order, "order_updates_by_order",
			  s->upd_by_order, "duplicate_fulfillments", dups));
	json_object_set_new(out, "inventory_levels", values(s->levels));
	json_object_set_new(out, "orders", values(s->orders));
	json_object_set(out, "fulfillments", s->fulfillments);
	json_object_set_new(out, "rate_limits", rl);
}

static void sf_reset(void *ctx)
{
	sf_clear(ctx);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: baton-sim-storefront [options]\n"
		"\n"
		"A TEST TOOL: simulates a storefront shaped like Shopify's Admin API for baton's\n"
		"tests, demo and benchmarks. It keeps everything in memory and injects faults on\n"
		"request. Never point it at real data.\n"
		"\n"
		"Routes: POST /admin/api/inventory/set_quantities (compare-and-set),\n"
		"GET /admin/api/inventory_levels, PUT /admin/api/orders/{id},\n"
		"POST|GET /admin/api/orders/{id}/fulfillments, POST /checkout (emits\n"
		"storefront.order.created); inspection under /_sim (state, requests, events, reset,\n"
		"faults). /admin/api/* is rate limited per X-Shopify-Shop-Domain. See\n"
		"tools/sim/README.md.\n"
		"\n"
		"options:\n%s"
		"  --bucket-size N      leaky bucket size per shop (default 40)\n"
		"  --leak-rate R        requests leaked per second (default 2)\n"
		"  --channel NAME       default sales channel; events come from storefront/NAME\n"
		"                       (default shop-eu)\n"
		"  --currency CODE      default currency (default EUR)\n"
		"  --tax-rate PCT       tax rate applied by the checkout (default 21)\n"
		"  -h, --help           this help\n",
		sim_cli_help);
}

static int num_arg(const char *v, double lo, double hi, double *out)
{
	char *end;

	*out = strtod(v, &end);
	return *end || !*v || *out < lo || *out > hi ? -1 : 0;
}

int main(int argc, char **argv)
{
	sim_cli_t cli;
	sf_t s = {0};
	sim_server_opts_t so = {0};
	sim_app_t app = {"baton-sim-storefront", &s, sf_handle, sf_state, sf_reset};
	sim_server_t *srv;
	double tax = 21;

	sim_cli_defaults(&cli);
	s.channel = "shop-eu";
	s.currency = "EUR";
	s.bucket_size = 40;
	s.leak_rate = 2;
	for (int i = 1; i < argc;) {
		int used = sim_cli_parse(&cli, argc, argv, i);
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (used < 0)
			return 2;
		if (used > 0) {
			i += used;
			continue;
		}
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		}
		if (v && !strcmp(a, "--bucket-size") && !num_arg(v, 1, 1e6, &s.bucket_size))
			;
		else if (v && !strcmp(a, "--leak-rate") && !num_arg(v, 0.001, 1e6, &s.leak_rate))
			;
		else if (v && !strcmp(a, "--tax-rate") && !num_arg(v, 0, 100, &tax))
			;
		else if (v && !strcmp(a, "--channel"))
			s.channel = v;
		else if (v && !strcmp(a, "--currency") && strlen(v) == 3)
			s.currency = v;
		else {
			fprintf(stderr, "baton-sim-storefront: bad option or value '%s'\n", a);
			usage(stderr);
			return 2;
		}
		i += 2;
	}
	s.tax_bp = (int)lround(tax * 100);
	sim_signals_block();
	sf_clear(&s);
	s.outbox = sim_outbox_new(cli.amqp_url, app.name, "baton.events");
	so.listen = cli.listen;
	so.port_file = cli.port_file;
	so.faults_file = cli.faults_file;
	so.seed = cli.seed;
	so.threads = cli.threads;
	srv = sim_server_start(&app, s.outbox, &so);
	if (!srv) {
		sim_outbox_free(s.outbox, 0);
		return 1;
	}
	sim_wait_for_signal();
	sim_server_stop(srv);
	sim_outbox_free(s.outbox, 5);
	json_t *all[] = {s.levels, s.items, s.item_skus, s.orders, s.fulfillments, s.ful_by_order,
			 s.upd_by_order};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		json_decref(all[i]);
	return 0;
}
