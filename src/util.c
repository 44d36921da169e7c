/* util.c — buffers, strings, base64 and secret wiping. */
#include "internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void smtpkit_wipe(void *p, size_t len) {
  /* explicit_bzero is not removed by dead-store elimination; every buffer
   * that ever held a password, token or their encodings ends here. */
  if (p && len)
    explicit_bzero(p, len);
}

bool sk_buf_reserve(sk_buf *b, size_t extra) {
  if (b->cap - b->len > extra)
    return true;
  size_t cap = b->cap ? b->cap : 256;
  while (cap - b->len <= extra) {
    if (cap > ((size_t)1 << 40))
      return false;
    cap *= 2;
  }
  /* Not realloc: the old block may hold secrets and must be wiped. */
  char *p = malloc(cap);
  if (!p)
    return false;
  if (b->data) {
    memcpy(p, b->data, b->len);
    smtpkit_wipe(b->data, b->cap);
    free(b->data);
  }
  b->data = p;
  b->cap = cap;
  b->data[b->len] = '\0';
  return true;
}

bool sk_buf_append(sk_buf *b, const void *p, size_t n) {
  if (!sk_buf_reserve(b, n))
    return false;
  if (n)
    memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
  return true;
}

bool sk_buf_appendf(sk_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0 || !sk_buf_reserve(b, (size_t)n))
    return false;
  va_start(ap, fmt);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
  return true;
}

void sk_buf_consume(sk_buf *b, size_t n) {
  if (n >= b->len) {
    if (b->data)
      smtpkit_wipe(b->data, b->len);
    b->len = 0;
    if (b->data)
      b->data[0] = '\0';
    return;
  }
  memmove(b->data, b->data + n, b->len - n);
  b->len -= n;
  smtpkit_wipe(b->data + b->len, n);
  b->data[b->len] = '\0';
}

void sk_buf_free(sk_buf *b) {
  if (b->data) {
    smtpkit_wipe(b->data, b->cap);
    free(b->data);
  }
  b->data = NULL;
  b->len = b->cap = 0;
}

char *sk_strndup(const char *s, size_t n) {
  char *p = malloc(n + 1);
  if (!p)
    return NULL;
  memcpy(p, s, n);
  p[n] = '\0';
  return p;
}

char *sk_strdup(const char *s) { return s ? sk_strndup(s, strlen(s)) : NULL; }

bool sk_has_ctl_breaks(const char *s) {
  return s && strpbrk(s, "\r\n") != NULL;
}

int sk_strcasecmp_ascii(const char *a, const char *b) {
  for (;; a++, b++) {
    int ca = tolower((unsigned char)*a), cb = tolower((unsigned char)*b);
    if (ca != cb || !ca)
      return ca - cb;
  }
}

const char *sk_memcasestr(const char *hay, size_t n, const char *needle) {
  size_t m = strlen(needle);
  if (m == 0)
    return hay;
  for (size_t i = 0; i + m <= n; i++) {
    size_t j = 0;
    while (j < m && tolower((unsigned char)hay[i + j]) ==
                        tolower((unsigned char)needle[j]))
      j++;
    if (j == m)
      return hay + i;
  }
  return NULL;
}

size_t sk_strlcpy(char *dst, const char *src, size_t cap) {
  size_t n = strlen(src);
  if (cap) {
    size_t k = n < cap - 1 ? n : cap - 1;
    memcpy(dst, src, k);
    dst[k] = '\0';
  }
  return n;
}

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *sk_base64_encode(const void *p, size_t n) {
  const unsigned char *s = p;
  char *out = malloc(4 * ((n + 2) / 3) + 1), *o = out;
  if (!out)
    return NULL;
  size_t i = 0;
  for (; i + 2 < n; i += 3) {
    *o++ = b64[s[i] >> 2];
    *o++ = b64[((s[i] & 3) << 4) | (s[i + 1] >> 4)];
    *o++ = b64[((s[i + 1] & 15) << 2) | (s[i + 2] >> 6)];
    *o++ = b64[s[i + 2] & 63];
  }
  if (i < n) {
    *o++ = b64[s[i] >> 2];
    if (i + 1 < n) {
      *o++ = b64[((s[i] & 3) << 4) | (s[i + 1] >> 4)];
      *o++ = b64[(s[i + 1] & 15) << 2];
    } else {
      *o++ = b64[(s[i] & 3) << 4];
      *o++ = '=';
    }
    *o++ = '=';
  }
  *o = '\0';
  return out;
}

static int b64val(unsigned char c) {
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  if (c == '+')
    return 62;
  if (c == '/')
    return 63;
  return -1;
}

unsigned char *sk_base64_decode(const char *s, size_t n, size_t *out_len) {
  unsigned char *out = malloc(n / 4 * 3 + 4);
  if (!out)
    return NULL;
  size_t o = 0, pad = 0;
  unsigned acc = 0, bits = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '=') {
      pad++;
      continue;
    }
    int v = b64val(c);
    if (v < 0 || pad) {
      free(out);
      return NULL;
    }
    acc = (acc << 6) | (unsigned)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (unsigned char)(acc >> bits);
      acc &= (1u << bits) - 1;
    }
  }
  if (pad > 2) {
    free(out);
    return NULL;
  }
  out[o] = '\0';
  *out_len = o;
  return out;
}

void sk_error_clear(smtpkit_error *e) {
  sk_reply_clear(&e->reply);
  memset(e, 0, sizeof *e);
}

void sk_error_detail(smtpkit_error *e, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->detail, sizeof e->detail, fmt, ap);
  va_end(ap);
}
