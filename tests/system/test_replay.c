/* test_replay.c — baton-replay against the real broker and FerretDB.
 *
 *   filters          500 messages of 3 flows and 4 codes parked: list (each filter), stats and
 *                    export return exactly the right sets; nothing is taken; bad filters exit 2,
 *                    an unknown id exits 3; export round-trips headers and bodies
 *   replay_rate      one code replayed with --rate: at least the time the rate implies; the
 *                    copies reach only that flow's queue with attempts 0 and replays 1, the
 *                    others stay parked with their headers intact; dry-run and the missing
 *                    --yes change nothing; every replay is recorded (dead_letters, audit)
 *   later_arrivals   an unreachable database stops a replay before it takes anything;
 *                    messages parked while a replay runs are not touched by it
 *   discard          --reason mandatory; the discard is recorded with reason, operator and
 *                    body; show tells the history; show of a discarded id still works; the
 *                    same messages parked and discarded again: one record, both stories
 *   two_operators    two replays of the same queue (2,100 messages: more than one consumer
 *                    may hold) at once: every message replayed exactly once
 *   kill9            300 testflow messages parked by an ERP 422, one replayed and parked again;
 *                    a replay of all killed -9 mid-way and run again: each ERP effect exactly
 *                    once, nothing left parked, the history of the twice-parked message */
#define _GNU_SOURCE
#include "flowtest.h"

#include <fcntl.h>

#include "baton/headers.h"
#include "baton/topology.h"

#define RP_BIN BATON_BINARY_DIR "/tools/replay/baton-replay"
#define N_MSGS 500

static bt_stack_t S;
static simt_proc_t ERP;
static amqp_connection_state_t C;
static char OUT[512], ERR[512];

static int64_t PARKED; /* what the parking queues hold when no command runs */
static int64_t wait_parked(int64_t want);

static const char *const FLOWS[] = {"orders", "inventory", "payments"};
static const char *const CODES[] = {"sku.unmapped", "erp.http_422", "payload.invalid",
				    "erp.http_503"};

/* ---- the parked messages: message i is fully determined by i ---- */

typedef struct gen {
	char id[32], flow[32], code[32], cls[16], msg[128], subject[32], last[40], first[40];
	long http;
	unsigned attempts;
} gen_t;

static void gen(int i, gen_t *g)
{
	int c = (i / 3) % 4;

	memset(g, 0, sizeof(*g));
	snprintf(g->id, sizeof(g->id), "m-%03d", i);
	snprintf(g->flow, sizeof(g->flow), "%s", FLOWS[i % 3]);
	snprintf(g->code, sizeof(g->code), "%s", CODES[c]);
	snprintf(g->cls, sizeof(g->cls), "%s", c == 3 ? "exhausted" : "permanent");
	snprintf(g->msg, sizeof(g->msg), "line %d: SKU TSHIRT-%d has no ERP item", i, i % 5);
	snprintf(g->subject, sizeof(g->subject), "order/SO-%d", 1000 + i);
	/* one failure a minute from 2026-11-20T00:00Z, the first an hour earlier */
	snprintf(g->last, sizeof(g->last), "2026-11-20T%02d:%02d:00.000Z", i / 60, i % 60);
	snprintf(g->first, sizeof(g->first), "2026-11-19T%02d:%02d:00.000Z", 23, i % 60);
	g->http = c == 1 ? 422 : c == 3 ? 503 : 0;
	g->attempts = c == 3 ? 5 : 1;
}

static void gen_body(int i, char *buf, size_t len)
{
	gen_t g;

	gen(i, &g);
	snprintf(buf, len,
		 "{\"specversion\":\"1.0\",\"id\":\"%s\",\"source\":\"storefront/shop-eu\","
		 "\"type\":\"storefront.order.created\",\"subject\":\"%s\",\"time\":"
		 "\"2026-11-20T00:00:00Z\",\"datacontenttype\":\"application/json\","
		 "\"data\":{\"order_id\":\"SO-%d\",\"note\":\"caf\xc3\xa9 %d\"}}",
		 g.id, g.subject, 1000 + i, i);
}

static void wait_confirms(amqp_channel_t ch, uint64_t upto)
{
	uint64_t acked = 0;
	amqp_frame_t f;

	while (acked < upto) {
		assert_int_equal(amqp_simple_wait_frame(C, &f), AMQP_STATUS_OK);
		if (f.frame_type != AMQP_FRAME_METHOD || f.channel != ch)
			continue;
		assert_int_equal(f.payload.method.id, AMQP_BASIC_ACK_METHOD);
		amqp_basic_ack_t *a = f.payload.method.decoded;
		if (a->delivery_tag > acked)
			acked = a->delivery_tag;
	}
}

/* Parks messages [from, to) as a worker would: to baton.dead, key = flow, x-baton-* headers. */
static void park(int from, int to)
{
	static amqp_channel_t ch = 7;
	amqp_channel_t c = ch++;
	char body[1024];
	uint64_t n = 0;

	amqp_channel_open(C, c);
	assert_int_equal(amqp_get_rpc_reply(C).reply_type, AMQP_RESPONSE_NORMAL);
	amqp_confirm_select(C, c);
	assert_int_equal(amqp_get_rpc_reply(C).reply_type, AMQP_RESPONSE_NORMAL);
	for (int i = from; i < to; i++) {
		baton_failure_t f;
		gen_t g;
		amqp_pool_t pool;
		amqp_basic_properties_t p = {0};

		gen(i, &g);
		memset(&f, 0, sizeof(f));
		snprintf(f.flow, sizeof(f.flow), "%s", g.flow);
		f.cls = g.cls[0] == 'e' ? BATON_CLASS_EXHAUSTED : BATON_CLASS_PERMANENT;
		snprintf(f.code, sizeof(f.code), "%s", g.code);
		snprintf(f.message, sizeof(f.message), "%s", g.msg);
		f.http_status = g.http;
		f.attempts = g.attempts;
		snprintf(f.first_failed_at, sizeof(f.first_failed_at), "%s", g.first);
		snprintf(f.last_failed_at, sizeof(f.last_failed_at), "%s", g.last);
		snprintf(f.worker, sizeof(f.worker), "w-%s", g.flow);
		snprintf(f.orig_exchange, sizeof(f.orig_exchange), "baton.events");
		snprintf(f.orig_routing_key, sizeof(f.orig_routing_key), "storefront.order.created");
		init_amqp_pool(&pool, 4096);
		assert_int_equal(baton_headers_build(&f, NULL, &pool, &p.headers), 0);
		gen_body(i, body, sizeof(body));
		p._flags = AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
			   AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG |
			   AMQP_BASIC_CORRELATION_ID_FLAG;
		p.delivery_mode = 2;
		p.message_id = amqp_cstring_bytes(g.id);
		p.correlation_id = amqp_cstring_bytes(g.id);
		p.content_type = amqp_cstring_bytes("application/json");
		assert_int_equal(amqp_basic_publish(C, c, amqp_cstring_bytes("baton.dead"),
						    amqp_cstring_bytes(g.flow), 1, 0, &p,
						    amqp_cstring_bytes(body)),
				 AMQP_STATUS_OK);
		empty_amqp_pool(&pool);
		n++;
	}
	wait_confirms(c, n);
	amqp_channel_close(C, c, AMQP_REPLY_SUCCESS);
	PARKED += to - from;
}

static void declare(const char *flow)
{
	static const char *const none[] = {NULL};
	baton_flow_topology_t ft = {flow, none};
	const baton_flow_topology_t *t = baton_topology_find(flow);
	baton_topology_opts_t o;
	char err[512];

	baton_topology_default_opts(&o);
	assert_int_equal(baton_topology_declare(C, 1, t ? t : &ft, &o, err, sizeof(err)), 0);
}

/* ---- running the tool ---- */

static pid_t rp_start(const char *const *args, const char *stdin_path)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		const char *argv[48];
		int n = 0, fd;
		argv[n++] = RP_BIN;
		for (const char *const *a = args; *a && n < 46; a++)
			argv[n++] = *a;
		argv[n] = NULL;
		setenv("BATON_AMQP_URL", S.amqp_url, 1);
		setenv("BATON_MONGO_URI", S.mongo_uri, 1);
		setenv("BATON_MONGO_DB", S.db_name, 1);
		setenv("USER", "tester", 1);
		fd = open(OUT, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		dup2(fd, 1);
		fd = open(ERR, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		dup2(fd, 2);
		fd = open(stdin_path ? stdin_path : "/dev/null", O_RDONLY);
		dup2(fd, 0);
		execv(RP_BIN, (char *const *)argv);
		_exit(127);
	}
	return pid;
}

static int rp_wait(pid_t pid)
{
	int st;

	assert_int_equal(waitpid(pid, &st, 0), pid);
	if (!WIFEXITED(st))
		return -1;
	if (WEXITSTATUS(st) != 0 && getenv("RP_VERBOSE")) {
		char cmd[600];
		snprintf(cmd, sizeof(cmd), "cat %s >&2", ERR);
		(void)!system(cmd);
	}
	return WEXITSTATUS(st);
}

/* Runs baton-replay with args (NULL-terminated); stdout in OUT. Exit status. */
#define RP(...) rp_wait(rp_start((const char *const[]){__VA_ARGS__, NULL}, NULL))

static json_t *out_json(void)
{
	json_error_t e;
	json_t *j = json_load_file(OUT, 0, &e);

	if (!j)
		fail_msg("baton-replay output is not JSON: %s", e.text);
	return j;
}

static int file_has(const char *path, const char *needle)
{
	FILE *f = fopen(path, "r");
	char *buf;
	size_t n;
	int found;

	assert_non_null(f);
	buf = calloc(1, 1 << 20);
	n = fread(buf, 1, (1 << 20) - 1, f);
	buf[n] = '\0';
	fclose(f);
	found = strstr(buf, needle) != NULL;
	free(buf);
	return found;
}

/* Sorted ids of `list --json` vs the ids of generated messages [0, n) that pass keep(). */
static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void check_list(int n, int (*want)(const gen_t *), const char *const *args)
{
	const char *argv[24] = {"list", "--json"};
	json_t *j, *row;
	size_t i, k = 0, got_n;
	int na = 2;
	char **got;

	assert_int_equal(wait_parked(PARKED), PARKED);
	for (; *args; args++)
		argv[na++] = *args;
	argv[na] = NULL;
	assert_int_equal(rp_wait(rp_start(argv, NULL)), 0);
	j = out_json();
	got_n = json_array_size(j);
	got = calloc(got_n + 1, sizeof(*got));
	json_array_foreach(j, i, row)
		got[i] = strdup(json_string_value(json_object_get(row, "id")));
	qsort(got, got_n, sizeof(*got), cmp_str);
	for (int m = 0; m < n; m++) {
		gen_t g;
		gen(m, &g);
		if (!want(&g))
			continue;
		if (k >= got_n || strcmp(got[k], g.id))
			fail_msg("list %s: expected %s at %zu, got %s", argv[2] ? argv[2] : "",
				 g.id, k, k < got_n ? got[k] : "(end)");
		k++;
	}
	assert_int_equal(k, got_n);
	for (i = 0; i < got_n; i++)
		free(got[i]);
	free(got);
	json_decref(j);
}

static int64_t parked_total(void)
{
	int64_t n = 0;
	char q[64];

	for (int f = 0; f < 3; f++) {
		snprintf(q, sizeof(q), "baton.%s.dead", FLOWS[f]);
		n += bt_queue_depth(C, q);
	}
	return n;
}

/* Messages a command held come back to their queue asynchronously (quorum queues settle the
 * returns through their log) after it ends, and a quorum queue's message count (queue.declare
 * passive) comes from statistics refreshed every few seconds, later on a loaded machine: wait
 * for the expected total, 60 s at most. */
static int64_t wait_parked(int64_t want)
{
	int64_t have = -1;

	for (double end = ft_now() + 60; ft_now() < end; bt_sleep_ms(100))
		if ((have = parked_total()) == want)
			break;
	return have;
}

static int64_t count_step(const char *step)
{
	bson_t *q = BCON_NEW("step", step, "outcome", "ok");
	int64_t n = bt_count_docs(&S, "audit", q);
	bson_destroy(q);
	return n;
}

static int setup(void **state)
{
	static int n;
	char name[64];

	(void)state;
	snprintf(name, sizeof(name), "test_replay_%d", ++n);
	if (bt_stack_open(&S, name) != 0)
		return -1;
	const char *tmp = getenv("BATON_TEST_TMP");
	snprintf(OUT, sizeof(OUT), "%s/replay-%d-%d.out", tmp && tmp[0] ? tmp : "/tmp",
		 (int)getpid(), n);
	snprintf(ERR, sizeof(ERR), "%s/replay-%d-%d.err", tmp && tmp[0] ? tmp : "/tmp",
		 (int)getpid(), n);
	C = bt_amqp_open(&S);
	PARKED = 0;
	for (int f = 0; f < 3; f++)
		declare(FLOWS[f]);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	ft_kill_all();
	if (ERP.pid > 0)
		simt_stop(&ERP);
	amqp_destroy_connection(C);
	bt_stack_close(&S);
	unlink(OUT);
	unlink(ERR);
	return 0;
}

/* ---- filters, stats, export ---- */

static int w_all(const gen_t *g) { (void)g; return 1; }
static int w_orders(const gen_t *g) { return !strcmp(g->flow, "orders"); }
static int w_422(const gen_t *g) { return !strcmp(g->code, "erp.http_422"); }
static int w_inv422(const gen_t *g) { return w_422(g) && !strcmp(g->flow, "inventory"); }
static int w_late_orders(const gen_t *g) { return w_orders(g) && atoi(g->id + 2) >= 30; }
static int w_erp(const gen_t *g) { return !strncmp(g->code, "erp.", 4); }
static int w_exhausted(const gen_t *g) { return !strcmp(g->cls, "exhausted"); }
static int w_subject(const gen_t *g) { return !strcmp(g->subject, "order/SO-1234"); }
static int w_grep(const gen_t *g) { return strstr(g->msg, "TSHIRT-3 ") != NULL; }
/* last failure in [02:00, 03:30]: messages 120..210 */
static int w_window(const gen_t *g) { int i = atoi(g->id + 2); return i >= 120 && i <= 210; }
static int w_combo(const gen_t *g)
{
	return !strcmp(g->flow, "inventory") && !strcmp(g->code, "sku.unmapped") &&
	       strcmp(g->last, "2026-11-20T04:00:00.000Z") >= 0;
}

static void check_stats(void)
{
	json_t *j, *flows;
	long want[3][4] = {{0}};

	assert_int_equal(wait_parked(PARKED), PARKED);
	assert_int_equal(RP("stats", "--json"), 0);
	j = out_json();
	assert_int_equal(json_integer_value(json_object_get(j, "total")), N_MSGS);
	for (int i = 0; i < N_MSGS; i++)
		want[i % 3][(i / 3) % 4]++;
	flows = json_object_get(j, "flows");
	for (int f = 0; f < 3; f++) {
		json_t *codes = json_object_get(json_object_get(flows, FLOWS[f]), "codes");
		assert_int_equal(json_object_size(codes), 4);
		for (int c = 0; c < 4; c++)
			assert_int_equal(json_integer_value(json_object_get(codes, CODES[c])),
					 want[f][c]);
	}
	json_decref(j);
}

/* Every exported line matches the message as it was parked. */
static void check_export(int n)
{
	FILE *f;
	char *line = NULL, body[1024], want_first[64];
	size_t cap = 0;
	int lines = 0;

	assert_int_equal(wait_parked(PARKED), PARKED);
	assert_int_equal(RP("export", "--output", OUT), 0);
	f = fopen(OUT, "r");
	assert_non_null(f);
	while (getline(&line, &cap, f) > 0) {
		json_t *j = json_loads(line, 0, NULL), *h;
		gen_t g;
		int i;
		assert_non_null(j);
		i = atoi(json_string_value(json_object_get(j, "id")) + 2);
		gen(i, &g);
		gen_body(i, body, sizeof(body));
		assert_string_equal(json_string_value(json_object_get(j, "body")), body);
		assert_string_equal(json_string_value(json_object_get(j, "flow")), g.flow);
		h = json_object_get(j, "headers");
		assert_string_equal(json_string_value(json_object_get(h, "x-baton-error-code")), g.code);
		assert_string_equal(json_string_value(json_object_get(h, "x-baton-error-message")),
				    g.msg);
		assert_string_equal(json_string_value(json_object_get(h, "x-baton-last-failed-at")),
				    g.last);
		snprintf(want_first, sizeof(want_first), "%s", g.first);
		assert_string_equal(json_string_value(json_object_get(h, "x-baton-first-failed-at")),
				    want_first);
		assert_int_equal(json_integer_value(json_object_get(h, "x-baton-attempts")),
				 g.attempts);
		assert_int_equal(json_integer_value(json_object_get(h, "x-baton-replays")), 0);
		assert_string_equal(json_string_value(json_object_get(
					    json_object_get(j, "properties"), "message_id")),
				    g.id);
		json_decref(j);
		lines++;
	}
	free(line);
	fclose(f);
	assert_int_equal(lines, n);
}

static void test_filters(void **state)
{
	(void)state;
	park(0, N_MSGS);
	assert_int_equal(wait_parked(N_MSGS), N_MSGS);
	check_list(N_MSGS, w_all, (const char *const[]){NULL});
	check_list(N_MSGS, w_orders, (const char *const[]){"--flow", "orders", NULL});
	check_list(N_MSGS, w_422, (const char *const[]){"--code", "erp.http_422", NULL});
	check_list(N_MSGS, w_erp, (const char *const[]){"--code", "erp.*", NULL});
	check_list(N_MSGS, w_exhausted, (const char *const[]){"--class", "exhausted", NULL});
	check_list(N_MSGS, w_subject, (const char *const[]){"--subject", "order/SO-1234", NULL});
	check_list(N_MSGS, w_grep, (const char *const[]){"--grep", "tshirt-3 has", NULL});
	check_list(N_MSGS, w_window, (const char *const[]){"--since", "2026-11-20T02:00:00Z",
							   "--until", "2026-11-20T03:30:00Z", NULL});
	check_list(N_MSGS, w_combo, (const char *const[]){"--flow", "inventory", "--code",
							  "sku.unmapped", "--since",
							  "2026-11-20T04:00:00Z", NULL});
	check_stats();
	/* the table: a header and one line per message */
	assert_int_equal(RP("list", "--flow", "payments", "--code", "erp.http_503"), 0);
	assert_true(file_has(OUT, "m-011"));
	assert_true(file_has(OUT, "erp.http_503"));
	/* usage errors and unknown ids */
	assert_int_equal(RP("list", "--class", "fatal"), 2);
	assert_int_equal(RP("list", "--since", "yesterday-ish"), 2);
	assert_int_equal(RP("list", "--bogus"), 2);
	assert_int_equal(RP("replay", "--yes"), 2);
	assert_int_equal(RP("show", "no-such-id"), 3);
	assert_int_equal(RP("replay", "no-such-id"), 3);
	assert_int_equal(RP("list", "--help"), 0);
	assert_true(file_has(OUT, "usage: baton-replay list"));
	/* reading took nothing, changed nothing */
	assert_int_equal(wait_parked(N_MSGS), N_MSGS);
	check_export(N_MSGS);
	assert_int_equal(wait_parked(N_MSGS), N_MSGS);
	/* a broker nobody listens on */
	char bad[sizeof(S.amqp_url)];
	snprintf(bad, sizeof(bad), "%s", S.amqp_url);
	snprintf(S.amqp_url, sizeof(S.amqp_url), "amqp://x:y@127.0.0.1:1/");
	assert_int_equal(RP("list"), 1);
	snprintf(S.amqp_url, sizeof(S.amqp_url), "%s", bad);
}

/* ---- replay with a rate limit ---- */

static void check_replayed_copy(const amqp_message_t *m)
{
	char b[256], body[1024];
	int i;
	gen_t g;

	baton_header_str(&m->properties.headers, "x-baton-error-code", b, sizeof(b));
	assert_string_equal(b, "erp.http_422");
	assert_int_equal(baton_header_int(&m->properties.headers, "x-baton-attempts", -1), 0);
	assert_int_equal(baton_header_int(&m->properties.headers, "x-baton-replays", -1), 1);
	snprintf(b, sizeof(b), "%.*s", (int)m->properties.message_id.len,
		 (char *)m->properties.message_id.bytes);
	i = atoi(b + 2);
	gen(i, &g);
	gen_body(i, body, sizeof(body));
	assert_string_equal(g.flow, "orders");
	assert_int_equal(m->body.len, strlen(body));
	assert_memory_equal(m->body.bytes, body, m->body.len);
}

static void test_replay_rate(void **state)
{
	const int n = 120; /* orders + erp.http_422: i % 3 == 0 and (i / 3) % 4 == 1: 10 of them */
	bson_t *q;
	double t0, dt;
	amqp_message_t m;
	int got = 0;

	(void)state;
	park(0, n);
	/* dry run and an unconfirmed bulk change nothing */
	assert_int_equal(RP("replay", "--flow", "orders", "--code", "erp.http_422", "--dry-run"), 0);
	assert_true(file_has(OUT, "would replay 10 messages"));
	assert_int_equal(RP("replay", "--flow", "orders", "--code", "erp.http_422"), 2);
	assert_true(file_has(ERR, "--yes"));
	assert_int_equal(wait_parked(n), n);
	assert_int_equal(bt_queue_depth(C, "baton.orders"), 0);

	t0 = ft_now();
	assert_int_equal(RP("replay", "--flow", "orders", "--code", "erp.http_422", "--rate", "5/s",
			    "--yes", "--ticket", "OPS-7", "--operator", "ana"),
			 0);
	dt = ft_now() - t0;
	assert_true(dt >= 0.8 * 9 / 5.0); /* 10 messages at 5/s: at least 1.8 s */
	assert_int_equal(bt_queue_depth(C, "baton.orders"), 10);
	assert_int_equal(bt_queue_depth(C, "baton.inventory"), 0);
	PARKED = n - 10;
	assert_int_equal(wait_parked(n - 10), n - 10);
	while (ft_get(C, "baton.orders", &m) == 0) {
		check_replayed_copy(&m);
		amqp_destroy_message(&m);
		got++;
	}
	assert_int_equal(got, 10);
	/* the rest: untouched, in the export with their headers (replays 0) */
	check_list(n, w_inv422, (const char *const[]){"--code", "erp.http_422", "--flow",
						      "inventory", NULL});
	q = BCON_NEW("status", "replayed", "flow", "orders", "replays", BCON_INT64(1));
	assert_int_equal(bt_count_docs(&S, "dead_letters", q), 10);
	bson_destroy(q);
	q = BCON_NEW("step", "replayed", "operator", "ana", "ticket", "OPS-7", "outcome", "ok");
	assert_int_equal(bt_count_docs(&S, "audit", q), 10);
	bson_destroy(q);
}

/* ---- the set is fixed at start; an unreachable database stops before anything is taken ---- */

static void test_later_arrivals(void **state)
{
	char saved[sizeof(S.mongo_uri)];
	pid_t r;

	(void)state;
	park(0, 30); /* 10 per flow */
	assert_int_equal(wait_parked(30), 30);
	snprintf(saved, sizeof(saved), "%s", S.mongo_uri);
	snprintf(S.mongo_uri, sizeof(S.mongo_uri), "mongodb://127.0.0.1:1/");
	assert_int_equal(RP("replay", "--all", "--yes"), 1);
	assert_true(file_has(ERR, "MongoDB unreachable"));
	snprintf(S.mongo_uri, sizeof(S.mongo_uri), "%s", saved);
	assert_int_equal(wait_parked(30), 30);
	assert_int_equal(bt_queue_depth(C, "baton.orders"), 0);

	r = rp_start((const char *const[]){"replay", "--flow", "orders", "--all", "--yes", "--rate",
					   "4/s", NULL}, NULL);
	for (double end = ft_now() + 30; ft_now() < end && count_step("replayed") < 1;)
		bt_sleep_ms(20);
	park(30, 60); /* 10 more for orders while the replay runs */
	assert_int_equal(rp_wait(r), 0);
	PARKED = 50;
	assert_int_equal(wait_parked(50), 50);
	assert_int_equal(bt_queue_depth(C, "baton.orders"), 10);
	assert_int_equal(bt_queue_depth(C, "baton.orders.dead"), 10);
	check_list(60, w_late_orders, (const char *const[]){"--flow", "orders", NULL});
}

/* ---- discard ---- */

static void test_discard(void **state)
{
	bson_t *q;

	(void)state;
	park(0, 30);
	assert_int_equal(RP("discard", "m-004"), 2); /* no reason */
	assert_true(file_has(ERR, "--reason"));
	assert_int_equal(wait_parked(30), 30);
	assert_int_equal(RP("discard", "m-004", "--reason", "test order, cancelled in the shop",
			    "--ticket", "SUP-12"),
			 0);
	PARKED = 29;
	assert_int_equal(wait_parked(29), 29);
	q = BCON_NEW("_id", "inventory:m-004", "status", "discarded", "discard.reason",
		     "test order, cancelled in the shop", "discard.operator", "tester");
	assert_int_equal(bt_count_docs(&S, "dead_letters", q), 1);
	bson_destroy(q);
	q = BCON_NEW("step", "discarded", "message_id", "m-004", "reason",
		     "test order, cancelled in the shop");
	assert_int_equal(bt_count_docs(&S, "audit", q), 1);
	bson_destroy(q);
	/* show of a discarded id: its record and history */
	assert_int_equal(RP("show", "m-004"), 0);
	assert_true(file_has(OUT, "not parked now"));
	assert_true(file_has(OUT, "discarded"));
	assert_true(file_has(OUT, "test order, cancelled in the shop"));
	/* show of a parked one: headers, pretty body */
	assert_int_equal(wait_parked(29), 29);
	assert_int_equal(RP("show", "m-007"), 0);
	assert_true(file_has(OUT, "x-baton-error-code"));
	assert_true(file_has(OUT, "\"subject\": \"order/SO-1007\""));
	/* by filter, several: needs --yes */
	assert_int_equal(wait_parked(29), 29);
	assert_int_equal(RP("discard", "--flow", "payments", "--reason", "old"), 2);
	assert_int_equal(wait_parked(29), 29);
	assert_int_equal(RP("discard", "--flow", "payments", "--reason", "old", "--yes"), 0);
	assert_int_equal(wait_parked(19), 19);
	assert_int_equal(bt_queue_depth(C, "baton.payments.dead"), 0);
	/* the same messages parked again and discarded again: one record each, both stories */
	park(0, 30);
	assert_int_equal(wait_parked(49), 49);
	assert_int_equal(RP("discard", "--flow", "payments", "--reason", "again", "--yes"), 0);
	assert_int_equal(wait_parked(39), 39);
	assert_int_equal(bt_count_docs(&S, "dead_letters", NULL), 11);
	assert_int_equal(RP("show", "m-002"), 0);
	assert_true(file_has(OUT, "reason: old"));
	assert_true(file_has(OUT, "reason: again"));
}

/* ---- two operators at once ---- */

static void test_two_operators(void **state)
{
	pid_t a, b;

	(void)state;
	/* 2,100 per flow: more than a quorum queue lets one consumer hold (2,000 in 3.10) */
	park(0, 6300);
	assert_int_equal(wait_parked(6300), 6300);
	a = rp_start((const char *const[]){"replay", "--flow", "orders", "--all", "--yes",
					   "--operator", "a", NULL}, NULL);
	b = rp_start((const char *const[]){"replay", "--flow", "orders", "--all", "--yes",
					   "--operator", "b", NULL}, NULL);
	assert_int_equal(rp_wait(a), 0);
	assert_int_equal(rp_wait(b), 0);
	assert_int_equal(wait_parked(4200), 4200);
	assert_int_equal(bt_queue_depth(C, "baton.orders"), 2100);
	assert_int_equal(bt_queue_depth(C, "baton.orders.dead"), 0);
	bson_t *q = BCON_NEW("step", "replayed", "outcome", "ok");
	assert_int_equal(bt_count_docs(&S, "audit", q), 2100);
	bson_destroy(q);
	assert_int_equal(bt_count_docs(&S, "dead_letters", NULL), 2100);
}

/* ---- kill -9 during a replay: every effect exactly once ---- */

#define K_N 300

static void test_kill9(void **state)
{
	char id[32], key[32];
	long orders = -1, dups = -1;
	pid_t w, r;

	(void)state;
	memset(&ERP, 0, sizeof(ERP));
	ft_erp_start(&ERP);
	ft_faults(&ERP, "[{\"route\": \"POST /api/sales_orders\", \"kind\": \"status\", "
			"\"status\": 422, \"body\": {\"error\": {\"code\": \"item_blocked\", "
			"\"message\": \"item TEST-1 is blocked\"}}}]");
	w = ft_worker(&S, &ERP, "w-k9", (const char *const[]){"BATON_LOG_LEVEL=error", NULL}, NULL);
	ft_wait_consumers(&S, FT_QUEUE, 1, 60);
	for (int i = 0; i < K_N; i++) {
		snprintf(id, sizeof(id), "ev-%03d", i);
		snprintf(key, sizeof(key), "k-%03d", i);
		ft_publish_event(C, id, key, "effect");
	}
	assert_int_equal(ft_wait_depth(C, FT_PARKING, K_N, 90), K_N);
	/* one replayed while the cause is still there: parked again, replays 1 */
	assert_int_equal(RP("replay", "ev-007", "--flow", "testflow", "--reason", "try again"), 0);
	assert_int_equal(ft_wait_depth(C, FT_PARKING, K_N, 30), K_N);
	assert_true(count_step("dead_lettered") >= 0);
	assert_int_equal(RP("list", "--flow", "testflow", "--json"), 0);
	assert_true(file_has(OUT, "\"replays\": 1"));

	/* the cause is fixed; replay all, killed -9 part-way */
	ft_faults(&ERP, "[]");
	r = rp_start((const char *const[]){"replay", "--flow", "testflow", "--all", "--yes",
					   "--rate", "100/s", "--ticket", "OPS-9", NULL}, NULL);
	for (double end = ft_now() + 60; ft_now() < end && count_step("replayed") < 60;)
		bt_sleep_ms(20);
	kill(r, SIGKILL);
	assert_int_equal(rp_wait(r), -1);
	/* killed part-way: what it held goes back to the parking queue */
	int64_t left = 0, prev = -1;
	for (double end = ft_now() + 15; ft_now() < end && (left == 0 || left != prev);) {
		prev = left;
		bt_sleep_ms(500);
		left = bt_queue_depth(C, FT_PARKING);
	}
	assert_true(left > 0);
	assert_true(left < K_N);
	/* run again: the rest */
	assert_int_equal(RP("replay", "--flow", "testflow", "--all", "--yes", "--ticket", "OPS-9"), 0);
	assert_int_equal(ft_wait_ledger(&S, K_N, 120), K_N);
	assert_int_equal(ft_wait_depth(C, FT_QUEUE, 0, 60), 0);
	assert_int_equal(bt_queue_depth(C, FT_PARKING), 0);
	ft_erp_counts(&ERP, &orders, &dups);
	assert_int_equal(orders, K_N);
	assert_int_equal(dups, 0);
	assert_int_equal(bt_count_docs(&S, "ledger", NULL), K_N);
	assert_int_equal(ft_stop(w, 30), 0);
	/* the story of the message parked twice */
	assert_int_equal(RP("show", "ev-007"), 0);
	assert_true(file_has(OUT, "not parked now"));
	assert_true(file_has(OUT, "replayed"));
	assert_true(file_has(OUT, "try again"));
	assert_true(file_has(OUT, "dead_lettered"));
	assert_true(file_has(OUT, "completed"));
	bson_t *q = BCON_NEW("_id", "testflow:ev-007", "replays", BCON_INT64(2));
	assert_int_equal(bt_count_docs(&S, "dead_letters", q), 1);
	bson_destroy(q);
	q = BCON_NEW("message_id", "ev-007", "step", "dead_lettered");
	assert_int_equal(bt_count_docs(&S, "audit", q), 2);
	bson_destroy(q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_filters, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replay_rate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_later_arrivals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_discard, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_operators, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kill9, setup, teardown),
	};
	bt_stack_t probe;
	int rc = bt_stack_open(&probe, "test_replay_probe");

	if (rc != 0)
		return rc;
	bt_stack_close(&probe);
	ft_no_cores();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
