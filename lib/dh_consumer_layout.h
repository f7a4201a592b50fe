/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The consumer object: the only shared memory a consumer writes, created
 * by that consumer and writable by it alone.  The producer maps it
 * read-only and treats every byte as untrusted input (docs/protocol.md §4
 * and §6). */
#ifndef DH_CONSUMER_LAYOUT_H
#define DH_CONSUMER_LAYOUT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "datahub/datahub.h"

#define DH_CONSUMER_MAGIC UINT64_C (0x4d55534e4f434844) /* "DHCONSUM" */
#define DH_CONSUMER_OBJECT_SIZE 4096
#define DH_MAX_HOLDS 64
#define DH_REQUEST_MAX 2032
/* Its OFD lock byte: liveness, and the claim on the object's index. */
#define DH_LOCK_CONSUMER 0

/* Hold entry: 0 = empty, else (block session low 32 bits) << 32 | slot + 1. */
#define DH_HOLD_ENTRY(session, slot) \
  (((uint64_t) (uint32_t) (session) << 32) | ((uint64_t) (slot) + 1))
#define DH_HOLD_SESSION(e) ((uint32_t) ((e) >> 32))
#define DH_HOLD_SLOT(e) ((uint32_t) (e) - 1u) /* meaningful when (uint32_t) e != 0 */

/* detached */
enum { DH_DETACH_NONE = 0, DH_DETACH_LEAVING = 1, DH_DETACH_STOPPED = 2 };

/* Requested leakiness. */
enum { DH_REQ_LEAKY_NO = 0, DH_REQ_LEAKY_YES = 1, DH_REQ_LEAKY_AUTO = 2 };

typedef struct {
  /* line 0: identity and requests, written once before the magic */
  _Atomic uint64_t magic;           /* 0: DH_CONSUMER_MAGIC, stored last */
  uint16_t layout_major;            /* 8 */
  uint16_t layout_minor;            /* 10 */
  uint32_t object_size;             /* 12 */
  uint32_t index;                   /* 16: i of <origin>@c<i> */
  uint32_t pid;                     /* 20: display only */
  uint64_t token;                   /* 24: random per incarnation */
  uint64_t start_ticks;             /* 32: display only */
  uint64_t created_realtime_ns;     /* 40 */
  uint32_t leaky;                   /* 48: DH_REQ_LEAKY_* */
  uint32_t max_held;                /* 52: holds wanted */
  uint32_t start;                   /* 56: dh_start */
  uint32_t reserved0;               /* 60 */
  /* line 1: position, written per record */
  _Atomic uint64_t session;         /* 64: block session of the cursor */
  _Atomic uint64_t cursor;          /* 72: next seq it will read */
  _Atomic uint32_t detached;        /* 80: DH_DETACH_* */
  _Atomic uint32_t chain_index;     /* 84: of the block session is in */
  uint64_t reserved2[5];            /* 88 */
  /* line 2: counters, display only */
  _Atomic uint64_t heartbeat_ns;    /* 128: CLOCK_MONOTONIC */
  _Atomic uint64_t read;            /* 136 */
  _Atomic uint64_t bytes_read;      /* 144 */
  _Atomic uint64_t lost;            /* 152 */
  _Atomic uint64_t races;           /* 160 */
  _Atomic uint64_t checksum_failures; /* 168 */
  _Atomic uint64_t waits;           /* 176 */
  _Atomic uint64_t not_ready;       /* 184 */
  /* line 3: sleeping for data */
  _Atomic uint32_t waiting;         /* 192 */
  uint8_t pad3[60];                 /* 196 */
  /* line 4: futex word bumped when the waiting producer needs us */
  _Atomic uint32_t progress;        /* 256 */
  uint8_t pad4[60];                 /* 260 */
  uint8_t reserved3[192];           /* 320 */
  /* lines 8-15: holds */
  _Atomic uint64_t holds[DH_MAX_HOLDS]; /* 512 */
  /* upstream request, under a seqlock */
  _Atomic uint64_t req_seq;         /* 1024: odd while writing */
  _Atomic uint32_t req_len;         /* 1032 */
  _Atomic uint32_t req_kind;        /* 1036 */
  uint8_t req_data[DH_REQUEST_MAX]; /* 1040 */
  uint8_t reserved4[DH_CONSUMER_OBJECT_SIZE - 3072]; /* 3072 */
} dh_shm_consumer;

_Static_assert (sizeof (dh_shm_consumer) == DH_CONSUMER_OBJECT_SIZE, "one page");
_Static_assert (offsetof (dh_shm_consumer, session) == 64, "position line");
_Static_assert (offsetof (dh_shm_consumer, heartbeat_ns) == 128, "counters line");
_Static_assert (offsetof (dh_shm_consumer, waiting) == 192, "waiting on own line");
_Static_assert (offsetof (dh_shm_consumer, progress) == 256, "progress on own line");
_Static_assert (offsetof (dh_shm_consumer, holds) == 512, "holds");
_Static_assert (offsetof (dh_shm_consumer, req_seq) == 1024, "request");
_Static_assert (offsetof (dh_shm_consumer, req_data) == 1040, "request data");

#endif /* DH_CONSUMER_LAYOUT_H */
