/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Named pause points for deterministic interleaving tests.  Compiled into
 * the test build of the library only (-DDH_TEST_POINTS, tests/meson.build);
 * in the real library they are empty. */
#ifndef DH_TESTPOINT_H
#define DH_TESTPOINT_H

#include <stdbool.h>

#ifdef DH_TEST_POINTS
/* The hook runs at every point; a nonzero return makes the code take its
 * failure path where the point is a DH_TEST_FAIL. */
typedef int (*dh_test_hook_fn) (const char *point, void *user);
void dh_test_set_hook (dh_test_hook_fn fn, void *user);
int dh_test_point (const char *point);
#define DH_TEST_POINT(name) ((void) dh_test_point (name))
#define DH_TEST_FAIL(name) (dh_test_point (name) != 0)
#else
#define DH_TEST_POINT(name) ((void) 0)
#define DH_TEST_FAIL(name) (false)
#endif

#endif /* DH_TESTPOINT_H */
