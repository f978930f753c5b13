/* rate.h — the --rate limiter (pure, unit-tested): a token bucket with a burst of one, so N
 * messages at R/s take at least (N - 1) / R seconds. */
#ifndef RP_RATE_H
#define RP_RATE_H

typedef struct rp_rate {
	double per_s;   /* 0: unlimited */
	double tokens;
	double last;    /* seconds, monotonic */
} rp_rate_t;

/* "50", "50/s", "300/m", "0.5/s". 0 and *per_s, or -1 (zero, negative, junk). */
int rp_rate_parse(const char *s, double *per_s);
void rp_rate_init(rp_rate_t *r, double per_s, double now);
/* Seconds to wait before the next message may go; 0 means go now (and consumes the token). */
double rp_rate_delay(rp_rate_t *r, double now);

#endif
