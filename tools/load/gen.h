/* gen.h — baton-load's event generator (pure: no I/O): realistic streams of storefront orders
 * (1-20 lines over a SKU catalogue with Zipf-skewed popularity), their updates and cancellations,
 * and ERP stock movements, as CloudEvents 1.0 JSON in the shapes of the public contracts.
 * Money is computed in integer minor units and written as decimal strings. */
#ifndef BATON_LOAD_GEN_H
#define BATON_LOAD_GEN_H

#include <stddef.h>
#include <stdint.h>

enum load_kind { LOAD_ORDER, LOAD_UPDATE, LOAD_CANCEL, LOAD_STOCK, LOAD_KINDS };

extern const char *const load_kind_types[LOAD_KINDS]; /* event types, by kind */
extern const char *const load_kind_names[LOAD_KINDS]; /* "orders", "updates", ... */

typedef struct load_opts {
	uint64_t seed;          /* content (SKUs, quantities, prices, choices) */
	int skus;               /* catalogue size */
	double zipf_s;          /* popularity skew exponent */
	double unmapped_share;  /* fraction of order lines with a SKU outside the catalogue */
	double mix[LOAD_KINDS]; /* relative shares of orders, updates, cancels, stock */
	const char *channel;
	const char *currency;
	const char *run_id;     /* prefix of order ids, so runs never collide */
	int locations;          /* stock locations WH-1..WH-n */
	int tax_bp;             /* tax rate in basis points */
	uint64_t id_seed;       /* event ids */
	int64_t seq_base;       /* first stock sequence - 1 */
} load_opts_t;

typedef struct load_event {
	enum load_kind kind;
	const char *type;
	char id[37];
	const char *body;       /* valid until the next load_gen_next */
	size_t len;
	int lines, unmapped;
} load_event_t;

typedef struct load_gen load_gen_t;

void load_opts_defaults(load_opts_t *o);
/* Parses "orders=60,updates=15,cancels=5,stock=20" (any subset; shares are relative). */
int load_parse_mix(const char *s, double mix[LOAD_KINDS]);
load_gen_t *load_gen_new(const load_opts_t *o);
/* Produces the next event. Updates and cancellations refer to orders this generator created
 * (an order is produced instead while there are none). Returns 0 or -1 (out of memory). */
int load_gen_next(load_gen_t *g, load_event_t *ev);
void load_gen_free(load_gen_t *g);

#endif
