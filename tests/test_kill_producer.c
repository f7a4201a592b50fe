/* SIGKILL of the producer mid-write: consumers never read a torn record,
 * notice the death, and resume when a new producer takes over the name
 * (reclaiming the dead one's object).  Seeded random kill times. */
#include <sched.h>

#include "datahub/admin.h"
#include "dh_test.h"

#define RECORD 65536
#define CHUNK 4096
#define CONSUMERS 2
#define DONE 63 /* index of the "test over" flag in test_shared.values */

/* Writes records forever, in chunks with a yield between them, so a kill
 * often lands between acquire and commit with a half-written slot. */
static int
produce_forever (const char *name)
{
  test_die_with_parent ();
  dh_producer *p = test_producer (name, RECORD, 4, DH_POLICY_RING, DH_ON_FULL_DROP);
  static uint8_t record[RECORD];
  for (uint64_t seq = 1;; seq++) {
    dh_slot s;
    CHECK_OK (dh_producer_acquire (p, 1000, &s));
    test_fill_pattern (record, RECORD, seq);
    for (size_t off = 0; off < RECORD; off += CHUNK) {
      memcpy ((uint8_t *) s.data + off, record + off, CHUNK);
      sched_yield ();
    }
    dh_record_info info = { .size = RECORD };
    CHECK_OK (dh_producer_commit (p, &s, &info, NULL));
  }
}

/* Follows producers until the test is over; every record is checked. */
static int
consume (const char *name, test_shared *sh, int idx)
{
  uint64_t session = 0, good = 0, sessions = 0;
  dh_consumer_config cc;
  dh_consumer_config_init (&cc);
  cc.name = name;
  cc.attach_timeout_ms = 100;
  while (!sh->values[DONE]) {
    dh_consumer *c;
    if (dh_consumer_attach (&cc, &c) != 0)
      continue;
    if (dh_consumer_session_id (c) == session) {
      /* still the dead producer's object: wait for the next producer */
      dh_consumer_detach (c);
      test_sleep_ms (5);
      continue;
    }
    session = dh_consumer_session_id (c);
    sessions++;
    for (;;) {
      dh_record r;
      int rc = dh_consumer_next (c, 10000, &r);
      if (rc == DH_EPRODUCERDEAD || rc == DH_ECLOSED)
        break;
      CHECK_OK (rc);
      if (r.info.size != RECORD || !test_check_pattern (r.data, RECORD, r.seq)) {
        fprintf (stderr, "consumer %d: TORN record %" PRIu64 "\n", idx, r.seq);
        return 1;
      }
      CHECK_OK (dh_consumer_release (c, &r));
      good++;
    }
    dh_consumer_detach (c);
  }
  sh->values[idx * 2] = good;
  sh->values[idx * 2 + 1] = sessions;
  return 0;
}

int
main (void)
{
  uint64_t rounds = test_scaled (8) < 3 ? 3 : test_scaled (8);
  const char *name = test_channel ("killp");
  test_shared *sh = test_shared_new (1);
  pid_t cons[CONSUMERS];
  for (int i = 0; i < CONSUMERS; i++)
    if ((cons[i] = fork ()) == 0)
      _exit (consume (name, sh, i));
  srand (1234);
  for (uint64_t round = 0; round < rounds; round++) {
    pid_t prod = fork ();
    if (prod == 0)
      _exit (produce_forever (name));
    test_sleep_ms (200 + (unsigned) (rand () % 200));
    if (round == rounds - 1)
      sh->values[DONE] = 1;
    kill (prod, SIGKILL);
    /* 128 + SIGKILL: it was running; anything else means create failed */
    CHECK (test_wait (prod) == 128 + SIGKILL);
  }
  for (int i = 0; i < CONSUMERS; i++)
    CHECK (test_wait (cons[i]) == 0);
  for (int i = 0; i < CONSUMERS; i++) {
    printf ("consumer %d: %" PRIu64 " intact records over %" PRIu64 " producer "
        "sessions (%" PRIu64 " kills)\n", i, sh->values[i * 2],
        sh->values[i * 2 + 1], rounds);
    CHECK (sh->values[i * 2] > 0 && sh->values[i * 2 + 1] >= 2);
  }
  /* The last producer was killed: its object stays until a new producer
   * reclaims it (or an operator unlinks it). */
  char shm[256];
  CHECK_OK (dh_shm_name (name, shm, sizeof shm));
  shm_unlink (shm);
  /* and what the channel's participants left with it (its exchange) */
  CHECK (dh_recover_leftovers (name) >= 0);
  puts ("kill producer ok");
  return 0;
}
