/* Tests for src/caps.c: EHLO capabilities. */
#include "internal.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

static void parse(sk_caps *c, const char *text) {
  smtpkit_reply r = {0};
  assert_true(sk_reply_parse_text(text, strlen(text), &r));
  memset(c, 0, sizeof *c);
  sk_caps_parse(c, &r);
  sk_reply_clear(&r);
}

static void postfix_before_tls(void **state) {
  (void)state;
  sk_caps c;
  parse(&c,
        "250-mail.example.com\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"
        "250-VRFY\r\n250-ETRN\r\n250-STARTTLS\r\n250-ENHANCEDSTATUSCODES\r\n"
        "250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n");
  assert_true(c.esmtp);
  assert_string_equal(c.server_name, "mail.example.com");
  assert_true(c.pipelining && c.starttls && c.enhancedstatuscodes &&
              c.eightbitmime && c.dsn && c.smtputf8 && c.chunking);
  assert_true(c.has_size);
  assert_int_equal(c.size, 10240000);
  assert_false(c.has_auth);
  sk_caps_free(&c);
}

static void auth_both_forms(void **state) {
  (void)state;
  sk_caps c;
  parse(&c, "250-smtp.gmail.com at your service\r\n"
            "250-AUTH LOGIN PLAIN XOAUTH2 PLAIN-CLIENTTOKEN OAUTHBEARER\r\n"
            "250-AUTH=LOGIN cram-md5\r\n250 SIZE\r\n");
  assert_true(c.has_auth);
  assert_true(sk_caps_has_mech(&c, "PLAIN"));
  assert_true(sk_caps_has_mech(&c, "XOAUTH2"));
  assert_true(sk_caps_has_mech(&c, "CRAM-MD5"));
  assert_true(sk_caps_has_mech(&c, "login"));
  assert_false(sk_caps_has_mech(&c, "PLAIN-CLIENT"));
  assert_false(sk_caps_has_mech(&c, "SCRAM-SHA-1"));
  assert_true(c.has_size);
  assert_int_equal(c.size, 0);
  sk_caps_free(&c);
}

static void not_ehlo_250(void **state) {
  (void)state;
  sk_caps c;
  parse(&c, "502 5.5.2 Error: command not recognized\r\n");
  assert_false(c.esmtp);
  assert_false(c.starttls);
  sk_caps_free(&c);
}

static void keyword_prefix_is_not_keyword(void **state) {
  (void)state;
  sk_caps c;
  parse(&c, "250-x\r\n250-STARTTLSX\r\n250-AUTHX PLAIN\r\n250 SIZEX 5\r\n");
  assert_false(c.starttls);
  assert_false(c.has_auth);
  assert_false(c.has_size);
  sk_caps_free(&c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(postfix_before_tls),
      cmocka_unit_test(auth_both_forms),
      cmocka_unit_test(not_ehlo_250),
      cmocka_unit_test(keyword_prefix_is_not_keyword),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
