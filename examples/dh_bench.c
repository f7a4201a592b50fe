/* datahub-bench: cross-process figures for the DataBlock library, next to a
 * bare futex ping-pong and (when built with it) iceoryx 2.0, measured by the
 * same program with the same harness on the same machine.
 *
 *   datahub-bench [--quick]
 *
 * Prints markdown tables: throughput (records/s, GB/s) for 4 KiB and 8 MiB
 * records with the consumer reading every byte, and blocking wake-up
 * latency p50/p99 at 1 kHz for datahub, iceoryx (WaitSet) and a bare futex
 * wake.  The iceoryx rows need a running iox-roudi with the memory pools of
 * tests/bench/roudi.toml (scripts/bench starts it).  Not a test: it asserts
 * nothing, it measures. */

#include <inttypes.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "datahub/datahub.h"

#ifdef DH_BENCH_ICEORYX
/* iceoryx 2.0.3's runtime.h declares iox_runtime_shutdown() without void */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#include "iceoryx_binding_c/publisher.h"
#include "iceoryx_binding_c/runtime.h"
#include "iceoryx_binding_c/subscriber.h"
#include "iceoryx_binding_c/wait_set.h"
#pragma GCC diagnostic pop
#endif

static uint64_t
now_ns (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

static void
sleep_until (uint64_t t)
{
  struct timespec ts = { (time_t) (t / 1000000000u), (long) (t % 1000000000u) };
  clock_nanosleep (CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

/* Shared between the bench processes (anonymous MAP_SHARED, made before
 * fork). */
typedef struct {
  _Atomic uint32_t ready;
  _Atomic uint32_t word;       /* futex baseline: the value published */
  _Atomic uint32_t waiting;
  _Atomic uint64_t sent_ns;    /* futex baseline: send time */
  uint64_t lat[100000];        /* latencies measured by the consumer */
  uint64_t n_lat;
  uint64_t checksum;
  double seconds;
} shared_t;

static shared_t *
shared_new (void)
{
  shared_t *s = mmap (NULL, sizeof *s, PROT_READ | PROT_WRITE,
      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (s == MAP_FAILED) {
    perror ("mmap");
    exit (1);
  }
  memset (s, 0, sizeof *s);
  return s;
}

static int
cmp_u64 (const void *a, const void *b)
{
  uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
  return x < y ? -1 : x > y;
}

static void
percentiles (shared_t *s, double *p50, double *p99, double *max)
{
  qsort (s->lat, s->n_lat, sizeof s->lat[0], cmp_u64);
  *p50 = (double) s->lat[s->n_lat / 2] / 1000.0;
  *p99 = (double) s->lat[s->n_lat * 99 / 100] / 1000.0;
  *max = (double) s->lat[s->n_lat - 1] / 1000.0;
}

static void
die_rc (const char *what, int rc)
{
  fprintf (stderr, "%s: %s (%s)\n", what, dh_strerror (rc), dh_error_detail ());
  exit (1);
}

/* Sums every 64-bit word: forces the consumer to read every byte. */
static uint64_t
read_all (const void *data, uint64_t size)
{
  const uint64_t *w = data;
  uint64_t sum = 0;
  for (uint64_t i = 0; i < size / 8; i++)
    sum += w[i];
  return sum;
}

/* Attaches (waiting for the producer) and tells the parent it is ready. */
static dh_consumer *
attach_ready (const char *name, shared_t *s)
{
  dh_consumer_config cc;
  dh_consumer_config_init (&cc);
  cc.name = name;
  cc.attach_timeout_ms = 5000;
  dh_consumer *c;
  int rc = dh_consumer_attach (&cc, &c);
  if (rc)
    die_rc ("attach", rc);
  atomic_store (&s->ready, 1);
  return c;
}

static dh_producer *
create_producer (const char *name, uint64_t slot_size, uint32_t slots)
{
  dh_producer_config pc;
  dh_producer_config_init (&pc);
  pc.name = name;
  pc.slot_size = slot_size;
  pc.slot_count = slots;
  dh_producer *p;
  int rc = dh_producer_create (&pc, &p);
  if (rc)
    die_rc ("create", rc);
  return p;
}

/* ---- throughput ---------------------------------------------------------- */

static void
consumer_throughput (const char *name, shared_t *s, uint64_t records)
{
  dh_consumer *c = attach_ready (name, s);
  int rc;
  uint64_t sum = 0, t0 = 0;
  for (uint64_t i = 0; i < records; i++) {
    dh_record r;
    if ((rc = dh_consumer_next (c, 10000, &r)) != 0)
      die_rc ("next", rc);
    if (i == 0)
      t0 = now_ns ();
    sum += read_all (r.data, r.info.size);
    dh_consumer_release (c, &r);
  }
  s->seconds = (double) (now_ns () - t0) / 1e9;
  s->checksum = sum;
  dh_consumer_detach (c);
}

static double
bench_throughput (uint64_t size, uint64_t records, uint32_t slots, double *wakeups,
    double *waits)
{
  char name[64];
  snprintf (name, sizeof name, "bench-%d", (int) getpid ());
  shared_t *s = shared_new ();
  pid_t child = fork ();
  if (child == 0) {
    consumer_throughput (name, s, records);
    _exit (0);
  }
  dh_producer *p = create_producer (name, size, slots);
  int rc;
  while (!atomic_load (&s->ready))
    usleep (100);
  for (uint64_t i = 0; i < records; i++) {
    dh_slot sl;
    if ((rc = dh_producer_acquire (p, 10000, &sl)) != 0)
      die_rc ("acquire", rc);
    /* touch the record as a real producer would (one word per cache line) */
    for (uint64_t off = 0; off < size; off += 64)
      *(uint64_t *) (void *) ((uint8_t *) sl.data + off) = i + off;
    dh_record_info info = { .size = size };
    if ((rc = dh_producer_commit (p, &sl, &info, NULL)) != 0)
      die_rc ("commit", rc);
  }
  waitpid (child, NULL, 0);
  double rps = (double) records / s->seconds;
  dh_metrics m;
  dh_producer_metrics (p, &m);
  *wakeups = (double) m.wakeups_sent / (double) records;
  *waits = (double) m.writer_waits / (double) records;
  dh_producer_destroy (p);
  munmap (s, sizeof *s);
  return rps;
}

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

typedef double (*throughput_fn) (uint64_t size, uint64_t records, uint32_t slots,
    double *wakeups, double *waits);

/* Runs @runs times and prints the median (and the range: this 2-vCPU VM
 * sometimes schedules both processes badly for a whole run).  Returns the
 * median. */
static double
report_throughput (const char *transport, throughput_fn fn, uint64_t size,
    uint64_t records, uint32_t slots, int runs)
{
  double rps[16], wakeups = -1, waits = -1;
  for (int i = 0; i < runs; i++)
    rps[i] = fn (size, records, slots, &wakeups, &waits);
  qsort (rps, (size_t) runs, sizeof rps[0], cmp_double);
  double med = rps[runs / 2];
  printf ("| %-8s | %7" PRIu64 " B | %2u | %10.0f records/s (%.0f–%.0f) "
      "| %6.2f GB/s |", transport, size, slots, med, rps[0], rps[runs - 1],
      med * (double) size / 1e9);
  if (wakeups >= 0)
    printf (" %.3f | %.3f |\n", wakeups, waits);
  else
    printf (" – | – |\n");
  return med;
}

/* ---- latency ------------------------------------------------------------- */

static void
consumer_latency (const char *name, shared_t *s, uint64_t n)
{
  dh_consumer *c = attach_ready (name, s);
  int rc;
  for (uint64_t i = 0; i < n; i++) {
    dh_record r;
    if ((rc = dh_consumer_next (c, 10000, &r)) != 0)
      die_rc ("next", rc);
    uint64_t t = now_ns ();
    s->lat[s->n_lat++] = t - (uint64_t) r.info.user[0];
    dh_consumer_release (c, &r);
  }
  dh_consumer_detach (c);
}

static void
bench_latency (uint64_t n, uint64_t period_ns, double *p50, double *p99, double *max)
{
  char name[64];
  snprintf (name, sizeof name, "benchlat-%d", (int) getpid ());
  shared_t *s = shared_new ();
  pid_t child = fork ();
  if (child == 0) {
    consumer_latency (name, s, n);
    _exit (0);
  }
  dh_producer *p = create_producer (name, 4096, 16);
  int rc;
  while (!atomic_load (&s->ready))
    usleep (100);
  uint64_t next = now_ns () + period_ns;
  for (uint64_t i = 0; i < n; i++) {
    sleep_until (next);
    next += period_ns;
    dh_slot sl;
    if ((rc = dh_producer_acquire (p, 10000, &sl)) != 0)
      die_rc ("acquire", rc);
    memset (sl.data, (int) i, 4096);
    dh_record_info info = { .size = 4096, .user = { now_ns (), 0 } };
    if ((rc = dh_producer_commit (p, &sl, &info, NULL)) != 0)
      die_rc ("commit", rc);
  }
  waitpid (child, NULL, 0);
  percentiles (s, p50, p99, max);
  dh_producer_destroy (p);
  munmap (s, sizeof *s);
}

/* The floor: one process stores a timestamp and FUTEX_WAKEs, the other
 * sleeps in FUTEX_WAIT on the same shared word. */
static void
futex_latency (uint64_t n, uint64_t period_ns, double *p50, double *p99, double *max)
{
  shared_t *s = shared_new ();
  pid_t child = fork ();
  if (child == 0) {
    uint32_t seen = 0;
    atomic_store (&s->ready, 1);
    /* ends on the last value, not on a count: two sends may coalesce */
    while (seen < (uint32_t) n) {
      atomic_store (&s->waiting, 1);
      while (atomic_load (&s->word) == seen)
        syscall (SYS_futex, &s->word, FUTEX_WAIT, seen, NULL, NULL, 0);
      atomic_store (&s->waiting, 0);
      seen = atomic_load (&s->word);
      s->lat[s->n_lat++] = now_ns () - atomic_load (&s->sent_ns);
    }
    _exit (0);
  }
  while (!atomic_load (&s->ready))
    usleep (100);
  uint64_t next = now_ns () + period_ns;
  for (uint64_t i = 1; i <= n; i++) {
    sleep_until (next);
    next += period_ns;
    atomic_store (&s->sent_ns, now_ns ());
    atomic_store (&s->word, (uint32_t) i);
    syscall (SYS_futex, &s->word, FUTEX_WAKE, 1, NULL, NULL, 0);
  }
  waitpid (child, NULL, 0);
  percentiles (s, p50, p99, max);
  munmap (s, sizeof *s);
}

#ifdef DH_BENCH_ICEORYX
/* ---- iceoryx 2.0 over the same harness --------------------------------------
 * One publisher, one subscriber, a blocking queue as deep as datahub's slot
 * pool (WAIT_FOR_CONSUMER / BLOCK_PRODUCER: nothing is lost), the
 * subscriber blocking in a WaitSet when its queue is empty.  Both run in
 * fresh children: the iceoryx runtime is a per-process singleton with a
 * keep-alive thread, and a child forked after it exists would inherit a
 * half-copy of it. */

typedef struct {
  iox_sub_storage_t storage;
  iox_sub_t sub;
  iox_ws_storage_t ws_storage;
  iox_ws_t ws;
} iox_reader;

static void
iox_reader_open (iox_reader *r, const char *event, uint64_t queue, shared_t *s)
{
  char name[64];
  snprintf (name, sizeof name, "dhbench-sub-%d", (int) getpid ());
  iox_runtime_init (name);
  iox_sub_options_t o;
  iox_sub_options_init (&o);
  o.queueCapacity = queue;
  o.historyRequest = 0;
  o.queueFullPolicy = QueueFullPolicy_BLOCK_PRODUCER;
  r->sub = iox_sub_init (&r->storage, "datahub-bench", "records", event, &o);
  r->ws = iox_ws_init (&r->ws_storage);
  iox_ws_attach_subscriber_state (r->ws, r->sub, SubscriberState_HAS_DATA, 0, NULL);
  atomic_store (&s->ready, 1);
}

/* The next chunk, blocking in the WaitSet while there is none. */
static const void *
iox_reader_next (iox_reader *r)
{
  const void *chunk;
  while (iox_sub_take_chunk (r->sub, &chunk) != ChunkReceiveResult_SUCCESS) {
    iox_notification_info_t info[1];
    uint64_t missed;
    iox_ws_wait (r->ws, info, 1, &missed);
  }
  return chunk;
}

static void
iox_reader_close (iox_reader *r)
{
  iox_ws_deinit (r->ws);
  iox_sub_deinit (r->sub);
  iox_runtime_shutdown ();
}

static iox_pub_t
iox_writer_open (iox_pub_storage_t *storage, const char *event)
{
  char name[64];
  snprintf (name, sizeof name, "dhbench-pub-%d", (int) getpid ());
  iox_runtime_init (name);
  iox_pub_options_t o;
  iox_pub_options_init (&o);
  o.historyCapacity = 0;
  o.subscriberTooSlowPolicy = ConsumerTooSlowPolicy_WAIT_FOR_CONSUMER;
  iox_pub_t pub = iox_pub_init (storage, "datahub-bench", "records", event, &o);
  while (!iox_pub_has_subscribers (pub))
    usleep (1000);
  return pub;
}

static void *
iox_loan (iox_pub_t pub, uint64_t size)
{
  void *chunk;
  int rc;
  while ((rc = iox_pub_loan_chunk (pub, &chunk, (uint32_t) size)) != AllocationResult_SUCCESS) {
    if (rc != AllocationResult_RUNNING_OUT_OF_CHUNKS) {
      fprintf (stderr, "iceoryx: loan of %" PRIu64 " bytes failed (%d); is iox-roudi "
          "running with tests/bench/roudi.toml?\n", size, rc);
      exit (1);
    }
    usleep (10); /* every chunk is queued or held: the subscriber is behind */
  }
  return chunk;
}

static double
iox_bench_throughput (uint64_t size, uint64_t records, uint32_t queue, double *wakeups,
    double *waits)
{
  (void) wakeups;
  (void) waits;
  char event[32];
  snprintf (event, sizeof event, "tput-%d", (int) getpid ());
  shared_t *s = shared_new ();
  pid_t child = fork ();
  if (child == 0) {
    iox_reader r;
    iox_reader_open (&r, event, queue, s);
    uint64_t sum = 0, t0 = 0;
    for (uint64_t i = 0; i < records; i++) {
      const void *chunk = iox_reader_next (&r);
      if (i == 0)
        t0 = now_ns ();
      sum += read_all (chunk, size);
      iox_sub_release_chunk (r.sub, chunk);
    }
    s->seconds = (double) (now_ns () - t0) / 1e9;
    s->checksum = sum;
    iox_reader_close (&r);
    _exit (0);
  }
  pid_t producer = fork ();
  if (producer == 0) {
    iox_pub_storage_t storage;
    iox_pub_t pub = iox_writer_open (&storage, event);
    while (!atomic_load (&s->ready))
      usleep (100);
    for (uint64_t i = 0; i < records; i++) {
      uint8_t *chunk = iox_loan (pub, size);
      for (uint64_t off = 0; off < size; off += 64)
        *(uint64_t *) (void *) (chunk + off) = i + off;
      iox_pub_publish_chunk (pub, chunk);
    }
    while (!atomic_load (&s->word)) /* until the consumer is done */
      usleep (1000);
    iox_pub_deinit (pub);
    iox_runtime_shutdown ();
    _exit (0);
  }
  waitpid (child, NULL, 0);
  atomic_store (&s->word, 1);
  waitpid (producer, NULL, 0);
  double rps = (double) records / s->seconds;
  munmap (s, sizeof *s);
  return rps;
}

static void
iox_bench_latency (uint64_t n, uint64_t period_ns, double *p50, double *p99, double *max)
{
  char event[32];
  snprintf (event, sizeof event, "lat-%d", (int) getpid ());
  shared_t *s = shared_new ();
  pid_t child = fork ();
  if (child == 0) {
    iox_reader r;
    iox_reader_open (&r, event, 16, s);
    for (uint64_t i = 0; i < n; i++) {
      const void *chunk = iox_reader_next (&r);
      uint64_t sent;
      memcpy (&sent, chunk, sizeof sent);
      s->lat[s->n_lat++] = now_ns () - sent;
      iox_sub_release_chunk (r.sub, chunk);
    }
    iox_reader_close (&r);
    _exit (0);
  }
  pid_t producer = fork ();
  if (producer == 0) {
    iox_pub_storage_t storage;
    iox_pub_t pub = iox_writer_open (&storage, event);
    while (!atomic_load (&s->ready))
      usleep (100);
    uint64_t next = now_ns () + period_ns;
    for (uint64_t i = 0; i < n; i++) {
      sleep_until (next);
      next += period_ns;
      uint8_t *chunk = iox_loan (pub, 4096);
      memset (chunk, (int) i, 4096);
      uint64_t t = now_ns ();
      memcpy (chunk, &t, sizeof t);
      iox_pub_publish_chunk (pub, chunk);
    }
    while (!atomic_load (&s->word)) /* until the consumer is done */
      usleep (1000);
    iox_pub_deinit (pub);
    iox_runtime_shutdown ();
    _exit (0);
  }
  waitpid (child, NULL, 0);
  atomic_store (&s->word, 1);
  waitpid (producer, NULL, 0);
  percentiles (s, p50, p99, max);
  munmap (s, sizeof *s);
}
#endif

/* Cache-line ping-pong between the two processes: the cost of moving one
 * line from one vCPU to the other, which bounds every cross-process
 * handshake.  On a VM it depends on where the hypervisor placed the vCPUs. */
static double
line_transfer_ns (uint64_t rounds)
{
  shared_t *s = shared_new ();
  pid_t child = fork ();
  if (child == 0) {
    for (uint32_t v = 1; v < 2 * rounds; v += 2) {
      while (atomic_load_explicit (&s->word, memory_order_acquire) != v)
        ;
      atomic_store_explicit (&s->word, v + 1, memory_order_release);
    }
    _exit (0);
  }
  uint64_t t0 = now_ns ();
  for (uint32_t v = 0; v < 2 * rounds; v += 2) {
    atomic_store_explicit (&s->word, v + 1, memory_order_release);
    while (atomic_load_explicit (&s->word, memory_order_acquire) != v + 2)
      ;
  }
  double ns = (double) (now_ns () - t0) / (double) (2 * rounds);
  waitpid (child, NULL, 0);
  munmap (s, sizeof *s);
  return ns;
}

int
main (int argc, char **argv)
{
  bool quick = argc > 1 && strcmp (argv[1], "--quick") == 0;
  uint64_t small = quick ? 200000 : 1000000, large = quick ? 100 : 1000;
  uint64_t lat_n = quick ? 1000 : 5000;
  printf ("## datahub-bench (%s)\n\n", quick ? "quick" : "full");
  printf ("| transport | record | slots / queue | rate, median of %d (range) | bandwidth "
      "| consumer wake-ups per record | producer waits per record |\n"
      "|---|---|---|---|---|---|---|\n", quick ? 3 : 5);
  int runs = quick ? 3 : 5;
  double line_before = line_transfer_ns (quick ? 100000 : 1000000);
  double dh_small = report_throughput ("datahub", bench_throughput, 4096, small, 64, runs);
#ifdef DH_BENCH_ICEORYX
  double iox_small = report_throughput ("iceoryx", iox_bench_throughput, 4096, small, 64, runs);
#endif
  double dh_large = report_throughput ("datahub", bench_throughput, 8u << 20, large, 4, runs);
#ifdef DH_BENCH_ICEORYX
  double iox_large = report_throughput ("iceoryx", iox_bench_throughput, 8u << 20, large, 4,
      runs);
#endif
  double d50, d99, dmax, f50, f99, fmax;
  futex_latency (lat_n, 1000000, &f50, &f99, &fmax);
  bench_latency (lat_n, 1000000, &d50, &d99, &dmax);
  printf ("\n| blocking wake-up latency at 1 kHz, %" PRIu64 " samples | p50 µs | p99 µs "
      "| max µs |\n|---|---|---|---|\n", lat_n);
  printf ("| bare futex wake (floor) | %.1f | %.1f | %.1f |\n", f50, f99, fmax);
  printf ("| datahub 4 KiB record | %.1f | %.1f | %.1f |\n", d50, d99, dmax);
#ifdef DH_BENCH_ICEORYX
  double i50, i99, imax;
  iox_bench_latency (lat_n, 1000000, &i50, &i99, &imax);
  printf ("| iceoryx 4 KiB chunk, WaitSet | %.1f | %.1f | %.1f |\n", i50, i99, imax);
#endif
  printf ("\np50 ratio datahub / bare futex: %.2fx\n", d50 / f50);
#ifdef DH_BENCH_ICEORYX
  printf ("ratios datahub / iceoryx: 4 KiB throughput %.2fx, 8 MiB throughput %.2fx, "
      "wake-up p50 %.2fx, p99 %.2fx (latency: below 1 is better)\n", dh_small / iox_small,
      dh_large / iox_large, d50 / i50, d99 / i99);
#else
  (void) dh_small;
  (void) dh_large;
  printf ("(built without iceoryx: no iceoryx rows)\n");
#endif
  printf ("cache-line transfer between the two processes: %.0f ns one way before "
      "the throughput runs, %.0f ns after\n", line_before,
      line_transfer_ns (quick ? 100000 : 1000000));
  return 0;
}
