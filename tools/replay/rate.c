/* rate.c — token bucket. See rate.h. */
#include "rate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int rp_rate_parse(const char *s, double *per_s)
{
	char *end;
	double v;

	if (!s || !*s)
		return -1;
	v = strtod(s, &end);
	if (end == s || !isfinite(v) || v <= 0 || v > 1e7)
		return -1;
	if (!strcmp(end, "") || !strcmp(end, "/s"))
		*per_s = v;
	else if (!strcmp(end, "/m"))
		*per_s = v / 60.0;
	else
		return -1;
	return 0;
}

void rp_rate_init(rp_rate_t *r, double per_s, double now)
{
	r->per_s = per_s > 0 ? per_s : 0;
	r->tokens = 1;
	r->last = now;
}

double rp_rate_delay(rp_rate_t *r, double now)
{
	if (r->per_s <= 0)
		return 0;
	if (now > r->last) {
		r->tokens += (now - r->last) * r->per_s;
		if (r->tokens > 1)
			r->tokens = 1;
		r->last = now;
	}
	if (r->tokens >= 1 - 1e-9) {
		r->tokens -= 1;
		return 0;
	}
	return (1 - r->tokens) / r->per_s;
}
