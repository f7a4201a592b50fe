/* libFuzzer target: arbitrary bytes as the contents of a block, then
 * everything that reads a block from outside — inspect, validate, read
 * every slot and consumer entry; register as a consumer, be admitted, read
 * records, zones and the successor.  Nothing may crash, read out of bounds
 * or wait long, whatever the header says.
 *
 * The harness plays the producer's part that it cannot fuzz: it holds the
 * block's liveness lock (a live producer), names the block's channel as
 * the one we attach to, and writes our admission (token, state) into the
 * table entry of the index we registered, as a producer would.  Everything
 * else comes from the input.
 *   scripts/fuzz   (builds with clang -fsanitize=fuzzer,address and runs) */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "datahub/admin.h"
#include "datahub/datahub.h"
#include "dh_block_layout.h"
#include "dh_consumer_private.h"
#include "dh_internal.h"

static char shm_name[64];

static int block_fd = -1;
static unsigned deep_inputs; /* inputs that read a record */

unsigned fuzz_deep_inputs (void);
unsigned
fuzz_deep_inputs (void)
{
  return deep_inputs;
}

/* What the producer does on admission: token last. */
static void
admit (const dh_consumer *c)
{
  off_t at = DH_TABLE_OFFSET + (off_t) c->index * (off_t) sizeof (dh_shm_admission);
  uint32_t state = DH_ADMIT_ADMITTED;
  if (pwrite (block_fd, &state, sizeof state, at + offsetof (dh_shm_admission, state)) < 0
      || pwrite (block_fd, &c->token, sizeof c->token, at) < 0)
    return;
}

static void
exercise (void)
{
  dh_inspector *ins;
  if (dh_inspect_open (shm_name, false, &ins) == 0) {
    dh_block_info bi;
    dh_inspect_info (ins, &bi);
    dh_inspect_validate (ins, NULL, NULL);
    for (uint32_t i = 0; i < bi.slot_count; i++) {
      dh_slot_info si;
      dh_inspect_slot (ins, i, &si);
    }
    for (uint32_t i = 0; i < bi.max_consumers; i++) {
      dh_consumer_info ci;
      dh_inspect_consumer (ins, i, &ci);
    }
    dh_metrics m;
    dh_inspect_metrics (ins, &m);
    dh_inspect_close (ins);
  }
  dh_consumer_config cc;
  dh_consumer_config_init (&cc);
  cc.name = shm_name;
  cc.start = DH_START_OLDEST;
  dh_consumer *c;
  if (dh_consumer_open (&cc, &c) != 0)
    return;
  admit (c);
  uint64_t now = dh_now_ns ();
  if (dh_session_connect (c, now, now) == 0) {
    dh_record r;
    for (int k = 0; k < 4 && dh_consumer_next (c, 0, &r) == 0; k++) {
      deep_inputs += k == 0;
      volatile uint8_t sink = 0;
      for (uint64_t i = 0; i < r.info.size; i += 512)
        sink ^= ((const uint8_t *) r.data)[i];
      (void) sink;
      dh_consumer_release (c, &r);
    }
    char buf[256];
    size_t len;
    /* an odd zone sequence means "being written": a reader would retry for
     * up to a second, which only slows the fuzzer down */
    for (unsigned z = 0; z < 8; z++)
      if (dh_consumer_zone_version (c, z) % 2 == 0)
        if (dh_consumer_zone_read (c, z, buf, sizeof buf, &len, NULL) != 0)
          continue; /* refused: what we want to see is that it does not crash */
    (void) dh_consumer_successor (c, buf, sizeof buf);
  }
  dh_consumer_detach (c);
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  if (!shm_name[0])
    snprintf (shm_name, sizeof shm_name, "/dh-fuzz-%d", (int) getpid ());
  int fd = shm_open (shm_name, O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (fd < 0)
    return 0;
  if (size && write (fd, data, size) != (ssize_t) size) {
    close (fd);
    shm_unlink (shm_name);
    return 0;
  }
  /* the block belongs to the channel we attach to */
  off_t origin_at = offsetof (dh_shm_header, origin_name);
  if (size >= (size_t) origin_at + DH_NAME_MAX + 1
      && pwrite (fd, shm_name, strlen (shm_name) + 1, origin_at) < 0) {
    close (fd);
    shm_unlink (shm_name);
    return 0;
  }
  block_fd = fd;
  (void) dh_lock_byte (fd, DH_LOCK_PRODUCER); /* a live producer */
  exercise ();
  block_fd = -1;
  close (fd);
  shm_unlink (shm_name);
  return 0;
}
