/* args.c — command line of baton-replay. See args.h. */
#include "args.h"

#include <stdlib.h>
#include <string.h>

#include "rate.h"

static const char *const cmd_names[] = {"list", "show", "stats", "replay", "discard", "export"};

static const char overview[] =
	"usage: baton-replay <command> [options]\n"
	"\n"
	"Dead letters parked in baton.<flow>.dead: see them, fix their cause, send them back.\n"
	"\n"
	"commands:\n"
	"  list      parked messages as a table (or --json)\n"
	"  show      one message: headers, error story, body, history\n"
	"  stats     counts grouped by flow and error code\n"
	"  replay    send messages back to their flow's queue\n"
	"  discard   drop messages for good, with a --reason kept on record\n"
	"  export    matching messages as JSON lines (headers + body)\n"
	"\n"
	"`baton-replay <command> --help` tells more. Environment: BATON_AMQP_URL (required),\n"
	"BATON_MONGO_URI (required by show, replay, discard), BATON_MONGO_DB (default baton),\n"
	"USER (the default --operator).\n"
	"Exit codes: 0 ok, 1 runtime failure (broker or database unreachable, an action failed),\n"
	"2 usage error (bad flag or filter), 3 unknown id.\n";

static const char filters_help[] =
	"filters (all given must hold):\n"
	"  --flow NAME        a flow (repeatable; shell globs); default: every flow of the table\n"
	"  --code GLOB        error code, e.g. erp.http_422 or 'erp.*'\n"
	"  --class CLASS      transient, permanent, exhausted or poison\n"
	"  --since TIME       last failure at or after TIME (RFC 3339, a date, or an age: 90m,\n"
	"  --until TIME       2h, 3d); --until: at or before\n"
	"  --subject GLOB     CloudEvents subject, e.g. order/SO-1001 or 'order/SO-10*'\n"
	"  --grep TEXT        case-insensitive text in the error message\n";

static const char *const cmd_help[] = {
	/* list */
	"usage: baton-replay list [filters] [--json] [--limit N]\n"
	"\n"
	"Parked messages, oldest first per flow: id, flow, error code, attempts, replays, first\n"
	"and last failure, subject. Messages another operator holds at this moment (while their\n"
	"replay or list runs) are not seen.\n"
	"\n"
	"  baton-replay list\n"
	"  baton-replay list --flow orders --code erp.http_422 --since 2h\n"
	"  baton-replay list --subject order/SO-1001 --json | jq '.[].id'\n",
	/* show */
	"usage: baton-replay show ID [--flow NAME] [--json]\n"
	"\n"
	"Headers, the error story, the pretty-printed body and the history (parked, replayed,\n"
	"parked again, discarded: from dead_letters and the audit trail) of message ID (its\n"
	"message_id; a message without one is listed as h-<hash>). A message no longer parked\n"
	"still shows its history. Exit 3 when ID is neither parked nor on record.\n"
	"\n"
	"  baton-replay show 0b9d3c1e-6f1a-4f7e-9a51-5c2f3f0e8a11\n",
	/* stats */
	"usage: baton-replay stats [filters] [--json]\n"
	"\n"
	"Counts of parked messages grouped by flow and error code.\n"
	"\n"
	"  baton-replay stats\n"
	"  baton-replay stats --since 1d --json\n",
	/* replay */
	"usage: baton-replay replay (ID... | filters | --all) [--dry-run] [--rate N/s]\n"
	"                    [--limit N] [--yes] [--operator NAME] [--reason TEXT] [--ticket REF]\n"
	"\n"
	"Sends messages back to their flow's queue (exchange baton.requeue, routing key = the\n"
	"flow: only that flow sees it again) with x-baton-attempts reset to 0 and x-baton-replays\n"
	"incremented; the failure headers of the last attempt stay for the record. Each copy is\n"
	"confirmed by the broker before the parked one is acked: nothing is lost, and a kill at\n"
	"any point leaves at worst a message both replayed and still parked (the flow's\n"
	"idempotency absorbs the second pass). The set is fixed when the command starts; later\n"
	"arrivals are not touched. Messages are held while the command runs, so a second operator\n"
	"cannot replay them too. More than one message asks for confirmation unless --yes.\n"
	"\n"
	"  --dry-run     print what would be replayed, counted by flow and code; change nothing\n"
	"  --rate N/s    at most N messages per second (also N/m)\n"
	"  --limit N     at most N messages\n"
	"  --all         every parked message (of the --flow given, if any)\n"
	"  --no-progress no progress bar (shown on a terminal)\n"
	"\n"
	"  baton-replay replay 0b9d3c1e-6f1a-4f7e-9a51-5c2f3f0e8a11\n"
	"  baton-replay replay --flow orders --code sku.unmapped --dry-run\n"
	"  baton-replay replay --code erp.http_503 --rate 20/s --yes --ticket OPS-42\n",
	/* discard */
	"usage: baton-replay discard (ID... | filters | --all) --reason TEXT [--ticket REF]\n"
	"                     [--dry-run] [--limit N] [--yes] [--operator NAME]\n"
	"\n"
	"Removes messages from their parking queue for good. The reason (mandatory), operator,\n"
	"time and the message body are recorded in dead_letters (and the audit trail) before the\n"
	"parked copy is acked.\n"
	"\n"
	"  baton-replay discard ev-123 --reason 'test order, cancelled in the shop'\n"
	"  baton-replay discard --flow inventory --code payload.invalid --reason 'old format' --yes\n",
	/* export */
	"usage: baton-replay export [ID... | filters] [--output FILE] [--limit N]\n"
	"\n"
	"Writes matching messages as JSON lines: {id, flow, queue, properties, headers, body,\n"
	"summary}; body is the exact text of the message. Messages stay parked.\n"
	"\n"
	"  baton-replay export --flow orders --output orders-dead.jsonl\n"
	"  baton-replay export --code 'erp.*' | jq -r .body\n",
};

void rp_usage(int cmd, FILE *out)
{
	if (cmd < 0 || cmd > RP_EXPORT) {
		fputs(overview, out);
		return;
	}
	fputs(cmd_help[cmd], out);
	if (cmd != RP_SHOW) {
		fputc('\n', out);
		fputs(filters_help, out);
	}
	fputs("\ncommon: --operator NAME (default $USER), exit codes 0 ok, 1 runtime failure, "
	      "2 usage, 3 unknown id\n", out);
}

static int find_cmd(const char *s)
{
	for (int i = 0; i <= RP_EXPORT; i++)
		if (!strcmp(s, cmd_names[i]))
			return i;
	return -1;
}

static int parse_long(const char *v, long *out)
{
	char *end;
	long n = strtol(v, &end, 10);

	if (!v[0] || *end || n < 1)
		return -1;
	*out = n;
	return 0;
}

/* Options that take a value; returns the slot or NULL. */
static const char **value_slot(rp_args_t *a, const char *opt)
{
	if (!strcmp(opt, "--operator"))
		return &a->op;
	if (!strcmp(opt, "--reason"))
		return &a->reason;
	if (!strcmp(opt, "--ticket"))
		return &a->ticket;
	if (!strcmp(opt, "--output") || !strcmp(opt, "-o"))
		return &a->output;
	return NULL;
}

static int is_filter(const char *opt)
{
	static const char *const f[] = {"--flow", "--code", "--class", "--since",
					"--until", "--subject", "--grep", NULL};
	for (int i = 0; f[i]; i++)
		if (!strcmp(opt, f[i]))
			return 1;
	return 0;
}

static int flag(rp_args_t *a, const char *s)
{
	int *p = !strcmp(s, "--json")	       ? &a->json
		 : !strcmp(s, "--dry-run")     ? &a->dry_run
		 : !strcmp(s, "--yes") || !strcmp(s, "-y") ? &a->yes
		 : !strcmp(s, "--all")	       ? &a->all
		 : !strcmp(s, "--no-progress") ? &a->no_progress
		 : !strcmp(s, "--help") || !strcmp(s, "-h") ? &a->help
						: NULL;
	if (!p)
		return -1;
	*p = 1;
	return 0;
}

static int option(rp_args_t *a, const char *s, const char *v, int64_t now_ms, char *err,
		  size_t errlen)
{
	const char **slot = value_slot(a, s);

	if (!v) {
		snprintf(err, errlen, "%s needs a value", s);
		return -1;
	}
	if (is_filter(s))
		return rp_filter_set(&a->filter, s + 2, v, now_ms, err, errlen);
	if (slot) {
		if (!v[0]) {
			snprintf(err, errlen, "%s needs a non-empty value", s);
			return -1;
		}
		*slot = v;
		return 0;
	}
	if (!strcmp(s, "--rate")) {
		if (rp_rate_parse(v, &a->rate) == 0)
			return 0;
		snprintf(err, errlen, "--rate \"%.40s\": expected N/s or N/m with N > 0", v);
		return -1;
	}
	if (!strcmp(s, "--limit")) {
		if (parse_long(v, &a->limit) == 0)
			return 0;
		snprintf(err, errlen, "--limit \"%.40s\": expected a whole number >= 1", v);
		return -1;
	}
	snprintf(err, errlen, "unknown option %s", s);
	return -1;
}

static int takes_value(const char *s)
{
	return is_filter(s) || !strcmp(s, "--operator") || !strcmp(s, "--reason") ||
	       !strcmp(s, "--ticket") || !strcmp(s, "--output") || !strcmp(s, "-o") ||
	       !strcmp(s, "--rate") || !strcmp(s, "--limit");
}

/* Which options make sense for which command. */
static int check(rp_args_t *a, char *err, size_t errlen)
{
	int acts = a->cmd == RP_REPLAY || a->cmd == RP_DISCARD;

	if ((a->dry_run || a->yes || a->all || a->rate > 0 || a->reason || a->ticket) && !acts) {
		snprintf(err, errlen, "--dry-run, --yes, --all, --rate, --reason and --ticket are "
				      "for replay and discard");
		return -1;
	}
	if (a->rate > 0 && a->cmd != RP_REPLAY) {
		snprintf(err, errlen, "--rate is for replay");
		return -1;
	}
	if (a->cmd == RP_SHOW && a->filter.n_ids != 1) {
		snprintf(err, errlen, "show takes exactly one message id");
		return -1;
	}
	if ((a->cmd == RP_LIST || a->cmd == RP_STATS) && a->filter.n_ids) {
		snprintf(err, errlen, "%s takes filters, not ids (try show ID)", cmd_names[a->cmd]);
		return -1;
	}
	if (acts && !a->all && !a->filter.n_ids && !rp_filter_has_criteria(&a->filter)) {
		snprintf(err, errlen, "%s needs message ids, a filter or --all", cmd_names[a->cmd]);
		return -1;
	}
	if (a->cmd == RP_DISCARD && !a->dry_run && !a->reason) {
		snprintf(err, errlen, "discard needs --reason TEXT (it is kept on record)");
		return -1;
	}
	return 0;
}

int rp_args_parse(rp_args_t *a, int argc, char **argv, int64_t now_ms, char *err, size_t errlen)
{
	int c;

	memset(a, 0, sizeof(*a));
	rp_filter_init(&a->filter);
	a->limit = -1;
	if (argc < 2) {
		snprintf(err, errlen, "a command is needed: list, show, stats, replay, discard, export");
		return RP_EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		a->help = 1;
		a->cmd = (enum rp_cmd)-1;
		if (argc > 2 && (c = find_cmd(argv[2])) >= 0)
			a->cmd = (enum rp_cmd)c;
		return 0;
	}
	if ((c = find_cmd(argv[1])) < 0) {
		snprintf(err, errlen, "unknown command \"%.40s\" (list, show, stats, replay, discard, "
				      "export)", argv[1]);
		return RP_EXIT_USAGE;
	}
	a->cmd = (enum rp_cmd)c;
	for (int i = 2; i < argc; i++) {
		const char *s = argv[i], *v = NULL, *eq = strchr(s, '=');
		char name[64];
		if (s[0] != '-' || !s[1]) {
			if (rp_filter_add_id(&a->filter, s, err, errlen) != 0)
				return RP_EXIT_USAGE;
			continue;
		}
		if (s[1] == '-' && eq && (size_t)(eq - s) < sizeof(name)) {
			snprintf(name, sizeof(name), "%.*s", (int)(eq - s), s);
			s = name;
			v = eq + 1;
		} else if (takes_value(s)) {
			v = i + 1 < argc ? argv[++i] : NULL;
		} else if (flag(a, s) == 0) {
			continue;
		}
		if (!takes_value(s)) {
			snprintf(err, errlen, "unknown option %s", s);
			return RP_EXIT_USAGE;
		}
		if (option(a, s, v, now_ms, err, errlen) != 0)
			return RP_EXIT_USAGE;
	}
	if (a->help)
		return 0;
	return check(a, err, errlen) == 0 ? 0 : RP_EXIT_USAGE;
}
