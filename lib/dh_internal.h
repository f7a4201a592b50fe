/* Private declarations shared by the library's source files. */
#ifndef DH_INTERNAL_H
#define DH_INTERNAL_H

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "dh_layout.h"

#define DH_LIKELY(x) __builtin_expect (!!(x), 1)
#define DH_UNLIKELY(x) __builtin_expect (!!(x), 0)
#define DH_CHECK_ARG(cond) \
  do { \
    if (DH_UNLIKELY (!(cond))) \
      return dh_fail (-EINVAL, "invalid argument: %s", #cond); \
  } while (0)

/* A mapped block, as seen by one participant.  The whole object is mapped
 * at @base: the producer maps it writable; a consumer maps [0, control_size)
 * writable and the data region read-only at the same addresses. */
typedef struct {
  int fd;
  char name[DH_NAME_MAX + 1];
  uint8_t *base;
  uint64_t total_size;
  uint64_t control_size;
  dh_shm_header *hdr;
  dh_shm_consumer *consumers;
  dh_shm_slot *slots;
  dh_shm_desc *ring;        /* read-only for consumers */
  uint8_t *payload;         /* read-only for consumers */
  /* configuration, copied once from the validated header */
  uint64_t session_id;
  uint64_t slot_size, slot_stride;
  uint32_t slot_count, ring_mask, max_consumers;
  dh_policy policy;
  dh_on_full on_full;
  dh_integrity integrity;
  dh_check check;
  uint32_t zone_count;
  /* zone geometry from the validated header copy: the live zone table is in
   * the control region, writable by every consumer, so it is never re-read */
  uint64_t zone_offset[DH_MAX_ZONES];
  uint32_t zone_size[DH_MAX_ZONES];
  uint8_t hmac_key[DH_HASH_SIZE];
  uint32_t tag;             /* spinlock owner tag: 1 producer, 2 + i consumer */
} dh_block;

/* ---- errors.c ---- */
int dh_fail (int code, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));
void dh_log (dh_log_level level, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));
void dh_record_error (dh_block *b, int code);

/* ---- block.c ---- */
int dh_block_create (dh_block *b, const dh_producer_config *cfg);
int dh_block_attach (dh_block *b, const dh_consumer_config *cfg);
/* Opens and validates without credentials or registration (admin). */
int dh_block_inspect (dh_block *b, const char *name, bool writable);
void dh_block_unmap (dh_block *b);
int dh_lock_byte (int fd, off_t byte);           /* 0 or -EAGAIN/-errno */
void dh_unlock_byte (int fd, off_t byte);
bool dh_byte_locked (int fd, off_t byte);         /* someone else holds it */
uint64_t dh_proc_start_ticks (pid_t pid);
bool dh_consumer_alive (const dh_block *b, uint32_t i);
bool dh_producer_alive (const dh_block *b);
void dh_clear_holds (dh_block *b, uint32_t i);
void dh_store_words (uint8_t *dst, const uint8_t *src, size_t len);
void dh_load_words (uint8_t *dst, const uint8_t *src, size_t len);

/* ---- futex.c ---- */
/* Sleeps while *word == expected, until @deadline_ns (CLOCK_MONOTONIC;
 * UINT64_MAX = forever).  Returns 0 when woken or the value changed,
 * -ETIMEDOUT at the deadline, -EINTR on a signal. */
int dh_futex_wait (_Atomic uint32_t *word, uint32_t expected, uint64_t deadline_ns);
void dh_futex_wake_all (_Atomic uint32_t *word);

/* ---- integrity.c ---- */
void dh_secret_verifier (const uint8_t secret[DH_SECRET_SIZE], uint8_t out[DH_HASH_SIZE]);
void dh_hmac_key (const uint8_t secret[DH_SECRET_SIZE], uint8_t out[DH_HASH_SIZE]);
void dh_payload_hash (const dh_block *b, const void *data, uint64_t size,
    uint8_t out[DH_HASH_SIZE]);
bool dh_hash_equal (const uint8_t a[DH_HASH_SIZE], const uint8_t b[DH_HASH_SIZE]);
void dh_hex (const uint8_t *bytes, size_t n, char *out); /* out: 2n+1 */

/* ---- metrics.c ---- */
void dh_metrics_snapshot (const dh_block *b, dh_metrics *out);
void dh_metrics_reset (dh_block *b);
void dh_retire_consumer_counters (dh_block *b, uint32_t i);

/* ---- recovery.c ---- */
/* Releases entries, holds and cursors of dead consumers; wakes a waiting
 * producer.  Returns how many were released. */
int dh_reap_dead_consumers (dh_block *b);
void dh_wake_space (dh_shm_header *h);

/* ---- zones.c ---- */
int dh_zone_write (dh_block *b, unsigned zone, const void *data, size_t len);
int dh_zone_read (const dh_block *b, unsigned zone, void *buf, size_t cap,
    size_t *len, uint64_t *version);

/* ---- spinlock.c ---- */
int dh_spin_lock (dh_block *b, unsigned idx, int timeout_ms);
int dh_spin_unlock (dh_block *b, unsigned idx);

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
dh_cpu_relax (void)
{
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause ();
#elif defined(__aarch64__)
  __asm__ volatile ("yield");
#endif
}

static inline void
dh_relaxed_inc (_Atomic uint64_t *counter, uint64_t by)
{
  atomic_fetch_add_explicit (counter, by, memory_order_relaxed);
}

static inline dh_shm_slot *
dh_slot_at (const dh_block *b, uint32_t i)
{
  return &b->slots[i];
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
/* While blocked, the producer re-checks consumer liveness this often. */
#define DH_LIVENESS_SLICE_NS (10u * 1000000u)
/* While waiting for data, a consumer checks producer liveness this often. */
#define DH_PRODUCER_CHECK_NS (50u * 1000000u)

#endif /* DH_INTERNAL_H */
