#include "datahub-common.h"

#include "datahub-wire.h"

#include <stdlib.h>
#include <string.h>

gboolean
datahub_raw_video_info (GstVideoInfo *info, const GstCaps *caps)
{
  return caps && gst_video_info_from_caps (info, caps)
      && GST_VIDEO_INFO_FORMAT (info) != GST_VIDEO_FORMAT_ENCODED && info->size > 0;
}

void
datahub_stats_timer_init (DatahubStatsTimer *t)
{
  t->last = gst_util_get_timestamp ();
}

gboolean
datahub_stats_timer_due (DatahubStatsTimer *t, guint interval_ms)
{
  GstClockTime now = gst_util_get_timestamp ();
  if (now - t->last < (GstClockTime) interval_ms * GST_MSECOND)
    return FALSE;
  t->last = now;
  return TRUE;
}

void
datahub_latency_add (DatahubLatency *l, guint64 ns)
{
  l->ns[l->pos] = ns;
  l->pos = (l->pos + 1) % DATAHUB_LATENCY_SAMPLES;
  if (l->n < DATAHUB_LATENCY_SAMPLES)
    l->n++;
}

static gint
cmp_u64 (gconstpointer a, gconstpointer b)
{
  guint64 x = *(const guint64 *) a, y = *(const guint64 *) b;
  return x < y ? -1 : x > y;
}

GstStructure *
datahub_stats_from_metrics (const dh_metrics *m, guint64 bytes_copied,
    const dh_consumer_stats *consumer, const DatahubLatency *latency)
{
  GstStructure *s = gst_structure_new ("datahub-stats",
      "written", G_TYPE_UINT64, m->slots_written,
      "read", G_TYPE_UINT64, m->slots_read,
      "bytes-written", G_TYPE_UINT64, m->bytes_written,
      "bytes-read", G_TYPE_UINT64, m->bytes_read,
      "bytes-copied", G_TYPE_UINT64, bytes_copied,
      "lost", G_TYPE_UINT64, m->records_lost,
      "dropped", G_TYPE_UINT64, m->commits_aborted,
      "consumers", G_TYPE_UINT, m->consumers_live,
      "consumers-dead", G_TYPE_UINT, m->consumers_dead,
      "checksum-failures", G_TYPE_UINT64, m->checksum_failures,
      "timeouts", G_TYPE_UINT64, m->writer_timeout_count,
      "writer-waits", G_TYPE_UINT64, m->writer_waits,
      "head", G_TYPE_UINT64, m->head_seq,
      "occupancy", G_TYPE_UINT64, m->max_lag, NULL);
  if (consumer)
    gst_structure_set (s,
        "consumer-read", G_TYPE_UINT64, consumer->read,
        "consumer-lost", G_TYPE_UINT64, consumer->lost,
        "consumer-held", G_TYPE_UINT, consumer->held,
        "consumer-checksum-failures", G_TYPE_UINT64, consumer->checksum_failures,
        "consumer-behind", G_TYPE_UINT64, consumer->behind,
        "consumer-index", G_TYPE_UINT64, (guint64) consumer->index, NULL);
  if (latency && latency->n > 0) {
    guint64 sorted[DATAHUB_LATENCY_SAMPLES];
    memcpy (sorted, latency->ns, latency->n * sizeof sorted[0]);
    qsort (sorted, latency->n, sizeof sorted[0], cmp_u64);
    gst_structure_set (s,
        "latency-p50-us", G_TYPE_DOUBLE, (gdouble) sorted[latency->n / 2] / 1000.0,
        "latency-p99-us", G_TYPE_DOUBLE, (gdouble) sorted[latency->n * 99 / 100] / 1000.0,
        NULL);
  }
  return s;
}

void
datahub_common_init (DatahubCommon *c)
{
  memset (c, 0, sizeof *c);
  c->channel = g_strdup ("datahub");
}

void
datahub_common_clear (DatahubCommon *c)
{
  g_free (c->channel);
  g_free (c->shm_name);
  g_free (c->broker);
  g_free (c->secret);
  memset (c, 0, sizeof *c);
}

gboolean
datahub_common_set_property (DatahubCommon *c, guint prop_id, const GValue *value)
{
  gchar **str = prop_id == DATAHUB_PROP_CHANNEL ? &c->channel
      : prop_id == DATAHUB_PROP_SHM_NAME ? &c->shm_name
      : prop_id == DATAHUB_PROP_BROKER ? &c->broker
      : prop_id == DATAHUB_PROP_SECRET ? &c->secret : NULL;
  if (str) {
    g_free (*str);
    *str = g_value_dup_string (value);
    return TRUE;
  }
  if (prop_id == DATAHUB_PROP_STATS_INTERVAL) {
    c->stats_interval = g_value_get_uint (value);
    return TRUE;
  }
  return FALSE;
}

gboolean
datahub_common_get_property (const DatahubCommon *c, guint prop_id, GValue *value)
{
  switch (prop_id) {
    case DATAHUB_PROP_CHANNEL: g_value_set_string (value, c->channel); return TRUE;
    case DATAHUB_PROP_SHM_NAME: g_value_set_string (value, c->shm_name); return TRUE;
    case DATAHUB_PROP_BROKER: g_value_set_string (value, c->broker); return TRUE;
    case DATAHUB_PROP_SECRET: /* write-only: never in dumps or logs */ return TRUE;
    case DATAHUB_PROP_STATS_INTERVAL: g_value_set_uint (value, c->stats_interval); return TRUE;
    default: return FALSE;
  }
}

gchar *
datahub_common_name (const DatahubCommon *c)
{
  return g_strdup (c->shm_name && *c->shm_name ? c->shm_name
      : c->channel ? c->channel : "");
}

gboolean
datahub_common_secret (const DatahubCommon *c, guint8 out[DH_SECRET_SIZE])
{
  if (!c->secret || !*c->secret)
    return FALSE;
  datahub_wire_secret (c->secret, out);
  return TRUE;
}

void
datahub_install_common_properties (GObjectClass *klass)
{
  const GParamFlags rw = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY;
  g_object_class_install_property (klass, DATAHUB_PROP_CHANNEL,
      g_param_spec_string ("channel", "Channel",
          "Channel name; the shared memory object is /datahub.<channel>",
          "datahub", rw));
  g_object_class_install_property (klass, DATAHUB_PROP_SHM_NAME,
      g_param_spec_string ("shm-name", "Shm name",
          "Explicit shared memory object name (\"/name\"); overrides channel",
          NULL, rw));
  g_object_class_install_property (klass, DATAHUB_PROP_BROKER,
      g_param_spec_string ("broker", "Broker",
          "datahub-broker endpoint: \"default\" (where datahub-broker listens when "
          "started without --endpoint) or e.g. ipc:///run/user/1000/datahub-broker.sock; "
          "the sink registers the channel there, the src finds the channel's block "
          "through it (empty = no broker: the channel name is the block name)",
          NULL, rw));
  g_object_class_install_property (klass, DATAHUB_PROP_SECRET,
      g_param_spec_string ("secret", "Secret",
          "Shared secret: 32 hex digits, or any text (hashed to 128 bits); write-only",
          NULL, G_PARAM_WRITABLE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (klass, DATAHUB_PROP_STATS_INTERVAL,
      g_param_spec_uint ("stats-interval", "Stats interval",
          "Post a datahub-stats element message every this many ms (0 = off)",
          0, G_MAXUINT, 0, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS
              | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (klass, DATAHUB_PROP_STATS,
      g_param_spec_boxed ("stats", "Stats", "Current figures (datahub-stats structure)",
          GST_TYPE_STRUCTURE, G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));
}
