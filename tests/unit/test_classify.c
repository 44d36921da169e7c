/* Tests for src/classify.c (the one place causes are decided) and
 * src/explain.c (finding the reply in a pasted text): the lab's replies
 * (SPEC §5), transience, context rules and the fall-backs on codes. */
#include "kb.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

/* Parses wire (one reply, lines separated by \n) and classifies it. */
static smtpkit_error run(const char *wire, smtpkit_stage stage,
                         const sk_context *ctx) {
  smtpkit_reply r = {0};
  if (!sk_reply_parse_text(wire, strlen(wire), &r))
    fail_msg("unparsable reply: %s", wire);
  smtpkit_error e = {0};
  sk_classify_reply(&e, stage, &r, ctx);
  sk_reply_clear(&r);
  return e;
}

static void expect(const char *wire, smtpkit_stage stage, const sk_context *ctx,
                   smtpkit_cause want, bool transient) {
  smtpkit_error e = run(wire, stage, ctx);
  if (e.cause != want || e.transient != transient)
    fail_msg("%s: got %s%s, want %s%s", wire, smtpkit_cause_name(e.cause),
             e.transient ? " (transient)" : "", smtpkit_cause_name(want),
             transient ? " (transient)" : "");
  sk_error_clear(&e);
}

static const sk_context none = {0};
static const sk_context after_auth = {.authed = true};

/* SPEC §5: each lab scenario's reply yields its cause. */
static void lab_replies(void **state) {
  (void)state;
  const smtpkit_stage A = SMTPKIT_STAGE_AUTH;
  expect("535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication "
         "is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled "
         "for more information. [SN4PR0501CA0123.namprd05.prod.outlook.com]",
         A, &none, SMTPKIT_CAUSE_smtp_auth_disabled, false);
  expect("535 5.7.139 Authentication unsuccessful, basic authentication is "
         "disabled.",
         A, &none, SMTPKIT_CAUSE_basic_auth_disabled, false);
  expect("525 5.7.13 User account disabled", A, &none,
         SMTPKIT_CAUSE_account_locked, false);
  expect("454 4.7.0 Too many login attempts, please try again later. x - "
         "gsmtp",
         A, &none, SMTPKIT_CAUSE_rate_limited, true);
  expect("454 4.7.0 Temporary authentication failure", A, &none,
         SMTPKIT_CAUSE_temporary_auth_failure, true);
  expect("421-4.7.0 Try again later, closing connection. (EHLO)\n"
         "421-4.7.0 For more information, go to\n"
         "421 4.7.0  https://support.google.com/a/answer/3221692 x - gsmtp",
         SMTPKIT_STAGE_EHLO, &none, SMTPKIT_CAUSE_ehlo_rejected, false);
  expect("421 4.3.2 Service not available", SMTPKIT_STAGE_GREETING, &none,
         SMTPKIT_CAUSE_server_unavailable, true);
  expect("554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked "
         "using zen.spamhaus.org",
         SMTPKIT_STAGE_GREETING, &none, SMTPKIT_CAUSE_ip_blocked, false);
  expect("554 5.7.1 Go away", SMTPKIT_STAGE_GREETING, &none,
         SMTPKIT_CAUSE_ip_blocked, false);
  expect("553 5.7.1 Sender address rejected: not owned by user",
         SMTPKIT_STAGE_MAIL, &after_auth, SMTPKIT_CAUSE_sender_not_authorized,
         false);
  expect("550 5.4.5 Daily user sending quota exceeded. x - gsmtp",
         SMTPKIT_STAGE_MAIL, &after_auth, SMTPKIT_CAUSE_sending_quota_exceeded,
         true);
  expect("534 5.7.9 Authentication mechanism is too weak", A, &none,
         SMTPKIT_CAUSE_mech_too_weak, false);
  expect("538 5.7.11 Encryption required for requested authentication "
         "mechanism",
         A, &none, SMTPKIT_CAUSE_encryption_required, false);
  expect("534-5.7.9 Application-specific password required. For more "
         "information, go to\n534 5.7.9  https://support.google.com/mail/"
         "?p=InvalidSecondFactor x - gsmtp",
         A, &none, SMTPKIT_CAUSE_app_password_required, false);
  expect("534-5.7.14 <https://accounts.google.com/signin/continue?x>\n"
         "534-5.7.14 Please log in via your web browser and then try again.\n"
         "534 5.7.14  https://support.google.com/mail/answer/78754 x - gsmtp",
         A, &none, SMTPKIT_CAUSE_web_login_required, false);
  expect("530 5.7.0 Must issue a STARTTLS command first", A, &none,
         SMTPKIT_CAUSE_starttls_required, false);
  expect("535 5.7.8 Authentication credentials invalid", A, &none,
         SMTPKIT_CAUSE_bad_credentials, false);
  expect("535 Incorrect authentication data", A, &none,
         SMTPKIT_CAUSE_bad_credentials, false);
  expect("550 5.1.1 <bob@example.test>: Recipient address rejected: User "
         "unknown in local recipient table",
         SMTPKIT_STAGE_RCPT, &after_auth, SMTPKIT_CAUSE_recipient_rejected,
         false);
  expect("552 5.3.4 Message size exceeds fixed limit", SMTPKIT_STAGE_DATA,
         &after_auth, SMTPKIT_CAUSE_message_too_big, false);
}

/* What test_session.c relies on. */
static void session_basics(void **state) {
  (void)state;
  expect("535 5.7.8 Authentication failed", SMTPKIT_STAGE_AUTH, &none,
         SMTPKIT_CAUSE_bad_credentials, false);
  expect("454 4.7.0 Temporary authentication failure", SMTPKIT_STAGE_AUTH,
         &none, SMTPKIT_CAUSE_temporary_auth_failure, true);
  expect("530 5.7.0 Authentication required", SMTPKIT_STAGE_MAIL, &none,
         SMTPKIT_CAUSE_auth_required, false);
  expect("550 5.1.1 no such user", SMTPKIT_STAGE_RCPT, &none,
         SMTPKIT_CAUSE_recipient_rejected, false);
  expect("454 4.7.0 TLS not available due to temporary reason",
         SMTPKIT_STAGE_STARTTLS, &none, SMTPKIT_CAUSE_starttls_not_offered,
         true);
}

/* Knowledge decides transience; without it, the code class does. */
static void transience(void **state) {
  (void)state;
  /* Mailjet's 4xx for bad credentials is permanent. */
  expect("435 4.7.8 Error: authentication failed:", SMTPKIT_STAGE_AUTH, &none,
         SMTPKIT_CAUSE_bad_credentials, false);
  /* Microsoft's 451 for "STARTTLS required" is permanent; its enhanced
   * code's class differs from the code's. */
  expect("451 5.7.3 STARTTLS is required to send mail", SMTPKIT_STAGE_MAIL,
         &none, SMTPKIT_CAUSE_starttls_required, false);
  /* SendGrid's exhausted credits at AUTH: the login is fine, wait. */
  expect("451 Authentication failed: Maximum credits exceeded",
         SMTPKIT_STAGE_AUTH, &none, SMTPKIT_CAUSE_sending_quota_exceeded, true);
  /* Postfix's relay refusal with soft_bounce is still a refusal. */
  expect("454 4.7.1 <x@example.org>: Relay access denied", SMTPKIT_STAGE_RCPT,
         &none, SMTPKIT_CAUSE_relay_denied, false);
  expect("451 4.3.0 x", SMTPKIT_STAGE_DATA, &none, SMTPKIT_CAUSE_unknown, true);
  expect("550 5.7.1 computer says no", SMTPKIT_STAGE_NONE, &none,
         SMTPKIT_CAUSE_unknown, false);
  expect("599 something odd", SMTPKIT_STAGE_NONE, &none, SMTPKIT_CAUSE_unknown,
         false);
  expect("421 closing, come back later", SMTPKIT_STAGE_MAIL, &none,
         SMTPKIT_CAUSE_server_unavailable, true);
}

/* Unknown wording falls back on RFC 3463 / RFC 4954 code meanings. */
static void code_fallbacks(void **state) {
  (void)state;
  const smtpkit_stage A = SMTPKIT_STAGE_AUTH;
  expect("535 5.7.8 Nope", A, &none, SMTPKIT_CAUSE_bad_credentials, false);
  expect("534 5.7.14 trust me first", A, &none,
         SMTPKIT_CAUSE_web_login_required, false);
  expect("432 4.7.12 convert me", A, &none,
         SMTPKIT_CAUSE_password_transition_needed, false);
  expect("504 5.5.4 Unrecognized", A, &none, SMTPKIT_CAUSE_mech_not_supported,
         false);
  expect("523 5.7.10 encrypt please", A, &none,
         SMTPKIT_CAUSE_encryption_required, false);
  expect("552 5.2.2 box full", SMTPKIT_STAGE_RCPT, &none,
         SMTPKIT_CAUSE_recipient_rejected, false);
  expect("535 nope", A, &none, SMTPKIT_CAUSE_bad_credentials, false);
  expect("501 5.5.2 Syntax error", SMTPKIT_STAGE_EHLO, &none,
         SMTPKIT_CAUSE_ehlo_rejected, false);
}

static void context_rules(void **state) {
  (void)state;
  const smtpkit_stage A = SMTPKIT_STAGE_AUTH;
  /* SendGrid takes only the literal user name "apikey". */
  sk_context sg = {.banner = "SG ESMTP service ready at "
                             "ismtpd0013p1las1.sendgrid.net",
                   .user = "alice"};
  expect("535 Authentication failed: Bad username / password", A, &sg,
         SMTPKIT_CAUSE_wrong_username_format, false);
  sg.user = "apikey";
  expect("535 Authentication failed: Bad username / password", A, &sg,
         SMTPKIT_CAUSE_bad_credentials, false);
  /* A refused bearer token is the token's fault. */
  sk_context oauth = {.mechanism = "XOAUTH2"};
  expect("535-5.7.8 Username and Password not accepted.\n535 5.7.8 x - gsmtp",
         A, &oauth, SMTPKIT_CAUSE_oauth_token_invalid, false);
  expect("334 eyJzdGF0dXMiOiI0MDAiLCJzY2hlbWVzIjoiQmVhcmVyIiwic2NvcGUiOiJodH"
         "RwczovL21haWwuZ29vZ2xlLmNvbS8ifQ==",
         A, &none, SMTPKIT_CAUSE_oauth_token_invalid, false);
  /* but a tenant switch stays a tenant switch. */
  expect("535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication "
         "is disabled for the Mailbox.",
         A, &oauth, SMTPKIT_CAUSE_smtp_auth_disabled, false);
  /* NetEase's generic wording means "authorization code" only there. */
  sk_context ne = {.host = "smtp.163.com"};
  expect("535 Error: authentication failed", A, &ne,
         SMTPKIT_CAUSE_app_password_required, false);
  expect("535 Error: authentication failed", A, &none,
         SMTPKIT_CAUSE_bad_credentials, false);
  /* AUTH to Microsoft's inbound MX host. */
  sk_context mx = {.host = "contoso-com.mail.protection.outlook.com"};
  expect("504 5.7.4 Unrecognized authentication type", A, &mx,
         SMTPKIT_CAUSE_wrong_endpoint, false);
  expect("504 5.7.4 Unrecognized authentication type", A, &none,
         SMTPKIT_CAUSE_mech_not_supported, false);
  /* Short user name at Microsoft. */
  sk_context ms = {.host = "smtp.office365.com", .user = "alice"};
  expect("535 5.7.3 Authentication unsuccessful [X.PROD.OUTLOOK.COM]", A, &ms,
         SMTPKIT_CAUSE_wrong_username_format, false);
}

static void interception(void **state) {
  (void)state;
  const char *cpanel = "server.example-host.com ESMTP Exim 4.96 #2\n"
                       "We do not authorize the use of this system to "
                       "transport unsolicited,\nand/or bulk e-mail.";
  sk_context expected_google = {.provider = "google", .banner = cpanel};
  expect("535 Incorrect authentication data", SMTPKIT_STAGE_AUTH,
         &expected_google, SMTPKIT_CAUSE_smtp_intercepted, false);
  const char *who = NULL;
  assert_true(sk_classify_intercepted(&expected_google, &who));
  assert_string_equal(who, "cpanel");
  /* The host name says what was expected, too. */
  sk_context by_host = {.host = "smtp.gmail.com", .banner = cpanel};
  expect("535 Incorrect authentication data", SMTPKIT_STAGE_AUTH, &by_host,
         SMTPKIT_CAUSE_smtp_intercepted, false);
  /* Without an expectation, or with the expected server's own banner,
   * nothing was intercepted. */
  sk_context no_expectation = {.banner = cpanel};
  expect("535 Incorrect authentication data", SMTPKIT_STAGE_AUTH,
         &no_expectation, SMTPKIT_CAUSE_bad_credentials, false);
  sk_context own = {.host = "smtp.sendgrid.net",
                    .banner = "SG ESMTP service ready"};
  assert_false(sk_classify_intercepted(&own, NULL));
  sk_context unknown_banner = {.host = "smtp.gmail.com",
                               .banner = "mx.example.net ESMTP"};
  assert_false(sk_classify_intercepted(&unknown_banner, NULL));
  /* AOL greets from Yahoo's platform: shared infrastructure. */
  sk_context aol = {.host = "smtp.aol.com",
                    .banner = "smtp.mail.yahoo.com ESMTP ready"};
  assert_false(sk_classify_intercepted(&aol, NULL));
}

static void provider_and_advice(void **state) {
  (void)state;
  sk_context g = {.host = "smtp.gmail.com"};
  smtpkit_error e = run("534-5.7.9 Application-specific password required.\n"
                        "534 5.7.9 https://support.google.com/mail/?p=x",
                        SMTPKIT_STAGE_AUTH, &g);
  assert_string_equal(e.provider, "google");
  smtpkit_advice a;
  smtpkit_error_advice(&e, &a);
  assert_int_equal(a.cause, SMTPKIT_CAUSE_app_password_required);
  assert_string_equal(a.provider, "google");
  assert_non_null(a.note);
  bool link = false;
  for (size_t i = 0; i < a.n_fix; i++)
    link = link || strstr(a.fix[i], "apppasswords");
  assert_true(link);
  sk_error_clear(&e);
}

static void events(void **state) {
  (void)state;
  smtpkit_error e = {0};
  sk_classify_event(&e, SK_EV_TLS_PLAIN_BANNER, SMTPKIT_STAGE_CONNECT);
  assert_int_equal(e.cause, SMTPKIT_CAUSE_tls_on_plaintext_port);
  sk_classify_event(&e, SK_EV_CONNECT_TIMEOUT, SMTPKIT_STAGE_CONNECT);
  assert_int_equal(e.cause, SMTPKIT_CAUSE_connection_timeout);
  assert_true(e.transient);
  sk_classify_event(&e, SK_EV_CLOSED_AFTER_DATA, SMTPKIT_STAGE_DATA);
  assert_int_equal(e.cause, SMTPKIT_CAUSE_delivery_unknown);
  assert_true(e.transient);
}

/* ---- explain: the reply inside pasted texts ---- */

static smtpkit_explanation ex(const char *text, const char *provider) {
  smtpkit_explanation e;
  smtpkit_explain_text(text, strlen(text), provider, &e);
  return e;
}

static void explain_forms(void **state) {
  (void)state;
  smtpkit_explanation e;
  /* Python bytes repr with literal \n. */
  e = ex("smtplib.SMTPAuthenticationError: (534, b'5.7.9 Application-specific"
         " password required. Learn more at\\n5.7.9 https://support.google."
         "com/mail/?p=InvalidSecondFactor x - gsmtp')",
         NULL);
  assert_true(e.found && e.reply_found);
  assert_int_equal(e.cause, SMTPKIT_CAUSE_app_password_required);
  assert_int_equal(e.code, 534);
  assert_string_equal(e.enhanced, "5.7.9");
  assert_string_equal(e.advice.provider, "google");
  assert_int_equal(e.stage, SMTPKIT_STAGE_AUTH);
  /* .NET: the enhanced code alone. */
  e = ex("The SMTP server requires a secure connection or the client was not "
         "authenticated. The server response was: 5.7.57 Client not "
         "authenticated to send mail. Error: 535 5.7.139 Authentication "
         "unsuccessful, SmtpClientAuthentication is disabled for the Tenant.",
         NULL);
  assert_int_equal(e.cause, SMTPKIT_CAUSE_smtp_auth_disabled);
  assert_int_equal(e.code, 535);
  /* PEAR's pair, a code given only as "(535)", a wrapped Postfix bounce. */
  e = ex("authentication failure [SMTP: Invalid response code received from "
         "server (code: 535, response: Incorrect authentication data)]",
         NULL);
  assert_int_equal(e.cause, SMTPKIT_CAUSE_bad_credentials);
  assert_int_equal(e.code, 535);
  assert_string_equal(e.text, "Incorrect authentication data");
  e = ex("SMTP 5xx error: permanent error (535): 5.7.139 Authentication "
         "unsuccessful, basic authentication is disabled.",
         NULL);
  assert_int_equal(e.cause, SMTPKIT_CAUSE_basic_auth_disabled);
  assert_int_equal(e.code, 535);
  e = ex("host email-smtp.ap-southeast-1.amazonaws.com[18.138.111.200] said: "
         "530\n    Authentication required (in reply to MAIL FROM command)",
         NULL);
  assert_int_equal(e.cause, SMTPKIT_CAUSE_auth_required);
  assert_string_equal(e.advice.provider, "ses");
  assert_int_equal(e.stage, SMTPKIT_STAGE_MAIL);
  /* swaks, curl -v, msmtp prefixes. */
  e = ex("<~* 454 4.7.0 Temporary authentication failure", NULL);
  assert_int_equal(e.cause, SMTPKIT_CAUSE_temporary_auth_failure);
  assert_true(e.transient);
  e = ex("< 535 5.7.8 Authentication credentials invalid", NULL);
  assert_int_equal(e.cause, SMTPKIT_CAUSE_bad_credentials);
  assert_null(e.advice.provider);
  /* An address is not a server: no provider from bob@outlook.com. */
  e = ex("553 5.7.1 <bob@outlook.com>: Sender address rejected: not owned by "
         "user alice@example.test",
         NULL);
  assert_int_equal(e.cause, SMTPKIT_CAUSE_sender_not_authorized);
  assert_null(e.advice.provider);
  e = ex("msmtp: server message: 535 5.7.8 Error: authentication failed: "
         "UGFzc3dvcmQ6",
         NULL);
  assert_int_equal(e.cause, SMTPKIT_CAUSE_bad_credentials);
  assert_string_equal(e.server, "postfix");
}

static void explain_context(void **state) {
  (void)state;
  smtpkit_explanation e;
  /* Provider given as context selects its knowledge. */
  e = ex("535 Error: authentication failed", "netease");
  assert_int_equal(e.cause, SMTPKIT_CAUSE_app_password_required);
  assert_string_equal(e.advice.provider, "netease");
  e = ex("535 Error: authentication failed", NULL);
  assert_int_equal(e.cause, SMTPKIT_CAUSE_bad_credentials);
  /* A cPanel banner where Zoho was expected. */
  e = ex("SERVER -> CLIENT: 220-server.example.com ESMTP Exim 4.86 #2 220-We "
         "do not authorize the use of this system to transport unsolicited, "
         "220 and/or bulk e-mail.\nSMTP ERROR: Password command failed: 535 "
         "Incorrect authentication data",
         "zoho");
  assert_int_equal(e.cause, SMTPKIT_CAUSE_smtp_intercepted);
  assert_string_equal(e.advice.provider, "zoho");
  assert_string_equal(e.server, "cpanel");
  /* An OAuth2 error challenge before the final 535. */
  e = ex("S: 334 eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIiwic2NvcGUiOiJo"
         "dHRwczovL21haWwuZ29vZ2xlLmNvbS8ifQ==\nC:\nS: 535 5.7.8 Username and "
         "Password not accepted.",
         NULL);
  assert_int_equal(e.cause, SMTPKIT_CAUSE_oauth_token_invalid);
  assert_int_equal(e.code, 535);
}

static void explain_without_reply(void **state) {
  (void)state;
  smtpkit_explanation e;
  e = ex("hello world", NULL);
  assert_false(e.found);
  assert_false(e.success_only);
  e = ex("250 2.0.0 Ok: queued as 4Bx2Q81Zz3z9rjD", NULL);
  assert_false(e.found);
  assert_true(e.success_only);
  /* Python traceback line numbers are not reply codes. */
  e = ex("File \"/usr/lib/python3.8/smtplib.py\", line 450, in connect\n"
         "socket.gaierror: [Errno -2] Name or service not known",
         NULL);
  assert_true(e.found);
  assert_false(e.reply_found);
  assert_int_equal(e.cause, SMTPKIT_CAUSE_dns_failure);
  e = ex("Error: connect ECONNREFUSED 127.0.0.1:587", NULL);
  assert_int_equal(e.cause, SMTPKIT_CAUSE_connection_refused);
  assert_non_null(e.advice.note);
  e = ex("Sep 15 18:37:57 mail postfix/smtpd[1234]: warning: unknown"
         "[192.0.2.10]: SASL LOGIN authentication failed: UGFzc3dvcmQ6",
         NULL);
  assert_int_equal(e.cause, SMTPKIT_CAUSE_bad_credentials);
  assert_string_equal(e.server, "postfix");
  /* Version numbers and addresses are not enhanced codes. */
  e = ex("at node_modules/_nodemailer@4.7.0@nodemailer/lib/index.js:605:19",
         NULL);
  assert_false(e.found);
  assert_int_equal(e.cause, SMTPKIT_CAUSE_unknown);
  e = ex("", NULL);
  assert_false(e.found);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(lab_replies),
      cmocka_unit_test(session_basics),
      cmocka_unit_test(transience),
      cmocka_unit_test(code_fallbacks),
      cmocka_unit_test(context_rules),
      cmocka_unit_test(interception),
      cmocka_unit_test(provider_and_advice),
      cmocka_unit_test(events),
      cmocka_unit_test(explain_forms),
      cmocka_unit_test(explain_context),
      cmocka_unit_test(explain_without_reply),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
