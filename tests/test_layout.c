/* The layout: fixed offsets (also pinned by static asserts), alignment of
 * regions and slots, and rejection of impossible configurations. */
#include "dh_block_layout.h"
#include "dh_consumer_layout.h"
#include "dh_test.h"

static dh_layout
compute (uint64_t slot_size, uint32_t slots, uint32_t ring, uint32_t consumers)
{
  uint32_t zones[DH_MAX_ZONES] = { 100, 4096 };
  dh_layout l;
  CHECK_OK (dh_layout_compute (slot_size, slots, ring, consumers, 2, zones, 4096, &l));
  return l;
}

int
main (void)
{
  CHECK (offsetof (dh_shm_header, magic) == 0);
  CHECK (offsetof (dh_shm_header, head) % DH_CACHE_LINE == 0);
  CHECK (offsetof (dh_shm_header, space_waiters) % DH_CACHE_LINE == 0);
  CHECK (offsetof (dh_shm_consumer, cursor) / DH_CACHE_LINE
      != offsetof (dh_shm_consumer, waiting) / DH_CACHE_LINE);
  CHECK (offsetof (dh_shm_consumer, holds) % DH_CACHE_LINE == 0);
  CHECK (offsetof (dh_shm_header, metrics) % DH_CACHE_LINE == 0);
  CHECK (offsetof (dh_shm_metrics, hugepages) == 152);
  CHECK (offsetof (dh_shm_metrics, spinlock_recoveries) == 232);
  CHECK (offsetof (dh_shm_desc, slot) == 72);
  CHECK (offsetof (dh_shm_slot, checksum) == 32);

  /* Small slots: cache-line stride; the admission table is one page. */
  dh_layout l = compute (100, 8, 32, 4);
  CHECK (l.slot_stride == 128);
  CHECK (l.off_table == DH_HEADER_SIZE);
  CHECK (l.off_slots == DH_HEADER_SIZE + 4096);
  CHECK (l.off_ring == l.off_slots + 8 * sizeof (dh_shm_slot));
  CHECK (l.off_zones == l.off_ring + 32 * sizeof (dh_shm_desc));
  CHECK (l.zone_offset[1] == l.zone_offset[0] + 128);
  CHECK (l.off_payload % 64 == 0);
  CHECK (l.total_size % 4096 == 0 && l.total_size >= l.off_payload + 8 * 128);

  /* Page-sized and larger slots are page aligned. */
  l = compute (5000, 4, 4, 1);
  CHECK (l.slot_stride == 8192 && l.off_payload % 4096 == 0);
  l = compute (8u << 20, 4, 8, 16);
  CHECK (l.slot_stride == (8u << 20) && l.total_size >= 4 * (8u << 20));

  /* Rejected configurations. */
  uint32_t zones[DH_MAX_ZONES] = { 0 };
  dh_layout x;
  CHECK_RC (dh_layout_compute (0, 8, 8, 1, 0, zones, 4096, &x), DH_ECONFIG);
  CHECK_RC (dh_layout_compute (64, 0, 8, 1, 0, zones, 4096, &x), DH_ECONFIG);
  CHECK_RC (dh_layout_compute (64, 8, 12, 1, 0, zones, 4096, &x), DH_ECONFIG);
  CHECK_RC (dh_layout_compute (64, 16, 8, 1, 0, zones, 4096, &x), DH_ECONFIG);
  CHECK_RC (dh_layout_compute (64, 8, 8, 65, 0, zones, 4096, &x), DH_ECONFIG);
  CHECK_RC (dh_layout_compute (64, 8, 8, 0, 0, zones, 4096, &x), DH_ECONFIG);
  CHECK_RC (dh_layout_compute (64, 8, 8, 1, 9, zones, 4096, &x), DH_ECONFIG);
  CHECK_RC (dh_layout_compute (64, 8, 8, 1, 1, zones, 4096, &x), DH_ECONFIG);
  zones[3] = 10; /* size beyond zone_count */
  CHECK_RC (dh_layout_compute (64, 8, 8, 1, 1, zones, 4096, &x), DH_ECONFIG);
  zones[3] = 0;
  CHECK_RC (dh_layout_compute (UINT64_C (1) << 40, 8, 8, 1, 0, zones, 4096, &x), DH_ECONFIG);
  CHECK_RC (dh_layout_compute (64, 8, 8, 1, 0, zones, 1000, &x), DH_ECONFIG);
  /* The largest legal configuration computes without overflow. */
  CHECK_OK (dh_layout_compute (DH_MAX_SLOT_SIZE, DH_MAX_SLOTS, DH_MAX_RING, 64, 0,
      zones, 4096, &x));
  CHECK (x.total_size > (uint64_t) DH_MAX_SLOTS * DH_MAX_SLOT_SIZE);
  printf ("layout ok: header %zu, admission entry %zu, consumer object %zu, slot %zu, "
      "descriptor %zu bytes\n", sizeof (dh_shm_header), sizeof (dh_shm_admission),
      sizeof (dh_shm_consumer), sizeof (dh_shm_slot), sizeof (dh_shm_desc));
  return 0;
}
