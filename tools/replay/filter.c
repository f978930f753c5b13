/* filter.c — selection of parked messages. See filter.h. */
#define _GNU_SOURCE
#include "filter.h"

#include <ctype.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const classes[] = {"transient", "permanent", "exhausted", "poison", NULL};

void rp_filter_init(rp_filter_t *f)
{
	memset(f, 0, sizeof(*f));
	f->since_ms = f->until_ms = -1;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (no timegm: not in C11). */
static int64_t days_from_civil(int y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int parse_age(const char *s, int64_t now_ms, int64_t *out)
{
	char *end;
	long long n = strtoll(s, &end, 10);
	int64_t unit;

	if (end == s || n < 0 || !end[0] || end[1])
		return -1;
	switch (end[0]) {
	case 's': unit = 1000; break;
	case 'm': unit = 60000; break;
	case 'h': unit = 3600000; break;
	case 'd': unit = 86400000; break;
	default: return -1;
	}
	if (n > 100000LL * 365)
		return -1;
	*out = now_ms - n * unit;
	return 0;
}

/* Parses the part after "HH:MM:SS": ".fff" then "Z" or "+hh:mm"/"-hh:mm". */
static int parse_tail(const char *p, int64_t *ms, int64_t *off_ms)
{
	*ms = 0;
	*off_ms = 0;
	if (*p == '.') {
		int digits = 0;
		for (p++; isdigit((unsigned char)*p); p++, digits++)
			if (digits < 3)
				*ms = *ms * 10 + (*p - '0');
		if (digits == 0)
			return -1;
		for (; digits < 3; digits++)
			*ms *= 10;
	}
	if ((*p == 'Z' || *p == 'z') && !p[1])
		return 0;
	if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
		int hh, mm;
		if (sscanf(p + 1, "%2d:%2d", &hh, &mm) != 2 || hh > 23 || mm > 59)
			return -1;
		*off_ms = (int64_t)(hh * 60 + mm) * 60000 * (*p == '+' ? 1 : -1);
		return 0;
	}
	return -1;
}

int rp_time_parse(const char *s, int64_t now_ms, int64_t *out_ms)
{
	int y, mo, d, h = 0, mi = 0, se = 0, n = 0;
	int64_t ms = 0, off = 0;

	if (!s || !*s)
		return -1;
	if (isdigit((unsigned char)s[0]) && strlen(s) < 12 && !strchr(s, '-'))
		return parse_age(s, now_ms, out_ms);
	if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || n != 10)
		return -1;
	if (s[10]) {
		int n2 = 0;
		if ((s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
		    sscanf(s + 11, "%2d:%2d:%2d%n", &h, &mi, &se, &n2) != 3 || n2 != 8 ||
		    parse_tail(s + 19, &ms, &off) != 0)
			return -1;
	}
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60)
		return -1;
	*out_ms = ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60000 + (int64_t)se * 1000 +
		  ms - off;
	return 0;
}

static int valid_glob(const char *v)
{
	if (!v[0] || strlen(v) > 200)
		return 0;
	for (const char *p = v; *p; p++)
		if ((unsigned char)*p < 0x20)
			return 0;
	return 1;
}

static int set_time(int64_t *dst, const char *opt, const char *val, int64_t now_ms, char *err,
		    size_t errlen)
{
	if (rp_time_parse(val, now_ms, dst) != 0) {
		snprintf(err, errlen,
			 "--%s \"%.60s\": expected RFC 3339 (2026-11-22T10:00:00Z), a date "
			 "(2026-11-22) or an age (90m, 2h, 3d)", opt, val);
		return -1;
	}
	return 0;
}

static int set_class(rp_filter_t *f, const char *val, char *err, size_t errlen)
{
	for (int i = 0; classes[i]; i++) {
		if (!strcmp(val, classes[i])) {
			f->cls = classes[i];
			return 0;
		}
	}
	snprintf(err, errlen, "--class \"%.60s\": expected transient, permanent, exhausted or poison",
		 val);
	return -1;
}

int rp_filter_set(rp_filter_t *f, const char *opt, const char *val, int64_t now_ms, char *err,
		  size_t errlen)
{
	if (!val || !val[0]) {
		snprintf(err, errlen, "--%s needs a value", opt);
		return -1;
	}
	if (!strcmp(opt, "class"))
		return set_class(f, val, err, errlen);
	if (!strcmp(opt, "since"))
		return set_time(&f->since_ms, opt, val, now_ms, err, errlen);
	if (!strcmp(opt, "until"))
		return set_time(&f->until_ms, opt, val, now_ms, err, errlen);
	if (!valid_glob(val)) {
		snprintf(err, errlen, "--%s: the value is empty, too long or has control characters",
			 opt);
		return -1;
	}
	if (!strcmp(opt, "flow")) {
		if (f->n_flows >= RP_MAX_FLOWS) {
			snprintf(err, errlen, "--flow: at most %d", RP_MAX_FLOWS);
			return -1;
		}
		f->flows[f->n_flows++] = val;
		return 0;
	}
	const char **dst = !strcmp(opt, "code")	   ? &f->code
			   : !strcmp(opt, "subject") ? &f->subject
			   : !strcmp(opt, "grep")    ? &f->grep
						     : NULL;
	if (!dst) {
		snprintf(err, errlen, "unknown filter --%s", opt);
		return -1;
	}
	*dst = val;
	return 0;
}

int rp_filter_add_id(rp_filter_t *f, const char *id, char *err, size_t errlen)
{
	if (!id[0] || strlen(id) >= sizeof(((rp_item_t *)0)->id)) {
		snprintf(err, errlen, "message id \"%.60s\": empty or too long", id);
		return -1;
	}
	if (f->n_ids >= RP_MAX_IDS) {
		snprintf(err, errlen, "at most %d ids at once; use a filter", RP_MAX_IDS);
		return -1;
	}
	f->ids[f->n_ids++] = id;
	return 0;
}

int rp_filter_has_criteria(const rp_filter_t *f)
{
	return f->n_flows || f->code || f->cls || f->subject || f->grep || f->since_ms >= 0 ||
	       f->until_ms >= 0;
}

int rp_filter_flow_ok(const rp_filter_t *f, const char *flow)
{
	if (!f->n_flows)
		return 1;
	for (size_t i = 0; i < f->n_flows; i++)
		if (fnmatch(f->flows[i], flow, 0) == 0)
			return 1;
	return 0;
}

static int ids_ok(const rp_filter_t *f, const char *id)
{
	if (!f->n_ids)
		return 1;
	for (size_t i = 0; i < f->n_ids; i++)
		if (!strcmp(f->ids[i], id))
			return 1;
	return 0;
}

int rp_filter_match(const rp_filter_t *f, const rp_item_t *it)
{
	if (!ids_ok(f, it->id) || !rp_filter_flow_ok(f, it->flow))
		return 0;
	if (f->code && fnmatch(f->code, it->code, 0) != 0)
		return 0;
	if (f->cls && strcmp(f->cls, it->cls) != 0)
		return 0;
	if (f->subject && fnmatch(f->subject, it->subject, 0) != 0)
		return 0;
	if (f->grep && !strcasestr(it->message, f->grep))
		return 0;
	/* A message without a readable failure time never passes a time filter. */
	if (f->since_ms >= 0 && (it->last_ms < 0 || it->last_ms < f->since_ms))
		return 0;
	if (f->until_ms >= 0 && (it->last_ms < 0 || it->last_ms > f->until_ms))
		return 0;
	return 1;
}
