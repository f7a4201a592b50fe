/* SPDX-License-Identifier: LGPL-2.1-or-later */
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
    { DH_POLICY_DOUBLE, "Two slots, latest value: a reader copying the newest is rarely overtaken", "double" })

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

/* "true"/"false" keep the boolean spelling of earlier versions working */
DEFINE_ENUM (datahub_leaky_get_type, "DatahubLeaky",
    { DATAHUB_LEAKY_AUTO, "Hold back a producer that is not live, never a live one", "auto" },
    { DATAHUB_LEAKY_NO, "Always hold the producer back: lose nothing (a recorder)", "no" },
    { DATAHUB_LEAKY_YES, "Never hold the producer back: skip ahead when lagging (a preview)",
      "yes" },
    { DATAHUB_LEAKY_NO, "Same as no", "false" },
    { DATAHUB_LEAKY_YES, "Same as yes", "true" })

DEFINE_ENUM (datahub_timestamp_mode_get_type, "DatahubTimestampMode",
    { DATAHUB_TIMESTAMP_AUTO, "clock when this src is live, else passthrough", "auto" },
    { DATAHUB_TIMESTAMP_PASSTHROUGH, "The producer's timestamps, the segment moved so the "
      "first buffer after each (re)attach plays now", "passthrough" },
    { DATAHUB_TIMESTAMP_CLOCK, "Map through the shared monotonic clock", "clock" },
    { DATAHUB_TIMESTAMP_ARRIVAL, "Timestamp on arrival", "arrival" })
