/* Helpers of the broker tests: a real datahub-broker process per test on
 * a private endpoint, clients, and a recorder of events. */
#ifndef BROKER_TEST_H
#define BROKER_TEST_H

#include <glib.h>
#include <json-glib/json-glib.h>

#include "../dh_test.h"
#include "datahub/broker.h"

#define HEARTBEAT_MS 100
#define EXPIRY_MS 600
/* how long a test waits for an answer it expects: long, so a loaded
 * machine slows the test down instead of failing it */
#define REPLY_MS 15000
/* how long a test waits for an event it expects */
#define EVENT_MS 15000

/* the broker executable (argv[1] of the tests) */
extern const char *broker_exe;
/* --expiry-ms of the brokers started (the scale scenario wants long) */
extern const char *expiry_arg;
/* more broker options, NULL-terminated */
extern const char *broker_extra_args[8];

typedef struct {
  pid_t pid;
  char dir[128];       /* private (0700): dhb_endpoint_check refuses /tmp itself */
  char endpoint[256];
  char log[256];
} test_broker;

void broker_start (test_broker *b);
void broker_init (test_broker *b, const char *scenario);
void broker_kill (test_broker *b);
/* SIGTERM: must stop cleanly (exit 0) and remove its socket and lock
 * files: only the log is left in its directory. */
void broker_stop (test_broker *b);
dhb_client *client (const test_broker *b);

#define CHECK_ST(expr, want) \
  do { \
    dhb_status st_ = (expr); \
    if (st_ != (want)) { \
      fprintf (stderr, "%s:%d: [%d] %s = %s, expected %s\n", __FILE__, __LINE__, \
          (int) getpid (), #expr, dhb_status_name (st_), dhb_status_name (want)); \
      exit (1); \
    } \
  } while (0)

/* One discovery attempt, repeated only if the broker did not answer in
 * time (a loaded machine): NOT_FOUND and refusals come back at once. */
dhb_status disc_once (dhb_client *c, const char *channel, const uint8_t *secret,
    const char *schema, dhb_discovery *d);
dhb_status reg (dhb_client *c, const char *channel, const char *shm, const char *schema,
    const uint8_t *secret);

/* Events, recorded from a client's event thread. */
typedef struct {
  pthread_mutex_t lock;
  GPtrArray *events;   /* JSON strings */
} event_log;

/* Index of the first event from @from with @name (and @reason, if given). */
int find_event (event_log *l, guint from, const char *name, const char *reason);
int wait_event (event_log *l, guint from, const char *name, const char *reason, unsigned ms);
guint event_count (event_log *l);
/* A copy of event @i (g_free), taken under the log's lock: the event
 * thread may be appending. */
gchar *event_json (event_log *l, guint i);
/* Subscribes @sub to @channel and waits until events arrive (a PUB/SUB
 * subscription takes a moment to reach the publisher): @producer keeps
 * re-registering with a changing schema until one is seen. */
void subscribe_and_sync (dhb_client *sub, dhb_client *producer, const char *channel,
    const char *shm, event_log *l);
/* The same for a producer registered with @secret. */
void subscribe_and_sync_secret (dhb_client *sub, dhb_client *producer, const char *channel,
    const char *shm, const uint8_t *secret, event_log *l);

/* VmRSS of @pid in KiB (0 if unreadable). */
long process_rss_kib (pid_t pid);

#endif
