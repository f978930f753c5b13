/* orders.c — the pure business rules of the order flow. See orders.h. */
#include "orders.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "baton/money.h"
#include "baton/store.h"

/* ---------------------------------------------------------------------------------------- */
/* configuration                                                                            */

typedef struct problems {
	char *buf;
	size_t len, used;
	int n;
} problems_t;

static void problem(problems_t *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void problem(problems_t *p, const char *fmt, ...)
{
	va_list ap;
	int w;

	p->n++;
	if (!p->buf || p->used + 1 >= p->len)
		return;
	va_start(ap, fmt);
	w = vsnprintf(p->buf + p->used, p->len - p->used, fmt, ap);
	va_end(ap);
	if (w < 0)
		return;
	p->used += (size_t)w;
	if (p->used >= p->len - 1)
		p->used = p->len - 2;
	p->buf[p->used++] = '\n';
	p->buf[p->used] = '\0';
}

static void parse_duration(problems_t *p, const json_t *obj, const char *key, const char *path,
			   unsigned *out)
{
	json_t *v = json_object_get(obj, key);
	unsigned ms;

	if (!v)
		return;
	if (!json_is_string(v) || baton_duration_parse(json_string_value(v), &ms) || ms == 0)
		problem(p, "BATON_CONFIG %s: expected a duration such as \"30s\", \"30m\" or \"2h\"",
			path);
	else
		*out = ms;
}

static void parse_bool(problems_t *p, const json_t *obj, const char *key, const char *path,
		       int *out)
{
	json_t *v = json_object_get(obj, key);

	if (!v)
		return;
	if (!json_is_boolean(v))
		problem(p, "BATON_CONFIG %s: expected true or false", path);
	else
		*out = json_is_true(v);
}

static void parse_statuses(problems_t *p, const json_t *obj, const char *key, const char *path,
			   json_t **out)
{
	json_t *v = json_object_get(obj, key), *s;
	size_t i;

	if (!v)
		return;
	if (!json_is_array(v)) {
		problem(p, "BATON_CONFIG %s: expected an array of financial statuses", path);
		return;
	}
	json_array_foreach(v, i, s) {
		if (!json_is_string(s) || !json_string_length(s)) {
			problem(p, "BATON_CONFIG %s[%zu]: expected a non-empty string", path, i);
			return;
		}
	}
	json_decref(*out);
	*out = json_incref(v);
}

static void parse_sku_map(problems_t *p, json_t *v, const char *path, orders_config_t *c)
{
	const char *ch, *sku;
	json_t *m, *item;

	if (!json_is_object(v)) {
		problem(p, "BATON_CONFIG %s: expected {\"<channel>\": {\"<sku>\": \"<ERP item>\"}}",
			path);
		return;
	}
	json_object_foreach(v, ch, m) {
		if (!json_is_object(m)) {
			problem(p, "BATON_CONFIG %s.%s: expected an object of SKU -> ERP item", path,
				ch);
			continue;
		}
		json_object_foreach(m, sku, item)
			if (!json_is_string(item) || !json_string_length(item))
				problem(p, "BATON_CONFIG %s.%s.%s: expected a non-empty string (the "
					   "ERP item)", path, ch, sku);
	}
	json_decref(c->sku_map);
	c->sku_map = json_incref(v);
}

static void parse_payment(problems_t *p, const json_t *pay, orders_config_t *c)
{
	const char *k;
	json_t *v;

	if (!json_is_object(pay)) {
		problem(p, "BATON_CONFIG orders.payment: expected an object");
		return;
	}
	json_object_foreach((json_t *)pay, k, v)
		if (strcmp(k, "import") && strcmp(k, "wait") && strcmp(k, "pending_max"))
			problem(p, "BATON_CONFIG orders.payment.%s: unknown member (known: import, "
				   "wait, pending_max)", k);
	parse_statuses(p, pay, "import", "orders.payment.import", &c->pay_import);
	parse_statuses(p, pay, "wait", "orders.payment.wait", &c->pay_wait);
	parse_duration(p, pay, "pending_max", "orders.payment.pending_max", &c->pending_max_ms);
}

static void parse_orders(problems_t *p, const json_t *o, orders_config_t *c)
{
	static const char *const known[] = {"sku_map", "item_master_lookup", "payment",
					    "not_found_max", "lease", "total_tolerance_minor",
					    "writeback", NULL};
	const char *k;
	json_t *v;

	json_object_foreach((json_t *)o, k, v) {
		const char *const *q = known;
		while (*q && strcmp(*q, k))
			q++;
		if (!*q)
			problem(p, "BATON_CONFIG orders.%s: unknown member (known: sku_map, "
				   "item_master_lookup, payment, not_found_max, lease, "
				   "total_tolerance_minor, writeback)", k);
	}
	if ((v = json_object_get(o, "sku_map")))
		parse_sku_map(p, v, "orders.sku_map", c);
	parse_bool(p, o, "item_master_lookup", "orders.item_master_lookup", &c->item_lookup);
	if ((v = json_object_get(o, "payment")))
		parse_payment(p, v, c);
	parse_duration(p, o, "not_found_max", "orders.not_found_max", &c->not_found_max_ms);
	parse_duration(p, o, "lease", "orders.lease", &c->lease_ms);
	if ((v = json_object_get(o, "total_tolerance_minor"))) {
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) > 100000)
			problem(p, "BATON_CONFIG orders.total_tolerance_minor: expected an integer "
				   "0..100000 (minor units of the order's currency)");
		else
			c->tolerance = json_integer_value(v);
	}
	parse_bool(p, o, "writeback", "orders.writeback", &c->writeback);
}

int orders_config_parse(const baton_config_t *cfg, orders_config_t *c, char *errs, size_t len)
{
	problems_t p = {errs, len, 0, 0};
	json_t *o = cfg->file ? json_object_get(cfg->file, "orders") : NULL;

	if (errs && len)
		errs[0] = '\0';
	memset(c, 0, sizeof(*c));
	c->sku_map = json_object();
	c->item_lookup = 1;
	c->pay_import = json_pack("[s, s]", "paid", "authorized");
	c->pay_wait = json_pack("[s]", "pending");
	c->pending_max_ms = 30 * 60 * 1000;
	c->not_found_max_ms = 2 * 60 * 1000;
	c->lease_ms = 60 * 1000;
	c->tolerance = 1;
	c->writeback = 1;
	/* A map shared by several flows may sit at the top level of the file. */
	if (cfg->file && json_object_get(cfg->file, "sku_map"))
		parse_sku_map(&p, json_object_get(cfg->file, "sku_map"), "sku_map", c);
	if (o && !json_is_object(o))
		problem(&p, "BATON_CONFIG orders: expected an object");
	else if (o)
		parse_orders(&p, o, c);
	if (!cfg->erp_url)
		problem(&p, "BATON_ERP_URL: required by baton-orders (the ERP's base URL)");
	if (c->writeback && !cfg->storefront_url)
		problem(&p, "BATON_STOREFRONT_URL: required by baton-orders for the write-back of "
			    "ERP numbers (or set \"orders\": {\"writeback\": false} in BATON_CONFIG)");
	if (c->lease_ms <= cfg->http_timeout_ms)
		problem(&p, "BATON_CONFIG orders.lease: must be longer than BATON_HTTP_TIMEOUT "
			    "(%u ms), so that a lease outlives the ERP call it guards",
			cfg->http_timeout_ms);
	return p.n;
}

void orders_config_free(orders_config_t *c)
{
	json_decref(c->sku_map);
	json_decref(c->pay_import);
	json_decref(c->pay_wait);
	memset(c, 0, sizeof(*c));
}

/* ---------------------------------------------------------------------------------------- */
/* rules                                                                                    */

static int in_list(const json_t *a, const char *s)
{
	size_t i;
	json_t *v;

	json_array_foreach(a, i, v)
		if (!strcmp(json_string_value(v), s))
			return 1;
	return 0;
}

orders_payment_t orders_payment_rule(const orders_config_t *c, const char *st)
{
	if (st && in_list(c->pay_import, st))
		return ORDERS_PAY_IMPORT;
	if (st && in_list(c->pay_wait, st))
		return ORDERS_PAY_WAIT;
	return ORDERS_PAY_REFUSE;
}

const char *orders_sku_lookup(const orders_config_t *c, const char *channel, const char *sku)
{
	return json_string_value(json_object_get(json_object_get(c->sku_map, channel), sku));
}

void orders_ref(const baton_order_t *o, char *out, size_t len)
{
	snprintf(out, len, "%s:%s", o->channel, o->order_id);
}

static json_t *money(const baton_order_t *o, int64_t v)
{
	char b[40];

	baton_money_format(v, o->decimals, b, sizeof(b));
	return json_string(b);
}

json_t *orders_erp_body(const baton_order_t *o, const char *const *items, int create)
{
	json_t *canon = baton_order_to_json(o), *lines = json_array(), *b;
	char ref[200], ver[24];

	if (!canon || !lines)
		goto oom;
	for (size_t i = 0; i < o->n_lines; i++) {
		const baton_order_line_t *l = &o->lines[i];
		json_array_append_new(
			lines, json_pack("{s:s?, s:s, s:I, s:o, s:o, s:o}", "line_id", l->line_id,
					 "sku", items[i], "quantity", (json_int_t)l->quantity,
					 "unit_price", money(o, l->unit_price), "discount",
					 money(o, l->discount), "tax", money(o, l->tax)));
	}
	orders_ref(o, ref, sizeof(ref));
	snprintf(ver, sizeof(ver), "%lld", (long long)o->version);
	b = json_pack("{s:s, s:s, s:O, s:O, s:O, s:O, s:O, s:O, s:s, s:{s:s, s:s}}", "channel",
		      o->channel, "currency", o->currency, "customer",
		      json_object_get(canon, "customer"), "shipping_address",
		      json_object_get(canon, "shipping_address"), "billing_address",
		      json_object_get(canon, "billing_address"), "lines", lines, "shipping",
		      json_object_get(canon, "shipping"), "totals",
		      json_object_get(canon, "totals"), "placed_at", o->placed_at, "attributes",
		      "storefront_order_id", o->order_id, "baton_version", ver);
	if (b && o->note)
		json_object_set_new(b, "note", json_string(o->note));
	if (b && create)
		json_object_set_new(b, "external_ref", json_string(ref));
	json_decref(canon);
	json_decref(lines);
	return b;
oom:
	json_decref(canon);
	json_decref(lines);
	return NULL;
}

uint64_t orders_waited_ms(const baton_config_t *cfg, unsigned attempt)
{
	uint64_t ms = 0;

	for (unsigned i = 0; i + 1 < attempt && i < cfg->n_retry_tiers; i++)
		ms += cfg->retry_tiers_ms[i];
	return ms;
}

int orders_wait_exceeded(const baton_config_t *cfg, unsigned attempt, unsigned max_ms)
{
	return orders_waited_ms(cfg, attempt) >= max_ms || attempt > cfg->n_retry_tiers;
}

json_t *orders_doc_new(const baton_order_t *o, const char *status, const char *erp_id,
		       const json_t *prev, const char *msg_id)
{
	char now[40];
	const char *created = prev ? json_string_value(json_object_get(prev, "created_at")) : NULL;

	baton_store_rfc3339_ms(baton_store_now_ms(), now, sizeof(now));
	return json_pack("{s:s, s:s, s:I, s:s, s:s*, s:s, s:o, s:s, s:s, s:s}", "channel",
			 o->channel, "order_id", o->order_id, "source_version",
			 (json_int_t)o->version, "status", status, "erp_order_id", erp_id,
			 "financial_status", o->financial_status, "order",
			 baton_order_to_json(o), "created_at", created ? created : now,
			 "updated_at", now, "last_message_id", msg_id);
}
