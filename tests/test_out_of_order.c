/* The slot pool: commits in another order than acquisition, aborts,
 * batches, and that the consumer sees commit order with the right bytes. */
#include "dh_test.h"

int
main (void)
{
  const char *name = test_channel ("ooo");
  /* the consumer may hold all four slots at once (batches below) */
  dh_producer *p = test_producer_holds (name, 512, 4, DH_POLICY_RING, DH_ON_FULL_BLOCK, 4);
  dh_consumer *c = test_consumer (name, false, DH_START_LATEST);

  /* acquire A B C D; the pool is now empty */
  dh_slot s[4], extra;
  for (int i = 0; i < 4; i++)
    CHECK_OK (dh_producer_acquire (p, 0, &s[i]));
  CHECK_RC (dh_producer_acquire (p, 0, &extra), -EAGAIN);
  /* abort B: it is free again and is the one handed out next */
  CHECK_OK (dh_producer_abort (p, &s[1]));
  CHECK_OK (dh_producer_acquire (p, 0, &extra));
  CHECK (extra.index == s[1].index && extra.generation == s[1].generation + 1);
  s[1] = extra;
  /* commit D, A, C, B: sequence numbers follow commit order */
  int order[4] = { 3, 0, 2, 1 };
  for (int k = 0; k < 4; k++) {
    uint64_t seq;
    test_fill_pattern (s[order[k]].data, 512, (uint64_t) k + 1);
    dh_record_info info = { .size = 512, .user = { (uint64_t) order[k], 0 } };
    CHECK_OK (dh_producer_commit (p, &s[order[k]], &info, &seq));
    CHECK (seq == (uint64_t) k + 1);
  }
  for (int k = 0; k < 4; k++) {
    dh_record r;
    CHECK_OK (dh_consumer_next (c, 0, &r));
    CHECK (r.seq == (uint64_t) k + 1 && r.slot == s[order[k]].index);
    CHECK (r.info.user[0] == (uint64_t) order[k]);
    CHECK (test_check_pattern (r.data, 512, r.seq));
    CHECK_OK (dh_consumer_release (c, &r));
  }

  /* batches: acquire up to 8 (gets 4), commit them at once, read at once */
  dh_slot b[8];
  int n = dh_producer_acquire_batch (p, b, 8, 0);
  CHECK (n == 4);
  dh_record_info infos[4];
  for (int i = 0; i < n; i++) {
    test_fill_pattern (b[i].data, 100, 5 + (uint64_t) i);
    infos[i] = (dh_record_info) { .size = 100 };
  }
  uint64_t first;
  CHECK_OK (dh_producer_commit_batch (p, b, infos, (unsigned) n, &first));
  CHECK (first == 5);
  dh_record recs[8];
  /* holds granted are at most slots - 1: 3 of the 4 records at once */
  int got = dh_consumer_next_batch (c, recs, 8, 0);
  CHECK (got == 3);
  for (int i = 0; i < got; i++) {
    CHECK (recs[i].seq == 5 + (uint64_t) i);
    CHECK (test_check_pattern (recs[i].data, 100, recs[i].seq));
  }
  /* held records block reuse in block mode until released */
  CHECK_RC (dh_producer_acquire (p, 0, &extra), -EAGAIN);
  for (int i = 0; i < got; i++)
    CHECK_OK (dh_consumer_release (c, &recs[i]));
  CHECK_OK (dh_consumer_next (c, 0, &recs[0]));
  CHECK (recs[0].seq == 8 && test_check_pattern (recs[0].data, 100, 8));
  CHECK_OK (dh_consumer_release (c, &recs[0]));
  CHECK_OK (dh_producer_acquire (p, 0, &extra));
  CHECK_OK (dh_producer_abort (p, &extra));

  dh_metrics m;
  CHECK_OK (dh_producer_metrics (p, &m));
  CHECK (m.slots_written == 8 && m.slots_read == 8 && m.commits_aborted == 2);
  dh_consumer_detach (c);
  dh_producer_destroy (p);
  puts ("out of order ok");
  return 0;
}
