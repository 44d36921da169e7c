/* libFuzzer target: the session state machine driven by server bytes.
 * The input is what a server says; the machine must never crash, loop or
 * put a credential in its transcript lines. */
#include "session.h"

#include <stdlib.h>
#include <string.h>

static int password(void *ctx, char *buf, size_t cap) {
  (void)ctx;
  static const char pw[] = "fuzz-secret-pw";
  if (cap < sizeof pw)
    return -1;
  memcpy(buf, pw, sizeof pw);
  return (int)sizeof pw - 1;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  if (size < 1)
    return 0;
  smtpkit_settings s;
  smtpkit_settings_init(&s);
  s.host = "fuzz.test";
  s.user = "alice";
  s.password = password;
  s.tls = (data[0] & 1) ? SMTPKIT_TLS_NONE : SMTPKIT_TLS_STARTTLS;
  s.allow_plaintext_auth = data[0] & 2;
  sk_sm m;
  sk_sm_init(&m, &s, "client.test", data[0] & 4);
  sk_reply_parser p;
  sk_reply_parser_init(&p);
  const char *to[] = {"b@x.test", "c@x.test"};
  smtpkit_envelope env = {.from = "a@x.test", .to = to, .n_to = 2, .size = 100};
  sk_reply_parser_feed(&p, (const char *)data + 1, size - 1);
  sk_action a = SK_ACT_WRITE_READ;
  for (int steps = 0; steps < 1000; steps++) {
    if (m.shown.data && strstr(m.shown.data, "fuzz-secret-pw"))
      abort();
    if (m.shown.data && strstr(m.shown.data, "ZnV6ei1zZWNyZXQtcHc"))
      abort(); /* base64 of the password */
    sk_buf_consume(&m.out, m.out.len);
    sk_buf_consume(&m.shown, m.shown.len);
    if (a == SK_ACT_FAIL || a == SK_ACT_DONE)
      break;
    if (a == SK_ACT_STARTTLS) {
      a = sk_sm_tls_done(&m);
      continue;
    }
    if (a == SK_ACT_BODY) {
      a = sk_sm_body_sent(&m);
      continue;
    }
    if (a == SK_ACT_READY) {
      a = m.env ? sk_sm_quit(&m) : sk_sm_begin(&m, &env);
      continue;
    }
    smtpkit_reply r = {0};
    if (sk_reply_parser_next(&p, &r, NULL) != SK_RP_REPLY)
      break;
    a = sk_sm_on_reply(&m, &r);
    sk_reply_clear(&r);
  }
  sk_reply_parser_free(&p);
  sk_sm_free(&m);
  return 0;
}
