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

typedef struct {
  guint heartbeat_ms;        /* told to clients in every OK reply */
  guint expiry_ms;           /* silence after which a registration expires */
  const gchar *events_endpoint;
  /* Optional: FALSE when the registered producer process is gone (a local
   * broker checks with kill(pid, 0)); its registration then expires at
   * once instead of after expiry_ms. */
  gboolean (*pid_alive) (gint64 pid);
} DhbRegistryConfig;

typedef struct {
  gchar *topic;              /* the channel name */
  gchar *json;
} DhbEvent;

typedef struct _DhbRegistry DhbRegistry;

DhbRegistry *dhb_registry_new (const DhbRegistryConfig *config);
void dhb_registry_free (DhbRegistry *r);

/* Handles one request of @len bytes (not NUL-terminated).  Returns the
 * reply JSON (g_free it); events to publish are appended to @events
 * (DhbEvent *, freed with dhb_event_free), or dropped if @events is NULL. */
gchar *dhb_registry_handle (DhbRegistry *r, const gchar *data, gsize len, gint64 now_ms,
    GPtrArray *events);

/* A BAD_REQUEST reply for input rejected before parsing (too large,
 * multi-part). */
gchar *dhb_registry_bad_request (const gchar *why);

/* Expires silent registrations; returns how many expired. */
guint dhb_registry_sweep (DhbRegistry *r, gint64 now_ms, GPtrArray *events);

guint dhb_registry_channel_count (const DhbRegistry *r);

void dhb_event_free (gpointer event);

G_END_DECLS

#endif
