/* datahub-broker: finds a channel's shared memory by name.
 *
 * A request endpoint answers REG/DISC/DEREG/HB/LIST (JSON, see
 * docs/broker.md); an event endpoint announces producer up/down, handover
 * and consumer drops.  One thread, one poll loop: the broker is control
 * plane only, nothing it does is on the data path.
 *
 * Before binding an ipc endpoint the broker checks its directory
 * (dhb_endpoint_check) and takes a lock file next to the socket, so a
 * second broker on the same path refuses to start instead of taking the
 * socket over; at exit it removes the socket only if it is still the one
 * it bound. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>
#include <sodium.h>

#include "datahub/broker.h"
#include "registry.h"
#include "server.h"

#define SWEEP_MS 100
/* request bytes shown in a log line */
#define LOG_REQUEST_MAX 200

static const char *const level_names[] = { "error", "warn", "info", "debug" };
static int log_level = DHB_LOG_INFO;

/* @text with every byte that is not printable ASCII as \xNN: a request
 * or a name can never start a line or move the cursor in a log (a forged
 * "[info]" line).  Backslashes stay (JSON is full of them): a literal
 * "\x0a" in a request reads like an escaped newline, which forges
 * nothing. */
static gchar *
escape_for_log (const gchar *text, gsize len)
{
  GString *s = g_string_sized_new (len + 16);
  for (gsize i = 0; i < len; i++) {
    guchar ch = (guchar) text[i];
    if (ch >= 0x20 && ch < 0x7f)
      g_string_append_c (s, (gchar) ch);
    else
      g_string_append_printf (s, "\\x%02x", ch);
  }
  return g_string_free (s, FALSE);
}

static void
blog (int level, const char *fmt, ...) G_GNUC_PRINTF (2, 3);

static void
blog (int level, const char *fmt, ...)
{
  if (level > log_level)
    return;
  GDateTime *t = g_date_time_new_now_local ();
  gchar *when = g_date_time_format (t, "%H:%M:%S.%f");
  va_list ap;
  va_start (ap, fmt);
  gchar *text = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  gchar *safe = escape_for_log (text, strlen (text));
  /* %f prints microseconds: keep milliseconds */
  fprintf (stderr, "%.12s datahub-broker [%s] %s\n", when, level_names[level], safe);
  g_free (safe);
  g_free (text);
  g_free (when);
  g_date_time_unref (t);
}

static void
server_log (int level, const gchar *text, gpointer user)
{
  (void) user;
  blog (level, "%s", text);
}

static volatile sig_atomic_t stop_requested;

static void
on_signal (int sig)
{
  stop_requested = sig;
}

static gint64
now_ms (void)
{
  return g_get_monotonic_time () / 1000;
}

static gboolean
pid_alive (gint64 pid)
{
  /* EPERM: the process exists but belongs to someone else */
  return kill ((pid_t) pid, 0) == 0 || errno == EPERM;
}

/* The PUB endpoint next to @endpoint: "<path>-events" for ipc, the next
 * port for tcp. */
static gchar *
default_events_endpoint (const char *endpoint)
{
  if (g_str_has_prefix (endpoint, "ipc://"))
    return g_strdup_printf ("%s-events", endpoint);
  const char *colon = strrchr (endpoint, ':');
  if (g_str_has_prefix (endpoint, "tcp://") && colon) {
    gchar *end = NULL;
    guint64 port = g_ascii_strtoull (colon + 1, &end, 10);
    if (end && !*end && port > 0 && port < 65535)
      return g_strdup_printf ("%.*s:%" G_GUINT64_FORMAT, (int) (colon - endpoint), endpoint,
          port + 1);
  }
  return NULL;
}

/* ---- ipc socket files: lock, bind, mode, removal ------------------------ */

/* One ipc endpoint's files: the socket and its lock file. */
typedef struct {
  gchar *path;                 /* NULL: not an ipc path endpoint */
  gchar *lock_path;
  int lock_fd;
  gboolean bound;
  dev_t dev;                   /* the socket we bound */
  ino_t ino;
} IpcFiles;

static gboolean
same_file (const struct stat *a, const struct stat *b)
{
  return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

/* Takes the lock file "<socket>.lock" (flock, held for the broker's
 * life).  Another broker holding it means the endpoint is served: refuse
 * rather than let libzmq unlink and re-bind its socket.  A lock file
 * removed by a broker that stopped meanwhile is opened again. */
static gboolean
ipc_claim (IpcFiles *f, const char *endpoint, gchar **why)
{
  f->lock_fd = -1;
  if (!g_str_has_prefix (endpoint, "ipc://"))
    return TRUE;
  f->path = g_strdup (endpoint + strlen ("ipc://"));
  f->lock_path = g_strdup_printf ("%s.lock", f->path);
  for (int attempt = 0; attempt < 10; attempt++) {
    int fd = open (f->lock_path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
      *why = g_strdup_printf ("cannot open the lock file %s: %s", f->lock_path,
          g_strerror (errno));
      return FALSE;
    }
    if (flock (fd, LOCK_EX | LOCK_NB) != 0) {
      char pid[32] = "";
      ssize_t n = pread (fd, pid, sizeof pid - 1, 0);
      pid[n > 0 ? n : 0] = '\0';
      g_strchomp (pid);
      *why = g_strdup_printf ("another datahub-broker (pid %s) serves %s: not starting a "
          "second one on the same socket", pid[0] ? pid : "?", endpoint);
      close (fd);
      return FALSE;
    }
    struct stat held, named;
    if (fstat (fd, &held) == 0 && lstat (f->lock_path, &named) == 0 && same_file (&held, &named)) {
      gchar *pid = g_strdup_printf ("%d\n", (int) getpid ());
      if (ftruncate (fd, 0) != 0 || pwrite (fd, pid, strlen (pid), 0) < 0)
        blog (DHB_LOG_WARN, "cannot write the pid into %s", f->lock_path);
      g_free (pid);
      f->lock_fd = fd;
      return TRUE;
    }
    close (fd);
  }
  *why = g_strdup_printf ("the lock file %s keeps changing", f->lock_path);
  return FALSE;
}

/* After the bind: remembers which socket file is ours and gives it @mode
 * (-1: keep the 0600 of the bind). */
static gboolean
ipc_bound (IpcFiles *f, int mode, gchar **why)
{
  if (!f->path)
    return TRUE;
  struct stat st;
  if (lstat (f->path, &st) != 0 || !S_ISSOCK (st.st_mode)) {
    *why = g_strdup_printf ("%s is not a socket after binding it", f->path);
    return FALSE;
  }
  f->bound = TRUE;
  f->dev = st.st_dev;
  f->ino = st.st_ino;
  if (mode >= 0 && chmod (f->path, (mode_t) mode) != 0) {
    *why = g_strdup_printf ("cannot set mode %04o on %s: %s", mode, f->path, g_strerror (errno));
    return FALSE;
  }
  return TRUE;
}

/* Removes our socket file, if it is still ours, and the lock file. */
static void
ipc_release (IpcFiles *f)
{
  struct stat st;
  if (f->bound && lstat (f->path, &st) == 0) {
    struct stat ours = { .st_dev = f->dev, .st_ino = f->ino };
    if (same_file (&st, &ours))
      unlink (f->path);
    else
      blog (DHB_LOG_WARN, "%s is no longer the socket this broker bound: left in place",
          f->path);
  }
  if (f->lock_fd >= 0) {
    struct stat held;
    /* unlinked while held: a broker waiting on it sees the change and
     * opens the file again (ipc_claim) */
    if (fstat (f->lock_fd, &held) == 0 && lstat (f->lock_path, &st) == 0
        && same_file (&held, &st))
      unlink (f->lock_path);
    close (f->lock_fd);
  }
  g_free (f->path);
  g_free (f->lock_path);
}

/* ---- serving ---------------------------------------------------------------- */

typedef struct {
  DhbRegistry *reg;
  GPtrArray *events;
  DhbServer *server;
} Broker;

static GByteArray *
handle_request (GPtrArray *frames, guint64 client, gpointer user)
{
  Broker *b = user;
  gboolean delimited = FALSE;
  GBytes *body = NULL;
  gchar *reply = dhb_registry_handle_frames (b->reg, client, frames, now_ms (), b->events,
      &delimited, &body);
  int level = strstr (reply, "\"BAD_REQUEST\"") ? DHB_LOG_WARN : DHB_LOG_DEBUG;
  if (level <= log_level) {
    gsize len = 0;
    const gchar *data = body ? g_bytes_get_data (body, &len) : NULL;
    /* blog escapes what is not printable */
    blog (level, "%.*s%s -> %s", (int) MIN (len, LOG_REQUEST_MAX), data ? data : "",
        len > LOG_REQUEST_MAX ? "..." : "", reply);
  }
  GByteArray *out = g_byte_array_new ();
  if (delimited)
    dhb_zmtp_encode_frame (out, "", 0, TRUE);
  dhb_zmtp_encode_frame (out, reply, strlen (reply), FALSE);
  g_free (reply);
  return out;
}

static void
publish (Broker *b)
{
  for (guint i = 0; i < b->events->len; i++) {
    DhbEvent *e = b->events->pdata[i];
    blog (DHB_LOG_INFO, "event %s", e->json);
    dhb_server_publish (b->server, e->topic, e->json);
  }
  g_ptr_array_set_size (b->events, 0);
}

typedef struct {
  const char *endpoint, *events_endpoint;
  guint heartbeat_ms, expiry_ms, max_channels_per_client;
  int socket_mode;
} Options;

/* Binds both endpoints with sockets created 0600 (umask), then gives them
 * the asked mode. */
static DhbServer *
bind_server (const Options *o, Broker *b, IpcFiles files[2], gchar **why)
{
  DhbServerConfig cfg;
  dhb_server_config_init (&cfg);
  cfg.endpoint = o->endpoint;
  cfg.events_endpoint = o->events_endpoint;
  cfg.handler = handle_request;
  cfg.log = server_log;
  cfg.user = b;
  mode_t old = umask (0177);
  DhbServer *s = dhb_server_new (&cfg, why);
  umask (old);
  if (s && (!ipc_bound (&files[0], o->socket_mode, why)
          || !ipc_bound (&files[1], o->socket_mode, why))) {
    dhb_server_free (s);
    s = NULL;
  }
  return s;
}

/* Checks and locks both endpoints, binds, serves until a signal. */
static int
run (const Options *o)
{
  IpcFiles files[2] = { { .lock_fd = -1 }, { .lock_fd = -1 } };
  const char *endpoints[2] = { o->endpoint, o->events_endpoint };
  gchar *why = NULL;
  int rc = 1;
  for (int i = 0; i < 2; i++) {
    char reason[512];
    if (dhb_endpoint_check (endpoints[i], reason, sizeof reason) != 0) {
      blog (DHB_LOG_ERROR, "refusing %s: %s", endpoints[i], reason);
      goto out;
    }
    if (!ipc_claim (&files[i], endpoints[i], &why))
      goto out;
  }
  DhbRegistryConfig cfg = {
    .heartbeat_ms = o->heartbeat_ms,
    .expiry_ms = o->expiry_ms,
    .events_endpoint = o->events_endpoint,
    .pid_alive = pid_alive,
    .max_channels_per_client = o->max_channels_per_client,
  };
  Broker b = { dhb_registry_new (&cfg), g_ptr_array_new_with_free_func (dhb_event_free), NULL };
  b.server = bind_server (o, &b, files, &why);
  if (b.server) {
    blog (DHB_LOG_INFO, "serving %s, events on %s (heartbeat %u ms, expiry %u ms)",
        o->endpoint, o->events_endpoint, o->heartbeat_ms, o->expiry_ms);
    gint64 next_sweep = now_ms () + SWEEP_MS;
    rc = 0;
    while (!stop_requested) {
      if (!dhb_server_serve (b.server, SWEEP_MS, now_ms ())) {
        blog (DHB_LOG_ERROR, "poll failed: %s", g_strerror (errno));
        rc = 1;
        break;
      }
      if (now_ms () >= next_sweep) {
        dhb_registry_sweep (b.reg, now_ms (), b.events);
        dhb_server_sweep (b.server, now_ms ());
        next_sweep = now_ms () + SWEEP_MS;
      }
      publish (&b);
    }
    if (stop_requested)
      blog (DHB_LOG_INFO, "stopping on %s with %u channels registered",
          strsignal (stop_requested), dhb_registry_channel_count (b.reg));
    dhb_server_free (b.server);
  }
  g_ptr_array_unref (b.events);
  dhb_registry_free (b.reg);
out:
  if (why)
    blog (DHB_LOG_ERROR, "%s", why);
  g_free (why);
  ipc_release (&files[0]);
  ipc_release (&files[1]);
  return rc;
}

static gboolean
parse_mode (const char *text, int *mode)
{
  guint64 v = 0;
  if (!text)
    return TRUE;
  if (!g_ascii_string_to_unsigned (text, 8, 0, 0777, &v, NULL))
    return FALSE;
  *mode = (int) v;
  return TRUE;
}

static int
usage_error (const char *fmt, ...) G_GNUC_PRINTF (1, 2);

static int
usage_error (const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  gchar *text = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  fprintf (stderr, "datahub-broker: %s\n", text);
  g_free (text);
  return 2;
}

/* The command line's strings, freed on every way out. */
typedef struct {
  gchar *endpoint, *events, *level, *socket_mode;
  gint heartbeat_ms, expiry_ms, max_channels;
} Args;

static void
args_clear (Args *a)
{
  g_free (a->endpoint);
  g_free (a->events);
  g_free (a->level);
  g_free (a->socket_mode);
}

static gboolean
parse_args (Args *a, int *argc, char ***argv)
{
  GOptionEntry entries[] = {
    { "endpoint", 'e', 0, G_OPTION_ARG_STRING, &a->endpoint,
      "Requests endpoint (default: the DATAHUB_BROKER variable, else "
      "ipc://$XDG_RUNTIME_DIR/datahub-broker.sock, else "
      "ipc://${TMPDIR:-/tmp}/datahub-UID/broker.sock)", "ENDPOINT" },
    { "events", 0, 0, G_OPTION_ARG_STRING, &a->events,
      "Events (PUB) endpoint (default: ENDPOINT-events for ipc, the next port for tcp)",
      "ENDPOINT" },
    { "heartbeat-ms", 0, 0, G_OPTION_ARG_INT, &a->heartbeat_ms,
      "Heartbeat interval asked of clients (default 1000)", "MS" },
    { "expiry-ms", 0, 0, G_OPTION_ARG_INT, &a->expiry_ms,
      "Registrations expire after this much silence, at least 2 x heartbeat + 100 "
      "(default 5000)", "MS" },
    { "socket-mode", 0, 0, G_OPTION_ARG_STRING, &a->socket_mode,
      "Mode of the ipc socket files, octal (default 0600; 0660 lets the directory's group "
      "connect)", "MODE" },
    { "max-channels-per-client", 0, 0, G_OPTION_ARG_INT, &a->max_channels,
      "Channels one client (process) may register (default 256)", "N" },
    { "log-level", 'l', 0, G_OPTION_ARG_STRING, &a->level,
      "error, warn, info (default) or debug", "LEVEL" },
    { NULL },
  };
  GOptionContext *ctx = g_option_context_new ("- datahub discovery broker");
  g_option_context_add_main_entries (ctx, entries, NULL);
  GError *err = NULL;
  gboolean ok = g_option_context_parse (ctx, argc, argv, &err);
  if (!ok) {
    usage_error ("%s", err->message);
    g_error_free (err);
  }
  g_option_context_free (ctx);
  return ok;
}

/* Checks the arguments into @o; 0, or the exit code (2) after saying why. */
static int
check_args (const Args *a, Options *o)
{
  if (a->level) {
    log_level = -1;
    for (int i = 0; i < (int) G_N_ELEMENTS (level_names); i++)
      if (strcmp (a->level, level_names[i]) == 0)
        log_level = i;
    if (log_level < 0)
      return usage_error ("unknown log level '%s'", a->level);
  }
  gchar *why = NULL;
  if (a->heartbeat_ms < 0 || a->expiry_ms < 0
      || !dhb_registry_check_timing ((guint) a->heartbeat_ms, (guint) a->expiry_ms, &why)) {
    int rc = usage_error ("%s", why ? why : "timings must be positive");
    g_free (why);
    return rc;
  }
  if (a->max_channels < 1)
    return usage_error ("--max-channels-per-client must be at least 1");
  *o = (Options) {
    .heartbeat_ms = (guint) a->heartbeat_ms,
    .expiry_ms = (guint) a->expiry_ms,
    .max_channels_per_client = (guint) a->max_channels,
    .socket_mode = -1,
  };
  if (!parse_mode (a->socket_mode, &o->socket_mode))
    return usage_error ("--socket-mode wants an octal mode up to 0777, not '%s'",
        a->socket_mode);
  return 0;
}

int
main (int argc, char **argv)
{
  Args a = { .heartbeat_ms = 1000, .expiry_ms = 5000,
    .max_channels = DHB_DEFAULT_CHANNELS_PER_CLIENT };
  Options o = { 0 };
  gchar *events = NULL;
  int rc = parse_args (&a, &argc, &argv) ? check_args (&a, &o) : 2;
  if (rc == 0 && sodium_init () < 0) {
    fprintf (stderr, "datahub-broker: libsodium failed to initialise\n");
    rc = 1;
  }
  if (rc == 0) {
    o.endpoint = a.endpoint ? a.endpoint : dhb_default_endpoint ();
    events = a.events ? g_strdup (a.events) : default_events_endpoint (o.endpoint);
    if (!events)
      rc = usage_error ("give --events for endpoint %s", o.endpoint);
  }
  if (rc == 0) {
    o.events_endpoint = events;
    struct sigaction sa = { .sa_handler = on_signal };
    sigemptyset (&sa.sa_mask);
    sigaction (SIGINT, &sa, NULL);
    sigaction (SIGTERM, &sa, NULL);
    signal (SIGPIPE, SIG_IGN);
    rc = run (&o);
  }
  g_free (events);
  args_clear (&a);
  return rc;
}
