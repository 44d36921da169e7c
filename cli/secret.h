/* secret.h — where passwords and tokens come from (never argv), and the
 * checks that catch the "correct password" that is not. */
#ifndef SMTPKIT_CLI_SECRET_H
#define SMTPKIT_CLI_SECRET_H

#include <stdbool.h>
#include <stddef.h>

typedef enum secret_kind {
  SECRET_NONE,
  SECRET_FILE,
  SECRET_ENV,
  SECRET_CMD,
  SECRET_PROMPT
} secret_kind;

typedef struct secret {
  secret_kind kind;
  const char *arg;  /* file name, variable name or command */
  const char *what; /* "password" or "OAuth2 token" */
  char *value;      /* locked in memory, wiped by secret_free */
  size_t len, cap;
  bool loaded;
} secret;

typedef struct warnings {
  char items[8][200];
  size_t n;
} warnings;

void warn_add(warnings *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Loads the secret. Returns 0, or an exit code (EX_NOINPUT, EX_USAGE)
 * after printing why. Sanity warnings go to w. */
int secret_load(secret *s, warnings *w);
/* smtpkit_secret_fn: ctx is a secret. */
int secret_fetch(void *ctx, char *buf, size_t cap);
void secret_free(secret *s);

#endif
