/* baton/http.h — asynchronous HTTP client: one libcurl multi handle driven by a libuv loop.
 *
 * Every request runs on the loop thread; its callback runs exactly once, from a libuv callback
 * (never from inside baton_http_request() and never from inside a libcurl callback). Connections
 * are kept alive and reused through the multi handle's connection cache, at most max_host_conns
 * per host; further requests wait in libcurl's queue. DNS lookups use libcurl's threaded
 * resolver, so they do not block the loop (baton_http_new() logs a warning when the libcurl at
 * hand lacks it).
 *
 * Not thread-safe: use a client from its loop thread only. Redirects are not followed. */
#ifndef BATON_HTTP_H
#define BATON_HTTP_H

#include <stddef.h>
#include <time.h>
#include <uv.h>

typedef enum baton_http_class {
	BATON_HTTP_OK,        /* 2xx (and 3xx that were not followed) */
	BATON_HTTP_TRANSIENT, /* connect error, timeout, reset, DNS failure, 5xx, 429, 408 */
	BATON_HTTP_PERMANENT, /* other 4xx, malformed URL, unsupported scheme, body too large */
	BATON_HTTP_CONFLICT   /* 409: left to the flow to interpret */
} baton_http_class_t;

typedef struct baton_http_opts {
	long connect_timeout_ms; /* default 5000 when 0 */
	long timeout_ms;         /* total per request (time queued for a connection included),
				    default 30000 when 0 */
	long max_host_conns;     /* CURLMOPT_MAX_HOST_CONNECTIONS, default 16 when 0 */
	long max_body_bytes;     /* response body cap, default 8 MiB when 0; a larger body fails
				    the request: PERMANENT, code "http.body_too_large" */
	const char *user_agent;  /* copied; default "baton/<version>" when NULL */
} baton_http_opts_t;

typedef struct baton_http_req {
	const char *method;         /* "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD" (any
				       upper-case token of 1-15 letters is sent as is) */
	const char *url;            /* http:// or https:// only; copied */
	const char *const *headers; /* NULL-terminated array of "Name: value", may be NULL; copied.
				       "Expect:" is added unless given (no 100-continue wait) */
	const char *body;           /* copied by the module; may be NULL */
	size_t body_len;
	long timeout_ms;            /* 0 = the client default */
} baton_http_req_t;

/* Stable dotted error codes found in baton_http_resp_t.code ("" when the exchange completed,
 * whatever the status: then cls says what the status means). */
#define BATON_HTTP_CODE_BODY_TOO_LARGE "http.body_too_large"
#define BATON_HTTP_CODE_CANCELLED "http.cancelled"
#define BATON_HTTP_CODE_TIMEOUT "http.timeout"
#define BATON_HTTP_CODE_RESOLVE "http.resolve"
#define BATON_HTTP_CODE_CONNECT "http.connect"
#define BATON_HTTP_CODE_BAD_REQUEST "http.bad_request" /* malformed URL, unsupported scheme */
#define BATON_HTTP_CODE_TRANSPORT "http.transport"     /* any other libcurl failure */

typedef struct baton_http_resp {
	long status;            /* HTTP status, 0 when no response arrived (or cancelled) */
	baton_http_class_t cls;
	int curl_code;          /* CURLcode; CURLE_ABORTED_BY_CALLBACK when cancelled */
	const char *code;       /* one of BATON_HTTP_CODE_* or ""; static storage, never NULL */
	const char *body;       /* never NULL, NUL-terminated ("" when none or too large); valid
				   only during the callback */
	size_t body_len;
	const char *content_type; /* may be NULL; valid only during the callback */
	long retry_after_ms;    /* parsed Retry-After (delta-seconds or HTTP-date), -1 when absent */
	double latency_ms;      /* from baton_http_request() to completion */
	char error[256];        /* human sentence when status==0 or the transfer failed, "" otherwise */
	char summary[512];      /* "POST http://127.0.0.1:8080/orders -> 201 in 12.3 ms" (or
				   "-> error: <error> in 3.1 ms"); URL redacted as by
				   baton_http_redact_url() */
	const char *method, *url_redacted; /* valid only during the callback */
} baton_http_resp_t;

typedef void (*baton_http_cb)(const baton_http_resp_t *resp, void *ud);
typedef struct baton_http baton_http_t;

/* A client on loop; opts may be NULL (all defaults). NULL on failure (out of memory, libcurl
 * multi init). Calls curl_global_init() itself, balanced when the client is freed. */
baton_http_t *baton_http_new(uv_loop_t *loop, const baton_http_opts_t *opts);
/* Starts a request; cb runs exactly once, on the loop thread, never from inside
 * baton_http_request itself. Returns 0, or -1 if the request could not even be started (cb is
 * then NOT called): NULL arguments, a method that is not an upper-case token, a header holding
 * CR or LF, out of memory, or the client is closing. May be called from a callback. */
int baton_http_request(baton_http_t *h, const baton_http_req_t *req, baton_http_cb cb, void *ud);
/* Requests started and not yet called back. */
size_t baton_http_in_flight(const baton_http_t *h);
/* Cancels everything in flight (each cb runs before this returns, with status 0, cls TRANSIENT,
 * code "http.cancelled", error "cancelled"), closes all uv handles, and calls done(ud) (done may be
 * NULL) from the loop once all handles are closed; then h is freed. May be called from a request
 * callback; later calls on the same client are ignored, and baton_http_request() fails from then
 * on. The loop must keep running until done is called. */
void baton_http_close(baton_http_t *h, void (*done)(void *ud), void *ud);

/* Pure helpers. */

/* The class of an outcome: a libcurl failure (curl_code != CURLE_OK) decides first (malformed
 * URL, unsupported protocol, TLS verification, body too large are PERMANENT, every other failure
 * TRANSIENT); then the status: 1xx-3xx OK, 408/429/5xx TRANSIENT, 409 CONFLICT, other 4xx
 * PERMANENT, 0 (no response) TRANSIENT, anything else PERMANENT. */
baton_http_class_t baton_http_classify(long status, int curl_code);
/* "ok" | "transient" | "permanent" | "conflict". */
const char *baton_http_class_name(baton_http_class_t cls);
/* The dotted error code of a failed call: "<prefix>.http_<status>", or without a response
 * "<prefix>.<what of resp->code after its first dot>" ("<prefix>.unreachable" if none). */
char *baton_http_error_code(const baton_http_resp_t *resp, const char *prefix, char *buf,
			    size_t len);
/* Milliseconds to wait from now for a Retry-After value: delta-seconds (up to 2^31 - 1) or an
 * HTTP-date (IMF-fixdate, RFC 850 or asctime form; a date in the past gives 0). -1 if
 * unparsable. Leading and trailing blanks are ignored. */
long baton_http_parse_retry_after(const char *value, time_t now);
/* Copies url to out with the user info ("user:pass@") replaced by "***" and the values of secret
 * query and fragment parameters replaced by "***". A parameter is secret when its name is (ASCII
 * case-insensitive) token, key, secret, password, signature, sig, access_token or api_key, contains
 * token, secret, passw or signature, or ends in "key". Like snprintf: returns the length of the
 * whole redacted text, writes at most outlen - 1 bytes plus NUL (outlen 0: nothing). */
size_t baton_http_redact_url(const char *url, char *out, size_t outlen);

#endif
