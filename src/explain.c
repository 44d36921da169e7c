/*
 * explain.c — finds the SMTP reply inside whatever a user pastes, and
 * explains it (smtpkit_explain_text).
 *
 * People paste what their program printed, not a clean reply: a Python
 * traceback ending in (534, b'5.7.9 ...\n5.7.9 ...') with the line breaks
 * as literal backslash-n, a Java or Ruby exception, nodemailer's "Invalid
 * login: 535-5.7.8 ...", .NET's "The server response was: 5.7.0 ..." (no
 * code, only the enhanced code), PHPMailer's "SERVER -> CLIENT:" lines,
 * curl -v "< 535", swaks "<~* 535", msmtp "server message: 535", PEAR's
 * "(code: 535, response: ...)", Postfix logs ("said: 534-5.7.9 ...",
 * "SASL LOGIN authentication failed") and Exim logs. RFC 5321 §4.2 gives
 * the reply syntax looked for; RFC 3463 the enhanced codes.
 *
 * The text is read in four steps:
 *   1. normalize: literal \r \n \t escapes become real ones;
 *   2. scan: every place that looks like a reply ("candidates"): a code,
 *      a Python (code, b'text') tuple, PEAR's code/response pair, or an
 *      enhanced code alone;
 *   3. tidy: cut each candidate's text where the next begins, give bare
 *      codes ("SMTP code: 550", "(535)") to the enhanced code beside them,
 *      and join the lines of one multi-line reply;
 *   4. decide: classify every failing candidate with what the text says
 *      around it (stage words, host names, banner, AUTH mechanism) and keep
 *      the one the knowledge base recognises best. Without one, the text's
 *      wording, a client-side error (socket, TLS) or an intercepting banner
 *      may still explain it.
 * Causes are decided in classify.c; this file only gathers evidence.
 */
#include "kb.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Bounds: a pasted log may be long, but a reply is short. */
#define MAX_CANDS 20000
#define LOOK_BACK 2000 /* bytes before a reply searched for stage words */

typedef struct cand {
  size_t at, text_at, text_end; /* offsets in the normalized text */
  size_t line, last_line;
  int code; /* 0: only an enhanced code */
  char enh[16];
  bool python; /* (code, b'...') tuple: text already split into lines */
  bool hint;   /* "(535)", "535:": a bare code for a neighbour */
  bool dropped;
  sk_buf text; /* reply text, lines joined with '\n' */
} cand;

typedef struct scan {
  const char *s;
  size_t n;
  cand *c;
  size_t nc, cap;
} scan;

/* ---- 1. normalize ---- */

static void normalize(const char *in, size_t n, sk_buf *out) {
  for (size_t i = 0; i < n; i++) {
    char ch = in[i];
    if (ch == '\r')
      continue;
    if (ch == '\0')
      ch = ' ';
    if (ch == '\\' && i + 1 < n && strchr("nrt\\", in[i + 1])) {
      char nx = in[++i];
      if (nx == 'r')
        continue;
      ch = nx == 'n' ? '\n' : nx == 't' ? '\t' : '\\';
    }
    /* Blank lines ("...\\r\\n" followed by a real line break) would split
     * one multi-line reply in two. */
    if (ch == '\n') {
      size_t k = out->len;
      while (k > 0 && (out->data[k - 1] == ' ' || out->data[k - 1] == '\t'))
        k--;
      if (k > 0 && out->data[k - 1] == '\n')
        continue;
    }
    sk_buf_append(out, &ch, 1);
  }
  sk_buf_append(out, "", 0); /* NUL-terminates an empty buffer too */
}

/* ---- 2. scan ---- */

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static size_t line_end(const scan *sc, size_t i) {
  const char *nl = memchr(sc->s + i, '\n', sc->n - i);
  return nl ? (size_t)(nl - sc->s) : sc->n;
}

static bool at_line_start(const scan *sc, size_t i) {
  while (i > 0 && (sc->s[i - 1] == ' ' || sc->s[i - 1] == '\t'))
    i--;
  return i == 0 || sc->s[i - 1] == '\n';
}

/* Characters after which a reply code may begin mid-line: prompts and
 * quotes ("< 535", "S: 535", "said: 535", "response='535", "?534"). */
static bool code_may_follow(char c) {
  return c == ' ' || c == '\t' || c == '\n' || strchr("([{\"'<>:=|`,;*~!?", c);
}

/* An RFC 3463 code "c.s.d" at i whose class is 2, 4 or 5, standing alone
 * (not inside an address, version or IP; after_code: right after "534-").
 * Returns its length or 0. */
static size_t enh_at(const scan *sc, size_t i, bool after_code, char out[16]) {
  const char *s = sc->s;
  size_t n = sc->n, j = i + 2, d = 0;
  if (i + 5 > n || !strchr("245", s[i]) || s[i + 1] != '.')
    return 0;
  if (i > 0 && !after_code &&
      (isalnum((unsigned char)s[i - 1]) || strchr(".-_/@#", s[i - 1])))
    return 0;
  while (j < n && is_digit(s[j]) && d < 3)
    j++, d++;
  if (!d || j >= n || s[j] != '.')
    return 0;
  j++, d = 0;
  while (j < n && is_digit(s[j]) && d < 3)
    j++, d++;
  if (!d || (j < n && (is_digit(s[j]) || isalpha((unsigned char)s[j]) ||
                       strchr("@_/-", s[j]))))
    return 0;
  if (j + 1 < n && s[j] == '.' && is_digit(s[j + 1]))
    return 0; /* an IP address or a version */
  if (out) {
    memcpy(out, s + i, j - i);
    out[j - i] = '\0';
  }
  return j - i;
}

/* Success and intermediate codes a server really sends; other 2xx/3xx
 * numbers in a text are more often sizes, ports or counters. */
static bool known_positive(int code) {
  static const int known[] = {211, 214, 220, 221, 235, 250, 251, 252, 334, 354};
  for (size_t i = 0; i < sizeof known / sizeof *known; i++)
    if (known[i] == code)
      return true;
  return false;
}

/* Three digits at i that may be a reply code. */
static int code_at(const scan *sc, size_t i) {
  const char *s = sc->s;
  if (i + 3 > sc->n || s[i] < '2' || s[i] > '5' || !is_digit(s[i + 1]) ||
      !is_digit(s[i + 2]) || (i + 3 < sc->n && is_digit(s[i + 3])))
    return 0;
  if (i > 0 && !code_may_follow(s[i - 1]))
    return 0;
  /* "00:43:05,535 ERROR" (log milliseconds), "10.0.0.1:465" (a port). */
  if (i > 1 && strchr(",:", s[i - 1]) && is_digit(s[i - 2]))
    return 0;
  if (i >= 5 && !strncmp(s + i - 5, "line ", 5))
    return 0; /* Python traceback: File "x.py", line 535, in login */
  int code = (s[i] - '0') * 100 + (s[i + 1] - '0') * 10 + (s[i + 2] - '0');
  /* RFC 5321 §4.2: the second digit is 0-5; at a line start, where only a
   * reply can be, any code is taken (an odd server's 599). */
  if (s[i + 1] > '5' && !at_line_start(sc, i))
    return 0;
  if (code < 400 && !known_positive(code))
    return 0;
  return code;
}

static cand *add(scan *sc, size_t at, int code) {
  if (sc->nc == sc->cap) {
    size_t cap = sc->cap ? sc->cap * 2 : 32;
    cand *c = cap <= MAX_CANDS ? realloc(sc->c, cap * sizeof *c) : NULL;
    if (!c)
      return NULL;
    sc->c = c, sc->cap = cap;
  }
  cand *c = &sc->c[sc->nc++];
  memset(c, 0, sizeof *c);
  c->at = at;
  c->code = code;
  return c;
}

/* Python: (535, b'5.7.8 ...') or (550, 'User has no permission'). The
 * string may span lines (its \n escapes were expanded). Returns the
 * offset after the tuple's string, or 0. */
static size_t python_tuple(scan *sc, size_t i) {
  const char *s = sc->s;
  size_t n = sc->n;
  if (s[i] != '(' || !code_at(sc, i + 1) || i + 5 >= n || s[i + 4] != ',')
    return 0;
  size_t j = i + 5;
  while (j < n && s[j] == ' ')
    j++;
  if (j < n && s[j] == 'b')
    j++;
  if (j >= n || (s[j] != '\'' && s[j] != '"'))
    return 0;
  char q = s[j++];
  size_t start = j;
  while (j < n && s[j] != q)
    j += s[j] == '\\' && j + 1 < n ? 2 : 1;
  cand *c = add(sc, i + 1, code_at(sc, i + 1));
  if (!c)
    return 0;
  c->python = true;
  c->text_at = start;
  c->text_end = j;
  return j < n ? j + 1 : n;
}

/* PEAR Net_SMTP: "(code: 535, response: Incorrect authentication data)". */
static size_t pear_pair(scan *sc, size_t i) {
  static const char key[] = "code: ";
  const char *s = sc->s;
  size_t k = sizeof key - 1;
  if (i + k + 3 > sc->n || strncmp(s + i, key, k) || !code_at(sc, i + k))
    return 0;
  const char *resp = ", response: ";
  size_t r = i + k + 3, rl = strlen(resp);
  if (r + rl > sc->n || strncmp(s + r, resp, rl))
    return 0;
  cand *c = add(sc, i + k, code_at(sc, i + k));
  if (!c)
    return 0;
  c->text_at = r + rl;
  c->text_end = line_end(sc, r + rl);
  /* The pair sits inside brackets: drop the closing ones. */
  while (c->text_end > c->text_at && strchr(")]", s[c->text_end - 1]))
    c->text_end--;
  return c->text_end;
}

/* A code followed by its text: "535 5.7.8 text", "534-5.7.14 text", or a
 * bare code ("SMTP code: 550", "(535)", "535:") that only names the code
 * of an enhanced code beside it. Returns the offset scanning resumes at. */
static size_t code_form(scan *sc, size_t i) {
  int code = code_at(sc, i);
  if (!code)
    return 0;
  const char *s = sc->s;
  size_t j = i + 3;
  char sep = j < sc->n ? s[j] : '\n';
  bool hint = (sep == ')' && i > 0 && s[i - 1] == '(') ||
              (sep == ':' && j + 1 < sc->n && s[j + 1] == ' ' && i > 0 &&
               strchr(" (", s[i - 1]));
  if (!hint && sep != ' ' && sep != '-' && sep != '\n' && sep != '\t')
    return 0;
  cand *c = add(sc, i, code);
  if (!c)
    return 0;
  c->hint = hint;
  if (hint) {
    c->text_at = c->text_end = j;
    return j;
  }
  if (sep != '\n')
    j++;
  /* The enhanced code's class may differ from the code's (Microsoft's
   * "451 5.7.3"); it is still the enhanced code. */
  size_t k = enh_at(sc, j, true, c->enh);
  if (k)
    j += k;
  else
    c->enh[0] = '\0';
  c->text_at = j;
  c->text_end = line_end(sc, j);
  /* A quoted reply ('535 ...', "535 ...") ends at its closing quote: one
   * followed by a delimiter, not the apostrophe of "you're". */
  char q = i > 0 ? s[i - 1] : 0;
  for (size_t e = j; (q == '"' || q == '\'' || q == '`') && e < c->text_end;
       e++)
    if (s[e] == q && s[e - 1] != '\\' &&
        (e + 1 >= c->text_end || strchr(",;:)]} \t\\", s[e + 1]))) {
      c->text_end = e;
      break;
    }
  return j;
}

static size_t enh_form(scan *sc, size_t i) {
  char enh[16];
  size_t k = enh_at(sc, i, false, enh);
  const char *s = sc->s;
  if (!k || enh[0] == '2')
    return 0;
  if (i + k < sc->n && s[i + k] != ' ' && s[i + k] != '\t' && s[i + k] != '\n')
    return 0;
  cand *c = add(sc, i, 0);
  if (!c)
    return 0;
  memcpy(c->enh, enh, sizeof enh);
  c->text_at = i + k;
  c->text_end = line_end(sc, i + k);
  return i + k;
}

static void scan_text(scan *sc) {
  size_t i = 0;
  while (i < sc->n) {
    size_t next = python_tuple(sc, i);
    if (!next)
      next = pear_pair(sc, i);
    if (!next)
      next = code_form(sc, i);
    if (!next)
      next = enh_form(sc, i);
    i = next > i ? next : i + 1;
  }
  /* Candidates were found in order: count lines in one pass. */
  size_t line = 0, pos = 0;
  for (size_t k = 0; k < sc->nc; k++) {
    for (; pos < sc->c[k].at; pos++)
      line += sc->s[pos] == '\n';
    sc->c[k].line = sc->c[k].last_line = line;
  }
}

/* ---- 3. tidy ---- */

static void trim(const char *s, size_t *a, size_t *b) {
  while (*a < *b && strchr(" \t\n", s[*a]))
    (*a)++;
  while (*b > *a && strchr(" \t\n\"'`,", s[*b - 1]))
    (*b)--;
}

/* Appends one line of reply text, dropping a repeated "535-" / "5.7.8"
 * prefix (Gmail repeats the enhanced code on every line). */
static void add_line(cand *c, const char *s, size_t a, size_t b) {
  trim(s, &a, &b);
  if (c->code && b - a >= 4 && s[a] - '0' == c->code / 100 &&
      s[a + 1] - '0' == c->code / 10 % 10 && s[a + 2] - '0' == c->code % 10 &&
      (s[a + 3] == ' ' || s[a + 3] == '-'))
    a += 4;
  size_t el = c->enh[0] ? strlen(c->enh) : 0;
  if (el && b - a >= el && !strncmp(s + a, c->enh, el) &&
      (b - a == el || s[a + el] == ' '))
    a += el;
  trim(s, &a, &b);
  if (a >= b)
    return;
  /* The same line twice (a log quoting the reply again) says nothing. */
  size_t len = c->text.len, ls = len;
  while (ls > 0 && c->text.data[ls - 1] != '\n')
    ls--;
  size_t ll = len - ls;
  if (ll == b - a && !memcmp(c->text.data + ls, s + a, ll))
    return;
  if (len)
    sk_buf_append(&c->text, "\n", 1);
  sk_buf_append(&c->text, s + a, b - a);
}

static void build_text(const scan *sc, cand *c) {
  const char *s = sc->s;
  if (!c->python) {
    add_line(c, s, c->text_at, c->text_end);
    return;
  }
  /* A Python bytes repr: the first line may begin with the enhanced code;
   * \' and \" are still escaped. */
  size_t a = c->text_at;
  while (a < c->text_end && s[a] == ' ')
    a++;
  scan tmp = {.s = s, .n = c->text_end};
  if (!enh_at(&tmp, a, true, c->enh))
    c->enh[0] = '\0';
  sk_buf line = {0};
  for (size_t i = c->text_at; i <= c->text_end; i++) {
    if (i == c->text_end || s[i] == '\n') {
      if (line.len)
        add_line(c, line.data, 0, line.len);
      sk_buf_consume(&line, line.len);
      continue;
    }
    if (s[i] == '\\' && i + 1 < c->text_end && strchr("'\"", s[i + 1]))
      i++;
    sk_buf_append(&line, s + i, 1);
  }
  sk_buf_free(&line);
}

static int klass(const cand *c) {
  return c->code ? c->code / 100 : c->enh[0] ? c->enh[0] - '0' : 0;
}

static bool failing(const cand *c) { return !c->dropped && klass(c) >= 4; }

/* A bare code goes to the nearest enhanced-only candidate of its class on
 * the same or a neighbouring line ("Detail: 5.7.60 ...\nSMTP code: 550").
 * Candidates are in text order: only a few around index h can qualify. */
static bool give_code(scan *sc, size_t hi) {
  cand *h = &sc->c[hi], *best = NULL;
  size_t best_d = 3;
  size_t from = hi > 8 ? hi - 8 : 0, to = hi + 9 < sc->nc ? hi + 9 : sc->nc;
  for (size_t k = from; k < to; k++) {
    cand *c = &sc->c[k];
    if (c == h || c->dropped || c->code || c->enh[0] - '0' != h->code / 100)
      continue;
    size_t d = c->line > h->line ? c->line - h->line : h->line - c->line;
    if (d < best_d)
      best = c, best_d = d;
  }
  if (!best || best_d > 1)
    return false;
  best->code = h->code;
  h->dropped = true;
  return true;
}

static void tidy(scan *sc) {
  /* A candidate's text ends where the next one begins. */
  for (size_t k = 0; k + 1 < sc->nc; k++) {
    cand *c = &sc->c[k];
    if (!c->python && sc->c[k + 1].at < c->text_end &&
        sc->c[k + 1].at >= c->text_at)
      c->text_end = sc->c[k + 1].at;
  }
  for (size_t k = 0; k < sc->nc; k++)
    build_text(sc, &sc->c[k]);
  for (size_t k = 0; k < sc->nc; k++) {
    cand *c = &sc->c[k];
    if (c->dropped || !c->code || c->text.len)
      continue;
    if (give_code(sc, k) || c->hint) {
      c->dropped = true;
      continue;
    }
    /* "said: 530\n    Authentication required": Postfix wraps lines. */
    size_t next = c->text_end < sc->n ? c->text_end + 1 : sc->n;
    bool taken = false;
    for (size_t m = k + 1; m < sc->nc; m++)
      taken = taken || sc->c[m].line == c->line + 1;
    if (!taken && next < sc->n) {
      add_line(c, sc->s, next, line_end(sc, next));
      c->last_line = c->line + 1;
    }
  }
  /* "Status: 5.7.0 535 Authentication failed": the enhanced code belongs to
   * the reply right after it. */
  for (size_t k = 0; k + 1 < sc->nc; k++) {
    cand *e = &sc->c[k], *r = &sc->c[k + 1];
    if (!e->dropped && !e->code && !e->text.len && !r->dropped && r->code &&
        !r->enh[0] && r->line == e->line && klass(r) == klass(e)) {
      memcpy(r->enh, e->enh, sizeof r->enh);
      e->dropped = true;
    }
  }
  /* Lines of one multi-line reply: same code, consecutive lines. */
  cand *prev = NULL;
  for (size_t k = 0; k < sc->nc; k++) {
    cand *c = &sc->c[k];
    if (c->dropped)
      continue;
    bool same = prev &&
                (c->code ? c->code == prev->code
                         : prev->enh[0] && !strcmp(prev->enh, c->enh)) &&
                (!c->enh[0] || !prev->enh[0] || !strcmp(c->enh, prev->enh)) &&
                c->line <= prev->last_line + 1;
    if (!same) {
      prev = c;
      continue;
    }
    if (c->text.len)
      add_line(prev, c->text.data, 0, c->text.len);
    if (!prev->enh[0])
      memcpy(prev->enh, c->enh, sizeof prev->enh);
    prev->last_line = c->last_line;
    c->dropped = true;
  }
}

/* ---- 4. decide ---- */

struct marker {
  const char *word;
  bool exact_case; /* SMTP commands are upper case in transcripts */
  smtpkit_stage stage;
};

/* Words around a reply that tell the command it answered. */
static const struct marker markers[] = {
    {"AUTH ", true, SMTPKIT_STAGE_AUTH},
    /* Not "authenticated": .NET's "the client was not authenticated"
     * comes with failures at MAIL. */
    {"authentication failed", false, SMTPKIT_STAGE_AUTH},
    {"AuthenticationFailed", true, SMTPKIT_STAGE_AUTH},
    {"AuthenticationError", true, SMTPKIT_STAGE_AUTH},
    {"AuthenticationException", true, SMTPKIT_STAGE_AUTH},
    {"authenticator failed", false, SMTPKIT_STAGE_AUTH},
    {"failed to authenticate", false, SMTPKIT_STAGE_AUTH},
    {"could not authenticate", false, SMTPKIT_STAGE_AUTH},
    {"check_auth", false, SMTPKIT_STAGE_AUTH},
    {"invalid login", false, SMTPKIT_STAGE_AUTH},
    {"password command", false, SMTPKIT_STAGE_AUTH},
    {"username command", false, SMTPKIT_STAGE_AUTH},
    {"EAUTH", true, SMTPKIT_STAGE_AUTH},
    {"SASL", true, SMTPKIT_STAGE_AUTH},
    {"MAIL FROM", false, SMTPKIT_STAGE_MAIL},
    {"mail command", false, SMTPKIT_STAGE_MAIL},
    {"SenderRefused", true, SMTPKIT_STAGE_MAIL},
    {"SenderFailed", true, SMTPKIT_STAGE_MAIL},
    {"RCPT TO", false, SMTPKIT_STAGE_RCPT},
    {"recipient command", false, SMTPKIT_STAGE_RCPT},
    {"RecipientsRefused", true, SMTPKIT_STAGE_RCPT},
    {"RecipientError", true, SMTPKIT_STAGE_RCPT},
    {"AddressFailed", true, SMTPKIT_STAGE_RCPT},
    {"DATA", true, SMTPKIT_STAGE_DATA},
    {"DataError", true, SMTPKIT_STAGE_DATA},
    {"data not accepted", false, SMTPKIT_STAGE_DATA},
    {"EHLO", true, SMTPKIT_STAGE_EHLO},
    {"HELO", true, SMTPKIT_STAGE_EHLO},
    {"greeting", false, SMTPKIT_STAGE_GREETING},
    {"banner", false, SMTPKIT_STAGE_GREETING},
};

static const char *find_last(const char *s, size_t n, const char *w,
                             bool exact) {
  size_t m = strlen(w);
  int first = tolower((unsigned char)w[0]);
  for (size_t i = n; i >= m; i--) {
    const char *p = s + i - m;
    if (tolower((unsigned char)*p) != first)
      continue;
    if (exact ? !memcmp(p, w, m) : !!sk_memcasestr(p, m, w))
      return p;
  }
  return NULL;
}

/* The stage a reply answered, from what precedes it and from its code. */
static smtpkit_stage guess_stage(const scan *sc, const cand *c) {
  int code = c->code;
  if (code == 334 || code == 432 || code == 534 || code == 535 || code == 538 ||
      (code == 454 && !strcmp(c->enh, "4.7.0")))
    return SMTPKIT_STAGE_AUTH;
  /* Postfix bounces say it outright: "(in reply to MAIL FROM command)". */
  const char *t = c->text.data;
  const char *irt = t ? sk_memcasestr(t, c->text.len, "in reply to ") : NULL;
  if (irt) {
    const char *cmd = irt + 12;
    if (!strncmp(cmd, "MAIL", 4))
      return SMTPKIT_STAGE_MAIL;
    if (!strncmp(cmd, "RCPT", 4))
      return SMTPKIT_STAGE_RCPT;
    if (!strncmp(cmd, "end of DATA", 11) || !strncmp(cmd, "DATA", 4))
      return SMTPKIT_STAGE_DATA;
  }
  const char *best = NULL;
  smtpkit_stage stage = SMTPKIT_STAGE_NONE;
  size_t from = c->at > LOOK_BACK ? c->at - LOOK_BACK : 0;
  for (size_t i = 0; i < sizeof markers / sizeof *markers; i++) {
    const char *p = find_last(sc->s + from, c->at - from, markers[i].word,
                              markers[i].exact_case);
    if (p && (!best || p > best))
      best = p, stage = markers[i].stage;
  }
  return stage;
}

/* The mechanism of the last AUTH command shortly before offset upto (not
 * the "250-AUTH PLAIN LOGIN" capability line). */
static void auth_mechanism(const scan *sc, size_t upto, char *out, size_t cap) {
  out[0] = '\0';
  for (size_t i = upto > 2 * LOOK_BACK ? upto - 2 * LOOK_BACK : 0;
       i + 5 <= upto; i++) {
    if (memcmp(sc->s + i, "AUTH ", 5) ||
        (i >= 4 && (!strncmp(sc->s + i - 4, "250-", 4) ||
                    !strncmp(sc->s + i - 4, "250 ", 4))))
      continue;
    size_t j = i + 5, k = 0;
    while (j < sc->n && k + 1 < cap &&
           (isupper((unsigned char)sc->s[j]) || is_digit(sc->s[j]) ||
            sc->s[j] == '-' || sc->s[j] == '_'))
      out[k++] = sc->s[j++];
    out[k] = '\0';
  }
}

/* The provider of the first host name in the text that the knowledge
 * base knows ("smtp.gmail.com:465", "server smtp.office365.com[...]"),
 * skipping the domains of e-mail addresses. */
static const char *host_provider(const scan *sc, char *host, size_t cap) {
  const char *s = sc->s;
  for (size_t i = 0; i < sc->n;) {
    size_t j = i;
    while (j < sc->n &&
           (isalnum((unsigned char)s[j]) || s[j] == '.' || s[j] == '-'))
      j++;
    size_t a = i, b = j;
    while (b > a && (s[b - 1] == '.' || s[b - 1] == '-'))
      b--;
    bool dotted = memchr(s + a, '.', b - a) != NULL;
    if (dotted && b - a < cap && (a == 0 || s[a - 1] != '@')) {
      for (size_t k = a; k < b; k++)
        host[k - a] = (char)tolower((unsigned char)s[k]);
      host[b - a] = '\0';
      const char *p = sk_kb_provider_from_host(host, NULL);
      if (p)
        return p;
    }
    i = j > i ? j : i + 1;
  }
  host[0] = '\0';
  return NULL;
}

typedef struct evidence {
  const char *hint;     /* provider the user expects (--provider) */
  const char *by_host;  /* provider of a host named in the text */
  const char *by_print; /* provider the text's fingerprints name */
  const char *server;   /* a server program's fingerprint (cpanel) */
  char host[256];
  const char *banner; /* text of the first 220 greeting */
  bool oauth_error;   /* a 334 challenge holds an OAuth2 error */
  size_t authed_at;   /* offset of the first 235 reply, or SIZE_MAX */
} evidence;

static void gather(const scan *sc, const char *hint, evidence *ev) {
  memset(ev, 0, sizeof *ev);
  ev->authed_at = SIZE_MAX;
  ev->hint = sk_kb_provider(hint);
  ev->by_host = host_provider(sc, ev->host, sizeof ev->host);
  /* Certificate names ("outlook.com") would match addresses in the text. */
  const unsigned where = SK_FP_BANNER | SK_FP_EHLO | SK_FP_REPLY;
  ev->by_print = sk_kb_provider_from_text(sc->s, sc->n, where);
  const char *ids[8];
  size_t k = sk_kb_fingerprints(sc->s, sc->n, where, ids, 8);
  for (size_t i = 0; i < k && i < 8 && !ev->server; i++)
    if (!sk_kb_provider(ids[i]))
      ev->server = ids[i];
  for (size_t i = 0; i < sc->nc; i++) {
    const cand *c = &sc->c[i];
    if (c->dropped)
      continue;
    if (c->code == 220 && !ev->banner)
      ev->banner = c->text.data ? c->text.data : "";
    if (c->code == 235 && ev->authed_at == SIZE_MAX)
      ev->authed_at = c->at;
    if (c->code == 334 && c->text.data &&
        sk_oauth_error_decode(c->text.data, c->text.len, NULL, 0, NULL, 0, NULL,
                              0))
      ev->oauth_error = true;
  }
}

/* The provider the evidence names, most direct first. */
static const char *expected_provider(const evidence *ev) {
  return ev->hint ? ev->hint : ev->by_host ? ev->by_host : ev->by_print;
}

typedef struct verdict {
  smtpkit_error err;
  sk_classify_extra x;
  const cand *c;
  smtpkit_stage stage;
} verdict;

static void classify_cand(const scan *sc, const evidence *ev, const cand *c,
                          bool wide, verdict *v) {
  char mech[32];
  auth_mechanism(sc, c->at, mech, sizeof mech);
  bool authed = ev->authed_at < c->at;
  sk_context ctx = {.provider = expected_provider(ev),
                    .host = ev->host[0] ? ev->host : NULL,
                    .banner = ev->banner,
                    .mechanism = ev->oauth_error ? "XOAUTH2"
                                 : mech[0]       ? mech
                                                 : NULL,
                    .authed = authed};
  smtpkit_reply r = {.code = c->code, .text = c->text.data};
  if (!r.text)
    r.text = "";
  memcpy(r.enhanced, c->enh, sizeof r.enhanced);
  memset(&v->x, 0, sizeof v->x);
  v->stage = guess_stage(sc, c);
  v->x.stage_guessed = true;
  if (wide)
    v->x.around = sc->s, v->x.around_len = sc->n;
  sk_error_clear(&v->err);
  sk_classify_reply_ex(&v->err, v->stage, &r, &ctx, &v->x);
  v->c = c;
}

/* How well the knowledge explains a verdict: known wording first, then a
 * known cause, then a fuller reply; later replies win ties (a log's last
 * failure is the one that ended the session). */
static long rank(const verdict *v) {
  long r = 0;
  if (v->x.entry && v->x.entry->pattern[0])
    r += 100000 + v->x.score;
  if (v->err.cause != SMTPKIT_CAUSE_unknown)
    r += 10000;
  r += v->c->code ? 20 : 0;
  r += v->c->enh[0] ? 10 : 0;
  return r;
}

static bool choose(const scan *sc, const evidence *ev, verdict *best) {
  bool found = false;
  long best_rank = -1;
  verdict v = {0};
  for (size_t i = 0; i < sc->nc; i++) {
    const cand *c = &sc->c[i];
    if (!failing(c))
      continue;
    classify_cand(sc, ev, c, false, &v);
    long r = rank(&v);
    if (r >= best_rank) {
      sk_error_clear(&best->err);
      *best = v;
      memset(&v.err, 0, sizeof v.err); /* best owns the reply now */
      best_rank = r, found = true;
    }
  }
  sk_error_clear(&v.err);
  /* Wording found only around the reply ("Sender address rejected: not
   * logged in (Diagnostic-Code: smtp; 553 5.7.1)"). */
  if (found && !(best->x.entry && best->x.entry->pattern[0])) {
    verdict w = {0};
    classify_cand(sc, ev, best->c, true, &w);
    if (w.x.entry && w.x.entry->pattern[0]) {
      sk_error_clear(&best->err);
      *best = w;
    } else {
      sk_error_clear(&w.err);
    }
  }
  return found;
}

static const char *server_of(const evidence *ev, const sk_kb_reply *e,
                             bool ambiguous) {
  if (ev->server)
    return ev->server;
  if (!e || ambiguous)
    return NULL;
  const char *o = sk_kb_reply_origin(e);
  if (sk_kb_provider(o) || !strcmp(o, "generic") || !strncmp(o, "rfc", 3))
    return NULL;
  return o;
}

static void copy_text(smtpkit_explanation *out, const char *t, size_t n) {
  if (!t)
    return;
  if (n >= sizeof out->text)
    n = sizeof out->text - 1;
  memcpy(out->text, t, n);
  out->text[n] = '\0';
}

static smtpkit_stage stage_named(const char *name) {
  for (int s = SMTPKIT_STAGE_CONNECT; s <= SMTPKIT_STAGE_QUIT; s++)
    if (!strcmp(name, smtpkit_stage_name((smtpkit_stage)s)))
      return (smtpkit_stage)s;
  return SMTPKIT_STAGE_NONE;
}

static void finish(smtpkit_explanation *out, const evidence *ev,
                   const verdict *v) {
  const sk_kb_reply *e = v->x.entry;
  out->found = true;
  out->cause = v->err.cause;
  out->transient = v->err.transient;
  /* The text may not say which command failed; the knowledge may. */
  out->stage =
      v->stage != SMTPKIT_STAGE_NONE || !e ? v->stage : stage_named(e->stage);
  out->server = server_of(ev, e, v->x.ambiguous);
  const char *provider = expected_provider(ev);
  if (!provider && e && !v->x.ambiguous)
    provider = sk_kb_provider(sk_kb_reply_origin(e));
  /* The note explains the cause only if its entry decided it. */
  if (e && e->cause != out->cause)
    e = NULL;
  sk_advice_fill(&out->advice, out->cause, provider, out->server, e);
}

/* No failing reply: the text's wording, a client-side error, an
 * intercepting banner or an OAuth2 challenge may still explain it. */
static bool without_reply(const scan *sc, const evidence *ev,
                          smtpkit_explanation *out) {
  verdict v = {0};
  cand whole = {.at = sc->n}; /* no reply: only the text around counts */
  sk_context ctx = {.provider = expected_provider(ev),
                    .host = ev->host[0] ? ev->host : NULL,
                    .banner = ev->banner};
  const char *who = NULL;
  if (sk_classify_intercepted(&ctx, &who)) {
    smtpkit_reply r = {.code = 220, .text = (char *)ev->banner};
    sk_classify_reply_ex(&v.err, SMTPKIT_STAGE_GREETING, &r, &ctx, &v.x);
    v.err.cause = SMTPKIT_CAUSE_smtp_intercepted;
    v.err.transient = false;
    v.stage = SMTPKIT_STAGE_GREETING;
    out->reply_found = true;
    out->code = 220;
    copy_text(out, ev->banner, strlen(ev->banner));
    finish(out, ev, &v);
    if (!out->server)
      out->server = who;
    sk_error_clear(&v.err);
    return true;
  }
  for (size_t i = 0; ev->oauth_error && i < sc->nc; i++) {
    const cand *c = &sc->c[i];
    if (c->dropped || c->code != 334)
      continue;
    classify_cand(sc, ev, c, false, &v);
    if (v.err.cause != SMTPKIT_CAUSE_oauth_token_invalid)
      continue;
    out->reply_found = true;
    out->code = 334;
    copy_text(out, c->text.data, c->text.len);
    finish(out, ev, &v);
    sk_error_clear(&v.err);
    return true;
  }
  classify_cand(sc, ev, &whole, true, &v);
  if (v.x.entry && v.x.entry->pattern[0]) {
    out->reply_found = true;
    copy_text(out, sc->s, sc->n);
    finish(out, ev, &v);
    sk_error_clear(&v.err);
    return true;
  }
  sk_error_clear(&v.err);
  return false;
}

static bool client_error(const scan *sc, const evidence *ev,
                         smtpkit_explanation *out) {
  verdict v = {0};
  const sk_kb_error *e = sk_classify_client_error(&v.err, sc->s, sc->n);
  if (!e)
    return false;
  out->found = true;
  out->cause = v.err.cause;
  out->transient = v.err.transient;
  out->stage = SMTPKIT_STAGE_NONE;
  /* Show the user's line that holds the error, not the pattern. */
  size_t plen = strcspn(e->pattern, "&");
  for (size_t i = 0; i + plen <= sc->n; i++) {
    if (!sk_kb_pattern_match(e->pattern, sc->s + i, plen, NULL))
      continue;
    size_t a = i, b = line_end(sc, i);
    while (a > 0 && sc->s[a - 1] != '\n')
      a--;
    trim(sc->s, &a, &b);
    copy_text(out, sc->s + a, b - a > 300 ? 300 : b - a);
    break;
  }
  sk_advice_fill(&out->advice, out->cause, expected_provider(ev), NULL, NULL);
  /* The error's own note says what this client's message means. */
  out->advice.note = e->note;
  if (out->advice.n_references < SMTPKIT_ADVICE_MAX_REFS) {
    memmove(out->advice.references + 1, out->advice.references,
            out->advice.n_references * sizeof *out->advice.references);
    out->advice.references[0] = e->source;
    out->advice.n_references++;
  }
  return true;
}

bool smtpkit_explain_text(const char *text, size_t len, const char *provider,
                          smtpkit_explanation *out) {
  memset(out, 0, sizeof *out);
  out->cause = SMTPKIT_CAUSE_unknown;
  sk_buf norm = {0};
  normalize(text ? text : "", text ? len : 0, &norm);
  scan *sc = calloc(1, sizeof *sc);
  if (!sc) {
    sk_buf_free(&norm);
    return false;
  }
  sc->s = norm.data ? norm.data : "";
  sc->n = norm.len;
  scan_text(sc);
  tidy(sc);
  evidence ev;
  gather(sc, provider, &ev);
  verdict v = {0};
  if (choose(sc, &ev, &v) &&
      (v.err.cause != SMTPKIT_CAUSE_unknown || !client_error(sc, &ev, out))) {
    out->reply_found = true;
    out->code = v.c->code;
    memcpy(out->enhanced, v.c->enh, sizeof out->enhanced);
    copy_text(out, v.c->text.data, v.c->text.len);
    finish(out, &ev, &v);
  } else if (!out->found && !without_reply(sc, &ev, out) &&
             !client_error(sc, &ev, out)) {
    for (size_t i = 0; i < sc->nc; i++)
      out->success_only =
          out->success_only || (!sc->c[i].dropped && klass(&sc->c[i]) > 0);
    sk_advice_fill(&out->advice, SMTPKIT_CAUSE_unknown, ev.hint, NULL, NULL);
  }
  sk_error_clear(&v.err);
  for (size_t i = 0; i < sc->nc; i++)
    sk_buf_free(&sc->c[i].text);
  free(sc->c);
  free(sc);
  sk_buf_free(&norm);
  return out->found;
}
