/**
 * SECTION:element-datahubsink
 * @title: datahubsink
 *
 * Writes buffers into a datahub DataBlock (named shared memory) so that
 * datahubsrc elements in other processes receive them with caps,
 * timestamps and events intact.  Upstream that uses the offered buffer pool
 * (e.g. videotestsrc) renders straight into shared memory: zero copies.
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 videotestsrc is-live=true ! video/x-raw,width=1280,height=720 ! datahubsink channel=cam0
 * gst-launch-1.0 datahubsrc channel=cam0 ! videoconvert ! autovideosink
 * ]|
 */
#include "gstdatahubsink.h"

#include <string.h>

#include <gst/video/video.h>

#include "datahub-enums.h"
#include "datahub-pool.h"
#include "datahub-wire.h"
#include "datahub-common.h"
#include "datahub-discovery.h"

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
/* the first registration waits this long for the broker; later updates
 * (handover, schema) go through the keep-alive thread and never block */
#define BROKER_TIMEOUT_MS 1000

enum {
  PROP_SLOT_SIZE = DATAHUB_PROP_LAST_COMMON + 1,
  PROP_SLOTS,
  PROP_POLICY,
  PROP_ON_FULL,
  PROP_MAX_CONSUMERS,
  PROP_INTEGRITY,
  PROP_PERMS,
  PROP_WAIT_FOR_CONSUMER,
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
  gboolean wait_for_consumer;
  GstStructure *metadata;
  gboolean metadata_dirty;

  /* streaming state */
  DatahubProducerRef *producer;
  GstBufferPool *pool;
  GstCaps *caps;
  GstVideoInfo vinfo;     /* of caps, parsed once per caps, not per buffer */
  gboolean is_video;
  guint caps_gen;
  GQueue pending_events;  /* serialized events before the block exists */
  guint64 bytes_copied;
  guint64 buffers_zero_copy;
  DatahubStatsTimer stats_timer;
  gint last_consumers;
  guint64 last_reaped;
  gint unlocked;          /* between unlock and unlock_stop */
  /* handover: the block on the channel name stays as a redirect */
  DatahubProducerRef *origin;
  guint handovers;
  gint followers;          /* consumers expected on the new block */
  gint64 followers_deadline;
  /* broker: the channel's registration, kept alive by the client */
  dhb_client *broker;
  gchar *broker_channel;
  gchar *schema;           /* of the current caps */
  gboolean registered;
};

G_DEFINE_TYPE (GstDatahubSink, gst_datahub_sink, GST_TYPE_BASE_SINK);
GST_ELEMENT_REGISTER_DEFINE (datahubsink, "datahubsink", GST_RANK_NONE,
    GST_TYPE_DATAHUB_SINK);

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS_ANY);

/* ---- the block ---------------------------------------------------------- */

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

/* Creates a block named @name (NULL: from channel/shm-name). */
static DatahubProducerRef *
create_block (GstDatahubSink *self, const gchar *override_name, guint64 slot_size)
{
  dh_producer_config pc;
  dh_producer_config_init (&pc);
  guint8 secret[DH_SECRET_SIZE];
  GST_OBJECT_LOCK (self);
  gchar *name = override_name ? g_strdup (override_name)
      : datahub_common_name (&self->common);
  pc.slot_count = self->slots;
  pc.policy = self->policy;
  pc.on_full = self->on_full;
  pc.max_consumers = self->max_consumers;
  pc.integrity = self->integrity;
  pc.mode = self->perms;
  if (datahub_common_secret (&self->common, secret))
    pc.secret = secret;
  GST_OBJECT_UNLOCK (self);
  pc.name = name;
  pc.slot_size = slot_size;
  pc.zone_count = 2;
  pc.zone_sizes[DATAHUB_ZONE_STREAM] = DATAHUB_ZONE_STREAM_SIZE;
  pc.zone_sizes[DATAHUB_ZONE_METADATA] = DATAHUB_ZONE_METADATA_SIZE;
  dh_producer *p;
  int rc = dh_producer_create (&pc, &p);
  if (rc != 0) {
    if (rc == -EACCES)
      GST_ELEMENT_ERROR (self, RESOURCE, OPEN_WRITE,
          ("Permission denied creating the shared memory for channel '%s'.", name),
          ("%s", dh_error_detail ()));
    else if (rc == DH_EBUSY)
      GST_ELEMENT_ERROR (self, RESOURCE, BUSY,
          ("Another producer is already running on channel '%s'.", name),
          ("%s", dh_error_detail ()));
    else
      GST_ELEMENT_ERROR (self, RESOURCE, OPEN_WRITE,
          ("Could not create the datahub block for '%s': %s.", name, dh_strerror (rc)),
          ("%s", dh_error_detail ()));
    g_free (name);
    return NULL;
  }
  GST_INFO_OBJECT (self, "created %s: %u slots of %" G_GUINT64_FORMAT " bytes",
      dh_producer_shm_name (p), pc.slot_count, slot_size);
  g_free (name);
  return datahub_producer_ref_new (p);
}

/* The new block of a handover or a first block: announce it. */
static gboolean
use_block (GstDatahubSink *self, DatahubProducerRef *block)
{
  self->producer = block;
  return register_block (self);
}

static void
write_stream_state (GstDatahubSink *self)
{
  GstBaseSink *bs = GST_BASE_SINK (self);
  gchar *state = datahub_wire_state_to_string (self->caps_gen, self->caps, &bs->segment);
  int rc = dh_producer_zone_write (self->producer->producer, DATAHUB_ZONE_STREAM,
      state, strlen (state) + 1);
  if (rc != 0)
    GST_WARNING_OBJECT (self, "stream state not written: %s", dh_error_detail ());
  g_free (state);
}

static gboolean
write_metadata (GstDatahubSink *self, const GstStructure *md)
{
  gchar *text = gst_structure_to_string (md);
  int rc = dh_producer_zone_write (self->producer->producer, DATAHUB_ZONE_METADATA,
      text, strlen (text) + 1);
  if (rc != 0)
    GST_ELEMENT_WARNING (self, RESOURCE, WRITE,
        ("Metadata of %zu bytes does not fit the %d-byte zone.", strlen (text) + 1,
            DATAHUB_ZONE_METADATA_SIZE), ("%s", dh_error_detail ()));
  g_free (text);
  return rc == 0;
}

static void
flush_metadata (GstDatahubSink *self)
{
  GST_OBJECT_LOCK (self);
  GstStructure *md = self->metadata_dirty && self->metadata
      ? gst_structure_copy (self->metadata) : NULL;
  self->metadata_dirty = FALSE;
  GST_OBJECT_UNLOCK (self);
  if (md) {
    write_metadata (self, md);
    gst_structure_free (md);
  }
}

/* After a handover, give the consumers of the old block up to a second to
 * attach to the new one before writing, so they miss nothing. */
static void
wait_for_followers (GstDatahubSink *self)
{
  while (self->followers > 0
      && dh_producer_consumer_count (self->producer->producer) < self->followers
      && g_get_monotonic_time () < self->followers_deadline
      && !g_atomic_int_get (&self->unlocked))
    g_usleep (1000);
  self->followers = 0;
}

/* One record: an event (text) or a buffer copy. */
static GstFlowReturn
write_record (GstDatahubSink *self, const void *data, gsize size,
    const dh_record_info *info)
{
  dh_slot s;
  wait_for_followers (self);
  int rc = dh_producer_acquire (self->producer->producer, -1, &s);
  if (rc == -ECANCELED)
    return GST_FLOW_FLUSHING;
  if (rc != 0) {
    GST_ELEMENT_ERROR (self, RESOURCE, WRITE, ("No free slot in the datahub block."),
        ("%s", dh_error_detail ()));
    return GST_FLOW_ERROR;
  }
  memcpy (s.data, data, size);
  rc = dh_producer_commit (self->producer->producer, &s, info, NULL);
  if (rc != 0) {
    dh_producer_abort (self->producer->producer, &s);
    GST_ELEMENT_ERROR (self, RESOURCE, WRITE, ("Could not publish a record."),
        ("%s", dh_error_detail ()));
    return GST_FLOW_ERROR;
  }
  return GST_FLOW_OK;
}

static GstFlowReturn
write_event (GstDatahubSink *self, GstEvent *event, const gchar *text)
{
  gsize len = strlen (text) + 1;
  if (len > dh_producer_slot_size (self->producer->producer)) {
    GST_WARNING_OBJECT (self, "%s event of %zu bytes does not fit a slot; dropped",
        GST_EVENT_TYPE_NAME (event), len);
    return GST_FLOW_OK;
  }
  dh_record_info info = { .size = len, .kind = DATAHUB_KIND_EVENT,
    .flags = (uint32_t) GST_EVENT_TYPE (event), .caps_gen = self->caps_gen,
    .pts = -1, .dts = -1, .duration = -1 };
  return write_record (self, text, len, &info);
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

/* Moves the stream to a new block with slots of at least @needed bytes and
 * announces it in the old one (and in the block on the channel name, so
 * late joiners find it): consumers read the old block to its end, then
 * switch, and nothing is lost. */
static gboolean
handover (GstDatahubSink *self, guint64 needed)
{
  DatahubProducerRef *old = self->producer;
  guint64 size = MAX (needed, 2 * dh_producer_slot_size (old->producer));
  const gchar *base = dh_producer_shm_name ((self->origin ? self->origin : old)->producer);
  gchar *name = g_strdup_printf ("%s.h%u", base, ++self->handovers);
  DatahubProducerRef *next = create_block (self, name, size);
  if (!next) {
    g_free (name);
    return FALSE;
  }
  /* the channel was registered at start: this is an update, which the
   * keep-alive thread sends and which cannot fail here */
  (void) use_block (self, next);
  write_stream_state (self);
  self->metadata_dirty = self->metadata != NULL;
  flush_metadata (self);
  self->followers = dh_producer_consumer_count (old->producer);
  self->followers_deadline = g_get_monotonic_time () + G_USEC_PER_SEC;
  dh_producer_handover (old->producer, name);
  if (self->origin) {
    dh_producer_handover (self->origin->producer, name);
    datahub_producer_unref (old);
  } else {
    self->origin = old;
  }
  /* pool buffers still upstream belong to the old block: they will be
   * copied; ask upstream for a new allocation from the new pool */
  if (self->pool) {
    gst_object_unref (self->pool);
    self->pool = NULL;
  }
  gst_pad_push_event (GST_BASE_SINK_PAD (self), gst_event_new_reconfigure ());
  GST_INFO_OBJECT (self, "handover to %s (%" G_GUINT64_FORMAT "-byte slots)", name, size);
  gst_element_post_message (GST_ELEMENT (self), gst_message_new_element (GST_OBJECT (self),
          gst_structure_new ("datahub-handover", "to", G_TYPE_STRING, name,
              "slot-size", G_TYPE_UINT64, size, NULL)));
  g_free (name);
  return TRUE;
}

/* Creates the block once the slot size is known: from the property, from
 * the video caps, or from the first buffer. */
static gboolean
ensure_block (GstDatahubSink *self, gsize buffer_size)
{
  if (self->producer)
    return TRUE;
  GST_OBJECT_LOCK (self);
  guint64 size = self->slot_size;
  GST_OBJECT_UNLOCK (self);
  if (size == 0 && self->is_video)
    size = self->vinfo.size;
  if (size == 0 && buffer_size > 0)
    size = MAX (2 * buffer_size, 4096); /* room for growth of non-video streams */
  if (size == 0)
    return TRUE; /* not yet */
  DatahubProducerRef *block = create_block (self, NULL, size);
  if (!block || !use_block (self, block))
    return FALSE;
  self->metadata_dirty = TRUE;
  flush_metadata (self);
  write_stream_state (self);
  return flush_pending_events (self) == GST_FLOW_OK;
}

/* ---- GstBaseSink vfuncs ---------------------------------------------- */

static void
remember_caps (GstDatahubSink *self, GstCaps *caps)
{
  gst_caps_replace (&self->caps, caps);
  self->is_video = caps && gst_video_info_from_caps (&self->vinfo, caps);
  gchar *schema = caps ? datahub_discovery_schema (caps) : NULL;
  gboolean changed = g_strcmp0 (schema, self->schema) != 0;
  g_free (self->schema);
  self->schema = schema;
  if (changed && caps)
    register_block (self);
}

static gboolean
gst_datahub_sink_set_caps (GstBaseSink *bs, GstCaps *caps)
{
  GstDatahubSink *self = GST_DATAHUB_SINK (bs);
  remember_caps (self, caps);
  self->caps_gen++;
  if (!ensure_block (self, 0))
    return FALSE;
  if (self->producer && self->is_video
      && self->vinfo.size > dh_producer_slot_size (self->producer->producer)
      && !handover (self, self->vinfo.size))
    return FALSE;
  if (self->producer)
    write_stream_state (self);
  return TRUE;
}

/* Writes a serialized event in order with the buffers, or queues it until
 * the block exists. */
static void
forward_event (GstDatahubSink *self, GstEvent *event, const gchar *text)
{
  if (!self->producer) {
    g_queue_push_tail (&self->pending_events, gst_event_ref (event));
    return;
  }
  write_event (self, event, text);
  if (GST_EVENT_TYPE (event) == GST_EVENT_SEGMENT)
    write_stream_state (self);
}

static gboolean
gst_datahub_sink_event (GstBaseSink *bs, GstEvent *event)
{
  GstDatahubSink *self = GST_DATAHUB_SINK (bs);
  if (GST_EVENT_TYPE (event) == GST_EVENT_CUSTOM_DOWNSTREAM
      && gst_event_has_name (event, DATAHUB_METADATA_EVENT)) {
    GST_OBJECT_LOCK (self);
    if (self->metadata)
      gst_structure_free (self->metadata);
    self->metadata = gst_structure_copy (gst_event_get_structure (event));
    self->metadata_dirty = TRUE;
    GST_OBJECT_UNLOCK (self);
    g_object_notify (G_OBJECT (self), "metadata");
    if (self->producer)
      flush_metadata (self);
  }
  gchar *text = datahub_wire_event_to_string (event);
  if (GST_EVENT_TYPE (event) != GST_EVENT_CAPS) {
    if (text)
      forward_event (self, event, text);
    g_free (text);
    return GST_BASE_SINK_CLASS (gst_datahub_sink_parent_class)->event (bs, event);
  }
  /* caps: the parent calls set_caps (which may create the block) first */
  GstEvent *caps_event = gst_event_ref (event);
  gboolean ok = GST_BASE_SINK_CLASS (gst_datahub_sink_parent_class)->event (bs, event);
  if (ok && text)
    forward_event (self, caps_event, text);
  gst_event_unref (caps_event);
  g_free (text);
  return ok;
}

/* Monotonic-clock time at which this buffer is due, for consumers in
 * timestamp-mode=clock; -1 when the pipeline clock is not the system
 * monotonic clock. */
static gint64
monotonic_due_time (GstDatahubSink *self, GstBuffer *buf)
{
  GstClock *clock = GST_ELEMENT_CLOCK (self);
  if (!clock || !GST_IS_SYSTEM_CLOCK (clock) || !GST_BUFFER_PTS_IS_VALID (buf))
    return -1;
  GstClockType type;
  g_object_get (clock, "clock-type", &type, NULL);
  if (type != GST_CLOCK_TYPE_MONOTONIC)
    return -1;
  GstClockTime rt = gst_segment_to_running_time (&GST_BASE_SINK (self)->segment,
      GST_FORMAT_TIME, GST_BUFFER_PTS (buf));
  if (!GST_CLOCK_TIME_IS_VALID (rt))
    return -1;
  return (gint64) (rt + GST_ELEMENT_CAST (self)->base_time);
}

static void
post_consumer_changes (GstDatahubSink *self, const dh_metrics *m)
{
  gint live = (gint) m->consumers_live;
  if (live == self->last_consumers && m->consumers_reaped == self->last_reaped)
    return;
  const gchar *what = m->consumers_reaped > self->last_reaped ? "dead"
      : live > self->last_consumers ? "attached" : "detached";
  gst_element_post_message (GST_ELEMENT (self), gst_message_new_element (GST_OBJECT (self),
          gst_structure_new ("datahub-consumer", "event", G_TYPE_STRING, what,
              "consumers", G_TYPE_INT, live, NULL)));
  self->last_consumers = live;
  self->last_reaped = m->consumers_reaped;
}

static void
maybe_post_stats (GstDatahubSink *self)
{
  GST_OBJECT_LOCK (self);
  guint interval = self->common.stats_interval;
  GST_OBJECT_UNLOCK (self);
  if (!datahub_stats_timer_due (&self->stats_timer, interval ? interval : 100))
    return;
  dh_metrics m;
  dh_producer_metrics (self->producer->producer, &m);
  post_consumer_changes (self, &m);
  if (interval) {
    GstStructure *s = datahub_stats_from_metrics (&m, self->bytes_copied, NULL, NULL);
    gst_element_post_message (GST_ELEMENT (self),
        gst_message_new_element (GST_OBJECT (self), s));
  }
}

/* wait-for-consumer: hold the first buffers until someone attached;
 * unlock() (flushing, state change) ends the wait. */
static GstFlowReturn
wait_for_consumer (GstDatahubSink *self)
{
  GST_OBJECT_LOCK (self);
  gboolean wait = self->wait_for_consumer;
  GST_OBJECT_UNLOCK (self);
  while (wait && dh_producer_consumer_count (self->producer->producer) == 0) {
    if (g_atomic_int_get (&self->unlocked))
      return GST_FLOW_FLUSHING;
    g_usleep (5000);
  }
  return GST_FLOW_OK;
}

/* A video buffer whose GstVideoMeta has other strides or offsets than the
 * caps' default layout: it is copied plane by plane into the default
 * layout, which is what every src describes. */
static gboolean
has_custom_layout (GstDatahubSink *self, GstBuffer *buf, GstVideoInfo *info)
{
  GstVideoMeta *meta = gst_buffer_get_video_meta (buf);
  if (!meta || !self->is_video)
    return FALSE;
  *info = self->vinfo;
  for (guint p = 0; p < meta->n_planes; p++)
    if (meta->stride[p] != info->stride[p] || meta->offset[p] != info->offset[p])
      return TRUE;
  return FALSE;
}

/* Copies @buf into a slot; returns the record size. */
static gsize
copy_into_slot (GstDatahubSink *self, GstBuffer *buf, guint8 *dst, gsize size)
{
  GstVideoInfo info;
  GstVideoFrame in, out;
  if (has_custom_layout (self, buf, &info)
      && gst_video_frame_map (&in, &info, buf, GST_MAP_READ)) {
    GstBuffer *wrap = gst_buffer_new_wrapped_full (0, dst, info.size, 0, info.size, NULL, NULL);
    if (gst_video_frame_map (&out, &info, wrap, GST_MAP_WRITE)) {
      gst_video_frame_copy (&out, &in);
      gst_video_frame_unmap (&out);
    }
    gst_video_frame_unmap (&in);
    gst_buffer_unref (wrap);
    return info.size;
  }
  return gst_buffer_extract (buf, 0, dst, size);
}

static GstFlowReturn
gst_datahub_sink_render (GstBaseSink *bs, GstBuffer *buf)
{
  GstDatahubSink *self = GST_DATAHUB_SINK (bs);
  GstVideoInfo vinfo;
  gsize size = has_custom_layout (self, buf, &vinfo) ? vinfo.size : gst_buffer_get_size (buf);
  if (!ensure_block (self, size))
    return GST_FLOW_ERROR;
  dh_producer *p = self->producer->producer;
  GstFlowReturn ret = wait_for_consumer (self);
  if (ret != GST_FLOW_OK)
    return ret;
  flush_metadata (self);
  if (size > dh_producer_slot_size (p)) {
    if (!handover (self, size))
      return GST_FLOW_ERROR;
    p = self->producer->producer;
  }
  wait_for_followers (self);
  dh_record_info info = {
    .size = size, .kind = DATAHUB_KIND_BUFFER,
    .flags = GST_BUFFER_FLAGS (buf), .caps_gen = self->caps_gen,
    .pts = GST_BUFFER_PTS_IS_VALID (buf) ? (int64_t) GST_BUFFER_PTS (buf) : -1,
    .dts = GST_BUFFER_DTS_IS_VALID (buf) ? (int64_t) GST_BUFFER_DTS (buf) : -1,
    .duration = GST_BUFFER_DURATION_IS_VALID (buf) ? (int64_t) GST_BUFFER_DURATION (buf) : -1,
    .offset = GST_BUFFER_OFFSET (buf), .offset_end = GST_BUFFER_OFFSET_END (buf),
    .user = { (uint64_t) monotonic_due_time (self, buf), 0 },
  };
  const dh_slot *slot = datahub_pool_buffer_slot (buf, self->producer);
  if (slot) {
    /* zero copy: upstream rendered into this slot */
    int rc = dh_producer_commit (p, slot, &info, NULL);
    if (rc != 0) {
      GST_ELEMENT_ERROR (self, RESOURCE, WRITE, ("Could not publish a buffer."),
          ("%s", dh_error_detail ()));
      return GST_FLOW_ERROR;
    }
    datahub_pool_buffer_committed (buf);
    self->buffers_zero_copy++;
  } else {
    dh_slot s;
    int rc = dh_producer_acquire (p, -1, &s);
    if (rc == -ECANCELED)
      return GST_FLOW_FLUSHING;
    if (rc != 0) {
      GST_ELEMENT_ERROR (self, RESOURCE, WRITE, ("No free slot in the datahub block."),
          ("%s", dh_error_detail ()));
      return GST_FLOW_ERROR;
    }
    info.size = copy_into_slot (self, buf, s.data, size);
    self->bytes_copied += info.size;
    if ((rc = dh_producer_commit (p, &s, &info, NULL)) != 0) {
      dh_producer_abort (p, &s);
      GST_ELEMENT_ERROR (self, RESOURCE, WRITE, ("Could not publish a buffer."),
          ("%s", dh_error_detail ()));
      return GST_FLOW_ERROR;
    }
  }
  maybe_post_stats (self);
  return GST_FLOW_OK;
}

static gboolean
gst_datahub_sink_propose_allocation (GstBaseSink *bs, GstQuery *query)
{
  GstDatahubSink *self = GST_DATAHUB_SINK (bs);
  GstCaps *caps;
  gboolean need_pool;
  gst_query_parse_allocation (query, &caps, &need_pool);
  if (!caps)
    return FALSE;
  if (caps && !self->caps)
    remember_caps (self, caps);
  /* Buffer size: one video frame, or (other media) the slot size when the
   * application set it — upstream then writes into slots and may shrink
   * its buffers. Otherwise no pool: upstream allocates and we copy once. */
  GstVideoInfo vinfo;
  gboolean video = gst_video_info_from_caps (&vinfo, caps);
  GST_OBJECT_LOCK (self);
  guint64 size = video ? vinfo.size : self->slot_size;
  GST_OBJECT_UNLOCK (self);
  if (size == 0 || !ensure_block (self, 0) || !self->producer
      || size > dh_producer_slot_size (self->producer->producer))
    return TRUE;
  if (!self->pool)
    self->pool = gst_datahub_pool_new (self->producer);
  if (!gst_buffer_pool_is_active (self->pool)) {
    GstStructure *config = gst_buffer_pool_get_config (self->pool);
    gst_buffer_pool_config_set_params (config, caps, (guint) size, 0, 0);
    if (video)
      gst_buffer_pool_config_add_option (config, GST_BUFFER_POOL_OPTION_VIDEO_META);
    if (!gst_buffer_pool_set_config (self->pool, config))
      return TRUE;
  }
  gst_query_add_allocation_pool (query, self->pool, (guint) size, 0, 0);
  if (video)
    gst_query_add_allocation_meta (query, GST_VIDEO_META_API_TYPE, NULL);
  return TRUE;
}

static gboolean
gst_datahub_sink_unlock (GstBaseSink *bs)
{
  GstDatahubSink *self = GST_DATAHUB_SINK (bs);
  g_atomic_int_set (&self->unlocked, TRUE);
  if (self->producer)
    dh_producer_wakeup (self->producer->producer);
  return TRUE;
}

static gboolean
gst_datahub_sink_unlock_stop (GstBaseSink *bs)
{
  GstDatahubSink *self = GST_DATAHUB_SINK (bs);
  g_atomic_int_set (&self->unlocked, FALSE);
  if (self->producer)
    dh_producer_clear_wakeup (self->producer->producer);
  return TRUE;
}

static gboolean gst_datahub_sink_stop (GstBaseSink *bs);

static gboolean
gst_datahub_sink_start (GstBaseSink *bs)
{
  GstDatahubSink *self = GST_DATAHUB_SINK (bs);
  if (!datahub_discovery_connect (GST_ELEMENT (self), &self->common, &self->broker))
    return FALSE;
  GST_OBJECT_LOCK (self);
  self->broker_channel = g_strdup (self->common.channel);
  GST_OBJECT_UNLOCK (self);
  self->registered = FALSE;
  self->caps_gen = 0;
  self->bytes_copied = 0;
  self->buffers_zero_copy = 0;
  self->last_consumers = 0;
  self->last_reaped = 0;
  datahub_stats_timer_init (&self->stats_timer);
  GST_OBJECT_LOCK (self);
  guint64 size = self->slot_size;
  GST_OBJECT_UNLOCK (self);
  /* a known slot size creates the block now, so consumers can attach and
   * wait-for-consumer can work before the first buffer */
  if (size == 0)
    return TRUE;
  DatahubProducerRef *block = create_block (self, NULL, size);
  if (block && use_block (self, block))
    return TRUE;
  /* basesink does not call stop() after a failed start(): undo it here */
  gst_datahub_sink_stop (bs);
  return FALSE;
}

static gboolean
gst_datahub_sink_stop (GstBaseSink *bs)
{
  GstDatahubSink *self = GST_DATAHUB_SINK (bs);
  if (self->pool) {
    gst_buffer_pool_set_active (self->pool, FALSE);
    gst_clear_object (&self->pool);
  }
  g_queue_clear_full (&self->pending_events, (GDestroyNotify) gst_event_unref);
  remember_caps (self, NULL);
  if (self->producer) {
    datahub_producer_unref (self->producer);
    self->producer = NULL;
  }
  if (self->origin) {
    datahub_producer_unref (self->origin);
    self->origin = NULL;
  }
  self->handovers = 0;
  self->followers = 0;
  if (self->broker) {
    /* consumers hear "producer-down" now instead of after the expiry */
    if (self->registered)
      dhb_deregister (self->broker, self->broker_channel, 0, BROKER_TIMEOUT_MS / 2);
    dhb_client_free (self->broker);
    self->broker = NULL;
  }
  g_clear_pointer (&self->broker_channel, g_free);
  return TRUE;
}

/* ---- properties ---------------------------------------------------------- */

static GstStructure *
stats_structure (GstDatahubSink *self)
{
  if (!self->producer)
    return gst_structure_new_empty ("datahub-stats");
  dh_metrics m;
  dh_producer_metrics (self->producer->producer, &m);
  return datahub_stats_from_metrics (&m, self->bytes_copied, NULL, NULL);
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
    case PROP_SLOT_SIZE: self->slot_size = g_value_get_uint64 (value); break;
    case PROP_SLOTS: self->slots = g_value_get_uint (value); break;
    case PROP_POLICY: self->policy = g_value_get_enum (value); break;
    case PROP_ON_FULL: self->on_full = g_value_get_enum (value); break;
    case PROP_MAX_CONSUMERS: self->max_consumers = g_value_get_uint (value); break;
    case PROP_INTEGRITY: self->integrity = g_value_get_enum (value); break;
    case PROP_PERMS: self->perms = g_value_get_uint (value); break;
    case PROP_WAIT_FOR_CONSUMER: self->wait_for_consumer = g_value_get_boolean (value); break;
    case PROP_METADATA: {
      const GstStructure *s = gst_value_get_structure (value);
      if (self->metadata)
        gst_structure_free (self->metadata);
      self->metadata = s ? gst_structure_copy (s) : NULL;
      self->metadata_dirty = self->metadata != NULL;
      break;
    }
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec); break;
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
    case DATAHUB_PROP_SHM_NAME: /* the block in use, once there is one */
      if (self->producer)
        g_value_set_string (value, dh_producer_shm_name (self->producer->producer));
      else
        g_value_set_string (value, self->common.shm_name);
      break;
    case PROP_SLOT_SIZE: g_value_set_uint64 (value, self->slot_size); break;
    case PROP_SLOTS: g_value_set_uint (value, self->slots); break;
    case PROP_POLICY: g_value_set_enum (value, self->policy); break;
    case PROP_ON_FULL: g_value_set_enum (value, self->on_full); break;
    case PROP_MAX_CONSUMERS: g_value_set_uint (value, self->max_consumers); break;
    case PROP_INTEGRITY: g_value_set_enum (value, self->integrity); break;
    case PROP_PERMS: g_value_set_uint (value, self->perms); break;
    case PROP_WAIT_FOR_CONSUMER: g_value_set_boolean (value, self->wait_for_consumer); break;
    case PROP_METADATA: gst_value_set_structure (value, self->metadata); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec); break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_datahub_sink_finalize (GObject *object)
{
  GstDatahubSink *self = GST_DATAHUB_SINK (object);
  datahub_common_clear (&self->common);
  if (self->metadata)
    gst_structure_free (self->metadata);
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
          "Bytes per slot; 0 = from the video caps, or twice the first buffer",
          0, G_MAXUINT64, DEFAULT_SLOT_SIZE, rw_ready));
  g_object_class_install_property (gobject_class, PROP_SLOTS,
      g_param_spec_uint ("slots", "Slots",
          "Slots in the pool (ring policy; single uses 1, double 2)", 1, 65536,
          DEFAULT_SLOTS, rw_ready));
  g_object_class_install_property (gobject_class, PROP_POLICY,
      g_param_spec_enum ("policy", "Policy", "How consumers see buffers",
          DATAHUB_TYPE_POLICY, DEFAULT_POLICY, rw_ready));
  g_object_class_install_property (gobject_class, PROP_ON_FULL,
      g_param_spec_enum ("on-full", "On full",
          "What the sink does when every slot is unread or held (ring policy)",
          DATAHUB_TYPE_ON_FULL, DEFAULT_ON_FULL, rw_ready));
  g_object_class_install_property (gobject_class, PROP_MAX_CONSUMERS,
      g_param_spec_uint ("max-consumers", "Max consumers",
          "Most consumers that can attach at once", 1, DH_MAX_CONSUMERS,
          DEFAULT_MAX_CONSUMERS, rw_ready));
  g_object_class_install_property (gobject_class, PROP_INTEGRITY,
      g_param_spec_enum ("integrity", "Integrity",
          "Per-buffer integrity check computed here and verified by every src",
          DATAHUB_TYPE_INTEGRITY, DEFAULT_INTEGRITY, rw_ready));
  g_object_class_install_property (gobject_class, PROP_PERMS,
      g_param_spec_uint ("perms", "Permissions",
          "File mode of the shared memory object (e.g. 0660 = 432 for a group)",
          0, 0777, DEFAULT_PERMS, rw_ready));
  g_object_class_install_property (gobject_class, PROP_WAIT_FOR_CONSUMER,
      g_param_spec_boolean ("wait-for-consumer", "Wait for consumer",
          "Hold buffers until at least one consumer is attached", FALSE, rw_ready));
  g_object_class_install_property (gobject_class, PROP_METADATA,
      g_param_spec_boxed ("metadata", "Metadata",
          "Application metadata published to every src (settable while playing; "
          "also set by a custom downstream event named " DATAHUB_METADATA_EVENT ")",
          GST_TYPE_STRUCTURE, rw | GST_PARAM_MUTABLE_PLAYING));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_set_static_metadata (element_class, "Datahub sink",
      "Sink/Network", "Writes buffers to a datahub shared-memory channel for other processes",
      "datahub developers");

  bs_class->start = GST_DEBUG_FUNCPTR (gst_datahub_sink_start);
  bs_class->stop = GST_DEBUG_FUNCPTR (gst_datahub_sink_stop);
  bs_class->set_caps = GST_DEBUG_FUNCPTR (gst_datahub_sink_set_caps);
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
  self->slots = DEFAULT_SLOTS;
  self->policy = DEFAULT_POLICY;
  self->on_full = DEFAULT_ON_FULL;
  self->max_consumers = DEFAULT_MAX_CONSUMERS;
  self->integrity = DEFAULT_INTEGRITY;
  self->perms = DEFAULT_PERMS;
  self->common.stats_interval = DEFAULT_STATS_INTERVAL;
  g_queue_init (&self->pending_events);
  /* render into shared memory as soon as a buffer arrives: sync is the
   * consumer's business */
  gst_base_sink_set_sync (GST_BASE_SINK (self), FALSE);
}
