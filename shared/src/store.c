/* store.c — MongoDB documents and idempotency ledger on libuv's thread pool; see baton/store.h.
 *
 * Threading: everything that touches jansson or the caller's data runs on the loop thread (at
 * submission: JSON -> BSON; in the after-work callback: BSON -> JSON and the caller's callback).
 * The work callback only reads the prepared BSON and talks to the server through a pool client,
 * and writes its outcome into the operation (st, out, errmsg, results) for the after-work
 * callback; uv_queue_work orders the two. */
#include "baton/store.h"

#include <inttypes.h>
#include <pthread.h>
#include <math.h>
#include <mongoc/mongoc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "baton/log.h"

#define LEDGER_COLL "ledger"
#define AUDIT_COLL "audit"
#define DEAD_COLL "dead_letters"
#define DB_NAME_MAX 63
#define COLL_NAME_MAX 120
#define POOL_SIZE_MAX 1024
#define ERRMSG_MAX 768 /* room for a prefix and a bson_error_t message */

struct baton_store {
	uv_loop_t *loop;
	mongoc_client_pool_t *pool;
	char *db;
	size_t in_flight;
	int closing;
};

const char *baton_store_status_name(baton_store_status_t st)
{
	switch (st) {
	case BATON_STORE_OK:
		return "ok";
	case BATON_STORE_NOT_FOUND:
		return "not_found";
	case BATON_STORE_DUPLICATE:
		return "duplicate";
	case BATON_STORE_CONFLICT:
		return "conflict";
	case BATON_STORE_UNAVAILABLE:
		return "unavailable";
	case BATON_STORE_ERROR:
		return "error";
	}
	return "unknown";
}

/* ---------------------------------------------------------------------------------------- */
/* time                                                                                     */

int64_t baton_store_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void baton_store_rfc3339_ms(int64_t ms, char *out, size_t outlen)
{
	/* floor division so that dates before 1970 keep a positive millisecond part */
	int64_t sec = ms / 1000, rem = ms % 1000;
	struct tm tm;
	time_t t;

	if (rem < 0) {
		rem += 1000;
		sec -= 1;
	}
	t = (time_t)sec;
	if (!gmtime_r(&t, &tm)) {
		snprintf(out, outlen, "%s", "");
		return;
	}
	snprintf(out, outlen, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)rem);
}

/* ---------------------------------------------------------------------------------------- */
/* paths for error messages (JSON Pointer)                                                  */

typedef struct jpath_seg {
	const char *key; /* NULL: array index */
	size_t keylen;
	size_t index;
} jpath_seg_t;

typedef struct jpath {
	jpath_seg_t seg[BATON_STORE_MAX_DEPTH + 2];
	size_t n;
} jpath_t;

static void path_push_key(jpath_t *p, const char *key, size_t len)
{
	if (p->n < sizeof(p->seg) / sizeof(p->seg[0]))
		p->seg[p->n] = (jpath_seg_t){key, len, 0};
	p->n++;
}

static void path_push_index(jpath_t *p, size_t i)
{
	if (p->n < sizeof(p->seg) / sizeof(p->seg[0]))
		p->seg[p->n] = (jpath_seg_t){NULL, 0, i};
	p->n++;
}

static void path_pop(jpath_t *p)
{
	p->n--;
}

/* Appends printf output to buf at *pos, never past len. */
static void bput(char *buf, size_t len, size_t *pos, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void bput(char *buf, size_t len, size_t *pos, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*pos + 1 >= len)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf + *pos, len - *pos, fmt, ap);
	va_end(ap);
	if (n > 0)
		*pos = (*pos + (size_t)n < len) ? *pos + (size_t)n : len - 1;
}

/* JSON Pointer of p ("~" -> "~0", "/" -> "~1"; control bytes and NUL as \xNN). */
static void path_format(const jpath_t *p, char *buf, size_t len)
{
	size_t pos = 0, n = p->n;

	buf[0] = '\0';
	if (n == 0) {
		bput(buf, len, &pos, "/");
		return;
	}
	if (n > sizeof(p->seg) / sizeof(p->seg[0]))
		n = sizeof(p->seg) / sizeof(p->seg[0]);
	for (size_t i = 0; i < n; i++) {
		const jpath_seg_t *s = &p->seg[i];
		if (!s->key) {
			bput(buf, len, &pos, "/%zu", s->index);
			continue;
		}
		bput(buf, len, &pos, "/");
		for (size_t j = 0; j < s->keylen; j++) {
			unsigned char c = (unsigned char)s->key[j];
			if (c == '~')
				bput(buf, len, &pos, "~0");
			else if (c == '/')
				bput(buf, len, &pos, "~1");
			else if (c < 0x20 || c == 0x7f)
				bput(buf, len, &pos, "\\x%02x", c);
			else
				bput(buf, len, &pos, "%c", c);
		}
	}
	if (n < p->n)
		bput(buf, len, &pos, "/...");
}

static int path_error(const jpath_t *p, char *err, size_t errlen, const char *what)
{
	char path[512];

	path_format(p, path, sizeof(path));
	snprintf(err, errlen, "%s at %s", what, path);
	return -1;
}

/* ---------------------------------------------------------------------------------------- */
/* JSON -> BSON                                                                             */

static int value_to_bson(bson_t *b, const char *key, size_t klen, const json_t *v, int level,
			 jpath_t *p, char *err, size_t errlen);

static int check_key(const char *key, size_t klen, const jpath_t *p, char *err, size_t errlen)
{
	if (memchr(key, '\0', klen))
		return path_error(p, err, errlen, "invalid key (contains a NUL byte)");
	if (klen > 0 && key[0] == '$')
		return path_error(p, err, errlen, "invalid key (starts with '$')");
	if (memchr(key, '.', klen))
		return path_error(p, err, errlen, "invalid key (contains '.')");
	if (!bson_utf8_validate(key, klen, false))
		return path_error(p, err, errlen, "invalid key (not UTF-8)");
	return 0;
}

static int is_skipped(const char *key, size_t klen, const char *const *skip)
{
	for (; skip && *skip; skip++)
		if (strlen(*skip) == klen && memcmp(*skip, key, klen) == 0)
			return 1;
	return 0;
}

/* Appends obj's members to b; obj is at nesting `level` (top-level document: 1). Top-level keys
 * listed in skip (NULL-terminated, may be NULL) are left out. */
static int members_to_bson(bson_t *b, const json_t *obj, int level, const char *const *skip,
			   jpath_t *p, char *err, size_t errlen)
{
	const char *key;
	size_t klen;
	json_t *v;

	json_object_keylen_foreach((json_t *)obj, key, klen, v)
	{
		int rc;

		if (skip && is_skipped(key, klen, skip))
			continue;
		path_push_key(p, key, klen);
		rc = check_key(key, klen, p, err, errlen);
		if (rc == 0)
			rc = value_to_bson(b, key, klen, v, level, p, err, errlen);
		path_pop(p);
		if (rc)
			return -1;
	}
	return 0;
}

static int container_to_bson(bson_t *b, const char *key, size_t klen, const json_t *v,
			     int level, jpath_t *p, char *err, size_t errlen)
{
	bson_t child;
	int rc = 0;

	if (level + 1 > BATON_STORE_MAX_DEPTH)
		return path_error(p, err, errlen, "nesting deeper than 64 levels");
	if (json_is_object(v)) {
		if (!bson_append_document_begin(b, key, (int)klen, &child))
			return path_error(p, err, errlen, "document too large");
		rc = members_to_bson(&child, v, level + 1, NULL, p, err, errlen);
		if (!bson_append_document_end(b, &child) && rc == 0)
			rc = path_error(p, err, errlen, "document too large");
		return rc;
	}
	if (!bson_append_array_begin(b, key, (int)klen, &child))
		return path_error(p, err, errlen, "document too large");
	for (size_t i = 0; i < json_array_size(v) && rc == 0; i++) {
		char buf[16];
		const char *ikey;
		size_t ilen = bson_uint32_to_string((uint32_t)i, &ikey, buf, sizeof(buf));

		path_push_index(p, i);
		rc = value_to_bson(&child, ikey, ilen, json_array_get(v, i), level + 1, p, err,
				   errlen);
		path_pop(p);
	}
	if (!bson_append_array_end(b, &child) && rc == 0)
		rc = path_error(p, err, errlen, "document too large");
	return rc;
}

/* Appends v under key; `level` is the nesting level of the document b belongs to. */
static int value_to_bson(bson_t *b, const char *key, size_t klen, const json_t *v, int level,
			 jpath_t *p, char *err, size_t errlen)
{
	bool ok = true;

	switch (json_typeof(v)) {
	case JSON_OBJECT:
	case JSON_ARRAY:
		return container_to_bson(b, key, klen, v, level, p, err, errlen);
	case JSON_STRING: {
		const char *str = json_string_value(v);
		size_t len = json_string_length(v);
		if (!bson_utf8_validate(str, len, true))
			return path_error(p, err, errlen, "invalid UTF-8 in string");
		ok = bson_append_utf8(b, key, (int)klen, str, (int)len);
		break;
	}
	case JSON_INTEGER:
		ok = bson_append_int64(b, key, (int)klen, (int64_t)json_integer_value(v));
		break;
	case JSON_REAL:
		ok = bson_append_double(b, key, (int)klen, json_real_value(v));
		break;
	case JSON_TRUE:
	case JSON_FALSE:
		ok = bson_append_bool(b, key, (int)klen, json_is_true(v));
		break;
	case JSON_NULL:
		ok = bson_append_null(b, key, (int)klen);
		break;
	}
	if (!ok)
		return path_error(p, err, errlen, "document too large");
	return 0;
}

static int json_to_bson_skip(const json_t *obj, bson_t *out, const char *const *skip, char *err,
			     size_t errlen)
{
	jpath_t p = {.n = 0};

	if (!json_is_object(obj)) {
		snprintf(err, errlen, "document must be a JSON object");
		return -1;
	}
	return members_to_bson(out, obj, 1, skip, &p, err, errlen);
}

int baton_store_json_to_bson(const json_t *obj, bson_t *out, char *err, size_t errlen)
{
	return json_to_bson_skip(obj, out, NULL, err, errlen);
}

/* Appends one JSON value of any type (NULL -> null) under a top-level key. */
static int field_to_bson(bson_t *b, const char *key, const json_t *v, char *err, size_t errlen)
{
	jpath_t p = {.n = 0};
	int rc;

	path_push_key(&p, key, strlen(key));
	if (!v)
		rc = bson_append_null(b, key, -1) ? 0 : -1;
	else
		rc = value_to_bson(b, key, strlen(key), v, 1, &p, err, errlen);
	return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* BSON -> JSON                                                                             */

static json_t *iter_to_json(const bson_iter_t *it, int level, jpath_t *p, char *err,
			    size_t errlen);

/* JSON object or array from the children of it (a document or array element). */
static json_t *children_to_json(const bson_iter_t *it, int is_array, int level, jpath_t *p,
				char *err, size_t errlen)
{
	bson_iter_t child;
	json_t *out = is_array ? json_array() : json_object();
	size_t i = 0;

	if (!out) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (level > BATON_STORE_MAX_DEPTH) {
		path_error(p, err, errlen, "nesting deeper than 64 levels");
		goto fail;
	}
	if (!bson_iter_recurse(it, &child)) {
		path_error(p, err, errlen, "corrupt BSON");
		goto fail;
	}
	while (bson_iter_next(&child)) {
		const char *key = bson_iter_key(&child);
		size_t klen = bson_iter_key_len(&child);
		json_t *v;
		int rc;

		if (is_array)
			path_push_index(p, i++);
		else
			path_push_key(p, key, klen);
		v = iter_to_json(&child, level, p, err, errlen);
		if (!v) {
			path_pop(p);
			goto fail;
		}
		if (is_array)
			rc = json_array_append_new(out, v);
		else
			rc = json_object_setn_new(out, key, klen, v);
		if (rc) {
			path_error(p, err, errlen, "invalid key");
			path_pop(p);
			goto fail;
		}
		path_pop(p);
	}
	return out;
fail:
	json_decref(out);
	return NULL;
}

/* JSON value of the element at it, which sits in a document at nesting `level`. */
static json_t *iter_to_json(const bson_iter_t *it, int level, jpath_t *p, char *err,
			    size_t errlen)
{
	json_t *v = NULL;
	char buf[64];

	switch (bson_iter_type(it)) {
	case BSON_TYPE_DOUBLE: {
		double d = bson_iter_double(it);
		v = isfinite(d) ? json_real(d) : json_null();
		break;
	}
	case BSON_TYPE_UTF8: {
		uint32_t len;
		const char *str = bson_iter_utf8(it, &len);
		v = json_stringn(str, len); /* validates UTF-8 */
		if (!v) {
			path_error(p, err, errlen, "invalid UTF-8 in string");
			return NULL;
		}
		return v;
	}
	case BSON_TYPE_DOCUMENT:
	case BSON_TYPE_ARRAY:
		return children_to_json(it, bson_iter_type(it) == BSON_TYPE_ARRAY, level + 1, p,
					err, errlen);
	case BSON_TYPE_BOOL:
		v = json_boolean(bson_iter_bool(it));
		break;
	case BSON_TYPE_NULL:
	case BSON_TYPE_UNDEFINED:
		v = json_null();
		break;
	case BSON_TYPE_INT32:
		v = json_integer(bson_iter_int32(it));
		break;
	case BSON_TYPE_INT64:
		v = json_integer(bson_iter_int64(it));
		break;
	case BSON_TYPE_DATE_TIME:
		baton_store_rfc3339_ms(bson_iter_date_time(it), buf, sizeof(buf));
		v = json_string(buf);
		break;
	case BSON_TYPE_OID:
		bson_oid_to_string(bson_iter_oid(it), buf);
		v = json_string(buf);
		break;
	case BSON_TYPE_DECIMAL128: {
		bson_decimal128_t dec;
		char dbuf[BSON_DECIMAL128_STRING];
		bson_iter_decimal128(it, &dec);
		bson_decimal128_to_string(&dec, dbuf);
		v = json_string(dbuf);
		break;
	}
	default:
		snprintf(buf, sizeof(buf), "unsupported BSON type 0x%02x", (int)bson_iter_type(it));
		path_error(p, err, errlen, buf);
		return NULL;
	}
	if (!v)
		path_error(p, err, errlen, "out of memory");
	return v;
}

json_t *baton_store_bson_to_json(const bson_t *b, char *err, size_t errlen)
{
	bson_iter_t it;
	jpath_t p = {.n = 0};
	json_t *out = json_object();
	const char *key;

	if (!out) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (!bson_iter_init(&it, b)) {
		snprintf(err, errlen, "corrupt BSON");
		goto fail;
	}
	while (bson_iter_next(&it)) {
		json_t *v;

		key = bson_iter_key(&it);
		path_push_key(&p, key, bson_iter_key_len(&it));
		v = iter_to_json(&it, 1, &p, err, errlen);
		if (!v || json_object_setn_new(out, key, bson_iter_key_len(&it), v)) {
			if (v)
				path_error(&p, err, errlen, "invalid key");
			goto fail;
		}
		path_pop(&p);
	}
	return out;
fail:
	json_decref(out);
	return NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* error classification                                                                     */

static int transient_server_code(uint32_t code)
{
	static const uint32_t codes[] = {
		6,     /* HostUnreachable */
		7,     /* HostNotFound */
		46,    /* LockBusy */
		50,    /* MaxTimeMSExpired */
		64,    /* WriteConcernFailed */
		89,    /* NetworkTimeout */
		91,    /* ShutdownInProgress */
		112,   /* WriteConflict */
		133,   /* FailedToSatisfyReadPreference */
		134,   /* ReadConcernMajorityNotAvailableYet */
		189,   /* PrimarySteppedDown */
		262,   /* ExceededTimeLimit */
		9001,  /* SocketException */
		10107, /* NotWritablePrimary */
		11600, /* InterruptedAtShutdown */
		11602, /* InterruptedDueToReplStateChange */
		13435, /* NotPrimaryNoSecondaryOk */
		13436, /* NotPrimaryOrSecondary */
	};
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		if (codes[i] == code)
			return 1;
	return 0;
}

baton_store_status_t baton_store_classify(const bson_error_t *e, const bson_t *reply)
{
	if (reply && mongoc_error_has_label(reply, "RetryableWriteError"))
		return BATON_STORE_UNAVAILABLE;
	switch (e->domain) {
	case MONGOC_ERROR_STREAM:
		return BATON_STORE_UNAVAILABLE;
	case MONGOC_ERROR_SERVER_SELECTION:
		return e->code == MONGOC_ERROR_SERVER_SELECTION_BAD_WIRE_VERSION
			       ? BATON_STORE_ERROR
			       : BATON_STORE_UNAVAILABLE;
	case MONGOC_ERROR_PROTOCOL:
		return e->code == MONGOC_ERROR_PROTOCOL_BAD_WIRE_VERSION ? BATON_STORE_ERROR
									 : BATON_STORE_UNAVAILABLE;
	case MONGOC_ERROR_CLIENT:
		return e->code == MONGOC_ERROR_CLIENT_NOT_READY ? BATON_STORE_UNAVAILABLE
								: BATON_STORE_ERROR;
	case MONGOC_ERROR_WRITE_CONCERN:
		return BATON_STORE_UNAVAILABLE;
	case MONGOC_ERROR_SERVER:
	case MONGOC_ERROR_COMMAND:
	case MONGOC_ERROR_QUERY:
	case MONGOC_ERROR_COLLECTION:
		if (e->code == 11000 || e->code == 11001 || e->code == 12582)
			return BATON_STORE_DUPLICATE;
		return transient_server_code(e->code) ? BATON_STORE_UNAVAILABLE
						      : BATON_STORE_ERROR;
	default:
		return BATON_STORE_ERROR;
	}
}

/* ---------------------------------------------------------------------------------------- */
/* open / close / blocking calls                                                            */

static int valid_db_name(const char *db)
{
	size_t n = db ? strlen(db) : 0;

	return n > 0 && n <= DB_NAME_MAX && strpbrk(db, "/\\. \"$") == NULL;
}

static int valid_coll_name(const char *c)
{
	size_t n = c ? strlen(c) : 0;

	return n > 0 && n <= COLL_NAME_MAX && !strchr(c, '$') && strncmp(c, "system.", 7) != 0 &&
	       bson_utf8_validate(c, n, false);
}

/* libmongoc's own messages go into baton's JSON log instead of its plain-text default. */
static void mongoc_log_to_baton(mongoc_log_level_t level, const char *domain,
				const char *message, void *ud)
{
	baton_log_level_t lvl;

	switch (level) {
	case MONGOC_LOG_LEVEL_ERROR:
	case MONGOC_LOG_LEVEL_CRITICAL:
		lvl = BATON_LOG_ERROR;
		break;
	case MONGOC_LOG_LEVEL_WARNING:
		/* FerretDB v1 has no sessions: mongoc's endSessions at pool teardown fails */
		lvl = strstr(message, "endSessions") ? BATON_LOG_DEBUG : BATON_LOG_WARN;
		break;
	case MONGOC_LOG_LEVEL_MESSAGE:
	case MONGOC_LOG_LEVEL_INFO:
		lvl = BATON_LOG_DEBUG;
		break;
	default:
		return; /* debug, trace */
	}
	baton_log(lvl, NULL, "mongoc.log", "%s: %s", domain, message);
}

static void install_log_handler(void)
{
	mongoc_log_set_handler(mongoc_log_to_baton, NULL);
}

/* Adds name=val to the URI unless it already sets it. */
static void uri_default_ms(mongoc_uri_t *u, const char *name, int32_t val)
{
	if (!mongoc_uri_has_option(u, name))
		mongoc_uri_set_option_as_int32(u, name, val);
}

baton_store_t *baton_store_open(uv_loop_t *loop, const char *uri, const char *db,
				unsigned pool_size, char *err, size_t errlen)
{
	static pthread_once_t log_once = PTHREAD_ONCE_INIT;
	baton_store_t *s = NULL;
	mongoc_uri_t *u = NULL;
	bson_error_t e;

	mongoc_init(); /* once per process; further calls do nothing */
	pthread_once(&log_once, install_log_handler);
	if (!valid_db_name(db)) {
		snprintf(err, errlen, "invalid database name \"%s\" (1..%d characters, none of "
				      "/\\. \"$)", db ? db : "", DB_NAME_MAX);
		return NULL;
	}
	if (pool_size < 1 || pool_size > POOL_SIZE_MAX) {
		snprintf(err, errlen, "pool size %u out of range 1..%d", pool_size, POOL_SIZE_MAX);
		return NULL;
	}
	u = mongoc_uri_new_with_error(uri ? uri : "", &e);
	if (!u) {
		snprintf(err, errlen, "invalid MongoDB URI: %s", e.message);
		return NULL;
	}
	uri_default_ms(u, MONGOC_URI_CONNECTTIMEOUTMS, 2000);
	/* A server that is down is found by server selection (3 s). A server that is up but busy
	 * (FerretDB on SQLite serializes writes; a burst of retries queues behind one lock) may
	 * take seconds to answer: a short socket timeout would turn that wait into failed writes
	 * and a storm of retries, so it is generous. These calls run on the thread pool. */
	uri_default_ms(u, MONGOC_URI_SOCKETTIMEOUTMS, 15000);
	uri_default_ms(u, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, 3000);
	if (!mongoc_uri_get_appname(u))
		mongoc_uri_set_appname(u, "baton");
	s = calloc(1, sizeof(*s));
	if (!s || !(s->db = strdup(db))) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	s->loop = loop;
	s->pool = mongoc_client_pool_new_with_error(u, &e);
	if (!s->pool) {
		snprintf(err, errlen, "cannot create MongoDB client pool: %s", e.message);
		goto fail;
	}
	mongoc_client_pool_set_error_api(s->pool, MONGOC_ERROR_API_VERSION_2);
	mongoc_client_pool_max_size(s->pool, pool_size);
	mongoc_uri_destroy(u);
	return s;
fail:
	mongoc_uri_destroy(u);
	if (s)
		free(s->db);
	free(s);
	return NULL;
}

static void store_destroy(baton_store_t *s)
{
	mongoc_client_pool_destroy(s->pool);
	free(s->db);
	free(s);
}

void baton_store_close(baton_store_t *s)
{
	if (!s)
		return;
	s->closing = 1;
	if (s->in_flight == 0)
		store_destroy(s);
}

size_t baton_store_in_flight(const baton_store_t *s)
{
	return s->in_flight;
}

/* One index spec: keys (ascending), name, unique. */
typedef struct index_spec {
	const char *key1, *key2; /* key2 may be NULL */
	const char *name;
	bool unique;
} index_spec_t;

/* One createIndexes command per index: FerretDB v1.24 drops the connection when a command that
 * lists several indexes finds them all existing (so a second start-up would fail). */
static int create_index(mongoc_client_t *c, const char *db, const char *coll,
			const index_spec_t *spec, char *err, size_t errlen)
{
	bson_t cmd = BSON_INITIALIZER, arr, idx, keys;
	bson_error_t e;
	bool ok;

	BSON_APPEND_UTF8(&cmd, "createIndexes", coll);
	BSON_APPEND_ARRAY_BEGIN(&cmd, "indexes", &arr);
	BSON_APPEND_DOCUMENT_BEGIN(&arr, "0", &idx);
	BSON_APPEND_DOCUMENT_BEGIN(&idx, "key", &keys);
	BSON_APPEND_INT32(&keys, spec->key1, 1);
	if (spec->key2)
		BSON_APPEND_INT32(&keys, spec->key2, 1);
	bson_append_document_end(&idx, &keys);
	BSON_APPEND_UTF8(&idx, "name", spec->name);
	if (spec->unique)
		BSON_APPEND_BOOL(&idx, "unique", true);
	bson_append_document_end(&arr, &idx);
	bson_append_array_end(&cmd, &arr);
	ok = mongoc_client_write_command_with_opts(c, db, &cmd, NULL, NULL, &e);
	bson_destroy(&cmd);
	if (!ok)
		snprintf(err, errlen, "createIndexes %s on %s: %s", spec->name, coll, e.message);
	return ok ? 0 : -1;
}

static int create_indexes(mongoc_client_t *c, const char *db, const char *coll,
			  const index_spec_t *specs, size_t n, char *err, size_t errlen)
{
	for (size_t i = 0; i < n; i++)
		if (create_index(c, db, coll, &specs[i], err, errlen))
			return -1;
	return 0;
}

int baton_store_ensure_indexes(baton_store_t *s, char *err, size_t errlen)
{
	static const index_spec_t ledger[] = {{"key", NULL, "key_1", true}};
	static const index_spec_t audit[] = {
		{"message_id", NULL, "message_id_1", false},
		{"correlation_id", NULL, "correlation_id_1", false},
		{"subject", NULL, "subject_1", false},
		{"ts", NULL, "ts_1", false},
	};
	/* dead_letters _id is "<flow>:<message id>": one event parked by two flows is two
	 * records, so message_id alone is not unique. */
	static const index_spec_t dead[] = {
		{"message_id", NULL, "message_id_1", false},
		{"flow", "status", "flow_1_status_1", false},
	};
	mongoc_client_t *c = mongoc_client_pool_pop(s->pool);
	int rc;

	if (!c) {
		snprintf(err, errlen, "no MongoDB client available");
		return -1;
	}
	rc = create_indexes(c, s->db, LEDGER_COLL, ledger, 1, err, errlen);
	if (rc == 0)
		rc = create_indexes(c, s->db, AUDIT_COLL, audit, 4, err, errlen);
	if (rc == 0)
		rc = create_indexes(c, s->db, DEAD_COLL, dead, 2, err, errlen);
	mongoc_client_pool_push(s->pool, c);
	return rc;
}

static bool ping_client(mongoc_client_t *c, bson_error_t *e)
{
	bson_t cmd = BSON_INITIALIZER;
	bool ok;

	BSON_APPEND_INT32(&cmd, "ping", 1);
	ok = mongoc_client_command_simple(c, "admin", &cmd, NULL, NULL, e);
	bson_destroy(&cmd);
	return ok;
}

int baton_store_ping(baton_store_t *s, char *err, size_t errlen)
{
	mongoc_client_t *c = mongoc_client_pool_pop(s->pool);
	bson_error_t e;
	bool ok;

	if (!c) {
		snprintf(err, errlen, "no MongoDB client available");
		return -1;
	}
	ok = ping_client(c, &e);
	mongoc_client_pool_push(s->pool, c);
	if (!ok)
		snprintf(err, errlen, "MongoDB ping: %s", e.message);
	return ok ? 0 : -1;
}

/* ---------------------------------------------------------------------------------------- */
/* asynchronous operations                                                                  */

typedef enum op_kind {
	OP_PING,
	OP_LEDGER_GET,
	OP_LEDGER_PUT,
	OP_DOC_GET,
	OP_DOC_PUT,
	OP_INSERT,
	OP_SET,
	OP_INSERT_MANY,
	OP_FIND
} op_kind_t;

typedef struct store_op {
	uv_work_t req;
	baton_store_t *s;
	op_kind_t kind;
	char *coll;
	char *id;        /* ledger key or document _id */
	bson_t *doc;     /* prepared document, filter or $set fields (owned) */
	int64_t version; /* doc_put: expected version; find: limit */
	int prefailed;   /* st/errmsg set at submission: the server is not contacted */
	baton_store_status_t st;
	bson_t *out;     /* handed to the caller as JSON (owned), may be NULL */
	char errmsg[ERRMSG_MAX];
	baton_store_cb cb;
	void *ud;
	/* insert_many */
	const bson_t **docs; /* copy of the caller's pointer array; documents borrowed */
	size_t n;
	unsigned attempts;
	baton_store_status_t *results;
	baton_store_many_cb many_cb;
} store_op_t;

static void op_free(store_op_t *op)
{
	free(op->coll);
	free(op->id);
	if (op->doc)
		bson_destroy(op->doc);
	if (op->out)
		bson_destroy(op->out);
	free(op->docs);
	free(op->results);
	free(op);
}

static store_op_t *op_new(baton_store_t *s, op_kind_t kind, const char *coll, const char *id)
{
	store_op_t *op;

	if (!s || s->closing)
		return NULL;
	op = calloc(1, sizeof(*op));
	if (!op)
		return NULL;
	op->s = s;
	op->kind = kind;
	op->req.data = op;
	if ((coll && !(op->coll = strdup(coll))) || (id && !(op->id = strdup(id)))) {
		op_free(op);
		return NULL;
	}
	if (coll && !valid_coll_name(coll)) {
		op->prefailed = 1;
		op->st = BATON_STORE_ERROR;
		snprintf(op->errmsg, sizeof(op->errmsg), "invalid collection name");
	} else if (id && !bson_utf8_validate(id, strlen(id), false)) {
		op->prefailed = 1;
		op->st = BATON_STORE_ERROR;
		snprintf(op->errmsg, sizeof(op->errmsg), "id or key is not valid UTF-8");
	}
	return op;
}

/* Marks op as failed before submission (conversion error in errmsg). */
static void op_prefail(store_op_t *op)
{
	op->prefailed = 1;
	op->st = BATON_STORE_ERROR;
}

static void op_fail(store_op_t *op, const bson_error_t *e, const bson_t *reply, const char *what)
{
	op->st = baton_store_classify(e, reply);
	snprintf(op->errmsg, sizeof(op->errmsg), "%s: %s", what, e->message);
}

/* Finds one document of coll matching filter; *found = copy or NULL. false on error (in e). */
static bool find_one(mongoc_collection_t *coll, const bson_t *filter, const bson_t *opts,
		     bson_t **found, bson_error_t *e)
{
	mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, filter, opts, NULL);
	const bson_t *d;
	bool ok;

	*found = NULL;
	if (mongoc_cursor_next(cur, &d))
		*found = bson_copy(d);
	ok = !mongoc_cursor_error(cur, e);
	mongoc_cursor_destroy(cur);
	if (!ok && *found) {
		bson_destroy(*found);
		*found = NULL;
	}
	return ok;
}

static bson_t *id_filter(const char *field, const char *val)
{
	bson_t *f = bson_new();

	bson_append_utf8(f, field, -1, val, -1);
	return f;
}

/* Reads the document matching field=val into op->out; NOT_FOUND when absent. */
static void work_find(store_op_t *op, mongoc_collection_t *coll, const char *field, int no_id)
{
	bson_t *filter = id_filter(field, op->id);
	bson_t *opts = no_id ? BCON_NEW("limit", BCON_INT64(1), "projection", "{", "_id",
					BCON_INT32(0), "}")
			     : BCON_NEW("limit", BCON_INT64(1));
	bson_error_t e;

	if (!find_one(coll, filter, opts, &op->out, &e))
		op_fail(op, &e, NULL, "find");
	else if (!op->out)
		op->st = BATON_STORE_NOT_FOUND;
	bson_destroy(opts);
	bson_destroy(filter);
}

/* Reads up to op->version documents matching the filter op->doc into op->out as
 * {"docs": [...]}, in _id order. */
static void work_find_many(store_op_t *op, mongoc_collection_t *coll)
{
	bson_t *opts = BCON_NEW("limit", BCON_INT64(op->version), "sort", "{", "_id",
				BCON_INT32(1), "}");
	mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, op->doc, opts, NULL);
	const bson_t *d;
	bson_t arr;
	bson_error_t e;
	char key[24];
	const char *k;
	uint32_t i = 0;

	op->out = bson_new();
	BSON_APPEND_ARRAY_BEGIN(op->out, "docs", &arr);
	while (mongoc_cursor_next(cur, &d)) {
		bson_uint32_to_string(i++, &k, key, sizeof(key));
		BSON_APPEND_DOCUMENT(&arr, k, d);
	}
	bson_append_array_end(op->out, &arr);
	if (mongoc_cursor_error(cur, &e))
		op_fail(op, &e, NULL, "find");
	mongoc_cursor_destroy(cur);
	bson_destroy(opts);
}

static void work_ledger_put(store_op_t *op, mongoc_collection_t *coll)
{
	bson_error_t e;

	if (mongoc_collection_insert_one(coll, op->doc, NULL, NULL, &e)) {
		op->out = bson_copy(op->doc);
		return;
	}
	op_fail(op, &e, NULL, "ledger insert");
	if (op->st != BATON_STORE_DUPLICATE)
		return;
	/* 11000: the key is already recorded; hand back what was stored first */
	work_find(op, coll, "key", 1);
	if (op->st == BATON_STORE_OK) {
		op->st = BATON_STORE_DUPLICATE;
		snprintf(op->errmsg, sizeof(op->errmsg), "ledger key already recorded");
	} else if (op->st == BATON_STORE_NOT_FOUND) {
		op->st = BATON_STORE_UNAVAILABLE; /* vanished in between: let the caller retry */
		snprintf(op->errmsg, sizeof(op->errmsg), "duplicate ledger key but no record");
	}
}

static int64_t reply_int(const bson_t *reply, const char *field)
{
	bson_iter_t it;

	if (bson_iter_init_find(&it, reply, field) && BSON_ITER_HOLDS_NUMBER(&it))
		return bson_iter_as_int64(&it);
	return 0;
}

/* Replaces the document if its stored version is op->version (see work_doc_replace). */
static void doc_replace(store_op_t *op, mongoc_collection_t *coll)
{
	bson_t *sel = id_filter("_id", op->id);
	bson_t reply, *cur = NULL;
	bson_error_t e;

	BSON_APPEND_INT64(sel, "version", op->version);
	if (!mongoc_collection_replace_one(coll, sel, op->doc, NULL, &reply, &e)) {
		op_fail(op, &e, &reply, "replace");
		if (op->st == BATON_STORE_DUPLICATE)
			op->st = BATON_STORE_ERROR; /* another unique index, not the version */
	} else if (reply_int(&reply, "matchedCount") == 1) {
		op->out = bson_copy(op->doc);
	} else {
		/* nothing matched: stale version, or no such document */
		bson_t *f = id_filter("_id", op->id);
		if (!find_one(coll, f, NULL, &cur, &e)) {
			op_fail(op, &e, NULL, "find");
		} else if (!cur) {
			op->st = BATON_STORE_NOT_FOUND;
			snprintf(op->errmsg, sizeof(op->errmsg), "no document with this id");
		} else {
			op->st = BATON_STORE_CONFLICT;
			snprintf(op->errmsg, sizeof(op->errmsg),
				 "stored version is %" PRId64 ", expected %" PRId64,
				 reply_int(cur, "version"), op->version);
			bson_destroy(cur);
		}
		bson_destroy(f);
	}
	bson_destroy(&reply);
	bson_destroy(sel);
}

/* --- version tickets ------------------------------------------------------------------------
 * FerretDB v1 (the stack's server) runs replace_one as a read, a filter in Go and then an
 * UPDATE by _id, not atomically: two puts expecting the same version can both match, and the
 * later one silently overwrites the earlier (a lost update; two baton-inventory replicas lost
 * reservations that way). Inserting a unique _id is atomic there (the ledger relies on it). So a
 * put from version n first inserts the ticket of version n + 1: one put per version gets it, the
 * others get CONFLICT without touching the document. The holder's replace is then the only write
 * that can match version n (a put holding ticket n + 2 read n + 1, which exists only after it;
 * an older ticket's replace expects a version already passed), and it drops its ticket after.
 * A ticket whose writer died between its insert and its replace would block version n + 1 for
 * good: one older than TICKET_STALE_MS is skipped (the put takes n + 2 and writes version n + 2
 * over n). Real MongoDB does not need tickets; they cost it two small writes per put. */

#define TICKET_COLL "doc_tickets"
#define TICKET_STALE_MS 30000
#define TICKET_SKIPS 3

typedef enum ticket { T_TAKEN, T_BUSY, T_STALE, T_FAILED } ticket_t;

/* {_id: "<length of coll>:<coll>:<version>:<id>"}: unambiguous whatever the names hold. */
static bson_t *ticket_doc(const store_op_t *op, int64_t version)
{
	char *t = bson_strdup_printf("%zu:%s:%" PRId64 ":%s", strlen(op->coll), op->coll, version,
				     op->id);
	bson_t *d = id_filter("_id", t);

	bson_free(t);
	return d;
}

static ticket_t ticket_take(store_op_t *op, mongoc_collection_t *tickets, int64_t version)
{
	bson_t *t = ticket_doc(op, version), *f = ticket_doc(op, version), *found = NULL;
	bson_error_t e;
	ticket_t r = T_FAILED;

	BSON_APPEND_INT64(t, "at", baton_store_now_ms());
	if (mongoc_collection_insert_one(tickets, t, NULL, NULL, &e)) {
		r = T_TAKEN;
		goto out;
	}
	op_fail(op, &e, NULL, "ticket insert");
	if (op->st != BATON_STORE_DUPLICATE)
		goto out;
	if (!find_one(tickets, f, NULL, &found, &e))
		op_fail(op, &e, NULL, "ticket find");
	else /* (gone meanwhile: its holder is done, busy all the same) */
		r = found && reply_int(found, "at") < baton_store_now_ms() - TICKET_STALE_MS ? T_STALE
											 : T_BUSY;
out:
	if (found)
		bson_destroy(found);
	bson_destroy(f);
	bson_destroy(t);
	return r;
}

static void ticket_drop(const store_op_t *op, mongoc_collection_t *tickets, int64_t version)
{
	bson_t *f = ticket_doc(op, version);

	mongoc_collection_delete_one(tickets, f, NULL, NULL, NULL); /* else: stale later */
	bson_destroy(f);
}

/* op->doc with "version" = version (after a skipped ticket). */
static void doc_set_version(store_op_t *op, int64_t version)
{
	bson_t *d = bson_new();

	bson_copy_to_excluding_noinit(op->doc, d, "version", NULL);
	BSON_APPEND_INT64(d, "version", version);
	bson_destroy(op->doc);
	op->doc = d;
}

static void work_doc_replace(store_op_t *op, mongoc_client_t *c, mongoc_collection_t *coll)
{
	mongoc_collection_t *tickets = mongoc_client_get_collection(c, op->s->db, TICKET_COLL);
	int64_t v = op->version + 1;
	ticket_t t;

	while ((t = ticket_take(op, tickets, v)) == T_STALE && v < op->version + TICKET_SKIPS)
		v++;
	if (t == T_TAKEN) {
		op->st = BATON_STORE_OK;
		op->errmsg[0] = '\0';
		if (v != op->version + 1)
			doc_set_version(op, v);
		doc_replace(op, coll);
	} else if (t != T_FAILED) {
		op->st = BATON_STORE_CONFLICT;
		snprintf(op->errmsg, sizeof(op->errmsg),
			 "version %" PRId64 " is being written by another put", v);
	}
	if (t == T_TAKEN)
		ticket_drop(op, tickets, v);
	/* skipped tickets go only once the document is past them (a put still expecting version n
	 * could otherwise take one and write over the holder of the next) */
	for (int64_t k = op->version + 1; op->st == BATON_STORE_OK && k < v; k++)
		ticket_drop(op, tickets, k);
	mongoc_collection_destroy(tickets);
}

static void work_doc_put(store_op_t *op, mongoc_client_t *c, mongoc_collection_t *coll)
{
	bson_error_t e;

	if (op->version > 0) {
		work_doc_replace(op, c, coll);
		return;
	}
	if (mongoc_collection_insert_one(coll, op->doc, NULL, NULL, &e)) {
		op->out = bson_copy(op->doc);
		return;
	}
	op_fail(op, &e, NULL, "insert");
	if (op->st == BATON_STORE_DUPLICATE) {
		op->st = BATON_STORE_CONFLICT;
		snprintf(op->errmsg, sizeof(op->errmsg), "a document with this id already exists");
	}
}

static void work_insert(store_op_t *op, mongoc_collection_t *coll)
{
	bson_error_t e;

	if (mongoc_collection_insert_one(coll, op->doc, NULL, NULL, &e))
		op->out = bson_copy(op->doc);
	else
		op_fail(op, &e, NULL, "insert");
}

static void work_set(store_op_t *op, mongoc_collection_t *coll)
{
	bson_t *sel = id_filter("_id", op->id);
	bson_t reply;
	bson_error_t e;

	if (!mongoc_collection_update_one(coll, sel, op->doc, NULL, &reply, &e)) {
		op_fail(op, &e, &reply, "update");
	} else if (reply_int(&reply, "matchedCount") == 0) {
		op->st = BATON_STORE_NOT_FOUND;
		snprintf(op->errmsg, sizeof(op->errmsg), "no document with this id");
	}
	bson_destroy(&reply);
	bson_destroy(sel);
}

/* --- insert_many with per-document results ------------------------------------------------- */

#define UNDECIDED ((baton_store_status_t)-1)

/* Applies the writeErrors of one insert_many reply: sub[i] is the index into op->docs of the
 * i-th document sent. Documents without a write error were inserted, unless the reply also has
 * write concern errors (then their fate is unknown: left undecided for a retry). */
static void apply_write_errors(store_op_t *op, const size_t *sub, size_t nsub, const bson_t *reply,
			       int has_wce)
{
	bson_iter_t it, we;
	baton_store_status_t *fate = calloc(nsub, sizeof(*fate));

	if (!fate) {
		return; /* all stay undecided: retried or reported UNAVAILABLE */
	}
	for (size_t i = 0; i < nsub; i++)
		fate[i] = has_wce ? UNDECIDED : BATON_STORE_OK;
	if (bson_iter_init_find(&it, reply, "writeErrors") && bson_iter_recurse(&it, &we)) {
		while (bson_iter_next(&we)) {
			bson_t wdoc;
			const uint8_t *data;
			uint32_t len;
			bson_error_t e = {.domain = MONGOC_ERROR_SERVER};
			int64_t idx;
			bson_iter_t f;

			bson_iter_document(&we, &len, &data);
			if (!data || !bson_init_static(&wdoc, data, len))
				continue;
			idx = reply_int(&wdoc, "index");
			e.code = (uint32_t)reply_int(&wdoc, "code");
			if (idx < 0 || (size_t)idx >= nsub)
				continue;
			if (bson_iter_init_find(&f, &wdoc, "errmsg") && BSON_ITER_HOLDS_UTF8(&f))
				bson_strncpy(e.message, bson_iter_utf8(&f, NULL),
					     sizeof(e.message));
			fate[idx] = baton_store_classify(&e, NULL);
			if (fate[idx] != BATON_STORE_DUPLICATE && !op->errmsg[0])
				snprintf(op->errmsg, sizeof(op->errmsg), "insert_many: %s",
					 e.message);
			if (fate[idx] == BATON_STORE_UNAVAILABLE)
				fate[idx] = UNDECIDED;
		}
	}
	for (size_t i = 0; i < nsub; i++)
		op->results[sub[i]] = fate[i];
	free(fate);
}

static int array_nonempty(const bson_t *reply, const char *field)
{
	bson_iter_t it, child;

	return bson_iter_init_find(&it, reply, field) && BSON_ITER_HOLDS_ARRAY(&it) &&
	       bson_iter_recurse(&it, &child) && bson_iter_next(&child);
}

/* One insert_many of the undecided documents. Returns 1 when a retry may help. */
static int insert_many_attempt(store_op_t *op, mongoc_collection_t *coll, size_t *sub,
			       const bson_t **batch)
{
	bson_t *opts = BCON_NEW("ordered", BCON_BOOL(false));
	bson_t reply;
	bson_error_t e;
	size_t nsub = 0;
	int retry = 0, has_we, has_wce;
	baton_store_status_t st;

	for (size_t i = 0; i < op->n; i++)
		if (op->results[i] == UNDECIDED) {
			sub[nsub] = i;
			batch[nsub++] = op->docs[i];
		}
	if (nsub == 0)
		goto out_noreply;
	if (mongoc_collection_insert_many(coll, batch, nsub, opts, &reply, &e)) {
		for (size_t i = 0; i < nsub; i++)
			op->results[sub[i]] = BATON_STORE_OK;
		goto out;
	}
	has_we = array_nonempty(&reply, "writeErrors");
	has_wce = array_nonempty(&reply, "writeConcernErrors");
	st = baton_store_classify(&e, &reply);
	if ((has_we || has_wce) && e.domain != MONGOC_ERROR_STREAM &&
	    e.domain != MONGOC_ERROR_SERVER_SELECTION && e.domain != MONGOC_ERROR_PROTOCOL) {
		apply_write_errors(op, sub, nsub, &reply, has_wce);
		if (has_wce)
			snprintf(op->errmsg, sizeof(op->errmsg), "insert_many: %s", e.message);
	} else if (st == BATON_STORE_UNAVAILABLE) {
		snprintf(op->errmsg, sizeof(op->errmsg), "insert_many: %s", e.message);
	} else {
		for (size_t i = 0; i < nsub; i++)
			op->results[sub[i]] = st;
		snprintf(op->errmsg, sizeof(op->errmsg), "insert_many: %s", e.message);
	}
	for (size_t i = 0; i < nsub; i++)
		retry |= op->results[sub[i]] == UNDECIDED;
out:
	bson_destroy(&reply);
out_noreply:
	bson_destroy(opts);
	return retry;
}

static void work_insert_many(store_op_t *op, mongoc_collection_t *coll)
{
	size_t *sub = calloc(op->n ? op->n : 1, sizeof(*sub));
	const bson_t **batch = calloc(op->n ? op->n : 1, sizeof(*batch));
	unsigned pause_ms = 100;

	for (size_t i = 0; i < op->n; i++)
		op->results[i] = UNDECIDED;
	if (!sub || !batch) {
		snprintf(op->errmsg, sizeof(op->errmsg), "insert_many: out of memory");
		goto out;
	}
	for (unsigned a = 0; a < op->attempts; a++) {
		if (a > 0) {
			uv_sleep(pause_ms); /* on the worker thread: a pause before the retry */
			pause_ms *= 3;
		}
		if (!insert_many_attempt(op, coll, sub, batch))
			break;
	}
out:
	for (size_t i = 0; i < op->n; i++)
		if (op->results[i] == UNDECIDED)
			op->results[i] = BATON_STORE_UNAVAILABLE;
	free(sub);
	free(batch);
}

static void op_work(uv_work_t *req)
{
	store_op_t *op = req->data;
	baton_store_t *s = op->s;
	mongoc_client_t *c;
	mongoc_collection_t *coll = NULL;
	bson_error_t e;

	if (op->prefailed)
		return;
	c = mongoc_client_pool_pop(s->pool);
	if (!c) {
		op->st = BATON_STORE_UNAVAILABLE;
		snprintf(op->errmsg, sizeof(op->errmsg), "no MongoDB client available");
		return;
	}
	if (op->coll)
		coll = mongoc_client_get_collection(c, s->db, op->coll);
	switch (op->kind) {
	case OP_PING:
		if (!ping_client(c, &e))
			op_fail(op, &e, NULL, "ping");
		break;
	case OP_LEDGER_GET:
		work_find(op, coll, "key", 1);
		break;
	case OP_LEDGER_PUT:
		work_ledger_put(op, coll);
		break;
	case OP_DOC_GET:
		work_find(op, coll, "_id", 0);
		break;
	case OP_DOC_PUT:
		work_doc_put(op, c, coll);
		break;
	case OP_INSERT:
		work_insert(op, coll);
		break;
	case OP_SET:
		work_set(op, coll);
		break;
	case OP_INSERT_MANY:
		work_insert_many(op, coll);
		break;
	case OP_FIND:
		work_find_many(op, coll);
		break;
	}
	if (coll)
		mongoc_collection_destroy(coll);
	mongoc_client_pool_push(s->pool, c);
}

/* Whether some document of an insert_many failed (errmsg then tells why). */
static int many_failed(const store_op_t *op)
{
	for (size_t i = 0; i < op->n; i++)
		if (op->results[i] != BATON_STORE_OK && op->results[i] != BATON_STORE_DUPLICATE)
			return 1;
	return 0;
}

static void op_after(uv_work_t *req, int status)
{
	store_op_t *op = req->data;
	baton_store_t *s = op->s;
	json_t *res = NULL;

	if (status != 0 && !op->prefailed) { /* cancelled: never started */
		op->st = BATON_STORE_UNAVAILABLE;
		snprintf(op->errmsg, sizeof(op->errmsg), "operation cancelled");
		for (size_t i = 0; i < op->n; i++)
			op->results[i] = BATON_STORE_UNAVAILABLE;
	}
	if (op->out && (op->st == BATON_STORE_OK || op->st == BATON_STORE_DUPLICATE)) {
		char err[256];
		res = baton_store_bson_to_json(op->out, err, sizeof(err));
		if (!res) {
			op->st = BATON_STORE_ERROR;
			snprintf(op->errmsg, sizeof(op->errmsg), "stored document: %s", err);
		}
	}
	if (op->kind == OP_FIND && res) { /* hand over the array itself */
		json_t *docs = json_incref(json_object_get(res, "docs"));
		json_decref(res);
		res = docs;
	}
	if (op->st == BATON_STORE_OK && !many_failed(op))
		op->errmsg[0] = '\0'; /* may hold a failure a retry overcame */
	else if (!op->errmsg[0])
		snprintf(op->errmsg, sizeof(op->errmsg), "%s", baton_store_status_name(op->st));
	if (op->kind == OP_INSERT_MANY) {
		if (op->many_cb)
			op->many_cb(op->results, op->n, op->errmsg, op->ud);
	} else if (op->cb) {
		op->cb(op->st, res, op->errmsg, op->ud);
	}
	json_decref(res);
	op_free(op);
	/* counted until the callback has returned, so that a close from inside it is deferred */
	if (--s->in_flight == 0 && s->closing)
		store_destroy(s);
}

static int op_submit(store_op_t *op, baton_store_cb cb, void *ud)
{
	op->cb = cb;
	op->ud = ud;
	if (uv_queue_work(op->s->loop, &op->req, op_work, op_after) != 0) {
		op_free(op);
		return -1;
	}
	op->s->in_flight++;
	return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* public operations                                                                        */

int baton_store_ping_async(baton_store_t *s, baton_store_cb cb, void *ud)
{
	store_op_t *op = op_new(s, OP_PING, NULL, NULL);

	return op ? op_submit(op, cb, ud) : -1;
}

int baton_store_ledger_get(baton_store_t *s, const char *key, baton_store_cb cb, void *ud)
{
	store_op_t *op = key ? op_new(s, OP_LEDGER_GET, LEDGER_COLL, key) : NULL;

	return op ? op_submit(op, cb, ud) : -1;
}

int baton_store_ledger_put(baton_store_t *s, const char *key, json_t *outcome,
			   baton_store_cb cb, void *ud)
{
	store_op_t *op = key ? op_new(s, OP_LEDGER_PUT, LEDGER_COLL, key) : NULL;

	if (!op)
		return -1;
	if (!op->prefailed) {
		op->doc = bson_new();
		bson_append_utf8(op->doc, "key", -1, key, -1);
		if (field_to_bson(op->doc, "outcome", outcome, op->errmsg, sizeof(op->errmsg)))
			op_prefail(op);
		else
			BSON_APPEND_DATE_TIME(op->doc, "at", baton_store_now_ms());
	}
	return op_submit(op, cb, ud);
}

int baton_store_doc_get(baton_store_t *s, const char *coll, const char *id, baton_store_cb cb,
			void *ud)
{
	store_op_t *op = coll && id ? op_new(s, OP_DOC_GET, coll, id) : NULL;

	return op ? op_submit(op, cb, ud) : -1;
}

int baton_store_doc_put(baton_store_t *s, const char *coll, const char *id, json_t *doc,
			int64_t expected_version, baton_store_cb cb, void *ud)
{
	static const char *const managed[] = {"_id", "version", NULL};
	store_op_t *op;

	if (!coll || !id || expected_version < 0 || expected_version == INT64_MAX)
		return -1;
	op = op_new(s, OP_DOC_PUT, coll, id);
	if (!op)
		return -1;
	op->version = expected_version;
	if (!op->prefailed) {
		op->doc = bson_new();
		bson_append_utf8(op->doc, "_id", -1, id, -1);
		BSON_APPEND_INT64(op->doc, "version", expected_version + 1);
		if (json_to_bson_skip(doc, op->doc, managed, op->errmsg, sizeof(op->errmsg)))
			op_prefail(op);
	}
	return op_submit(op, cb, ud);
}

int baton_store_insert(baton_store_t *s, const char *coll, json_t *doc, baton_store_cb cb,
		       void *ud)
{
	store_op_t *op = coll ? op_new(s, OP_INSERT, coll, NULL) : NULL;

	if (!op)
		return -1;
	if (!op->prefailed) {
		op->doc = bson_new();
		if (json_is_object(doc) && !json_object_get(doc, "_id")) {
			bson_oid_t oid;
			bson_oid_init(&oid, NULL);
			BSON_APPEND_OID(op->doc, "_id", &oid);
		}
		if (baton_store_json_to_bson(doc, op->doc, op->errmsg, sizeof(op->errmsg)))
			op_prefail(op);
	}
	return op_submit(op, cb, ud);
}

int baton_store_set(baton_store_t *s, const char *coll, const char *id, json_t *fields,
		    baton_store_cb cb, void *ud)
{
	store_op_t *op = coll && id ? op_new(s, OP_SET, coll, id) : NULL;
	bson_t set;

	if (!op)
		return -1;
	if (op->prefailed)
		return op_submit(op, cb, ud);
	if (!json_is_object(fields) || json_object_size(fields) == 0) {
		snprintf(op->errmsg, sizeof(op->errmsg), "fields must be a non-empty JSON object");
		op_prefail(op);
	} else if (json_object_get(fields, "_id")) {
		snprintf(op->errmsg, sizeof(op->errmsg), "_id cannot be set");
		op_prefail(op);
	} else {
		op->doc = bson_new();
		BSON_APPEND_DOCUMENT_BEGIN(op->doc, "$set", &set);
		if (baton_store_json_to_bson(fields, &set, op->errmsg, sizeof(op->errmsg)))
			op_prefail(op);
		bson_append_document_end(op->doc, &set);
	}
	return op_submit(op, cb, ud);
}

/* Equality filters only: each value must be a string, an integer, a boolean or null, so that
 * no operator ("$gt", "$where"...) can come in through a value; keys are checked by
 * baton_store_json_to_bson ('$' and '.' refused). */
static int filter_to_bson(const json_t *filter, bson_t *out, char *err, size_t errlen)
{
	const char *k;
	json_t *v;

	if (!json_is_object(filter)) {
		snprintf(err, errlen, "filter must be a JSON object");
		return -1;
	}
	json_object_foreach((json_t *)filter, k, v) {
		if (!json_is_string(v) && !json_is_integer(v) && !json_is_boolean(v) &&
		    !json_is_null(v)) {
			snprintf(err, errlen, "filter /%s: only strings, integers, booleans and null "
				 "are allowed", k);
			return -1;
		}
	}
	return baton_store_json_to_bson(filter, out, err, errlen);
}

int baton_store_find(baton_store_t *s, const char *coll, json_t *filter, size_t limit,
		     baton_store_cb cb, void *ud)
{
	store_op_t *op = coll && limit > 0 && limit <= INT64_MAX ? op_new(s, OP_FIND, coll, NULL)
								 : NULL;

	if (!op)
		return -1;
	op->version = (int64_t)limit;
	if (!op->prefailed) {
		op->doc = bson_new();
		if (filter_to_bson(filter, op->doc, op->errmsg, sizeof(op->errmsg)))
			op_prefail(op);
	}
	return op_submit(op, cb, ud);
}

int baton_store_insert_many_bson(baton_store_t *s, const char *coll, const bson_t *const *docs,
				 size_t n, unsigned attempts, baton_store_many_cb cb, void *ud)
{
	store_op_t *op = coll && (docs || n == 0) ? op_new(s, OP_INSERT_MANY, coll, NULL) : NULL;

	if (!op)
		return -1;
	op->n = n;
	op->attempts = attempts ? attempts : 1;
	op->many_cb = cb;
	op->docs = calloc(n ? n : 1, sizeof(*op->docs));
	op->results = calloc(n ? n : 1, sizeof(*op->results));
	if (!op->docs || !op->results) {
		op_free(op);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		op->docs[i] = docs[i];
		op->results[i] = op->prefailed ? op->st : BATON_STORE_OK;
	}
	if (n == 0)
		op->prefailed = 1; /* nothing to send; st stays OK unless set above */
	return op_submit(op, NULL, ud);
}
