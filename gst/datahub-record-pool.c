#include "datahub-record-pool.h"

#include "datahub-memory.h"

GST_DEBUG_CATEGORY_STATIC (datahub_record_pool_debug);
#define GST_CAT_DEFAULT datahub_record_pool_debug

DatahubConsumerRef *
datahub_consumer_ref_new (dh_consumer *c)
{
  DatahubConsumerRef *r = g_new0 (DatahubConsumerRef, 1);
  r->refcount = 1;
  r->consumer = c;
  return r;
}

DatahubConsumerRef *
datahub_consumer_ref (DatahubConsumerRef *r)
{
  g_atomic_int_inc (&r->refcount);
  return r;
}

void
datahub_consumer_unref (DatahubConsumerRef *r)
{
  if (r && g_atomic_int_dec_and_test (&r->refcount)) {
    dh_consumer_detach (r->consumer);
    g_free (r);
  }
}

/* ---- the memory: a held record ------------------------------------------- */

typedef struct {
  GstMemory mem;
  DatahubConsumerRef *ref;     /* set while holding */
  dh_record record;
} RecordMemory;

typedef struct {
  GstAllocator parent;
} DatahubRecordAllocator;

typedef struct {
  GstAllocatorClass parent_class;
} DatahubRecordAllocatorClass;

static GType datahub_record_allocator_get_type (void);
G_DEFINE_TYPE (DatahubRecordAllocator, datahub_record_allocator, GST_TYPE_ALLOCATOR);

static gpointer
record_memory_map (GstMemory *mem, gsize maxsize, GstMapFlags flags)
{
  (void) maxsize;
  /* the mapping of the block is read-only: so is the memory */
  if (flags & GST_MAP_WRITE)
    return NULL;
  return (gpointer) ((RecordMemory *) mem)->record.data;
}

static void
release_hold (RecordMemory *rm)
{
  if (!rm->ref)
    return;
  dh_consumer_release (rm->ref->consumer, &rm->record);
  datahub_consumer_unref (rm->ref);
  rm->ref = NULL;
}

static void
record_allocator_free (GstAllocator *allocator, GstMemory *mem)
{
  (void) allocator;
  release_hold ((RecordMemory *) mem);
  g_free (mem);
}

static void
datahub_record_allocator_class_init (DatahubRecordAllocatorClass *klass)
{
  GstAllocatorClass *ac = GST_ALLOCATOR_CLASS (klass);
  datahub_memory_allocator_class_init (ac);
  ac->free = record_allocator_free;
}

static void
datahub_record_allocator_init (DatahubRecordAllocator *self)
{
  datahub_memory_allocator_init (GST_ALLOCATOR_CAST (self), "DatahubRecord", record_memory_map,
      TRUE);
}

static GstAllocator *
record_allocator (void)
{
  static GstAllocator *allocator;
  static gsize once;
  if (g_once_init_enter (&once)) {
    allocator = g_object_new (datahub_record_allocator_get_type (), NULL);
    gst_object_ref_sink (allocator);
    g_once_init_leave (&once, 1);
  }
  return allocator;
}

/* ---- the pool ---------------------------------------------------------------- */

typedef struct {
  GstBufferPool parent;
} DatahubRecordPool;

typedef struct {
  GstBufferPoolClass parent_class;
} DatahubRecordPoolClass;

static GType datahub_record_pool_get_type (void);
G_DEFINE_TYPE (DatahubRecordPool, datahub_record_pool, GST_TYPE_BUFFER_POOL);

/* A pool buffer: one empty record memory, kept for the buffer's life. */
static GstFlowReturn
record_pool_alloc_buffer (GstBufferPool *pool, GstBuffer **buffer,
    GstBufferPoolAcquireParams *params)
{
  (void) pool;
  (void) params;
  RecordMemory *rm = g_new0 (RecordMemory, 1);
  gst_memory_init (GST_MEMORY_CAST (rm), GST_MEMORY_FLAG_READONLY | GST_MEMORY_FLAG_NO_SHARE,
      record_allocator (), NULL, 0, 0, 0, 0);
  *buffer = gst_buffer_new ();
  gst_buffer_append_memory (*buffer, GST_MEMORY_CAST (rm));
  return GST_FLOW_OK;
}

static RecordMemory *
buffer_record_memory (GstBuffer *buffer)
{
  if (gst_buffer_n_memory (buffer) != 1)
    return NULL;
  GstMemory *mem = gst_buffer_peek_memory (buffer, 0);
  return mem->allocator == record_allocator () ? (RecordMemory *) mem : NULL;
}

/* Back in the pool: release the hold (from whichever thread dropped the
 * buffer: dh_consumer_release may be called from any), empty the memory.
 * Buffers whose memory was replaced or is still shared are discarded by
 * the base class; their memory releases its hold when freed. */
static void
record_pool_reset_buffer (GstBufferPool *pool, GstBuffer *buffer)
{
  RecordMemory *rm = buffer_record_memory (buffer);
  if (rm && gst_memory_is_writable (GST_MEMORY_CAST (rm))) {
    release_hold (rm);
    rm->mem.maxsize = rm->mem.size = rm->mem.offset = 0;
  }
  GST_BUFFER_POOL_CLASS (datahub_record_pool_parent_class)->reset_buffer (pool, buffer);
}

static void
datahub_record_pool_class_init (DatahubRecordPoolClass *klass)
{
  GstBufferPoolClass *pool_class = GST_BUFFER_POOL_CLASS (klass);
  pool_class->alloc_buffer = record_pool_alloc_buffer;
  pool_class->reset_buffer = record_pool_reset_buffer;
  GST_DEBUG_CATEGORY_INIT (datahub_record_pool_debug, "datahubrecordpool", 0,
      "datahub record pool");
}

static void
datahub_record_pool_init (DatahubRecordPool *self)
{
  (void) self;
}

GstBufferPool *
datahub_record_pool_new (void)
{
  GstBufferPool *pool = g_object_new (datahub_record_pool_get_type (), NULL);
  gst_object_ref_sink (pool);
  GstStructure *config = gst_buffer_pool_get_config (pool);
  /* size 0: an idle buffer wraps nothing; no maximum: the src's
   * max-held-slots bounds how many are out */
  gst_buffer_pool_config_set_params (config, NULL, 0, 0, 0);
  gst_buffer_pool_set_config (pool, config);
  gst_buffer_pool_set_active (pool, TRUE);
  return pool;
}

GstBuffer *
datahub_record_pool_wrap (GstBufferPool *pool, DatahubConsumerRef *ref, const dh_record *r)
{
  GstBuffer *buf = NULL;
  if (gst_buffer_pool_acquire_buffer (pool, &buf, NULL) != GST_FLOW_OK)
    return NULL;
  RecordMemory *rm = buffer_record_memory (buf);
  g_assert (rm != NULL && rm->ref == NULL); /* reset_buffer left it so */
  rm->ref = datahub_consumer_ref (ref);
  rm->record = *r;
  rm->mem.offset = 0;
  rm->mem.maxsize = rm->mem.size = (gsize) r->info.size;
  return buf;
}
