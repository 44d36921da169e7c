/* json.h — a small streaming JSON writer for --json output (SPEC §4). */
#ifndef SMTPKIT_CLI_JSON_H
#define SMTPKIT_CLI_JSON_H

#include "smtpkit.h"

#include <stdbool.h>
#include <stdio.h>

typedef struct jw {
  FILE *f;
  int depth;
  bool first[32];
} jw;

/* Every member function takes key NULL inside arrays. */
void jw_begin(jw *w, FILE *f); /* opens the top object, "version": 1 */
void jw_end(jw *w);            /* closes it, newline */
void jw_obj(jw *w, const char *key);
void jw_obj_end(jw *w);
void jw_arr(jw *w, const char *key);
void jw_arr_end(jw *w);
void jw_str(jw *w, const char *key, const char *val); /* NULL: null */
void jw_int(jw *w, const char *key, long long v);
void jw_bool(jw *w, const char *key, bool v);
void jw_null(jw *w, const char *key);
/* {"code":..,"enhanced":..,"text":..}, or null when r has no code. */
void jw_reply(jw *w, const char *key, const smtpkit_reply *r);
/* Writes s as a JSON string: valid UTF-8 kept, other bytes as \xNN text. */
void jw_escape(FILE *f, const char *s);

#endif
