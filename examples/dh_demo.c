/* datahub-demo: the library's main job in two processes.
 *
 *   datahub-demo produce CHANNEL SECONDS   # writes 64 KiB records
 *   datahub-demo consume CHANNEL           # reads, verifies, reports
 *
 * The producer runs flat out for the first half, then paced at 1 kHz (so
 * the consumer's latency figures mean "wake-up latency", not queueing).
 * The consumer prints one line a second and a summary when the producer
 * closes the block. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "datahub/datahub.h"

#define RECORD (64 * 1024)

static uint64_t
now_ns (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

static int
fail (const char *what, int rc)
{
  fprintf (stderr, "datahub-demo: %s: %s (%s)\n", what, dh_strerror (rc),
      dh_error_detail ());
  return 1;
}

static int
produce (const char *channel, double seconds)
{
  dh_producer_config pc;
  dh_producer_config_init (&pc);
  pc.name = channel;
  pc.slot_size = RECORD;
  pc.slot_count = 16;
  dh_producer *p;
  int rc = dh_producer_create (&pc, &p);
  if (rc)
    return fail ("create", rc);
  printf ("producer: %s ready; waiting for a consumer\n", dh_producer_shm_name (p));
  fflush (stdout);
  while (dh_producer_consumer_count (p) == 0) {
    struct timespec ts = { 0, 10000000 };
    nanosleep (&ts, NULL);
  }
  uint64_t start = now_ns (), end = start + (uint64_t) (seconds * 1e9);
  uint64_t paced_from = start + (end - start) / 2, next = 0, n = 0;
  while (now_ns () < end) {
    if (now_ns () >= paced_from) {
      if (!next)
        next = now_ns ();
      next += 1000000; /* 1 kHz */
      struct timespec ts = { (time_t) (next / 1000000000u), (long) (next % 1000000000u) };
      clock_nanosleep (CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
    }
    dh_slot s;
    if ((rc = dh_producer_acquire (p, 10000, &s)) != 0)
      return fail ("acquire", rc);
    uint64_t *w = s.data;
    for (size_t i = 0; i < RECORD / 8; i += 8) /* one word per cache line */
      w[i] = n ^ i;
    dh_record_info info = { .size = RECORD, .user = { now_ns (), n } };
    if ((rc = dh_producer_commit (p, &s, &info, NULL)) != 0)
      return fail ("commit", rc);
    n++;
  }
  printf ("producer: wrote %" PRIu64 " records of %d bytes\n", n, RECORD);
  dh_producer_destroy (p);
  return 0;
}

static int
cmp_u64 (const void *a, const void *b)
{
  uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
  return x < y ? -1 : x > y;
}

static void
report (const char *label, uint64_t *lat, size_t n, uint64_t records, double secs,
    uint64_t lost)
{
  qsort (lat, n, sizeof *lat, cmp_u64);
  printf ("%s %8.0f records/s  %7.1f MB/s  latency p50 %6.1f µs  p99 %7.1f µs  "
      "lost %" PRIu64 "\n", label, (double) records / secs,
      (double) records * RECORD / secs / 1e6, n ? (double) lat[n / 2] / 1e3 : 0.0,
      n ? (double) lat[n * 99 / 100] / 1e3 : 0.0, lost);
  fflush (stdout);
}

static int
consume (const char *channel)
{
  dh_consumer_config cc;
  dh_consumer_config_init (&cc);
  cc.name = channel;
  cc.attach_timeout_ms = 10000;
  dh_consumer *c;
  int rc = dh_consumer_attach (&cc, &c);
  if (rc)
    return fail ("attach", rc);
  printf ("consumer: attached to %s\n", dh_consumer_shm_name (c));
  /* fixed memory however long it runs: a per-second sample and a summary
   * reservoir of 64 Ki latencies each */
  size_t cap = 1u << 16;
  uint64_t *lat = malloc (cap * sizeof *lat), *all = malloc (cap * sizeof *all);
  uint64_t seen_all = 0;
  size_t n = 0, n_all = 0;
  uint64_t records = 0, total = 0, lost = 0, bad = 0;
  uint64_t t_sec = now_ns (), t0 = t_sec;
  for (;;) {
    dh_record r;
    rc = dh_consumer_next (c, 5000, &r);
    if (rc == DH_ECLOSED)
      break;
    if (rc)
      return fail ("next", rc);
    uint64_t t = now_ns ();
    const uint64_t *w = r.data;
    for (size_t i = 0; i < RECORD / 8; i += 8)
      bad += w[i] != (r.info.user[1] ^ i);
    if (n < cap)
      lat[n++] = t - r.info.user[0];
    /* reservoir sampling keeps the summary unbiased in fixed memory */
    seen_all++;
    if (n_all < cap)
      all[n_all++] = t - r.info.user[0];
    else if ((uint64_t) rand () % seen_all < cap)
      all[(size_t) rand () % cap] = t - r.info.user[0];
    lost += r.lost_before;
    records++;
    total++;
    dh_consumer_release (c, &r);
    if (t - t_sec >= 1000000000u) {
      report ("consumer:", lat, n, records, (double) (t - t_sec) / 1e9, lost);
      n = 0;
      records = 0;
      t_sec = t;
    }
  }
  double secs = (double) (now_ns () - t0) / 1e9;
  printf ("consumer: producer closed; %" PRIu64 " records in %.1f s, %" PRIu64
      " corrupt, %" PRIu64 " lost\n", total, secs, bad, lost);
  report ("summary: ", all, n_all, total, secs, lost);
  dh_consumer_detach (c);
  free (lat);
  free (all);
  return bad ? 1 : 0;
}

int
main (int argc, char **argv)
{
  if (argc >= 4 && strcmp (argv[1], "produce") == 0)
    return produce (argv[2], atof (argv[3]));
  if (argc >= 3 && strcmp (argv[1], "consume") == 0)
    return consume (argv[2]);
  fprintf (stderr, "usage: datahub-demo produce CHANNEL SECONDS | consume CHANNEL\n");
  return 2;
}
