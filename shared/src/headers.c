/* headers.c — x-baton-* failure headers. See baton/headers.h. */
#include "baton/headers.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static const char *const class_names[] = {"transient", "permanent", "exhausted", "poison"};

const char *baton_error_class_name(baton_error_class_t c)
{
	return (unsigned)c < 4 ? class_names[c] : "unknown";
}

char *baton_now_rfc3339(char *buf, size_t len)
{
	struct timeval tv;
	struct tm tm;
	char base[24];

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, len, "%s.%03dZ", base, (int)(tv.tv_usec / 1000));
	return buf;
}

const amqp_field_value_t *baton_header_find(const amqp_table_t *t, const char *key)
{
	size_t klen = strlen(key);

	if (!t)
		return NULL;
	for (int i = 0; i < t->num_entries; i++) {
		const amqp_table_entry_t *e = &t->entries[i];
		if (e->key.len == klen && memcmp(e->key.bytes, key, klen) == 0)
			return &e->value;
	}
	return NULL;
}

int64_t baton_header_int(const amqp_table_t *t, const char *key, int64_t def)
{
	const amqp_field_value_t *v = baton_header_find(t, key);

	if (!v)
		return def;
	switch (v->kind) {
	case AMQP_FIELD_KIND_I8: return v->value.i8;
	case AMQP_FIELD_KIND_U8: return v->value.u8;
	case AMQP_FIELD_KIND_I16: return v->value.i16;
	case AMQP_FIELD_KIND_U16: return v->value.u16;
	case AMQP_FIELD_KIND_I32: return v->value.i32;
	case AMQP_FIELD_KIND_U32: return v->value.u32;
	case AMQP_FIELD_KIND_I64: return v->value.i64;
	case AMQP_FIELD_KIND_U64: return v->value.u64 > INT64_MAX ? def : (int64_t)v->value.u64;
	default: return def;
	}
}

char *baton_header_str(const amqp_table_t *t, const char *key, char *buf, size_t len)
{
	const amqp_field_value_t *v = baton_header_find(t, key);

	buf[0] = '\0';
	if (v && (v->kind == AMQP_FIELD_KIND_UTF8 || v->kind == AMQP_FIELD_KIND_BYTES)) {
		size_t n = v->value.bytes.len < len - 1 ? v->value.bytes.len : len - 1;
		memcpy(buf, v->value.bytes.bytes, n);
		buf[n] = '\0';
	}
	return buf;
}

void baton_failure_read(baton_failure_t *f, const amqp_table_t *h)
{
	int64_t v;

	memset(f, 0, sizeof(*f));
	v = baton_header_int(h, BATON_H_ATTEMPTS, 0);
	f->attempts = v < 0 ? 0 : v > 1000000 ? 1000000 : (unsigned)v;
	v = baton_header_int(h, BATON_H_REPLAYS, 0);
	f->replays = v < 0 ? 0 : v > 1000000 ? 1000000 : (unsigned)v;
	baton_header_str(h, BATON_H_FIRST_FAILED, f->first_failed_at, sizeof(f->first_failed_at));
	baton_header_str(h, BATON_H_ORIG_EXCHANGE, f->orig_exchange, sizeof(f->orig_exchange));
	baton_header_str(h, BATON_H_ORIG_RK, f->orig_routing_key, sizeof(f->orig_routing_key));
}

/* Length of the UTF-8 sequence that starts with byte c (1 for invalid lead bytes). */
static size_t utf8_len(unsigned char c)
{
	if (c >= 0xF0 && c <= 0xF4)
		return 4;
	if (c >= 0xE0)
		return c <= 0xEF ? 3 : 1;
	if (c >= 0xC2)
		return 2;
	return 1;
}

char *baton_truncate_utf8(char *dst, size_t dstlen, const char *src, size_t max)
{
	static const char ell[] = "\xE2\x80\xA6"; /* … */
	size_t in = 0, out = 0, n = strlen(src);

	if (dstlen == 0)
		return dst;
	if (max > dstlen - 1)
		max = dstlen - 1;
	int cut = n > max;
	size_t budget = cut ? (max > 3 ? max - 3 : 0) : max;
	while (in < n) {
		size_t l = utf8_len((unsigned char)src[in]);
		if (in + l > n)
			l = n - in;
		if (out + l > budget)
			break;
		for (size_t i = 0; i < l; i++) {
			unsigned char c = (unsigned char)src[in + i];
			dst[out++] = (l == 1 && (c < 0x20 || c == 0x7F)) ? ' ' : (char)c;
		}
		in += l;
	}
	if (cut && out + 3 <= max) {
		memcpy(dst + out, ell, 3);
		out += 3;
	}
	dst[out] = '\0';
	return dst;
}

static int is_dropped(amqp_bytes_t k)
{
	static const char *const prefixes[] = {"x-baton-", "x-death", "x-delivery-count",
					       "x-first-death-", "x-last-death-", NULL};
	for (int i = 0; prefixes[i]; i++) {
		size_t l = strlen(prefixes[i]);
		if (k.len >= l && memcmp(k.bytes, prefixes[i], l) == 0)
			return 1;
	}
	return 0;
}

static void put_str(amqp_table_entry_t *e, const char *k, const char *v)
{
	e->key = amqp_cstring_bytes(k);
	e->value.kind = AMQP_FIELD_KIND_UTF8;
	e->value.value.bytes = amqp_cstring_bytes(v);
}

static void put_int(amqp_table_entry_t *e, const char *k, int64_t v)
{
	e->key = amqp_cstring_bytes(k);
	e->value.kind = AMQP_FIELD_KIND_I64;
	e->value.value.i64 = v;
}

int baton_headers_build(const baton_failure_t *f, const amqp_table_t *in, amqp_pool_t *pool,
			amqp_table_t *out)
{
	int n_in = in ? in->num_entries : 0, n = 0;
	amqp_table_entry_t *e = amqp_pool_alloc(pool, sizeof(*e) * (size_t)(n_in + 16));

	if (!e)
		return -1;
	for (int i = 0; i < n_in; i++)
		if (!is_dropped(in->entries[i].key))
			e[n++] = in->entries[i];
	put_str(&e[n++], BATON_H_FLOW, f->flow);
	put_str(&e[n++], BATON_H_CLASS, baton_error_class_name(f->cls));
	put_str(&e[n++], BATON_H_CODE, f->code);
	put_str(&e[n++], BATON_H_MESSAGE, f->message);
	put_int(&e[n++], BATON_H_HTTP_STATUS, f->http_status);
	put_int(&e[n++], BATON_H_ATTEMPTS, f->attempts);
	put_str(&e[n++], BATON_H_FIRST_FAILED, f->first_failed_at);
	put_str(&e[n++], BATON_H_LAST_FAILED, f->last_failed_at);
	put_str(&e[n++], BATON_H_WORKER, f->worker);
	put_str(&e[n++], BATON_H_ORIG_EXCHANGE, f->orig_exchange);
	put_str(&e[n++], BATON_H_ORIG_RK, f->orig_routing_key);
	put_int(&e[n++], BATON_H_REPLAYS, f->replays);
	if (f->retry_tier[0])
		put_str(&e[n++], BATON_H_RETRY_TIER, f->retry_tier);
	out->num_entries = n;
	out->entries = e;
	return 0;
}
