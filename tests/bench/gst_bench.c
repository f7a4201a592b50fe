/* datahub-gst-bench: datahubsink/datahubsrc next to shmsink/shmsrc, same
 * harness, same run.  A producer process pushes buffers from fakesrc
 * (filled in its streaming thread) that carry a sequence number, a send
 * time and a fill pattern; a consumer
 * process checks every byte and measures throughput and latency in the
 * src's streaming thread (fakesink handoff), so no queue hand-off hides the
 * transport.
 *
 *   datahub-gst-bench [--quick]
 *
 * Needs the datahub plugin on GST_PLUGIN_PATH_1_0 (scripts/bench sets it).
 * Prints a markdown table; asserts nothing. */
#include <gst/gst.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static guint64
now_ns (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (guint64) ts.tv_sec * 1000000000u + (guint64) ts.tv_nsec;
}

static gchar *
sink_desc (const char *transport, const char *channel, gsize size)
{
  if (g_str_equal (transport, "datahub"))
    return g_strdup_printf ("datahubsink channel=%s slots=16 slot-size=%" G_GSIZE_FORMAT
        " wait-for-consumer=true", channel, size);
  return g_strdup_printf ("shmsink socket-path=/tmp/%s shm-size=%" G_GSIZE_FORMAT
      " wait-for-connection=true sync=false", channel, size * 32 + (1u << 20));
}

static gchar *
src_desc (const char *transport, const char *channel)
{
  if (g_str_equal (transport, "datahub"))
    return g_strdup_printf ("datahubsrc channel=%s", channel);
  return g_strdup_printf ("shmsrc socket-path=/tmp/%s is-live=true", channel);
}

/* Fills each buffer in fakesrc's streaming thread (no queue hand-off):
 * sequence number, send time, then the pattern; paced if @rate. */
typedef struct {
  guint64 next, period, seq;
} Filler;

static void
on_fill (GstElement *src, GstBuffer *b, GstPad *pad, gpointer user)
{
  (void) src;
  (void) pad;
  Filler *f = user;
  if (f->period) {
    f->next += f->period;
    struct timespec ts = { (time_t) (f->next / 1000000000u), (long) (f->next % 1000000000u) };
    clock_nanosleep (CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
  }
  GstMapInfo map;
  gst_buffer_map (b, &map, GST_MAP_WRITE);
  memset (map.data + 16, (int) (f->seq & 0xff), map.size - 16);
  guint64 hdr[2] = { f->seq++, now_ns () };
  memcpy (map.data, hdr, sizeof hdr);
  gst_buffer_unmap (b, &map);
}

static int
produce (const char *transport, gsize size, guint count, guint rate, const char *channel)
{
  gchar *sink = sink_desc (transport, channel, size);
  /* a few extra buffers: shmsrc never sees EOS, and the consumer stops at
   * its count */
  gchar *desc = g_strdup_printf ("fakesrc name=in num-buffers=%u sizetype=fixed "
      "sizemax=%" G_GSIZE_FORMAT " filltype=nothing can-activate-pull=false "
      "signal-handoffs=true ! application/x-bench ! %s", count + 16, size, sink);
  GstElement *pipe = gst_parse_launch (desc, NULL);
  GstElement *in = gst_bin_get_by_name (GST_BIN (pipe), "in");
  Filler f = { now_ns (), rate ? 1000000000u / rate : 0, 0 };
  g_signal_connect (in, "handoff", G_CALLBACK (on_fill), &f);
  gst_element_set_state (pipe, GST_STATE_PLAYING);
  GstMessage *m = gst_bus_timed_pop_filtered (GST_ELEMENT_BUS (pipe), 120 * GST_SECOND,
      GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  if (m)
    gst_message_unref (m);
  /* shmsrc never sees EOS: keep the producer up until the consumer is done */
  g_usleep (G_USEC_PER_SEC / 2);
  gst_element_set_state (pipe, GST_STATE_NULL);
  gst_object_unref (in);
  gst_object_unref (pipe);
  g_free (desc);
  g_free (sink);
  return 0;
}

static int
cmp_u64 (const void *a, const void *b)
{
  guint64 x = *(const guint64 *) a, y = *(const guint64 *) b;
  return x < y ? -1 : x > y;
}

/* What the consumer's streaming thread records per buffer. */
typedef struct {
  gsize size;
  guint count, got, bad;
  guint64 *lat, *arrival;
} Tally;

/* Runs in the src's streaming thread (fakesink handoff): no hand-off to
 * another thread, so the figures are the transport's, not a queue's. */
static void
on_handoff (GstElement *sink, GstBuffer *b, GstPad *pad, gpointer user)
{
  (void) sink;
  (void) pad;
  Tally *t = user;
  if (t->got >= t->count)
    return;
  GstMapInfo map;
  gst_buffer_map (b, &map, GST_MAP_READ);
  guint64 now = now_ns (), hdr[2] = { 0, now };
  if (map.size != t->size) {
    t->bad++;
  } else {
    memcpy (hdr, map.data, sizeof hdr);
    guint8 want = (guint8) (hdr[0] & 0xff);
    for (gsize k = 16; k < map.size; k++)
      if (map.data[k] != want) {
        t->bad++;
        break;
      }
  }
  gst_buffer_unmap (b, &map);
  t->lat[t->got] = now - hdr[1];
  t->arrival[t->got] = now;
  g_atomic_int_inc (&t->got);
}

/* Prints "received rate p50_us p99_us max_us bad cpu_ns_per_buffer". */
static int
consume (const char *transport, gsize size, guint count, const char *channel)
{
  gchar *src = src_desc (transport, channel);
  gchar *desc = g_strdup_printf ("%s ! fakesink name=out sync=false signal-handoffs=true", src);
  GstElement *pipe = gst_parse_launch (desc, NULL);
  GstElement *out = gst_bin_get_by_name (GST_BIN (pipe), "out");
  Tally t = { size, count, 0, 0, g_new0 (guint64, count), g_new0 (guint64, count) };
  g_signal_connect (out, "handoff", G_CALLBACK (on_handoff), &t);
  clock_t cpu0 = clock ();
  gst_element_set_state (pipe, GST_STATE_PLAYING);
  guint last_seen = 0;
  guint64 last_change = now_ns ();
  while ((guint) g_atomic_int_get (&t.got) < count && now_ns () - last_change < 5000000000u) {
    g_usleep (1000);
    guint g = (guint) g_atomic_int_get (&t.got);
    if (g != last_seen) {
      last_seen = g;
      last_change = now_ns ();
    }
  }
  gst_element_set_state (pipe, GST_STATE_NULL);
  guint got = (guint) g_atomic_int_get (&t.got);
  double cpu_ns = (double) (clock () - cpu0) / CLOCKS_PER_SEC * 1e9 / (got ? got : 1);
  /* the first fifth is warm-up (buffers queued while the consumer started):
   * rate and latency come from the rest */
  guint warm = got / 5;
  double rate = got - warm > 1 ? (double) (got - warm - 1)
      / ((double) (t.arrival[got - 1] - t.arrival[warm]) / 1e9) : 0;
  guint n = got - warm;
  guint64 *l = t.lat + warm;
  qsort (l, n, sizeof l[0], cmp_u64);
  printf ("%u %.0f %.1f %.1f %.1f %u %.0f\n", got, rate,
      n ? (double) l[n / 2] / 1e3 : 0.0, n ? (double) l[n * 99 / 100] / 1e3 : 0.0,
      n ? (double) l[n - 1] / 1e3 : 0.0, t.bad, cpu_ns);
  gst_object_unref (out);
  gst_object_unref (pipe);
  g_free (t.lat);
  g_free (t.arrival);
  g_free (desc);
  g_free (src);
  return 0;
}

/* Runs one case: producer and consumer as separate processes. */
static void
run_case (const char *self, const char *transport, const char *label, gsize size,
    guint count, guint rate)
{
  gchar *channel = g_strdup_printf ("gstbench-%d-%s", (int) getpid (), transport);
  gchar *sz = g_strdup_printf ("%" G_GSIZE_FORMAT, size), *n = g_strdup_printf ("%u", count);
  gchar *r = g_strdup_printf ("%u", rate);
  gchar *pargv[] = { (gchar *) self, (gchar *) "produce", (gchar *) transport, sz, n, r, channel, NULL };
  gchar *cargv[] = { (gchar *) self, (gchar *) "consume", (gchar *) transport, sz, n, channel, NULL };
  GPid prod;
  g_spawn_async (NULL, pargv, NULL, G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL, &prod, NULL);
  g_usleep (G_USEC_PER_SEC / 2); /* shmsrc needs the socket to exist */
  gchar *out = NULL;
  g_spawn_sync (NULL, cargv, NULL, 0, NULL, NULL, &out, NULL, NULL, NULL);
  int status;
  waitpid (prod, &status, 0);
  guint got = 0, bad = 0;
  double rate_v = 0, p50 = 0, p99 = 0, max = 0, cpu = 0;
  if (out)
    sscanf (out, "%u %lf %lf %lf %lf %u %lf", &got, &rate_v, &p50, &p99, &max, &bad, &cpu);
  printf ("| %-8s | %-18s | %9u/%-9u | %12.0f | %9.1f | %9.1f | %9.1f | %9.1f | %6.0f | %u |\n",
      transport, label, got, count, rate_v, rate_v * (double) size / 1e6, p50, p99, max,
      cpu, bad);
  fflush (stdout);
  g_free (out);
  g_free (channel);
  g_free (sz);
  g_free (n);
  g_free (r);
}

int
main (int argc, char **argv)
{
  gst_init (&argc, &argv);
  if (argc >= 7 && g_str_equal (argv[1], "produce"))
    return produce (argv[2], (gsize) g_ascii_strtoull (argv[3], NULL, 10),
        (guint) atoi (argv[4]), (guint) atoi (argv[5]), argv[6]);
  if (argc >= 6 && g_str_equal (argv[1], "consume"))
    return consume (argv[2], (gsize) g_ascii_strtoull (argv[3], NULL, 10),
        (guint) atoi (argv[4]), argv[5]);
  gboolean quick = argc > 1 && g_str_equal (argv[1], "--quick");
  guint small = quick ? 20000 : 100000, frames = quick ? 120 : 600;
  printf ("| transport | case | received | buffers/s | MB/s | p50 µs | p99 µs | max µs "
      "| consumer CPU ns/buf | bad |\n|---|---|---|---|---|---|---|---|---|---|\n");
  /* rate and latency exclude the first fifth of each run (warm-up) */
  const char *transports[] = { "datahub", "shm" };
  for (int t = 0; t < 2; t++)
    run_case (argv[0], transports[t], "4 KiB flat out", 4096, small, 0);
  for (int t = 0; t < 2; t++)
    run_case (argv[0], transports[t], "64 KiB flat out", 65536, small / 4, 0);
  for (int t = 0; t < 2; t++)
    run_case (argv[0], transports[t], "1080p RGBA flat out", 1920 * 1080 * 4, frames, 0);
  for (int t = 0; t < 2; t++)
    run_case (argv[0], transports[t], "2160p RGBA flat out", 3840 * 2160 * 4, frames / 4, 0);
  for (int t = 0; t < 2; t++)
    run_case (argv[0], transports[t], "4 KiB at 1 kHz", 4096, quick ? 1000 : 3000, 1000);
  for (int t = 0; t < 2; t++)
    run_case (argv[0], transports[t], "1080p at 60 fps", 1920 * 1080 * 4, quick ? 60 : 300, 60);
  return 0;
}
