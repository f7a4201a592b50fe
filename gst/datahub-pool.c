#include "datahub-pool.h"

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

/* What a pool memory knows about its slot. */
typedef struct {
  DatahubProducerRef *producer;
  dh_slot slot;
  gboolean committed;
} SlotMemory;

/* The qdata key marking a memory as one of our slots. */
static GQuark
slot_quark (void)
{
  static gsize q;
  if (g_once_init_enter (&q))
    g_once_init_leave (&q, g_quark_from_static_string ("datahub-slot"));
  return (GQuark) q;
}

static void
slot_memory_free (gpointer data)
{
  SlotMemory *sm = data;
  /* Unpushed (or pushed elsewhere and dropped): give the slot back. */
  if (!sm->committed)
    dh_producer_abort (sm->producer->producer, &sm->slot);
  datahub_producer_unref (sm->producer);
  g_free (sm);
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

/* Pool buffers are empty shells; a slot is attached at acquire. */
static GstFlowReturn
pool_alloc_buffer (GstBufferPool *pool, GstBuffer **buffer,
    GstBufferPoolAcquireParams *params)
{
  (void) pool;
  (void) params;
  *buffer = gst_buffer_new ();
  return GST_FLOW_OK;
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
  SlotMemory *sm = g_new0 (SlotMemory, 1);
  /* Waits for a free slot (back-pressure from slow consumers in block
   * mode); set_flushing interrupts the wait. */
  int rc = dh_producer_acquire (self->producer->producer, -1, &sm->slot);
  if (rc != 0) {
    g_free (sm);
    gst_buffer_pool_release_buffer (pool, *buffer);
    *buffer = NULL;
    if (rc == -ECANCELED)
      return GST_FLOW_FLUSHING;
    GST_ERROR_OBJECT (pool, "no slot: %s (%s)", dh_strerror (rc), dh_error_detail ());
    return GST_FLOW_ERROR;
  }
  sm->producer = datahub_producer_ref (self->producer);
  GstMemory *mem = gst_memory_new_wrapped (0, sm->slot.data, (gsize) sm->slot.capacity,
      0, self->size, NULL, NULL);
  gst_mini_object_set_qdata (GST_MINI_OBJECT_CAST (mem), slot_quark (), sm,
      slot_memory_free);
  gst_buffer_append_memory (*buffer, mem);
  if (self->add_video_meta)
    gst_buffer_add_video_meta_full (*buffer, GST_VIDEO_FRAME_FLAG_NONE,
        GST_VIDEO_INFO_FORMAT (&self->info), GST_VIDEO_INFO_WIDTH (&self->info),
        GST_VIDEO_INFO_HEIGHT (&self->info), GST_VIDEO_INFO_N_PLANES (&self->info),
        self->info.offset, self->info.stride);
  return GST_FLOW_OK;
}

/* A buffer coming back drops its slot memory (committed or aborted by
 * slot_memory_free), so idle pool buffers never pin slots. */
static void
pool_reset_buffer (GstBufferPool *pool, GstBuffer *buffer)
{
  gst_buffer_remove_all_memory (buffer);
  /* an empty shell is what alloc_buffer makes: keep it pooled */
  GST_BUFFER_FLAG_UNSET (buffer, GST_BUFFER_FLAG_TAG_MEMORY);
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

static SlotMemory *
buffer_slot_memory (GstBuffer *buffer)
{
  if (gst_buffer_n_memory (buffer) != 1)
    return NULL;
  GstMemory *mem = gst_buffer_peek_memory (buffer, 0);
  return gst_mini_object_get_qdata (GST_MINI_OBJECT_CAST (mem), slot_quark ());
}

const dh_slot *
datahub_pool_buffer_slot (GstBuffer *buffer, DatahubProducerRef *producer)
{
  SlotMemory *sm = buffer_slot_memory (buffer);
  if (!sm || sm->committed || sm->producer != producer)
    return NULL;
  /* the payload must start at the slot start (no resize offset) */
  GstMemory *mem = gst_buffer_peek_memory (buffer, 0);
  if (mem->offset != 0)
    return NULL;
  return &sm->slot;
}

void
datahub_pool_buffer_committed (GstBuffer *buffer)
{
  SlotMemory *sm = buffer_slot_memory (buffer);
  if (sm)
    sm->committed = TRUE;
}
