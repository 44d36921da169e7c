/* conn.h — one network connection: TCP (transport.c) with optional TLS
 * (tls.c). Every wait is bounded by a deadline. */
#ifndef SMTPKIT_CONN_H
#define SMTPKIT_CONN_H

#include "internal.h"

#include <openssl/ssl.h>

typedef struct sk_conn {
  int fd;
  SSL *ssl;               /* non-NULL once TLS is started */
  BIO *rbio, *wbio;       /* memory BIOs: we move every byte ourselves */
  long long deadline;     /* monotonic ms; reads and writes give up after it */
  char local_literal[72]; /* "[127.0.0.1]" / "[IPv6:::1]" for EHLO */
  char peer[72];          /* "127.0.0.1:587" */
  unsigned local_port;
  unsigned char first_raw[16]; /* first bytes received during a handshake */
  size_t first_raw_len;
  bool handshaking;
  char tls_version[16];
  char detail[256]; /* last error, human-readable */
  int verify_error; /* X509_V_* from the last handshake */
} sk_conn;

long long sk_now_ms(void);

void sk_conn_init(sk_conn *c);
/* Resolves host and connects to the first address that answers, all
 * within deadline. Returns SK_EV_NONE on success. */
sk_event sk_conn_open(sk_conn *c, const char *host, unsigned port,
                      long long deadline);
/* > 0 bytes read, 0 at end of stream, -1 on time-out, -2 on error. */
long sk_conn_read(sk_conn *c, char *buf, size_t cap);
bool sk_conn_write(sk_conn *c, const void *p, size_t n);
/* Bytes the peer sent that we have not read yet, without waiting. */
bool sk_conn_has_unread(sk_conn *c);
void sk_conn_close(sk_conn *c);

/* transport.c's raw socket I/O, used by tls.c. */
long sk_raw_read(sk_conn *c, char *buf, size_t cap);
bool sk_raw_write(sk_conn *c, const void *p, size_t n);

/* tls.c */
SSL_CTX *sk_tls_ctx_new(const char *ca_file, bool insecure, char *err,
                        size_t errlen);
/* Runs the client handshake over c. host is checked against the
 * certificate unless insecure. Returns SK_EV_NONE on success. */
sk_event sk_tls_start(sk_conn *c, SSL_CTX *ctx, const char *host,
                      bool insecure);
long sk_tls_read(sk_conn *c, char *buf, size_t cap);
bool sk_tls_write(sk_conn *c, const void *p, size_t n);
void sk_tls_free(sk_conn *c);
/* Channel-binding data for SCRAM-*-PLUS: tls-exporter on TLS 1.3,
 * tls-unique on TLS 1.2. */
bool sk_tls_channel_binding(sk_conn *c, char type[16], char data_b64[128]);

/* The peer's certificate after a completed handshake, and whether it
 * verified. For doctor's probes: a context made with insecure=true and
 * sk_tls_start(..., insecure=false) completes the handshake whatever the
 * certificate, and the result of verifying it (chain and host name) is
 * read here. */
typedef struct sk_tls_peer {
  char subject[256], issuer[256]; /* RFC 2253 text */
  char names[512]; /* subjectAltName: "DNS:a, DNS:b, IP:127.0.0.1" */
  char not_before[32], not_after[32]; /* "2025-01-31T12:00:00Z" */
  bool verified;                      /* chain and host name verified */
  char verify_error[128];             /* "" when verified */
  sk_event verify_event; /* SK_EV_CERT_*, or SK_EV_NONE when verified */
} sk_tls_peer;
bool sk_tls_peer_info(sk_conn *c, sk_tls_peer *out);

#endif
