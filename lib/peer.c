/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Consumer objects (docs/protocol.md §4, §5.1, §5.7): created and written
 * by one consumer, read by the producer as untrusted input. */

#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dh_internal.h"

/* ---- consumer side -------------------------------------------------------- */

/* Fills a locked object with a new incarnation; the magic goes last so the
 * producer never admits a half-written one. */
static void
init_object (dh_shm_consumer *o, uint32_t index, const dh_consumer_config *cfg,
    uint64_t token)
{
  /* Pairs with the producer's acquire load of magic: it sees the object as
   * not ready while we rewrite it. */
  atomic_store_explicit (&o->magic, 0, memory_order_release);
  o->layout_major = DH_LAYOUT_MAJOR;
  o->layout_minor = DH_LAYOUT_MINOR;
  o->object_size = DH_CONSUMER_OBJECT_SIZE;
  o->index = index;
  o->pid = (uint32_t) getpid ();
  o->token = token;
  o->start_ticks = dh_proc_start_ticks (getpid ());
  o->created_realtime_ns = dh_realtime_ns ();
  o->leaky = (uint32_t) cfg->leaky;
  o->max_held = cfg->max_held ? cfg->max_held : DH_DEFAULT_MAX_HELD;
  o->start = (uint32_t) cfg->start;
  atomic_store_explicit (&o->session, 0, memory_order_relaxed);
  atomic_store_explicit (&o->cursor, 0, memory_order_relaxed);
  atomic_store_explicit (&o->detached, 0, memory_order_relaxed);
  atomic_store_explicit (&o->chain_index, 0, memory_order_relaxed);
  atomic_store_explicit (&o->heartbeat_ns, dh_now_ns (), memory_order_relaxed);
  _Atomic uint64_t *counters[] = { &o->read, &o->bytes_read, &o->lost, &o->races,
    &o->checksum_failures, &o->waits, &o->not_ready };
  for (size_t k = 0; k < sizeof counters / sizeof counters[0]; k++)
    atomic_store_explicit (counters[k], 0, memory_order_relaxed);
  atomic_store_explicit (&o->waiting, 0, memory_order_relaxed);
  for (unsigned j = 0; j < DH_MAX_HOLDS; j++)
    atomic_store_explicit (&o->holds[j], 0, memory_order_relaxed);
  atomic_store_explicit (&o->req_seq, 0, memory_order_relaxed);
  atomic_store_explicit (&o->req_len, 0, memory_order_relaxed);
  atomic_store_explicit (&o->magic, DH_CONSUMER_MAGIC, memory_order_release);
}

/* Opens index @i for us: a new object, or a stale one of our own user
 * whose owner is dead.  Returns the locked descriptor, or -1. */
static int
take_index (const char *name, mode_t mode)
{
  int fd = shm_open (name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  bool fresh = fd >= 0;
  if (!fresh) {
    if (errno != EEXIST)
      return -1;
    /* another user's object fails here with EACCES: not ours to reuse */
    fd = shm_open (name, O_RDWR | O_CLOEXEC | O_NONBLOCK, 0);
    if (fd < 0)
      return -1;
  }
  struct stat st;
  /* The write lock is the claim: refused while a live consumer owns the
   * object, a reclaimer is removing it (it holds a read lock), or another
   * consumer took our fresh object between its creation and our lock. */
  if (fstat (fd, &st) != 0 || !S_ISREG (st.st_mode) || dh_lock_byte (fd, DH_LOCK_CONSUMER) != 0) {
    close (fd);
    return -1;
  }
  DH_TEST_POINT ("peer.locked");
  /* a reclaimer may have unlinked it just before we locked it */
  if (!dh_name_is_fd (name, fd))
    goto fail;
  if ((fresh && fchmod (fd, mode) != 0)
      || ((uint64_t) st.st_size < DH_CONSUMER_OBJECT_SIZE
          && ftruncate (fd, DH_CONSUMER_OBJECT_SIZE) != 0))
    goto fail;
  return fd;
fail:
  /* it is ours (we hold its lock): leave nothing half-made behind */
  dh_unlink_if_same (fd, name);
  close (fd);
  return -1;
}

int
dh_peer_create (const char *origin, uint32_t from, mode_t mode,
    const dh_consumer_config *cfg, uint64_t token, int *fd_out,
    dh_shm_consumer **obj_out, uint32_t *index_out)
{
  int last_errno = 0;
  for (uint32_t i = from; i < DH_MAX_CONSUMERS; i++) {
    char name[DH_NAME_MAX + 1];
    if (dh_consumer_object_name (origin, i, name, sizeof name) != 0)
      return dh_fail (-ENAMETOOLONG, "%s: consumer object name too long", origin);
    int fd = take_index (name, mode);
    if (fd < 0) {
      if (errno == EACCES && last_errno == 0)
        last_errno = EACCES;
      else if (errno != EEXIST && errno != EACCES && errno != EAGAIN && errno != 0)
        last_errno = errno;
      continue;
    }
    dh_shm_consumer *o = mmap (NULL, DH_CONSUMER_OBJECT_SIZE, PROT_READ | PROT_WRITE,
        MAP_SHARED, fd, 0);
    if (o == MAP_FAILED) {
      int err = errno;
      dh_unlink_if_same (fd, name);
      close (fd);
      return dh_fail (-err, "cannot map %s: %s", name, strerror (err));
    }
    init_object (o, i, cfg, token);
    *fd_out = fd;
    *obj_out = o;
    *index_out = i;
    return 0;
  }
  if (last_errno && last_errno != EACCES)
    return dh_fail (-last_errno, "cannot create a consumer object for %s: %s", origin,
        strerror (last_errno));
  return dh_fail (DH_EFULL, "%s: all %u consumer objects are in use", origin,
      DH_MAX_CONSUMERS);
}

void
dh_peer_remove (const char *origin, uint32_t index, int fd, dh_shm_consumer *obj)
{
  char name[DH_NAME_MAX + 1];
  for (unsigned j = 0; j < DH_MAX_HOLDS; j++)
    atomic_store_explicit (&obj->holds[j], 0, memory_order_release);
  /* Pairs with the producer's acquire load in its service pass: it forgets
   * us without waiting for the liveness check. */
  atomic_store_explicit (&obj->detached, DH_DETACH_LEAVING, memory_order_release);
  DH_TEST_POINT ("peer.detached");
  if (dh_consumer_object_name (origin, index, name, sizeof name) == 0)
    dh_unlink_if_same (fd, name);
  munmap (obj, DH_CONSUMER_OBJECT_SIZE);
  dh_unlock_byte (fd, DH_LOCK_CONSUMER);
  close (fd);
}

/* ---- producer / admin side ---------------------------------------------- */

int
dh_peer_open (const char *origin, uint32_t i, int *fd_out, const dh_shm_consumer **obj_out,
    _Atomic int *faulted)
{
  char name[DH_NAME_MAX + 1];
  if (dh_consumer_object_name (origin, i, name, sizeof name) != 0)
    return -ENAMETOOLONG;
  int fd = shm_open (name, O_RDONLY | O_CLOEXEC | O_NONBLOCK, 0);
  if (fd < 0)
    return -errno;
  struct stat st;
  int rc = DH_ECORRUPT;
  if (fstat (fd, &st) != 0 || !S_ISREG (st.st_mode))
    goto fail;
  if ((uint64_t) st.st_size < DH_CONSUMER_OBJECT_SIZE) {
    rc = -EAGAIN; /* being created */
    goto fail;
  }
  DH_TEST_POINT ("peer.sized");
  const dh_shm_consumer *o = mmap (NULL, DH_CONSUMER_OBJECT_SIZE, PROT_READ, MAP_SHARED,
      fd, 0);
  if (o == MAP_FAILED) {
    rc = -errno;
    goto fail;
  }
  /* the owner may have truncated it since fstat: guarded before the
   * first load, or a truncation would kill us */
  if (faulted)
    atomic_store_explicit (faulted, 0, memory_order_relaxed);
  if (dh_guard_add (o, DH_CONSUMER_OBJECT_SIZE, faulted) != 0) {
    munmap ((void *) o, DH_CONSUMER_OBJECT_SIZE);
    rc = -EAGAIN;
    goto fail;
  }
  /* Pairs with the release store of magic in init_object. */
  uint64_t magic = atomic_load_explicit (&o->magic, memory_order_acquire);
  if (magic != DH_CONSUMER_MAGIC) {
    rc = magic == 0 ? -EAGAIN : DH_ECORRUPT;
  } else if (o->layout_major != DH_LAYOUT_MAJOR || o->index != i
      || o->object_size != DH_CONSUMER_OBJECT_SIZE) {
    rc = DH_ECORRUPT;
  } else {
    *fd_out = fd;
    *obj_out = o;
    return 0;
  }
  dh_guard_remove (o);
  munmap ((void *) o, DH_CONSUMER_OBJECT_SIZE);
fail:
  close (fd);
  return rc;
}

void
dh_peer_close (int fd, const dh_shm_consumer *obj)
{
  if (obj) {
    dh_guard_remove (obj);
    munmap ((void *) obj, DH_CONSUMER_OBJECT_SIZE);
  }
  if (fd >= 0)
    close (fd);
}

bool
dh_peer_reclaim_remnant (const char *origin, uint32_t i)
{
  char name[DH_NAME_MAX + 1];
  if (dh_consumer_object_name (origin, i, name, sizeof name) != 0)
    return false;
  int fd = shm_open (name, O_RDONLY | O_CLOEXEC | O_NONBLOCK, 0);
  if (fd < 0)
    return false;
  struct stat st;
  /* not one being made right now (created, not locked yet): a remnant is
   * older than a creation takes */
  uint64_t changed = fstat (fd, &st) == 0
      ? (uint64_t) st.st_mtim.tv_sec * 1000000000u + (uint64_t) st.st_mtim.tv_nsec : 0;
  bool removed = changed != 0 && S_ISREG (st.st_mode)
      && dh_realtime_ns () > changed + DH_REMNANT_AGE_NS && !dh_peer_alive (fd)
      && dh_peer_reclaim (origin, i, fd);
  close (fd);
  return removed;
}

bool
dh_peer_alive (int fd)
{
  return dh_byte_locked (fd, DH_LOCK_CONSUMER);
}

bool
dh_peer_reclaim (const char *origin, uint32_t i, int fd)
{
  char name[DH_NAME_MAX + 1];
  if (dh_consumer_object_name (origin, i, name, sizeof name) != 0)
    return false;
  /* A read lock needs only read access and excludes a consumer taking the
   * object over (it needs the write lock) for the whole reclaim; a
   * reclaimer that dies mid-way drops it with its process. */
  if (dh_read_lock_byte (fd, DH_LOCK_CONSUMER) != 0)
    return false;
  DH_TEST_POINT ("peer.reclaim_locked");
  bool removed = dh_unlink_if_same (fd, name);
  dh_unlock_byte (fd, DH_LOCK_CONSUMER);
  return removed;
}
