/* main.c — baton-orders: orders placed in the store reach the ERP, once, through their whole
 * lifecycle. Wiring only; the steps are in handlers.c, the rules in orders.c (see README.md). */
#include "orders.h"

static const baton_handler_t handlers[] = {
	{"storefront.order.created", orders_on_created},
	{"storefront.order.updated", orders_on_updated},
	{"storefront.order.cancelled", orders_on_cancelled},
	{NULL, NULL},
};

int main(int argc, char **argv)
{
	baton_flow_def_t def = {.name = "orders", .handlers = handlers, .setup = orders_setup,
				.teardown = orders_teardown};

	return baton_worker_main(&def, argc, argv);
}
