/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Latest-value policies (single, double): the producer never waits for a
 * reader; readers get the newest record unheld, copy it, and learn at
 * release whether it was rewritten meanwhile (DH_ESTALE).  Late joiners
 * (newest or the oldest record still intact), and seeking. */
#include "dh_test.h"

static void
test_single (void)
{
  const char *name = test_channel ("single");
  dh_producer *p = test_producer (name, 256, 99, DH_POLICY_SINGLE, DH_ON_FULL_BLOCK);
  dh_consumer *c = test_consumer (name, false, DH_START_LATEST);
  for (uint64_t seq = 1; seq <= 10; seq++)
    test_write_record (p, 256, seq, 0); /* never waits */
  dh_record r;
  CHECK_OK (dh_consumer_next (c, 0, &r));
  CHECK (r.seq == 10 && (r.flags & DH_RECORD_UNHELD) && test_check_pattern (r.data, 256, 10));
  CHECK (r.lost_before == 0); /* a fresh consumer has lost nothing yet */
  CHECK_OK (dh_consumer_release (c, &r)); /* intact: the copy is good */
  CHECK_RC (dh_consumer_next (c, 0, &r), -ETIMEDOUT); /* nothing newer */

  /* a reader never holds the producer back: it rewrites the only slot
   * while the reader has the record, and the reader learns so */
  test_write_record (p, 256, 11, 0);
  CHECK_OK (dh_consumer_next (c, 0, &r));
  CHECK (r.seq == 11);
  dh_slot s;
  CHECK_OK (dh_producer_acquire (p, 0, &s));
  CHECK_RC (dh_consumer_release (c, &r), DH_ESTALE);
  /* while the producer writes, there is nothing committed to read */
  CHECK_RC (dh_consumer_next (c, 0, &r), -ETIMEDOUT);
  test_fill_pattern (s.data, 256, 12);
  dh_record_info info = { .size = 256 };
  CHECK_OK (dh_producer_commit (p, &s, &info, NULL));
  for (uint64_t seq = 13; seq <= 15; seq++)
    test_write_record (p, 256, seq, 0);
  CHECK_OK (dh_consumer_next (c, 0, &r));
  CHECK (r.seq == 15 && r.lost_before == 3 && test_check_pattern (r.data, 256, 15));
  CHECK_OK (dh_consumer_release (c, &r));
  dh_consumer_detach (c);
  dh_producer_destroy (p);
}

static void
test_double (void)
{
  const char *name = test_channel ("double");
  dh_producer *p = test_producer (name, 256, 99, DH_POLICY_DOUBLE, DH_ON_FULL_BLOCK);
  dh_consumer *c = test_consumer (name, false, DH_START_LATEST);
  test_write_record (p, 256, 1, 0);
  dh_record first;
  CHECK_OK (dh_consumer_next (c, 0, &first));
  CHECK (first.seq == 1 && (first.flags & DH_RECORD_UNHELD));
  /* the producer writes the next frame into the other slot: the frame
   * being read stays stable */
  test_write_record (p, 256, 2, 0);
  CHECK (test_check_pattern (first.data, 256, 1));
  CHECK_OK (dh_consumer_release (c, &first));
  dh_record r;
  CHECK_OK (dh_consumer_next (c, 0, &r));
  CHECK (r.seq == 2 && r.slot != first.slot && test_check_pattern (r.data, 256, 2));
  /* and the one after that rewrites the first slot, never waiting */
  for (uint64_t seq = 3; seq <= 20; seq++)
    test_write_record (p, 256, seq, 0);
  CHECK_RC (dh_consumer_release (c, &r), DH_ESTALE);
  CHECK_OK (dh_consumer_next (c, 0, &r));
  CHECK (r.seq == 20 && r.lost_before == 17 && test_check_pattern (r.data, 256, 20));
  CHECK_OK (dh_consumer_release (c, &r));
  dh_consumer_detach (c);
  dh_producer_destroy (p);
}

static void
test_late_joiners (void)
{
  const char *name = test_channel ("late");
  /* 8 slots, ring of 32 descriptors; nobody reads, so old slots are reused */
  dh_producer *p = test_producer (name, 64, 8, DH_POLICY_RING, DH_ON_FULL_BLOCK);
  for (uint64_t seq = 1; seq <= 20; seq++)
    test_write_record (p, 64, seq, 0);
  dh_consumer *newest = test_consumer (name, false, DH_START_LATEST);
  dh_consumer *oldest = test_consumer (name, false, DH_START_OLDEST);
  dh_record r;
  CHECK_OK (dh_consumer_next (newest, 0, &r));
  CHECK (r.seq == 20);
  CHECK_OK (dh_consumer_release (newest, &r));
  for (uint64_t want = 13; want <= 20; want++) { /* slots hold 13..20 */
    CHECK_OK (dh_consumer_next (oldest, 0, &r));
    CHECK (r.seq == want && r.lost_before == 0 && test_check_pattern (r.data, 64, want));
    CHECK_OK (dh_consumer_release (oldest, &r));
  }
  CHECK_RC (dh_consumer_next (oldest, 0, &r), -ETIMEDOUT);
  /* seek back to the oldest: 13 again */
  CHECK_OK (dh_consumer_seek (oldest, DH_START_OLDEST));
  CHECK_OK (dh_consumer_next (oldest, 0, &r));
  CHECK (r.seq == 13);
  CHECK_OK (dh_consumer_release (oldest, &r));
  /* now both consumers pace the producer (block mode) */
  CHECK_OK (dh_consumer_seek (oldest, DH_START_LATEST));
  CHECK_OK (dh_consumer_next (oldest, 0, &r));
  CHECK_OK (dh_consumer_release (oldest, &r));
  for (uint64_t seq = 21; seq <= 28; seq++)
    test_write_record (p, 64, seq, 0);
  dh_slot s;
  CHECK_RC (dh_producer_acquire (p, 0, &s), -EAGAIN); /* 8 unread records */
  dh_consumer_detach (newest);
  dh_consumer_detach (oldest);
  CHECK_OK (dh_producer_acquire (p, 0, &s)); /* nobody left to wait for */
  CHECK_OK (dh_producer_abort (p, &s));
  dh_producer_destroy (p);
}

int
main (void)
{
  test_single ();
  test_double ();
  test_late_joiners ();
  puts ("policies ok");
  return 0;
}
