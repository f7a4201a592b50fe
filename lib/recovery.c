/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Inspection and recovery from outside (the admin API, datahub/admin.h).
 * A block is opened read-only (or read-write for recovery of a dead
 * producer's block); consumer objects are opened by name, read-only,
 * and removed when their owner is dead. */
#include <dirent.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "datahub/admin.h"
#include "dh_internal.h"

struct dh_inspector {
  dh_block b;
  bool writable;
};

static void
count_recovery (dh_inspector *ins)
{
  if (!ins->writable)
    return;
  dh_block *b = &ins->b;
  dh_relaxed_inc (&b->hdr->metrics.recovery_actions, 1);
  atomic_store_explicit (&b->hdr->metrics.last_recovery_ns, dh_realtime_ns (),
      memory_order_relaxed);
}

/* ---- opening ------------------------------------------------------------- */

int
dh_inspect_open (const char *name, bool writable, dh_inspector **out)
{
  DH_CHECK_ARG (name && out);
  dh_inspector *ins = calloc (1, sizeof *ins);
  if (!ins)
    return dh_fail (-ENOMEM, "out of memory");
  ins->writable = writable;
  int rc = dh_block_open (&ins->b, name, NULL, writable);
  if (rc == DH_EUNFINISHED)
    rc = DH_ECORRUPT;
  if (rc != 0) {
    free (ins);
    return rc;
  }
  *out = ins;
  return 0;
}

void
dh_inspect_close (dh_inspector *ins)
{
  if (!ins)
    return;
  dh_block_unmap (&ins->b);
  free (ins);
}

static int
need_writable (dh_inspector *ins)
{
  if (!ins->writable)
    return dh_fail (-EROFS, "%s was opened read-only", ins->b.name);
  return 0;
}

/* ---- consumer objects ----------------------------------------------------- */

/* A consumer object as the admin sees it (read-only, untrusted). */
typedef struct {
  int fd;
  const dh_shm_consumer *obj;
  bool alive;
} peer_view;

static bool
peer_view_open (const dh_block *b, uint32_t i, peer_view *v)
{
  if (dh_peer_open (b->origin, i, &v->fd, &v->obj, NULL) != 0)
    return false;
  v->alive = dh_peer_alive (v->fd);
  return true;
}

static void
peer_view_close (peer_view *v)
{
  dh_peer_close (v->fd, v->obj);
}

/* Slots consumer @v holds in this block (its first @quota entries). */
static uint64_t
holds_slot (const dh_block *b, const peer_view *v, uint32_t slot)
{
  uint64_t want = DH_HOLD_ENTRY (b->session_id, slot);
  for (unsigned j = 0; j < DH_MAX_HOLDS; j++)
    if (atomic_load_explicit (&v->obj->holds[j], memory_order_acquire) == want)
      return 1;
  return 0;
}

static uint32_t
holds_in_use (const peer_view *v)
{
  uint32_t n = 0;
  for (unsigned j = 0; j < DH_MAX_HOLDS; j++)
    n += atomic_load_explicit (&v->obj->holds[j], memory_order_relaxed) != 0;
  return n;
}

/* Bit i: consumer object i holds @slot; *@dead: of those, the dead. */
static uint64_t
slot_holders (const dh_block *b, uint32_t slot, uint64_t *dead)
{
  uint64_t holders = 0;
  *dead = 0;
  for (uint32_t i = 0; i < DH_MAX_CONSUMERS; i++) {
    peer_view v;
    if (!peer_view_open (b, i, &v))
      continue;
    if (holds_slot (b, &v, slot)) {
      holders |= UINT64_C (1) << i;
      if (!v.alive)
        *dead |= UINT64_C (1) << i;
    }
    peer_view_close (&v);
  }
  return holders;
}

/* ---- reading ------------------------------------------------------------- */

static uint64_t
age (uint64_t then_ns)
{
  uint64_t now = dh_now_ns ();
  return then_ns && now > then_ns ? now - then_ns : 0;
}

int
dh_inspect_info (dh_inspector *ins, dh_block_info *out)
{
  DH_CHECK_ARG (ins && out);
  const dh_block *b = &ins->b;
  const dh_shm_header *h = b->hdr;
  memset (out, 0, sizeof *out);
  snprintf (out->shm_name, sizeof out->shm_name, "%s", b->name);
  snprintf (out->origin, sizeof out->origin, "%s", b->origin);
  out->layout_major = h->layout_major;
  out->layout_minor = h->layout_minor;
  out->session_id = b->session_id;
  out->created_realtime_ns = h->created_realtime_ns;
  out->total_size = b->total_size;
  out->slot_size = b->slot_size;
  out->slot_count = b->slot_count;
  out->ring_length = b->ring_mask + 1;
  out->max_consumers = b->max_consumers;
  out->zone_count = b->zone_count;
  out->policy = b->policy;
  out->on_full = b->on_full;
  out->integrity = b->integrity;
  out->has_secret = h->flags & DH_FLAG_HAS_SECRET;
  out->has_schema = h->flags & DH_FLAG_HAS_SCHEMA;
  out->producer_pid = h->producer_pid;
  out->producer_alive = dh_producer_alive (b);
  out->producer_state = atomic_load_explicit (&h->producer_state, memory_order_acquire);
  out->producer_live_source = atomic_load_explicit (&h->producer_live, memory_order_relaxed);
  out->producer_heartbeat_age_ns = age (atomic_load_explicit (&h->producer_heartbeat_ns,
      memory_order_relaxed));
  out->head_seq = atomic_load_explicit (&h->head, memory_order_acquire);
  out->cutover_seq = atomic_load_explicit (&h->cutover_seq, memory_order_acquire);
  if (out->cutover_seq && dh_block_successor (b, out->successor, sizeof out->successor, NULL) != 0)
    snprintf (out->successor, sizeof out->successor, "(unreadable: %s)", dh_error_detail ());
  if (atomic_load_explicit (&h->space_waiters, memory_order_relaxed)) {
    out->gate_mask = atomic_load_explicit (&h->gate_mask, memory_order_relaxed);
    out->gated_for_ns = age (atomic_load_explicit (&h->gated_since_ns, memory_order_relaxed));
  }
  for (uint32_t i = 0; i < DH_MAX_CONSUMERS; i++) {
    peer_view v;
    if (peer_view_open (b, i, &v)) {
      if (v.alive)
        out->consumers_live++;
      else
        out->consumers_dead++;
      peer_view_close (&v);
    }
    uint32_t st = atomic_load_explicit (&b->table[i].state, memory_order_acquire);
    out->consumers_admitted += st == DH_ADMIT_ADMITTED;
    out->consumers_evicted += st == DH_ADMIT_EVICTED;
  }
  for (uint32_t z = 0; z < b->zone_count; z++) {
    out->zone_size[z] = b->zone_size[z];
    out->zone_length[z] = atomic_load_explicit (&h->zones[z].length, memory_order_relaxed);
    out->zone_version[z] = atomic_load_explicit (&h->zones[z].seq, memory_order_acquire);
  }
  return 0;
}

int
dh_inspect_consumer (dh_inspector *ins, uint32_t i, dh_consumer_info *out)
{
  DH_CHECK_ARG (ins && out);
  const dh_block *b = &ins->b;
  if (i >= DH_MAX_CONSUMERS)
    return dh_fail (-EINVAL, "consumer %u out of range (0..%u)", i, DH_MAX_CONSUMERS - 1);
  memset (out, 0, sizeof *out);
  out->index = i;
  peer_view v;
  if (!peer_view_open (b, i, &v))
    return 0; /* DH_CINFO_NONE */
  const dh_shm_consumer *o = v.obj;
  const dh_shm_admission *e = &b->table[i];
  uint64_t token = atomic_load_explicit (&e->token, memory_order_acquire);
  uint32_t st = atomic_load_explicit (&e->state, memory_order_acquire);
  bool ours = token != 0 && token == __atomic_load_n (&o->token, __ATOMIC_RELAXED);
  out->state = !ours ? DH_CINFO_WAITING
      : st == DH_ADMIT_EVICTED ? DH_CINFO_EVICTED : DH_CINFO_ADMITTED;
  out->pid = __atomic_load_n (&o->pid, __ATOMIC_RELAXED);
  out->alive = v.alive;
  out->leaky = ours && atomic_load_explicit (&e->leaky, memory_order_relaxed);
  out->quota = ours ? atomic_load_explicit (&e->quota, memory_order_relaxed) : 0;
  out->holds = holds_in_use (&v);
  out->gating = atomic_load_explicit (&b->hdr->space_waiters, memory_order_relaxed)
      && (atomic_load_explicit (&b->hdr->gate_mask, memory_order_relaxed)
          & (UINT64_C (1) << i));
  if (atomic_load_explicit (&o->session, memory_order_acquire) == b->session_id)
    out->cursor = atomic_load_explicit (&o->cursor, memory_order_relaxed);
  else if (ours)
    out->cursor = atomic_load_explicit (&e->start_seq, memory_order_relaxed);
  uint64_t head = atomic_load_explicit (&b->hdr->head, memory_order_acquire);
  out->behind = out->cursor && head >= out->cursor ? head - out->cursor + 1 : 0;
  out->heartbeat_age_ns = age (atomic_load_explicit (&o->heartbeat_ns, memory_order_relaxed));
  out->read = atomic_load_explicit (&o->read, memory_order_relaxed);
  out->lost = atomic_load_explicit (&o->lost, memory_order_relaxed);
  out->races = atomic_load_explicit (&o->races, memory_order_relaxed);
  out->checksum_failures = atomic_load_explicit (&o->checksum_failures, memory_order_relaxed);
  peer_view_close (&v);
  return 0;
}

static void
slot_info (const dh_block *b, uint32_t i, dh_slot_info *out)
{
  const dh_shm_slot *s = &b->slots[i];
  uint64_t w = atomic_load_explicit (&s->state, memory_order_acquire);
  memset (out, 0, sizeof *out);
  out->index = i;
  out->state = DH_SLOT_STATE (w);
  out->generation = DH_SLOT_GEN (w);
  out->commit_seq = atomic_load_explicit (&s->commit_seq, memory_order_relaxed);
  out->readers = slot_holders (b, i, &out->dead_readers);
  if (out->state == DH_SLOT_WRITING)
    out->writing_age_ns = age (atomic_load_explicit (&s->write_start_ns, memory_order_relaxed));
}

int
dh_inspect_slot (dh_inspector *ins, uint32_t i, dh_slot_info *out)
{
  DH_CHECK_ARG (ins && out);
  if (i >= ins->b.slot_count)
    return dh_fail (-EINVAL, "slot %u out of range (%u slots)", i, ins->b.slot_count);
  slot_info (&ins->b, i, out);
  return 0;
}

int
dh_inspect_metrics (dh_inspector *ins, dh_metrics *out)
{
  DH_CHECK_ARG (ins && out);
  dh_metrics_from_header (&ins->b, out);
  dh_block_info bi;
  dh_inspect_info (ins, &bi);
  out->consumers_live = bi.consumers_admitted;
  out->consumers_dead = bi.consumers_dead;
  return 0;
}

int
dh_inspect_reset_metrics (dh_inspector *ins)
{
  DH_CHECK_ARG (ins);
  int rc = need_writable (ins);
  if (rc == 0)
    dh_metrics_reset (&ins->b);
  return rc;
}

#define DH_GATING_FINDING_NS (1000u * 1000000u)

/* ---- validation ------------------------------------------------------- */

static void
emit (dh_finding_fn fn, void *user, dh_finding_kind kind, uint32_t index, bool fixable,
    const char *advice, const char *fmt, ...) __attribute__ ((format (printf, 7, 8)));

static void
emit (dh_finding_fn fn, void *user, dh_finding_kind kind, uint32_t index, bool fixable,
    const char *advice, const char *fmt, ...)
{
  if (!fn)
    return;
  dh_finding f = { .kind = kind, .index = index, .fixable = fixable };
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (f.text, sizeof f.text, fmt, ap);
  va_end (ap);
  snprintf (f.advice, sizeof f.advice, "%s", advice);
  fn (&f, user);
}

static int
validate_consumers (const dh_inspector *ins, dh_finding_fn fn, void *user)
{
  const dh_block *b = &ins->b;
  int n = 0;
  for (uint32_t i = 0; i < DH_MAX_CONSUMERS; i++) {
    dh_consumer_info ci;
    dh_inspect_consumer ((dh_inspector *) ins, i, &ci);
    if (ci.state == DH_CINFO_NONE)
      continue;
    if (!ci.alive) {
      n++;
      emit (fn, user, DH_FINDING_DEAD_CONSUMER, i, true, "`cleanup` or `auto-recover --apply`",
          "consumer %u (pid %u) is dead; its object %s", i, ci.pid,
          ci.holds ? "and its holds remain" : "remains");
      if (ci.holds) {
        n++;
        emit (fn, user, DH_FINDING_ZOMBIE_HOLD, i, true, "`auto-recover --apply`",
            "dead consumer %u still has %u hold entries", i, ci.holds);
      }
    }
    if (ci.state == DH_CINFO_EVICTED) {
      n++;
      emit (fn, user, DH_FINDING_EVICTED, i, false, "restart that consumer",
          "consumer %u (pid %u) was evicted by the producer", i, ci.pid);
    }
    uint64_t head = atomic_load_explicit (&b->hdr->head, memory_order_acquire);
    if (ci.state == DH_CINFO_ADMITTED && ci.cursor > head + 1) {
      n++;
      emit (fn, user, DH_FINDING_BAD_CURSOR, i, false, "restart that consumer",
          "consumer %u cursor %llu is beyond the head %llu", i,
          (unsigned long long) ci.cursor, (unsigned long long) head);
    }
    /* waiting a moment for a consumer is what a lossless stream does;
     * a second is a finding */
    uint64_t waited = age (atomic_load_explicit (&b->hdr->gated_since_ns, memory_order_relaxed));
    if (ci.gating && waited > DH_GATING_FINDING_NS) {
      n++;
      emit (fn, user, DH_FINDING_GATING, i, false,
          "that consumer does not read fast enough; make it leaky or stop it",
          "consumer %u (pid %u) has held the producer back for %.1f s (%llu records behind)",
          i, ci.pid, (double) waited / 1e9, (unsigned long long) ci.behind);
    }
  }
  return n;
}

int
dh_inspect_validate (dh_inspector *ins, dh_finding_fn fn, void *user)
{
  DH_CHECK_ARG (ins);
  const dh_block *b = &ins->b;
  int n = 0;
  bool producer_alive = dh_producer_alive (b);
  uint32_t pstate = atomic_load_explicit (&b->hdr->producer_state, memory_order_acquire);
  if (!producer_alive && pstate == DH_PRODUCER_RUNNING) {
    n++;
    emit (fn, user, DH_FINDING_DEAD_PRODUCER, 0, false,
        "start a new producer (it replaces the block) or `unlink` the block",
        "producer (pid %u) is dead; the block was not closed", b->hdr->producer_pid);
  }
  n += validate_consumers (ins, fn, user);
  for (uint32_t i = 0; i < b->slot_count; i++) {
    const dh_shm_slot *s = &b->slots[i];
    uint64_t w = atomic_load_explicit (&s->state, memory_order_acquire);
    if (DH_SLOT_STATE (w) > DH_SLOT_COMMITTED) {
      n++;
      emit (fn, user, DH_FINDING_BAD_STATE, i, false, "`reset-slot` it (producer dead)",
          "slot %u has state %u, which no transition produces", i, DH_SLOT_STATE (w));
    }
    if (DH_SLOT_STATE (w) == DH_SLOT_WRITING && !producer_alive) {
      n++;
      emit (fn, user, DH_FINDING_STUCK_WRITING, i, true, "`auto-recover --apply`",
          "slot %u is WRITING for %.1f s and its producer is dead", i,
          (double) age (atomic_load_explicit (&s->write_start_ns, memory_order_relaxed)) / 1e9);
    }
  }
  return n;
}

/* ---- recovery ------------------------------------------------------------- */

int
dh_recover_reset_slot (dh_inspector *ins, uint32_t i, bool force)
{
  DH_CHECK_ARG (ins);
  int rc = need_writable (ins);
  if (rc != 0)
    return rc;
  dh_block *b = &ins->b;
  if (i >= b->slot_count)
    return dh_fail (-EINVAL, "slot %u out of range (%u slots)", i, b->slot_count);
  if (dh_producer_alive (b))
    return dh_fail (DH_EOWNERALIVE, "the producer of %s (pid %u) is alive: it owns its "
        "slots (stop it first)", b->name, b->hdr->producer_pid);
  dh_slot_info si;
  slot_info (b, i, &si);
  if (!force && (si.readers & ~si.dead_readers))
    return dh_fail (DH_EOWNERALIVE, "slot %u is held by live consumers (mask %016llx)", i,
        (unsigned long long) (si.readers & ~si.dead_readers));
  dh_log (DH_LOG_WARNING, "%s: reset slot %u (state %u, generation %llu)%s", b->name, i,
      si.state, (unsigned long long) si.generation, force ? " (forced)" : "");
  /* a new generation: any descriptor naming the old one fails the hold */
  atomic_store_explicit (&b->slots[i].state,
      DH_SLOT_WORD (si.generation + 1, DH_SLOT_FREE), memory_order_release);
  count_recovery (ins);
  return 0;
}

int
dh_recover_dead_consumers (dh_inspector *ins)
{
  DH_CHECK_ARG (ins);
  int n = 0;
  for (uint32_t i = 0; i < DH_MAX_CONSUMERS; i++) {
    peer_view v;
    if (!peer_view_open (&ins->b, i, &v))
      continue;
    /* removed under a read lock on its byte: a consumer taking the object
     * over at the same moment (write lock) excludes us, or we it */
    if (!v.alive && dh_peer_reclaim (ins->b.origin, i, v.fd)) {
      n++;
      count_recovery (ins);
    }
    peer_view_close (&v);
  }
  return n;
}

int
dh_recover_leftovers (const char *name)
{
  char origin[DH_NAME_MAX + 1], x[DH_NAME_MAX + 1];
  int rc = dh_shm_name (name, origin, sizeof origin);
  if (rc != 0)
    return rc;
  int fd = shm_open (origin, O_RDONLY | O_NONBLOCK | O_CLOEXEC, 0);
  if (fd >= 0) {
    close (fd);
    return dh_fail (DH_EOWNERALIVE, "%s exists: its producer (or the next one) reclaims "
        "what its consumers left; see `cleanup` on the block", origin);
  }
  int n = 0;
  for (uint32_t i = 0; i < DH_MAX_CONSUMERS; i++) {
    /* by name, unmapped: what a dead consumer left may be truncated */
    char obj[DH_NAME_MAX + 1];
    if (dh_consumer_object_name (origin, i, obj, sizeof obj) != 0
        || (fd = shm_open (obj, O_RDONLY | O_NONBLOCK | O_CLOEXEC, 0)) < 0)
      continue;
    struct stat st;
    if (fstat (fd, &st) == 0 && S_ISREG (st.st_mode) && !dh_peer_alive (fd)
        && dh_peer_reclaim (origin, i, fd))
      n++;
    close (fd);
  }
  if (dh_exchange_object_name (origin, x, sizeof x) == 0 && shm_unlink (x) == 0)
    n++;
  return n;
}

int
dh_recover_auto (dh_inspector *ins, bool apply, dh_finding_fn fn, void *user)
{
  DH_CHECK_ARG (ins);
  dh_block *b = &ins->b;
  const char *verb = apply ? "removed" : "would remove";
  int actions = 0;
  for (uint32_t i = 0; i < DH_MAX_CONSUMERS; i++) {
    peer_view v;
    if (!peer_view_open (b, i, &v))
      continue;
    if (!v.alive) {
      actions++;
      uint32_t holds = holds_in_use (&v);
      emit (fn, user, DH_FINDING_DEAD_CONSUMER, i, true, "", "%s dead consumer %u (pid %u)%s",
          verb, i, __atomic_load_n (&v.obj->pid, __ATOMIC_RELAXED),
          holds ? " and its holds" : "");
    }
    peer_view_close (&v);
  }
  bool producer_alive = dh_producer_alive (b);
  if (!producer_alive)
    for (uint32_t i = 0; i < b->slot_count; i++) {
      uint64_t w = atomic_load_explicit (&b->slots[i].state, memory_order_acquire);
      if (DH_SLOT_STATE (w) != DH_SLOT_WRITING)
        continue;
      actions++;
      emit (fn, user, DH_FINDING_STUCK_WRITING, i, true, "", "%s slot %u stuck in WRITING "
          "by the dead producer", apply ? "reset" : "would reset", i);
      if (apply && need_writable (ins) == 0)
        dh_recover_reset_slot (ins, i, true);
    }
  if (apply)
    dh_recover_dead_consumers (ins);
  return actions;
}

int
dh_list_blocks (dh_name_fn fn, void *user)
{
  DH_CHECK_ARG (fn);
  DIR *d = opendir ("/dev/shm");
  if (!d)
    return dh_fail (-errno, "cannot list /dev/shm: %s", strerror (errno));
  int n = 0;
  struct dirent *e;
  while ((e = readdir (d))) {
    if (e->d_name[0] == '.' || strchr (e->d_name, '@'))
      continue; /* companion objects are not blocks */
    char name[DH_NAME_MAX + 2];
    snprintf (name, sizeof name, "/%s", e->d_name);
    /* a datahub block is whatever carries the magic, whatever its name;
     * O_NONBLOCK and the regular-file check: a FIFO must not hang us */
    int fd = shm_open (name, O_RDONLY | O_CLOEXEC | O_NONBLOCK, 0);
    if (fd < 0)
      continue;
    struct stat st;
    uint64_t magic = 0;
    bool ours = fstat (fd, &st) == 0 && S_ISREG (st.st_mode)
        && pread (fd, &magic, sizeof magic, 0) == (ssize_t) sizeof magic && magic == DH_MAGIC;
    close (fd);
    if (ours) {
      fn (name, user);
      n++;
    }
  }
  closedir (d);
  return n;
}
