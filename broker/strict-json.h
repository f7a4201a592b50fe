/* JSON input as the broker and its client accept it: one object, parsed
 * by json-glib, with no duplicate member names and nothing after it.
 *
 * json-glib keeps the last of duplicate members ({"type":"LIST",
 * "type":"REG"} would be a REG), and reads "{...} {...}" as its first
 * value: both are refused here, so that what one party checked is what
 * the other one acts on. */
#ifndef DHB_STRICT_JSON_H
#define DHB_STRICT_JSON_H

#include <json-glib/json-glib.h>

G_BEGIN_DECLS

/* Parses @len bytes (valid UTF-8, no NUL: the caller checks).  Returns the
 * parser holding the object (g_object_unref it; the object is
 * json_node_get_object (json_parser_get_root (parser))), or NULL with
 * *@why (g_free it) saying what is wrong. */
JsonParser *dhb_parse_object (const gchar *data, gsize len, gchar **why);

G_END_DECLS

#endif
