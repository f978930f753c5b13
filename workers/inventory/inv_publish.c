/* inv_publish.c — the publisher: turns "this SKU may have changed" into storefront writes.
 *
 * Handlers mark SKUs dirty (in memory, per channel); every `coalesce` ms one round takes up to
 * max_batch dirty SKUs of a channel, reads their documents, computes ATS, claims the SKUs whose
 * number changed (round_claim: one writer per SKU across replicas), reads and computes again,
 * and writes every number that changed in ONE set_quantities request with compare_quantity =
 * the level the storefront should show (see predicted_level). A burst of events for a SKU
 * within a tick is one write carrying the latest value. On 409 compare_quantity_stale the round
 * reads the levels back, reloads the documents, recomputes and tries again; on 429 it pauses
 * for Retry-After. Requests are paced by a mirror of the storefront's leaky bucket.
 *
 * A drift pass queues every known SKU with "read the storefront first": differences between
 * what the storefront shows and the computed ATS are reported (log, audit) and corrected by the
 * same rounds. One runs at start (catching up whatever a crashed replica had not published),
 * every drift_interval, and on SIGUSR1. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "baton/audit.h"
#include "inventory.h"

#define ROUND_ATTEMPTS 6
#define ERROR_BACKOFF_MS 1000
#define BUCKET_HEADROOM 2.0
#define MAX_SKUS_SEEN 100000
#define CLAIM_MARGIN_MS 10000 /* a claim lasts the HTTP timeout plus this (see round_claim) */

enum pub_metric { M_WRITES, M_REQUESTS, M_STALE, M_RATE_LIMITED, M_DRIFT, M_DRIFT_PASSES,
		  M_COUNT };

typedef struct item {
	char *sku;
	int64_t pool, ats;
	json_t *inputs;
	json_t *pub;          /* the channel+sku "published" document, or NULL */
	int64_t pub_version, sold;
	int have_obs;
	int64_t obs;          /* level read back from the storefront */
	int64_t expected, value, unheard;
	int write, save;
	int skip;             /* backed off: another round will take it */
	int fresh_claim;      /* claimed after its documents were loaded: load them again */
	int reported;         /* drift difference counted (once per round) */
	uint64_t marked_ms;   /* when the SKU was first marked dirty (latency) */
} item_t;

typedef enum round_stage { R_LOAD, R_READ, R_WRITE, R_SAVE } round_stage_t;

typedef struct round {
	inv_publisher_t *p;
	size_t chi;
	item_t *items;
	size_t n;
	int drift, force_read, obs_loaded, failed;
	unsigned attempt;
	round_stage_t stage;
	int waiting; /* for the bucket */
	json_t *docs;
	json_t *audits; /* entries written when the round ends */
	size_t pending;
} round_t;

struct inv_publisher {
	baton_flow_t *f;
	const inv_config_t *cfg;
	uv_timer_t timer;
	uv_signal_t usr1;
	json_t **dirty; /* per channel: sku -> marked time (ms) */
	json_t **drift; /* per channel: sku -> true (read the storefront first) */
	round_t *round;
	int drift_wanted, drift_started;
	uint64_t next_drift_ms, paused_until_ms;
	double bucket;
	uint64_t bucket_ms;
	struct { int64_t checked, differences, written; } dstat;
	uint64_t writes, requests, r429, r409;
	int metrics_ready;
	int mid[M_COUNT];
};

static const char *const metric_info[M_COUNT][2] = {
	[M_WRITES] = {"baton_inventory_levels_written_total",
		      "SKU levels written to the storefront (after coalescing)."},
	[M_REQUESTS] = {"baton_inventory_storefront_requests_total",
			"Requests sent to the storefront's inventory API (reads and writes)."},
	[M_STALE] = {"baton_inventory_stale_compares_total",
		     "Writes refused with 409 compare_quantity_stale (re-read and recomputed)."},
	[M_RATE_LIMITED] = {"baton_inventory_rate_limited_total",
			    "Storefront answers 429 (requests paused for Retry-After)."},
	[M_DRIFT] = {"baton_inventory_drift_differences_total",
		     "Storefront levels found different from the computed ATS by a drift pass."},
	[M_DRIFT_PASSES] = {"baton_inventory_drift_passes_total", "Drift passes completed."},
};

static void count(inv_publisher_t *p, enum pub_metric which, uint64_t by)
{
	if (p->metrics_ready)
		baton_metrics_counter_add(baton_flow_metrics(p->f), p->mid[which], by);
}

/* --- helpers --------------------------------------------------------------------------------- */

static uint64_t now_ms(inv_publisher_t *p) { return uv_now(p->timer.loop); }

static json_t *audit_entry(inv_publisher_t *p, const char *step, json_t *detail)
{
	char ts[40];

	baton_store_rfc3339_ms(baton_store_now_ms(), ts, sizeof(ts));
	json_object_set_new(detail, "step", json_string(step));
	json_object_set_new(detail, "flow", json_string(baton_flow_name(p->f)));
	json_object_set_new(detail, "worker", json_string(baton_flow_config(p->f)->worker_id));
	json_object_set_new(detail, "ts", json_string(ts));
	return detail;
}

static void audit(inv_publisher_t *p, const char *step, json_t *detail)
{
	baton_store_t *s = baton_flow_store(p->f);

	audit_entry(p, step, detail);
	if (!s || baton_store_insert(s, BATON_AUDIT_COLLECTION, detail, NULL, NULL) != 0)
		BATON_WARN(NULL, "inventory.audit", "cannot write audit entry %s", step);
	json_decref(detail);
}

typedef struct audit_batch {
	bson_t **docs;
	size_t n;
} audit_batch_t;

static void audit_batch_done(const baton_store_status_t *res, size_t n, const char *errmsg,
			     void *ud)
{
	audit_batch_t *b = ud;

	(void)res;
	if (errmsg[0])
		BATON_WARN(NULL, "inventory.audit", "audit of %zu published level(s): %s", n, errmsg);
	for (size_t i = 0; i < b->n; i++)
		bson_destroy(b->docs[i]);
	free(b->docs);
	free(b);
}

/* One insert_many for the entries of a round (the audit must not become the bottleneck). */
static void audit_flush(inv_publisher_t *p, json_t *entries)
{
	audit_batch_t *b = calloc(1, sizeof(*b));
	char err[256];
	size_t i;
	json_t *e;

	if (!b || !(b->docs = calloc(json_array_size(entries) + 1, sizeof(bson_t *)))) {
		free(b);
		return;
	}
	json_array_foreach(entries, i, e) {
		bson_t *d = bson_new();
		bson_oid_t oid;
		bson_oid_init(&oid, NULL);
		BSON_APPEND_OID(d, "_id", &oid);
		if (baton_store_json_to_bson(e, d, err, sizeof(err)) == 0)
			b->docs[b->n++] = d;
		else
			bson_destroy(d);
	}
	if (baton_store_insert_many_bson(baton_flow_store(p->f), BATON_AUDIT_COLLECTION,
					 (const bson_t *const *)b->docs, b->n, 3, audit_batch_done,
					 b) != 0) {
		BATON_WARN(NULL, "inventory.audit", "cannot write %zu audit entries", b->n);
		audit_batch_done(NULL, b->n, "", b);
	}
}

static void mark_channel(inv_publisher_t *p, size_t c, const char *sku, uint64_t t)
{
	if (!json_object_get(p->dirty[c], sku))
		json_object_set_new(p->dirty[c], sku, json_integer((json_int_t)t));
}

void inv_publisher_mark(inv_publisher_t *p, const char *sku)
{
	const inv_config_t *cfg = p->cfg;
	uint64_t t = now_ms(p);

	for (size_t c = 0; c < cfg->n_channels; c++) {
		mark_channel(p, c, sku, t);
		for (size_t k = 0; k < cfg->n_kits; k++)
			for (size_t j = 0; j < cfg->kits[k].n_parts; j++)
				if (!strcmp(cfg->kits[k].parts[j].sku, sku))
					mark_channel(p, c, cfg->kits[k].sku, t);
	}
}

void inv_publisher_drift(inv_publisher_t *p) { p->drift_wanted = 1; }

/* Leaky bucket mirror: may a request go now? */
static int bucket_take(inv_publisher_t *p)
{
	uint64_t t = now_ms(p);

	p->bucket -= (double)(t - p->bucket_ms) / 1000.0 * p->cfg->leak_rate;
	if (p->bucket < 0)
		p->bucket = 0;
	p->bucket_ms = t;
	if (t < p->paused_until_ms || p->bucket + 1 > p->cfg->bucket_size - BUCKET_HEADROOM)
		return 0;
	p->bucket += 1;
	p->requests++;
	count(p, M_REQUESTS, 1);
	return 1;
}

/* --- round life ------------------------------------------------------------------------------ */

static void round_free(round_t *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->items[i].sku);
		json_decref(r->items[i].inputs);
		json_decref(r->items[i].pub);
	}
	free(r->items);
	json_decref(r->docs);
	json_decref(r->audits);
	free(r);
}

/* The round's SKUs go back to the dirty set (to be tried again). */
static void round_requeue(round_t *r)
{
	inv_publisher_t *p = r->p;

	for (size_t i = 0; i < r->n; i++) {
		json_t *set = r->drift ? p->drift[r->chi] : p->dirty[r->chi];
		if (!json_object_get(set, r->items[i].sku))
			json_object_set_new(set, r->items[i].sku,
					    json_integer((json_int_t)r->items[i].marked_ms));
	}
}

static void round_end(round_t *r)
{
	if (json_array_size(r->audits) && baton_flow_store(r->p->f))
		audit_flush(r->p, r->audits);
	r->p->round = NULL;
	round_free(r);
}

static void round_release(round_t *r);

static void round_fail(round_t *r, uint64_t pause_ms, const char *why)
{
	inv_publisher_t *p = r->p;

	BATON_WARN(NULL, "inventory.publish_failed", "channel %s: %s; trying again in %llu ms",
		   p->cfg->channels[r->chi].name, why, (unsigned long long)pause_ms);
	round_release(r);
	round_requeue(r);
	if (p->paused_until_ms < now_ms(p) + pause_ms)
		p->paused_until_ms = now_ms(p) + pause_ms;
	round_end(r);
}

static void round_load(round_t *r);
static void round_compute(round_t *r);

/* --- load: SKU documents (and kit components), published documents --------------------------- */

static void set_pub(item_t *it, json_t *doc)
{
	json_decref(it->pub);
	it->pub = json_incref(doc);
	it->pub_version = json_integer_value(json_object_get(doc, "version"));
}

/* One load finished (or the hold of round_load was released). */
static void load_step(round_t *r)
{
	if (--r->pending > 0)
		return;
	if (r->failed || !baton_flow_http(r->p->f))
		round_fail(r, ERROR_BACKOFF_MS, "cannot read the documents");
	else
		round_compute(r);
}

typedef struct load_ctx {
	round_t *r;
	char *sku;  /* a stock document, or NULL */
	size_t idx; /* else: published document of item idx */
} load_ctx_t;

static void loaded(baton_store_status_t st, json_t *res, const char *errmsg, void *ud)
{
	load_ctx_t *c = ud;
	round_t *r = c->r;

	if (st != BATON_STORE_OK && st != BATON_STORE_NOT_FOUND) {
		r->failed = 1;
		BATON_WARN(NULL, "inventory.store", "reading: %s", errmsg);
	} else if (c->sku) {
		json_object_set(r->docs, c->sku, st == BATON_STORE_OK ? res : json_null());
	} else if (st == BATON_STORE_OK) {
		set_pub(&r->items[c->idx], res);
	}
	free(c->sku);
	free(c);
	load_step(r);
}

static void load_one(round_t *r, const char *sku, size_t idx)
{
	baton_store_t *s = baton_flow_store(r->p->f);
	load_ctx_t *c = calloc(1, sizeof(*c));
	char id[2 * INV_MAX_NAME + 2];
	int rc = -1;

	if (c) {
		c->r = r;
		c->idx = idx;
		if (sku && (c->sku = strdup(sku))) {
			json_object_set_new(r->docs, sku, json_null()); /* requested */
			rc = baton_store_doc_get(s, INV_COLL_STOCK, sku, loaded, c);
		} else if (!sku) {
			/* always from the store, never a copy kept in memory: another replica may
			 * have written (or claimed) it since */
			snprintf(id, sizeof(id), "%s:%s", r->p->cfg->channels[r->chi].name,
				 r->items[idx].sku);
			rc = baton_store_doc_get(s, INV_COLL_PUBLISHED, id, loaded, c);
		}
	}
	if (rc == 0) {
		r->pending++;
	} else {
		r->failed = 1;
		if (c)
			free(c->sku);
		free(c);
	}
}

/* A fresh snapshot: SKU documents and published documents, then (round_compute) the levels
 * when the round reads them, always after the documents (see unheard). Levels read before are
 * dropped. */
static void round_load(round_t *r)
{
	const inv_config_t *cfg = r->p->cfg;

	r->stage = R_LOAD;
	r->failed = 0;
	r->obs_loaded = 0;
	r->pending = 1; /* held until every request is started */
	json_decref(r->docs);
	r->docs = json_object();
	for (size_t i = 0; i < r->n; i++) {
		const inv_kit_t *k = inv_config_kit(cfg, r->items[i].sku);
		r->items[i].have_obs = r->items[i].fresh_claim = 0;
		if (r->items[i].skip)
			continue;
		if (!json_object_get(r->docs, r->items[i].sku))
			load_one(r, r->items[i].sku, i);
		for (size_t j = 0; k && j < k->n_parts; j++)
			if (!json_object_get(r->docs, k->parts[j].sku))
				load_one(r, k->parts[j].sku, i);
		json_decref(r->items[i].pub);
		r->items[i].pub = NULL;
		r->items[i].pub_version = 0;
		load_one(r, NULL, i);
	}
	load_step(r);
}

/* --- compute --------------------------------------------------------------------------------- */

static int64_t geti(const json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

/* The published document records the last write: value V, sold_base K (the "sold" counter
 * then) and unheard U (checkouts the storefront had made that baton had not heard of then, so
 * deducted from V). Checkouts heard of since (ks = sold - K) are the U first, then new ones. */
/* Negative when our copy of the SKU document is older than the one the record was computed
 * from (another replica): our ATS then misses |ks| reservations, and the formulas below deduct
 * them as unheard. */
static int64_t heard_since(const item_t *it)
{
	return ats_sub(it->sold, geti(it->pub, "sold_base"));
}

static int64_t nonneg(int64_t v) { return v < 0 ? 0 : v; }

/* Whether a write is on record (a claim alone, on a SKU never published, is not one). */
static int has_record(const item_t *it)
{
	return json_is_integer(json_object_get(it->pub, "value"));
}

/* The level the storefront shows if every checkout since the write has been heard of. */
static int64_t predicted_level(const item_t *it)
{
	return ats_sub(geti(it->pub, "value"), nonneg(ats_sub(heard_since(it), geti(it->pub,
								      "unheard"))));
}

/* Checkouts made that baton has not heard of: exact once the level is read back (obs):
 * V + U - ks - obs, provided the SKU document (ks) was read before the level: an order counted
 * in ks must have its checkout in obs (round_load). Without obs, the U of the last write not
 * heard of yet. In a drift pass, a record older than unheard_grace forgets its U (no order came:
 * a change behind baton's back, not a sale). */
static int64_t unheard(const round_t *r, const item_t *it)
{
	int64_t u = geti(it->pub, "unheard"), ks = heard_since(it);
	int64_t age = baton_store_now_ms() - geti(it->pub, "at");

	if (!has_record(it))
		return 0;
	if (!it->have_obs)
		return nonneg(ats_sub(u, ks));
	if (r->drift && age >= (int64_t)r->p->cfg->unheard_grace_ms)
		u = u < ks ? u : ks;
	return nonneg(ats_sub(ats_sub(ats_add(geti(it->pub, "value"), u), ks), it->obs));
}

static void compute_item(round_t *r, item_t *it)
{
	const inv_config_t *cfg = r->p->cfg;
	const inv_channel_t *ch = &cfg->channels[r->chi];
	int64_t buffer = inv_channel_buffer(ch, it->sku);

	json_decref(it->inputs);
	it->inputs = json_object();
	it->pool = inv_pool(cfg, ch, it->sku, r->docs, it->inputs);
	it->ats = ats_final(it->pool, buffer, ch->share_ppm);
	json_object_set_new(it->inputs, "safety_buffer", json_integer(buffer));
	json_object_set_new(it->inputs, "allocation_share_ppm", json_integer(ch->share_ppm));
	it->sold = inv_doc_sold(json_object_get(r->docs, it->sku), ch->name);
	json_object_set_new(it->inputs, "sold", json_integer(it->sold));
	/* never publish back units the storefront sold and baton has not heard of */
	it->unheard = unheard(r, it);
	json_object_set_new(it->inputs, "unheard_checkouts", json_integer(it->unheard));
	it->value = nonneg(ats_sub(it->ats, it->unheard));
	it->expected = it->have_obs ? it->obs : predicted_level(it);
	it->write = it->value != it->expected;
	it->save = it->write ||
		   (it->have_obs && (!has_record(it) || geti(it->pub, "value") != it->obs ||
				     geti(it->pub, "sold_base") != it->sold ||
				     geti(it->pub, "unheard") != it->unheard));
}

static void report_drift(round_t *r, const item_t *it)
{
	inv_publisher_t *p = r->p;
	const char *ch = p->cfg->channels[r->chi].name;

	p->dstat.checked++;
	if (it->obs == it->ats)
		return;
	p->dstat.differences++;
	count(p, M_DRIFT, 1);
	BATON_WARN(NULL, "inventory.drift", "channel %s sku %s: storefront shows %lld, baton "
		   "computes %lld", ch, it->sku, (long long)it->obs, (long long)it->ats);
	audit(p, "inventory.drift", json_pack("{s:s, s:s, s:I, s:I, s:I, s:O}", "channel", ch,
					      "sku", it->sku, "storefront", (json_int_t)it->obs,
					      "computed", (json_int_t)it->ats, "correction",
					      (json_int_t)it->value, "inputs", it->inputs));
}

static void round_read(round_t *r);
static void round_write(round_t *r);
static void round_save(round_t *r);
static void round_claim(round_t *r);

static void round_compute(round_t *r)
{
	for (size_t i = 0; i < r->n && !r->obs_loaded; i++)
		if (!r->items[i].skip && (r->force_read || !has_record(&r->items[i]))) {
			/* drift pass, stale compare, or never published: read the storefront */
			round_read(r);
			return;
		}
	for (size_t i = 0; i < r->n; i++) {
		item_t *it = &r->items[i];
		if (it->skip)
			continue;
		compute_item(r, it);
		if (r->drift && it->have_obs && !it->reported) {
			it->reported = 1;
			report_drift(r, it);
		}
	}
	round_claim(r);
}

/* --- claim: one replica at a time writes a channel+SKU -------------------------------------- */

/* The published document records what was written (V, K, U above), so it must change with the
 * storefront's level and only with it: before writing, a replica claims the document (versioned
 * put of the record plus claim_owner/claim_until); others leave the SKU alone while the claim
 * lasts, and the claimer's save after the write clears it. A claim outlives the HTTP timeout
 * (claim_ms), so a slow write never outlasts it; a crashed claimer's claim expires after that.
 *
 * Why a claim is followed by a fresh snapshot, and why a claim held elsewhere stops even a
 * round with nothing to write (several replicas; each marks only the SKUs of the events it
 * handled). The round used to compute from documents read *before* its claim, and to trust a
 * copy of the published record kept in memory. So: replica B, publishing change e1, reads the
 * SKU document, then replica A stores e2 (which undoes e1) and, from its remembered record,
 * finds the level already right and writes nothing; B then claims and writes the value of e1
 * alone; nobody has e2 marked any more. Or A's remembered record is the one A wrote before B's
 * last write, and the level left by B matches none of A's predictions. Either way the level
 * stayed off (both directions, by the units e1 moved) until a drift pass. Now the record is
 * always read from the store; whatever a claim is taken for is loaded again after it (the
 * documents, and the levels read after them), so a write is always computed from a snapshot
 * newer than every change stored before the claim; and a round that sees another replica's
 * claim backs off and retries, since that replica's write may predate its change. */
static uint64_t claim_ms(const round_t *r)
{
	return (uint64_t)baton_flow_config(r->p->f)->http_timeout_ms + CLAIM_MARGIN_MS;
}

static int claim_mine(const round_t *r, const item_t *it)
{
	const char *owner = json_string_value(json_object_get(it->pub, "claim_owner"));

	return owner && !strcmp(owner, baton_flow_config(r->p->f)->worker_id);
}

static int claimed_by_other(const round_t *r, const item_t *it)
{
	return json_is_string(json_object_get(it->pub, "claim_owner")) && !claim_mine(r, it) &&
	       geti(it->pub, "claim_until") > baton_store_now_ms();
}

/* Mine, and long enough left for one write request and the save. */
static int claimed_by_me(const round_t *r, const item_t *it)
{
	uint64_t left = claim_ms(r) - CLAIM_MARGIN_MS / 2;

	return claim_mine(r, it) && geti(it->pub, "claim_until") > baton_store_now_ms() +
									(int64_t)left;
}

static void pub_id(const round_t *r, const item_t *it, char *id, size_t len)
{
	snprintf(id, len, "%s:%s", r->p->cfg->channels[r->chi].name, it->sku);
}

/* Another replica has it, or the claim failed: leave it to a later round. */
static void item_back_off(round_t *r, item_t *it)
{
	it->skip = 1;
	it->write = it->save = 0;
	mark_channel(r->p, r->chi, it->sku, it->marked_ms);
}

static void claim_step(round_t *r)
{
	size_t writes = 0, fresh = 0;

	if (--r->pending > 0)
		return;
	for (size_t i = 0; i < r->n; i++) {
		writes += r->items[i].write;
		fresh += r->items[i].fresh_claim;
	}
	if (fresh)
		round_load(r); /* compute again from what is stored now */
	else if (writes)
		round_write(r);
	else
		round_save(r);
}

typedef struct claim_ctx {
	round_t *r;
	size_t idx;
} claim_ctx_t;

static void claimed(baton_store_status_t st, json_t *res, const char *errmsg, void *ud)
{
	claim_ctx_t *c = ud;
	round_t *r = c->r;
	item_t *it = &r->items[c->idx];

	if (st == BATON_STORE_OK) {
		set_pub(it, res);
		it->fresh_claim = 1;
	} else {
		BATON_DEBUG(NULL, "inventory.claim", "sku %s: %s (later)", it->sku, errmsg);
		item_back_off(r, it);
	}
	free(c);
	claim_step(r);
}

static void claim_one(round_t *r, size_t i)
{
	item_t *it = &r->items[i];
	char id[2 * INV_MAX_NAME + 2];
	claim_ctx_t *c = calloc(1, sizeof(*c));
	json_t *doc = it->pub ? json_deep_copy(it->pub)
			      : json_pack("{s:s, s:s}", "channel", r->p->cfg->channels[r->chi].name,
					  "sku", it->sku);

	pub_id(r, it, id, sizeof(id));
	json_object_set_new(doc, "claim_owner",
			    json_string(baton_flow_config(r->p->f)->worker_id));
	json_object_set_new(doc, "claim_until",
			    json_integer(baton_store_now_ms() + (int64_t)claim_ms(r)));
	if (c) {
		c->r = r;
		c->idx = i;
	}
	if (c && baton_store_doc_put(baton_flow_store(r->p->f), INV_COLL_PUBLISHED, id, doc,
				     it->pub_version, claimed, c) == 0) {
		r->pending++;
	} else {
		free(c);
		item_back_off(r, it);
	}
	json_decref(doc);
}

static void released(baton_store_status_t st, json_t *res, const char *errmsg, void *ud)
{
	(void)res, (void)ud;
	if (st != BATON_STORE_OK)
		BATON_DEBUG(NULL, "inventory.claim", "releasing a claim: %s (it expires)", errmsg);
}

/* A failed round clears its claims (the record unchanged): other replicas need not wait for
 * them to expire. */
static void round_release(round_t *r)
{
	char id[2 * INV_MAX_NAME + 2];

	for (size_t i = 0; i < r->n; i++) {
		item_t *it = &r->items[i];
		json_t *doc;
		if (it->skip || !claim_mine(r, it))
			continue;
		doc = json_deep_copy(it->pub);
		json_object_del(doc, "claim_owner");
		json_object_del(doc, "claim_until");
		pub_id(r, it, id, sizeof(id));
		if (baton_store_doc_put(baton_flow_store(r->p->f), INV_COLL_PUBLISHED, id, doc,
					it->pub_version, released, NULL) != 0)
			BATON_DEBUG(NULL, "inventory.claim", "sku %s: claim left to expire", it->sku);
		json_decref(doc);
	}
}

/* Writes need this round's claim, taken before the documents were loaded; the claim is then
 * cleared by the save, written or not. */
static void round_claim(round_t *r)
{
	r->pending = 1;
	for (size_t i = 0; i < r->n; i++) {
		item_t *it = &r->items[i];
		if (it->skip)
			continue;
		if (claimed_by_other(r, it))
			item_back_off(r, it);
		else if (it->write && !claimed_by_me(r, it))
			claim_one(r, i);
		else if (claim_mine(r, it))
			it->save = 1;
	}
	claim_step(r);
}

/* --- read the storefront's levels ------------------------------------------------------------ */

static void url_escape(const char *in, char *out, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (; *in && o + 4 < len; in++) {
		unsigned char c = (unsigned char)*in;
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '_' || c == '.' || c == '~') {
			out[o++] = (char)c;
		} else {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o] = '\0';
}

static item_t *item_by_sku(round_t *r, const char *sku)
{
	for (size_t i = 0; sku && i < r->n; i++)
		if (!strcmp(r->items[i].sku, sku))
			return &r->items[i];
	return NULL;
}

static void on_levels(const baton_http_resp_t *resp, void *ud)
{
	round_t *r = ud;
	json_t *body, *l;
	size_t i;

	baton_metrics_http_status(baton_flow_metrics(r->p->f), resp->status);
	if (resp->cls != BATON_HTTP_OK) {
		if (resp->status == 429) {
			r->p->r429++;
			count(r->p, M_RATE_LIMITED, 1);
		}
		round_fail(r, resp->retry_after_ms > 0 ? (uint64_t)resp->retry_after_ms
						       : ERROR_BACKOFF_MS, resp->summary);
		return;
	}
	body = json_loadb(resp->body, resp->body_len, 0, NULL);
	if (!json_is_array(json_object_get(body, "inventory_levels"))) {
		json_decref(body);
		round_fail(r, ERROR_BACKOFF_MS, "inventory_levels: unexpected answer");
		return;
	}
	for (i = 0; i < r->n; i++) {
		r->items[i].have_obs = 1;
		r->items[i].obs = 0; /* no level yet: the storefront counts it as 0 */
	}
	json_array_foreach(json_object_get(body, "inventory_levels"), i, l) {
		item_t *it = item_by_sku(r, json_string_value(json_object_get(l, "sku")));
		if (it && json_is_integer(json_object_get(l, "available")))
			it->obs = geti(l, "available");
	}
	json_decref(body);
	r->obs_loaded = 1;
	round_compute(r);
}

static void round_read(round_t *r)
{
	const inv_channel_t *ch = &r->p->cfg->channels[r->chi];
	char loc[3 * INV_MAX_NAME + 1], url[2048];
	baton_http_req_t req = {.method = "GET", .url = url};

	r->stage = R_READ;
	if (!bucket_take(r->p)) {
		r->waiting = 1;
		return;
	}
	r->waiting = 0;
	url_escape(ch->storefront_location, loc, sizeof(loc));
	snprintf(url, sizeof(url), "%s/admin/api/inventory_levels?location_id=%s",
		 baton_flow_config(r->p->f)->storefront_url, loc);
	if (baton_http_request(baton_flow_http(r->p->f), &req, on_levels, r) != 0)
		round_fail(r, ERROR_BACKOFF_MS, "cannot start the storefront request");
}

/* --- write ----------------------------------------------------------------------------------- */

static void audit_published(round_t *r, const item_t *it)
{
	inv_publisher_t *p = r->p;
	const inv_channel_t *ch = &p->cfg->channels[r->chi];
	uint64_t t = now_ms(p);
	json_t *e;

	e = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:O, s:i}", "channel", ch->name, "sku",
		      it->sku, "location_id", ch->storefront_location, "value",
		      (json_int_t)it->value, "previous", (json_int_t)it->expected, "ats",
		      (json_int_t)it->ats, "pool", (json_int_t)it->pool, "inputs", it->inputs,
		      "latency_ms", (int)(t > it->marked_ms ? t - it->marked_ms : 0));
	json_array_append_new(r->audits, audit_entry(p, "inventory.published", e));
	BATON_DEBUG(NULL, "inventory.published", "channel %s sku %s: %lld -> %lld", ch->name,
		    it->sku, (long long)it->expected, (long long)it->value);
}

static void on_written(const baton_http_resp_t *resp, void *ud)
{
	round_t *r = ud;
	inv_publisher_t *p = r->p;

	baton_metrics_http_status(baton_flow_metrics(p->f), resp->status);
	if (resp->cls == BATON_HTTP_OK) {
		for (size_t i = 0; i < r->n; i++)
			if (r->items[i].write) {
				p->writes++;
				count(p, M_WRITES, 1);
				audit_published(r, &r->items[i]);
			}
		round_save(r);
	} else if (resp->status == 409 && ++r->attempt < ROUND_ATTEMPTS) {
		/* compare_quantity_stale: re-read the levels and the documents, recompute */
		p->r409++;
		count(p, M_STALE, 1);
		r->obs_loaded = 0;
		for (size_t i = 0; i < r->n; i++)
			r->items[i].have_obs = 0;
		r->force_read = 1;
		round_load(r);
	} else if (resp->status == 429) {
		p->r429++;
		count(p, M_RATE_LIMITED, 1);
		p->bucket = p->cfg->bucket_size;
		round_fail(r, resp->retry_after_ms > 0 ? (uint64_t)resp->retry_after_ms : 1000,
			   "storefront rate limit (429)");
	} else {
		round_fail(r, ERROR_BACKOFF_MS, resp->summary);
	}
}

static void round_write(round_t *r)
{
	inv_publisher_t *p = r->p;
	const inv_channel_t *ch = &p->cfg->channels[r->chi];
	const char *hdr[] = {"Content-Type: application/json", NULL};
	char url[1024], *body;
	json_t *qs = json_array(), *doc;
	baton_http_req_t req = {.method = "POST", .url = url, .headers = hdr};

	r->stage = R_WRITE;
	if (!bucket_take(p)) {
		r->waiting = 1;
		json_decref(qs);
		return;
	}
	r->waiting = 0;
	for (size_t i = 0; i < r->n; i++)
		if (r->items[i].write)
			json_array_append_new(qs, json_pack("{s:s, s:s, s:I, s:I}", "sku",
							    r->items[i].sku, "location_id",
							    ch->storefront_location, "quantity",
							    (json_int_t)r->items[i].value,
							    "compare_quantity",
							    (json_int_t)r->items[i].expected));
	doc = json_pack("{s:s, s:s, s:o}", "reason", "baton-inventory", "name", "available",
			"quantities", qs);
	body = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	snprintf(url, sizeof(url), "%s/admin/api/inventory/set_quantities",
		 baton_flow_config(p->f)->storefront_url);
	req.body = body;
	req.body_len = body ? strlen(body) : 0;
	if (!body || baton_http_request(baton_flow_http(p->f), &req, on_written, r) != 0)
		round_fail(r, ERROR_BACKOFF_MS, "cannot start the storefront request");
	free(body);
}

/* --- save the published documents ------------------------------------------------------------ */

typedef struct save_ctx {
	round_t *r;
	size_t idx;
} save_ctx_t;

static void save_step(round_t *r)
{
	if (--r->pending == 0)
		round_end(r);
}

static void saved(baton_store_status_t st, json_t *res, const char *errmsg, void *ud)
{
	save_ctx_t *c = ud;
	round_t *r = c->r;
	item_t *it = &r->items[c->idx];

	(void)res;
	if (st != BATON_STORE_OK) {
		/* another replica published meanwhile, or the store failed: compute again */
		BATON_INFO(NULL, "inventory.published_doc", "sku %s: %s (recomputing)", it->sku,
			   errmsg);
		mark_channel(r->p, r->chi, it->sku, it->marked_ms);
	}
	free(c);
	save_step(r);
}

static void save_one(round_t *r, size_t i)
{
	item_t *it = &r->items[i];
	const char *ch = r->p->cfg->channels[r->chi].name;
	char id[2 * INV_MAX_NAME + 2];
	save_ctx_t *c = calloc(1, sizeof(*c));
	json_t *doc;
	int rc = -1;

	snprintf(id, sizeof(id), "%s:%s", ch, it->sku);
	if (it->write || it->have_obs) {
		doc = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:O, s:I}", "channel", ch, "sku",
				it->sku, "value", (json_int_t)it->value, "sold_base",
				(json_int_t)it->sold, "unheard", (json_int_t)it->unheard, "ats",
				(json_int_t)it->ats, "inputs", it->inputs, "at",
				(json_int_t)baton_store_now_ms());
	} else { /* nothing written: the record stays, only our claim goes */
		doc = json_deep_copy(it->pub);
		json_object_del(doc, "claim_owner");
		json_object_del(doc, "claim_until");
	}
	if (c) {
		c->r = r;
		c->idx = i;
		rc = baton_store_doc_put(baton_flow_store(r->p->f), INV_COLL_PUBLISHED, id, doc,
					 it->pub_version, saved, c);
	}
	json_decref(doc);
	if (rc == 0) {
		r->pending++;
	} else {
		free(c);
		mark_channel(r->p, r->chi, it->sku, it->marked_ms);
	}
}

static void round_save(round_t *r)
{
	r->stage = R_SAVE;
	r->pending = 1;
	for (size_t i = 0; i < r->n; i++) {
		item_t *it = &r->items[i];
		if (it->save) {
			if (!it->write && it->have_obs) /* the storefront already shows it */
				it->value = it->obs;
			save_one(r, i);
		}
	}
	save_step(r);
}

/* --- scheduling ------------------------------------------------------------------------------ */

/* A round over up to max_batch SKUs of set (the dirty or the drift set of channel c). */
static void round_start(inv_publisher_t *p, size_t c, json_t *set, int drift)
{
	round_t *r = calloc(1, sizeof(*r));
	const char *sku;
	json_t *v;
	void *tmp;

	if (!r)
		return;
	r->items = calloc(p->cfg->max_batch, sizeof(*r->items));
	if (!r->items) {
		free(r);
		return;
	}
	r->p = p;
	r->chi = c;
	r->audits = json_array();
	r->drift = r->force_read = drift;
	json_object_foreach_safe(set, tmp, sku, v) {
		if (r->n >= p->cfg->max_batch)
			break;
		r->items[r->n].sku = strdup(sku);
		r->items[r->n].marked_ms = json_is_integer(v) ? (uint64_t)json_integer_value(v)
							      : now_ms(p);
		if (r->items[r->n].sku)
			r->n++;
		json_object_del(set, sku);
	}
	p->round = r;
	round_load(r);
}

static void drift_listed(baton_store_status_t st, json_t *res, const char *errmsg, void *ud)
{
	inv_publisher_t *p = ud;
	size_t i;
	json_t *d;

	if (st != BATON_STORE_OK) {
		BATON_WARN(NULL, "inventory.drift", "cannot list SKUs: %s (next pass later)", errmsg);
		p->drift_started = 0;
		return;
	}
	for (size_t c = 0; c < p->cfg->n_channels; c++) {
		json_array_foreach(res, i, d) {
			const char *sku = json_string_value(json_object_get(d, "_id"));
			if (sku)
				json_object_set_new(p->drift[c], sku, json_true());
		}
		for (size_t k = 0; k < p->cfg->n_kits; k++)
			json_object_set_new(p->drift[c], p->cfg->kits[k].sku, json_true());
	}
	p->drift_started = 2; /* listed: rounds running */
	memset(&p->dstat, 0, sizeof(p->dstat));
	BATON_INFO(NULL, "inventory.drift_started", "drift pass over %zu SKU(s)",
		   json_array_size(res) + p->cfg->n_kits);
}

static void drift_start(inv_publisher_t *p)
{
	json_t *all = json_object();

	p->drift_wanted = 0;
	if (baton_store_find(baton_flow_store(p->f), INV_COLL_STOCK, all, MAX_SKUS_SEEN,
			     drift_listed, p) == 0)
		p->drift_started = 1;
	json_decref(all);
}

static int drift_pending(const inv_publisher_t *p)
{
	for (size_t c = 0; c < p->cfg->n_channels; c++)
		if (json_object_size(p->drift[c]))
			return 1;
	return p->round && p->round->drift;
}

static void drift_finish(inv_publisher_t *p)
{
	p->drift_started = 0;
	count(p, M_DRIFT_PASSES, 1);
	BATON_INFO(NULL, "inventory.drift_completed", "drift pass: %lld level(s) checked, %lld "
		   "difference(s) corrected", (long long)p->dstat.checked,
		   (long long)p->dstat.differences);
	audit(p, "inventory.drift_pass", json_pack("{s:I, s:I}", "checked",
						   (json_int_t)p->dstat.checked, "differences",
						   (json_int_t)p->dstat.differences));
}

static void on_tick(uv_timer_t *t)
{
	inv_publisher_t *p = t->data;
	uint64_t now = now_ms(p);

	if (!baton_flow_store(p->f) || !baton_flow_http(p->f))
		return; /* not started yet, or shutting down */
	if (!p->metrics_ready && baton_flow_metrics(p->f)) {
		for (int i = 0; i < M_COUNT; i++)
			p->mid[i] = baton_metrics_counter_new(baton_flow_metrics(p->f),
							      metric_info[i][0], metric_info[i][1]);
		p->metrics_ready = 1;
	}
	if (!p->drift_started && (p->drift_wanted || (p->cfg->drift_ms && now >= p->next_drift_ms))) {
		p->next_drift_ms = now + p->cfg->drift_ms;
		drift_start(p);
	}
	if (p->drift_started == 2 && !drift_pending(p))
		drift_finish(p);
	if (p->round) {
		if (p->round->waiting && p->round->stage == R_READ)
			round_read(p->round);
		else if (p->round->waiting)
			round_write(p->round);
		return;
	}
	if (now < p->paused_until_ms)
		return;
	for (size_t c = 0; c < p->cfg->n_channels; c++)
		if (json_object_size(p->dirty[c])) {
			round_start(p, c, p->dirty[c], 0);
			return;
		}
	for (size_t c = 0; c < p->cfg->n_channels; c++)
		if (json_object_size(p->drift[c])) {
			round_start(p, c, p->drift[c], 1);
			return;
		}
}

static void on_usr1(uv_signal_t *s, int signum)
{
	(void)signum;
	BATON_INFO(NULL, "inventory.drift_requested", "SIGUSR1: drift pass requested");
	inv_publisher_drift(s->data);
}

inv_publisher_t *inv_publisher_new(baton_flow_t *f, const inv_config_t *cfg)
{
	inv_publisher_t *p = calloc(1, sizeof(*p));
	uv_loop_t *loop = uv_default_loop(); /* the worker's loop (baton_flow_loop is set later) */

	if (!p)
		return NULL;
	p->f = f;
	p->cfg = cfg;
	p->dirty = calloc(cfg->n_channels, sizeof(json_t *));
	p->drift = calloc(cfg->n_channels, sizeof(json_t *));
	if (!p->dirty || !p->drift) {
		free(p->dirty);
		free(p->drift);
		free(p);
		return NULL;
	}
	for (size_t c = 0; c < cfg->n_channels; c++) {
		p->dirty[c] = json_object();
		p->drift[c] = json_object();
	}
	p->drift_wanted = 1; /* at start: catch up whatever was not published */
	uv_timer_init(loop, &p->timer);
	p->timer.data = p;
	uv_timer_start(&p->timer, on_tick, cfg->coalesce_ms, cfg->coalesce_ms);
	uv_unref((uv_handle_t *)&p->timer);
	uv_signal_init(loop, &p->usr1);
	p->usr1.data = p;
	uv_signal_start(&p->usr1, on_usr1, SIGUSR1);
	uv_unref((uv_handle_t *)&p->usr1);
	return p;
}

void inv_publisher_free(inv_publisher_t *p)
{
	if (!p)
		return;
	uv_close((uv_handle_t *)&p->timer, NULL);
	uv_close((uv_handle_t *)&p->usr1, NULL);
	uv_run(p->timer.loop, UV_RUN_NOWAIT); /* runs the close callbacks */
	BATON_INFO(NULL, "inventory.publisher_stats", "%llu storefront write(s) of SKU levels in "
		   "%llu request(s); %llu stale compare(s), %llu rate-limited",
		   (unsigned long long)p->writes, (unsigned long long)p->requests,
		   (unsigned long long)p->r409, (unsigned long long)p->r429);
	if (p->round)
		round_free(p->round);
	for (size_t c = 0; c < p->cfg->n_channels; c++) {
		json_decref(p->dirty[c]);
		json_decref(p->drift[c]);
	}
	free(p->dirty);
	free(p->drift);
	free(p);
}
