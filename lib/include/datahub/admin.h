/* datahub admin API: inspect, validate and recover DataBlocks from outside,
 * without registering as a participant.  Used by `datahub-admin`; usable by
 * any operator tool.  Authority is the file mode: whoever may open the shm
 * objects read-write (the producer's user, root) may recover them (no
 * secret is needed, none is revealed).  A live producer keeps its state
 * privately and repairs its own block; recovery writes only blocks whose
 * producer is dead, and removes objects of dead consumers.
 *
 *     dh_inspector *ins;
 *     dh_inspect_open ("cam0", true, &ins);     // channel or "/shm-name"
 *     dh_block_info bi;
 *     dh_inspect_info (ins, &bi);
 *     dh_recover_auto (ins, false, print_action, NULL);   // dry run
 *     dh_inspect_close (ins);
 *
 * Thread safety: one thread at a time per inspector.
 */
#ifndef DATAHUB_ADMIN_H
#define DATAHUB_ADMIN_H

#include "datahub/datahub.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dh_inspector dh_inspector;

/* Opens and validates a block (as attach does, minus secret and schema).
 * @writable: map it read-write (needed for slot recovery and metrics
 * reset); otherwise everything is mapped read-only. */
DH_API DH_WARN_UNUSED int dh_inspect_open (const char *name, bool writable,
    dh_inspector **out);
DH_API void dh_inspect_close (dh_inspector *ins);

typedef struct {
  char shm_name[DH_NAME_MAX + 1];
  uint16_t layout_major, layout_minor;
  uint64_t session_id, created_realtime_ns, total_size, slot_size;
  uint32_t slot_count, ring_length, max_consumers, zone_count;
  dh_policy policy;
  dh_on_full on_full;
  dh_integrity integrity;
  bool has_secret, has_schema;
  uint32_t producer_pid;
  bool producer_alive;
  uint32_t producer_state;       /* 0 none, 1 running, 2 closed */
  uint64_t producer_heartbeat_age_ns;
  uint64_t head_seq;
  uint64_t cutover_seq;          /* handover: 0 = none */
  char successor[DH_NAME_MAX + 1];
  uint32_t consumers_live, consumers_dead;  /* consumer objects with a live / dead owner */
  uint32_t consumers_admitted, consumers_evicted;
  uint64_t gate_mask;            /* consumers the producer is waiting for now */
  uint64_t gated_for_ns;         /* how long it has been waiting (0 = not) */
  bool producer_live_source;     /* the producer says it is a live source */
  char origin[DH_NAME_MAX + 1];  /* the channel's first block */
  /* flexible zones: capacity, bytes written, version (seqlock sequence) */
  uint32_t zone_size[DH_MAX_ZONES];
  uint64_t zone_length[DH_MAX_ZONES], zone_version[DH_MAX_ZONES];
} dh_block_info;

DH_API int dh_inspect_info (dh_inspector *ins, dh_block_info *out);

/* Consumer states as the admin sees them. */
enum {
  DH_CINFO_NONE = 0,      /* no consumer object at this index */
  DH_CINFO_WAITING = 1,   /* registered, not (yet) admitted by this block */
  DH_CINFO_ADMITTED = 2,
  DH_CINFO_EVICTED = 3,
};

typedef struct {
  uint32_t index;
  uint32_t state;                /* DH_CINFO_* */
  uint32_t pid;
  bool alive;                    /* its owner holds its lock */
  bool leaky;                    /* the producer does not wait for it */
  bool gating;                   /* the producer is waiting for it now */
  uint32_t quota, holds;         /* holds granted, hold entries in use */
  uint64_t cursor, behind, heartbeat_age_ns;
  uint64_t read, lost, races, checksum_failures;
} dh_consumer_info;

/* Fills entry @i (0 .. 63). */
DH_API int dh_inspect_consumer (dh_inspector *ins, uint32_t i, dh_consumer_info *out);

typedef struct {
  uint32_t index;
  uint32_t state;                /* 0 free, 1 writing, 2 committed */
  uint64_t generation, commit_seq;
  uint64_t readers;              /* consumers whose objects hold it */
  uint64_t dead_readers;         /* of those, consumers that are dead */
  uint64_t writing_age_ns;       /* how long it has been WRITING */
} dh_slot_info;

DH_API int dh_inspect_slot (dh_inspector *ins, uint32_t i, dh_slot_info *out);

DH_API int dh_inspect_metrics (dh_inspector *ins, dh_metrics *out);
DH_API int dh_inspect_reset_metrics (dh_inspector *ins);

/* ---- findings and recovery ------------------------------------------- */

typedef enum {
  DH_FINDING_DEAD_PRODUCER,      /* the producer lock is gone */
  DH_FINDING_DEAD_CONSUMER,      /* an ACTIVE entry whose owner is gone */
  DH_FINDING_ZOMBIE_HOLD,        /* a hold bit of a consumer that is gone */
  DH_FINDING_STUCK_WRITING,      /* WRITING slot of a dead producer */
  DH_FINDING_BAD_STATE,          /* a state word that no transition produces */
  DH_FINDING_BAD_CURSOR,         /* a cursor beyond the head */
  DH_FINDING_EVICTED,            /* a consumer the producer evicted */
  DH_FINDING_GATING,             /* a consumer holding the producer back */
} dh_finding_kind;

typedef struct {
  dh_finding_kind kind;
  uint32_t index;                /* slot or consumer index (kind-dependent) */
  bool fixable;                  /* auto-recover can repair it */
  char text[256];                /* what and why */
  char advice[160];              /* what to do */
} dh_finding;

typedef void (*dh_finding_fn) (const dh_finding *f, void *user);

/* Checks the invariants of docs/protocol.md; calls @fn per finding.
 * Returns the number of findings (0 = healthy). Read-only. */
DH_API int dh_inspect_validate (dh_inspector *ins, dh_finding_fn fn, void *user);

/* Resets slot @i to FREE (generation + 1).  Refuses with DH_EOWNERALIVE
 * while the producer is alive (it owns its slots and repairs its block
 * itself), and while a live consumer holds the slot unless @force.
 * Counted in recovery_actions. */
DH_API int dh_recover_reset_slot (dh_inspector *ins, uint32_t i, bool force);

/* Removes the objects (with their holds and cursors) of dead consumers.
 * Returns how many were removed. */
DH_API int dh_recover_dead_consumers (dh_inspector *ins);

/* For a channel whose block is gone (its producer exited and the name was
 * removed, or unlinked): removes the objects its dead consumers left
 * ("<name>@c<i>", whoever's they are, if we may) and its exchange object
 * ("<name>@x").  Refused (DH_EOWNERALIVE) while a block of that name
 * exists: use dh_recover_dead_consumers then.  Returns how many objects
 * were removed. */
DH_API int dh_recover_leftovers (const char *name);

/* Repairs every fixable finding (dead consumers' objects and their holds,
 * WRITING slots of a dead producer).  With @apply false only reports (dry run).
 * Calls @fn for each action; returns the number of actions. */
DH_API int dh_recover_auto (dh_inspector *ins, bool apply, dh_finding_fn fn, void *user);

/* Every datahub block in /dev/shm: calls @fn with each shm name. */
typedef void (*dh_name_fn) (const char *shm_name, void *user);
DH_API int dh_list_blocks (dh_name_fn fn, void *user);

#ifdef __cplusplus
}
#endif
#endif
