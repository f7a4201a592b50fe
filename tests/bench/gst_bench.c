/* datahub-gst-bench: datahubsink/datahubsrc next to shmsink/shmsrc, same
 * harness, same run, with the same work done in one process as the ceiling.
 *
 * A producer process pushes buffers stamped with a sequence number and a
 * send time; consumer processes (1, 4 or 16) check every byte and measure
 * throughput and latency in the src's streaming thread (fakesink handoff),
 * so no queue hand-off hides the transport.  Upstream is either plain
 * (fakesrc: buffers in its own memory) or renders into the pool the sink
 * offers (videotestsrc).  The "app threads" and "appsrc" cases do what
 * applications do: a thread of the application pushes into appsrc
 * (allocating system memory, from the allocator downstream offers, or from
 * a pool of its own) and the consumer's main thread pulls from appsink;
 * their ceiling is appsrc ! queue ! appsink in one process (as many
 * threads).
 *
 *   datahub-gst-bench [--quick] [--csv FILE] [--only SUBSTRING-OF-CASE]
 *
 * Per case it prints: the slowest consumer's rate, latency p50/p99/max,
 * CPU time per buffer on each side, heap allocations per buffer in steady
 * state on each side (run with G_SLICE=always-malloc so GLib's slices are
 * counted: scripts/bench does), system calls per buffer on each side
 * (perf's raw_syscalls:sys_enter tracepoint, per thread: needs tracefs and
 * root, else "–") and the bytes the sink copied.  Needs the
 * datahub plugin on GST_PLUGIN_PATH_1_0 (scripts/bench sets it).  Asserts
 * nothing. */
#include <dirent.h>
#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>
#include <gst/gst.h>
#include <linux/perf_event.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- counting heap allocations --------------------------------------------
 * The executable's malloc family interposes on every library's: each call
 * is counted, then handed to glibc. */
extern void *__libc_malloc (size_t size);
extern void *__libc_calloc (size_t n, size_t size);
extern void *__libc_realloc (void *p, size_t size);
extern void *__libc_memalign (size_t align, size_t size);

static atomic_ulong allocations;

void *
malloc (size_t size)
{
  atomic_fetch_add_explicit (&allocations, 1, memory_order_relaxed);
  return __libc_malloc (size);
}

void *
calloc (size_t n, size_t size)
{
  atomic_fetch_add_explicit (&allocations, 1, memory_order_relaxed);
  return __libc_calloc (n, size);
}

void *
realloc (void *p, size_t size)
{
  atomic_fetch_add_explicit (&allocations, 1, memory_order_relaxed);
  return __libc_realloc (p, size);
}

int
posix_memalign (void **out, size_t align, size_t size)
{
  atomic_fetch_add_explicit (&allocations, 1, memory_order_relaxed);
  *out = __libc_memalign (align, size);
  return *out ? 0 : 12 /* ENOMEM */;
}

static unsigned long
allocations_now (void)
{
  return atomic_load_explicit (&allocations, memory_order_relaxed);
}

/* ---- common ------------------------------------------------------------------ */

/* ---- counting system calls ------------------------------------------------
 * One perf counter of the raw_syscalls:sys_enter tracepoint per thread of
 * this process, opened at the end of the warm-up and read at the end of
 * the run (threads started in between are not counted: in steady state
 * there are none).  Needs tracefs (scripts/bench mounts it when root) and
 * permission to count kernel events; without them the figure is -1. */
#define MAX_COUNTED_THREADS 64
static int syscall_fds[MAX_COUNTED_THREADS];
static guint n_syscall_fds;
/* The main thread is the harness (it polls for the end of the run), not
 * the pipeline, unless it is the application pulling from appsink. */
static gboolean count_main_thread;

static long
syscall_tracepoint_id (void)
{
  const char *paths[] = { "/sys/kernel/tracing/events/raw_syscalls/sys_enter/id",
    "/sys/kernel/debug/tracing/events/raw_syscalls/sys_enter/id" };
  for (guint i = 0; i < G_N_ELEMENTS (paths); i++) {
    FILE *f = fopen (paths[i], "r");
    long id = -1;
    if (f && fscanf (f, "%ld", &id) != 1)
      id = -1;
    if (f)
      fclose (f);
    if (id >= 0)
      return id;
  }
  return -1;
}

static void
syscalls_start (void)
{
  long id = syscall_tracepoint_id ();
  if (id < 0 || n_syscall_fds > 0)
    return;
  DIR *d = opendir ("/proc/self/task");
  struct dirent *e;
  while (d && (e = readdir (d)) && n_syscall_fds < MAX_COUNTED_THREADS) {
    pid_t tid = (pid_t) atoi (e->d_name);
    if (tid <= 0 || (tid == getpid () && !count_main_thread))
      continue;
    struct perf_event_attr a = { .type = PERF_TYPE_TRACEPOINT, .size = sizeof a,
      .config = (guint64) id, .disabled = 0, .exclude_hv = 1 };
    int fd = (int) syscall (SYS_perf_event_open, &a, tid, -1, -1, 0);
    if (fd >= 0)
      syscall_fds[n_syscall_fds++] = fd;
  }
  if (d)
    closedir (d);
}

/* System calls made since syscalls_start() by the threads it saw; -1 if
 * they could not be counted. */
static double
syscalls_since_start (void)
{
  if (n_syscall_fds == 0)
    return -1;
  guint64 sum = 0;
  for (guint i = 0; i < n_syscall_fds; i++) {
    guint64 v = 0;
    if (read (syscall_fds[i], &v, sizeof v) == sizeof v)
      sum += v;
  }
  return (double) sum;
}

static guint64
now_ns (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (guint64) ts.tv_sec * 1000000000u + (guint64) ts.tv_nsec;
}

static double
cpu_seconds (void)
{
  struct rusage ru;
  getrusage (RUSAGE_SELF, &ru);
  return (double) ru.ru_utime.tv_sec + (double) ru.ru_utime.tv_usec / 1e6
      + (double) ru.ru_stime.tv_sec + (double) ru.ru_stime.tv_usec / 1e6;
}

/* Steady state starts after the first fifth of the buffers (caps, pools,
 * first-touch page faults and late joiners are behind us by then). */
static guint
warm_up (guint count)
{
  return count / 5;
}

/* The video size of @size bytes of RGBA, or FALSE if it is not one. */
static gboolean
video_dims (gsize size, guint *w, guint *h)
{
  static const guint dims[][2] = { { 1920, 1080 }, { 3840, 2160 }, { 1280, 720 } };
  for (guint i = 0; i < G_N_ELEMENTS (dims); i++)
    if ((gsize) dims[i][0] * dims[i][1] * 4 == size) {
      *w = dims[i][0];
      *h = dims[i][1];
      return TRUE;
    }
  return FALSE;
}

/* NV12 frames (the fd-record cases): videotestsrc-nv12 renders into the
 * pool downstream offers (slots, shm); memfd-nv12 the same into the memfd
 * pool datahubsink offers with offer-memfd=true (fd records). */
static gboolean
is_nv12 (const char *upstream)
{
  return g_str_has_suffix (upstream, "-nv12");
}

static gboolean
nv12_dims (gsize size, guint *w, guint *h)
{
  static const guint dims[][2] = { { 1920, 1080 }, { 3840, 2160 } };
  for (guint i = 0; i < G_N_ELEMENTS (dims); i++)
    if ((gsize) dims[i][0] * dims[i][1] * 3 / 2 == size) {
      *w = dims[i][0];
      *h = dims[i][1];
      return TRUE;
    }
  return FALSE;
}

/* Rendered by videotestsrc (stamped after rendering), not filled by us. */
static gboolean
is_video (const char *upstream)
{
  return g_str_has_prefix (upstream, "videotestsrc") || is_nv12 (upstream);
}

/* The source part of the producer pipeline, named "in".  videotestsrc
 * renders white RGBA (every byte 0xff) into the pool downstream offers. */
static gboolean
is_app (const char *upstream)
{
  return g_str_has_prefix (upstream, "app-");
}

static gchar *
upstream_desc (const char *upstream, gsize size, guint count, guint rate)
{
  guint w, h;
  if (is_app (upstream)) {
    /* an application thread pushes (push_from_application): at most four
     * buffers queued in appsrc, as the application harness of issue 12 */
    gchar *caps = video_dims (size, &w, &h)
        ? g_strdup_printf ("video/x-raw,format=RGBA,width=%u,height=%u,framerate=0/1", w, h)
        : g_strdup ("application/x-bench");
    gchar *d = g_strdup_printf ("appsrc name=in format=time block=true max-bytes=%"
        G_GSIZE_FORMAT " caps=%s", 4 * size, caps);
    g_free (caps);
    (void) count;
    (void) rate;
    return d;
  }
  if (is_nv12 (upstream) && nv12_dims (size, &w, &h))
    return g_strdup_printf ("videotestsrc name=in num-buffers=%u pattern=solid-color "
        "foreground-color=0xffffffff is-live=%s ! video/x-raw,format=NV12,width=%u,"
        "height=%u,framerate=%u/1", count, rate ? "true" : "false", w, h, rate);
  if (g_str_equal (upstream, "videotestsrc") && video_dims (size, &w, &h))
    return g_strdup_printf ("videotestsrc name=in num-buffers=%u pattern=solid-color "
        "foreground-color=0xffffffff is-live=%s ! video/x-raw,format=RGBA,width=%u,"
        "height=%u,framerate=%u/1", count, rate ? "true" : "false", w, h, rate);
  return g_strdup_printf ("fakesrc name=in num-buffers=%u sizetype=fixed sizemax=%"
      G_GSIZE_FORMAT " filltype=nothing can-activate-pull=false signal-handoffs=true ! "
      "application/x-bench", count, size);
}

static gchar *
sink_desc (const char *transport, const char *upstream, const char *channel, gsize size)
{
  /* memfd: the slots carry descriptors; upstream renders into memfds */
  if (g_str_equal (transport, "datahub") && g_str_equal (upstream, "memfd-nv12"))
    return g_strdup_printf ("datahubsink name=out channel=%s slots=16 offer-memfd=true "
        "wait-for-consumer=true max-consumers=16", channel);
  if (g_str_equal (transport, "datahub"))
    return g_strdup_printf ("datahubsink name=out channel=%s slots=16 slot-size=%"
        G_GSIZE_FORMAT " wait-for-consumer=true max-consumers=16", channel, size);
  return g_strdup_printf ("shmsink name=out socket-path=/tmp/%s shm-size=%" G_GSIZE_FORMAT
      " wait-for-connection=true sync=false", channel, size * 32 + (1u << 20));
}

static gchar *
src_desc (const char *transport, const char *channel)
{
  if (g_str_equal (transport, "datahub"))
    return g_strdup_printf ("datahubsrc name=src channel=%s", channel);
  return g_strdup_printf ("shmsrc name=src socket-path=/tmp/%s is-live=true", channel);
}

/* ---- the producer side ----------------------------------------------------- */

/* Stamps each buffer in the producer's streaming thread: sequence number
 * and send time in the first 16 bytes; the rest is the fill pattern
 * (fakesrc, which has no content of its own) or videotestsrc's white.
 * Paced to @period ns for fakesrc (videotestsrc paces itself when live). */
typedef struct {
  guint64 next, period, seq;
  gboolean fill;
  guint warm;
  unsigned long allocs_at_warm;
  double cpu_at_warm;
} Stamper;

/* In one process (the ceiling) the consumer side counts system calls
 * over its own window; the producer side must not start the count. */
static gboolean stamper_counts_syscalls = TRUE;

static void
stamp (Stamper *st, GstBuffer *b)
{
  if (st->seq == st->warm) {
    st->allocs_at_warm = allocations_now ();
    st->cpu_at_warm = cpu_seconds ();
    if (stamper_counts_syscalls)
      syscalls_start ();
  }
  if (st->period) {
    /* a producer held back (wait-for-consumer, a slow start) must not
     * burst to catch up: re-anchor when more than a period late */
    guint64 now = now_ns ();
    if (st->next + st->period < now)
      st->next = now;
    st->next += st->period;
    struct timespec ts = { (time_t) (st->next / 1000000000u),
      (long) (st->next % 1000000000u) };
    clock_nanosleep (CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
  }
  GstMapInfo map;
  if (!gst_buffer_map (b, &map, GST_MAP_WRITE))
    return;
  if (st->fill)
    memset (map.data + 16, (int) (st->seq & 0xff), map.size - 16);
  /* atomic: the main thread reads the count while this one may push */
  guint64 hdr[2] = { __atomic_fetch_add (&st->seq, 1, __ATOMIC_RELAXED), now_ns () };
  memcpy (map.data, hdr, sizeof hdr);
  gst_buffer_unmap (b, &map);
}

static void
on_fill (GstElement *src, GstBuffer *b, GstPad *pad, gpointer user)
{
  (void) src;
  (void) pad;
  stamp (user, b);
}

static GstPadProbeReturn
on_rendered (GstPad *pad, GstPadProbeInfo *info, gpointer user)
{
  (void) pad;
  stamp (user, GST_PAD_PROBE_INFO_BUFFER (info));
  return GST_PAD_PROBE_OK;
}

/* Stamps what @in produces: fakesrc fills and paces its buffers in its
 * handoff; videotestsrc's rendered buffers are stamped by a pad probe. */
static void
attach_stamper (Stamper *st, GstElement *in, gboolean video, guint count, guint rate)
{
  *st = (Stamper) { 0, !video && rate ? 1000000000u / rate : 0, 0, !video,
    warm_up (count), 0, 0 };
  if (GST_IS_APP_SRC (in))
    return; /* the application thread calls stamp() itself */
  if (video) {
    GstPad *pad = gst_element_get_static_pad (in, "src");
    gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, on_rendered, st, NULL);
    gst_object_unref (pad);
  } else {
    g_signal_connect (in, "handoff", G_CALLBACK (on_fill), st);
  }
}

/* The application side of the app-* cases: a thread of its own pushes
 * @total buffers into appsrc "in", each stamped (and filled with its
 * pattern) by @st.  Where the buffers come from: app-malloc, system memory
 * (gst_buffer_new_allocate (NULL, ...)); app-allocator, the allocator the
 * ALLOCATION query downstream offers (what an application allocating
 * "from the negotiated allocator" does); app-pool, a buffer pool of its
 * own (the copy case). */
typedef struct {
  GstElement *in;
  const char *upstream;
  gsize size;
  guint total;
  Stamper *st;
  GThread *thread;
} Pusher;

static gpointer
push_from_application (gpointer data)
{
  Pusher *pu = data;
  GstAllocator *alloc = NULL;
  GstAllocationParams params;
  gst_allocation_params_init (&params);
  GstBufferPool *pool = NULL;
  GstCaps *caps = NULL;
  g_object_get (pu->in, "caps", &caps, NULL);
  if (g_str_equal (pu->upstream, "app-allocator")) {
    GstQuery *q = gst_query_new_allocation (caps, TRUE);
    GstPad *pad = gst_element_get_static_pad (pu->in, "src");
    if (gst_pad_peer_query (pad, q) && gst_query_get_n_allocation_params (q) > 0)
      gst_query_parse_nth_allocation_param (q, 0, &alloc, &params);
    gst_object_unref (pad);
    gst_query_unref (q);
  } else if (g_str_equal (pu->upstream, "app-pool")) {
    pool = gst_buffer_pool_new ();
    GstStructure *config = gst_buffer_pool_get_config (pool);
    gst_buffer_pool_config_set_params (config, caps, (guint) pu->size, 4, 0);
    gst_buffer_pool_set_config (pool, config);
    gst_buffer_pool_set_active (pool, TRUE);
  }
  for (guint i = 0; i < pu->total; i++) {
    GstBuffer *b = NULL;
    if (pool) {
      if (gst_buffer_pool_acquire_buffer (pool, &b, NULL) != GST_FLOW_OK)
        break;
    } else {
      b = gst_buffer_new_allocate (alloc, pu->size, &params);
    }
    stamp (pu->st, b);
    if (gst_app_src_push_buffer (GST_APP_SRC (pu->in), b) != GST_FLOW_OK)
      break; /* flushing: the driver is done */
  }
  gst_app_src_end_of_stream (GST_APP_SRC (pu->in));
  if (pool) {
    gst_buffer_pool_set_active (pool, FALSE);
    gst_object_unref (pool);
  }
  if (alloc)
    gst_object_unref (alloc);
  if (caps)
    gst_caps_unref (caps);
  return NULL;
}

static void
pusher_run (gpointer data)
{
  Pusher *pu = data;
  if (is_app (pu->upstream))
    pu->thread = g_thread_new ("application", push_from_application, pu);
}

/* Sets up the application thread of @upstream (none for elements), and
 * starts it now if @now (else pusher_run does, once the pipeline plays). */
static void
pusher_start (Pusher *pu, GstElement *in, const char *upstream, gsize size, guint total,
    Stamper *st, gboolean now)
{
  *pu = (Pusher) { in, upstream, size, total, st, NULL };
  if (now)
    pusher_run (pu);
}

static void
pusher_join (Pusher *pu)
{
  if (pu->thread)
    g_thread_join (pu->thread);
  pu->thread = NULL;
}

/* Per buffer @part of @whole steady-state buffers, or -1 if not counted. */
static double
per_buffer (double part, double whole)
{
  return part < 0 ? -1 : part / whole;
}

/* Prints "cpu_ns_per_buffer allocs_per_buffer bytes_copied
 * syscalls_per_buffer" (bytes copied by the sink: datahub only, -1 for
 * shm). */
static int
produce (const char *transport, const char *upstream, gsize size, guint count, guint rate,
    const char *channel)
{
  gchar *sink = sink_desc (transport, upstream, channel, size);
  /* a few extra buffers: shmsrc never sees EOS, and consumers stop at
   * their count */
  gchar *up = upstream_desc (upstream, size, count + 16, rate);
  gchar *desc = g_strdup_printf ("%s ! %s", up, sink);
  GstElement *pipe = gst_parse_launch (desc, NULL);
  GstElement *in = gst_bin_get_by_name (GST_BIN (pipe), "in");
  GstElement *out = gst_bin_get_by_name (GST_BIN (pipe), "out");
  Stamper st;
  attach_stamper (&st, in, is_video (upstream), count, rate);
  gst_element_set_state (pipe, GST_STATE_PLAYING);
  Pusher pu;
  pusher_start (&pu, in, upstream, size, count + 16, &st, TRUE);
  /* until EOS, or until the driver closes our stdin (the consumers are
   * done: with wait-for-consumer the last buffers would wait for ever) */
  for (;;) {
    GstMessage *m = gst_bus_timed_pop_filtered (GST_ELEMENT_BUS (pipe), 50 * GST_MSECOND,
        GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
    if (m) {
      gst_message_unref (m);
      break;
    }
    struct pollfd in_fd = { 0, POLLIN, 0 };
    if (poll (&in_fd, 1, 0) > 0)
      break;
  }
  guint64 seq = __atomic_load_n (&st.seq, __ATOMIC_RELAXED);
  guint64 steady = seq > st.warm ? seq - st.warm : 1;
  double cpu_ns = (cpu_seconds () - st.cpu_at_warm) * 1e9 / (double) steady;
  double allocs = (double) (allocations_now () - st.allocs_at_warm) / (double) steady;
  double syscalls = per_buffer (syscalls_since_start (), (double) steady);
  gint64 copied = -1;
  if (g_str_equal (transport, "datahub")) {
    GstStructure *stats;
    guint64 v = 0;
    g_object_get (out, "stats", &stats, NULL);
    gst_structure_get_uint64 (stats, "bytes-copied", &v);
    gst_structure_free (stats);
    copied = (gint64) v;
  }
  printf ("%.0f %.2f %" G_GINT64_FORMAT " %.2f\n", cpu_ns, allocs, copied, syscalls);
  fflush (stdout);
  /* shmsrc never sees EOS: keep the producer up until the consumers are
   * done (the driver closes our stdin then) */
  char c;
  while (read (0, &c, 1) > 0)
    ;
  gst_element_set_state (pipe, GST_STATE_NULL); /* a blocked push returns */
  pusher_join (&pu);
  gst_object_unref (in);
  gst_object_unref (out);
  gst_object_unref (pipe);
  g_free (desc);
  g_free (up);
  g_free (sink);
  return 0;
}

/* ---- the consumer side ------------------------------------------------------ */

static int
cmp_u64 (const void *a, const void *b)
{
  guint64 x = *(const guint64 *) a, y = *(const guint64 *) b;
  return x < y ? -1 : x > y;
}

/* What the consumer's streaming thread records per buffer. */
typedef struct {
  gsize size;
  guint count, bad;
  atomic_uint got;
  gsize white;                /* videotestsrc: bytes after the header up to here
                                 are white (0xff RGBA, 235 NV12 luma), 0: the
                                 stamped pattern */
  gboolean nv12;              /* and after it NV12 chroma (128) */
  guint64 *lat, *arrival;
  unsigned long allocs_at_warm, allocs_at_end;
  double cpu_at_warm, cpu_at_end, syscalls_at_end;
} Tally;

/* Are all @n bytes at @p (@n a multiple of 8) @want?  The consumer's
 * hot loop: one compare per eight bytes. */
static gboolean
bytes_are (const guint8 *p, gsize n, guint8 want)
{
  guint64 word = want * G_GUINT64_CONSTANT (0x0101010101010101), w;
  for (gsize k = 0; k + 8 <= n; k += 8) {
    memcpy (&w, p + k, 8);
    if (w != word)
      return FALSE;
  }
  return TRUE;
}

/* Checks and times one buffer. */
static void
tally_buffer (Tally *t, GstBuffer *b)
{
  guint got = atomic_load (&t->got);
  if (got >= t->count)
    return;
  if (got == warm_up (t->count)) {
    t->allocs_at_warm = allocations_now ();
    t->cpu_at_warm = cpu_seconds ();
    syscalls_start ();
  }
  GstMapInfo map;
  gst_buffer_map (b, &map, GST_MAP_READ);
  guint64 now = now_ns (), hdr[2] = { 0, now };
  if (map.size != t->size) {
    t->bad++;
  } else {
    memcpy (hdr, map.data, sizeof hdr);
    guint8 want = t->white ? (t->nv12 ? 235 : 0xff) : (guint8) (hdr[0] & 0xff);
    gsize luma_end = t->white ? t->white : map.size;
    /* every byte, eight at a time (sizes are multiples of 8): the frame
     * (or NV12's luma), then NV12's chroma (128) */
    if (!bytes_are (map.data + 16, luma_end - 16, want)
        || !bytes_are (map.data + luma_end, map.size - luma_end, 128))
      t->bad++;
  }
  gst_buffer_unmap (b, &map);
  t->lat[got] = now - hdr[1];
  t->arrival[got] = now;
  if (got + 1 == t->count) {
    t->allocs_at_end = allocations_now ();
    t->cpu_at_end = cpu_seconds ();
    t->syscalls_at_end = syscalls_since_start ();
  }
  atomic_store (&t->got, got + 1);
}

/* Runs in the src's streaming thread (fakesink handoff): no hand-off to
 * another thread, so the figures are the transport's, not a queue's. */
static void
on_handoff (GstElement *sink, GstBuffer *b, GstPad *pad, gpointer user)
{
  (void) sink;
  (void) pad;
  tally_buffer (user, b);
}

/* Prints "received rate p50_us p99_us max_us bad cpu_ns allocs
 * transport_p50 transport_p99 syscalls" for the steady state (syscalls
 * per buffer, -1 if not counted); the transport's part
 * of the latency (commit -> src received, from datahubsrc's stats over its
 * last 256 buffers) is -1 where unknown. */
static void
report_tally (Tally *t, double transport_p50, double transport_p99)
{
  guint got = atomic_load (&t->got);
  if (got < t->count) {
    t->allocs_at_end = allocations_now ();
    t->cpu_at_end = cpu_seconds ();
    t->syscalls_at_end = syscalls_since_start ();
  }
  guint warm = warm_up (t->count);
  if (got <= warm + 1) {
    printf ("%u 0 0 0 0 %u 0 0 -1 -1 -1\n", got, t->bad);
    return;
  }
  guint n = got - warm;
  double rate = (double) (n - 1) / ((double) (t->arrival[got - 1] - t->arrival[warm]) / 1e9);
  guint64 *l = t->lat + warm;
  qsort (l, n, sizeof l[0], cmp_u64);
  printf ("%u %.0f %.1f %.1f %.1f %u %.0f %.2f %.1f %.1f %.2f\n", got, rate,
      (double) l[n / 2] / 1e3, (double) l[n * 99 / 100] / 1e3, (double) l[n - 1] / 1e3,
      t->bad, (t->cpu_at_end - t->cpu_at_warm) * 1e9 / n,
      (double) (t->allocs_at_end - t->allocs_at_warm) / n, transport_p50, transport_p99,
      t->syscalls_at_end >= 0 ? t->syscalls_at_end / n : -1.0);
}

/* What the consumer checks: "white" (RGBA), "nv12" (white NV12) or
 * "pattern" (the stamped fill). */
static const char *
check_of (const char *upstream, gsize size)
{
  (void) size;
  return is_nv12 (upstream) ? "nv12" : g_str_equal (upstream, "videotestsrc") ? "white"
      : "pattern";
}

static Tally *
tally_new (gsize size, guint count, const char *check)
{
  Tally *t = g_new0 (Tally, 1);
  t->size = size;
  t->count = count;
  t->nv12 = g_str_equal (check, "nv12");
  t->white = t->nv12 ? size * 2 / 3 : g_str_equal (check, "white") ? size : 0;
  t->lat = g_new0 (guint64, count);
  t->arrival = g_new0 (guint64, count);
  return t;
}

static void
tally_free (Tally *t)
{
  g_free (t->lat);
  g_free (t->arrival);
  g_free (t);
}

/* Waits until @t has @count buffers or nothing arrived for 5 s. */
static void
wait_tally (Tally *t)
{
  guint last_seen = 0;
  guint64 last_change = now_ns ();
  while (atomic_load (&t->got) < t->count && now_ns () - last_change < 5000000000u) {
    g_usleep (1000);
    guint g = atomic_load (&t->got);
    if (g != last_seen) {
      last_seen = g;
      last_change = now_ns ();
    }
  }
}

/* The application side of a consumer: this thread pulls from appsink
 * "check" until @t has its count or nothing came for 5 s. */
static void
pull_into_tally (GstElement *check, Tally *t)
{
  guint64 last_change = now_ns ();
  while (atomic_load (&t->got) < t->count && now_ns () - last_change < 5000000000u) {
    GstSample *sample = gst_app_sink_try_pull_sample (GST_APP_SINK (check), 100 * GST_MSECOND);
    if (!sample) {
      if (gst_app_sink_is_eos (GST_APP_SINK (check)))
        break;
      continue;
    }
    tally_buffer (t, gst_sample_get_buffer (sample));
    gst_sample_unref (sample);
    last_change = now_ns ();
  }
}

/* The consumer's end of the pipeline: fakesink handing off in the
 * streaming thread, or (@app) appsink pulled by the application. */
static gchar *
check_desc (gboolean app, gsize size)
{
  /* an application keeps 64 small buffers queued, or 4 video frames */
  return app ? g_strdup_printf ("appsink name=check sync=false max-buffers=%u",
      size > (1u << 20) ? 4u : 64u)
      : g_strdup ("fakesink name=check sync=false signal-handoffs=true");
}

/* Plays @pipe and checks what reaches "check"; @start (in-process runs)
 * starts the application thread once the pipeline plays. */
static void
run_checks (GstElement *pipe, GstElement *check, Tally *t, gboolean app,
    void (*start) (gpointer), gpointer start_data)
{
  if (!app)
    g_signal_connect (check, "handoff", G_CALLBACK (on_handoff), t);
  gst_element_set_state (pipe, GST_STATE_PLAYING);
  if (start)
    start (start_data);
  if (app)
    pull_into_tally (check, t);
  else
    wait_tally (t);
}

static int
consume (const char *transport, gsize size, guint count, const char *channel,
    const char *white, gboolean app)
{
  count_main_thread = app;
  gchar *src = src_desc (transport, channel);
  gchar *check_part = check_desc (app, size);
  gchar *desc = g_strdup_printf ("%s ! %s", src, check_part);
  g_free (check_part);
  GstElement *pipe = gst_parse_launch (desc, NULL);
  GstElement *check = gst_bin_get_by_name (GST_BIN (pipe), "check");
  Tally *t = tally_new (size, count, white);
  run_checks (pipe, check, t, app, NULL, NULL);
  double p50 = -1, p99 = -1;
  if (g_str_equal (transport, "datahub")) {
    GstElement *dh = gst_bin_get_by_name (GST_BIN (pipe), "src");
    GstStructure *stats;
    g_object_get (dh, "stats", &stats, NULL);
    gst_structure_get_double (stats, "latency-p50-us", &p50);
    gst_structure_get_double (stats, "latency-p99-us", &p99);
    gst_structure_free (stats);
    gst_object_unref (dh);
  }
  report_tally (t, p50, p99);
  gst_element_set_state (pipe, GST_STATE_NULL);
  gst_object_unref (check);
  gst_object_unref (pipe);
  tally_free (t);
  g_free (desc);
  g_free (src);
  return 0;
}

/* The ceiling: the same source and the same checks in one pipeline, no
 * transport in between.  Prints a consumer line, then a producer line. */
static int
in_process (const char *upstream, gsize size, guint count, guint rate)
{
  gboolean app = is_app (upstream);
  count_main_thread = app;
  stamper_counts_syscalls = FALSE;
  gchar *up = upstream_desc (upstream, size, count, rate);
  /* application threads: the same number of threads as across processes */
  gchar *check_part = check_desc (app, size);
  gchar *desc = g_strdup_printf ("%s ! %s%s", up, app ? "queue ! " : "", check_part);
  g_free (check_part);
  GstElement *pipe = gst_parse_launch (desc, NULL);
  GstElement *in = gst_bin_get_by_name (GST_BIN (pipe), "in");
  GstElement *check = gst_bin_get_by_name (GST_BIN (pipe), "check");
  Stamper st;
  attach_stamper (&st, in, is_video (upstream), count, rate);
  Tally *t = tally_new (size, count, check_of (upstream, size));
  Pusher pu;
  pusher_start (&pu, in, upstream, size, count, &st, FALSE);
  run_checks (pipe, check, t, app, pusher_run, &pu);
  report_tally (t, -1, -1);
  /* one process: the consumer line has the CPU, allocations and syscalls */
  printf ("0 0 0 0\n");
  gst_element_set_state (pipe, GST_STATE_NULL);
  pusher_join (&pu);
  gst_object_unref (in);
  gst_object_unref (check);
  gst_object_unref (pipe);
  tally_free (t);
  g_free (desc);
  g_free (up);
  return 0;
}

/* ---- the driver ------------------------------------------------------------- */

typedef struct {
  guint got;
  double rate, p50, p99, max, cpu, allocs, transport_p50, transport_p99, syscalls;
  guint bad;
} ConsumerResult;

static gboolean
parse_consumer (const gchar *line, ConsumerResult *r)
{
  return line && sscanf (line, "%u %lf %lf %lf %lf %u %lf %lf %lf %lf %lf", &r->got, &r->rate,
      &r->p50, &r->p99, &r->max, &r->bad, &r->cpu, &r->allocs, &r->transport_p50,
      &r->transport_p99, &r->syscalls) == 11;
}

/* Latency breakdowns of the rate-limited datahub cases, printed after the
 * table. */
static GString *breakdown;

static FILE *csv;

static GPid
spawn (gchar **argv, gint *in_fd, gint *out_fd)
{
  GPid pid = 0;
  GError *err = NULL;
  if (!g_spawn_async_with_pipes (NULL, argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL,
          &pid, in_fd, out_fd, NULL, &err)) {
    fprintf (stderr, "spawn %s: %s\n", argv[1], err->message);
    exit (1);
  }
  return pid;
}

static gchar *
read_all_fd (gint fd)
{
  GString *s = g_string_new (NULL);
  char buf[512];
  ssize_t n;
  while ((n = read (fd, buf, sizeof buf)) > 0)
    g_string_append_len (s, buf, n);
  close (fd);
  return g_string_free (s, FALSE);
}

/* One case: a producer process and @consumers consumer processes, or the
 * in-process ceiling (@transport "in-process").  Returns the slowest
 * consumer's figures. */
static ConsumerResult
run_case (const char *self, const char *transport, const char *upstream, const char *label,
    gsize size, guint count, guint rate, guint consumers)
{
  gchar *channel = g_strdup_printf ("gstbench-%d-%s", (int) getpid (), transport);
  gchar *sz = g_strdup_printf ("%" G_GSIZE_FORMAT, size), *n = g_strdup_printf ("%u", count);
  gchar *r = g_strdup_printf ("%u", rate);
  const char *white = check_of (upstream, size);
  ConsumerResult worst = { G_MAXUINT, 1e30, 0, 0, 0, 0, 0, -1, -1, -1, 0 };
  double prod_cpu = 0, prod_allocs = 0, prod_syscalls = -1;
  gint64 copied = -1;
  if (g_str_equal (transport, "in-process")) {
    gchar *argv[] = { (gchar *) self, (gchar *) "inproc", (gchar *) upstream, sz, n, r, NULL };
    gint out_fd;
    GPid pid = spawn (argv, NULL, &out_fd);
    gchar *out = read_all_fd (out_fd);
    waitpid (pid, NULL, 0);
    parse_consumer (out, &worst);
    g_free (out);
  } else {
    gchar *pargv[] = { (gchar *) self, (gchar *) "produce", (gchar *) transport,
      (gchar *) upstream, sz, n, r, channel, NULL };
    gchar *cargv[] = { (gchar *) self, (gchar *) "consume", (gchar *) transport, sz, n,
      channel, (gchar *) white, (gchar *) (is_app (upstream) ? "appsink" : "fakesink"), NULL };
    gint prod_in, prod_out;
    GPid prod = spawn (pargv, &prod_in, &prod_out);
    g_usleep (G_USEC_PER_SEC / 2); /* shmsrc needs the socket to exist */
    GPid *kids = g_new0 (GPid, consumers);
    gint *outs = g_new0 (gint, consumers);
    for (guint i = 0; i < consumers; i++)
      kids[i] = spawn (cargv, NULL, &outs[i]);
    ConsumerResult sum = { 0 };
    sum.syscalls = 0;
    for (guint i = 0; i < consumers; i++) {
      gchar *out = read_all_fd (outs[i]);
      waitpid (kids[i], NULL, 0);
      ConsumerResult c = { 0 };
      if (parse_consumer (out, &c)) {
        worst.got = MIN (worst.got, c.got);
        worst.rate = MIN (worst.rate, c.rate);
        worst.p50 = MAX (worst.p50, c.p50);
        worst.p99 = MAX (worst.p99, c.p99);
        worst.max = MAX (worst.max, c.max);
        worst.bad += c.bad;
        worst.transport_p50 = c.transport_p50;
        worst.transport_p99 = c.transport_p99;
        sum.cpu += c.cpu;
        sum.allocs += c.allocs;
        sum.syscalls = sum.syscalls < 0 || c.syscalls < 0 ? -1 : sum.syscalls + c.syscalls;
      } else {
        worst.got = 0;
        worst.rate = 0;
      }
      g_free (out);
    }
    worst.cpu = sum.cpu / consumers;
    worst.allocs = sum.allocs / consumers;
    worst.syscalls = sum.syscalls < 0 ? -1 : sum.syscalls / consumers;
    close (prod_in); /* the producer may stop now */
    gchar *pout = read_all_fd (prod_out);
    waitpid (prod, NULL, 0);
    if (sscanf (pout, "%lf %lf %" G_GINT64_FORMAT " %lf", &prod_cpu, &prod_allocs, &copied,
            &prod_syscalls) != 4)
      prod_cpu = prod_allocs = prod_syscalls = -1;
    g_free (pout);
    g_free (kids);
    g_free (outs);
  }
  if (worst.got == G_MAXUINT)
    worst.got = 0;
  if (rate && consumers == 1 && worst.transport_p50 >= 0)
    g_string_append_printf (breakdown, "| %s | %.1f / %.1f | %.1f / %.1f | %.1f |\n", label,
        worst.p50, worst.p99, worst.transport_p50, worst.transport_p99,
        worst.p50 - worst.transport_p50);
  gchar *copied_text = copied < 0 ? g_strdup ("–")
      : g_strdup_printf ("%" G_GINT64_FORMAT, copied);
  gchar *prod_sc = prod_syscalls < 0 ? g_strdup ("–") : g_strdup_printf ("%.2f", prod_syscalls);
  gchar *cons_sc = worst.syscalls < 0 ? g_strdup ("–") : g_strdup_printf ("%.2f", worst.syscalls);
  printf ("| %-10s | %-26s | %2u | %7u/%-7u | %10.0f | %8.1f | %7.1f | %7.1f | %8.1f "
      "| %8.0f | %8.0f | %6.2f | %6.2f | %s | %s | %s | %u |\n", transport, label, consumers,
      worst.got, count, worst.rate, worst.rate * (double) size / 1e6, worst.p50, worst.p99,
      worst.max, prod_cpu, worst.cpu, prod_allocs, worst.allocs, prod_sc, cons_sc, copied_text,
      worst.bad);
  fflush (stdout);
  if (csv) {
    fprintf (csv, "%s,\"%s\",%u,%" G_GSIZE_FORMAT ",%u,%.0f,%.1f,%.1f,%.1f,%.0f,%.0f,%.2f,%.2f,"
        "%" G_GINT64_FORMAT ",%u,%.2f,%.2f\n", transport, label, consumers, size, worst.got,
        worst.rate, worst.p50, worst.p99, worst.max, prod_cpu, worst.cpu, prod_allocs,
        worst.allocs, copied, worst.bad, prod_syscalls, worst.syscalls);
    fflush (csv);
  }
  g_free (prod_sc);
  g_free (cons_sc);
  g_free (copied_text);
  g_free (channel);
  g_free (sz);
  g_free (n);
  g_free (r);
  return worst;
}

/* --only SUBSTRING: run the cases whose label contains it */
static const char *only;

/* The ratios of each case, printed after the table. */
static GString *ratios;

static void
run_all (const char *self, const char *upstream, const char *label, gsize size,
    guint count, guint rate, guint consumers)
{
  if (only && !strstr (label, only))
    return;
  ConsumerResult dh = run_case (self, "datahub", upstream, label, size, count, rate, consumers);
  ConsumerResult shm = run_case (self, "shm", upstream, label, size, count, rate, consumers);
  ConsumerResult in = { 0 };
  if (consumers == 1)
    in = run_case (self, "in-process", upstream, label, size, count, rate, 1);
  /* a paced case is compared by latency, a flat-out one by rate */
  gchar *vs_in = consumers != 1 ? g_strdup ("–") : rate
      ? g_strdup_printf ("%+.1f µs p50", dh.p50 - in.p50)
      : g_strdup_printf ("%.2fx", in.rate > 0 ? dh.rate / in.rate : 0);
  gchar *vs_shm = rate ? g_strdup_printf ("%+.1f µs p50", dh.p50 - shm.p50)
      : g_strdup_printf ("%.2fx", shm.rate > 0 ? dh.rate / shm.rate : 0);
  gchar *cpu = g_strdup_printf ("%.0f / %.0f", dh.cpu, shm.cpu);
  g_string_append_printf (ratios, "| %s | %u | %s | %s | %s |\n", label, consumers, vs_shm,
      vs_in, cpu);
  g_free (vs_in);
  g_free (vs_shm);
  g_free (cpu);
}

int
main (int argc, char **argv)
{
  gst_init (&argc, &argv);
  if (argc >= 8 && g_str_equal (argv[1], "produce"))
    return produce (argv[2], argv[3], (gsize) g_ascii_strtoull (argv[4], NULL, 10),
        (guint) atoi (argv[5]), (guint) atoi (argv[6]), argv[7]);
  if (argc >= 8 && g_str_equal (argv[1], "consume"))
    return consume (argv[2], (gsize) g_ascii_strtoull (argv[3], NULL, 10),
        (guint) atoi (argv[4]), argv[5], argv[6],
        g_str_equal (argv[7], "appsink"));
  if (argc >= 6 && g_str_equal (argv[1], "inproc"))
    return in_process (argv[2], (gsize) g_ascii_strtoull (argv[3], NULL, 10),
        (guint) atoi (argv[4]), (guint) atoi (argv[5]));
  breakdown = g_string_new (NULL);
  ratios = g_string_new (NULL);
  gboolean quick = FALSE;
  for (int i = 1; i < argc; i++) {
    if (g_str_equal (argv[i], "--quick"))
      quick = TRUE;
    else if (g_str_equal (argv[i], "--csv") && i + 1 < argc)
      csv = fopen (argv[++i], "w");
    else if (g_str_equal (argv[i], "--only") && i + 1 < argc)
      only = argv[++i];
    else {
      fprintf (stderr, "usage: %s [--quick] [--csv FILE] [--only SUBSTRING-OF-CASE]\n"
          "one side by hand (what the driver spawns; see docs/performance.md):\n"
          "  %s produce datahub|shm UPSTREAM SIZE COUNT RATE CHANNEL   (runs until its\n"
          "      stdin closes; prints: CPU ns/buf, allocs/buf, bytes copied, syscalls/buf)\n"
          "  %s consume datahub|shm SIZE COUNT CHANNEL white|nv12|pattern fakesink|appsink\n"
          "  %s inproc UPSTREAM SIZE COUNT RATE\n"
          "UPSTREAM: fakesrc, videotestsrc, videotestsrc-nv12, memfd-nv12, app-malloc,\n"
          "app-allocator, app-pool; RATE 0 = flat out; SIZE of video cases: a frame\n",
          argv[0], argv[0], argv[0], argv[0]);
      return 2;
    }
  }
  if (csv)
    fprintf (csv, "transport,case,consumers,size,received,rate,p50_us,p99_us,max_us,"
        "producer_cpu_ns,consumer_cpu_ns,producer_allocs,consumer_allocs,bytes_copied,bad,"
        "producer_syscalls,consumer_syscalls\n");
  guint small = quick ? 20000 : 100000, frames = quick ? 120 : 600;
  const gsize k4 = 4096, k64 = 65536, hd = 1920 * 1080 * 4, uhd = 3840 * 2160 * 4;
  printf ("| transport | case | consumers | received (slowest) | buffers/s (slowest) | MB/s "
      "| p50 µs | p99 µs | max µs | producer CPU ns/buf | consumer CPU ns/buf "
      "| producer allocs/buf | consumer allocs/buf | producer syscalls/buf "
      "| consumer syscalls/buf | bytes copied by sink | bad |\n"
      "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  /* rates, latency, CPU and allocations are steady state: the first fifth
   * of each run is warm-up */
  guint fan[] = { 1, 4, 16 };
  for (guint i = 0; i < G_N_ELEMENTS (fan); i++)
    run_all (argv[0], "fakesrc", "4 KiB flat out", k4, small, 0, fan[i]);
  for (guint i = 0; i < G_N_ELEMENTS (fan); i++)
    run_all (argv[0], "fakesrc", "64 KiB flat out", k64, small / 4, 0, fan[i]);
  for (guint i = 0; i < G_N_ELEMENTS (fan); i++)
    run_all (argv[0], "videotestsrc", "1080p RGBA, videotestsrc", hd,
        frames / fan[i] * 2 + 20, 0, fan[i]);
  run_all (argv[0], "fakesrc", "1080p RGBA, plain upstream", hd, frames, 0, 1);
  for (guint i = 0; i < 2; i++)
    run_all (argv[0], "videotestsrc", "2160p RGBA, videotestsrc", uhd,
        frames / 4 / fan[i] * 2 + 20, 0, fan[i]);
  run_all (argv[0], "fakesrc", "4 KiB at 1 kHz", k4, quick ? 1000 : 3000, 1000, 1);
  run_all (argv[0], "videotestsrc", "1080p at 60 fps", hd, quick ? 60 : 300, 60, 1);
  /* what applications do: a thread pushing into appsrc, another pulling
   * from appsink (the in-process ceiling: appsrc ! queue ! appsink) */
  run_all (argv[0], "app-malloc", "4 KiB flat out, app threads", k4, small, 0, 1);
  run_all (argv[0], "app-malloc", "4 KiB at 1 kHz, app threads", k4, quick ? 1000 : 3000,
      1000, 1);
  run_all (argv[0], "app-allocator", "1080p RGBA, appsrc allocator", hd, frames, 0, 1);
  run_all (argv[0], "app-pool", "1080p RGBA, appsrc own pool", hd, frames, 0, 1);
  /* fd memory (issue 13): NV12 frames in slots vs in memfds (fd records) */
  const gsize hd12 = 1920 * 1080 * 3 / 2, uhd12 = 3840 * 2160 * 3 / 2;
  run_all (argv[0], "videotestsrc-nv12", "1080p NV12, slots", hd12, frames, 0, 1);
  run_all (argv[0], "memfd-nv12", "1080p NV12, fd records (memfd)", hd12, frames, 0, 1);
  run_all (argv[0], "videotestsrc-nv12", "2160p NV12, slots", uhd12, frames / 4, 0, 1);
  run_all (argv[0], "memfd-nv12", "2160p NV12, fd records (memfd)", uhd12, frames / 4, 0, 1);
  printf ("\nWhere datahub's latency goes at a fixed rate (one consumer):\n\n"
      "| case | stamp → consumer handoff p50 / p99 µs | of which commit → src received "
      "(transport) p50 / p99 µs | the rest, p50 µs (producer pipeline before commit, "
      "consumer pipeline after create) |\n|---|---|---|---|\n%s", breakdown->str);
  g_string_free (breakdown, TRUE);
  printf ("\nRatios (datahub against shmsink/shmsrc and the in-process ceiling, same run; "
      "rate for flat-out cases, p50 latency difference for paced ones):\n\n"
      "| case | consumers | datahub vs shm | datahub vs in-process | consumer CPU ns/buf "
      "datahub / shm |\n|---|---|---|---|---|\n%s", ratios->str);
  g_string_free (ratios, TRUE);
  if (csv)
    fclose (csv);
  return 0;
}
