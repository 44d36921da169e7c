/*
 * smtpkit.h — public API of libsmtpkit.
 *
 * libsmtpkit submits e-mail over SMTP (RFC 5321, RFC 6409) with STARTTLS
 * (RFC 3207) or implicit TLS (RFC 8314) and SASL authentication (RFC 4954),
 * and classifies every failure into one cause (smtpkit_cause) with the
 * evidence that shows it: the stage, the server's reply and the TLS or
 * socket error.
 *
 * Handles are opaque. Every exported name starts with smtpkit_.
 */
#ifndef SMTPKIT_H
#define SMTPKIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The shared library exports exactly the declarations in this file. */
#pragma GCC visibility push(default)

#define SMTPKIT_VERSION "0.1.0"

/* Causes (SPEC §3). The order is part of the ABI: append only. */
#define SMTPKIT_CAUSES(X)                                                      \
  X(ok)                                                                        \
  X(dns_failure)                                                               \
  X(connection_refused)                                                        \
  X(connection_timeout)                                                        \
  X(plaintext_on_tls_port)                                                     \
  X(tls_on_plaintext_port)                                                     \
  X(starttls_not_offered)                                                      \
  X(starttls_required)                                                         \
  X(tls_handshake_failed)                                                      \
  X(certificate_untrusted)                                                     \
  X(certificate_name_mismatch)                                                 \
  X(certificate_expired)                                                       \
  X(smtp_intercepted)                                                          \
  X(wrong_endpoint)                                                            \
  X(ehlo_rejected)                                                             \
  X(tls_version_unsupported)                                                   \
  X(server_unavailable)                                                        \
  X(ip_blocked)                                                                \
  X(auth_not_offered)                                                          \
  X(mech_not_supported)                                                        \
  X(no_common_mechanism)                                                       \
  X(mech_too_weak)                                                             \
  X(encryption_required)                                                       \
  X(bad_credentials)                                                           \
  X(wrong_username_format)                                                     \
  X(app_password_required)                                                     \
  X(web_login_required)                                                        \
  X(smtp_auth_disabled)                                                        \
  X(basic_auth_disabled)                                                       \
  X(oauth_token_invalid)                                                       \
  X(account_locked)                                                            \
  X(password_transition_needed)                                                \
  X(rate_limited)                                                              \
  X(sending_quota_exceeded)                                                    \
  X(temporary_auth_failure)                                                    \
  X(auth_required)                                                             \
  X(sender_not_authorized)                                                     \
  X(relay_denied)                                                              \
  X(recipient_rejected)                                                        \
  X(message_too_big)                                                           \
  X(message_rejected)                                                          \
  X(connection_lost)                                                           \
  X(delivery_unknown)                                                          \
  X(protocol_error)                                                            \
  X(unknown)

typedef enum smtpkit_cause {
#define SMTPKIT_CAUSE_ENUM(name) SMTPKIT_CAUSE_##name,
  SMTPKIT_CAUSES(SMTPKIT_CAUSE_ENUM)
#undef SMTPKIT_CAUSE_ENUM
      SMTPKIT_CAUSE_COUNT
} smtpkit_cause;

/* "bad_credentials" etc.; NULL for an out-of-range value. */
const char *smtpkit_cause_name(smtpkit_cause cause);
/* Parses a cause identifier; returns false when it names none. */
bool smtpkit_cause_from_name(const char *name, smtpkit_cause *out);
/* Exit code (sysexits.h) for a cause; a transient failure always gives 75. */
int smtpkit_cause_exit_code(smtpkit_cause cause, bool transient);

/* Where in the session a failure happened (SPEC §4 "stage"). */
typedef enum smtpkit_stage {
  SMTPKIT_STAGE_NONE,
  SMTPKIT_STAGE_CONNECT,
  SMTPKIT_STAGE_GREETING,
  SMTPKIT_STAGE_EHLO,
  SMTPKIT_STAGE_STARTTLS,
  SMTPKIT_STAGE_AUTH,
  SMTPKIT_STAGE_MAIL,
  SMTPKIT_STAGE_RCPT,
  SMTPKIT_STAGE_DATA,
  SMTPKIT_STAGE_QUIT
} smtpkit_stage;

const char *smtpkit_stage_name(smtpkit_stage stage);

/* A complete server reply. text holds every line's text (after the code and
 * the enhanced code) joined with '\n'; it may contain any byte but NUL. */
typedef struct smtpkit_reply {
  int code;          /* 0 when there is no reply */
  char enhanced[16]; /* "5.7.8", or "" when absent */
  char *text;        /* owned by whoever owns the reply; never NULL if code */
} smtpkit_reply;

typedef enum smtpkit_tls_mode {
  SMTPKIT_TLS_AUTO,     /* implicit on 465, STARTTLS required elsewhere */
  SMTPKIT_TLS_STARTTLS, /* STARTTLS required */
  SMTPKIT_TLS_IMPLICIT, /* TLS from the first byte (RFC 8314) */
  SMTPKIT_TLS_NONE      /* no TLS; credentials only if allowed */
} smtpkit_tls_mode;

const char *smtpkit_tls_mode_name(smtpkit_tls_mode mode);

/* Why and where a session failed, with the evidence. */
typedef struct smtpkit_error {
  smtpkit_cause cause;
  bool transient;
  smtpkit_stage stage;
  smtpkit_reply reply;  /* the server's reply, if any (code 0 if none) */
  const char *provider; /* provider id (SPEC §3) or NULL */
  char detail[512];     /* what the client saw: socket or TLS error, etc. */
} smtpkit_error;

/* One AUTH attempt: the mechanism and the server's final reply to it. */
typedef struct smtpkit_auth_attempt {
  char mechanism[32];
  smtpkit_reply reply;
} smtpkit_auth_attempt;

/* Per-recipient result. */
typedef struct smtpkit_rcpt_result {
  const char *address;
  bool accepted;
  smtpkit_reply reply;
} smtpkit_rcpt_result;

/* Callback that returns a secret (password or OAuth2 token) on demand, so it
 * lives in memory only while it is used. It must write at most cap-1 bytes
 * and a NUL into buf and return the length, or -1 on failure. The library
 * wipes buf after use. */
typedef int (*smtpkit_secret_fn)(void *ctx, char *buf, size_t cap);

/* Transcript sink: one line at a time, already redacted. dir is 'C' for
 * client, 'S' for server, '*' for events (TLS, connect). */
typedef void (*smtpkit_transcript_fn)(void *ctx, char dir, const char *line,
                                      size_t len);

typedef struct smtpkit_settings {
  const char *host;
  unsigned port; /* 0: 587, or 465 with implicit TLS */
  smtpkit_tls_mode tls;
  const char *ca_file;        /* extra trust anchors (PEM); NULL for none */
  bool insecure;              /* skip certificate verification */
  const char *helo;           /* EHLO name; NULL: FQDN or address literal */
  unsigned timeout_ms;        /* per network operation; 0: 30000 */
  const char *user;           /* NULL: no authentication */
  smtpkit_secret_fn password; /* password source, or NULL */
  void *password_ctx;
  smtpkit_secret_fn oauth2_token; /* bearer token source, or NULL */
  void *oauth2_token_ctx;
  const char *mechanisms;    /* "SCRAM-SHA-256,PLAIN": restrict and order */
  bool allow_plaintext_auth; /* credentials without TLS */
  smtpkit_transcript_fn transcript;
  void *transcript_ctx;
} smtpkit_settings;

void smtpkit_settings_init(smtpkit_settings *s);

/* A message body source: fills buf with up to cap bytes of RFC 5322 text
 * (any line endings), returns the count, 0 at the end, -1 on error. */
typedef long (*smtpkit_read_fn)(void *ctx, char *buf, size_t cap);

typedef struct smtpkit_envelope {
  const char *from;
  const char *const *to;
  size_t n_to;
  long long size; /* message size for SIZE=, -1 when unknown */
  bool eight_bit; /* declare BODY=8BITMIME */
  bool smtputf8;  /* declare SMTPUTF8 */
} smtpkit_envelope;

/* One connection to a server. */
typedef struct smtpkit_session smtpkit_session;

smtpkit_session *smtpkit_session_new(const smtpkit_settings *settings);
void smtpkit_session_free(smtpkit_session *s);

/* Connects, greets, negotiates TLS and authenticates. Returns true when the
 * session is ready for messages. On false, smtpkit_session_error() says why. */
bool smtpkit_session_open(smtpkit_session *s);

/* Sends one message. Returns true when the server accepted it for at least
 * one recipient (final 250 after the end of data). */
bool smtpkit_session_send(smtpkit_session *s, const smtpkit_envelope *env,
                          smtpkit_read_fn read, void *read_ctx);

/* QUIT and close. Safe to call at any point. */
void smtpkit_session_close(smtpkit_session *s);

const smtpkit_error *smtpkit_session_error(const smtpkit_session *s);

/* What was negotiated (valid after open). */
const char *smtpkit_session_tls_version(const smtpkit_session *s);
const char *smtpkit_session_auth_mechanism(const smtpkit_session *s);
unsigned smtpkit_session_port(const smtpkit_session *s);
smtpkit_tls_mode smtpkit_session_tls_mode(const smtpkit_session *s);
size_t smtpkit_session_auth_attempts(const smtpkit_session *s,
                                     const smtpkit_auth_attempt **out);

/* Results of the last smtpkit_session_send(). */
size_t smtpkit_session_rcpt_results(const smtpkit_session *s,
                                    const smtpkit_rcpt_result **out);
const smtpkit_reply *smtpkit_session_data_reply(const smtpkit_session *s);
/* Queue id from the final reply ("queued as X"), or NULL. */
const char *smtpkit_session_queue_id(const smtpkit_session *s);

/* Wipes len bytes at p in a way the compiler does not remove. */
void smtpkit_wipe(void *p, size_t len);

/* ---- classification and explanation (kb.c, explain.c) ---- */

#define SMTPKIT_ADVICE_MAX_FIX 12
#define SMTPKIT_ADVICE_MAX_REFS 8

/* What a cause means and how to fix it, from the knowledge base: the
 * provider's own steps where the provider is known and has some, else the
 * generic steps of the cause. Every string is static: copy the struct
 * freely, free nothing. */
typedef struct smtpkit_advice {
  smtpkit_cause cause;
  const char *provider;      /* provider id (SPEC §3), or NULL */
  const char *provider_name; /* "Google (Gmail / Workspace)", or NULL */
  const char *summary;       /* one sentence: what the cause means */
  const char *why;  /* why it happens even with correct credentials; "" */
  const char *note; /* what is known of this very reply text, or NULL */
  size_t n_fix;
  const char *fix[SMTPKIT_ADVICE_MAX_FIX]; /* steps, in order */
  size_t n_references;
  const char *references[SMTPKIT_ADVICE_MAX_REFS]; /* URLs, RFC sections */
} smtpkit_advice;

/* One sentence saying what a cause means; "" for an out-of-range value. */
const char *smtpkit_cause_summary(smtpkit_cause cause);

/* Advice for a cause at a provider (provider may be NULL). */
void smtpkit_cause_advice(smtpkit_cause cause, const char *provider,
                          smtpkit_advice *out);

/* Advice for a failure: err's cause and provider, plus what the knowledge
 * base knows of err's reply text (its note and source). This is what send
 * and doctor print under a failure. */
void smtpkit_error_advice(const smtpkit_error *err, smtpkit_advice *out);

/* Display name of a provider id ("microsoft" -> "Microsoft 365 / Exchange
 * Online / Outlook.com"), or NULL when the id is unknown. */
const char *smtpkit_provider_name(const char *id);
/* The id of the i-th provider the knowledge base knows (i from 0), or
 * NULL past the last one. */
const char *smtpkit_provider_id(size_t i);

/* The result of reading a pasted error text. */
typedef struct smtpkit_explanation {
  bool found;          /* an SMTP error reply, an enhanced status code or a
                          known socket/TLS error was found in the text */
  bool reply_found;    /* ... and it was a server reply (code and/or
                          enhanced code), not a client-side error */
  bool success_only;   /* the text holds only success replies (2xx/3xx) */
  smtpkit_cause cause; /* unknown when found is false */
  bool transient;
  smtpkit_stage stage;   /* as far as the text tells; NONE when it does not */
  int code;              /* reply code; 0 when the text has none */
  char enhanced[16];     /* "5.7.8", or "" */
  char text[1024];       /* the reply text (lines joined with '\n'), or the
                            error text recognised; may be cut short */
  const char *server;    /* server program recognised by its banner or
                            wording ("cpanel", "exchange", "postfix"...), or
                            NULL */
  smtpkit_advice advice; /* summary, why, fix steps, references, provider */
} smtpkit_explanation;

/* Finds the SMTP reply inside any pasted text — a bare reply, a multi-line
 * reply, a Python traceback with a bytes repr, a Java, Node.js, .NET, PHP,
 * Go, Ruby exception, curl -v, msmtp or swaks output, a Postfix or Exim log
 * line — or a socket/TLS error text, classifies it and fills out.
 * provider, if not NULL, is the provider the user expects (as with doctor
 * --provider): it selects provider-specific knowledge, and a banner of
 * another server then means smtp_intercepted. Returns out->found. */
bool smtpkit_explain_text(const char *text, size_t len, const char *provider,
                          smtpkit_explanation *out);

/* ---- lab server (lab.c) ---- */

/* A local SMTP server that fails the way a named real-world case fails
 * (SPEC §5): a test double, not a mail server. One thread, poll() over
 * non-blocking sockets; it never blocks on a client. */
typedef struct smtpkit_lab smtpkit_lab;

/* How SPEC §5 checks a scenario, as client settings. */
typedef struct smtpkit_lab_check {
  const char *tool;     /* "doctor" or "send" */
  const char *options;  /* SPEC §5 options, e.g. "--tls none" */
  smtpkit_tls_mode tls; /* --tls (AUTO when not named) */
  bool allow_plaintext_auth;
  const char *mechanisms; /* --auth, or NULL */
  const char *helo;       /* --helo, or NULL */
  unsigned timeout_s;     /* --timeout, or 0 */
  const char *provider;   /* doctor --provider, or NULL */
  bool bad_token;         /* log in with an OAuth2 token the lab refuses */
  unsigned message_size;  /* bytes of the test message; 0: a short one */
} smtpkit_lab_check;

typedef struct smtpkit_lab_scenario {
  const char *name;        /* "bad-credentials" */
  const char *description; /* one line */
  const char *source;      /* where its replies were seen (URL) */
  smtpkit_cause cause;     /* the cause SPEC §5 expects */
  const char *fix;         /* one line: what fixes the case it stands for */
  smtpkit_lab_check check;
} smtpkit_lab_scenario;

/* The scenarios, in SPEC §5 order: index 0 .. count-1. */
size_t smtpkit_lab_scenario_count(void);
const smtpkit_lab_scenario *smtpkit_lab_scenario_at(size_t i);
const smtpkit_lab_scenario *smtpkit_lab_scenario_find(const char *name);

typedef struct smtpkit_lab_options {
  const char *scenario;     /* NULL: "ok" */
  const char *listen;       /* plain listener "ADDR:PORT" (port 0: any free
                               one); NULL: "127.0.0.1:0"; "": none */
  const char *tls_listen;   /* implicit-TLS listener, likewise */
  const char *user;         /* accepted login; NULL: "alice" */
  const char *password;     /* NULL: "correct horse" (a test fixture) */
  const char *token;        /* accepted OAuth2 token; NULL: "good-token" */
  const char *cert_file;    /* PEM certificate (chain) and key; NULL: a CA */
  const char *key_file;     /*   and a localhost certificate are generated */
  const char *ca_out;       /* where the generated CA goes; NULL: a temporary
                               file that smtpkit_lab_free removes */
  const char *maildir;      /* store accepted messages here, or NULL */
  unsigned idle_timeout_ms; /* drop silent clients; 0: 120000 */
  unsigned max_connections; /* 0: 1000 */
  FILE *log;                /* one line per connection event, or NULL */
  const char *mechanisms;   /* mechanisms offered after TLS instead of the
                               scenario's, e.g. "SCRAM-SHA-256-PLUS PLAIN";
                               NULL: the scenario's */
  int tls_max_version;      /* 12: at most TLS 1.2 (tls-unique); 0: any */
} smtpkit_lab_options;

void smtpkit_lab_options_init(smtpkit_lab_options *o);

/* Checks the options and prepares TLS. NULL (with err) on failure. */
smtpkit_lab *smtpkit_lab_new(const smtpkit_lab_options *o, char *err,
                             size_t errlen);
/* Binds the listeners. */
bool smtpkit_lab_start(smtpkit_lab *lab, char *err, size_t errlen);
/* "127.0.0.1:2525" / "[::1]:465" once started; NULL for no listener. */
const char *smtpkit_lab_address(const smtpkit_lab *lab, bool tls);
unsigned smtpkit_lab_port(const smtpkit_lab *lab, bool tls);
/* The CA file clients should trust (--ca-file). */
const char *smtpkit_lab_ca_file(const smtpkit_lab *lab);
/* Waits up to timeout_ms for events and handles them. False once the lab
 * was asked to stop. */
bool smtpkit_lab_run_once(smtpkit_lab *lab, int timeout_ms);
/* Serves until smtpkit_lab_stop(). */
void smtpkit_lab_run(smtpkit_lab *lab);
/* Asks the lab to stop. Async-signal-safe, and callable from any thread. */
void smtpkit_lab_stop(smtpkit_lab *lab);

typedef struct smtpkit_lab_stats {
  unsigned long connections;  /* accepted */
  unsigned long active, peak; /* open now / most at once */
  unsigned long messages;     /* accepted with 250 */
  unsigned long auth_ok, auth_failed;
  unsigned long dropped; /* closed by the lab: hostile, idle, full */
} smtpkit_lab_stats;

/* Read it from the thread that runs the lab (or after it stopped). */
void smtpkit_lab_get_stats(const smtpkit_lab *lab, smtpkit_lab_stats *out);
/* Closes every connection and listener. */
void smtpkit_lab_free(smtpkit_lab *lab);

/* ---- probing and diagnosis (probe.c, doctor.c) ---- */

/* smtpkit_doctor_run() answers "why does sending (or login) fail, and what
 * works?": it finds the server (a host name, or an e-mail address through
 * the knowledge base, DNS SRV (RFC 6186, RFC 8314) and MX records), probes
 * the submission ports concurrently (each both as plain SMTP + STARTTLS
 * and as implicit TLS), checks who answered, logs in once on the best
 * working port, and names one root cause (SPEC §3) with its evidence, the
 * fix, and settings verified on the wire. Probing is bounded by the
 * timeout (+ 2 s) however many ports are silent. */

/* What a TLS handshake on a probed port showed. */
typedef struct smtpkit_tls_info {
  bool ok;           /* a handshake completed */
  char version[16];  /* "TLSv1.3" */
  bool verified;     /* chain and host name verified */
  char error[256];   /* why the handshake failed or did not verify */
  char subject[256]; /* RFC 2253 text */
  char issuer[256];
  char names[512];    /* subjectAltName: "DNS:a, IP:127.0.0.1" */
  char not_after[32]; /* "2026-01-31T12:00:00Z" */
} smtpkit_tls_info;

/* One probed port. Strings belong to the report. */
typedef struct smtpkit_probe {
  const char *host;
  unsigned port;
  const char *mode; /* what it speaks: "starttls", "implicit",
                       "plain" (no TLS offered) or "none" */
  bool reachable;   /* a TCP connection was accepted */
  long long elapsed_ms;
  smtpkit_reply greeting; /* the first greeting seen; code 0: none */
  smtpkit_tls_info tls;
  const char *auth_before_tls; /* " PLAIN LOGIN " (EHLO before TLS) */
  const char *auth_after_tls;  /* after STARTTLS / on implicit TLS */
  const char *extensions;      /* EHLO keywords, '\n'-separated */
  const char *ehlo_name;       /* first word of the EHLO reply */
  bool tls_met_banner;         /* a TLS handshake met a plain SMTP banner */
  bool no_plain_greeting;      /* a plain connection got no greeting */
  smtpkit_error result;        /* ok when fit for submission, else why not */
} smtpkit_probe;

/* Where the diagnosis looked. */
typedef struct smtpkit_doctor_target {
  const char *input;    /* what the user gave */
  const char *host;     /* the server probed */
  const char *provider; /* provider id (SPEC §3) expected there, or NULL */
  const char *source;   /* "input", "provider-db", "srv", "mx" or "guess"
                           (smtp.DOMAIN / mail.DOMAIN); NULL: none found */
  size_t n_lookups;     /* what the look-ups found, one line each */
  const char *const *lookups;
} smtpkit_doctor_target;

/* The login, if one was tried. */
typedef struct smtpkit_doctor_auth {
  bool attempted;
  const char *host;
  unsigned port;
  smtpkit_tls_mode tls;
  const char *mechanism; /* the last mechanism tried, or NULL */
  bool ok;
  smtpkit_reply reply; /* the server's final reply to it */
  size_t n_attempts;   /* every AUTH exchange, all sessions */
  const smtpkit_auth_attempt *attempts;
  const char *skipped; /* why no login was tried, or NULL */
} smtpkit_doctor_auth;

/* The test message of --send-test. */
typedef struct smtpkit_doctor_send_test {
  bool attempted, ok;
  const char *from, *to;
  smtpkit_reply reply; /* the reply that refused it, or the final 250 */
  const char *queue_id;
} smtpkit_doctor_send_test;

/* A configuration that was verified on the wire. */
typedef struct smtpkit_doctor_endpoint {
  const char *host;
  unsigned port;
  smtpkit_tls_mode tls;       /* STARTTLS or IMPLICIT */
  const char *auth_mechanism; /* the one that logged in; NULL: not tried */
  const char *helo;           /* EHLO name that worked, when the user's
                                 did not; else NULL */
} smtpkit_doctor_endpoint;

/* Live progress of a probe: index of count, status text; done once. */
typedef void (*smtpkit_progress_fn)(void *ctx, size_t index, size_t count,
                                    const char *host, unsigned port,
                                    const char *status, bool done);

typedef struct smtpkit_doctor_options {
  const char *input; /* "HOST", "HOST:PORT", "[V6]:PORT" or "user@domain";
                        NULL: settings.host */
  /* host: when input is NULL; port 0: probe 587, 465, 25 and 2525 (else
   * only that port, and the provider's own ports); tls AUTO with port 0:
   * whatever works, else the mode evaluated on the user's port;
   * timeout_ms 0: 8000, the bound of the whole probing; user and a secret
   * source: log in once; transcript: every connection, tagged. */
  smtpkit_settings settings;
  const char *provider;         /* provider id the user expects, or NULL */
  const char *dns_server;       /* "ADDR[:PORT]" for SRV, MX and addresses */
  bool no_auth;                 /* probe only */
  bool try_all_mechanisms;      /* one login per offered mechanism */
  const char *send_test_to;     /* after a login, submit a test message */
  const char *send_test_from;   /* NULL: the user name if it is an address */
  smtpkit_progress_fn progress; /* called from the calling thread */
  void *progress_ctx;
  /* The lock-out guard: asked before each login (false, with why, holds
   * the secret back), and told each outcome. Either may be NULL. */
  bool (*may_login)(void *ctx, const char *host, unsigned port, char *why,
                    size_t why_cap);
  void (*login_done)(void *ctx, const char *host, unsigned port,
                     const smtpkit_error *err, bool ok);
  void *login_ctx;
} smtpkit_doctor_options;

void smtpkit_doctor_options_init(smtpkit_doctor_options *o);

typedef struct smtpkit_doctor_report smtpkit_doctor_report;

/* Runs the diagnosis. NULL only when out of memory. */
smtpkit_doctor_report *smtpkit_doctor_run(const smtpkit_doctor_options *o);
void smtpkit_doctor_report_free(smtpkit_doctor_report *r);

/* The root cause: cause, transient, stage, reply, provider, detail. */
const smtpkit_error *smtpkit_doctor_error(const smtpkit_doctor_report *r);
/* Exit code for it (SPEC §2); 0 when the diagnosis is ok. */
int smtpkit_doctor_exit_code(const smtpkit_doctor_report *r);
/* What on the wire shows it, one observation per string. */
size_t smtpkit_doctor_evidence(const smtpkit_doctor_report *r,
                               const char *const **out);
/* Summary and fix steps (provider-specific where known). */
void smtpkit_doctor_advice(const smtpkit_doctor_report *r, smtpkit_advice *out);
const smtpkit_doctor_target *
smtpkit_doctor_target_of(const smtpkit_doctor_report *r);
size_t smtpkit_doctor_probes(const smtpkit_doctor_report *r,
                             const smtpkit_probe **out);
const smtpkit_doctor_auth *
smtpkit_doctor_auth_of(const smtpkit_doctor_report *r);
const smtpkit_doctor_send_test *
smtpkit_doctor_send_test_of(const smtpkit_doctor_report *r);
/* The verified configuration; false when none was verified. */
bool smtpkit_doctor_recommended(const smtpkit_doctor_report *r,
                                smtpkit_doctor_endpoint *out);
/* The user name the verified login used, or NULL. */
const char *smtpkit_doctor_user(const smtpkit_doctor_report *r);
/* The CA file given (to repeat in settings snippets), or NULL. */
const char *smtpkit_doctor_ca_file(const smtpkit_doctor_report *r);
size_t smtpkit_doctor_warnings(const smtpkit_doctor_report *r,
                               const char *const **out);
long long smtpkit_doctor_elapsed_ms(const smtpkit_doctor_report *r);

/* ---- batch sending (batch.c) ---- */

/* One connection, many messages (client.c). smtpkit_session_send may be
 * called again and again on an open session:
 *  - after a message was accepted, for the next one;
 *  - after a transaction the server refused with a reply (to MAIL, RCPT,
 *    DATA or the end of data; not 421): the next call sends RSET first, in
 *    the same group as the next MAIL when the server offers PIPELINING.
 * The results (smtpkit_session_rcpt_results, _data_reply, _queue_id,
 * _error) are those of the last call; recipient addresses point into the
 * envelope it was given. */

/* True when another smtpkit_session_send can work on this connection.
 * False before open, after 421, a lost connection, a time-out or a
 * protocol error: close the session and open a new one. */
bool smtpkit_session_ready(const smtpkit_session *s);

/* Sends RSET now (smtpkit_session_send does it itself when needed). False
 * when the session is not ready or the server refused RSET. */
bool smtpkit_session_reset(smtpkit_session *s);

/* smtpkit_session_send, and when the server offers PIPELINING, the MAIL,
 * RCPT and DATA commands of next go out right after this message's end of
 * data, without waiting for its reply (RFC 2920 §3.1: message content may
 * be the first command of a group): one round trip per message, not two.
 * next (NULL: none) must stay valid and unchanged until it is sent. When it
 * was pipelined, the next call on this session must send that same
 * envelope (same pointer); smtpkit_session_close may be called instead: it
 * then drops the connection without QUIT, and the server discards the
 * pipelined transaction. A message counts as sent only after the final 250
 * to its own end of data. */
bool smtpkit_session_send_next(smtpkit_session *s, const smtpkit_envelope *env,
                               smtpkit_read_fn read, void *read_ctx,
                               const smtpkit_envelope *next);

/* Many messages over one or more connections, with reconnection. */

typedef struct smtpkit_batch_message {
  smtpkit_envelope env;
  smtpkit_read_fn read; /* the message from its first byte */
  void *read_ctx;
} smtpkit_batch_message;

/* What happened to one message; pointers are valid during the callback. */
typedef struct smtpkit_batch_result {
  size_t index;
  bool sent; /* the final 250 to its end of data came */
  /* Why not, or which recipients were refused: cause ok when it went to
   * every recipient. delivery_unknown: the end of data was sent and no
   * reply came, so it may have been delivered; it is not sent again. */
  const smtpkit_error *error;
  size_t n_rcpt;
  const smtpkit_rcpt_result *rcpt; /* per recipient, as far as known */
  const smtpkit_reply *data_reply; /* reply to its end of data, or NULL */
  const char *queue_id;            /* from that reply, or NULL */
  unsigned attempts;   /* connections that tried it (0: never tried) */
  unsigned connection; /* which connection: 0 .. connections-1 */
  const smtpkit_session *session; /* TLS, AUTH, auth attempts; or NULL */
} smtpkit_batch_result;

typedef struct smtpkit_batch {
  size_t count;            /* messages 0 .. count-1 */
  unsigned connections;    /* parallel connections; 0: 1 */
  unsigned max_attempts;   /* per message, across reconnections; 0: 3 */
  unsigned max_reconnects; /* connection failures in a row; 0: 3 */
  /* Prepares message i, from its first byte (again when it is retried
   * after a reconnection). False when it cannot be read: err says why, and
   * it is reported failed. */
  bool (*open)(void *ctx, size_t i, smtpkit_batch_message *out,
               smtpkit_error *err);
  /* Done with message i: one call per successful open. */
  void (*close)(void *ctx, size_t i, smtpkit_batch_message *m);
  /* Exactly once per message, in completion order, never two at once. */
  void (*result)(void *ctx, const smtpkit_batch_result *r);
  void *ctx;
} smtpkit_batch;

/* Sends every message of the batch: each connection takes the next
 * message from a shared queue and pipelines the one after it. When a
 * connection ends (421, closed, time-out), it reconnects and resumes with
 * the message it was sending; a message is tried on at most max_attempts
 * connections, a connection that fails max_reconnects times in a row (or
 * once, permanently: bad credentials, certificates) gives up, and when the
 * last one gives up every message left is reported failed with its error.
 * With several connections, open and close run on several threads at once
 * (for different messages). Returns how many messages were sent. */
size_t smtpkit_batch_send(const smtpkit_settings *settings,
                          const smtpkit_batch *batch);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif
