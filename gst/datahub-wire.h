/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* How GStreamer data rides in DataBlock records (docs/elements.md, "Wire
 * format"): buffers as payload + descriptor fields, serialized events as
 * text records in order with them, and the stream state (caps, segment) in
 * flexible zone 0 for consumers that join late. */
#ifndef DATAHUB_WIRE_H
#define DATAHUB_WIRE_H

#include <gst/gst.h>

#include "datahub/datahub.h"

G_BEGIN_DECLS

typedef enum {
  DATAHUB_KIND_BUFFER = 0,
  DATAHUB_KIND_EVENT = 1,   /* payload: serialized event, flags: GstEventType */
  DATAHUB_KIND_FD_BUFFER = 2, /* payload: DatahubFdRecord (datahub-fd-channel.h) */
} DatahubKind;

/* Zone 0 holds the stream state; zone 1 the application metadata; zone 2
 * where the fd socket of fd records is (datahub-fd-channel.h). */
#define DATAHUB_ZONE_STREAM 0
#define DATAHUB_ZONE_METADATA 1
#define DATAHUB_ZONE_FD 2
#define DATAHUB_ZONE_FD_SIZE 64
#define DATAHUB_ZONE_STREAM_SIZE (16 * 1024)
#define DATAHUB_ZONE_METADATA_SIZE (16 * 1024)

/* Event names recognised on both sides. */
#define DATAHUB_METADATA_EVENT "datahub-metadata"

/* Upstream requests from a src to the sink (dh_consumer_request kinds). */
typedef enum {
  DATAHUB_REQUEST_KEY_UNIT = 1,   /* a late joiner of an encoded stream */
  DATAHUB_REQUEST_UPSTREAM = 2,   /* a custom upstream event: its structure as text */
} DatahubRequestKind;

/* Does an event of @type cross to consumers (serialized downstream events
 * whose meaning is in their structure: caps, segment, tags, EOS, gap,
 * flush-stop, custom)? */
gboolean datahub_wire_event_carried (GstEventType type);

/* Serializes @event as text (NUL-terminated).  Returns NULL for events that
 * do not cross. */
gchar *datahub_wire_event_to_string (GstEvent *event);
/* Rebuilds an event of type @type from the text; NULL for a type that
 * does not cross or text that does not parse. */
GstEvent *datahub_wire_event_from_string (GstEventType type, const gchar *text);

/* Stream state written to zone 0: "caps-gen\ncaps\nsegment-structure". */
gchar *datahub_wire_state_to_string (guint caps_gen, const GstCaps *caps,
    const GstSegment *segment);
gboolean datahub_wire_state_from_string (const gchar *text, guint *caps_gen,
    GstCaps **caps, GstSegment *segment);

/* A secret property value: 32 hex digits are used as the 16 bytes; any
 * other text is hashed to 16 bytes (BLAKE2b-128). */
void datahub_wire_secret (const gchar *text, guint8 out[DH_SECRET_SIZE]);

G_END_DECLS

#endif
