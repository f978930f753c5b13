/* test_http.c — the HTTP client: classification, Retry-After, URL redaction (pure), and the
 * asynchronous client on a libuv loop against an in-process libmicrohttpd server on loopback:
 * keep-alive reuse, 429 + Retry-After, 503, 400, 409, a timeout, a refused connection, an
 * oversize body, and callbacks that never run inside baton_http_request(). */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "baton/http.h"

/* ---------------------------------------------------------------------------------------- */
/* pure helpers                                                                             */

static void test_classify(void **state)
{
	static const struct {
		long status;
		int curl;
		baton_http_class_t want;
	} t[] = {
		{200, CURLE_OK, BATON_HTTP_OK},
		{201, CURLE_OK, BATON_HTTP_OK},
		{304, CURLE_OK, BATON_HTTP_OK},
		{400, CURLE_OK, BATON_HTTP_PERMANENT},
		{404, CURLE_OK, BATON_HTTP_PERMANENT},
		{422, CURLE_OK, BATON_HTTP_PERMANENT},
		{408, CURLE_OK, BATON_HTTP_TRANSIENT},
		{409, CURLE_OK, BATON_HTTP_CONFLICT},
		{429, CURLE_OK, BATON_HTTP_TRANSIENT},
		{500, CURLE_OK, BATON_HTTP_TRANSIENT},
		{503, CURLE_OK, BATON_HTTP_TRANSIENT},
		{599, CURLE_OK, BATON_HTTP_TRANSIENT},
		{600, CURLE_OK, BATON_HTTP_PERMANENT},
		{0, CURLE_OK, BATON_HTTP_TRANSIENT},
		{0, CURLE_OPERATION_TIMEDOUT, BATON_HTTP_TRANSIENT},
		{0, CURLE_COULDNT_CONNECT, BATON_HTTP_TRANSIENT},
		{0, CURLE_COULDNT_RESOLVE_HOST, BATON_HTTP_TRANSIENT},
		{0, CURLE_RECV_ERROR, BATON_HTTP_TRANSIENT},
		{0, CURLE_URL_MALFORMAT, BATON_HTTP_PERMANENT},
		{0, CURLE_UNSUPPORTED_PROTOCOL, BATON_HTTP_PERMANENT},
		{200, CURLE_WRITE_ERROR, BATON_HTTP_PERMANENT}, /* body cap: failure decides */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(*t); i++) {
		if (baton_http_classify(t[i].status, t[i].curl) != t[i].want)
			fail_msg("status %ld curl %d: got %s, want %s", t[i].status, t[i].curl,
				 baton_http_class_name(baton_http_classify(t[i].status, t[i].curl)),
				 baton_http_class_name(t[i].want));
	}
	assert_string_equal(baton_http_class_name(BATON_HTTP_CONFLICT), "conflict");
	assert_string_equal(baton_http_class_name((baton_http_class_t)42), "unknown");
}

static void test_error_code(void **state)
{
	baton_http_resp_t r = {0};
	char buf[64];

	(void)state;
	r.status = 422;
	r.code = "";
	assert_string_equal(baton_http_error_code(&r, "erp", buf, sizeof(buf)), "erp.http_422");
	r.status = 0;
	r.code = BATON_HTTP_CODE_TIMEOUT;
	assert_string_equal(baton_http_error_code(&r, "erp", buf, sizeof(buf)), "erp.timeout");
	r.code = "";
	assert_string_equal(baton_http_error_code(&r, "storefront", buf, sizeof(buf)),
			    "storefront.unreachable");
}

static void test_retry_after(void **state)
{
	time_t now = 1445412480; /* Wed, 21 Oct 2015 07:28:00 GMT */

	(void)state;
	assert_int_equal(baton_http_parse_retry_after("120", now), 120000);
	assert_int_equal(baton_http_parse_retry_after("  0 \r\n", now), 0);
	assert_int_equal(baton_http_parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now), 30000);
	assert_int_equal(baton_http_parse_retry_after("Wednesday, 21-Oct-15 07:29:00 GMT", now),
			 60000);
	assert_int_equal(baton_http_parse_retry_after("Wed Oct 21 07:28:10 2015", now), 10000);
	assert_int_equal(baton_http_parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now), 0);
	assert_int_equal(baton_http_parse_retry_after("2147483648", now), -1);
	assert_int_equal(baton_http_parse_retry_after("-5", now), -1);
	assert_int_equal(baton_http_parse_retry_after("1.5", now), -1);
	assert_int_equal(baton_http_parse_retry_after("soon", now), -1);
	assert_int_equal(baton_http_parse_retry_after("", now), -1);
	assert_int_equal(baton_http_parse_retry_after(NULL, now), -1);
}

static void redacts(const char *in, const char *want)
{
	char out[512];
	size_t n = baton_http_redact_url(in, out, sizeof(out));

	assert_string_equal(out, want);
	assert_int_equal(n, strlen(want));
}

static void test_redact_url(void **state)
{
	char small[8];

	(void)state;
	redacts("http://127.0.0.1:8080/api/orders", "http://127.0.0.1:8080/api/orders");
	redacts("https://user:pa55@erp.example/x", "https://***@erp.example/x");
	redacts("http://h/p?a=1&token=abc&apiKey=zz&b=2", "http://h/p?a=1&token=***&apiKey=***&b=2");
	redacts("http://h/p?Access_Token=t#sig=s", "http://h/p?Access_Token=***#sig=***");
	redacts("http://h/p?client_secret=x&my_password=y", "http://h/p?client_secret=***&my_password=***");
	redacts("http://h/p?monkey=1", "http://h/p?monkey=***"); /* ends in "key": hidden too */
	redacts("http://h/a@b", "http://h/a@b");                 /* @ in the path is not user info */
	assert_int_equal(baton_http_redact_url("http://u:p@h/", small, sizeof(small)),
			 strlen("http://***@h/"));
	assert_string_equal(small, "http://");
}

/* ---------------------------------------------------------------------------------------- */
/* the client against a local server                                                        */

static struct MHD_Daemon *D;
static int PORT, CONNECTIONS;

static enum MHD_Result answer(void *cls, struct MHD_Connection *c, const char *url,
			      const char *method, const char *version, const char *upload,
			      size_t *upload_size, void **con_cls)
{
	struct MHD_Response *r;
	int status = 200;
	const char *body = "{\"ok\":true}";
	static char big[70000];
	enum MHD_Result rc;

	(void)cls, (void)method, (void)version, (void)upload;
	if (!*con_cls) { /* first call: headers only */
		*con_cls = (void *)1;
		return MHD_YES;
	}
	if (*upload_size) {
		*upload_size = 0;
		return MHD_YES;
	}
	if (!strcmp(url, "/slow")) {
		sleep(2);
	} else if (!strcmp(url, "/429")) {
		status = 429;
		body = "{\"error\":\"rate\"}";
	} else if (!strcmp(url, "/503")) {
		status = 503;
	} else if (!strcmp(url, "/400")) {
		status = 400;
		body = "{\"error\":\"bad\"}";
	} else if (!strcmp(url, "/409")) {
		status = 409;
	} else if (!strcmp(url, "/big")) {
		memset(big, 'x', sizeof(big) - 1);
		body = big;
	}
	r = MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
	MHD_add_response_header(r, "Content-Type", "application/json");
	if (status == 429)
		MHD_add_response_header(r, "Retry-After", "7");
	rc = MHD_queue_response(c, (unsigned)status, r);
	MHD_destroy_response(r);
	return rc;
}

static void on_conn(void *cls, struct MHD_Connection *c, void **socket_context,
		    enum MHD_ConnectionNotificationCode code)
{
	(void)cls, (void)c, (void)socket_context;
	if (code == MHD_CONNECTION_NOTIFY_STARTED)
		__atomic_add_fetch(&CONNECTIONS, 1, __ATOMIC_SEQ_CST);
}

static int server_up(void **state)
{
	const union MHD_DaemonInfo *i;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};

	(void)state;
	D = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0,
			     NULL, NULL, answer, NULL, MHD_OPTION_SOCK_ADDR, &a,
			     MHD_OPTION_NOTIFY_CONNECTION, on_conn, NULL, MHD_OPTION_END);
	if (!D)
		return -1;
	i = MHD_get_daemon_info(D, MHD_DAEMON_INFO_BIND_PORT);
	PORT = i->port;
	return 0;
}

static int server_down(void **state)
{
	(void)state;
	MHD_stop_daemon(D);
	return 0;
}

typedef struct call {
	int done, in_request;
	long status;
	baton_http_class_t cls;
	char code[32], body[128];
	long retry_after_ms;
	char summary[512];
} call_t;

static void on_done(const baton_http_resp_t *r, void *ud)
{
	call_t *c = ud;

	assert_false(c->in_request); /* never from inside baton_http_request() */
	c->done++;
	c->status = r->status;
	c->cls = r->cls;
	snprintf(c->code, sizeof(c->code), "%s", r->code);
	snprintf(c->body, sizeof(c->body), "%s", r->body);
	c->retry_after_ms = r->retry_after_ms;
	snprintf(c->summary, sizeof(c->summary), "%s", r->summary);
}

/* Runs requests for paths on one client until all are done. */
static void run(baton_http_t *h, uv_loop_t *loop, const char *const *paths, call_t *calls,
		size_t n, int port)
{
	char url[128];

	for (size_t i = 0; i < n; i++) {
		baton_http_req_t req = {.method = "GET", .url = url};
		snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, paths[i]);
		calls[i].in_request = 1;
		assert_int_equal(baton_http_request(h, &req, on_done, &calls[i]), 0);
		calls[i].in_request = 0;
	}
	while (baton_http_in_flight(h))
		uv_run(loop, UV_RUN_ONCE);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(calls[i].done, 1);
}

static void closed(void *ud)
{
	*(int *)ud = 1;
}

static void close_client(baton_http_t *h, uv_loop_t *loop)
{
	int done = 0;

	baton_http_close(h, closed, &done);
	while (!done)
		uv_run(loop, UV_RUN_ONCE);
	assert_int_equal(uv_loop_close(loop), 0);
}

static void test_client_statuses(void **state)
{
	static const char *const paths[] = {"/ok", "/429", "/503", "/400", "/409"};
	call_t c[5] = {0};
	uv_loop_t loop;
	baton_http_t *h;

	(void)state;
	uv_loop_init(&loop);
	h = baton_http_new(&loop, NULL);
	assert_non_null(h);
	run(h, &loop, paths, c, 5, PORT);
	assert_int_equal(c[0].status, 200);
	assert_int_equal(c[0].cls, BATON_HTTP_OK);
	assert_string_equal(c[0].body, "{\"ok\":true}");
	assert_string_equal(c[0].code, "");
	assert_int_equal(c[1].status, 429);
	assert_int_equal(c[1].cls, BATON_HTTP_TRANSIENT);
	assert_int_equal(c[1].retry_after_ms, 7000);
	assert_int_equal(c[2].cls, BATON_HTTP_TRANSIENT);
	assert_int_equal(c[2].retry_after_ms, -1);
	assert_int_equal(c[3].cls, BATON_HTTP_PERMANENT);
	assert_string_equal(c[3].body, "{\"error\":\"bad\"}");
	assert_int_equal(c[4].cls, BATON_HTTP_CONFLICT);
	assert_non_null(strstr(c[0].summary, "GET http://127.0.0.1:"));
	assert_non_null(strstr(c[0].summary, "/ok -> 200 in "));
	close_client(h, &loop);
}

static void test_client_keepalive(void **state)
{
	static const char *const one[] = {"/ok"};
	call_t c[1];
	uv_loop_t loop;
	baton_http_t *h;
	int before;

	(void)state;
	uv_loop_init(&loop);
	h = baton_http_new(&loop, NULL);
	before = __atomic_load_n(&CONNECTIONS, __ATOMIC_SEQ_CST);
	for (int i = 0; i < 20; i++) { /* one after the other: the same connection each time */
		memset(c, 0, sizeof(c));
		run(h, &loop, one, c, 1, PORT);
		assert_int_equal(c[0].status, 200);
	}
	assert_int_equal(__atomic_load_n(&CONNECTIONS, __ATOMIC_SEQ_CST) - before, 1);
	close_client(h, &loop);
}

static void test_client_failures(void **state)
{
	static const char *const slow[] = {"/slow"}, *const big[] = {"/big"};
	baton_http_opts_t o = {.timeout_ms = 300, .max_body_bytes = 1000};
	call_t c[1] = {0};
	uv_loop_t loop;
	baton_http_t *h;
	int fd, refused_port;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);

	(void)state;
	uv_loop_init(&loop);
	h = baton_http_new(&loop, &o);
	run(h, &loop, slow, c, 1, PORT);
	assert_int_equal(c[0].status, 0);
	assert_int_equal(c[0].cls, BATON_HTTP_TRANSIENT);
	assert_string_equal(c[0].code, BATON_HTTP_CODE_TIMEOUT);

	memset(c, 0, sizeof(c));
	run(h, &loop, big, c, 1, PORT);
	assert_int_equal(c[0].cls, BATON_HTTP_PERMANENT);
	assert_string_equal(c[0].code, BATON_HTTP_CODE_BODY_TOO_LARGE);
	assert_string_equal(c[0].body, "");

	/* a port that was just free: nobody listens there */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	getsockname(fd, (struct sockaddr *)&a, &alen);
	refused_port = ntohs(a.sin_port);
	close(fd);
	memset(c, 0, sizeof(c));
	run(h, &loop, (const char *const[]){"/ok"}, c, 1, refused_port);
	assert_int_equal(c[0].status, 0);
	assert_int_equal(c[0].cls, BATON_HTTP_TRANSIENT);
	assert_string_equal(c[0].code, BATON_HTTP_CODE_CONNECT);
	close_client(h, &loop);
}

static void test_client_rejects_bad_requests(void **state)
{
	uv_loop_t loop;
	baton_http_t *h;
	call_t c = {0};
	const char *const hdrs[] = {"X-Evil: a\r\nInjected: 1", NULL};
	baton_http_req_t bad_method = {.method = "get", .url = "http://127.0.0.1:1/"};
	baton_http_req_t bad_header = {.method = "GET", .url = "http://127.0.0.1:1/",
				       .headers = hdrs};

	(void)state;
	uv_loop_init(&loop);
	h = baton_http_new(&loop, NULL);
	assert_int_equal(baton_http_request(h, &bad_method, on_done, &c), -1);
	assert_int_equal(baton_http_request(h, &bad_header, on_done, &c), -1);
	assert_int_equal(baton_http_request(h, NULL, on_done, &c), -1);
	assert_int_equal(c.done, 0);
	close_client(h, &loop);
}

int main(void)
{
	const struct CMUnitTest pure[] = {
		cmocka_unit_test(test_classify),
		cmocka_unit_test(test_error_code),
		cmocka_unit_test(test_retry_after),
		cmocka_unit_test(test_redact_url),
	};
	const struct CMUnitTest client[] = {
		cmocka_unit_test(test_client_statuses),
		cmocka_unit_test(test_client_keepalive),
		cmocka_unit_test(test_client_failures),
		cmocka_unit_test(test_client_rejects_bad_requests),
	};
	int rc = cmocka_run_group_tests(pure, NULL, NULL);
	return rc | cmocka_run_group_tests(client, server_up, server_down);
}
