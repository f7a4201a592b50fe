/* ZMTP 3.0, NULL mechanism, the broker's side (zmtp.h).  The grammar is
 * ZeroMQ RFC 23 (rfc.zeromq.org/spec/23); libzmq 4.3 peers speak it. */
#include "zmtp.h"

#include <string.h>

#define GREETING_SIZE 64
#define FLAG_MORE 0x01
#define FLAG_LONG 0x02
#define FLAG_COMMAND 0x04
/* input decoded per round, so a large feed never buffers more than this
 * on top of one partial frame */
#define FEED_CHUNK 65536

typedef enum {
  STATE_GREETING,   /* waiting for the peer's 64-byte greeting */
  STATE_HANDSHAKE,  /* waiting for its READY command */
  STATE_READY,      /* messages flow */
} State;

struct _DhbZmtpPeer {
  DhbZmtpRole role;
  DhbZmtpLimits limits;
  State state;
  GByteArray *in;              /* received, not decoded yet */
  GPtrArray *message;          /* frames (GBytes) of the message being received */
  gsize message_bytes;
  GPtrArray *subscriptions;    /* PUB: topics (GBytes) */
  gchar *error;                /* the first violation */
};

/* The outcome of decoding one unit (greeting, frame) from the input. */
typedef enum {
  STEP_NEED_MORE,
  STEP_DONE,
  STEP_FAILED,
} Step;

static Step
violation (DhbZmtpPeer *p, const gchar *fmt, ...) G_GNUC_PRINTF (2, 3);

static Step
violation (DhbZmtpPeer *p, const gchar *fmt, ...)
{
  if (!p->error) {
    va_list ap;
    va_start (ap, fmt);
    p->error = g_strdup_vprintf (fmt, ap);
    va_end (ap);
  }
  return STEP_FAILED;
}

/* ---- what we send ---------------------------------------------------- */

static void
append_u32 (GByteArray *out, guint32 v)
{
  guint8 b[4] = { (guint8) (v >> 24), (guint8) (v >> 16), (guint8) (v >> 8), (guint8) v };
  g_byte_array_append (out, b, 4);
}

/* A frame header: flags and a 1- or 8-byte size. */
static void
append_header (GByteArray *out, guint8 flags, gsize len)
{
  if (len <= 255) {
    guint8 h[2] = { flags, (guint8) len };
    g_byte_array_append (out, h, 2);
    return;
  }
  guint8 h[9] = { (guint8) (flags | FLAG_LONG) };
  for (int i = 0; i < 8; i++)
    h[1 + i] = (guint8) ((guint64) len >> (56 - 8 * i));
  g_byte_array_append (out, h, 9);
}

void
dhb_zmtp_encode_frame (GByteArray *out, const void *data, gsize len, gboolean more)
{
  append_header (out, more ? FLAG_MORE : 0, len);
  g_byte_array_append (out, data, (guint) len);
}

static void
append_property (GByteArray *body, const gchar *name, const gchar *value)
{
  guint8 n = (guint8) strlen (name);
  g_byte_array_append (body, &n, 1);
  g_byte_array_append (body, (const guint8 *) name, n);
  append_u32 (body, (guint32) strlen (value));
  g_byte_array_append (body, (const guint8 *) value, (guint) strlen (value));
}

/* Our greeting (version 3.0: peers then subscribe with messages, not the
 * 3.1 commands) and READY with our socket type, as libzmq sends them. */
static void
send_handshake (DhbZmtpRole role, GByteArray *out)
{
  guint8 greeting[GREETING_SIZE] = { 0xFF };
  greeting[9] = 0x7F;
  greeting[10] = 3;
  greeting[11] = 0;
  memcpy (greeting + 12, "NULL", 4);
  g_byte_array_append (out, greeting, sizeof greeting);

  GByteArray *body = g_byte_array_new ();
  guint8 name_len = 5;
  g_byte_array_append (body, &name_len, 1);
  g_byte_array_append (body, (const guint8 *) "READY", 5);
  append_property (body, "Socket-Type", role == DHB_ZMTP_ROUTER ? "ROUTER" : "PUB");
  if (role == DHB_ZMTP_ROUTER)
    append_property (body, "Identity", "");
  append_header (out, FLAG_COMMAND, body->len);
  g_byte_array_append (out, body->data, body->len);
  g_byte_array_unref (body);
}

DhbZmtpPeer *
dhb_zmtp_peer_new (DhbZmtpRole role, const DhbZmtpLimits *limits, GByteArray *out)
{
  DhbZmtpPeer *p = g_new0 (DhbZmtpPeer, 1);
  p->role = role;
  p->limits = *limits;
  p->in = g_byte_array_new ();
  p->message = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  p->subscriptions = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  send_handshake (role, out);
  return p;
}

void
dhb_zmtp_peer_free (DhbZmtpPeer *p)
{
  if (!p)
    return;
  g_byte_array_unref (p->in);
  g_ptr_array_unref (p->message);
  g_ptr_array_unref (p->subscriptions);
  g_free (p->error);
  g_free (p);
}

gboolean
dhb_zmtp_peer_ready (const DhbZmtpPeer *p)
{
  return p->state == STATE_READY;
}

gsize
dhb_zmtp_peer_buffered (const DhbZmtpPeer *p)
{
  return p->in->len + p->message_bytes;
}

/* ---- subscriptions (PUB) ---------------------------------------------- */

/* memcmp of @len bytes that may be none (an empty GBytes has no data). */
static gboolean
same_bytes (const guint8 *a, const void *b, gsize len)
{
  return len == 0 || memcmp (a, b, len) == 0;
}

static Step
subscribe (DhbZmtpPeer *p, const guint8 *topic, gsize len, gboolean add)
{
  for (guint i = 0; i < p->subscriptions->len; i++) {
    gsize n = 0;
    const guint8 *t = g_bytes_get_data (p->subscriptions->pdata[i], &n);
    if (!add && n == len && same_bytes (t, topic, len)) {
      g_ptr_array_remove_index_fast (p->subscriptions, i);
      return STEP_DONE;
    }
  }
  if (!add)
    return STEP_DONE;
  if (p->subscriptions->len >= p->limits.max_subscriptions)
    return violation (p, "more than %u subscriptions", p->limits.max_subscriptions);
  g_ptr_array_add (p->subscriptions, g_bytes_new (topic, len));
  return STEP_DONE;
}

gboolean
dhb_zmtp_peer_subscribed (const DhbZmtpPeer *p, const gchar *topic)
{
  gsize topic_len = strlen (topic);
  for (guint i = 0; i < p->subscriptions->len; i++) {
    gsize n = 0;
    const guint8 *t = g_bytes_get_data (p->subscriptions->pdata[i], &n);
    if (n <= topic_len && same_bytes (t, topic, n))
      return TRUE;
  }
  return FALSE;
}

/* ---- what we receive ---------------------------------------------------- */

static Step
read_greeting (DhbZmtpPeer *p)
{
  const guint8 *g = p->in->data;
  /* judged as early as the bytes allow: a peer of another protocol is
   * dropped without waiting for 64 bytes */
  if (p->in->len >= 1 && g[0] != 0xFF)
    return violation (p, "not a ZMTP 3 peer (greeting starts with 0x%02x)", g[0]);
  if (p->in->len >= 10 && !(g[9] & 1))
    return violation (p, "a ZMTP 1.0 peer (unsupported)");
  if (p->in->len >= 11 && g[10] < 3)
    return violation (p, "a ZMTP %u.x peer (3.0 or later needed)", g[10]);
  if (p->in->len < GREETING_SIZE)
    return STEP_NEED_MORE;
  static const guint8 null_mechanism[20] = { 'N', 'U', 'L', 'L' };
  if (memcmp (g + 12, null_mechanism, sizeof null_mechanism) != 0)
    return violation (p, "security mechanism other than NULL");
  g_byte_array_remove_range (p->in, 0, GREETING_SIZE);
  p->state = STATE_HANDSHAKE;
  return STEP_DONE;
}

static gboolean
socket_type_fits (DhbZmtpRole role, const guint8 *type, gsize len)
{
#define IS(name) (len == strlen (name) && memcmp (type, name, len) == 0)
  if (role == DHB_ZMTP_ROUTER)
    return IS ("DEALER") || IS ("REQ");
  return IS ("SUB") || IS ("XSUB");
#undef IS
}

/* READY's properties: the peer's Socket-Type must be one we serve. */
static Step
read_ready (DhbZmtpPeer *p, const guint8 *props, gsize len)
{
  gboolean typed = FALSE;
  gsize i = 0;
  while (i < len) {
    gsize name_len = props[i++];
    if (name_len == 0 || len - i < name_len + 4)
      return violation (p, "malformed READY property");
    const guint8 *name = props + i;
    i += name_len;
    guint32 value_len = (guint32) props[i] << 24 | (guint32) props[i + 1] << 16
        | (guint32) props[i + 2] << 8 | props[i + 3];
    i += 4;
    if (len - i < value_len)
      return violation (p, "malformed READY property value");
    if (name_len == 11 && g_ascii_strncasecmp ((const gchar *) name, "Socket-Type", 11) == 0) {
      if (!socket_type_fits (p->role, props + i, value_len))
        return violation (p, "a %.*s socket cannot talk to our %s", (int) MIN (value_len, 16),
            (const gchar *) (props + i), p->role == DHB_ZMTP_ROUTER ? "ROUTER" : "PUB");
      typed = TRUE;
    }
    i += value_len;
  }
  if (!typed)
    return violation (p, "READY without Socket-Type");
  p->state = STATE_READY;
  return STEP_DONE;
}

static gboolean
command_is (const guint8 *name, gsize len, const gchar *what)
{
  return len == strlen (what) && memcmp (name, what, len) == 0;
}

static Step
read_command (DhbZmtpPeer *p, const guint8 *body, gsize len)
{
  if (len < 1 || (gsize) body[0] + 1 > len)
    return violation (p, "malformed command");
  const guint8 *name = body + 1;
  gsize name_len = body[0];
  const guint8 *rest = name + name_len;
  gsize rest_len = len - 1 - name_len;
  if (command_is (name, name_len, "ERROR"))
    return violation (p, "the peer sent ERROR");
  if (p->state == STATE_HANDSHAKE) {
    if (!command_is (name, name_len, "READY"))
      return violation (p, "expected READY");
    return read_ready (p, rest, rest_len);
  }
  /* ZMTP 3.1 peers may subscribe with commands; PING and others are
   * ignored (our peers do not ask for heartbeats) */
  if (p->role == DHB_ZMTP_PUB && command_is (name, name_len, "SUBSCRIBE"))
    return subscribe (p, rest, rest_len, TRUE);
  if (p->role == DHB_ZMTP_PUB && command_is (name, name_len, "CANCEL"))
    return subscribe (p, rest, rest_len, FALSE);
  return STEP_DONE;
}

/* A complete message: a request for the ROUTER, a subscription for the
 * PUB (one frame, 0x01 or 0x00 then the topic; anything else is dropped,
 * as a PUB socket does). */
static Step
finish_message (DhbZmtpPeer *p, GPtrArray *messages)
{
  GPtrArray *m = p->message;
  p->message = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  p->message_bytes = 0;
  if (p->role == DHB_ZMTP_ROUTER) {
    g_ptr_array_add (messages, m);
    return STEP_DONE;
  }
  Step st = STEP_DONE;
  gsize n = 0;
  const guint8 *d = m->len == 1 ? g_bytes_get_data (m->pdata[0], &n) : NULL;
  if (n >= 1 && d[0] <= 1)
    st = subscribe (p, d + 1, n - 1, d[0] == 1);
  g_ptr_array_unref (m);
  return st;
}

static Step
read_message_frame (DhbZmtpPeer *p, guint8 flags, const guint8 *body, gsize len,
    GPtrArray *messages)
{
  if (p->state != STATE_READY)
    return violation (p, "message before READY");
  if (p->message->len + 1 > p->limits.max_frames)
    return violation (p, "a message of more than %u frames", p->limits.max_frames);
  if (p->message_bytes + len > p->limits.max_message)
    return violation (p, "a message of more than %" G_GSIZE_FORMAT " bytes",
        p->limits.max_message);
  g_ptr_array_add (p->message, g_bytes_new (body, len));
  p->message_bytes += len;
  return flags & FLAG_MORE ? STEP_DONE : finish_message (p, messages);
}

/* One frame (command or message part) from the input. */
static Step
read_frame (DhbZmtpPeer *p, GPtrArray *messages)
{
  const guint8 *d = p->in->data;
  gsize have = p->in->len;
  if (have < 1)
    return STEP_NEED_MORE;
  guint8 flags = d[0];
  if (flags & ~(FLAG_MORE | FLAG_LONG | FLAG_COMMAND))
    return violation (p, "reserved frame flags 0x%02x", flags);
  gsize header = flags & FLAG_LONG ? 9 : 2;
  if (have < header)
    return STEP_NEED_MORE;
  guint64 size = d[1];
  if (flags & FLAG_LONG)
    for (gsize i = 2; i < 9; i++)
      size = size << 8 | d[i];
  /* judged on the header: a frame too large is never buffered */
  if (size > p->limits.max_frame)
    return violation (p, "a frame of %" G_GUINT64_FORMAT " bytes (at most %" G_GSIZE_FORMAT ")",
        size, p->limits.max_frame);
  if (have - header < size)
    return STEP_NEED_MORE;
  Step st;
  if (flags & FLAG_COMMAND) {
    if (flags & FLAG_MORE)
      return violation (p, "a command with the MORE flag");
    if (p->message->len)
      return violation (p, "a command inside a multi-part message");
    st = read_command (p, d + header, (gsize) size);
  } else {
    st = read_message_frame (p, flags, d + header, (gsize) size, messages);
  }
  if (st == STEP_DONE)
    g_byte_array_remove_range (p->in, 0, (guint) (header + size));
  return st;
}

static Step
decode (DhbZmtpPeer *p, GPtrArray *messages)
{
  for (;;) {
    Step st = p->state == STATE_GREETING ? read_greeting (p) : read_frame (p, messages);
    if (st != STEP_DONE)
      return st;
  }
}

gboolean
dhb_zmtp_peer_feed (DhbZmtpPeer *p, const guint8 *data, gsize len, GPtrArray *messages,
    gchar **why)
{
  *why = NULL;
  if (p->error) {
    *why = g_strdup (p->error);
    return FALSE;
  }
  while (len > 0) {
    gsize n = MIN (len, FEED_CHUNK);
    g_byte_array_append (p->in, data, (guint) n);
    data += n;
    len -= n;
    if (decode (p, messages) == STEP_FAILED) {
      *why = g_strdup (p->error);
      return FALSE;
    }
  }
  return TRUE;
}
