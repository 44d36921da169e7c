/*
 * caps.c — the EHLO reply as a set of capabilities.
 *
 * RFC 5321 §4.1.1.1 (EHLO), RFC 3207 (STARTTLS), RFC 4954 (AUTH), RFC 2920
 * (PIPELINING), RFC 1870 (SIZE), RFC 6152 (8BITMIME), RFC 6531 (SMTPUTF8),
 * RFC 2034 (ENHANCEDSTATUSCODES), RFC 3030 (CHUNKING, BINARYMIME), RFC 3461
 * (DSN). Also the pre-standard "AUTH=LOGIN PLAIN" form that old Microsoft
 * clients needed and some servers still send.
 */
#include "internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void add_mech(sk_caps *c, const char *m, size_t n) {
  char name[64];
  if (n == 0 || n >= sizeof name)
    return;
  for (size_t i = 0; i < n; i++)
    name[i] = (char)toupper((unsigned char)m[i]);
  name[n] = '\0';
  if (sk_caps_has_mech(c, name))
    return;
  size_t len = strlen(c->auth);
  if (len == 0 && sizeof c->auth > 1)
    c->auth[len++] = ' ', c->auth[len] = '\0';
  if (len + n + 2 > sizeof c->auth)
    return;
  memcpy(c->auth + len, name, n);
  c->auth[len + n] = ' ';
  c->auth[len + n + 1] = '\0';
  c->has_auth = true;
}

static void parse_mechs(sk_caps *c, const char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    while (i < n && (s[i] == ' ' || s[i] == '\t'))
      i++;
    size_t start = i;
    while (i < n && s[i] != ' ' && s[i] != '\t')
      i++;
    add_mech(c, s + start, i - start);
  }
}

/* Does the line start with keyword kw (case-insensitive), followed by end,
 * space or (for "AUTH=") '='? Returns the offset of the parameters. */
static size_t keyword(const char *line, size_t n, const char *kw) {
  size_t k = strlen(kw);
  if (n < k)
    return 0;
  for (size_t i = 0; i < k; i++)
    if (toupper((unsigned char)line[i]) != kw[i])
      return 0;
  if (n == k)
    return k;
  return line[k] == ' ' || line[k] == '\t' || line[k] == '=' ? k + 1 : 0;
}

static void parse_line(sk_caps *c, const char *l, size_t n) {
  size_t k;
  if ((k = keyword(l, n, "AUTH")))
    parse_mechs(c, l + k, n >= k ? n - k : 0);
  else if (keyword(l, n, "STARTTLS"))
    c->starttls = true;
  else if (keyword(l, n, "PIPELINING"))
    c->pipelining = true;
  else if (keyword(l, n, "8BITMIME"))
    c->eightbitmime = true;
  else if (keyword(l, n, "SMTPUTF8"))
    c->smtputf8 = true;
  else if (keyword(l, n, "ENHANCEDSTATUSCODES"))
    c->enhancedstatuscodes = true;
  else if (keyword(l, n, "CHUNKING"))
    c->chunking = true;
  else if (keyword(l, n, "BINARYMIME"))
    c->binarymime = true;
  else if (keyword(l, n, "DSN"))
    c->dsn = true;
  else if ((k = keyword(l, n, "SIZE"))) {
    c->has_size = true;
    c->size = k < n ? strtoull(l + k, NULL, 10) : 0;
  }
}

void sk_caps_parse(sk_caps *c, const smtpkit_reply *ehlo) {
  sk_caps_free(c);
  memset(c, 0, sizeof *c);
  if (!ehlo || ehlo->code != 250 || !ehlo->text)
    return;
  c->esmtp = true;
  const char *t = ehlo->text, *end = t + strlen(t);
  const char *nl = memchr(t, '\n', (size_t)(end - t));
  const char *first_end = nl ? nl : end;
  size_t w = 0;
  while (t + w < first_end && t[w] != ' ' && w + 1 < sizeof c->server_name)
    w++;
  memcpy(c->server_name, t, w);
  c->server_name[w] = '\0';
  if (!nl)
    return;
  c->lines = sk_strdup(nl + 1);
  for (const char *l = nl + 1; l < end;) {
    const char *e = memchr(l, '\n', (size_t)(end - l));
    if (!e)
      e = end;
    parse_line(c, l, (size_t)(e - l));
    l = e + 1;
  }
}

void sk_caps_free(sk_caps *c) {
  free(c->lines);
  c->lines = NULL;
}

bool sk_caps_has_mech(const sk_caps *c, const char *mech) {
  char pat[72];
  if (strlen(mech) + 3 > sizeof pat)
    return false;
  snprintf(pat, sizeof pat, " %s ", mech);
  return sk_memcasestr(c->auth, strlen(c->auth), pat) != NULL;
}
