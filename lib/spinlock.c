/* The shared spinlock pool: owner-tagged, recursive, with timeout, and
 * recovered when the owner dies (its OFD lock byte is gone). */

#include <sched.h>
#include <unistd.h>

#include "dh_internal.h"

/* owner word: epoch (24 bits) << 40 | participant tag (8) << 32 | tid (32).
 * The epoch is the consumer entry's epoch, so a lock held by a dead consumer
 * is not mistaken for one held by the next consumer in the same entry. */
static uint64_t
participant_epoch (const dh_block *b, uint32_t tag)
{
  if (tag < 2)
    return 0;
  uint64_t w = atomic_load_explicit (&b->consumers[tag - 2].state, memory_order_acquire);
  return DH_CONSUMER_EPOCH (w) & 0xffffffu;
}

static uint64_t
my_owner_word (const dh_block *b)
{
  return participant_epoch (b, b->tag) << 40 | (uint64_t) b->tag << 32
      | (uint32_t) gettid ();
}

static bool
owner_alive (const dh_block *b, uint64_t owner)
{
  uint32_t tag = (uint32_t) (owner >> 32) & 0xffu;
  if (tag == 1)
    return dh_producer_alive (b) || b->tag == 1;
  if (tag < 2 || tag - 2 >= b->max_consumers)
    return false; /* garbage owner: treat as dead */
  if (participant_epoch (b, tag) != owner >> 40)
    return false;
  return tag == b->tag || dh_consumer_alive (b, tag - 2);
}

int
dh_spin_lock (dh_block *b, unsigned idx, int timeout_ms)
{
  if (idx >= DH_SPINLOCK_COUNT)
    return dh_fail (-EINVAL, "spinlock %u does not exist (pool of %u)", idx,
        DH_SPINLOCK_COUNT);
  dh_shm_spinlock *l = &b->hdr->spinlocks[idx];
  uint64_t me = my_owner_word (b);
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
      if (expected && !owner_alive (b, expected)
          && atomic_compare_exchange_strong_explicit (&l->owner, &expected, me,
              memory_order_acquire, memory_order_relaxed)) {
        atomic_store_explicit (&l->recursion, 1, memory_order_relaxed);
        atomic_store_explicit (&l->acquired_ns, dh_now_ns (), memory_order_relaxed);
        dh_relaxed_inc (&b->hdr->metrics.spinlock_recoveries, 1);
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
dh_spin_unlock (dh_block *b, unsigned idx)
{
  if (idx >= DH_SPINLOCK_COUNT)
    return dh_fail (-EINVAL, "spinlock %u does not exist", idx);
  dh_shm_spinlock *l = &b->hdr->spinlocks[idx];
  if (atomic_load_explicit (&l->owner, memory_order_relaxed) != my_owner_word (b))
    return dh_fail (-EPERM, "spinlock %u is not held by this thread", idx);
  if (atomic_fetch_sub_explicit (&l->recursion, 1, memory_order_relaxed) == 1)
    atomic_store_explicit (&l->owner, 0, memory_order_release);
  return 0;
}
