/* baton/money.h — money as integer minor units, and its strict decimal-string form.
 *
 * The contracts carry money as decimal strings in the currency's unit ("19.90"), never as JSON
 * floats; code holds int64 minor units (1990). Parsing is strict: an optional '-', digits
 * without leading zeros ("0" alone is fine), an optional '.' followed by 1..decimals digits; no
 * '+', exponent, blanks or grouping. Every operation checks for int64 overflow. Pure functions. */
#ifndef BATON_MONEY_H
#define BATON_MONEY_H

#include <stddef.h>
#include <stdint.h>

/* Decimals of an ISO 4217 currency code the project knows (EUR 2, JPY 0, KWD 3, ...); -1 for an
 * unknown or malformed code. */
int baton_currency_decimals(const char *code);

/* "19.90" with decimals 2 -> 1990; "19.9" -> 1990; "19" -> 1900. 0, or -1 with a reason in why
 * (e.g. "more than 2 decimals", "not a decimal number") and *out untouched. decimals 0..6. */
int baton_money_parse(const char *s, int decimals, int64_t *out, char *why, size_t whylen);

/* 1990 with decimals 2 -> "19.90"; -5 -> "-0.05"; decimals 0 -> "1990". Like snprintf: returns
 * the length of the whole text. */
size_t baton_money_format(int64_t v, int decimals, char *out, size_t outlen);

/* *out = a + b, a - b, a * b: 0, or -1 on overflow (*out untouched). */
int baton_money_add(int64_t a, int64_t b, int64_t *out);
int baton_money_sub(int64_t a, int64_t b, int64_t *out);
int baton_money_mul(int64_t a, int64_t b, int64_t *out);

#endif
