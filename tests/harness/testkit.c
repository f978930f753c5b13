/* testkit.c — per-test vhost and database on the stack started by tools/test.sh. */
#include "testkit.h"

#include <amqp.h>
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
