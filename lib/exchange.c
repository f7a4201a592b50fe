/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The exchange object (docs/protocol.md §1, §9): the one object every
 * participant may write, holding the application spinlock pool.  The
 * producer makes it; nothing the library relies on lives in it, and its
 * mappings are guarded against truncation. */

#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dh_internal.h"

/* A write bit wherever the block's mode has a read bit: whoever may attach
 * may take the spinlocks. */
static mode_t
exchange_mode (mode_t perms)
{
  return (perms & 0666) | ((perms & 0444) >> 1);
}

static int
create_or_replace (const char *name, mode_t perms)
{
  for (int attempt = 0; attempt < 4; attempt++) {
    int fd = shm_open (name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
      if (fchmod (fd, exchange_mode (perms)) != 0
          || ftruncate (fd, DH_EXCHANGE_OBJECT_SIZE) != 0) {
        int err = errno;
        dh_unlink_if_same (fd, name);
        close (fd);
        return -err;
      }
      return fd;
    }
    if (errno != EEXIST)
      return -errno;
    /* a previous producer's (we hold the block's name, so it is stale) */
    if (shm_unlink (name) != 0 && errno != ENOENT)
      return -errno;
  }
  return -EEXIST;
}

int
dh_exchange_open (const char *origin, bool create, mode_t perms, dh_shm_exchange **out,
    int *fd_out)
{
  char name[DH_NAME_MAX + 1];
  if (dh_exchange_object_name (origin, name, sizeof name) != 0)
    return dh_fail (-ENAMETOOLONG, "%s: exchange object name too long", origin);
  int fd = create ? create_or_replace (name, perms)
      : shm_open (name, O_RDWR | O_CLOEXEC | O_NONBLOCK, 0);
  if (fd < 0) {
    int err = create ? -fd : errno;
    return dh_fail (-err, "cannot open the exchange object %s: %s", name, strerror (err));
  }
  struct stat st;
  if (fstat (fd, &st) != 0 || !S_ISREG (st.st_mode)
      || (uint64_t) st.st_size < DH_EXCHANGE_OBJECT_SIZE) {
    close (fd);
    return dh_fail (DH_ECORRUPT, "%s is not an exchange object", name);
  }
  dh_shm_exchange *x = mmap (NULL, DH_EXCHANGE_OBJECT_SIZE, PROT_READ | PROT_WRITE,
      MAP_SHARED, fd, 0);
  if (x == MAP_FAILED) {
    int err = errno;
    close (fd);
    return dh_fail (-err, "cannot map %s: %s", name, strerror (err));
  }
  /* Anyone who may write it may truncate it: never let that kill us. */
  dh_guard_add (x, DH_EXCHANGE_OBJECT_SIZE, NULL);
  if (create) {
    x->layout_major = DH_LAYOUT_MAJOR;
    x->layout_minor = DH_LAYOUT_MINOR;
    x->object_size = DH_EXCHANGE_OBJECT_SIZE;
    atomic_store_explicit (&x->magic, DH_EXCHANGE_MAGIC, memory_order_release);
  }
  *out = x;
  *fd_out = fd;
  return 0;
}

void
dh_exchange_unlink (int fd, const char *origin)
{
  char name[DH_NAME_MAX + 1];
  if (fd >= 0 && dh_exchange_object_name (origin, name, sizeof name) == 0)
    dh_unlink_if_same (fd, name);
}

void
dh_exchange_close (dh_shm_exchange *x, int fd, const char *origin, bool remove)
{
  if (!x)
    return;
  if (remove)
    dh_exchange_unlink (fd, origin);
  dh_guard_remove (x);
  munmap (x, DH_EXCHANGE_OBJECT_SIZE);
  close (fd);
}
