/* session.h — the SMTP client state machine, without I/O.
 *
 * It is fed complete replies and says what to do next; the bytes to write
 * are left in out, and the redacted transcript lines in shown. client.c
 * does the socket, TLS and body streaming around it. */
#ifndef SMTPKIT_SESSION_H
#define SMTPKIT_SESSION_H

#include "internal.h"
#include "sasl.h"

#define SK_MAX_AUTH_ATTEMPTS 3
#define SK_MAX_MECHS 8

// clang-format off
#define SK_STATES(X)                                                           \
  X(GREETING) X(EHLO) X(HELO) X(STARTTLS) X(AUTH) X(READY) X(MAIL) X(RCPT)     \
  X(DATA) X(ABORT_DOT) X(DOT) X(RSET) X(QUIT) X(CLOSED) X(FAILED)
// clang-format on

typedef enum sk_state {
#define SK_STATE_ENUM(n) SK_ST_##n,
  SK_STATES(SK_STATE_ENUM)
#undef SK_STATE_ENUM
} sk_state;

typedef enum sk_action {
  SK_ACT_WRITE_READ, /* write out (may be empty), then read one reply */
  SK_ACT_STARTTLS,   /* run the TLS handshake, then call sk_sm_tls_done */
  SK_ACT_BODY,       /* stream the message and end-of-data, then read */
  SK_ACT_READY,      /* ready for a transaction (or a transaction ended) */
  SK_ACT_DONE,       /* QUIT answered */
  SK_ACT_FAIL        /* err says why */
} sk_action;

typedef struct sk_sm {
  sk_state state;
  const smtpkit_settings *set;
  char helo[256];
  bool require_tls; /* STARTTLS must happen before anything else */
  bool tls_active;
  sk_caps caps;

  /* authentication */
  char plan[SK_MAX_MECHS][32];
  size_t n_plan, next_mech;
  sk_sasl *sasl;
  char *pending_ir;      /* initial response too long for the AUTH line */
  char oauth_error[256]; /* what a token mechanism's server said */
  char cb_type[16];      /* channel binding available on this TLS session */
  char cb_data[128];     /* its data, base64 */
  char mech[32];
  bool authed;
  smtpkit_auth_attempt attempts[SK_MAX_AUTH_ATTEMPTS];
  size_t n_attempts;

  /* transaction */
  const smtpkit_envelope *env;
  size_t n_rcpt; /* entries in rcpt (env may be gone after a send) */
  bool pipelined;
  size_t rcpt_next;    /* next RCPT to send (unpipelined) */
  size_t rcpt_replies; /* RCPT replies seen */
  size_t accepted;
  smtpkit_rcpt_result *rcpt; /* env->n_to entries */
  bool txn_failed;
  smtpkit_reply data_reply;
  /* One connection, many messages. A transaction refused by a reply (not
   * 421) leaves the connection usable: the next one starts with RSET. */
  bool txn_refused;
  bool mail_after_rset; /* RSET opens the next transaction (see begin) */
  /* The next transaction, whose MAIL/RCPT/DATA went out right after this
   * one's end of data (RFC 2920 §3.1); its replies follow the dot's. */
  const smtpkit_envelope *queued;

  char *banner;         /* greeting text */
  const char *provider; /* provider id, if known (set by the caller) */

  sk_buf out;   /* bytes to write */
  sk_buf shown; /* transcript lines for them, '\n'-terminated */
  smtpkit_error err;
} sk_sm;

const char *sk_state_name(sk_state s);

void sk_sm_init(sk_sm *m, const smtpkit_settings *set, const char *helo,
                bool implicit_tls);
void sk_sm_free(sk_sm *m);
sk_action sk_sm_on_reply(sk_sm *m, const smtpkit_reply *r);
sk_action sk_sm_tls_done(sk_sm *m);
sk_action sk_sm_begin(sk_sm *m, const smtpkit_envelope *env);
sk_action sk_sm_body_sent(sk_sm *m);
/* After the end of data (state DOT): queues the MAIL, RCPT and DATA of the
 * next message in out, to be written before the dot's reply is read. False
 * (nothing queued) without PIPELINING, or when env is over the SIZE limit.
 * The next sk_sm_begin must then be for this same env. */
bool sk_sm_queue_next(sk_sm *m, const smtpkit_envelope *env);
/* Whether sk_sm_begin can start a transaction now: READY, or FAILED after
 * a transaction the server refused (RSET goes first). */
bool sk_sm_can_begin(const sk_sm *m);
/* RSET on its own; READY after its 250. */
sk_action sk_sm_rset(sk_sm *m);
sk_action sk_sm_quit(sk_sm *m);
/* Records a failure that happened outside a reply (socket, TLS). */
sk_action sk_sm_fail_event(sk_sm *m, sk_event ev, const char *detail);
/* The stage a reply in the current state belongs to. */
smtpkit_stage sk_sm_stage(const sk_sm *m);
/* What the classifier should know about this session now. */
sk_context sk_sm_context(const sk_sm *m);

#endif
