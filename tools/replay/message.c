/* message.c — parked message story and replay headers. See message.h. */
#include "message.h"

#include <stdio.h>
#include <string.h>

#include "baton/headers.h"
#include "filter.h"

static uint64_t fnv1a(const void *p, size_t n)
{
	const unsigned char *s = p;
	uint64_t h = 1469598103934665603ULL;

	for (size_t i = 0; i < n; i++)
		h = (h ^ s[i]) * 1099511628211ULL;
	return h;
}

static void read_id(rp_item_t *it, const amqp_basic_properties_t *p, amqp_bytes_t body)
{
	if ((p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG) && p->message_id.len &&
	    p->message_id.len < sizeof(it->id)) {
		memcpy(it->id, p->message_id.bytes, p->message_id.len);
		it->id[p->message_id.len] = '\0';
		return;
	}
	/* No message id: a stable name from the body, so show/replay can address it. */
	snprintf(it->id, sizeof(it->id), "h-%016llx", (unsigned long long)fnv1a(body.bytes, body.len));
}

static void read_body(rp_item_t *it, amqp_bytes_t body)
{
	json_t *j = json_loadb(body.bytes, body.len, 0, NULL);
	const char *s;

	if (!j)
		return;
	if ((s = json_string_value(json_object_get(j, "subject"))))
		snprintf(it->subject, sizeof(it->subject), "%s", s);
	if ((s = json_string_value(json_object_get(j, "type"))))
		snprintf(it->type, sizeof(it->type), "%s", s);
	json_decref(j);
}

/* The broker parked it (x-death, no x-baton-error-code): why, from the first death. */
static void read_death(rp_item_t *it, const amqp_table_t *h)
{
	char reason[64];

	baton_header_str(h, "x-first-death-reason", reason, sizeof(reason));
	if (!reason[0])
		return;
	snprintf(it->code, sizeof(it->code), "broker.%s", reason);
	if (!strcmp(reason, "delivery_limit"))
		snprintf(it->cls, sizeof(it->cls), "poison");
	if (!it->message[0])
		snprintf(it->message, sizeof(it->message), "parked by the broker (%s)", reason);
}

static void copy_bytes(char *dst, size_t len, amqp_bytes_t b)
{
	size_t n = b.len < len - 1 ? b.len : len - 1;
	memcpy(dst, b.bytes, n);
	dst[n] = '\0';
}

void rp_item_read(rp_item_t *it, const char *flow, const amqp_basic_properties_t *p,
		  amqp_bytes_t body)
{
	const amqp_table_t *h = (p->_flags & AMQP_BASIC_HEADERS_FLAG) ? &p->headers : NULL;
	int64_t v;

	memset(it, 0, sizeof(*it));
	read_id(it, p, body);
	snprintf(it->flow, sizeof(it->flow), "%s", flow);
	baton_header_str(h, BATON_H_CLASS, it->cls, sizeof(it->cls));
	baton_header_str(h, BATON_H_CODE, it->code, sizeof(it->code));
	baton_header_str(h, BATON_H_MESSAGE, it->message, sizeof(it->message));
	it->http_status = (long)baton_header_int(h, BATON_H_HTTP_STATUS, 0);
	v = baton_header_int(h, BATON_H_ATTEMPTS, 0);
	it->attempts = v < 0 ? 0 : v > 1000000 ? 1000000 : (unsigned)v;
	v = baton_header_int(h, BATON_H_REPLAYS, 0);
	it->replays = v < 0 ? 0 : v > 1000000 ? 1000000 : (unsigned)v;
	baton_header_str(h, BATON_H_FIRST_FAILED, it->first_failed_at, sizeof(it->first_failed_at));
	baton_header_str(h, BATON_H_LAST_FAILED, it->last_failed_at, sizeof(it->last_failed_at));
	baton_header_str(h, BATON_H_WORKER, it->worker, sizeof(it->worker));
	baton_header_str(h, BATON_H_ORIG_EXCHANGE, it->orig_exchange, sizeof(it->orig_exchange));
	baton_header_str(h, BATON_H_ORIG_RK, it->orig_routing_key, sizeof(it->orig_routing_key));
	if (!it->code[0])
		read_death(it, h);
	if (rp_time_parse(it->last_failed_at, 0, &it->last_ms) != 0)
		it->last_ms = -1;
	if (p->_flags & AMQP_BASIC_CORRELATION_ID_FLAG)
		copy_bytes(it->correlation_id, sizeof(it->correlation_id), p->correlation_id);
	if (p->_flags & AMQP_BASIC_TYPE_FLAG)
		copy_bytes(it->type, sizeof(it->type), p->type);
	read_body(it, body);
}

static int replay_drops(amqp_bytes_t k)
{
	static const char *const exact[] = {BATON_H_ATTEMPTS, BATON_H_REPLAYS, BATON_H_RETRY_TIER,
					    "x-death", "x-delivery-count", NULL};
	static const char *const prefixes[] = {"x-first-death-", "x-last-death-", NULL};

	for (int i = 0; exact[i]; i++)
		if (k.len == strlen(exact[i]) && !memcmp(k.bytes, exact[i], k.len))
			return 1;
	for (int i = 0; prefixes[i]; i++) {
		size_t l = strlen(prefixes[i]);
		if (k.len >= l && !memcmp(k.bytes, prefixes[i], l))
			return 1;
	}
	return 0;
}

int rp_replay_headers(const amqp_table_t *in, unsigned replays, amqp_pool_t *pool,
		      amqp_table_t *out)
{
	int n_in = in ? in->num_entries : 0, n = 0;
	amqp_table_entry_t *e = amqp_pool_alloc(pool, sizeof(*e) * (size_t)(n_in + 2));

	if (!e)
		return -1;
	for (int i = 0; i < n_in; i++)
		if (!replay_drops(in->entries[i].key))
			e[n++] = in->entries[i];
	e[n].key = amqp_cstring_bytes(BATON_H_ATTEMPTS);
	e[n].value.kind = AMQP_FIELD_KIND_I64;
	e[n++].value.value.i64 = 0;
	e[n].key = amqp_cstring_bytes(BATON_H_REPLAYS);
	e[n].value.kind = AMQP_FIELD_KIND_I64;
	e[n++].value.value.i64 = replays;
	out->num_entries = n;
	out->entries = e;
	return 0;
}

json_t *rp_field_json(const amqp_field_value_t *v)
{
	switch (v->kind) {
	case AMQP_FIELD_KIND_BOOLEAN: return json_boolean(v->value.boolean);
	case AMQP_FIELD_KIND_I8: return json_integer(v->value.i8);
	case AMQP_FIELD_KIND_U8: return json_integer(v->value.u8);
	case AMQP_FIELD_KIND_I16: return json_integer(v->value.i16);
	case AMQP_FIELD_KIND_U16: return json_integer(v->value.u16);
	case AMQP_FIELD_KIND_I32: return json_integer(v->value.i32);
	case AMQP_FIELD_KIND_U32: return json_integer(v->value.u32);
	case AMQP_FIELD_KIND_I64: return json_integer(v->value.i64);
	case AMQP_FIELD_KIND_U64:
	case AMQP_FIELD_KIND_TIMESTAMP: return json_integer((json_int_t)v->value.u64);
	case AMQP_FIELD_KIND_F32: return json_real(v->value.f32);
	case AMQP_FIELD_KIND_F64: return json_real(v->value.f64);
	case AMQP_FIELD_KIND_UTF8:
	case AMQP_FIELD_KIND_BYTES:
	{
		json_t *s = v->value.bytes.len
				    ? json_stringn(v->value.bytes.bytes, v->value.bytes.len)
				    : json_string("");
		return s ? s : json_string("(binary, not UTF-8)");
	}
	case AMQP_FIELD_KIND_TABLE: return rp_table_json(&v->value.table);
	case AMQP_FIELD_KIND_ARRAY: {
		json_t *a = json_array();
		for (int i = 0; i < v->value.array.num_entries; i++)
			json_array_append_new(a, rp_field_json(&v->value.array.entries[i]));
		return a;
	}
	default: return json_null();
	}
}

json_t *rp_table_json(const amqp_table_t *t)
{
	json_t *o = json_object();
	char key[256];

	for (int i = 0; t && i < t->num_entries; i++) {
		copy_bytes(key, sizeof(key), t->entries[i].key);
		json_object_set_new(o, key, rp_field_json(&t->entries[i].value));
	}
	return o;
}
