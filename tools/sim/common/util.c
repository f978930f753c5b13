/* util.c — seeded RNG, money, time, ids and the leaky bucket: the pure parts of the simulators. */
#include "sim.h"

#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

void sim_rng_seed(sim_rng_t *r, uint64_t seed)
{
	r->s = seed;
}

uint64_t sim_rng_next(sim_rng_t *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

double sim_rng_uniform(sim_rng_t *r)
{
	return (double)(sim_rng_next(r) >> 11) * 0x1.0p-53;
}

int64_t sim_rng_range(sim_rng_t *r, int64_t lo, int64_t hi)
{
	if (hi <= lo)
		return lo;
	return lo + (int64_t)(sim_rng_next(r) % (uint64_t)(hi - lo + 1));
}

uint64_t sim_random_seed(void)
{
	uint64_t v = 0;

	if (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v))
		v = (uint64_t)time(NULL) ^ ((uint64_t)clock() << 32);
	return v;
}

int sim_money_parse(const char *s, int64_t *minor)
{
	int64_t units = 0, frac = 0;
	int neg = 0, digits = 0, fdigits = 0;

	if (!s || !*s)
		return -1;
	if (*s == '-') {
		neg = 1;
		s++;
	}
	for (; isdigit((unsigned char)*s); s++, digits++) {
		if (units > (INT64_MAX / 100 - 9) / 10)
			return -1;
		units = units * 10 + (*s - '0');
	}
	if (digits == 0)
		return -1;
	if (*s == '.') {
		s++;
		for (; isdigit((unsigned char)*s); s++, fdigits++) {
			if (fdigits >= 2)
				return -1;
			frac = frac * 10 + (*s - '0');
		}
		if (fdigits == 0)
			return -1;
		if (fdigits == 1)
			frac *= 10;
	}
	if (*s)
		return -1;
	*minor = (units * 100 + frac) * (neg ? -1 : 1);
	return 0;
}

char *sim_money_format(int64_t minor, char *buf, size_t len)
{
	uint64_t a = minor < 0 ? (uint64_t)0 - (uint64_t)minor : (uint64_t)minor;

	snprintf(buf, len, "%s%" PRIu64 ".%02" PRIu64, minor < 0 ? "-" : "", a / 100, a % 100);
	return buf;
}

int64_t sim_money_rate(int64_t amount, int rate_bp)
{
	int64_t p = amount * rate_bp;

	return p >= 0 ? (p + 5000) / 10000 : -((-p + 5000) / 10000);
}

double sim_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

char *sim_rfc3339(char *buf, size_t len)
{
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf;
}

static void uuid_text(uint8_t b[16], char out[37])
{
	b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
	b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
	snprintf(out, 37,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
		 b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
		 b[14], b[15]);
}

void sim_uuid(char out[37])
{
	uint8_t b[16];
	sim_rng_t r;

	if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b)) {
		sim_rng_seed(&r, sim_random_seed() ^ (uint64_t)(uintptr_t)out);
		sim_uuid_rng(&r, out);
		return;
	}
	uuid_text(b, out);
}

void sim_uuid_rng(sim_rng_t *r, char out[37])
{
	uint8_t b[16];
	uint64_t x = sim_rng_next(r), y = sim_rng_next(r);

	memcpy(b, &x, 8);
	memcpy(b + 8, &y, 8);
	uuid_text(b, out);
}

bool sim_bucket_take(sim_bucket_t *b, double size, double leak, double now, double *retry_after,
		     double *used)
{
	double level = b->level;

	if (now > b->last)
		level -= (now - b->last) * leak;
	if (level < 0)
		level = 0;
	b->level = level;
	b->last = now > b->last ? now : b->last;
	/* A small epsilon so that a bucket that has leaked exactly one request accepts it. */
	if (level + 1.0 <= size + 1e-9) {
		b->level = level + 1.0;
		*retry_after = 0;
		*used = b->level;
		return true;
	}
	*retry_after = leak > 0 ? (level + 1.0 - size) / leak : 1e9;
	*used = level;
	return false;
}
