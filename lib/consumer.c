/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Consumer: reading the commit ring in order, TOCTTOU-safe holds recorded
 * in our own object, waiting, releasing.  docs/protocol.md §5.4, §7 is the
 * spec; registration and following blocks are in session.c.  The block is
 * mapped read-only: nothing here writes it. */

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "dh_consumer_private.h"

/* How long a consumer waits for the producer to decide a claim it saw in
 * progress (§5.4 step 4) before counting the record as lost: the decision
 * takes the producer a few loads, unless it is descheduled right then. */
#define DH_DECISION_WAIT_NS (10u * 1000u * 1000u)

void
dh_consumer_config_init (dh_consumer_config *cfg)
{
  memset (cfg, 0, sizeof *cfg);
  cfg->start = DH_START_LATEST;
  cfg->leaky = DH_LEAKY_NO;
  cfg->max_held = DH_DEFAULT_MAX_HELD;
  cfg->mode = 0644;
}

/* ---- registration ------------------------------------------------------- */

static int
keep_config (dh_consumer *c, const dh_consumer_config *cfg)
{
  c->cfg = *cfg;
  c->cfg.name = NULL;
  if (cfg->secret) {
    memcpy (c->secret, cfg->secret, DH_SECRET_SIZE);
    c->cfg.secret = c->secret;
  }
  if (cfg->expected_schema && !(c->schema = strdup (cfg->expected_schema)))
    return dh_fail (-ENOMEM, "out of memory");
  c->cfg.expected_schema = c->schema;
  if (c->cfg.leaky > DH_LEAKY_AUTO)
    return dh_fail (-EINVAL, "leaky %d is not no, yes or auto", (int) c->cfg.leaky);
  if (c->cfg.max_held == 0 || c->cfg.max_held > DH_MAX_HOLDS)
    c->cfg.max_held = c->cfg.max_held ? DH_MAX_HOLDS : DH_DEFAULT_MAX_HELD;
  if (c->cfg.mode == 0)
    c->cfg.mode = 0644;
  return 0;
}

static void
free_consumer (dh_consumer *c)
{
  pthread_mutex_destroy (&c->cur_lock);
  pthread_mutex_destroy (&c->hold_lock);
  pthread_mutex_destroy (&c->req_lock);
  free (c->schema);
  sodium_memzero (c->secret, sizeof c->secret);
  free (c);
}

int
dh_consumer_open (const dh_consumer_config *cfg, dh_consumer **out)
{
  DH_CHECK_ARG (cfg && cfg->name && out);
  if (sodium_init () < 0)
    return dh_fail (-ENOSYS, "libsodium failed to initialise");
  dh_consumer *c = calloc (1, sizeof *c);
  if (!c)
    return dh_fail (-ENOMEM, "out of memory");
  pthread_mutex_init (&c->cur_lock, NULL);
  pthread_mutex_init (&c->hold_lock, NULL);
  pthread_mutex_init (&c->req_lock, NULL);
  c->obj_fd = -1;
  c->x_fd = -1;
  int rc = keep_config (c, cfg);
  if (rc == 0)
    rc = dh_shm_name (cfg->name, c->origin, sizeof c->origin);
  memcpy (c->cur_name, c->origin, sizeof c->cur_name);
  if (rc == 0) {
    randombytes_buf (&c->token, sizeof c->token);
    rc = dh_peer_create (c->origin, 0, c->cfg.mode, &c->cfg, c->token, &c->obj_fd,
        &c->obj, &c->index);
  }
  if (rc != 0) {
    free_consumer (c);
    return rc;
  }
  dh_session_doorbell (c);
  *out = c;
  return 0;
}

/* An attach that timed out on an object nobody finishes names it corrupt
 * (the detail says what was found). */
static int
attach_result (int rc)
{
  return rc == DH_EUNFINISHED ? DH_ECORRUPT : rc;
}

int
dh_consumer_attach (const dh_consumer_config *cfg, dh_consumer **out)
{
  DH_CHECK_ARG (cfg && out);
  dh_consumer *c;
  int rc = dh_consumer_open (cfg, &c);
  if (rc != 0)
    return rc;
  /* a live producer admits at once; give it time even with a zero timeout */
  rc = attach_result (dh_session_connect (c, dh_deadline (cfg->attach_timeout_ms),
          dh_now_ns () + DH_ADMISSION_TIMEOUT_NS));
  if (rc != 0) {
    char why[512];
    memcpy (why, dh_error_detail (), sizeof why);
    dh_consumer_detach (c);
    return dh_fail (rc, "%s", why);
  }
  *out = c;
  return 0;
}

int
dh_consumer_wait_attached (dh_consumer *c, int timeout_ms)
{
  DH_CHECK_ARG (c);
  return c->cur ? 0 : attach_result (dh_session_connect (c, dh_deadline (timeout_ms),
          dh_now_ns () + DH_ADMISSION_TIMEOUT_NS));
}

void
dh_consumer_detach (dh_consumer *c)
{
  if (!c)
    return;
  /* leaving first, then the holds, then the wake: a producer woken by us
   * sees that we left (seq_cst stores: the store-buffer pairing with its
   * space_waiters RMW and re-scan, §5.3) */
  atomic_store_explicit (&c->obj->detached, DH_DETACH_LEAVING, memory_order_seq_cst);
  pthread_mutex_lock (&c->hold_lock);
  for (unsigned j = 0; j < DH_MAX_HOLDS; j++)
    if (c->held[j].used) {
      c->held[j].used = false;
      atomic_store_explicit (&c->obj->holds[j], 0, memory_order_seq_cst);
      dh_consumer_wake_producer (c, c->held[j].blk);
    }
  c->nheld = 0;
  pthread_mutex_unlock (&c->hold_lock);
  if (c->cur)
    dh_consumer_wake_producer (c, c->cur);
  dh_peer_remove (c->origin, c->index, c->obj_fd, c->obj);
  dh_session_free_all (c);
  dh_exchange_close (c->x, c->x_fd, c->origin, false);
  free_consumer (c);
}

void
dh_consumer_stop (dh_consumer *c)
{
  if (!c)
    return;
  /* Pairs with the producer's acquire load of detached in its service
   * pass; the wake makes a producer waiting for us look now. */
  atomic_store_explicit (&c->obj->detached, DH_DETACH_STOPPED, memory_order_seq_cst);
  atomic_fetch_add_explicit (&c->obj->progress, 1, memory_order_seq_cst);
  dh_futex_wake_all (&c->obj->progress);
}

/* ---- waking the producer --------------------------------------------------- */

void
dh_consumer_wake_producer (dh_consumer *c, const dh_cblock *blk)
{
  const dh_shm_header *h = blk->b.hdr;
  /* Dekker with the producer in sleep_for_space (producer.c): our cursor
   * store or hold release (seq_cst) comes before this load; its
   * space_waiters store comes before its re-scan.  Only a consumer the
   * producer waits for bumps its word. */
  if (atomic_load_explicit (&h->space_waiters, memory_order_seq_cst) != 0
      && (atomic_load_explicit (&h->gate_mask, memory_order_acquire)
          & (UINT64_C (1) << c->index))) {
    atomic_fetch_add_explicit (&c->obj->progress, 1, memory_order_seq_cst);
    dh_futex_wake_all (&c->obj->progress);
  }
}

/* ---- waiting ------------------------------------------------------------- */

static bool
data_ready (const dh_consumer *c)
{
  return atomic_load_explicit (&c->cur->b.hdr->head, memory_order_acquire) >= c->cursor;
}

/* Everything before the handover was read: the stream goes on elsewhere. */
static bool
past_cutover (const dh_consumer *c)
{
  /* Pairs with the release store in dh_producer_handover. */
  uint64_t cutover = atomic_load_explicit (&c->cur->b.hdr->cutover_seq,
      memory_order_acquire);
  return cutover != 0 && c->cursor >= cutover;
}

static bool
closed (const dh_consumer *c)
{
  /* Pairs with the release store of CLOSED in dh_producer_close, made
   * after the last head store: nothing more will come. */
  return atomic_load_explicit (&c->cur->b.hdr->producer_state, memory_order_acquire)
      == DH_PRODUCER_CLOSED;
}

static bool
evicted_now (dh_consumer *c)
{
  const dh_shm_admission *e = &c->cur->b.table[c->index];
  if (atomic_load_explicit (&e->state, memory_order_acquire) == DH_ADMIT_EVICTED
      && atomic_load_explicit (&e->token, memory_order_acquire) == c->token)
    c->evicted = true;
  return c->evicted;
}

/* Has the producer stopped?  DH_ECLOSED, DH_EPRODUCERDEAD, or 0.  The
 * liveness test is a system call: at most once per DH_PRODUCER_CHECK_NS. */
static int
producer_gone (dh_consumer *c, uint64_t now)
{
  if (closed (c))
    return DH_ECLOSED;
  if (now - c->last_liveness_check_ns < DH_PRODUCER_CHECK_NS)
    return 0;
  c->last_liveness_check_ns = now;
  if (dh_producer_alive (&c->cur->b))
    return 0;
  /* A closing producer stores CLOSED before it drops its lock (a system
   * call, so ordered before our F_OFD_GETLK): tell a clean close from a
   * death. */
  if (closed (c))
    return DH_ECLOSED;
  return dh_fail (DH_EPRODUCERDEAD, "%s: producer died", c->cur->b.name);
}

static int
wait_for_data (dh_consumer *c, uint64_t deadline)
{
  dh_shm_header *h = c->cur->b.hdr;
  dh_shm_consumer *o = c->obj;
  for (int spin = 0; spin < DH_SPIN_ITERATIONS; spin++) {
    if (data_ready (c))
      return 0;
    dh_cpu_relax ();
  }
  for (;;) {
    /* the private word first, then the flag: an unlock in between
     * changes the word and ends the sleep below at once */
    uint32_t local = atomic_load_explicit (&c->wake_word, memory_order_acquire);
    if (atomic_load (&c->wakeup))
      return -ECANCELED;
    uint32_t word = atomic_load_explicit (&h->data_wake, memory_order_acquire);
    /* Dekker with publish_head (producer.c): flag in, then re-check. */
    atomic_store_explicit (&o->waiting, 1, memory_order_seq_cst);
    int rc = 0;
    if (atomic_load_explicit (&h->head, memory_order_seq_cst) >= c->cursor)
      rc = 1;
    else if (past_cutover (c))
      rc = DH_EHANDOVER;
    else if (closed (c))
      rc = data_ready (c) ? 1 : DH_ECLOSED;
    else if (evicted_now (c))
      rc = dh_fail (DH_EEVICTED, "%s evicted this consumer", c->cur->b.name);
    if (rc != 0) {
      atomic_store_explicit (&o->waiting, 0, memory_order_relaxed);
      return rc == 1 ? 0 : rc;
    }
    uint64_t now = dh_now_ns ();
    uint64_t slice = now + DH_PRODUCER_CHECK_NS < deadline ? now + DH_PRODUCER_CHECK_NS
        : deadline;
    DH_TEST_POINT ("wait.before_sleep");
    const _Atomic uint32_t *words[1] = { &h->data_wake };
    rc = dh_futex_wait2 (words, &word, 1, &c->wake_word, local, slice);
    if (rc == -ETIMEDOUT && slice < deadline)
      DH_TEST_POINT ("wait.slice_expired");
    atomic_store_explicit (&o->waiting, 0, memory_order_relaxed);
    dh_relaxed_inc (&o->waits, 1);
    now = dh_now_ns ();
    atomic_store_explicit (&o->heartbeat_ns, now, memory_order_relaxed);
    if (data_ready (c))
      return 0; /* the common wake-up: straight to the record */
    /* a cutover, a close: the checks at the top, in that order (a block
     * handed over and then closed is followed, not ended) */
    if (past_cutover (c) || closed (c))
      continue;
    if ((rc = producer_gone (c, now)) != 0)
      return rc == DH_ECLOSED && data_ready (c) ? 0 : rc;
    if (now >= deadline) {
      dh_relaxed_inc (&o->not_ready, 1);
      return -ETIMEDOUT;
    }
  }
}

/* ---- reading ------------------------------------------------------------- */

/* Skips to @to: counted as lost once the first record was delivered. */
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
  r->session = b->session_id;
  r->flags = 0;
  return true;
}

/* The producer stored (gen+1) | WRITING while we took our hold: wait for it
 * to decide its claim (§5.4 step 4).  True if it backed out (our hold
 * protects the record), false if it is rewriting the slot. */
static bool
claim_backed_out (const dh_shm_slot *s, uint64_t committed)
{
  uint64_t writing = DH_SLOT_WORD (DH_SLOT_GEN (committed) + 1, DH_SLOT_WRITING);
  uint64_t give_up = 0;
  for (unsigned spin = 0;; spin++) {
    uint32_t a1 = atomic_load_explicit (&s->claim, memory_order_acquire);
    /* Pairs with the producer's release store of decided, made after it
     * restored the state (or decided to keep it). */
    uint32_t d = atomic_load_explicit (&s->decided, memory_order_acquire);
    uint64_t w = atomic_load_explicit (&s->state, memory_order_acquire);
    uint32_t a2 = atomic_load_explicit (&s->claim, memory_order_acquire);
    if (w == committed)
      return true;
    if (w != writing || (a1 == a2 && d == a1))
      return false;
    if (spin < 64) {
      dh_cpu_relax ();
      continue;
    }
    uint64_t now = dh_now_ns ();
    if (!give_up)
      give_up = now + DH_DECISION_WAIT_NS;
    else if (now >= give_up)
      return false;
    sched_yield ();
  }
}

/* A free hold entry within our quota, recorded as ours; -1 if none. */
static int
reserve_hold (dh_consumer *c, const dh_record *r)
{
  int j = -1;
  pthread_mutex_lock (&c->hold_lock);
  for (uint32_t k = 0; k < c->quota; k++)
    if (!c->held[k].used) {
      c->held[k] = (dh_hold) { true, r->slot, r->seq, r->generation, c->cur };
      c->nheld++;
      c->cur->holds++;
      j = (int) k;
      break;
    }
  pthread_mutex_unlock (&c->hold_lock);
  return j;
}

static void
unreserve_hold (dh_consumer *c, int j)
{
  pthread_mutex_lock (&c->hold_lock);
  c->held[j].used = false;
  c->nheld--;
  c->held[j].blk->holds--;
  pthread_mutex_unlock (&c->hold_lock);
}

/* TOCTTOU-safe hold (review P4): store our entry, then re-check the
 * slot's state and generation.  The seq_cst pair (our entry store, our
 * state load) against the producer's (state store, entry loads) in
 * producer.c claim guarantees that one of us sees the other.  1 = held,
 * 0 = the slot was reused, -ENOBUFS = no entry left. */
static int
take_hold (dh_consumer *c, const dh_record *r)
{
  const dh_block *b = &c->cur->b;
  const dh_shm_slot *s = &b->slots[r->slot];
  int j = reserve_hold (c, r);
  if (j < 0)
    return dh_fail (-ENOBUFS, "%s: all %u holds granted to this consumer are in use; "
        "release a record first", b->name, c->quota);
  atomic_store_explicit (&c->obj->holds[j], DH_HOLD_ENTRY (b->session_id, r->slot),
      memory_order_seq_cst);
  DH_TEST_POINT ("hold.stored");
  uint64_t committed = DH_SLOT_WORD (r->generation, DH_SLOT_COMMITTED);
  uint64_t w = atomic_load_explicit (&s->state, memory_order_seq_cst);
  if (w == committed)
    return 1;
  if (w == DH_SLOT_WORD (r->generation + 1, DH_SLOT_WRITING)) {
    DH_TEST_POINT ("hold.saw_claim");
    if (claim_backed_out (s, committed))
      return 1;
  }
  atomic_store_explicit (&c->obj->holds[j], 0, memory_order_release);
  unreserve_hold (c, j);
  return 0;
}

static bool
verify_record (const dh_consumer *c, const dh_record *r)
{
  uint8_t sum[DH_HASH_SIZE];
  const dh_block *b = &c->cur->b;
  dh_payload_hash (b, r->data, r->info.size, sum);
  return dh_hash_equal (sum, b->slots[r->slot].checksum);
}

static bool
latest_value (const dh_block *b)
{
  return b->policy != DH_POLICY_RING;
}

static int release_held (dh_consumer *c, const dh_record *r);

/* Counts a delivered record. */
static void
deliver (dh_consumer *c, dh_record *out)
{
  dh_shm_consumer *o = c->obj;
  out->lost_before = c->pending_lost;
  dh_relaxed_inc (&o->lost, c->pending_lost);
  c->pending_lost = 0;
  c->started = true;
  dh_relaxed_inc (&o->read, 1);
  dh_relaxed_inc (&o->bytes_read, out->info.size);
  /* a reader that never waits (where the heartbeat is also stored) is
   * still seen alive by datahub-admin */
  if (++c->delivered_since_beat >= 8) {
    c->delivered_since_beat = 0;
    atomic_store_explicit (&o->heartbeat_ns, dh_now_ns (), memory_order_relaxed);
  }
}

/* A record that failed enforced verification: dropped, counted, lost. */
static int
checksum_failed (dh_consumer *c, const dh_record *r)
{
  const dh_block *b = &c->cur->b;
  dh_relaxed_inc (&c->obj->checksum_failures, 1);
  c->pending_lost++;
  return dh_fail (DH_ECHECKSUM, "%s: record %llu failed its %s check; dropped", b->name,
      (unsigned long long) r->seq, b->integrity == DH_INTEGRITY_HMAC ? "HMAC" : "checksum");
}

/* Latest-value policies: the newest record, unheld (§5.4).  1 = got it,
 * 0 = nothing committed to read right now (wait for the next commit). */
static int
take_latest (dh_consumer *c, uint64_t head, dh_record *out)
{
  const dh_block *b = &c->cur->b;
  if (head > c->cursor)
    skip (c, head);
  if (!read_desc (b, c->cursor, out) || out->slot >= b->slot_count
      || out->info.size > b->slot_size
      || atomic_load_explicit (&b->slots[out->slot].state, memory_order_acquire)
          != DH_SLOT_WORD (out->generation, DH_SLOT_COMMITTED)) {
    /* being rewritten (single slot): wait for the next commit */
    dh_relaxed_inc (&c->obj->races, 1);
    skip (c, c->cursor + 1); /* it counts as lost like any record we skip */
    return 0;
  }
  c->cursor++;
  atomic_store_explicit (&c->obj->cursor, c->cursor, memory_order_relaxed);
  out->data = dh_payload_at (b, out->slot);
  out->flags = DH_RECORD_UNHELD;
  if (b->integrity != DH_INTEGRITY_NONE && b->check == DH_CHECK_ENFORCED) {
    /* verified where it lies, then the state checked again: a hash over
     * bytes the producer was rewriting proves nothing either way */
    bool intact = verify_record (c, out);
    dh_acquire_fence ();
    if (atomic_load_explicit (&b->slots[out->slot].state, memory_order_relaxed)
        != DH_SLOT_WORD (out->generation, DH_SLOT_COMMITTED)) {
      dh_relaxed_inc (&c->obj->races, 1);
      if (c->started)
        c->pending_lost++; /* lost, counted with the next record */
      return 0;
    }
    if (!intact)
      return checksum_failed (c, out);
  }
  deliver (c, out);
  return 1;
}

/* Tries to take the record at the cursor.  1 = got it, 0 = skipped (the
 * cursor moved on), <0 = error. */
static int
take_at_cursor (dh_consumer *c, dh_record *out)
{
  const dh_block *b = &c->cur->b;
  dh_shm_consumer *o = c->obj;
  uint64_t head = atomic_load_explicit (&b->hdr->head, memory_order_acquire);
  if (latest_value (b))
    return take_latest (c, head, out);
  if (!read_desc (b, c->cursor, out)) {
    /* Lapped: the producer reused our descriptor.  Resume at the oldest
     * descriptor that can still be intact. */
    uint64_t ring = (uint64_t) b->ring_mask + 1;
    head = atomic_load_explicit (&b->hdr->head, memory_order_acquire);
    uint64_t oldest = head >= ring ? head - ring + 1 : 1;
    dh_relaxed_inc (&o->races, 1);
    skip (c, oldest > c->cursor ? oldest : c->cursor + 1);
    return 0;
  }
  if (out->slot >= b->slot_count || out->info.size > b->slot_size) {
    /* never trust a size or index from shared memory */
    dh_relaxed_inc (&o->races, 1);
    skip (c, c->cursor + 1);
    return 0;
  }
  /* evicted, our holds are ignored: nothing read from here on is safe */
  if (evicted_now (c))
    return dh_fail (DH_EEVICTED, "%s evicted this consumer (index %u)", b->name, c->index);
  int held = take_hold (c, out);
  if (held < 0)
    return held;
  if (held == 0) {
    dh_relaxed_inc (&o->races, 1);
    skip (c, c->cursor + 1);
    return 0;
  }
  c->cursor++;
  /* seq_cst: the hold entry (stored above) is visible to whoever sees the
   * new cursor, and the store precedes the load in wake_producer. */
  atomic_store_explicit (&o->cursor, c->cursor, memory_order_seq_cst);
  dh_consumer_wake_producer (c, c->cur);
  out->data = dh_payload_at (b, out->slot);
  if (b->integrity != DH_INTEGRITY_NONE && b->check == DH_CHECK_ENFORCED
      && !verify_record (c, out)) {
    release_held (c, out);
    return checksum_failed (c, out);
  }
  deliver (c, out);
  return 1;
}

/* The producer went away, or the stream moved on: DH_EHANDOVER /
 * DH_ECLOSED / DH_EPRODUCERDEAD, after which the handle goes on. */
static int
stream_event (dh_consumer *c, int rc)
{
  if (rc == DH_EHANDOVER)
    return dh_session_follow (c);
  if (rc == DH_ECLOSED || rc == DH_EPRODUCERDEAD)
    return dh_session_end (c, rc);
  return rc;
}

int
dh_consumer_next (dh_consumer *c, int timeout_ms, dh_record *out)
{
  DH_CHECK_ARG (c && out);
  uint64_t deadline = dh_deadline (timeout_ms);
  /* records skipped in a row without waiting for a commit (lapped,
   * rewritten): a block that keeps announcing records nobody can read must
   * not spin us for ever.  A skip after a wait was a real race and starts
   * the count again. */
  uint32_t skips = 0;
  for (;;) {
    if (skips) {
      if (skips >= DH_MAX_SKIPS || c->cursor == 0)
        return dh_fail (DH_ECORRUPT, "%s announces records up to %llu that cannot be read "
            "(%u skipped in a row)", c->cur ? c->cur->b.name : c->origin,
            c->cur ? (unsigned long long) atomic_load (&c->cur->b.hdr->head) : 0ull, skips);
      /* a poll may skip its way to a readable record; a wait honours its
       * deadline at every skip (one can take DH_DECISION_WAIT_NS) */
      if ((timeout_ms != 0 || skips % 64 == 0) && dh_now_ns () >= deadline)
        return -ETIMEDOUT;
    }
    if (atomic_load_explicit (&c->wakeup, memory_order_relaxed))
      return -ECANCELED;
    if (c->evicted)
      return dh_fail (DH_EEVICTED, "%s: this consumer was evicted", c->origin);
    if (!c->cur) {
      int rc = dh_session_connect (c, deadline, deadline);
      /* no block yet, one being made, or one whose creator died (the next
       * producer replaces it): a read keeps waiting, as for a producer
       * that died after it started (§2) */
      if (rc != 0)
        return rc == -ENOENT || rc == DH_ENOTREADY || rc == DH_EUNFINISHED ? -ETIMEDOUT : rc;
    }
    if (!data_ready (c)) {
      int rc = 0;
      if (past_cutover (c))
        rc = DH_EHANDOVER;
      else if (timeout_ms == 0) {
        /* polling still reports a producer that went away */
        rc = producer_gone (c, dh_now_ns ());
        if (rc == 0) {
          if (evicted_now (c))
            return dh_fail (DH_EEVICTED, "%s evicted this consumer", c->cur->b.name);
          dh_relaxed_inc (&c->obj->not_ready, 1);
          return -ETIMEDOUT;
        }
        if (rc == DH_ECLOSED && data_ready (c))
          rc = 0;
      } else {
        rc = wait_for_data (c, deadline);
        skips = 0;
      }
      if (rc != 0)
        return stream_event (c, rc);
    }
    int got = take_at_cursor (c, out);
    if (got != 0)
      return got < 0 ? got : 0;
    skips++;
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
  while (got < max && c->cur && data_ready (c) && !past_cutover (c)) {
    rc = take_at_cursor (c, &out[got]);
    if (rc < 0)
      break; /* a record failed its integrity check (dropped and counted),
                or no hold left: end the batch here */
    got += (unsigned) rc;
  }
  return (int) got;
}

/* ---- releasing ------------------------------------------------------------ */

static int
release_held (dh_consumer *c, const dh_record *r)
{
  pthread_mutex_lock (&c->hold_lock);
  int j = -1;
  for (unsigned k = 0; k < DH_MAX_HOLDS; k++) {
    const dh_hold *h = &c->held[k];
    if (h->used && h->seq == r->seq && h->slot == r->slot && h->generation == r->generation
        && h->blk->b.session_id == r->session) {
      j = (int) k;
      break;
    }
  }
  if (j < 0) {
    pthread_mutex_unlock (&c->hold_lock);
    return dh_fail (DH_ESLOT, "record %llu (slot %u) is not held", (unsigned long long) r->seq,
        r->slot);
  }
  dh_cblock *blk = c->held[j].blk;
  c->held[j].used = false;
  c->nheld--;
  blk->holds--;
  /* seq_cst: our reads of the payload happen before the producer's reuse
   * (its loads of our entries), and the store precedes wake_producer's
   * load of space_waiters. */
  atomic_store_explicit (&c->obj->holds[j], 0, memory_order_seq_cst);
  dh_consumer_wake_producer (c, blk);
  dh_session_release_block_locked (c, blk);
  pthread_mutex_unlock (&c->hold_lock);
  return 0;
}

/* An unheld record stays valid only if the producer did not rewrite its
 * slot while the caller copied it. */
static int
validate_unheld (dh_consumer *c, const dh_record *r)
{
  pthread_mutex_lock (&c->cur_lock);
  if (!c->cur || c->cur->b.session_id != r->session || r->slot >= c->cur->b.slot_count) {
    pthread_mutex_unlock (&c->cur_lock);
    return dh_fail (DH_ESTALE, "record %llu: its block is gone", (unsigned long long) r->seq);
  }
  /* The caller's reads of the payload happen before this load (seqlock
   * reader); pairs with the release fence the producer makes after it
   * stores WRITING and before it writes the payload (producer.c claim). */
  dh_acquire_fence ();
  uint64_t w = atomic_load_explicit (&c->cur->b.slots[r->slot].state, memory_order_relaxed);
  pthread_mutex_unlock (&c->cur_lock);
  if (w != DH_SLOT_WORD (r->generation, DH_SLOT_COMMITTED)) {
    dh_relaxed_inc (&c->obj->races, 1);
    return dh_fail (DH_ESTALE, "record %llu was rewritten while it was read",
        (unsigned long long) r->seq);
  }
  return 0;
}

int
dh_consumer_release (dh_consumer *c, const dh_record *r)
{
  DH_CHECK_ARG (c && r);
  return (r->flags & DH_RECORD_UNHELD) ? validate_unheld (c, r) : release_held (c, r);
}

/* ---- positions ------------------------------------------------------------ */

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

int
dh_consumer_seek (dh_consumer *c, dh_start where)
{
  DH_CHECK_ARG (c && (where == DH_START_LATEST || where == DH_START_OLDEST));
  if (!c->cur)
    return dh_fail (-ENOTCONN, "%s: no producer yet", c->origin);
  const dh_block *b = &c->cur->b;
  uint64_t head = atomic_load_explicit (&b->hdr->head, memory_order_acquire);
  uint64_t to = head ? head : 1;
  if (where == DH_START_OLDEST && head) {
    uint64_t ring = (uint64_t) b->ring_mask + 1;
    for (uint64_t s = head >= ring ? head - ring + 1 : 1; s < head; s++)
      if (record_intact (b, s)) {
        to = s;
        break;
      }
  }
  c->cursor = to;
  atomic_store_explicit (&c->obj->cursor, to, memory_order_seq_cst);
  c->pending_lost = 0;
  c->started = false;
  return 0;
}

/* ---- the rest --------------------------------------------------------------- */

int
dh_consumer_verify (dh_consumer *c, const dh_record *r)
{
  DH_CHECK_ARG (c && r);
  if (!c->cur || c->cur->b.session_id != r->session || r->slot >= c->cur->b.slot_count)
    return dh_fail (DH_ESLOT, "record %llu is not of the current block",
        (unsigned long long) r->seq);
  if (c->cur->b.integrity == DH_INTEGRITY_NONE)
    return dh_fail (DH_ECONFIG, "%s was created without integrity", c->cur->b.name);
  if (r->info.size > c->cur->b.slot_size || !verify_record (c, r)) {
    dh_relaxed_inc (&c->obj->checksum_failures, 1);
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
  pthread_mutex_lock (&c->cur_lock);
  int rc = c->cur ? dh_zone_read (&c->cur->b, zone, buf, cap, len, version)
      : dh_fail (-ENOTCONN, "%s: no producer yet", c->origin);
  pthread_mutex_unlock (&c->cur_lock);
  return rc;
}

uint64_t
dh_consumer_zone_version (dh_consumer *c, unsigned zone)
{
  if (!c)
    return 0;
  uint64_t v = 0;
  pthread_mutex_lock (&c->cur_lock);
  /* Pairs with the release store of the even seq in dh_zone_write. */
  if (c->cur && zone < c->cur->b.zone_count)
    v = atomic_load_explicit (&c->cur->b.hdr->zones[zone].seq, memory_order_acquire);
  pthread_mutex_unlock (&c->cur_lock);
  return v;
}

int
dh_consumer_successor (dh_consumer *c, char *buf, size_t len)
{
  DH_CHECK_ARG (c && buf && len > 0);
  if (!c->cur)
    return dh_fail (-ENOTCONN, "%s: no producer yet", c->origin);
  return dh_block_successor (&c->cur->b, buf, len, NULL);
}

int
dh_consumer_request (dh_consumer *c, uint32_t kind, const void *data, size_t len)
{
  DH_CHECK_ARG (c && (data || len == 0));
  if (len > DH_REQUEST_MAX)
    return dh_fail (-EMSGSIZE, "request of %zu bytes exceeds %u", len, DH_REQUEST_MAX);
  dh_shm_consumer *o = c->obj;
  uint8_t padded[DH_REQUEST_MAX] = { 0 };
  if (len) /* a request without data (a key unit) may pass NULL */
    memcpy (padded, data, len);
  pthread_mutex_lock (&c->req_lock);
  /* odd while writing; the producer copies only an even, unchanged one */
  atomic_store_explicit (&o->req_seq, c->req_seq + 1, memory_order_relaxed);
  dh_store_words (o->req_data, padded, len);
  atomic_store_explicit (&o->req_len, (uint32_t) len, memory_order_release);
  atomic_store_explicit (&o->req_kind, kind, memory_order_release);
  c->req_seq += 2;
  /* Pairs with the producer's acquire load of req_seq (admission.c). */
  atomic_store_explicit (&o->req_seq, c->req_seq, memory_order_release);
  pthread_mutex_unlock (&c->req_lock);
  dh_session_doorbell (c);
  return 0;
}

bool
dh_consumer_producer_live (dh_consumer *c)
{
  if (!c)
    return false;
  pthread_mutex_lock (&c->cur_lock);
  bool live = c->cur
      && atomic_load_explicit (&c->cur->b.hdr->producer_live, memory_order_relaxed) == 1;
  pthread_mutex_unlock (&c->cur_lock);
  return live;
}

void
dh_consumer_wakeup (dh_consumer *c)
{
  atomic_store (&c->wakeup, true);
  /* a sleeper that already checked the flag sleeps on this word too */
  atomic_fetch_add_explicit (&c->wake_word, 1, memory_order_seq_cst);
  dh_futex_wake_private (&c->wake_word);
}

void
dh_consumer_clear_wakeup (dh_consumer *c)
{
  atomic_store (&c->wakeup, false);
}

void
dh_consumer_heartbeat (dh_consumer *c)
{
  atomic_store_explicit (&c->obj->heartbeat_ns, dh_now_ns (), memory_order_relaxed);
}

void
dh_consumer_stats_get (dh_consumer *c, dh_consumer_stats *out)
{
  dh_shm_consumer *o = c->obj;
  out->read = atomic_load_explicit (&o->read, memory_order_relaxed);
  out->bytes_read = atomic_load_explicit (&o->bytes_read, memory_order_relaxed);
  out->lost = atomic_load_explicit (&o->lost, memory_order_relaxed);
  out->races = atomic_load_explicit (&o->races, memory_order_relaxed);
  out->checksum_failures = atomic_load_explicit (&o->checksum_failures, memory_order_relaxed);
  out->waits = atomic_load_explicit (&o->waits, memory_order_relaxed);
  pthread_mutex_lock (&c->hold_lock);
  out->held = c->nheld;
  pthread_mutex_unlock (&c->hold_lock);
  out->index = c->index;
  out->behind = 0;
  pthread_mutex_lock (&c->cur_lock);
  out->quota = c->cur ? c->quota : 0;
  out->attached = c->cur != NULL;
  if (c->cur) {
    uint64_t head = atomic_load_explicit (&c->cur->b.hdr->head, memory_order_acquire);
    uint64_t cursor = atomic_load_explicit (&o->cursor, memory_order_relaxed);
    out->behind = head >= cursor ? head - cursor + 1 : 0;
  }
  pthread_mutex_unlock (&c->cur_lock);
}

/* A copy made under the lock: valid until the next dh_consumer_next. */
const char *
dh_consumer_shm_name (const dh_consumer *c)
{
  return c->cur_name;
}

uint64_t
dh_consumer_session_id (const dh_consumer *c)
{
  dh_consumer *m = (dh_consumer *) c;
  pthread_mutex_lock (&m->cur_lock);
  uint64_t id = c->cur ? c->cur->b.session_id : 0;
  pthread_mutex_unlock (&m->cur_lock);
  return id;
}

uint64_t
dh_consumer_slot_size (const dh_consumer *c)
{
  dh_consumer *m = (dh_consumer *) c;
  pthread_mutex_lock (&m->cur_lock);
  uint64_t size = c->cur ? c->cur->b.slot_size : 0;
  pthread_mutex_unlock (&m->cur_lock);
  return size;
}

int
dh_consumer_metrics (dh_consumer *c, dh_metrics *out)
{
  DH_CHECK_ARG (c && out);
  pthread_mutex_lock (&c->cur_lock);
  int rc = 0;
  if (c->cur)
    dh_metrics_from_header (&c->cur->b, out);
  else
    rc = dh_fail (-ENOTCONN, "%s: no producer yet", c->origin);
  pthread_mutex_unlock (&c->cur_lock);
  return rc;
}

static int
spin_ctx (dh_consumer *c, dh_spin_ctx *ctx)
{
  if (!c->cur)
    return dh_fail (-ENOTCONN, "%s: no producer yet", c->origin);
  if (!c->x) {
    int rc = dh_exchange_open (c->origin, false, 0, &c->x, &c->x_fd);
    if (rc != 0)
      return rc;
  }
  ctx->x = c->x;
  ctx->b = &c->cur->b;
  ctx->origin = c->origin;
  ctx->tag = 2 + c->index;
  ctx->token = c->token;
  return 0;
}

int
dh_consumer_spin_lock (dh_consumer *c, unsigned idx, int timeout_ms)
{
  DH_CHECK_ARG (c);
  dh_spin_ctx ctx;
  int rc = spin_ctx (c, &ctx);
  return rc == 0 ? dh_spin_lock (&ctx, idx, timeout_ms) : rc;
}

int
dh_consumer_spin_unlock (dh_consumer *c, unsigned idx)
{
  DH_CHECK_ARG (c);
  dh_spin_ctx ctx;
  int rc = spin_ctx (c, &ctx);
  return rc == 0 ? dh_spin_unlock (&ctx, idx) : rc;
}
