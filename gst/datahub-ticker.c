/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "datahub-ticker.h"

#include <string.h>

void
datahub_ticker_init (DatahubTicker *t)
{
  memset (t, 0, sizeof *t);
  g_mutex_init (&t->lock);
  g_cond_init (&t->cond);
}

void
datahub_ticker_clear (DatahubTicker *t)
{
  datahub_ticker_stop (t);
  g_mutex_clear (&t->lock);
  g_cond_clear (&t->cond);
}

static gpointer
ticker_main (gpointer data)
{
  DatahubTicker *t = data;
  g_mutex_lock (&t->lock);
  while (!t->stop) {
    gint64 until = g_get_monotonic_time () + (gint64) t->interval_ms * 1000;
    while (!t->stop && g_cond_wait_until (&t->cond, &t->lock, until))
      ;
    if (t->stop)
      break;
    g_mutex_unlock (&t->lock);
    t->fn (t->user);
    g_mutex_lock (&t->lock);
  }
  g_mutex_unlock (&t->lock);
  return NULL;
}

void
datahub_ticker_start (DatahubTicker *t, const gchar *name, guint interval_ms,
    DatahubTickFn fn, gpointer user)
{
  datahub_ticker_stop (t);
  t->stop = FALSE;
  t->interval_ms = interval_ms ? interval_ms : 100;
  t->fn = fn;
  t->user = user;
  t->thread = g_thread_new (name, ticker_main, t);
}

void
datahub_ticker_stop (DatahubTicker *t)
{
  if (!t->thread)
    return;
  g_mutex_lock (&t->lock);
  t->stop = TRUE;
  g_cond_broadcast (&t->cond);
  g_mutex_unlock (&t->lock);
  g_thread_join (t->thread);
  t->thread = NULL;
}
