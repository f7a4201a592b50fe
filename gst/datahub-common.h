/* Shared by both elements: the common properties, the stats structure and
 * a timer for periodic bus messages. */
#ifndef DATAHUB_COMMON_H
#define DATAHUB_COMMON_H

#include <gst/gst.h>
#include <gst/video/video.h>

#include "datahub/datahub.h"

G_BEGIN_DECLS

typedef struct {
  GstClockTime last;
} DatahubStatsTimer;

void datahub_stats_timer_init (DatahubStatsTimer *t);
/* TRUE (and re-armed) when @interval_ms passed since it last fired. */
gboolean datahub_stats_timer_due (DatahubStatsTimer *t, guint interval_ms);

/* Latencies of the last buffers (commit -> received), a fixed ring: no
 * allocation per buffer. */
#define DATAHUB_LATENCY_SAMPLES 256
typedef struct {
  guint64 ns[DATAHUB_LATENCY_SAMPLES];
  guint n, pos;
} DatahubLatency;

void datahub_latency_add (DatahubLatency *l, guint64 ns);

/* A "datahub-stats" structure from the block's metrics; @consumer adds the
 * figures of one consumer (src side) and @latency its latencies, or NULL. */
GstStructure *datahub_stats_from_metrics (const dh_metrics *m, guint64 bytes_copied,
    const dh_consumer_stats *consumer, const DatahubLatency *latency);

/* Raw video caps: @info filled.  Encoded video (vp8, h264: parsed by
 * GStreamer as format ENCODED, size 0) and anything else: FALSE. */
gboolean datahub_raw_video_info (GstVideoInfo *info, const GstCaps *caps);

/* The properties both elements have.  Each element numbers them first, in
 * this order, from 1 (DATAHUB_PROP_*); "stats" is read by the element. */
enum {
  DATAHUB_PROP_CHANNEL = 1,
  DATAHUB_PROP_SHM_NAME,
  DATAHUB_PROP_BROKER,
  DATAHUB_PROP_SECRET,
  DATAHUB_PROP_STATS_INTERVAL,
  DATAHUB_PROP_STATS,
  DATAHUB_PROP_LAST_COMMON = DATAHUB_PROP_STATS,
};

typedef struct {
  gchar *channel, *shm_name, *broker, *secret;
  guint stats_interval;
} DatahubCommon;

void datahub_common_init (DatahubCommon *c);
void datahub_common_clear (DatahubCommon *c);
void datahub_install_common_properties (GObjectClass *klass);
/* Set/get one of the common properties (call with the object lock held);
 * FALSE if @prop_id is not one. */
gboolean datahub_common_set_property (DatahubCommon *c, guint prop_id, const GValue *value);
gboolean datahub_common_get_property (const DatahubCommon *c, guint prop_id, GValue *value);
/* The block name to open: shm-name if set, else the channel (lock held). */
gchar *datahub_common_name (const DatahubCommon *c);
/* Derives the secret (lock held); FALSE when none is set. */
gboolean datahub_common_secret (const DatahubCommon *c, guint8 out[DH_SECRET_SIZE]);

/* Counters the streaming thread bumps once per buffer and other threads
 * (the ticker, a stats getter) read: relaxed atomics, no lock per buffer.
 * Figures only: nothing is ordered by them. */
static inline void
datahub_count (guint64 *counter)
{
  __atomic_fetch_add (counter, 1, __ATOMIC_RELAXED);
}

static inline guint64
datahub_counted (const guint64 *counter)
{
  return __atomic_load_n (counter, __ATOMIC_RELAXED);
}

static inline void
datahub_count_reset (guint64 *counter)
{
  __atomic_store_n (counter, 0, __ATOMIC_RELAXED);
}

G_END_DECLS

#endif /* DATAHUB_COMMON_H */
