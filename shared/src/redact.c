/* redact.c — personal data and secrets replaced in a deep copy; see baton/redact.h. */
#include "baton/redact.h"

#include <stddef.h>
#include <string.h>

#define REDACT_MAX_DEPTH 128

static const char *const pii_keys[] = {
	"email",	 "phone",	  "name",	 "first_name",	  "last_name",
	"line1",	 "line2",	  "address1",	 "address2",	  "street",
	"postal_code",	 "zip",		  "tax_id",	 "iban",	  "card",
	"ip",		 "birth_date",	  "email_address", "phone_number", "card_number",
	"ip_address",	 "date_of_birth", NULL,
};

static const char *const container_keys[] = {"customer", "shipping_address", "billing_address",
					     "address", NULL};

static const char *const secret_words[] = {"password", "secret",  "token",   "authorization",
					   "api_key",  "apikey",  "api-key", NULL};

static char lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* ASCII case-insensitive equality of C strings. */
static int ieq(const char *a, const char *b)
{
	for (; *a && *b; a++, b++)
		if (lower(*a) != lower(*b))
			return 0;
	return *a == *b;
}

static int icontains(const char *hay, const char *needle)
{
	size_t n = strlen(needle);

	for (; *hay; hay++) {
		size_t i = 0;
		while (i < n && hay[i] && lower(hay[i]) == needle[i])
			i++;
		if (i == n)
			return 1;
	}
	return 0;
}

static int in_list(const char *key, const char *const *list)
{
	for (; *list; list++)
		if (ieq(key, *list))
			return 1;
	return 0;
}

static int is_secret(const char *key)
{
	for (const char *const *w = secret_words; *w; w++)
		if (icontains(key, *w))
			return 1;
	return 0;
}

static json_t *redact_value(const json_t *v, int in_container, int depth);

/* Value of member key (in an object at `depth`), with the key rules applied. */
static json_t *redact_member(const char *key, const json_t *v, int in_container, int depth)
{
	if (json_is_null(v))
		return json_null();
	if (is_secret(key))
		return json_string(BATON_SECRET);
	if (in_list(key, pii_keys))
		return json_string(BATON_REDACTED);
	if (in_list(key, container_keys))
		return redact_value(v, 1, depth + 1);
	if (in_container && ieq(key, "country"))
		return redact_value(v, 0, depth + 1);
	return redact_value(v, in_container, depth + 1);
}

static json_t *redact_object(const json_t *o, int in_container, int depth)
{
	json_t *out = json_object(), *v;
	const char *key;
	size_t klen;

	if (!out)
		return NULL;
	json_object_keylen_foreach((json_t *)o, key, klen, v)
	{
		json_t *nv = redact_member(key, v, in_container, depth);
		if (!nv || json_object_setn_new_nocheck(out, key, klen, nv)) {
			json_decref(out);
			return NULL;
		}
	}
	return out;
}

static json_t *redact_value(const json_t *v, int in_container, int depth)
{
	if (depth > REDACT_MAX_DEPTH)
		return json_string(BATON_REDACTED);
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return redact_object(v, in_container, depth);
	case JSON_ARRAY: {
		json_t *out = json_array();
		for (size_t i = 0; out && i < json_array_size(v); i++) {
			json_t *nv = redact_value(json_array_get(v, i), in_container, depth + 1);
			if (!nv || json_array_append_new(out, nv)) {
				json_decref(out);
				return NULL;
			}
		}
		return out;
	}
	case JSON_STRING:
		if (in_container)
			return json_string(BATON_REDACTED);
		return json_stringn_nocheck(json_string_value(v), json_string_length(v));
	default:
		return json_deep_copy(v); /* scalars */
	}
}

json_t *baton_redact(const json_t *in)
{
	return in ? redact_value(in, 0, 1) : NULL;
}
