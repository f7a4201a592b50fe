#include "datahub-discovery.h"

gboolean
datahub_discovery_connect (GstElement *element, DatahubCommon *c, dhb_client **out)
{
  *out = NULL;
  GST_OBJECT_LOCK (element);
  gchar *endpoint = c->broker && *c->broker ? g_strdup (c->broker) : NULL;
  gboolean has_channel = c->channel && *c->channel;
  GST_OBJECT_UNLOCK (element);
  if (!endpoint)
    return TRUE;
  if (!has_channel) {
    GST_ELEMENT_ERROR (element, RESOURCE, SETTINGS,
        ("The broker property is set but the channel is empty."),
        ("the broker finds blocks by channel name"));
    g_free (endpoint);
    return FALSE;
  }
  /* "default": where datahub-broker listens when started without
   * --endpoint ($DATAHUB_BROKER, $XDG_RUNTIME_DIR, else a private
   * directory in $TMPDIR) */
  int rc = dhb_client_new (g_str_equal (endpoint, "default") ? NULL : endpoint, out);
  if (rc != 0) {
    /* why an ipc endpoint is refused (its directory), when that is why */
    char why[512] = "";

    dhb_endpoint_check (endpoint, why, sizeof why);
    GST_ELEMENT_ERROR (element, RESOURCE, SETTINGS,
        ("Cannot use broker endpoint '%s': %s.", endpoint,
            why[0] ? why : g_strerror (-rc)),
        ("endpoints look like ipc:///run/user/1000/datahub-broker.sock or "
            "tcp://127.0.0.1:5555; an ipc socket's directory must not be "
            "writable by others"));
  }
  g_free (endpoint);
  return rc == 0;
}

gchar *
datahub_discovery_schema (const GstCaps *caps)
{
  if (!caps || gst_caps_is_empty (caps) || gst_caps_is_any (caps))
    return g_strdup ("");
  const GstStructure *s = gst_caps_get_structure (caps, 0);
  const gchar *format = gst_structure_get_string (s, "format");
  return format ? g_strdup_printf ("%s,format=%s", gst_structure_get_name (s), format)
      : g_strdup (gst_structure_get_name (s));
}
