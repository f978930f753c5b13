/* faults.c — fault rules: parsing, matching and the seeded decision for one request. */
#include "sim.h"

#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const kind_names[] = {
	[SIM_FAULT_NONE] = "none",	   [SIM_FAULT_LATENCY] = "latency",
	[SIM_FAULT_ERROR] = "error",	   [SIM_FAULT_STATUS] = "status",
	[SIM_FAULT_TIMEOUT] = "timeout",   [SIM_FAULT_MALFORMED] = "malformed",
	[SIM_FAULT_RESET] = "reset",	   [SIM_FAULT_OUTAGE] = "outage",
};

const char *sim_fault_kind_name(enum sim_fault_kind k)
{
	if ((unsigned)k < sizeof(kind_names) / sizeof(kind_names[0]))
		return kind_names[k];
	return "?";
}

void sim_faults_clear(sim_faults_t *f)
{
	for (size_t i = 0; i < f->n; i++)
		json_decref(f->rules[i].body);
	free(f->rules);
	f->rules = NULL;
	f->n = 0;
}

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

static int num(const json_t *o, const char *key, double lo, double hi, double *out, char *err,
	       size_t errlen, size_t idx)
{
	json_t *v = json_object_get(o, key);

	if (!v)
		return 0;
	if (!json_is_number(v))
		return fail(err, errlen, "rules[%zu].%s must be a number", idx, key);
	*out = json_number_value(v);
	if (*out < lo || *out > hi)
		return fail(err, errlen, "rules[%zu].%s must be within [%g, %g]", idx, key, lo, hi);
	return 0;
}

/* "POST /api/x*" or "/api/x*" (any method). */
static int parse_route(sim_fault_rule_t *r, const char *route, char *err, size_t errlen,
		       size_t idx)
{
	const char *sp = strchr(route, ' ');

	if (sp) {
		size_t ml = (size_t)(sp - route);
		if (ml == 0 || ml >= sizeof(r->method))
			return fail(err, errlen, "rules[%zu].route has a bad method", idx);
		memcpy(r->method, route, ml);
		r->method[ml] = '\0';
		route = sp + 1;
	} else {
		strcpy(r->method, "*");
	}
	if (!*route || strlen(route) >= sizeof(r->pattern))
		return fail(err, errlen, "rules[%zu].route has a bad path pattern", idx);
	strcpy(r->pattern, route);
	return 0;
}

static int parse_rule(sim_fault_rule_t *r, const json_t *j, uint64_t seed, size_t idx, char *err,
		      size_t errlen)
{
	const char *route = json_string_value(json_object_get(j, "route"));
	const char *kind = json_string_value(json_object_get(j, "kind"));
	double v;
	size_t k;

	if (!json_is_object(j))
		return fail(err, errlen, "rules[%zu] must be an object", idx);
	if (!kind)
		return fail(err, errlen, "rules[%zu].kind is required", idx);
	for (k = 1; k < sizeof(kind_names) / sizeof(kind_names[0]); k++)
		if (strcmp(kind, kind_names[k]) == 0)
			break;
	if (k == sizeof(kind_names) / sizeof(kind_names[0]))
		return fail(err, errlen, "rules[%zu].kind '%s' is unknown", idx, kind);
	r->kind = (enum sim_fault_kind)k;
	if (parse_route(r, route ? route : "*", err, errlen, idx))
		return -1;
	r->share = 1.0;
	if (num(j, "share", 0, 1, &r->share, err, errlen, idx))
		return -1;
	v = 0;
	if (num(j, "limit", 0, 1e15, &v, err, errlen, idx))
		return -1;
	r->limit = (uint64_t)v;
	v = 0;
	if (num(j, "ms", 0, 3600e3, &v, err, errlen, idx))
		return -1;
	r->latency_ms = (int)v;
	v = 0;
	if (num(j, "jitter_ms", 0, 3600e3, &v, err, errlen, idx))
		return -1;
	r->jitter_ms = (int)v;
	if (r->kind == SIM_FAULT_LATENCY && r->latency_ms == 0 && r->jitter_ms == 0)
		return fail(err, errlen, "rules[%zu]: latency needs ms or jitter_ms", idx);
	v = r->kind == SIM_FAULT_ERROR ? 503 : 0;
	if (num(j, "status", 100, 599, &v, err, errlen, idx))
		return -1;
	r->status = (int)v;
	if (r->kind == SIM_FAULT_ERROR && r->status < 500)
		return fail(err, errlen, "rules[%zu]: error needs a 5xx status", idx);
	if (r->kind == SIM_FAULT_STATUS && r->status == 0)
		return fail(err, errlen, "rules[%zu]: status needs a status", idx);
	r->body = json_incref(json_object_get(j, "body"));
	r->seconds = 30;
	if (num(j, "seconds", 0, 3600, &r->seconds, err, errlen, idx))
		return -1;
	r->start_s = 0;
	r->end_s = 1e12;
	if (num(j, "start_s", 0, 1e12, &r->start_s, err, errlen, idx) ||
	    num(j, "end_s", 0, 1e12, &r->end_s, err, errlen, idx))
		return -1;
	if (r->kind == SIM_FAULT_OUTAGE) {
		const char *mode = json_string_value(json_object_get(j, "mode"));
		if (mode && strcmp(mode, "reset") != 0 && strcmp(mode, "503") != 0)
			return fail(err, errlen, "rules[%zu].mode must be \"503\" or \"reset\"", idx);
		r->outage_reset = mode && strcmp(mode, "reset") == 0;
		if (!json_object_get(j, "end_s"))
			return fail(err, errlen, "rules[%zu]: outage needs end_s", idx);
	}
	r->seed = seed ^ ((uint64_t)(idx + 1) * 0x9e3779b97f4a7c15ULL);
	if (json_is_integer(json_object_get(j, "seed")))
		r->seed = (uint64_t)json_integer_value(json_object_get(j, "seed"));
	sim_rng_seed(&r->rng, r->seed);
	return 0;
}

int sim_faults_parse(sim_faults_t *f, const json_t *spec, uint64_t default_seed, double now,
		     char *err, size_t errlen)
{
	const json_t *rules = json_object_get(spec, "rules");
	json_t *js = json_object_get(spec, "seed");
	uint64_t seed = default_seed;
	sim_fault_rule_t *arr = NULL;
	size_t n;

	sim_faults_clear(f);
	if (!json_is_object(spec))
		return fail(err, errlen, "faults must be a JSON object {\"seed\":N,\"rules\":[...]}");
	if (js && !json_is_integer(js))
		return fail(err, errlen, "seed must be an integer");
	if (js)
		seed = (uint64_t)json_integer_value(js);
	if (rules && !json_is_array(rules))
		return fail(err, errlen, "rules must be an array");
	n = json_array_size(rules);
	if (n) {
		arr = calloc(n, sizeof(*arr));
		if (!arr)
			return fail(err, errlen, "out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		if (parse_rule(&arr[i], json_array_get(rules, i), seed, i, err, errlen)) {
			sim_faults_t tmp = {arr, i + 1, 0, 0};
			sim_faults_clear(&tmp);
			return -1;
		}
	}
	f->rules = arr;
	f->n = n;
	f->seed = seed;
	f->t0 = now;
	return 0;
}

static bool matches(const sim_fault_rule_t *r, const char *method, const char *path)
{
	if (strcmp(r->method, "*") != 0 && strcasecmp(r->method, method) != 0)
		return false;
	return fnmatch(r->pattern, path, 0) == 0;
}

void sim_faults_decide(sim_faults_t *f, const char *method, const char *path, double now,
		       sim_fault_decision_t *d)
{
	memset(d, 0, sizeof(*d));
	d->rule = -1;
	for (size_t i = 0; i < f->n; i++) {
		sim_fault_rule_t *r = &f->rules[i];
		double off = now - f->t0;
		bool hit;

		if (!matches(r, method, path))
			continue;
		r->matched++;
		if (r->kind == SIM_FAULT_OUTAGE) {
			hit = off >= r->start_s && off < r->end_s;
		} else {
			/* Draw even when another rule already decided, so that this rule's
			 * sequence depends only on the requests it matches. */
			hit = sim_rng_uniform(&r->rng) < r->share;
			if (r->limit && r->hit >= r->limit)
				hit = false;
		}
		if (!hit)
			continue;
		if (r->kind == SIM_FAULT_LATENCY) {
			int extra = r->jitter_ms ? (int)sim_rng_range(&r->rng, 0, r->jitter_ms) : 0;
			r->hit++;
			d->latency_ms += r->latency_ms + extra;
			continue;
		}
		if (d->kind != SIM_FAULT_NONE)
			continue;
		r->hit++;
		d->kind = r->kind;
		d->rule = (int)i;
		d->status = r->status;
		d->body = r->body;
		d->seconds = r->seconds;
		if (r->kind == SIM_FAULT_OUTAGE) {
			d->kind = r->outage_reset ? SIM_FAULT_RESET : SIM_FAULT_ERROR;
			d->status = 503;
		}
	}
}

json_t *sim_faults_to_json(const sim_faults_t *f, double now)
{
	json_t *rules = json_array();

	for (size_t i = 0; i < f->n; i++) {
		const sim_fault_rule_t *r = &f->rules[i];
		json_t *o = json_object();
		char route[300];

		snprintf(route, sizeof(route), "%s %s", r->method, r->pattern);
		json_object_set_new(o, "route", json_string(route));
		json_object_set_new(o, "kind", json_string(sim_fault_kind_name(r->kind)));
		json_object_set_new(o, "share", json_real(r->share));
		if (r->limit)
			json_object_set_new(o, "limit", json_integer((json_int_t)r->limit));
		switch (r->kind) {
		case SIM_FAULT_LATENCY:
			json_object_set_new(o, "ms", json_integer(r->latency_ms));
			json_object_set_new(o, "jitter_ms", json_integer(r->jitter_ms));
			break;
		case SIM_FAULT_ERROR:
		case SIM_FAULT_STATUS:
			json_object_set_new(o, "status", json_integer(r->status));
			if (r->body)
				json_object_set(o, "body", r->body);
			break;
		case SIM_FAULT_TIMEOUT:
			json_object_set_new(o, "seconds", json_real(r->seconds));
			break;
		case SIM_FAULT_OUTAGE:
			json_object_set_new(o, "start_s", json_real(r->start_s));
			json_object_set_new(o, "end_s", json_real(r->end_s));
			json_object_set_new(o, "mode", json_string(r->outage_reset ? "reset" : "503"));
			break;
		default:
			break;
		}
		json_object_set_new(o, "seed", json_integer((json_int_t)r->seed));
		json_object_set_new(o, "matched", json_integer((json_int_t)r->matched));
		json_object_set_new(o, "hit", json_integer((json_int_t)r->hit));
		json_array_append_new(rules, o);
	}
	return json_pack("{s:I, s:f, s:o}", "seed", (json_int_t)f->seed, "installed_s_ago",
			 now - f->t0, "rules", rules);
}
