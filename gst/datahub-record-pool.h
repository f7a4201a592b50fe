/* Source side of zero copy, without an allocation per buffer: a pool of
 * buffers whose one memory points at a record the src holds.  When a
 * buffer comes back to the pool its hold is released and the buffer waits
 * for the next record. */
#ifndef DATAHUB_RECORD_POOL_H
#define DATAHUB_RECORD_POOL_H

#include <gst/gst.h>

#include "datahub/datahub.h"

G_BEGIN_DECLS

/* The consumer handle, shared with every buffer that wraps one of its
 * records: it stays attached until the last such buffer is back. */
typedef struct {
  gint refcount;
  dh_consumer *consumer;
} DatahubConsumerRef;

DatahubConsumerRef *datahub_consumer_ref_new (dh_consumer *c);
DatahubConsumerRef *datahub_consumer_ref (DatahubConsumerRef *r);
void datahub_consumer_unref (DatahubConsumerRef *r);

/* An active pool (size 0, no limit on buffers). */
GstBufferPool *datahub_record_pool_new (void);

/* A buffer whose memory is @r's slot (read-only), holding @r through @ref
 * until the buffer returns to the pool. */
GstBuffer *datahub_record_pool_wrap (GstBufferPool *pool, DatahubConsumerRef *ref,
    const dh_record *r);

G_END_DECLS

#endif
