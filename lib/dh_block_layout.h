/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The block: the shared-memory object only the producer writes.  Consumers
 * map it read-only.  docs/protocol.md §3 is the prose spec; the field
 * comments here are the reference for offsets, pinned by static asserts so
 * a change is a deliberate layout version bump.  What a consumer writes is
 * in dh_consumer_layout.h, what everyone may write in dh_exchange_layout.h. */
#ifndef DH_BLOCK_LAYOUT_H
#define DH_BLOCK_LAYOUT_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "datahub/datahub.h"

#define DH_MAGIC UINT64_C (0x0042554841544144)          /* "DATAHUB\0" */
/* Stored first, so a creator killed before it finished leaves an object
 * that is recognisably ours and may be replaced. */
#define DH_MAGIC_CREATING UINT64_C (0x474e495441455243) /* "CREATING" */
#define DH_LAYOUT_MAJOR 2
#define DH_LAYOUT_MINOR 0
#define DH_CACHE_LINE 64
#define DH_HEADER_SIZE 4096
#define DH_TABLE_OFFSET 4096
#define DH_TABLE_SIZE (DH_MAX_CONSUMERS * 64)

/* Limits enforced on create and validated on attach. */
#define DH_MAX_SLOTS 65536u
#define DH_MAX_SLOT_SIZE (UINT64_C (1) << 36) /* 64 GiB */
#define DH_MAX_RING (1u << 20)
#define DH_MAX_ZONE_SIZE (16u << 20)

/* The producer's OFD lock byte on the block. */
#define DH_LOCK_PRODUCER 0

/* Slot state word: generation << 2 | state.  Generations are 62-bit and
 * increase on every claim, so they never wrap in practice. */
enum { DH_SLOT_FREE = 0, DH_SLOT_WRITING = 1, DH_SLOT_COMMITTED = 2 };
#define DH_SLOT_STATE(w) ((uint32_t) ((w) & 3u))
#define DH_SLOT_GEN(w) ((w) >> 2)
#define DH_SLOT_WORD(gen, st) (((uint64_t) (gen) << 2) | (st))

enum { DH_PRODUCER_NONE = 0, DH_PRODUCER_RUNNING = 1, DH_PRODUCER_CLOSED = 2 };

/* Admission table entry states. */
enum { DH_ADMIT_NONE = 0, DH_ADMIT_ADMITTED = 1, DH_ADMIT_EVICTED = 2 };

/* Header flags. */
#define DH_FLAG_HAS_SECRET 1u
#define DH_FLAG_HAS_SCHEMA 2u
#define DH_FLAG_HUGE_PAGES 4u

/* 256-byte metrics area (review P6), counters updated with relaxed atomics
 * where the event happens.  The read-side totals are maintained by the
 * producer from its consumers' (untrusted, display-only) counters. */
typedef struct {
  /* slot coordination */
  _Atomic uint64_t writer_timeout_count;      /* 0 */
  _Atomic uint64_t writer_blocked_total_ns;   /* 8 */
  _Atomic uint64_t write_lock_contention;     /* 16 claim lost to a reader */
  _Atomic uint64_t writer_waits;              /* 24 producer slept for space */
  _Atomic uint64_t reader_not_ready_count;    /* 32 read-side total */
  _Atomic uint64_t reader_race_detected;      /* 40 read-side total */
  _Atomic uint64_t reader_validation_failed;  /* 48 read-side total */
  _Atomic uint64_t reader_peak_count;         /* 56 most consumers admitted */
  /* errors */
  _Atomic uint64_t last_error_timestamp_ns;   /* 64 CLOCK_REALTIME */
  _Atomic uint64_t last_error;                /* 72 code << 32 | sequence */
  _Atomic uint64_t slot_acquire_errors;       /* 80 */
  _Atomic uint64_t slot_commit_errors;        /* 88 */
  _Atomic uint64_t checksum_failures;         /* 96 read-side total */
  _Atomic uint64_t records_lost;              /* 104 read-side total */
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
  _Atomic uint64_t slots_read;                /* 176 read-side total */
  _Atomic uint64_t bytes_read;                /* 184 read-side total */
  _Atomic uint64_t commits_aborted;           /* 192 */
  _Atomic uint64_t wakeups_sent;              /* 200 FUTEX_WAKE calls */
  _Atomic uint64_t consumer_waits;            /* 208 read-side total */
  _Atomic uint64_t slots_acquired;            /* 216 */
  _Atomic uint64_t zone_writes;               /* 224 */
  _Atomic uint64_t spinlock_recoveries;       /* 232 */
  _Atomic uint64_t consumers_evicted;         /* 240 (2.0) */
  _Atomic uint64_t requests_dropped;          /* 248 (2.0) bad upstream requests */
} dh_shm_metrics;

/* Flexible zone descriptor (one cache line).  Geometry comes from the
 * configuration; only the sequence and length are live. */
typedef struct {
  _Atomic uint64_t seq;    /* 0: seqlock, odd while the producer writes */
  _Atomic uint64_t length; /* 8: bytes written, <= size */
  uint8_t pad[48];         /* 16 */
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
  uint32_t page_size;               /* 40 */
  uint32_t flags;                   /* 44: DH_FLAG_* */
  uint32_t chain_index;             /* 48: 0 origin, n = n-th successor */
  uint32_t reserved0;               /* 52 */
  uint64_t reserved1;               /* 56 */
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
  uint32_t max_holds;               /* 112: holds one consumer may get */
  uint32_t reserved2[3];            /* 116 */
  /* lines 2-3: zone sizes and region offsets (derived from the
   * configuration by dh_layout_compute; attach recomputes and compares) */
  uint32_t zone_size[DH_MAX_ZONES]; /* 128 */
  uint64_t off_table;               /* 160 */
  uint64_t off_slots;               /* 168 */
  uint64_t off_ring;                /* 176 */
  uint64_t off_zones;               /* 184 */
  uint64_t off_payload;             /* 192 */
  uint64_t reserved3[7];            /* 200 */
  /* line 4 */
  uint8_t schema_hash[DH_HASH_SIZE];     /* 256: zero if no schema */
  uint8_t secret_verifier[DH_HASH_SIZE]; /* 288: keyed BLAKE2b, never the secret */
  /* line 5: producer liveness */
  _Atomic uint32_t producer_state;       /* 320: DH_PRODUCER_* */
  uint32_t producer_pid;                 /* 324: for display only */
  uint64_t producer_start_ticks;         /* 328: /proc/pid/stat starttime */
  _Atomic uint64_t producer_heartbeat_ns;/* 336: CLOCK_MONOTONIC */
  _Atomic uint32_t producer_live;        /* 344: 1 = live source */
  uint32_t reserved4;                    /* 348 */
  uint64_t reserved5[4];                 /* 352 */
  /* line 6: publication */
  _Atomic uint64_t head;            /* 384: last published seq (0 = none) */
  _Atomic uint32_t data_wake;       /* 392: futex word, low 32 bits of head */
  _Atomic uint32_t admit_wake;      /* 396: futex word, bumped on admission */
  uint8_t pad6[48];                 /* 400 */
  /* line 7: the producer waiting for space */
  _Atomic uint32_t space_waiters;   /* 448: producer threads waiting */
  uint32_t reserved6;               /* 452 */
  _Atomic uint64_t gate_mask;       /* 456: consumers it waits for */
  _Atomic uint64_t gated_since_ns;  /* 464: CLOCK_MONOTONIC, display */
  uint8_t pad7[40];                 /* 472 */
  dh_shm_metrics metrics;           /* 512 */
  dh_shm_zone zones[DH_MAX_ZONES];  /* 768 */
  /* handover: the stream continues in a successor block */
  _Atomic uint64_t cutover_seq;     /* 1280: first seq NOT in this block; 0 = none */
  _Atomic uint64_t successor_seq;   /* 1288: seqlock of successor name and MAC */
  char successor_name[DH_NAME_MAX + 1];  /* 1296 */
  uint8_t successor_mac[DH_HASH_SIZE];   /* 1552 */
  char origin_name[DH_NAME_MAX + 1];     /* 1584: the chain's first block */
  _Atomic uint64_t successor_session;    /* 1840: under successor_seq */
  uint8_t reserved7[DH_HEADER_SIZE - 1848]; /* 1848 */
} dh_shm_header;

/* Admission table entry (one cache line), written by the producer: every
 * field, then the token with release. */
typedef struct {
  _Atomic uint64_t token;           /* 0: admitted incarnation, 0 = none */
  _Atomic uint32_t state;           /* 8: DH_ADMIT_* */
  _Atomic uint32_t quota;           /* 12: holds granted */
  _Atomic uint64_t start_seq;       /* 16: first record kept for it */
  _Atomic uint32_t leaky;           /* 24: 1 = the producer never waits for it */
  _Atomic uint32_t evict_reason;    /* 28: DH_EVICT_* */
  _Atomic uint64_t admitted_realtime_ns; /* 32 */
  uint64_t reserved[3];             /* 40 */
} dh_shm_admission;

enum {
  DH_EVICT_NONE = 0,
  DH_EVICT_GARBAGE = 1,  /* its object stopped making sense */
  DH_EVICT_TRUNCATED = 2,/* its object shrank under the producer's mapping */
  DH_EVICT_ADMIN = 3,    /* datahub-admin evict */
};

/* Slot state (one cache line per slot).  A mirror: the producer keeps the
 * authoritative copy of state and commit_seq in private memory. */
typedef struct {
  _Atomic uint64_t state;           /* 0: generation << 2 | DH_SLOT_* */
  _Atomic uint32_t claim;           /* 8: latest claim attempt number */
  _Atomic uint32_t decided;         /* 12: latest decided claim attempt */
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
_Static_assert (sizeof (dh_shm_zone) == 64, "zone entry is one line");
_Static_assert (sizeof (dh_shm_header) == DH_HEADER_SIZE, "header is one page");
_Static_assert (offsetof (dh_shm_header, slot_size) == 64, "config on line 1");
_Static_assert (offsetof (dh_shm_header, max_holds) == 112, "max holds");
_Static_assert (offsetof (dh_shm_header, zone_size) == 128, "zones line 2");
_Static_assert (offsetof (dh_shm_header, off_payload) == 192, "offsets");
_Static_assert (offsetof (dh_shm_header, schema_hash) == 256, "schema");
_Static_assert (offsetof (dh_shm_header, secret_verifier) == 288, "secret");
_Static_assert (offsetof (dh_shm_header, producer_state) == 320, "liveness");
_Static_assert (offsetof (dh_shm_header, producer_live) == 344, "live flag");
_Static_assert (offsetof (dh_shm_header, head) == 384, "head on own line");
_Static_assert (offsetof (dh_shm_header, space_waiters) == 448, "space on own line");
_Static_assert (offsetof (dh_shm_header, metrics) == 512, "metrics");
_Static_assert (offsetof (dh_shm_header, zones) == 768, "zones");
_Static_assert (offsetof (dh_shm_header, cutover_seq) == 1280, "handover");
_Static_assert (offsetof (dh_shm_header, successor_name) == 1296, "successor");
_Static_assert (offsetof (dh_shm_header, successor_mac) == 1552, "successor mac");
_Static_assert (offsetof (dh_shm_header, origin_name) == 1584, "origin");
_Static_assert (sizeof (dh_shm_admission) == 64, "admission entry is one line");
_Static_assert (DH_TABLE_SIZE == 4096, "admission table is one page");
_Static_assert (sizeof (dh_shm_slot) == 64, "slot state is one line");
_Static_assert (offsetof (dh_shm_slot, checksum) == 32, "slot checksum");
_Static_assert (sizeof (dh_shm_desc) == 128, "descriptor is 2 lines");
_Static_assert (sizeof (_Atomic uint64_t) == 8 && alignof (_Atomic uint64_t) == 8,
    "lock-free 64-bit atomics");

/* Where each region starts, derived from the configuration alone. */
typedef struct {
  uint64_t off_table, off_slots, off_ring, off_zones, off_payload;
  uint64_t zone_offset[DH_MAX_ZONES];
  uint64_t slot_stride, total_size;
} dh_layout;

/* Computes the layout; -EOVERFLOW / DH_ECONFIG on impossible values.
 * Used by create and, on attach, to check the header's stored offsets. */
int dh_layout_compute (uint64_t slot_size, uint32_t slot_count,
    uint32_t ring_length, uint32_t max_consumers, uint32_t zone_count,
    const uint32_t *zone_size, uint32_t page_size, dh_layout *out);

#endif /* DH_BLOCK_LAYOUT_H */
