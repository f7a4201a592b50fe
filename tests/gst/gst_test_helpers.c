#include "gst_test_helpers.h"

#include <dirent.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gst/app/gstappsink.h>
#include <gst/check/gstcheck.h>
#include <gst/video/video.h>

/* SHA-1 of what a viewer would see: for video only the visible bytes of
 * each row of each plane (row padding is uninitialised memory in pools), for
 * anything else every byte. */
gchar *
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

void
frame_free (gpointer p)
{
  Frame *f = p;
  g_free (f->sha1);
  g_free (f);
}

/* Runs @launch (ending in "appsink name=out") to EOS or @max frames and
 * returns the frames; @caps_out gets the last caps seen. */
GPtrArray *
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
GPid
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

gint
wait_producer (GPid pid)
{
  int status;
  waitpid (pid, &status, 0);
  g_spawn_close_pid (pid);
  return WIFEXITED (status) ? WEXITSTATUS (status) : 128 + WTERMSIG (status);
}

gchar *
channel (const gchar *what)
{
  return g_strdup_printf ("gsttest-%s-%d", what, (int) getpid ());
}

void
remove_channel_objects (const gchar *ch)
{
  gchar *block = g_strdup_printf ("datahub.%s", ch);
  gsize len = strlen (block);
  DIR *d = opendir ("/dev/shm");
  struct dirent *e;
  while (d && (e = readdir (d))) {
    if (strncmp (e->d_name, block, len) != 0 || (e->d_name[len] && e->d_name[len] != '@'))
      continue;
    gchar *name = g_strdup_printf ("/%s", e->d_name);
    shm_unlink (name);
    g_free (name);
  }
  if (d)
    closedir (d);
  g_free (block);
}

void
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

guint64
stat_u64 (GstElement *e, const gchar *field)
{
  GstStructure *stats;
  guint64 v = G_MAXUINT64;
  g_object_get (e, "stats", &stats, NULL);
  fail_unless (gst_structure_get_uint64 (stats, field, &v), "no %s in stats", field);
  gst_structure_free (stats);
  return v;
}

void
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

/* Runs @pipe until a message of @types from anywhere; returns it (ref). */
GstMessage *
wait_message (GstElement *pipe, GstMessageType types, GstClockTime timeout)
{
  return gst_bus_timed_pop_filtered (GST_ELEMENT_BUS (pipe), timeout, types);
}

gchar *
error_of (GstElement *pipe)
{
  GstMessage *m = wait_message (pipe, GST_MESSAGE_ERROR | GST_MESSAGE_EOS, 20 * GST_SECOND);
  fail_unless (m && GST_MESSAGE_TYPE (m) == GST_MESSAGE_ERROR, "expected an error");
  GError *err;
  gst_message_parse_error (m, &err, NULL);
  gchar *text = g_strdup (err->message);
  g_error_free (err);
  gst_message_unref (m);
  return text;
}

static GstElement *
launch_playing (const gchar *desc)
{
  GError *err = NULL;
  GstElement *pipe = gst_parse_launch (desc, &err);
  fail_unless (pipe != NULL, "%s: %s", desc, err ? err->message : "?");
  gst_element_set_state (pipe, GST_STATE_PLAYING);
  return pipe;
}

void
app_pair_start (AppPair *p, const gchar *what, const gchar *src_props,
    const gchar *sink_props)
{
  p->channel = channel (what);
  gchar *cl = g_strdup_printf ("datahubsrc name=src channel=%s timeout=20000 %s ! "
      "appsink name=out sync=false", p->channel, src_props);
  p->cons = launch_playing (cl);
  p->src = gst_bin_get_by_name (GST_BIN (p->cons), "src");
  p->out = gst_bin_get_by_name (GST_BIN (p->cons), "out");
  gchar *pl = g_strdup_printf ("appsrc name=in format=time ! datahubsink name=sink "
      "channel=%s %s", p->channel, sink_props);
  p->prod = launch_playing (pl);
  p->in = gst_bin_get_by_name (GST_BIN (p->prod), "in");
  p->sink = gst_bin_get_by_name (GST_BIN (p->prod), "sink");
  g_free (cl);
  g_free (pl);
}

void
app_pair_stop (AppPair *p)
{
  gst_element_set_state (p->prod, GST_STATE_NULL);
  gst_element_set_state (p->cons, GST_STATE_NULL);
}

void
app_pair_free (AppPair *p)
{
  app_pair_stop (p);
  gst_object_unref (p->in);
  gst_object_unref (p->sink);
  gst_object_unref (p->prod);
  gst_object_unref (p->src);
  gst_object_unref (p->out);
  gst_object_unref (p->cons);
  g_free (p->channel);
}

GPid
fork_waiting (int (*run) (gpointer data), gpointer data, int *go)
{
  int fds[2];
  fail_unless (pipe (fds) == 0);
  pid_t pid = fork ();
  fail_unless (pid >= 0);
  if (pid == 0) {
    close (fds[1]);
    char c;
    if (read (fds[0], &c, 1) != 1)
      _exit (1);
    _exit (run (data));
  }
  close (fds[0]);
  *go = fds[1];
  return pid;
}

void
release_waiting (int go)
{
  fail_unless (write (go, "g", 1) == 1);
  close (go);
}

void
child_succeeded (GPid pid)
{
  int status;
  fail_unless (waitpid (pid, &status, 0) == pid);
  fail_unless (WIFEXITED (status) && WEXITSTATUS (status) == 0,
      "child %d failed: status %d", (int) pid, status);
}

static GstPadProbeReturn
reads_video_meta (GstPad *pad, GstPadProbeInfo *info, gpointer user)
{
  (void) pad;
  (void) user;
  GstQuery *q = GST_PAD_PROBE_INFO_QUERY (info);
  if (GST_QUERY_TYPE (q) != GST_QUERY_ALLOCATION)
    return GST_PAD_PROBE_OK;
  gst_query_add_allocation_meta (q, GST_VIDEO_META_API_TYPE, NULL);
  return GST_PAD_PROBE_HANDLED; /* answered: appsink adds nothing */
}

void
appsink_reads_video_meta (GstElement *appsink)
{
  GstPad *pad = gst_element_get_static_pad (appsink, "sink");
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_QUERY_DOWNSTREAM, reads_video_meta, NULL, NULL);
  gst_object_unref (pad);
}
