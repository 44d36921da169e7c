/* internal.h — declarations shared inside libsmtpkit; not installed. */
#ifndef SMTPKIT_INTERNAL_H
#define SMTPKIT_INTERNAL_H

#include "smtpkit.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#define SK_UNUSED(x) ((void)(x))

/* ---- util.c: growable byte buffer and small string helpers ---- */

typedef struct sk_buf {
  char *data;
  size_t len, cap;
} sk_buf;

bool sk_buf_reserve(sk_buf *b, size_t extra);
bool sk_buf_append(sk_buf *b, const void *p, size_t n);
bool sk_buf_appendf(sk_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void sk_buf_consume(sk_buf *b, size_t n);
/* Frees the buffer; wipes it first, since buffers may hold secrets. */
void sk_buf_free(sk_buf *b);

char *sk_strdup(const char *s);
char *sk_strndup(const char *s, size_t n);
bool sk_has_ctl_breaks(const char *s); /* CR, LF present */
int sk_strcasecmp_ascii(const char *a, const char *b);
/* Case-insensitive (ASCII) substring search within n bytes of hay. */
const char *sk_memcasestr(const char *hay, size_t n, const char *needle);
size_t sk_strlcpy(char *dst, const char *src, size_t cap);

/* Base64 (RFC 4648) without line breaks. Returns malloc'd NUL-terminated
 * text / bytes; decode returns NULL on malformed input. */
char *sk_base64_encode(const void *p, size_t n);
unsigned char *sk_base64_decode(const char *s, size_t n, size_t *out_len);

/* ---- reply.c: sans-I/O SMTP reply parser (RFC 5321 §4.2, RFC 3463) ---- */

#define SK_REPLY_MAX_LINE 4096  /* bytes per reply line, CRLF included */
#define SK_REPLY_MAX_LINES 256  /* lines per multi-line reply */
#define SK_REPLY_MAX_TEXT 65536 /* text bytes per reply */

typedef struct sk_reply_parser {
  sk_buf in;   /* bytes received, not yet parsed */
  sk_buf text; /* text of the reply being assembled */
  sk_buf raw;  /* raw lines of the reply being assembled (no CR) */
  int code;
  char enhanced[16];
  size_t lines;
  char error[128];
} sk_reply_parser;

enum { SK_RP_MORE = 0, SK_RP_REPLY = 1, SK_RP_ERROR = -1 };

void sk_reply_parser_init(sk_reply_parser *p);
void sk_reply_parser_free(sk_reply_parser *p);
void sk_reply_parser_reset(sk_reply_parser *p);
/* Adds bytes; returns false when they would exceed the bounds. */
bool sk_reply_parser_feed(sk_reply_parser *p, const char *data, size_t n);
/* Extracts the next complete reply into out (text malloc'd; free with
 * sk_reply_clear). raw, if not NULL, receives the raw lines (malloc'd). */
int sk_reply_parser_next(sk_reply_parser *p, smtpkit_reply *out, char **raw);
/* Bytes received but not yet part of a returned reply. */
size_t sk_reply_parser_pending(const sk_reply_parser *p);

void sk_reply_clear(smtpkit_reply *r);
bool sk_reply_copy(smtpkit_reply *dst, const smtpkit_reply *src);
/* Parses one complete reply held in text (for tests and explain). */
bool sk_reply_parse_text(const char *text, size_t n, smtpkit_reply *out);
/* Finds an RFC 3463 code at the start of s ("5.7.8 "); writes it to out. */
size_t sk_enhanced_at(const char *s, size_t n, char out[16]);

/* ---- caps.c: EHLO capabilities (RFC 5321 §4.1.1.1) ---- */

typedef struct sk_caps {
  bool esmtp; /* EHLO answered 250 */
  bool starttls, pipelining, eightbitmime, smtputf8, enhancedstatuscodes;
  bool chunking, dsn, binarymime;
  bool has_size;
  unsigned long long size; /* 0 = no limit stated */
  bool has_auth;
  char auth[512];        /* " PLAIN LOGIN " — space-delimited, upper case */
  char server_name[256]; /* first word of the EHLO reply */
  char *lines;           /* every extension line, '\n'-separated */
} sk_caps;

void sk_caps_parse(sk_caps *c, const smtpkit_reply *ehlo);
void sk_caps_free(sk_caps *c);
bool sk_caps_has_mech(const sk_caps *c, const char *mech);

/* ---- cause.c ---- */
bool sk_cause_default_transient(smtpkit_cause c);

/* ---- classify.c: the one place causes are decided ---- */

/* Events seen outside a server reply. */
typedef enum sk_event {
  SK_EV_NONE,
  SK_EV_DNS,               /* host name does not resolve */
  SK_EV_REFUSED,           /* connect refused */
  SK_EV_CONNECT_TIMEOUT,   /* connect got no answer */
  SK_EV_GREETING_TIMEOUT,  /* connected, no greeting, TLS not confirmed */
  SK_EV_TIMEOUT,           /* no reply in time */
  SK_EV_CLOSED,            /* peer closed / reset */
  SK_EV_CLOSED_AFTER_DATA, /* closed after end of data, before the reply */
  SK_EV_GARBLED,           /* malformed or oversized reply */
  SK_EV_INJECTION,         /* bytes after 220 to STARTTLS */
  SK_EV_TLS_HANDSHAKE,     /* handshake failure */
  SK_EV_TLS_PLAIN_BANNER,  /* TLS handshake met an SMTP banner */
  SK_EV_TLS_ON_TLS_PORT,   /* plaintext got no greeting; TLS handshake works */
  SK_EV_TLS_VERSION,       /* protocol version refused */
  SK_EV_CERT_UNTRUSTED,
  SK_EV_CERT_NAME,
  SK_EV_CERT_EXPIRED,
  SK_EV_NO_STARTTLS, /* TLS required, STARTTLS not advertised */
  SK_EV_TLS_FIRST,   /* credentials held back: STARTTLS is offered */
  SK_EV_NO_AUTH,     /* credentials configured, no AUTH advertised */
  SK_EV_NO_COMMON_MECH,
  SK_EV_NO_RECIPIENTS, /* every recipient was refused */
  SK_EV_TOO_BIG,       /* larger than the server's SIZE */
  SK_EV_HELD_BACK,     /* the lock-out guard kept a refused secret */
  SK_EV_INTERNAL
} sk_event;

void sk_classify_event(smtpkit_error *err, sk_event ev, smtpkit_stage stage);
/* What the classifier may know besides the reply itself. */
typedef struct sk_context {
  const char *provider;    /* provider id from host name or banner, or NULL */
  const char *host;        /* the host name the user gave */
  const char *banner;      /* greeting text, or NULL */
  const char *user;        /* login name, or NULL */
  const char *mechanism;   /* SASL mechanism of the failed AUTH, or NULL */
  const char *oauth_error; /* decoded JSON error challenge, or NULL */
  bool authed;             /* AUTH succeeded earlier in the session */
  bool tls;                /* the connection is encrypted */
} sk_context;

/* Classifies a server reply at a stage; keeps a copy of the reply. */
void sk_classify_reply(smtpkit_error *err, smtpkit_stage stage,
                       const smtpkit_reply *reply, const sk_context *ctx);

/* ---- util.c: errors ---- */
void sk_error_clear(smtpkit_error *e);
void sk_error_detail(smtpkit_error *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
