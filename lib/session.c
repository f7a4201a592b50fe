/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A consumer's life on a channel (docs/protocol.md §5.1, §12): its own
 * object, finding the channel's newest block, waiting to be admitted,
 * following handovers, and waiting for the next producer after one went
 * away.  The object stays registered throughout, so a restarted producer
 * admits it from its first record. */

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "dh_consumer_private.h"

/* How long a waiting consumer sleeps between looks for a block. */
#define DH_BLOCK_POLL_NS (10u * 1000000u)
/* How long a handover waits to be admitted in the successor. */
#define DH_FOLLOW_TIMEOUT_NS (5000u * 1000000u)
/* Deepest handover chain followed at attach. */

#define G_N_ELEMENTS_DRAINED (sizeof ((dh_consumer *) 0)->drained / sizeof (uint64_t))

void
dh_session_doorbell (dh_consumer *c)
{
  /* changes the object's times: an IN_ATTRIB event for the producer's
   * service thread, which then looks at us at once */
  (void) futimens (c->obj_fd, NULL);
}

/* Sleeps until @deadline or a wake-up of this handle. */
static int
nap (dh_consumer *c, uint64_t ns, uint64_t deadline)
{
  uint32_t local = atomic_load_explicit (&c->wake_word, memory_order_acquire);
  if (atomic_load (&c->wakeup))
    return -ECANCELED;
  uint64_t until = dh_now_ns () + ns;
  if (until > deadline)
    until = deadline;
  (void) dh_futex_wait2 (NULL, NULL, 0, &c->wake_word, local, until);
  return atomic_load (&c->wakeup) ? -ECANCELED : 0;
}

static dh_cblock *
open_block (dh_consumer *c, const char *name, int *rc)
{
  dh_cblock *blk = calloc (1, sizeof *blk);
  if (!blk) {
    *rc = dh_fail (-ENOMEM, "out of memory");
    return NULL;
  }
  *rc = dh_block_open (&blk->b, name, &c->cfg, false);
  if (*rc == 0 && strcmp (blk->b.origin, c->origin) != 0)
    *rc = dh_fail (DH_ECORRUPT, "%s belongs to channel %s, not %s", blk->b.name,
        blk->b.origin, c->origin);
  if (*rc != 0) {
    if (blk->b.base)
      dh_block_unmap (&blk->b);
    free (blk);
    return NULL;
  }
  return blk;
}

static void
close_block (dh_cblock *blk)
{
  dh_block_unmap (&blk->b);
  free (blk);
}

/* Has the producer of @blk admitted us with records to read before its
 * cutover (a consumer registered before a handover)? */
static bool
owed_records (const dh_consumer *c, const dh_cblock *blk, uint64_t cutover)
{
  for (unsigned k = 0; k < G_N_ELEMENTS_DRAINED; k++)
    if (c->drained[k] == blk->b.session_id)
      return false; /* read to its end already */
  if (c->index >= blk->b.max_consumers)
    return false;
  const dh_shm_admission *e = &blk->b.table[c->index];
  if (atomic_load_explicit (&e->token, memory_order_acquire) != c->token)
    return false;
  return atomic_load_explicit (&e->start_seq, memory_order_relaxed) < cutover;
}

/* Where to read: the channel's first block, or where its handover chain
 * leads — a late joiner starts in the newest block, a consumer the old
 * block still owes records to starts there.  Every announcement is
 * authenticated before it is followed. */
static dh_cblock *
open_newest (dh_consumer *c, int *rc)
{
  dh_cblock *blk = open_block (c, c->origin, rc);
  for (unsigned depth = 0; blk && depth < DH_MAX_CHAIN; depth++) {
    uint64_t cutover = atomic_load_explicit (&blk->b.hdr->cutover_seq, memory_order_acquire);
    if (cutover == 0 || owed_records (c, blk, cutover))
      return blk;
    char next[DH_NAME_MAX + 1];
    uint64_t session;
    *rc = dh_block_successor (&blk->b, next, sizeof next, &session);
    dh_cblock *succ = *rc == 0 ? open_block (c, next, rc) : NULL;
    if (succ && (*rc = dh_block_check_successor (&blk->b, &succ->b, session)) != 0) {
      close_block (succ);
      succ = NULL;
    }
    close_block (blk);
    blk = succ;
  }
  if (blk) {
    close_block (blk);
    *rc = dh_fail (DH_ECORRUPT, "%s: handover chain longer than %u", c->origin,
        DH_MAX_CHAIN);
  }
  return NULL;
}

/* Our index must be one the block admits; else move to a free lower one. */
static int
fit_index (dh_consumer *c, const dh_block *b)
{
  if (c->index < b->max_consumers)
    return 0;
  int fd;
  dh_shm_consumer *obj;
  uint32_t index;
  uint64_t token;
  randombytes_buf (&token, sizeof token);
  int rc = dh_peer_create (c->origin, 0, c->cfg.mode, &c->cfg, token, &fd, &obj, &index);
  if (rc != 0)
    return rc;
  if (index >= b->max_consumers) {
    dh_peer_remove (c->origin, index, fd, obj);
    return dh_fail (DH_EFULL, "%s admits %u consumers and all of them are taken",
        b->name, b->max_consumers);
  }
  dh_peer_remove (c->origin, c->index, c->obj_fd, c->obj);
  c->obj_fd = fd;
  c->obj = obj;
  c->index = index;
  c->token = token;
  dh_session_doorbell (c);
  return 0;
}

/* Waits until the producer of @blk admitted our token.  -EAGAIN when the
 * block's producer went away meanwhile (look for another). */
static int
await_admission (dh_consumer *c, dh_cblock *blk, uint64_t deadline)
{
  const dh_shm_header *h = blk->b.hdr;
  const dh_shm_admission *e = &blk->b.table[c->index];
  uint64_t next_check = dh_now_ns () + DH_PRODUCER_CHECK_NS;
  for (;;) {
    uint32_t local = atomic_load_explicit (&c->wake_word, memory_order_acquire);
    if (atomic_load (&c->wakeup))
      return -ECANCELED;
    uint32_t seen = atomic_load_explicit (&h->admit_wake, memory_order_acquire);
    /* Pairs with the producer's release store of the token (admit): the
     * entry's other fields are visible with it. */
    if (atomic_load_explicit (&e->token, memory_order_acquire) == c->token) {
      if (atomic_load_explicit (&e->state, memory_order_acquire) == DH_ADMIT_EVICTED)
        return dh_fail (DH_EEVICTED, "%s evicted this consumer (index %u)",
            blk->b.name, c->index);
      return 0;
    }
    if (atomic_load_explicit (&h->producer_state, memory_order_acquire) == DH_PRODUCER_CLOSED)
      return -EAGAIN;
    uint64_t now = dh_now_ns ();
    if (now >= next_check) {
      if (!dh_producer_alive (&blk->b)) {
        c->avoid_session = blk->b.session_id;
        return -EAGAIN;
      }
      dh_session_doorbell (c); /* in case the producer missed us */
      next_check = now + DH_PRODUCER_CHECK_NS;
    }
    if (now >= deadline)
      return -ETIMEDOUT;
    uint64_t until = now + DH_BLOCK_POLL_NS < deadline ? now + DH_BLOCK_POLL_NS : deadline;
    const _Atomic uint32_t *words[1] = { &h->admit_wake };
    (void) dh_futex_wait2 (words, &seen, 1, &c->wake_word, local, until);
  }
}

/* Reads @blk from now on, from the start the producer gave us. */
static void
adopt (dh_consumer *c, dh_cblock *blk)
{
  const dh_shm_admission *e = &blk->b.table[c->index];
  uint32_t quota = atomic_load_explicit (&e->quota, memory_order_relaxed);
  uint64_t start = atomic_load_explicit (&e->start_seq, memory_order_relaxed);
  c->quota = quota == 0 ? 1 : quota > DH_MAX_HOLDS ? DH_MAX_HOLDS : quota;
  c->cursor = start ? start : 1;
  /* cursor first, then the session it belongs to (release): the producer
   * loads the session with acquire before it trusts the cursor */
  atomic_store_explicit (&c->obj->cursor, c->cursor, memory_order_seq_cst);
  atomic_store_explicit (&c->obj->chain_index, blk->b.chain_index, memory_order_relaxed);
  atomic_store_explicit (&c->obj->session, blk->b.session_id, memory_order_release);
  blk->current = true;
  pthread_mutex_lock (&c->cur_lock);
  c->cur = blk;
  memcpy (c->cur_name, blk->b.name, sizeof c->cur_name);
  pthread_mutex_unlock (&c->cur_lock);
  c->started = false;
  c->pending_lost = 0;
  c->last_liveness_check_ns = dh_now_ns ();
}

int
dh_session_connect (dh_consumer *c, uint64_t deadline, uint64_t admit_deadline)
{
  int last = -ENOENT;
  if (admit_deadline < deadline)
    admit_deadline = deadline;
  for (;;) {
    if (atomic_load (&c->wakeup))
      return -ECANCELED;
    int rc = 0;
    /* a block found by an earlier call is kept while we wait for it */
    dh_cblock *blk = c->candidate;
    c->candidate = NULL;
    if (!blk)
      blk = open_newest (c, &rc);
    if (blk && blk->b.session_id == c->avoid_session) {
      /* still the dead producer's block: wait for its replacement */
      close_block (blk);
      blk = NULL;
      rc = -ENOENT;
    }
    if (blk && (rc = fit_index (c, &blk->b)) != 0) {
      close_block (blk);
      return rc;
    }
    if (blk) {
      rc = await_admission (c, blk, admit_deadline);
      if (rc == 0) {
        adopt (c, blk);
        return 0;
      }
      if (rc == -ETIMEDOUT && admit_deadline == deadline) {
        c->candidate = blk; /* the caller's timeout: keep waiting next time */
        return rc;
      }
      close_block (blk);
      if (rc != -EAGAIN)
        return rc == -ETIMEDOUT ? dh_fail (-ETIMEDOUT, "%s: the producer did not admit "
            "this consumer in time", c->origin) : rc;
      rc = -ENOENT;
    }
    /* a creator passes through "absent", "not ready" and "no magic yet" */
    bool retry = rc == -ENOENT || rc == DH_ENOTREADY || rc == DH_ETRUNCATED
        || rc == DH_EUNFINISHED;
    if (!retry)
      return rc;
    if (rc != -ENOENT || last == -ENOENT)
      last = rc;
    if (dh_now_ns () >= deadline) {
      if (last == DH_EUNFINISHED)
        return dh_fail (DH_EUNFINISHED, "%s was never finished and has no live producer "
            "(creation was interrupted)", c->origin);
      return last == -ENOENT ? dh_fail (-ENOENT, "no producer on %s yet", c->origin) : last;
    }
    if ((rc = nap (c, DH_BLOCK_POLL_NS, deadline)) != 0)
      return rc;
  }
}

/* Puts the current block aside: unmapped now, or when its last held
 * record is released. */
static void
retire_current (dh_consumer *c)
{
  pthread_mutex_lock (&c->cur_lock);
  dh_cblock *blk = c->cur;
  c->cur = NULL;
  memcpy (c->cur_name, c->origin, sizeof c->cur_name);
  pthread_mutex_unlock (&c->cur_lock);
  if (!blk)
    return;
  pthread_mutex_lock (&c->hold_lock);
  blk->current = false;
  if (blk->holds == 0) {
    close_block (blk);
  } else {
    bool kept = false;
    for (unsigned k = 0; k < DH_MAX_RETIRED && !kept; k++)
      if (!c->retired[k]) {
        c->retired[k] = blk;
        kept = true;
      }
    if (!kept) /* too many blocks with records still held: keep it mapped for good */
      dh_log (DH_LOG_WARNING, "%s: leaking the mapping of %s (records still held)",
          c->origin, blk->b.name);
  }
  pthread_mutex_unlock (&c->hold_lock);
}

void
dh_session_release_block_locked (dh_consumer *c, dh_cblock *blk)
{
  if (blk->current || blk->holds != 0)
    return;
  for (unsigned k = 0; k < DH_MAX_RETIRED; k++)
    if (c->retired[k] == blk)
      c->retired[k] = NULL;
  close_block (blk);
}

int
dh_session_end (dh_consumer *c, int rc)
{
  /* never that block again: a closed one stays under its name a moment
   * after consumers see it closed (the producer unlinks it after waking
   * them), and re-attaching would say "closed" once more */
  if ((rc == DH_EPRODUCERDEAD || rc == DH_ECLOSED) && c->cur)
    c->avoid_session = c->cur->b.session_id;
  retire_current (c);
  return rc;
}

int
dh_session_follow (dh_consumer *c)
{
  char next[DH_NAME_MAX + 1];
  c->drained[c->ndrained++ % G_N_ELEMENTS_DRAINED] = c->cur->b.session_id;
  dh_cblock *blk = NULL;
  int rc = 0;
  /* the announcement names one block: that session, the next chain
   * index, the same owner (docs/protocol.md §12) */
  uint64_t session;
  rc = dh_block_successor (&c->cur->b, next, sizeof next, &session);
  blk = rc == 0 ? open_block (c, next, &rc) : NULL;
  if (blk && (rc = dh_block_check_successor (&c->cur->b, &blk->b, session)) != 0) {
    close_block (blk);
    blk = NULL;
  }
  if (blk && (rc = fit_index (c, &blk->b)) == 0)
    rc = await_admission (c, blk, dh_now_ns () + DH_FOLLOW_TIMEOUT_NS);
  if (rc != 0) {
    if (blk)
      close_block (blk);
    if (rc == -ECANCELED)
      return rc;
    /* the successor is gone or refuses us: the stream ended here */
    return dh_session_end (c, rc == -EAGAIN || rc == -ENOENT || rc == DH_ENOTREADY
        || rc == DH_EUNFINISHED ? DH_EPRODUCERDEAD : rc);
  }
  retire_current (c);
  adopt (c, blk);
  return DH_EHANDOVER;
}

void
dh_session_free_all (dh_consumer *c)
{
  if (c->candidate) {
    close_block (c->candidate);
    c->candidate = NULL;
  }
  pthread_mutex_lock (&c->cur_lock);
  dh_cblock *cur = c->cur;
  c->cur = NULL;
  pthread_mutex_unlock (&c->cur_lock);
  if (cur) {
    cur->current = false;
    cur->holds = 0;
    close_block (cur);
  }
  for (unsigned k = 0; k < DH_MAX_RETIRED; k++)
    if (c->retired[k]) {
      close_block (c->retired[k]);
      c->retired[k] = NULL;
    }
}
