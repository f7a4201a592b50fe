/* Consumer: registration in the consumer table, reading the commit ring in
 * order, TOCTTOU-safe read holds, waiting, and detaching.
 * docs/protocol.md §5 is the spec. */

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "dh_internal.h"

struct dh_consumer {
  dh_block b;
  uint32_t index;         /* our consumer entry, and our hold bit */
  uint64_t bit;
  uint64_t cursor;        /* next seq to read (mirrors the shared cursor) */
  bool started;           /* losses are counted from the first record on */
  uint64_t pending_lost;  /* skipped since the last record delivered */
  uint64_t last_liveness_check_ns;
  atomic_uint held;
  atomic_bool wakeup;
};

void
dh_consumer_config_init (dh_consumer_config *cfg)
{
  memset (cfg, 0, sizeof *cfg);
  cfg->start = DH_START_LATEST;
}

static dh_shm_consumer *
entry (const dh_consumer *c)
{
  return &c->b.consumers[c->index];
}

/* ---- start position ------------------------------------------------------ */

/* Is record @seq still intact: its descriptor not overwritten and its slot
 * not reused?  (A hint only; the hold protocol decides for real.) */
static bool
record_intact (const dh_block *b, uint64_t seq)
{
  const dh_shm_desc *d = &b->ring[seq & b->ring_mask];
  if (atomic_load_explicit (&d->seq, memory_order_acquire) != seq)
    return false;
  uint32_t slot = atomic_load_explicit (&d->slot, memory_order_relaxed);
  uint64_t gen = atomic_load_explicit (&d->generation, memory_order_relaxed);
  if (slot >= b->slot_count)
    return false;
  return atomic_load_explicit (&b->slots[slot].state, memory_order_acquire)
      == DH_SLOT_WORD (gen, DH_SLOT_COMMITTED);
}

static uint64_t
start_cursor (const dh_block *b, dh_start where)
{
  uint64_t head = atomic_load_explicit (&b->hdr->head, memory_order_acquire);
  if (head == 0)
    return 1;
  if (where == DH_START_OLDEST) {
    uint64_t ring = (uint64_t) b->ring_mask + 1;
    for (uint64_t s = head >= ring ? head - ring + 1 : 1; s < head; s++)
      if (record_intact (b, s))
        return s;
  }
  return head;
}

/* Moves our cursor (possibly backwards) and tells the producer to refresh
 * its lowest-cursor cache. */
static void
set_cursor (dh_consumer *c, uint64_t cursor)
{
  c->cursor = cursor;
  atomic_store_explicit (&entry (c)->cursor, cursor, memory_order_seq_cst);
  /* Pairs with the producer's seq_cst load in scan_locked. */
  atomic_fetch_add_explicit (&c->b.hdr->cursor_epoch, 1, memory_order_seq_cst);
}

/* ---- registration -------------------------------------------------------- */

/* Takes entry @i, whose OFD lock we already hold.  An entry left ACTIVE or
 * CLAIMING by a dead owner is cleaned here; one the producer is reclaiming
 * is waited for (or taken over if the producer died meanwhile). */
static void
claim_entry (dh_consumer *c, uint32_t i, const dh_consumer_config *cfg)
{
  dh_block *b = &c->b;
  dh_shm_consumer *e = &b->consumers[i];
  uint64_t w;
  uint64_t give_up = dh_now_ns () + 1000000000u;
  for (;;) {
    w = atomic_load_explicit (&e->state, memory_order_acquire);
    if (DH_CONSUMER_STATE (w) == DH_CONSUMER_RECLAIMING
        && dh_now_ns () < give_up && dh_producer_alive (b)) {
      usleep (1000);
      continue;
    }
    uint64_t claiming = DH_CONSUMER_WORD (DH_CONSUMER_EPOCH (w) + 1, DH_CONSUMER_CLAIMING);
    if (atomic_compare_exchange_strong (&e->state, &w, claiming))
      break;
  }
  if (DH_CONSUMER_STATE (w) != DH_CONSUMER_FREE) {
    dh_clear_holds (b, i);
    if (DH_CONSUMER_STATE (w) != DH_CONSUMER_RECLAIMING)
      dh_retire_consumer_counters (b, i);
  }
  c->index = i;
  c->bit = UINT64_C (1) << i;
  atomic_store_explicit (&e->heartbeat_ns, dh_now_ns (), memory_order_relaxed);
  atomic_store_explicit (&e->read, 0, memory_order_relaxed);
  atomic_store_explicit (&e->bytes_read, 0, memory_order_relaxed);
  atomic_store_explicit (&e->lost, 0, memory_order_relaxed);
  atomic_store_explicit (&e->races, 0, memory_order_relaxed);
  atomic_store_explicit (&e->checksum_failures, 0, memory_order_relaxed);
  atomic_store_explicit (&e->waits, 0, memory_order_relaxed);
  atomic_store_explicit (&e->not_ready, 0, memory_order_relaxed);
  e->pid = (uint32_t) getpid ();
  e->leaky = cfg->leaky ? 1 : 0;
  e->start_ticks = dh_proc_start_ticks (getpid ());
  e->attached_realtime_ns = dh_realtime_ns ();
  c->cursor = start_cursor (b, cfg->start);
  atomic_store_explicit (&e->cursor, c->cursor, memory_order_relaxed);
  /* Pairs with the producer's acquire load of the state in
   * compute_min_cursor: it sees our cursor and leaky flag with ACTIVE. */
  atomic_store_explicit (&e->state,
      DH_CONSUMER_WORD (DH_CONSUMER_EPOCH (w) + 1, DH_CONSUMER_ACTIVE),
      memory_order_release);
  /* The producer refreshes its cache; then re-read the start position in
   * case records were published while we registered. */
  set_cursor (c, start_cursor (b, cfg->start));
}

static int
register_consumer (dh_consumer *c, const dh_consumer_config *cfg)
{
  dh_block *b = &c->b;
  for (uint32_t i = 0; i < b->max_consumers; i++) {
    /* The lock byte is the allocation: whoever holds it owns entry i. */
    if (dh_lock_byte (b->fd, DH_LOCK_CONSUMER (i)) != 0)
      continue;
    claim_entry (c, i, cfg);
    b->tag = 2 + i;
    return 0;
  }
  return dh_fail (DH_EFULL, "%s: all %u consumer entries are in use", b->name,
      b->max_consumers);
}

int
dh_consumer_attach (const dh_consumer_config *cfg, dh_consumer **out)
{
  DH_CHECK_ARG (cfg && cfg->name && out);
  if (sodium_init () < 0)
    return dh_fail (-ENOSYS, "libsodium failed to initialise");
  dh_consumer *c = calloc (1, sizeof *c);
  if (!c)
    return dh_fail (-ENOMEM, "out of memory");
  c->b.fd = -1;
  int rc = dh_block_attach (&c->b, cfg);
  if (rc == 0 && (rc = register_consumer (c, cfg)) != 0)
    dh_block_unmap (&c->b);
  if (rc != 0) {
    free (c);
    return rc;
  }
  *out = c;
  return 0;
}

static void
wake_producer (dh_shm_header *h)
{
  /* Dekker with the producer in wait_for_space: our cursor store or hold
   * release (seq_cst) comes before this load; its waiter count comes
   * before its re-scan. */
  if (atomic_load_explicit (&h->space_waiters, memory_order_seq_cst) != 0) {
    atomic_fetch_add_explicit (&h->space_wake, 1, memory_order_seq_cst);
    dh_futex_wake_all (&h->space_wake);
  }
}

void
dh_consumer_detach (dh_consumer *c)
{
  if (!c)
    return;
  dh_block *b = &c->b;
  dh_shm_consumer *e = entry (c);
  uint64_t w = atomic_load_explicit (&e->state, memory_order_relaxed);
  dh_clear_holds (b, c->index);
  dh_retire_consumer_counters (b, c->index);
  atomic_store_explicit (&e->state,
      DH_CONSUMER_WORD (DH_CONSUMER_EPOCH (w), DH_CONSUMER_FREE), memory_order_release);
  wake_producer (b->hdr);
  dh_unlock_byte (b->fd, DH_LOCK_CONSUMER (c->index));
  dh_block_unmap (b);
  sodium_memzero (b->hmac_key, sizeof b->hmac_key);
  free (c);
}

/* ---- waiting ------------------------------------------------------------- */

/* Everything before the handover was read: the stream goes on elsewhere. */
static bool
past_cutover (const dh_consumer *c)
{
  /* Pairs with the release store in dh_producer_handover. */
  uint64_t cutover = atomic_load_explicit (&c->b.hdr->cutover_seq, memory_order_acquire);
  return cutover != 0 && c->cursor >= cutover;
}

static bool
data_ready (const dh_consumer *c)
{
  return atomic_load_explicit (&c->b.hdr->head, memory_order_acquire) >= c->cursor;
}

static int
wait_for_data (dh_consumer *c, uint64_t deadline)
{
  dh_block *b = &c->b;
  dh_shm_header *h = b->hdr;
  dh_shm_consumer *e = entry (c);
  for (int spin = 0; spin < DH_SPIN_ITERATIONS; spin++) {
    if (data_ready (c))
      return 0;
    dh_cpu_relax ();
  }
  for (;;) {
    if (atomic_load (&c->wakeup))
      return -ECANCELED;
    uint32_t word = atomic_load_explicit (&h->data_wake, memory_order_acquire);
    /* Dekker with publish_head (producer.c): count in, then re-check. */
    atomic_fetch_add_explicit (&h->data_waiters, 1, memory_order_seq_cst);
    if (atomic_load_explicit (&h->head, memory_order_seq_cst) >= c->cursor) {
      atomic_fetch_sub_explicit (&h->data_waiters, 1, memory_order_relaxed);
      return 0;
    }
    if (past_cutover (c)) {
      atomic_fetch_sub_explicit (&h->data_waiters, 1, memory_order_relaxed);
      return DH_EHANDOVER;
    }
    /* Pairs with the release store of CLOSED in dh_producer_destroy, made
     * after the last head store: nothing more will come. */
    if (atomic_load_explicit (&h->producer_state, memory_order_acquire)
        == DH_PRODUCER_CLOSED) {
      atomic_fetch_sub_explicit (&h->data_waiters, 1, memory_order_relaxed);
      return data_ready (c) ? 0 : DH_ECLOSED;
    }
    uint64_t now = dh_now_ns ();
    uint64_t slice = now + DH_PRODUCER_CHECK_NS;
    if (now < deadline)
      (void) dh_futex_wait (&h->data_wake, word, slice < deadline ? slice : deadline);
    atomic_fetch_sub_explicit (&h->data_waiters, 1, memory_order_relaxed);
    dh_relaxed_inc (&e->waits, 1);
    now = dh_now_ns ();
    atomic_store_explicit (&e->heartbeat_ns, now, memory_order_relaxed);
    if (data_ready (c))
      return 0;
    if (now - c->last_liveness_check_ns >= DH_PRODUCER_CHECK_NS) {
      c->last_liveness_check_ns = now;
      if (!dh_producer_alive (b)) {
        /* A closing producer stores CLOSED before it drops its lock (a
         * system call, so ordered before our F_OFD_GETLK): tell a clean
         * close from a death. */
        if (atomic_load_explicit (&h->producer_state, memory_order_acquire)
            == DH_PRODUCER_CLOSED)
          return data_ready (c) ? 0 : DH_ECLOSED;
        return dh_fail (DH_EPRODUCERDEAD, "%s: producer died", b->name);
      }
    }
    if (now >= deadline) {
      dh_relaxed_inc (&e->not_ready, 1);
      return -ETIMEDOUT;
    }
  }
}

/* ---- reading ------------------------------------------------------------- */

/* Skips @n records: counted as lost once the first record was delivered. */
static void
skip (dh_consumer *c, uint64_t to)
{
  if (c->started)
    c->pending_lost += to - c->cursor;
  c->cursor = to;
}

/* Copies descriptor @seq under its seqlock.  Returns false if it was
 * overwritten (we were lapped) or is being written.  The field loads are
 * acquire (plain loads on x86): if one of them sees a newer write, the
 * writer's earlier seq = 0 is visible to the re-check (write_desc). */
static bool
read_desc (const dh_block *b, uint64_t seq, dh_record *r)
{
  const dh_shm_desc *d = &b->ring[seq & b->ring_mask];
  const memory_order acq = memory_order_acquire;
  /* Pairs with the release store of seq in write_desc. */
  if (atomic_load_explicit (&d->seq, acq) != seq)
    return false;
  r->generation = atomic_load_explicit (&d->generation, acq);
  r->info.size = atomic_load_explicit (&d->size, acq);
  r->info.pts = atomic_load_explicit (&d->pts, acq);
  r->info.dts = atomic_load_explicit (&d->dts, acq);
  r->info.duration = atomic_load_explicit (&d->duration, acq);
  r->info.offset = atomic_load_explicit (&d->offset, acq);
  r->info.offset_end = atomic_load_explicit (&d->offset_end, acq);
  r->commit_ns = atomic_load_explicit (&d->commit_ns, acq);
  r->slot = atomic_load_explicit (&d->slot, acq);
  r->info.kind = atomic_load_explicit (&d->kind, acq);
  r->info.flags = atomic_load_explicit (&d->flags, acq);
  r->info.caps_gen = atomic_load_explicit (&d->caps_gen, acq);
  r->info.user[0] = atomic_load_explicit (&d->user[0], acq);
  r->info.user[1] = atomic_load_explicit (&d->user[1], acq);
  r->info.reserved = 0;
  if (atomic_load_explicit (&d->seq, memory_order_relaxed) != seq)
    return false;
  r->seq = seq;
  return true;
}

/* TOCTTOU-safe hold (review P4): set our bit, then re-check state and
 * generation.  The seq_cst pair (our RMW, our state load) against the
 * producer's (state CAS, readers load) in try_claim guarantees that one of
 * us sees the other. */
static bool
take_hold (dh_consumer *c, const dh_record *r)
{
  dh_block *b = &c->b;
  dh_shm_slot *s = &b->slots[r->slot];
  uint64_t before = atomic_fetch_or_explicit (&s->readers, c->bit, memory_order_seq_cst);
  uint64_t w = atomic_load_explicit (&s->state, memory_order_seq_cst);
  if (w != DH_SLOT_WORD (r->generation, DH_SLOT_COMMITTED)) {
    atomic_fetch_and_explicit (&s->readers, ~c->bit, memory_order_release);
    return false;
  }
  uint64_t holders = (uint64_t) __builtin_popcountll (before | c->bit);
  _Atomic uint64_t *peak = &b->hdr->metrics.reader_peak_count;
  if (holders > atomic_load_explicit (peak, memory_order_relaxed))
    atomic_store_explicit (peak, holders, memory_order_relaxed);
  return true;
}

static void
release_hold (dh_consumer *c, uint32_t slot)
{
  /* Release: our reads of the payload happen before the producer's reuse
   * (its acquire load of readers in try_claim); seq_cst for wake_producer. */
  atomic_fetch_and_explicit (&c->b.slots[slot].readers, ~c->bit, memory_order_seq_cst);
  wake_producer (c->b.hdr);
}

static bool
verify_record (const dh_consumer *c, const dh_record *r)
{
  uint8_t sum[DH_HASH_SIZE];
  dh_payload_hash (&c->b, r->data, r->info.size, sum);
  return dh_hash_equal (sum, c->b.slots[r->slot].checksum);
}

static bool
latest_value (const dh_block *b)
{
  return b->policy != DH_POLICY_RING;
}

/* Tries to take the record at the cursor.  1 = got it, 0 = skipped (the
 * cursor moved on), <0 = error. */
static int
take_at_cursor (dh_consumer *c, dh_record *out)
{
  dh_block *b = &c->b;
  dh_shm_consumer *e = entry (c);
  uint64_t head = atomic_load_explicit (&b->hdr->head, memory_order_acquire);
  if (latest_value (b) && head > c->cursor)
    skip (c, head);
  if (!read_desc (b, c->cursor, out)) {
    /* Lapped: the producer reused our descriptor.  Resume at the oldest
     * descriptor that can still be intact. */
    uint64_t ring = (uint64_t) b->ring_mask + 1;
    head = atomic_load_explicit (&b->hdr->head, memory_order_acquire);
    uint64_t oldest = head >= ring ? head - ring + 1 : 1;
    dh_relaxed_inc (&b->hdr->metrics.reader_validation_failed, 1);
    skip (c, oldest > c->cursor ? oldest : c->cursor + 1);
    return 0;
  }
  if (out->slot >= b->slot_count || out->info.size > b->slot_size) {
    /* Never trust a size or index from shared memory. */
    dh_relaxed_inc (&b->hdr->metrics.reader_validation_failed, 1);
    dh_record_error (b, DH_ECORRUPT);
    skip (c, c->cursor + 1);
    return 0;
  }
  if (!take_hold (c, out)) {
    dh_relaxed_inc (&e->races, 1);
    skip (c, c->cursor + 1);
    return 0;
  }
  c->cursor++;
  /* seq_cst: the hold bit (set above) is visible to whoever sees the new
   * cursor (compute_min_cursor), and the store precedes wake_producer. */
  atomic_store_explicit (&e->cursor, c->cursor, memory_order_seq_cst);
  wake_producer (b->hdr);
  out->data = dh_payload_at (b, out->slot);
  out->reserved = 0;
  if (b->integrity != DH_INTEGRITY_NONE && b->check == DH_CHECK_ENFORCED
      && !verify_record (c, out)) {
    release_hold (c, out->slot);
    dh_relaxed_inc (&e->checksum_failures, 1);
    dh_record_error (b, DH_ECHECKSUM);
    c->pending_lost++;
    return dh_fail (DH_ECHECKSUM, "%s: record %llu failed its %s check; dropped",
        b->name, (unsigned long long) out->seq,
        b->integrity == DH_INTEGRITY_HMAC ? "HMAC" : "checksum");
  }
  out->lost_before = c->pending_lost;
  dh_relaxed_inc (&e->lost, c->pending_lost);
  c->pending_lost = 0;
  c->started = true;
  dh_relaxed_inc (&e->read, 1);
  dh_relaxed_inc (&e->bytes_read, out->info.size);
  atomic_fetch_add_explicit (&c->held, 1, memory_order_relaxed);
  return 1;
}

int
dh_consumer_next (dh_consumer *c, int timeout_ms, dh_record *out)
{
  DH_CHECK_ARG (c && out);
  uint64_t deadline = 0;
  bool have_deadline = false;
  for (;;) {
    if (atomic_load_explicit (&c->wakeup, memory_order_relaxed))
      return -ECANCELED;
    if (!data_ready (c)) {
      if (past_cutover (c))
        return DH_EHANDOVER;
      if (timeout_ms == 0) {
        dh_relaxed_inc (&entry (c)->not_ready, 1);
        return -ETIMEDOUT;
      }
      if (!have_deadline) {
        deadline = dh_deadline (timeout_ms);
        have_deadline = true;
      }
      int rc = wait_for_data (c, deadline);
      if (rc != 0)
        return rc;
    }
    int got = take_at_cursor (c, out);
    if (got != 0)
      return got < 0 ? got : 0;
  }
}

int
dh_consumer_next_batch (dh_consumer *c, dh_record *out, unsigned max, int timeout_ms)
{
  DH_CHECK_ARG (c && out && max > 0);
  int rc = dh_consumer_next (c, timeout_ms, &out[0]);
  if (rc != 0)
    return rc;
  unsigned got = 1;
  while (got < max && data_ready (c)) {
    rc = take_at_cursor (c, &out[got]);
    if (rc < 0)
      break; /* a record failed its integrity check: it was dropped and
                counted (lost, checksum_failures); end the batch here */
    got += (unsigned) rc;
  }
  return (int) got;
}

int
dh_consumer_release (dh_consumer *c, const dh_record *r)
{
  DH_CHECK_ARG (c && r);
  if (r->slot >= c->b.slot_count)
    return dh_fail (DH_ESLOT, "record slot %u out of range", r->slot);
  uint64_t before = atomic_load_explicit (&c->b.slots[r->slot].readers,
      memory_order_relaxed);
  if (!(before & c->bit))
    return dh_fail (DH_ESLOT, "record %llu (slot %u) is not held",
        (unsigned long long) r->seq, r->slot);
  release_hold (c, r->slot);
  atomic_fetch_sub_explicit (&c->held, 1, memory_order_relaxed);
  return 0;
}

int
dh_consumer_seek (dh_consumer *c, dh_start where)
{
  DH_CHECK_ARG (c && (where == DH_START_LATEST || where == DH_START_OLDEST));
  set_cursor (c, start_cursor (&c->b, where));
  c->pending_lost = 0;
  c->started = false;
  return 0;
}

int
dh_consumer_verify (dh_consumer *c, const dh_record *r)
{
  DH_CHECK_ARG (c && r && r->slot < c->b.slot_count);
  if (c->b.integrity == DH_INTEGRITY_NONE)
    return dh_fail (DH_ECONFIG, "%s was created without integrity", c->b.name);
  if (r->info.size > c->b.slot_size || !verify_record (c, r)) {
    dh_relaxed_inc (&entry (c)->checksum_failures, 1);
    return dh_fail (DH_ECHECKSUM, "record %llu failed verification",
        (unsigned long long) r->seq);
  }
  return 0;
}

int
dh_consumer_zone_read (dh_consumer *c, unsigned zone, void *buf, size_t cap,
    size_t *len, uint64_t *version)
{
  DH_CHECK_ARG (c && (buf || cap == 0) && len);
  return dh_zone_read (&c->b, zone, buf, cap, len, version);
}

int
dh_consumer_successor (dh_consumer *c, char *buf, size_t len)
{
  DH_CHECK_ARG (c && buf && len > 0);
  const dh_shm_header *h = c->b.hdr;
  uint8_t name[DH_NAME_MAX + 1];
  for (int attempt = 0; attempt < 1000; attempt++) {
    uint64_t s1 = atomic_load_explicit (&h->successor_seq, memory_order_acquire);
    if (s1 & 1)
      continue;
    dh_load_words (name, (const uint8_t *) h->successor_name, sizeof name);
    if (atomic_load_explicit (&h->successor_seq, memory_order_relaxed) != s1)
      continue;
    if (s1 == 0)
      return dh_fail (-ENOENT, "%s has no successor", c->b.name);
    name[DH_NAME_MAX] = '\0'; /* never trust shared memory to terminate it */
    size_t n = strlen ((const char *) name);
    if (n + 1 > len)
      return dh_fail (-ENOBUFS, "successor name needs %zu bytes", n + 1);
    memcpy (buf, name, n + 1);
    return 0;
  }
  return dh_fail (-EAGAIN, "successor name keeps changing");
}

uint64_t
dh_consumer_zone_version (dh_consumer *c, unsigned zone)
{
  if (!c || zone >= c->b.zone_count)
    return 0;
  /* Pairs with the release store of the even seq in dh_zone_write. */
  return atomic_load_explicit (&c->b.hdr->zones[zone].seq, memory_order_acquire);
}

void
dh_consumer_wakeup (dh_consumer *c)
{
  atomic_store (&c->wakeup, true);
  /* Wakes every sleeper on the word; the others re-check and sleep again. */
  dh_futex_wake_all (&c->b.hdr->data_wake);
}

void
dh_consumer_clear_wakeup (dh_consumer *c)
{
  atomic_store (&c->wakeup, false);
}

void
dh_consumer_heartbeat (dh_consumer *c)
{
  atomic_store_explicit (&entry (c)->heartbeat_ns, dh_now_ns (), memory_order_relaxed);
}

void
dh_consumer_stats_get (dh_consumer *c, dh_consumer_stats *out)
{
  dh_shm_consumer *e = entry (c);
  out->read = atomic_load_explicit (&e->read, memory_order_relaxed);
  out->bytes_read = atomic_load_explicit (&e->bytes_read, memory_order_relaxed);
  out->lost = atomic_load_explicit (&e->lost, memory_order_relaxed);
  out->races = atomic_load_explicit (&e->races, memory_order_relaxed);
  out->checksum_failures = atomic_load_explicit (&e->checksum_failures, memory_order_relaxed);
  out->waits = atomic_load_explicit (&e->waits, memory_order_relaxed);
  out->held = atomic_load_explicit (&c->held, memory_order_relaxed);
  out->index = c->index;
  uint64_t head = atomic_load_explicit (&c->b.hdr->head, memory_order_acquire);
  uint64_t cursor = atomic_load_explicit (&e->cursor, memory_order_relaxed);
  out->behind = head >= cursor ? head - cursor + 1 : 0;
}

const char *
dh_consumer_shm_name (const dh_consumer *c)
{
  return c->b.name;
}

uint64_t
dh_consumer_session_id (const dh_consumer *c)
{
  return c->b.session_id;
}

uint64_t
dh_consumer_slot_size (const dh_consumer *c)
{
  return c->b.slot_size;
}

int
dh_consumer_metrics (dh_consumer *c, dh_metrics *out)
{
  DH_CHECK_ARG (c && out);
  dh_metrics_snapshot (&c->b, out);
  return 0;
}

int
dh_consumer_spin_lock (dh_consumer *c, unsigned idx, int timeout_ms)
{
  DH_CHECK_ARG (c);
  return dh_spin_lock (&c->b, idx, timeout_ms);
}

int
dh_consumer_spin_unlock (dh_consumer *c, unsigned idx)
{
  DH_CHECK_ARG (c);
  return dh_spin_unlock (&c->b, idx);
}
