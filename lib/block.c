/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Creating, replacing, opening and validating blocks (docs/protocol.md §2,
 * §3 and §11 "validation").  A block is written by its producer only;
 * everyone else maps it read-only. */

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "dh_internal.h"

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

/* ---- seqlock word copies -------------------------------------------------- */

/* Atomic 8-byte words (release stores, acquire loads: plain moves on x86)
 * so readers racing a writer are defined behaviour; a reader that sees any
 * new word also sees the odd sequence stored before it.  @dst/@src are
 * 8-byte aligned; the tail word is padded. */
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

/* ---- producer side: exclusive creation ------------------------------------ */

static uint64_t
read_magic (int fd)
{
  uint64_t magic = 0;
  if (pread (fd, &magic, sizeof magic, 0) != (ssize_t) sizeof magic)
    return 0;
  return magic;
}

/* The lock on a fresh object can be refused for a moment by another
 * producer examining it (step 5 of §2): retry briefly. */
static int
lock_new_object (int fd)
{
  uint64_t give_up = dh_now_ns () + 100u * 1000000u;
  for (;;) {
    int rc = dh_lock_byte (fd, DH_LOCK_PRODUCER);
    if (rc != -EAGAIN || dh_now_ns () >= give_up)
      return rc;
    dh_sleep_ns (200000);
  }
}

/* The name exists: replace it if its producer is dead and it is one of
 * ours.  Returns 0 when it was removed (try creating again), or an error. */
static int
replace_stale (dh_block *b)
{
  /* O_NONBLOCK: a FIFO planted at the name must not hang us */
  int old = shm_open (b->name, O_RDWR | O_CLOEXEC | O_NONBLOCK, 0);
  if (old < 0) {
    if (errno == ENOENT)
      return 0; /* unlinked meanwhile: try again */
    return dh_fail (-errno, "shm object %s exists and cannot be opened: %s",
        b->name, strerror (errno));
  }
  struct stat st;
  int rc = 0;
  if (fstat (old, &st) != 0 || !S_ISREG (st.st_mode)) {
    rc = dh_fail (DH_ENOTDATAHUB, "%s exists and is not a regular shm object; "
        "refusing to replace it", b->name);
    goto out;
  }
  /* The lock proves its producer is dead, and is held across the checks
   * and the unlink: a producer that locks it meanwhile cannot exist. */
  if (dh_lock_byte (old, DH_LOCK_PRODUCER) != 0) {
    uint32_t pid = 0;
    if (pread (old, &pid, sizeof pid, offsetof (dh_shm_header, producer_pid))
        != (ssize_t) sizeof pid)
      pid = 0;
    rc = dh_fail (DH_EBUSY, "%s is owned by a live producer (pid %u)", b->name, pid);
    goto out;
  }
  uint64_t magic = read_magic (old);
  DH_TEST_POINT ("create.stale_locked");
  if (st.st_size != 0 && magic != DH_MAGIC && magic != DH_MAGIC_CREATING) {
    rc = dh_fail (DH_ENOTDATAHUB, "%s exists and is not a datahub block (%lld bytes, "
        "magic %016llx); refusing to replace it", b->name, (long long) st.st_size,
        (unsigned long long) magic);
    goto out;
  }
  dh_log (DH_LOG_WARNING, "replacing stale block %s (its producer is dead)", b->name);
  if (!dh_unlink_if_same (old, b->name) && errno != ENOENT)
    dh_log (DH_LOG_WARNING, "%s changed while being replaced; trying again", b->name);
out:
  close (old);
  return rc;
}

/* Opens the name exclusively (docs/protocol.md §2), already with the
 * block's mode as far as the umask allows: a consumer of another user
 * started first may look before fchmod, and must find it readable (it
 * waits through the empty object; "permission denied" would end it). */
static int
create_exclusive (dh_block *b, mode_t mode)
{
  for (int attempt = 0; attempt < 4; attempt++) {
    int fd = shm_open (b->name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode & 0666);
    if (fd >= 0) {
      DH_TEST_POINT ("create.after_open");
      int rc = lock_new_object (fd);
      if (rc != 0) {
        close (fd);
        return dh_fail (rc == -EAGAIN ? DH_EBUSY : rc, "cannot lock new block %s: %s",
            b->name, dh_strerror (rc));
      }
      /* replaced before we locked it (another producer took it for stale)? */
      if (!dh_name_is_fd (b->name, fd)) {
        close (fd);
        continue;
      }
      b->fd = fd;
      return 0;
    }
    if (errno != EEXIST)
      return dh_fail (-errno, "cannot create shm object %s: %s", b->name,
          strerror (errno));
    int rc = replace_stale (b);
    if (rc != 0)
      return rc;
  }
  return dh_fail (DH_EBUSY, "%s keeps being re-created by someone else", b->name);
}

static void
map_regions (dh_block *b, const dh_shm_header *h)
{
  b->session_id = h->session_id;
  b->slot_size = h->slot_size;
  b->slot_stride = h->slot_stride;
  b->slot_count = h->slot_count;
  b->ring_mask = h->ring_length - 1;
  b->max_consumers = h->max_consumers;
  b->max_holds = h->max_holds;
  b->chain_index = h->chain_index;
  b->policy = (dh_policy) h->policy;
  b->on_full = (dh_on_full) h->on_full;
  b->integrity = (dh_integrity) h->integrity;
  b->check = (dh_check) h->integrity_check;
  b->has_secret = h->flags & DH_FLAG_HAS_SECRET;
  b->zone_count = h->zone_count;
  b->total_size = h->total_size;
  b->table = (dh_shm_admission *) (b->base + h->off_table);
  b->slots = (dh_shm_slot *) (b->base + h->off_slots);
  b->ring = (dh_shm_desc *) (b->base + h->off_ring);
  b->payload = b->base + h->off_payload;
}

static void
init_header (dh_block *b, const dh_producer_config *cfg, const dh_layout *l,
    uint32_t ring_length, uint32_t page_size, uint32_t max_holds)
{
  dh_shm_header *h = b->hdr;
  h->layout_major = DH_LAYOUT_MAJOR;
  h->layout_minor = DH_LAYOUT_MINOR;
  h->header_size = DH_HEADER_SIZE;
  h->total_size = l->total_size;
  randombytes_buf (&h->session_id, sizeof h->session_id);
  h->created_realtime_ns = dh_realtime_ns ();
  h->page_size = page_size;
  h->chain_index = cfg->chain_index;
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
  h->max_holds = max_holds;
  memcpy (h->zone_size, cfg->zone_sizes, sizeof h->zone_size);
  h->off_table = l->off_table;
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
  memcpy (h->origin_name, b->origin, strlen (b->origin) + 1);
  h->producer_pid = (uint32_t) getpid ();
  h->producer_start_ticks = dh_proc_start_ticks (getpid ());
  atomic_store_explicit (&h->producer_heartbeat_ns, dh_now_ns (), memory_order_relaxed);
  atomic_store_explicit (&h->producer_live, cfg->live ? 1 : 0, memory_order_relaxed);
  atomic_store_explicit (&h->producer_state, DH_PRODUCER_RUNNING, memory_order_relaxed);
  /* Slot words, admission entries and the ring are all zero from
   * ftruncate: FREE generation 0, nobody admitted, empty descriptors. */
}

static uint32_t
default_ring_length (uint32_t slot_count)
{
  /* four descriptors per slot lets late joiners asking for the oldest
   * record find some history, at 128 bytes each */
  uint32_t ring_length = 16;
  while (ring_length < slot_count * 4u && ring_length < DH_MAX_RING)
    ring_length <<= 1;
  return ring_length;
}

int
dh_block_create (dh_block *b, const dh_producer_config *cfg, uint32_t max_holds)
{
  uint32_t page_size = (uint32_t) sysconf (_SC_PAGESIZE);
  uint32_t ring_length = cfg->ring_length ? cfg->ring_length
      : default_ring_length (cfg->slot_count);
  dh_layout l;
  int rc = dh_layout_compute (cfg->slot_size, cfg->slot_count, ring_length,
      cfg->max_consumers, cfg->zone_count, cfg->zone_sizes, page_size, &l);
  if (rc != 0)
    return rc;
  if ((rc = dh_shm_name (cfg->name, b->name, sizeof b->name)) != 0)
    return rc;
  if ((rc = dh_shm_name (cfg->origin ? cfg->origin : cfg->name, b->origin,
           sizeof b->origin)) != 0)
    return rc;
  if ((rc = create_exclusive (b, cfg->mode)) != 0)
    return rc;
  /* shm_open's mode passes through the umask; a group-readable block
   * (0640) needs the mode set explicitly. */
  if (DH_TEST_FAIL ("create.size") || fchmod (b->fd, cfg->mode) != 0
      || ftruncate (b->fd, (off_t) l.total_size) != 0) {
    rc = dh_fail (errno ? -errno : -EIO, "cannot size %s to %llu bytes: %s", b->name,
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
  atomic_store_explicit (&b->hdr->magic, DH_MAGIC_CREATING, memory_order_relaxed);
  init_header (b, cfg, &l, ring_length, page_size, max_holds);
  map_regions (b, b->hdr);
  for (uint32_t z = 0; z < cfg->zone_count; z++) {
    b->zone_offset[z] = l.zone_offset[z];
    b->zone_size[z] = cfg->zone_sizes[z];
  }
  if (cfg->secret)
    dh_hmac_key (cfg->secret, b->hmac_key);
  uint64_t huge = DH_HUGEPAGES_OFF;
  if (cfg->huge_pages)
    huge = madvise (b->payload, l.total_size - l.off_payload, MADV_HUGEPAGE) == 0
        ? DH_HUGEPAGES_ADVISED : DH_HUGEPAGES_FALLBACK;
  atomic_store_explicit (&b->hdr->metrics.hugepages, huge, memory_order_relaxed);
  prefault (b->payload, l.total_size - l.off_payload, true);
  return 0;

fail:
  dh_unlink_if_same (b->fd, b->name);
  close (b->fd);
  b->fd = -1;
  return rc;
}

void
dh_block_publish (dh_block *b)
{
  /* Pairs with the acquire load of magic in try_open: everything written
   * before (header, tables, admissions) is visible to whoever sees it. */
  atomic_store_explicit (&b->hdr->magic, DH_MAGIC, memory_order_release);
}

/* ---- everyone else: open and validate ------------------------------------ */

static int
check_credentials (const dh_block *b, const dh_shm_header *h,
    const dh_consumer_config *cfg)
{
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
  if (cfg->min_integrity != DH_INTEGRITY_NONE
      && (h->integrity < (uint32_t) cfg->min_integrity
          || h->integrity_check != DH_CHECK_ENFORCED))
    return dh_fail (DH_EINTEGRITY, "%s has integrity %u (check %u); at least %u, "
        "enforced, is required", b->name, h->integrity, h->integrity_check,
        cfg->min_integrity);
  return 0;
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
  if (h->max_holds == 0 || h->max_holds > DH_MAX_HOLDS)
    return dh_fail (DH_ECORRUPT, "%s: max holds %u not in 1..%u", b->name,
        h->max_holds, DH_MAX_HOLDS);
  if (memchr (h->origin_name, '\0', sizeof h->origin_name) == NULL
      || h->origin_name[0] != '/')
    return dh_fail (DH_ECORRUPT, "%s: origin name is not a name", b->name);
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
    { "slot stride", h->slot_stride, l.slot_stride },
    { "admission table offset", h->off_table, l.off_table },
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
  if (file_size < h->total_size)
    return dh_fail (DH_ETRUNCATED, "%s is %llu bytes, its header says %llu",
        b->name, (unsigned long long) file_size, (unsigned long long) h->total_size);
  if (h->integrity == DH_INTEGRITY_HMAC && !(h->flags & DH_FLAG_HAS_SECRET))
    return dh_fail (DH_ECORRUPT, "%s: HMAC integrity without a secret", b->name);
  /* admin inspection: file permissions are the authority */
  return cfg ? check_credentials (b, h, cfg) : 0;
}

/* One try at opening and validating. */
static int
try_open (dh_block *b, const dh_consumer_config *cfg, bool writable)
{
  /* O_NONBLOCK: a FIFO planted at the name must not hang us */
  int fd = shm_open (b->name, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NONBLOCK, 0);
  if (fd < 0)
    return dh_fail (-errno, "cannot open %s: %s", b->name, strerror (errno));
  b->fd = fd;
  struct stat st;
  int rc;
  if (fstat (fd, &st) != 0 || !S_ISREG (st.st_mode)) {
    rc = dh_fail (DH_ENOTDATAHUB, "%s is not a regular shm object", b->name);
    goto fail;
  }
  if (st.st_size == 0) {
    /* a creator between shm_open and its lock (§2 steps 1-2), or one that
     * died there, which the next producer replaces: wait either way */
    rc = dh_fail (DH_ENOTREADY, "%s is empty: its producer is still creating it", b->name);
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
  /* Pairs with the release store of magic in dh_block_publish. */
  uint64_t magic = atomic_load_explicit (&live->magic, memory_order_acquire);
  dh_shm_header local;
  memcpy (&local, (const void *) live, sizeof local);
  munmap ((void *) live, DH_HEADER_SIZE);
  if (magic == 0 || magic == DH_MAGIC_CREATING) {
    rc = dh_producer_alive (b)
        ? dh_fail (DH_ENOTREADY, "%s is still being created", b->name)
        : dh_fail (DH_ECORRUPT, "%s was never finished and has no live producer "
              "(creation was interrupted)", b->name);
    if (rc == DH_ECORRUPT)
      rc = DH_EUNFINISHED;
    goto fail;
  }
  if (magic != DH_MAGIC) {
    rc = dh_fail (DH_ENOTDATAHUB, "%s is not a datahub block (magic %016llx)",
        b->name, (unsigned long long) magic);
    goto fail;
  }
  if ((rc = validate_header (b, &local, (uint64_t) st.st_size, cfg)) != 0)
    goto fail;
  uint8_t *base = mmap (NULL, local.total_size,
      writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) {
    rc = dh_fail (-errno, "cannot map %s: %s", b->name, strerror (errno));
    goto fail;
  }
  b->base = base;
  b->hdr = (dh_shm_header *) base;
  /* every size and offset from the validated private copy */
  map_regions (b, &local);
  memcpy (b->origin, local.origin_name, strlen (local.origin_name) + 1);
  dh_layout l;
  (void) dh_layout_compute (local.slot_size, local.slot_count, local.ring_length,
      local.max_consumers, local.zone_count, local.zone_size, local.page_size, &l);
  for (uint32_t z = 0; z < local.zone_count; z++) {
    b->zone_offset[z] = l.zone_offset[z];
    b->zone_size[z] = local.zone_size[z];
  }
  prefault (b->payload, local.total_size - local.off_payload, false);
  if (cfg && b->has_secret)
    dh_hmac_key (cfg->secret, b->hmac_key);
  return 0;

fail:
  close (fd);
  b->fd = -1;
  return rc;
}

int
dh_block_open (dh_block *b, const char *name, const dh_consumer_config *cfg,
    bool writable)
{
  memset (b, 0, sizeof *b);
  b->fd = -1;
  int rc = dh_shm_name (name, b->name, sizeof b->name);
  if (rc != 0)
    return rc;
  return try_open (b, cfg, writable);
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
  sodium_memzero (b->hmac_key, sizeof b->hmac_key);
}

int
dh_block_successor (const dh_block *b, char *out, size_t len, uint64_t *session)
{
  const dh_shm_header *h = b->hdr;
  uint8_t name[DH_NAME_MAX + 1], mac[DH_HASH_SIZE];
  uint64_t next_session;
  for (int attempt = 0; attempt < 1000; attempt++) {
    /* Pairs with the release store of the even sequence in
     * dh_producer_handover. */
    uint64_t s1 = atomic_load_explicit (&h->successor_seq, memory_order_acquire);
    if (s1 & 1) {
      dh_cpu_relax ();
      continue;
    }
    dh_load_words (name, (const uint8_t *) h->successor_name, sizeof name);
    dh_load_words (mac, h->successor_mac, sizeof mac);
    next_session = atomic_load_explicit (&h->successor_session, memory_order_acquire);
    uint64_t cutover = atomic_load_explicit (&h->cutover_seq, memory_order_acquire);
    if (atomic_load_explicit (&h->successor_seq, memory_order_relaxed) != s1)
      continue;
    if (s1 == 0 || cutover == 0)
      return dh_fail (-ENOENT, "%s has no successor", b->name);
    name[DH_NAME_MAX] = '\0'; /* never trust shared memory to terminate it */
    uint8_t want[DH_HASH_SIZE];
    dh_successor_mac (b, cutover, next_session, (const char *) name, want);
    if (!dh_hash_equal (want, mac))
      return dh_fail (DH_ECORRUPT, "%s: the successor announcement fails its "
          "authentication; not following it", b->name);
    size_t n = strlen ((const char *) name);
    if (n + 1 > len)
      return dh_fail (-ENOBUFS, "successor name needs %zu bytes", n + 1);
    memcpy (out, name, n + 1);
    if (session)
      *session = next_session;
    return 0;
  }
  return dh_fail (-EAGAIN, "%s: successor name keeps changing", b->name);
}

int
dh_block_check_successor (const dh_block *cur, const dh_block *next, uint64_t session)
{
  struct stat a, n;
  if (next->session_id != session)
    return dh_fail (DH_ECORRUPT, "%s is not the block %s announced (session %016llx, "
        "announced %016llx); not following it", next->name, cur->name,
        (unsigned long long) next->session_id, (unsigned long long) session);
  if (next->chain_index != cur->chain_index + 1)
    return dh_fail (DH_ECORRUPT, "%s has chain index %u, %u expected after %s", next->name,
        next->chain_index, cur->chain_index + 1, cur->name);
  if (fstat (cur->fd, &a) != 0 || fstat (next->fd, &n) != 0 || a.st_uid != n.st_uid)
    return dh_fail (DH_ECORRUPT, "%s belongs to another user than %s; not following it",
        next->name, cur->name);
  return 0;
}

int
dh_block_peek_at (const char *name, dh_block_peek *out)
{
  char shm[DH_NAME_MAX + 1];
  int rc = dh_shm_name (name, shm, sizeof shm);
  if (rc != 0)
    return rc;
  int fd = shm_open (shm, O_RDONLY | O_CLOEXEC | O_NONBLOCK, 0);
  if (fd < 0)
    return dh_fail (-errno, "cannot open %s: %s", shm, strerror (errno));
  struct stat st;
  dh_shm_header h;
  rc = 0;
  if (fstat (fd, &st) != 0 || !S_ISREG (st.st_mode)
      || pread (fd, &h, sizeof h, 0) != (ssize_t) sizeof h || h.magic != DH_MAGIC) {
    rc = dh_fail (DH_ENOTDATAHUB, "%s is not a datahub block", shm);
  } else {
    memset (out, 0, sizeof *out);
    out->session_id = h.session_id;
    out->chain_index = h.chain_index;
    out->uid = st.st_uid;
    memcpy (out->origin, h.origin_name, DH_NAME_MAX);
    out->origin[DH_NAME_MAX] = '\0';
    dh_block tmp = { .fd = fd };
    out->alive = dh_producer_alive (&tmp);
  }
  close (fd);
  return rc;
}
