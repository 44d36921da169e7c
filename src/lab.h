/* lab.h — the lab server's inside: scenario behaviour (lab_scenarios.def),
 * server-side TLS (tls_server.c) and the sans-I/O pieces of lab.c that the
 * tests reach directly (command-line reader, end-of-data scanner). */
#ifndef SMTPKIT_LAB_H
#define SMTPKIT_LAB_H

#include "internal.h"

#include <openssl/ssl.h>

/* ---- scenarios ---- */

/* What a listener speaks first. */
typedef enum lab_speak {
  LAB_SPEAK_DEFAULT, /* plain listener: SMTP; TLS listener: TLS */
  LAB_SPEAK_SMTP,    /* a plain SMTP greeting */
  LAB_SPEAK_TLS      /* a TLS handshake, then the greeting */
} lab_speak;

/* How a scenario behaves on the wire. Every reply is written with its code
 * and enhanced code as the server sends it; lines are separated by '\n'.
 * Replies may use {ip} (the client's address), {rcpt}, {from}, {user},
 * {helo} and {id} (a per-connection id like Gmail's). NULL means "as a
 * normal submission server would". */
typedef struct lab_behaviour {
  lab_speak plain_speaks, tls_speaks;
  const char *banner;           /* whole greeting reply */
  unsigned greeting_delay_ms;   /* greeting only after this long */
  bool garbage_greeting;        /* binary bytes instead of a greeting */
  bool greeting_closes;         /* close after the greeting (421) */
  bool greeting_refuses;        /* 554 at connect: only QUIT answered 221 */
  bool no_starttls;             /* STARTTLS not advertised nor accepted */
  const char *ehlo_name;        /* first word of the EHLO reply */
  const char *ehlo_nodot_reply; /* to an EHLO/HELO name without a dot; closes */
  unsigned long size_limit;     /* SIZE; 0: 35882577 */
  const char *auth_plain;       /* AUTH mechanisms before TLS; NULL: none */
  const char *auth_tls;         /* after TLS; NULL: all six; "" none */
  const char *tls_first_reply;  /* AUTH/MAIL/RCPT/DATA before TLS */
  const char *auth_cleartext_reply; /* AUTH on a connection without TLS */
  const char *weak_mechs;           /* mechanisms refused at once ... */
  const char *weak_reply;           /* ... with this reply */
  const char *auth_reply;           /* ends every AUTH exchange, any secret */
  const char *password_auth_reply;  /* ends every password AUTH exchange */
  const char *auth_fail_reply;      /* wrong credentials; NULL: RFC 4954 535 */
  const char *login_user;        /* the only user name accepted; NULL: --user */
  bool mail_without_auth;        /* MAIL accepted unauthenticated */
  const char *rcpt_unauth_reply; /* RCPT when not authenticated (relay) */
  const char *mail_reply;        /* MAIL FROM after a successful AUTH */
  const char *rcpt_reply;        /* every RCPT TO */
  bool drop_after_data;          /* close after the end of data, no reply */
} lab_behaviour;

typedef struct lab_scenario_def {
  smtpkit_lab_scenario info;
  lab_behaviour b;
} lab_scenario_def;

const lab_scenario_def *sk_lab_scenario_def(const char *name);

/* ---- lab.c: command lines and message data, without I/O ---- */

#define SK_LAB_MAX_LINE 4096 /* command line, CRLF included */

/* Finds the next command line in buf[0..len). Returns its length without
 * CR LF (*used gets the bytes to consume), -1 when more bytes are needed,
 * -2 when the line is longer than SK_LAB_MAX_LINE. */
long sk_lab_next_line(const char *buf, size_t len, size_t *used);

/* Undoes dot-stuffing (RFC 5321 §4.5.2) and finds CRLF.CRLF, a few bytes
 * at a time: the message is never held whole. */
typedef struct sk_lab_data {
  int state;
  unsigned long long size; /* message bytes so far, after un-stuffing */
} sk_lab_data;

void sk_lab_data_init(sk_lab_data *d);
/* Scans in[0..n): message bytes go to out (at most n of them; *out_n says
 * how many). Returns the input bytes consumed; *done becomes true when the
 * end of data was consumed (the rest of in is the next command). */
size_t sk_lab_data_scan(sk_lab_data *d, const char *in, size_t n, char *out,
                        size_t *out_n, bool *done);

/* ---- tls_server.c ---- */

/* A server TLS context: the certificate from cert_file/key_file, or a new
 * CA and a certificate for localhost, 127.0.0.1 and ::1 signed by it, with
 * the CA written to ca_out (PEM). TLS 1.2 is the minimum. */
SSL_CTX *sk_tls_server_ctx(const char *cert_file, const char *key_file,
                           const char *ca_out, char *err, size_t errlen);

#endif
