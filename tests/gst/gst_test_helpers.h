/* Helpers shared by the element tests: producer processes, collecting
 * frames from an appsink, comparing them, and waiting on the bus. */
#ifndef GST_TEST_HELPERS_H
#define GST_TEST_HELPERS_H

#include <gst/gst.h>

typedef struct {
  GstClockTime pts;
  gchar *sha1;
  gsize size;
} Frame;

gchar *frame_sha1 (GstBuffer *buf, GstCaps *caps);
void frame_free (gpointer p);
GPtrArray *collect (const gchar *launch, guint max, GstCaps **caps_out, GstElement **keep);
GPid spawn_producer (const gchar *launch);
gint wait_producer (GPid pid);
/* A channel name unique to this test process. */
gchar *channel (const gchar *what);
/* Removes the channel's objects from /dev/shm: what a test's SIGKILLed
 * producer leaves (a real one's successor would replace them). */
void remove_channel_objects (const gchar *ch);
void assert_same_frames (GPtrArray *want, GPtrArray *got);
guint64 stat_u64 (GstElement *e, const gchar *field);
void run_to_eos (GstElement *pipe);
GstMessage *wait_message (GstElement *pipe, GstMessageType types, GstClockTime timeout);
/* Waits for an error (failing on EOS or after 20 s); returns its text. */
gchar *error_of (GstElement *pipe);

/* A child process forked now (before any pipeline runs in this process:
 * a child of a process with GStreamer threads may inherit their locks
 * taken) that waits until released, then exits with @run (@data)'s
 * return value.  *@go is what releases it. */
GPid fork_waiting (int (*run) (gpointer data), gpointer data, int *go);
void release_waiting (int go);
/* Waits for a child and fails unless it exited with 0. */
void child_succeeded (GPid pid);
/* Makes @appsink answer the ALLOCATION query as a video sink does: it
 * reads GstVideoMeta (appsink itself never says so on 1.22). */
void appsink_reads_video_meta (GstElement *appsink);

/* Two pipelines in this process on one channel: the consumer
 * "datahubsrc name=src channel=CH timeout=20000 SRC_PROPS ! appsink
 * name=out sync=false" is started first, then the producer "appsrc
 * name=in format=time ! datahubsink name=sink channel=CH SINK_PROPS";
 * both PLAYING. */
typedef struct {
  gchar *channel;
  GstElement *cons, *src, *out;
  GstElement *prod, *in, *sink;
} AppPair;

void app_pair_start (AppPair *p, const gchar *what, const gchar *src_props,
    const gchar *sink_props);
/* Both pipelines to NULL (again is harmless). */
void app_pair_stop (AppPair *p);
/* Stops and releases everything. */
void app_pair_free (AppPair *p);

#endif
