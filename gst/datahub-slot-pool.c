/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "datahub-slot-pool.h"

#include "datahub-common.h"
#include "datahub-slot-allocator.h"

GST_DEBUG_CATEGORY_STATIC (datahub_slot_pool_debug);
#define GST_CAT_DEFAULT datahub_slot_pool_debug

struct _GstDatahubSlotPool {
  GstBufferPool parent;
  GstAllocator *allocator;
  guint slot_size;        /* no buffer can be larger */
  guint size, max;        /* as configured */
  gboolean video_meta;
  GstVideoInfo info;
  gint flushing;          /* our acquisitions stop waiting (not the sink's) */
  /* Idle shells.  The base class would discard a buffer that comes back
   * without its memory (size 0, memory tagged) and allocate a new one per
   * buffer; we keep them ourselves instead. */
  GMutex lock;
  GCond returned;         /* a buffer came back */
  guint waiting;          /* threads in g_cond_wait on returned (lock) */
  GPtrArray *shells;      /* a stack: no list node allocated per buffer */
  guint outstanding;      /* buffers out of the pool (lock) */
  gboolean warned_hoarding;
};

/* How long an acquire waits for one of max buffers to come back before it
 * hands out system memory instead. */
#define HOARD_WAIT_US (50 * 1000)

G_DEFINE_TYPE (GstDatahubSlotPool, gst_datahub_slot_pool, GST_TYPE_BUFFER_POOL);

static const gchar **
pool_get_options (GstBufferPool *pool)
{
  static const gchar *options[] = { GST_BUFFER_POOL_OPTION_VIDEO_META, NULL };
  (void) pool;
  return options;
}

/* Accepts what fits a slot and what the block can have outstanding; a
 * config that asks for more is corrected (FALSE with the corrected config,
 * as GstBufferPool expects). */
static gboolean
pool_set_config (GstBufferPool *pool, GstStructure *config)
{
  GstDatahubSlotPool *self = GST_DATAHUB_SLOT_POOL (pool);
  GstCaps *caps;
  guint size, min, max;
  if (!gst_buffer_pool_config_get_params (config, &caps, &size, &min, &max))
    return FALSE;
  if (size == 0 || size > self->slot_size) {
    GST_WARNING_OBJECT (pool, "buffers of %u bytes do not fit the %u-byte slots of this "
        "pool", size, self->slot_size);
    return FALSE;
  }
  guint limit = self->max;
  if (min > limit || max == 0 || max > limit) {
    gst_buffer_pool_config_set_params (config, caps, size, MIN (min, limit), limit);
    return FALSE;
  }
  self->size = size;
  self->video_meta = datahub_raw_video_info (&self->info, caps)
      && gst_buffer_pool_config_has_option (config, GST_BUFFER_POOL_OPTION_VIDEO_META);
  return GST_BUFFER_POOL_CLASS (gst_datahub_slot_pool_parent_class)->set_config (pool, config);
}

/* Wakes acquisitions waiting for a buffer to come back, if any (GLib's
 * GCond makes a system call on every signal; lock held). */
static void
wake_waiting (GstDatahubSlotPool *self)
{
  if (self->waiting > 0)
    g_cond_broadcast (&self->returned);
}

/* A shell: the slot memory comes at every acquire. */
static GstBuffer *
new_shell (GstDatahubSlotPool *self)
{
  GstBuffer *buffer = gst_buffer_new ();
  if (self->video_meta) {
    const GstVideoInfo *vi = &self->info;
    GstVideoMeta *meta = gst_buffer_add_video_meta_full (buffer, GST_VIDEO_FRAME_FLAG_NONE,
        GST_VIDEO_INFO_FORMAT (vi), GST_VIDEO_INFO_WIDTH (vi), GST_VIDEO_INFO_HEIGHT (vi),
        GST_VIDEO_INFO_N_PLANES (vi), (gsize *) vi->offset, (gint *) vi->stride);
    GST_META_FLAG_SET (meta, GST_META_FLAG_POOLED);
  }
  return buffer;
}

/* Nothing to preallocate: shells are made as needed and slots come at
 * acquire.  (The base class's start() would allocate the minimum through
 * alloc_buffer and count them as its own, which our stop() frees.) */
static gboolean
pool_start (GstBufferPool *pool)
{
  (void) pool;
  return TRUE;
}

static GstFlowReturn
pool_alloc_buffer (GstBufferPool *pool, GstBuffer **buffer, GstBufferPoolAcquireParams *params)
{
  (void) params;
  *buffer = new_shell (GST_DATAHUB_SLOT_POOL (pool));
  return GST_FLOW_OK;
}

static GstFlowReturn
pool_acquire_buffer (GstBufferPool *pool, GstBuffer **buffer, GstBufferPoolAcquireParams *params)
{
  GstDatahubSlotPool *self = GST_DATAHUB_SLOT_POOL (pool);
  gboolean dontwait = params && (params->flags & GST_BUFFER_POOL_ACQUIRE_FLAG_DONTWAIT);
  if (g_atomic_int_get (&self->flushing))
    return GST_FLOW_FLUSHING; /* inactive or flushing */
  /* max slot buffers out (what the pool advertised).  Upstream that keeps
   * more (a queue waiting for a threshold, a decoder's reference frames)
   * would wait for itself: after a moment it gets a system-memory buffer,
   * which the sink copies into a slot */
  gint64 give_up = g_get_monotonic_time () + HOARD_WAIT_US;
  gboolean slot_buffer = TRUE;
  g_mutex_lock (&self->lock);
  while (self->outstanding >= self->max) {
    if (dontwait || g_atomic_int_get (&self->flushing)) {
      g_mutex_unlock (&self->lock);
      return dontwait ? GST_FLOW_EOS : GST_FLOW_FLUSHING;
    }
    if (g_get_monotonic_time () >= give_up) {
      slot_buffer = FALSE;
      break;
    }
    self->waiting++;
    g_cond_wait_until (&self->returned, &self->lock, give_up);
    self->waiting--;
  }
  self->outstanding++;
  g_mutex_unlock (&self->lock);
  GstMemory *mem = NULL;
  if (slot_buffer) {
    /* back-pressure from consumers that hold the producer back: wait for
     * a slot; flushing this pool (set_flushing, deactivation) interrupts */
    mem = datahub_slot_allocator_alloc_slot (self->allocator, self->size, dontwait, TRUE,
        &self->flushing);
    if (!mem && (dontwait || g_atomic_int_get (&self->flushing))) {
      g_mutex_lock (&self->lock);
      self->outstanding--;
      wake_waiting (self);
      g_mutex_unlock (&self->lock);
      return dontwait ? GST_FLOW_EOS : GST_FLOW_FLUSHING;
    }
    if (!mem)
      GST_WARNING_OBJECT (pool, "no slot (%s); handing out system memory", dh_error_detail ());
  } else if (!self->warned_hoarding) {
    self->warned_hoarding = TRUE;
    GST_INFO_OBJECT (pool, "upstream keeps all %u slot buffers; handing out system "
        "memory (copied by the sink)", self->max);
  }
  if (!mem) /* the sink copies it into a slot (and reports what failed) */
    mem = gst_allocator_alloc (NULL, self->size, NULL);
  g_mutex_lock (&self->lock);
  *buffer = self->shells->len
      ? g_ptr_array_steal_index_fast (self->shells, self->shells->len - 1) : NULL;
  g_mutex_unlock (&self->lock);
  if (!*buffer)
    *buffer = new_shell (self);
  gst_buffer_append_memory (*buffer, mem);
  return GST_FLOW_OK;
}

/* A buffer back from upstream or the sink frees its slot memory now (the
 * slot is reusable once no consumer holds it) and waits as a shell. */
static void
pool_release_buffer (GstBufferPool *pool, GstBuffer *buffer)
{
  GstDatahubSlotPool *self = GST_DATAHUB_SLOT_POOL (pool);
  gst_buffer_remove_all_memory (buffer);
  GST_BUFFER_FLAG_UNSET (buffer, GST_BUFFER_FLAG_TAG_MEMORY);
  g_mutex_lock (&self->lock);
  g_ptr_array_add (self->shells, buffer);
  self->outstanding--;
  wake_waiting (self);
  g_mutex_unlock (&self->lock);
}

static gboolean
pool_stop (GstBufferPool *pool)
{
  GstDatahubSlotPool *self = GST_DATAHUB_SLOT_POOL (pool);
  g_mutex_lock (&self->lock);
  g_ptr_array_set_size (self->shells, 0);
  g_mutex_unlock (&self->lock);
  return GST_BUFFER_POOL_CLASS (gst_datahub_slot_pool_parent_class)->stop (pool);
}

static void
pool_flush_start (GstBufferPool *pool)
{
  GstDatahubSlotPool *self = GST_DATAHUB_SLOT_POOL (pool);
  g_atomic_int_set (&self->flushing, 1);
  g_mutex_lock (&self->lock);
  wake_waiting (self);
  g_mutex_unlock (&self->lock);
  datahub_slot_allocator_kick (self->allocator);
}

static void
pool_flush_stop (GstBufferPool *pool)
{
  g_atomic_int_set (&GST_DATAHUB_SLOT_POOL (pool)->flushing, 0);
}

static void
pool_finalize (GObject *object)
{
  GstDatahubSlotPool *self = GST_DATAHUB_SLOT_POOL (object);
  g_ptr_array_unref (self->shells);
  g_mutex_clear (&self->lock);
  g_cond_clear (&self->returned);
  gst_object_unref (self->allocator);
  G_OBJECT_CLASS (gst_datahub_slot_pool_parent_class)->finalize (object);
}

static void
gst_datahub_slot_pool_class_init (GstDatahubSlotPoolClass *klass)
{
  GstBufferPoolClass *pool_class = GST_BUFFER_POOL_CLASS (klass);
  G_OBJECT_CLASS (klass)->finalize = pool_finalize;
  pool_class->get_options = pool_get_options;
  pool_class->set_config = pool_set_config;
  pool_class->alloc_buffer = pool_alloc_buffer;
  pool_class->acquire_buffer = pool_acquire_buffer;
  pool_class->release_buffer = pool_release_buffer;
  pool_class->start = pool_start;
  pool_class->stop = pool_stop;
  pool_class->flush_start = pool_flush_start;
  pool_class->flush_stop = pool_flush_stop;
  GST_DEBUG_CATEGORY_INIT (datahub_slot_pool_debug, "datahubslotpool", 0, "datahub slot pool");
}

static void
gst_datahub_slot_pool_init (GstDatahubSlotPool *self)
{
  g_mutex_init (&self->lock);
  g_cond_init (&self->returned);
  self->shells = g_ptr_array_new_with_free_func ((GDestroyNotify) gst_buffer_unref);
  self->flushing = 1; /* as the base class: inactive until activated */
}

GstBufferPool *
gst_datahub_slot_pool_new (GstAllocator *allocator, GstCaps *caps, guint size, guint max)
{
  GstDatahubSlotPool *self = g_object_new (GST_TYPE_DATAHUB_SLOT_POOL, NULL);
  gst_object_ref_sink (self);
  self->allocator = gst_object_ref (allocator);
  self->slot_size = size;
  self->size = size;
  self->max = max;
  GstStructure *config = gst_buffer_pool_get_config (GST_BUFFER_POOL (self));
  gst_buffer_pool_config_set_params (config, caps, size, 0, max);
  gst_buffer_pool_config_set_allocator (config, allocator, NULL);
  if (datahub_raw_video_info (&self->info, caps))
    gst_buffer_pool_config_add_option (config, GST_BUFFER_POOL_OPTION_VIDEO_META);
  gst_buffer_pool_set_config (GST_BUFFER_POOL (self), config);
  return GST_BUFFER_POOL (self);
}
