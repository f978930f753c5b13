/* topology.c — the RabbitMQ topology table and everything derived from it; see
 * baton/topology.h. Declaration over AMQP, policies over HTTP and definitions.json all walk the
 * same plan (plan_shared / plan_flow / plan_policies), so they cannot drift apart. */
#include "baton/topology.h"

#include <curl/curl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "baton/log.h"

#define NAME_MAX_LEN 255 /* AMQP short string */
#define FLOW_NAME_MAX 200
#define TIER_NAME_LEN 24
#define MAX_TIERS 64

/* --- the table ----------------------------------------------------------------------------- */

static const char *const orders_keys[] = {"storefront.order.created", "storefront.order.updated",
					  "storefront.order.cancelled", NULL};
static const char *const inventory_keys[] = {"erp.stock.changed", "wms.stock.changed",
					     "storefront.order.created",
					     "storefront.order.cancelled", NULL};
static const char *const payments_keys[] = {"gateway.payment.captured", "gateway.payment.refunded",
					    "gateway.settlement.posted", NULL};
static const char *const customers_keys[] = {"storefront.customer.created",
					     "storefront.customer.updated",
					     "storefront.customer.erasure_requested", NULL};
static const char *const fulfillment_keys[] = {"wms.shipment.confirmed", "erp.shipment.created",
					       NULL};
static const char *const returns_keys[] = {"storefront.return.requested", "wms.return.received",
					   NULL};
static const char *const catalog_keys[] = {"erp.item.created", "erp.item.updated", NULL};

static const baton_flow_topology_t flows[] = {
	{"orders", orders_keys},	   {"inventory", inventory_keys},
	{"payments", payments_keys},	   {"customers", customers_keys},
	{"fulfillment", fulfillment_keys}, {"returns", returns_keys},
	{"catalog", catalog_keys},
};

static const unsigned default_tiers[] = {5000, 30000, 300000, 1800000};

const baton_flow_topology_t *baton_topology_flows(size_t *n)
{
	*n = sizeof(flows) / sizeof(flows[0]);
	return flows;
}

const baton_flow_topology_t *baton_topology_find(const char *flow)
{
	for (size_t i = 0; flow && i < sizeof(flows) / sizeof(flows[0]); i++)
		if (strcmp(flows[i].name, flow) == 0)
			return &flows[i];
	return NULL;
}

int baton_topology_tier_name(unsigned ms, char *out, size_t outlen)
{
	int n;

	if (ms == 0)
		return -1;
	if (ms % 3600000 == 0)
		n = snprintf(out, outlen, "%uh", ms / 3600000);
	else if (ms % 60000 == 0)
		n = snprintf(out, outlen, "%um", ms / 60000);
	else if (ms % 1000 == 0)
		n = snprintf(out, outlen, "%us", ms / 1000);
	else
		n = snprintf(out, outlen, "%ums", ms);
	return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

void baton_topology_default_opts(baton_topology_opts_t *o)
{
	o->tiers_ms = default_tiers;
	o->n_tiers = sizeof(default_tiers) / sizeof(default_tiers[0]);
	o->delivery_limit = 10;
}

/* --- the plan ------------------------------------------------------------------------------ */

/* What a topology is made of; each consumer of the plan implements these. Returning -1 stops. */
typedef struct visitor {
	int (*exchange)(void *ud, const char *name, const char *type);
	int (*queue)(void *ud, const char *name);
	/* tier non-NULL: headers binding {x-match: all-with-x, x-baton-retry-tier: tier}, rk "" */
	int (*binding)(void *ud, const char *exchange, const char *queue, const char *rk,
		       const char *tier);
	int (*policy)(void *ud, const char *name, json_t *body /* borrowed */);
	void *ud;
} visitor_t;

static const char flow_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";

/* Flow names end up in queue names, policy names and patterns: keep them plain. */
static int check_flow(const baton_flow_topology_t *f, char *err, size_t errlen)
{
	size_t n = f && f->name ? strlen(f->name) : 0;

	if (n == 0 || n > FLOW_NAME_MAX || strspn(f->name, flow_chars) != n) {
		snprintf(err, errlen,
			 "invalid flow name \"%.*s\": expected 1 to %d characters from "
			 "A-Z a-z 0-9 _ -",
			 FLOW_NAME_MAX, f && f->name ? f->name : "", FLOW_NAME_MAX);
		return -1;
	}
	for (size_t i = 0; f->routing_keys && f->routing_keys[i]; i++) {
		if (strlen(f->routing_keys[i]) > NAME_MAX_LEN) {
			snprintf(err, errlen, "flow %s: routing key %zu is longer than %d bytes",
				 f->name, i + 1, NAME_MAX_LEN);
			return -1;
		}
	}
	return 0;
}

static int check_opts(const baton_topology_opts_t *o, char *err, size_t errlen)
{
	if (!o || (o->n_tiers && !o->tiers_ms) || o->n_tiers > MAX_TIERS) {
		snprintf(err, errlen, "invalid topology options: at most %d retry tiers",
			 MAX_TIERS);
		return -1;
	}
	for (size_t i = 0; i < o->n_tiers; i++) {
		if (o->tiers_ms[i] == 0 || (i > 0 && o->tiers_ms[i] <= o->tiers_ms[i - 1])) {
			snprintf(err, errlen, "invalid retry tiers: they must be non-zero and "
				 "strictly increasing (tier %zu is %u ms)", i + 1, o->tiers_ms[i]);
			return -1;
		}
	}
	if (o->delivery_limit == 0) {
		snprintf(err, errlen, "invalid delivery limit 0: expected at least 1");
		return -1;
	}
	return 0;
}

/* Exchanges, retry tier queues and their bindings: what every flow shares. */
static int plan_shared(const visitor_t *v, const baton_topology_opts_t *o)
{
	char q[NAME_MAX_LEN + 1], tier[TIER_NAME_LEN];

	if (v->exchange(v->ud, BATON_EXCHANGE_EVENTS, "topic") ||
	    v->exchange(v->ud, BATON_EXCHANGE_RETRY, "headers") ||
	    v->exchange(v->ud, BATON_EXCHANGE_REQUEUE, "direct") ||
	    v->exchange(v->ud, BATON_EXCHANGE_DEAD, "direct"))
		return -1;
	for (size_t i = 0; i < o->n_tiers; i++) {
		baton_topology_tier_name(o->tiers_ms[i], tier, sizeof(tier));
		snprintf(q, sizeof(q), "baton.retry.%s", tier);
		if (v->queue(v->ud, q) || v->binding(v->ud, BATON_EXCHANGE_RETRY, q, "", tier))
			return -1;
	}
	return 0;
}

/* A flow's work queue, its parking queue and their bindings. */
static int plan_flow(const visitor_t *v, const baton_flow_topology_t *f)
{
	char q[NAME_MAX_LEN + 1], dead[NAME_MAX_LEN + 1];

	snprintf(q, sizeof(q), "baton.%s", f->name);
	snprintf(dead, sizeof(dead), "baton.%s.dead", f->name);
	if (v->queue(v->ud, q) || v->queue(v->ud, dead))
		return -1;
	for (size_t i = 0; f->routing_keys && f->routing_keys[i]; i++)
		if (v->binding(v->ud, BATON_EXCHANGE_EVENTS, q, f->routing_keys[i], NULL))
			return -1;
	if (v->binding(v->ud, BATON_EXCHANGE_REQUEUE, q, f->name, NULL) ||
	    v->binding(v->ud, BATON_EXCHANGE_DEAD, dead, f->name, NULL))
		return -1;
	return 0;
}

/* ^<text>$ with every ASCII character other than letters, digits and _ escaped. */
static void exact_pattern(const char *text, char *out, size_t outlen)
{
	size_t o = 0;

	if (outlen < 3)
		return;
	out[o++] = '^';
	for (const unsigned char *p = (const unsigned char *)text; *p && o + 4 < outlen; p++) {
		if (*p < 0x80 && !(*p >= 'a' && *p <= 'z') && !(*p >= 'A' && *p <= 'Z') &&
		    !(*p >= '0' && *p <= '9') && *p != '_')
			out[o++] = '\\';
		out[o++] = (char)*p;
	}
	out[o++] = '$';
	out[o] = '\0';
}

static json_t *policy_body(const char *queue, json_t *definition)
{
	char pat[2 * NAME_MAX_LEN + 8];

	exact_pattern(queue, pat, sizeof(pat));
	return json_pack("{s:s, s:s, s:i, s:o}", "pattern", pat, "apply-to", "queues", "priority",
			 BATON_POLICY_PRIORITY, "definition", definition);
}

json_t *baton_topology_tier_policy(unsigned tier_ms)
{
	char tier[TIER_NAME_LEN], q[64];

	if (baton_topology_tier_name(tier_ms, tier, sizeof(tier)) != 0)
		return NULL;
	snprintf(q, sizeof(q), "baton.retry.%s", tier);
	return policy_body(q, json_pack("{s:I, s:s, s:s, s:s}", "message-ttl", (json_int_t)tier_ms,
					"dead-letter-exchange", BATON_EXCHANGE_REQUEUE,
					"dead-letter-strategy", "at-least-once", "overflow",
					"reject-publish"));
}

json_t *baton_topology_flow_policy(const baton_flow_topology_t *flow,
				   const baton_topology_opts_t *o)
{
	char q[NAME_MAX_LEN + 1];

	snprintf(q, sizeof(q), "baton.%s", flow->name);
	return policy_body(q, json_pack("{s:s, s:s, s:I, s:s, s:s}", "dead-letter-exchange",
					BATON_EXCHANGE_DEAD, "dead-letter-routing-key", flow->name,
					"delivery-limit", (json_int_t)o->delivery_limit,
					"dead-letter-strategy", "at-least-once", "overflow",
					"reject-publish"));
}

static int visit_policy(const visitor_t *v, const char *name, json_t *body)
{
	int rc = body ? v->policy(v->ud, name, body) : -1;
	json_decref(body);
	return rc;
}

static int plan_tier_policies(const visitor_t *v, const baton_topology_opts_t *o)
{
	char tier[TIER_NAME_LEN], name[64];

	for (size_t i = 0; i < o->n_tiers; i++) {
		baton_topology_tier_name(o->tiers_ms[i], tier, sizeof(tier));
		snprintf(name, sizeof(name), "baton.retry.%s", tier);
		if (visit_policy(v, name, baton_topology_tier_policy(o->tiers_ms[i])))
			return -1;
	}
	return 0;
}

static int plan_flow_policy(const visitor_t *v, const baton_flow_topology_t *f,
			    const baton_topology_opts_t *o)
{
	char name[NAME_MAX_LEN + 1];

	snprintf(name, sizeof(name), "baton.flow.%s", f->name);
	return visit_policy(v, name, baton_topology_flow_policy(f, o));
}

/* --- AMQP declaration ---------------------------------------------------------------------- */

typedef struct amqp_ud {
	amqp_connection_state_t c;
	amqp_channel_t ch;
	char *err;
	size_t errlen;
} amqp_ud_t;

/* Checks the reply of the last RPC; on a channel error re-opens the channel. */
static int rpc_check(amqp_ud_t *a, const char *what, const char *name)
{
	amqp_rpc_reply_t r = amqp_get_rpc_reply(a->c);

	switch (r.reply_type) {
	case AMQP_RESPONSE_NORMAL:
		return 0;
	case AMQP_RESPONSE_NONE:
		snprintf(a->err, a->errlen, "%s %s: no reply from the broker", what, name);
		return -1;
	case AMQP_RESPONSE_LIBRARY_EXCEPTION:
		snprintf(a->err, a->errlen, "%s %s: %s (reconnect)", what, name,
			 amqp_error_string2(r.library_error));
		return -1;
	case AMQP_RESPONSE_SERVER_EXCEPTION:
		break;
	}
	if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
		amqp_channel_close_t *m = r.reply.decoded;
		amqp_channel_close_ok_t ok = {0};
		const char *reopened = "channel re-opened";

		snprintf(a->err, a->errlen, "%s %s: broker closed the channel: %u %.*s", what, name,
			 m->reply_code, (int)m->reply_text.len, (char *)m->reply_text.bytes);
		if (amqp_send_method(a->c, a->ch, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok) !=
		    AMQP_STATUS_OK)
			reopened = "channel not re-opened: reconnect";
		else if (!amqp_channel_open(a->c, a->ch) ||
			 amqp_get_rpc_reply(a->c).reply_type != AMQP_RESPONSE_NORMAL)
			reopened = "channel not re-opened: reconnect";
		size_t l = strlen(a->err);
		snprintf(a->err + l, a->errlen - l, " (%s)", reopened);
	} else if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
		amqp_connection_close_t *m = r.reply.decoded;
		snprintf(a->err, a->errlen,
			 "%s %s: broker closed the connection: %u %.*s (reconnect)", what, name,
			 m->reply_code, (int)m->reply_text.len, (char *)m->reply_text.bytes);
	} else {
		snprintf(a->err, a->errlen, "%s %s: unexpected reply method 0x%08x", what, name,
			 (unsigned)r.reply.id);
	}
	return -1;
}

static int amqp_exchange(void *ud, const char *name, const char *type)
{
	amqp_ud_t *a = ud;

	amqp_exchange_declare(a->c, a->ch, amqp_cstring_bytes(name), amqp_cstring_bytes(type), 0, 1,
			      0, 0, amqp_empty_table);
	return rpc_check(a, "declaring exchange", name);
}

static int amqp_queue(void *ud, const char *name)
{
	amqp_ud_t *a = ud;
	amqp_table_entry_t e = {.key = amqp_cstring_bytes("x-queue-type"),
				.value = {.kind = AMQP_FIELD_KIND_UTF8,
					  .value.bytes = amqp_cstring_bytes("quorum")}};
	amqp_table_t args = {1, &e};

	amqp_queue_declare(a->c, a->ch, amqp_cstring_bytes(name), 0, 1, 0, 0, args);
	return rpc_check(a, "declaring queue", name);
}

static int amqp_binding(void *ud, const char *exchange, const char *queue, const char *rk,
			const char *tier)
{
	amqp_ud_t *a = ud;
	amqp_table_entry_t e[2] = {
		{.key = amqp_cstring_bytes("x-match"),
		 .value = {.kind = AMQP_FIELD_KIND_UTF8,
			   .value.bytes = amqp_cstring_bytes(BATON_RETRY_MATCH)}},
		{.key = amqp_cstring_bytes(BATON_HEADER_RETRY_TIER),
		 .value = {.kind = AMQP_FIELD_KIND_UTF8,
			   .value.bytes = amqp_cstring_bytes(tier ? tier : "")}},
	};
	amqp_table_t args = tier ? (amqp_table_t){2, e} : amqp_empty_table;
	char what[NAME_MAX_LEN * 2 + 32];

	amqp_queue_bind(a->c, a->ch, amqp_cstring_bytes(queue), amqp_cstring_bytes(exchange),
			amqp_cstring_bytes(rk), args);
	snprintf(what, sizeof(what), "%s to %s with key \"%s\"", queue, exchange, rk);
	return rpc_check(a, "binding", what);
}

int baton_topology_declare(amqp_connection_state_t c, amqp_channel_t ch,
			   const baton_flow_topology_t *flow, const baton_topology_opts_t *o,
			   char *err, size_t errlen)
{
	amqp_ud_t a = {c, ch, err, errlen};
	visitor_t v = {.exchange = amqp_exchange, .queue = amqp_queue, .binding = amqp_binding,
		       .ud = &a};

	if (check_flow(flow, err, errlen) || check_opts(o, err, errlen))
		return -1;
	if (plan_shared(&v, o) || plan_flow(&v, flow))
		return -1;
	return 0;
}

/* --- policies over the management API ------------------------------------------------------ */

typedef struct http_ud {
	CURL *curl;
	const char *base; /* without trailing '/' */
	size_t base_len;
	char *vhost_enc;
	const char *shown_base; /* redacted, for errors */
	char resp[1024];
	size_t resp_len;
	char *err;
	size_t errlen;
} http_ud_t;

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
	http_ud_t *h = ud;
	size_t len = size * n, room = sizeof(h->resp) - 1 - h->resp_len;

	memcpy(h->resp + h->resp_len, data, len < room ? len : room);
	h->resp_len += len < room ? len : room;
	h->resp[h->resp_len] = '\0';
	return len;
}

/* The "reason" of a management API error body, or the body itself. */
static const char *mgmt_reason(const char *body, char *out, size_t outlen)
{
	json_t *j = json_loads(body, 0, NULL);
	const char *r = j ? json_string_value(json_object_get(j, "reason")) : NULL;

	snprintf(out, outlen, "%.400s", r ? r : body);
	json_decref(j);
	return out;
}

static int http_policy(void *ud, const char *name, json_t *body)
{
	http_ud_t *h = ud;
	char *name_enc = curl_easy_escape(h->curl, name, 0), *payload = json_dumps(body, 0);
	char url[2048], cerr[CURL_ERROR_SIZE] = "", reason[512];
	struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
	long status = 0;
	int rc = -1;
	CURLcode cc;

	if (!name_enc || !payload || !hdrs) {
		snprintf(h->err, h->errlen, "policy %s: out of memory", name);
		goto out;
	}
	snprintf(url, sizeof(url), "%.*s/api/policies/%s/%s", (int)h->base_len, h->base,
		 h->vhost_enc, name_enc);
	h->resp_len = 0;
	h->resp[0] = '\0';
	curl_easy_setopt(h->curl, CURLOPT_URL, url);
	curl_easy_setopt(h->curl, CURLOPT_CUSTOMREQUEST, "PUT");
	curl_easy_setopt(h->curl, CURLOPT_POSTFIELDS, payload);
	curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h->curl, CURLOPT_ERRORBUFFER, cerr);
	cc = curl_easy_perform(h->curl);
	curl_easy_setopt(h->curl, CURLOPT_ERRORBUFFER, NULL);
	if (cc != CURLE_OK) {
		snprintf(h->err, h->errlen, "policy %s: management API at %s: %s", name,
			 h->shown_base, cerr[0] ? cerr : curl_easy_strerror(cc));
		goto out;
	}
	curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &status);
	if (status != 201 && status != 204) {
		snprintf(h->err, h->errlen, "policy %s: management API at %s answered %ld%s%s",
			 name, h->shown_base, status, h->resp_len ? ": " : "",
			 mgmt_reason(h->resp, reason, sizeof(reason)));
		goto out;
	}
	rc = 0;
out:
	curl_slist_free_all(hdrs);
	free(payload);
	curl_free(name_enc);
	return rc;
}

int baton_topology_apply_policies(const char *mgmt_url, const char *vhost,
				  const baton_flow_topology_t *flow, const baton_topology_opts_t *o,
				  char *err, size_t errlen)
{
	char shown[512];
	http_ud_t h = {.err = err, .errlen = errlen, .shown_base = shown};
	visitor_t v = {.policy = http_policy, .ud = &h};
	int rc = -1;

	if (check_flow(flow, err, errlen) || check_opts(o, err, errlen))
		return -1;
	if (!mgmt_url || !vhost) {
		snprintf(err, errlen, "applying policies: no management API URL or vhost");
		return -1;
	}
	baton_log_redact_url(mgmt_url, shown, sizeof(shown));
	h.base = mgmt_url;
	h.base_len = strlen(mgmt_url);
	while (h.base_len > 0 && mgmt_url[h.base_len - 1] == '/')
		h.base_len--;
	h.curl = curl_easy_init();
	if (!h.curl) {
		snprintf(err, errlen, "applying policies: curl_easy_init failed");
		return -1;
	}
	h.vhost_enc = curl_easy_escape(h.curl, vhost, 0);
	if (!h.vhost_enc) {
		snprintf(err, errlen, "applying policies: out of memory");
		goto out;
	}
	curl_easy_setopt(h.curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h.curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h.curl, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	curl_easy_setopt(h.curl, CURLOPT_TIMEOUT_MS, 15000L);
	curl_easy_setopt(h.curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h.curl, CURLOPT_WRITEDATA, &h);
	rc = plan_tier_policies(&v, o) || plan_flow_policy(&v, flow, o) ? -1 : 0;
out:
	curl_free(h.vhost_enc);
	curl_easy_cleanup(h.curl);
	return rc;
}

/* --- definitions.json ---------------------------------------------------------------------- */

typedef struct defs_ud {
	json_t *exchanges, *queues, *bindings, *policies;
} defs_ud_t;

/* json_array_append_new, failing on NULL */
static int append(json_t *arr, json_t *item)
{
	return item ? json_array_append_new(arr, item) : -1;
}

static int defs_exchange(void *ud, const char *name, const char *type)
{
	defs_ud_t *d = ud;
	return append(d->exchanges,
		      json_pack("{s:s, s:s, s:s, s:b, s:b, s:b, s:{}}", "name", name, "vhost", "/",
				"type", type, "durable", 1, "auto_delete", 0, "internal", 0,
				"arguments"));
}

static int defs_queue(void *ud, const char *name)
{
	defs_ud_t *d = ud;
	return append(d->queues, json_pack("{s:s, s:s, s:b, s:b, s:{s:s}}", "name", name, "vhost",
					   "/", "durable", 1, "auto_delete", 0, "arguments",
					   "x-queue-type", "quorum"));
}

static int defs_binding(void *ud, const char *exchange, const char *queue, const char *rk,
			const char *tier)
{
	defs_ud_t *d = ud;
	json_t *args = tier ? json_pack("{s:s, s:s}", "x-match", BATON_RETRY_MATCH,
				      BATON_HEADER_RETRY_TIER, tier)
			    : json_object();

	return append(d->bindings,
		      json_pack("{s:s, s:s, s:s, s:s, s:s, s:o}", "source", exchange, "vhost", "/",
				"destination", queue, "destination_type", "queue", "routing_key",
				rk, "arguments", args));
}

static int defs_policy(void *ud, const char *name, json_t *body)
{
	defs_ud_t *d = ud;
	json_t *p = json_deep_copy(body);

	if (!p || json_object_set_new(p, "vhost", json_string("/")) ||
	    json_object_set_new(p, "name", json_string(name))) {
		json_decref(p);
		return -1;
	}
	return append(d->policies, p);
}

json_t *baton_topology_definitions(const baton_topology_opts_t *o)
{
	defs_ud_t d = {json_array(), json_array(), json_array(), json_array()};
	visitor_t v = {defs_exchange, defs_queue, defs_binding, defs_policy, &d};
	json_t *root = NULL;
	char err[256];
	size_t n;
	const baton_flow_topology_t *f = baton_topology_flows(&n);

	if (!d.exchanges || !d.queues || !d.bindings || !d.policies ||
	    check_opts(o, err, sizeof(err)))
		goto fail;
	if (plan_shared(&v, o) || plan_tier_policies(&v, o))
		goto fail;
	for (size_t i = 0; i < n; i++)
		if (plan_flow(&v, &f[i]) || plan_flow_policy(&v, &f[i], o))
			goto fail;
	root = json_pack("{s:[{s:s}], s:o, s:o, s:o, s:o}", "vhosts", "name", "/", "exchanges",
			 d.exchanges, "queues", d.queues, "bindings", d.bindings, "policies",
			 d.policies);
	return root; /* json_pack "o" stole the arrays, also on failure */
fail:
	json_decref(d.exchanges);
	json_decref(d.queues);
	json_decref(d.bindings);
	json_decref(d.policies);
	return NULL;
}
