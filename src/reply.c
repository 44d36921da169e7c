/*
 * reply.c — sans-I/O parser for SMTP replies.
 *
 * RFC 5321 §4.2 (reply syntax: "ddd-text" continuation lines, "ddd text"
 * final line, every line with the same code), RFC 2034 / RFC 3463 (enhanced
 * status codes "class.subject.detail" after the code).
 *
 * Bytes go in with sk_reply_parser_feed(); complete replies come out of
 * sk_reply_parser_next(). The parser never touches a socket, so it can be
 * fuzzed and tested in isolation. Every size is bounded (SK_REPLY_MAX_*):
 * a server cannot make the client buffer without limit.
 */
#include "internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sk_reply_parser_init(sk_reply_parser *p) { memset(p, 0, sizeof *p); }

void sk_reply_parser_free(sk_reply_parser *p) {
  sk_buf_free(&p->in);
  sk_buf_free(&p->text);
  sk_buf_free(&p->raw);
  memset(p, 0, sizeof *p);
}

static void start_reply(sk_reply_parser *p) {
  sk_buf_consume(&p->text, p->text.len);
  sk_buf_consume(&p->raw, p->raw.len);
  p->code = 0;
  p->enhanced[0] = '\0';
  p->lines = 0;
}

void sk_reply_parser_reset(sk_reply_parser *p) {
  sk_buf_consume(&p->in, p->in.len);
  start_reply(p);
  p->error[0] = '\0';
}

bool sk_reply_parser_feed(sk_reply_parser *p, const char *data, size_t n) {
  /* Unparsed input never needs more than one maximal line plus what a
   * single read returns; more means a line far beyond the limit. */
  if (p->in.len + n > 4 * SK_REPLY_MAX_LINE + 65536) {
    snprintf(p->error, sizeof p->error, "reply line longer than %d bytes",
             SK_REPLY_MAX_LINE);
    return false;
  }
  return sk_buf_append(&p->in, data, n);
}

size_t sk_reply_parser_pending(const sk_reply_parser *p) { return p->in.len; }

size_t sk_enhanced_at(const char *s, size_t n, char out[16]) {
  /* class "." subject(1-3 digits) "." detail(1-3 digits), then space or end */
  size_t i = 0;
  if (n < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
    return 0;
  i = 2;
  size_t d = 0;
  while (i < n && isdigit((unsigned char)s[i]) && d < 3)
    i++, d++;
  if (!d || i >= n || s[i] != '.')
    return 0;
  i++;
  d = 0;
  while (i < n && isdigit((unsigned char)s[i]) && d < 3)
    i++, d++;
  if (!d || (i < n && s[i] != ' ' && s[i] != '\t'))
    return 0;
  if (out) {
    memcpy(out, s, i);
    out[i] = '\0';
  }
  return i;
}

/* qmail and some others put the enhanced code last: "... (#5.7.1)". */
static void enhanced_trailer(const char *s, size_t n, char out[16]) {
  const char *hit = NULL;
  for (size_t i = 0; i + 2 < n; i++)
    if (s[i] == '(' && s[i + 1] == '#')
      hit = s + i;
  if (!hit)
    return;
  size_t rest = n - (size_t)(hit + 2 - s);
  char tmp[16];
  size_t k = sk_enhanced_at(hit + 2, rest, NULL);
  if (!k) {
    /* sk_enhanced_at wants space or end after the code; accept ')' too. */
    const char *close = memchr(hit + 2, ')', rest);
    if (!close || (size_t)(close - hit - 2) >= sizeof tmp)
      return;
    k = (size_t)(close - hit - 2);
    memcpy(tmp, hit + 2, k);
    tmp[k] = ' ';
    if (sk_enhanced_at(tmp, k + 1, NULL) != k)
      return;
  }
  memcpy(out, hit + 2, k);
  out[k] = '\0';
}

/* Can these first bytes of an unfinished line still become a reply line?
 * Lets binary garbage fail at once instead of after a time-out. */
static bool plausible_start(const char *s, size_t n) {
  for (size_t i = 0; i < n && i < 4; i++) {
    unsigned char c = (unsigned char)s[i];
    bool ok = i == 0  ? c >= '2' && c <= '5'
              : i < 3 ? isdigit(c)
                      : c == ' ' || c == '-' || c == '\r';
    if (!ok)
      return false;
  }
  return true;
}

static int fail(sk_reply_parser *p, const char *why) {
  snprintf(p->error, sizeof p->error, "%s", why);
  return SK_RP_ERROR;
}

/* Handles one line (without CR/LF). Returns 1 when it ended the reply. */
static int take_line(sk_reply_parser *p, const char *line, size_t n) {
  if (n < 3 || !isdigit((unsigned char)line[0]) ||
      !isdigit((unsigned char)line[1]) || !isdigit((unsigned char)line[2]) ||
      line[0] < '2' || line[0] > '5')
    return fail(p, "reply line does not start with a reply code");
  if (n > 3 && line[3] != ' ' && line[3] != '-')
    return fail(p, "reply code not followed by space or '-'");
  int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
  if (p->lines && code != p->code)
    return fail(p, "reply lines carry different codes");
  if (++p->lines > SK_REPLY_MAX_LINES)
    return fail(p, "reply has too many lines");
  p->code = code;
  const char *t = n > 4 ? line + 4 : line + n;
  size_t tn = n > 4 ? n - 4 : 0;
  char enh[16];
  size_t k = sk_enhanced_at(t, tn, enh);
  if (k && enh[0] == line[0]) {
    if (p->lines == 1)
      memcpy(p->enhanced, enh, sizeof enh);
    t += k;
    tn -= k;
    while (tn && (*t == ' ' || *t == '\t'))
      t++, tn--;
  }
  if (p->text.len + tn + 1 > SK_REPLY_MAX_TEXT)
    return fail(p, "reply text too long");
  if (p->lines > 1 && !sk_buf_append(&p->text, "\n", 1))
    return fail(p, "out of memory");
  if (!sk_buf_append(&p->text, t, tn) || !sk_buf_append(&p->raw, line, n) ||
      !sk_buf_append(&p->raw, "\n", 1))
    return fail(p, "out of memory");
  return n == 3 || line[3] == ' ';
}

int sk_reply_parser_next(sk_reply_parser *p, smtpkit_reply *out, char **raw) {
  for (;;) {
    char *nl = p->in.len ? memchr(p->in.data, '\n', p->in.len) : NULL;
    if (!nl) {
      if (p->in.len >= SK_REPLY_MAX_LINE)
        return fail(p, "reply line too long");
      if (!plausible_start(p->in.data, p->in.len))
        return fail(p, "reply line does not start with a reply code");
      return SK_RP_MORE;
    }
    size_t n = (size_t)(nl - p->in.data);
    if (n + 1 > SK_REPLY_MAX_LINE)
      return fail(p, "reply line too long");
    size_t len = n && p->in.data[n - 1] == '\r' ? n - 1 : n;
    if (memchr(p->in.data, '\0', len))
      return fail(p, "NUL byte in reply");
    int done = take_line(p, p->in.data, len);
    sk_buf_consume(&p->in, n + 1);
    if (done < 0)
      return SK_RP_ERROR;
    if (!done)
      continue;
    if (!p->enhanced[0])
      enhanced_trailer(p->text.data, p->text.len, p->enhanced);
    out->code = p->code;
    memcpy(out->enhanced, p->enhanced, sizeof out->enhanced);
    out->text = sk_strndup(p->text.data ? p->text.data : "", p->text.len);
    if (raw)
      *raw = sk_strndup(p->raw.data ? p->raw.data : "", p->raw.len);
    start_reply(p);
    return out->text ? SK_RP_REPLY : fail(p, "out of memory");
  }
}

void sk_reply_clear(smtpkit_reply *r) {
  if (!r)
    return;
  free(r->text);
  memset(r, 0, sizeof *r);
}

bool sk_reply_copy(smtpkit_reply *dst, const smtpkit_reply *src) {
  *dst = *src;
  dst->text = src->text ? sk_strdup(src->text) : NULL;
  return !src->text || dst->text;
}

bool sk_reply_parse_text(const char *text, size_t n, smtpkit_reply *out) {
  sk_reply_parser p;
  sk_reply_parser_init(&p);
  bool ok = sk_reply_parser_feed(&p, text, n);
  /* A final line without a line break is still a line here. */
  if (ok && n && text[n - 1] != '\n')
    ok = sk_reply_parser_feed(&p, "\r\n", 2);
  ok = ok && sk_reply_parser_next(&p, out, NULL) == SK_RP_REPLY;
  sk_reply_parser_free(&p);
  return ok;
}
