/* worker.c — the process around a flow: start-up, the loop, health, shutdown. See baton/flow.h.
 *
 * Start: config -> log -> flow setup -> store (indexes on the thread pool, retried) -> consumer
 * and publisher (connect, policies and topology on the thread pool, retried with back-off).
 * Shutdown (SIGTERM/SIGINT): cancel the consumer, let in-flight messages finish until the grace
 * deadline, then close the consumer (what is unacked goes back to the queue), the HTTP client,
 * the audit writer (flushed), the store, the publisher, the metrics listener, in that order. */
#define _GNU_SOURCE
#include "flow_internal.h"

#include <curl/curl.h>
#include <mongoc/mongoc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "baton/version.h"

#define TICK_MS 500
#define PING_EVERY_MS 5000
#define INDEX_RETRY_MS 2000

baton_flow_t *baton_msg_flow(baton_msg_t *m);

const baton_config_t *baton_flow_config(const baton_flow_t *f) { return &f->cfg; }
baton_store_t *baton_flow_store(baton_flow_t *f) { return f->store; }
baton_http_t *baton_flow_http(baton_flow_t *f) { return f->http; }
baton_metrics_t *baton_flow_metrics(baton_flow_t *f) { return f->metrics; }
uv_loop_t *baton_flow_loop(baton_flow_t *f) { return f->loop; }
const char *baton_flow_name(const baton_flow_t *f) { return f->cfg.flow; }
void baton_flow_set_data(baton_flow_t *f, void *data) { f->data = data; }
void *baton_flow_data(const baton_flow_t *f) { return f->data; }

/* ---------------------------------------------------------------------------------------- */
/* shutdown                                                                                 */

static void close_handles(baton_flow_t *f)
{
	uv_close((uv_handle_t *)&f->tick, NULL);
	uv_close((uv_handle_t *)&f->sigterm, NULL);
	uv_close((uv_handle_t *)&f->sigint, NULL);
}

static void on_metrics_stopped(void *ud)
{
	close_handles(ud);
}

static void on_publisher_closed(void *ud)
{
	baton_flow_t *f = ud;

	f->publisher = NULL;
	if (f->metrics)
		baton_metrics_stop(f->metrics, on_metrics_stopped, f);
	else
		close_handles(f);
}

/* Everything that messages use is idle now. */
static void close_rest(baton_flow_t *f)
{
	if (f->audit) {
		baton_audit_close(f->audit, NULL, NULL);
		f->audit = NULL;
	}
	if (f->store) {
		baton_store_close(f->store);
		f->store = NULL;
	}
	baton_publisher_close(f->publisher, on_publisher_closed, f);
}

static void on_http_closed(void *ud)
{
	baton_flow_t *f = ud;

	f->http = NULL;
	if (f->n_msgs == 0)
		close_rest(f);
	/* else: the last msg_free calls worker_msg_freed, which calls close_rest */
}

static void on_consumer_closed(void *ud)
{
	baton_flow_t *f = ud;

	f->consumer = NULL;
	if (f->n_msgs) {
		BATON_WARN(NULL, "worker.grace_expired",
			   "%zu message(s) still in flight at the deadline: handed back to the broker "
			   "unacked (they are redelivered)", f->n_msgs);
		f->aborting = 1;
		flow_msg_abort_waiting(f);
	}
	baton_http_close(f->http, on_http_closed, f); /* cancels what is still in flight */
}

static void drain_check(baton_flow_t *f)
{
	if (f->stage != STAGE_DRAIN)
		return;
	if (f->n_msgs && uv_now(f->loop) < f->grace_deadline_ms)
		return;
	f->stage = STAGE_CLOSING;
	BATON_INFO(NULL, "worker.closing", "closing connections");
	baton_consumer_close(f->consumer, on_consumer_closed, f);
}

void worker_msg_freed(baton_flow_t *f)
{
	if (f->stage == STAGE_DRAIN && f->n_msgs == 0)
		drain_check(f);
	else if (f->stage == STAGE_CLOSING && f->n_msgs == 0 && !f->http && f->publisher &&
		 (f->audit || f->store))
		close_rest(f);
}

static void on_signal(uv_signal_t *s, int signum)
{
	baton_flow_t *f = s->data;

	if (f->stage == STAGE_DRAIN) { /* second signal: stop waiting */
		BATON_WARN(NULL, "worker.signal", "%s again: not waiting for in-flight work",
			   strsignal(signum));
		f->grace_deadline_ms = 0;
		drain_check(f);
		return;
	}
	if (f->stage == STAGE_CLOSING)
		return;
	BATON_INFO(NULL, "worker.signal",
		   "%s: no new messages; finishing %zu in flight (deadline %u ms)",
		   strsignal(signum), f->n_msgs, f->cfg.shutdown_grace_ms);
	f->stage = STAGE_DRAIN;
	f->grace_deadline_ms = uv_now(f->loop) + f->cfg.shutdown_grace_ms;
	baton_consumer_pause(f->consumer);
	drain_check(f);
}

/* ---------------------------------------------------------------------------------------- */
/* health, store readiness                                                                  */

static int on_healthz(void *ud, char *why, size_t len)
{
	(void)ud, (void)why, (void)len;
	return 1; /* the loop answered */
}

static int on_readyz(void *ud, char *why, size_t len)
{
	baton_flow_t *f = ud;

	if (f->stage == STAGE_STARTING)
		snprintf(why, len, "starting: database indexes not ready%s%s",
			 f->index_err[0] ? ": " : "", f->index_err);
	else if (f->stage != STAGE_RUN)
		snprintf(why, len, "shutting down");
	else if (!f->consumer || !baton_consumer_is_up(f->consumer))
		snprintf(why, len, "RabbitMQ consumer connection down");
	else if (!f->publisher || !baton_publisher_is_up(f->publisher))
		snprintf(why, len, "RabbitMQ publisher connection down");
	else if (!f->store_ok)
		snprintf(why, len, "MongoDB not answering");
	else
		return 1;
	return 0;
}

static void on_ping(baton_store_status_t st, json_t *result, const char *errmsg, void *ud)
{
	baton_flow_t *f = ud;

	(void)result;
	f->ping_busy = 0;
	if ((st == BATON_STORE_OK) != f->store_ok)
		baton_log(st == BATON_STORE_OK ? BATON_LOG_INFO : BATON_LOG_WARN, NULL,
			  st == BATON_STORE_OK ? "store.up" : "store.down", "MongoDB %s%s%s",
			  st == BATON_STORE_OK ? "answers again" : "not answering",
			  errmsg[0] ? ": " : "", errmsg);
	f->store_ok = st == BATON_STORE_OK;
}

static void index_work(uv_work_t *w)
{
	baton_flow_t *f = w->data;

	f->index_err[0] = '\0';
	if (baton_store_ensure_indexes(f->store, f->index_err, sizeof(f->index_err)) != 0 &&
	    !f->index_err[0])
		snprintf(f->index_err, sizeof(f->index_err), "index creation failed");
}

static void index_done(uv_work_t *w, int status)
{
	baton_flow_t *f = w->data;

	f->index_busy = 0;
	if (status != 0 || f->index_err[0]) {
		BATON_WARN(NULL, "store.indexes", "cannot create indexes yet (retrying): %s",
			   f->index_err);
		f->next_index_ms = uv_now(f->loop) + INDEX_RETRY_MS;
		return;
	}
	f->store_ok = 1;
	if (f->stage != STAGE_STARTING)
		return;
	f->stage = STAGE_RUN;
	BATON_INFO(NULL, "worker.consuming", "indexes ready; consuming baton.%s", f->cfg.flow);
	baton_consumer_start(f->consumer);
}

static void on_tick(uv_timer_t *t)
{
	baton_flow_t *f = t->data;
	uint64_t now = uv_now(f->loop);

	if (f->stage == STAGE_STARTING && !f->index_busy && now >= f->next_index_ms) {
		f->index_busy = 1;
		f->index_work.data = f;
		if (uv_queue_work(f->loop, &f->index_work, index_work, index_done) != 0)
			f->index_busy = 0;
	}
	if (f->stage == STAGE_RUN && f->store && !f->ping_busy && now >= f->next_ping_ms) {
		f->next_ping_ms = now + PING_EVERY_MS;
		if (baton_store_ping_async(f->store, on_ping, f) == 0)
			f->ping_busy = 1;
	}
	if (f->stage == STAGE_RUN || f->stage == STAGE_DRAIN)
		flow_msg_retry_forwards(f);
	drain_check(f);
}

/* ---------------------------------------------------------------------------------------- */
/* AMQP wiring                                                                              */

static int consumer_setup(amqp_connection_state_t c, void *ud, char *err, size_t len)
{
	baton_flow_t *f = ud;
	char queue[160], why[256];
	amqp_rpc_reply_t r;

	if (f->cfg.mgmt_url &&
	    baton_topology_apply_policies(f->cfg.mgmt_url, f->amqp.vhost, &f->topo, &f->topts, err,
					  len) != 0)
		return -1;
	if (baton_topology_declare(c, 1, &f->topo, &f->topts, err, len) != 0)
		return -1;
	amqp_basic_qos(c, 1, 0, (uint16_t)f->cfg.prefetch, 0);
	r = amqp_get_rpc_reply(c);
	if (r.reply_type != AMQP_RESPONSE_NORMAL) {
		snprintf(err, len, "basic.qos: %s", baton_amqp_reply_str(r, why, sizeof(why)));
		return -1;
	}
	snprintf(queue, sizeof(queue), "baton.%s", f->cfg.flow);
	amqp_basic_consume(c, 1, amqp_cstring_bytes(queue), amqp_cstring_bytes("baton"), 0, 0, 0,
			   amqp_empty_table);
	r = amqp_get_rpc_reply(c);
	if (r.reply_type != AMQP_RESPONSE_NORMAL) {
		snprintf(err, len, "basic.consume on %s: %s", queue,
			 baton_amqp_reply_str(r, why, sizeof(why)));
		return -1;
	}
	return 0;
}

static void on_deliver(baton_consumer_t *c, baton_delivery_t *d, void *ud)
{
	(void)c;
	flow_msg_receive(ud, d);
}

static void on_consumer_state(int up, uint64_t gen, const char *why, void *ud)
{
	baton_flow_t *f = ud;

	(void)why;
	if (up && gen > 1)
		baton_metrics_inc(f->metrics, BATON_M_AMQP_RECONNECTS, 1);
}

static void on_publisher_state(int up, uint64_t gen, const char *why, void *ud)
{
	baton_flow_t *f = ud;

	(void)why;
	if (up && gen > 1)
		baton_metrics_inc(f->metrics, BATON_M_AMQP_RECONNECTS, 1);
	if (up && (f->stage == STAGE_RUN || f->stage == STAGE_DRAIN))
		flow_msg_retry_forwards(f);
}

/* ---------------------------------------------------------------------------------------- */
/* start-up                                                                                 */

static void usage(const baton_flow_def_t *def)
{
	printf("baton-%s %s — baton worker for the %s flow\n\n"
	       "Consumes queue baton.%s. Configured through environment variables:\n"
	       "  BATON_AMQP_URL (required)   BATON_MONGO_URI (required)   BATON_MONGO_DB\n"
	       "  BATON_ERP_URL   BATON_STOREFRONT_URL   BATON_RABBITMQ_MGMT_URL   BATON_CONFIG\n"
	       "  BATON_PREFETCH   BATON_LOG_LEVEL   BATON_METRICS_ADDR   BATON_WORKER_ID\n"
	       "  BATON_RETRY_TIERS   BATON_DELIVERY_LIMIT   BATON_SHUTDOWN_GRACE\n"
	       "  BATON_HTTP_CONNECT_TIMEOUT   BATON_HTTP_TIMEOUT   BATON_HTTP_MAX_HOST_CONNS\n"
	       "  BATON_MONGO_POOL   BATON_HEARTBEAT   BATON_AUDIT_BATCH   BATON_AUDIT_FLUSH\n"
	       "See README.md (Configuration) for meanings and defaults.\n"
	       "Stops cleanly on SIGTERM or SIGINT.\n",
	       def->name, baton_version(), def->name, def->name);
}

static int load_config(baton_flow_t *f)
{
	char *errors = NULL;

	if (baton_config_load(&f->cfg, f->def->name, NULL, &errors) == 0)
		return 0;
	baton_log_init(f->def->name, NULL, BATON_LOG_INFO);
	for (char *line = strtok(errors, "\n"); line; line = strtok(NULL, "\n"))
		BATON_ERROR(NULL, "config.invalid", "%s", line);
	free(errors);
	return -1;
}

/* Enough libuv threads for every pooled MongoDB client plus the AMQP connects. */
static void size_threadpool(unsigned pool)
{
	const char *cur = getenv("UV_THREADPOOL_SIZE");
	char v[16];

	if (cur && atoi(cur) >= (int)pool + 3)
		return;
	snprintf(v, sizeof(v), "%u", pool + 3);
	setenv("UV_THREADPOOL_SIZE", v, 1);
}

static int make_topology(baton_flow_t *f, char *err, size_t len)
{
	const baton_flow_topology_t *t = baton_topology_find(f->cfg.flow);

	f->topo.name = f->cfg.flow;
	f->topo.routing_keys = f->def->routing_keys ? f->def->routing_keys
						    : t ? t->routing_keys : NULL;
	if (!f->topo.routing_keys) {
		snprintf(err, len, "flow %s has no routing keys (not in the topology table)",
			 f->cfg.flow);
		return -1;
	}
	f->topts.tiers_ms = f->cfg.retry_tiers_ms;
	f->topts.n_tiers = f->cfg.n_retry_tiers;
	f->topts.delivery_limit = f->cfg.delivery_limit;
	if (baton_amqp_parse_url(f->cfg.amqp_url, &f->amqp, err, len) != 0)
		return -1;
	f->amqp.heartbeat_s = f->cfg.heartbeat_s;
	return 0;
}

static int start_parts(baton_flow_t *f, char *err, size_t len)
{
	baton_http_opts_t ho = {
		.connect_timeout_ms = f->cfg.http_connect_timeout_ms,
		.timeout_ms = f->cfg.http_timeout_ms,
		.max_host_conns = f->cfg.http_max_host_conns,
	};
	baton_consumer_opts_t co = {.params = f->amqp, .setup = consumer_setup,
				    .deliver = on_deliver, .on_state = on_consumer_state, .ud = f};

	f->metrics = baton_metrics_new(f->cfg.flow, f->cfg.worker_id);
	f->http = baton_http_new(f->loop, &ho);
	f->store = baton_store_open(f->loop, f->cfg.mongo_uri, f->cfg.mongo_db,
				    f->cfg.mongo_pool_size, err, len);
	if (!f->metrics || !f->http || !f->store) {
		if (!err[0])
			snprintf(err, len, "out of memory");
		return -1;
	}
	f->audit = baton_audit_new(f->store, f->loop, f->cfg.audit_batch, f->cfg.audit_flush_ms);
	f->consumer = baton_consumer_new(f->loop, &co);
	f->publisher = baton_publisher_new(f->loop, &f->amqp, on_publisher_state, f);
	if (!f->audit || !f->consumer || !f->publisher) {
		snprintf(err, len, "out of memory");
		return -1;
	}
	if (f->cfg.metrics_addr) {
		if (baton_metrics_listen(f->metrics, f->loop, f->cfg.metrics_addr, on_healthz,
					 on_readyz, f, err, len) != 0)
			return -1;
		BATON_INFO(NULL, "metrics.listening", "metrics and health on %s (port %d)",
			   f->cfg.metrics_addr, baton_metrics_port(f->metrics));
	}
	return 0;
}

static void start_loop_parts(baton_flow_t *f)
{
	uv_timer_init(f->loop, &f->tick);
	f->tick.data = f;
	uv_timer_start(&f->tick, on_tick, 0, TICK_MS);
	uv_signal_init(f->loop, &f->sigterm);
	uv_signal_init(f->loop, &f->sigint);
	f->sigterm.data = f->sigint.data = f;
	uv_signal_start(&f->sigterm, on_signal, SIGTERM);
	uv_signal_start(&f->sigint, on_signal, SIGINT);
	baton_publisher_start(f->publisher);
	if (!f->cfg.mgmt_url)
		BATON_WARN(NULL, "topology.policies",
			   "BATON_RABBITMQ_MGMT_URL not set: policies (retry delays, dead-lettering, "
			   "delivery limit) must come from broker-config/definitions.json");
}

/* Frees what start_parts made when the loop never ran. */
static void abandon_parts(baton_flow_t *f)
{
	if (f->metrics && f->cfg.metrics_addr)
		baton_metrics_stop(f->metrics, NULL, NULL);
	if (f->audit)
		baton_audit_close(f->audit, NULL, NULL);
	if (f->store)
		baton_store_close(f->store);
	if (f->http)
		baton_http_close(f->http, NULL, NULL);
	if (f->consumer)
		baton_consumer_close(f->consumer, NULL, NULL);
	if (f->publisher)
		baton_publisher_close(f->publisher, NULL, NULL);
	uv_run(f->loop, UV_RUN_DEFAULT);
}

int baton_worker_main(const baton_flow_def_t *def, int argc, char **argv)
{
	baton_flow_t f = {.def = def, .exit_code = 1};
	char err[512] = "";

	if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		usage(def);
		return 0;
	}
	if (argc > 1 && !strcmp(argv[1], "--version")) {
		printf("baton-%s %s\n", def->name, baton_version());
		return 0;
	}
	if (argc > 1) {
		fprintf(stderr, "baton-%s: unknown argument '%s' (try --help)\n", def->name, argv[1]);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	srandom((unsigned)getpid() ^ (unsigned)uv_hrtime());
	if (load_config(&f) != 0)
		return 2;
	baton_log_init(f.cfg.flow, f.cfg.worker_id, f.cfg.log_level);
	if ((def->setup && def->setup(&f, err, sizeof(err)) != 0) ||
	    make_topology(&f, err, sizeof(err)) != 0) {
		BATON_ERROR(NULL, "config.invalid", "%s", err[0] ? err : "flow setup failed");
		f.exit_code = 2;
		goto out;
	}
	size_threadpool(f.cfg.mongo_pool_size);
	f.loop = uv_default_loop();
	if (start_parts(&f, err, sizeof(err)) != 0) {
		BATON_ERROR(NULL, "worker.start_failed", "%s", err);
		abandon_parts(&f);
		goto out;
	}
	start_loop_parts(&f);
	BATON_INFO(NULL, "worker.started", "baton-%s %s started (prefetch %u)", def->name,
		   baton_version(), f.cfg.prefetch);
	uv_run(f.loop, UV_RUN_DEFAULT);
	f.exit_code = 0;
	BATON_INFO(NULL, "worker.stopped", "clean shutdown");
out:
	if (def->teardown)
		def->teardown(&f);
	if (f.metrics)
		baton_metrics_free(f.metrics);
	if (f.loop)
		uv_loop_close(f.loop);
	baton_config_free(&f.cfg);
	mongoc_cleanup();
	return f.exit_code;
}
