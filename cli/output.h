/* output.h — what the commands print: transcripts and human reports. */
#ifndef SMTPKIT_CLI_OUTPUT_H
#define SMTPKIT_CLI_OUTPUT_H

#include "json.h"
#include "secret.h"
#include "smtpkit.h"

#include <stdio.h>

typedef struct transcript {
  FILE *f;       /* transcript file or stderr; NULL: none */
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

/* The failure report on stderr: cause, stage, reply, detail. */
void report_error(const char *what, const smtpkit_error *e,
                  const char *mechanism);
void print_warnings(const warnings *w);
void json_warnings(jw *w, const warnings *ws);

#endif
