/* SPDX-License-Identifier: LGPL-2.1-or-later */
/**
 * SECTION:element-datahubsrc
 * @title: datahubsrc
 *
 * Reads buffers that a datahubsink in another process writes into a
 * datahub DataBlock.  Caps, segment, tags, EOS and custom serialized events
 * arrive in order with the buffers; no caps need to be written by hand.
 * Buffers wrap the shared slot memory (zero copy) and keep the producer from
 * reusing it until they are freed, up to max-held-slots, beyond which they
 * are copied so a slow downstream cannot stall the producer.
 *
 * The src registers with the channel when it starts, so a src started
 * before the producer receives every buffer from the first.  It plays what
 * it reads at once, whenever it joins (see timestamp-mode), follows the
 * producer through caps changes, handovers and restarts, and asks the
 * producer for a key frame when it joins an encoded stream.
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 datahubsrc channel=cam0 ! videoconvert ! autovideosink
 * gst-launch-1.0 datahubsrc channel=cam0 leaky=yes ! fakesink
 * ]|
 */
#include "gstdatahubsrc.h"

#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include <gst/allocators/allocators.h>
#include <gst/video/video.h>

#include "datahub-common.h"
#include "datahub-discovery.h"
#include "datahub-enums.h"
#include "datahub-fd-channel.h"
#include "datahub-metas.h"
#include "datahub-record-pool.h"
#include "datahub-ticker.h"
#include "datahub-timing.h"
#include "datahub-wire.h"

GST_DEBUG_CATEGORY_STATIC (datahub_src_debug);
#define GST_CAT_DEFAULT datahub_src_debug

#define DEFAULT_START DH_START_LATEST
#define DEFAULT_LEAKY DATAHUB_LEAKY_AUTO
#define DEFAULT_TIMEOUT 0
#define DEFAULT_MAX_HELD 4
#define DEFAULT_TIMESTAMP_MODE DATAHUB_TIMESTAMP_AUTO
/* how long one wait lasts before flushing and timeouts are checked again */
#define SLICE_MS 100
#define TICK_MS 100
/* reported latency of a live src when the frame duration is unknown */
#define DEFAULT_LATENCY (20 * GST_MSECOND)

enum {
  PROP_START = DATAHUB_PROP_LAST_COMMON + 1,
  PROP_LEAKY,
  PROP_TIMEOUT,
  PROP_RECONNECT,
  PROP_IS_LIVE,
  PROP_TIMESTAMP_MODE,
  PROP_MAX_HELD_SLOTS,
  PROP_COPY,
  PROP_METADATA,
  PROP_SCHEMA,
};

struct _GstDatahubSrc {
  GstPushSrc parent;

  /* properties (GST_OBJECT_LOCK) */
  DatahubCommon common;
  dh_start start;
  DatahubLeaky leaky;
  gboolean reconnect, copy, is_live_set;
  guint timeout_ms, max_held;
  DatahubTimestampMode ts_mode;
  GstStructure *metadata;
  gchar *schema;

  /* The consumer, for start..stop (replaced only when the broker names
   * another block).  Swapped under the object lock; other threads take a
   * ref under it. */
  DatahubConsumerRef *conn;
  gint flushing;

  /* streaming thread */
  guint64 session;           /* block session of the last record read */
  GstCaps *caps;
  GstVideoInfo vinfo;
  gboolean is_video, is_raw;
  gboolean is_dmabuf;        /* memory:DMABuf caps: fd records, never copied */
  gboolean downstream_video_meta; /* downstream reads GstVideoMeta: frames keep
                                * the producer's layout (else repacked) */
  gboolean layout_warned;    /* a record's layout was refused (said once) */
  guint caps_gen;            /* of the caps applied */
  gboolean discont;          /* mark the next buffer DISCONT */
  enum { KEY_UNIT_HAVE, KEY_UNIT_WANT, KEY_UNIT_ASKED } key_unit; /* a joiner of an
                                * encoded stream drops delta units until a key frame */
  DatahubTiming timing;
  GstClockTime frame_duration;
  guint64 unknown_caps;      /* buffers dropped: their caps were never seen */
  /* READY-mutable settings the streaming thread needs per buffer, taken
   * once in start(): no lock per buffer */
  DatahubTimestampMode mode;
  gboolean copy_always;
  guint held_limit;
  GstBufferPool *records;    /* buffers wrapping held records (start..stop) */
  DatahubFdClient *fd_client; /* fds of fd records, fetched once (start..stop) */
  GstAllocator *dmabuf_allocator, *fd_allocator;
  /* one mapped memory per fd of the current fd socket, of which records'
   * memories are shares: no mapping (and no page faults) per buffer */
  guint64 fd_server;
  DatahubFdZone fd_zone;     /* where fd_server is, from the block's fd zone */
  GHashTable *fd_parents;    /* &DatahubFdEntry.id -> FdParent */
  GQueue fd_parent_order;    /* ids, oldest first */
  gboolean fd_warned;        /* an fd record could not be read (said once) */

  /* figures (object lock: the ticker posts them) */
  guint64 bytes_copied, metas_dropped;
  guint64 fd_failures;
  /* records by memory kind (datahub_count: no lock per buffer) */
  guint64 records_slot, records_dmabuf, records_fd;
  DatahubLatency latency;    /* commit -> received, last buffers */
  /* ticker thread: datahub-stats, datahub-metadata */
  DatahubTicker ticker;
  DatahubStatsTimer stats_timer;
  GMutex metadata_lock;      /* the ticker and the streaming thread both look */
  uint64_t metadata_version;

  /* broker: set in start(), used by the streaming thread */
  dhb_client *broker;
  gchar *broker_channel, *expected_schema;
  gboolean keeping_alive;
  gchar *discovered_shm;     /* what datahub-discovered last said */
  gint64 discovered_pid;
};

G_DEFINE_TYPE (GstDatahubSrc, gst_datahub_src, GST_TYPE_PUSH_SRC);
GST_ELEMENT_REGISTER_DEFINE (datahubsrc, "datahubsrc", GST_RANK_NONE,
    GST_TYPE_DATAHUB_SRC);

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS_ANY);

static DatahubConsumerRef *
take_conn (GstDatahubSrc *self)
{
  GST_OBJECT_LOCK (self);
  DatahubConsumerRef *c = self->conn ? datahub_consumer_ref (self->conn) : NULL;
  GST_OBJECT_UNLOCK (self);
  return c;
}

/* Lets go of the current connection: it reads no more.  Buffers of it
 * still alive downstream (or kept by the application) keep their records
 * valid, but the producer no longer waits for this consumer, and the
 * consumer leaves the channel when the last of them is freed. */
static void
set_conn (GstDatahubSrc *self, DatahubConsumerRef *conn)
{
  GST_OBJECT_LOCK (self);
  DatahubConsumerRef *old = self->conn;
  self->conn = conn;
  /* unlock() wakes what it finds under this lock: one made meanwhile
   * (broker discovery) must not miss it */
  if (conn && g_atomic_int_get (&self->flushing))
    dh_consumer_wakeup (conn->consumer);
  GST_OBJECT_UNLOCK (self);
  if (old)
    dh_consumer_stop (old->consumer);
  datahub_consumer_unref (old);
}

/* ---- caps and stream state ---------------------------------------------- */

static gboolean
apply_caps (GstDatahubSrc *self, GstCaps *caps)
{
  if (self->caps && gst_caps_is_equal (self->caps, caps))
    return TRUE;
  GST_OBJECT_LOCK (self); /* get_caps reads them from any thread */
  gst_caps_replace (&self->caps, caps);
  GST_OBJECT_UNLOCK (self);
  self->is_video = datahub_raw_video_info (&self->vinfo, caps);
  GstCapsFeatures *features = gst_caps_get_features (caps, 0);
  self->is_dmabuf = features && gst_caps_features_contains (features,
      GST_CAPS_FEATURE_MEMORY_DMABUF);
  const GstStructure *s = gst_caps_get_structure (caps, 0);
  self->is_raw = gst_structure_has_name (s, "video/x-raw")
      || gst_structure_has_name (s, "audio/x-raw");
  gint n, d;
  self->frame_duration = gst_structure_get_fraction (s, "framerate", &n, &d) && n > 0 && d > 0
      ? gst_util_uint64_scale_int (GST_SECOND, d, n) : GST_CLOCK_TIME_NONE;
  GST_DEBUG_OBJECT (self, "caps %" GST_PTR_FORMAT, caps);
  if (!gst_base_src_set_caps (GST_BASE_SRC (self), caps))
    return FALSE;
  /* Frames keep the producer's planes and strides only for a downstream
   * that reads GstVideoMeta (as a video source checks in its ALLOCATION
   * query); other downstream elements get the caps' default layout. */
  self->downstream_video_meta = FALSE;
  if (self->is_video) {
    GstQuery *q = gst_query_new_allocation (caps, FALSE);
    if (gst_pad_peer_query (GST_BASE_SRC_PAD (self), q))
      self->downstream_video_meta = gst_query_find_allocation_meta (q,
          GST_VIDEO_META_API_TYPE, NULL);
    gst_query_unref (q);
  }
  return TRUE;
}

/* The stream state zone: the newest caps (with their generation) and
 * segment, for a consumer that did not read their records.  FALSE when
 * the caps cannot be negotiated. */
static gboolean
read_stream_state (GstDatahubSrc *self, dh_consumer *c, guint *gen_out)
{
  gchar buf[DATAHUB_ZONE_STREAM_SIZE];
  size_t len = 0;
  *gen_out = 0;
  if (dh_consumer_zone_read (c, DATAHUB_ZONE_STREAM, buf, sizeof buf - 1, &len, NULL) != 0
      || len == 0)
    return TRUE;
  buf[len] = '\0';
  GstCaps *caps = NULL;
  GstSegment seg;
  if (!datahub_wire_state_from_string (buf, gen_out, &caps, &seg))
    return TRUE;
  gboolean ok = TRUE;
  if (caps) {
    ok = apply_caps (self, caps);
    gst_caps_unref (caps);
    self->caps_gen = *gen_out;
  }
  GstSegment out;
  if (ok && datahub_timing_segment (&self->timing, &seg, &out))
    gst_base_src_new_segment (GST_BASE_SRC (self), &out);
  return ok;
}

/* A record of another block session: an attach, a producer restart.  The
 * next buffer plays at once (DISCONT), with the caps and segment of now. */
static gboolean
new_session (GstDatahubSrc *self, dh_consumer *c, guint64 session)
{
  GST_INFO_OBJECT (self, "reading %s (session %016" G_GINT64_MODIFIER "x)",
      dh_consumer_shm_name (c), session);
  self->session = session;
  self->discont = TRUE;
  self->key_unit = KEY_UNIT_WANT;
  datahub_timing_restart (&self->timing, self->mode);
  guint gen;
  return read_stream_state (self, c, &gen);
}

/* The sink's metadata zone changed: the property and a message.  Looked
 * at before every read and by the ticker (while no data comes). */
static void
post_metadata_if_changed (GstDatahubSrc *self, dh_consumer *c)
{
  uint64_t v = dh_consumer_zone_version (c, DATAHUB_ZONE_METADATA);
  if (v == self->metadata_version)
    return;
  g_mutex_lock (&self->metadata_lock);
  gchar buf[DATAHUB_ZONE_METADATA_SIZE];
  size_t len = 0;
  GstStructure *md = NULL;
  if (v != self->metadata_version
      && dh_consumer_zone_read (c, DATAHUB_ZONE_METADATA, buf, sizeof buf - 1, &len, &v) == 0) {
    self->metadata_version = v;
    buf[len] = '\0';
    md = len ? gst_structure_from_string (buf, NULL) : NULL;
  }
  g_mutex_unlock (&self->metadata_lock);
  if (!md)
    return;
  GST_OBJECT_LOCK (self);
  if (self->metadata)
    gst_structure_free (self->metadata);
  self->metadata = gst_structure_copy (md);
  GST_OBJECT_UNLOCK (self);
  g_object_notify (G_OBJECT (self), "metadata");
  gst_element_post_message (GST_ELEMENT (self), gst_message_new_element (GST_OBJECT (self),
          gst_structure_new ("datahub-metadata", "metadata", GST_TYPE_STRUCTURE, md,
              NULL)));
  gst_structure_free (md);
}

/* ---- attaching ------------------------------------------------------------ */

static void
report_attach_error (GstDatahubSrc *self, const gchar *name, int rc)
{
  if (rc == DH_ESECRET)
    GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ,
        ("Wrong or missing secret for '%s': give this src the secret its sink has.", name),
        ("%s", dh_error_detail ()));
  else if (rc == DH_EVERSION)
    GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ,
        ("The producer of '%s' uses another datahub layout version; upgrade both sides.",
            name), ("%s", dh_error_detail ()));
  else if (rc == -EACCES)
    GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ,
        ("Permission denied on the shared memory of '%s' (see the sink's perms).", name),
        ("%s", dh_error_detail ()));
  else if (rc == DH_EFULL)
    GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ,
        ("Channel '%s' has no room for another consumer (see the sink's max-consumers).",
            name), ("%s", dh_error_detail ()));
  else if (rc == DH_EEVICTED)
    GST_ELEMENT_ERROR (self, RESOURCE, READ,
        ("The producer of '%s' evicted this consumer.", name), ("%s", dh_error_detail ()));
  else
    GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ,
        ("Could not read channel '%s': %s.", name, dh_error_detail ()),
        ("%s", dh_strerror (rc)));
}

static dh_leaky
leaky_mode (DatahubLeaky leaky)
{
  return leaky == DATAHUB_LEAKY_YES ? DH_LEAKY_YES
      : leaky == DATAHUB_LEAKY_NO ? DH_LEAKY_NO : DH_LEAKY_AUTO;
}

/* Registers as a consumer of @name (pre-registration: a producer that
 * starts later counts us from its first record). */
static gboolean
open_consumer (GstDatahubSrc *self, const gchar *name)
{
  dh_consumer_config cc;
  dh_consumer_config_init (&cc);
  guint8 secret[DH_SECRET_SIZE];
  GST_OBJECT_LOCK (self);
  cc.leaky = leaky_mode (self->leaky);
  cc.start = self->start;
  if (datahub_common_secret (&self->common, secret))
    cc.secret = secret;
  GST_OBJECT_UNLOCK (self);
  cc.name = name;
  /* one hold more than we keep, for copying beyond the limit */
  cc.max_held = self->held_limit + 1;
  dh_consumer *c;
  int rc = dh_consumer_open (&cc, &c);
  if (rc != 0) {
    report_attach_error (self, name, rc);
    return FALSE;
  }
  set_conn (self, datahub_consumer_ref_new (c));
  self->session = 0;
  self->metadata_version = 0;
  return TRUE;
}

/* Asks the broker which block serves the channel.  Returns FLOW_OK with
 * *@name set, FLOW_CUSTOM_SUCCESS when there is no producer (yet; retry),
 * or FLOW_ERROR for a refusal, which is posted. */
static GstFlowReturn
discover (GstDatahubSrc *self, gchar **name)
{
  guint8 secret[DH_SECRET_SIZE];
  GST_OBJECT_LOCK (self);
  gboolean has_secret = datahub_common_secret (&self->common, secret);
  GST_OBJECT_UNLOCK (self);
  dhb_discovery d;
  dhb_status st = dhb_discover (self->broker, self->broker_channel,
      has_secret ? secret : NULL, self->expected_schema, SLICE_MS, &d);
  if (st == DHB_NOT_FOUND || st == DHB_TIMEOUT)
    return GST_FLOW_CUSTOM_SUCCESS;
  char why[256];
  dhb_client_last_error (self->broker, why, sizeof why);
  if (st == DHB_AUTH_FAILED) {
    GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ,
        ("The broker refused channel '%s': wrong or missing secret.", self->broker_channel),
        ("%s", why));
    return GST_FLOW_ERROR;
  }
  if (st == DHB_SCHEMA_MISMATCH) {
    GST_ELEMENT_ERROR (self, STREAM, WRONG_TYPE,
        ("Channel '%s' carries '%s', not the expected schema '%s'.", self->broker_channel,
            d.schema[0] ? d.schema : "?", self->expected_schema), ("%s", why));
    return GST_FLOW_ERROR;
  }
  if (st != DHB_OK) {
    GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ,
        ("The broker refused to look up channel '%s' (%s).", self->broker_channel,
            dhb_status_name (st)), ("%s", why));
    return GST_FLOW_ERROR;
  }
  *name = g_strdup (d.shm_name);
  if (!self->keeping_alive)
    self->keeping_alive = dhb_client_keep_alive (self->broker, NULL,
        self->broker_channel) == 0;
  if (g_strcmp0 (self->discovered_shm, d.shm_name) != 0 || self->discovered_pid != d.pid) {
    g_free (self->discovered_shm);
    self->discovered_shm = g_strdup (d.shm_name);
    self->discovered_pid = d.pid;
    GST_INFO_OBJECT (self, "channel %s is %s (pid %" G_GINT64_FORMAT ")", d.channel,
        d.shm_name, d.pid);
    gst_element_post_message (GST_ELEMENT (self), gst_message_new_element (
            GST_OBJECT (self), gst_structure_new ("datahub-discovered",
                "channel", G_TYPE_STRING, d.channel,
                "shm-name", G_TYPE_STRING, d.shm_name,
                "pid", G_TYPE_INT64, d.pid,
                "schema", G_TYPE_STRING, d.schema,
                "secured", G_TYPE_BOOLEAN, d.secured, NULL)));
  }
  return GST_FLOW_OK;
}

/* Broker events arrive on the client's thread: they become bus messages. */
static void
on_broker_event (const dhb_event *ev, void *user_data)
{
  GstDatahubSrc *self = user_data;
  GST_INFO_OBJECT (self, "broker event %s", ev->json);
  gst_element_post_message (GST_ELEMENT (self), gst_message_new_element (GST_OBJECT (self),
          gst_structure_new ("datahub-broker-event",
              "event", G_TYPE_STRING, ev->event,
              "channel", G_TYPE_STRING, ev->channel,
              "shm-name", G_TYPE_STRING, ev->shm_name,
              "pid", G_TYPE_INT64, ev->pid,
              "schema", G_TYPE_STRING, ev->schema,
              "reason", G_TYPE_STRING, ev->reason,
              "from", G_TYPE_STRING, ev->from,
              "client-id", G_TYPE_STRING, ev->client_id, NULL)));
}

/* With a broker: the block the broker names (looked up again after the
 * producer went away: a restarted producer may use another block name). */
static GstFlowReturn
connect_via_broker (GstDatahubSrc *self)
{
  GST_OBJECT_LOCK (self);
  guint timeout = self->timeout_ms;
  GST_OBJECT_UNLOCK (self);
  GstClockTime started = gst_util_get_timestamp ();
  for (;;) {
    if (g_atomic_int_get (&self->flushing))
      return GST_FLOW_FLUSHING;
    gchar *name = NULL;
    GstFlowReturn ret = discover (self, &name);
    if (ret == GST_FLOW_OK) {
      gboolean ok = open_consumer (self, name);
      g_free (name);
      return ok ? GST_FLOW_OK : GST_FLOW_ERROR;
    }
    if (ret != GST_FLOW_CUSTOM_SUCCESS)
      return ret;
    if (timeout && gst_util_get_timestamp () - started > timeout * GST_MSECOND) {
      GST_ELEMENT_ERROR (self, RESOURCE, NOT_FOUND,
          ("No producer on channel '%s' after %u ms.", self->broker_channel, timeout),
          (NULL));
      return GST_FLOW_ERROR;
    }
    g_usleep (SLICE_MS * 1000);
  }
}

/* ---- turning records into events and buffers ------------------------------ */

/* A caps event record: its generation is the one buffers refer to. */
static GstFlowReturn
take_caps_event (GstDatahubSrc *self, GstEvent *e, const dh_record *r)
{
  GstCaps *caps;
  gst_event_parse_caps (e, &caps);
  self->caps_gen = r->info.caps_gen;
  return apply_caps (self, caps) ? GST_FLOW_OK : GST_FLOW_NOT_NEGOTIATED;
}

/* A flush in the producer's pipeline (a seek) is a discontinuity here,
 * not a flush: flushing this pipeline from another process would reset
 * its running time under its other branches.  The next buffer is DISCONT
 * and placed at once again (passthrough sends a rebased segment). */
static void
take_flush (GstDatahubSrc *self)
{
  datahub_timing_restart (&self->timing, self->mode);
  self->discont = TRUE;
}

/* GAP and SEGMENT_DONE carry positions in the producer's segment: they
 * mean something here only in passthrough, once its segment went out. */
static gboolean
position_event_usable (GstDatahubSrc *self)
{
  return self->mode == DATAHUB_TIMESTAMP_PASSTHROUGH && !self->timing.rebase_pending;
}

/* Returns GST_FLOW_OK to continue reading, or EOS / an error to stop. */
static GstFlowReturn
handle_event_record (GstDatahubSrc *self, const dh_record *r)
{
  gsize len = r->info.size;
  const gchar *text = r->data;
  if (len == 0 || text[len - 1] != '\0') {
    GST_WARNING_OBJECT (self, "malformed event record %" G_GUINT64_FORMAT, r->seq);
    return GST_FLOW_OK;
  }
  GstEventType type = (GstEventType) r->info.flags;
  GstEvent *e = datahub_wire_event_from_string (type, text);
  if (!e) {
    GST_WARNING_OBJECT (self, "event record %" G_GUINT64_FORMAT " of type %u not usable: '%s'",
        r->seq, r->info.flags, text);
    return GST_FLOW_OK;
  }
  GstFlowReturn ret = GST_FLOW_OK;
  switch (type) {
    case GST_EVENT_CAPS:
      ret = take_caps_event (self, e, r);
      gst_event_unref (e);
      break;
    case GST_EVENT_SEGMENT:{
      const GstSegment *seg;
      GstSegment out;
      gst_event_parse_segment (e, &seg);
      if (datahub_timing_segment (&self->timing, seg, &out))
        gst_base_src_new_segment (GST_BASE_SRC (self), &out);
      gst_event_unref (e);
      break;
    }
    case GST_EVENT_EOS:
      gst_event_unref (e);
      ret = GST_FLOW_EOS;
      break;
    case GST_EVENT_STREAM_START:
      gst_event_unref (e); /* basesrc sends its own */
      break;
    case GST_EVENT_FLUSH_STOP:
      gst_event_unref (e);
      take_flush (self);
      break;
    case GST_EVENT_GAP:
    case GST_EVENT_SEGMENT_DONE:
      if (position_event_usable (self))
        gst_pad_push_event (GST_BASE_SRC_PAD (self), e);
      else
        gst_event_unref (e);
      break;
    default:
      gst_pad_push_event (GST_BASE_SRC_PAD (self), e);
      break;
  }
  return ret;
}

/* @layout (the caps' default when NULL) as @buf's video meta, or none.  A
 * pool buffer keeps its meta (POOLED) and gets it updated in place: no
 * allocation. */
static void
set_video_meta (GstDatahubSrc *self, GstBuffer *buf, const GstVideoMeta *layout)
{
  GstVideoMeta *meta = gst_buffer_get_video_meta (buf);
  if (!self->is_video) {
    if (meta)
      gst_buffer_remove_meta (buf, (GstMeta *) meta);
    return;
  }
  const GstVideoInfo *vi = &self->vinfo;
  const gsize *offset = layout ? layout->offset : vi->offset;
  const gint *stride = layout ? layout->stride : vi->stride;
  GstVideoFrameFlags flags = layout ? layout->flags : GST_VIDEO_FRAME_FLAG_NONE;
  if (!meta) {
    meta = gst_buffer_add_video_meta_full (buf, flags, GST_VIDEO_INFO_FORMAT (vi),
        GST_VIDEO_INFO_WIDTH (vi), GST_VIDEO_INFO_HEIGHT (vi), GST_VIDEO_INFO_N_PLANES (vi),
        (gsize *) offset, (gint *) stride);
    GST_META_FLAG_SET (meta, GST_META_FLAG_POOLED);
    return;
  }
  meta->flags = flags;
  meta->format = GST_VIDEO_INFO_FORMAT (vi);
  meta->width = GST_VIDEO_INFO_WIDTH (vi);
  meta->height = GST_VIDEO_INFO_HEIGHT (vi);
  meta->n_planes = GST_VIDEO_INFO_N_PLANES (vi);
  memcpy (meta->offset, offset, sizeof meta->offset);
  memcpy (meta->stride, stride, sizeof meta->stride);
}

/* The record's meta trailer (after its payload in the slot, length in
 * user[1]) attached to @buf.  The producer's process wrote it: it is
 * copied out of shared memory before it is parsed, and checked.  FALSE
 * when the trailer is malformed. */
static gboolean
attach_metas (GstDatahubSrc *self, dh_consumer *c, const dh_record *r, GstBuffer *buf,
    DatahubMetaInfo *info)
{
  memset (info, 0, sizeof *info);
  guint64 len = r->info.user[1];
  if (len == 0)
    return TRUE;
  guint64 at = DATAHUB_METAS_OFFSET (r->info.size);
  guint64 slot = dh_consumer_slot_size (c);
  if (at > slot || len > slot - at)
    return FALSE;
  guint8 local[512];
  guint8 *copy = len <= sizeof local ? local : g_malloc (len);
  memcpy (copy, (const guint8 *) r->data + at, len);
  gboolean ok = datahub_metas_decode (copy, len, buf, info);
  if (copy != local)
    g_free (copy);
  if (info->dropped > 0) {
    GST_OBJECT_LOCK (self);
    self->metas_dropped += info->dropped;
    GST_OBJECT_UNLOCK (self);
  }
  return ok;
}

/* @buf (its video meta says its layout) repacked into the caps' default
 * layout for a downstream that does not read GstVideoMeta.  NULL if it
 * cannot be mapped. */
static GstBuffer *
repack (GstDatahubSrc *self, GstBuffer *buf)
{
  GstBuffer *out = gst_buffer_new_allocate (NULL, self->vinfo.size, NULL);
  GstVideoFrame in, dst;
  gboolean ok = FALSE;
  if (gst_video_frame_map (&in, &self->vinfo, buf, GST_MAP_READ)) {
    if (gst_video_frame_map (&dst, &self->vinfo, out, GST_MAP_WRITE)) {
      ok = gst_video_frame_copy (&dst, &in);
      gst_video_frame_unmap (&dst);
    }
    gst_video_frame_unmap (&in);
  }
  if (!ok) {
    gst_buffer_unref (out);
    return NULL;
  }
  /* flags and the other metas; the copied video meta then says the
   * default layout */
  gst_buffer_copy_into (out, buf, GST_BUFFER_COPY_FLAGS | GST_BUFFER_COPY_META, 0, -1);
  set_video_meta (self, out, NULL);
  GST_OBJECT_LOCK (self);
  self->bytes_copied += self->vinfo.size;
  GST_OBJECT_UNLOCK (self);
  return out;
}

/* The frame's layout on @buf: the producer's (checked against the caps
 * and the record size), as a meta when downstream reads it, else
 * repacked; without a layout in the record, the caps' default.  Returns
 * the buffer to push (maybe another), or NULL (dropped: a layout that
 * does not describe the frame). */
static GstBuffer *
place_layout (GstDatahubSrc *self, GstBuffer *buf, const DatahubMetaInfo *info)
{
  /* a crop outside the frame would make downstream read past it (every
   * crop: a record may carry several) */
  gpointer state = NULL;
  GstMeta *meta;
  while (self->is_video && (meta = gst_buffer_iterate_meta_filtered (buf, &state,
              GST_VIDEO_CROP_META_API_TYPE))) {
    GstVideoCropMeta *crop = (GstVideoCropMeta *) meta;
    if ((guint64) crop->x + crop->width > (guint64) GST_VIDEO_INFO_WIDTH (&self->vinfo)
        || (guint64) crop->y + crop->height > (guint64) GST_VIDEO_INFO_HEIGHT (&self->vinfo)) {
      gst_buffer_remove_meta (buf, meta);
      state = NULL; /* removing invalidates the iteration: start again */
      GST_OBJECT_LOCK (self);
      self->metas_dropped++;
      GST_OBJECT_UNLOCK (self);
    }
  }
  if (!self->is_video || !info->has_video) {
    /* no layout said: the caps' default, if the frame is that big */
    GstVideoMeta *stale = gst_buffer_get_video_meta (buf);
    if (self->is_video && gst_buffer_get_size (buf) >= self->vinfo.size)
      set_video_meta (self, buf, NULL);
    else if (stale)
      gst_buffer_remove_meta (buf, (GstMeta *) stale);
    return buf;
  }
  if (!datahub_metas_layout_valid (&info->video, &self->vinfo, gst_buffer_get_size (buf))) {
    if (!self->layout_warned)
      GST_ELEMENT_WARNING (self, STREAM, FORMAT, ("A frame's layout does not fit its caps."),
          ("a record's video meta (%s %ux%u, %u planes) does not describe a frame of %"
              GST_PTR_FORMAT " within its %" G_GSIZE_FORMAT " bytes: frame dropped",
              gst_video_format_to_string (info->video.format), info->video.width,
              info->video.height, info->video.n_planes, self->caps,
              gst_buffer_get_size (buf)));
    self->layout_warned = TRUE;
    gst_buffer_unref (buf);
    return NULL;
  }
  set_video_meta (self, buf, &info->video);
  /* DMA-BUF frames keep their layout: a repacked copy would be system
   * memory under DMA-BUF caps */
  if (self->downstream_video_meta || self->is_dmabuf
      || datahub_metas_layout_is_default (&info->video, &self->vinfo))
    return buf;
  GstBuffer *out = repack (self, buf);
  gst_buffer_unref (buf);
  return out;
}

#define FD_PARENTS 64

typedef struct {
  guint64 id, dev, ino, maxsize;
  GstMemory *mem;            /* the whole fd, mapped once, read-only */
} FdParent;

static void
fd_parent_free (gpointer p)
{
  FdParent *f = p;
  gst_memory_unref (f->mem);
  g_free (f);
}

static void
forget_fd_parents (GstDatahubSrc *self)
{
  g_hash_table_remove_all (self->fd_parents);
  g_queue_clear_full (&self->fd_parent_order, g_free);
}

/* Where the fd socket @server is, and its token, from the block's fd
 * zone (the sink writes it before the first fd record). */
static gboolean
read_fd_zone (GstDatahubSrc *self, dh_consumer *c, guint64 server, gchar **why)
{
  if (self->fd_server == server)
    return TRUE;
  forget_fd_parents (self);
  self->fd_server = 0;
  size_t len = 0;
  DatahubFdZone zone;
  if (dh_consumer_zone_read (c, DATAHUB_ZONE_FD, &zone, sizeof zone, &len, NULL) != 0
      || len != sizeof zone || zone.server != server) {
    *why = g_strdup ("the block does not say where its fd socket is");
    return FALSE;
  }
  self->fd_zone = zone;
  self->fd_server = server;
  return TRUE;
}

/* The whole fd the producer shares for @e, as a memory mapped once
 * (cached per fd); NULL and *@why when the fd cannot be had or is smaller
 * than the record says. */
static GstMemory *
fd_parent (GstDatahubSrc *self, dh_consumer *c, guint64 server, DatahubFdKind kind,
    const DatahubFdEntry *e, gchar **why)
{
  if (!read_fd_zone (self, c, server, why))
    return NULL;
  FdParent *hit = g_hash_table_lookup (self->fd_parents, &e->id);
  if (hit && hit->dev == e->dev && hit->ino == e->ino && hit->maxsize >= e->maxsize)
    return hit->mem;
  guint8 secret[DH_SECRET_SIZE];
  GST_OBJECT_LOCK (self);
  gboolean has_secret = datahub_common_secret (&self->common, secret);
  GST_OBJECT_UNLOCK (self);
  int fd = datahub_fd_client_get (self->fd_client, &self->fd_zone, has_secret ? secret : NULL,
      e, why);
  sodium_memzero (secret, sizeof secret);
  if (fd < 0)
    return NULL;
  /* mapping past its end would fault in this process */
  off_t end = lseek (fd, 0, SEEK_END);
  if (end < 0 || (guint64) end < e->maxsize) {
    *why = g_strdup_printf ("fd %" G_GUINT64_FORMAT " has %lld bytes, the record says %"
        G_GUINT64_FORMAT, e->id, (long long) end, e->maxsize);
    close (fd);
    return NULL;
  }
  GstMemory *mem = kind == DATAHUB_FD_KIND_DMABUF
      ? gst_dmabuf_allocator_alloc_with_flags (self->dmabuf_allocator, fd, (gsize) e->maxsize,
      GST_FD_MEMORY_FLAG_KEEP_MAPPED)
      : gst_fd_allocator_alloc (self->fd_allocator, fd, (gsize) e->maxsize,
      GST_FD_MEMORY_FLAG_KEEP_MAPPED);
  if (!mem) {
    close (fd);
    *why = g_strdup ("the fd could not be wrapped");
    return NULL;
  }
  /* the producer's frames: nobody here writes them */
  GST_MINI_OBJECT_FLAG_SET (mem, GST_MEMORY_FLAG_READONLY);
  if (hit) {
    g_hash_table_remove (self->fd_parents, &e->id); /* its id stays queued */
  } else {
    while (g_queue_get_length (&self->fd_parent_order) >= FD_PARENTS) {
      guint64 *old = g_queue_pop_head (&self->fd_parent_order);
      g_hash_table_remove (self->fd_parents, old);
      g_free (old);
    }
    g_queue_push_tail (&self->fd_parent_order, g_memdup2 (&e->id, sizeof e->id));
  }
  FdParent *f = g_new0 (FdParent, 1);
  *f = (FdParent) { .id = e->id, .dev = e->dev, .ino = e->ino, .maxsize = e->maxsize,
    .mem = mem };
  g_hash_table_insert (self->fd_parents, &f->id, f);
  return mem;
}

/* A memory of the producer's fd for @e: a share of the fd's cached
 * memory (its mapping is reused; buffers keep the fd alive after it
 * leaves the cache). */
static GstMemory *
fd_memory (GstDatahubSrc *self, dh_consumer *c, guint64 server, DatahubFdKind kind,
    const DatahubFdEntry *e, gchar **why)
{
  GstMemory *parent = fd_parent (self, c, server, kind, e, why);
  return parent ? gst_memory_share (parent, (gssize) e->offset, (gssize) e->size) : NULL;
}

/* record_hold_quark (): the qdata by which a memory holds its record */
static G_DEFINE_QUARK (datahub-record-hold, record_hold);

/* Says once why an fd record was dropped (counted in fd-failures). */
static void
fd_record_failed (GstDatahubSrc *self, const dh_record *r, gchar *why)
{
  GST_OBJECT_LOCK (self);
  self->fd_failures++;
  GST_OBJECT_UNLOCK (self);
  if (!self->fd_warned)
    GST_ELEMENT_WARNING (self, RESOURCE, READ, ("Could not read a buffer's file descriptors."),
        ("record %" G_GUINT64_FORMAT ": %s: dropped", r->seq, why));
  self->fd_warned = TRUE;
  g_free (why);
  self->discont = TRUE;
}

/* @buf's bytes in system memory, with its metas; NULL if it cannot be
 * read (a DMA-BUF the CPU cannot map). */
static GstBuffer *
bytes_of (GstBuffer *buf)
{
  GstBuffer *bytes = gst_buffer_new_allocate (NULL, gst_buffer_get_size (buf), NULL);
  GstMapInfo map;
  gboolean ok = gst_buffer_map (bytes, &map, GST_MAP_WRITE);
  if (ok) {
    ok = gst_buffer_extract (buf, 0, map.data, map.size) == map.size;
    gst_buffer_unmap (bytes, &map);
  }
  if (!ok) {
    gst_buffer_unref (bytes);
    return NULL;
  }
  gst_buffer_copy_into (bytes, buf, GST_BUFFER_COPY_META, 0, -1);
  return bytes;
}

/* The fd record as a buffer of the producer's fds, each memory holding
 * the record until it is freed (also when an element moves it into
 * another buffer), or @copy: their bytes in system memory.  Under
 * memory:DMABuf caps nothing is copied (system memory would lie about
 * the caps): the src holds what it has out, and latest-value records,
 * which cannot be held, are dropped.  NULL when the record cannot be read
 * (counted, warned once) or a copied latest-value record was rewritten;
 * the record is released then. */
static GstBuffer *
buffer_from_fd_record (GstDatahubSrc *self, DatahubConsumerRef *conn, const dh_record *r,
    gboolean copy, DatahubMetaInfo *info, gboolean *metas_ok)
{
  DatahubFdRecord rec;
  DatahubFdEntry entries[DATAHUB_FD_MAX_MEMORIES];
  gchar *why = NULL;
  if (copy && self->is_dmabuf && (r->flags & DH_RECORD_UNHELD))
    why = g_strdup ("memory:DMABuf caps need policy=ring (latest-value reads cannot hold "
        "the producer's buffer, and a copy would not be DMA-BUF)");
  else if (self->is_dmabuf)
    copy = FALSE;
  GstBuffer *buf = gst_buffer_new ();
  if (!why && !datahub_fd_record_parse (r->data, r->info.size, &rec, entries))
    why = g_strdup_printf ("a malformed fd record of %" G_GUINT64_FORMAT " bytes", r->info.size);
  for (guint i = 0; !why && i < rec.n_memories; i++) {
    GstMemory *mem = fd_memory (self, conn->consumer, rec.server, rec.kind, &entries[i], &why);
    if (mem)
      gst_buffer_append_memory (buf, mem);
  }
  GstBuffer *held = why || copy ? NULL : datahub_record_pool_wrap (self->records, conn, r);
  if (!why)
    *metas_ok = attach_metas (self, conn->consumer, r, buf, info);
  if (!why && held) {
    /* the producer keeps its buffer while any of these memories lives */
    for (guint i = 0; i < gst_buffer_n_memory (buf); i++)
      gst_mini_object_set_qdata (GST_MINI_OBJECT (gst_buffer_peek_memory (buf, i)),
          record_hold_quark (), gst_buffer_ref (held), (GDestroyNotify) gst_buffer_unref);
    gst_buffer_unref (held);
  } else if (!why) {
    GstBuffer *bytes = bytes_of (buf);
    gst_buffer_unref (buf);
    buf = bytes;
    if (!buf)
      why = g_strdup ("the producer's memory cannot be read here");
    int rc = dh_consumer_release (conn->consumer, r);
    if (buf && rc == DH_ESTALE) {
      gst_buffer_unref (buf);
      self->discont = TRUE; /* a torn copy, dropped: a gap */
      return NULL;
    }
    if (buf) {
      GST_OBJECT_LOCK (self);
      self->bytes_copied += gst_buffer_get_size (buf);
      GST_OBJECT_UNLOCK (self);
    }
  } else {
    dh_consumer_release (conn->consumer, r);
  }
  if (why) {
    if (buf)
      gst_buffer_unref (buf);
    fd_record_failed (self, r, why);
    return NULL;
  }
  datahub_count (rec.kind == DATAHUB_FD_KIND_DMABUF ? &self->records_dmabuf
      : &self->records_fd);
  return buf;
}

/* The slot record as a buffer of its slot memory (held until the buffer
 * is freed) or, @copy, of its bytes; NULL when a copied latest-value
 * record was rewritten (released then). */
static GstBuffer *
buffer_from_slot_record (GstDatahubSrc *self, DatahubConsumerRef *conn, const dh_record *r,
    gboolean copy, DatahubMetaInfo *info, gboolean *metas_ok)
{
  datahub_count (&self->records_slot);
  /* the pool only fails when inactive, outside start..stop: copy then */
  GstBuffer *buf = copy ? NULL : datahub_record_pool_wrap (self->records, conn, r);
  if (buf) {
    *metas_ok = attach_metas (self, conn->consumer, r, buf, info);
    return buf;
  }
  buf = gst_buffer_new_memdup (r->data, r->info.size);
  /* the metas too before the release says whether the copy is torn */
  *metas_ok = attach_metas (self, conn->consumer, r, buf, info);
  if (dh_consumer_release (conn->consumer, r) == DH_ESTALE) {
    gst_buffer_unref (buf);
    self->discont = TRUE; /* a torn copy, dropped: a gap */
    return NULL;
  }
  GST_OBJECT_LOCK (self);
  self->bytes_copied += r->info.size;
  GST_OBJECT_UNLOCK (self);
  return buf;
}

/* The record as a buffer: its slot memory (held until the buffer is
 * freed), or a copy beyond the held limit, for unheld (latest-value)
 * records, or when asked; with the record's metas.  NULL when an unheld
 * record was rewritten while it was copied, or the record is dropped. */
static GstBuffer *
buffer_from_record (GstDatahubSrc *self, DatahubConsumerRef *conn, const dh_record *r)
{
  dh_consumer_stats st;
  dh_consumer_stats_get (conn->consumer, &st);
  guint limit = MIN (self->held_limit, st.quota > 0 ? st.quota - 1 : 0);
  gboolean copy = self->copy_always || (r->flags & DH_RECORD_UNHELD) || st.held > limit;
  DatahubMetaInfo info;
  gboolean metas_ok = FALSE;
  GstBuffer *buf = r->info.kind == DATAHUB_KIND_FD_BUFFER
      ? buffer_from_fd_record (self, conn, r, copy, &info, &metas_ok)
      : buffer_from_slot_record (self, conn, r, copy, &info, &metas_ok);
  if (!buf)
    return NULL;
  if (!metas_ok) {
    /* no metas rather than some: the frame's layout may be among them */
    gst_buffer_unref (buf);
    if (!self->layout_warned)
      GST_ELEMENT_WARNING (self, STREAM, FORMAT, ("A record's metas are malformed."),
          ("record %" G_GUINT64_FORMAT ": a meta trailer of %" G_GUINT64_FORMAT
              " bytes that does not parse: record dropped", r->seq, r->info.user[1]));
    self->layout_warned = TRUE;
    self->discont = TRUE;
    return NULL;
  }
  /* flags the producer set (delta unit, ...), minus the ones that describe
   * memory or position on the other side */
  GST_BUFFER_FLAGS (buf) = r->info.flags & ~(GST_BUFFER_FLAG_TAG_MEMORY
      | GST_BUFFER_FLAG_DISCONT | ((guint) GST_MINI_OBJECT_FLAG_LAST - 1));
  if (self->discont || r->lost_before > 0)
    GST_BUFFER_FLAG_SET (buf, GST_BUFFER_FLAG_DISCONT);
  GST_BUFFER_DURATION (buf) = r->info.duration >= 0 ? (GstClockTime) r->info.duration
      : GST_CLOCK_TIME_NONE;
  GST_BUFFER_OFFSET (buf) = r->info.offset;
  GST_BUFFER_OFFSET_END (buf) = r->info.offset_end;
  buf = place_layout (self, buf, &info);
  if (buf)
    self->discont = FALSE;
  else
    self->discont = TRUE; /* dropped: a gap */
  return buf;
}

/* A buffer record's caps generation must be the one applied: else take
 * the state zone's caps if they are that generation; a buffer whose caps
 * were never seen (skipped records, an old record read from the oldest) is
 * dropped rather than sent out under the wrong caps. */
static gboolean
caps_known_for (GstDatahubSrc *self, dh_consumer *c, const dh_record *r)
{
  if (self->caps && r->info.caps_gen == self->caps_gen)
    return TRUE;
  /* generation 0: the producer never had caps (filesrc, fakesrc without a
   * capsfilter): its buffers go out without caps, as filesrc's do */
  if (r->info.caps_gen == 0 && !self->caps)
    return TRUE;
  guint gen;
  if (!read_stream_state (self, c, &gen) || gen != r->info.caps_gen || !self->caps) {
    self->unknown_caps++;
    self->discont = TRUE; /* dropped: a gap */
    GST_DEBUG_OBJECT (self, "record %" G_GUINT64_FORMAT " has caps generation %u, "
        "known %u: dropped", r->seq, r->info.caps_gen, gen);
    return FALSE;
  }
  return TRUE;
}

/* A late joiner of an encoded stream asks for a key frame and skips delta
 * units until one comes. */
static gboolean
wait_for_key_unit (GstDatahubSrc *self, dh_consumer *c, const dh_record *r)
{
  if (self->key_unit == KEY_UNIT_HAVE || self->is_raw)
    return FALSE;
  if (!(r->info.flags & GST_BUFFER_FLAG_DELTA_UNIT)) {
    self->key_unit = KEY_UNIT_HAVE;
    return FALSE;
  }
  if (self->key_unit == KEY_UNIT_WANT) {
    GST_INFO_OBJECT (self, "joined an encoded stream between key frames: asking for one");
    dh_consumer_request (c, DATAHUB_REQUEST_KEY_UNIT, NULL, 0);
    self->key_unit = KEY_UNIT_ASKED;
  }
  self->discont = TRUE; /* dropped: the key unit that comes is after a gap */
  return TRUE;
}

static void
note_latency (GstDatahubSrc *self, const dh_record *r)
{
  guint64 now = (guint64) g_get_monotonic_time () * 1000; /* CLOCK_MONOTONIC */
  GST_OBJECT_LOCK (self);
  datahub_latency_add (&self->latency, now > r->commit_ns ? now - r->commit_ns : 0);
  GST_OBJECT_UNLOCK (self);
}

/* 1 = *out is a buffer to push, 0 = read on, <0: a flow return to give. */
static int
take_record (GstDatahubSrc *self, DatahubConsumerRef *conn, const dh_record *r,
    GstBuffer **out)
{
  dh_consumer *c = conn->consumer;
  if (r->session != self->session && !new_session (self, c, r->session)) {
    dh_consumer_release (c, r);
    return GST_FLOW_NOT_NEGOTIATED;
  }
  if (r->info.kind == DATAHUB_KIND_EVENT) {
    GstFlowReturn ret = handle_event_record (self, r);
    dh_consumer_release (c, r);
    return ret == GST_FLOW_OK ? 0 : ret;
  }
  if (!caps_known_for (self, c, r) || wait_for_key_unit (self, c, r)) {
    dh_consumer_release (c, r);
    return 0;
  }
  note_latency (self, r);
  /* passthrough: after a gap (a lagging leaky src, latest-value reads of
   * a producer running faster than real time) the producer's timestamps
   * have run ahead of ours: place the next buffer at once again */
  if (self->mode == DATAHUB_TIMESTAMP_PASSTHROUGH && (r->lost_before > 0 || self->discont))
    datahub_timing_rebase (&self->timing);
  GstBuffer *buf = buffer_from_record (self, conn, r);
  if (!buf)
    return 0; /* latest-value record rewritten while copied: take the next */
  GstSegment seg;
  if (datahub_timing_stamp (&self->timing, GST_ELEMENT (self), buf, r, &seg))
    gst_base_src_new_segment (GST_BASE_SRC (self), &seg);
  *out = buf;
  return 1;
}

/* The producer went away (cleanly or not): say so and wait for the next
 * one (reconnect=true, the default), or fail. */
static GstFlowReturn
producer_gone (GstDatahubSrc *self, int rc)
{
  GST_OBJECT_LOCK (self);
  gboolean reconnect = self->reconnect;
  GST_OBJECT_UNLOCK (self);
  const gchar *what = rc == DH_ECLOSED ? "stopped" : "died";
  if (!reconnect) {
    GST_ELEMENT_ERROR (self, RESOURCE, READ, ("The producer %s.", what), ("reconnect=false"));
    return GST_FLOW_ERROR;
  }
  GST_ELEMENT_WARNING (self, RESOURCE, READ, ("The producer %s; waiting for a new one.",
          what), (NULL));
  if (self->broker)
    set_conn (self, NULL); /* a restart may use another block: ask the broker again */
  return GST_FLOW_OK;
}

static void
post_handover (GstDatahubSrc *self, const gchar *from, const gchar *to)
{
  GST_INFO_OBJECT (self, "followed the stream from %s to %s", from, to);
  gst_element_post_message (GST_ELEMENT (self), gst_message_new_element (GST_OBJECT (self),
          gst_structure_new ("datahub-handover", "from", G_TYPE_STRING, from,
              "to", G_TYPE_STRING, to, NULL)));
}

/* One read; GST_FLOW_CUSTOM_SUCCESS: nothing yet, read again. */
static GstFlowReturn
read_once (GstDatahubSrc *self, DatahubConsumerRef *conn, GstBuffer **out)
{
  dh_consumer *c = conn->consumer;
  gchar from[DH_NAME_MAX + 1];
  g_strlcpy (from, dh_consumer_shm_name (c), sizeof from);
  post_metadata_if_changed (self, c);
  dh_record r;
  int rc = dh_consumer_next (c, SLICE_MS, &r);
  GstFlowReturn ret = GST_FLOW_CUSTOM_SUCCESS;
  if (rc == 0) {
    int got = take_record (self, conn, &r, out);
    ret = got == 1 ? GST_FLOW_OK : got == 0 ? GST_FLOW_CUSTOM_SUCCESS : (GstFlowReturn) got;
  } else if (rc == -ECANCELED) {
    ret = GST_FLOW_FLUSHING;
  } else if (rc == DH_ECHECKSUM) {
    self->discont = TRUE; /* dropped: a gap */
    GST_ELEMENT_WARNING (self, STREAM, DECODE, ("A buffer failed its integrity check and "
            "was dropped."), ("%s", dh_error_detail ()));
  } else if (rc == DH_EHANDOVER) {
    post_handover (self, from, dh_consumer_shm_name (c));
  } else if (rc == DH_ECLOSED || rc == DH_EPRODUCERDEAD) {
    ret = producer_gone (self, rc);
    if (ret == GST_FLOW_OK)
      ret = GST_FLOW_CUSTOM_SUCCESS;
  } else if (rc != -ETIMEDOUT) {
    report_attach_error (self, dh_consumer_shm_name (c), rc);
    ret = GST_FLOW_ERROR;
  }
  return ret;
}

static GstFlowReturn
gst_datahub_src_create (GstPushSrc *ps, GstBuffer **out)
{
  GstDatahubSrc *self = GST_DATAHUB_SRC (ps);
  GST_OBJECT_LOCK (self);
  guint timeout = self->timeout_ms;
  GST_OBJECT_UNLOCK (self);
  GstClockTime waited_since = gst_util_get_timestamp ();
  for (;;) {
    GstFlowReturn ret;
    if (g_atomic_int_get (&self->flushing))
      return GST_FLOW_FLUSHING;
    if (!self->conn && (ret = connect_via_broker (self)) != GST_FLOW_OK)
      return ret;
    DatahubConsumerRef *conn = take_conn (self);
    if (!conn)
      return GST_FLOW_FLUSHING;
    ret = read_once (self, conn, out);
    datahub_consumer_unref (conn);
    if (ret != GST_FLOW_CUSTOM_SUCCESS)
      return ret;
    if (timeout && gst_util_get_timestamp () - waited_since > timeout * GST_MSECOND) {
      GST_ELEMENT_ERROR (self, RESOURCE, READ,
          ("No producer or no data on channel '%s' for %u ms.", self->broker_channel,
              timeout), (NULL));
      return GST_FLOW_ERROR;
    }
  }
}

/* ---- GstBaseSrc vfuncs -------------------------------------------------- */

/* The caps come from the producer (apply_caps), not from what downstream
 * would like: until they are known there is nothing to negotiate. */
static gboolean
gst_datahub_src_negotiate (GstBaseSrc *bs)
{
  GstDatahubSrc *self = GST_DATAHUB_SRC (bs);
  return self->caps ? gst_base_src_set_caps (bs, self->caps) : TRUE;
}

/* Downstream sees what the producer sends, once known. */
static GstCaps *
gst_datahub_src_get_caps (GstBaseSrc *bs, GstCaps *filter)
{
  GstDatahubSrc *self = GST_DATAHUB_SRC (bs);
  GST_OBJECT_LOCK (self);
  GstCaps *caps = self->caps ? gst_caps_ref (self->caps) : gst_caps_new_any ();
  GST_OBJECT_UNLOCK (self);
  if (filter) {
    GstCaps *tmp = gst_caps_intersect_full (filter, caps, GST_CAPS_INTERSECT_FIRST);
    gst_caps_unref (caps);
    caps = tmp;
  }
  return caps;
}

/* A live src: buffers stamped with the producer's due time arrive a little
 * after it; a frame's worth of latency lets syncing sinks render them on
 * time. */
static gboolean
gst_datahub_src_query (GstBaseSrc *bs, GstQuery *query)
{
  GstDatahubSrc *self = GST_DATAHUB_SRC (bs);
  if (GST_QUERY_TYPE (query) == GST_QUERY_LATENCY && gst_base_src_is_live (bs)) {
    GstClockTime min = GST_CLOCK_TIME_IS_VALID (self->frame_duration)
        ? self->frame_duration : DEFAULT_LATENCY;
    gst_query_set_latency (query, TRUE, min, GST_CLOCK_TIME_NONE);
    return TRUE;
  }
  return GST_BASE_SRC_CLASS (gst_datahub_src_parent_class)->query (bs, query);
}

/* Downstream asks upstream for a key frame, or sends a custom upstream
 * event: it goes to the producer's pipeline (rate-limited there). */
static gboolean
gst_datahub_src_event (GstBaseSrc *bs, GstEvent *event)
{
  GstDatahubSrc *self = GST_DATAHUB_SRC (bs);
  if (GST_EVENT_TYPE (event) == GST_EVENT_CUSTOM_UPSTREAM) {
    DatahubConsumerRef *conn = take_conn (self);
    if (conn) {
      if (gst_video_event_is_force_key_unit (event)) {
        dh_consumer_request (conn->consumer, DATAHUB_REQUEST_KEY_UNIT, NULL, 0);
      } else {
        gchar *text = gst_structure_to_string (gst_event_get_structure (event));
        if (dh_consumer_request (conn->consumer, DATAHUB_REQUEST_UPSTREAM, text,
                strlen (text) + 1) != 0)
          GST_WARNING_OBJECT (self, "upstream event not sent: %s", dh_error_detail ());
        g_free (text);
      }
      datahub_consumer_unref (conn);
      return TRUE;
    }
  }
  return GST_BASE_SRC_CLASS (gst_datahub_src_parent_class)->event (bs, event);
}

/* The block's figures and this consumer's (the stats property and the
 * datahub-stats message). */
static GstStructure *
stats_structure (GstDatahubSrc *self)
{
  DatahubConsumerRef *conn = take_conn (self);
  if (!conn)
    return gst_structure_new_empty ("datahub-stats");
  dh_metrics m;
  dh_consumer_stats st;
  if (dh_consumer_metrics (conn->consumer, &m) != 0)
    memset (&m, 0, sizeof m);
  dh_consumer_stats_get (conn->consumer, &st);
  datahub_consumer_unref (conn);
  GST_OBJECT_LOCK (self);
  DatahubLatency latency = self->latency;
  guint64 copied = self->bytes_copied, dropped = self->metas_dropped;
  guint64 slot = datahub_counted (&self->records_slot);
  guint64 dmabuf = datahub_counted (&self->records_dmabuf);
  guint64 fd = datahub_counted (&self->records_fd);
  guint64 fd_failures = self->fd_failures, fd_server = self->fd_server;
  guint64 fds = self->fd_client ? datahub_fd_client_received (self->fd_client) : 0;
  GST_OBJECT_UNLOCK (self);
  GstStructure *s = datahub_stats_from_metrics (&m, copied, &st, &latency);
  gst_structure_set (s, "metas-dropped", G_TYPE_UINT64, dropped,
      "records-slot", G_TYPE_UINT64, slot, "records-dmabuf", G_TYPE_UINT64, dmabuf,
      "records-fd", G_TYPE_UINT64, fd, "fds-received", G_TYPE_UINT64, fds,
      "fd-failures", G_TYPE_UINT64, fd_failures, NULL);
  if (fd_server) {
    gchar *name = g_strdup_printf ("@datahub-fd.%016" G_GINT64_MODIFIER "x", fd_server);
    gst_structure_set (s, "fd-socket", G_TYPE_STRING, name, NULL);
    g_free (name);
  }
  return s;
}

/* The ticker thread: stats and metadata, also while the streaming thread
 * waits for a producer or data. */
static void
tick (gpointer user)
{
  GstDatahubSrc *self = user;
  DatahubConsumerRef *conn = take_conn (self);
  if (!conn)
    return;
  post_metadata_if_changed (self, conn->consumer);
  GST_OBJECT_LOCK (self);
  guint interval = self->common.stats_interval;
  GST_OBJECT_UNLOCK (self);
  datahub_consumer_unref (conn);
  if (interval && datahub_stats_timer_due (&self->stats_timer, interval))
    gst_element_post_message (GST_ELEMENT (self), gst_message_new_element (GST_OBJECT (self),
            stats_structure (self)));
}

/* Whether this src is live: as set, or (by default) as the producer is,
 * when one is there now.  A src started before a live producer stays
 * non-live: it still plays at once (timestamp-mode=passthrough moves the
 * segment to now). */
static void
decide_liveness (GstDatahubSrc *self)
{
  GST_OBJECT_LOCK (self);
  gboolean decide = !self->is_live_set;
  GST_OBJECT_UNLOCK (self);
  if (!decide || !self->conn)
    return;
  int rc = dh_consumer_wait_attached (self->conn->consumer, 0);
  /* no producer yet: not live (also after a run that was) */
  gst_base_src_set_live (GST_BASE_SRC (self),
      rc == 0 && dh_consumer_producer_live (self->conn->consumer));
}

static gboolean gst_datahub_src_stop (GstBaseSrc *bs);

/* READY -> PAUSED, before the base class: whether we are live must be
 * known before it decides to preroll or not (it does so before start()). */
static gboolean
prepare (GstDatahubSrc *self)
{
  GstBaseSrc *bs = GST_BASE_SRC (self);
  if (!datahub_discovery_connect (GST_ELEMENT (self), &self->common, &self->broker))
    return FALSE;
  GST_OBJECT_LOCK (self);
  self->broker_channel = g_strdup (self->common.channel);
  self->expected_schema = self->schema && *self->schema ? g_strdup (self->schema) : NULL;
  self->mode = self->ts_mode;
  self->copy_always = self->copy;
  self->held_limit = self->max_held;
  gchar *name = datahub_common_name (&self->common);
  GST_OBJECT_UNLOCK (self);
  self->keeping_alive = FALSE;
  self->records = datahub_record_pool_new ();
  self->fd_client = datahub_fd_client_new ();
  self->fd_server = 0;
  self->dmabuf_allocator = gst_dmabuf_allocator_new ();
  self->fd_allocator = gst_fd_allocator_new ();
  if (self->broker)
    dhb_client_subscribe (self->broker, self->broker_channel, on_broker_event, self);
  g_atomic_int_set (&self->flushing, 0);
  self->session = 0;
  self->caps_gen = 0;
  self->unknown_caps = 0;
  self->bytes_copied = 0;
  self->metas_dropped = 0;
  datahub_count_reset (&self->records_slot);
  datahub_count_reset (&self->records_dmabuf);
  datahub_count_reset (&self->records_fd);
  self->fd_failures = 0;
  self->fd_warned = FALSE;
  self->layout_warned = FALSE;
  memset (&self->latency, 0, sizeof self->latency);
  datahub_stats_timer_init (&self->stats_timer);
  /* registered from now on: a producer that starts later counts us */
  gboolean ok = self->broker || open_consumer (self, name);
  g_free (name);
  if (!ok) {
    gst_datahub_src_stop (bs);
    return FALSE;
  }
  decide_liveness (self);
  if (self->mode == DATAHUB_TIMESTAMP_AUTO)
    self->mode = gst_base_src_is_live (bs) ? DATAHUB_TIMESTAMP_CLOCK
        : DATAHUB_TIMESTAMP_PASSTHROUGH;
  datahub_timing_restart (&self->timing, self->mode);
  datahub_ticker_start (&self->ticker, "datahubsrc-tick", TICK_MS, tick, self);
  return TRUE;
}

static GstStateChangeReturn
gst_datahub_src_change_state (GstElement *element, GstStateChange transition)
{
  GstDatahubSrc *self = GST_DATAHUB_SRC (element);
  if (transition == GST_STATE_CHANGE_READY_TO_PAUSED && !prepare (self))
    return GST_STATE_CHANGE_FAILURE;
  GstStateChangeReturn ret = GST_ELEMENT_CLASS (gst_datahub_src_parent_class)->change_state (
      element, transition);
  if (transition == GST_STATE_CHANGE_READY_TO_PAUSED && ret == GST_STATE_CHANGE_FAILURE)
    gst_datahub_src_stop (GST_BASE_SRC (self));
  return ret;
}

static gboolean
gst_datahub_src_stop (GstBaseSrc *bs)
{
  GstDatahubSrc *self = GST_DATAHUB_SRC (bs);
  datahub_ticker_stop (&self->ticker);
  set_conn (self, NULL);
  GST_OBJECT_LOCK (self);
  gst_caps_replace (&self->caps, NULL);
  GST_OBJECT_UNLOCK (self);
  if (self->records) {
    /* buffers still downstream come back to an inactive pool: freed then,
     * releasing their holds */
    gst_buffer_pool_set_active (self->records, FALSE);
    gst_clear_object (&self->records);
  }
  /* fd memories already downstream own fds of their own */
  GST_OBJECT_LOCK (self);
  DatahubFdClient *fd_client = self->fd_client;
  self->fd_client = NULL;
  GST_OBJECT_UNLOCK (self);
  datahub_fd_client_free (fd_client);
  forget_fd_parents (self);
  self->fd_server = 0;
  sodium_memzero (&self->fd_zone, sizeof self->fd_zone);
  gst_clear_object (&self->dmabuf_allocator);
  gst_clear_object (&self->fd_allocator);
  if (self->broker) {
    if (self->keeping_alive) /* producers hear "consumer-drop" now */
      dhb_deregister (self->broker, self->broker_channel, 1, SLICE_MS);
    dhb_client_free (self->broker);
    self->broker = NULL;
  }
  g_clear_pointer (&self->broker_channel, g_free);
  g_clear_pointer (&self->expected_schema, g_free);
  g_clear_pointer (&self->discovered_shm, g_free);
  self->discovered_pid = 0;
  return TRUE;
}

static gboolean
gst_datahub_src_unlock (GstBaseSrc *bs)
{
  GstDatahubSrc *self = GST_DATAHUB_SRC (bs);
  g_atomic_int_set (&self->flushing, TRUE);
  GST_OBJECT_LOCK (self);
  if (self->conn)
    dh_consumer_wakeup (self->conn->consumer);
  GST_OBJECT_UNLOCK (self);
  return TRUE;
}

static gboolean
gst_datahub_src_unlock_stop (GstBaseSrc *bs)
{
  GstDatahubSrc *self = GST_DATAHUB_SRC (bs);
  g_atomic_int_set (&self->flushing, FALSE);
  GST_OBJECT_LOCK (self);
  if (self->conn)
    dh_consumer_clear_wakeup (self->conn->consumer);
  GST_OBJECT_UNLOCK (self);
  return TRUE;
}

/* ---- properties ---------------------------------------------------------- */

static void
gst_datahub_src_set_property (GObject *object, guint prop_id, const GValue *value,
    GParamSpec *pspec)
{
  GstDatahubSrc *self = GST_DATAHUB_SRC (object);
  if (prop_id == PROP_IS_LIVE) {
    gst_base_src_set_live (GST_BASE_SRC (self), g_value_get_boolean (value));
    GST_OBJECT_LOCK (self);
    self->is_live_set = TRUE;
    GST_OBJECT_UNLOCK (self);
    return;
  }
  GST_OBJECT_LOCK (self);
  if (datahub_common_set_property (&self->common, prop_id, value)) {
    GST_OBJECT_UNLOCK (self);
    return;
  }
  switch (prop_id) {
    case PROP_START:
      self->start = g_value_get_enum (value);
      break;
    case PROP_LEAKY:
      self->leaky = g_value_get_enum (value);
      break;
    case PROP_TIMEOUT:
      self->timeout_ms = g_value_get_uint (value);
      break;
    case PROP_RECONNECT:
      self->reconnect = g_value_get_boolean (value);
      break;
    case PROP_TIMESTAMP_MODE:
      self->ts_mode = g_value_get_enum (value);
      break;
    case PROP_MAX_HELD_SLOTS:
      self->max_held = g_value_get_uint (value);
      break;
    case PROP_COPY:
      self->copy = g_value_get_boolean (value);
      break;
    case PROP_SCHEMA:
      g_free (self->schema);
      self->schema = g_value_dup_string (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_datahub_src_get_property (GObject *object, guint prop_id, GValue *value,
    GParamSpec *pspec)
{
  GstDatahubSrc *self = GST_DATAHUB_SRC (object);
  switch (prop_id) {
    case PROP_IS_LIVE:
      g_value_set_boolean (value, gst_base_src_is_live (GST_BASE_SRC (self)));
      return;
    case DATAHUB_PROP_STATS:
      g_value_take_boxed (value, stats_structure (self));
      return;
    default:
      break;
  }
  GST_OBJECT_LOCK (self);
  if (datahub_common_get_property (&self->common, prop_id, value)) {
    GST_OBJECT_UNLOCK (self);
    return;
  }
  switch (prop_id) {
    case PROP_START:
      g_value_set_enum (value, self->start);
      break;
    case PROP_LEAKY:
      g_value_set_enum (value, self->leaky);
      break;
    case PROP_TIMEOUT:
      g_value_set_uint (value, self->timeout_ms);
      break;
    case PROP_RECONNECT:
      g_value_set_boolean (value, self->reconnect);
      break;
    case PROP_TIMESTAMP_MODE:
      g_value_set_enum (value, self->ts_mode);
      break;
    case PROP_MAX_HELD_SLOTS:
      g_value_set_uint (value, self->max_held);
      break;
    case PROP_COPY:
      g_value_set_boolean (value, self->copy);
      break;
    case PROP_METADATA:
      gst_value_set_structure (value, self->metadata);
      break;
    case PROP_SCHEMA:
      g_value_set_string (value, self->schema);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_datahub_src_finalize (GObject *object)
{
  GstDatahubSrc *self = GST_DATAHUB_SRC (object);
  datahub_ticker_clear (&self->ticker);
  g_mutex_clear (&self->metadata_lock);
  forget_fd_parents (self);
  g_hash_table_unref (self->fd_parents);
  datahub_common_clear (&self->common);
  if (self->metadata)
    gst_structure_free (self->metadata);
  g_free (self->schema);
  G_OBJECT_CLASS (gst_datahub_src_parent_class)->finalize (object);
}

static void
gst_datahub_src_class_init (GstDatahubSrcClass *klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseSrcClass *bs_class = GST_BASE_SRC_CLASS (klass);
  const GParamFlags rw = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY;

  gobject_class->set_property = gst_datahub_src_set_property;
  gobject_class->get_property = gst_datahub_src_get_property;
  gobject_class->finalize = gst_datahub_src_finalize;

  datahub_install_common_properties (gobject_class);
  g_object_class_install_property (gobject_class, PROP_START,
      g_param_spec_enum ("start", "Start", "Where a src that joins a running stream starts "
          "(a src started before the producer gets everything from the first buffer)",
          DATAHUB_TYPE_START, DEFAULT_START, rw));
  g_object_class_install_property (gobject_class, PROP_LEAKY,
      g_param_spec_enum ("leaky", "Leaky",
          "May this src hold the producer back when it lags?  auto: only a producer that "
          "is not live (a file: nothing is lost); a live producer is never held back and "
          "this src skips ahead, counting what it lost.  no: always (a recorder of a "
          "live source).  yes: never", DATAHUB_TYPE_LEAKY, DEFAULT_LEAKY, rw));
  g_object_class_install_property (gobject_class, PROP_TIMEOUT,
      g_param_spec_uint ("timeout", "Timeout",
          "Fail after this many ms without a producer or data (0 = wait forever)",
          0, G_MAXUINT, DEFAULT_TIMEOUT, rw));
  g_object_class_install_property (gobject_class, PROP_RECONNECT,
      g_param_spec_boolean ("reconnect", "Reconnect",
          "When the producer stops or dies, wait for a new one instead of failing",
          TRUE, rw));
  g_object_class_install_property (gobject_class, PROP_IS_LIVE,
      g_param_spec_boolean ("is-live", "Is live",
          "Act as a live source; unset, this src is live when the producer it finds at "
          "start is", FALSE, rw));
  g_object_class_install_property (gobject_class, PROP_TIMESTAMP_MODE,
      g_param_spec_enum ("timestamp-mode", "Timestamp mode",
          "How buffers are timestamped", DATAHUB_TYPE_TIMESTAMP_MODE,
          DEFAULT_TIMESTAMP_MODE, rw));
  g_object_class_install_property (gobject_class, PROP_MAX_HELD_SLOTS,
      g_param_spec_uint ("max-held-slots", "Max held slots",
          "Zero-copy buffers alive at once; beyond this (or what the producer grants), "
          "buffers are copied so a slow downstream cannot stall the producer; 0 = always copy",
          0, 63,
          DEFAULT_MAX_HELD, rw));
  g_object_class_install_property (gobject_class, PROP_COPY,
      g_param_spec_boolean ("copy", "Copy", "Always copy buffers out of shared memory",
          FALSE, rw));
  g_object_class_install_property (gobject_class, PROP_METADATA,
      g_param_spec_boxed ("metadata", "Metadata",
          "Latest application metadata set on the sink (read-only)",
          GST_TYPE_STRUCTURE, G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));
  g_object_class_install_property (gobject_class, PROP_SCHEMA,
      g_param_spec_string ("schema", "Schema",
          "With a broker: the schema the producer must have, as the media type and "
          "format of its caps (e.g. video/x-raw,format=RGBA); another one fails with "
          "a schema error (empty = any)", NULL, rw));

  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class, "Datahub source",
      "Source/Network", "Reads buffers from a datahub shared-memory channel: slot memory or the "
      "producer's DMA-BUF and memfd file descriptors, without a copy, with caps, "
      "timestamps, frame layouts and metas",
      "datahub developers");

  element_class->change_state = GST_DEBUG_FUNCPTR (gst_datahub_src_change_state);
  bs_class->stop = GST_DEBUG_FUNCPTR (gst_datahub_src_stop);
  bs_class->unlock = GST_DEBUG_FUNCPTR (gst_datahub_src_unlock);
  bs_class->unlock_stop = GST_DEBUG_FUNCPTR (gst_datahub_src_unlock_stop);
  bs_class->negotiate = GST_DEBUG_FUNCPTR (gst_datahub_src_negotiate);
  bs_class->get_caps = GST_DEBUG_FUNCPTR (gst_datahub_src_get_caps);
  bs_class->query = GST_DEBUG_FUNCPTR (gst_datahub_src_query);
  bs_class->event = GST_DEBUG_FUNCPTR (gst_datahub_src_event);
  GST_PUSH_SRC_CLASS (klass)->create = GST_DEBUG_FUNCPTR (gst_datahub_src_create);

  gst_type_mark_as_plugin_api (DATAHUB_TYPE_START, 0);
  gst_type_mark_as_plugin_api (DATAHUB_TYPE_LEAKY, 0);
  gst_type_mark_as_plugin_api (DATAHUB_TYPE_TIMESTAMP_MODE, 0);
  GST_DEBUG_CATEGORY_INIT (datahub_src_debug, "datahubsrc", 0, "datahub source");
}

static void
gst_datahub_src_init (GstDatahubSrc *self)
{
  datahub_common_init (&self->common);
  self->start = DEFAULT_START;
  self->leaky = DEFAULT_LEAKY;
  self->reconnect = TRUE;
  self->max_held = DEFAULT_MAX_HELD;
  self->ts_mode = DEFAULT_TIMESTAMP_MODE;
  self->frame_duration = GST_CLOCK_TIME_NONE;
  g_mutex_init (&self->metadata_lock);
  self->fd_parents = g_hash_table_new_full (g_int64_hash, g_int64_equal, NULL, fd_parent_free);
  g_queue_init (&self->fd_parent_order);
  datahub_ticker_init (&self->ticker);
  gst_base_src_set_format (GST_BASE_SRC (self), GST_FORMAT_TIME);
}
