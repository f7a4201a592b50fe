/* gst-check tests of datahubsink and datahubsrc.  Producers run as real
 * separate processes (gst-launch-1.0 with the plugin from the build tree);
 * consumers run here with an appsink, and every frame is compared byte for
 * byte and timestamp for timestamp with the same source run locally. */
#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <gst/video/video.h>

#include "datahub/datahub.h"
#include "gst_test_helpers.h"
#include <signal.h>
#include <sys/wait.h>

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

/* Four consumer processes on one channel, each with its own pace, each
 * gets 30 frames in a row and ends cleanly (num-buffers, then EOS). */
GST_START_TEST (test_four_consumers)
{
  gchar *ch = channel ("four");
  gchar *prod = g_strdup_printf ("videotestsrc is-live=true ! video/x-raw,format=I420,"
      "width=160,height=120,framerate=100/1 ! datahubsink channel=%s", ch);
  GPid pid = spawn_producer (prod);
  GPid cons[4];
  for (int i = 0; i < 4; i++) {
    gchar *l = g_strdup_printf ("datahubsrc channel=%s timeout=20000 num-buffers=30 ! "
        "video/x-raw,format=I420 ! fakesink", ch);
    cons[i] = spawn_producer (l);
    g_free (l);
  }
  for (int i = 0; i < 4; i++)
    fail_unless_equals_int (wait_producer (cons[i]), 0);
  kill (pid, SIGINT);
  wait_producer (pid);
  g_free (prod);
  g_free (ch);
}
GST_END_TEST;

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

static GstBuffer *
gray_buffer (guint size, guint8 value, GstClockTime pts)
{
  GstBuffer *b = gst_buffer_new_allocate (NULL, size, NULL);
  gst_buffer_memset (b, 0, value, size);
  GST_BUFFER_PTS (b) = pts;
  GST_BUFFER_DURATION (b) = GST_MSECOND;
  return b;
}

/* Caps change mid-stream: the consumer sees the new caps exactly from the
 * first buffer of the new size on, in order. */
GST_START_TEST (test_caps_change)
{
  AppPair p;
  app_pair_start (&p, "capschange", "", "slot-size=4096 wait-for-consumer=true");
  GstElement *in = p.in, *out = p.out;
  GstCaps *a = gst_caps_from_string ("video/x-raw,format=GRAY8,width=4,height=4,framerate=0/1");
  GstCaps *b = gst_caps_from_string ("video/x-raw,format=GRAY8,width=8,height=8,framerate=0/1");
  gst_app_src_set_caps (GST_APP_SRC (in), a);
  for (guint i = 0; i < 3; i++)
    gst_app_src_push_buffer (GST_APP_SRC (in), gray_buffer (16, (guint8) i, i * GST_MSECOND));
  gst_app_src_set_caps (GST_APP_SRC (in), b);
  for (guint i = 3; i < 6; i++)
    gst_app_src_push_buffer (GST_APP_SRC (in), gray_buffer (64, (guint8) i, i * GST_MSECOND));
  gst_app_src_end_of_stream (GST_APP_SRC (in));
  for (guint i = 0; i < 6; i++) {
    GstSample *smp = gst_app_sink_try_pull_sample (GST_APP_SINK (out), 20 * GST_SECOND);
    fail_unless (smp != NULL, "sample %u missing", i);
    GstBuffer *buf = gst_sample_get_buffer (smp);
    fail_unless (gst_caps_is_equal (gst_sample_get_caps (smp), i < 3 ? a : b),
        "sample %u has the wrong caps", i);
    fail_unless_equals_uint64 (gst_buffer_get_size (buf), i < 3 ? 16 : 64);
    fail_unless_equals_uint64 (GST_BUFFER_PTS (buf), i * GST_MSECOND);
    guint8 value;
    gst_buffer_extract (buf, 0, &value, 1);
    fail_unless_equals_int (value, i);
    gst_sample_unref (smp);
  }
  run_to_eos (p.cons);
  gst_caps_unref (a);
  gst_caps_unref (b);
  app_pair_free (&p);
}
GST_END_TEST;

/* Metadata set on the sink while playing reaches the src: property and a
 * datahub-metadata bus message. */
GST_START_TEST (test_metadata)
{
  gchar *ch = channel ("meta");
  gchar *pl = g_strdup_printf ("videotestsrc is-live=true ! video/x-raw,width=64,height=48 ! "
      "datahubsink name=sink channel=%s", ch);
  GstElement *prod = gst_parse_launch (pl, NULL);
  GstElement *sink = gst_bin_get_by_name (GST_BIN (prod), "sink");
  gst_element_set_state (prod, GST_STATE_PLAYING);
  gchar *cl = g_strdup_printf ("datahubsrc name=src channel=%s timeout=20000 ! fakesink", ch);
  GstElement *cons = gst_parse_launch (cl, NULL);
  GstElement *src = gst_bin_get_by_name (GST_BIN (cons), "src");
  gst_element_set_state (cons, GST_STATE_PLAYING);
  GstStructure *md = gst_structure_from_string ("camera, id=(int)7, name=(string)left", NULL);
  g_object_set (sink, "metadata", md, NULL);
  GstMessage *m;
  const GstStructure *got = NULL;
  while ((m = wait_message (cons, GST_MESSAGE_ELEMENT | GST_MESSAGE_ERROR, 10 * GST_SECOND))) {
    fail_if (GST_MESSAGE_TYPE (m) == GST_MESSAGE_ERROR);
    if (gst_message_has_name (m, "datahub-metadata")) {
      const GValue *v = gst_structure_get_value (gst_message_get_structure (m), "metadata");
      got = gst_value_get_structure (v);
      fail_unless (gst_structure_is_equal (got, md));
      gst_message_unref (m);
      break;
    }
    gst_message_unref (m);
  }
  fail_unless (got != NULL, "no datahub-metadata message");
  GstStructure *prop = NULL;
  g_object_get (src, "metadata", &prop, NULL);
  fail_unless (prop && gst_structure_is_equal (prop, md));
  gst_structure_free (prop);
  gst_structure_free (md);
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

/* SIGKILL of the producer process: the src warns, waits, and resumes with
 * the next producer on the channel. */
GST_START_TEST (test_producer_restart)
{
  gchar *ch = channel ("restart");
  gchar *pl = g_strdup_printf ("videotestsrc is-live=true ! video/x-raw,format=I420,"
      "width=64,height=48,framerate=100/1 ! datahubsink channel=%s", ch);
  gchar *cl = g_strdup_printf ("datahubsrc channel=%s timeout=20000 ! appsink name=out "
      "sync=false", ch);
  GPid pid = spawn_producer (pl);
  GstElement *cons = NULL;
  GPtrArray *before = collect (cl, 20, NULL, &cons);
  fail_unless_equals_int (before->len, 20);
  kill (pid, SIGKILL);
  fail_unless_equals_int (wait_producer (pid), 128 + SIGKILL);
  GstMessage *m = wait_message (cons, GST_MESSAGE_WARNING, 10 * GST_SECOND);
  fail_unless (m != NULL, "no warning about the dead producer");
  gst_message_unref (m);
  pid = spawn_producer (pl);
  GstElement *out = gst_bin_get_by_name (GST_BIN (cons), "out");
  for (int i = 0; i < 20; i++) {
    GstSample *s = gst_app_sink_try_pull_sample (GST_APP_SINK (out), 20 * GST_SECOND);
    fail_unless (s != NULL, "no frame %d after the restart", i);
    gst_sample_unref (s);
  }
  kill (pid, SIGINT); /* gst-launch stops the pipeline: the block is unlinked */
  wait_producer (pid);
  gst_element_set_state (cons, GST_STATE_NULL);
  gst_object_unref (out);
  gst_object_unref (cons);
  g_ptr_array_unref (before);
  g_free (pl);
  g_free (cl);
  g_free (ch);
}
GST_END_TEST;

/* A wrong secret fails with an error that says so; reconnect=false fails
 * when the producer goes away. */
GST_START_TEST (test_errors)
{
  gchar *ch = channel ("secret");
  gchar *pl = g_strdup_printf ("videotestsrc is-live=true ! video/x-raw,width=64,height=48 ! "
      "datahubsink channel=%s secret=right-secret integrity=hmac", ch);
  GstElement *prod = gst_parse_launch (pl, NULL);
  gst_element_set_state (prod, GST_STATE_PLAYING);
  gchar *cl = g_strdup_printf ("datahubsrc channel=%s secret=wrong-secret ! fakesink", ch);
  GstElement *cons = gst_parse_launch (cl, NULL);
  gst_element_set_state (cons, GST_STATE_PLAYING);
  gchar *text = error_of (cons);
  fail_unless (strstr (text, "Wrong or missing secret") != NULL, "got: %s", text);
  g_free (text);
  gst_element_set_state (cons, GST_STATE_NULL);
  gst_object_unref (cons);
  g_free (cl);
  /* the right secret (and HMAC-checked n_buffers) work */
  cl = g_strdup_printf ("datahubsrc channel=%s secret=right-secret reconnect=false ! "
      "appsink name=out sync=false", ch);
  cons = NULL;
  GPtrArray *frames = collect (cl, 10, NULL, &cons);
  fail_unless_equals_int (frames->len, 10);
  /* the producer stops: reconnect=false turns that into an error */
  gst_element_set_state (prod, GST_STATE_NULL);
  text = error_of (cons);
  fail_unless (strstr (text, "producer stopped") != NULL, "got: %s", text);
  g_free (text);
  gst_element_set_state (cons, GST_STATE_NULL);
  gst_object_unref (cons);
  gst_object_unref (prod);
  g_ptr_array_unref (frames);
  g_free (cl);
  g_free (pl);
  g_free (ch);
}
GST_END_TEST;

/* GstHarness on the sink alone: n_buffers pushed in are records a library
 * consumer reads back, with timestamps in the descriptors. */
GST_START_TEST (test_harness_sink)
{
  gchar *ch = channel ("harness");
  GstHarness *h = gst_harness_new ("datahubsink");
  g_object_set (h->element, "channel", ch, "slot-size", (guint64) 1024, NULL);
  gst_harness_set_src_caps_str (h, "application/x-test");
  gst_harness_play (h);
  dh_consumer_config cc;
  dh_consumer_config_init (&cc);
  cc.name = ch;
  cc.start = DH_START_OLDEST;
  dh_consumer *c;
  fail_unless_equals_int (dh_consumer_attach (&cc, &c), 0);
  for (guint i = 0; i < 5; i++) {
    GstBuffer *b = gray_buffer (100 + i, (guint8) (0x40 + i), (i + 1) * GST_SECOND);
    fail_unless_equals_int (gst_harness_push (h, b), GST_FLOW_OK);
  }
  guint n_buffers = 0;
  dh_record r;
  while (dh_consumer_next (c, 1000, &r) == 0) {
    if (r.info.kind == 0) { /* DATAHUB_KIND_BUFFER */
      fail_unless_equals_uint64 (r.info.size, 100 + n_buffers);
      fail_unless_equals_int (((const guint8 *) r.data)[0], 0x40 + n_buffers);
      fail_unless_equals_uint64 (r.info.pts, (n_buffers + 1) * GST_SECOND);
      n_buffers++;
    }
    dh_consumer_release (c, &r);
    if (n_buffers == 5)
      break;
  }
  fail_unless_equals_int (n_buffers, 5);
  dh_consumer_detach (c);
  gst_harness_teardown (h);
  g_free (ch);
}
GST_END_TEST;

/* SIGKILL of a consumer process holding slots: the producer keeps going
 * (the dead consumer is reaped) and the sink reports it as dead. */
GST_START_TEST (test_consumer_killed)
{
  gchar *ch = channel ("killc");
  gchar *pl = g_strdup_printf ("videotestsrc is-live=true ! video/x-raw,format=I420,"
      "width=64,height=48,framerate=100/1 ! datahubsink name=sink channel=%s slots=4", ch);
  GstElement *prod = gst_parse_launch (pl, NULL);
  GstElement *sink = gst_bin_get_by_name (GST_BIN (prod), "sink");
  gst_element_set_state (prod, GST_STATE_PLAYING);
  gst_element_get_state (prod, NULL, NULL, 10 * GST_SECOND);
  /* a consumer that stops reading (a paused valve keeps its slots held) */
  gchar *cl = g_strdup_printf ("datahubsrc channel=%s ! identity sleep-time=1000000 ! "
      "fakesink", ch);
  GPid pid = spawn_producer (cl);
  GstMessage *m;
  gboolean attached = FALSE, dead = FALSE;
  while (!dead && (m = wait_message (prod, GST_MESSAGE_ELEMENT, 10 * GST_SECOND))) {
    const GstStructure *st = gst_message_get_structure (m);
    if (gst_structure_has_name (st, "datahub-consumer")) {
      const gchar *ev = gst_structure_get_string (st, "event");
      if (g_str_equal (ev, "attached") && !attached) {
        attached = TRUE;
        g_usleep (300000); /* the producer is now held back by it */
        kill (pid, SIGKILL);
      } else if (g_str_equal (ev, "dead")) {
        dead = TRUE;
      }
    }
    gst_message_unref (m);
  }
  fail_unless (attached && dead, "attached %d dead %d", attached, dead);
  fail_unless_equals_int (wait_producer (pid), 128 + SIGKILL);
  /* frames keep flowing without it */
  guint64 before = stat_u64 (sink, "written");
  g_usleep (300000);
  fail_unless (stat_u64 (sink, "written") > before + 10);
  gst_element_set_state (prod, GST_STATE_NULL);
  gst_object_unref (sink);
  gst_object_unref (prod);
  g_free (pl);
  g_free (cl);
  g_free (ch);
}
GST_END_TEST;

/* timestamp-mode=clock: a live consumer gets the producer's frame times on
 * its own running time, so it renders them on time (within a frame or two). */
GST_START_TEST (test_clock_timestamps)
{
  gchar *ch = channel ("clock");
  gchar *pl = g_strdup_printf ("videotestsrc is-live=true ! video/x-raw,width=64,height=48,"
      "framerate=50/1 ! datahubsink channel=%s", ch);
  GPid pid = spawn_producer (pl);
  gchar *cl = g_strdup_printf ("datahubsrc channel=%s is-live=true timestamp-mode=clock "
      "timeout=20000 ! appsink name=out sync=false", ch);
  GstElement *cons = gst_parse_launch (cl, NULL);
  GstElement *out = gst_bin_get_by_name (GST_BIN (cons), "out");
  gst_element_set_state (cons, GST_STATE_PLAYING);
  for (int i = 0; i < 25; i++) {
    GstSample *s = gst_app_sink_try_pull_sample (GST_APP_SINK (out), 20 * GST_SECOND);
    fail_unless (s != NULL);
    GstClock *clock = gst_element_get_clock (cons);
    GstClockTime now = gst_clock_get_time (clock) - gst_element_get_base_time (cons);
    GstClockTime pts = GST_BUFFER_PTS (gst_sample_get_buffer (s));
    fail_unless (GST_CLOCK_TIME_IS_VALID (pts));
    /* made by the producer before we got it, and not long before */
    fail_unless (pts <= now, "pts %" GST_TIME_FORMAT " after now %" GST_TIME_FORMAT,
        GST_TIME_ARGS (pts), GST_TIME_ARGS (now));
    fail_unless (now - pts < 200 * GST_MSECOND, "frame %d is %" GST_TIME_FORMAT " late",
        i, GST_TIME_ARGS (now - pts));
    gst_object_unref (clock);
    gst_sample_unref (s);
  }
  gst_element_set_state (cons, GST_STATE_NULL);
  kill (pid, SIGINT);
  wait_producer (pid);
  gst_object_unref (out);
  gst_object_unref (cons);
  g_free (pl);
  g_free (cl);
  g_free (ch);
}
GST_END_TEST;

/* Handover: frames grow beyond the slots (caps change, slot-size=0): the
 * sink moves to a block with larger slots, the src follows with no frame
 * lost, both post datahub-handover, and nothing is left in /dev/shm. */
GST_START_TEST (test_handover)
{
  AppPair p;
  app_pair_start (&p, "handover", "", "wait-for-consumer=true");
  GstElement *in = p.in, *out = p.out;
  const guint sizes[3] = { 16 * 16, 128 * 128, 512 * 512 };
  for (guint step = 0, n = 0; step < 3; step++) {
    guint side = step == 0 ? 16 : step == 1 ? 128 : 512;
    gchar *cs = g_strdup_printf ("video/x-raw,format=GRAY8,width=%u,height=%u,"
        "framerate=0/1", side, side);
    GstCaps *caps = gst_caps_from_string (cs);
    gst_app_src_set_caps (GST_APP_SRC (in), caps);
    gst_caps_unref (caps);
    g_free (cs);
    for (guint i = 0; i < 10; i++, n++)
      gst_app_src_push_buffer (GST_APP_SRC (in), gray_buffer (sizes[step], (guint8) n,
              n * GST_MSECOND));
  }
  gst_app_src_end_of_stream (GST_APP_SRC (in));
  for (guint n = 0; n < 30; n++) {
    GstSample *smp = gst_app_sink_try_pull_sample (GST_APP_SINK (out), 20 * GST_SECOND);
    fail_unless (smp != NULL, "frame %u missing", n);
    GstBuffer *buf = gst_sample_get_buffer (smp);
    fail_unless_equals_uint64 (gst_buffer_get_size (buf), sizes[n / 10]);
    fail_unless_equals_uint64 (GST_BUFFER_PTS (buf), n * GST_MSECOND);
    guint8 value;
    gst_buffer_extract (buf, sizes[n / 10] - 1, &value, 1);
    fail_unless_equals_int (value, n);
    gst_sample_unref (smp);
  }
  guint handovers = 0;
  GstMessage *m;
  while ((m = wait_message (p.cons, GST_MESSAGE_ELEMENT | GST_MESSAGE_EOS, 20 * GST_SECOND))) {
    gboolean eos = GST_MESSAGE_TYPE (m) == GST_MESSAGE_EOS;
    handovers += gst_message_has_name (m, "datahub-handover");
    gst_message_unref (m);
    if (eos)
      break;
  }
  fail_unless_equals_int (handovers, 2);
  run_to_eos (p.prod);
  app_pair_stop (&p);
  for (int i = 0; i < 3; i++) {
    gchar *path = i == 0 ? g_strdup_printf ("/dev/shm/datahub.%s", p.channel)
        : g_strdup_printf ("/dev/shm/datahub.%s.h%d", p.channel, i);
    fail_if (g_file_test (path, G_FILE_TEST_EXISTS), "%s left behind", path);
    g_free (path);
  }
  app_pair_free (&p);
}
GST_END_TEST;

/* A buffer with its own strides (GstVideoMeta) arrives in the caps'
 * default layout, pixels intact. */
GST_START_TEST (test_video_meta_strides)
{
  AppPair p;
  app_pair_start (&p, "strides", "", "wait-for-consumer=true");
  GstElement *in = p.in, *out = p.out;
  GstCaps *caps = gst_caps_from_string ("video/x-raw,format=GRAY8,width=6,height=3,"
      "framerate=0/1");
  gst_app_src_set_caps (GST_APP_SRC (in), caps);
  /* rows of 6 pixels with a stride of 16: pixel (x, y) = 10 * y + x */
  GstBuffer *b = gst_buffer_new_allocate (NULL, 48, NULL);
  GstMapInfo map;
  gst_buffer_map (b, &map, GST_MAP_WRITE);
  memset (map.data, 0xEE, 48);
  for (int y = 0; y < 3; y++)
    for (int x = 0; x < 6; x++)
      map.data[16 * y + x] = (guint8) (10 * y + x);
  gst_buffer_unmap (b, &map);
  gsize offsets[4] = { 0 };
  gint strides[4] = { 16 };
  gst_buffer_add_video_meta_full (b, GST_VIDEO_FRAME_FLAG_NONE, GST_VIDEO_FORMAT_GRAY8,
      6, 3, 1, offsets, strides);
  GST_BUFFER_PTS (b) = 0;
  gst_app_src_push_buffer (GST_APP_SRC (in), b);
  gst_app_src_end_of_stream (GST_APP_SRC (in));
  GstSample *smp = gst_app_sink_try_pull_sample (GST_APP_SINK (out), 20 * GST_SECOND);
  fail_unless (smp != NULL);
  GstVideoInfo info;
  gst_video_info_from_caps (&info, gst_sample_get_caps (smp));
  GstVideoFrame frame;
  fail_unless (gst_video_frame_map (&frame, &info, gst_sample_get_buffer (smp), GST_MAP_READ));
  const guint8 *px = GST_VIDEO_FRAME_PLANE_DATA (&frame, 0);
  gint stride = GST_VIDEO_FRAME_PLANE_STRIDE (&frame, 0);
  for (int y = 0; y < 3; y++)
    for (int x = 0; x < 6; x++)
      fail_unless_equals_int (px[y * stride + x], 10 * y + x);
  gst_video_frame_unmap (&frame);
  gst_sample_unref (smp);
  gst_caps_unref (caps);
  app_pair_free (&p);
}
GST_END_TEST;

static GstPadProbeReturn
catch_custom (GstPad *pad, GstPadProbeInfo *info, gpointer user)
{
  (void) pad;
  GstEvent *e = GST_PAD_PROBE_INFO_EVENT (info);
  if (GST_EVENT_TYPE (e) == GST_EVENT_CUSTOM_DOWNSTREAM && gst_event_has_name (e, "my-marker")) {
    gint n = 0;
    gst_structure_get_int (gst_event_get_structure (e), "n", &n);
    g_atomic_int_set ((gint *) user, n);
  }
  return GST_PAD_PROBE_OK;
}

/* Custom serialized events cross in order; a datahub-metadata event sets
 * the metadata every src reports; integrity=checksum verifies each buffer. */
GST_START_TEST (test_custom_events_and_checksum)
{
  AppPair p;
  app_pair_start (&p, "custom", "", "slot-size=4096 integrity=checksum wait-for-consumer=true");
  GstElement *in = p.in, *out = p.out;
  /* before anything is pushed, so the marker event cannot pass unseen */
  GstPad *pad = gst_element_get_static_pad (out, "sink");
  gint marker = 0;
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM, catch_custom, &marker, NULL);
  GstCaps *caps = gst_caps_from_string ("application/x-test");
  gst_app_src_set_caps (GST_APP_SRC (in), caps);
  gst_app_src_push_buffer (GST_APP_SRC (in), gray_buffer (100, 1, 0));
  /* appsrc sends serialized events in order with its buffers */
  GstStructure *md = gst_structure_new ("datahub-metadata", "camera", G_TYPE_STRING, "front", NULL);
  gst_element_send_event (in, gst_event_new_custom (GST_EVENT_CUSTOM_DOWNSTREAM,
          gst_structure_copy (md)));
  gst_element_send_event (in, gst_event_new_custom (GST_EVENT_CUSTOM_DOWNSTREAM,
          gst_structure_new ("my-marker", "n", G_TYPE_INT, 42, NULL)));
  gst_app_src_push_buffer (GST_APP_SRC (in), gray_buffer (100, 2, GST_MSECOND));
  gst_app_src_end_of_stream (GST_APP_SRC (in));
  for (int i = 1; i <= 2; i++) {
    GstSample *smp = gst_app_sink_try_pull_sample (GST_APP_SINK (out), 20 * GST_SECOND);
    fail_unless (smp != NULL);
    guint8 v;
    gst_buffer_extract (gst_sample_get_buffer (smp), 0, &v, 1);
    fail_unless_equals_int (v, i);
    if (i == 2) /* the marker came before buffer 2, and so was seen before it */
      fail_unless_equals_int (g_atomic_int_get (&marker), 42);
    gst_sample_unref (smp);
  }
  run_to_eos (p.cons);
  GstStructure *got = NULL;
  g_object_get (p.src, "metadata", &got, NULL);
  fail_unless (got && gst_structure_is_equal (got, md), "metadata from the event missing");
  fail_unless_equals_uint64 (stat_u64 (p.src, "checksum-failures"), 0);
  gst_structure_free (got);
  gst_structure_free (md);
  gst_caps_unref (caps);
  gst_object_unref (pad);
  app_pair_free (&p);
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
  tcase_add_test (tc, test_caps_change);
  tcase_add_test (tc, test_metadata);
  tcase_add_test (tc, test_producer_restart);
  tcase_add_test (tc, test_errors);
  tcase_add_test (tc, test_harness_sink);
  tcase_add_test (tc, test_consumer_killed);
  tcase_add_test (tc, test_clock_timestamps);
  tcase_add_test (tc, test_handover);
  tcase_add_test (tc, test_video_meta_strides);
  tcase_add_test (tc, test_custom_events_and_checksum);
  return s;
}

GST_CHECK_MAIN (datahub);
