/* The broker and its client against a hostile local user or a
 * misbehaving client (issue 14), each with a real datahub-broker process.
 *
 *   test_hardening BROKER_EXE SCENARIO
 *
 * Scenarios that need a second Unix user (takeover, socket_mode) create
 * one (datahubtest2) when run as root, as CI does, and skip (77)
 * otherwise.  Figures (RSS, costs, latencies) are printed, not asserted,
 * except a generous RSS bound in the plain build. */
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <glib.h>
#include <json-glib/json-glib.h>
#include <sodium.h>
#include <zmq.h>

#include "broker_test.h"
#include "proof.h"

/* the broker's RSS must stay under this while flooded (plain build; the
 * sanitizers' allocators keep freed memory and are only printed) */
#define RSS_BOUND_KIB (64 * 1024)
/* the registry's size (DHB_MAX_CHANNELS) */
#define REGISTRY_CHANNELS 4096

static bool
sanitized (void)
{
  const char *s = getenv ("DH_TEST_SCALE");
  return s && atoi (s) > 1;
}

/* A line-oriented JSON object parse of @text, or abort. */
static JsonObject *
parse (const char *text, JsonNode **node)
{
  *node = json_from_string (text, NULL);
  CHECK (*node && JSON_NODE_HOLDS_OBJECT (*node));
  return json_node_get_object (*node);
}

static char *
request (dhb_client *c, dhb_status want, const char *fmt, ...) G_GNUC_PRINTF (3, 4);

/* A raw request whose status must be @want; returns the reply (free). */
static char *
request (dhb_client *c, dhb_status want, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  gchar *json = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  char *reply = NULL;
  dhb_status st = dhb_request (c, json, REPLY_MS, &reply);
  if (st != want) {
    fprintf (stderr, "%s -> %s (%s), expected %s\n", json, dhb_status_name (st),
        reply ? reply : "no reply", dhb_status_name (want));
    exit (1);
  }
  g_free (json);
  return reply;
}

/* ---- a second user ------------------------------------------------------- */

/* datahubtest2, created if missing; FALSE unless we are root. */
static bool
second_user (uid_t *uid, gid_t *gid)
{
  if (geteuid () != 0)
    return false;
  struct passwd *pw = getpwnam ("datahubtest2");
  for (int i = 0; i < 5 && !pw; i++) {
    /* tests running in parallel may race to create it: look again */
    if (system ("useradd -M -r -s /usr/sbin/nologin datahubtest2 >/dev/null 2>&1") != 0)
      test_sleep_ms (200);
    pw = getpwnam ("datahubtest2");
  }
  if (!pw)
    return false;
  *uid = pw->pw_uid;
  *gid = pw->pw_gid;
  return true;
}

/* In a forked child: become @uid with primary group @gid and only
 * @groups as supplementary groups, still dying with the test (changing
 * credentials clears the parent-death signal). */
static void
become (uid_t uid, gid_t gid, const gid_t *groups, int n)
{
  CHECK (setgroups ((size_t) n, groups) == 0);
  CHECK (setresgid (gid, gid, gid) == 0);
  CHECK (setresuid (uid, uid, uid) == 0);
  test_die_with_parent ();
}

/* ---- fake brokers: a libzmq ROUTER in a thread ------------------------------ */

typedef gchar *(*fake_answer_fn) (JsonObject *request, gint64 id, gpointer data);

typedef struct {
  char endpoint[300];
  GThread *thread;
  gint stop, requests, ready;
  fake_answer_fn answer;   /* NULL: never answers (a black hole) */
  gpointer data;
  pthread_mutex_t lock;    /* not GMutex: TSan does not see GLib's futex locks */
  GPtrArray *seen;         /* request texts */
} fake_broker;

static gpointer
fake_main (gpointer data)
{
  fake_broker *f = data;
  void *ctx = zmq_ctx_new ();
  void *r = zmq_socket (ctx, ZMQ_ROUTER);
  int zero = 0;
  zmq_setsockopt (r, ZMQ_LINGER, &zero, sizeof zero);
  CHECK (zmq_bind (r, f->endpoint) == 0);
  g_atomic_int_set (&f->ready, 1);
  while (!g_atomic_int_get (&f->stop)) {
    zmq_pollitem_t item = { r, 0, ZMQ_POLLIN, 0 };
    if (zmq_poll (&item, 1, 20) <= 0)
      continue;
    GPtrArray *frames = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
    int more = 1;
    while (more) {
      zmq_msg_t m;
      zmq_msg_init (&m);
      CHECK (zmq_msg_recv (&m, r, 0) >= 0);
      more = zmq_msg_more (&m);
      g_ptr_array_add (frames, g_bytes_new (zmq_msg_data (&m), zmq_msg_size (&m)));
      zmq_msg_close (&m);
    }
    GBytes *body = frames->pdata[frames->len - 1];
    gchar *text = g_strndup (g_bytes_get_data (body, NULL), g_bytes_get_size (body));
    pthread_mutex_lock (&f->lock);
    g_ptr_array_add (f->seen, g_strdup (text));
    pthread_mutex_unlock (&f->lock);
    g_atomic_int_inc (&f->requests);
    JsonNode *node = json_from_string (text, NULL);
    gchar *reply = NULL;
    if (f->answer && node && JSON_NODE_HOLDS_OBJECT (node)) {
      JsonObject *o = json_node_get_object (node);
      reply = f->answer (o, json_object_get_int_member_with_default (o, "id", 0), f->data);
    }
    if (reply) {
      zmq_send (r, g_bytes_get_data (frames->pdata[0], NULL),
          g_bytes_get_size (frames->pdata[0]), ZMQ_SNDMORE);
      zmq_send (r, "", 0, ZMQ_SNDMORE);
      zmq_send (r, reply, strlen (reply), 0);
    }
    g_free (reply);
    if (node)
      json_node_unref (node);
    g_free (text);
    g_ptr_array_unref (frames);
  }
  zmq_close (r);
  zmq_ctx_term (ctx);
  return NULL;
}

static fake_broker *
fake_start (const test_broker *b, const char *name, fake_answer_fn answer, gpointer data)
{
  fake_broker *f = g_new0 (fake_broker, 1);
  snprintf (f->endpoint, sizeof f->endpoint, "ipc://%s/%s.sock", b->dir, name);
  f->answer = answer;
  f->data = data;
  f->seen = g_ptr_array_new_with_free_func (g_free);
  pthread_mutex_init (&f->lock, NULL);
  f->thread = g_thread_new ("fake-broker", fake_main, f);
  while (!g_atomic_int_get (&f->ready))
    test_sleep_ms (1);
  return f;
}

static void
fake_stop (fake_broker *f)
{
  g_atomic_int_set (&f->stop, 1);
  g_thread_join (f->thread);
  unlink (f->endpoint + strlen ("ipc://"));
  g_ptr_array_unref (f->seen);
  pthread_mutex_destroy (&f->lock);
  g_free (f);
}

/* The first request seen by @f that contains @needle (g_free), or NULL. */
static gchar *
fake_seen (fake_broker *f, const char *needle)
{
  gchar *found = NULL;
  pthread_mutex_lock (&f->lock);
  for (guint i = 0; i < f->seen->len && !found; i++)
    if (strstr (f->seen->pdata[i], needle))
      found = g_strdup (f->seen->pdata[i]);
  pthread_mutex_unlock (&f->lock);
  return found;
}

static void
wait_requests (fake_broker *f, int n)
{
  uint64_t give_up = test_now_ns () + (uint64_t) EVENT_MS * 1000000;
  while (g_atomic_int_get (&f->requests) < n)
    CHECK (test_now_ns () < give_up);
}

/* ---- a raw ZMTP peer on a plain Unix socket ------------------------------- */

/* FALSE on an error, or when the peer took nothing for 3 s (it stopped
 * reading from us). */
static bool
write_all (int fd, const void *data, size_t len)
{
  const uint8_t *p = data;
  while (len > 0) {
    ssize_t n = send (fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && errno == EAGAIN) {
      struct pollfd pfd = { fd, POLLOUT, 0 };
      if (poll (&pfd, 1, 3000) == 0)
        return false;
      continue;
    }
    if (n <= 0)
      return false;
    p += n;
    len -= (size_t) n;
  }
  return true;
}

static bool
read_all (int fd, void *data, size_t len)
{
  uint8_t *p = data;
  while (len > 0) {
    ssize_t n = recv (fd, p, len, 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return false;
    p += n;
    len -= (size_t) n;
  }
  return true;
}

static bool
zmtp_frame (int fd, const void *data, size_t len, bool more, bool command)
{
  uint8_t h[9] = { (uint8_t) ((more ? 1 : 0) | (command ? 4 : 0)) };
  size_t hl = 2;
  if (len > 255) {
    h[0] |= 2;
    for (int i = 0; i < 8; i++)
      h[1 + i] = (uint8_t) ((uint64_t) len >> (56 - 8 * i));
    hl = 9;
  } else {
    h[1] = (uint8_t) len;
  }
  return write_all (fd, h, hl) && write_all (fd, data, len);
}

/* Connects to @endpoint as a ZMTP 3.0 peer of @type and completes the
 * handshake (greeting and READY both ways). */
static int
zmtp_open (const char *endpoint, const char *type)
{
  int fd = socket (AF_UNIX, SOCK_STREAM, 0);
  CHECK (fd >= 0);
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  g_strlcpy (addr.sun_path, endpoint + strlen ("ipc://"), sizeof addr.sun_path);
  CHECK (connect (fd, (struct sockaddr *) &addr, sizeof addr) == 0);
  uint8_t greeting[64] = { 0xFF, [9] = 0x7F, [10] = 3, [12] = 'N', 'U', 'L', 'L' };
  CHECK (write_all (fd, greeting, sizeof greeting));
  uint8_t ready[64] = { 5, 'R', 'E', 'A', 'D', 'Y', 11 };
  memcpy (ready + 7, "Socket-Type", 11);
  size_t tl = strlen (type);
  ready[18] = ready[19] = ready[20] = 0;
  ready[21] = (uint8_t) tl;
  memcpy (ready + 22, type, tl);
  CHECK (zmtp_frame (fd, ready, 22 + tl, false, true));
  uint8_t peer[64], h[2], body[256];
  CHECK (read_all (fd, peer, sizeof peer) && peer[0] == 0xFF);
  CHECK (read_all (fd, h, 2) && h[0] == 4 && read_all (fd, body, h[1]));
  return fd;
}

/* TRUE once the broker closed @fd (EOF or an error within @ms), reading
 * (and counting in *@drained, if given) what it had queued. */
static bool
closed_by_peer (int fd, unsigned ms, size_t *drained)
{
  uint64_t give_up = test_now_ns () + (uint64_t) ms * 1000000;
  static char buf[65536];
  struct timeval tv = { 0, 100000 };
  setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  while (test_now_ns () < give_up) {
    ssize_t n = recv (fd, buf, sizeof buf, 0);
    if (n > 0 && drained)
      *drained += (size_t) n;
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
      return true;
  }
  return false;
}

/* ---- 1: nobody else can take the default endpoint ------------------------- */

static char takeover_base[64];
static uid_t other_uid;
static gid_t other_gid;

/* Before anything reads the environment: no XDG_RUNTIME_DIR (a service,
 * cron, a container) and a /tmp of our own (world-writable, sticky). */
static void
takeover_prepare (void)
{
  if (!second_user (&other_uid, &other_gid)) {
    printf ("takeover: needs root to run a second user\n");
    exit (77);
  }
  snprintf (takeover_base, sizeof takeover_base, "/tmp/dhb-takeover-XXXXXX");
  CHECK (mkdtemp (takeover_base) != NULL);
  CHECK (chmod (takeover_base, 01777) == 0);
  setenv ("TMPDIR", takeover_base, 1);
  unsetenv ("XDG_RUNTIME_DIR");
  unsetenv ("DATAHUB_BROKER");
}

static gchar *
evil_list (JsonObject *request, gint64 id, gpointer data)
{
  (void) request;
  (void) data;
  return g_strdup_printf ("{\"status\":\"OK\",\"id\":%" G_GINT64_FORMAT ",\"heartbeat_ms\":1000,"
      "\"expiry_ms\":5000,\"events\":\"\",\"channels\":[{\"channel\":\"evil\",\"shm_name\":"
      "\"/evil\",\"pid\":1,\"schema\":\"\",\"schema_hash\":\"\",\"secured\":false,"
      "\"consumers\":0,\"age_ms\":0,\"last_seen_ms\":0}]}", id);
}

/* In a child, as the other user: makes the directory of @endpoint (mode
 * 0777) and listens there, answering LIST with a channel "evil". */
static pid_t
start_squatting_listener (const char *endpoint, test_shared *sh)
{
  fflush (stdout);
  pid_t pid = fork ();
  CHECK (pid >= 0);
  if (pid == 0) {
    test_die_with_parent ();
    become (other_uid, other_gid, NULL, 0);
    umask (0);
    gchar *dir = g_path_get_dirname (endpoint + strlen ("ipc://"));
    mkdir (dir, 0777);
    void *ctx = zmq_ctx_new ();
    void *r = zmq_socket (ctx, ZMQ_ROUTER);
    if (zmq_bind (r, endpoint) != 0)
      _exit (3);
    sh->values[0] = 1;
    for (;;) {
      zmq_msg_t id, delim, body;
      zmq_msg_init (&id);
      zmq_msg_init (&delim);
      zmq_msg_init (&body);
      zmq_msg_recv (&id, r, 0);
      zmq_msg_recv (&delim, r, 0);
      zmq_msg_recv (&body, r, 0);
      gchar *text = g_strndup (zmq_msg_data (&body), zmq_msg_size (&body));
      JsonNode *n = json_from_string (text, NULL);
      gchar *reply = evil_list (NULL, n ? json_object_get_int_member_with_default (
              json_node_get_object (n), "id", 0) : 0, NULL);
      zmq_msg_send (&id, r, ZMQ_SNDMORE);
      zmq_msg_send (&delim, r, ZMQ_SNDMORE);
      zmq_send (r, reply, strlen (reply), 0);
      g_free (reply);
      g_free (text);
      if (n)
        json_node_unref (n);
      zmq_msg_close (&body);
    }
  }
  uint64_t give_up = test_now_ns () + UINT64_C (15000000000);
  while (!sh->values[0])
    CHECK (test_now_ns () < give_up);
  return pid;
}

/* Runs a broker on the default endpoint; its exit code, or -1 once it
 * answers (then it is left running in *@running). */
static int
run_default_broker (const char *log, pid_t *running)
{
  fflush (stdout);
  pid_t pid = fork ();
  CHECK (pid >= 0);
  if (pid == 0) {
    test_die_with_parent ();
    int fd = open (log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2 (fd, 2);
    execl (broker_exe, broker_exe, "--log-level", "info", (char *) NULL);
    _exit (127);
  }
  uint64_t give_up = test_now_ns () + UINT64_C (15000000000);
  for (;;) {
    int status;
    if (waitpid (pid, &status, WNOHANG) == pid)
      return WIFEXITED (status) ? WEXITSTATUS (status) : 128 + WTERMSIG (status);
    dhb_client *c;
    if (dhb_client_new (NULL, &c) == 0) {
      dhb_status st = dhb_request (c, "{\"type\":\"LIST\"}", 100, NULL);
      dhb_client_free (c);
      if (st == DHB_OK) {
        *running = pid;
        return -1;
      }
    }
    CHECK (test_now_ns () < give_up);
    test_sleep_ms (20);
  }
}

static bool
file_contains (const char *path, const char *needle)
{
  gchar *text = NULL;
  bool found = g_file_get_contents (path, &text, NULL, NULL) && strstr (text, needle);
  g_free (text);
  return found;
}

static gchar *
command_output (const char *cmd, int *exit_code)
{
  FILE *f = popen (cmd, "r");
  CHECK (f != NULL);
  GString *out = g_string_new (NULL);
  char buf[4096];
  size_t n;
  while ((n = fread (buf, 1, sizeof buf, f)) > 0)
    g_string_append_len (out, buf, (gssize) n);
  int status = pclose (f);
  *exit_code = WIFEXITED (status) ? WEXITSTATUS (status) : -1;
  return g_string_free (out, FALSE);
}

/* The victim, first: another user made the directory of our default
 * endpoint and listens in it.  Nothing of ours may talk to it. */
static void
takeover_attacker_first (const char *ep, const char *log)
{
  test_shared *sh = test_shared_new (1);
  pid_t squatter = start_squatting_listener (ep, sh);
  pid_t running = 0;
  int rc = run_default_broker (log, &running);
  CHECK (rc == 1);
  gchar *owner = g_strdup_printf ("belongs to uid %u", (unsigned) other_uid);
  if (!file_contains (log, owner)) {
    gchar *text = NULL;
    g_file_get_contents (log, &text, NULL, NULL);
    fprintf (stderr, "the broker's refusal does not name the owner:\n%s\n", text);
    exit (1);
  }
  /* a client refuses to connect there: it never sees the squatter */
  dhb_client *c = NULL;
  int crc = dhb_client_new (NULL, &c);
  if (crc == 0) {
    char *reply = NULL;
    dhb_status st = dhb_request (c, "{\"type\":\"LIST\"}", 2000, &reply);
    fprintf (stderr, "a client connected to the squatter's endpoint: %s %s\n",
        dhb_status_name (st), reply ? reply : "");
    exit (1);
  }
  CHECK (crc == -EPERM);
  char why[512];
  CHECK (dhb_endpoint_check (ep, why, sizeof why) == -EPERM && strstr (why, owner));
  const char *admin = getenv ("DATAHUB_ADMIN_EXE");
  CHECK (admin != NULL);
  gchar *cmd = g_strdup_printf ("%s channels 2>&1", admin);
  int code;
  gchar *out = command_output (cmd, &code);
  CHECK (code != 0 && strstr (out, owner) && !strstr (out, "evil"));
  printf ("takeover: the other user's directory is refused by the broker (\"%s\"), the "
      "client and datahub-admin\n", why);
  g_free (out);
  g_free (cmd);
  g_free (owner);
  kill (squatter, SIGKILL);
  test_wait (squatter);
}

/* As the other user, in a child: every way to take or reach the broker's
 * socket in our 0700 directory must fail.  Returns how many succeeded. */
static int
attack_private_dir (const char *ep)
{
  pid_t pid = fork ();
  CHECK (pid >= 0);
  if (pid == 0) {
    test_die_with_parent ();
    become (other_uid, other_gid, NULL, 0);
    const char *path = ep + strlen ("ipc://");
    gchar *dir = g_path_get_dirname (path);
    gchar *aside = g_strdup_printf ("%s.moved", dir);
    int won = 0;
    won += unlink (path) == 0;
    won += rename (dir, aside) == 0;    /* the sticky bit of its parent */
    won += rmdir (dir) == 0;
    int fd = socket (AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    g_strlcpy (addr.sun_path, path, sizeof addr.sun_path);
    won += connect (fd, (struct sockaddr *) &addr, sizeof addr) == 0;
    _exit (won);
  }
  return test_wait (pid);
}

/* The victim first: the broker makes its 0700 directory; the other user
 * can neither replace nor reach the socket. */
static void
takeover_victim_first (const char *ep, const char *log)
{
  pid_t broker = 0;
  CHECK (run_default_broker (log, &broker) == -1);
  dhb_client *c;
  CHECK_OK (dhb_client_new (NULL, &c));
  char *reply = NULL;
  uint64_t give_up = test_now_ns () + UINT64_C (15000000000);
  while (dhb_request (c, "{\"type\":\"LIST\"}", 500, &reply) != DHB_OK)
    CHECK (test_now_ns () < give_up);
  CHECK (!strstr (reply, "evil"));
  free (reply);
  dhb_client_free (c); /* no ZeroMQ threads across the fork below */
  gchar *dir = g_path_get_dirname (ep + strlen ("ipc://"));
  struct stat st;
  CHECK (lstat (dir, &st) == 0 && S_ISDIR (st.st_mode) && st.st_uid == geteuid ()
      && (st.st_mode & 0777) == 0700);
  CHECK (attack_private_dir (ep) == 0);
  CHECK_OK (dhb_client_new (NULL, &c));
  CHECK_ST (dhb_request (c, "{\"type\":\"LIST\"}", REPLY_MS, NULL), DHB_OK);
  dhb_client_free (c);
  kill (broker, SIGTERM);
  CHECK (test_wait (broker) == 0);
  /* a directory of ours that others can read is refused too */
  CHECK (chmod (dir, 0755) == 0);
  char why[512];
  CHECK (dhb_client_new (NULL, &c) == -EPERM);
  CHECK (dhb_endpoint_check (ep, why, sizeof why) == -EPERM && strstr (why, "mode 0755"));
  printf ("takeover: our 0700 directory kept the other user out (socket, rename, connect); "
      "mode 0755 refused: \"%s\"\n", why);
  g_free (dir);
}

static void
remove_tree (const char *path)
{
  gchar *cmd = g_strdup_printf ("rm -rf '%s'", path);
  CHECK (system (cmd) == 0);
  g_free (cmd);
}

static void
scenario_takeover (test_broker *b)
{
  (void) b;
  const char *ep = dhb_default_endpoint ();
  gchar *expected = g_strdup_printf ("ipc://%s/datahub-%u/broker.sock", takeover_base,
      (unsigned) geteuid ());
  CHECK (strcmp (ep, expected) == 0);
  gchar *log = g_strdup_printf ("%s/victim.log", b->dir);
  takeover_attacker_first (ep, log);
  gchar *dir = g_path_get_dirname (ep + strlen ("ipc://"));
  remove_tree (dir);
  takeover_victim_first (ep, log);
  remove_tree (takeover_base);
  unlink (log);
  g_free (dir);
  g_free (log);
  g_free (expected);
}

/* ---- 2: a lost registration is reported, with who holds the channel -------- */

typedef struct {
  test_shared *sh;   /* [0] events, [1] last status, [2] holder pid */
} watch_sink;

static void
on_registration (const dhb_registration_event *ev, void *data)
{
  test_shared *sh = data;
  sh->values[1] = (uint64_t) ev->status;
  sh->values[2] = (uint64_t) ev->holder_pid;
  sh->values[0]++;
}

static bool
wait_value (test_shared *sh, int i, uint64_t want, unsigned ms)
{
  uint64_t give_up = test_now_ns () + (uint64_t) ms * 1000000;
  while (sh->values[i] != want && test_now_ns () < give_up)
    test_sleep_ms (5);
  return sh->values[i] == want;
}

/* A producer process with a keep-alive that reports what becomes of its
 * registration in @sh; runs until killed. */
static pid_t
watched_producer (const test_broker *b, const char *channel, const char *shm,
    test_shared *sh, bool expect_registered)
{
  fflush (stdout);
  pid_t pid = fork ();
  CHECK (pid >= 0);
  if (pid == 0) {
    test_die_with_parent ();
    dhb_client *c = client (b);
    dhb_registration r = { .channel = channel, .shm_name = shm };
    dhb_status st = dhb_register (c, &r, expect_registered ? REPLY_MS : 300);
    CHECK (st == (expect_registered ? DHB_OK : DHB_TIMEOUT));
    dhb_client_watch_registration (c, on_registration, (void *) sh);
    CHECK_OK (dhb_client_keep_alive (c, &r, NULL));
    sh->values[3]++;
    for (;;)
      pause ();
  }
  return pid;
}

static void
scenario_squatter (test_broker *b)
{
  const char *channel = test_channel ("squat");
  test_shared *sh = test_shared_new (1);
  pid_t producer = watched_producer (b, channel, "/datahub.real", sh, true);
  CHECK (wait_value (sh, 3, 1, EVENT_MS));
  /* the producer is frozen while the broker restarts, so the squatter
   * polling the new broker surely registers first */
  CHECK (kill (producer, SIGSTOP) == 0);
  broker_kill (b);
  broker_start (b);
  dhb_client *squatter = client (b);
  CHECK_ST (reg (squatter, channel, "/datahub.squat", "", NULL), DHB_OK);
  CHECK (kill (producer, SIGCONT) == 0);
  /* the real producer hears it lost the channel, and to whom */
  CHECK (wait_value (sh, 0, 1, EVENT_MS));
  CHECK (sh->values[1] == DHB_CONFLICT && sh->values[2] == (uint64_t) getpid ());
  /* the squatter leaves: the producer gets its channel back, and says so */
  CHECK_ST (dhb_deregister (squatter, channel, 0, REPLY_MS), DHB_OK);
  CHECK (wait_value (sh, 0, 2, EVENT_MS));
  CHECK (sh->values[1] == DHB_OK);
  dhb_discovery d;
  CHECK_ST (disc_once (squatter, channel, NULL, NULL, &d), DHB_OK);
  CHECK (d.pid == producer && strcmp (d.shm_name, "/datahub.real") == 0);
  kill (producer, SIGKILL);
  test_wait (producer);
  dhb_client_free (squatter);

  /* two producers start while the broker is down: one gets the channel,
   * the other one is told who has it */
  const char *both = test_channel ("both");
  broker_kill (b);
  test_shared *s1 = test_shared_new (1), *s2 = test_shared_new (1);
  pid_t p1 = watched_producer (b, both, "/datahub.one", s1, false);
  pid_t p2 = watched_producer (b, both, "/datahub.two", s2, false);
  CHECK (wait_value (s1, 3, 1, EVENT_MS) && wait_value (s2, 3, 1, EVENT_MS));
  broker_start (b);
  uint64_t give_up = test_now_ns () + (uint64_t) EVENT_MS * 1000000;
  while (s1->values[0] + s2->values[0] == 0)
    CHECK (test_now_ns () < give_up);
  test_shared *loser = s1->values[0] ? s1 : s2;
  pid_t winner = loser == s1 ? p2 : p1;
  CHECK (loser->values[1] == DHB_CONFLICT && loser->values[2] == (uint64_t) winner);
  dhb_client *c = client (b);
  CHECK_ST (disc_once (c, both, NULL, NULL, &d), DHB_OK);
  CHECK (d.pid == winner);
  test_sleep_ms (3 * HEARTBEAT_MS);
  CHECK ((loser == s1 ? s2 : s1)->values[0] == 0); /* the winner was never told anything */
  dhb_client_free (c);
  kill (p1, SIGKILL);
  kill (p2, SIGKILL);
  test_wait (p1);
  test_wait (p2);
  printf ("squatter: the producer was told it lost its channel to pid %d after the broker "
      "restart, and when it got it back; of two producers started with the broker down, "
      "the loser was told the winner's pid\n", (int) getpid ());
}

/* ---- 3: no lock-out without the secret ------------------------------------ */

static guint
listed_consumers (dhb_client *c, const char *channel)
{
  char *reply = request (c, DHB_OK, "{\"type\":\"LIST\"}");
  JsonNode *n;
  JsonArray *a = json_object_get_array_member (parse (reply, &n), "channels");
  gint64 found = -1;
  for (guint i = 0; i < json_array_get_length (a); i++) {
    JsonObject *o = json_array_get_object_element (a, i);
    if (strcmp (json_object_get_string_member (o, "channel"), channel) == 0)
      found = json_object_get_int_member (o, "consumers");
  }
  json_node_unref (n);
  free (reply);
  CHECK (found >= 0);
  return (guint) found;
}

static void
scenario_consumer_flood (test_broker *b)
{
  const char *channel = test_channel ("lockout");
  uint8_t secret[DH_SECRET_SIZE];
  memset (secret, 0x42, sizeof secret);
  dhb_client *p = client (b), *attacker = client (b), *consumer = client (b);
  dhb_registration r = { .channel = channel, .shm_name = "/datahub.lockout", .secret = secret };
  CHECK_ST (dhb_register (p, &r, REPLY_MS), DHB_OK);
  CHECK_OK (dhb_client_keep_alive (p, &r, NULL));
  const unsigned flood = (unsigned) test_scaled (2000);
  for (unsigned i = 0; i < flood; i++)
    free (request (attacker, DHB_NOT_FOUND, "{\"type\":\"HB\",\"channel\":\"%s\","
            "\"client_id\":\"flood-%u\",\"role\":\"consumer\"}", channel, i));
  for (unsigned i = 0; i < flood; i++)
    free (request (attacker, DHB_AUTH_FAILED, "{\"type\":\"DISC\",\"channel\":\"%s\","
            "\"client_id\":\"flood-d-%u\"}", channel, i));
  CHECK (listed_consumers (p, channel) == 0);
  /* the real consumer, with the secret, is let in and counted */
  dhb_discovery d;
  CHECK_ST (disc_once (consumer, channel, secret, NULL, &d), DHB_OK);
  CHECK (listed_consumers (p, channel) == 1);
  CHECK_ST (dhb_heartbeat (consumer, channel, 1, REPLY_MS), DHB_OK);

  /* an open channel: a flood of discoveries is only not counted past the
   * table's size; nobody is refused */
  char plain[160];
  snprintf (plain, sizeof plain, "%s-open", channel);
  dhb_client *p2 = client (b);
  dhb_registration r2 = { .channel = plain, .shm_name = "/datahub.open" };
  CHECK_ST (dhb_register (p2, &r2, REPLY_MS), DHB_OK);
  CHECK_OK (dhb_client_keep_alive (p2, &r2, NULL));
  unsigned uncounted = 0;
  for (unsigned i = 0; i < 1100; i++) {
    char *reply = request (attacker, DHB_OK, "{\"type\":\"DISC\",\"channel\":\"%s\","
        "\"client_id\":\"open-%u\"}", plain, i);
    uncounted += strstr (reply, "\"counted\":false") != NULL;
    free (reply);
  }
  CHECK (uncounted >= 1100 - 1024);
  CHECK_ST (disc_once (consumer, plain, NULL, NULL, &d), DHB_OK);
  dhb_client_free (p2);
  dhb_client_free (p);
  dhb_client_free (attacker);
  dhb_client_free (consumer);
  printf ("consumer_flood: %u consumer heartbeats and %u unauthenticated discoveries created "
      "no entry; the consumer with the secret got in; on an open channel 1100 discoveries "
      "(%u not counted) locked nobody out\n", flood, flood, uncounted);
}

/* ---- 4: bounded memory ------------------------------------------------------ */

typedef struct {
  pid_t broker;
  long peak_kib;
} rss_watch;

static void
rss_sample (rss_watch *w)
{
  long kib = process_rss_kib (w->broker);
  if (kib > w->peak_kib)
    w->peak_kib = kib;
  if (!sanitized () && kib > RSS_BOUND_KIB) {
    fprintf (stderr, "broker RSS %ld KiB, over the %d KiB bound\n", kib, RSS_BOUND_KIB);
    exit (1);
  }
}

/* Endless MORE frames of 64 KiB from @conns connections in turn: each must
 * be dropped after a few frames.  Returns the most bytes one sent. */
static size_t
endless_frames (const char *endpoint, const char *type, int conns, rss_watch *w)
{
  static uint8_t chunk[64 * 1024];
  const size_t give_up = 64u << 20;
  size_t most = 0;
  for (int k = 0; k < conns; k++) {
    int fd = zmtp_open (endpoint, type);
    size_t sent = 0;
    if (strcmp (type, "DEALER") == 0)
      CHECK (zmtp_frame (fd, "", 0, true, false));
    while (sent < give_up && zmtp_frame (fd, chunk, sizeof chunk, true, false)) {
      sent += sizeof chunk;
      if (sent % (1u << 20) == 0)
        rss_sample (w);
    }
    CHECK (sent < give_up); /* dropped */
    most = MAX (most, sent);
    close (fd);
  }
  rss_sample (w);
  return most;
}

/* LIST requests that are not read, on one connection: the broker drops
 * the client once its queue is full (and closes it once what was queued
 * has been read).  Returns how many were sent; *@drained: the bytes of
 * replies there were to read then. */
static unsigned
unread_lists (const test_broker *b, unsigned count, rss_watch *w, size_t *drained)
{
  int fd = zmtp_open (b->endpoint, "DEALER");
  const char list[] = "{\"type\":\"LIST\"}";
  unsigned sent = 0;
  while (sent < count && zmtp_frame (fd, "", 0, true, false)
      && zmtp_frame (fd, list, sizeof list - 1, false, false)) {
    if (++sent % 50 == 0) {
      rss_sample (w);
      test_sleep_ms (1);
    }
  }
  rss_sample (w);
  *drained = 0;
  CHECK (closed_by_peer (fd, 15000, drained));
  close (fd);
  return sent;
}

/* Registers channels "<prefix>-<i>" for i in [from, to) with @schema. */
static void
register_many (dhb_client *c, const char *prefix, unsigned from, unsigned to,
    const char *schema)
{
  for (unsigned i = from; i < to; i++) {
    char channel[200], shm[220];
    snprintf (channel, sizeof channel, "%s-%04u", prefix, i);
    snprintf (shm, sizeof shm, "/datahub.%s", channel);
    CHECK_ST (reg (c, channel, shm, schema, NULL), DHB_OK);
  }
}

/* Milliseconds per LIST page, and for a walk through all pages. */
static void
list_cost (dhb_client *c, double *page_ms, double *walk_ms, unsigned *pages)
{
  const int rounds = 20;
  uint64_t t0 = test_now_ns ();
  for (int i = 0; i < rounds; i++)
    free (request (c, DHB_OK, "{\"type\":\"LIST\"}"));
  *page_ms = (double) (test_now_ns () - t0) / 1e6 / rounds;
  t0 = test_now_ns ();
  *pages = 0;
  gchar *after = g_strdup ("");
  for (;;) {
    char *reply = request (c, DHB_OK, "{\"type\":\"LIST\",\"after\":\"%s\"}", after);
    CHECK (strlen (reply) < 48 * 1024); /* a page is bounded */
    (*pages)++;
    JsonNode *n;
    JsonObject *o = parse (reply, &n);
    const char *next = json_object_get_string_member_with_default (o, "next", NULL);
    g_free (after);
    after = g_strdup (next);
    json_node_unref (n);
    free (reply);
    if (!after)
      break;
  }
  *walk_ms = (double) (test_now_ns () - t0) / 1e6;
}

static void
scenario_flood (test_broker *b)
{
  rss_watch w = { b->pid, 0 };
  rss_sample (&w);
  long start_kib = w.peak_kib;
  char events[300];
  snprintf (events, sizeof events, "%s-events", b->endpoint);
  size_t req_most = endless_frames (b->endpoint, "DEALER", 20, &w);
  size_t ev_most = endless_frames (events, "SUB", 20, &w);
  /* one frame announcing a terabyte: dropped on its header */
  int fd = zmtp_open (b->endpoint, "DEALER");
  uint8_t huge[9] = { 0x03, 0, 0, 1, 0, 0, 0, 0, 0 };
  write_all (fd, huge, sizeof huge);
  CHECK (closed_by_peer (fd, 15000, NULL));
  close (fd);
  long after_frames_kib = process_rss_kib (b->pid);

  /* 300 channels with 3 KiB schemas, then LISTs nobody reads */
  dhb_client *c = client (b);
  char *schema = g_malloc (3073);
  memset (schema, 's', 3072);
  schema[3072] = '\0';
  const char *prefix = test_channel ("flood");
  register_many (c, prefix, 0, 300, schema);
  size_t drained = 0;
  unsigned unread = unread_lists (b, 5000, &w, &drained);
  CHECK (drained < (size_t) unread * 32 * 1024); /* it stopped answering */
  CHECK_ST (dhb_request (c, "{\"type\":\"LIST\"}", REPLY_MS, NULL), DHB_OK); /* still serving */
  double page300, walk300;
  unsigned pages300;
  list_cost (c, &page300, &walk300, &pages300);

  /* the whole registry: 4096 channels, then it is full */
  register_many (c, prefix, 300, REGISTRY_CHANNELS, schema);
  double page4096, walk4096;
  unsigned pages4096;
  list_cost (c, &page4096, &walk4096, &pages4096);
  char *reply = request (c, DHB_BAD_REQUEST, "{\"type\":\"REG\",\"channel\":\"%s-full\","
      "\"shm_name\":\"/full\",\"client_id\":\"x-1\",\"pid\":%d}", prefix, (int) getpid ());
  CHECK (strstr (reply, "registry is full"));
  free (reply);
  rss_sample (&w);
  dhb_client_free (c);
  g_free (schema);
  printf ("flood: broker RSS %ld KiB at start, peak %ld KiB (bound %d KiB%s), %ld KiB after "
      "the frame floods, %ld KiB with 4096 channels; endless MORE frames dropped after %zu "
      "KiB (requests) and %zu KiB (events), 20 connections each; %u LISTs of 300 channels "
      "sent unread: the broker dropped the client with %zu KiB of replies queued\n",
      start_kib, w.peak_kib, RSS_BOUND_KIB, sanitized () ? ", not asserted under sanitizers"
      : "", after_frames_kib, process_rss_kib (b->pid), req_most >> 10, ev_most >> 10, unread,
      drained >> 10);
  printf ("flood: LIST cost with 3 KiB schemas: %.2f ms a page, %.1f ms for all %u pages of "
      "300 channels; %.2f ms a page, %.1f ms for all %u pages of 4096\n", page300, walk300,
      pages300, page4096, walk4096, pages4096);
}

/* One client may only register so many channels; another still can. */
static void
scenario_quota (test_broker *b)
{
  test_shared *sh = test_shared_new (2);
  const char *prefix = test_channel ("quota");
  pid_t other = fork ();
  CHECK (other >= 0);
  if (other == 0) {
    test_die_with_parent ();
    test_barrier (sh);
    dhb_client *c = client (b);
    char channel[200];
    snprintf (channel, sizeof channel, "%s-other", prefix);
    CHECK_ST (reg (c, channel, "/datahub.other", "", NULL), DHB_OK);
    dhb_client_free (c);
    _exit (0);
  }
  dhb_client *c = client (b);
  register_many (c, prefix, 0, 256, "");
  char *reply = request (c, DHB_BAD_REQUEST, "{\"type\":\"REG\",\"channel\":\"%s-more\","
      "\"shm_name\":\"/more\",\"client_id\":\"%s\",\"pid\":%d}", prefix, dhb_client_id (c),
      (int) getpid ());
  CHECK (strstr (reply, "already registered 256 channels"));
  free (reply);
  /* a second connection of the same process counts as the same client */
  dhb_client *c2 = client (b);
  char channel[200];
  snprintf (channel, sizeof channel, "%s-second", prefix);
  CHECK_ST (reg (c2, channel, "/datahub.second", "", NULL), DHB_BAD_REQUEST);
  test_barrier (sh);
  CHECK (test_wait (other) == 0);
  /* a DEREG gives the quota back */
  snprintf (channel, sizeof channel, "%s-0000", prefix);
  CHECK_ST (dhb_deregister (c, channel, 0, REPLY_MS), DHB_OK);
  snprintf (channel, sizeof channel, "%s-again", prefix);
  CHECK_ST (reg (c, channel, "/datahub.again", "", NULL), DHB_OK);
  dhb_client_free (c);
  dhb_client_free (c2);
  printf ("quota: 256 channels from one process, the 257th refused (also on its second "
      "connection); another process registered; a DEREG freed one\n");
}

/* ---- 5: the client never blocks its callers on the network ------------------ */

static gchar *
long_heartbeat (JsonObject *request, gint64 id, gpointer data)
{
  (void) request;
  gint *answering = data;
  if (!g_atomic_int_get (answering))
    return NULL;
  return g_strdup_printf ("{\"status\":\"OK\",\"id\":%" G_GINT64_FORMAT ",\"channel\":\"x\","
      "\"heartbeat_ms\":3600000,\"expiry_ms\":7200000,\"events\":\"\"}", id);
}

static gint watchdog_armed;

static gpointer
watchdog (gpointer data)
{
  const char *what = data;
  for (int i = 0; i < 200 && g_atomic_int_get (&watchdog_armed); i++)
    test_sleep_ms (100);
  if (g_atomic_int_get (&watchdog_armed)) {
    fprintf (stderr, "%s did not return within 20 s\n", what);
    _exit (1);
  }
  return NULL;
}

static int
compare_doubles (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

static void
scenario_client_nonblocking (test_broker *b)
{
  const char *channel = test_channel ("nonblock");
  /* a broker that takes requests and never answers */
  fake_broker *hole = fake_start (b, "hole", NULL, NULL);
  dhb_client *c;
  CHECK_OK (dhb_client_new (hole->endpoint, &c));
  dhb_registration r = { .channel = channel, .shm_name = "/datahub.nb" };
  uint64_t t0 = test_now_ns ();
  CHECK_ST (dhb_register (c, &r, 300), DHB_TIMEOUT);
  double register_ms = (double) (test_now_ns () - t0) / 1e6;
  CHECK_OK (dhb_client_keep_alive (c, &r, NULL));
  wait_requests (hole, 2); /* the REG, then the keep-alive's first request */
  int before = g_atomic_int_get (&hole->requests);
  double calls[20];
  for (int i = 0; i < 20; i++) {
    char shm[64];
    snprintf (shm, sizeof shm, "/datahub.nb%d", i);
    dhb_registration u = r;
    u.shm_name = shm;
    t0 = test_now_ns ();
    CHECK_OK (dhb_client_update_registration (c, &u));
    calls[i] = (double) (test_now_ns () - t0) / 1e3;
  }
  int during = g_atomic_int_get (&hole->requests) - before;
  /* the 20 updates did not wait for the keep-alive's requests to time
   * out: it sent at most the one in flight and one REG meanwhile */
  CHECK (during <= 2);
  t0 = test_now_ns ();
  dhb_client_free (c);
  double free_ms = (double) (test_now_ns () - t0) / 1e6;
  fake_stop (hole);
  qsort (calls, 20, sizeof calls[0], compare_doubles);

  /* no broker at all: the same calls */
  char nobody[300];
  snprintf (nobody, sizeof nobody, "ipc://%s/nobody.sock", b->dir);
  CHECK_OK (dhb_client_new (nobody, &c));
  t0 = test_now_ns ();
  CHECK_ST (dhb_register (c, &r, 300), DHB_TIMEOUT);
  double down_register_ms = (double) (test_now_ns () - t0) / 1e6;
  CHECK_OK (dhb_client_keep_alive (c, &r, NULL));
  double down_update_us = 0;
  for (int i = 0; i < 20; i++) {
    t0 = test_now_ns ();
    CHECK_OK (dhb_client_update_registration (c, &r));
    down_update_us = MAX (down_update_us, (double) (test_now_ns () - t0) / 1e3);
    test_sleep_ms (50); /* the keep-alive tries in between */
  }
  dhb_client_free (c);

  /* a broker that asked for an hour between heartbeats, then fell
   * silent: DEREG and free at stop do not wait for it */
  gint answering = 1;
  fake_broker *slow = fake_start (b, "slow", long_heartbeat, &answering);
  CHECK_OK (dhb_client_new (slow->endpoint, &c));
  CHECK_ST (dhb_register (c, &r, REPLY_MS), DHB_OK);
  CHECK_OK (dhb_client_keep_alive (c, &r, NULL));
  g_atomic_int_set (&answering, 0);
  before = g_atomic_int_get (&slow->requests);
  dhb_registration u = r;
  u.shm_name = "/datahub.nb-new";
  CHECK_OK (dhb_client_update_registration (c, &u));
  wait_requests (slow, before + 1); /* the keep-alive's REG, never answered */
  g_atomic_int_set (&watchdog_armed, 1);
  GThread *dog = g_thread_new ("watchdog", watchdog,
      (gpointer) "update_registration, DEREG or free");
  /* the keep-alive is waiting for its REG: a caller is not */
  u.shm_name = "/datahub.nb-newer";
  t0 = test_now_ns ();
  CHECK_OK (dhb_client_update_registration (c, &u));
  double update_us = (double) (test_now_ns () - t0) / 1e3;
  t0 = test_now_ns ();
  CHECK_ST (dhb_deregister (c, channel, 0, 500), DHB_TIMEOUT);
  double dereg_ms = (double) (test_now_ns () - t0) / 1e6;
  t0 = test_now_ns ();
  dhb_client_free (c);
  double free2_ms = (double) (test_now_ns () - t0) / 1e6;
  g_atomic_int_set (&watchdog_armed, 0);
  g_thread_join (dog);
  fake_stop (slow);
  printf ("client_nonblocking: with a broker that never answers, update_registration took "
      "%.1f us (median) / %.1f us (max) over 20 calls while the keep-alive waited; "
      "dhb_register returned TIMEOUT after %.0f ms (its timeout: 300); free %.0f ms.  With "
      "an hour's heartbeat asked then silence, while the keep-alive waited: "
      "update_registration %.1f us, DEREG %.0f ms (timeout 500), free %.0f ms.  With no "
      "broker at all: dhb_register %.0f ms (timeout 300), update_registration at most "
      "%.1f us over 20 calls\n",
      calls[10], calls[19], register_ms, free_ms, update_us, dereg_ms, free2_ms,
      down_register_ms, down_update_us);
}

/* ---- 6: timings that cannot flap ---------------------------------------------- */

/* Exit code of the broker with these timings (-1: it served, then was
 * stopped), its stderr in @log. */
static int
broker_with_timing (const test_broker *b, const char *hb, const char *expiry, const char *log)
{
  char ep[300];
  snprintf (ep, sizeof ep, "ipc://%s/timing.sock", b->dir);
  fflush (stdout);
  pid_t pid = fork ();
  CHECK (pid >= 0);
  if (pid == 0) {
    test_die_with_parent ();
    int fd = open (log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2 (fd, 2);
    execl (broker_exe, broker_exe, "--endpoint", ep, "--heartbeat-ms", hb, "--expiry-ms",
        expiry, (char *) NULL);
    _exit (127);
  }
  /* it either exits or, once it answers, is stopped */
  dhb_client *c;
  CHECK_OK (dhb_client_new (ep, &c));
  uint64_t give_up = test_now_ns () + UINT64_C (15000000000);
  int status, rc = -1;
  for (;;) {
    if (waitpid (pid, &status, WNOHANG) == pid) {
      rc = WIFEXITED (status) ? WEXITSTATUS (status) : 128 + WTERMSIG (status);
      break;
    }
    if (dhb_request (c, "{\"type\":\"LIST\"}", 100, NULL) == DHB_OK) {
      kill (pid, SIGTERM);
      CHECK (test_wait (pid) == 0);
      break;
    }
    CHECK (test_now_ns () < give_up);
  }
  dhb_client_free (c);
  return rc;
}

static void
scenario_timing (test_broker *b)
{
  char log[300];
  snprintf (log, sizeof log, "%s/timing.log", b->dir);
  CHECK (broker_with_timing (b, "200", "200", log) == 2);
  CHECK (file_contains (log, "at least twice the heartbeat"));
  CHECK (broker_with_timing (b, "200", "499", log) == 2);
  CHECK (broker_with_timing (b, "200", "500", log) == -1);
  CHECK (broker_with_timing (b, "5", "5000", log) == 2);
  unlink (log);

  /* at the tightest allowed timing (100 / 300 ms), a kept-alive producer
   * should not flap; counted and printed (a loaded machine may delay) */
  const char *channel = test_channel ("flap");
  dhb_client *p = client (b), *sub = client (b);
  event_log events;
  CHECK_ST (reg (p, channel, "/datahub.flap", "", NULL), DHB_OK);
  subscribe_and_sync (sub, p, channel, "/datahub.flap", &events);
  dhb_registration r = { .channel = channel, .shm_name = "/datahub.flap", .schema = "sync-x" };
  CHECK_ST (dhb_register (p, &r, REPLY_MS), DHB_OK);
  CHECK_OK (dhb_client_keep_alive (p, &r, NULL));
  guint from = event_count (&events);
  test_sleep_ms (3000);
  unsigned flaps = 0;
  for (int i = (int) from; (i = find_event (&events, (guint) i, "producer-down", NULL)) >= 0; i++)
    flaps++;
  dhb_client_free (sub);
  dhb_client_free (p);
  g_ptr_array_unref (events.events);
  printf ("timing: 200/200, 200/499 and 5/5000 refused, 200/500 accepted; at 100/300 ms a "
      "kept-alive producer expired %u times in 3 s\n", flaps);
}

/* ---- 7: one broker per socket; only its own socket removed; socket mode ----- */

static void
scenario_second_broker (test_broker *b)
{
  const char *channel = test_channel ("second");
  dhb_client *p = client (b);
  CHECK_ST (reg (p, channel, "/datahub.first", "", NULL), DHB_OK);
  char log[300];
  snprintf (log, sizeof log, "%s/second.log", b->dir);
  fflush (stdout);
  pid_t second = fork ();
  CHECK (second >= 0);
  if (second == 0) {
    test_die_with_parent ();
    int fd = open (log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2 (fd, 2);
    execl (broker_exe, broker_exe, "--endpoint", b->endpoint, (char *) NULL);
    _exit (127);
  }
  uint64_t give_up = test_now_ns () + UINT64_C (10000000000);
  int status = 0;
  while (waitpid (second, &status, WNOHANG) != second) {
    if (test_now_ns () > give_up) {
      kill (second, SIGKILL);
      test_wait (second);
      fprintf (stderr, "a second broker on %s kept running\n", b->endpoint);
      exit (1);
    }
    test_sleep_ms (20);
  }
  CHECK (WIFEXITED (status) && WEXITSTATUS (status) == 1);
  char expected[64];
  snprintf (expected, sizeof expected, "another datahub-broker (pid %d)", (int) b->pid);
  CHECK (file_contains (log, expected));
  unlink (log);
  /* the first one still serves, with its registry */
  dhb_discovery d;
  CHECK_ST (disc_once (p, channel, NULL, NULL, &d), DHB_OK);
  CHECK (strcmp (d.shm_name, "/datahub.first") == 0);
  dhb_client_free (p);

  /* someone replaced the socket file: the broker leaves the new one */
  const char *path = b->endpoint + strlen ("ipc://");
  char moved[300];
  snprintf (moved, sizeof moved, "%s.moved", path);
  CHECK (rename (path, moved) == 0);
  int other = socket (AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  g_strlcpy (addr.sun_path, path, sizeof addr.sun_path);
  CHECK (bind (other, (struct sockaddr *) &addr, sizeof addr) == 0);
  struct stat before, after;
  CHECK (stat (path, &before) == 0);
  kill (b->pid, SIGTERM);
  CHECK (test_wait (b->pid) == 0);
  CHECK (stat (path, &after) == 0 && after.st_ino == before.st_ino);
  char lock[300];
  snprintf (lock, sizeof lock, "%s.lock", path);
  CHECK (access (lock, F_OK) != 0);
  close (other);
  unlink (path);
  unlink (moved);
  printf ("second_broker: refused (\"%s\"), the first kept serving; at exit it left the "
      "socket file that replaced its own\n", expected);
}

static void
scenario_socket_mode (test_broker *b)
{
  /* the default: 0600 */
  struct stat st;
  CHECK (stat (b->endpoint + strlen ("ipc://"), &st) == 0 && (st.st_mode & 0777) == 0600);
  if (!second_user (&other_uid, &other_gid)) {
    printf ("socket_mode: needs root to run a second user\n");
    exit (77);
  }
  /* the shared-broker recipe: a setgid directory of the group, a 0660
   * socket */
  char base[] = "/tmp/dhb-mode-XXXXXX";
  CHECK (mkdtemp (base) != NULL && chmod (base, 0755) == 0);
  char shared[128], ep[200];
  snprintf (shared, sizeof shared, "%s/shared", base);
  CHECK (mkdir (shared, 0755) == 0 && chown (shared, 0, other_gid) == 0
      && chmod (shared, 02755) == 0);
  snprintf (ep, sizeof ep, "ipc://%s/broker.sock", shared);
  test_broker shared_broker = { 0 };
  g_strlcpy (shared_broker.dir, shared, sizeof shared_broker.dir);
  g_strlcpy (shared_broker.endpoint, ep, sizeof shared_broker.endpoint);
  snprintf (shared_broker.log, sizeof shared_broker.log, "%s/shared.log", base);
  broker_extra_args[0] = "--socket-mode";
  broker_extra_args[1] = "0660";
  broker_start (&shared_broker);
  CHECK (stat (ep + strlen ("ipc://"), &st) == 0 && (st.st_mode & 0777) == 0660
      && st.st_gid == other_gid);
  gid_t outsider = other_gid != 65534 ? 65534 : 65533;
  int results[2];
  for (int member = 1; member >= 0; member--) {
    pid_t pid = fork ();
    CHECK (pid >= 0);
    if (pid == 0) {
      test_die_with_parent ();
      if (member)
        become (other_uid, other_gid, &other_gid, 1);
      else
        become (other_uid, outsider, NULL, 0);
      dhb_client *c;
      CHECK_OK (dhb_client_new (ep, &c));
      dhb_status st_ = dhb_request (c, "{\"type\":\"LIST\"}", member ? REPLY_MS : 1000, NULL);
      _exit ((int) st_);
    }
    results[member] = test_wait (pid);
  }
  CHECK (results[1] == DHB_OK);      /* a member of the group connects */
  CHECK (results[0] == DHB_TIMEOUT); /* anyone else cannot */
  kill (shared_broker.pid, SIGTERM);
  CHECK (test_wait (shared_broker.pid) == 0);
  remove_tree (base);
  printf ("socket_mode: socket 0660 of the directory's group: a member (uid %u) listed the "
      "registry, the same user outside the group timed out\n", (unsigned) other_uid);
}

/* ---- 8: no injection into logs or terminals ----------------------------------- */

static bool
log_line_well_formed (const char *line)
{
  static GRegex *re;
  if (!re)
    re = g_regex_new ("^[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3} datahub-broker "
        "\\[(error|warn|info|debug)\\] [\\x20-\\x7e]*$", 0, 0, NULL);
  return g_regex_match (re, line, 0, NULL);
}

static void
scenario_log_injection (test_broker *b)
{
  const char *forged = "03:00:00.000 datahub-broker [info] event {\"event\":\"producer-up\"}";
  void *ctx = zmq_ctx_new ();
  void *s = zmq_socket (ctx, ZMQ_DEALER);
  int zero = 0;
  zmq_setsockopt (s, ZMQ_LINGER, &zero, sizeof zero);
  CHECK (zmq_connect (s, b->endpoint) == 0);
  gchar *requests[] = {
    g_strdup_printf ("{\"type\":\"FOO\"}\n%s", forged),
    g_strdup_printf ("{\"type\":\"\x1b[2J\x1b[H%s\"}", forged),
    g_strdup_printf ("{\"type\":\"REG\",\"channel\":\"c\",\"shm_name\":\"/x\",\"client_id\":"
        "\"a\",\"pid\":1,\"schema\":\"\\u001b[31m\\n%s\"}", "03:00:00.000 forged"),
    g_strdup ("\r\x1b[1A\x7f\xc2\x9b"),
  };
  for (guint i = 0; i < G_N_ELEMENTS (requests); i++) {
    CHECK (zmq_send (s, "", 0, ZMQ_SNDMORE) == 0);
    CHECK (zmq_send (s, requests[i], strlen (requests[i]), 0) >= 0);
    char buf[4096];
    zmq_pollitem_t item = { s, 0, ZMQ_POLLIN, 0 };
    CHECK (zmq_poll (&item, 1, REPLY_MS) == 1);
    CHECK (zmq_recv (s, buf, sizeof buf, 0) == 0);
    int n = zmq_recv (s, buf, sizeof buf - 1, 0);
    CHECK (n > 0);
    buf[n] = 0;
    CHECK (strstr (buf, "\"BAD_REQUEST\""));
    g_free (requests[i]);
  }
  zmq_close (s);
  zmq_ctx_term (ctx);
  /* every line of the broker's log is one of its own */
  gchar *text = NULL;
  CHECK (g_file_get_contents (b->log, &text, NULL, NULL));
  gchar **lines = g_strsplit (text, "\n", -1);
  unsigned n = 0;
  for (gchar **l = lines; *l; l++) {
    if (!**l)
      continue;
    if (!log_line_well_formed (*l)) {
      fprintf (stderr, "a log line the broker did not write: '%s'\n", *l);
      exit (1);
    }
    n++;
  }
  CHECK (strstr (text, "\\x0a03:00:00.000"));
  g_strfreev (lines);
  g_free (text);
  printf ("log_injection: 4 hostile requests refused; all %u log lines are the broker's, "
      "newlines and escapes shown as \\xNN\n", n);
}

static gchar *
hostile_list (JsonObject *request, gint64 id, gpointer data)
{
  (void) request;
  (void) data;
  return g_strdup_printf ("{\"status\":\"OK\",\"id\":%" G_GINT64_FORMAT ",\"heartbeat_ms\":"
      "1000,\"expiry_ms\":5000,\"events\":\"\",\"channels\":[{\"channel\":\"evil\\u001b[2J"
      "\\u001b]0;pwned\\u0007\",\"shm_name\":\"/x\\u001b[31m\\r\",\"pid\":1,\"schema\":"
      "\"a\\nFAKE LINE\\u009b1A\",\"schema_hash\":\"\",\"secured\":false,\"consumers\":0,"
      "\"age_ms\":0,\"last_seen_ms\":0},{\"channel\":\"secured-one\",\"secured\":true,"
      "\"consumers\":2,\"age_ms\":5,\"last_seen_ms\":1}]}", id);
}

static void
scenario_admin_escape (test_broker *b)
{
  const char *admin = getenv ("DATAHUB_ADMIN_EXE");
  CHECK (admin != NULL);
  fake_broker *f = fake_start (b, "hostile", hostile_list, NULL);
  for (int json = 0; json <= 1; json++) {
    gchar *cmd = g_strdup_printf ("%s channels --broker %s%s", admin, f->endpoint,
        json ? " --json" : "");
    int code;
    gchar *out = command_output (cmd, &code);
    CHECK (code == 0);
    for (const char *p = out; *p; p++)
      if ((*p > 0 && *p < 0x20 && *p != '\n') || *p == 0x7f) {
        fprintf (stderr, "datahub-admin printed a raw control byte 0x%02x:\n%s\n", *p, out);
        exit (1);
      }
    CHECK (!strstr (out, "\xc2\x9b"));   /* C1 CSI in UTF-8 */
    CHECK (!strstr (out, "\nFAKE LINE"));
    if (!json) {
      CHECK (strstr (out, "evil\\x1b[2J"));
      CHECK (strstr (out, "secured-one"));   /* a secured entry has no location */
    } else {
      JsonNode *n = json_from_string (out, NULL);
      CHECK (n && JSON_NODE_HOLDS_ARRAY (n));
      json_node_unref (n);
    }
    g_free (out);
    g_free (cmd);
  }
  fake_stop (f);
  printf ("admin_escape: hostile names from the broker printed escaped (text and --json)\n");
}

/* ---- 9: what the broker protects ------------------------------------------------ */

static gchar *
forged_location (JsonObject *request, gint64 id, gpointer data)
{
  (void) data;
  const char *type = json_object_get_string_member_with_default (request, "type", "");
  const char *channel = json_object_get_string_member_with_default (request, "channel", "");
  if (strcmp (type, "DISC") != 0)
    return NULL;
  if (!json_object_has_member (request, "secret_proof")) {
    /* a challenge of its own, to collect the consumer's answer */
    guint8 nonce[DHB_NONCE_SIZE];
    gchar hex[2 * DHB_NONCE_SIZE + 1];
    randombytes_buf (nonce, sizeof nonce);
    dhb_hex_encode (nonce, sizeof nonce, hex);
    return g_strdup_printf ("{\"status\":\"AUTH_FAILED\",\"id\":%" G_GINT64_FORMAT ","
        "\"error\":\"this channel needs a secret\",\"nonce\":\"%s\"}", id, hex);
  }
  gchar sig[2 * DHB_SIGNATURE_SIZE + 1];
  memset (sig, 'a', sizeof sig - 1);
  sig[sizeof sig - 1] = '\0';
  return g_strdup_printf ("{\"status\":\"OK\",\"id\":%" G_GINT64_FORMAT ",\"channel\":\"%s\","
      "\"shm_name\":\"/datahub.trap\",\"pid\":1,\"schema\":\"\",\"schema_hash\":\"%s\","
      "\"secured\":true,\"secret_key\":\"%s\",\"location_proof\":\"%s\",\"heartbeat_ms\":1000,"
      "\"expiry_ms\":5000,\"events\":\"\"}", id, channel,
      "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8", sig, sig);
}

static const char *
member (JsonObject *o, const char *name)
{
  return json_object_get_string_member_with_default (o, name, "");
}

/* The LIST entry of @channel in @reply, or fail. */
static JsonObject *
list_entry (const char *reply, const char *channel, JsonNode **n)
{
  JsonArray *a = json_object_get_array_member (parse (reply, n), "channels");
  for (guint i = 0; i < json_array_get_length (a); i++) {
    JsonObject *o = json_array_get_object_element (a, i);
    if (strcmp (member (o, "channel"), channel) == 0)
      return o;
  }
  CHECK (!"channel listed");
  return NULL;
}

/* A DISC proving @secret for @channel with @nonce_hex, as client @id. */
static gchar *
signed_disc (const char *channel, const uint8_t *secret, const char *nonce_hex,
    const char *id)
{
  guint8 nonce[DHB_NONCE_SIZE], pk[DHB_PUBLIC_KEY_SIZE], sk[crypto_sign_SECRETKEYBYTES];
  guint8 sig[DHB_SIGNATURE_SIZE];
  CHECK (dhb_hex_decode (nonce_hex, nonce, sizeof nonce));
  dhb_proof_keypair (secret, channel, pk, sk);
  GBytes *m = dhb_proof_disc_message (nonce, channel, id);
  crypto_sign_detached (sig, NULL, g_bytes_get_data (m, NULL), g_bytes_get_size (m), sk);
  g_bytes_unref (m);
  gchar hex[2 * sizeof sig + 1];
  dhb_hex_encode (sig, sizeof sig, hex);
  return g_strdup_printf ("{\"type\":\"DISC\",\"channel\":\"%s\",\"client_id\":\"%s\","
      "\"nonce\":\"%s\",\"secret_proof\":\"%s\"}", channel, id, nonce_hex, hex);
}

/* A nonce the broker issued for @channel and client @id. */
static gchar *
nonce_for (dhb_client *c, const char *channel, const char *id)
{
  char *reply = request (c, DHB_AUTH_FAILED, "{\"type\":\"DISC\",\"channel\":\"%s\","
      "\"client_id\":\"%s\"}", channel, id);
  JsonNode *n;
  gchar *nonce = g_strdup (member (parse (reply, &n), "nonce"));
  CHECK (strlen (nonce) == 2 * DHB_NONCE_SIZE && !strstr (reply, "shm_name"));
  json_node_unref (n);
  free (reply);
  return nonce;
}

/* Nobody without the secret learns where a secured channel is. */
static void
secrets_nothing_leaks (test_broker *b, dhb_client *p, const char *channel,
    const uint8_t *secret)
{
  dhb_client *sub = client (b), *c = client (b);
  event_log events;
  subscribe_and_sync_secret (sub, p, channel, "/datahub.sec1", secret, &events);
  guint from = event_count (&events);
  CHECK_ST (reg (p, channel, "/datahub.sec2", "video/x-raw,format=NV12", secret), DHB_OK);
  int i = wait_event (&events, from, "handover", NULL, EVENT_MS);
  CHECK (i >= 0);
  pthread_mutex_lock (&events.lock);
  for (guint k = 0; k < events.events->len; k++)
    CHECK (!strstr (events.events->pdata[k], "/datahub.sec")
        && !strstr (events.events->pdata[k], "\"pid\"")
        && !strstr (events.events->pdata[k], "NV12"));
  pthread_mutex_unlock (&events.lock);
  char *reply = request (c, DHB_OK, "{\"type\":\"LIST\"}");
  JsonNode *n;
  JsonObject *o = list_entry (reply, channel, &n);
  CHECK (json_object_get_boolean_member (o, "secured") && !json_object_has_member (o, "shm_name")
      && !json_object_has_member (o, "pid") && !json_object_has_member (o, "schema"));
  json_node_unref (n);
  free (reply);
  /* a rival without the secret is refused without being told who holds
   * the channel; one with it is told */
  reply = request (c, DHB_CONFLICT, "{\"type\":\"REG\",\"channel\":\"%s\",\"shm_name\":"
      "\"/rival\",\"client_id\":\"%s\",\"pid\":%d}", channel, dhb_client_id (c), (int) getpid ());
  CHECK (!strstr (reply, "\"pid\"") && !strstr (reply, "/datahub.sec"));
  free (reply);
  CHECK_ST (reg (c, channel, "/rival", "", secret), DHB_CONFLICT);
  char why[256];
  dhb_client_last_error (c, why, sizeof why);
  CHECK (strstr (why, "/datahub.sec2"));
  dhb_client_free (sub);
  g_ptr_array_unref (events.events);
  dhb_client_free (c);
}

/* A proof is good for one channel, one client id and one nonce of this
 * broker; the signed location cannot be moved elsewhere. */
static void
secrets_no_replay (test_broker *b, const char *channel, const uint8_t *secret)
{
  dhb_client *c = client (b);
  gchar *nonce = nonce_for (c, channel, "alice-1");
  gchar *disc = signed_disc (channel, secret, nonce, "alice-1");
  free (request (c, DHB_OK, "%s", disc)); /* the construction is right */
  gchar *as_bob = signed_disc (channel, secret, nonce, "alice-1");
  char *swap = strstr (as_bob, "alice-1");
  memcpy (swap, "bobby-1", 7); /* the same proof, another client id */
  free (request (c, DHB_AUTH_FAILED, "%s", as_bob));
  char other[200];
  snprintf (other, sizeof other, "%s-other", channel);
  dhb_client *p = client (b);
  CHECK_ST (reg (p, other, "/datahub.other", "", secret), DHB_OK);
  gchar *moved = signed_disc (channel, secret, nonce, "alice-1");
  /* the channel's proof and nonce sent for the other channel */
  gchar **parts = g_strsplit (moved, channel, 2);
  gchar *for_other = g_strjoin (other, parts[0], parts[1], NULL);
  free (request (c, DHB_AUTH_FAILED, "%s", for_other));
  g_strfreev (parts);
  g_free (for_other);
  g_free (moved);
  g_free (as_bob);
  g_free (disc);
  g_free (nonce);
  dhb_client_free (p);
  dhb_client_free (c);
}

/* What a broker impersonator collects is worth nothing at the real one,
 * and what it answers is not believed. */
static void
secrets_impersonator (test_broker *b, const char *channel, const uint8_t *secret)
{
  fake_broker *f = fake_start (b, "impostor", forged_location, NULL);
  dhb_client *victim_p, *victim_c;
  CHECK_OK (dhb_client_new (f->endpoint, &victim_p));
  CHECK_OK (dhb_client_new (f->endpoint, &victim_c));
  char ch[200];
  snprintf (ch, sizeof ch, "%s-imp", channel);
  dhb_registration r = { .channel = ch, .shm_name = "/datahub.genuine", .secret = secret };
  dhb_register (victim_p, &r, 300); /* no answer; the REG is collected */
  dhb_discovery d;
  CHECK_ST (dhb_discover (victim_c, ch, secret, NULL, 0, &d), DHB_AUTH_FAILED);
  char why[256];
  dhb_client_last_error (victim_c, why, sizeof why);
  CHECK (strstr (why, "not signed with its secret"));
  gchar *collected_reg = fake_seen (f, "location_proof");
  gchar *collected_disc = fake_seen (f, "secret_proof");
  CHECK (collected_reg && collected_disc);
  fake_stop (f);
  dhb_client_free (victim_p);
  dhb_client_free (victim_c);
  dhb_client *c = client (b), *p = client (b);
  /* the collected REG, for a block of the impostor's: refused */
  JsonNode *n;
  JsonObject *o = parse (collected_reg, &n);
  json_object_set_string_member (o, "shm_name", "/datahub.impostor");
  json_object_remove_member (o, "id");
  gchar *forged = json_to_string (n, FALSE);
  char *reply = request (c, DHB_BAD_REQUEST, "%s", forged);
  CHECK (strstr (reply, "not the signature of this location"));
  free (reply);
  g_free (forged);
  json_node_unref (n);
  /* the collected consumer proof, at the real broker: refused */
  CHECK_ST (reg (p, ch, "/datahub.genuine", "", secret), DHB_OK);
  o = parse (collected_disc, &n);
  json_object_remove_member (o, "id");
  gchar *replayed = json_to_string (n, FALSE);
  free (request (c, DHB_AUTH_FAILED, "%s", replayed));
  g_free (replayed);
  json_node_unref (n);
  g_free (collected_reg);
  g_free (collected_disc);
  dhb_client_free (p);
  dhb_client_free (c);
}

static void
scenario_secrets (test_broker *b)
{
  const char *channel = test_channel ("secrets");
  uint8_t secret[DH_SECRET_SIZE], other[DH_SECRET_SIZE];
  memset (secret, 0x5a, sizeof secret);
  memset (other, 0x5b, sizeof other);
  /* the secured channel, kept alive through the checks */
  dhb_client *holder = client (b);
  dhb_registration r = { .channel = channel, .shm_name = "/datahub.sec1",
    .schema = "video/x-raw,format=NV12", .secret = secret };
  CHECK_ST (dhb_register (holder, &r, REPLY_MS), DHB_OK);
  CHECK_OK (dhb_client_keep_alive (holder, &r, NULL));
  secrets_nothing_leaks (b, holder, channel, secret);
  secrets_no_replay (b, channel, secret);
  secrets_impersonator (b, channel, secret);
  dhb_client_free (holder);
  /* a consumer with a secret refuses a producer without one, or with
   * another one */
  dhb_client *p = client (b), *c = client (b);
  char open[200], wrong[200];
  snprintf (open, sizeof open, "%s-open", channel);
  snprintf (wrong, sizeof wrong, "%s-wrong", channel);
  CHECK_ST (reg (p, open, "/datahub.open", "", NULL), DHB_OK);
  dhb_discovery d;
  CHECK_ST (disc_once (c, open, secret, NULL, &d), DHB_AUTH_FAILED);
  char why[256];
  dhb_client_last_error (c, why, sizeof why);
  CHECK (strstr (why, "registered without a secret"));
  CHECK_ST (reg (p, wrong, "/datahub.wrong", "", other), DHB_OK);
  CHECK_ST (disc_once (c, wrong, secret, NULL, &d), DHB_AUTH_FAILED);
  dhb_client_last_error (c, why, sizeof why);
  CHECK (strstr (why, "does not match"));
  dhb_client_free (p);
  dhb_client_free (c);
  printf ("secrets: LIST, events and CONFLICT keep a secured channel's location; proofs do "
      "not replay across client ids or channels; an impersonator's collection is refused "
      "and its forged answer not believed; unsecured or other-secret producers refused by "
      "a consumer with the secret\n");
}

int
main (int argc, char **argv)
{
  if (argc < 3) {
    fprintf (stderr, "usage: %s BROKER_EXE SCENARIO\n", argv[0]);
    return 2;
  }
  broker_exe = argv[1];
  const char *scenario = argv[2] ? argv[2] : "";
  if (sodium_init () < 0)
    return 1;
  if (strcmp (scenario, "takeover") == 0)
    takeover_prepare ();
  /* registrations and consumers must not expire while a slow (sanitized,
   * loaded) run fills tables or quotas: none of these scenarios is about
   * expiry except timing */
  expiry_arg = "60000";
  if (strcmp (scenario, "timing") == 0)
    expiry_arg = "300"; /* the tightest timing allowed with a 100 ms heartbeat */
  if (strcmp (scenario, "flood") == 0) {
    broker_extra_args[0] = "--max-channels-per-client";
    broker_extra_args[1] = "5000";
  }
  test_broker b;
  broker_init (&b, scenario);
  bool stopped = false;
  if (strcmp (scenario, "takeover") == 0)
    scenario_takeover (&b);
  else if (strcmp (scenario, "squatter") == 0)
    scenario_squatter (&b);
  else if (strcmp (scenario, "consumer_flood") == 0)
    scenario_consumer_flood (&b);
  else if (strcmp (scenario, "flood") == 0)
    scenario_flood (&b);
  else if (strcmp (scenario, "quota") == 0)
    scenario_quota (&b);
  else if (strcmp (scenario, "client_nonblocking") == 0)
    scenario_client_nonblocking (&b);
  else if (strcmp (scenario, "timing") == 0)
    scenario_timing (&b);
  else if (strcmp (scenario, "second_broker") == 0) {
    scenario_second_broker (&b);
    stopped = true;
  } else if (strcmp (scenario, "socket_mode") == 0)
    scenario_socket_mode (&b);
  else if (strcmp (scenario, "log_injection") == 0)
    scenario_log_injection (&b);
  else if (strcmp (scenario, "admin_escape") == 0)
    scenario_admin_escape (&b);
  else if (strcmp (scenario, "secrets") == 0)
    scenario_secrets (&b);
  else {
    fprintf (stderr, "unknown scenario %s\n", scenario);
    return 2;
  }
  if (!stopped)
    broker_stop (&b);
  else
    remove_tree (b.dir);
  return 0;
}
