/* Integrity: known-answer vectors for the hashes (computed by an
 * independent BLAKE2b implementation), enforced checksum and HMAC
 * detection of a damaged payload, and the manual mode. */
#include "test_raw.h"

static const uint8_t secret[DH_SECRET_SIZE] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9,
  10, 11, 12, 13, 14, 15 };

#define KAT_ABC "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319"
#define KAT_VERIFIER "28fe682d95b41b95673f3828db259018f0887681e1ddaf3ddb7593cfaea80f40"
#define KAT_HMAC_ABC "ba34834f4da52a96452c250969094f792c0c25b52fb93cd2862798a1e0bf47fb"
#define KAT_SCHEMA "75f8c51871d57831b33a11a878c8528a2fdd6725bd6d4f448675085f8acf66db"

static dh_producer *
make (const char *name, dh_integrity integrity, dh_check check)
{
  dh_producer_config pc;
  dh_producer_config_init (&pc);
  pc.name = name;
  pc.slot_size = 256;
  pc.slot_count = 4;
  pc.integrity = integrity;
  pc.check = check;
  pc.secret = secret;
  pc.schema = "video/x-raw";
  dh_producer *p;
  CHECK_OK (dh_producer_create (&pc, &p));
  return p;
}

static dh_consumer *
attach (const char *name)
{
  dh_consumer_config cc;
  dh_consumer_config_init (&cc);
  cc.name = name;
  cc.secret = secret;
  dh_consumer *c;
  CHECK_OK (dh_consumer_attach (&cc, &c));
  return c;
}

static dh_slot
write_abc (dh_producer *p)
{
  dh_slot s;
  CHECK_OK (dh_producer_acquire (p, 0, &s));
  memcpy (s.data, "abc", 3);
  return s;
}

static void
test_vectors (void)
{
  uint8_t h[DH_HASH_SIZE];
  dh_schema_hash ("video/x-raw", h);
  CHECK (test_hex_equal (h, KAT_SCHEMA));
}

static void
test_enforced (dh_integrity mode, const char *kat)
{
  const char *name = test_channel (mode == DH_INTEGRITY_HMAC ? "hmac" : "sum");
  dh_producer *p = make (name, mode, DH_CHECK_ENFORCED);
  dh_consumer *c = attach (name);
  test_raw raw = test_raw_open (dh_producer_shm_name (p));
  dh_shm_header *h = test_raw_header (&raw);
  CHECK (test_hex_equal (h->secret_verifier, KAT_VERIFIER));
  CHECK (test_hex_equal (h->schema_hash, KAT_SCHEMA));

  dh_slot s = write_abc (p);
  dh_record_info info = { .size = 3 };
  CHECK_OK (dh_producer_commit (p, &s, &info, NULL));
  dh_shm_slot *slots = (dh_shm_slot *) (void *) (raw.base + h->off_slots);
  CHECK (test_hex_equal (slots[s.index].checksum, kat));
  dh_record r;
  CHECK_OK (dh_consumer_next (c, 0, &r));
  CHECK (memcmp (r.data, "abc", 3) == 0);
  CHECK_OK (dh_consumer_release (c, &r));

  /* Damage record 2 after commit: the consumer drops it and says so, and
   * record 3 arrives with the loss counted. */
  s = write_abc (p);
  CHECK_OK (dh_producer_commit (p, &s, &info, NULL));
  raw.base[h->off_payload + s.index * h->slot_stride + 1] ^= 0x20;
  CHECK_RC (dh_consumer_next (c, 0, &r), DH_ECHECKSUM);
  CHECK (strstr (dh_error_detail (), "record 2") != NULL);
  s = write_abc (p);
  CHECK_OK (dh_producer_commit (p, &s, &info, NULL));
  CHECK_OK (dh_consumer_next (c, 0, &r));
  CHECK (r.seq == 3 && r.lost_before == 1);
  CHECK_OK (dh_consumer_release (c, &r));
  dh_consumer_stats st;
  dh_consumer_stats_get (c, &st);
  CHECK (st.checksum_failures == 1 && st.lost == 1);
  /* the producer sums its consumers' counters into the block */
  dh_metrics m;
  CHECK_OK (dh_producer_metrics (p, &m));
  CHECK (m.checksum_failures == 1);

  test_raw_close (&raw);
  dh_consumer_detach (c);
  dh_producer_destroy (p);
}

/* Latest-value policies verify too: a damaged newest record is dropped
 * with DH_ECHECKSUM, not handed out unverified. */
static void
test_enforced_latest_value (void)
{
  const char *name = test_channel ("latest-sum");
  dh_producer_config pc;
  dh_producer_config_init (&pc);
  pc.name = name;
  pc.slot_size = 64;
  pc.policy = DH_POLICY_DOUBLE;
  pc.integrity = DH_INTEGRITY_HMAC;
  pc.secret = secret;
  dh_producer *p;
  CHECK_OK (dh_producer_create (&pc, &p));
  dh_consumer_config cc;
  dh_consumer_config_init (&cc);
  cc.name = name;
  cc.secret = secret;
  cc.attach_timeout_ms = 1000;
  dh_consumer *c;
  CHECK_OK (dh_consumer_attach (&cc, &c));
  test_raw raw = test_raw_open (dh_producer_shm_name (p));
  dh_shm_header *h = test_raw_header (&raw);
  dh_slot s;
  CHECK_OK (dh_producer_acquire (p, 0, &s));
  memcpy (s.data, "abc", 3);
  CHECK_OK (dh_producer_commit (p, &s, &(dh_record_info) { .size = 3 }, NULL));
  raw.base[h->off_payload + s.index * h->slot_stride + 1] ^= 0x20;
  dh_record r;
  CHECK_RC (dh_consumer_next (c, 0, &r), DH_ECHECKSUM);
  CHECK_OK (dh_producer_acquire (p, 0, &s));
  memcpy (s.data, "xyz", 3);
  CHECK_OK (dh_producer_commit (p, &s, &(dh_record_info) { .size = 3 }, NULL));
  CHECK_OK (dh_consumer_next (c, 1000, &r));
  CHECK (r.seq == 2 && memcmp (r.data, "xyz", 3) == 0);
  CHECK_OK (dh_consumer_release (c, &r));
  test_raw_close (&raw);
  dh_consumer_detach (c);
  dh_producer_destroy (p);
}

static void
test_manual (void)
{
  const char *name = test_channel ("manual");
  dh_producer *p = make (name, DH_INTEGRITY_CHECKSUM, DH_CHECK_MANUAL);
  dh_consumer *c = attach (name);
  dh_slot s = write_abc (p);
  CHECK_OK (dh_producer_update_checksum (p, &s, 3));
  CHECK_RC (dh_producer_update_checksum (p, &s, 300), DH_ETOOBIG);
  dh_record_info info = { .size = 3 };
  CHECK_OK (dh_producer_commit (p, &s, &info, NULL));
  dh_record r;
  CHECK_OK (dh_consumer_next (c, 0, &r)); /* manual: next does not verify */
  CHECK_OK (dh_consumer_verify (c, &r));
  CHECK_OK (dh_consumer_release (c, &r));
  /* a record committed without update_checksum fails manual verification */
  s = write_abc (p);
  memcpy (s.data, "abd", 3);
  CHECK_OK (dh_producer_commit (p, &s, &info, NULL));
  CHECK_OK (dh_consumer_next (c, 0, &r));
  CHECK_RC (dh_consumer_verify (c, &r), DH_ECHECKSUM);
  CHECK_OK (dh_consumer_release (c, &r));
  dh_consumer_detach (c);
  dh_producer_destroy (p);
}

int
main (void)
{
  test_vectors ();
  test_enforced (DH_INTEGRITY_CHECKSUM, KAT_ABC);
  test_enforced (DH_INTEGRITY_HMAC, KAT_HMAC_ABC);
  test_manual ();
  test_enforced_latest_value ();
  puts ("integrity ok");
  return 0;
}
