/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The hook behind DH_TEST_POINT (test builds only). */
#include "dh_testpoint.h"

#ifdef DH_TEST_POINTS
#include <stdatomic.h>
#include <stddef.h>

static _Atomic (dh_test_hook_fn) hook;
static void *_Atomic hook_user;

void
dh_test_set_hook (dh_test_hook_fn fn, void *user)
{
  atomic_store (&hook_user, user);
  atomic_store (&hook, fn);
}

int
dh_test_point (const char *point)
{
  dh_test_hook_fn fn = atomic_load (&hook);
  return fn ? fn (point, atomic_load (&hook_user)) : 0;
}
#else
/* ISO C forbids an empty translation unit. */
typedef int dh_testpoint_unused;
#endif
