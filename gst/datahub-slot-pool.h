/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A buffer pool on the slot allocator, for upstream elements that want a
 * pool (videotestsrc, decoders).  Its buffers keep their GstBuffer shell
 * and video meta; each acquire takes a fresh slot memory and each release
 * frees it (so a slot is never owned by an idle pool buffer).  One pool
 * per caps: a caps change gets a new pool, never a reconfigured one. */
#ifndef DATAHUB_SLOT_POOL_H
#define DATAHUB_SLOT_POOL_H

#include <gst/gst.h>
#include <gst/video/video.h>

G_BEGIN_DECLS

#define GST_TYPE_DATAHUB_SLOT_POOL (gst_datahub_slot_pool_get_type ())
G_DECLARE_FINAL_TYPE (GstDatahubSlotPool, gst_datahub_slot_pool, GST, DATAHUB_SLOT_POOL,
    GstBufferPool)

/* A pool of @allocator's slots for @caps, buffers of @size bytes, at most
 * @max outstanding (what the block can have written by upstream at once). */
GstBufferPool *gst_datahub_slot_pool_new (GstAllocator *allocator, GstCaps *caps,
    guint size, guint max);

G_END_DECLS

#endif
