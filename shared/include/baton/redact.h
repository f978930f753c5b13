/* baton/redact.h — personal data and secrets out of what baton stores for the record (audit).
 *
 * Pure function, no I/O. Rules (key matching is ASCII case-insensitive):
 *   - secrets: a member whose key contains password, secret, token, authorization, api_key,
 *     apikey or api-key becomes "[secret]" (checked first, at any depth);
 *   - personal data: a member whose key is one of email, phone, name, first_name, last_name,
 *     line1, line2, address1, address2, street, postal_code, zip, tax_id, iban, card, ip,
 *     birth_date (and the spelled-out email_address, phone_number, card_number, ip_address,
 *     date_of_birth) becomes "[redacted]", whatever its type (null stays null);
 *   - containers: under a member whose key is customer, shipping_address, billing_address or
 *     address, every string at any depth becomes "[redacted]", except the values of members
 *     named "country"; numbers, booleans and null are kept (ids, flags).
 * Beyond 128 levels of nesting a value is replaced by "[redacted]" whole (fail closed). */
#ifndef BATON_REDACT_H
#define BATON_REDACT_H

#include <jansson.h>

#define BATON_REDACTED "[redacted]"
#define BATON_SECRET "[secret]"

/* Deep copy of in with the rules above applied; in is not modified. NULL for NULL input or out
 * of memory. */
json_t *baton_redact(const json_t *in);

#endif
