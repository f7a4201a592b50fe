/* datahub broker client: find a channel's shared memory by name, keep a
 * registration alive, and follow lifecycle events.
 *
 * The broker is the control plane only.  Once a consumer has attached, the
 * data flows through shared memory whether or not the broker is running.
 *
 * A client is thread-safe: a keep-alive thread, an event thread and any
 * number of caller threads can share it.  The background threads have
 * their own sockets, so a caller never waits for their network I/O.
 * Every call takes a timeout in milliseconds.
 *
 *   dhb_client *c;
 *   dhb_client_new (NULL, &c);                 // the default endpoint
 *   dhb_discovery d;
 *   if (dhb_discover (c, "cam0", secret, NULL, 2000, &d) == DHB_OK)
 *     attach to d.shm_name with the datahub library;
 *   dhb_client_free (c);
 *
 * Messages and events are specified in docs/broker.md. */
#ifndef DATAHUB_BROKER_H
#define DATAHUB_BROKER_H

#include <stdint.h>

#include "datahub/datahub.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  DHB_OK = 0,
  DHB_NOT_FOUND,        /* no live producer on the channel / unknown client */
  DHB_CONFLICT,         /* another live producer serves the channel */
  DHB_SCHEMA_MISMATCH,  /* the producer's schema is not the expected one */
  DHB_AUTH_FAILED,      /* wrong or missing secret */
  DHB_BAD_REQUEST,      /* the broker refused the request as malformed */
  DHB_TIMEOUT,          /* no reply in time (broker down or busy) */
  DHB_ERROR,            /* local failure (see dhb_client_last_error) */
} dhb_status;

/* "OK", "NOT_FOUND", ... as on the wire ("TIMEOUT", "ERROR" for the local
 * ones). */
DH_API const char *dhb_status_name (dhb_status status);

/* ipc://$XDG_RUNTIME_DIR/datahub-broker.sock, or, without
 * XDG_RUNTIME_DIR, ipc://${TMPDIR:-/tmp}/datahub-<uid>/broker.sock (a
 * directory of mode 0700 created for it); the DATAHUB_BROKER environment
 * variable overrides both.  Read from the environment once. */
DH_API const char *dhb_default_endpoint (void);

/* Whether @endpoint is safe to bind or connect: an ipc socket in the
 * default directories needs a directory owned by this user with no access
 * for others (the fallback directory is created, mode 0700, if missing);
 * any other ipc socket a directory nobody else can write.  Abstract
 * sockets (ipc://@...) are refused.  Other transports pass (tcp is open
 * to every local user, docs/security.md).  Returns 0, or -errno with the
 * reason in @why (if given). */
DH_API int dhb_endpoint_check (const char *endpoint, char *why, size_t len);

typedef struct dhb_client dhb_client;

/* Connects to @endpoint (NULL: dhb_default_endpoint()) after
 * dhb_endpoint_check (-EPERM, -ENOTDIR... when it fails).  Connecting does
 * not wait for the broker: requests time out if it is not there.
 * Returns 0 or -errno. */
DH_API int dhb_client_new (const char *endpoint, dhb_client **out);
/* Stops the keep-alive and event threads, sends nothing more. */
DH_API void dhb_client_free (dhb_client *client);
/* This client's id, unique per process and client ("<pid>-<128 random
 * bits in hex>"): only its holder can heartbeat or deregister what it
 * registered. */
DH_API const char *dhb_client_id (const dhb_client *client);
/* The broker's error text of the last refused request made by a caller
 * (not by the keep-alive thread, see dhb_client_watch_registration), or a
 * local error; copied into @buf. */
DH_API void dhb_client_last_error (dhb_client *client, char *buf, size_t len);

/* One request: @json must be a JSON object; an integer "id" is added to
 * match the reply.  On DHB_OK..DHB_BAD_REQUEST *@reply (if given) is the
 * broker's reply (free()).  Used by the typed calls below and by tools. */
DH_API dhb_status dhb_request (dhb_client *client, const char *json, int timeout_ms,
    char **reply);

typedef struct {
  const char *channel;
  const char *shm_name;        /* the block consumers attach to */
  const char *schema;          /* NULL or "" for none */
  const uint8_t *secret;       /* DH_SECRET_SIZE bytes, or NULL */
  int64_t pid;                 /* 0: this process */
} dhb_registration;

/* REG.  Registering again with the same client updates the entry (a new
 * shm name is announced as a handover).  With a secret the broker gets
 * the channel's public key and a signature of the location, never the
 * secret (docs/broker.md "Secrets").  On DHB_CONFLICT the error text
 * names the producer holding the channel (unless it registered with a
 * secret this registration does not have). */
DH_API dhb_status dhb_register (dhb_client *client, const dhb_registration *reg,
    int timeout_ms);

/* DEREG of the producer (@consumer 0) or of this consumer (1); the
 * keep-alive of that registration stops. */
DH_API dhb_status dhb_deregister (dhb_client *client, const char *channel, int consumer,
    int timeout_ms);

/* HB of the producer (@consumer 0) or of this consumer (1). */
DH_API dhb_status dhb_heartbeat (dhb_client *client, const char *channel, int consumer,
    int timeout_ms);

typedef struct {
  char channel[256];
  char shm_name[DH_NAME_MAX + 1];
  char schema[4097];
  char schema_hash[65];
  int64_t pid;
  int secured;                 /* the location is signed by a holder of the secret */
  unsigned heartbeat_ms, expiry_ms;
  char events[512];            /* the broker's PUB endpoint */
} dhb_discovery;

/* DISC, retried with exponential backoff (10 ms doubling up to 500 ms)
 * while the answer is NOT_FOUND or TIMEOUT, until @timeout_ms has passed
 * (0: one attempt).  @expected_schema (or NULL) makes a different schema
 * SCHEMA_MISMATCH.  The consumer is noted by the broker under this
 * client's id.
 *
 * With @secret the client answers the broker's challenge (a signature of
 * its nonce, good for this channel and client id only) and accepts only
 * a location signed with the channel's key derived from the secret: an
 * unsecured registration, or one signed with another secret, gives
 * DHB_AUTH_FAILED, whatever the broker says. */
DH_API dhb_status dhb_discover (dhb_client *client, const char *channel,
    const uint8_t *secret, const char *expected_schema, int timeout_ms,
    dhb_discovery *out);

/* Starts a thread that heartbeats every heartbeat_ms the broker asked for
 * (at most 60 s, and at most a third of its expiry;
 * each request waits at most min(heartbeat, 1 s)).  With @reg (a
 * producer) it re-registers whenever the broker has forgotten it (a
 * broker restart); without (a consumer of @channel) it heartbeats as a
 * consumer, and discovers the channel again (with the secret of the last
 * dhb_discover of it) when the broker no longer counts it.  One keep-alive
 * per client.  Returns 0 or -errno. */
DH_API int dhb_client_keep_alive (dhb_client *client, const dhb_registration *reg,
    const char *channel);
/* Replaces the registration of the keep-alive thread, which sends it to
 * the broker at once.  Never waits for the network (a handover or a schema
 * change on a streaming thread): it copies @reg and wakes the thread.
 * -EINVAL without a producer keep-alive. */
DH_API int dhb_client_update_registration (dhb_client *client, const dhb_registration *reg);

/* What became of the keep-alive's registration. */
typedef struct {
  const char *channel;
  dhb_status status;          /* DHB_OK: registered (again); otherwise the
                               * refusal: DHB_CONFLICT when another producer
                               * took the channel (after a broker restart, or
                               * two producers started while it was down) */
  int64_t holder_pid;         /* DHB_CONFLICT: the producer holding the channel,
                               * 0 if the broker withheld it (that producer
                               * registered with a secret we do not prove) */
  const char *holder_shm_name;/* its block, "" if withheld */
  const char *error;          /* the broker's text */
} dhb_registration_event;

/* Calls @fn, from the keep-alive thread, each time the producer
 * registration changes between registered and refused (a broker that does
 * not answer changes nothing: the registration is retried).  The
 * registration starts as registered.  Set it before or after
 * dhb_client_keep_alive; NULL stops the calls. */
typedef void (*dhb_registration_fn) (const dhb_registration_event *event, void *user_data);
DH_API void dhb_client_watch_registration (dhb_client *client, dhb_registration_fn fn,
    void *user_data);

/* A lifecycle event, valid during the callback.  Strings the event does
 * not carry are "".  Events of a secured channel carry only event,
 * channel and reason: anyone may subscribe, so they never say where the
 * block is (discover it again to learn). */
typedef struct {
  const char *event;      /* producer-up, producer-down, handover,
                           * schema-changed, consumer-drop */
  const char *channel;
  const char *shm_name;   /* the producer's block (the new one on handover) */
  const char *schema;
  const char *reason;     /* producer-down: deregistered, expired,
                           * process-exited, replaced; consumer-drop: left,
                           * expired */
  const char *from;       /* handover: the previous block */
  const char *client_id;  /* consumer-drop: the consumer */
  int64_t pid;            /* the producer's */
  const char *json;       /* the whole event as sent (docs/broker.md) */
} dhb_event;

/* Events of @channel: @fn is called from the client's event thread.  The
 * endpoint is asked from the broker, so this works before the broker is
 * up, and follows a restarted broker.  One subscription per client. */
typedef void (*dhb_event_fn) (const dhb_event *event, void *user_data);
DH_API int dhb_client_subscribe (dhb_client *client, const char *channel, dhb_event_fn fn,
    void *user_data);

#ifdef __cplusplus
}
#endif

#endif /* DATAHUB_BROKER_H */
