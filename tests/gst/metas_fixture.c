/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "metas_fixture.h"

#include <gst/check/gstcheck.h>
#include <gst/video/video.h>

#define WIDTH FIXTURE_WIDTH
#define HEIGHT FIXTURE_HEIGHT
#define STRIDE FIXTURE_STRIDE
#define UV_OFFSET FIXTURE_UV_OFFSET

void
metas_fixture_register (void)
{
  static const gchar *tags[] = { NULL };
  gst_meta_register_custom (CUSTOM_META, tags, NULL, NULL, NULL);
}

/* Every meta of frame @index. */
void
add_metas (GstBuffer *buf, guint index)
{
  gsize offset[4] = { 0, UV_OFFSET };
  gint stride[4] = { STRIDE, STRIDE };
  gst_buffer_add_video_meta_full (buf, GST_VIDEO_FRAME_FLAG_NONE, GST_VIDEO_FORMAT_NV12,
      WIDTH, HEIGHT, 2, offset, stride);
  GstVideoRegionOfInterestMeta *face = gst_buffer_add_video_region_of_interest_meta (buf,
      "face", index, 2 * index, 10, 20);
  face->id = (gint) index;
  face->parent_id = -1;
  gst_video_region_of_interest_meta_add_param (face, gst_structure_new ("detection",
          "label", G_TYPE_STRING, "person", "confidence", G_TYPE_DOUBLE,
          0.5 + index / 1000.0, NULL));
  gst_video_region_of_interest_meta_add_param (face, gst_structure_new ("tracker",
          "track", G_TYPE_UINT, index % 5, NULL));
  GstVideoRegionOfInterestMeta *car = gst_buffer_add_video_region_of_interest_meta (buf,
      "car", 1, 1, 30, 15);
  car->id = 1000 + (gint) index;
  car->parent_id = (gint) index;
  GstVideoCropMeta *crop = gst_buffer_add_video_crop_meta (buf);
  crop->x = 2;
  crop->y = 4;
  crop->width = 60;
  crop->height = 40;
  gst_buffer_add_video_time_code_meta_full (buf, 30, 1, NULL, GST_VIDEO_TIME_CODE_FLAGS_NONE,
      1, 2, index / 30, index % 30, 0);
  GstCaps *ntp = gst_caps_new_empty_simple ("timestamp/x-ntp");
  gst_buffer_add_reference_timestamp_meta (buf, ntp, 1000000ull * index, 33);
  gst_caps_unref (ntp);
  GstCustomMeta *custom = gst_buffer_add_custom_meta (buf, CUSTOM_META);
  gchar *name = g_strdup_printf ("frame-%u", index);
  gst_structure_set (gst_custom_meta_get_structure (custom), "index", G_TYPE_UINT, index,
      "name", G_TYPE_STRING, name, NULL);
  g_free (name);
  /* not carried: counted by the sink */
  gst_buffer_add_protection_meta (buf, gst_structure_new_empty ("application/x-cenc"));
}

void
check_metas (GstBuffer *buf, guint index)
{
  gpointer state = NULL;
  GstMeta *meta;
  guint rois = 0;
  while ((meta = gst_buffer_iterate_meta_filtered (buf, &state,
              GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE))) {
    GstVideoRegionOfInterestMeta *roi = (GstVideoRegionOfInterestMeta *) meta;
    if (rois++ == 0) {
      fail_unless_equals_string (g_quark_to_string (roi->roi_type), "face");
      fail_unless (roi->x == index && roi->y == 2 * index && roi->w == 10 && roi->h == 20);
      fail_unless (roi->id == (gint) index && roi->parent_id == -1);
      fail_unless_equals_int (g_list_length (roi->params), 2);
      GstStructure *d = gst_video_region_of_interest_meta_get_param (roi, "detection");
      gdouble confidence = 0;
      fail_unless (d && gst_structure_get_double (d, "confidence", &confidence));
      fail_unless (confidence == 0.5 + index / 1000.0, "confidence %f", confidence);
      fail_unless_equals_string (gst_structure_get_string (d, "label"), "person");
      guint track = 99;
      fail_unless (gst_structure_get_uint (gst_video_region_of_interest_meta_get_param (roi,
                  "tracker"), "track", &track) && track == index % 5);
    } else {
      fail_unless_equals_string (g_quark_to_string (roi->roi_type), "car");
      fail_unless (roi->id == 1000 + (gint) index && roi->parent_id == (gint) index);
      fail_unless (roi->params == NULL);
    }
  }
  fail_unless_equals_int (rois, 2);
  GstVideoCropMeta *crop = gst_buffer_get_video_crop_meta (buf);
  fail_unless (crop && crop->x == 2 && crop->y == 4 && crop->width == 60 && crop->height == 40);
  GstVideoTimeCodeMeta *tc = gst_buffer_get_video_time_code_meta (buf);
  fail_unless (tc != NULL);
  fail_unless (tc->tc.hours == 1 && tc->tc.minutes == 2 && tc->tc.seconds == index / 30
      && tc->tc.frames == index % 30 && tc->tc.config.fps_n == 30);
  GstReferenceTimestampMeta *ref = gst_buffer_get_reference_timestamp_meta (buf, NULL);
  fail_unless (ref && ref->timestamp == 1000000ull * index && ref->duration == 33);
  fail_unless (gst_structure_has_name (gst_caps_get_structure (ref->reference, 0),
          "timestamp/x-ntp"));
  GstCustomMeta *custom = gst_buffer_get_custom_meta (buf, CUSTOM_META);
  fail_unless (custom != NULL);
  guint got = G_MAXUINT;
  GstStructure *s = gst_custom_meta_get_structure (custom);
  fail_unless (gst_structure_get_uint (s, "index", &got) && got == index);
  gchar *name = g_strdup_printf ("frame-%u", index);
  fail_unless_equals_string (gst_structure_get_string (s, "name"), name);
  g_free (name);
  fail_unless (gst_buffer_get_meta (buf, GST_PROTECTION_META_API_TYPE) == NULL);
}

