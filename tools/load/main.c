/* baton-load — publishes realistic event streams to baton.events (TEST TOOL): orders, updates,
 * cancellations and stock movements, persistent, with publisher confirms kept within a window,
 * at a target rate or as fast as possible; prints a JSON report of what it sent. */
#include "gen.h"
#include "sim.h"

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

typedef struct run {
	amqp_connection_state_t c;
	uint64_t sent, confirmed, nacked, returned;
	uint64_t by_type[LOAD_KINDS];
	uint64_t lines, unmapped, bytes;
	const char *err;
} run_t;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: baton-load [options]\n"
		"\n"
		"A TEST TOOL: publishes synthetic storefront orders, updates, cancellations and ERP\n"
		"stock movements (CloudEvents 1.0, the shapes of the public contracts) to the\n"
		"baton.events exchange with publisher confirms, then prints a JSON report. Never\n"
		"point it at a production broker.\n"
		"\n"
		"options:\n"
		"  --amqp URL            broker (default $BATON_AMQP_URL)\n"
		"  --count N             events to publish (default 1000)\n"
		"  --rate N              events per second; 0 = as fast as possible (default 0)\n"
		"  --window N            unconfirmed publishes allowed in flight (default 256)\n"
		"  --seed N              content seed: same seed, same stream (default 1)\n"
		"  --mix SPEC            relative shares, e.g. orders=60,updates=15,cancels=5,stock=20\n"
		"  --skus N              catalogue size (default 1000)\n"
		"  --zipf S              popularity skew exponent (default 1.1)\n"
		"  --unmapped-share F    fraction of order lines with SKUs outside the catalogue\n"
		"                        (default 0)\n"
		"  --locations N         stock locations WH-1..WH-N (default 3)\n"
		"  --channel NAME        sales channel (default shop-eu)\n"
		"  --run-id ID           prefix of order ids (default: random, so runs never collide)\n"
		"  --exchange NAME       exchange (default baton.events)\n"
		"  --mandatory           publish mandatory and count unroutable returns\n"
		"  -h, --help            this help\n"
		"\n"
		"Exit status: 0 when every event was confirmed, 1 otherwise, 2 on bad usage.\n");
}

static bool ok_reply(amqp_connection_state_t c)
{
	return amqp_get_rpc_reply(c).reply_type == AMQP_RESPONSE_NORMAL;
}

static amqp_connection_state_t connect_amqp(const char *url_in, const char *exchange,
					    const char **err)
{
	struct amqp_connection_info ci;
	char *url = strdup(url_in);
	amqp_connection_state_t c = amqp_new_connection();
	amqp_socket_t *s = amqp_tcp_socket_new(c);
	struct timeval tv = {10, 0};

	*err = "bad AMQP URL";
	if (!url || amqp_parse_url(url, &ci) != AMQP_STATUS_OK)
		goto fail;
	*err = "cannot connect to the broker";
	if (!s || amqp_socket_open_noblock(s, ci.host, ci.port, &tv) != AMQP_STATUS_OK)
		goto fail;
	*err = "login refused";
	if (amqp_login(c, ci.vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, ci.user, ci.password)
		    .reply_type != AMQP_RESPONSE_NORMAL)
		goto fail;
	*err = "channel open failed";
	amqp_channel_open(c, 1);
	if (!ok_reply(c))
		goto fail;
	*err = "exchange declare failed";
	if (sim_amqp_declare_exchange(c, exchange) != 0)
		goto fail;
	*err = "confirm.select failed";
	amqp_confirm_select(c, 1);
	if (!ok_reply(c))
		goto fail;
	free(url);
	*err = NULL;
	return c;
fail:
	free(url);
	amqp_destroy_connection(c);
	return NULL;
}

/* Reads one frame (waiting up to tv, NULL = forever... never used) and accounts confirms.
 * Returns 0, AMQP_STATUS_TIMEOUT, or another error. */
static int read_confirm(run_t *r, struct timeval *tv)
{
	amqp_frame_t f;
	int rc = amqp_simple_wait_frame_noblock(r->c, &f, tv);

	if (rc != AMQP_STATUS_OK)
		return rc;
	if (f.frame_type != AMQP_FRAME_METHOD)
		return 0;
	switch (f.payload.method.id) {
	case AMQP_BASIC_ACK_METHOD: {
		amqp_basic_ack_t *a = f.payload.method.decoded;
		uint64_t done = r->confirmed + r->nacked;
		uint64_t n = a->multiple ? a->delivery_tag - done : 1;
		if (a->multiple && a->delivery_tag < done)
			n = 0;
		r->confirmed += n;
		break;
	}
	case AMQP_BASIC_NACK_METHOD: {
		amqp_basic_nack_t *a = f.payload.method.decoded;
		uint64_t done = r->confirmed + r->nacked;
		r->nacked += a->multiple && a->delivery_tag > done ? a->delivery_tag - done : 1;
		break;
	}
	case AMQP_BASIC_RETURN_METHOD: {
		amqp_message_t m;
		if (amqp_read_message(r->c, 1, &m, 0).reply_type == AMQP_RESPONSE_NORMAL)
			amqp_destroy_message(&m);
		r->returned++;
		break;
	}
	case AMQP_CHANNEL_CLOSE_METHOD:
	case AMQP_CONNECTION_CLOSE_METHOD:
		r->err = "the broker closed the channel";
		return AMQP_STATUS_CONNECTION_CLOSED;
	default:
		break;
	}
	amqp_maybe_release_buffers(r->c);
	return 0;
}

static uint64_t outstanding(const run_t *r)
{
	return r->sent - r->confirmed - r->nacked;
}

static int parse_u64(const char *v, uint64_t *out)
{
	char *end;

	errno = 0;
	*out = strtoull(v, &end, 10);
	return !*v || *end || errno || v[0] == '-' ? -1 : 0;
}

static int parse_dbl(const char *v, double lo, double hi, double *out)
{
	char *end;

	*out = strtod(v, &end);
	return !*v || *end || *out < lo || *out > hi ? -1 : 0;
}

int main(int argc, char **argv)
{
	load_opts_t o;
	const char *url = getenv("BATON_AMQP_URL"), *exchange = "baton.events";
	uint64_t count = 1000, window = 256, u;
	double rate = 0;
	bool mandatory = false;
	char run_id[32];
	run_t r = {0};
	load_gen_t *g;
	amqp_basic_properties_t p;
	double t0, elapsed;
	json_t *rep, *bt;

	load_opts_defaults(&o);
	snprintf(run_id, sizeof(run_id), "LD%06llx",
		 (unsigned long long)(sim_random_seed() & 0xffffff));
	o.run_id = run_id;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		int bad = 0;
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(a, "--mandatory")) {
			mandatory = true;
			continue;
		} else if (!v) {
			bad = 1;
		} else if (!strcmp(a, "--amqp")) {
			url = v;
		} else if (!strcmp(a, "--count")) {
			bad = parse_u64(v, &count);
		} else if (!strcmp(a, "--rate")) {
			bad = parse_dbl(v, 0, 1e7, &rate);
		} else if (!strcmp(a, "--window")) {
			bad = parse_u64(v, &window) || window < 1 || window > 65535;
		} else if (!strcmp(a, "--seed")) {
			bad = parse_u64(v, &o.seed);
		} else if (!strcmp(a, "--mix")) {
			bad = load_parse_mix(v, o.mix);
		} else if (!strcmp(a, "--skus")) {
			bad = parse_u64(v, &u) || u < 1 || u > 10000000;
			o.skus = (int)u;
		} else if (!strcmp(a, "--zipf")) {
			bad = parse_dbl(v, 0, 10, &o.zipf_s);
		} else if (!strcmp(a, "--unmapped-share")) {
			bad = parse_dbl(v, 0, 1, &o.unmapped_share);
		} else if (!strcmp(a, "--locations")) {
			bad = parse_u64(v, &u) || u < 1 || u > 1000;
			o.locations = (int)u;
		} else if (!strcmp(a, "--channel")) {
			o.channel = v;
		} else if (!strcmp(a, "--run-id")) {
			o.run_id = v;
		} else if (!strcmp(a, "--exchange")) {
			exchange = v;
		} else {
			fprintf(stderr, "baton-load: unknown option '%s'\n", a);
			usage(stderr);
			return 2;
		}
		if (bad) {
			fprintf(stderr, "baton-load: bad or missing value for %s\n", a);
			return 2;
		}
		i++;
	}
	if (!url || !*url) {
		fprintf(stderr, "baton-load: no broker: give --amqp URL or set BATON_AMQP_URL\n");
		return 2;
	}
	o.id_seed = sim_random_seed();
	/* Stock sequences increase across runs too: start from the clock (microseconds). */
	{
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		o.seq_base = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
	}
	g = load_gen_new(&o);
	if (!g) {
		fprintf(stderr, "baton-load: out of memory\n");
		return 1;
	}
	r.c = connect_amqp(url, exchange, &r.err);
	if (!r.c) {
		fprintf(stderr, "baton-load: %s\n", r.err);
		load_gen_free(g);
		return 1;
	}
	memset(&p, 0, sizeof(p));
	p._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG |
		   AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_TYPE_FLAG | AMQP_BASIC_APP_ID_FLAG |
		   AMQP_BASIC_CORRELATION_ID_FLAG;
	p.delivery_mode = AMQP_DELIVERY_PERSISTENT;
	p.content_type = amqp_cstring_bytes("application/json");
	p.app_id = amqp_cstring_bytes("baton-load");

	t0 = sim_now();
	while (r.sent < count && !r.err) {
		load_event_t ev;
		/* Pace: event i is due at t0 + i / rate; wait for confirms meanwhile. */
		if (rate > 0) {
			double due = t0 + (double)r.sent / rate, now;
			while ((now = sim_now()) < due && !r.err) {
				double w = due - now;
				struct timeval tv = {(time_t)w, (suseconds_t)((w - (long)w) * 1e6)};
				int rc = read_confirm(&r, &tv);
				if (rc != 0 && rc != AMQP_STATUS_TIMEOUT)
					r.err = r.err ? r.err : "lost the broker connection";
			}
		}
		while (outstanding(&r) >= window && !r.err) {
			struct timeval tv = {30, 0};
			if (read_confirm(&r, &tv) != 0)
				r.err = r.err ? r.err : "no confirm from the broker within 30 s";
		}
		if (r.err)
			break;
		if (load_gen_next(g, &ev) != 0) {
			r.err = "out of memory";
			break;
		}
		p.message_id = amqp_cstring_bytes(ev.id);
		p.correlation_id = amqp_cstring_bytes(ev.id);
		p.type = amqp_cstring_bytes(ev.type);
		if (amqp_basic_publish(r.c, 1, amqp_cstring_bytes(exchange),
				       amqp_cstring_bytes(ev.type), mandatory, 0, &p,
				       (amqp_bytes_t){ev.len, (void *)ev.body}) != AMQP_STATUS_OK) {
			r.err = "publish failed";
			break;
		}
		r.sent++;
		r.by_type[ev.kind]++;
		r.lines += (uint64_t)ev.lines;
		r.unmapped += (uint64_t)ev.unmapped;
		r.bytes += ev.len;
		/* Paced: take confirms that already arrived, without waiting, so that the report
		 * is current. Flat out they are read only when the window is full: a poll per 32
		 * publishes cost the broker CPU on small machines (like the bare loop, which
		 * never polls early). */
		if (rate > 0 && (r.sent & 31) == 0) {
			struct timeval tv = {0, 0};
			while (read_confirm(&r, &tv) == 0 && !r.err)
				;
		}
	}
	while (outstanding(&r) > 0 && !r.err) {
		struct timeval tv = {30, 0};
		if (read_confirm(&r, &tv) != 0)
			r.err = r.err ? r.err : "no confirm from the broker within 30 s";
	}
	elapsed = sim_now() - t0;
	bt = json_object();
	for (int k = 0; k < LOAD_KINDS; k++)
		json_object_set_new(bt, load_kind_types[k], json_integer((json_int_t)r.by_type[k]));
	rep = json_pack("{s:I, s:I, s:I, s:I, s:o, s:I, s:I, s:I, s:f, s:f, s:f, s:I, s:I, s:s, "
			"s:s, s:s?}",
			"sent", (json_int_t)r.sent, "confirmed", (json_int_t)r.confirmed, "nacked",
			(json_int_t)r.nacked, "returned", (json_int_t)r.returned, "by_type", bt,
			"lines", (json_int_t)r.lines, "unmapped_lines", (json_int_t)r.unmapped,
			"bytes", (json_int_t)r.bytes, "elapsed_s", elapsed, "rate",
			elapsed > 0 ? (double)r.confirmed / elapsed : 0.0, "target_rate", rate,
			"window", (json_int_t)window, "seed", (json_int_t)o.seed, "run_id",
			o.run_id, "exchange", exchange, "error", r.err);
	if (!r.err)
		json_object_del(rep, "error");
	json_dumpf(rep, stdout, JSON_INDENT(2));
	fputc('\n', stdout);
	json_decref(rep);
	amqp_channel_close(r.c, 1, AMQP_REPLY_SUCCESS);
	amqp_connection_close(r.c, AMQP_REPLY_SUCCESS);
	amqp_destroy_connection(r.c);
	load_gen_free(g);
	return r.err || r.confirmed != count || r.nacked ? 1 : 0;
}
