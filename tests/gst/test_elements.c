/* gst-check tests of datahubsink and datahubsrc.  Producers run as real
 * separate processes (gst-launch-1.0 with the plugin from the build tree);
 * consumers run here with an appsink, and every frame is compared byte for
 * byte and timestamp for timestamp with the same source run locally. */
#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <gst/video/video.h>
#include <signal.h>
#include <sys/wait.h>

typedef struct {
  GstClockTime pts;
  gchar *sha1;
  gsize size;
} Frame;

/* SHA-1 of what a viewer would see: for video only the visible bytes of
 * each row of each plane (row padding is uninitialised memory in pools), for
 * anything else every byte. */
static gchar *
frame_sha1 (GstBuffer *buf, GstCaps *caps)
{
  GChecksum *sum = g_checksum_new (G_CHECKSUM_SHA1);
  GstVideoInfo info;
  GstVideoFrame frame;
  if (caps && gst_video_info_from_caps (&info, caps)
      && gst_video_frame_map (&frame, &info, buf, GST_MAP_READ)) {
    for (guint p = 0; p < GST_VIDEO_FRAME_N_PLANES (&frame); p++) {
      gint comp[GST_VIDEO_MAX_COMPONENTS];
      gst_video_format_info_component (info.finfo, p, comp);
      /* for interleaved planes (NV12 UV) the pixel stride covers both */
      gsize row = (gsize) GST_VIDEO_FRAME_COMP_WIDTH (&frame, comp[0])
          * (gsize) GST_VIDEO_FRAME_COMP_PSTRIDE (&frame, comp[0]);
      const guint8 *data = GST_VIDEO_FRAME_PLANE_DATA (&frame, p);
      gint stride = GST_VIDEO_FRAME_PLANE_STRIDE (&frame, p);
      for (gint y = 0; y < GST_VIDEO_FRAME_COMP_HEIGHT (&frame, comp[0]); y++)
        g_checksum_update (sum, data + (gsize) y * (gsize) stride, (gssize) row);
    }
    gst_video_frame_unmap (&frame);
  } else {
    GstMapInfo map;
    fail_unless (gst_buffer_map (buf, &map, GST_MAP_READ));
    g_checksum_update (sum, map.data, (gssize) map.size);
    gst_buffer_unmap (buf, &map);
  }
  gchar *out = g_strdup (g_checksum_get_string (sum));
  g_checksum_free (sum);
  return out;
}

static void
frame_free (gpointer p)
{
  Frame *f = p;
  g_free (f->sha1);
  g_free (f);
}

/* Runs @launch (ending in "appsink name=out") to EOS or @max frames and
 * returns the frames; @caps_out gets the last caps seen. */
static GPtrArray *
collect (const gchar *launch, guint max, GstCaps **caps_out, GstElement **keep)
{
  GError *err = NULL;
  GstElement *pipe = gst_parse_launch (launch, &err);
  fail_unless (pipe != NULL, "%s: %s", launch, err ? err->message : "?");
  GstElement *sink = gst_bin_get_by_name (GST_BIN (pipe), "out");
  g_object_set (sink, "sync", FALSE, NULL);
  fail_unless_equals_int (gst_element_set_state (pipe, GST_STATE_PLAYING),
      GST_STATE_CHANGE_ASYNC);
  GPtrArray *frames = g_ptr_array_new_with_free_func (frame_free);
  while (frames->len < max) {
    GstSample *s = gst_app_sink_try_pull_sample (GST_APP_SINK (sink), 20 * GST_SECOND);
    if (!s)
      break; /* EOS (or a 20 s stall, which the caller's count check catches) */
    GstBuffer *b = gst_sample_get_buffer (s);
    Frame *f = g_new0 (Frame, 1);
    f->pts = GST_BUFFER_PTS (b);
    f->sha1 = frame_sha1 (b, gst_sample_get_caps (s));
    f->size = gst_buffer_get_size (b);
    g_ptr_array_add (frames, f);
    if (caps_out)
      gst_caps_replace (caps_out, gst_sample_get_caps (s));
    gst_sample_unref (s);
  }
  gst_object_unref (sink);
  if (keep) {
    *keep = pipe;
  } else {
    gst_element_set_state (pipe, GST_STATE_NULL);
    gst_object_unref (pipe);
  }
  return frames;
}

/* Starts a producer process: gst-launch-1.0 -q LAUNCH. */
static GPid
spawn_producer (const gchar *launch)
{
  gchar **argv = NULL;
  gchar *cmd = g_strdup_printf ("gst-launch-1.0 -q %s", launch);
  fail_unless (g_shell_parse_argv (cmd, NULL, &argv, NULL));
  GPid pid;
  GError *err = NULL;
  fail_unless (g_spawn_async (NULL, argv, NULL,
          G_SPAWN_SEARCH_PATH | G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL, &pid, &err),
      "spawn: %s", err ? err->message : "?");
  g_strfreev (argv);
  g_free (cmd);
  return pid;
}

static gint
wait_producer (GPid pid)
{
  int status;
  waitpid (pid, &status, 0);
  g_spawn_close_pid (pid);
  return WIFEXITED (status) ? WEXITSTATUS (status) : 128 + WTERMSIG (status);
}

static gchar *
channel (const gchar *what)
{
  return g_strdup_printf ("gsttest-%s-%d", what, (int) getpid ());
}

static void
assert_same_frames (GPtrArray *want, GPtrArray *got)
{
  fail_unless_equals_int (got->len, want->len);
  for (guint i = 0; i < want->len; i++) {
    Frame *a = g_ptr_array_index (want, i), *b = g_ptr_array_index (got, i);
    fail_unless_equals_uint64 (b->size, a->size);
    fail_unless_equals_string (b->sha1, a->sha1);
    fail_unless_equals_uint64 (b->pts, a->pts);
  }
}

/* Producer in another process, consumer here, reference run here. */
static void
check_transfer (const gchar *source, const gchar *caps, guint n)
{
  gchar *ch = channel ("xfer");
  gchar *prod = g_strdup_printf ("%s num-buffers=%u ! %s ! datahubsink channel=%s "
      "wait-for-consumer=true", source, n, caps, ch);
  GPid pid = spawn_producer (prod);
  gchar *cons = g_strdup_printf ("datahubsrc channel=%s timeout=20000 ! appsink name=out", ch);
  GPtrArray *got = collect (cons, n, NULL, NULL);
  gchar *ref = g_strdup_printf ("%s num-buffers=%u ! %s ! appsink name=out", source, n,
      caps);
  GPtrArray *want = collect (ref, n, NULL, NULL);
  fail_unless_equals_int (wait_producer (pid), 0);
  assert_same_frames (want, got);
  g_ptr_array_unref (got);
  g_ptr_array_unref (want);
  g_free (prod);
  g_free (cons);
  g_free (ref);
  g_free (ch);
}

GST_START_TEST (test_video_formats)
{
  check_transfer ("videotestsrc pattern=smpte", "video/x-raw,format=I420,width=321,height=241", 30);
  check_transfer ("videotestsrc pattern=ball", "video/x-raw,format=RGBA,width=640,height=480", 30);
  check_transfer ("videotestsrc pattern=snow", "video/x-raw,format=GRAY8,width=33,height=17", 30);
  check_transfer ("videotestsrc pattern=gradient", "video/x-raw,format=NV12,width=1920,height=1080",
      10);
}
GST_END_TEST;

GST_START_TEST (test_audio)
{
  check_transfer ("audiotestsrc wave=sine samplesperbuffer=1024",
      "audio/x-raw,format=S16LE,rate=48000,channels=2", 50);
}
GST_END_TEST;

/* Caps negotiated without writing them, EOS ends the consumer, and the sink
 * leaves nothing behind. */
GST_START_TEST (test_caps_eos_cleanup)
{
  gchar *ch = channel ("caps");
  gchar *prod = g_strdup_printf ("videotestsrc num-buffers=5 ! video/x-raw,format=BGRx,"
      "width=64,height=48,framerate=25/1 ! datahubsink channel=%s wait-for-consumer=true", ch);
  GPid pid = spawn_producer (prod);
  gchar *cons = g_strdup_printf ("datahubsrc channel=%s ! appsink name=out", ch);
  GstCaps *caps = NULL;
  GPtrArray *got = collect (cons, 1000, &caps, NULL); /* runs to EOS */
  fail_unless_equals_int (got->len, 5);
  GstStructure *s = gst_caps_get_structure (caps, 0);
  fail_unless_equals_string (gst_structure_get_string (s, "format"), "BGRx");
  gint w, fn, fd;
  fail_unless (gst_structure_get_int (s, "width", &w) && w == 64);
  fail_unless (gst_structure_get_fraction (s, "framerate", &fn, &fd) && fn == 25 && fd == 1);
  fail_unless_equals_int (wait_producer (pid), 0);
  gchar *path = g_strdup_printf ("/dev/shm/datahub.%s", ch);
  fail_if (g_file_test (path, G_FILE_TEST_EXISTS), "%s left behind", path);
  gst_caps_unref (caps);
  g_ptr_array_unref (got);
  g_free (path);
  g_free (prod);
  g_free (cons);
  g_free (ch);
}
GST_END_TEST;

/* Four consumer processes on one channel, each gets every frame. */
GST_START_TEST (test_four_consumers)
{
  gchar *ch = channel ("four");
  GPid cons[4];
  for (int i = 0; i < 4; i++) {
    gchar *l = g_strdup_printf ("datahubsrc channel=%s timeout=20000 start=oldest ! "
        "video/x-raw,format=I420 ! fakesink", ch);
    cons[i] = spawn_producer (l);
    g_free (l);
  }
  g_usleep (G_USEC_PER_SEC / 2); /* all four waiting before the producer starts */
  gchar *prod = g_strdup_printf ("videotestsrc num-buffers=60 ! video/x-raw,format=I420,"
      "width=160,height=120 ! datahubsink channel=%s wait-for-consumer=true", ch);
  GPid pid = spawn_producer (prod);
  fail_unless_equals_int (wait_producer (pid), 0);
  for (int i = 0; i < 4; i++)
    fail_unless_equals_int (wait_producer (cons[i]), 0); /* each saw EOS */
  g_free (prod);
  g_free (ch);
}
GST_END_TEST;

static guint64
stat_u64 (GstElement *e, const gchar *field)
{
  GstStructure *stats;
  guint64 v = G_MAXUINT64;
  g_object_get (e, "stats", &stats, NULL);
  fail_unless (gst_structure_get_uint64 (stats, field, &v), "no %s in stats", field);
  gst_structure_free (stats);
  return v;
}

static void
run_to_eos (GstElement *pipe)
{
  GstMessage *m = gst_bus_timed_pop_filtered (GST_ELEMENT_BUS (pipe), 20 * GST_SECOND,
      GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  fail_unless (m != NULL, "no EOS within 20 s");
  if (GST_MESSAGE_TYPE (m) == GST_MESSAGE_ERROR) {
    GError *err;
    gst_message_parse_error (m, &err, NULL);
    fail ("error: %s", err->message);
  }
  gst_message_unref (m);
}

/* Zero copy: videotestsrc renders into the sink's slot pool (0 bytes
 * copied by the sink) and the src wraps slot memory (0 bytes copied). */
GST_START_TEST (test_zero_copy)
{
  gchar *ch = channel ("zc");
  gchar *cl = g_strdup_printf ("datahubsrc name=src channel=%s timeout=20000 ! fakesink", ch);
  GstElement *cons = gst_parse_launch (cl, NULL);
  GstElement *src = gst_bin_get_by_name (GST_BIN (cons), "src");
  gst_element_set_state (cons, GST_STATE_PLAYING);
  gchar *pl = g_strdup_printf ("videotestsrc num-buffers=20 ! video/x-raw,format=RGBA,"
      "width=320,height=240 ! datahubsink name=sink channel=%s wait-for-consumer=true", ch);
  GstElement *prod = gst_parse_launch (pl, NULL);
  GstElement *sink = gst_bin_get_by_name (GST_BIN (prod), "sink");
  gst_element_set_state (prod, GST_STATE_PLAYING);
  run_to_eos (prod);
  run_to_eos (cons);
  fail_unless_equals_uint64 (stat_u64 (sink, "bytes-copied"), 0);
  fail_unless (stat_u64 (sink, "written") >= 20); /* 20 frames + event records */
  fail_unless_equals_uint64 (stat_u64 (src, "bytes-copied"), 0);
  fail_unless (stat_u64 (src, "consumer-read") >= 20);
  gst_element_set_state (prod, GST_STATE_NULL);
  gst_element_set_state (cons, GST_STATE_NULL);
  gst_object_unref (sink);
  gst_object_unref (src);
  gst_object_unref (prod);
  gst_object_unref (cons);
  g_free (pl);
  g_free (cl);
  g_free (ch);
}
GST_END_TEST;

static Suite *
datahub_suite (void)
{
  Suite *s = suite_create ("datahub-elements");
  TCase *tc = tcase_create ("general");
  tcase_set_timeout (tc, 120);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_video_formats);
  tcase_add_test (tc, test_audio);
  tcase_add_test (tc, test_caps_eos_cleanup);
  tcase_add_test (tc, test_four_consumers);
  tcase_add_test (tc, test_zero_copy);
  return s;
}

GST_CHECK_MAIN (datahub);
