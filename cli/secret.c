/*
 * secret.c — passwords and OAuth2 tokens from a file, an environment
 * variable, a command or a no-echo prompt. Never from argv: the process
 * list and shell history would show it.
 *
 * The secret is read once, kept in one mlock()ed buffer (not swapped out)
 * and wiped with smtpkit_wipe() at exit. The library asks for it through
 * secret_fetch() only while it builds an AUTH response.
 */
#define _GNU_SOURCE
#include "secret.h"

#include "smtpkit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <termios.h>
#include <unistd.h>

#define SECRET_MAX 16384

void warn_add(warnings *w, const char *fmt, ...) {
  if (w->n >= sizeof w->items / sizeof *w->items)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(w->items[w->n++], sizeof w->items[0], fmt, ap);
  va_end(ap);
}

static int read_fd(secret *s, int fd) {
  for (;;) {
    if (s->len + 1 >= s->cap)
      return -2; /* too long */
    ssize_t n = read(fd, s->value + s->len, s->cap - 1 - s->len);
    if (n == 0)
      break;
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    s->len += (size_t)n;
  }
  s->value[s->len] = '\0';
  return 0;
}

static int from_file(secret *s) {
  FILE *f = fopen(s->arg, "re");
  if (!f) {
    fprintf(stderr, "smtpkit: cannot read the %s file %s: %s\n", s->what,
            s->arg, strerror(errno));
    return EX_NOINPUT;
  }
  int rc = read_fd(s, fileno(f));
  fclose(f);
  if (rc < 0) {
    fprintf(stderr, "smtpkit: cannot read the %s file %s: %s\n", s->what,
            s->arg, rc == -2 ? "longer than 16 KiB" : strerror(errno));
    return EX_NOINPUT;
  }
  return 0;
}

static int from_env(secret *s) {
  const char *v = getenv(s->arg);
  if (!v) {
    fprintf(stderr,
            "smtpkit: environment variable %s (for the %s) is not set\n",
            s->arg, s->what);
    return EX_USAGE;
  }
  size_t n = strlen(v);
  if (n + 1 > s->cap) {
    fprintf(stderr, "smtpkit: %s in %s is longer than 16 KiB\n", s->what,
            s->arg);
    return EX_USAGE;
  }
  memcpy(s->value, v, n + 1);
  s->len = n;
  return 0;
}

static int from_cmd(secret *s) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0)
    return EX_OSERR;
  pid_t pid = fork();
  if (pid < 0)
    return EX_OSERR;
  if (pid == 0) {
    dup2(fds[1], 1);
    execl("/bin/sh", "sh", "-c", s->arg, (char *)NULL);
    _exit(127);
  }
  close(fds[1]);
  int rc = read_fd(s, fds[0]);
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
    ;
  if (rc < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fprintf(stderr, "smtpkit: the %s command failed (%s)\n", s->what,
            rc == -2            ? "output longer than 16 KiB"
            : WIFEXITED(status) ? "non-zero exit status"
                                : "killed by a signal");
    return EX_NOINPUT;
  }
  return 0;
}

static int from_prompt(secret *s) {
  if (!isatty(0)) {
    fprintf(stderr,
            "smtpkit: a user name was given but no %s source: use "
            "--password-file, --password-env or --password-cmd (or run on a "
            "terminal to be asked)\n",
            s->what);
    return EX_USAGE;
  }
  struct termios old, quiet;
  tcgetattr(0, &old);
  quiet = old;
  quiet.c_lflag &= ~(tcflag_t)ECHO;
  fprintf(stderr, "%s: ", s->what);
  fflush(stderr);
  tcsetattr(0, TCSAFLUSH, &quiet);
  size_t n = 0;
  int c;
  while ((c = getchar()) != EOF && c != '\n' && n + 1 < s->cap)
    s->value[n++] = (char)c;
  s->value[n] = '\0';
  s->len = n;
  tcsetattr(0, TCSAFLUSH, &old);
  fputc('\n', stderr);
  return 0;
}

/* The checks behind "but the password IS correct". */
static void sanity(secret *s, warnings *w) {
  const char *v = s->value;
  size_t n = s->len;
  if (n == 0) {
    warn_add(w, "the %s is empty", s->what);
    return;
  }
  if (v[n - 1] == ' ' || v[n - 1] == '\t' || v[n - 1] == '\r' ||
      v[n - 1] == '\n')
    warn_add(w, "%s ends with white space or a line break (%zu characters)",
             s->what, n);
  if (v[0] == ' ' || v[0] == '\t')
    warn_add(w, "%s starts with white space", s->what);
  if (memchr(v, '\n', n) && v[n - 1] != '\n')
    warn_add(w, "%s contains a line break", s->what);
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)v[i] & 0x80) {
      warn_add(w,
               "%s contains non-ASCII characters; it is sent as UTF-8, which "
               "some servers do not expect",
               s->what);
      break;
    }
}

int secret_load(secret *s, warnings *w) {
  if (s->kind == SECRET_NONE || s->loaded)
    return 0;
  s->cap = SECRET_MAX;
  s->value = calloc(1, s->cap);
  if (!s->value)
    return EX_OSERR;
  mlock(s->value, s->cap); /* best effort: keeps it out of swap */
  int rc = 0;
  switch (s->kind) {
  case SECRET_FILE:
    rc = from_file(s);
    break;
  case SECRET_ENV:
    rc = from_env(s);
    break;
  case SECRET_CMD:
    rc = from_cmd(s);
    break;
  case SECRET_PROMPT:
    rc = from_prompt(s);
    break;
  case SECRET_NONE:
    break;
  }
  if (rc)
    return rc;
  /* Files and commands end with a newline that is not part of the secret;
   * strip exactly one, as users expect. */
  if ((s->kind == SECRET_FILE || s->kind == SECRET_CMD) && s->len &&
      s->value[s->len - 1] == '\n') {
    s->value[--s->len] = '\0';
    if (s->len && s->value[s->len - 1] == '\r')
      s->value[--s->len] = '\0';
  }
  const char *src = s->kind == SECRET_FILE  ? "--password-file"
                    : s->kind == SECRET_ENV ? "--password-env"
                    : s->kind == SECRET_CMD ? "--password-cmd"
                                            : "the prompt";
  size_t before = w->n;
  sanity(s, w);
  for (size_t i = before; i < w->n; i++) {
    char tmp[200];
    snprintf(tmp, sizeof tmp, "%.150s (from %s)", w->items[i], src);
    memcpy(w->items[i], tmp, sizeof tmp);
  }
  s->loaded = true;
  return 0;
}

int secret_fetch(void *ctx, char *buf, size_t cap) {
  secret *s = ctx;
  if (!s || !s->loaded || s->len + 1 > cap)
    return -1;
  memcpy(buf, s->value, s->len + 1);
  return (int)s->len;
}

void secret_free(secret *s) {
  if (s->value) {
    smtpkit_wipe(s->value, s->cap);
    munlock(s->value, s->cap);
    free(s->value);
  }
  s->value = NULL;
  s->len = s->cap = 0;
  s->loaded = false;
}
