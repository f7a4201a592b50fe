/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Sink side of zero copy: an allocator whose memory *is* a DataBlock slot
 * and owns it for the memory's whole life.  Upstream renders straight into
 * shared memory; the sink publishes the slot (the memory becomes
 * read-only); the slot is reused only when the memory is freed and no
 * consumer holds it.  As GStreamer's shm and unixfd sinks do, ownership is
 * the memory's lifetime, never a flag shared between pool and sink. */
#ifndef DATAHUB_SLOT_ALLOCATOR_H
#define DATAHUB_SLOT_ALLOCATOR_H

#include <gst/gst.h>

#include "datahub/datahub.h"

G_BEGIN_DECLS

/* A producer shared by the sink, its allocators and their memories: the
 * block stays mapped until the last of them is gone. */
typedef struct {
  gint refcount;
  dh_producer *producer;
  GWeakRef element;   /* the sink, for the producer's request callback */
} DatahubProducerRef;

/* @p may be NULL and set right after (it is destroyed with the ref). */
DatahubProducerRef *datahub_producer_ref_new (dh_producer *p);
DatahubProducerRef *datahub_producer_ref (DatahubProducerRef *r);
void datahub_producer_unref (DatahubProducerRef *r);

#define GST_TYPE_DATAHUB_SLOT_ALLOCATOR (gst_datahub_slot_allocator_get_type ())
G_DECLARE_FINAL_TYPE (GstDatahubSlotAllocator, gst_datahub_slot_allocator, GST,
    DATAHUB_SLOT_ALLOCATOR, GstAllocator)

#define DATAHUB_SLOT_MEMORY_TYPE "DatahubSlot"

/* An allocator handing out slots of @producer.  It keeps one slot free for
 * the sink's own records (events, copies): beyond that, and for sizes
 * larger than a slot, it hands out system memory (which the sink copies). */
GstAllocator *gst_datahub_slot_allocator_new (DatahubProducerRef *producer);

/* Slot memory for @size bytes.  A pool's acquisition (@wait_for_room)
 * waits for a slot as long as consumers hold the producer back
 * (back-pressure); a direct one waits at most 50 ms for room and for a
 * slot, then returns NULL (gst_allocator_alloc() then gives system
 * memory).  NULL at once with @dontwait and nothing free, or when
 * *@cancel is set.  Copies of slot memory are system memory. */
GstMemory *datahub_slot_allocator_alloc_slot (GstAllocator *allocator, gsize size,
    gboolean dontwait, gboolean wait_for_room, const gint *cancel);

/* Slot memories that may be outstanding at once. */
guint datahub_slot_allocator_limit (GstAllocator *allocator);

/* Wakes allocations waiting for a slot so they check their flags. */
void datahub_slot_allocator_kick (GstAllocator *allocator);

/* While @flushing, direct allocations (gst_allocator_alloc) stop waiting
 * for a slot and fall back to system memory at once (the sink's unlock). */
void datahub_slot_allocator_set_flushing (GstAllocator *allocator, gboolean flushing);

/* The slot behind @buffer when it is exactly one slot memory of
 * @producer, not yet published, starting at the slot start, and the slot
 * has room for a record of @record_size bytes (payload and metas): the
 * sink can publish it without a copy. */
gboolean datahub_slot_buffer_publishable (GstBuffer *buffer, DatahubProducerRef *producer,
    guint64 record_size);

/* Publishes the slot of such a buffer as the next record, with the meta
 * trailer @trailer (@trailer_len bytes, 0 for none) written after its
 * payload (datahub-metas.h); the memory becomes read-only and keeps the
 * slot until it is freed. */
int datahub_slot_buffer_publish (GstBuffer *buffer, const dh_record_info *info,
    const guint8 *trailer, gsize trailer_len);

G_END_DECLS

#endif
