/* gst-check tests of the elements with a real datahub-broker process
 * (DATAHUB_BROKER_EXE): the src finds a producer process by channel name,
 * refusals become clear errors, and streams survive the broker. */
#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>
#include <gst/check/gstcheck.h>
#include <sys/mman.h>
#include <glib/gstdio.h>

#include <signal.h>
#include <sys/wait.h>

#include "datahub/broker.h"
#include "gst_test_helpers.h"

typedef struct {
  GPid pid;
  gchar *dir;       /* private: brokers refuse directories others can write */
  gchar *endpoint;
  const gchar *heartbeat_ms, *expiry_ms;
} Broker;

static void
broker_spawn (Broker *b)
{
  const gchar *exe = g_getenv ("DATAHUB_BROKER_EXE");
  fail_unless (exe != NULL, "DATAHUB_BROKER_EXE is not set");
  const gchar *argv[] = { exe, "--endpoint", b->endpoint, "--heartbeat-ms",
    b->heartbeat_ms ? b->heartbeat_ms : "100", "--expiry-ms",
    b->expiry_ms ? b->expiry_ms : "1000", "--log-level", "warn", NULL };
  GError *err = NULL;
  fail_unless (g_spawn_async (NULL, (gchar **) argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD, NULL,
          NULL, &b->pid, &err), "spawn broker: %s", err ? err->message : "?");
  dhb_client *c;
  fail_unless_equals_int (dhb_client_new (b->endpoint, &c), 0);
  gint64 give_up = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
  while (dhb_request (c, "{\"type\":\"LIST\"}", 200, NULL) != DHB_OK)
    fail_unless (g_get_monotonic_time () < give_up, "the broker did not start");
  dhb_client_free (c);
}

static Broker *
broker_start (const gchar *what)
{
  Broker *b = g_new0 (Broker, 1);
  gchar *tmpl = g_strdup_printf ("dhb-gsttest-%s-XXXXXX", what);
  b->dir = g_dir_make_tmp (tmpl, NULL);
  g_free (tmpl);
  fail_unless (b->dir != NULL);
  b->endpoint = g_strdup_printf ("ipc://%s/broker.sock", b->dir);
  /* what broker=default means in this test process (read once, before
   * any client: each test runs in a process of its own) */
  g_setenv ("DATAHUB_BROKER", b->endpoint, FALSE);
  broker_spawn (b);
  return b;
}

static void
broker_free (Broker *b)
{
  kill (b->pid, SIGTERM);
  fail_unless_equals_int (wait_producer (b->pid), 0);
  g_rmdir (b->dir);
  g_free (b->dir);
  g_free (b->endpoint);
  g_free (b);
}

/* The bus message @name (an element message), skipping others, or NULL. */
static const GstStructure *
wait_element_message (GstElement *pipe, const gchar *name, GstMessage **msg)
{
  gint64 give_up = g_get_monotonic_time () + 20 * G_USEC_PER_SEC;
  while (g_get_monotonic_time () < give_up) {
    GstMessage *m = wait_message (pipe, GST_MESSAGE_ELEMENT | GST_MESSAGE_ERROR, GST_SECOND);
    if (!m)
      continue;
    fail_if (GST_MESSAGE_TYPE (m) == GST_MESSAGE_ERROR, "error while waiting for %s", name);
    const GstStructure *s = gst_message_get_structure (m);
    if (gst_structure_has_name (s, name)) {
      *msg = m;
      return s;
    }
    gst_message_unref (m);
  }
  return NULL;
}

/* The channel is registered at the broker within 10 s: a discovery
 * without secret answers @expect (OK, or AUTH_FAILED for a secured one). */
static gint64
wait_registered (const Broker *b, const gchar *ch, dhb_status expect)
{
  dhb_client *c;
  fail_unless_equals_int (dhb_client_new (b->endpoint, &c), 0);
  dhb_discovery d;
  dhb_status st = dhb_discover (c, ch, NULL, NULL, 10000, &d);
  dhb_client_free (c);
  fail_unless_equals_string (dhb_status_name (st), dhb_status_name (expect));
  return d.pid;
}

static void
pull_frames (GstElement *pipe, guint n, const gchar *when)
{
  GstElement *out = gst_bin_get_by_name (GST_BIN (pipe), "out");
  for (guint i = 0; i < n; i++) {
    GstSample *s = gst_app_sink_try_pull_sample (GST_APP_SINK (out), 20 * GST_SECOND);
    fail_unless (s != NULL, "no frame %u %s", i, when);
    gst_sample_unref (s);
  }
  gst_object_unref (out);
}

/* The src knows only the channel: the broker gives it the producer
 * process's block, and every frame arrives intact. */
GST_START_TEST (test_broker_discovery)
{
  Broker *b = broker_start ("disc");
  gchar *ch = channel ("bdisc");
  const gchar *caps = "video/x-raw,format=RGBA,width=64,height=48";
  gchar *pl = g_strdup_printf ("videotestsrc num-buffers=40 ! %s ! datahubsink broker=%s "
      "channel=%s shm-name=/%s-block wait-for-consumer=true", caps, b->endpoint, ch, ch);
  GPid pid = spawn_producer (pl);
  /* broker=default: the endpoint the broker and the tools use by default
   * ($DATAHUB_BROKER here, set by broker_start) */
  gchar *cl = g_strdup_printf ("datahubsrc broker=default channel=%s "
      "schema=video/x-raw,format=RGBA timeout=20000 ! appsink name=out", ch);
  GstElement *cons = NULL;
  GPtrArray *got = collect (cl, 40, NULL, &cons);
  GstMessage *m;
  const GstStructure *s = wait_element_message (cons, "datahub-discovered", &m);
  fail_unless (s != NULL, "no datahub-discovered message");
  gchar *want_shm = g_strdup_printf ("/%s-block", ch);
  fail_unless_equals_string (gst_structure_get_string (s, "shm-name"), want_shm);
  fail_unless_equals_string (gst_structure_get_string (s, "channel"), ch);
  fail_unless_equals_string (gst_structure_get_string (s, "schema"), "video/x-raw,format=RGBA");
  gint64 producer_pid = 0;
  fail_unless (gst_structure_get_int64 (s, "pid", &producer_pid));
  fail_unless_equals_int64 (producer_pid, pid);
  gst_message_unref (m);
  gchar *ref = g_strdup_printf ("videotestsrc num-buffers=40 ! %s ! appsink name=out", caps);
  GPtrArray *want = collect (ref, 40, NULL, NULL);
  fail_unless_equals_int (wait_producer (pid), 0);
  assert_same_frames (want, got);
  gst_element_set_state (cons, GST_STATE_NULL);
  gst_object_unref (cons);
  g_ptr_array_unref (got);
  g_ptr_array_unref (want);
  g_free (want_shm);
  g_free (ref);
  g_free (pl);
  g_free (cl);
  g_free (ch);
  broker_free (b);
}
GST_END_TEST;

static gchar *
error_of_launch (const gchar *launch)
{
  GstElement *pipe = gst_parse_launch (launch, NULL);
  fail_unless (pipe != NULL);
  gst_element_set_state (pipe, GST_STATE_PLAYING);
  gchar *text = error_of (pipe);
  gst_element_set_state (pipe, GST_STATE_NULL);
  gst_object_unref (pipe);
  return text;
}

/* The broker's refusals: wrong secret, other schema, a second producer. */
GST_START_TEST (test_broker_refusals)
{
  Broker *b = broker_start ("refuse");
  gchar *ch = channel ("brefuse");
  gchar *pl = g_strdup_printf ("videotestsrc is-live=true ! video/x-raw,format=NV12,width=64,"
      "height=48 ! datahubsink broker=%s channel=%s secret=right-secret", b->endpoint, ch);
  GstElement *prod = gst_parse_launch (pl, NULL);
  gst_element_set_state (prod, GST_STATE_PLAYING);
  wait_registered (b, ch, DHB_AUTH_FAILED);

  gchar *cl = g_strdup_printf ("datahubsrc broker=%s channel=%s secret=wrong-secret ! "
      "fakesink", b->endpoint, ch);
  gchar *text = error_of_launch (cl);
  fail_unless (strstr (text, "wrong or missing secret") != NULL, "got: %s", text);
  g_free (text);
  g_free (cl);

  cl = g_strdup_printf ("datahubsrc broker=%s channel=%s secret=right-secret "
      "schema=video/x-raw,format=RGBA ! fakesink", b->endpoint, ch);
  text = error_of_launch (cl);
  fail_unless (strstr (text, "carries 'video/x-raw,format=NV12', not the expected schema")
      != NULL, "got: %s", text);
  g_free (text);
  g_free (cl);

  gchar *rival = g_strdup_printf ("videotestsrc ! video/x-raw,width=64,height=48 ! "
      "datahubsink broker=%s channel=%s shm-name=/%s-other", b->endpoint, ch, ch);
  text = error_of_launch (rival);
  fail_unless (strstr (text, "Another producer is registered") != NULL, "got: %s", text);
  g_free (text);
  g_free (rival);

  /* with the right secret it streams */
  cl = g_strdup_printf ("datahubsrc broker=%s channel=%s secret=right-secret "
      "schema=video/x-raw,format=NV12 ! appsink name=out sync=false", b->endpoint, ch);
  GPtrArray *frames = collect (cl, 10, NULL, NULL);
  fail_unless_equals_int (frames->len, 10);
  g_ptr_array_unref (frames);
  gst_element_set_state (prod, GST_STATE_NULL);
  gst_object_unref (prod);
  g_free (cl);
  g_free (pl);
  g_free (ch);
  broker_free (b);
}
GST_END_TEST;

/* Kill the broker mid-stream: frames keep flowing and the registration
 * comes back when it restarts.  Then kill the producer: the src hears
 * "producer-down", finds the new producer's block through the broker and
 * goes on. */
GST_START_TEST (test_broker_restart)
{
  Broker *b = broker_start ("restart");
  gchar *ch = channel ("brestart");
#define RESTART_PRODUCER "videotestsrc is-live=true ! video/x-raw,format=I420,width=64," \
      "height=48,framerate=100/1 ! datahubsink broker=%s channel=%s shm-name=/%s-%s"
  gchar *pl = g_strdup_printf (RESTART_PRODUCER, b->endpoint, ch, ch, "first");
  GPid pid = spawn_producer (pl);
  gchar *cl = g_strdup_printf ("datahubsrc broker=%s channel=%s timeout=20000 ! "
      "appsink name=out sync=false", b->endpoint, ch);
  GstElement *cons = NULL;
  GPtrArray *before = collect (cl, 20, NULL, &cons);
  fail_unless_equals_int (before->len, 20);

  kill (b->pid, SIGKILL);
  fail_unless_equals_int (wait_producer (b->pid), 128 + SIGKILL);
  pull_frames (cons, 100, "with the broker down");
  broker_spawn (b);
  fail_unless_equals_int64 (wait_registered (b, ch, DHB_OK), pid);
  pull_frames (cons, 20, "after the broker restart");

  /* the producer dies and another one takes over, in another block */
  kill (pid, SIGKILL);
  fail_unless_equals_int (wait_producer (pid), 128 + SIGKILL);
  GstMessage *m;
  const GstStructure *s;
  while ((s = wait_element_message (cons, "datahub-broker-event", &m))
      && g_strcmp0 (gst_structure_get_string (s, "event"), "producer-down") != 0)
    gst_message_unref (m);
  fail_unless (s != NULL, "no producer-down event");
  fail_unless_equals_string (gst_structure_get_string (s, "reason"), "process-exited");
  gst_message_unref (m);
  g_free (pl);
  pl = g_strdup_printf (RESTART_PRODUCER, b->endpoint, ch, ch, "second");
  pid = spawn_producer (pl);
  gchar *second_shm = g_strdup_printf ("/%s-second", ch);
  while ((s = wait_element_message (cons, "datahub-discovered", &m))
      && g_strcmp0 (gst_structure_get_string (s, "shm-name"), second_shm) != 0)
    gst_message_unref (m);
  fail_unless (s != NULL, "the new producer's block was not discovered");
  gint64 discovered_pid = 0;
  gst_structure_get_int64 (s, "pid", &discovered_pid);
  fail_unless_equals_int64 (discovered_pid, pid);
  gst_message_unref (m);
  pull_frames (cons, 20, "from the new producer");

  kill (pid, SIGINT);
  wait_producer (pid);
  gst_element_set_state (cons, GST_STATE_NULL);
  gst_object_unref (cons);
  /* what the killed first producer left (nobody comes after it there) */
  gchar *first = g_strdup_printf ("/%s-first", ch), *first_x = g_strdup_printf ("%s@x", first);
  shm_unlink (first);
  shm_unlink (first_x);
  g_free (first);
  g_free (first_x);
  g_ptr_array_unref (before);
  g_free (second_shm);
  g_free (pl);
  g_free (cl);
  g_free (ch);
  broker_free (b);
}
GST_END_TEST;

/* A handover to larger slots is announced by the broker; the stream goes
 * on through it. */
GST_START_TEST (test_broker_handover)
{
  Broker *b = broker_start ("handover");
  gchar *ch = channel ("bhandover");
  gchar *pl = g_strdup_printf ("appsrc name=in format=time ! datahubsink broker=%s "
      "channel=%s slot-size=4096", b->endpoint, ch);
  GstElement *prod = gst_parse_launch (pl, NULL);
  GstElement *in = gst_bin_get_by_name (GST_BIN (prod), "in");
  GstCaps *caps = gst_caps_from_string ("application/x-test");
  g_object_set (in, "caps", caps, NULL);
  gst_caps_unref (caps);
  gst_element_set_state (prod, GST_STATE_PLAYING);
  wait_registered (b, ch, DHB_OK);
  gchar *cl = g_strdup_printf ("datahubsrc broker=%s channel=%s timeout=20000 ! "
      "appsink name=out sync=false", b->endpoint, ch);
  GstElement *cons = gst_parse_launch (cl, NULL);
  gst_element_set_state (cons, GST_STATE_PLAYING);
  GstMessage *m;
  fail_unless (wait_element_message (cons, "datahub-discovered", &m) != NULL);
  gst_message_unref (m);
  /* the src subscribes in start(): give the subscription time to reach
   * the broker before the event is sent */
  g_usleep (500 * 1000);
  for (guint i = 0; i < 20; i++) {
    gsize size = i < 10 ? 1000 : 20000; /* the 11th needs larger slots */
    GstBuffer *buf = gst_buffer_new_allocate (NULL, size, NULL);
    gst_buffer_memset (buf, 0, (guint8) i, size);
    GST_BUFFER_PTS (buf) = i * GST_MSECOND;
    fail_unless_equals_int (gst_app_src_push_buffer (GST_APP_SRC (in), buf), GST_FLOW_OK);
  }
  const GstStructure *s;
  while ((s = wait_element_message (cons, "datahub-broker-event", &m))
      && g_strcmp0 (gst_structure_get_string (s, "event"), "handover") != 0)
    gst_message_unref (m);
  fail_unless (s != NULL, "no handover event");
  gchar *from = g_strdup_printf ("/datahub.%s", ch);
  gchar *to = g_strdup_printf ("/datahub.%s.h1", ch);
  fail_unless_equals_string (gst_structure_get_string (s, "from"), from);
  fail_unless_equals_string (gst_structure_get_string (s, "shm-name"), to);
  gst_message_unref (m);
  pull_frames (cons, 20, "across the handover");
  gst_app_src_end_of_stream (GST_APP_SRC (in));
  gst_element_set_state (prod, GST_STATE_NULL);
  gst_element_set_state (cons, GST_STATE_NULL);
  gst_object_unref (in);
  gst_object_unref (prod);
  gst_object_unref (cons);
  g_free (from);
  g_free (to);
  g_free (pl);
  g_free (cl);
  g_free (ch);
  broker_free (b);
}
GST_END_TEST;

/* After a broker restart another producer registers the channel first:
 * the sink, whose keep-alive then gets CONFLICT, posts an error naming
 * it.  The heartbeat is long (2 s), so the other one comes first; if the
 * sink still wins a round, the broker restarts again. */
GST_START_TEST (test_broker_squatter)
{
  Broker *b = g_new0 (Broker, 1);
  b->dir = g_dir_make_tmp ("dhb-gsttest-squat-XXXXXX", NULL);
  b->endpoint = g_strdup_printf ("ipc://%s/broker.sock", b->dir);
  b->heartbeat_ms = "2000";
  b->expiry_ms = "4100";
  broker_spawn (b);
  gchar *ch = channel ("bsquat");
  gchar *pl = g_strdup_printf ("videotestsrc is-live=true ! video/x-raw,width=64,height=48 ! "
      "datahubsink broker=%s channel=%s shm-name=/%s-real", b->endpoint, ch, ch);
  GstElement *prod = gst_parse_launch (pl, NULL);
  gst_element_set_state (prod, GST_STATE_PLAYING);
  wait_registered (b, ch, DHB_OK);
  gchar *squat_shm = g_strdup_printf ("/%s-squat", ch);
  dhb_status st = DHB_CONFLICT;
  for (int round = 0; round < 5 && st != DHB_OK; round++) {
    kill (b->pid, SIGKILL);
    fail_unless_equals_int (wait_producer (b->pid), 128 + SIGKILL);
    broker_spawn (b);
    dhb_client *squatter;
    fail_unless_equals_int (dhb_client_new (b->endpoint, &squatter), 0);
    /* registered for a live process that is not this one: the broker's */
    dhb_registration r = { .channel = ch, .shm_name = squat_shm, .pid = b->pid };
    st = dhb_register (squatter, &r, 10000);
    dhb_client_free (squatter);
  }
  fail_unless_equals_string (dhb_status_name (st), "OK");
  gchar *text = error_of (prod);
  gchar *holder = g_strdup_printf ("taken at the broker by another producer (pid %d, block %s)",
      (int) b->pid, squat_shm);
  fail_unless (strstr (text, holder) != NULL, "got: %s", text);
  gst_element_set_state (prod, GST_STATE_NULL);
  gst_object_unref (prod);
  g_free (holder);
  g_free (text);
  g_free (squat_shm);
  g_free (pl);
  g_free (ch);
  broker_free (b);
}
GST_END_TEST;

static Suite *
datahub_broker_suite (void)
{
  Suite *s = suite_create ("datahub-broker-elements");
  TCase *tc = tcase_create ("broker");
  tcase_set_timeout (tc, 120);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_broker_discovery);
  tcase_add_test (tc, test_broker_refusals);
  tcase_add_test (tc, test_broker_restart);
  tcase_add_test (tc, test_broker_handover);
  tcase_add_test (tc, test_broker_squatter);
  return s;
}

GST_CHECK_MAIN (datahub_broker);
