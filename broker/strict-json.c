/* One JSON object, no duplicate members, nothing after it (strict-json.h). */
#include "strict-json.h"

#include <string.h>

/* Members seen per object while parsing: json-glib replaces a duplicate
 * member in place, so an object with fewer members than were parsed
 * into it had a duplicate. */
typedef struct {
  GHashTable *seen;      /* JsonObject * -> number of members parsed */
  gchar *duplicate;      /* the first duplicate name */
} DuplicateCheck;

static void
on_object_member (JsonParser *parser, JsonObject *object, const gchar *name, gpointer data)
{
  (void) parser;
  DuplicateCheck *d = data;
  guint n = GPOINTER_TO_UINT (g_hash_table_lookup (d->seen, object)) + 1;
  g_hash_table_insert (d->seen, object, GUINT_TO_POINTER (n));
  if (!d->duplicate && json_object_get_size (object) < n)
    d->duplicate = g_strdup (name);
}

/* TRUE if anything but white space follows the value that starts @data.
 * Only called on input the parser accepted as an object, so brackets
 * balance; strings are skipped with their escapes. */
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

JsonParser *
dhb_parse_object (const gchar *data, gsize len, gchar **why)
{
  JsonParser *parser = json_parser_new_immutable ();
  DuplicateCheck dup = { g_hash_table_new (NULL, NULL), NULL };
  gulong handler = g_signal_connect (parser, "object-member",
      G_CALLBACK (on_object_member), &dup);
  GError *err = NULL;
  gboolean parsed = json_parser_load_from_data (parser, data, (gssize) len, &err);
  g_signal_handler_disconnect (parser, handler);
  g_hash_table_destroy (dup.seen);
  JsonNode *root = parsed ? json_parser_get_root (parser) : NULL;
  *why = NULL;
  if (!parsed)
    *why = g_strdup_printf ("malformed JSON: %s", err->message);
  else if (!root || !JSON_NODE_HOLDS_OBJECT (root))
    *why = g_strdup ("request must be a JSON object");
  else if (dup.duplicate)
    *why = g_strdup_printf ("member '%.64s' appears more than once", dup.duplicate);
  else if (has_trailing_data (data, len))
    *why = g_strdup ("data after the request object");
  g_clear_error (&err);
  g_free (dup.duplicate);
  if (*why) {
    g_object_unref (parser);
    return NULL;
  }
  return parser;
}
