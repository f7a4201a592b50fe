/* Helper processes for tests/test_admin.sh: each builds one situation an
 * operator meets, then waits to be killed (or dies on purpose).
 *   admin_scenario produce NAME      create, write 5 records, wait
 *   admin_scenario hold NAME         attach, hold 2 records, wait
 *   admin_scenario stream NAME       create and write records for ever
 *                                    (a consumer that does not read holds
 *                                    it back)
 *   admin_scenario die-writing NAME  create, write 3 records, acquire a
 *                                    slot and SIGKILL itself mid-write */
#include <signal.h>

#include "dh_test.h"

int
main (int argc, char **argv)
{
  if (argc < 3)
    return 2;
  const char *what = argv[1], *name = argv[2];
  if (strcmp (what, "hold") == 0) {
    dh_consumer *c = test_consumer (name, false, DH_START_OLDEST);
    dh_record r[2];
    CHECK_OK (dh_consumer_next (c, 5000, &r[0]));
    CHECK_OK (dh_consumer_next (c, 5000, &r[1]));
    puts ("holding");
    fflush (stdout);
    for (;;)
      pause ();
  }
  dh_producer *p = test_producer (name, 256, 4, DH_POLICY_RING, DH_ON_FULL_BLOCK);
  if (strcmp (what, "stream") == 0) {
    puts ("ready");
    fflush (stdout);
    for (uint64_t seq = 1;; seq++)
      test_write_record (p, 256, seq, -1);
  }
  int records = strcmp (what, "produce") == 0 ? 5 : 3;
  for (int seq = 1; seq <= records; seq++)
    test_write_record (p, 256, (uint64_t) seq, 1000);
  if (strcmp (what, "die-writing") == 0) {
    dh_slot s;
    CHECK_OK (dh_producer_acquire (p, 1000, &s));
    memset (s.data, 0x55, 100);
    kill (getpid (), SIGKILL);
  }
  puts ("ready");
  fflush (stdout);
  for (;;)
    pause ();
}
