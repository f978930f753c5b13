/* test_inventory.c — baton-inventory's pure parts: SKU documents (stale and duplicate
 * positions, reservations, FIFO retirement by the ERP's allocations, tombstones, pruning),
 * pools over channels and kits, and the configuration's one-error-per-problem validation. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../workers/inventory/ats.c"
#include "../../workers/inventory/inv_config.c"
#include "../../workers/inventory/inv_doc.c"

static json_t *new_doc(void)
{
	return json_pack("{s:s, s:[], s:[], s:i, s:[]}", "sku", "A", "positions", "reservations",
			 "next_n", 1, "sold");
}

static json_t *pos(const char *loc, const char *src, int oh, int al, int seq)
{
	return json_pack("{s:s, s:s, s:s, s:i, s:i, s:i, s:i, s:i}", "sku", "A", "location", loc,
			 "source", src, "on_hand", oh, "allocated", al, "reserved", 0,
			 "unavailable", 0, "sequence", seq);
}

static int apply(json_t *doc, json_t *p, int64_t *retired)
{
	int r = inv_doc_apply_position(doc, p, retired);
	json_decref(p);
	return r;
}

static void test_positions(void **st)
{
	json_t *doc = new_doc();
	int64_t ret;

	(void)st;
	assert_int_equal(apply(doc, pos("W1", "erp", 10, 0, 5), &ret), 1);
	assert_int_equal(apply(doc, pos("W1", "erp", 7, 0, 4), &ret), 0);   /* stale */
	assert_int_equal(apply(doc, pos("W1", "erp", 10, 0, 5), &ret), -1); /* duplicate */
	assert_int_equal(apply(doc, pos("W1", "wms", 9, 0, 1), &ret), 1);   /* own sequence */
	assert_int_equal(apply(doc, pos("W2", "erp", 3, 0, 6), &ret), 1);
	assert_int_equal(json_array_size(json_object_get(doc, "positions")), 2);
	assert_int_equal(json_integer_value(json_object_get(
				 json_array_get(json_object_get(doc, "positions"), 0), "on_hand")),
			 9);
	json_decref(doc);
}

static void test_reservations(void **st)
{
	json_t *doc = new_doc();
	int64_t ret;

	(void)st;
	apply(doc, pos("W1", "erp", 20, 0, 1), &ret);
	assert_int_equal(inv_doc_reserve(doc, "SO-1", 3, 1, "shop", 1, 100), 1);
	assert_int_equal(inv_doc_reserve(doc, "SO-1", 3, 1, "shop", 1, 100), 0); /* redelivery */
	assert_int_equal(inv_doc_reserve(doc, "SO-2", 2, 1, "shop", 2, 100), 1);
	assert_int_equal(inv_doc_open_orders(doc), 5);
	assert_int_equal(inv_doc_sold(doc, "shop"), 5);
	/* the ERP allocates 4: SO-1 retired, SO-2 half retired; nothing counted twice */
	assert_int_equal(apply(doc, pos("W1", "erp", 20, 4, 2), &ret), 1);
	assert_int_equal(ret, 4);
	assert_int_equal(inv_doc_open_orders(doc), 1);
	/* allocation going down (shipped) retires nothing */
	assert_int_equal(apply(doc, pos("W1", "erp", 17, 1, 3), &ret), 1);
	assert_int_equal(ret, 0);
	assert_int_equal(inv_doc_open_orders(doc), 1);
	/* cancel releases; cancelling twice is nothing */
	assert_int_equal(inv_doc_release(doc, "SO-2", 5, 100), 1);
	assert_int_equal(inv_doc_release(doc, "SO-2", 5, 100), 0);
	assert_int_equal(inv_doc_open_orders(doc), 0);
	/* cancelled before created: the late "created" reserves nothing */
	assert_int_equal(inv_doc_release(doc, "SO-3", 6, 100), 1);
	assert_int_equal(inv_doc_reserve(doc, "SO-3", 9, 1, "shop", 7, 100), 0);
	assert_int_equal(inv_doc_open_orders(doc), 0);
	assert_int_equal(inv_doc_sold(doc, "shop"), 5); /* a cancel does not give a sale back */
	json_decref(doc);
}

static void test_prune(void **st)
{
	json_t *doc = new_doc();
	char ref[16];

	(void)st;
	for (int i = 0; i < 30; i++) {
		snprintf(ref, sizeof(ref), "SO-%d", i);
		inv_doc_reserve(doc, ref, 1, 1, NULL, i, 10);
		if (i % 2)
			inv_doc_release(doc, ref, i, 10);
	}
	/* 15 open kept, closed ones cut to 10 */
	assert_int_equal(inv_doc_open_orders(doc), 15);
	assert_int_equal(json_array_size(json_object_get(doc, "reservations")), 25);
	json_decref(doc);
}

static json_t *cfg_json(const char *text)
{
	json_t *j = json_loads(text, 0, NULL);
	assert_non_null(j);
	return j;
}

static void test_pools(void **st)
{
	inv_config_t cfg;
	char err[512];
	json_t *root = cfg_json(
		"{\"inventory\": {\"channels\": {\"eu\": {\"locations\": [\"W1\", \"W2\"], "
		"\"storefront_location\": \"1\", \"safety_buffer\": 2, \"sku_buffers\": {\"B\": 0},"
		" \"allocation_share\": 0.5}}, \"kits\": {\"KIT\": {\"A\": 2, \"B\": 1}}}}");
	json_t *docs = json_object(), *a = new_doc(), *b = new_doc(), *in = json_object();
	int64_t ret;

	(void)st;
	assert_int_equal(inv_config_parse(&cfg, root, err, sizeof(err)), 0);
	apply(a, pos("W1", "erp", 10, 1, 1), &ret);
	apply(a, pos("W2", "erp", 5, 0, 1), &ret);
	apply(a, pos("W3", "erp", 100, 0, 1), &ret); /* not feeding the channel */
	inv_doc_reserve(a, "SO-1", 2, 1, "eu", 1, 100);
	apply(b, pos("W1", "erp", 4, 0, 1), &ret);
	json_object_set_new(docs, "A", a);
	json_object_set_new(docs, "B", b);
	assert_int_equal(inv_pool(&cfg, &cfg.channels[0], "A", docs, in), 12);
	assert_int_equal(ats_final(12, inv_channel_buffer(&cfg.channels[0], "A"),
				   cfg.channels[0].share_ppm), 5);
	assert_int_equal(inv_channel_buffer(&cfg.channels[0], "B"), 0);
	assert_int_equal(inv_pool(&cfg, &cfg.channels[0], "KIT", docs, NULL), 4);
	assert_int_equal(inv_pool(&cfg, &cfg.channels[0], "NONE", docs, NULL), 0);
	json_decref(in);
	json_decref(docs);
	json_decref(root);
	inv_config_free(&cfg);
}

static void test_config_errors(void **st)
{
	inv_config_t cfg;
	char err[512];
	json_t *root = cfg_json(
		"{\"inventory\": {\"channels\": {\"eu\": {\"locations\": [], \"safety_buffer\": -1,"
		" \"allocation_share\": 2}}, \"kits\": {\"K\": {\"A\": 0}}, \"coalesce\": \"5\","
		" \"bogus\": 1}}");

	FILE *devnull = fopen("/dev/null", "w");

	(void)st;
	baton_log_set_stream(devnull);
	assert_int_equal(inv_config_parse(&cfg, root, err, sizeof(err)), -1);
	/* locations, storefront_location, safety_buffer, allocation_share, kit quantity,
	 * coalesce, unknown setting */
	assert_non_null(strstr(err, "7 problem(s)"));
	assert_non_null(strstr(err, "inventory.channels.eu.locations"));
	json_decref(root);
	assert_int_equal(inv_config_parse(&cfg, NULL, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "\"inventory\""));
	baton_log_set_stream(NULL);
	fclose(devnull);
}

/* The flow's own counters in the shared metrics registry. */
static void test_metrics_counters(void **st)
{
	baton_metrics_t *m = baton_metrics_new("inventory", "w1");
	char *text = NULL;
	size_t len;
	int a, b;

	(void)st;
	assert_non_null(m);
	a = baton_metrics_counter_new(m, "baton_inventory_levels_written_total", "Levels.");
	b = baton_metrics_counter_new(m, "baton_inventory_drift_passes_total", "Passes.");
	assert_true(a >= 0 && b >= 0 && a != b);
	assert_int_equal(baton_metrics_counter_new(m, "baton_inventory_levels_written_total", ""),
			 a);
	assert_int_equal(baton_metrics_counter_new(m, "bad name", ""), -1);
	assert_int_equal(baton_metrics_counter_new(m, "9starts_with_digit", ""), -1);
	baton_metrics_counter_add(m, a, 3);
	baton_metrics_counter_add(m, a, 2);
	baton_metrics_counter_add(m, 99, 1); /* ignored */
	assert_int_equal(baton_metrics_render(m, &text, &len), 0);
	assert_non_null(strstr(text, "# TYPE baton_inventory_levels_written_total counter"));
	assert_non_null(strstr(text, "baton_inventory_levels_written_total{flow=\"inventory\","
				     "worker=\"w1\"} 5\n"));
	assert_non_null(strstr(text, "baton_inventory_drift_passes_total{flow=\"inventory\","
				     "worker=\"w1\"} 0\n"));
	free(text);
	baton_metrics_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_positions),  cmocka_unit_test(test_reservations),
		cmocka_unit_test(test_prune),      cmocka_unit_test(test_pools),
		cmocka_unit_test(test_config_errors), cmocka_unit_test(test_metrics_counters),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
