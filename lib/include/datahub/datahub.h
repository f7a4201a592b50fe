/* datahub — shared-memory DataBlocks for moving buffers between processes.
 *
 * Usage story
 * -----------
 * A producer creates a block by channel name and writes straight into slot
 * memory; consumers in other processes attach by the same name and read the
 * records in commit order through a read-only mapping.  Everything a
 * consumer writes (its cursor, its holds) lives in an object of its own, so
 * a consumer, however buggy, can only hurt itself:
 *
 *     dh_producer_config pc;
 *     dh_producer_config_init (&pc);
 *     pc.name = "camera0";            // -> shm object "/datahub.camera0"
 *     pc.slot_size = 4096;
 *     pc.slot_count = 16;
 *     dh_producer *p;
 *     int rc = dh_producer_create (&pc, &p);       // 0 or a negative code
 *
 *     dh_slot s;
 *     rc = dh_producer_acquire (p, 1000, &s);      // wait at most 1 s
 *     memcpy (s.data, frame, len);                 // or render in place
 *     dh_record_info info = { .size = len, .pts = pts };
 *     rc = dh_producer_commit (p, &s, &info, NULL);
 *
 *     // in another process
 *     dh_consumer_config cc;
 *     dh_consumer_config_init (&cc);
 *     cc.name = "camera0";
 *     dh_consumer *c;
 *     rc = dh_consumer_attach (&cc, &c);           // or dh_consumer_open: register
 *                                                  // now, wait for a producer in next
 *     dh_record r;
 *     rc = dh_consumer_next (c, 1000, &r);         // r.data is read-only
 *     use (r.data, r.size);
 *     dh_consumer_release (c, &r);                 // the slot may be reused
 *     dh_consumer_detach (c);
 *     dh_producer_destroy (p);                     // unlinks the object
 *
 * Errors: every function that can fail returns 0 (or a count) on success and
 * a negative value on failure: either -errno (e.g. -ETIMEDOUT, -EACCES) or one
 * of the DH_E* codes below.  dh_strerror() names any of them, and
 * dh_error_detail() gives the last failure of the calling thread with the
 * names and values involved ("layout major 2 found, 1 expected").
 * The library never prints; install a log callback with dh_set_log_handler().
 *
 * Thread safety: stated per function.  "Any thread" means the handle may be
 * used concurrently from several threads; "one thread at a time" means the
 * caller serialises calls on that handle.
 *
 * The shared-memory layout and synchronisation are specified in
 * docs/protocol.md.
 */
#ifndef DATAHUB_DATAHUB_H
#define DATAHUB_DATAHUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(DH_BUILDING_LIBRARY)
#define DH_API __attribute__ ((visibility ("default")))
#else
#define DH_API
#endif
#define DH_WARN_UNUSED __attribute__ ((warn_unused_result))

/* ---- limits ------------------------------------------------------------ */
#define DH_MAX_CONSUMERS 64   /* consumer indexes are bits of 64-bit masks */
#define DH_MAX_ZONES 8
#define DH_SPINLOCK_COUNT 32
#define DH_SECRET_SIZE 16     /* 128-bit shared secret */
#define DH_HASH_SIZE 32       /* BLAKE2b-256 */
#define DH_NAME_MAX 255

/* ---- error codes (negative; disjoint from -errno) ------------------------ */
enum {
  DH_ENOTREADY = -1000,      /* object exists but its creator has not finished */
  DH_ENOTDATAHUB = -1001,    /* the object is not a datahub block (bad magic) */
  DH_EVERSION = -1002,       /* unsupported layout major version */
  DH_ECORRUPT = -1003,       /* header fails validation */
  DH_ETRUNCATED = -1004,     /* object smaller than its header says */
  DH_ESECRET = -1005,        /* wrong or missing secret */
  DH_ESCHEMA = -1006,        /* schema hash differs from the expected one */
  DH_EBUSY = -1007,          /* a live producer already owns the name */
  DH_EFULL = -1008,          /* every consumer entry is in use */
  DH_ECLOSED = -1009,        /* producer closed the block and all was read */
  DH_EPRODUCERDEAD = -1010,  /* producer died; reattach by name */
  DH_ECHECKSUM = -1011,      /* record failed its checksum/HMAC; it was dropped */
  DH_ESLOT = -1012,          /* slot handle/record not valid (stale or foreign) */
  DH_ETOOBIG = -1013,        /* size larger than the slot size */
  DH_ECONFIG = -1014,        /* invalid configuration value */
  DH_EOWNERALIVE = -1015,    /* recovery refused: owner still alive */
  DH_EHANDOVER = -1016,      /* consumer: the stream moved to the successor block
                                and the handle follows it (call next again);
                                producer: this block was handed over, commit to
                                the successor */
  DH_EEVICTED = -1017,       /* the producer evicted this consumer */
  DH_ESTALE = -1018,         /* an unheld record (latest-value policies) was
                                rewritten while it was read: discard the copy */
  DH_EINTEGRITY = -1019,     /* the block's integrity is below the required one */
  DH_ELOCKRECOVERED = 1,     /* (positive) lock acquired from a dead owner */
};

/* ---- enums ---------------------------------------------------------------- */
typedef enum {
  DH_POLICY_RING = 0,   /* every consumer sees every record, in order */
  DH_POLICY_SINGLE = 1, /* one slot, latest value */
  DH_POLICY_DOUBLE = 2, /* two slots, latest value, stable previous frame */
} dh_policy;

typedef enum {
  DH_ON_FULL_BLOCK = 0, /* producer waits for the slowest non-leaky consumer */
  DH_ON_FULL_DROP = 1,  /* producer reuses the oldest unheld slot; laggards lose */
} dh_on_full;

typedef enum {
  DH_INTEGRITY_NONE = 0,
  DH_INTEGRITY_CHECKSUM = 1, /* BLAKE2b-256 of each committed payload */
  DH_INTEGRITY_HMAC = 2,     /* keyed BLAKE2b with a key derived from the secret */
} dh_integrity;

typedef enum {
  DH_CHECK_ENFORCED = 0, /* computed on commit, verified on read */
  DH_CHECK_MANUAL = 1,   /* caller uses dh_producer_update_checksum/dh_consumer_verify */
} dh_check;

typedef enum {
  DH_START_LATEST = 0, /* begin with the newest record */
  DH_START_OLDEST = 1, /* begin with the oldest record still intact */
} dh_start;

/* Whether a consumer may hold the producer back (ring policy, on-full=block). */
typedef enum {
  DH_LEAKY_NO = 0,   /* lossless: the producer waits for it */
  DH_LEAKY_YES = 1,  /* never waited for: when it lags it skips and counts */
  DH_LEAKY_AUTO = 2, /* leaky while the producer is live (dh_producer_set_live),
                        lossless otherwise */
} dh_leaky;

/* ---- records ---------------------------------------------------------- */
/* What the producer says about a record; carried in the commit ring. */
typedef struct {
  uint64_t size;        /* payload bytes, <= slot size */
  uint32_t kind;        /* application-defined (the elements: buffer/event) */
  uint32_t flags;       /* application-defined */
  int64_t pts, dts, duration; /* nanoseconds; -1 = none */
  uint64_t offset, offset_end;
  uint32_t caps_gen;    /* application-defined generation (e.g. caps) */
  uint32_t reserved;
  uint64_t user[2];     /* two free words for the application */
} dh_record_info;

/* A slot held by the producer between acquire and commit/abort. */
typedef struct {
  void *data;           /* writable slot memory, 64-byte aligned */
  uint64_t capacity;    /* slot size in bytes */
  uint32_t index;
  uint32_t reserved;
  uint64_t generation;
} dh_slot;

/* A record held by a consumer between next and release. */
typedef struct {
  const void *data;     /* read-only slot memory */
  uint64_t seq;         /* commit sequence number, from 1, never wraps */
  uint64_t generation;
  uint64_t commit_ns;   /* CLOCK_MONOTONIC time of commit */
  uint64_t lost_before; /* records skipped just before this one */
  uint32_t slot;
  uint32_t flags;       /* DH_RECORD_* */
  dh_record_info info;
  uint64_t session;     /* the block the record is in */
} dh_record;

/* Latest-value policies: the record is not held; copy it, then release it:
 * DH_ESTALE from dh_consumer_release means the copy is torn. */
#define DH_RECORD_UNHELD 1u

/* ---- metrics -------------------------------------------------------------- */
/* A snapshot of the block's 256-byte metrics area with the live consumers'
 * counters added in (see docs/protocol.md "Metrics"). */
typedef struct {
  /* slot coordination */
  uint64_t writer_timeout_count, writer_blocked_total_ns, write_lock_contention,
      writer_waits, reader_not_ready_count, reader_race_detected,
      reader_validation_failed, reader_peak_count;
  /* errors */
  uint64_t last_error_timestamp_ns;
  uint32_t last_error_code, error_sequence; /* code as positive magnitude */
  uint64_t slot_acquire_errors, slot_commit_errors, checksum_failures,
      records_lost, consumers_reaped, recovery_actions;
  /* heartbeat and environment */
  uint64_t heartbeat_count, last_heartbeat_ns, last_recovery_ns, hugepages;
  /* performance */
  uint64_t slots_written, bytes_written, slots_read, bytes_read,
      commits_aborted, wakeups_sent, consumer_waits, slots_acquired,
      zone_writes, spinlock_recoveries;
  /* derived at snapshot time */
  uint64_t consumers_evicted, requests_dropped;
  uint32_t consumers_live, consumers_dead;
  uint64_t head_seq;
  uint64_t max_lag;  /* records published and not yet taken by the slowest
                        live consumer (occupancy) */
} dh_metrics;

/* hugepages values */
enum { DH_HUGEPAGES_OFF = 0, DH_HUGEPAGES_ADVISED = 1, DH_HUGEPAGES_FALLBACK = 2 };

/* ---- producer ------------------------------------------------------------ */
typedef struct dh_producer dh_producer;

typedef struct {
  const char *name;        /* channel ("cam0" -> "/datahub.cam0") or "/shm-name" */
  uint64_t slot_size;      /* bytes per slot (required) */
  uint32_t slot_count;     /* ring policy: slots in the pool (default 8) */
  uint32_t ring_length;    /* commit-ring entries, power of two; 0 = auto */
  uint32_t max_consumers;  /* 1..64 (default 16) */
  dh_policy policy;
  dh_on_full on_full;
  uint32_t zone_count;     /* flexible zones, 0..8 */
  uint32_t zone_sizes[DH_MAX_ZONES];
  dh_integrity integrity;
  dh_check check;
  const uint8_t *secret;   /* DH_SECRET_SIZE bytes, or NULL */
  const char *schema;      /* schema string hashed into the header, or NULL */
  mode_t mode;             /* file mode of the shm object (default 0600) */
  bool huge_pages;         /* advise huge pages for the payload (fallback silent) */
  uint32_t max_holds;      /* holds one consumer may be granted; 0 = half the
                              slots (at least 1), at most 64 */
  bool live;               /* a live source: consumers with DH_LEAKY_AUTO never
                              hold it back (also dh_producer_set_live) */
  /* Handover successors (dh_producer_create_successor fills these): the
   * chain's first block, whose consumer objects the successor admits. */
  const char *origin;      /* NULL: this block is the origin */
  uint32_t chain_index;    /* 0 for the origin, n for the n-th successor */
  /* Upstream requests from consumers (docs/protocol.md §8), delivered by
   * the producer's service thread; NULL: ignored. */
  void (*request_fn) (uint32_t consumer, uint32_t kind, const void *data, size_t len,
      void *user);
  void *request_user;
} dh_producer_config;

/* Fills defaults. Any thread. */
DH_API void dh_producer_config_init (dh_producer_config *cfg);

/* Creates the block; reclaims a stale one whose producer is dead.
 * DH_EBUSY if a live producer owns the name. Any thread. */
DH_API DH_WARN_UNUSED int dh_producer_create (const dh_producer_config *cfg,
    dh_producer **out);

/* Marks the block closed (consumers drain what was published, then get
 * DH_ECLOSED), wakes them and unlinks the name.  The handle stays valid
 * (memory still referencing slots keeps working) until destroy.  Idempotent.
 * Any thread. */
DH_API void dh_producer_close (dh_producer *p);

/* Closes (if not yet), unmaps and frees.  No other call on @p may be
 * running. */
DH_API void dh_producer_destroy (dh_producer *p);

/* Records whether the producer is a live source (consumers with
 * DH_LEAKY_AUTO then never hold it back).  Any thread. */
DH_API void dh_producer_set_live (dh_producer *p, bool live);

/* Takes a free slot (FREE -> WRITING). timeout_ms: 0 = try, <0 = forever.
 * -ETIMEDOUT, -ECANCELED (dh_producer_wakeup). Any thread. */
DH_API DH_WARN_UNUSED int dh_producer_acquire (dh_producer *p, int timeout_ms,
    dh_slot *out);

/* As dh_producer_acquire, but also returns -ECANCELED as soon as *@cancel
 * is nonzero: set it, then call dh_producer_kick, and the waiting calls
 * notice at once.  Unlike dh_producer_wakeup this stops only the calls
 * that watch that flag (a buffer pool's, say).  Any thread. */
DH_API DH_WARN_UNUSED int dh_producer_acquire_cancellable (dh_producer *p, int timeout_ms,
    const int *cancel, dh_slot *out);

/* Wakes every call waiting in this producer so it re-checks its flags
 * (dh_producer_acquire_cancellable).  Any thread. */
DH_API void dh_producer_kick (dh_producer *p);

/* Acquires between 1 and @n slots, waiting (as acquire) only for the first.
 * Returns how many were acquired, or a negative code. Any thread. */
DH_API DH_WARN_UNUSED int dh_producer_acquire_batch (dh_producer *p,
    dh_slot *out, unsigned n, int timeout_ms);

/* Publishes the slot as the next record (slots may be committed in any order
 * relative to acquisition). @out_seq may be NULL. Any thread. */
DH_API DH_WARN_UNUSED int dh_producer_commit (dh_producer *p, const dh_slot *slot,
    const dh_record_info *info, uint64_t *out_seq);

/* As dh_producer_commit, but the slot stays pinned after the commit: it is
 * not reused until dh_producer_unpin (memory still referenced in the
 * producer process, e.g. a GstMemory upstream keeps).  Any thread. */
DH_API DH_WARN_UNUSED int dh_producer_commit_keep (dh_producer *p, const dh_slot *slot,
    const dh_record_info *info, uint64_t *out_seq);

/* Ends the pin of a slot committed with dh_producer_commit_keep.  DH_ESLOT
 * if @slot is not pinned at its generation.  Any thread. */
DH_API int dh_producer_unpin (dh_producer *p, const dh_slot *slot);

/* Publishes @n slots as consecutive records with one wake-up. Any thread. */
DH_API DH_WARN_UNUSED int dh_producer_commit_batch (dh_producer *p,
    const dh_slot *slots, const dh_record_info *infos, unsigned n,
    uint64_t *first_seq);

/* Ends the life of a committed record early, so the producer may free
 * what it refers to (a file descriptor record's buffer): when no consumer
 * holds its slot, the consumers the producer waits for have read it and,
 * unless @force, every live consumer has, the slot becomes free at a new
 * generation (a consumer coming for the record later finds it overwritten
 * and counts it lost) and 0 is returned.  -EBUSY when the record is still
 * needed; DH_ESLOT when it is gone already (reused or retired).  @force
 * is what an acquire would do: it does not wait for leaky consumers.
 * Latest-value policies (readers hold nothing) retire only when forced:
 * the record is the latest value until the next commit replaces it.
 * Any thread. */
DH_API int dh_producer_retire (dh_producer *p, const dh_slot *slot, bool force);

/* Returns an acquired slot unpublished (WRITING -> FREE). Any thread. */
DH_API int dh_producer_abort (dh_producer *p, const dh_slot *slot);

/* Manual integrity: computes the slot's checksum over @size bytes. Call
 * before commit. Any thread. */
DH_API int dh_producer_update_checksum (dh_producer *p, const dh_slot *slot,
    uint64_t size);

/* Writes a flexible zone (seqlock; readers see whole snapshots). Any thread
 * (writers of one zone are serialised internally). */
DH_API DH_WARN_UNUSED int dh_producer_zone_write (dh_producer *p, unsigned zone,
    const void *data, size_t len);

/* Makes a blocking acquire return -ECANCELED now and every later one until
 * dh_producer_clear_wakeup(). Any thread. */
DH_API void dh_producer_wakeup (dh_producer *p);
DH_API void dh_producer_clear_wakeup (dh_producer *p);

/* Forgets dead consumers (their holds and cursors no longer count) and
 * removes their objects.  Returns how many were reaped.  Done automatically
 * while the producer waits for space and in every service pass.  Any
 * thread. */
DH_API int dh_producer_reap_dead_consumers (dh_producer *p);

/* Runs a service pass now: admits consumers that registered, forgets dead
 * or departed ones, reads upstream requests.  The producer's service thread
 * does this by itself (at once when a consumer object appears, and every
 * 100 ms); call it to make admission synchronous, e.g. in tests.  Returns
 * how many consumers it admitted.  Any thread. */
DH_API int dh_producer_poll (dh_producer *p);

/* Creates the handover successor of @p: block "<origin>.h<n>" with the
 * same configuration and slots of @slot_size bytes, which admits the
 * channel's consumers from its first record.  Then announce it with
 * dh_producer_handover.  Any thread. */
DH_API DH_WARN_UNUSED int dh_producer_create_successor (dh_producer *p,
    uint64_t slot_size, dh_producer **out);

/* Handover: announces that the stream continues in the block named
 * @successor (authenticated with the secret's key when there is one).
 * Records committed so far stay readable; later commits to @p are refused
 * (DH_EHANDOVER).  Called again it only updates the successor name (a chain
 * of handovers redirects the first block to the newest).  Any thread. */
DH_API int dh_producer_handover (dh_producer *p, const char *successor);

/* Number of admitted consumers that are alive. Any thread; no system call. */
DH_API int dh_producer_consumer_count (dh_producer *p);

/* Updates the producer heartbeat (commit does this too). Any thread. */
DH_API void dh_producer_heartbeat (dh_producer *p);

DH_API const char *dh_producer_shm_name (const dh_producer *p);
DH_API uint64_t dh_producer_slot_size (const dh_producer *p);
DH_API uint32_t dh_producer_slot_count (const dh_producer *p);
DH_API uint64_t dh_producer_session_id (const dh_producer *p);
DH_API int dh_producer_metrics (dh_producer *p, dh_metrics *out);
DH_API void dh_producer_reset_metrics (dh_producer *p);

/* ---- consumer ------------------------------------------------------------ */
typedef struct dh_consumer dh_consumer;

typedef struct {
  const char *name;            /* channel or "/shm-name" */
  const uint8_t *secret;       /* DH_SECRET_SIZE bytes, or NULL */
  const char *expected_schema; /* refuse other schemas, or NULL */
  dh_leaky leaky;              /* may it hold the producer back (default no) */
  dh_start start;              /* where a late joiner starts */
  int attach_timeout_ms;       /* dh_consumer_attach: how long to wait for a
                                  producer (<0 forever) */
  uint32_t max_held;           /* holds wanted at once (default 4; the producer
                                  may grant fewer) */
  dh_integrity min_integrity;  /* refuse blocks (and successors) with less */
  mode_t mode;                 /* file mode of the consumer object (default 0644:
                                  the producer, maybe another user, reads it) */
} dh_consumer_config;

DH_API void dh_consumer_config_init (dh_consumer_config *cfg);

/* Registers as a consumer of the channel (creates its consumer object) and
 * returns at once; dh_consumer_next then waits for a producer.  A consumer
 * registered before the producer starts receives every record from the
 * first.  The handle follows handovers and, after DH_ECLOSED or
 * DH_EPRODUCERDEAD, waits for the next producer on the name.  -EACCES,
 * DH_EFULL (64 consumer objects exist), ...  Any thread. */
DH_API DH_WARN_UNUSED int dh_consumer_open (const dh_consumer_config *cfg,
    dh_consumer **out);

/* dh_consumer_open, then waits up to attach_timeout_ms for a producer to
 * admit it.  -ENOENT if no producer came, DH_EVERSION / DH_ESECRET /
 * DH_ESCHEMA / DH_ECORRUPT / DH_EINTEGRITY / DH_EFULL / ...  Any thread. */
DH_API DH_WARN_UNUSED int dh_consumer_attach (const dh_consumer_config *cfg,
    dh_consumer **out);

/* Waits up to @timeout_ms for a producer to appear and admit this
 * consumer (0), or an error.  A producer that is there is given a moment
 * to admit it even with a zero timeout.  One thread at a time (as next). */
DH_API int dh_consumer_wait_attached (dh_consumer *c, int timeout_ms);

/* Releases every hold, removes the consumer object, unmaps.  Records still
 * held are released.  No other call on @c may be running. */
DH_API void dh_consumer_detach (dh_consumer *c);

/* Stops reading for good while records read earlier are still in use
 * (GStreamer buffers that outlive the element): the producer no longer
 * waits for this consumer and no new producer admits it, but the records
 * it holds stay valid.  Release them (any thread), then detach.  Do not
 * call dh_consumer_next afterwards.  Any thread. */
DH_API void dh_consumer_stop (dh_consumer *c);

/* Next record in order (or the newest, for latest-value policies), with a
 * read hold on its slot (latest-value policies: no hold, see
 * DH_RECORD_UNHELD).  Waits for a producer first if there is none.
 * timeout_ms: 0 = try, <0 = forever.  -ETIMEDOUT, -ECANCELED, -ENOBUFS (all
 * granted holds in use: release one), DH_ECLOSED / DH_EPRODUCERDEAD (once;
 * the next call waits for a new producer), DH_EHANDOVER (once; the stream
 * continues in the successor), DH_ECHECKSUM (the record was dropped; call
 * again), DH_EEVICTED, and attach errors (DH_ESECRET, ...).  One thread at
 * a time. */
DH_API DH_WARN_UNUSED int dh_consumer_next (dh_consumer *c, int timeout_ms,
    dh_record *out);

/* Up to @max records already published (waits only for the first).
 * Returns the count or a negative code. One thread at a time. */
DH_API DH_WARN_UNUSED int dh_consumer_next_batch (dh_consumer *c,
    dh_record *out, unsigned max, int timeout_ms);

/* Drops the read hold of @r.  For an unheld record (DH_RECORD_UNHELD)
 * returns DH_ESTALE if the producer rewrote it since next returned it.
 * DH_ESLOT for a record not held (stale or double release).  Any thread
 * (so a GstMemory may be freed anywhere). */
DH_API int dh_consumer_release (dh_consumer *c, const dh_record *r);

/* Sends an upstream request to the producer (the latest one wins; the
 * producer looks at most 10 times a second).  @len <= 2032.  Any thread. */
DH_API int dh_consumer_request (dh_consumer *c, uint32_t kind, const void *data,
    size_t len);

/* Whether the producer of the current block says it is live; false when
 * not attached.  Any thread. */
DH_API bool dh_consumer_producer_live (dh_consumer *c);

/* Moves the cursor to the newest or oldest intact record. One thread. */
DH_API int dh_consumer_seek (dh_consumer *c, dh_start where);

/* Manual integrity: verifies @r against its stored checksum. Any thread. */
DH_API int dh_consumer_verify (dh_consumer *c, const dh_record *r);

/* Reads a consistent snapshot of a zone. @version gets its sequence number
 * (even; changes on every write), @len the bytes written. -ENOBUFS if @cap is
 * too small (len is set). Any thread. */
DH_API DH_WARN_UNUSED int dh_consumer_zone_read (dh_consumer *c, unsigned zone,
    void *buf, size_t cap, size_t *len, uint64_t *version);

/* The zone's current version (its seqlock sequence, even when stable)
 * without copying it: poll this and read the zone only when it changed.
 * Any thread. */
DH_API uint64_t dh_consumer_zone_version (dh_consumer *c, unsigned zone);

/* After DH_EHANDOVER: the successor's shm name. Any thread. */
DH_API int dh_consumer_successor (dh_consumer *c, char *buf, size_t len);

/* Makes a dh_consumer_next (or connect) waiting in another thread return
 * -ECANCELED at once, and every later one until dh_consumer_clear_wakeup.
 * Any thread. */
DH_API void dh_consumer_wakeup (dh_consumer *c);
DH_API void dh_consumer_clear_wakeup (dh_consumer *c);
/* Marks this consumer as seen now (dh_consumer_next does it too); shown by
 * datahub-admin.  Any thread. */
DH_API void dh_consumer_heartbeat (dh_consumer *c);

/* Per-consumer counters. Any thread. */
typedef struct {
  uint64_t read, bytes_read, lost, races, checksum_failures, waits;
  uint64_t behind; /* records published and not yet taken by this consumer */
  uint32_t held;  /* records currently held */
  uint32_t index; /* consumer object index */
  uint32_t quota; /* holds granted by the producer (0 before admission) */
  bool attached;  /* admitted by a live block */
} dh_consumer_stats;
DH_API void dh_consumer_stats_get (dh_consumer *c, dh_consumer_stats *out);

DH_API const char *dh_consumer_shm_name (const dh_consumer *c);
DH_API uint64_t dh_consumer_session_id (const dh_consumer *c);
DH_API uint64_t dh_consumer_slot_size (const dh_consumer *c);
DH_API int dh_consumer_metrics (dh_consumer *c, dh_metrics *out);

/* ---- spinlocks (shared pool of 32; owner-tagged, recursive) ------------- */
/* In the channel's exchange object (writable by everyone who may attach).
 * Returns 0, DH_ELOCKRECOVERED (the previous owner died holding it: the data
 * it protects may be half-updated), -ETIMEDOUT, -EINVAL, -EACCES (no write
 * access to the exchange object), -ENOTCONN (consumer not attached). */
DH_API int dh_producer_spin_lock (dh_producer *p, unsigned idx, int timeout_ms);
DH_API int dh_producer_spin_unlock (dh_producer *p, unsigned idx);
DH_API int dh_consumer_spin_lock (dh_consumer *c, unsigned idx, int timeout_ms);
DH_API int dh_consumer_spin_unlock (dh_consumer *c, unsigned idx);

/* ---- utilities ------------------------------------------------------------ */
/* Writes the shm object name for @name ("cam0" -> "/datahub.cam0"; a name
 * starting with '/' is used as is and must be '/' followed by 1..240 of
 * [A-Za-z0-9._-]). Returns 0 or -ENAMETOOLONG/-EINVAL. */
DH_API int dh_shm_name (const char *name, char *buf, size_t buflen);

DH_API const char *dh_strerror (int code);
/* The calling thread's last failure, with names and values. */
DH_API const char *dh_error_detail (void);

typedef enum { DH_LOG_ERROR, DH_LOG_WARNING, DH_LOG_INFO, DH_LOG_DEBUG } dh_log_level;
typedef void (*dh_log_fn) (dh_log_level level, const char *msg, void *user);
/* Process-wide; NULL removes it. */
DH_API void dh_set_log_handler (dh_log_fn fn, void *user);

/* BLAKE2b-256 schema hash of a schema string (as stored in the header). */
DH_API void dh_schema_hash (const char *schema, uint8_t out[DH_HASH_SIZE]);

#ifdef __cplusplus
}
#endif
#endif /* DATAHUB_DATAHUB_H */
