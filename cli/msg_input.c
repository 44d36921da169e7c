/*
 * msg_input.c — RFC 5322 message from stdin.
 *
 * RFC 5322 §2.2.3 (folded header fields), §3.4 (address lists, with
 * display names, quoted strings, comments and groups), §3.6.3 (Bcc is
 * removed before sending, as sendmail -t does).
 */
#define _GNU_SOURCE
#include "msg_input.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sysexits.h>

bool addr_add(addr_list *l, const char *a, size_t n) {
  while (n && isspace((unsigned char)*a))
    a++, n--;
  while (n && isspace((unsigned char)a[n - 1]))
    n--;
  if (n == 0)
    return true;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)a[i] < 0x20 || a[i] == 0x7f)
      return false;
  if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 8;
    char **v = realloc(l->v, cap * sizeof *v);
    if (!v)
      return false;
    l->v = v;
    l->cap = cap;
  }
  l->v[l->n] = strndup(a, n);
  return l->v[l->n++] != NULL;
}

void addr_free(addr_list *l) {
  for (size_t i = 0; i < l->n; i++)
    free(l->v[i]);
  free(l->v);
  memset(l, 0, sizeof *l);
}

/* One mailbox: the part in <...> if any, else the bare text without
 * comments. Group names ("team:") and empty groups (";") are skipped. */
static bool take_mailbox(addr_list *l, const char *s, size_t n) {
  const char *lt = memchr(s, '<', n);
  if (lt) {
    const char *gt = memchr(lt, '>', n - (size_t)(lt - s));
    if (!gt)
      return false;
    return addr_add(l, lt + 1, (size_t)(gt - lt - 1));
  }
  char buf[512];
  size_t k = 0;
  int depth = 0;
  for (size_t i = 0; i < n && k + 1 < sizeof buf; i++) {
    if (s[i] == '(')
      depth++;
    else if (s[i] == ')' && depth)
      depth--;
    else if (!depth)
      buf[k++] = s[i];
  }
  buf[k] = '\0';
  char *colon = strchr(buf, ':');
  const char *start = colon ? colon + 1 : buf;
  char *semi = strchr(start, ';');
  if (semi)
    *semi = '\0';
  return addr_add(l, start, strlen(start));
}

bool addr_parse_list(addr_list *l, const char *v) {
  bool quoted = false;
  int angle = 0, paren = 0;
  const char *start = v;
  for (const char *p = v;; p++) {
    char c = *p;
    if (c == '\\' && quoted && p[1]) {
      p++;
      continue;
    }
    if (c == '"' && !paren)
      quoted = !quoted;
    else if (!quoted && c == '(')
      paren++;
    else if (!quoted && c == ')' && paren)
      paren--;
    else if (!quoted && !paren && c == '<')
      angle++;
    else if (!quoted && !paren && c == '>' && angle)
      angle--;
    if (c == '\0' || (c == ',' && !quoted && !angle && !paren)) {
      if (!take_mailbox(l, start, (size_t)(p - start)))
        return false;
      if (c == '\0')
        return true;
      start = p + 1;
    }
  }
}

static void header_done(msg_input *m, const char *field, int *rc) {
  const char *colon = strchr(field, ':');
  if (!colon || *rc)
    return;
  size_t name = (size_t)(colon - field);
  const char *value = colon + 1;
  bool rcpt = (name == 2 && !strncasecmp(field, "to", 2)) ||
              (name == 2 && !strncasecmp(field, "cc", 2)) ||
              (name == 3 && !strncasecmp(field, "bcc", 3));
  if (rcpt && !addr_parse_list(&m->to_cc_bcc, value)) {
    fprintf(stderr, "smtpkit: malformed address in the %.*s header\n",
            (int)name, field);
    *rc = EX_DATAERR;
  }
  if (name == 4 && !strncasecmp(field, "from", 4) && !m->from) {
    addr_list one = {0};
    if (addr_parse_list(&one, value) && one.n)
      m->from = strdup(one.v[0]);
    addr_free(&one);
  }
}

/* Reads the header section, collecting unfolded fields. */
static int scan_headers(msg_input *m) {
  char *field = NULL;
  size_t flen = 0;
  int rc = 0;
  ssize_t n;
  for (int lines = 0;
       lines < 100000 && (n = getline(&m->line, &m->line_cap, m->f)) > 0;
       lines++) {
    char *l = m->line;
    while (n && (l[n - 1] == '\n' || l[n - 1] == '\r'))
      l[--n] = '\0';
    if (n == 0)
      break; /* end of the header */
    if ((l[0] == ' ' || l[0] == '\t') && field) {
      char *f = realloc(field, flen + (size_t)n + 1);
      if (!f)
        break;
      field = f;
      memcpy(field + flen, l, (size_t)n + 1);
      flen += (size_t)n;
      continue;
    }
    if (field)
      header_done(m, field, &rc);
    free(field);
    field = strdup(l);
    flen = (size_t)n;
  }
  if (field)
    header_done(m, field, &rc);
  free(field);
  return rc;
}

int msg_input_open(msg_input *m, FILE *in, bool strip_bcc) {
  memset(m, 0, sizeof *m);
  m->strip_bcc = strip_bcc;
  struct stat st;
  if (fstat(fileno(in), &st) == 0 && S_ISREG(st.st_mode) &&
      fseeko(in, 0, SEEK_CUR) == 0) {
    m->f = in;
  } else {
    /* A pipe: copy to an unlinked temporary file, so the message can be
     * measured for SIZE and sent without living in memory. */
    m->f = tmpfile();
    m->own_f = true;
    if (!m->f) {
      fprintf(stderr, "smtpkit: cannot create a temporary file: %s\n",
              strerror(errno));
      return EX_CANTCREAT;
    }
    char buf[65536];
    for (size_t n; (n = fread(buf, 1, sizeof buf, in)) > 0;)
      if (fwrite(buf, 1, n, m->f) != n) {
        fprintf(stderr, "smtpkit: cannot spool the message: %s\n",
                strerror(errno));
        return EX_IOERR;
      }
    if (ferror(in)) {
      fprintf(stderr, "smtpkit: cannot read the message from stdin\n");
      return EX_NOINPUT;
    }
  }
  rewind(m->f);
  int rc = scan_headers(m);
  msg_input_rewind(m);
  return rc;
}

void msg_input_rewind(msg_input *m) {
  rewind(m->f);
  m->in_headers = true;
  m->skipping = false;
}

long msg_input_read(void *ctx, char *buf, size_t cap) {
  msg_input *m = ctx;
  while (m->in_headers) {
    ssize_t n = getline(&m->line, &m->line_cap, m->f);
    if (n <= 0) {
      m->in_headers = false;
      break;
    }
    bool blank =
        m->line[0] == '\n' || (m->line[0] == '\r' && m->line[1] == '\n');
    if (blank)
      m->in_headers = false;
    else if (m->line[0] == ' ' || m->line[0] == '\t')
      ; /* continuation: same fate as its field */
    else
      m->skipping = m->strip_bcc && !strncasecmp(m->line, "bcc:", 4);
    if (m->skipping && !blank)
      continue;
    if ((size_t)n > cap) {
      /* A header line longer than the caller's buffer: hand it over in
       * pieces by falling through to plain reading from its start. */
      fseeko(m->f, -(off_t)n, SEEK_CUR);
      m->in_headers = false;
      break;
    }
    memcpy(buf, m->line, (size_t)n);
    return n;
  }
  size_t k = fread(buf, 1, cap, m->f);
  if (k == 0 && ferror(m->f))
    return -1;
  return (long)k;
}

void msg_input_close(msg_input *m) {
  if (m->f && m->own_f)
    fclose(m->f);
  addr_free(&m->to_cc_bcc);
  free(m->from);
  free(m->line);
  memset(m, 0, sizeof *m);
}
