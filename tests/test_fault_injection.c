/* Seeded fault injection: SIGKILL the producer or a consumer at random
 * moments (mid-write between acquire and commit, while holding records),
 * ITERATIONS times.  After each kill: the block validates (no impossible
 * state), the victim is restarted, and streaming resumes.  At the end no
 * consumer ever read a torn record.
 *   test_fault_injection [ITERATIONS [SEED]]   (scripts/fault-injection) */
#include <sched.h>

#include "datahub/admin.h"
#include "dh_test.h"

#define RECORD 16384
#define CONSUMERS 2
/* test_shared.values */
#define V_TORN 0
#define V_READ 1
#define V_STOP 2

static int
producer_main (const char *name, unsigned seed)
{
  test_die_with_parent ();
  srand (seed);
  dh_producer *p = test_producer (name, RECORD, 6, DH_POLICY_RING, DH_ON_FULL_BLOCK);
  static uint8_t rec[RECORD];
  for (uint64_t seq = 1;; seq++) {
    dh_slot s;
    int rc;
    while ((rc = dh_producer_acquire (p, 200, &s)) == -ETIMEDOUT)
      ;
    CHECK_OK (rc);
    test_fill_pattern (rec, RECORD, seq);
    /* write in pieces, sometimes yielding: kills land mid-write */
    for (size_t off = 0; off < RECORD; off += 4096) {
      memcpy ((uint8_t *) s.data + off, rec + off, 4096);
      if (rand () % 4 == 0)
        sched_yield ();
    }
    dh_record_info info = { .size = RECORD };
    CHECK_OK (dh_producer_commit (p, &s, &info, NULL));
  }
}

static int
consumer_main (const char *name, test_shared *sh, unsigned seed)
{
  test_die_with_parent ();
  srand (seed);
  dh_consumer_config cc;
  dh_consumer_config_init (&cc);
  cc.name = name;
  cc.attach_timeout_ms = 100;
  while (!__atomic_load_n (&sh->values[V_STOP], __ATOMIC_RELAXED)) {
    dh_consumer *c;
    if (dh_consumer_attach (&cc, &c) != 0)
      continue;
    dh_record held[2];
    int n_held = 0;
    for (;;) {
      dh_record r;
      int rc = dh_consumer_next (c, 100, &r);
      if (rc == -ETIMEDOUT) {
        if (__atomic_load_n (&sh->values[V_STOP], __ATOMIC_RELAXED))
          break;
        continue;
      }
      if (rc != 0)
        break; /* producer dead or closed: attach again */
      if (r.info.size != RECORD || !test_check_pattern (r.data, RECORD, r.seq))
        __atomic_fetch_add (&sh->values[V_TORN], 1, __ATOMIC_RELAXED);
      __atomic_fetch_add (&sh->values[V_READ], 1, __ATOMIC_RELAXED);
      /* keep up to two records held for a while: kills land while holding */
      if (n_held < 2 && rand () % 3 == 0) {
        held[n_held++] = r;
      } else {
        CHECK_OK (dh_consumer_release (c, &r));
        if (n_held && rand () % 2 == 0) {
          /* a held record must still be intact when we let it go */
          if (!test_check_pattern (held[n_held - 1].data, RECORD, held[n_held - 1].seq))
            __atomic_fetch_add (&sh->values[V_TORN], 1, __ATOMIC_RELAXED);
          CHECK_OK (dh_consumer_release (c, &held[--n_held]));
        }
      }
    }
    while (n_held)
      dh_consumer_release (c, &held[--n_held]);
    dh_consumer_detach (c);
  }
  return 0;
}

typedef struct {
  int findings, impossible;
} tally;

static void
count_finding (const dh_finding *f, void *user)
{
  tally *t = user;
  t->findings++;
  if (f->kind == DH_FINDING_BAD_STATE || f->kind == DH_FINDING_BAD_CURSOR) {
    t->impossible++;
    fprintf (stderr, "impossible state: %s\n", f->text);
  }
}

/* Validates the block behind the name (retrying while it is re-created). */
static void
validate (const char *name)
{
  for (int attempt = 0; attempt < 50; attempt++) {
    dh_inspector *ins;
    if (dh_inspect_open (name, false, &ins) != 0) {
      test_sleep_ms (2);
      continue;
    }
    tally t = { 0, 0 };
    dh_inspect_validate (ins, count_finding, &t);
    dh_inspect_close (ins);
    CHECK (t.impossible == 0);
    return;
  }
}

static void
wait_progress (test_shared *sh, const char *after)
{
  uint64_t before = __atomic_load_n (&sh->values[V_READ], __ATOMIC_RELAXED);
  uint64_t give_up = test_now_ns () + UINT64_C (10000000000);
  while (__atomic_load_n (&sh->values[V_READ], __ATOMIC_RELAXED) < before + 20) {
    if (test_now_ns () > give_up) {
      fprintf (stderr, "streaming did not resume after %s\n", after);
      exit (1);
    }
    test_sleep_ms (1);
  }
}

int
main (int argc, char **argv)
{
  unsigned iterations = argc > 1 ? (unsigned) atoi (argv[1]) : (unsigned) test_scaled (200);
  unsigned seed = argc > 2 ? (unsigned) atoi (argv[2]) : 20261126u;
  if (iterations < 20)
    iterations = 20;
  const char *name = test_channel ("fault");
  test_shared *sh = test_shared_new (1);
  srand (seed);
  pid_t prod = fork ();
  if (prod == 0)
    _exit (producer_main (name, seed));
  pid_t cons[CONSUMERS];
  for (int i = 0; i < CONSUMERS; i++)
    if ((cons[i] = fork ()) == 0)
      _exit (consumer_main (name, sh, seed + 1 + (unsigned) i));
  wait_progress (sh, "start");
  unsigned kills_p = 0, kills_c = 0;
  for (unsigned it = 0; it < iterations; it++) {
    test_sleep_ms (1 + (unsigned) (rand () % 20));
    bool producer = rand () % 3 == 0;
    int victim = rand () % CONSUMERS;
    pid_t pid = producer ? prod : cons[victim];
    kill (pid, SIGKILL);
    CHECK (test_wait (pid) == 128 + SIGKILL);
    validate (name);
    if (producer) {
      kills_p++;
      if ((prod = fork ()) == 0)
        _exit (producer_main (name, seed + 100 + it));
    } else {
      kills_c++;
      if ((cons[victim] = fork ()) == 0)
        _exit (consumer_main (name, sh, seed + 200 + it));
    }
    wait_progress (sh, producer ? "a producer kill" : "a consumer kill");
  }
  __atomic_store_n (&sh->values[V_STOP], 1, __ATOMIC_RELAXED);
  kill (prod, SIGKILL);
  test_wait (prod);
  for (int i = 0; i < CONSUMERS; i++)
    CHECK (test_wait (cons[i]) == 0);
  printf ("seed %u: %u iterations (%u producer kills, %u consumer kills), %" PRIu64
      " records read, %" PRIu64 " torn\n", seed, iterations, kills_p, kills_c,
      (uint64_t) sh->values[V_READ], (uint64_t) sh->values[V_TORN]);
  CHECK (sh->values[V_TORN] == 0);
  char shm[256];
  CHECK_OK (dh_shm_name (name, shm, sizeof shm));
  shm_unlink (shm);
  /* and what the channel's participants left with it (its exchange) */
  CHECK (dh_recover_leftovers (name) >= 0);
  return 0;
}
