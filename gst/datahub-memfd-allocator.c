/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "datahub-memfd-allocator.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

typedef GstFdAllocator DatahubMemfdAllocator;
typedef GstFdAllocatorClass DatahubMemfdAllocatorClass;

GType datahub_memfd_allocator_get_type (void);
G_DEFINE_TYPE (DatahubMemfdAllocator, datahub_memfd_allocator, GST_TYPE_FD_ALLOCATOR);

/* A new memfd of the size asked (prefix and padding included), mapped on
 * demand by GstFdMemory and closed when the memory is freed. */
static GstMemory *
memfd_alloc (GstAllocator *allocator, gsize size, GstAllocationParams *params)
{
  gsize prefix = params ? params->prefix : 0, padding = params ? params->padding : 0;
  gsize maxsize = prefix + size + padding;
  int fd = memfd_create ("datahub-frame", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0)
    return NULL;
  if (ftruncate (fd, (off_t) maxsize) != 0) {
    close (fd);
    return NULL;
  }
  /* its size is fixed: a consumer that maps it can rely on it; and only
   * we may open it again, for reading (the fd sent to consumers is such a
   * reopen: see datahub-fd-channel.c) */
  (void) fcntl (fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
  (void) fchmod (fd, 0400);
  /* kept mapped: a pool's buffer is rendered again and again, and a new
   * mapping would fault in every page each time */
  GstMemory *mem = gst_fd_allocator_alloc (allocator, fd, maxsize,
      GST_FD_MEMORY_FLAG_KEEP_MAPPED);
  if (!mem) {
    close (fd);
    return NULL;
  }
  gst_memory_resize (mem, (gssize) prefix, size);
  return mem;
}

static void
datahub_memfd_allocator_class_init (DatahubMemfdAllocatorClass *klass)
{
  GST_ALLOCATOR_CLASS (klass)->alloc = memfd_alloc;
}

static void
datahub_memfd_allocator_init (DatahubMemfdAllocator *self)
{
  GstAllocator *a = GST_ALLOCATOR_CAST (self);
  GST_OBJECT_FLAG_UNSET (a, GST_ALLOCATOR_FLAG_CUSTOM_ALLOC);
}

GstAllocator *
datahub_memfd_allocator_get (void)
{
  static GstAllocator *allocator;
  if (g_once_init_enter (&allocator)) {
    GstAllocator *a = g_object_new (datahub_memfd_allocator_get_type (), NULL);
    gst_object_ref_sink (a);
    /* kept for the process (as GStreamer's own allocators are) */
    GST_OBJECT_FLAG_SET (a, GST_OBJECT_FLAG_MAY_BE_LEAKED);
    g_once_init_leave (&allocator, a);
  }
  return gst_object_ref (allocator);
}
