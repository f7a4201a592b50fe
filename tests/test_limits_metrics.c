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

/* Attaches a consumer to @name asking for 8 holds; the holds granted. */
static uint32_t
attach_quota (const char *name, dh_leaky leaky, dh_consumer **out)
{
  dh_consumer_config cc;
  dh_consumer_config_init (&cc);
  cc.name = name;
  cc.leaky = leaky;
  cc.max_held = 8;
  CHECK_OK (dh_consumer_attach (&cc, out));
  dh_consumer_stats st;
  dh_consumer_stats_get (*out, &st);
  return st.quota;
}

/* Consumers that keep every record they were granted still leave a live
 * producer a slot to write (drop mode): grants add up to slots - 1, and a
 * consumer beyond that gets the one hold a read needs while it takes its
 * record (datahubsrc then copies every buffer). */
static void
test_holds_leave_a_slot (void)
{
  const char *name = test_channel ("budget");
  dh_producer *p = test_producer (name, 64, 8, DH_POLICY_RING, DH_ON_FULL_DROP);
  dh_consumer *c[3];
  uint32_t quota[3];
  for (int i = 0; i < 3; i++)
    quota[i] = attach_quota (name, DH_LEAKY_YES, &c[i]);
  printf ("holds granted of 8 slots: %u, %u, %u\n", quota[0], quota[1], quota[2]);
  CHECK (quota[0] == 4 && quota[1] == 3 && quota[2] == 1);
  /* the first two keep all they were granted, from different places in
   * the stream (7 slots); the third reads every record as it comes */
  dh_record kept[2][4];
  uint32_t n[2] = { 0, 0 };
  uint64_t third_read = 0;
  for (uint64_t seq = 1; seq <= 200; seq++) {
    test_write_record (p, 64, seq, 1000); /* never waits for them */
    for (int i = 0; i < 2; i++) {
      if (seq > (uint64_t) i * 4 && n[i] < quota[i]) {
        if (n[i] == 0)
          CHECK_OK (dh_consumer_seek (c[i], DH_START_LATEST));
        CHECK_OK (dh_consumer_next (c[i], 0, &kept[i][n[i]]));
        n[i]++;
      }
    }
    dh_record r;
    CHECK_OK (dh_consumer_next (c[2], 0, &r));
    CHECK (test_check_pattern (r.data, 64, r.seq));
    CHECK_OK (dh_consumer_release (c[2], &r));
    third_read++;
  }
  CHECK (n[0] == 4 && n[1] == 3 && third_read == 200);
  for (int i = 0; i < 2; i++) {
    for (uint32_t k = 0; k < n[i]; k++) {
      CHECK (test_check_pattern (kept[i][k].data, 64, kept[i][k].seq)); /* intact */
      CHECK_OK (dh_consumer_release (c[i], &kept[i][k]));
    }
  }
  for (int i = 0; i < 3; i++)
    dh_consumer_detach (c[i]);
  dh_producer_destroy (p);
}

/* Consumers the producer waits for are granted what they ask (up to
 * max_holds) whatever the others hold: it waits for them anyway, and the
 * records caught-up consumers keep are the same newest ones.  Their grants
 * do not eat the budget of the leaky consumers. */

static void
test_waited_for_consumers_outside_the_budget (void)
{
  const char *name = test_channel ("waited");
  dh_producer *p = test_producer (name, 64, 8, DH_POLICY_RING, DH_ON_FULL_BLOCK);
  dh_consumer *c[6];
  uint32_t quota[6];
  for (int i = 0; i < 4; i++)
    quota[i] = attach_quota (name, DH_LEAKY_NO, &c[i]);
  quota[4] = attach_quota (name, DH_LEAKY_YES, &c[4]);
  quota[5] = attach_quota (name, DH_LEAKY_YES, &c[5]);
  printf ("holds granted of 8 slots: waited-for %u, %u, %u, %u; leaky %u, %u\n",
      quota[0], quota[1], quota[2], quota[3], quota[4], quota[5]);
  for (int i = 0; i < 4; i++)
    CHECK (quota[i] == 4); /* max_holds: half the slots */
  CHECK (quota[4] == 4 && quota[5] == 3);
  /* every waited-for consumer keeps its four newest records: the same
   * four, so the producer still has slots to write */
  for (uint64_t seq = 1; seq <= 4; seq++)
    test_write_record (p, 64, seq, 0);
  dh_record kept[4][4];
  for (int i = 0; i < 4; i++)
    for (int k = 0; k < 4; k++) {
      CHECK_OK (dh_consumer_next (c[i], 0, &kept[i][k]));
      CHECK (kept[i][k].seq == (uint64_t) k + 1);
    }
  for (int i = 4; i < 6; i++)
    dh_consumer_detach (c[i]);
  for (uint64_t seq = 5; seq <= 8; seq++)
    test_write_record (p, 64, seq, 1000);
  for (int i = 0; i < 4; i++) {
    for (int k = 0; k < 4; k++) {
      CHECK (test_check_pattern (kept[i][k].data, 64, kept[i][k].seq));
      CHECK_OK (dh_consumer_release (c[i], &kept[i][k]));
    }
    dh_consumer_detach (c[i]);
  }
  dh_producer_destroy (p);

  /* in drop mode nobody is waited for: leaky=no shares the budget too */
  name = test_channel ("waited-drop");
  p = test_producer (name, 64, 8, DH_POLICY_RING, DH_ON_FULL_DROP);
  quota[0] = attach_quota (name, DH_LEAKY_NO, &c[0]);
  quota[1] = attach_quota (name, DH_LEAKY_NO, &c[1]);
  printf ("drop mode, leaky=no: %u, %u\n", quota[0], quota[1]);
  CHECK (quota[0] == 4 && quota[1] == 3);
  dh_consumer_detach (c[0]);
  dh_consumer_detach (c[1]);
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
  test_holds_leave_a_slot ();
  test_waited_for_consumers_outside_the_budget ();
  test_metrics_reset_and_heartbeat ();
  test_huge_pages ();
  puts ("limits and metrics ok");
  return 0;
}
