/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Region offsets of a DataBlock, derived from its configuration alone.
 * The producer stores them in the header; attach recomputes them and
 * refuses a header whose stored offsets differ, so no offset read from
 * shared memory is ever trusted on its own. */
#include "dh_internal.h"

static bool
round_up (uint64_t v, uint64_t align, uint64_t *out)
{
  uint64_t r;
  if (__builtin_add_overflow (v, align - 1, &r))
    return false;
  *out = r & ~(align - 1);
  return true;
}

/* *pos += n * size, with overflow detection. */
static bool
advance (uint64_t *pos, uint64_t n, uint64_t size)
{
  uint64_t bytes;
  return !__builtin_mul_overflow (n, size, &bytes)
      && !__builtin_add_overflow (*pos, bytes, pos);
}

static bool
is_pow2 (uint32_t v)
{
  return v && !(v & (v - 1));
}

int
dh_layout_compute (uint64_t slot_size, uint32_t slot_count, uint32_t ring_length,
    uint32_t max_consumers, uint32_t zone_count, const uint32_t *zone_size,
    uint32_t page_size, dh_layout *out)
{
  if (slot_size == 0 || slot_size > DH_MAX_SLOT_SIZE)
    return dh_fail (DH_ECONFIG, "slot size %llu not in 1..%llu",
        (unsigned long long) slot_size, (unsigned long long) DH_MAX_SLOT_SIZE);
  if (slot_count == 0 || slot_count > DH_MAX_SLOTS)
    return dh_fail (DH_ECONFIG, "slot count %u not in 1..%u", slot_count,
        DH_MAX_SLOTS);
  if (!is_pow2 (ring_length) || ring_length < slot_count
      || ring_length > DH_MAX_RING)
    return dh_fail (DH_ECONFIG,
        "ring length %u must be a power of two in %u..%u", ring_length,
        slot_count, DH_MAX_RING);
  if (max_consumers == 0 || max_consumers > DH_MAX_CONSUMERS)
    return dh_fail (DH_ECONFIG, "max consumers %u not in 1..%u", max_consumers,
        DH_MAX_CONSUMERS);
  if (zone_count > DH_MAX_ZONES)
    return dh_fail (DH_ECONFIG, "zone count %u exceeds %u", zone_count,
        DH_MAX_ZONES);
  if (!is_pow2 (page_size) || page_size < DH_CACHE_LINE)
    return dh_fail (DH_ECONFIG, "page size %u is not a power of two", page_size);
  for (uint32_t z = 0; z < DH_MAX_ZONES; z++) {
    uint32_t size = zone_size[z];
    if ((z < zone_count && (size == 0 || size > DH_MAX_ZONE_SIZE))
        || (z >= zone_count && size != 0))
      return dh_fail (DH_ECONFIG, "zone %u size %u not in 1..%u (zones: %u)", z,
          size, DH_MAX_ZONE_SIZE, zone_count);
  }

  dh_layout l = { 0 };
  uint64_t pos = DH_TABLE_OFFSET;
  l.off_table = pos;
  advance (&pos, DH_MAX_CONSUMERS, sizeof (dh_shm_admission));
  l.off_slots = pos;
  if (!advance (&pos, slot_count, sizeof (dh_shm_slot)))
    return dh_fail (-EOVERFLOW, "layout overflows");
  l.off_ring = pos;
  if (!advance (&pos, ring_length, sizeof (dh_shm_desc)))
    return dh_fail (-EOVERFLOW, "layout overflows");
  l.off_zones = pos;
  for (uint32_t z = 0; z < zone_count; z++) {
    uint64_t size;
    l.zone_offset[z] = pos;
    if (!round_up (zone_size[z], DH_CACHE_LINE, &size) || !advance (&pos, 1, size))
      return dh_fail (-EOVERFLOW, "layout overflows");
  }
  /* Slots of at least a page start on page boundaries so upstream
   * allocators (and huge pages) get aligned memory; smaller ones on cache
   * lines so neighbouring slots never share a line. */
  uint64_t align = slot_size >= page_size ? page_size : DH_CACHE_LINE;
  if (!round_up (pos, align, &pos) || !round_up (slot_size, align, &l.slot_stride))
    return dh_fail (-EOVERFLOW, "layout overflows");
  l.off_payload = pos;
  if (!advance (&pos, slot_count, l.slot_stride) || !round_up (pos, page_size, &pos))
    return dh_fail (-EOVERFLOW, "layout overflows: %u slots of %llu bytes",
        slot_count, (unsigned long long) slot_size);
  l.total_size = pos;
  *out = l;
  return 0;
}
