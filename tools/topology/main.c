/* baton-topology — the RabbitMQ topology from the table in shared/src/topology.c.
 *
 *   baton-topology definitions > broker-config/definitions.json
 *   baton-topology declare --flow orders
 */
#include <amqp.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "baton/amqp.h"
#include "baton/config.h"
#include "baton/log.h"
#include "baton/topology.h"

#define MAX_KEYS 64

static const char usage_text[] =
	"usage: baton-topology definitions [--retry-tiers LIST] [--delivery-limit N]\n"
	"       baton-topology declare --flow NAME [--routing-key KEY]...\n"
	"                      [--retry-tiers LIST] [--delivery-limit N]\n"
	"\n"
	"definitions  print the definitions of every flow of the table (exchanges,\n"
	"             queues, bindings, policies; vhost \"/\") to stdout. Regenerate the\n"
	"             committed file with:\n"
	"               baton-topology definitions > broker-config/definitions.json\n"
	"declare      declare the shared exchanges, the retry tier queues and the\n"
	"             flow's queues and bindings (idempotent) on BATON_AMQP_URL, then\n"
	"             apply the policies through the management API when\n"
	"             BATON_RABBITMQ_MGMT_URL is set. --routing-key (repeatable)\n"
	"             replaces the table's keys, or gives the keys of a flow that is\n"
	"             not in the table.\n"
	"\n"
	"--retry-tiers LIST   e.g. 5s,30s,5m,30m (declare: default BATON_RETRY_TIERS)\n"
	"--delivery-limit N   2..1000, default 10 (declare: default BATON_DELIVERY_LIMIT)\n";

static void usage(FILE *f)
{
	fputs(usage_text, f);
}

typedef struct args {
	const char *cmd, *flow, *tiers, *limit;
	const char *keys[MAX_KEYS + 1];
	size_t n_keys;
} args_t;

static int parse_args(int argc, char **argv, args_t *a)
{
	memset(a, 0, sizeof(*a));
	for (int i = 1; i < argc; i++) {
		const char *s = argv[i];
		const char **val = !strcmp(s, "--flow")		  ? &a->flow
				   : !strcmp(s, "--retry-tiers")    ? &a->tiers
				   : !strcmp(s, "--delivery-limit") ? &a->limit
								    : NULL;
		if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(s, "--routing-key") && i + 1 < argc) {
			if (a->n_keys == MAX_KEYS) {
				fprintf(stderr, "baton-topology: more than %d routing keys\n",
					MAX_KEYS);
				return 2;
			}
			a->keys[a->n_keys++] = argv[++i];
		} else if (val && i + 1 < argc) {
			*val = argv[++i];
		} else if (s[0] != '-' && !a->cmd) {
			a->cmd = s;
		} else {
			fprintf(stderr, "baton-topology: unexpected argument \"%s\"\n", s);
			usage(stderr);
			return 2;
		}
	}
	if (!a->cmd || (strcmp(a->cmd, "definitions") && strcmp(a->cmd, "declare"))) {
		usage(stderr);
		return 2;
	}
	return -1;
}

/* Tier list and delivery limit: flag, else environment (declare only), else defaults. */
static int build_opts(const args_t *a, int use_env, unsigned *tiers, baton_topology_opts_t *o)
{
	const char *t = a->tiers ? a->tiers : use_env ? getenv("BATON_RETRY_TIERS") : NULL;
	const char *l = a->limit ? a->limit : use_env ? getenv("BATON_DELIVERY_LIMIT") : NULL;
	char why[160], *end;

	baton_topology_default_opts(o);
	if (t && *t) {
		if (baton_config_parse_tiers(t, tiers, BATON_MAX_RETRY_TIERS, &o->n_tiers, why,
					     sizeof(why)) != 0) {
			fprintf(stderr, "baton-topology: retry tiers \"%s\": %s\n", t, why);
			return -1;
		}
		o->tiers_ms = tiers;
	}
	if (l && *l) {
		unsigned long v = strtoul(l, &end, 10);
		if (*end || l[0] == '-' || v < 2 || v > 1000) {
			fprintf(stderr, "baton-topology: delivery limit \"%s\": expected 2..1000\n",
				l);
			return -1;
		}
		o->delivery_limit = (unsigned)v;
	}
	return 0;
}

static int cmd_definitions(const baton_topology_opts_t *o)
{
	json_t *d = baton_topology_definitions(o);
	int rc = 1;

	if (!d) {
		fprintf(stderr, "baton-topology: cannot build the definitions\n");
		return 1;
	}
	if (json_dumpf(d, stdout, JSON_INDENT(2) | JSON_SORT_KEYS) == 0 &&
	    fputc('\n', stdout) != EOF && fflush(stdout) == 0)
		rc = 0;
	else
		fprintf(stderr, "baton-topology: cannot write the definitions\n");
	json_decref(d);
	return rc;
}

static int cmd_declare(const args_t *a, const baton_topology_opts_t *o)
{
	const char *url = getenv("BATON_AMQP_URL"), *mgmt = getenv("BATON_RABBITMQ_MGMT_URL");
	baton_flow_topology_t flow = {a->flow, a->keys};
	const baton_flow_topology_t *known = a->flow ? baton_topology_find(a->flow) : NULL;
	baton_amqp_params_t p;
	amqp_connection_state_t c;
	char err[1024];
	int rc = 1;

	if (!a->flow) {
		fprintf(stderr, "baton-topology: declare needs --flow NAME\n");
		return 2;
	}
	if (!a->n_keys) {
		if (!known) {
			fprintf(stderr, "baton-topology: flow \"%s\" is not in the topology table; "
				"give its keys with --routing-key\n", a->flow);
			return 2;
		}
		flow.routing_keys = known->routing_keys;
	}
	if (!url || !*url) {
		fprintf(stderr, "baton-topology: BATON_AMQP_URL is not set\n");
		return 2;
	}
	if (baton_amqp_parse_url(url, &p, err, sizeof(err)) != 0) {
		fprintf(stderr, "baton-topology: BATON_AMQP_URL: %s\n", err);
		return 2;
	}
	c = baton_amqp_connect(&p, "baton-topology", err, sizeof(err));
	if (!c) {
		fprintf(stderr, "baton-topology: %s\n", err);
		return 1;
	}
	if (baton_topology_declare(c, 1, &flow, o, err, sizeof(err)) != 0) {
		fprintf(stderr, "baton-topology: %s\n", err);
		goto out;
	}
	printf("declared the topology of flow %s in vhost %s\n", flow.name, p.vhost);
	if (mgmt && *mgmt) {
		if (baton_topology_apply_policies(mgmt, p.vhost, &flow, o, err, sizeof(err)) != 0) {
			fprintf(stderr, "baton-topology: %s\n", err);
			goto out;
		}
		printf("applied the policies of flow %s and of the retry tiers\n", flow.name);
	} else {
		printf("BATON_RABBITMQ_MGMT_URL is not set: policies not applied\n");
	}
	rc = 0;
out:
	amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
	amqp_connection_close(c, AMQP_REPLY_SUCCESS);
	amqp_destroy_connection(c);
	return rc;
}

int main(int argc, char **argv)
{
	unsigned tiers[BATON_MAX_RETRY_TIERS];
	baton_topology_opts_t o;
	args_t a;
	int rc = parse_args(argc, argv, &a);

	if (rc >= 0)
		return rc;
	if (build_opts(&a, !strcmp(a.cmd, "declare"), tiers, &o) != 0)
		return 2;
	if (!strcmp(a.cmd, "definitions"))
		return cmd_definitions(&o);
	return cmd_declare(&a, &o);
}
