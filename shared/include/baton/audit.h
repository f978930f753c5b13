/* baton/audit.h — the audit trail: a batched, append-only writer into collection "audit".
 *
 * Runs on the loop thread; the inserts go through baton_store (libuv thread pool). A batch is
 * sealed when it holds batch_max entries or flush_ms after its first entry, and written with one
 * insert_many (ordered=false); at most BATON_AUDIT_MAX_IN_FLIGHT batches are written at once,
 * later ones wait in order. Every entry gets its own ObjectId "_id" before the first attempt, so
 * a batch retried after a network error (up to BATON_AUDIT_ATTEMPTS tries in all) cannot insert
 * an entry twice: 11000 for an entry means it is already stored, and counts as success.
 *
 * The audit never drops silently: an entry's callback runs once the batch containing it is
 * durable (OK) or has failed for that entry (UNAVAILABLE / ERROR), so that the caller retries
 * the message instead of acking it. Entries repeated by redelivery are expected (append-only). */
#ifndef BATON_AUDIT_H
#define BATON_AUDIT_H

#include <jansson.h>
#include <stddef.h>
#include <uv.h>

#include "baton/store.h"

#define BATON_AUDIT_COLLECTION "audit"
#define BATON_AUDIT_MAX_IN_FLIGHT 2
#define BATON_AUDIT_ATTEMPTS 3

typedef struct baton_audit baton_audit_t;

/* Loop thread. errmsg "" on OK. */
typedef void (*baton_audit_cb)(baton_store_status_t st, const char *errmsg, void *ud);

/* batch_max 0 counts as 1. The store must outlive the audit (close the audit first). NULL on
 * out of memory. */
baton_audit_t *baton_audit_new(baton_store_t *s, uv_loop_t *loop, unsigned batch_max,
			       unsigned flush_ms);
/* Appends an entry (a JSON object; the reference is stolen in every case). What is stored is
 * baton_redact(entry) with "ts" (RFC 3339 UTC with ms) added if absent and the entry's own
 * "_id", if any, replaced. cb (may be NULL) runs exactly once on the loop thread, never from
 * inside this call. An entry that cannot be stored as BSON ('$' or '.' in a key...) gets ERROR
 * with the reason. Returns 0, or -1 (cb never called) when entry is not an object, on out of
 * memory, or after baton_audit_close. */
int baton_audit_append(baton_audit_t *a, json_t *entry, baton_audit_cb cb, void *ud);
/* Seals the open batch now (it is written as soon as a slot is free). */
void baton_audit_flush(baton_audit_t *a);
/* Entries appended whose callback has not run yet. */
size_t baton_audit_pending(const baton_audit_t *a);
/* Flushes what is pending, waits (without running the loop) for every batch to finish, closes
 * the timer and frees a; then done(ud) runs (done may be NULL). No append after this call. */
void baton_audit_close(baton_audit_t *a, void (*done)(void *ud), void *ud);

#endif
