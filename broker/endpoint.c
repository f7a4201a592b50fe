/* Where the broker listens, and whether a place is safe to listen or
 * connect in (docs/broker.md "Endpoints").
 *
 * An ipc socket is a file: whoever can write its directory can bind the
 * name first, or replace the broker's socket, and then receive every
 * request.  So the default endpoint is in a directory only its owner can
 * use, checked before binding and before connecting, and an explicit one
 * must be in a directory nobody else can write. */
#include "datahub/broker.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>

static gchar *default_endpoint;
static gchar *fallback_dir;     /* ${TMPDIR:-/tmp}/datahub-<uid> */
static gchar *runtime_dir;      /* $XDG_RUNTIME_DIR, or NULL */

static void
read_environment (void)
{
  const char *env = getenv ("DATAHUB_BROKER");
  const char *runtime = getenv ("XDG_RUNTIME_DIR");
  const char *tmp = getenv ("TMPDIR");
  if (!tmp || tmp[0] != '/')
    tmp = "/tmp";
  fallback_dir = g_strdup_printf ("%s/datahub-%u", tmp, (unsigned) geteuid ());
  if (runtime && runtime[0] == '/')
    runtime_dir = g_strdup (runtime);
  if (env && *env)
    default_endpoint = g_strdup (env);
  else if (runtime_dir)
    default_endpoint = g_strdup_printf ("ipc://%s/datahub-broker.sock", runtime_dir);
  else
    default_endpoint = g_strdup_printf ("ipc://%s/broker.sock", fallback_dir);
}

static void
environment_once (void)
{
  static pthread_once_t once = PTHREAD_ONCE_INIT; /* the environment is read once */
  pthread_once (&once, read_environment);
}

const char *
dhb_default_endpoint (void)
{
  environment_once ();
  return default_endpoint;
}

static int
refuse (int err, char *why, size_t len, const char *fmt, ...) G_GNUC_PRINTF (4, 5);

static int
refuse (int err, char *why, size_t len, const char *fmt, ...)
{
  if (why && len) {
    va_list ap;
    va_start (ap, fmt);
    g_vsnprintf (why, len, fmt, ap);
    va_end (ap);
  }
  return -err;
}

/* A private directory: a real directory (not a link), owned by us, with
 * no access for group or others.  The fallback one is created if
 * missing; a name someone else took first is refused, never reused. */
static int
check_private_dir (const char *dir, gboolean create, char *why, size_t len)
{
  if (create && mkdir (dir, 0700) != 0 && errno != EEXIST)
    return refuse (errno, why, len, "cannot create %s: %s", dir, g_strerror (errno));
  struct stat st;
  if (lstat (dir, &st) != 0)
    return refuse (errno, why, len, "%s: %s", dir, g_strerror (errno));
  if (!S_ISDIR (st.st_mode))
    return refuse (ENOTDIR, why, len, "%s is not a directory (a link or a file is refused)",
        dir);
  if (st.st_uid != geteuid ())
    return refuse (EPERM, why, len, "%s belongs to uid %u, not to you (uid %u): whoever owns "
        "it could listen in your broker's place; remove it, or set XDG_RUNTIME_DIR or "
        "DATAHUB_BROKER", dir, (unsigned) st.st_uid, (unsigned) geteuid ());
  if (st.st_mode & 077)
    return refuse (EPERM, why, len, "%s has mode %04o: group and others must have no access "
        "(chmod 700 %s)", dir, (unsigned) (st.st_mode & 07777), dir);
  return 0;
}

/* An explicitly named directory: nobody but its owner may write it (a
 * shared broker's directory may be readable by a group, docs/broker.md). */
static int
check_named_dir (const char *dir, char *why, size_t len)
{
  struct stat st;
  if (stat (dir, &st) != 0)
    return refuse (errno, why, len, "%s: %s", dir, g_strerror (errno));
  if (!S_ISDIR (st.st_mode))
    return refuse (ENOTDIR, why, len, "%s is not a directory", dir);
  if (st.st_mode & 022)
    return refuse (EPERM, why, len, "%s has mode %04o: others can write it, so they could "
        "take or replace the broker's socket there; use a directory only its owner can "
        "write", dir, (unsigned) (st.st_mode & 07777));
  return 0;
}

int
dhb_endpoint_check (const char *endpoint, char *why, size_t len)
{
  if (why && len)
    why[0] = '\0';
  if (!endpoint || !g_str_has_prefix (endpoint, "ipc://"))
    return 0; /* tcp: plain and open to every local user, docs/security.md */
  const char *path = endpoint + strlen ("ipc://");
  if (path[0] == '@')
    return refuse (EPERM, why, len, "%s is an abstract socket: any local user can take or "
        "reach it; use a path", endpoint);
  if (!path[0])
    return refuse (EINVAL, why, len, "%s names no socket", endpoint);
  environment_once ();
  gchar *dir = g_path_get_dirname (path);
  int rc;
  if (strcmp (dir, fallback_dir) == 0)
    rc = check_private_dir (dir, TRUE, why, len);
  else if (runtime_dir && strcmp (dir, runtime_dir) == 0)
    rc = check_private_dir (dir, FALSE, why, len);
  else
    rc = check_named_dir (dir, why, len);
  g_free (dir);
  return rc;
}
