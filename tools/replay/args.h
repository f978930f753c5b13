/* args.h — baton-replay's command line (pure, unit-tested). */
#ifndef RP_ARGS_H
#define RP_ARGS_H

#include <stdio.h>

#include "filter.h"

enum rp_cmd { RP_LIST, RP_SHOW, RP_STATS, RP_REPLAY, RP_DISCARD, RP_EXPORT };

/* Exit codes. */
#define RP_EXIT_OK 0
#define RP_EXIT_RUNTIME 1 /* broker or database unreachable, an action failed */
#define RP_EXIT_USAGE 2   /* bad flag, filter or missing --reason/--yes */
#define RP_EXIT_UNKNOWN 3 /* an id given is not parked (nor on record, for show) */

typedef struct rp_args {
	enum rp_cmd cmd;
	rp_filter_t filter;
	int json, dry_run, yes, all, help, no_progress;
	double rate;          /* messages per second; 0: unlimited */
	long limit;           /* -1: none */
	const char *op, *reason, *ticket, *output;
} rp_args_t;

/* Parses argv (argv[1] is the subcommand). now_ms anchors relative times. 0, or RP_EXIT_USAGE
 * with a sentence in err. a->help set: print rp_usage(a->cmd) and exit 0. */
int rp_args_parse(rp_args_t *a, int argc, char **argv, int64_t now_ms, char *err, size_t errlen);
/* Help of a subcommand (or the overview for cmd < 0). */
void rp_usage(int cmd, FILE *out);

#endif
