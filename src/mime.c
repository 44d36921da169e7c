/*
 * mime.c — a message built from a subject, a text and attachments,
 * produced as a stream with bounded memory.
 *
 * RFC 5322 (header fields, Date format), RFC 2045 (MIME-Version,
 * Content-Transfer-Encoding: quoted-printable §6.7 and base64 §6.8),
 * RFC 2046 §5.1 (multipart/mixed), RFC 2047 (encoded words in Subject),
 * RFC 2183 + RFC 2231 (Content-Disposition with a UTF-8 file name).
 *
 * The message is a list of segments: fixed text, or a file or string
 * encoded on the fly. Files are read in blocks while the message is sent,
 * so a 50 MB attachment costs a few kilobytes of memory.
 */
#define _GNU_SOURCE
#include "message.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum seg_kind {
  SEG_TEXT,
  SEG_QP_TEXT,
  SEG_RAW_FILE,
  SEG_QP_FILE,
  SEG_B64_FILE
};

typedef struct seg {
  enum seg_kind kind;
  char *text; /* SEG_TEXT, SEG_QP_TEXT: the bytes; files: the path */
  size_t len;
} seg;

struct sk_mime {
  seg *segs;
  size_t n_segs;
  /* read position */
  size_t cur;    /* current segment */
  size_t off;    /* offset in a text segment */
  int fd;        /* open file of the current segment, or -1 */
  sk_buf stage;  /* encoded bytes not yet handed out */
  size_t qp_col; /* quoted-printable: current output column */
  bool qp_cr;    /* quoted-printable: last input byte was CR */
  size_t b64_col;
  unsigned char carry[3];
  size_t n_carry;
  bool eof;
};

static bool add_seg(sk_mime *m, enum seg_kind k, char *text, size_t len) {
  seg *p = realloc(m->segs, (m->n_segs + 1) * sizeof *p);
  if (!p || !text) {
    free(text);
    if (p)
      m->segs = p;
    return false;
  }
  m->segs = p;
  m->segs[m->n_segs++] = (seg){k, text, len};
  return true;
}

static bool add_text(sk_mime *m, const sk_buf *b) {
  return add_seg(m, SEG_TEXT, sk_strndup(b->data, b->len), b->len);
}

static bool is_ascii(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)s[i] & 0x80)
      return false;
  return true;
}

/* Text needs QP when it has 8-bit bytes or a line longer than 998. */
static bool needs_qp_buf(const char *s, size_t n) {
  size_t col = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c & 0x80 || c == 0)
      return true;
    col = c == '\n' ? 0 : col + 1;
    if (col > 998)
      return true;
  }
  return false;
}

static int needs_qp_file(const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  char buf[65536];
  size_t col = 0;
  int need = 0;
  for (ssize_t n; !need && (n = read(fd, buf, sizeof buf)) > 0;)
    for (ssize_t i = 0; i < n && !need; i++) {
      unsigned char c = (unsigned char)buf[i];
      col = c == '\n' ? 0 : col + 1;
      need = (c & 0x80) || c == 0 || col > 998;
    }
  close(fd);
  return need;
}

/* RFC 2047 B-encoding, split on UTF-8 character boundaries so each word
 * stays within 75 characters. */
static void encoded_words(sk_buf *b, const char *s) {
  size_t n = strlen(s), i = 0;
  bool first = true;
  while (i < n) {
    size_t take = n - i > 42 ? 42 : n - i;
    while (i + take < n && ((unsigned char)s[i + take] & 0xC0) == 0x80)
      take--;
    char *enc = sk_base64_encode(s + i, take);
    sk_buf_appendf(b, "%s=?UTF-8?B?%s?=", first ? "" : "\r\n ", enc ? enc : "");
    free(enc);
    first = false;
    i += take;
  }
}

static void header_text(sk_buf *b, const char *name, const char *value) {
  sk_buf_appendf(b, "%s: ", name);
  if (is_ascii(value, strlen(value)))
    sk_buf_append(b, value, strlen(value));
  else
    encoded_words(b, value);
  sk_buf_append(b, "\r\n", 2);
}

static const char *content_type_for(const char *path) {
  static const char *const map[][2] = {
      {".txt", "text/plain"},        {".html", "text/html"},
      {".htm", "text/html"},         {".csv", "text/csv"},
      {".pdf", "application/pdf"},   {".zip", "application/zip"},
      {".json", "application/json"}, {".xml", "application/xml"},
      {".gz", "application/gzip"},   {".png", "image/png"},
      {".jpg", "image/jpeg"},        {".jpeg", "image/jpeg"},
      {".gif", "image/gif"},         {".svg", "image/svg+xml"},
      {".ics", "text/calendar"},     {".eml", "message/rfc822"}};
  const char *dot = strrchr(path, '.');
  for (size_t i = 0; dot && i < sizeof map / sizeof *map; i++)
    if (sk_strcasecmp_ascii(dot, map[i][0]) == 0)
      return map[i][1];
  return "application/octet-stream";
}

static void filename_params(sk_buf *b, const char *path) {
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  bool plain = is_ascii(base, strlen(base)) && !strpbrk(base, "\"\\;");
  if (plain) {
    sk_buf_appendf(b, "; filename=\"%s\"", base);
    return;
  }
  /* RFC 2231 §4: filename*=UTF-8''percent-encoded */
  sk_buf_append(b, "; filename*=UTF-8''", 19);
  for (const unsigned char *p = (const unsigned char *)base; *p; p++) {
    if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
        (*p >= '0' && *p <= '9') || strchr("-._~", *p))
      sk_buf_append(b, p, 1);
    else
      sk_buf_appendf(b, "%%%02X", *p);
  }
}

static void random_hex(char *out, size_t n) {
  unsigned char r[16];
  if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
    for (size_t i = 0; i < sizeof r; i++)
      r[i] = (unsigned char)(rand() ^ (int)time(NULL));
  for (size_t i = 0; i < n / 2 && i < sizeof r; i++)
    snprintf(out + 2 * i, 3, "%02x", r[i]);
}

static void date_header(sk_buf *b) {
  char date[64];
  time_t now = time(NULL);
  struct tm tm;
  localtime_r(&now, &tm);
  /* %a and %b follow the locale; RFC 5322 wants English names. */
  static const char *const days[] = {"Sun", "Mon", "Tue", "Wed",
                                     "Thu", "Fri", "Sat"};
  static const char *const months[] = {"Jan", "Feb", "Mar", "Apr",
                                       "May", "Jun", "Jul", "Aug",
                                       "Sep", "Oct", "Nov", "Dec"};
  long off = tm.tm_gmtoff / 60;
  snprintf(date, sizeof date, "%s, %d %s %d %02d:%02d:%02d %c%02ld%02ld",
           days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900,
           tm.tm_hour, tm.tm_min, tm.tm_sec, off < 0 ? '-' : '+',
           labs(off) / 60, labs(off) % 60);
  sk_buf_appendf(b, "Date: %s\r\n", date);
}

static bool readable(const char *path, char *err, size_t errlen) {
  struct stat st;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0 || fstat(fd, &st) != 0 || S_ISDIR(st.st_mode)) {
    snprintf(err, errlen, "cannot read %s: %s", path,
             fd < 0 ? strerror(errno) : "is a directory");
    if (fd >= 0)
      close(fd);
    return false;
  }
  close(fd);
  return true;
}

static bool build(sk_mime *m, const sk_mime_spec *sp, char *err,
                  size_t errlen) {
  sk_buf h = {0};
  char boundary[48] = "=_smtpkit_", id[33] = "";
  random_hex(boundary + 10, 32);
  random_hex(id, 32);
  const char *at = sp->from ? strrchr(sp->from, '@') : NULL;
  if (sp->from)
    sk_buf_appendf(&h, "From: %s\r\n", sp->from);
  if (sp->n_to) {
    sk_buf_appendf(&h, "To: ");
    for (size_t i = 0; i < sp->n_to; i++)
      sk_buf_appendf(&h, "%s%s", i ? ",\r\n " : "", sp->to[i]);
    sk_buf_appendf(&h, "\r\n");
  }
  header_text(&h, "Subject", sp->subject ? sp->subject : "");
  date_header(&h);
  sk_buf_appendf(&h, "Message-ID: <%s@%s>\r\n", id,
                 at && at[1] ? at + 1 : "smtpkit.invalid");
  sk_buf_appendf(&h, "MIME-Version: 1.0\r\n");

  int qp = sp->body_file ? needs_qp_file(sp->body_file)
                         : needs_qp_buf(sp->body ? sp->body : "",
                                        sp->body ? strlen(sp->body) : 0);
  const char *cte = qp ? "quoted-printable" : "7bit";
  if (sp->n_attach) {
    sk_buf_appendf(&h,
                   "Content-Type: multipart/mixed; boundary=\"%s\"\r\n\r\n"
                   "This is a MIME message.\r\n\r\n--%s\r\n",
                   boundary, boundary);
  }
  sk_buf_appendf(&h,
                 "Content-Type: text/plain; charset=utf-8\r\n"
                 "Content-Transfer-Encoding: %s\r\n",
                 cte);
  sk_buf_appendf(&h, "\r\n");
  bool ok = add_text(m, &h);
  sk_buf_consume(&h, h.len);
  if (sp->body_file)
    ok = ok && add_seg(m, qp ? SEG_QP_FILE : SEG_RAW_FILE,
                       sk_strdup(sp->body_file), 0);
  else if (sp->body)
    ok = ok && add_seg(m, qp ? SEG_QP_TEXT : SEG_TEXT, sk_strdup(sp->body),
                       strlen(sp->body));
  for (size_t i = 0; ok && i < sp->n_attach; i++) {
    if (!readable(sp->attach[i], err, errlen)) {
      sk_buf_free(&h);
      return false;
    }
    sk_buf_appendf(&h, "\r\n--%s\r\nContent-Type: %s\r\n", boundary,
                   content_type_for(sp->attach[i]));
    sk_buf_appendf(&h, "Content-Disposition: attachment");
    filename_params(&h, sp->attach[i]);
    sk_buf_appendf(&h, "\r\nContent-Transfer-Encoding: base64\r\n\r\n");
    ok = add_text(m, &h) &&
         add_seg(m, SEG_B64_FILE, sk_strdup(sp->attach[i]), 0);
    sk_buf_consume(&h, h.len);
  }
  if (sp->n_attach) {
    sk_buf_appendf(&h, "\r\n--%s--\r\n", boundary);
    ok = ok && add_text(m, &h);
  }
  sk_buf_free(&h);
  if (!ok)
    snprintf(err, errlen, "out of memory building the message");
  return ok;
}

sk_mime *sk_mime_new(const sk_mime_spec *spec, char *err, size_t errlen,
                     bool *missing_file) {
  *missing_file = false;
  if (spec->body_file && !readable(spec->body_file, err, errlen)) {
    *missing_file = true;
    return NULL;
  }
  sk_mime *m = calloc(1, sizeof *m);
  if (!m)
    return NULL;
  m->fd = -1;
  if (!build(m, spec, err, errlen)) {
    *missing_file = strncmp(err, "cannot read", 11) == 0;
    sk_mime_free(m);
    return NULL;
  }
  return m;
}

void sk_mime_rewind(sk_mime *m) {
  if (m->fd >= 0)
    close(m->fd);
  m->fd = -1;
  m->cur = m->off = 0;
  m->qp_col = m->b64_col = m->n_carry = 0;
  m->qp_cr = m->eof = false;
  sk_buf_consume(&m->stage, m->stage.len);
}

void sk_mime_free(sk_mime *m) {
  if (!m)
    return;
  sk_mime_rewind(m);
  for (size_t i = 0; i < m->n_segs; i++)
    free(m->segs[i].text);
  free(m->segs);
  sk_buf_free(&m->stage);
  free(m);
}

/* ---- encoders into m->stage ---- */

static void qp_byte(sk_mime *m, unsigned char c, unsigned char next,
                    bool has_next) {
  static const char hex[] = "0123456789ABCDEF";
  char out[4];
  size_t n = 0;
  bool literal =
      (c >= 33 && c <= 126 && c != '=') ||
      ((c == ' ' || c == '\t') && has_next && next != '\n' && next != '\r');
  if (literal)
    out[n++] = (char)c;
  else {
    out[n++] = '=';
    out[n++] = hex[c >> 4];
    out[n++] = hex[c & 15];
  }
  if (m->qp_col + n > 75) { /* soft line break keeps lines <= 76 */
    sk_buf_append(&m->stage, "=\r\n", 3);
    m->qp_col = 0;
  }
  /* A line starting with "." is fine: the wire encoder stuffs it. */
  sk_buf_append(&m->stage, out, n);
  m->qp_col += n;
}

/* Encodes in[0..n) as quoted-printable. The last byte is held back when
 * more input may follow, to know whether white space ends a line. */
static size_t qp_chunk(sk_mime *m, const char *in, size_t n, bool final) {
  size_t i = 0;
  for (; i < n; i++) {
    unsigned char c = (unsigned char)in[i];
    if (c == '\r' || c == '\n') {
      if (c == '\n' && m->qp_cr) {
        m->qp_cr = false;
        continue;
      }
      m->qp_cr = c == '\r';
      sk_buf_append(&m->stage, "\r\n", 2);
      m->qp_col = 0;
      continue;
    }
    m->qp_cr = false;
    bool has_next = i + 1 < n;
    if (!has_next && !final && (c == ' ' || c == '\t'))
      break; /* decide with the next chunk */
    qp_byte(m, c, has_next ? (unsigned char)in[i + 1] : '\n', has_next);
  }
  return i;
}

/* One group of up to 3 bytes, written at o (room for 6 bytes); returns
 * the count. No allocation per group: a 50 MB attachment is 17 million
 * groups, read twice (measured, then sent). */
static size_t b64_group(sk_mime *m, const unsigned char *g, size_t n, char *o) {
  static const char abc[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t k = 0;
  if (m->b64_col >= 76) {
    o[k++] = '\r';
    o[k++] = '\n';
    m->b64_col = 0;
  }
  unsigned v = (unsigned)g[0] << 16 | (n > 1 ? (unsigned)g[1] << 8 : 0) |
               (n > 2 ? (unsigned)g[2] : 0);
  o[k++] = abc[v >> 18 & 63];
  o[k++] = abc[v >> 12 & 63];
  o[k++] = n > 1 ? abc[v >> 6 & 63] : '=';
  o[k++] = n > 2 ? abc[v & 63] : '=';
  m->b64_col += 4;
  return k;
}

static void b64_chunk(sk_mime *m, const unsigned char *in, size_t n,
                      bool final) {
  /* Encoded straight into the stage: 4 bytes per 3, CRLF per 57. */
  if (!sk_buf_reserve(&m->stage, (n / 3 + 2) * 6 + 8))
    return;
  char *o = m->stage.data + m->stage.len;
  size_t i = 0;
  while (m->n_carry && m->n_carry < 3 && i < n)
    m->carry[m->n_carry++] = in[i++];
  if (m->n_carry == 3) {
    o += b64_group(m, m->carry, 3, o);
    m->n_carry = 0;
  }
  for (; i + 3 <= n; i += 3)
    o += b64_group(m, in + i, 3, o);
  while (i < n)
    m->carry[m->n_carry++] = in[i++];
  if (final) {
    if (m->n_carry)
      o += b64_group(m, m->carry, m->n_carry, o);
    m->n_carry = 0;
    if (m->b64_col) {
      *o++ = '\r';
      *o++ = '\n';
    }
    m->b64_col = 0;
  }
  m->stage.len = (size_t)(o - m->stage.data);
  m->stage.data[m->stage.len] = '\0';
}

/* Fills the stage from the current segment. Returns false at the end. */
static bool refill(sk_mime *m) {
  while (m->cur < m->n_segs) {
    seg *s = &m->segs[m->cur];
    if (s->kind == SEG_TEXT) {
      if (m->off < s->len) {
        size_t k = s->len - m->off > 65536 ? 65536 : s->len - m->off;
        sk_buf_append(&m->stage, s->text + m->off, k);
        m->off += k;
        return true;
      }
    } else if (s->kind == SEG_QP_TEXT) {
      if (m->off < s->len) {
        m->off += qp_chunk(m, s->text + m->off, s->len - m->off, true);
        return true;
      }
    } else {
      if (m->fd < 0 && !m->eof) {
        m->fd = open(s->text, O_RDONLY | O_CLOEXEC);
        if (m->fd < 0)
          return false;
      }
      if (m->fd >= 0) {
        unsigned char buf[49152]; /* a multiple of 3 and of 57 */
        size_t have = 0;
        if (s->kind == SEG_QP_FILE && m->n_carry) {
          buf[0] = m->carry[0];
          have = 1;
          m->n_carry = 0;
        }
        ssize_t n = read(m->fd, buf + have, sizeof buf - have);
        if (n < 0)
          return false;
        bool final = n == 0;
        size_t total = have + (size_t)n;
        if (s->kind == SEG_B64_FILE)
          b64_chunk(m, buf, total, final);
        else if (s->kind == SEG_QP_FILE) {
          size_t used = qp_chunk(m, (char *)buf, total, final);
          if (used < total) {
            m->carry[0] = buf[used];
            m->n_carry = 1;
          }
        } else
          sk_buf_append(&m->stage, buf, total); /* 7-bit text file */
        if (final) {
          close(m->fd);
          m->fd = -1;
          m->eof = true;
        }
        if (m->stage.len)
          return true;
        if (!final)
          continue;
      }
    }
    m->cur++;
    m->off = 0;
    m->eof = false;
    m->qp_col = 0;
    m->qp_cr = false;
  }
  return false;
}

long sk_mime_read(void *ctx, char *buf, size_t cap) {
  sk_mime *m = ctx;
  for (int rounds = 0; m->stage.len == 0 && rounds < 1 << 20; rounds++)
    if (!refill(m))
      break;
  if (m->stage.len == 0)
    return m->cur < m->n_segs ? -1 : 0;
  size_t k = m->stage.len < cap ? m->stage.len : cap;
  memcpy(buf, m->stage.data, k);
  sk_buf_consume(&m->stage, k);
  return (long)k;
}
