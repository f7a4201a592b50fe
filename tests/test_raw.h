/* Raw read-write access to a block's bytes, as a corrupter or a buggy
 * process would have it: for tests that damage blocks on purpose. */
#ifndef DH_TEST_RAW_H
#define DH_TEST_RAW_H

#include <fcntl.h>
#include <sys/stat.h>

#include "dh_block_layout.h"
#include "dh_test.h"

typedef struct {
  int fd;
  uint8_t *base;
  size_t size;
} test_raw;

static inline test_raw
test_raw_open (const char *shm_name)
{
  test_raw r;
  r.fd = shm_open (shm_name, O_RDWR, 0);
  CHECK (r.fd >= 0);
  struct stat st;
  CHECK (fstat (r.fd, &st) == 0);
  r.size = (size_t) st.st_size;
  r.base = mmap (NULL, r.size, PROT_READ | PROT_WRITE, MAP_SHARED, r.fd, 0);
  CHECK (r.base != MAP_FAILED);
  return r;
}

static inline void
test_raw_close (test_raw *r)
{
  munmap (r->base, r->size);
  close (r->fd);
}

static inline dh_shm_header *
test_raw_header (const test_raw *r)
{
  return (dh_shm_header *) (void *) r->base;
}

static inline int
test_hex_equal (const uint8_t *bytes, const char *hex)
{
  char buf[2 * DH_HASH_SIZE + 1];
  for (int i = 0; i < DH_HASH_SIZE; i++)
    snprintf (buf + 2 * i, 3, "%02x", bytes[i]);
  return strcmp (buf, hex) == 0;
}

#endif
