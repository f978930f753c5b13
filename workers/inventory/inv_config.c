/* inv_config.c — the "inventory" section of BATON_CONFIG. See README.md for the schema. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "baton/config.h"
#include "baton/log.h"
#include "inventory.h"

typedef struct problems {
	unsigned n;
	char first[256];
} problems_t;

static void problem(problems_t *pr, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(problems_t *pr, const char *fmt, ...)
{
	char line[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	BATON_ERROR(NULL, "config.invalid", "BATON_CONFIG: %s", line);
	if (pr->n++ == 0)
		snprintf(pr->first, sizeof(pr->first), "%s", line);
}

/* A name: non-empty string of at most INV_MAX_NAME - 1 bytes, no control characters. */
int inv_valid_name(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n >= INV_MAX_NAME)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20)
			return 0;
	return 1;
}

static int get_count(const json_t *o, const char *key, int64_t def, int64_t *out, problems_t *pr,
		     const char *path)
{
	json_t *v = json_object_get(o, key);

	*out = def;
	if (!v)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0) {
		problem(pr, "%s.%s: a non-negative integer is expected", path, key);
		return -1;
	}
	*out = json_integer_value(v);
	return 0;
}

static void get_duration(const json_t *o, const char *key, unsigned def, unsigned *out,
			 problems_t *pr)
{
	json_t *v = json_object_get(o, key);

	*out = def;
	if (v && (!json_is_string(v) || baton_duration_parse(json_string_value(v), out) != 0))
		problem(pr, "inventory.%s: a duration such as \"50ms\" or \"60s\" is expected", key);
}

static void parse_share(inv_channel_t *ch, const json_t *o, problems_t *pr, const char *path)
{
	json_t *v = json_object_get(o, "allocation_share");
	double d;

	ch->share_ppm = ATS_SHARE_FULL;
	if (!v)
		return;
	d = json_number_value(v);
	if (!json_is_number(v) || !(d > 0.0) || d > 1.0) {
		problem(pr, "%s.allocation_share: a number in (0, 1] is expected (0.5 = half)", path);
		return;
	}
	ch->share_ppm = (uint32_t)llround(d * ATS_SHARE_FULL);
}

static void parse_locations(inv_channel_t *ch, const json_t *o, problems_t *pr, const char *path)
{
	json_t *arr = json_object_get(o, "locations"), *v;
	size_t i;

	if (!json_is_array(arr) || json_array_size(arr) == 0) {
		problem(pr, "%s.locations: a non-empty array of location names is expected", path);
		return;
	}
	ch->locations = calloc(json_array_size(arr), sizeof(char *));
	if (!ch->locations)
		return;
	json_array_foreach(arr, i, v) {
		if (!inv_valid_name(json_string_value(v))) {
			problem(pr, "%s.locations[%zu]: a location name is expected", path, i);
			continue;
		}
		if (inv_channel_has_location(ch, json_string_value(v))) {
			problem(pr, "%s.locations[%zu]: '%s' is listed twice", path, i,
				json_string_value(v));
			continue;
		}
		ch->locations[ch->n_locations++] = strdup(json_string_value(v));
	}
}

static void parse_sku_buffers(inv_channel_t *ch, const json_t *o, problems_t *pr,
			      const char *path)
{
	json_t *b = json_object_get(o, "sku_buffers"), *v;
	const char *sku;

	ch->sku_buffers = json_object();
	if (!b)
		return;
	if (!json_is_object(b)) {
		problem(pr, "%s.sku_buffers: an object {sku: buffer} is expected", path);
		return;
	}
	json_object_foreach(b, sku, v) {
		if (!inv_valid_name(sku) || !json_is_integer(v) || json_integer_value(v) < 0)
			problem(pr, "%s.sku_buffers.%s: a non-negative integer is expected", path,
				sku);
		else
			json_object_set(ch->sku_buffers, sku, v);
	}
}

static void parse_channel(inv_channel_t *ch, const char *name, const json_t *o, problems_t *pr)
{
	char path[200];
	json_t *sl;

	snprintf(path, sizeof(path), "inventory.channels.%s", name);
	ch->name = strdup(name);
	if (!inv_valid_name(name))
		problem(pr, "%s: the channel name must be 1-%d bytes", path, INV_MAX_NAME - 1);
	if (!json_is_object(o)) {
		problem(pr, "%s: an object is expected", path);
		return;
	}
	parse_locations(ch, o, pr, path);
	sl = json_object_get(o, "storefront_location");
	if (!inv_valid_name(json_string_value(sl)))
		problem(pr, "%s.storefront_location: the storefront's location_id (a string) is "
			"required", path);
	else
		ch->storefront_location = strdup(json_string_value(sl));
	get_count(o, "safety_buffer", 0, &ch->buffer, pr, path);
	parse_sku_buffers(ch, o, pr, path);
	parse_share(ch, o, pr, path);
}

static void parse_kit(inv_kit_t *k, const char *sku, const json_t *parts, problems_t *pr)
{
	const char *c;
	json_t *v;

	k->sku = strdup(sku);
	if (!inv_valid_name(sku))
		problem(pr, "inventory.kits: kit SKU '%s' must be 1-%d bytes", sku, INV_MAX_NAME - 1);
	if (json_object_size(parts) > INV_MAX_KIT_PARTS) {
		problem(pr, "inventory.kits.%s: at most %d components", sku, INV_MAX_KIT_PARTS);
		return;
	}
	if (!json_is_object(parts) || json_object_size(parts) == 0) {
		problem(pr, "inventory.kits.%s: an object {component sku: quantity per kit} is "
			"expected", sku);
		return;
	}
	k->parts = calloc(json_object_size(parts), sizeof(*k->parts));
	if (!k->parts)
		return;
	json_object_foreach((json_t *)parts, c, v) {
		if (!inv_valid_name(c) || !json_is_integer(v) || json_integer_value(v) <= 0) {
			problem(pr, "inventory.kits.%s.%s: a positive integer quantity is expected",
				sku, c);
			continue;
		}
		if (!strcmp(c, sku)) {
			problem(pr, "inventory.kits.%s: a kit cannot contain itself", sku);
			continue;
		}
		k->parts[k->n_parts].sku = strdup(c);
		k->parts[k->n_parts++].per_kit = json_integer_value(v);
	}
}

static void check_kits(inv_config_t *cfg, problems_t *pr)
{
	for (size_t i = 0; i < cfg->n_kits; i++)
		for (size_t j = 0; j < cfg->kits[i].n_parts; j++)
			if (inv_config_kit(cfg, cfg->kits[i].parts[j].sku))
				problem(pr, "inventory.kits.%s.%s: a component cannot itself be a kit",
					cfg->kits[i].sku, cfg->kits[i].parts[j].sku);
}

static void parse_channels(inv_config_t *cfg, const json_t *inv, problems_t *pr)
{
	json_t *chs = json_object_get(inv, "channels"), *v;
	const char *name;

	if (!json_is_object(chs) || json_object_size(chs) == 0) {
		problem(pr, "inventory.channels: an object with at least one channel is required");
		return;
	}
	cfg->channels = calloc(json_object_size(chs), sizeof(*cfg->channels));
	if (!cfg->channels)
		return;
	json_object_foreach(chs, name, v)
		parse_channel(&cfg->channels[cfg->n_channels++], name, v, pr);
}

static void parse_kits(inv_config_t *cfg, const json_t *inv, problems_t *pr)
{
	json_t *kits = json_object_get(inv, "kits"), *v;
	const char *sku;

	if (!kits)
		return;
	if (!json_is_object(kits)) {
		problem(pr, "inventory.kits: an object {kit sku: {component sku: quantity}} is "
			"expected");
		return;
	}
	cfg->kits = calloc(json_object_size(kits) + 1, sizeof(*cfg->kits));
	if (!cfg->kits)
		return;
	json_object_foreach(kits, sku, v)
		parse_kit(&cfg->kits[cfg->n_kits++], sku, v, pr);
	check_kits(cfg, pr);
}

static void parse_rate(inv_config_t *cfg, const json_t *inv, problems_t *pr)
{
	json_t *rl = json_object_get(inv, "rate_limit");
	json_t *bs = json_object_get(rl, "bucket_size"), *lr = json_object_get(rl, "leak_rate");

	cfg->bucket_size = 40;
	cfg->leak_rate = 2;
	if (rl && !json_is_object(rl)) {
		problem(pr, "inventory.rate_limit: an object {bucket_size, leak_rate} is expected");
		return;
	}
	if (bs && (!json_is_integer(bs) || json_integer_value(bs) < 1 ||
		   json_integer_value(bs) > 100000))
		problem(pr, "inventory.rate_limit.bucket_size: an integer 1..100000 is expected");
	else if (bs)
		cfg->bucket_size = (double)json_integer_value(bs);
	if (lr && (!json_is_number(lr) || !(json_number_value(lr) > 0) ||
		   json_number_value(lr) > 100000))
		problem(pr, "inventory.rate_limit.leak_rate: requests per second (> 0) is expected");
	else if (lr)
		cfg->leak_rate = json_number_value(lr);
}

static void parse_misc(inv_config_t *cfg, const json_t *inv, problems_t *pr)
{
	int64_t v;
	static const char *const known[] = {"channels", "kits", "coalesce", "drift_interval",
					    "max_batch", "rate_limit", "max_reservations",
					    "unheard_grace", NULL};
	const char *k;
	json_t *x;

	get_duration(inv, "coalesce", 50, &cfg->coalesce_ms, pr);
	get_duration(inv, "drift_interval", 60000, &cfg->drift_ms, pr);
	get_duration(inv, "unheard_grace", 30000, &cfg->unheard_grace_ms, pr);
	if (cfg->coalesce_ms == 0 || cfg->coalesce_ms > 60000)
		problem(pr, "inventory.coalesce: between 1ms and 60s is expected");
	if (get_count(inv, "max_batch", 100, &v, pr, "inventory") == 0 && (v < 1 || v > 250))
		problem(pr, "inventory.max_batch: an integer 1..250 is expected");
	cfg->max_batch = (unsigned)v;
	if (get_count(inv, "max_reservations", 500, &v, pr, "inventory") == 0 &&
	    (v < 10 || v > 100000))
		problem(pr, "inventory.max_reservations: an integer 10..100000 is expected");
	cfg->max_reservations = (unsigned)v;
	json_object_foreach((json_t *)inv, k, x) {
		size_t i;
		for (i = 0; known[i] && strcmp(known[i], k); i++)
			;
		if (!known[i])
			problem(pr, "inventory.%s: unknown setting", k);
	}
}

int inv_config_parse(inv_config_t *cfg, const json_t *root, char *err, size_t errlen)
{
	json_t *inv = json_object_get(root, "inventory");
	problems_t pr = {0};

	memset(cfg, 0, sizeof(*cfg));
	if (!json_is_object(inv)) {
		problem(&pr, "an object \"inventory\" (channels, kits...) is required; set "
			"BATON_CONFIG to the JSON file");
	} else {
		parse_channels(cfg, inv, &pr);
		parse_kits(cfg, inv, &pr);
		parse_rate(cfg, inv, &pr);
		parse_misc(cfg, inv, &pr);
	}
	if (pr.n == 0)
		return 0;
	snprintf(err, errlen, "%u problem(s) in the inventory configuration, the first: %s", pr.n,
		 pr.first);
	inv_config_free(cfg);
	return -1;
}

void inv_config_free(inv_config_t *cfg)
{
	for (size_t i = 0; i < cfg->n_channels; i++) {
		inv_channel_t *ch = &cfg->channels[i];
		for (size_t j = 0; j < ch->n_locations; j++)
			free(ch->locations[j]);
		free(ch->locations);
		free(ch->name);
		free(ch->storefront_location);
		json_decref(ch->sku_buffers);
	}
	for (size_t i = 0; i < cfg->n_kits; i++) {
		for (size_t j = 0; j < cfg->kits[i].n_parts; j++)
			free(cfg->kits[i].parts[j].sku);
		free(cfg->kits[i].parts);
		free(cfg->kits[i].sku);
	}
	free(cfg->channels);
	free(cfg->kits);
	memset(cfg, 0, sizeof(*cfg));
}

const inv_kit_t *inv_config_kit(const inv_config_t *cfg, const char *sku)
{
	for (size_t i = 0; i < cfg->n_kits; i++)
		if (cfg->kits[i].sku && !strcmp(cfg->kits[i].sku, sku))
			return &cfg->kits[i];
	return NULL;
}

const inv_channel_t *inv_config_channel(const inv_config_t *cfg, const char *name)
{
	for (size_t i = 0; name && i < cfg->n_channels; i++)
		if (!strcmp(cfg->channels[i].name, name))
			return &cfg->channels[i];
	return NULL;
}

int inv_channel_has_location(const inv_channel_t *ch, const char *loc)
{
	for (size_t i = 0; i < ch->n_locations; i++)
		if (!strcmp(ch->locations[i], loc))
			return 1;
	return 0;
}

int64_t inv_channel_buffer(const inv_channel_t *ch, const char *sku)
{
	json_t *v = json_object_get(ch->sku_buffers, sku);

	return v ? json_integer_value(v) : ch->buffer;
}
