/* testkit.c — per-test vhost and database on the stack started by tools/test.sh. */
#include "testkit.h"

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <sys/stat.h>
#include <time.h>
#include <curl/curl.h>
#include <mongoc/mongoc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct bt_buf {
	char *p;
	size_t len, cap;
};

static size_t bt_write(char *data, size_t sz, size_t n, void *ud)
{
	struct bt_buf *b = ud;
	size_t len = sz * n;
	if (b->p && b->len + 1 < b->cap) {
		size_t take = len < b->cap - b->len - 1 ? len : b->cap - b->len - 1;
		memcpy(b->p + b->len, data, take);
		b->len += take;
		b->p[b->len] = '\0';
	}
	return len;
}

long bt_mgmt(const bt_stack_t *s, const char *method, const char *path, const char *body,
	     char *out, size_t outlen)
{
	char url[1024];
	struct bt_buf b = {out, 0, outlen};
	struct curl_slist *hdr = NULL;
	long status = -1;
	CURL *c = curl_easy_init();

	if (!c)
		return -1;
	if (out && outlen)
		out[0] = '\0';
	snprintf(url, sizeof(url), "%s%s", s->mgmt_url, path);
	hdr = curl_slist_append(hdr, "content-type: application/json");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, bt_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	if (body)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(hdr);
	curl_easy_cleanup(c);
	return status;
}

static int bt_missing(const char *what)
{
	const char *ci = getenv("CI");
	int under_ci = ci && strcmp(ci, "true") == 0;

	fprintf(stderr,
		"testkit: %s is not set: system tests need the private stack that tools/test.sh "
		"starts (%s)\n",
		what, under_ci ? "CI=true: failing" : "skipping");
	return under_ci ? 1 : BT_SKIP;
}

/* Splits BATON_TEST_AMQP_URL into host, port and credentials, and points a URL at s->vhost. */
static int bt_parse_amqp(bt_stack_t *s, const char *url)
{
	struct amqp_connection_info ci;
	char *copy = strdup(url);
	int rc = -1;

	if (!copy)
		return -1;
	amqp_default_connection_info(&ci);
	if (amqp_parse_url(copy, &ci) == AMQP_STATUS_OK) {
		snprintf(s->amqp_host, sizeof(s->amqp_host), "%s", ci.host);
		snprintf(s->amqp_user, sizeof(s->amqp_user), "%s", ci.user);
		snprintf(s->amqp_pass, sizeof(s->amqp_pass), "%s", ci.password);
		s->amqp_port = ci.port;
		snprintf(s->amqp_url, sizeof(s->amqp_url), "amqp://%s:%s@%s:%d/%s", ci.user,
			 ci.password, ci.host, ci.port, s->vhost);
		rc = 0;
	}
	free(copy);
	return rc;
}

/* FerretDB v1 lacks endSessions: libmongoc warns about it at every client destroy. */
static void bt_mongoc_log(mongoc_log_level_t level, const char *domain, const char *message,
			  void *ud)
{
	if (strstr(message, "endSessions"))
		return;
	mongoc_log_default_handler(level, domain, message, ud);
}

int bt_stack_open(bt_stack_t *s, const char *name)
{
	static int seq;
	const char *amqp = getenv("BATON_TEST_AMQP_URL");
	const char *mongo = getenv("BATON_TEST_MONGO_URI");
	const char *mgmt = getenv("BATON_TEST_MGMT_URL");
	char path[256], resp[512];
	long st;

	memset(s, 0, sizeof(*s));
	mongoc_init(); /* idempotent */
	mongoc_log_set_handler(bt_mongoc_log, NULL);
	if (!amqp || !*amqp)
		return bt_missing("BATON_TEST_AMQP_URL");
	if (!mongo || !*mongo)
		return bt_missing("BATON_TEST_MONGO_URI");
	if (!mgmt || !*mgmt)
		return bt_missing("BATON_TEST_MGMT_URL");

	seq++;
	snprintf(s->vhost, sizeof(s->vhost), "t-%.40s-%d-%d", name, (int)getpid(), seq);
	snprintf(s->db_name, sizeof(s->db_name), "t_%.40s_%d_%d", name, (int)getpid(), seq);
	snprintf(s->mgmt_url, sizeof(s->mgmt_url), "%s", mgmt);
	snprintf(s->mongo_uri, sizeof(s->mongo_uri), "%s", mongo);
	if (bt_parse_amqp(s, amqp) != 0) {
		fprintf(stderr, "testkit: cannot parse BATON_TEST_AMQP_URL\n");
		return 1;
	}

	snprintf(path, sizeof(path), "/api/vhosts/%s", s->vhost);
	st = bt_mgmt(s, "PUT", path, "{}", resp, sizeof(resp));
	if (st != 201 && st != 204) {
		fprintf(stderr, "testkit: creating vhost %s failed: HTTP %ld %s\n", s->vhost, st, resp);
		return 1;
	}
	snprintf(path, sizeof(path), "/api/permissions/%s/%s", s->vhost, s->amqp_user);
	st = bt_mgmt(s, "PUT", path, "{\"configure\":\".*\",\"write\":\".*\",\"read\":\".*\"}", resp,
		     sizeof(resp));
	if (st != 201 && st != 204) {
		fprintf(stderr, "testkit: granting %s on %s failed: HTTP %ld %s\n", s->amqp_user,
			s->vhost, st, resp);
		bt_stack_close(s);
		return 1;
	}
	return 0;
}

static void bt_drop_db(const bt_stack_t *s)
{
	bson_error_t err;
	mongoc_client_t *c = mongoc_client_new(s->mongo_uri);
	mongoc_database_t *db;

	if (!c)
		return;
	db = mongoc_client_get_database(c, s->db_name);
	if (!mongoc_database_drop(db, &err) && err.code != 26 /* NamespaceNotFound */)
		fprintf(stderr, "testkit: dropping database %s: %s\n", s->db_name, err.message);
	mongoc_database_destroy(db);
	mongoc_client_destroy(c);
}

void bt_stack_close(bt_stack_t *s)
{
	char path[256];

	if (s->vhost[0]) {
		snprintf(path, sizeof(path), "/api/vhosts/%s", s->vhost);
		bt_mgmt(s, "DELETE", path, NULL, NULL, 0);
		s->vhost[0] = '\0';
	}
	if (s->db_name[0]) {
		bt_drop_db(s);
		s->db_name[0] = '\0';
	}
}

amqp_connection_state_t bt_amqp_open(const bt_stack_t *s)
{
	amqp_connection_state_t c = amqp_new_connection();
	amqp_socket_t *sock = amqp_tcp_socket_new(c);
	struct timeval tv = {10, 0};

	assert_non_null(sock);
	assert_int_equal(amqp_socket_open(sock, s->amqp_host, s->amqp_port), AMQP_STATUS_OK);
	amqp_set_rpc_timeout(c, &tv);
	assert_int_equal(amqp_login(c, s->vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN,
				    s->amqp_user, s->amqp_pass)
				 .reply_type,
			 AMQP_RESPONSE_NORMAL);
	amqp_channel_open(c, 1);
	assert_int_equal(amqp_get_rpc_reply(c).reply_type, AMQP_RESPONSE_NORMAL);
	return c;
}

int64_t bt_queue_depth(amqp_connection_state_t c, const char *q)
{
	static int ch = 10;
	amqp_channel_t n;
	amqp_queue_declare_ok_t *ok;
	int64_t depth;

	/* fresh channel numbers, kept below the broker's channel_max (2047) */
	ch = ch >= 1900 ? 10 : ch + 1;
	n = (amqp_channel_t)ch;
	amqp_channel_open(c, n);
	ok = amqp_queue_declare(c, n, amqp_cstring_bytes(q), 1, 0, 0, 0, amqp_empty_table);
	if (!ok) { /* missing queue: the broker closed the channel */
		amqp_channel_close_ok_t cok = {0};
		amqp_send_method(c, n, AMQP_CHANNEL_CLOSE_OK_METHOD, &cok);
		return -1;
	}
	depth = ok->message_count;
	amqp_channel_close(c, n, AMQP_REPLY_SUCCESS);
	return depth;
}

/* Waits for the broker's confirm of the one publish on channel ch. Nothing else is in flight on
 * the connection meanwhile (the testkit's other calls are synchronous RPCs). */
static void bt_wait_confirm(amqp_connection_state_t c, amqp_channel_t ch)
{
	amqp_frame_t f;

	for (;;) {
		assert_int_equal(amqp_simple_wait_frame(c, &f), AMQP_STATUS_OK);
		if (f.frame_type != AMQP_FRAME_METHOD || f.channel != ch)
			continue;
		if (f.payload.method.id == AMQP_BASIC_ACK_METHOD)
			return;
		if (f.payload.method.id == AMQP_BASIC_NACK_METHOD)
			fail_msg("testkit: the broker refused a publish (basic.nack)");
		/* basic.return (unroutable) comes before its ack: skip the method's content */
		if (f.payload.method.id == AMQP_BASIC_RETURN_METHOD) {
			amqp_message_t m;
			assert_int_equal(amqp_read_message(c, ch, &m, 0).reply_type,
					 AMQP_RESPONSE_NORMAL);
			amqp_destroy_message(&m);
		}
	}
}

/* Persistent publish confirmed by the broker before it returns: a test that restarts the broker
 * right after publishing must not lose what the broker never took. Each call uses a channel of
 * its own (opened in confirm mode and closed again), so channel 1 stays free for the caller. */
void bt_publish(amqp_connection_state_t c, const char *exchange, const char *rk, const char *id,
		const char *body)
{
	static int next = 1901;
	amqp_channel_t ch;
	amqp_basic_properties_t p = {
		._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG |
			  AMQP_BASIC_MESSAGE_ID_FLAG,
		.delivery_mode = 2,
		.content_type = amqp_cstring_bytes("application/json"),
		.message_id = amqp_cstring_bytes(id)};

	next = next >= 2040 ? 1901 : next + 1; /* above bt_queue_depth's, below channel_max */
	ch = (amqp_channel_t)next;
	amqp_channel_open(c, ch);
	assert_int_equal(amqp_get_rpc_reply(c).reply_type, AMQP_RESPONSE_NORMAL);
	amqp_confirm_select(c, ch);
	assert_int_equal(amqp_get_rpc_reply(c).reply_type, AMQP_RESPONSE_NORMAL);
	assert_int_equal(amqp_basic_publish(c, ch, amqp_cstring_bytes(exchange),
					    amqp_cstring_bytes(rk), 0, 0, &p,
					    amqp_cstring_bytes(body)),
			 AMQP_STATUS_OK);
	bt_wait_confirm(c, ch);
	amqp_channel_close(c, ch, AMQP_REPLY_SUCCESS);
}

int64_t bt_count_docs(const bt_stack_t *s, const char *coll, const bson_t *filter)
{
	bson_error_t err;
	mongoc_client_t *c = mongoc_client_new(s->mongo_uri);
	mongoc_collection_t *col = mongoc_client_get_collection(c, s->db_name, coll);
	bson_t empty = BSON_INITIALIZER;
	int64_t n = mongoc_collection_count_documents(col, filter ? filter : &empty, NULL, NULL,
						      NULL, &err);
	if (n < 0)
		fprintf(stderr, "testkit: counting %s: %s\n", coll, err.message);
	mongoc_collection_destroy(col);
	mongoc_client_destroy(c);
	return n;
}

void bt_sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

pid_t bt_spawn_worker(const bt_stack_t *s, const char *bin, const char *worker_id,
		      const char *const *extra_env, const char *const *wrapper)
{
	pid_t pid = fork();

	if (pid != 0)
		return pid;
	setenv("BATON_AMQP_URL", s->amqp_url, 1);
	setenv("BATON_MONGO_URI", s->mongo_uri, 1);
	setenv("BATON_MONGO_DB", s->db_name, 1);
	setenv("BATON_RABBITMQ_MGMT_URL", s->mgmt_url, 1);
	setenv("BATON_METRICS_ADDR", "off", 1);
	setenv("BATON_WORKER_ID", worker_id, 1);
	setenv("BATON_LOG_LEVEL", "warn", 1);
	for (const char *const *e = extra_env; e && *e; e++)
		putenv((char *)*e);
	if (wrapper) {
		const char *argv[32];
		int n = 0;
		while (wrapper[n] && n < 30) {
			argv[n] = wrapper[n];
			n++;
		}
		argv[n++] = bin;
		argv[n] = NULL;
		execvp(argv[0], (char *const *)argv);
	} else {
		execl(bin, bin, (char *)NULL);
	}
	_exit(127);
}

static int bt_sh(const char *dir, const char *cmd, char *out, size_t outlen)
{
	char line[1024];
	size_t used = 0;
	FILE *p;

	snprintf(line, sizeof(line),
		 "env -u BATON_AMQP_URL -u BATON_MONGO_URI -u BATON_RABBITMQ_MGMT_URL "
		 "BATON_STACK_DIR='%s' bash '%s/tools/stack.sh' %s", dir,
		 BATON_SOURCE_DIR, cmd);
	p = popen(line, "r");
	if (!p)
		return -1;
	if (out)
		out[0] = '\0';
	while (fgets(line, sizeof(line), p)) {
		size_t l = strlen(line);
		if (out && used + l < outlen) {
			memcpy(out + used, line, l + 1);
			used += l;
		}
	}
	return pclose(p) == 0 ? 0 : -1;
}

int bt_private_stack(const char *dir, const char *cmd)
{
	return bt_sh(dir, cmd, NULL, 0);
}

/* Value of `export NAME='value'` in the output of stack.sh env. */
static void bt_env_value(const char *env, const char *name, char *out, size_t len)
{
	char pat[128];
	const char *p, *e;

	out[0] = '\0';
	snprintf(pat, sizeof(pat), "export %s='", name);
	p = strstr(env, pat);
	if (!p)
		return;
	p += strlen(pat);
	e = strchr(p, '\'');
	if (e && (size_t)(e - p) < len) {
		memcpy(out, p, (size_t)(e - p));
		out[e - p] = '\0';
	}
}

int bt_private_stack_up(bt_stack_t *s, const char *name, char *dir, size_t dirlen)
{
	const char *base = getenv("BATON_TEST_TMP");
	char env[4096], url[512];

	memset(s, 0, sizeof(*s));
	mongoc_init();
	mongoc_log_set_handler(bt_mongoc_log, NULL);
	snprintf(dir, dirlen, "%s/%s-%d", base && *base ? base : "/tmp", name, (int)getpid());
	if (mkdir(dir, 0755) != 0 || chmod(dir, 0755) != 0) {
		fprintf(stderr, "testkit: cannot create %s\n", dir);
		return -1;
	}
	if (bt_sh(dir, "up", NULL, 0) != 0 || bt_sh(dir, "env", env, sizeof(env)) != 0) {
		fprintf(stderr, "testkit: private stack in %s did not start\n", dir);
		bt_sh(dir, "down", NULL, 0);
		return -1;
	}
	snprintf(s->vhost, sizeof(s->vhost), "%s", "/");
	snprintf(s->db_name, sizeof(s->db_name), "t_%.40s_%d", name, (int)getpid());
	bt_env_value(env, "BATON_MONGO_URI", s->mongo_uri, sizeof(s->mongo_uri));
	bt_env_value(env, "BATON_RABBITMQ_MGMT_URL", s->mgmt_url, sizeof(s->mgmt_url));
	bt_env_value(env, "BATON_AMQP_URL", url, sizeof(url));
	if (bt_parse_amqp(s, url) != 0) {
		bt_sh(dir, "down", NULL, 0);
		return -1;
	}
	snprintf(s->amqp_url, sizeof(s->amqp_url), "%s", url);
	return 0;
}
