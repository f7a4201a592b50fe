/* The broker's registry: which producer serves which channel, who consumes
 * it, and the request handler.  docs/broker.md is the message spec. */
#include "registry.h"

#include <string.h>

#include <json-glib/json-glib.h>
#include <sodium.h>

#include "datahub/datahub.h"

#define CHANNEL_MAX 200
#define CLIENT_ID_MAX 128
#define HEX_HASH_LEN (2 * DH_HASH_SIZE)

typedef struct {
  gchar *name, *shm_name, *producer_id, *schema;
  gchar schema_hash[HEX_HASH_LEN + 1];
  gboolean secured;
  guint8 verifier[DH_HASH_SIZE];   /* the producer's secret proof */
  gint64 pid, registered_ms, last_seen_ms;
  GHashTable *consumers;           /* client id -> gint64 * last seen */
} Channel;

struct _DhbRegistry {
  DhbRegistryConfig cfg;
  gchar *events_endpoint;
  GHashTable *channels;            /* name -> Channel * */
};

/* A request being handled: the parsed object and the first problem found. */
typedef struct {
  JsonObject *obj;
  gchar *error;
} Request;

static void
channel_free (gpointer data)
{
  Channel *c = data;
  g_free (c->name);
  g_free (c->shm_name);
  g_free (c->producer_id);
  g_free (c->schema);
  g_hash_table_destroy (c->consumers);
  g_free (c);
}

void
dhb_event_free (gpointer data)
{
  DhbEvent *e = data;
  g_free (e->topic);
  g_free (e->json);
  g_free (e);
}

DhbRegistry *
dhb_registry_new (const DhbRegistryConfig *config)
{
  DhbRegistry *r = g_new0 (DhbRegistry, 1);
  r->cfg = *config;
  r->events_endpoint = g_strdup (config->events_endpoint ? config->events_endpoint : "");
  r->cfg.events_endpoint = r->events_endpoint;
  r->channels = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, channel_free);
  return r;
}

void
dhb_registry_free (DhbRegistry *r)
{
  if (!r)
    return;
  g_hash_table_destroy (r->channels);
  g_free (r->events_endpoint);
  g_free (r);
}

guint
dhb_registry_channel_count (const DhbRegistry *r)
{
  return g_hash_table_size (r->channels);
}

/* ---- field access with type checks ----------------------------------- */

static void
fail (Request *q, const gchar *fmt, ...) G_GNUC_PRINTF (2, 3);

static void
fail (Request *q, const gchar *fmt, ...)
{
  if (q->error)
    return; /* the first problem is the one reported */
  va_list ap;
  va_start (ap, fmt);
  q->error = g_strdup_vprintf (fmt, ap);
  va_end (ap);
}

/* The value node of @name if it is present and a scalar of @type; NULL
 * (and an error if @required or mistyped) otherwise. */
static JsonNode *
field (Request *q, const gchar *name, GType type, gboolean required)
{
  JsonNode *n = json_object_get_member (q->obj, name);
  if (!n || JSON_NODE_HOLDS_NULL (n)) {
    if (required)
      fail (q, "missing field '%s'", name);
    return NULL;
  }
  if (!JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != type) {
    fail (q, "field '%s' must be %s", name, type == G_TYPE_STRING ? "a string"
        : type == G_TYPE_INT64 ? "an integer" : "a boolean");
    return NULL;
  }
  return n;
}

static const gchar *
string_field (Request *q, const gchar *name, gboolean required, gsize max_len)
{
  JsonNode *n = field (q, name, G_TYPE_STRING, required);
  if (!n)
    return NULL;
  const gchar *s = json_node_get_string (n);
  gsize len = strlen (s);
  if (required && len == 0) {
    fail (q, "field '%s' must not be empty", name);
    return NULL;
  }
  if (len > max_len) {
    fail (q, "field '%s' is longer than %" G_GSIZE_FORMAT " bytes", name, max_len);
    return NULL;
  }
  return s;
}

static gboolean
is_name_char (gchar ch)
{
  return g_ascii_isalnum (ch) || ch == '.' || ch == '_' || ch == '-';
}

/* Channel names: [A-Za-z0-9._-], 1..200 bytes (they become shm names). */
static const gchar *
channel_field (Request *q)
{
  const gchar *s = string_field (q, "channel", TRUE, CHANNEL_MAX);
  if (!s)
    return NULL;
  for (const gchar *p = s; *p; p++)
    if (!is_name_char (*p)) {
      fail (q, "field 'channel' may only contain A-Z a-z 0-9 . _ -");
      return NULL;
    }
  return s;
}

/* Client ids: printable ASCII, 1..128 bytes. */
static const gchar *
client_id_field (Request *q, gboolean required)
{
  const gchar *s = string_field (q, "client_id", required, CLIENT_ID_MAX);
  if (!s)
    return NULL;
  for (const gchar *p = s; *p; p++)
    if (!g_ascii_isgraph (*p)) {
      fail (q, "field 'client_id' must be printable ASCII without spaces");
      return NULL;
    }
  return s;
}

/* A 64-hex-digit hash, decoded into @out; FALSE if absent or bad. */
static gboolean
hash_field (Request *q, const gchar *name, guint8 out[DH_HASH_SIZE])
{
  const gchar *s = string_field (q, name, FALSE, HEX_HASH_LEN);
  if (!s)
    return FALSE;
  size_t got = 0;
  if (strlen (s) != HEX_HASH_LEN
      || sodium_hex2bin (out, DH_HASH_SIZE, s, HEX_HASH_LEN, NULL, &got, NULL) != 0
      || got != DH_HASH_SIZE) {
    fail (q, "field '%s' must be %d hex digits", name, HEX_HASH_LEN);
    return FALSE;
  }
  return TRUE;
}

/* "role": "producer" (default) or "consumer"; TRUE for consumer. */
static gboolean
consumer_role (Request *q)
{
  const gchar *role = string_field (q, "role", FALSE, 16);
  if (!role || strcmp (role, "producer") == 0)
    return FALSE;
  if (strcmp (role, "consumer") != 0)
    fail (q, "field 'role' must be \"producer\" or \"consumer\"");
  return TRUE;
}

/* ---- replies and events ---------------------------------------------- */

static gchar *
to_json (JsonBuilder *b)
{
  JsonNode *root = json_builder_get_root (b);
  JsonGenerator *g = json_generator_new ();
  json_generator_set_root (g, root);
  gchar *text = json_generator_to_data (g, NULL);
  g_object_unref (g);
  json_node_unref (root);
  g_object_unref (b);
  return text;
}

/* Starts a reply object with "status" and, if the request had one, its
 * integer "id" echoed back (clients match replies to requests with it). */
static JsonBuilder *
reply_begin (JsonObject *request, const gchar *status)
{
  JsonBuilder *b = json_builder_new ();
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "status");
  json_builder_add_string_value (b, status);
  JsonNode *id = request ? json_object_get_member (request, "id") : NULL;
  if (id && JSON_NODE_HOLDS_VALUE (id) && json_node_get_value_type (id) == G_TYPE_INT64) {
    json_builder_set_member_name (b, "id");
    json_builder_add_int_value (b, json_node_get_int (id));
  }
  return b;
}

static gchar *
reply_end (JsonBuilder *b)
{
  json_builder_end_object (b);
  return to_json (b);
}

static gchar *
reply_error (JsonObject *request, const gchar *status, const gchar *error)
{
  JsonBuilder *b = reply_begin (request, status);
  json_builder_set_member_name (b, "error");
  /* json-glib's parse errors quote the offending input, which may not be
   * UTF-8 (an escape like \371): the reply must stay valid JSON */
  gchar *valid = g_utf8_make_valid (error, -1);
  json_builder_add_string_value (b, valid);
  g_free (valid);
  return reply_end (b);
}

gchar *
dhb_registry_bad_request (const gchar *why)
{
  return reply_error (NULL, "BAD_REQUEST", why);
}

/* Adds what clients need to keep a registration alive. */
static void
add_timing (DhbRegistry *r, JsonBuilder *b)
{
  json_builder_set_member_name (b, "heartbeat_ms");
  json_builder_add_int_value (b, r->cfg.heartbeat_ms);
  json_builder_set_member_name (b, "expiry_ms");
  json_builder_add_int_value (b, r->cfg.expiry_ms);
  json_builder_set_member_name (b, "events");
  json_builder_add_string_value (b, r->events_endpoint);
}

static void
add_channel_members (JsonBuilder *b, const Channel *c)
{
  json_builder_set_member_name (b, "channel");
  json_builder_add_string_value (b, c->name);
  json_builder_set_member_name (b, "shm_name");
  json_builder_add_string_value (b, c->shm_name);
  json_builder_set_member_name (b, "pid");
  json_builder_add_int_value (b, c->pid);
  json_builder_set_member_name (b, "schema");
  json_builder_add_string_value (b, c->schema);
  json_builder_set_member_name (b, "schema_hash");
  json_builder_add_string_value (b, c->schema_hash);
  json_builder_set_member_name (b, "secured");
  json_builder_add_boolean_value (b, c->secured);
}

/* Queues an event: {"event": @name, "channel": ..., channel fields,
 * then @extra_key: @extra_value if given}. */
static void
emit (GPtrArray *events, const gchar *name, const Channel *c, const gchar *extra_key,
    const gchar *extra_value, const gchar *reason)
{
  if (!events)
    return;
  JsonBuilder *b = json_builder_new ();
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "event");
  json_builder_add_string_value (b, name);
  add_channel_members (b, c);
  if (extra_key) {
    json_builder_set_member_name (b, extra_key);
    json_builder_add_string_value (b, extra_value);
  }
  if (reason) {
    json_builder_set_member_name (b, "reason");
    json_builder_add_string_value (b, reason);
  }
  json_builder_end_object (b);
  DhbEvent *e = g_new0 (DhbEvent, 1);
  e->topic = g_strdup (c->name);
  e->json = to_json (b);
  g_ptr_array_add (events, e);
}

/* ---- the requests ------------------------------------------------------ */

static gboolean
producer_gone (DhbRegistry *r, const Channel *c, gint64 now_ms)
{
  if (now_ms - c->last_seen_ms > (gint64) r->cfg.expiry_ms)
    return TRUE;
  return r->cfg.pid_alive && !r->cfg.pid_alive (c->pid);
}

static void
schema_hash_hex (const gchar *schema, gchar out[HEX_HASH_LEN + 1])
{
  guint8 h[DH_HASH_SIZE];
  dh_schema_hash (schema, h);
  sodium_bin2hex (out, HEX_HASH_LEN + 1, h, sizeof h);
}

static gchar *
handle_reg (DhbRegistry *r, Request *q, gint64 now_ms, GPtrArray *events)
{
  const gchar *name = channel_field (q);
  const gchar *shm = string_field (q, "shm_name", TRUE, DH_NAME_MAX);
  const gchar *id = client_id_field (q, TRUE);
  JsonNode *pid_node = field (q, "pid", G_TYPE_INT64, TRUE);
  const gchar *schema = string_field (q, "schema", FALSE, DHB_MAX_SCHEMA);
  guint8 verifier[DH_HASH_SIZE];
  gboolean secured = hash_field (q, "secret_verifier", verifier);
  gint64 pid = pid_node ? json_node_get_int (pid_node) : 0;
  if (!q->error && (pid <= 0 || pid > G_MAXINT32))
    fail (q, "field 'pid' must be a process id");
  if (!q->error && (shm[0] != '/' || strchr (shm + 1, '/') || !shm[1]))
    fail (q, "field 'shm_name' must be '/' and one path element");
  if (q->error)
    return NULL;

  Channel *c = g_hash_table_lookup (r->channels, name);
  if (c && strcmp (c->producer_id, id) != 0) {
    if (!producer_gone (r, c, now_ms)) {
      JsonBuilder *b = reply_begin (q->obj, "CONFLICT");
      json_builder_set_member_name (b, "error");
      json_builder_add_string_value (b, "another live producer serves this channel");
      json_builder_set_member_name (b, "pid");
      json_builder_add_int_value (b, c->pid);
      return reply_end (b);
    }
    /* the previous producer is gone: say so before the new one is up */
    emit (events, "producer-down", c, NULL, NULL, "replaced");
    g_hash_table_remove (r->channels, name);
    c = NULL;
  }
  if (!c && g_hash_table_size (r->channels) >= DHB_MAX_CHANNELS)
    return reply_error (q->obj, "BAD_REQUEST", "the registry is full");

  const gchar *event = NULL;
  gchar *old_shm = NULL;
  if (!c) {
    c = g_new0 (Channel, 1);
    c->name = g_strdup (name);
    c->producer_id = g_strdup (id);
    c->consumers = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
    c->registered_ms = now_ms;
    g_hash_table_insert (r->channels, c->name, c);
    event = "producer-up";
  } else if (strcmp (c->shm_name, shm) != 0) {
    event = "handover";
    old_shm = c->shm_name;
    c->shm_name = NULL;
  } else if (strcmp (c->schema, schema ? schema : "") != 0) {
    event = "schema-changed";
  }
  g_free (c->shm_name);
  c->shm_name = g_strdup (shm);
  g_free (c->schema);
  c->schema = g_strdup (schema ? schema : "");
  schema_hash_hex (c->schema, c->schema_hash);
  c->secured = secured;
  if (secured)
    memcpy (c->verifier, verifier, sizeof verifier);
  c->pid = pid;
  c->last_seen_ms = now_ms;
  if (event)
    emit (events, event, c, old_shm ? "from" : NULL, old_shm, NULL);
  g_free (old_shm);

  JsonBuilder *b = reply_begin (q->obj, "OK");
  json_builder_set_member_name (b, "channel");
  json_builder_add_string_value (b, c->name);
  json_builder_set_member_name (b, "schema_hash");
  json_builder_add_string_value (b, c->schema_hash);
  add_timing (r, b);
  return reply_end (b);
}

/* Notes a consumer as alive (a DISC or HB with a client id). */
static gboolean
touch_consumer (Channel *c, const gchar *id, gint64 now_ms)
{
  gint64 *seen = g_hash_table_lookup (c->consumers, id);
  if (!seen) {
    if (g_hash_table_size (c->consumers) >= DHB_MAX_CONSUMERS_PER_CHANNEL)
      return FALSE;
    seen = g_new (gint64, 1);
    g_hash_table_insert (c->consumers, g_strdup (id), seen);
  }
  *seen = now_ms;
  return TRUE;
}

static gchar *
handle_disc (DhbRegistry *r, Request *q, gint64 now_ms)
{
  const gchar *name = channel_field (q);
  const gchar *id = client_id_field (q, FALSE);
  guint8 proof[DH_HASH_SIZE];
  gboolean has_proof = hash_field (q, "secret_proof", proof);
  const gchar *want_schema = string_field (q, "schema", FALSE, DHB_MAX_SCHEMA);
  guint8 want_hash[DH_HASH_SIZE];
  gboolean has_hash = hash_field (q, "schema_hash", want_hash);
  if (q->error)
    return NULL;

  Channel *c = g_hash_table_lookup (r->channels, name);
  if (!c || producer_gone (r, c, now_ms))
    return reply_error (q->obj, "NOT_FOUND", "no live producer on this channel");
  if (c->secured && (!has_proof || sodium_memcmp (proof, c->verifier, DH_HASH_SIZE) != 0))
    return reply_error (q->obj, "AUTH_FAILED", has_proof
        ? "the secret does not match the producer's" : "this channel needs a secret");
  gchar want_hex[HEX_HASH_LEN + 1];
  if (want_schema)
    schema_hash_hex (want_schema, want_hex);
  else if (has_hash)
    sodium_bin2hex (want_hex, sizeof want_hex, want_hash, sizeof want_hash);
  if ((want_schema || has_hash) && strcmp (want_hex, c->schema_hash) != 0) {
    JsonBuilder *b = reply_begin (q->obj, "SCHEMA_MISMATCH");
    json_builder_set_member_name (b, "error");
    json_builder_add_string_value (b, "the producer's schema differs from the expected one");
    json_builder_set_member_name (b, "schema");
    json_builder_add_string_value (b, c->schema);
    return reply_end (b);
  }
  if (id && !touch_consumer (c, id, now_ms))
    return reply_error (q->obj, "BAD_REQUEST", "too many consumers on this channel");

  JsonBuilder *b = reply_begin (q->obj, "OK");
  add_channel_members (b, c);
  add_timing (r, b);
  return reply_end (b);
}

/* HB and DEREG name a channel and a client; @remove is DEREG. */
static gchar *
handle_client (DhbRegistry *r, Request *q, gint64 now_ms, gboolean remove,
    GPtrArray *events)
{
  const gchar *name = channel_field (q);
  const gchar *id = client_id_field (q, TRUE);
  gboolean consumer = consumer_role (q);
  if (q->error)
    return NULL;

  Channel *c = g_hash_table_lookup (r->channels, name);
  if (!c)
    return reply_error (q->obj, "NOT_FOUND", "no such channel");
  if (consumer) {
    if (remove) {
      if (!g_hash_table_contains (c->consumers, id))
        return reply_error (q->obj, "NOT_FOUND", "no such consumer on this channel");
      emit (events, "consumer-drop", c, "client_id", id, "left");
      g_hash_table_remove (c->consumers, id);
    } else if (!touch_consumer (c, id, now_ms)) {
      return reply_error (q->obj, "BAD_REQUEST", "too many consumers on this channel");
    }
  } else {
    if (strcmp (c->producer_id, id) != 0)
      return reply_error (q->obj, "NOT_FOUND", "this client is not the channel's producer");
    if (remove) {
      emit (events, "producer-down", c, NULL, NULL, "deregistered");
      g_hash_table_remove (r->channels, name);
    } else {
      c->last_seen_ms = now_ms;
    }
  }
  JsonBuilder *b = reply_begin (q->obj, "OK");
  if (!remove)
    add_timing (r, b);
  return reply_end (b);
}

static gint
compare_names (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const gchar *const *) a, *(const gchar *const *) b);
}

static gchar *
handle_list (DhbRegistry *r, Request *q, gint64 now_ms)
{
  JsonBuilder *b = reply_begin (q->obj, "OK");
  add_timing (r, b);
  json_builder_set_member_name (b, "channels");
  json_builder_begin_array (b);
  /* sorted, so the output is stable for people and scripts */
  guint n = 0;
  gpointer *names = g_hash_table_get_keys_as_array (r->channels, &n);
  qsort (names, n, sizeof names[0], compare_names);
  for (guint i = 0; i < n; i++) {
    const Channel *c = g_hash_table_lookup (r->channels, names[i]);
    json_builder_begin_object (b);
    add_channel_members (b, c);
    json_builder_set_member_name (b, "consumers");
    json_builder_add_int_value (b, g_hash_table_size (c->consumers));
    json_builder_set_member_name (b, "age_ms");
    json_builder_add_int_value (b, now_ms - c->registered_ms);
    json_builder_set_member_name (b, "last_seen_ms");
    json_builder_add_int_value (b, now_ms - c->last_seen_ms);
    json_builder_end_object (b);
  }
  g_free (names);
  json_builder_end_array (b);
  return reply_end (b);
}

/* TRUE if anything but white space follows the object that starts
 * @data.  json-glib reads "{...} {...}" as its first value and ignores
 * the rest; a request is exactly one object.  Only called on input the
 * parser accepted, so brackets balance; strings are skipped with their
 * escapes. */
static gboolean
has_trailing_data (const gchar *data, gsize len)
{
  gsize i = 0;
  guint depth = 0;
  gboolean in_string = FALSE;
  for (; i < len; i++) {
    gchar ch = data[i];
    if (in_string) {
      if (ch == '\\')
        i++;
      else if (ch == '"')
        in_string = FALSE;
    } else if (ch == '"') {
      in_string = TRUE;
    } else if (ch == '{' || ch == '[') {
      depth++;
    } else if ((ch == '}' || ch == ']') && --depth == 0) {
      break;
    }
  }
  for (i++; i < len; i++)
    if (!g_ascii_isspace (data[i]))
      return TRUE;
  return FALSE;
}

gchar *
dhb_registry_handle (DhbRegistry *r, const gchar *data, gsize len, gint64 now_ms,
    GPtrArray *events)
{
  if (len > DHB_MAX_REQUEST)
    return dhb_registry_bad_request ("request larger than 65536 bytes");
  if (len == 0)
    return dhb_registry_bad_request ("empty request");
  /* json-glib wants text: refuse embedded NULs instead of truncating */
  if (memchr (data, '\0', len))
    return dhb_registry_bad_request ("request contains a NUL byte");
  if (!g_utf8_validate (data, (gssize) len, NULL))
    return dhb_registry_bad_request ("request is not UTF-8");

  JsonParser *parser = json_parser_new_immutable ();
  GError *err = NULL;
  gchar *reply = NULL;
  if (!json_parser_load_from_data (parser, data, (gssize) len, &err)) {
    gchar *why = g_strdup_printf ("malformed JSON: %s", err->message);
    reply = dhb_registry_bad_request (why);
    g_free (why);
    g_error_free (err);
    g_object_unref (parser);
    return reply;
  }
  JsonNode *root = json_parser_get_root (parser);
  if (!root || !JSON_NODE_HOLDS_OBJECT (root)) {
    g_object_unref (parser);
    return dhb_registry_bad_request ("request must be a JSON object");
  }
  if (has_trailing_data (data, len)) {
    g_object_unref (parser);
    return dhb_registry_bad_request ("data after the request object");
  }
  Request q = { json_node_get_object (root), NULL };
  const gchar *type = string_field (&q, "type", TRUE, 16);
  if (q.error)
    ;
  else if (strcmp (type, "REG") == 0)
    reply = handle_reg (r, &q, now_ms, events);
  else if (strcmp (type, "DISC") == 0)
    reply = handle_disc (r, &q, now_ms);
  else if (strcmp (type, "HB") == 0)
    reply = handle_client (r, &q, now_ms, FALSE, events);
  else if (strcmp (type, "DEREG") == 0)
    reply = handle_client (r, &q, now_ms, TRUE, events);
  else if (strcmp (type, "LIST") == 0)
    reply = handle_list (r, &q, now_ms);
  else
    fail (&q, "unknown request type '%s' (REG, DISC, DEREG, HB or LIST)", type);
  if (!reply)
    reply = reply_error (q.obj, "BAD_REQUEST", q.error ? q.error : "invalid request");
  g_free (q.error);
  g_object_unref (parser);
  return reply;
}

guint
dhb_registry_sweep (DhbRegistry *r, gint64 now_ms, GPtrArray *events)
{
  guint expired = 0;
  GHashTableIter it;
  gpointer value;
  g_hash_table_iter_init (&it, r->channels);
  while (g_hash_table_iter_next (&it, NULL, &value)) {
    Channel *c = value;
    if (producer_gone (r, c, now_ms)) {
      emit (events, "producer-down", c, NULL, NULL,
          now_ms - c->last_seen_ms > (gint64) r->cfg.expiry_ms ? "expired" : "process-exited");
      g_hash_table_iter_remove (&it);
      expired++;
      continue;
    }
    GHashTableIter ci;
    gpointer id, seen;
    g_hash_table_iter_init (&ci, c->consumers);
    while (g_hash_table_iter_next (&ci, &id, &seen)) {
      if (now_ms - *(gint64 *) seen > (gint64) r->cfg.expiry_ms) {
        emit (events, "consumer-drop", c, "client_id", id, "expired");
        g_hash_table_iter_remove (&ci);
        expired++;
      }
    }
  }
  return expired;
}
