/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A consumer, however hostile, can only hurt itself (docs/security.md).
 *
 * A producer and two honest consumers run as root; a consumer runs as
 * another user who may read the block (a member of the producer's group:
 * perms 0640).  First it shows that such a user streams correctly and
 * cannot open the block, or any other participant's object, for writing.
 * Then, for each policy, it scribbles random bytes, 0xff and
 * plausible-but-wrong values over everything it may write (its own object,
 * which it also truncates and re-registers, and the exchange object) while
 * the others run: the producer keeps writing at its rate (drop mode), the
 * honest consumers receive every record intact and in order, nothing
 * crashes.  Needs root (to become another user); skipped (77) otherwise.
 *   test_hostile [SECONDS_PER_POLICY]  (default 10, divided by DH_TEST_SCALE) */
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>

#include "datahub/admin.h"
#include "dh_block_layout.h"
#include "dh_consumer_layout.h"
#include "dh_exchange_layout.h"
#include "dh_test.h"

#define TEST_USER "datahubtest"
#define RECORD 1024
#define SLOTS 64
#define RATE_HZ 1000
/* test_shared.values */
#define V_STOP 0
#define V_WRITTEN 1
#define V_READ0 2        /* + consumer */
#define V_TORN 4
#define V_LOST0 5        /* + consumer */
#define V_ATTACKS 7
#define V_HOSTILE_OK 8
#define V_WRITE_REFUSED 9

static uid_t test_uid;

/* The test user, made if needed (CI runs as root). */
static bool
ensure_test_user (void)
{
  struct passwd *pw = getpwnam (TEST_USER);
  if (!pw && system ("useradd --system --no-create-home --shell /usr/sbin/nologin "
          TEST_USER " >/dev/null 2>&1") == 0)
    pw = getpwnam (TEST_USER);
  if (!pw)
    return false;
  test_uid = pw->pw_uid;
  return true;
}

/* Becomes the test user, a member of root's group (read access to a
 * block of mode 0640, no write access). */
static void
become_test_user (void)
{
  gid_t groups[1] = { 0 };
  CHECK (setgroups (1, groups) == 0);
  CHECK (setresgid (0, 0, 0) == 0);
  CHECK (setresuid (test_uid, test_uid, test_uid) == 0);
  CHECK (geteuid () == test_uid);
}

static uint64_t
rand64 (void)
{
  return ((uint64_t) (uint32_t) rand () << 32) ^ (uint64_t) (uint32_t) rand ();
}

/* ---- the honest side -------------------------------------------------- */

static int
producer_main (const char *name, dh_policy policy, dh_on_full on_full, test_shared *sh)
{
  test_die_with_parent ();
  dh_producer_config pc;
  dh_producer_config_init (&pc);
  pc.name = name;
  pc.slot_size = RECORD;
  pc.slot_count = SLOTS;
  pc.policy = policy;
  pc.on_full = on_full;
  pc.mode = 0640;
  dh_producer *p;
  CHECK_OK (dh_producer_create (&pc, &p));
  test_barrier (sh);
  uint64_t start = test_now_ns ();
  for (uint64_t seq = 1; !__atomic_load_n (&sh->values[V_STOP], __ATOMIC_RELAXED); seq++) {
    /* paced: record seq is due at start + seq / RATE */
    uint64_t due = start + seq * (1000000000u / RATE_HZ);
    while (test_now_ns () < due)
      test_sleep_ms (1);
    dh_slot s;
    int rc = dh_producer_acquire (p, 100, &s);
    if (rc == -ETIMEDOUT) { /* block mode: the contract lets a consumer hold us */
      seq--;
      continue;
    }
    CHECK_OK (rc);
    test_fill_pattern (s.data, RECORD, seq);
    dh_record_info info = { .size = RECORD, .pts = (int64_t) seq };
    uint64_t got;
    CHECK_OK (dh_producer_commit (p, &s, &info, &got));
    CHECK (got == seq);
    __atomic_store_n (&sh->values[V_WRITTEN], seq, __ATOMIC_RELAXED);
  }
  dh_producer_destroy (p);
  return 0;
}

static int
honest_main (const char *name, int k, test_shared *sh)
{
  test_die_with_parent ();
  dh_consumer *c = test_registered_consumer (name); /* registered before the producer */
  test_barrier (sh);
  uint64_t last = 0, read = 0, lost = 0;
  static uint8_t copy[RECORD];
  for (;;) {
    dh_record r;
    int rc = dh_consumer_next (c, 200, &r);
    if (rc == -ETIMEDOUT)
      continue;
    if (rc == DH_ECLOSED)
      break;
    CHECK_OK (rc);
    CHECK (r.seq > last); /* in order, never twice */
    lost += r.lost_before;
    /* every gap is counted; losses count from the first record received
     * (protocol.md §5.4), so a latest-value reader may start past 1 */
    CHECK (last == 0 ? r.lost_before == 0 : r.seq - last - 1 == r.lost_before);
    last = r.seq;
    bool intact;
    if (r.flags & DH_RECORD_UNHELD) { /* latest-value: copy, then validate */
      memcpy (copy, r.data, RECORD);
      if (dh_consumer_release (c, &r) == DH_ESTALE)
        continue; /* torn copy, discarded: not delivered */
      intact = test_check_pattern (copy, RECORD, r.seq);
    } else {
      intact = test_check_pattern (r.data, RECORD, r.seq);
      CHECK_OK (dh_consumer_release (c, &r));
    }
    if (!intact)
      __atomic_add_fetch (&sh->values[V_TORN], 1, __ATOMIC_RELAXED);
    read++;
  }
  __atomic_store_n (&sh->values[V_READ0 + k], read, __ATOMIC_RELAXED);
  __atomic_store_n (&sh->values[V_LOST0 + k], lost, __ATOMIC_RELAXED);
  dh_consumer_detach (c);
  return 0;
}

/* ---- the hostile side -------------------------------------------------- */

static int
open_rw (const char *name)
{
  int fd = shm_open (name, O_RDWR | O_CLOEXEC | O_NONBLOCK, 0);
  if (fd >= 0)
    close (fd);
  return fd >= 0 ? 0 : -errno;
}

/* What it may not write, it cannot open for writing. */
static void
try_every_object (const char *origin, uint32_t own_index, test_shared *sh)
{
  int refused = 0, tried = 0;
  tried++;
  refused += open_rw (origin) == -EACCES;
  for (uint32_t i = 0; i < DH_MAX_CONSUMERS; i++) {
    char name[300];
    snprintf (name, sizeof name, "%s@c%u", origin, i);
    if (i == own_index)
      continue;
    int rc = open_rw (name);
    if (rc == -ENOENT)
      continue;
    tried++;
    refused += rc == -EACCES;
  }
  printf ("hostile: %d of %d other objects refused write access\n", refused, tried);
  __atomic_store_n (&sh->values[V_WRITE_REFUSED], (uint64_t) (refused == tried),
      __ATOMIC_RELAXED);
}

/* One round of damage to its own object (or the exchange object). */
static void
scribble (dh_shm_consumer *o, uint8_t *x, uint64_t session, int round)
{
  uint8_t *bytes = (uint8_t *) o;
  switch (round % 8) {
    case 0: /* random bytes anywhere */
      for (int k = 0; k < 64; k++)
        bytes[(size_t) rand () % DH_CONSUMER_OBJECT_SIZE] = (uint8_t) rand ();
      break;
    case 1: /* everything 0xff */
      memset (bytes, 0xff, DH_CONSUMER_OBJECT_SIZE);
      break;
    case 2: /* a hold on every slot, with the right session tag */
      for (uint32_t j = 0; j < DH_MAX_HOLDS; j++)
        atomic_store (&o->holds[j], DH_HOLD_ENTRY (session, j % SLOTS));
      break;
    case 3: /* a cursor past the head, in the right session; waiting, progress */
      atomic_store (&o->cursor, UINT64_MAX - 5);
      atomic_store (&o->session, session);
      atomic_store (&o->waiting, 1);
      atomic_fetch_add (&o->progress, 1);
      break;
    case 4: /* a cursor of 0: "behind everything" */
      atomic_store (&o->cursor, 0);
      atomic_store (&o->session, session);
      break;
    case 5: /* requests of impossible lengths, odd sequences */
      atomic_store (&o->req_len, (uint32_t) rand ());
      atomic_store (&o->req_seq, rand64 ());
      atomic_store (&o->req_kind, (uint32_t) rand ());
      break;
    case 6: /* wrong magic, index, size, then the counters */
      atomic_store (&o->magic, rand64 ());
      o->index = (uint32_t) rand ();
      o->object_size = 1;
      atomic_store (&o->read, UINT64_MAX);
      break;
    case 7: /* the exchange object everyone may write */
      if (x)
        for (int k = 0; k < 64; k++)
          x[(size_t) rand () % DH_EXCHANGE_OBJECT_SIZE] = (uint8_t) rand ();
      break;
  }
}

static int
hostile_main (const char *name, double seconds, test_shared *sh)
{
  test_die_with_parent ();
  become_test_user ();
  test_barrier (sh);
  srand ((unsigned) getpid ());
  char origin[256];
  CHECK_OK (dh_shm_name (name, origin, sizeof origin));
  /* first an honest consumer of another user: it streams */
  dh_consumer *c = test_consumer (name, true, DH_START_LATEST);
  dh_record r;
  for (int k = 0; k < 20; k++) {
    CHECK_OK (dh_consumer_next (c, 2000, &r));
    CHECK (r.flags & DH_RECORD_UNHELD ? true : test_check_pattern (r.data, RECORD, r.seq));
    dh_consumer_release (c, &r);
  }
  __atomic_store_n (&sh->values[V_HOSTILE_OK], 1, __ATOMIC_RELAXED);
  dh_consumer_stats st;
  dh_consumer_stats_get (c, &st);
  try_every_object (origin, st.index, sh);
  dh_consumer_detach (c);

  /* then the attack: register, scribble, truncate; again, each round in
   * a process of its own (its library handle is ruined by the damage) */
  char xname[300];
  snprintf (xname, sizeof xname, "%s@x", origin);
  int xfd = shm_open (xname, O_RDWR, 0);
  uint8_t *x = xfd >= 0 ? mmap (NULL, DH_EXCHANGE_OBJECT_SIZE, PROT_READ | PROT_WRITE,
      MAP_SHARED, xfd, 0) : NULL;
  if (x == MAP_FAILED)
    x = NULL;
  uint64_t rounds = 0, end = test_now_ns () + (uint64_t) (seconds * 1e9);
  while (test_now_ns () < end) {
    pid_t round = fork ();
    if (round == 0) {
      srand ((unsigned) getpid ());
      dh_consumer_config cc;
      dh_consumer_config_init (&cc);
      cc.name = name;
      cc.leaky = (dh_leaky) (rand () % 3);
      cc.attach_timeout_ms = 500;
      if (dh_consumer_attach (&cc, &c) != 0)
        _exit (0);
      dh_consumer_stats_get (c, &st);
      char own[300];
      snprintf (own, sizeof own, "%s@c%u", origin, st.index);
      int fd = shm_open (own, O_RDWR, 0);
      CHECK (fd >= 0);
      dh_shm_consumer *o = mmap (NULL, DH_CONSUMER_OBJECT_SIZE, PROT_READ | PROT_WRITE,
          MAP_SHARED, fd, 0);
      CHECK (o != MAP_FAILED);
      uint64_t sess = dh_consumer_session_id (c);
      for (int k = 0; k < 100 && test_now_ns () < end; k++) {
        scribble (o, x, sess, rand ());
        test_sleep_ms (1);
      }
      /* shrink the object under the producer's mapping, then leave */
      CHECK (ftruncate (fd, 0) == 0);
      test_sleep_ms (20);
      _exit (0);
    }
    CHECK (test_wait (round) == 0);
    rounds++;
  }
  __atomic_store_n (&sh->values[V_ATTACKS], rounds, __ATOMIC_RELAXED);
  return 0;
}

/* ---- one run per policy ------------------------------------------------- */

static void
run (dh_policy policy, dh_on_full on_full, const char *label, double seconds)
{
  char name[128];
  snprintf (name, sizeof name, "hostile-%s-%d", label, (int) getpid ());
  test_shared *sh = test_shared_new (5);
  pid_t honest[2], hostile, producer;
  for (int k = 0; k < 2; k++)
    if ((honest[k] = fork ()) == 0)
      _exit (honest_main (name, k, sh));
  if ((producer = fork ()) == 0)
    _exit (producer_main (name, policy, on_full, sh));
  if ((hostile = fork ()) == 0)
    _exit (hostile_main (name, seconds, sh));
  test_barrier (sh);
  uint64_t t0 = test_now_ns ();
  CHECK (test_wait (hostile) == 0);
  double elapsed = (double) (test_now_ns () - t0) / 1e9;
  uint64_t written = __atomic_load_n (&sh->values[V_WRITTEN], __ATOMIC_RELAXED);
  sh->values[V_STOP] = 1;
  CHECK (test_wait (producer) == 0); /* alive all along, closes cleanly */
  for (int k = 0; k < 2; k++)
    CHECK (test_wait (honest[k]) == 0);
  double rate = (double) written / elapsed;
  printf ("%s: %.1f s of attacks (%llu attackers); producer wrote %llu records (%.0f/s of %d); "
      "honest consumers read %llu and %llu, lost %llu and %llu, torn %llu\n", label, elapsed,
      (unsigned long long) sh->values[V_ATTACKS], (unsigned long long) written, rate, RATE_HZ,
      (unsigned long long) sh->values[V_READ0], (unsigned long long) sh->values[V_READ0 + 1],
      (unsigned long long) sh->values[V_LOST0], (unsigned long long) sh->values[V_LOST0 + 1],
      (unsigned long long) sh->values[V_TORN]);
  fflush (stdout); /* children forked later must not inherit this line */
  CHECK (sh->values[V_HOSTILE_OK] == 1);     /* another user streams */
  CHECK (sh->values[V_WRITE_REFUSED] == 1);  /* and cannot write what others trust */
  CHECK (sh->values[V_TORN] == 0);           /* never a torn or forged record */
  CHECK (sh->values[V_READ0] > 0 && sh->values[V_READ0 + 1] > 0);
  if (policy == DH_POLICY_RING && on_full == DH_ON_FULL_BLOCK) {
    /* lossless: the attackers cannot make an honest consumer lose one */
    for (int k = 0; k < 2; k++)
      CHECK (sh->values[V_LOST0 + k] == 0);
  }
  if (policy == DH_POLICY_RING && on_full == DH_ON_FULL_DROP) {
    /* the producer is never held back.  What the honest readers keep up
     * with depends on the machine's load (losses are counted exactly,
     * above): only a bound no loaded machine misses is checked */
    CHECK (rate > RATE_HZ * 0.5);
    for (int k = 0; k < 2; k++)
      CHECK (sh->values[V_READ0 + k] * 2 >= written);
  }
  /* the attackers' last object (shrunk, then its owner left): gone with
   * the channel */
  CHECK (dh_recover_leftovers (name) >= 0);
  munmap (sh, sizeof *sh);
}

int
main (int argc, char **argv)
{
  if (geteuid () != 0 || !ensure_test_user ()) {
    puts ("hostile: needs root to become another user; skipped");
    return 77;
  }
  /* sanitizer builds divide the time by DH_TEST_SCALE */
  double seconds = (argc > 1 ? atof (argv[1]) : 10.0) * (double) test_scaled (1000) / 1000.0;
  if (seconds < 1)
    seconds = 1;
  run (DH_POLICY_RING, DH_ON_FULL_DROP, "ring-drop", seconds);
  run (DH_POLICY_RING, DH_ON_FULL_BLOCK, "ring-block", seconds);
  run (DH_POLICY_SINGLE, DH_ON_FULL_BLOCK, "single", seconds);
  run (DH_POLICY_DOUBLE, DH_ON_FULL_BLOCK, "double", seconds);
  puts ("hostile ok");
  return 0;
}
