/* Tests for src/kb.c: the knowledge base's invariants (counts, a source
 * on every entry, valid causes and ids) and its look-ups. */
#include "kb.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

/* SPEC §3 provider identifiers. */
static const char *const spec_providers[] = {
    "google",  "microsoft", "yahoo",  "aol",     "icloud",   "zoho", "fastmail",
    "gmx",     "yandex",    "mailru", "qq",      "netease",  "ses",  "sendgrid",
    "mailgun", "postmark",  "brevo",  "mailjet", "sparkpost"};

static bool sourced(const char *s) {
  return s && (!strncmp(s, "http", 4) || !strncmp(s, "RFC", 3) ||
               !strncmp(s, "rfc", 3));
}

static bool valid_enhanced(const char *e) {
  char out[16];
  return !e[0] || (strlen(e) < sizeof out &&
                   sk_enhanced_at(e, strlen(e), out) == strlen(e));
}

static void reply_entries_are_sourced_and_valid(void **state) {
  (void)state;
  size_t n = sk_kb_reply_count();
  assert_true(n >= 100);
  for (size_t i = 0; i < n; i++) {
    const sk_kb_reply *e = sk_kb_reply_at(i);
    if (!sourced(e->source))
      fail_msg("entry %zu (%s %d) has no source", i, e->origin, e->code);
    assert_true(e->note && e->note[0]);
    assert_true((unsigned)e->cause < SMTPKIT_CAUSE_COUNT);
    assert_true(e->cause != SMTPKIT_CAUSE_ok);
    assert_true(e->code == 0 || (e->code >= 200 && e->code <= 599));
    if (!valid_enhanced(e->enhanced))
      fail_msg("entry %zu: bad enhanced code '%s'", i, e->enhanced);
    bool stage_ok = !e->stage[0];
    for (int s = SMTPKIT_STAGE_CONNECT; s <= SMTPKIT_STAGE_QUIT; s++)
      stage_ok = stage_ok || !strcmp(e->stage, smtpkit_stage_name(s));
    if (!stage_ok)
      fail_msg("entry %zu: bad stage '%s'", i, e->stage);
    /* An entry must say something: wording or a code. */
    assert_true(e->pattern[0] || e->code || e->enhanced[0]);
    /* "=id" entries name a provider the knowledge base knows. */
    if (e->origin[0] == '=')
      assert_non_null(sk_kb_provider(e->origin + 1));
  }
}

static void reply_entries_come_from_twenty_origins(void **state) {
  (void)state;
  const char *seen[256];
  size_t k = 0;
  for (size_t i = 0; i < sk_kb_reply_count(); i++) {
    const char *o = sk_kb_reply_origin(sk_kb_reply_at(i));
    bool dup = false;
    for (size_t j = 0; j < k; j++)
      dup = dup || !strcmp(seen[j], o);
    if (!dup && k < 256)
      seen[k++] = o;
  }
  assert_true(k >= 20);
}

static void spec_providers_have_settings(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof spec_providers / sizeof *spec_providers; i++) {
    const char *id = spec_providers[i];
    if (!sk_kb_provider(id))
      fail_msg("no KB_PROVIDER for %s", id);
    const sk_kb_submit *sub[8];
    if (!sk_kb_submits(id, sub, 8))
      fail_msg("no KB_SUBMIT for %s", id);
    const sk_kb_login *l = sk_kb_login_info(id);
    if (!l)
      fail_msg("no KB_LOGIN for %s", id);
    assert_true(l->username[0] && l->secret[0] && sourced(l->setup_url) &&
                sourced(l->source));
    assert_non_null(sk_kb_provider_name(id));
  }
  assert_true(sk_kb_provider_count() >= 20);
}

static void every_provider_row_is_valid(void **state) {
  (void)state;
  for (size_t i = 0; i < sk_kb_provider_count(); i++) {
    const char *id = sk_kb_provider_at(i);
    const sk_kb_submit *sub[16];
    size_t n = sk_kb_submits(id, sub, 16);
    for (size_t k = 0; k < n && k < 16; k++) {
      assert_true(sub[k]->port > 0 && sub[k]->port < 65536);
      assert_true(!strcmp(sub[k]->tls, "starttls") ||
                  !strcmp(sub[k]->tls, "implicit"));
      assert_true(sourced(sub[k]->source));
    }
  }
}

static void causes_have_texts_and_fixes_are_valid(void **state) {
  (void)state;
  for (int c = 0; c < SMTPKIT_CAUSE_COUNT; c++) {
    const sk_kb_cause *k = sk_kb_cause_info((smtpkit_cause)c);
    assert_non_null(k);
    assert_int_equal(k->cause, c);
    assert_true(k->summary[0]);
    assert_string_not_equal(smtpkit_cause_summary((smtpkit_cause)c), "");
  }
  /* Every KB_FIX names a real cause and cites a source. */
  const char *ids[] = {"cpanel", "exchange"};
  for (size_t i = 0; i <= sk_kb_provider_count() + 1; i++) {
    const char *id = i < sk_kb_provider_count()
                         ? sk_kb_provider_at(i)
                         : ids[i - sk_kb_provider_count()];
    for (int c = 0; c < SMTPKIT_CAUSE_COUNT; c++) {
      const sk_kb_fix *f[16];
      size_t n = sk_kb_fixes(id, (smtpkit_cause)c, f, 16);
      for (size_t k = 0; k < n && k < 16; k++) {
        smtpkit_cause parsed;
        assert_true(smtpkit_cause_from_name(f[k]->cause, &parsed));
        assert_true(f[k]->step[0] && sourced(f[k]->source));
      }
    }
  }
}

static void error_entries_are_sourced(void **state) {
  (void)state;
  assert_true(sk_kb_error_count() > 20);
  for (size_t i = 0; i < sk_kb_error_count(); i++) {
    const sk_kb_error *e = sk_kb_error_at(i);
    assert_true(e->pattern[0] && e->note[0] && sourced(e->source));
    assert_true((unsigned)e->cause < SMTPKIT_CAUSE_COUNT);
  }
}

static void hosts_name_provider_and_role(void **state) {
  (void)state;
  sk_host_kind k;
  assert_string_equal(sk_kb_provider_from_host("smtp.gmail.com", &k), "google");
  assert_int_equal(k, SK_HOST_SUBMISSION);
  assert_string_equal(sk_kb_provider_from_host("SMTP.Gmail.COM.", &k),
                      "google");
  assert_string_equal(sk_kb_provider_from_host("alt1.aspmx.l.google.com", &k),
                      "google");
  assert_int_equal(k, SK_HOST_MX);
  assert_string_equal(sk_kb_provider_from_host("smtp-relay.gmail.com", &k),
                      "google");
  assert_int_equal(k, SK_HOST_RELAY);
  assert_string_equal(
      sk_kb_provider_from_host("contoso-com.mail.protection.outlook.com", &k),
      "microsoft");
  assert_int_equal(k, SK_HOST_MX);
  /* A documented region, and one the data does not list: REGION. */
  assert_string_equal(
      sk_kb_provider_from_host("email-smtp.eu-west-3.amazonaws.com", &k),
      "ses");
  assert_int_equal(k, SK_HOST_SUBMISSION);
  assert_string_equal(
      sk_kb_provider_from_host("email-smtp.mx-central-1.amazonaws.com", &k),
      "ses");
  assert_int_equal(k, SK_HOST_SUBMISSION);
  assert_string_equal(
      sk_kb_provider_from_host("inbound-smtp.us-east-1.amazonaws.com", &k),
      "ses");
  assert_int_equal(k, SK_HOST_MX);
  /* "*.x" is below x, never x itself. */
  assert_null(sk_kb_provider_from_host("mail.protection.outlook.com", &k));
  assert_null(sk_kb_provider_from_host("mail.example.com", &k));
  assert_int_equal(k, SK_HOST_UNKNOWN);
  assert_null(sk_kb_provider_from_host(NULL, NULL));
}

static void domains_name_providers(void **state) {
  (void)state;
  assert_string_equal(sk_kb_provider_from_domain("me@gmail.com"), "google");
  assert_string_equal(sk_kb_provider_from_domain("HOTMAIL.com"), "microsoft");
  assert_string_equal(sk_kb_provider_from_domain("x@163.com"), "netease");
  assert_string_equal(sk_kb_provider_from_domain("x@web.de"), "gmx");
  assert_null(sk_kb_provider_from_domain("x@example.org"));
}

static void fingerprints_name_servers(void **state) {
  (void)state;
  const char *gmail = "smtp.gmail.com ESMTP a1sm1 - gsmtp";
  assert_string_equal(sk_kb_provider_from_text(gmail, strlen(gmail), SK_FP_ANY),
                      "google");
  const char *sg = "SG ESMTP service ready at ismtpd0013p1las1.sendgrid.net";
  assert_string_equal(sk_kb_provider_from_text(sg, strlen(sg), SK_FP_BANNER),
                      "sendgrid");
  const char *cp = "server.example.com ESMTP Exim 4.96 #2\nWe do not "
                   "authorize the use of this system to transport "
                   "unsolicited,\nand/or bulk e-mail.";
  const char *ids[4];
  assert_int_equal(sk_kb_fingerprints(cp, strlen(cp), SK_FP_BANNER, ids, 4), 1);
  assert_string_equal(ids[0], "cpanel");
  /* cPanel is a server program, not a provider. */
  assert_null(sk_kb_provider_from_text(cp, strlen(cp), SK_FP_ANY));
  /* Yahoo and AOL share the (#AUTH tag: the text alone names neither. */
  const char *y = "535 5.7.0 (#AUTH005) Too many bad auth attempts.";
  assert_null(sk_kb_provider_from_text(y, strlen(y), SK_FP_ANY));
}

static void username_rules(void **state) {
  (void)state;
  assert_string_equal(sk_kb_username_rule("sendgrid"), "apikey");
  assert_false(sk_kb_username_wrong("sendgrid", "apikey"));
  assert_true(sk_kb_username_wrong("sendgrid", "me@example.com"));
  assert_true(sk_kb_username_wrong("sparkpost", "me"));
  assert_false(sk_kb_username_wrong("sparkpost", "SMTP_Injection"));
  assert_true(sk_kb_username_wrong("microsoft", "alice"));
  assert_false(sk_kb_username_wrong("microsoft", "alice@contoso.com"));
  assert_false(sk_kb_username_wrong("google", "anything"));
  assert_false(sk_kb_username_wrong(NULL, "x"));
}

static void provider_settings(void **state) {
  (void)state;
  const sk_kb_submit *sub[8];
  size_t n = sk_kb_submits("google", sub, 8);
  assert_true(n >= 2);
  bool starttls587 = false, implicit465 = false;
  for (size_t i = 0; i < n && i < 8; i++) {
    starttls587 |= sub[i]->port == 587 && !strcmp(sub[i]->tls, "starttls");
    implicit465 |= sub[i]->port == 465 && !strcmp(sub[i]->tls, "implicit");
  }
  assert_true(starttls587 && implicit465);
  assert_non_null(strstr(sk_kb_mechanisms("microsoft"), "XOAUTH2"));
  const sk_kb_login *l = sk_kb_login_info("sendgrid");
  assert_non_null(l);
  assert_non_null(strstr(l->username, "apikey"));
  assert_null(sk_kb_login_info("nosuchprovider"));
  assert_string_equal(sk_kb_provider("Google"), "google");
  assert_null(sk_kb_provider("cpanel"));
  assert_string_equal(smtpkit_provider_id(0), sk_kb_provider_at(0));
  assert_null(smtpkit_provider_id(sk_kb_provider_count()));
}

static void reply_lookup_prefers_specific_knowledge(void **state) {
  (void)state;
  const char *t = "Unrecognized authentication type [SN1NAM02FT025.eop-nam02"
                  ".prod.protection.outlook.com]";
  sk_kb_query q = {.stage = SMTPKIT_STAGE_AUTH,
                   .code = 504,
                   .enhanced = "5.7.4",
                   .text = t,
                   .len = strlen(t)};
  const sk_kb_reply *e = sk_kb_reply_lookup(&q, SK_KB_ALL, NULL, NULL);
  assert_non_null(e);
  assert_int_equal(e->cause, SMTPKIT_CAUSE_wrong_endpoint);
  /* NetEase's generic wording needs NetEase known. */
  const char *ne = "Error: authentication failed";
  sk_kb_query n1 = {.code = 535, .text = ne, .len = strlen(ne)};
  e = sk_kb_reply_lookup(&n1, SK_KB_ALL, NULL, NULL);
  assert_int_equal(e->cause, SMTPKIT_CAUSE_bad_credentials);
  n1.provider = "netease";
  e = sk_kb_reply_lookup(&n1, SK_KB_ALL, NULL, NULL);
  assert_int_equal(e->cause, SMTPKIT_CAUSE_app_password_required);
  /* Shared wording is ambiguous and keeps the generic note. */
  const char *rfc = "Authentication credentials invalid";
  sk_kb_query r = {
      .code = 535, .enhanced = "5.7.8", .text = rfc, .len = strlen(rfc)};
  bool amb = false;
  e = sk_kb_reply_lookup(&r, SK_KB_ALL, &amb, NULL);
  assert_true(amb);
  assert_null(sk_kb_provider(sk_kb_reply_origin(e)));
  /* A bare code means something only at its stage. */
  sk_kb_query g = {.code = 554, .text = "", .len = 0};
  assert_null(sk_kb_reply_lookup(&g, SK_KB_CODES, NULL, NULL));
  g.stage = SMTPKIT_STAGE_GREETING;
  e = sk_kb_reply_lookup(&g, SK_KB_CODES, NULL, NULL);
  assert_int_equal(e->cause, SMTPKIT_CAUSE_ip_blocked);
}

static void pattern_matching(void **state) {
  (void)state;
  size_t len = 0;
  const char *t = "Mail relay denied [1.2.3.4]. Invalid credentials for relay";
  assert_true(sk_kb_pattern_match("mail RELAY denied&&invalid credentials", t,
                                  strlen(t), &len));
  assert_int_equal(len,
                   strlen("mail RELAY denied") + strlen("invalid credentials"));
  assert_false(sk_kb_pattern_match("relay&&nope", t, strlen(t), NULL));
  const char *zh = "Error: \xe8\xaf\xb7\xe4\xbd\xbf\xe7\x94\xa8";
  assert_true(
      sk_kb_pattern_match("\xe8\xaf\xb7\xe4\xbd\xbf", zh, strlen(zh), NULL));
}

static void oauth_error_challenge(void **state) {
  (void)state;
  /* {"status":"401","schemes":"bearer","scope":"https://mail.google.com/"} */
  const char *g = "eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIiwic2NvcGUiOiJo"
                  "dHRwczovL21haWwuZ29vZ2xlLmNvbS8ifQ==";
  char status[8], scope[64], schemes[16];
  assert_true(sk_oauth_error_decode(g, strlen(g), status, sizeof status, scope,
                                    sizeof scope, schemes, sizeof schemes));
  assert_string_equal(status, "401");
  assert_string_equal(scope, "https://mail.google.com/");
  assert_string_equal(schemes, "bearer");
  /* Only what fits is copied. */
  char tiny[4];
  assert_true(
      sk_oauth_error_decode(g, strlen(g), NULL, 0, tiny, sizeof tiny, NULL, 0));
  assert_string_equal(tiny, "htt");
  /* A LOGIN prompt is base64 too, but not an error. */
  assert_false(sk_oauth_error_decode("VXNlcm5hbWU6", 12, status, sizeof status,
                                     NULL, 0, NULL, 0));
  assert_string_equal(status, "");
  assert_false(
      sk_oauth_error_decode("not base64!", 11, NULL, 0, NULL, 0, NULL, 0));
}

static void advice_prefers_provider_steps(void **state) {
  (void)state;
  smtpkit_advice a;
  smtpkit_cause_advice(SMTPKIT_CAUSE_app_password_required, "google", &a);
  assert_string_equal(a.provider, "google");
  assert_true(a.n_fix >= 2);
  assert_non_null(strstr(a.fix[1], "apppasswords"));
  assert_true(a.n_references >= 1);
  smtpkit_cause_advice(SMTPKIT_CAUSE_app_password_required, NULL, &a);
  assert_null(a.provider);
  assert_true(a.n_fix >= 1);
  assert_string_equal(
      a.summary, smtpkit_cause_summary(SMTPKIT_CAUSE_app_password_required));
  /* A provider without steps for this cause gets the generic ones. */
  smtpkit_cause_advice(SMTPKIT_CAUSE_dns_failure, "google", &a);
  assert_true(a.n_fix >= 1);
  assert_non_null(strstr(a.fix[0], "host name"));
  smtpkit_cause_advice(SMTPKIT_CAUSE_ok, NULL, &a);
  assert_int_equal(a.n_fix, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(reply_entries_are_sourced_and_valid),
      cmocka_unit_test(reply_entries_come_from_twenty_origins),
      cmocka_unit_test(spec_providers_have_settings),
      cmocka_unit_test(every_provider_row_is_valid),
      cmocka_unit_test(causes_have_texts_and_fixes_are_valid),
      cmocka_unit_test(error_entries_are_sourced),
      cmocka_unit_test(hosts_name_provider_and_role),
      cmocka_unit_test(domains_name_providers),
      cmocka_unit_test(fingerprints_name_servers),
      cmocka_unit_test(username_rules),
      cmocka_unit_test(provider_settings),
      cmocka_unit_test(reply_lookup_prefers_specific_knowledge),
      cmocka_unit_test(pattern_matching),
      cmocka_unit_test(oauth_error_challenge),
      cmocka_unit_test(advice_prefers_provider_steps),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
