/* baton-sim-erp — a REST ERP simulator (TEST TOOL): items, sales orders (Idempotency-Key,
 * lookup by external reference, update, cancel refused once shipped), stock positions that emit
 * erp.stock.changed with an increasing sequence, shipments, customers and journal entries. */
#include "sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct erp {
	const char *source;     /* CloudEvents source of emitted events */
	bool strict_items;      /* refuse order lines whose SKU is not in the item master */
	sim_outbox_t *outbox;
	json_t *items;          /* sku -> item */
	json_t *orders;         /* id -> order */
	json_t *order_list;     /* orders in creation order (borrowed from `orders`) */
	json_t *by_ref;         /* external_ref -> [order ids] */
	json_t *idem;           /* "<route> <key>" -> {"request", "status", "response"} */
	json_t *stock;          /* "sku|location" -> position */
	json_t *shipments;      /* [shipment] */
	json_t *ship_by_order;  /* order id -> count */
	json_t *customers;      /* [customer] */
	json_t *cust_by_email;  /* email -> customer */
	json_t *journal;        /* [entry] */
	json_t *journal_by_ref; /* reference -> count */
	uint64_t next_order, next_ship, next_cust, next_je;
	uint64_t sequence;      /* stock sequence: never reset, so consumers can order changes */
} erp_t;

static void erp_clear(erp_t *e)
{
	json_t **all[] = {&e->items, &e->orders, &e->order_list, &e->by_ref, &e->idem,
			  &e->stock, &e->shipments, &e->ship_by_order, &e->customers,
			  &e->cust_by_email, &e->journal, &e->journal_by_ref};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		json_decref(*all[i]);
	e->items = json_object();
	e->orders = json_object();
	e->order_list = json_array();
	e->by_ref = json_object();
	e->idem = json_object();
	e->stock = json_object();
	e->shipments = json_array();
	e->ship_by_order = json_object();
	e->customers = json_array();
	e->cust_by_email = json_object();
	e->journal = json_array();
	e->journal_by_ref = json_object();
	e->next_order = e->next_ship = e->next_cust = e->next_je = 0;
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

/* ---------- idempotency (every create honours Idempotency-Key) ---------- */

/* Returns true when the request was answered from the idempotency store. */
static bool idem_replay(erp_t *e, const char *route, sim_req_t *req, json_t *body, sim_resp_t *r,
			char *key, size_t keylen)
{
	const char *k = sim_req_header(req, "Idempotency-Key");
	json_t *rec;

	key[0] = '\0';
	if (!k || !*k)
		return false;
	snprintf(key, keylen, "%s %s", route, k);
	rec = json_object_get(e->idem, key);
	if (!rec)
		return false;
	if (!json_equal(json_object_get(rec, "request"), body)) {
		sim_resp_error(r, 422, "idempotency_key_reused",
			       "Idempotency-Key '%s' was used with a different request body", k);
		return true;
	}
	/* Same key, same body: the same document again, 200 instead of 201. */
	sim_resp_json(r, 200, json_deep_copy(json_object_get(rec, "response")));
	sim_resp_header(r, "Idempotent-Replayed", "true");
	return true;
}

static void idem_store(erp_t *e, const char *key, json_t *body, const sim_resp_t *r)
{
	if (!key[0] || r->status != 201)
		return;
	json_object_set_new(e->idem, key,
			    json_pack("{s:O, s:o}", "request", body, "response",
				      json_deep_copy(r->body)));
}

/* ---------- validation ---------- */

static bool check_obj(const json_t *o, const char *key, sim_resp_t *r)
{
	json_t *v = json_object_get(o, key);

	if (v && !json_is_object(v) && !json_is_null(v)) {
		sim_resp_error(r, 400, "field_invalid", "'%s' must be an object", key);
		return false;
	}
	return true;
}

/* Order lines: [{"sku","quantity","unit_price","discount"?,"tax"?,"line_id"?}]. *total gets
 * the sum of quantity * unit_price - discount + tax. */
static bool check_lines(erp_t *e, const json_t *lines, int64_t *total, sim_resp_t *r)
{
	size_t i;
	json_t *l;

	*total = 0;
	if (!json_is_array(lines) || json_array_size(lines) == 0 || json_array_size(lines) > 500) {
		sim_resp_error(r, 400, "field_invalid", "'lines' must be an array of 1 to 500 lines");
		return false;
	}
	json_array_foreach(lines, i, l) {
		const char *sku;
		int64_t q = 0, price = 0, disc = 0, tax = 0;
		if (!json_is_object(l)) {
			sim_resp_error(r, 400, "field_invalid", "lines[%zu] must be an object", i);
			return false;
		}
		if (!sim_get_str(l, "sku", true, &sku, r) ||
		    !sim_get_int(l, "quantity", true, 1, &q, NULL, r) ||
		    !sim_get_money(l, "unit_price", true, &price, r) ||
		    !sim_get_money(l, "discount", false, &disc, r) ||
		    !sim_get_money(l, "tax", false, &tax, r)) {
			json_t *err = json_object_get(r->body, "error");
			char msg[600];
			snprintf(msg, sizeof(msg), "lines[%zu]: %s", i,
				 json_string_value(json_object_get(err, "message")));
			json_object_set_new(err, "message", json_string(msg));
			return false;
		}
		if (e->strict_items && !json_object_get(e->items, sku)) {
			sim_resp_error(r, 422, "unknown_item", "lines[%zu]: no item with sku '%s'", i,
				       sku);
			return false;
		}
		*total += q * price - disc + tax;
	}
	return true;
}

static json_t *new_event(erp_t *e, const char *type, const char *subject, json_t *data)
{
	char id[37], now[32];

	sim_uuid(id);
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o}", "specversion", "1.0", "id",
			 id, "source", e->source, "type", type, "subject", subject, "time",
			 sim_rfc3339(now, sizeof(now)), "datacontenttype", "application/json",
			 "data", data);
}

/* ---------- items ---------- */

static void items_route(erp_t *e, sim_req_t *req, sim_resp_t *r, char seg[][128], int n)
{
	json_t *b, *it;
	const char *sku, *name, *unit;
	int64_t price = 0;
	char buf[32], now[32];

	if (n == 0 && !strcmp(req->method, "GET")) {
		sim_resp_json(r, 200, json_pack("{s:o}", "items", values(e->items)));
	} else if (n == 0 && !strcmp(req->method, "POST")) {
		if (!(b = sim_req_json(req, r)) || !sim_get_str(b, "sku", true, &sku, r) ||
		    !sim_get_str(b, "name", false, &name, r) ||
		    !sim_get_str(b, "unit", false, &unit, r) ||
		    !sim_get_money(b, "price", false, &price, r))
			return;
		if (json_object_get(e->items, sku)) {
			sim_resp_error(r, 409, "item_exists", "item '%s' already exists", sku);
			return;
		}
		it = json_pack("{s:s, s:s, s:s, s:s, s:s}", "sku", sku, "name", name ? name : sku,
			       "unit", unit ? unit : "pcs", "price",
			       sim_money_format(price, buf, sizeof(buf)), "created_at",
			       sim_rfc3339(now, sizeof(now)));
		json_object_set(e->items, sku, it);
		sim_resp_json(r, 201, it);
	} else if (n == 1 && !strcmp(req->method, "GET")) {
		it = json_object_get(e->items, seg[0]);
		if (it)
			sim_resp_json(r, 200, json_incref(it));
		else
			sim_resp_error(r, 404, "item_not_found", "no item with sku '%s'", seg[0]);
	} else if (n <= 1) {
		sim_resp_error(r, 405, "method_not_allowed", "%s not allowed here", req->method);
	}
}

/* ---------- sales orders ---------- */

static const char *const order_fields[] = {"external_ref", "channel", "currency", "customer",
					   "customer_id", "lines", "shipping_address",
					   "billing_address", "shipping", "totals", "note",
					   "placed_at", "attributes", NULL};

static bool known_field(const char *k, const char *const *fields)
{
	for (; *fields; fields++)
		if (!strcmp(k, *fields))
			return true;
	return false;
}

static void order_create(erp_t *e, sim_req_t *req, sim_resp_t *r)
{
	json_t *b = sim_req_json(req, r), *o, *v, *ids;
	const char *ref, *channel, *currency, *cust_id, *k, *note;
	char key[300], id[32], buf[32], now[32];
	int64_t total;

	if (!b || idem_replay(e, "sales_orders", req, b, r, key, sizeof(key)))
		return;
	if (!sim_get_str(b, "external_ref", true, &ref, r) ||
	    !sim_get_str(b, "channel", false, &channel, r) ||
	    !sim_get_str(b, "currency", false, &currency, r) ||
	    !sim_get_str(b, "customer_id", false, &cust_id, r) ||
	    !sim_get_str(b, "note", false, &note, r) || !check_obj(b, "customer", r) ||
	    !check_obj(b, "shipping_address", r) || !check_obj(b, "billing_address", r) ||
	    !check_obj(b, "totals", r) || !check_lines(e, json_object_get(b, "lines"), &total, r))
		return;
	if (currency && strlen(currency) != 3) {
		sim_resp_error(r, 400, "field_invalid", "'currency' must be an ISO 4217 code");
		return;
	}
	json_object_foreach(b, k, v) {
		if (!known_field(k, order_fields)) {
			sim_resp_error(r, 400, "field_unknown", "unknown field '%s'", k);
			return;
		}
	}
	snprintf(id, sizeof(id), "SO-%06llu", (unsigned long long)++e->next_order);
	o = json_deep_copy(b);
	json_object_set_new(o, "id", json_string(id));
	json_object_set_new(o, "status", json_string("open"));
	if (!currency)
		json_object_set_new(o, "currency", json_string("EUR"));
	json_object_set_new(o, "lines_total", json_string(sim_money_format(total, buf, sizeof(buf))));
	json_object_set_new(o, "revision", json_integer(1));
	json_object_set_new(o, "created_at", json_string(sim_rfc3339(now, sizeof(now))));
	json_object_set_new(o, "updated_at", json_string(now));
	json_object_set(e->orders, id, o);
	json_array_append(e->order_list, o);
	ids = json_object_get(e->by_ref, ref);
	if (!ids)
		json_object_set_new(e->by_ref, ref, ids = json_array());
	json_array_append_new(ids, json_string(id));
	sim_resp_json(r, 201, json_deep_copy(o));
	sim_resp_header(r, "Location", "/api/sales_orders/%s", id);
	json_decref(o);
	idem_store(e, key, b, r);
}

static void order_patch(erp_t *e, json_t *o, sim_req_t *req, sim_resp_t *r)
{
	json_t *b = sim_req_json(req, r), *v;
	const char *k, *status = json_string_value(json_object_get(o, "status"));
	int64_t total;
	char buf[32], now[32];

	if (!b)
		return;
	json_object_foreach(b, k, v) {
		if (!strcmp(k, "external_ref") || !known_field(k, order_fields)) {
			sim_resp_error(r, 400, "field_readonly",
				       "field '%s' cannot be changed (or is unknown)", k);
			return;
		}
	}
	if (!check_obj(b, "customer", r) || !check_obj(b, "shipping_address", r) ||
	    !check_obj(b, "billing_address", r) || !check_obj(b, "totals", r))
		return;
	if (json_object_get(b, "lines") &&
	    !check_lines(e, json_object_get(b, "lines"), &total, r))
		return;
	if (!strcmp(status, "shipped") || !strcmp(status, "cancelled")) {
		sim_resp_error(r, 409, !strcmp(status, "shipped") ? "order_shipped"
								  : "order_cancelled",
			       "sales order %s is %s and cannot be changed",
			       json_string_value(json_object_get(o, "id")), status);
		return;
	}
	json_object_update(o, b);
	if (json_object_get(b, "lines"))
		json_object_set_new(o, "lines_total",
				    json_string(sim_money_format(total, buf, sizeof(buf))));
	json_object_set_new(o, "revision",
			    json_integer(json_integer_value(json_object_get(o, "revision")) + 1));
	json_object_set_new(o, "updated_at", json_string(sim_rfc3339(now, sizeof(now))));
	sim_resp_json(r, 200, json_deep_copy(o));
}

static void order_cancel(erp_t *e, json_t *o, sim_req_t *req, sim_resp_t *r)
{
	const char *status = json_string_value(json_object_get(o, "status"));
	const char *reason = NULL;
	char now[32];

	if (req->body_len) {
		json_t *b = sim_req_json(req, r);
		if (!b || !sim_get_str(b, "reason", false, &reason, r))
			return;
	}
	if (!strcmp(status, "shipped")) {
		sim_resp_error(r, 409, "order_shipped", "sales order %s is shipped: it cannot be cancelled",
			       json_string_value(json_object_get(o, "id")));
		return;
	}
	if (strcmp(status, "cancelled") != 0) {
		json_object_set_new(o, "status", json_string("cancelled"));
		json_object_set_new(o, "cancel_reason", reason ? json_string(reason) : json_null());
		json_object_set_new(o, "cancelled_at", json_string(sim_rfc3339(now, sizeof(now))));
		json_object_set_new(o, "updated_at", json_string(now));
	}
	sim_resp_json(r, 200, json_deep_copy(o));
}

/* Marks o shipped with a new shipment; an already shipped order keeps its first shipment. */
static json_t *do_ship(erp_t *e, json_t *o, const char *tracking, const char *carrier,
		       sim_resp_t *r)
{
	const char *status = json_string_value(json_object_get(o, "status"));
	const char *oid = json_string_value(json_object_get(o, "id"));
	char id[32], now[32];
	json_t *s;

	if (!strcmp(status, "cancelled")) {
		sim_resp_error(r, 409, "order_cancelled", "sales order %s is cancelled", oid);
		return NULL;
	}
	snprintf(id, sizeof(id), "SH-%06llu", (unsigned long long)++e->next_ship);
	s = json_pack("{s:s, s:s, s:s*, s:s*, s:s}", "id", id, "sales_order_id", oid,
		      "tracking_number", tracking, "carrier", carrier, "shipped_at",
		      sim_rfc3339(now, sizeof(now)));
	json_array_append(e->shipments, s);
	bump(e->ship_by_order, oid);
	if (strcmp(status, "shipped") != 0) {
		json_object_set_new(o, "status", json_string("shipped"));
		json_object_set_new(o, "shipment_id", json_string(id));
		json_object_set_new(o, "shipped_at", json_string(now));
		json_object_set_new(o, "updated_at", json_string(now));
	}
	return s;
}

static void order_ship(erp_t *e, json_t *o, sim_req_t *req, sim_resp_t *r)
{
	const char *tracking = NULL, *carrier = NULL;
	json_t *s;

	if (req->body_len) {
		json_t *b = sim_req_json(req, r);
		if (!b || !sim_get_str(b, "tracking_number", false, &tracking, r) ||
		    !sim_get_str(b, "carrier", false, &carrier, r))
			return;
	}
	if (!strcmp(json_string_value(json_object_get(o, "status")), "shipped")) {
		sim_resp_json(r, 200, json_deep_copy(o)); /* shipping twice changes nothing */
		return;
	}
	s = do_ship(e, o, tracking, carrier, r);
	if (!s)
		return;
	json_decref(s);
	sim_resp_json(r, 200, json_deep_copy(o));
}

static void orders_route(erp_t *e, sim_req_t *req, sim_resp_t *r, char seg[][128], int n)
{
	json_t *o;

	if (n == 0 && !strcmp(req->method, "POST")) {
		order_create(e, req, r);
	} else if (n == 0 && !strcmp(req->method, "GET")) {
		const char *ref = sim_req_query(req, "external_ref");
		json_t *list = json_array(), *ids, *id;
		size_t i;
		if (ref) {
			ids = json_object_get(e->by_ref, ref);
			json_array_foreach(ids, i, id)
				json_array_append(list,
						  json_object_get(e->orders, json_string_value(id)));
		} else {
			json_array_extend(list, e->order_list);
		}
		sim_resp_json(r, 200, json_pack("{s:o}", "sales_orders", list));
	} else if (n == 0) {
		sim_resp_error(r, 405, "method_not_allowed", "%s not allowed here", req->method);
	} else if (n == 1 || n == 2) {
		o = json_object_get(e->orders, seg[0]);
		if (!o) {
			sim_resp_error(r, 404, "order_not_found", "no sales order '%s'", seg[0]);
		} else if (n == 1 && !strcmp(req->method, "GET")) {
			sim_resp_json(r, 200, json_deep_copy(o));
		} else if (n == 1 && !strcmp(req->method, "PATCH")) {
			order_patch(e, o, req, r);
		} else if (n == 2 && !strcmp(seg[1], "cancel") && !strcmp(req->method, "POST")) {
			order_cancel(e, o, req, r);
		} else if (n == 2 && !strcmp(seg[1], "ship") && !strcmp(req->method, "POST")) {
			order_ship(e, o, req, r);
		} else if (n == 1 || !strcmp(seg[1], "cancel") || !strcmp(seg[1], "ship")) {
			sim_resp_error(r, 405, "method_not_allowed", "%s not allowed here",
				       req->method);
		}
	}
}

/* ---------- stock ---------- */

static void stock_put(erp_t *e, const char *sku, const char *loc, sim_req_t *req, sim_resp_t *r)
{
	json_t *b = sim_req_json(req, r), *pos, *ev;
	char key[512], now[32], subject[512];
	static const char *const f[] = {"on_hand", "allocated", "reserved", "unavailable"};
	int64_t v[4] = {0};
	bool present[4], changed = false;

	if (!b)
		return;
	snprintf(key, sizeof(key), "%s|%s", sku, loc);
	pos = json_object_get(e->stock, key);
	for (int i = 0; i < 4; i++) {
		if (!sim_get_int(b, f[i], i == 0, 0, &v[i], &present[i], r))
			return;
		if (!present[i])
			v[i] = json_integer_value(json_object_get(pos, f[i]));
	}
	if (!pos) {
		pos = json_pack("{s:s, s:s}", "sku", sku, "location", loc);
		json_object_set_new(e->stock, key, pos);
		changed = true;
	}
	for (int i = 0; i < 4; i++)
		changed |= json_integer_value(json_object_get(pos, f[i])) != v[i];
	if (changed) {
		for (int i = 0; i < 4; i++)
			json_object_set_new(pos, f[i], json_integer(v[i]));
		json_object_set_new(pos, "sequence", json_integer((json_int_t)++e->sequence));
		json_object_set_new(pos, "as_of", json_string(sim_rfc3339(now, sizeof(now))));
		snprintf(subject, sizeof(subject), "sku/%s", sku);
		ev = new_event(e, "erp.stock.changed", subject, json_deep_copy(pos));
		sim_outbox_emit(e->outbox, ev);
		json_decref(ev);
	}
	ev = json_deep_copy(pos);
	json_object_set_new(ev, "available", json_integer(v[0] - v[1] - v[2] - v[3]));
	json_object_set_new(ev, "changed", json_boolean(changed));
	sim_resp_json(r, 200, ev);
}

static void stock_route(erp_t *e, sim_req_t *req, sim_resp_t *r, char seg[][128], int n)
{
	if (n == 2 && !strcmp(req->method, "PUT")) {
		stock_put(e, seg[0], seg[1], req, r);
	} else if (n == 2 && !strcmp(req->method, "GET")) {
		char key[512];
		json_t *pos;
		snprintf(key, sizeof(key), "%s|%s", seg[0], seg[1]);
		pos = json_object_get(e->stock, key);
		if (pos)
			sim_resp_json(r, 200, json_incref(pos));
		else
			sim_resp_error(r, 404, "stock_not_found", "no stock for %s at %s", seg[0],
				       seg[1]);
	} else if (n == 0 && !strcmp(req->method, "GET")) {
		const char *sku = sim_req_query(req, "sku"), *loc = sim_req_query(req, "location");
		json_t *list = json_array(), *p;
		const char *k;
		json_object_foreach(e->stock, k, p) {
			if (sku && strcmp(sku, json_string_value(json_object_get(p, "sku"))))
				continue;
			if (loc && strcmp(loc, json_string_value(json_object_get(p, "location"))))
				continue;
			json_array_append(list, p);
		}
		sim_resp_json(r, 200, json_pack("{s:o}", "stock", list));
	} else if (n == 0 || n == 2) {
		sim_resp_error(r, 405, "method_not_allowed", "%s not allowed here", req->method);
	}
}

/* ---------- shipments, customers, journal entries ---------- */

static void shipments_route(erp_t *e, sim_req_t *req, sim_resp_t *r, int n)
{
	json_t *b, *o, *s;
	const char *oid, *tracking, *carrier;
	char key[300];

	if (n == 0 && !strcmp(req->method, "GET")) {
		sim_resp_json(r, 200, json_pack("{s:O}", "shipments", e->shipments));
	} else if (n == 0 && !strcmp(req->method, "POST")) {
		b = sim_req_json(req, r);
		if (!b || idem_replay(e, "shipments", req, b, r, key, sizeof(key)))
			return;
		if (!sim_get_str(b, "sales_order_id", true, &oid, r) ||
		    !sim_get_str(b, "tracking_number", false, &tracking, r) ||
		    !sim_get_str(b, "carrier", false, &carrier, r))
			return;
		o = json_object_get(e->orders, oid);
		if (!o) {
			sim_resp_error(r, 422, "order_not_found", "no sales order '%s'", oid);
			return;
		}
		s = do_ship(e, o, tracking, carrier, r);
		if (!s)
			return;
		sim_resp_json(r, 201, s);
		idem_store(e, key, b, r);
	} else if (n == 0) {
		sim_resp_error(r, 405, "method_not_allowed", "%s not allowed here", req->method);
	}
}

static void customers_route(erp_t *e, sim_req_t *req, sim_resp_t *r, char seg[][128], int n)
{
	json_t *b, *c, *v;
	const char *email, *name, *phone, *ref;
	char key[300], id[32], now[32];
	size_t i;

	if (n == 0 && !strcmp(req->method, "GET")) {
		const char *q = sim_req_query(req, "email");
		json_t *list = json_array();
		if (q) {
			if ((c = json_object_get(e->cust_by_email, q)))
				json_array_append(list, c);
		} else {
			json_array_extend(list, e->customers);
		}
		sim_resp_json(r, 200, json_pack("{s:o}", "customers", list));
	} else if (n == 0 && !strcmp(req->method, "POST")) {
		b = sim_req_json(req, r);
		if (!b || idem_replay(e, "customers", req, b, r, key, sizeof(key)))
			return;
		if (!sim_get_str(b, "email", true, &email, r) ||
		    !sim_get_str(b, "name", false, &name, r) ||
		    !sim_get_str(b, "phone", false, &phone, r) ||
		    !sim_get_str(b, "external_ref", false, &ref, r) ||
		    !check_obj(b, "address", r))
			return;
		if (!strchr(email, '@')) {
			sim_resp_error(r, 400, "field_invalid", "'email' is not an email address");
			return;
		}
		if ((c = json_object_get(e->cust_by_email, email))) {
			sim_resp_error(r, 409, "customer_exists", "a customer with this email exists");
			json_object_set(json_object_get(r->body, "error"), "customer_id",
					json_object_get(c, "id"));
			return;
		}
		snprintf(id, sizeof(id), "C-%06llu", (unsigned long long)++e->next_cust);
		c = json_deep_copy(b);
		json_object_set_new(c, "id", json_string(id));
		json_object_set_new(c, "created_at", json_string(sim_rfc3339(now, sizeof(now))));
		json_array_append(e->customers, c);
		json_object_set(e->cust_by_email, email, c);
		sim_resp_json(r, 201, json_deep_copy(c));
		json_decref(c);
		idem_store(e, key, b, r);
	} else if (n == 1 && !strcmp(req->method, "GET")) {
		json_array_foreach(e->customers, i, v) {
			if (!strcmp(json_string_value(json_object_get(v, "id")), seg[0])) {
				sim_resp_json(r, 200, json_deep_copy(v));
				return;
			}
		}
		sim_resp_error(r, 404, "customer_not_found", "no customer '%s'", seg[0]);
	} else if (n <= 1) {
		sim_resp_error(r, 405, "method_not_allowed", "%s not allowed here", req->method);
	}
}

static void journal_route(erp_t *e, sim_req_t *req, sim_resp_t *r, int n)
{
	json_t *b, *lines, *l, *je;
	const char *ref, *acct;
	char key[300], id[32], now[32], d[32], c[32];
	int64_t debit = 0, credit = 0;
	size_t i;

	if (n == 0 && !strcmp(req->method, "GET")) {
		sim_resp_json(r, 200, json_pack("{s:O}", "journal_entries", e->journal));
		return;
	}
	if (n != 0)
		return;
	if (strcmp(req->method, "POST") != 0) {
		sim_resp_error(r, 405, "method_not_allowed", "%s not allowed here", req->method);
		return;
	}
	b = sim_req_json(req, r);
	if (!b || idem_replay(e, "journal_entries", req, b, r, key, sizeof(key)))
		return;
	if (!sim_get_str(b, "reference", true, &ref, r))
		return;
	lines = json_object_get(b, "lines");
	if (!json_is_array(lines) || json_array_size(lines) < 2) {
		sim_resp_error(r, 400, "field_invalid", "'lines' must be an array of at least 2 lines");
		return;
	}
	json_array_foreach(lines, i, l) {
		int64_t dv = 0, cv = 0;
		if (!json_is_object(l) || !sim_get_str(l, "account", true, &acct, r) ||
		    !sim_get_money(l, "debit", false, &dv, r) ||
		    !sim_get_money(l, "credit", false, &cv, r)) {
			if (!r->status)
				sim_resp_error(r, 400, "field_invalid", "lines[%zu] must be an object",
					       i);
			return;
		}
		if (dv < 0 || cv < 0 || (dv > 0) == (cv > 0)) {
			sim_resp_error(r, 400, "field_invalid",
				       "lines[%zu] needs exactly one positive debit or credit", i);
			return;
		}
		debit += dv;
		credit += cv;
	}
	if (debit != credit) {
		sim_resp_error(r, 422, "unbalanced", "debits %s and credits %s differ",
			       sim_money_format(debit, d, sizeof(d)),
			       sim_money_format(credit, c, sizeof(c)));
		return;
	}
	snprintf(id, sizeof(id), "JE-%06llu", (unsigned long long)++e->next_je);
	je = json_deep_copy(b);
	json_object_set_new(je, "id", json_string(id));
	json_object_set_new(je, "total", json_string(sim_money_format(debit, d, sizeof(d))));
	json_object_set_new(je, "posted_at", json_string(sim_rfc3339(now, sizeof(now))));
	json_array_append(e->journal, je);
	bump(e->journal_by_ref, ref);
	sim_resp_json(r, 201, je);
	idem_store(e, key, b, r);
}

/* ---------- wiring ---------- */

static void erp_handle(void *ctx, sim_req_t *req, sim_resp_t *r)
{
	erp_t *e = ctx;
	char seg[3][128];
	int n;

	if ((n = sim_path_split(req->path, "/api/items", seg, 1)) >= 0 && n <= 1)
		items_route(e, req, r, seg, n);
	else if ((n = sim_path_split(req->path, "/api/sales_orders", seg, 2)) >= 0 && n <= 2)
		orders_route(e, req, r, seg, n);
	else if ((n = sim_path_split(req->path, "/api/stock", seg, 2)) >= 0 && n <= 2)
		stock_route(e, req, r, seg, n);
	else if ((n = sim_path_split(req->path, "/api/shipments", seg, 0)) == 0)
		shipments_route(e, req, r, n);
	else if ((n = sim_path_split(req->path, "/api/customers", seg, 1)) >= 0 && n <= 1)
		customers_route(e, req, r, seg, n);
	else if ((n = sim_path_split(req->path, "/api/journal_entries", seg, 0)) == 0)
		journal_route(e, req, r, n);
}

static void erp_state(void *ctx, json_t *out)
{
	erp_t *e = ctx;
	json_t *by_ref = json_object(), *dups = json_array(), *ids;
	const char *k;

	json_object_foreach(e->by_ref, k, ids) {
		json_object_set_new(by_ref, k, json_integer((json_int_t)json_array_size(ids)));
		if (json_array_size(ids) > 1)
			json_array_append_new(dups, json_string(k));
	}
	json_object_set_new(
		out, "counts",
		json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:O, s:O, s:I}", "items",
			  (json_int_t)json_object_size(e->items), "sales_orders",
			  (json_int_t)json_array_size(e->order_list), "stock_positions",
			  (json_int_t)json_object_size(e->stock), "shipments",
			  (json_int_t)json_array_size(e->shipments), "customers",
			  (json_int_t)json_array_size(e->customers), "journal_entries",
			  (json_int_t)json_array_size(e->journal), "sales_orders_by_external_ref",
			  by_ref, "duplicate_external_refs", dups, "shipments_by_order",
			  e->ship_by_order, "journal_entries_by_reference", e->journal_by_ref,
			  "stock_sequence", (json_int_t)e->sequence));
	json_object_set_new(out, "items", values(e->items));
	json_object_set(out, "sales_orders", e->order_list);
	json_object_set_new(out, "stock", values(e->stock));
	json_object_set(out, "shipments", e->shipments);
	json_object_set(out, "customers", e->customers);
	json_object_set(out, "journal_entries", e->journal);
}

static void erp_reset(void *ctx)
{
	erp_clear(ctx);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: baton-sim-erp [options]\n"
		"\n"
		"A TEST TOOL: simulates a REST ERP for baton's tests, demo and benchmarks. It keeps\n"
		"everything in memory and injects faults on request. Never point it at real data.\n"
		"\n"
		"Routes: /api/items, /api/sales_orders (Idempotency-Key), /api/sales_orders/{id}\n"
		"[/cancel|/ship], /api/stock[/{sku}/{location}], /api/shipments, /api/customers,\n"
		"/api/journal_entries; inspection under /_sim (state, requests, events, reset,\n"
		"faults). See tools/sim/README.md.\n"
		"\n"
		"options:\n%s"
		"  --source S           CloudEvents source of emitted events (default erp/sim)\n"
		"  --strict-items       refuse order lines whose SKU is not in the item master (422)\n"
		"  -h, --help           this help\n",
		sim_cli_help);
}

int main(int argc, char **argv)
{
	sim_cli_t cli;
	erp_t e = {0};
	sim_server_opts_t so = {0};
	sim_app_t app = {"baton-sim-erp", &e, erp_handle, erp_state, erp_reset};
	sim_server_t *srv;

	sim_cli_defaults(&cli);
	e.source = "erp/sim";
	for (int i = 1; i < argc;) {
		int used = sim_cli_parse(&cli, argc, argv, i);
		if (used < 0)
			return 2;
		if (used > 0) {
			i += used;
		} else if (!strcmp(argv[i], "--source") && i + 1 < argc) {
			e.source = argv[i + 1];
			i += 2;
		} else if (!strcmp(argv[i], "--strict-items")) {
			e.strict_items = true;
			i++;
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "baton-sim-erp: unknown option '%s'\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	sim_signals_block();
	erp_clear(&e);
	e.outbox = sim_outbox_new(cli.amqp_url, app.name, "baton.events");
	so.listen = cli.listen;
	so.port_file = cli.port_file;
	so.faults_file = cli.faults_file;
	so.seed = cli.seed;
	so.threads = cli.threads;
	srv = sim_server_start(&app, e.outbox, &so);
	if (!srv) {
		sim_outbox_free(e.outbox, 0);
		return 1;
	}
	sim_wait_for_signal();
	sim_server_stop(srv);
	sim_outbox_free(e.outbox, 5);
	json_t *all[] = {e.items, e.orders, e.order_list, e.by_ref, e.idem, e.stock,
			 e.shipments, e.ship_by_order, e.customers, e.cust_by_email, e.journal,
			 e.journal_by_ref};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		json_decref(all[i]);
	return 0;
}
