/* datahub-gst-embed: a C application embedding both elements.
 *
 * One process, two pipelines, as two applications on one machine would
 * have them: a producer (videotestsrc -> datahubsink) and a consumer
 * (datahubsrc -> appsink) that counts frames, checks their caps, and reads
 * the metadata the producer publishes.  Run with the plugin on the path:
 *   GST_PLUGIN_PATH_1_0=build/gst build/examples/datahub-gst-embed
 */
#include <gst/app/gstappsink.h>
#include <gst/gst.h>

static GstElement *
launch (const char *description)
{
  GError *err = NULL;
  GstElement *p = gst_parse_launch (description, &err);
  if (!p) {
    g_printerr ("%s: %s\n", description, err->message);
    exit (1);
  }
  return p;
}

int
main (int argc, char **argv)
{
  gst_init (&argc, &argv);
  GstElement *producer = launch ("videotestsrc num-buffers=90 ! "
      "video/x-raw,format=NV12,width=640,height=360,framerate=30/1 ! "
      "datahubsink name=sink channel=embed-example wait-for-consumer=true");
  GstElement *consumer = launch ("datahubsrc name=src channel=embed-example ! "
      "appsink name=out sync=false");
  GstElement *sink = gst_bin_get_by_name (GST_BIN (producer), "sink");
  GstStructure *md = gst_structure_new ("example", "camera", G_TYPE_STRING, "left", NULL);
  g_object_set (sink, "metadata", md, NULL);
  gst_structure_free (md);

  gst_element_set_state (consumer, GST_STATE_PLAYING);
  gst_element_set_state (producer, GST_STATE_PLAYING);

  GstElement *out = gst_bin_get_by_name (GST_BIN (consumer), "out");
  guint frames = 0;
  GstSample *s;
  while ((s = gst_app_sink_try_pull_sample (GST_APP_SINK (out), 10 * GST_SECOND))) {
    if (frames == 0) {
      gchar *caps = gst_caps_to_string (gst_sample_get_caps (s));
      g_print ("caps from the producer: %s\n", caps);
      g_free (caps);
    }
    frames++;
    gst_sample_unref (s);
  }
  GstElement *src = gst_bin_get_by_name (GST_BIN (consumer), "src");
  GstStructure *got = NULL, *stats = NULL;
  g_object_get (src, "metadata", &got, "stats", &stats, NULL);
  gchar *got_str = got ? gst_structure_to_string (got) : g_strdup ("(none)");
  guint64 copied = 0;
  gst_structure_get_uint64 (stats, "bytes-copied", &copied);
  g_print ("received %u frames until EOS; metadata %s; bytes copied by the src %"
      G_GUINT64_FORMAT "\n", frames, got_str, copied);
  g_free (got_str);
  if (got)
    gst_structure_free (got);
  gst_structure_free (stats);

  gst_element_set_state (producer, GST_STATE_NULL);
  gst_element_set_state (consumer, GST_STATE_NULL);
  gst_object_unref (src);
  gst_object_unref (out);
  gst_object_unref (sink);
  gst_object_unref (producer);
  gst_object_unref (consumer);
  return frames == 90 ? 0 : 1;
}
