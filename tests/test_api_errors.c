/* Error paths of every public call: each returns a clear code and a detail
 * naming the value involved, and leaves the block usable. */
#include <fcntl.h>
#include <sys/stat.h>

#include "dh_test.h"

static void
test_names (void)
{
  char buf[DH_NAME_MAX + 1];
  CHECK_OK (dh_shm_name ("cam0", buf, sizeof buf));
  CHECK (strcmp (buf, "/datahub.cam0") == 0);
  CHECK_OK (dh_shm_name ("cam 0/../x", buf, sizeof buf));
  CHECK (strcmp (buf, "/datahub.cam_0_.._x") == 0);
  CHECK_OK (dh_shm_name ("/explicit", buf, sizeof buf));
  CHECK (strcmp (buf, "/explicit") == 0);
  CHECK_RC (dh_shm_name ("/a/b", buf, sizeof buf), -EINVAL);
  CHECK_RC (dh_shm_name ("", buf, sizeof buf), -EINVAL);
  char longname[400];
  memset (longname, 'x', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  CHECK_RC (dh_shm_name (longname, buf, sizeof buf), -ENAMETOOLONG);
}

static void
test_config_errors (void)
{
  dh_producer *p;
  dh_producer_config pc;
  dh_producer_config_init (&pc);
  CHECK_RC (dh_producer_create (&pc, &p), -EINVAL); /* no name */
  pc.name = test_channel ("cfg");
  CHECK_RC (dh_producer_create (&pc, &p), DH_ECONFIG); /* slot size 0 */
  CHECK (strstr (dh_error_detail (), "slot size 0") != NULL);
  pc.slot_size = 64;
  pc.max_consumers = 65;
  CHECK_RC (dh_producer_create (&pc, &p), DH_ECONFIG);
  CHECK (strstr (dh_error_detail (), "65") != NULL);
  pc.max_consumers = 4;
  pc.integrity = DH_INTEGRITY_HMAC;
  CHECK_RC (dh_producer_create (&pc, &p), DH_ECONFIG); /* hmac needs secret */
  pc.integrity = 7;
  CHECK_RC (dh_producer_create (&pc, &p), DH_ECONFIG);
  pc.integrity = DH_INTEGRITY_NONE;
  pc.mode = 0664; /* consumers must not be able to write the block */
  CHECK_RC (dh_producer_create (&pc, &p), DH_ECONFIG);
  CHECK (strstr (dh_error_detail (), "0664") != NULL);
  /* nothing was left behind by the failures */
  char path[300];
  snprintf (path, sizeof path, "/dev/shm/datahub.%s", pc.name);
  CHECK (access (path, F_OK) != 0);
}

static void
test_lifecycle_errors (void)
{
  const char *name = test_channel ("life");
  dh_consumer_config cc;
  dh_consumer_config_init (&cc);
  cc.name = name;
  dh_consumer *c;
  CHECK_RC (dh_consumer_attach (&cc, &c), -ENOENT);
  CHECK (strstr (dh_error_detail (), name) != NULL);

  dh_producer_config pc;
  dh_producer_config_init (&pc);
  pc.name = name;
  pc.slot_size = 128;
  pc.slot_count = 2;
  pc.max_consumers = 2;
  pc.mode = 0640;
  pc.zone_count = 1;
  pc.zone_sizes[0] = 16;
  dh_producer *p, *p2;
  CHECK_OK (dh_producer_create (&pc, &p));
  CHECK_RC (dh_producer_create (&pc, &p2), DH_EBUSY);
  char want[64];
  snprintf (want, sizeof want, "pid %d", (int) getpid ());
  CHECK (strstr (dh_error_detail (), want) != NULL);

  /* The file mode is exactly what was asked, whatever the umask. */
  char path[300];
  snprintf (path, sizeof path, "/dev/shm%s", dh_producer_shm_name (p));
  struct stat st;
  CHECK (stat (path, &st) == 0 && (st.st_mode & 0777) == 0640);

  dh_consumer *c1 = test_consumer (name, false, DH_START_LATEST);
  dh_consumer *c2 = test_consumer (name, false, DH_START_LATEST);
  CHECK_RC (dh_consumer_attach (&cc, &c), DH_EFULL);
  CHECK_OK (dh_producer_consumer_count (p) == 2 ? 0 : -1);

  /* commit/abort of slots we do not hold */
  dh_slot s, bogus;
  CHECK_OK (dh_producer_acquire (p, 0, &s));
  bogus = s;
  bogus.index = 99;
  dh_record_info info = { .size = 16 };
  CHECK_RC (dh_producer_commit (p, &bogus, &info, NULL), DH_ESLOT);
  bogus = s;
  bogus.generation++;
  CHECK_RC (dh_producer_commit (p, &bogus, &info, NULL), DH_ESLOT);
  info.size = 129;
  CHECK_RC (dh_producer_commit (p, &s, &info, NULL), DH_ETOOBIG);
  CHECK (strstr (dh_error_detail (), "129") != NULL);
  info.size = 16;
  CHECK_OK (dh_producer_commit (p, &s, &info, NULL));
  CHECK_RC (dh_producer_commit (p, &s, &info, NULL), DH_ESLOT); /* twice */
  CHECK_RC (dh_producer_abort (p, &s), DH_ESLOT);

  dh_record r;
  CHECK_OK (dh_consumer_next (c1, 0, &r));
  CHECK_OK (dh_consumer_release (c1, &r));
  CHECK_RC (dh_consumer_release (c1, &r), DH_ESLOT); /* double release */
  CHECK_RC (dh_consumer_next (c1, 0, &r), -ETIMEDOUT);
  CHECK_RC (dh_consumer_next (c1, 10, &r), -ETIMEDOUT);
  r.slot = 1000;
  CHECK_RC (dh_consumer_release (c1, &r), DH_ESLOT);

  /* zones */
  char zb[32];
  size_t len;
  CHECK_RC (dh_producer_zone_write (p, 1, "x", 1), -EINVAL);
  CHECK_RC (dh_producer_zone_write (p, 0, zb, 17), DH_ETOOBIG);
  CHECK_OK (dh_producer_zone_write (p, 0, "0123456789", 10));
  CHECK_RC (dh_consumer_zone_read (c1, 0, zb, 4, &len, NULL), -ENOBUFS);
  CHECK (len == 10);
  CHECK_RC (dh_consumer_zone_read (c1, 5, zb, sizeof zb, &len, NULL), -EINVAL);

  /* spinlock index */
  CHECK_RC (dh_producer_spin_lock (p, 32, 0), -EINVAL);
  CHECK_RC (dh_consumer_spin_unlock (c1, 0), -EPERM);

  /* integrity calls on a block without integrity */
  CHECK_RC (dh_consumer_verify (c1, &(dh_record) { .slot = 0,
      .session = dh_consumer_session_id (c1) }), DH_ECONFIG);
  /* a record of no block we read is refused */
  CHECK_RC (dh_consumer_verify (c1, &(dh_record) { .slot = 0 }), DH_ESLOT);

  /* the block still works after all of the above */
  CHECK_OK (dh_producer_acquire (p, 0, &s));
  CHECK_OK (dh_producer_commit (p, &s, &info, NULL));
  CHECK_OK (dh_consumer_next (c2, 0, &r));
  CHECK_OK (dh_consumer_release (c2, &r));

  dh_consumer_detach (c1);
  dh_consumer_detach (c2);
  dh_producer_destroy (p);
  CHECK (access (path, F_OK) != 0); /* destroy unlinks */
}

static void
test_strerror (void)
{
  for (int code = DH_EHANDOVER; code <= DH_ENOTREADY; code++)
    CHECK (strcmp (dh_strerror (code), "unknown datahub error") != 0);
  CHECK (strcmp (dh_strerror (-ETIMEDOUT), strerror (ETIMEDOUT)) == 0);
  CHECK (strcmp (dh_strerror (DH_ELOCKRECOVERED), "unknown datahub error") != 0);
  CHECK (strcmp (dh_strerror (-5000), "unknown datahub error") == 0);
}

/* Upstream requests (docs/protocol.md §8): bytes arrive as sent, a
 * request without data (a key unit) is fine, an oversized one is refused. */
typedef struct {
  uint32_t kind;
  size_t len;
  char data[64];
  int calls;
} seen_request;

typedef struct {
  pthread_mutex_t lock; /* requests arrive on the producer's service thread */
  seen_request last;
} request_log;

static void
on_request (uint32_t consumer, uint32_t kind, const void *data, size_t len, void *user)
{
  (void) consumer;
  request_log *log = user;
  pthread_mutex_lock (&log->lock);
  log->last.kind = kind;
  log->last.len = len;
  memcpy (log->last.data, data, len < sizeof log->last.data ? len : sizeof log->last.data);
  log->last.calls++;
  pthread_mutex_unlock (&log->lock);
}

/* Waits for the @calls-th request and returns what arrived. */
static seen_request
await_request (dh_producer *p, request_log *log, int calls)
{
  seen_request now;
  for (int i = 0; i < 500; i++) {
    pthread_mutex_lock (&log->lock);
    now = log->last;
    pthread_mutex_unlock (&log->lock);
    if (now.calls >= calls)
      break;
    (void) dh_producer_poll (p);
    usleep (2000);
  }
  CHECK (now.calls == calls);
  return now;
}

static void
test_requests (void)
{
  const char *name = test_channel ("req");
  request_log log = { .lock = PTHREAD_MUTEX_INITIALIZER };
  dh_producer_config pc;
  dh_producer_config_init (&pc);
  pc.name = name;
  pc.slot_size = 128;
  pc.slot_count = 2;
  pc.request_fn = on_request;
  pc.request_user = &log;
  dh_producer *p;
  CHECK_OK (dh_producer_create (&pc, &p));
  dh_consumer *c = test_consumer (name, false, DH_START_LATEST);
  CHECK_OK (dh_consumer_request (c, 7, "key=1", 6));
  seen_request got = await_request (p, &log, 1);
  CHECK (got.kind == 7 && got.len == 6 && strcmp (got.data, "key=1") == 0);
  /* one request per consumer per interval is read: the next one waits */
  usleep (150000);
  CHECK_OK (dh_consumer_request (c, 1, NULL, 0));
  got = await_request (p, &log, 2);
  CHECK (got.kind == 1 && got.len == 0);
  static char big[4096]; /* a request carries at most 2032 bytes */
  CHECK_RC (dh_consumer_request (c, 2, big, sizeof big), -EMSGSIZE);
  CHECK_RC (dh_consumer_request (c, 2, NULL, 1), -EINVAL);
  dh_consumer_detach (c);
  dh_producer_destroy (p);
}

int
main (void)
{
  test_names ();
  test_config_errors ();
  test_lifecycle_errors ();
  test_requests ();
  test_strerror ();
  puts ("api errors ok");
  return 0;
}
