/* inv_stock.c — the handlers: strict decoding of stock positions and order lines, then
 * read-modify-write of SKU documents with the store's optimistic versions (a concurrent change
 * of the same SKU, by this replica or another, is a CONFLICT: re-read and apply again). The
 * message ends OK once every document it changes is stored; the publisher is then told which
 * SKUs to recompute (see README.md, "Guarantees"). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inventory.h"

#define INV_MAX_LINES 500
#define INV_MAX_QTY 1000000000LL
#define INV_PUT_ATTEMPTS 50
#define INV_MAX_RIDERS 256

typedef enum step_kind { STEP_POSITION, STEP_RESERVE, STEP_RELEASE } step_kind_t;

typedef struct step {
	step_kind_t kind;
	char sku[INV_MAX_NAME];
	char ref[2 * INV_MAX_NAME + 2]; /* reservation: order id, or "<order id>|<kit sku>" */
	int64_t qty;
	int counts;                      /* reservation counts against the SKU's stock */
	const char *channel;             /* sale counted for this configured channel, or NULL */
} step_t;

typedef struct job {
	baton_msg_t *m;
	struct job *next_waiting;
	struct job *riders;     /* holder: messages whose step rides on its write (same SKU) */
	struct job *next_rider;
	int holds;   /* holds the lock of steps[i].sku */
	int applied; /* step_apply's result for the current step */
	int64_t retired;
	json_t *pos; /* STEP_POSITION: the position to apply */
	step_t *steps;
	size_t n, i;
	unsigned attempts;
	json_t *doc; /* the document being changed */
	int64_t version;
} job_t;

static void job_free(void *p)
{
	job_t *j = p;

	json_decref(j->pos);
	json_decref(j->doc);
	free(j->steps);
	free(j);
}

static inv_state_t *state_of(baton_msg_t *m) { return baton_flow_data(baton_msg_flow(m)); }

static int dead(baton_msg_t *m, const char *field, const char *what)
{
	baton_msg_done(m, BATON_DEAD, "payload.invalid", 0, "data.%s: %s", field, what);
	return -1;
}

/* --- per-SKU lock ------------------------------------------------------------------------------ */

static void step_next(baton_msg_t *m);

/* 1 when j now holds its SKU; 0 when it was queued behind the holder. */
static int sku_lock(inv_state_t *s, job_t *j)
{
	job_t **w;

	if (!json_object_get(s->busy, j->steps[j->i].sku)) {
		json_object_set_new(s->busy, j->steps[j->i].sku, json_true());
		j->holds = 1;
		return 1;
	}
	for (w = (job_t **)&s->waiters; *w; w = &(*w)->next_waiting)
		;
	*w = j;
	j->next_waiting = NULL;
	return 0;
}

/* Releases j's SKU and starts the first message waiting for it. */
static void sku_unlock(inv_state_t *s, job_t *j)
{
	const char *sku = j->steps[j->i].sku;
	job_t **w;

	if (!j->holds)
		return;
	j->holds = 0;
	json_object_del(s->busy, sku);
	for (w = (job_t **)&s->waiters; *w; w = &(*w)->next_waiting)
		if (!strcmp((*w)->steps[(*w)->i].sku, sku)) {
			job_t *next = *w;
			*w = next->next_waiting;
			step_next(next->m);
			return;
		}
}

/* Ends the message, releasing its SKU first. */
static void job_done(baton_msg_t *m, baton_outcome_t o, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void job_done(baton_msg_t *m, baton_outcome_t o, const char *code, const char *fmt, ...)
{
	job_t *j = baton_msg_state(m);
	char why[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	sku_unlock(baton_flow_data(baton_msg_flow(m)), j);
	baton_msg_done(m, o, code, 0, "%s", why);
}

/* --- the document loop: get, apply the current step, put; CONFLICT -> again ----------------- */

static void audit_step(baton_msg_t *m, job_t *j, const json_t *doc);
static void group_finish(baton_msg_t *m, job_t *j);
static void group_fail(baton_msg_t *m, baton_outcome_t o, const char *code, const char *why);

static void step_read(baton_msg_t *m);

static void step_advance(baton_msg_t *m, job_t *j)
{
	sku_unlock(state_of(m), j);
	j->i++;
	j->attempts = 0;
	step_next(m);
}

/* Group commit: the messages queued for the holder's SKU ride on its read-modify-write (one
 * get and one put for a burst on a hot SKU instead of one pair per message). */
static void take_riders(inv_state_t *s, job_t *j)
{
	const char *sku = j->steps[j->i].sku;
	job_t **w = (job_t **)&s->waiters, **tail = &j->riders;
	size_t n = 0;

	while (*tail) {
		tail = &(*tail)->next_rider;
		n++;
	}
	while (*w && n < INV_MAX_RIDERS) {
		job_t *k = *w;
		if (strcmp(k->steps[k->i].sku, sku)) {
			w = &k->next_waiting;
			continue;
		}
		*w = k->next_waiting;
		k->next_rider = NULL;
		*tail = k;
		tail = &k->next_rider;
		n++;
	}
}

/* The holder's document is stored (or needed no change): everyone moves on. */
static void group_finish(baton_msg_t *m, job_t *j)
{
	job_t *k = j->riders, *next;

	j->riders = NULL;
	for (; k; k = next) {
		next = k->next_rider;
		audit_step(k->m, k, j->doc);
		k->i++;
		k->attempts = 0;
		step_next(k->m);
	}
	audit_step(m, j, j->doc);
	step_advance(m, j);
}

static void group_fail(baton_msg_t *m, baton_outcome_t o, const char *code, const char *why)
{
	job_t *j = baton_msg_state(m), *k = j->riders, *next;
	const char *sku = j->steps[j->i].sku;

	j->riders = NULL;
	for (; k; k = next) {
		next = k->next_rider;
		job_done(k->m, o, code, "storing %s: %s", sku, why);
	}
	job_done(m, o, code, "storing %s: %s", sku, why);
}

static void on_put(baton_store_status_t st, json_t *res, const char *errmsg, void *ud)
{
	baton_msg_t *m = ud;
	job_t *j = baton_msg_state(m);

	(void)res;
	if (st == BATON_STORE_CONFLICT && ++j->attempts < INV_PUT_ATTEMPTS) {
		step_read(m); /* another replica changed the SKU meanwhile: read it again */
		return;
	}
	if (st != BATON_STORE_OK) {
		group_fail(m, st == BATON_STORE_ERROR ? BATON_DEAD : BATON_RETRY,
			   st == BATON_STORE_ERROR ? "store.error" : "store.unavailable", errmsg);
		return;
	}
	inv_publisher_mark(state_of(m)->pub, j->steps[j->i].sku);
	group_finish(m, j);
}

static void audit_position(baton_msg_t *m, const job_t *j, const json_t *doc)
{
	int r = j->applied;
	int64_t retired = j->retired;
	const json_t *p = j->pos;
	json_t *stored = NULL;
	size_t i;
	json_t *e;

	json_array_foreach(json_object_get(doc, "positions"), i, e)
		if (json_equal(json_object_get(e, "location"), json_object_get(p, "location")))
			stored = json_object_get(json_object_get(e, "seqs"),
						 json_string_value(json_object_get(p, "source")));
	baton_msg_audit(m, r == 1 ? "position.applied" : r == 0 ? "position.stale"
								: "position.duplicate",
			json_pack("{s:O, s:O, s:O, s:O?, s:I}", "sku", json_object_get(p, "sku"),
				  "location", json_object_get(p, "location"), "sequence",
				  json_object_get(p, "sequence"), "stored_sequence", stored,
				  "retired_reservations", (json_int_t)retired));
}

/* Once per step, after its outcome is stored (or known to need nothing). */
static void audit_step(baton_msg_t *m, job_t *j, const json_t *doc)
{
	step_t *st = &j->steps[j->i];
	int r = j->applied;

	if (st->kind == STEP_POSITION)
		audit_position(m, j, doc);
	else if (st->kind == STEP_RESERVE)
		baton_msg_audit(m, r ? "reservation.added" : "reservation.known",
				json_pack("{s:s, s:s, s:I, s:b}", "sku", st->sku, "ref", st->ref,
					  "quantity", (json_int_t)st->qty, "counts", st->counts));
	else
		baton_msg_audit(m, r ? "reservation.released" : "reservation.already_released",
				json_pack("{s:s, s:s}", "sku", st->sku, "ref", st->ref));
}

/* 1: the document changed (store it), 0: nothing to do. */
static int step_apply(baton_msg_t *m, job_t *j, json_t *doc)
{
	inv_state_t *s = state_of(m);
	step_t *st = &j->steps[j->i];
	int64_t now = baton_store_now_ms();

	j->retired = 0;
	switch (st->kind) {
	case STEP_POSITION:
		j->applied = inv_doc_apply_position(doc, j->pos, &j->retired);
		return j->applied == 1;
	case STEP_RESERVE:
		j->applied = inv_doc_reserve(doc, st->ref, st->qty, st->counts, st->channel,
					     now, s->cfg.max_reservations);
		return j->applied;
	case STEP_RELEASE:
		j->applied = inv_doc_release(doc, st->ref, now, s->cfg.max_reservations);
		return j->applied;
	}
	return 0;
}

static void on_get(baton_store_status_t st, json_t *res, const char *errmsg, void *ud)
{
	baton_msg_t *m = ud;
	job_t *j = baton_msg_state(m);
	baton_store_t *store = baton_flow_store(baton_msg_flow(m));
	const char *sku = j->steps[j->i].sku;
	int changed;

	if (st != BATON_STORE_OK && st != BATON_STORE_NOT_FOUND) {
		group_fail(m, BATON_RETRY, "store.unavailable", errmsg);
		return;
	}
	json_decref(j->doc);
	j->doc = st == BATON_STORE_OK ? json_deep_copy(res)
				      : json_pack("{s:s, s:[], s:[], s:i, s:[]}", "sku", sku,
						  "positions", "reservations", "next_n", 1, "sold");
	j->version = st == BATON_STORE_OK ? json_integer_value(json_object_get(res, "version")) : 0;
	take_riders(state_of(m), j);
	changed = step_apply(m, j, j->doc);
	for (job_t *k = j->riders; k; k = k->next_rider)
		changed |= step_apply(k->m, k, j->doc);
	if (!changed) {
		group_finish(m, j);
		return;
	}
	json_object_set_new(j->doc, "updated_at", json_integer(baton_store_now_ms()));
	if (baton_store_doc_put(store, INV_COLL_STOCK, sku, j->doc, j->version, on_put, m) != 0)
		group_fail(m, BATON_RETRY, "store.unavailable", "store closing");
}

static void step_read(baton_msg_t *m)
{
	job_t *j = baton_msg_state(m);

	if (baton_store_doc_get(baton_flow_store(baton_msg_flow(m)), INV_COLL_STOCK,
				j->steps[j->i].sku, on_get, m) != 0)
		group_fail(m, BATON_RETRY, "store.unavailable", "store closing");
}

static void step_next(baton_msg_t *m)
{
	job_t *j = baton_msg_state(m);

	if (j->i >= j->n) {
		baton_msg_done(m, BATON_OK, NULL, 0, NULL);
		return;
	}
	if (sku_lock(state_of(m), j))
		step_read(m);
}

static job_t *job_new(baton_msg_t *m, size_t n)
{
	job_t *j = calloc(1, sizeof(*j));

	if (j)
		j->steps = calloc(n ? n : 1, sizeof(*j->steps));
	if (!j || !j->steps) {
		free(j);
		baton_msg_done(m, BATON_RETRY, "oom", 0, "out of memory");
		return NULL;
	}
	j->m = m;
	baton_msg_set_state(m, j, job_free);
	return j;
}

/* --- stock positions ------------------------------------------------------------------------ */

static int count_field(baton_msg_t *m, const json_t *d, const char *k, int required,
		       int64_t *out)
{
	json_t *v = json_object_get(d, k);

	*out = 0;
	if (!v && !required)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return dead(m, k, required ? "a non-negative integer is required"
					   : "a non-negative integer is expected");
	*out = json_integer_value(v);
	return 0;
}

/* The position as stored, or NULL after done(DEAD). */
static json_t *decode_position(baton_msg_t *m)
{
	json_t *d = baton_msg_data(m), *asof = json_object_get(d, "as_of");
	const char *sku = json_string_value(json_object_get(d, "sku"));
	const char *loc = json_string_value(json_object_get(d, "location"));
	int64_t oh, al, re, un, seq;

	if (!json_is_object(d))
		return dead(m, "", "an object is required"), NULL;
	if (!inv_valid_name(sku))
		return dead(m, "sku", "a string of 1-127 bytes is required"), NULL;
	if (!inv_valid_name(loc))
		return dead(m, "location", "a string of 1-127 bytes is required"), NULL;
	if (count_field(m, d, "on_hand", 1, &oh) || count_field(m, d, "allocated", 0, &al) ||
	    count_field(m, d, "reserved", 0, &re) || count_field(m, d, "unavailable", 0, &un) ||
	    count_field(m, d, "sequence", 1, &seq))
		return NULL;
	if (asof && !json_is_string(asof))
		return dead(m, "as_of", "an RFC 3339 time string is expected"), NULL;
	return json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:O?}", "sku", sku, "location",
			 loc, "source", strncmp(baton_msg_type(m), "wms.", 4) ? "erp" : "wms",
			 "on_hand", (json_int_t)oh, "allocated", (json_int_t)al, "reserved",
			 (json_int_t)re, "unavailable", (json_int_t)un, "sequence",
			 (json_int_t)seq, "as_of", asof);
}

void inv_on_stock(baton_msg_t *m)
{
	json_t *pos = decode_position(m);
	job_t *j;

	if (!pos)
		return;
	j = job_new(m, 1);
	if (!j) {
		json_decref(pos);
		return;
	}
	j->pos = pos;
	j->n = 1;
	j->steps[0].kind = STEP_POSITION;
	snprintf(j->steps[0].sku, sizeof(j->steps[0].sku), "%s",
		 json_string_value(json_object_get(pos, "sku")));
	step_next(m);
}

/* --- orders: reservations ------------------------------------------------------------------- */

typedef struct line {
	const char *sku;
	int64_t qty;
} line_t;

/* Order lines summed per SKU into ls (at most INV_MAX_LINES); count, or -1 after done(DEAD). */
static int decode_lines(baton_msg_t *m, line_t *ls)
{
	json_t *lines = json_object_get(baton_msg_data(m), "lines"), *l;
	char field[64];
	size_t i, n = 0, k;

	if (!json_is_array(lines) || json_array_size(lines) == 0)
		return dead(m, "lines", "a non-empty array is required");
	if (json_array_size(lines) > INV_MAX_LINES)
		return dead(m, "lines", "more than 500 lines");
	json_array_foreach(lines, i, l) {
		const char *sku = json_string_value(json_object_get(l, "sku"));
		json_t *q = json_object_get(l, "quantity");
		snprintf(field, sizeof(field), "lines[%zu].sku", i);
		if (!inv_valid_name(sku))
			return dead(m, field, "a string of 1-127 bytes is required");
		snprintf(field, sizeof(field), "lines[%zu].quantity", i);
		if (!json_is_integer(q) || json_integer_value(q) <= 0 ||
		    json_integer_value(q) > INV_MAX_QTY)
			return dead(m, field, "an integer 1..1000000000 is required");
		for (k = 0; k < n && strcmp(ls[k].sku, sku); k++)
			;
		if (k == n)
			ls[n++] = (line_t){sku, 0};
		ls[k].qty += json_integer_value(q);
	}
	return (int)n;
}

static void add_step(job_t *j, step_kind_t kind, const char *sku, const char *ref, int64_t qty,
		     int counts, const char *channel)
{
	step_t *s = &j->steps[j->n++];

	s->kind = kind;
	snprintf(s->sku, sizeof(s->sku), "%s", sku);
	snprintf(s->ref, sizeof(s->ref), "%s", ref);
	s->qty = qty;
	s->counts = counts;
	s->channel = channel;
}

/* A kit line: its own document records the sale (for the kit's storefront number) and each
 * component is reserved under "<order>|<kit>". */
static int plan_kit(baton_msg_t *m, job_t *j, const inv_kit_t *kit, const line_t *l,
		    const char *order, step_kind_t kind, const char *channel)
{
	char ref[2 * INV_MAX_NAME + 2];

	add_step(j, kind, kit->sku, order, l->qty, 0, channel);
	snprintf(ref, sizeof(ref), "%s|%s", order, kit->sku);
	for (size_t p = 0; p < kit->n_parts; p++) {
		int64_t q;
		if (__builtin_mul_overflow(l->qty, kit->parts[p].per_kit, &q))
			return dead(m, "lines", "kit quantity overflows");
		add_step(j, kind, kit->parts[p].sku, ref, q, 1, NULL);
	}
	return 0;
}

static void on_order(baton_msg_t *m, step_kind_t kind)
{
	inv_state_t *s = state_of(m);
	json_t *d = baton_msg_data(m);
	const char *order = json_string_value(json_object_get(d, "order_id"));
	json_t *chv = json_object_get(d, "channel");
	const inv_channel_t *ch;
	line_t *ls;
	size_t nsteps = 0;
	int n;
	job_t *j;

	if (!inv_valid_name(order)) {
		dead(m, "order_id", "a string of 1-127 bytes is required");
		return;
	}
	if (chv && !json_is_string(chv)) {
		dead(m, "channel", "a string is expected");
		return;
	}
	ch = inv_config_channel(&s->cfg, json_string_value(chv));
	ls = calloc(INV_MAX_LINES, sizeof(*ls));
	if (!ls) {
		baton_msg_done(m, BATON_RETRY, "oom", 0, "out of memory");
		return;
	}
	n = decode_lines(m, ls);
	for (int i = 0; i < n; i++) {
		const inv_kit_t *k = inv_config_kit(&s->cfg, ls[i].sku);
		nsteps += 1 + (k ? k->n_parts : 0);
	}
	j = n > 0 ? job_new(m, nsteps) : NULL;
	for (int i = 0; j && i < n; i++) {
		const inv_kit_t *k = inv_config_kit(&s->cfg, ls[i].sku);
		if (k && plan_kit(m, j, k, &ls[i], order, kind, ch ? ch->name : NULL) != 0)
			j = NULL;
		else if (!k)
			add_step(j, kind, ls[i].sku, order, ls[i].qty, 1, ch ? ch->name : NULL);
	}
	free(ls);
	if (j)
		step_next(m);
}

void inv_on_order_created(baton_msg_t *m) { on_order(m, STEP_RESERVE); }
void inv_on_order_cancelled(baton_msg_t *m) { on_order(m, STEP_RELEASE); }
