/* config.c — environment + BATON_CONFIG file; see baton/config.h. */
#include "baton/config.h"

#include <amqp.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <mongoc/mongoc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define SHOW_MAX 200 /* longest value quoted back in an error line */

typedef struct loader {
	baton_getenv_fn get;
	char *errs; /* malloc'd, grows */
	size_t len;
	int n;
	int oom;
} loader_t;

static const char *sys_getenv(const char *name)
{
	return getenv(name);
}

/* Value of a variable; NULL when unset or empty. */
static const char *env(loader_t *ld, const char *name)
{
	const char *v = ld->get(name);
	return v && *v ? v : NULL;
}

static void add_line(loader_t *ld, const char *line)
{
	size_t n = strlen(line);
	char *p = realloc(ld->errs, ld->len + n + 2);

	ld->n++;
	if (!p) {
		ld->oom = 1;
		return;
	}
	ld->errs = p;
	memcpy(p + ld->len, line, n);
	p[ld->len + n] = '\n';
	ld->len += n + 1;
	p[ld->len] = '\0';
}

/* The value as shown in an error: secrets redacted when it is a URL, non-printable bytes as
 * \xNN, quotes escaped, long values cut. */
static void show_value(const char *v, int is_url, char *out, size_t outlen)
{
	char red[SHOW_MAX * 2 + 8];
	size_t o = 0;

	if (is_url)
		baton_log_redact_url(v, red, sizeof(red));
	else
		snprintf(red, sizeof(red), "%s", v);
	for (size_t i = 0; red[i] && o + 8 < outlen; i++) {
		unsigned char c = (unsigned char)red[i];
		if (i >= SHOW_MAX) {
			o += (size_t)snprintf(out + o, outlen - o, "...");
			break;
		}
		if (c == '"' || c == '\\')
			o += (size_t)snprintf(out + o, outlen - o, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", c);
		else
			out[o++] = (char)c;
	}
	out[o] = '\0';
}

/* One problem: NAME="value": what is expected (value NULL: "NAME is not set: ..."). */
static void problem(loader_t *ld, const char *name, const char *value, int is_url, const char *fmt,
		    ...) __attribute__((format(printf, 5, 6)));
static void problem(loader_t *ld, const char *name, const char *value, int is_url, const char *fmt,
		    ...)
{
	char shown[SHOW_MAX * 5 + 16], what[512], line[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (value) {
		show_value(value, is_url, shown, sizeof(shown));
		snprintf(line, sizeof(line), "%s=\"%s\": %s", name, shown, what);
	} else {
		snprintf(line, sizeof(line), "%s is not set: %s", name, what);
	}
	add_line(ld, line);
}

static char *dup_or_oom(loader_t *ld, const char *s)
{
	char *d = s ? strdup(s) : NULL;
	if (s && !d)
		ld->oom = 1;
	return d;
}

/* Decimal digits only (no sign, no spaces), overflow-safe. */
static int parse_uint(const char *s, unsigned long long max, unsigned long long *out)
{
	unsigned long long v = 0;

	if (!*s)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		unsigned d = (unsigned)(*s - '0');
		if (v > (max - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

int baton_duration_parse(const char *s, unsigned *ms)
{
	static const struct {
		const char *unit;
		unsigned long long mult;
	} units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
	char num[24];
	size_t nd;
	unsigned long long v;

	if (!s)
		return -1;
	nd = strspn(s, "0123456789");
	if (nd == 0 || nd >= sizeof(num))
		return -1;
	memcpy(num, s, nd);
	num[nd] = '\0';
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(s + nd, units[i].unit) != 0)
			continue;
		if (parse_uint(num, UINT_MAX / units[i].mult, &v) != 0)
			return -1;
		*ms = (unsigned)(v * units[i].mult);
		return 0;
	}
	return -1;
}

static void fmt_ms(unsigned ms, char *out, size_t len)
{
	if (ms && ms % 3600000 == 0)
		snprintf(out, len, "%uh", ms / 3600000);
	else if (ms && ms % 60000 == 0)
		snprintf(out, len, "%um", ms / 60000);
	else if (ms && ms % 1000 == 0)
		snprintf(out, len, "%us", ms / 1000);
	else
		snprintf(out, len, "%ums", ms);
}

int baton_config_parse_tiers(const char *s, unsigned *tiers_ms, size_t max, size_t *n, char *why,
			     size_t whylen)
{
	char item[32], a[24], b[24];
	size_t count = 0;
	const char *p = s;

	if (!s || !*s) {
		snprintf(why, whylen, "empty list");
		return -1;
	}
	for (;;) {
		while (*p == ' ')
			p++;
		size_t len = strcspn(p, ",");
		size_t tl = len;
		while (tl > 0 && p[tl - 1] == ' ')
			tl--;
		if (tl == 0 || tl >= sizeof(item)) {
			snprintf(why, whylen, "tier %zu is %s", count + 1,
				 tl ? "too long" : "empty");
			return -1;
		}
		memcpy(item, p, tl);
		item[tl] = '\0';
		if (count == max) {
			snprintf(why, whylen, "more than %zu tiers", max);
			return -1;
		}
		if (baton_duration_parse(item, &tiers_ms[count]) != 0 || tiers_ms[count] == 0) {
			snprintf(why, whylen, "tier %zu (%s) is not a non-zero duration", count + 1,
				 item);
			return -1;
		}
		if (count > 0 && tiers_ms[count] <= tiers_ms[count - 1]) {
			fmt_ms(tiers_ms[count], a, sizeof(a));
			fmt_ms(tiers_ms[count - 1], b, sizeof(b));
			snprintf(why, whylen, "tier %zu (%s) is not longer than tier %zu (%s)",
				 count + 1, a, count, b);
			return -1;
		}
		count++;
		p += len;
		if (!*p)
			break;
		p++;
	}
	*n = count;
	return 0;
}

/* --- one helper per kind of variable ------------------------------------------------------- */

static void get_uint(loader_t *ld, const char *name, unsigned def, unsigned min, unsigned max,
		     unsigned *out)
{
	const char *v = env(ld, name);
	unsigned long long x;

	*out = def;
	if (!v)
		return;
	if (parse_uint(v, ULLONG_MAX / 10, &x) != 0 || x < min || x > max) {
		problem(ld, name, v, 0, "expected a whole number from %u to %u", min, max);
		return;
	}
	*out = (unsigned)x;
}

static void get_duration(loader_t *ld, const char *name, unsigned def, unsigned min, unsigned max,
			 unsigned *out)
{
	const char *v = env(ld, name);
	char lo[24], hi[24];
	unsigned ms;

	*out = def;
	if (!v)
		return;
	if (baton_duration_parse(v, &ms) != 0 || ms < min || ms > max) {
		fmt_ms(min, lo, sizeof(lo));
		fmt_ms(max, hi, sizeof(hi));
		problem(ld, name, v, 0,
			"expected a duration from %s to %s with a unit (ms, s, m, h), e.g. \"30s\"",
			lo, hi);
		return;
	}
	*out = ms;
}

static int has_prefix_ci(const char *s, const char *prefix)
{
	return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

static void get_http_url(loader_t *ld, const char *name, char **out)
{
	const char *v = env(ld, name), *host;

	*out = NULL;
	if (!v)
		return;
	host = has_prefix_ci(v, "http://") ? v + 7 : has_prefix_ci(v, "https://") ? v + 8 : NULL;
	if (!host || !*host || strchr("/?#:@", *host)) {
		problem(ld, name, v, 1, "expected an http:// or https:// URL with a host");
		return;
	}
	*out = dup_or_oom(ld, v);
}

static void get_amqp_url(loader_t *ld, baton_config_t *cfg)
{
	const char *v = env(ld, "BATON_AMQP_URL");
	struct amqp_connection_info info;
	char *copy;

	if (!v) {
		problem(ld, "BATON_AMQP_URL", NULL, 1,
			"required, e.g. amqp://user:password@rabbitmq:5672/%%2f");
		return;
	}
	copy = strdup(v);
	if (!copy) {
		ld->oom = 1;
		return;
	}
	/* amqp_parse_url cuts the string it parses: give it a copy */
	if (amqp_parse_url(copy, &info) != AMQP_STATUS_OK)
		problem(ld, "BATON_AMQP_URL", v, 1,
			"expected amqp://user:password@host:port/vhost (or amqps://), "
			"vhost percent-encoded (%%2f for \"/\")");
	else
		cfg->amqp_url = dup_or_oom(ld, v);
	free(copy);
}

static void get_mongo_uri(loader_t *ld, baton_config_t *cfg)
{
	const char *v = env(ld, "BATON_MONGO_URI");
	bson_error_t err;
	mongoc_uri_t *uri;

	if (!v) {
		problem(ld, "BATON_MONGO_URI", NULL, 1, "required, e.g. mongodb://host:27017/");
		return;
	}
	if (!has_prefix_ci(v, "mongodb://") && !has_prefix_ci(v, "mongodb+srv://")) {
		problem(ld, "BATON_MONGO_URI", v, 1,
			"expected a URI starting with mongodb:// or mongodb+srv://");
		return;
	}
	/* the common mistake, checked here so libmongoc does not log it on stderr as well */
	const char *hosts = strstr(v, "://") + 3, *at;
	size_t auth = strcspn(hosts, "/?");
	at = memchr(hosts, '@', auth);
	if (at)
		auth -= (size_t)(at + 1 - hosts);
	if (auth == 0) {
		problem(ld, "BATON_MONGO_URI", v, 1, "no host in the URI; expected e.g. "
			"mongodb://host:27017/");
		return;
	}
	mongoc_init(); /* idempotent */
	uri = mongoc_uri_new_with_error(v, &err);
	if (!uri) {
		problem(ld, "BATON_MONGO_URI", v, 1, "not a valid MongoDB URI: %s", err.message);
		return;
	}
	mongoc_uri_destroy(uri);
	cfg->mongo_uri = dup_or_oom(ld, v);
}

/* MongoDB database names: 1..63 bytes, none of / \ . " $ * < > : | ? space. */
static void get_mongo_db(loader_t *ld, baton_config_t *cfg)
{
	const char *v = env(ld, "BATON_MONGO_DB");

	if (v && (strlen(v) > 63 || v[strcspn(v, "/\\.\"$*<>:|? ")] != '\0')) {
		problem(ld, "BATON_MONGO_DB", v, 0,
			"expected a database name of 1 to 63 characters without "
			"/ \\ . \" $ * < > : | ? or spaces");
		return;
	}
	cfg->mongo_db = dup_or_oom(ld, v ? v : "baton");
}

static int valid_worker_id(const char *s)
{
	size_t n = strlen(s);
	return n >= 1 && n <= 64 &&
	       strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

/* <hostname>-<pid>, with characters outside the allowed set replaced and the host cut so that the
 * whole id fits in 64. */
static void default_worker_id(char *out, size_t len)
{
	char host[256] = "", pid[24];
	size_t hl;

	if (gethostname(host, sizeof(host) - 1) != 0 || !host[0])
		snprintf(host, sizeof(host), "worker");
	host[sizeof(host) - 1] = '\0';
	for (char *c = host; *c; c++)
		if (!isalnum((unsigned char)*c) && *c != '.' && *c != '_' && *c != '-')
			*c = '-';
	snprintf(pid, sizeof(pid), "-%ld", (long)getpid());
	hl = strlen(host);
	if (hl + strlen(pid) > 64)
		hl = 64 - strlen(pid);
	snprintf(out, len, "%.*s%s", (int)hl, host, pid);
}

static void get_worker_id(loader_t *ld, baton_config_t *cfg)
{
	const char *v = env(ld, "BATON_WORKER_ID");
	char def[96];

	if (v && !valid_worker_id(v)) {
		problem(ld, "BATON_WORKER_ID", v, 0,
			"expected 1 to 64 characters from A-Z a-z 0-9 . _ -");
		return;
	}
	if (!v) {
		default_worker_id(def, sizeof(def));
		v = def;
	}
	cfg->worker_id = dup_or_oom(ld, v);
}

/* host:port (host may be [v6]); port 0..65535, 0 meaning "any free port". */
static void get_metrics_addr(loader_t *ld, baton_config_t *cfg)
{
	const char *v = env(ld, "BATON_METRICS_ADDR"), *colon;
	unsigned long long port;

	if (v && strcmp(v, "off") == 0)
		return;
	if (!v) {
		cfg->metrics_addr = dup_or_oom(ld, "127.0.0.1:9464");
		return;
	}
	colon = strrchr(v, ':');
	if (!colon || colon == v || parse_uint(colon + 1, 65535, &port) != 0 ||
	    (v[0] == '[' && colon[-1] != ']') ||
	    (v[0] != '[' && memchr(v, ':', (size_t)(colon - v)))) {
		problem(ld, "BATON_METRICS_ADDR", v, 0,
			"expected host:port (port 0 to 65535, 0 = any free port) or \"off\"");
		return;
	}
	cfg->metrics_addr = dup_or_oom(ld, v);
}

static void get_tiers(loader_t *ld, baton_config_t *cfg)
{
	const char *v = env(ld, "BATON_RETRY_TIERS");
	char why[160];

	if (baton_config_parse_tiers(v ? v : "5s,30s,5m,30m", cfg->retry_tiers_ms,
				     BATON_MAX_RETRY_TIERS, &cfg->n_retry_tiers, why,
				     sizeof(why)) != 0) {
		problem(ld, "BATON_RETRY_TIERS", v, 0,
			"%s; expected 1 to %d strictly increasing durations separated by commas, "
			"e.g. \"5s,30s,5m,30m\"",
			why, BATON_MAX_RETRY_TIERS);
		cfg->n_retry_tiers = 0;
	}
}

static void get_heartbeat(loader_t *ld, baton_config_t *cfg)
{
	const char *v = env(ld, "BATON_HEARTBEAT");
	unsigned long long s;
	unsigned ms;

	cfg->heartbeat_s = 30;
	if (!v)
		return;
	if (parse_uint(v, 3600, &s) == 0) {
		cfg->heartbeat_s = (unsigned)s;
	} else if (baton_duration_parse(v, &ms) == 0 && ms % 1000 == 0 && ms <= 3600000) {
		cfg->heartbeat_s = ms / 1000;
	} else {
		problem(ld, "BATON_HEARTBEAT", v, 0,
			"expected whole seconds from 0 (disabled) to 3600, e.g. \"30\" or \"30s\"");
	}
}

static void get_log_level(loader_t *ld, baton_config_t *cfg)
{
	const char *v = env(ld, "BATON_LOG_LEVEL");

	cfg->log_level = BATON_LOG_INFO;
	if (v && baton_log_level_parse(v, &cfg->log_level) != 0)
		problem(ld, "BATON_LOG_LEVEL", v, 0, "expected one of debug, info, warn, error");
}

static void get_file(loader_t *ld, baton_config_t *cfg)
{
	const char *v = env(ld, "BATON_CONFIG");
	json_error_t jerr;
	json_t *j;

	if (!v)
		return;
	cfg->config_path = dup_or_oom(ld, v);
	j = json_load_file(v, JSON_REJECT_DUPLICATES, &jerr);
	if (!j) {
		if (jerr.line < 0)
			problem(ld, "BATON_CONFIG", v, 0, "cannot read the file (%s)", jerr.text);
		else
			problem(ld, "BATON_CONFIG", v, 0,
				"not valid JSON at line %d, column %d: %s; expected a JSON object",
				jerr.line, jerr.column, jerr.text);
		return;
	}
	if (!json_is_object(j)) {
		static const char *const kinds[] = {"an object", "an array", "a string",
						    "a number", "a number", "true",
						    "false",    "null"};
		problem(ld, "BATON_CONFIG", v, 0, "the file holds %s; expected a JSON object",
			kinds[json_typeof(j)]);
		json_decref(j);
		return;
	}
	cfg->file = j;
}

int baton_config_load(baton_config_t *cfg, const char *flow, baton_getenv_fn getenv_fn,
		      char **errors)
{
	loader_t ld = {.get = getenv_fn ? getenv_fn : sys_getenv};

	memset(cfg, 0, sizeof(*cfg));
	if (errors)
		*errors = NULL;
	cfg->flow = dup_or_oom(&ld, flow ? flow : "");
	get_amqp_url(&ld, cfg);
	get_mongo_uri(&ld, cfg);
	get_mongo_db(&ld, cfg);
	get_http_url(&ld, "BATON_ERP_URL", &cfg->erp_url);
	get_http_url(&ld, "BATON_STOREFRONT_URL", &cfg->storefront_url);
	get_http_url(&ld, "BATON_RABBITMQ_MGMT_URL", &cfg->mgmt_url);
	get_file(&ld, cfg);
	get_uint(&ld, "BATON_PREFETCH", 64, 1, 65535, &cfg->prefetch);
	get_log_level(&ld, cfg);
	get_metrics_addr(&ld, cfg);
	get_worker_id(&ld, cfg);
	get_tiers(&ld, cfg);
	get_uint(&ld, "BATON_DELIVERY_LIMIT", 10, 2, 1000, &cfg->delivery_limit);
	get_duration(&ld, "BATON_SHUTDOWN_GRACE", 30000, 0, 3600000, &cfg->shutdown_grace_ms);
	get_duration(&ld, "BATON_HTTP_CONNECT_TIMEOUT", 5000, 1, 600000,
		     &cfg->http_connect_timeout_ms);
	get_duration(&ld, "BATON_HTTP_TIMEOUT", 30000, 1, 3600000, &cfg->http_timeout_ms);
	get_uint(&ld, "BATON_HTTP_MAX_HOST_CONNS", 16, 1, 1024, &cfg->http_max_host_conns);
	get_uint(&ld, "BATON_MONGO_POOL", 8, 1, 64, &cfg->mongo_pool_size);
	get_heartbeat(&ld, cfg);
	get_uint(&ld, "BATON_AUDIT_BATCH", 100, 1, 10000, &cfg->audit_batch);
	get_duration(&ld, "BATON_AUDIT_FLUSH", 200, 1, 60000, &cfg->audit_flush_ms);

	if (ld.oom)
		add_line(&ld, "out of memory while reading the configuration");
	if (ld.n == 0 && !ld.oom)
		return 0;
	baton_config_free(cfg);
	if (errors)
		*errors = ld.errs ? ld.errs
				  : strdup("out of memory while reading the configuration\n");
	else
		free(ld.errs);
	return -1;
}

void baton_config_free(baton_config_t *cfg)
{
	if (!cfg)
		return;
	free(cfg->flow);
	free(cfg->amqp_url);
	free(cfg->mongo_uri);
	free(cfg->mongo_db);
	free(cfg->erp_url);
	free(cfg->storefront_url);
	free(cfg->mgmt_url);
	free(cfg->config_path);
	json_decref(cfg->file);
	free(cfg->metrics_addr);
	free(cfg->worker_id);
	memset(cfg, 0, sizeof(*cfg));
}
