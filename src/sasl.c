/*
 * sasl.c — SASL client side for SMTP AUTH (RFC 4954, RFC 4422).
 *
 * Mechanisms come from GNU SASL (PLAIN RFC 4616, LOGIN, CRAM-MD5 RFC 2195,
 * SCRAM-SHA-1/-256 RFC 5802/7677). The policy that orders them and the
 * rule for falling back after a failure are ours (see sk_sasl_plan and
 * sk_sasl_should_fall_back).
 */
#include "sasl.h"

#include <gsasl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct sk_sasl {
  Gsasl_session *g;
  char mech[32];
};

static Gsasl *gsasl_ctx; /* created on first AUTH: a run without AUTH
                            never pays for it */

/* Strongest first (SPEC / issue policy). Token mechanisms come first when
 * a token is given; the planner drops what does not fit. */
static const char *const preference[] = {
    "OAUTHBEARER", "XOAUTH2", "SCRAM-SHA-256", "SCRAM-SHA-1",
    "PLAIN",       "LOGIN",   "CRAM-MD5"};

bool sk_sasl_known(const char *mech) {
  for (size_t i = 0; i < sizeof preference / sizeof *preference; i++)
    if (sk_strcasecmp_ascii(mech, preference[i]) == 0)
      return !sk_sasl_uses_token(mech); /* token mechanisms: not yet */
  return false;
}

bool sk_sasl_exposes_password(const char *mech) {
  return sk_strcasecmp_ascii(mech, "PLAIN") == 0 ||
         sk_strcasecmp_ascii(mech, "LOGIN") == 0;
}

bool sk_sasl_uses_token(const char *mech) {
  return sk_strcasecmp_ascii(mech, "XOAUTH2") == 0 ||
         sk_strcasecmp_ascii(mech, "OAUTHBEARER") == 0;
}

static bool sends_initial_response(const char *mech) {
  /* LOGIN and CRAM-MD5 wait for the server's challenge. */
  return sk_strcasecmp_ascii(mech, "LOGIN") != 0 &&
         sk_strcasecmp_ascii(mech, "CRAM-MD5") != 0;
}

static bool set_secret(Gsasl_session *g, smtpkit_secret_fn fn, void *ctx) {
  char buf[8192];
  int n = fn ? fn(ctx, buf, sizeof buf) : -1;
  if (n < 0) {
    smtpkit_wipe(buf, sizeof buf);
    return false;
  }
  buf[(size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1] = '\0';
  gsasl_property_set(g, GSASL_PASSWORD, buf);
  /* The stack copy is no longer needed; GNU SASL keeps its own, which
   * sk_sasl_end wipes. */
  smtpkit_wipe(buf, sizeof buf);
  return true;
}

sk_sasl *sk_sasl_start(const char *mech, const sk_sasl_creds *creds,
                       char **initial, char *err, size_t errlen) {
  *initial = NULL;
  if (!gsasl_ctx && gsasl_init(&gsasl_ctx) != GSASL_OK) {
    snprintf(err, errlen, "cannot initialise GNU SASL");
    gsasl_ctx = NULL;
    return NULL;
  }
  sk_sasl *s = calloc(1, sizeof *s);
  if (!s)
    return NULL;
  sk_strlcpy(s->mech, mech, sizeof s->mech);
  int rc = gsasl_client_start(gsasl_ctx, mech, &s->g);
  if (rc != GSASL_OK) {
    snprintf(err, errlen, "mechanism %s unavailable: %s", mech,
             gsasl_strerror(rc));
    free(s);
    return NULL;
  }
  gsasl_property_set(s->g, GSASL_AUTHID, creds->user);
  if (!set_secret(s->g, creds->password, creds->password_ctx)) {
    snprintf(err, errlen, "could not read the password");
    sk_sasl_end(s);
    return NULL;
  }
  if (sends_initial_response(mech)) {
    char *out = NULL;
    rc = gsasl_step64(s->g, NULL, &out);
    if (rc != GSASL_OK && rc != GSASL_NEEDS_MORE) {
      snprintf(err, errlen, "%s: %s", mech, gsasl_strerror(rc));
      sk_sasl_free_response(out);
      sk_sasl_end(s);
      return NULL;
    }
    *initial = out ? out : sk_strdup("");
  }
  return s;
}

int sk_sasl_step(sk_sasl *s, const char *challenge, char **response,
                 char *err, size_t errlen) {
  *response = NULL;
  int rc = gsasl_step64(s->g, challenge, response);
  if (rc == GSASL_OK)
    return SK_SASL_DONE;
  if (rc == GSASL_NEEDS_MORE)
    return SK_SASL_MORE;
  snprintf(err, errlen, "%s: %s", s->mech, gsasl_strerror(rc));
  return SK_SASL_ERROR;
}

void sk_sasl_free_response(char *r) {
  if (r) {
    smtpkit_wipe(r, strlen(r));
    gsasl_free(r);
  }
}

void sk_sasl_end(sk_sasl *s) {
  if (!s)
    return;
  if (s->g) {
    /* GNU SASL frees properties without clearing them: wipe the password
     * (and anything derived from it) in place first. */
    static const Gsasl_property secret_props[] = {
        GSASL_PASSWORD, GSASL_SCRAM_SALTED_PASSWORD, GSASL_SCRAM_SERVERKEY,
        GSASL_SCRAM_STOREDKEY};
    for (size_t i = 0; i < sizeof secret_props / sizeof *secret_props; i++) {
      char *p = (char *)gsasl_property_fast(s->g, secret_props[i]);
      if (p)
        smtpkit_wipe(p, strlen(p));
    }
    gsasl_finish(s->g);
  }
  free(s);
}

static bool usable(const char *mech, const sk_caps *caps, bool tls,
                   bool have_password, bool have_token, bool allow_plain) {
  if (!sk_caps_has_mech(caps, mech) || !sk_sasl_known(mech))
    return false;
  if (sk_sasl_uses_token(mech) ? !have_token : !have_password)
    return false;
  return tls || allow_plain;
}

size_t sk_sasl_plan(const sk_caps *caps, bool tls, bool have_password,
                    bool have_token, bool allow_plaintext,
                    const char *restrict_list, char out[][32], size_t max) {
  size_t n = 0;
  if (restrict_list && *restrict_list) {
    /* The user's order wins. */
    for (const char *p = restrict_list; p && *p && n < max;) {
      const char *e = strchr(p, ',');
      size_t len = e ? (size_t)(e - p) : strlen(p);
      char name[32];
      if (len && len < sizeof name) {
        for (size_t i = 0; i < len; i++)
          name[i] = (char)(p[i] >= 'a' && p[i] <= 'z' ? p[i] - 32 : p[i]);
        name[len] = '\0';
        if (usable(name, caps, tls, have_password, have_token,
                   allow_plaintext))
          memcpy(out[n++], name, len + 1);
      }
      p = e ? e + 1 : NULL;
    }
    return n;
  }
  /* Without TLS, mechanisms that do not reveal the password go first. */
  for (int pass = 0; pass < 2; pass++)
    for (size_t i = 0; i < sizeof preference / sizeof *preference && n < max;
         i++) {
      const char *m = preference[i];
      bool exposes = sk_sasl_exposes_password(m);
      if (!tls && (pass == 0) == exposes)
        continue;
      if (tls && pass == 1)
        continue;
      if (usable(m, caps, tls, have_password, have_token, allow_plaintext))
        sk_strlcpy(out[n++], m, 32);
    }
  return n;
}

bool sk_sasl_should_fall_back(const char *mech, smtpkit_cause cause,
                              const smtpkit_reply *reply, bool tls,
                              char remaining[][32], size_t n_remaining) {
  if (n_remaining == 0 || (reply->code >= 400 && reply->code < 500))
    return false;
  switch (cause) {
  case SMTPKIT_CAUSE_mech_not_supported:
  case SMTPKIT_CAUSE_mech_too_weak:
  case SMTPKIT_CAUSE_encryption_required:
    return true;
  default:
    break;
  }
  if (reply->code != 535 || !reply->text)
    return false;
  if (sk_memcasestr(reply->text, strlen(reply->text), "mechanism"))
    return true;
  /* A challenge-response mechanism can fail for a right password when the
   * server stores only a hash; PLAIN or LOGIN over TLS can still work. */
  if (sk_sasl_exposes_password(mech) || sk_sasl_uses_token(mech) || !tls)
    return false;
  for (size_t i = 0; i < n_remaining; i++)
    if (sk_sasl_exposes_password(remaining[i]))
      return true;
  return false;
}
