/* sim.h — what the storefront and ERP simulators (test tools) share: a seeded RNG, money and time
 * formatting, the leaky bucket, fault rules, the event outbox with its AMQP publisher, and the
 * HTTP server core with its inspection routes.
 *
 * Nothing here includes or links the baton runtime (shared/): the simulators implement only the
 * public contracts, so that a bug cannot hide on both sides of the wire. */
#ifndef BATON_SIM_H
#define BATON_SIM_H

#include <amqp.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* --- seeded pseudo-random numbers (splitmix64; reproducible, not for secrets) --- */
typedef struct sim_rng {
	uint64_t s;
} sim_rng_t;

void sim_rng_seed(sim_rng_t *r, uint64_t seed);
uint64_t sim_rng_next(sim_rng_t *r);
/* Uniform in [0, 1). */
double sim_rng_uniform(sim_rng_t *r);
/* Uniform integer in [lo, hi] (inclusive). */
int64_t sim_rng_range(sim_rng_t *r, int64_t lo, int64_t hi);
/* A seed from the kernel (for ids that must differ between runs). */
uint64_t sim_random_seed(void);

/* --- money: decimal strings with two fraction digits, held as integer minor units --- */
/* Parses "19.90", "19.9", "19", "-0.50". Returns 0, or -1 when s is not such a decimal. */
int sim_money_parse(const char *s, int64_t *minor);
/* Writes minor units as "19.90" into buf; returns buf. */
char *sim_money_format(int64_t minor, char *buf, size_t len);
/* amount * rate_bp / 10000 rounded half away from zero (tax from a rate in basis points). */
int64_t sim_money_rate(int64_t amount, int rate_bp);

/* --- time and ids --- */
/* Monotonic seconds. */
double sim_now(void);
/* Current UTC time as RFC 3339 ("2026-11-22T10:15:00Z"); buf at least 32 bytes. */
char *sim_rfc3339(char *buf, size_t len);
/* Random UUID v4 text (37 bytes with the NUL) from the kernel's generator. */
void sim_uuid(char out[37]);
/* UUID v4 text from r (reproducible with a seed). */
void sim_uuid_rng(sim_rng_t *r, char out[37]);

/* --- leaky bucket (Shopify's REST limiter): size requests, leaking leak per second --- */
typedef struct sim_bucket {
	double level; /* requests in the bucket at time `last` */
	double last;
} sim_bucket_t;

/* Takes one request at time now. Returns true when it fits; otherwise *retry_after gets the
 * seconds until it would fit. *used gets the level after the call, for the "used/size" header. */
bool sim_bucket_take(sim_bucket_t *b, double size, double leak, double now, double *retry_after,
		     double *used);

/* --- fault rules --- */
enum sim_fault_kind {
	SIM_FAULT_NONE = 0,
	SIM_FAULT_LATENCY,   /* added delay: ms + uniform [0, jitter_ms] */
	SIM_FAULT_ERROR,     /* 5xx (status, default 503) */
	SIM_FAULT_STATUS,    /* any status with a given JSON body (4xx) */
	SIM_FAULT_TIMEOUT,   /* hold the request seconds, then close without answering */
	SIM_FAULT_MALFORMED, /* the real effect happens, the answer is truncated JSON */
	SIM_FAULT_RESET,     /* TCP reset instead of an answer */
	SIM_FAULT_OUTAGE,    /* every request within [start_s, end_s) fails (503 or reset) */
};

typedef struct sim_fault_rule {
	char method[16];     /* "*" or an HTTP method */
	char pattern[256];   /* fnmatch(3) pattern on the path, '*' crosses '/' */
	enum sim_fault_kind kind;
	double share;        /* probability that a matching request is hit (default 1) */
	uint64_t limit;      /* hit at most this many times (0: no limit) */
	int latency_ms, jitter_ms;
	int status;
	json_t *body;        /* owned; for SIM_FAULT_STATUS */
	double seconds;      /* for SIM_FAULT_TIMEOUT */
	double start_s, end_s;
	bool outage_reset;
	uint64_t seed;
	sim_rng_t rng;
	uint64_t matched, hit;
} sim_fault_rule_t;

typedef struct sim_faults {
	sim_fault_rule_t *rules;
	size_t n;
	uint64_t seed;
	double t0; /* when the rules were installed: outage windows are offsets from it */
} sim_faults_t;

typedef struct sim_fault_decision {
	int latency_ms;
	enum sim_fault_kind kind; /* the terminal fault, or NONE */
	int status;
	const json_t *body;       /* borrowed from the rule (valid while the rules are) */
	double seconds;
	int rule;                 /* index of the terminal rule, -1 if none */
} sim_fault_decision_t;

/* Parses {"seed": N, "rules": [...]} (see tools/sim/README.md). The seed of each rule derives from
 * the spec's seed (or default_seed) and the rule's index. On error f is left empty and err says
 * why. Frees what f held before. */
int sim_faults_parse(sim_faults_t *f, const json_t *spec, uint64_t default_seed, double now,
		     char *err, size_t errlen);
void sim_faults_clear(sim_faults_t *f);
/* Decides what happens to one request. Every matching rule draws once from its own generator,
 * so a rule's sequence depends only on the requests it matches. */
void sim_faults_decide(sim_faults_t *f, const char *method, const char *path, double now,
		       sim_fault_decision_t *d);
json_t *sim_faults_to_json(const sim_faults_t *f, double now);
const char *sim_fault_kind_name(enum sim_fault_kind k);

/* --- event outbox: every emitted event, published to RabbitMQ when a URL is given --- */
typedef struct sim_outbox sim_outbox_t;

/* amqp_url may be NULL: events are then only kept for GET /_sim/events. exchange is
 * declared passive-or-create (topic, durable). */
sim_outbox_t *sim_outbox_new(const char *amqp_url, const char *app_id, const char *exchange);
/* Queues a CloudEvents JSON object (borrowed; serialized here). Routing key and AMQP type are
 * the event's "type", message_id its "id". */
void sim_outbox_emit(sim_outbox_t *o, const json_t *event);
/* Declares exchange passive-or-create (topic, durable) on c, whose channel 1 stays open; the check
 * runs on channel 2 so that a missing exchange does not close channel 1. Returns 0 or -1. */
int sim_amqp_declare_exchange(amqp_connection_state_t c, const char *exchange);
json_t *sim_outbox_json(sim_outbox_t *o, size_t limit);
void sim_outbox_reset(sim_outbox_t *o);
/* Waits up to flush_s for pending events to be confirmed, then stops and frees. */
void sim_outbox_free(sim_outbox_t *o, double flush_s);

/* --- HTTP server core --- */
struct MHD_Connection;

typedef struct sim_req {
	struct MHD_Connection *conn;
	const char *method;
	const char *path;
	char *body;
	size_t body_len;
	json_t *json;          /* parsed body, once sim_req_json succeeded */
} sim_req_t;

#define SIM_MAX_HEADERS 4
typedef struct sim_resp {
	int status;
	json_t *body;          /* owned; NULL for an empty body */
	int nhdr;
	char hname[SIM_MAX_HEADERS][64];
	char hval[SIM_MAX_HEADERS][128];
} sim_resp_t;

typedef struct sim_app {
	const char *name;      /* binary name, used as AMQP app_id */
	void *ctx;
	/* Called with the state lock held. Sets resp; an untouched resp is a 404. */
	void (*handle)(void *ctx, sim_req_t *req, sim_resp_t *resp);
	/* Adds the app's state to out (lock held). */
	void (*state)(void *ctx, json_t *out);
	/* Forgets everything created (lock held). */
	void (*reset)(void *ctx);
} sim_app_t;

typedef struct sim_server sim_server_t;

typedef struct sim_server_opts {
	const char *listen;      /* "127.0.0.1:0" */
	const char *port_file;   /* optional: the bound port is written there */
	const char *faults_file; /* optional JSON rules */
	uint64_t seed;
	int threads;             /* 0: one thread per connection */
	size_t log_size;         /* request log ring, default 1000 */
} sim_server_opts_t;

/* Starts listening; prints "listening on HOST:PORT" as the first line of stdout. */
sim_server_t *sim_server_start(const sim_app_t *app, sim_outbox_t *outbox,
			       const sim_server_opts_t *o);
int sim_server_port(const sim_server_t *s);
void sim_server_stop(sim_server_t *s);

/* Helpers for handlers. */
void sim_resp_json(sim_resp_t *r, int status, json_t *body /* stolen */);
void sim_resp_error(sim_resp_t *r, int status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void sim_resp_header(sim_resp_t *r, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The JSON object body, or NULL with a 400 already set in r. */
json_t *sim_req_json(sim_req_t *req, sim_resp_t *r);
const char *sim_req_query(const sim_req_t *req, const char *key);
const char *sim_req_header(const sim_req_t *req, const char *name);
/* Splits req->path after prefix into at most n segments (copied into seg, each < 128 bytes).
 * Returns the number of segments, or -1 when the path does not start with prefix. */
int sim_path_split(const char *path, const char *prefix, char seg[][128], int n);

/* Validation helpers: each sets a precise 400 in r and returns false on a bad field. */
bool sim_get_str(const json_t *o, const char *key, bool required, const char **out, sim_resp_t *r);
bool sim_get_int(const json_t *o, const char *key, bool required, int64_t min, int64_t *out,
		 bool *present, sim_resp_t *r);
bool sim_get_money(const json_t *o, const char *key, bool required, int64_t *out, sim_resp_t *r);

/* Common command line: returns the number of argv entries consumed at i (0 if not ours), -1 on
 * a bad value. */
typedef struct sim_cli {
	const char *listen, *port_file, *faults_file, *amqp_url;
	uint64_t seed;
	bool seed_set;
	int threads;
} sim_cli_t;
void sim_cli_defaults(sim_cli_t *c);
int sim_cli_parse(sim_cli_t *c, int argc, char **argv, int i);
extern const char *const sim_cli_help;
/* Blocks SIGINT/SIGTERM (call before any thread starts) and ignores SIGPIPE. */
void sim_signals_block(void);
/* Waits until SIGINT or SIGTERM arrives. */
void sim_wait_for_signal(void);

#endif
