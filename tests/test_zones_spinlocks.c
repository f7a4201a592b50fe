/* Flexible zones give whole snapshots while the producer rewrites them;
 * the spinlock pool is recursive, times out, and is recovered from a dead
 * owner. */
#include "dh_test.h"

static dh_producer *
make (const char *name)
{
  dh_producer_config pc;
  dh_producer_config_init (&pc);
  pc.name = name;
  pc.slot_size = 64;
  pc.slot_count = 2;
  pc.zone_count = 2;
  pc.zone_sizes[0] = 1000;
  pc.zone_sizes[1] = 8;
  dh_producer *p;
  CHECK_OK (dh_producer_create (&pc, &p));
  return p;
}

/* A snapshot is consistent when its length is 10 * first byte and every
 * byte equals the first. */
static int
read_snapshots (const char *name, test_shared *sh, uint64_t n)
{
  dh_consumer *c = test_consumer (name, false, DH_START_LATEST);
  test_barrier (sh);
  uint8_t buf[1000];
  uint64_t changes = 0, last_version = 0;
  /* read until @n snapshots and at least 50 distinct versions were seen */
  for (uint64_t i = 0; i < n || changes < 50; i++) {
    size_t len;
    uint64_t version;
    CHECK_OK (dh_consumer_zone_read (c, 0, buf, sizeof buf, &len, &version));
    CHECK (version % 2 == 0);
    if (len == 0)
      continue;
    CHECK (len == 10u * buf[0]);
    for (size_t k = 0; k < len; k++)
      CHECK (buf[k] == buf[0]);
    changes += version != last_version;
    last_version = version;
  }
  printf ("zone reader: %" PRIu64 " consistent snapshots, %" PRIu64 " versions\n",
      n, changes);
  CHECK (changes > 1);
  dh_consumer_detach (c);
  return 0;
}

static void
test_zone_snapshots (void)
{
  const char *name = test_channel ("zones");
  test_shared *sh = test_shared_new (2);
  uint64_t n = test_scaled (200000);
  pid_t child = fork ();
  if (child == 0)
    _exit (read_snapshots (name, sh, n));
  dh_producer *p = make (name);
  test_barrier (sh);
  uint8_t buf[1000];
  for (uint8_t v = 1;; v = (uint8_t) (v % 100 + 1)) {
    memset (buf, v, sizeof buf);
    CHECK_OK (dh_producer_zone_write (p, 0, buf, 10u * v));
    /* rewrite often (tens of thousands of times a second), but not
     * back-to-back: a zone is metadata, not a data stream */
    uint64_t until = test_now_ns () + 20000;
    while (test_now_ns () < until)
      ;
    int status;
    if (waitpid (child, &status, WNOHANG) == child) {
      CHECK (WIFEXITED (status) && WEXITSTATUS (status) == 0);
      break;
    }
  }
  dh_producer_destroy (p);
}

static int
lock_and_die (const char *name, test_shared *sh)
{
  dh_consumer *c = test_consumer (name, false, DH_START_LATEST);
  CHECK_OK (dh_consumer_spin_lock (c, 3, 0));
  sh->values[0] = 1;
  for (;;)
    pause ();
}

static void
test_spinlocks (void)
{
  const char *name = test_channel ("spin");
  dh_producer *p = make (name);
  dh_consumer *c = test_consumer (name, false, DH_START_LATEST);
  /* recursive for the owner; others time out */
  CHECK_OK (dh_producer_spin_lock (p, 0, 0));
  CHECK_OK (dh_producer_spin_lock (p, 0, 0));
  CHECK_RC (dh_consumer_spin_lock (c, 0, 20), -ETIMEDOUT);
  CHECK_OK (dh_producer_spin_unlock (p, 0));
  CHECK_RC (dh_consumer_spin_lock (c, 0, 20), -ETIMEDOUT); /* depth 1 left */
  CHECK_OK (dh_producer_spin_unlock (p, 0));
  CHECK_OK (dh_consumer_spin_lock (c, 0, 20));
  CHECK_RC (dh_producer_spin_unlock (p, 0), -EPERM);
  CHECK_OK (dh_consumer_spin_unlock (c, 0));

  /* a consumer dies holding lock 3: the next taker recovers it */
  test_shared *sh = test_shared_new (1);
  pid_t child = fork ();
  if (child == 0)
    _exit (lock_and_die (name, sh));
  while (!sh->values[0])
    test_sleep_ms (1);
  CHECK_RC (dh_producer_spin_lock (p, 3, 20), -ETIMEDOUT);
  kill (child, SIGKILL);
  CHECK (test_wait (child) == 128 + SIGKILL);
  CHECK_RC (dh_producer_spin_lock (p, 3, 2000), DH_ELOCKRECOVERED);
  CHECK_OK (dh_producer_spin_unlock (p, 3));
  dh_metrics m;
  CHECK_OK (dh_producer_metrics (p, &m));
  CHECK (m.spinlock_recoveries == 1);
  dh_consumer_detach (c);
  dh_producer_destroy (p);
}

int
main (void)
{
  test_zone_snapshots ();
  test_spinlocks ();
  puts ("zones and spinlocks ok");
  return 0;
}
