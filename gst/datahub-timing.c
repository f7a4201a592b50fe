/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "datahub-timing.h"

GstClockTime
datahub_running_time_now (GstElement *element)
{
  GstClock *clock = gst_element_get_clock (element);
  GstClockTime rt = 0;
  if (clock && GST_STATE (element) == GST_STATE_PLAYING) {
    GstClockTime now = gst_clock_get_time (clock), base = gst_element_get_base_time (element);
    rt = now > base ? now - base : 0;
  }
  if (clock)
    gst_object_unref (clock);
  return rt;
}

void
datahub_timing_restart (DatahubTiming *t, DatahubTimestampMode mode)
{
  t->mode = mode;
  gst_segment_init (&t->producer, GST_FORMAT_TIME);
  t->rebase_pending = TRUE;
  t->offset = 0;
}

void
datahub_timing_rebase (DatahubTiming *t)
{
  t->rebase_pending = TRUE;
}

/* The producer's segment as this pipeline plays it: its running times
 * moved by the offset. */
static void
moved (const DatahubTiming *t, GstSegment *out)
{
  gst_segment_copy_into (&t->producer, out);
  if (t->offset != 0 && gst_segment_offset_running_time (out, GST_FORMAT_TIME, t->offset))
    return;
  if (t->offset != 0) /* cannot move that far back: start at running time 0 */
    out->base = 0;
}

gboolean
datahub_timing_segment (DatahubTiming *t, const GstSegment *seg, GstSegment *out)
{
  if (seg->format != GST_FORMAT_TIME)
    return FALSE;
  gst_segment_copy_into (seg, &t->producer);
  if (t->mode != DATAHUB_TIMESTAMP_PASSTHROUGH || t->rebase_pending)
    return FALSE;
  moved (t, out);
  return TRUE;
}

static GstClockTime
clock_time (const dh_record *r, GstClockTime now_rt)
{
  gint64 due = (gint64) r->info.user[0];
  if (due < 0)
    return now_rt;
  /* the running time at which the buffer was due: now, minus how long ago
   * that was on the monotonic clock both processes share */
  gint64 now_mono = g_get_monotonic_time () * 1000;
  gint64 ago = now_mono - due;
  if (ago <= 0)
    return now_rt;
  return (GstClockTime) ago < now_rt ? now_rt - (GstClockTime) ago : 0;
}

gboolean
datahub_timing_stamp (DatahubTiming *t, GstElement *element, GstBuffer *buf,
    const dh_record *r, GstSegment *out)
{
  GstClockTime pts = r->info.pts >= 0 ? (GstClockTime) r->info.pts : GST_CLOCK_TIME_NONE;
  GstClockTime dts = r->info.dts >= 0 ? (GstClockTime) r->info.dts : GST_CLOCK_TIME_NONE;
  switch (t->mode) {
    case DATAHUB_TIMESTAMP_CLOCK:
      GST_BUFFER_PTS (buf) = clock_time (r, datahub_running_time_now (element));
      GST_BUFFER_DTS (buf) = GST_CLOCK_TIME_NONE;
      return FALSE;
    case DATAHUB_TIMESTAMP_ARRIVAL:
      GST_BUFFER_PTS (buf) = datahub_running_time_now (element);
      GST_BUFFER_DTS (buf) = GST_CLOCK_TIME_NONE;
      return FALSE;
    default:
      break;
  }
  GST_BUFFER_PTS (buf) = pts;
  GST_BUFFER_DTS (buf) = dts;
  if (!t->rebase_pending)
    return FALSE;
  GstClockTime ts = GST_CLOCK_TIME_IS_VALID (dts) ? dts : pts;
  GstClockTime rt = GST_CLOCK_TIME_IS_VALID (ts)
      ? gst_segment_to_running_time (&t->producer, GST_FORMAT_TIME, ts) : GST_CLOCK_TIME_NONE;
  if (!GST_CLOCK_TIME_IS_VALID (rt))
    return FALSE; /* untimed: nothing to place yet */
  t->offset = GST_CLOCK_DIFF (rt, datahub_running_time_now (element));
  t->rebase_pending = FALSE;
  moved (t, out);
  return TRUE;
}
