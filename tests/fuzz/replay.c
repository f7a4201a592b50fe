/* Runs a libFuzzer target without libFuzzer, for the test suite: every
 * file of a corpus as it is, then MUTATIONS variants of each (bytes and
 * words overwritten with edge values, runs cut short), from a fixed seed so
 * a failure reproduces.  Under the ASan+UBSan build this is a small,
 * deterministic fuzz run; scripts/fuzz does the long one.
 *   replay CORPUS_DIR [MUTATIONS] */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);
/* The target's own count of inputs that got past every check to the deep
 * end (records read, a consumer admitted): zero means the harness or the
 * seeds went stale and the run proved nothing. */
unsigned fuzz_deep_inputs (void);

static uint64_t rng = 0x9e3779b97f4a7c15u;

static uint64_t
next_random (void)
{
  /* xorshift64*: fixed sequence, no libc state */
  rng ^= rng >> 12;
  rng ^= rng << 25;
  rng ^= rng >> 27;
  return rng * 0x2545f4914f6cdd1du;
}

static const uint64_t edges[] = {
  0, 1, 2, 0x7f, 0x80, 0xff, 0xffff, 0x7fffffff, 0x80000000u, 0xffffffffu,
  UINT64_C (0x7fffffffffffffff), UINT64_MAX, 4096, 4095, 65536,
};

static void
mutate (uint8_t *buf, size_t *size, size_t cap)
{
  if (*size == 0)
    return;
  unsigned changes = 1 + (unsigned) (next_random () % 8);
  for (unsigned k = 0; k < changes; k++) {
    size_t at = (size_t) (next_random () % *size);
    switch (next_random () % 4) {
      case 0: /* one random byte */
        buf[at] = (uint8_t) next_random ();
        break;
      case 1: { /* an edge value over an aligned word */
        at &= ~(size_t) 7;
        uint64_t v = edges[next_random () % (sizeof edges / sizeof edges[0])];
        size_t n = *size - at < 8 ? *size - at : 8;
        memcpy (buf + at, &v, n);
        break;
      }
      case 2: /* a bit flipped */
        buf[at] ^= (uint8_t) (1u << (next_random () % 8));
        break;
      default: /* cut short (the object shrinks) */
        if (next_random () % 4 == 0)
          *size = at;
        break;
    }
  }
  (void) cap;
}

static uint8_t *
read_file (const char *path, size_t *size)
{
  FILE *f = fopen (path, "rb");
  if (!f)
    return NULL;
  fseek (f, 0, SEEK_END);
  long n = ftell (f);
  fseek (f, 0, SEEK_SET);
  uint8_t *buf = malloc (n > 0 ? (size_t) n : 1);
  if (buf && n > 0 && fread (buf, 1, (size_t) n, f) != (size_t) n) {
    free (buf);
    buf = NULL;
  }
  fclose (f);
  *size = n > 0 ? (size_t) n : 0;
  return buf;
}

int
main (int argc, char **argv)
{
  if (argc < 2) {
    fprintf (stderr, "usage: %s CORPUS_DIR [MUTATIONS]\n", argv[0]);
    return 2;
  }
  unsigned mutations = argc > 2 ? (unsigned) atoi (argv[2]) : 100;
  DIR *d = opendir (argv[1]);
  if (!d) {
    perror (argv[1]);
    return 2;
  }
  unsigned files = 0, runs = 0;
  struct dirent *e;
  while ((e = readdir (d))) {
    if (e->d_name[0] == '.')
      continue;
    char path[4096];
    snprintf (path, sizeof path, "%s/%s", argv[1], e->d_name);
    size_t size;
    uint8_t *seed = read_file (path, &size);
    if (!seed) {
      fprintf (stderr, "cannot read %s\n", path);
      return 1;
    }
    files++;
    LLVMFuzzerTestOneInput (seed, size);
    runs++;
    uint8_t *buf = malloc (size ? size : 1);
    for (unsigned m = 0; m < mutations; m++) {
      size_t n = size;
      memcpy (buf, seed, size);
      mutate (buf, &n, size);
      LLVMFuzzerTestOneInput (buf, n);
      runs++;
    }
    free (buf);
    free (seed);
  }
  closedir (d);
  if (files == 0) {
    fprintf (stderr, "%s: empty corpus\n", argv[1]);
    return 1;
  }
  unsigned deep = fuzz_deep_inputs ();
  printf ("%u inputs from %u seeds in %s: no crash; %u reached the deep end\n", runs, files,
      argv[1], deep);
  if (deep < files) {
    fprintf (stderr, "fewer inputs reached the deep end than there are seeds: "
        "refresh the corpus (make_seeds) or fix the harness\n");
    return 1;
  }
  return 0;
}
