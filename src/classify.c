/*
 * classify.c — the one place where evidence becomes a cause (SPEC §3).
 *
 * Order of judgement for a server reply:
 *   0. evidence outside the reply: a banner of another server than the
 *      one expected (interception), an OAuth2 error challenge;
 *   1. what the knowledge base knows of this reply's wording (kb.c,
 *      data/kb/replies.def) — for a pasted log, of the text around it;
 *   2. the meaning of the reply code at this stage (RFC 4954 §6 for AUTH,
 *      RFC 5321 §4.2.3 elsewhere);
 *   3. the knowledge base's meanings of bare codes (RFC 3463, RFC 4954,
 *      RFC 5248, RFC 5321 entries without wording);
 *   4. the enhanced status code's subject and detail (RFC 3463);
 *   5. the code class: 4xx transient, 5xx permanent.
 * Then the context refines a refusal of credentials: an OAuth2 mechanism
 * makes it oauth_token_invalid; a user name that breaks the provider's
 * rule (SendGrid's literal "apikey") makes it wrong_username_format; an
 * MX host refusing AUTH is the wrong endpoint.
 *
 * Transience: what the knowledge base knows of a reply wins (Mailjet's
 * 435 4.7.8 for bad credentials is permanent); otherwise a 4xx reply is
 * transient and a 5xx is not.
 *
 * Interception is judged here only when the context names the provider the
 * user expects (ctx->provider, or the provider of ctx->host) and the
 * banner carries the fingerprint of a server program such as a hosting
 * company's cPanel Exim and none of the expected provider; doctor, which
 * sees the certificate too, may conclude it from more evidence.
 *
 * Events without a reply (socket and TLS errors, missing extensions) map
 * one to one to causes.
 */
#include "doctor.h"
#include "kb.h"

#include <stdlib.h>
#include <string.h>

static void set(smtpkit_error *err, smtpkit_cause c, smtpkit_stage stage) {
  err->cause = c;
  err->transient = sk_cause_default_transient(c);
  err->stage = stage;
}

void sk_classify_event(smtpkit_error *err, sk_event ev, smtpkit_stage stage) {
  static const smtpkit_cause map[] = {
      [SK_EV_NONE] = SMTPKIT_CAUSE_unknown,
      [SK_EV_DNS] = SMTPKIT_CAUSE_dns_failure,
      [SK_EV_REFUSED] = SMTPKIT_CAUSE_connection_refused,
      [SK_EV_CONNECT_TIMEOUT] = SMTPKIT_CAUSE_connection_timeout,
      [SK_EV_GREETING_TIMEOUT] = SMTPKIT_CAUSE_server_unavailable,
      [SK_EV_TIMEOUT] = SMTPKIT_CAUSE_server_unavailable,
      [SK_EV_CLOSED] = SMTPKIT_CAUSE_connection_lost,
      [SK_EV_CLOSED_AFTER_DATA] = SMTPKIT_CAUSE_delivery_unknown,
      [SK_EV_GARBLED] = SMTPKIT_CAUSE_protocol_error,
      [SK_EV_INJECTION] = SMTPKIT_CAUSE_protocol_error,
      [SK_EV_TLS_HANDSHAKE] = SMTPKIT_CAUSE_tls_handshake_failed,
      [SK_EV_TLS_PLAIN_BANNER] = SMTPKIT_CAUSE_tls_on_plaintext_port,
      [SK_EV_TLS_ON_TLS_PORT] = SMTPKIT_CAUSE_plaintext_on_tls_port,
      [SK_EV_TLS_VERSION] = SMTPKIT_CAUSE_tls_version_unsupported,
      [SK_EV_CERT_UNTRUSTED] = SMTPKIT_CAUSE_certificate_untrusted,
      [SK_EV_CERT_NAME] = SMTPKIT_CAUSE_certificate_name_mismatch,
      [SK_EV_CERT_EXPIRED] = SMTPKIT_CAUSE_certificate_expired,
      [SK_EV_NO_STARTTLS] = SMTPKIT_CAUSE_starttls_not_offered,
      [SK_EV_TLS_FIRST] = SMTPKIT_CAUSE_starttls_required,
      [SK_EV_NO_AUTH] = SMTPKIT_CAUSE_auth_not_offered,
      [SK_EV_NO_COMMON_MECH] = SMTPKIT_CAUSE_no_common_mechanism,
      [SK_EV_NO_RECIPIENTS] = SMTPKIT_CAUSE_recipient_rejected,
      [SK_EV_TOO_BIG] = SMTPKIT_CAUSE_message_too_big,
      /* the same secret was refused as a bad credential minutes ago */
      [SK_EV_HELD_BACK] = SMTPKIT_CAUSE_bad_credentials,
      [SK_EV_INTERNAL] = SMTPKIT_CAUSE_unknown,
  };
  set(err,
      (unsigned)ev < sizeof map / sizeof *map ? map[ev] : SMTPKIT_CAUSE_unknown,
      stage);
}

static bool text_has(const smtpkit_reply *r, const char *needle) {
  return r->text && sk_memcasestr(r->text, strlen(r->text), needle);
}

static bool enh_is(const smtpkit_reply *r, const char *subject_detail) {
  /* Compares "X.7.8" ignoring the class digit. */
  return r->enhanced[0] && strcmp(r->enhanced + 1, subject_detail) == 0;
}

static smtpkit_cause enhanced_meaning(const smtpkit_reply *r,
                                      smtpkit_stage stage);

/* RFC 4954 §6 and the codes servers really use in answer to AUTH. The
 * enhanced code, where it names an authentication outcome, is more precise
 * than the basic code ("534 5.7.14" is Gmail's sign-in demand, not a weak
 * mechanism). */
static smtpkit_cause auth_reply(const smtpkit_reply *r) {
  static const char *const precise[] = {".7.8",  ".7.9",  ".7.11",
                                        ".7.12", ".7.13", ".7.14"};
  for (size_t i = 0; i < sizeof precise / sizeof *precise; i++)
    if (enh_is(r, precise[i]))
      return enhanced_meaning(r, SMTPKIT_STAGE_AUTH);
  if (enh_is(r, ".7.12") || r->code == 432)
    return SMTPKIT_CAUSE_password_transition_needed;
  if (r->code == 530 && (text_has(r, "STARTTLS") || enh_is(r, ".7.0")))
    return text_has(r, "STARTTLS") ? SMTPKIT_CAUSE_starttls_required
                                   : SMTPKIT_CAUSE_encryption_required;
  switch (r->code) {
  case 454:
    return SMTPKIT_CAUSE_temporary_auth_failure;
  case 504:
    return SMTPKIT_CAUSE_mech_not_supported;
  case 534:
    return SMTPKIT_CAUSE_mech_too_weak;
  case 538:
    return SMTPKIT_CAUSE_encryption_required;
  case 535:
    return SMTPKIT_CAUSE_bad_credentials;
  case 525:
    return SMTPKIT_CAUSE_account_locked;
  default:
    return SMTPKIT_CAUSE_COUNT;
  }
}

/* RFC 3463 subject.detail meanings that map to one cause at any stage. */
static smtpkit_cause enhanced_meaning(const smtpkit_reply *r,
                                      smtpkit_stage stage) {
  if (!r->enhanced[0])
    return SMTPKIT_CAUSE_COUNT;
  const char *sd = r->enhanced + 1;
  if (strncmp(sd, ".1.", 3) == 0 && stage == SMTPKIT_STAGE_RCPT)
    return SMTPKIT_CAUSE_recipient_rejected;
  if (strcmp(sd, ".3.4") == 0 || strcmp(sd, ".2.3") == 0)
    return SMTPKIT_CAUSE_message_too_big;
  if (strcmp(sd, ".7.8") == 0)
    return SMTPKIT_CAUSE_bad_credentials;
  if (strcmp(sd, ".7.9") == 0)
    return SMTPKIT_CAUSE_mech_too_weak;
  if (strcmp(sd, ".7.11") == 0)
    return SMTPKIT_CAUSE_encryption_required;
  if (strcmp(sd, ".7.12") == 0)
    return SMTPKIT_CAUSE_password_transition_needed;
  if (strcmp(sd, ".7.13") == 0)
    return SMTPKIT_CAUSE_account_locked;
  if (strcmp(sd, ".7.14") == 0)
    return SMTPKIT_CAUSE_web_login_required;
  if (strcmp(sd, ".3.2") == 0)
    return SMTPKIT_CAUSE_server_unavailable;
  return SMTPKIT_CAUSE_COUNT;
}

/* What a reply means at a stage, from its code alone. */
static smtpkit_cause stage_reply(const smtpkit_reply *r, smtpkit_stage stage,
                                 bool authed) {
  if (r->code == 421)
    return SMTPKIT_CAUSE_server_unavailable;
  switch (stage) {
  case SMTPKIT_STAGE_CONNECT:
  case SMTPKIT_STAGE_GREETING:
    return r->code >= 500 ? SMTPKIT_CAUSE_ip_blocked : SMTPKIT_CAUSE_COUNT;
  case SMTPKIT_STAGE_EHLO:
    return r->code == 501 || r->code == 550 || r->code == 554
               ? SMTPKIT_CAUSE_ehlo_rejected
               : SMTPKIT_CAUSE_COUNT;
  case SMTPKIT_STAGE_STARTTLS:
    return r->code == 454 ? SMTPKIT_CAUSE_starttls_not_offered
                          : SMTPKIT_CAUSE_COUNT;
  case SMTPKIT_STAGE_AUTH:
    return auth_reply(r);
  case SMTPKIT_STAGE_MAIL:
  case SMTPKIT_STAGE_RCPT:
    if (r->code == 530 || enh_is(r, ".7.57"))
      return text_has(r, "STARTTLS") ? SMTPKIT_CAUSE_starttls_required
                                     : SMTPKIT_CAUSE_auth_required;
    if (r->code == 552 && stage == SMTPKIT_STAGE_MAIL)
      return SMTPKIT_CAUSE_message_too_big;
    if (text_has(r, "relay"))
      return SMTPKIT_CAUSE_relay_denied;
    if (stage == SMTPKIT_STAGE_MAIL && enh_is(r, ".7.1"))
      return authed ? SMTPKIT_CAUSE_sender_not_authorized
                    : SMTPKIT_CAUSE_auth_required;
    if (stage == SMTPKIT_STAGE_RCPT && enh_is(r, ".7.1") && !authed)
      return SMTPKIT_CAUSE_relay_denied;
    if (stage == SMTPKIT_STAGE_RCPT && r->code >= 550 && r->code <= 553)
      return SMTPKIT_CAUSE_recipient_rejected;
    return SMTPKIT_CAUSE_COUNT;
  case SMTPKIT_STAGE_DATA:
    if (r->code == 552)
      return SMTPKIT_CAUSE_message_too_big;
    return r->code >= 500 ? SMTPKIT_CAUSE_message_rejected
                          : SMTPKIT_CAUSE_COUNT;
  default:
    return SMTPKIT_CAUSE_COUNT;
  }
}

/* ---- context ---- */

/* The provider the context names: given, else by host name, else by the
 * banner's fingerprint. */
static const char *context_provider(const sk_context *ctx) {
  if (!ctx)
    return NULL;
  const char *p = sk_kb_provider(ctx->provider);
  if (!p && ctx->host)
    p = sk_kb_provider_from_host(ctx->host, NULL);
  if (!p && ctx->banner)
    p = sk_kb_provider_from_text(ctx->banner, strlen(ctx->banner),
                                 SK_FP_BANNER | SK_FP_REPLY);
  return p;
}

bool sk_classify_intercepted(const sk_context *ctx, const char **who) {
  if (!ctx || !ctx->banner)
    return false;
  const char *expected = sk_kb_provider(ctx->provider);
  if (!expected && ctx->host)
    expected = sk_kb_provider_from_host(ctx->host, NULL);
  if (!expected)
    return false;
  const char *ids[8], *other = NULL;
  size_t k = sk_kb_fingerprints(ctx->banner, strlen(ctx->banner),
                                SK_FP_BANNER | SK_FP_REPLY, ids, 8);
  for (size_t i = 0; i < k && i < 8; i++) {
    if (!strcmp(ids[i], expected))
      return false;
    /* Another provider's banner is more likely shared infrastructure (AOL
     * runs on Yahoo's) or a wrong host name than interception; a hosting
     * server program's banner (cPanel's Exim) is the interception. */
    if (!other && !sk_kb_provider(ids[i]))
      other = ids[i];
  }
  if (other && who)
    *who = other;
  return other != NULL;
}

/* ---- OAuth2 error challenges (RFC 7628 §3.2.2) ---- */

/* Copies the value of "key" in a flat JSON object: a string (escapes
 * kept as written) or a bare token such as a number. */
static bool json_member(const char *js, size_t n, const char *key, char *out,
                        size_t cap) {
  size_t kn = strlen(key);
  for (size_t i = 0; i + kn + 2 <= n; i++) {
    if (js[i] != '"' || strncmp(js + i + 1, key, kn) || js[i + kn + 1] != '"')
      continue;
    size_t j = i + kn + 2;
    while (j < n && (js[j] == ' ' || js[j] == '\t'))
      j++;
    if (j >= n || js[j] != ':')
      continue;
    j++;
    while (j < n && (js[j] == ' ' || js[j] == '\t'))
      j++;
    bool quoted = j < n && js[j] == '"';
    size_t s = j + quoted, e = s;
    while (e < n && (quoted ? js[e] != '"'
                            : js[e] != ',' && js[e] != '}' && js[e] != ' '))
      e += quoted && js[e] == '\\' && e + 1 < n ? 2 : 1;
    if (out && cap) {
      size_t m = e - s < cap - 1 ? e - s : cap - 1;
      memcpy(out, js + s, m);
      out[m] = '\0';
    }
    return true;
  }
  return false;
}

bool sk_oauth_error_decode(const char *b64, size_t n, char *status,
                           size_t status_cap, char *scope, size_t scope_cap,
                           char *schemes, size_t schemes_cap) {
  if (status && status_cap)
    status[0] = '\0';
  if (scope && scope_cap)
    scope[0] = '\0';
  if (schemes && schemes_cap)
    schemes[0] = '\0';
  while (n && (*b64 == ' ' || *b64 == '\t'))
    b64++, n--;
  while (n && (b64[n - 1] == ' ' || b64[n - 1] == '\r' || b64[n - 1] == '\n'))
    n--;
  size_t len = 0;
  unsigned char *js = n ? sk_base64_decode(b64, n, &len) : NULL;
  if (!js)
    return false;
  const char *j = (const char *)js;
  size_t i = 0;
  while (i < len && (j[i] == ' ' || j[i] == '\n' || j[i] == '\r'))
    i++;
  bool ok = i < len && j[i] == '{' &&
            json_member(j + i, len - i, "status", status, status_cap);
  if (ok) {
    json_member(j + i, len - i, "scope", scope, scope_cap);
    json_member(j + i, len - i, "schemes", schemes, schemes_cap);
  }
  free(js);
  return ok;
}

static bool oauth_challenge(const smtpkit_reply *r) {
  return r->code == 334 && r->text &&
         sk_oauth_error_decode(r->text, strlen(r->text), NULL, 0, NULL, 0, NULL,
                               0);
}

static bool oauth_mechanism(const char *mech) {
  return mech && (!sk_strcasecmp_ascii(mech, "XOAUTH2") ||
                  !sk_strcasecmp_ascii(mech, "OAUTHBEARER"));
}

/* ---- the decision ---- */

static bool is_failure(const smtpkit_reply *r) {
  return r->code >= 400 ||
         (!r->code && (r->enhanced[0] == '4' || r->enhanced[0] == '5'));
}

/* 4xx is transient; without a code, the enhanced code's class tells. */
static bool class_transient(const smtpkit_reply *r) {
  return r->code ? r->code >= 400 && r->code < 500 : r->enhanced[0] == '4';
}

/* What the context adds to a refusal of credentials or of AUTH itself. */
static smtpkit_cause refine(smtpkit_cause c, const sk_context *ctx,
                            const char *provider) {
  if (!ctx)
    return c;
  if (c == SMTPKIT_CAUSE_bad_credentials && oauth_mechanism(ctx->mechanism))
    return SMTPKIT_CAUSE_oauth_token_invalid;
  if (c == SMTPKIT_CAUSE_bad_credentials &&
      sk_kb_username_wrong(provider, ctx->user))
    return SMTPKIT_CAUSE_wrong_username_format;
  sk_host_kind kind = SK_HOST_UNKNOWN;
  if (ctx->host)
    sk_kb_provider_from_host(ctx->host, &kind);
  if (kind == SK_HOST_MX && (c == SMTPKIT_CAUSE_mech_not_supported ||
                             c == SMTPKIT_CAUSE_auth_not_offered))
    return SMTPKIT_CAUSE_wrong_endpoint;
  return c;
}

/* Steps 0-5 of the header comment; *known says whether knowledge (rather
 * than the code class) decided, which makes the cause's own transience
 * apply. */
static smtpkit_cause decide(smtpkit_stage stage, const smtpkit_reply *r,
                            const sk_context *ctx, const char *provider,
                            sk_classify_extra *x, bool *known) {
  *known = true;
  if (is_failure(r) && sk_classify_intercepted(ctx, NULL))
    return SMTPKIT_CAUSE_smtp_intercepted;
  if (oauth_challenge(r))
    return SMTPKIT_CAUSE_oauth_token_invalid;
  bool guessed = x && x->stage_guessed;
  sk_kb_query q = {.provider = provider,
                   .stage = stage,
                   .stage_guessed = guessed,
                   .code = r->code,
                   .enhanced = r->enhanced,
                   .text = r->text ? r->text : "",
                   .len = r->text ? strlen(r->text) : 0};
  bool amb = false;
  int score = -1;
  const sk_kb_reply *e = sk_kb_reply_lookup(&q, SK_KB_WORDING, &amb, &score);
  if (!e && x && x->around) {
    sk_kb_query wide = q;
    wide.text = x->around, wide.len = x->around_len, wide.around = true;
    e = sk_kb_reply_lookup(&wide, SK_KB_WORDING, &amb, &score);
  }
  /* A guessed connect/greeting stage is too weak for "5xx = IP blocked". */
  smtpkit_stage rule_stage =
      guessed && stage <= SMTPKIT_STAGE_GREETING ? SMTPKIT_STAGE_NONE : stage;
  smtpkit_cause c =
      e ? e->cause : stage_reply(r, rule_stage, ctx && ctx->authed);
  if (!e) {
    /* The meaning of the bare code: decides when the stage rules could
     * not, and lends its knowledge (transience, note) when it agrees. */
    const sk_kb_reply *k = sk_kb_reply_lookup(&q, SK_KB_CODES, &amb, &score);
    if (c == SMTPKIT_CAUSE_COUNT)
      c = k ? k->cause : enhanced_meaning(r, stage);
    if (k && k->cause == c)
      e = k;
  }
  if (x)
    x->entry = e, x->ambiguous = amb, x->score = e ? score : -1;
  *known = e != NULL;
  return c;
}

void sk_classify_reply_ex(smtpkit_error *err, smtpkit_stage stage,
                          const smtpkit_reply *reply, const sk_context *ctx,
                          sk_classify_extra *x) {
  sk_reply_clear(&err->reply);
  sk_reply_copy(&err->reply, reply);
  err->stage = stage;
  if (x)
    x->entry = NULL, x->ambiguous = false, x->score = -1;
  const char *provider = context_provider(ctx);
  err->provider = provider;
  bool known = false;
  smtpkit_cause c = decide(stage, reply, ctx, provider, x, &known);
  if (c == SMTPKIT_CAUSE_COUNT) {
    err->cause = SMTPKIT_CAUSE_unknown;
    err->transient = class_transient(reply);
    return;
  }
  smtpkit_cause refined = refine(c, ctx, provider);
  err->cause = refined;
  if (known || refined != c)
    err->transient = sk_cause_default_transient(refined);
  else
    err->transient = class_transient(reply);
  /* SPEC §3: a STARTTLS refused with 454 is worth retrying. */
  if (refined == SMTPKIT_CAUSE_starttls_not_offered && reply->code == 454)
    err->transient = true;
}

void sk_classify_reply(smtpkit_error *err, smtpkit_stage stage,
                       const smtpkit_reply *reply, const sk_context *ctx) {
  sk_classify_reply_ex(err, stage, reply, ctx, NULL);
}

const sk_kb_error *sk_classify_client_error(smtpkit_error *err,
                                            const char *text, size_t n) {
  const sk_kb_error *e = sk_kb_error_lookup(text, n);
  if (e)
    set(err, e->cause, SMTPKIT_STAGE_NONE);
  return e;
}

void smtpkit_error_advice(const smtpkit_error *err, smtpkit_advice *out) {
  const sk_kb_reply *e = NULL;
  if (err->reply.code || err->reply.enhanced[0]) {
    sk_kb_query q = {.provider = err->provider,
                     .stage = err->stage,
                     .code = err->reply.code,
                     .enhanced = err->reply.enhanced,
                     .text = err->reply.text ? err->reply.text : "",
                     .len = err->reply.text ? strlen(err->reply.text) : 0};
    e = sk_kb_reply_lookup(&q, SK_KB_ALL, NULL, NULL);
    /* Its note explains this cause only if it is what decided. */
    if (e && e->cause != err->cause)
      e = NULL;
  }
  sk_advice_fill(out, err->cause, err->provider, NULL, e);
}

/* ---- doctor's evidence beyond one reply (declared in doctor.h) ---- */

/* Interception from everything a probe saw: the expected provider's
 * fingerprint anywhere clears the server; fingerprints of others only
 * (a host's cPanel Exim for smtp.gmail.com) mean someone else answered. */
bool sk_classify_answered_by(smtpkit_error *err, const sk_context *ctx,
                             const char *ehlo, const char *cert_names,
                             const char **who) {
  const char *expected = ctx ? sk_kb_provider(ctx->provider) : NULL;
  if (!expected && ctx && ctx->host)
    expected = sk_kb_provider_from_host(ctx->host, NULL);
  if (!expected)
    return false;
  const struct {
    const char *text;
    unsigned where;
  } seen[] = {{ctx->banner, SK_FP_BANNER | SK_FP_REPLY},
              {ehlo, SK_FP_EHLO | SK_FP_REPLY},
              {cert_names, SK_FP_CERT}};
  const char *other = NULL;
  for (size_t i = 0; i < sizeof seen / sizeof *seen; i++) {
    const char *ids[8];
    size_t k = seen[i].text
                   ? sk_kb_fingerprints(seen[i].text, strlen(seen[i].text),
                                        seen[i].where, ids, 8)
                   : 0;
    for (size_t j = 0; j < k && j < 8; j++)
      if (!strcmp(ids[j], expected))
        return false;
    if (k && !other)
      other = ids[0];
  }
  if (!other)
    return false;
  set(err, SMTPKIT_CAUSE_smtp_intercepted, SMTPKIT_STAGE_GREETING);
  err->provider = expected;
  if (who)
    *who = other;
  return true;
}

/* A provider's MX (receiving) or relay host is not where users log in. */
bool sk_classify_endpoint(smtpkit_error *err, const char *host,
                          const char **provider) {
  sk_host_kind kind = SK_HOST_UNKNOWN;
  const char *p = host ? sk_kb_provider_from_host(host, &kind) : NULL;
  if (!p || (kind != SK_HOST_MX && kind != SK_HOST_RELAY))
    return false;
  set(err, SMTPKIT_CAUSE_wrong_endpoint, SMTPKIT_STAGE_CONNECT);
  err->provider = p;
  if (provider)
    *provider = p;
  return true;
}
