/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The consumer's private state, shared by session.c (registration, finding
 * and following blocks) and consumer.c (reading, holds, waiting). */
#ifndef DH_CONSUMER_PRIVATE_H
#define DH_CONSUMER_PRIVATE_H

#include <pthread.h>

#include "dh_internal.h"

/* A block this consumer reads, or still holds records in after it moved
 * on (a handover, a producer restart). */
typedef struct {
  dh_block b;
  uint32_t holds;      /* records held in it (hold_lock) */
  bool current;
} dh_cblock;

/* Our bookkeeping of hold entry j of our object (hold_lock). */
typedef struct {
  bool used;
  uint32_t slot;
  uint64_t seq, generation;
  dh_cblock *blk;
} dh_hold;

#define DH_MAX_RETIRED 8

struct dh_consumer {
  /* registration: our object, for the whole life of the handle */
  dh_consumer_config cfg;
  uint8_t secret[DH_SECRET_SIZE];
  char *schema;
  char origin[DH_NAME_MAX + 1];
  int obj_fd;
  dh_shm_consumer *obj;
  uint32_t index;
  uint64_t token;
  /* The block we read (NULL: waiting for a producer).  Changed by the
   * reading thread only, under cur_lock; other threads (stats, zones,
   * release of unheld records) read it under cur_lock, so it is not
   * unmapped under them. */
  pthread_mutex_t cur_lock;
  dh_cblock *cur;
  char cur_name[DH_NAME_MAX + 1];
  dh_cblock *candidate;      /* found, waiting to be admitted there */
  uint32_t quota;
  uint64_t cursor;           /* next seq to read (mirrored in obj->cursor) */
  uint64_t avoid_session;    /* a dead producer's block still at the name */
  uint64_t drained[64];      /* sessions read to their cutover (ring) */
  unsigned ndrained;
  bool started;              /* losses are counted from the first record on */
  uint64_t pending_lost;
  uint32_t delivered_since_beat; /* heartbeat every 8 records when never waiting */     /* skipped since the last record delivered */
  uint64_t last_liveness_check_ns;
  bool evicted;
  /* holds: any thread releases */
  pthread_mutex_t hold_lock;
  dh_hold held[DH_MAX_HOLDS];
  uint32_t nheld;
  dh_cblock *retired[DH_MAX_RETIRED];
  /* upstream requests: any thread */
  pthread_mutex_t req_lock;
  uint64_t req_seq;
  /* waking our own waiting thread: flag + private futex word */
  atomic_bool wakeup;
  _Atomic uint32_t wake_word;
  /* application spinlocks (opened on first use) */
  dh_shm_exchange *x;
  int x_fd;
};

/* ---- session.c ---- */
/* Finds the newest block of the channel and waits to be admitted there,
 * until @deadline for a block to appear and until @admit_deadline (the
 * later of the two counts) for a live producer to admit us.  At the
 * deadline, -ENOENT, DH_ENOTREADY or DH_EUNFINISHED say the block is not
 * there yet (the public calls decide what that means to their caller). */
int dh_session_connect (dh_consumer *c, uint64_t deadline, uint64_t admit_deadline);
/* Moves to the successor after the cutover; DH_EHANDOVER on success. */
int dh_session_follow (dh_consumer *c);
/* The producer went away: forget the block (kept mapped while records
 * are held); the next call waits for a new producer.  Returns @rc. */
int dh_session_end (dh_consumer *c, int rc);
/* Drops a block that is neither current nor holding records. hold_lock held. */
void dh_session_release_block_locked (dh_consumer *c, dh_cblock *blk);
void dh_session_free_all (dh_consumer *c);
/* Rings the producer's service thread (it watches /dev/shm). */
void dh_session_doorbell (dh_consumer *c);

/* ---- consumer.c ---- */
void dh_consumer_wake_producer (dh_consumer *c, const dh_cblock *blk);

#endif /* DH_CONSUMER_PRIVATE_H */
