/* Registered enum GTypes for the elements' properties. */
#ifndef DATAHUB_ENUMS_H
#define DATAHUB_ENUMS_H

#include <glib-object.h>

G_BEGIN_DECLS

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

#define DATAHUB_TYPE_POLICY (datahub_policy_get_type ())
#define DATAHUB_TYPE_ON_FULL (datahub_on_full_get_type ())
#define DATAHUB_TYPE_INTEGRITY (datahub_integrity_get_type ())
#define DATAHUB_TYPE_START (datahub_start_get_type ())
#define DATAHUB_TYPE_TIMESTAMP_MODE (datahub_timestamp_mode_get_type ())

G_END_DECLS

#endif
