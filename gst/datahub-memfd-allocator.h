/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* An allocator of memfd-backed fd memory, which datahubsink offers with
 * offer-memfd=true: upstream renders into files of its own that travel as
 * fd records (consumers map the producer's pages; nothing is copied on
 * either side, and a consumer may pass the fd on).  GStreamer 1.22 ships
 * no such allocator (GstShmAllocator came in 1.24). */
#ifndef DATAHUB_MEMFD_ALLOCATOR_H
#define DATAHUB_MEMFD_ALLOCATOR_H

#include <gst/allocators/allocators.h>

G_BEGIN_DECLS

#define DATAHUB_MEMFD_ALLOCATOR_NAME "DatahubMemfd"

/* The process-wide allocator (a new reference). */
GstAllocator *datahub_memfd_allocator_get (void);

G_END_DECLS

#endif
