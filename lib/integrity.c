/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Secret verifier, HMAC key derivation, schema and payload hashes
 * (BLAKE2b through libsodium's crypto_generichash). */
#include <string.h>

#include <sodium.h>

#include "dh_internal.h"

/* Domain-separation strings: the verifier and the HMAC key are different
 * keyed hashes of the same secret, so the stored verifier reveals nothing
 * about the HMAC key. */
static const char verifier_label[] = "datahub secret verifier v1";
static const char hmac_label[] = "datahub hmac key v1";
static const char handover_label[] = "datahub handover v2";

void
dh_secret_verifier (const uint8_t secret[DH_SECRET_SIZE], uint8_t out[DH_HASH_SIZE])
{
  crypto_generichash (out, DH_HASH_SIZE, (const uint8_t *) verifier_label,
      sizeof verifier_label - 1, secret, DH_SECRET_SIZE);
}

void
dh_hmac_key (const uint8_t secret[DH_SECRET_SIZE], uint8_t out[DH_HASH_SIZE])
{
  crypto_generichash (out, DH_HASH_SIZE, (const uint8_t *) hmac_label,
      sizeof hmac_label - 1, secret, DH_SECRET_SIZE);
}

void
dh_schema_hash (const char *schema, uint8_t out[DH_HASH_SIZE])
{
  crypto_generichash (out, DH_HASH_SIZE, (const uint8_t *) schema,
      strlen (schema), NULL, 0);
}

void
dh_payload_hash (const dh_block *b, const void *data, uint64_t size,
    uint8_t out[DH_HASH_SIZE])
{
  bool keyed = b->integrity == DH_INTEGRITY_HMAC;
  crypto_generichash (out, DH_HASH_SIZE, data, size,
      keyed ? b->hmac_key : NULL, keyed ? DH_HASH_SIZE : 0);
}

/* Authenticates a handover announcement (docs/protocol.md §12): keyed
 * with the HMAC key when the block has a secret, so only a holder of the
 * secret can point consumers elsewhere; bound to this block's session and
 * cutover so it cannot be replayed from another block, and to the
 * successor's session so it names one block, not whatever has the name. */
void
dh_successor_mac (const dh_block *b, uint64_t cutover, uint64_t successor_session,
    const char *name, uint8_t out[DH_HASH_SIZE])
{
  crypto_generichash_state st;
  crypto_generichash_init (&st, b->has_secret ? b->hmac_key : NULL,
      b->has_secret ? DH_HASH_SIZE : 0, DH_HASH_SIZE);
  crypto_generichash_update (&st, (const uint8_t *) handover_label,
      sizeof handover_label - 1);
  crypto_generichash_update (&st, (const uint8_t *) &b->session_id, sizeof b->session_id);
  crypto_generichash_update (&st, (const uint8_t *) &cutover, sizeof cutover);
  crypto_generichash_update (&st, (const uint8_t *) &successor_session,
      sizeof successor_session);
  crypto_generichash_update (&st, (const uint8_t *) name, strlen (name));
  crypto_generichash_final (&st, out, DH_HASH_SIZE);
}

/* Constant time: verifiers and MACs must not leak where they differ. */
bool
dh_hash_equal (const uint8_t a[DH_HASH_SIZE], const uint8_t b[DH_HASH_SIZE])
{
  return sodium_memcmp (a, b, DH_HASH_SIZE) == 0;
}

void
dh_hex (const uint8_t *bytes, size_t n, char *out)
{
  sodium_bin2hex (out, 2 * n + 1, bytes, n);
}
