/* The broker's registry and message handler, separate from any socket so
 * that the daemon, the tests and the fuzzer drive the same code.
 *
 * One request in, one reply out (always: bad input gets BAD_REQUEST), plus
 * zero or more events for the PUB socket.  Time is passed in, so expiry is
 * deterministic under test. */
#ifndef DHB_REGISTRY_H
#define DHB_REGISTRY_H

#include <glib.h>

G_BEGIN_DECLS

/* Requests larger than this are refused before parsing. */
#define DHB_MAX_REQUEST 65536
#define DHB_MAX_CHANNELS 4096
#define DHB_MAX_CONSUMERS_PER_CHANNEL 1024
#define DHB_MAX_SCHEMA 4096
/* Quotas per client (a peer process on ipc, a connection on tcp). */
#define DHB_DEFAULT_CHANNELS_PER_CLIENT 256
#define DHB_DEFAULT_CONSUMERS_PER_CLIENT 1024
/* A LIST reply stops adding channels past this many bytes and says where
 * to go on ("next"), so one LIST costs the loop a bounded time. */
#define DHB_LIST_PAGE_BYTES 32768
/* Timing: a registration must survive two lost heartbeats plus the sweep
 * period and some scheduling delay; the client never waits longer than
 * DHB_MAX_HEARTBEAT_MS between heartbeats. */
#define DHB_MIN_HEARTBEAT_MS 10
#define DHB_MAX_HEARTBEAT_MS 60000
#define DHB_EXPIRY_MARGIN_MS 100
#define DHB_MAX_EXPIRY_MS 3600000

typedef struct {
  guint heartbeat_ms;        /* told to clients in every OK reply */
  guint expiry_ms;           /* silence after which a registration expires */
  const gchar *events_endpoint;
  /* Optional: FALSE when the registered producer process is gone (a local
   * broker checks with kill(pid, 0)); its registration then expires at
   * once instead of after expiry_ms. */
  gboolean (*pid_alive) (gint64 pid);
  guint max_channels_per_client;   /* 0: DHB_DEFAULT_CHANNELS_PER_CLIENT */
  guint max_consumers_per_client;  /* 0: DHB_DEFAULT_CONSUMERS_PER_CLIENT */
} DhbRegistryConfig;

typedef struct {
  gchar *topic;              /* the channel name */
  gchar *json;
} DhbEvent;

typedef struct _DhbRegistry DhbRegistry;

/* TRUE if @heartbeat_ms and @expiry_ms keep a live client registered:
 * heartbeat in [DHB_MIN_HEARTBEAT_MS, DHB_MAX_HEARTBEAT_MS], expiry at
 * least 2 x heartbeat + DHB_EXPIRY_MARGIN_MS and at most
 * DHB_MAX_EXPIRY_MS.  Otherwise FALSE and *@why (g_free it). */
gboolean dhb_registry_check_timing (guint heartbeat_ms, guint expiry_ms, gchar **why);

/* @config must pass dhb_registry_check_timing. */
DhbRegistry *dhb_registry_new (const DhbRegistryConfig *config);
void dhb_registry_free (DhbRegistry *r);

/* Handles one request of @len bytes (not NUL-terminated) from @client,
 * the key its quotas are counted under.  Returns the reply JSON (g_free
 * it); events to publish are appended to @events (DhbEvent *, freed with
 * dhb_event_free), or dropped if @events is NULL. */
gchar *dhb_registry_handle (DhbRegistry *r, guint64 client, const gchar *data, gsize len,
    gint64 now_ms, GPtrArray *events);

/* One request as it arrives: the frames of one ZeroMQ message (GBytes),
 * [empty delimiter, JSON] from DEALER and REQ sockets or a bare [JSON].
 * *@delimited: reply with the delimiter first; *@body: the JSON frame
 * (for logs; NULL if there was none). */
gchar *dhb_registry_handle_frames (DhbRegistry *r, guint64 client, GPtrArray *frames,
    gint64 now_ms, GPtrArray *events, gboolean *delimited, GBytes **body);

/* A BAD_REQUEST reply for input rejected before parsing (too large,
 * multi-part). */
gchar *dhb_registry_bad_request (const gchar *why);

/* Expires silent registrations; returns how many expired. */
guint dhb_registry_sweep (DhbRegistry *r, gint64 now_ms, GPtrArray *events);

guint dhb_registry_channel_count (const DhbRegistry *r);

void dhb_event_free (gpointer event);

G_END_DECLS

#endif
