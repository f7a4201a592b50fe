/* LD_PRELOAD shim for tests/test_admin.sh: makes the race of `datahub-admin
 * unlink` happen on cue.  When DATAHUB_TEST_SWAP is "NEW:OLD", the first
 * dh_inspect_close() renames NEW over OLD, as a producer re-creating the
 * block's name right after the admin checked the old one would. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datahub/admin.h"

void
dh_inspect_close (dh_inspector *ins)
{
  static int swapped;
  void (*real) (dh_inspector *);
  /* POSIX's way to take a function from dlsym (ISO C has no object to
   * function pointer cast) */
  *(void **) &real = dlsym (RTLD_NEXT, "dh_inspect_close");
  real (ins);
  const char *swap = getenv ("DATAHUB_TEST_SWAP");
  const char *colon = swap ? strchr (swap, ':') : NULL;
  if (swapped++ || !colon)
    return;
  char from[512];
  snprintf (from, sizeof from, "%.*s", (int) (colon - swap), swap);
  if (rename (from, colon + 1) != 0)
    perror ("admin_swap_shim: rename");
}
