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
 * ## Example launch lines
 * |[
 * gst-launch-1.0 datahubsrc channel=cam0 ! videoconvert ! autovideosink
 * gst-launch-1.0 datahubsrc channel=cam0 leaky=true ! fakesink
 * ]|
 */
#include "gstdatahubsrc.h"

#include <string.h>

#include <gst/video/video.h>

#include "datahub-enums.h"
#include "datahub-common.h"
#include "datahub-discovery.h"
#include "datahub-record-pool.h"
#include "datahub-wire.h"

GST_DEBUG_CATEGORY_STATIC (datahub_src_debug);
#define GST_CAT_DEFAULT datahub_src_debug

#define DEFAULT_START DH_START_LATEST
#define DEFAULT_TIMEOUT 0
#define DEFAULT_MAX_HELD 4
#define DEFAULT_TIMESTAMP_MODE DATAHUB_TIMESTAMP_AUTO
/* how long one attach attempt or one wait lasts before flushing and
 * timeouts are checked again */
#define SLICE_MS 100

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
  gboolean leaky, reconnect, copy;
  guint timeout_ms, max_held;
  DatahubTimestampMode ts_mode;
  GstStructure *metadata;
  gchar *schema;

  /* streaming state */
  DatahubConsumerRef *conn;
  gboolean flushing;
  guint64 session;
  GstCaps *caps;
  GstVideoInfo vinfo;
  gboolean is_video;
  uint64_t metadata_version;
  guint64 bytes_copied;
  DatahubStatsTimer stats_timer;
  DatahubLatency latency;  /* commit -> received, last buffers */
  /* the READY-mutable settings the streaming thread needs per buffer,
   * taken once in start(): no lock per buffer */
  DatahubTimestampMode mode;
  gboolean copy_always;
  guint held_limit;
  GstBufferPool *records;  /* buffers wrapping held records (start..stop) */
  /* broker: set in start(), used by the streaming thread */
  dhb_client *broker;
  gchar *broker_channel, *expected_schema;
  gboolean keeping_alive;
  gchar *discovered_shm;   /* what datahub-discovered last said */
  gint64 discovered_pid;
};

G_DEFINE_TYPE (GstDatahubSrc, gst_datahub_src, GST_TYPE_PUSH_SRC);
GST_ELEMENT_REGISTER_DEFINE (datahubsrc, "datahubsrc", GST_RANK_NONE,
    GST_TYPE_DATAHUB_SRC);

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS_ANY);

/* ---- attaching ------------------------------------------------------------ */

static gboolean
apply_caps (GstDatahubSrc *self, GstCaps *caps)
{
  if (self->caps && gst_caps_is_equal (self->caps, caps))
    return TRUE;
  gst_caps_replace (&self->caps, caps);
  self->is_video = gst_video_info_from_caps (&self->vinfo, caps);
  GST_DEBUG_OBJECT (self, "caps %" GST_PTR_FORMAT, caps);
  return gst_base_src_set_caps (GST_BASE_SRC (self), caps);
}

static DatahubTimestampMode
effective_ts_mode (GstDatahubSrc *self)
{
  return self->mode;
}

/* A late joiner has missed the caps and segment records: take them from
 * the stream-state zone. */
static gboolean
read_stream_state (GstDatahubSrc *self)
{
  gchar buf[DATAHUB_ZONE_STREAM_SIZE];
  size_t len = 0;
  if (dh_consumer_zone_read (self->conn->consumer, DATAHUB_ZONE_STREAM, buf,
          sizeof buf - 1, &len, NULL) != 0 || len == 0)
    return TRUE;
  buf[len] = '\0';
  guint gen;
  GstCaps *caps = NULL;
  GstSegment seg;
  if (!datahub_wire_state_from_string (buf, &gen, &caps, &seg))
    return TRUE;
  gboolean ok = TRUE;
  if (caps) {
    ok = apply_caps (self, caps);
    gst_caps_unref (caps);
  }
  if (ok && effective_ts_mode (self) == DATAHUB_TIMESTAMP_PASSTHROUGH
      && seg.format == GST_FORMAT_TIME)
    gst_base_src_new_segment (GST_BASE_SRC (self), &seg);
  return ok;
}

static void
post_metadata_if_changed (GstDatahubSrc *self)
{
  uint64_t v = dh_consumer_zone_version (self->conn->consumer, DATAHUB_ZONE_METADATA);
  if (v == self->metadata_version)
    return;
  gchar buf[DATAHUB_ZONE_METADATA_SIZE];
  size_t len = 0;
  if (dh_consumer_zone_read (self->conn->consumer, DATAHUB_ZONE_METADATA, buf,
          sizeof buf - 1, &len, &v) != 0)
    return;
  self->metadata_version = v;
  if (len == 0)
    return;
  buf[len] = '\0';
  GstStructure *md = gst_structure_from_string (buf, NULL);
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

static void
report_attach_error (GstDatahubSrc *self, const gchar *name, int rc)
{
  if (rc == DH_ESECRET)
    GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ,
        ("Wrong or missing secret for channel '%s'.", name), ("%s", dh_error_detail ()));
  else if (rc == DH_EVERSION)
    GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ,
        ("The producer of '%s' uses another datahub layout version; upgrade both sides.",
            name), ("%s", dh_error_detail ()));
  else if (rc == -EACCES)
    GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ,
        ("Permission denied on the shared memory of '%s' (see the sink's perms).", name),
        ("%s", dh_error_detail ()));
  else
    GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ,
        ("Could not attach to channel '%s': %s.", name, dh_strerror (rc)),
        ("%s", dh_error_detail ()));
}

/* Asks the broker which block serves the channel.  Returns FLOW_OK with
 * *@name set, FLOW_CUSTOM_SUCCESS when there is no producer (yet; retry),
 * or FLOW_ERROR for a refusal, which is posted. */
static GstFlowReturn
discover (GstDatahubSrc *self, const guint8 *secret, gchar **name)
{
  dhb_discovery d;
  dhb_status st = dhb_discover (self->broker, self->broker_channel, secret,
      self->expected_schema, SLICE_MS, &d);
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
  g_free (*name);
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

/* Attaches, waiting for a producer (of a session other than @avoid_session,
 * after a producer died).  Returns FLOW_OK, FLUSHING or ERROR. */
static GstFlowReturn
attach (GstDatahubSrc *self, guint64 avoid_session, const gchar *successor)
{
  dh_consumer_config cc;
  dh_consumer_config_init (&cc);
  guint8 secret[DH_SECRET_SIZE];
  GST_OBJECT_LOCK (self);
  gchar *name = successor ? g_strdup (successor) : datahub_common_name (&self->common);
  cc.leaky = self->leaky;
  /* a successor block is read from its first record: nothing is lost */
  cc.start = successor ? DH_START_OLDEST : self->start;
  guint timeout = self->timeout_ms;
  if (datahub_common_secret (&self->common, secret))
    cc.secret = secret;
  GST_OBJECT_UNLOCK (self);
  cc.attach_timeout_ms = SLICE_MS;
  GstClockTime started = gst_util_get_timestamp ();
  GstFlowReturn ret = GST_FLOW_OK;
  for (;;) {
    if (g_atomic_int_get (&self->flushing)) {
      ret = GST_FLOW_FLUSHING;
      break;
    }
    /* with a broker the block is looked up every time: a restarted
     * producer may serve the channel from another block */
    int rc = -ENOENT;
    GstFlowReturn found = self->broker && !successor
        ? discover (self, cc.secret, &name) : GST_FLOW_OK;
    if (found == GST_FLOW_ERROR) {
      ret = GST_FLOW_ERROR;
      break;
    }
    cc.name = name;
    dh_consumer *c = NULL;
    if (found == GST_FLOW_OK)
      rc = dh_consumer_attach (&cc, &c);
    if (rc == 0 && dh_consumer_session_id (c) == avoid_session) {
      dh_consumer_detach (c); /* still the dead producer's block */
      g_usleep (10000);
      rc = -ENOENT;
    } else if (rc == 0) {
      self->conn = datahub_consumer_ref_new (c);
      self->session = dh_consumer_session_id (c);
      self->metadata_version = 0;
      GST_INFO_OBJECT (self, "attached to %s", dh_consumer_shm_name (c));
      break;
    }
    if (rc != -ENOENT && rc != DH_ENOTREADY && rc != -ETIMEDOUT) {
      report_attach_error (self, name, rc);
      ret = GST_FLOW_ERROR;
      break;
    }
    if (timeout && gst_util_get_timestamp () - started > timeout * GST_MSECOND) {
      GST_ELEMENT_ERROR (self, RESOURCE, NOT_FOUND,
          ("No producer on channel '%s' after %u ms.", name, timeout),
          ("%s", dh_error_detail ()));
      ret = GST_FLOW_ERROR;
      break;
    }
  }
  g_free (name);
  if (ret == GST_FLOW_OK && !read_stream_state (self))
    ret = GST_FLOW_NOT_NEGOTIATED;
  return ret;
}

static void
drop_connection (GstDatahubSrc *self)
{
  datahub_consumer_unref (self->conn);
  self->conn = NULL;
}

/* ---- turning records into events and buffers ------------------------------ */

/* Returns GST_FLOW_OK to continue reading, or EOS/an error to stop. */
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
    GST_WARNING_OBJECT (self, "could not rebuild event from '%s'", text);
    return GST_FLOW_OK;
  }
  GstFlowReturn ret = GST_FLOW_OK;
  switch (type) {
    case GST_EVENT_CAPS: {
      GstCaps *caps;
      gst_event_parse_caps (e, &caps);
      if (!apply_caps (self, caps))
        ret = GST_FLOW_NOT_NEGOTIATED;
      gst_event_unref (e);
      break;
    }
    case GST_EVENT_SEGMENT:
      if (effective_ts_mode (self) == DATAHUB_TIMESTAMP_PASSTHROUGH) {
        const GstSegment *seg;
        gst_event_parse_segment (e, &seg);
        if (seg->format == GST_FORMAT_TIME)
          gst_base_src_new_segment (GST_BASE_SRC (self), seg);
      }
      gst_event_unref (e);
      break;
    case GST_EVENT_EOS:
      gst_event_unref (e);
      ret = GST_FLOW_EOS;
      break;
    case GST_EVENT_STREAM_START:
      gst_event_unref (e); /* basesrc sends its own */
      break;
    default:
      gst_pad_push_event (GST_BASE_SRC_PAD (self), e);
      break;
  }
  return ret;
}

static void
set_timestamps (GstDatahubSrc *self, GstBuffer *buf, const dh_record *r)
{
  GstClockTime base = GST_ELEMENT_CAST (self)->base_time;
  switch (effective_ts_mode (self)) {
    case DATAHUB_TIMESTAMP_CLOCK: {
      gint64 due = (gint64) r->info.user[0];
      if (due >= 0 && (GstClockTime) due >= base)
        GST_BUFFER_PTS (buf) = (GstClockTime) due - base;
      else
        GST_BUFFER_PTS (buf) = GST_CLOCK_TIME_NONE;
      GST_BUFFER_DTS (buf) = GST_CLOCK_TIME_NONE;
      break;
    }
    case DATAHUB_TIMESTAMP_ARRIVAL: {
      GstClock *clock = gst_element_get_clock (GST_ELEMENT (self));
      GST_BUFFER_PTS (buf) = clock ? gst_clock_get_time (clock) - base : GST_CLOCK_TIME_NONE;
      GST_BUFFER_DTS (buf) = GST_CLOCK_TIME_NONE;
      if (clock)
        gst_object_unref (clock);
      break;
    }
    default:
      GST_BUFFER_PTS (buf) = r->info.pts >= 0 ? (GstClockTime) r->info.pts : GST_CLOCK_TIME_NONE;
      GST_BUFFER_DTS (buf) = r->info.dts >= 0 ? (GstClockTime) r->info.dts : GST_CLOCK_TIME_NONE;
      break;
  }
  GST_BUFFER_DURATION (buf) = r->info.duration >= 0 ? (GstClockTime) r->info.duration
      : GST_CLOCK_TIME_NONE;
  GST_BUFFER_OFFSET (buf) = r->info.offset;
  GST_BUFFER_OFFSET_END (buf) = r->info.offset_end;
}

/* The default layout of the caps as a video meta, or none.  A pool buffer
 * keeps its meta (POOLED) and gets it updated in place: no allocation. */
static void
set_video_meta (GstDatahubSrc *self, GstBuffer *buf, gboolean wanted)
{
  GstVideoMeta *meta = gst_buffer_get_video_meta (buf);
  if (!self->is_video || !wanted) {
    if (meta)
      gst_buffer_remove_meta (buf, (GstMeta *) meta);
    return;
  }
  const GstVideoInfo *vi = &self->vinfo;
  if (!meta) {
    meta = gst_buffer_add_video_meta_full (buf, GST_VIDEO_FRAME_FLAG_NONE,
        GST_VIDEO_INFO_FORMAT (vi), GST_VIDEO_INFO_WIDTH (vi), GST_VIDEO_INFO_HEIGHT (vi),
        GST_VIDEO_INFO_N_PLANES (vi), (gsize *) vi->offset, (gint *) vi->stride);
    GST_META_FLAG_SET (meta, GST_META_FLAG_POOLED);
    return;
  }
  meta->flags = GST_VIDEO_FRAME_FLAG_NONE;
  meta->format = GST_VIDEO_INFO_FORMAT (vi);
  meta->width = GST_VIDEO_INFO_WIDTH (vi);
  meta->height = GST_VIDEO_INFO_HEIGHT (vi);
  meta->n_planes = GST_VIDEO_INFO_N_PLANES (vi);
  memcpy (meta->offset, vi->offset, sizeof meta->offset);
  memcpy (meta->stride, vi->stride, sizeof meta->stride);
}

static GstBuffer *
buffer_from_record (GstDatahubSrc *self, const dh_record *r)
{
  dh_consumer_stats st;
  dh_consumer_stats_get (self->conn->consumer, &st);
  gboolean copy = self->copy_always || st.held > self->held_limit;
  guint64 now = (guint64) g_get_monotonic_time () * 1000; /* CLOCK_MONOTONIC */
  datahub_latency_add (&self->latency, now > r->commit_ns ? now - r->commit_ns : 0);
  /* the pool only fails when inactive, outside start..stop: copy then */
  GstBuffer *buf = copy ? NULL : datahub_record_pool_wrap (self->records, self->conn, r);
  if (!buf) {
    buf = gst_buffer_new_memdup (r->data, r->info.size);
    self->bytes_copied += r->info.size;
    dh_consumer_release (self->conn->consumer, r);
  }
  /* flags the producer set (delta unit, discont, ...), minus the ones that
   * describe memory on the other side */
  GST_BUFFER_FLAGS (buf) = r->info.flags & ~(GST_BUFFER_FLAG_TAG_MEMORY);
  set_timestamps (self, buf, r);
  set_video_meta (self, buf, r->info.size == self->vinfo.size);
  return buf;
}

static void
maybe_post_stats (GstDatahubSrc *self)
{
  GST_OBJECT_LOCK (self);
  guint interval = self->common.stats_interval;
  GST_OBJECT_UNLOCK (self);
  if (!interval || !datahub_stats_timer_due (&self->stats_timer, interval))
    return;
  dh_metrics m;
  dh_consumer_stats st;
  dh_consumer_metrics (self->conn->consumer, &m);
  dh_consumer_stats_get (self->conn->consumer, &st);
  gst_element_post_message (GST_ELEMENT (self), gst_message_new_element (GST_OBJECT (self),
          datahub_stats_from_metrics (&m, self->bytes_copied, &st, &self->latency)));
}

/* The producer went away: reattach (reconnect=true) or fail. */
static GstFlowReturn
producer_gone (GstDatahubSrc *self, int rc)
{
  GST_OBJECT_LOCK (self);
  gboolean reconnect = self->reconnect;
  GST_OBJECT_UNLOCK (self);
  guint64 session = self->session;
  drop_connection (self);
  if (!reconnect) {
    GST_ELEMENT_ERROR (self, RESOURCE, READ, ("The producer stopped (%s).",
            dh_strerror (rc)), ("reconnect=false"));
    return GST_FLOW_ERROR;
  }
  GST_ELEMENT_WARNING (self, RESOURCE, READ,
      ("The producer stopped (%s); waiting for a new one.", dh_strerror (rc)), (NULL));
  return attach (self, session, NULL);
}

/* The producer moved to a block with larger slots: everything here was
 * read, continue there. */
static GstFlowReturn
follow_handover (GstDatahubSrc *self)
{
  char next[DH_NAME_MAX + 1];
  int rc = dh_consumer_successor (self->conn->consumer, next, sizeof next);
  if (rc != 0) {
    GST_ELEMENT_ERROR (self, RESOURCE, READ, ("Handover without a successor."),
        ("%s", dh_error_detail ()));
    return GST_FLOW_ERROR;
  }
  gchar *from = g_strdup (dh_consumer_shm_name (self->conn->consumer));
  drop_connection (self);
  GstFlowReturn ret = attach (self, 0, next);
  if (ret == GST_FLOW_OK)
    gst_element_post_message (GST_ELEMENT (self), gst_message_new_element (
            GST_OBJECT (self), gst_structure_new ("datahub-handover", "from",
                G_TYPE_STRING, from, "to", G_TYPE_STRING, next, NULL)));
  g_free (from);
  return ret;
}

static GstFlowReturn
gst_datahub_src_create (GstPushSrc *ps, GstBuffer **out)
{
  GstDatahubSrc *self = GST_DATAHUB_SRC (ps);
  GstFlowReturn ret;
  if (!self->conn && (ret = attach (self, 0, NULL)) != GST_FLOW_OK)
    return ret;
  GST_OBJECT_LOCK (self);
  guint timeout = self->timeout_ms;
  GST_OBJECT_UNLOCK (self);
  GstClockTime waited_since = gst_util_get_timestamp ();
  for (;;) {
    post_metadata_if_changed (self);
    dh_record r;
    int rc = dh_consumer_next (self->conn->consumer, SLICE_MS, &r);
    if (rc == -ETIMEDOUT) {
      if (timeout && gst_util_get_timestamp () - waited_since > timeout * GST_MSECOND) {
        GST_ELEMENT_ERROR (self, RESOURCE, READ, ("No data for %u ms.", timeout),
            (NULL));
        return GST_FLOW_ERROR;
      }
      continue;
    }
    if (rc == -ECANCELED)
      return GST_FLOW_FLUSHING;
    if (rc == DH_ECHECKSUM) {
      GST_ELEMENT_WARNING (self, STREAM, DECODE, ("A buffer failed its integrity "
              "check and was dropped."), ("%s", dh_error_detail ()));
      continue;
    }
    if (rc == DH_EHANDOVER) {
      if ((ret = follow_handover (self)) != GST_FLOW_OK)
        return ret;
      continue;
    }
    if (rc == DH_EPRODUCERDEAD || rc == DH_ECLOSED) {
      if ((ret = producer_gone (self, rc)) != GST_FLOW_OK)
        return ret;
      continue;
    }
    if (rc != 0) {
      GST_ELEMENT_ERROR (self, RESOURCE, READ, ("Reading failed: %s.", dh_strerror (rc)),
          ("%s", dh_error_detail ()));
      return GST_FLOW_ERROR;
    }
    waited_since = gst_util_get_timestamp ();
    if (r.info.kind == DATAHUB_KIND_EVENT) {
      ret = handle_event_record (self, &r);
      dh_consumer_release (self->conn->consumer, &r);
      if (ret != GST_FLOW_OK)
        return ret;
      continue;
    }
    if (!self->caps && !read_stream_state (self)) {
      dh_consumer_release (self->conn->consumer, &r);
      return GST_FLOW_NOT_NEGOTIATED;
    }
    *out = buffer_from_record (self, &r);
    maybe_post_stats (self);
    return GST_FLOW_OK;
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
  GstCaps *caps = self->caps ? gst_caps_ref (self->caps) : gst_caps_new_any ();
  if (filter) {
    GstCaps *tmp = gst_caps_intersect_full (filter, caps, GST_CAPS_INTERSECT_FIRST);
    gst_caps_unref (caps);
    caps = tmp;
  }
  return caps;
}

static gboolean
gst_datahub_src_start (GstBaseSrc *bs)
{
  GstDatahubSrc *self = GST_DATAHUB_SRC (bs);
  if (!datahub_discovery_connect (GST_ELEMENT (self), &self->common, &self->broker))
    return FALSE;
  GST_OBJECT_LOCK (self);
  self->broker_channel = g_strdup (self->common.channel);
  self->expected_schema = self->schema && *self->schema ? g_strdup (self->schema) : NULL;
  GST_OBJECT_UNLOCK (self);
  self->keeping_alive = FALSE;
  self->records = datahub_record_pool_new ();
  if (self->broker)
    dhb_client_subscribe (self->broker, self->broker_channel, on_broker_event, self);
  self->flushing = FALSE;
  self->session = 0;
  self->bytes_copied = 0;
  memset (&self->latency, 0, sizeof self->latency);
  datahub_stats_timer_init (&self->stats_timer);
  GST_OBJECT_LOCK (self);
  self->mode = self->ts_mode;
  self->copy_always = self->copy;
  self->held_limit = self->max_held;
  GST_OBJECT_UNLOCK (self);
  if (self->mode == DATAHUB_TIMESTAMP_AUTO)
    self->mode = gst_base_src_is_live (bs) ? DATAHUB_TIMESTAMP_CLOCK
        : DATAHUB_TIMESTAMP_PASSTHROUGH;
  return TRUE;
}

static gboolean
gst_datahub_src_stop (GstBaseSrc *bs)
{
  GstDatahubSrc *self = GST_DATAHUB_SRC (bs);
  drop_connection (self);
  gst_caps_replace (&self->caps, NULL);
  if (self->records) {
    /* buffers still downstream come back to an inactive pool: freed then,
     * releasing their holds */
    gst_buffer_pool_set_active (self->records, FALSE);
    gst_clear_object (&self->records);
  }
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
  if (self->conn)
    dh_consumer_wakeup (self->conn->consumer);
  return TRUE;
}

static gboolean
gst_datahub_src_unlock_stop (GstBaseSrc *bs)
{
  GstDatahubSrc *self = GST_DATAHUB_SRC (bs);
  g_atomic_int_set (&self->flushing, FALSE);
  if (self->conn)
    dh_consumer_clear_wakeup (self->conn->consumer);
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
    return;
  }
  GST_OBJECT_LOCK (self);
  if (datahub_common_set_property (&self->common, prop_id, value)) {
    GST_OBJECT_UNLOCK (self);
    return;
  }
  switch (prop_id) {
    case PROP_START: self->start = g_value_get_enum (value); break;
    case PROP_LEAKY: self->leaky = g_value_get_boolean (value); break;
    case PROP_TIMEOUT: self->timeout_ms = g_value_get_uint (value); break;
    case PROP_RECONNECT: self->reconnect = g_value_get_boolean (value); break;
    case PROP_TIMESTAMP_MODE: self->ts_mode = g_value_get_enum (value); break;
    case PROP_MAX_HELD_SLOTS: self->max_held = g_value_get_uint (value); break;
    case PROP_COPY: self->copy = g_value_get_boolean (value); break;
    case PROP_SCHEMA:
      g_free (self->schema);
      self->schema = g_value_dup_string (value);
      break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec); break;
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
    case DATAHUB_PROP_STATS: {
      GstStructure *s;
      if (self->conn) {
        dh_metrics m;
        dh_consumer_stats st;
        dh_consumer_metrics (self->conn->consumer, &m);
        dh_consumer_stats_get (self->conn->consumer, &st);
        s = datahub_stats_from_metrics (&m, self->bytes_copied, &st, &self->latency);
      } else {
        s = gst_structure_new_empty ("datahub-stats");
      }
      g_value_take_boxed (value, s);
      return;
    }
    default:
      break;
  }
  GST_OBJECT_LOCK (self);
  if (datahub_common_get_property (&self->common, prop_id, value)) {
    GST_OBJECT_UNLOCK (self);
    return;
  }
  switch (prop_id) {
    case PROP_START: g_value_set_enum (value, self->start); break;
    case PROP_LEAKY: g_value_set_boolean (value, self->leaky); break;
    case PROP_TIMEOUT: g_value_set_uint (value, self->timeout_ms); break;
    case PROP_RECONNECT: g_value_set_boolean (value, self->reconnect); break;
    case PROP_TIMESTAMP_MODE: g_value_set_enum (value, self->ts_mode); break;
    case PROP_MAX_HELD_SLOTS: g_value_set_uint (value, self->max_held); break;
    case PROP_COPY: g_value_set_boolean (value, self->copy); break;
    case PROP_METADATA: gst_value_set_structure (value, self->metadata); break;
    case PROP_SCHEMA: g_value_set_string (value, self->schema); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec); break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_datahub_src_finalize (GObject *object)
{
  GstDatahubSrc *self = GST_DATAHUB_SRC (object);
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
      g_param_spec_enum ("start", "Start", "Where a late joiner starts reading",
          DATAHUB_TYPE_START, DEFAULT_START, rw));
  g_object_class_install_property (gobject_class, PROP_LEAKY,
      g_param_spec_boolean ("leaky", "Leaky",
          "Never hold the producer back, even with on-full=block: when lagging, skip "
          "ahead and count the loss (for previews)", FALSE, rw));
  g_object_class_install_property (gobject_class, PROP_TIMEOUT,
      g_param_spec_uint ("timeout", "Timeout",
          "Fail after this many ms without a producer or data (0 = wait forever)",
          0, G_MAXUINT, DEFAULT_TIMEOUT, rw));
  g_object_class_install_property (gobject_class, PROP_RECONNECT,
      g_param_spec_boolean ("reconnect", "Reconnect",
          "When the producer stops or dies, wait for a new one instead of failing",
          TRUE, rw));
  g_object_class_install_property (gobject_class, PROP_IS_LIVE,
      g_param_spec_boolean ("is-live", "Is live", "Act as a live source", FALSE, rw));
  g_object_class_install_property (gobject_class, PROP_TIMESTAMP_MODE,
      g_param_spec_enum ("timestamp-mode", "Timestamp mode",
          "How buffers are timestamped", DATAHUB_TYPE_TIMESTAMP_MODE,
          DEFAULT_TIMESTAMP_MODE, rw));
  g_object_class_install_property (gobject_class, PROP_MAX_HELD_SLOTS,
      g_param_spec_uint ("max-held-slots", "Max held slots",
          "Zero-copy buffers alive at once; beyond this, buffers are copied so a "
          "slow downstream cannot stall the producer", 0, 1024,
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
      "Source/Network", "Reads buffers from a datahub shared-memory channel",
      "datahub developers");

  bs_class->start = GST_DEBUG_FUNCPTR (gst_datahub_src_start);
  bs_class->stop = GST_DEBUG_FUNCPTR (gst_datahub_src_stop);
  bs_class->unlock = GST_DEBUG_FUNCPTR (gst_datahub_src_unlock);
  bs_class->negotiate = GST_DEBUG_FUNCPTR (gst_datahub_src_negotiate);
  bs_class->get_caps = GST_DEBUG_FUNCPTR (gst_datahub_src_get_caps);
  bs_class->unlock_stop = GST_DEBUG_FUNCPTR (gst_datahub_src_unlock_stop);
  GST_PUSH_SRC_CLASS (klass)->create = GST_DEBUG_FUNCPTR (gst_datahub_src_create);

  gst_type_mark_as_plugin_api (DATAHUB_TYPE_START, 0);
  gst_type_mark_as_plugin_api (DATAHUB_TYPE_TIMESTAMP_MODE, 0);
  GST_DEBUG_CATEGORY_INIT (datahub_src_debug, "datahubsrc", 0, "datahub source");
}

static void
gst_datahub_src_init (GstDatahubSrc *self)
{
  datahub_common_init (&self->common);
  self->start = DEFAULT_START;
  self->reconnect = TRUE;
  self->max_held = DEFAULT_MAX_HELD;
  self->ts_mode = DEFAULT_TIMESTAMP_MODE;
  gst_base_src_set_format (GST_BASE_SRC (self), GST_FORMAT_TIME);
}
