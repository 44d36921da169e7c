/* Tests for src/session.c: the state machine, fed replies, no sockets. */
#include "session.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

static int give_password(void *ctx, char *buf, size_t cap) {
  const char *pw = ctx;
  size_t n = strlen(pw);
  if (n + 1 > cap)
    return -1;
  memcpy(buf, pw, n + 1);
  return (int)n;
}

static sk_action reply(sk_sm *m, const char *text) {
  smtpkit_reply r = {0};
  assert_true(sk_reply_parse_text(text, strlen(text), &r));
  sk_buf_consume(&m->out, m->out.len);
  sk_buf_consume(&m->shown, m->shown.len);
  sk_action a = sk_sm_on_reply(m, &r);
  sk_reply_clear(&r);
  return a;
}

static const char *out(sk_sm *m) { return m->out.data ? m->out.data : ""; }

static void settings(smtpkit_settings *s, const char *pw) {
  smtpkit_settings_init(s);
  s->host = "mail.example.test";
  s->user = pw ? "alice" : NULL;
  s->password = pw ? give_password : NULL;
  s->password_ctx = (void *)pw;
}

#define EHLO_TLS_AUTH                                                          \
  "250-mail.example.test\r\n250-PIPELINING\r\n250-SIZE 1000\r\n"               \
  "250-AUTH SCRAM-SHA-256 PLAIN LOGIN\r\n250 8BITMIME\r\n"

static void starttls_then_auth_plain(void **state) {
  (void)state;
  smtpkit_settings s;
  settings(&s, "correct horse");
  s.mechanisms = "PLAIN";
  sk_sm m;
  sk_sm_init(&m, &s, "client.example.test", false);
  assert_int_equal(reply(&m, "220 hi"), SK_ACT_WRITE_READ);
  assert_string_equal(out(&m), "EHLO client.example.test\r\n");
  assert_int_equal(reply(&m, "250-x\r\n250-AUTH PLAIN\r\n250 STARTTLS"),
                   SK_ACT_WRITE_READ);
  assert_string_equal(out(&m), "STARTTLS\r\n");
  assert_int_equal(reply(&m, "220 go ahead"), SK_ACT_STARTTLS);
  sk_buf_consume(&m.out, m.out.len);
  assert_int_equal(sk_sm_tls_done(&m), SK_ACT_WRITE_READ);
  assert_string_equal(out(&m), "EHLO client.example.test\r\n");
  assert_int_equal(reply(&m, EHLO_TLS_AUTH), SK_ACT_WRITE_READ);
  /* base64("\0alice\0correct horse") */
  assert_string_equal(out(&m), "AUTH PLAIN AGFsaWNlAGNvcnJlY3QgaG9yc2U=\r\n");
  assert_string_equal(m.shown.data, "AUTH PLAIN <redacted>\n");
  assert_int_equal(reply(&m, "235 2.7.0 ok"), SK_ACT_READY);
  assert_true(m.authed);
  sk_sm_free(&m);
}

static void no_starttls_offered(void **state) {
  (void)state;
  smtpkit_settings s;
  settings(&s, "pw");
  sk_sm m;
  sk_sm_init(&m, &s, "c.test", false);
  reply(&m, "220 hi");
  assert_int_equal(reply(&m, "250-x\r\n250 AUTH PLAIN"), SK_ACT_FAIL);
  assert_int_equal(m.err.cause, SMTPKIT_CAUSE_starttls_not_offered);
  assert_string_equal(out(&m), "");
  sk_sm_free(&m);
}

static void tls_none_holds_credentials_back(void **state) {
  (void)state;
  smtpkit_settings s;
  settings(&s, "pw");
  s.tls = SMTPKIT_TLS_NONE;
  sk_sm m;
  sk_sm_init(&m, &s, "c.test", false);
  reply(&m, "220 hi");
  assert_int_equal(reply(&m, "250-x\r\n250-STARTTLS\r\n250 AUTH PLAIN LOGIN"),
                   SK_ACT_FAIL);
  assert_int_equal(m.err.cause, SMTPKIT_CAUSE_starttls_required);
  assert_null(strstr(out(&m), "AUTH"));
  sk_sm_free(&m);
}

static void auth_not_offered_after_tls(void **state) {
  (void)state;
  smtpkit_settings s;
  settings(&s, "pw");
  sk_sm m;
  sk_sm_init(&m, &s, "c.test", true); /* implicit TLS */
  reply(&m, "220 hi");
  assert_int_equal(reply(&m, "250-x\r\n250 PIPELINING"), SK_ACT_FAIL);
  assert_int_equal(m.err.cause, SMTPKIT_CAUSE_auth_not_offered);
  sk_sm_free(&m);
}

static void fallback_after_scram_535_then_stop(void **state) {
  (void)state;
  smtpkit_settings s;
  settings(&s, "pw");
  sk_sm m;
  sk_sm_init(&m, &s, "c.test", true);
  reply(&m, "220 hi");
  assert_int_equal(reply(&m, EHLO_TLS_AUTH), SK_ACT_WRITE_READ);
  assert_memory_equal(out(&m), "AUTH SCRAM-SHA-256 ", 19);
  /* Hashed password on the server: SCRAM fails, PLAIN over TLS may work. */
  assert_int_equal(reply(&m, "535 5.7.8 Authentication failed"),
                   SK_ACT_WRITE_READ);
  assert_memory_equal(out(&m), "AUTH PLAIN ", 11);
  /* A credential 535 from PLAIN: stop, do not burn more attempts. */
  assert_int_equal(reply(&m, "535 5.7.8 Authentication failed"), SK_ACT_FAIL);
  assert_int_equal(m.err.cause, SMTPKIT_CAUSE_bad_credentials);
  assert_int_equal(m.n_attempts, 2);
  assert_string_equal(m.attempts[0].mechanism, "SCRAM-SHA-256");
  assert_string_equal(m.attempts[1].mechanism, "PLAIN");
  sk_sm_free(&m);
}

static void no_fallback_on_454(void **state) {
  (void)state;
  smtpkit_settings s;
  settings(&s, "pw");
  sk_sm m;
  sk_sm_init(&m, &s, "c.test", true);
  reply(&m, "220 hi");
  reply(&m, EHLO_TLS_AUTH);
  assert_int_equal(reply(&m, "454 4.7.0 Temporary authentication failure"),
                   SK_ACT_FAIL);
  assert_int_equal(m.err.cause, SMTPKIT_CAUSE_temporary_auth_failure);
  assert_true(m.err.transient);
  assert_int_equal(m.n_attempts, 1);
  sk_sm_free(&m);
}

static void pipelined_transaction(void **state) {
  (void)state;
  smtpkit_settings s;
  settings(&s, NULL);
  sk_sm m;
  sk_sm_init(&m, &s, "c.test", true);
  reply(&m, "220 hi");
  assert_int_equal(reply(&m, EHLO_TLS_AUTH), SK_ACT_READY);
  const char *to[] = {"b@x.test", "c@x.test"};
  smtpkit_envelope env = {
      .from = "a@x.test", .to = to, .n_to = 2, .size = 500, .eight_bit = true};
  sk_buf_consume(&m.out, m.out.len);
  assert_int_equal(sk_sm_begin(&m, &env), SK_ACT_WRITE_READ);
  assert_string_equal(out(&m),
                      "MAIL FROM:<a@x.test> SIZE=500 BODY=8BITMIME\r\n"
                      "RCPT TO:<b@x.test>\r\nRCPT TO:<c@x.test>\r\nDATA\r\n");
  assert_int_equal(reply(&m, "250 ok"), SK_ACT_WRITE_READ);
  assert_string_equal(out(&m), "");
  assert_int_equal(reply(&m, "550 5.1.1 no such user"), SK_ACT_WRITE_READ);
  assert_int_equal(reply(&m, "250 ok"), SK_ACT_WRITE_READ);
  assert_int_equal(reply(&m, "354 go"), SK_ACT_BODY);
  assert_int_equal(sk_sm_body_sent(&m), SK_ACT_WRITE_READ);
  assert_int_equal(reply(&m, "250 2.0.0 Ok: queued as ABC"), SK_ACT_READY);
  assert_int_equal(m.accepted, 1);
  assert_false(m.rcpt[0].accepted);
  assert_int_equal(m.err.cause, SMTPKIT_CAUSE_recipient_rejected);
  sk_sm_free(&m);
}

static void size_checked_before_mail(void **state) {
  (void)state;
  smtpkit_settings s;
  settings(&s, NULL);
  sk_sm m;
  sk_sm_init(&m, &s, "c.test", true);
  reply(&m, "220 hi");
  reply(&m, EHLO_TLS_AUTH);
  const char *to[] = {"b@x.test"};
  smtpkit_envelope env = {
      .from = "a@x.test", .to = to, .n_to = 1, .size = 20000};
  sk_buf_consume(&m.out, m.out.len);
  assert_int_equal(sk_sm_begin(&m, &env), SK_ACT_FAIL);
  assert_int_equal(m.err.cause, SMTPKIT_CAUSE_message_too_big);
  assert_string_equal(out(&m), "");
  sk_sm_free(&m);
}

static void pipelined_mail_refused_aborts_data(void **state) {
  (void)state;
  smtpkit_settings s;
  settings(&s, NULL);
  sk_sm m;
  sk_sm_init(&m, &s, "c.test", true);
  reply(&m, "220 hi");
  reply(&m, EHLO_TLS_AUTH);
  const char *to[] = {"b@x.test"};
  smtpkit_envelope env = {.from = "a@x.test", .to = to, .n_to = 1, .size = -1};
  sk_sm_begin(&m, &env);
  assert_int_equal(reply(&m, "530 5.7.0 Authentication required"),
                   SK_ACT_WRITE_READ);
  assert_int_equal(reply(&m, "503 5.5.1 need MAIL"), SK_ACT_WRITE_READ);
  /* A broken server that says 354 anyway gets an empty, ended message. */
  assert_int_equal(reply(&m, "354 go"), SK_ACT_WRITE_READ);
  assert_string_equal(out(&m), ".\r\n");
  assert_int_equal(reply(&m, "250 ok"), SK_ACT_FAIL);
  assert_int_equal(m.err.cause, SMTPKIT_CAUSE_auth_required);
  sk_sm_free(&m);
}

static void helo_fallback(void **state) {
  (void)state;
  smtpkit_settings s;
  settings(&s, NULL);
  s.tls = SMTPKIT_TLS_NONE;
  sk_sm m;
  sk_sm_init(&m, &s, "c.test", false);
  reply(&m, "220 old server");
  assert_int_equal(reply(&m, "502 5.5.2 Error: command not recognized"),
                   SK_ACT_WRITE_READ);
  assert_string_equal(out(&m), "HELO c.test\r\n");
  assert_int_equal(reply(&m, "250 hello"), SK_ACT_READY);
  sk_sm_free(&m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(starttls_then_auth_plain),
      cmocka_unit_test(no_starttls_offered),
      cmocka_unit_test(tls_none_holds_credentials_back),
      cmocka_unit_test(auth_not_offered_after_tls),
      cmocka_unit_test(fallback_after_scram_535_then_stop),
      cmocka_unit_test(no_fallback_on_454),
      cmocka_unit_test(pipelined_transaction),
      cmocka_unit_test(size_checked_before_mail),
      cmocka_unit_test(pipelined_mail_refused_aborts_data),
      cmocka_unit_test(helo_fallback),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
