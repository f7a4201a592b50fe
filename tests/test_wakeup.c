/* Waits can be interrupted from another thread (GStreamer unlock), and a
 * producer that closes lets consumers drain what was published first. */
#include "dh_test.h"

typedef struct {
  dh_consumer *c;
  dh_producer *p;
  int rc;
} waiter;

static void *
consumer_waits (void *arg)
{
  waiter *w = arg;
  dh_record r;
  w->rc = dh_consumer_next (w->c, -1, &r);
  if (w->rc == 0)
    CHECK_OK (dh_consumer_release (w->c, &r));
  return NULL;
}

static void *
producer_waits (void *arg)
{
  waiter *w = arg;
  dh_slot s;
  w->rc = dh_producer_acquire (w->p, -1, &s);
  return NULL;
}

int
main (void)
{
  const char *name = test_channel ("wake");
  dh_producer *p = test_producer (name, 64, 2, DH_POLICY_RING, DH_ON_FULL_BLOCK);
  dh_consumer *c = test_consumer (name, false, DH_START_LATEST);

  /* a consumer blocked forever is interrupted */
  waiter w = { .c = c, .p = p, .rc = 1 };
  pthread_t t;
  pthread_create (&t, NULL, consumer_waits, &w);
  test_sleep_ms (50);
  dh_consumer_wakeup (c);
  pthread_join (t, NULL);
  CHECK_RC (w.rc, -ECANCELED);
  CHECK_RC (dh_consumer_next (c, 0, &(dh_record) { 0 }), -ECANCELED);
  dh_consumer_clear_wakeup (c);
  CHECK_RC (dh_consumer_next (c, 0, &(dh_record) { 0 }), -ETIMEDOUT);

  /* a producer blocked on a full pool is interrupted */
  test_write_record (p, 64, 1, 0);
  test_write_record (p, 64, 2, 0);
  pthread_create (&t, NULL, producer_waits, &w);
  test_sleep_ms (50);
  dh_producer_wakeup (p);
  pthread_join (t, NULL);
  CHECK_RC (w.rc, -ECANCELED);
  dh_producer_clear_wakeup (p);

  /* a blocked consumer wakes for a record published by another thread */
  dh_record r;
  for (int i = 0; i < 2; i++) {
    CHECK_OK (dh_consumer_next (c, 0, &r));
    CHECK_OK (dh_consumer_release (c, &r));
  }
  pthread_create (&t, NULL, consumer_waits, &w);
  test_sleep_ms (20);
  test_write_record (p, 64, 3, 0);
  pthread_join (t, NULL);
  CHECK_OK (w.rc);

  /* a consumer asleep when the producer closes gets DH_ECLOSED, not
   * "producer died" (regression: the soak's 16 consumers saw the latter) */
  {
    const char *n2 = "wake-close-test";
    char n2buf[64];
    snprintf (n2buf, sizeof n2buf, "%s-%d", n2, (int) getpid ());
    dh_producer *p2 = test_producer (n2buf, 64, 2, DH_POLICY_RING, DH_ON_FULL_BLOCK);
    dh_consumer *c2 = test_consumer (n2buf, false, DH_START_LATEST);
    waiter w2 = { .c = c2, .p = p2, .rc = 1 };
    pthread_create (&t, NULL, consumer_waits, &w2);
    test_sleep_ms (20); /* asleep, and no liveness check done yet */
    dh_producer_destroy (p2);
    pthread_join (t, NULL);
    CHECK_RC (w2.rc, DH_ECLOSED);
    dh_consumer_detach (c2);
  }

  /* close: published records are drained first, then DH_ECLOSED */
  test_write_record (p, 64, 4, 0);
  dh_producer_destroy (p);
  CHECK_OK (dh_consumer_next (c, 1000, &r));
  CHECK (r.seq == 4 && test_check_pattern (r.data, 64, 4));
  CHECK_OK (dh_consumer_release (c, &r));
  uint64_t t0 = test_now_ns ();
  CHECK_RC (dh_consumer_next (c, 5000, &r), DH_ECLOSED);
  CHECK (test_now_ns () - t0 < 1000000000u); /* at once, not at the timeout */
  dh_consumer_detach (c);
  puts ("wakeup ok");
  return 0;
}
