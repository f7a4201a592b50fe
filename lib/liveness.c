/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Liveness through OFD locks: each participant holds a write lock on byte
 * 0 of its own object for its lifetime; the kernel drops it when the
 * process dies, however it dies, so there is no PID-reuse race. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "dh_internal.h"

static int
ofd_lock_op (int fd, int cmd, short type, off_t byte, struct flock *fl)
{
  memset (fl, 0, sizeof *fl);
  fl->l_type = type;
  fl->l_whence = SEEK_SET;
  fl->l_start = byte;
  fl->l_len = 1;
  return fcntl (fd, cmd, fl);
}

static int
lock_byte (int fd, off_t byte, short type)
{
  struct flock fl;
  if (ofd_lock_op (fd, F_OFD_SETLK, type, byte, &fl) == 0)
    return 0;
  return (errno == EACCES || errno == EAGAIN) ? -EAGAIN : -errno;
}

int
dh_lock_byte (int fd, off_t byte)
{
  return lock_byte (fd, byte, F_WRLCK);
}

/* Read locks need only read access: a producer reclaiming another user's
 * dead consumer object, which it may only read, uses one. */
int
dh_read_lock_byte (int fd, off_t byte)
{
  return lock_byte (fd, byte, F_RDLCK);
}

void
dh_unlock_byte (int fd, off_t byte)
{
  struct flock fl;
  (void) ofd_lock_op (fd, F_OFD_SETLK, F_UNLCK, byte, &fl);
}

/* True when an open file description other than ours holds a write lock
 * on @byte. */
bool
dh_byte_locked (int fd, off_t byte)
{
  struct flock fl;
  /* a read-lock query conflicts with the participants' write locks and
   * works on read-only descriptors too */
  if (ofd_lock_op (fd, F_OFD_GETLK, F_RDLCK, byte, &fl) != 0)
    return true; /* cannot tell: assume alive, never reclaim wrongly */
  return fl.l_type != F_UNLCK;
}

bool
dh_producer_alive (const dh_block *b)
{
  return dh_byte_locked (b->fd, DH_LOCK_PRODUCER);
}

/* Process start time in clock ticks since boot (field 22 of
 * /proc/PID/stat), shown next to the PID; 0 if unknown. */
uint64_t
dh_proc_start_ticks (pid_t pid)
{
  char path[64], buf[1024];
  snprintf (path, sizeof path, "/proc/%d/stat", (int) pid);
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return 0;
  ssize_t n = read (fd, buf, sizeof buf - 1);
  close (fd);
  if (n <= 0)
    return 0;
  buf[n] = '\0';
  char *p = strrchr (buf, ')'); /* the command name may contain spaces */
  if (!p)
    return 0;
  unsigned long long ticks = 0;
  /* after ")": state is field 3, starttime field 22 */
  if (sscanf (p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d"
              " %*d %*d %*d %*d %llu", &ticks) != 1)
    return 0;
  return ticks;
}
