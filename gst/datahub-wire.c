#include "datahub-wire.h"

#include <string.h>

#include <sodium.h>

gchar *
datahub_wire_event_to_string (GstEvent *event)
{
  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_FLUSH_START:
    case GST_EVENT_FLUSH_STOP:
    case GST_EVENT_RECONFIGURE:
    case GST_EVENT_LATENCY:
    case GST_EVENT_QOS:
    case GST_EVENT_SEEK:
    case GST_EVENT_NAVIGATION:
    case GST_EVENT_STEP:
      return NULL;
    case GST_EVENT_CAPS: {
      GstCaps *caps;
      gst_event_parse_caps (event, &caps);
      return gst_caps_to_string (caps);
    }
    case GST_EVENT_EOS:
      return g_strdup ("");
    default:
      break;
  }
  if (!GST_EVENT_IS_SERIALIZED (event) || !GST_EVENT_IS_DOWNSTREAM (event))
    return NULL;
  const GstStructure *s = gst_event_get_structure (event);
  return s ? gst_structure_to_string (s) : NULL;
}

GstEvent *
datahub_wire_event_from_string (GstEventType type, const gchar *text)
{
  if (type == GST_EVENT_CAPS) {
    GstCaps *caps = gst_caps_from_string (text);
    if (!caps)
      return NULL;
    GstEvent *e = gst_event_new_caps (caps);
    gst_caps_unref (caps);
    return e;
  }
  if (type == GST_EVENT_EOS)
    return gst_event_new_eos ();
  GstStructure *s = gst_structure_from_string (text, NULL);
  if (!s)
    return NULL;
  GstEvent *e = NULL;
  switch (type) {
    case GST_EVENT_SEGMENT: {
      const GValue *v = gst_structure_get_value (s, "segment");
      if (v && G_VALUE_HOLDS (v, GST_TYPE_SEGMENT))
        e = gst_event_new_segment (g_value_get_boxed (v));
      gst_structure_free (s);
      return e;
    }
    case GST_EVENT_TAG: {
      GstTagList *tags = NULL;
      if (gst_structure_get (s, "taglist", GST_TYPE_TAG_LIST, &tags, NULL))
        e = gst_event_new_tag (tags);
      gst_structure_free (s);
      return e;
    }
    case GST_EVENT_STREAM_START: {
      const gchar *id = gst_structure_get_string (s, "stream-id");
      e = gst_event_new_stream_start (id ? id : "datahub");
      guint group;
      if (gst_structure_get_uint (s, "group-id", &group))
        gst_event_set_group_id (e, group);
      gst_structure_free (s);
      return e;
    }
    default:
      /* custom serialized downstream events and the rest: same type,
       * same structure */
      return gst_event_new_custom (type, s);
  }
}

gchar *
datahub_wire_state_to_string (guint caps_gen, const GstCaps *caps,
    const GstSegment *segment)
{
  gchar *caps_str = caps ? gst_caps_to_string (caps) : g_strdup ("");
  gchar *seg_str = g_strdup ("");
  if (segment) {
    GstStructure *s = gst_structure_new ("segment", "segment", GST_TYPE_SEGMENT,
        segment, NULL);
    g_free (seg_str);
    seg_str = gst_structure_to_string (s);
    gst_structure_free (s);
  }
  gchar *out = g_strdup_printf ("%u\n%s\n%s", caps_gen, caps_str, seg_str);
  g_free (caps_str);
  g_free (seg_str);
  return out;
}

gboolean
datahub_wire_state_from_string (const gchar *text, guint *caps_gen,
    GstCaps **caps, GstSegment *segment)
{
  gchar **parts = g_strsplit (text, "\n", 3);
  gboolean ok = g_strv_length (parts) == 3;
  if (ok) {
    *caps_gen = (guint) g_ascii_strtoull (parts[0], NULL, 10);
    *caps = parts[1][0] ? gst_caps_from_string (parts[1]) : NULL;
    gst_segment_init (segment, GST_FORMAT_TIME);
    GstStructure *s = parts[2][0] ? gst_structure_from_string (parts[2], NULL) : NULL;
    const GValue *v = s ? gst_structure_get_value (s, "segment") : NULL;
    if (v && G_VALUE_HOLDS (v, GST_TYPE_SEGMENT))
      gst_segment_copy_into (g_value_get_boxed (v), segment);
    if (s)
      gst_structure_free (s);
  }
  g_strfreev (parts);
  return ok;
}

void
datahub_wire_secret (const gchar *text, guint8 out[DH_SECRET_SIZE])
{
  if (strlen (text) == 2 * DH_SECRET_SIZE
      && sodium_hex2bin (out, DH_SECRET_SIZE, text, strlen (text), NULL, NULL,
          NULL) == 0)
    return;
  crypto_generichash (out, DH_SECRET_SIZE, (const guint8 *) text, strlen (text),
      NULL, 0);
}
