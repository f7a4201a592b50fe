/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the slot allocator (sink) and the record allocator (src) share:
 * both make memories that point at shared memory owned by the block,
 * never shared (sub-buffers are copies), with nothing to do at unmap. */
#ifndef DATAHUB_MEMORY_H
#define DATAHUB_MEMORY_H

#include <gst/gst.h>

G_BEGIN_DECLS

/* For class_init: alloc() refuses (the record allocator's memories come
 * from its pool only); the slot allocator overrides it. */
void datahub_memory_allocator_class_init (GstAllocatorClass *klass);
/* For instance init: @mem_type, @map, a no-op unmap and no sharing;
 * @custom_alloc: not usable with gst_allocator_alloc(). */
void datahub_memory_allocator_init (GstAllocator *allocator, const gchar *mem_type,
    GstMemoryMapFunction map, gboolean custom_alloc);

G_END_DECLS

#endif
