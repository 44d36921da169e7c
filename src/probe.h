/* probe.h — what one SMTP port really speaks (probe.c), for doctor.
 *
 * A probe opens two connections to a port at once: a "plain" one that
 * waits for the greeting, sends EHLO, and does STARTTLS when offered; and
 * a "tls" one that starts a TLS handshake at once (implicit TLS, RFC 8314).
 * Together they tell what the port speaks whatever the user configured:
 * a TLS handshake that meets "220 ..." is a plain-SMTP port; a plain
 * connection that gets no greeting while the handshake works is a TLS
 * port. Every probe of a run shares one deadline. Not installed. */
#ifndef SMTPKIT_PROBE_H
#define SMTPKIT_PROBE_H

#include "conn.h"

#include <pthread.h>
#include <stdatomic.h>

#define SK_PROBE_MAX_ADDRS 8

/* How far a connection got; the monitor reads it while the leg runs. */
typedef enum sk_leg_phase {
  SK_LEG_IDLE,
  SK_LEG_CONNECTING,
  SK_LEG_HANDSHAKE, /* implicit TLS, or TLS after STARTTLS */
  SK_LEG_GREETING,
  SK_LEG_EHLO,
  SK_LEG_STARTTLS,
  SK_LEG_DONE
} sk_leg_phase;

/* One connection of a probe. */
typedef struct sk_leg {
  bool tls_first; /* the "tls" leg */

  /* shared with the monitor while running */
  atomic_int phase;   /* sk_leg_phase */
  atomic_bool cancel; /* stop as soon as possible */
  pthread_mutex_t fd_lock;
  int fd; /* registered while connected, for cancelling */
  char cancel_reason[160];

  /* results: read them only after sk_probe_run returned */
  bool connected;
  long long t_start, t_end; /* monotonic ms */
  sk_event ev;              /* why the leg stopped early; SK_EV_NONE if not */
  smtpkit_stage ev_stage;
  char detail[256];
  bool cancelled;
  smtpkit_reply greeting; /* code 0: none */
  smtpkit_reply refusal;  /* a reply that ended the leg (EHLO, STARTTLS) */
  smtpkit_stage refusal_stage;
  bool got_caps_before, got_caps_after;
  sk_caps caps_before, caps_after; /* EHLO before / after TLS */
  char ehlo_line[256];             /* first line of the last EHLO reply */
  bool starttls_done;
  bool tls_ok; /* a TLS handshake completed */
  char tls_version[16];
  bool got_peer;
  sk_tls_peer peer;
  bool banner_on_tls;    /* the handshake met a plain SMTP banner */
  char banner_start[64]; /* its first bytes, printable */
  char local_literal[72];
} sk_leg;

typedef struct sk_probe {
  char host[256];
  unsigned port;
  bool asked; /* the user's own port: never stopped early */
  char addrs[SK_PROBE_MAX_ADDRS][64];
  size_t n_addrs;
  sk_event addr_ev; /* SK_EV_DNS when the host did not resolve */
  char addr_error[200];
  sk_leg plain, tls;
} sk_probe;

typedef void (*sk_probe_progress_fn)(void *ctx, size_t index, size_t count,
                                     const sk_probe *p, const char *status,
                                     bool done);

typedef struct sk_probe_conf {
  SSL_CTX *tls_ctx;   /* made with insecure=true: never aborts on the
                         certificate, whose verification is recorded */
  const char *helo;   /* EHLO name; NULL: FQDN or address literal */
  bool insecure;      /* an unverified certificate still counts as fit */
  long long deadline; /* monotonic ms: nothing runs past it */
  smtpkit_transcript_fn transcript;
  void *transcript_ctx;
  sk_probe_progress_fn progress; /* called from the calling thread */
  void *progress_ctx;
} sk_probe_conf;

void sk_probe_init(sk_probe *p, const char *host, unsigned port);
void sk_probe_free(sk_probe *p);

/* Runs every probe concurrently (two threads each) and returns when all
 * are done: by the deadline at the latest. A probe whose host has no
 * address (n_addrs 0) is not run. Once a port is fit for submission,
 * ports still silent get two more seconds, unless asked; a plain
 * connection still waiting for a greeting on a port whose TLS handshake
 * already led to a greeting gets one. */
void sk_probe_run(sk_probe *probes, size_t n, const sk_probe_conf *conf);

/* ---- what a probe shows (no I/O) ---- */

/* What the port speaks: "implicit", "starttls", "plain" or "none". */
const char *sk_probe_mode(const sk_probe *p);

/* Judges the port for submission in one TLS mode (AUTO: the mode the port
 * speaks): fills err with the cause, through the classifier, and its
 * evidence; ok when the greeting, TLS (unless mode NONE), a verified
 * certificate (unless insecure) and, with need_auth, AUTH all work.
 * stage and reply say where it failed. */
void sk_probe_judge(const sk_probe *p, smtpkit_tls_mode mode, bool insecure,
                    bool need_auth, smtpkit_error *err);

/* How far the probe got, 0 (no address) .. 9 (fit for submission): ranks
 * failures by how much they tell. */
int sk_probe_progress(const sk_probe *p, bool insecure);

/* The greeting the server sent first (plain, else over TLS), or NULL. */
const smtpkit_reply *sk_probe_greeting(const sk_probe *p);
/* The EHLO capabilities to show: after TLS when there were any. */
const sk_caps *sk_probe_caps(const sk_probe *p, bool after_tls);
/* The certificate seen (either leg), or NULL. */
const sk_tls_peer *sk_probe_peer(const sk_probe *p, const char **version);

/* Default EHLO name: the FQDN, else the address literal of the local end
 * of the connection; never "localhost". */
void sk_probe_default_helo(const char *local_literal, char *out, size_t cap);

#endif
