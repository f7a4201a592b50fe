/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* File-descriptor records (docs/elements.md, "fd memory"): a buffer whose
 * memories are all fd-backed (DMA-BUF, memfd) travels as a small record
 * naming its fds; consumers fetch each fd once over a Unix socket of the
 * producer's (SCM_RIGHTS) and keep it, keyed by the producer's id for it.
 *
 * The socket is "datahub-fd.<server id, 16 hex digits>" in the abstract
 * namespace (gone with its process: nothing stale after a crash),
 * SOCK_SEQPACKET.  It has no file mode: access follows the block's.  The
 * producer writes a random token into the block (zone DATAHUB_ZONE_FD),
 * so only a process that can read the block knows it; a consumer's hello
 * carries the token and a hash of it keyed with the channel's secret (an
 * unkeyed one without a secret).  The producer serves nothing before a
 * good hello, and then only fds that live records name, read-only
 * (DMA-BUF as its exporter made it).  Consumers never pass fds to the
 * producer: what they send is read without room for any. */
#ifndef DATAHUB_FD_CHANNEL_H
#define DATAHUB_FD_CHANNEL_H

#include <gst/gst.h>

G_BEGIN_DECLS

#define DATAHUB_FD_MAX_MEMORIES 16

/* The record's payload: a header and one entry per memory. */
typedef enum {
  DATAHUB_FD_KIND_DMABUF = 1,
  DATAHUB_FD_KIND_FD = 2,     /* memfd and other fd memory */
} DatahubFdKind;

typedef struct {
  guint32 magic;              /* DATAHUB_FD_RECORD_MAGIC */
  guint32 n_memories;         /* 1..DATAHUB_FD_MAX_MEMORIES */
  guint32 kind;               /* DatahubFdKind of every memory */
  guint32 reserved;
  guint64 server;             /* the socket's id */
  guint64 total_size;         /* the buffer's size */
} DatahubFdRecord;

typedef struct {
  guint64 id;                 /* the producer's id for the fd */
  guint64 dev, ino;           /* what fstat says of it */
  guint64 maxsize;            /* bytes mappable from the fd's start */
  guint64 offset, size;       /* the memory's bytes within them */
} DatahubFdEntry;

#define DATAHUB_FD_RECORD_MAGIC 0x52464844u /* "DHFR" */
#define DATAHUB_FD_TOKEN_SIZE 32

/* Zone DATAHUB_ZONE_FD of each block: where the fd socket is, and the
 * token that proves a consumer can read the block. */
typedef struct {
  guint64 server;
  guint8 token[DATAHUB_FD_TOKEN_SIZE];
} DatahubFdZone;

/* The hello's proof: BLAKE2b-256 of a label and @token, keyed with the
 * 16-byte @secret (NULL: unkeyed). */
void datahub_fd_proof (const guint8 *secret, const guint8 token[DATAHUB_FD_TOKEN_SIZE],
    guint8 out[DATAHUB_FD_TOKEN_SIZE]);
#define DATAHUB_FD_RECORD_SIZE(n) (sizeof (DatahubFdRecord) + (n) * sizeof (DatahubFdEntry))

/* Copies the fd record of @size bytes at @data (shared memory) into @rec
 * and @entries (DATAHUB_FD_MAX_MEMORIES of them) and checks it: sizes,
 * counts, kinds, each memory within its fd, the total.  FALSE when it
 * does not hold together. */
gboolean datahub_fd_record_parse (const void *data, guint64 size, DatahubFdRecord *rec,
    DatahubFdEntry *entries);

/* ---- producer side ------------------------------------------------------- */

typedef struct _DatahubFdServer DatahubFdServer;

/* Binds the socket and starts serving consumers that know the token and
 * @secret (DH_SECRET_SIZE bytes, or NULL).  NULL and @error on failure. */
DatahubFdServer *datahub_fd_server_new (const guint8 *secret, GError **error);
/* What the sink writes into zone DATAHUB_ZONE_FD of each block. */
void datahub_fd_server_zone (DatahubFdServer *s, DatahubFdZone *zone);
/* Makes @fd fetchable until as many releases as adds; fills @entry's id,
 * dev and ino.  FALSE if @fd cannot be examined, or is neither a file
 * (served as a read-only open of it) nor a DMA-BUF. */
gboolean datahub_fd_server_add (DatahubFdServer *s, int fd, DatahubFdEntry *entry);
void datahub_fd_server_release (DatahubFdServer *s, guint64 id);
/* Fds served so far (a figure for tests and stats). */
guint64 datahub_fd_server_sent (DatahubFdServer *s);
/* Stops serving, closes the socket and every fd. */
void datahub_fd_server_free (DatahubFdServer *s);

/* ---- consumer side ------------------------------------------------------- */

typedef struct _DatahubFdClient DatahubFdClient;

DatahubFdClient *datahub_fd_client_new (void);
/* A new fd (the caller owns it) for @entry of the server @zone names
 * (read from the record's block), fetched and cached on first use; the
 * hello proves @secret (or none).  -1 with *@why set when the producer
 * refuses or no longer has it, or the fd is not the file the record
 * names. */
int datahub_fd_client_get (DatahubFdClient *c, const DatahubFdZone *zone,
    const guint8 *secret, const DatahubFdEntry *entry, gchar **why);
/* Fds received so far. */
guint64 datahub_fd_client_received (DatahubFdClient *c);
void datahub_fd_client_free (DatahubFdClient *c);

G_END_DECLS

#endif
