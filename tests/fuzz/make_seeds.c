/* Writes the seed corpora of the fuzz targets from real objects:
 *   DIR/corpus/block-N.bin       blocks (small configurations, with
 *                                records, a zone, a held record, a handover)
 *   DIR/corpus-peer/object-N.bin consumer objects as fuzz_peer takes them:
 *                                flags, the object at admission, the
 *                                object after reading (holds, cursor,
 *                                counters, a request)
 *   make_seeds DIR   (DIR is tests/fuzz to refresh the checked-in seeds) */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "datahub/datahub.h"

#define OBJECT_SIZE 4096
#define FAIL(what) do { \
    fprintf (stderr, "make_seeds: %s failed: %s\n", what, dh_error_detail ()); \
    return 1; \
  } while (0)

/* The first @cap bytes of shm object @shm into @buf; returns the count. */
static size_t
snapshot (const char *shm, unsigned char *buf, size_t cap)
{
  int fd = shm_open (shm, O_RDONLY, 0);
  if (fd < 0)
    return 0;
  ssize_t n = read (fd, buf, cap);
  close (fd);
  return n > 0 ? (size_t) n : 0;
}

static int
save (const char *path, const void *a, size_t alen, const void *b, size_t blen,
    const void *c, size_t clen)
{
  FILE *f = fopen (path, "wb");
  if (!f)
    return -1;
  int rc = (fwrite (a, 1, alen, f) == alen && fwrite (b, 1, blen, f) == blen
      && fwrite (c, 1, clen, f) == clen) ? 0 : -1;
  return fclose (f) == 0 ? rc : -1;
}

int
main (int argc, char **argv)
{
  const char *dir = argc > 1 ? argv[1] : ".";
  static unsigned char block[1 << 20], before[OBJECT_SIZE], after[OBJECT_SIZE];
  const char *origin = "/dh-seed";
  char object[64];
  snprintf (object, sizeof object, "%s@c0", origin);
  for (int variant = 0; variant < 3; variant++) {
    dh_producer_config pc;
    dh_producer_config_init (&pc);
    pc.name = origin;
    pc.slot_size = variant == 2 ? 4096 : 64;
    pc.slot_count = 2 + (uint32_t) variant;
    pc.max_consumers = 2;
    pc.policy = variant == 1 ? DH_POLICY_DOUBLE : DH_POLICY_RING;
    pc.integrity = variant == 2 ? DH_INTEGRITY_CHECKSUM : DH_INTEGRITY_NONE;
    pc.zone_count = 1;
    pc.zone_sizes[0] = 64;
    dh_producer *p;
    if (dh_producer_create (&pc, &p) != 0)
      FAIL ("dh_producer_create");
    dh_consumer_config cc;
    dh_consumer_config_init (&cc);
    cc.name = origin;
    cc.start = DH_START_OLDEST;
    dh_consumer *c;
    if (dh_consumer_attach (&cc, &c) != 0)
      FAIL ("dh_consumer_attach");
    size_t before_len = snapshot (object, before, sizeof before);
    for (int k = 0; k < 3; k++) {
      dh_slot s;
      if (dh_producer_acquire (p, 0, &s) != 0)
        break;
      memset (s.data, 'a' + k, 32);
      dh_record_info info = { .size = 32, .pts = k };
      if (dh_producer_commit (p, &s, &info, NULL) != 0)
        FAIL ("dh_producer_commit");
    }
    if (dh_producer_zone_write (p, 0, "seed zone", 10) != 0)
      FAIL ("dh_producer_zone_write");
    /* ring: one record read and released, one still held; latest-value
     * (double): the newest, unheld */
    dh_record r;
    if (dh_consumer_next (c, 1000, &r) != 0)
      FAIL ("dh_consumer_next");
    if (pc.policy == DH_POLICY_RING
        && (dh_consumer_release (c, &r) != 0 || dh_consumer_next (c, 1000, &r) != 0))
      FAIL ("dh_consumer_next");
    if (dh_consumer_request (c, 1, "force-key-unit", 15) != 0)
      FAIL ("dh_consumer_request");
    size_t after_len = snapshot (object, after, sizeof after);
    dh_producer *next = NULL;
    if (variant == 1) {
      if (dh_producer_create_successor (p, 128, &next) != 0)
        FAIL ("dh_producer_create_successor");
      char name[128];
      snprintf (name, sizeof name, "%s.h1", origin);
      if (dh_producer_handover (p, name) != 0)
        FAIL ("dh_producer_handover");
    }
    char path[512];
    snprintf (path, sizeof path, "%s/corpus/block-%d.bin", dir, variant);
    if (save (path, block, snapshot (origin, block, sizeof block), NULL, 0, NULL, 0) != 0)
      FAIL (path);
    /* flags: keep the token, name the fuzzing producer's session, mark it
     * alive; variant 2 also takes index 1 */
    unsigned char flags = (unsigned char) (1 | 2 | 8 | (variant == 2 ? 4 : 0));
    snprintf (path, sizeof path, "%s/corpus-peer/object-%d.bin", dir, variant);
    if (save (path, &flags, 1, before, before_len, after, after_len) != 0)
      FAIL (path);
    dh_consumer_release (c, &r);
    dh_consumer_detach (c);
    if (next)
      dh_producer_destroy (next);
    dh_producer_destroy (p);
  }
  return 0;
}
