/* cause.c — cause identifiers, their exit codes and default transience
 * (SPEC §2 and §3). */
#include "internal.h"

#include <string.h>
#include <sysexits.h>

struct cause_info {
  const char *name;
  int exit_code;
  bool transient;
};

/* Indexed by smtpkit_cause; the order follows SMTPKIT_CAUSES. */
static const struct cause_info causes[SMTPKIT_CAUSE_COUNT] = {
    [SMTPKIT_CAUSE_ok] = {"ok", EX_OK, false},
    [SMTPKIT_CAUSE_dns_failure] = {"dns_failure", EX_NOHOST, false},
    [SMTPKIT_CAUSE_connection_refused] = {"connection_refused", EX_UNAVAILABLE,
                                          false},
    [SMTPKIT_CAUSE_connection_timeout] = {"connection_timeout", EX_TEMPFAIL,
                                          true},
    [SMTPKIT_CAUSE_plaintext_on_tls_port] = {"plaintext_on_tls_port", EX_CONFIG,
                                             false},
    [SMTPKIT_CAUSE_tls_on_plaintext_port] = {"tls_on_plaintext_port", EX_CONFIG,
                                             false},
    [SMTPKIT_CAUSE_starttls_not_offered] = {"starttls_not_offered", EX_CONFIG,
                                            false},
    [SMTPKIT_CAUSE_starttls_required] = {"starttls_required", EX_CONFIG, false},
    [SMTPKIT_CAUSE_tls_handshake_failed] = {"tls_handshake_failed",
                                            EX_UNAVAILABLE, false},
    [SMTPKIT_CAUSE_certificate_untrusted] = {"certificate_untrusted", EX_CONFIG,
                                             false},
    [SMTPKIT_CAUSE_certificate_name_mismatch] = {"certificate_name_mismatch",
                                                 EX_CONFIG, false},
    [SMTPKIT_CAUSE_certificate_expired] = {"certificate_expired", EX_CONFIG,
                                           false},
    [SMTPKIT_CAUSE_smtp_intercepted] = {"smtp_intercepted", EX_CONFIG, false},
    [SMTPKIT_CAUSE_wrong_endpoint] = {"wrong_endpoint", EX_CONFIG, false},
    [SMTPKIT_CAUSE_ehlo_rejected] = {"ehlo_rejected", EX_CONFIG, false},
    [SMTPKIT_CAUSE_tls_version_unsupported] = {"tls_version_unsupported",
                                               EX_CONFIG, false},
    [SMTPKIT_CAUSE_server_unavailable] = {"server_unavailable", EX_TEMPFAIL,
                                          true},
    [SMTPKIT_CAUSE_ip_blocked] = {"ip_blocked", EX_UNAVAILABLE, false},
    [SMTPKIT_CAUSE_auth_not_offered] = {"auth_not_offered", EX_CONFIG, false},
    [SMTPKIT_CAUSE_mech_not_supported] = {"mech_not_supported", EX_CONFIG,
                                          false},
    [SMTPKIT_CAUSE_no_common_mechanism] = {"no_common_mechanism", EX_CONFIG,
                                           false},
    [SMTPKIT_CAUSE_mech_too_weak] = {"mech_too_weak", EX_CONFIG, false},
    [SMTPKIT_CAUSE_encryption_required] = {"encryption_required", EX_CONFIG,
                                           false},
    [SMTPKIT_CAUSE_bad_credentials] = {"bad_credentials", EX_NOPERM, false},
    [SMTPKIT_CAUSE_wrong_username_format] = {"wrong_username_format", EX_NOPERM,
                                             false},
    [SMTPKIT_CAUSE_app_password_required] = {"app_password_required", EX_NOPERM,
                                             false},
    [SMTPKIT_CAUSE_web_login_required] = {"web_login_required", EX_NOPERM,
                                          false},
    [SMTPKIT_CAUSE_smtp_auth_disabled] = {"smtp_auth_disabled", EX_NOPERM,
                                          false},
    [SMTPKIT_CAUSE_basic_auth_disabled] = {"basic_auth_disabled", EX_NOPERM,
                                           false},
    [SMTPKIT_CAUSE_oauth_token_invalid] = {"oauth_token_invalid", EX_NOPERM,
                                           false},
    [SMTPKIT_CAUSE_account_locked] = {"account_locked", EX_NOPERM, false},
    [SMTPKIT_CAUSE_password_transition_needed] = {"password_transition_needed",
                                                  EX_NOPERM, false},
    [SMTPKIT_CAUSE_rate_limited] = {"rate_limited", EX_TEMPFAIL, true},
    [SMTPKIT_CAUSE_sending_quota_exceeded] = {"sending_quota_exceeded",
                                              EX_TEMPFAIL, true},
    [SMTPKIT_CAUSE_temporary_auth_failure] = {"temporary_auth_failure",
                                              EX_TEMPFAIL, true},
    [SMTPKIT_CAUSE_auth_required] = {"auth_required", EX_NOPERM, false},
    [SMTPKIT_CAUSE_sender_not_authorized] = {"sender_not_authorized", EX_NOPERM,
                                             false},
    [SMTPKIT_CAUSE_relay_denied] = {"relay_denied", EX_NOPERM, false},
    [SMTPKIT_CAUSE_recipient_rejected] = {"recipient_rejected", EX_NOUSER,
                                          false},
    [SMTPKIT_CAUSE_message_too_big] = {"message_too_big", EX_DATAERR, false},
    [SMTPKIT_CAUSE_message_rejected] = {"message_rejected", EX_UNAVAILABLE,
                                        false},
    [SMTPKIT_CAUSE_connection_lost] = {"connection_lost", EX_IOERR, true},
    [SMTPKIT_CAUSE_delivery_unknown] = {"delivery_unknown", EX_TEMPFAIL, true},
    [SMTPKIT_CAUSE_protocol_error] = {"protocol_error", EX_PROTOCOL, false},
    [SMTPKIT_CAUSE_unknown] = {"unknown", EX_UNAVAILABLE, false},
};

const char *smtpkit_cause_name(smtpkit_cause c) {
  return (unsigned)c < SMTPKIT_CAUSE_COUNT ? causes[c].name : NULL;
}

bool smtpkit_cause_from_name(const char *name, smtpkit_cause *out) {
  for (int i = 0; i < SMTPKIT_CAUSE_COUNT; i++)
    if (name && strcmp(causes[i].name, name) == 0) {
      *out = (smtpkit_cause)i;
      return true;
    }
  return false;
}

bool sk_cause_default_transient(smtpkit_cause c) {
  return (unsigned)c < SMTPKIT_CAUSE_COUNT && causes[c].transient;
}

int smtpkit_cause_exit_code(smtpkit_cause c, bool transient) {
  if ((unsigned)c >= SMTPKIT_CAUSE_COUNT)
    return EX_SOFTWARE;
  /* SPEC §2: a lost connection is EX_IOERR even though it is transient;
   * any other transient failure is EX_TEMPFAIL. */
  if (causes[c].exit_code == EX_IOERR)
    return EX_IOERR;
  if (transient)
    return EX_TEMPFAIL;
  /* A cause that is transient by default but was judged permanent (by
   * knowledge of the reply) is a permanent refusal. */
  if (causes[c].exit_code == EX_TEMPFAIL)
    return EX_UNAVAILABLE;
  return causes[c].exit_code;
}

static const char *const stages[] = {"none",     "connect", "greeting", "ehlo",
                                     "starttls", "auth",    "mail",     "rcpt",
                                     "data",     "quit"};

const char *smtpkit_stage_name(smtpkit_stage s) {
  return (unsigned)s < sizeof stages / sizeof *stages ? stages[s] : "none";
}

const char *smtpkit_tls_mode_name(smtpkit_tls_mode m) {
  switch (m) {
  case SMTPKIT_TLS_AUTO:
    return "auto";
  case SMTPKIT_TLS_STARTTLS:
    return "starttls";
  case SMTPKIT_TLS_IMPLICIT:
    return "implicit";
  case SMTPKIT_TLS_NONE:
    return "none";
  }
  return "auto";
}
