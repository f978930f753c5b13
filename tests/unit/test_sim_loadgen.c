/* test_sim_loadgen.c — baton-load's generator: CloudEvents shape, totals consistent to the cent
 * (computed from integer minor units), Zipf skew, unmapped share, updates and cancellations that
 * follow their orders, increasing stock sequences, reproducibility with a seed, --mix parsing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "gen.h"
#include "sim.h"

static int64_t money(const json_t *o, const char *key)
{
	int64_t v = 0;
	const char *s = json_string_value(json_object_get(o, key));

	assert_non_null(s);
	assert_int_equal(sim_money_parse(s, &v), 0);
	return v;
}

static void check_envelope(const json_t *ev, const load_event_t *e)
{
	assert_string_equal(json_string_value(json_object_get(ev, "specversion")), "1.0");
	assert_string_equal(json_string_value(json_object_get(ev, "id")), e->id);
	assert_string_equal(json_string_value(json_object_get(ev, "type")), e->type);
	assert_string_equal(json_string_value(json_object_get(ev, "datacontenttype")),
			    "application/json");
	assert_int_equal(json_string_length(json_object_get(ev, "time")), 20);
	assert_true(json_is_object(json_object_get(ev, "data")));
}

/* Re-adds every amount and compares with what the event says. */
static void check_order(const json_t *d, int *lines_out)
{
	const json_t *lines = json_object_get(d, "lines"), *l, *tot, *sh;
	int64_t sub = 0, disc = 0, tax = 0;
	size_t i;

	assert_true(json_array_size(lines) >= 1 && json_array_size(lines) <= 20);
	*lines_out = (int)json_array_size(lines);
	json_array_foreach(lines, i, l) {
		int64_t q = json_integer_value(json_object_get(l, "quantity"));
		int64_t p = money(l, "unit_price"), ds = money(l, "discount"), t = money(l, "tax");
		assert_true(q >= 1);
		assert_true(p > 0);
		assert_true(ds >= 0 && ds <= q * p);
		assert_int_equal(t, sim_money_rate(q * p - ds, 2100));
		sub += q * p;
		disc += ds;
		tax += t;
	}
	sh = json_object_get(d, "shipping");
	tax += money(sh, "tax");
	tot = json_object_get(d, "totals");
	assert_int_equal(money(tot, "subtotal"), sub);
	assert_int_equal(money(tot, "discount"), disc);
	assert_int_equal(money(tot, "tax"), tax);
	assert_int_equal(money(tot, "shipping"), money(sh, "price"));
	assert_int_equal(money(tot, "grand_total"), sub - disc + tax + money(sh, "price"));
	assert_non_null(json_string_value(json_object_get(json_object_get(d, "customer"), "email")));
	assert_non_null(
		json_string_value(json_object_get(json_object_get(d, "shipping_address"), "city")));
	assert_string_equal(json_string_value(json_object_get(d, "currency")), "EUR");
}

static void test_stream(void **state)
{
	load_opts_t o;
	load_gen_t *g;
	json_t *versions = json_object(), *cancelled = json_object();
	int counts[LOAD_KINDS] = {0}, top = 0, mid = 0;
	int64_t last_seq = 0, all_lines = 0, unmapped = 0;

	load_opts_defaults(&o);
	o.seed = 11;
	o.unmapped_share = 0.25;
	o.run_id = "T";
	o.seq_base = 1000;
	g = load_gen_new(&o);
	assert_non_null(g);
	for (int i = 0; i < 3000; i++) {
		load_event_t e;
		json_error_t err;
		json_t *ev, *d;
		assert_int_equal(load_gen_next(g, &e), 0);
		ev = json_loadb(e.body, e.len, JSON_REJECT_DUPLICATES, &err);
		if (!ev)
			fail_msg("event %d is not JSON: %s\n%.*s", i, err.text, (int)e.len, e.body);
		check_envelope(ev, &e);
		counts[e.kind]++;
		d = json_object_get(ev, "data");
		if (e.kind == LOAD_STOCK) {
			int64_t seq = json_integer_value(json_object_get(d, "sequence"));
			char subject[64];
			assert_true(seq > last_seq);
			last_seq = seq;
			snprintf(subject, sizeof(subject), "sku/%s",
				 json_string_value(json_object_get(d, "sku")));
			assert_string_equal(json_string_value(json_object_get(ev, "subject")),
					    subject);
			assert_true(json_integer_value(json_object_get(d, "on_hand")) >=
				    json_integer_value(json_object_get(d, "allocated")));
			assert_string_equal(json_string_value(json_object_get(ev, "source")),
					    "erp/load");
		} else {
			const char *id = json_string_value(json_object_get(d, "order_id"));
			int64_t v = json_integer_value(json_object_get(d, "version"));
			int nl;
			size_t k;
			json_t *l;
			check_order(d, &nl);
			assert_int_equal(nl, e.lines);
			assert_string_equal(json_string_value(json_object_get(ev, "source")),
					    "storefront/shop-eu");
			/* Versions follow each other; nothing happens to a cancelled order. */
			assert_null(json_object_get(cancelled, id));
			assert_int_equal(v, json_integer_value(json_object_get(versions, id)) + 1);
			assert_true(e.kind == LOAD_ORDER ? v == 1 : v > 1);
			json_object_set_new(versions, id, json_integer(v));
			if (e.kind == LOAD_CANCEL) {
				json_object_set_new(cancelled, id, json_true());
				assert_string_equal(json_string_value(json_object_get(d,
						    "financial_status")), "voided");
			}
			json_array_foreach(json_object_get(d, "lines"), k, l) {
				const char *sku = json_string_value(json_object_get(l, "sku"));
				all_lines++;
				unmapped += !strncmp(sku, "UNMAPPED-", 9);
				top += !strcmp(sku, "SKU-00000");
				mid += !strcmp(sku, "SKU-00500");
			}
		}
		json_decref(ev);
	}
	/* Mix 60/15/5/20 of 3000, give or take. */
	assert_true(counts[LOAD_ORDER] > 1500 && counts[LOAD_ORDER] < 2100);
	assert_true(counts[LOAD_UPDATE] > 300 && counts[LOAD_CANCEL] > 60);
	assert_true(counts[LOAD_STOCK] > 450 && counts[LOAD_STOCK] < 750);
	assert_true(unmapped * 100 > all_lines * 20 && unmapped * 100 < all_lines * 30);
	assert_true(top > 10 * (mid + 1)); /* skewed popularity */
	json_decref(versions);
	json_decref(cancelled);
	load_gen_free(g);
}

static void test_reproducible(void **state)
{
	load_opts_t o;
	load_gen_t *a, *b;

	load_opts_defaults(&o);
	o.seed = 5;
	o.id_seed = 9;
	a = load_gen_new(&o);
	b = load_gen_new(&o);
	for (int i = 0; i < 500; i++) {
		load_event_t ea, eb;
		json_t *ja, *jb;
		assert_int_equal(load_gen_next(a, &ea), 0);
		ja = json_loadb(ea.body, ea.len, 0, NULL);
		assert_int_equal(load_gen_next(b, &eb), 0);
		jb = json_loadb(eb.body, eb.len, 0, NULL);
		assert_string_equal(ea.id, eb.id);
		/* Times may tick between the two generators: compare everything else. */
		json_object_del(ja, "time");
		json_object_del(jb, "time");
		json_object_del(json_object_get(ja, "data"), "updated_at");
		json_object_del(json_object_get(jb, "data"), "updated_at");
		json_object_del(json_object_get(ja, "data"), "placed_at");
		json_object_del(json_object_get(jb, "data"), "placed_at");
		json_object_del(json_object_get(ja, "data"), "as_of");
		json_object_del(json_object_get(jb, "data"), "as_of");
		json_object_del(json_object_get(ja, "data"), "cancelled_at");
		json_object_del(json_object_get(jb, "data"), "cancelled_at");
		assert_true(json_equal(ja, jb));
		json_decref(ja);
		json_decref(jb);
	}
	load_gen_free(a);
	load_gen_free(b);
}

static void test_mix(void **state)
{
	double m[LOAD_KINDS];
	load_opts_t o;
	load_gen_t *g;

	assert_int_equal(load_parse_mix("orders=1,stock=3", m), 0);
	assert_true(m[LOAD_ORDER] == 1 && m[LOAD_STOCK] == 3 && m[LOAD_UPDATE] == 0);
	assert_int_equal(load_parse_mix("orders=0", m), -1);
	assert_int_equal(load_parse_mix("refunds=1", m), -1);
	assert_int_equal(load_parse_mix("orders=-1,stock=2", m), -1);
	assert_int_equal(load_parse_mix("orders", m), -1);
	/* Only updates asked for: the first event must still be an order to update. */
	load_opts_defaults(&o);
	assert_int_equal(load_parse_mix("updates=1", o.mix), 0);
	g = load_gen_new(&o);
	load_event_t e;
	assert_int_equal(load_gen_next(g, &e), 0);
	assert_int_equal(e.kind, LOAD_ORDER);
	assert_int_equal(load_gen_next(g, &e), 0);
	assert_int_equal(e.kind, LOAD_UPDATE);
	load_gen_free(g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stream),
		cmocka_unit_test(test_reproducible),
		cmocka_unit_test(test_mix),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
