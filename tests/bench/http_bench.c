/* http_bench.c — a small keep-alive HTTP/1.1 load client for the simulator benchmark (wrk is not
 * installed): C threads, one persistent connection each, GET one path in a closed loop for D
 * seconds. Prints {"requests","ok","errors","seconds","rps"} as JSON.
 *
 *   http_bench HOST PORT PATH [CONNECTIONS=4] [SECONDS=5] */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char *host, *path;
static int port;
static double seconds;
static atomic_long total_ok, total_err;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int dial(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	inet_pton(AF_INET, host, &sa.sin_addr);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Reads one response; returns its status or -1. */
static int read_response(int fd, char *buf, size_t cap)
{
	size_t len = 0;
	char *end = NULL, *cl;
	long body;
	int status;

	while (!end) {
		ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
		if (n <= 0)
			return -1;
		len += (size_t)n;
		buf[len] = '\0';
		end = strstr(buf, "\r\n\r\n");
	}
	if (sscanf(buf, "HTTP/1.1 %d", &status) != 1)
		return -1;
	cl = strcasestr(buf, "\r\nContent-Length:");
	body = cl ? strtol(cl + 17, NULL, 10) : 0;
	size_t have = len - (size_t)(end + 4 - buf);
	while ((long)have < body) {
		ssize_t n = recv(fd, buf, cap - 1, 0);
		if (n <= 0)
			return -1;
		have += (size_t)n;
	}
	return status;
}

static void *worker(void *arg __attribute__((unused)))
{
	char req[1024], buf[1 << 16];
	int fd = dial(), len;
	long ok = 0, err = 0;
	double until = now() + seconds;

	len = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s:%d\r\n\r\n", path, host, port);
	while (fd >= 0 && now() < until) {
		for (int i = 0; i < 64; i++) {
			if (send(fd, req, (size_t)len, MSG_NOSIGNAL) != len ||
			    read_response(fd, buf, sizeof(buf)) != 200) {
				err++;
				close(fd);
				fd = dial();
				break;
			}
			ok++;
		}
	}
	if (fd >= 0)
		close(fd);
	atomic_fetch_add(&total_ok, ok);
	atomic_fetch_add(&total_err, err);
	return NULL;
}

int main(int argc, char **argv)
{
	int conns;
	pthread_t th[256];
	double t0, el;

	if (argc < 4) {
		fprintf(stderr, "usage: http_bench HOST PORT PATH [CONNECTIONS] [SECONDS]\n");
		return 2;
	}
	host = argv[1];
	port = atoi(argv[2]);
	path = argv[3];
	conns = argc > 4 ? atoi(argv[4]) : 4;
	seconds = argc > 5 ? atof(argv[5]) : 5;
	if (conns < 1 || conns > 256)
		return 2;
	t0 = now();
	for (int i = 0; i < conns; i++)
		pthread_create(&th[i], NULL, worker, NULL);
	for (int i = 0; i < conns; i++)
		pthread_join(th[i], NULL);
	el = now() - t0;
	printf("{\"path\":\"%s\",\"connections\":%d,\"requests\":%ld,\"errors\":%ld,"
	       "\"seconds\":%.3f,\"rps\":%.0f}\n",
	       path, conns, atomic_load(&total_ok), atomic_load(&total_err), el,
	       (double)atomic_load(&total_ok) / el);
	return atomic_load(&total_err) ? 1 : 0;
}
