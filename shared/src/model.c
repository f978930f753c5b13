/* model.c — strict decoding of the canonical order. See baton/model.h. */
#include "baton/model.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "baton/money.h"

/* Decoding context: the error buffer and the path of the member being read. */
typedef struct dec {
	char *err;
	size_t errlen;
} dec_t;

static int dec_fail(dec_t *d, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int dec_fail(dec_t *d, const char *path, const char *fmt, ...)
{
	char why[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (d->err && d->errlen)
		snprintf(d->err, d->errlen, "%s: %s", path, why);
	return -1;
}

static int fits_len(const char *s, size_t max)
{
	return strlen(s) <= max;
}

/* A string member; required or optional (absent or null -> *out NULL). */
static int get_str(dec_t *d, json_t *obj, const char *base, const char *key, int required,
		   size_t max, const char **out)
{
	json_t *v = json_object_get(obj, key);
	char path[160];

	snprintf(path, sizeof(path), "%s.%s", base, key);
	*out = NULL;
	if (!v || json_is_null(v))
		return required ? dec_fail(d, path, "required") : 0;
	if (!json_is_string(v))
		return dec_fail(d, path, "must be a string");
	if (required && json_string_length(v) == 0)
		return dec_fail(d, path, "must not be empty");
	if (!fits_len(json_string_value(v), max))
		return dec_fail(d, path, "longer than %zu bytes", max);
	if (memchr(json_string_value(v), '\0', json_string_length(v)))
		return dec_fail(d, path, "must not contain NUL");
	*out = json_string_value(v);
	return 0;
}

/* An identifier: charset limited so that it is safe in URLs, ledger keys and document ids. */
static int get_ident(dec_t *d, json_t *obj, const char *key, const char *extra, size_t max,
		     const char **out)
{
	char path[64];

	if (get_str(d, obj, "data", key, 1, max, out))
		return -1;
	snprintf(path, sizeof(path), "data.%s", key);
	for (const char *p = *out; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr(extra, *p))
			return dec_fail(d, path, "may hold only letters, digits and '%s'", extra);
	return 0;
}

static int get_money(dec_t *d, json_t *obj, const char *base, const char *key, int required,
		     int decimals, int64_t *out)
{
	json_t *v = json_object_get(obj, key);
	char path[160], why[80];

	snprintf(path, sizeof(path), "%s.%s", base, key);
	*out = 0;
	if (!v || json_is_null(v))
		return required ? dec_fail(d, path, "required") : 0;
	if (!json_is_string(v))
		return dec_fail(d, path, "must be a decimal string such as \"19.90\", not a %s",
				json_is_number(v) ? "JSON number" : "non-string");
	if (baton_money_parse(json_string_value(v), decimals, out, why, sizeof(why)))
		return dec_fail(d, path, "\"%.40s\": %s", json_string_value(v), why);
	if (*out < 0)
		return dec_fail(d, path, "must not be negative");
	return 0;
}

static int get_obj(dec_t *d, json_t *obj, const char *base, const char *key, int required,
		   json_t **out)
{
	json_t *v = json_object_get(obj, key);
	char path[160];

	snprintf(path, sizeof(path), "%s.%s", base, key);
	*out = NULL;
	if (!v || json_is_null(v))
		return required ? dec_fail(d, path, "required") : 0;
	if (!json_is_object(v))
		return dec_fail(d, path, "must be an object");
	*out = v;
	return 0;
}

int baton_rfc3339_valid(const char *s)
{
	const char *p = s;
	static const char shape[] = "dddd-dd-ddTdd:dd:dd";

	if (!s)
		return 0;
	for (size_t i = 0; shape[i]; i++, p++) {
		if (shape[i] == 'd' ? !isdigit((unsigned char)*p)
				    : (*p != shape[i] && !(shape[i] == 'T' && *p == 't')))
			return 0;
	}
	if (*p == '.') {
		if (!isdigit((unsigned char)*++p))
			return 0;
		while (isdigit((unsigned char)*p))
			p++;
	}
	if (*p == 'Z' || *p == 'z')
		return p[1] == '\0';
	if ((*p == '+' || *p == '-') && isdigit((unsigned char)p[1]) &&
	    isdigit((unsigned char)p[2]) && p[3] == ':' && isdigit((unsigned char)p[4]) &&
	    isdigit((unsigned char)p[5]))
		return p[6] == '\0';
	return 0;
}

static int get_time(dec_t *d, json_t *obj, const char *key, int required, const char **out)
{
	char path[64];

	if (get_str(d, obj, "data", key, required, 64, out))
		return -1;
	snprintf(path, sizeof(path), "data.%s", key);
	if (*out && !baton_rfc3339_valid(*out))
		return dec_fail(d, path, "must be an RFC 3339 time such as 2026-11-22T10:15:00Z");
	return 0;
}

static int check_address(dec_t *d, json_t *a, const char *path)
{
	static const char *const opt[] = {"name", "company", "line2", "region", "postal_code",
					  "phone", NULL};
	const char *s;
	char cpath[96];

	if (get_str(d, a, path, "line1", 1, 200, &s) || get_str(d, a, path, "city", 1, 200, &s) ||
	    get_str(d, a, path, "country", 1, 2, &s))
		return -1;
	snprintf(cpath, sizeof(cpath), "%s.country", path);
	if (strlen(s) != 2 || !isupper((unsigned char)s[0]) || !isupper((unsigned char)s[1]))
		return dec_fail(d, cpath, "must be an ISO 3166-1 alpha-2 code such as \"ES\"");
	for (const char *const *k = opt; *k; k++)
		if (get_str(d, a, path, *k, 0, 200, &s))
			return -1;
	return 0;
}

static int decode_line(dec_t *d, baton_order_t *o, size_t i, json_t *l)
{
	baton_order_line_t *ln = &o->lines[i];
	char base[48], path[64];
	json_t *q;
	int64_t gross;

	snprintf(base, sizeof(base), "data.lines[%zu]", i);
	if (!json_is_object(l))
		return dec_fail(d, base, "must be an object");
	if (get_str(d, l, base, "line_id", 0, 100, &ln->line_id) ||
	    get_str(d, l, base, "sku", 1, 100, &ln->sku))
		return -1;
	q = json_object_get(l, "quantity");
	snprintf(path, sizeof(path), "%s.quantity", base);
	if (!q)
		return dec_fail(d, path, "required");
	if (!json_is_integer(q) || json_integer_value(q) <= 0)
		return dec_fail(d, path, "must be an integer > 0");
	if (json_integer_value(q) > BATON_ORDER_MAX_QUANTITY)
		return dec_fail(d, path, "must be at most %d", BATON_ORDER_MAX_QUANTITY);
	ln->quantity = json_integer_value(q);
	if (get_money(d, l, base, "unit_price", 1, o->decimals, &ln->unit_price) ||
	    get_money(d, l, base, "discount", 0, o->decimals, &ln->discount) ||
	    get_money(d, l, base, "tax", 0, o->decimals, &ln->tax))
		return -1;
	snprintf(path, sizeof(path), "%s.unit_price", base);
	if (baton_money_mul(ln->quantity, ln->unit_price, &gross))
		return dec_fail(d, path, "quantity * unit_price is out of range");
	snprintf(path, sizeof(path), "%s.discount", base);
	if (ln->discount > gross)
		return dec_fail(d, path, "larger than quantity * unit_price");
	return 0;
}

static int decode_lines(dec_t *d, baton_order_t *o)
{
	json_t *a = json_object_get(o->src, "lines"), *l;
	size_t i;

	if (!a)
		return dec_fail(d, "data.lines", "required");
	if (!json_is_array(a))
		return dec_fail(d, "data.lines", "must be an array");
	if (json_array_size(a) == 0 || json_array_size(a) > BATON_ORDER_MAX_LINES)
		return dec_fail(d, "data.lines", "must hold 1 to %d lines", BATON_ORDER_MAX_LINES);
	o->lines = calloc(json_array_size(a), sizeof(*o->lines));
	if (!o->lines)
		return dec_fail(d, "data.lines", "out of memory");
	o->n_lines = json_array_size(a);
	json_array_foreach(a, i, l)
		if (decode_line(d, o, i, l))
			return -1;
	return 0;
}

static int decode_head(dec_t *d, baton_order_t *o)
{
	json_t *data = o->src, *v;

	if (get_ident(d, data, "order_id", "._:-", 100, &o->order_id) ||
	    get_ident(d, data, "channel", "._-", 64, &o->channel))
		return -1;
	v = json_object_get(data, "version");
	if (!v)
		return dec_fail(d, "data.version", "required");
	if (!json_is_integer(v) || json_integer_value(v) < 1)
		return dec_fail(d, "data.version", "must be an integer >= 1");
	o->version = json_integer_value(v);
	if (get_str(d, data, "data", "currency", 1, 3, &o->currency))
		return -1;
	o->decimals = baton_currency_decimals(o->currency);
	if (o->decimals < 0)
		return dec_fail(d, "data.currency", "\"%s\" is not a known ISO 4217 currency",
				o->currency);
	if (get_str(d, data, "data", "financial_status", 1, 40, &o->financial_status) ||
	    get_str(d, data, "data", "note", 0, 5000, &o->note) ||
	    get_str(d, data, "data", "cancel_reason", 0, 200, &o->cancel_reason) ||
	    get_time(d, data, "placed_at", 1, &o->placed_at) ||
	    get_time(d, data, "updated_at", 0, &o->updated_at))
		return -1;
	return 0;
}

static int decode_parties(dec_t *d, baton_order_t *o)
{
	const char *s;

	if (get_obj(d, o->src, "data", "customer", 0, &o->customer) ||
	    get_obj(d, o->src, "data", "shipping_address", 1, &o->shipping_address) ||
	    get_obj(d, o->src, "data", "billing_address", 0, &o->billing_address))
		return -1;
	if (o->customer &&
	    (get_str(d, o->customer, "data.customer", "email", 0, 254, &s) ||
	     (s && !strchr(s, '@') && dec_fail(d, "data.customer.email", "not an email address")) ||
	     get_str(d, o->customer, "data.customer", "name", 0, 200, &s) ||
	     get_str(d, o->customer, "data.customer", "phone", 0, 40, &s)))
		return -1;
	if (check_address(d, o->shipping_address, "data.shipping_address"))
		return -1;
	if (o->billing_address && check_address(d, o->billing_address, "data.billing_address"))
		return -1;
	return 0;
}

static int decode_money_parts(dec_t *d, baton_order_t *o)
{
	json_t *ship, *t;

	if (get_obj(d, o->src, "data", "shipping", 0, &ship))
		return -1;
	if (ship && (get_str(d, ship, "data.shipping", "method", 0, 100, &o->shipping_method) ||
		     get_money(d, ship, "data.shipping", "price", 1, o->decimals,
			       &o->shipping_price) ||
		     get_money(d, ship, "data.shipping", "tax", 0, o->decimals, &o->shipping_tax)))
		return -1;
	if (get_obj(d, o->src, "data", "totals", 1, &t) ||
	    get_money(d, t, "data.totals", "subtotal", 1, o->decimals, &o->totals.subtotal) ||
	    get_money(d, t, "data.totals", "discount", 0, o->decimals, &o->totals.discount) ||
	    get_money(d, t, "data.totals", "tax", 1, o->decimals, &o->totals.tax) ||
	    get_money(d, t, "data.totals", "shipping", 0, o->decimals, &o->totals.shipping) ||
	    get_money(d, t, "data.totals", "grand_total", 1, o->decimals, &o->totals.grand_total))
		return -1;
	return 0;
}

int baton_order_decode(json_t *data, baton_order_t *o, char *err, size_t errlen)
{
	dec_t d = {err, errlen};

	memset(o, 0, sizeof(*o));
	if (err && errlen)
		err[0] = '\0';
	if (!json_is_object(data)) {
		dec_fail(&d, "data", "must be an object");
		return -1;
	}
	o->src = json_incref(data);
	if (decode_head(&d, o) || decode_parties(&d, o) || decode_lines(&d, o) ||
	    decode_money_parts(&d, o)) {
		baton_order_free(o);
		return -1;
	}
	return 0;
}

void baton_order_free(baton_order_t *o)
{
	if (!o)
		return;
	free(o->lines);
	json_decref(o->src);
	memset(o, 0, sizeof(*o));
}

/* Compares a stated total with the computed one. */
static int total_ok(const baton_order_t *o, const char *name, int64_t stated, int64_t computed,
		    const char *how, int64_t tol, char *err, size_t errlen)
{
	char a[40], b[40], t[40];
	int64_t diff;

	if (!baton_money_sub(stated, computed, &diff) && diff <= tol && diff >= -tol)
		return 0;
	baton_money_format(stated, o->decimals, a, sizeof(a));
	baton_money_format(computed, o->decimals, b, sizeof(b));
	baton_money_format(tol, o->decimals, t, sizeof(t));
	snprintf(err, errlen, "data.totals.%s: %s does not match %s = %s (tolerance %s)", name, a,
		 how, b, t);
	return -1;
}

int baton_order_check_totals(const baton_order_t *o, int64_t tol, char *err, size_t errlen)
{
	int64_t sub = 0, disc = 0, tax = o->shipping_tax, gross, grand;

	for (size_t i = 0; i < o->n_lines; i++) {
		const baton_order_line_t *l = &o->lines[i];
		if (baton_money_mul(l->quantity, l->unit_price, &gross) ||
		    baton_money_add(sub, gross, &sub) || baton_money_add(disc, l->discount, &disc) ||
		    baton_money_add(tax, l->tax, &tax)) {
			snprintf(err, errlen, "data.lines[%zu]: amounts out of range", i);
			return -1;
		}
	}
	if (total_ok(o, "subtotal", o->totals.subtotal, sub, "sum of quantity * unit_price", tol,
		     err, errlen) ||
	    total_ok(o, "discount", o->totals.discount, disc, "sum of line discounts", tol, err,
		     errlen) ||
	    total_ok(o, "tax", o->totals.tax, tax, "sum of line taxes + shipping tax", tol, err,
		     errlen) ||
	    total_ok(o, "shipping", o->totals.shipping, o->shipping_price, "shipping.price", tol,
		     err, errlen))
		return -1;
	if (baton_money_sub(o->totals.subtotal, o->totals.discount, &grand) ||
	    baton_money_add(grand, o->totals.tax, &grand) ||
	    baton_money_add(grand, o->totals.shipping, &grand)) {
		snprintf(err, errlen, "data.totals: amounts out of range");
		return -1;
	}
	return total_ok(o, "grand_total", o->totals.grand_total, grand,
			"subtotal - discount + tax + shipping", tol, err, errlen);
}

static json_t *money_json(const baton_order_t *o, int64_t v)
{
	char b[40];

	baton_money_format(v, o->decimals, b, sizeof(b));
	return json_string(b);
}

/* Copies the known string members of an address or customer object. */
static json_t *copy_known(const json_t *src)
{
	static const char *const keys[] = {"name", "company", "line1", "line2", "city", "region",
					   "postal_code", "country", "phone", "email", NULL};
	json_t *out, *v;

	if (!src)
		return json_null();
	out = json_object();
	for (const char *const *k = keys; *k; k++)
		if ((v = json_object_get(src, *k)) && json_is_string(v))
			json_object_set(out, *k, v);
	return out;
}

json_t *baton_order_to_json(const baton_order_t *o)
{
	json_t *lines = json_array(), *j;

	for (size_t i = 0; i < o->n_lines; i++) {
		const baton_order_line_t *l = &o->lines[i];
		json_array_append_new(
			lines, json_pack("{s:s?, s:s, s:I, s:o, s:o, s:o}", "line_id", l->line_id,
					 "sku", l->sku, "quantity", (json_int_t)l->quantity,
					 "unit_price", money_json(o, l->unit_price), "discount",
					 money_json(o, l->discount), "tax", money_json(o, l->tax)));
	}
	j = json_pack("{s:s, s:s, s:I, s:s, s:s, s:o, s:o, s:o, s:o, s:s?}", "order_id",
		      o->order_id, "channel", o->channel, "version", (json_int_t)o->version,
		      "currency", o->currency, "financial_status", o->financial_status, "customer",
		      copy_known(o->customer), "shipping_address", copy_known(o->shipping_address),
		      "billing_address", copy_known(o->billing_address), "lines", lines, "note",
		      o->note);
	if (!j)
		return NULL;
	json_object_set_new(j, "shipping",
			    json_pack("{s:s?, s:o, s:o}", "method", o->shipping_method, "price",
				      money_json(o, o->shipping_price), "tax",
				      money_json(o, o->shipping_tax)));
	json_object_set_new(j, "totals",
			    json_pack("{s:o, s:o, s:o, s:o, s:o}", "subtotal",
				      money_json(o, o->totals.subtotal), "discount",
				      money_json(o, o->totals.discount), "tax",
				      money_json(o, o->totals.tax), "shipping",
				      money_json(o, o->totals.shipping), "grand_total",
				      money_json(o, o->totals.grand_total)));
	json_object_set_new(j, "placed_at", json_string(o->placed_at));
	if (o->updated_at)
		json_object_set_new(j, "updated_at", json_string(o->updated_at));
	return j;
}
