/* Tiny test helpers: checks that report file:line, unique channel names,
 * fork helpers and a process-shared barrier.  Exit codes: 0 pass, 1 fail,
 * 77 skip (meson's convention). */
#ifndef DH_TEST_H
#define DH_TEST_H

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "datahub/datahub.h"

#define CHECK(cond) \
  do { \
    if (!(cond)) { \
      fprintf (stderr, "%s:%d: [%d] check failed: %s\n", __FILE__, __LINE__, \
          (int) getpid (), #cond); \
      exit (1); \
    } \
  } while (0)

/* rc must be 0; prints the library's detail otherwise. */
#define CHECK_OK(expr) \
  do { \
    int rc_ = (expr); \
    if (rc_ != 0) { \
      fprintf (stderr, "%s:%d: [%d] %s = %d (%s: %s)\n", __FILE__, __LINE__, \
          (int) getpid (), #expr, rc_, dh_strerror (rc_), dh_error_detail ()); \
      exit (1); \
    } \
  } while (0)

#define CHECK_RC(expr, want) \
  do { \
    int rc_ = (expr); \
    if (rc_ != (want)) { \
      fprintf (stderr, "%s:%d: [%d] %s = %d (%s), expected %d (%s); detail: %s\n", \
          __FILE__, __LINE__, (int) getpid (), #expr, rc_, dh_strerror (rc_), \
          (want), dh_strerror (want), dh_error_detail ()); \
      exit (1); \
    } \
  } while (0)

/* A channel name unique to this test process, so tests run in parallel. */
static inline const char *
test_channel (const char *what)
{
  static char buf[128];
  snprintf (buf, sizeof buf, "test-%s-%d", what, (int) getpid ());
  return buf;
}

static inline uint64_t
test_now_ns (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

/* Work is scaled down under sanitizers (DH_TEST_SCALE=10 divides counts
 * by ten); the plain build runs the full counts the issue asks for. */
static inline uint64_t
test_scaled (uint64_t n)
{
  const char *s = getenv ("DH_TEST_SCALE");
  uint64_t div = s ? strtoull (s, NULL, 10) : 1;
  if (div < 1)
    div = 1;
  return n / div > 0 ? n / div : 1;
}

/* Fills @len bytes with a pattern that depends on @seq and the position, so
 * a torn, stale or misplaced record is detected by test_check_pattern. */
static inline void
test_fill_pattern (void *dst, uint64_t len, uint64_t seq)
{
  uint8_t *p = dst;
  uint64_t i = 0, x = seq * UINT64_C (0x9E3779B97F4A7C15);
  for (; i + 8 <= len; i += 8) {
    uint64_t w = x ^ i;
    memcpy (p + i, &w, 8);
  }
  for (; i < len; i++)
    p[i] = (uint8_t) (seq + i);
}

static inline int
test_check_pattern (const void *src, uint64_t len, uint64_t seq)
{
  const uint8_t *p = src;
  uint64_t i = 0, x = seq * UINT64_C (0x9E3779B97F4A7C15);
  for (; i + 8 <= len; i += 8) {
    uint64_t w;
    memcpy (&w, p + i, 8);
    if (w != (x ^ i))
      return 0;
  }
  for (; i < len; i++)
    if (p[i] != (uint8_t) (seq + i))
      return 0;
  return 1;
}

/* Shared state for a multi-process test, in anonymous shared memory made
 * before fork: a one-shot barrier and a few values. */
typedef struct {
  unsigned parties;
  _Atomic unsigned arrived;
  volatile uint64_t values[64];
} test_shared;

static inline test_shared *
test_shared_new (unsigned parties)
{
  test_shared *s = mmap (NULL, sizeof *s, PROT_READ | PROT_WRITE,
      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  CHECK (s != MAP_FAILED);
  memset ((void *) s, 0, sizeof *s);
  s->parties = parties;
  return s;
}

/* Waits until every party arrived; fails (instead of hanging) after 60 s,
 * e.g. when a child died before reaching it. */
static inline void
test_barrier (test_shared *s)
{
  atomic_fetch_add (&s->arrived, 1);
  uint64_t give_up = test_now_ns () + UINT64_C (60000000000);
  while (atomic_load (&s->arrived) < s->parties) {
    CHECK (test_now_ns () < give_up);
    struct timespec ts = { 0, 200000 };
    nanosleep (&ts, NULL);
  }
}

/* In a forked child: die with the test process, so a failing test never
 * leaves producers or consumers running behind it. */
static inline void
test_die_with_parent (void)
{
  prctl (PR_SET_PDEATHSIG, SIGKILL);
}

/* Waits for @pid; returns its exit code, or 128 + signal. */
static inline int
test_wait (pid_t pid)
{
  int status;
  while (waitpid (pid, &status, 0) < 0)
    if (errno != EINTR)
      return -1;
  if (WIFEXITED (status))
    return WEXITSTATUS (status);
  return 128 + WTERMSIG (status);
}

static inline void
test_sleep_ms (unsigned ms)
{
  struct timespec ts = { ms / 1000, (long) (ms % 1000) * 1000000L };
  nanosleep (&ts, NULL);
}

/* @max_holds: holds one consumer may be granted (0 = the default, half
 * the slots). */
static inline dh_producer *
test_producer_holds (const char *name, uint64_t slot_size, uint32_t slots,
    dh_policy policy, dh_on_full on_full, uint32_t max_holds)
{
  dh_producer_config pc;
  dh_producer_config_init (&pc);
  pc.name = name;
  pc.slot_size = slot_size;
  pc.slot_count = slots;
  pc.policy = policy;
  pc.on_full = on_full;
  pc.max_holds = max_holds;
  dh_producer *p = NULL;
  CHECK_OK (dh_producer_create (&pc, &p));
  return p;
}

static inline dh_producer *
test_producer (const char *name, uint64_t slot_size, uint32_t slots,
    dh_policy policy, dh_on_full on_full)
{
  return test_producer_holds (name, slot_size, slots, policy, on_full, 0);
}

static inline dh_consumer *
test_consumer (const char *name, bool leaky, dh_start start)
{
  dh_consumer_config cc;
  dh_consumer_config_init (&cc);
  cc.name = name;
  cc.leaky = leaky;
  cc.start = start;
  cc.attach_timeout_ms = 5000;
  dh_consumer *c = NULL;
  CHECK_OK (dh_consumer_attach (&cc, &c));
  return c;
}

/* A consumer registered on @name with defaults, not waiting for a
 * producer (one started before its producer). */
static inline dh_consumer *
test_registered_consumer (const char *name)
{
  dh_consumer_config cc;
  dh_consumer_config_init (&cc);
  cc.name = name;
  dh_consumer *c = NULL;
  CHECK_OK (dh_consumer_open (&cc, &c));
  return c;
}

/* Reads the next record of @c: it must be record @seq of @size bytes
 * with its pattern. */
static inline void
test_read_record (dh_consumer *c, uint64_t size, uint64_t seq)
{
  dh_record r;
  CHECK_OK (dh_consumer_next (c, 1000, &r));
  CHECK (r.seq == seq && r.info.size == size && test_check_pattern (r.data, size, seq));
  CHECK_OK (dh_consumer_release (c, &r));
}

/* Acquire, fill with the pattern of @seq (the seq the commit will get, for
 * a single-threaded producer), commit, and check the seq. */
static inline void
test_write_record (dh_producer *p, uint64_t size, uint64_t seq, int timeout_ms)
{
  dh_slot s;
  CHECK_OK (dh_producer_acquire (p, timeout_ms, &s));
  test_fill_pattern (s.data, size, seq);
  dh_record_info info = { .size = size, .pts = (int64_t) seq };
  uint64_t got;
  CHECK_OK (dh_producer_commit (p, &s, &info, &got));
  CHECK (got == seq);
}

#endif /* DH_TEST_H */
