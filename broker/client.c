/* The broker client: a DEALER socket behind one mutex, plus optional
 * keep-alive and event threads.  docs/broker.md is the message spec. */
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

#define DISCOVER_BACKOFF_FIRST_MS 10
#define DISCOVER_BACKOFF_MAX_MS 500
#define DEFAULT_HEARTBEAT_MS 1000
#define EVENT_POLL_MS 100

/* A registration owned by the client (the caller's strings are copied). */
typedef struct {
  gchar *channel, *shm_name, *schema;
  guint8 secret[DH_SECRET_SIZE];
  gboolean has_secret;
  gint64 pid;
} OwnedRegistration;

struct dhb_client {
  /* pthread primitives, not GMutex: GLib's futex-based locks are invisible
   * to ThreadSanitizer, which checks this client in CI */
  pthread_mutex_t lock;         /* the request socket and the fields below */
  void *ctx, *req;
  gchar *endpoint;
  gchar id[64];
  gint64 next_id;
  gchar last_error[256];
  gchar events[512];            /* learned from the broker's replies */
  guint heartbeat_ms;

  /* the background threads stop when @stopping is set (under @lock) */
  pthread_cond_t stop_cond;     /* CLOCK_MONOTONIC */
  gboolean stopping;
  pthread_t keeper;
  gboolean has_keeper;
  OwnedRegistration keep_reg;   /* producer keep-alive when channel is set */
  gboolean keep_reg_dirty;      /* keep_reg changed: send it now */
  gchar *keep_consumer_channel; /* consumer keep-alive */
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

static gchar *default_endpoint;

static void
compute_default_endpoint (void)
{
  const char *env = getenv ("DATAHUB_BROKER");
  const char *runtime = getenv ("XDG_RUNTIME_DIR");
  if (env && *env)
    default_endpoint = g_strdup (env);
  else if (runtime && *runtime)
    default_endpoint = g_strdup_printf ("ipc://%s/datahub-broker.sock", runtime);
  else
    default_endpoint = g_strdup_printf ("ipc:///tmp/datahub-broker-%u.sock",
        (unsigned) getuid ());
}

const char *
dhb_default_endpoint (void)
{
  static pthread_once_t once = PTHREAD_ONCE_INIT; /* the environment is read once */
  pthread_once (&once, compute_default_endpoint);
  return default_endpoint;
}

void
dhb_secret_proof (const uint8_t secret[DH_SECRET_SIZE], char hex[65])
{
  /* a different label from the header's verifier: knowing the verifier
   * (anyone who can map the block) does not give the broker proof */
  static const char label[] = "datahub broker proof v1";
  uint8_t h[DH_HASH_SIZE];
  crypto_generichash (h, sizeof h, (const uint8_t *) label, sizeof label - 1, secret,
      DH_SECRET_SIZE);
  sodium_bin2hex (hex, 65, h, sizeof h);
}

static void
set_error (dhb_client *c, const char *fmt, ...) G_GNUC_PRINTF (2, 3);

static void
set_error (dhb_client *c, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_vsnprintf (c->last_error, sizeof c->last_error, fmt, ap);
  va_end (ap);
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

int
dhb_client_new (const char *endpoint, dhb_client **out)
{
  *out = NULL;
  if (sodium_init () < 0)
    return -EIO;
  dhb_client *c = g_new0 (dhb_client, 1);
  pthread_mutex_init (&c->lock, NULL);
  pthread_condattr_t attr;
  pthread_condattr_init (&attr);
  pthread_condattr_setclock (&attr, CLOCK_MONOTONIC);
  pthread_cond_init (&c->stop_cond, &attr);
  pthread_condattr_destroy (&attr);
  c->endpoint = g_strdup (endpoint && *endpoint ? endpoint : dhb_default_endpoint ());
  g_snprintf (c->id, sizeof c->id, "%d-%08x", (int) getpid (), randombytes_random ());
  c->next_id = 1;
  c->heartbeat_ms = DEFAULT_HEARTBEAT_MS;
  c->ctx = zmq_ctx_new ();
  c->req = c->ctx ? zmq_socket (c->ctx, ZMQ_DEALER) : NULL;
  int zero = 0, one = 1;
  /* LINGER 0: closing never blocks on an absent broker; IMMEDIATE: while
   * the broker is down, sends wait (and time out) instead of queueing
   * stale requests for a later broker */
  if (!c->req || zmq_setsockopt (c->req, ZMQ_LINGER, &zero, sizeof zero) != 0
      || zmq_setsockopt (c->req, ZMQ_IMMEDIATE, &one, sizeof one) != 0
      || zmq_connect (c->req, c->endpoint) != 0) {
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

void
dhb_client_free (dhb_client *c)
{
  if (!c)
    return;
  pthread_mutex_lock (&c->lock);
  c->stopping = TRUE;
  pthread_cond_broadcast (&c->stop_cond);
  pthread_mutex_unlock (&c->lock);
  if (c->has_keeper)
    pthread_join (c->keeper, NULL);
  if (c->has_event_thread)
    pthread_join (c->event_thread, NULL);
  if (c->req)
    zmq_close (c->req);
  if (c->ctx)
    zmq_ctx_term (c->ctx);
  registration_clear (&c->keep_reg);
  g_free (c->keep_consumer_channel);
  g_free (c->sub_channel);
  g_free (c->endpoint);
  pthread_mutex_destroy (&c->lock);
  pthread_cond_destroy (&c->stop_cond);
  g_free (c);
}

/* ---- one request ------------------------------------------------------- */

static gint64
now_ms (void)
{
  return g_get_monotonic_time () / 1000;
}

/* Waits for @events on the request socket until @deadline; lock held. */
static gboolean
wait_socket (dhb_client *c, short events, gint64 deadline)
{
  for (;;) {
    gint64 left = deadline - now_ms ();
    if (left <= 0)
      return FALSE;
    zmq_pollitem_t item = { c->req, 0, events, 0 };
    int n = zmq_poll (&item, 1, (long) left);
    if (n > 0)
      return TRUE;
    if (n < 0 && errno != EINTR)
      return FALSE;
  }
}

/* Reads one reply; NULL on a malformed one (skipped by the caller). */
static JsonObject *
receive_reply (dhb_client *c, JsonParser *parser)
{
  /* the ROUTER's reply arrives as [empty delimiter, JSON] */
  zmq_msg_t part;
  zmq_msg_init (&part);
  gboolean ok = TRUE;
  gchar *text = NULL;
  int more = 1;
  while (more) {
    if (zmq_msg_recv (&part, c->req, 0) < 0) {
      ok = FALSE;
      break;
    }
    more = zmq_msg_more (&part);
    if (zmq_msg_size (&part) > 0) {
      g_free (text);
      text = g_strndup (zmq_msg_data (&part), zmq_msg_size (&part));
    }
  }
  zmq_msg_close (&part);
  JsonObject *obj = NULL;
  if (ok && text && json_parser_load_from_data (parser, text, -1, NULL)) {
    JsonNode *root = json_parser_get_root (parser);
    if (root && JSON_NODE_HOLDS_OBJECT (root))
      obj = json_node_get_object (root);
  }
  g_free (text);
  return obj;
}

/* A string member, or @fallback when it is absent or not a string (the
 * broker's replies are checked like any input). */
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

/* Remembers the timing and event endpoint that OK replies carry. */
static void
learn_from_reply (dhb_client *c, JsonObject *obj)
{
  const gchar *events = member_string (obj, "events", NULL);
  if (events && *events)
    g_strlcpy (c->events, events, sizeof c->events);
  gint64 hb = member_int (obj, "heartbeat_ms", 0);
  if (hb >= 10 && hb <= 3600000)
    c->heartbeat_ms = (guint) hb;
}

/* The request with @id under the lock; see dhb_request. */
static dhb_status
request_locked (dhb_client *c, JsonNode *request, int timeout_ms, char **reply)
{
  gint64 id = c->next_id++;
  json_object_set_int_member (json_node_get_object (request), "id", id);
  gchar *text = json_to_string (request, FALSE);
  gint64 deadline = now_ms () + MAX (timeout_ms, 1);
  dhb_status status = DHB_TIMEOUT;
  if (!wait_socket (c, ZMQ_POLLOUT, deadline)) {
    set_error (c, "broker at %s not reachable within %d ms", c->endpoint, timeout_ms);
    g_free (text);
    return DHB_TIMEOUT;
  }
  if (zmq_send (c->req, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0
      || zmq_send (c->req, text, strlen (text), ZMQ_DONTWAIT) < 0) {
    set_error (c, "sending to the broker failed: %s", zmq_strerror (errno));
    g_free (text);
    return DHB_TIMEOUT;
  }
  g_free (text);
  JsonParser *parser = json_parser_new ();
  set_error (c, "no reply from the broker at %s within %d ms", c->endpoint, timeout_ms);
  while (wait_socket (c, ZMQ_POLLIN, deadline)) {
    JsonObject *obj = receive_reply (c, parser);
    /* replies to earlier requests that timed out are skipped */
    if (!obj || member_int (obj, "id", 0) != id)
      continue;
    const gchar *name = member_string (obj, "status", "");
    status = status_from_name (name);
    if (status == DHB_OK)
      learn_from_reply (c, obj);
    set_error (c, "%s", member_string (obj, "error", status == DHB_OK ? "" : name));
    if (reply)
      *reply = json_to_string (json_parser_get_root (parser), FALSE);
    break;
  }
  g_object_unref (parser);
  return status;
}

static dhb_status
request_node (dhb_client *c, JsonNode *request, int timeout_ms, char **reply)
{
  pthread_mutex_lock (&c->lock);
  dhb_status st = request_locked (c, request, timeout_ms, reply);
  pthread_mutex_unlock (&c->lock);
  json_node_unref (request);
  return st;
}

dhb_status
dhb_request (dhb_client *c, const char *json, int timeout_ms, char **reply)
{
  JsonNode *node = json_from_string (json, NULL);
  if (!node || !JSON_NODE_HOLDS_OBJECT (node)) {
    pthread_mutex_lock (&c->lock);
    set_error (c, "the request is not a JSON object");
    pthread_mutex_unlock (&c->lock);
    if (node)
      json_node_unref (node);
    return DHB_ERROR;
  }
  return request_node (c, node, timeout_ms, reply);
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

static JsonNode *
reg_request (dhb_client *c, const OwnedRegistration *r)
{
  JsonNode *n = new_request (c, "REG", r->channel);
  JsonObject *o = json_node_get_object (n);
  json_object_set_string_member (o, "shm_name", r->shm_name);
  json_object_set_int_member (o, "pid", r->pid);
  json_object_set_string_member (o, "schema", r->schema ? r->schema : "");
  if (r->has_secret) {
    char hex[65];
    dhb_secret_proof (r->secret, hex);
    json_object_set_string_member (o, "secret_verifier", hex);
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

dhb_status
dhb_register (dhb_client *c, const dhb_registration *reg, int timeout_ms)
{
  if (!reg || !reg->channel || !reg->shm_name)
    return DHB_ERROR;
  OwnedRegistration r = { 0 };
  registration_copy (&r, reg);
  dhb_status st = request_node (c, reg_request (c, &r), timeout_ms, NULL);
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
  /* a keep-alive must not register again what is being removed */
  if (!consumer && c->keep_reg.channel && strcmp (c->keep_reg.channel, channel) == 0)
    registration_clear (&c->keep_reg);
  if (consumer && g_strcmp0 (c->keep_consumer_channel, channel) == 0)
    g_clear_pointer (&c->keep_consumer_channel, g_free);
  JsonNode *n = client_request (c, "DEREG", channel, consumer);
  dhb_status st = request_locked (c, n, timeout_ms, NULL);
  pthread_mutex_unlock (&c->lock);
  json_node_unref (n);
  return st;
}

dhb_status
dhb_heartbeat (dhb_client *c, const char *channel, int consumer, int timeout_ms)
{
  return request_node (c, client_request (c, "HB", channel, consumer), timeout_ms, NULL);
}

static void
copy_member (JsonObject *o, const char *name, char *dst, size_t len)
{
  g_strlcpy (dst, member_string (o, name, ""), len);
}

static dhb_status
discover_once (dhb_client *c, const char *channel, const char *proof,
    const char *schema, int timeout_ms, dhb_discovery *out)
{
  JsonNode *n = new_request (c, "DISC", channel);
  JsonObject *o = json_node_get_object (n);
  if (proof)
    json_object_set_string_member (o, "secret_proof", proof);
  if (schema)
    json_object_set_string_member (o, "schema", schema);
  char *reply = NULL;
  dhb_status st = request_node (c, n, timeout_ms, &reply);
  /* a SCHEMA_MISMATCH reply names the schema the producer has */
  if ((st == DHB_OK || st == DHB_SCHEMA_MISMATCH) && out && reply) {
    JsonNode *root = json_from_string (reply, NULL);
    JsonObject *r = json_node_get_object (root);
    memset (out, 0, sizeof *out);
    copy_member (r, "channel", out->channel, sizeof out->channel);
    copy_member (r, "shm_name", out->shm_name, sizeof out->shm_name);
    copy_member (r, "schema", out->schema, sizeof out->schema);
    copy_member (r, "schema_hash", out->schema_hash, sizeof out->schema_hash);
    copy_member (r, "events", out->events, sizeof out->events);
    out->pid = member_int (r, "pid", 0);
    out->secured = json_object_get_boolean_member_with_default (r, "secured", FALSE) ? 1 : 0;
    out->heartbeat_ms = (unsigned) CLAMP (member_int (r, "heartbeat_ms", 0), 0, G_MAXUINT);
    out->expiry_ms = (unsigned) CLAMP (member_int (r, "expiry_ms", 0), 0, G_MAXUINT);
    json_node_unref (root);
  }
  free (reply);
  return st;
}

dhb_status
dhb_discover (dhb_client *c, const char *channel, const uint8_t *secret,
    const char *expected_schema, int timeout_ms, dhb_discovery *out)
{
  char proof[65];
  if (secret)
    dhb_secret_proof (secret, proof);
  gint64 deadline = now_ms () + MAX (timeout_ms, 0);
  gint64 backoff = DISCOVER_BACKOFF_FIRST_MS;
  for (;;) {
    gint64 left = deadline - now_ms ();
    dhb_status st = discover_once (c, channel, secret ? proof : NULL, expected_schema,
        (int) CLAMP (left, 100, 1000), out);
    if (st != DHB_NOT_FOUND && st != DHB_TIMEOUT)
      return st;
    left = deadline - now_ms ();
    if (left <= 0)
      return st;
    g_usleep ((gulong) MIN (backoff, left) * 1000);
    backoff = MIN (backoff * 2, DISCOVER_BACKOFF_MAX_MS);
  }
}

/* ---- background threads -------------------------------------------------- */

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
  while (!c->stopping && !(wake && *wake)
      && pthread_cond_timedwait (&c->stop_cond, &c->lock, &until) == 0)
    ;
  gboolean go_on = !c->stopping;
  pthread_mutex_unlock (&c->lock);
  return go_on;
}

static void *
keeper_main (void *data)
{
  dhb_client *c = data;
  for (;;) {
    pthread_mutex_lock (&c->lock);
    guint interval = c->heartbeat_ms;
    pthread_mutex_unlock (&c->lock);
    if (!pause_unless_stopping (c, interval, &c->keep_reg_dirty))
      return NULL;
    pthread_mutex_lock (&c->lock);
    dhb_status st = DHB_OK;
    if (c->keep_consumer_channel) {
      JsonNode *hb = client_request (c, "HB", c->keep_consumer_channel, 1);
      st = request_locked (c, hb, (int) interval, NULL);
      json_node_unref (hb);
    } else if (c->keep_reg.channel && !c->keep_reg_dirty) {
      JsonNode *hb = client_request (c, "HB", c->keep_reg.channel, 0);
      st = request_locked (c, hb, (int) interval, NULL);
      json_node_unref (hb);
    }
    /* a changed registration, or the broker forgot it (it restarted, or
     * expired it while this process was stopped): register again */
    if (c->keep_reg.channel && (c->keep_reg_dirty || st == DHB_NOT_FOUND)) {
      c->keep_reg_dirty = FALSE;
      JsonNode *reg = reg_request (c, &c->keep_reg);
      request_locked (c, reg, (int) interval, NULL);
      json_node_unref (reg);
    }
    pthread_mutex_unlock (&c->lock);
  }
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
    pthread_cond_broadcast (&c->stop_cond);
  }
  pthread_mutex_unlock (&c->lock);
  return rc;
}

/* The broker's PUB endpoint, asked for if no reply carried it yet. */
static gboolean
learn_events_endpoint (dhb_client *c, char *buf, size_t len)
{
  pthread_mutex_lock (&c->lock);
  if (!c->events[0]) {
    JsonNode *list = new_request (c, "LIST", NULL);
    request_locked (c, list, 500, NULL);
    json_node_unref (list);
  }
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
  gchar *topic = NULL, *json = NULL;
  int index = 0, more = 1;
  while (more && zmq_msg_recv (&part, sub, 0) >= 0) {
    more = zmq_msg_more (&part);
    gchar *text = g_strndup (zmq_msg_data (&part), zmq_msg_size (&part));
    if (index == 0)
      topic = text;
    else if (index == 1)
      json = text;
    else
      g_free (text);
    index++;
  }
  zmq_msg_close (&part);
  /* topics match by prefix in ZeroMQ: "cam1" also gets "cam10" */
  JsonNode *root = topic && json && strcmp (topic, c->sub_channel) == 0
      ? json_from_string (json, NULL) : NULL;
  if (root && JSON_NODE_HOLDS_OBJECT (root)) {
    JsonObject *o = json_node_get_object (root);
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
      .json = json,
    };
#undef MEMBER
    c->event_fn (&ev, c->event_user_data);
  }
  if (root)
    json_node_unref (root);
  g_free (topic);
  g_free (json);
}

static void *
event_main (void *data)
{
  dhb_client *c = data;
  char endpoint[sizeof c->events];
  while (!learn_events_endpoint (c, endpoint, sizeof endpoint))
    if (!pause_unless_stopping (c, 500, NULL))
      return NULL;
  void *sub = zmq_socket (c->ctx, ZMQ_SUB);
  int zero = 0;
  if (!sub)
    return NULL;
  zmq_setsockopt (sub, ZMQ_LINGER, &zero, sizeof zero);
  zmq_setsockopt (sub, ZMQ_SUBSCRIBE, c->sub_channel, strlen (c->sub_channel));
  if (zmq_connect (sub, endpoint) != 0) {
    pthread_mutex_lock (&c->lock);
    set_error (c, "cannot connect to the broker's events at %s: %s", endpoint,
        zmq_strerror (errno));
    pthread_mutex_unlock (&c->lock);
    zmq_close (sub);
    return NULL;
  }
  for (;;) {
    pthread_mutex_lock (&c->lock);
    gboolean stop = c->stopping;
    pthread_mutex_unlock (&c->lock);
    if (stop)
      break;
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
