/*
 * message.c — the message as it goes on the wire.
 *
 * RFC 5321 §2.3.8 (lines end in CRLF; a bare CR or LF never reaches the
 * wire: each becomes CRLF), §4.5.2 (transparency: a line starting with "."
 * gets another "."), §4.1.1.4 (the end of data is CRLF "." CRLF, written
 * only by sk_encode_finish).
 *
 * Input arrives in chunks of any size; state carries across chunk
 * boundaries, so memory does not depend on the message size.
 */
#include "message.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

void sk_encoder_init(sk_encoder *e) {
  memset(e, 0, sizeof *e);
  e->bol = true;
}

/* Whether any of the 8 bytes in w is CR or LF ("Bit Twiddling Hacks": a
 * zero byte in w ^ (c * 0x01..01)); with_high: or has its high bit set. */
static bool special_in_word(uint64_t w, bool with_high) {
  const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
  uint64_t cr = w ^ (ones * '\r'), lf = w ^ (ones * '\n');
  return (((cr - ones) & ~cr) | ((lf - ones) & ~lf) | (with_high ? w : 0)) &
         highs;
}

size_t sk_encode(sk_encoder *e, const char *in, size_t n, char *out) {
  char *o = out;
  for (size_t i = 0; i < n;) {
    /* Inside a line: 8 bytes at a time while none ends it. */
    if (!e->bol && !e->pending_cr && n - i >= 8) {
      uint64_t w;
      memcpy(&w, in + i, 8);
      if (!special_in_word(w, false)) {
        memcpy(o, &w, 8);
        o += 8;
        i += 8;
        continue;
      }
    }
    char c = in[i];
    if (e->pending_cr) {
      e->pending_cr = false;
      *o++ = '\r';
      *o++ = '\n';
      e->bol = true;
      if (c == '\n') {
        i++;
        continue;
      }
    }
    if (c == '\r') {
      e->pending_cr = true;
      i++;
      continue;
    }
    if (c == '\n') {
      *o++ = '\r';
      *o++ = '\n';
      e->bol = true;
      i++;
      continue;
    }
    if (e->bol && c == '.')
      *o++ = '.';
    *o++ = c;
    i++;
    e->bol = false;
  }
  e->bytes += o - out;
  return (size_t)(o - out);
}

size_t sk_encode_finish(sk_encoder *e, char *out) {
  char *o = out;
  if (e->pending_cr || !e->bol) {
    *o++ = '\r';
    *o++ = '\n';
  }
  e->pending_cr = false;
  memcpy(o, ".\r\n", 3);
  o += 3;
  e->bytes += o - out;
  e->bol = true;
  return (size_t)(o - out);
}

void sk_measure_init(sk_measure *m) {
  memset(m, 0, sizeof *m);
  m->bol = true;
}

void sk_measure_feed(sk_measure *m, const char *in, size_t n) {
  for (size_t i = 0; i < n;) {
    /* Most of a message is line text: 8 bytes at a time. */
    if (!m->pending_cr && n - i >= 8) {
      uint64_t w;
      memcpy(&w, in + i, 8);
      if (!special_in_word(w, true)) {
        m->size += 8;
        m->bol = false;
        i += 8;
        continue;
      }
    }
    unsigned char c = (unsigned char)in[i];
    if (m->pending_cr) {
      m->pending_cr = false;
      m->size += 2;
      m->bol = true;
      if (c == '\n') {
        i++;
        continue;
      }
    }
    if (c == '\r') {
      m->pending_cr = true;
      i++;
      continue;
    }
    if (c == '\n') {
      m->size += 2;
      m->bol = true;
      i++;
      continue;
    }
    if (c & 0x80)
      m->eight_bit = true;
    m->size++;
    i++;
    m->bol = false;
  }
}

void sk_measure_finish(sk_measure *m) {
  if (m->pending_cr || !m->bol)
    m->size += 2;
  m->pending_cr = false;
  m->bol = true;
}
