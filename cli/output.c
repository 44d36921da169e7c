/* output.c — transcripts and human-readable reports. Nothing printed here
 * can contain a secret: AUTH payloads are redacted by the library before
 * they reach the transcript callback, and errors carry only replies. */
#include "output.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

int transcript_open(transcript *t, const char *path, int verbose) {
  memset(t, 0, sizeof *t);
  if (!path) {
    /* -v: connection events on stderr; -vv: the whole transcript. */
    t->f = verbose ? stderr : NULL;
    t->events_only = verbose == 1;
    return 0;
  }
  if (!strcmp(path, "-")) {
    t->f = stderr;
    return 0;
  }
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  t->f = fd >= 0 ? fdopen(fd, "w") : NULL;
  if (!t->f) {
    fprintf(stderr, "smtpkit: cannot write the transcript %s: %s\n", path,
            strerror(errno));
    if (fd >= 0)
      close(fd);
    return EX_CANTCREAT;
  }
  t->close_f = true;
  return 0;
}

void transcript_close(transcript *t) {
  if (t->f && t->close_f)
    fclose(t->f);
  else if (t->f)
    fflush(t->f);
  t->f = NULL;
}

void print_escaped(FILE *f, const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '\t' || (c >= 0x20 && c != 0x7f))
      fputc(c, f); /* UTF-8 and other 8-bit bytes pass: terminals cope */
    else
      fprintf(f, "\\x%02X", c);
  }
}

void transcript_line(void *ctx, char dir, const char *line, size_t len) {
  transcript *t = ctx;
  if (!t || !t->f || (t->events_only && dir != '*'))
    return;
  fputs(dir == 'C' ? "C: " : dir == 'S' ? "S: " : "*  ", t->f);
  print_escaped(t->f, line, len);
  fputc('\n', t->f);
}

static void print_reply(const smtpkit_reply *r) {
  const char *t = r->text ? r->text : "";
  bool first = true;
  while (first || *t) {
    const char *nl = strchr(t, '\n');
    size_t n = nl ? (size_t)(nl - t) : strlen(t);
    fprintf(stderr, "%s%d%s%s ", first ? "  server:  " : "           ",
            r->code, r->enhanced[0] ? " " : "", r->enhanced);
    print_escaped(stderr, t, n);
    fputc('\n', stderr);
    first = false;
    t += n + (nl ? 1 : 0);
    if (!nl)
      break;
  }
}

void report_error(const char *what, const smtpkit_error *e,
                  const char *mechanism) {
  fprintf(stderr, "smtpkit: %s: %s%s (exit %d)\n", what,
          smtpkit_cause_name(e->cause), e->transient ? ", temporary" : "",
          smtpkit_cause_exit_code(e->cause, e->transient));
  if (e->stage != SMTPKIT_STAGE_NONE)
    fprintf(stderr, "  stage:   %s%s%s\n", smtpkit_stage_name(e->stage),
            mechanism ? " with " : "", mechanism ? mechanism : "");
  if (e->reply.code)
    print_reply(&e->reply);
  if (e->detail[0]) {
    fputs("  detail:  ", stderr);
    print_escaped(stderr, e->detail, strlen(e->detail));
    fputc('\n', stderr);
  }
  if (e->transient)
    fputs("  This looks temporary: retrying later may work.\n", stderr);
}

void print_warnings(const warnings *w) {
  for (size_t i = 0; i < w->n; i++)
    fprintf(stderr, "smtpkit: warning: %s\n", w->items[i]);
}

void json_warnings(jw *w, const warnings *ws) {
  jw_arr(w, "warnings");
  for (size_t i = 0; i < ws->n; i++)
    jw_str(w, NULL, ws->items[i]);
  jw_arr_end(w);
}
