/* The secret at the broker (docs/broker.md "Secrets"): what a producer
 * registers and what a consumer proves, shared by the client and the
 * broker so both build the same signed messages.
 *
 * From the 128-bit secret and the channel name each party derives the
 * same Ed25519 key pair.  The producer registers the public key and
 * signs its location (shm name, pid, schema hash); a consumer signs a
 * nonce the broker issued for its channel and client id.  The broker
 * stores and checks public keys and signatures only: nothing it sees or
 * stores lets it, or a party impersonating it, prove the secret, and a
 * consumer's proof is good for one channel, one client id and one nonce
 * of one broker run, for DHB_NONCE_VALID_MS. */
#ifndef DHB_PROOF_H
#define DHB_PROOF_H

#include <glib.h>
#include <sodium.h>

#include "datahub/datahub.h"

G_BEGIN_DECLS

#define DHB_PUBLIC_KEY_SIZE crypto_sign_PUBLICKEYBYTES   /* 32 */
#define DHB_SIGNATURE_SIZE crypto_sign_BYTES              /* 64 */
#define DHB_NONCE_SIZE 40          /* expiry (8) + random (16) + MAC (16) */
#define DHB_NONCE_VALID_MS 10000

/* The channel's key pair for @secret (DH_SECRET_SIZE bytes). */
void dhb_proof_keypair (const guint8 *secret, const gchar *channel,
    guint8 pk[DHB_PUBLIC_KEY_SIZE], guint8 sk[crypto_sign_SECRETKEYBYTES]);

/* The message a producer signs: its location on @channel. */
GBytes *dhb_proof_location_message (const gchar *channel, const gchar *shm_name, gint64 pid,
    const gchar *schema_hash_hex);

/* The message a consumer signs: the broker's @nonce for @channel and
 * @client_id ("" without one). */
GBytes *dhb_proof_disc_message (const guint8 nonce[DHB_NONCE_SIZE], const gchar *channel,
    const gchar *client_id);

/* Hex helpers: FALSE unless @hex is exactly 2 * @len hex digits. */
gboolean dhb_hex_decode (const gchar *hex, guint8 *out, gsize len);
void dhb_hex_encode (const guint8 *data, gsize len, gchar *out /* 2 * len + 1 */);

G_END_DECLS

#endif
