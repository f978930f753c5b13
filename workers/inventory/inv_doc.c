/* inv_doc.c — pure operations on a SKU document of collection "inventory" (no I/O).
 *
 * {"sku", "positions": [{location, source, on_hand, allocated, reserved, unavailable,
 *                         sequence, seqs: {erp, wms}, as_of}],
 *  "reservations": [{ref, qty, open, counts, n, at, state: open|retired|released}],
 *  "next_n", "sold": [{channel, qty}]}
 * Arrays rather than objects keyed by location or order id: names from events never become
 * MongoDB keys. Reservations are kept in arrival order (n), which is the order the ERP's
 * allocations retire them in. */
#include <string.h>

#include "inventory.h"

static int64_t geti(const json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

static json_t *arr(json_t *doc, const char *k)
{
	json_t *a = json_object_get(doc, k);

	if (!json_is_array(a)) {
		a = json_array();
		json_object_set_new(doc, k, a);
	}
	return a;
}

static json_t *find_by(json_t *a, const char *field, const char *val)
{
	size_t i;
	json_t *e;

	json_array_foreach(a, i, e) {
		const char *s = json_string_value(json_object_get(e, field));
		if (s && !strcmp(s, val))
			return e;
	}
	return NULL;
}

static int64_t sum_allocated(const json_t *positions)
{
	int64_t s = 0;
	size_t i;
	json_t *p;

	json_array_foreach(positions, i, p)
		s = ats_add(s, geti(p, "allocated") < 0 ? 0 : geti(p, "allocated"));
	return s;
}

/* The ERP's allocated went up by delta: retire that many units of open reservations, oldest
 * first. */
static int64_t retire_fifo(json_t *res, int64_t delta)
{
	int64_t done = 0;
	size_t i;
	json_t *r;

	json_array_foreach(res, i, r) {
		int64_t open = geti(r, "open"), take;
		if (done >= delta)
			break;
		if (open <= 0 || !json_is_true(json_object_get(r, "counts")))
			continue;
		take = open < delta - done ? open : delta - done;
		json_object_set_new(r, "open", json_integer(open - take));
		if (open - take == 0)
			json_object_set_new(r, "state", json_string("retired"));
		done += take;
	}
	return done;
}

int inv_doc_apply_position(json_t *doc, const json_t *pos, int64_t *retired)
{
	json_t *positions = arr(doc, "positions");
	const char *loc = json_string_value(json_object_get(pos, "location"));
	const char *src = json_string_value(json_object_get(pos, "source"));
	int64_t seq = geti(pos, "sequence"), before = sum_allocated(positions), after;
	json_t *cur = find_by(positions, "location", loc), *seqs, *last;

	*retired = 0;
	seqs = cur ? json_object_get(cur, "seqs") : NULL;
	last = json_object_get(seqs, src);
	if (last && json_integer_value(last) > seq)
		return 0;
	if (last && json_integer_value(last) == seq)
		return -1;
	seqs = seqs ? json_deep_copy(seqs) : json_object();
	json_object_set_new(seqs, src, json_integer(seq));
	if (!cur) {
		cur = json_object();
		json_array_append_new(positions, cur);
	}
	json_object_update(cur, (json_t *)pos);
	json_object_set_new(cur, "seqs", seqs);
	after = sum_allocated(positions);
	if (after > before)
		*retired = retire_fifo(arr(doc, "reservations"), ats_sub(after, before));
	return 1;
}

/* Drops the oldest closed reservations beyond keep (tombstones of released orders included). */
static void prune(json_t *res, unsigned keep)
{
	size_t closed = 0, i;
	json_t *r;

	json_array_foreach(res, i, r)
		closed += geti(r, "open") == 0;
	for (i = 0; closed > keep && i < json_array_size(res);) {
		if (geti(json_array_get(res, i), "open") == 0) {
			json_array_remove(res, i);
			closed--;
		} else {
			i++;
		}
	}
}

static void add_sold(json_t *doc, const char *channel, int64_t qty)
{
	json_t *sold = arr(doc, "sold"), *e = find_by(sold, "channel", channel);

	if (!e)
		json_array_append_new(sold, json_pack("{s:s, s:I}", "channel", channel, "qty",
						      (json_int_t)qty));
	else
		json_object_set_new(e, "qty", json_integer(ats_add(geti(e, "qty"), qty)));
}

int inv_doc_reserve(json_t *doc, const char *ref, int64_t qty, int counts, const char *channel,
		    int64_t now_ms, unsigned keep_closed)
{
	json_t *res = arr(doc, "reservations");
	int64_t n = geti(doc, "next_n");

	if (find_by(res, "ref", ref))
		return 0;
	json_array_append_new(res, json_pack("{s:s, s:I, s:I, s:b, s:I, s:I, s:s}", "ref", ref,
					     "qty", (json_int_t)qty, "open",
					     (json_int_t)(counts ? qty : 0), "counts", counts, "n",
					     (json_int_t)n, "at", (json_int_t)now_ms, "state",
					     counts ? "open" : "sale"));
	json_object_set_new(doc, "next_n", json_integer(n + 1));
	if (channel)
		add_sold(doc, channel, qty);
	prune(res, keep_closed);
	return 1;
}

int inv_doc_release(json_t *doc, const char *ref, int64_t now_ms, unsigned keep_closed)
{
	json_t *res = arr(doc, "reservations"), *r = find_by(res, "ref", ref);
	int64_t n = geti(doc, "next_n");

	if (r && !strcmp(json_string_value(json_object_get(r, "state")), "released"))
		return 0;
	if (!r) { /* cancelled before created: a tombstone keeps a late "created" out */
		r = json_pack("{s:s, s:I, s:b, s:I}", "ref", ref, "qty", (json_int_t)0, "counts",
			      0, "n", (json_int_t)n);
		json_array_append_new(res, r);
		json_object_set_new(doc, "next_n", json_integer(n + 1));
	}
	json_object_set_new(r, "open", json_integer(0));
	json_object_set_new(r, "state", json_string("released"));
	json_object_set_new(r, "released_at", json_integer(now_ms));
	prune(res, keep_closed);
	return 1;
}

int64_t inv_doc_open_orders(const json_t *doc)
{
	int64_t s = 0;
	size_t i;
	json_t *r;

	json_array_foreach(json_object_get(doc, "reservations"), i, r)
		if (json_is_true(json_object_get(r, "counts")) && geti(r, "open") > 0)
			s = ats_add(s, geti(r, "open"));
	return s;
}

int64_t inv_doc_sold(const json_t *doc, const char *channel)
{
	json_t *e = find_by(json_object_get(doc, "sold"), "channel", channel);

	return e ? geti(e, "qty") : 0;
}

static int64_t sku_pool(const inv_channel_t *ch, const json_t *doc, json_t *inputs)
{
	json_t *positions = json_object_get(doc, "positions"), *p, *locs = json_array();
	ats_position_t ap[64];
	size_t n = 0, i;
	int64_t open = inv_doc_open_orders(doc), pool, extra = 0;

	json_array_foreach(positions, i, p) {
		const char *loc = json_string_value(json_object_get(p, "location"));
		ats_position_t x = {geti(p, "on_hand"), geti(p, "allocated"), geti(p, "reserved"),
				    geti(p, "unavailable")};
		if (!loc || !inv_channel_has_location(ch, loc))
			continue;
		if (n < sizeof(ap) / sizeof(ap[0]))
			ap[n++] = x;
		else /* more than 64 locations: fold the rest in */
			extra = ats_add(extra, ats_location_net(&x));
		json_array_append_new(locs, json_pack("{s:s, s:I, s:I, s:I, s:I, s:I}", "location",
						      loc, "on_hand", (json_int_t)x.on_hand,
						      "allocated", (json_int_t)x.allocated,
						      "reserved", (json_int_t)x.reserved,
						      "unavailable", (json_int_t)x.unavailable,
						      "sequence", (json_int_t)geti(p, "sequence")));
	}
	pool = ats_add(ats_pool(ap, n, open), extra);
	if (inputs) {
		json_object_set_new(inputs, "locations", locs);
		json_object_set_new(inputs, "open_orders", json_integer(open));
		json_object_set_new(inputs, "pool", json_integer(pool));
	} else {
		json_decref(locs);
	}
	return pool;
}

int64_t inv_pool(const inv_config_t *cfg, const inv_channel_t *ch, const char *sku,
		 const json_t *docs, json_t *inputs)
{
	const inv_kit_t *kit = inv_config_kit(cfg, sku);
	ats_component_t comp[INV_MAX_KIT_PARTS];
	json_t *parts;
	size_t n = 0;
	int64_t pool;

	if (!kit)
		return sku_pool(ch, json_object_get(docs, sku), inputs);
	parts = json_array();
	for (size_t i = 0; i < kit->n_parts && n < sizeof(comp) / sizeof(comp[0]); i++) {
		json_t *in = json_object();
		comp[n].pool = sku_pool(ch, json_object_get(docs, kit->parts[i].sku), in);
		comp[n].per_kit = kit->parts[i].per_kit;
		json_object_set_new(in, "sku", json_string(kit->parts[i].sku));
		json_object_set_new(in, "per_kit", json_integer(kit->parts[i].per_kit));
		json_array_append_new(parts, in);
		n++;
	}
	pool = ats_kit_pool(comp, n);
	if (inputs) {
		json_object_set_new(inputs, "components", parts);
		json_object_set_new(inputs, "pool", json_integer(pool));
	} else {
		json_decref(parts);
	}
	return pool;
}
