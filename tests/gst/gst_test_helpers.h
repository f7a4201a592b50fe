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
void assert_same_frames (GPtrArray *want, GPtrArray *got);
guint64 stat_u64 (GstElement *e, const gchar *field);
void run_to_eos (GstElement *pipe);
GstMessage *wait_message (GstElement *pipe, GstMessageType types, GstClockTime timeout);
/* Waits for an error (failing on EOS or after 20 s); returns its text. */
gchar *error_of (GstElement *pipe);

#endif
