/* baton-replay — the support staff's CLI for dead letters (see README.md in this folder).
 *
 * Commands scan the parking queues baton.<flow>.dead (broker.h: reading without taking), then
 * print (list, stats, show, export) or act (replay, discard) on what matched; whatever they do
 * not act on goes back to its queue untouched when the connection closes. */
#define _GNU_SOURCE
#include <errno.h>
#include <fnmatch.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "baton/topology.h"
#include "broker.h"
#include "db.h"
#include "format.h"
#include "message.h"
#include "rate.h"

#define RP_BATCH 500

typedef struct ctx {
	rp_args_t a;
	rp_broker_t b;
	rp_db_t db;
	int have_db;
	char err[1024];
	/* what the scan kept (show, replay, discard) */
	rp_msg_t **kept;
	size_t n_kept, cap_kept;
	/* list/stats/export as they scan */
	rp_stats_t stats;
	json_t *rows;
	FILE *out;
	size_t matched;
	int export_failed;
} ctx_t;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_s(double s)
{
	struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static int keep(ctx_t *x, rp_msg_t *m)
{
	if (x->n_kept == x->cap_kept) {
		size_t cap = x->cap_kept ? x->cap_kept * 2 : 256;
		rp_msg_t **k = realloc(x->kept, cap * sizeof(*k));
		if (!k)
			return -1;
		x->kept = k;
		x->cap_kept = cap;
	}
	x->kept[x->n_kept++] = m;
	return 0;
}

/* ---- scanning -------------------------------------------------------------------------- */

static json_t *props_json(const amqp_basic_properties_t *p)
{
	json_t *o = json_object();
#define RP_PROP(flag, name, field)                                                             \
	if (p->_flags & (flag))                                                                \
		json_object_set_new(o, name, json_stringn(p->field.bytes, p->field.len) ?: json_null());
	RP_PROP(AMQP_BASIC_CONTENT_TYPE_FLAG, "content_type", content_type)
	RP_PROP(AMQP_BASIC_CONTENT_ENCODING_FLAG, "content_encoding", content_encoding)
	RP_PROP(AMQP_BASIC_CORRELATION_ID_FLAG, "correlation_id", correlation_id)
	RP_PROP(AMQP_BASIC_REPLY_TO_FLAG, "reply_to", reply_to)
	RP_PROP(AMQP_BASIC_EXPIRATION_FLAG, "expiration", expiration)
	RP_PROP(AMQP_BASIC_MESSAGE_ID_FLAG, "message_id", message_id)
	RP_PROP(AMQP_BASIC_TYPE_FLAG, "type", type)
	RP_PROP(AMQP_BASIC_USER_ID_FLAG, "user_id", user_id)
	RP_PROP(AMQP_BASIC_APP_ID_FLAG, "app_id", app_id)
#undef RP_PROP
	if (p->_flags & AMQP_BASIC_DELIVERY_MODE_FLAG)
		json_object_set_new(o, "delivery_mode", json_integer(p->delivery_mode));
	if (p->_flags & AMQP_BASIC_PRIORITY_FLAG)
		json_object_set_new(o, "priority", json_integer(p->priority));
	if (p->_flags & AMQP_BASIC_TIMESTAMP_FLAG)
		json_object_set_new(o, "timestamp", json_integer((json_int_t)p->timestamp));
	return o;
}

static json_t *body_json(amqp_bytes_t body)
{
	json_t *s = body.len ? json_stringn(body.bytes, body.len) : json_string("");
	return s ? s : json_string("(binary body, not UTF-8)");
}

static json_t *export_json(const rp_msg_t *m)
{
	const amqp_basic_properties_t *p = &m->env.message.properties;
	char queue[128];

	snprintf(queue, sizeof(queue), "baton.%s.dead", m->it.flow);
	return json_pack("{s:s, s:s, s:s, s:o, s:o, s:o, s:o}", "id", m->it.id, "flow", m->it.flow,
			 "queue", queue, "properties", props_json(p), "headers",
			 rp_table_json((p->_flags & AMQP_BASIC_HEADERS_FLAG) ? &p->headers : NULL),
			 "body", body_json(m->env.message.body), "summary", rp_item_json(&m->it));
}

static int visit(rp_msg_t *m, void *ud)
{
	ctx_t *x = ud;
	char line[2048];
	int limited;

	if (!rp_filter_match(&x->a.filter, &m->it))
		return 0;
	x->matched++;
	limited = x->a.limit > 0 && x->matched >= (size_t)x->a.limit;
	switch (x->a.cmd) {
	case RP_LIST:
		if (x->a.json) {
			json_array_append_new(x->rows, rp_item_json(&m->it));
		} else {
			rp_table_row(line, sizeof(line), &m->it);
			fprintf(x->out, "%s\n", line);
		}
		return limited ? RP_STOP : 0;
	case RP_STATS:
		rp_stats_add(&x->stats, m->it.flow, m->it.code[0] ? m->it.code : "-");
		return 0;
	case RP_EXPORT: {
		json_t *j = export_json(m);
		if (!j || json_dumpf(j, x->out, JSON_COMPACT) != 0 || fputc('\n', x->out) == EOF)
			x->export_failed = 1;
		json_decref(j);
		return limited ? RP_STOP : 0;
	}
	default:
		if (keep(x, m) != 0)
			return RP_STOP; /* out of memory: act on what we have */
		return RP_KEEP | (limited ? RP_STOP : 0);
	}
}

static int has_glob(const char *s)
{
	return strpbrk(s, "*?[") != NULL;
}

/* The flows to scan: the table's (filtered by --flow globs) plus any flow named exactly. */
static size_t scan_flows(const rp_args_t *a, const char **out, size_t max)
{
	size_t n = 0, nt;
	const baton_flow_topology_t *t = baton_topology_flows(&nt);

	for (size_t i = 0; i < nt && n < max; i++)
		if (rp_filter_flow_ok(&a->filter, t[i].name))
			out[n++] = t[i].name;
	for (size_t i = 0; i < a->filter.n_flows && n < max; i++) {
		const char *f = a->filter.flows[i];
		int dup = 0;
		for (size_t j = 0; j < n; j++)
			dup |= !strcmp(out[j], f);
		if (!dup && !has_glob(f))
			out[n++] = f;
	}
	return n;
}

/* Counts every parking queue first (that fixes the set), then scans them one by one. */
static int scan(ctx_t *x)
{
	const char *flows[RP_MAX_FLOWS + 16];
	uint32_t counts[RP_MAX_FLOWS + 16];
	int exists[RP_MAX_FLOWS + 16];
	size_t n = scan_flows(&x->a, flows, RP_MAX_FLOWS + 16);
	char q[160];

	for (size_t i = 0; i < n; i++) {
		snprintf(q, sizeof(q), "baton.%s.dead", flows[i]);
		int rc = rp_broker_count(&x->b, q, &counts[i], x->err, sizeof(x->err));
		if (rc < 0)
			return -1;
		exists[i] = rc == 0;
		if (!exists[i] && x->a.filter.n_flows && !has_glob(flows[i]))
			fprintf(stderr, "baton-replay: no parking queue %s in this vhost\n", q);
	}
	for (size_t i = 0; i < n; i++) {
		if (!exists[i])
			continue;
		if (x->a.limit > 0 && x->matched >= (size_t)x->a.limit)
			break;
		snprintf(q, sizeof(q), "baton.%s.dead", flows[i]);
		if (rp_broker_scan(&x->b, q, flows[i], counts[i], visit, x, x->err,
				   sizeof(x->err)) != 0)
			return -1;
	}
	return 0;
}

/* Ids given on the command line that the scan did not find (printed); their number. */
static size_t missing_ids(const ctx_t *x)
{
	size_t miss = 0;

	for (size_t i = 0; i < x->a.filter.n_ids; i++) {
		int found = 0;
		for (size_t j = 0; j < x->n_kept && !found; j++)
			found = !strcmp(x->kept[j]->it.id, x->a.filter.ids[i]);
		if (!found) {
			fprintf(stderr, "baton-replay: %s: no such parked message%s\n",
				x->a.filter.ids[i],
				rp_filter_has_criteria(&x->a.filter) ? " matching the filter" : "");
			miss++;
		}
	}
	return miss;
}

/* ---- list, stats, export ----------------------------------------------------------------- */

static int cmd_list(ctx_t *x)
{
	char line[512];

	x->rows = json_array();
	if (!x->a.json) {
		rp_table_header(line, sizeof(line));
		fprintf(x->out, "%s\n", line);
	}
	if (scan(x) != 0)
		return RP_EXIT_RUNTIME;
	if (x->a.json) {
		json_dumpf(x->rows, x->out, JSON_INDENT(2));
		fputc('\n', x->out);
	} else {
		fprintf(stderr, "%zu message%s\n", x->matched, x->matched == 1 ? "" : "s");
	}
	return RP_EXIT_OK;
}

static int cmd_stats(ctx_t *x)
{
	if (scan(x) != 0)
		return RP_EXIT_RUNTIME;
	rp_stats_sort(&x->stats);
	if (x->a.json) {
		json_t *j = rp_stats_json(&x->stats);
		json_dumpf(j, x->out, JSON_INDENT(2));
		fputc('\n', x->out);
		json_decref(j);
	} else {
		rp_stats_print(&x->stats, x->out);
	}
	return RP_EXIT_OK;
}

static int cmd_export(ctx_t *x)
{
	FILE *f = NULL;

	if (x->a.output && strcmp(x->a.output, "-")) {
		f = fopen(x->a.output, "w");
		if (!f) {
			snprintf(x->err, sizeof(x->err), "cannot write %s: %s", x->a.output,
				 strerror(errno));
			return RP_EXIT_RUNTIME;
		}
		x->out = f;
	}
	int rc = scan(x) != 0 ? RP_EXIT_RUNTIME : RP_EXIT_OK;
	if (f && fclose(f) != 0)
		x->export_failed = 1;
	if (rc == RP_EXIT_OK && x->export_failed) {
		snprintf(x->err, sizeof(x->err), "writing the export failed");
		rc = RP_EXIT_RUNTIME;
	}
	if (rc == RP_EXIT_OK)
		fprintf(stderr, "%zu message%s exported\n", x->matched, x->matched == 1 ? "" : "s");
	return rc;
}

/* ---- show ------------------------------------------------------------------------------ */

static void show_message(ctx_t *x, const rp_msg_t *m)
{
	const rp_item_t *it = &m->it;
	const amqp_basic_properties_t *p = &m->env.message.properties;
	json_t *hdrs = rp_table_json((p->_flags & AMQP_BASIC_HEADERS_FLAG) ? &p->headers : NULL);
	json_t *props = props_json(p), *body;
	const char *k;
	json_t *v;
	FILE *o = x->out;

	fprintf(o, "message %s in baton.%s.dead (parked)\n", it->id, it->flow);
	fprintf(o, "  subject        %s\n  type           %s\n", it->subject[0] ? it->subject : "-",
		it->type[0] ? it->type : "-");
	fprintf(o, "  error          %s %s", it->cls[0] ? it->cls : "-", it->code[0] ? it->code : "-");
	if (it->http_status)
		fprintf(o, " (HTTP %ld)", it->http_status);
	fprintf(o, "\n  message        %s\n", it->message[0] ? it->message : "-");
	fprintf(o, "  attempts       %u, replays %u\n", it->attempts, it->replays);
	fprintf(o, "  first failure  %s\n  last failure   %s\n",
		it->first_failed_at[0] ? it->first_failed_at : "-",
		it->last_failed_at[0] ? it->last_failed_at : "-");
	fprintf(o, "  worker         %s\n  original       %s / %s\n", it->worker[0] ? it->worker : "-",
		it->orig_exchange[0] ? it->orig_exchange : "-",
		it->orig_routing_key[0] ? it->orig_routing_key : "-");
	fprintf(o, "properties\n");
	json_object_foreach(props, k, v) {
		char *s = json_dumps(v, JSON_ENCODE_ANY);
		fprintf(o, "  %-22s %s\n", k, s ? s : "?");
		free(s);
	}
	fprintf(o, "headers\n");
	json_object_foreach(hdrs, k, v) {
		char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
		fprintf(o, "  %-30s %s\n", k, s ? s : "?");
		free(s);
	}
	fprintf(o, "body\n");
	body = json_loadb(m->env.message.body.bytes, m->env.message.body.len, 0, NULL);
	if (body)
		json_dumpf(body, o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	else
		fwrite(m->env.message.body.bytes, 1, m->env.message.body.len, o);
	fputc('\n', o);
	json_decref(body);
	json_decref(hdrs);
	json_decref(props);
}

static const char *jstr(const json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

static void show_history(ctx_t *x, json_t *records, json_t *trail)
{
	size_t i, j;
	json_t *r, *h;

	json_array_foreach(records, i, r) {
		fprintf(x->out, "record %s: status %s\n", jstr(r, "_id"), jstr(r, "status"));
		json_array_foreach(json_object_get(r, "history"), j, h) {
			const char *ev = jstr(h, "event");
			fprintf(x->out, "  %-24s %-14s ", jstr(h, "at"), ev);
			if (!strcmp(ev, "parked"))
				fprintf(x->out, "%s %s: %s\n", jstr(h, "class"), jstr(h, "code"),
					jstr(h, "message"));
			else
				fprintf(x->out, "by %s%s%s%s%s (%s%s%s)\n", jstr(h, "operator"),
					jstr(h, "reason")[0] ? ", reason: " : "", jstr(h, "reason"),
					jstr(h, "ticket")[0] ? ", ticket: " : "", jstr(h, "ticket"),
					jstr(h, "outcome"), jstr(h, "why")[0] ? ": " : "",
					jstr(h, "why"));
		}
	}
	fprintf(x->out, "audit trail\n");
	json_array_foreach(trail, i, r) {
		fprintf(x->out, "  %-24s %-10s %-14s %s%s%s%s%s\n", jstr(r, "ts"), jstr(r, "flow"),
			jstr(r, "step"), jstr(r, "error_code"),
			jstr(r, "operator")[0] ? " by " : "", jstr(r, "operator"),
			jstr(r, "reason")[0] ? ": " : "", jstr(r, "reason"));
	}
	if (!json_array_size(trail))
		fprintf(x->out, "  (no entries)\n");
}

static int cmd_show(ctx_t *x)
{
	json_t *records = NULL, *trail = NULL;
	int rc = RP_EXIT_OK, hist;

	if (scan(x) != 0)
		return RP_EXIT_RUNTIME;
	for (size_t i = 0; i < x->n_kept; i++) {
		show_message(x, x->kept[i]);
		fputc('\n', x->out);
	}
	hist = x->have_db ? rp_db_history(&x->db, x->a.filter.ids[0], &records, &trail, x->err,
					  sizeof(x->err))
			  : -1;
	if (hist == 0 && (x->n_kept || json_array_size(records) || json_array_size(trail))) {
		if (!x->n_kept)
			fprintf(x->out, "message %s is not parked now\n", x->a.filter.ids[0]);
		fprintf(x->out, "history\n");
		show_history(x, records, trail);
	} else if (hist == 0) {
		fprintf(stderr, "baton-replay: %s: no such parked message, and none on record\n",
			x->a.filter.ids[0]);
		rc = RP_EXIT_UNKNOWN;
	} else {
		rc = RP_EXIT_RUNTIME; /* x->err says why */
	}
	json_decref(records);
	json_decref(trail);
	return rc;
}

/* ---- replay, discard ------------------------------------------------------------------- */

static void print_plan(ctx_t *x, FILE *o, const char *verb)
{
	rp_stats_t s = {0};

	for (size_t i = 0; i < x->n_kept; i++)
		rp_stats_add(&s, x->kept[i]->it.flow, x->kept[i]->it.code[0] ? x->kept[i]->it.code : "-");
	rp_stats_sort(&s);
	fprintf(o, "%s %zu message%s:\n", verb, x->n_kept, x->n_kept == 1 ? "" : "s");
	rp_stats_print(&s, o);
	rp_stats_free(&s);
}

/* 1 to go on, 0 when the operator said no, -1 when nobody can be asked. */
static int confirm(ctx_t *x, const char *verb)
{
	char line[32];

	if (x->a.yes || x->n_kept <= 1)
		return 1;
	if (!isatty(STDIN_FILENO)) {
		snprintf(x->err, sizeof(x->err),
			 "%s of %zu messages needs --yes (no terminal to ask)", verb, x->n_kept);
		return -1;
	}
	fprintf(stderr, "%s these %zu messages? [y/N] ", verb, x->n_kept);
	fflush(stderr);
	if (!fgets(line, sizeof(line), stdin))
		return 0;
	return line[0] == 'y' || line[0] == 'Y';
}

/* Flows whose work queue does not exist: their messages fail (they stay parked). */
static int check_targets(ctx_t *x)
{
	for (size_t i = 0; i < x->n_kept; i++) {
		rp_msg_t *m = x->kept[i];
		char q[160];
		uint32_t n;
		int rc, seen = 0;
		for (size_t j = 0; j < i && !seen; j++)
			seen = !strcmp(x->kept[j]->it.flow, m->it.flow);
		if (seen)
			continue;
		snprintf(q, sizeof(q), "baton.%s", m->it.flow);
		rc = rp_broker_count(&x->b, q, &n, x->err, sizeof(x->err));
		if (rc < 0)
			return -1;
		for (size_t j = i; rc == 1 && j < x->n_kept; j++) {
			if (strcmp(x->kept[j]->it.flow, m->it.flow))
				continue;
			x->kept[j]->outcome = -1;
			snprintf(x->kept[j]->why, sizeof(x->kept[j]->why),
				 "no work queue %s: start the flow's workers first", q);
		}
	}
	return 0;
}

typedef struct progress {
	int on;
	size_t done, total;
	double t0;
} progress_t;

static void progress_show(progress_t *p, int last)
{
	char buf[256];
	double dt = now_s() - p->t0;

	if (!p->on)
		return;
	rp_progress(buf, sizeof(buf), p->done, p->total, dt > 0 ? (double)p->done / dt : 0, 30);
	fprintf(stderr, "\r%s%s", buf, last ? "\n" : "");
	fflush(stderr);
}

/* Replays batch (outcome 0 ones): publish + confirm, ack the confirmed, record all. */
static int replay_batch(ctx_t *x, const rp_action_t *act, rp_msg_t **batch, size_t n)
{
	amqp_table_t hdrs[RP_BATCH];
	amqp_pool_t pool;
	int rc = 0;

	init_amqp_pool(&pool, 16384);
	for (size_t i = 0; i < n; i++) {
		const amqp_basic_properties_t *p = &batch[i]->env.message.properties;
		if (rp_replay_headers((p->_flags & AMQP_BASIC_HEADERS_FLAG) ? &p->headers : NULL,
				      batch[i]->it.replays + 1, &pool, &hdrs[i]) != 0) {
			snprintf(x->err, sizeof(x->err), "out of memory");
			rc = -1;
			goto out;
		}
	}
	if (rp_broker_publish(&x->b, BATON_EXCHANGE_REQUEUE, batch, hdrs, n, x->err,
			      sizeof(x->err)) != 0) {
		rc = -1;
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		if (batch[i]->outcome == 1 && rp_broker_ack(&x->b, batch[i], x->err, sizeof(x->err)))
			rc = -1;
	if (rp_db_record(&x->db, act, batch, n, 0, x->err, sizeof(x->err)) != 0) {
		fprintf(stderr, "\nbaton-replay: the last %zu messages were replayed but their record "
				"failed\n", n);
		rc = -1;
	}
out:
	empty_amqp_pool(&pool);
	return rc;
}

/* Discard: the record (with the body) is durable before the parked copy is acked. */
static int discard_batch(ctx_t *x, const rp_action_t *act, rp_msg_t **batch, size_t n)
{
	for (size_t i = 0; i < n; i++)
		batch[i]->outcome = 1;
	if (rp_db_record(&x->db, act, batch, n, 1, x->err, sizeof(x->err)) != 0) {
		for (size_t i = 0; i < n; i++)
			batch[i]->outcome = 0; /* still parked, nothing done */
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		if (rp_broker_ack(&x->b, batch[i], x->err, sizeof(x->err)) != 0)
			return -1;
	return 0;
}

static size_t batch_size(const rp_args_t *a)
{
	if (a->rate <= 0)
		return RP_BATCH;
	size_t b = (size_t)(a->rate / 4); /* a confirm round about every 250 ms */
	return b < 1 ? 1 : b > RP_BATCH ? RP_BATCH : b;
}

static int act(ctx_t *x, const rp_action_t *a, int replay)
{
	rp_msg_t *batch[RP_BATCH];
	size_t nb = 0, bs = replay ? batch_size(&x->a) : RP_BATCH;
	rp_rate_t rl;
	progress_t pg = {isatty(STDERR_FILENO) && !x->a.no_progress, 0, x->n_kept, now_s()};
	int rc = 0;

	rp_rate_init(&rl, replay ? x->a.rate : 0, now_s());
	for (size_t i = 0; i < x->n_kept && rc == 0; i++) {
		double d;
		if (x->kept[i]->outcome != 0)
			continue; /* already failed (no work queue) */
		while ((d = rp_rate_delay(&rl, now_s())) > 0)
			sleep_s(d);
		batch[nb++] = x->kept[i];
		if (nb < bs && i + 1 < x->n_kept)
			continue;
		rc = replay ? replay_batch(x, a, batch, nb) : discard_batch(x, a, batch, nb);
		pg.done += nb;
		nb = 0;
		progress_show(&pg, 0);
	}
	if (rc == 0 && nb) {
		rc = replay ? replay_batch(x, a, batch, nb) : discard_batch(x, a, batch, nb);
		pg.done += nb;
	}
	progress_show(&pg, 1);
	return rc;
}

static int report(ctx_t *x, const char *past, int rc)
{
	size_t ok = 0, failed = 0, left = 0;

	for (size_t i = 0; i < x->n_kept; i++) {
		rp_msg_t *m = x->kept[i];
		if (m->outcome == 1 && (m->acked || !strcmp(past, "discarded")))
			ok++;
		else if (m->outcome == -1) {
			failed++;
			fprintf(stderr, "baton-replay: %s (%s) not %s: %s\n", m->it.id, m->it.flow,
				past, m->why);
		} else
			left++;
	}
	fprintf(stderr, "%zu %s, %zu failed, %zu left parked untouched\n", ok, past, failed, left);
	return rc != 0 || failed ? RP_EXIT_RUNTIME : RP_EXIT_OK;
}

static void tool_id(char *buf, size_t len)
{
	char host[128] = "";

	gethostname(host, sizeof(host) - 1);
	snprintf(buf, len, "baton-replay@%s:%d", host[0] ? host : "localhost", (int)getpid());
}

static int cmd_act(ctx_t *x)
{
	int replay = x->a.cmd == RP_REPLAY, c, rc;
	const char *verb = replay ? "replay" : "discard", *user = getenv("USER");
	char id[200];
	rp_action_t a = {replay ? "replayed" : "discarded",
			 x->a.op ? x->a.op : (user && user[0] ? user : "unknown"), x->a.reason,
			 x->a.ticket, id};

	tool_id(id, sizeof(id));
	if (scan(x) != 0)
		return RP_EXIT_RUNTIME;
	size_t miss = missing_ids(x);
	if (!x->n_kept) {
		fprintf(stderr, "nothing to %s\n", verb);
		return miss ? RP_EXIT_UNKNOWN : RP_EXIT_OK;
	}
	print_plan(x, x->a.dry_run ? x->out : stderr,
		   x->a.dry_run ? (replay ? "would replay" : "would discard")
				: (replay ? "replaying" : "discarding"));
	if (x->a.dry_run)
		return miss ? RP_EXIT_UNKNOWN : RP_EXIT_OK;
	if ((c = confirm(x, replay ? "Replay" : "Discard")) <= 0) {
		if (c < 0)
			return RP_EXIT_USAGE;
		fprintf(stderr, "nothing done\n");
		return RP_EXIT_OK;
	}
	if (replay && check_targets(x) != 0)
		return RP_EXIT_RUNTIME;
	rc = act(x, &a, replay);
	rc = report(x, replay ? "replayed" : "discarded", rc);
	return rc == RP_EXIT_OK && miss ? RP_EXIT_UNKNOWN : rc;
}

static int needs_db(enum rp_cmd c)
{
	return c == RP_SHOW || c == RP_REPLAY || c == RP_DISCARD;
}

static int connect_all(ctx_t *x)
{
	const char *url = getenv("BATON_AMQP_URL"), *uri = getenv("BATON_MONGO_URI");
	const char *db = getenv("BATON_MONGO_DB");

	if (!url || !url[0]) {
		snprintf(x->err, sizeof(x->err), "BATON_AMQP_URL is not set (amqp://user:pass@host:port/vhost)");
		return RP_EXIT_USAGE;
	}
	if (needs_db(x->a.cmd) && !x->a.dry_run && (!uri || !uri[0])) {
		snprintf(x->err, sizeof(x->err), "BATON_MONGO_URI is not set (mongodb://host:port)");
		return RP_EXIT_USAGE;
	}
	/* The database first: nothing is taken from a queue unless it can be recorded. */
	if (needs_db(x->a.cmd) && !x->a.dry_run) {
		if (rp_db_open(&x->db, uri, db && db[0] ? db : "baton", x->err, sizeof(x->err)) != 0)
			return RP_EXIT_RUNTIME;
		x->have_db = 1;
	}
	if (rp_broker_open(&x->b, url, x->err, sizeof(x->err)) != 0)
		return RP_EXIT_RUNTIME;
	return RP_EXIT_OK;
}

static int run(ctx_t *x)
{
	switch (x->a.cmd) {
	case RP_LIST: return cmd_list(x);
	case RP_STATS: return cmd_stats(x);
	case RP_EXPORT: return cmd_export(x);
	case RP_SHOW: return cmd_show(x);
	default: return cmd_act(x);
	}
}

static void cleanup(ctx_t *x)
{
	/* Closing the connection hands back every delivery not acked. */
	rp_broker_close(&x->b);
	if (x->have_db)
		rp_db_close(&x->db);
	for (size_t i = 0; i < x->n_kept; i++)
		rp_msg_free(x->kept[i]);
	free(x->kept);
	rp_stats_free(&x->stats);
	json_decref(x->rows);
}

/* libmongoc's own warnings (e.g. FerretDB lacking endSessions) are noise for support staff. */
static void mongoc_quiet(mongoc_log_level_t level, const char *domain, const char *msg, void *ud)
{
	(void)ud;
	if (level <= MONGOC_LOG_LEVEL_ERROR)
		fprintf(stderr, "baton-replay: mongoc %s: %s\n", domain, msg);
}

int main(int argc, char **argv)
{
	static ctx_t x;
	int rc;

	signal(SIGPIPE, SIG_IGN);
	x.out = stdout;
	rc = rp_args_parse(&x.a, argc, argv, wall_ms(), x.err, sizeof(x.err));
	if (rc != 0) {
		fprintf(stderr, "baton-replay: %s\n(see baton-replay --help)\n", x.err);
		return rc;
	}
	if (x.a.help) {
		rp_usage((int)x.a.cmd, stdout);
		return RP_EXIT_OK;
	}
	mongoc_log_set_handler(mongoc_quiet, NULL);
	mongoc_init();
	x.err[0] = '\0';
	rc = connect_all(&x);
	if (rc == RP_EXIT_OK)
		rc = run(&x);
	if (rc != RP_EXIT_OK && x.err[0])
		fprintf(stderr, "baton-replay: %s\n", x.err);
	fflush(x.out);
	cleanup(&x);
	mongoc_cleanup();
	return rc;
}
