/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The meta trailer decoder (gst/datahub-metas.c) against malformed input,
 * called directly: no plugin, no process, so it runs in the sanitizer
 * builds too (ASan/UBSan catch a read past the trailer). */
#include <gst/check/gstcheck.h>
#include <gst/video/video.h>

#include <string.h>

#include "datahub-metas.h"
#include "metas_fixture.h"

/* ---- the trailer decoder against malformed input (no process needed) -- */

/* Every trailer the producer could have written, then damaged: cut short,
 * lengths and counts changed, bytes flipped.  Decoding must say FALSE or
 * attach what it can, never crash or read past the end (ASan in CI). */
GST_START_TEST (test_malformed_trailers_are_refused)
{
  GstBuffer *buf = gst_buffer_new_allocate (NULL, FIXTURE_FRAME_SIZE, NULL);
  add_metas (buf, 7);
  GByteArray *trailer = g_byte_array_new ();
  guint dropped = 0;
  gsize len = datahub_metas_encode (buf, trailer, TRUE, &dropped);
  fail_unless (len > 0 && dropped == 1); /* the protection meta */
  DatahubMetaInfo info;
  /* intact: everything arrives */
  GstBuffer *out = gst_buffer_new ();
  fail_unless (datahub_metas_decode (trailer->data, len, out, &info));
  fail_unless (info.has_video && info.dropped == 0);
  check_metas (out, 7);
  gst_buffer_unref (out);
  /* cut short anywhere: refused (the header's length no longer matches) */
  for (gsize cut = 0; cut < len; cut++) {
    guint8 *copy = g_memdup2 (trailer->data, cut);
    out = gst_buffer_new ();
    fail_if (datahub_metas_decode (copy, cut, out, &info), "a trailer cut at %" G_GSIZE_FORMAT
        " was accepted", cut);
    fail_unless (gst_buffer_get_n_meta (out, GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE) == 0);
    gst_buffer_unref (out);
    g_free (copy);
  }
  /* random damage: whatever happens, it happens inside the trailer */
  GRand *rand = g_rand_new_with_seed (20261126);
  for (guint round = 0; round < 3000; round++) {
    guint8 *copy = g_memdup2 (trailer->data, len);
    guint flips = (guint) g_rand_int_range (rand, 1, 8);
    for (guint f = 0; f < flips; f++)
      copy[g_rand_int_range (rand, 0, (gint32) len)] = (guint8) g_rand_int (rand);
    out = gst_buffer_new ();
    (void) datahub_metas_decode (copy, len, out, &info);
    gst_buffer_unref (out);
    g_free (copy);
  }
  g_rand_free (rand);
  g_byte_array_unref (trailer);
  gst_buffer_unref (buf);
}
GST_END_TEST;

static Suite *
metas_decode_suite (void)
{
  metas_fixture_register ();
  Suite *s = suite_create ("datahub-metas-decode");
  TCase *tc = tcase_create ("decode");
  tcase_set_timeout (tc, 120);
  tcase_add_test (tc, test_malformed_trailers_are_refused);
  suite_add_tcase (s, tc);
  return s;
}

GST_CHECK_MAIN (metas_decode);
