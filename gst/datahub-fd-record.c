/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Reading an fd record's payload (datahub-fd-channel.h): untrusted, the
 * producer's process wrote it.  GLib only, so the wire tests call it
 * directly in every build. */
#include "datahub-fd-channel.h"

#include <string.h>

gboolean
datahub_fd_record_parse (const void *data, guint64 size, DatahubFdRecord *rec,
    DatahubFdEntry *entries)
{
  if (size < sizeof *rec || size > DATAHUB_FD_RECORD_SIZE (DATAHUB_FD_MAX_MEMORIES))
    return FALSE;
  /* copied once, then only the copies are looked at */
  memcpy (rec, data, sizeof *rec);
  if (rec->magic != DATAHUB_FD_RECORD_MAGIC || rec->n_memories == 0
      || rec->n_memories > DATAHUB_FD_MAX_MEMORIES
      || size != DATAHUB_FD_RECORD_SIZE (rec->n_memories)
      || (rec->kind != DATAHUB_FD_KIND_DMABUF && rec->kind != DATAHUB_FD_KIND_FD))
    return FALSE;
  memcpy (entries, (const guint8 *) data + sizeof *rec, rec->n_memories * sizeof *entries);
  guint64 total = 0;
  for (guint i = 0; i < rec->n_memories; i++) {
    const DatahubFdEntry *e = &entries[i];
    if (e->offset > e->maxsize || e->size > e->maxsize - e->offset || e->maxsize > G_MAXSSIZE
        || total > G_MAXUINT64 - e->size)
      return FALSE;
    total += e->size;
  }
  return total == rec->total_size;
}
