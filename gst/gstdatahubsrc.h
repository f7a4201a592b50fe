#ifndef GST_DATAHUB_SRC_H
#define GST_DATAHUB_SRC_H

#include <gst/base/gstpushsrc.h>

G_BEGIN_DECLS

#define GST_TYPE_DATAHUB_SRC (gst_datahub_src_get_type ())
G_DECLARE_FINAL_TYPE (GstDatahubSrc, gst_datahub_src, GST, DATAHUB_SRC, GstPushSrc)
GST_ELEMENT_REGISTER_DECLARE (datahubsrc);

G_END_DECLS

#endif
