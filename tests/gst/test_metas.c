/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Metas across processes: a producer process (forked, an appsrc
 * application) sends NV12 frames with non-default strides and offsets,
 * rendered into slot memory from the allocator the sink offers, each with
 * regions of interest (with params), a crop, a time code, a reference
 * timestamp, an application's custom meta and a meta datahub does not
 * carry.  Consumers started first check every frame's bytes (padding
 * included), its layout and every meta against the frame's index:
 * - one whose downstream reads GstVideoMeta gets the producer's layout
 *   and its slot memory (0 bytes copied on both sides);
 * - filesink, which does not, gets frames repacked into the caps' layout.
 * A producer that writes a layout not fitting its frame gets its frames
 * dropped by consumers with a warning that says so. */
#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>
#include <gst/check/gstcheck.h>
#include <gst/video/video.h>
#include <glib/gstdio.h>

#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gst_test_helpers.h"
#include "metas_fixture.h"

#define FRAMES 60
#define WIDTH FIXTURE_WIDTH
#define HEIGHT FIXTURE_HEIGHT
#define CAPS "video/x-raw,format=NV12,width=64,height=48,framerate=30/1"
/* the producer's layout: rows of 80 bytes, a 64-byte gap before UV */
#define STRIDE FIXTURE_STRIDE
#define UV_OFFSET FIXTURE_UV_OFFSET
#define FRAME_SIZE FIXTURE_FRAME_SIZE

static guint8
byte_at (guint index, gsize at)
{
  return (guint8) (index * 7 + at * 13 + (at >> 8));
}

static void
fill (guint8 *data, guint index)
{
  for (gsize at = 0; at < FRAME_SIZE; at++)
    data[at] = byte_at (index, at);
}

/* ---- the producer process ------------------------------------------------ */

typedef enum { PRODUCE_GOOD, PRODUCE_BAD_LAYOUT } Produce;

/* Returns the exit status: 0, or the number of the check that failed. */
static int
produce (const gchar *ch, Produce how)
{
  gchar *launch = g_strdup_printf ("appsrc name=in format=time caps=" CAPS
      " ! datahubsink name=sink channel=%s", ch);
  GstElement *pipe = gst_parse_launch (launch, NULL);
  g_free (launch);
  GstElement *in = gst_bin_get_by_name (GST_BIN (pipe), "in");
  GstElement *sink = gst_bin_get_by_name (GST_BIN (pipe), "sink");
  gst_element_set_state (pipe, GST_STATE_PLAYING);
  /* what an application does to render into shared memory: allocate from
   * the allocator the sink offers */
  GstCaps *caps = gst_caps_from_string (CAPS);
  GstQuery *q = gst_query_new_allocation (caps, TRUE);
  gst_caps_unref (caps);
  GstPad *pad = gst_element_get_static_pad (in, "src");
  GstAllocator *allocator = NULL;
  if (gst_pad_peer_query (pad, q) && gst_query_get_n_allocation_params (q) > 0)
    gst_query_parse_nth_allocation_param (q, 0, &allocator, NULL);
  gst_query_unref (q);
  gst_object_unref (pad);
  if (!allocator)
    return 2;
  for (guint i = 0; i < FRAMES; i++) {
    GstBuffer *buf = gst_buffer_new ();
    gst_buffer_append_memory (buf, gst_allocator_alloc (allocator, FRAME_SIZE, NULL));
    GstMapInfo map;
    gst_buffer_map (buf, &map, GST_MAP_WRITE);
    fill (map.data, i);
    gst_buffer_unmap (buf, &map);
    add_metas (buf, i);
    if (how == PRODUCE_BAD_LAYOUT && i % 2 == 1) {
      /* a plane that ends past the frame's bytes */
      gst_buffer_get_video_meta (buf)->offset[1] = FRAME_SIZE - 8;
    }
    GST_BUFFER_PTS (buf) = i * GST_SECOND / 30;
    GST_BUFFER_DURATION (buf) = GST_SECOND / 30;
    if (gst_app_src_push_buffer (GST_APP_SRC (in), buf) != GST_FLOW_OK)
      return 3;
  }
  gst_object_unref (allocator);
  gst_app_src_end_of_stream (GST_APP_SRC (in));
  GstMessage *m = gst_bus_timed_pop_filtered (GST_ELEMENT_BUS (pipe), 30 * GST_SECOND,
      GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  if (!m || GST_MESSAGE_TYPE (m) != GST_MESSAGE_EOS)
    return 4;
  gst_message_unref (m);
  int rc = 0;
  guint64 copied = G_MAXUINT64, dropped = 0;
  GstStructure *stats;
  g_object_get (sink, "stats", &stats, NULL);
  gst_structure_get_uint64 (stats, "bytes-copied", &copied);
  gst_structure_get_uint64 (stats, "metas-dropped", &dropped);
  gst_structure_free (stats);
  if (copied != 0) {
    g_printerr ("producer: bytes-copied %" G_GUINT64_FORMAT "\n", copied);
    rc = 5;
  }
  if (dropped != FRAMES) { /* the protection meta of every frame */
    g_printerr ("producer: metas-dropped %" G_GUINT64_FORMAT "\n", dropped);
    rc = 6;
  }
  gst_element_set_state (pipe, GST_STATE_NULL);
  gst_object_unref (in);
  gst_object_unref (sink);
  gst_object_unref (pipe);
  return rc;
}

typedef struct {
  const gchar *ch;
  Produce how;
} ProducerArgs;

static int
run_producer (gpointer data)
{
  ProducerArgs *a = data;
  return produce (a->ch, a->how);
}

/* Forks the producer; it starts when @go is released. */
static GPid
fork_producer (const gchar *ch, Produce how, int *go)
{
  ProducerArgs a = { ch, how };
  return fork_waiting (run_producer, &a, go);
}

static GstElement *
start_consumer (const gchar *launch)
{
  GstElement *pipe = gst_parse_launch (launch, NULL);
  fail_unless (pipe != NULL, "%s", launch);
  GstElement *out = gst_bin_get_by_name (GST_BIN (pipe), "out");
  if (out) {
    appsink_reads_video_meta (out);
    gst_object_unref (out);
  }
  fail_unless (gst_element_set_state (pipe, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  return pipe;
}

static void
check_frame_as_sent (GstBuffer *buf, guint index)
{
  GstVideoMeta *vm = gst_buffer_get_video_meta (buf);
  fail_unless (vm != NULL);
  fail_unless (vm->n_planes == 2 && vm->stride[0] == STRIDE && vm->stride[1] == STRIDE
      && vm->offset[0] == 0 && vm->offset[1] == UV_OFFSET,
      "frame %u: strides %d/%d offsets %" G_GSIZE_FORMAT "/%" G_GSIZE_FORMAT, index,
      vm->stride[0], vm->stride[1], vm->offset[0], vm->offset[1]);
  GstMapInfo map;
  fail_unless (gst_buffer_map (buf, &map, GST_MAP_READ));
  fail_unless_equals_uint64 (map.size, FRAME_SIZE);
  for (gsize at = 0; at < FRAME_SIZE; at++)
    fail_unless (map.data[at] == byte_at (index, at), "frame %u byte %" G_GSIZE_FORMAT,
        index, at);
  gst_buffer_unmap (buf, &map);
}

/* The frame in the caps' default layout, as filesink must have written it. */
static void
append_default_layout (GByteArray *want, guint index)
{
  GstVideoInfo vi;
  GstCaps *caps = gst_caps_from_string (CAPS);
  gst_video_info_from_caps (&vi, caps);
  gst_caps_unref (caps);
  guint at = want->len;
  g_byte_array_set_size (want, at + (guint) vi.size);
  memset (want->data + at, 0, vi.size);
  const gsize src_offset[2] = { 0, UV_OFFSET };
  for (guint p = 0; p < 2; p++)
    for (guint y = 0; y < (p ? HEIGHT / 2 : HEIGHT); y++)
      for (guint x = 0; x < WIDTH; x++)
        want->data[at + vi.offset[p] + y * (gsize) vi.stride[p] + x] =
            byte_at (index, src_offset[p] + y * STRIDE + x);
}

GST_START_TEST (test_metas_and_layout_arrive)
{
  gchar *ch = channel ("metas");
  gchar *file = g_strdup_printf ("%s/datahub-metas-%d.yuv", g_get_tmp_dir (), (int) getpid ());
  int go;
  GPid pid = fork_producer (ch, PRODUCE_GOOD, &go);
  /* one buffer queued: the src's holds never run out, so nothing is copied */
  gchar *l1 = g_strdup_printf ("datahubsrc name=src channel=%s timeout=20000 ! "
      "appsink name=out sync=false max-buffers=1", ch);
  gchar *l2 = g_strdup_printf ("datahubsrc channel=%s timeout=20000 ! filesink location=%s",
      ch, file);
  GstElement *a = start_consumer (l1), *b = start_consumer (l2);
  release_waiting (go);
  GstElement *out = gst_bin_get_by_name (GST_BIN (a), "out");
  for (guint i = 0; i < FRAMES; i++) {
    GstSample *s = gst_app_sink_try_pull_sample (GST_APP_SINK (out), 20 * GST_SECOND);
    fail_unless (s != NULL, "frame %u did not come", i);
    GstBuffer *buf = gst_sample_get_buffer (s);
    check_frame_as_sent (buf, i);
    check_metas (buf, i);
    gst_sample_unref (s);
  }
  fail_unless (gst_app_sink_try_pull_sample (GST_APP_SINK (out), 5 * GST_SECOND) == NULL);
  fail_unless (gst_app_sink_is_eos (GST_APP_SINK (out)));
  GstElement *src = gst_bin_get_by_name (GST_BIN (a), "src");
  fail_unless_equals_uint64 (stat_u64 (src, "bytes-copied"), 0);
  fail_unless_equals_uint64 (stat_u64 (src, "metas-dropped"), 0);
  run_to_eos (b);
  child_succeeded (pid);

  GByteArray *want = g_byte_array_new ();
  for (guint i = 0; i < FRAMES; i++)
    append_default_layout (want, i);
  gchar *got;
  gsize len;
  fail_unless (g_file_get_contents (file, &got, &len, NULL));
  fail_unless_equals_uint64 (len, want->len);
  fail_unless (memcmp (got, want->data, len) == 0, "filesink's frames differ");
  g_free (got);
  g_byte_array_unref (want);

  gst_element_set_state (a, GST_STATE_NULL);
  gst_element_set_state (b, GST_STATE_NULL);
  gst_object_unref (src);
  gst_object_unref (out);
  gst_object_unref (a);
  gst_object_unref (b);
  g_unlink (file);
  g_free (file);
  g_free (l1);
  g_free (l2);
  g_free (ch);
}
GST_END_TEST;

GST_START_TEST (test_layout_outside_frame_dropped_with_warning)
{
  gchar *ch = channel ("badlayout");
  int go;
  GPid pid = fork_producer (ch, PRODUCE_BAD_LAYOUT, &go);
  gchar *l = g_strdup_printf ("datahubsrc name=src channel=%s timeout=20000 ! "
      "appsink name=out sync=false max-buffers=%d", ch, FRAMES + 1);
  GstElement *a = start_consumer (l);
  release_waiting (go);
  GstElement *out = gst_bin_get_by_name (GST_BIN (a), "out");
  /* the even frames, intact; the odd ones dropped, each a gap */
  for (guint i = 0; i < FRAMES; i += 2) {
    GstSample *s = gst_app_sink_try_pull_sample (GST_APP_SINK (out), 20 * GST_SECOND);
    fail_unless (s != NULL, "frame %u did not come", i);
    GstBuffer *buf = gst_sample_get_buffer (s);
    check_frame_as_sent (buf, i);
    check_metas (buf, i);
    if (i > 0)
      fail_unless (GST_BUFFER_FLAG_IS_SET (buf, GST_BUFFER_FLAG_DISCONT));
    gst_sample_unref (s);
  }
  fail_unless (gst_app_sink_try_pull_sample (GST_APP_SINK (out), 5 * GST_SECOND) == NULL);
  GstMessage *m = gst_bus_pop_filtered (GST_ELEMENT_BUS (a), GST_MESSAGE_WARNING);
  fail_unless (m != NULL, "no warning");
  GError *err;
  gchar *debug;
  gst_message_parse_warning (m, &err, &debug);
  fail_unless (strstr (err->message, "layout") != NULL, "%s", err->message);
  fail_unless (strstr (debug, "NV12 64x48") != NULL, "%s", debug);
  g_error_free (err);
  g_free (debug);
  gst_message_unref (m);
  child_succeeded (pid);
  gst_element_set_state (a, GST_STATE_NULL);
  gst_object_unref (out);
  gst_object_unref (a);
  g_free (l);
  g_free (ch);
}
GST_END_TEST;

static Suite *
metas_suite (void)
{
  metas_fixture_register ();
  Suite *s = suite_create ("datahub-metas");
  TCase *tc = tcase_create ("metas");
  tcase_set_timeout (tc, 120);
  tcase_add_test (tc, test_metas_and_layout_arrive);
  tcase_add_test (tc, test_layout_outside_frame_dropped_with_warning);
  suite_add_tcase (s, tc);
  return s;
}

GST_CHECK_MAIN (metas);
