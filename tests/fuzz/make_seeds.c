/* Writes seed inputs for fuzz_attach: the bytes of real blocks (small
 * configurations, with records, zones, a consumer, a handover). */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "datahub/datahub.h"

static void
save (const char *shm, const char *path)
{
  int fd = shm_open (shm, O_RDONLY, 0);
  struct stat st;
  fstat (fd, &st);
  static char buf[1 << 20];
  ssize_t n = read (fd, buf, sizeof buf);
  close (fd);
  FILE *f = fopen (path, "wb");
  fwrite (buf, 1, (size_t) n, f);
  fclose (f);
}

int
main (int argc, char **argv)
{
  const char *dir = argc > 1 ? argv[1] : ".";
  for (int variant = 0; variant < 3; variant++) {
    dh_producer_config pc;
    dh_producer_config_init (&pc);
    pc.name = "/dh-seed";
    pc.slot_size = variant == 2 ? 4096 : 64;
    pc.slot_count = 2 + (uint32_t) variant;
    pc.max_consumers = 2;
    pc.policy = variant == 1 ? DH_POLICY_DOUBLE : DH_POLICY_RING;
    pc.integrity = variant == 2 ? DH_INTEGRITY_CHECKSUM : DH_INTEGRITY_NONE;
    pc.zone_count = 1;
    pc.zone_sizes[0] = 64;
    dh_producer *p;
    if (dh_producer_create (&pc, &p) != 0)
      return 1;
    dh_consumer_config cc;
    dh_consumer_config_init (&cc);
    cc.name = "/dh-seed";
    dh_consumer *c;
    if (dh_consumer_attach (&cc, &c) != 0)
      return 1;
    for (int k = 0; k < 3; k++) {
      dh_slot s;
      if (dh_producer_acquire (p, 0, &s) != 0)
        break;
      memset (s.data, 'a' + k, 32);
      dh_record_info info = { .size = 32 };
      if (dh_producer_commit (p, &s, &info, NULL) != 0)
        return 1;
    }
    if (dh_producer_zone_write (p, 0, "seed zone", 10) != 0)
      return 1;
    if (variant == 1 && dh_producer_handover (p, "/dh-seed-next") != 0)
      return 1;
    char path[512];
    snprintf (path, sizeof path, "%s/block-%d.bin", dir, variant);
    save ("/dh-seed", path);
    dh_consumer_detach (c);
    dh_producer_destroy (p);
  }
  return 0;
}
