/* Key derivation and the signed messages of the secret protocol
 * (proof.h). */
#include "proof.h"

#include <string.h>

void
dhb_proof_keypair (const guint8 *secret, const gchar *channel,
    guint8 pk[DHB_PUBLIC_KEY_SIZE], guint8 sk[crypto_sign_SECRETKEYBYTES])
{
  /* the seed is keyed by the secret and bound to the channel: the public
   * key of one channel says nothing about another channel's, and the
   * label keeps it apart from the block header's verifier */
  static const char label[] = "datahub broker key v2";
  guint8 seed[crypto_sign_SEEDBYTES];
  crypto_generichash_state st;
  crypto_generichash_init (&st, secret, DH_SECRET_SIZE, sizeof seed);
  crypto_generichash_update (&st, (const guint8 *) label, sizeof label);
  crypto_generichash_update (&st, (const guint8 *) channel, strlen (channel));
  crypto_generichash_final (&st, seed, sizeof seed);
  crypto_sign_seed_keypair (pk, sk, seed);
  sodium_memzero (seed, sizeof seed);
  sodium_memzero (&st, sizeof st);
}

/* label NUL field NUL field ...: names never contain NUL (the broker
 * refuses them), so the fields cannot be shifted into one another. */
static void
append_field (GByteArray *m, const gchar *field)
{
  g_byte_array_append (m, (const guint8 *) field, (guint) strlen (field) + 1);
}

GBytes *
dhb_proof_location_message (const gchar *channel, const gchar *shm_name, gint64 pid,
    const gchar *schema_hash_hex)
{
  GByteArray *m = g_byte_array_new ();
  gchar pid_text[24];
  g_snprintf (pid_text, sizeof pid_text, "%" G_GINT64_FORMAT, pid);
  append_field (m, "datahub location v2");
  append_field (m, channel);
  append_field (m, shm_name);
  append_field (m, pid_text);
  append_field (m, schema_hash_hex);
  return g_byte_array_free_to_bytes (m);
}

GBytes *
dhb_proof_disc_message (const guint8 nonce[DHB_NONCE_SIZE], const gchar *channel,
    const gchar *client_id)
{
  GByteArray *m = g_byte_array_new ();
  append_field (m, "datahub discovery v2");
  g_byte_array_append (m, nonce, DHB_NONCE_SIZE);
  append_field (m, channel);
  append_field (m, client_id);
  return g_byte_array_free_to_bytes (m);
}

gboolean
dhb_hex_decode (const gchar *hex, guint8 *out, gsize len)
{
  size_t got = 0;
  return strlen (hex) == 2 * len
      && sodium_hex2bin (out, len, hex, 2 * len, NULL, &got, NULL) == 0 && got == len;
}

void
dhb_hex_encode (const guint8 *data, gsize len, gchar *out)
{
  sodium_bin2hex (out, 2 * len + 1, data, len);
}
