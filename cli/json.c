/* json.c — JSON writer (RFC 8259). Reply texts may hold any byte: valid
 * UTF-8 is kept, control characters become \u escapes, and bytes that are
 * not UTF-8 (QQ's GBK replies, garbage) are shown as the text "\xNN" so
 * the document stays valid and nothing is silently dropped. */
#include "json.h"

#include <string.h>

/* Length of the valid UTF-8 sequence at s, or 0. */
static size_t utf8_len(const unsigned char *s) {
  if (s[0] < 0x80)
    return 1;
  size_t n = s[0] >= 0xF0 && s[0] <= 0xF4   ? 4
             : s[0] >= 0xE0                 ? 3
             : s[0] >= 0xC2 && s[0] <= 0xDF ? 2
                                            : 0;
  if (n == 0 || (n == 3 && s[0] > 0xEF))
    return 0;
  for (size_t i = 1; i < n; i++)
    if ((s[i] & 0xC0) != 0x80)
      return 0;
  if (n == 3 && s[0] == 0xE0 && s[1] < 0xA0)
    return 0; /* overlong */
  if (n == 3 && s[0] == 0xED && s[1] >= 0xA0)
    return 0; /* surrogate */
  if (n == 4 &&
      ((s[0] == 0xF0 && s[1] < 0x90) || (s[0] == 0xF4 && s[1] >= 0x90)))
    return 0;
  return n;
}

void jw_escape(FILE *f, const char *str) {
  const unsigned char *s = (const unsigned char *)str;
  fputc('"', f);
  while (*s) {
    unsigned char c = *s;
    if (c == '"' || c == '\\') {
      fputc('\\', f);
      fputc(c, f);
      s++;
    } else if (c == '\n') {
      fputs("\\n", f), s++;
    } else if (c == '\r') {
      fputs("\\r", f), s++;
    } else if (c == '\t') {
      fputs("\\t", f), s++;
    } else if (c < 0x20 || c == 0x7f) {
      fprintf(f, "\\u%04x", c), s++;
    } else {
      size_t n = utf8_len(s);
      if (n == 0) {
        fprintf(f, "\\\\x%02X", c);
        s++;
      } else {
        fwrite(s, 1, n, f);
        s += n;
      }
    }
  }
  fputc('"', f);
}

static void member(jw *w, const char *key) {
  if (!w->first[w->depth])
    fputc(',', w->f);
  w->first[w->depth] = false;
  if (key) {
    jw_escape(w->f, key);
    fputc(':', w->f);
  }
}

static void open_(jw *w, const char *key, char c) {
  member(w, key);
  fputc(c, w->f);
  if (w->depth < 31)
    w->depth++;
  w->first[w->depth] = true;
}

void jw_begin(jw *w, FILE *f) {
  memset(w, 0, sizeof *w);
  w->f = f;
  w->first[0] = true;
  open_(w, NULL, '{');
  jw_int(w, "version", 1);
}

void jw_end(jw *w) {
  jw_obj_end(w);
  fputc('\n', w->f);
  fflush(w->f);
}

void jw_obj(jw *w, const char *key) { open_(w, key, '{'); }
void jw_arr(jw *w, const char *key) { open_(w, key, '['); }

void jw_obj_end(jw *w) {
  fputc('}', w->f);
  if (w->depth > 0)
    w->depth--;
}

void jw_arr_end(jw *w) {
  fputc(']', w->f);
  if (w->depth > 0)
    w->depth--;
}

void jw_str(jw *w, const char *key, const char *val) {
  member(w, key);
  if (val)
    jw_escape(w->f, val);
  else
    fputs("null", w->f);
}

void jw_int(jw *w, const char *key, long long v) {
  member(w, key);
  fprintf(w->f, "%lld", v);
}

void jw_bool(jw *w, const char *key, bool v) {
  member(w, key);
  fputs(v ? "true" : "false", w->f);
}

void jw_null(jw *w, const char *key) {
  member(w, key);
  fputs("null", w->f);
}

void jw_reply(jw *w, const char *key, const smtpkit_reply *r) {
  if (!r || !r->code) {
    jw_null(w, key);
    return;
  }
  jw_obj(w, key);
  jw_int(w, "code", r->code);
  jw_str(w, "enhanced", r->enhanced[0] ? r->enhanced : NULL);
  jw_str(w, "text", r->text ? r->text : "");
  jw_obj_end(w);
}
