/*
 * classify.c — the one place where evidence becomes a cause (SPEC §3).
 *
 * Order of judgement for a server reply:
 *   1. what the knowledge base knows of this reply text (kb.c);
 *   2. the meaning of the reply code at this stage (RFC 4954 §6 for AUTH,
 *      RFC 5321 §4.2.3 elsewhere);
 *   3. the enhanced status code's subject and detail (RFC 3463, RFC 5248);
 *   4. the code class: 4xx transient, 5xx permanent.
 * Events without a reply (socket and TLS errors, missing extensions) map
 * one to one to causes.
 */
#include "internal.h"

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
      [SK_EV_INTERNAL] = SMTPKIT_CAUSE_unknown,
  };
  set(err, (unsigned)ev < sizeof map / sizeof *map ? map[ev]
                                                    : SMTPKIT_CAUSE_unknown,
      stage);
}

static bool text_has(const smtpkit_reply *r, const char *needle) {
  return r->text && sk_memcasestr(r->text, strlen(r->text), needle);
}

static bool enh_is(const smtpkit_reply *r, const char *subject_detail) {
  /* Compares "X.7.8" ignoring the class digit. */
  return r->enhanced[0] && strcmp(r->enhanced + 1, subject_detail) == 0;
}

/* RFC 4954 §6 and the codes servers really use in answer to AUTH. */
static smtpkit_cause auth_reply(const smtpkit_reply *r) {
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

void sk_classify_reply(smtpkit_error *err, smtpkit_stage stage,
                       const smtpkit_reply *reply, const sk_context *ctx) {
  sk_reply_clear(&err->reply);
  sk_reply_copy(&err->reply, reply);
  err->stage = stage;
  err->provider = ctx ? ctx->provider : NULL;
  smtpkit_cause c = stage_reply(reply, stage, ctx && ctx->authed);
  if (c == SMTPKIT_CAUSE_COUNT)
    c = enhanced_meaning(reply, stage);
  if (c == SMTPKIT_CAUSE_COUNT) {
    err->cause = SMTPKIT_CAUSE_unknown;
    err->transient = reply->code >= 400 && reply->code < 500;
    return;
  }
  err->cause = c;
  /* Without knowledge saying otherwise, the code class decides transience
   * for reply-based causes: a 4xx is worth retrying, a 5xx is not. */
  err->transient = reply->code >= 400 && reply->code < 500;
  if (c == SMTPKIT_CAUSE_starttls_not_offered && reply->code == 454)
    err->transient = true;
}
