/* db.c — dead_letters and audit records. See db.h. */
#include "db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "baton/headers.h"

int rp_db_open(rp_db_t *d, const char *uri_s, const char *db, char *err, size_t errlen)
{
	bson_error_t e;
	mongoc_uri_t *uri = mongoc_uri_new_with_error(uri_s, &e);
	bson_t ping = BSON_INITIALIZER;
	bool ok;

	memset(d, 0, sizeof(*d));
	if (!uri) {
		snprintf(err, errlen, "BATON_MONGO_URI is not a valid MongoDB URI");
		return -1;
	}
	if (!mongoc_uri_has_option(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS))
		mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, 3000);
	if (!mongoc_uri_has_option(uri, MONGOC_URI_CONNECTTIMEOUTMS))
		mongoc_uri_set_option_as_int32(uri, MONGOC_URI_CONNECTTIMEOUTMS, 3000);
	mongoc_uri_set_appname(uri, "baton-replay");
	d->c = mongoc_client_new_from_uri(uri);
	mongoc_uri_destroy(uri);
	if (!d->c) {
		snprintf(err, errlen, "cannot create a MongoDB client");
		return -1;
	}
	mongoc_client_set_error_api(d->c, MONGOC_ERROR_API_VERSION_2);
	snprintf(d->name, sizeof(d->name), "%s", db);
	BSON_APPEND_INT32(&ping, "ping", 1);
	ok = mongoc_client_command_simple(d->c, "admin", &ping, NULL, NULL, &e);
	bson_destroy(&ping);
	if (!ok) {
		snprintf(err, errlen, "MongoDB unreachable: %s", e.message);
		rp_db_close(d);
		return -1;
	}
	return 0;
}

void rp_db_close(rp_db_t *d)
{
	if (d->c)
		mongoc_client_destroy(d->c);
	d->c = NULL;
}

static void put_opt(bson_t *b, const char *k, const char *v)
{
	if (v && v[0])
		BSON_APPEND_UTF8(b, k, v);
	else
		BSON_APPEND_NULL(b, k);
}

static unsigned replays_after(const rp_action_t *a, const rp_msg_t *m)
{
	return m->it.replays + (!strcmp(a->event, "replayed") && m->outcome == 1);
}

static const char *event_of(const rp_action_t *a, const rp_msg_t *m)
{
	if (m->outcome == 1)
		return a->event;
	return !strcmp(a->event, "replayed") ? "replay_failed" : "discard_failed";
}

static void audit_entry(bson_t *doc, const rp_action_t *a, const rp_msg_t *m, const char *ts)
{
	const rp_item_t *it = &m->it;

	BSON_APPEND_UTF8(doc, "step", event_of(a, m));
	BSON_APPEND_UTF8(doc, "flow", it->flow);
	BSON_APPEND_UTF8(doc, "worker", a->tool_id);
	BSON_APPEND_UTF8(doc, "message_id", it->id);
	put_opt(doc, "correlation_id", it->correlation_id);
	if (it->subject[0])
		BSON_APPEND_UTF8(doc, "subject", it->subject);
	if (it->type[0])
		BSON_APPEND_UTF8(doc, "type", it->type);
	BSON_APPEND_UTF8(doc, "operator", a->op);
	put_opt(doc, "reason", a->reason);
	put_opt(doc, "ticket", a->ticket);
	BSON_APPEND_UTF8(doc, "outcome", m->outcome == 1 ? "ok" : "failed");
	if (m->outcome != 1)
		BSON_APPEND_UTF8(doc, "why", m->why);
	put_opt(doc, "error_class", it->cls);
	put_opt(doc, "error_code", it->code);
	BSON_APPEND_INT64(doc, "replays", replays_after(a, m));
	BSON_APPEND_UTF8(doc, "ts", ts);
}

static void history_parked(bson_t *arr, const rp_item_t *it)
{
	bson_t h;

	BSON_APPEND_DOCUMENT_BEGIN(arr, "0", &h);
	BSON_APPEND_UTF8(&h, "event", "parked");
	put_opt(&h, "at", it->last_failed_at);
	put_opt(&h, "class", it->cls);
	put_opt(&h, "code", it->code);
	put_opt(&h, "message", it->message);
	BSON_APPEND_INT64(&h, "attempts", it->attempts);
	BSON_APPEND_INT64(&h, "replays", it->replays);
	put_opt(&h, "worker", it->worker);
	bson_append_document_end(arr, &h);
}

static void history_action(bson_t *arr, const rp_action_t *a, const rp_msg_t *m, const char *ts)
{
	bson_t h;

	BSON_APPEND_DOCUMENT_BEGIN(arr, "1", &h);
	BSON_APPEND_UTF8(&h, "event", event_of(a, m));
	BSON_APPEND_UTF8(&h, "at", ts);
	BSON_APPEND_UTF8(&h, "operator", a->op);
	put_opt(&h, "reason", a->reason);
	put_opt(&h, "ticket", a->ticket);
	BSON_APPEND_UTF8(&h, "outcome", m->outcome == 1 ? "ok" : "failed");
	if (m->outcome != 1)
		BSON_APPEND_UTF8(&h, "why", m->why);
	bson_append_document_end(arr, &h);
}

static void set_body(bson_t *b, const rp_msg_t *m)
{
	amqp_bytes_t body = m->env.message.body;

	if (bson_utf8_validate(body.bytes, body.len, false))
		bson_append_utf8(b, "body", -1, body.bytes, (int)body.len);
	else
		bson_append_binary(b, "body", -1, BSON_SUBTYPE_BINARY, body.bytes,
				   (uint32_t)body.len);
}

static void set_fields(bson_t *set, const rp_action_t *a, const rp_msg_t *m, const char *ts,
		       int keep_body)
{
	const rp_item_t *it = &m->it;
	bson_t err, disc;

	BSON_APPEND_UTF8(set, "flow", it->flow);
	BSON_APPEND_UTF8(set, "message_id", it->id);
	put_opt(set, "subject", it->subject);
	put_opt(set, "type", it->type);
	put_opt(set, "correlation_id", it->correlation_id);
	/* A failed action leaves the message parked. */
	BSON_APPEND_UTF8(set, "status", m->outcome == 1 ? a->event : "parked");
	BSON_APPEND_DOCUMENT_BEGIN(set, "error", &err);
	put_opt(&err, "class", it->cls);
	put_opt(&err, "code", it->code);
	put_opt(&err, "message", it->message);
	BSON_APPEND_INT64(&err, "http_status", it->http_status);
	bson_append_document_end(set, &err);
	BSON_APPEND_INT64(set, "attempts", it->attempts);
	BSON_APPEND_INT64(set, "replays", replays_after(a, m));
	put_opt(set, "first_failed_at", it->first_failed_at);
	put_opt(set, "last_failed_at", it->last_failed_at);
	BSON_APPEND_UTF8(set, "updated_at", ts);
	if (keep_body && m->outcome == 1) {
		BSON_APPEND_DOCUMENT_BEGIN(set, "discard", &disc);
		BSON_APPEND_UTF8(&disc, "operator", a->op);
		put_opt(&disc, "reason", a->reason);
		put_opt(&disc, "ticket", a->ticket);
		BSON_APPEND_UTF8(&disc, "at", ts);
		set_body(&disc, m);
		bson_append_document_end(set, &disc);
	}
}

static void dead_update(bson_t *u, const rp_action_t *a, const rp_msg_t *m, const char *ts,
			int keep_body)
{
	bson_t set, soi, push, hist, each;

	BSON_APPEND_DOCUMENT_BEGIN(u, "$set", &set);
	set_fields(&set, a, m, ts, keep_body);
	bson_append_document_end(u, &set);
	BSON_APPEND_DOCUMENT_BEGIN(u, "$setOnInsert", &soi);
	BSON_APPEND_UTF8(&soi, "created_at", ts);
	bson_append_document_end(u, &soi);
	BSON_APPEND_DOCUMENT_BEGIN(u, "$push", &push);
	BSON_APPEND_DOCUMENT_BEGIN(&push, "history", &hist);
	BSON_APPEND_ARRAY_BEGIN(&hist, "$each", &each);
	history_parked(&each, &m->it);
	history_action(&each, a, m, ts);
	bson_append_array_end(&hist, &each);
	bson_append_document_end(&push, &hist);
	bson_append_document_end(u, &push);
}

static void dead_key(char *key, size_t len, const rp_msg_t *m)
{
	snprintf(key, len, "%s:%s", m->it.flow, m->it.id);
}

/* The new record of a message seen for the first time: the same fields as dead_update sets. */
static void dead_doc(bson_t *doc, const rp_action_t *a, const rp_msg_t *m, const char *ts,
		     int keep_body)
{
	char key[512];
	bson_t hist;

	dead_key(key, sizeof(key), m);
	BSON_APPEND_UTF8(doc, "_id", key);
	set_fields(doc, a, m, ts, keep_body);
	BSON_APPEND_UTF8(doc, "created_at", ts);
	BSON_APPEND_ARRAY_BEGIN(doc, "history", &hist);
	history_parked(&hist, &m->it);
	history_action(&hist, a, m, ts);
	bson_append_array_end(doc, &hist);
}

/* Marks exists[i] for every write error 11000 (the record is there: update it instead); 0 when
 * every other write succeeded. */
static int mark_duplicates(const bson_t *reply, const size_t *map, char *exists, char *err,
			   size_t errlen)
{
	bson_iter_t it, arr;
	int rc = 0;

	if (!bson_iter_init_find(&it, reply, "writeErrors") || !BSON_ITER_HOLDS_ARRAY(&it) ||
	    !bson_iter_recurse(&it, &arr))
		return -1;
	while (bson_iter_next(&arr)) {
		bson_iter_t e;
		int64_t idx = -1, code = 0;
		const char *msg = "unknown error";
		if (!BSON_ITER_HOLDS_DOCUMENT(&arr) || !bson_iter_recurse(&arr, &e))
			continue;
		while (bson_iter_next(&e)) {
			if (!strcmp(bson_iter_key(&e), "index"))
				idx = bson_iter_as_int64(&e);
			else if (!strcmp(bson_iter_key(&e), "code"))
				code = bson_iter_as_int64(&e);
			else if (!strcmp(bson_iter_key(&e), "errmsg") && BSON_ITER_HOLDS_UTF8(&e))
				msg = bson_iter_utf8(&e, NULL);
		}
		if (code == 11000 && idx >= 0) {
			exists[map[idx]] = 1;
		} else {
			snprintf(err, errlen, "dead_letters insert: %s", msg);
			rc = -1;
		}
	}
	return rc;
}

/* Inserts a record for each message (the common case: its first action). FerretDB appends far
 * faster than it finds a document to update, so updates are only for records already there
 * (duplicate _id), marked in exists[]. */
static int insert_new(mongoc_collection_t *coll, const rp_action_t *a, rp_msg_t **msgs, size_t n,
		      char *exists, int keep_body, const char *ts, char *err, size_t errlen)
{
	bson_t *docs = calloc(n, sizeof(bson_t));
	const bson_t **ptrs = calloc(n, sizeof(*ptrs));
	size_t *map = calloc(n, sizeof(*map));
	bson_t *opts = BCON_NEW("ordered", BCON_BOOL(false));
	bson_t reply = BSON_INITIALIZER;
	bson_error_t e;
	int rc = 0;

	if (!docs || !ptrs || !map) {
		snprintf(err, errlen, "out of memory");
		rc = -1;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		bson_init(&docs[i]);
		dead_doc(&docs[i], a, msgs[i], ts, keep_body);
		ptrs[i] = &docs[i];
		map[i] = i;
		exists[i] = 0;
	}
	if (!mongoc_collection_insert_many(coll, ptrs, n, opts, &reply, &e) &&
	    mark_duplicates(&reply, map, exists, err, errlen) != 0) {
		if (!err[0] || !strstr(err, "dead_letters"))
			snprintf(err, errlen, "dead_letters insert: %s", e.message);
		rc = -1;
	}
	for (size_t i = 0; i < n; i++)
		bson_destroy(&docs[i]);
out:
	bson_destroy(&reply);
	bson_destroy(opts);
	free(docs);
	free(ptrs);
	free(map);
	return rc;
}

/* Records already there (a message parked again, or acted on twice after a crash): one update
 * command each — FerretDB stalls on large multi-statement updates. */
static int update_old(mongoc_collection_t *coll, const rp_action_t *a, rp_msg_t **msgs, size_t n,
		      const char *exists, int keep_body, const char *ts, char *err, size_t errlen)
{
	bson_t *opts = BCON_NEW("upsert", BCON_BOOL(true));
	bson_error_t e;
	int rc = 0;

	for (size_t i = 0; i < n && rc == 0; i++) {
		char key[512];
		bson_t sel = BSON_INITIALIZER, u = BSON_INITIALIZER;
		if (!exists[i])
			continue;
		dead_key(key, sizeof(key), msgs[i]);
		BSON_APPEND_UTF8(&sel, "_id", key);
		dead_update(&u, a, msgs[i], ts, keep_body);
		if (!mongoc_collection_update_one(coll, &sel, &u, opts, NULL, &e)) {
			snprintf(err, errlen, "dead_letters update: %s", e.message);
			rc = -1;
		}
		bson_destroy(&sel);
		bson_destroy(&u);
	}
	bson_destroy(opts);
	return rc;
}

static int write_dead(rp_db_t *d, const rp_action_t *a, rp_msg_t **msgs, size_t n, int keep_body,
		      const char *ts, char *err, size_t errlen)
{
	mongoc_collection_t *coll = mongoc_client_get_collection(d->c, d->name, "dead_letters");
	char *exists = calloc(n, 1);
	int rc = -1;

	if (!exists) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (insert_new(coll, a, msgs, n, exists, keep_body, ts, err, errlen) != 0 ||
	    update_old(coll, a, msgs, n, exists, keep_body, ts, err, errlen) != 0)
		goto out;
	rc = 0;
out:
	free(exists);
	mongoc_collection_destroy(coll);
	return rc;
}

static int write_audit(rp_db_t *d, const rp_action_t *a, rp_msg_t **msgs, size_t n,
		       const char *ts, char *err, size_t errlen)
{
	mongoc_collection_t *coll = mongoc_client_get_collection(d->c, d->name, "audit");
	bson_t *docs = calloc(n, sizeof(bson_t));
	const bson_t **ptrs = calloc(n, sizeof(*ptrs));
	bson_error_t e;
	int rc = 0;

	if (!docs || !ptrs) {
		snprintf(err, errlen, "out of memory");
		rc = -1;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		bson_init(&docs[i]);
		audit_entry(&docs[i], a, msgs[i], ts);
		ptrs[i] = &docs[i];
	}
	if (!mongoc_collection_insert_many(coll, ptrs, n, NULL, NULL, &e)) {
		snprintf(err, errlen, "audit write: %s", e.message);
		rc = -1;
	}
	for (size_t i = 0; i < n; i++)
		bson_destroy(&docs[i]);
out:
	free(docs);
	free(ptrs);
	mongoc_collection_destroy(coll);
	return rc;
}

int rp_db_record(rp_db_t *d, const rp_action_t *a, rp_msg_t **msgs, size_t n, int keep_body,
		 char *err, size_t errlen)
{
	char ts[40];

	if (!n)
		return 0;
	baton_now_rfc3339(ts, sizeof(ts));
	if (write_dead(d, a, msgs, n, keep_body, ts, err, errlen) != 0)
		return -1;
	return write_audit(d, a, msgs, n, ts, err, errlen);
}

static int find_all(rp_db_t *d, const char *coll_name, const bson_t *q, const bson_t *opts,
		    json_t *out, char *err, size_t errlen)
{
	mongoc_collection_t *coll = mongoc_client_get_collection(d->c, d->name, coll_name);
	mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, q, opts, NULL);
	const bson_t *doc;
	bson_error_t e;
	int rc = 0;

	while (mongoc_cursor_next(cur, &doc)) {
		char *s = bson_as_relaxed_extended_json(doc, NULL);
		json_t *j = s ? json_loads(s, 0, NULL) : NULL;
		if (j)
			json_array_append_new(out, j);
		bson_free(s);
	}
	if (mongoc_cursor_error(cur, &e)) {
		snprintf(err, errlen, "%s: %s", coll_name, e.message);
		rc = -1;
	}
	mongoc_cursor_destroy(cur);
	mongoc_collection_destroy(coll);
	return rc;
}

int rp_db_history(rp_db_t *d, const char *id, json_t **records, json_t **trail, char *err,
		  size_t errlen)
{
	bson_t *q1 = BCON_NEW("message_id", BCON_UTF8(id));
	bson_t *o1 = BCON_NEW("sort", "{", "flow", BCON_INT32(1), "}");
	bson_t *q2 = BCON_NEW("message_id", BCON_UTF8(id), "step", "{", "$ne", "received", "}");
	bson_t *o2 = BCON_NEW("sort", "{", "ts", BCON_INT32(1), "}", "limit", BCON_INT64(500));
	int rc;

	*records = json_array();
	*trail = json_array();
	rc = find_all(d, "dead_letters", q1, o1, *records, err, errlen);
	if (rc == 0)
		rc = find_all(d, "audit", q2, o2, *trail, err, errlen);
	bson_destroy(q1);
	bson_destroy(o1);
	bson_destroy(q2);
	bson_destroy(o2);
	return rc;
}
