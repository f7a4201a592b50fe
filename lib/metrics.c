/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Metrics snapshot and reset.  The header holds the producer's counters
 * and the read-side totals the producer maintains (admission.c). */
#include <string.h>

#include "dh_internal.h"

#define LOAD(field) atomic_load_explicit (&(field), memory_order_relaxed)

void
dh_metrics_from_header (const dh_block *b, dh_metrics *out)
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
  out->consumers_evicted = LOAD (m->consumers_evicted);
  out->requests_dropped = LOAD (m->requests_dropped);
  out->head_seq = atomic_load_explicit (&b->hdr->head, memory_order_acquire);
  for (uint32_t i = 0; i < b->max_consumers; i++)
    if (atomic_load_explicit (&b->table[i].state, memory_order_acquire) == DH_ADMIT_ADMITTED)
      out->consumers_live++;
}

/* Zeroes the block's counters; the environment field (hugepages) is
 * kept.  Producer (or an admin with write access) only. */
void
dh_metrics_reset (dh_block *b)
{
  dh_shm_metrics *m = &b->hdr->metrics;
  uint64_t huge = LOAD (m->hugepages);
  _Atomic uint64_t *words = (_Atomic uint64_t *) (void *) m;
  for (size_t i = 0; i < sizeof *m / sizeof (uint64_t); i++)
    atomic_store_explicit (&words[i], 0, memory_order_relaxed);
  atomic_store_explicit (&m->hugepages, huge, memory_order_relaxed);
}
