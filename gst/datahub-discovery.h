/* Broker support shared by both elements: connecting, and the schema a
 * sink registers for its caps. */
#ifndef DATAHUB_DISCOVERY_H
#define DATAHUB_DISCOVERY_H

#include <gst/gst.h>

#include "datahub-common.h"
#include "datahub/broker.h"

G_BEGIN_DECLS

/* A client of the element's broker property; *out stays NULL when the
 * property is empty.  FALSE (with an element error posted) when the
 * endpoint cannot be used. */
gboolean datahub_discovery_connect (GstElement *element, DatahubCommon *c, dhb_client **out);

/* The schema of @caps as registered with the broker: the media type and,
 * if present, the format ("video/x-raw,format=RGBA").  Resolution and rate
 * may change within one schema; a consumer that expects another format is
 * refused with SCHEMA_MISMATCH.  "" for no caps. */
gchar *datahub_discovery_schema (const GstCaps *caps);

G_END_DECLS

#endif
