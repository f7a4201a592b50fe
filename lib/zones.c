/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Flexible zones: small producer-written areas read as consistent
 * snapshots through a per-zone seqlock.  Zone data lives in the block
 * (read-only for consumers); the producer keeps each sequence privately
 * and never reads the shared one back.  Its bytes are copied as atomic words (release
 * stores, acquire loads: plain moves on x86) so concurrent reads are
 * defined behaviour, and a reader that sees any new word also sees the odd
 * sequence stored before it — the seqlock needs no fences. */
#include <sched.h>
#include <string.h>

#include "dh_internal.h"

/* A reader retries while the producer rewrites the zone, yielding after a
 * few spins, for at most this long. */
#define DH_ZONE_READ_BUDGET_NS (1000u * 1000000u)

static int
check_zone (const dh_block *b, unsigned zone)
{
  if (zone >= b->zone_count)
    return dh_fail (-EINVAL, "%s has %u zones; zone %u does not exist", b->name,
        b->zone_count, zone);
  return 0;
}

/* @seq is the producer's private sequence of this zone. */
int
dh_zone_write (dh_block *b, uint64_t *seq, unsigned zone, const void *data, size_t len)
{
  int rc = check_zone (b, zone);
  if (rc != 0)
    return rc;
  dh_shm_zone *z = &b->hdr->zones[zone];
  if (len > b->zone_size[zone])
    return dh_fail (DH_ETOOBIG, "%zu bytes do not fit zone %u (%u bytes)", len,
        zone, b->zone_size[zone]);
  atomic_store_explicit (&z->seq, *seq + 1, memory_order_relaxed); /* odd: writing */
  dh_store_words (b->base + b->zone_offset[zone], data, len);
  atomic_store_explicit (&z->length, len, memory_order_release);
  *seq += 2;
  /* Even again; pairs with the reader's acquire load of seq. */
  atomic_store_explicit (&z->seq, *seq, memory_order_release);
  dh_relaxed_inc (&b->hdr->metrics.zone_writes, 1);
  return 0;
}

int
dh_zone_read (const dh_block *b, unsigned zone, void *buf, size_t cap,
    size_t *len, uint64_t *version)
{
  int rc = check_zone (b, zone);
  if (rc != 0)
    return rc;
  const dh_shm_zone *z = &b->hdr->zones[zone];
  /* geometry from the validated header copy; only seq and length are read
   * live, and length is checked against the size */
  uint32_t size = b->zone_size[zone];
  uint64_t give_up = 0;
  for (unsigned attempt = 0;; attempt++) {
    if (attempt && attempt % 64 == 0) {
      uint64_t now = dh_now_ns ();
      if (!give_up)
        give_up = now + DH_ZONE_READ_BUDGET_NS;
      else if (now >= give_up)
        break;
      sched_yield ();
    }
    uint64_t s1 = atomic_load_explicit (&z->seq, memory_order_acquire);
    if (s1 & 1) {
      dh_cpu_relax ();
      continue;
    }
    uint64_t n = atomic_load_explicit (&z->length, memory_order_acquire);
    if (n > size)
      n = size + 1; /* torn or corrupt: re-checked below */
    if (n <= size && n <= cap)
      dh_load_words (buf, b->base + b->zone_offset[zone], n);
    if (atomic_load_explicit (&z->seq, memory_order_relaxed) != s1)
      continue;
    if (n > size)
      return dh_fail (DH_ECORRUPT, "zone %u length exceeds its size %u", zone, size);
    *len = n;
    if (version)
      *version = s1;
    if (n > cap)
      return dh_fail (-ENOBUFS, "zone %u holds %llu bytes, buffer has %zu", zone,
          (unsigned long long) n, cap);
    return 0;
  }
  return dh_fail (-EAGAIN, "zone %u is being rewritten too often to read", zone);
}
