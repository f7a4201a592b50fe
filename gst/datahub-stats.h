/* Shared by both elements: the common properties, the stats structure and
 * a timer for periodic bus messages. */
#ifndef DATAHUB_STATS_H
#define DATAHUB_STATS_H

#include <gst/gst.h>

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

/* channel, shm-name, broker, secret, stats-interval, stats. */
void datahub_install_common_properties (GObjectClass *klass, guint channel,
    guint shm_name, guint broker, guint secret, guint stats_interval, guint stats);

G_END_DECLS

#endif
