/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Every meta datahub carries, on a frame of index @index, and the check
 * that a frame has them all (tests/gst/test_metas.c across processes,
 * tests/gst/test_metas_decode.c against the decoder directly). */
#ifndef METAS_FIXTURE_H
#define METAS_FIXTURE_H

#include <gst/gst.h>

#define FIXTURE_WIDTH 64
#define FIXTURE_HEIGHT 48
/* NV12 with 80-byte rows and a 64-byte gap before UV */
#define FIXTURE_STRIDE 80
#define FIXTURE_UV_OFFSET (FIXTURE_STRIDE * FIXTURE_HEIGHT + 64)
#define FIXTURE_FRAME_SIZE (FIXTURE_UV_OFFSET + FIXTURE_STRIDE * FIXTURE_HEIGHT / 2)
#define CUSTOM_META "datahub-test-meta"

/* Registers the custom meta (in every process that adds or reads it). */
void metas_fixture_register (void);
/* The frame's layout as a GstVideoMeta, two regions of interest (one
 * with params), a crop, a time code, a reference timestamp, the custom
 * meta, and a protection meta datahub does not carry. */
void add_metas (GstBuffer *buf, guint index);
/* Fails unless @buf has every carried meta of frame @index (and no
 * protection meta). */
void check_metas (GstBuffer *buf, guint index);

#endif
