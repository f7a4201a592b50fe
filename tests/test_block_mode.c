/* Block mode across processes: one producer, N consumers, every record
 * delivered to every consumer exactly once, in order, byte for byte.
 * usage: test_block_mode CONSUMERS RECORDS RECORD_SIZE SLOTS */
#include "dh_test.h"

static int
consume (const char *name, test_shared *sh, uint64_t records, uint64_t size)
{
  dh_consumer *c = test_consumer (name, false, DH_START_OLDEST);
  test_barrier (sh);
  for (uint64_t want = 1; want <= records; want++) {
    dh_record r;
    CHECK_OK (dh_consumer_next (c, 20000, &r));
    if (r.seq != want || r.lost_before != 0 || r.info.size != size
        || r.info.pts != (int64_t) want || !test_check_pattern (r.data, size, want)) {
      fprintf (stderr, "consumer %d: record %" PRIu64 " bad: seq %" PRIu64
          " lost %" PRIu64 " size %" PRIu64 "\n", (int) getpid (), want, r.seq,
          r.lost_before, r.info.size);
      return 1;
    }
    CHECK_OK (dh_consumer_release (c, &r));
  }
  dh_consumer_stats st;
  dh_consumer_stats_get (c, &st);
  CHECK (st.read == records && st.lost == 0 && st.held == 0);
  dh_consumer_detach (c);
  return 0;
}

int
main (int argc, char **argv)
{
  unsigned consumers = argc > 1 ? (unsigned) atoi (argv[1]) : 4;
  uint64_t records = test_scaled (argc > 2 ? strtoull (argv[2], NULL, 10) : 100000);
  uint64_t size = argc > 3 ? strtoull (argv[3], NULL, 10) : 64;
  uint32_t slots = argc > 4 ? (uint32_t) atoi (argv[4]) : 32;
  const char *name = test_channel ("block");
  test_shared *sh = test_shared_new (consumers + 1);

  /* Fork before creating: children must not inherit the producer's file
   * description (and with it its liveness lock). */
  pid_t pids[DH_MAX_CONSUMERS];
  for (unsigned i = 0; i < consumers; i++)
    if ((pids[i] = fork ()) == 0)
      _exit (consume (name, sh, records, size));

  dh_producer *p = test_producer (name, size, slots, DH_POLICY_RING, DH_ON_FULL_BLOCK);
  test_barrier (sh);
  uint64_t t0 = test_now_ns ();
  for (uint64_t seq = 1; seq <= records; seq++)
    test_write_record (p, size, seq, 20000);
  int failed = 0;
  for (unsigned i = 0; i < consumers; i++)
    failed |= test_wait (pids[i]) != 0;
  double secs = (double) (test_now_ns () - t0) / 1e9;
  dh_metrics m;
  CHECK_OK (dh_producer_metrics (p, &m));
  printf ("%u consumers x %" PRIu64 " records of %" PRIu64 " B in %.2f s "
      "(%.0f records/s per consumer); writer waits %" PRIu64 ", races %" PRIu64 "\n",
      consumers, records, size, secs, (double) records / secs, m.writer_waits,
      m.reader_race_detected);
  CHECK (!failed);
  CHECK (m.slots_written == records);
  if (m.slots_read != records * consumers)
    fprintf (stderr, "slots_read %" PRIu64 " want %" PRIu64 " (consumers live %u)\n", m.slots_read, records * consumers, m.consumers_live);
  CHECK (m.slots_read == records * consumers);
  CHECK (m.records_lost == 0);
  dh_producer_destroy (p);
  return 0;
}
