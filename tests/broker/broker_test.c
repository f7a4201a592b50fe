/* Helpers of the broker tests (broker_test.h). */
#include "broker_test.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

const char *broker_exe;
const char *expiry_arg = "600";
const char *broker_extra_args[8];

void
broker_start (test_broker *b)
{
  fflush (stderr);
  b->pid = fork ();
  CHECK (b->pid >= 0);
  if (b->pid == 0) {
    test_die_with_parent ();
    int fd = open (b->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0)
      dup2 (fd, 2);
    const char *argv[24] = { broker_exe, "--endpoint", b->endpoint, "--heartbeat-ms", "100",
      "--expiry-ms", expiry_arg, "--log-level", "debug" };
    for (int i = 0; i < 8 && broker_extra_args[i]; i++)
      argv[9 + i] = broker_extra_args[i];
    execv (broker_exe, (char **) argv);
    _exit (127);
  }
  /* ready when it answers */
  dhb_client *c;
  CHECK_OK (dhb_client_new (b->endpoint, &c));
  uint64_t give_up = test_now_ns () + UINT64_C (30000000000);
  while (dhb_request (c, "{\"type\":\"LIST\"}", 200, NULL) != DHB_OK)
    CHECK (test_now_ns () < give_up);
  dhb_client_free (c);
}

void
broker_init (test_broker *b, const char *scenario)
{
  snprintf (b->dir, sizeof b->dir, "/tmp/dhb-test-%s-XXXXXX", scenario);
  CHECK (mkdtemp (b->dir) != NULL);
  snprintf (b->endpoint, sizeof b->endpoint, "ipc://%s/broker.sock", b->dir);
  snprintf (b->log, sizeof b->log, "%s/broker.log", b->dir);
  broker_start (b);
}

void
broker_kill (test_broker *b)
{
  kill (b->pid, SIGKILL);
  CHECK (test_wait (b->pid) == 128 + SIGKILL);
}

/* SIGTERM: must stop cleanly (exit 0) and remove its socket and lock
 * files: only the log is left in its directory. */
void
broker_stop (test_broker *b)
{
  kill (b->pid, SIGTERM);
  CHECK (test_wait (b->pid) == 0);
  DIR *d = opendir (b->dir);
  CHECK (d != NULL);
  struct dirent *e;
  while ((e = readdir (d)))
    if (e->d_name[0] != '.' && strcmp (e->d_name, "broker.log") != 0) {
      fprintf (stderr, "left behind: %s/%s\n", b->dir, e->d_name);
      exit (1);
    }
  closedir (d);
  unlink (b->log);
  rmdir (b->dir);
}

dhb_client *
client (const test_broker *b)
{
  dhb_client *c;
  CHECK_OK (dhb_client_new (b->endpoint, &c));
  return c;
}

/* One discovery attempt, repeated only if the broker did not answer in
 * time (a loaded machine): NOT_FOUND and refusals come back at once. */
dhb_status
disc_once (dhb_client *c, const char *channel, const uint8_t *secret, const char *schema,
    dhb_discovery *d)
{
  dhb_status st = DHB_TIMEOUT;
  for (int i = 0; i < 50 && st == DHB_TIMEOUT; i++)
    st = dhb_discover (c, channel, secret, schema, 0, d);
  return st;
}

dhb_status
reg (dhb_client *c, const char *channel, const char *shm, const char *schema,
    const uint8_t *secret)
{
  dhb_registration r = { .channel = channel, .shm_name = shm, .schema = schema,
    .secret = secret };
  return dhb_register (c, &r, REPLY_MS);
}

/* ---- events, recorded from the client's event thread ---------------------- */

static void
on_event (const dhb_event *ev, void *user_data)
{
  event_log *l = user_data;
  /* the parsed fields agree with the JSON; secured channels' events carry
   * no location */
  CHECK (strstr (ev->json, ev->event) && strstr (ev->json, ev->channel));
  CHECK (strstr (ev->json, "\"secured\":true") ? ev->pid == 0 && !ev->shm_name[0]
      : ev->pid > 0);
  pthread_mutex_lock (&l->lock);
  g_ptr_array_add (l->events, g_strdup (ev->json));
  pthread_mutex_unlock (&l->lock);
}

/* Index of the first event from @from with @name (and @reason, if given). */
int
find_event (event_log *l, guint from, const char *name, const char *reason)
{
  int found = -1;
  pthread_mutex_lock (&l->lock);
  for (guint i = from; i < l->events->len && found < 0; i++) {
    JsonNode *n = json_from_string (l->events->pdata[i], NULL);
    JsonObject *o = json_node_get_object (n);
    if (strcmp (json_object_get_string_member (o, "event"), name) == 0
        && (!reason || strcmp (json_object_get_string_member_with_default (o, "reason", ""),
                reason) == 0))
      found = (int) i;
    json_node_unref (n);
  }
  pthread_mutex_unlock (&l->lock);
  return found;
}

int
wait_event (event_log *l, guint from, const char *name, const char *reason, unsigned ms)
{
  uint64_t give_up = test_now_ns () + (uint64_t) ms * 1000000;
  int i;
  while ((i = find_event (l, from, name, reason)) < 0 && test_now_ns () < give_up)
    test_sleep_ms (5);
  return i;
}

guint
event_count (event_log *l)
{
  pthread_mutex_lock (&l->lock);
  guint n = l->events->len;
  pthread_mutex_unlock (&l->lock);
  return n;
}

/* Subscribes @sub to @channel and waits until events arrive (a PUB/SUB
 * subscription takes a moment to reach the publisher): @producer keeps
 * re-registering with a changing schema until one is seen. */
gchar *
event_json (event_log *l, guint i)
{
  pthread_mutex_lock (&l->lock);
  gchar *json = i < l->events->len ? g_strdup (l->events->pdata[i]) : NULL;
  pthread_mutex_unlock (&l->lock);
  return json;
}

void
subscribe_and_sync_secret (dhb_client *sub, dhb_client *producer, const char *channel,
    const char *shm, const uint8_t *secret, event_log *l)
{
  pthread_mutex_init (&l->lock, NULL);
  l->events = g_ptr_array_new_with_free_func (g_free);
  CHECK_OK (dhb_client_subscribe (sub, channel, on_event, l));
  for (int i = 0; find_event (l, 0, "schema-changed", NULL) < 0; i++) {
    CHECK (i < 500);
    char schema[32];
    snprintf (schema, sizeof schema, "sync-%d", i);
    CHECK_ST (reg (producer, channel, shm, schema, secret), DHB_OK);
    test_sleep_ms (10);
  }
}

void
subscribe_and_sync (dhb_client *sub, dhb_client *producer, const char *channel,
    const char *shm, event_log *l)
{
  subscribe_and_sync_secret (sub, producer, channel, shm, NULL, l);
}

long
process_rss_kib (pid_t pid)
{
  char path[64], line[256];
  snprintf (path, sizeof path, "/proc/%d/status", (int) pid);
  FILE *f = fopen (path, "r");
  long kib = 0;
  while (f && fgets (line, sizeof line, f))
    if (sscanf (line, "VmRSS: %ld kB", &kib) == 1)
      break;
  if (f)
    fclose (f);
  return kib;
}
