/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Producer: slot pool acquire/commit/abort/pin, the commit ring,
 * back-pressure, closing and handover.  docs/protocol.md §5 and §7 are
 * the spec; consumers (admission, liveness, requests) are in admission.c. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "dh_producer_private.h"

void
dh_producer_config_init (dh_producer_config *cfg)
{
  memset (cfg, 0, sizeof *cfg);
  cfg->slot_count = 8;
  cfg->max_consumers = 16;
  cfg->policy = DH_POLICY_RING;
  cfg->on_full = DH_ON_FULL_BLOCK;
  cfg->integrity = DH_INTEGRITY_NONE;
  cfg->check = DH_CHECK_ENFORCED;
  cfg->mode = 0600;
}

static int
check_config (const dh_producer_config *cfg, dh_producer_config *eff)
{
  if (!cfg || !cfg->name)
    return dh_fail (-EINVAL, "producer config needs a name");
  *eff = *cfg;
  if (cfg->policy > DH_POLICY_DOUBLE || cfg->on_full > DH_ON_FULL_DROP
      || cfg->integrity > DH_INTEGRITY_HMAC || cfg->check > DH_CHECK_MANUAL)
    return dh_fail (DH_ECONFIG, "unknown policy %d, on-full %d, integrity %d or "
        "check %d", cfg->policy, cfg->on_full, cfg->integrity, cfg->check);
  /* The latest-value policies fix the pool size. */
  if (cfg->policy == DH_POLICY_SINGLE)
    eff->slot_count = 1;
  else if (cfg->policy == DH_POLICY_DOUBLE)
    eff->slot_count = 2;
  if (cfg->integrity == DH_INTEGRITY_HMAC && !cfg->secret)
    return dh_fail (DH_ECONFIG, "integrity 'hmac' needs a secret");
  if (cfg->max_holds > DH_MAX_HOLDS)
    return dh_fail (DH_ECONFIG, "max holds %u exceeds %u", cfg->max_holds, DH_MAX_HOLDS);
  if (cfg->schema && strlen (cfg->schema) > 4096)
    return dh_fail (DH_ECONFIG, "schema string longer than 4096 bytes");
  /* only the producer writes the block: a group or other write bit would
   * let consumers change what every reader trusts (docs/security.md) */
  if (cfg->mode & 0022)
    return dh_fail (DH_ECONFIG, "mode %04o lets others write the block; consumers need "
        "read access only (e.g. %04o)", (unsigned) cfg->mode, (unsigned) (cfg->mode & ~0022u));
  return 0;
}

static uint32_t
effective_max_holds (const dh_producer_config *cfg)
{
  if (cfg->max_holds)
    return cfg->max_holds;
  uint32_t half = cfg->slot_count / 2;
  return half < 1 ? 1 : half > DH_MAX_HOLDS ? DH_MAX_HOLDS : half;
}

/* Keeps what a successor needs (dh_producer_create_successor). */
static int
keep_config (dh_producer *p, const dh_producer_config *eff)
{
  p->cfg = *eff;
  p->cfg.name = NULL;
  p->cfg.origin = NULL;
  if (eff->secret) {
    memcpy (p->secret, eff->secret, DH_SECRET_SIZE);
    p->cfg.secret = p->secret;
  }
  if (eff->schema && !(p->schema = strdup (eff->schema)))
    return dh_fail (-ENOMEM, "out of memory");
  p->cfg.schema = p->schema;
  return 0;
}

static void
free_private (dh_producer *p)
{
  free (p->own);
  free (p->held_mask);
  free (p->held_stamp);
  free (p->pending);
  free (p->schema);
  sodium_memzero (p->secret, sizeof p->secret);
  free (p);
}

int
dh_producer_create (const dh_producer_config *cfg, dh_producer **out)
{
  DH_CHECK_ARG (out);
  dh_producer_config eff;
  int rc = check_config (cfg, &eff);
  if (rc != 0)
    return rc;
  if (sodium_init () < 0)
    return dh_fail (-ENOSYS, "libsodium failed to initialise");
  dh_producer *p = calloc (1, sizeof *p);
  if (!p)
    return dh_fail (-ENOMEM, "out of memory");
  p->b.fd = -1;
  p->x_fd = -1;
  p->event_fd = -1;
  p->inotify_fd = -1;
  for (uint32_t i = 0; i < DH_MAX_CONSUMERS; i++)
    p->peers[i].fd = -1;
  p->own = calloc (eff.slot_count ? eff.slot_count : 1, sizeof *p->own);
  p->held_mask = calloc (eff.slot_count ? eff.slot_count : 1, sizeof *p->held_mask);
  p->held_stamp = calloc (eff.slot_count ? eff.slot_count : 1, sizeof *p->held_stamp);
  if (eff.request_fn)
    p->pending = calloc (DH_MAX_CONSUMERS, sizeof *p->pending);
  if (!p->own || !p->held_mask || !p->held_stamp || (eff.request_fn && !p->pending)
      || (rc = keep_config (p, &eff)) != 0) {
    free_private (p);
    return rc ? rc : dh_fail (-ENOMEM, "out of memory");
  }
  if ((rc = dh_block_create (&p->b, &eff, effective_max_holds (&eff))) != 0) {
    free_private (p);
    return rc;
  }
  pthread_mutex_init (&p->lock, NULL);
  pthread_mutex_init (&p->zone_lock, NULL);
  p->live = eff.live;
  /* The exchange object is the origin's, shared along a handover chain. */
  rc = dh_exchange_open (p->b.origin, eff.chain_index == 0, eff.mode, &p->x, &p->x_fd);
  if (rc != 0)
    dh_log (DH_LOG_WARNING, "%s: no exchange object (application spinlocks "
        "unavailable): %s", p->b.name, dh_error_detail ());
  /* Consumers that registered before us are admitted from record 1, before
   * the block becomes visible (the magic is published after). */
  rc = dh_admission_start (p);
  if (rc != 0) {
    dh_producer_destroy (p);
    return rc;
  }
  dh_block_publish (&p->b);
  *out = p;
  return 0;
}

void
dh_producer_close (dh_producer *p)
{
  if (!p || atomic_exchange (&p->closed, true))
    return;
  dh_shm_header *h = p->b.hdr;
  pthread_mutex_lock (&p->lock);
  /* Pairs with the acquire load in the consumers' wait loop: they drain
   * what was published, then see CLOSED. */
  atomic_store_explicit (&h->producer_state, DH_PRODUCER_CLOSED, memory_order_release);
  pthread_mutex_unlock (&p->lock);
  atomic_fetch_add_explicit (&h->data_wake, 1, memory_order_seq_cst);
  dh_futex_wake_all (&h->data_wake);
  atomic_fetch_add_explicit (&h->admit_wake, 1, memory_order_seq_cst);
  dh_futex_wake_all (&h->admit_wake);
  /* consumers may see CLOSED while the name still exists (session.c
   * avoids a closed session) */
  DH_TEST_POINT ("producer.closed_not_unlinked");
  dh_unlink_if_same (p->b.fd, p->b.name);
  /* the origin's exchange object goes with the name, not at destroy: an
   * application may keep memory of the block (an allocator) until it
   * exits without destroying it */
  if (p->b.chain_index == 0 && p->x)
    dh_exchange_unlink (p->x_fd, p->b.origin);
  dh_admission_stop (p);
  dh_producer_wakeup (p);
}

void
dh_producer_destroy (dh_producer *p)
{
  if (!p)
    return;
  dh_producer_close (p);
  dh_admission_forget_all (p);
  dh_exchange_close (p->x, p->x_fd, p->b.origin, p->b.chain_index == 0);
  dh_unlock_byte (p->b.fd, DH_LOCK_PRODUCER);
  dh_block_unmap (&p->b);
  pthread_mutex_destroy (&p->lock);
  pthread_mutex_destroy (&p->zone_lock);
  free_private (p);
}

void
dh_producer_set_live (dh_producer *p, bool live)
{
  pthread_mutex_lock (&p->lock);
  p->live = live;
  atomic_store_explicit (&p->b.hdr->producer_live, live ? 1 : 0, memory_order_relaxed);
  dh_invalidate_min (p);
  dh_admission_refresh_leaky (p);
  pthread_mutex_unlock (&p->lock);
}

/* ---- which slots are free --------------------------------------------------- */

void
dh_invalidate_min (dh_producer *p)
{
  p->min_valid = false;
}

static bool
latest_value (const dh_block *b)
{
  return b->policy != DH_POLICY_RING;
}

static bool
waits_for_cursors (const dh_block *b)
{
  return b->policy == DH_POLICY_RING && b->on_full == DH_ON_FULL_BLOCK;
}

static uint64_t
compute_min_cursor (const dh_producer *p)
{
  uint64_t min = UINT64_MAX;
  for (uint64_t m = p->active; m; m &= m - 1) {
    uint32_t i = (uint32_t) __builtin_ctzll (m);
    if (!dh_peer_waited_for (p, i))
      continue;
    uint64_t cur = dh_peer_cursor (p, i);
    if (cur < min)
      min = cur;
  }
  return min;
}

static uint32_t
session32 (const dh_block *b)
{
  return (uint32_t) b->session_id;
}

/* Reads every active consumer's hold entries once (acquire: pairs with the
 * consumers' stores of their entries) and marks the slots they name. */
static void
collect_holds (dh_producer *p)
{
  const dh_block *b = &p->b;
  uint32_t tag = session32 (b);
  p->stamp++;
  if (p->stamp == 0) { /* wrapped: forget every old mark */
    memset (p->held_stamp, 0, b->slot_count * sizeof *p->held_stamp);
    p->stamp = 1;
  }
  p->holds_collected = true;
  for (uint64_t m = p->active; m; m &= m - 1) {
    uint32_t i = (uint32_t) __builtin_ctzll (m);
    const dh_peer *peer = &p->peers[i];
    for (uint32_t j = 0; j < peer->quota; j++) {
      uint64_t e = atomic_load_explicit (&peer->obj->holds[j], memory_order_acquire);
      uint32_t slot = DH_HOLD_SLOT (e);
      /* untrusted: another session's entry or a slot we do not have is
       * ignored (only its writer could be hurt by that) */
      if ((uint32_t) e == 0 || DH_HOLD_SESSION (e) != tag || slot >= b->slot_count)
        continue;
      if (p->held_stamp[slot] != p->stamp) {
        p->held_stamp[slot] = p->stamp;
        p->held_mask[slot] = 0;
      }
      p->held_mask[slot] |= UINT64_C (1) << i;
    }
  }
}

static bool
held_now (const dh_producer *p, uint32_t s)
{
  return p->held_stamp[s] == p->stamp && p->held_mask[s] != 0;
}

/* The re-check of the claim: seq_cst loads against the consumers' seq_cst
 * stores of their entries (the store-buffer pattern of §5.3). */
static bool
anyone_holds (const dh_producer *p, uint32_t s)
{
  uint64_t want = DH_HOLD_ENTRY (session32 (&p->b), s);
  for (uint64_t m = p->active; m; m &= m - 1) {
    const dh_peer *peer = &p->peers[__builtin_ctzll (m)];
    for (uint32_t j = 0; j < peer->quota; j++)
      if (atomic_load_explicit (&peer->obj->holds[j], memory_order_seq_cst) == want)
        return true;
  }
  return false;
}

/* Is slot @s blocked only by waited-for cursors that have not passed its
 * record (block mode)?  Recomputes the cached minimum at most once per
 * scan. */
static bool
behind_cursors (dh_producer *p, uint32_t s)
{
  if (DH_SLOT_STATE (p->own[s].word) != DH_SLOT_COMMITTED || !waits_for_cursors (&p->b))
    return false;
  uint64_t seq = p->own[s].commit_seq;
  if (!p->min_valid || (seq >= p->min_cursor && !p->min_fresh)) {
    p->min_cursor = compute_min_cursor (p);
    p->min_valid = true;
    p->min_fresh = true;
  }
  return seq >= p->min_cursor;
}

static void
fill_slot (const dh_block *b, uint32_t i, uint64_t gen, dh_slot *out)
{
  out->index = i;
  out->generation = gen;
  out->data = dh_payload_at (b, i);
  out->capacity = b->slot_size;
  out->reserved = 0;
}

/* Claims slot @i (free by our private state and the hold snapshot). */
static bool
claim (dh_producer *p, uint32_t i, dh_slot *out)
{
  dh_block *b = &p->b;
  dh_slot_own *own = &p->own[i];
  dh_shm_slot *s = &b->slots[i];
  uint64_t old = own->word;
  uint64_t claimed = DH_SLOT_WORD (DH_SLOT_GEN (old) + 1, DH_SLOT_WRITING);
  uint32_t n = ++own->claims;
  atomic_store_explicit (&s->claim, n, memory_order_relaxed);
  /* seq_cst: the store half of the store-buffer pair with a consumer
   * taking a hold (consumer.c take_hold): it stores its entry, then loads
   * the state; we store the state, then load the entries. */
  atomic_store_explicit (&s->state, claimed, memory_order_seq_cst);
  DH_TEST_POINT ("claim.stored");
  if (!latest_value (b) && anyone_holds (p, i)) {
    /* a reader got in first: put the slot back untouched (readers of the
     * old generation stay valid) */
    atomic_store_explicit (&s->state, old, memory_order_release);
    /* Pairs with the consumer's acquire load of decided: it sees the
     * restored state once it sees the decision. */
    atomic_store_explicit (&s->decided, n, memory_order_release);
    dh_relaxed_inc (&b->hdr->metrics.write_lock_contention, 1);
    DH_TEST_POINT ("claim.decided");
    return false;
  }
  atomic_store_explicit (&s->decided, n, memory_order_release);
  DH_TEST_POINT ("claim.decided");
  /* latest-value readers copy without a hold: the payload writes that
   * follow must not become visible before WRITING (seqlock writer; pairs
   * with the acquire fence in consumer.c validate_unheld) */
  dh_release_fence ();
  own->word = claimed;
  atomic_store_explicit (&s->write_start_ns, dh_now_ns (), memory_order_relaxed);
  fill_slot (b, i, DH_SLOT_GEN (claimed), out);
  return true;
}

/* One pass over the pool from the round-robin hint.  p->lock held.  The
 * consumers' hold entries are read only once a claim met a hold: in a
 * stream the oldest slot is rarely held, and the claim re-checks anyway. */
static bool
scan_locked (dh_producer *p, dh_slot *out)
{
  dh_block *b = &p->b;
  bool latest = latest_value (b);
  p->holds_collected = false;
  p->min_fresh = false;
  for (uint32_t k = 0; k < b->slot_count; k++) {
    uint32_t i = p->hint + k;
    if (i >= b->slot_count)
      i -= b->slot_count;
    const dh_slot_own *own = &p->own[i];
    if (DH_SLOT_STATE (own->word) == DH_SLOT_WRITING || own->pinned)
      continue;
    if (!latest && ((p->holds_collected && held_now (p, i)) || behind_cursors (p, i)))
      continue;
    if (claim (p, i, out)) {
      p->hint = i + 1 == b->slot_count ? 0 : i + 1;
      dh_relaxed_inc (&b->hdr->metrics.slots_acquired, 1);
      return true;
    }
    if (!latest && !p->holds_collected)
      collect_holds (p);
  }
  return false;
}

/* The consumers whose progress could free a slot now: holders of slots we
 * could otherwise take and, in block mode, waited-for consumers whose
 * cursor has not passed a candidate's record.  Call after a failed scan. */
static uint64_t
gating_consumers (dh_producer *p)
{
  const dh_block *b = &p->b;
  uint64_t gate = 0;
  if (!latest_value (b) && !p->holds_collected)
    collect_holds (p);
  uint64_t oldest = UINT64_MAX;
  for (uint32_t i = 0; i < b->slot_count; i++) {
    const dh_slot_own *own = &p->own[i];
    if (DH_SLOT_STATE (own->word) == DH_SLOT_WRITING || own->pinned)
      continue;
    if (held_now (p, i))
      gate |= p->held_mask[i];
    if (DH_SLOT_STATE (own->word) == DH_SLOT_COMMITTED && own->commit_seq < oldest)
      oldest = own->commit_seq;
  }
  if (waits_for_cursors (b) && oldest != UINT64_MAX)
    for (uint64_t m = p->active; m; m &= m - 1) {
      uint32_t i = (uint32_t) __builtin_ctzll (m);
      if (dh_peer_waited_for (p, i) && dh_peer_cursor (p, i) <= oldest)
        gate |= UINT64_C (1) << i;
    }
  return gate & p->active;
}

/* ---- waiting for space ------------------------------------------------------ */

static bool
cancelled (const dh_producer *p, const int *cancel)
{
  return atomic_load (&p->wakeup) || (cancel && __atomic_load_n (cancel, __ATOMIC_ACQUIRE));
}

static void
store_gate_mask (dh_producer *p)
{
  uint64_t mask = 0;
  for (uint32_t i = 0; i < DH_MAX_CONSUMERS; i++)
    if (p->gate_count[i])
      mask |= UINT64_C (1) << i;
  atomic_store_explicit (&p->b.hdr->gate_mask, mask, memory_order_seq_cst);
}

/* A thread of ours goes to sleep gated by @gate (p->lock held). */
static void
enter_gate (dh_producer *p, uint64_t gate)
{
  p->own_waiters++;
  for (uint64_t m = gate; m; m &= m - 1)
    p->gate_count[__builtin_ctzll (m)]++;
  store_gate_mask (p);
}

static void
leave_gate (dh_producer *p, uint64_t gate)
{
  p->own_waiters--;
  for (uint64_t m = gate; m; m &= m - 1)
    p->gate_count[__builtin_ctzll (m)]--;
  store_gate_mask (p);
}

/* One sleep: on the progress words of the consumers that gate us and on
 * our private wake-up word (docs/protocol.md §7). */
static int
sleep_for_space (dh_producer *p, uint64_t until, const int *cancel, dh_slot *out,
    uint64_t *gate_out)
{
  dh_shm_header *h = p->b.hdr;
  const _Atomic uint32_t *words[DH_MAX_CONSUMERS];
  uint32_t seen[DH_MAX_CONSUMERS];
  unsigned n = 0;
  /* the private word first, then the flags: a wake-up in between changes
   * the word and ends the sleep below at once */
  uint32_t local = atomic_load_explicit (&p->wake_word, memory_order_acquire);
  if (cancelled (p, cancel))
    return -ECANCELED;
  pthread_mutex_lock (&p->lock);
  if (scan_locked (p, out)) {
    pthread_mutex_unlock (&p->lock);
    return 1;
  }
  uint64_t gate = gating_consumers (p);
  /* a gating consumer that detached (it woke us) is forgotten at once */
  if (dh_reap_gating_locked (p, gate, false) > 0 && scan_locked (p, out)) {
    pthread_mutex_unlock (&p->lock);
    return 1;
  }
  gate = gating_consumers (p);
  for (uint64_t m = gate; m; m &= m - 1) {
    const dh_peer *peer = &p->peers[__builtin_ctzll (m)];
    words[n] = &peer->obj->progress;
    seen[n++] = atomic_load_explicit (&peer->obj->progress, memory_order_acquire);
  }
  /* Dekker with the consumers (consumer.c wake_producer): they store their
   * cursor or clear a hold, then load space_waiters; we publish that we
   * wait, then re-scan.  One of us sees the other, and a consumer that
   * sees us bumps its progress word, which ends our sleep.  The mask is
   * the union over our sleeping threads (each one's consumers must wake
   * it), and the fence makes the re-scan's loads seq_cst after the RMW. */
  enter_gate (p, gate);
  atomic_fetch_add_explicit (&h->space_waiters, 1, memory_order_seq_cst);
  atomic_thread_fence (memory_order_seq_cst);
  bool got = scan_locked (p, out);
  pthread_mutex_unlock (&p->lock);
  int rc = got ? 1 : 0;
  if (!got) {
    DH_TEST_POINT ("space.before_sleep");
    /* a timeout or a signal only loops back to the caller's checks */
    if (dh_futex_wait2 (words, seen, n, &p->wake_word, local, until) == -ETIMEDOUT)
      DH_TEST_POINT ("space.slice_expired");
  }
  atomic_fetch_sub_explicit (&h->space_waiters, 1, memory_order_seq_cst);
  pthread_mutex_lock (&p->lock);
  leave_gate (p, gate);
  pthread_mutex_unlock (&p->lock);
  *gate_out = gate;
  return rc;
}

/* Sleeps until consumers free space, checking the liveness of the ones
 * that gate us every DH_LIVENESS_SLICE_NS so a killed consumer stalls us
 * no longer than that. */
static int
wait_for_space (dh_producer *p, uint64_t deadline, const int *cancel, dh_slot *out)
{
  dh_block *b = &p->b;
  dh_shm_header *h = b->hdr;
  uint64_t started = dh_now_ns ();
  int rc = -ETIMEDOUT;
  for (int spin = 0; spin < DH_SPIN_ITERATIONS; spin++)
    dh_cpu_relax ();
  dh_relaxed_inc (&h->metrics.writer_waits, 1);
  atomic_store_explicit (&h->gated_since_ns, started, memory_order_relaxed);
  uint64_t next_reap = started + DH_LIVENESS_SLICE_NS;
  for (;;) {
    if (cancelled (p, cancel)) {
      rc = -ECANCELED;
      break;
    }
    uint64_t now = dh_now_ns ();
    if (now >= deadline)
      break;
    uint64_t gate = 0;
    uint64_t until = next_reap < deadline ? next_reap : deadline;
    int got = sleep_for_space (p, until, cancel, out, &gate);
    if (got == 1) {
      rc = 0;
      break;
    }
    if (got < 0) {
      rc = got;
      break;
    }
    if (dh_now_ns () >= next_reap) {
      next_reap = dh_now_ns () + DH_LIVENESS_SLICE_NS;
      pthread_mutex_lock (&p->lock);
      dh_reap_gating_locked (p, gate, true);
      pthread_mutex_unlock (&p->lock);
    }
  }
  atomic_store_explicit (&h->gated_since_ns, 0, memory_order_relaxed);
  dh_relaxed_inc (&h->metrics.writer_blocked_total_ns, dh_now_ns () - started);
  if (rc == -ETIMEDOUT) {
    dh_relaxed_inc (&h->metrics.writer_timeout_count, 1);
    dh_record_error (b, rc);
    return dh_fail (rc, "%s: no free slot (all %u slots are unread or held)",
        b->name, b->slot_count);
  }
  return rc;
}

static bool
scan (dh_producer *p, dh_slot *out)
{
  pthread_mutex_lock (&p->lock);
  bool ok = scan_locked (p, out);
  pthread_mutex_unlock (&p->lock);
  return ok;
}

int
dh_producer_acquire_cancellable (dh_producer *p, int timeout_ms, const int *cancel,
    dh_slot *out)
{
  DH_CHECK_ARG (p && out);
  if (cancelled (p, cancel))
    return -ECANCELED;
  if (scan (p, out))
    return 0;
  if (timeout_ms != 0)
    return wait_for_space (p, dh_deadline (timeout_ms), cancel, out);
  /* polling still notices dead consumers (at most once per slice) */
  uint64_t now = dh_now_ns ();
  pthread_mutex_lock (&p->lock);
  bool liveness = now - p->last_liveness_ns >= DH_LIVENESS_SLICE_NS;
  if (liveness)
    p->last_liveness_ns = now;
  bool got = dh_reap_gating_locked (p, gating_consumers (p), liveness) > 0
      && scan_locked (p, out);
  pthread_mutex_unlock (&p->lock);
  if (got)
    return 0;
  dh_relaxed_inc (&p->b.hdr->metrics.slot_acquire_errors, 1);
  return -EAGAIN;
}

int
dh_producer_acquire (dh_producer *p, int timeout_ms, dh_slot *out)
{
  return dh_producer_acquire_cancellable (p, timeout_ms, NULL, out);
}

int
dh_producer_acquire_batch (dh_producer *p, dh_slot *out, unsigned n, int timeout_ms)
{
  DH_CHECK_ARG (p && out && n > 0);
  int rc = dh_producer_acquire (p, timeout_ms, &out[0]);
  if (rc != 0)
    return rc;
  unsigned got = 1;
  pthread_mutex_lock (&p->lock);
  while (got < n && scan_locked (p, &out[got]))
    got++;
  pthread_mutex_unlock (&p->lock);
  return (int) got;
}

/* ---- commit / abort / pins ------------------------------------------------ */

/* The slot handle must name a slot we hold in WRITING at its generation
 * (our private state decides).  p->lock held. */
static int
check_writing (const dh_producer *p, const dh_slot *slot)
{
  const dh_block *b = &p->b;
  if (slot->index >= b->slot_count)
    return dh_fail (DH_ESLOT, "slot index %u out of range (%u slots)", slot->index,
        b->slot_count);
  if (p->own[slot->index].word != DH_SLOT_WORD (slot->generation, DH_SLOT_WRITING))
    return dh_fail (DH_ESLOT, "slot %u is not being written at generation %llu",
        slot->index, (unsigned long long) slot->generation);
  return 0;
}

/* Writes descriptor @seq under its seqlock.  No fences: every field is
 * stored with release, so a reader whose acquire load of any field sees a
 * new value also sees the seq = 0 stored before it (and fails its
 * re-check).  On x86 these are plain stores. */
static void
write_desc (dh_block *b, uint64_t seq, const dh_slot *slot,
    const dh_record_info *info, uint64_t now)
{
  dh_shm_desc *d = &b->ring[seq & b->ring_mask];
  const memory_order rel = memory_order_release;
  atomic_store_explicit (&d->seq, 0, memory_order_relaxed);
  atomic_store_explicit (&d->generation, slot->generation, rel);
  atomic_store_explicit (&d->size, info->size, rel);
  atomic_store_explicit (&d->pts, info->pts, rel);
  atomic_store_explicit (&d->dts, info->dts, rel);
  atomic_store_explicit (&d->duration, info->duration, rel);
  atomic_store_explicit (&d->offset, info->offset, rel);
  atomic_store_explicit (&d->offset_end, info->offset_end, rel);
  atomic_store_explicit (&d->commit_ns, now, rel);
  atomic_store_explicit (&d->slot, slot->index, rel);
  atomic_store_explicit (&d->kind, info->kind, rel);
  atomic_store_explicit (&d->flags, info->flags, rel);
  atomic_store_explicit (&d->caps_gen, info->caps_gen, rel);
  atomic_store_explicit (&d->user[0], info->user[0], rel);
  atomic_store_explicit (&d->user[1], info->user[1], rel);
  /* Pairs with the reader's acquire load of seq: the fields, the slot
   * state (COMMITTED) and the payload are visible to whoever sees seq. */
  atomic_store_explicit (&d->seq, seq, rel);
}

/* Makes the slot COMMITTED and appends its descriptor.  p->lock held. */
static int
publish_one (dh_producer *p, const dh_slot *slot, const dh_record_info *info,
    uint64_t now, bool keep, uint64_t *seq_out)
{
  dh_block *b = &p->b;
  dh_slot_own *own = &p->own[slot->index];
  uint64_t expected = own->word;
  uint64_t committed = DH_SLOT_WORD (slot->generation, DH_SLOT_COMMITTED);
  /* Release: payload and checksum writes happen before COMMITTED.  A CAS
   * from the word we stored: a mirror someone else changed is refused. */
  if (!atomic_compare_exchange_strong_explicit (&b->slots[slot->index].state, &expected,
          committed, memory_order_release, memory_order_relaxed))
    return dh_fail (DH_ESLOT, "%s: slot %u state changed behind the producer "
        "(%016llx, expected %016llx); not publishing it", b->name, slot->index,
        (unsigned long long) expected, (unsigned long long) own->word);
  uint64_t seq = ++p->last_seq;
  own->word = committed;
  own->commit_seq = seq;
  own->pinned = keep;
  atomic_store_explicit (&b->slots[slot->index].commit_seq, seq, memory_order_relaxed);
  write_desc (b, seq, slot, info, now);
  *seq_out = seq;
  return 0;
}

/* Publishes up to @seq and wakes sleeping consumers, if any.  p->lock held. */
static void
publish_head (dh_producer *p, uint64_t seq)
{
  dh_shm_header *h = p->b.hdr;
  /* Dekker with a consumer going to sleep (consumer.c wait_for_data): it
   * stores its waiting flag, then loads head; we store head and data_wake,
   * then load the flags.  Either it sees the new head or we see it
   * waiting.  No system call when nobody sleeps. */
  atomic_store_explicit (&h->head, seq, memory_order_seq_cst);
  atomic_store_explicit (&h->data_wake, (uint32_t) seq, memory_order_seq_cst);
  for (uint64_t m = p->active; m; m &= m - 1) {
    const dh_peer *peer = &p->peers[__builtin_ctzll (m)];
    if (atomic_load_explicit (&peer->obj->waiting, memory_order_seq_cst) != 0) {
      dh_futex_wake_all (&h->data_wake);
      dh_relaxed_inc (&h->metrics.wakeups_sent, 1);
      break;
    }
  }
}

static int
prepare_commit (dh_producer *p, const dh_slot *slot, const dh_record_info *info)
{
  dh_block *b = &p->b;
  int rc = check_writing (p, slot);
  if (rc == 0 && p->handed_over)
    rc = dh_fail (DH_EHANDOVER, "%s was handed over; commit to the successor", b->name);
  if (rc == 0 && info->size > b->slot_size)
    rc = dh_fail (DH_ETOOBIG, "record of %llu bytes does not fit a %llu-byte slot",
        (unsigned long long) info->size, (unsigned long long) b->slot_size);
  if (rc != 0) {
    dh_relaxed_inc (&b->hdr->metrics.slot_commit_errors, 1);
    dh_record_error (b, rc);
  }
  return rc;
}

static void
count_commit (dh_producer *p, uint64_t records, uint64_t bytes, uint64_t now)
{
  dh_shm_metrics *m = &p->b.hdr->metrics;
  dh_relaxed_inc (&m->slots_written, records);
  dh_relaxed_inc (&m->bytes_written, bytes);
  atomic_store_explicit (&p->b.hdr->producer_heartbeat_ns, now, memory_order_relaxed);
}

static bool
hashes_on_commit (const dh_block *b)
{
  return b->integrity != DH_INTEGRITY_NONE && b->check == DH_CHECK_ENFORCED;
}

static void wake_own_waiters (dh_producer *p);

static int
commit_one (dh_producer *p, const dh_slot *slot, const dh_record_info *info,
    uint64_t *out_seq, bool keep)
{
  DH_CHECK_ARG (p && slot && info);
  dh_block *b = &p->b;
  int rc;
  if (hashes_on_commit (b)) {
    /* hash outside the lock, but only a slot the handle really owns */
    pthread_mutex_lock (&p->lock);
    rc = prepare_commit (p, slot, info);
    pthread_mutex_unlock (&p->lock);
    if (rc != 0)
      return rc;
    dh_payload_hash (b, dh_payload_at (b, slot->index), info->size,
        b->slots[slot->index].checksum);
  }
  uint64_t now = dh_now_ns (), seq = 0;
  pthread_mutex_lock (&p->lock);
  rc = prepare_commit (p, slot, info);
  if (rc == 0)
    rc = publish_one (p, slot, info, now, keep, &seq);
  if (rc == 0)
    publish_head (p, seq);
  /* the slot may be reusable now (nobody holds it yet): our own threads
   * waiting for one are told, as consumers tell us when they move */
  bool wake = rc == 0 && !keep && p->own_waiters > 0;
  pthread_mutex_unlock (&p->lock);
  if (wake)
    wake_own_waiters (p);
  if (rc != 0)
    return rc;
  count_commit (p, 1, info->size, now);
  if (out_seq)
    *out_seq = seq;
  return 0;
}

int
dh_producer_commit (dh_producer *p, const dh_slot *slot, const dh_record_info *info,
    uint64_t *out_seq)
{
  return commit_one (p, slot, info, out_seq, false);
}

int
dh_producer_commit_keep (dh_producer *p, const dh_slot *slot, const dh_record_info *info,
    uint64_t *out_seq)
{
  return commit_one (p, slot, info, out_seq, true);
}

int
dh_producer_commit_batch (dh_producer *p, const dh_slot *slots,
    const dh_record_info *infos, unsigned n, uint64_t *first_seq)
{
  DH_CHECK_ARG (p && slots && infos && n > 0);
  dh_block *b = &p->b;
  uint64_t bytes = 0, now = dh_now_ns (), seq = 0;
  int rc = 0;
  pthread_mutex_lock (&p->lock);
  for (unsigned k = 0; k < n && rc == 0; k++) {
    rc = prepare_commit (p, &slots[k], &infos[k]);
    bytes += infos[k].size;
  }
  /* nothing published on a bad handle: the caller still holds every slot */
  for (unsigned k = 0; k < n && rc == 0; k++) {
    if (hashes_on_commit (b))
      dh_payload_hash (b, dh_payload_at (b, slots[k].index), infos[k].size,
          b->slots[slots[k].index].checksum);
    rc = publish_one (p, &slots[k], &infos[k], now, false, &seq);
    if (rc == 0 && k == 0 && first_seq)
      *first_seq = seq;
  }
  if (seq)
    publish_head (p, seq);
  bool wake = seq && p->own_waiters > 0;
  pthread_mutex_unlock (&p->lock);
  if (wake)
    wake_own_waiters (p);
  if (rc == 0)
    count_commit (p, n, bytes, now);
  return rc;
}

/* Our own threads may wait for a slot this frees. */
static void
wake_own_waiters (dh_producer *p)
{
  DH_TEST_POINT ("producer.wake_own");
  atomic_fetch_add_explicit (&p->wake_word, 1, memory_order_seq_cst);
  dh_futex_wake_private (&p->wake_word);
}

int
dh_producer_abort (dh_producer *p, const dh_slot *slot)
{
  DH_CHECK_ARG (p && slot);
  dh_block *b = &p->b;
  pthread_mutex_lock (&p->lock);
  int rc = check_writing (p, slot);
  if (rc == 0) {
    uint64_t freed = DH_SLOT_WORD (slot->generation, DH_SLOT_FREE);
    p->own[slot->index].word = freed;
    /* nothing was published, so no reader holds this generation */
    atomic_store_explicit (&b->slots[slot->index].state, freed, memory_order_release);
  }
  pthread_mutex_unlock (&p->lock);
  if (rc != 0)
    return rc;
  dh_relaxed_inc (&b->hdr->metrics.commits_aborted, 1);
  wake_own_waiters (p);
  return 0;
}

int
dh_producer_unpin (dh_producer *p, const dh_slot *slot)
{
  DH_CHECK_ARG (p && slot);
  pthread_mutex_lock (&p->lock);
  int rc = 0;
  if (slot->index >= p->b.slot_count || !p->own[slot->index].pinned
      || p->own[slot->index].word != DH_SLOT_WORD (slot->generation, DH_SLOT_COMMITTED))
    rc = dh_fail (DH_ESLOT, "slot %u is not pinned at generation %llu", slot->index,
        (unsigned long long) slot->generation);
  else
    p->own[slot->index].pinned = false;
  pthread_mutex_unlock (&p->lock);
  if (rc == 0)
    wake_own_waiters (p);
  return rc;
}

/* May the record in slot @i end now?  Nobody holds it, the waited-for
 * consumers have read it (block mode) and, unless @force, every live
 * consumer has.  p->lock held. */
static bool
retirable (dh_producer *p, uint32_t i, bool force)
{
  p->min_fresh = false;
  collect_holds (p);
  if (held_now (p, i) || behind_cursors (p, i))
    return false;
  if (force)
    return true;
  uint64_t seq = p->own[i].commit_seq;
  for (uint64_t m = p->active; m; m &= m - 1)
    if (dh_peer_cursor (p, (uint32_t) __builtin_ctzll (m)) <= seq)
      return false;
  return true;
}

int
dh_producer_retire (dh_producer *p, const dh_slot *slot, bool force)
{
  DH_CHECK_ARG (p && slot);
  dh_block *b = &p->b;
  if (slot->index >= b->slot_count)
    return dh_fail (DH_ESLOT, "slot %u of %u", slot->index, b->slot_count);
  pthread_mutex_lock (&p->lock);
  dh_slot_own *own = &p->own[slot->index];
  int rc = -EBUSY;
  dh_slot claimed;
  if (own->word != DH_SLOT_WORD (slot->generation, DH_SLOT_COMMITTED))
    rc = DH_ESLOT; /* reused or retired already: the record is gone */
  else if (!own->pinned && (latest_value (b) ? force : retirable (p, slot->index, force))
      && claim (p, slot->index, &claimed)) {
    /* claimed at a new generation (a reader coming for the record finds
     * it overwritten), then free: what claim does for a writer, and what
     * abort undoes */
    uint64_t freed = DH_SLOT_WORD (claimed.generation, DH_SLOT_FREE);
    own->word = freed;
    /* release: pairs with the consumers' acquire loads of the state (a
     * reader that sees FREE at the new generation skips the record); the
     * claim's seq_cst store of WRITING already stopped new holds */
    atomic_store_explicit (&b->slots[slot->index].state, freed, memory_order_release);
    rc = 0;
  }
  pthread_mutex_unlock (&p->lock);
  if (rc == 0)
    wake_own_waiters (p);
  return rc;
}

int
dh_producer_update_checksum (dh_producer *p, const dh_slot *slot, uint64_t size)
{
  DH_CHECK_ARG (p && slot);
  dh_block *b = &p->b;
  pthread_mutex_lock (&p->lock);
  int rc = check_writing (p, slot);
  pthread_mutex_unlock (&p->lock);
  if (rc != 0)
    return rc;
  if (b->integrity == DH_INTEGRITY_NONE)
    return dh_fail (DH_ECONFIG, "%s was created without integrity", b->name);
  if (size > b->slot_size)
    return dh_fail (DH_ETOOBIG, "checksum size %llu exceeds the slot size",
        (unsigned long long) size);
  dh_payload_hash (b, dh_payload_at (b, slot->index), size,
      b->slots[slot->index].checksum);
  return 0;
}

uint64_t
dh_oldest_intact_locked (const dh_producer *p)
{
  const dh_block *b = &p->b;
  uint64_t oldest = p->last_seq ? p->last_seq : 1;
  for (uint32_t i = 0; i < b->slot_count; i++) {
    const dh_slot_own *own = &p->own[i];
    uint64_t seq = own->commit_seq;
    /* the descriptor must still be in the ring too */
    if (DH_SLOT_STATE (own->word) == DH_SLOT_COMMITTED && seq && seq < oldest
        && p->last_seq - seq <= b->ring_mask)
      oldest = seq;
  }
  return oldest;
}

/* ---- handover -------------------------------------------------------------- */

int
dh_producer_handover (dh_producer *p, const char *successor)
{
  DH_CHECK_ARG (p && successor);
  char name[DH_NAME_MAX + 1];
  int rc = dh_shm_name (successor, name, sizeof name);
  if (rc != 0)
    return rc;
  dh_block *b = &p->b;
  dh_shm_header *h = b->hdr;
  pthread_mutex_lock (&p->lock);
  bool again = p->handed_over;
  pthread_mutex_unlock (&p->lock);
  if (again)
    return dh_fail (-EALREADY, "%s was handed over already: its announcement never "
        "changes (consumers read every block of the chain)", b->name);
  /* the announcement names one block: ours, next in the chain, alive */
  dh_block_peek next;
  if ((rc = dh_block_peek_at (name, &next)) != 0)
    return rc;
  struct stat own;
  if (fstat (b->fd, &own) != 0 || next.uid != own.st_uid || !next.alive
      || strcmp (next.origin, b->origin) != 0 || next.chain_index != b->chain_index + 1)
    return dh_fail (-EINVAL, "%s is not a live successor of %s (chain index %u of %s "
        "expected; see dh_producer_create_successor)", name, b->name, b->chain_index + 1,
        b->origin);
  uint8_t padded[DH_NAME_MAX + 1] = { 0 }, mac[DH_HASH_SIZE];
  memcpy (padded, name, strlen (name) + 1);
  pthread_mutex_lock (&p->lock);
  if (p->handed_over) {
    pthread_mutex_unlock (&p->lock);
    return dh_fail (-EALREADY, "%s was handed over already: its announcement never "
        "changes (consumers read every block of the chain)", b->name);
  }
  /* name, session, MAC and the cutover under the seqlock, odd while
   * writing; nothing is published here after the cutover */
  uint64_t cutover = p->last_seq + 1;
  dh_successor_mac (b, cutover, next.session_id, name, mac);
  atomic_store_explicit (&h->successor_seq, p->successor_seq + 1, memory_order_relaxed);
  dh_store_words ((uint8_t *) h->successor_name, padded, sizeof padded);
  atomic_store_explicit (&h->successor_session, next.session_id, memory_order_relaxed);
  dh_store_words (h->successor_mac, mac, sizeof mac);
  /* Release pairs with the consumers' acquire load in wait_for_data. */
  atomic_store_explicit (&h->cutover_seq, cutover, memory_order_release);
  p->handed_over = true;
  p->successor_session = next.session_id;
  p->successor_seq += 2;
  atomic_store_explicit (&h->successor_seq, p->successor_seq, memory_order_release);
  pthread_mutex_unlock (&p->lock);
  atomic_fetch_add_explicit (&h->data_wake, 1, memory_order_seq_cst);
  dh_futex_wake_all (&h->data_wake);
  return 0;
}

int
dh_producer_create_successor (dh_producer *p, uint64_t slot_size, dh_producer **out)
{
  DH_CHECK_ARG (p && out && slot_size > 0);
  char name[DH_NAME_MAX + 1];
  uint32_t n = p->b.chain_index + 1;
  if (n >= DH_MAX_CHAIN)
    return dh_fail (-EMLINK, "%s: a chain has at most %u blocks (handed over %u times)",
        p->b.origin, DH_MAX_CHAIN, p->b.chain_index);
  dh_producer_config cfg = p->cfg;
  cfg.origin = p->b.origin;
  cfg.chain_index = n;
  cfg.slot_size = slot_size;
  pthread_mutex_lock (&p->lock);
  cfg.live = p->live;
  pthread_mutex_unlock (&p->lock);
  int rc = 0;
  /* "<origin>.h<n>"; if someone else took that name, a random one (the
   * announcement names it, nobody has to guess it) */
  for (int attempt = 0; attempt < 3; attempt++) {
    uint32_t r;
    randombytes_buf (&r, sizeof r);
    int len = attempt == 0 ? snprintf (name, sizeof name, "%s.h%u", p->b.origin, n)
        : snprintf (name, sizeof name, "%s.h%u-%08x", p->b.origin, n, r);
    if (len < 0 || len > DH_BLOCK_NAME_MAX)
      return dh_fail (-ENAMETOOLONG, "successor name of %s is too long", p->b.origin);
    cfg.name = name;
    rc = dh_producer_create (&cfg, out);
    if (rc != DH_EBUSY && rc != DH_ENOTDATAHUB && rc != -EACCES && rc != -EPERM)
      return rc;
  }
  return rc;
}

/* ---- misc ------------------------------------------------------------- */

void
dh_producer_wakeup (dh_producer *p)
{
  atomic_store (&p->wakeup, true);
  wake_own_waiters (p);
}

void
dh_producer_kick (dh_producer *p)
{
  wake_own_waiters (p);
}

void
dh_producer_clear_wakeup (dh_producer *p)
{
  atomic_store (&p->wakeup, false);
}

void
dh_producer_heartbeat (dh_producer *p)
{
  dh_shm_header *h = p->b.hdr;
  uint64_t now = dh_now_ns ();
  atomic_store_explicit (&h->producer_heartbeat_ns, now, memory_order_relaxed);
  atomic_store_explicit (&h->metrics.last_heartbeat_ns, now, memory_order_relaxed);
  dh_relaxed_inc (&h->metrics.heartbeat_count, 1);
}

const char *
dh_producer_shm_name (const dh_producer *p)
{
  return p->b.name;
}

uint64_t
dh_producer_slot_size (const dh_producer *p)
{
  return p->b.slot_size;
}

uint32_t
dh_producer_slot_count (const dh_producer *p)
{
  return p->b.slot_count;
}

uint64_t
dh_producer_session_id (const dh_producer *p)
{
  return p->b.session_id;
}

void
dh_producer_reset_metrics (dh_producer *p)
{
  pthread_mutex_lock (&p->lock);
  dh_metrics_reset (&p->b);
  dh_admission_reset_counters (p);
  pthread_mutex_unlock (&p->lock);
}

static int
spin_ctx (dh_producer *p, dh_spin_ctx *ctx)
{
  if (!p->x)
    return dh_fail (-ENOENT, "%s has no exchange object", p->b.name);
  ctx->x = p->x;
  ctx->b = &p->b;
  ctx->origin = p->b.origin;
  ctx->tag = 1;
  ctx->token = 0;
  return 0;
}

int
dh_producer_spin_lock (dh_producer *p, unsigned idx, int timeout_ms)
{
  DH_CHECK_ARG (p);
  dh_spin_ctx ctx;
  int rc = spin_ctx (p, &ctx);
  if (rc == 0)
    rc = dh_spin_lock (&ctx, idx, timeout_ms);
  if (rc == DH_ELOCKRECOVERED)
    dh_relaxed_inc (&p->b.hdr->metrics.spinlock_recoveries, 1);
  return rc;
}

int
dh_producer_spin_unlock (dh_producer *p, unsigned idx)
{
  DH_CHECK_ARG (p);
  dh_spin_ctx ctx;
  int rc = spin_ctx (p, &ctx);
  return rc == 0 ? dh_spin_unlock (&ctx, idx) : rc;
}

/* Writers of this process are serialised here; zones.c has the seqlock. */
int
dh_producer_zone_write (dh_producer *p, unsigned zone, const void *data, size_t len)
{
  DH_CHECK_ARG (p && (data || len == 0));
  pthread_mutex_lock (&p->zone_lock);
  int rc = zone < DH_MAX_ZONES ? dh_zone_write (&p->b, &p->zone_seq[zone], zone, data, len)
      : dh_zone_write (&p->b, NULL, zone, data, len);
  pthread_mutex_unlock (&p->zone_lock);
  return rc;
}
