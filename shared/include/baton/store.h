/* baton/store.h — MongoDB documents and the idempotency ledger, driven from a libuv loop.
 *
 * libmongoc is blocking, so it never runs on the loop thread: every asynchronous operation runs
 * on libuv's thread pool (uv_queue_work) with a client taken from a mongoc_client_pool_t, and the
 * caller's callback runs on the loop thread (in the after-work callback). Requirement for the
 * program: set UV_THREADPOOL_SIZE to at least pool_size (before the first uv_queue_work of the
 * process), otherwise pool clients sit idle while store operations wait for a thread, and
 * libuv's other users (getaddrinfo, fs) queue behind MongoDB calls.
 *
 * Data goes in and out as jansson values. JSON -> BSON is explicit (never bson_new_from_json on
 * untrusted input): keys that start with '$' or contain '.' or a NUL byte are refused with
 * BATON_STORE_ERROR and a message naming the key's path (JSON Pointer, e.g. "/lines/2/$where");
 * integers stay int64, reals double, strings must be valid UTF-8, nesting is limited to
 * BATON_STORE_MAX_DEPTH. BSON -> JSON: int32/int64 -> integer, double -> real (NaN/inf -> null),
 * document/array, bool, null, string, date -> RFC 3339 UTC string with milliseconds, ObjectId ->
 * 24-character hex string, decimal128 -> string; other BSON types are an error. FerretDB v1
 * refuses an array directly inside an array (ERROR from the server): wrap inner arrays in
 * objects.
 *
 * Every asynchronous call returns 0 and later calls cb exactly once on the loop thread (never
 * from inside the call itself), or returns -1 without ever calling cb (invalid arguments, out of
 * memory, store closing). Problems with the data itself (bad key, invalid UTF-8) are reported
 * through cb as BATON_STORE_ERROR, like server errors. The program calls mongoc_cleanup() once
 * at exit. */
#ifndef BATON_STORE_H
#define BATON_STORE_H

#include <bson/bson.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* Deepest nesting of objects/arrays accepted (the top-level document is level 1). */
#define BATON_STORE_MAX_DEPTH 64

typedef enum baton_store_status {
	BATON_STORE_OK = 0,
	BATON_STORE_NOT_FOUND,
	BATON_STORE_DUPLICATE,   /* ledger key already recorded: result holds the stored outcome */
	BATON_STORE_CONFLICT,    /* optimistic version check failed */
	BATON_STORE_UNAVAILABLE, /* transient: server selection, network, timeout, not primary... */
	BATON_STORE_ERROR        /* permanent: invalid document, bad key, other server error */
} baton_store_status_t;

typedef struct baton_store baton_store_t;

/* result: owned by the module, valid during the callback (json_incref to keep); may be NULL.
 * errmsg "" on success. Runs on the loop thread. */
typedef void (*baton_store_cb)(baton_store_status_t st, json_t *result, const char *errmsg,
			       void *ud);

/* "ok", "not_found", "duplicate", "conflict", "unavailable", "error". */
const char *baton_store_status_name(baton_store_status_t st);

/* Creates the client pool (max pool_size clients, error API v2). connectTimeoutMS=2000,
 * socketTimeoutMS=15000 and serverSelectionTimeoutMS=3000 are added to the URI unless it sets
 * them. Does not connect (see baton_store_ping). Calls mongoc_init() and, the first time, routes
 * libmongoc's log messages into baton_log (event "mongoc.log"; its debug/trace dropped). Returns
 * NULL with err on an invalid URI, database name or pool size (1..1024). */
baton_store_t *baton_store_open(uv_loop_t *loop, const char *uri, const char *db,
				unsigned pool_size, char *err, size_t errlen);
/* Blocking, at start only: creates the indexes (ledger unique on key; audit on message_id,
 * correlation_id, subject, ts; dead_letters unique on message_id and on flow+status).
 * Idempotent. Returns 0 or -1 with err. */
int baton_store_ensure_indexes(baton_store_t *s, char *err, size_t errlen);
/* Blocking ping for /readyz and start-up: 0 when the server answers, -1 with err. */
int baton_store_ping(baton_store_t *s, char *err, size_t errlen);
/* Asynchronous ping: OK | UNAVAILABLE | ERROR, result NULL. */
int baton_store_ping_async(baton_store_t *s, baton_store_cb cb, void *ud);
/* Operations started whose callback has not returned yet. */
size_t baton_store_in_flight(const baton_store_t *s);
/* Destroys the pool and frees s. Meant for when nothing is in flight; when operations still
 * are, it is deferred until the last callback has returned (keep the loop running until then).
 * No operation may be started after it. Safe to call from a callback. */
void baton_store_close(baton_store_t *s);

/* --- idempotency ledger (collection "ledger", unique key "key") ---------------------------- */

/* OK + {"key","outcome","at"} | NOT_FOUND. */
int baton_store_ledger_get(baton_store_t *s, const char *key, baton_store_cb cb, void *ud);
/* Records {"key", "outcome" (any JSON value, borrowed; NULL -> null), "at" (BSON date of the
 * call, read back as RFC 3339)}.
 * OK + the record | DUPLICATE + the record stored first (11000: the effect is already done). */
int baton_store_ledger_put(baton_store_t *s, const char *key, json_t *outcome,
			   baton_store_cb cb, void *ud);

/* --- documents with optimistic versions ---------------------------------------------------- */
/* Ids are strings: field "_id" is the id, field "version" (int64) is managed by the store;
 * top-level "_id" and "version" members of the caller's doc are ignored. */

/* OK + doc | NOT_FOUND. */
int baton_store_doc_get(baton_store_t *s, const char *coll, const char *id, baton_store_cb cb,
			void *ud);
/* expected_version 0: insert with version 1, CONFLICT if the id exists. expected_version n > 0:
 * replace only if the stored version == n, then the stored version is n + 1 (n + 2 or n + 3
 * after a writer died in the middle of a put); CONFLICT if the stored version differs or another
 * put from n is under way; NOT_FOUND if absent. Of several puts from the same version exactly
 * one succeeds, on FerretDB v1 too, whose own replace is not atomic (the store serialises them
 * with "version tickets", short-lived documents of collection doc_tickets: see store.c).
 * result = the stored document (use its version). doc (an object) is borrowed. */
int baton_store_doc_put(baton_store_t *s, const char *coll, const char *id, json_t *doc,
			int64_t expected_version, baton_store_cb cb, void *ud);
/* Plain insert of an object (e.g. a dead_letters record, borrowed); an ObjectId "_id" is added
 * when it has none (such a document is not addressable by the string-id calls: give records you
 * will update a string "_id"). OK + the stored document | DUPLICATE (unique index violation,
 * result NULL). */
int baton_store_insert(baton_store_t *s, const char *coll, json_t *doc, baton_store_cb cb,
		       void *ud);
/* $set of fields' top-level members (borrowed object, not empty, no "_id") on the document with
 * that _id; does not touch "version". OK (result NULL) | NOT_FOUND. */
int baton_store_set(baton_store_t *s, const char *coll, const char *id, json_t *fields,
		    baton_store_cb cb, void *ud);

/* Documents of coll whose top-level fields equal those of filter (borrowed object; {} matches
 * all), at most limit (> 0) of them, in _id order. Values must be strings, integers, booleans or
 * null (no operators, no sub-documents); a bad filter is ERROR through cb.
 * OK + a JSON array of documents (possibly empty). Keep hot queries on _id or indexed fields:
 * FerretDB v1 pushes down only simple equality. */
int baton_store_find(baton_store_t *s, const char *coll, json_t *filter, size_t limit,
		     baton_store_cb cb, void *ud);

/* --- bulk insert (used by the audit writer) ------------------------------------------------ */

/* results[i] for docs[i]: OK (inserted), DUPLICATE (11000: a document with its "_id" or another
 * unique key already exists), or UNAVAILABLE / ERROR. errmsg: the first failure, "" if none. */
typedef void (*baton_store_many_cb)(const baton_store_status_t *results, size_t n,
				    const char *errmsg, void *ud);
/* insert_many (ordered=false) of n prepared documents, borrowed until cb has run. Give each
 * document its own "_id" so that a retry cannot insert twice: after an UNAVAILABLE failure the
 * documents without a definite result are sent again, up to `attempts` tries in all (short
 * pauses on the worker thread), and 11000 on a retry shows up as DUPLICATE. n may be 0. */
int baton_store_insert_many_bson(baton_store_t *s, const char *coll, const bson_t *const *docs,
				 size_t n, unsigned attempts, baton_store_many_cb cb, void *ud);

/* --- conversions (pure, exposed for tests and for callers that build BSON) ----------------- */

/* Appends the members of JSON object obj to out (initialised by the caller). 0, or -1 with err
 * naming the offending path; out is then partially written (destroy it). */
int baton_store_json_to_bson(const json_t *obj, bson_t *out, char *err, size_t errlen);
/* New JSON object from a BSON document, or NULL with err. */
json_t *baton_store_bson_to_json(const bson_t *b, char *err, size_t errlen);
/* Wall clock in milliseconds since the epoch. */
int64_t baton_store_now_ms(void);
/* Milliseconds since the epoch -> "2024-05-06T07:08:09.123Z" (out: at least 32 bytes). */
void baton_store_rfc3339_ms(int64_t ms, char *out, size_t outlen);
/* Classifies a libmongoc error (API v2): UNAVAILABLE for network, server selection, timeouts
 * and "not primary"-like server codes, DUPLICATE for 11000/11001/12582, ERROR otherwise. reply
 * (may be NULL) is consulted for a RetryableWriteError label. */
baton_store_status_t baton_store_classify(const bson_error_t *e, const bson_t *reply);

#endif
