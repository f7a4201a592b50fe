#include "datahub-pool.h"

#include "datahub-memory.h"

GST_DEBUG_CATEGORY_STATIC (datahub_pool_debug);
#define GST_CAT_DEFAULT datahub_pool_debug

DatahubProducerRef *
datahub_producer_ref_new (dh_producer *p)
{
  DatahubProducerRef *r = g_new0 (DatahubProducerRef, 1);
  r->refcount = 1;
  r->producer = p;
  return r;
}

DatahubProducerRef *
datahub_producer_ref (DatahubProducerRef *r)
{
  g_atomic_int_inc (&r->refcount);
  return r;
}

void
datahub_producer_unref (DatahubProducerRef *r)
{
  if (r && g_atomic_int_dec_and_test (&r->refcount)) {
    dh_producer_destroy (r->producer);
    g_free (r);
  }
}

/* Pool memory: a GstMemory that points at whatever slot its buffer holds.
 * Each pool buffer owns one for its whole life and gets a new slot at every
 * acquire, so a buffer going round the pool allocates nothing. */
typedef struct {
  GstMemory mem;
  DatahubProducerRef *producer;
  dh_slot slot;
  gboolean holds_slot;     /* acquired, and neither committed nor aborted */
} SlotMemory;

typedef struct {
  GstAllocator parent;
} DatahubSlotAllocator;

typedef struct {
  GstAllocatorClass parent_class;
} DatahubSlotAllocatorClass;

static GType datahub_slot_allocator_get_type (void);
G_DEFINE_TYPE (DatahubSlotAllocator, datahub_slot_allocator, GST_TYPE_ALLOCATOR);

static gpointer
slot_memory_map (GstMemory *mem, gsize maxsize, GstMapFlags flags)
{
  (void) maxsize;
  (void) flags;
  return ((SlotMemory *) mem)->slot.data;
}

static void
slot_allocator_free (GstAllocator *allocator, GstMemory *mem)
{
  (void) allocator;
  SlotMemory *sm = (SlotMemory *) mem;
  /* a buffer dropped unpushed (or discarded by the pool): slot back */
  if (sm->holds_slot)
    dh_producer_abort (sm->producer->producer, &sm->slot);
  datahub_producer_unref (sm->producer);
  g_free (sm);
}

static void
datahub_slot_allocator_class_init (DatahubSlotAllocatorClass *klass)
{
  GstAllocatorClass *ac = GST_ALLOCATOR_CLASS (klass);
  datahub_memory_allocator_class_init (ac);
  ac->free = slot_allocator_free;
}

static void
datahub_slot_allocator_init (DatahubSlotAllocator *self)
{
  datahub_memory_allocator_init (GST_ALLOCATOR_CAST (self), "DatahubSlot", slot_memory_map);
}

static GstAllocator *
slot_allocator (void)
{
  static GstAllocator *allocator;
  static gsize once;
  if (g_once_init_enter (&once)) {
    allocator = g_object_new (datahub_slot_allocator_get_type (), NULL);
    gst_object_ref_sink (allocator);
    g_once_init_leave (&once, 1);
  }
  return allocator;
}

struct _GstDatahubPool {
  GstBufferPool parent;
  DatahubProducerRef *producer;
  guint size;
  gboolean add_video_meta;
  GstVideoInfo info;
  gboolean has_info;
};

G_DEFINE_TYPE (GstDatahubPool, gst_datahub_pool, GST_TYPE_BUFFER_POOL);

static const gchar **
pool_get_options (GstBufferPool *pool)
{
  static const gchar *options[] = { GST_BUFFER_POOL_OPTION_VIDEO_META, NULL };
  (void) pool;
  return options;
}

static gboolean
pool_set_config (GstBufferPool *pool, GstStructure *config)
{
  GstDatahubPool *self = GST_DATAHUB_POOL (pool);
  GstCaps *caps;
  guint size, min, max;
  if (!gst_buffer_pool_config_get_params (config, &caps, &size, &min, &max))
    return FALSE;
  uint64_t capacity = dh_producer_slot_size (self->producer->producer);
  if (size == 0 || size > capacity) {
    GST_WARNING_OBJECT (pool, "buffers of %u bytes do not fit %" G_GUINT64_FORMAT
        "-byte slots", size, capacity);
    return FALSE;
  }
  self->size = size;
  self->has_info = caps && gst_video_info_from_caps (&self->info, caps);
  self->add_video_meta = self->has_info && gst_buffer_pool_config_has_option (config,
      GST_BUFFER_POOL_OPTION_VIDEO_META);
  return GST_BUFFER_POOL_CLASS (gst_datahub_pool_parent_class)->set_config (pool, config);
}

/* A pool buffer: one slot memory (no slot yet) and, for video, a video
 * meta, both kept for the buffer's life. */
static GstFlowReturn
pool_alloc_buffer (GstBufferPool *pool, GstBuffer **buffer,
    GstBufferPoolAcquireParams *params)
{
  GstDatahubPool *self = GST_DATAHUB_POOL (pool);
  (void) params;
  SlotMemory *sm = g_new0 (SlotMemory, 1);
  gst_memory_init (GST_MEMORY_CAST (sm), GST_MEMORY_FLAG_NO_SHARE, slot_allocator (), NULL,
      (gsize) dh_producer_slot_size (self->producer->producer), 0, 0, self->size);
  sm->producer = datahub_producer_ref (self->producer);
  *buffer = gst_buffer_new ();
  gst_buffer_append_memory (*buffer, GST_MEMORY_CAST (sm));
  if (self->add_video_meta) {
    GstVideoMeta *meta = gst_buffer_add_video_meta_full (*buffer, GST_VIDEO_FRAME_FLAG_NONE,
        GST_VIDEO_INFO_FORMAT (&self->info), GST_VIDEO_INFO_WIDTH (&self->info),
        GST_VIDEO_INFO_HEIGHT (&self->info), GST_VIDEO_INFO_N_PLANES (&self->info),
        self->info.offset, self->info.stride);
    GST_META_FLAG_SET (meta, GST_META_FLAG_POOLED);
  }
  return GST_FLOW_OK;
}

static SlotMemory *
buffer_slot_memory (GstBuffer *buffer)
{
  if (gst_buffer_n_memory (buffer) != 1)
    return NULL;
  GstMemory *mem = gst_buffer_peek_memory (buffer, 0);
  return mem->allocator == slot_allocator () ? (SlotMemory *) mem : NULL;
}

static GstFlowReturn
pool_acquire_buffer (GstBufferPool *pool, GstBuffer **buffer,
    GstBufferPoolAcquireParams *params)
{
  GstDatahubPool *self = GST_DATAHUB_POOL (pool);
  GstFlowReturn ret = GST_BUFFER_POOL_CLASS (gst_datahub_pool_parent_class)->acquire_buffer (pool,
      buffer, params);
  if (ret != GST_FLOW_OK)
    return ret;
  SlotMemory *sm = buffer_slot_memory (*buffer);
  g_assert (sm != NULL && !sm->holds_slot); /* reset_buffer left it so */
  /* Waits for a free slot (back-pressure from slow consumers in block
   * mode); set_flushing interrupts the wait. */
  int rc = dh_producer_acquire (self->producer->producer, -1, &sm->slot);
  if (rc != 0) {
    gst_buffer_pool_release_buffer (pool, *buffer);
    *buffer = NULL;
    if (rc == -ECANCELED)
      return GST_FLOW_FLUSHING;
    GST_ERROR_OBJECT (pool, "no slot: %s (%s)", dh_strerror (rc), dh_error_detail ());
    return GST_FLOW_ERROR;
  }
  sm->holds_slot = TRUE;
  return GST_FLOW_OK;
}

/* A buffer coming back gives its slot back unless it was committed, and
 * gets its full size again (the pool discards buffers whose memory was
 * replaced or is still shared: their memory frees itself). */
static void
pool_reset_buffer (GstBufferPool *pool, GstBuffer *buffer)
{
  GstDatahubPool *self = GST_DATAHUB_POOL (pool);
  SlotMemory *sm = buffer_slot_memory (buffer);
  if (sm && sm->holds_slot) {
    dh_producer_abort (sm->producer->producer, &sm->slot);
    sm->holds_slot = FALSE;
  }
  if (sm && gst_memory_is_writable (GST_MEMORY_CAST (sm)))
    gst_memory_resize (GST_MEMORY_CAST (sm), -(gssize) sm->mem.offset, self->size);
  GST_BUFFER_POOL_CLASS (gst_datahub_pool_parent_class)->reset_buffer (pool, buffer);
}

static void
pool_flush_start (GstBufferPool *pool)
{
  dh_producer_wakeup (GST_DATAHUB_POOL (pool)->producer->producer);
}

static void
pool_flush_stop (GstBufferPool *pool)
{
  dh_producer_clear_wakeup (GST_DATAHUB_POOL (pool)->producer->producer);
}

static void
pool_finalize (GObject *object)
{
  datahub_producer_unref (GST_DATAHUB_POOL (object)->producer);
  G_OBJECT_CLASS (gst_datahub_pool_parent_class)->finalize (object);
}

static void
gst_datahub_pool_class_init (GstDatahubPoolClass *klass)
{
  GstBufferPoolClass *pool_class = GST_BUFFER_POOL_CLASS (klass);
  G_OBJECT_CLASS (klass)->finalize = pool_finalize;
  pool_class->get_options = pool_get_options;
  pool_class->set_config = pool_set_config;
  pool_class->alloc_buffer = pool_alloc_buffer;
  pool_class->acquire_buffer = pool_acquire_buffer;
  pool_class->reset_buffer = pool_reset_buffer;
  pool_class->flush_start = pool_flush_start;
  pool_class->flush_stop = pool_flush_stop;
  GST_DEBUG_CATEGORY_INIT (datahub_pool_debug, "datahubpool", 0, "datahub slot pool");
}

static void
gst_datahub_pool_init (GstDatahubPool *self)
{
  (void) self;
}

GstBufferPool *
gst_datahub_pool_new (DatahubProducerRef *producer)
{
  GstDatahubPool *self = g_object_new (GST_TYPE_DATAHUB_POOL, NULL);
  gst_object_ref_sink (self);
  self->producer = datahub_producer_ref (producer);
  return GST_BUFFER_POOL (self);
}

const dh_slot *
datahub_pool_buffer_slot (GstBuffer *buffer, DatahubProducerRef *producer)
{
  SlotMemory *sm = buffer_slot_memory (buffer);
  /* the payload must start at the slot start (no resize offset) */
  if (!sm || !sm->holds_slot || sm->producer != producer || sm->mem.offset != 0)
    return NULL;
  return &sm->slot;
}

void
datahub_pool_buffer_committed (GstBuffer *buffer)
{
  SlotMemory *sm = buffer_slot_memory (buffer);
  if (sm)
    sm->holds_slot = FALSE;
}
