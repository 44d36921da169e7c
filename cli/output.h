/* output.h — what the commands print: transcripts and human reports. */
#ifndef SMTPKIT_CLI_OUTPUT_H
#define SMTPKIT_CLI_OUTPUT_H

#include "json.h"
#include "secret.h"
#include "smtpkit.h"

#include <stdio.h>

typedef struct transcript {
  FILE *f; /* transcript file or stderr; NULL: none */
  bool close_f;
  bool events_only; /* -v without --transcript: only '*' lines */
} transcript;

/* Opens --transcript FILE (mode 0600; "-" for stderr). Returns 0 or
 * EX_CANTCREAT after printing why. */
int transcript_open(transcript *t, const char *path, int verbose);
void transcript_close(transcript *t);
/* smtpkit_transcript_fn */
void transcript_line(void *ctx, char dir, const char *line, size_t len);

/* Writes s with bytes that are not printable shown as \xNN. */
void print_escaped(FILE *f, const char *s, size_t n);

/* The failure report on stderr: cause, stage, reply, detail, the AUTH
 * attempts, then what it means and how to fix it. */
void report_error(const char *what, const smtpkit_error *e,
                  const smtpkit_auth_attempt *attempts, size_t n_attempts);
void print_warnings(const warnings *w);
/* Text in the report layout: a 12-column label, then wrapped text. */
void print_wrapped(FILE *f, const char *s);
void print_field(FILE *f, const char *label, const char *s);
/* meaning / this reply / why / fix 1. 2. ... / see */
void print_advice(FILE *f, const smtpkit_advice *a, const char *note_label);
/* [{"mechanism":..,"reply":{..}}, ...] under key. */
void json_auth_attempts(jw *w, const char *key, const smtpkit_auth_attempt *a,
                        size_t n);
/* "provider", "summary", "fix", "references" members. */
void json_advice(jw *w, const smtpkit_advice *a);
void json_warnings(jw *w, const warnings *ws);

#endif
