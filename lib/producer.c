/* Producer: slot pool acquire/commit/abort, the commit ring, back-pressure
 * and reaping of dead consumers.  docs/protocol.md §4–§6 is the spec. */

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "dh_internal.h"

struct dh_producer {
  dh_block b;
  /* Serialises slot claims and commits between threads of this process:
   * sequence numbers must be assigned and published in one order. */
  pthread_mutex_t lock;
  pthread_mutex_t zone_lock;
  uint64_t last_seq;        /* last sequence number assigned */
  uint32_t hint;            /* next slot to look at: round robin ≈ oldest first */
  uint64_t min_cursor;      /* cache: lowest cursor of live non-leaky consumers */
  uint64_t min_epoch;       /* cursor_epoch when min_cursor was computed */
  bool min_fresh;           /* min_cursor recomputed during this scan */
  uint64_t last_reap_ns;
  atomic_bool wakeup;
};

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
  return 0;
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
  if ((rc = dh_block_create (&p->b, &eff)) != 0) {
    free (p);
    return rc;
  }
  pthread_mutex_init (&p->lock, NULL);
  pthread_mutex_init (&p->zone_lock, NULL);
  p->min_cursor = UINT64_MAX;
  p->min_epoch = UINT64_MAX; /* forces a first computation */
  *out = p;
  return 0;
}

/* Unlinks the name only if it still refers to our object (an operator may
 * have replaced it). */
static void
unlink_if_ours (dh_block *b)
{
  struct stat mine, named;
  char path[DH_NAME_MAX + 16];
  snprintf (path, sizeof path, "/dev/shm%s", b->name);
  if (fstat (b->fd, &mine) == 0 && stat (path, &named) == 0
      && mine.st_ino == named.st_ino && mine.st_dev == named.st_dev)
    shm_unlink (b->name);
}

void
dh_producer_destroy (dh_producer *p)
{
  if (!p)
    return;
  dh_shm_header *h = p->b.hdr;
  /* Pairs with the acquire load in the consumers' wait loop: they drain
   * what was published, then see CLOSED. */
  atomic_store_explicit (&h->producer_state, DH_PRODUCER_CLOSED, memory_order_release);
  atomic_fetch_add_explicit (&h->data_wake, 1, memory_order_seq_cst);
  dh_futex_wake_all (&h->data_wake);
  unlink_if_ours (&p->b);
  dh_unlock_byte (p->b.fd, DH_LOCK_PRODUCER);
  dh_block_unmap (&p->b);
  pthread_mutex_destroy (&p->lock);
  pthread_mutex_destroy (&p->zone_lock);
  sodium_memzero (p->b.hmac_key, sizeof p->b.hmac_key);
  free (p);
}

/* ---- consumers as the producer sees them --------------------------------- */

static uint64_t
compute_min_cursor (const dh_block *b)
{
  uint64_t min = UINT64_MAX;
  for (uint32_t i = 0; i < b->max_consumers; i++) {
    dh_shm_consumer *c = &b->consumers[i];
    /* Pairs with the consumer's release store of ACTIVE after it set its
     * cursor and leaky flag. */
    uint64_t w = atomic_load_explicit (&c->state, memory_order_acquire);
    if (DH_CONSUMER_STATE (w) != DH_CONSUMER_ACTIVE || c->leaky)
      continue;
    /* Pairs with the consumer's seq_cst cursor store, made after it set its
     * hold bit: seeing the new cursor means seeing the hold too. */
    uint64_t cur = atomic_load_explicit (&c->cursor, memory_order_acquire);
    if (cur < min)
      min = cur;
  }
  return min;
}


int
dh_producer_reap_dead_consumers (dh_producer *p)
{
  DH_CHECK_ARG (p);
  int reaped = dh_reap_dead_consumers (&p->b);
  if (reaped)
    p->min_epoch = UINT64_MAX; /* cursors of the dead no longer count */
  return reaped;
}

int
dh_producer_handover (dh_producer *p, const char *successor)
{
  DH_CHECK_ARG (p && successor);
  char name[DH_NAME_MAX + 1];
  int rc = dh_shm_name (successor, name, sizeof name);
  if (rc != 0)
    return rc;
  dh_shm_header *h = p->b.hdr;
  pthread_mutex_lock (&p->lock);
  /* the name under its seqlock (successor_seq odd while writing) */
  uint64_t seq = atomic_load_explicit (&h->successor_seq, memory_order_relaxed);
  atomic_store_explicit (&h->successor_seq, seq + 1, memory_order_relaxed);
  uint8_t padded[DH_NAME_MAX + 1] = { 0 };
  memcpy (padded, name, strlen (name) + 1);
  dh_store_words ((uint8_t *) h->successor_name, padded, sizeof padded);
  atomic_store_explicit (&h->successor_seq, seq + 2, memory_order_release);
  /* The cutover is set once: nothing is published here after it.  Release
   * pairs with the consumers' acquire load in wait_for_data. */
  if (atomic_load_explicit (&h->cutover_seq, memory_order_relaxed) == 0)
    atomic_store_explicit (&h->cutover_seq, p->last_seq + 1, memory_order_release);
  pthread_mutex_unlock (&p->lock);
  atomic_fetch_add_explicit (&h->data_wake, 1, memory_order_seq_cst);
  dh_futex_wake_all (&h->data_wake);
  return 0;
}

int
dh_producer_consumer_count (dh_producer *p)
{
  DH_CHECK_ARG (p);
  int n = 0;
  for (uint32_t i = 0; i < p->b.max_consumers; i++) {
    uint64_t w = atomic_load_explicit (&p->b.consumers[i].state, memory_order_acquire);
    if (DH_CONSUMER_STATE (w) == DH_CONSUMER_ACTIVE && dh_consumer_alive (&p->b, i))
      n++;
  }
  return n;
}

/* ---- acquire ------------------------------------------------------------- */

static bool
waits_for_cursors (const dh_block *b)
{
  return b->policy == DH_POLICY_RING && b->on_full == DH_ON_FULL_BLOCK;
}

/* Claims slot @i if it can be written now: FREE or COMMITTED, no reader
 * holds, and (block mode) every live non-leaky consumer has moved past its
 * record.  Called with p->lock held. */
static bool
try_claim (dh_producer *p, uint32_t i, dh_slot *out)
{
  dh_block *b = &p->b;
  dh_shm_slot *s = dh_slot_at (b, i);
  /* Acquire pairs with the release stores of the state in commit/abort. */
  uint64_t w = atomic_load_explicit (&s->state, memory_order_acquire);
  uint32_t st = DH_SLOT_STATE (w);
  if (st == DH_SLOT_WRITING)
    return false;
  /* Acquire pairs with the consumers' release of their hold: their reads
   * of the old payload happen before our writes. */
  if (atomic_load_explicit (&s->readers, memory_order_acquire) != 0)
    return false;
  if (st == DH_SLOT_COMMITTED && waits_for_cursors (b)) {
    uint64_t seq = atomic_load_explicit (&s->commit_seq, memory_order_relaxed);
    if (seq >= p->min_cursor && !p->min_fresh) {
      p->min_cursor = compute_min_cursor (b); /* at most once per scan */
      p->min_fresh = true;
    }
    if (seq >= p->min_cursor)
      return false;
  }
  uint64_t claimed = DH_SLOT_WORD (DH_SLOT_GEN (w) + 1, DH_SLOT_WRITING);
  if (!atomic_compare_exchange_strong (&s->state, &w, claimed))
    return false;
  /* Dekker with a reader taking a hold (dh_consumer_next): it sets its bit
   * and then loads the state; we stored WRITING and now load the bits.  In
   * the seq_cst order one of us sees the other.  If a reader got in first,
   * put the slot back untouched. */
  if (atomic_load_explicit (&s->readers, memory_order_seq_cst) != 0) {
    atomic_store_explicit (&s->state, w, memory_order_release);
    dh_relaxed_inc (&b->hdr->metrics.write_lock_contention, 1);
    return false;
  }
  atomic_store_explicit (&s->write_start_ns, dh_now_ns (), memory_order_relaxed);
  out->index = i;
  out->generation = DH_SLOT_GEN (claimed);
  out->data = dh_payload_at (b, i);
  out->capacity = b->slot_size;
  out->reserved = 0;
  return true;
}

/* One pass over the pool from the round-robin hint. */
static bool
scan_locked (dh_producer *p, dh_slot *out)
{
  dh_block *b = &p->b;
  if (waits_for_cursors (b)) {
    /* Pairs with the consumers' seq_cst bump after moving a cursor back. */
    uint64_t epoch = atomic_load_explicit (&b->hdr->cursor_epoch, memory_order_seq_cst);
    if (epoch != p->min_epoch) {
      p->min_epoch = epoch;
      p->min_cursor = compute_min_cursor (b);
    }
  }
  p->min_fresh = false;
  for (uint32_t k = 0; k < b->slot_count; k++) {
    uint32_t i = p->hint + k;
    if (i >= b->slot_count)
      i -= b->slot_count;
    if (try_claim (p, i, out)) {
      p->hint = i + 1 == b->slot_count ? 0 : i + 1;
      dh_relaxed_inc (&b->hdr->metrics.slots_acquired, 1);
      return true;
    }
  }
  return false;
}

static bool
scan (dh_producer *p, dh_slot *out)
{
  pthread_mutex_lock (&p->lock);
  bool ok = scan_locked (p, out);
  pthread_mutex_unlock (&p->lock);
  return ok;
}

/* Sleeps until a consumer frees space, reaping dead consumers every
 * DH_LIVENESS_SLICE_NS so a killed consumer stalls us no longer than that. */
static int
wait_for_space (dh_producer *p, uint64_t deadline, dh_slot *out)
{
  dh_block *b = &p->b;
  dh_shm_header *h = b->hdr;
  uint64_t started = dh_now_ns ();
  int rc = -ETIMEDOUT;
  for (int spin = 0; spin < DH_SPIN_ITERATIONS; spin++)
    dh_cpu_relax ();
  dh_relaxed_inc (&h->metrics.writer_waits, 1);
  for (;;) {
    if (atomic_load (&p->wakeup)) {
      rc = -ECANCELED;
      break;
    }
    uint32_t word = atomic_load_explicit (&h->space_wake, memory_order_acquire);
    /* Dekker with consumers: they move a cursor or drop a hold, then load
     * space_waiters; we count ourselves in, then re-scan. */
    atomic_fetch_add_explicit (&h->space_waiters, 1, memory_order_seq_cst);
    if (scan (p, out)) {
      atomic_fetch_sub_explicit (&h->space_waiters, 1, memory_order_relaxed);
      rc = 0;
      break;
    }
    uint64_t now = dh_now_ns ();
    if (now - p->last_reap_ns >= DH_LIVENESS_SLICE_NS) {
      p->last_reap_ns = now;
      if (dh_producer_reap_dead_consumers (p) > 0) {
        atomic_fetch_sub_explicit (&h->space_waiters, 1, memory_order_relaxed);
        continue;
      }
    }
    if (now >= deadline) {
      atomic_fetch_sub_explicit (&h->space_waiters, 1, memory_order_relaxed);
      break;
    }
    uint64_t slice = now + DH_LIVENESS_SLICE_NS;
    int wrc = dh_futex_wait (&h->space_wake, word, slice < deadline ? slice : deadline);
    atomic_fetch_sub_explicit (&h->space_waiters, 1, memory_order_relaxed);
    (void) wrc; /* timeouts loop back to the reap and deadline checks */
  }
  dh_relaxed_inc (&h->metrics.writer_blocked_total_ns, dh_now_ns () - started);
  if (rc == -ETIMEDOUT) {
    dh_relaxed_inc (&h->metrics.writer_timeout_count, 1);
    dh_record_error (b, rc);
    return dh_fail (rc, "%s: no free slot (all %u slots are unread or held)",
        b->name, b->slot_count);
  }
  return rc;
}

int
dh_producer_acquire (dh_producer *p, int timeout_ms, dh_slot *out)
{
  DH_CHECK_ARG (p && out);
  if (scan (p, out))
    return 0;
  if (timeout_ms == 0) {
    dh_relaxed_inc (&p->b.hdr->metrics.slot_acquire_errors, 1);
    return -EAGAIN;
  }
  return wait_for_space (p, dh_deadline (timeout_ms), out);
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

/* ---- commit / abort ---------------------------------------------------- */

/* The slot handle must name a slot we hold in WRITING at its generation. */
static int
check_held (dh_block *b, const dh_slot *slot)
{
  if (slot->index >= b->slot_count)
    return dh_fail (DH_ESLOT, "slot index %u out of range (%u slots)", slot->index,
        b->slot_count);
  uint64_t w = atomic_load_explicit (&b->slots[slot->index].state, memory_order_relaxed);
  if (w != DH_SLOT_WORD (slot->generation, DH_SLOT_WRITING))
    return dh_fail (DH_ESLOT, "slot %u is not being written at generation %llu",
        slot->index, (unsigned long long) slot->generation);
  return 0;
}

/* Writes descriptor @seq under its seqlock.  No fences: every field is
 * stored with release, so a reader whose acquire load of any field sees a
 * new value also sees the seq = 0 stored before it (and fails its re-check).
 * On x86 these are plain stores. */
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
static uint64_t
publish_one (dh_producer *p, const dh_slot *slot, const dh_record_info *info,
    uint64_t now)
{
  dh_block *b = &p->b;
  dh_shm_slot *s = &b->slots[slot->index];
  uint64_t seq = ++p->last_seq;
  atomic_store_explicit (&s->commit_seq, seq, memory_order_relaxed);
  /* Release: payload and checksum writes happen before COMMITTED. */
  atomic_store_explicit (&s->state, DH_SLOT_WORD (slot->generation, DH_SLOT_COMMITTED),
      memory_order_release);
  write_desc (b, seq, slot, info, now);
  return seq;
}

/* Publishes up to @seq and wakes sleeping consumers, if any. */
static void
publish_head (dh_block *b, uint64_t seq)
{
  dh_shm_header *h = b->hdr;
  /* Dekker with a consumer going to sleep (consumer.c wait_for_data): it
   * counts itself in data_waiters, then loads head; we store head and
   * data_wake, then load data_waiters.  Either it sees the new head or we
   * see it waiting.  No system call when nobody sleeps. */
  atomic_store_explicit (&h->head, seq, memory_order_seq_cst);
  atomic_store_explicit (&h->data_wake, (uint32_t) seq, memory_order_seq_cst);
  if (atomic_load_explicit (&h->data_waiters, memory_order_seq_cst) != 0) {
    dh_futex_wake_all (&h->data_wake);
    dh_relaxed_inc (&h->metrics.wakeups_sent, 1);
  }
}

static int
prepare_commit (dh_producer *p, const dh_slot *slot, const dh_record_info *info)
{
  dh_block *b = &p->b;
  int rc = check_held (b, slot);
  if (rc == 0 && info->size > b->slot_size)
    rc = dh_fail (DH_ETOOBIG, "record of %llu bytes does not fit a %llu-byte slot",
        (unsigned long long) info->size, (unsigned long long) b->slot_size);
  if (rc != 0) {
    dh_relaxed_inc (&b->hdr->metrics.slot_commit_errors, 1);
    dh_record_error (b, rc);
    return rc;
  }
  if (b->integrity != DH_INTEGRITY_NONE && b->check == DH_CHECK_ENFORCED)
    dh_payload_hash (b, dh_payload_at (b, slot->index), info->size,
        b->slots[slot->index].checksum);
  return 0;
}

static void
count_commit (dh_producer *p, uint64_t records, uint64_t bytes, uint64_t now)
{
  dh_shm_metrics *m = &p->b.hdr->metrics;
  dh_relaxed_inc (&m->slots_written, records);
  dh_relaxed_inc (&m->bytes_written, bytes);
  atomic_store_explicit (&p->b.hdr->producer_heartbeat_ns, now, memory_order_relaxed);
}

int
dh_producer_commit (dh_producer *p, const dh_slot *slot, const dh_record_info *info,
    uint64_t *out_seq)
{
  DH_CHECK_ARG (p && slot && info);
  int rc = prepare_commit (p, slot, info);
  if (rc != 0)
    return rc;
  uint64_t now = dh_now_ns ();
  pthread_mutex_lock (&p->lock);
  uint64_t seq = publish_one (p, slot, info, now);
  publish_head (&p->b, seq);
  pthread_mutex_unlock (&p->lock);
  count_commit (p, 1, info->size, now);
  if (out_seq)
    *out_seq = seq;
  return 0;
}

int
dh_producer_commit_batch (dh_producer *p, const dh_slot *slots,
    const dh_record_info *infos, unsigned n, uint64_t *first_seq)
{
  DH_CHECK_ARG (p && slots && infos && n > 0);
  uint64_t bytes = 0;
  for (unsigned k = 0; k < n; k++) {
    int rc = prepare_commit (p, &slots[k], &infos[k]);
    if (rc != 0)
      return rc; /* nothing published; the caller still holds every slot */
    bytes += infos[k].size;
  }
  uint64_t now = dh_now_ns (), seq = 0;
  pthread_mutex_lock (&p->lock);
  for (unsigned k = 0; k < n; k++) {
    seq = publish_one (p, &slots[k], &infos[k], now);
    if (k == 0 && first_seq)
      *first_seq = seq;
  }
  publish_head (&p->b, seq);
  pthread_mutex_unlock (&p->lock);
  count_commit (p, n, bytes, now);
  return 0;
}

int
dh_producer_abort (dh_producer *p, const dh_slot *slot)
{
  DH_CHECK_ARG (p && slot);
  dh_block *b = &p->b;
  int rc = check_held (b, slot);
  if (rc != 0)
    return rc;
  /* Release: pairs with try_claim's acquire; nothing was published, so no
   * reader can hold this generation. */
  atomic_store_explicit (&b->slots[slot->index].state,
      DH_SLOT_WORD (slot->generation, DH_SLOT_FREE), memory_order_release);
  dh_relaxed_inc (&b->hdr->metrics.commits_aborted, 1);
  if (atomic_load_explicit (&b->hdr->space_waiters, memory_order_seq_cst) != 0)
    dh_wake_space (b->hdr);
  return 0;
}

int
dh_producer_update_checksum (dh_producer *p, const dh_slot *slot, uint64_t size)
{
  DH_CHECK_ARG (p && slot);
  dh_block *b = &p->b;
  int rc = check_held (b, slot);
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

/* ---- misc ------------------------------------------------------------- */

void
dh_producer_wakeup (dh_producer *p)
{
  atomic_store (&p->wakeup, true);
  dh_wake_space (p->b.hdr);
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

uint64_t
dh_producer_session_id (const dh_producer *p)
{
  return p->b.session_id;
}

int
dh_producer_metrics (dh_producer *p, dh_metrics *out)
{
  DH_CHECK_ARG (p && out);
  dh_metrics_snapshot (&p->b, out);
  return 0;
}

void
dh_producer_reset_metrics (dh_producer *p)
{
  dh_metrics_reset (&p->b);
}

int
dh_producer_spin_lock (dh_producer *p, unsigned idx, int timeout_ms)
{
  DH_CHECK_ARG (p);
  return dh_spin_lock (&p->b, idx, timeout_ms);
}

int
dh_producer_spin_unlock (dh_producer *p, unsigned idx)
{
  DH_CHECK_ARG (p);
  return dh_spin_unlock (&p->b, idx);
}

/* Writers of this process are serialised here; zones.c has the seqlock. */
int
dh_producer_zone_write (dh_producer *p, unsigned zone, const void *data, size_t len)
{
  DH_CHECK_ARG (p && (data || len == 0));
  pthread_mutex_lock (&p->zone_lock);
  int rc = dh_zone_write (&p->b, zone, data, len);
  pthread_mutex_unlock (&p->zone_lock);
  return rc;
}
