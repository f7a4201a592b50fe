#include "datahub-enums.h"

#include "datahub/datahub.h"

#define DEFINE_ENUM(func, name, ...) \
  GType func (void) \
  { \
    static GType type = 0; \
    if (g_once_init_enter (&type)) { \
      static const GEnumValue values[] = { __VA_ARGS__, { 0, NULL, NULL } }; \
      g_once_init_leave (&type, g_enum_register_static (name, values)); \
    } \
    return type; \
  }

DEFINE_ENUM (datahub_policy_get_type, "DatahubPolicy",
    { DH_POLICY_RING, "Every consumer sees every buffer, in order", "ring" },
    { DH_POLICY_SINGLE, "One slot, latest value", "single" },
    { DH_POLICY_DOUBLE, "Two slots, latest value, stable previous frame", "double" })

DEFINE_ENUM (datahub_on_full_get_type, "DatahubOnFull",
    { DH_ON_FULL_BLOCK, "Wait for the slowest non-leaky consumer", "block" },
    { DH_ON_FULL_DROP, "Never wait: reuse the oldest unheld slot", "drop" })

DEFINE_ENUM (datahub_integrity_get_type, "DatahubIntegrity",
    { DH_INTEGRITY_NONE, "No integrity check", "none" },
    { DH_INTEGRITY_CHECKSUM, "BLAKE2b-256 checksum per buffer", "checksum" },
    { DH_INTEGRITY_HMAC, "Keyed BLAKE2b (needs secret)", "hmac" })

DEFINE_ENUM (datahub_start_get_type, "DatahubStart",
    { DH_START_LATEST, "Start with the newest buffer", "latest" },
    { DH_START_OLDEST, "Start with the oldest buffer still available", "oldest" })

DEFINE_ENUM (datahub_timestamp_mode_get_type, "DatahubTimestampMode",
    { DATAHUB_TIMESTAMP_AUTO, "passthrough when not live, clock when live", "auto" },
    { DATAHUB_TIMESTAMP_PASSTHROUGH, "Keep the producer's timestamps and segment",
      "passthrough" },
    { DATAHUB_TIMESTAMP_CLOCK, "Map through the shared monotonic clock", "clock" },
    { DATAHUB_TIMESTAMP_ARRIVAL, "Timestamp on arrival", "arrival" })
