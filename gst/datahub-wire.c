/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "datahub-wire.h"

#include <string.h>

#include <sodium.h>

/* The serialized downstream events that cross, and nothing else: an
 * event rebuilt from text has its structure but no objects, so only types
 * whose meaning is in their structure are carried. */
gboolean
datahub_wire_event_carried (GstEventType type)
{
  switch (type) {
    case GST_EVENT_CAPS:
    case GST_EVENT_SEGMENT:
    case GST_EVENT_TAG:
    case GST_EVENT_EOS:
    case GST_EVENT_STREAM_START:
    case GST_EVENT_GAP:
    case GST_EVENT_SEGMENT_DONE:
    case GST_EVENT_FLUSH_STOP:
    case GST_EVENT_CUSTOM_DOWNSTREAM:
    case GST_EVENT_CUSTOM_DOWNSTREAM_STICKY:
      return TRUE;
    default:
      return FALSE;
  }
}

gchar *
datahub_wire_event_to_string (GstEvent *event)
{
  GstEventType type = GST_EVENT_TYPE (event);
  if (!datahub_wire_event_carried (type))
    return NULL;
  if (type == GST_EVENT_CAPS) {
    GstCaps *caps;
    gst_event_parse_caps (event, &caps);
    return gst_caps_to_string (caps);
  }
  if (type == GST_EVENT_EOS)
    return g_strdup ("");
  const GstStructure *s = gst_event_get_structure (event);
  return s ? gst_structure_to_string (s) : g_strdup ("");
}

static GstEvent *
event_from_structure (GstEventType type, GstStructure *s)
{
  switch (type) {
    case GST_EVENT_SEGMENT: {
      const GValue *v = gst_structure_get_value (s, "segment");
      return v && G_VALUE_HOLDS (v, GST_TYPE_SEGMENT)
          ? gst_event_new_segment (g_value_get_boxed (v)) : NULL;
    }
    case GST_EVENT_TAG: {
      GstTagList *tags = NULL;
      return gst_structure_get (s, "taglist", GST_TYPE_TAG_LIST, &tags, NULL)
          ? gst_event_new_tag (tags) : NULL;
    }
    case GST_EVENT_STREAM_START: {
      const gchar *id = gst_structure_get_string (s, "stream-id");
      GstEvent *e = gst_event_new_stream_start (id ? id : "datahub");
      guint group;
      if (gst_structure_get_uint (s, "group-id", &group))
        gst_event_set_group_id (e, group);
      return e;
    }
    case GST_EVENT_GAP: {
      GstClockTime ts = GST_CLOCK_TIME_NONE, duration = GST_CLOCK_TIME_NONE;
      if (!gst_structure_get_clock_time (s, "timestamp", &ts) || !GST_CLOCK_TIME_IS_VALID (ts))
        return NULL;
      gst_structure_get_clock_time (s, "duration", &duration);
      return gst_event_new_gap (ts, duration);
    }
    case GST_EVENT_SEGMENT_DONE: {
      GstFormat format = GST_FORMAT_TIME;
      gint64 position = -1;
      gst_structure_get (s, "format", GST_TYPE_FORMAT, &format, "position", G_TYPE_INT64,
          &position, NULL);
      return gst_event_new_segment_done (format, position);
    }
    case GST_EVENT_FLUSH_STOP: {
      gboolean reset = TRUE;
      gst_structure_get_boolean (s, "reset-time", &reset);
      return gst_event_new_flush_stop (reset);
    }
    case GST_EVENT_CUSTOM_DOWNSTREAM:
    case GST_EVENT_CUSTOM_DOWNSTREAM_STICKY:
      return gst_event_new_custom (type, gst_structure_copy (s));
    default:
      return NULL;
  }
}

GstEvent *
datahub_wire_event_from_string (GstEventType type, const gchar *text)
{
  if (!datahub_wire_event_carried (type))
    return NULL;
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
  GstEvent *e = event_from_structure (type, s);
  gst_structure_free (s);
  return e;
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
