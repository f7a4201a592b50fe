/* The datahub plugin: registers datahubsink and datahubsrc. */
#include <gst/gst.h>

#include "gstdatahubsink.h"
#include "gstdatahubsrc.h"

static gboolean
plugin_init (GstPlugin *plugin)
{
  gboolean ok = GST_ELEMENT_REGISTER (datahubsink, plugin);
  ok |= GST_ELEMENT_REGISTER (datahubsrc, plugin);
  return ok;
}

GST_PLUGIN_DEFINE (GST_VERSION_MAJOR, GST_VERSION_MINOR, datahub,
    "Zero-copy buffer exchange between processes through shared memory",
    plugin_init, "0.1.0", "LGPL", "datahub", "datahub")
