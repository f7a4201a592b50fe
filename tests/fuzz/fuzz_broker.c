/* libFuzzer target: the broker's input path.  Every input must get a
 * reply that is a JSON object with a status, and the registry must stay
 * usable (a LIST after each input).
 *
 * Two kinds of input, by their first byte:
 *   0xFE  the rest is the byte stream of one ZMTP peer (greeting, READY,
 *         frames; tests/fuzz/make_broker_seeds.py writes such seeds), fed
 *         in chunks whose sizes come from the data, as socket reads come,
 *         through the ROUTER codec into the registry as the daemon does
 *         (multi-frame messages, endless MORE frames, oversized frames),
 *         then through a PUB-role peer (subscriptions);
 *   else  JSON requests separated by 0xFF bytes, sent in turn by three
 *         clients (quota keys) to one registry, so sequences (REG then
 *         DISC then DEREG...) are explored.  Duplicate-key objects are in
 *         the seeds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-glib/json-glib.h>

#include "registry.h"
#include "zmtp.h"

static void
check_reply (gchar *reply)
{
  JsonNode *n = json_from_string (reply, NULL);
  if (!n || !JSON_NODE_HOLDS_OBJECT (n)
      || !json_object_get_string_member_with_default (json_node_get_object (n), "status", NULL))
    abort ();
  json_node_unref (n);
  g_free (reply);
}

/* The daemon's limits, smaller, so the fuzzer reaches them. */
static const DhbZmtpLimits router_limits = {
  .max_frame = 4096, .max_frames = 4, .max_message = 8192,
};
static const DhbZmtpLimits pub_limits = {
  .max_frame = 512, .max_frames = 1, .max_message = 512, .max_subscriptions = 8,
};

static void
feed_stream (DhbRegistry *r, DhbZmtpRole role, const uint8_t *data, size_t size,
    GPtrArray *events)
{
  GByteArray *out = g_byte_array_new ();
  DhbZmtpPeer *p = dhb_zmtp_peer_new (role, role == DHB_ZMTP_ROUTER ? &router_limits
      : &pub_limits, out);
  g_byte_array_unref (out);
  gint64 now = 1000000;
  size_t at = 0;
  gboolean alive = TRUE;
  while (alive && at < size) {
    /* chunk sizes vary with the data, as reads from a socket do */
    size_t chunk = 1 + data[at] % 97;
    chunk = chunk < size - at ? chunk : size - at;
    GPtrArray *messages = g_ptr_array_new_with_free_func ((GDestroyNotify) g_ptr_array_unref);
    gchar *why = NULL;
    alive = dhb_zmtp_peer_feed (p, data + at, chunk, messages, &why);
    if (!alive && !why)
      abort (); /* a refusal always says why */
    if (dhb_zmtp_peer_buffered (p) > router_limits.max_message + router_limits.max_frame
        + 9 + 65536)
      abort (); /* the limits bound what a peer makes us hold */
    for (guint i = 0; i < messages->len; i++) {
      gboolean delimited;
      GBytes *body;
      check_reply (dhb_registry_handle_frames (r, 7, messages->pdata[i], now, events,
              &delimited, &body));
    }
    g_ptr_array_unref (messages);
    g_free (why);
    at += chunk;
    now += 50;
  }
  if (role == DHB_ZMTP_PUB && alive)
    (void) dhb_zmtp_peer_subscribed (p, "cam0");
  dhb_zmtp_peer_free (p);
}

static void
feed_requests (DhbRegistry *r, const uint8_t *data, size_t size, GPtrArray *events)
{
  gint64 now = 1000000;
  guint64 client = 0;
  const uint8_t *start = data, *end = data + size;
  while (start <= end) {
    const uint8_t *sep = memchr (start, 0xFF, (size_t) (end - start));
    const uint8_t *stop = sep ? sep : end;
    check_reply (dhb_registry_handle (r, client++ % 3, (const gchar *) start,
            (gsize) (stop - start), now, events));
    now += 700; /* time passes: expiry paths run too */
    dhb_registry_sweep (r, now, events);
    start = stop + 1;
  }
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  DhbRegistryConfig cfg = { .heartbeat_ms = 1000, .expiry_ms = 5000,
    .events_endpoint = "ipc:///tmp/fuzz-events", .max_channels_per_client = 4,
    .max_consumers_per_client = 4 };
  DhbRegistry *r = dhb_registry_new (&cfg);
  GPtrArray *events = g_ptr_array_new_with_free_func (dhb_event_free);
  if (size > 0 && data[0] == 0xFE) {
    feed_stream (r, DHB_ZMTP_ROUTER, data + 1, size - 1, events);
    feed_stream (r, DHB_ZMTP_PUB, data + 1, size - 1, events);
  } else {
    feed_requests (r, data, size, events);
  }
  static const char list[] = "{\"type\":\"LIST\"}";
  check_reply (dhb_registry_handle (r, 0, list, sizeof list - 1, 1 << 30, events));
  g_ptr_array_unref (events);
  dhb_registry_free (r);
  return 0;
}
