/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Races forced with the library's pause points (DH_TEST_POINT, compiled
 * into this test's copy of the library only): one thread is stopped
 * exactly between two steps, the other side runs through the window, and
 * the outcome is checked.  Each scenario failed on layout 1.x. */
#include <fcntl.h>
#include <semaphore.h>
#include <sys/stat.h>

#include "dh_test.h"
#include "dh_internal.h"
#include "dh_testpoint.h"

/* ---- pause points ------------------------------------------------------ */

/* One armed point: the first thread that reaches it stops until released. */
typedef struct {
  const char *name;
  atomic_bool armed;
  sem_t reached, release;
} pause_point;

#define MAX_POINTS 4
static pause_point *_Atomic points[MAX_POINTS];
static const char *_Atomic hits[64]; /* set after nhits counts them: may be NULL */
static _Atomic unsigned nhits;

static int
hook (const char *point, void *user)
{
  (void) user;
  unsigned n = atomic_fetch_add (&nhits, 1);
  if (n < 64)
    hits[n] = point;
  for (int i = 0; i < MAX_POINTS; i++) {
    pause_point *pp = points[i];
    if (pp && strcmp (pp->name, point) == 0 && atomic_exchange (&pp->armed, false)) {
      sem_post (&pp->reached);
      sem_wait (&pp->release);
    }
  }
  return 0;
}

static void
arm (pause_point *pp, const char *name)
{
  pp->name = name;
  sem_init (&pp->reached, 0, 0);
  sem_init (&pp->release, 0, 0);
  atomic_store (&pp->armed, true);
  for (int i = 0; i < MAX_POINTS; i++)
    if (!points[i]) {
      points[i] = pp;
      return;
    }
  CHECK (!"too many armed points");
}

static void
wait_reached (pause_point *pp)
{
  struct timespec ts;
  clock_gettime (CLOCK_REALTIME, &ts);
  ts.tv_sec += 20;
  CHECK (sem_timedwait (&pp->reached, &ts) == 0);
}

static void
release (pause_point *pp)
{
  sem_post (&pp->release);
}

static void
disarm_all (void)
{
  for (int i = 0; i < MAX_POINTS; i++)
    points[i] = NULL;
  atomic_store (&nhits, 0);
  for (int i = 0; i < 64; i++)
    hits[i] = NULL;
}

static bool
was_hit (const char *name)
{
  unsigned n = atomic_load (&nhits);
  for (unsigned i = 0; i < n && i < 64; i++) {
    const char *hit = hits[i];
    if (hit && strcmp (hit, name) == 0)
      return true;
  }
  return false;
}

/* ---- threads ------------------------------------------------------------- */

typedef struct {
  const char *name;
  dh_producer *p;
  dh_consumer *c;
  int rc;
  dh_record r;
  dh_slot s;
} job;

static void *
create_producer (void *arg)
{
  job *j = arg;
  dh_producer_config pc;
  dh_producer_config_init (&pc);
  pc.name = j->name;
  pc.slot_size = 64;
  pc.slot_count = 4;
  j->rc = dh_producer_create (&pc, &j->p);
  return NULL;
}

static void *
consumer_next (void *arg)
{
  job *j = arg;
  j->rc = dh_consumer_next (j->c, 5000, &j->r);
  return NULL;
}

static void *
producer_acquire (void *arg)
{
  job *j = arg;
  j->rc = dh_producer_acquire (j->p, 5000, &j->s);
  return NULL;
}

typedef struct {
  int fd;
  const char *name;
  bool removed;
} unlink_job;

static void *
unlink_if_same (void *arg)
{
  unlink_job *j = arg;
  j->removed = dh_unlink_if_same (j->fd, j->name);
  return NULL;
}

static ino_t
inode_of (int fd)
{
  struct stat st;
  CHECK (fstat (fd, &st) == 0);
  return st.st_ino;
}

/* Two reclaimers of one dead object: the first is paused after it saw
 * that the name is the object it opened; the second unlinks it and a new
 * owner creates an object under the name.  The first must not unlink the
 * new object. */
static void
test_unlink_only_what_was_checked (void)
{
  char name[160];
  snprintf (name, sizeof name, "/%s", test_channel ("unlink"));
  int old = shm_open (name, O_RDWR | O_CREAT | O_EXCL, 0600);
  CHECK (old >= 0);
  pause_point checked;
  arm (&checked, "unlink.checked");
  unlink_job j = { old, name, true };
  pthread_t t;
  pthread_create (&t, NULL, unlink_if_same, &j);
  wait_reached (&checked);
  CHECK (shm_unlink (name) == 0); /* the other reclaimer */
  int fresh = shm_open (name, O_RDWR | O_CREAT | O_EXCL, 0600); /* the new owner */
  CHECK (fresh >= 0);
  release (&checked);
  pthread_join (t, NULL);
  CHECK (!j.removed);
  int again = shm_open (name, O_RDONLY, 0);
  CHECK (again >= 0 && inode_of (again) == inode_of (fresh));
  /* and one that is still the same object goes */
  CHECK (dh_unlink_if_same (fresh, name));
  CHECK (shm_open (name, O_RDONLY, 0) < 0 && errno == ENOENT);
  close (again);
  close (fresh);
  close (old);
  disarm_all ();
}

/* §2: a producer paused between creating the object and locking it; a
 * second producer meanwhile finds an empty object with nobody's lock.
 * Exactly one of them owns the name afterwards, and consumers read it. */
static void
test_racing_creators (void)
{
  const char *name = test_channel ("creators");
  pause_point after_open;
  arm (&after_open, "create.after_open");
  job a = { .name = name }, b = { .name = name };
  pthread_t ta;
  pthread_create (&ta, NULL, create_producer, &a);
  wait_reached (&after_open);
  create_producer (&b); /* runs through the window */
  release (&after_open);
  pthread_join (ta, NULL);
  disarm_all ();
  printf ("racing creators: A %s, B %s\n", dh_strerror (a.rc), dh_strerror (b.rc));
  CHECK ((a.rc == 0) != (b.rc == 0)); /* one winner, never two */
  CHECK (a.rc == DH_EBUSY || b.rc == DH_EBUSY);
  dh_producer *winner = a.rc == 0 ? a.p : b.p;
  dh_consumer *c = test_consumer (name, false, DH_START_LATEST);
  test_write_record (winner, 64, 1, 0);
  dh_record r;
  CHECK_OK (dh_consumer_next (c, 1000, &r)); /* the name is the winner's block */
  CHECK (r.seq == 1 && test_check_pattern (r.data, 64, 1));
  CHECK_OK (dh_consumer_release (c, &r));
  dh_consumer_detach (c);
  dh_producer_destroy (winner);
}

/* A consumer started first looks while the producer has created the
 * block's name but not yet locked or sized it (an empty object with no
 * live producer): that is a producer on its way, so a read waits on,
 * then gets the first record — not an error (a gst-launch consumer
 * posted "0 bytes, smaller than a header" and quit). */
static void
test_consumer_waits_through_creation (void)
{
  const char *name = test_channel ("creating");
  dh_consumer *c = test_registered_consumer (name);
  pause_point after_open;
  arm (&after_open, "create.after_open");
  job a = { .name = name };
  pthread_t ta;
  pthread_create (&ta, NULL, create_producer, &a);
  wait_reached (&after_open);
  dh_record r;
  int rc = dh_consumer_next (c, 30, &r);
  printf ("read while the block is empty and unlocked: %s\n", dh_strerror (rc));
  CHECK_RC (rc, -ETIMEDOUT);
  release (&after_open);
  pthread_join (ta, NULL);
  disarm_all ();
  CHECK_OK (a.rc);
  test_write_record (a.p, 64, 1, 0);
  test_read_record (c, 64, 1); /* from the first */
  dh_consumer_detach (c);
  dh_producer_destroy (a.p);
}

static void *
consumer_detach (void *arg)
{
  job *j = arg;
  dh_consumer_detach (j->c);
  return NULL;
}

/* @claimer (a producer job that claims a slot) stops right after storing
 * WRITING, before it looks at holds; the consumer job then takes a hold on
 * that slot's record and sees the claim in progress; then the producer
 * looks at holds (sees ours: backs out) and both finish. */
static void
hold_taken_during_claim (void *(*claimer) (void *), job *pj, job *cj)
{
  pause_point claimed, saw_claim, decided;
  arm (&claimed, "claim.stored");
  pthread_t tp, tc;
  pthread_create (&tp, NULL, claimer, pj);
  wait_reached (&claimed);
  arm (&saw_claim, "hold.saw_claim");
  pthread_create (&tc, NULL, consumer_next, cj);
  wait_reached (&saw_claim);
  arm (&decided, "claim.decided");
  release (&claimed);
  wait_reached (&decided);
  release (&decided);
  release (&saw_claim);
  pthread_join (tc, NULL);
  pthread_join (tp, NULL);
  disarm_all ();
}

/* A consumer that said it leaves but has not yet removed its object: the
 * producer forgets it and, looking at the index again, must not admit it
 * anew (what it read would count twice). */
static void
test_leaving_consumer_counts_once (void)
{
  const char *name = test_channel ("leaving");
  dh_producer *p = test_producer (name, 64, 4, DH_POLICY_RING, DH_ON_FULL_BLOCK);
  dh_consumer *c = test_consumer (name, false, DH_START_OLDEST);
  for (uint64_t seq = 1; seq <= 3; seq++) {
    test_write_record (p, 64, seq, 0);
    dh_record r;
    CHECK_OK (dh_consumer_next (c, 1000, &r));
    CHECK (r.seq == seq);
    CHECK_OK (dh_consumer_release (c, &r));
  }
  pause_point detached;
  arm (&detached, "peer.detached");
  job j = { .c = c };
  pthread_t t;
  pthread_create (&t, NULL, consumer_detach, &j);
  wait_reached (&detached);
  dh_producer_poll (p); /* sees it leave, and looks at the index again */
  dh_producer_poll (p);
  dh_metrics m;
  CHECK_OK (dh_producer_metrics (p, &m));
  CHECK (m.consumers_live == 0);
  release (&detached);
  pthread_join (t, NULL);
  disarm_all ();
  CHECK_OK (dh_producer_poll (p) >= 0 ? 0 : -1);
  CHECK_OK (dh_producer_metrics (p, &m));
  printf ("leaving consumer: read %" PRIu64 ", live %u\n", m.slots_read, m.consumers_live);
  CHECK (m.slots_read == 3 && m.consumers_live == 0);
  dh_producer_destroy (p);
}

/* §6: a consumer truncates its object between the producer's fstat and
 * its first load: the producer must not die of SIGBUS (the guard covers
 * the mapping from before the first load) and must not admit it. */
static void
test_truncated_before_admission (void)
{
  const char *name = test_channel ("shrink");
  dh_consumer *c = test_registered_consumer (name); /* no producer yet */
  char obj[300];
  snprintf (obj, sizeof obj, "/datahub.%s@c0", name);
  int fd = shm_open (obj, O_RDWR, 0);
  CHECK (fd >= 0);
  pause_point sized;
  arm (&sized, "peer.sized");
  job j = { .name = name };
  pthread_t t;
  pthread_create (&t, NULL, create_producer, &j); /* admits at creation */
  wait_reached (&sized);
  CHECK (ftruncate (fd, 0) == 0);
  release (&sized);
  pthread_join (t, NULL);
  disarm_all ();
  CHECK_OK (j.rc); /* alive */
  dh_producer_poll (j.p);
  dh_metrics m;
  CHECK_OK (dh_producer_metrics (j.p, &m));
  printf ("truncated before admission: producer alive, %u consumers admitted\n",
      m.consumers_live);
  CHECK (m.consumers_live == 0);
  /* give the consumer its pages back (zeros) so it can leave */
  CHECK (ftruncate (fd, DH_CONSUMER_OBJECT_SIZE) == 0);
  close (fd);
  dh_consumer_detach (c);
  dh_producer_destroy (j.p);
}

/* §2: while one producer holds a dead producer's lock to replace its
 * block, another one is refused instead of racing it. */
static void
test_replacing_a_stale_block (void)
{
  const char *name = test_channel ("stale");
  pid_t child = fork ();
  if (child == 0) { /* a producer that dies without closing */
    dh_producer *p = test_producer (name, 64, 4, DH_POLICY_RING, DH_ON_FULL_BLOCK);
    (void) p;
    kill (getpid (), SIGKILL);
  }
  CHECK (test_wait (child) == 128 + SIGKILL);
  pause_point locked;
  arm (&locked, "create.stale_locked");
  job a = { .name = name }, b = { .name = name };
  pthread_t ta;
  pthread_create (&ta, NULL, create_producer, &a);
  wait_reached (&locked);
  create_producer (&b); /* the stale lock is A's now */
  CHECK_RC (b.rc, DH_EBUSY);
  release (&locked);
  pthread_join (ta, NULL);
  disarm_all ();
  CHECK_OK (a.rc);
  dh_producer_destroy (a.p);
}

/* A consumer that registered on @name (no producer yet) and was killed:
 * its object stays behind, ownerless. */
static void
leave_dead_consumer (const char *name)
{
  pid_t child = fork ();
  if (child == 0) {
    (void) test_registered_consumer (name);
    kill (getpid (), SIGKILL);
  }
  CHECK (test_wait (child) == 128 + SIGKILL);
}

/* @c is admitted by @p and reads the record @p writes next, intact. */
static void
check_streams (dh_producer *p, dh_consumer *c)
{
  CHECK_OK (dh_consumer_wait_attached (c, 1000));
  test_write_record (p, 64, 1, 0);
  dh_record r;
  CHECK_OK (dh_consumer_next (c, 1000, &r));
  CHECK (r.seq == 1 && test_check_pattern (r.data, 64, 1));
  CHECK_OK (dh_consumer_release (c, &r));
}

/* The reclaim the producer and datahub-admin run on a dead consumer's
 * object (dh_peer_reclaim), in a thread of its own. */
typedef struct {
  const char *origin;
  bool removed;
} reclaimer;

static void *
run_reclaim (void *arg)
{
  reclaimer *r = arg;
  int fd;
  const dh_shm_consumer *obj;
  CHECK_OK (dh_peer_open (r->origin, 0, &fd, &obj, NULL));
  CHECK (!dh_peer_alive (fd));
  r->removed = dh_peer_reclaim (r->origin, 0, fd);
  dh_peer_close (fd, obj);
  return NULL;
}

/* §3: a reclaimer holding a dead consumer's object (read lock on its
 * byte) and a new consumer wanting that index exclude each other: the
 * newcomer takes the next index, and the reclaimer removes only the dead
 * one's object. */
static void
test_reclaim_against_reuse (void)
{
  const char *name = test_channel ("reclaim");
  leave_dead_consumer (name);
  char origin[256];
  CHECK_OK (dh_shm_name (name, origin, sizeof origin));
  pause_point reclaiming;
  arm (&reclaiming, "peer.reclaim_locked");
  reclaimer rec = { .origin = origin };
  pthread_t t;
  pthread_create (&t, NULL, run_reclaim, &rec);
  wait_reached (&reclaiming);
  dh_consumer *c = test_registered_consumer (name);
  dh_consumer_stats st;
  dh_consumer_stats_get (c, &st);
  CHECK (st.index == 1); /* index 0 is being removed */
  release (&reclaiming);
  pthread_join (t, NULL);
  disarm_all ();
  CHECK (rec.removed);
  /* the newcomer is untouched and streams */
  dh_producer *p = test_producer (name, 64, 4, DH_POLICY_RING, DH_ON_FULL_BLOCK);
  check_streams (p, c);
  char path[300];
  snprintf (path, sizeof path, "/dev/shm%s@c0", origin);
  CHECK (access (path, F_OK) != 0); /* the dead one's object is gone */
  dh_consumer_detach (c);
  dh_producer_destroy (p);
}

typedef struct {
  dh_consumer_config cc;
  dh_consumer *c;
  int rc;
} opener;

static void *
run_open (void *arg)
{
  opener *o = arg;
  o->rc = dh_consumer_open (&o->cc, &o->c);
  return NULL;
}

/* §3: a consumer taking over a dead consumer's object (write lock held)
 * is not removed by a producer that comes in between and reclaims dead
 * consumers' objects. */
static void
test_reuse_against_reclaim (void)
{
  const char *name = test_channel ("reuse");
  leave_dead_consumer (name);
  pause_point taking;
  arm (&taking, "peer.locked");
  opener o = { .rc = 1 };
  dh_consumer_config_init (&o.cc);
  o.cc.name = name;
  pthread_t t;
  pthread_create (&t, NULL, run_open, &o);
  wait_reached (&taking);
  /* a producer starting now reclaims dead objects: this one is owned again */
  dh_producer *p = test_producer (name, 64, 4, DH_POLICY_RING, DH_ON_FULL_BLOCK);
  release (&taking);
  pthread_join (t, NULL);
  disarm_all ();
  CHECK_OK (o.rc);
  dh_consumer_stats st;
  dh_consumer_stats_get (o.c, &st);
  CHECK (st.index == 0); /* it took the dead one's index over */
  check_streams (p, o.c);
  dh_consumer_detach (o.c);
  dh_producer_destroy (p);
}

/* §4 and §5: a consumer that saw the producer's claim in progress waits
 * for the decision; the producer saw its hold and backed out, so the
 * record is delivered, not dropped. */
static void
test_backed_out_claim_is_kept (void)
{
  const char *name = test_channel ("backout");
  /* drop mode: the producer may reuse the oldest slot while we read it */
  dh_producer *p = test_producer (name, 64, 2, DH_POLICY_RING, DH_ON_FULL_DROP);
  dh_consumer *c = test_consumer (name, false, DH_START_OLDEST);
  test_write_record (p, 64, 1, 0);
  test_write_record (p, 64, 2, 0);
  /* the producer claims the slot of record 1 (the oldest) while the
   * consumer takes a hold on it */
  job pj = { .p = p }, cj = { .c = c };
  hold_taken_during_claim (producer_acquire, &pj, &cj);
  CHECK_OK (cj.rc);
  CHECK (cj.r.seq == 1 && test_check_pattern (cj.r.data, 64, 1)); /* kept, intact */
  /* the producer took the other slot meanwhile (record 2's: unheld) */
  CHECK_OK (pj.rc);
  CHECK (pj.s.index != cj.r.slot);
  dh_metrics m;
  CHECK_OK (dh_producer_metrics (p, &m));
  CHECK (m.write_lock_contention == 1);
  CHECK_OK (dh_producer_abort (p, &pj.s));
  CHECK_OK (dh_consumer_release (c, &cj.r));
  dh_consumer_detach (c);
  dh_producer_destroy (p);
}

static void *
producer_retire (void *arg)
{
  job *j = arg;
  j->rc = dh_producer_retire (j->p, &j->s, true);
  return NULL;
}

/* §5.2: a retire claims the slot as an acquire does.  The producer is
 * paused right after storing WRITING, a consumer takes a hold on the
 * record meanwhile: the retire backs out (-EBUSY) and the consumer reads
 * the record intact (the producer would otherwise have given its fd
 * buffer back while the consumer maps it). */
static void
test_retire_backs_out_for_a_hold (void)
{
  const char *name = test_channel ("retire-hold");
  dh_producer *p = test_producer (name, 64, 4, DH_POLICY_RING, DH_ON_FULL_BLOCK);
  /* leaky: a forced retire does not wait for its cursor, only its holds */
  dh_consumer *c = test_consumer (name, true, DH_START_OLDEST);
  job pj = { .p = p };
  CHECK_OK (dh_producer_acquire (p, 0, &pj.s));
  test_fill_pattern (pj.s.data, 64, 1);
  dh_record_info info = { .size = 64 };
  CHECK_OK (dh_producer_commit (p, &pj.s, &info, NULL));
  job cj = { .c = c };
  hold_taken_during_claim (producer_retire, &pj, &cj);
  CHECK_RC (pj.rc, -EBUSY);
  CHECK_OK (cj.rc);
  CHECK (cj.r.seq == 1 && test_check_pattern (cj.r.data, 64, 1));
  /* held: still not retirable; released: gone */
  CHECK_RC (dh_producer_retire (p, &pj.s, true), -EBUSY);
  CHECK_OK (dh_consumer_release (c, &cj.r));
  CHECK_OK (dh_producer_retire (p, &pj.s, true));
  dh_consumer_detach (c);
  dh_producer_destroy (p);
}

/* §5: an unlock landing after the sleeper checked its flag, before it
 * sleeps, still ends the wait at once (no full time slice). */
static void
test_unlock_in_the_window (void)
{
  const char *name = test_channel ("unlock");
  dh_producer *p = test_producer (name, 64, 2, DH_POLICY_RING, DH_ON_FULL_BLOCK);
  dh_consumer *c = test_consumer (name, false, DH_START_LATEST);
  pause_point before_sleep;
  arm (&before_sleep, "wait.before_sleep");
  job cj = { .c = c };
  pthread_t tc;
  pthread_create (&tc, NULL, consumer_next, &cj);
  wait_reached (&before_sleep);
  dh_consumer_wakeup (c);
  release (&before_sleep);
  pthread_join (tc, NULL);
  CHECK_RC (cj.rc, -ECANCELED);
  CHECK (!was_hit ("wait.slice_expired")); /* woken, not timed out */
  disarm_all ();
  dh_consumer_detach (c);
  dh_producer_destroy (p);
}

/* A thread of the producer waiting for a slot is woken by another thread
 * of the producer committing the slot it had (no consumer involved): the
 * commit bumps the waiter's wake-up word, so it does not sleep out its
 * slice.  (Whether the slice ran out is timing — a loaded machine may
 * delay the commit past it — so it is printed; the wake is asserted.) */
static void
test_commit_wakes_own_waiter (void)
{
  const char *name = test_channel ("ownwake");
  dh_producer *p = test_producer (name, 64, 1, DH_POLICY_RING, DH_ON_FULL_DROP);
  dh_slot mine;
  CHECK_OK (dh_producer_acquire (p, 0, &mine)); /* the only slot */
  disarm_all (); /* hits are counted from here */
  pause_point before_sleep;
  arm (&before_sleep, "space.before_sleep");
  job pj = { .p = p };
  pthread_t tp;
  pthread_create (&tp, NULL, producer_acquire, &pj);
  wait_reached (&before_sleep);
  release (&before_sleep);
  test_sleep_ms (2); /* let it sleep */
  CHECK_OK (dh_producer_commit (p, &mine, &(dh_record_info) { .size = 8 }, NULL));
  pthread_join (tp, NULL);
  CHECK_OK (pj.rc);
  CHECK (was_hit ("producer.wake_own")); /* the commit woke it */
  printf ("commit wakes own waiter: slice %s\n",
      was_hit ("space.slice_expired") ? "ran out too (the machine was slow)" : "not run out");
  disarm_all ();
  CHECK_OK (dh_producer_abort (p, &pj.s));
  dh_producer_destroy (p);
}

/* A consumer that stopped reading while it still holds a record: the
 * producer no longer waits for it (block mode), never reuses the held
 * slot, and forgets it when it detaches. */
static void
test_stopped_consumer (void)
{
  const char *name = test_channel ("stopped");
  dh_producer *p = test_producer (name, 64, 4, DH_POLICY_RING, DH_ON_FULL_BLOCK);
  dh_consumer *c = test_consumer (name, false, DH_START_OLDEST);
  test_write_record (p, 64, 1, 0);
  dh_record kept;
  CHECK_OK (dh_consumer_next (c, 0, &kept));
  dh_consumer_stop (c);
  for (uint64_t seq = 2; seq <= 20; seq++)
    test_write_record (p, 64, seq, 1000); /* would time out if it waited for c */
  CHECK (test_check_pattern (kept.data, 64, 1)); /* its slot was never reused */
  dh_metrics m;
  CHECK_OK (dh_producer_metrics (p, &m));
  CHECK (m.consumers_live == 1);
  CHECK_OK (dh_consumer_release (c, &kept));
  dh_consumer_detach (c);
  CHECK_OK (dh_producer_metrics (p, &m));
  CHECK (m.consumers_live == 0);
  dh_producer_destroy (p);
}

/* §4: holds that count.  A record read twice (seek back) holds its slot
 * twice: the first release does not unprotect the second; a stale or
 * double release is refused. */
static void
test_holds_count (void)
{
  const char *name = test_channel ("holds");
  dh_producer *p = test_producer_holds (name, 64, 4, DH_POLICY_RING, DH_ON_FULL_DROP, 4);
  dh_consumer *c = test_consumer (name, false, DH_START_OLDEST);
  test_write_record (p, 64, 1, 0);
  dh_record first, again;
  CHECK_OK (dh_consumer_next (c, 0, &first));
  CHECK_OK (dh_consumer_seek (c, DH_START_OLDEST));
  CHECK_OK (dh_consumer_next (c, 0, &again));
  CHECK (again.seq == 1 && again.slot == first.slot);
  CHECK_OK (dh_consumer_release (c, &first));
  /* the second hold still protects the slot: the drop-mode producer takes
   * the three others, never this one */
  dh_slot s[3];
  for (int i = 0; i < 3; i++) {
    CHECK_OK (dh_producer_acquire (p, 0, &s[i]));
    CHECK (s[i].index != again.slot);
  }
  dh_slot none;
  CHECK_RC (dh_producer_acquire (p, 0, &none), -EAGAIN);
  CHECK (test_check_pattern (again.data, 64, 1));
  CHECK_OK (dh_consumer_release (c, &again));
  CHECK_RC (dh_consumer_release (c, &again), DH_ESLOT); /* a third release of two reads */
  dh_record stale = again;
  stale.generation++; /* a record of the slot's next use */
  CHECK_RC (dh_consumer_release (c, &stale), DH_ESLOT);
  for (int i = 0; i < 3; i++)
    CHECK_OK (dh_producer_abort (p, &s[i]));
  dh_consumer_detach (c);
  dh_producer_destroy (p);
}

/* §5: polling reports a producer that closed or died, and a polling
 * producer notices dead consumers. */
static void
test_polling_notices (void)
{
  const char *name = test_channel ("poll");
  dh_producer *p = test_producer (name, 64, 2, DH_POLICY_RING, DH_ON_FULL_BLOCK);
  dh_consumer *c = test_consumer (name, false, DH_START_LATEST);
  dh_producer_destroy (p);
  dh_record r;
  CHECK_RC (dh_consumer_next (c, 0, &r), DH_ECLOSED);
  dh_consumer_detach (c);

  test_shared *sh = test_shared_new (2);
  pid_t child = fork ();
  if (child == 0) {
    test_die_with_parent ();
    dh_producer *q = test_producer (name, 64, 2, DH_POLICY_RING, DH_ON_FULL_BLOCK);
    (void) q;
    test_barrier (sh);
    for (;;)
      pause ();
  }
  test_barrier (sh);
  c = test_consumer (name, false, DH_START_LATEST);
  kill (child, SIGKILL);
  CHECK (test_wait (child) == 128 + SIGKILL);
  int rc = -ETIMEDOUT;
  for (int i = 0; i < 200 && rc == -ETIMEDOUT; i++) {
    rc = dh_consumer_next (c, 0, &r);
    test_sleep_ms (5);
  }
  CHECK_RC (rc, DH_EPRODUCERDEAD);
  dh_consumer_detach (c);

  /* a dead consumer holding the only unread slots: a producer that only
   * polls (timeout 0) gets a slot once liveness shows it dead */
  p = test_producer (name, 64, 2, DH_POLICY_RING, DH_ON_FULL_BLOCK);
  child = fork ();
  if (child == 0) {
    dh_consumer *k = test_consumer (name, false, DH_START_LATEST);
    test_barrier (sh);
    for (;;)
      pause ();
    (void) k;
  }
  atomic_store (&sh->arrived, 0);
  test_barrier (sh);
  test_write_record (p, 64, 1, 0);
  test_write_record (p, 64, 2, 0);
  dh_slot s;
  CHECK_RC (dh_producer_acquire (p, 0, &s), -EAGAIN);
  kill (child, SIGKILL);
  CHECK (test_wait (child) == 128 + SIGKILL);
  rc = -EAGAIN;
  for (int i = 0; i < 200 && rc == -EAGAIN; i++) {
    rc = dh_producer_acquire (p, 0, &s);
    test_sleep_ms (5);
  }
  CHECK_OK (rc);
  CHECK_OK (dh_producer_abort (p, &s));
  dh_producer_destroy (p);
}

/* §5: a consumer that does not gate a waiting producer never wakes it:
 * only the gating consumer's progress word moves. */
static void
test_only_the_gate_wakes (void)
{
  const char *name = test_channel ("gate");
  dh_producer *p = test_producer (name, 64, 2, DH_POLICY_RING, DH_ON_FULL_BLOCK);
  dh_consumer *gate = test_consumer (name, false, DH_START_LATEST);
  dh_consumer *fast = test_consumer (name, true, DH_START_LATEST); /* leaky */
  test_write_record (p, 64, 1, 0);
  test_write_record (p, 64, 2, 0);
  job pj = { .p = p };
  pthread_t tp;
  pthread_create (&tp, NULL, producer_acquire, &pj);
  test_sleep_ms (50); /* the producer waits for the gate */
  dh_record r;
  for (int i = 0; i < 2; i++) {
    CHECK_OK (dh_consumer_next (fast, 0, &r));
    CHECK_OK (dh_consumer_release (fast, &r));
  }
  test_sleep_ms (20);
  CHECK (pj.rc == 0 && pj.s.data == NULL); /* still waiting */
  CHECK_OK (dh_consumer_next (gate, 0, &r)); /* the gate moves: the producer goes */
  CHECK_OK (dh_consumer_release (gate, &r));
  pthread_join (tp, NULL);
  CHECK_OK (pj.rc);
  CHECK_OK (dh_producer_abort (p, &pj.s));
  dh_consumer_detach (fast);
  dh_consumer_detach (gate);
  dh_producer_destroy (p);
}

/* A test that hangs names itself: each one runs under a watchdog. */
static const char *volatile running;

static void *
close_producer (void *arg)
{
  dh_producer_close (((job *) arg)->p);
  return NULL;
}

/* The producer closes: consumers see CLOSED while its name still exists
 * (paused before the unlink).  The consumer says DH_ECLOSED once and then
 * waits for a new producer; it used to re-attach to the closed block and
 * say "closed" again. */
static void
test_closed_once (void)
{
  disarm_all ();
  job j = { .name = test_channel ("closed-once") };
  create_producer (&j);
  CHECK_OK (j.rc);
  j.c = test_consumer (j.name, false, DH_START_OLDEST);
  test_write_record (j.p, 16, 1, 0);
  CHECK_OK (dh_consumer_next (j.c, 0, &j.r));
  CHECK_OK (dh_consumer_release (j.c, &j.r));
  pause_point before_unlink;
  arm (&before_unlink, "producer.closed_not_unlinked");
  pthread_t t;
  pthread_create (&t, NULL, close_producer, &j);
  wait_reached (&before_unlink);
  CHECK_RC (dh_consumer_next (j.c, 100, &j.r), DH_ECLOSED);
  /* the name is still there: the next call must wait, not find it again */
  CHECK_RC (dh_consumer_next (j.c, 100, &j.r), -ETIMEDOUT);
  release (&before_unlink);
  pthread_join (t, NULL);
  dh_consumer_detach (j.c);
  dh_producer_destroy (j.p);
  disarm_all ();
}

static void
watchdog (int sig)
{
  (void) sig;
  static const char prefix[] = "interleavings: hung in ";
  if (write (2, prefix, sizeof prefix - 1) < 0 || write (2, running, strlen (running)) < 0
      || write (2, "\n", 1) < 0)
    _exit (3);
  _exit (3);
}

#define RUN(test) \
  do { \
    running = #test; \
    alarm (60); \
    test (); \
  } while (0)

int
main (void)
{
  dh_test_set_hook (hook, NULL);
  signal (SIGALRM, watchdog);
  RUN (test_racing_creators);
  RUN (test_consumer_waits_through_creation);
  RUN (test_replacing_a_stale_block);
  RUN (test_leaving_consumer_counts_once);
  RUN (test_truncated_before_admission);
  RUN (test_reclaim_against_reuse);
  RUN (test_reuse_against_reclaim);
  RUN (test_backed_out_claim_is_kept);
  RUN (test_retire_backs_out_for_a_hold);
  RUN (test_unlock_in_the_window);
  RUN (test_holds_count);
  RUN (test_polling_notices);
  RUN (test_only_the_gate_wakes);
  RUN (test_commit_wakes_own_waiter);
  RUN (test_stopped_consumer);
  RUN (test_unlink_only_what_was_checked);
  RUN (test_closed_once);
  alarm (0);
  puts ("interleavings ok");
  return 0;
}
