/* test_metrics.c — the metrics registry renders valid Prometheus text (families, counters, gauge,
 * cumulative histogram, escaped and capped labels, exact totals under threads), and the
 * listener answers /metrics, /healthz, /readyz, 404, 405 and keep-alive requests on a real
 * libuv loop, then stops leaving no handle behind. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "baton/metrics.h"

/* ---- a strict parser for the text exposition format ------------------------------------- */

#define MAX_LABELS 8
#define MAX_SAMPLES 512
#define MAX_FAMILIES 64

typedef struct sample {
	char name[128];
	char family[128];
	int nlabels;
	char lname[MAX_LABELS][64];
	char lval[MAX_LABELS][1024];
	double value;
} sample_t;

typedef struct expo {
	int nsamples, nfamilies;
	sample_t s[MAX_SAMPLES];
	char fam[MAX_FAMILIES][128];
	char type[MAX_FAMILIES][16];
	int help_seen[MAX_FAMILIES];
} expo_t;

static int is_name_char(char c, int first)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
	       (!first && c >= '0' && c <= '9');
}

static const char *parse_name(const char *p, char *out, size_t outlen)
{
	size_t n = 0;

	if (!is_name_char(*p, 1))
		return NULL;
	while (is_name_char(*p, 0)) {
		if (n + 1 >= outlen)
			return NULL;
		out[n++] = *p++;
	}
	out[n] = '\0';
	return p;
}

/* name{l="v",...} value — only the escapes \\ \" \n are allowed in label values. */
static int parse_sample(const char *line, sample_t *s)
{
	const char *p = parse_name(line, s->name, sizeof(s->name));
	char *end;

	s->nlabels = 0;
	if (!p)
		return -1;
	if (*p == '{') {
		p++;
		while (*p != '}') {
			size_t n = 0;
			char *v;

			if (s->nlabels == MAX_LABELS)
				return -1;
			p = parse_name(p, s->lname[s->nlabels], sizeof(s->lname[0]));
			if (!p || *p++ != '=' || *p++ != '"')
				return -1;
			v = s->lval[s->nlabels];
			while (*p != '"') {
				char c = *p++;

				if (c == '\0' || c == '\n')
					return -1;
				if (c == '\\') {
					c = *p++;
					if (c == 'n')
						c = '\n';
					else if (c != '\\' && c != '"')
						return -1;
				}
				if (n + 1 >= sizeof(s->lval[0]))
					return -1;
				v[n++] = c;
			}
			v[n] = '\0';
			p++;
			s->nlabels++;
			if (*p == ',')
				p++;
			else if (*p != '}')
				return -1;
		}
		p++;
	}
	if (*p++ != ' ')
		return -1;
	if (strcmp(p, "+Inf") == 0) {
		s->value = INFINITY;
		return 0;
	}
	s->value = strtod(p, &end);
	return *p && !*end ? 0 : -1;
}

static int family_index(expo_t *e, const char *name)
{
	for (int i = 0; i < e->nfamilies; i++)
		if (strcmp(e->fam[i], name) == 0)
			return i;
	return -1;
}

/* Family a sample belongs to: its own name, or without _bucket/_sum/_count for histograms. */
static void sample_family(expo_t *e, sample_t *s)
{
	static const char *const sfx[] = {"_bucket", "_sum", "_count"};

	strcpy(s->family, s->name);
	for (size_t i = 0; i < 3; i++) {
		size_t n = strlen(s->name), k = strlen(sfx[i]);

		if (n > k && strcmp(s->name + n - k, sfx[i]) == 0) {
			char base[128];
			int f;

			memcpy(base, s->name, n - k);
			base[n - k] = '\0';
			f = family_index(e, base);
			if (f >= 0 && strcmp(e->type[f], "histogram") == 0)
				strcpy(s->family, base);
		}
	}
}

static const char *label(const sample_t *s, const char *name)
{
	for (int i = 0; i < s->nlabels; i++)
		if (strcmp(s->lname[i], name) == 0)
			return s->lval[i];
	return NULL;
}

/* Parses the whole text, failing the test on any format error. Checks: text ends in a newline,
 * no blank lines, HELP and TYPE exactly once per family and before its samples, samples of a
 * family contiguous, every sample labelled with flow and worker (given values), no duplicate
 * label names. */
static void parse_expo(const char *text, size_t len, expo_t *e, const char *flow,
		       const char *worker)
{
	char *copy = strndup(text, len), *line, *save = NULL;
	int current = -1;

	memset(e, 0, sizeof(*e));
	assert_int_equal(strlen(text), len);
	assert_true(len > 0 && text[len - 1] == '\n');
	assert_null(strstr(text, "\n\n"));
	for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char name[128], type[32];
		const char *p;
		int f;

		if (strncmp(line, "# HELP ", 7) == 0) {
			p = parse_name(line + 7, name, sizeof(name));
			assert_non_null(p);
			assert_true(*p == ' ' && p[1]);
			if (family_index(e, name) >= 0)
				fail_msg("HELP after TYPE or repeated for %s", name);
			assert_true(e->nfamilies < MAX_FAMILIES);
			f = e->nfamilies++;
			strcpy(e->fam[f], name);
			e->help_seen[f] = 1;
			current = -1;
			continue;
		}
		if (strncmp(line, "# TYPE ", 7) == 0) {
			p = parse_name(line + 7, name, sizeof(name));
			assert_non_null(p);
			assert_int_equal(sscanf(p, " %31s", type), 1);
			f = family_index(e, name);
			if (f < 0 || e->type[f][0])
				fail_msg("TYPE without HELP or repeated for %s", name);
			assert_true(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0 ||
				    strcmp(type, "histogram") == 0);
			strcpy(e->type[f], type);
			current = f;
			continue;
		}
		assert_true(line[0] != '#');
		assert_true(e->nsamples < MAX_SAMPLES);
		sample_t *s = &e->s[e->nsamples++];
		if (parse_sample(line, s) != 0)
			fail_msg("bad sample line: %s", line);
		sample_family(e, s);
		if (current < 0 || strcmp(e->fam[current], s->family) != 0)
			fail_msg("sample %s outside its family block", s->name);
		assert_string_equal(label(s, "flow"), flow);
		assert_string_equal(label(s, "worker"), worker);
		for (int i = 0; i < s->nlabels; i++)
			for (int j = i + 1; j < s->nlabels; j++)
				assert_string_not_equal(s->lname[i], s->lname[j]);
	}
	free(copy);
}

/* Value of the sample name{..., lname="lval"} (lname NULL: no extra label); NAN if absent. */
static double value_of(const expo_t *e, const char *name, const char *lname, const char *lval)
{
	for (int i = 0; i < e->nsamples; i++) {
		const sample_t *s = &e->s[i];
		const char *v = lname ? label(s, lname) : NULL;

		if (strcmp(s->name, name) != 0)
			continue;
		if (lname ? v && strcmp(v, lval) == 0 : s->nlabels == 2)
			return s->value;
	}
	return NAN;
}

static int count_samples(const expo_t *e, const char *name)
{
	int n = 0;

	for (int i = 0; i < e->nsamples; i++)
		n += strcmp(e->s[i].name, name) == 0;
	return n;
}

static const char *type_of(expo_t *e, const char *fam)
{
	int f = family_index(e, fam);

	return f >= 0 ? e->type[f] : "";
}

static expo_t *render_parse(baton_metrics_t *m, const char *flow, const char *worker,
			    char **text_out)
{
	expo_t *e = malloc(sizeof(*e));
	char *text;
	size_t len;

	assert_non_null(e);
	assert_int_equal(baton_metrics_render(m, &text, &len), 0);
	parse_expo(text, len, e, flow, worker);
	if (text_out)
		*text_out = text;
	else
		free(text);
	return e;
}

/* ---- registry ---------------------------------------------------------------------------- */

static const char *const counter_names[BATON_M__COUNT] = {
	"baton_messages_consumed_total",	 "baton_messages_acked_total",
	"baton_messages_retried_total",		 "baton_messages_dead_lettered_total",
	"baton_messages_poison_total",		 "baton_messages_redelivered_total",
	"baton_messages_rejected_invalid_total", "baton_messages_published_total",
	"baton_publish_nacked_total",		 "baton_amqp_reconnects_total",
	"baton_store_errors_total",		 "baton_audit_records_written_total",
};

static void test_empty_registry(void **state)
{
	baton_metrics_t *m = baton_metrics_new("orders", "w1");
	expo_t *e = render_parse(m, "orders", "w1", NULL);

	for (int i = 0; i < BATON_M__COUNT; i++) {
		assert_string_equal(type_of(e, counter_names[i]), "counter");
		assert_true(value_of(e, counter_names[i], NULL, NULL) == 0);
	}
	assert_string_equal(type_of(e, "baton_in_flight_messages"), "gauge");
	assert_string_equal(type_of(e, "baton_handler_duration_seconds"), "histogram");
	assert_string_equal(type_of(e, "baton_http_responses_total"), "counter");
	assert_string_equal(type_of(e, "baton_dead_letters_total"), "counter");
	assert_int_equal(e->nfamilies, BATON_M__COUNT + 4);
	assert_int_equal(count_samples(e, "baton_http_responses_total"), 0);
	assert_int_equal(count_samples(e, "baton_dead_letters_total"), 0);
	assert_true(value_of(e, "baton_handler_duration_seconds_count", NULL, NULL) == 0);
	free(e);
	baton_metrics_free(m);
	baton_metrics_free(NULL);
}

static void test_counters_and_gauge(void **state)
{
	baton_metrics_t *m = baton_metrics_new("orders", "w1");
	expo_t *e;

	for (int i = 0; i < BATON_M__COUNT; i++) {
		baton_metrics_inc(m, (baton_metric_t)i, (uint64_t)(i + 1) * 3);
		baton_metrics_inc(m, (baton_metric_t)i, 1);
	}
	baton_metrics_inc(m, BATON_M__COUNT, 99); /* ignored */
	baton_metrics_inc(m, BATON_M_ACKED, 10000000000ULL);
	baton_metrics_in_flight_add(m, 5);
	baton_metrics_in_flight_add(m, -2);
	e = render_parse(m, "orders", "w1", NULL);
	for (int i = 0; i < BATON_M__COUNT; i++) {
		double want = (i + 1) * 3 + 1 + (i == BATON_M_ACKED ? 1e10 : 0);

		assert_true(value_of(e, counter_names[i], NULL, NULL) == want);
		assert_int_equal(count_samples(e, counter_names[i]), 1);
	}
	assert_true(value_of(e, "baton_in_flight_messages", NULL, NULL) == 3);
	free(e);

	baton_metrics_in_flight_add(m, -10);
	e = render_parse(m, "orders", "w1", NULL);
	assert_true(value_of(e, "baton_in_flight_messages", NULL, NULL) == -7);
	free(e);
	baton_metrics_free(m);
}

static void test_histogram(void **state)
{
	static const char *const les[] = {"0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5",
					  "1",	   "2.5",  "5",	    "10",   "30",  "+Inf"};
	static const double want[] = {2, 3, 3, 3, 3, 3, 4, 5, 5, 5, 5, 5, 6};
	baton_metrics_t *m = baton_metrics_new("orders", "w1");
	double prev = 0;
	int k = 0;
	expo_t *e;

	/* Bucket bounds are inclusive (le); negatives count as 0; NaN is ignored. */
	baton_metrics_observe_handler(m, 0.005);
	baton_metrics_observe_handler(m, -1);
	baton_metrics_observe_handler(m, 0.007);
	baton_metrics_observe_handler(m, 0.3);
	baton_metrics_observe_handler(m, 1);
	baton_metrics_observe_handler(m, 45);
	baton_metrics_observe_handler(m, NAN);
	e = render_parse(m, "orders", "w1", NULL);
	assert_int_equal(count_samples(e, "baton_handler_duration_seconds_bucket"), 13);
	for (int i = 0; i < e->nsamples; i++) {
		const sample_t *s = &e->s[i];

		if (strcmp(s->name, "baton_handler_duration_seconds_bucket") != 0)
			continue;
		assert_string_equal(label(s, "le"), les[k]); /* in order */
		assert_true(s->value >= prev);               /* cumulative */
		assert_true(s->value == want[k]);
		prev = s->value;
		k++;
	}
	assert_true(value_of(e, "baton_handler_duration_seconds_count", NULL, NULL) == 6);
	assert_true(fabs(value_of(e, "baton_handler_duration_seconds_sum", NULL, NULL) - 46.312) <
		    1e-9);
	free(e);

	baton_metrics_observe_handler(m, INFINITY);
	e = render_parse(m, "orders", "w1", NULL);
	assert_true(isinf(value_of(e, "baton_handler_duration_seconds_sum", NULL, NULL)));
	assert_true(value_of(e, "baton_handler_duration_seconds_bucket", "le", "+Inf") == 7);
	assert_true(value_of(e, "baton_handler_duration_seconds_bucket", "le", "30") == 5);
	free(e);
	baton_metrics_free(m);
}

static void test_http_status(void **state)
{
	baton_metrics_t *m = baton_metrics_new("orders", "w1");
	expo_t *e;

	baton_metrics_http_status(m, 200);
	baton_metrics_http_status(m, 200);
	baton_metrics_http_status(m, 503);
	baton_metrics_http_status(m, 100);
	baton_metrics_http_status(m, 599);
	baton_metrics_http_status(m, 0);
	baton_metrics_http_status(m, 99);
	baton_metrics_http_status(m, 600);
	baton_metrics_http_status(m, -1);
	baton_metrics_http_status(m, 123456789);
	e = render_parse(m, "orders", "w1", NULL);
	assert_true(value_of(e, "baton_http_responses_total", "code", "200") == 2);
	assert_true(value_of(e, "baton_http_responses_total", "code", "503") == 1);
	assert_true(value_of(e, "baton_http_responses_total", "code", "100") == 1);
	assert_true(value_of(e, "baton_http_responses_total", "code", "599") == 1);
	assert_true(value_of(e, "baton_http_responses_total", "code", "0") == 1);
	assert_true(value_of(e, "baton_http_responses_total", "code", "other") == 4);
	assert_true(isnan(value_of(e, "baton_http_responses_total", "code", "404")));
	assert_int_equal(count_samples(e, "baton_http_responses_total"), 6);
	free(e);
	baton_metrics_free(m);
}

static void test_dead_codes_escaped(void **state)
{
	baton_metrics_t *m = baton_metrics_new("orders", "w1");
	char longcode[300], *text;
	expo_t *e;

	memset(longcode, 'x', sizeof(longcode) - 1);
	longcode[sizeof(longcode) - 1] = '\0';
	baton_metrics_dead_code(m, "sku.unmapped");
	baton_metrics_dead_code(m, "sku.unmapped");
	baton_metrics_dead_code(m, "a\"b");
	baton_metrics_dead_code(m, "back\\slash");
	baton_metrics_dead_code(m, "line\nbreak\"} 999\n# TYPE evil counter");
	baton_metrics_dead_code(m, "bad\xff\xfeutf8 \xc3\xa9");
	baton_metrics_dead_code(m, "");
	baton_metrics_dead_code(m, NULL);
	baton_metrics_dead_code(m, longcode);
	e = render_parse(m, "orders", "w1", &text);
	assert_non_null(strstr(text, "code=\"a\\\"b\"}"));
	assert_non_null(strstr(text, "code=\"back\\\\slash\"}"));
	assert_non_null(strstr(text, "code=\"line\\nbreak\\\"} 999\\n# TYPE evil counter\"}"));
	assert_true(value_of(e, "baton_dead_letters_total", "code", "sku.unmapped") == 2);
	assert_true(value_of(e, "baton_dead_letters_total", "code", "a\"b") == 1);
	assert_true(value_of(e, "baton_dead_letters_total", "code", "back\\slash") == 1);
	assert_true(value_of(e, "baton_dead_letters_total", "code",
			     "line\nbreak\"} 999\n# TYPE evil counter") == 1);
	assert_true(value_of(e, "baton_dead_letters_total", "code", "bad??utf8 \xc3\xa9") == 1);
	assert_true(value_of(e, "baton_dead_letters_total", "code", "unknown") == 2);
	longcode[BATON_METRICS_DEAD_CODE_MAX] = '\0';
	assert_true(value_of(e, "baton_dead_letters_total", "code", longcode) == 1);
	assert_int_equal(count_samples(e, "baton_dead_letters_total"), 7);
	free(text);
	free(e);
	baton_metrics_free(m);
}

static void test_dead_code_cap(void **state)
{
	baton_metrics_t *m = baton_metrics_new("orders", "w1");
	char code[32];
	expo_t *e;

	for (int i = 0; i < 100; i++) {
		snprintf(code, sizeof(code), "c%d", i);
		baton_metrics_dead_code(m, code);
	}
	baton_metrics_dead_code(m, "c0");    /* known code still counted after the cap */
	baton_metrics_dead_code(m, "c99");   /* over the cap: other */
	baton_metrics_dead_code(m, "other"); /* never a second "other" series */
	e = render_parse(m, "orders", "w1", NULL);
	assert_int_equal(count_samples(e, "baton_dead_letters_total"),
			 BATON_METRICS_MAX_DEAD_CODES + 1);
	assert_true(value_of(e, "baton_dead_letters_total", "code", "c0") == 2);
	assert_true(value_of(e, "baton_dead_letters_total", "code", "c63") == 1);
	assert_true(isnan(value_of(e, "baton_dead_letters_total", "code", "c64")));
	assert_true(value_of(e, "baton_dead_letters_total", "code", "other") == 36 + 1 + 1);
	free(e);
	baton_metrics_free(m);
}

static void test_flow_worker_escaped(void **state)
{
	baton_metrics_t *m = baton_metrics_new("or\"d\\ers\n", "w\xff");
	expo_t *e;

	baton_metrics_inc(m, BATON_M_CONSUMED, 1);
	e = render_parse(m, "or\"d\\ers\n", "w?", NULL);
	assert_true(value_of(e, "baton_messages_consumed_total", NULL, NULL) == 1);
	free(e);
	baton_metrics_free(m);

	m = baton_metrics_new(NULL, NULL);
	e = render_parse(m, "", "", NULL);
	free(e);
	baton_metrics_free(m);
}

#define N_THREADS 4
#define N_ITER 50000

static void *bump(void *arg)
{
	baton_metrics_t *m = arg;

	for (int i = 0; i < N_ITER; i++) {
		baton_metrics_inc(m, BATON_M_CONSUMED, 1);
		baton_metrics_in_flight_add(m, 1);
		baton_metrics_observe_handler(m, 0.5);
		baton_metrics_http_status(m, 200);
		baton_metrics_dead_code(m, i % 2 ? "odd" : "even");
		baton_metrics_in_flight_add(m, -1);
	}
	return NULL;
}

/* Exact totals when several threads bump at once (render running meanwhile). */
static void test_threads(void **state)
{
	baton_metrics_t *m = baton_metrics_new("orders", "w1");
	pthread_t th[N_THREADS];
	const double total = (double)N_THREADS * N_ITER;
	expo_t *e;

	for (int i = 0; i < N_THREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, bump, m), 0);
	for (int i = 0; i < 20; i++) {
		e = render_parse(m, "orders", "w1", NULL);
		free(e);
	}
	for (int i = 0; i < N_THREADS; i++)
		pthread_join(th[i], NULL);
	e = render_parse(m, "orders", "w1", NULL);
	assert_true(value_of(e, "baton_messages_consumed_total", NULL, NULL) == total);
	assert_true(value_of(e, "baton_in_flight_messages", NULL, NULL) == 0);
	assert_true(value_of(e, "baton_handler_duration_seconds_count", NULL, NULL) == total);
	assert_true(value_of(e, "baton_handler_duration_seconds_bucket", "le", "0.5") == total);
	assert_true(value_of(e, "baton_handler_duration_seconds_bucket", "le", "0.25") == 0);
	assert_true(value_of(e, "baton_handler_duration_seconds_sum", NULL, NULL) == total * 0.5);
	assert_true(value_of(e, "baton_http_responses_total", "code", "200") == total);
	assert_true(value_of(e, "baton_dead_letters_total", "code", "odd") == total / 2);
	assert_true(value_of(e, "baton_dead_letters_total", "code", "even") == total / 2);
	free(e);
	baton_metrics_free(m);
}

/* ---- listener ---------------------------------------------------------------------------- */

static void count_done(void *ud)
{
	(*(int *)ud)++;
}

static void test_listen_errors(void **state)
{
	static const char *const bad[] = {"nope",	     "127.0.0.1",      "127.0.0.1:",
					  ":9464",	     "127.0.0.1:65536", "127.0.0.1:-1",
					  "127.0.0.1:9x",    "example.com:80", "1.2.3:80",
					  "[::1:80",	     "[]:80",	       "127.0.0.1: 80"};
	baton_metrics_t *m = baton_metrics_new("orders", "w1"), *m2;
	uv_loop_t loop;
	char err[256];
	int done = 0, port;

	assert_int_equal(uv_loop_init(&loop), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(baton_metrics_listen(m, &loop, bad[i], NULL, NULL, NULL, err,
						      sizeof(err)),
				 -1);
		assert_true(err[0]);
	}
	assert_int_equal(baton_metrics_listen(m, &loop, NULL, NULL, NULL, NULL, err, sizeof(err)),
			 -1);
	assert_int_equal(baton_metrics_port(m), 0);
	baton_metrics_stop(m, count_done, &done); /* not listening: done right away */
	assert_int_equal(done, 1);

	/* "localhost" binds the loopback; a second listener on its port fails cleanly. */
	assert_int_equal(baton_metrics_listen(m, &loop, "localhost:0", NULL, NULL, NULL, err,
					      sizeof(err)),
			 0);
	port = baton_metrics_port(m);
	assert_true(port > 0);
	assert_int_equal(baton_metrics_listen(m, &loop, "127.0.0.1:0", NULL, NULL, NULL, err,
					      sizeof(err)),
			 -1);
	assert_non_null(strstr(err, "already"));
	m2 = baton_metrics_new("orders", "w2");
	char addr[32];
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	err[0] = '\0';
	assert_int_equal(baton_metrics_listen(m2, &loop, addr, NULL, NULL, NULL, err, sizeof(err)),
			 -1);
	assert_true(err[0]);
	assert_int_equal(baton_metrics_port(m2), 0);
	baton_metrics_free(m2);

	baton_metrics_stop(m, count_done, &done);
	assert_int_equal(done, 1); /* only from the close callbacks */
	assert_int_equal(baton_metrics_port(m), 0);
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(done, 2);

	/* The registry may listen again after stop. */
	assert_int_equal(baton_metrics_listen(m, &loop, "127.0.0.1:0", NULL, NULL, NULL, err,
					      sizeof(err)),
			 0);
	assert_true(baton_metrics_port(m) > 0);
	baton_metrics_stop(m, NULL, NULL);
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&loop), 0);
	baton_metrics_free(m);
}

typedef struct reply {
	long status;
	char ctype[128];
	char *body;
	size_t len;
	char allow[64];
	CURLcode rc;
} reply_t;

typedef struct client {
	int port;
	baton_metrics_t *m;
	uv_async_t *finished;
	atomic_int ready_flag;
	int readyz_calls;
	reply_t metrics, query, healthz, not_ready, ready, nope, post, put_healthz;
	int keepalive_ok;
	long keepalive_connects;
	int idle_fd;
} client_t;

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
	reply_t *r = ud;
	char *nb = realloc(r->body, r->len + sz * n + 1);

	if (!nb)
		return 0;
	memcpy(nb + r->len, p, sz * n);
	r->len += sz * n;
	nb[r->len] = '\0';
	r->body = nb;
	return sz * n;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
	reply_t *r = ud;

	if (sz * n > 6 && strncasecmp(p, "Allow:", 6) == 0)
		sscanf(p + 6, " %63[^\r\n]", r->allow);
	return sz * n;
}

static void request(CURL *c, int port, const char *method, const char *path, reply_t *r)
{
	char url[128];
	char *ct = NULL;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
	memset(r, 0, sizeof(*r));
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 20000L); /* bounded even if the server hangs */
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, NULL);
	if (strcmp(method, "POST") == 0)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, "x=1");
	else if (strcmp(method, "GET") != 0)
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	r->rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	if (curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct)
		snprintf(r->ctype, sizeof(r->ctype), "%s", ct);
}

/* An idle TCP connection left open: stop must drop it rather than wait for it. */
static int open_idle(int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* Client thread: no cmocka calls here (not thread-safe); results are checked after join. */
static void *client_main(void *arg)
{
	client_t *cl = arg;
	CURL *c = curl_easy_init(), *k = curl_easy_init();

	if (c && k) {
		baton_metrics_inc(cl->m, BATON_M_ACKED, 5); /* bumped off the loop thread */
		request(c, cl->port, "GET", "/metrics", &cl->metrics);
		request(c, cl->port, "GET", "/metrics?name[]=x", &cl->query);
		request(c, cl->port, "GET", "/healthz", &cl->healthz);
		atomic_store(&cl->ready_flag, 0);
		request(c, cl->port, "GET", "/readyz", &cl->not_ready);
		atomic_store(&cl->ready_flag, 1);
		request(c, cl->port, "GET", "/readyz", &cl->ready);
		request(c, cl->port, "GET", "/nope", &cl->nope);
		request(c, cl->port, "POST", "/metrics", &cl->post);
		request(c, cl->port, "PUT", "/healthz", &cl->put_healthz);
		for (int i = 0; i < 50; i++) {
			reply_t r;
			long n = 0;

			request(k, cl->port, "GET", i % 2 ? "/healthz" : "/metrics", &r);
			if (r.rc == CURLE_OK && r.status == 200 && r.len > 0)
				cl->keepalive_ok++;
			curl_easy_getinfo(k, CURLINFO_NUM_CONNECTS, &n);
			cl->keepalive_connects += n;
			free(r.body);
		}
		cl->idle_fd = open_idle(cl->port);
	}
	curl_easy_cleanup(c);
	curl_easy_cleanup(k);
	uv_async_send(cl->finished);
	return NULL;
}

static int healthy(void *ud, char *why, size_t whylen)
{
	return 1;
}

static int ready_fn(void *ud, char *why, size_t whylen)
{
	client_t *cl = ud;

	cl->readyz_calls++; /* loop thread only */
	if (atomic_load(&cl->ready_flag))
		return 1;
	snprintf(why, whylen, "amqp consumer not connected");
	return 0;
}

static int stopped;

static void on_stopped(void *ud)
{
	stopped++;
}

static void on_finished(uv_async_t *a)
{
	client_t *cl = a->data;

	baton_metrics_stop(cl->m, on_stopped, NULL);
	uv_close((uv_handle_t *)a, NULL);
}

static void free_reply(reply_t *r)
{
	free(r->body);
}

static void test_listener(void **state)
{
	baton_metrics_t *m = baton_metrics_new("orders", "w1");
	client_t cl = {.m = m, .idle_fd = -1};
	uv_loop_t loop;
	uv_async_t finished;
	pthread_t th;
	char err[256];
	expo_t *e;

	atomic_init(&cl.ready_flag, 1);
	assert_int_equal(uv_loop_init(&loop), 0);
	assert_int_equal(uv_async_init(&loop, &finished, on_finished), 0);
	finished.data = &cl;
	cl.finished = &finished;
	assert_int_equal(baton_metrics_listen(m, &loop, "127.0.0.1:0", healthy, ready_fn, &cl, err,
					      sizeof(err)),
			 0);
	cl.port = baton_metrics_port(m);
	assert_true(cl.port > 0 && cl.port < 65536);
	baton_metrics_inc(m, BATON_M_CONSUMED, 7);
	baton_metrics_dead_code(m, "sku.unmapped");
	baton_metrics_observe_handler(m, 0.02);

	stopped = 0;
	assert_int_equal(pthread_create(&th, NULL, client_main, &cl), 0);
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0); /* ends once stop closed everything */
	pthread_join(th, NULL);
	assert_int_equal(stopped, 1);
	assert_int_equal(baton_metrics_port(m), 0);
	assert_int_equal(uv_loop_close(&loop), 0);
	if (cl.idle_fd >= 0)
		close(cl.idle_fd);

	assert_int_equal(cl.metrics.rc, CURLE_OK);
	assert_int_equal(cl.metrics.status, 200);
	assert_non_null(cl.metrics.body);
	assert_int_equal(strncmp(cl.metrics.ctype, "text/plain; version=0.0.4", 25), 0);
	e = malloc(sizeof(*e));
	assert_non_null(e);
	parse_expo(cl.metrics.body, cl.metrics.len, e, "orders", "w1");
	assert_true(value_of(e, "baton_messages_consumed_total", NULL, NULL) == 7);
	assert_true(value_of(e, "baton_messages_acked_total", NULL, NULL) == 5);
	assert_true(value_of(e, "baton_dead_letters_total", "code", "sku.unmapped") == 1);
	assert_true(value_of(e, "baton_handler_duration_seconds_bucket", "le", "0.025") == 1);
	free(e);
	assert_int_equal(cl.query.status, 200);

	assert_int_equal(cl.healthz.status, 200);
	assert_string_equal(cl.healthz.body, "ok\n");
	assert_int_equal(cl.not_ready.status, 503);
	assert_string_equal(cl.not_ready.body, "amqp consumer not connected\n");
	assert_int_equal(cl.ready.status, 200);
	assert_string_equal(cl.ready.body, "ok\n");
	assert_int_equal(cl.readyz_calls, 2);
	assert_int_equal(cl.nope.status, 404);
	assert_int_equal(cl.post.rc, CURLE_OK);
	assert_int_equal(cl.post.status, 405);
	assert_string_equal(cl.post.allow, "GET");
	assert_int_equal(cl.put_healthz.status, 405);
	assert_int_equal(cl.keepalive_ok, 50);
	assert_int_equal(cl.keepalive_connects, 1); /* one connection served all 50 */
	assert_true(cl.idle_fd >= 0);

	free_reply(&cl.metrics);
	free_reply(&cl.query);
	free_reply(&cl.healthz);
	free_reply(&cl.not_ready);
	free_reply(&cl.ready);
	free_reply(&cl.nope);
	free_reply(&cl.post);
	free_reply(&cl.put_healthz);
	baton_metrics_free(m);
}

/* NULL health functions always answer 200 "ok". */
static void *client_defaults(void *arg)
{
	client_t *cl = arg;
	CURL *c = curl_easy_init();

	if (c) {
		request(c, cl->port, "GET", "/healthz", &cl->healthz);
		request(c, cl->port, "GET", "/readyz", &cl->ready);
	}
	curl_easy_cleanup(c);
	uv_async_send(cl->finished);
	return NULL;
}

static void test_listener_default_health(void **state)
{
	baton_metrics_t *m = baton_metrics_new("orders", "w1");
	client_t cl = {.m = m, .idle_fd = -1};
	uv_loop_t loop;
	uv_async_t finished;
	pthread_t th;
	char err[256];

	assert_int_equal(uv_loop_init(&loop), 0);
	assert_int_equal(uv_async_init(&loop, &finished, on_finished), 0);
	finished.data = &cl;
	cl.finished = &finished;
	assert_int_equal(baton_metrics_listen(m, &loop, "127.0.0.1:0", NULL, NULL, NULL, err,
					      sizeof(err)),
			 0);
	cl.port = baton_metrics_port(m);
	stopped = 0;
	assert_int_equal(pthread_create(&th, NULL, client_defaults, &cl), 0);
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	pthread_join(th, NULL);
	assert_int_equal(stopped, 1);
	assert_int_equal(uv_loop_close(&loop), 0);
	assert_int_equal(cl.healthz.status, 200);
	assert_string_equal(cl.healthz.body, "ok\n");
	assert_int_equal(cl.ready.status, 200);
	assert_string_equal(cl.ready.body, "ok\n");
	free_reply(&cl.healthz);
	free_reply(&cl.ready);
	baton_metrics_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty_registry),
		cmocka_unit_test(test_counters_and_gauge),
		cmocka_unit_test(test_histogram),
		cmocka_unit_test(test_http_status),
		cmocka_unit_test(test_dead_codes_escaped),
		cmocka_unit_test(test_dead_code_cap),
		cmocka_unit_test(test_flow_worker_escaped),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_listen_errors),
		cmocka_unit_test(test_listener),
		cmocka_unit_test(test_listener_default_health),
	};
	int rc;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return rc;
}
