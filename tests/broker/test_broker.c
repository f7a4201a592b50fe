/* The broker against a real datahub-broker process.
 *
 *   test_broker BROKER_EXE SCENARIO [CORPUS_DIR]
 *
 * Each scenario starts its own broker on a private ipc endpoint, with a
 * short heartbeat (100 ms) and expiry (600 ms) so expiry is quick to see. */
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <zmq.h>

#include "broker_test.h"

/* In a producer process: a block "<channel>-block" registered for
 * @channel (kept alive if @keep_alive), with its broker client in *@out. */
static dh_producer *
registered_producer (const test_broker *b, const char *channel, uint64_t size,
    uint32_t slots, const char *schema, bool keep_alive, dhb_client **out)
{
  char shm[64];
  snprintf (shm, sizeof shm, "%s-block", channel);
  dh_producer *p = test_producer (shm, size, slots, DH_POLICY_RING, DH_ON_FULL_BLOCK);
  dhb_client *c = client (b);
  dhb_registration r = { .channel = channel, .shm_name = dh_producer_shm_name (p),
    .schema = schema };
  CHECK_ST (dhb_register (c, &r, REPLY_MS), DHB_OK);
  if (keep_alive)
    CHECK_OK (dhb_client_keep_alive (c, &r, NULL));
  *out = c;
  return p;
}

/* A producer process registers and streams; this process discovers the
 * shm name through the broker, attaches and checks every record. */
static void
scenario_discovery (test_broker *b)
{
  const char *channel = test_channel ("disc");
  test_shared *sh = test_shared_new (2);
  const uint64_t records = 500, size = 4096;
  pid_t child = fork ();
  CHECK (child >= 0);
  if (child == 0) {
    test_die_with_parent ();
    dhb_client *c;
    dh_producer *p = registered_producer (b, channel, size, 8, "video/x-raw,format=RGBA",
        false, &c);
    test_barrier (sh); /* the consumer attached */
    for (uint64_t seq = 1; seq <= records; seq++)
      test_write_record (p, size, seq, 5000);
    while (sh->values[0] == 0)
      test_sleep_ms (1);
    CHECK_ST (dhb_deregister (c, channel, 0, REPLY_MS), DHB_OK);
    dhb_client_free (c);
    dh_producer_destroy (p);
    _exit (0);
  }
  dhb_client *c = client (b);
  dhb_discovery d;
  CHECK_ST (dhb_discover (c, channel, NULL, "video/x-raw,format=RGBA", REPLY_MS, &d), DHB_OK);
  CHECK (d.pid == child);
  CHECK (strstr (d.shm_name, "-block") != NULL);
  CHECK (strcmp (d.schema, "video/x-raw,format=RGBA") == 0);
  CHECK (strlen (d.schema_hash) == 64 && !d.secured);
  CHECK (d.heartbeat_ms == HEARTBEAT_MS && d.expiry_ms == (uint32_t) atoi (expiry_arg));
  CHECK (strstr (d.events, "-events") != NULL);
  dh_consumer *con = test_consumer (d.shm_name, false, DH_START_OLDEST);
  test_barrier (sh);
  for (uint64_t seq = 1; seq <= records; seq++) {
    dh_record r;
    CHECK_OK (dh_consumer_next (con, 5000, &r));
    CHECK (r.seq == seq && r.info.size == size && test_check_pattern (r.data, size, seq));
    CHECK_OK (dh_consumer_release (con, &r));
  }
  sh->values[0] = 1;
  CHECK (test_wait (child) == 0);
  dh_consumer_detach (con);
  /* deregistered: gone at once */
  CHECK_ST (disc_once (c, channel, NULL, NULL, &d), DHB_NOT_FOUND);
  dhb_client_free (c);
  printf ("discovery: %" PRIu64 " records through the discovered block\n", records);
}

/* datahub-admin channels (DATAHUB_ADMIN_EXE) shows the registration. */
static void
check_admin_channels (const test_broker *b, const char *channel, const char *shm)
{
  const char *admin = getenv ("DATAHUB_ADMIN_EXE");
  CHECK (admin != NULL);
  char cmd[1024];
  snprintf (cmd, sizeof cmd, "%s channels --broker %s", admin, b->endpoint);
  FILE *f = popen (cmd, "r");
  CHECK (f != NULL);
  char line[512];
  bool found = false;
  while (fgets (line, sizeof line, f))
    found |= strncmp (line, channel, strlen (channel)) == 0 && strstr (line, shm) != NULL;
  CHECK (pclose (f) == 0);
  CHECK (found);
}

static void
scenario_conflict (test_broker *b)
{
  const char *channel = test_channel ("conflict");
  dhb_client *first = client (b), *second = client (b), *sub = client (b);
  event_log log;
  CHECK_ST (reg (first, channel, "/datahub.one", "s", NULL), DHB_OK);
  subscribe_and_sync (sub, first, channel, "/datahub.one", &log);
  CHECK_ST (reg (second, channel, "/datahub.two", "s", NULL), DHB_CONFLICT);
  check_admin_channels (b, channel, "/datahub.one");
  char why[256];
  dhb_client_last_error (second, why, sizeof why);
  CHECK (strstr (why, "another live producer") != NULL);
  /* the same producer re-registering updates; a new shm name is a handover */
  guint from = event_count (&log);
  CHECK_ST (reg (first, channel, "/datahub.one.h1", "s", NULL), DHB_OK);
  int i = wait_event (&log, from, "handover", NULL, EVENT_MS);
  CHECK (i >= 0);
  gchar *handover = event_json (&log, (guint) i);
  CHECK (strstr (handover, "\"from\":\"/datahub.one\"") != NULL);
  CHECK (strstr (handover, "\"shm_name\":\"/datahub.one.h1\"") != NULL);
  g_free (handover);
  dhb_discovery d;
  CHECK_ST (disc_once (second, channel, NULL, NULL, &d), DHB_OK);
  CHECK (strcmp (d.shm_name, "/datahub.one.h1") == 0);
  /* after DEREG the channel is free for another producer */
  CHECK_ST (dhb_deregister (second, channel, 0, REPLY_MS), DHB_NOT_FOUND);
  CHECK_ST (dhb_deregister (first, channel, 0, REPLY_MS), DHB_OK);
  CHECK (wait_event (&log, from, "producer-down", "deregistered", EVENT_MS) >= 0);
  CHECK_ST (reg (second, channel, "/datahub.two", "s", NULL), DHB_OK);
  CHECK (wait_event (&log, from, "producer-up", NULL, EVENT_MS) >= 0);
  dhb_client_free (sub);
  dhb_client_free (first);
  dhb_client_free (second);
  g_ptr_array_unref (log.events);
  printf ("conflict: CONFLICT, handover and re-registration after DEREG as specified\n");
}

static void
scenario_secret_schema (test_broker *b)
{
  const char *channel = test_channel ("secret");
  uint8_t secret[DH_SECRET_SIZE], wrong[DH_SECRET_SIZE];
  memset (secret, 0x5a, sizeof secret);
  memset (wrong, 0x5b, sizeof wrong);
  dhb_client *p = client (b), *c = client (b);
  CHECK_ST (reg (p, channel, "/datahub.sec", "video/x-raw,format=NV12", secret), DHB_OK);
  dhb_discovery d;
  char why[256];
  CHECK_ST (disc_once (c, channel, NULL, NULL, &d), DHB_AUTH_FAILED);
  dhb_client_last_error (c, why, sizeof why);
  CHECK (strstr (why, "needs a secret") != NULL);
  CHECK_ST (disc_once (c, channel, wrong, NULL, &d), DHB_AUTH_FAILED);
  dhb_client_last_error (c, why, sizeof why);
  CHECK (strstr (why, "does not match") != NULL);
  /* AUTH_FAILED is final: no retries until the timeout */
  uint64_t t0 = test_now_ns ();
  CHECK_ST (dhb_discover (c, channel, wrong, NULL, 3000, &d), DHB_AUTH_FAILED);
  CHECK (test_now_ns () - t0 < UINT64_C (2000000000));
  CHECK_ST (disc_once (c, channel, secret, NULL, &d), DHB_OK);
  CHECK (d.secured && strcmp (d.shm_name, "/datahub.sec") == 0);
  CHECK_ST (disc_once (c, channel, secret, "video/x-raw,format=RGBA", &d),
      DHB_SCHEMA_MISMATCH);
  dhb_client_last_error (c, why, sizeof why);
  CHECK (strstr (why, "schema differs") != NULL);
  CHECK_ST (disc_once (c, channel, secret, "video/x-raw,format=NV12", &d), DHB_OK);
  /* the raw form: a schema_hash instead of the schema (an unsecured
   * channel: a secured one answers raw requests with a challenge) */
  char plain[160];
  snprintf (plain, sizeof plain, "%s-plain", channel);
  CHECK_ST (reg (p, plain, "/datahub.plain", "video/x-raw,format=NV12", NULL), DHB_OK);
  char *reply = NULL;
  char req[512];
  snprintf (req, sizeof req, "{\"type\":\"DISC\",\"channel\":\"%s\",\"schema_hash\":\"%s\"}",
      plain, "00");
  CHECK_ST (dhb_request (c, req, REPLY_MS, &reply), DHB_BAD_REQUEST);
  free (reply);
  snprintf (req, sizeof req, "{\"type\":\"DISC\",\"channel\":\"%s\",\"schema_hash\":\"%s\"}",
      plain, d.schema_hash);
  CHECK_ST (dhb_request (c, req, REPLY_MS, &reply), DHB_OK);
  CHECK (strstr (reply, "\"shm_name\":\"/datahub.plain\"") != NULL);
  free (reply);
  dhb_client_free (p);
  dhb_client_free (c);
  printf ("secret and schema: AUTH_FAILED and SCHEMA_MISMATCH as specified\n");
}

/* Registrations expire without heartbeats; the keep-alive prevents it;
 * a dead producer process is noticed before the expiry. */
static void
scenario_expiry (test_broker *b)
{
  const char *channel = test_channel ("expiry");
  char kept[160], dead[160];
  snprintf (kept, sizeof kept, "%s-kept", channel);
  snprintf (dead, sizeof dead, "%s-dead", channel);
  /* the producer that will exit without DEREG, forked before this process
   * has client threads (fork and threads do not mix) */
  test_shared *sh = test_shared_new (1);
  pid_t child = fork ();
  CHECK (child >= 0);
  if (child == 0) {
    test_die_with_parent ();
    while (sh->values[0] == 0)
      test_sleep_ms (1);
    dhb_client *c = client (b);
    CHECK_ST (reg (c, dead, "/datahub.dead", "", NULL), DHB_OK);
    _exit (0); /* no DEREG, no free */
  }
  dhb_client *silent = client (b), *alive = client (b), *sub = client (b),
      *consumer = client (b);
  event_log log;
  CHECK_ST (reg (silent, channel, "/datahub.silent", "", NULL), DHB_OK);
  subscribe_and_sync (sub, silent, channel, "/datahub.silent", &log);
  dhb_registration r = { .channel = kept, .shm_name = "/datahub.kept" };
  CHECK_ST (dhb_register (alive, &r, REPLY_MS), DHB_OK);
  CHECK_OK (dhb_client_keep_alive (alive, &r, NULL));
  dhb_discovery d;
  CHECK_ST (disc_once (consumer, channel, NULL, NULL, &d), DHB_OK);
  guint from = event_count (&log);
  /* the consumer never heartbeats: dropped while the producer heartbeats */
  uint64_t t0 = test_now_ns (), last_heartbeat = t0;
  while (find_event (&log, from, "consumer-drop", "expired") < 0) {
    CHECK (test_now_ns () - t0 < UINT64_C (15000000000));
    CHECK_ST (dhb_heartbeat (silent, channel, 0, REPLY_MS), DHB_OK);
    last_heartbeat = test_now_ns ();
    test_sleep_ms (HEARTBEAT_MS);
  }
  double dropped_ms = (double) (test_now_ns () - t0) / 1e6;
  /* then the producer falls silent and expires */
  t0 = last_heartbeat;
  CHECK (wait_event (&log, from, "producer-down", "expired", EVENT_MS) >= 0);
  double expired_ms = (double) (test_now_ns () - t0) / 1e6;
  CHECK (expired_ms >= EXPIRY_MS - 50);
  CHECK_ST (disc_once (consumer, channel, NULL, NULL, &d), DHB_NOT_FOUND);
  /* several expiry periods later, the kept registration is still there */
  test_sleep_ms (3 * EXPIRY_MS);
  CHECK_ST (disc_once (consumer, kept, NULL, NULL, &d), DHB_OK);

  /* a producer process that exits without DEREG: gone before the expiry */
  sh->values[0] = 1;
  CHECK (test_wait (child) == 0);
  t0 = test_now_ns ();
  dhb_client *next = client (b);
  while (reg (next, dead, "/datahub.next", "", NULL) != DHB_OK)
    CHECK (test_now_ns () - t0 < UINT64_C (15000000000));
  double replaced_ms = (double) (test_now_ns () - t0) / 1e6;
  CHECK (replaced_ms < EXPIRY_MS);
  dhb_client_free (next);
  dhb_client_free (alive);
  dhb_client_free (silent);
  dhb_client_free (consumer);
  dhb_client_free (sub);
  g_ptr_array_unref (log.events);
  printf ("expiry: silent consumer dropped after %.0f ms, silent producer expired after "
      "%.0f ms (expiry %d ms); kept-alive one survived %d ms; exited producer replaced "
      "after %.1f ms\n", dropped_ms, expired_ms, EXPIRY_MS,
      3 * EXPIRY_MS, replaced_ms);
}

/* 100 channels, 50 client processes discovering all of them at once, two
 * threads per process sharing one client. */
#define CHANNELS 100
#define CLIENTS 50
#define THREADS 2

typedef struct {
  dhb_client *client;
  const char *prefix;
  int offset;
  pid_t producer;
} disc_job;

static gpointer
discover_all (gpointer data)
{
  disc_job *j = data;
  for (int k = 0; k < CHANNELS; k++) {
    int i = (k + j->offset) % CHANNELS;
    char channel[128], want[160];
    snprintf (channel, sizeof channel, "%s-%d", j->prefix, i);
    snprintf (want, sizeof want, "/datahub.%s", channel);
    dhb_discovery d;
    CHECK_ST (dhb_discover (j->client, channel, NULL, NULL, REPLY_MS, &d), DHB_OK);
    CHECK (strcmp (d.shm_name, want) == 0 && d.pid == j->producer);
  }
  return NULL;
}

static void
scenario_scale (test_broker *b)
{
  char prefix[64];
  snprintf (prefix, sizeof prefix, "%s", test_channel ("scale"));
  /* the client processes are forked first: a process with ZeroMQ threads
   * running is not forked */
  test_shared *sh = test_shared_new (CLIENTS + 1);
  pid_t kids[CLIENTS];
  for (int k = 0; k < CLIENTS; k++) {
    fflush (stdout);
    kids[k] = fork ();
    CHECK (kids[k] >= 0);
    if (kids[k] == 0) {
      test_die_with_parent ();
      disc_job jobs[THREADS];
      GThread *threads[THREADS];
      dhb_client *shared = client (b);
      test_barrier (sh);
      for (int t = 0; t < THREADS; t++) {
        jobs[t] = (disc_job) { shared, prefix, k * 7 + t * 50, getppid () };
        threads[t] = g_thread_new ("disc", discover_all, &jobs[t]);
      }
      for (int t = 0; t < THREADS; t++)
        g_thread_join (threads[t]);
      dhb_client_free (shared);
      _exit (0);
    }
  }
  dhb_client *producers[CHANNELS];
  for (int i = 0; i < CHANNELS; i++) {
    char channel[128], shm[160];
    snprintf (channel, sizeof channel, "%s-%d", prefix, i);
    snprintf (shm, sizeof shm, "/datahub.%s", channel);
    producers[i] = client (b);
    dhb_registration r = { .channel = channel, .shm_name = shm };
    CHECK_ST (dhb_register (producers[i], &r, REPLY_MS), DHB_OK);
    CHECK_OK (dhb_client_keep_alive (producers[i], &r, NULL));
  }
  test_barrier (sh);
  uint64_t t0 = test_now_ns ();
  for (int k = 0; k < CLIENTS; k++)
    CHECK (test_wait (kids[k]) == 0);
  double secs = (double) (test_now_ns () - t0) / 1e9;
  dhb_client *c = client (b);
  char *list = NULL;
  CHECK_ST (dhb_request (c, "{\"type\":\"LIST\"}", REPLY_MS, &list), DHB_OK);
  JsonNode *n = json_from_string (list, NULL);
  JsonArray *arr = json_object_get_array_member (json_node_get_object (n), "channels");
  guint listed = 0;
  for (guint i = 0; i < json_array_get_length (arr); i++) {
    JsonObject *o = json_array_get_object_element (arr, i);
    if (g_str_has_prefix (json_object_get_string_member (o, "channel"), prefix)) {
      listed++;
      /* every discovering process was noted as a consumer of each channel */
      CHECK (json_object_get_int_member (o, "consumers") == CLIENTS);
    }
  }
  CHECK (listed == CHANNELS);
  json_node_unref (n);
  free (list);
  dhb_client_free (c);
  for (int i = 0; i < CHANNELS; i++)
    dhb_client_free (producers[i]);
  unsigned requests = CHANNELS * CLIENTS * THREADS;
  printf ("scale: %d channels, %d processes x %d threads: %u discoveries in %.2f s "
      "(%.0f/s), all correct\n", CHANNELS, CLIENTS, THREADS, requests, secs,
      requests / secs);
}

/* Kill the broker while a stream runs: records keep flowing, and the
 * producer's keep-alive registers again with the restarted broker. */
static void
scenario_restart (test_broker *b)
{
  const char *channel = test_channel ("restart");
  test_shared *sh = test_shared_new (2);
  const uint64_t size = 4096;
  pid_t child = fork ();
  CHECK (child >= 0);
  if (child == 0) {
    test_die_with_parent ();
    dhb_client *c;
    dh_producer *p = registered_producer (b, channel, size, 16, NULL, true, &c);
    test_barrier (sh);
    for (uint64_t seq = 1; sh->values[0] == 0; seq++) {
      test_write_record (p, size, seq, 10000);
      test_sleep_ms (1);
    }
    dhb_client_free (c);
    dh_producer_destroy (p);
    _exit (0);
  }
  dhb_client *c = client (b);
  dhb_discovery d;
  CHECK_ST (dhb_discover (c, channel, NULL, NULL, REPLY_MS, &d), DHB_OK);
  dh_consumer *con = test_consumer (d.shm_name, false, DH_START_OLDEST);
  test_barrier (sh);
  uint64_t seq = 0;
  /* reads @n records, checking order and content */
#define READ_RECORDS(n) \
  for (uint64_t k_ = 0; k_ < (n); k_++) { \
    dh_record r; \
    CHECK_OK (dh_consumer_next (con, 5000, &r)); \
    CHECK (r.seq == ++seq && r.lost_before == 0 && test_check_pattern (r.data, size, r.seq)); \
    CHECK_OK (dh_consumer_release (con, &r)); \
  }
  READ_RECORDS (100);
  broker_kill (b);
  uint64_t before = seq;
  READ_RECORDS (300); /* no broker at all */
  uint64_t during = seq - before;
  uint64_t t0 = test_now_ns ();
  broker_start (b);
  while (disc_once (c, channel, NULL, NULL, &d) != DHB_OK) {
    CHECK (test_now_ns () - t0 < UINT64_C (10000000000));
    READ_RECORDS (1);
  }
  double back_ms = (double) (test_now_ns () - t0) / 1e6;
  CHECK (d.pid == child);
  READ_RECORDS (100);
  sh->values[0] = 1;
  /* drain whatever is in flight so the producer is not blocked */
  for (;;) {
    dh_record r;
    if (dh_consumer_next (con, 200, &r) != 0)
      break;
    CHECK (r.seq == ++seq);
    CHECK_OK (dh_consumer_release (con, &r));
  }
  CHECK (test_wait (child) == 0);
  dh_consumer_detach (con);
  dhb_client_free (c);
  printf ("restart: %" PRIu64 " records while the broker was down, %" PRIu64 " in all, "
      "none lost; registration back %.0f ms after the restart\n", during, seq, back_ms);
#undef READ_RECORDS
}

/* Raw frames, as a broken or hostile client would send them. */
static char *
raw_exchange (void *sock, const void *const *frames, const size_t *sizes, int n, int timeout_ms)
{
  CHECK (zmq_send (sock, "", 0, ZMQ_SNDMORE) == 0);
  for (int i = 0; i < n; i++)
    CHECK (zmq_send (sock, frames[i], sizes[i], i + 1 < n ? ZMQ_SNDMORE : 0) >= 0);
  zmq_pollitem_t item = { sock, 0, ZMQ_POLLIN, 0 };
  if (zmq_poll (&item, 1, timeout_ms) <= 0)
    return NULL;
  char *reply = NULL;
  int more = 1;
  while (more) {
    zmq_msg_t m;
    zmq_msg_init (&m);
    CHECK (zmq_msg_recv (&m, sock, 0) >= 0);
    more = zmq_msg_more (&m);
    if (zmq_msg_size (&m) > 0) {
      free (reply);
      reply = strndup (zmq_msg_data (&m), zmq_msg_size (&m));
    }
    zmq_msg_close (&m);
  }
  return reply;
}

static void *
raw_socket (void *ctx, const test_broker *b)
{
  void *s = zmq_socket (ctx, ZMQ_DEALER);
  int zero = 0;
  zmq_setsockopt (s, ZMQ_LINGER, &zero, sizeof zero);
  CHECK (zmq_connect (s, b->endpoint) == 0);
  return s;
}

static void
expect_bad_request (void *sock, const void *const *frames, const size_t *sizes, int n,
    const char *what)
{
  char *reply = raw_exchange (sock, frames, sizes, n, 5000);
  JsonNode *parsed = reply ? json_from_string (reply, NULL) : NULL;
  gboolean valid = parsed && JSON_NODE_HOLDS_OBJECT (parsed);
  if (parsed)
    json_node_unref (parsed);
  if (!valid || !strstr (reply, "\"status\":\"BAD_REQUEST\"") || !strstr (reply, "\"error\"")) {
    fprintf (stderr, "%s: expected BAD_REQUEST, got %s\n", what, reply ? reply : "(none)");
    exit (1);
  }
  free (reply);
}

static void
scenario_malformed (test_broker *b, const char *corpus)
{
  void *ctx = zmq_ctx_new ();
  void *sock = raw_socket (ctx, b);
  DIR *dir = opendir (corpus);
  CHECK (dir != NULL);
  unsigned files = 0;
  struct dirent *e;
  while ((e = readdir (dir))) {
    if (e->d_name[0] == '.')
      continue;
    char path[1024];
    snprintf (path, sizeof path, "%s/%s", corpus, e->d_name);
    gchar *data;
    gsize len;
    CHECK (g_file_get_contents (path, &data, &len, NULL));
    const void *frames[] = { data };
    size_t sizes[] = { len };
    expect_bad_request (sock, frames, sizes, 1, e->d_name);
    g_free (data);
    files++;
  }
  closedir (dir);
  CHECK (files >= 30);
  /* multi-part garbage, an empty frame, an oversized request */
  const void *multi[] = { "{\"type\":\"LIST\"}", "\x01\x02", "more" };
  size_t multi_sizes[] = { 15, 2, 4 };
  expect_bad_request (sock, multi, multi_sizes, 3, "multi-part");
  const void *empty[] = { "" };
  size_t empty_sizes[] = { 0 };
  expect_bad_request (sock, empty, empty_sizes, 1, "empty frame");
  size_t big = 100 * 1024;
  char *blob = malloc (big);
  memset (blob, '{', big);
  const void *oversized[] = { blob };
  expect_bad_request (sock, oversized, &big, 1, "100 KiB request");
  free (blob);
  /* beyond ZeroMQ's frame limit: the connection is dropped, no reply */
  size_t huge = 2 * 1024 * 1024;
  void *huge_sock = raw_socket (ctx, b);
  blob = calloc (1, huge);
  const void *huge_frames[] = { blob };
  char *reply = raw_exchange (huge_sock, huge_frames, &huge, 1, 500);
  CHECK (reply == NULL);
  free (blob);
  zmq_close (huge_sock);
  /* a frame without the empty delimiter is still answered */
  const char list[] = "{\"type\":\"LIST\",\"id\":9}";
  CHECK (zmq_send (sock, list, sizeof list - 1, 0) >= 0);
  zmq_pollitem_t item = { sock, 0, ZMQ_POLLIN, 0 };
  CHECK (zmq_poll (&item, 1, 5000) == 1);
  char buf[4096];
  int got = zmq_recv (sock, buf, sizeof buf - 1, 0);
  CHECK (got > 0);
  buf[got] = 0;
  CHECK (strstr (buf, "\"status\":\"OK\"") && strstr (buf, "\"id\":9"));
  zmq_close (sock);
  zmq_ctx_term (ctx);
  /* still serving, and still alive */
  CHECK (kill (b->pid, 0) == 0);
  dhb_client *c = client (b);
  CHECK_ST (dhb_request (c, "{\"type\":\"LIST\"}", REPLY_MS, NULL), DHB_OK);
  dhb_client_free (c);
  printf ("malformed: %u corpus files + multi-part, empty, 100 KiB and 2 MiB frames: "
      "all refused, broker still serving\n", files);
}

/* Calls with a broker that is not there time out when they say. */
static void
scenario_timeouts (test_broker *b)
{
  char endpoint[256];
  snprintf (endpoint, sizeof endpoint, "ipc://%s/nobody.sock", b->dir);
  dhb_client *c;
  CHECK_OK (dhb_client_new (endpoint, &c));
  uint64_t t0 = test_now_ns ();
  CHECK_ST (dhb_request (c, "{\"type\":\"LIST\"}", 200, NULL), DHB_TIMEOUT);
  double one_ms = (double) (test_now_ns () - t0) / 1e6;
  CHECK (one_ms >= 190 && one_ms < 1500);
  dhb_discovery d;
  t0 = test_now_ns ();
  CHECK_ST (dhb_discover (c, "nobody", NULL, NULL, 700, &d), DHB_TIMEOUT);
  double disc_ms = (double) (test_now_ns () - t0) / 1e6;
  CHECK (disc_ms >= 690 && disc_ms < 3000);
  char why[256];
  dhb_client_last_error (c, why, sizeof why);
  CHECK (strstr (why, "not reachable") != NULL);
  CHECK_ST (dhb_request (c, "[1,2]", 100, NULL), DHB_ERROR);
  dhb_client_free (c);
  /* a discovery that starts before the producer registers finds it */
  const char *channel = test_channel ("late");
  pid_t child = fork ();
  CHECK (child >= 0);
  if (child == 0) {
    test_die_with_parent ();
    test_sleep_ms (300);
    dhb_client *p = client (b); /* ZeroMQ contexts do not cross fork */
    CHECK_ST (reg (p, channel, "/datahub.late", "", NULL), DHB_OK);
    test_sleep_ms (2000);
    _exit (0);
  }
  dhb_client *q = client (b);
  t0 = test_now_ns ();
  CHECK_ST (dhb_discover (q, channel, NULL, NULL, REPLY_MS, &d), DHB_OK);
  double late_ms = (double) (test_now_ns () - t0) / 1e6;
  kill (child, SIGKILL);
  test_wait (child);
  dhb_client_free (q);
  printf ("timeouts: request %.0f ms for 200, discovery %.0f ms for 700; late producer "
      "found after %.0f ms of backoff\n", one_ms, disc_ms, late_ms);
}

int
main (int argc, char **argv)
{
  if (argc < 3) {
    fprintf (stderr, "usage: %s BROKER_EXE SCENARIO [CORPUS_DIR]\n", argv[0]);
    return 2;
  }
  broker_exe = argv[1];
  /* named before it is used in file names (GCC cannot see argv[2] is
   * set and warns under sanitizers) */
  const char *scenario = argv[2] ? argv[2] : "";
  test_broker b;
  /* a short expiry only where expiry is what is tested: elsewhere a slow
   * (sanitized, loaded) run must not see registrations expire under it */
  if (strcmp (scenario, "expiry") != 0 && strcmp (scenario, "restart") != 0)
    expiry_arg = "60000";
  broker_init (&b, scenario);
  if (strcmp (scenario, "discovery") == 0)
    scenario_discovery (&b);
  else if (strcmp (scenario, "conflict") == 0)
    scenario_conflict (&b);
  else if (strcmp (scenario, "secret_schema") == 0)
    scenario_secret_schema (&b);
  else if (strcmp (scenario, "expiry") == 0)
    scenario_expiry (&b);
  else if (strcmp (scenario, "scale") == 0)
    scenario_scale (&b);
  else if (strcmp (scenario, "restart") == 0)
    scenario_restart (&b);
  else if (strcmp (scenario, "malformed") == 0 && argc > 3)
    scenario_malformed (&b, argv[3]);
  else if (strcmp (scenario, "timeouts") == 0)
    scenario_timeouts (&b);
  else {
    fprintf (stderr, "unknown scenario %s\n", scenario);
    return 2;
  }
  broker_stop (&b);
  return 0;
}
