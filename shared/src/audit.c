/* audit.c — batched audit trail writer; see baton/audit.h. Loop thread only. */
#include "baton/audit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "baton/redact.h"

typedef struct audit_entry {
	bson_t *doc;   /* NULL when refused at append (st, errmsg say why) */
	size_t docidx; /* index in the batch's docs array */
	baton_store_status_t st;
	char *errmsg;
	baton_audit_cb cb;
	void *ud;
} audit_entry_t;

typedef struct audit_batch {
	struct audit_batch *next;
	baton_audit_t *a;
	audit_entry_t *e;
	size_t n, cap;
	const bson_t **docs; /* the entries' documents, in order (borrowed from e[]) */
	size_t ndocs;
} audit_batch_t;

struct baton_audit {
	baton_store_t *s;
	uv_loop_t *loop;
	unsigned batch_max, flush_ms;
	uv_timer_t flush_timer; /* runs from the first entry of the open batch */
	uv_timer_t fail_timer;  /* delivers batches the store refused, outside the caller's call */
	audit_batch_t *open;
	audit_batch_t *q_head, *q_tail; /* sealed, waiting for a slot */
	audit_batch_t *failed;          /* refused by the store, for fail_timer */
	unsigned in_flight;
	size_t pending;
	int closing, finishing, handles_open;
	void (*done)(void *);
	void *done_ud;
};

static void pump(baton_audit_t *a);
static void maybe_finish(baton_audit_t *a);

static void batch_free(audit_batch_t *b)
{
	for (size_t i = 0; i < b->n; i++) {
		if (b->e[i].doc)
			bson_destroy(b->e[i].doc);
		free(b->e[i].errmsg);
	}
	free(b->e);
	free(b->docs);
	free(b);
}

/* Runs every entry's callback: results[docidx] for sent entries (DUPLICATE = already stored =
 * OK), the refusal for the others. results NULL: all sent entries get `fallback`. */
static void batch_complete(audit_batch_t *b, const baton_store_status_t *results,
			   baton_store_status_t fallback, const char *errmsg)
{
	baton_audit_t *a = b->a;

	for (size_t i = 0; i < b->n; i++) {
		audit_entry_t *e = &b->e[i];
		baton_store_status_t st = e->st;
		const char *msg = e->errmsg ? e->errmsg : "";

		if (e->doc) {
			st = results ? results[e->docidx] : fallback;
			if (st == BATON_STORE_DUPLICATE)
				st = BATON_STORE_OK;
			msg = errmsg && *errmsg ? errmsg : baton_store_status_name(st);
		}
		a->pending--;
		if (e->cb)
			e->cb(st, st == BATON_STORE_OK ? "" : msg, e->ud);
	}
	batch_free(b);
}

static void on_batch_done(const baton_store_status_t *results, size_t n, const char *errmsg,
			  void *ud)
{
	audit_batch_t *b = ud;
	baton_audit_t *a = b->a;

	a->in_flight--;
	batch_complete(b, results, BATON_STORE_ERROR, errmsg);
	pump(a);
	maybe_finish(a);
}

static void on_fail_timer(uv_timer_t *t)
{
	baton_audit_t *a = t->data;

	while (a->failed) {
		audit_batch_t *b = a->failed;
		a->failed = b->next;
		batch_complete(b, NULL, BATON_STORE_UNAVAILABLE,
			       "audit: the store refused the batch");
	}
	maybe_finish(a);
}

static void send_batch(baton_audit_t *a, audit_batch_t *b)
{
	b->docs = calloc(b->n ? b->n : 1, sizeof(*b->docs));
	if (b->docs) {
		for (size_t i = 0; i < b->n; i++)
			if (b->e[i].doc) {
				b->e[i].docidx = b->ndocs;
				b->docs[b->ndocs++] = b->e[i].doc;
			}
		if (baton_store_insert_many_bson(a->s, BATON_AUDIT_COLLECTION, b->docs, b->ndocs,
						 BATON_AUDIT_ATTEMPTS, on_batch_done, b) == 0) {
			a->in_flight++;
			return;
		}
	}
	/* refused (store closed, out of memory): fail the entries, but not from inside the
	 * caller's own call */
	b->next = a->failed;
	a->failed = b;
	uv_timer_start(&a->fail_timer, on_fail_timer, 0, 0);
}

static void pump(baton_audit_t *a)
{
	while (a->in_flight < BATON_AUDIT_MAX_IN_FLIGHT && a->q_head) {
		audit_batch_t *b = a->q_head;
		a->q_head = b->next;
		if (!a->q_head)
			a->q_tail = NULL;
		b->next = NULL;
		send_batch(a, b);
	}
}

static void seal(baton_audit_t *a)
{
	audit_batch_t *b = a->open;

	uv_timer_stop(&a->flush_timer);
	if (!b)
		return;
	a->open = NULL;
	if (a->q_tail)
		a->q_tail->next = b;
	else
		a->q_head = b;
	a->q_tail = b;
	pump(a);
}

static void on_flush_timer(uv_timer_t *t)
{
	seal(t->data);
}

baton_audit_t *baton_audit_new(baton_store_t *s, uv_loop_t *loop, unsigned batch_max,
			       unsigned flush_ms)
{
	baton_audit_t *a = calloc(1, sizeof(*a));

	if (!a)
		return NULL;
	a->s = s;
	a->loop = loop;
	a->batch_max = batch_max ? batch_max : 1;
	a->flush_ms = flush_ms;
	uv_timer_init(loop, &a->flush_timer);
	uv_timer_init(loop, &a->fail_timer);
	a->flush_timer.data = a;
	a->fail_timer.data = a;
	return a;
}

/* The redacted, time-stamped BSON of entry (stolen), or NULL with err. */
static bson_t *entry_to_bson(json_t *entry, char *err, size_t errlen)
{
	json_t *red = baton_redact(entry);
	bson_t *doc = NULL;
	bson_oid_t oid;

	json_decref(entry);
	if (!red) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (!json_object_get(red, "ts")) {
		char ts[40];
		baton_store_rfc3339_ms(baton_store_now_ms(), ts, sizeof(ts));
		json_object_set_new(red, "ts", json_string(ts));
	}
	json_object_del(red, "_id");
	doc = bson_new();
	bson_oid_init(&oid, NULL); /* ours, before the first attempt: retries cannot duplicate */
	BSON_APPEND_OID(doc, "_id", &oid);
	if (baton_store_json_to_bson(red, doc, err, errlen)) {
		bson_destroy(doc);
		doc = NULL;
	}
	json_decref(red);
	return doc;
}

static audit_batch_t *open_batch(baton_audit_t *a)
{
	audit_batch_t *b = a->open;

	if (!b) {
		b = calloc(1, sizeof(*b));
		if (!b)
			return NULL;
		b->a = a;
		a->open = b;
	}
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 16;
		audit_entry_t *e;
		if (cap > a->batch_max)
			cap = a->batch_max;
		e = realloc(b->e, cap * sizeof(*e));
		if (!e)
			return NULL;
		b->e = e;
		b->cap = cap;
	}
	return b;
}

int baton_audit_append(baton_audit_t *a, json_t *entry, baton_audit_cb cb, void *ud)
{
	audit_batch_t *b;
	audit_entry_t *e;
	char err[512];
	bson_t *doc;

	if (a->closing || !json_is_object(entry) || !(b = open_batch(a))) {
		json_decref(entry);
		return -1;
	}
	err[0] = '\0';
	doc = entry_to_bson(entry, err, sizeof(err));
	e = &b->e[b->n];
	*e = (audit_entry_t){.doc = doc, .cb = cb, .ud = ud};
	if (!doc) {
		char msg[600];
		snprintf(msg, sizeof(msg), "audit entry refused: %s", err);
		e->st = BATON_STORE_ERROR;
		e->errmsg = strdup(msg);
	}
	b->n++;
	a->pending++;
	if (b->n == 1)
		uv_timer_start(&a->flush_timer, on_flush_timer, a->flush_ms, 0);
	if (b->n >= a->batch_max)
		seal(a);
	return 0;
}

void baton_audit_flush(baton_audit_t *a)
{
	seal(a);
}

size_t baton_audit_pending(const baton_audit_t *a)
{
	return a->pending;
}

static void on_handle_closed(uv_handle_t *h)
{
	baton_audit_t *a = h->data;
	void (*done)(void *) = a->done;
	void *ud = a->done_ud;

	if (--a->handles_open > 0)
		return;
	free(a);
	if (done)
		done(ud);
}

static void maybe_finish(baton_audit_t *a)
{
	if (!a->closing || a->finishing || a->in_flight || a->q_head || a->open || a->failed)
		return;
	a->finishing = 1;
	a->handles_open = 2;
	uv_close((uv_handle_t *)&a->flush_timer, on_handle_closed);
	uv_close((uv_handle_t *)&a->fail_timer, on_handle_closed);
}

void baton_audit_close(baton_audit_t *a, void (*done)(void *ud), void *ud)
{
	if (a->closing)
		return;
	a->closing = 1;
	a->done = done;
	a->done_ud = ud;
	seal(a);
	maybe_finish(a);
}
