/* Metrics snapshot and reset.  Consumer-side counters are summed from the
 * live entries plus what detached or reaped consumers left in the block. */
#include <string.h>

#include "dh_internal.h"

#define LOAD(field) atomic_load_explicit (&(field), memory_order_relaxed)

void
dh_retire_consumer_counters (dh_block *b, uint32_t i)
{
  dh_shm_metrics *m = &b->hdr->metrics;
  dh_shm_consumer *c = &b->consumers[i];
  dh_relaxed_inc (&m->slots_read, LOAD (c->read));
  dh_relaxed_inc (&m->bytes_read, LOAD (c->bytes_read));
  dh_relaxed_inc (&m->records_lost, LOAD (c->lost));
  dh_relaxed_inc (&m->reader_race_detected, LOAD (c->races));
  dh_relaxed_inc (&m->checksum_failures, LOAD (c->checksum_failures));
  dh_relaxed_inc (&m->consumer_waits, LOAD (c->waits));
  dh_relaxed_inc (&m->reader_not_ready_count, LOAD (c->not_ready));
}

void
dh_metrics_snapshot (const dh_block *b, dh_metrics *out)
{
  const dh_shm_metrics *m = &b->hdr->metrics;
  memset (out, 0, sizeof *out);
  out->writer_timeout_count = LOAD (m->writer_timeout_count);
  out->writer_blocked_total_ns = LOAD (m->writer_blocked_total_ns);
  out->write_lock_contention = LOAD (m->write_lock_contention);
  out->writer_waits = LOAD (m->writer_waits);
  out->reader_not_ready_count = LOAD (m->reader_not_ready_count);
  out->reader_race_detected = LOAD (m->reader_race_detected);
  out->reader_validation_failed = LOAD (m->reader_validation_failed);
  out->reader_peak_count = LOAD (m->reader_peak_count);
  out->last_error_timestamp_ns = LOAD (m->last_error_timestamp_ns);
  uint64_t last = LOAD (m->last_error);
  out->last_error_code = (uint32_t) (last >> 32);
  out->error_sequence = (uint32_t) last;
  out->slot_acquire_errors = LOAD (m->slot_acquire_errors);
  out->slot_commit_errors = LOAD (m->slot_commit_errors);
  out->checksum_failures = LOAD (m->checksum_failures);
  out->records_lost = LOAD (m->records_lost);
  out->consumers_reaped = LOAD (m->consumers_reaped);
  out->recovery_actions = LOAD (m->recovery_actions);
  out->heartbeat_count = LOAD (m->heartbeat_count);
  out->last_heartbeat_ns = LOAD (b->hdr->producer_heartbeat_ns);
  out->last_recovery_ns = LOAD (m->last_recovery_ns);
  out->hugepages = LOAD (m->hugepages);
  out->slots_written = LOAD (m->slots_written);
  out->bytes_written = LOAD (m->bytes_written);
  out->slots_read = LOAD (m->slots_read);
  out->bytes_read = LOAD (m->bytes_read);
  out->commits_aborted = LOAD (m->commits_aborted);
  out->wakeups_sent = LOAD (m->wakeups_sent);
  out->consumer_waits = LOAD (m->consumer_waits);
  out->slots_acquired = LOAD (m->slots_acquired);
  out->zone_writes = LOAD (m->zone_writes);
  out->spinlock_recoveries = LOAD (m->spinlock_recoveries);
  out->head_seq = atomic_load_explicit (&b->hdr->head, memory_order_acquire);
  for (uint32_t i = 0; i < b->max_consumers; i++) {
    const dh_shm_consumer *c = &b->consumers[i];
    uint64_t w = atomic_load_explicit (&c->state, memory_order_acquire);
    if (DH_CONSUMER_STATE (w) != DH_CONSUMER_ACTIVE)
      continue;
    if (dh_consumer_alive (b, i) || (b->tag == 2 + i)) {
      out->consumers_live++;
      uint64_t cursor = atomic_load_explicit (&c->cursor, memory_order_relaxed);
      uint64_t lag = out->head_seq >= cursor ? out->head_seq - cursor + 1 : 0;
      if (lag > out->max_lag)
        out->max_lag = lag;
    } else {
      out->consumers_dead++;
    }
    out->slots_read += LOAD (c->read);
    out->bytes_read += LOAD (c->bytes_read);
    out->records_lost += LOAD (c->lost);
    out->reader_race_detected += LOAD (c->races);
    out->checksum_failures += LOAD (c->checksum_failures);
    out->consumer_waits += LOAD (c->waits);
    out->reader_not_ready_count += LOAD (c->not_ready);
  }
}

/* Zeroes the block's counters and every consumer entry's.  The
 * environment field (hugepages) is kept. */
void
dh_metrics_reset (dh_block *b)
{
  dh_shm_metrics *m = &b->hdr->metrics;
  uint64_t huge = LOAD (m->hugepages);
  _Atomic uint64_t *words = (_Atomic uint64_t *) (void *) m;
  for (size_t i = 0; i < sizeof *m / sizeof (uint64_t); i++)
    atomic_store_explicit (&words[i], 0, memory_order_relaxed);
  atomic_store_explicit (&m->hugepages, huge, memory_order_relaxed);
  for (uint32_t i = 0; i < b->max_consumers; i++) {
    dh_shm_consumer *c = &b->consumers[i];
    atomic_store_explicit (&c->read, 0, memory_order_relaxed);
    atomic_store_explicit (&c->bytes_read, 0, memory_order_relaxed);
    atomic_store_explicit (&c->lost, 0, memory_order_relaxed);
    atomic_store_explicit (&c->races, 0, memory_order_relaxed);
    atomic_store_explicit (&c->checksum_failures, 0, memory_order_relaxed);
    atomic_store_explicit (&c->waits, 0, memory_order_relaxed);
    atomic_store_explicit (&c->not_ready, 0, memory_order_relaxed);
  }
}
