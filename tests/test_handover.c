/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Handover: a producer moves to a successor block with larger slots; the
 * successor admits the channel's consumers from its first record (and in
 * block mode waits for the ones still draining the old block), consumers
 * read the old block to its end and follow, nothing is lost or replayed;
 * late joiners land in the newest block; commits after the cutover are
 * refused; a forged announcement is not followed. */
#include "test_raw.h"

static void
expect_records (dh_consumer *c, uint64_t from, uint64_t to, uint64_t size)
{
  for (uint64_t seq = from; seq <= to; seq++) {
    dh_record r;
    CHECK_OK (dh_consumer_next (c, 1000, &r));
    CHECK (r.seq == seq && r.info.size == size && test_check_pattern (r.data, size, seq));
    CHECK_OK (dh_consumer_release (c, &r));
  }
}

static dh_producer *
successor (dh_producer *old, uint64_t slot_size)
{
  dh_producer *next;
  CHECK_OK (dh_producer_create_successor (old, slot_size, &next));
  return next;
}

static void
test_chain (void)
{
  const char *channel = test_channel ("handover");
  dh_producer *a = test_producer (channel, 64, 4, DH_POLICY_RING, DH_ON_FULL_BLOCK);
  dh_consumer *c = test_consumer (channel, false, DH_START_OLDEST);
  char none[8];
  CHECK_RC (dh_consumer_successor (c, none, sizeof none), -ENOENT);
  for (uint64_t seq = 1; seq <= 3; seq++)
    test_write_record (a, 64, seq, 0);

  dh_producer *b = successor (a, 4096);
  CHECK (strstr (dh_producer_shm_name (b), ".h1") != NULL);
  CHECK_OK (dh_producer_handover (a, dh_producer_shm_name (b)));
  /* nothing is published in the old block after the cutover */
  dh_slot s;
  CHECK_OK (dh_producer_acquire (a, 0, &s));
  CHECK_RC (dh_producer_commit (a, &s, &(dh_record_info) { .size = 1 }, NULL), DH_EHANDOVER);
  CHECK_OK (dh_producer_abort (a, &s));
  /* the successor counts c from its first record although c still reads
   * the old block: 4 slots, then it waits */
  for (uint64_t seq = 1; seq <= 4; seq++)
    test_write_record (b, 4096, seq, 0);
  CHECK_RC (dh_producer_acquire (b, 0, &s), -EAGAIN);

  expect_records (c, 1, 3, 64); /* the old block is read to its end */
  dh_record r;
  CHECK_RC (dh_consumer_next (c, 0, &r), DH_EHANDOVER); /* once: it followed */
  CHECK (strcmp (dh_consumer_shm_name (c), dh_producer_shm_name (b)) == 0);
  expect_records (c, 1, 4, 4096);

  /* a late joiner on the channel name lands in the newest block at once:
   * never the old block's last record */
  dh_consumer *late = test_consumer (channel, false, DH_START_LATEST);
  CHECK (strcmp (dh_consumer_shm_name (late), dh_producer_shm_name (b)) == 0);
  CHECK_OK (dh_consumer_next (late, 0, &r));
  CHECK (r.seq == 4 && r.info.size == 4096);
  CHECK_OK (dh_consumer_release (late, &r));

  /* second handover: b -> h2.  A block is handed over once: its
   * announcement never changes (a consumer still in it must get to b) */
  dh_producer *p3 = successor (b, 8192);
  CHECK (strstr (dh_producer_shm_name (p3), ".h2") != NULL);
  CHECK_OK (dh_producer_handover (b, dh_producer_shm_name (p3)));
  CHECK_RC (dh_producer_handover (a, dh_producer_shm_name (p3)), -EALREADY);
  /* only a live successor next in the chain can be announced */
  char other_name[128];
  snprintf (other_name, sizeof other_name, "not-a-successor-%d", (int) getpid ());
  dh_producer *other = test_producer (other_name, 64, 2, DH_POLICY_RING, DH_ON_FULL_BLOCK);
  CHECK_RC (dh_producer_handover (p3, dh_producer_shm_name (other)), -EINVAL);
  dh_producer_destroy (other);
  test_write_record (p3, 8192, 1, 0);
  CHECK_RC (dh_consumer_next (c, 1000, &r), DH_EHANDOVER);
  expect_records (c, 1, 1, 8192);
  CHECK_RC (dh_consumer_next (late, 1000, &r), DH_EHANDOVER);
  expect_records (late, 1, 1, 8192);
  dh_consumer *later = test_consumer (channel, false, DH_START_LATEST);
  CHECK (strcmp (dh_consumer_shm_name (later), dh_producer_shm_name (p3)) == 0);
  expect_records (later, 1, 1, 8192);

  dh_consumer_detach (c);
  dh_consumer_detach (late);
  dh_consumer_detach (later);
  dh_producer_destroy (a);
  dh_producer_destroy (b);
  dh_producer_destroy (p3);
}

/* A consumer still in the first block while the producer hands over
 * twice reads every block to its end, in order: A, then h1, then h2 (the
 * announcement of A still names h1). */
static void
test_lagging_consumer_reads_every_block (void)
{
  const char *channel = test_channel ("lag");
  dh_producer *a = test_producer (channel, 64, 4, DH_POLICY_RING, DH_ON_FULL_DROP);
  dh_consumer *c = test_consumer (channel, false, DH_START_OLDEST);
  test_write_record (a, 64, 1, 0);
  test_write_record (a, 64, 2, 0);
  dh_producer *h1 = successor (a, 128);
  CHECK_OK (dh_producer_handover (a, dh_producer_shm_name (h1)));
  test_write_record (h1, 128, 1, 0);
  test_write_record (h1, 128, 2, 0);
  dh_producer *h2 = successor (h1, 256);
  CHECK_OK (dh_producer_handover (h1, dh_producer_shm_name (h2)));
  test_write_record (h2, 256, 1, 0);
  test_write_record (h2, 256, 2, 0);
  dh_record r;
  expect_records (c, 1, 2, 64);
  CHECK_RC (dh_consumer_next (c, 1000, &r), DH_EHANDOVER);
  CHECK (strcmp (dh_consumer_shm_name (c), dh_producer_shm_name (h1)) == 0);
  expect_records (c, 1, 2, 128);
  CHECK_RC (dh_consumer_next (c, 1000, &r), DH_EHANDOVER);
  expect_records (c, 1, 2, 256);
  dh_consumer_stats st;
  dh_consumer_stats_get (c, &st);
  CHECK (st.lost == 0);
  printf ("lagging consumer: read 2 + 2 + 2 records across two handovers, lost %" PRIu64
      "\n", st.lost);
  /* the old blocks forgot it once it moved on */
  dh_metrics m;
  CHECK_OK (dh_producer_metrics (a, &m));
  CHECK (m.consumers_live == 0);
  dh_consumer_detach (c);
  dh_producer_destroy (a);
  dh_producer_destroy (h1);
  dh_producer_destroy (h2);
}

/* The announcement names one block: a block made later under the same
 * name (the successor went away and someone re-created it) is not
 * followed, and neither is one of another user. */
static void
test_replaced_successor_not_followed (void)
{
  const char *channel = test_channel ("replaced");
  dh_producer *a = test_producer (channel, 64, 4, DH_POLICY_RING, DH_ON_FULL_DROP);
  dh_consumer *c = test_consumer (channel, false, DH_START_OLDEST);
  dh_producer *h1 = successor (a, 128);
  char name[DH_NAME_MAX + 1];
  snprintf (name, sizeof name, "%s", dh_producer_shm_name (h1));
  CHECK_OK (dh_producer_handover (a, name));
  dh_producer_destroy (h1);
  /* same name, same user, another block */
  dh_producer_config pc;
  dh_producer_config_init (&pc);
  pc.name = name;
  pc.slot_size = 128;
  pc.slot_count = 4;
  pc.origin = dh_producer_shm_name (a);
  pc.chain_index = 1;
  dh_producer *impostor;
  CHECK_OK (dh_producer_create (&pc, &impostor));
  dh_record r;
  CHECK_RC (dh_consumer_next (c, 1000, &r), DH_ECORRUPT);
  CHECK (strstr (dh_error_detail (), "is not the block") != NULL);
  printf ("replaced successor: %s\n", dh_error_detail ());
  dh_consumer_detach (c);
  dh_producer_destroy (impostor);
  dh_producer_destroy (a);
}

/* An exact copy of the announced successor (session and all), owned by
 * another user, is not followed.  Needs root to give the copy away. */
static void
test_foreign_successor_not_followed (void)
{
  if (geteuid () != 0) {
    puts ("foreign successor: needs root to make another user's block; skipped");
    return;
  }
  const char *channel = test_channel ("foreign");
  dh_producer *a = test_producer (channel, 64, 4, DH_POLICY_RING, DH_ON_FULL_DROP);
  dh_consumer *c = test_consumer (channel, false, DH_START_OLDEST);
  dh_producer *h1 = successor (a, 128);
  char name[DH_NAME_MAX + 1];
  snprintf (name, sizeof name, "%s", dh_producer_shm_name (h1));
  CHECK_OK (dh_producer_handover (a, name));
  test_raw real = test_raw_open (name);
  uint8_t *copy = malloc (real.size);
  CHECK (copy != NULL);
  memcpy (copy, real.base, real.size);
  size_t size = real.size;
  test_raw_close (&real);
  dh_producer_destroy (h1);
  int fd = shm_open (name, O_RDWR | O_CREAT | O_EXCL, 0644);
  CHECK (fd >= 0);
  CHECK (write (fd, copy, size) == (ssize_t) size);
  CHECK (fchown (fd, 65534, 65534) == 0); /* nobody */
  free (copy);
  dh_record r;
  CHECK_RC (dh_consumer_next (c, 1000, &r), DH_ECORRUPT);
  CHECK (strstr (dh_error_detail (), "another user") != NULL);
  printf ("foreign successor: %s\n", dh_error_detail ());
  close (fd);
  shm_unlink (name);
  dh_consumer_detach (c);
  dh_producer_destroy (a);
}

/* Records held in the old block stay valid after the consumer moved on. */
static void
test_holds_survive_the_move (void)
{
  const char *channel = test_channel ("hoh");
  dh_producer *a = test_producer (channel, 64, 4, DH_POLICY_RING, DH_ON_FULL_BLOCK);
  dh_consumer *c = test_consumer (channel, false, DH_START_OLDEST);
  test_write_record (a, 64, 1, 0);
  dh_record old;
  CHECK_OK (dh_consumer_next (c, 0, &old));
  dh_producer *b = successor (a, 128);
  CHECK_OK (dh_producer_handover (a, dh_producer_shm_name (b)));
  test_write_record (b, 128, 1, 0);
  dh_record r;
  CHECK_RC (dh_consumer_next (c, 0, &r), DH_EHANDOVER);
  CHECK_OK (dh_consumer_next (c, 0, &r));
  CHECK (r.seq == 1 && r.info.size == 128);
  CHECK (test_check_pattern (old.data, 64, 1)); /* still mapped, still ours */
  CHECK_OK (dh_consumer_release (c, &old));
  CHECK_OK (dh_consumer_release (c, &r));
  CHECK_RC (dh_consumer_release (c, &old), DH_ESLOT); /* released once only */
  dh_consumer_detach (c);
  dh_producer_destroy (a);
  dh_producer_destroy (b);
}

/* Someone with write access to the block (not a consumer: they map it
 * read-only) announcing a successor of their own is not followed when the
 * block has a secret: the announcement is keyed with it. */
static void
test_forged_announcement (void)
{
  static const uint8_t secret[DH_SECRET_SIZE] = "0123456789abcde";
  const char *channel = test_channel ("forge");
  dh_producer_config pc;
  dh_producer_config_init (&pc);
  pc.name = channel;
  pc.slot_size = 64;
  pc.slot_count = 2;
  pc.secret = secret;
  dh_producer *a;
  CHECK_OK (dh_producer_create (&pc, &a));
  dh_consumer_config cc;
  dh_consumer_config_init (&cc);
  cc.name = channel;
  cc.secret = secret;
  cc.attach_timeout_ms = 1000;
  dh_consumer *c;
  CHECK_OK (dh_consumer_attach (&cc, &c));
  test_raw raw = test_raw_open (dh_producer_shm_name (a));
  dh_shm_header *h = test_raw_header (&raw);
  atomic_store (&h->successor_seq, 2);
  snprintf (h->successor_name, sizeof h->successor_name, "/evil-block");
  atomic_store (&h->cutover_seq, 1);
  dh_record r;
  CHECK_RC (dh_consumer_next (c, 0, &r), DH_ECORRUPT);
  CHECK (strstr (dh_error_detail (), "fails its authentication") != NULL);
  test_raw_close (&raw);
  dh_consumer_detach (c);
  dh_producer_destroy (a);
}

int
main (void)
{
  test_chain ();
  test_lagging_consumer_reads_every_block ();
  test_replaced_successor_not_followed ();
  test_foreign_successor_not_followed ();
  test_holds_survive_the_move ();
  test_forged_announcement ();
  puts ("handover ok");
  return 0;
}
