/* main.c — baton-inventory: wiring only (see inventory.h and README.md). */
#include <stdio.h>
#include <stdlib.h>

#include "inventory.h"

static int setup(baton_flow_t *f, char *err, size_t len)
{
	const baton_config_t *c = baton_flow_config(f);
	inv_state_t *s;

	if (!c->storefront_url) {
		snprintf(err, len, "BATON_STOREFRONT_URL is required by baton-inventory (the "
			 "storefront whose levels it publishes)");
		return -1;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, len, "out of memory");
		return -1;
	}
	if (inv_config_parse(&s->cfg, c->file, err, len) != 0) {
		free(s);
		return -1;
	}
	s->busy = json_object();
	s->pub = inv_publisher_new(f, &s->cfg);
	if (!s->pub) {
		inv_config_free(&s->cfg);
		free(s);
		snprintf(err, len, "out of memory");
		return -1;
	}
	baton_flow_set_data(f, s);
	return 0;
}

static void teardown(baton_flow_t *f)
{
	inv_state_t *s = baton_flow_data(f);

	if (!s)
		return;
	inv_publisher_free(s->pub);
	inv_config_free(&s->cfg);
	json_decref(s->busy);
	free(s);
}

static const baton_handler_t handlers[] = {
	{"erp.stock.changed", inv_on_stock},
	{"wms.stock.changed", inv_on_stock},
	{"storefront.order.created", inv_on_order_created},
	{"storefront.order.cancelled", inv_on_order_cancelled},
	{NULL, NULL},
};

int main(int argc, char **argv)
{
	baton_flow_def_t def = {.name = "inventory", .handlers = handlers, .setup = setup,
				.teardown = teardown};
	return baton_worker_main(&def, argc, argv);
}
