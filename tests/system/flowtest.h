/* flowtest.h — what the runtime's system tests share (test code only, header-only): the ERP
 * simulator, baton-testflow replicas, CloudEvents publishing and waiting for outcomes. */
#ifndef BATON_FLOWTEST_H
#define BATON_FLOWTEST_H

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "../../tools/sim/testing/simtest.h"
#include "testkit.h"

#define FT_FLOW_BIN BATON_BINARY_DIR "/tests/baton-testflow"
#define FT_ERP_BIN BATON_BINARY_DIR "/tools/sim/baton-sim-erp"
#define FT_QUEUE "baton.testflow"
#define FT_PARKING "baton.testflow.dead"

static inline double ft_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The ERP simulator without AMQP (its events are not part of these tests). */
static inline void ft_erp_start(simt_proc_t *erp)
{
	static const char *const env[] = {"BATON_AMQP_URL=", NULL};
	assert_int_equal(simt_start(erp, FT_ERP_BIN, NULL, env), 0);
}

/* GET/PUT on the simulator, JSON answer parsed (NULL on failure). */
static inline json_t *ft_sim_json(const simt_proc_t *p, const char *method, const char *path,
				  const char *body)
{
	simt_resp_t *r = malloc(sizeof(*r));
	json_t *j = NULL;

	assert_non_null(r);
	if (simt_req(p, method, path, body, NULL, 20000, r) == CURLE_OK && r->status < 300)
		j = json_loadb(r->body, r->len, 0, NULL);
	free(r);
	return j;
}

/* Installs fault rules (JSON text of the "rules" array). */
static inline void ft_faults(const simt_proc_t *erp, const char *rules)
{
	char body[4096];
	json_t *j;

	snprintf(body, sizeof(body), "{\"seed\": 1, \"rules\": %s}", rules);
	j = ft_sim_json(erp, "PUT", "/_sim/faults", body);
	assert_non_null(j);
	json_decref(j);
}

typedef struct ft_buf {
	char *p;
	size_t len;
} ft_buf_t;

static inline size_t ft_buf_write(char *d, size_t sz, size_t n, void *ud)
{
	ft_buf_t *b = ud;
	char *np = realloc(b->p, b->len + sz * n + 1);

	if (!np)
		return 0;
	b->p = np;
	memcpy(b->p + b->len, d, sz * n);
	b->len += sz * n;
	b->p[b->len] = '\0';
	return sz * n;
}

/* GET of any size, parsed; NULL on failure. */
static inline json_t *ft_get_json(const simt_proc_t *p, const char *path)
{
	char url[512];
	ft_buf_t b = {0};
	long status = 0;
	json_t *j = NULL;
	CURL *c = curl_easy_init();

	snprintf(url, sizeof(url), "%s%s", p->base, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 20000L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, ft_buf_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	if (curl_easy_perform(c) == CURLE_OK) {
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
		if (status == 200 && b.p)
			j = json_loadb(b.p, b.len, 0, NULL);
	}
	curl_easy_cleanup(c);
	free(b.p);
	return j;
}

/* counts.sales_orders and the number of duplicate external refs. */
static inline void ft_erp_counts(const simt_proc_t *erp, long *orders, long *dups)
{
	json_t *j = ft_get_json(erp, "/_sim/state"), *c;

	assert_non_null(j);
	c = json_object_get(j, "counts");
	*orders = (long)json_integer_value(json_object_get(c, "sales_orders"));
	*dups = (long)json_array_size(json_object_get(c, "duplicate_external_refs"));
	json_decref(j);
}

/* Requests the ERP saw for method+path (from its request log). */
static inline long ft_erp_requests(const simt_proc_t *erp, const char *method, const char *path,
				   long status)
{
	json_t *j = ft_get_json(erp, "/_sim/requests?limit=1000"), *reqs, *r;
	long n = 0;
	size_t i;

	assert_non_null(j);
	reqs = json_is_array(j) ? j : json_object_get(j, "requests");
	json_array_foreach(reqs, i, r) {
		if (strcmp(json_string_value(json_object_get(r, "method")) ?: "", method) ||
		    strcmp(json_string_value(json_object_get(r, "path")) ?: "", path))
			continue;
		if (status < 0 || json_integer_value(json_object_get(r, "status")) == status)
			n++;
	}
	json_decref(j);
	return n;
}

static inline void ft_publish_event(amqp_connection_state_t c, const char *id, const char *key,
				    const char *mode)
{
	char body[1024];

	snprintf(body, sizeof(body),
		 "{\"specversion\":\"1.0\",\"id\":\"%s\",\"source\":\"test/runtime\","
		 "\"type\":\"test.effect\",\"subject\":\"effect/%s\",\"time\":\"2026-11-22T10:00:00Z\","
		 "\"datacontenttype\":\"application/json\",\"data\":{\"key\":\"%s\",\"mode\":\"%s\"}}",
		 id, key, key, mode);
	bt_publish(c, "baton.events", "test.effect", id, body);
}

/* Every worker a test started and has not reaped yet: teardown kills what is left. */
static pid_t ft_pids[64];

static inline void ft_forget(pid_t pid)
{
	for (int i = 0; i < 64; i++)
		if (ft_pids[i] == pid)
			ft_pids[i] = 0;
}

static inline void ft_kill_all(void)
{
	for (int i = 0; i < 64; i++) {
		if (ft_pids[i] > 0) {
			kill(ft_pids[i], SIGKILL);
			waitpid(ft_pids[i], NULL, 0);
			ft_pids[i] = 0;
		}
	}
}

/* Starts a replica of baton-testflow against erp; extra: more "K=V" (NULL-terminated or
 * NULL). */
static inline pid_t ft_worker(const bt_stack_t *s, const simt_proc_t *erp, const char *id,
			      const char *const *extra, const char *const *wrapper)
{
	static char erp_url[128];
	const char *env[24];
	int n = 0;

	snprintf(erp_url, sizeof(erp_url), "BATON_ERP_URL=%s", erp->base);
	env[n++] = erp_url;
	env[n++] = "BATON_RETRY_TIERS=1s,2s,3s";
	env[n++] = "BATON_SHUTDOWN_GRACE=20s";
	env[n++] = "BATON_AUDIT_FLUSH=50ms";
	for (const char *const *e = extra; e && *e && n < 22; e++)
		env[n++] = *e;
	env[n] = NULL;
	pid_t pid = bt_spawn_worker(s, FT_FLOW_BIN, id, env, wrapper);
	for (int i = 0; i < 64; i++) {
		if (ft_pids[i] == 0) {
			ft_pids[i] = pid;
			break;
		}
	}
	return pid;
}

/* Waits until queue q has at least n consumers (management API). */
static inline void ft_wait_consumers(const bt_stack_t *s, const char *q, int n, int timeout_s)
{
	char path[256], out[8192];
	double end = ft_now() + timeout_s;
	char vh[128];
	size_t j = 0;

	for (const char *p = s->vhost; *p && j < sizeof(vh) - 4; p++) {
		if (*p == '/') {
			memcpy(vh + j, "%2F", 3);
			j += 3;
		} else {
			vh[j++] = *p;
		}
	}
	vh[j] = '\0';
	snprintf(path, sizeof(path), "/api/queues/%s/%s", vh, q);
	while (ft_now() < end) {
		if (bt_mgmt(s, "GET", path, NULL, out, sizeof(out)) == 200) {
			json_t *jq = json_loads(out, 0, NULL);
			int have = (int)json_integer_value(json_object_get(jq, "consumers"));
			json_decref(jq);
			if (have >= n)
				return;
		}
		bt_sleep_ms(200);
	}
	fail_msg("queue %s did not get %d consumers within %d s", q, n, timeout_s);
}

/* Waits until count_documents(ledger) reaches n. Returns the count seen last. */
static inline int64_t ft_wait_ledger(const bt_stack_t *s, int64_t n, int timeout_s)
{
	double end = ft_now() + timeout_s;
	int64_t have = -1;

	while (ft_now() < end) {
		have = bt_count_docs(s, "ledger", NULL);
		if (have >= n)
			break;
		bt_sleep_ms(250);
	}
	return have;
}

/* Waits until queue q holds n messages (ready + unacked). Returns what it saw last. */
static inline int64_t ft_wait_depth(amqp_connection_state_t c, const char *q, int64_t n,
				    int timeout_s)
{
	double end = ft_now() + timeout_s;
	int64_t have = -1;

	while (ft_now() < end) {
		have = bt_queue_depth(c, q);
		if (have == n)
			break;
		bt_sleep_ms(200);
	}
	return have;
}

/* SIGTERM and wait (bounded); returns the exit status, -1 if it had to be killed or died by a
 * signal. */
static inline int ft_stop(pid_t pid, int timeout_s)
{
	int st = 0;
	double end = ft_now() + timeout_s;

	kill(pid, SIGTERM);
	ft_forget(pid);
	while (ft_now() < end) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
		bt_sleep_ms(50);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return -1;
}

static inline void ft_kill9(pid_t pid)
{
	ft_forget(pid);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/* No core files from the workers that abort on purpose. */
static inline void ft_no_cores(void)
{
	struct rlimit rl = {0, 0};
	setrlimit(RLIMIT_CORE, &rl);
}

/* Gets one message from q (basic.get, acked); returns 0 and fills env, or -1 when empty. */
static inline int ft_get(amqp_connection_state_t c, const char *q, amqp_message_t *msg)
{
	amqp_rpc_reply_t r = amqp_basic_get(c, 1, amqp_cstring_bytes(q), 1);

	if (r.reply_type != AMQP_RESPONSE_NORMAL || r.reply.id != AMQP_BASIC_GET_OK_METHOD)
		return -1;
	r = amqp_read_message(c, 1, msg, 0);
	return r.reply_type == AMQP_RESPONSE_NORMAL ? 0 : -1;
}

#endif
