/* datahub-admin: list, inspect, diagnose and recover DataBlocks.
 * docs/admin.md documents every command, its output and exit codes. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
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
    case -EACCES: case -EPERM: case -EROFS: return EXIT_DENIED;
    case DH_ENOTDATAHUB: case DH_EVERSION: case DH_ECORRUPT: case DH_ETRUNCATED:
    case DH_ENOTREADY: return EXIT_BAD_BLOCK;
    case DH_EOWNERALIVE: return EXIT_REFUSED;
    default: return EXIT_FAILED;
  }
}

static int
fail (const char *what, int rc)
{
  g_printerr ("datahub-admin: %s: %s (%s)\n", what, dh_strerror (rc), dh_error_detail ());
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
      g_print ("%-28s %-28s (unreadable: %s)\n", channel_of (shm_name), shm_name,
          dh_error_detail ());
    return;
  }
  dh_block_info bi;
  dh_inspect_info (ins, &bi);
  double age = (double) (g_get_real_time () * 1000 - (gint64) bi.created_realtime_ns) / 1e9;
  if (jb) {
    json_builder_begin_object (jb);
    json_builder_set_member_name (jb, "channel");
    json_builder_add_string_value (jb, channel_of (shm_name));
    json_builder_set_member_name (jb, "shm_name");
    json_builder_add_string_value (jb, shm_name);
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
        " %8.0fs\n", channel_of (shm_name), shm_name, bi.producer_pid,
        bi.producer_alive ? "alive" : "DEAD", bi.consumers_live, bi.consumers_dead,
        policy_names[bi.policy], bi.slot_count, bi.slot_size, bi.total_size, age);
  }
  dh_inspect_close (ins);
}

static void
print_json (JsonBuilder *jb)
{
  JsonGenerator *gen = json_generator_new ();
  json_generator_set_pretty (gen, TRUE);
  JsonNode *root = json_builder_get_root (jb);
  json_generator_set_root (gen, root);
  gchar *text = json_generator_to_data (gen, NULL);
  g_print ("%s\n", text);
  g_free (text);
  json_node_unref (root);
  g_object_unref (gen);
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
  }
  return n < 0 ? fail ("list", n) : EXIT_OK;
}

/* ---- channels: the broker's registry --------------------------------------- */

static int
cmd_channels (void)
{
  dhb_client *c;
  int rc = dhb_client_new (opt_broker, &c);
  if (rc != 0) {
    g_printerr ("datahub-admin: cannot use broker endpoint '%s': %s\n",
        opt_broker ? opt_broker : dhb_default_endpoint (), g_strerror (-rc));
    return EXIT_USAGE;
  }
  char *reply = NULL;
  dhb_status st = dhb_request (c, "{\"type\":\"LIST\"}", 2000, &reply);
  if (st != DHB_OK) {
    char why[256];
    dhb_client_last_error (c, why, sizeof why);
    g_printerr ("datahub-admin: channels: %s (%s)\n", dhb_status_name (st), why);
    dhb_client_free (c);
    return EXIT_FAILED;
  }
  dhb_client_free (c);
  JsonNode *root = json_from_string (reply, NULL);
  free (reply);
  if (opt_json) {
    JsonGenerator *gen = json_generator_new ();
    json_generator_set_pretty (gen, TRUE);
    json_generator_set_root (gen, json_object_get_member (json_node_get_object (root),
            "channels"));
    gchar *text = json_generator_to_data (gen, NULL);
    g_print ("%s\n", text);
    g_free (text);
    g_object_unref (gen);
    json_node_unref (root);
    return EXIT_OK;
  }
  g_print ("%-24s %-28s %7s %-26s %-7s %9s %9s %9s\n", "CHANNEL", "SHM NAME", "PID",
      "SCHEMA", "SECRET", "CONSUMERS", "AGE", "SEEN");
  JsonArray *channels = json_object_get_array_member (json_node_get_object (root), "channels");
  for (guint i = 0; channels && i < json_array_get_length (channels); i++) {
    JsonObject *o = json_array_get_object_element (channels, i);
    g_print ("%-24s %-28s %7" G_GINT64_FORMAT " %-26s %-7s %9" G_GINT64_FORMAT
        " %8.1fs %8.1fs\n",
        json_object_get_string_member (o, "channel"),
        json_object_get_string_member (o, "shm_name"),
        json_object_get_int_member (o, "pid"),
        *json_object_get_string_member (o, "schema")
            ? json_object_get_string_member (o, "schema") : "-",
        json_object_get_boolean_member (o, "secured") ? "yes" : "no",
        json_object_get_int_member (o, "consumers"),
        (double) json_object_get_int_member (o, "age_ms") / 1000.0,
        (double) json_object_get_int_member (o, "last_seen_ms") / 1000.0);
  }
  json_node_unref (root);
  return EXIT_OK;
}

/* ---- status -------------------------------------------------------------- */

static void
print_finding (const dh_finding *f, void *user)
{
  (void) user;
  g_print ("  ! %s\n    -> %s\n", f->text, f->advice);
}

static void
print_action (const dh_finding *f, void *user)
{
  (void) user;
  g_print ("  %s\n", f->text);
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
      bi.shm_name, channel_of (bi.shm_name), bi.layout_major, bi.layout_minor,
      (guint64) bi.session_id);
  g_print ("  config: policy %s, on-full %s, %u slots of %" G_GUINT64_FORMAT
      " bytes, ring %u, max consumers %u, zones %u, integrity %s%s%s\n",
      policy_names[bi.policy], on_full_names[bi.on_full], bi.slot_count, bi.slot_size,
      bi.ring_length, bi.max_consumers, bi.zone_count, integrity_names[bi.integrity],
      bi.has_secret ? ", secret" : "", bi.has_schema ? ", schema" : "");
  g_print ("  producer: pid %u %s, state %s, %s, last commit %.1f s ago\n", bi.producer_pid,
      bi.producer_alive ? "alive" : "DEAD",
      bi.producer_state == 2 ? "closed" : bi.producer_state == 1 ? "running" : "none",
      bi.producer_live_source ? "live source" : "not live",
      (double) bi.producer_heartbeat_age_ns / 1e9);
  g_print ("  head: %" G_GUINT64_FORMAT "; written %" G_GUINT64_FORMAT ", read %"
      G_GUINT64_FORMAT ", lost %" G_GUINT64_FORMAT ", checksum failures %" G_GUINT64_FORMAT
      ", writer timeouts %" G_GUINT64_FORMAT ", recovery actions %" G_GUINT64_FORMAT "\n",
      bi.head_seq, m.slots_written, m.slots_read, m.records_lost, m.checksum_failures,
      m.writer_timeout_count, m.recovery_actions);
  if (bi.cutover_seq)
    g_print ("  handover: after record %" G_GUINT64_FORMAT " the stream continues in %s\n",
        bi.cutover_seq - 1, bi.successor);
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
  g_print ("%s: producer pid %u %s; %u slots:\n", bi.shm_name, bi.producer_pid,
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
  g_print ("%s: %s (%d finding%s)\n", name, n ? "UNHEALTHY" : "healthy", n, n == 1 ? "" : "s");
  dh_inspect_close (ins);
  return n ? EXIT_FINDINGS : EXIT_OK;
}

/* ---- recovery ------------------------------------------------------------- */

static int
cmd_reset_slot (const char *name, const char *index)
{
  gchar *end;
  guint64 slot = g_ascii_strtoull (index, &end, 10);
  if (*end || end == index) {
    g_printerr ("datahub-admin: slot index '%s' is not a number\n", index);
    return EXIT_USAGE;
  }
  dh_inspector *ins;
  int ec = open_block (name, TRUE, &ins);
  if (ec)
    return ec;
  int rc = dh_recover_reset_slot (ins, (uint32_t) slot, opt_force);
  if (rc == 0)
    g_print ("%s: slot %" G_GUINT64_FORMAT " reset to FREE%s\n", name, slot,
        opt_force ? " (forced)" : "");
  dh_inspect_close (ins);
  return rc ? fail ("reset-slot", rc) : EXIT_OK;
}

static int
cmd_cleanup (const char *name)
{
  dh_inspector *ins;
  int ec = open_block (name, TRUE, &ins);
  if (ec)
    return ec;
  int n = dh_recover_dead_consumers (ins);
  dh_inspect_close (ins);
  if (n < 0)
    return fail ("cleanup", n);
  g_print ("%s: released %d dead consumer%s\n", name, n, n == 1 ? "" : "s");
  return EXIT_OK;
}

static int
cmd_auto_recover (const char *name)
{
  dh_inspector *ins;
  int ec = open_block (name, opt_apply, &ins);
  if (ec)
    return ec;
  g_print ("%s: %s\n", name, opt_apply ? "repairing" : "dry run (use --apply to repair)");
  int n = dh_recover_auto (ins, opt_apply, print_action, NULL);
  dh_inspect_close (ins);
  if (n < 0)
    return fail ("auto-recover", n);
  g_print ("%d action%s\n", n, n == 1 ? "" : "s");
  return EXIT_OK;
}

static int
cmd_unlink (const char *name)
{
  dh_inspector *ins;
  char shm[DH_NAME_MAX + 1];
  int rc = dh_shm_name (name, shm, sizeof shm);
  if (rc)
    return fail (name, rc);
  rc = dh_inspect_open (name, FALSE, &ins);
  if (rc == 0) {
    dh_block_info bi;
    dh_inspect_info (ins, &bi);
    dh_inspect_close (ins);
    if (bi.producer_alive && !opt_force) {
      g_printerr ("datahub-admin: %s: its producer (pid %u) is alive; use --force\n", shm,
          bi.producer_pid);
      return EXIT_REFUSED;
    }
  } else if (rc == -ENOENT || rc == -EACCES) {
    return fail (name, rc);
  } else if (!opt_force) {
    /* not a (valid) datahub block: only with --force */
    return fail (name, rc);
  }
  if (shm_unlink (shm) != 0)
    return fail (shm, -errno);
  g_print ("%s: unlinked\n", shm);
  return EXIT_OK;
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
#define PROM(field, type, help) \
    g_print ("# HELP datahub_" #field " " help "\n# TYPE datahub_" #field " " type "\n" \
        "datahub_" #field "{channel=\"%s\"} %" G_GUINT64_FORMAT "\n", ch, (guint64) m.field);
    METRICS (PROM)
#undef PROM
  } else if (opt_json) {
    JsonBuilder *jb = json_builder_new ();
    json_builder_begin_object (jb);
    json_builder_set_member_name (jb, "channel");
    json_builder_add_string_value (jb, ch);
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
    g_print ("%s  producer %s  consumers %u alive / %u dead\n", bi.shm_name,
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
  if (!g_option_context_parse (ctx, &argc, &argv, &err)) {
    g_printerr ("datahub-admin: %s\n", err->message);
    return EXIT_USAGE;
  }
  g_option_context_free (ctx);
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
