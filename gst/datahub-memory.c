/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "datahub-memory.h"

static void
memory_unmap (GstMemory *mem)
{
  (void) mem;
}

/* Never called: the memories are NO_SHARE. */
static GstMemory *
memory_share (GstMemory *mem, gssize offset, gssize size)
{
  (void) mem;
  (void) offset;
  (void) size;
  return NULL;
}

static GstMemory *
allocator_alloc (GstAllocator *allocator, gsize size, GstAllocationParams *params)
{
  (void) allocator;
  (void) size;
  (void) params;
  return NULL;
}

void
datahub_memory_allocator_class_init (GstAllocatorClass *klass)
{
  klass->alloc = allocator_alloc;
}

void
datahub_memory_allocator_init (GstAllocator *allocator, const gchar *mem_type,
    GstMemoryMapFunction map, gboolean custom_alloc)
{
  allocator->mem_type = mem_type;
  allocator->mem_map = map;
  allocator->mem_unmap = memory_unmap;
  allocator->mem_share = memory_share;
  if (custom_alloc)
    GST_OBJECT_FLAG_SET (allocator, GST_ALLOCATOR_FLAG_CUSTOM_ALLOC);
}
