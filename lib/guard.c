/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* SIGBUS guard for mappings of objects someone else may truncate: the
 * producer's read-only mappings of consumer objects, everyone's mapping of
 * the exchange object.  Accessing a page that a truncation removed raises
 * SIGBUS; instead of letting a hostile consumer kill the producer that
 * way, the handler maps zero pages over the guarded range (the faulting
 * access is then retried and reads zeros) and flags it, and the owner of
 * the mapping evicts the culprit (docs/protocol.md §6).  Faults outside
 * guarded ranges go to the previous handler, or kill as before. */

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "dh_internal.h"

#define DH_GUARD_SLOTS 4096 /* 64 blocks of a chain x 64 consumers */

typedef struct {
  _Atomic uintptr_t start;   /* 0 = free */
  _Atomic size_t len;
  _Atomic int *_Atomic faulted;
} guard_entry;

static guard_entry guards[DH_GUARD_SLOTS];
static pthread_mutex_t guard_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sigaction previous;
static bool installed;

static void
on_sigbus (int sig, siginfo_t *si, void *ctx)
{
  int saved_errno = errno;
  uintptr_t a = (uintptr_t) si->si_addr;
  /* only a fault the kernel raised has a meaningful address (kill() and
   * sigqueue() set si_code <= 0) */
  for (unsigned i = 0; si->si_code > 0 && i < DH_GUARD_SLOTS; i++) {
    /* Pairs with the release store of start in dh_guard_add. */
    uintptr_t start = atomic_load_explicit (&guards[i].start, memory_order_acquire);
    size_t len = atomic_load_explicit (&guards[i].len, memory_order_relaxed);
    if (!start || a < start || a >= start + len)
      continue;
    /* mmap is a plain system call here: what the handler needs is that it
     * does not take locks, and it does not */
    if (mmap ((void *) start, len, PROT_READ | PROT_WRITE,
            MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) == MAP_FAILED)
      break;
    _Atomic int *flag = atomic_load_explicit (&guards[i].faulted, memory_order_relaxed);
    if (flag)
      atomic_store_explicit (flag, 1, memory_order_relaxed);
    errno = saved_errno;
    return;
  }
  errno = saved_errno;
  if (previous.sa_flags & SA_SIGINFO) {
    previous.sa_sigaction (sig, si, ctx);
    return;
  }
  if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) {
    previous.sa_handler (sig);
    return;
  }
  /* not ours: the default action, taken when the access is retried */
  struct sigaction dfl;
  memset (&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  sigaction (SIGBUS, &dfl, NULL);
}

static void
install_locked (void)
{
  if (installed)
    return;
  struct sigaction sa;
  memset (&sa, 0, sizeof sa);
  sa.sa_sigaction = on_sigbus;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset (&sa.sa_mask);
  if (sigaction (SIGBUS, &sa, &previous) == 0)
    installed = true;
}

int
dh_guard_add (const void *addr, size_t len, _Atomic int *faulted)
{
  pthread_mutex_lock (&guard_lock);
  install_locked ();
  int rc = -ENOSPC;
  for (unsigned i = 0; i < DH_GUARD_SLOTS; i++) {
    if (atomic_load_explicit (&guards[i].start, memory_order_relaxed))
      continue;
    atomic_store_explicit (&guards[i].len, len, memory_order_relaxed);
    atomic_store_explicit (&guards[i].faulted, faulted, memory_order_relaxed);
    /* Pairs with the acquire load in on_sigbus. */
    atomic_store_explicit (&guards[i].start, (uintptr_t) addr, memory_order_release);
    rc = 0;
    break;
  }
  pthread_mutex_unlock (&guard_lock);
  return rc;
}

void
dh_guard_remove (const void *addr)
{
  pthread_mutex_lock (&guard_lock);
  for (unsigned i = 0; i < DH_GUARD_SLOTS; i++)
    if (atomic_load_explicit (&guards[i].start, memory_order_relaxed) == (uintptr_t) addr) {
      atomic_store_explicit (&guards[i].start, 0, memory_order_release);
      break;
    }
  pthread_mutex_unlock (&guard_lock);
}
