/* libFuzzer target: arbitrary bytes as the contents of a shm object, then
 * everything that reads a block from outside — attach as a consumer,
 * inspect, validate, read every slot and consumer entry, read a record.
 * Nothing may crash or read out of bounds, whatever the header says.
 *   scripts/fuzz   (builds with clang -fsanitize=fuzzer,address and runs) */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "datahub/admin.h"
#include "datahub/datahub.h"

static char shm_name[64];

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
  if (dh_consumer_attach (&cc, &c) == 0) {
    dh_record r;
    for (int k = 0; k < 4 && dh_consumer_next (c, 0, &r) == 0; k++) {
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
        (void) dh_consumer_zone_read (c, z, buf, sizeof buf, &len, NULL);
    (void) dh_consumer_successor (c, buf, sizeof buf);
    dh_consumer_detach (c);
  }
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
  close (fd);
  exercise ();
  shm_unlink (shm_name);
  return 0;
}
