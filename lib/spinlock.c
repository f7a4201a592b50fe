/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The application spinlock pool in the exchange object: owner-tagged,
 * recursive, with timeout, and recovered when the owner dies (its OFD lock
 * byte is gone).  docs/protocol.md §9. */

#include <sched.h>
#include <unistd.h>

#include "dh_internal.h"

/* owner word: token (24 bits) << 40 | participant tag (8) << 32 | tid (32).
 * The token tells a dead consumer's lock from one taken by the next
 * consumer of the same index. */
static uint64_t
my_owner_word (const dh_spin_ctx *ctx)
{
  return (ctx->token & 0xffffffu) << 40 | (uint64_t) ctx->tag << 32
      | (uint32_t) gettid ();
}

static bool
consumer_alive (const dh_spin_ctx *ctx, uint32_t index, uint64_t token24)
{
  int fd;
  const dh_shm_consumer *o;
  if (dh_peer_open (ctx->origin, index, &fd, &o, NULL) != 0)
    return false;
  bool alive = (o->token & 0xffffffu) == token24 && dh_peer_alive (fd);
  dh_peer_close (fd, o);
  return alive;
}

static bool
owner_alive (const dh_spin_ctx *ctx, uint64_t owner)
{
  uint32_t tag = (uint32_t) (owner >> 32) & 0xffu;
  if (tag == ctx->tag && (owner >> 40) == (ctx->token & 0xffffffu))
    return true; /* another thread of ours */
  if (tag == 1)
    return dh_producer_alive (ctx->b);
  if (tag < 2 || tag - 2 >= DH_MAX_CONSUMERS)
    return false; /* garbage owner: treat as dead */
  return consumer_alive (ctx, tag - 2, owner >> 40);
}

int
dh_spin_lock (const dh_spin_ctx *ctx, unsigned idx, int timeout_ms)
{
  if (idx >= DH_SPINLOCK_COUNT)
    return dh_fail (-EINVAL, "spinlock %u does not exist (pool of %u)", idx,
        DH_SPINLOCK_COUNT);
  dh_shm_spinlock *l = &ctx->x->spinlocks[idx];
  uint64_t me = my_owner_word (ctx);
  if (atomic_load_explicit (&l->owner, memory_order_relaxed) == me) {
    atomic_fetch_add_explicit (&l->recursion, 1, memory_order_relaxed);
    return 0;
  }
  uint64_t deadline = dh_deadline (timeout_ms);
  for (unsigned spins = 0;; spins++) {
    uint64_t expected = 0;
    /* Acquire: pairs with the release store of 0 in dh_spin_unlock. */
    if (atomic_compare_exchange_weak_explicit (&l->owner, &expected, me,
            memory_order_acquire, memory_order_relaxed)) {
      atomic_store_explicit (&l->recursion, 1, memory_order_relaxed);
      atomic_store_explicit (&l->acquired_ns, dh_now_ns (), memory_order_relaxed);
      return 0;
    }
    if (spins % 256 == 255) {
      if (expected && !owner_alive (ctx, expected)
          && atomic_compare_exchange_strong_explicit (&l->owner, &expected, me,
              memory_order_acquire, memory_order_relaxed)) {
        atomic_store_explicit (&l->recursion, 1, memory_order_relaxed);
        atomic_store_explicit (&l->acquired_ns, dh_now_ns (), memory_order_relaxed);
        return DH_ELOCKRECOVERED;
      }
      if (dh_now_ns () >= deadline)
        return dh_fail (-ETIMEDOUT, "spinlock %u held by tag %u tid %u", idx,
            (unsigned) (expected >> 32) & 0xffu, (unsigned) expected);
      sched_yield ();
    } else {
      dh_cpu_relax ();
    }
  }
}

int
dh_spin_unlock (const dh_spin_ctx *ctx, unsigned idx)
{
  if (idx >= DH_SPINLOCK_COUNT)
    return dh_fail (-EINVAL, "spinlock %u does not exist", idx);
  dh_shm_spinlock *l = &ctx->x->spinlocks[idx];
  if (atomic_load_explicit (&l->owner, memory_order_relaxed) != my_owner_word (ctx))
    return dh_fail (-EPERM, "spinlock %u is not held by this thread", idx);
  if (atomic_fetch_sub_explicit (&l->recursion, 1, memory_order_relaxed) == 1)
    atomic_store_explicit (&l->owner, 0, memory_order_release);
  return 0;
}
