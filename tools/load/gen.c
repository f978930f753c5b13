/* gen.c — baton-load's event generator: see gen.h. Written with a string builder rather than a
 * JSON library so that generation never limits the publish rate. All names and SKUs come from
 * fixed ASCII tables, so nothing needs escaping. */
#include "gen.h"

#include "sim.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *const load_kind_types[LOAD_KINDS] = {
	"storefront.order.created", "storefront.order.updated", "storefront.order.cancelled",
	"erp.stock.changed"};
const char *const load_kind_names[LOAD_KINDS] = {"orders", "updates", "cancels", "stock"};

#define TRACK_MAX (1u << 20)

typedef struct tracked {
	uint64_t seed;
	uint64_t n;       /* order number */
	uint32_t version;
	uint32_t placed;  /* unix time of creation */
	int cancelled;
} tracked_t;

typedef struct sb {
	char *p;
	size_t len, cap;
	int oom;
} sb_t;

struct load_gen {
	load_opts_t o;
	sim_rng_t rng, ids;
	double *cdf;
	double mix_cdf[LOAD_KINDS];
	tracked_t *orders;
	size_t norders, nlive_hint;
	uint64_t next_order;
	int64_t seq;
	sb_t sb;
	time_t now_t;
	char now[32];
};

static const char *const first[] = {"Ana", "Luis", "Marta", "Jon", "Emma", "Noah", "Lea",
				    "Paul", "Sofia", "Ivan", "Clara", "Omar"};
static const char *const last[] = {"Diaz", "Garcia", "Muller", "Rossi", "Dubois", "Novak",
				   "Smith", "Silva", "Jansen", "Kowalski"};
static const struct {
	const char *city, *postal, *country;
} places[] = {{"Madrid", "28013", "ES"}, {"Berlin", "10115", "DE"}, {"Paris", "75001", "FR"},
	      {"Milano", "20121", "IT"},  {"Lisboa", "1100-148", "PT"}, {"Wien", "1010", "AT"},
	      {"Amsterdam", "1012", "NL"}};
static const char *const streets[] = {"Calle Mayor", "Hauptstrasse", "Rue de Rivoli",
				      "Via Roma", "Rua Augusta", "Ringstrasse", "Damrak"};

static void sb_printf(sb_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sb_t *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = 1;
			return;
		}
		if ((size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = b->cap * 2 + (size_t)n;
		char *p = realloc(b->p, cap);
		if (!p) {
			b->oom = 1;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
}

void load_opts_defaults(load_opts_t *o)
{
	memset(o, 0, sizeof(*o));
	o->seed = 1;
	o->skus = 1000;
	o->zipf_s = 1.1;
	o->mix[LOAD_ORDER] = 60;
	o->mix[LOAD_UPDATE] = 15;
	o->mix[LOAD_CANCEL] = 5;
	o->mix[LOAD_STOCK] = 20;
	o->channel = "shop-eu";
	o->currency = "EUR";
	o->run_id = "LD";
	o->locations = 3;
	o->tax_bp = 2100;
}

int load_parse_mix(const char *s, double mix[LOAD_KINDS])
{
	char buf[256], *save = NULL, *tok;
	double m[LOAD_KINDS] = {0}, sum = 0;

	if (!s || strlen(s) >= sizeof(buf))
		return -1;
	strcpy(buf, s);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '='), *end;
		int k;
		if (!eq)
			return -1;
		*eq = '\0';
		for (k = 0; k < LOAD_KINDS && strcmp(tok, load_kind_names[k]); k++)
			;
		if (k == LOAD_KINDS)
			return -1;
		m[k] = strtod(eq + 1, &end);
		if (*end || eq[1] == '\0' || m[k] < 0)
			return -1;
	}
	for (int k = 0; k < LOAD_KINDS; k++)
		sum += m[k];
	if (sum <= 0)
		return -1;
	memcpy(mix, m, sizeof(m));
	return 0;
}

load_gen_t *load_gen_new(const load_opts_t *o)
{
	load_gen_t *g = calloc(1, sizeof(*g));
	double sum = 0, acc = 0;

	if (!g)
		return NULL;
	g->o = *o;
	if (g->o.skus < 1)
		g->o.skus = 1;
	if (g->o.locations < 1)
		g->o.locations = 1;
	sim_rng_seed(&g->rng, o->seed);
	sim_rng_seed(&g->ids, o->id_seed ? o->id_seed : o->seed ^ 0x5bd1e995u);
	g->cdf = malloc(sizeof(double) * (size_t)g->o.skus);
	g->orders = calloc(TRACK_MAX, sizeof(tracked_t));
	g->sb.cap = 16384;
	g->sb.p = malloc(g->sb.cap);
	if (!g->cdf || !g->orders || !g->sb.p) {
		load_gen_free(g);
		return NULL;
	}
	for (int k = 0; k < g->o.skus; k++)
		sum += 1.0 / pow(k + 1, g->o.zipf_s);
	for (int k = 0; k < g->o.skus; k++) {
		acc += 1.0 / pow(k + 1, g->o.zipf_s) / sum;
		g->cdf[k] = acc;
	}
	sum = 0;
	for (int k = 0; k < LOAD_KINDS; k++)
		sum += o->mix[k];
	acc = 0;
	for (int k = 0; k < LOAD_KINDS; k++) {
		acc += sum > 0 ? o->mix[k] / sum : (k == 0);
		g->mix_cdf[k] = acc;
	}
	g->seq = o->seq_base;
	return g;
}

void load_gen_free(load_gen_t *g)
{
	if (!g)
		return;
	free(g->cdf);
	free(g->orders);
	free(g->sb.p);
	free(g);
}

/* Catalogue index with Zipf popularity (0 is the best seller). */
static int zipf(load_gen_t *g, sim_rng_t *r)
{
	double u = sim_rng_uniform(r);
	int lo = 0, hi = g->o.skus - 1;

	while (lo < hi) {
		int mid = (lo + hi) / 2;
		if (g->cdf[mid] < u)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* A stable price per SKU: x.90 between 1.90 and 99.90. */
static int64_t sku_price(int k)
{
	return (int64_t)((((uint64_t)k * 7919u) % 98u) + 1u) * 100 + 90;
}

static const char *fmt_money(int64_t v, char *buf)
{
	return sim_money_format(v, buf, 32);
}

static void refresh_now(load_gen_t *g)
{
	time_t t = time(NULL);

	if (t != g->now_t) {
		struct tm tm;
		g->now_t = t;
		gmtime_r(&t, &tm);
		strftime(g->now, sizeof(g->now), "%Y-%m-%dT%H:%M:%SZ", &tm);
	}
}

static void envelope_open(load_gen_t *g, load_event_t *ev, const char *source,
			  const char *subject_kind, const char *subject)
{
	sim_uuid_rng(&g->ids, ev->id);
	sb_printf(&g->sb,
		  "{\"specversion\":\"1.0\",\"id\":\"%s\",\"source\":\"%s\",\"type\":\"%s\","
		  "\"subject\":\"%s/%s\",\"time\":\"%s\",\"datacontenttype\":\"application/json\","
		  "\"data\":",
		  ev->id, source, ev->type, subject_kind, subject, g->now);
}

/* The whole order, from its seed: the same seed and version give the same document. */
static void write_order(load_gen_t *g, load_event_t *ev, const tracked_t *t)
{
	sim_rng_t r;
	char id[96], src[96], ts[32], m[7][32];
	int nlines, fi, li, pi, si;
	int64_t sub = 0, disc = 0, tax = 0, ship = 490, ship_tax;
	const char *status = t->cancelled ? "voided" : "paid";
	struct tm tm;
	time_t placed = (time_t)t->placed;

	sim_rng_seed(&r, t->seed);
	snprintf(id, sizeof(id), "%s-%llu", g->o.run_id, (unsigned long long)t->n);
	snprintf(src, sizeof(src), "storefront/%s", g->o.channel);
	gmtime_r(&placed, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
	envelope_open(g, ev, src, "order", id);
	double u = sim_rng_uniform(&r);
	nlines = 1 + (int)(20.0 * u * u * u);
	if (nlines > 20)
		nlines = 20;
	fi = (int)sim_rng_range(&r, 0, sizeof(first) / sizeof(first[0]) - 1);
	li = (int)sim_rng_range(&r, 0, sizeof(last) / sizeof(last[0]) - 1);
	pi = (int)sim_rng_range(&r, 0, sizeof(places) / sizeof(places[0]) - 1);
	si = (int)sim_rng_range(&r, 1, 200);
	sb_printf(&g->sb,
		  "{\"order_id\":\"%s\",\"channel\":\"%s\",\"version\":%u,\"currency\":\"%s\","
		  "\"financial_status\":\"%s\",\"customer\":{\"email\":\"%s.%s.%llu@example.com\","
		  "\"name\":\"%s %s\",\"phone\":\"+3460%07d\"},",
		  id, g->o.channel, t->version, g->o.currency, status, first[fi], last[li],
		  (unsigned long long)(t->seed % 100000), first[fi], last[li],
		  (int)(t->seed % 10000000));
	for (int a = 0; a < 2; a++)
		sb_printf(&g->sb,
			  "\"%s\":{\"name\":\"%s %s\",\"line1\":\"%s %d\",\"city\":\"%s\","
			  "\"postal_code\":\"%s\",\"country\":\"%s\"},",
			  a ? "billing_address" : "shipping_address", first[fi], last[li],
			  streets[pi], si, places[pi].city, places[pi].postal, places[pi].country);
	sb_printf(&g->sb, "\"lines\":[");
	ev->lines = nlines;
	ev->unmapped = 0;
	for (int l = 0; l < nlines; l++) {
		char sku[32];
		int64_t q, price, d = 0, lt;
		if (sim_rng_uniform(&r) < g->o.unmapped_share) {
			int k = (int)sim_rng_range(&r, 0, 999);
			snprintf(sku, sizeof(sku), "UNMAPPED-%04d", k);
			price = sku_price(k + 7);
			ev->unmapped++;
		} else {
			int k = zipf(g, &r);
			snprintf(sku, sizeof(sku), "SKU-%05d", k);
			price = sku_price(k);
		}
		double uq = sim_rng_uniform(&r);
		q = 1 + (int64_t)(4.0 * uq * uq);
		if (l == 0)
			q += t->version - 1; /* each update changes the first line's quantity */
		if (sim_rng_uniform(&r) < 0.1)
			d = (q * price) / 10;
		lt = sim_money_rate(q * price - d, g->o.tax_bp);
		sub += q * price;
		disc += d;
		tax += lt;
		sb_printf(&g->sb,
			  "%s{\"line_id\":\"%d\",\"sku\":\"%s\",\"quantity\":%lld,"
			  "\"unit_price\":\"%s\",\"discount\":\"%s\",\"tax\":\"%s\"}",
			  l ? "," : "", l + 1, sku, (long long)q, fmt_money(price, m[0]),
			  fmt_money(d, m[1]), fmt_money(lt, m[2]));
	}
	ship_tax = sim_money_rate(ship, g->o.tax_bp);
	tax += ship_tax;
	sb_printf(&g->sb,
		  "],\"shipping\":{\"method\":\"standard\",\"price\":\"%s\",\"tax\":\"%s\"},"
		  "\"totals\":{\"subtotal\":\"%s\",\"discount\":\"%s\",\"tax\":\"%s\","
		  "\"shipping\":\"%s\",\"grand_total\":\"%s\"},\"placed_at\":\"%s\","
		  "\"updated_at\":\"%s\"",
		  fmt_money(ship, m[0]), fmt_money(ship_tax, m[1]), fmt_money(sub, m[2]),
		  fmt_money(disc, m[3]), fmt_money(tax, m[4]), fmt_money(ship, m[5]),
		  fmt_money(sub - disc + tax + ship, m[6]), ts, g->now);
	if (t->cancelled)
		sb_printf(&g->sb, ",\"cancelled_at\":\"%s\",\"cancel_reason\":\"customer\"", g->now);
	sb_printf(&g->sb, "}}");
}

static void write_stock(load_gen_t *g, load_event_t *ev)
{
	char sku[32];
	int k = zipf(g, &g->rng), loc = (int)sim_rng_range(&g->rng, 1, g->o.locations);
	int64_t on_hand = sim_rng_range(&g->rng, 0, 500);
	int64_t alloc = sim_rng_range(&g->rng, 0, on_hand < 20 ? on_hand : 20);
	int64_t unav = sim_rng_range(&g->rng, 0, 2);

	snprintf(sku, sizeof(sku), "SKU-%05d", k);
	envelope_open(g, ev, "erp/load", "sku", sku);
	sb_printf(&g->sb,
		  "{\"sku\":\"%s\",\"location\":\"WH-%d\",\"on_hand\":%lld,\"allocated\":%lld,"
		  "\"reserved\":0,\"unavailable\":%lld,\"sequence\":%lld,\"as_of\":\"%s\"}}",
		  sku, loc, (long long)on_hand, (long long)alloc, (long long)unav,
		  (long long)++g->seq, g->now);
	ev->lines = 0;
	ev->unmapped = 0;
}

/* A live (not cancelled) tracked order, or NULL. */
static tracked_t *pick_live(load_gen_t *g)
{
	size_t n = g->norders < TRACK_MAX ? g->norders : TRACK_MAX;

	for (int tries = 0; n && tries < 8; tries++) {
		tracked_t *t = &g->orders[sim_rng_range(&g->rng, 0, (int64_t)n - 1)];
		if (!t->cancelled)
			return t;
	}
	return NULL;
}

int load_gen_next(load_gen_t *g, load_event_t *ev)
{
	double u = sim_rng_uniform(&g->rng);
	enum load_kind k = LOAD_ORDER;
	tracked_t *t = NULL;

	refresh_now(g);
	g->sb.len = 0;
	g->sb.oom = 0;
	while (k < LOAD_STOCK && u >= g->mix_cdf[k])
		k++;
	if (k == LOAD_UPDATE || k == LOAD_CANCEL) {
		t = pick_live(g);
		if (!t)
			k = LOAD_ORDER;
	}
	ev->kind = k;
	ev->type = load_kind_types[k];
	if (k == LOAD_ORDER) {
		t = &g->orders[g->norders % TRACK_MAX];
		g->norders++;
		t->seed = sim_rng_next(&g->rng);
		t->n = ++g->next_order;
		t->version = 1;
		t->placed = (uint32_t)time(NULL);
		t->cancelled = 0;
		write_order(g, ev, t);
	} else if (k == LOAD_UPDATE) {
		t->version++;
		write_order(g, ev, t);
	} else if (k == LOAD_CANCEL) {
		t->version++;
		t->cancelled = 1;
		write_order(g, ev, t);
	} else {
		write_stock(g, ev);
	}
	ev->body = g->sb.p;
	ev->len = g->sb.len;
	return g->sb.oom ? -1 : 0;
}
