/* Handover: a producer moves to a block with larger slots; consumers read
 * the old block up to the cutover, learn the successor, and continue there
 * with nothing lost.  A second handover redirects the first block. */
#include "dh_test.h"

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

static dh_consumer *
follow (dh_consumer *c)
{
  char next[DH_NAME_MAX + 1];
  dh_record r;
  CHECK_RC (dh_consumer_next (c, 0, &r), DH_EHANDOVER);
  CHECK_RC (dh_consumer_next (c, 1000, &r), DH_EHANDOVER); /* also when waiting */
  CHECK_OK (dh_consumer_successor (c, next, sizeof next));
  dh_consumer_detach (c);
  return test_consumer (next, false, DH_START_OLDEST);
}

int
main (void)
{
  char first[128], second[160], third[160];
  snprintf (first, sizeof first, "%s", test_channel ("handover"));
  snprintf (second, sizeof second, "/%s.h1", first);
  snprintf (third, sizeof third, "/%s.h2", first);
  dh_producer *a = test_producer (first, 64, 4, DH_POLICY_RING, DH_ON_FULL_BLOCK);
  dh_consumer *c = test_consumer (first, false, DH_START_OLDEST);
  char none[8];
  CHECK_RC (dh_consumer_successor (c, none, sizeof none), -ENOENT);
  for (uint64_t seq = 1; seq <= 3; seq++)
    test_write_record (a, 64, seq, 0);

  dh_producer *b = test_producer (second, 4096, 4, DH_POLICY_RING, DH_ON_FULL_BLOCK);
  CHECK_OK (dh_producer_handover (a, second));
  for (uint64_t seq = 1; seq <= 2; seq++)
    test_write_record (b, 4096, seq, 0);

  expect_records (c, 1, 3, 64); /* the old block is read to its end */
  c = follow (c);
  expect_records (c, 1, 2, 4096);

  /* a late joiner on the channel name is redirected too */
  dh_consumer *late = test_consumer (first, false, DH_START_LATEST);
  dh_record r;
  CHECK_OK (dh_consumer_next (late, 0, &r)); /* the last record of a */
  CHECK (r.seq == 3);
  CHECK_OK (dh_consumer_release (late, &r));
  late = follow (late);
  expect_records (late, 1, 2, 4096);

  /* second handover: b -> c; the first block now points at the newest */
  dh_producer *p3 = test_producer (third, 8192, 2, DH_POLICY_RING, DH_ON_FULL_BLOCK);
  CHECK_OK (dh_producer_handover (b, third));
  CHECK_OK (dh_producer_handover (a, third));
  test_write_record (p3, 8192, 1, 0);
  c = follow (c);
  expect_records (c, 1, 1, 8192);
  dh_consumer *later = test_consumer (first, false, DH_START_LATEST);
  CHECK_OK (dh_consumer_next (later, 0, &r));
  CHECK_OK (dh_consumer_release (later, &r));
  later = follow (later);
  expect_records (later, 1, 1, 8192);

  dh_consumer_detach (c);
  dh_consumer_detach (late);
  dh_consumer_detach (later);
  dh_producer_destroy (a);
  dh_producer_destroy (b);
  dh_producer_destroy (p3);
  puts ("handover ok");
  return 0;
}
