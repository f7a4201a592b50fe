/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The readers of what a producer's process writes — the meta trailer
 * (gst/datahub-metas.c) and the fd record (gst/datahub-fd-record.c) —
 * against malformed input, called directly: no plugin, no process, so it
 * runs in the sanitizer builds too (ASan/UBSan catch a read past the
 * end). */
#include <gst/check/gstcheck.h>
#include <gst/video/video.h>

#include <string.h>

#include "datahub-fd-channel.h"
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

/* An fd record of two memories, then broken every way a producer could:
 * only the intact one (and its own kinds) is accepted. */
GST_START_TEST (test_malformed_fd_records_are_refused)
{
  typedef struct {
    DatahubFdRecord rec;
    DatahubFdEntry e[2];
  } TwoMemories;
  TwoMemories good = {
    { DATAHUB_FD_RECORD_MAGIC, 2, DATAHUB_FD_KIND_DMABUF, 0, 42, 300 },
    { { 1, 2, 3, 4096, 100, 200 }, { 5, 6, 7, 100, 0, 100 } },
  };
  DatahubFdRecord rec;
  DatahubFdEntry entries[DATAHUB_FD_MAX_MEMORIES];
  fail_unless (datahub_fd_record_parse (&good, sizeof good, &rec, entries));
  fail_unless (rec.n_memories == 2 && entries[1].id == 5 && rec.total_size == 300);
  /* the size must be the one the count says */
  fail_if (datahub_fd_record_parse (&good, sizeof good - 1, &rec, entries));
  fail_if (datahub_fd_record_parse (&good, sizeof good.rec, &rec, entries));
  guint8 big[DATAHUB_FD_RECORD_SIZE (DATAHUB_FD_MAX_MEMORIES) + 8] = { 0 };
  memcpy (big, &good, sizeof good);
  fail_if (datahub_fd_record_parse (big, sizeof big, &rec, entries));
  TwoMemories bad;
#define REFUSED(change) \
  do { \
    bad = good; \
    change; \
    fail_if (datahub_fd_record_parse (&bad, sizeof bad, &rec, entries), #change); \
  } while (0)
  REFUSED (bad.rec.magic ^= 1);
  REFUSED (bad.rec.n_memories = 0);
  REFUSED (bad.rec.n_memories = 3);
  REFUSED (bad.rec.n_memories = G_MAXUINT32);
  REFUSED (bad.rec.kind = 3);
  REFUSED (bad.rec.total_size = 299);
  REFUSED (bad.e[0].offset = 4097);                  /* past the fd */
  REFUSED (bad.e[0].size = 4000);                    /* offset + size past it */
  REFUSED (bad.e[0].maxsize = G_MAXUINT64);          /* larger than a mapping */
#undef REFUSED
  /* three memories whose sizes wrap the total round to what it says */
  guint8 wrap[DATAHUB_FD_RECORD_SIZE (3)] = { 0 };
  DatahubFdRecord w = { DATAHUB_FD_RECORD_MAGIC, 3, DATAHUB_FD_KIND_FD, 0, 1,
    (guint64) G_MAXSSIZE * 3 };
  memcpy (wrap, &w, sizeof w);
  for (guint i = 0; i < 3; i++) {
    DatahubFdEntry e = { i + 1, 0, 0, G_MAXSSIZE, 0, G_MAXSSIZE };
    memcpy (wrap + sizeof w + i * sizeof e, &e, sizeof e);
  }
  fail_if (datahub_fd_record_parse (wrap, sizeof wrap, &rec, entries));
  /* a record of every allowed count parses */
  for (guint n = 1; n <= DATAHUB_FD_MAX_MEMORIES; n++) {
    guint8 buf[DATAHUB_FD_RECORD_SIZE (DATAHUB_FD_MAX_MEMORIES)] = { 0 };
    DatahubFdRecord r = { DATAHUB_FD_RECORD_MAGIC, n, DATAHUB_FD_KIND_FD, 0, 1, n };
    memcpy (buf, &r, sizeof r);
    for (guint i = 0; i < n; i++) {
      DatahubFdEntry e = { i + 1, 0, 0, 1, 0, 1 };
      memcpy (buf + sizeof r + i * sizeof e, &e, sizeof e);
    }
    fail_unless (datahub_fd_record_parse (buf, DATAHUB_FD_RECORD_SIZE (n), &rec, entries));
  }
}
GST_END_TEST;

static Suite *
wire_decode_suite (void)
{
  metas_fixture_register ();
  Suite *s = suite_create ("datahub-wire-decode");
  TCase *tc = tcase_create ("decode");
  tcase_set_timeout (tc, 120);
  tcase_add_test (tc, test_malformed_trailers_are_refused);
  tcase_add_test (tc, test_malformed_fd_records_are_refused);
  suite_add_tcase (s, tc);
  return s;
}

GST_CHECK_MAIN (wire_decode);
