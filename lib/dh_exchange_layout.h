/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The exchange object: the one object every participant of a channel may
 * write.  It holds only what they coordinate among themselves (the
 * application spinlock pool); nothing the producer or the library relies
 * on lives here (docs/protocol.md §9). */
#ifndef DH_EXCHANGE_LAYOUT_H
#define DH_EXCHANGE_LAYOUT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "datahub/datahub.h"

#define DH_EXCHANGE_MAGIC UINT64_C (0x474e414843584844) /* "DHXCHANG" */
#define DH_EXCHANGE_OBJECT_SIZE 4096

/* Spinlock (32 bytes).  owner = token (24 bits) << 40 | participant tag (8)
 * << 32 | tid; tag 1 = producer, 2 + i = consumer i. */
typedef struct {
  _Atomic uint64_t owner;       /* 0: 0 = unlocked */
  _Atomic uint32_t recursion;   /* 8: depth, touched only by the owner */
  uint32_t reserved0;           /* 12 */
  _Atomic uint64_t acquired_ns; /* 16: CLOCK_MONOTONIC, for diagnosis */
  uint64_t reserved1;           /* 24 */
} dh_shm_spinlock;

typedef struct {
  _Atomic uint64_t magic;           /* 0 */
  uint16_t layout_major;            /* 8 */
  uint16_t layout_minor;            /* 10 */
  uint32_t object_size;             /* 12 */
  uint64_t reserved[6];             /* 16 */
  dh_shm_spinlock spinlocks[DH_SPINLOCK_COUNT]; /* 64 */
  uint8_t reserved2[DH_EXCHANGE_OBJECT_SIZE - 64 - 32 * DH_SPINLOCK_COUNT];
} dh_shm_exchange;

_Static_assert (sizeof (dh_shm_spinlock) == 32, "spinlock is 32 bytes");
_Static_assert (sizeof (dh_shm_exchange) == DH_EXCHANGE_OBJECT_SIZE, "one page");
_Static_assert (offsetof (dh_shm_exchange, spinlocks) == 64, "spinlocks");

#endif /* DH_EXCHANGE_LAYOUT_H */
