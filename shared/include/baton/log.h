/* baton/log.h — structured logging: one JSON object per line on stderr.
 *
 * Every line carries a UTC timestamp with milliseconds, the level, the flow and worker id given to
 * baton_log_init(), a dotted event name ("amqp.connected"), the formatted message and, when a
 * context is given, the message and correlation ids of the message being processed:
 *
 *   {"ts":"2026-11-22T10:15:00.123Z","level":"info","flow":"orders","worker":"w1",
 *    "event":"amqp.connected","msg":"...","message_id":"...","correlation_id":"..."}
 *
 * Strings are escaped so that each line is valid JSON whatever they contain (control characters,
 * quotes, invalid UTF-8 becomes U+FFFD). Messages longer than 4 KiB are cut and the line gets
 * "truncated":true. Thread-safe: each line is written with one call under a lock, so MongoDB
 * worker threads and the loop thread never interleave. Never log secrets: pass URLs through
 * baton_log_redact_url() first. */
#ifndef BATON_LOG_H
#define BATON_LOG_H

#include <stddef.h>
#include <stdio.h>

typedef enum baton_log_level {
	BATON_LOG_DEBUG,
	BATON_LOG_INFO,
	BATON_LOG_WARN,
	BATON_LOG_ERROR
} baton_log_level_t;

/* Per-message context; either field may be NULL (then it is left out of the line). */
typedef struct baton_log_ctx {
	const char *message_id;
	const char *correlation_id;
} baton_log_ctx_t;

/* Longest message kept (bytes, before escaping). */
#define BATON_LOG_MSG_MAX 4096

/* Sets the flow, the worker id (both copied; NULL leaves the field out) and the lowest level
 * written. Before it is called: no flow/worker, level info. May be called again. */
void baton_log_init(const char *flow, const char *worker_id, baton_log_level_t min_level);
/* Where lines go: stderr by default (NULL restores it). For tests. */
void baton_log_set_stream(FILE *f);
/* "debug" | "info" | "warn" | "error" (case-insensitive): 0, or -1 leaving *out untouched. */
int baton_log_level_parse(const char *s, baton_log_level_t *out);
/* Name of a level as written in the "level" field. */
const char *baton_log_level_name(baton_log_level_t lvl);

/* Writes one line when lvl >= the minimum level. ctx may be NULL; event should be a short dotted
 * name; fmt is printf-style. */
void baton_log(baton_log_level_t lvl, const baton_log_ctx_t *ctx, const char *event,
	       const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#define BATON_DEBUG(ctx, event, ...) baton_log(BATON_LOG_DEBUG, ctx, event, __VA_ARGS__)
#define BATON_INFO(ctx, event, ...) baton_log(BATON_LOG_INFO, ctx, event, __VA_ARGS__)
#define BATON_WARN(ctx, event, ...) baton_log(BATON_LOG_WARN, ctx, event, __VA_ARGS__)
#define BATON_ERROR(ctx, event, ...) baton_log(BATON_LOG_ERROR, ctx, event, __VA_ARGS__)

/* Copies url to out with its secrets replaced by "***": the password of the user-info part
 * (amqp://user:pass@h -> amqp://user:***@h; any scheme: amqp(s), mongodb(+srv), http(s)) and the
 * values of query parameters whose name contains password, passwd, pwd, token, secret, key or
 * signature (case-insensitive). Errs on the side of hiding: an '@' after the host part still ends
 * the user info (an unencoded '/' in a password). Like snprintf: returns the length of the whole
 * redacted text, writes at most outlen - 1 bytes plus NUL (outlen 0: nothing). */
size_t baton_log_redact_url(const char *url, char *out, size_t outlen);

#endif
