/* The 64-consumer limit (one hold bit each), metrics get/reset, the
 * heartbeat, and huge pages with their fallback reported in metrics. */
#include "dh_test.h"

static void
test_64_consumers (void)
{
  const char *name = test_channel ("max");
  dh_producer_config pc;
  dh_producer_config_init (&pc);
  pc.name = name;
  pc.slot_size = 64;
  pc.slot_count = 4;
  pc.max_consumers = DH_MAX_CONSUMERS;
  dh_producer *p;
  CHECK_OK (dh_producer_create (&pc, &p));
  dh_consumer *c[DH_MAX_CONSUMERS];
  for (int i = 0; i < DH_MAX_CONSUMERS; i++)
    c[i] = test_consumer (name, false, DH_START_LATEST);
  dh_consumer_config cc;
  dh_consumer_config_init (&cc);
  cc.name = name;
  dh_consumer *extra;
  CHECK_RC (dh_consumer_attach (&cc, &extra), DH_EFULL);
  CHECK (dh_producer_consumer_count (p) == DH_MAX_CONSUMERS);
  /* every consumer holds record 1 at once: all 64 bits of one slot */
  test_write_record (p, 64, 1, 0);
  dh_record r[DH_MAX_CONSUMERS];
  for (int i = 0; i < DH_MAX_CONSUMERS; i++) {
    CHECK_OK (dh_consumer_next (c[i], 0, &r[i]));
    CHECK (r[i].seq == 1 && test_check_pattern (r[i].data, 64, 1));
  }
  dh_metrics m;
  CHECK_OK (dh_producer_metrics (p, &m));
  CHECK (m.reader_peak_count == DH_MAX_CONSUMERS);
  for (int i = 0; i < DH_MAX_CONSUMERS; i++) {
    CHECK_OK (dh_consumer_release (c[i], &r[i]));
    dh_consumer_detach (c[i]);
  }
  /* detached consumers' counters stay in the block */
  CHECK_OK (dh_producer_metrics (p, &m));
  CHECK (m.slots_read == DH_MAX_CONSUMERS && m.consumers_live == 0);
  dh_producer_destroy (p);
}

static void
test_metrics_reset_and_heartbeat (void)
{
  const char *name = test_channel ("metrics");
  dh_producer *p = test_producer (name, 128, 4, DH_POLICY_RING, DH_ON_FULL_BLOCK);
  dh_consumer *c = test_consumer (name, false, DH_START_LATEST);
  for (uint64_t seq = 1; seq <= 3; seq++)
    test_write_record (p, 128, seq, 0);
  dh_record r;
  CHECK_OK (dh_consumer_next (c, 0, &r));
  CHECK_OK (dh_consumer_release (c, &r));
  dh_metrics m;
  CHECK_OK (dh_producer_metrics (p, &m));
  CHECK (m.slots_written == 3 && m.bytes_written == 384 && m.slots_read == 1);
  CHECK (m.head_seq == 3 && m.consumers_live == 1 && m.slots_acquired == 3);
  /* a consumer sees the block's figures as of the producer's last pass */
  CHECK_OK (dh_consumer_metrics (c, &m));
  CHECK (m.slots_written == 3 && m.head_seq == 3 && m.consumers_live == 1);
  uint64_t before = m.last_heartbeat_ns;
  dh_producer_heartbeat (p);
  CHECK_OK (dh_producer_metrics (p, &m));
  CHECK (m.heartbeat_count == 1 && m.last_heartbeat_ns >= before);
  dh_producer_reset_metrics (p);
  CHECK_OK (dh_producer_metrics (p, &m));
  CHECK (m.slots_written == 0 && m.slots_read == 0 && m.heartbeat_count == 0);
  CHECK (m.head_seq == 3); /* the stream itself is untouched */
  CHECK_OK (dh_consumer_next (c, 0, &r));
  CHECK (r.seq == 2);
  CHECK_OK (dh_consumer_release (c, &r));
  dh_consumer_detach (c);
  dh_producer_destroy (p);
}

static void
test_huge_pages (void)
{
  dh_producer_config pc;
  dh_producer_config_init (&pc);
  pc.name = test_channel ("huge");
  pc.slot_size = 4u << 20;
  pc.slot_count = 2;
  pc.huge_pages = true;
  dh_producer *p;
  CHECK_OK (dh_producer_create (&pc, &p));
  dh_metrics m;
  CHECK_OK (dh_producer_metrics (p, &m));
  /* advised or fallen back, never silent: the state is reported */
  CHECK (m.hugepages == DH_HUGEPAGES_ADVISED || m.hugepages == DH_HUGEPAGES_FALLBACK);
  printf ("huge pages: %s\n", m.hugepages == DH_HUGEPAGES_ADVISED ? "advised" : "fallback");
  dh_consumer *c = test_consumer (pc.name, false, DH_START_LATEST);
  test_write_record (p, 4u << 20, 1, 0);
  dh_record r;
  CHECK_OK (dh_consumer_next (c, 0, &r));
  CHECK (test_check_pattern (r.data, 4u << 20, 1));
  CHECK_OK (dh_consumer_release (c, &r));
  dh_consumer_detach (c);
  dh_producer_destroy (p);
  pc.huge_pages = false;
  CHECK_OK (dh_producer_create (&pc, &p));
  CHECK_OK (dh_producer_metrics (p, &m));
  CHECK (m.hugepages == DH_HUGEPAGES_OFF);
  dh_producer_destroy (p);
}

int
main (void)
{
  test_64_consumers ();
  test_metrics_reset_and_heartbeat ();
  test_huge_pages ();
  puts ("limits and metrics ok");
  return 0;
}
