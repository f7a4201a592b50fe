/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The metas a buffer record carries (GStreamer 1.22 has no
 * gst_meta_serialize): a trailer written in the record's slot after the
 * payload, at the next 8-byte boundary; its length is in the record's
 * user[1] word (docs/elements.md, "Wire format").  Carried: GstVideoMeta
 * (the producer's planes, strides and offsets), GstVideoCropMeta,
 * GstVideoRegionOfInterestMeta with its params, GstVideoTimeCodeMeta,
 * GstReferenceTimestampMeta and GstCustomMeta.  Other metas are counted
 * and dropped.  The consumer reads the trailer as untrusted input: every
 * length and count is checked, and a malformed trailer attaches nothing. */
#ifndef DATAHUB_METAS_H
#define DATAHUB_METAS_H

#include <gst/gst.h>
#include <gst/video/video.h>

G_BEGIN_DECLS

/* Where the trailer of a @payload_size-byte record starts in its slot. */
#define DATAHUB_METAS_OFFSET(payload_size) (((payload_size) + 7) & ~(guint64) 7)

/* Encodes @buf's carried metas into @out (emptied first; kept between
 * calls, so a stream of buffers allocates nothing for its video metas);
 * its GstVideoMeta only @with_layout (a frame converted to the caps'
 * default layout travels without).  *@dropped counts the metas not
 * carried.  Returns the trailer length, 0
 * when there is nothing to carry. */
gsize datahub_metas_encode (GstBuffer *buf, GByteArray *out, gboolean with_layout,
    guint *dropped);

/* What a trailer said, for the src. */
typedef struct {
  gboolean has_video;      /* a GstVideoMeta entry was present (and is in @video) */
  GstVideoMeta video;      /* format, size, flags, planes, offsets, strides */
  guint dropped;           /* entries not attached (unknown, unregistered custom
                              meta, unparsable) */
} DatahubMetaInfo;

/* Attaches the trailer's metas except the video layout (returned in
 * @info for the caller to check against the caps and record) to @buf.
 * FALSE when the trailer is malformed: nothing is attached then. */
gboolean datahub_metas_decode (const guint8 *trailer, gsize len, GstBuffer *buf,
    DatahubMetaInfo *info);

/* Whether @layout (format, size, planes, strides, offsets) describes a
 * frame of @vinfo's format and size that lies within @size bytes. */
gboolean datahub_metas_layout_valid (const GstVideoMeta *layout, const GstVideoInfo *vinfo,
    gsize size);

/* Whether @layout is @vinfo's default layout. */
gboolean datahub_metas_layout_is_default (const GstVideoMeta *layout, const GstVideoInfo *vinfo);

G_END_DECLS

#endif
