/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Names of the objects of a channel (docs/protocol.md §1), and unlinking
 * only what is ours. */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dh_internal.h"

#define DH_CHANNEL_PREFIX "/datahub."

static bool
name_char_ok (char ch)
{
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')
      || ch == '.' || ch == '_' || ch == '-';
}

int
dh_shm_name (const char *name, char *buf, size_t buflen)
{
  if (!name || !*name || !buf)
    return dh_fail (-EINVAL, "empty channel name");
  if (name[0] == '/') {
    size_t n = strlen (name);
    if (n >= buflen || n > DH_BLOCK_NAME_MAX)
      return dh_fail (-ENAMETOOLONG, "shm name '%.64s…' is too long (at most %d characters)",
          name, DH_BLOCK_NAME_MAX);
    if (n == 1)
      return dh_fail (-EINVAL, "shm name '/' names nothing");
    /* '@' is reserved for the consumer and exchange objects of a block,
     * so no block name can collide with them. */
    for (size_t i = 1; i < n; i++)
      if (!name_char_ok (name[i]))
        return dh_fail (-EINVAL, "shm name '%s': character %zu ('%c') is not one of "
            "[A-Za-z0-9._-]", name, i, name[i]);
    memcpy (buf, name, n + 1);
    return 0;
  }
  size_t n = strlen (DH_CHANNEL_PREFIX) + strlen (name);
  if (n >= buflen || n > DH_BLOCK_NAME_MAX)
    return dh_fail (-ENAMETOOLONG, "channel name '%.64s…' is too long", name);
  /* Channel names become one path element: anything but [A-Za-z0-9._-]
   * becomes '_' so "cam 0/left" cannot escape /dev/shm. */
  char *out = buf + strlen (DH_CHANNEL_PREFIX);
  memcpy (buf, DH_CHANNEL_PREFIX, strlen (DH_CHANNEL_PREFIX));
  for (const char *s = name; *s; s++)
    *out++ = name_char_ok (*s) ? *s : '_';
  *out = '\0';
  return 0;
}

int
dh_consumer_object_name (const char *origin, uint32_t index, char *buf, size_t len)
{
  int n = snprintf (buf, len, "%s@c%u", origin, index);
  return n < 0 || (size_t) n >= len ? -ENAMETOOLONG : 0;
}

int
dh_exchange_object_name (const char *origin, char *buf, size_t len)
{
  int n = snprintf (buf, len, "%s@x", origin);
  return n < 0 || (size_t) n >= len ? -ENAMETOOLONG : 0;
}

bool
dh_name_is_fd (const char *name, int fd)
{
  struct stat mine, named;
  char path[DH_NAME_MAX + 16];
  snprintf (path, sizeof path, "/dev/shm%s", name);
  return fstat (fd, &mine) == 0 && stat (path, &named) == 0
      && mine.st_ino == named.st_ino && mine.st_dev == named.st_dev;
}

/* Unlinks @name only if it names @fd's object.  Checking, then unlinking,
 * would leave a window in which another process replaces the object (two
 * reclaimers of one dead object: the second would unlink the new one).
 * So the object is first moved to a private name, which nobody else can
 * take or replace, checked there, and unlinked or moved back. */
bool
dh_unlink_if_same (int fd, const char *name)
{
  if (!dh_name_is_fd (name, fd))
    return false;
  DH_TEST_POINT ("unlink.checked");
  char path[DH_NAME_MAX + 16], moved[64];
  uint64_t r;
  randombytes_buf (&r, sizeof r);
  snprintf (path, sizeof path, "/dev/shm%s", name);
  snprintf (moved, sizeof moved, "/dev/shm/.datahub-unlink-%016llx", (unsigned long long) r);
  if (renameat2 (AT_FDCWD, path, AT_FDCWD, moved, RENAME_NOREPLACE) != 0)
    return errno == EINVAL || errno == ENOSYS ? shm_unlink (name) == 0 : false;
  struct stat mine, there;
  if (fstat (fd, &mine) == 0 && stat (moved, &there) == 0 && mine.st_ino == there.st_ino
      && mine.st_dev == there.st_dev)
    return unlink (moved) == 0;
  /* replaced since the check: put it back.  That fails only if the name
   * was taken yet again meanwhile; the object we moved is then the older
   * one, and it is unlinked rather than left under a hidden name (whoever
   * has it mapped keeps the mapping). */
  if (renameat2 (AT_FDCWD, moved, AT_FDCWD, path, RENAME_NOREPLACE) != 0)
    unlink (moved);
  errno = EEXIST;
  return false;
}
