/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Registered enum GTypes for the elements' properties. */
#ifndef DATAHUB_ENUMS_H
#define DATAHUB_ENUMS_H

#include <glib-object.h>

G_BEGIN_DECLS

/* datahubsrc leaky: whether it may hold the producer back. */
typedef enum {
  DATAHUB_LEAKY_AUTO,   /* only a producer that is not live */
  DATAHUB_LEAKY_NO,     /* always: lossless (a recorder) */
  DATAHUB_LEAKY_YES,    /* never: skips and counts what it lost (a preview) */
} DatahubLeaky;

typedef enum {
  DATAHUB_TIMESTAMP_AUTO,
  DATAHUB_TIMESTAMP_PASSTHROUGH,
  DATAHUB_TIMESTAMP_CLOCK,
  DATAHUB_TIMESTAMP_ARRIVAL,
} DatahubTimestampMode;

GType datahub_policy_get_type (void);
GType datahub_on_full_get_type (void);
GType datahub_integrity_get_type (void);
GType datahub_start_get_type (void);
GType datahub_timestamp_mode_get_type (void);
GType datahub_leaky_get_type (void);

#define DATAHUB_TYPE_POLICY (datahub_policy_get_type ())
#define DATAHUB_TYPE_ON_FULL (datahub_on_full_get_type ())
#define DATAHUB_TYPE_INTEGRITY (datahub_integrity_get_type ())
#define DATAHUB_TYPE_START (datahub_start_get_type ())
#define DATAHUB_TYPE_TIMESTAMP_MODE (datahub_timestamp_mode_get_type ())
#define DATAHUB_TYPE_LEAKY (datahub_leaky_get_type ())

G_END_DECLS

#endif
