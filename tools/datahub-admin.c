/* datahub-admin: list, inspect, diagnose and recover DataBlocks.
 * docs/admin.md documents every command, its output and exit codes. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>
#include <json-glib/json-glib.h>

#include "datahub/admin.h"
#include "datahub/broker.h"

/* Exit codes (docs/admin.md). */
enum {
  EXIT_OK = 0,
  EXIT_FINDINGS = 1,    /* validate/diagnose found problems */
  EXIT_USAGE = 2,
  EXIT_NO_BLOCK = 3,
  EXIT_DENIED = 4,
  EXIT_BAD_BLOCK = 5,   /* not datahub, unsupported version, corrupt */
  EXIT_REFUSED = 6,     /* owner alive (use --force) */
  EXIT_FAILED = 7,
};

static gboolean opt_force, opt_apply, opt_json, opt_prometheus, opt_reset;
static gint opt_interval = 1000, opt_count = 0;
static gchar *opt_broker;

static const GOptionEntry entries[] = {
  { "force", 'f', 0, G_OPTION_ARG_NONE, &opt_force, "Act even while the owner lives", NULL },
  { "apply", 0, 0, G_OPTION_ARG_NONE, &opt_apply, "auto-recover: repair (default: dry run)", NULL },
  { "json", 0, 0, G_OPTION_ARG_NONE, &opt_json, "metrics, list: JSON output", NULL },
  { "prometheus", 0, 0, G_OPTION_ARG_NONE, &opt_prometheus, "metrics: Prometheus text", NULL },
  { "reset", 0, 0, G_OPTION_ARG_NONE, &opt_reset, "metrics: zero the counters after printing", NULL },
  { "interval", 'i', 0, G_OPTION_ARG_INT, &opt_interval, "watch: refresh period in ms", "MS" },
  { "count", 'n', 0, G_OPTION_ARG_INT, &opt_count, "watch: stop after N refreshes", "N" },
  { "broker", 'b', 0, G_OPTION_ARG_STRING, &opt_broker,
    "channels: the broker's endpoint (default: as the elements)", "ENDPOINT" },
  { NULL, 0, 0, 0, NULL, NULL, NULL },
};

static int
exit_for (int rc)
{
  switch (rc) {
    case -ENOENT: return EXIT_NO_BLOCK;
    case -EINVAL: case -ENAMETOOLONG: return EXIT_USAGE; /* a name that cannot be one */
    case -EACCES: case -EPERM: case -EROFS: return EXIT_DENIED;
    case DH_ENOTDATAHUB: case DH_EVERSION: case DH_ECORRUPT: case DH_ETRUNCATED:
    case DH_ENOTREADY: return EXIT_BAD_BLOCK;
    case DH_EOWNERALIVE: return EXIT_REFUSED;
    default: return EXIT_FAILED;
  }
}

/* ---- showing untrusted text ------------------------------------------------ */

/* @s as it may be shown on a terminal.  Names come from /dev/shm, block
 * headers and the broker, all writable by others: bytes that are not
 * UTF-8, C0 and C1 controls, DEL and Unicode format characters (bidi
 * overrides, zero-width) become \xNN or \u{NNNN}, so a name can neither
 * move the cursor, retitle the window, forge a line nor reorder what
 * follows.  The result lives until eight more calls. */
static const char *
esc (const char *s)
{
  static gchar *slots[8];
  static unsigned next;
  GString *out = g_string_new (NULL);
  const gchar *p = s ? s : "";
  while (*p) {
    gunichar ch = g_utf8_get_char_validated (p, -1);
    if (ch == (gunichar) -1 || ch == (gunichar) -2) {
      g_string_append_printf (out, "\\x%02x", (guchar) *p++);
      continue;
    }
    GUnicodeType t = g_unichar_type (ch);
    if (ch < 0x80 && (ch < 0x20 || ch == 0x7f))
      g_string_append_printf (out, "\\x%02x", ch);
    else if (t == G_UNICODE_CONTROL || t == G_UNICODE_FORMAT)
      g_string_append_printf (out, "\\u{%04x}", ch);
    else
      g_string_append_len (out, p, g_utf8_next_char (p) - p);
    p = g_utf8_next_char (p);
  }
  g_free (slots[next]);
  slots[next] = g_string_free (out, FALSE);
  const char *result = slots[next];
  next = (next + 1) % G_N_ELEMENTS (slots);
  return result;
}

/* JSON text made safe for a terminal too: DEL and the C1 controls, which
 * json-glib writes raw, as \u escapes (the same JSON value). */
static gchar *
json_for_terminal (const gchar *text)
{
  GString *out = g_string_new (NULL);
  for (const gchar *p = text; *p; p++) {
    guchar ch = (guchar) *p;
    if (ch == 0x7f)
      g_string_append (out, "\\u007f");
    else if (ch == 0xc2 && (guchar) p[1] >= 0x80 && (guchar) p[1] <= 0x9f)
      g_string_append_printf (out, "\\u%04x", (guchar) *++p);
    else
      g_string_append_c (out, *p);
  }
  return g_string_free (out, FALSE);
}

static int
fail (const char *what, int rc)
{
  g_printerr ("datahub-admin: %s: %s (%s)\n", esc (what), dh_strerror (rc),
      esc (dh_error_detail ()));
  return exit_for (rc);
}

static const char *policy_names[] = { "ring", "single", "double" };
static const char *on_full_names[] = { "block", "drop" };
static const char *integrity_names[] = { "none", "checksum", "hmac" };
static const char *slot_states[] = { "FREE", "WRITING", "COMMITTED", "?" };
/* DH_CINFO_* */
static const char *consumer_states[] = { "none", "waiting", "admitted", "evicted" };

/* "/datahub.cam0" -> "cam0" (the channel); other names as they are. */
static const char *
channel_of (const char *shm_name)
{
  return g_str_has_prefix (shm_name, "/datahub.") ? shm_name + 9 : shm_name;
}

static int
open_block (const char *name, gboolean writable, dh_inspector **ins)
{
  int rc = dh_inspect_open (name, writable, ins);
  if (rc != 0)
    return fail (name, rc);
  return EXIT_OK;
}

/* ---- list ---------------------------------------------------------------- */

static void
list_one (const char *shm_name, void *user)
{
  JsonBuilder *jb = user;
  dh_inspector *ins;
  if (dh_inspect_open (shm_name, false, &ins) != 0) {
    if (!jb)
      g_print ("%-28s %-28s (unreadable: %s)\n", esc (channel_of (shm_name)), esc (shm_name),
          esc (dh_error_detail ()));
    return;
  }
  dh_block_info bi;
  dh_inspect_info (ins, &bi);
  double age = (double) (g_get_real_time () * 1000 - (gint64) bi.created_realtime_ns) / 1e9;
  if (jb) {
    /* a name in /dev/shm need not be UTF-8; JSON strings must be */
    gchar *valid = g_utf8_make_valid (shm_name, -1);
    json_builder_begin_object (jb);
    json_builder_set_member_name (jb, "channel");
    json_builder_add_string_value (jb, channel_of (valid));
    json_builder_set_member_name (jb, "shm_name");
    json_builder_add_string_value (jb, valid);
    g_free (valid);
    json_builder_set_member_name (jb, "producer_pid");
    json_builder_add_int_value (jb, bi.producer_pid);
    json_builder_set_member_name (jb, "producer_alive");
    json_builder_add_boolean_value (jb, bi.producer_alive);
    json_builder_set_member_name (jb, "consumers_alive");
    json_builder_add_int_value (jb, bi.consumers_live);
    json_builder_set_member_name (jb, "consumers_dead");
    json_builder_add_int_value (jb, bi.consumers_dead);
    json_builder_set_member_name (jb, "policy");
    json_builder_add_string_value (jb, policy_names[bi.policy]);
    json_builder_set_member_name (jb, "slots");
    json_builder_add_int_value (jb, bi.slot_count);
    json_builder_set_member_name (jb, "slot_size");
    json_builder_add_int_value (jb, (gint64) bi.slot_size);
    json_builder_set_member_name (jb, "total_size");
    json_builder_add_int_value (jb, (gint64) bi.total_size);
    json_builder_set_member_name (jb, "age_s");
    json_builder_add_double_value (jb, age);
    json_builder_end_object (jb);
  } else {
    g_print ("%-28s %-28s %7u %-5s %3u/%-3u %-6s %6u %10" G_GUINT64_FORMAT " %12" G_GUINT64_FORMAT
        " %8.0fs\n", esc (channel_of (shm_name)), esc (shm_name), bi.producer_pid,
        bi.producer_alive ? "alive" : "DEAD", bi.consumers_live, bi.consumers_dead,
        policy_names[bi.policy], bi.slot_count, bi.slot_size, bi.total_size, age);
  }
  dh_inspect_close (ins);
}

static void
print_json_node (JsonNode *root)
{
  JsonGenerator *gen = json_generator_new ();
  json_generator_set_pretty (gen, TRUE);
  json_generator_set_root (gen, root);
  gchar *text = json_generator_to_data (gen, NULL);
  gchar *safe = json_for_terminal (text);
  g_print ("%s\n", safe);
  g_free (safe);
  g_free (text);
  g_object_unref (gen);
}

static void
print_json (JsonBuilder *jb)
{
  JsonNode *root = json_builder_get_root (jb);
  print_json_node (root);
  json_node_unref (root);
}

/* Consumer and exchange objects ("<block>@c<i>", "<block>@x") whose block
 * is gone: what a killed participant left where nobody reclaims it (the
 * channel has no producer, or the consumer was another user's). */
static void
list_leftovers (void)
{
  GDir *dir = g_dir_open ("/dev/shm", 0, NULL);
  if (!dir)
    return;
  GHashTable *seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  const gchar *entry;
  while ((entry = g_dir_read_name (dir))) {
    const gchar *at = strrchr (entry, '@');
    if (!at || (at[1] != 'x' && at[1] != 'c'))
      continue;
    gchar *block = g_strndup (entry, (gsize) (at - entry));
    gchar *path = g_strdup_printf ("/dev/shm/%s", block);
    if (!g_file_test (path, G_FILE_TEST_EXISTS) && !g_hash_table_contains (seen, block)) {
      if (g_hash_table_size (seen) == 0)
        g_print ("\nleft without a block (`datahub-admin cleanup CHANNEL` removes them):\n");
      g_print ("  %s\n", esc (channel_of (path + strlen ("/dev/shm"))));
      g_hash_table_add (seen, block);
      block = NULL;
    }
    g_free (block);
    g_free (path);
  }
  g_hash_table_unref (seen);
  g_dir_close (dir);
}

static int
cmd_list (void)
{
  JsonBuilder *jb = opt_json ? json_builder_new () : NULL;
  if (jb)
    json_builder_begin_array (jb);
  else
    g_print ("%-28s %-28s %7s %-5s %-7s %-6s %6s %10s %12s %9s\n", "CHANNEL", "SHM NAME",
        "PID", "PROD", "CONS", "POLICY", "SLOTS", "SLOT SIZE", "TOTAL", "AGE");
  int n = dh_list_blocks (list_one, jb);
  if (jb) {
    json_builder_end_array (jb);
    print_json (jb);
    g_object_unref (jb);
  } else {
    list_leftovers ();
  }
  return n < 0 ? fail ("list", n) : EXIT_OK;
}

/* ---- channels: the broker's registry --------------------------------------- */

static const gchar *
member_text (JsonObject *o, const gchar *name, const gchar *fallback)
{
  JsonNode *n = json_object_get_member (o, name);
  if (n && JSON_NODE_HOLDS_VALUE (n) && json_node_get_value_type (n) == G_TYPE_STRING)
    return json_node_get_string (n);
  return fallback;
}

static gint64
member_number (JsonObject *o, const gchar *name)
{
  JsonNode *n = json_object_get_member (o, name);
  if (n && JSON_NODE_HOLDS_VALUE (n) && json_node_get_value_type (n) == G_TYPE_INT64)
    return json_node_get_int (n);
  return 0;
}

static void
print_channel (JsonObject *o)
{
  gboolean secured = json_object_get_boolean_member_with_default (o, "secured", FALSE);
  const gchar *schema = member_text (o, "schema", "");
  /* a secured channel's location is only told to consumers with the secret */
  gchar *pid = json_object_has_member (o, "pid")
      ? g_strdup_printf ("%" G_GINT64_FORMAT, member_number (o, "pid")) : g_strdup ("-");
  g_print ("%-24s %-28s %7s %-26s %-7s %9" G_GINT64_FORMAT " %8.1fs %8.1fs\n",
      esc (member_text (o, "channel", "?")), esc (member_text (o, "shm_name", "-")), pid,
      *schema ? esc (schema) : "-", secured ? "yes" : "no", member_number (o, "consumers"),
      (double) member_number (o, "age_ms") / 1000.0,
      (double) member_number (o, "last_seen_ms") / 1000.0);
  g_free (pid);
}

/* One LIST page from after @after; its parsed reply, or NULL (reported). */
static JsonNode *
list_page (dhb_client *c, const gchar *after)
{
  JsonBuilder *b = json_builder_new ();
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "type");
  json_builder_add_string_value (b, "LIST");
  json_builder_set_member_name (b, "after");
  json_builder_add_string_value (b, after);
  json_builder_end_object (b);
  JsonNode *req = json_builder_get_root (b);
  gchar *text = json_to_string (req, FALSE);
  char *reply = NULL;
  dhb_status st = dhb_request (c, text, 2000, &reply);
  g_free (text);
  json_node_unref (req);
  g_object_unref (b);
  if (st != DHB_OK) {
    char why[256];
    dhb_client_last_error (c, why, sizeof why);
    g_printerr ("datahub-admin: channels: %s (%s)\n", dhb_status_name (st), esc (why));
    free (reply);
    return NULL;
  }
  JsonNode *root = json_from_string (reply, NULL);
  free (reply);
  return root;
}

static int
cmd_channels (void)
{
  dhb_client *c;
  const char *endpoint = opt_broker ? opt_broker : dhb_default_endpoint ();
  int rc = dhb_client_new (opt_broker, &c);
  if (rc != 0) {
    char why[512] = "";
    dhb_endpoint_check (endpoint, why, sizeof why);
    g_printerr ("datahub-admin: cannot use broker endpoint '%s': %s\n", esc (endpoint),
        esc (why[0] ? why : g_strerror (-rc)));
    return EXIT_USAGE;
  }
  JsonArray *all = json_array_new ();
  gchar *after = g_strdup ("");
  int ec = EXIT_OK;
  /* LIST answers a page at a time: follow "next" to the end */
  while (after) {
    JsonNode *root = list_page (c, after);
    g_clear_pointer (&after, g_free);
    if (!root) {
      ec = EXIT_FAILED;
      break;
    }
    JsonObject *o = json_node_get_object (root);
    JsonNode *channels = json_object_get_member (o, "channels");
    for (guint i = 0; channels && JSON_NODE_HOLDS_ARRAY (channels)
        && i < json_array_get_length (json_node_get_array (channels)); i++) {
      JsonNode *e = json_array_get_element (json_node_get_array (channels), i);
      if (JSON_NODE_HOLDS_OBJECT (e))
        json_array_add_element (all, json_node_copy (e));
    }
    const gchar *next = member_text (o, "next", NULL);
    after = next ? g_strdup (next) : NULL;
    json_node_unref (root);
  }
  dhb_client_free (c);
  if (ec == EXIT_OK && opt_json) {
    JsonNode *n = json_node_new (JSON_NODE_ARRAY);
    json_node_set_array (n, all);
    print_json_node (n);
    json_node_unref (n);
  } else if (ec == EXIT_OK) {
    g_print ("%-24s %-28s %7s %-26s %-7s %9s %9s %9s\n", "CHANNEL", "SHM NAME", "PID",
        "SCHEMA", "SECRET", "CONSUMERS", "AGE", "SEEN");
    for (guint i = 0; i < json_array_get_length (all); i++)
      print_channel (json_array_get_object_element (all, i));
  }
  json_array_unref (all);
  return ec;
}

/* ---- status -------------------------------------------------------------- */

static void
print_finding (const dh_finding *f, void *user)
{
  (void) user;
  g_print ("  ! %s\n    -> %s\n", esc (f->text), esc (f->advice));
}

static void
print_action (const dh_finding *f, void *user)
{
  (void) user;
  g_print ("  %s\n", esc (f->text));
}

static int
cmd_status (const char *name)
{
  dh_inspector *ins;
  int ec = open_block (name, FALSE, &ins);
  if (ec)
    return ec;
  dh_block_info bi;
  dh_metrics m;
  dh_inspect_info (ins, &bi);
  dh_inspect_metrics (ins, &m);
  g_print ("block %s (channel %s), layout %u.%u, session %016" G_GINT64_MODIFIER "x\n",
      esc (bi.shm_name), esc (channel_of (bi.shm_name)), bi.layout_major, bi.layout_minor,
      (guint64) bi.session_id);
  g_print ("  config: policy %s, on-full %s, %u slots of %" G_GUINT64_FORMAT
      " bytes, ring %u, max consumers %u, zones %u, integrity %s%s%s\n",
      policy_names[bi.policy], on_full_names[bi.on_full], bi.slot_count, bi.slot_size,
      bi.ring_length, bi.max_consumers, bi.zone_count, integrity_names[bi.integrity],
      bi.has_secret ? ", secret" : "", bi.has_schema ? ", schema" : "");
  g_print ("  producer: pid %u %s, state %s, %s, last commit %.1f s ago\n", bi.producer_pid,
      bi.producer_alive ? "alive" : "DEAD",
      bi.producer_state == 2 ? "closed" : bi.producer_state != 1 ? "none"
      : bi.producer_alive ? "running" : "running when it died (the block was never closed)",
      bi.producer_live_source ? "live source" : "not live",
      (double) bi.producer_heartbeat_age_ns / 1e9);
  g_print ("  head: %" G_GUINT64_FORMAT "; written %" G_GUINT64_FORMAT ", read %"
      G_GUINT64_FORMAT ", lost %" G_GUINT64_FORMAT ", checksum failures %" G_GUINT64_FORMAT
      ", writer timeouts %" G_GUINT64_FORMAT ", recovery actions %" G_GUINT64_FORMAT "\n",
      bi.head_seq, m.slots_written, m.slots_read, m.records_lost, m.checksum_failures,
      m.writer_timeout_count, m.recovery_actions);
  if (bi.cutover_seq)
    g_print ("  handover: after record %" G_GUINT64_FORMAT " the stream continues in %s\n",
        bi.cutover_seq - 1, esc (bi.successor));
  for (uint32_t z = 0; z < bi.zone_count; z++)
    g_print ("  zone %u: %" G_GUINT64_FORMAT " of %u bytes, version %" G_GUINT64_FORMAT
        "%s\n", z, bi.zone_length[z], bi.zone_size[z], bi.zone_version[z] / 2,
        bi.zone_version[z] % 2 ? " (being written)" : "");
  g_print ("  consumers (%u alive, %u dead):\n", bi.consumers_live, bi.consumers_dead);
  for (uint32_t i = 0; i < bi.max_consumers; i++) {
    dh_consumer_info ci;
    dh_inspect_consumer (ins, i, &ci);
    if (ci.state == 0)
      continue;
    g_print ("    [%2u] pid %-7u %-5s %-9s %s%s, cursor %" G_GUINT64_FORMAT " (behind %"
        G_GUINT64_FORMAT "), holds %u of %u, read %" G_GUINT64_FORMAT ", lost %" G_GUINT64_FORMAT
        ", seen %.1f s ago\n", i, ci.pid, ci.alive ? "alive" : "DEAD",
        consumer_states[ci.state & 3], ci.leaky ? "leaky" : "waited for",
        ci.gating ? " (the producer waits for it now)" : "", ci.cursor, ci.behind, ci.holds,
        ci.quota, ci.read, ci.lost, (double) ci.heartbeat_age_ns / 1e9);
  }
  dh_inspect_close (ins);
  return EXIT_OK;
}

static int
cmd_diagnose (const char *name)
{
  dh_inspector *ins;
  int ec = open_block (name, FALSE, &ins);
  if (ec)
    return ec;
  dh_block_info bi;
  dh_inspect_info (ins, &bi);
  g_print ("%s: producer pid %u %s; %u slots:\n", esc (bi.shm_name), bi.producer_pid,
      bi.producer_alive ? "alive" : "DEAD", bi.slot_count);
  for (uint32_t i = 0; i < bi.slot_count; i++) {
    dh_slot_info si;
    dh_inspect_slot (ins, i, &si);
    g_print ("  slot %3u: %-9s gen %-8" G_GUINT64_FORMAT " record %-8" G_GUINT64_FORMAT
        " holders %016" G_GINT64_MODIFIER "x", i, slot_states[si.state & 3], si.generation,
        si.commit_seq, (guint64) si.readers);
    if (si.dead_readers)
      g_print (" (dead holders %016" G_GINT64_MODIFIER "x)", (guint64) si.dead_readers);
    if (si.state == 1)
      g_print (" writing for %.1f s", (double) si.writing_age_ns / 1e9);
    g_print ("\n");
  }
  g_print ("findings:\n");
  int n = dh_inspect_validate (ins, print_finding, NULL);
  if (n == 0)
    g_print ("  none: healthy\n");
  dh_inspect_close (ins);
  return n ? EXIT_FINDINGS : EXIT_OK;
}

static int
cmd_validate (const char *name)
{
  dh_inspector *ins;
  int ec = open_block (name, FALSE, &ins);
  if (ec)
    return ec;
  int n = dh_inspect_validate (ins, print_finding, NULL);
  g_print ("%s: %s (%d finding%s)\n", esc (name), n ? "UNHEALTHY" : "healthy", n,
      n == 1 ? "" : "s");
  dh_inspect_close (ins);
  return n ? EXIT_FINDINGS : EXIT_OK;
}

/* ---- recovery ------------------------------------------------------------- */

/* A slot index: decimal digits only (no sign, no spaces), within 32 bits
 * (g_ascii_strtoull alone takes "-1" and anything up to 2^64, which a
 * cast to the library's uint32_t would wrap onto slot 0). */
static gboolean
parse_slot (const char *text, guint32 *slot)
{
  guint64 v = 0;
  GError *err = NULL;
  if (!g_ascii_string_to_unsigned (text, 10, 0, G_MAXUINT32, &v, &err)) {
    g_printerr ("datahub-admin: slot index '%s' %s\n", esc (text),
        err->code == G_NUMBER_PARSER_ERROR_OUT_OF_BOUNDS ? "is out of range (0 to 4294967295)"
        : "is not a number");
    g_error_free (err);
    return FALSE;
  }
  *slot = (guint32) v;
  return TRUE;
}

static int
cmd_reset_slot (const char *name, const char *index)
{
  guint32 slot;
  if (!parse_slot (index, &slot))
    return EXIT_USAGE;
  dh_inspector *ins;
  int ec = open_block (name, TRUE, &ins);
  if (ec)
    return ec;
  dh_block_info bi;
  dh_inspect_info (ins, &bi);
  if (slot >= bi.slot_count) {
    g_printerr ("datahub-admin: %s has %u slots: there is no slot %u\n", esc (name),
        bi.slot_count, slot);
    dh_inspect_close (ins);
    return EXIT_USAGE;
  }
  int rc = dh_recover_reset_slot (ins, slot, opt_force);
  if (rc == 0)
    g_print ("%s: slot %u reset to FREE%s\n", esc (name), slot, opt_force ? " (forced)" : "");
  dh_inspect_close (ins);
  return rc ? fail ("reset-slot", rc) : EXIT_OK;
}

static int
cmd_cleanup (const char *name)
{
  dh_inspector *ins;
  int rc = dh_inspect_open (name, TRUE, &ins);
  if (rc == -ENOENT) {
    /* no block: what its consumers and its exchange object left */
    int n = dh_recover_leftovers (name);
    if (n < 0)
      return fail (name, n);
    g_print ("%s: no block; removed %d object%s it left\n", esc (name), n, n == 1 ? "" : "s");
    return EXIT_OK;
  }
  if (rc != 0)
    return fail (name, rc);
  int n = dh_recover_dead_consumers (ins);
  dh_inspect_close (ins);
  if (n < 0)
    return fail ("cleanup", n);
  g_print ("%s: released %d dead consumer%s\n", esc (name), n, n == 1 ? "" : "s");
  return EXIT_OK;
}

static int
cmd_auto_recover (const char *name)
{
  dh_inspector *ins;
  int ec = open_block (name, opt_apply, &ins);
  if (ec)
    return ec;
  g_print ("%s: %s\n", esc (name), opt_apply ? "repairing" : "dry run (use --apply to repair)");
  int n = dh_recover_auto (ins, opt_apply, print_action, NULL);
  dh_inspect_close (ins);
  if (n < 0)
    return fail ("auto-recover", n);
  g_print ("%d action%s\n", n, n == 1 ? "" : "s");
  return EXIT_OK;
}

/* TRUE if @shm still names the object @held describes. */
static gboolean
still_named (const char *shm, const struct stat *held)
{
  gchar *path = g_strdup_printf ("/dev/shm%s", shm);
  struct stat now;
  gboolean same = lstat (path, &now) == 0 && now.st_dev == held->st_dev
      && now.st_ino == held->st_ino;
  g_free (path);
  return same;
}

/* Whether the block may go: refused while its producer lives, or when it
 * is not a valid block, unless --force.  EXIT_OK or the exit code. */
static int
unlink_allowed (const char *name, const char *shm, gboolean regular)
{
  if (!regular) {
    /* a FIFO or a device: never opened for inspection (it could block) */
    if (opt_force)
      return EXIT_OK;
    g_printerr ("datahub-admin: %s is not a regular file; use --force\n", esc (shm));
    return EXIT_BAD_BLOCK;
  }
  dh_inspector *ins;
  int rc = dh_inspect_open (name, FALSE, &ins);
  if (rc == 0) {
    dh_block_info bi;
    dh_inspect_info (ins, &bi);
    dh_inspect_close (ins);
    if (bi.producer_alive && !opt_force) {
      g_printerr ("datahub-admin: %s: its producer (pid %u) is alive; use --force\n",
          esc (shm), bi.producer_pid);
      return EXIT_REFUSED;
    }
    return EXIT_OK;
  }
  /* not a (valid) datahub block: only with --force */
  if (rc == -ENOENT || rc == -EACCES || !opt_force)
    return fail (name, rc);
  return EXIT_OK;
}

/* The objects of the block's dead consumers go with it (live ones leave
 * by themselves). */
static void
remove_dead_consumers (const char *name, const char *shm)
{
  dh_inspector *ins;
  if (dh_inspect_open (name, FALSE, &ins) != 0)
    return;
  int n = dh_recover_dead_consumers (ins);
  dh_inspect_close (ins);
  if (n > 0)
    g_print ("%s: removed %d dead consumer object%s\n", esc (shm), n, n == 1 ? "" : "s");
}

/* The channel's exchange object (spinlocks) belongs to its first block:
 * nothing relies on it, and the next producer makes a new one. */
static void
remove_exchange (const char *shm)
{
  gchar *x = g_strdup_printf ("%s@x", shm);
  struct stat st;
  gchar *path = g_strdup_printf ("/dev/shm%s", x);
  if (lstat (path, &st) == 0 && S_ISREG (st.st_mode) && shm_unlink (x) == 0)
    g_print ("%s: unlinked\n", esc (x));
  g_free (path);
  g_free (x);
}

/* Removes the name of the object that was checked, and only that one:
 * the object is held open from before the check, and its inode compared
 * with the name's right before the unlink, so a producer that re-created
 * the name meanwhile keeps its block. */
static int
cmd_unlink (const char *name)
{
  char shm[DH_NAME_MAX + 1];
  int rc = dh_shm_name (name, shm, sizeof shm);
  if (rc)
    return fail (name, rc);
  int fd = shm_open (shm, O_RDONLY | O_NONBLOCK | O_CLOEXEC, 0);
  if (fd < 0)
    return fail (shm, -errno);
  struct stat held;
  int ec = fstat (fd, &held) == 0 ? unlink_allowed (name, shm, S_ISREG (held.st_mode))
      : fail (shm, -errno);
  if (ec == EXIT_OK && !still_named (shm, &held)) {
    g_printerr ("datahub-admin: %s was replaced while it was being checked (a new "
        "producer?): not unlinked; check it again\n", esc (shm));
    ec = EXIT_REFUSED;
  }
  if (ec == EXIT_OK && S_ISREG (held.st_mode))
    remove_dead_consumers (name, shm);
  if (ec == EXIT_OK && shm_unlink (shm) != 0)
    ec = fail (shm, -errno);
  close (fd);
  if (ec == EXIT_OK) {
    g_print ("%s: unlinked\n", esc (shm));
    remove_exchange (shm);
  }
  return ec;
}

/* ---- metrics ------------------------------------------------------------- */

#define METRICS(X) \
  X (writer_timeout_count, "counter", "Producer acquires that timed out") \
  X (writer_blocked_total_ns, "counter", "Nanoseconds the producer spent blocked") \
  X (write_lock_contention, "counter", "Slot claims lost to a reader") \
  X (writer_waits, "counter", "Times the producer waited for space") \
  X (reader_not_ready_count, "counter", "Reads that found nothing") \
  X (reader_race_detected, "counter", "Holds that lost the race with the producer") \
  X (reader_validation_failed, "counter", "Descriptors overwritten or invalid") \
  X (reader_peak_count, "gauge", "Most consumers holding one slot") \
  X (slot_acquire_errors, "counter", "Failed acquires") \
  X (slot_commit_errors, "counter", "Failed commits") \
  X (checksum_failures, "counter", "Records that failed their integrity check") \
  X (records_lost, "counter", "Records consumers skipped") \
  X (consumers_reaped, "counter", "Dead consumers released") \
  X (recovery_actions, "counter", "Recovery actions taken") \
  X (heartbeat_count, "counter", "Producer heartbeats") \
  X (hugepages, "gauge", "0 off, 1 advised, 2 fell back") \
  X (slots_written, "counter", "Records written") \
  X (bytes_written, "counter", "Bytes written") \
  X (slots_read, "counter", "Records read, all consumers") \
  X (bytes_read, "counter", "Bytes read, all consumers") \
  X (commits_aborted, "counter", "Slots returned unpublished") \
  X (wakeups_sent, "counter", "FUTEX_WAKE calls by the producer") \
  X (consumer_waits, "counter", "Times consumers slept") \
  X (slots_acquired, "counter", "Slots acquired") \
  X (zone_writes, "counter", "Flexible zone writes") \
  X (spinlock_recoveries, "counter", "Spinlocks taken over from dead owners") \
  X (head_seq, "gauge", "Last published sequence number") \
  X (max_lag, "gauge", "Records not yet taken by the slowest consumer") \
  X (consumers_live, "gauge", "Live consumers") \
  X (consumers_dead, "gauge", "Dead consumers still registered")

/* A Prometheus label value: shown safely (esc), then with backslashes
 * and quotes escaped as the text format wants. */
static gchar *
prometheus_label (const char *value)
{
  GString *out = g_string_new (NULL);
  for (const char *p = esc (value); *p; p++) {
    if (*p == '\\' || *p == '"')
      g_string_append_c (out, '\\');
    g_string_append_c (out, *p);
  }
  return g_string_free (out, FALSE);
}

static int
cmd_metrics (const char *name)
{
  dh_inspector *ins;
  int ec = open_block (name, opt_reset, &ins);
  if (ec)
    return ec;
  dh_metrics m;
  dh_inspect_metrics (ins, &m);
  const char *ch = channel_of (name[0] == '/' ? name : name);
  char shm[DH_NAME_MAX + 1];
  if (dh_shm_name (name, shm, sizeof shm) == 0)
    ch = channel_of (shm);
  if (opt_prometheus) {
    gchar *label = prometheus_label (ch);
#define PROM(field, type, help) \
    g_print ("# HELP datahub_" #field " " help "\n# TYPE datahub_" #field " " type "\n" \
        "datahub_" #field "{channel=\"%s\"} %" G_GUINT64_FORMAT "\n", label, (guint64) m.field);
    METRICS (PROM)
#undef PROM
    g_free (label);
  } else if (opt_json) {
    JsonBuilder *jb = json_builder_new ();
    gchar *valid = g_utf8_make_valid (ch, -1);
    json_builder_begin_object (jb);
    json_builder_set_member_name (jb, "channel");
    json_builder_add_string_value (jb, valid);
    g_free (valid);
    json_builder_set_member_name (jb, "last_error_code");
    json_builder_add_int_value (jb, m.last_error_code);
#define JSONF(field, type, help) \
    json_builder_set_member_name (jb, #field); \
    json_builder_add_int_value (jb, (gint64) m.field);
    METRICS (JSONF)
#undef JSONF
    json_builder_end_object (jb);
    print_json (jb);
    g_object_unref (jb);
  } else {
#define TEXT(field, type, help) g_print ("%-26s %" G_GUINT64_FORMAT "\n", #field, (guint64) m.field);
    METRICS (TEXT)
#undef TEXT
    if (m.last_error_code)
      g_print ("%-26s %s\n", "last_error", dh_strerror (-(int) m.last_error_code));
  }
  int rc = opt_reset ? dh_inspect_reset_metrics (ins) : 0;
  dh_inspect_close (ins);
  return rc ? fail ("reset", rc) : EXIT_OK;
}

/* ---- watch --------------------------------------------------------------- */

static volatile sig_atomic_t stop_watch;

static void
on_sigint (int sig)
{
  (void) sig;
  stop_watch = 1;
}

static int
cmd_watch (const char *name)
{
  dh_inspector *ins;
  int ec = open_block (name, FALSE, &ins);
  if (ec)
    return ec;
  signal (SIGINT, on_sigint);
  dh_metrics prev, m;
  dh_inspect_metrics (ins, &prev);
  gint64 t_prev = g_get_monotonic_time ();
  gboolean tty = isatty (STDOUT_FILENO);
  for (int n = 0; !stop_watch && (opt_count == 0 || n < opt_count); n++) {
    g_usleep ((gulong) opt_interval * 1000);
    dh_inspect_metrics (ins, &m);
    gint64 now = g_get_monotonic_time ();
    double secs = (double) (now - t_prev) / 1e6;
    dh_block_info bi;
    dh_inspect_info (ins, &bi);
    if (tty)
      g_print ("\033[H\033[2J");
    g_print ("%s  producer %s  consumers %u alive / %u dead\n", esc (bi.shm_name),
        bi.producer_alive ? "alive" : "DEAD", bi.consumers_live, bi.consumers_dead);
    g_print ("  write %9.0f rec/s %9.1f MB/s   read %9.0f rec/s   lost %6.0f/s\n",
        (double) (m.slots_written - prev.slots_written) / secs,
        (double) (m.bytes_written - prev.bytes_written) / secs / 1e6,
        (double) (m.slots_read - prev.slots_read) / secs,
        (double) (m.records_lost - prev.records_lost) / secs);
    g_print ("  occupancy %" G_GUINT64_FORMAT "/%u  writer waits %" G_GUINT64_FORMAT
        "  timeouts %" G_GUINT64_FORMAT "  checksum failures %" G_GUINT64_FORMAT "\n",
        m.max_lag, bi.slot_count, m.writer_waits, m.writer_timeout_count, m.checksum_failures);
    prev = m;
    t_prev = now;
  }
  dh_inspect_close (ins);
  return EXIT_OK;
}

static const char usage[] =
    "COMMAND [NAME] [ARGS] - inspect and recover datahub blocks\n\n"
    "Commands (NAME is a channel or a /shm-name):\n"
    "  list                        every datahub block on this machine\n"
    "  channels [--broker EP]      the channels registered at the broker\n"
    "  status NAME (inspect)       header, configuration, metrics, consumers\n"
    "  diagnose NAME               every slot, and findings with advice\n"
    "  validate NAME               invariants; exit 0 healthy, 1 not\n"
    "  reset-slot NAME N [--force] reset one slot to FREE\n"
    "  cleanup NAME                release dead consumers\n"
    "  auto-recover NAME [--apply] repair what is safe (dry run without --apply)\n"
    "  unlink NAME [--force]       remove the block's name\n"
    "  metrics NAME [--json|--prometheus] [--reset]\n"
    "  watch NAME [-i MS] [-n N]   live rates, occupancy, consumers, errors\n\n"
    "Exit codes: 0 ok, 1 findings, 2 usage, 3 no such block, 4 permission denied,\n"
    "5 not a datahub block / unsupported / corrupt, 6 refused (owner alive), 7 other.";

/* Recovery actions are reported by the library through its log hook: show
 * warnings and errors on stderr, so every action leaves a trace. */
static void
log_to_stderr (dh_log_level level, const char *msg, void *user)
{
  (void) user;
  if (level <= DH_LOG_WARNING)
    g_printerr ("datahub-admin: %s\n", msg);
}

int
main (int argc, char **argv)
{
  dh_set_log_handler (log_to_stderr, NULL);
  GOptionContext *ctx = g_option_context_new (usage);
  g_option_context_add_main_entries (ctx, entries, NULL);
  GError *err = NULL;
  gboolean parsed = g_option_context_parse (ctx, &argc, &argv, &err);
  g_option_context_free (ctx);
  if (!parsed) {
    g_printerr ("datahub-admin: %s\n", err->message);
    g_error_free (err);
    return EXIT_USAGE;
  }
  const char *cmd = argc > 1 ? argv[1] : NULL;
  const char *name = argc > 2 ? argv[2] : NULL;
  if (cmd && g_str_equal (cmd, "list"))
    return cmd_list ();
  if (cmd && g_str_equal (cmd, "channels"))
    return cmd_channels ();
  if (!cmd || !name) {
    g_printerr ("usage: datahub-admin %s\n", usage);
    return EXIT_USAGE;
  }
  if (g_str_equal (cmd, "status") || g_str_equal (cmd, "inspect"))
    return cmd_status (name);
  if (g_str_equal (cmd, "diagnose"))
    return cmd_diagnose (name);
  if (g_str_equal (cmd, "validate"))
    return cmd_validate (name);
  if (g_str_equal (cmd, "reset-slot") && argc > 3)
    return cmd_reset_slot (name, argv[3]);
  if (g_str_equal (cmd, "cleanup"))
    return cmd_cleanup (name);
  if (g_str_equal (cmd, "auto-recover"))
    return cmd_auto_recover (name);
  if (g_str_equal (cmd, "unlink"))
    return cmd_unlink (name);
  if (g_str_equal (cmd, "metrics"))
    return cmd_metrics (name);
  if (g_str_equal (cmd, "watch"))
    return cmd_watch (name);
  g_printerr ("datahub-admin: unknown command '%s'\nusage: datahub-admin %s\n", cmd, usage);
  return EXIT_USAGE;
}
