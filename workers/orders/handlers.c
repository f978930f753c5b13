/* handlers.c — the asynchronous steps of baton-orders. See README.md for the behaviour.
 *
 * One ord_t per message (the message's state, freed by the runtime). The steps, each a store
 * call or HTTP request whose callback starts the next one:
 *
 *   created:  validate -> map SKUs -> payment rule
 *             pending:  store the order as pending_payment -> RETRY (or park past the bound)
 *             import:   document (an ERP id there: already transferred) -> ERP lookup by
 *                       external_ref -> POST (Idempotency-Key) -> ledger -> write-back
 *                       -> document (open, ERP id, written back) -> publish -> OK
 *   updated:  validate -> map SKUs -> document (wait while absent; stale/duplicate skipped)
 *             -> lease -> PATCH (or the transfer, for an order still waiting for payment)
 *             -> document (lease cleared) -> OK
 *   cancelled: validate -> document -> lease -> POST cancel -> document -> publish -> OK
 *
 * Concurrency: the ERP write of an update or cancel happens under a lease recorded in the
 * order document with the store's version check, so two replicas never write the same ERP
 * order at once and an older update can never land after a newer one. A lease that outlives
 * its holder (kill -9) expires after orders.lease. Creates need no lease: every replica sends
 * the same body with the same Idempotency-Key, so the ERP hands back one order. */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "baton/money.h"
#include "orders.h"

typedef struct orders_ctx {
	orders_config_t cfg;
	json_t *item_cache; /* ERP item master answers: channel sku -> ERP item (never shrinks, so
			       pointers to its strings stay valid) */
	const baton_config_t *bc;
} orders_ctx_t;

typedef enum { K_CREATE, K_UPDATE, K_CANCEL } kind_t;

typedef struct ord {
	baton_msg_t *m;
	baton_flow_t *f;
	orders_ctx_t *ctx;
	kind_t kind;
	baton_order_t o;
	orders_payment_t pay;
	char ref[200];    /* <channel>:<order_id>: document id and ERP external reference */
	char key[256];    /* ledger and Idempotency-Key of the ERP sales order */
	const char **items; /* ERP item per line, borrowed from the config or the item cache */
	json_t *unmapped;   /* SKUs nobody knows */
	json_t *doc;        /* the stored order document (owned) or NULL */
	int64_t doc_ver;    /* its store version */
	char erp_id[64];
	int leased;         /* doc_ver is the version that holds our lease */
	int store_tries;
	baton_outcome_t fin;  /* outcome waiting for the lease release */
	char fin_code[96];
	long fin_status;
	char fin_msg[900];
} ord_t;

static void ord_free(void *p)
{
	ord_t *d = p;

	baton_order_free(&d->o);
	free(d->items);
	json_decref(d->unmapped);
	json_decref(d->doc);
	free(d);
}

static baton_store_t *store(ord_t *d) { return baton_flow_store(d->f); }

static void set_doc(ord_t *d, json_t *doc)
{
	json_decref(d->doc);
	d->doc = json_incref(doc);
	d->doc_ver = json_integer_value(json_object_get(doc, "version"));
}

static const char *doc_str(const ord_t *d, const char *k)
{
	return json_string_value(json_object_get(d->doc, k));
}

/* ---------------------------------------------------------------------------------------- */
/* ending: every path goes through ord_end, which first gives the lease back if we hold it   */

static void released(baton_store_status_t st, json_t *res, const char *err, void *ud)
{
	ord_t *d = ud;

	(void)res;
	if (st != BATON_STORE_OK) /* it expires by itself; nothing else depends on it */
		baton_msg_audit(d->m, "lease_kept",
				json_pack("{s:s, s:s}", "order", d->ref, "error", err));
	baton_msg_done(d->m, d->fin, d->fin_code, d->fin_status, "%s", d->fin_msg);
}

/* Ends the message; when we hold the lease, the document is put back without it first (and
 * with status new_status when not NULL, e.g. "shipped" learnt from the ERP). */
static void ord_end_status(ord_t *d, const char *new_status, baton_outcome_t out,
			   const char *code, long status, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));

static void ord_end_status(ord_t *d, const char *new_status, baton_outcome_t out,
			   const char *code, long status, const char *fmt, ...)
{
	va_list ap;
	json_t *doc;

	d->fin = out;
	snprintf(d->fin_code, sizeof(d->fin_code), "%s", code ? code : "");
	d->fin_status = status;
	va_start(ap, fmt);
	vsnprintf(d->fin_msg, sizeof(d->fin_msg), fmt, ap);
	va_end(ap);
	if (!d->leased) {
		baton_msg_done(d->m, out, code, status, "%s", d->fin_msg);
		return;
	}
	d->leased = 0;
	doc = json_deep_copy(d->doc);
	json_object_del(doc, "lease_owner");
	json_object_del(doc, "lease_until_ms");
	if (new_status)
		json_object_set_new(doc, "status", json_string(new_status));
	if (!doc || baton_store_doc_put(store(d), ORDERS_COLLECTION, d->ref, doc, d->doc_ver,
					released, d) != 0)
		baton_msg_done(d->m, out, code, status, "%s", d->fin_msg);
	json_decref(doc);
}

#define ord_end(d, out, code, status, ...) ord_end_status(d, NULL, out, code, status, __VA_ARGS__)

static void ord_ok(ord_t *d) { ord_end(d, BATON_OK, NULL, 0, "done"); }

static void ord_store_failed(ord_t *d, const char *what, baton_store_status_t st,
			     const char *err)
{
	if (st == BATON_STORE_CONFLICT)
		ord_end(d, BATON_RETRY, "order.version_conflict", 0,
			"%s: order %s was changed by another event at the same time", what, d->ref);
	else
		ord_end(d, BATON_RETRY, "store.unavailable", 0, "%s: %s %s", what,
			baton_store_status_name(st), err);
}

/* The usual HTTP mapping (as baton_msg_done_http), through ord_end. */
static void ord_end_http(ord_t *d, const baton_http_resp_t *r, const char *prefix)
{
	char code[96];

	baton_http_error_code(r, prefix, code, sizeof(code));
	if (r->cls == BATON_HTTP_TRANSIENT) {
		if (r->retry_after_ms >= 0)
			baton_msg_retry_after(d->m, r->retry_after_ms);
		ord_end(d, BATON_RETRY, code, r->status, "%s", r->summary);
	} else {
		ord_end(d, BATON_DEAD, code, r->status, "%s%s%.400s", r->summary,
			r->body_len ? ": " : "", r->body);
	}
}

/* The ERP's error code in a JSON error body ({"error": {"code": ...}}), or "". */
static void erp_error_code(const baton_http_resp_t *r, char *out, size_t len)
{
	json_t *b = json_loadb(r->body, r->body_len, 0, NULL);

	snprintf(out, len, "%s",
		 json_string_value(json_object_get(json_object_get(b, "error"), "code")) ?: "");
	json_decref(b);
}

/* ---------------------------------------------------------------------------------------- */
/* HTTP helpers                                                                             */

/* idem: Idempotency-Key or NULL; requests to the storefront name the shop (its rate limit is
 * per shop). */
static int ord_http(ord_t *d, const char *method, const char *url, json_t *body,
		    const char *idem, baton_msg_http_cb cb)
{
	char ih[300], shop[120];
	const char *hdr[4];
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	baton_http_req_t req = {.method = method, .url = url, .headers = hdr};
	int n = 0, rc;

	hdr[n++] = "Content-Type: application/json";
	if (idem) {
		snprintf(ih, sizeof(ih), "Idempotency-Key: %s", idem);
		hdr[n++] = ih;
	} else if (d->ctx->bc->storefront_url &&
		   !strncmp(url, d->ctx->bc->storefront_url, strlen(d->ctx->bc->storefront_url))) {
		snprintf(shop, sizeof(shop), "X-Shopify-Shop-Domain: %s", d->o.channel);
		hdr[n++] = shop;
	}
	hdr[n] = NULL;
	req.body = text;
	req.body_len = text ? strlen(text) : 0;
	rc = (body && !text) ? -1 : baton_msg_http(d->m, &req, cb);
	free(text);
	return rc;
}

static void erp_url(ord_t *d, char *out, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void erp_url(ord_t *d, char *out, size_t len, const char *fmt, ...)
{
	size_t n = (size_t)snprintf(out, len, "%s", d->ctx->bc->erp_url);
	va_list ap;

	while (n > 0 && out[n - 1] == '/')
		out[--n] = '\0';
	va_start(ap, fmt);
	vsnprintf(out + n, len - n, fmt, ap);
	va_end(ap);
}

/* ---------------------------------------------------------------------------------------- */
/* transfer: the ERP sales order at most once, the write-back, the document, the event      */
/*
 * The order document (read by _id, which every MongoDB-compatible store serves from its
 * primary key) is where a redelivery first looks: an ERP id there means the ERP order exists,
 * "written_back" that the storefront has its number. Without an ERP id in the document, the
 * ERP itself is asked by external_ref before creating, and the POST carries Idempotency-Key;
 * the ledger records the ERP id under the effect's key (a duplicate there hands back the id
 * recorded first). The document is written last, after the write-back, so that it never
 * claims more than what is done. */

static int lease_by_other(const ord_t *d)
{
	const char *owner = doc_str(d, "lease_owner");
	int64_t until = json_integer_value(json_object_get(d->doc, "lease_until_ms"));

	return owner && strcmp(owner, baton_msg_id(d->m)) && until > baton_store_now_ms();
}

static void publish_transferred(ord_t *d)
{
	char id[300], subj[160], gt[40];

	snprintf(id, sizeof(id), "baton.order.transferred:%s", d->ref);
	snprintf(subj, sizeof(subj), "order/%s", d->o.order_id);
	baton_money_format(d->o.totals.grand_total, d->o.decimals, gt, sizeof(gt));
	if (baton_msg_publish(d->m, "baton.order.transferred", subj,
			      json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:I}", "order_id",
					d->o.order_id, "channel", d->o.channel, "erp_order_id",
					d->erp_id, "version", (json_int_t)d->o.version, "currency",
					d->o.currency, "grand_total", gt, "lines",
					(json_int_t)d->o.n_lines),
			      id) != 0) {
		ord_end(d, BATON_RETRY, "publish.failed", 0, "cannot publish baton.order.transferred");
		return;
	}
	/* One entry for the last steps (write-back, document, event): the audit trail is the
	 * heaviest write of the flow. */
	baton_msg_audit(d->m, "transferred",
			json_pack("{s:s, s:s, s:I, s:s, s:b, s:I, s:s, s:s}", "order", d->ref,
				  "erp_order_id", d->erp_id, "version", (json_int_t)d->o.version,
				  "financial_status", d->o.financial_status, "written_back",
				  d->ctx->cfg.writeback, "doc_version", (json_int_t)d->doc_ver,
				  "event_type", "baton.order.transferred", "event_id", id));
	ord_ok(d);
}

static void transfer_look(ord_t *d);

static void transfer_stored(baton_store_status_t st, json_t *res, const char *err, void *ud)
{
	ord_t *d = ud;

	if (st == BATON_STORE_CONFLICT && !d->leased && ++d->store_tries < 4) {
		transfer_look(d); /* another delivery of this order stored first: look again */
		return;
	}
	if (st != BATON_STORE_OK) {
		ord_store_failed(d, "order document", st, err);
		return;
	}
	d->leased = 0; /* the new document carries no lease */
	set_doc(d, res);
	publish_transferred(d);
}

/* Stores the transferred order: our content when it is at least as new as the stored one. */
static void transfer_store(ord_t *d)
{
	int64_t stored_v = json_integer_value(json_object_get(d->doc, "source_version"));
	json_t *doc;

	if (d->doc && stored_v > d->o.version) {
		doc = json_deep_copy(d->doc);
		json_object_del(doc, "lease_owner");
		json_object_del(doc, "lease_until_ms");
		if (!strcmp(doc_str(d, "status") ?: "", "pending_payment"))
			json_object_set_new(doc, "status", json_string("open"));
	} else {
		doc = orders_doc_new(&d->o, "open", d->erp_id, d->doc, baton_msg_id(d->m));
	}
	json_object_set_new(doc, "erp_order_id", json_string(d->erp_id));
	json_object_set_new(doc, "written_back", json_boolean(d->ctx->cfg.writeback));
	if (!doc || baton_store_doc_put(store(d), ORDERS_COLLECTION, d->ref, doc,
					d->doc ? d->doc_ver : 0, transfer_stored, d) != 0)
		ord_end(d, BATON_RETRY, "store.unavailable", 0, "store closing");
	json_decref(doc);
}

static void writeback_done(baton_msg_t *m, const baton_http_resp_t *r)
{
	ord_t *d = baton_msg_state(m);

	if (r->cls != BATON_HTTP_OK) {
		ord_end_http(d, r, "storefront");
		return;
	}
	transfer_store(d); /* the "transferred" entry says it was written back */
}

/* PUT /admin/api/orders/{id} with note_attributes erp_order_id: setting the same value again
 * is harmless, so a retry after a 429 or a crash simply repeats it. */
static void writeback(ord_t *d)
{
	char url[1024];
	size_t n;
	json_t *body;

	if (!d->ctx->cfg.writeback) {
		transfer_store(d);
		return;
	}
	n = (size_t)snprintf(url, sizeof(url), "%s", d->ctx->bc->storefront_url);
	while (n > 0 && url[n - 1] == '/')
		url[--n] = '\0';
	snprintf(url + n, sizeof(url) - n, "/admin/api/orders/%s", d->o.order_id);
	body = json_pack("{s:{s:[{s:s, s:s}]}}", "order", "note_attributes", "name",
			 "erp_order_id", "value", d->erp_id);
	if (!body || ord_http(d, "PUT", url, body, NULL, writeback_done) != 0)
		ord_end(d, BATON_RETRY, "storefront.request", 0, "cannot start the write-back");
	json_decref(body);
}

static void erp_recorded(baton_store_status_t st, json_t *res, const char *err, void *ud)
{
	ord_t *d = ud;
	const char *first;

	if (st == BATON_STORE_DUPLICATE) { /* recorded before (redelivery): that id is the one */
		first = json_string_value(
			json_object_get(json_object_get(res, "outcome"), "erp_order_id"));
		if (first && strlen(first) < sizeof(d->erp_id))
			snprintf(d->erp_id, sizeof(d->erp_id), "%s", first);
	} else if (st != BATON_STORE_OK) {
		ord_store_failed(d, "ERP ledger", st, err);
		return;
	}
	writeback(d);
}

static void erp_record(ord_t *d)
{
	json_t *out = json_pack("{s:s}", "erp_order_id", d->erp_id);

	if (baton_store_ledger_put(store(d), d->key, out, erp_recorded, d) != 0)
		ord_end(d, BATON_RETRY, "store.unavailable", 0, "store closing");
	json_decref(out);
}

/* The "id" of a sales order body; 0 when found. */
static int erp_id_from(ord_t *d, const json_t *so)
{
	const char *id = json_string_value(json_object_get(so, "id"));

	if (!id || !*id || strlen(id) >= sizeof(d->erp_id))
		return -1;
	snprintf(d->erp_id, sizeof(d->erp_id), "%s", id);
	return 0;
}

static void erp_created(baton_msg_t *m, const baton_http_resp_t *r)
{
	ord_t *d = baton_msg_state(m);
	char code[64];
	json_t *b;
	int bad;

	if (r->status == 422) {
		erp_error_code(r, code, sizeof(code));
		if (!strcmp(code, "idempotency_key_reused")) { /* a concurrent create won: adopt it */
			ord_end(d, BATON_RETRY, "erp.idempotency_conflict", r->status,
				"the ERP holds another request under %s; looking it up again", d->key);
			return;
		}
	}
	if (r->cls != BATON_HTTP_OK) {
		ord_end_http(d, r, "erp");
		return;
	}
	b = json_loadb(r->body, r->body_len, 0, NULL);
	bad = erp_id_from(d, b);
	json_decref(b);
	if (bad) {
		ord_end(d, BATON_RETRY, "erp.bad_response", r->status,
			"the ERP's answer to the sales order has no id: %.200s", r->body);
		return;
	}
	baton_msg_audit(m, "erp_created",
			json_pack("{s:s, s:s, s:I, s:b}", "order", d->ref, "erp_order_id",
				  d->erp_id, "http_status", (json_int_t)r->status, "replayed",
				  r->status == 200));
	erp_record(d);
}

static void erp_create(ord_t *d)
{
	char url[1024];
	json_t *body = orders_erp_body(&d->o, d->items, 1);

	erp_url(d, url, sizeof(url), "/api/sales_orders");
	if (!body || ord_http(d, "POST", url, body, d->key, erp_created) != 0)
		ord_end(d, BATON_RETRY, "erp.request", 0, "cannot start the ERP request");
	json_decref(body);
}

static void erp_looked_up(baton_msg_t *m, const baton_http_resp_t *r)
{
	ord_t *d = baton_msg_state(m);
	json_t *b, *list;
	int found;

	if (r->cls != BATON_HTTP_OK) {
		ord_end_http(d, r, "erp");
		return;
	}
	b = json_loadb(r->body, r->body_len, 0, NULL);
	list = json_object_get(b, "sales_orders");
	if (!json_is_array(list)) {
		json_decref(b);
		ord_end(d, BATON_RETRY, "erp.bad_response", r->status,
			"the ERP's sales order lookup is not {\"sales_orders\": [...]}: %.200s",
			r->body);
		return;
	}
	found = json_array_size(list) > 0 && erp_id_from(d, json_array_get(list, 0)) == 0;
	json_decref(b);
	if (!found) {
		erp_create(d);
		return;
	}
	baton_msg_audit(m, "erp_existing",
			json_pack("{s:s, s:s, s:s}", "order", d->ref, "erp_order_id", d->erp_id,
				  "found_by", "external_ref"));
	erp_record(d);
}

/* No ERP id in the document: ask the ERP by external reference before creating. */
static void erp_lookup(ord_t *d)
{
	char url[1024];
	char *esc = curl_easy_escape(NULL, d->ref, 0);

	erp_url(d, url, sizeof(url), "/api/sales_orders?external_ref=%s", esc ? esc : "");
	curl_free(esc);
	if (ord_http(d, "GET", url, NULL, NULL, erp_looked_up) != 0)
		ord_end(d, BATON_RETRY, "erp.request", 0, "cannot start the ERP request");
}

static void transfer_doc_got(baton_store_status_t st, json_t *res, const char *err, void *ud)
{
	ord_t *d = ud;
	const char *erp;

	if (st == BATON_STORE_NOT_FOUND) {
		json_decref(d->doc);
		d->doc = NULL;
		erp_lookup(d);
		return;
	}
	if (st != BATON_STORE_OK) {
		ord_store_failed(d, "order document", st, err);
		return;
	}
	set_doc(d, res);
	if (lease_by_other(d)) {
		ord_end(d, BATON_RETRY, "order.busy", 0,
			"order %s is being changed by another event (message %s)", d->ref,
			doc_str(d, "lease_owner"));
		return;
	}
	erp = doc_str(d, "erp_order_id");
	if (!erp && !strcmp(doc_str(d, "status") ?: "", "cancelled")) {
		/* cancelled while it waited for payment: nothing to transfer any more */
		baton_msg_audit(d->m, "ignored",
				json_pack("{s:s, s:s}", "order", d->ref, "reason",
					  "the order was cancelled before its transfer"));
		ord_ok(d);
		return;
	}
	if (!erp || strlen(erp) >= sizeof(d->erp_id)) {
		erp_lookup(d); /* waited for payment so far, or stored before the ERP answered */
		return;
	}
	snprintf(d->erp_id, sizeof(d->erp_id), "%s", erp);
	if (json_is_true(json_object_get(d->doc, "written_back")) ||
	    !d->ctx->cfg.writeback) {
		baton_msg_audit(d->m, "already_done",
				json_pack("{s:s, s:s}", "order", d->ref, "erp_order_id", erp));
		publish_transferred(d); /* same event id: consumers see one event */
		return;
	}
	writeback(d);
}

/* The create path of an order: from the document (or the lease holder's copy of it). */
static void transfer_look(ord_t *d)
{
	if (baton_store_doc_get(store(d), ORDERS_COLLECTION, d->ref, transfer_doc_got, d) != 0)
		ord_end(d, BATON_RETRY, "store.unavailable", 0, "store closing");
}

/* After the lease of an update on an order that waited for payment. */
static void transfer_leased(ord_t *d)
{
	erp_lookup(d);
}

/* ---------------------------------------------------------------------------------------- */
/* waiting: payment pending, or the order not known yet                                     */

static void wait_or_park(ord_t *d, const char *code, unsigned max_ms, const char *why)
{
	const baton_config_t *bc = d->ctx->bc;
	unsigned attempt = baton_msg_attempt(d->m);
	uint64_t waited = orders_waited_ms(bc, attempt);

	if (orders_wait_exceeded(bc, attempt, max_ms))
		ord_end(d, BATON_DEAD, code, 0, "%s; gave up after %u attempts (waited at least %.1f s, "
			"bound %.1f s)", why, attempt, (double)waited / 1000.0,
			(double)max_ms / 1000.0);
	else
		ord_end(d, BATON_RETRY, code, 0, "%s; waiting (attempt %u, waited at least %.1f s of "
			"%.1f s)", why, attempt, (double)waited / 1000.0, (double)max_ms / 1000.0);
}

static void payment_wait(ord_t *d)
{
	char why[320];

	snprintf(why, sizeof(why), "order %s: financial_status \"%s\" is not paid yet", d->ref,
		 d->o.financial_status);
	wait_or_park(d, "order.payment_pending", d->ctx->cfg.pending_max_ms, why);
}

static void pending_stored(baton_store_status_t st, json_t *res, const char *err, void *ud)
{
	ord_t *d = ud;

	if (st != BATON_STORE_OK) {
		ord_store_failed(d, "order document", st, err);
		return;
	}
	set_doc(d, res);
	baton_msg_audit(d->m, "stored",
			json_pack("{s:s, s:s, s:I}", "order", d->ref, "status", "pending_payment",
				  "doc_version", (json_int_t)d->doc_ver));
	payment_wait(d);
}

/* Records the order as waiting for payment (when newer than what is stored), then waits. */
static void pending_store(ord_t *d, int64_t expected)
{
	json_t *doc = orders_doc_new(&d->o, "pending_payment", NULL, d->doc, baton_msg_id(d->m));

	if (!doc || baton_store_doc_put(store(d), ORDERS_COLLECTION, d->ref, doc, expected,
					pending_stored, d) != 0)
		ord_end(d, BATON_RETRY, "store.unavailable", 0, "store closing");
	json_decref(doc);
}

static void pending_doc_got(baton_store_status_t st, json_t *res, const char *err, void *ud)
{
	ord_t *d = ud;
	int64_t sv;

	if (st == BATON_STORE_NOT_FOUND) {
		pending_store(d, 0);
		return;
	}
	if (st != BATON_STORE_OK) {
		ord_store_failed(d, "order document", st, err);
		return;
	}
	set_doc(d, res);
	sv = json_integer_value(json_object_get(d->doc, "source_version"));
	if (doc_str(d, "erp_order_id") || sv > d->o.version ||
	    strcmp(doc_str(d, "status") ?: "", "pending_payment")) {
		/* A newer event transferred, cancelled or now waits for this order. */
		baton_msg_audit(d->m, "superseded",
				json_pack("{s:s, s:s?, s:I, s:I}", "order", d->ref, "status",
					  doc_str(d, "status"), "stored_version", (json_int_t)sv,
					  "event_version", (json_int_t)d->o.version));
		ord_ok(d);
		return;
	}
	if (sv == d->o.version) {
		payment_wait(d);
		return;
	}
	if (lease_by_other(d)) {
		ord_end(d, BATON_RETRY, "order.busy", 0, "order %s is being changed", d->ref);
		return;
	}
	pending_store(d, d->doc_ver);
}

/* ---------------------------------------------------------------------------------------- */
/* updates and cancellations of a known order                                               */

typedef void (*leased_fn)(ord_t *d);

/* Takes the order's lease (version-checked), then runs next. */
typedef struct lease_call {
	ord_t *d;
	leased_fn next;
} lease_call_t;

static void lease_cb(baton_store_status_t st, json_t *res, const char *err, void *ud)
{
	lease_call_t *c = ud;
	ord_t *d = c->d;
	leased_fn next = c->next;

	free(c);
	if (st != BATON_STORE_OK) {
		ord_store_failed(d, "order lease", st, err);
		return;
	}
	set_doc(d, res);
	d->leased = 1;
	baton_msg_audit(d->m, "leased", json_pack("{s:s, s:I}", "order", d->ref, "doc_version",
						 (json_int_t)d->doc_ver));
	next(d);
}

static void lease_then(ord_t *d, leased_fn next)
{
	lease_call_t *c = malloc(sizeof(*c));
	json_t *doc = json_deep_copy(d->doc);

	if (c) {
		c->d = d;
		c->next = next;
	}
	json_object_set_new(doc, "lease_owner", json_string(baton_msg_id(d->m)));
	json_object_set_new(doc, "lease_until_ms",
			    json_integer(baton_store_now_ms() + d->ctx->cfg.lease_ms));
	if (!c || !doc ||
	    baton_store_doc_put(store(d), ORDERS_COLLECTION, d->ref, doc, d->doc_ver, lease_cb,
				c) != 0) {
		free(c);
		ord_end(d, BATON_RETRY, "store.unavailable", 0, "store closing");
	}
	json_decref(doc);
}

/* The final document of an update or cancel (lease cleared). */
static void final_stored(baton_store_status_t st, json_t *res, const char *err, void *ud)
{
	ord_t *d = ud;
	char id[300], subj[160];

	if (st != BATON_STORE_OK) {
		ord_store_failed(d, "order document", st, err);
		return;
	}
	d->leased = 0;
	set_doc(d, res);
	baton_msg_audit(d->m, "stored",
			json_pack("{s:s, s:s?, s:I, s:I}", "order", d->ref, "status",
				  doc_str(d, "status"), "doc_version", (json_int_t)d->doc_ver,
				  "source_version", (json_int_t)d->o.version));
	if (d->kind != K_CANCEL) {
		ord_ok(d);
		return;
	}
	snprintf(id, sizeof(id), "baton.order.cancelled:%s", d->ref);
	snprintf(subj, sizeof(subj), "order/%s", d->o.order_id);
	if (baton_msg_publish(d->m, "baton.order.cancelled", subj,
			      json_pack("{s:s, s:s, s:s?}", "order_id", d->o.order_id, "channel",
					d->o.channel, "erp_order_id", doc_str(d, "erp_order_id")),
			      id) != 0) {
		ord_end(d, BATON_RETRY, "publish.failed", 0, "cannot publish baton.order.cancelled");
		return;
	}
	baton_msg_audit(d->m, "published",
			json_pack("{s:s, s:s}", "event_type", "baton.order.cancelled", "event_id",
				  id));
	ord_ok(d);
}

static void final_put(ord_t *d, json_t *doc)
{
	if (!doc || baton_store_doc_put(store(d), ORDERS_COLLECTION, d->ref, doc, d->doc_ver,
					final_stored, d) != 0)
		ord_end(d, BATON_RETRY, "store.unavailable", 0, "store closing");
	json_decref(doc);
}

/* 409 from the ERP: the order is shipped or cancelled there; park for a person. */
static void erp_locked(ord_t *d, const baton_http_resp_t *r, const char *code_shipped)
{
	char code[64];

	erp_error_code(r, code, sizeof(code));
	if (!strcmp(code, "order_shipped"))
		ord_end_status(d, "shipped", BATON_DEAD, code_shipped, r->status,
			       "ERP sales order %s (order %s) is already shipped: %.300s",
			       d->erp_id, d->ref, r->body);
	else if (!strcmp(code, "order_cancelled"))
		ord_end_status(d, "cancelled", BATON_DEAD, "order.locked", r->status,
			       "ERP sales order %s (order %s) is cancelled: %.300s", d->erp_id,
			       d->ref, r->body);
	else
		ord_end_http(d, r, "erp");
}

static void erp_patched(baton_msg_t *m, const baton_http_resp_t *r)
{
	ord_t *d = baton_msg_state(m);

	if (r->status == 409) {
		erp_locked(d, r, "order.locked");
		return;
	}
	if (r->cls != BATON_HTTP_OK) {
		ord_end_http(d, r, "erp");
		return;
	}
	baton_msg_audit(m, "erp_updated",
			json_pack("{s:s, s:s, s:I}", "order", d->ref, "erp_order_id", d->erp_id,
				  "version", (json_int_t)d->o.version));
	final_put(d, orders_doc_new(&d->o, "open", d->erp_id, d->doc, baton_msg_id(m)));
}

static void erp_patch(ord_t *d)
{
	char url[1024];
	json_t *body = orders_erp_body(&d->o, d->items, 0);

	erp_url(d, url, sizeof(url), "/api/sales_orders/%s", d->erp_id);
	if (!body || ord_http(d, "PATCH", url, body, NULL, erp_patched) != 0)
		ord_end(d, BATON_RETRY, "erp.request", 0, "cannot start the ERP request");
	json_decref(body);
}

static void erp_cancelled(baton_msg_t *m, const baton_http_resp_t *r)
{
	ord_t *d = baton_msg_state(m);
	json_t *doc;
	char now[40];

	if (r->status == 409) {
		erp_locked(d, r, "order.cancel_after_ship");
		return;
	}
	if (r->cls != BATON_HTTP_OK) {
		ord_end_http(d, r, "erp");
		return;
	}
	baton_msg_audit(m, "erp_cancelled",
			json_pack("{s:s, s:s}", "order", d->ref, "erp_order_id", d->erp_id));
	doc = json_deep_copy(d->doc);
	json_object_del(doc, "lease_owner");
	json_object_del(doc, "lease_until_ms");
	baton_store_rfc3339_ms(baton_store_now_ms(), now, sizeof(now));
	json_object_set_new(doc, "status", json_string("cancelled"));
	json_object_set_new(doc, "cancelled_at", json_string(now));
	json_object_set_new(doc, "updated_at", json_string(now));
	json_object_set_new(doc, "last_message_id", json_string(baton_msg_id(m)));
	final_put(d, doc);
}

static void erp_cancel(ord_t *d)
{
	char url[1024];
	json_t *body = json_pack("{s:s}", "reason",
				 d->o.cancel_reason ? d->o.cancel_reason : "cancelled in the storefront");

	erp_url(d, url, sizeof(url), "/api/sales_orders/%s/cancel", d->erp_id);
	if (!body || ord_http(d, "POST", url, body, NULL, erp_cancelled) != 0)
		ord_end(d, BATON_RETRY, "erp.request", 0, "cannot start the ERP request");
	json_decref(body);
}

static void cancel_known(ord_t *d)
{
	const char *status = doc_str(d, "status") ?: "";
	json_t *doc;
	char now[40];

	if (!strcmp(status, "cancelled")) {
		baton_msg_audit(d->m, "already_done",
				json_pack("{s:s, s:s}", "order", d->ref, "status", status));
		ord_ok(d);
		return;
	}
	if (!strcmp(status, "shipped")) {
		ord_end(d, BATON_DEAD, "order.cancel_after_ship", 0,
			"order %s (ERP %s) is already shipped: it cannot be cancelled", d->ref,
			doc_str(d, "erp_order_id") ?: "?");
		return;
	}
	if (d->erp_id[0]) {
		lease_then(d, erp_cancel);
		return;
	}
	/* Still waiting for payment: nothing in the ERP, the document says it all. */
	doc = json_deep_copy(d->doc);
	baton_store_rfc3339_ms(baton_store_now_ms(), now, sizeof(now));
	json_object_set_new(doc, "status", json_string("cancelled"));
	json_object_set_new(doc, "cancelled_at", json_string(now));
	json_object_set_new(doc, "updated_at", json_string(now));
	json_object_set_new(doc, "last_message_id", json_string(baton_msg_id(d->m)));
	final_put(d, doc);
}

static void update_known(ord_t *d)
{
	const char *status = doc_str(d, "status") ?: "";
	int64_t sv = json_integer_value(json_object_get(d->doc, "source_version"));

	if (sv >= d->o.version) {
		baton_msg_audit(d->m, sv > d->o.version ? "stale" : "already_applied",
				json_pack("{s:s, s:I, s:I}", "order", d->ref, "stored_version",
					  (json_int_t)sv, "event_version", (json_int_t)d->o.version));
		ord_ok(d);
		return;
	}
	if (!strcmp(status, "cancelled")) {
		baton_msg_audit(d->m, "ignored",
				json_pack("{s:s, s:s}", "order", d->ref, "reason",
					  "the order is cancelled"));
		ord_ok(d);
		return;
	}
	if (!strcmp(status, "shipped")) {
		ord_end(d, BATON_DEAD, "order.locked", 0,
			"order %s (ERP %s) is already shipped: the update (version %lld) needs a "
			"person", d->ref, doc_str(d, "erp_order_id") ?: "?", (long long)d->o.version);
		return;
	}
	if (d->erp_id[0]) {
		lease_then(d, erp_patch);
		return;
	}
	/* The order still waits for payment: this newer version decides. */
	if (d->pay == ORDERS_PAY_IMPORT)
		lease_then(d, transfer_leased);
	else if (d->pay == ORDERS_PAY_WAIT)
		pending_store(d, d->doc_ver);
	else
		ord_end(d, BATON_DEAD, "order.payment_refused", 0,
			"order %s: financial_status \"%s\" is neither importable nor pending", d->ref,
			d->o.financial_status);
}

static void lifecycle_doc_got(baton_store_status_t st, json_t *res, const char *err, void *ud)
{
	ord_t *d = ud;
	char why[400];

	if (st == BATON_STORE_NOT_FOUND) {
		snprintf(why, sizeof(why), "order %s is not known yet (its %s arrived before its "
			 "creation)", d->ref, d->kind == K_CANCEL ? "cancellation" : "update");
		wait_or_park(d, "order.not_found", d->ctx->cfg.not_found_max_ms, why);
		return;
	}
	if (st != BATON_STORE_OK) {
		ord_store_failed(d, "order document", st, err);
		return;
	}
	set_doc(d, res);
	snprintf(d->erp_id, sizeof(d->erp_id), "%s", doc_str(d, "erp_order_id") ?: "");
	if (lease_by_other(d)) {
		ord_end(d, BATON_RETRY, "order.busy", 0,
			"order %s is being changed by another event (message %s)", d->ref,
			doc_str(d, "lease_owner"));
		return;
	}
	if (d->kind == K_CANCEL)
		cancel_known(d);
	else
		update_known(d);
}

/* ---------------------------------------------------------------------------------------- */
/* start: validation, SKU mapping                                                           */

static void after_mapping(ord_t *d)
{
	if (d->kind == K_CREATE) {
		if (d->pay == ORDERS_PAY_REFUSE)
			ord_end(d, BATON_DEAD, "order.payment_refused", 0,
				"order %s: financial_status \"%s\" is neither importable nor pending",
				d->ref, d->o.financial_status);
		else if (d->pay == ORDERS_PAY_WAIT &&
			 baton_store_doc_get(store(d), ORDERS_COLLECTION, d->ref, pending_doc_got,
					     d) != 0)
			ord_end(d, BATON_RETRY, "store.unavailable", 0, "store closing");
		else if (d->pay == ORDERS_PAY_IMPORT)
			transfer_look(d);
		return;
	}
	if (baton_store_doc_get(store(d), ORDERS_COLLECTION, d->ref, lifecycle_doc_got, d) != 0)
		ord_end(d, BATON_RETRY, "store.unavailable", 0, "store closing");
}

static void map_next(ord_t *d);

static void item_answered(baton_msg_t *m, const baton_http_resp_t *r)
{
	ord_t *d = baton_msg_state(m);
	size_t i = 0;
	json_t *item;

	while (i < d->o.n_lines && d->items[i])
		i++;
	if (r->status == 404) {
		json_array_append_new(d->unmapped, json_string(d->o.lines[i].sku));
		for (size_t j = i; j < d->o.n_lines; j++) /* "" marks: looked up, unknown */
			if (!d->items[j] && !strcmp(d->o.lines[j].sku, d->o.lines[i].sku))
				d->items[j] = "";
		map_next(d);
		return;
	}
	if (r->cls != BATON_HTTP_OK) {
		ord_end_http(d, r, "erp");
		return;
	}
	json_object_set_new(d->ctx->item_cache, d->o.lines[i].sku,
			    json_string(d->o.lines[i].sku));
	item = json_object_get(d->ctx->item_cache, d->o.lines[i].sku);
	for (size_t j = i; j < d->o.n_lines; j++)
		if (!d->items[j] && !strcmp(d->o.lines[j].sku, d->o.lines[i].sku))
			d->items[j] = json_string_value(item);
	map_next(d);
}

/* Looks up the next line without an item in the ERP item master; when none is left, parks
 * the unmapped ones or goes on. */
static void map_next(ord_t *d)
{
	char url[1024], *esc;
	size_t i = 0;

	while (i < d->o.n_lines && d->items[i])
		i++;
	if (i < d->o.n_lines) {
		esc = curl_easy_escape(NULL, d->o.lines[i].sku, 0);
		erp_url(d, url, sizeof(url), "/api/items/%s", esc ? esc : "");
		curl_free(esc);
		if (ord_http(d, "GET", url, NULL, NULL, item_answered) != 0)
			ord_end(d, BATON_RETRY, "erp.request", 0, "cannot start the ERP request");
		return;
	}
	if (json_array_size(d->unmapped)) {
		char list[700] = "";
		size_t k, n = 0;
		json_t *s;
		json_array_foreach(d->unmapped, k, s)
			n += (size_t)snprintf(list + n, n < sizeof(list) ? sizeof(list) - n : 0,
					      "%s%s", k ? ", " : "", json_string_value(s));
		baton_msg_audit(d->m, "sku_unmapped",
				json_pack("{s:s, s:O}", "order", d->ref, "skus", d->unmapped));
		ord_end(d, BATON_DEAD, "sku.unmapped", 0,
			"order %s: %zu SKU(s) of channel %s have no ERP item: %s", d->ref,
			json_array_size(d->unmapped), d->o.channel, list);
		return;
	}
	after_mapping(d);
}

static void map_skus(ord_t *d)
{
	const orders_config_t *c = &d->ctx->cfg;

	for (size_t i = 0; i < d->o.n_lines; i++) {
		const char *sku = d->o.lines[i].sku;
		d->items[i] = orders_sku_lookup(c, d->o.channel, sku);
		if (!d->items[i])
			d->items[i] = json_string_value(json_object_get(d->ctx->item_cache, sku));
		if (!d->items[i] && !c->item_lookup) {
			d->items[i] = "";
			int seen = 0;
			for (size_t j = 0; j < i; j++)
				seen |= !strcmp(d->o.lines[j].sku, sku);
			if (!seen)
				json_array_append_new(d->unmapped, json_string(sku));
		}
	}
	map_next(d);
}

static void ord_start(baton_msg_t *m, kind_t kind)
{
	baton_flow_t *f = baton_msg_flow(m);
	ord_t *d = calloc(1, sizeof(*d));
	char err[BATON_MODEL_ERR_MAX];

	if (!d) {
		baton_msg_done(m, BATON_RETRY, "oom", 0, "out of memory");
		return;
	}
	d->m = m;
	d->f = f;
	d->ctx = baton_flow_data(f);
	d->kind = kind;
	baton_msg_set_state(m, d, ord_free);
	if (baton_order_decode(baton_msg_data(m), &d->o, err, sizeof(err)) != 0 ||
	    baton_order_check_totals(&d->o, d->ctx->cfg.tolerance, err, sizeof(err)) != 0) {
		baton_msg_done(m, BATON_DEAD, "payload.invalid", 0, "%s", err);
		return;
	}
	d->items = calloc(d->o.n_lines, sizeof(*d->items));
	d->unmapped = json_array();
	if (!d->items || !d->unmapped) {
		baton_msg_done(m, BATON_RETRY, "oom", 0, "out of memory");
		return;
	}
	orders_ref(&d->o, d->ref, sizeof(d->ref));
	snprintf(d->key, sizeof(d->key), "erp.sales_order:%s", d->ref);
	d->pay = orders_payment_rule(&d->ctx->cfg, d->o.financial_status);
	map_skus(d);
}

void orders_on_created(baton_msg_t *m) { ord_start(m, K_CREATE); }
void orders_on_updated(baton_msg_t *m) { ord_start(m, K_UPDATE); }
void orders_on_cancelled(baton_msg_t *m) { ord_start(m, K_CANCEL); }

/* ---------------------------------------------------------------------------------------- */
/* setup                                                                                    */

int orders_setup(baton_flow_t *f, char *err, size_t errlen)
{
	orders_ctx_t *ctx = calloc(1, sizeof(*ctx));
	char problems[4096];
	int n;

	if (!ctx) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	ctx->bc = baton_flow_config(f);
	n = orders_config_parse(ctx->bc, &ctx->cfg, problems, sizeof(problems));
	ctx->item_cache = json_object();
	if (n > 0) {
		for (char *line = strtok(problems, "\n"); line; line = strtok(NULL, "\n"))
			BATON_ERROR(NULL, "config.invalid", "%s", line);
		snprintf(err, errlen, "%d configuration problem%s (listed above)", n,
			 n == 1 ? "" : "s");
		orders_config_free(&ctx->cfg);
		json_decref(ctx->item_cache);
		free(ctx);
		return -1;
	}
	if (orders_waited_ms(ctx->bc, ctx->bc->n_retry_tiers + 1) < ctx->cfg.pending_max_ms)
		BATON_WARN(NULL, "config.bound",
			   "orders.payment.pending_max exceeds the sum of BATON_RETRY_TIERS: pending "
			   "orders are parked (exhausted) when the last tier is used up");
	baton_flow_set_data(f, ctx);
	return 0;
}

void orders_teardown(baton_flow_t *f)
{
	orders_ctx_t *ctx = baton_flow_data(f);

	if (!ctx)
		return;
	orders_config_free(&ctx->cfg);
	json_decref(ctx->item_cache);
	free(ctx);
	baton_flow_set_data(f, NULL);
}
