/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The fd socket of file-descriptor records (datahub-fd-channel.h). */
#include "datahub-fd-channel.h"

#include "datahub/datahub.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <poll.h>
#include <stddef.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <sodium.h>

#define MSG_MAGIC 0x44464844u /* "DHFD" */
#define MAX_CLIENTS 64
#define CLIENT_TIMEOUT_MS 2000
/* a connection that has not said hello within this is closed */
#define HELLO_DEADLINE_US (G_USEC_PER_SEC)
/* answers queued to one consumer at most (each may carry an fd charged to
 * the producer's user until it is read) */
#define CLIENT_SNDBUF 4096
/* fds a consumer keeps (a pool's buffers come back: the same fds) */
#define CLIENT_CACHE 64
/* fds the producer keeps after their last record (the same fd then keeps
 * its id, and consumers find it in their caches) */
#define SERVER_KEPT 64

enum { MSG_HELLO = 1, MSG_WELCOME = 2, MSG_GET = 3, MSG_FD = 4 };

/* Every message, both ways: one SOCK_SEQPACKET datagram. */
typedef struct {
  guint32 magic, type;
  guint32 status;           /* replies: 0 or an errno value */
  guint32 reserved;
  guint64 id, dev, ino;     /* GET: id; FD: id, and what the fd is */
  guint8 token[DATAHUB_FD_TOKEN_SIZE]; /* HELLO: from the block's fd zone */
  guint8 proof[DATAHUB_FD_TOKEN_SIZE]; /* HELLO: keyed hash of the token */
} Msg;

G_STATIC_ASSERT (sizeof (Msg) == 104);

void
datahub_fd_proof (const guint8 *secret, const guint8 token[DATAHUB_FD_TOKEN_SIZE],
    guint8 out[DATAHUB_FD_TOKEN_SIZE])
{
  static const char label[] = "datahub fd socket";
  crypto_generichash_state st;
  crypto_generichash_init (&st, secret, secret ? DH_SECRET_SIZE : 0, DATAHUB_FD_TOKEN_SIZE);
  crypto_generichash_update (&st, (const guint8 *) label, sizeof label);
  crypto_generichash_update (&st, token, DATAHUB_FD_TOKEN_SIZE);
  crypto_generichash_final (&st, out, DATAHUB_FD_TOKEN_SIZE);
}

/* The socket's name in the abstract namespace: it vanishes with its
 * process, so a killed producer leaves nothing behind. */
static gchar *
socket_path (guint64 id)
{
  return g_strdup_printf ("datahub-fd.%016" G_GINT64_MODIFIER "x", id);
}

/* The address of abstract name @path and its length. */
static socklen_t
fill_addr (struct sockaddr_un *sa, const gchar *path)
{
  memset (sa, 0, sizeof *sa);
  sa->sun_family = AF_UNIX;
  gsize len = strlen (path);
  g_assert (len + 1 < sizeof sa->sun_path);
  memcpy (sa->sun_path + 1, path, len); /* sun_path[0] = 0: abstract */
  return (socklen_t) (offsetof (struct sockaddr_un, sun_path) + 1 + len);
}

/* ---- producer side ------------------------------------------------------- */

typedef struct {
  guint64 id, dev, ino;
  int fd;
  guint refs;
} Served;

typedef struct {
  int fd;
  gboolean welcomed;
  gint64 accepted_us;       /* monotonic */
  pid_t pid;                /* the peer (SO_PEERCRED) */
} Client;

/* connections one process may have (a src has one) */
#define CONNECTIONS_PER_PROCESS 4

struct _DatahubFdServer {
  guint64 id;
  gchar *path;
  int listen_fd, wake_fd;
  GThread *thread;
  guint8 token[DATAHUB_FD_TOKEN_SIZE];
  guint8 proof[DATAHUB_FD_TOKEN_SIZE]; /* what a hello must carry */
  GMutex lock;              /* the tables: streaming thread and server thread */
  GHashTable *by_file;      /* Served (dev, ino) -> Served */
  GHashTable *by_id;        /* &id -> Served (owns) */
  GQueue idle;              /* Served with no record, oldest first */
  gint sent;                /* atomic */
};

static guint
file_hash (gconstpointer p)
{
  const Served *s = p;
  return (guint) (s->ino ^ (s->ino >> 32) ^ s->dev);
}

static gboolean
file_equal (gconstpointer a, gconstpointer b)
{
  const Served *x = a, *y = b;
  return x->dev == y->dev && x->ino == y->ino;
}

static void
served_free (gpointer p)
{
  Served *s = p;
  close (s->fd);
  g_free (s);
}

static gboolean
send_msg (int fd, const Msg *m, int pass_fd)
{
  struct iovec iov = { .iov_base = (void *) m, .iov_len = sizeof *m };
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE (sizeof (int))];
  } ctl;
  struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
  if (pass_fd >= 0) {
    memset (&ctl, 0, sizeof ctl);
    mh.msg_control = ctl.buf;
    mh.msg_controllen = sizeof ctl.buf;
    struct cmsghdr *cm = CMSG_FIRSTHDR (&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN (sizeof (int));
    memcpy (CMSG_DATA (cm), &pass_fd, sizeof (int));
  }
  /* never blocks the server: a client that does not read is dropped */
  return sendmsg (fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t) sizeof *m;
}

/* One request from @c; FALSE: drop the client. */
static gboolean
serve (DatahubFdServer *s, Client *c)
{
  Msg m;
  /* no control buffer: fds a client tries to pass are discarded (closed)
   * by the kernel, never received */
  ssize_t n = recv (c->fd, &m, sizeof m, MSG_DONTWAIT);
  if (n != (ssize_t) sizeof m || m.magic != MSG_MAGIC)
    return FALSE;
  Msg reply = { .magic = MSG_MAGIC };
  if (m.type == MSG_HELLO && !c->welcomed) {
    /* the token is in the block (only who may read the block has it),
     * the proof says the secret too */
    gboolean ok = sodium_memcmp (m.token, s->token, sizeof s->token) == 0
        && sodium_memcmp (m.proof, s->proof, sizeof s->proof) == 0;
    reply.type = MSG_WELCOME;
    reply.status = ok ? 0 : EACCES;
    c->welcomed = ok;
    return send_msg (c->fd, &reply, -1) && ok;
  }
  if (m.type != MSG_GET || !c->welcomed)
    return FALSE;
  /* an fd in flight is charged to the producer's user until read: a
   * client that asks again before reading its answer is dropped */
  int unread = 0;
  if (ioctl (c->fd, SIOCOUTQ, &unread) != 0 || unread > 0)
    return FALSE;
  reply.type = MSG_FD;
  reply.id = m.id;
  g_mutex_lock (&s->lock);
  /* only fds a live record names */
  Served *sv = g_hash_table_lookup (s->by_id, &m.id);
  int fd = sv && sv->refs > 0 ? dup (sv->fd) : -1;
  if (fd >= 0) {
    reply.dev = sv->dev;
    reply.ino = sv->ino;
  }
  g_mutex_unlock (&s->lock);
  reply.status = fd >= 0 ? 0 : ENOENT;
  gboolean ok = send_msg (c->fd, &reply, fd);
  if (fd >= 0) {
    close (fd);
    if (ok)
      g_atomic_int_add (&s->sent, 1);
  }
  return ok;
}

/* Makes room for a new connection: the oldest that has not said hello
 * goes; FALSE when every one has. */
static gboolean
room_for_one (Client *clients, guint *n)
{
  if (*n < MAX_CLIENTS)
    return TRUE;
  guint oldest = MAX_CLIENTS;
  for (guint i = 0; i < *n; i++)
    if (!clients[i].welcomed
        && (oldest == MAX_CLIENTS || clients[i].accepted_us < clients[oldest].accepted_us))
      oldest = i;
  if (oldest == MAX_CLIENTS)
    return FALSE;
  close (clients[oldest].fd);
  clients[oldest] = clients[--*n];
  return TRUE;
}

static gpointer
server_thread (gpointer data)
{
  DatahubFdServer *s = data;
  Client clients[MAX_CLIENTS];
  guint n_clients = 0;
  struct pollfd pfd[2 + MAX_CLIENTS];
  for (;;) {
    pfd[0] = (struct pollfd) { .fd = s->wake_fd, .events = POLLIN };
    pfd[1] = (struct pollfd) { .fd = s->listen_fd, .events = POLLIN };
    gboolean waiting_hello = FALSE;
    for (guint i = 0; i < n_clients; i++) {
      pfd[2 + i] = (struct pollfd) { .fd = clients[i].fd, .events = POLLIN };
      waiting_hello = waiting_hello || !clients[i].welcomed;
    }
    if (poll (pfd, 2 + n_clients, waiting_hello ? 100 : -1) < 0) {
      if (errno == EINTR)
        continue;
      break;
    }
    if (pfd[0].revents)
      break;
    gint64 now = g_get_monotonic_time ();
    for (guint i = n_clients; i-- > 0;) {
      gboolean late = !clients[i].welcomed && now - clients[i].accepted_us > HELLO_DEADLINE_US;
      if (!late && !pfd[2 + i].revents)
        continue;
      if (late || !(pfd[2 + i].revents & POLLIN) || !serve (s, &clients[i])) {
        close (clients[i].fd);
        clients[i] = clients[--n_clients];
      }
    }
    if (pfd[1].revents & POLLIN) {
      int fd = accept4 (s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
      if (fd < 0 && (errno == EMFILE || errno == ENFILE)) {
        g_usleep (G_USEC_PER_SEC / 10); /* out of fds: not a busy loop */
        continue;
      }
      struct ucred cred = { 0 };
      socklen_t len = sizeof cred;
      guint same = 0;
      if (fd >= 0 && getsockopt (fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
        for (guint i = 0; i < n_clients; i++)
          same += clients[i].pid == cred.pid;
      if (fd >= 0 && same < CONNECTIONS_PER_PROCESS && room_for_one (clients, &n_clients)) {
        int sndbuf = CLIENT_SNDBUF;
        (void) setsockopt (fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
        clients[n_clients++] = (Client) { .fd = fd, .accepted_us = now, .pid = cred.pid };
      } else if (fd >= 0) {
        close (fd);
      }
    }
  }
  for (guint i = 0; i < n_clients; i++)
    close (clients[i].fd);
  return NULL;
}

DatahubFdServer *
datahub_fd_server_new (const guint8 *secret, GError **error)
{
  DatahubFdServer *s = g_new0 (DatahubFdServer, 1);
  randombytes_buf (&s->id, sizeof s->id);
  randombytes_buf (s->token, sizeof s->token);
  datahub_fd_proof (secret, s->token, s->proof);
  s->path = socket_path (s->id);
  s->wake_fd = -1;
  g_mutex_init (&s->lock);
  s->by_file = g_hash_table_new (file_hash, file_equal);
  s->by_id = g_hash_table_new_full (g_int64_hash, g_int64_equal, NULL, served_free);
  struct sockaddr_un sa;
  socklen_t sa_len = fill_addr (&sa, s->path);
  s->listen_fd = socket (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (s->listen_fd < 0 || bind (s->listen_fd, (struct sockaddr *) &sa, sa_len) != 0
      || listen (s->listen_fd, 16) != 0 || (s->wake_fd = eventfd (0, EFD_CLOEXEC)) < 0) {
    g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (errno),
        "cannot set up the fd socket @%s: %s", s->path, g_strerror (errno));
    goto fail;
  }
  s->thread = g_thread_new ("datahub-fd", server_thread, s);
  return s;
fail:
  datahub_fd_server_free (s);
  return NULL;
}

void
datahub_fd_server_zone (DatahubFdServer *s, DatahubFdZone *zone)
{
  zone->server = s->id;
  memcpy (zone->token, s->token, sizeof zone->token);
}

/* What consumers get for @fd: a read-only open of the same file (a memfd
 * or other file: a consumer can neither write nor resize the producer's
 * frames), or the DMA-BUF as it is (it cannot be reopened; its exporter
 * decides what a mapping may do).  -1 for anything else. */
static int
read_only_fd (int fd, const struct stat *st)
{
  gchar path[64], target[64] = { 0 };
  g_snprintf (path, sizeof path, "/proc/self/fd/%d", fd);
  ssize_t n = readlink (path, target, sizeof target - 1);
  if (n > 0 && (g_str_has_prefix (target, "/dmabuf:") || g_str_has_prefix (target,
              "anon_inode:dmabuf")))
    return fcntl (fd, F_DUPFD_CLOEXEC, 0);
  if (!S_ISREG (st->st_mode))
    return -1; /* a FIFO, a device, a socket: not memory to map */
  /* A reopen through /proc checks the inode's mode, not how the fd was
   * opened: a memfd is 0777, so a consumer could reopen ours read-write
   * (and shrink it under everyone's mappings).  Its mode goes to 0400
   * first: only its owner may open it again, for reading (our mappings
   * and fds keep what they had).  Files on disk keep their modes. */
  if (n > 0 && g_str_has_prefix (target, "/memfd:") && fchmod (fd, 0400) != 0)
    return -1;
  return open (path, O_RDONLY | O_CLOEXEC);
}

gboolean
datahub_fd_server_add (DatahubFdServer *s, int fd, DatahubFdEntry *entry)
{
  struct stat st;
  if (fstat (fd, &st) != 0)
    return FALSE;
  Served key = { .dev = (guint64) st.st_dev, .ino = (guint64) st.st_ino };
  g_mutex_lock (&s->lock);
  Served *sv = g_hash_table_lookup (s->by_file, &key);
  if (sv && sv->refs == 0)
    g_queue_remove (&s->idle, sv);
  if (!sv) {
    int copy = read_only_fd (fd, &st);
    if (copy < 0) {
      g_mutex_unlock (&s->lock);
      return FALSE;
    }
    sv = g_new0 (Served, 1);
    *sv = key;
    sv->fd = copy;
    /* random: an id says nothing about the producer's other fds */
    do
      randombytes_buf (&sv->id, sizeof sv->id);
    while (sv->id == 0 || g_hash_table_contains (s->by_id, &sv->id));
    g_hash_table_add (s->by_file, sv);
    g_hash_table_insert (s->by_id, &sv->id, sv);
  }
  sv->refs++;
  entry->id = sv->id;
  entry->dev = sv->dev;
  entry->ino = sv->ino;
  g_mutex_unlock (&s->lock);
  return TRUE;
}

void
datahub_fd_server_release (DatahubFdServer *s, guint64 id)
{
  g_mutex_lock (&s->lock);
  Served *sv = g_hash_table_lookup (s->by_id, &id);
  if (sv && --sv->refs == 0) {
    /* kept open a while: while we hold it, no other file can get its
     * device and inode, so its id stays its own */
    g_queue_push_tail (&s->idle, sv);
    while (g_queue_get_length (&s->idle) > SERVER_KEPT) {
      Served *old = g_queue_pop_head (&s->idle);
      g_hash_table_remove (s->by_file, old);
      g_hash_table_remove (s->by_id, &old->id); /* frees it */
    }
  }
  g_mutex_unlock (&s->lock);
}

guint64
datahub_fd_server_sent (DatahubFdServer *s)
{
  return (guint64) g_atomic_int_get (&s->sent);
}

void
datahub_fd_server_free (DatahubFdServer *s)
{
  if (!s)
    return;
  if (s->thread) {
    guint64 one = 1;
    if (write (s->wake_fd, &one, sizeof one) != sizeof one)
      g_warning ("datahub: cannot stop the fd socket thread");
    g_thread_join (s->thread);
  }
  if (s->listen_fd >= 0)
    close (s->listen_fd);
  if (s->wake_fd >= 0)
    close (s->wake_fd);
  g_queue_clear (&s->idle);
  g_hash_table_unref (s->by_file);
  g_hash_table_unref (s->by_id);
  g_mutex_clear (&s->lock);
  g_free (s->path);
  g_free (s);
}

/* ---- consumer side ------------------------------------------------------- */

typedef struct {
  guint64 id, dev, ino;
  int fd;
} Cached;

struct _DatahubFdClient {
  guint64 server;
  int sock;
  GHashTable *cache;        /* &id -> Cached (owns) */
  GQueue order;             /* ids, oldest first */
  gint received;            /* atomic: the ticker reads it */
};

static void
cached_free (gpointer p)
{
  Cached *c = p;
  close (c->fd);
  g_free (c);
}

DatahubFdClient *
datahub_fd_client_new (void)
{
  DatahubFdClient *c = g_new0 (DatahubFdClient, 1);
  c->sock = -1;
  c->cache = g_hash_table_new_full (g_int64_hash, g_int64_equal, NULL, cached_free);
  g_queue_init (&c->order);
  return c;
}

static void
client_reset (DatahubFdClient *c, guint64 server)
{
  if (c->sock >= 0)
    close (c->sock);
  c->sock = -1;
  g_hash_table_remove_all (c->cache);
  g_queue_clear_full (&c->order, g_free);
  c->server = server;
}

/* One reply (and the fd it carries, or -1), within the timeout. */
static gboolean
recv_msg (int sock, Msg *m, int *fd_out)
{
  *fd_out = -1;
  struct pollfd pfd = { .fd = sock, .events = POLLIN };
  if (poll (&pfd, 1, CLIENT_TIMEOUT_MS) != 1)
    return FALSE;
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE (sizeof (int))];
  } ctl;
  struct iovec iov = { .iov_base = m, .iov_len = sizeof *m };
  struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
    .msg_controllen = sizeof ctl.buf };
  ssize_t n = recvmsg (sock, &mh, MSG_CMSG_CLOEXEC);
  for (struct cmsghdr *cm = CMSG_FIRSTHDR (&mh); cm; cm = CMSG_NXTHDR (&mh, cm))
    if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS
        && cm->cmsg_len == CMSG_LEN (sizeof (int)) && *fd_out < 0)
      memcpy (fd_out, CMSG_DATA (cm), sizeof (int));
  if (n != (ssize_t) sizeof *m || m->magic != MSG_MAGIC || (mh.msg_flags & MSG_CTRUNC)) {
    if (*fd_out >= 0)
      close (*fd_out);
    *fd_out = -1;
    return FALSE;
  }
  return TRUE;
}

static gboolean
client_connect (DatahubFdClient *c, const DatahubFdZone *zone, const guint8 *secret,
    gchar **why)
{
  gchar *path = socket_path (c->server);
  struct sockaddr_un sa;
  /* non-blocking: a backlog filled by someone else fails this record at
   * once (the next one tries again) instead of stalling the stream */
  c->sock = socket (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  Msg m = { .magic = MSG_MAGIC, .type = MSG_HELLO };
  memcpy (m.token, zone->token, sizeof m.token);
  datahub_fd_proof (secret, zone->token, m.proof);
  int fd;
  socklen_t sa_len = fill_addr (&sa, path);
  gboolean ok = c->sock >= 0 && connect (c->sock, (struct sockaddr *) &sa, sa_len) == 0;
  if (!ok)
    *why = g_strdup_printf ("cannot connect to the producer's fd socket @%s: %s", path,
        g_strerror (errno));
  else if (!send_msg (c->sock, &m, -1) || !recv_msg (c->sock, &m, &fd)
      || m.type != MSG_WELCOME || m.status != 0) {
    if (fd >= 0)
      close (fd);
    *why = g_strdup_printf ("the producer's fd socket @%s refused this consumer (%s)", path,
        m.type == MSG_WELCOME && m.status ? g_strerror ((int) m.status) : "no answer");
    ok = FALSE;
  }
  g_free (path);
  if (!ok && c->sock >= 0) {
    close (c->sock);
    c->sock = -1;
  }
  return ok;
}

static gboolean
same_file (int fd, guint64 dev, guint64 ino)
{
  struct stat st;
  return fstat (fd, &st) == 0 && (guint64) st.st_dev == dev && (guint64) st.st_ino == ino;
}

int
datahub_fd_client_get (DatahubFdClient *c, const DatahubFdZone *zone, const guint8 *secret,
    const DatahubFdEntry *entry, gchar **why)
{
  if (zone->server != c->server)
    client_reset (c, zone->server);
  Cached *hit = g_hash_table_lookup (c->cache, &entry->id);
  if (hit && hit->dev == entry->dev && hit->ino == entry->ino)
    return fcntl (hit->fd, F_DUPFD_CLOEXEC, 0);
  if (c->sock < 0 && !client_connect (c, zone, secret, why))
    return -1;
  Msg m = { .magic = MSG_MAGIC, .type = MSG_GET, .id = entry->id };
  int fd;
  if (!send_msg (c->sock, &m, -1) || !recv_msg (c->sock, &m, &fd) || m.type != MSG_FD
      || m.id != entry->id) {
    *why = g_strdup ("the producer's fd socket did not answer");
    client_reset (c, zone->server);
    return -1;
  }
  if (fd < 0 || m.status != 0) {
    *why = g_strdup_printf ("the producer no longer has fd %" G_GUINT64_FORMAT, entry->id);
    return -1;
  }
  /* the file the record names, not another one */
  if (!same_file (fd, entry->dev, entry->ino)) {
    close (fd);
    *why = g_strdup_printf ("fd %" G_GUINT64_FORMAT " is not the file the record names",
        entry->id);
    return -1;
  }
  g_atomic_int_inc (&c->received);
  if (hit)
    g_hash_table_remove (c->cache, &entry->id);
  while (g_queue_get_length (&c->order) >= CLIENT_CACHE) {
    guint64 *old = g_queue_pop_head (&c->order);
    g_hash_table_remove (c->cache, old);
    g_free (old);
  }
  Cached *nc = g_new0 (Cached, 1);
  *nc = (Cached) { .id = entry->id, .dev = entry->dev, .ino = entry->ino, .fd = fd };
  g_hash_table_insert (c->cache, &nc->id, nc);
  g_queue_push_tail (&c->order, g_memdup2 (&entry->id, sizeof entry->id));
  return fcntl (fd, F_DUPFD_CLOEXEC, 0);
}

guint64
datahub_fd_client_received (DatahubFdClient *c)
{
  return (guint64) g_atomic_int_get (&c->received);
}

void
datahub_fd_client_free (DatahubFdClient *c)
{
  if (!c)
    return;
  client_reset (c, 0);
  g_hash_table_unref (c->cache);
  g_free (c);
}
