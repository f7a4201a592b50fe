/* The broker's sockets: a request endpoint (ROUTER to its clients) and an
 * event endpoint (PUB), both served as ZMQ_STREAM sockets whose ZMTP we
 * decode ourselves (zmtp.h), so that every byte a peer makes the broker
 * hold is bounded:
 *
 *   - a frame, a message and its frame count (dhb_zmtp limits): a peer
 *     over a limit is dropped;
 *   - libzmq's queues: small receive and send high-water marks per
 *     connection; replies beyond those are kept (96 KiB at most) and a
 *     client whose kept replies exceed that or do not move for 2 s is
 *     dropped: it does not read them; a subscriber that does not read its
 *     events misses them;
 *   - connections: at most max_connections (512), and max_per_process
 *     (256) from one peer process (its pid comes from SO_PEERCRED on ipc);
 *   - a peer that does not finish its handshake within
 *     DHB_SERVER_HANDSHAKE_MS is dropped.
 *
 * docs/broker.md "Limits" has the figures. */
#ifndef DHB_SERVER_H
#define DHB_SERVER_H

#include <glib.h>

#include "zmtp.h"

G_BEGIN_DECLS

#define DHB_SERVER_HANDSHAKE_MS 5000

typedef struct _DhbServer DhbServer;

/* Handles one request message (GBytes frames) from @client (the quota key:
 * the peer's pid, or a per-connection number without one).  Returns the
 * encoded reply (ZMTP frames, dhb_zmtp_encode_frame) to send, or NULL. */
typedef GByteArray *(*DhbServerHandler) (GPtrArray *frames, guint64 client, gpointer user);
typedef void (*DhbServerLog) (int level, const gchar *text, gpointer user);

enum { DHB_LOG_ERROR, DHB_LOG_WARN, DHB_LOG_INFO, DHB_LOG_DEBUG };

typedef struct {
  const gchar *endpoint, *events_endpoint;
  guint max_connections, max_per_process;
  DhbZmtpLimits request_limits, event_limits;
  int request_sndhwm, event_sndhwm, rcvhwm;   /* libzmq messages per connection */
  DhbServerHandler handler;
  DhbServerLog log;
  gpointer user;
} DhbServerConfig;

/* The default limits (docs/broker.md "Limits"). */
void dhb_server_config_init (DhbServerConfig *cfg);

/* Binds both endpoints; NULL with *@why (g_free it) if one cannot be. */
DhbServer *dhb_server_new (const DhbServerConfig *cfg, gchar **why);
void dhb_server_free (DhbServer *s);

/* Waits up to @timeout_ms for input and serves what arrived (a bounded
 * batch, so events and expiry still run under a flood).  FALSE if polling
 * failed for another reason than a signal. */
gboolean dhb_server_serve (DhbServer *s, int timeout_ms, gint64 now_ms);

/* Sends an event to every subscriber of @topic. */
void dhb_server_publish (DhbServer *s, const gchar *topic, const gchar *json);

/* Drops peers stuck in the handshake; retries closing dropped peers whose
 * queue was full. */
void dhb_server_sweep (DhbServer *s, gint64 now_ms);

/* Connections currently open (both endpoints). */
guint dhb_server_connections (const DhbServer *s);

G_END_DECLS

#endif
