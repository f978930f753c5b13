/* item.h — one parked message as baton-replay sees it (pure data, no I/O). */
#ifndef RP_ITEM_H
#define RP_ITEM_H

#include <stdint.h>

typedef struct rp_item {
	char id[256];             /* AMQP message_id, or "h-<hash of body>" when it has none */
	char flow[64];            /* from the parking queue's name */
	char cls[16];             /* x-baton-error-class ("poison" for broker-parked messages) */
	char code[96];            /* x-baton-error-code ("broker.<reason>" when the broker parked it) */
	char message[1100];       /* x-baton-error-message */
	long http_status;
	unsigned attempts, replays;
	char first_failed_at[40], last_failed_at[40];
	int64_t last_ms;          /* last_failed_at as epoch ms; -1 when unknown */
	char worker[80];
	char orig_exchange[256], orig_routing_key[256];
	char subject[256], type[128], correlation_id[256];
} rp_item_t;

#endif
