/* The broker client: a DEALER socket for the caller's requests, and
 * optional keep-alive and event threads with sockets of their own.
 * docs/broker.md is the message spec.
 *
 * Locks: @lock guards the client's state and is never held across network
 * I/O, so dhb_client_update_registration and dhb_client_last_error return
 * at once whatever the broker does; @io_lock serialises the callers'
 * requests on the caller socket.  The background threads never touch the
 * caller socket. */
#include "datahub/broker.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>
#include <json-glib/json-glib.h>
#include <sodium.h>
#include <zmq.h>

#include "proof.h"
#include "strict-json.h"

#define DISCOVER_BACKOFF_FIRST_MS 10
#define DISCOVER_BACKOFF_MAX_MS 500
#define DEFAULT_HEARTBEAT_MS 1000
/* the broker's heartbeat is believed within these bounds */
#define MIN_HEARTBEAT_MS 10
#define MAX_HEARTBEAT_MS 60000
/* a keep-alive request waits at most this long (and at most one
 * heartbeat), so a silent broker never holds the thread for long */
#define KEEPER_REQUEST_MAX_MS 1000
/* background threads look at the stop flag this often while waiting */
#define STOP_POLL_MS 50
#define EVENT_POLL_MS 100
/* frames from the broker larger than this drop the connection */
#define MAX_REPLY_FRAME (4 << 20)
#define HEX_HASH_LEN (2 * DH_HASH_SIZE)

/* A registration owned by the client (the caller's strings are copied). */
typedef struct {
  gchar *channel, *shm_name, *schema;
  guint8 secret[DH_SECRET_SIZE];
  gboolean has_secret;
  gint64 pid;
} OwnedRegistration;

/* A socket and the ids of its requests; used by one thread at a time. */
typedef struct {
  void *sock;
  gint64 next_id;
} Link;

struct dhb_client {
  pthread_mutex_t io_lock;      /* the caller link */
  Link caller;

  /* pthread primitives, not GMutex: GLib's futex-based locks are invisible
   * to ThreadSanitizer, which checks this client in CI */
  pthread_mutex_t lock;         /* everything below */
  void *ctx;
  gchar *endpoint;
  gchar id[64];
  gchar last_error[256];
  gchar events[512];            /* learned from the broker's replies */
  guint heartbeat_ms;           /* the keep-alive period, from the broker */
  gint stop_flag;               /* atomic: the threads are to stop */

  /* the last dhb_discover, so the consumer keep-alive can do it again */
  gchar *disc_channel, *disc_schema;
  guint8 disc_secret[DH_SECRET_SIZE];
  gboolean disc_has_secret;

  pthread_cond_t stop_cond;     /* CLOCK_MONOTONIC */
  pthread_t keeper;
  gboolean has_keeper;
  OwnedRegistration keep_reg;   /* producer keep-alive when channel is set */
  gboolean keep_reg_dirty;      /* keep_reg changed: send it now */
  guint keep_reg_generation;    /* changes with every update and DEREG */
  gchar *keep_consumer_channel; /* consumer keep-alive */
  dhb_registration_fn reg_fn;
  void *reg_user_data;
  dhb_status reg_reported;      /* what reg_fn was last told */

  pthread_t event_thread;
  gboolean has_event_thread;
  gchar *sub_channel;
  dhb_event_fn event_fn;
  void *event_user_data;
};

static const char *const status_names[] = {
  [DHB_OK] = "OK",
  [DHB_NOT_FOUND] = "NOT_FOUND",
  [DHB_CONFLICT] = "CONFLICT",
  [DHB_SCHEMA_MISMATCH] = "SCHEMA_MISMATCH",
  [DHB_AUTH_FAILED] = "AUTH_FAILED",
  [DHB_BAD_REQUEST] = "BAD_REQUEST",
  [DHB_TIMEOUT] = "TIMEOUT",
  [DHB_ERROR] = "ERROR",
};

const char *
dhb_status_name (dhb_status status)
{
  if ((unsigned) status < G_N_ELEMENTS (status_names))
    return status_names[status];
  return "UNKNOWN";
}

static dhb_status
status_from_name (const char *name)
{
  for (unsigned i = 0; i <= DHB_BAD_REQUEST; i++)
    if (strcmp (name, status_names[i]) == 0)
      return (dhb_status) i;
  return DHB_ERROR;
}

/* An error text for the caller of the current request. */
typedef struct {
  gchar text[256];
} Why;

static void
say (Why *why, const char *fmt, ...) G_GNUC_PRINTF (2, 3);

static void
say (Why *why, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_vsnprintf (why->text, sizeof why->text, fmt, ap);
  va_end (ap);
}

static void
publish_error (dhb_client *c, const Why *why)
{
  pthread_mutex_lock (&c->lock);
  g_strlcpy (c->last_error, why->text, sizeof c->last_error);
  pthread_mutex_unlock (&c->lock);
}

void
dhb_client_last_error (dhb_client *c, char *buf, size_t len)
{
  pthread_mutex_lock (&c->lock);
  g_strlcpy (buf, c->last_error, len);
  pthread_mutex_unlock (&c->lock);
}

const char *
dhb_client_id (const dhb_client *c)
{
  return c->id;
}

/* ---- sockets ------------------------------------------------------------- */

static void *
open_dealer (void *ctx, const char *endpoint)
{
  void *s = zmq_socket (ctx, ZMQ_DEALER);
  int zero = 0, one = 1;
  gint64 max_frame = MAX_REPLY_FRAME;
  /* LINGER 0: closing never blocks on an absent broker; IMMEDIATE: while
   * the broker is down, sends wait (and time out) instead of queueing
   * stale requests for a later broker */
  if (!s || zmq_setsockopt (s, ZMQ_LINGER, &zero, sizeof zero) != 0
      || zmq_setsockopt (s, ZMQ_IMMEDIATE, &one, sizeof one) != 0
      || zmq_setsockopt (s, ZMQ_MAXMSGSIZE, &max_frame, sizeof max_frame) != 0
      || zmq_connect (s, endpoint) != 0) {
    int err = errno ? errno : EINVAL;
    if (s)
      zmq_close (s);
    errno = err;
    return NULL;
  }
  return s;
}

int
dhb_client_new (const char *endpoint, dhb_client **out)
{
  *out = NULL;
  if (sodium_init () < 0)
    return -EIO;
  const char *ep = endpoint && *endpoint ? endpoint : dhb_default_endpoint ();
  int rc = dhb_endpoint_check (ep, NULL, 0);
  if (rc != 0)
    return rc;
  dhb_client *c = g_new0 (dhb_client, 1);
  pthread_mutex_init (&c->lock, NULL);
  pthread_mutex_init (&c->io_lock, NULL);
  pthread_condattr_t attr;
  pthread_condattr_init (&attr);
  pthread_condattr_setclock (&attr, CLOCK_MONOTONIC);
  pthread_cond_init (&c->stop_cond, &attr);
  pthread_condattr_destroy (&attr);
  c->endpoint = g_strdup (ep);
  /* 128 random bits: a client id is what lets its holder heartbeat or
   * deregister its registrations, so it must not be guessable */
  guint8 nonce[16];
  gchar hex[33];
  randombytes_buf (nonce, sizeof nonce);
  dhb_hex_encode (nonce, sizeof nonce, hex);
  g_snprintf (c->id, sizeof c->id, "%d-%s", (int) getpid (), hex);
  c->caller.next_id = 1;
  c->heartbeat_ms = DEFAULT_HEARTBEAT_MS;
  c->reg_reported = DHB_OK;
  c->ctx = zmq_ctx_new ();
  c->caller.sock = c->ctx ? open_dealer (c->ctx, c->endpoint) : NULL;
  if (!c->caller.sock) {
    int err = errno ? errno : EINVAL;
    dhb_client_free (c);
    return -err;
  }
  *out = c;
  return 0;
}

static void
registration_clear (OwnedRegistration *r)
{
  g_clear_pointer (&r->channel, g_free);
  g_clear_pointer (&r->shm_name, g_free);
  g_clear_pointer (&r->schema, g_free);
  sodium_memzero (r->secret, sizeof r->secret);
  r->has_secret = FALSE;
}

static void
forget_discovery (dhb_client *c)
{
  g_clear_pointer (&c->disc_channel, g_free);
  g_clear_pointer (&c->disc_schema, g_free);
  sodium_memzero (c->disc_secret, sizeof c->disc_secret);
  c->disc_has_secret = FALSE;
}

void
dhb_client_free (dhb_client *c)
{
  if (!c)
    return;
  pthread_mutex_lock (&c->lock);
  g_atomic_int_set (&c->stop_flag, 1);
  pthread_cond_broadcast (&c->stop_cond);
  pthread_mutex_unlock (&c->lock);
  if (c->has_keeper)
    pthread_join (c->keeper, NULL);
  if (c->has_event_thread)
    pthread_join (c->event_thread, NULL);
  if (c->caller.sock)
    zmq_close (c->caller.sock);
  if (c->ctx)
    zmq_ctx_term (c->ctx);
  registration_clear (&c->keep_reg);
  forget_discovery (c);
  g_free (c->keep_consumer_channel);
  g_free (c->sub_channel);
  g_free (c->endpoint);
  pthread_mutex_destroy (&c->lock);
  pthread_mutex_destroy (&c->io_lock);
  pthread_cond_destroy (&c->stop_cond);
  g_free (c);
}

/* ---- one request ------------------------------------------------------- */

static gint64
now_ms (void)
{
  return g_get_monotonic_time () / 1000;
}

static gboolean
stopping (dhb_client *c)
{
  return g_atomic_int_get (&c->stop_flag) != 0;
}

/* Waits for @events on @sock until @deadline; a background thread
 * (@stoppable) also gives up when the client is being freed. */
static gboolean
wait_socket (dhb_client *c, void *sock, short events, gint64 deadline, gboolean stoppable)
{
  for (;;) {
    gint64 left = deadline - now_ms ();
    if (left <= 0 || (stoppable && stopping (c)))
      return FALSE;
    zmq_pollitem_t item = { sock, 0, events, 0 };
    int n = zmq_poll (&item, 1, (long) (stoppable ? MIN (left, STOP_POLL_MS) : left));
    if (n > 0)
      return TRUE;
    if (n < 0 && errno != EINTR)
      return FALSE;
  }
}

/* Reads one reply; its parser (the object is its root) or NULL for a
 * malformed one, which the caller skips.  Replies are checked like any
 * input: UTF-8, one object, no duplicate members. */
static JsonParser *
receive_reply (void *sock)
{
  /* the reply arrives as [empty delimiter, JSON] */
  zmq_msg_t part;
  zmq_msg_init (&part);
  GBytes *text = NULL;
  int more = 1;
  while (more) {
    if (zmq_msg_recv (&part, sock, 0) < 0)
      break;
    more = zmq_msg_more (&part);
    if (zmq_msg_size (&part) > 0) {
      if (text)
        g_bytes_unref (text);
      text = g_bytes_new (zmq_msg_data (&part), zmq_msg_size (&part));
    }
  }
  zmq_msg_close (&part);
  if (!text)
    return NULL;
  gsize len = 0;
  const gchar *data = g_bytes_get_data (text, &len);
  JsonParser *parser = NULL;
  gchar *why = NULL;
  if (!memchr (data, '\0', len) && g_utf8_validate (data, (gssize) len, NULL))
    parser = dhb_parse_object (data, len, &why);
  g_free (why);
  g_bytes_unref (text);
  return parser;
}

static JsonObject *
reply_object (JsonParser *parser)
{
  return json_node_get_object (json_parser_get_root (parser));
}

/* A string member, or @fallback when it is absent or not a string. */
static const gchar *
member_string (JsonObject *o, const gchar *name, const gchar *fallback)
{
  JsonNode *n = json_object_get_member (o, name);
  if (n && JSON_NODE_HOLDS_VALUE (n) && json_node_get_value_type (n) == G_TYPE_STRING)
    return json_node_get_string (n);
  return fallback;
}

static gint64
member_int (JsonObject *o, const gchar *name, gint64 fallback)
{
  JsonNode *n = json_object_get_member (o, name);
  if (n && JSON_NODE_HOLDS_VALUE (n) && json_node_get_value_type (n) == G_TYPE_INT64)
    return json_node_get_int (n);
  return fallback;
}

static gboolean
member_bool (JsonObject *o, const gchar *name)
{
  JsonNode *n = json_object_get_member (o, name);
  return n && JSON_NODE_HOLDS_VALUE (n) && json_node_get_value_type (n) == G_TYPE_BOOLEAN
      && json_node_get_boolean (n);
}

/* Remembers the timing and event endpoint that OK replies carry.  The
 * keep-alive period is the broker's heartbeat, within bounds, and at most
 * a third of its expiry, so that one late heartbeat never expires us. */
static void
learn_from_reply (dhb_client *c, JsonObject *obj)
{
  const gchar *events = member_string (obj, "events", NULL);
  gint64 hb = member_int (obj, "heartbeat_ms", 0);
  gint64 expiry = member_int (obj, "expiry_ms", 0);
  pthread_mutex_lock (&c->lock);
  if (events && *events)
    g_strlcpy (c->events, events, sizeof c->events);
  if (hb > 0) {
    hb = CLAMP (hb, MIN_HEARTBEAT_MS, MAX_HEARTBEAT_MS);
    if (expiry > 0 && hb > expiry / 3)
      hb = MAX (expiry / 3, MIN_HEARTBEAT_MS);
    c->heartbeat_ms = (guint) hb;
  }
  pthread_mutex_unlock (&c->lock);
}

/* Sends @request on @l and waits for its reply until @timeout_ms.  On
 * DHB_OK..DHB_BAD_REQUEST *@reply (if given) is the reply's parser
 * (unref it); @why gets the error text. */
static dhb_status
exchange (dhb_client *c, Link *l, JsonNode *request, int timeout_ms, gboolean stoppable,
    JsonParser **reply, Why *why)
{
  if (reply)
    *reply = NULL;
  gint64 id = l->next_id++;
  json_object_set_int_member (json_node_get_object (request), "id", id);
  gchar *text = json_to_string (request, FALSE);
  gint64 deadline = now_ms () + MAX (timeout_ms, 1);
  if (!wait_socket (c, l->sock, ZMQ_POLLOUT, deadline, stoppable)) {
    say (why, "broker at %s not reachable within %d ms", c->endpoint, timeout_ms);
    g_free (text);
    return DHB_TIMEOUT;
  }
  if (zmq_send (l->sock, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0
      || zmq_send (l->sock, text, strlen (text), ZMQ_DONTWAIT) < 0) {
    say (why, "sending to the broker failed: %s", zmq_strerror (errno));
    g_free (text);
    return DHB_TIMEOUT;
  }
  g_free (text);
  say (why, "no reply from the broker at %s within %d ms", c->endpoint, timeout_ms);
  while (wait_socket (c, l->sock, ZMQ_POLLIN, deadline, stoppable)) {
    JsonParser *parser = receive_reply (l->sock);
    /* replies to earlier requests that timed out are skipped */
    if (!parser || member_int (reply_object (parser), "id", 0) != id) {
      if (parser)
        g_object_unref (parser);
      continue;
    }
    JsonObject *obj = reply_object (parser);
    const gchar *name = member_string (obj, "status", "");
    dhb_status status = status_from_name (name);
    if (status == DHB_OK)
      learn_from_reply (c, obj);
    say (why, "%s", member_string (obj, "error", status == DHB_OK ? "" : name));
    if (reply)
      *reply = parser;
    else
      g_object_unref (parser);
    return status;
  }
  return DHB_TIMEOUT;
}

/* A caller's request on the caller link; the error text is published. */
static dhb_status
caller_exchange (dhb_client *c, JsonNode *request, int timeout_ms, JsonParser **reply)
{
  Why why = { "" };
  pthread_mutex_lock (&c->io_lock);
  dhb_status st = exchange (c, &c->caller, request, timeout_ms, FALSE, reply, &why);
  pthread_mutex_unlock (&c->io_lock);
  publish_error (c, &why);
  return st;
}

dhb_status
dhb_request (dhb_client *c, const char *json, int timeout_ms, char **reply)
{
  JsonNode *node = json_from_string (json, NULL);
  if (!node || !JSON_NODE_HOLDS_OBJECT (node)) {
    Why why;
    say (&why, "the request is not a JSON object");
    publish_error (c, &why);
    if (node)
      json_node_unref (node);
    return DHB_ERROR;
  }
  JsonParser *parser = NULL;
  dhb_status st = caller_exchange (c, node, timeout_ms, reply ? &parser : NULL);
  if (reply && parser)
    *reply = json_to_string (json_parser_get_root (parser), FALSE);
  if (parser)
    g_object_unref (parser);
  json_node_unref (node);
  return st;
}

/* A request object {"type": @type, "channel": @channel, "client_id": ...}. */
static JsonNode *
new_request (dhb_client *c, const char *type, const char *channel)
{
  JsonObject *o = json_object_new ();
  json_object_set_string_member (o, "type", type);
  if (channel)
    json_object_set_string_member (o, "channel", channel);
  json_object_set_string_member (o, "client_id", c->id);
  JsonNode *n = json_node_new (JSON_NODE_OBJECT);
  json_node_take_object (n, o);
  return n;
}

static void
schema_hash_hex (const char *schema, gchar out[HEX_HASH_LEN + 1])
{
  guint8 h[DH_HASH_SIZE];
  dh_schema_hash (schema, h);
  dhb_hex_encode (h, sizeof h, out);
}

/* Signs @m (unreffed here) with the channel's key derived from @secret:
 * the public key to @pk, the signature in hex to @sig_hex. */
static void
sign_with_secret (const uint8_t *secret, const char *channel, GBytes *m,
    guint8 pk[DHB_PUBLIC_KEY_SIZE], gchar sig_hex[2 * DHB_SIGNATURE_SIZE + 1])
{
  guint8 sk[crypto_sign_SECRETKEYBYTES], sig[DHB_SIGNATURE_SIZE];
  dhb_proof_keypair (secret, channel, pk, sk);
  gsize len = 0;
  const guint8 *data = g_bytes_get_data (m, &len);
  crypto_sign_detached (sig, NULL, data, len, sk);
  g_bytes_unref (m);
  sodium_memzero (sk, sizeof sk);
  dhb_hex_encode (sig, sizeof sig, sig_hex);
}

/* REG; with a secret, the channel's public key and the signed location. */
static JsonNode *
reg_request (dhb_client *c, const OwnedRegistration *r)
{
  JsonNode *n = new_request (c, "REG", r->channel);
  JsonObject *o = json_node_get_object (n);
  json_object_set_string_member (o, "shm_name", r->shm_name);
  json_object_set_int_member (o, "pid", r->pid);
  json_object_set_string_member (o, "schema", r->schema ? r->schema : "");
  if (r->has_secret) {
    guint8 pk[DHB_PUBLIC_KEY_SIZE];
    gchar hash[HEX_HASH_LEN + 1], pk_hex[2 * sizeof pk + 1], sig_hex[2 * DHB_SIGNATURE_SIZE + 1];
    schema_hash_hex (r->schema ? r->schema : "", hash);
    sign_with_secret (r->secret, r->channel,
        dhb_proof_location_message (r->channel, r->shm_name, r->pid, hash), pk, sig_hex);
    dhb_hex_encode (pk, sizeof pk, pk_hex);
    json_object_set_string_member (o, "secret_key", pk_hex);
    json_object_set_string_member (o, "location_proof", sig_hex);
  }
  return n;
}

static void
registration_copy (OwnedRegistration *dst, const dhb_registration *src)
{
  registration_clear (dst);
  dst->channel = g_strdup (src->channel);
  dst->shm_name = g_strdup (src->shm_name);
  dst->schema = g_strdup (src->schema ? src->schema : "");
  dst->has_secret = src->secret != NULL;
  if (src->secret)
    memcpy (dst->secret, src->secret, DH_SECRET_SIZE);
  dst->pid = src->pid ? src->pid : getpid ();
}

static void
registration_dup (OwnedRegistration *dst, const OwnedRegistration *src)
{
  dhb_registration r = { src->channel, src->shm_name, src->schema,
    src->has_secret ? src->secret : NULL, src->pid };
  registration_copy (dst, &r);
}

dhb_status
dhb_register (dhb_client *c, const dhb_registration *reg, int timeout_ms)
{
  if (!reg || !reg->channel || !reg->shm_name)
    return DHB_ERROR;
  OwnedRegistration r = { 0 };
  registration_copy (&r, reg);
  JsonNode *n = reg_request (c, &r);
  dhb_status st = caller_exchange (c, n, timeout_ms, NULL);
  json_node_unref (n);
  registration_clear (&r);
  return st;
}

static JsonNode *
client_request (dhb_client *c, const char *type, const char *channel, int consumer)
{
  JsonNode *n = new_request (c, type, channel);
  json_object_set_string_member (json_node_get_object (n), "role",
      consumer ? "consumer" : "producer");
  return n;
}

dhb_status
dhb_deregister (dhb_client *c, const char *channel, int consumer, int timeout_ms)
{
  pthread_mutex_lock (&c->lock);
  /* a keep-alive must not register again what is being removed (if its
   * REG is in flight, it sees the generation change and undoes it) */
  if (!consumer && c->keep_reg.channel && strcmp (c->keep_reg.channel, channel) == 0) {
    registration_clear (&c->keep_reg);
    c->keep_reg_generation++;
  }
  if (consumer && g_strcmp0 (c->keep_consumer_channel, channel) == 0)
    g_clear_pointer (&c->keep_consumer_channel, g_free);
  pthread_mutex_unlock (&c->lock);
  JsonNode *n = client_request (c, "DEREG", channel, consumer);
  dhb_status st = caller_exchange (c, n, timeout_ms, NULL);
  json_node_unref (n);
  return st;
}

dhb_status
dhb_heartbeat (dhb_client *c, const char *channel, int consumer, int timeout_ms)
{
  JsonNode *n = client_request (c, "HB", channel, consumer);
  dhb_status st = caller_exchange (c, n, timeout_ms, NULL);
  json_node_unref (n);
  return st;
}

/* ---- discovery ------------------------------------------------------------ */

static void
copy_member (JsonObject *o, const char *name, char *dst, size_t len)
{
  g_strlcpy (dst, member_string (o, name, ""), len);
}

static void
fill_discovery (JsonObject *r, dhb_discovery *out)
{
  memset (out, 0, sizeof *out);
  copy_member (r, "channel", out->channel, sizeof out->channel);
  copy_member (r, "shm_name", out->shm_name, sizeof out->shm_name);
  copy_member (r, "schema", out->schema, sizeof out->schema);
  copy_member (r, "schema_hash", out->schema_hash, sizeof out->schema_hash);
  copy_member (r, "events", out->events, sizeof out->events);
  out->pid = member_int (r, "pid", 0);
  out->secured = member_bool (r, "secured");
  out->heartbeat_ms = (unsigned) CLAMP (member_int (r, "heartbeat_ms", 0), 0, G_MAXUINT);
  out->expiry_ms = (unsigned) CLAMP (member_int (r, "expiry_ms", 0), 0, G_MAXUINT);
}

/* TRUE if the OK reply's location is signed with @channel's key derived
 * from @secret: whoever registered it knows the secret, and neither the
 * broker nor anyone between changed it. */
static gboolean
location_signed (JsonObject *r, const char *channel, const uint8_t *secret, Why *why)
{
  guint8 pk[DHB_PUBLIC_KEY_SIZE], sk[crypto_sign_SECRETKEYBYTES], sig[DHB_SIGNATURE_SIZE];
  const gchar *shm = member_string (r, "shm_name", "");
  const gchar *schema = member_string (r, "schema", "");
  const gchar *hash = member_string (r, "schema_hash", "");
  gint64 pid = member_int (r, "pid", 0);
  if (!member_bool (r, "secured")) {
    say (why, "channel '%s' is registered without a secret (pid %" G_GINT64_FORMAT
        ", block %s): refused, since a secret was given", channel, pid, shm);
    return FALSE;
  }
  gchar expected_hash[HEX_HASH_LEN + 1];
  schema_hash_hex (schema, expected_hash);
  dhb_proof_keypair (secret, channel, pk, sk);
  sodium_memzero (sk, sizeof sk);
  gboolean ok = strcmp (hash, expected_hash) == 0
      && dhb_hex_decode (member_string (r, "location_proof", ""), sig, sizeof sig);
  if (ok) {
    GBytes *m = dhb_proof_location_message (channel, shm, pid, hash);
    gsize len = 0;
    const guint8 *data = g_bytes_get_data (m, &len);
    ok = crypto_sign_verify_detached (sig, data, len, pk) == 0;
    g_bytes_unref (m);
  }
  if (!ok)
    say (why, "the location of channel '%s' is not signed with its secret: the producer "
        "registered another secret, or the answer was forged", channel);
  return ok;
}

/* The DISC that proves the secret: the broker's @nonce signed. */
static JsonNode *
proven_disc_request (dhb_client *c, const char *channel, const char *schema,
    const uint8_t *secret, const gchar *nonce_hex)
{
  guint8 nonce[DHB_NONCE_SIZE];
  if (!dhb_hex_decode (nonce_hex, nonce, sizeof nonce))
    return NULL;
  guint8 pk[DHB_PUBLIC_KEY_SIZE];
  gchar sig_hex[2 * DHB_SIGNATURE_SIZE + 1];
  sign_with_secret (secret, channel, dhb_proof_disc_message (nonce, channel, c->id), pk,
      sig_hex);
  JsonNode *n = new_request (c, "DISC", channel);
  JsonObject *o = json_node_get_object (n);
  json_object_set_string_member (o, "nonce", nonce_hex);
  json_object_set_string_member (o, "secret_proof", sig_hex);
  if (schema)
    json_object_set_string_member (o, "schema", schema);
  return n;
}

/* One discovery on @l: a plain DISC and, if the channel wants the secret
 * and we have it, a second DISC signing the broker's nonce. */
static dhb_status
discover_once (dhb_client *c, Link *l, gboolean stoppable, const char *channel,
    const uint8_t *secret, const char *schema, int timeout_ms, dhb_discovery *out, Why *why)
{
  gint64 deadline = now_ms () + MAX (timeout_ms, 1);
  JsonNode *n = new_request (c, "DISC", channel);
  if (schema)
    json_object_set_string_member (json_node_get_object (n), "schema", schema);
  JsonParser *reply = NULL;
  dhb_status st = exchange (c, l, n, timeout_ms, stoppable, &reply, why);
  json_node_unref (n);
  const gchar *nonce = reply ? member_string (reply_object (reply), "nonce", NULL) : NULL;
  if (st == DHB_AUTH_FAILED && secret && nonce) {
    n = proven_disc_request (c, channel, schema, secret, nonce);
    g_object_unref (reply);
    reply = NULL;
    st = DHB_ERROR;
    say (why, "the broker's nonce is malformed");
    if (n) {
      st = exchange (c, l, n, (int) MAX (deadline - now_ms (), 1), stoppable, &reply, why);
      json_node_unref (n);
    }
  }
  if (st == DHB_OK && secret && !location_signed (reply_object (reply), channel, secret, why))
    st = DHB_AUTH_FAILED;
  /* a SCHEMA_MISMATCH reply names the schema the producer has */
  if ((st == DHB_OK || st == DHB_SCHEMA_MISMATCH) && out && reply)
    fill_discovery (reply_object (reply), out);
  if (reply)
    g_object_unref (reply);
  return st;
}

/* Remembers what the consumer keep-alive needs to discover again. */
static void
remember_discovery (dhb_client *c, const char *channel, const uint8_t *secret,
    const char *schema)
{
  pthread_mutex_lock (&c->lock);
  forget_discovery (c);
  c->disc_channel = g_strdup (channel);
  c->disc_schema = g_strdup (schema);
  c->disc_has_secret = secret != NULL;
  if (secret)
    memcpy (c->disc_secret, secret, DH_SECRET_SIZE);
  pthread_mutex_unlock (&c->lock);
}

dhb_status
dhb_discover (dhb_client *c, const char *channel, const uint8_t *secret,
    const char *expected_schema, int timeout_ms, dhb_discovery *out)
{
  gint64 deadline = now_ms () + MAX (timeout_ms, 0);
  gint64 backoff = DISCOVER_BACKOFF_FIRST_MS;
  for (;;) {
    gint64 left = deadline - now_ms ();
    Why why = { "" };
    pthread_mutex_lock (&c->io_lock);
    dhb_status st = discover_once (c, &c->caller, FALSE, channel, secret, expected_schema,
        (int) CLAMP (left, 100, 1000), out, &why);
    pthread_mutex_unlock (&c->io_lock);
    publish_error (c, &why);
    if (st == DHB_OK)
      remember_discovery (c, channel, secret, expected_schema);
    if (st != DHB_NOT_FOUND && st != DHB_TIMEOUT)
      return st;
    left = deadline - now_ms ();
    if (left <= 0)
      return st;
    g_usleep ((gulong) MIN (backoff, left) * 1000);
    backoff = MIN (backoff * 2, DISCOVER_BACKOFF_MAX_MS);
  }
}

/* ---- the keep-alive thread -------------------------------------------------- */

/* Sleeps @ms, or less if *@wake gets set; FALSE if the client is being
 * freed. */
static gboolean
pause_unless_stopping (dhb_client *c, guint ms, const gboolean *wake)
{
  pthread_mutex_lock (&c->lock);
  struct timespec until;
  clock_gettime (CLOCK_MONOTONIC, &until);
  until.tv_sec += ms / 1000;
  until.tv_nsec += (long) (ms % 1000) * 1000000L;
  if (until.tv_nsec >= 1000000000L) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000L;
  }
  while (!stopping (c) && !(wake && *wake)
      && pthread_cond_timedwait (&c->stop_cond, &c->lock, &until) == 0)
    ;
  gboolean go_on = !stopping (c);
  pthread_mutex_unlock (&c->lock);
  return go_on;
}

/* What one round of the keep-alive works on, copied under the lock. */
typedef struct {
  guint interval;
  OwnedRegistration reg;        /* producer: channel set */
  gboolean send_reg;            /* changed, or not confirmed: REG, not HB */
  guint generation;
  gchar *consumer_channel;      /* consumer */
  gchar *disc_schema;
  guint8 disc_secret[DH_SECRET_SIZE];
  gboolean disc_has_secret;
} Round;

static void
round_take (dhb_client *c, Round *r)
{
  memset (r, 0, sizeof *r);
  pthread_mutex_lock (&c->lock);
  r->interval = c->heartbeat_ms;
  if (c->keep_reg.channel) {
    registration_dup (&r->reg, &c->keep_reg);
    r->send_reg = c->keep_reg_dirty || c->reg_reported != DHB_OK;
    r->generation = c->keep_reg_generation;
    c->keep_reg_dirty = FALSE;
  }
  if (c->keep_consumer_channel) {
    r->consumer_channel = g_strdup (c->keep_consumer_channel);
    if (g_strcmp0 (c->disc_channel, c->keep_consumer_channel) == 0) {
      r->disc_schema = g_strdup (c->disc_schema);
      r->disc_has_secret = c->disc_has_secret;
      memcpy (r->disc_secret, c->disc_secret, DH_SECRET_SIZE);
    }
  }
  pthread_mutex_unlock (&c->lock);
}

static void
round_clear (Round *r)
{
  registration_clear (&r->reg);
  g_free (r->consumer_channel);
  g_free (r->disc_schema);
  sodium_memzero (r->disc_secret, sizeof r->disc_secret);
}

/* Tells the watcher when the registration goes from registered to refused
 * or back. */
static void
report_registration (dhb_client *c, const gchar *channel, dhb_status st, JsonParser *reply,
    const Why *why)
{
  pthread_mutex_lock (&c->lock);
  gboolean changed = st != c->reg_reported;
  c->reg_reported = st;
  dhb_registration_fn fn = c->reg_fn;
  void *user_data = c->reg_user_data;
  pthread_mutex_unlock (&c->lock);
  if (!changed || !fn)
    return;
  JsonObject *o = reply ? reply_object (reply) : NULL;
  dhb_registration_event ev = {
    .channel = channel,
    .status = st,
    .holder_pid = st == DHB_CONFLICT && o ? member_int (o, "pid", 0) : 0,
    .holder_shm_name = st == DHB_CONFLICT && o ? member_string (o, "shm_name", "") : "",
    .error = why->text,
  };
  fn (&ev, user_data);
}

/* The producer's round: HB, or REG when the registration changed, was
 * not confirmed, or the broker forgot it (it restarted, or expired it
 * while this process was stopped). */
static void
keep_producer (dhb_client *c, Link *l, Round *r, int timeout_ms)
{
  Why why = { "" };
  dhb_status st = DHB_NOT_FOUND;
  if (!r->send_reg) {
    JsonNode *hb = client_request (c, "HB", r->reg.channel, 0);
    st = exchange (c, l, hb, timeout_ms, TRUE, NULL, &why);
    json_node_unref (hb);
  }
  if (st != DHB_NOT_FOUND)
    return; /* alive, or no answer: tried again next round */
  JsonNode *reg = reg_request (c, &r->reg);
  JsonParser *reply = NULL;
  st = exchange (c, l, reg, timeout_ms, TRUE, &reply, &why);
  json_node_unref (reg);
  pthread_mutex_lock (&c->lock);
  gboolean removed = c->keep_reg_generation != r->generation && !c->keep_reg.channel;
  pthread_mutex_unlock (&c->lock);
  if (removed && st == DHB_OK) {
    /* DEREG'd while this REG was in flight: undo it */
    JsonNode *dereg = client_request (c, "DEREG", r->reg.channel, 0);
    exchange (c, l, dereg, timeout_ms, TRUE, NULL, &why);
    json_node_unref (dereg);
  } else if (!removed && st != DHB_TIMEOUT && st != DHB_ERROR) {
    report_registration (c, r->reg.channel, st, reply, &why);
  }
  if (reply)
    g_object_unref (reply);
}

/* The consumer's round: HB; when the broker no longer counts us (it
 * restarted), discover again to be admitted. */
static void
keep_consumer (dhb_client *c, Link *l, Round *r, int timeout_ms)
{
  Why why = { "" };
  JsonNode *hb = client_request (c, "HB", r->consumer_channel, 1);
  dhb_status st = exchange (c, l, hb, timeout_ms, TRUE, NULL, &why);
  json_node_unref (hb);
  if (st == DHB_NOT_FOUND)
    discover_once (c, l, TRUE, r->consumer_channel,
        r->disc_has_secret ? r->disc_secret : NULL, r->disc_schema, timeout_ms, NULL, &why);
}

static void *
keeper_main (void *data)
{
  dhb_client *c = data;
  Link l = { open_dealer (c->ctx, c->endpoint), 1 };
  if (!l.sock)
    return NULL;
  for (;;) {
    pthread_mutex_lock (&c->lock);
    guint interval = c->heartbeat_ms;
    pthread_mutex_unlock (&c->lock);
    if (!pause_unless_stopping (c, interval, &c->keep_reg_dirty))
      break;
    Round r;
    round_take (c, &r);
    int timeout_ms = (int) MIN (r.interval, KEEPER_REQUEST_MAX_MS);
    if (r.consumer_channel)
      keep_consumer (c, &l, &r, timeout_ms);
    else if (r.reg.channel)
      keep_producer (c, &l, &r, timeout_ms);
    round_clear (&r);
  }
  zmq_close (l.sock);
  return NULL;
}

int
dhb_client_keep_alive (dhb_client *c, const dhb_registration *reg, const char *channel)
{
  if ((!reg && !channel) || c->has_keeper)
    return -EINVAL;
  pthread_mutex_lock (&c->lock);
  if (reg)
    registration_copy (&c->keep_reg, reg);
  else
    c->keep_consumer_channel = g_strdup (channel);
  pthread_mutex_unlock (&c->lock);
  int rc = pthread_create (&c->keeper, NULL, keeper_main, c);
  c->has_keeper = rc == 0;
  return -rc;
}

int
dhb_client_update_registration (dhb_client *c, const dhb_registration *reg)
{
  pthread_mutex_lock (&c->lock);
  int rc = c->keep_reg.channel ? 0 : -EINVAL;
  if (rc == 0) {
    registration_copy (&c->keep_reg, reg);
    c->keep_reg_dirty = TRUE;
    c->keep_reg_generation++;
    pthread_cond_broadcast (&c->stop_cond);
  }
  pthread_mutex_unlock (&c->lock);
  return rc;
}

void
dhb_client_watch_registration (dhb_client *c, dhb_registration_fn fn, void *user_data)
{
  pthread_mutex_lock (&c->lock);
  c->reg_fn = fn;
  c->reg_user_data = user_data;
  pthread_mutex_unlock (&c->lock);
}

/* ---- the event thread ------------------------------------------------------ */

/* The broker's PUB endpoint, asked for on a link of this thread if no
 * reply carried it yet. */
static gboolean
learn_events_endpoint (dhb_client *c, char *buf, size_t len)
{
  pthread_mutex_lock (&c->lock);
  gboolean known = c->events[0] != '\0';
  pthread_mutex_unlock (&c->lock);
  if (!known) {
    Link l = { open_dealer (c->ctx, c->endpoint), 1 };
    if (l.sock) {
      Why why;
      JsonNode *list = new_request (c, "LIST", NULL);
      exchange (c, &l, list, 500, TRUE, NULL, &why);
      json_node_unref (list);
      zmq_close (l.sock);
    }
  }
  pthread_mutex_lock (&c->lock);
  g_strlcpy (buf, c->events, len);
  pthread_mutex_unlock (&c->lock);
  return buf[0] != '\0';
}

/* Delivers one [topic, JSON] event if it is for our channel. */
static void
deliver_event (dhb_client *c, void *sub)
{
  zmq_msg_t part;
  zmq_msg_init (&part);
  gchar *topic = NULL;
  GBytes *json = NULL;
  int index = 0, more = 1;
  while (more && zmq_msg_recv (&part, sub, 0) >= 0) {
    more = zmq_msg_more (&part);
    if (index == 0)
      topic = g_strndup (zmq_msg_data (&part), zmq_msg_size (&part));
    else if (index == 1)
      json = g_bytes_new (zmq_msg_data (&part), zmq_msg_size (&part));
    index++;
  }
  zmq_msg_close (&part);
  gsize len = 0;
  const gchar *text = json ? g_bytes_get_data (json, &len) : NULL;
  JsonParser *parser = NULL;
  gchar *why = NULL;
  /* topics match by prefix in ZeroMQ: "cam1" also gets "cam10" */
  if (topic && text && strcmp (topic, c->sub_channel) == 0 && !memchr (text, '\0', len)
      && g_utf8_validate (text, (gssize) len, NULL))
    parser = dhb_parse_object (text, len, &why);
  if (parser) {
    JsonObject *o = reply_object (parser);
    gchar *whole = g_strndup (text, len);
#define MEMBER(name) member_string (o, name, "")
    dhb_event ev = {
      .event = MEMBER ("event"),
      .channel = MEMBER ("channel"),
      .shm_name = MEMBER ("shm_name"),
      .schema = MEMBER ("schema"),
      .reason = MEMBER ("reason"),
      .from = MEMBER ("from"),
      .client_id = MEMBER ("client_id"),
      .pid = member_int (o, "pid", 0),
      .json = whole,
    };
#undef MEMBER
    c->event_fn (&ev, c->event_user_data);
    g_free (whole);
    g_object_unref (parser);
  }
  g_free (why);
  g_free (topic);
  if (json)
    g_bytes_unref (json);
}

static void *
event_main (void *data)
{
  dhb_client *c = data;
  char endpoint[sizeof c->events];
  while (!learn_events_endpoint (c, endpoint, sizeof endpoint))
    if (!pause_unless_stopping (c, 500, NULL))
      return NULL;
  char why[256] = "";
  void *sub = NULL;
  int zero = 0;
  gint64 max_frame = MAX_REPLY_FRAME;
  /* the events endpoint comes from the broker: it gets the same checks */
  if (dhb_endpoint_check (endpoint, why, sizeof why) == 0) {
    sub = zmq_socket (c->ctx, ZMQ_SUB);
    if (!sub || zmq_setsockopt (sub, ZMQ_LINGER, &zero, sizeof zero) != 0
        || zmq_setsockopt (sub, ZMQ_MAXMSGSIZE, &max_frame, sizeof max_frame) != 0
        || zmq_setsockopt (sub, ZMQ_SUBSCRIBE, c->sub_channel, strlen (c->sub_channel)) != 0
        || zmq_connect (sub, endpoint) != 0)
      g_strlcpy (why, zmq_strerror (errno), sizeof why);
  }
  if (why[0]) {
    pthread_mutex_lock (&c->lock);
    g_snprintf (c->last_error, sizeof c->last_error,
        "cannot connect to the broker's events at %s: %s", endpoint, why);
    pthread_mutex_unlock (&c->lock);
    if (sub)
      zmq_close (sub);
    return NULL;
  }
  while (!stopping (c)) {
    zmq_pollitem_t item = { sub, 0, ZMQ_POLLIN, 0 };
    if (zmq_poll (&item, 1, EVENT_POLL_MS) > 0)
      deliver_event (c, sub);
  }
  zmq_close (sub);
  return NULL;
}

int
dhb_client_subscribe (dhb_client *c, const char *channel, dhb_event_fn fn, void *user_data)
{
  if (!channel || !fn || c->has_event_thread)
    return -EINVAL;
  c->sub_channel = g_strdup (channel);
  c->event_fn = fn;
  c->event_user_data = user_data;
  int rc = pthread_create (&c->event_thread, NULL, event_main, c);
  c->has_event_thread = rc == 0;
  return -rc;
}
