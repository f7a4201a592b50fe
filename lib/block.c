/* Naming, creating, attaching to and validating DataBlocks, and the OFD
 * locks that tell whether a participant is alive. */

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "dh_internal.h"

#define DH_CHANNEL_PREFIX "/datahub."

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22  /* Linux 5.14 */
#define MADV_POPULATE_WRITE 23
#endif

/* Faults the slots in now (after any huge-page advice), so the first
 * records do not pay a page fault per page: measured in docs/performance.md.
 * Best effort: older kernels refuse the advice and fault on first touch. */
static void
prefault (uint8_t *start, uint64_t len, bool write)
{
  (void) madvise (start, len, write ? MADV_POPULATE_WRITE : MADV_POPULATE_READ);
}

/* Internal: DH_ECORRUPT because the magic is missing (maybe still being
 * created); reported to callers as DH_ECORRUPT. */
#define DH_ECORRUPT_NO_MAGIC (-1999)

int
dh_shm_name (const char *name, char *buf, size_t buflen)
{
  if (!name || !*name || !buf)
    return dh_fail (-EINVAL, "empty channel name");
  if (name[0] == '/') {
    size_t n = strlen (name);
    if (n >= buflen || n > DH_NAME_MAX)
      return dh_fail (-ENAMETOOLONG, "shm name '%s' is too long", name);
    if (n == 1 || strchr (name + 1, '/'))
      return dh_fail (-EINVAL, "shm name '%s' must be '/' and one path element", name);
    memcpy (buf, name, n + 1);
    return 0;
  }
  size_t n = strlen (DH_CHANNEL_PREFIX) + strlen (name);
  if (n >= buflen || n > DH_NAME_MAX)
    return dh_fail (-ENAMETOOLONG, "channel name '%s' is too long", name);
  /* Channel names become one path element: anything but [A-Za-z0-9._-]
   * becomes '_' so "cam 0/left" cannot escape /dev/shm. */
  char *out = buf + strlen (DH_CHANNEL_PREFIX);
  memcpy (buf, DH_CHANNEL_PREFIX, strlen (DH_CHANNEL_PREFIX));
  for (const char *s = name; *s; s++) {
    char ch = *s;
    bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')
        || (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
    *out++ = ok ? ch : '_';
  }
  *out = '\0';
  return 0;
}

/* ---- liveness: one OFD lock byte per participant ------------------------ */

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

int
dh_lock_byte (int fd, off_t byte)
{
  struct flock fl;
  if (ofd_lock_op (fd, F_OFD_SETLK, F_WRLCK, byte, &fl) == 0)
    return 0;
  return (errno == EACCES || errno == EAGAIN) ? -EAGAIN : -errno;
}

void
dh_unlock_byte (int fd, off_t byte)
{
  struct flock fl;
  (void) ofd_lock_op (fd, F_OFD_SETLK, F_UNLCK, byte, &fl);
}

/* True when an open file description other than ours holds @byte: the
 * kernel drops the lock when its owner dies, so there is no PID reuse race. */
bool
dh_byte_locked (int fd, off_t byte)
{
  struct flock fl;
  /* a read-lock query conflicts with the participants' write locks and
   * works on read-only descriptors too (admin inspection) */
  if (ofd_lock_op (fd, F_OFD_GETLK, F_RDLCK, byte, &fl) != 0)
    return true; /* cannot tell: assume alive, never reclaim wrongly */
  return fl.l_type != F_UNLCK;
}

bool
dh_consumer_alive (const dh_block *b, uint32_t i)
{
  return dh_byte_locked (b->fd, DH_LOCK_CONSUMER (i));
}

bool
dh_producer_alive (const dh_block *b)
{
  return dh_byte_locked (b->fd, DH_LOCK_PRODUCER);
}

/* Clears consumer @i's hold bit on every slot (detach, reap, or a new owner
 * cleaning a dead one's entry).  Release: pairs with try_claim's acquire
 * load of readers. */
void
dh_clear_holds (dh_block *b, uint32_t i)
{
  uint64_t bit = UINT64_C (1) << i;
  for (uint32_t s = 0; s < b->slot_count; s++)
    atomic_fetch_and_explicit (&b->slots[s].readers, ~bit, memory_order_release);
}

/* Seqlock payload copies: atomic 8-byte words (release stores, acquire
 * loads: plain moves on x86) so readers racing a writer are defined
 * behaviour; a reader that sees any new word also sees the odd sequence
 * stored before it.  @dst/@src are 8-byte aligned; the tail word is padded. */
void
dh_store_words (uint8_t *dst, const uint8_t *src, size_t len)
{
  size_t i = 0;
  for (; i + 8 <= len; i += 8) {
    uint64_t w;
    memcpy (&w, src + i, 8);
    __atomic_store_n ((uint64_t *) (void *) (dst + i), w, __ATOMIC_RELEASE);
  }
  if (i < len) {
    uint64_t w = 0;
    memcpy (&w, src + i, len - i);
    __atomic_store_n ((uint64_t *) (void *) (dst + i), w, __ATOMIC_RELEASE);
  }
}

void
dh_load_words (uint8_t *dst, const uint8_t *src, size_t len)
{
  size_t i = 0;
  for (; i + 8 <= len; i += 8) {
    uint64_t w = __atomic_load_n ((const uint64_t *) (const void *) (src + i),
        __ATOMIC_ACQUIRE);
    memcpy (dst + i, &w, 8);
  }
  if (i < len) {
    uint64_t w = __atomic_load_n ((const uint64_t *) (const void *) (src + i),
        __ATOMIC_ACQUIRE);
    memcpy (dst + i, &w, len - i);
  }
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

/* ---- producer side: create ------------------------------------------------ */

/* Opens the name exclusively, reclaiming a stale object whose producer is
 * dead.  The producer lock is taken before the object is sized, so a
 * second producer racing us sees "busy", never a half-made block. */
static int
create_exclusive (dh_block *b, mode_t mode)
{
  for (int attempt = 0; attempt < 4; attempt++) {
    int fd = shm_open (b->name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd >= 0) {
      int rc = dh_lock_byte (fd, DH_LOCK_PRODUCER);
      if (rc != 0) {
        close (fd);
        return dh_fail (rc, "cannot lock new block %s: %s", b->name,
            dh_strerror (rc));
      }
      b->fd = fd;
      return 0;
    }
    if (errno != EEXIST)
      return dh_fail (-errno, "cannot create shm object %s: %s", b->name,
          strerror (errno));
    int old = shm_open (b->name, O_RDWR | O_CLOEXEC, 0);
    if (old < 0) {
      if (errno == ENOENT)
        continue; /* unlinked meanwhile: try again */
      return dh_fail (-errno, "shm object %s exists and cannot be opened: %s",
          b->name, strerror (errno));
    }
    if (dh_byte_locked (old, DH_LOCK_PRODUCER)) {
      uint32_t pid = 0;
      if (pread (old, &pid, sizeof pid, offsetof (dh_shm_header, producer_pid))
          != (ssize_t) sizeof pid)
        pid = 0;
      close (old);
      return dh_fail (DH_EBUSY, "%s is owned by a live producer (pid %u)",
          b->name, pid);
    }
    close (old);
    dh_log (DH_LOG_WARNING, "reclaiming stale block %s (its producer is dead)",
        b->name);
    if (shm_unlink (b->name) != 0 && errno != ENOENT)
      return dh_fail (-errno, "cannot unlink stale %s: %s", b->name,
          strerror (errno));
  }
  return dh_fail (DH_EBUSY, "%s keeps being re-created by someone else", b->name);
}

static void
cache_config (dh_block *b, const dh_shm_header *h)
{
  b->session_id = h->session_id;
  b->slot_size = h->slot_size;
  b->slot_stride = h->slot_stride;
  b->slot_count = h->slot_count;
  b->ring_mask = h->ring_length - 1;
  b->max_consumers = h->max_consumers;
  b->policy = (dh_policy) h->policy;
  b->on_full = (dh_on_full) h->on_full;
  b->integrity = (dh_integrity) h->integrity;
  b->check = (dh_check) h->integrity_check;
  b->zone_count = h->zone_count;
  for (uint32_t z = 0; z < h->zone_count && z < DH_MAX_ZONES; z++) {
    b->zone_offset[z] = h->zones[z].offset;
    b->zone_size[z] = h->zones[z].size;
  }
  b->total_size = h->total_size;
  b->control_size = h->control_size;
  b->consumers = (dh_shm_consumer *) (b->base + h->off_consumers);
  b->slots = (dh_shm_slot *) (b->base + h->off_slots);
  b->ring = (dh_shm_desc *) (b->base + h->off_ring);
  b->payload = b->base + h->off_payload;
}

static void
init_header (dh_block *b, const dh_producer_config *cfg, const dh_layout *l,
    uint32_t ring_length, uint32_t page_size)
{
  dh_shm_header *h = b->hdr;
  h->layout_major = DH_LAYOUT_MAJOR;
  h->layout_minor = DH_LAYOUT_MINOR;
  h->header_size = DH_HEADER_SIZE;
  h->total_size = l->total_size;
  randombytes_buf (&h->session_id, sizeof h->session_id);
  h->created_realtime_ns = dh_realtime_ns ();
  h->control_size = l->control_size;
  h->page_size = page_size;
  h->slot_size = cfg->slot_size;
  h->slot_stride = l->slot_stride;
  h->slot_count = cfg->slot_count;
  h->ring_length = ring_length;
  h->max_consumers = cfg->max_consumers;
  h->policy = cfg->policy;
  h->on_full = cfg->on_full;
  h->integrity = cfg->integrity;
  h->integrity_check = cfg->check;
  h->zone_count = cfg->zone_count;
  memcpy (h->zone_size, cfg->zone_sizes, sizeof h->zone_size);
  h->off_consumers = l->off_consumers;
  h->off_slots = l->off_slots;
  h->off_ring = l->off_ring;
  h->off_zones = l->off_zones;
  h->off_payload = l->off_payload;
  if (cfg->schema) {
    dh_schema_hash (cfg->schema, h->schema_hash);
    h->flags |= DH_FLAG_HAS_SCHEMA;
  }
  if (cfg->secret) {
    dh_secret_verifier (cfg->secret, h->secret_verifier);
    h->flags |= DH_FLAG_HAS_SECRET;
  }
  if (cfg->huge_pages)
    h->flags |= DH_FLAG_HUGE_PAGES;
  for (uint32_t z = 0; z < cfg->zone_count; z++) {
    h->zones[z].offset = l->zone_offset[z];
    h->zones[z].size = cfg->zone_sizes[z];
  }
  h->producer_pid = (uint32_t) getpid ();
  h->producer_start_ticks = dh_proc_start_ticks (getpid ());
  atomic_store_explicit (&h->producer_heartbeat_ns, dh_now_ns (), memory_order_relaxed);
  atomic_store_explicit (&h->producer_state, DH_PRODUCER_RUNNING, memory_order_relaxed);
  /* Slot words, consumer entries, cursors and the ring are all zero from
   * ftruncate: FREE generation 0, FREE epoch 0, empty descriptors. */
}

int
dh_block_create (dh_block *b, const dh_producer_config *cfg)
{
  uint32_t page_size = (uint32_t) sysconf (_SC_PAGESIZE);
  uint32_t ring_length = cfg->ring_length;
  if (ring_length == 0) {
    /* four descriptors per slot lets late joiners asking for the oldest
     * record find some history, at 128 bytes each */
    ring_length = 16;
    while (ring_length < cfg->slot_count * 4u && ring_length < DH_MAX_RING)
      ring_length <<= 1;
  }
  dh_layout l;
  int rc = dh_layout_compute (cfg->slot_size, cfg->slot_count, ring_length,
      cfg->max_consumers, cfg->zone_count, cfg->zone_sizes, page_size, &l);
  if (rc != 0)
    return rc;
  if ((rc = dh_shm_name (cfg->name, b->name, sizeof b->name)) != 0)
    return rc;
  if ((rc = create_exclusive (b, cfg->mode)) != 0)
    return rc;
  /* shm_open's mode passes through the umask; a group-readable block
   * (0660) needs the mode set explicitly. */
  if (fchmod (b->fd, cfg->mode) != 0 || ftruncate (b->fd, (off_t) l.total_size) != 0) {
    rc = dh_fail (-errno, "cannot size %s to %llu bytes: %s", b->name,
        (unsigned long long) l.total_size, strerror (errno));
    goto fail;
  }
  void *base = mmap (NULL, l.total_size, PROT_READ | PROT_WRITE, MAP_SHARED, b->fd, 0);
  if (base == MAP_FAILED) {
    rc = dh_fail (-errno, "cannot map %s: %s", b->name, strerror (errno));
    goto fail;
  }
  b->base = base;
  b->hdr = base;
  init_header (b, cfg, &l, ring_length, page_size);
  cache_config (b, b->hdr);
  if (cfg->secret)
    dh_hmac_key (cfg->secret, b->hmac_key);
  uint64_t huge = DH_HUGEPAGES_OFF;
  if (cfg->huge_pages)
    huge = madvise (b->base + l.off_payload, l.total_size - l.off_payload,
               MADV_HUGEPAGE) == 0 ? DH_HUGEPAGES_ADVISED : DH_HUGEPAGES_FALLBACK;
  atomic_store_explicit (&b->hdr->metrics.hugepages, huge, memory_order_relaxed);
  prefault (b->base + l.off_payload, l.total_size - l.off_payload, true);
  b->tag = 1;
  /* Pairs with the acquire load of magic in dh_block_attach: everything
   * above is visible to whoever sees the magic. */
  atomic_store_explicit (&b->hdr->magic, DH_MAGIC, memory_order_release);
  return 0;

fail:
  shm_unlink (b->name);
  close (b->fd);
  b->fd = -1;
  return rc;
}

/* ---- consumer side: attach and validate ---------------------------------- */

static void
sleep_ms (unsigned ms)
{
  struct timespec ts = { 0, (long) ms * 1000000L };
  nanosleep (&ts, NULL);
}

/* Checks a private copy of the header, so nothing the producer (or a
 * corrupter) changes later can invalidate what was checked. */
static int
validate_header (const dh_block *b, const dh_shm_header *h, uint64_t file_size,
    const dh_consumer_config *cfg)
{
  if (h->layout_major != DH_LAYOUT_MAJOR)
    return dh_fail (DH_EVERSION, "%s has layout version %u.%u; this library "
        "reads %u.x", b->name, h->layout_major, h->layout_minor, DH_LAYOUT_MAJOR);
  if (h->header_size != DH_HEADER_SIZE)
    return dh_fail (DH_ECORRUPT, "%s: header size %u, expected %u", b->name,
        h->header_size, DH_HEADER_SIZE);
  if (h->policy > DH_POLICY_DOUBLE || h->on_full > DH_ON_FULL_DROP
      || h->integrity > DH_INTEGRITY_HMAC || h->integrity_check > DH_CHECK_MANUAL)
    return dh_fail (DH_ECORRUPT, "%s: unknown policy %u / on-full %u / "
        "integrity %u / check %u", b->name, h->policy, h->on_full, h->integrity,
        h->integrity_check);
  dh_layout l;
  int rc = dh_layout_compute (h->slot_size, h->slot_count, h->ring_length,
      h->max_consumers, h->zone_count, h->zone_size, h->page_size, &l);
  if (rc != 0) {
    char why[256];
    snprintf (why, sizeof why, "%s", dh_error_detail ());
    return dh_fail (DH_ECORRUPT, "%s: bad configuration: %s", b->name, why);
  }
  struct { const char *what; uint64_t seen, want; } fields[] = {
    { "total size", h->total_size, l.total_size },
    { "control size", h->control_size, l.control_size },
    { "slot stride", h->slot_stride, l.slot_stride },
    { "consumer table offset", h->off_consumers, l.off_consumers },
    { "slot table offset", h->off_slots, l.off_slots },
    { "ring offset", h->off_ring, l.off_ring },
    { "zone offset", h->off_zones, l.off_zones },
    { "payload offset", h->off_payload, l.off_payload },
  };
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
    if (fields[i].seen != fields[i].want)
      return dh_fail (DH_ECORRUPT, "%s: %s is %llu, the configuration gives %llu",
          b->name, fields[i].what, (unsigned long long) fields[i].seen,
          (unsigned long long) fields[i].want);
  for (uint32_t z = 0; z < h->zone_count; z++)
    if (h->zones[z].offset != l.zone_offset[z] || h->zones[z].size != h->zone_size[z])
      return dh_fail (DH_ECORRUPT, "%s: zone %u table entry disagrees with the "
          "configuration", b->name, z);
  if (file_size < h->total_size)
    return dh_fail (DH_ETRUNCATED, "%s is %llu bytes, its header says %llu",
        b->name, (unsigned long long) file_size, (unsigned long long) h->total_size);
  if (!cfg)
    return 0; /* admin inspection: file permissions are the authority */

  bool has_secret = h->flags & DH_FLAG_HAS_SECRET;
  if (has_secret && !cfg->secret)
    return dh_fail (DH_ESECRET, "%s requires a secret and none was given", b->name);
  if (!has_secret && cfg->secret)
    return dh_fail (DH_ESECRET, "a secret was given but %s has none", b->name);
  if (has_secret) {
    uint8_t v[DH_HASH_SIZE];
    dh_secret_verifier (cfg->secret, v);
    if (!dh_hash_equal (v, h->secret_verifier))
      return dh_fail (DH_ESECRET, "wrong secret for %s", b->name);
  }
  if (h->integrity == DH_INTEGRITY_HMAC && !has_secret)
    return dh_fail (DH_ECORRUPT, "%s: HMAC integrity without a secret", b->name);
  if (cfg->expected_schema) {
    uint8_t want[DH_HASH_SIZE];
    char want_hex[2 * DH_HASH_SIZE + 1], seen_hex[2 * DH_HASH_SIZE + 1];
    dh_schema_hash (cfg->expected_schema, want);
    if (!dh_hash_equal (want, h->schema_hash)) {
      dh_hex (want, 8, want_hex);
      dh_hex (h->schema_hash, 8, seen_hex);
      return dh_fail (DH_ESCHEMA, "%s has schema %s…, expected %s… (\"%s\")",
          b->name, (h->flags & DH_FLAG_HAS_SCHEMA) ? seen_hex : "(none)",
          want_hex, cfg->expected_schema);
    }
  }
  return 0;
}

/* Maps the control region writable and the data region read-only at
 * consecutive addresses, so one base pointer serves both. */
static int
map_split (dh_block *b, uint64_t control_size, uint64_t total_size, bool writable)
{
  uint8_t *base = mmap (NULL, total_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED)
    return dh_fail (-errno, "cannot reserve %llu bytes for %s: %s",
        (unsigned long long) total_size, b->name, strerror (errno));
  if (mmap (base, control_size, writable ? PROT_READ | PROT_WRITE : PROT_READ,
          MAP_SHARED | MAP_FIXED, b->fd, 0) == MAP_FAILED
      || mmap (base + control_size, total_size - control_size, PROT_READ,
          MAP_SHARED | MAP_FIXED, b->fd, (off_t) control_size) == MAP_FAILED) {
    int err = errno;
    munmap (base, total_size);
    return dh_fail (-err, "cannot map %s: %s", b->name, strerror (err));
  }
  b->base = base;
  b->hdr = (dh_shm_header *) base;
  return 0;
}

/* One try at opening and validating; DH_ENOTREADY / -ENOENT are retried by
 * the caller until the attach timeout. */
static int
try_attach (dh_block *b, const dh_consumer_config *cfg, bool writable)
{
  int fd = shm_open (b->name, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC, 0);
  if (fd < 0)
    return dh_fail (-errno, "cannot open %s: %s", b->name, strerror (errno));
  b->fd = fd;
  struct stat st;
  int rc;
  if (fstat (fd, &st) != 0) {
    rc = dh_fail (-errno, "cannot stat %s: %s", b->name, strerror (errno));
    goto fail;
  }
  if ((uint64_t) st.st_size < DH_HEADER_SIZE) {
    rc = dh_producer_alive (b)
        ? dh_fail (DH_ENOTREADY, "%s is still being created", b->name)
        : dh_fail (DH_ETRUNCATED, "%s is %lld bytes, smaller than a header (%u)",
              b->name, (long long) st.st_size, DH_HEADER_SIZE);
    goto fail;
  }
  const dh_shm_header *live = mmap (NULL, DH_HEADER_SIZE, PROT_READ, MAP_SHARED, fd, 0);
  if (live == MAP_FAILED) {
    rc = dh_fail (-errno, "cannot map header of %s: %s", b->name, strerror (errno));
    goto fail;
  }
  /* Pairs with the release store of magic at the end of dh_block_create. */
  uint64_t magic = atomic_load_explicit (&live->magic, memory_order_acquire);
  dh_shm_header local;
  memcpy (&local, (const void *) live, sizeof local);
  munmap ((void *) live, DH_HEADER_SIZE);
  if (magic == 0) {
    rc = dh_producer_alive (b)
        ? dh_fail (DH_ENOTREADY, "%s is still being created", b->name)
        : dh_fail (DH_ECORRUPT, "%s has no magic and no live producer "
              "(creation was interrupted)", b->name);
    if (rc == DH_ECORRUPT)
      rc = DH_ECORRUPT_NO_MAGIC;
    goto fail;
  }
  if (magic != DH_MAGIC) {
    rc = dh_fail (DH_ENOTDATAHUB, "%s is not a datahub block (magic %016llx)",
        b->name, (unsigned long long) magic);
    goto fail;
  }
  if ((rc = validate_header (b, &local, (uint64_t) st.st_size, cfg)) != 0)
    goto fail;
  if ((rc = map_split (b, local.control_size, local.total_size, writable)) != 0)
    goto fail;
  prefault ((uint8_t *) b->base + local.control_size, local.total_size - local.control_size,
      false);
  cache_config (b, &local);
  if (cfg && (local.flags & DH_FLAG_HAS_SECRET))
    dh_hmac_key (cfg->secret, b->hmac_key);
  return 0;

fail:
  close (fd);
  b->fd = -1;
  return rc;
}

int
dh_block_attach (dh_block *b, const dh_consumer_config *cfg)
{
  int rc = dh_shm_name (cfg->name, b->name, sizeof b->name);
  if (rc != 0)
    return rc;
  uint64_t deadline = dh_deadline (cfg->attach_timeout_ms);
  for (;;) {
    rc = try_attach (b, cfg, true);
    /* A creator passes through "empty, unlocked" and "no magic yet" for a
     * moment between shm_open and taking its lock: retry those as well,
     * and report them only when they outlast the timeout. */
    bool retry = rc == -ENOENT || rc == DH_ENOTREADY || rc == DH_ETRUNCATED
        || rc == DH_ECORRUPT_NO_MAGIC;
    if (rc == DH_ECORRUPT_NO_MAGIC)
      rc = DH_ECORRUPT;
    if (!retry || dh_now_ns () >= deadline)
      return rc;
    sleep_ms (10);
  }
}

int
dh_block_inspect (dh_block *b, const char *name, bool writable)
{
  int rc = dh_shm_name (name, b->name, sizeof b->name);
  if (rc != 0)
    return rc;
  rc = try_attach (b, NULL, writable);
  return rc == DH_ECORRUPT_NO_MAGIC ? DH_ECORRUPT : rc;
}

void
dh_block_unmap (dh_block *b)
{
  if (b->base)
    munmap (b->base, b->total_size);
  b->base = NULL;
  if (b->fd >= 0)
    close (b->fd);
  b->fd = -1;
}
