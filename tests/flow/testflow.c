/* testflow.c — baton-testflow, a minimal flow for the runtime's system tests (TEST TOOL).
 *
 * Consumes baton.testflow (routing keys test.#). Event type "test.effect" with data
 * {"key": "...", "mode": "effect" | "abort" | "publish" | "dead"}:
 *   effect   the effect is a sales order in the ERP (BATON_ERP_URL, the ERP simulator) with
 *            external_ref = key, made at most once: ledger lookup, POST with Idempotency-Key,
 *            ledger record; HTTP failures are classified by the runtime's usual mapping;
 *   abort    the worker process aborts (a poison message);
 *   publish  publishes baton.test.done (event id "done:<key>") and ends OK;
 *   dead     ends DEAD with code test.rejected. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "baton/flow.h"

typedef struct effect {
	char key[200];
	char url[512];
} effect_t;

static void effect_recorded(baton_store_status_t st, json_t *result, const char *errmsg,
			    void *ud)
{
	baton_msg_t *m = ud;

	(void)result;
	if (st == BATON_STORE_OK || st == BATON_STORE_DUPLICATE)
		baton_msg_done(m, BATON_OK, NULL, 0, NULL);
	else
		baton_msg_done(m, BATON_RETRY, "store.unavailable", 0, "ledger: %s", errmsg);
}

static void effect_posted(baton_msg_t *m, const baton_http_resp_t *r)
{
	effect_t *e = baton_msg_state(m);
	json_t *body, *outcome;

	if (r->cls != BATON_HTTP_OK) {
		baton_msg_done_http(m, r, "erp");
		return;
	}
	body = json_loadb(r->body, r->body_len, 0, NULL);
	outcome = json_pack("{s:O?}", "sales_order", json_object_get(body, "id"));
	json_decref(body);
	if (baton_store_ledger_put(baton_flow_store(baton_msg_flow(m)), e->key, outcome,
				   effect_recorded, m) != 0)
		baton_msg_done(m, BATON_RETRY, "store.unavailable", 0, "ledger closed");
	json_decref(outcome);
}

static void effect_looked_up(baton_store_status_t st, json_t *result, const char *errmsg,
			     void *ud)
{
	baton_msg_t *m = ud;
	effect_t *e = baton_msg_state(m);
	const char *hdr[3];
	char idem[256];
	json_t *order;
	char *body;
	baton_http_req_t req = {.method = "POST", .url = e->url, .headers = hdr};

	(void)result;
	if (st == BATON_STORE_OK) {
		baton_msg_audit(m, "already_done", json_pack("{s:s}", "key", e->key));
		baton_msg_done(m, BATON_OK, NULL, 0, NULL);
		return;
	}
	if (st != BATON_STORE_NOT_FOUND) {
		baton_msg_done(m, BATON_RETRY, "store.unavailable", 0, "ledger: %s", errmsg);
		return;
	}
	snprintf(idem, sizeof(idem), "Idempotency-Key: %s", e->key);
	hdr[0] = "Content-Type: application/json";
	hdr[1] = idem;
	hdr[2] = NULL;
	order = json_pack("{s:s, s:[{s:s, s:i, s:s}]}", "external_ref", e->key, "lines", "sku",
			  "TEST-1", "quantity", 1, "unit_price", "1.00");
	body = json_dumps(order, JSON_COMPACT);
	json_decref(order);
	req.body = body;
	req.body_len = body ? strlen(body) : 0;
	if (!body || baton_msg_http(m, &req, effect_posted) != 0)
		baton_msg_done(m, BATON_RETRY, "erp.request", 0, "cannot start the ERP request");
	free(body);
}

static void on_effect(baton_msg_t *m)
{
	baton_flow_t *f = baton_msg_flow(m);
	json_t *d = baton_msg_data(m);
	const char *key = json_string_value(json_object_get(d, "key"));
	const char *mode = json_string_value(json_object_get(d, "mode"));
	effect_t *e;

	if (!key || !key[0]) {
		baton_msg_done(m, BATON_DEAD, "payload.invalid", 0, "data.key: a string is required");
		return;
	}
	if (mode && !strcmp(mode, "abort"))
		abort();
	if (mode && !strcmp(mode, "dead")) {
		baton_msg_done(m, BATON_DEAD, "test.rejected", 0, "rejected on request");
		return;
	}
	if (mode && !strcmp(mode, "publish")) {
		char id[256];
		snprintf(id, sizeof(id), "done:%s", key);
		if (baton_msg_publish(m, "baton.test.done", NULL, json_pack("{s:s}", "key", key), id))
			baton_msg_done(m, BATON_RETRY, "publish.failed", 0, "publisher down");
		else
			baton_msg_done(m, BATON_OK, NULL, 0, NULL);
		return;
	}
	e = calloc(1, sizeof(*e));
	if (!e) {
		baton_msg_done(m, BATON_RETRY, "oom", 0, "out of memory");
		return;
	}
	snprintf(e->key, sizeof(e->key), "%s", key);
	snprintf(e->url, sizeof(e->url), "%s/api/sales_orders", baton_flow_config(f)->erp_url);
	baton_msg_set_state(m, e, free);
	if (baton_store_ledger_get(baton_flow_store(f), key, effect_looked_up, m) != 0)
		baton_msg_done(m, BATON_RETRY, "store.unavailable", 0, "store closed");
}

static int setup(baton_flow_t *f, char *err, size_t len)
{
	if (!baton_flow_config(f)->erp_url) {
		snprintf(err, len, "BATON_ERP_URL is required by the test flow");
		return -1;
	}
	return 0;
}

static const char *const keys[] = {"test.#", NULL};
static const baton_handler_t handlers[] = {{"test.effect", on_effect}, {NULL, NULL}};

int main(int argc, char **argv)
{
	baton_flow_def_t def = {.name = "testflow", .routing_keys = keys, .handlers = handlers,
				.setup = setup};
	return baton_worker_main(&def, argc, argv);
}
