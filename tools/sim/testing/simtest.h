/* simtest.h — what the simulators' system tests share (test code only, header-only): spawn a
 * simulator on an ephemeral port, make HTTP requests with libcurl, stop it. */
#ifndef BATON_SIMTEST_H
#define BATON_SIMTEST_H

#include <curl/curl.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct simt_proc {
	pid_t pid;
	int port;
	char base[64]; /* "http://127.0.0.1:PORT" */
} simt_proc_t;

/* Starts bin with args (NULL-terminated, may be NULL) plus "--listen 127.0.0.1:0"; reads the
 * port from its first stdout line (bounded wait). Extra environment: "K=V" pairs or NULL.
 * Returns 0 or -1. */
static inline int simt_start(simt_proc_t *p, const char *bin, const char *const *args,
			     const char *const *env)
{
	int fd[2];
	char line[256];
	size_t len = 0;

	memset(p, 0, sizeof(*p));
	if (pipe(fd) != 0)
		return -1;
	p->pid = fork();
	if (p->pid < 0)
		return -1;
	if (p->pid == 0) {
		const char *argv[64];
		int n = 0;
		dup2(fd[1], 1);
		close(fd[0]);
		close(fd[1]);
		for (const char *const *e = env; e && *e; e++)
			putenv((char *)*e);
		argv[n++] = bin;
		argv[n++] = "--listen";
		argv[n++] = "127.0.0.1:0";
		for (const char *const *a = args; a && *a && n < 62; a++)
			argv[n++] = *a;
		argv[n] = NULL;
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	close(fd[1]);
	while (len < sizeof(line) - 1) {
		struct pollfd pf = {fd[0], POLLIN, 0};
		ssize_t got;
		if (poll(&pf, 1, 20000) <= 0)
			break;
		got = read(fd[0], line + len, 1);
		if (got <= 0)
			break;
		if (line[len] == '\n')
			break;
		len++;
	}
	line[len] = '\0';
	close(fd[0]); /* later stdout writes get EPIPE, which the simulators ignore */
	if (sscanf(line, "listening on 127.0.0.1:%d", &p->port) != 1) {
		fprintf(stderr, "simulator %s did not start: '%s'\n", bin, line);
		kill(p->pid, SIGKILL);
		waitpid(p->pid, NULL, 0);
		return -1;
	}
	snprintf(p->base, sizeof(p->base), "http://127.0.0.1:%d", p->port);
	return 0;
}

/* SIGTERM, then a bounded wait; returns the exit status (or -1 if it had to be killed). */
static inline int simt_stop(simt_proc_t *p)
{
	int st = 0;

	if (p->pid <= 0)
		return -1;
	kill(p->pid, SIGTERM);
	for (int i = 0; i < 200; i++) {
		if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
			p->pid = 0;
			return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
		}
		usleep(50 * 1000);
	}
	kill(p->pid, SIGKILL);
	waitpid(p->pid, NULL, 0);
	p->pid = 0;
	return -1;
}

typedef struct simt_resp {
	CURLcode rc;
	long status;
	char body[1 << 16];
	size_t len;
	char headers[4096];
	size_t hlen;
	double seconds;
} simt_resp_t;

static inline size_t simt_write_(char *d, size_t sz, size_t n, void *ud)
{
	simt_resp_t *r = ud;
	size_t len = sz * n, take = len;

	if (take > sizeof(r->body) - 1 - r->len)
		take = sizeof(r->body) - 1 - r->len;
	memcpy(r->body + r->len, d, take);
	r->len += take;
	r->body[r->len] = '\0';
	return len;
}

static inline size_t simt_header_(char *d, size_t sz, size_t n, void *ud)
{
	simt_resp_t *r = ud;
	size_t len = sz * n, take = len;

	if (take > sizeof(r->headers) - 1 - r->hlen)
		take = sizeof(r->headers) - 1 - r->hlen;
	memcpy(r->headers + r->hlen, d, take);
	r->hlen += take;
	r->headers[r->hlen] = '\0';
	return len;
}

/* One request. headers: NULL-terminated "Name: value" list or NULL. timeout_ms 0 = 10 s.
 * r is heap-sized (64 KiB body); the caller owns it. */
static inline CURLcode simt_req(const simt_proc_t *p, const char *method, const char *path,
				const char *body, const char *const *headers, long timeout_ms,
				simt_resp_t *r)
{
	char url[1024];
	struct curl_slist *h = NULL;
	CURL *c = curl_easy_init();

	memset(r, 0, sizeof(*r));
	snprintf(url, sizeof(url), "%s%s", p->base, path);
	h = curl_slist_append(h, "Content-Type: application/json");
	for (const char *const *x = headers; x && *x; x++)
		h = curl_slist_append(h, *x);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms ? timeout_ms : 10000L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, simt_write_);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, simt_header_);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	if (body)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	r->rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	curl_easy_getinfo(c, CURLINFO_TOTAL_TIME, &r->seconds);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return r->rc;
}

/* Value of response header name (case-insensitive) copied into out; NULL when absent. */
static inline const char *simt_header(const simt_resp_t *r, const char *name, char *out,
				      size_t len)
{
	size_t nl = strlen(name);

	for (const char *l = r->headers; l && *l;) {
		const char *eol = strstr(l, "\r\n");
		if (!strncasecmp(l, name, nl) && l[nl] == ':') {
			const char *v = l + nl + 1;
			size_t vl;
			while (*v == ' ')
				v++;
			vl = eol ? (size_t)(eol - v) : strlen(v);
			if (vl >= len)
				vl = len - 1;
			memcpy(out, v, vl);
			out[vl] = '\0';
			return out;
		}
		l = eol ? eol + 2 : NULL;
	}
	return NULL;
}

#endif
