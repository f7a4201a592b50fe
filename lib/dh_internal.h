/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Private declarations shared by the library's source files. */
#ifndef DH_INTERNAL_H
#define DH_INTERNAL_H

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "dh_block_layout.h"
#include "dh_consumer_layout.h"
#include "dh_exchange_layout.h"
#include "dh_testpoint.h"

#define DH_LIKELY(x) __builtin_expect (!!(x), 1)
#define DH_UNLIKELY(x) __builtin_expect (!!(x), 0)
#define DH_CHECK_ARG(cond) \
  do { \
    if (DH_UNLIKELY (!(cond))) \
      return dh_fail (-EINVAL, "invalid argument: %s", #cond); \
  } while (0)

/* Longest block name we accept: leaves room for "@c63" and ".h<n>". */
#define DH_BLOCK_NAME_MAX 240

/* A mapped block as one participant sees it: the producer maps it
 * read-write, consumers and read-only inspectors PROT_READ. */
typedef struct {
  int fd;
  char name[DH_NAME_MAX + 1];
  char origin[DH_NAME_MAX + 1]; /* names the consumer and exchange objects */
  uint8_t *base;
  uint64_t total_size;
  dh_shm_header *hdr;
  dh_shm_admission *table;
  dh_shm_slot *slots;
  dh_shm_desc *ring;
  uint8_t *payload;
  /* configuration, copied once from the validated header */
  uint64_t session_id;
  uint64_t slot_size, slot_stride;
  uint32_t slot_count, ring_mask, max_consumers, max_holds, chain_index;
  dh_policy policy;
  dh_on_full on_full;
  dh_integrity integrity;
  dh_check check;
  bool has_secret;
  uint32_t zone_count;
  uint64_t zone_offset[DH_MAX_ZONES];
  uint32_t zone_size[DH_MAX_ZONES];
  uint8_t hmac_key[DH_HASH_SIZE];  /* zero without a secret */
} dh_block;

/* ---- errors.c ---- */
int dh_fail (int code, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));
void dh_log (dh_log_level level, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));
void dh_record_error (dh_block *b, int code);

/* ---- names.c ---- */
/* "<origin>@c<i>" and "<origin>@x". */
int dh_consumer_object_name (const char *origin, uint32_t index, char *buf, size_t len);
int dh_exchange_object_name (const char *origin, char *buf, size_t len);
/* Unlinks @name only if it still refers to the inode of @fd. */
bool dh_unlink_if_same (int fd, const char *name);
/* Does @name refer to the inode of @fd? */
bool dh_name_is_fd (const char *name, int fd);

/* ---- liveness.c ---- */
int dh_lock_byte (int fd, off_t byte);           /* write lock: 0 or -EAGAIN/-errno */
int dh_read_lock_byte (int fd, off_t byte);      /* read lock: 0 or -EAGAIN/-errno */
void dh_unlock_byte (int fd, off_t byte);
bool dh_byte_locked (int fd, off_t byte);        /* someone else holds it */
uint64_t dh_proc_start_ticks (pid_t pid);
bool dh_producer_alive (const dh_block *b);

/* ---- block.c ---- */
/* The object is there but not a finished block and nobody is making it:
 * attachers retry (a creator passes through this state), and report
 * DH_ECORRUPT only if it outlasts their timeout. */
#define DH_EUNFINISHED (-1999)
int dh_block_create (dh_block *b, const dh_producer_config *cfg, uint32_t max_holds);
/* Publishes the magic: everything written before is visible to attachers. */
void dh_block_publish (dh_block *b);
/* Opens @name read-only and validates it (credentials when @cfg is given).
 * DH_EUNFINISHED, DH_ENOTREADY, -ENOENT: not there yet. */
int dh_block_open (dh_block *b, const char *name, const dh_consumer_config *cfg,
    bool writable);
void dh_block_unmap (dh_block *b);
/* Loads the successor name and session under their seqlock and checks
 * the MAC. */
int dh_block_successor (const dh_block *b, char *out, size_t len, uint64_t *session);
/* Is @next (opened by the name @cur announced with @session) the block
 * the announcement promised: that session, the next chain index, the
 * same owner?  0 or DH_ECORRUPT naming what differs. */
int dh_block_check_successor (const dh_block *cur, const dh_block *next, uint64_t session);
/* What the header of block @name says, from a private copy (pread): for
 * checking a block without mapping it. */
typedef struct {
  uint64_t session_id;
  uint32_t chain_index;
  uid_t uid;
  bool alive;
  char origin[DH_NAME_MAX + 1];
} dh_block_peek;
int dh_block_peek_at (const char *name, dh_block_peek *out);
void dh_store_words (uint8_t *dst, const uint8_t *src, size_t len);
void dh_load_words (uint8_t *dst, const uint8_t *src, size_t len);

/* ---- futex.c ---- */
/* Sleeps while *word == expected (shared futex) and, when @local is not
 * NULL, *local == local_expected (process-private word), until
 * @deadline_ns (CLOCK_MONOTONIC; UINT64_MAX = forever).  Returns 0 when
 * woken or a value changed, -ETIMEDOUT at the deadline, -EINTR. */
int dh_futex_wait (_Atomic uint32_t *word, uint32_t expected, uint64_t deadline_ns);
int dh_futex_wait2 (const _Atomic uint32_t *const *words, const uint32_t *expected,
    unsigned n, _Atomic uint32_t *local, uint32_t local_expected, uint64_t deadline_ns);
void dh_futex_wake_all (const _Atomic uint32_t *word);
void dh_futex_wake_private (_Atomic uint32_t *word);

/* ---- integrity.c ---- */
void dh_secret_verifier (const uint8_t secret[DH_SECRET_SIZE], uint8_t out[DH_HASH_SIZE]);
void dh_hmac_key (const uint8_t secret[DH_SECRET_SIZE], uint8_t out[DH_HASH_SIZE]);
void dh_payload_hash (const dh_block *b, const void *data, uint64_t size,
    uint8_t out[DH_HASH_SIZE]);
void dh_successor_mac (const dh_block *b, uint64_t cutover, uint64_t successor_session,
    const char *name, uint8_t out[DH_HASH_SIZE]);
bool dh_hash_equal (const uint8_t a[DH_HASH_SIZE], const uint8_t b[DH_HASH_SIZE]);
void dh_hex (const uint8_t *bytes, size_t n, char *out); /* out: 2n+1 */

/* ---- peer.c: consumer objects ---- */
/* Consumer side: creates or reuses "<origin>@c<i>" for the lowest free
 * i >= @from, locked, initialised (magic last).  Fills @fd, @obj, @index. */
int dh_peer_create (const char *origin, uint32_t from, mode_t mode,
    const dh_consumer_config *cfg, uint64_t token, int *fd, dh_shm_consumer **obj,
    uint32_t *index);
/* Consumer side: marks it detached, unlinks it (if still ours), unlocks,
 * unmaps. */
void dh_peer_remove (const char *origin, uint32_t index, int fd, dh_shm_consumer *obj);
/* Producer / admin side: opens "<origin>@c<i>" read-only and maps it,
 * under the SIGBUS guard from before the first load (its owner may
 * truncate it at any moment): a fault reads zeros and sets *@faulted
 * (may be NULL).  -ENOENT if absent; -EAGAIN if not initialised yet or no
 * guard entry is free; DH_ECORRUPT if it does not look like a consumer
 * object of index @i. */
int dh_peer_open (const char *origin, uint32_t i, int *fd,
    const dh_shm_consumer **obj, _Atomic int *faulted);
/* Removes "<origin>@c<i>" if nobody owns it, whatever is in it (an
 * object its owner truncated or never finished before it died): what
 * dh_peer_open cannot map is still reclaimed.  True if removed. */
bool dh_peer_reclaim_remnant (const char *origin, uint32_t i);
/* Unguards, unmaps and closes what dh_peer_open gave. */
void dh_peer_close (int fd, const dh_shm_consumer *obj);
/* Removes a dead consumer's object: takes a read lock on its byte (refused
 * while an owner holds the write lock), checks the name still refers to
 * it, unlinks.  True if it was removed. */
bool dh_peer_reclaim (const char *origin, uint32_t i, int fd);
bool dh_peer_alive (int fd);

/* ---- guard.c: SIGBUS guard for mappings others may truncate ---- */
/* Registers [addr, addr+len): a SIGBUS there maps zero pages over the
 * range instead of killing the process, and sets *@faulted. */
int dh_guard_add (const void *addr, size_t len, _Atomic int *faulted);
void dh_guard_remove (const void *addr);

/* ---- exchange.c ---- */
/* Creates (producer; mode from @perms) or opens (consumer) the exchange
 * object of @origin; returns it mapped read-write, guarded. */
int dh_exchange_open (const char *origin, bool create, mode_t perms,
    dh_shm_exchange **out, int *fd);
void dh_exchange_close (dh_shm_exchange *x, int fd, const char *origin, bool remove);
/* Removes the origin's exchange object if it is still the one open as @fd. */
void dh_exchange_unlink (int fd, const char *origin);

/* ---- zones.c ---- */
int dh_zone_write (dh_block *b, uint64_t *seq, unsigned zone, const void *data, size_t len);
int dh_zone_read (const dh_block *b, unsigned zone, void *buf, size_t cap,
    size_t *len, uint64_t *version);

/* ---- spinlock.c ---- */
/* The identity a participant locks with. */
typedef struct {
  dh_shm_exchange *x;
  const dh_block *b;   /* to test the producer's liveness */
  const char *origin;  /* to find consumer objects */
  uint32_t tag;        /* 1 producer, 2 + i consumer i */
  uint64_t token;      /* consumer token (0 for the producer) */
} dh_spin_ctx;
int dh_spin_lock (const dh_spin_ctx *ctx, unsigned idx, int timeout_ms);
int dh_spin_unlock (const dh_spin_ctx *ctx, unsigned idx);

/* ---- metrics.c ---- */
/* The header's counters (no live consumer sums). */
void dh_metrics_from_header (const dh_block *b, dh_metrics *out);
void dh_metrics_reset (dh_block *b);
/* Saturating add of an untrusted counter. */
static inline uint64_t
dh_sat_add (uint64_t a, uint64_t b)
{
  uint64_t r;
  return __builtin_add_overflow (a, b, &r) ? UINT64_MAX : r;
}

/* ---- time and CPU helpers ---- */
static inline uint64_t
dh_now_ns (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

static inline uint64_t
dh_realtime_ns (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_REALTIME, &ts);
  return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

/* Deadline for a timeout in ms: <0 forever, 0 now. */
static inline uint64_t
dh_deadline (int timeout_ms)
{
  if (timeout_ms < 0)
    return UINT64_MAX;
  return dh_now_ns () + (uint64_t) timeout_ms * 1000000u;
}

static inline void
dh_sleep_ns (uint64_t ns)
{
  struct timespec ts = { (time_t) (ns / 1000000000u), (long) (ns % 1000000000u) };
  nanosleep (&ts, NULL);
}

static inline void
dh_cpu_relax (void)
{
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause ();
#elif defined(__aarch64__)
  __asm__ volatile ("yield");
#endif
}

/* Seqlock fences (latest-value policies: the payload is read while the
 * producer may rewrite it).  gcc's TSan does not model fences (-Wtsan);
 * the accesses they order are in another process, which it cannot see
 * anyway, so its builds go without. */
static inline void
dh_acquire_fence (void)
{
#ifndef __SANITIZE_THREAD__
  atomic_thread_fence (memory_order_acquire);
#endif
}

static inline void
dh_release_fence (void)
{
#ifndef __SANITIZE_THREAD__
  atomic_thread_fence (memory_order_release);
#endif
}

static inline void
dh_relaxed_inc (_Atomic uint64_t *counter, uint64_t by)
{
  atomic_fetch_add_explicit (counter, by, memory_order_relaxed);
}

static inline uint8_t *
dh_payload_at (const dh_block *b, uint32_t i)
{
  return b->payload + (uint64_t) i * b->slot_stride;
}

/* Spin briefly before sleeping on a futex: about a microsecond, enough to
 * catch a producer that is mid-commit without burning a core on a 2-CPU
 * machine. */
#define DH_SPIN_ITERATIONS 64
/* While blocked, the producer re-checks the gating consumers' liveness
 * this often. */
#define DH_LIVENESS_SLICE_NS (10u * 1000000u)
/* While waiting for data, a consumer checks producer liveness this often. */
#define DH_PRODUCER_CHECK_NS (50u * 1000000u)
/* The service thread's period when nothing happens. */
#define DH_SERVICE_PERIOD_NS (100u * 1000000u)
/* A consumer's upstream request is looked at no more often than this. */
/* fast retries (2 ms apart) of an object being initialised before the
 * periodic pass takes over */
#define DH_ADMIT_RETRIES 50
/* an ownerless consumer object unchanged for this long is a remnant, not
 * one being made */
#define DH_REMNANT_AGE_NS (2000u * 1000000u)
/* records a consumer may skip in a row before it calls the block corrupt */
#define DH_MAX_SKIPS (1u << 20)
/* blocks in a handover chain, the origin included */
#define DH_MAX_CHAIN 64u
#define DH_REQUEST_INTERVAL_NS (100u * 1000000u)
/* dh_consumer_attach waits this long for a live producer to admit it. */
#define DH_ADMISSION_TIMEOUT_NS (2000u * 1000000u)
/* Default holds a consumer asks for. */
#define DH_DEFAULT_MAX_HELD 4u

#endif /* DH_INTERNAL_H */
