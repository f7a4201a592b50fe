/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The producer's consumers (docs/protocol.md §5.1, §5.7, §6, §8): admitting
 * consumer objects, noticing when they leave, die or stop making sense,
 * reading their upstream requests, and the service thread that does it
 * while nothing is written.  Every byte of a consumer object is untrusted. */

#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "dh_producer_private.h"

static uint64_t
bit (uint32_t i)
{
  return UINT64_C (1) << i;
}

/* ---- how the producer treats an admitted consumer ------------------------- */

/* Does a consumer that asked for @leaky_req get waited for?  Only ring
 * policy with on-full=block waits for anyone. */
static bool
request_waited_for (const dh_producer *p, uint32_t leaky_req)
{
  const dh_block *b = &p->b;
  if (b->policy != DH_POLICY_RING || b->on_full != DH_ON_FULL_BLOCK)
    return false;
  return !(leaky_req == DH_REQ_LEAKY_YES || (leaky_req == DH_REQ_LEAKY_AUTO && p->live));
}

bool
dh_peer_waited_for (const dh_producer *p, uint32_t i)
{
  return (p->active & bit (i)) && request_waited_for (p, p->peers[i].leaky_req);
}

/* Its cursor in this block, clamped to what can make sense; before it
 * took up its admission (session differs) its start. */
uint64_t
dh_peer_cursor (const dh_producer *p, uint32_t i)
{
  const dh_peer *peer = &p->peers[i];
  /* Pairs with the consumer's release store of session, made after it
   * stored the cursor that goes with it. */
  uint64_t session = atomic_load_explicit (&peer->obj->session, memory_order_acquire);
  if (session != p->b.session_id)
    return peer->start_seq;
  uint64_t cursor = atomic_load_explicit (&peer->obj->cursor, memory_order_acquire);
  if (cursor < peer->start_seq)
    return peer->start_seq;
  if (cursor > p->last_seq + 1)
    return p->last_seq + 1;
  return cursor;
}

static void
wake_admission (dh_shm_header *h)
{
  atomic_fetch_add_explicit (&h->admit_wake, 1, memory_order_seq_cst);
  dh_futex_wake_all (&h->admit_wake);
}

/* Our own threads waiting for space: a consumer that went away may have
 * freed what they wait for. */
static void
wake_own (dh_producer *p)
{
  atomic_fetch_add_explicit (&p->wake_word, 1, memory_order_seq_cst);
  dh_futex_wake_private (&p->wake_word);
}

void
dh_admission_refresh_leaky (dh_producer *p)
{
  for (uint64_t m = p->active; m; m &= m - 1) {
    uint32_t i = (uint32_t) __builtin_ctzll (m);
    atomic_store_explicit (&p->b.table[i].leaky, dh_peer_waited_for (p, i) ? 0 : 1,
        memory_order_relaxed);
  }
}

/* ---- admitting, dropping, evicting ------------------------------------------ */

static uint32_t
load_u32 (const uint32_t *field)
{
  return __atomic_load_n (field, __ATOMIC_RELAXED);
}

static uint64_t
load_u64 (const uint64_t *field)
{
  return __atomic_load_n (field, __ATOMIC_RELAXED);
}

/* @now above @base, or 0: a counter below its baseline (the consumer
 * rewrote it) counts as nothing. */
static uint64_t
since (const _Atomic uint64_t *counter, uint64_t base)
{
  uint64_t v = atomic_load_explicit (counter, memory_order_relaxed);
  return v > base ? v - base : 0;
}

/* Consumer @peer's counters since the last reset (untrusted). */
static dh_read_totals
peer_counters (const dh_peer *peer)
{
  const dh_shm_consumer *o = peer->obj;
  const dh_read_totals *b = &peer->base;
  dh_read_totals t = {
    .read = since (&o->read, b->read),
    .bytes_read = since (&o->bytes_read, b->bytes_read),
    .lost = since (&o->lost, b->lost),
    .races = since (&o->races, b->races),
    .checksum_failures = since (&o->checksum_failures, b->checksum_failures),
    .waits = since (&o->waits, b->waits),
    .not_ready = since (&o->not_ready, b->not_ready),
  };
  return t;
}

/* Holds for consumer @i, which asks for @want: no more than max_holds nor
 * slots - 1.  In ring policy the consumers the producer does not wait for
 * (leaky ones) share a budget of slots - 1, so that leaky consumers that
 * keep every record they were granted still leave the producer a slot to
 * write (§6); everyone gets at least one (a read holds its record while it
 * is taken), so only with more leaky consumers than slots can their
 * grants add up to every slot.  A consumer admitted as waited-for (ring,
 * on-full=block) is outside the budget: the producer waits for it anyway,
 * and what it keeps are the newest records it read, which every caught-up
 * consumer shares, so caught-up consumers keeping their grants pin at most
 * max_holds slots.  A grant cannot shrink later (the consumer reads its
 * quota once): one that stops, or is no longer waited for because the
 * producer turned live, keeps it, and counts in the budget of later
 * leaky grants. */
static uint32_t
grant_holds (const dh_producer *p, uint32_t i, uint32_t want)
{
  const dh_block *b = &p->b;
  uint32_t cap = b->max_holds < b->slot_count ? b->max_holds : b->slot_count - 1;
  if (cap == 0)
    cap = 1;
  uint32_t quota = want == 0 ? 1 : want > cap ? cap : want;
  if (b->policy != DH_POLICY_RING)
    return quota; /* latest-value reads hold nothing */
  if (request_waited_for (p, p->peers[i].leaky_req))
    return quota;
  uint64_t granted = 0;
  for (uint64_t m = p->admitted & ~bit (i); m; m &= m - 1) {
    const dh_peer *other = &p->peers[__builtin_ctzll (m)];
    if (!request_waited_for (p, other->leaky_req))
      granted += other->quota;
  }
  uint64_t budget = b->slot_count - 1;
  uint64_t left = granted < budget ? budget - granted : 0;
  if (quota > left)
    quota = left > 0 ? (uint32_t) left : 1;
  return quota;
}

static void
admit (dh_producer *p, uint32_t i, int fd, const dh_shm_consumer *obj)
{
  dh_block *b = &p->b;
  dh_peer *peer = &p->peers[i];
  /* requests are copied once and clamped: what the consumer writes later
   * changes nothing */
  uint32_t leaky = load_u32 (&obj->leaky);
  uint32_t want = load_u32 (&obj->max_held);
  uint32_t start = load_u32 (&obj->start);
  peer->fd = fd;
  peer->obj = obj; /* guarded by dh_peer_open, with peer->faulted */
  peer->token = load_u64 (&obj->token);
  peer->leaky_req = leaky <= DH_REQ_LEAKY_AUTO ? leaky : DH_REQ_LEAKY_NO;
  peer->quota = grant_holds (p, i, want);
  /* after a handover there is nothing left to read here: a late joiner
   * goes straight to the successor (it starts at the cutover) */
  peer->start_seq = p->handed_over ? p->last_seq + 1 : p->last_seq == 0 ? 1
      : start == DH_START_OLDEST ? dh_oldest_intact_locked (p) : p->last_seq;
  peer->evicted = false;
  peer->last_req_seq = atomic_load_explicit (&obj->req_seq, memory_order_acquire);
  peer->last_req_ns = 0;
  /* counted from now on: what a re-admitted object (or a liar) claims it
   * read before does not count again */
  memset (&peer->base, 0, sizeof peer->base);
  peer->base = peer_counters (peer);
  p->active |= bit (i);
  p->admitted |= bit (i);
  dh_invalidate_min (p);
  dh_shm_admission *e = &b->table[i];
  atomic_store_explicit (&e->quota, peer->quota, memory_order_relaxed);
  atomic_store_explicit (&e->start_seq, peer->start_seq, memory_order_relaxed);
  atomic_store_explicit (&e->leaky, dh_peer_waited_for (p, i) ? 0 : 1, memory_order_relaxed);
  atomic_store_explicit (&e->evict_reason, DH_EVICT_NONE, memory_order_relaxed);
  atomic_store_explicit (&e->admitted_realtime_ns, dh_realtime_ns (), memory_order_relaxed);
  atomic_store_explicit (&e->state, DH_ADMIT_ADMITTED, memory_order_relaxed);
  /* Pairs with the consumer's acquire load of its token: it sees the
   * whole entry with it. */
  atomic_store_explicit (&e->token, peer->token, memory_order_release);
  uint64_t n = (uint64_t) __builtin_popcountll (p->active);
  if (n > atomic_load_explicit (&b->hdr->metrics.reader_peak_count, memory_order_relaxed))
    atomic_store_explicit (&b->hdr->metrics.reader_peak_count, n, memory_order_relaxed);
  DH_TEST_POINT ("admission.admitted");
  wake_admission (b->hdr);
}

static void
add_totals (dh_read_totals *t, const dh_read_totals *d)
{
  t->read = dh_sat_add (t->read, d->read);
  t->bytes_read = dh_sat_add (t->bytes_read, d->bytes_read);
  t->lost = dh_sat_add (t->lost, d->lost);
  t->races = dh_sat_add (t->races, d->races);
  t->checksum_failures = dh_sat_add (t->checksum_failures, d->checksum_failures);
  t->waits = dh_sat_add (t->waits, d->waits);
  t->not_ready = dh_sat_add (t->not_ready, d->not_ready);
}

void
dh_admission_reset_counters (dh_producer *p)
{
  memset (&p->retired, 0, sizeof p->retired);
  for (uint64_t m = p->admitted; m; m &= m - 1) {
    dh_peer *peer = &p->peers[__builtin_ctzll (m)];
    dh_read_totals now = peer_counters (peer);
    add_totals (&peer->base, &now);
  }
}

/* Forgets consumer @i: its holds and cursor no longer count.  A dead one's
 * object is removed (reclaimed) if we may. */
static void
drop (dh_producer *p, uint32_t i, bool dead)
{
  dh_block *b = &p->b;
  dh_peer *peer = &p->peers[i];
  if (!atomic_load_explicit (&peer->faulted, memory_order_relaxed)) {
    dh_read_totals t = peer_counters (peer);
    add_totals (&p->retired, &t);
  }
  dh_shm_admission *e = &b->table[i];
  atomic_store_explicit (&e->state, DH_ADMIT_NONE, memory_order_relaxed);
  atomic_store_explicit (&e->token, 0, memory_order_release);
  if (dead) {
    dh_relaxed_inc (&b->hdr->metrics.consumers_reaped, 1);
    dh_log (DH_LOG_WARNING, "%s: released dead consumer %u", b->name, i);
    if (!dh_peer_reclaim (b->origin, i, peer->fd))
      p->stale_objects++;
  }
  dh_peer_close (peer->fd, peer->obj);
  peer->fd = -1;
  peer->obj = NULL;
  p->active &= ~bit (i);
  p->admitted &= ~bit (i);
  if (p->pending)
    p->pending[i].set = false;
  /* a new incarnation, if that is why it went, is admitted at once */
  if (!dead)
    p->scan_wanted |= bit (i);
  dh_invalidate_min (p);
  wake_own (p);
}

static void
evict (dh_producer *p, uint32_t i, uint32_t reason)
{
  dh_block *b = &p->b;
  if (p->peers[i].evicted)
    return;
  p->peers[i].evicted = true;
  p->active &= ~bit (i);
  dh_invalidate_min (p);
  atomic_store_explicit (&b->table[i].evict_reason, reason, memory_order_relaxed);
  /* Pairs with the consumer's acquire load of the state. */
  atomic_store_explicit (&b->table[i].state, DH_ADMIT_EVICTED, memory_order_release);
  dh_relaxed_inc (&b->hdr->metrics.consumers_evicted, 1);
  dh_log (DH_LOG_WARNING, "%s: evicted consumer %u (%s)", b->name, i,
      reason == DH_EVICT_TRUNCATED ? "its object shrank" : "its object stopped making sense");
  wake_admission (b->hdr);
  wake_own (p);
}

/* Opens index @i and admits it if a live consumer is there.  Returns 1 if
 * admitted, 0 if nobody, -EAGAIN if someone is still initialising. */
static int
try_admit (dh_producer *p, uint32_t i)
{
  int fd;
  const dh_shm_consumer *obj;
  /* the peer's fault flag is free while the index is not admitted */
  int rc = dh_peer_open (p->b.origin, i, &fd, &obj, &p->peers[i].faulted);
  if (rc != 0 && rc != -ENOENT && dh_peer_reclaim_remnant (p->b.origin, i)) {
    /* unusable and ownerless: what a dead consumer left (truncated, half
     * made) */
    dh_relaxed_inc (&p->b.hdr->metrics.consumers_reaped, 1);
    return 0;
  }
  if (rc == -EAGAIN)
    return -EAGAIN;
  if (rc != 0)
    return 0; /* absent, unreadable or garbage: nothing to admit */
  if (atomic_load_explicit (&obj->detached, memory_order_acquire)) {
    /* it is leaving (we saw it go and looked again before it unlinked):
     * admitting it again would count what it read twice */
    dh_peer_close (fd, obj);
    return 0;
  }
  if (!dh_peer_alive (fd)) {
    /* a consumer died without removing its object */
    if (!dh_peer_reclaim (p->b.origin, i, fd))
      p->stale_objects++;
    dh_peer_close (fd, obj);
    return 0;
  }
  admit (p, i, fd, obj);
  return 1;
}

/* After a handover: has consumer @i read to our cutover, or started on
 * the successor? */
static bool
moved_on (const dh_producer *p, uint32_t i)
{
  const dh_shm_consumer *o = p->peers[i].obj;
  /* Pairs with the consumer's release store of session (adopt), made
   * after chain_index. */
  uint64_t session = atomic_load_explicit (&o->session, memory_order_acquire);
  if (session == p->successor_session || (session != p->b.session_id
          && atomic_load_explicit (&o->chain_index, memory_order_relaxed) > p->b.chain_index))
    return true;
  return session == p->b.session_id
      && atomic_load_explicit (&o->cursor, memory_order_acquire) > p->last_seq;
}

/* Has the consumer behind index @i left, died, or stopped making sense? */
static void
check_peer (dh_producer *p, uint32_t i, bool check_liveness)
{
  dh_peer *peer = &p->peers[i];
  const dh_shm_consumer *o = peer->obj;
  if (atomic_load_explicit (&peer->faulted, memory_order_relaxed)) {
    evict (p, i, DH_EVICT_TRUNCATED);
    drop (p, i, false);
    return;
  }
  uint64_t magic = atomic_load_explicit (&o->magic, memory_order_acquire);
  if (magic == 0 || (magic == DH_CONSUMER_MAGIC && load_u64 (&o->token) != peer->token)) {
    drop (p, i, false); /* a new incarnation: admitted afresh */
    return;
  }
  if (magic != DH_CONSUMER_MAGIC || load_u32 (&o->index) != i
      || o->layout_major != DH_LAYOUT_MAJOR) {
    evict (p, i, DH_EVICT_GARBAGE);
    return;
  }
  uint32_t detached = atomic_load_explicit (&o->detached, memory_order_acquire);
  if (detached == DH_DETACH_LEAVING) {
    drop (p, i, false);
    return;
  }
  if (detached == DH_DETACH_STOPPED && peer->leaky_req != DH_REQ_LEAKY_YES) {
    /* it reads no more but still owns records: never wait for it again,
     * keep its holds */
    peer->leaky_req = DH_REQ_LEAKY_YES;
    atomic_store_explicit (&p->b.table[i].leaky, 1, memory_order_relaxed);
    dh_invalidate_min (p);
    wake_own (p);
  }
  if (check_liveness && !dh_peer_alive (peer->fd)) {
    drop (p, i, true);
    return;
  }
  if (p->handed_over && moved_on (p, i))
    drop (p, i, false); /* nothing left here for it: its object is unmapped */
}

/* Copies a new upstream request, at most one per consumer per interval. */
static void
read_request (dh_producer *p, uint32_t i, uint64_t now)
{
  dh_peer *peer = &p->peers[i];
  const dh_shm_consumer *o = peer->obj;
  if (now - peer->last_req_ns < DH_REQUEST_INTERVAL_NS)
    return;
  /* Pairs with the consumer's release store of the even sequence. */
  uint64_t s1 = atomic_load_explicit (&o->req_seq, memory_order_acquire);
  if (s1 == peer->last_req_seq || (s1 & 1))
    return;
  uint32_t len = atomic_load_explicit (&o->req_len, memory_order_acquire);
  uint32_t kind = atomic_load_explicit (&o->req_kind, memory_order_acquire);
  if (len > DH_REQUEST_MAX || !p->pending) {
    if (len > DH_REQUEST_MAX)
      dh_relaxed_inc (&p->b.hdr->metrics.requests_dropped, 1);
    peer->last_req_seq = s1;
    return;
  }
  dh_pending_request *r = &p->pending[i];
  dh_load_words (r->data, o->req_data, len);
  if (atomic_load_explicit (&o->req_seq, memory_order_relaxed) != s1)
    return; /* torn: look again next time */
  r->kind = kind;
  r->len = len;
  r->set = true;
  peer->last_req_seq = s1;
  peer->last_req_ns = now;
}

static void
publish_read_totals (dh_producer *p)
{
  dh_read_totals t = p->retired;
  for (uint64_t m = p->admitted; m; m &= m - 1) {
    dh_read_totals d = peer_counters (&p->peers[__builtin_ctzll (m)]);
    add_totals (&t, &d);
  }
  dh_shm_metrics *m = &p->b.hdr->metrics;
  atomic_store_explicit (&m->slots_read, t.read, memory_order_relaxed);
  atomic_store_explicit (&m->bytes_read, t.bytes_read, memory_order_relaxed);
  atomic_store_explicit (&m->records_lost, t.lost, memory_order_relaxed);
  atomic_store_explicit (&m->reader_race_detected, t.races, memory_order_relaxed);
  atomic_store_explicit (&m->checksum_failures, t.checksum_failures, memory_order_relaxed);
  atomic_store_explicit (&m->consumer_waits, t.waits, memory_order_relaxed);
  atomic_store_explicit (&m->reader_not_ready_count, t.not_ready, memory_order_relaxed);
}

int
dh_service_locked (dh_producer *p, bool scan_all, bool check_liveness)
{
  uint64_t now = dh_now_ns ();
  int admitted = 0;
  uint64_t retry = 0;
  for (uint32_t i = 0; i < p->b.max_consumers; i++) {
    if (p->peers[i].fd >= 0) {
      check_peer (p, i, check_liveness);
      if (p->active & bit (i))
        read_request (p, i, now);
    }
    /* after a handover, newcomers go straight to the successor */
    if (p->peers[i].fd < 0 && !p->handed_over && (scan_all || (p->scan_wanted & bit (i)))) {
      int rc = try_admit (p, i);
      /* someone still initialising its object: soon again, but one that
       * never finishes is left to the periodic pass */
      if (rc != -EAGAIN) {
        p->retries[i] = 0;
        admitted += rc;
      } else if (p->retries[i] < DH_ADMIT_RETRIES) {
        p->retries[i]++;
        retry |= bit (i);
      }
    }
  }
  p->scan_wanted = retry;
  if (scan_all)
    p->last_scan_ns = now;
  if (check_liveness)
    p->last_liveness_ns = now;
  publish_read_totals (p);
  return admitted;
}

int
dh_reap_gating_locked (dh_producer *p, uint64_t mask, bool check_liveness)
{
  int n = 0;
  for (uint64_t m = mask & p->admitted; m; m &= m - 1) {
    uint32_t i = (uint32_t) __builtin_ctzll (m);
    /* what costs no system call first: left, replaced, garbage */
    bool was_active = p->active & bit (i);
    check_peer (p, i, false);
    if (p->peers[i].fd < 0 || (was_active && !(p->active & bit (i)))) {
      n++;
    } else if (check_liveness && !dh_peer_alive (p->peers[i].fd)) {
      drop (p, i, true);
      n++;
    }
  }
  return n;
}

void
dh_deliver_requests (dh_producer *p)
{
  if (!p->pending || !p->cfg.request_fn)
    return;
  for (uint32_t i = 0; i < DH_MAX_CONSUMERS; i++) {
    dh_pending_request r;
    pthread_mutex_lock (&p->lock);
    r.set = p->pending[i].set;
    if (r.set) {
      r = p->pending[i];
      p->pending[i].set = false;
    }
    pthread_mutex_unlock (&p->lock);
    if (r.set)
      p->cfg.request_fn (i, r.kind, r.data, r.len, p->cfg.request_user);
  }
}

/* ---- the service thread ---------------------------------------------------- */

/* "datahub.cam0@c12" -> 12 when it is one of our consumer objects. */
static int
consumer_index_of (const dh_producer *p, const char *name)
{
  const char *origin = p->b.origin + 1; /* without the '/' */
  size_t n = strlen (origin);
  if (strncmp (name, origin, n) != 0 || name[n] != '@' || name[n + 1] != 'c')
    return -1;
  char *end;
  long i = strtol (name + n + 2, &end, 10);
  if (*end != '\0' || end == name + n + 2 || i < 0 || i >= (long) p->b.max_consumers)
    return -1;
  return (int) i;
}

/* Marks the consumer objects named in pending inotify events. */
static bool
read_events (dh_producer *p)
{
  char buf[4096] __attribute__ ((aligned (__alignof__ (struct inotify_event))));
  bool ours = false;
  for (;;) {
    ssize_t n = read (p->inotify_fd, buf, sizeof buf);
    if (n <= 0)
      return ours;
    for (char *at = buf; at < buf + n;) {
      const struct inotify_event *ev = (const struct inotify_event *) (void *) at;
      at += sizeof *ev + ev->len;
      if (ev->len == 0)
        continue;
      int i = consumer_index_of (p, ev->name);
      if (i >= 0) {
        ours = true;
        pthread_mutex_lock (&p->lock);
        p->scan_wanted |= bit ((uint32_t) i);
        p->retries[i] = 0;
        pthread_mutex_unlock (&p->lock);
      }
    }
  }
}

static void *
service_main (void *arg)
{
  dh_producer *p = arg;
  while (!atomic_load (&p->stopping)) {
    struct pollfd fds[2] = { { p->event_fd, POLLIN, 0 }, { p->inotify_fd, POLLIN, 0 } };
    pthread_mutex_lock (&p->lock);
    /* someone still initialising its object: look again soon */
    int timeout_ms = p->scan_wanted ? 2 : (int) (DH_SERVICE_PERIOD_NS / 1000000u);
    pthread_mutex_unlock (&p->lock);
    int rc = poll (fds, p->inotify_fd >= 0 ? 2 : 1, timeout_ms);
    if (atomic_load (&p->stopping))
      break;
    /* other files in /dev/shm changing (anyone may touch them) wake us
     * but cost no pass */
    bool ours = rc > 0 && (fds[1].revents & POLLIN) ? read_events (p) : false;
    pthread_mutex_lock (&p->lock);
    uint64_t now = dh_now_ns ();
    bool periodic = now - p->last_scan_ns >= DH_SERVICE_PERIOD_NS;
    if (periodic || ours || p->scan_wanted || rc == 0)
      dh_service_locked (p, periodic, periodic);
    pthread_mutex_unlock (&p->lock);
    dh_deliver_requests (p);
  }
  return NULL;
}

static void
start_thread (dh_producer *p)
{
  p->event_fd = eventfd (0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (p->event_fd < 0)
    return;
  /* A consumer object appearing, changing attributes (a consumer ringing
   * after it initialised or wrote a request) or leaving wakes us at once;
   * without inotify we look every DH_SERVICE_PERIOD_NS. */
  p->inotify_fd = inotify_init1 (IN_NONBLOCK | IN_CLOEXEC);
  if (p->inotify_fd >= 0
      && inotify_add_watch (p->inotify_fd, "/dev/shm",
             IN_CREATE | IN_ATTRIB | IN_DELETE | IN_MOVED_TO | IN_CLOSE_WRITE) < 0) {
    close (p->inotify_fd);
    p->inotify_fd = -1;
  }
  /* the thread takes no signals meant for the application */
  sigset_t all, old;
  sigfillset (&all);
  sigdelset (&all, SIGBUS);
  sigdelset (&all, SIGSEGV);
  pthread_sigmask (SIG_SETMASK, &all, &old);
  p->thread_started = pthread_create (&p->thread, NULL, service_main, p) == 0;
  pthread_sigmask (SIG_SETMASK, &old, NULL);
  if (!p->thread_started)
    dh_log (DH_LOG_WARNING, "%s: no service thread; consumers are admitted while "
        "the producer acquires or commits", p->b.name);
}

int
dh_admission_start (dh_producer *p)
{
  pthread_mutex_lock (&p->lock);
  dh_service_locked (p, true, true);
  pthread_mutex_unlock (&p->lock);
  start_thread (p);
  return 0;
}

void
dh_admission_stop (dh_producer *p)
{
  atomic_store (&p->stopping, true);
  if (p->event_fd >= 0) {
    uint64_t one = 1;
    if (write (p->event_fd, &one, sizeof one) < 0)
      dh_log (DH_LOG_DEBUG, "%s: cannot wake the service thread", p->b.name);
  }
}

void
dh_admission_forget_all (dh_producer *p)
{
  dh_admission_stop (p);
  if (p->thread_started && !pthread_equal (p->thread, pthread_self ()))
    pthread_join (p->thread, NULL);
  p->thread_started = false;
  if (p->event_fd >= 0)
    close (p->event_fd);
  if (p->inotify_fd >= 0)
    close (p->inotify_fd);
  p->event_fd = p->inotify_fd = -1;
  /* the dead ones' objects are ours to remove: nobody may come after us */
  pthread_mutex_lock (&p->lock);
  for (uint64_t m = p->admitted; m; m &= m - 1) {
    uint32_t i = (uint32_t) __builtin_ctzll (m);
    if (!dh_peer_alive (p->peers[i].fd))
      drop (p, i, true);
  }
  pthread_mutex_unlock (&p->lock);
  for (uint32_t i = 0; i < DH_MAX_CONSUMERS; i++)
    if (p->peers[i].fd >= 0) {
      dh_peer_close (p->peers[i].fd, p->peers[i].obj);
      p->peers[i].fd = -1;
    }
  p->active = p->admitted = 0;
}

/* ---- public entry points ----------------------------------------------------- */

int
dh_producer_poll (dh_producer *p)
{
  DH_CHECK_ARG (p);
  pthread_mutex_lock (&p->lock);
  int n = dh_service_locked (p, true, true);
  pthread_mutex_unlock (&p->lock);
  dh_deliver_requests (p);
  return n;
}

int
dh_producer_reap_dead_consumers (dh_producer *p)
{
  DH_CHECK_ARG (p);
  pthread_mutex_lock (&p->lock);
  int n = dh_reap_gating_locked (p, p->admitted, true);
  pthread_mutex_unlock (&p->lock);
  return n;
}

int
dh_producer_consumer_count (dh_producer *p)
{
  DH_CHECK_ARG (p);
  pthread_mutex_lock (&p->lock);
  int n = __builtin_popcountll (p->active);
  pthread_mutex_unlock (&p->lock);
  return n;
}

int
dh_producer_metrics (dh_producer *p, dh_metrics *out)
{
  DH_CHECK_ARG (p && out);
  pthread_mutex_lock (&p->lock);
  /* consumers that left are forgotten now, not at the next pass */
  for (uint64_t m = p->admitted; m; m &= m - 1)
    check_peer (p, (uint32_t) __builtin_ctzll (m), false);
  publish_read_totals (p);
  dh_metrics_from_header (&p->b, out);
  out->consumers_live = (uint32_t) __builtin_popcountll (p->active);
  out->consumers_dead = p->stale_objects;
  uint64_t head = p->last_seq;
  for (uint64_t m = p->active; m; m &= m - 1) {
    uint64_t cursor = dh_peer_cursor (p, (uint32_t) __builtin_ctzll (m));
    uint64_t lag = head >= cursor ? head - cursor + 1 : 0;
    if (lag > out->max_lag)
      out->max_lag = lag;
  }
  pthread_mutex_unlock (&p->lock);
  return 0;
}
