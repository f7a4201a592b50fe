/* The shared-memory layout of a DataBlock: the one place it is defined.
 * docs/protocol.md is the prose spec; the field comments here are the
 * reference for offsets.  Every field is fixed width; the static asserts pin
 * the offsets so a change is a deliberate layout version bump. */
#ifndef DH_LAYOUT_H
#define DH_LAYOUT_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "datahub/datahub.h"

#define DH_MAGIC UINT64_C (0x0042554841544144) /* "DATAHUB\0" little-endian */
#define DH_LAYOUT_MAJOR 1
#define DH_LAYOUT_MINOR 1
#define DH_CACHE_LINE 64
#define DH_HEADER_SIZE 4096

/* Limits enforced on create and validated on attach. */
#define DH_MAX_SLOTS 65536u
#define DH_MAX_SLOT_SIZE (UINT64_C (1) << 36) /* 64 GiB */
#define DH_MAX_RING (1u << 20)
#define DH_MAX_ZONE_SIZE (16u << 20)

/* OFD lock bytes (fcntl ranges; they need not lie inside the object). */
#define DH_LOCK_PRODUCER 0
#define DH_LOCK_CONSUMER(i) (1 + (i))

/* Slot state word: generation << 2 | state.  Generations are 62-bit and
 * increase on every acquire, so they never wrap in practice. */
enum { DH_SLOT_FREE = 0, DH_SLOT_WRITING = 1, DH_SLOT_COMMITTED = 2 };
#define DH_SLOT_STATE(w) ((uint32_t) ((w) & 3u))
#define DH_SLOT_GEN(w) ((w) >> 2)
#define DH_SLOT_WORD(gen, st) (((uint64_t) (gen) << 2) | (st))

/* Producer state. */
enum { DH_PRODUCER_NONE = 0, DH_PRODUCER_RUNNING = 1, DH_PRODUCER_CLOSED = 2 };

/* Consumer entry state word: epoch << 8 | state. */
enum {
  DH_CONSUMER_FREE = 0,
  DH_CONSUMER_CLAIMING = 1,   /* new owner initialising */
  DH_CONSUMER_ACTIVE = 2,
  DH_CONSUMER_RECLAIMING = 3, /* producer releasing a dead owner's holds */
};
#define DH_CONSUMER_STATE(w) ((uint32_t) ((w) & 0xffu))
#define DH_CONSUMER_EPOCH(w) ((w) >> 8)
#define DH_CONSUMER_WORD(epoch, st) (((uint64_t) (epoch) << 8) | (st))

/* Header flags. */
#define DH_FLAG_HAS_SECRET 1u
#define DH_FLAG_HAS_SCHEMA 2u
#define DH_FLAG_HUGE_PAGES 4u

/* 256-byte metrics area (review P6), 32 counters updated with relaxed
 * atomics where the event happens.  Consumer-side counters live in each
 * consumer entry (no shared cache line on the read path) and are folded in
 * here when the consumer detaches or is reaped. */
typedef struct {
  /* slot coordination */
  _Atomic uint64_t writer_timeout_count;      /* 0 */
  _Atomic uint64_t writer_blocked_total_ns;   /* 8 */
  _Atomic uint64_t write_lock_contention;     /* 16 claim lost to a reader */
  _Atomic uint64_t writer_waits;              /* 24 producer slept for space */
  _Atomic uint64_t reader_not_ready_count;    /* 32 retired consumers */
  _Atomic uint64_t reader_race_detected;      /* 40 retired consumers */
  _Atomic uint64_t reader_validation_failed;  /* 48 torn/lapped descriptors */
  _Atomic uint64_t reader_peak_count;         /* 56 most holders on a slot */
  /* errors */
  _Atomic uint64_t last_error_timestamp_ns;   /* 64 CLOCK_REALTIME */
  _Atomic uint64_t last_error;                /* 72 code << 32 | sequence */
  _Atomic uint64_t slot_acquire_errors;       /* 80 */
  _Atomic uint64_t slot_commit_errors;        /* 88 */
  _Atomic uint64_t checksum_failures;         /* 96 retired consumers */
  _Atomic uint64_t records_lost;              /* 104 retired consumers */
  _Atomic uint64_t consumers_reaped;          /* 112 */
  _Atomic uint64_t recovery_actions;          /* 120 */
  /* heartbeat and environment */
  _Atomic uint64_t heartbeat_count;           /* 128 */
  _Atomic uint64_t last_heartbeat_ns;         /* 136 CLOCK_MONOTONIC */
  _Atomic uint64_t last_recovery_ns;          /* 144 CLOCK_REALTIME */
  _Atomic uint64_t hugepages;                 /* 152 DH_HUGEPAGES_* */
  /* performance */
  _Atomic uint64_t slots_written;             /* 160 */
  _Atomic uint64_t bytes_written;             /* 168 */
  _Atomic uint64_t slots_read;                /* 176 retired consumers */
  _Atomic uint64_t bytes_read;                /* 184 retired consumers */
  _Atomic uint64_t commits_aborted;           /* 192 */
  _Atomic uint64_t wakeups_sent;              /* 200 FUTEX_WAKE calls */
  _Atomic uint64_t consumer_waits;            /* 208 retired consumers */
  _Atomic uint64_t slots_acquired;            /* 216 */
  _Atomic uint64_t zone_writes;               /* 224 */
  _Atomic uint64_t spinlock_recoveries;       /* 232 */
  _Atomic uint64_t reserved[2];               /* 240 */
} dh_shm_metrics;

/* Spinlock (32 bytes).  owner = participant tag << 32 | kernel tid;
 * participant tag 1 = producer, 2 + i = consumer i. */
typedef struct {
  _Atomic uint64_t owner;       /* 0: 0 = unlocked */
  _Atomic uint32_t recursion;   /* 8: depth, touched only by the owner */
  uint32_t reserved0;           /* 12 */
  _Atomic uint64_t acquired_ns; /* 16: CLOCK_MONOTONIC, for diagnosis */
  uint64_t reserved1;           /* 24 */
} dh_shm_spinlock;

/* Flexible zone descriptor (one cache line).  Data lives in the read-only
 * data region at @offset. */
typedef struct {
  _Atomic uint64_t seq;    /* 0: seqlock, odd while the producer writes */
  _Atomic uint64_t length; /* 8: bytes written, <= size */
  uint64_t offset;         /* 16: from the object start */
  uint32_t size;           /* 24: capacity */
  uint32_t reserved0;      /* 28 */
  uint8_t pad[32];         /* 32 */
} dh_shm_zone;

typedef struct {
  /* line 0: identity */
  _Atomic uint64_t magic;           /* 0: DH_MAGIC, stored last (release) */
  uint16_t layout_major;            /* 8 */
  uint16_t layout_minor;            /* 10 */
  uint32_t header_size;             /* 12: DH_HEADER_SIZE */
  uint64_t total_size;              /* 16: bytes of the object */
  uint64_t session_id;              /* 24: random, new on every create */
  uint64_t created_realtime_ns;     /* 32 */
  uint64_t control_size;            /* 40: [0, control_size) writable by all */
  uint32_t page_size;               /* 48 */
  uint32_t flags;                   /* 52: DH_FLAG_* */
  uint64_t reserved0;               /* 56 */
  /* line 1: configuration */
  uint64_t slot_size;               /* 64 */
  uint64_t slot_stride;             /* 72: payload spacing */
  uint32_t slot_count;              /* 80 */
  uint32_t ring_length;             /* 84: power of two >= slot_count */
  uint32_t max_consumers;           /* 88: 1..64 */
  uint32_t policy;                  /* 92: dh_policy */
  uint32_t on_full;                 /* 96: dh_on_full */
  uint32_t integrity;               /* 100: dh_integrity */
  uint32_t integrity_check;         /* 104: dh_check */
  uint32_t zone_count;              /* 108 */
  uint64_t reserved1[2];            /* 112 */
  /* lines 2-3: zone sizes and region offsets (all derived from the
   * configuration by dh_layout_compute; attach recomputes and compares) */
  uint32_t zone_size[DH_MAX_ZONES]; /* 128 */
  uint64_t off_consumers;           /* 160 */
  uint64_t off_slots;               /* 168 */
  uint64_t off_ring;                /* 176: first byte of the data region */
  uint64_t off_zones;               /* 184 */
  uint64_t off_payload;             /* 192 */
  uint64_t reserved2[7];            /* 200 */
  /* lines 4-5 */
  uint8_t schema_hash[DH_HASH_SIZE];     /* 256: zero if no schema */
  uint8_t secret_verifier[DH_HASH_SIZE]; /* 288: keyed BLAKE2b, never the secret */
  /* line 5: producer liveness */
  _Atomic uint32_t producer_state;       /* 320: DH_PRODUCER_* */
  uint32_t producer_pid;                 /* 324: for display only */
  uint64_t producer_start_ticks;         /* 328: /proc/pid/stat starttime */
  _Atomic uint64_t producer_heartbeat_ns;/* 336: CLOCK_MONOTONIC */
  uint64_t reserved3[5];                 /* 344 */
  /* line 6: publication index and consumer wake-ups */
  _Atomic uint64_t head;            /* 384: last published seq (0 = none) */
  _Atomic uint32_t data_wake;       /* 392: futex word, bumped on publish */
  _Atomic uint32_t data_waiters;    /* 396: consumers in FUTEX_WAIT */
  uint8_t pad6[48];                 /* 400 */
  /* line 7: producer wake-ups */
  _Atomic uint32_t space_wake;      /* 448: futex word, bumped on release */
  _Atomic uint32_t space_waiters;   /* 452: producer threads in FUTEX_WAIT */
  _Atomic uint64_t cursor_epoch;    /* 456: bumped when a cursor moves back
                                       (attach, seek); the producer then
                                       recomputes its lowest-cursor cache */
  uint8_t pad7[48];                 /* 464 */
  dh_shm_metrics metrics;           /* 512 */
  dh_shm_spinlock spinlocks[DH_SPINLOCK_COUNT]; /* 768 */
  dh_shm_zone zones[DH_MAX_ZONES];  /* 1792 */
  /* handover (layout 1.1): the producer moved to a successor block */
  _Atomic uint64_t cutover_seq;     /* 2304: first seq NOT in this block; 0 = none */
  _Atomic uint64_t successor_seq;   /* 2312: seqlock of successor_name */
  char successor_name[DH_NAME_MAX + 1]; /* 2320: shm name of the successor */
  uint8_t reserved4[DH_HEADER_SIZE - 2576]; /* 2576 */
} dh_shm_header;

/* Consumer table entry (two cache lines): line 0 is written by the consumer
 * on every record, line 1 rarely. */
typedef struct {
  _Atomic uint64_t cursor;          /* 0: next seq this consumer will read */
  _Atomic uint64_t heartbeat_ns;    /* 8: CLOCK_MONOTONIC */
  _Atomic uint64_t read;            /* 16 */
  _Atomic uint64_t bytes_read;      /* 24 */
  _Atomic uint64_t lost;            /* 32 */
  _Atomic uint64_t races;           /* 40 */
  _Atomic uint64_t checksum_failures; /* 48 */
  _Atomic uint64_t waits;           /* 56 */
  /* line 1 */
  _Atomic uint64_t state;           /* 64: epoch << 8 | DH_CONSUMER_* */
  uint32_t pid;                     /* 72: display only */
  uint32_t leaky;                   /* 76: 1 = not counted for back-pressure */
  uint64_t start_ticks;             /* 80 */
  uint64_t attached_realtime_ns;    /* 88 */
  _Atomic uint64_t not_ready;       /* 96 */
  uint64_t reserved[3];             /* 104 */
} dh_shm_consumer;

/* Slot state (one cache line per slot). */
typedef struct {
  _Atomic uint64_t state;           /* 0: generation << 2 | DH_SLOT_* */
  _Atomic uint64_t readers;         /* 8: bit i = consumer i holds the slot */
  _Atomic uint64_t commit_seq;      /* 16: seq of the last commit */
  _Atomic uint64_t write_start_ns;  /* 24: CLOCK_MONOTONIC of acquire */
  uint8_t checksum[DH_HASH_SIZE];   /* 32: of the committed payload */
} dh_shm_slot;

/* Commit-ring descriptor (two cache lines).  Written under a per-entry
 * seqlock: seq = 0 while being written, then the record's seq (release). */
typedef struct {
  _Atomic uint64_t seq;             /* 0 */
  _Atomic uint64_t generation;      /* 8: slot generation at commit */
  _Atomic uint64_t size;            /* 16 */
  _Atomic int64_t pts;              /* 24 */
  _Atomic int64_t dts;              /* 32 */
  _Atomic int64_t duration;         /* 40 */
  _Atomic uint64_t offset;          /* 48 */
  _Atomic uint64_t offset_end;      /* 56 */
  _Atomic uint64_t commit_ns;       /* 64 */
  _Atomic uint32_t slot;            /* 72 */
  _Atomic uint32_t kind;            /* 76 */
  _Atomic uint32_t flags;           /* 80 */
  _Atomic uint32_t caps_gen;        /* 84 */
  _Atomic uint64_t user[2];         /* 88 */
  uint64_t reserved[3];             /* 104 */
} dh_shm_desc;

_Static_assert (sizeof (dh_shm_metrics) == 256, "metrics block is 256 bytes");
_Static_assert (sizeof (dh_shm_spinlock) == 32, "spinlock is 32 bytes");
_Static_assert (sizeof (dh_shm_zone) == 64, "zone entry is one line");
_Static_assert (sizeof (dh_shm_header) == DH_HEADER_SIZE, "header is one page");
_Static_assert (offsetof (dh_shm_header, slot_size) == 64, "config on line 1");
_Static_assert (offsetof (dh_shm_header, zone_size) == 128, "zones line 2");
_Static_assert (offsetof (dh_shm_header, off_payload) == 192, "offsets");
_Static_assert (offsetof (dh_shm_header, schema_hash) == 256, "schema");
_Static_assert (offsetof (dh_shm_header, secret_verifier) == 288, "secret");
_Static_assert (offsetof (dh_shm_header, producer_state) == 320, "liveness");
_Static_assert (offsetof (dh_shm_header, head) == 384, "head on own line");
_Static_assert (offsetof (dh_shm_header, space_wake) == 448, "space on own line");
_Static_assert (offsetof (dh_shm_header, metrics) == 512, "metrics");
_Static_assert (offsetof (dh_shm_header, spinlocks) == 768, "spinlocks");
_Static_assert (offsetof (dh_shm_header, zones) == 1792, "zones");
_Static_assert (offsetof (dh_shm_header, successor_name) == 2320, "handover");
_Static_assert (sizeof (dh_shm_consumer) == 128, "consumer entry is 2 lines");
_Static_assert (offsetof (dh_shm_consumer, state) == 64, "consumer line 1");
_Static_assert (sizeof (dh_shm_slot) == 64, "slot state is one line");
_Static_assert (sizeof (dh_shm_desc) == 128, "descriptor is 2 lines");
_Static_assert (sizeof (_Atomic uint64_t) == 8 && alignof (_Atomic uint64_t) == 8,
    "lock-free 64-bit atomics");

/* Where each region starts, derived from the configuration alone. */
typedef struct {
  uint64_t off_consumers, off_slots, off_ring, off_zones, off_payload;
  uint64_t zone_offset[DH_MAX_ZONES];
  uint64_t slot_stride, control_size, total_size;
} dh_layout;

/* Computes the layout; -EOVERFLOW / DH_ECONFIG on impossible values.
 * Used by create and, on attach, to check the header's stored offsets. */
int dh_layout_compute (uint64_t slot_size, uint32_t slot_count,
    uint32_t ring_length, uint32_t max_consumers, uint32_t zone_count,
    const uint32_t *zone_size, uint32_t page_size, dh_layout *out);

#endif /* DH_LAYOUT_H */
