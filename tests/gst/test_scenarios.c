/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Scenario tests (issue 10): the pipelines users run, in two processes or
 * two pipelines, with syncing sinks, live and non-live producers, consumers
 * that join late or start first, default properties unless the scenario is
 * about a property.  Every frame's content is checked (checksums against the
 * producer's own frames or a reference run of the same deterministic
 * source, or an index carried in the payload), not only counts.
 *
 * Robust on a loaded machine: no tight timings, generous bounds for
 * behavioural differences, measured figures printed, every wait bounded.
 * Spawned processes die with their test (PR_SET_PDEATHSIG), also when it
 * fails; the runner removes the shm objects of finished tests.
 *
 * Test sources:
 * - videotestsrc pattern=smpte75 horizontal-speed=2: a deterministic frame
 *   sequence with a period of width/2 frames; a frame's content gives its
 *   number modulo the period, which must agree with its buffer offset
 *   (videotestsrc numbers its frames in the offset).
 * - appsrc applications whose payload starts with the buffer's index and
 *   continues with bytes that depend on the index: a torn or stale buffer
 *   does not check. */
#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>
#include <gst/check/gstcheck.h>
#include <glib/gstdio.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* An appsink that behaves like a video sink (GstVideoSink defaults:
 * max-lateness 20 ms, qos): late frames are dropped, as autovideosink
 * does. */
#define VIDEO_SINK_LIKE "appsink name=out sync=true max-lateness=20000000 qos=true"

/* ---- bookkeeping: what a failing test leaves behind --------------------- */

typedef struct {
  GPid pid;
  gchar *what;     /* the command line, for messages */
  gchar *log;      /* stdout and stderr */
  gboolean reaped;
  gint status;     /* exit code, or 128 + signal */
} Proc;

static GPtrArray *procs;     /* every process this test started */
static GPtrArray *channels;  /* every channel this test used */
static gchar *tmpdir;

static gchar *shm_leftovers (const gchar *ch);

static void
remove_leftovers (const gchar *ch)
{
  gchar *left = shm_leftovers (ch);
  if (!left)
    return;
  gchar **names = g_strsplit (left, " ", -1);
  for (gchar **n = names; *n; n++) {
    gchar *shm = g_strdup_printf ("/%s", *n);
    shm_unlink (shm);
    g_free (shm);
  }
  g_strfreev (names);
  g_free (left);
}

static void
remove_tmpdir (void)
{
  if (!tmpdir)
    return;
  GDir *d = g_dir_open (tmpdir, 0, NULL);
  const gchar *n;
  while (d && (n = g_dir_read_name (d))) {
    gchar *p = g_build_filename (tmpdir, n, NULL);
    g_unlink (p);
    g_free (p);
  }
  if (d)
    g_dir_close (d);
  g_rmdir (tmpdir);
  g_clear_pointer (&tmpdir, g_free);
}

static void
proc_free (gpointer data)
{
  Proc *p = data;
  g_free (p->what);
  g_free (p->log);
  g_free (p);
}

/* Kills what is still running, removes the channels' shm objects: after a
 * passing test (checked teardown) and at exit (CK_FORK=no).  In fork mode
 * a failing test ends in _exit(): see remove_stale_objects. */
static void
cleanup (void)
{
  for (guint i = 0; procs && i < procs->len; i++) {
    Proc *p = g_ptr_array_index (procs, i);
    if (!p->reaped) {
      kill (p->pid, SIGKILL);
      waitpid (p->pid, NULL, 0);
      p->reaped = TRUE;
    }
  }
  for (guint i = 0; channels && i < channels->len; i++)
    remove_leftovers (g_ptr_array_index (channels, i));
  if (procs)
    g_ptr_array_set_size (procs, 0);
  if (channels)
    g_ptr_array_set_size (channels, 0);
  remove_tmpdir ();
}

/* In fork mode check ends a failing test with _exit(): nothing of the test
 * runs after the failure.  Its processes die with it (PR_SET_PDEATHSIG);
 * its shm objects are removed here, in the runner, before and after the
 * tests: every "[datahub.]scn-*-PID[.@]*" whose test process is gone. */
static gboolean
pid_gone (const gchar *digits)
{
  gchar *end;
  gint64 pid = g_ascii_strtoll (digits, &end, 10);
  return end != digits && (*end == '\0' || *end == '.' || *end == '@') && pid > 0
      && kill ((pid_t) pid, 0) != 0 && errno == ESRCH;
}

/* "scn-WHAT-PID..." of a test process that is gone. */
static gboolean
stale_name (const gchar *name)
{
  if (!g_str_has_prefix (name, "scn-"))
    return FALSE;
  gchar *base = g_strndup (name, strcspn (name, ".@"));
  const gchar *dash = strrchr (base, '-');
  gboolean gone = dash && pid_gone (dash + 1);
  g_free (base);
  return gone;
}

static void
remove_stale_objects (void)
{
  DIR *d = opendir ("/dev/shm");
  struct dirent *e;
  while (d && (e = readdir (d))) {
    const gchar *n = e->d_name;
    if (!stale_name (g_str_has_prefix (n, "datahub.") ? n + strlen ("datahub.") : n))
      continue;
    gchar *shm = g_strdup_printf ("/%s", n);
    shm_unlink (shm);
    g_free (shm);
  }
  if (d)
    closedir (d);
  /* and the log directories of failed tests */
  GDir *tmp = g_dir_open (g_get_tmp_dir (), 0, NULL);
  const gchar *n;
  while (tmp && (n = g_dir_read_name (tmp))) {
    if (!g_str_has_prefix (n, "datahub-scenarios-") || !pid_gone (n + strlen ("datahub-scenarios-")))
      continue;
    gchar *saved = tmpdir;
    tmpdir = g_build_filename (g_get_tmp_dir (), n, NULL);
    remove_tmpdir ();
    tmpdir = saved;
  }
  if (tmp)
    g_dir_close (tmp);
}

static void
ensure_bookkeeping (void)
{
  static gboolean registered;
  if (!procs) {
    procs = g_ptr_array_new_with_free_func (proc_free);
    channels = g_ptr_array_new_with_free_func (g_free);
  }
  if (!tmpdir) {
    gchar *tmpl = g_strdup_printf ("datahub-scenarios-%d.XXXXXX", (int) getpid ());
    tmpdir = g_dir_make_tmp (tmpl, NULL);
    g_free (tmpl);
  }
  if (!registered) {
    atexit (cleanup);
    registered = TRUE;
  }
}

/* A channel name unique to this test (and run). */
static const gchar *
chan (const gchar *what)
{
  ensure_bookkeeping ();
  gchar *c = g_strdup_printf ("scn-%s-%d", what, (int) getpid ());
  g_ptr_array_add (channels, c);
  return c;
}

static gdouble
now_s (void)
{
  return (gdouble) g_get_monotonic_time () / G_USEC_PER_SEC;
}

static void
sleep_s (gdouble s)
{
  g_usleep ((gulong) (s * G_USEC_PER_SEC));
}

/* ---- processes ------------------------------------------------------------ */

static void
child_setup (gpointer data)
{
  (void) data;
  prctl (PR_SET_PDEATHSIG, SIGKILL); /* dies with the test, even on a timeout */
}

/* Starts gst-launch-1.0 [-e] PIPELINE with its output (line-buffered) in a
 * log file. */
G_GNUC_PRINTF (2, 3) static Proc *
proc_spawn (gboolean eos_on_interrupt, const gchar *fmt, ...)
{
  ensure_bookkeeping ();
  va_list ap;
  va_start (ap, fmt);
  gchar *pipeline = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  gchar *cmd = g_strdup_printf ("stdbuf -oL -eL gst-launch-1.0%s %s",
      eos_on_interrupt ? " -e" : "", pipeline);
  gchar **argv = NULL;
  GError *err = NULL;
  fail_unless (g_shell_parse_argv (cmd, NULL, &argv, &err), "%s: %s", cmd,
      err ? err->message : "?");
  Proc *p = g_new0 (Proc, 1);
  p->what = g_strdup_printf ("gst-launch-1.0%s %s", eos_on_interrupt ? " -e" : "", pipeline);
  p->log = g_strdup_printf ("%s/proc-%u.log", tmpdir, procs->len);
  int fd = open (p->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  fail_unless (fd >= 0, "%s: %s", p->log, g_strerror (errno));
  fail_unless (g_spawn_async_with_fds (NULL, argv, NULL,
          G_SPAWN_SEARCH_PATH | G_SPAWN_DO_NOT_REAP_CHILD, child_setup, NULL, &p->pid,
          -1, fd, fd, &err), "spawn %s: %s", cmd, err ? err->message : "?");
  close (fd);
  g_ptr_array_add (procs, p);
  g_strfreev (argv);
  g_free (cmd);
  g_free (pipeline);
  return p;
}

/* Exit code (or 128 + signal), or -1 if still running after @timeout_ms. */
static gint
proc_wait (Proc *p, guint timeout_ms)
{
  gint64 end = g_get_monotonic_time () + (gint64) timeout_ms * 1000;
  while (!p->reaped) {
    int st;
    pid_t r = waitpid (p->pid, &st, WNOHANG);
    if (r == p->pid) {
      p->reaped = TRUE;
      p->status = WIFEXITED (st) ? WEXITSTATUS (st) : 128 + WTERMSIG (st);
      break;
    }
    if (g_get_monotonic_time () > end)
      return -1;
    g_usleep (20000);
  }
  return p->status;
}

static void
proc_kill (Proc *p)
{
  if (!p->reaped) {
    kill (p->pid, SIGKILL);
    proc_wait (p, 5000);
  }
}

static gchar *
proc_output (Proc *p)
{
  gchar *text = NULL;
  if (!g_file_get_contents (p->log, &text, NULL, NULL))
    text = g_strdup ("");
  return text;
}

/* The end of the output, for failure messages. */
static gchar *
proc_tail (Proc *p)
{
  gchar *text = proc_output (p);
  gsize len = strlen (text);
  gchar *tail = g_strdup_printf ("[%s]\n...%s", p->what, text + (len > 1500 ? len - 1500 : 0));
  g_free (text);
  return tail;
}

static gboolean
proc_says (Proc *p, const gchar *what)
{
  gchar *text = proc_output (p);
  gboolean found = strstr (text, what) != NULL;
  g_free (text);
  return found;
}

/* Waits until the output contains @what. */
static gboolean
proc_wait_output (Proc *p, const gchar *what, guint timeout_ms)
{
  gint64 end = g_get_monotonic_time () + (gint64) timeout_ms * 1000;
  while (!proc_says (p, what)) {
    if (g_get_monotonic_time () > end || proc_wait (p, 0) >= 0)
      return proc_says (p, what);
    g_usleep (20000);
  }
  return TRUE;
}

/* SIGINT (or another signal), then the exit code within @timeout_ms, and
 * the time it took. */
static gint
proc_stop (Proc *p, int sig, guint timeout_ms, gdouble *took)
{
  gdouble t0 = now_s ();
  kill (p->pid, sig);
  gint st = proc_wait (p, timeout_ms);
  if (took)
    *took = now_s () - t0;
  return st;
}

/* ---- /dev/shm ----------------------------------------------------------- */

static gboolean
names_channel (const gchar *entry, const gchar *ch)
{
  if (g_str_has_prefix (entry, "datahub."))
    entry += strlen ("datahub.");
  gsize len = strlen (ch);
  return strncmp (entry, ch, len) == 0
      && (entry[len] == '\0' || entry[len] == '.' || entry[len] == '@');
}

/* Names in /dev/shm of the channel's objects ("datahub.CH", with any
 * ".suffix" or "@suffix", with or without the "datahub." prefix), space
 * separated, or NULL. */
static gchar *
shm_leftovers (const gchar *ch)
{
  GString *out = g_string_new (NULL);
  DIR *d = opendir ("/dev/shm");
  struct dirent *e;
  while (d && (e = readdir (d))) {
    if (names_channel (e->d_name, ch))
      g_string_append_printf (out, "%s%s", out->len ? " " : "", e->d_name);
  }
  if (d)
    closedir (d);
  return g_string_free (out, out->len == 0);
}

static void
assert_no_leftovers (const gchar *ch, guint timeout_ms)
{
  gint64 end = g_get_monotonic_time () + (gint64) timeout_ms * 1000;
  gchar *left;
  while ((left = shm_leftovers (ch)) && g_get_monotonic_time () < end) {
    g_free (left);
    g_usleep (50000);
  }
  fail_unless (left == NULL, "left behind in /dev/shm: %s", left);
}

static gboolean
wait_block (const gchar *ch, guint timeout_ms)
{
  gchar *path = g_strdup_printf ("/dev/shm/datahub.%s", ch);
  gint64 end = g_get_monotonic_time () + (gint64) timeout_ms * 1000;
  gboolean ok;
  while (!(ok = g_file_test (path, G_FILE_TEST_EXISTS)) && g_get_monotonic_time () < end)
    g_usleep (20000);
  g_free (path);
  return ok;
}

/* ---- in-process pipelines ---------------------------------------------- */

G_GNUC_PRINTF (1, 2) static GstElement *
pipeline_new (const gchar *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  gchar *desc = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  GError *err = NULL;
  GstElement *pipe = gst_parse_launch (desc, &err);
  fail_unless (pipe != NULL && err == NULL, "%s: %s", desc, err ? err->message : "?");
  g_free (desc);
  return pipe;
}

/* A borrowed pointer: the pipeline keeps the element alive. */
static GstElement *
el (GstElement *pipe, const gchar *name)
{
  GstElement *e = gst_bin_get_by_name (GST_BIN (pipe), name);
  fail_unless (e != NULL, "no element %s", name);
  gst_object_unref (e);
  return e;
}

typedef struct {
  GstElement *e;
  GstState state;
  GMutex lock;
  GCond cond;
  gboolean done;
} StateJob;

static gpointer
state_thread (gpointer data)
{
  StateJob *job = data;
  gst_element_set_state (job->e, job->state);
  g_mutex_lock (&job->lock);
  job->done = TRUE;
  g_cond_signal (&job->cond);
  g_mutex_unlock (&job->lock);
  return NULL;
}

/* Sets a state from another thread and waits at most @timeout_ms for
 * set_state to return: a pipeline that cannot stop fails the test instead
 * of hanging it.  Returns the time taken, or -1. */
static gdouble
set_state_within (GstElement *e, GstState state, guint timeout_ms)
{
  StateJob *job = g_new0 (StateJob, 1);
  job->e = e;
  job->state = state;
  g_mutex_init (&job->lock);
  g_cond_init (&job->cond);
  gdouble t0 = now_s ();
  GThread *t = g_thread_new ("set-state", state_thread, job);
  gint64 end = g_get_monotonic_time () + (gint64) timeout_ms * 1000;
  g_mutex_lock (&job->lock);
  while (!job->done && g_cond_wait_until (&job->cond, &job->lock, end))
    ;
  gboolean done = job->done;
  g_mutex_unlock (&job->lock);
  if (!done)
    return -1; /* the thread and the job stay: the test fails now */
  g_thread_join (t);
  g_mutex_clear (&job->lock);
  g_cond_clear (&job->cond);
  g_free (job);
  return now_s () - t0;
}

static void
stop_pipeline (GstElement *pipe, const gchar *what)
{
  gdouble took = set_state_within (pipe, GST_STATE_NULL, 10000);
  fail_unless (took >= 0, "stopping the %s pipeline hung (> 10 s in set_state NULL)", what);
}

static void
free_pipeline (GstElement *pipe, const gchar *what)
{
  stop_pipeline (pipe, what);
  gst_object_unref (pipe);
}

/* The first error posted on @pipe's bus so far, or NULL. */
static gchar *
bus_error (GstElement *pipe)
{
  GstBus *bus = gst_element_get_bus (pipe);
  GstMessage *m;
  gchar *text = NULL;
  while (!text && (m = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR))) {
    GError *err;
    gchar *dbg;
    gst_message_parse_error (m, &err, &dbg);
    text = g_strdup_printf ("%s (%s)", err->message, dbg ? dbg : "");
    g_error_free (err);
    g_free (dbg);
    gst_message_unref (m);
  }
  gst_object_unref (bus);
  return text;
}

static void
assert_no_bus_error (GstElement *pipe, const gchar *what)
{
  gchar *e = bus_error (pipe);
  fail_unless (e == NULL, "%s posted an error: %s", what, e);
}

static gboolean
wait_bus_eos (GstElement *pipe, guint timeout_ms, gchar **error)
{
  GstBus *bus = gst_element_get_bus (pipe);
  GstMessage *m = gst_bus_timed_pop_filtered (bus, timeout_ms * GST_MSECOND,
      GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  gboolean eos = m && GST_MESSAGE_TYPE (m) == GST_MESSAGE_EOS;
  if (m && !eos && error) {
    GError *err;
    gst_message_parse_error (m, &err, NULL);
    *error = g_strdup (err->message);
    g_error_free (err);
  }
  if (m)
    gst_message_unref (m);
  gst_object_unref (bus);
  return eos;
}

/* A field of the element's "stats" structure as an integer; @found (may
 * be NULL) says whether it is there. */
static guint64
stat_get (GstElement *e, const gchar *field, gboolean *found)
{
  GstStructure *s = NULL;
  g_object_get (e, "stats", &s, NULL);
  const GValue *v = s ? gst_structure_get_value (s, field) : NULL;
  guint64 out = 0;
  if (v) {
    GValue u = G_VALUE_INIT;
    g_value_init (&u, G_TYPE_UINT64);
    if (g_value_transform (v, &u))
      out = g_value_get_uint64 (&u);
    g_value_unset (&u);
  }
  if (found)
    *found = v != NULL;
  if (s)
    gst_structure_free (s);
  return out;
}

/* Waits until the sink reports a consumer (the test's own synchronisation,
 * not wait-for-consumer). */
static gboolean
wait_consumers (GstElement *sink, guint n, guint timeout_ms)
{
  gint64 end = g_get_monotonic_time () + (gint64) timeout_ms * 1000;
  while (stat_get (sink, "consumers", NULL) < n) {
    if (g_get_monotonic_time () > end)
      return FALSE;
    g_usleep (10000);
  }
  return TRUE;
}

/* ---- payloads ------------------------------------------------------------ */

static gchar *
md5_of (GstBuffer *buf)
{
  GstMapInfo map;
  fail_unless (gst_buffer_map (buf, &map, GST_MAP_READ));
  gchar *s = g_compute_checksum_for_data (G_CHECKSUM_MD5, map.data, map.size);
  gst_buffer_unmap (buf, &map);
  return s;
}

/* Index in the first 4 bytes (little endian), then bytes that depend on the
 * index and the position. */
static void
fill_indexed (guint8 *d, gsize size, guint32 index)
{
  for (gsize j = 0; j < size; j++)
    d[j] = (guint8) (index * 7u + j * 13u + (j >> 8));
  if (size >= 4) {
    guint32 le = GUINT32_TO_LE (index);
    memcpy (d, &le, 4);
  }
}

static gboolean
check_indexed (const guint8 *d, gsize size, guint32 *index)
{
  if (size < 4)
    return FALSE;
  guint32 le;
  memcpy (&le, d, 4);
  *index = GUINT32_FROM_LE (le);
  for (gsize j = 4; j < size; j++)
    if (d[j] != (guint8) (*index * 7u + j * 13u + (j >> 8)))
      return FALSE;
  return TRUE;
}

static GstBuffer *
indexed_buffer (gsize size, guint32 index, GstClockTime pts)
{
  GstBuffer *b = gst_buffer_new_allocate (NULL, size, NULL);
  GstMapInfo map;
  gst_buffer_map (b, &map, GST_MAP_WRITE);
  fill_indexed (map.data, size, index);
  gst_buffer_unmap (b, &map);
  GST_BUFFER_PTS (b) = pts;
  GST_BUFFER_DURATION (b) = GST_MSECOND;
  return b;
}

/* The videotestsrc source of the periodic test sequence. */
static gchar *
vsrc (const gchar *extra, const gchar *format, gint w, gint h, gint fps)
{
  return g_strdup_printf ("videotestsrc pattern=smpte75 horizontal-speed=2 %s ! "
      "video/x-raw,format=%s,width=%d,height=%d,framerate=%d/1", extra, format, w, h, fps);
}

/* A frame's number modulo the period, from its content. */
typedef struct {
  GHashTable *index_of; /* md5 -> index + 1 */
  guint period;
} Reference;

/* Runs the periodic source here for one period (width / 2 frames). */
static void
reference_init (Reference *r, const gchar *format, gint w, gint h)
{
  r->period = (guint) w / 2;
  gchar *nb = g_strdup_printf ("num-buffers=%u", r->period);
  gchar *src = vsrc (nb, format, w, h, 30);
  GstElement *pipe = pipeline_new ("%s ! appsink name=out sync=false", src);
  GstElement *out = el (pipe, "out");
  gst_element_set_state (pipe, GST_STATE_PLAYING);
  r->index_of = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  for (guint i = 0; i < r->period; i++) {
    GstSample *s = gst_app_sink_try_pull_sample (GST_APP_SINK (out), 20 * GST_SECOND);
    fail_unless (s != NULL, "reference frame %u missing", i);
    gchar *md5 = md5_of (gst_sample_get_buffer (s));
    fail_if (g_hash_table_contains (r->index_of, md5), "reference frames repeat");
    g_hash_table_insert (r->index_of, md5, GUINT_TO_POINTER (i + 1));
    gst_sample_unref (s);
  }
  free_pipeline (pipe, "reference");
  g_free (src);
  g_free (nb);
}

static gint
reference_index (Reference *r, const gchar *md5)
{
  return md5 ? (gint) GPOINTER_TO_UINT (g_hash_table_lookup (r->index_of, md5)) - 1 : -1;
}

static void
reference_clear (Reference *r)
{
  g_hash_table_unref (r->index_of);
}

/* For failure messages (check does not know GST_PTR_FORMAT); leaks. */
static gchar *
caps_text (const GstCaps *caps)
{
  return caps ? gst_caps_to_string (caps) : g_strdup ("(none)");
}

/* ---- collecting what a consumer renders ---------------------------------- */

typedef struct {
  gchar *md5;
  gsize size;
  GstClockTime pts;
  guint64 offset;
  gboolean discont;
  gdouble t;          /* when the sink rendered it (now_s) */
  GstCaps *caps;
  gboolean indexed;   /* the payload checks as an indexed payload */
  guint32 index;
  gint counter;       /* the collector's counter at that time */
} Rx;

typedef struct {
  GMutex lock;
  GCond cond;
  GPtrArray *frames;
  gboolean eos;
  gint *counter;      /* optional, sampled per frame */
} Collector;

static void
rx_free (gpointer p)
{
  Rx *f = p;
  g_free (f->md5);
  if (f->caps)
    gst_caps_unref (f->caps);
  g_free (f);
}

static GstFlowReturn
on_new_sample (GstAppSink *sink, gpointer user)
{
  Collector *c = user;
  GstSample *s = gst_app_sink_pull_sample (sink);
  if (!s)
    return GST_FLOW_OK;
  GstBuffer *b = gst_sample_get_buffer (s);
  Rx *f = g_new0 (Rx, 1);
  f->t = now_s ();
  f->size = gst_buffer_get_size (b);
  f->pts = GST_BUFFER_PTS (b);
  f->offset = GST_BUFFER_OFFSET (b);
  f->discont = GST_BUFFER_FLAG_IS_SET (b, GST_BUFFER_FLAG_DISCONT);
  f->caps = gst_sample_get_caps (s) ? gst_caps_ref (gst_sample_get_caps (s)) : NULL;
  GstMapInfo map;
  if (gst_buffer_map (b, &map, GST_MAP_READ)) {
    f->md5 = g_compute_checksum_for_data (G_CHECKSUM_MD5, map.data, map.size);
    f->indexed = check_indexed (map.data, map.size, &f->index);
    gst_buffer_unmap (b, &map);
  }
  f->counter = c->counter ? g_atomic_int_get (c->counter) : 0;
  gst_sample_unref (s);
  g_mutex_lock (&c->lock);
  g_ptr_array_add (c->frames, f);
  g_cond_broadcast (&c->cond);
  g_mutex_unlock (&c->lock);
  return GST_FLOW_OK;
}

static void
on_eos (GstAppSink *sink, gpointer user)
{
  (void) sink;
  Collector *c = user;
  g_mutex_lock (&c->lock);
  c->eos = TRUE;
  g_cond_broadcast (&c->cond);
  g_mutex_unlock (&c->lock);
}

static void
collector_init (Collector *c, GstElement *appsink)
{
  memset (c, 0, sizeof *c);
  g_mutex_init (&c->lock);
  g_cond_init (&c->cond);
  c->frames = g_ptr_array_new_with_free_func (rx_free);
  GstAppSinkCallbacks cb = { .eos = on_eos, .new_sample = on_new_sample };
  gst_app_sink_set_callbacks (GST_APP_SINK (appsink), &cb, c, NULL);
}

/* Waits for @n frames (or EOS); returns how many there are. */
static guint
collector_wait (Collector *c, guint n, guint timeout_ms)
{
  gint64 end = g_get_monotonic_time () + (gint64) timeout_ms * 1000;
  g_mutex_lock (&c->lock);
  while (c->frames->len < n && !c->eos && g_cond_wait_until (&c->cond, &c->lock, end))
    ;
  guint len = c->frames->len;
  g_mutex_unlock (&c->lock);
  return len;
}

static gboolean
collector_wait_eos (Collector *c, guint timeout_ms)
{
  gint64 end = g_get_monotonic_time () + (gint64) timeout_ms * 1000;
  g_mutex_lock (&c->lock);
  while (!c->eos && g_cond_wait_until (&c->cond, &c->lock, end))
    ;
  gboolean eos = c->eos;
  g_mutex_unlock (&c->lock);
  return eos;
}

static guint
collector_len (Collector *c)
{
  g_mutex_lock (&c->lock);
  guint len = c->frames->len;
  g_mutex_unlock (&c->lock);
  return len;
}

/* The frames so far (the Rx stay owned by the collector). */
static GPtrArray *
collector_snapshot (Collector *c)
{
  g_mutex_lock (&c->lock);
  GPtrArray *a = g_ptr_array_new ();
  for (guint i = 0; i < c->frames->len; i++)
    g_ptr_array_add (a, g_ptr_array_index (c->frames, i));
  g_mutex_unlock (&c->lock);
  return a;
}

static Rx *
collector_frame (Collector *c, guint i)
{
  g_mutex_lock (&c->lock);
  Rx *f = i < c->frames->len ? g_ptr_array_index (c->frames, i) : NULL;
  g_mutex_unlock (&c->lock);
  return f;
}

/* Waits until a frame after index @from satisfies @pred; returns its index
 * or -1. */
static gint
collector_wait_for (Collector *c, guint from, gboolean (*pred) (Rx *, gpointer),
    gpointer data, guint count, guint timeout_ms)
{
  gint64 end = g_get_monotonic_time () + (gint64) timeout_ms * 1000;
  guint seen = 0, i = from;
  g_mutex_lock (&c->lock);
  for (;;) {
    for (; i < c->frames->len; i++)
      if (pred (g_ptr_array_index (c->frames, i), data) && ++seen == count) {
        g_mutex_unlock (&c->lock);
        return (gint) i;
      }
    if (c->eos || !g_cond_wait_until (&c->cond, &c->lock, end))
      break;
  }
  g_mutex_unlock (&c->lock);
  return -1;
}

static void
collector_clear (Collector *c)
{
  g_ptr_array_unref (c->frames);
  g_mutex_clear (&c->lock);
  g_cond_clear (&c->cond);
}

/* A consumer pipeline "datahubsrc name=src channel=CH PROPS ! ... ! appsink
 * name=out ..." with a collector, started. */
typedef struct {
  GstElement *pipe, *src, *out;
  Collector c;
  gdouble started;
} Consumer;

G_GNUC_PRINTF (2, 3) static void
consumer_start (Consumer *k, const gchar *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  gchar *desc = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  k->pipe = pipeline_new ("%s", desc);
  k->src = el (k->pipe, "src");
  k->out = el (k->pipe, "out");
  collector_init (&k->c, k->out);
  k->started = now_s ();
  gst_element_set_state (k->pipe, GST_STATE_PLAYING);
  g_free (desc);
}

static void
consumer_free (Consumer *k)
{
  free_pipeline (k->pipe, "consumer");
  collector_clear (&k->c);
}

/* Every frame is one of the source's frames, its content agrees with its
 * offset, and offsets increase (strictly, or by exactly one when
 * @consecutive). */
static void
assert_periodic_frames (Reference *r, GPtrArray *frames, guint from, gboolean consecutive)
{
  guint64 prev = GST_BUFFER_OFFSET_NONE;
  for (guint i = from; i < frames->len; i++) {
    Rx *f = g_ptr_array_index (frames, i);
    gint idx = reference_index (r, f->md5);
    fail_unless (idx >= 0, "frame %u (offset %" G_GUINT64_FORMAT ", %zu bytes) is none of "
        "the producer's frames (torn or overwritten)", i, f->offset, f->size);
    if (f->offset == GST_BUFFER_OFFSET_NONE)
      continue;
    fail_unless ((guint) (f->offset % r->period) == (guint) idx,
        "frame %u has offset %" G_GUINT64_FORMAT " but the content of frame %d (mod %u)",
        i, f->offset, idx, r->period);
    if (prev != GST_BUFFER_OFFSET_NONE) {
      fail_unless (f->offset > prev, "frame %u: offset %" G_GUINT64_FORMAT " after %"
          G_GUINT64_FORMAT " (duplicate or reordered)", i, f->offset, prev);
      fail_unless (!consecutive || f->offset == prev + 1, "frame %u: offset %"
          G_GUINT64_FORMAT " after %" G_GUINT64_FORMAT " (frames lost)", i, f->offset, prev);
    }
    prev = f->offset;
  }
}

/* ---- counting buffers on a pad ------------------------------------------ */

typedef struct {
  gint count;
  GMutex lock;
  GArray *offsets;   /* offset, and the discont flag in the top bit */
} Counter;

static GstPadProbeReturn
count_buffers (GstPad *pad, GstPadProbeInfo *info, gpointer user)
{
  (void) pad;
  Counter *c = user;
  GstBuffer *b = GST_PAD_PROBE_INFO_BUFFER (info);
  g_atomic_int_inc (&c->count);
  if (c->offsets) {
    guint64 v = GST_BUFFER_OFFSET (b) | (GST_BUFFER_FLAG_IS_SET (b, GST_BUFFER_FLAG_DISCONT)
        ? G_GUINT64_CONSTANT (1) << 63 : 0);
    g_mutex_lock (&c->lock);
    g_array_append_val (c->offsets, v);
    g_mutex_unlock (&c->lock);
  }
  return GST_PAD_PROBE_OK;
}

static void
counter_attach (Counter *c, GstElement *e, const gchar *pad_name, gboolean offsets)
{
  memset (c, 0, sizeof *c);
  g_mutex_init (&c->lock);
  if (offsets)
    c->offsets = g_array_new (FALSE, FALSE, sizeof (guint64));
  GstPad *pad = gst_element_get_static_pad (e, pad_name);
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, count_buffers, c, NULL);
  gst_object_unref (pad);
}

/* Gaps in the offsets seen, and how many of them lack DISCONT. */
static void
counter_gaps (Counter *c, guint *gaps, guint *without_discont)
{
  *gaps = *without_discont = 0;
  g_mutex_lock (&c->lock);
  for (guint i = 1; i < c->offsets->len; i++) {
    guint64 prev = g_array_index (c->offsets, guint64, i - 1) & ~(G_GUINT64_CONSTANT (1) << 63);
    guint64 v = g_array_index (c->offsets, guint64, i);
    if ((v & ~(G_GUINT64_CONSTANT (1) << 63)) != prev + 1) {
      (*gaps)++;
      *without_discont += !(v >> 63);
    }
  }
  g_mutex_unlock (&c->lock);
}

/* ---- 1. late join renders at once -------------------------------------- */

/* A live producer has run 6 s; a consumer with default properties and a
 * syncing sink joins: it renders within 3 s, not after the 6 s the
 * producer's timestamps say. */
GST_START_TEST (test_late_join_live_renders_at_once)
{
  const gchar *ch = chan ("latejoin");
  Reference ref;
  reference_init (&ref, "I420", 320, 240);
  gchar *src = vsrc ("is-live=true", "I420", 320, 240, 30);
  Proc *prod = proc_spawn (FALSE, "%s ! datahubsink channel=%s", src, ch);
  fail_unless (wait_block (ch, 10000), "no block: %s", proc_tail (prod));
  sleep_s (6);
  Consumer k;
  consumer_start (&k, "datahubsrc name=src channel=%s ! " VIDEO_SINK_LIKE, ch);
  guint n = collector_wait (&k.c, 30, 9000);
  Rx *f0 = collector_frame (&k.c, 0);
  Rx *last = n ? collector_frame (&k.c, n - 1) : NULL;
  g_print ("late join, live producer ran 6 s: first frame rendered after %.2f s, "
      "%u frames in %.1f s\n", f0 ? f0->t - k.started : -1.0, n, now_s () - k.started);
  fail_unless (f0 != NULL, "nothing rendered within 9 s of joining a live producer "
      "that had run 6 s");
  fail_unless (f0->t - k.started <= 3.0, "first frame rendered %.1f s after joining "
      "(the producer had run 6 s)", f0->t - k.started);
  fail_unless (n >= 30 && last->t - f0->t <= 3.0, "after the first frame only %u "
      "frames were rendered in %.1f s (30 fps producer)", n, last->t - f0->t);
  GPtrArray *frames = collector_snapshot (&k.c);
  assert_periodic_frames (&ref, frames, 0, FALSE);
  g_ptr_array_unref (frames);
  consumer_free (&k);
  fail_unless_equals_int (proc_stop (prod, SIGINT, 10000, NULL), 0);
  reference_clear (&ref);
  g_free (src);
}
GST_END_TEST;

/* The last "rendered: N" that fpsdisplaysink reported (gst-launch -v), 0
 * before it rendered anything. */
static gint
fps_rendered (Proc *p)
{
  gchar *out = proc_output (p);
  gint n = 0;
  for (const gchar *at = out; (at = strstr (at, "rendered: ")); at++)
    n = atoi (at + strlen ("rendered: "));
  g_free (out);
  return n;
}

/* The same as users run it: gst-launch-1.0 producer, and 6 s later
 * gst-launch-1.0 -v datahubsrc ! videoconvert ! fpsdisplaysink
 * video-sink=fakesink: 4 s after the consumer started it has rendered at
 * least 30 frames. */
GST_START_TEST (test_late_join_gst_launch_fpsdisplaysink)
{
  const gchar *ch = chan ("latefps");
  gchar *src = vsrc ("is-live=true", "I420", 320, 240, 30);
  Proc *prod = proc_spawn (FALSE, "%s ! datahubsink channel=%s", src, ch);
  fail_unless (wait_block (ch, 10000), "no block: %s", proc_tail (prod));
  sleep_s (6);
  Proc *cons = proc_spawn (FALSE, "-v datahubsrc channel=%s ! videoconvert ! fpsdisplaysink "
      "video-sink=fakesink text-overlay=false", ch);
  sleep_s (4);
  gint rendered = fps_rendered (cons);
  g_print ("late join, gst-launch consumer with fpsdisplaysink: %d frames rendered 4 s after "
      "joining a producer that had run 6 s\n", rendered);
  fail_unless_equals_int (proc_stop (cons, SIGINT, 10000, NULL), 0);
  fail_unless_equals_int (proc_stop (prod, SIGINT, 10000, NULL), 0);
  fail_unless (rendered >= 30, "fpsdisplaysink rendered %d frames in the 4 s after joining "
      "(30 fps producer)", rendered);
  g_free (src);
}
GST_END_TEST;

static gboolean
rendered_after (Rx *f, gpointer data)
{
  return f->t >= *(gdouble *) data;
}

/* Waits for 10 frames rendered after @since and checks they came
 * promptly; returns the index of the first. */
static guint
expect_prompt_frames (Consumer *k, gdouble since, const gchar *phase)
{
  gint first = collector_wait_for (&k->c, 0, rendered_after, &since, 1, 6000);
  gint tenth = collector_wait_for (&k->c, 0, rendered_after, &since, 10, 6000);
  Rx *f1 = first >= 0 ? collector_frame (&k->c, (guint) first) : NULL;
  Rx *f10 = tenth >= 0 ? collector_frame (&k->c, (guint) tenth) : NULL;
  gdouble t_first = f1 ? f1->t - since : -1;
  gdouble t_tenth = f10 ? f10->t - since : -1;
  guint since_n = 0;
  GPtrArray *frames = collector_snapshot (&k->c);
  for (guint i = 0; i < frames->len; i++)
    since_n += rendered_after (g_ptr_array_index (frames, i), &since);
  g_ptr_array_unref (frames);
  g_print ("%s: first frame rendered %.2f s after the producer started, 10th after %.2f s; "
      "%u frames in %.1f s\n", phase, t_first, t_tenth, since_n, now_s () - since);
  fail_unless (first >= 0, "%s: nothing rendered within 6 s of the producer's start", phase);
  fail_unless (t_first <= 3.0, "%s: first frame rendered only %.1f s after the producer's "
      "start", phase, t_first);
  fail_unless (tenth >= 0 && t_tenth <= 4.5, "%s: only %u frames rendered in the %.1f s "
      "after the producer started (30 fps)", phase, since_n, now_s () - since);
  return (guint) first;
}

/* A consumer keeps running while the producer is killed (SIGKILL) and
 * restarted, then stopped (SIGINT) and restarted: every new producer's
 * frames are rendered promptly (its timestamps start again at 0). */
GST_START_TEST (test_late_join_after_producer_restart)
{
  const gchar *ch = chan ("restart");
  Reference ref;
  reference_init (&ref, "I420", 320, 240);
  gchar *src = vsrc ("is-live=true", "I420", 320, 240, 30);
  Consumer k;
  consumer_start (&k, "datahubsrc name=src channel=%s ! " VIDEO_SINK_LIKE, ch);
  sleep_s (1);
  gdouble t = now_s ();
  Proc *prod = proc_spawn (FALSE, "%s ! datahubsink channel=%s", src, ch);
  expect_prompt_frames (&k, t, "consumer first");
  sleep_s (1);
  fail_unless_equals_int (proc_stop (prod, SIGKILL, 5000, NULL), 128 + SIGKILL);
  sleep_s (1);
  t = now_s ();
  prod = proc_spawn (FALSE, "%s ! datahubsink channel=%s", src, ch);
  expect_prompt_frames (&k, t, "after SIGKILL and restart");
  sleep_s (1);
  fail_unless_equals_int (proc_stop (prod, SIGINT, 10000, NULL), 0);
  sleep_s (1);
  t = now_s ();
  prod = proc_spawn (FALSE, "%s ! datahubsink channel=%s", src, ch);
  expect_prompt_frames (&k, t, "after SIGINT and restart");
  GPtrArray *frames = collector_snapshot (&k.c);
  for (guint i = 0; i < frames->len; i++) {
    Rx *f = g_ptr_array_index (frames, i);
    fail_unless (reference_index (&ref, f->md5) >= 0, "frame %u is none of the producer's", i);
  }
  g_ptr_array_unref (frames);
  fail_unless_equals_int (proc_stop (prod, SIGINT, 10000, NULL), 0);
  consumer_free (&k);
  reference_clear (&ref);
  g_free (src);
}
GST_END_TEST;

/* A non-live producer (it runs ahead while nobody reads) and a consumer
 * that starts 2 s later: the consumer renders within 3 s and then every
 * frame, in order (a non-live producer is lossless for its consumers). */
GST_START_TEST (test_late_join_non_live_producer)
{
  const gchar *ch = chan ("latenonlive");
  Reference ref;
  reference_init (&ref, "I420", 160, 120);
  gchar *src = vsrc ("", "I420", 160, 120, 30);
  Proc *prod = proc_spawn (FALSE, "%s ! datahubsink channel=%s", src, ch);
  fail_unless (wait_block (ch, 10000), "no block: %s", proc_tail (prod));
  sleep_s (2);
  Consumer k;
  consumer_start (&k, "datahubsrc name=src channel=%s ! " VIDEO_SINK_LIKE, ch);
  /* losslessness is the src's business: counted before the sink, which may
   * drop a late frame on a loaded machine */
  Counter in;
  counter_attach (&in, k.src, "src", TRUE);
  guint n = collector_wait (&k.c, 30, 8000);
  Rx *f0 = collector_frame (&k.c, 0);
  Rx *last = n ? collector_frame (&k.c, n - 1) : NULL;
  g_print ("late join, non-live producer: first frame rendered after %.2f s (pts %"
      GST_TIME_FORMAT "), %u frames\n", f0 ? f0->t - k.started : -1.0,
      GST_TIME_ARGS (f0 ? f0->pts : GST_CLOCK_TIME_NONE), n);
  fail_unless (f0 != NULL, "nothing rendered within 8 s of joining a non-live producer");
  fail_unless (f0->t - k.started <= 3.0, "first frame rendered %.1f s after joining",
      f0->t - k.started);
  fail_unless (n >= 30 && last->t - f0->t <= 3.0, "after the first frame only %u frames "
      "in %.1f s", n, last->t - f0->t);
  GPtrArray *frames = collector_snapshot (&k.c);
  assert_periodic_frames (&ref, frames, 0, FALSE);
  g_ptr_array_unref (frames);
  guint gaps, nodiscont;
  counter_gaps (&in, &gaps, &nodiscont);
  fail_unless (gaps == 0, "the consumer of a non-live producer lost frames (%u gaps in the "
      "offsets after the first frame)", gaps);
  consumer_free (&k);
  fail_unless_equals_int (proc_stop (prod, SIGINT, 10000, NULL), 0);
  reference_clear (&ref);
  g_array_unref (in.offsets);
  g_free (src);
}
GST_END_TEST;

/* ---- 2. consumer started first gets everything --------------------------- */

/* Runs @launch (ending in appsink name=out) here to EOS: the md5 of every
 * buffer. */
static GPtrArray *
reference_run (const gchar *launch)
{
  GstElement *pipe = pipeline_new ("%s", launch);
  GstElement *out = el (pipe, "out");
  gst_element_set_state (pipe, GST_STATE_PLAYING);
  GPtrArray *sums = g_ptr_array_new_with_free_func (g_free);
  GstSample *s;
  while ((s = gst_app_sink_try_pull_sample (GST_APP_SINK (out), 30 * GST_SECOND))) {
    g_ptr_array_add (sums, md5_of (gst_sample_get_buffer (s)));
    gst_sample_unref (s);
  }
  free_pipeline (pipe, "reference");
  return sums;
}

static void
assert_same_sequence (GPtrArray *want, GPtrArray *got, const gchar *what)
{
  guint first_bad = G_MAXUINT;
  for (guint i = 0; i < MIN (want->len, got->len) && first_bad == G_MAXUINT; i++)
    if (g_strcmp0 (g_ptr_array_index (want, i), ((Rx *) g_ptr_array_index (got, i))->md5))
      first_bad = i;
  /* where the received stream starts in the reference, if it lost its start */
  gint starts_at = -1;
  if (got->len)
    for (guint i = 0; i < want->len && starts_at < 0; i++)
      if (!g_strcmp0 (g_ptr_array_index (want, i), ((Rx *) g_ptr_array_index (got, 0))->md5))
        starts_at = (gint) i;
  fail_unless (got->len == want->len && first_bad == G_MAXUINT, "%s: got %u of %u "
      "buffers; first differing buffer %d; the first one is reference buffer %d",
      what, got->len, want->len, first_bad == G_MAXUINT ? -1 : (gint) first_bad, starts_at);
}

#define AUDIO_CAPS "audio/x-raw,format=S16LE,rate=48000,channels=1"

/* Consumer first, then audiotestsrc num-buffers=200 (non-live, defaults):
 * all 200 buffers arrive byte-identical to a reference run, then EOS. */
GST_START_TEST (test_consumer_first_audio_every_buffer)
{
  const gchar *ch = chan ("cfaudio");
  Consumer k;
  consumer_start (&k, "datahubsrc name=src channel=%s ! appsink name=out sync=false", ch);
  sleep_s (1); /* the consumer is waiting */
  Proc *prod = proc_spawn (FALSE, "audiotestsrc num-buffers=200 ! " AUDIO_CAPS " ! "
      "datahubsink channel=%s", ch);
  gboolean eos = collector_wait_eos (&k.c, 20000);
  gint st = proc_wait (prod, 10000);
  GPtrArray *want = reference_run ("audiotestsrc num-buffers=200 ! " AUDIO_CAPS
      " ! appsink name=out sync=false");
  GPtrArray *got = collector_snapshot (&k.c);
  g_print ("consumer first, audio: received %u of 200 buffers, EOS %d\n", got->len, eos);
  fail_unless_equals_int (st, 0);
  assert_same_sequence (want, got, "consumer first, audiotestsrc num-buffers=200");
  fail_unless (eos, "no EOS");
  g_ptr_array_unref (got);
  g_ptr_array_unref (want);
  consumer_free (&k);
}
GST_END_TEST;

static gchar *
file_md5 (const gchar *path, gsize *size)
{
  gchar *data = NULL;
  *size = 0;
  if (!g_file_get_contents (path, &data, size, NULL))
    return g_strdup ("(missing)");
  gchar *sum = g_compute_checksum_for_data (G_CHECKSUM_MD5, (const guchar *) data, *size);
  g_free (data);
  return sum;
}

/* A WAV file to send without caps, and a consumer process (started and
 * prerolling) writing what it receives on @ch to another file. */
typedef struct {
  gchar *in, *got;
  Proc *cons;
} FileCopy;

static void
file_copy_start (FileCopy *f, const gchar *ch, const gchar *name)
{
  gchar *in_name = g_strdup_printf ("%s-in.wav", name);
  gchar *got_name = g_strdup_printf ("%s-got.wav", name);
  f->in = g_build_filename (tmpdir, in_name, NULL);
  f->got = g_build_filename (tmpdir, got_name, NULL);
  g_free (in_name);
  g_free (got_name);
  Proc *make = proc_spawn (FALSE, "audiotestsrc num-buffers=100 ! " AUDIO_CAPS " ! wavenc ! "
      "filesink location=%s", f->in);
  fail_unless_equals_int (proc_wait (make, 20000), 0);
  f->cons = proc_spawn (FALSE, "datahubsrc channel=%s ! filesink location=%s", ch, f->got);
  fail_unless (proc_wait_output (f->cons, "PREROLLING", 10000), "%s", proc_tail (f->cons));
  sleep_s (0.5);
}

/* Once the producer is done: the consumer ends with EOS and its file
 * equals the one sent, byte for byte. */
static void
file_copy_check (FileCopy *f, const gchar *what)
{
  gint st = proc_wait (f->cons, 20000);
  gsize got_size, in_size;
  gchar *got_sum = file_md5 (f->got, &got_size), *in_sum = file_md5 (f->in, &in_size);
  g_print ("%s: %zu of %zu bytes arrived\n", what, got_size, in_size);
  fail_unless (st == 0, "the consumer did not end with EOS (exit %d): %s", st,
      proc_tail (f->cons));
  fail_unless (g_str_equal (got_sum, in_sum), "%zu bytes arrived of %zu, or they differ",
      got_size, in_size);
  g_free (got_sum);
  g_free (in_sum);
  g_free (f->got);
  g_free (f->in);
}

/* A stream without caps (filesrc of a WAV file, no parser): the file
 * arrives byte for byte, without caps, as filesrc's buffers are. */
GST_START_TEST (test_file_without_caps_arrives_whole)
{
  const gchar *ch = chan ("nocaps");
  FileCopy f;
  file_copy_start (&f, ch, "nocaps");
  Proc *prod = proc_spawn (FALSE, "filesrc location=%s ! datahubsink channel=%s", f.in, ch);
  fail_unless_equals_int (proc_wait (prod, 20000), 0);
  file_copy_check (&f, "file without caps");
}
GST_END_TEST;

/* A source that never negotiates caps (filesrc) but allocates from
 * downstream: with slot-size set, the ALLOCATION query (caps NULL) gets
 * the sink's allocator, filesrc reads straight into slots, the sink copies
 * nothing, and the file arrives byte for byte. */
GST_START_TEST (test_file_without_caps_read_into_slots)
{
  const gchar *ch = chan ("nocaps-slots");
  FileCopy f;
  file_copy_start (&f, ch, "nocaps-slots");
  GstElement *prod = pipeline_new ("filesrc location=%s blocksize=4096 ! "
      "datahubsink name=sink channel=%s slot-size=4096", f.in, ch);
  gst_element_set_state (prod, GST_STATE_PLAYING);
  gchar *err = NULL;
  fail_unless (wait_bus_eos (prod, 20000, &err), "producer: %s", err ? err : "no EOS");
  guint64 copied = stat_get (el (prod, "sink"), "bytes-copied", NULL);
  file_copy_check (&f, "file without caps, read into slots");
  g_print ("file without caps, read into slots: sink copied %" G_GUINT64_FORMAT "\n", copied);
  fail_unless_equals_uint64 (copied, 0);
  gst_element_set_state (prod, GST_STATE_NULL);
  gst_object_unref (prod);
}
GST_END_TEST;

/* The documented consumer-first line: datahubsrc ! audioconvert ! wavenc !
 * filesink (a process) started before audiotestsrc num-buffers=200 !
 * datahubsink: the WAV file equals a reference WAV byte for byte. */
GST_START_TEST (test_consumer_first_wav_file_complete)
{
  const gchar *ch = chan ("cfwav");
  gchar *got = g_build_filename (tmpdir, "got.wav", NULL);
  gchar *want = g_build_filename (tmpdir, "want.wav", NULL);
  Proc *cons = proc_spawn (FALSE, "datahubsrc channel=%s ! audioconvert ! wavenc ! "
      "filesink location=%s", ch, got);
  fail_unless (proc_wait_output (cons, "PREROLLING", 10000), "%s", proc_tail (cons));
  sleep_s (0.5);
  Proc *prod = proc_spawn (FALSE, "audiotestsrc num-buffers=200 ! " AUDIO_CAPS " ! "
      "datahubsink channel=%s", ch);
  Proc *ref = proc_spawn (FALSE, "audiotestsrc num-buffers=200 ! " AUDIO_CAPS " ! "
      "audioconvert ! wavenc ! filesink location=%s", want);
  fail_unless_equals_int (proc_wait (ref, 20000), 0);
  fail_unless_equals_int (proc_wait (prod, 20000), 0);
  gint st = proc_wait (cons, 20000);
  gsize got_size, want_size;
  gchar *got_sum = file_md5 (got, &got_size), *want_sum = file_md5 (want, &want_size);
  g_print ("consumer first, WAV: %zu bytes written, reference %zu bytes\n", got_size, want_size);
  fail_unless (st == 0, "the consumer did not end with EOS (exit %d): %s", st,
      proc_tail (cons));
  fail_unless (g_str_equal (got_sum, want_sum), "the WAV file has %zu bytes, the reference "
      "%zu, and they differ", got_size, want_size);
  g_free (got_sum);
  g_free (want_sum);
  g_free (got);
  g_free (want);
}
GST_END_TEST;

/* Consumer first (datahubsrc ! vp8dec ! appsink), then videotestsrc
 * num-buffers=60 ! vp8enc ! datahubsink: 60 decoded frames equal to a
 * local encode-decode of the same source. */
GST_START_TEST (test_consumer_first_vp8_every_frame)
{
  const gchar *ch = chan ("cfvp8");
  Consumer k;
  consumer_start (&k, "datahubsrc name=src channel=%s ! vp8dec ! appsink name=out "
      "sync=false", ch);
  Counter encoded;
  counter_attach (&encoded, k.src, "src", FALSE);
  sleep_s (1);
  Proc *prod = proc_spawn (FALSE, "videotestsrc num-buffers=60 ! video/x-raw,width=160,"
      "height=120,framerate=30/1 ! vp8enc ! datahubsink channel=%s", ch);
  gboolean eos = collector_wait_eos (&k.c, 30000);
  gint st = proc_wait (prod, 10000);
  GPtrArray *want = reference_run ("videotestsrc num-buffers=60 ! video/x-raw,width=160,"
      "height=120,framerate=30/1 ! vp8enc ! vp8dec ! appsink name=out sync=false");
  GPtrArray *got = collector_snapshot (&k.c);
  g_print ("consumer first, vp8: received %d of 60 encoded buffers, decoded %u frames, "
      "EOS %d\n", g_atomic_int_get (&encoded.count), got->len, eos);
  fail_unless_equals_int (st, 0);
  assert_same_sequence (want, got, "consumer first, vp8enc num-buffers=60");
  fail_unless (eos, "no EOS");
  g_ptr_array_unref (got);
  g_ptr_array_unref (want);
  consumer_free (&k);
}
GST_END_TEST;

/* ---- 3. latest-value policies with default consumers --------------------- */

/* Frames keep arriving at a default consumer with a syncing sink, none
 * torn; the producer stops promptly and leaves nothing.  Upstream either
 * renders into the sink's memory (videotestsrc, a gst-launch process) or
 * pushes its own buffers (an appsrc application here). */
static void
check_latest_value (const gchar *policy, gboolean pool_upstream)
{
  gchar *what = g_strdup_printf ("%s%s", policy, pool_upstream ? "pool" : "app");
  const gchar *ch = chan (what);
  Reference ref;
  if (pool_upstream)
    reference_init (&ref, "I420", 320, 240);
  Consumer k;
  consumer_start (&k, "datahubsrc name=src channel=%s ! appsink name=out sync=true", ch);
  sleep_s (0.5);
  Proc *prod = NULL;
  GstElement *app = NULL;
  gchar *src = vsrc ("is-live=true", "I420", 320, 240, 30);
  gdouble t0 = now_s ();
  if (pool_upstream) {
    prod = proc_spawn (FALSE, "%s ! datahubsink channel=%s policy=%s", src, ch, policy);
    sleep_s (4);
  } else {
    app = pipeline_new ("appsrc name=in is-live=true do-timestamp=true format=time "
        "caps=video/x-raw,format=GRAY8,width=320,height=240,framerate=30/1 ! "
        "datahubsink channel=%s policy=%s", ch, policy);
    gst_element_set_state (app, GST_STATE_PLAYING);
    for (guint i = 0; now_s () - t0 < 4.0; i++) {
      gst_app_src_push_buffer (GST_APP_SRC (el (app, "in")),
          indexed_buffer (320 * 240, i, GST_CLOCK_TIME_NONE));
      gdouble next = t0 + (i + 1) / 30.0;
      if (next > now_s ())
        sleep_s (next - now_s ());
    }
  }
  /* from 1 s after the producer started (it needs a moment to start) */
  guint n = 0;
  GPtrArray *all = collector_snapshot (&k.c);
  for (guint i = 0; i < all->len; i++)
    n += ((Rx *) g_ptr_array_index (all, i))->t >= t0 + 1.0;
  g_print ("policy=%s, %s upstream: %u frames rendered in the last 3 s (30 fps), %u in all\n",
      policy, pool_upstream ? "videotestsrc (pool)" : "appsrc (own buffers)", n, all->len);
  g_ptr_array_unref (all);
  gdouble took = -1;
  if (prod) {
    gint st = proc_stop (prod, SIGINT, 10000, &took);
    g_print ("producer stopped by SIGINT in %.2f s (exit %d)\n", took, st);
    fail_unless (st >= 0, "the producer did not stop within 10 s of SIGINT: %s",
        proc_tail (prod));
    fail_unless (st == 0, "the producer exited %d: %s", st, proc_tail (prod));
  } else {
    took = set_state_within (app, GST_STATE_NULL, 10000);
    g_print ("producer pipeline stopped in %.2f s\n", took);
    fail_unless (took >= 0, "stopping the producer pipeline hung");
  }
  fail_unless (took <= 5.0, "stopping the producer took %.1f s", took);
  fail_unless (n >= 60, "policy=%s: only %u frames rendered in 3 s at 30 fps", policy, n);
  GPtrArray *frames = collector_snapshot (&k.c);
  for (guint i = 0; i < frames->len; i++) {
    Rx *f = g_ptr_array_index (frames, i);
    if (!pool_upstream) {
      fail_unless (f->indexed, "frame %u is torn or overwritten", i);
      fail_unless (i == 0 || f->index > ((Rx *) g_ptr_array_index (frames, i - 1))->index,
          "frame %u: index %u after %u", i, f->index,
          ((Rx *) g_ptr_array_index (frames, i - 1))->index);
    }
  }
  if (pool_upstream)
    assert_periodic_frames (&ref, frames, 0, FALSE);
  g_ptr_array_unref (frames);
  consumer_free (&k);
  if (app) {
    assert_no_bus_error (app, "the producer");
    gst_object_unref (app);
  } else {
    reference_clear (&ref);
  }
  assert_no_leftovers (ch, 3000);
  g_free (src);
  g_free (what);
}

GST_START_TEST (test_policy_single_pool_upstream)
{
  check_latest_value ("single", TRUE);
}
GST_END_TEST;

GST_START_TEST (test_policy_single_own_buffers)
{
  check_latest_value ("single", FALSE);
}
GST_END_TEST;

GST_START_TEST (test_policy_double_pool_upstream)
{
  check_latest_value ("double", TRUE);
}
GST_END_TEST;

GST_START_TEST (test_policy_double_own_buffers)
{
  check_latest_value ("double", FALSE);
}
GST_END_TEST;

/* ---- 4. caps changes with a pool-using upstream --------------------------- */

typedef struct {
  GMutex lock;
  GPtrArray *md5;   /* what reached the sink, in order */
  GPtrArray *caps;  /* with the caps it had */
} ProducedLog;

static GstPadProbeReturn
log_produced (GstPad *pad, GstPadProbeInfo *info, gpointer user)
{
  ProducedLog *log = user;
  GstBuffer *b = GST_PAD_PROBE_INFO_BUFFER (info);
  gchar *sum = md5_of (b);
  GstCaps *caps = gst_pad_get_current_caps (pad);
  g_mutex_lock (&log->lock);
  g_ptr_array_add (log->md5, sum);
  g_ptr_array_add (log->caps, caps);
  g_mutex_unlock (&log->lock);
  return GST_PAD_PROBE_OK;
}

/* The frame's (fixed) caps are within @data. */
static gboolean
has_caps (Rx *f, gpointer data)
{
  return f->caps && gst_caps_is_subset (f->caps, data);
}

/* videotestsrc (using the sink's pool) ! capsfilter ! datahubsink: the
 * capsfilter's caps change while playing, to another size, then to
 * another format.  The stream continues, every frame the consumer gets has
 * the new caps and is a correct videotestsrc frame for them (not sheared:
 * it is in a reference run with those caps) and one the producer made, in
 * order; then the producer pipeline stops and starts again on the same
 * channel.  @held_back adds a consumer that asked to hold the producer back
 * (leaky=false, 25 fps), so that the producer waits for slots: a wait is
 * what a stale wake-up flag breaks. */
static void
check_caps_change (gboolean held_back)
{
  const gchar *ch = chan (held_back ? "capsheld" : "capschange");
  const gchar *steps[3] = {
    "video/x-raw,format=I420,width=320,height=240,framerate=30/1",
    "video/x-raw,format=I420,width=160,height=120,framerate=30/1",
    "video/x-raw,format=RGBA,width=320,height=240,framerate=30/1",
  };
  Reference refs[3];
  reference_init (&refs[0], "I420", 320, 240);
  reference_init (&refs[1], "I420", 160, 120);
  reference_init (&refs[2], "RGBA", 320, 240);
  Consumer k;
  consumer_start (&k, "datahubsrc name=src channel=%s ! appsink name=out sync=true", ch);
  GstElement *slow = NULL;
  if (held_back) {
    slow = pipeline_new ("datahubsrc channel=%s leaky=false ! identity sleep-time=40000 ! "
        "fakesink", ch);
    gst_element_set_state (slow, GST_STATE_PLAYING);
  }
  GstElement *prod = pipeline_new ("videotestsrc is-live=true pattern=smpte75 "
      "horizontal-speed=2 ! capsfilter name=cf caps=%s ! datahubsink name=sink channel=%s",
      steps[0], ch);
  ProducedLog log = { .md5 = g_ptr_array_new_with_free_func (g_free),
    .caps = g_ptr_array_new_with_free_func ((GDestroyNotify) gst_caps_unref) };
  g_mutex_init (&log.lock);
  GstPad *pad = gst_element_get_static_pad (el (prod, "sink"), "sink");
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, log_produced, &log, NULL);
  gst_element_set_state (prod, GST_STATE_PLAYING);
  GstCaps *caps[3];
  for (guint s = 0; s < 3; s++) {
    caps[s] = gst_caps_from_string (steps[s]);
    if (s > 0)
      g_object_set (el (prod, "cf"), "caps", caps[s], NULL);
    gdouble t = now_s ();
    gint at = collector_wait_for (&k.c, 0, has_caps, caps[s], 20, 8000);
    g_print ("caps step %u (%s): 20 frames with these caps after %.2f s (%u frames in all, "
        "%u reached the sink)\n", s, steps[s], at >= 0 ? now_s () - t : -1.0,
        collector_len (&k.c), log.md5->len);
    gchar *err = bus_error (prod);
    fail_unless (err == NULL, "caps step %u (%s): the producer posted an error: %s", s,
        steps[s], err);
    fail_unless (at >= 0, "caps step %u (%s): the stream stopped: fewer than 20 frames with "
        "these caps within 8 s (%u frames in all, %u reached the sink)", s, steps[s],
        collector_len (&k.c), log.md5->len);
  }
  GPtrArray *frames = collector_snapshot (&k.c);
  g_mutex_lock (&log.lock);
  guint j = 0;
  for (guint i = 0; i < frames->len; i++) {
    Rx *f = g_ptr_array_index (frames, i);
    gint step = -1;
    for (guint s = 0; s < 3 && step < 0; s++)
      if (has_caps (f, caps[s]))
        step = (gint) s;
    if (step < 0)
      fail ("received frame %u has caps %s", i, caps_text (f->caps));
    fail_unless (reference_index (&refs[step], f->md5) >= 0, "received frame %u (%s) is not "
        "a correct frame for its caps (sheared or stale)", i, steps[step]);
    guint from = j;
    while (j < log.md5->len && g_strcmp0 (g_ptr_array_index (log.md5, j), f->md5))
      j++;
    fail_unless (j < log.md5->len, "received frame %u (%s) matches no produced frame after "
        "produced frame %u (stale or reordered)", i, steps[step], from);
    if (!gst_caps_is_equal (f->caps, g_ptr_array_index (log.caps, j)))
      fail ("received frame %u has caps %s, produced with %s", i, caps_text (f->caps),
          caps_text (g_ptr_array_index (log.caps, j)));
  }
  g_mutex_unlock (&log.lock);
  g_ptr_array_unref (frames);
  /* stop and start again in this process, on this channel */
  gdouble took = set_state_within (prod, GST_STATE_NULL, 10000);
  fail_unless (took >= 0, "stopping the producer after the caps changes hung");
  guint before = collector_len (&k.c);
  gst_element_set_state (prod, GST_STATE_PLAYING);
  guint n = collector_wait (&k.c, before + 10, 8000);
  gchar *err = bus_error (prod);
  fail_unless (err == NULL, "restarting the producer: %s", err);
  fail_unless (n >= before + 10, "after restarting the producer pipeline: %u frames in 8 s",
      n - before);
  stop_pipeline (prod, "producer");
  if (slow)
    free_pipeline (slow, "slow consumer");
  consumer_free (&k);
  assert_no_leftovers (ch, 3000);
  for (guint s = 0; s < 3; s++) {
    gst_caps_unref (caps[s]);
    reference_clear (&refs[s]);
  }
  gst_object_unref (pad);
  gst_object_unref (prod);
  g_ptr_array_unref (log.md5);
  g_ptr_array_unref (log.caps);
}

GST_START_TEST (test_caps_change_pool_upstream)
{
  check_caps_change (FALSE);
}
GST_END_TEST;

GST_START_TEST (test_caps_change_pool_upstream_held_back)
{
  check_caps_change (TRUE);
}
GST_END_TEST;

/* ---- 5. zero copy by memory lifetime ------------------------------------ */

#define GRAY_CAPS "video/x-raw,format=GRAY8,width=320,height=240,framerate=30/1"
#define GRAY_SIZE (320 * 240)

/* What the sink offers in the ALLOCATION query for @caps. */
typedef struct {
  GstAllocator *allocator;   /* not the system allocator, or NULL */
  GstAllocationParams params;
  GstBufferPool *pool;       /* or NULL */
  guint n_allocators, n_pools;
} Offer;

static void
query_offer (GstElement *appsrc, const gchar *caps_str, Offer *o)
{
  memset (o, 0, sizeof *o);
  GstCaps *caps = gst_caps_from_string (caps_str);
  GstQuery *q = gst_query_new_allocation (caps, TRUE);
  GstPad *pad = gst_element_get_static_pad (appsrc, "src");
  gboolean ok = gst_pad_peer_query (pad, q);
  gst_object_unref (pad);
  fail_unless (ok, "the sink did not answer the ALLOCATION query");
  o->n_allocators = gst_query_get_n_allocation_params (q);
  o->n_pools = gst_query_get_n_allocation_pools (q);
  for (guint i = 0; i < o->n_allocators && !o->allocator; i++) {
    GstAllocator *a = NULL;
    GstAllocationParams p;
    gst_query_parse_nth_allocation_param (q, i, &a, &p);
    if (a && !g_str_equal (GST_OBJECT_NAME (a), GST_ALLOCATOR_SYSMEM)
        && (!a->mem_type || !g_str_equal (a->mem_type, GST_ALLOCATOR_SYSMEM))) {
      o->allocator = a;
      o->params = p;
    } else if (a) {
      gst_object_unref (a);
    }
  }
  if (o->n_pools)
    gst_query_parse_nth_allocation_pool (q, 0, &o->pool, NULL, NULL, NULL);
  gst_query_unref (q);
  gst_caps_unref (caps);
}

static void
offer_clear (Offer *o)
{
  if (o->allocator)
    gst_object_unref (o->allocator);
  if (o->pool) {
    gst_buffer_pool_set_active (o->pool, FALSE);
    gst_object_unref (o->pool);
  }
}

/* A buffer from the offered allocator, else from the offered pool. */
static GstBuffer *
offered_buffer (Offer *o, guint32 index)
{
  GstBuffer *b = NULL;
  if (o->allocator) {
    b = gst_buffer_new_allocate (o->allocator, GRAY_SIZE, &o->params);
  } else {
    fail_unless (o->pool != NULL);
    fail_unless_equals_int (gst_buffer_pool_acquire_buffer (o->pool, &b, NULL), GST_FLOW_OK);
  }
  fail_unless (b != NULL, "no buffer from the offered allocator");
  GstMapInfo map;
  fail_unless (gst_buffer_map (b, &map, GST_MAP_WRITE));
  fail_unless (map.size >= GRAY_SIZE);
  fill_indexed (map.data, GRAY_SIZE, index);
  gst_buffer_unmap (b, &map);
  gst_buffer_set_size (b, GRAY_SIZE);
  GST_BUFFER_PTS (b) = index * GST_MSECOND;
  GST_BUFFER_DURATION (b) = GST_MSECOND;
  return b;
}

/* An application (appsrc) that allocates its buffers from the allocator
 * the sink offers writes straight into shared memory: the sink copies
 * nothing, and every buffer arrives intact. */
GST_START_TEST (test_zero_copy_downstream_allocator)
{
  const gchar *ch = chan ("allocator");
  Consumer k;
  consumer_start (&k, "datahubsrc name=src channel=%s ! appsink name=out sync=false", ch);
  GstElement *prod = pipeline_new ("appsrc name=in format=time caps=" GRAY_CAPS " ! "
      "datahubsink name=sink channel=%s", ch);
  gst_element_set_state (prod, GST_STATE_PLAYING);
  Offer o;
  query_offer (el (prod, "in"), GRAY_CAPS, &o);
  g_print ("ALLOCATION query: %u allocation params (datahub allocator: %s), %u pools\n",
      o.n_allocators, o.allocator ? GST_OBJECT_NAME (o.allocator) : "none", o.n_pools);
  fail_unless (o.allocator != NULL, "the sink offers no allocator of its own in the "
      "ALLOCATION query (%u allocation params, %u pools)", o.n_allocators, o.n_pools);
  wait_consumers (el (prod, "sink"), 1, 5000);
  for (guint32 i = 0; i < 30; i++)
    gst_app_src_push_buffer (GST_APP_SRC (el (prod, "in")), offered_buffer (&o, i));
  gst_app_src_end_of_stream (GST_APP_SRC (el (prod, "in")));
  gchar *err = NULL;
  fail_unless (wait_bus_eos (prod, 20000, &err), "producer: %s", err ? err : "no EOS");
  fail_unless (collector_wait_eos (&k.c, 20000), "the consumer got no EOS");
  guint64 copied = stat_get (el (prod, "sink"), "bytes-copied", NULL);
  GPtrArray *frames = collector_snapshot (&k.c);
  g_print ("allocator: %u of 30 buffers received, sink bytes-copied %" G_GUINT64_FORMAT "\n",
      frames->len, copied);
  fail_unless_equals_int (frames->len, 30);
  for (guint i = 0; i < frames->len; i++) {
    Rx *f = g_ptr_array_index (frames, i);
    fail_unless (f->indexed && f->index == i, "buffer %u: index %u, intact %d", i, f->index,
        f->indexed);
  }
  fail_unless_equals_uint64 (copied, 0);
  g_ptr_array_unref (frames);
  offer_clear (&o);
  free_pipeline (prod, "producer");
  consumer_free (&k);
}
GST_END_TEST;

#define KEPT 10   /* more than the 8 slots of the default ring */

typedef struct {
  GstAppSrc *in;
  Offer *offer;
  GArray *expected;   /* indices in push order */
  GQueue kept;        /* the application's last KEPT buffers */
  GMutex lock;
  GCond cond;
  gboolean done;
} KeepingApp;

/* Pushes 60 buffers, keeps the last KEPT, and every third step pushes the
 * oldest kept one again (as a frame repeater does). */
static gpointer
keeping_app (gpointer data)
{
  KeepingApp *app = data;
  for (guint32 i = 0; i < 60; i++) {
    GstBuffer *b = offered_buffer (app->offer, i);
    gst_app_src_push_buffer (app->in, gst_buffer_ref (b));
    g_array_append_val (app->expected, i);
    g_queue_push_tail (&app->kept, b);
    if (app->kept.length > KEPT)
      gst_buffer_unref (g_queue_pop_head (&app->kept));
    if (i % 3 == 2) {
      GstBuffer *again = g_queue_peek_head (&app->kept);
      guint32 idx = i + 1 - app->kept.length;
      gst_app_src_push_buffer (app->in, gst_buffer_ref (again));
      g_array_append_val (app->expected, idx);
    }
    g_usleep (2000);
  }
  gst_app_src_end_of_stream (app->in);
  g_mutex_lock (&app->lock);
  app->done = TRUE;
  g_cond_signal (&app->cond);
  g_mutex_unlock (&app->lock);
  return NULL;
}

/* An application writing into the sink's shared memory keeps references to
 * the buffers it pushed (its last 10, more than the ring's 8 slots) and
 * pushes some of them again: every buffer the consumer gets is what was
 * pushed, in order, and the kept buffers still hold what the application
 * wrote (a slot is not reused while its memory is alive). */
GST_START_TEST (test_zero_copy_kept_and_repushed_buffers)
{
  const gchar *ch = chan ("kept");
  Consumer k;
  consumer_start (&k, "datahubsrc name=src channel=%s ! appsink name=out sync=false", ch);
  GstElement *prod = pipeline_new ("appsrc name=in format=time caps=" GRAY_CAPS " ! "
      "datahubsink name=sink channel=%s", ch);
  gst_element_set_state (prod, GST_STATE_PLAYING);
  GstAppSrc *in = GST_APP_SRC (el (prod, "in"));
  Offer o;
  query_offer (GST_ELEMENT (in), GRAY_CAPS, &o);
  g_print ("kept buffers: writing into the sink's %s\n", o.allocator ? "allocator" : "pool");
  fail_unless (o.allocator || o.pool, "the sink offers no shared memory to write into");
  if (!o.allocator)
    fail_unless (gst_buffer_pool_set_active (o.pool, TRUE));
  wait_consumers (el (prod, "sink"), 1, 5000);
  KeepingApp app = { .in = in, .offer = &o,
    .expected = g_array_new (FALSE, FALSE, sizeof (guint32)) };
  g_queue_init (&app.kept);
  g_mutex_init (&app.lock);
  g_cond_init (&app.cond);
  GThread *t = g_thread_new ("app", keeping_app, &app);
  gint64 end = g_get_monotonic_time () + 20 * G_USEC_PER_SEC;
  g_mutex_lock (&app.lock);
  while (!app.done && g_cond_wait_until (&app.cond, &app.lock, end))
    ;
  gboolean done = app.done;
  g_mutex_unlock (&app.lock);
  fail_unless (done, "the application blocked writing into the sink's memory while it kept "
      "%d buffers (after %u pushes)", KEPT, app.expected->len);
  g_thread_join (t);
  gchar *err = NULL;
  fail_unless (wait_bus_eos (prod, 20000, &err), "producer: %s", err ? err : "no EOS");
  fail_unless (collector_wait_eos (&k.c, 20000), "the consumer got no EOS");
  GPtrArray *frames = collector_snapshot (&k.c);
  guint bad = 0, first_bad = 0;
  for (guint i = 0; i < MIN (frames->len, app.expected->len); i++) {
    Rx *f = g_ptr_array_index (frames, i);
    if (!f->indexed || f->index != g_array_index (app.expected, guint32, i))
      if (bad++ == 0)
        first_bad = i;
  }
  /* the application's own buffers */
  guint kept_bad = 0, pos = 0;
  for (GList *l = app.kept.head; l; l = l->next, pos++) {
    GstMapInfo map;
    guint32 idx;
    gst_buffer_map (l->data, &map, GST_MAP_READ);
    if (!check_indexed (map.data, GRAY_SIZE, &idx) || idx != 60 - KEPT + pos)
      kept_bad++;
    gst_buffer_unmap (l->data, &map);
  }
  g_print ("kept buffers: %u of %u received, %u not what was pushed; %u of %d kept buffers "
      "overwritten; sink bytes-copied %" G_GUINT64_FORMAT "\n", frames->len,
      app.expected->len, bad, kept_bad, KEPT, stat_get (el (prod, "sink"), "bytes-copied",
          NULL));
  fail_unless_equals_int (frames->len, app.expected->len);
  fail_unless (bad == 0, "%u received buffers are not what was pushed; first: buffer %u "
      "(expected index %u, got %u, intact %d)", bad, first_bad,
      g_array_index (app.expected, guint32, first_bad),
      ((Rx *) g_ptr_array_index (frames, first_bad))->index,
      ((Rx *) g_ptr_array_index (frames, first_bad))->indexed);
  fail_unless (kept_bad == 0, "%u of the application's %d kept buffers were overwritten "
      "after they were pushed", kept_bad, KEPT);
  g_queue_clear_full (&app.kept, (GDestroyNotify) gst_buffer_unref);
  g_array_unref (app.expected);
  g_ptr_array_unref (frames);
  offer_clear (&o);
  free_pipeline (prod, "producer");
  consumer_free (&k);
}
GST_END_TEST;

/* ---- 6. handover replays nothing ----------------------------------------- */

#define APP_CAPS "application/x-datahub-test"

static const gsize handover_sizes[11] = { 100, 100, 100, 5000, 100, 100, 100, 50000,
  100, 100, 100 };

/* One run: consumer first, default properties (the first buffer creates
 * the block with 4096-byte slots), sizes that force two handovers.  The
 * test holds the buffers after the first until the consumer is attached,
 * so this is about the handovers, not about consumers starting first.
 * Returns NULL or what went wrong. */
static gchar *
handover_run (guint run)
{
  gchar *what = g_strdup_printf ("handover%u", run);
  const gchar *ch = chan (what);
  Consumer k;
  consumer_start (&k, "datahubsrc name=src channel=%s ! appsink name=out sync=false", ch);
  GstElement *prod = pipeline_new ("appsrc name=in format=time caps=" APP_CAPS " ! "
      "datahubsink name=sink channel=%s", ch);
  gst_element_set_state (prod, GST_STATE_PLAYING);
  gchar *problem = NULL;
  /* the first buffer creates the block; the rest follow once the consumer
   * is attached (the test's synchronisation, not wait-for-consumer) */
  gst_app_src_push_buffer (GST_APP_SRC (el (prod, "in")),
      indexed_buffer (handover_sizes[0], 0, 0));
  if (!wait_consumers (el (prod, "sink"), 1, 10000))
    problem = g_strdup_printf ("run %u: the consumer did not attach within 10 s", run);
  for (guint32 i = 1; !problem && i < 11; i++) {
    /* at an application's pace: the consumer has caught up at each handover */
    g_usleep (20000);
    gst_app_src_push_buffer (GST_APP_SRC (el (prod, "in")),
        indexed_buffer (handover_sizes[i], i, i * GST_MSECOND));
  }
  gst_app_src_end_of_stream (GST_APP_SRC (el (prod, "in")));
  gboolean eos = !problem && collector_wait_eos (&k.c, 10000);
  GPtrArray *frames = collector_snapshot (&k.c);
  GString *seq = g_string_new (NULL);
  gboolean ok = eos && frames->len == 11;
  for (guint i = 0; i < frames->len; i++) {
    Rx *f = g_ptr_array_index (frames, i);
    if (f->indexed)
      g_string_append_printf (seq, "%u ", f->index);
    else
      g_string_append (seq, "(torn) ");
    ok = ok && f->indexed && f->index == i && f->size == handover_sizes[i];
  }
  if (!problem && !ok)
    problem = g_strdup_printf ("run %u: received [%s]%s", run, seq->str, eos ? "" : " no EOS");
  g_string_free (seq, TRUE);
  g_ptr_array_unref (frames);
  free_pipeline (prod, "producer");
  consumer_free (&k);
  gchar *left = shm_leftovers (ch);
  if (!problem && left)
    problem = g_strdup_printf ("run %u: left behind %s", run, left);
  g_free (left);
  g_free (what);
  return problem;
}

/* appsrc pushes sizes 100,100,100,5000,100,100,100,50000,100,100,100: the
 * consumer receives indices 0..10 once each, in order, in each of 20 runs
 * (the replay showed in about a third of runs). */
GST_START_TEST (test_handover_delivers_each_buffer_once)
{
  GString *bad = g_string_new (NULL);
  guint n_bad = 0;
  for (guint run = 0; run < 20; run++) {
    gchar *problem = handover_run (run);
    if (problem) {
      n_bad++;
      g_string_append_printf (bad, "\n  %s", problem);
      g_free (problem);
    }
  }
  g_print ("handover: %u of 20 runs wrong%s\n", n_bad, bad->str);
  fail_unless (n_bad == 0, "%u of 20 runs wrong:%s", n_bad, bad->str);
  g_string_free (bad, TRUE);
}
GST_END_TEST;

static gboolean
has_index (Rx *f, gpointer data)
{
  return f->indexed && f->index == GPOINTER_TO_UINT (data);
}

/* One run: 100-byte buffers, a 5000-byte one (handover), a 50000-byte one
 * (second handover), then 100-byte ones every 20 ms; with @new_caps the
 * two big buffers come with new caps (block=2, block=3).  A consumer joins
 * after the second handover.  Returns NULL or what went wrong. */
static gchar *
late_joiner_run (guint run, gboolean new_caps)
{
  gchar *what = g_strdup_printf ("hojoin%s%u", new_caps ? "caps" : "", run);
  const gchar *ch = chan (what);
  GstElement *prod = pipeline_new ("appsrc name=in format=time caps=" APP_CAPS
      ",block=(int)1 ! datahubsink name=sink channel=%s", ch);
  GstAppSrc *in = GST_APP_SRC (el (prod, "in"));
  gst_element_set_state (prod, GST_STATE_PLAYING);
  GstCaps *newest = gst_caps_from_string (new_caps ? APP_CAPS ",block=(int)3" : APP_CAPS
      ",block=(int)1");
  Consumer k = { NULL };
  for (guint32 i = 0; i < 40; i++) {
    if (new_caps && (i == 3 || i == 6)) {
      GstCaps *c = gst_caps_from_string (i == 3 ? APP_CAPS ",block=(int)2" : APP_CAPS
          ",block=(int)3");
      gst_app_src_set_caps (in, c);
      gst_caps_unref (c);
    }
    gsize size = i == 3 ? 5000 : i == 6 ? 50000 : 100;
    gst_app_src_push_buffer (in, indexed_buffer (size, i, i * 20 * GST_MSECOND));
    if (i == 15)
      consumer_start (&k, "datahubsrc name=src channel=%s ! appsink name=out sync=false", ch);
    g_usleep (20000);
  }
  gint last = collector_wait_for (&k.c, 0, has_index, GUINT_TO_POINTER (39), 1, 5000);
  GPtrArray *frames = collector_snapshot (&k.c);
  GString *seq = g_string_new (NULL);
  gboolean ok = last >= 0 && frames->len > 0;
  for (guint j = 0; j < frames->len && j < 6; j++) {
    Rx *f = g_ptr_array_index (frames, j);
    gchar *c = f->caps ? gst_caps_to_string (f->caps) : g_strdup ("none");
    g_string_append_printf (seq, "%d (%s) ", f->indexed ? (gint) f->index : -1, c);
    g_free (c);
  }
  for (guint j = 0; j < frames->len; j++) {
    Rx *f = g_ptr_array_index (frames, j);
    /* start=latest: it joined after buffer 15 was pushed */
    ok = ok && f->indexed && f->index >= 14 && f->caps && gst_caps_is_equal (f->caps, newest)
        && (j == 0 || f->index > ((Rx *) g_ptr_array_index (frames, j - 1))->index);
  }
  gchar *problem = ok ? NULL : g_strdup_printf ("run %u: received %u buffers, starting %s%s",
      run, frames->len, seq->str, last >= 0 ? "" : "; buffer 39 never came");
  g_string_free (seq, TRUE);
  g_ptr_array_unref (frames);
  gst_caps_unref (newest);
  consumer_free (&k);
  free_pipeline (prod, "producer");
  g_free (what);
  return problem;
}

/* A consumer that attaches after handovers starts with the newest block's
 * newest buffers (start=latest: it joins after buffer 15 was pushed; 14 is
 * allowed, the sink may not have written 15 yet) and caps, never with an
 * old block's last buffer or caps, nor with the newest block's backlog;
 * 3 runs with the same caps throughout, 3 with new caps at each handover. */
GST_START_TEST (test_handover_late_joiner_starts_on_new_block)
{
  GString *bad = g_string_new (NULL);
  guint n_bad = 0;
  for (guint run = 0; run < 6; run++) {
    gchar *problem = late_joiner_run (run, run >= 3);
    if (problem) {
      n_bad++;
      g_string_append_printf (bad, "\n  %s%s", run >= 3 ? "new caps, " : "", problem);
      g_free (problem);
    }
  }
  g_print ("late joiner after handovers: %u of 6 runs wrong%s\n", n_bad, bad->str);
  fail_unless (n_bad == 0, "%u of 6 runs wrong:%s", n_bad, bad->str);
  g_string_free (bad, TRUE);
}
GST_END_TEST;

/* ---- 7. clean stop while a slow consumer holds the producer back --------- */

/* Consumer "datahubsrc ! identity sleep-time=50000 ! fakesink" (a
 * process), producer "videotestsrc is-live=true ! datahubsink" (a
 * process), SIGINT to the producer after 3 s: it exits 0 promptly,
 * nothing of the channel remains, the consumer never says the producer
 * died, and with -e it gets EOS and exits 0. */
static void
check_clean_stop (gboolean eos, const gchar *src_props)
{
  const gchar *ch = chan (eos ? "stopeos" : "stop");
  Proc *cons = proc_spawn (FALSE, "datahubsrc channel=%s %s ! identity sleep-time=50000 ! "
      "fakesink", ch, src_props);
  fail_unless (proc_wait_output (cons, "PREROLLING", 10000), "%s", proc_tail (cons));
  Proc *prod = proc_spawn (eos, "videotestsrc is-live=true ! video/x-raw,width=320,"
      "height=240 ! datahubsink channel=%s", ch);
  fail_unless (wait_block (ch, 10000), "no block: %s", proc_tail (prod));
  sleep_s (3);
  gdouble took;
  gint st = proc_stop (prod, SIGINT, 10000, &took);
  gchar *left = shm_leftovers (ch);
  g_print ("clean stop%s%s: producer exit %d after %.2f s; in /dev/shm right after: %s\n",
      eos ? " (-e)" : "", src_props, st, took, left ? left : "nothing");
  g_free (left);
  fail_unless (st >= 0, "the producer did not exit within 10 s of SIGINT: %s",
      proc_tail (prod));
  fail_unless (st == 0, "the producer exited %d: %s", st, proc_tail (prod));
  fail_unless (took <= 5.0, "the producer took %.1f s to stop", took);
  gint cst;
  if (eos) {
    cst = proc_wait (cons, 10000);
    fail_unless (cst == 0 && proc_says (cons, "EOS"), "the consumer did not end with EOS "
        "(exit %d): %s", cst, proc_tail (cons));
  } else {
    sleep_s (1);
    cst = proc_stop (cons, SIGINT, 10000, NULL);
    fail_unless (cst == 0, "the consumer exited %d: %s", cst, proc_tail (cons));
  }
  gchar *out = proc_output (cons);
  fail_if (g_regex_match_simple ("\\b(died|dead)\\b", out, G_REGEX_CASELESS, 0),
      "the consumer reports a dead producer after a clean stop: %s", proc_tail (cons));
  g_free (out);
  assert_no_leftovers (ch, 3000);
}

GST_START_TEST (test_clean_stop_slow_consumer)
{
  check_clean_stop (FALSE, "");
}
GST_END_TEST;

GST_START_TEST (test_clean_stop_slow_consumer_eos)
{
  check_clean_stop (TRUE, "");
}
GST_END_TEST;

/* The same with a consumer that asked to hold the producer back. */
GST_START_TEST (test_clean_stop_non_leaky_consumer)
{
  check_clean_stop (FALSE, "leaky=false");
}
GST_END_TEST;

GST_START_TEST (test_clean_stop_non_leaky_consumer_eos)
{
  check_clean_stop (TRUE, "leaky=false");
}
GST_END_TEST;

/* ---- 8. a foreign shm object is never deleted ---------------------------- */

GST_START_TEST (test_foreign_shm_object_kept)
{
  ensure_bookkeeping ();
  gchar *name = g_strdup_printf ("scn-foreign-%d", (int) getpid ());
  gchar *path = g_strdup_printf ("/dev/shm/%s", name);
  fail_unless (g_file_set_contents (path, "data\n", 5, NULL));
  struct stat before;
  fail_unless (stat (path, &before) == 0);
  Proc *prod = proc_spawn (FALSE, "videotestsrc num-buffers=10 ! datahubsink shm-name=/%s",
      name);
  gint st = proc_wait (prod, 20000);
  gchar *out = proc_output (prod);
  gchar *data = NULL;
  gsize len = 0;
  g_file_get_contents (path, &data, &len, NULL);
  struct stat after;
  gboolean same_inode = stat (path, &after) == 0 && after.st_ino == before.st_ino;
  g_unlink (path);
  g_print ("foreign shm object: exit %d, file now %zu bytes, same inode %d\n", st, len,
      same_inode);
  fail_unless (data && len == 5 && memcmp (data, "data\n", 5) == 0 && same_inode,
      "/dev/shm/%s was replaced, changed or deleted (%zu bytes now)", name, len);
  fail_unless (st > 0, "the sink accepted a foreign shm object (exit %d): %s", st,
      proc_tail (prod));
  gchar *lower = g_ascii_strdown (out, -1);
  fail_unless (strstr (out, name) && (strstr (lower, "not a datahub") || strstr (lower,
              "exists")), "the error does not say that /%s exists and is not a datahub "
      "block: %s", name, proc_tail (prod));
  g_free (lower);
  g_free (data);
  g_free (out);
  g_free (path);
  g_free (name);
}
GST_END_TEST;

/* ---- 9. every waiting consumer receives the stream ----------------------- */

/* checksumsink lines "0:00:00.000000000 <md5>" of a log. */
static GPtrArray *
checksum_lines (Proc *p)
{
  gchar *out = proc_output (p);
  gchar **lines = g_strsplit (out, "\n", -1);
  GPtrArray *sums = g_ptr_array_new_with_free_func (g_free);
  for (gchar **l = lines; *l; l++) {
    gchar **parts = g_strsplit (*l, " ", -1);
    if (g_strv_length (parts) == 2 && strlen (parts[1]) == 32 && strchr (parts[0], ':'))
      g_ptr_array_add (sums, g_strdup (parts[1]));
    g_strfreev (parts);
  }
  g_strfreev (lines);
  g_free (out);
  return sums;
}

#define BIG_CAPS "video/x-raw,format=RGBA,width=1920,height=1080,framerate=30/1"

/* 16 consumer processes wait on a channel; a non-live producer writes 34
 * frames of 1920x1080 RGBA (the scripts/bench case): every consumer
 * receives all 34, checksums equal to a reference run, then EOS. */
GST_START_TEST (test_sixteen_waiting_consumers_get_every_frame)
{
  const gchar *ch = chan ("sixteen");
  gdouble t_start = now_s ();
  Proc *cons[16];
  for (guint i = 0; i < 16; i++)
    cons[i] = proc_spawn (FALSE, "datahubsrc channel=%s ! checksumsink hash=md5", ch);
  gdouble ready_by = now_s () + 20; /* for all of them */
  for (guint i = 0; i < 16; i++)
    fail_unless (proc_wait_output (cons[i], "PREROLLING",
            (guint) (MAX (ready_by - now_s (), 0.0) * 1000)), "consumer %u did not start "
        "within 20 s: %s", i, proc_tail (cons[i]));
  g_print ("16 consumers waiting after %.1f s\n", now_s () - t_start);
  sleep_s (0.5);
  Proc *prod = proc_spawn (FALSE, "videotestsrc num-buffers=34 ! " BIG_CAPS " ! "
      "datahubsink channel=%s", ch);
  gint pst = proc_wait (prod, 30000);
  g_print ("producer done after %.1f s\n", now_s () - t_start);
  GPtrArray *want = reference_run ("videotestsrc num-buffers=34 ! " BIG_CAPS
      " ! appsink name=out sync=false");
  fail_unless_equals_int (want->len, 34);
  GString *report = g_string_new (NULL);
  guint n_bad = 0;
  gdouble deadline = now_s () + 20; /* for all of them */
  for (guint i = 0; i < 16; i++) {
    gint st = proc_wait (cons[i], (guint) (MAX (deadline - now_s (), 0.0) * 1000));
    if (st < 0)
      proc_kill (cons[i]);
    GPtrArray *got = checksum_lines (cons[i]);
    /* where the received frames start in the reference, and whether they
     * follow it from there */
    gint from = -1;
    for (guint j = 0; got->len && j < want->len && from < 0; j++)
      if (g_str_equal (g_ptr_array_index (got, 0), g_ptr_array_index (want, j)))
        from = (gint) j;
    gboolean in_order = from >= 0 && from + got->len <= want->len;
    for (guint j = 0; in_order && j < got->len; j++)
      in_order = g_str_equal (g_ptr_array_index (got, j), g_ptr_array_index (want, from + j));
    gboolean ok = st == 0 && got->len == 34 && from == 0 && in_order;
    n_bad += !ok;
    if (ok)
      g_string_append_printf (report, " 34");
    else {
      g_string_append_printf (report, " %u(first=#%d%s%s)", got->len, from,
          in_order ? "" : ",wrong", st == 0 ? "" : ",no EOS");
      g_print ("consumer %u (exit %d) printed: %s\n", i, st, proc_tail (cons[i]));
    }
    g_ptr_array_unref (got);
  }
  g_print ("16 waiting consumers, 34 frames of 1920x1080 RGBA: received%s\n", report->str);
  if (n_bad) {
    gchar *left = shm_leftovers (ch);
    g_print ("objects of the channel in /dev/shm: %s\n", left ? left : "none");
    g_free (left);
  }
  fail_unless_equals_int (pst, 0);
  fail_unless (n_bad == 0, "%u of 16 consumers did not get the 34 frames intact, then EOS; "
      "frames received per consumer:%s", n_bad, report->str);
  g_string_free (report, TRUE);
  g_ptr_array_unref (want);
}
GST_END_TEST;

/* ---- 10. a stalled consumer does not slow a live producer ---------------- */

typedef struct {
  GstElement *prod, *stalled, *normal;
  Counter produced, stalled_in;
  Collector normal_c;
  gdouble prod_fps, normal_fps;
  guint64 stalled_lost;
} StallRun;

/* A 60 fps live producer here, one consumer behind identity
 * sleep-time=50000 (with @stalled_props), one normal consumer with a
 * syncing sink; rates over 3 s after a warm-up. */
static void
stall_run (StallRun *r, const gchar *what, const gchar *stalled_props)
{
  const gchar *ch = chan (what);
  r->stalled = pipeline_new ("datahubsrc name=src channel=%s %s ! identity sleep-time=50000 ! "
      "fakesink", ch, stalled_props);
  counter_attach (&r->stalled_in, el (r->stalled, "src"), "src", TRUE);
  r->normal = pipeline_new ("datahubsrc channel=%s ! appsink name=out sync=true", ch);
  collector_init (&r->normal_c, el (r->normal, "out"));
  gst_element_set_state (r->stalled, GST_STATE_PLAYING);
  gst_element_set_state (r->normal, GST_STATE_PLAYING);
  r->prod = pipeline_new ("videotestsrc is-live=true ! video/x-raw,format=I420,width=320,"
      "height=240,framerate=60/1 ! datahubsink name=sink channel=%s", ch);
  counter_attach (&r->produced, el (r->prod, "sink"), "sink", FALSE);
  gst_element_set_state (r->prod, GST_STATE_PLAYING);
  sleep_s (1.5);
  gint p0 = g_atomic_int_get (&r->produced.count);
  guint n0 = collector_len (&r->normal_c);
  gdouble t0 = now_s ();
  sleep_s (3);
  gdouble dt = now_s () - t0;
  r->prod_fps = (g_atomic_int_get (&r->produced.count) - p0) / dt;
  r->normal_fps = (collector_len (&r->normal_c) - n0) / dt;
  r->stalled_lost = stat_get (el (r->stalled, "src"), "consumer-lost", NULL);
}

static void
stall_run_free (StallRun *r)
{
  free_pipeline (r->prod, "producer");
  free_pipeline (r->stalled, "stalled consumer");
  free_pipeline (r->normal, "normal consumer");
  collector_clear (&r->normal_c);
  g_array_unref (r->stalled_in.offsets);
}

/* Default properties: the producer and the normal consumer are not held
 * to the stalled consumer's 20 fps; the stalled consumer loses frames and
 * counts them. */
GST_START_TEST (test_stalled_consumer_does_not_slow_live_producer)
{
  StallRun r;
  stall_run (&r, "stall", "");
  g_print ("stalled consumer (defaults): producer %.1f fps, normal consumer %.1f fps "
      "(nominal 60), stalled consumer received %d, consumer-lost %" G_GUINT64_FORMAT "\n",
      r.prod_fps, r.normal_fps, g_atomic_int_get (&r.stalled_in.count), r.stalled_lost);
  /* held back by the stalled consumer, both would run at its 20 fps: the
   * bound sits between that and the nominal 60, far from both, so a busy
   * machine does not make it flake */
  fail_unless (r.prod_fps >= 35, "a stalled consumer slows the live producer to %.1f fps "
      "(nominal 60; 20 if held back)", r.prod_fps);
  fail_unless (r.normal_fps >= 35, "the normal consumer renders %.1f fps (nominal 60; 20 "
      "if held back)", r.normal_fps);
  fail_unless (r.stalled_lost > 0, "the stalled consumer counts no lost frames");
  stall_run_free (&r);
}
GST_END_TEST;

/* leaky=false (a consumer that asks to hold the producer back): it loses
 * nothing and the producer is held back. */
GST_START_TEST (test_non_leaky_consumer_holds_live_producer_back)
{
  StallRun r;
  stall_run (&r, "nonleaky", "leaky=false");
  guint gaps, nodiscont;
  counter_gaps (&r.stalled_in, &gaps, &nodiscont);
  g_print ("non-leaky stalled consumer: producer %.1f fps, normal consumer %.1f fps, stalled "
      "consumer received %d with %u gaps, consumer-lost %" G_GUINT64_FORMAT "\n", r.prod_fps,
      r.normal_fps, g_atomic_int_get (&r.stalled_in.count), gaps, r.stalled_lost);
  fail_unless (r.prod_fps <= 36, "the producer ran at %.1f fps although a non-leaky consumer "
      "takes at most 20 fps", r.prod_fps);
  fail_unless (gaps == 0 && r.stalled_lost == 0, "the non-leaky consumer lost frames (%u "
      "gaps, consumer-lost %" G_GUINT64_FORMAT ")", gaps, r.stalled_lost);
  stall_run_free (&r);
}
GST_END_TEST;

/* ---- 11. edge cases --------------------------------------------------------- */

/* A 0-byte first buffer with non-video caps and slot-size=0, then normal
 * buffers: nothing crashes and the consumer gets every buffer. */
GST_START_TEST (test_zero_size_first_buffer)
{
  const gchar *ch = chan ("zerosize");
  Consumer k;
  consumer_start (&k, "datahubsrc name=src channel=%s ! appsink name=out sync=false", ch);
  GstElement *prod = pipeline_new ("appsrc name=in format=time caps=" APP_CAPS " ! "
      "datahubsink name=sink channel=%s slot-size=0", ch);
  GstAppSrc *in = GST_APP_SRC (el (prod, "in"));
  gst_element_set_state (prod, GST_STATE_PLAYING);
  sleep_s (0.5);
  GstBuffer *empty = gst_buffer_new ();
  GST_BUFFER_PTS (empty) = 0;
  gst_app_src_push_buffer (in, empty);
  for (guint32 i = 1; i <= 5; i++) {
    gst_app_src_push_buffer (in, indexed_buffer (100, i, i * GST_MSECOND));
    sleep_s (0.05);
  }
  gst_app_src_end_of_stream (in);
  gchar *err = NULL;
  gboolean prod_eos = wait_bus_eos (prod, 10000, &err);
  gboolean eos = collector_wait_eos (&k.c, 10000);
  GPtrArray *frames = collector_snapshot (&k.c);
  GString *seq = g_string_new (NULL);
  for (guint i = 0; i < frames->len; i++) {
    Rx *f = g_ptr_array_index (frames, i);
    g_string_append_printf (seq, "%zu:%d ", f->size, f->indexed ? (gint) f->index : -1);
  }
  g_print ("zero-size first buffer: received (size:index) %s, EOS %d\n", seq->str, eos);
  fail_unless (prod_eos, "producer: %s", err ? err : "no EOS");
  fail_unless (frames->len == 6, "received %u of 6 buffers: %s", frames->len, seq->str);
  fail_unless_equals_uint64 (((Rx *) g_ptr_array_index (frames, 0))->size, 0);
  for (guint i = 1; i < 6; i++) {
    Rx *f = g_ptr_array_index (frames, i);
    fail_unless (f->indexed && f->index == i, "buffer %u: %s", i, seq->str);
  }
  fail_unless (eos, "no EOS at the consumer");
  g_string_free (seq, TRUE);
  g_ptr_array_unref (frames);
  free_pipeline (prod, "producer");
  consumer_free (&k);
}
GST_END_TEST;

/* An EOS before any buffer (non-video caps) reaches a waiting consumer. */
GST_START_TEST (test_eos_before_any_buffer)
{
  const gchar *ch = chan ("eosfirst");
  Consumer k;
  consumer_start (&k, "datahubsrc name=src channel=%s ! appsink name=out sync=false", ch);
  GstElement *prod = pipeline_new ("appsrc name=in format=time caps=" APP_CAPS " ! "
      "datahubsink name=sink channel=%s", ch);
  gst_element_set_state (prod, GST_STATE_PLAYING);
  sleep_s (0.5);
  gst_app_src_end_of_stream (GST_APP_SRC (el (prod, "in")));
  gchar *err = NULL;
  fail_unless (wait_bus_eos (prod, 10000, &err), "producer: %s", err ? err : "no EOS");
  gboolean eos = collector_wait_eos (&k.c, 10000);
  g_print ("EOS before any buffer: consumer EOS %d\n", eos);
  fail_unless (eos, "the consumer never got the EOS sent before any buffer");
  free_pipeline (prod, "producer");
  consumer_free (&k);
  assert_no_leftovers (ch, 3000);
}
GST_END_TEST;

/* ---- 12. an encoded late joiner decodes within a few frames ---------------- */

/* vp8enc with a keyframe every 300 frames has run 2 s; a consumer that
 * joins decodes its first frame within 3 received buffers (the src asks
 * upstream for a key unit) instead of waiting for the next keyframe. */
GST_START_TEST (test_encoded_late_joiner_decodes_at_once)
{
  const gchar *ch = chan ("vp8join");
  Proc *prod = proc_spawn (FALSE, "videotestsrc is-live=true ! video/x-raw,width=320,"
      "height=240,framerate=30/1 ! vp8enc deadline=1 keyframe-max-dist=300 ! "
      "datahubsink channel=%s", ch);
  fail_unless (wait_block (ch, 10000), "no block: %s", proc_tail (prod));
  sleep_s (2);
  GstElement *pipe = pipeline_new ("datahubsrc name=src channel=%s ! vp8dec ! "
      "appsink name=out sync=false", ch);
  Counter received;
  counter_attach (&received, el (pipe, "src"), "src", FALSE);
  Collector c;
  collector_init (&c, el (pipe, "out"));
  c.counter = &received.count;
  gdouble t0 = now_s ();
  gst_element_set_state (pipe, GST_STATE_PLAYING);
  guint n = collector_wait (&c, 1, 12000);
  Rx *f0 = collector_frame (&c, 0);
  g_print ("vp8 late joiner: first decoded frame after %d received buffers, %.2f s\n",
      f0 ? f0->counter : g_atomic_int_get (&received.count),
      f0 ? f0->t - t0 : -1.0);
  fail_unless (n > 0, "nothing decoded within 12 s (%d buffers received)",
      g_atomic_int_get (&received.count));
  fail_unless (f0->counter <= 3, "the first decoded frame came after %d received buffers "
      "(%.1f s)", f0->counter, f0->t - t0);
  free_pipeline (pipe, "consumer");
  collector_clear (&c);
  fail_unless_equals_int (proc_stop (prod, SIGINT, 10000, NULL), 0);
}
GST_END_TEST;

/* ---- 13. from the line-by-line list --------------------------------------- */

static GstPadProbeReturn
clear_discont (GstPad *pad, GstPadProbeInfo *info, gpointer user)
{
  (void) pad;
  (void) user;
  GstBuffer *b = gst_buffer_make_writable (GST_PAD_PROBE_INFO_BUFFER (info));
  GST_BUFFER_FLAG_UNSET (b, GST_BUFFER_FLAG_DISCONT);
  GST_PAD_PROBE_INFO_DATA (info) = b;
  return GST_PAD_PROBE_OK;
}

/* The first buffer after the producer stopped and started again is marked
 * DISCONT by the src (the producer's buffers never are: a probe clears the
 * flag before the sink). */
GST_START_TEST (test_discont_after_reconnect)
{
  const gchar *ch = chan ("discont");
  gchar *src = vsrc ("is-live=true", "I420", 160, 120, 30);
  Consumer k;
  consumer_start (&k, "datahubsrc name=src channel=%s ! appsink name=out sync=false", ch);
  GstElement *prod = pipeline_new ("%s ! datahubsink name=sink channel=%s", src, ch);
  GstPad *pad = gst_element_get_static_pad (el (prod, "sink"), "sink");
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, clear_discont, NULL, NULL);
  gst_object_unref (pad);
  gst_element_set_state (prod, GST_STATE_PLAYING);
  fail_unless (collector_wait (&k.c, 10, 10000) >= 10, "no frames");
  stop_pipeline (prod, "producer");
  sleep_s (1);
  guint before = collector_len (&k.c);
  gst_element_set_state (prod, GST_STATE_PLAYING);
  fail_unless (collector_wait (&k.c, before + 5, 10000) >= before + 5, "no frames after the "
      "restart");
  Rx *f = collector_frame (&k.c, before);
  fail_unless (f != NULL);
  g_print ("first buffer after the restart: offset %" G_GUINT64_FORMAT ", DISCONT %d\n",
      f->offset, f->discont);
  fail_unless (f->discont, "the first buffer from the new producer is not DISCONT");
  free_pipeline (prod, "producer");
  consumer_free (&k);
  g_free (src);
}
GST_END_TEST;

/* A consumer that loses frames (leaky=true behind a slow element) marks
 * the first buffer after each loss DISCONT. */
GST_START_TEST (test_discont_after_loss)
{
  const gchar *ch = chan ("loss");
  GstElement *cons = pipeline_new ("datahubsrc name=src channel=%s leaky=true ! "
      "identity sleep-time=50000 ! fakesink", ch);
  Counter in;
  counter_attach (&in, el (cons, "src"), "src", TRUE);
  gst_element_set_state (cons, GST_STATE_PLAYING);
  GstElement *prod = pipeline_new ("videotestsrc is-live=true ! video/x-raw,format=I420,"
      "width=160,height=120,framerate=60/1 ! datahubsink channel=%s", ch);
  gst_element_set_state (prod, GST_STATE_PLAYING);
  sleep_s (3);
  guint gaps, nodiscont;
  counter_gaps (&in, &gaps, &nodiscont);
  g_print ("lossy consumer: %d buffers, %u losses, %u of them without DISCONT\n",
      g_atomic_int_get (&in.count), gaps, nodiscont);
  fail_unless (gaps > 0, "no loss observed (the consumer kept up?)");
  fail_unless (nodiscont == 0, "%u of %u losses were not marked DISCONT", nodiscont, gaps);
  free_pipeline (prod, "producer");
  free_pipeline (cons, "consumer");
  g_array_unref (in.offsets);
}
GST_END_TEST;

/* A consumer of a live producer, default properties: the src is live and
 * answers the LATENCY query. */
GST_START_TEST (test_live_src_answers_latency)
{
  const gchar *ch = chan ("latency");
  gchar *src = vsrc ("is-live=true", "I420", 160, 120, 30);
  Proc *prod = proc_spawn (FALSE, "%s ! datahubsink channel=%s", src, ch);
  fail_unless (wait_block (ch, 10000), "no block: %s", proc_tail (prod));
  Consumer k;
  consumer_start (&k, "datahubsrc name=src channel=%s ! appsink name=out sync=true", ch);
  gst_element_get_state (k.pipe, NULL, NULL, 10 * GST_SECOND);
  collector_wait (&k.c, 1, 10000);
  GstQuery *q = gst_query_new_latency ();
  gboolean ok = gst_element_query (k.src, q);
  gboolean live = FALSE;
  GstClockTime min = GST_CLOCK_TIME_NONE, max = GST_CLOCK_TIME_NONE;
  if (ok)
    gst_query_parse_latency (q, &live, &min, &max);
  g_print ("LATENCY query: answered %d, live %d, min %" GST_TIME_FORMAT ", max %"
      GST_TIME_FORMAT "\n", ok, live, GST_TIME_ARGS (min), GST_TIME_ARGS (max));
  fail_unless (ok, "the src does not answer the LATENCY query");
  fail_unless (live, "the src of a live producer says it is not live");
  gst_query_unref (q);
  consumer_free (&k);
  fail_unless_equals_int (proc_stop (prod, SIGINT, 10000, NULL), 0);
  g_free (src);
}
GST_END_TEST;

/* Caps with memory features the sink cannot carry are refused at
 * negotiation (not-negotiated) instead of forwarding bytes under caps that
 * claim GL/VA/CUDA memory; DMA-BUF (carried as fd records) and system
 * memory are accepted. */
GST_START_TEST (test_caps_features_refused)
{
  const gchar *ch = chan ("features");
  GstElement *prod = pipeline_new ("appsrc name=in format=time caps=\"video/x-raw"
      "(memory:GLMemory),format=RGBA,width=64,height=48,framerate=30/1\" ! datahubsink "
      "name=sink channel=%s", ch);
  GstPad *pad = gst_element_get_static_pad (el (prod, "sink"), "sink");
  const gchar *features[3] = { "memory:GLMemory", "memory:VAMemory", "memory:CUDAMemory" };
  GString *accepted = g_string_new (NULL);
  for (guint i = 0; i < G_N_ELEMENTS (features); i++) {
    gchar *s = g_strdup_printf ("video/x-raw(%s),format=RGBA,width=64,height=48,"
        "framerate=30/1", features[i]);
    GstCaps *caps = gst_caps_from_string (s);
    if (gst_pad_query_accept_caps (pad, caps))
      g_string_append_printf (accepted, " %s", features[i]);
    gst_caps_unref (caps);
    g_free (s);
  }
  GstCaps *sys = gst_caps_from_string ("video/x-raw,format=RGBA,width=64,height=48,"
      "framerate=30/1");
  fail_unless (gst_pad_query_accept_caps (pad, sys), "system memory caps refused");
  gst_caps_unref (sys);
  GstCaps *dmabuf = gst_caps_from_string ("video/x-raw(memory:DMABuf),format=RGBA,width=64,"
      "height=48,framerate=30/1");
  fail_unless (gst_pad_query_accept_caps (pad, dmabuf), "DMA-BUF caps refused");
  gst_caps_unref (dmabuf);
  gst_element_set_state (prod, GST_STATE_PLAYING);
  gst_app_src_push_buffer (GST_APP_SRC (el (prod, "in")), indexed_buffer (64 * 48 * 4, 0, 0));
  GstMessage *m = gst_bus_timed_pop_filtered (GST_ELEMENT_BUS (prod), 5 * GST_SECOND,
      GST_MESSAGE_ERROR);
  gchar *dbg = NULL;
  GError *err = NULL;
  if (m)
    gst_message_parse_error (m, &err, &dbg);
  g_print ("GL memory caps: accepted by the sink pad:%s; error: %s (%s)\n",
      accepted->len ? accepted->str : " none", err ? err->message : "none", dbg ? dbg : "");
  fail_unless (accepted->len == 0, "the sink accepts caps features it cannot carry:%s",
      accepted->str);
  fail_unless (err && ((err->domain == GST_CORE_ERROR && err->code == GST_CORE_ERROR_NEGOTIATION)
          || (dbg && strstr (dbg, "not-negotiated"))), "no not-negotiated error for GLMemory "
      "caps");
  if (m)
    gst_message_unref (m);
  g_clear_error (&err);
  g_free (dbg);
  g_string_free (accepted, TRUE);
  gst_object_unref (pad);
  free_pipeline (prod, "producer");
}
GST_END_TEST;

/* datahub-stats messages from @e in @seconds. */
static guint
count_stats (GstElement *pipe, GstElement *e, gdouble seconds)
{
  GstBus *bus = gst_element_get_bus (pipe);
  gst_bus_set_flushing (bus, TRUE); /* only what comes from now on */
  gst_bus_set_flushing (bus, FALSE);
  guint n = 0;
  gdouble end = now_s () + seconds;
  while (now_s () < end) {
    GstMessage *m = gst_bus_timed_pop_filtered (bus, 50 * GST_MSECOND, GST_MESSAGE_ELEMENT);
    if (m) {
      n += GST_MESSAGE_SRC (m) == GST_OBJECT (e) && gst_message_has_name (m, "datahub-stats");
      gst_message_unref (m);
    }
  }
  gst_object_unref (bus);
  return n;
}

/* stats-interval=100: datahub-stats keep coming while the producer has
 * nothing to write (idle appsrc, then a PAUSED pipeline), from the sink
 * and from the src. */
GST_START_TEST (test_stats_posted_while_idle)
{
  const gchar *ch = chan ("statsidle");
  Consumer k;
  consumer_start (&k, "datahubsrc name=src channel=%s stats-interval=100 ! appsink name=out "
      "sync=false", ch);
  GstElement *prod = pipeline_new ("appsrc name=in format=time caps=" APP_CAPS " ! "
      "datahubsink name=sink channel=%s slot-size=4096 stats-interval=100", ch);
  gst_element_set_state (prod, GST_STATE_PLAYING);
  wait_consumers (el (prod, "sink"), 1, 5000);
  gst_app_src_push_buffer (GST_APP_SRC (el (prod, "in")), indexed_buffer (100, 0, 0));
  collector_wait (&k.c, 1, 5000);
  sleep_s (0.3);
  guint sink_idle = count_stats (prod, el (prod, "sink"), 2);
  guint src_idle = count_stats (k.pipe, k.src, 2);
  gst_element_set_state (prod, GST_STATE_PAUSED);
  guint sink_paused = count_stats (prod, el (prod, "sink"), 2);
  g_print ("datahub-stats in 2 s at stats-interval=100: sink idle %u, src idle %u, "
      "sink paused %u\n", sink_idle, src_idle, sink_paused);
  fail_unless (sink_idle >= 5, "the sink posted %u datahub-stats in 2 s while idle", sink_idle);
  fail_unless (src_idle >= 5, "the src posted %u datahub-stats in 2 s while idle", src_idle);
  fail_unless (sink_paused >= 5, "the sink posted %u datahub-stats in 2 s while PAUSED",
      sink_paused);
  free_pipeline (prod, "producer");
  consumer_free (&k);
}
GST_END_TEST;

/* stats-interval=100: datahub-stats keep coming while a non-leaky consumer
 * that takes one buffer a second blocks the producer. */
GST_START_TEST (test_stats_posted_while_blocked)
{
  const gchar *ch = chan ("statsblock");
  GstElement *cons = pipeline_new ("datahubsrc channel=%s leaky=false ! identity "
      "sleep-time=1000000 ! fakesink", ch);
  gst_element_set_state (cons, GST_STATE_PLAYING);
  GstElement *prod = pipeline_new ("videotestsrc is-live=true ! video/x-raw,format=I420,"
      "width=160,height=120,framerate=30/1 ! datahubsink name=sink channel=%s "
      "stats-interval=100", ch);
  gst_element_set_state (prod, GST_STATE_PLAYING);
  sleep_s (1.5);
  guint n = count_stats (prod, el (prod, "sink"), 3);
  guint64 waits = stat_get (el (prod, "sink"), "writer-waits", NULL);
  g_print ("datahub-stats in 3 s while blocked: %u (writer-waits %" G_GUINT64_FORMAT ")\n", n,
      waits);
  fail_unless (n >= 10, "the sink posted %u datahub-stats in 3 s while blocked", n);
  free_pipeline (prod, "producer");
  free_pipeline (cons, "consumer");
}
GST_END_TEST;

/* slots=0 is a clear error, not silently the default. */
GST_START_TEST (test_slots_zero_is_an_error)
{
  const gchar *ch = chan ("slots0");
  Proc *prod = proc_spawn (FALSE, "videotestsrc num-buffers=5 ! video/x-raw,width=64,"
      "height=48 ! datahubsink channel=%s slots=0", ch);
  gint st = proc_wait (prod, 20000);
  g_print ("slots=0: exit %d\n", st);
  fail_unless (st > 0, "slots=0 was accepted (exit %d): %s", st, proc_tail (prod));
  fail_unless (proc_says (prod, "slots"), "the error does not name slots: %s",
      proc_tail (prod));
}
GST_END_TEST;

/* A bad configuration (integrity=hmac without a secret) is one error whose
 * main text says why. */
/* One bad setting: one error, posted once, that names it. */
static void
check_one_clear_error (const gchar *setting, const gchar *must_say)
{
  const gchar *ch = chan ("badconf");
  GstElement *prod = pipeline_new ("videotestsrc num-buffers=5 ! video/x-raw,width=64,"
      "height=48 ! datahubsink channel=%s %s", ch, setting);
  gst_element_set_state (prod, GST_STATE_PLAYING);
  GstBus *bus = gst_element_get_bus (prod);
  guint errors = 0;
  gchar *first_text = NULL;
  GstMessage *m;
  while ((m = gst_bus_timed_pop_filtered (bus, (errors ? 1 : 5) * GST_SECOND,
              GST_MESSAGE_ERROR))) {
    GError *err;
    gst_message_parse_error (m, &err, NULL);
    if (errors++ == 0)
      first_text = g_strdup (err->message);
    g_error_free (err);
    gst_message_unref (m);
  }
  g_print ("%s: %u error(s), first: %s\n", setting, errors, first_text);
  fail_unless (errors > 0, "%s: no error", setting);
  gchar *lower = g_ascii_strdown (first_text, -1);
  fail_unless (strstr (lower, must_say) != NULL, "the error does not say why: %s", first_text);
  fail_unless (errors == 1, "the error was posted %u times", errors);
  g_free (lower);
  g_free (first_text);
  gst_object_unref (bus);
  free_pipeline (prod, "producer");
}

GST_START_TEST (test_configuration_error_says_why_once)
{
  check_one_clear_error ("integrity=hmac", "secret");
  check_one_clear_error ("perms=438", "perms=0666"); /* 0666: consumers could write */
}
GST_END_TEST;

/* The secret is write-only: it must not end up in pipeline dumps. */
GST_START_TEST (test_secret_not_readable)
{
  const gchar *names[2] = { "datahubsink", "datahubsrc" };
  for (guint i = 0; i < 2; i++) {
    GstElement *e = gst_element_factory_make (names[i], NULL);
    fail_unless (e != NULL);
    GParamSpec *ps = g_object_class_find_property (G_OBJECT_GET_CLASS (e), "secret");
    fail_unless (ps != NULL);
    fail_if (ps->flags & G_PARAM_READABLE, "%s's secret is readable", names[i]);
    gst_object_unref (e);
  }
}
GST_END_TEST;

/* `consumers` has one type in datahub-stats and datahub-consumer. */
GST_START_TEST (test_consumers_field_one_type)
{
  const gchar *ch = chan ("ctype");
  GstElement *prod = pipeline_new ("videotestsrc is-live=true ! video/x-raw,format=I420,"
      "width=64,height=48,framerate=30/1 ! datahubsink name=sink channel=%s "
      "stats-interval=100", ch);
  gst_element_set_state (prod, GST_STATE_PLAYING);
  GstElement *cons = pipeline_new ("datahubsrc channel=%s ! fakesink", ch);
  gst_element_set_state (cons, GST_STATE_PLAYING);
  GType in_stats = G_TYPE_INVALID, in_consumer = G_TYPE_INVALID;
  GstBus *bus = gst_element_get_bus (prod);
  gdouble end = now_s () + 10;
  while ((!in_stats || !in_consumer) && now_s () < end) {
    GstMessage *m = gst_bus_timed_pop_filtered (bus, 100 * GST_MSECOND, GST_MESSAGE_ELEMENT);
    if (!m)
      continue;
    const GstStructure *s = gst_message_get_structure (m);
    const GValue *v = gst_structure_get_value (s, "consumers");
    if (v && gst_structure_has_name (s, "datahub-stats"))
      in_stats = G_VALUE_TYPE (v);
    if (v && gst_structure_has_name (s, "datahub-consumer"))
      in_consumer = G_VALUE_TYPE (v);
    gst_message_unref (m);
  }
  g_print ("consumers: %s in datahub-stats, %s in datahub-consumer\n", g_type_name (in_stats),
      g_type_name (in_consumer));
  fail_unless (in_stats && in_consumer, "missing messages");
  fail_unless (in_stats == in_consumer, "consumers is %s in datahub-stats and %s in "
      "datahub-consumer", g_type_name (in_stats), g_type_name (in_consumer));
  gst_object_unref (bus);
  free_pipeline (prod, "producer");
  free_pipeline (cons, "consumer");
}
GST_END_TEST;

/* A caps change whose caps (with a 6 KB streamheader) do not fit a slot:
 * the buffers after it still arrive under the new caps. */
GST_START_TEST (test_caps_larger_than_a_slot)
{
  const gchar *ch = chan ("bigcaps");
  Consumer k;
  consumer_start (&k, "datahubsrc name=src channel=%s ! appsink name=out sync=false", ch);
  GstElement *prod = pipeline_new ("appsrc name=in format=time caps=" APP_CAPS ",v=(int)1 ! "
      "datahubsink name=sink channel=%s slot-size=4096", ch);
  GstAppSrc *in = GST_APP_SRC (el (prod, "in"));
  gst_element_set_state (prod, GST_STATE_PLAYING);
  wait_consumers (el (prod, "sink"), 1, 5000);
  GstBuffer *header = indexed_buffer (6000, 1000, GST_CLOCK_TIME_NONE);
  GstCaps *big = gst_caps_from_string (APP_CAPS ",v=(int)2");
  GValue arr = G_VALUE_INIT, v = G_VALUE_INIT;
  g_value_init (&arr, GST_TYPE_ARRAY);
  g_value_init (&v, GST_TYPE_BUFFER);
  gst_value_set_buffer (&v, header);
  gst_value_array_append_value (&arr, &v);
  gst_structure_set_value (gst_caps_get_structure (big, 0), "streamheader", &arr);
  g_value_unset (&v);
  g_value_unset (&arr);
  for (guint32 i = 0; i < 6; i++) {
    if (i == 3)
      gst_app_src_set_caps (in, big);
    gst_app_src_push_buffer (in, indexed_buffer (100, i, i * GST_MSECOND));
  }
  gst_app_src_end_of_stream (in);
  collector_wait_eos (&k.c, 10000);
  GPtrArray *frames = collector_snapshot (&k.c);
  g_print ("caps larger than a slot: %u of 6 buffers\n", frames->len);
  fail_unless_equals_int (frames->len, 6);
  for (guint i = 3; i < 6; i++) {
    Rx *f = g_ptr_array_index (frames, i);
    if (!f->caps || !gst_caps_is_equal (f->caps, big))
      fail ("buffer %u arrived with caps %s, not the producer's caps with the streamheader",
          i, caps_text (f->caps));
  }
  g_ptr_array_unref (frames);
  gst_caps_unref (big);
  gst_buffer_unref (header);
  free_pipeline (prod, "producer");
  consumer_free (&k);
}
GST_END_TEST;

static GstPadProbeReturn
catch_upstream (GstPad *pad, GstPadProbeInfo *info, gpointer user)
{
  (void) pad;
  GstEvent *e = GST_PAD_PROBE_INFO_EVENT (info);
  if (GST_EVENT_TYPE (e) == GST_EVENT_CUSTOM_UPSTREAM && gst_event_has_name (e, "my-request"))
    g_atomic_int_set ((gint *) user, 1);
  return GST_PAD_PROBE_OK;
}

/* A custom upstream event that a consumer application sends reaches the
 * producer's pipeline. */
GST_START_TEST (test_custom_upstream_event_reaches_producer)
{
  const gchar *ch = chan ("upstream");
  GstElement *prod = pipeline_new ("videotestsrc is-live=true ! video/x-raw,format=I420,"
      "width=64,height=48,framerate=30/1 ! identity name=id ! datahubsink channel=%s", ch);
  gint seen = 0;
  GstPad *pad = gst_element_get_static_pad (el (prod, "id"), "src");
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_EVENT_UPSTREAM, catch_upstream, &seen, NULL);
  gst_element_set_state (prod, GST_STATE_PLAYING);
  Consumer k;
  consumer_start (&k, "datahubsrc name=src channel=%s ! appsink name=out sync=false", ch);
  fail_unless (collector_wait (&k.c, 5, 10000) >= 5, "no frames");
  gst_element_send_event (k.out, gst_event_new_custom (GST_EVENT_CUSTOM_UPSTREAM,
          gst_structure_new_empty ("my-request")));
  gdouble end = now_s () + 5;
  while (!g_atomic_int_get (&seen) && now_s () < end)
    sleep_s (0.05);
  g_print ("custom upstream event reached the producer: %d\n", g_atomic_int_get (&seen));
  fail_unless (g_atomic_int_get (&seen), "the consumer's custom upstream event never reached "
      "the producer");
  gst_object_unref (pad);
  consumer_free (&k);
  free_pipeline (prod, "producer");
}
GST_END_TEST;

/* ---- 14. upstream that keeps buffers, applications that allocate ---------- */

/* A queue that waits for a threshold of buffers keeps more than the sink's
 * pool holds (slots - 1): upstream gets system memory after a moment
 * instead of waiting for itself, and every frame arrives. */
GST_START_TEST (test_upstream_keeping_buffers_still_streams)
{
  const gchar *ch = chan ("hoard");
  Consumer k;
  consumer_start (&k, "datahubsrc name=src channel=%s ! appsink name=out sync=false", ch);
  GstElement *prod = pipeline_new ("videotestsrc num-buffers=60 ! video/x-raw,format=I420,"
      "width=64,height=48,framerate=30/1 ! queue min-threshold-buffers=10 ! "
      "datahubsink channel=%s slots=4", ch);
  gst_element_set_state (prod, GST_STATE_PLAYING);
  gchar *err = NULL;
  gboolean prod_eos = wait_bus_eos (prod, 20000, &err);
  gboolean eos = collector_wait_eos (&k.c, 10000);
  GPtrArray *frames = collector_snapshot (&k.c);
  g_print ("upstream keeping 10 buffers, 4 slots: producer EOS %d, consumer received %u of "
      "60, EOS %d\n", prod_eos, frames->len, eos);
  fail_unless (prod_eos, "producer: %s", err ? err : "no EOS (stuck waiting for its pool?)");
  fail_unless_equals_int (frames->len, 60);
  for (guint i = 0; i < frames->len; i++) {
    Rx *f = g_ptr_array_index (frames, i);
    fail_unless_equals_uint64 (f->offset, i);
  }
  fail_unless (eos, "no EOS at the consumer");
  g_ptr_array_unref (frames);
  free_pipeline (prod, "producer");
  consumer_free (&k);
}
GST_END_TEST;

typedef struct {
  GstAllocator *allocator;
  guint done, from_slots;
  gboolean copy_is_system_memory;
} AllocRun;

static gpointer
allocate_ten (gpointer data)
{
  AllocRun *a = data;
  for (guint i = 0; i < 10; i++) {
    GstBuffer *b = gst_buffer_new_allocate (a->allocator, 1000, NULL);
    GstMemory *m = gst_buffer_peek_memory (b, 0);
    if (m->allocator == a->allocator) {
      a->from_slots++;
      /* a writable copy of slot memory is system memory, not another slot */
      GstMemory *copy = gst_memory_copy (m, 0, -1);
      a->copy_is_system_memory = copy && copy->allocator != a->allocator;
      gst_memory_unref (copy);
    }
    gst_buffer_unref (b);
    g_atomic_int_inc (&a->done);
  }
  return NULL;
}

/* An application allocating from the sink's allocator (what
 * gst_buffer_new_allocate() with the ALLOCATION answer does) while a
 * consumer holds the producer back never hangs: each allocation waits a
 * moment for a slot, then gets system memory. */
GST_START_TEST (test_direct_allocations_never_hang)
{
  const gchar *ch = chan ("directalloc");
  GstElement *prod = pipeline_new ("appsrc name=in format=time caps=" APP_CAPS " ! "
      "datahubsink name=sink channel=%s slot-size=4096 slots=4", ch);
  gst_element_set_state (prod, GST_STATE_PLAYING);
  /* a lossless consumer that stops reading after the first buffer */
  Consumer k;
  consumer_start (&k, "datahubsrc name=src channel=%s leaky=no ! appsink name=out "
      "sync=false max-buffers=1", ch);
  GstAppSrc *in = GST_APP_SRC (el (prod, "in"));
  GstPad *pad = gst_element_get_static_pad (GST_ELEMENT (in), "src");
  GstCaps *caps = gst_caps_from_string (APP_CAPS);
  GstQuery *q = gst_query_new_allocation (caps, FALSE);
  fail_unless (gst_pad_peer_query (pad, q), "no ALLOCATION answer");
  fail_unless (gst_query_get_n_allocation_params (q) > 0, "the sink offers no allocator");
  AllocRun a = { 0 };
  gst_query_parse_nth_allocation_param (q, 0, &a.allocator, NULL);
  /* the consumer takes one buffer, then stops (paused, it blocks in
   * preroll): the producer fills its slots and waits for it */
  gst_app_src_push_buffer (in, indexed_buffer (100, 0, 0));
  fail_unless (collector_wait (&k.c, 1, 10000), "the consumer got nothing");
  gst_element_set_state (k.pipe, GST_STATE_PAUSED);
  for (guint32 i = 1; i < 9; i++)
    gst_app_src_push_buffer (in, indexed_buffer (100, i, i * GST_MSECOND));
  guint64 written = 0, waits = 0;
  for (gdouble t0 = now_s (); now_s () - t0 < 10 && waits == 0; sleep_s (0.1)) {
    GstStructure *st = NULL;
    g_object_get (el (prod, "sink"), "stats", &st, NULL);
    gst_structure_get_uint64 (st, "written", &written);
    gst_structure_get_uint64 (st, "writer-waits", &waits);
    gst_structure_free (st);
  }
  fail_unless (waits > 0 && written < 9, "the producer is not held back (%" G_GUINT64_FORMAT
      " written)", written);
  GThread *t = g_thread_new ("alloc", allocate_ten, &a);
  gdouble t0 = now_s ();
  while (g_atomic_int_get (&a.done) < 10 && now_s () - t0 < 20)
    sleep_s (0.05);
  guint done = g_atomic_int_get (&a.done);
  g_print ("direct allocations with the producer held back: %u of 10 returned in %.2f s, "
      "%u of them slots\n", done, now_s () - t0, a.from_slots);
  fail_unless_equals_int (done, 10);
  g_thread_join (t);
  fail_unless (a.from_slots == 0 || a.copy_is_system_memory,
      "a copy of slot memory took another slot");
  gst_object_unref (a.allocator);
  gst_query_unref (q);
  gst_caps_unref (caps);
  gst_object_unref (pad);
  consumer_free (&k);
  free_pipeline (prod, "producer");
}
GST_END_TEST;

/* gst_memory_copy() of slot memory is system memory (GStreamer's fallback
 * copy would take another slot for every writable map). */
GST_START_TEST (test_copy_of_slot_memory_is_system_memory)
{
  const gchar *ch = chan ("memcopy");
  GstElement *prod = pipeline_new ("appsrc name=in format=time caps=" APP_CAPS " ! "
      "datahubsink name=sink channel=%s slot-size=4096 slots=4", ch);
  gst_element_set_state (prod, GST_STATE_PLAYING);
  GstPad *pad = gst_element_get_static_pad (el (prod, "in"), "src");
  GstCaps *caps = gst_caps_from_string (APP_CAPS);
  GstQuery *q = gst_query_new_allocation (caps, FALSE);
  fail_unless (gst_pad_peer_query (pad, q), "no ALLOCATION answer");
  GstAllocator *allocator = NULL;
  gst_query_parse_nth_allocation_param (q, 0, &allocator, NULL);
  GstBuffer *b = gst_buffer_new_allocate (allocator, 1000, NULL);
  GstMemory *m = gst_buffer_peek_memory (b, 0);
  fail_unless (m->allocator == allocator, "no slot memory with nothing held back");
  gst_buffer_memset (b, 0, 0x5a, 1000);
  GstMemory *copy = gst_memory_copy (m, 10, 100);
  GstMapInfo info;
  fail_unless (copy && copy->allocator != allocator);
  fail_unless (gst_memory_map (copy, &info, GST_MAP_READ) && info.size == 100
      && info.data[0] == 0x5a && info.data[99] == 0x5a);
  gst_memory_unmap (copy, &info);
  gst_memory_unref (copy);
  gst_buffer_unref (b);
  gst_object_unref (allocator);
  gst_query_unref (q);
  gst_caps_unref (caps);
  gst_object_unref (pad);
  free_pipeline (prod, "producer");
}
GST_END_TEST;

typedef struct {
  GstElement *pipe;
  gboolean done, ok;
} SeekRun;

static gpointer
seek_to_start (gpointer data)
{
  SeekRun *r = data;
  r->ok = gst_element_seek_simple (r->pipe, GST_FORMAT_TIME, GST_SEEK_FLAG_FLUSH, 0);
  g_atomic_int_set (&r->done, TRUE);
  return NULL;
}

/* A flushing seek in the producer's pipeline while a lossless consumer is
 * stalled returns at once (it used to wait for the consumer), and reaches
 * the consumer as a discontinuity: its pipeline is not flushed, the next
 * buffer is DISCONT and there is no data before a segment. */
GST_START_TEST (test_producer_flushing_seek)
{
  const gchar *ch = chan ("seek");
  Consumer k;
  consumer_start (&k, "datahubsrc name=src channel=%s leaky=no ! appsink name=out "
      "sync=false", ch);
  GstElement *prod = pipeline_new ("videotestsrc ! video/x-raw,format=I420,width=64,"
      "height=48,framerate=30/1 ! datahubsink name=sink channel=%s slots=4", ch);
  gst_element_set_state (prod, GST_STATE_PLAYING);
  fail_unless (collector_wait (&k.c, 10, 10000) >= 10, "the consumer got no frames");
  gst_element_set_state (k.pipe, GST_STATE_PAUSED); /* stalls: the producer waits */
  sleep_s (0.5);
  guint before = collector_wait (&k.c, 0, 0);
  SeekRun r = { .pipe = prod };
  GThread *t = g_thread_new ("seek", seek_to_start, &r);
  gdouble t0 = now_s ();
  while (!g_atomic_int_get (&r.done) && now_s () - t0 < 10)
    sleep_s (0.02);
  gdouble took = now_s () - t0;
  fail_unless (g_atomic_int_get (&r.done), "the seek hangs while a consumer is stalled");
  g_thread_join (t);
  fail_unless (r.ok, "the seek failed");
  gst_element_set_state (k.pipe, GST_STATE_PLAYING);
  fail_unless (collector_wait (&k.c, before + 20, 10000) >= before + 20,
      "the consumer stopped after the seek");
  GPtrArray *frames = collector_snapshot (&k.c);
  guint disconts = 0;
  for (guint i = before; i < frames->len; i++)
    disconts += ((Rx *) g_ptr_array_index (frames, i))->discont;
  gchar *err = bus_error (k.pipe);
  g_print ("flushing seek with a stalled consumer: returned in %.2f s; after it the consumer "
      "got %u frames, %u DISCONT; consumer error: %s\n", took, frames->len - before,
      disconts, err ? err : "none");
  fail_unless (disconts >= 1, "no DISCONT after the producer's seek");
  fail_unless (err == NULL, "consumer error: %s", err);
  g_ptr_array_unref (frames);
  free_pipeline (prod, "producer");
  consumer_free (&k);
}
GST_END_TEST;

static guint64
sink_written (GstElement *pipe)
{
  GstStructure *st = NULL;
  guint64 written = 0;
  g_object_get (el (pipe, "sink"), "stats", &st, NULL);
  gst_structure_get_uint64 (st, "written", &written);
  gst_structure_free (st);
  return written;
}

/* An application keeps a buffer of a datahubsrc it stopped (a last frame,
 * a sample it did not free yet): the stopped consumer must not hold a
 * producer back, and it leaves the channel when the buffer is freed. */
GST_START_TEST (test_stopped_consumer_with_kept_buffer)
{
  const gchar *ch = chan ("kept");
  GstElement *prod = pipeline_new ("videotestsrc ! video/x-raw,format=I420,width=64,"
      "height=48,framerate=30/1 ! datahubsink name=sink channel=%s slots=4", ch);
  GstElement *cons = pipeline_new ("datahubsrc channel=%s leaky=no ! appsink name=out "
      "max-buffers=2", ch);
  gst_element_set_state (cons, GST_STATE_PLAYING);
  gst_element_set_state (prod, GST_STATE_PLAYING);
  GstSample *kept = gst_app_sink_try_pull_sample (GST_APP_SINK (el (cons, "out")),
      10 * GST_SECOND);
  fail_unless (kept != NULL, "no sample");
  gst_element_set_state (cons, GST_STATE_NULL);
  guint64 w0 = sink_written (prod);
  sleep_s (1.0);
  guint64 w1 = sink_written (prod);
  gchar *left = shm_leftovers (ch);
  g_print ("stopped consumer keeping a buffer: the producer wrote %" G_GUINT64_FORMAT
      " records in 1 s after it stopped; in /dev/shm: %s\n", w1 - w0, left);
  fail_unless (w1 - w0 >= 10, "the stopped consumer holds the producer back (%"
      G_GUINT64_FORMAT " records in 1 s)", w1 - w0);
  fail_unless (left && strstr (left, "@c0"), "the consumer left while its buffer lives");
  g_free (left);
  /* the kept buffer is still intact: its slot was never reused */
  GstBuffer *b = gst_sample_get_buffer (kept);
  GstMapInfo info;
  fail_unless (gst_buffer_map (b, &info, GST_MAP_READ) && info.size == 64 * 48 * 3 / 2);
  gst_buffer_unmap (b, &info);
  gst_sample_unref (kept);
  gst_object_unref (cons);
  free_pipeline (prod, "producer");
  assert_no_leftovers (ch, 3000);
}
GST_END_TEST;

/* A producer that is not live runs far ahead of real time; a latest-value
 * reader with a syncing sink skips most records.  Each gap places the next
 * buffer at once again: the reader renders continuously, instead of
 * waiting for timestamps that ran ahead (it rendered 1 frame a second). */
GST_START_TEST (test_latest_value_reader_of_fast_producer_renders)
{
  const gchar *ch = chan ("fastsingle");
  GstElement *prod = pipeline_new ("videotestsrc ! video/x-raw,format=I420,width=64,"
      "height=48,framerate=30/1 ! datahubsink channel=%s policy=single", ch);
  Consumer k;
  consumer_start (&k, "datahubsrc name=src channel=%s ! appsink name=out sync=true", ch);
  gst_element_set_state (prod, GST_STATE_PLAYING);
  sleep_s (1.0);
  guint n0 = collector_wait (&k.c, 0, 0);
  sleep_s (3.0);
  guint n = collector_wait (&k.c, 0, 0) - n0;
  g_print ("latest-value reader of a non-live producer, syncing sink: %u frames in 3 s\n", n);
  /* waiting for timestamps ahead of real time gives ~3; rendering what
   * arrives gives hundreds: the bound is far from both */
  fail_unless (n >= 30, "only %u frames rendered in 3 s", n);
  consumer_free (&k);
  free_pipeline (prod, "producer");
}
GST_END_TEST;

static Suite *
scenarios_suite (void)
{
  Suite *s = suite_create ("datahub-scenarios");
  TCase *tc = tcase_create ("scenarios");
  /* each test bounds its own waits and fails with a message well before */
  tcase_set_timeout (tc, 90);
  tcase_add_checked_fixture (tc, NULL, cleanup);
  tcase_add_unchecked_fixture (tc, remove_stale_objects, remove_stale_objects);
  suite_add_tcase (s, tc);
  /* 1 */
  tcase_add_test (tc, test_late_join_live_renders_at_once);
  tcase_add_test (tc, test_late_join_gst_launch_fpsdisplaysink);
  tcase_add_test (tc, test_late_join_after_producer_restart);
  tcase_add_test (tc, test_late_join_non_live_producer);
  /* 2 */
  tcase_add_test (tc, test_consumer_first_audio_every_buffer);
  tcase_add_test (tc, test_consumer_first_wav_file_complete);
  tcase_add_test (tc, test_file_without_caps_arrives_whole);
  tcase_add_test (tc, test_file_without_caps_read_into_slots);
  tcase_add_test (tc, test_consumer_first_vp8_every_frame);
  /* 3 */
  tcase_add_test (tc, test_policy_single_pool_upstream);
  tcase_add_test (tc, test_policy_single_own_buffers);
  tcase_add_test (tc, test_policy_double_pool_upstream);
  tcase_add_test (tc, test_policy_double_own_buffers);
  /* 4 */
  tcase_add_test (tc, test_caps_change_pool_upstream);
  tcase_add_test (tc, test_caps_change_pool_upstream_held_back);
  /* 5 */
  tcase_add_test (tc, test_zero_copy_downstream_allocator);
  tcase_add_test (tc, test_zero_copy_kept_and_repushed_buffers);
  /* 6 */
  tcase_add_test (tc, test_handover_delivers_each_buffer_once);
  tcase_add_test (tc, test_handover_late_joiner_starts_on_new_block);
  /* 7 */
  tcase_add_test (tc, test_clean_stop_slow_consumer);
  tcase_add_test (tc, test_clean_stop_slow_consumer_eos);
  tcase_add_test (tc, test_clean_stop_non_leaky_consumer);
  tcase_add_test (tc, test_clean_stop_non_leaky_consumer_eos);
  /* 8 */
  tcase_add_test (tc, test_foreign_shm_object_kept);
  /* 9 */
  tcase_add_test (tc, test_sixteen_waiting_consumers_get_every_frame);
  /* 10 */
  tcase_add_test (tc, test_stalled_consumer_does_not_slow_live_producer);
  tcase_add_test (tc, test_non_leaky_consumer_holds_live_producer_back);
  /* 11 */
  tcase_add_test (tc, test_zero_size_first_buffer);
  tcase_add_test (tc, test_eos_before_any_buffer);
  /* 12 */
  tcase_add_test (tc, test_encoded_late_joiner_decodes_at_once);
  /* 13 */
  tcase_add_test (tc, test_discont_after_reconnect);
  tcase_add_test (tc, test_discont_after_loss);
  tcase_add_test (tc, test_live_src_answers_latency);
  tcase_add_test (tc, test_caps_features_refused);
  tcase_add_test (tc, test_stats_posted_while_idle);
  tcase_add_test (tc, test_stats_posted_while_blocked);
  tcase_add_test (tc, test_slots_zero_is_an_error);
  tcase_add_test (tc, test_configuration_error_says_why_once);
  tcase_add_test (tc, test_secret_not_readable);
  tcase_add_test (tc, test_consumers_field_one_type);
  tcase_add_test (tc, test_caps_larger_than_a_slot);
  tcase_add_test (tc, test_custom_upstream_event_reaches_producer);
  tcase_add_test (tc, test_upstream_keeping_buffers_still_streams);
  tcase_add_test (tc, test_direct_allocations_never_hang);
  tcase_add_test (tc, test_copy_of_slot_memory_is_system_memory);
  tcase_add_test (tc, test_producer_flushing_seek);
  tcase_add_test (tc, test_stopped_consumer_with_kept_buffer);
  tcase_add_test (tc, test_latest_value_reader_of_fast_producer_renders);
  return s;
}

GST_CHECK_MAIN (scenarios);
