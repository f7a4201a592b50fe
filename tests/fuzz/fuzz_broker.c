/* libFuzzer target: the broker's request handler.  Every input must get a
 * reply that is a JSON object with a status, and the registry must stay
 * usable (a LIST after each input).  Inputs are split at 0xFF bytes into
 * several requests, so sequences (REG then DISC then DEREG...) are
 * explored against one registry. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-glib/json-glib.h>

#include "registry.h"

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

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  DhbRegistryConfig cfg = { .heartbeat_ms = 1000, .expiry_ms = 5000,
    .events_endpoint = "ipc:///tmp/fuzz-events" };
  DhbRegistry *r = dhb_registry_new (&cfg);
  GPtrArray *events = g_ptr_array_new_with_free_func (dhb_event_free);
  gint64 now = 1000000;
  const uint8_t *start = data, *end = data + size;
  while (start <= end) {
    const uint8_t *sep = memchr (start, 0xFF, (size_t) (end - start));
    const uint8_t *stop = sep ? sep : end;
    check_reply (dhb_registry_handle (r, (const gchar *) start, (gsize) (stop - start), now,
            events));
    now += 700; /* time passes: expiry paths run too */
    dhb_registry_sweep (r, now, events);
    start = stop + 1;
  }
  static const char list[] = "{\"type\":\"LIST\"}";
  check_reply (dhb_registry_handle (r, list, sizeof list - 1, now, events));
  g_ptr_array_unref (events);
  dhb_registry_free (r);
  return 0;
}
