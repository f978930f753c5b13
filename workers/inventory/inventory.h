/* inventory.h — baton-inventory: stock positions, reservations, available-to-sell publishing.
 *
 *   inv_config.c   the "inventory" section of BATON_CONFIG (channels, buffers, kits...)
 *   inv_stock.c    event handlers: positions (erp/wms.stock.changed), reservations
 *                  (storefront.order.created/cancelled); durable state in MongoDB
 *   inv_publish.c  the publisher: coalesces dirty SKUs, computes ATS, compare-and-set writes to
 *                  the storefront under its rate limit, drift pass
 * See README.md for the formula, the documents and the guarantees. */
#ifndef BATON_INVENTORY_H
#define BATON_INVENTORY_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "ats.h"
#include "baton/flow.h"

#define INV_COLL_STOCK "inventory"           /* one document per SKU, _id = SKU */
#define INV_COLL_PUBLISHED "inventory_published" /* _id = "<channel>:<sku>" */
#define INV_MAX_NAME 128                     /* SKU, location, channel, order id (bytes) */
#define INV_MAX_KIT_PARTS 32

/* A name from config or an event: 1 to INV_MAX_NAME - 1 bytes, no control characters. */
int inv_valid_name(const char *s);

typedef struct inv_channel {
	char *name;
	char *storefront_location; /* location_id written on the storefront */
	char **locations;          /* enabled locations feeding it */
	size_t n_locations;
	int64_t buffer;            /* safety buffer */
	json_t *sku_buffers;       /* sku -> integer override (owned) */
	uint32_t share_ppm;        /* allocation share, ATS_SHARE_FULL = 100 % */
} inv_channel_t;

typedef struct inv_kit_part {
	char *sku;
	int64_t per_kit;
} inv_kit_part_t;

typedef struct inv_kit {
	char *sku;
	inv_kit_part_t *parts;
	size_t n_parts;
} inv_kit_t;

typedef struct inv_config {
	inv_channel_t *channels;
	size_t n_channels;
	inv_kit_t *kits;
	size_t n_kits;
	unsigned coalesce_ms;    /* publisher tick: bursts within it become one write */
	unsigned drift_ms;       /* periodic drift pass; 0 = only on demand (SIGUSR1) */
	unsigned unheard_grace_ms; /* drift: unheard checkouts older than this are forgotten */
	unsigned max_batch;      /* SKUs per storefront write */
	double bucket_size;      /* storefront leaky bucket mirrored on our side */
	double leak_rate;        /* requests per second */
	unsigned max_reservations; /* closed reservations kept per SKU document */
} inv_config_t;

/* --- inv_config.c --------------------------------------------------------------------------- */

/* Parses root["inventory"] (root may be NULL: then an error). Every problem is logged as its
 * own line (event config.invalid); err gets a summary. 0 or -1 (cfg then empty). */
int inv_config_parse(inv_config_t *cfg, const json_t *root, char *err, size_t errlen);
void inv_config_free(inv_config_t *cfg);
const inv_kit_t *inv_config_kit(const inv_config_t *cfg, const char *sku);
const inv_channel_t *inv_config_channel(const inv_config_t *cfg, const char *name);
int inv_channel_has_location(const inv_channel_t *ch, const char *loc);
int64_t inv_channel_buffer(const inv_channel_t *ch, const char *sku);

/* --- inv_stock.c: the handlers ------------------------------------------------------------- */

void inv_on_stock(baton_msg_t *m);
void inv_on_order_created(baton_msg_t *m);
void inv_on_order_cancelled(baton_msg_t *m);

/* Pure helpers on a SKU document (exposed for unit tests). */
/* Applies a position {location, source, on_hand, allocated, reserved, unavailable, sequence,
 * as_of} to doc: 1 applied, 0 stale, -1 duplicate (same sequence). Retires open reservations
 * FIFO by the rise of Σ allocated. */
int inv_doc_apply_position(json_t *doc, const json_t *pos, int64_t *retired);
/* Adds reservation ref (qty, channel or NULL) unless ref is known: 1 added, 0 known. */
int inv_doc_reserve(json_t *doc, const char *ref, int64_t qty, int counts, const char *channel,
		    int64_t now_ms, unsigned keep_closed);
/* Releases reservation ref (a tombstone when unknown): 1 released, 0 nothing to do. */
int inv_doc_release(json_t *doc, const char *ref, int64_t now_ms, unsigned keep_closed);
/* Σ open reservation quantities. */
int64_t inv_doc_open_orders(const json_t *doc);
/* Checkouts of the channel ever counted on this SKU. */
int64_t inv_doc_sold(const json_t *doc, const char *channel);
/* The pool of sku for ch from its document (or, for a kit, from its components' documents in
 * docs: sku -> doc, missing = empty). inputs (may be NULL) gets what went into it. */
int64_t inv_pool(const inv_config_t *cfg, const inv_channel_t *ch, const char *sku,
		 const json_t *docs, json_t *inputs);

/* --- inv_publish.c --------------------------------------------------------------------------- */

typedef struct inv_publisher inv_publisher_t;

/* The flow's state (baton_flow_data). */
typedef struct inv_state {
	inv_config_t cfg;
	inv_publisher_t *pub;
	/* inv_stock.c: one read-modify-write per SKU at a time in this process (concurrent
	 * messages for a hot SKU would otherwise only collide on the document's version) */
	json_t *busy;    /* sku -> true while a message changes it */
	void *waiters;   /* messages waiting for a busy SKU, in arrival order */
} inv_state_t;

/* Started in setup on the default loop; its handles are unreferenced (they do not keep the
 * worker alive) and closed in inv_publisher_free. */
inv_publisher_t *inv_publisher_new(baton_flow_t *f, const inv_config_t *cfg);
void inv_publisher_free(inv_publisher_t *p);
/* sku's number may have changed (for every channel, and for the kits it is part of). */
void inv_publisher_mark(inv_publisher_t *p, const char *sku);
/* Queues a drift pass (read back every level, compare, correct, report). */
void inv_publisher_drift(inv_publisher_t *p);

#endif
