/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* How datahubsrc timestamps what it reads (docs/elements.md "Timestamps").
 *
 * passthrough: the producer's PTS/DTS and segment, with the segment moved
 *   on every (re)attach so the first buffer plays at the current running
 *   time of this pipeline: a consumer joining a stream that has run for an
 *   hour shows it at once, and a restarted producer's timestamps (from 0
 *   again) are not late.
 * clock: the producer's due time on the shared monotonic clock mapped to
 *   this pipeline's running time (now_running - (now_monotonic - due)), so
 *   two pipelines on one machine render in sync, whatever clock this
 *   pipeline uses.
 * arrival: the running time at which the buffer was read. */
#ifndef DATAHUB_TIMING_H
#define DATAHUB_TIMING_H

#include <gst/gst.h>

#include "datahub-enums.h"
#include "datahub/datahub.h"

G_BEGIN_DECLS

typedef struct {
  DatahubTimestampMode mode;   /* passthrough, clock or arrival */
  GstSegment producer;         /* the producer's latest segment */
  gboolean rebase_pending;     /* the next buffer sets the offset */
  GstClockTimeDiff offset;     /* added to the producer's running times */
} DatahubTiming;

/* A new session (attach, reattach, a producer-side flush): the next
 * buffer is placed at the running time of its arrival. */
void datahub_timing_restart (DatahubTiming *t, DatahubTimestampMode mode);

/* After a gap (passthrough): the next buffer is placed at the running
 * time of its arrival again; the producer's segment is kept. */
void datahub_timing_rebase (DatahubTiming *t);

/* The producer's segment changed.  TRUE with @out to push downstream
 * (passthrough, once the offset is known). */
gboolean datahub_timing_segment (DatahubTiming *t, const GstSegment *seg, GstSegment *out);

/* Sets PTS/DTS of @buf from record @r.  TRUE with @out when a segment must
 * be pushed before it (the first buffer of a session, in passthrough). */
gboolean datahub_timing_stamp (DatahubTiming *t, GstElement *element, GstBuffer *buf,
    const dh_record *r, GstSegment *out);

/* This pipeline's running time now; 0 when it is not playing yet. */
GstClockTime datahub_running_time_now (GstElement *element);

G_END_DECLS

#endif
