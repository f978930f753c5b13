/* format.h — what baton-replay prints (pure, unit-tested): the list table, the stats table,
 * the JSON form of a message, the progress bar. */
#ifndef RP_FORMAT_H
#define RP_FORMAT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "item.h"

/* Copies src into dst cut to at most width display columns (UTF-8 code points), with "…" when
 * cut, padded with spaces to width when pad. Control characters become spaces. Returns dst
 * (dstlen >= 4 * width + 1 always suffices). */
char *rp_fit(char *dst, size_t dstlen, const char *src, size_t width, int pad);
/* "2026-11-22T10:15:00.123Z" -> "2026-11-22 10:15:00"; "" -> "-". Returns dst. */
char *rp_short_time(char *dst, size_t dstlen, const char *rfc3339);

/* The list table: header line and one line per message (no trailing newline). */
void rp_table_header(char *buf, size_t len);
void rp_table_row(char *buf, size_t len, const rp_item_t *it);

/* The JSON object of one message's summary (as `list --json` prints it). New reference. */
json_t *rp_item_json(const rp_item_t *it);

/* Counts grouped by flow and error code. */
typedef struct rp_count {
	char flow[64];
	char code[96];
	size_t n;
} rp_count_t;

typedef struct rp_stats {
	rp_count_t *rows;
	size_t n, cap, total;
} rp_stats_t;

int rp_stats_add(rp_stats_t *s, const char *flow, const char *code);
/* Sorted by flow, then count (descending), then code. */
void rp_stats_sort(rp_stats_t *s);
void rp_stats_free(rp_stats_t *s);
/* Prints the grouped counts with a subtotal per flow and the total (text). */
void rp_stats_print(const rp_stats_t *s, FILE *out);
/* {"total": n, "flows": {"orders": {"total": n, "codes": {"erp.http_422": n}}}}. */
json_t *rp_stats_json(const rp_stats_t *s);

/* "[#########           ]  120/300  40%  35.2 msg/s" in at most len bytes. */
void rp_progress(char *buf, size_t len, size_t done, size_t total, double rate, int bar_width);

#endif
