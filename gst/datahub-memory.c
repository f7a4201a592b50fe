/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "datahub-memory.h"

#include <string.h>

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

/* A copy is plain system memory: never another slot (which would take a
 * slot from the producer, or wait for one, for every writable map). */
static GstMemory *
memory_copy (GstMemory *mem, gssize offset, gssize size)
{
  GstMapInfo in;
  if (!gst_memory_map (mem, &in, GST_MAP_READ))
    return NULL;
  if (size == -1)
    size = in.size > (gsize) offset ? (gssize) (in.size - (gsize) offset) : 0;
  GstMemory *copy = NULL;
  if (offset >= 0 && (gsize) offset + (gsize) size <= in.size) {
    copy = gst_allocator_alloc (NULL, (gsize) size, NULL);
    GstMapInfo out;
    if (copy && gst_memory_map (copy, &out, GST_MAP_WRITE)) {
      memcpy (out.data, in.data + offset, (gsize) size);
      gst_memory_unmap (copy, &out);
    }
  }
  gst_memory_unmap (mem, &in);
  return copy;
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
  allocator->mem_copy = memory_copy;
  if (custom_alloc)
    GST_OBJECT_FLAG_SET (allocator, GST_ALLOCATOR_FLAG_CUSTOM_ALLOC);
}
