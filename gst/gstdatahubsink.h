#ifndef GST_DATAHUB_SINK_H
#define GST_DATAHUB_SINK_H

#include <gst/base/gstbasesink.h>

G_BEGIN_DECLS

#define GST_TYPE_DATAHUB_SINK (gst_datahub_sink_get_type ())
G_DECLARE_FINAL_TYPE (GstDatahubSink, gst_datahub_sink, GST, DATAHUB_SINK, GstBaseSink)
GST_ELEMENT_REGISTER_DECLARE (datahubsink);

G_END_DECLS

#endif
