/* Sink side of zero copy: a buffer pool whose memory is DataBlock slot
 * memory, so upstream renders straight into shared memory.  Buffers carry
 * their slot until the sink commits them; a buffer returned to the pool
 * unpushed gives its slot back (abort). */
#ifndef DATAHUB_POOL_H
#define DATAHUB_POOL_H

#include <gst/gst.h>
#include <gst/video/video.h>

#include "datahub/datahub.h"

G_BEGIN_DECLS

/* A producer shared by the sink and every outstanding pool memory: the
 * block stays mapped until the last slot memory is gone. */
typedef struct {
  gint refcount;
  dh_producer *producer;
} DatahubProducerRef;

DatahubProducerRef *datahub_producer_ref_new (dh_producer *p);
DatahubProducerRef *datahub_producer_ref (DatahubProducerRef *r);
void datahub_producer_unref (DatahubProducerRef *r);

#define GST_TYPE_DATAHUB_POOL (gst_datahub_pool_get_type ())
G_DECLARE_FINAL_TYPE (GstDatahubPool, gst_datahub_pool, GST, DATAHUB_POOL, GstBufferPool)

GstBufferPool *gst_datahub_pool_new (DatahubProducerRef *producer);

/* The slot behind @buffer if it is one memory of this producer's pool that
 * nobody committed yet; NULL otherwise. */
const dh_slot *datahub_pool_buffer_slot (GstBuffer *buffer, DatahubProducerRef *producer);
/* Marks the buffer's slot committed (the pool will not abort it). */
void datahub_pool_buffer_committed (GstBuffer *buffer);

G_END_DECLS

#endif
