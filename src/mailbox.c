/*
 * mailbox.c — messages of a Maildir, a directory of .eml files or an mbox.
 *
 * Maildir (https://cr.yp.to/proto/maildir.html): one file per message in
 * new/ and cur/ (tmp/ holds messages being written and is skipped); file
 * names starting with '.' are not messages.
 * mbox (RFC 4155): each message follows a "From " line at the start of
 * the file or after an empty line; the writer adds an empty line after
 * each message, which is not part of it. Body lines that would look like a
 * From_ line were quoted with '>': mboxrd quotes ^>*From (so reading
 * removes one '>' from ^>+From), mboxo only ^From (reading removes it from
 * ^>From only). Content-Length (mboxcl) is not used.
 *
 * Messages are listed once (names or offsets) and read one at a time,
 * through bounded buffers: memory does not depend on their size.
 */
#define _GNU_SOURCE
#include "mailbox.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct entry {
  char *name;       /* what results call it */
  char *path;       /* the file (Maildir, .eml, single file) */
  off_t start, end; /* mbox: the message's bytes */
} entry;

struct sk_mailbox {
  sk_mailbox_kind kind;
  sk_mbox_quoting quoting;
  char *path;
  entry *e;
  size_t n, cap;
};

const char *sk_mailbox_kind_name(sk_mailbox_kind k) {
  switch (k) {
  case SK_MAILBOX_MAILDIR:
    return "Maildir";
  case SK_MAILBOX_EMLDIR:
    return "directory of .eml files";
  case SK_MAILBOX_MBOX:
    return "mbox";
  case SK_MAILBOX_FILE:
    return "single message";
  }
  return "?";
}

static bool add(sk_mailbox *mb, char *name, char *path, off_t start,
                off_t end) {
  if (mb->n == mb->cap) {
    size_t cap = mb->cap ? 2 * mb->cap : 64;
    entry *e = realloc(mb->e, cap * sizeof *e);
    if (!e) {
      free(name);
      free(path);
      return false;
    }
    mb->e = e;
    mb->cap = cap;
  }
  if (!name) {
    free(path);
    return false;
  }
  mb->e[mb->n++] = (entry){name, path, start, end};
  return true;
}

void sk_mailbox_free(sk_mailbox *mb) {
  if (!mb)
    return;
  for (size_t i = 0; i < mb->n; i++) {
    if (mb->e[i].path != mb->e[i].name)
      free(mb->e[i].path);
    free(mb->e[i].name);
  }
  free(mb->e);
  free(mb->path);
  free(mb);
}

sk_mailbox_kind sk_mailbox_kind_of(const sk_mailbox *mb) { return mb->kind; }
size_t sk_mailbox_count(const sk_mailbox *mb) { return mb->n; }
const char *sk_mailbox_name(const sk_mailbox *mb, size_t i) {
  return i < mb->n ? mb->e[i].name : NULL;
}

const char *sk_mailbox_path(const sk_mailbox *mb, size_t i) {
  return i < mb->n && mb->kind != SK_MAILBOX_MBOX ? mb->e[i].path : NULL;
}

/* ---- directories ---- */

static bool is_regular(DIR *dir, const struct dirent *d) {
  if (d->d_type == DT_REG)
    return true;
  if (d->d_type != DT_UNKNOWN && d->d_type != DT_LNK)
    return false;
  struct stat st;
  return fstatat(dirfd(dir), d->d_name, &st, 0) == 0 && S_ISREG(st.st_mode);
}

static bool ends_with_eml(const char *name) {
  size_t n = strlen(name);
  return n > 4 && strcasecmp(name + n - 4, ".eml") == 0;
}

/* Adds the regular files of dir (only *.eml when eml); their names are
 * "path/sub/file". Returns false on a read error. */
static bool list_dir(sk_mailbox *mb, const char *sub, bool eml) {
  char *dir = NULL;
  if (asprintf(&dir, "%s%s%s", mb->path, sub ? "/" : "", sub ? sub : "") < 0)
    return false;
  DIR *d = opendir(dir);
  if (!d) {
    free(dir);
    return errno == ENOENT;
  }
  bool ok = true;
  struct dirent *de;
  for (size_t k = 0; ok && k < 100000000 && (de = readdir(d)); k++) {
    if (de->d_name[0] == '.' || (eml && !ends_with_eml(de->d_name)) ||
        !is_regular(d, de))
      continue;
    char *p = NULL;
    if (asprintf(&p, "%s/%s", dir, de->d_name) < 0)
      p = NULL;
    ok = p && add(mb, p, p, 0, 0);
  }
  closedir(d);
  free(dir);
  return ok;
}

static const char *base_name(const char *p) {
  const char *s = strrchr(p, '/');
  return s ? s + 1 : p;
}

/* Maildir names start with the delivery time: natural order of the base
 * names is delivery order, across new/ and cur/. */
static int by_base_name(const void *a, const void *b) {
  const entry *x = a, *y = b;
  int c = strverscmp(base_name(x->name), base_name(y->name));
  return c ? c : strcmp(x->name, y->name);
}

static bool has_subdir(const char *dir, const char *sub) {
  char *p = NULL;
  struct stat st;
  bool yes = asprintf(&p, "%s/%s", dir, sub) >= 0 && stat(p, &st) == 0 &&
             S_ISDIR(st.st_mode);
  free(p);
  return yes;
}

static bool open_dir(sk_mailbox *mb, char *err, size_t errlen) {
  bool maildir = has_subdir(mb->path, "cur") || has_subdir(mb->path, "new");
  mb->kind = maildir ? SK_MAILBOX_MAILDIR : SK_MAILBOX_EMLDIR;
  bool ok = maildir ? list_dir(mb, "new", false) && list_dir(mb, "cur", false)
                    : list_dir(mb, NULL, true);
  if (!ok) {
    snprintf(err, errlen, "cannot read %s: %s", mb->path, strerror(errno));
    return false;
  }
  if (!maildir && mb->n == 0) {
    snprintf(err, errlen,
             "%s is neither a Maildir (no cur/ or new/) nor a directory of "
             ".eml files",
             mb->path);
    return false;
  }
  if (mb->n)
    qsort(mb->e, mb->n, sizeof *mb->e, by_base_name);
  return true;
}

/* ---- mbox ---- */

static bool add_mbox_message(sk_mailbox *mb, off_t start, off_t end) {
  char *name = NULL;
  if (asprintf(&name, "%s#%zu", mb->path, mb->n + 1) < 0)
    name = NULL;
  return add(mb, name, NULL, start, end < start ? start : end);
}

/* Finds the From_ lines: "From " at the start of the file or after an
 * empty line. A message runs from the line after its From_ line to the
 * empty line before the next one (or the end, less a final empty line). */
static bool scan_mbox(sk_mailbox *mb, FILE *f) {
  off_t pos = 0, line_start = 0, start = -1;
  size_t k = 0, prev_len = 0; /* bytes of this line / of the previous one */
  bool prev_blank = true;     /* the start of the file counts as one */
  char head[5];
  for (int c; (c = getc_unlocked(f)) != EOF;) {
    if (k < sizeof head)
      head[k] = (char)c;
    k++;
    pos++;
    if (c != '\n')
      continue;
    bool blank = k == 1 || (k == 2 && head[0] == '\r');
    if (k > 5 && prev_blank && memcmp(head, "From ", 5) == 0) {
      if (start >= 0 &&
          !add_mbox_message(mb, start, line_start - (off_t)prev_len))
        return false;
      start = pos;
    }
    prev_blank = blank;
    prev_len = k;
    line_start = pos;
    k = 0;
  }
  if (ferror(f))
    return false;
  if (start >= 0) {
    off_t end = pos;
    if (k == 0 && prev_blank && end - (off_t)prev_len >= start)
      end -= (off_t)prev_len; /* the empty line after the last message */
    return add_mbox_message(mb, start, end);
  }
  return true;
}

static bool open_file(sk_mailbox *mb, char *err, size_t errlen) {
  FILE *f = fopen(mb->path, "re");
  if (!f) {
    snprintf(err, errlen, "cannot read %s: %s", mb->path, strerror(errno));
    return false;
  }
  char first[5] = {0};
  size_t got = fread(first, 1, sizeof first, f);
  bool mbox = got == 5 && memcmp(first, "From ", 5) == 0;
  bool ok = true;
  if (mbox) {
    mb->kind = SK_MAILBOX_MBOX;
    rewind(f);
    ok = scan_mbox(mb, f);
  } else {
    mb->kind = SK_MAILBOX_FILE;
    char *p = strdup(mb->path);
    ok = p && add(mb, p, p, 0, 0);
  }
  if (!ok)
    snprintf(err, errlen, "cannot read %s: %s", mb->path,
             errno ? strerror(errno) : "out of memory");
  fclose(f);
  return ok;
}

sk_mailbox *sk_mailbox_open(const char *path, sk_mbox_quoting quoting,
                            char *err, size_t errlen, bool *missing) {
  *missing = false;
  struct stat st;
  if (stat(path, &st) != 0) {
    snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
    *missing = true;
    return NULL;
  }
  sk_mailbox *mb = calloc(1, sizeof *mb);
  if (!mb || !(mb->path = strdup(path))) {
    free(mb);
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  size_t n = strlen(mb->path);
  while (n > 1 && mb->path[n - 1] == '/')
    mb->path[--n] = '\0';
  mb->quoting = quoting;
  errno = 0;
  bool ok = S_ISDIR(st.st_mode) ? open_dir(mb, err, errlen)
                                : open_file(mb, err, errlen);
  if (!ok) {
    *missing = access(path, R_OK) != 0;
    sk_mailbox_free(mb);
    return NULL;
  }
  return mb;
}

/* ---- >From unquoting ---- */

void sk_unquote_init(sk_unquoter *u, sk_mbox_quoting q) {
  memset(u, 0, sizeof *u);
  u->quoting = q;
  u->bol = true;
}

static const char from_[] = "From ";

/* Writes what was held back: the '>' and the part of "From " after it. */
static size_t release(sk_unquoter *u, char *out) {
  out[0] = '>';
  memcpy(out + 1, from_, (size_t)u->matched);
  size_t k = 1 + (size_t)u->matched;
  u->holding = false;
  u->matched = 0;
  return k;
}

size_t sk_unquote(sk_unquoter *u, const char *in, size_t n, char *out) {
  char *o = out;
  for (size_t i = 0; i < n; i++) {
    char c = in[i];
    if (u->holding) {
      if (u->matched == 0 && c == '>' && u->quoting == SK_MBOXRD) {
        *o++ = '>'; /* ">>From": the run goes on; one '>' stays held */
        continue;
      }
      if (c == from_[u->matched]) {
        if (++u->matched == 5) { /* a quoted From_ line: drop the '>' */
          memcpy(o, from_, 5);
          o += 5;
          u->holding = false;
          u->matched = 0;
        }
        continue;
      }
      o += release(u, o);
    } else if (u->bol && c == '>') {
      u->holding = true;
      u->bol = false;
      continue;
    }
    *o++ = c;
    u->bol = c == '\n';
  }
  return (size_t)(o - out);
}

size_t sk_unquote_finish(sk_unquoter *u, char *out) {
  return u->holding ? release(u, out) : 0;
}

/* ---- an mbox message as a stream (fopencookie) ---- */

enum { MBOX_BUF = 16384 };

typedef struct mbox_stream {
  FILE *f;
  off_t start, end, pos;
  sk_unquoter uq;
  sk_mbox_quoting quoting;
  char in[MBOX_BUF];
  char out[MBOX_BUF + 8];
  size_t out_len, out_off;
  bool done;
} mbox_stream;

static ssize_t mbox_read(void *cookie, char *buf, size_t cap) {
  mbox_stream *m = cookie;
  for (int rounds = 0; m->out_off == m->out_len && !m->done && rounds < 64;
       rounds++) {
    m->out_len = m->out_off = 0;
    off_t left = m->end - m->pos;
    size_t want = left < MBOX_BUF ? (size_t)left : MBOX_BUF;
    size_t got = want ? fread(m->in, 1, want, m->f) : 0;
    if (got == 0 && want && ferror(m->f))
      return -1;
    m->pos += (off_t)got;
    m->out_len = sk_unquote(&m->uq, m->in, got, m->out);
    if (got == 0 || m->pos >= m->end) {
      m->out_len += sk_unquote_finish(&m->uq, m->out + m->out_len);
      m->done = true;
    }
  }
  size_t k = m->out_len - m->out_off;
  if (k > cap)
    k = cap;
  memcpy(buf, m->out + m->out_off, k);
  m->out_off += k;
  return (ssize_t)k;
}

/* Only a rewind to the start is supported (what msg_input and retries
 * need). */
static int mbox_seek(void *cookie, off64_t *off, int whence) {
  mbox_stream *m = cookie;
  if (whence != SEEK_SET || *off != 0 || fseeko(m->f, m->start, SEEK_SET))
    return -1;
  m->pos = m->start;
  m->out_len = m->out_off = 0;
  m->done = false;
  sk_unquote_init(&m->uq, m->quoting);
  return 0;
}

static int mbox_close(void *cookie) {
  mbox_stream *m = cookie;
  int rc = fclose(m->f);
  free(m);
  return rc;
}

FILE *sk_mailbox_fopen(const sk_mailbox *mb, size_t i) {
  if (i >= mb->n) {
    errno = EINVAL;
    return NULL;
  }
  const entry *e = &mb->e[i];
  if (mb->kind != SK_MAILBOX_MBOX)
    return fopen(e->path, "re");
  mbox_stream *m = calloc(1, sizeof *m);
  if (!m)
    return NULL;
  m->f = fopen(mb->path, "re");
  m->start = e->start;
  m->end = e->end;
  m->quoting = mb->quoting;
  off64_t zero = 0;
  if (!m->f || mbox_seek(m, &zero, SEEK_SET) != 0) {
    int saved = errno;
    if (m->f)
      fclose(m->f);
    free(m);
    errno = saved;
    return NULL;
  }
  cookie_io_functions_t io = {
      .read = mbox_read, .write = NULL, .seek = mbox_seek, .close = mbox_close};
  FILE *f = fopencookie(m, "r", io);
  if (!f)
    mbox_close(m);
  return f;
}
