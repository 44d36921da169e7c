/*
 * run_corpus.c — checks `smtpkit explain` (smtpkit_explain_text) against
 * tests/explain/corpus.tsv, and that the corpus exercises every wording
 * the knowledge base knows.
 *
 * corpus.tsv: one case per line, four TAB-separated columns
 *   cause     expected cause; "none" = no SMTP reply or known error in the
 *             text (explain exits 1 and says so)
 *   provider  expected provider id, "-" for none; "=id" means the text
 *             alone cannot tell, so id is given as context (explain
 *             --provider id) and expected back
 *   input     the pasted text, C-escaped (\n \t \\ \" \')
 *   source    where the text comes from
 * The first line is the header; lines starting with '#' are comments.
 *
 * Usage: run_corpus CORPUS.tsv   (prints every mismatch; exit 1 if any)
 */
#include "kb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t unescape(const char *in, char *out) {
  size_t o = 0;
  for (size_t i = 0; in[i]; i++) {
    if (in[i] != '\\' || !in[i + 1]) {
      out[o++] = in[i];
      continue;
    }
    char c = in[++i];
    switch (c) {
    case 'n':
      out[o++] = '\n';
      break;
    case 't':
      out[o++] = '\t';
      break;
    case 'r':
      out[o++] = '\r';
      break;
    case '\\':
    case '"':
    case '\'':
      out[o++] = c;
      break;
    default:
      out[o++] = '\\';
      out[o++] = c;
    }
  }
  out[o] = '\0';
  return o;
}

/* Splits line into n TAB-separated fields (in place). */
static int fields(char *line, char **f, int n) {
  int k = 0;
  f[k++] = line;
  for (char *p = line; *p && k < n; p++)
    if (*p == '\t') {
      *p = '\0';
      f[k++] = p + 1;
    }
  return k;
}

static char **inputs;
static size_t n_inputs;

static void keep_input(const char *s) {
  inputs = realloc(inputs, (n_inputs + 1) * sizeof *inputs);
  inputs[n_inputs++] = strdup(s);
}

/* One case; returns true when it passes. */
static bool check(int lineno, const char *cause, const char *prov,
                  const char *raw) {
  char *text = malloc(strlen(raw) + 1);
  size_t len = unescape(raw, text);
  keep_input(text);
  const char *hint = prov[0] == '=' ? prov + 1 : NULL;
  const char *want_p = hint ? hint : strcmp(prov, "-") ? prov : NULL;
  smtpkit_explanation e;
  smtpkit_explain_text(text, len, hint, &e);
  free(text);
  const char *got_c = e.found ? smtpkit_cause_name(e.cause) : "none";
  const char *got_p = e.advice.provider;
  bool ok = !strcmp(got_c, cause) &&
            (want_p ? got_p && !strcmp(want_p, got_p) : !got_p);
  if (!ok)
    printf("line %d: want %s/%s, got %s/%s (code %d %s)\n    %.150s\n", lineno,
           cause, want_p ? want_p : "-", got_c, got_p ? got_p : "-", e.code,
           e.enhanced, raw);
  return ok;
}

/* Every wording of replies.def must occur in some corpus input. */
static int coverage(void) {
  int missing = 0;
  for (size_t i = 0; i < sk_kb_reply_count(); i++) {
    const sk_kb_reply *e = sk_kb_reply_at(i);
    if (!e->pattern[0])
      continue;
    bool seen = false;
    for (size_t k = 0; k < n_inputs && !seen; k++)
      seen =
          sk_kb_pattern_match(e->pattern, inputs[k], strlen(inputs[k]), NULL);
    if (!seen) {
      printf("not exercised: %s %d %s \"%s\"\n", e->origin, e->code,
             e->enhanced, e->pattern);
      missing++;
    }
  }
  return missing;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s corpus.tsv\n", argv[0]);
    return 2;
  }
  FILE *f = fopen(argv[1], "r");
  if (!f) {
    perror(argv[1]);
    return 2;
  }
  char *line = NULL;
  size_t cap = 0;
  int lineno = 0, total = 0, passed = 0;
  while (getline(&line, &cap, f) > 0) {
    lineno++;
    line[strcspn(line, "\r\n")] = '\0';
    if (lineno == 1 || line[0] == '#' || !line[0])
      continue;
    char *fl[4];
    if (fields(line, fl, 4) != 4) {
      printf("line %d: not 4 TAB-separated fields\n", lineno);
      total++;
      continue;
    }
    total++;
    passed += check(lineno, fl[0], fl[1], fl[2]);
  }
  free(line);
  fclose(f);
  int missing = coverage();
  printf("corpus: %d/%d cases pass; %d knowledge-base wordings not "
         "exercised\n",
         passed, total, missing);
  for (size_t i = 0; i < n_inputs; i++)
    free(inputs[i]);
  free(inputs);
  return passed == total && !missing ? 0 : 1;
}
