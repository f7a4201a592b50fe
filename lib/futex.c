/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Futex waits.  Words in shared objects use shared futexes (no
 * FUTEX_PRIVATE_FLAG), so waiters and wakers may live in different
 * processes; waiting on a read-only mapping is allowed.  futex_waitv
 * (Linux 5.16) lets a thread sleep on a shared word and on a private
 * word that dh_*_wakeup bumps, so an unlock is never lost. */

#include <linux/futex.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "dh_internal.h"

#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449
#endif
#ifndef FUTEX_32
#define FUTEX_32 2
struct futex_waitv {
  uint64_t val;
  uint64_t uaddr;
  uint32_t flags;
  uint32_t __reserved;
};
#endif

/* Without futex_waitv, a wait on the shared word lasts at most this long,
 * which bounds how late an unlock is noticed. */
#define DH_FALLBACK_SLICE_NS (5u * 1000000u)

static atomic_int waitv_missing;

static struct timespec *
relative_timeout (uint64_t deadline_ns, struct timespec *rel, int *expired)
{
  *expired = 0;
  if (deadline_ns == UINT64_MAX)
    return NULL;
  uint64_t now = dh_now_ns ();
  if (now >= deadline_ns) {
    *expired = 1;
    return NULL;
  }
  uint64_t left = deadline_ns - now;
  rel->tv_sec = (time_t) (left / 1000000000u);
  rel->tv_nsec = (long) (left % 1000000000u);
  return rel;
}

int
dh_futex_wait (_Atomic uint32_t *word, uint32_t expected, uint64_t deadline_ns)
{
  struct timespec rel;
  int expired;
  struct timespec *timeout = relative_timeout (deadline_ns, &rel, &expired);
  if (expired)
    return -ETIMEDOUT;
  if (syscall (SYS_futex, (uint32_t *) word, FUTEX_WAIT, expected, timeout, NULL, 0) == 0)
    return 0;
  if (errno == EAGAIN)
    return 0; /* the word changed before we slept */
  return -errno;
}

int
dh_futex_wait2 (const _Atomic uint32_t *const *words, const uint32_t *expected,
    unsigned n, _Atomic uint32_t *local, uint32_t local_expected, uint64_t deadline_ns)
{
  if (n == 0 && !local)
    return -EINVAL;
  if (!atomic_load_explicit (&waitv_missing, memory_order_relaxed)) {
    struct futex_waitv v[DH_MAX_CONSUMERS + 1];
    unsigned k = 0;
    for (unsigned i = 0; i < n && k < DH_MAX_CONSUMERS; i++, k++) {
      v[k].uaddr = (uint64_t) (uintptr_t) words[i];
      v[k].val = expected[i];
      v[k].flags = FUTEX_32;
      v[k].__reserved = 0;
    }
    if (local) {
      v[k].uaddr = (uint64_t) (uintptr_t) local;
      v[k].val = local_expected;
      v[k].flags = FUTEX_32 | FUTEX_PRIVATE_FLAG;
      v[k].__reserved = 0;
      k++;
    }
    struct timespec abs, *timeout = NULL;
    if (deadline_ns != UINT64_MAX) {
      abs.tv_sec = (time_t) (deadline_ns / 1000000000u);
      abs.tv_nsec = (long) (deadline_ns % 1000000000u);
      timeout = &abs;
    }
    long rc = syscall (SYS_futex_waitv, v, k, 0, timeout, CLOCK_MONOTONIC);
    if (rc >= 0 || errno == EAGAIN)
      return 0;
    if (errno != ENOSYS)
      return -errno;
    atomic_store_explicit (&waitv_missing, 1, memory_order_relaxed);
  }
  /* Old kernel: sleep on the first shared word in short slices; the
   * caller re-checks its private flag after each. */
  uint64_t slice = dh_now_ns () + DH_FALLBACK_SLICE_NS;
  if (slice > deadline_ns)
    slice = deadline_ns;
  if (local && atomic_load_explicit (local, memory_order_acquire) != local_expected)
    return 0;
  if (n == 0) {
    dh_sleep_ns (DH_FALLBACK_SLICE_NS);
    return dh_now_ns () >= deadline_ns ? -ETIMEDOUT : 0;
  }
  int rc = dh_futex_wait ((_Atomic uint32_t *) words[0], expected[0], slice);
  return rc == -ETIMEDOUT && slice < deadline_ns ? 0 : rc;
}

void
dh_futex_wake_all (const _Atomic uint32_t *word)
{
  syscall (SYS_futex, (uint32_t *) word, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
}

void
dh_futex_wake_private (_Atomic uint32_t *word)
{
  syscall (SYS_futex, (uint32_t *) word, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, INT32_MAX,
      NULL, NULL, 0);
}
