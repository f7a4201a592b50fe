/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A small thread per element that calls back periodically: bus messages
 * (datahub-stats, datahub-consumer, datahub-metadata) are posted while the
 * streaming thread is blocked or idle too, which is when users need them. */
#ifndef DATAHUB_TICKER_H
#define DATAHUB_TICKER_H

#include <gst/gst.h>

G_BEGIN_DECLS

typedef void (*DatahubTickFn) (gpointer user);

typedef struct {
  GThread *thread;
  GMutex lock;
  GCond cond;
  gboolean stop;
  guint interval_ms;
  DatahubTickFn fn;
  gpointer user;
} DatahubTicker;

void datahub_ticker_init (DatahubTicker *t);
void datahub_ticker_clear (DatahubTicker *t);
/* Calls @fn every @interval_ms from a thread named @name until stop. */
void datahub_ticker_start (DatahubTicker *t, const gchar *name, guint interval_ms,
    DatahubTickFn fn, gpointer user);
/* Stops and joins; no call of @fn runs after it returns. */
void datahub_ticker_stop (DatahubTicker *t);

G_END_DECLS

#endif
