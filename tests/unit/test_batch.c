/* Tests for batch sending: reading Maildirs, .eml directories and mboxes
 * (src/mailbox.c, with >From unquoting), and the state machine's support
 * for many messages on one connection (src/session.c: RSET after a
 * refusal, the next transaction pipelined after the end of data). */
#define _GNU_SOURCE
#include "mailbox.h"
#include "session.h"

/* cmocka needs these first */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- helpers ---- */

static char tmpdir[64];

static int make_tmp(void **state) {
  (void)state;
  snprintf(tmpdir, sizeof tmpdir, "/tmp/smtpkit-test-batch.XXXXXX");
  return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_tmp(void **state) {
  (void)state;
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  return system(cmd) == 0 ? 0 : -1;
}

static void write_file(const char *rel, const char *text) {
  char p[512];
  snprintf(p, sizeof p, "%s/%s", tmpdir, rel);
  FILE *f = fopen(p, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static void make_dir(const char *rel) {
  char p[512];
  snprintf(p, sizeof p, "%s/%s", tmpdir, rel);
  assert_int_equal(mkdir(p, 0700), 0);
}

static char *path_of(const char *rel) {
  static char p[512];
  snprintf(p, sizeof p, "%s%s%s", tmpdir, *rel ? "/" : "", rel);
  return p;
}

/* The whole of message i, read through its stream in small reads. */
static char *slurp(const sk_mailbox *mb, size_t i) {
  FILE *f = sk_mailbox_fopen(mb, i);
  assert_non_null(f);
  char *out = NULL;
  size_t n = 0;
  FILE *m = open_memstream(&out, &n);
  char buf[7];
  for (size_t k; (k = fread(buf, 1, sizeof buf, f)) > 0;)
    fwrite(buf, 1, k, m);
  fclose(m);
  fclose(f);
  return out;
}

static const char *tail(const char *name) {
  const char *s = strrchr(name, '/');
  return s ? s + 1 : name;
}

/* ---- mbox ---- */

#define MBOX                                                                   \
  "From alice@example.test Thu Jan  1 00:00:00 2025\n"                         \
  "From: alice@example.test\n"                                                 \
  "Subject: one\n"                                                             \
  "\n"                                                                         \
  ">From the start of a line\n"                                                \
  ">>From deeper\n"                                                            \
  "> From with a space is not quoted\n"                                        \
  ">Fro not quite\n"                                                           \
  "\n"                                                                         \
  "From bob@example.test Thu Jan  1 00:00:01 2025\n"                           \
  "Subject: two\n"                                                             \
  "\n"                                                                         \
  "first line\n"                                                               \
  "From here on, not a separator: no empty line before\n"                      \
  "last line\n"                                                                \
  "\n"

static void mbox_messages_and_boundaries(void **state) {
  (void)state;
  write_file("box.mbox", MBOX);
  char err[256];
  bool missing;
  sk_mailbox *mb = sk_mailbox_open(path_of("box.mbox"), SK_MBOXRD, err,
                                   sizeof err, &missing);
  assert_non_null(mb);
  assert_int_equal(sk_mailbox_kind_of(mb), SK_MAILBOX_MBOX);
  assert_int_equal(sk_mailbox_count(mb), 2);
  assert_string_equal(tail(sk_mailbox_name(mb, 1)), "box.mbox#2");
  assert_null(sk_mailbox_path(mb, 0));
  char *one = slurp(mb, 0);
  assert_string_equal(one, "From: alice@example.test\n"
                           "Subject: one\n"
                           "\n"
                           "From the start of a line\n"
                           ">From deeper\n"
                           "> From with a space is not quoted\n"
                           ">Fro not quite\n");
  free(one);
  char *two = slurp(mb, 1);
  assert_string_equal(two, "Subject: two\n"
                           "\n"
                           "first line\n"
                           "From here on, not a separator: no empty line "
                           "before\n"
                           "last line\n");
  free(two);
  sk_mailbox_free(mb);
}

static void mbox_crlf_and_rewind(void **state) {
  (void)state;
  write_file("crlf.mbox", "From x\r\nSubject: a\r\n\r\nbody\r\n\r\n"
                          "From y\r\nSubject: b\r\n\r\n>From z\r\n");
  char err[256];
  bool missing;
  sk_mailbox *mb = sk_mailbox_open(path_of("crlf.mbox"), SK_MBOXRD, err,
                                   sizeof err, &missing);
  assert_non_null(mb);
  assert_int_equal(sk_mailbox_count(mb), 2);
  FILE *f = sk_mailbox_fopen(mb, 0);
  char buf[64];
  size_t n = fread(buf, 1, sizeof buf, f);
  assert_int_equal(n, strlen("Subject: a\r\n\r\nbody\r\n"));
  rewind(f);
  n = fread(buf, 1, sizeof buf, f);
  buf[n] = '\0';
  assert_string_equal(buf, "Subject: a\r\n\r\nbody\r\n");
  fclose(f);
  char *two = slurp(mb, 1);
  assert_string_equal(two, "Subject: b\r\n\r\nFrom z\r\n");
  free(two);
  sk_mailbox_free(mb);
}

static size_t unquote_all(sk_mbox_quoting q, const char *in, char *out,
                          size_t step) {
  sk_unquoter u;
  sk_unquote_init(&u, q);
  size_t k = 0, n = strlen(in);
  for (size_t i = 0; i < n; i += step)
    k += sk_unquote(&u, in + i, n - i < step ? n - i : step, out + k);
  k += sk_unquote_finish(&u, out + k);
  out[k] = '\0';
  return k;
}

static void unquote_rd_and_o(void **state) {
  (void)state;
  const char *in = ">From a\n>>From b\n>>>From c\n>Frob\nx>From d\n>\n>From";
  char out[256];
  /* Any split of the input gives the same result. */
  for (size_t step = 1; step < 12; step++) {
    unquote_all(SK_MBOXRD, in, out, step);
    assert_string_equal(out,
                        "From a\n>From b\n>>From c\n>Frob\nx>From d\n>\n>From");
    unquote_all(SK_MBOXO, in, out, step);
    assert_string_equal(
        out, "From a\n>>From b\n>>>From c\n>Frob\nx>From d\n>\n>From");
  }
}

static void file_without_from_line_is_one_message(void **state) {
  (void)state;
  write_file("one.eml", "Subject: alone\n\nhi\n");
  char err[256];
  bool missing;
  sk_mailbox *mb =
      sk_mailbox_open(path_of("one.eml"), SK_MBOXRD, err, sizeof err, &missing);
  assert_non_null(mb);
  assert_int_equal(sk_mailbox_kind_of(mb), SK_MAILBOX_FILE);
  assert_int_equal(sk_mailbox_count(mb), 1);
  char *m = slurp(mb, 0);
  assert_string_equal(m, "Subject: alone\n\nhi\n");
  free(m);
  sk_mailbox_free(mb);
}

/* ---- directories ---- */

static void maildir_new_and_cur_in_delivery_order(void **state) {
  (void)state;
  make_dir("md");
  make_dir("md/new");
  make_dir("md/cur");
  make_dir("md/tmp");
  write_file("md/new/1700000010.M2P1.host", "Subject: 3\n\n");
  write_file("md/cur/1700000002.M1P1.host:2,S", "Subject: 2\n\n");
  write_file("md/new/1700000001.M1P1.host", "Subject: 1\n\n");
  write_file("md/new/.hidden", "not a message");
  write_file("md/tmp/1700000000.M0P1.host", "being written");
  char err[256];
  bool missing;
  sk_mailbox *mb =
      sk_mailbox_open(path_of("md"), SK_MBOXRD, err, sizeof err, &missing);
  assert_non_null(mb);
  assert_int_equal(sk_mailbox_kind_of(mb), SK_MAILBOX_MAILDIR);
  assert_int_equal(sk_mailbox_count(mb), 3);
  assert_string_equal(tail(sk_mailbox_name(mb, 0)), "1700000001.M1P1.host");
  assert_string_equal(tail(sk_mailbox_name(mb, 1)), "1700000002.M1P1.host:2,S");
  assert_string_equal(tail(sk_mailbox_name(mb, 2)), "1700000010.M2P1.host");
  char *m = slurp(mb, 1);
  assert_string_equal(m, "Subject: 2\n\n");
  free(m);
  assert_non_null(sk_mailbox_path(mb, 0));
  sk_mailbox_free(mb);
}

static void eml_directory_in_natural_order(void **state) {
  (void)state;
  make_dir("emls");
  write_file("emls/msg10.eml", "Subject: 10\n\n");
  write_file("emls/msg9.EML", "Subject: 9\n\n");
  write_file("emls/notes.txt", "not a message");
  char err[256];
  bool missing;
  sk_mailbox *mb =
      sk_mailbox_open(path_of("emls"), SK_MBOXRD, err, sizeof err, &missing);
  assert_non_null(mb);
  assert_int_equal(sk_mailbox_kind_of(mb), SK_MAILBOX_EMLDIR);
  assert_int_equal(sk_mailbox_count(mb), 2);
  assert_string_equal(tail(sk_mailbox_name(mb, 0)), "msg9.EML");
  assert_string_equal(tail(sk_mailbox_name(mb, 1)), "msg10.eml");
  sk_mailbox_free(mb);
}

static void empty_or_missing(void **state) {
  (void)state;
  make_dir("empty");
  char err[256];
  bool missing;
  assert_null(
      sk_mailbox_open(path_of("empty"), SK_MBOXRD, err, sizeof err, &missing));
  assert_false(missing);
  assert_non_null(strstr(err, "neither a Maildir"));
  assert_null(sk_mailbox_open(path_of("nothing-here"), SK_MBOXRD, err,
                              sizeof err, &missing));
  assert_true(missing);
  make_dir("emptymd");
  make_dir("emptymd/new");
  sk_mailbox *mb =
      sk_mailbox_open(path_of("emptymd"), SK_MBOXRD, err, sizeof err, &missing);
  assert_non_null(mb); /* an empty Maildir: nothing to send */
  assert_int_equal(sk_mailbox_count(mb), 0);
  sk_mailbox_free(mb);
}

/* ---- the state machine, many messages on one connection ---- */

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

static void ready_session(sk_sm *m, smtpkit_settings *s, const char *ehlo) {
  smtpkit_settings_init(s);
  s->host = "mail.example.test";
  sk_sm_init(m, s, "c.test", true);
  reply(m, "220 hi");
  assert_int_equal(reply(m, ehlo), SK_ACT_READY);
  sk_buf_consume(&m->out, m->out.len);
}

#define EHLO_PIPE "250-x\r\n250-PIPELINING\r\n250 SIZE 1000"

static void next_transaction_follows_end_of_data(void **state) {
  (void)state;
  smtpkit_settings s;
  sk_sm m;
  ready_session(&m, &s, EHLO_PIPE);
  const char *to1[] = {"b@x.test"}, *to2[] = {"c@x.test", "d@x.test"};
  smtpkit_envelope e1 = {.from = "a@x.test", .to = to1, .n_to = 1, .size = 10};
  smtpkit_envelope e2 = {.from = "a@x.test", .to = to2, .n_to = 2, .size = 20};
  sk_sm_begin(&m, &e1);
  reply(&m, "250 ok");
  reply(&m, "250 ok");
  assert_int_equal(reply(&m, "354 go"), SK_ACT_BODY);
  assert_int_equal(sk_sm_body_sent(&m), SK_ACT_WRITE_READ);
  assert_true(sk_sm_queue_next(&m, &e2));
  assert_string_equal(out(&m), "MAIL FROM:<a@x.test> SIZE=20\r\n"
                               "RCPT TO:<c@x.test>\r\nRCPT TO:<d@x.test>\r\n"
                               "DATA\r\n");
  /* The dot's reply ends the first message... */
  assert_int_equal(reply(&m, "250 2.0.0 queued as A"), SK_ACT_READY);
  assert_int_equal(m.data_reply.code, 250);
  /* ...and the second begins without writing anything. */
  assert_true(sk_sm_can_begin(&m));
  assert_int_equal(sk_sm_begin(&m, &e2), SK_ACT_WRITE_READ);
  assert_string_equal(out(&m), "");
  reply(&m, "250 ok");
  reply(&m, "250 ok");
  reply(&m, "550 5.1.1 no such user");
  assert_int_equal(reply(&m, "354 go"), SK_ACT_BODY);
  assert_int_equal(m.accepted, 1);
  sk_sm_free(&m);
}

static void queued_then_refused_dot_still_goes_on(void **state) {
  (void)state;
  smtpkit_settings s;
  sk_sm m;
  ready_session(&m, &s, EHLO_PIPE);
  const char *to[] = {"b@x.test"};
  smtpkit_envelope e1 = {.from = "a@x.test", .to = to, .n_to = 1, .size = -1};
  smtpkit_envelope e2 = e1;
  sk_sm_begin(&m, &e1);
  reply(&m, "250 ok");
  reply(&m, "250 ok");
  reply(&m, "354 go");
  sk_sm_body_sent(&m);
  assert_true(sk_sm_queue_next(&m, &e2));
  assert_int_equal(reply(&m, "554 5.7.1 spam"), SK_ACT_FAIL);
  assert_int_equal(m.err.cause, SMTPKIT_CAUSE_message_rejected);
  assert_true(sk_sm_can_begin(&m));
  /* No RSET: the next MAIL is on the wire already. */
  sk_buf_consume(&m.out, m.out.len);
  assert_int_equal(sk_sm_begin(&m, &e2), SK_ACT_WRITE_READ);
  assert_string_equal(out(&m), "");
  assert_int_equal(reply(&m, "250 ok"), SK_ACT_WRITE_READ);
  sk_sm_free(&m);
}

static void rset_leads_the_group_after_a_refusal(void **state) {
  (void)state;
  smtpkit_settings s;
  sk_sm m;
  ready_session(&m, &s, EHLO_PIPE);
  const char *bad[] = {"nobody@x.test"}, *good[] = {"b@x.test"};
  smtpkit_envelope e1 = {.from = "a@x.test", .to = bad, .n_to = 1, .size = -1};
  smtpkit_envelope e2 = {.from = "a@x.test", .to = good, .n_to = 1, .size = -1};
  sk_sm_begin(&m, &e1);
  reply(&m, "250 ok");
  reply(&m, "550 5.1.1 no such user");
  assert_int_equal(reply(&m, "554 5.5.1 no valid recipients"), SK_ACT_FAIL);
  assert_int_equal(m.err.cause, SMTPKIT_CAUSE_recipient_rejected);
  assert_true(sk_sm_can_begin(&m));
  sk_buf_consume(&m.out, m.out.len);
  assert_int_equal(sk_sm_begin(&m, &e2), SK_ACT_WRITE_READ);
  assert_string_equal(out(&m), "RSET\r\nMAIL FROM:<a@x.test>\r\n"
                               "RCPT TO:<b@x.test>\r\nDATA\r\n");
  assert_int_equal(reply(&m, "250 reset"), SK_ACT_WRITE_READ);
  assert_string_equal(out(&m), "");
  reply(&m, "250 ok");
  reply(&m, "250 ok");
  assert_int_equal(reply(&m, "354 go"), SK_ACT_BODY);
  sk_sm_free(&m);
}

static void rset_then_mail_without_pipelining(void **state) {
  (void)state;
  smtpkit_settings s;
  sk_sm m;
  ready_session(&m, &s, "250-x\r\n250 SIZE 1000");
  const char *to[] = {"b@x.test"};
  smtpkit_envelope e = {.from = "a@x.test", .to = to, .n_to = 1, .size = -1};
  sk_sm_begin(&m, &e);
  assert_int_equal(reply(&m, "451 4.3.0 try later"), SK_ACT_FAIL);
  assert_true(sk_sm_can_begin(&m));
  sk_buf_consume(&m.out, m.out.len);
  assert_int_equal(sk_sm_begin(&m, &e), SK_ACT_WRITE_READ);
  assert_string_equal(out(&m), "RSET\r\n");
  assert_int_equal(reply(&m, "250 ok"), SK_ACT_WRITE_READ);
  assert_string_equal(out(&m), "MAIL FROM:<a@x.test>\r\n");
  sk_sm_free(&m);
}

static void after_421_no_more_transactions(void **state) {
  (void)state;
  smtpkit_settings s;
  sk_sm m;
  ready_session(&m, &s, EHLO_PIPE);
  const char *to[] = {"b@x.test"};
  smtpkit_envelope e = {.from = "a@x.test", .to = to, .n_to = 1, .size = -1};
  sk_sm_begin(&m, &e);
  reply(&m, "250 ok");
  reply(&m, "250 ok");
  reply(&m, "354 go");
  sk_sm_body_sent(&m);
  assert_int_equal(reply(&m, "421 4.3.0 closing"), SK_ACT_FAIL);
  assert_int_equal(m.err.cause, SMTPKIT_CAUSE_server_unavailable);
  assert_false(sk_sm_can_begin(&m));
  sk_sm_free(&m);
}

static void too_big_next_is_not_queued(void **state) {
  (void)state;
  smtpkit_settings s;
  sk_sm m;
  ready_session(&m, &s, EHLO_PIPE);
  const char *to[] = {"b@x.test"};
  smtpkit_envelope e1 = {.from = "a@x.test", .to = to, .n_to = 1, .size = 10};
  smtpkit_envelope big = {
      .from = "a@x.test", .to = to, .n_to = 1, .size = 5000};
  sk_sm_begin(&m, &e1);
  reply(&m, "250 ok");
  reply(&m, "250 ok");
  reply(&m, "354 go");
  sk_sm_body_sent(&m);
  assert_false(sk_sm_queue_next(&m, &big));
  assert_string_equal(out(&m), "");
  assert_int_equal(reply(&m, "250 ok"), SK_ACT_READY);
  assert_int_equal(sk_sm_begin(&m, &big), SK_ACT_FAIL);
  assert_int_equal(m.err.cause, SMTPKIT_CAUSE_message_too_big);
  assert_true(sk_sm_can_begin(&m)); /* nothing was sent */
  sk_sm_free(&m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(mbox_messages_and_boundaries),
      cmocka_unit_test(mbox_crlf_and_rewind),
      cmocka_unit_test(unquote_rd_and_o),
      cmocka_unit_test(file_without_from_line_is_one_message),
      cmocka_unit_test(maildir_new_and_cur_in_delivery_order),
      cmocka_unit_test(eml_directory_in_natural_order),
      cmocka_unit_test(empty_or_missing),
      cmocka_unit_test(next_transaction_follows_end_of_data),
      cmocka_unit_test(queued_then_refused_dot_still_goes_on),
      cmocka_unit_test(rset_leads_the_group_after_a_refusal),
      cmocka_unit_test(rset_then_mail_without_pipelining),
      cmocka_unit_test(after_421_no_more_transactions),
      cmocka_unit_test(too_big_next_is_not_queued),
  };
  return cmocka_run_group_tests(tests, make_tmp, remove_tmp);
}
