/* The broker's registry: which producer serves which channel, who consumes
 * it, and the request handler.  docs/broker.md is the message spec. */
#include "registry.h"

#include <string.h>

#include <json-glib/json-glib.h>
#include <sodium.h>

#include "datahub/datahub.h"
#include "proof.h"
#include "strict-json.h"

#define CHANNEL_MAX 200
#define CLIENT_ID_MAX 128
#define HEX_HASH_LEN (2 * DH_HASH_SIZE)
#define NONCE_MAC_SIZE 16
#define NONCE_RANDOM_SIZE 16

typedef struct {
  gint64 last_seen_ms;
  guint64 client;                  /* quota key of the peer that admitted it */
} Consumer;

typedef struct {
  gchar *name, *shm_name, *producer_id, *schema;
  gchar schema_hash[HEX_HASH_LEN + 1];
  /* secured: the producer registered the public key of its secret for
   * this channel and signed its location with it (proof.h) */
  gboolean secured;
  guint8 public_key[DHB_PUBLIC_KEY_SIZE];
  gchar location_proof[2 * DHB_SIGNATURE_SIZE + 1];
  gint64 pid, registered_ms, last_seen_ms;
  guint64 client;                  /* quota key of the registering peer */
  GHashTable *consumers;           /* client id -> Consumer * */
  gsize list_bytes;                /* about what it adds to a LIST reply */
} Channel;

struct _DhbRegistry {
  DhbRegistryConfig cfg;
  gchar *events_endpoint;
  GTree *channels;                 /* name -> Channel *, sorted for LIST */
  GHashTable *channels_of;         /* quota key (gint64 *) -> guint count */
  GHashTable *consumers_of;
  /* keys the nonces this broker run issues (stateless: a nonce carries
   * its expiry and a MAC, the broker stores nothing per nonce) */
  guint8 nonce_key[crypto_generichash_KEYBYTES];
};

/* A request being handled: the parsed object, the first problem found,
 * who sent it and when. */
typedef struct {
  JsonObject *obj;
  gchar *error;
  guint64 client;
  gint64 now_ms;
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

static gint
compare_names (gconstpointer a, gconstpointer b, gpointer unused)
{
  (void) unused;
  return strcmp (a, b);
}

gboolean
dhb_registry_check_timing (guint heartbeat_ms, guint expiry_ms, gchar **why)
{
  *why = NULL;
  if (heartbeat_ms < DHB_MIN_HEARTBEAT_MS || heartbeat_ms > DHB_MAX_HEARTBEAT_MS)
    *why = g_strdup_printf ("the heartbeat must be %u to %u ms, not %u",
        DHB_MIN_HEARTBEAT_MS, DHB_MAX_HEARTBEAT_MS, heartbeat_ms);
  else if ((guint64) expiry_ms < 2 * (guint64) heartbeat_ms + DHB_EXPIRY_MARGIN_MS)
    *why = g_strdup_printf ("the expiry (%u ms) must be at least twice the heartbeat plus "
        "%u ms (%u ms): with less, one late heartbeat expires a live client",
        expiry_ms, DHB_EXPIRY_MARGIN_MS, 2 * heartbeat_ms + DHB_EXPIRY_MARGIN_MS);
  else if (expiry_ms > DHB_MAX_EXPIRY_MS)
    *why = g_strdup_printf ("the expiry must be at most %u ms, not %u", DHB_MAX_EXPIRY_MS,
        expiry_ms);
  return *why == NULL;
}

DhbRegistry *
dhb_registry_new (const DhbRegistryConfig *config)
{
  DhbRegistry *r = g_new0 (DhbRegistry, 1);
  r->cfg = *config;
  r->events_endpoint = g_strdup (config->events_endpoint ? config->events_endpoint : "");
  r->cfg.events_endpoint = r->events_endpoint;
  if (!r->cfg.max_channels_per_client)
    r->cfg.max_channels_per_client = DHB_DEFAULT_CHANNELS_PER_CLIENT;
  if (!r->cfg.max_consumers_per_client)
    r->cfg.max_consumers_per_client = DHB_DEFAULT_CONSUMERS_PER_CLIENT;
  r->channels = g_tree_new_full (compare_names, NULL, NULL, channel_free);
  r->channels_of = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, NULL);
  r->consumers_of = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, NULL);
  randombytes_buf (r->nonce_key, sizeof r->nonce_key);
  return r;
}

void
dhb_registry_free (DhbRegistry *r)
{
  if (!r)
    return;
  g_tree_destroy (r->channels);
  g_hash_table_destroy (r->channels_of);
  g_hash_table_destroy (r->consumers_of);
  g_free (r->events_endpoint);
  sodium_memzero (r->nonce_key, sizeof r->nonce_key);
  g_free (r);
}

guint
dhb_registry_channel_count (const DhbRegistry *r)
{
  return (guint) g_tree_nnodes (r->channels);
}

/* ---- quotas: what each client holds ------------------------------------- */

static guint
quota_used (GHashTable *table, guint64 client)
{
  gint64 key = (gint64) client;
  return GPOINTER_TO_UINT (g_hash_table_lookup (table, &key));
}

static void
quota_add (GHashTable *table, guint64 client, gint delta)
{
  gint64 key = (gint64) client;
  guint n = quota_used (table, client) + (guint) delta;
  if (n == 0) {
    g_hash_table_remove (table, &key);
    return;
  }
  gint64 *stored = g_new (gint64, 1);
  *stored = key;
  g_hash_table_replace (table, stored, GUINT_TO_POINTER (n));
}

static void
consumer_remove (DhbRegistry *r, Channel *c, const gchar *id)
{
  Consumer *k = g_hash_table_lookup (c->consumers, id);
  if (!k)
    return;
  quota_add (r->consumers_of, k->client, -1);
  g_hash_table_remove (c->consumers, id);
}

/* Removes @c from the registry and frees it, with what it counted. */
static void
channel_remove (DhbRegistry *r, Channel *c)
{
  GHashTableIter it;
  gpointer value;
  g_hash_table_iter_init (&it, c->consumers);
  while (g_hash_table_iter_next (&it, NULL, &value))
    quota_add (r->consumers_of, ((Consumer *) value)->client, -1);
  quota_add (r->channels_of, c->client, -1);
  g_tree_remove (r->channels, c->name);
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

/* TRUE if @s is made of [A-Za-z0-9._-] only. */
static gboolean
is_name (const gchar *s)
{
  for (const gchar *p = s; *p; p++)
    if (!is_name_char (*p))
      return FALSE;
  return TRUE;
}

/* Channel names: [A-Za-z0-9._-], 1..200 bytes (they become shm names). */
static const gchar *
channel_field (Request *q)
{
  const gchar *s = string_field (q, "channel", TRUE, CHANNEL_MAX);
  if (s && !is_name (s)) {
    fail (q, "field 'channel' may only contain A-Z a-z 0-9 . _ -");
    return NULL;
  }
  return s;
}

/* Shm names: "/" and one path element of [A-Za-z0-9._-] that is not all
 * dots: nothing a terminal, a log or a path lookup reads differently. */
static const gchar *
shm_name_field (Request *q)
{
  const gchar *s = string_field (q, "shm_name", TRUE, DH_NAME_MAX);
  if (!s)
    return NULL;
  if (s[0] != '/' || !s[1] || !is_name (s + 1) || strspn (s + 1, ".") == strlen (s + 1)) {
    fail (q, "field 'shm_name' must be '/' and a name of A-Z a-z 0-9 . _ - "
        "(not only dots)");
    return NULL;
  }
  return s;
}

/* Free text shown to people (the schema): valid UTF-8 (checked for the
 * whole request) without control or format characters, so that it cannot
 * move a terminal's cursor, forge log lines or reorder text. */
static const gchar *
text_field (Request *q, const gchar *name, gsize max_len)
{
  const gchar *s = string_field (q, name, FALSE, max_len);
  if (!s)
    return NULL;
  for (const gchar *p = s; *p; p = g_utf8_next_char (p)) {
    GUnicodeType t = g_unichar_type (g_utf8_get_char (p));
    if (t == G_UNICODE_CONTROL || t == G_UNICODE_FORMAT) {
      fail (q, "field '%s' contains a control or format character", name);
      return NULL;
    }
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

/* @len bytes in hex (2 * @len digits) decoded into @out; FALSE if absent
 * or bad. */
static gboolean
bytes_field (Request *q, const gchar *name, guint8 *out, gsize len)
{
  const gchar *s = string_field (q, name, FALSE, 2 * len);
  if (!s)
    return FALSE;
  if (!dhb_hex_decode (s, out, len)) {
    fail (q, "field '%s' must be %" G_GSIZE_FORMAT " hex digits", name, 2 * len);
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

static void
add_error (JsonBuilder *b, const gchar *error)
{
  json_builder_set_member_name (b, "error");
  /* json-glib's parse errors quote the offending input, which may not be
   * UTF-8 (an escape like \371): the reply must stay valid JSON */
  gchar *valid = g_utf8_make_valid (error, -1);
  json_builder_add_string_value (b, valid);
  g_free (valid);
}

static gchar *
reply_error (JsonObject *request, const gchar *status, const gchar *error)
{
  JsonBuilder *b = reply_begin (request, status);
  add_error (b, error);
  return reply_end (b);
}

gchar *
dhb_registry_bad_request (const gchar *why)
{
  return reply_error (NULL, "BAD_REQUEST", why);
}

static void
add_string (JsonBuilder *b, const gchar *name, const gchar *value)
{
  json_builder_set_member_name (b, name);
  json_builder_add_string_value (b, value);
}

static void
add_int (JsonBuilder *b, const gchar *name, gint64 value)
{
  json_builder_set_member_name (b, name);
  json_builder_add_int_value (b, value);
}

/* Adds what clients need to keep a registration alive. */
static void
add_timing (DhbRegistry *r, JsonBuilder *b)
{
  add_int (b, "heartbeat_ms", r->cfg.heartbeat_ms);
  add_int (b, "expiry_ms", r->cfg.expiry_ms);
  add_string (b, "events", r->events_endpoint);
}

/* The channel's name and whether it is secured: what anyone may know. */
static void
add_channel_public (JsonBuilder *b, const Channel *c)
{
  add_string (b, "channel", c->name);
  json_builder_set_member_name (b, "secured");
  json_builder_add_boolean_value (b, c->secured);
}

/* Where the channel's block is and what it carries: for everyone on an
 * unsecured channel, only for consumers who proved the secret on a
 * secured one. */
static void
add_channel_location (JsonBuilder *b, const Channel *c)
{
  add_string (b, "shm_name", c->shm_name);
  add_int (b, "pid", c->pid);
  add_string (b, "schema", c->schema);
  add_string (b, "schema_hash", c->schema_hash);
}

/* Queues an event: {"event": @name, "channel", "secured", the location
 * (unsecured channels only), then @extra_key: @extra_value (unsecured
 * only: a previous block or a consumer id) and "reason" if given}.  Events
 * go to anyone who subscribes, so a secured channel's say only what
 * happened, never where. */
static void
emit (GPtrArray *events, const gchar *name, const Channel *c, const gchar *extra_key,
    const gchar *extra_value, const gchar *reason)
{
  if (!events)
    return;
  JsonBuilder *b = json_builder_new ();
  json_builder_begin_object (b);
  add_string (b, "event", name);
  add_channel_public (b, c);
  if (!c->secured) {
    add_channel_location (b, c);
    if (extra_key)
      add_string (b, extra_key, extra_value);
  }
  if (reason)
    add_string (b, "reason", reason);
  json_builder_end_object (b);
  DhbEvent *e = g_new0 (DhbEvent, 1);
  e->topic = g_strdup (c->name);
  e->json = to_json (b);
  g_ptr_array_add (events, e);
}

/* ---- nonces and proofs ------------------------------------------------- */

static void
nonce_mac (const DhbRegistry *r, const guint8 *nonce, const gchar *channel,
    const gchar *client_id, guint8 mac[NONCE_MAC_SIZE])
{
  static const char label[] = "datahub nonce v2";
  crypto_generichash_state st;
  crypto_generichash_init (&st, r->nonce_key, sizeof r->nonce_key, NONCE_MAC_SIZE);
  crypto_generichash_update (&st, (const guint8 *) label, sizeof label);
  crypto_generichash_update (&st, nonce, 8 + NONCE_RANDOM_SIZE);
  crypto_generichash_update (&st, (const guint8 *) channel, strlen (channel) + 1);
  crypto_generichash_update (&st, (const guint8 *) client_id, strlen (client_id));
  crypto_generichash_final (&st, mac, NONCE_MAC_SIZE);
}

/* A nonce for @channel and @client_id, valid DHB_NONCE_VALID_MS: its
 * expiry, random bytes, and a MAC over both and what it is for. */
static void
nonce_issue (const DhbRegistry *r, const gchar *channel, const gchar *client_id,
    gint64 now_ms, gchar hex[2 * DHB_NONCE_SIZE + 1])
{
  guint8 nonce[DHB_NONCE_SIZE];
  guint64 expiry = (guint64) (now_ms + DHB_NONCE_VALID_MS);
  for (int i = 0; i < 8; i++)
    nonce[i] = (guint8) (expiry >> (56 - 8 * i));
  randombytes_buf (nonce + 8, NONCE_RANDOM_SIZE);
  nonce_mac (r, nonce, channel, client_id, nonce + 8 + NONCE_RANDOM_SIZE);
  dhb_hex_encode (nonce, sizeof nonce, hex);
}

static gboolean
nonce_valid (const DhbRegistry *r, const guint8 nonce[DHB_NONCE_SIZE], const gchar *channel,
    const gchar *client_id, gint64 now_ms)
{
  guint8 mac[NONCE_MAC_SIZE];
  nonce_mac (r, nonce, channel, client_id, mac);
  if (sodium_memcmp (mac, nonce + 8 + NONCE_RANDOM_SIZE, sizeof mac) != 0)
    return FALSE;
  guint64 expiry = 0;
  for (int i = 0; i < 8; i++)
    expiry = expiry << 8 | nonce[i];
  return (guint64) now_ms <= expiry;
}

static gboolean
signature_verifies (const guint8 *sig, GBytes *message, const guint8 *pk)
{
  gsize len = 0;
  const guint8 *m = g_bytes_get_data (message, &len);
  gboolean ok = crypto_sign_verify_detached (sig, m, len, pk) == 0;
  g_bytes_unref (message);
  return ok;
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
  dhb_hex_encode (h, sizeof h, out);
}

static Channel *
lookup (DhbRegistry *r, const gchar *name)
{
  return g_tree_lookup (r->channels, name);
}

/* CONFLICT names the producer holding the channel, unless it registered
 * with a secret the request does not prove (@pk: the requester's public
 * key, whose location signature verified). */
static gchar *
conflict_reply (Request *q, const Channel *c, const guint8 *pk)
{
  gboolean reveal = !c->secured
      || (pk && sodium_memcmp (pk, c->public_key, DHB_PUBLIC_KEY_SIZE) == 0);
  JsonBuilder *b = reply_begin (q->obj, "CONFLICT");
  if (reveal) {
    gchar *why = g_strdup_printf ("another live producer serves this channel: pid %"
        G_GINT64_FORMAT ", block %s", c->pid, c->shm_name);
    add_error (b, why);
    g_free (why);
    add_int (b, "pid", c->pid);
    add_string (b, "shm_name", c->shm_name);
  } else {
    add_error (b, "another live producer serves this channel; it registered with a "
        "secret this request does not prove, so who it is is not told");
  }
  return reply_end (b);
}

/* A new channel, if the registry and the client's quota have room. */
static Channel *
channel_new (DhbRegistry *r, Request *q, const gchar *name, const gchar *id, gchar **refusal)
{
  if (dhb_registry_channel_count (r) >= DHB_MAX_CHANNELS) {
    *refusal = g_strdup_printf ("the registry is full (%d channels)", DHB_MAX_CHANNELS);
    return NULL;
  }
  if (quota_used (r->channels_of, q->client) >= r->cfg.max_channels_per_client) {
    *refusal = g_strdup_printf ("this client already registered %u channels, the most "
        "one client may", r->cfg.max_channels_per_client);
    return NULL;
  }
  Channel *c = g_new0 (Channel, 1);
  c->name = g_strdup (name);
  c->producer_id = g_strdup (id);
  c->consumers = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  c->registered_ms = q->now_ms;
  c->client = q->client;
  c->shm_name = g_strdup ("");
  c->schema = g_strdup ("");
  g_tree_insert (r->channels, c->name, c);
  quota_add (r->channels_of, q->client, 1);
  return c;
}

/* About how many bytes @c adds to a LIST reply: its strings (quotes and
 * backslashes of the schema escaped, the only characters JSON escapes
 * that a schema may hold), member names and numbers. */
static gsize
list_entry_size (const Channel *c)
{
  if (c->secured)
    return strlen (c->name) + 120;
  gsize escapes = 0;
  for (const gchar *p = c->schema; *p; p++)
    escapes += *p == '"' || *p == '\\';
  return strlen (c->name) + strlen (c->shm_name) + strlen (c->schema) + escapes
      + HEX_HASH_LEN + 200;
}

static gchar *
handle_reg (DhbRegistry *r, Request *q, GPtrArray *events)
{
  const gchar *name = channel_field (q);
  const gchar *shm = shm_name_field (q);
  const gchar *id = client_id_field (q, TRUE);
  JsonNode *pid_node = field (q, "pid", G_TYPE_INT64, TRUE);
  const gchar *schema = text_field (q, "schema", DHB_MAX_SCHEMA);
  guint8 pk[DHB_PUBLIC_KEY_SIZE], sig[DHB_SIGNATURE_SIZE];
  gboolean has_pk = bytes_field (q, "secret_key", pk, sizeof pk);
  gboolean has_sig = bytes_field (q, "location_proof", sig, sizeof sig);
  if (json_object_has_member (q->obj, "secret_verifier"))
    fail (q, "field 'secret_verifier' (a reusable proof of protocol 1) is refused: "
        "register 'secret_key' and 'location_proof'");
  if (has_pk != has_sig)
    fail (q, "fields 'secret_key' and 'location_proof' go together");
  gint64 pid = pid_node ? json_node_get_int (pid_node) : 0;
  if (pid_node && (pid <= 0 || pid > G_MAXINT32))
    fail (q, "field 'pid' must be a process id");
  if (q->error)
    return NULL;
  if (!schema)
    schema = "";

  gchar hash[HEX_HASH_LEN + 1];
  schema_hash_hex (schema, hash);
  if (has_pk && !signature_verifies (sig, dhb_proof_location_message (name, shm, pid, hash),
          pk))
    return reply_error (q->obj, "BAD_REQUEST",
        "'location_proof' is not the signature of this location by 'secret_key'");

  Channel *c = lookup (r, name);
  if (c && strcmp (c->producer_id, id) != 0) {
    if (!producer_gone (r, c, q->now_ms))
      return conflict_reply (q, c, has_pk ? pk : NULL);
    /* the previous producer is gone: say so before the new one is up */
    emit (events, "producer-down", c, NULL, NULL, "replaced");
    channel_remove (r, c);
    c = NULL;
  }
  const gchar *event = NULL;
  gchar *old_shm = NULL;
  if (!c) {
    gchar *refusal = NULL;
    c = channel_new (r, q, name, id, &refusal);
    if (!c) {
      gchar *reply = reply_error (q->obj, "BAD_REQUEST", refusal);
      g_free (refusal);
      return reply;
    }
    event = "producer-up";
  } else if (strcmp (c->shm_name, shm) != 0) {
    event = "handover";
    old_shm = g_strdup (c->shm_name);
  } else if (strcmp (c->schema, schema) != 0) {
    event = "schema-changed";
  }
  g_free (c->shm_name);
  c->shm_name = g_strdup (shm);
  g_free (c->schema);
  c->schema = g_strdup (schema);
  memcpy (c->schema_hash, hash, sizeof hash);
  c->secured = has_pk;
  if (has_pk) {
    memcpy (c->public_key, pk, sizeof pk);
    dhb_hex_encode (sig, sizeof sig, c->location_proof);
  }
  c->pid = pid;
  c->last_seen_ms = q->now_ms;
  c->list_bytes = list_entry_size (c);
  if (event)
    emit (events, event, c, old_shm ? "from" : NULL, old_shm, NULL);
  g_free (old_shm);

  JsonBuilder *b = reply_begin (q->obj, "OK");
  add_string (b, "channel", c->name);
  add_string (b, "schema_hash", c->schema_hash);
  add_timing (r, b);
  return reply_end (b);
}

/* Notes an admitted consumer as alive; FALSE if it is not counted (the
 * channel's table or the client's quota is full: it still gets its
 * answer, it is just not followed). */
static gboolean
admit_consumer (DhbRegistry *r, Channel *c, const gchar *id, guint64 client, gint64 now_ms)
{
  Consumer *k = g_hash_table_lookup (c->consumers, id);
  if (!k) {
    if (g_hash_table_size (c->consumers) >= DHB_MAX_CONSUMERS_PER_CHANNEL
        || quota_used (r->consumers_of, client) >= r->cfg.max_consumers_per_client)
      return FALSE;
    k = g_new0 (Consumer, 1);
    k->client = client;
    g_hash_table_insert (c->consumers, g_strdup (id), k);
    quota_add (r->consumers_of, client, 1);
  }
  k->last_seen_ms = now_ms;
  return TRUE;
}

/* AUTH_FAILED with a fresh nonce, which a client that knows the secret
 * signs in its next DISC. */
static gchar *
auth_failed (DhbRegistry *r, Request *q, const gchar *channel, const gchar *id,
    const gchar *why)
{
  gchar nonce[2 * DHB_NONCE_SIZE + 1];
  nonce_issue (r, channel, id ? id : "", q->now_ms, nonce);
  JsonBuilder *b = reply_begin (q->obj, "AUTH_FAILED");
  add_error (b, why);
  add_string (b, "nonce", nonce);
  return reply_end (b);
}

/* A DISC's proof of the secret: a signature of the broker's nonce. */
typedef struct {
  guint8 sig[DHB_SIGNATURE_SIZE], nonce[DHB_NONCE_SIZE];
  gboolean has_sig, has_nonce;
} Proof;

/* NULL if @p proves the secret of secured channel @c, else why not. */
static const gchar *
disc_refusal (DhbRegistry *r, Request *q, const Channel *c, const gchar *id, const Proof *p)
{
  if (!p->has_sig)
    return "this channel needs a secret";
  if (!p->has_nonce || !nonce_valid (r, p->nonce, c->name, id ? id : "", q->now_ms))
    return "the nonce is missing, stale or for another channel or client: sign the "
        "nonce of this reply";
  if (!signature_verifies (p->sig, dhb_proof_disc_message (p->nonce, c->name, id ? id : ""),
          c->public_key))
    return "the secret does not match the producer's";
  return NULL;
}

static gchar *
schema_mismatch (Request *q, const Channel *c)
{
  JsonBuilder *b = reply_begin (q->obj, "SCHEMA_MISMATCH");
  add_error (b, "the producer's schema differs from the expected one");
  add_string (b, "schema", c->schema);
  return reply_end (b);
}

static gchar *
handle_disc (DhbRegistry *r, Request *q)
{
  const gchar *name = channel_field (q);
  const gchar *id = client_id_field (q, FALSE);
  const gchar *want_schema = text_field (q, "schema", DHB_MAX_SCHEMA);
  guint8 want_hash[DH_HASH_SIZE];
  gboolean has_hash = bytes_field (q, "schema_hash", want_hash, sizeof want_hash);
  Proof proof;
  proof.has_sig = bytes_field (q, "secret_proof", proof.sig, sizeof proof.sig);
  proof.has_nonce = bytes_field (q, "nonce", proof.nonce, sizeof proof.nonce);
  if (q->error)
    return NULL;

  Channel *c = lookup (r, name);
  if (!c || producer_gone (r, c, q->now_ms))
    return reply_error (q->obj, "NOT_FOUND", "no live producer on this channel");
  if (c->secured) {
    const gchar *refusal = disc_refusal (r, q, c, id, &proof);
    if (refusal)
      return auth_failed (r, q, name, id, refusal);
  }
  gchar want_hex[HEX_HASH_LEN + 1];
  if (want_schema)
    schema_hash_hex (want_schema, want_hex);
  else if (has_hash)
    dhb_hex_encode (want_hash, sizeof want_hash, want_hex);
  if ((want_schema || has_hash) && strcmp (want_hex, c->schema_hash) != 0)
    return schema_mismatch (q, c);

  JsonBuilder *b = reply_begin (q->obj, "OK");
  add_channel_public (b, c);
  add_channel_location (b, c);
  if (c->secured) {
    /* the client checks that a holder of the secret signed the location */
    gchar pk_hex[2 * DHB_PUBLIC_KEY_SIZE + 1];
    dhb_hex_encode (c->public_key, sizeof c->public_key, pk_hex);
    add_string (b, "secret_key", pk_hex);
    add_string (b, "location_proof", c->location_proof);
  }
  if (id) {
    json_builder_set_member_name (b, "counted");
    json_builder_add_boolean_value (b, admit_consumer (r, c, id, q->client, q->now_ms));
  }
  add_timing (r, b);
  return reply_end (b);
}

/* HB and DEREG of a consumer: only ids a DISC admitted (an authenticated
 * one on a secured channel) exist, so these never create entries. */
static gchar *
handle_consumer (DhbRegistry *r, Request *q, Channel *c, const gchar *id, gboolean remove,
    GPtrArray *events)
{
  Consumer *k = g_hash_table_lookup (c->consumers, id);
  if (!k)
    return reply_error (q->obj, "NOT_FOUND", "this client is not an admitted consumer of "
        "the channel: discover the channel first");
  if (remove) {
    emit (events, "consumer-drop", c, "client_id", id, "left");
    consumer_remove (r, c, id);
  } else {
    k->last_seen_ms = q->now_ms;
  }
  return NULL;
}

/* HB and DEREG name a channel and a client; @remove is DEREG. */
static gchar *
handle_client (DhbRegistry *r, Request *q, gboolean remove, GPtrArray *events)
{
  const gchar *name = channel_field (q);
  const gchar *id = client_id_field (q, TRUE);
  gboolean consumer = consumer_role (q);
  if (q->error)
    return NULL;

  Channel *c = lookup (r, name);
  if (!c)
    return reply_error (q->obj, "NOT_FOUND", "no such channel");
  if (consumer) {
    gchar *refused = handle_consumer (r, q, c, id, remove, events);
    if (refused)
      return refused;
  } else {
    if (strcmp (c->producer_id, id) != 0)
      return reply_error (q->obj, "NOT_FOUND", "this client is not the channel's producer");
    if (remove) {
      emit (events, "producer-down", c, NULL, NULL, "deregistered");
      channel_remove (r, c);
    } else {
      c->last_seen_ms = q->now_ms;
    }
  }
  JsonBuilder *b = reply_begin (q->obj, "OK");
  if (!remove)
    add_timing (r, b);
  return reply_end (b);
}

static void
add_list_entry (JsonBuilder *b, const Channel *c, gint64 now_ms)
{
  json_builder_begin_object (b);
  add_channel_public (b, c);
  if (!c->secured)
    add_channel_location (b, c);
  add_int (b, "consumers", g_hash_table_size (c->consumers));
  add_int (b, "age_ms", now_ms - c->registered_ms);
  add_int (b, "last_seen_ms", now_ms - c->last_seen_ms);
  json_builder_end_object (b);
}

/* LIST: channels sorted by name, from after "after", one page of about
 * DHB_LIST_PAGE_BYTES; "next" names the last one if more follow. */
static gchar *
handle_list (DhbRegistry *r, Request *q)
{
  const gchar *after = string_field (q, "after", FALSE, CHANNEL_MAX);
  if (after && !is_name (after))
    fail (q, "field 'after' must be a channel name");
  if (q->error)
    return NULL;
  JsonBuilder *b = reply_begin (q->obj, "OK");
  add_timing (r, b);
  json_builder_set_member_name (b, "channels");
  json_builder_begin_array (b);
  GTreeNode *node = after && *after ? g_tree_upper_bound (r->channels, after)
      : g_tree_node_first (r->channels);
  gsize bytes = 0;
  const gchar *last = NULL;
  for (; node && bytes < DHB_LIST_PAGE_BYTES; node = g_tree_node_next (node)) {
    const Channel *c = g_tree_node_value (node);
    add_list_entry (b, c, q->now_ms);
    bytes += c->list_bytes;
    last = c->name;
  }
  json_builder_end_array (b);
  if (node)
    add_string (b, "next", last);
  return reply_end (b);
}

static gchar *
dispatch (DhbRegistry *r, Request *q, GPtrArray *events)
{
  const gchar *type = string_field (q, "type", TRUE, 16);
  if (q->error)
    return NULL;
  if (strcmp (type, "REG") == 0)
    return handle_reg (r, q, events);
  if (strcmp (type, "DISC") == 0)
    return handle_disc (r, q);
  if (strcmp (type, "HB") == 0)
    return handle_client (r, q, FALSE, events);
  if (strcmp (type, "DEREG") == 0)
    return handle_client (r, q, TRUE, events);
  if (strcmp (type, "LIST") == 0)
    return handle_list (r, q);
  fail (q, "unknown request type '%s' (REG, DISC, DEREG, HB or LIST)", type);
  return NULL;
}

gchar *
dhb_registry_handle (DhbRegistry *r, guint64 client, const gchar *data, gsize len,
    gint64 now_ms, GPtrArray *events)
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

  gchar *why = NULL;
  JsonParser *parser = dhb_parse_object (data, len, &why);
  if (!parser) {
    gchar *reply = dhb_registry_bad_request (why);
    g_free (why);
    return reply;
  }
  Request q = { json_node_get_object (json_parser_get_root (parser)), NULL, client, now_ms };
  gchar *reply = dispatch (r, &q, events);
  if (!reply)
    reply = reply_error (q.obj, "BAD_REQUEST", q.error ? q.error : "invalid request");
  g_free (q.error);
  g_object_unref (parser);
  return reply;
}

gchar *
dhb_registry_handle_frames (DhbRegistry *r, guint64 client, GPtrArray *frames,
    gint64 now_ms, GPtrArray *events, gboolean *delimited, GBytes **body)
{
  *delimited = FALSE;
  *body = NULL;
  if (frames->len == 0)
    return dhb_registry_bad_request ("empty message");
  /* DEALER and REQ clients send an empty delimiter first */
  guint first = 0;
  if (frames->len > 1 && g_bytes_get_size (frames->pdata[0]) == 0) {
    *delimited = TRUE;
    first = 1;
  }
  *body = frames->pdata[first];
  if (frames->len > first + 1)
    return dhb_registry_bad_request ("a request is one frame of JSON");
  gsize len = 0;
  const gchar *data = g_bytes_get_data (*body, &len);
  return dhb_registry_handle (r, client, data ? data : "", len, now_ms, events);
}

/* Expires the silent consumers of @c; returns how many. */
static guint
sweep_consumers (DhbRegistry *r, Channel *c, gint64 now_ms, GPtrArray *events)
{
  guint expired = 0;
  GHashTableIter it;
  gpointer id, value;
  g_hash_table_iter_init (&it, c->consumers);
  while (g_hash_table_iter_next (&it, &id, &value)) {
    Consumer *k = value;
    if (now_ms - k->last_seen_ms > (gint64) r->cfg.expiry_ms) {
      emit (events, "consumer-drop", c, "client_id", id, "expired");
      quota_add (r->consumers_of, k->client, -1);
      g_hash_table_iter_remove (&it);
      expired++;
    }
  }
  return expired;
}

guint
dhb_registry_sweep (DhbRegistry *r, gint64 now_ms, GPtrArray *events)
{
  guint expired = 0;
  GPtrArray *gone = g_ptr_array_new ();
  for (GTreeNode *n = g_tree_node_first (r->channels); n; n = g_tree_node_next (n)) {
    Channel *c = g_tree_node_value (n);
    if (producer_gone (r, c, now_ms)) {
      emit (events, "producer-down", c, NULL, NULL,
          now_ms - c->last_seen_ms > (gint64) r->cfg.expiry_ms ? "expired" : "process-exited");
      g_ptr_array_add (gone, c); /* removed after the walk: the tree must not change in it */
      continue;
    }
    expired += sweep_consumers (r, c, now_ms, events);
  }
  for (guint i = 0; i < gone->len; i++)
    channel_remove (r, gone->pdata[i]);
  expired += gone->len;
  g_ptr_array_unref (gone);
  return expired;
}
