/* What the slot allocator (sink pool) and the record allocator (src pool)
 * share: both make memories that point at shared memory owned by the
 * block, never allocated through the allocator, never shared (sub-buffers
 * are copies), with nothing to do at unmap. */
#ifndef DATAHUB_MEMORY_H
#define DATAHUB_MEMORY_H

#include <gst/gst.h>

G_BEGIN_DECLS

/* For class_init: alloc() refuses (memories come from the pools only). */
void datahub_memory_allocator_class_init (GstAllocatorClass *klass);
/* For instance init: @mem_type, @map, a no-op unmap and no sharing. */
void datahub_memory_allocator_init (GstAllocator *allocator, const gchar *mem_type,
    GstMemoryMapFunction map);

G_END_DECLS

#endif
