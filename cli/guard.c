/*
 * guard.c — the lock-out guard's memory.
 *
 * $XDG_STATE_HOME/smtpkit/refused (default ~/.local/state/smtpkit/refused),
 * mode 0600 in a 0700 directory, one line per refusal:
 *   EXPIRY KEY SALT HASH
 * KEY = SHA-256(host \0 port \0 user), SALT = 16 random bytes, HASH =
 * SHA-256(SALT || secret), all in hex. The secret itself is never stored
 * and cannot be recovered from the file. Expired lines are dropped
 * whenever the file is rewritten.
 */
#define _GNU_SOURCE
#include "guard.h"

#include "internal.h"

#include "smtpkit.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static bool state_path(char *out, size_t cap, bool create_dir) {
  const char *xdg = getenv("XDG_STATE_HOME");
  const char *home = getenv("HOME");
  char dir[4096];
  if (xdg && *xdg)
    snprintf(dir, sizeof dir, "%s/smtpkit", xdg);
  else if (home && *home)
    snprintf(dir, sizeof dir, "%s/.local/state/smtpkit", home);
  else
    return false;
  if (create_dir) {
    /* mkdir -p, private */
    for (char *p = dir + 1; *p; p++)
      if (*p == '/') {
        *p = '\0';
        mkdir(dir, 0700);
        *p = '/';
      }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
      return false;
  }
  snprintf(out, cap, "%s/refused", dir);
  return true;
}

static void hex(const unsigned char *b, size_t n, char *out) {
  for (size_t i = 0; i < n; i++)
    sprintf(out + 2 * i, "%02x", b[i]);
}

static void sha256(const void *a, size_t an, const void *b, size_t bn,
                   const void *c, size_t cn, char out[65]) {
  unsigned char md[32];
  unsigned len = 0;
  EVP_MD_CTX *x = EVP_MD_CTX_new();
  EVP_DigestInit_ex(x, EVP_sha256(), NULL);
  EVP_DigestUpdate(x, a, an);
  EVP_DigestUpdate(x, b, bn);
  EVP_DigestUpdate(x, c, cn);
  EVP_DigestFinal_ex(x, md, &len);
  EVP_MD_CTX_free(x);
  hex(md, 32, out);
}

static void key_of(const char *host, unsigned port, const char *user,
                   char out[65]) {
  char p[16];
  int n = snprintf(p, sizeof p, "%c%u%c", 0, port, 0);
  sha256(host, strlen(host), p, (size_t)n, user, strlen(user), out);
}

static void hash_of(const char *salt_hex, const char *key_secret, size_t len,
                    char out[65]) {
  sha256(salt_hex, strlen(salt_hex), key_secret, len, "", 0, out);
}

long guard_refused_ago(const char *host, unsigned port, const char *user,
                       const char *key_secret, size_t len) {
  char path[4200], key[65], line[400];
  if (!state_path(path, sizeof path, false))
    return -1;
  FILE *f = fopen(path, "re");
  if (!f)
    return -1;
  key_of(host, port, user, key);
  long now = (long)time(NULL), ago = -1;
  while (fgets(line, sizeof line, f)) {
    long expiry;
    char k[65], salt[33], h[65], want[65];
    if (sscanf(line, "%ld %64s %32s %64s", &expiry, k, salt, h) != 4)
      continue;
    if (expiry <= now || strcmp(k, key) != 0)
      continue;
    hash_of(salt, key_secret, len, want);
    if (strcmp(want, h) == 0)
      ago = GUARD_SECONDS - (expiry - now);
  }
  fclose(f);
  return ago;
}

/* Rewrites the file without expired lines and without lines for key
 * (when drop_key), then appends extra (if any). */
static void rewrite(const char *key, bool drop_key, const char *extra) {
  char path[4200], tmp[4300], line[400];
  if (!state_path(path, sizeof path, true))
    return;
  snprintf(tmp, sizeof tmp, "%s.%d", path, (int)getpid());
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    return;
  FILE *out = fdopen(fd, "w");
  FILE *in = fopen(path, "re");
  long now = (long)time(NULL);
  while (in && fgets(line, sizeof line, in)) {
    long expiry;
    char k[65];
    if (sscanf(line, "%ld %64s", &expiry, k) != 2 || expiry <= now)
      continue;
    if (drop_key && strcmp(k, key) == 0)
      continue;
    fputs(line, out);
  }
  if (in)
    fclose(in);
  if (extra)
    fputs(extra, out);
  if (fclose(out) == 0)
    rename(tmp, path);
  else
    unlink(tmp);
}

void guard_record(const char *host, unsigned port, const char *user,
                  const char *key_secret, size_t len) {
  char key[65], salt[33], h[65], line[400];
  unsigned char rnd[16];
  if (RAND_bytes(rnd, sizeof rnd) != 1)
    return;
  hex(rnd, sizeof rnd, salt);
  key_of(host, port, user, key);
  hash_of(salt, key_secret, len, h);
  snprintf(line, sizeof line, "%ld %s %s %s\n",
           (long)time(NULL) + GUARD_SECONDS, key, salt, h);
  rewrite(key, false, line);
}

void guard_forget(const char *host, unsigned port, const char *user) {
  char key[65], path[4200];
  if (!state_path(path, sizeof path, false) || access(path, F_OK) != 0)
    return;
  key_of(host, port, user, key);
  rewrite(key, true, NULL);
}

/* ---- as the commands use it ---- */

/* The secret this run would send: the password, else the token. */
static const secret *active_secret(const conn_opts *c) {
  return c->password.loaded ? &c->password : c->token.loaded ? &c->token : NULL;
}

bool guard_holds(const conn_opts *c, const char *host, unsigned port, char *why,
                 size_t cap) {
  const secret *sec = active_secret(c);
  if (!sec || c->force_auth)
    return false;
  long ago = guard_refused_ago(host, port, c->user, sec->value, sec->len);
  if (ago < 0)
    return false;
  snprintf(why, cap,
           "not sent: this server refused this same %s for %s %ld min ago. "
           "Retrying a wrong secret only counts toward a lock-out; fix it, "
           "wait %ld min, or use --force-auth",
           sec->what, c->user, ago / 60, (GUARD_SECONDS - ago + 59) / 60);
  return true;
}

void guard_error(smtpkit_error *err, const char *why) {
  sk_classify_event(err, SK_EV_HELD_BACK, SMTPKIT_STAGE_AUTH);
  sk_error_detail(err, "%s", why);
}

bool guard_is_refusal(const smtpkit_error *e) {
  return e->stage == SMTPKIT_STAGE_AUTH && e->reply.code == 535 &&
         (e->cause == SMTPKIT_CAUSE_bad_credentials ||
          e->cause == SMTPKIT_CAUSE_oauth_token_invalid);
}

void guard_learn(const conn_opts *c, const char *host, unsigned port,
                 bool logged_in, bool refused) {
  const secret *sec = active_secret(c);
  if (!sec)
    return;
  if (logged_in)
    guard_forget(host, port, c->user);
  else if (refused)
    guard_record(host, port, c->user, sec->value, sec->len);
}
