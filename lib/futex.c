/* Shared (not FUTEX_PRIVATE) futex waits on words in the control region,
 * so waiters and wakers may live in different processes. */

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "dh_internal.h"

int
dh_futex_wait (_Atomic uint32_t *word, uint32_t expected, uint64_t deadline_ns)
{
  struct timespec rel, *timeout = NULL;
  if (deadline_ns != UINT64_MAX) {
    uint64_t now = dh_now_ns ();
    if (now >= deadline_ns)
      return -ETIMEDOUT;
    uint64_t left = deadline_ns - now;
    rel.tv_sec = (time_t) (left / 1000000000u);
    rel.tv_nsec = (long) (left % 1000000000u);
    timeout = &rel;
  }
  if (syscall (SYS_futex, (uint32_t *) word, FUTEX_WAIT, expected, timeout, NULL, 0) == 0)
    return 0;
  if (errno == EAGAIN)
    return 0; /* the word changed before we slept */
  return -errno;
}

void
dh_futex_wake_all (_Atomic uint32_t *word)
{
  syscall (SYS_futex, (uint32_t *) word, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
}
