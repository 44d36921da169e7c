/* Tests for src/reply.c: the SMTP reply parser. */
#include "internal.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

static int next(sk_reply_parser *p, const char *in, smtpkit_reply *r) {
  assert_true(sk_reply_parser_feed(p, in, strlen(in)));
  return sk_reply_parser_next(p, r, NULL);
}

static void single_line(void **state) {
  (void)state;
  sk_reply_parser p;
  smtpkit_reply r = {0};
  sk_reply_parser_init(&p);
  assert_int_equal(next(&p, "220 mail.example.com ESMTP Postfix\r\n", &r),
                   SK_RP_REPLY);
  assert_int_equal(r.code, 220);
  assert_string_equal(r.enhanced, "");
  assert_string_equal(r.text, "mail.example.com ESMTP Postfix");
  sk_reply_clear(&r);
  sk_reply_parser_free(&p);
}

static void multi_line_enhanced_each_line(void **state) {
  (void)state;
  sk_reply_parser p;
  smtpkit_reply r = {0};
  sk_reply_parser_init(&p);
  const char *gmail =
      "534-5.7.9 Application-specific password required. Learn more at\r\n"
      "534 5.7.9  https://support.google.com/mail/?p=InvalidSecondFactor "
      "x1-20020a05 - gsmtp\r\n";
  assert_int_equal(next(&p, gmail, &r), SK_RP_REPLY);
  assert_int_equal(r.code, 534);
  assert_string_equal(r.enhanced, "5.7.9");
  assert_string_equal(r.text,
                      "Application-specific password required. Learn more "
                      "at\nhttps://support.google.com/mail/"
                      "?p=InvalidSecondFactor x1-20020a05 - gsmtp");
  sk_reply_clear(&r);
  sk_reply_parser_free(&p);
}

static void split_across_feeds(void **state) {
  (void)state;
  sk_reply_parser p;
  smtpkit_reply r = {0};
  sk_reply_parser_init(&p);
  assert_int_equal(next(&p, "250-mail.exa", &r), SK_RP_MORE);
  assert_int_equal(next(&p, "mple.com\r\n250-PIPELINING\r", &r), SK_RP_MORE);
  assert_int_equal(next(&p, "\n250 8BITMIME\r\n354 go", &r), SK_RP_REPLY);
  assert_int_equal(r.code, 250);
  assert_string_equal(r.text, "mail.example.com\nPIPELINING\n8BITMIME");
  assert_int_equal(sk_reply_parser_pending(&p), 6);
  sk_reply_clear(&r);
  sk_reply_parser_free(&p);
}

static void bare_lf_and_code_only(void **state) {
  (void)state;
  sk_reply_parser p;
  smtpkit_reply r = {0};
  sk_reply_parser_init(&p);
  assert_int_equal(next(&p, "250\n", &r), SK_RP_REPLY);
  assert_int_equal(r.code, 250);
  assert_string_equal(r.text, "");
  sk_reply_clear(&r);
  sk_reply_parser_free(&p);
}

static void qmail_trailing_enhanced(void **state) {
  (void)state;
  smtpkit_reply r = {0};
  const char *t = "553 sorry, that domain isn't in my list of allowed "
                  "rcpthosts (#5.7.1)";
  assert_true(sk_reply_parse_text(t, strlen(t), &r));
  assert_string_equal(r.enhanced, "5.7.1");
  sk_reply_clear(&r);
}

static void enhanced_class_must_match(void **state) {
  (void)state;
  smtpkit_reply r = {0};
  /* "4.7.0" after a 5xx code is text, not this reply's status. */
  const char *t = "550 4.7.0 odd";
  assert_true(sk_reply_parse_text(t, strlen(t), &r));
  assert_string_equal(r.enhanced, "");
  sk_reply_clear(&r);
}

static void rejects_garbage(void **state) {
  (void)state;
  sk_reply_parser p;
  smtpkit_reply r = {0};
  sk_reply_parser_init(&p);
  /* Binary garbage fails at once, without waiting for a line end. */
  assert_true(sk_reply_parser_feed(&p, "\x16\x03\x01\x02\x00", 5));
  assert_int_equal(sk_reply_parser_next(&p, &r, NULL), SK_RP_ERROR);
  sk_reply_parser_free(&p);
  sk_reply_parser_init(&p);
  assert_int_equal(next(&p, "250-a\r\n251 b\r\n", &r), SK_RP_ERROR);
  sk_reply_parser_free(&p);
  sk_reply_parser_init(&p);
  assert_int_equal(next(&p, "250x\r\n", &r), SK_RP_ERROR);
  sk_reply_parser_free(&p);
}

static void bounds_long_line(void **state) {
  (void)state;
  sk_reply_parser p;
  smtpkit_reply r = {0};
  sk_reply_parser_init(&p);
  char *big = malloc(SK_REPLY_MAX_LINE + 10);
  memset(big, 'a', SK_REPLY_MAX_LINE + 9);
  memcpy(big, "250 ", 4);
  big[SK_REPLY_MAX_LINE + 9] = '\0';
  assert_true(sk_reply_parser_feed(&p, big, strlen(big)));
  assert_int_equal(sk_reply_parser_next(&p, &r, NULL), SK_RP_ERROR);
  free(big);
  sk_reply_parser_free(&p);
}

static void bounds_endless_multiline(void **state) {
  (void)state;
  sk_reply_parser p;
  smtpkit_reply r = {0};
  sk_reply_parser_init(&p);
  int st = SK_RP_MORE;
  for (int i = 0; i < SK_REPLY_MAX_LINES + 5 && st == SK_RP_MORE; i++)
    st = next(&p, "250-more\r\n", &r);
  assert_int_equal(st, SK_RP_ERROR);
  sk_reply_parser_free(&p);
}

static void raw_lines_kept(void **state) {
  (void)state;
  sk_reply_parser p;
  smtpkit_reply r = {0};
  char *raw = NULL;
  sk_reply_parser_init(&p);
  const char *in = "535-5.7.8 one\r\n535 5.7.8 two\r\n";
  assert_true(sk_reply_parser_feed(&p, in, strlen(in)));
  assert_int_equal(sk_reply_parser_next(&p, &r, &raw), SK_RP_REPLY);
  assert_string_equal(raw, "535-5.7.8 one\n535 5.7.8 two\n");
  free(raw);
  sk_reply_clear(&r);
  sk_reply_parser_free(&p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(single_line),
      cmocka_unit_test(multi_line_enhanced_each_line),
      cmocka_unit_test(split_across_feeds),
      cmocka_unit_test(bare_lf_and_code_only),
      cmocka_unit_test(qmail_trailing_enhanced),
      cmocka_unit_test(enhanced_class_must_match),
      cmocka_unit_test(rejects_garbage),
      cmocka_unit_test(bounds_long_line),
      cmocka_unit_test(bounds_endless_multiline),
      cmocka_unit_test(raw_lines_kept),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
