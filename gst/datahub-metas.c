/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The meta trailer of a buffer record (datahub-metas.h).  Host byte order:
 * both sides are on one machine.
 *
 *   header   u32 magic "DHM1", u32 length (header included), u32 count, u32 0
 *   entries  u16 type, u16 0, u32 body length, body, zero padding to 8
 *
 * Text inside bodies (ROI type and params, reference caps, custom meta
 * structures) is NUL-terminated GStreamer serialization. */
#include "datahub-metas.h"

#include <string.h>

#define TRAILER_MAGIC 0x314d4844u /* "DHM1" */
/* a trailer is at most a slot's tail; more entries than this is garbage */
#define MAX_ENTRIES 4096

enum {
  ENTRY_VIDEO = 1,
  ENTRY_CROP = 2,
  ENTRY_ROI = 3,       /* body: RoiEntry, then type\0 and n_params params\0 */
  ENTRY_TIMECODE = 4,
  ENTRY_REFERENCE = 5, /* body: ReferenceEntry, then caps\0 */
  ENTRY_CUSTOM = 6,    /* body: structure\0 (its name is the custom meta's) */
};

typedef struct {
  guint32 magic, length, count, reserved;
} TrailerHeader;

typedef struct {
  guint16 type, reserved;
  guint32 length;
} EntryHeader;

typedef struct {
  guint32 flags, format, width, height, n_planes, reserved;
  guint64 offset[GST_VIDEO_MAX_PLANES];
  gint32 stride[GST_VIDEO_MAX_PLANES];
} VideoEntry;

typedef struct {
  guint32 x, y, width, height;
} CropEntry;

typedef struct {
  gint32 id, parent_id;
  guint32 x, y, w, h, n_params, reserved;
} RoiEntry;

typedef struct {
  guint32 fps_n, fps_d, flags, hours, minutes, seconds, frames, field_count;
} TimecodeEntry;

typedef struct {
  guint64 timestamp, duration;
} ReferenceEntry;

G_STATIC_ASSERT (sizeof (TrailerHeader) == 16 && sizeof (EntryHeader) == 8);
G_STATIC_ASSERT (sizeof (VideoEntry) % 8 == 0 && sizeof (RoiEntry) % 8 == 0);

/* ---- encoding ------------------------------------------------------------ */

static const guint8 zeros[8];

/* Appends an entry of @type whose body is @fixed followed by @texts
 * (each with its NUL). */
static void
put_entry (GByteArray *out, guint16 type, const void *fixed, gsize fixed_len,
    gchar **texts, guint n_texts)
{
  gsize body = fixed_len;
  for (guint i = 0; i < n_texts; i++)
    body += strlen (texts[i]) + 1;
  EntryHeader eh = { .type = type, .length = (guint32) body };
  g_byte_array_append (out, (const guint8 *) &eh, sizeof eh);
  g_byte_array_append (out, fixed, (guint) fixed_len);
  for (guint i = 0; i < n_texts; i++)
    g_byte_array_append (out, (const guint8 *) texts[i], (guint) strlen (texts[i]) + 1);
  g_byte_array_append (out, zeros, (guint) ((8 - body % 8) % 8));
}

static void
put_video (GByteArray *out, const GstVideoMeta *m)
{
  VideoEntry e = {
    .flags = m->flags, .format = m->format, .width = m->width, .height = m->height,
    .n_planes = m->n_planes,
  };
  for (guint p = 0; p < m->n_planes && p < GST_VIDEO_MAX_PLANES; p++) {
    e.offset[p] = m->offset[p];
    e.stride[p] = m->stride[p];
  }
  put_entry (out, ENTRY_VIDEO, &e, sizeof e, NULL, 0);
}

static void
put_roi (GByteArray *out, const GstVideoRegionOfInterestMeta *m)
{
  guint n = g_list_length (m->params);
  gchar **texts = g_new0 (gchar *, n + 2);
  texts[0] = g_strdup (g_quark_to_string (m->roi_type));
  guint i = 1;
  for (GList *l = m->params; l; l = l->next)
    texts[i++] = gst_structure_to_string (l->data);
  RoiEntry e = {
    .id = m->id, .parent_id = m->parent_id, .x = m->x, .y = m->y, .w = m->w, .h = m->h,
    .n_params = n,
  };
  put_entry (out, ENTRY_ROI, &e, sizeof e, texts, n + 1);
  g_strfreev (texts);
}

static void
put_timecode (GByteArray *out, const GstVideoTimeCodeMeta *m)
{
  const GstVideoTimeCode *tc = &m->tc;
  TimecodeEntry e = {
    .fps_n = tc->config.fps_n, .fps_d = tc->config.fps_d, .flags = tc->config.flags,
    .hours = tc->hours, .minutes = tc->minutes, .seconds = tc->seconds,
    .frames = tc->frames, .field_count = tc->field_count,
  };
  put_entry (out, ENTRY_TIMECODE, &e, sizeof e, NULL, 0);
}

static void
put_reference (GByteArray *out, const GstReferenceTimestampMeta *m)
{
  ReferenceEntry e = { .timestamp = m->timestamp, .duration = m->duration };
  gchar *caps = m->reference ? gst_caps_to_string (m->reference) : g_strdup ("");
  put_entry (out, ENTRY_REFERENCE, &e, sizeof e, &caps, 1);
  g_free (caps);
}

static void
put_custom (GByteArray *out, GstCustomMeta *m)
{
  gchar *text = gst_structure_to_string (gst_custom_meta_get_structure (m));
  put_entry (out, ENTRY_CUSTOM, NULL, 0, &text, 1);
  g_free (text);
}

gsize
datahub_metas_encode (GstBuffer *buf, GByteArray *out, gboolean with_layout,
    guint *dropped)
{
  g_byte_array_set_size (out, sizeof (TrailerHeader));
  guint count = 0;
  gboolean video_done = !with_layout;
  gpointer state = NULL;
  GstMeta *meta;
  while ((meta = gst_buffer_iterate_meta (buf, &state))) {
    GType api = meta->info->api;
    if (api == GST_VIDEO_META_API_TYPE && !video_done) {
      put_video (out, (GstVideoMeta *) meta);
      video_done = TRUE; /* the frame's layout; more views are not carried */
    } else if (api == GST_VIDEO_META_API_TYPE && !with_layout) {
      continue; /* converted to the default layout: no meta needed */
    } else if (api == GST_VIDEO_CROP_META_API_TYPE) {
      GstVideoCropMeta *m = (GstVideoCropMeta *) meta;
      CropEntry e = { .x = m->x, .y = m->y, .width = m->width, .height = m->height };
      put_entry (out, ENTRY_CROP, &e, sizeof e, NULL, 0);
    } else if (api == GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE) {
      put_roi (out, (GstVideoRegionOfInterestMeta *) meta);
    } else if (api == GST_VIDEO_TIME_CODE_META_API_TYPE) {
      put_timecode (out, (GstVideoTimeCodeMeta *) meta);
    } else if (api == GST_REFERENCE_TIMESTAMP_META_API_TYPE) {
      put_reference (out, (GstReferenceTimestampMeta *) meta);
    } else if (gst_meta_info_is_custom (meta->info)) {
      put_custom (out, (GstCustomMeta *) meta);
    } else {
      (*dropped)++;
      continue;
    }
    count++;
  }
  if (count == 0) {
    g_byte_array_set_size (out, 0);
    return 0;
  }
  TrailerHeader h = { .magic = TRAILER_MAGIC, .length = out->len, .count = count };
  memcpy (out->data, &h, sizeof h);
  return out->len;
}

/* ---- decoding (untrusted: the producer's process wrote it) --------------- */

/* The NUL-terminated text at *@at within @n bytes at @p (NULL if none),
 * and *@at moved past it: texts are read in one pass. */
static const gchar *
next_text (const guint8 *p, gsize n, gsize *at)
{
  const guint8 *end = *at < n ? memchr (p + *at, 0, n - *at) : NULL;
  if (!end)
    return NULL;
  const gchar *text = (const gchar *) p + *at;
  *at = (gsize) (end - p) + 1;
  return text;
}

/* Does @text start with a valid structure name (a letter, then letters,
 * digits and "/-_.:+") followed by its end, a ',' or a ';'?  GStreamer
 * 1.22's parser warns (g_critical) on an invalid one instead of failing:
 * untrusted text is checked first. */
static gboolean
structure_name_valid (const gchar *text)
{
  while (*text == ' ')
    text++;
  if (!g_ascii_isalpha (*text))
    return FALSE;
  for (; *text && *text != ',' && *text != ';'; text++)
    if (!g_ascii_isalnum (*text) && !strchr ("/-_.:+", *text))
      return FALSE;
  return TRUE;
}

/* One structure, the whole text (a trailing ';' allowed). */
static GstStructure *
structure_from_text (const gchar *text)
{
  gchar *end = NULL;
  GstStructure *s = structure_name_valid (text) ? gst_structure_from_string (text, &end)
      : NULL;
  if (s && end && *end != '\0' && !(end[0] == ';' && end[1] == '\0')) {
    gst_structure_free (s);
    s = NULL;
  }
  return s;
}

static void
get_video (const guint8 *body, DatahubMetaInfo *info)
{
  VideoEntry e;
  memcpy (&e, body, sizeof e);
  GstVideoMeta *v = &info->video;
  memset (v, 0, sizeof *v);
  v->flags = (GstVideoFrameFlags) e.flags;
  v->format = (GstVideoFormat) e.format;
  v->width = e.width;
  v->height = e.height;
  v->n_planes = e.n_planes;
  for (guint p = 0; p < GST_VIDEO_MAX_PLANES; p++) {
    v->offset[p] = (gsize) e.offset[p];
    v->stride[p] = e.stride[p];
  }
  info->has_video = TRUE;
}

static gboolean
get_roi (const guint8 *body, gsize len, GstBuffer *buf)
{
  RoiEntry e;
  memcpy (&e, body, sizeof e);
  const guint8 *texts = body + sizeof e;
  gsize n = len - sizeof e, at = 0;
  const gchar *type = next_text (texts, n, &at);
  if (!type || e.n_params > n)
    return FALSE;
  GstVideoRegionOfInterestMeta *m =
      gst_buffer_add_video_region_of_interest_meta (buf, type, e.x, e.y, e.w, e.h);
  m->id = e.id;
  m->parent_id = e.parent_id;
  gboolean all = TRUE;
  for (guint i = 1; i <= e.n_params; i++) {
    const gchar *param = next_text (texts, n, &at);
    if (!param)
      return FALSE; /* fewer params than it said */
    GstStructure *s = structure_from_text (param);
    if (s)
      gst_video_region_of_interest_meta_add_param (m, s);
    else
      all = FALSE;
  }
  return all;
}

static gboolean
get_timecode (const guint8 *body, GstBuffer *buf)
{
  TimecodeEntry e;
  memcpy (&e, body, sizeof e);
  /* gst_video_time_code_init asserts these: checked first */
  if (e.fps_d == 0 || e.field_count > 2)
    return FALSE;
  GstVideoTimeCode tc;
  gst_video_time_code_init (&tc, e.fps_n, e.fps_d, NULL, (GstVideoTimeCodeFlags) e.flags,
      e.hours, e.minutes, e.seconds, e.frames, e.field_count);
  gboolean ok = gst_video_time_code_is_valid (&tc)
      && gst_buffer_add_video_time_code_meta (buf, &tc) != NULL;
  gst_video_time_code_clear (&tc);
  return ok;
}

static gboolean
get_reference (const guint8 *body, gsize len, GstBuffer *buf)
{
  ReferenceEntry e;
  memcpy (&e, body, sizeof e);
  gsize at = 0;
  const gchar *text = next_text (body + sizeof e, len - sizeof e, &at);
  /* one structure, no features */
  GstCaps *caps = text && structure_name_valid (text) && !strchr (text, ';')
      ? gst_caps_from_string (text) : NULL;
  if (!caps)
    return FALSE;
  gst_buffer_add_reference_timestamp_meta (buf, caps, e.timestamp, e.duration);
  gst_caps_unref (caps);
  return TRUE;
}

static gboolean
copy_field (GQuark field, const GValue *value, gpointer to)
{
  gst_structure_id_set_value (to, field, value);
  return TRUE;
}

/* A custom meta this process registered too (gst_meta_register_custom);
 * others are dropped. */
static gboolean
get_custom (const guint8 *body, gsize len, GstBuffer *buf)
{
  gsize at = 0;
  const gchar *text = next_text (body, len, &at);
  GstStructure *s = text ? structure_from_text (text) : NULL;
  if (!s)
    return FALSE;
  const GstMetaInfo *mi = gst_meta_get_info (gst_structure_get_name (s));
  gboolean ok = mi && gst_meta_info_is_custom (mi);
  if (ok) {
    GstCustomMeta *m = gst_buffer_add_custom_meta (buf, gst_structure_get_name (s));
    gst_structure_foreach (s, copy_field, gst_custom_meta_get_structure (m));
  }
  gst_structure_free (s);
  return ok;
}

/* Checks the framing of every entry (before anything is attached). */
static gboolean
entries_framed (const guint8 *t, gsize len, guint count)
{
  gsize at = sizeof (TrailerHeader);
  for (guint i = 0; i < count; i++) {
    EntryHeader eh;
    if (len - at < sizeof eh)
      return FALSE;
    memcpy (&eh, t + at, sizeof eh);
    at += sizeof eh;
    gsize padded = ((gsize) eh.length + 7) & ~(gsize) 7;
    if (eh.length > len - at || padded > len - at)
      return FALSE;
    gsize fixed = eh.type == ENTRY_VIDEO ? sizeof (VideoEntry)
        : eh.type == ENTRY_CROP ? sizeof (CropEntry)
        : eh.type == ENTRY_ROI ? sizeof (RoiEntry)
        : eh.type == ENTRY_TIMECODE ? sizeof (TimecodeEntry)
        : eh.type == ENTRY_REFERENCE ? sizeof (ReferenceEntry) : 0;
    if (eh.length < fixed)
      return FALSE;
    at += padded;
  }
  return at == len;
}

gboolean
datahub_metas_decode (const guint8 *trailer, gsize len, GstBuffer *buf, DatahubMetaInfo *info)
{
  memset (info, 0, sizeof *info);
  TrailerHeader h;
  if (len < sizeof h)
    return FALSE;
  memcpy (&h, trailer, sizeof h);
  if (h.magic != TRAILER_MAGIC || h.length != len || h.count == 0 || h.count > MAX_ENTRIES
      || !entries_framed (trailer, len, h.count))
    return FALSE;
  gsize at = sizeof h;
  for (guint i = 0; i < h.count; i++) {
    EntryHeader eh;
    memcpy (&eh, trailer + at, sizeof eh);
    const guint8 *body = trailer + at + sizeof eh;
    gboolean ok = TRUE;
    switch (eh.type) {
      case ENTRY_VIDEO:
        if (!info->has_video)
          get_video (body, info);
        break;
      case ENTRY_CROP:{
        CropEntry e;
        memcpy (&e, body, sizeof e);
        GstVideoCropMeta *m = gst_buffer_add_video_crop_meta (buf);
        m->x = e.x;
        m->y = e.y;
        m->width = e.width;
        m->height = e.height;
        break;
      }
      case ENTRY_ROI:
        ok = get_roi (body, eh.length, buf);
        break;
      case ENTRY_TIMECODE:
        ok = get_timecode (body, buf);
        break;
      case ENTRY_REFERENCE:
        ok = get_reference (body, eh.length, buf);
        break;
      case ENTRY_CUSTOM:
        ok = get_custom (body, eh.length, buf);
        break;
      default:
        ok = FALSE; /* a newer producer's entry: skipped */
    }
    if (!ok)
      info->dropped++;
    at += sizeof eh + (((gsize) eh.length + 7) & ~(gsize) 7);
  }
  return TRUE;
}

/* ---- video layouts ------------------------------------------------------- */

gboolean
datahub_metas_layout_valid (const GstVideoMeta *layout, const GstVideoInfo *vinfo, gsize size)
{
  const GstVideoFormatInfo *finfo = vinfo->finfo;
  if (layout->format != GST_VIDEO_INFO_FORMAT (vinfo)
      || layout->width != (guint) GST_VIDEO_INFO_WIDTH (vinfo)
      || layout->height != (guint) GST_VIDEO_INFO_HEIGHT (vinfo)
      || layout->n_planes != GST_VIDEO_INFO_N_PLANES (vinfo))
    return FALSE;
  for (guint p = 0; p < layout->n_planes; p++) {
    gint comp[GST_VIDEO_MAX_COMPONENTS];
    gst_video_format_info_component (finfo, p, comp);
    guint64 rows = (guint64) GST_VIDEO_FORMAT_INFO_SCALE_HEIGHT (finfo, comp[0], layout->height);
    guint64 row_bytes = (guint64) GST_VIDEO_FORMAT_INFO_SCALE_WIDTH (finfo, comp[0],
        layout->width) * (guint64) MAX (GST_VIDEO_FORMAT_INFO_PSTRIDE (finfo, comp[0]), 0);
    if (layout->stride[p] <= 0 || (guint64) layout->stride[p] < row_bytes || rows == 0)
      return FALSE;
    /* the last row needs only its pixels, not the stride's padding */
    guint64 end = (guint64) layout->offset[p] + (rows - 1) * (guint64) layout->stride[p]
        + MAX (row_bytes, 1);
    if (layout->offset[p] >= size || end > size)
      return FALSE;
  }
  return TRUE;
}

gboolean
datahub_metas_layout_is_default (const GstVideoMeta *layout, const GstVideoInfo *vinfo)
{
  for (guint p = 0; p < GST_VIDEO_INFO_N_PLANES (vinfo); p++)
    if (layout->stride[p] != vinfo->stride[p] || layout->offset[p] != vinfo->offset[p])
      return FALSE;
  return TRUE;
}
