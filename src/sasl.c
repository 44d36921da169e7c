/*
 * sasl.c — SASL client side for SMTP AUTH (RFC 4954, RFC 4422).
 *
 * Password mechanisms come from GNU SASL: PLAIN (RFC 4616), LOGIN,
 * CRAM-MD5 (RFC 2195), SCRAM-SHA-1 and SCRAM-SHA-256 (RFC 5802, RFC 7677)
 * and their -PLUS variants with channel binding (tls-exporter, RFC 9266,
 * on TLS 1.3; tls-unique, RFC 5929, on TLS 1.2).
 * Token mechanisms are ours: XOAUTH2 (Google's and Microsoft's format) and
 * OAUTHBEARER (RFC 7628), including the JSON error challenge a server
 * sends for a bad token, which we decode and answer so the exchange ends
 * cleanly.
 *
 * The policy that orders mechanisms (sk_sasl_plan) and the rule for
 * falling back after a failure (sk_sasl_should_fall_back) are ours too.
 */
#include "sasl.h"

#include "kb.h"

#include <ctype.h>
#include <gsasl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum sasl_kind { KIND_GSASL, KIND_XOAUTH2, KIND_OAUTHBEARER };

struct sk_sasl {
  enum sasl_kind kind;
  Gsasl_session *g;
  char mech[32];
  char oauth_error[256];
  int token_steps;
};

static Gsasl *gsasl_ctx; /* created on the first AUTH that needs it: a run
                            without one never pays for GNU SASL's set-up */

/* Strongest first. The planner drops what does not fit. */
static const char *const preference[] = {"OAUTHBEARER",
                                         "XOAUTH2",
                                         "SCRAM-SHA-256-PLUS",
                                         "SCRAM-SHA-1-PLUS",
                                         "SCRAM-SHA-256",
                                         "SCRAM-SHA-1",
                                         "PLAIN",
                                         "LOGIN",
                                         "CRAM-MD5"};

bool sk_sasl_known(const char *mech) {
  for (size_t i = 0; i < sizeof preference / sizeof *preference; i++)
    if (sk_strcasecmp_ascii(mech, preference[i]) == 0)
      return true;
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

static bool needs_channel_binding(const char *mech) {
  size_t n = strlen(mech);
  return n > 5 && sk_strcasecmp_ascii(mech + n - 5, "-PLUS") == 0;
}

static bool sends_initial_response(const char *mech) {
  /* LOGIN and CRAM-MD5 wait for the server's challenge. */
  return sk_strcasecmp_ascii(mech, "LOGIN") != 0 &&
         sk_strcasecmp_ascii(mech, "CRAM-MD5") != 0;
}

/* Reads a secret through the caller's callback into buf (wiped by the
 * caller). Returns its length or -1. */
static int get_secret(smtpkit_secret_fn fn, void *ctx, char *buf, size_t cap) {
  int n = fn ? fn(ctx, buf, cap) : -1;
  if (n < 0 || (size_t)n >= cap)
    return -1;
  buf[n] = '\0';
  return n;
}

/* ---- token mechanisms ---- */

static char *oauth_initial(const sk_sasl *s, const sk_sasl_creds *c,
                           const char *token, size_t tlen) {
  sk_buf b = {0};
  if (s->kind == KIND_XOAUTH2) {
    sk_buf_appendf(&b, "user=%s\001auth=Bearer ", c->user);
  } else {
    /* RFC 7628 §3.1: gs2 header, then key=value pairs separated by ^A. */
    sk_buf_appendf(&b, "n,a=");
    for (const char *p = c->user; *p; p++) /* RFC 5801 saslname escaping */
      if (*p == ',' || *p == '=')
        sk_buf_appendf(&b, "%s", *p == ',' ? "=2C" : "=3D");
      else
        sk_buf_append(&b, p, 1);
    sk_buf_appendf(&b, ",\001host=%s\001port=%u\001auth=Bearer ",
                   c->host ? c->host : "", c->port);
  }
  sk_buf_append(&b, token, tlen);
  sk_buf_append(&b, "\001\001", 2);
  char *out = sk_base64_encode(b.data, b.len);
  sk_buf_free(&b); /* wipes the token */
  return out;
}

/* A 334 during a token exchange carries a JSON error. Record it, answer
 * so the server can finish with its final failure reply. */
static int oauth_step(sk_sasl *s, const char *challenge, char **response) {
  char status[32], scope[160], schemes[32];
  sk_oauth_error_decode(challenge, strlen(challenge), status, sizeof status,
                        scope, sizeof scope, schemes, sizeof schemes);
  snprintf(s->oauth_error, sizeof s->oauth_error, "status=%s%s%s%s%s",
           status[0] ? status : "?", scope[0] ? " scope=" : "", scope,
           schemes[0] ? " schemes=" : "", schemes);
  /* XOAUTH2: an empty response; OAUTHBEARER: a lone ^A (RFC 7628 §3.2.3). */
  *response = sk_strdup(s->kind == KIND_XOAUTH2 ? "" : "AQ==");
  s->token_steps++;
  return s->token_steps > 2 ? SK_SASL_ERROR : SK_SASL_MORE;
}

const char *sk_sasl_oauth_error(const sk_sasl *s) {
  return s && s->oauth_error[0] ? s->oauth_error : NULL;
}

/* ---- GNU SASL mechanisms ---- */

static bool gsasl_begin(sk_sasl *s, const char *mech, const sk_sasl_creds *c,
                        char *err, size_t errlen) {
  if (!gsasl_ctx && gsasl_init(&gsasl_ctx) != GSASL_OK) {
    gsasl_ctx = NULL;
    snprintf(err, errlen, "cannot initialise GNU SASL");
    return false;
  }
  int rc = gsasl_client_start(gsasl_ctx, mech, &s->g);
  if (rc != GSASL_OK) {
    snprintf(err, errlen, "mechanism %s unavailable: %s", mech,
             gsasl_strerror(rc));
    return false;
  }
  gsasl_property_set(s->g, GSASL_AUTHID, c->user);
  /* Channel-binding data only for -PLUS: given to plain SCRAM, GNU SASL
   * 2.2 fails the exchange before it starts. */
  if (c->cb_type && c->cb_data && needs_channel_binding(mech))
    gsasl_property_set(s->g,
                       strcmp(c->cb_type, "tls-exporter") == 0
                           ? GSASL_CB_TLS_EXPORTER
                           : GSASL_CB_TLS_UNIQUE,
                       c->cb_data);
  char buf[8192];
  bool ok = get_secret(c->password, c->password_ctx, buf, sizeof buf) >= 0;
  if (ok)
    gsasl_property_set(s->g, GSASL_PASSWORD, buf);
  /* GNU SASL keeps its own copy, which sk_sasl_end wipes. */
  smtpkit_wipe(buf, sizeof buf);
  if (!ok)
    snprintf(err, errlen, "could not read the password");
  return ok;
}

sk_sasl *sk_sasl_start(const char *mech, const sk_sasl_creds *creds,
                       char **initial, char *err, size_t errlen) {
  *initial = NULL;
  sk_sasl *s = calloc(1, sizeof *s);
  if (!s)
    return NULL;
  sk_strlcpy(s->mech, mech, sizeof s->mech);
  if (sk_strcasecmp_ascii(mech, "XOAUTH2") == 0)
    s->kind = KIND_XOAUTH2;
  else if (sk_strcasecmp_ascii(mech, "OAUTHBEARER") == 0)
    s->kind = KIND_OAUTHBEARER;

  if (s->kind != KIND_GSASL) {
    char tok[16384];
    int n = get_secret(creds->token, creds->token_ctx, tok, sizeof tok);
    if (n < 0) {
      smtpkit_wipe(tok, sizeof tok);
      snprintf(err, errlen, "could not read the OAuth2 token");
      free(s);
      return NULL;
    }
    *initial = oauth_initial(s, creds, tok, (size_t)n);
    smtpkit_wipe(tok, sizeof tok);
    return s;
  }
  if (!gsasl_begin(s, mech, creds, err, errlen)) {
    sk_sasl_end(s);
    return NULL;
  }
  if (sends_initial_response(mech)) {
    char *out = NULL;
    int rc = gsasl_step64(s->g, NULL, &out);
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

int sk_sasl_step(sk_sasl *s, const char *challenge, char **response, char *err,
                 size_t errlen) {
  *response = NULL;
  if (s->kind != KIND_GSASL)
    return oauth_step(s, challenge, response);
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
    free(r); /* gsasl_free is free() in GNU SASL 2 */
  }
}

void sk_sasl_end(sk_sasl *s) {
  if (!s)
    return;
  if (s->g) {
    /* GNU SASL frees properties without clearing them: wipe the password
     * and what is derived from it in place first. */
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
  smtpkit_wipe(s, sizeof *s);
  free(s);
}

/* ---- policy ---- */

static bool usable(const char *mech, const sk_caps *caps, bool tls, bool cb,
                   bool have_password, bool have_token, bool allow_plain) {
  if (!sk_caps_has_mech(caps, mech) || !sk_sasl_known(mech))
    return false;
  if (sk_sasl_uses_token(mech) ? !have_token : !have_password)
    return false;
  if (needs_channel_binding(mech) && !cb)
    return false;
  return tls || allow_plain;
}

size_t sk_sasl_plan(const sk_caps *caps, bool tls, bool cb, bool have_password,
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
          name[i] = (char)toupper((unsigned char)p[i]);
        name[len] = '\0';
        if (usable(name, caps, tls, cb, have_password, have_token,
                   allow_plaintext))
          memcpy(out[n++], name, len + 1);
      }
      p = e ? e + 1 : NULL;
    }
    return n;
  }
  /* Over TLS: strongest first. Without TLS (only with
   * --allow-plaintext-auth): mechanisms that do not reveal the password
   * come before those that do. */
  for (int pass = 0; pass < 2; pass++)
    for (size_t i = 0; i < sizeof preference / sizeof *preference && n < max;
         i++) {
      const char *m = preference[i];
      bool reveals = sk_sasl_exposes_password(m) || sk_sasl_uses_token(m);
      if (!tls && (pass == 0) == reveals)
        continue;
      if (tls && pass == 1)
        continue;
      if (usable(m, caps, tls, cb, have_password, have_token, allow_plaintext))
        sk_strlcpy(out[n++], m, 32);
    }
  return n;
}

int sk_sasl_fall_back_to(const char *mech, smtpkit_cause cause,
                         const smtpkit_reply *reply, bool tls,
                         char remaining[][32], size_t n_remaining) {
  if (n_remaining == 0 || (reply->code >= 400 && reply->code < 500))
    return -1;
  switch (cause) {
  case SMTPKIT_CAUSE_mech_not_supported:
  case SMTPKIT_CAUSE_mech_too_weak:
  case SMTPKIT_CAUSE_encryption_required:
    return 0; /* the mechanism was the problem: the next one may work */
  default:
    break;
  }
  if (reply->code != 535 || !reply->text)
    return -1;
  if (sk_memcasestr(reply->text, strlen(reply->text), "mechanism"))
    return 0;
  /* A challenge-response mechanism can fail for a right password when the
   * server stores only a hash; PLAIN or LOGIN over TLS can still work, and
   * another challenge-response mechanism would fail the same way — skip
   * to the first that sends the password itself. */
  if (sk_sasl_exposes_password(mech) || sk_sasl_uses_token(mech) || !tls)
    return -1;
  for (size_t i = 0; i < n_remaining; i++)
    if (sk_sasl_exposes_password(remaining[i]))
      return (int)i;
  return -1;
}
