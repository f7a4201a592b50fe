/* SPDX-License-Identifier: LGPL-2.1-or-later */
/**
 * SECTION:element-datahubsink
 * @title: datahubsink
 *
 * Writes buffers into a datahub DataBlock (named shared memory) so that
 * datahubsrc elements in other processes receive them with caps,
 * timestamps and events intact.  Upstream that allocates from the offered
 * allocator or pool (videotestsrc, decoders, appsrc applications using the
 * negotiated allocator) renders straight into shared memory: zero copies.
 *
 * Consumers that start before the producer get every buffer from the
 * first.  A live producer (videotestsrc is-live=true, a camera) is never
 * held back by a consumer unless that consumer asked for it (datahubsrc
 * leaky=no): a slow or stalled consumer loses only its own buffers.  A
 * non-live producer (a file, num-buffers) waits for its consumers, so they
 * lose nothing.
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 videotestsrc is-live=true ! video/x-raw,width=1280,height=720 ! datahubsink channel=cam0
 * gst-launch-1.0 datahubsrc channel=cam0 ! videoconvert ! autovideosink
 * ]|
 */
#include "gstdatahubsink.h"

#include <string.h>

#include <sodium.h>

#include <gst/allocators/allocators.h>
#include <gst/video/video.h>

#include "datahub-common.h"
#include "datahub-discovery.h"
#include "datahub-enums.h"
#include "datahub-fd-channel.h"
#include "datahub-memfd-allocator.h"
#include "datahub-metas.h"
#include "datahub-slot-allocator.h"
#include "datahub-slot-pool.h"
#include "datahub-ticker.h"
#include "datahub-wire.h"

GST_DEBUG_CATEGORY_STATIC (datahub_sink_debug);
#define GST_CAT_DEFAULT datahub_sink_debug

#define DEFAULT_SLOT_SIZE 0
#define DEFAULT_SLOTS 8
#define DEFAULT_POLICY DH_POLICY_RING
#define DEFAULT_ON_FULL DH_ON_FULL_BLOCK
#define DEFAULT_MAX_CONSUMERS 16
#define DEFAULT_INTEGRITY DH_INTEGRITY_NONE
#define DEFAULT_PERMS 0600
#define DEFAULT_STATS_INTERVAL 0
/* the smallest slots: events (segments, tags, caps) are records too, and
 * a stream whose first buffer says nothing (empty, an EOS first) needs
 * some */
#define MIN_SLOT_SIZE 4096
/* room a slot keeps after its payload (a video frame, or slot-size bytes)
 * for the record's metas (its layout, crop, regions of interest, time
 * code, ...): a frame that fills its payload publishes without copying
 * and still carries them */
#define META_SPACE 4096
/* fd records: the newest is kept for leaky consumers that have not read
 * it yet (one waiting for data takes it within microseconds); older ones
 * are retired as soon as nobody holds them: an upstream pool may have
 * only a few buffers, and a consumer that stopped reading must not take
 * them from a live producer */
#define FD_KEPT_FOR_LAGGARDS 1
/* the first registration waits this long for the broker; later updates
 * (handover, schema) go through the keep-alive thread and never block */
#define BROKER_TIMEOUT_MS 1000
/* the ticker's period: consumer changes are noticed this fast */
#define TICK_MS 100

enum {
  PROP_SLOT_SIZE = DATAHUB_PROP_LAST_COMMON + 1,
  PROP_SLOTS,
  PROP_POLICY,
  PROP_ON_FULL,
  PROP_MAX_CONSUMERS,
  PROP_INTEGRITY,
  PROP_PERMS,
  PROP_WAIT_FOR_CONSUMER,
  PROP_OFFER_MEMFD,
  PROP_METADATA,
};

struct _GstDatahubSink {
  GstBaseSink parent;

  /* properties (GST_OBJECT_LOCK) */
  DatahubCommon common;
  guint64 slot_size;
  guint slots, max_consumers, perms;
  dh_policy policy;
  dh_on_full on_full;
  dh_integrity integrity;
  gboolean wait_for_consumer, offer_memfd;
  GstStructure *metadata;
  gboolean metadata_dirty;

  /* The block.  Replaced by the streaming thread under the object lock;
   * other threads (ticker, stats getter) take a ref under the lock. */
  DatahubProducerRef *producer;
  GstClock *due_clock;         /* the clock whose type due_clock_monotonic says */
  gboolean due_clock_monotonic;
  GPtrArray *chain;            /* the blocks handed over from (DatahubProducerRef),
                                  kept until stop: consumers read each to its end
                                  and late joiners walk them to the newest */
  GstAllocator *allocator;     /* slots of @producer */
  GstBufferPool *pool;         /* offered for @pool_caps only */
  GstCaps *pool_caps;
  guint pool_max;              /* buffers @pool lets out */
  GPtrArray *old_pools;        /* pools offered before (other caps, limits or
                                  blocks) that upstream may still use: a
                                  flush reaches them too; kept until stop */
  gboolean offered_without_caps; /* the last ALLOCATION query had no caps */

  /* streaming thread */
  GstCaps *caps;
  GstVideoInfo vinfo;          /* of caps, parsed once per caps, not per buffer */
  gboolean is_video;
  gboolean is_dmabuf;          /* memory:DMABuf caps: every buffer an fd record */
  guint caps_gen;
  gboolean live;               /* upstream is a live source */
  GQueue pending_events;       /* serialized events before the block exists */
  GMutex block_lock;           /* creating the first block: the streaming thread,
                                * or an application's ALLOCATION query */
  gint flushing;               /* unlock: waits for slots end (int for the library) */

  GByteArray *metas;           /* the current buffer's meta trailer, reused */

  /* fd records: the socket (made at the first), and the records whose
   * buffers we keep until consumers are done (FdInFlight, oldest first;
   * fd_lock: the streaming thread publishes, the ticker retires) */
  DatahubFdServer *fd_server;
  GMutex fd_lock;
  GQueue fd_in_flight;
  gint fd_published;           /* fd records published (atomic) */
  gint refused_said;           /* caps of other memory were refused (said once) */
  gint fd_published_at_tick;   /* ticker thread: as seen at its last tick */
  /* records by memory kind (datahub_count: no lock per buffer) */
  guint64 records_slot, records_dmabuf, records_fd;

  /* bytes this sink had to copy, metas it could not carry (object lock:
   * read by the ticker) */
  guint64 bytes_copied, metas_dropped;

  /* ticker thread: datahub-consumer and datahub-stats messages */
  DatahubTicker ticker;
  DatahubStatsTimer stats_timer;
  guint last_consumers;
  guint64 last_reaped;

  /* broker: the channel's registration, kept alive by the client */
  dhb_client *broker;
  gchar *broker_channel;
  gchar *schema;               /* of the current caps */
  gboolean registered;
};

G_DEFINE_TYPE (GstDatahubSink, gst_datahub_sink, GST_TYPE_BASE_SINK);
GST_ELEMENT_REGISTER_DEFINE (datahubsink, "datahubsink", GST_RANK_NONE,
    GST_TYPE_DATAHUB_SINK);

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS_ANY);

/* ---- the block ---------------------------------------------------------- */

static DatahubProducerRef *
take_producer (GstDatahubSink *self)
{
  GST_OBJECT_LOCK (self);
  DatahubProducerRef *p = self->producer ? datahub_producer_ref (self->producer) : NULL;
  GST_OBJECT_UNLOCK (self);
  return p;
}

/* Called by the broker client's keep-alive thread when the registration
 * is refused after all (another producer took the channel after a broker
 * restart, or two sinks started while it was down) or comes back.
 * Consumers asking the broker are sent to the other producer meanwhile:
 * an error that names it. */
static void
on_registration_changed (const dhb_registration_event * ev, void *user_data)
{
  GstDatahubSink *self = user_data;

  if (ev->status == DHB_OK) {
    GST_INFO_OBJECT (self, "channel %s registered at the broker again", ev->channel);
  } else if (ev->status == DHB_CONFLICT && ev->holder_pid) {
    GST_ELEMENT_ERROR (self, RESOURCE, BUSY,
        ("Channel '%s' was taken at the broker by another producer (pid %"
            G_GINT64_FORMAT ", block %s).", ev->channel, ev->holder_pid,
            ev->holder_shm_name), ("%s", ev->error));
  } else {
    GST_ELEMENT_ERROR (self, RESOURCE, BUSY,
        ("The broker no longer registers channel '%s' for this sink (%s).",
            ev->channel, dhb_status_name (ev->status)), ("%s", ev->error));
  }
}

/* Tells the broker which block serves the channel.  The first time it
 * waits for the answer, so a CONFLICT fails the start; afterwards (a
 * handover, new caps) the keep-alive thread sends it.  A broker that is
 * down never stops the stream: the keep-alive registers once it is up,
 * and a registration lost to another producer is an error
 * (on_registration_changed). */
static gboolean
register_block (GstDatahubSink *self)
{
  if (!self->broker || !self->producer)
    return TRUE;
  guint8 secret[DH_SECRET_SIZE];
  GST_OBJECT_LOCK (self);
  gboolean has_secret = datahub_common_secret (&self->common, secret);
  GST_OBJECT_UNLOCK (self);
  dhb_registration reg = {
    .channel = self->broker_channel,
    .shm_name = dh_producer_shm_name (self->producer->producer),
    .schema = self->schema,
    .secret = has_secret ? secret : NULL,
  };
  if (self->registered) {
    dhb_client_update_registration (self->broker, &reg);
    return TRUE;
  }
  dhb_status st = dhb_register (self->broker, &reg, BROKER_TIMEOUT_MS);
  char why[256];
  dhb_client_last_error (self->broker, why, sizeof why);
  if (st == DHB_OK || st == DHB_TIMEOUT) {
    if (st == DHB_TIMEOUT)
      GST_ELEMENT_WARNING (self, RESOURCE, WRITE,
          ("The broker is not answering; channel '%s' streams unregistered until it "
              "does.", self->broker_channel), ("%s", why));
    dhb_client_watch_registration (self->broker, on_registration_changed, self);
    self->registered = dhb_client_keep_alive (self->broker, &reg, NULL) == 0;
    GST_INFO_OBJECT (self, "registered %s -> %s", reg.channel, reg.shm_name);
    return TRUE;
  }
  if (st == DHB_CONFLICT)
    GST_ELEMENT_ERROR (self, RESOURCE, BUSY,
        ("Another producer is registered for channel '%s' at the broker.",
            self->broker_channel), ("%s", why));
  else
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS,
        ("The broker refused to register channel '%s' (%s): %s.", self->broker_channel,
            dhb_status_name (st), why), (NULL));
  return FALSE;
}

/* A consumer asked for something upstream (docs/elements.md): runs in the
 * library's service thread, which may outlive the element by a moment. */
static void
on_request (uint32_t consumer, uint32_t kind, const void *data, size_t len, void *user)
{
  DatahubProducerRef *ref = user;
  GstElement *element = g_weak_ref_get (&ref->element);
  if (!element)
    return;
  GstEvent *event = NULL;
  if (kind == DATAHUB_REQUEST_KEY_UNIT) {
    event = gst_video_event_new_upstream_force_key_unit (GST_CLOCK_TIME_NONE, TRUE, 0);
  } else if (kind == DATAHUB_REQUEST_UPSTREAM && len > 0
      && ((const gchar *) data)[len - 1] == '\0') {
    GstStructure *s = gst_structure_from_string (data, NULL);
    if (s)
      event = gst_event_new_custom (GST_EVENT_CUSTOM_UPSTREAM, s);
  }
  if (event) {
    GST_DEBUG_OBJECT (element, "consumer %u asks upstream for %" GST_PTR_FORMAT, consumer,
        event);
    gst_pad_push_event (GST_BASE_SINK_PAD (element), event);
  } else {
    GST_WARNING_OBJECT (element, "consumer %u sent an unusable request (kind %u, %zu bytes)",
        consumer, kind, len);
  }
  gst_object_unref (element);
}

static void
report_create_error (GstDatahubSink *self, const gchar *name, int rc)
{
  if (rc == -EACCES)
    GST_ELEMENT_ERROR (self, RESOURCE, OPEN_WRITE,
        ("Permission denied creating the shared memory for '%s'.", name),
        ("%s", dh_error_detail ()));
  else if (rc == DH_EBUSY)
    GST_ELEMENT_ERROR (self, RESOURCE, BUSY,
        ("Another producer is already running on '%s'.", name), ("%s", dh_error_detail ()));
  else if (rc == DH_ENOTDATAHUB)
    GST_ELEMENT_ERROR (self, RESOURCE, OPEN_WRITE,
        ("The shared memory object '%s' exists and is not a datahub block; it was left "
            "alone (remove it, or use another channel or shm-name).", name),
        ("%s", dh_error_detail ()));
  else
    GST_ELEMENT_ERROR (self, RESOURCE, OPEN_WRITE,
        ("Could not create the datahub block for '%s': %s.", name, dh_error_detail ()),
        ("%s", dh_strerror (rc)));
}

/* Creates the channel's block with slots of @slot_size bytes. */
static DatahubProducerRef *
create_block (GstDatahubSink *self, guint64 slot_size)
{
  dh_producer_config pc;
  dh_producer_config_init (&pc);
  guint8 secret[DH_SECRET_SIZE];
  GST_OBJECT_LOCK (self);
  gchar *name = datahub_common_name (&self->common);
  pc.slot_count = self->slots;
  pc.policy = self->policy;
  pc.on_full = self->on_full;
  pc.max_consumers = self->max_consumers;
  pc.integrity = self->integrity;
  pc.mode = self->perms;
  if (datahub_common_secret (&self->common, secret))
    pc.secret = secret;
  GST_OBJECT_UNLOCK (self);
  DatahubProducerRef *ref = datahub_producer_ref_new (NULL);
  g_weak_ref_set (&ref->element, self);
  pc.name = name;
  pc.slot_size = slot_size;
  pc.live = self->live;
  pc.zone_count = 3;
  pc.zone_sizes[DATAHUB_ZONE_STREAM] = DATAHUB_ZONE_STREAM_SIZE;
  pc.zone_sizes[DATAHUB_ZONE_METADATA] = DATAHUB_ZONE_METADATA_SIZE;
  pc.zone_sizes[DATAHUB_ZONE_FD] = DATAHUB_ZONE_FD_SIZE;
  pc.request_fn = on_request;
  pc.request_user = ref;
  int rc = dh_producer_create (&pc, &ref->producer);
  if (rc != 0) {
    report_create_error (self, name, rc);
    datahub_producer_unref (ref);
    g_free (name);
    return NULL;
  }
  GST_INFO_OBJECT (self, "created %s: %u slots of %" G_GUINT64_FORMAT " bytes",
      dh_producer_shm_name (ref->producer), dh_producer_slot_count (ref->producer),
      slot_size);
  g_free (name);
  return ref;
}

/* A pool no longer offered: upstream may still wait in it, so a flush
 * must reach it (and stop deactivates it).  Pools only we hold any more
 * are let go.  Object lock held. */
static void
keep_old_pool (GstDatahubSink *self, GstBufferPool *pool)
{
  for (guint i = self->old_pools->len; i-- > 0;)
    if (GST_OBJECT_REFCOUNT_VALUE (g_ptr_array_index (self->old_pools, i)) == 1)
      g_ptr_array_remove_index_fast (self->old_pools, i);
  if (pool)
    g_ptr_array_add (self->old_pools, pool);
}

/* Makes @block the one written from now on (the pool of the previous one
 * is not offered any more; upstream is asked to reconfigure). */
static void
use_block (GstDatahubSink *self, DatahubProducerRef *block)
{
  GstAllocator *allocator = gst_datahub_slot_allocator_new (block);
  GST_OBJECT_LOCK (self);
  DatahubProducerRef *old = self->producer;
  GstAllocator *old_allocator = self->allocator;
  GstBufferPool *old_pool = self->pool;
  self->producer = block;
  self->allocator = allocator;
  self->pool = NULL;
  gst_caps_replace (&self->pool_caps, NULL);
  keep_old_pool (self, old_pool);
  GST_OBJECT_UNLOCK (self);
  if (old_allocator)
    gst_object_unref (old_allocator);
  if (old)
    g_ptr_array_add (self->chain, old);
}

/* Caps and segment for consumers that join late, in @block. */
static void
write_stream_state_of (GstDatahubSink *self, DatahubProducerRef *block)
{
  GstBaseSink *bs = GST_BASE_SINK (self);
  gchar *state = datahub_wire_state_to_string (self->caps_gen, self->caps, &bs->segment);
  int rc = dh_producer_zone_write (block->producer, DATAHUB_ZONE_STREAM,
      state, strlen (state) + 1);
  if (rc != 0)
    GST_WARNING_OBJECT (self, "stream state not written: %s", dh_error_detail ());
  g_free (state);
}

static void
write_stream_state (GstDatahubSink *self)
{
  write_stream_state_of (self, self->producer);
}

static gboolean
write_metadata (GstDatahubSink *self, DatahubProducerRef *block, const GstStructure *md)
{
  gchar *text = gst_structure_to_string (md);
  int rc = dh_producer_zone_write (block->producer, DATAHUB_ZONE_METADATA,
      text, strlen (text) + 1);
  if (rc != 0)
    GST_ELEMENT_WARNING (self, RESOURCE, WRITE,
        ("Metadata of %zu bytes does not fit the %d-byte zone; not published.",
            strlen (text) + 1, DATAHUB_ZONE_METADATA_SIZE), ("%s", dh_error_detail ()));
  g_free (text);
  return rc == 0;
}

/* Publishes metadata set since the last time; any thread (the ticker
 * publishes what was set while the stream is idle). */
static void
flush_metadata (GstDatahubSink *self)
{
  DatahubProducerRef *block = take_producer (self);
  if (!block)
    return; /* published when the block is made */
  GST_OBJECT_LOCK (self);
  GstStructure *md = self->metadata_dirty && self->metadata
      ? gst_structure_copy (self->metadata) : NULL;
  self->metadata_dirty = FALSE;
  GST_OBJECT_UNLOCK (self);
  if (md) {
    write_metadata (self, block, md);
    gst_structure_free (md);
  }
  datahub_producer_unref (block);
}

/* Upstream liveness decides whether consumers that did not choose may hold
 * the producer back (docs/elements.md "Who waits for whom"). */
static void
update_liveness (GstDatahubSink *self)
{
  /* asked directly: gst_base_sink_query_latency() asks only when the sink
   * syncs, and this one does not */
  gboolean upstream_live = FALSE;
  GstQuery *q = gst_query_new_latency ();
  if (gst_pad_peer_query (GST_BASE_SINK_PAD (self), q))
    gst_query_parse_latency (q, &upstream_live, NULL, NULL);
  gst_query_unref (q);
  if (upstream_live == self->live && self->producer)
    return;
  self->live = upstream_live;
  GST_INFO_OBJECT (self, "upstream is %slive", upstream_live ? "" : "not ");
  if (self->producer)
    dh_producer_set_live (self->producer->producer, upstream_live);
}

/* One record from this thread: an event (text) or a buffer copy.  Waits
 * for a slot; unlock() ends the wait. */
static GstFlowReturn
acquire_slot (GstDatahubSink *self, dh_slot *s)
{
  int rc = dh_producer_acquire_cancellable (self->producer->producer, -1, &self->flushing, s);
  if (rc == -ECANCELED)
    return GST_FLOW_FLUSHING;
  if (rc != 0) {
    GST_ELEMENT_ERROR (self, RESOURCE, WRITE, ("No free slot in the datahub block: %s.",
            dh_error_detail ()), (NULL));
    return GST_FLOW_ERROR;
  }
  return GST_FLOW_OK;
}

static GstFlowReturn
publish (GstDatahubSink *self, dh_slot *s, const dh_record_info *info)
{
  int rc = dh_producer_commit (self->producer->producer, s, info, NULL);
  if (rc == 0)
    return GST_FLOW_OK;
  dh_producer_abort (self->producer->producer, s);
  GST_ELEMENT_ERROR (self, RESOURCE, WRITE, ("Could not publish a record: %s.",
          dh_error_detail ()), (NULL));
  return GST_FLOW_ERROR;
}

static gboolean handover (GstDatahubSink *self, guint64 needed);
static gboolean write_fd_zone (GstDatahubSink *self, DatahubProducerRef *block);

static GstFlowReturn
write_event (GstDatahubSink *self, GstEvent *event, const gchar *text)
{
  gsize len = strlen (text) + 1;
  /* an event larger than a slot (caps with big stream headers) moves the
   * stream to larger slots, as a large buffer does */
  if (len > dh_producer_slot_size (self->producer->producer) && !handover (self, len))
    return GST_FLOW_ERROR;
  dh_record_info info = { .size = len, .kind = DATAHUB_KIND_EVENT,
    .flags = (uint32_t) GST_EVENT_TYPE (event), .caps_gen = self->caps_gen,
    .pts = -1, .dts = -1, .duration = -1 };
  dh_slot s;
  GstFlowReturn ret = acquire_slot (self, &s);
  if (ret != GST_FLOW_OK)
    return ret;
  memcpy (s.data, text, len);
  return publish (self, &s, &info);
}

static GstFlowReturn
flush_pending_events (GstDatahubSink *self)
{
  GstEvent *e;
  GstFlowReturn ret = GST_FLOW_OK;
  while (ret == GST_FLOW_OK && (e = g_queue_pop_head (&self->pending_events))) {
    gchar *text = datahub_wire_event_to_string (e);
    ret = write_event (self, e, text);
    g_free (text);
    gst_event_unref (e);
  }
  return ret;
}

/* Moves the stream to a successor block with slots of at least @needed
 * bytes.  The successor counts every consumer of the channel from its
 * first record, so consumers read the old block to its end, follow, and
 * lose nothing; every block of the chain is kept until stop. */
static gboolean
handover (GstDatahubSink *self, guint64 needed)
{
  DatahubProducerRef *old = self->producer;
  guint64 size = MAX (needed, 2 * dh_producer_slot_size (old->producer));
  DatahubProducerRef *next = datahub_producer_ref_new (NULL);
  g_weak_ref_set (&next->element, self);
  int rc = dh_producer_create_successor (old->producer, size, &next->producer);
  if (rc != 0) {
    report_create_error (self, dh_producer_shm_name (old->producer), rc);
    datahub_producer_unref (next);
    return FALSE;
  }
  const gchar *name = dh_producer_shm_name (next->producer);
  write_stream_state_of (self, next);
  if (self->fd_server && !write_fd_zone (self, next)) {
    datahub_producer_unref (next);
    return FALSE;
  }
  rc = dh_producer_handover (old->producer, name);
  if (rc != 0) {
    report_create_error (self, name, rc);
    datahub_producer_unref (next);
    return FALSE;
  }
  use_block (self, next);
  (void) register_block (self); /* an update: the keep-alive thread sends it */
  GST_OBJECT_LOCK (self);
  self->metadata_dirty = self->metadata != NULL;
  GST_OBJECT_UNLOCK (self);
  flush_metadata (self);
  /* upstream's pool belongs to the old block: ask for a new allocation */
  gst_pad_push_event (GST_BASE_SINK_PAD (self), gst_event_new_reconfigure ());
  GST_INFO_OBJECT (self, "handover to %s (%" G_GUINT64_FORMAT "-byte slots)", name, size);
  gst_element_post_message (GST_ELEMENT (self), gst_message_new_element (GST_OBJECT (self),
          gst_structure_new ("datahub-handover", "to", G_TYPE_STRING, name,
              "slot-size", G_TYPE_UINT64, size, NULL)));
  return TRUE;
}

/* Creates the block once the slot size is known: from the property, from
 * the video caps, or from the first buffer (@buffer_size; 0 when there is
 * none, an EOS first).  A stream whose first buffer is empty gets
 * MIN_SLOT_SIZE-byte slots, and a handover later if buffers grow. */
static gboolean
make_block (GstDatahubSink *self, guint64 size)
{
  update_liveness (self);
  DatahubProducerRef *block = create_block (self, size);
  if (!block)
    return FALSE;
  use_block (self, block);
  if (!register_block (self))
    return FALSE;
  GST_OBJECT_LOCK (self);
  self->metadata_dirty = TRUE;
  GST_OBJECT_UNLOCK (self);
  flush_metadata (self);
  write_stream_state (self);
  return flush_pending_events (self) == GST_FLOW_OK;
}

static gboolean
ensure_block (GstDatahubSink *self, gsize buffer_size, gboolean now)
{
  if (self->producer)
    return TRUE;
  GST_OBJECT_LOCK (self);
  guint64 size = self->slot_size;
  GST_OBJECT_UNLOCK (self);
  /* slot-size is payload: the slot keeps room after it for the metas */
  if (size != 0)
    size += META_SPACE;
  /* events are records too: slots are never smaller than MIN_SLOT_SIZE */
  GST_OBJECT_LOCK (self);
  gboolean memfd = self->offer_memfd;
  GST_OBJECT_UNLOCK (self);
  if (size == 0 && (self->is_dmabuf || memfd))
    size = MIN_SLOT_SIZE + META_SPACE; /* fd records: descriptors and metas (a
                                          system-memory buffer hands over) */
  if (size == 0 && self->is_video)
    size = MAX (self->vinfo.size + META_SPACE, MIN_SLOT_SIZE);
  if (size == 0 && (buffer_size > 0 || now))
    size = MAX (2 * buffer_size, MIN_SLOT_SIZE); /* room for growth of non-video streams */
  if (size == 0)
    return TRUE; /* not yet */
  g_mutex_lock (&self->block_lock);
  gboolean ok = self->producer || make_block (self, size);
  g_mutex_unlock (&self->block_lock);
  return ok;
}

/* ---- caps -------------------------------------------------------------- */

/* Memory the block can carry: system memory (in slots) and DMA-BUF (as
 * fd records).  Caps with other features (GL, VA surfaces, CUDA) are
 * refused, so negotiation picks one of those instead of handles that
 * mean nothing in another process. */
static gboolean
features_carriable (const GstCapsFeatures *f)
{
  return !f || gst_caps_features_is_any (f)
      || gst_caps_features_is_equal (f, GST_CAPS_FEATURES_MEMORY_SYSTEM_MEMORY)
      || (gst_caps_features_get_size (f) == 1
          && gst_caps_features_contains (f, GST_CAPS_FEATURE_MEMORY_DMABUF));
}

static gboolean
caps_carriable (const GstCaps *caps)
{
  for (guint i = 0; i < gst_caps_get_size (caps); i++)
    if (!features_carriable (gst_caps_get_features (caps, i)))
      return FALSE;
  return TRUE;
}

static gboolean
caps_are_dmabuf (const GstCaps *caps)
{
  GstCapsFeatures *f = gst_caps_get_size (caps) > 0 ? gst_caps_get_features (caps, 0) : NULL;
  return f && gst_caps_features_contains (f, GST_CAPS_FEATURE_MEMORY_DMABUF);
}

/* What we accept: the filter without structures of other memory, and for
 * raw video a preference for common formats first (a source free to choose
 * fixates to the first: I420, not the 16-bit ABGR64 videotestsrc lists
 * first). */
static GstCaps *
gst_datahub_sink_get_caps (GstBaseSink *bs, GstCaps *filter)
{
  GstDatahubSink *self = GST_DATAHUB_SINK (bs);
  if (!filter || gst_caps_is_any (filter))
    return gst_caps_new_any ();
  GstCaps *usable = gst_caps_new_empty ();
  for (guint i = 0; i < gst_caps_get_size (filter); i++) {
    GstCapsFeatures *f = gst_caps_get_features (filter, i);
    if (!features_carriable (f)) {
      /* negotiation fails with a generic message if nothing else is
       * offered: say why, once */
      if (gst_caps_get_size (filter) == 1 && !g_atomic_int_exchange (&self->refused_said, 1)) {
        gchar *what = gst_caps_features_to_string (f);
        GST_ELEMENT_WARNING (self, CORE, NEGOTIATION, ("datahubsink carries system memory and "
                "memory:DMABuf only, not %s.", what), ("upstream offered %" GST_PTR_FORMAT,
                filter));
        g_free (what);
      }
      continue;
    }
    gst_caps_append_structure_full (usable, gst_structure_copy (gst_caps_get_structure (filter,
                i)), f ? gst_caps_features_copy (f) : NULL);
  }
  GstCaps *preferred = gst_caps_from_string ("video/x-raw, format=(string){ I420, NV12, "
      "RGBA, BGRA, RGBx, BGRx, RGB, BGR, YUY2, UYVY, GRAY8 }");
  GstCaps *result = gst_caps_intersect_full (preferred, usable, GST_CAPS_INTERSECT_FIRST);
  gst_caps_unref (preferred);
  return gst_caps_merge (result, usable);
}

static gboolean
gst_datahub_sink_set_caps (GstBaseSink *bs, GstCaps *caps)
{
  GstDatahubSink *self = GST_DATAHUB_SINK (bs);
  if (!caps_carriable (caps)) {
    /* refused at ACCEPT_CAPS already; upstream gets not-negotiated */
    GST_WARNING_OBJECT (self, "caps with memory other than system memory or DMA-BUF: %"
        GST_PTR_FORMAT, caps);
    return FALSE;
  }
  gst_caps_replace (&self->caps, caps);
  self->is_video = datahub_raw_video_info (&self->vinfo, caps);
  self->is_dmabuf = caps_are_dmabuf (caps);
  self->caps_gen++;
  gchar *schema = datahub_discovery_schema (caps);
  gboolean schema_changed = g_strcmp0 (schema, self->schema) != 0;
  g_free (self->schema);
  self->schema = schema;
  if (!ensure_block (self, 0, FALSE))
    return FALSE;
  if (!self->producer)
    return TRUE; /* the caps go out with the pending events */
  update_liveness (self);
  if (self->is_video && !self->is_dmabuf
      && self->vinfo.size > dh_producer_slot_size (self->producer->producer)
      && !handover (self, self->vinfo.size + META_SPACE))
    return FALSE;
  if (schema_changed)
    register_block (self);
  /* upstream that allocated before it had caps got the allocator alone:
   * with video caps now, ask it again (a pool, video meta) */
  GST_OBJECT_LOCK (self);
  gboolean ask_again = self->offered_without_caps && self->is_video;
  self->offered_without_caps = FALSE;
  GST_OBJECT_UNLOCK (self);
  if (ask_again)
    gst_pad_push_event (GST_BASE_SINK_PAD (self), gst_event_new_reconfigure ());
  /* the state first: a consumer that sees the new caps_gen on a record
   * finds these caps in it */
  write_stream_state (self);
  return TRUE;
}

/* ACCEPT_CAPS: system memory only, so negotiation picks it. */
static gboolean
gst_datahub_sink_query (GstBaseSink *bs, GstQuery *query)
{
  if (GST_QUERY_TYPE (query) == GST_QUERY_ACCEPT_CAPS) {
    GstCaps *caps;
    gst_query_parse_accept_caps (query, &caps);
    if (!caps_carriable (caps)) {
      GST_DEBUG_OBJECT (bs, "refusing %" GST_PTR_FORMAT ": only system memory crosses", caps);
      gst_query_set_accept_caps_result (query, FALSE);
      return TRUE;
    }
  }
  return GST_BASE_SINK_CLASS (gst_datahub_sink_parent_class)->query (bs, query);
}

/* ---- events ------------------------------------------------------------ */

/* Writes a serialized event in order with the buffers, or queues it until
 * the block exists. */
static gboolean
forward_event (GstDatahubSink *self, GstEvent *event)
{
  gchar *text = datahub_wire_event_to_string (event);
  if (!text) {
    GST_DEBUG_OBJECT (self, "%s events do not cross", GST_EVENT_TYPE_NAME (event));
    return TRUE;
  }
  GstFlowReturn ret = GST_FLOW_OK;
  /* FLUSH_STOP arrives in the thread that seeks, which must not wait for
   * consumers to make room: it goes out with the next item instead */
  if (!self->producer || GST_EVENT_TYPE (event) == GST_EVENT_FLUSH_STOP)
    g_queue_push_tail (&self->pending_events, gst_event_ref (event));
  else if ((ret = flush_pending_events (self)) == GST_FLOW_OK)
    ret = write_event (self, event, text);
  g_free (text);
  return ret == GST_FLOW_OK || ret == GST_FLOW_FLUSHING;
}

/* Upstream may be waiting in our pool for a slot that consumers hold:
 * a flush ends that wait (unlock() does not: basesink clears its flag at
 * once), and the end of the flush lets the pool work again. */
static void
set_pool_flushing (GstDatahubSink *self, gboolean flushing)
{
  GST_OBJECT_LOCK (self);
  GPtrArray *pools = g_ptr_array_new_with_free_func (gst_object_unref);
  if (self->pool)
    g_ptr_array_add (pools, gst_object_ref (self->pool));
  for (guint i = 0; i < self->old_pools->len; i++)
    g_ptr_array_add (pools, gst_object_ref (g_ptr_array_index (self->old_pools, i)));
  /* direct allocations from our allocator (sources without a pool) stop
   * waiting for a slot too */
  if (self->allocator)
    datahub_slot_allocator_set_flushing (self->allocator, flushing);
  GST_OBJECT_UNLOCK (self);
  for (guint i = 0; i < pools->len; i++) {
    GstBufferPool *pool = g_ptr_array_index (pools, i);
    if (gst_buffer_pool_is_active (pool))
      gst_buffer_pool_set_flushing (pool, flushing);
  }
  g_ptr_array_unref (pools);
}

static void
take_metadata_event (GstDatahubSink *self, GstEvent *event)
{
  GST_OBJECT_LOCK (self);
  if (self->metadata)
    gst_structure_free (self->metadata);
  self->metadata = gst_structure_copy (gst_event_get_structure (event));
  self->metadata_dirty = TRUE;
  GST_OBJECT_UNLOCK (self);
  g_object_notify (G_OBJECT (self), "metadata");
  flush_metadata (self);
}

static gboolean
gst_datahub_sink_event (GstBaseSink *bs, GstEvent *event)
{
  GstDatahubSink *self = GST_DATAHUB_SINK (bs);
  GstEventType type = GST_EVENT_TYPE (event);
  if (type == GST_EVENT_CUSTOM_DOWNSTREAM && gst_event_has_name (event, DATAHUB_METADATA_EVENT))
    take_metadata_event (self, event);
  if (type == GST_EVENT_FLUSH_START || type == GST_EVENT_FLUSH_STOP)
    set_pool_flushing (self, type == GST_EVENT_FLUSH_START);
  /* EOS: the record first, because the parent posts the EOS message and
   * the application may stop us as soon as it sees it.  An EOS before any
   * buffer still reaches consumers: the block is made now. */
  if (type == GST_EVENT_EOS) {
    if (!ensure_block (self, 0, TRUE) || !forward_event (self, event)) {
      gst_event_unref (event);
      return FALSE;
    }
    return GST_BASE_SINK_CLASS (gst_datahub_sink_parent_class)->event (bs, event);
  }
  /* The parent first (set_caps for caps, the segment for segments), so the
   * stream state written with the record is the new one. */
  GstEvent *keep = gst_event_ref (event);
  gboolean ok = GST_BASE_SINK_CLASS (gst_datahub_sink_parent_class)->event (bs, event);
  if (ok) {
    if (type == GST_EVENT_SEGMENT && self->producer)
      write_stream_state (self);
    ok = forward_event (self, keep);
  }
  gst_event_unref (keep);
  return ok;
}

/* ---- buffers ------------------------------------------------------------- */

/* Monotonic-clock time at which this buffer is due, for consumers in
 * timestamp-mode=clock; -1 when the pipeline clock is not the system
 * monotonic clock. */
static gint64
monotonic_due_time (GstDatahubSink *self, GstBuffer *buf)
{
  /* a stream in bytes (fakesrc, filesrc) has no running time */
  if (!GST_BUFFER_PTS_IS_VALID (buf) || GST_BASE_SINK (self)->segment.format != GST_FORMAT_TIME)
    return -1;
  GstClock *clock = gst_element_get_clock (GST_ELEMENT (self));
  if (!clock)
    return -1;
  /* the clock's type, looked up once per clock (streaming thread only) */
  if (clock != self->due_clock) {
    gst_object_replace ((GstObject **) &self->due_clock, GST_OBJECT (clock));
    GstClockType type = GST_CLOCK_TYPE_REALTIME;
    if (GST_IS_SYSTEM_CLOCK (clock))
      g_object_get (clock, "clock-type", &type, NULL);
    self->due_clock_monotonic = type == GST_CLOCK_TYPE_MONOTONIC;
  }
  gst_object_unref (clock);
  if (!self->due_clock_monotonic)
    return -1;
  GstClockTime rt = gst_segment_to_running_time (&GST_BASE_SINK (self)->segment,
      GST_FORMAT_TIME, GST_BUFFER_PTS (buf));
  if (!GST_CLOCK_TIME_IS_VALID (rt))
    return -1;
  return (gint64) (rt + GST_ELEMENT_CAST (self)->base_time);
}

/* Is @buf's frame of the caps' format and size (its video meta, if any,
 * says so)?  Then it travels as it is laid out, its layout in the record's
 * metas; else (a stale pool's buffer after a caps change) it is converted
 * to the caps' default layout while copying. */
static gboolean
frame_of_caps (GstDatahubSink *self, GstBuffer *buf)
{
  if (!self->is_video)
    return TRUE;
  GstVideoMeta *meta = gst_buffer_get_video_meta (buf);
  if (!meta)
    return gst_buffer_get_size (buf) >= self->vinfo.size;
  const GstVideoInfo *vi = &self->vinfo;
  return meta->format == GST_VIDEO_INFO_FORMAT (vi)
      && meta->width == (guint) GST_VIDEO_INFO_WIDTH (vi)
      && meta->height == (guint) GST_VIDEO_INFO_HEIGHT (vi)
      && meta->n_planes == GST_VIDEO_INFO_N_PLANES (vi);
}

/* Copies @buf's frame into @dst in the caps' default layout; returns the
 * size, 0 when the frame cannot be mapped (nothing to send). */
static gsize
convert_into_slot (GstDatahubSink *self, GstBuffer *buf, guint8 *dst)
{
  GstVideoFrame in, out;
  GstVideoInfo info = self->vinfo;
  if (!gst_video_frame_map (&in, &info, buf, GST_MAP_READ))
    return 0;
  GstBuffer *wrap = gst_buffer_new_wrapped_full (0, dst, info.size, 0, info.size, NULL, NULL);
  gboolean ok = gst_video_frame_map (&out, &info, wrap, GST_MAP_WRITE);
  if (ok) {
    ok = gst_video_frame_copy (&out, &in);
    gst_video_frame_unmap (&out);
  }
  gst_video_frame_unmap (&in);
  gst_buffer_unref (wrap);
  return ok ? info.size : 0;
}

/* Encodes @buf's metas into self->metas (its layout only when it travels
 * as laid out); returns the trailer length. */
static gsize
encode_metas (GstDatahubSink *self, GstBuffer *buf, gboolean with_layout)
{
  guint dropped = 0;
  gsize len = datahub_metas_encode (buf, self->metas, with_layout, &dropped);
  if (dropped > 0) {
    GST_OBJECT_LOCK (self);
    gboolean first = self->metas_dropped == 0;
    self->metas_dropped += dropped;
    GST_OBJECT_UNLOCK (self);
    if (first)
      GST_INFO_OBJECT (self, "buffers carry metas datahub does not carry: dropped "
          "(stats field metas-dropped counts them)");
  }
  return len;
}

/* wait-for-consumer: hold the first buffers until someone is admitted;
 * unlock() (flushing, state change) ends the wait. */
static GstFlowReturn
wait_for_consumer (GstDatahubSink *self)
{
  GST_OBJECT_LOCK (self);
  gboolean wait = self->wait_for_consumer;
  GST_OBJECT_UNLOCK (self);
  while (wait && dh_producer_consumer_count (self->producer->producer) == 0) {
    if (g_atomic_int_get (&self->flushing))
      return GST_FLOW_FLUSHING;
    g_usleep (5000);
  }
  return GST_FLOW_OK;
}

/* ---- fd records ---------------------------------------------------------- */

/* A published fd record whose buffer we keep until it is retired. */
typedef struct {
  DatahubProducerRef *block;   /* the record's block */
  dh_slot slot;
  GstBuffer *buffer;
  guint n_ids;
  guint64 ids[DATAHUB_FD_MAX_MEMORIES];
} FdInFlight;

static void
fd_in_flight_free (GstDatahubSink *self, FdInFlight *f)
{
  for (guint i = 0; i < f->n_ids; i++)
    datahub_fd_server_release (self->fd_server, f->ids[i]);
  gst_buffer_unref (f->buffer);
  datahub_producer_unref (f->block);
  g_free (f);
}

/* Gives back the buffers of records no consumer needs any more: every
 * consumer has read and released them, or (older than the newest
 * FD_KEPT_FOR_LAGGARDS, or any while the stream is idle) nobody holds
 * them and the waited-for consumers have read them.  After each fd record, and from the ticker while
 * upstream waits for its buffers. */
static void
retire_fd_records (GstDatahubSink *self, gboolean idle)
{
  g_mutex_lock (&self->fd_lock);
  guint n = g_queue_get_length (&self->fd_in_flight), i = 0;
  /* a stream that stopped (upstream waits for one of these buffers, or
   * paused) keeps nothing for laggards */
  guint kept = idle ? 0 : FD_KEPT_FOR_LAGGARDS;
  for (GList *l = self->fd_in_flight.head; l; i++) {
    GList *next = l->next;
    FdInFlight *f = l->data;
    int rc = dh_producer_retire (f->block->producer, &f->slot, n - i > kept);
    if (rc == 0 || rc == DH_ESLOT) { /* retired now, or its slot was reused */
      g_queue_delete_link (&self->fd_in_flight, l);
      fd_in_flight_free (self, f);
    }
    l = next;
  }
  g_mutex_unlock (&self->fd_lock);
}

static void
drop_fd_records (GstDatahubSink *self)
{
  g_mutex_lock (&self->fd_lock);
  FdInFlight *f;
  while ((f = g_queue_pop_head (&self->fd_in_flight)))
    fd_in_flight_free (self, f);
  g_mutex_unlock (&self->fd_lock);
  g_clear_pointer (&self->fd_server, datahub_fd_server_free);
}

/* Where @block's consumers find the fd socket, and the token that proves
 * they can read the block (written before the first fd record, and into
 * every successor). */
static gboolean
write_fd_zone (GstDatahubSink *self, DatahubProducerRef *block)
{
  DatahubFdZone zone;
  datahub_fd_server_zone (self->fd_server, &zone);
  int rc = dh_producer_zone_write (block->producer, DATAHUB_ZONE_FD, &zone, sizeof zone);
  sodium_memzero (&zone, sizeof zone);
  if (rc != 0)
    GST_ELEMENT_ERROR (self, RESOURCE, WRITE, ("Could not share file descriptors."),
        ("%s", dh_error_detail ()));
  return rc == 0;
}

/* Whether every memory of @buf is fd-backed (then it travels as an fd
 * record), and of which kind. */
static gboolean
fd_backed (GstBuffer *buf, DatahubFdKind *kind)
{
  guint n = gst_buffer_n_memory (buf);
  if (n == 0 || n > DATAHUB_FD_MAX_MEMORIES)
    return FALSE;
  gboolean dmabuf = TRUE;
  for (guint i = 0; i < n; i++) {
    GstMemory *mem = gst_buffer_peek_memory (buf, i);
    if (!gst_is_fd_memory (mem))
      return FALSE;
    dmabuf = dmabuf && gst_is_dmabuf_memory (mem);
  }
  *kind = dmabuf ? DATAHUB_FD_KIND_DMABUF : DATAHUB_FD_KIND_FD;
  return TRUE;
}

static void
count_record (GstDatahubSink *self, gboolean fd, DatahubFdKind kind)
{
  datahub_count (!fd ? &self->records_slot
      : kind == DATAHUB_FD_KIND_DMABUF ? &self->records_dmabuf : &self->records_fd);
}

/* publish_fd_record: the fds cannot be shared, copy the bytes instead */
#define FLOW_COPY_INSTEAD GST_FLOW_CUSTOM_SUCCESS

/* Publishes @buf as a record naming its fds (and its metas), and keeps
 * the buffer until the record is retired. */
static GstFlowReturn
publish_fd_record (GstDatahubSink *self, GstBuffer *buf, dh_record_info *info,
    DatahubFdKind kind, gsize metas)
{
  if (!self->fd_server) {
    GError *err = NULL;
    guint8 secret[DH_SECRET_SIZE];
    GST_OBJECT_LOCK (self);
    gboolean has_secret = datahub_common_secret (&self->common, secret);
    GST_OBJECT_UNLOCK (self);
    self->fd_server = datahub_fd_server_new (has_secret ? secret : NULL, &err);
    sodium_memzero (secret, sizeof secret);
    if (!self->fd_server) {
      GST_ELEMENT_ERROR (self, RESOURCE, OPEN_WRITE, ("Could not share file descriptors."),
          ("%s", err->message));
      g_error_free (err);
      return GST_FLOW_ERROR;
    }
    if (!write_fd_zone (self, self->producer))
      return GST_FLOW_ERROR;
  }
  guint n = gst_buffer_n_memory (buf);
  gsize payload = DATAHUB_FD_RECORD_SIZE (n);
  guint64 needed = metas ? DATAHUB_METAS_OFFSET (payload) + metas : payload;
  if (needed > dh_producer_slot_size (self->producer->producer) && !handover (self, needed))
    return GST_FLOW_ERROR;
  dh_slot s;
  GstFlowReturn ret = acquire_slot (self, &s);
  if (ret != GST_FLOW_OK)
    return ret;
  FdInFlight *f = g_new0 (FdInFlight, 1);
  DatahubFdZone zone;
  datahub_fd_server_zone (self->fd_server, &zone);
  DatahubFdRecord rec = { .magic = DATAHUB_FD_RECORD_MAGIC, .n_memories = n, .kind = kind,
    .server = zone.server, .total_size = gst_buffer_get_size (buf) };
  sodium_memzero (&zone, sizeof zone);
  memcpy (s.data, &rec, sizeof rec);
  DatahubFdEntry *entries = (DatahubFdEntry *) ((guint8 *) s.data + sizeof rec);
  for (guint i = 0; i < n; i++) {
    GstMemory *mem = gst_buffer_peek_memory (buf, i);
    DatahubFdEntry e = { .maxsize = mem->maxsize, .offset = mem->offset, .size = mem->size };
    if (!datahub_fd_server_add (self->fd_server, gst_fd_memory_get_fd (mem), &e)) {
      /* neither a file nor a DMA-BUF (or gone): its bytes go in a slot */
      GST_INFO_OBJECT (self, "memory %u: fd %d cannot be shared (%s): copied", i,
          gst_fd_memory_get_fd (mem), g_strerror (errno));
      dh_producer_abort (self->producer->producer, &s);
      f->buffer = gst_buffer_ref (buf);
      f->block = datahub_producer_ref (self->producer);
      fd_in_flight_free (self, f);
      return FLOW_COPY_INSTEAD;
    }
    f->ids[f->n_ids++] = e.id;
    memcpy (&entries[i], &e, sizeof e);
  }
  if (metas)
    memcpy ((guint8 *) s.data + DATAHUB_METAS_OFFSET (payload), self->metas->data, metas);
  info->size = payload;
  info->kind = DATAHUB_KIND_FD_BUFFER;
  f->block = datahub_producer_ref (self->producer);
  f->slot = s;
  f->buffer = gst_buffer_ref (buf);
  ret = publish (self, &s, info);
  if (ret != GST_FLOW_OK) {
    fd_in_flight_free (self, f);
    return ret;
  }
  g_mutex_lock (&self->fd_lock);
  g_queue_push_tail (&self->fd_in_flight, f);
  g_mutex_unlock (&self->fd_lock);
  count_record (self, TRUE, kind);
  g_atomic_int_inc (&self->fd_published);
  retire_fd_records (self, FALSE);
  return GST_FLOW_OK;
}

static GstFlowReturn
gst_datahub_sink_render (GstBaseSink *bs, GstBuffer *buf)
{
  GstDatahubSink *self = GST_DATAHUB_SINK (bs);
  /* a buffer of fd memory travels as its fds, as laid out */
  DatahubFdKind fd_kind = 0;
  gboolean fd = fd_backed (buf, &fd_kind);
  gboolean as_laid_out = fd || frame_of_caps (self, buf);
  gsize size = as_laid_out ? gst_buffer_get_size (buf) : self->vinfo.size;
  if (!ensure_block (self, size, TRUE))
    return GST_FLOW_ERROR;
  GstFlowReturn ret = wait_for_consumer (self);
  if (ret != GST_FLOW_OK || (ret = flush_pending_events (self)) != GST_FLOW_OK)
    return ret;
  flush_metadata (self);
  gsize metas = encode_metas (self, buf, as_laid_out);
  /* the record: payload, then (8-byte aligned) its metas */
  guint64 needed = metas ? DATAHUB_METAS_OFFSET (size) + metas : size;
  dh_record_info info = {
    .size = size, .kind = DATAHUB_KIND_BUFFER,
    /* buffer flags only: the mini object's own bits mean nothing elsewhere */
    .flags = GST_BUFFER_FLAGS (buf) & ~((guint) GST_MINI_OBJECT_FLAG_LAST - 1),
    .caps_gen = self->caps_gen,
    .pts = GST_BUFFER_PTS_IS_VALID (buf) ? (int64_t) GST_BUFFER_PTS (buf) : -1,
    .dts = GST_BUFFER_DTS_IS_VALID (buf) ? (int64_t) GST_BUFFER_DTS (buf) : -1,
    .duration = GST_BUFFER_DURATION_IS_VALID (buf) ? (int64_t) GST_BUFFER_DURATION (buf) : -1,
    .offset = GST_BUFFER_OFFSET (buf), .offset_end = GST_BUFFER_OFFSET_END (buf),
    .user = { (uint64_t) monotonic_due_time (self, buf), metas },
  };
  if (fd && (ret = publish_fd_record (self, buf, &info, fd_kind, metas)) != FLOW_COPY_INSTEAD)
    return ret;
  info.size = size;
  info.kind = DATAHUB_KIND_BUFFER;
  count_record (self, FALSE, 0);
  if (as_laid_out && datahub_slot_buffer_publishable (buf, self->producer, needed)) {
    /* zero copy: upstream rendered into this slot; the metas go after it */
    int rc = datahub_slot_buffer_publish (buf, &info, self->metas->data, metas);
    if (rc != 0) {
      GST_ELEMENT_ERROR (self, RESOURCE, WRITE, ("Could not publish a buffer: %s.",
              dh_error_detail ()), (NULL));
      return GST_FLOW_ERROR;
    }
    return GST_FLOW_OK;
  }
  if (needed > dh_producer_slot_size (self->producer->producer)
      && !handover (self, self->is_video ? needed + META_SPACE : needed))
    return GST_FLOW_ERROR;
  dh_slot s;
  if ((ret = acquire_slot (self, &s)) != GST_FLOW_OK)
    return ret;
  info.size = as_laid_out ? 0 : convert_into_slot (self, buf, s.data);
  if (info.size == 0) /* as laid out, or a frame that does not map: its bytes */
    info.size = gst_buffer_extract (buf, 0, s.data, size);
  if (metas)
    memcpy ((guint8 *) s.data + DATAHUB_METAS_OFFSET (info.size), self->metas->data, metas);
  GST_OBJECT_LOCK (self);
  self->bytes_copied += info.size;
  GST_OBJECT_UNLOCK (self);
  return publish (self, &s, &info);
}

/* ---- allocation ---------------------------------------------------------- */

/* Buffers upstream may have out at once: every slot but one (kept for
 * our own records), and one fewer if our last sample pins one. */
static guint
pool_max (GstDatahubSink *self, GstAllocator *allocator)
{
  guint max = datahub_slot_allocator_limit (allocator);
  if (gst_base_sink_is_last_sample_enabled (GST_BASE_SINK (self)) && max > 0)
    max--;
  return max;
}

/* offer-memfd: memfd memory, and a pool of it for caps with a size (its
 * buffers come back, so consumers see the same files again) */
static gboolean
propose_memfd (GstDatahubSink *self, GstQuery *query, GstCaps *caps)
{
  GstAllocator *allocator = datahub_memfd_allocator_get ();
  gst_query_add_allocation_param (query, allocator, NULL);
  GstVideoInfo vinfo;
  gboolean video = caps && datahub_raw_video_info (&vinfo, caps);
  GST_OBJECT_LOCK (self);
  guint64 size = video ? vinfo.size : self->slot_size;
  GST_OBJECT_UNLOCK (self);
  if (caps && size > 0) {
    GstBufferPool *pool = video ? gst_video_buffer_pool_new () : gst_buffer_pool_new ();
    GstStructure *config = gst_buffer_pool_get_config (pool);
    gst_buffer_pool_config_set_params (config, caps, (guint) size, 0, 0);
    gst_buffer_pool_config_set_allocator (config, allocator, NULL);
    if (video)
      gst_buffer_pool_config_add_option (config, GST_BUFFER_POOL_OPTION_VIDEO_META);
    if (gst_buffer_pool_set_config (pool, config))
      gst_query_add_allocation_pool (query, pool, (guint) size, 0, 0);
    gst_object_unref (pool);
  }
  if (video)
    gst_query_add_allocation_meta (query, GST_VIDEO_META_API_TYPE, NULL);
  gst_object_unref (allocator);
  return TRUE;
}

static gboolean
gst_datahub_sink_propose_allocation (GstBaseSink *bs, GstQuery *query)
{
  GstDatahubSink *self = GST_DATAHUB_SINK (bs);
  GstCaps *caps;
  gboolean need_pool;
  gst_query_parse_allocation (query, &caps, &need_pool);
  /* no caps (or not fixed ones): a source that never negotiates (filesrc,
   * ANY caps) still allocates from downstream — it gets the allocator
   * when slot-size says how big, not a pool */
  if (caps && !caps_carriable (caps))
    return FALSE;
  /* DMA-BUF upstream allocates its own buffers (they travel as fds): ask
   * for enough of them for what we keep, and say we carry its layout */
  if (caps && caps_are_dmabuf (caps)) {
    GstVideoInfo dinfo;
    gboolean dvideo = datahub_raw_video_info (&dinfo, caps);
    gst_query_add_allocation_pool (query, NULL, dvideo ? (guint) dinfo.size : 0,
        FD_KEPT_FOR_LAGGARDS + 3, 0); /* + rendering, + held, + queued */
    if (dvideo)
      gst_query_add_allocation_meta (query, GST_VIDEO_META_API_TYPE, NULL);
    return TRUE;
  }
  GST_OBJECT_LOCK (self);
  gboolean memfd = self->offer_memfd;
  GST_OBJECT_UNLOCK (self);
  if (memfd)
    return propose_memfd (self, query, caps);
  if (caps && !gst_caps_is_fixed (caps))
    caps = NULL;
  GST_OBJECT_LOCK (self);
  self->offered_without_caps = caps == NULL;
  GST_OBJECT_UNLOCK (self);
  /* Buffer size: one video frame, or (other media) the slot size when the
   * application set it — upstream then writes into slots and may shrink
   * its buffers.  Otherwise no allocator: upstream allocates, we copy. */
  GstVideoInfo vinfo;
  gboolean video = caps && datahub_raw_video_info (&vinfo, caps);
  GST_OBJECT_LOCK (self);
  guint64 size = video ? vinfo.size : self->slot_size;
  GST_OBJECT_UNLOCK (self);
  GST_DEBUG_OBJECT (self, "allocation query: caps %" GST_PTR_FORMAT ", buffer size %"
      G_GUINT64_FORMAT, caps, size);
  if (size == 0)
    return TRUE;
  /* an application may ask before its first caps event: the query's caps
   * give the slot size as well */
  g_mutex_lock (&self->block_lock);
  gboolean ok = self->producer
      || make_block (self, MAX (size + META_SPACE, MIN_SLOT_SIZE));
  g_mutex_unlock (&self->block_lock);
  if (!ok)
    return FALSE;
  /* this may run in any thread while a handover swaps the block: what we
   * offer is taken under the lock */
  GST_OBJECT_LOCK (self);
  DatahubProducerRef *block = self->producer ? datahub_producer_ref (self->producer) : NULL;
  GstAllocator *allocator = self->allocator ? gst_object_ref (self->allocator) : NULL;
  GST_OBJECT_UNLOCK (self);
  if (block && allocator && size <= dh_producer_slot_size (block->producer)
      && datahub_slot_allocator_limit (allocator) > 0) {
    /* the allocator: any upstream that allocates from downstream */
    gst_query_add_allocation_param (query, allocator, NULL);
    guint max = caps ? pool_max (self, allocator) : 0;
    if (max > 0) {
      /* a pool per caps and limit: never the pool of other caps,
       * reconfigured, nor one that lets out more than we now advertise
       * (enable-last-sample changed how many the sink keeps) */
      GST_OBJECT_LOCK (self);
      if (self->allocator == allocator && (!self->pool || !self->pool_caps
              || !gst_caps_is_equal (caps, self->pool_caps) || self->pool_max != max)) {
        keep_old_pool (self, self->pool);
        self->pool = gst_datahub_slot_pool_new (allocator, caps, (guint) size, max);
        self->pool_max = max;
        gst_caps_replace (&self->pool_caps, caps);
      }
      if (self->pool && self->allocator == allocator)
        gst_query_add_allocation_pool (query, self->pool, (guint) size, 0, max);
      GST_OBJECT_UNLOCK (self);
    }
    if (video)
      gst_query_add_allocation_meta (query, GST_VIDEO_META_API_TYPE, NULL);
  }
  if (allocator)
    gst_object_unref (allocator);
  datahub_producer_unref (block);
  return TRUE;
}

/* ---- unlock, start, stop --------------------------------------------------- */

static gboolean
gst_datahub_sink_unlock (GstBaseSink *bs)
{
  GstDatahubSink *self = GST_DATAHUB_SINK (bs);
  g_atomic_int_set (&self->flushing, 1);
  return TRUE;
}

static gboolean
gst_datahub_sink_unlock_stop (GstBaseSink *bs)
{
  GstDatahubSink *self = GST_DATAHUB_SINK (bs);
  g_atomic_int_set (&self->flushing, 0);
  return TRUE;
}

static void
post_consumer_changes (GstDatahubSink *self, const dh_metrics *m)
{
  guint live = m->consumers_live;
  if (live == self->last_consumers && m->consumers_reaped == self->last_reaped)
    return;
  const gchar *what = m->consumers_reaped > self->last_reaped ? "dead"
      : live > self->last_consumers ? "attached" : "detached";
  gst_element_post_message (GST_ELEMENT (self), gst_message_new_element (GST_OBJECT (self),
          gst_structure_new ("datahub-consumer", "event", G_TYPE_STRING, what,
              "consumers", G_TYPE_UINT, live, NULL)));
  self->last_consumers = live;
  self->last_reaped = m->consumers_reaped;
}

/* The datahub-stats structure of @m with this sink's own counters. */
static GstStructure *
stats_of (GstDatahubSink *self, const dh_metrics *m)
{
  GST_OBJECT_LOCK (self);
  guint64 copied = self->bytes_copied, dropped = self->metas_dropped;
  guint64 slot = datahub_counted (&self->records_slot);
  guint64 dmabuf = datahub_counted (&self->records_dmabuf);
  guint64 fd = datahub_counted (&self->records_fd);
  GST_OBJECT_UNLOCK (self);
  GstStructure *s = datahub_stats_from_metrics (m, copied, NULL, NULL);
  gst_structure_set (s, "metas-dropped", G_TYPE_UINT64, dropped,
      "records-slot", G_TYPE_UINT64, slot, "records-dmabuf", G_TYPE_UINT64, dmabuf,
      "records-fd", G_TYPE_UINT64, fd, NULL);
  return s;
}

/* The ticker thread: consumer changes and periodic stats, whether the
 * streaming thread runs, waits for space, or is idle. */
static void
tick (gpointer user)
{
  GstDatahubSink *self = user;
  flush_metadata (self); /* set as a property while nothing flows */
  /* upstream may wait for a buffer we keep: retire what nobody needs,
   * and when no fd record came since the last tick, the kept ones too */
  gint published = g_atomic_int_get (&self->fd_published);
  retire_fd_records (self, published == self->fd_published_at_tick);
  self->fd_published_at_tick = published;
  DatahubProducerRef *p = take_producer (self);
  if (!p)
    return;
  dh_metrics m;
  dh_producer_metrics (p->producer, &m);
  datahub_producer_unref (p);
  post_consumer_changes (self, &m);
  GST_OBJECT_LOCK (self);
  guint interval = self->common.stats_interval;
  GST_OBJECT_UNLOCK (self);
  if (interval && datahub_stats_timer_due (&self->stats_timer, interval))
    gst_element_post_message (GST_ELEMENT (self), gst_message_new_element (GST_OBJECT (self),
            stats_of (self, &m)));
}

/* Property values GObject cannot check on its own, named in the error. */
static gboolean
check_settings (GstDatahubSink *self)
{
  GST_OBJECT_LOCK (self);
  gchar *why = NULL;
  if (self->policy == DH_POLICY_RING && self->slots == 0)
    why = g_strdup ("slots=0: the pool needs 1..65536 slots");
  else if (self->max_consumers == 0)
    why = g_strdup_printf ("max-consumers=0: allow 1..%d", DH_MAX_CONSUMERS);
  else if (self->integrity == DH_INTEGRITY_HMAC && !(self->common.secret && *self->common.secret))
    why = g_strdup ("integrity=hmac needs a secret");
  else if (self->slot_size > G_GUINT64_CONSTANT (1) << 36)
    why = g_strdup_printf ("slot-size=%" G_GUINT64_FORMAT " exceeds 64 GiB", self->slot_size);
  else if (self->perms & 0022)
    why = g_strdup_printf ("perms=0%o lets others write the block; consumers need read "
        "access only (e.g. perms=0%o)", self->perms, self->perms & ~0022u);
  GST_OBJECT_UNLOCK (self);
  if (why)
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS, ("Invalid setting: %s.", why), (NULL));
  g_free (why);
  return why == NULL;
}

static gboolean gst_datahub_sink_stop (GstBaseSink *bs);

/* READY -> PAUSED, before the base class starts us: a failure here is one
 * error message (basesink adds a generic second one to a failed start). */
static gboolean
prepare (GstDatahubSink *self)
{
  GstBaseSink *bs = GST_BASE_SINK (self);
  if (!check_settings (self))
    return FALSE;
  if (!datahub_discovery_connect (GST_ELEMENT (self), &self->common, &self->broker))
    return FALSE;
  GST_OBJECT_LOCK (self);
  self->broker_channel = g_strdup (self->common.channel);
  guint64 size = self->slot_size;
  GST_OBJECT_UNLOCK (self);
  self->registered = FALSE;
  self->caps_gen = 0;
  self->live = FALSE;
  self->bytes_copied = 0;
  self->metas_dropped = 0;
  g_atomic_int_set (&self->refused_said, 0);
  datahub_count_reset (&self->records_slot);
  datahub_count_reset (&self->records_dmabuf);
  datahub_count_reset (&self->records_fd);
  self->last_consumers = 0;
  self->last_reaped = 0;
  g_atomic_int_set (&self->flushing, 0);
  datahub_stats_timer_init (&self->stats_timer);
  /* a known slot size creates the block now, so consumers are admitted
   * (and wait-for-consumer works) before the first buffer */
  if (size != 0) {
    DatahubProducerRef *block = create_block (self, size + META_SPACE);
    if (block)
      use_block (self, block);
    if (!block || !register_block (self)) {
      /* basesink does not call stop() after a failed start(): undo here */
      gst_datahub_sink_stop (bs);
      return FALSE;
    }
  }
  datahub_ticker_start (&self->ticker, "datahubsink-tick", TICK_MS, tick, self);
  return TRUE;
}

static GstStateChangeReturn
gst_datahub_sink_change_state (GstElement *element, GstStateChange transition)
{
  GstDatahubSink *self = GST_DATAHUB_SINK (element);
  if (transition == GST_STATE_CHANGE_READY_TO_PAUSED && !prepare (self))
    return GST_STATE_CHANGE_FAILURE;
  GstStateChangeReturn ret = GST_ELEMENT_CLASS (gst_datahub_sink_parent_class)->change_state (
      element, transition);
  if (transition == GST_STATE_CHANGE_READY_TO_PAUSED && ret == GST_STATE_CHANGE_FAILURE)
    gst_datahub_sink_stop (GST_BASE_SINK (self));
  return ret;
}

/* Closes a block now (consumers drain it and get a clean end, the name is
 * removed) even if memory upstream still references it. */
static void
close_block (DatahubProducerRef *p)
{
  if (!p)
    return;
  dh_producer_close (p->producer);
  datahub_producer_unref (p);
}

static gboolean
gst_datahub_sink_stop (GstBaseSink *bs)
{
  GstDatahubSink *self = GST_DATAHUB_SINK (bs);
  datahub_ticker_stop (&self->ticker);
  g_queue_clear_full (&self->pending_events, (GDestroyNotify) gst_event_unref);
  drop_fd_records (self);
  GST_OBJECT_LOCK (self);
  DatahubProducerRef *p = self->producer;
  GstAllocator *allocator = self->allocator;
  GstBufferPool *pool = self->pool;
  self->producer = NULL;
  self->allocator = NULL;
  self->pool = NULL;
  gst_caps_replace (&self->pool_caps, NULL);
  GPtrArray *old_pools = self->old_pools;
  self->old_pools = g_ptr_array_new_with_free_func (gst_object_unref);
  GST_OBJECT_UNLOCK (self);
  if (pool)
    g_ptr_array_add (old_pools, pool);
  for (guint i = 0; i < old_pools->len; i++)
    gst_buffer_pool_set_active (g_ptr_array_index (old_pools, i), FALSE);
  g_ptr_array_unref (old_pools);
  if (allocator)
    gst_object_unref (allocator);
  close_block (p);
  for (guint i = 0; i < self->chain->len; i++)
    close_block (g_ptr_array_index (self->chain, i));
  g_ptr_array_set_size (self->chain, 0);
  gst_caps_replace (&self->caps, NULL);
  self->is_video = FALSE;
  self->is_dmabuf = FALSE;
  g_clear_pointer (&self->schema, g_free);
  if (self->broker) {
    /* consumers hear "producer-down" now instead of after the expiry */
    if (self->registered)
      dhb_deregister (self->broker, self->broker_channel, 0, BROKER_TIMEOUT_MS / 2);
    dhb_client_free (self->broker);
    self->broker = NULL;
  }
  g_clear_pointer (&self->broker_channel, g_free);
  gst_clear_object (&self->due_clock);
  return TRUE;
}

/* ---- properties ---------------------------------------------------------- */

static GstStructure *
stats_structure (GstDatahubSink *self)
{
  DatahubProducerRef *p = take_producer (self);
  if (!p)
    return gst_structure_new_empty ("datahub-stats");
  dh_metrics m;
  dh_producer_metrics (p->producer, &m);
  datahub_producer_unref (p);
  return stats_of (self, &m);
}

static void
gst_datahub_sink_set_property (GObject *object, guint prop_id, const GValue *value,
    GParamSpec *pspec)
{
  GstDatahubSink *self = GST_DATAHUB_SINK (object);
  GST_OBJECT_LOCK (self);
  if (datahub_common_set_property (&self->common, prop_id, value)) {
    GST_OBJECT_UNLOCK (self);
    return;
  }
  switch (prop_id) {
    case PROP_SLOT_SIZE:
      self->slot_size = g_value_get_uint64 (value);
      break;
    case PROP_SLOTS:
      self->slots = g_value_get_uint (value);
      break;
    case PROP_POLICY:
      self->policy = g_value_get_enum (value);
      break;
    case PROP_ON_FULL:
      self->on_full = g_value_get_enum (value);
      break;
    case PROP_MAX_CONSUMERS:
      self->max_consumers = g_value_get_uint (value);
      break;
    case PROP_INTEGRITY:
      self->integrity = g_value_get_enum (value);
      break;
    case PROP_PERMS:
      self->perms = g_value_get_uint (value);
      break;
    case PROP_WAIT_FOR_CONSUMER:
      self->wait_for_consumer = g_value_get_boolean (value);
      break;
    case PROP_OFFER_MEMFD:
      self->offer_memfd = g_value_get_boolean (value);
      break;
    case PROP_METADATA:{
      const GstStructure *s = gst_value_get_structure (value);
      if (self->metadata)
        gst_structure_free (self->metadata);
      self->metadata = s ? gst_structure_copy (s) : NULL;
      self->metadata_dirty = self->metadata != NULL;
      break;
    }
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_datahub_sink_get_property (GObject *object, guint prop_id, GValue *value,
    GParamSpec *pspec)
{
  GstDatahubSink *self = GST_DATAHUB_SINK (object);
  if (prop_id == DATAHUB_PROP_STATS) {
    g_value_take_boxed (value, stats_structure (self));
    return;
  }
  GST_OBJECT_LOCK (self);
  if (prop_id != DATAHUB_PROP_SHM_NAME
      && datahub_common_get_property (&self->common, prop_id, value)) {
    GST_OBJECT_UNLOCK (self);
    return;
  }
  switch (prop_id) {
    case DATAHUB_PROP_SHM_NAME:  /* the block in use, once there is one */
      if (self->producer)
        g_value_set_string (value, dh_producer_shm_name (self->producer->producer));
      else
        g_value_set_string (value, self->common.shm_name);
      break;
    case PROP_SLOT_SIZE:
      g_value_set_uint64 (value, self->slot_size);
      break;
    case PROP_SLOTS:
      g_value_set_uint (value, self->slots);
      break;
    case PROP_POLICY:
      g_value_set_enum (value, self->policy);
      break;
    case PROP_ON_FULL:
      g_value_set_enum (value, self->on_full);
      break;
    case PROP_MAX_CONSUMERS:
      g_value_set_uint (value, self->max_consumers);
      break;
    case PROP_INTEGRITY:
      g_value_set_enum (value, self->integrity);
      break;
    case PROP_PERMS:
      g_value_set_uint (value, self->perms);
      break;
    case PROP_WAIT_FOR_CONSUMER:
      g_value_set_boolean (value, self->wait_for_consumer);
      break;
    case PROP_OFFER_MEMFD:
      g_value_set_boolean (value, self->offer_memfd);
      break;
    case PROP_METADATA:
      gst_value_set_structure (value, self->metadata);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

/* A kept last sample pins one more slot: upstream is asked for a new
 * allocation, and gets a pool that lets one fewer (or more) out. */
static void
last_sample_changed (GObject *object, GParamSpec *pspec, gpointer user)
{
  (void) pspec;
  (void) user;
  gst_pad_push_event (GST_BASE_SINK_PAD (object), gst_event_new_reconfigure ());
}

static void
gst_datahub_sink_finalize (GObject *object)
{
  GstDatahubSink *self = GST_DATAHUB_SINK (object);
  datahub_ticker_clear (&self->ticker);
  g_mutex_clear (&self->block_lock);
  g_ptr_array_unref (self->chain);
  datahub_common_clear (&self->common);
  if (self->metadata)
    gst_structure_free (self->metadata);
  g_byte_array_unref (self->metas);
  g_mutex_clear (&self->fd_lock);
  g_ptr_array_unref (self->old_pools);
  G_OBJECT_CLASS (gst_datahub_sink_parent_class)->finalize (object);
}

static void
gst_datahub_sink_class_init (GstDatahubSinkClass *klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseSinkClass *bs_class = GST_BASE_SINK_CLASS (klass);
  const GParamFlags rw = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS;
  const GParamFlags rw_ready = rw | GST_PARAM_MUTABLE_READY;

  gobject_class->set_property = gst_datahub_sink_set_property;
  gobject_class->get_property = gst_datahub_sink_get_property;
  gobject_class->finalize = gst_datahub_sink_finalize;

  datahub_install_common_properties (gobject_class);
  g_object_class_install_property (gobject_class, PROP_SLOT_SIZE,
      g_param_spec_uint64 ("slot-size", "Slot size",
          "Bytes per slot; 0 = one video frame of the caps, or twice the first buffer "
          "(at least 4096); larger buffers later move the stream to larger slots "
          "(a handover)", 0, G_MAXUINT64, DEFAULT_SLOT_SIZE, rw_ready));
  g_object_class_install_property (gobject_class, PROP_SLOTS,
      g_param_spec_uint ("slots", "Slots",
          "Slots in the pool, 1..65536 (ring policy; single uses 1, double 2; 0 is refused at "
          "start)", 0, 65536,
          DEFAULT_SLOTS, rw_ready));
  g_object_class_install_property (gobject_class, PROP_POLICY,
      g_param_spec_enum ("policy", "Policy", "How consumers see buffers: every one in order "
          "(ring), or the latest (single, double: the producer never waits for readers)",
          DATAHUB_TYPE_POLICY, DEFAULT_POLICY, rw_ready));
  g_object_class_install_property (gobject_class, PROP_ON_FULL,
      g_param_spec_enum ("on-full", "On full",
          "Ring policy, when every slot is unread or held: wait for the consumers that "
          "may hold the producer back (block: every consumer of a non-live producer, and "
          "those that set leaky=no), or reuse the oldest unheld slot (drop)",
          DATAHUB_TYPE_ON_FULL, DEFAULT_ON_FULL, rw_ready));
  g_object_class_install_property (gobject_class, PROP_MAX_CONSUMERS,
      g_param_spec_uint ("max-consumers", "Max consumers",
          "Most consumers that can attach at once, 1..64 (0 is refused at start)", 0,
          DH_MAX_CONSUMERS,
          DEFAULT_MAX_CONSUMERS, rw_ready));
  g_object_class_install_property (gobject_class, PROP_INTEGRITY,
      g_param_spec_enum ("integrity", "Integrity",
          "Per-buffer integrity check computed here and verified by every src",
          DATAHUB_TYPE_INTEGRITY, DEFAULT_INTEGRITY, rw_ready));
  g_object_class_install_property (gobject_class, PROP_PERMS,
      g_param_spec_uint ("perms", "Permissions",
          "File mode of the shared memory: who may attach (e.g. 0640 = 416 lets the "
          "group read; consumers never need write access)", 0, 0777, DEFAULT_PERMS,
          rw_ready));
  g_object_class_install_property (gobject_class, PROP_WAIT_FOR_CONSUMER,
      g_param_spec_boolean ("wait-for-consumer", "Wait for consumer",
          "Hold buffers until at least one consumer is attached (consumers started "
          "before the producer get every buffer anyway)", FALSE, rw_ready));
  g_object_class_install_property (gobject_class, PROP_OFFER_MEMFD,
      g_param_spec_boolean ("offer-memfd", "Offer memfd memory",
          "Offer upstream memfd-backed memory instead of slots in the ALLOCATION query: "
          "its buffers travel as file descriptors, which consumers map (and may pass on) "
          "without a copy on either side", FALSE, rw_ready));
  g_object_class_install_property (gobject_class, PROP_METADATA,
      g_param_spec_boxed ("metadata", "Metadata",
          "Application metadata published to every src (settable while playing; "
          "also set by a custom downstream event named " DATAHUB_METADATA_EVENT ")",
          GST_TYPE_STRUCTURE, rw | GST_PARAM_MUTABLE_PLAYING));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_set_static_metadata (element_class, "Datahub sink",
      "Sink/Network", "Writes buffers to a datahub shared-memory channel for other processes: "
      "bytes in slots (zero copy from its pool), DMA-BUF and memfd memory as file "
      "descriptors, with caps, timestamps, frame layouts and metas",
      "datahub developers");

  element_class->change_state = GST_DEBUG_FUNCPTR (gst_datahub_sink_change_state);
  bs_class->stop = GST_DEBUG_FUNCPTR (gst_datahub_sink_stop);
  bs_class->get_caps = GST_DEBUG_FUNCPTR (gst_datahub_sink_get_caps);
  bs_class->set_caps = GST_DEBUG_FUNCPTR (gst_datahub_sink_set_caps);
  bs_class->query = GST_DEBUG_FUNCPTR (gst_datahub_sink_query);
  bs_class->event = GST_DEBUG_FUNCPTR (gst_datahub_sink_event);
  bs_class->render = GST_DEBUG_FUNCPTR (gst_datahub_sink_render);
  bs_class->propose_allocation = GST_DEBUG_FUNCPTR (gst_datahub_sink_propose_allocation);
  bs_class->unlock = GST_DEBUG_FUNCPTR (gst_datahub_sink_unlock);
  bs_class->unlock_stop = GST_DEBUG_FUNCPTR (gst_datahub_sink_unlock_stop);

  gst_type_mark_as_plugin_api (DATAHUB_TYPE_POLICY, 0);
  gst_type_mark_as_plugin_api (DATAHUB_TYPE_ON_FULL, 0);
  gst_type_mark_as_plugin_api (DATAHUB_TYPE_INTEGRITY, 0);
  GST_DEBUG_CATEGORY_INIT (datahub_sink_debug, "datahubsink", 0, "datahub sink");
}

static void
gst_datahub_sink_init (GstDatahubSink *self)
{
  datahub_common_init (&self->common);
  self->chain = g_ptr_array_new ();
  self->slots = DEFAULT_SLOTS;
  self->policy = DEFAULT_POLICY;
  self->on_full = DEFAULT_ON_FULL;
  self->max_consumers = DEFAULT_MAX_CONSUMERS;
  self->integrity = DEFAULT_INTEGRITY;
  self->perms = DEFAULT_PERMS;
  self->common.stats_interval = DEFAULT_STATS_INTERVAL;
  g_queue_init (&self->pending_events);
  self->metas = g_byte_array_new ();
  g_mutex_init (&self->fd_lock);
  self->old_pools = g_ptr_array_new_with_free_func (gst_object_unref);
  g_queue_init (&self->fd_in_flight);
  g_mutex_init (&self->block_lock);
  datahub_ticker_init (&self->ticker);
  /* render into shared memory as soon as a buffer arrives: sync is the
   * consumer's business */
  gst_base_sink_set_sync (GST_BASE_SINK (self), FALSE);
  /* a kept last sample would pin a slot for nothing */
  gst_base_sink_set_last_sample_enabled (GST_BASE_SINK (self), FALSE);
  g_signal_connect (self, "notify::enable-last-sample", G_CALLBACK (last_sample_changed), NULL);
}
