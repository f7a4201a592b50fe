/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "datahub-slot-allocator.h"

#include <string.h>

#include "datahub-metas.h"

#include "datahub-memory.h"

GST_DEBUG_CATEGORY_STATIC (datahub_slot_allocator_debug);
#define GST_CAT_DEFAULT datahub_slot_allocator_debug

/* Memory structs kept for reuse: no heap allocation per buffer. */
#define FREE_LIST_MAX 64
/* How long a direct allocation waits for a slot memory to be freed before
 * it takes system memory instead. */
#define ROOM_WAIT_US (50 * 1000)

DatahubProducerRef *
datahub_producer_ref_new (dh_producer *p)
{
  DatahubProducerRef *r = g_new0 (DatahubProducerRef, 1);
  r->refcount = 1;
  r->producer = p;
  g_weak_ref_init (&r->element, NULL);
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
    /* joins the producer's service thread: no request callback runs after */
    dh_producer_destroy (r->producer);
    g_weak_ref_clear (&r->element);
    g_free (r);
  }
}

typedef struct _SlotMemory SlotMemory;
struct _SlotMemory {
  GstMemory mem;
  dh_slot slot;
  gboolean published;     /* committed: pinned until the memory is freed */
  SlotMemory *next_free;  /* in the allocator's free list */
};

struct _GstDatahubSlotAllocator {
  GstAllocator parent;
  DatahubProducerRef *producer;
  gint cancel;            /* direct allocations stop waiting (flushing) */
  GMutex lock;
  GCond freed;            /* a memory was freed (or a kick) */
  guint waiting;          /* threads in g_cond_wait on freed (lock) */
  guint outstanding;      /* slots our memories own (writing or pinned) */
  guint limit;            /* at most this many: one slot stays for the sink */
  SlotMemory *free_list;  /* memory structs kept for reuse (a stack linked
                           * through the structs: no node to allocate) */
  guint free_count;
};

G_DEFINE_TYPE (GstDatahubSlotAllocator, gst_datahub_slot_allocator, GST_TYPE_ALLOCATOR);

static gpointer
slot_memory_map (GstMemory *mem, gsize maxsize, GstMapFlags flags)
{
  (void) maxsize;
  (void) flags; /* a published memory is READONLY: writes fail before this */
  return ((SlotMemory *) mem)->slot.data;
}

/* Wakes threads waiting for room.  GLib's GCond makes a system call on
 * every signal, waiters or not: none when nobody waits (lock held). */
static void
wake_waiting (GstDatahubSlotAllocator *self)
{
  if (self->waiting > 0)
    g_cond_broadcast (&self->freed);
}

static SlotMemory *
take_struct (GstDatahubSlotAllocator *self)
{
  g_mutex_lock (&self->lock);
  SlotMemory *sm = self->free_list;
  if (sm) {
    self->free_list = sm->next_free;
    self->free_count--;
  }
  g_mutex_unlock (&self->lock);
  return sm ? sm : g_new (SlotMemory, 1);
}

static void
slot_allocator_free (GstAllocator *allocator, GstMemory *mem)
{
  GstDatahubSlotAllocator *self = GST_DATAHUB_SLOT_ALLOCATOR (allocator);
  SlotMemory *sm = (SlotMemory *) mem;
  dh_producer *p = self->producer->producer;
  /* the memory is gone: its slot may be reused once no consumer holds it */
  int rc = sm->published ? dh_producer_unpin (p, &sm->slot) : dh_producer_abort (p, &sm->slot);
  if (rc != 0)
    GST_WARNING_OBJECT (self, "slot %u not returned: %s", sm->slot.index, dh_error_detail ());
  g_mutex_lock (&self->lock);
  self->outstanding--;
  wake_waiting (self);
  if (self->free_count < FREE_LIST_MAX) {
    sm->next_free = self->free_list;
    self->free_list = sm;
    self->free_count++;
    sm = NULL;
  }
  g_mutex_unlock (&self->lock);
  g_free (sm);
}

/* Counts one more outstanding memory, waiting for room: as long as it
 * takes when @wait (a pool, whose buffers come back), else a moment (the
 * sink may just be behind on buffers queued upstream), then FALSE (an
 * application keeping its buffers must not block). */
static gboolean
reserve (GstDatahubSlotAllocator *self, gboolean wait, gboolean dontwait, const gint *cancel)
{
  gboolean ok = TRUE;
  gint64 give_up = g_get_monotonic_time () + (dontwait ? 0 : ROOM_WAIT_US);
  g_mutex_lock (&self->lock);
  /* keep a slot for the sink's own records (events, copies) */
  while (self->outstanding >= self->limit) {
    gint64 now = g_get_monotonic_time ();
    if (g_atomic_int_get (cancel) || ((!wait || dontwait) && now >= give_up)) {
      ok = FALSE;
      break;
    }
    self->waiting++;
    g_cond_wait_until (&self->freed, &self->lock, wait ? now + 100 * 1000 : give_up);
    self->waiting--;
  }
  if (ok)
    self->outstanding++;
  g_mutex_unlock (&self->lock);
  return ok;
}

static void
unreserve (GstDatahubSlotAllocator *self)
{
  g_mutex_lock (&self->lock);
  self->outstanding--;
  wake_waiting (self);
  g_mutex_unlock (&self->lock);
}

GstMemory *
datahub_slot_allocator_alloc_slot (GstAllocator *allocator, gsize size, gboolean dontwait,
    gboolean wait_for_room, const gint *cancel)
{
  GstDatahubSlotAllocator *self = GST_DATAHUB_SLOT_ALLOCATOR (allocator);
  dh_producer *p = self->producer->producer;
  if (!cancel)
    cancel = &self->cancel;
  if (size == 0 || size > dh_producer_slot_size (p)
      || !reserve (self, wait_for_room, dontwait, cancel))
    return NULL;
  dh_slot slot;
  /* a pool's buffer waits for consumers that hold the producer back
   * (back-pressure); a direct allocation waits a moment, then takes
   * system memory: an application allocating must never hang here */
  int timeout_ms = dontwait ? 0 : wait_for_room ? -1 : ROOM_WAIT_US / 1000;
  int rc = dh_producer_acquire_cancellable (p, timeout_ms, cancel, &slot);
  if (rc != 0) {
    unreserve (self);
    if (rc != -EAGAIN && rc != -ECANCELED && rc != -ETIMEDOUT)
      GST_WARNING_OBJECT (self, "no slot: %s", dh_error_detail ());
    return NULL;
  }
  SlotMemory *sm = take_struct (self);
  sm->slot = slot;
  sm->published = FALSE;
  /* NO_SHARE: a sub-buffer is a copy, never a second owner of the slot */
  gst_memory_init (GST_MEMORY_CAST (sm), GST_MEMORY_FLAG_NO_SHARE, allocator, NULL,
      (gsize) slot.capacity, 63, 0, size);
  return GST_MEMORY_CAST (sm);
}

/* gst_allocator_alloc(): a slot when it fits, else system memory. */
static GstMemory *
slot_allocator_alloc (GstAllocator *allocator, gsize size, GstAllocationParams *params)
{
  GstMemory *mem = NULL;
  /* slots start on a 64-byte (or page) boundary, with no room before */
  if (!params || (params->prefix == 0 && params->padding == 0 && params->align < 64))
    mem = datahub_slot_allocator_alloc_slot (allocator, size, FALSE, FALSE, NULL);
  return mem ? mem : gst_allocator_alloc (NULL, size, params);
}

guint
datahub_slot_allocator_limit (GstAllocator *allocator)
{
  return GST_DATAHUB_SLOT_ALLOCATOR (allocator)->limit;
}

void
datahub_slot_allocator_set_flushing (GstAllocator *allocator, gboolean flushing)
{
  GstDatahubSlotAllocator *self = GST_DATAHUB_SLOT_ALLOCATOR (allocator);
  /* before the wake-up: a waiter sees the flag or is counted and woken */
  g_atomic_int_set (&self->cancel, flushing ? 1 : 0);
  if (flushing)
    datahub_slot_allocator_kick (allocator);
}

void
datahub_slot_allocator_kick (GstAllocator *allocator)
{
  GstDatahubSlotAllocator *self = GST_DATAHUB_SLOT_ALLOCATOR (allocator);
  g_mutex_lock (&self->lock);
  wake_waiting (self);
  g_mutex_unlock (&self->lock);
  dh_producer_kick (self->producer->producer);
}

static void
slot_allocator_finalize (GObject *object)
{
  GstDatahubSlotAllocator *self = GST_DATAHUB_SLOT_ALLOCATOR (object);
  while (self->free_list) {
    SlotMemory *sm = self->free_list;
    self->free_list = sm->next_free;
    g_free (sm);
  }
  g_mutex_clear (&self->lock);
  g_cond_clear (&self->freed);
  datahub_producer_unref (self->producer);
  G_OBJECT_CLASS (gst_datahub_slot_allocator_parent_class)->finalize (object);
}

static void
gst_datahub_slot_allocator_class_init (GstDatahubSlotAllocatorClass *klass)
{
  GstAllocatorClass *ac = GST_ALLOCATOR_CLASS (klass);
  datahub_memory_allocator_class_init (ac);
  ac->alloc = slot_allocator_alloc;
  ac->free = slot_allocator_free;
  G_OBJECT_CLASS (klass)->finalize = slot_allocator_finalize;
  GST_DEBUG_CATEGORY_INIT (datahub_slot_allocator_debug, "datahubslotallocator", 0,
      "datahub slot allocator");
}

static void
gst_datahub_slot_allocator_init (GstDatahubSlotAllocator *self)
{
  datahub_memory_allocator_init (GST_ALLOCATOR_CAST (self), DATAHUB_SLOT_MEMORY_TYPE,
      slot_memory_map, FALSE);
  g_mutex_init (&self->lock);
  g_cond_init (&self->freed);
}

GstAllocator *
gst_datahub_slot_allocator_new (DatahubProducerRef *producer)
{
  GstDatahubSlotAllocator *self = g_object_new (GST_TYPE_DATAHUB_SLOT_ALLOCATOR, NULL);
  gst_object_ref_sink (self);
  self->producer = datahub_producer_ref (producer);
  guint slots = dh_producer_slot_count (producer->producer);
  self->limit = slots > 1 ? slots - 1 : 0;
  return GST_ALLOCATOR_CAST (self);
}

static SlotMemory *
publishable_memory (GstBuffer *buffer, DatahubProducerRef *producer)
{
  if (gst_buffer_n_memory (buffer) != 1)
    return NULL;
  GstMemory *mem = gst_buffer_peek_memory (buffer, 0);
  if (!GST_IS_DATAHUB_SLOT_ALLOCATOR (mem->allocator)
      || GST_DATAHUB_SLOT_ALLOCATOR (mem->allocator)->producer != producer)
    return NULL;
  SlotMemory *sm = (SlotMemory *) mem;
  /* the record starts at the slot start; a memory published before (a
   * buffer pushed twice) is copied instead */
  return sm->published || mem->offset != 0 ? NULL : sm;
}

gboolean
datahub_slot_buffer_publishable (GstBuffer *buffer, DatahubProducerRef *producer,
    guint64 record_size)
{
  SlotMemory *sm = publishable_memory (buffer, producer);
  return sm && record_size <= sm->slot.capacity;
}

int
datahub_slot_buffer_publish (GstBuffer *buffer, const dh_record_info *info,
    const guint8 *trailer, gsize trailer_len)
{
  GstMemory *mem = gst_buffer_peek_memory (buffer, 0);
  SlotMemory *sm = (SlotMemory *) mem;
  dh_producer *p = GST_DATAHUB_SLOT_ALLOCATOR (mem->allocator)->producer->producer;
  /* after the payload, in the slot we still own (publishable checked the
   * room): the record's metas */
  if (trailer_len > 0)
    memcpy ((guint8 *) sm->slot.data + DATAHUB_METAS_OFFSET (info->size), trailer, trailer_len);
  int rc = dh_producer_commit_keep (p, &sm->slot, info, NULL);
  if (rc == 0) {
    sm->published = TRUE;
    /* consumers read it now: nobody in this process may write it again */
    GST_MINI_OBJECT_FLAG_SET (mem, GST_MEMORY_FLAG_READONLY);
  }
  return rc;
}
