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
    fprintf(stderr, "%s%d%s%s ", first ? "  server:  " : "           ", r->code,
            r->enhanced[0] ? " " : "", r->enhanced);
    print_escaped(stderr, t, n);
    fputc('\n', stderr);
    first = false;
    t += n + (nl ? 1 : 0);
    if (!nl)
      break;
  }
}

void report_error(const char *what, const smtpkit_error *e,
                  const smtpkit_auth_attempt *attempts, size_t n_attempts) {
  const char *mechanism = e->stage == SMTPKIT_STAGE_AUTH && n_attempts
                              ? attempts[n_attempts - 1].mechanism
                              : NULL;
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
  for (size_t i = 0; n_attempts > 1 && i < n_attempts; i++)
    fprintf(stderr, "  attempt: AUTH %s -> %d %s\n", attempts[i].mechanism,
            attempts[i].reply.code, attempts[i].reply.enhanced);
  if (e->transient)
    fputs("  This looks temporary: retrying later may work.\n", stderr);
  smtpkit_advice a;
  smtpkit_error_advice(e, &a);
  fputc('\n', stderr);
  print_advice(stderr, &a, "this reply");
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

/* ---- advice: what a cause means and how to fix it ---- */

enum { ADVICE_LABEL = 12, ADVICE_WIDTH = 78 };

/* Writes s word-wrapped, continuing lines indented to the label column. */
void print_wrapped(FILE *f, const char *s) {
  size_t col = ADVICE_LABEL;
  while (*s) {
    size_t w = strcspn(s, " ");
    if (col > ADVICE_LABEL && col + 1 + w > ADVICE_WIDTH) {
      fprintf(f, "\n%*s", ADVICE_LABEL, "");
      col = ADVICE_LABEL;
    } else if (col > ADVICE_LABEL) {
      fputc(' ', f);
      col++;
    }
    print_escaped(f, s, w);
    col += w;
    s += w;
    while (*s == ' ')
      s++;
  }
  fputc('\n', f);
}

void print_field(FILE *f, const char *label, const char *s) {
  fprintf(f, "%-*s", ADVICE_LABEL, label);
  print_wrapped(f, s);
}

void print_advice(FILE *f, const smtpkit_advice *a, const char *note_label) {
  char line[32];
  print_field(f, "meaning", a->summary);
  if (a->note)
    print_field(f, note_label, a->note);
  if (a->why && a->why[0])
    print_field(f, "why", a->why);
  for (size_t i = 0; i < a->n_fix; i++) {
    snprintf(line, sizeof line, "%zu.", i + 1);
    fprintf(f, "%-*s%-4s", ADVICE_LABEL - 4, i ? "" : "fix", line);
    print_wrapped(f, a->fix[i]);
  }
  for (size_t i = 0; i < a->n_references; i++)
    fprintf(f, "%-*s%s\n", ADVICE_LABEL, i ? "" : "see", a->references[i]);
}

void json_advice(jw *w, const smtpkit_advice *a) {
  jw_str(w, "provider", a->provider);
  jw_str(w, "summary", a->summary);
  jw_arr(w, "fix");
  for (size_t i = 0; i < a->n_fix; i++)
    jw_str(w, NULL, a->fix[i]);
  jw_arr_end(w);
  jw_arr(w, "references");
  for (size_t i = 0; i < a->n_references; i++)
    jw_str(w, NULL, a->references[i]);
  jw_arr_end(w);
}

void json_auth_attempts(jw *w, const char *key, const smtpkit_auth_attempt *a,
                        size_t n) {
  jw_arr(w, key);
  for (size_t i = 0; i < n; i++) {
    jw_obj(w, NULL);
    jw_str(w, "mechanism", a[i].mechanism);
    jw_reply(w, "reply", &a[i].reply);
    jw_obj_end(w);
  }
  jw_arr_end(w);
}
