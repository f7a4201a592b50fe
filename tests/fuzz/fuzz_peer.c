/* libFuzzer target: arbitrary bytes as a consumer object, seen by a live
 * producer — the one piece of shared memory another process writes and
 * the producer reads (docs/protocol.md §4, §6).  A producer admits it,
 * reads its holds, cursor, counters and requests while it writes records,
 * reports metrics, and datahub-admin's inspector reads it too.  Nothing
 * may crash, read out of bounds or wait for it.
 *
 * Input: byte 0 = flags, then the object as it is when the producer first
 * sees it (up to 4096 bytes), then what it is rewritten to after
 * admission.  Flags let the fuzzer keep what it cannot guess: the
 * incarnation token, the block's session in the cursor and hold entries.
 *   scripts/fuzz peer */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "datahub/admin.h"
#include "datahub/datahub.h"
#include "dh_consumer_layout.h"
#include "dh_internal.h"

enum {
  KEEP_TOKEN = 1,      /* the rewrite keeps the admitted incarnation */
  OUR_SESSION = 2,     /* session and hold entries name the block's session */
  SECOND_INDEX = 4,    /* the object is @c1, not @c0 */
  MARK_ALIVE = 8,      /* its owner holds the liveness lock */
};

static char origin[64];
static dh_producer *producer; /* one for the whole run */

/* the run's producer leaves nothing in /dev/shm */
static void
destroy_producer (void)
{
  dh_producer_destroy (producer);
  producer = NULL;
}
static unsigned deep_inputs; /* inputs admitted as a consumer */

unsigned fuzz_deep_inputs (void);
unsigned
fuzz_deep_inputs (void)
{
  return deep_inputs;
}

static void
on_request (uint32_t consumer, uint32_t kind, const void *data, size_t len, void *user)
{
  (void) consumer, (void) kind, (void) user;
  /* the producer hands over at most what the protocol allows */
  if (len > DH_REQUEST_MAX)
    __builtin_trap ();
  volatile uint8_t sink = 0;
  for (size_t i = 0; i < len; i++)
    sink ^= ((const uint8_t *) data)[i];
  (void) sink;
}

static void
name_our_session (dh_shm_consumer *o, uint64_t session)
{
  atomic_store (&o->session, session);
  for (unsigned j = 0; j < DH_MAX_HOLDS; j++) {
    uint64_t e = atomic_load (&o->holds[j]);
    if (e)
      atomic_store (&o->holds[j], DH_HOLD_ENTRY (session, (uint32_t) e - 1u));
  }
}

static void
write_some (dh_producer *p)
{
  for (int k = 0; k < 6; k++) {
    dh_slot s;
    if (dh_producer_acquire (p, 0, &s) != 0 || !s.data)
      return;
    memset (s.data, 'a' + k, 16);
    dh_record_info info = { .size = 16 };
    if (dh_producer_commit (p, &s, &info, NULL) != 0)
      return;
  }
}

static void
inspect (void)
{
  dh_inspector *ins;
  if (dh_inspect_open (origin, false, &ins) != 0)
    return;
  dh_block_info bi;
  dh_inspect_info (ins, &bi);
  for (uint32_t i = 0; i < bi.max_consumers; i++) {
    dh_consumer_info ci;
    dh_inspect_consumer (ins, i, &ci);
  }
  dh_inspect_validate (ins, NULL, NULL);
  dh_inspect_close (ins);
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  if (size < 1)
    return 0;
  if (!origin[0])
    snprintf (origin, sizeof origin, "/dh-fuzzpeer-%d", (int) getpid ());
  unsigned flags = data[0];
  const uint8_t *first = data + 1;
  size_t first_len = size - 1 > DH_CONSUMER_OBJECT_SIZE ? DH_CONSUMER_OBJECT_SIZE : size - 1;
  const uint8_t *second = first + first_len;
  size_t second_len = size - 1 - first_len;

  /* one producer for the whole run, as a real one meets consumer after
   * consumer (and creating one per input costs 10 ms in closing its
   * inotify descriptor) */
  if (!producer) {
    dh_producer_config pc;
    dh_producer_config_init (&pc);
    pc.name = origin;
    pc.slot_size = 64;
    pc.slot_count = 4;
    pc.max_consumers = 2;
    pc.request_fn = on_request;
    if (dh_producer_create (&pc, &producer) != 0)
      __builtin_trap ();
    atexit (destroy_producer);
  }
  dh_producer *p = producer;

  char name[DH_NAME_MAX + 1];
  uint32_t index = (flags & SECOND_INDEX) ? 1 : 0;
  dh_consumer_object_name (origin, index, name, sizeof name);
  int fd = shm_open (name, O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (fd < 0 || ftruncate (fd, (off_t) first_len) != 0) {
    if (fd >= 0)
      close (fd);
    return 0;
  }
  if (flags & MARK_ALIVE)
    (void) dh_lock_byte (fd, DH_LOCK_CONSUMER);
  dh_shm_consumer *o = NULL;
  if (first_len == DH_CONSUMER_OBJECT_SIZE) {
    o = mmap (NULL, DH_CONSUMER_OBJECT_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (o == MAP_FAILED)
      o = NULL;
  }
  if (o) {
    memcpy (o, first, first_len);
    if (flags & OUR_SESSION)
      name_our_session (o, dh_producer_session_id (p));
  } else if (first_len && pwrite (fd, first, first_len, 0) < 0) {
    /* nothing written: the producer sees an empty object */
  }

  dh_producer_poll (p); /* admission, or not (its thread may have been first) */
  deep_inputs += dh_producer_consumer_count (p) > 0;
  write_some (p);
  if (o && second_len) {
    uint64_t token = o->token;
    size_t n = second_len > DH_CONSUMER_OBJECT_SIZE ? DH_CONSUMER_OBJECT_SIZE : second_len;
    memcpy (o, second, n);
    if (flags & KEEP_TOKEN)
      o->token = token;
    if (flags & OUR_SESSION)
      name_our_session (o, dh_producer_session_id (p));
  }
  dh_producer_poll (p); /* requests, departures, garbage */
  write_some (p);
  dh_metrics m;
  dh_producer_metrics (p, &m);
  inspect ();

  /* the consumer goes away; the producer forgets it before the next one */
  if (o)
    munmap (o, DH_CONSUMER_OBJECT_SIZE);
  shm_unlink (name);
  close (fd);
  dh_producer_poll (p);
  dh_producer_metrics (p, &m);
  if (m.consumers_live != 0)
    __builtin_trap (); /* a consumer that is gone must not stay admitted */
  return 0;
}
