/* The broker's side of ZMTP 3.0 (the ZeroMQ wire protocol, NULL security
 * mechanism), decoded by us from the raw bytes a ZMQ_STREAM socket hands
 * over, so that every limit is ours to enforce.
 *
 * Why not a ROUTER/PUB socket: libzmq queues every frame of a multi-part
 * message until its last one arrives, and ZMQ_MAXMSGSIZE bounds single
 * frames only, so one peer sending endless MORE frames grows the broker
 * without bound (1.7 GB in 4 s, docs/broker.md "Limits").  Here a peer
 * that exceeds a limit is dropped at the first byte too many.
 *
 * Two roles: a ROUTER for requests (peers are DEALER or REQ sockets) and a
 * PUB for events (peers are SUB or XSUB sockets; their subscriptions are
 * kept here and matched by prefix, as ZeroMQ does).  No GStreamer, no
 * sockets: bytes in, messages and bytes out, so the fuzzer drives it. */
#ifndef DHB_ZMTP_H
#define DHB_ZMTP_H

#include <glib.h>

G_BEGIN_DECLS

typedef enum {
  DHB_ZMTP_ROUTER,
  DHB_ZMTP_PUB,
} DhbZmtpRole;

typedef struct {
  gsize max_frame;        /* bytes in one frame or command */
  guint max_frames;       /* frames in one message */
  gsize max_message;      /* bytes in one message, all frames */
  guint max_subscriptions;/* PUB: topics one peer may subscribe */
} DhbZmtpLimits;

typedef struct _DhbZmtpPeer DhbZmtpPeer;

/* A peer that has just connected; our greeting and READY command are
 * appended to @out (send them at once). */
DhbZmtpPeer *dhb_zmtp_peer_new (DhbZmtpRole role, const DhbZmtpLimits *limits,
    GByteArray *out);
void dhb_zmtp_peer_free (DhbZmtpPeer *p);

/* Feeds @len received bytes.  Complete messages are appended to
 * @messages, each a GPtrArray of GBytes frames (free with
 * g_ptr_array_unref); PUB peers' subscriptions are applied here and yield
 * no messages.  FALSE on a protocol violation or an exceeded limit: drop
 * the connection; *@why (g_free it) says what happened. */
gboolean dhb_zmtp_peer_feed (DhbZmtpPeer *p, const guint8 *data, gsize len,
    GPtrArray *messages, gchar **why);

/* TRUE once both sides have exchanged READY: messages may be sent. */
gboolean dhb_zmtp_peer_ready (const DhbZmtpPeer *p);

/* PUB: TRUE if one of the peer's subscriptions is a prefix of @topic. */
gboolean dhb_zmtp_peer_subscribed (const DhbZmtpPeer *p, const gchar *topic);

/* Bytes buffered for this peer (partial frames and messages). */
gsize dhb_zmtp_peer_buffered (const DhbZmtpPeer *p);

/* Appends one message frame to @out (MORE set when @more). */
void dhb_zmtp_encode_frame (GByteArray *out, const void *data, gsize len, gboolean more);

G_END_DECLS

#endif
