/* db.h — baton-replay's records in MongoDB (blocking libmongoc, error API v2, short server
 * selection so an unreachable database is reported in seconds).
 *
 * dead_letters: one document per parked message and flow, _id "<flow>:<message id>":
 *   {flow, message_id, subject, type, correlation_id, status: "replayed" | "discarded",
 *    error: {class, code, message, http_status}, attempts, replays, first_failed_at,
 *    last_failed_at, created_at, updated_at, discard: {operator, reason, ticket, at, body},
 *    history: [{event: "parked", at, code, class, message, attempts, replays},
 *              {event: "replayed" | "discarded" | "replay_failed", at, operator, reason,
 *               ticket, outcome, why}, ...]}
 * A message parked, replayed, parked again and discarded has one document whose history tells
 * it in that order. audit: one entry per action (step "replayed" / "discarded"), like the
 * workers' entries (flow, message_id, correlation_id, subject, type, ts) plus operator, reason,
 * ticket, outcome. */
#ifndef RP_DB_H
#define RP_DB_H

#include <jansson.h>
#include <mongoc/mongoc.h>

#include "broker.h"

typedef struct rp_db {
	mongoc_client_t *c;
	char name[128];
} rp_db_t;

typedef struct rp_action {
	const char *event;     /* "replayed", "discarded" */
	const char *op;        /* operator */
	const char *reason;    /* may be NULL */
	const char *ticket;    /* may be NULL */
	const char *tool_id;   /* baton-replay@host:pid, the audit's worker field */
} rp_action_t;

/* Connects and pings. 0, or -1 with a sentence (no credentials) in err. */
int rp_db_open(rp_db_t *d, const char *uri, const char *db, char *err, size_t errlen);
void rp_db_close(rp_db_t *d);

/* Records the action on msgs (outcome 1: done, -1: failed with why) in dead_letters and audit.
 * keep_body stores the body with the record (discards: nothing is ever lost for good). */
int rp_db_record(rp_db_t *d, const rp_action_t *a, rp_msg_t **msgs, size_t n, int keep_body,
		 char *err, size_t errlen);

/* dead_letters documents of a message id (every flow) and its audit trail (steps received
 * excluded), oldest first, as JSON arrays. 0 or -1 with err. */
int rp_db_history(rp_db_t *d, const char *id, json_t **records, json_t **trail, char *err,
		  size_t errlen);

#endif
