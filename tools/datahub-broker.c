/* datahub-broker: finds a channel's shared memory by name.
 *
 * A ROUTER socket answers REG/DISC/DEREG/HB/LIST requests (JSON, see
 * docs/broker.md); a PUB socket announces producer up/down, handover and
 * consumer drops.  One thread, one poll loop: the broker is control plane
 * only, nothing it does is on the data path. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>
#include <sodium.h>
#include <zmq.h>

#include "datahub/broker.h"
#include "registry.h"

/* Frames larger than this are dropped by ZeroMQ before they reach us
 * (bounding memory); requests up to it get a BAD_REQUEST reply. */
#define MAX_FRAME (1 << 20)
#define SWEEP_MS 100

enum { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };
static const char *const level_names[] = { "error", "warn", "info", "debug" };
static int log_level = LOG_INFO;

static void
blog (int level, const char *fmt, ...) G_GNUC_PRINTF (2, 3);

static void
blog (int level, const char *fmt, ...)
{
  if (level > log_level)
    return;
  GDateTime *t = g_date_time_new_now_local ();
  gchar *when = g_date_time_format (t, "%H:%M:%S.%f");
  va_list ap;
  va_start (ap, fmt);
  gchar *text = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  /* %f prints microseconds: keep milliseconds */
  fprintf (stderr, "%.12s datahub-broker [%s] %s\n", when, level_names[level], text);
  g_free (text);
  g_free (when);
  g_date_time_unref (t);
}

static volatile sig_atomic_t stop_requested;

static void
on_signal (int sig)
{
  stop_requested = sig;
}

static gint64
now_ms (void)
{
  return g_get_monotonic_time () / 1000;
}

static gboolean
pid_alive (gint64 pid)
{
  /* EPERM: the process exists but belongs to someone else */
  return kill ((pid_t) pid, 0) == 0 || errno == EPERM;
}

/* The PUB endpoint next to @endpoint: "<path>-events" for ipc, the next
 * port for tcp. */
static gchar *
default_events_endpoint (const char *endpoint)
{
  if (g_str_has_prefix (endpoint, "ipc://"))
    return g_strdup_printf ("%s-events", endpoint);
  const char *colon = strrchr (endpoint, ':');
  if (g_str_has_prefix (endpoint, "tcp://") && colon) {
    gchar *end = NULL;
    guint64 port = g_ascii_strtoull (colon + 1, &end, 10);
    if (end && !*end && port > 0 && port < 65535)
      return g_strdup_printf ("%.*s:%" G_GUINT64_FORMAT, (int) (colon - endpoint), endpoint,
          port + 1);
  }
  return NULL;
}

/* A stopped broker leaves no socket files behind (ZeroMQ does not remove
 * them); a SIGKILLed one does, and the next bind replaces them. */
static void
remove_ipc_file (const char *endpoint)
{
  if (g_str_has_prefix (endpoint, "ipc://") && endpoint[6] != '@')
    unlink (endpoint + strlen ("ipc://"));
}

static void
publish (void *pub, GPtrArray *events)
{
  for (guint i = 0; i < events->len; i++) {
    DhbEvent *e = events->pdata[i];
    blog (LOG_INFO, "event %s", e->json);
    /* PUB never blocks: with no subscriber, or a slow one, it drops */
    zmq_send (pub, e->topic, strlen (e->topic), ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send (pub, e->json, strlen (e->json), ZMQ_DONTWAIT);
  }
  g_ptr_array_set_size (events, 0);
}

/* Receives one request [identity, (empty,) payload] and answers it. */
static void
serve_one (void *router, void *pub, DhbRegistry *reg, GPtrArray *events)
{
  GPtrArray *frames = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  int more = 1;
  while (more) {
    zmq_msg_t m;
    zmq_msg_init (&m);
    if (zmq_msg_recv (&m, router, 0) < 0) {
      zmq_msg_close (&m);
      break;
    }
    more = zmq_msg_more (&m);
    g_ptr_array_add (frames, g_bytes_new (zmq_msg_data (&m), zmq_msg_size (&m)));
    zmq_msg_close (&m);
  }
  if (frames->len < 2) { /* no identity or no payload: no one to answer */
    g_ptr_array_unref (frames);
    return;
  }
  /* DEALER clients send an empty delimiter first (as REQ does) */
  guint body = 1;
  gsize size0 = 0;
  g_bytes_get_data (frames->pdata[1], &size0);
  gboolean delimited = size0 == 0 && frames->len > 2;
  if (delimited)
    body = 2;
  gchar *reply;
  gsize len = 0;
  const gchar *data = g_bytes_get_data (frames->pdata[body], &len);
  if (frames->len > body + 1) {
    reply = dhb_registry_bad_request ("a request is one frame of JSON");
    blog (LOG_WARN, "refused a %u-frame message", frames->len - body);
  } else {
    reply = dhb_registry_handle (reg, data ? data : "", len, now_ms (), events);
    blog (strstr (reply, "\"BAD_REQUEST\"") ? LOG_WARN : LOG_DEBUG, "%.*s -> %s",
        (int) MIN (len, 200), data ? data : "", reply);
  }
  zmq_send (router, g_bytes_get_data (frames->pdata[0], NULL),
      g_bytes_get_size (frames->pdata[0]), ZMQ_SNDMORE | ZMQ_DONTWAIT);
  if (delimited)
    zmq_send (router, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT);
  zmq_send (router, reply, strlen (reply), ZMQ_DONTWAIT);
  g_free (reply);
  g_ptr_array_unref (frames);
  publish (pub, events);
}

static int
run (const char *endpoint, const char *events_endpoint, guint heartbeat_ms, guint expiry_ms)
{
  void *ctx = zmq_ctx_new ();
  void *router = zmq_socket (ctx, ZMQ_ROUTER);
  void *pub = zmq_socket (ctx, ZMQ_PUB);
  int zero = 0;
  gint64 max_frame = MAX_FRAME;
  zmq_setsockopt (router, ZMQ_LINGER, &zero, sizeof zero);
  zmq_setsockopt (pub, ZMQ_LINGER, &zero, sizeof zero);
  zmq_setsockopt (router, ZMQ_MAXMSGSIZE, &max_frame, sizeof max_frame);
  if (zmq_bind (router, endpoint) != 0) {
    blog (LOG_ERROR, "cannot listen on %s: %s", endpoint, zmq_strerror (errno));
    zmq_close (router);
    zmq_close (pub);
    zmq_ctx_term (ctx);
    return 1;
  }
  if (zmq_bind (pub, events_endpoint) != 0) {
    blog (LOG_ERROR, "cannot publish events on %s: %s", events_endpoint,
        zmq_strerror (errno));
    zmq_close (router);
    zmq_close (pub);
    zmq_ctx_term (ctx);
    return 1;
  }
  DhbRegistryConfig cfg = {
    .heartbeat_ms = heartbeat_ms,
    .expiry_ms = expiry_ms,
    .events_endpoint = events_endpoint,
    .pid_alive = pid_alive,
  };
  DhbRegistry *reg = dhb_registry_new (&cfg);
  GPtrArray *events = g_ptr_array_new_with_free_func (dhb_event_free);
  blog (LOG_INFO, "serving %s, events on %s (heartbeat %u ms, expiry %u ms)", endpoint,
      events_endpoint, heartbeat_ms, expiry_ms);
  gint64 next_sweep = now_ms () + SWEEP_MS;
  while (!stop_requested) {
    zmq_pollitem_t item = { router, 0, ZMQ_POLLIN, 0 };
    int n = zmq_poll (&item, 1, SWEEP_MS);
    if (n < 0 && errno != EINTR) {
      blog (LOG_ERROR, "poll failed: %s", zmq_strerror (errno));
      break;
    }
    if (n > 0)
      serve_one (router, pub, reg, events);
    if (now_ms () >= next_sweep) {
      dhb_registry_sweep (reg, now_ms (), events);
      publish (pub, events);
      next_sweep = now_ms () + SWEEP_MS;
    }
  }
  if (stop_requested)
    blog (LOG_INFO, "stopping on %s with %u channels registered",
        strsignal (stop_requested), dhb_registry_channel_count (reg));
  g_ptr_array_unref (events);
  dhb_registry_free (reg);
  zmq_close (router);
  zmq_close (pub);
  zmq_ctx_term (ctx);
  remove_ipc_file (endpoint);
  remove_ipc_file (events_endpoint);
  return 0;
}

int
main (int argc, char **argv)
{
  gchar *endpoint = NULL, *events = NULL, *level = NULL;
  gint heartbeat_ms = 1000, expiry_ms = 5000;
  GOptionEntry entries[] = {
    { "endpoint", 'e', 0, G_OPTION_ARG_STRING, &endpoint,
      "Requests endpoint (default: the DATAHUB_BROKER variable, else "
      "ipc://$XDG_RUNTIME_DIR/datahub-broker.sock, else ipc:///tmp/datahub-broker-UID.sock)",
      "ENDPOINT" },
    { "events", 0, 0, G_OPTION_ARG_STRING, &events,
      "Events (PUB) endpoint (default: ENDPOINT-events for ipc, the next port for tcp)",
      "ENDPOINT" },
    { "heartbeat-ms", 0, 0, G_OPTION_ARG_INT, &heartbeat_ms,
      "Heartbeat interval asked of clients (default 1000)", "MS" },
    { "expiry-ms", 0, 0, G_OPTION_ARG_INT, &expiry_ms,
      "Registrations expire after this much silence (default 5000)", "MS" },
    { "log-level", 'l', 0, G_OPTION_ARG_STRING, &level,
      "error, warn, info (default) or debug", "LEVEL" },
    { NULL },
  };
  GOptionContext *ctx = g_option_context_new ("- datahub discovery broker");
  g_option_context_add_main_entries (ctx, entries, NULL);
  GError *err = NULL;
  if (!g_option_context_parse (ctx, &argc, &argv, &err)) {
    fprintf (stderr, "datahub-broker: %s\n", err->message);
    return 2;
  }
  g_option_context_free (ctx);
  if (level) {
    log_level = -1;
    for (int i = 0; i < (int) G_N_ELEMENTS (level_names); i++)
      if (strcmp (level, level_names[i]) == 0)
        log_level = i;
    if (log_level < 0) {
      fprintf (stderr, "datahub-broker: unknown log level '%s'\n", level);
      return 2;
    }
  }
  if (heartbeat_ms < 10 || expiry_ms < heartbeat_ms) {
    fprintf (stderr, "datahub-broker: need heartbeat-ms >= 10 and expiry-ms >= heartbeat-ms\n");
    return 2;
  }
  if (sodium_init () < 0) {
    fprintf (stderr, "datahub-broker: libsodium failed to initialise\n");
    return 1;
  }
  const char *ep = endpoint ? endpoint : dhb_default_endpoint ();
  gchar *ev = events ? g_strdup (events) : default_events_endpoint (ep);
  if (!ev) {
    fprintf (stderr, "datahub-broker: give --events for endpoint %s\n", ep);
    return 2;
  }
  struct sigaction sa = { .sa_handler = on_signal };
  sigemptyset (&sa.sa_mask);
  sigaction (SIGINT, &sa, NULL);
  sigaction (SIGTERM, &sa, NULL);
  signal (SIGPIPE, SIG_IGN);
  int rc = run (ep, ev, (guint) heartbeat_ms, (guint) expiry_ms);
  g_free (ev);
  g_free (endpoint);
  g_free (events);
  g_free (level);
  return rc;
}
