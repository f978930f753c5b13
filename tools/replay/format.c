/* format.c — tables, JSON and the progress bar. See format.h. */
#include <stdio.h>

#include "format.h"

#include <stdlib.h>
#include <string.h>

static size_t u8len(unsigned char c)
{
	return c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
}

/* Display columns of src (code points). */
static size_t u8cols(const char *s)
{
	size_t n = 0;
	for (; *s; n++) {
		size_t l = u8len((unsigned char)*s);
		for (size_t i = 0; i < l && *s; i++)
			s++;
	}
	return n;
}

char *rp_fit(char *dst, size_t dstlen, const char *src, size_t width, int pad)
{
	size_t out = 0, cols = 0, keep = width;
	const char *p = src ? src : "";

	if (!dstlen)
		return dst;
	if (u8cols(p) > width)
		keep = width ? width - 1 : 0; /* room for "…" */
	while (*p && cols < keep) {
		size_t l = u8len((unsigned char)*p);
		if (out + l + 4 >= dstlen)
			break;
		for (size_t i = 0; i < l && *p; i++, p++)
			dst[out++] = (l == 1 && ((unsigned char)*p < 0x20 || *p == 0x7F)) ? ' ' : *p;
		cols++;
	}
	if (*p && width && out + 4 < dstlen) {
		memcpy(dst + out, "\xE2\x80\xA6", 3);
		out += 3;
		cols++;
	}
	while (pad && cols < width && out + 1 < dstlen) {
		dst[out++] = ' ';
		cols++;
	}
	dst[out] = '\0';
	return dst;
}

char *rp_short_time(char *dst, size_t dstlen, const char *t)
{
	if (!t || strlen(t) < 19) {
		snprintf(dst, dstlen, "%s", t && t[0] ? t : "-");
		return dst;
	}
	snprintf(dst, dstlen, "%.10s %.8s", t, t + 11);
	return dst;
}

/* Column widths of the list table. */
enum { W_ID = 36, W_FLOW = 11, W_CODE = 22, W_ATT = 3, W_REP = 3, W_TIME = 19, W_SUBJ = 32 };

void rp_table_header(char *buf, size_t len)
{
	snprintf(buf, len, "%-*s  %-*s  %-*s  %*s  %*s  %-*s  %-*s  %s", W_ID, "ID", W_FLOW, "FLOW",
		 W_CODE, "CODE", W_ATT, "ATT", W_REP, "REP", W_TIME, "FIRST FAILURE", W_TIME,
		 "LAST FAILURE", "SUBJECT");
}

void rp_table_row(char *buf, size_t len, const rp_item_t *it)
{
	char id[4 * W_ID + 1], flow[4 * W_FLOW + 1], code[4 * W_CODE + 1], subj[4 * W_SUBJ + 1];
	char t1[40], t2[40];

	snprintf(buf, len, "%s  %s  %s  %*u  %*u  %-*s  %-*s  %s",
		 rp_fit(id, sizeof(id), it->id, W_ID, 1),
		 rp_fit(flow, sizeof(flow), it->flow, W_FLOW, 1),
		 rp_fit(code, sizeof(code), it->code[0] ? it->code : "-", W_CODE, 1), W_ATT,
		 it->attempts, W_REP, it->replays, W_TIME,
		 rp_short_time(t1, sizeof(t1), it->first_failed_at), W_TIME,
		 rp_short_time(t2, sizeof(t2), it->last_failed_at),
		 rp_fit(subj, sizeof(subj), it->subject[0] ? it->subject : "-", W_SUBJ, 0));
}

static void set_str(json_t *o, const char *k, const char *v)
{
	json_object_set_new(o, k, v && v[0] ? json_string(v) : json_null());
}

json_t *rp_item_json(const rp_item_t *it)
{
	json_t *o = json_object();

	if (!o)
		return NULL;
	set_str(o, "id", it->id);
	set_str(o, "flow", it->flow);
	set_str(o, "error_class", it->cls);
	set_str(o, "error_code", it->code);
	set_str(o, "error_message", it->message);
	json_object_set_new(o, "http_status",
			    it->http_status ? json_integer(it->http_status) : json_null());
	json_object_set_new(o, "attempts", json_integer(it->attempts));
	json_object_set_new(o, "replays", json_integer(it->replays));
	set_str(o, "first_failed_at", it->first_failed_at);
	set_str(o, "last_failed_at", it->last_failed_at);
	set_str(o, "subject", it->subject);
	set_str(o, "type", it->type);
	set_str(o, "correlation_id", it->correlation_id);
	set_str(o, "worker", it->worker);
	set_str(o, "original_exchange", it->orig_exchange);
	set_str(o, "original_routing_key", it->orig_routing_key);
	return o;
}

int rp_stats_add(rp_stats_t *s, const char *flow, const char *code)
{
	for (size_t i = 0; i < s->n; i++) {
		if (!strcmp(s->rows[i].flow, flow) && !strcmp(s->rows[i].code, code)) {
			s->rows[i].n++;
			s->total++;
			return 0;
		}
	}
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		rp_count_t *r = realloc(s->rows, cap * sizeof(*r));
		if (!r)
			return -1;
		s->rows = r;
		s->cap = cap;
	}
	rp_count_t *r = &s->rows[s->n++];
	snprintf(r->flow, sizeof(r->flow), "%s", flow);
	snprintf(r->code, sizeof(r->code), "%s", code);
	r->n = 1;
	s->total++;
	return 0;
}

static int cmp_count(const void *a, const void *b)
{
	const rp_count_t *x = a, *y = b;
	int c = strcmp(x->flow, y->flow);

	if (c)
		return c;
	if (x->n != y->n)
		return x->n > y->n ? -1 : 1;
	return strcmp(x->code, y->code);
}

void rp_stats_sort(rp_stats_t *s)
{
	if (s->n)
		qsort(s->rows, s->n, sizeof(*s->rows), cmp_count);
}

void rp_stats_free(rp_stats_t *s)
{
	free(s->rows);
	memset(s, 0, sizeof(*s));
}

static size_t flow_total(const rp_stats_t *s, const char *flow)
{
	size_t n = 0;
	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->rows[i].flow, flow))
			n += s->rows[i].n;
	return n;
}

void rp_stats_print(const rp_stats_t *s, FILE *out)
{
	char code[4 * 40 + 1];

	fprintf(out, "%-12s  %-40s  %8s\n", "FLOW", "CODE", "COUNT");
	for (size_t i = 0; i < s->n; i++) {
		const rp_count_t *r = &s->rows[i];
		if (i == 0 || strcmp(r->flow, s->rows[i - 1].flow))
			fprintf(out, "%-12s  %-40s  %8zu\n", r->flow, "(all)", flow_total(s, r->flow));
		fprintf(out, "%-12s  %s  %8zu\n", "",
			rp_fit(code, sizeof(code), r->code[0] ? r->code : "-", 40, 1), r->n);
	}
	fprintf(out, "%-12s  %-40s  %8zu\n", "total", "", s->total);
}

json_t *rp_stats_json(const rp_stats_t *s)
{
	json_t *flows = json_object(), *o;

	for (size_t i = 0; i < s->n; i++) {
		const rp_count_t *r = &s->rows[i];
		json_t *f = json_object_get(flows, r->flow);
		if (!f) {
			f = json_pack("{s:I, s:{}}", "total", (json_int_t)flow_total(s, r->flow),
				      "codes");
			json_object_set_new(flows, r->flow, f);
		}
		json_object_set_new(json_object_get(f, "codes"), r->code, json_integer((json_int_t)r->n));
	}
	o = json_pack("{s:I, s:o}", "total", (json_int_t)s->total, "flows", flows);
	return o;
}

void rp_progress(char *buf, size_t len, size_t done, size_t total, double rate, int bar_width)
{
	char bar[256];
	int w = bar_width < 1 ? 1 : bar_width > 200 ? 200 : bar_width;
	int fill = total ? (int)((double)done * w / (double)total) : w;
	unsigned pct = total ? (unsigned)(done * 100 / total) : 100;

	if (fill > w)
		fill = w;
	memset(bar, '#', (size_t)fill);
	memset(bar + fill, ' ', (size_t)(w - fill));
	bar[w] = '\0';
	snprintf(buf, len, "[%s] %zu/%zu %3u%% %.1f msg/s", bar, done, total, pct, rate);
}
