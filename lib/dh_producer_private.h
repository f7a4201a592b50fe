/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The producer's private state, shared by producer.c (slots, commits,
 * waiting) and admission.c (consumers, the service thread).  Everything
 * here is private memory: the producer decides from these copies only and
 * never reads its own words back from shared memory. */
#ifndef DH_PRODUCER_PRIVATE_H
#define DH_PRODUCER_PRIVATE_H

#include <pthread.h>

#include "dh_internal.h"

/* The authoritative state of one slot. */
typedef struct {
  uint64_t word;        /* generation << 2 | state, as last stored */
  uint64_t commit_seq;  /* seq of its last commit */
  uint32_t claims;      /* claim attempts (mirrored in dh_shm_slot.claim) */
  bool pinned;          /* committed, memory still referenced by the producer */
} dh_slot_own;

/* Read-side counters of consumers, summed with saturation (they are
 * untrusted, display only). */
typedef struct {
  uint64_t read, bytes_read, lost, races, checksum_failures, waits, not_ready;
} dh_read_totals;

/* A consumer object as the producer sees it.  @obj is untrusted. */
typedef struct {
  int fd;                        /* -1: nobody admitted at this index */
  const dh_shm_consumer *obj;    /* read-only mapping, SIGBUS-guarded */
  _Atomic int faulted;           /* set by the guard: the object shrank */
  uint64_t token;                /* the admitted incarnation */
  uint64_t start_seq;
  uint32_t quota;                /* hold entries read */
  uint32_t leaky_req;            /* DH_REQ_LEAKY_*, copied at admission */
  bool evicted;                  /* still mapped (to notice it leave), ignored */
  uint64_t last_req_seq;         /* last request sequence handled */
  uint64_t last_req_ns;
  dh_read_totals base;           /* its counters when metrics were last reset */
} dh_peer;

/* A request copied out of a consumer object, delivered without the lock. */
typedef struct {
  bool set;
  uint32_t kind, len;
  uint8_t data[DH_REQUEST_MAX];
} dh_pending_request;

struct dh_producer {
  dh_block b;
  /* Serialises slot claims, commits and admission between threads of this
   * process (the service thread included): sequence numbers must be
   * assigned and published in one order. */
  pthread_mutex_t lock;
  pthread_mutex_t zone_lock;
  /* configuration kept for successors */
  dh_producer_config cfg;
  uint8_t secret[DH_SECRET_SIZE];
  char *schema;
  /* slots and records (lock) */
  dh_slot_own *own;             /* slot_count entries */
  uint64_t *held_mask;          /* per slot: consumers holding it, this scan */
  uint32_t *held_stamp;         /* per slot: scan that set held_mask */
  uint32_t stamp;
  bool holds_collected;         /* held_mask is of the current scan */
  uint64_t last_seq;            /* last sequence number assigned */
  uint32_t hint;                /* next slot to look at: round robin ≈ oldest first */
  uint64_t min_cursor;          /* cache: lowest cursor of waited-for consumers */
  bool min_valid, min_fresh;
  bool handed_over;
  uint64_t successor_session; /* of the block we handed over to */
  uint64_t successor_seq;       /* private copy of the successor seqlock */
  uint64_t zone_seq[DH_MAX_ZONES];
  bool live;
  /* consumers (lock) */
  dh_peer peers[DH_MAX_CONSUMERS];
  uint64_t active;              /* admitted and not evicted */
  uint64_t admitted;            /* admitted (evicted included) */
  dh_read_totals retired;       /* of consumers that are gone, folded in once */
  uint32_t stale_objects;       /* dead consumers' objects we may not remove */
  uint64_t last_liveness_ns;
  uint64_t last_scan_ns;
  uint64_t scan_wanted;         /* indices to look at now (service thread) */
  dh_pending_request *pending;  /* DH_MAX_CONSUMERS entries, or NULL */
  /* waking our own waiting threads: flag + private futex word */
  atomic_bool wakeup;
  _Atomic uint32_t wake_word;
  /* our threads asleep in wait_for_space, and for each consumer how many
   * of them it gates: gate_mask is their union (p->lock) */
  unsigned own_waiters;
  uint16_t gate_count[DH_MAX_CONSUMERS];
  /* fast admission retries of an object still being initialised */
  uint8_t retries[DH_MAX_CONSUMERS];
  atomic_bool closed;
  /* the service thread */
  pthread_t thread;
  bool thread_started;
  atomic_bool stopping;
  int event_fd, inotify_fd;
  /* application spinlocks */
  dh_shm_exchange *x;
  int x_fd;
};

/* ---- admission.c ---- */
int dh_admission_start (dh_producer *p);      /* first scan + service thread */
void dh_admission_stop (dh_producer *p);      /* stops the thread */
void dh_admission_forget_all (dh_producer *p);
/* One service pass; @scan_all also opens every unadmitted index.  Returns
 * how many consumers were admitted.  p->lock held. */
int dh_service_locked (dh_producer *p, bool scan_all, bool check_liveness);
/* Drops the consumers of @mask that left, were replaced or (with
 * @check_liveness, a system call each) died; returns how many.  p->lock
 * held. */
int dh_reap_gating_locked (dh_producer *p, uint64_t mask, bool check_liveness);
/* How the producer treats consumer @i now.  p->lock held. */
bool dh_peer_waited_for (const dh_producer *p, uint32_t i);
uint64_t dh_peer_cursor (const dh_producer *p, uint32_t i);
/* Delivers pending requests to the configured callback (no lock held). */
void dh_deliver_requests (dh_producer *p);
/* Rewrites the leaky display field of every admitted consumer. */
void dh_admission_refresh_leaky (dh_producer *p);
/* Metrics reset: live consumers' counters count from now on.  p->lock held. */
void dh_admission_reset_counters (dh_producer *p);

/* ---- producer.c ---- */
void dh_invalidate_min (dh_producer *p);
/* The oldest record whose descriptor and slot are still intact. */
uint64_t dh_oldest_intact_locked (const dh_producer *p);

#endif /* DH_PRODUCER_PRIVATE_H */
