/* Retiring records early (dh_producer_retire, what the elements do for
 * file-descriptor records): never while a consumer holds the record or a
 * waited-for consumer has not read it, not before every live consumer
 * read it unless forced, a leaky consumer that comes later counts it lost,
 * and pinned slots stay. */
#include "dh_test.h"

int
main (void)
{
  const char *name = test_channel ("retire");
  dh_producer *p = test_producer (name, 256, 4, DH_POLICY_RING, DH_ON_FULL_BLOCK);
  dh_consumer *waited = test_consumer (name, false, DH_START_LATEST);
  dh_consumer *leaky = test_consumer (name, true, DH_START_LATEST);

  /* a first record both read: a record skipped later counts as lost */
  dh_record r;
  test_write_record (p, 64, 1, 0);
  for (int k = 0; k < 2; k++) {
    dh_consumer *c = k ? leaky : waited;
    CHECK_OK (dh_consumer_next (c, 0, &r));
    CHECK_OK (dh_consumer_release (c, &r));
  }
  dh_slot s;
  dh_record_info info = { .size = 64 };
  CHECK_OK (dh_producer_acquire (p, 0, &s));
  test_fill_pattern (s.data, 64, 2);
  CHECK_OK (dh_producer_commit (p, &s, &info, NULL));
  /* nobody read it yet: not even a forced retire (the waited-for one) */
  CHECK_RC (dh_producer_retire (p, &s, false), -EBUSY);
  CHECK_RC (dh_producer_retire (p, &s, true), -EBUSY);
  CHECK_OK (dh_consumer_next (waited, 0, &r));
  CHECK (r.seq == 2 && test_check_pattern (r.data, 64, 2));
  /* held */
  CHECK_RC (dh_producer_retire (p, &s, true), -EBUSY);
  CHECK_OK (dh_consumer_release (waited, &r));
  /* the leaky consumer has not read it: only a forced retire */
  CHECK_RC (dh_producer_retire (p, &s, false), -EBUSY);
  CHECK_OK (dh_producer_retire (p, &s, true));
  CHECK_RC (dh_producer_retire (p, &s, true), DH_ESLOT);
  /* the leaky consumer finds it gone: the next record says one was lost */
  test_write_record (p, 64, 3, 0);
  CHECK_OK (dh_consumer_next (leaky, 0, &r));
  CHECK (r.seq == 3 && r.lost_before == 1 && test_check_pattern (r.data, 64, 3));
  CHECK_OK (dh_consumer_release (leaky, &r));
  CHECK_OK (dh_consumer_next (waited, 0, &r));
  CHECK (r.seq == 3);
  CHECK_OK (dh_consumer_release (waited, &r));
  /* read and released by both: retired unforced */
  dh_slot s3;
  CHECK_OK (dh_producer_acquire (p, 0, &s3));
  CHECK_OK (dh_producer_commit (p, &s3, &info, NULL));
  for (int k = 0; k < 2; k++) {
    dh_consumer *c = k ? leaky : waited;
    CHECK_OK (dh_consumer_next (c, 0, &r));
    CHECK (r.seq == 4);
    CHECK_OK (dh_consumer_release (c, &r));
  }
  CHECK_OK (dh_producer_retire (p, &s3, false));
  /* a retired slot is free: four acquires succeed */
  dh_slot all[4];
  for (int i = 0; i < 4; i++)
    CHECK_OK (dh_producer_acquire (p, 0, &all[i]));
  /* pinned (memory still referenced by the producer): kept */
  CHECK_OK (dh_producer_commit_keep (p, &all[0], &info, NULL));
  for (int k = 0; k < 2; k++) {
    dh_consumer *c = k ? leaky : waited;
    CHECK_OK (dh_consumer_next (c, 0, &r));
    CHECK_OK (dh_consumer_release (c, &r));
  }
  CHECK_RC (dh_producer_retire (p, &all[0], true), -EBUSY);
  CHECK_OK (dh_producer_unpin (p, &all[0]));
  CHECK_OK (dh_producer_retire (p, &all[0], false));
  for (int i = 1; i < 4; i++)
    CHECK_OK (dh_producer_abort (p, &all[i]));

  dh_consumer_detach (leaky);
  dh_consumer_detach (waited);
  dh_producer_destroy (p);

  /* latest value: the record stays the latest value unless forced out */
  const char *single = test_channel ("retire-single");
  p = test_producer (single, 256, 1, DH_POLICY_SINGLE, DH_ON_FULL_BLOCK);
  CHECK_OK (dh_producer_acquire (p, 0, &s));
  CHECK_OK (dh_producer_commit (p, &s, &info, NULL));
  CHECK_RC (dh_producer_retire (p, &s, false), -EBUSY);
  CHECK_OK (dh_producer_retire (p, &s, true));
  dh_producer_destroy (p);
  puts ("retire ok");
  return 0;
}
