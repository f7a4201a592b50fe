/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Error names, the per-thread failure detail, and the optional log hook. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "dh_internal.h"

static _Thread_local char detail_buf[512];
static _Atomic (dh_log_fn) log_fn;
static void *_Atomic log_user;

const char *
dh_strerror (int code)
{
  switch (code) {
    case 0: return "success";
    case DH_ELOCKRECOVERED: return "lock recovered from a dead owner";
    case DH_ENOTREADY: return "block is still being created";
    case DH_ENOTDATAHUB: return "not a datahub block";
    case DH_EVERSION: return "unsupported layout version";
    case DH_ECORRUPT: return "corrupt block header";
    case DH_ETRUNCATED: return "block is truncated";
    case DH_ESECRET: return "wrong or missing secret";
    case DH_ESCHEMA: return "schema mismatch";
    case DH_EBUSY: return "a live producer owns this name";
    case DH_EFULL: return "no free consumer entry";
    case DH_ECLOSED: return "producer closed the block";
    case DH_EPRODUCERDEAD: return "producer died";
    case DH_ECHECKSUM: return "record failed its integrity check";
    case DH_ESLOT: return "slot or record handle not valid";
    case DH_ETOOBIG: return "size exceeds the slot size";
    case DH_ECONFIG: return "invalid configuration";
    case DH_EOWNERALIVE: return "owner is still alive";
    case DH_EHANDOVER: return "stream continues in a successor block";
    case DH_EEVICTED: return "consumer evicted by the producer";
    case DH_ESTALE: return "record rewritten while it was read";
    case DH_EINTEGRITY: return "block integrity below the required minimum";
    default: break;
  }
  if (code < 0 && code > -4096)
    return strerror (-code);
  return "unknown datahub error";
}

const char *
dh_error_detail (void)
{
  return detail_buf[0] ? detail_buf : "no error recorded";
}

int
dh_fail (int code, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (detail_buf, sizeof detail_buf, fmt, ap);
  va_end (ap);
  dh_log (DH_LOG_DEBUG, "%s (%s)", detail_buf, dh_strerror (code));
  return code;
}

void
dh_set_log_handler (dh_log_fn fn, void *user)
{
  atomic_store (&log_user, user);
  atomic_store (&log_fn, fn);
}

void
dh_log (dh_log_level level, const char *fmt, ...)
{
  dh_log_fn fn = atomic_load (&log_fn);
  if (!fn)
    return;
  char msg[512];
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  fn (level, msg, atomic_load (&log_user));
}

/* Records the last error in the block's metrics (error code as a positive
 * magnitude in the high half, a running sequence in the low half).
 * Producer only: consumers map the block read-only. */
void
dh_record_error (dh_block *b, int code)
{
  dh_shm_metrics *m = &b->hdr->metrics;
  uint64_t mag = (uint64_t) (code < 0 ? -code : code);
  uint64_t old = atomic_load_explicit (&m->last_error, memory_order_relaxed);
  /* a CAS loop, so two threads recording at once both count */
  while (!atomic_compare_exchange_weak_explicit (&m->last_error, &old,
          mag << 32 | ((old + 1) & 0xffffffffu), memory_order_relaxed,
          memory_order_relaxed))
    ;
  atomic_store_explicit (&m->last_error_timestamp_ns, dh_realtime_ns (),
      memory_order_relaxed);
}
