/* Bad blocks and wrong credentials: corrupt, truncated or foreign objects,
 * wrong layout version, secret and schema each give their own error with
 * the values involved, never a crash; a corrupt descriptor is skipped; a
 * producer never replaces an object that is not a datahub block. */
#include "dh_consumer_layout.h"
#include "test_raw.h"

static const uint8_t secret[DH_SECRET_SIZE] = "0123456789abcde";

static int
try_attach (const char *name, const uint8_t *sec, const char *schema)
{
  dh_consumer_config cc;
  dh_consumer_config_init (&cc);
  cc.name = name;
  cc.secret = sec;
  cc.expected_schema = schema;
  cc.attach_timeout_ms = 200;
  dh_consumer *c = NULL;
  int rc = dh_consumer_attach (&cc, &c);
  if (rc == 0)
    dh_consumer_detach (c);
  return rc;
}

/* Saves the header, lets @mutate damage it, checks the attach error, and
 * restores it. */
#define WITH_DAMAGE(raw, stmt, want, needle) \
  do { \
    dh_shm_header *h_ = test_raw_header (&(raw)); \
    dh_shm_header saved_; \
    memcpy (&saved_, h_, sizeof saved_); \
    stmt; \
    CHECK_RC (try_attach (name, secret, NULL), want); \
    CHECK (strstr (dh_error_detail (), needle) != NULL); \
    memcpy (h_, &saved_, sizeof saved_); \
  } while (0)

static void
test_header_damage (void)
{
  const char *name = test_channel ("corrupt");
  dh_producer_config pc;
  dh_producer_config_init (&pc);
  pc.name = name;
  pc.slot_size = 1000;
  pc.slot_count = 4;
  pc.secret = secret;
  pc.schema = "audio/x-raw";
  dh_producer *p;
  CHECK_OK (dh_producer_create (&pc, &p));
  test_raw raw = test_raw_open (dh_producer_shm_name (p));
  dh_shm_header *h = test_raw_header (&raw);

  CHECK_OK (try_attach (name, secret, "audio/x-raw"));
  WITH_DAMAGE (raw, h->layout_major = 3, DH_EVERSION, "layout version 3.0; this library reads 2.x");
  WITH_DAMAGE (raw, h->magic = 0x1234, DH_ENOTDATAHUB, "magic");
  WITH_DAMAGE (raw, h->header_size = 100, DH_ECORRUPT, "header size 100");
  WITH_DAMAGE (raw, h->slot_count = 1u << 30, DH_ECORRUPT, "slot count");
  WITH_DAMAGE (raw, h->ring_length = 3, DH_ECORRUPT, "ring length 3");
  WITH_DAMAGE (raw, h->off_payload += 64, DH_ECORRUPT, "payload offset");
  WITH_DAMAGE (raw, h->total_size *= 2, DH_ECORRUPT, "total size");
  WITH_DAMAGE (raw, h->slot_size = 100000, DH_ECORRUPT, "total size");
  WITH_DAMAGE (raw, h->policy = 9, DH_ECORRUPT, "policy 9");
  WITH_DAMAGE (raw, h->zone_count = 3, DH_ECORRUPT, "zone 0 size 0");
  WITH_DAMAGE (raw, h->max_holds = 65, DH_ECORRUPT, "max holds 65");
  WITH_DAMAGE (raw, h->origin_name[0] = 'x', DH_ECORRUPT, "origin name");
  WITH_DAMAGE (raw, h->magic = 0, DH_ENOTREADY, "still being created");

  /* credentials */
  CHECK_RC (try_attach (name, NULL, NULL), DH_ESECRET);
  CHECK (strstr (dh_error_detail (), "requires a secret") != NULL);
  CHECK_RC (try_attach (name, (const uint8_t *) "wrong-secret-16b", NULL), DH_ESECRET);
  CHECK (strstr (dh_error_detail (), "wrong secret") != NULL);
  CHECK_RC (try_attach (name, secret, "video/x-raw"), DH_ESCHEMA);
  /* the detail names both hashes: seen (audio) and expected (video) */
  CHECK (strstr (dh_error_detail (), "75f8c51871d57831") != NULL);

  /* Random garbage over the header with the magic intact never crashes
   * an attacher (ASan watches the out-of-bounds side). */
  dh_shm_header saved;
  memcpy (&saved, h, sizeof saved);
  srand (42);
  int accepted = 0;
  for (int iter = 0; iter < 1000; iter++) {
    memcpy (h, &saved, sizeof saved);
    uint8_t *bytes = (uint8_t *) h;
    for (int k = 0; k < 1 + iter % 8; k++) {
      size_t off = 8 + (size_t) rand () % (sizeof saved - 8);
      bytes[off] = (uint8_t) rand ();
    }
    accepted += try_attach (name, secret, NULL) == 0;
  }
  memcpy (h, &saved, sizeof saved);
  CHECK_OK (try_attach (name, secret, NULL));
  printf ("header fuzz: %d of 1000 damaged headers still attachable "
      "(damage in unused or unchecked-but-harmless bytes)\n", accepted);

  /* truncation behind the producer's back */
  CHECK (ftruncate (raw.fd, (off_t) h->off_payload) == 0);
  CHECK_RC (try_attach (name, secret, NULL), DH_ETRUNCATED);
  CHECK (strstr (dh_error_detail (), "its header says") != NULL);

  test_raw_close (&raw);
  dh_producer_destroy (p);
}

/* A consumer registered before the producer reads from the object at
 * @shm (left by a creator that did not finish): it waits, the next
 * producer replaces the object, and its first record arrives. */
static void
reader_waits_for_replacement (const char *shm, int fd, const dh_producer_config *pc)
{
  dh_consumer *c = test_registered_consumer (shm);
  dh_record r;
  CHECK_RC (dh_consumer_next (c, 30, &r), -ETIMEDOUT);
  dh_producer *p;
  CHECK_OK (dh_producer_create (pc, &p));
  close (fd);
  test_write_record (p, 64, 1, 0);
  test_read_record (c, 64, 1);
  dh_consumer_detach (c);
  dh_producer_destroy (p);
}

static void
test_foreign_objects (void)
{
  char shm[128];
  snprintf (shm, sizeof shm, "/dh-foreign-%d", (int) getpid ());
  int fd = shm_open (shm, O_RDWR | O_CREAT | O_EXCL, 0600);
  CHECK (fd >= 0);
  CHECK (ftruncate (fd, 100) == 0);
  CHECK_RC (try_attach (shm, NULL, NULL), DH_ETRUNCATED);
  CHECK (ftruncate (fd, 8192) == 0);
  CHECK (pwrite (fd, "GARBAGE!", 8, 0) == 8);
  CHECK_RC (try_attach (shm, NULL, NULL), DH_ENOTDATAHUB);
  /* a producer refuses to replace what is not a datahub block, and
   * leaves it as it was */
  dh_producer_config pc;
  dh_producer_config_init (&pc);
  pc.name = shm;
  pc.slot_size = 64;
  dh_producer *p = NULL;
  CHECK_RC (dh_producer_create (&pc, &p), DH_ENOTDATAHUB);
  CHECK (strstr (dh_error_detail (), "is not a datahub block") != NULL);
  char back[8];
  CHECK (pread (fd, back, 8, 0) == 8 && memcmp (back, "GARBAGE!", 8) == 0);
  CHECK (pwrite (fd, "\0\0\0\0\0\0\0\0", 8, 0) == 8);
  /* no magic and nobody holds the producer lock: not ours either */
  CHECK_RC (try_attach (shm, NULL, NULL), DH_ECORRUPT);
  CHECK (strstr (dh_error_detail (), "no live producer") != NULL);
  CHECK_RC (dh_producer_create (&pc, &p), DH_ENOTDATAHUB);
  /* a creator that died after marking the object (DH_MAGIC_CREATING) left
   * one of ours: a new producer replaces it */
  uint64_t creating = DH_MAGIC_CREATING;
  CHECK (pwrite (fd, &creating, 8, 0) == 8);
  /* an attach that outlasts it says so; a reader started first waits
   * through it and gets the replacement's first record */
  CHECK_RC (try_attach (shm, NULL, NULL), DH_ECORRUPT);
  CHECK (strstr (dh_error_detail (), "never finished") != NULL);
  reader_waits_for_replacement (shm, fd, &pc);
  /* an empty object (a creator between creating and locking it, or one
   * that died there) is a producer on its way; it is replaced too */
  fd = shm_open (shm, O_RDWR | O_CREAT | O_EXCL, 0600);
  CHECK (fd >= 0);
  CHECK_RC (try_attach (shm, NULL, NULL), DH_ENOTREADY);
  CHECK (strstr (dh_error_detail (), "is empty") != NULL);
  reader_waits_for_replacement (shm, fd, &pc);
}

static void
test_corrupt_descriptor (void)
{
  const char *name = test_channel ("desc");
  dh_producer *p = test_producer (name, 64, 4, DH_POLICY_RING, DH_ON_FULL_BLOCK);
  dh_consumer *c = test_consumer (name, false, DH_START_OLDEST);
  test_raw raw = test_raw_open (dh_producer_shm_name (p));
  dh_shm_header *h = test_raw_header (&raw);
  dh_shm_desc *ring = (dh_shm_desc *) (void *) (raw.base + h->off_ring);
  for (uint64_t seq = 1; seq <= 3; seq++)
    test_write_record (p, 64, seq, 0);
  ring[1].slot = 9999;                 /* record 1: impossible slot */
  ring[2].size = UINT64_MAX;           /* record 2: impossible size */
  dh_record r;
  CHECK_OK (dh_consumer_next (c, 0, &r));
  CHECK (r.seq == 3 && test_check_pattern (r.data, 64, 3));
  CHECK_OK (dh_consumer_release (c, &r));
  dh_consumer_stats st;
  dh_consumer_stats_get (c, &st);
  CHECK (st.races == 2 && st.lost == 0); /* skipped before its first record */
  test_raw_close (&raw);
  dh_consumer_detach (c);
  dh_producer_destroy (p);
}

/* A corrupter with write access to the block cannot redirect zone reads
 * or writes through the header (geometry comes from the configuration
 * checked at attach), and a lying length is refused. */
static void
test_zone_table_damage (void)
{
  dh_producer_config pc;
  dh_producer_config_init (&pc);
  pc.name = test_channel ("zonetable");
  pc.slot_size = 64;
  pc.slot_count = 2;
  pc.zone_count = 1;
  pc.zone_sizes[0] = 32;
  dh_producer *p;
  CHECK_OK (dh_producer_create (&pc, &p));
  dh_consumer *c = test_consumer (pc.name, false, DH_START_LATEST);
  test_raw raw = test_raw_open (dh_producer_shm_name (p));
  dh_shm_header *h = test_raw_header (&raw);
  h->zone_size[0] = 1u << 30;
  CHECK_RC (dh_producer_zone_write (p, 0, "x", 100), DH_ETOOBIG);
  CHECK_OK (dh_producer_zone_write (p, 0, "still here", 11));
  char buf[64];
  size_t len;
  CHECK_OK (dh_consumer_zone_read (c, 0, buf, sizeof buf, &len, NULL));
  CHECK (len == 11 && strcmp (buf, "still here") == 0);
  h->zones[0].length = 1u << 20; /* a lying length is refused, not followed */
  CHECK_RC (dh_consumer_zone_read (c, 0, buf, sizeof buf, &len, NULL), DH_ECORRUPT);
  test_raw_close (&raw);
  dh_consumer_detach (c);
  dh_producer_destroy (p);
}

/* A consumer whose own object stops making sense (here: its index field
 * rewritten) is evicted: the producer ignores it from then on and counts
 * it, and its next read says so at once — also while data is ready, so it
 * never reads unprotected records. */
static void
test_garbage_consumer_evicted (void)
{
  const char *name = test_channel ("evict");
  dh_producer *p = test_producer (name, 64, 4, DH_POLICY_RING, DH_ON_FULL_DROP);
  dh_consumer *c = test_consumer (name, false, DH_START_OLDEST);
  test_write_record (p, 64, 1, 0);
  dh_record r;
  CHECK_OK (dh_consumer_next (c, 0, &r));
  CHECK_OK (dh_consumer_release (c, &r));
  char obj[300];
  snprintf (obj, sizeof obj, "/datahub.%s@c0", name);
  test_raw raw = test_raw_open (obj);
  dh_shm_consumer *o = (dh_shm_consumer *) (void *) raw.base;
  o->index = 7; /* nonsense for object @c0 */
  dh_producer_poll (p);
  dh_metrics m;
  CHECK_OK (dh_producer_metrics (p, &m));
  CHECK (m.consumers_evicted == 1 && m.consumers_live == 0);
  for (uint64_t seq = 2; seq <= 5; seq++)
    test_write_record (p, 64, seq, 0); /* data ready for it */
  CHECK_RC (dh_consumer_next (c, 0, &r), DH_EEVICTED);
  printf ("garbage consumer: %s\n", dh_error_detail ());
  CHECK_RC (dh_consumer_next (c, 0, &r), DH_EEVICTED); /* and stays so */
  o->index = 0;
  test_raw_close (&raw);
  dh_consumer_detach (c);
  dh_producer_destroy (p);
}

/* A head that announces records nobody can read (damage, or someone with
 * write access): next ends with an error instead of spinning for ever. */
static void
test_impossible_head (void)
{
  const char *name = test_channel ("head");
  dh_producer *p = test_producer (name, 64, 2, DH_POLICY_DOUBLE, DH_ON_FULL_DROP);
  dh_consumer *c = test_consumer (name, false, DH_START_LATEST);
  test_write_record (p, 64, 1, 0);
  test_raw raw = test_raw_open (dh_producer_shm_name (p));
  dh_shm_header *h = test_raw_header (&raw);
  atomic_store (&h->head, UINT64_MAX);
  dh_record r;
  uint64_t t0 = test_now_ns ();
  int rc = dh_consumer_next (c, -1, &r); /* no deadline to save it */
  printf ("impossible head: %s after %.1f ms\n", dh_strerror (rc),
      (double) (test_now_ns () - t0) / 1e6);
  CHECK_RC (rc, DH_ECORRUPT);
  atomic_store (&h->head, 1);
  test_raw_close (&raw);
  dh_consumer_detach (c);
  dh_producer_destroy (p);
}

int
main (void)
{
  test_header_damage ();
  test_zone_table_damage ();
  test_foreign_objects ();
  test_corrupt_descriptor ();
  test_garbage_consumer_evicted ();
  test_impossible_head ();
  puts ("corrupt ok");
  return 0;
}
