/* on-full=drop: the producer never waits; a slow consumer loses records
 * and counts exactly what it lost.  And a leaky consumer in block mode
 * never holds the producer back while a normal one gets everything. */
#include "dh_test.h"

/* Reads until @records was seen or the producer closed; checks bytes and
 * that the counted losses equal the gaps.  Slow: spins @work_ns per record. */
static int
slow_reader (const char *name, test_shared *sh, bool leaky, uint64_t work_ns,
    uint64_t records)
{
  dh_consumer *c = test_consumer (name, leaky, DH_START_OLDEST);
  test_barrier (sh);
  uint64_t prev = 0, gaps = 0, lost = 0, got = 0;
  for (;;) {
    dh_record r;
    int rc = dh_consumer_next (c, 5000, &r);
    if (rc == DH_ECLOSED)
      break;
    CHECK_OK (rc);
    CHECK (r.seq > prev);
    if (prev)
      gaps += r.seq - prev - 1;
    lost += r.lost_before;
    CHECK (test_check_pattern (r.data, r.info.size, r.seq));
    uint64_t until = test_now_ns () + work_ns;
    while (test_now_ns () < until)
      ;
    CHECK (test_check_pattern (r.data, r.info.size, r.seq)); /* still intact */
    CHECK_OK (dh_consumer_release (c, &r));
    prev = r.seq;
    got++;
    if (r.seq == records)
      break;
  }
  dh_consumer_stats st;
  dh_consumer_stats_get (c, &st);
  printf ("%s reader: got %" PRIu64 ", lost %" PRIu64 " (gaps %" PRIu64 ")\n",
      leaky ? "leaky" : "slow", got, st.lost, gaps);
  CHECK (lost == gaps && st.lost == gaps);
  CHECK (work_ns == 0 || gaps > 0); /* the test did make it lag */
  dh_consumer_detach (c);
  return 0;
}

static void
run (dh_on_full on_full, bool leaky, uint64_t records)
{
  const char *name = test_channel (leaky ? "leaky" : "drop");
  test_shared *sh = test_shared_new (on_full == DH_ON_FULL_BLOCK ? 3 : 2);
  pid_t slow = fork ();
  if (slow == 0)
    _exit (slow_reader (name, sh, leaky, 20000, records));
  pid_t fast = -1;
  if (on_full == DH_ON_FULL_BLOCK && (fast = fork ()) == 0)
    _exit (slow_reader (name, sh, false, 0, records));
  dh_producer *p = test_producer (name, 4096, 8, DH_POLICY_RING, on_full);
  test_barrier (sh);
  for (uint64_t seq = 1; seq <= records; seq++)
    /* drop mode: a slot is always available at once (timeout 0) */
    test_write_record (p, 4096, seq, on_full == DH_ON_FULL_DROP ? 0 : 10000);
  dh_metrics m;
  CHECK_OK (dh_producer_metrics (p, &m));
  if (on_full == DH_ON_FULL_DROP)
    CHECK (m.writer_waits == 0 && m.writer_timeout_count == 0);
  dh_producer_destroy (p);
  CHECK (test_wait (slow) == 0);
  if (fast > 0)
    CHECK (test_wait (fast) == 0);
}

int
main (void)
{
  uint64_t records = test_scaled (100000);
  run (DH_ON_FULL_DROP, false, records);
  run (DH_ON_FULL_BLOCK, true, records);
  puts ("drop mode ok");
  return 0;
}
