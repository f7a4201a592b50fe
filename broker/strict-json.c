/* One JSON object, no duplicate members, nothing after it (strict-json.h). */
#include "strict-json.h"

#include <string.h>

/* A JsonParser that counts the members parsed into each object: json-glib
 * replaces a duplicate member in place, so an object with fewer members
 * than were parsed into it had a duplicate.  A subclass overriding the
 * signal's class handler, not a handler connected per parse: connecting
 * edits GObject's global handler tables under GLib locks that
 * ThreadSanitizer cannot see, from every thread that parses. */
typedef struct {
  JsonParser parent;
  GHashTable *seen;      /* JsonObject * -> number of members parsed */
  gchar *duplicate;      /* the first duplicate name */
} DhbStrictParser;

typedef struct {
  JsonParserClass parent_class;
} DhbStrictParserClass;

static GType dhb_strict_parser_get_type (void);
G_DEFINE_TYPE (DhbStrictParser, dhb_strict_parser, JSON_TYPE_PARSER)

static void
dhb_strict_parser_object_member (JsonParser *parser, JsonObject *object, const gchar *name)
{
  DhbStrictParser *d = (DhbStrictParser *) parser;
  guint n = GPOINTER_TO_UINT (g_hash_table_lookup (d->seen, object)) + 1;
  g_hash_table_insert (d->seen, object, GUINT_TO_POINTER (n));
  if (!d->duplicate && json_object_get_size (object) < n)
    d->duplicate = g_strdup (name);
}

static void
dhb_strict_parser_finalize (GObject *object)
{
  DhbStrictParser *d = (DhbStrictParser *) object;
  g_hash_table_destroy (d->seen);
  g_free (d->duplicate);
  G_OBJECT_CLASS (dhb_strict_parser_parent_class)->finalize (object);
}

static void
dhb_strict_parser_class_init (DhbStrictParserClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = dhb_strict_parser_finalize;
  JSON_PARSER_CLASS (klass)->object_member = dhb_strict_parser_object_member;
}

static void
dhb_strict_parser_init (DhbStrictParser *d)
{
  d->seen = g_hash_table_new (NULL, NULL);
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
  DhbStrictParser *d = g_object_new (dhb_strict_parser_get_type (), "immutable", TRUE, NULL);
  JsonParser *parser = JSON_PARSER (d);
  GError *err = NULL;
  gboolean parsed = json_parser_load_from_data (parser, data, (gssize) len, &err);
  JsonNode *root = parsed ? json_parser_get_root (parser) : NULL;
  *why = NULL;
  if (!parsed)
    *why = g_strdup_printf ("malformed JSON: %s", err->message);
  else if (!root || !JSON_NODE_HOLDS_OBJECT (root))
    *why = g_strdup ("request must be a JSON object");
  else if (d->duplicate)
    *why = g_strdup_printf ("member '%.64s' appears more than once", d->duplicate);
  else if (has_trailing_data (data, len))
    *why = g_strdup ("data after the request object");
  g_clear_error (&err);
  if (*why) {
    g_object_unref (parser);
    return NULL;
  }
  return parser;
}
