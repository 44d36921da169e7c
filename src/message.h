/* message.h — message bytes on the wire: CRLF line endings and
 * dot-stuffing (encoder), and a MIME message built from parts (mime.c). */
#ifndef SMTPKIT_MESSAGE_H
#define SMTPKIT_MESSAGE_H

#include "internal.h"

typedef struct sk_encoder {
  bool bol;        /* at the beginning of a line */
  bool pending_cr; /* saw CR, waiting to see whether LF follows */
  long long bytes; /* bytes produced so far */
} sk_encoder;

void sk_encoder_init(sk_encoder *e);
/* Encodes n input bytes into out, which must hold 2*n+1 bytes. Returns the
 * count written. */
size_t sk_encode(sk_encoder *e, const char *in, size_t n, char *out);
/* Ends the message: a final CRLF if the text did not end with one, then
 * ".\r\n". out must hold 8 bytes. */
size_t sk_encode_finish(sk_encoder *e, char *out);

/* Message size in octets as sent (CRLF line endings, no dot-stuffing, no
 * end-of-data), as SIZE= wants it (RFC 1870 §3), and whether any byte has
 * the high bit set. Reads the whole source. */
typedef struct sk_measure {
  long long size;
  bool eight_bit;
  bool bol, pending_cr;
} sk_measure;
void sk_measure_init(sk_measure *m);
void sk_measure_feed(sk_measure *m, const char *in, size_t n);
void sk_measure_finish(sk_measure *m);

#endif

/* ---- mime.c: a message built from parts, produced as a stream ---- */

typedef struct sk_mime sk_mime;

typedef struct sk_mime_spec {
  const char *from;
  const char *const *to;
  size_t n_to;
  const char *subject;
  const char *body;      /* text, or NULL */
  const char *body_file; /* or a file with the text */
  const char *const *attach;
  size_t n_attach;
} sk_mime_spec;

/* Checks the inputs (files readable) and prepares the headers. On error
 * returns NULL with err set; *missing_file is true when a file could not
 * be read (EX_NOINPUT). */
sk_mime *sk_mime_new(const sk_mime_spec *spec, char *err, size_t errlen,
                     bool *missing_file);
/* smtpkit_read_fn over the message. */
long sk_mime_read(void *mime, char *buf, size_t cap);
/* Starts the message again from the first byte (same bytes again). */
void sk_mime_rewind(sk_mime *m);
void sk_mime_free(sk_mime *m);
