/* flow_internal.h — what flow.c (one message's state machine) and worker.c (the process around
 * it) share. Not installed; flows see only baton/flow.h. */
#ifndef BATON_FLOW_INTERNAL_H
#define BATON_FLOW_INTERNAL_H

#include <stdint.h>

#include "baton/amqp.h"
#include "baton/audit.h"
#include "baton/flow.h"
#include "baton/headers.h"
#include "baton/topology.h"

enum worker_stage {
	STAGE_STARTING, /* indexes being created; not consuming yet */
	STAGE_RUN,
	STAGE_DRAIN,    /* SIGTERM: consumer cancelled, in-flight work finishing */
	STAGE_CLOSING   /* consumer closed; everything else closing in order */
};

struct baton_flow {
	const baton_flow_def_t *def;
	baton_config_t cfg;
	uv_loop_t *loop;
	baton_flow_topology_t topo;
	baton_topology_opts_t topts;
	baton_amqp_params_t amqp;
	baton_consumer_t *consumer;
	baton_publisher_t *publisher;
	baton_http_t *http;
	baton_store_t *store;
	baton_audit_t *audit;
	baton_metrics_t *metrics;
	uv_signal_t sigterm, sigint;
	uv_timer_t tick;
	uv_work_t index_work;
	char index_err[256];
	int index_busy, store_ok, ping_busy;
	uint64_t next_ping_ms, next_index_ms, grace_deadline_ms;
	enum worker_stage stage;
	int aborting;            /* grace expired: in-flight messages are dropped unacked */
	struct baton_msg *head;  /* messages in flight (doubly linked) */
	size_t n_msgs;
	void *data;
	int exit_code;
};

/* A delivery arrived (flow.c takes ownership of d). */
void flow_msg_receive(baton_flow_t *f, baton_delivery_t *d);
/* Messages parked waiting for the publisher try again (publisher back up, or tick). */
void flow_msg_retry_forwards(baton_flow_t *f);
/* Grace expired: frees the messages that wait for nothing but the publisher. */
void flow_msg_abort_waiting(baton_flow_t *f);
/* worker.c: a message was freed (n_msgs went down). */
void worker_msg_freed(baton_flow_t *f);

#endif
