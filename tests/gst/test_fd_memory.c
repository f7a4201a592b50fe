/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* fd-backed memory across processes (no GPU needed: memfds labelled as
 * DMA-BUF, which the DMA-BUF allocator wraps as any mappable fd).  A
 * forked appsrc producer works like a camera's pool: four memfds, each
 * rewritten only after the sink gave its previous buffer back.  Consumers
 * check that their memory is the producer's file (fstat device and
 * inode), every byte and the strides, that nothing was copied on either
 * side, and that each fd crossed once.  Also: a consumer killed while it
 * holds fd records, a producer restarted, and a stream mixing fd records
 * with slot records. */
#include <gst/allocators/allocators.h>
#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>
#include <gst/check/gstcheck.h>
#include <gst/video/video.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gst_test_helpers.h"

#define WIDTH 64
#define HEIGHT 48
#define POOL 4

/* The producer's frames: a format with non-default strides and offsets. */
typedef struct {
  const gchar *format;
  GstVideoFormat video_format;
  guint n_planes;
  gint stride[2];
  gsize offset[2];
  gsize size;
} Layout;

/* NV12: rows of 80 bytes, a 64-byte gap before UV */
static const Layout nv12 = { "NV12", GST_VIDEO_FORMAT_NV12, 2, { 80, 80 },
  { 0, 80 * HEIGHT + 64 }, 80 * HEIGHT + 64 + 80 * HEIGHT / 2 };
/* RGBA: rows of 320 bytes for 256 of pixels */
static const Layout rgba = { "RGBA", GST_VIDEO_FORMAT_RGBA, 1, { 320, 0 }, { 0, 0 },
  320 * HEIGHT };
/* the current test's, set before the producer is forked */
static const Layout *layout = &nv12;
#define FRAME_SIZE (layout->size)

static gchar *
caps_string (gboolean dmabuf)
{
  return g_strdup_printf ("video/x-raw%s,format=%s,width=%d,height=%d,framerate=30/1",
      dmabuf ? "(memory:DMABuf)" : "", layout->format, WIDTH, HEIGHT);
}
/* ---- frames: the index in the first 4 bytes, then bytes of the index -- */

static guint8
byte_at (guint index, gsize at)
{
  return (guint8) (index * 7 + at * 13 + (at >> 8));
}

static void
fill (guint8 *data, guint index)
{
  memcpy (data, &index, sizeof index);
  for (gsize at = sizeof index; at < FRAME_SIZE; at++)
    data[at] = byte_at (index, at);
}

/* The frame's index, after checking every byte and the layout. */
static guint
check_frame (GstBuffer *buf)
{
  GstVideoMeta *vm = gst_buffer_get_video_meta (buf);
  fail_unless (vm && vm->format == layout->video_format && vm->n_planes == layout->n_planes);
  for (guint p = 0; p < layout->n_planes; p++)
    fail_unless (vm->stride[p] == layout->stride[p] && vm->offset[p] == layout->offset[p]);
  GstMapInfo map;
  fail_unless (gst_buffer_map (buf, &map, GST_MAP_READ));
  fail_unless_equals_uint64 (map.size, FRAME_SIZE);
  guint index;
  memcpy (&index, map.data, sizeof index);
  for (gsize at = sizeof index; at < FRAME_SIZE; at++)
    fail_unless (map.data[at] == byte_at (index, at), "frame %u byte %" G_GSIZE_FORMAT,
        index, at);
  gst_buffer_unmap (buf, &map);
  return index;
}

/* ---- the producer: a pool of memfds ------------------------------------ */

typedef struct {
  int fd;
  guint8 *map;
  gint in_use;             /* a buffer of it is out (atomic) */
} PoolFile;

/* two pools: a restarted producer has buffers of its own */
static PoolFile pool[2 * POOL];
/* the pool the forked producer uses: pool[pool_base .. pool_base + POOL) */
static guint pool_base;

/* Made before the fork: the test knows the producer's files. */
static void
make_pool (void)
{
  for (guint k = 0; k < 2 * POOL; k++) {
    pool[k].fd = memfd_create ("datahub-test-frame", MFD_CLOEXEC);
    fail_unless (pool[k].fd >= 0 && ftruncate (pool[k].fd, FRAME_SIZE) == 0);
    pool[k].map = mmap (NULL, FRAME_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, pool[k].fd, 0);
    fail_unless (pool[k].map != MAP_FAILED);
    pool[k].in_use = 0;
  }
}

static void
free_pool (void)
{
  for (guint k = 0; k < 2 * POOL; k++) {
    munmap (pool[k].map, FRAME_SIZE);
    close (pool[k].fd);
  }
}

static gboolean
pool_file_of (int fd)
{
  struct stat a, b;
  fail_unless (fstat (fd, &a) == 0);
  for (guint k = 0; k < 2 * POOL; k++)
    if (fstat (pool[k].fd, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino)
      return TRUE;
  return FALSE;
}

static void
returned (gpointer data)
{
  g_atomic_int_set (&((PoolFile *) data)->in_use, 0);
}

static GQuark
returned_quark (void)
{
  return g_quark_from_static_string ("datahub-test-returned");
}

/* Frame @index in pool file @k, once its previous buffer came back. */
static GstBuffer *
pool_buffer (GstAllocator *dmabuf, GstAllocator *fdmem, guint k, guint index)
{
  for (int waited = 0; g_atomic_int_get (&pool[k].in_use); waited++) {
    if (waited > 20000)
      return NULL; /* 20 s: the sink never gave it back */
    g_usleep (1000);
  }
  fill (pool[k].map, index);
  g_atomic_int_set (&pool[k].in_use, 1);
  int fd = dup (pool[k].fd);
  GstMemory *mem = dmabuf ? gst_dmabuf_allocator_alloc (dmabuf, fd, FRAME_SIZE)
      : gst_fd_allocator_alloc (fdmem, fd, FRAME_SIZE, GST_FD_MEMORY_FLAG_NONE);
  GstBuffer *buf = gst_buffer_new ();
  gst_buffer_append_memory (buf, mem);
  gst_mini_object_set_qdata (GST_MINI_OBJECT (buf), returned_quark (), &pool[k], returned);
  return buf;
}

static GstBuffer *
system_buffer (guint index)
{
  GstBuffer *buf = gst_buffer_new_allocate (NULL, FRAME_SIZE, NULL);
  GstMapInfo map;
  gst_buffer_map (buf, &map, GST_MAP_WRITE);
  fill (map.data, index);
  gst_buffer_unmap (buf, &map);
  return buf;
}

typedef enum { SEND_DMABUF, SEND_MIXED } Send;

/* Sends @n frames numbered from @first; EOS unless @endless (then it
 * waits to be killed).  Returns the exit status (0 = fine). */
static int
produce (const gchar *ch, Send how, guint first, guint n, gboolean endless, guint perms)
{
  gchar *caps = caps_string (how == SEND_DMABUF);
  gchar *launch = g_strdup_printf ("appsrc name=in format=time caps=\"%s\" ! "
      "datahubsink name=sink channel=%s perms=%u", caps, ch, perms ? perms : 0600);
  g_free (caps);
  GstElement *pipe = gst_parse_launch (launch, NULL);
  g_free (launch);
  GstElement *in = gst_bin_get_by_name (GST_BIN (pipe), "in");
  GstElement *sink = gst_bin_get_by_name (GST_BIN (pipe), "sink");
  gst_element_set_state (pipe, GST_STATE_PLAYING);
  GstAllocator *dmabuf = gst_dmabuf_allocator_new (), *fdmem = gst_fd_allocator_new ();
  for (guint i = 0; i < n || endless; i++) {
    guint index = first + i;
    GstBuffer *buf = how == SEND_MIXED && i % 2 ? system_buffer (index)
        : pool_buffer (how == SEND_DMABUF ? dmabuf : NULL, fdmem, pool_base + i % POOL, index);
    if (!buf)
      return 2;
    gsize offset[4] = { layout->offset[0], layout->offset[1] };
    gint stride[4] = { layout->stride[0], layout->stride[1] };
    gst_buffer_add_video_meta_full (buf, GST_VIDEO_FRAME_FLAG_NONE, layout->video_format,
        WIDTH, HEIGHT, layout->n_planes, offset, stride);
    /* a detection, which must reach every consumer with its frame */
    GstVideoRegionOfInterestMeta *roi = gst_buffer_add_video_region_of_interest_meta (buf,
        "face", index % WIDTH, 1, 8, 8);
    gst_video_region_of_interest_meta_add_param (roi, gst_structure_new ("detection",
            "frame", G_TYPE_UINT, index, NULL));
    GST_BUFFER_PTS (buf) = i * GST_SECOND / 30;
    GST_BUFFER_DURATION (buf) = GST_SECOND / 30;
    if (gst_app_src_push_buffer (GST_APP_SRC (in), buf) != GST_FLOW_OK)
      return 3;
  }
  gst_app_src_end_of_stream (GST_APP_SRC (in));
  GstMessage *m = gst_bus_timed_pop_filtered (GST_ELEMENT_BUS (pipe), 30 * GST_SECOND,
      GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  if (!m || GST_MESSAGE_TYPE (m) != GST_MESSAGE_EOS)
    return 4;
  gst_message_unref (m);
  GstStructure *st;
  g_object_get (sink, "stats", &st, NULL);
  guint64 copied = 1, dmabufs = 0, fds = 0, slots = 0;
  gst_structure_get_uint64 (st, "bytes-copied", &copied);
  gst_structure_get_uint64 (st, "records-dmabuf", &dmabufs);
  gst_structure_get_uint64 (st, "records-fd", &fds);
  gst_structure_get_uint64 (st, "records-slot", &slots);
  gst_structure_free (st);
  int rc = 0;
  if (how == SEND_DMABUF && (copied != 0 || dmabufs != n || fds != 0))
    rc = 5;
  /* mixed: the system-memory frames were copied into slots */
  if (how == SEND_MIXED && (fds != (n + 1) / 2 || slots != n / 2 || dmabufs != 0))
    rc = 6;
  if (rc)
    g_printerr ("producer: copied %" G_GUINT64_FORMAT " dmabuf %" G_GUINT64_FORMAT " fd %"
        G_GUINT64_FORMAT " slot %" G_GUINT64_FORMAT "\n", copied, dmabufs, fds, slots);
  gst_element_set_state (pipe, GST_STATE_NULL);
  /* every buffer came back */
  for (guint k = pool_base; k < pool_base + POOL; k++)
    if (g_atomic_int_get (&pool[k].in_use))
      rc = 7;
  gst_object_unref (dmabuf);
  gst_object_unref (fdmem);
  gst_object_unref (in);
  gst_object_unref (sink);
  gst_object_unref (pipe);
  return rc;
}

typedef struct {
  const gchar *ch;
  Send how;
  guint first, n;
  guint pool_base;          /* which of the two pools */
  guint perms;              /* the sink's perms (0: its default) */
  gboolean endless;
  int go;
} Producer;

static int
run_producer (gpointer data)
{
  Producer *p = data;
  pool_base = p->pool_base;
  return produce (p->ch, p->how, p->first, p->n, p->endless, p->perms);
}

/* Forks the producer; it starts when released (start). */
static GPid
fork_producer (Producer *p)
{
  return fork_waiting (run_producer, p, &p->go);
}

static void
start (Producer *p)
{
  release_waiting (p->go);
}

/* ---- consumers ----------------------------------------------------------- */

typedef struct {
  GstElement *pipe, *src, *out;
} Consumer;

static void
consumer_start (Consumer *c, const gchar *ch)
{
  gchar *launch = g_strdup_printf ("datahubsrc name=src channel=%s timeout=20000 ! "
      "appsink name=out sync=false max-buffers=1", ch);
  c->pipe = gst_parse_launch (launch, NULL);
  g_free (launch);
  c->src = gst_bin_get_by_name (GST_BIN (c->pipe), "src");
  c->out = gst_bin_get_by_name (GST_BIN (c->pipe), "out");
  appsink_reads_video_meta (c->out);
  fail_unless (gst_element_set_state (c->pipe, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
}

/* The next frame: checked, and its memory kind and file. */
static guint
consumer_pull (Consumer *c, gboolean want_dmabuf, gboolean want_fd)
{
  GstSample *s = gst_app_sink_try_pull_sample (GST_APP_SINK (c->out), 20 * GST_SECOND);
  fail_unless (s != NULL, "no frame within 20 s");
  GstBuffer *buf = gst_sample_get_buffer (s);
  guint index = check_frame (buf);
  GstVideoRegionOfInterestMeta *roi = gst_buffer_get_video_region_of_interest_meta_id (buf, 0);
  guint said = G_MAXUINT;
  fail_unless (roi && roi->x == index % WIDTH, "frame %u: no detection", index);
  fail_unless (gst_structure_get_uint (gst_video_region_of_interest_meta_get_param (roi,
              "detection"), "frame", &said) && said == index);
  GstMemory *mem = gst_buffer_peek_memory (buf, 0);
  if (want_fd) {
    fail_unless (gst_is_fd_memory (mem), "frame %u: not fd memory", index);
    fail_unless_equals_int (gst_is_dmabuf_memory (mem), want_dmabuf);
    fail_unless (pool_file_of (gst_fd_memory_get_fd (mem)),
        "frame %u: not one of the producer's files", index);
  } else {
    fail_if (gst_is_fd_memory (mem), "frame %u: a slot record as fd memory", index);
  }
  gst_sample_unref (s);
  return index;
}

static void
consumer_free (Consumer *c)
{
  gst_element_set_state (c->pipe, GST_STATE_NULL);
  gst_object_unref (c->src);
  gst_object_unref (c->out);
  gst_object_unref (c->pipe);
}

#define FRAMES 60

static void
dmabuf_frames_cross_without_copies (const Layout *l)
{
  layout = l;
  gchar *ch = channel (l->format);
  make_pool ();
  Producer prod = { .ch = ch, .how = SEND_DMABUF, .first = 0, .n = FRAMES };
  GPid pid = fork_producer (&prod);
  Consumer a, b;
  consumer_start (&a, ch);
  consumer_start (&b, ch);
  /* a third consumer in its own process, syncing to the clock: killed
   * while it holds fd records */
  gchar *slow = g_strdup_printf ("datahubsrc channel=%s ! fakesink sync=true", ch);
  GPid third = spawn_producer (slow);
  g_usleep (G_USEC_PER_SEC / 2); /* registered before the producer starts */
  start (&prod);
  for (guint i = 0; i < FRAMES; i++) {
    fail_unless_equals_int (consumer_pull (&a, TRUE, TRUE), i);
    fail_unless_equals_int (consumer_pull (&b, TRUE, TRUE), i);
    if (i == 10)
      kill (third, SIGKILL);
  }
  child_succeeded (pid);
  fail_unless_equals_int (wait_producer (third), 128 + SIGKILL); /* it ran until killed */
  for (int k = 0; k < 2; k++) {
    GstElement *src = k ? b.src : a.src;
    fail_unless_equals_uint64 (stat_u64 (src, "bytes-copied"), 0);
    fail_unless_equals_uint64 (stat_u64 (src, "records-dmabuf"), FRAMES);
    /* each file crossed once, then came from the cache */
    fail_unless_equals_uint64 (stat_u64 (src, "fds-received"), POOL);
  }
  consumer_free (&a);
  consumer_free (&b);
  free_pool ();
  g_free (slow);
  g_free (ch);
}

GST_START_TEST (test_dmabuf_nv12_frames_cross_without_copies)
{
  dmabuf_frames_cross_without_copies (&nv12);
}
GST_END_TEST;

GST_START_TEST (test_dmabuf_rgba_frames_cross_without_copies)
{
  dmabuf_frames_cross_without_copies (&rgba);
}
GST_END_TEST;

GST_START_TEST (test_mixed_fd_and_slot_records)
{
  layout = &nv12;
  gchar *ch = channel ("mixed");
  make_pool ();
  Producer prod = { .ch = ch, .how = SEND_MIXED, .first = 0, .n = FRAMES };
  GPid pid = fork_producer (&prod);
  Consumer a;
  consumer_start (&a, ch);
  start (&prod);
  for (guint i = 0; i < FRAMES; i++)
    fail_unless_equals_int (consumer_pull (&a, FALSE, i % 2 == 0), i);
  child_succeeded (pid);
  fail_unless_equals_uint64 (stat_u64 (a.src, "records-fd"), FRAMES / 2);
  fail_unless_equals_uint64 (stat_u64 (a.src, "records-slot"), FRAMES / 2);
  consumer_free (&a);
  free_pool ();
  g_free (ch);
}
GST_END_TEST;

GST_START_TEST (test_producer_restart_fd_records)
{
  layout = &nv12;
  gchar *ch = channel ("fdrestart");
  make_pool ();
  Producer first_run = { .ch = ch, .how = SEND_DMABUF, .first = 0, .endless = TRUE };
  GPid pid = fork_producer (&first_run);
  /* forked before any pipeline runs here: a child of a process with
   * GStreamer threads may inherit their locks taken */
  Producer second_run = { .ch = ch, .how = SEND_DMABUF, .first = 1000, .n = 20,
    .pool_base = POOL };
  GPid pid2 = fork_producer (&second_run);
  Consumer a;
  consumer_start (&a, ch);
  start (&first_run);
  for (guint i = 0; i < 10; i++)
    fail_unless_equals_int (consumer_pull (&a, TRUE, TRUE), i);
  kill (pid, SIGKILL);
  waitpid (pid, NULL, 0);
  /* a new producer (a new fd socket): the src reconnects and fetches anew */
  start (&second_run);
  guint index;
  while ((index = consumer_pull (&a, TRUE, TRUE)) < 1000)
    ;
  fail_unless_equals_int (index, 1000);
  for (guint i = 1; i < 20; i++)
    fail_unless_equals_int (consumer_pull (&a, TRUE, TRUE), 1000 + i);
  child_succeeded (pid2);
  fail_unless (stat_u64 (a.src, "fds-received") >= 2 * POOL - 1);
  consumer_free (&a);
  free_pool ();
  g_free (ch);
}
GST_END_TEST;

/* offer-memfd: a gst-launch producer's frames (videotestsrc into the
 * memfd pool the sink offers) arrive as fd memory, as a reference run
 * renders them, with nothing copied. */
GST_START_TEST (test_offered_memfd_pool)
{
  gchar *ch = channel ("memfd");
  const gchar *frames = "videotestsrc pattern=smpte75 num-buffers=30 ! "
      "video/x-raw,format=RGBA,width=100,height=60,framerate=30/1";
  gchar *ref_line = g_strdup_printf ("%s ! appsink name=out", frames);
  GPtrArray *want = collect (ref_line, 30, NULL, NULL);
  /* wait-for-consumer: this test is about memory, not joining */
  gchar *prod = g_strdup_printf ("%s ! datahubsink channel=%s offer-memfd=true "
      "wait-for-consumer=true", frames, ch);
  GPid pid = spawn_producer (prod);
  gchar *cons = g_strdup_printf ("datahubsrc name=src channel=%s timeout=20000 ! "
      "appsink name=out max-buffers=1", ch);
  GstElement *pipe;
  GPtrArray *got = collect (cons, 30, NULL, &pipe);
  assert_same_frames (want, got);
  fail_unless_equals_int (wait_producer (pid), 0);
  GstElement *src = gst_bin_get_by_name (GST_BIN (pipe), "src");
  fail_unless_equals_uint64 (stat_u64 (src, "records-fd"), 30);
  fail_unless_equals_uint64 (stat_u64 (src, "bytes-copied"), 0);
  fail_unless (stat_u64 (src, "fds-received") < 30); /* a pool: files come again */
  gst_element_set_state (pipe, GST_STATE_NULL);
  gst_object_unref (src);
  gst_object_unref (pipe);
  g_ptr_array_unref (want);
  g_ptr_array_unref (got);
  g_free (ref_line);
  g_free (prod);
  g_free (cons);
  g_free (ch);
}
GST_END_TEST;

/* The impostor: another user (datahubtest, when the test runs as root),
 * who cannot read the block, connects to the fd socket @name with a
 * guessed token and asks for fds.  Exit status: 0 = refused and given
 * nothing. */
static int
impostor (const gchar *name, const gchar *block)
{
  struct passwd *pw = getuid () == 0 ? getpwnam ("datahubtest") : NULL;
  if (pw && (setgroups (0, NULL) != 0 || setgid (pw->pw_gid) != 0 || setuid (pw->pw_uid) != 0))
    return 20;
  /* the token is in the block, which this user cannot read */
  if (pw && shm_open (block, O_RDONLY, 0) >= 0)
    return 21;
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  memcpy (sa.sun_path + 1, name, strlen (name));
  socklen_t len = (socklen_t) (offsetof (struct sockaddr_un, sun_path) + 1 + strlen (name));
  /* the wire format of docs/elements.md: 104-byte messages */
  guint32 msg[26] = { 0x44464844u, 1 };       /* HELLO, a guessed (zero) token */
  guint32 get[26] = { 0x44464844u, 3, 0, 0, 1 }; /* GET id 1 without a hello */
  for (int attempt = 0; attempt < 2; attempt++) {
    int fd = socket (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (connect (fd, (struct sockaddr *) &sa, len) != 0)
      return 22;
    guint32 *send_msg = attempt == 0 ? msg : get;
    if (send (fd, send_msg, sizeof msg, 0) != sizeof msg)
      return 23;
    guint32 reply[26];
    char ctl[CMSG_SPACE (sizeof (int))];
    struct iovec iov = { reply, sizeof reply };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
      .msg_controllen = sizeof ctl };
    ssize_t n = recvmsg (fd, &mh, 0);
    if (mh.msg_controllen > 0)
      return 24; /* an fd came */
    /* a hello is answered "refused" and the connection closed; a GET
     * without one only closes it */
    if (attempt == 0 && (n != sizeof reply || reply[1] != 2 || reply[2] != EACCES))
      return 25;
    if (attempt == 1 && n > 0)
      return 26;
    close (fd);
  }
  return 0;
}

/* Another user who cannot read the block gets no fds from its socket,
 * whatever it says; the consumer itself is served. */
GST_START_TEST (test_impostor_gets_no_fds)
{
  layout = &nv12;
  gchar *ch = channel ("impostor");
  make_pool ();
  Producer prod = { .ch = ch, .how = SEND_DMABUF, .first = 0, .endless = TRUE };
  GPid pid = fork_producer (&prod);
  /* forked before any pipeline runs here */
  int ask[2], told[2];
  fail_unless (pipe (ask) == 0 && pipe (told) == 0);
  pid_t imp = fork ();
  if (imp == 0) {
    gchar name[128] = { 0 };
    if (read (ask[0], name, sizeof name - 1) <= 0)
      _exit (10);
    gchar *block = g_strdup_printf ("/datahub.%s", ch);
    int rc = impostor (name, block);
    _exit (write (told[1], &rc, sizeof rc) == sizeof rc ? 0 : 11);
  }
  Consumer a;
  consumer_start (&a, ch);
  start (&prod);
  fail_unless_equals_int (consumer_pull (&a, TRUE, TRUE), 0);
  GstStructure *st;
  g_object_get (a.src, "stats", &st, NULL);
  const gchar *sock = gst_structure_get_string (st, "fd-socket");
  fail_unless (sock != NULL && sock[0] == '@', "no fd-socket in the stats");
  fail_unless (write (ask[1], sock + 1, strlen (sock + 1)) == (ssize_t) strlen (sock + 1));
  gst_structure_free (st);
  int rc = -1;
  fail_unless (read (told[0], &rc, sizeof rc) == sizeof rc);
  fail_unless_equals_int (rc, 0);
  /* the consumer itself still is served */
  for (guint i = 1; i < 10; i++)
    fail_unless_equals_int (consumer_pull (&a, TRUE, TRUE), i);
  kill (pid, SIGKILL);
  waitpid (pid, NULL, 0);
  waitpid (imp, NULL, 0);
  consumer_free (&a);
  remove_channel_objects (ch);
  free_pool ();
  g_free (ch);
}
GST_END_TEST;

/* A consumer of another user (datahubtest; the block readable by all)
 * reads fd records and then tries to write the producer's frames: reopen
 * its fd read-write through /proc, write to it, shrink it.  Exit status:
 * 0 = it read frames and could do none of that. */
static int
other_user_consumer (gpointer data)
{
  const gchar *ch = data;
  struct passwd *pw = getpwnam ("datahubtest");
  if (!pw || setgroups (0, NULL) != 0 || setgid (pw->pw_gid) != 0 || setuid (pw->pw_uid) != 0)
    return 30;
  gchar *launch = g_strdup_printf ("datahubsrc channel=%s timeout=20000 ! appsink name=out "
      "sync=false max-buffers=1", ch);
  GstElement *pipe = gst_parse_launch (launch, NULL);
  g_free (launch);
  GstElement *out = gst_bin_get_by_name (GST_BIN (pipe), "out");
  gst_element_set_state (pipe, GST_STATE_PLAYING);
  int rc = 0;
  for (guint i = 0; i < 5 && rc == 0; i++) {
    GstSample *smp = gst_app_sink_try_pull_sample (GST_APP_SINK (out), 20 * GST_SECOND);
    if (!smp)
      return 31;
    GstMemory *mem = gst_buffer_peek_memory (gst_sample_get_buffer (smp), 0);
    if (!gst_is_fd_memory (mem))
      rc = 32;
    int fd = rc ? -1 : gst_fd_memory_get_fd (mem);
    gchar path[64];
    g_snprintf (path, sizeof path, "/proc/self/fd/%d", fd);
    int rw = fd >= 0 ? open (path, O_RDWR) : -1;
    if (rw >= 0) {
      rc = 33; /* could reopen the producer's frame for writing */
      close (rw);
    } else if (fd >= 0 && (write (fd, "x", 1) == 1 || ftruncate (fd, 0) == 0)) {
      rc = 34;
    }
    gst_sample_unref (smp);
  }
  gst_element_set_state (pipe, GST_STATE_NULL);
  gst_object_unref (out);
  gst_object_unref (pipe);
  return rc;
}

/* perms=0644: another user may read the block and gets fds, read-only
 * ones: it cannot write or shrink the producer's memfds (a memfd is mode
 * 0777, and /proc reopens check only the mode: the sink makes them 0400). */
GST_START_TEST (test_other_user_cannot_write_frames)
{
  if (getuid () != 0 || !getpwnam ("datahubtest")) {
    g_print ("test_other_user_cannot_write_frames: needs root and user datahubtest: skipped\n");
    return;
  }
  layout = &nv12;
  gchar *ch = channel ("rofds");
  make_pool ();
  /* forked before any pipeline runs here */
  int go_consumer;
  GPid consumer = fork_waiting (other_user_consumer, ch, &go_consumer);
  Producer prod = { .ch = ch, .how = SEND_DMABUF, .first = 0, .n = 20, .perms = 0644 };
  GPid pid = fork_producer (&prod);
  release_waiting (go_consumer);
  g_usleep (G_USEC_PER_SEC / 2); /* registered before the producer starts */
  start (&prod);
  child_succeeded (consumer);
  child_succeeded (pid);
  free_pool ();
  g_free (ch);
}
GST_END_TEST;

static Suite *
fd_memory_suite (void)
{
  Suite *s = suite_create ("datahub-fd-memory");
  TCase *tc = tcase_create ("fd");
  tcase_set_timeout (tc, 120);
  tcase_add_test (tc, test_dmabuf_nv12_frames_cross_without_copies);
  tcase_add_test (tc, test_dmabuf_rgba_frames_cross_without_copies);
  tcase_add_test (tc, test_mixed_fd_and_slot_records);
  tcase_add_test (tc, test_producer_restart_fd_records);
  tcase_add_test (tc, test_offered_memfd_pool);
  tcase_add_test (tc, test_impostor_gets_no_fds);
  tcase_add_test (tc, test_other_user_cannot_write_frames);
  suite_add_tcase (s, tc);
  return s;
}

GST_CHECK_MAIN (fd_memory);
