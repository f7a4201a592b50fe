/* The broker's endpoints over ZMQ_STREAM with our own ZMTP (server.h). */
#include "server.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

/* messages taken from one endpoint per serve call: a flood on one
 * connection cannot starve expiry, events or the other endpoint */
#define SERVE_BATCH 256
/* warnings about dropped peers per second; the rest are counted */
#define WARNINGS_PER_SECOND 10
/* replies kept for a client when libzmq's queue to it is full: it is
 * dropped when they exceed this, or make no progress for STALL_MS */
#define MAX_PENDING_BYTES (96 * 1024)
#define STALL_MS 2000

typedef struct {
  GBytes *id;                  /* libzmq's routing id of the connection */
  DhbZmtpPeer *peer;           /* NULL once dropped */
  gint64 pid;                  /* the peer process (SO_PEERCRED), 0 if unknown */
  guint64 client;              /* quota key: the pid, or a connection number */
  gint64 connected_ms;
  gboolean dropped;            /* input ignored; forgotten by the next sweep */
  gboolean closed;             /* libzmq took the close (retried while its queue is full) */
  GQueue pending;              /* replies (GBytes) libzmq could not take yet */
  gsize pending_bytes;
  gint64 stalled_ms;           /* when the pending replies last moved */
  gchar *who;                  /* for logs */
} Conn;

typedef struct {
  void *sock;
  DhbZmtpRole role;
  GHashTable *conns;           /* GBytes id -> Conn * */
} Endpoint;

struct _DhbServer {
  DhbServerConfig cfg;
  void *ctx;
  Endpoint requests, events;
  GHashTable *per_process;     /* gint64 pid -> guint connections */
  guint64 next_connection;
  gint64 now_ms;
  gint64 warn_second;
  guint warnings, suppressed;
};

void
dhb_server_config_init (DhbServerConfig *cfg)
{
  memset (cfg, 0, sizeof *cfg);
  cfg->max_connections = 512;
  cfg->max_per_process = 256;
  /* requests are at most 64 KiB (DHB_MAX_REQUEST); frames up to 128 KiB
   * get a BAD_REQUEST reply, larger ones drop the peer */
  cfg->request_limits = (DhbZmtpLimits) {
    .max_frame = 128 * 1024, .max_frames = 4, .max_message = 132 * 1024,
  };
  /* subscribers send subscriptions only: one frame, a channel name */
  cfg->event_limits = (DhbZmtpLimits) {
    .max_frame = 512, .max_frames = 1, .max_message = 512, .max_subscriptions = 64,
  };
  cfg->request_sndhwm = 4;
  cfg->event_sndhwm = 16;
  cfg->rcvhwm = 8;            /* raw chunks of up to 8 KiB each */
}

static void
say (DhbServer *s, int level, const gchar *fmt, ...) G_GNUC_PRINTF (3, 4);

static void
say (DhbServer *s, int level, const gchar *fmt, ...)
{
  if (!s->cfg.log)
    return;
  /* a peer that reconnects and misbehaves in a loop must not flood the
   * log: warnings are rate-limited, the excess counted */
  if (level == DHB_LOG_WARN) {
    gint64 second = s->now_ms / 1000;
    if (second != s->warn_second) {
      if (s->suppressed)
        s->cfg.log (DHB_LOG_WARN, "(suppressed similar warnings)", s->cfg.user);
      s->warn_second = second;
      s->warnings = s->suppressed = 0;
    }
    if (++s->warnings > WARNINGS_PER_SECOND) {
      s->suppressed++;
      return;
    }
  }
  va_list ap;
  va_start (ap, fmt);
  gchar *text = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  s->cfg.log (level, text, s->cfg.user);
  g_free (text);
}

/* ---- connections ---------------------------------------------------------- */

static guint
process_connections (DhbServer *s, gint64 pid)
{
  return GPOINTER_TO_UINT (g_hash_table_lookup (s->per_process, &pid));
}

static void
process_count (DhbServer *s, gint64 pid, gint delta)
{
  if (!pid)
    return;
  guint n = process_connections (s, pid) + (guint) delta;
  if (n == 0) {
    g_hash_table_remove (s->per_process, &pid);
    return;
  }
  gint64 *key = g_new (gint64, 1);
  *key = pid;
  g_hash_table_replace (s->per_process, key, GUINT_TO_POINTER (n));
}

static void
conn_free (gpointer data)
{
  Conn *c = data;
  g_queue_clear_full (&c->pending, (GDestroyNotify) g_bytes_unref);
  dhb_zmtp_peer_free (c->peer);
  g_bytes_unref (c->id);
  g_free (c->who);
  g_free (c);
}

/* "...:uid:gid:pid", as libzmq reports ipc peers (SO_PEERCRED). */
static gboolean
peer_credentials (const char *address, guint64 *uid, gint64 *pid)
{
  if (!address)
    return FALSE;
  gchar **parts = g_strsplit (address, ":", -1);
  guint n = g_strv_length (parts);
  gboolean ok = n >= 4;
  guint64 v[3] = { 0 };
  for (guint i = 0; ok && i < 3; i++)
    ok = g_ascii_string_to_unsigned (parts[n - 3 + i], 10, 0, G_MAXINT32, &v[i], NULL);
  g_strfreev (parts);
  if (ok) {
    *uid = v[0];
    *pid = (gint64) v[2];
  }
  return ok && *pid > 0;
}

static gboolean
send_to (Endpoint *e, GBytes *id, const void *data, gsize len)
{
  gsize id_len = 0;
  const void *id_data = g_bytes_get_data (id, &id_len);
  /* a full queue refuses the id frame (EAGAIN); after it the data frame
   * is always taken */
  if (zmq_send (e->sock, id_data, id_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
    return FALSE;
  return zmq_send (e->sock, data, len, ZMQ_DONTWAIT) >= 0;
}

/* send_to, and once more after libzmq has processed its pending commands:
 * its count of what a connection consumed is only updated then (at most
 * once a millisecond otherwise), so a client answered quickly can look
 * full while it is not.  ZMQ_EVENTS makes the socket process them. */
static gboolean
send_now (Endpoint *e, GBytes *id, const void *data, gsize len)
{
  if (send_to (e, id, data, len))
    return TRUE;
  int events = 0;
  size_t size = sizeof events;
  zmq_getsockopt (e->sock, ZMQ_EVENTS, &events, &size);
  return send_to (e, id, data, len);
}

/* A zero-length message closes a STREAM connection. */
static gboolean
send_close (Endpoint *e, GBytes *id)
{
  return send_to (e, id, "", 0);
}

static void
forget (DhbServer *s, Endpoint *e, Conn *c)
{
  process_count (s, c->pid, -1);
  g_hash_table_remove (e->conns, c->id);
}

/* A reply to @c: sent, or kept behind its earlier ones while libzmq's
 * queue is full; FALSE when the kept replies would exceed their bound
 * (the client does not read them). */
static gboolean
reply_to (DhbServer *s, Endpoint *e, Conn *c, const guint8 *data, gsize len)
{
  if (g_queue_is_empty (&c->pending)) {
    if (send_now (e, c->id, data, len))
      return TRUE;
    c->stalled_ms = s->now_ms;
  }
  if (c->pending_bytes + len > MAX_PENDING_BYTES)
    return FALSE;
  g_queue_push_tail (&c->pending, g_bytes_new (data, len));
  c->pending_bytes += len;
  return TRUE;
}

/* Sends what libzmq now takes of @c's kept replies. */
static void
flush_pending (DhbServer *s, Endpoint *e, Conn *c)
{
  while (!g_queue_is_empty (&c->pending)) {
    GBytes *m = g_queue_peek_head (&c->pending);
    gsize len = 0;
    const void *data = g_bytes_get_data (m, &len);
    if (!send_now (e, c->id, data, len))
      return;
    g_queue_pop_head (&c->pending);
    c->pending_bytes -= len;
    g_bytes_unref (m);
    c->stalled_ms = s->now_ms;
  }
}

/* Drops a peer: its buffers go at once; the connection is closed now, or
 * by dhb_server_sweep once libzmq has room to take the close, and the
 * entry is forgotten by the next sweep (callers may still hold it). */
static void
drop (DhbServer *s, Endpoint *e, Conn *c, const gchar *why)
{
  say (s, DHB_LOG_WARN, "dropped %s: %s", c->who, why);
  g_clear_pointer (&c->peer, dhb_zmtp_peer_free);
  g_queue_clear_full (&c->pending, (GDestroyNotify) g_bytes_unref);
  c->pending_bytes = 0;
  c->dropped = TRUE;
  c->closed = send_close (e, c->id);
}

static void
connected (DhbServer *s, Endpoint *e, GBytes *id, const char *address)
{
  guint64 uid = 0;
  gint64 pid = 0;
  gboolean known = peer_credentials (address, &uid, &pid);
  gchar *who = known
      ? g_strdup_printf ("%s peer pid %" G_GINT64_FORMAT " (uid %" G_GUINT64_FORMAT ")",
          e->role == DHB_ZMTP_ROUTER ? "request" : "event", pid, uid)
      : g_strdup_printf ("%s peer %s", e->role == DHB_ZMTP_ROUTER ? "request" : "event",
          address ? address : "?");
  guint open = dhb_server_connections (s);
  if (open >= s->cfg.max_connections || (pid && process_connections (s, pid)
          >= s->cfg.max_per_process)) {
    say (s, DHB_LOG_WARN, "refused %s: %u connections open, %u from it (at most %u, %u per "
        "process)", who, open, pid ? process_connections (s, pid) : 0,
        s->cfg.max_connections, s->cfg.max_per_process);
    send_close (e, id);
    g_free (who);
    return;
  }
  Conn *c = g_new0 (Conn, 1);
  c->id = g_bytes_ref (id);
  c->pid = pid;
  /* quota keys: pids for ipc peers; connection numbers, kept apart from
   * pids by the top bit, for peers without credentials (tcp) */
  c->client = pid ? (guint64) pid : G_GUINT64_CONSTANT (1) << 63 | s->next_connection++;
  c->connected_ms = s->now_ms;
  c->who = who;
  GByteArray *out = g_byte_array_new ();
  c->peer = dhb_zmtp_peer_new (e->role, e->role == DHB_ZMTP_ROUTER ? &s->cfg.request_limits
      : &s->cfg.event_limits, out);
  g_hash_table_insert (e->conns, c->id, c);
  process_count (s, pid, 1);
  say (s, DHB_LOG_DEBUG, "connected %s", who);
  if (!send_to (e, id, out->data, out->len))
    drop (s, e, c, "cannot send the greeting");
  g_byte_array_unref (out);
}

/* Bytes from a peer: decoded, and each complete request answered. */
static void
received (DhbServer *s, Endpoint *e, Conn *c, const guint8 *data, gsize len)
{
  GPtrArray *messages = g_ptr_array_new_with_free_func ((GDestroyNotify) g_ptr_array_unref);
  gchar *why = NULL;
  gboolean ok = dhb_zmtp_peer_feed (c->peer, data, len, messages, &why);
  /* requests completed before a violation in the same bytes are answered */
  for (guint i = 0; i < messages->len && !c->dropped; i++) {
    GByteArray *reply = s->cfg.handler (messages->pdata[i], c->client, s->cfg.user);
    if (reply && !reply_to (s, e, c, reply->data, reply->len))
      drop (s, e, c, "it does not read its replies");
    if (reply)
      g_byte_array_unref (reply);
  }
  g_ptr_array_unref (messages);
  if (!ok && !c->dropped)
    drop (s, e, c, why);
  g_free (why);
}

/* One [routing id, data] message from a STREAM socket: a connection
 * (empty data, new id), a disconnection (empty data, known id) or bytes. */
static gboolean
read_one (DhbServer *s, Endpoint *e)
{
  zmq_msg_t id_msg, data_msg;
  zmq_msg_init (&id_msg);
  if (zmq_msg_recv (&id_msg, e->sock, ZMQ_DONTWAIT) < 0) {
    zmq_msg_close (&id_msg);
    return FALSE;
  }
  zmq_msg_init (&data_msg);
  if (zmq_msg_recv (&data_msg, e->sock, 0) < 0) {
    zmq_msg_close (&id_msg);
    zmq_msg_close (&data_msg);
    return FALSE;
  }
  GBytes *id = g_bytes_new (zmq_msg_data (&id_msg), zmq_msg_size (&id_msg));
  Conn *c = g_hash_table_lookup (e->conns, id);
  gsize len = zmq_msg_size (&data_msg);
  if (len == 0 && !c)
    connected (s, e, id, zmq_msg_gets (&id_msg, "Peer-Address"));
  else if (len == 0)
    forget (s, e, c); /* the peer went away */
  else if (c && !c->dropped)
    received (s, e, c, zmq_msg_data (&data_msg), len);
  g_bytes_unref (id);
  zmq_msg_close (&id_msg);
  zmq_msg_close (&data_msg);
  return TRUE;
}

/* ---- the server ------------------------------------------------------------ */

static gboolean
endpoint_open (DhbServer *s, Endpoint *e, DhbZmtpRole role, const gchar *address, int sndhwm,
    gchar **why)
{
  e->role = role;
  e->conns = g_hash_table_new_full (g_bytes_hash, g_bytes_equal, NULL, conn_free);
  e->sock = zmq_socket (s->ctx, ZMQ_STREAM);
  int zero = 0, one = 1, rcvhwm = s->cfg.rcvhwm;
  if (!e->sock || zmq_setsockopt (e->sock, ZMQ_LINGER, &zero, sizeof zero) != 0
      || zmq_setsockopt (e->sock, ZMQ_STREAM_NOTIFY, &one, sizeof one) != 0
      || zmq_setsockopt (e->sock, ZMQ_SNDHWM, &sndhwm, sizeof sndhwm) != 0
      || zmq_setsockopt (e->sock, ZMQ_RCVHWM, &rcvhwm, sizeof rcvhwm) != 0
      || zmq_bind (e->sock, address) != 0) {
    *why = g_strdup_printf ("cannot listen on %s: %s", address, zmq_strerror (errno));
    return FALSE;
  }
  return TRUE;
}

static void
endpoint_close (Endpoint *e)
{
  if (e->conns)
    g_hash_table_destroy (e->conns);
  if (e->sock)
    zmq_close (e->sock);
}

DhbServer *
dhb_server_new (const DhbServerConfig *cfg, gchar **why)
{
  DhbServer *s = g_new0 (DhbServer, 1);
  s->cfg = *cfg;
  s->ctx = zmq_ctx_new ();
  s->per_process = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, NULL);
  *why = NULL;
  if (!endpoint_open (s, &s->requests, DHB_ZMTP_ROUTER, cfg->endpoint, cfg->request_sndhwm,
          why)
      || !endpoint_open (s, &s->events, DHB_ZMTP_PUB, cfg->events_endpoint,
          cfg->event_sndhwm, why)) {
    dhb_server_free (s);
    return NULL;
  }
  return s;
}

void
dhb_server_free (DhbServer *s)
{
  if (!s)
    return;
  endpoint_close (&s->requests);
  endpoint_close (&s->events);
  g_hash_table_destroy (s->per_process);
  zmq_ctx_term (s->ctx);
  g_free (s);
}

guint
dhb_server_connections (const DhbServer *s)
{
  return g_hash_table_size (s->requests.conns) + g_hash_table_size (s->events.conns);
}

/* Moves the kept replies of every client that has some. */
static void
flush_all (DhbServer *s)
{
  GHashTableIter it;
  gpointer value;
  g_hash_table_iter_init (&it, s->requests.conns);
  while (g_hash_table_iter_next (&it, NULL, &value)) {
    Conn *c = value;
    if (!c->dropped && !g_queue_is_empty (&c->pending))
      flush_pending (s, &s->requests, c);
  }
}

gboolean
dhb_server_serve (DhbServer *s, int timeout_ms, gint64 now_ms)
{
  s->now_ms = now_ms;
  zmq_pollitem_t items[2] = {
    { s->requests.sock, 0, ZMQ_POLLIN, 0 },
    { s->events.sock, 0, ZMQ_POLLIN, 0 },
  };
  int n = zmq_poll (items, 2, timeout_ms);
  if (n < 0)
    return errno == EINTR;
  for (int i = 0; i < SERVE_BATCH && read_one (s, &s->requests); i++)
    ;
  for (int i = 0; i < SERVE_BATCH && read_one (s, &s->events); i++)
    ;
  flush_all (s);
  return TRUE;
}

void
dhb_server_publish (DhbServer *s, const gchar *topic, const gchar *json)
{
  GByteArray *msg = g_byte_array_new ();
  dhb_zmtp_encode_frame (msg, topic, strlen (topic), TRUE);
  dhb_zmtp_encode_frame (msg, json, strlen (json), FALSE);
  GHashTableIter it;
  gpointer value;
  g_hash_table_iter_init (&it, s->events.conns);
  while (g_hash_table_iter_next (&it, NULL, &value)) {
    Conn *c = value;
    if (c->dropped || !dhb_zmtp_peer_ready (c->peer)
        || !dhb_zmtp_peer_subscribed (c->peer, topic))
      continue;
    /* a subscriber that does not keep up misses events, as with PUB */
    if (!send_now (&s->events, c->id, msg->data, msg->len))
      say (s, DHB_LOG_DEBUG, "%s is not reading: an event for %s was not sent", c->who,
          topic);
  }
  g_byte_array_unref (msg);
}

static void
sweep_endpoint (DhbServer *s, Endpoint *e)
{
  GPtrArray *late = g_ptr_array_new (), *stalled = g_ptr_array_new ();
  GHashTableIter it;
  gpointer value;
  g_hash_table_iter_init (&it, e->conns);
  while (g_hash_table_iter_next (&it, NULL, &value)) {
    Conn *c = value;
    if (c->dropped && (c->closed || (c->closed = send_close (e, c->id)))) {
      process_count (s, c->pid, -1);
      g_hash_table_iter_remove (&it);
    } else if (!c->dropped && !dhb_zmtp_peer_ready (c->peer)
        && s->now_ms - c->connected_ms > DHB_SERVER_HANDSHAKE_MS) {
      g_ptr_array_add (late, c); /* dropped after the walk */
    } else if (!c->dropped && !g_queue_is_empty (&c->pending)
        && s->now_ms - c->stalled_ms > STALL_MS) {
      g_ptr_array_add (stalled, c);
    }
  }
  for (guint i = 0; i < late->len; i++)
    drop (s, e, late->pdata[i], "no handshake within 5 s");
  for (guint i = 0; i < stalled->len; i++)
    drop (s, e, stalled->pdata[i], "it does not read its replies");
  g_ptr_array_unref (late);
  g_ptr_array_unref (stalled);
}

void
dhb_server_sweep (DhbServer *s, gint64 now_ms)
{
  s->now_ms = now_ms;
  sweep_endpoint (s, &s->requests);
  sweep_endpoint (s, &s->events);
}
