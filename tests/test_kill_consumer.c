/* SIGKILL of a consumer holding slots: the blocked producer is released
 * once liveness detection notices (OFD lock gone), the dead consumer's
 * holds and cursor are dropped, and the block is healthy afterwards. */
#include "dh_test.h"

#define SLOTS 4

static int
hold_and_hang (const char *name, test_shared *sh)
{
  dh_consumer *c = test_consumer (name, false, DH_START_OLDEST);
  test_barrier (sh);
  dh_record r[2];
  CHECK_OK (dh_consumer_next (c, 5000, &r[0]));
  CHECK_OK (dh_consumer_next (c, 5000, &r[1]));
  sh->values[0] = 1; /* holding two slots, never releasing */
  for (;;)
    pause ();
}

int
main (void)
{
  const char *name = test_channel ("killc");
  test_shared *sh = test_shared_new (2);
  pid_t child = fork ();
  if (child == 0)
    _exit (hold_and_hang (name, sh));
  dh_producer *p = test_producer (name, 1024, SLOTS, DH_POLICY_RING, DH_ON_FULL_BLOCK);
  test_barrier (sh);
  uint64_t seq = 1;
  for (; seq <= SLOTS; seq++)
    test_write_record (p, 1024, seq, 1000);
  while (!sh->values[0])
    test_sleep_ms (1);
  /* full: the consumer read 2 of 4 and holds both */
  dh_slot s;
  CHECK_RC (dh_producer_acquire (p, 50, &s), -ETIMEDOUT);
  CHECK (dh_producer_consumer_count (p) == 1);

  kill (child, SIGKILL);
  uint64_t t0 = test_now_ns ();
  /* the producer blocks in acquire until the reaper (every 10 ms while
   * blocked) finds the dead consumer */
  CHECK_OK (dh_producer_acquire (p, 5000, &s));
  double ms = (double) (test_now_ns () - t0) / 1e6;
  CHECK_OK (dh_producer_abort (p, &s));
  CHECK (test_wait (child) == 128 + SIGKILL);
  printf ("producer unblocked %.1f ms after SIGKILL of the consumer\n", ms);
  CHECK (ms < 2000); /* generous bound; the figure is printed above */

  dh_metrics m;
  CHECK_OK (dh_producer_metrics (p, &m));
  CHECK (m.consumers_reaped == 1 && m.consumers_live == 0);
  CHECK (m.slots_read == 2); /* the dead consumer's counters were kept */
  /* every slot is usable again: no hold survived */
  dh_slot all[SLOTS];
  CHECK (dh_producer_acquire_batch (p, all, SLOTS, 0) == SLOTS);
  for (int i = 0; i < SLOTS; i++)
    CHECK_OK (dh_producer_abort (p, &all[i]));
  /* and a new consumer takes the freed entry and reads */
  dh_consumer *c = test_consumer (name, false, DH_START_LATEST);
  test_write_record (p, 1024, seq, 1000);
  dh_record r;
  CHECK_OK (dh_consumer_next (c, 1000, &r));
  CHECK (r.seq == seq && test_check_pattern (r.data, 1024, seq));
  CHECK_OK (dh_consumer_release (c, &r));
  dh_consumer_detach (c);
  dh_producer_destroy (p);
  puts ("kill consumer ok");
  return 0;
}
