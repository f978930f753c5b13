/* money.c — decimal strings <-> int64 minor units. See baton/money.h. */
#include "baton/money.h"

#include <stdio.h>
#include <string.h>

/* ISO 4217 codes whose minor unit is not 2, and the 2-decimal ones the project accepts. */
static const struct {
	const char *code;
	int decimals;
} currencies[] = {
	{"BHD", 3}, {"IQD", 3}, {"JOD", 3}, {"KWD", 3}, {"LYD", 3}, {"OMR", 3}, {"TND", 3},
	{"BIF", 0}, {"CLP", 0}, {"DJF", 0}, {"GNF", 0}, {"ISK", 0}, {"JPY", 0}, {"KMF", 0},
	{"KRW", 0}, {"PYG", 0}, {"RWF", 0}, {"UGX", 0}, {"VND", 0}, {"VUV", 0}, {"XAF", 0},
	{"XOF", 0}, {"XPF", 0},
	{"AED", 2}, {"ARS", 2}, {"AUD", 2}, {"BGN", 2}, {"BRL", 2}, {"CAD", 2}, {"CHF", 2},
	{"CNY", 2}, {"COP", 2}, {"CZK", 2}, {"DKK", 2}, {"EGP", 2}, {"EUR", 2}, {"GBP", 2},
	{"HKD", 2}, {"HUF", 2}, {"IDR", 2}, {"ILS", 2}, {"INR", 2}, {"MAD", 2}, {"MXN", 2},
	{"MYR", 2}, {"NOK", 2}, {"NZD", 2}, {"PEN", 2}, {"PHP", 2}, {"PLN", 2}, {"RON", 2},
	{"RSD", 2}, {"RUB", 2}, {"SAR", 2}, {"SEK", 2}, {"SGD", 2}, {"THB", 2}, {"TRY", 2},
	{"TWD", 2}, {"UAH", 2}, {"USD", 2}, {"ZAR", 2},
};

int baton_currency_decimals(const char *code)
{
	if (!code || strlen(code) != 3)
		return -1;
	for (size_t i = 0; i < sizeof(currencies) / sizeof(currencies[0]); i++)
		if (!strcmp(currencies[i].code, code))
			return currencies[i].decimals;
	return -1;
}

static int fail(char *why, size_t len, const char *text)
{
	if (why && len)
		snprintf(why, len, "%s", text);
	return -1;
}

int baton_money_parse(const char *s, int decimals, int64_t *out, char *why, size_t whylen)
{
	const char *p = s;
	int neg = 0, frac = 0;
	int64_t v = 0;

	if (!s || decimals < 0 || decimals > 6)
		return fail(why, whylen, "not a decimal number");
	if (*p == '-') {
		neg = 1;
		p++;
	}
	if (*p < '0' || *p > '9')
		return fail(why, whylen, "not a decimal number");
	if (*p == '0' && p[1] >= '0' && p[1] <= '9')
		return fail(why, whylen, "leading zeros are not allowed");
	/* Accumulate negatively: -INT64_MIN does not fit, INT64_MIN itself does. */
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v < (INT64_MIN + (*p - '0')) / 10)
			return fail(why, whylen, "out of range");
		v = v * 10 - (*p - '0');
	}
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return fail(why, whylen, "digits are required after the decimal point");
		for (; *p >= '0' && *p <= '9'; p++, frac++) {
			if (frac >= decimals) {
				char b[64];
				snprintf(b, sizeof(b), "more than %d decimal%s", decimals,
					 decimals == 1 ? "" : "s");
				return fail(why, whylen, b);
			}
			if (v < (INT64_MIN + (*p - '0')) / 10)
				return fail(why, whylen, "out of range");
			v = v * 10 - (*p - '0');
		}
	}
	if (*p)
		return fail(why, whylen, "not a decimal number");
	for (; frac < decimals; frac++) {
		if (v < INT64_MIN / 10)
			return fail(why, whylen, "out of range");
		v *= 10;
	}
	if (!neg && v == INT64_MIN)
		return fail(why, whylen, "out of range");
	*out = neg ? v : -v;
	if (neg && v == 0)
		*out = 0; /* "-0.00" is zero */
	return 0;
}

size_t baton_money_format(int64_t v, int decimals, char *out, size_t outlen)
{
	char digits[32];
	uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
	int n, intlen;

	if (decimals < 0 || decimals > 6)
		decimals = 0;
	n = snprintf(digits, sizeof(digits), "%0*llu", decimals + 1, (unsigned long long)u);
	intlen = n - decimals;
	if (decimals == 0)
		return (size_t)snprintf(out, outlen, "%s%s", v < 0 ? "-" : "", digits);
	return (size_t)snprintf(out, outlen, "%s%.*s.%s", v < 0 ? "-" : "", intlen, digits,
				digits + intlen);
}

int baton_money_add(int64_t a, int64_t b, int64_t *out)
{
	int64_t r;

	if (__builtin_add_overflow(a, b, &r))
		return -1;
	*out = r;
	return 0;
}

int baton_money_sub(int64_t a, int64_t b, int64_t *out)
{
	int64_t r;

	if (__builtin_sub_overflow(a, b, &r))
		return -1;
	*out = r;
	return 0;
}

int baton_money_mul(int64_t a, int64_t b, int64_t *out)
{
	int64_t r;

	if (__builtin_mul_overflow(a, b, &r))
		return -1;
	*out = r;
	return 0;
}
