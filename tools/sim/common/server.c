/* server.c — the simulators' HTTP core on libmicrohttpd: body collection, fault injection, the
 * request log, the /_sim inspection routes, and JSON helpers for the handlers. */
#include "sim.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BODY_MAX (1024 * 1024)
#define LOG_BODY_MAX 1024

typedef struct log_entry {
	uint64_t seq;
	char time[32];
	char method[12];
	char *path;
	json_t *query;
	char *body;
	char idem[128];
	int status;            /* 0: no answer (reset or timeout) */
	enum sim_fault_kind fault;
	double ms;
} log_entry_t;

struct sim_server {
	sim_app_t app;
	sim_outbox_t *outbox;
	struct MHD_Daemon *d;
	int port;
	volatile int stopping;
	pthread_mutex_t state_lock;  /* the app's state */
	pthread_mutex_t fault_lock;
	sim_faults_t faults;
	uint64_t seed;
	pthread_mutex_t log_lock;
	log_entry_t *log;
	size_t log_cap, log_head, log_len;
	uint64_t log_seq;
};

typedef struct req_ctx {
	char *body;
	size_t len, cap;
	bool too_big;
} req_ctx_t;

/* ---------- helpers for handlers ---------- */

void sim_resp_json(sim_resp_t *r, int status, json_t *body)
{
	json_decref(r->body);
	r->status = status;
	r->body = body;
}

void sim_resp_error(sim_resp_t *r, int status, const char *code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	sim_resp_json(r, status,
		      json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", msg));
}

void sim_resp_header(sim_resp_t *r, const char *name, const char *fmt, ...)
{
	va_list ap;

	if (r->nhdr >= SIM_MAX_HEADERS)
		return;
	snprintf(r->hname[r->nhdr], sizeof(r->hname[0]), "%s", name);
	va_start(ap, fmt);
	vsnprintf(r->hval[r->nhdr], sizeof(r->hval[0]), fmt, ap);
	va_end(ap);
	r->nhdr++;
}

json_t *sim_req_json(sim_req_t *req, sim_resp_t *r)
{
	json_error_t e;

	if (req->json)
		return req->json;
	if (!req->body || req->body_len == 0) {
		sim_resp_error(r, 400, "body_missing", "a JSON object body is required");
		return NULL;
	}
	req->json = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &e);
	if (!req->json) {
		sim_resp_error(r, 400, "invalid_json", "body is not valid JSON: %s (line %d, column %d)",
			       e.text, e.line, e.column);
		return NULL;
	}
	if (!json_is_object(req->json)) {
		json_decref(req->json);
		req->json = NULL;
		sim_resp_error(r, 400, "invalid_json", "body must be a JSON object");
		return NULL;
	}
	return req->json;
}

const char *sim_req_query(const sim_req_t *req, const char *key)
{
	return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, key);
}

const char *sim_req_header(const sim_req_t *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

int sim_path_split(const char *path, const char *prefix, char seg[][128], int n)
{
	size_t pl = strlen(prefix);
	int k = 0;

	if (strncmp(path, prefix, pl) != 0)
		return -1;
	path += pl;
	if (*path && *path != '/')
		return -1;
	while (*path) {
		const char *end;
		size_t len;
		while (*path == '/')
			path++;
		if (!*path)
			break;
		end = strchr(path, '/');
		len = end ? (size_t)(end - path) : strlen(path);
		if (k == n || len >= 128)
			return n + 1; /* more (or longer) segments than any route has */
		memcpy(seg[k], path, len);
		seg[k][len] = '\0';
		k++;
		path += len;
	}
	return k;
}

bool sim_get_str(const json_t *o, const char *key, bool required, const char **out, sim_resp_t *r)
{
	json_t *v = json_object_get(o, key);

	*out = NULL;
	if (!v || json_is_null(v)) {
		if (required)
			sim_resp_error(r, 400, "field_missing", "'%s' is required", key);
		return !required;
	}
	if (!json_is_string(v) || json_string_length(v) == 0) {
		sim_resp_error(r, 400, "field_invalid", "'%s' must be a non-empty string", key);
		return false;
	}
	*out = json_string_value(v);
	return true;
}

bool sim_get_int(const json_t *o, const char *key, bool required, int64_t min, int64_t *out,
		 bool *present, sim_resp_t *r)
{
	json_t *v = json_object_get(o, key);

	if (present)
		*present = false;
	if (!v) {
		if (required)
			sim_resp_error(r, 400, "field_missing", "'%s' is required", key);
		return !required;
	}
	if (!json_is_integer(v)) {
		sim_resp_error(r, 400, "field_invalid", "'%s' must be an integer", key);
		return false;
	}
	if (json_integer_value(v) < min) {
		sim_resp_error(r, 400, "field_invalid", "'%s' must be at least %lld", key,
			       (long long)min);
		return false;
	}
	*out = json_integer_value(v);
	if (present)
		*present = true;
	return true;
}

bool sim_get_money(const json_t *o, const char *key, bool required, int64_t *out, sim_resp_t *r)
{
	json_t *v = json_object_get(o, key);

	if (!v) {
		if (required)
			sim_resp_error(r, 400, "field_missing", "'%s' is required", key);
		return !required;
	}
	if (!json_is_string(v) || sim_money_parse(json_string_value(v), out) != 0) {
		sim_resp_error(r, 400, "field_invalid",
			       "'%s' must be a decimal string with at most 2 decimals (\"19.90\")",
			       key);
		return false;
	}
	return true;
}

/* ---------- request log ---------- */

static enum MHD_Result add_query(void *cls, enum MHD_ValueKind kind, const char *key,
				 const char *value)
{
	json_object_set_new(cls, key, json_string(value ? value : ""));
	return MHD_YES;
}

static void log_request(sim_server_t *s, const sim_req_t *req, int status,
			enum sim_fault_kind fault, double ms)
{
	log_entry_t e = {0};
	const char *idem = sim_req_header(req, "Idempotency-Key");

	sim_rfc3339(e.time, sizeof(e.time));
	snprintf(e.method, sizeof(e.method), "%s", req->method);
	e.path = strdup(req->path);
	e.query = json_object();
	MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, add_query, e.query);
	if (req->body_len)
		e.body = strndup(req->body, req->body_len < LOG_BODY_MAX ? req->body_len
									 : LOG_BODY_MAX);
	if (idem)
		snprintf(e.idem, sizeof(e.idem), "%s", idem);
	e.status = status;
	e.fault = fault;
	e.ms = ms;
	pthread_mutex_lock(&s->log_lock);
	e.seq = ++s->log_seq;
	if (s->log_len == s->log_cap) {
		log_entry_t *old = &s->log[s->log_head];
		free(old->path);
		free(old->body);
		json_decref(old->query);
		s->log_head = (s->log_head + 1) % s->log_cap;
		s->log_len--;
	}
	s->log[(s->log_head + s->log_len++) % s->log_cap] = e;
	pthread_mutex_unlock(&s->log_lock);
}

static void log_clear(sim_server_t *s)
{
	pthread_mutex_lock(&s->log_lock);
	while (s->log_len) {
		log_entry_t *old = &s->log[s->log_head];
		free(old->path);
		free(old->body);
		json_decref(old->query);
		s->log_head = (s->log_head + 1) % s->log_cap;
		s->log_len--;
	}
	s->log_head = 0;
	s->log_seq = 0;
	pthread_mutex_unlock(&s->log_lock);
}

static json_t *log_json(sim_server_t *s, size_t limit)
{
	json_t *arr = json_array(), *out;
	size_t from;

	pthread_mutex_lock(&s->log_lock);
	from = limit && s->log_len > limit ? s->log_len - limit : 0;
	for (size_t i = from; i < s->log_len; i++) {
		log_entry_t *e = &s->log[(s->log_head + i) % s->log_cap];
		json_t *o = json_pack("{s:I, s:s, s:s, s:s, s:O, s:i, s:s, s:f}", "seq",
				      (json_int_t)e->seq, "time", e->time, "method", e->method,
				      "path", e->path, "query", e->query, "status", e->status,
				      "fault", sim_fault_kind_name(e->fault), "ms", e->ms);
		if (e->body)
			json_object_set_new(o, "body", json_string(e->body));
		if (e->idem[0])
			json_object_set_new(o, "idempotency_key", json_string(e->idem));
		json_array_append_new(arr, o);
	}
	out = json_pack("{s:I, s:o}", "total", (json_int_t)s->log_seq, "requests", arr);
	pthread_mutex_unlock(&s->log_lock);
	return out;
}

/* ---------- answering ---------- */

static enum MHD_Result send_resp(struct MHD_Connection *conn, sim_resp_t *r, bool malformed)
{
	char *body = r->body ? json_dumps(r->body, JSON_COMPACT) : NULL;
	size_t len = body ? strlen(body) : 0;
	struct MHD_Response *mr;
	enum MHD_Result ret;

	if (malformed) {
		/* Cut the document in the middle: valid start, no end. */
		if (!body) {
			body = strdup("{\"id\":");
			len = strlen(body);
		} else {
			len = len / 2 > 1 ? len / 2 : 1;
			body[len] = '\0';
		}
	}
	mr = MHD_create_response_from_buffer(len, body ? body : (void *)"",
					     body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
	if (!mr) {
		free(body);
		return MHD_NO;
	}
	if (body)
		MHD_add_response_header(mr, "Content-Type", "application/json");
	for (int i = 0; i < r->nhdr; i++)
		MHD_add_response_header(mr, r->hname[i], r->hval[i]);
	ret = MHD_queue_response(conn, (unsigned)(r->status ? r->status : 500), mr);
	MHD_destroy_response(mr);
	return ret;
}

/* A TCP reset instead of an answer: linger 0 and an AF_UNSPEC connect, which makes Linux abort
 * the established connection with RST; MHD then closes a socket that is already dead. */
static void reset_connection(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	struct linger lg = {1, 0};
	struct sockaddr sa = {.sa_family = AF_UNSPEC};

	if (!ci)
		return;
	setsockopt(ci->connect_fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	connect(ci->connect_fd, &sa, sizeof(sa));
}

static void nap(sim_server_t *s, double seconds)
{
	double until = sim_now() + seconds;

	while (!s->stopping) {
		double left = until - sim_now();
		if (left <= 0)
			break;
		usleep((useconds_t)((left < 0.05 ? left : 0.05) * 1e6));
	}
}

/* A deep copy of body in place of body. Handlers answer with the app's own objects (a level, an
 * order) by reference; serialising them after state_lock is released raced with the next
 * request changing them (use after free under concurrent checkouts and inventory reads). Call
 * with state_lock held. */
static json_t *own_copy(json_t *body)
{
	json_t *copy = body ? json_deep_copy(body) : NULL;

	json_decref(body);
	return copy;
}

static void sim_routes(sim_server_t *s, sim_req_t *req, sim_resp_t *r)
{
	bool get = strcmp(req->method, "GET") == 0;
	const char *lim = sim_req_query(req, "limit");
	size_t limit = lim ? (size_t)strtoul(lim, NULL, 10) : 0;
	char err[256];

	if (get && strcmp(req->path, "/_sim/state") == 0) {
		json_t *o = json_pack("{s:s}", "simulator", s->app.name);
		pthread_mutex_lock(&s->state_lock);
		s->app.state(s->app.ctx, o);
		o = own_copy(o);
		pthread_mutex_unlock(&s->state_lock);
		sim_resp_json(r, 200, o);
	} else if (get && strcmp(req->path, "/_sim/requests") == 0) {
		sim_resp_json(r, 200, log_json(s, limit));
	} else if (get && strcmp(req->path, "/_sim/events") == 0) {
		sim_resp_json(r, 200, sim_outbox_json(s->outbox, limit));
	} else if (strcmp(req->method, "POST") == 0 && strcmp(req->path, "/_sim/reset") == 0) {
		pthread_mutex_lock(&s->state_lock);
		s->app.reset(s->app.ctx);
		pthread_mutex_unlock(&s->state_lock);
		log_clear(s);
		sim_outbox_reset(s->outbox);
		sim_resp_json(r, 200, json_pack("{s:b}", "reset", 1));
	} else if (strcmp(req->path, "/_sim/faults") == 0 &&
		   (get || strcmp(req->method, "PUT") == 0)) {
		json_t *spec = get ? NULL : sim_req_json(req, r);
		if (!get && !spec)
			return;
		pthread_mutex_lock(&s->fault_lock);
		if (spec && sim_faults_parse(&s->faults, spec, s->seed, sim_now(), err,
					     sizeof(err)) != 0)
			sim_resp_error(r, 400, "faults_invalid", "%s", err);
		else
			sim_resp_json(r, 200, sim_faults_to_json(&s->faults, sim_now()));
		pthread_mutex_unlock(&s->fault_lock);
	} else {
		sim_resp_error(r, 404, "not_found", "no inspection route %s %s", req->method,
			       req->path);
	}
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	sim_server_t *s = cls;
	req_ctx_t *ctx = *con_cls;
	sim_req_t req = {conn, method, url, NULL, 0, NULL};
	sim_resp_t resp = {0};
	sim_fault_decision_t d = {0};
	double t0 = sim_now();
	enum MHD_Result ret;

	if (!ctx) {
		ctx = calloc(1, sizeof(*ctx));
		if (!ctx)
			return MHD_NO;
		*con_cls = ctx;
		return MHD_YES;
	}
	if (*upload_size) {
		if (ctx->len + *upload_size > BODY_MAX) {
			ctx->too_big = true;
		} else {
			if (ctx->len + *upload_size + 1 > ctx->cap) {
				size_t cap = (ctx->len + *upload_size + 1) * 2;
				char *nb = realloc(ctx->body, cap);
				if (!nb)
					return MHD_NO;
				ctx->body = nb;
				ctx->cap = cap;
			}
			memcpy(ctx->body + ctx->len, upload, *upload_size);
			ctx->len += *upload_size;
			ctx->body[ctx->len] = '\0';
		}
		*upload_size = 0;
		return MHD_YES;
	}
	req.body = ctx->body;
	req.body_len = ctx->len;

	if (strncmp(url, "/_sim/", 6) == 0) {
		sim_routes(s, &req, &resp);
		ret = send_resp(conn, &resp, false);
		goto done_nolog;
	}
	if (ctx->too_big) {
		sim_resp_error(&resp, 413, "payload_too_large", "body exceeds %d bytes", BODY_MAX);
		goto answer;
	}
	pthread_mutex_lock(&s->fault_lock);
	sim_faults_decide(&s->faults, method, url, t0, &d);
	if (d.kind == SIM_FAULT_STATUS) {
		if (d.body)
			resp.body = json_deep_copy(d.body);
		else
			sim_resp_error(&resp, d.status, "injected_fault", "injected status %d",
				       d.status);
		resp.status = d.status;
	}
	pthread_mutex_unlock(&s->fault_lock);
	if (d.latency_ms)
		nap(s, d.latency_ms / 1000.0);
	switch (d.kind) {
	case SIM_FAULT_RESET:
		reset_connection(conn);
		log_request(s, &req, 0, d.kind, (sim_now() - t0) * 1e3);
		ret = MHD_NO;
		goto done_nolog;
	case SIM_FAULT_TIMEOUT:
		nap(s, d.seconds);
		log_request(s, &req, 0, d.kind, (sim_now() - t0) * 1e3);
		ret = MHD_NO; /* close without an answer */
		goto done_nolog;
	case SIM_FAULT_ERROR:
		sim_resp_error(&resp, d.status, "injected_fault", "injected %d", d.status);
		goto answer;
	case SIM_FAULT_STATUS:
		goto answer;
	default:
		break;
	}
	pthread_mutex_lock(&s->state_lock);
	s->app.handle(s->app.ctx, &req, &resp);
	resp.body = own_copy(resp.body);
	pthread_mutex_unlock(&s->state_lock);
	if (!resp.status)
		sim_resp_error(&resp, 404, "not_found", "no route %s %s", method, url);
answer:
	log_request(s, &req, resp.status, d.kind, (sim_now() - t0) * 1e3);
	ret = send_resp(conn, &resp, d.kind == SIM_FAULT_MALFORMED);
done_nolog:
	json_decref(resp.body);
	json_decref(req.json);
	return ret;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode code)
{
	req_ctx_t *ctx = *con_cls;

	if (ctx) {
		free(ctx->body);
		free(ctx);
		*con_cls = NULL;
	}
}

/* ---------- lifecycle ---------- */

static int parse_listen(const char *listen, struct sockaddr_in *sa)
{
	char host[64];
	const char *colon = strrchr(listen, ':');
	char *end;
	long port;

	if (!colon || (size_t)(colon - listen) >= sizeof(host))
		return -1;
	memcpy(host, listen, (size_t)(colon - listen));
	host[colon - listen] = '\0';
	port = strtol(colon + 1, &end, 10);
	if (*end || port < 0 || port > 65535)
		return -1;
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)port);
	return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -1;
}

static json_t *load_file(const char *path, char *err, size_t errlen)
{
	json_error_t e;
	json_t *j = json_load_file(path, 0, &e);

	if (!j)
		snprintf(err, errlen, "%s: %s (line %d)", path, e.text, e.line);
	return j;
}

sim_server_t *sim_server_start(const sim_app_t *app, sim_outbox_t *outbox,
			       const sim_server_opts_t *o)
{
	sim_server_t *s = calloc(1, sizeof(*s));
	struct sockaddr_in sa;
	const union MHD_DaemonInfo *di;
	unsigned flags;
	char err[256], host[64];

	if (!s)
		return NULL;
	s->app = *app;
	s->outbox = outbox;
	s->seed = o->seed;
	pthread_mutex_init(&s->state_lock, NULL);
	pthread_mutex_init(&s->fault_lock, NULL);
	pthread_mutex_init(&s->log_lock, NULL);
	s->log_cap = o->log_size ? o->log_size : 1000;
	s->log = calloc(s->log_cap, sizeof(*s->log));
	if (!s->log)
		goto fail;
	if (parse_listen(o->listen ? o->listen : "127.0.0.1:0", &sa) != 0) {
		fprintf(stderr, "%s: --listen wants IPV4:PORT, got '%s'\n", app->name, o->listen);
		goto fail;
	}
	if (o->faults_file) {
		json_t *spec = load_file(o->faults_file, err, sizeof(err));
		if (!spec || sim_faults_parse(&s->faults, spec, s->seed, sim_now(), err,
					      sizeof(err)) != 0) {
			fprintf(stderr, "%s: --faults: %s\n", app->name, err);
			json_decref(spec);
			goto fail;
		}
		json_decref(spec);
	} else {
		s->faults.seed = s->seed;
		s->faults.t0 = sim_now();
	}
	if (o->threads > 0)
		flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL;
	else
		flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
			MHD_USE_POLL;
	s->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, &sa,
				MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
				MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)300,
				MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024,
				o->threads > 0 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END,
				(unsigned)o->threads, MHD_OPTION_END);
	if (!s->d) {
		fprintf(stderr, "%s: cannot listen on %s: %s\n", app->name, o->listen,
			strerror(errno));
		goto fail;
	}
	di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
	s->port = di ? di->port : ntohs(sa.sin_port);
	inet_ntop(AF_INET, &sa.sin_addr, host, sizeof(host));
	printf("listening on %s:%d\n", host, s->port);
	fflush(stdout);
	if (o->port_file) {
		char tmp[4096];
		FILE *f;
		snprintf(tmp, sizeof(tmp), "%s.tmp", o->port_file);
		f = fopen(tmp, "w");
		if (!f || fprintf(f, "%d\n", s->port) < 0 || fclose(f) != 0 ||
		    rename(tmp, o->port_file) != 0) {
			fprintf(stderr, "%s: cannot write %s\n", app->name, o->port_file);
			sim_server_stop(s);
			return NULL;
		}
	}
	return s;
fail:
	sim_faults_clear(&s->faults);
	free(s->log);
	free(s);
	return NULL;
}

int sim_server_port(const sim_server_t *s)
{
	return s->port;
}

void sim_server_stop(sim_server_t *s)
{
	if (!s)
		return;
	s->stopping = 1;
	MHD_stop_daemon(s->d);
	log_clear(s);
	free(s->log);
	sim_faults_clear(&s->faults);
	pthread_mutex_destroy(&s->state_lock);
	pthread_mutex_destroy(&s->fault_lock);
	pthread_mutex_destroy(&s->log_lock);
	free(s);
}

/* ---------- command line ---------- */

const char *const sim_cli_help =
	"  --listen IP:PORT     address to listen on (default 127.0.0.1:0: an ephemeral port;\n"
	"                       the first stdout line says \"listening on IP:PORT\")\n"
	"  --port-file FILE     also write the bound port to FILE\n"
	"  --amqp URL           publish emitted events to RabbitMQ (default: $BATON_AMQP_URL;\n"
	"                       without either, events are only kept for GET /_sim/events)\n"
	"  --faults FILE        fault rules to start with (JSON, see tools/sim/README.md)\n"
	"  --seed N             seed of the fault generators (default 1)\n"
	"  --threads N          N polling threads (epoll) instead of one thread per connection\n";

void sim_cli_defaults(sim_cli_t *c)
{
	memset(c, 0, sizeof(*c));
	c->listen = "127.0.0.1:0";
	c->seed = 1;
	c->amqp_url = getenv("BATON_AMQP_URL");
}

int sim_cli_parse(sim_cli_t *c, int argc, char **argv, int i)
{
	const char *a = argv[i];
	const char *v = i + 1 < argc ? argv[i + 1] : NULL;
	char *end;

	if (strcmp(a, "--listen") && strcmp(a, "--port-file") && strcmp(a, "--amqp") &&
	    strcmp(a, "--faults") && strcmp(a, "--seed") && strcmp(a, "--threads"))
		return 0;
	if (!v) {
		fprintf(stderr, "%s needs a value\n", a);
		return -1;
	}
	if (!strcmp(a, "--listen"))
		c->listen = v;
	else if (!strcmp(a, "--port-file"))
		c->port_file = v;
	else if (!strcmp(a, "--amqp"))
		c->amqp_url = v;
	else if (!strcmp(a, "--faults"))
		c->faults_file = v;
	else if (!strcmp(a, "--seed")) {
		c->seed = strtoull(v, &end, 10);
		c->seed_set = true;
		if (*end || !*v) {
			fprintf(stderr, "--seed wants an integer\n");
			return -1;
		}
	} else {
		c->threads = (int)strtol(v, &end, 10);
		if (*end || c->threads < 0 || c->threads > 64) {
			fprintf(stderr, "--threads wants 0..64\n");
			return -1;
		}
	}
	return 2;
}

void sim_signals_block(void)
{
	sigset_t set;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
}

void sim_wait_for_signal(void)
{
	sigset_t set;
	int sig;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigwait(&set, &sig);
}
