/* filter.h — which parked messages a command acts on (pure, unit-tested).
 *
 * Every criterion given must hold. Patterns (--code, --subject, --flow) are shell globs
 * (fnmatch), so "erp.*" or "order/SO-10*" work; --grep is a case-insensitive substring of the
 * error message; --since/--until compare the last failure time and take RFC 3339 ("2026-11-22T10:00:00Z"),
 * a date ("2026-11-22", midnight UTC) or an age ("90m", "2h", "3d": that long before now). */
#ifndef RP_FILTER_H
#define RP_FILTER_H

#include <stddef.h>
#include <stdint.h>

#include "item.h"

#define RP_MAX_IDS 1024
#define RP_MAX_FLOWS 64

typedef struct rp_filter {
	const char *flows[RP_MAX_FLOWS]; /* names or globs; none: every flow scanned */
	size_t n_flows;
	const char *code, *cls, *subject, *grep;
	int64_t since_ms, until_ms;      /* -1: unset */
	const char *ids[RP_MAX_IDS];     /* explicit ids; none: any */
	size_t n_ids;
} rp_filter_t;

void rp_filter_init(rp_filter_t *f);
/* Sets one criterion from option name (without "--": flow, code, class, subject, grep, since,
 * until) and its value; now_ms anchors ages. 0, or -1 with a sentence in err (a usage error). */
int rp_filter_set(rp_filter_t *f, const char *opt, const char *val, int64_t now_ms, char *err,
		  size_t errlen);
int rp_filter_add_id(rp_filter_t *f, const char *id, char *err, size_t errlen);
/* 1 when any criterion other than ids is set. */
int rp_filter_has_criteria(const rp_filter_t *f);
/* 1 when the flow name passes --flow. */
int rp_filter_flow_ok(const rp_filter_t *f, const char *flow);
/* 1 when the message passes every criterion (ids included). */
int rp_filter_match(const rp_filter_t *f, const rp_item_t *it);

/* RFC 3339 (with optional fraction and offset), YYYY-MM-DD, or an age (N s|m|h|d) before now_ms.
 * 0 and *out_ms, or -1. */
int rp_time_parse(const char *s, int64_t now_ms, int64_t *out_ms);

#endif
