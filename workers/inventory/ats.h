/* ats.h — available to sell: the pure arithmetic behind baton-inventory (no I/O).
 *
 *   pool(channel, sku) = Σ over the channel's enabled locations of
 *                          (on_hand − allocated − reserved − unavailable)
 *                        − open orders not yet allocated by the ERP
 *   ATS = floor(max(0, pool − safety buffer) × allocation share)
 *
 * A kit's pool is the minimum over its components of floor(component pool ÷ quantity per kit)
 * (a component with a pool ≤ 0 makes the kit 0); the kit's own buffer and share then apply.
 *
 * All arithmetic saturates at INT64_MIN/INT64_MAX instead of overflowing, and negative inputs
 * (on hand, allocated, reserved, unavailable, open orders, buffer) count as 0. A location's
 * term is not clamped: an over-allocated location reduces the channel's pool, the conservative
 * reading (it never invents stock). */
#ifndef BATON_INV_ATS_H
#define BATON_INV_ATS_H

#include <stddef.h>
#include <stdint.h>

/* Allocation share in parts per million: 1000000 = 100 %. */
#define ATS_SHARE_FULL 1000000u

typedef struct ats_position {
	int64_t on_hand, allocated, reserved, unavailable;
} ats_position_t;

typedef struct ats_component {
	int64_t pool;    /* the component's pool (ats_pool) */
	int64_t per_kit; /* units of the component in one kit, > 0 */
} ats_component_t;

/* Saturating a + b and a − b. */
int64_t ats_add(int64_t a, int64_t b);
int64_t ats_sub(int64_t a, int64_t b);

/* One location's term: on_hand − allocated − reserved − unavailable (inputs clamped ≥ 0). */
int64_t ats_location_net(const ats_position_t *p);
/* Σ of the locations' terms − open_orders (may be negative). */
int64_t ats_pool(const ats_position_t *pos, size_t n, int64_t open_orders);
/* Kit pool: min over components of floor(pool ÷ per_kit); 0 when n == 0, when a component's
 * pool is ≤ 0 or its per_kit is ≤ 0. */
int64_t ats_kit_pool(const ats_component_t *c, size_t n);
/* floor(max(0, pool − buffer) × share_ppm ÷ 1000000); share_ppm above 100 % counts as 100 %. */
int64_t ats_final(int64_t pool, int64_t buffer, uint32_t share_ppm);

#endif
