/* ats.c — available-to-sell arithmetic. See ats.h. */
#include "ats.h"

static int64_t nonneg(int64_t v) { return v < 0 ? 0 : v; }

int64_t ats_add(int64_t a, int64_t b)
{
	int64_t r;

	if (__builtin_add_overflow(a, b, &r))
		return b > 0 ? INT64_MAX : INT64_MIN;
	return r;
}

int64_t ats_sub(int64_t a, int64_t b)
{
	int64_t r;

	if (__builtin_sub_overflow(a, b, &r))
		return b < 0 ? INT64_MAX : INT64_MIN;
	return r;
}

int64_t ats_location_net(const ats_position_t *p)
{
	int64_t v = nonneg(p->on_hand);

	v = ats_sub(v, nonneg(p->allocated));
	v = ats_sub(v, nonneg(p->reserved));
	return ats_sub(v, nonneg(p->unavailable));
}

int64_t ats_pool(const ats_position_t *pos, size_t n, int64_t open_orders)
{
	int64_t sum = 0;

	for (size_t i = 0; i < n; i++)
		sum = ats_add(sum, ats_location_net(&pos[i]));
	return ats_sub(sum, nonneg(open_orders));
}

int64_t ats_kit_pool(const ats_component_t *c, size_t n)
{
	int64_t best = INT64_MAX;

	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		int64_t kits;

		if (c[i].pool <= 0 || c[i].per_kit <= 0)
			return 0;
		kits = c[i].pool / c[i].per_kit; /* both positive: truncation is floor */
		if (kits < best)
			best = kits;
	}
	return best;
}

int64_t ats_final(int64_t pool, int64_t buffer, uint32_t share_ppm)
{
	int64_t v = ats_sub(pool, nonneg(buffer));
	unsigned __int128 scaled;

	if (v <= 0)
		return 0;
	if (share_ppm >= ATS_SHARE_FULL)
		return v;
	scaled = (unsigned __int128)(uint64_t)v * share_ppm / ATS_SHARE_FULL;
	return (int64_t)scaled; /* ≤ v: fits */
}
