/* test_doctor_api.c — the doctor through the public API only, in process,
 * against labs started in threads: what `smtpkit demo` does. Checks the
 * causes, the accessors, the progress and lock-out guard callbacks, and
 * that the report outlives the options it was made from. */
#include "smtpkit.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

typedef struct running_lab {
  smtpkit_lab *lab;
  pthread_t thread;
} running_lab;

static void *lab_main(void *arg) {
  smtpkit_lab_run(arg);
  return NULL;
}

static void lab_up(running_lab *l, const char *scenario) {
  smtpkit_lab_options o;
  smtpkit_lab_options_init(&o);
  o.scenario = scenario;
  char err[300];
  l->lab = smtpkit_lab_new(&o, err, sizeof err);
  assert_non_null(l->lab);
  assert_true(smtpkit_lab_start(l->lab, err, sizeof err));
  assert_int_equal(pthread_create(&l->thread, NULL, lab_main, l->lab), 0);
}

static void lab_down(running_lab *l) {
  smtpkit_lab_stop(l->lab);
  pthread_join(l->thread, NULL);
  smtpkit_lab_free(l->lab);
}

static int password(void *ctx, char *buf, size_t cap) {
  (void)ctx;
  const char *pw = "correct horse";
  size_t n = strlen(pw);
  if (n >= cap)
    return -1;
  memcpy(buf, pw, n + 1);
  return (int)n;
}

typedef struct calls {
  int progress_done, may_login, login_done, login_ok;
} calls;

static void on_progress(void *ctx, size_t index, size_t count, const char *host,
                        unsigned port, const char *status, bool done) {
  calls *c = ctx;
  assert_true(index < count);
  assert_non_null(host);
  assert_true(port > 0);
  assert_non_null(status);
  c->progress_done += done;
}

static bool on_may_login(void *ctx, const char *host, unsigned port, char *why,
                         size_t cap) {
  (void)host, (void)port, (void)why, (void)cap;
  ((calls *)ctx)->may_login++;
  return true;
}

static void on_login_done(void *ctx, const char *host, unsigned port,
                          const smtpkit_error *e, bool ok) {
  (void)host, (void)port, (void)e;
  ((calls *)ctx)->login_done++;
  ((calls *)ctx)->login_ok += ok;
}

/* Runs the doctor against the lab's plain port; the options live only
 * for the call. */
static smtpkit_doctor_report *diagnose(running_lab *l, smtpkit_tls_mode tls,
                                       const char *provider, calls *c) {
  smtpkit_doctor_options *o = calloc(1, sizeof *o);
  assert_non_null(o);
  smtpkit_doctor_options_init(o);
  char *input = strdup("127.0.0.1");
  o->input = input;
  o->settings.port = smtpkit_lab_port(l->lab, false);
  o->settings.tls = tls;
  o->settings.ca_file = smtpkit_lab_ca_file(l->lab);
  o->settings.timeout_ms = 3000;
  char *user = strdup("alice");
  o->settings.user = user;
  o->settings.password = password;
  o->provider = provider;
  o->progress = on_progress;
  o->progress_ctx = c;
  o->may_login = on_may_login;
  o->login_done = on_login_done;
  o->login_ctx = c;
  smtpkit_doctor_report *r = smtpkit_doctor_run(o);
  memset(input, 'x', strlen(input));
  memset(user, 'x', strlen(user));
  free(input);
  free(user);
  memset(o, 0, sizeof *o);
  free(o);
  assert_non_null(r);
  return r;
}

static void test_ok(void **state) {
  (void)state;
  running_lab l;
  lab_up(&l, "ok");
  calls c = {0};
  smtpkit_doctor_report *r = diagnose(&l, SMTPKIT_TLS_AUTO, NULL, &c);
  assert_int_equal(smtpkit_doctor_error(r)->cause, SMTPKIT_CAUSE_ok);
  assert_int_equal(smtpkit_doctor_exit_code(r), 0);
  const smtpkit_probe *p;
  assert_int_equal(smtpkit_doctor_probes(r, &p), 1);
  assert_string_equal(p[0].mode, "starttls");
  assert_true(p[0].reachable);
  assert_int_equal(p[0].greeting.code, 220);
  assert_true(p[0].tls.verified);
  assert_non_null(strstr(p[0].tls.names, "IP:127.0.0.1"));
  assert_non_null(strstr(p[0].auth_after_tls, "PLAIN"));
  assert_string_equal(p[0].auth_before_tls, "");
  smtpkit_doctor_endpoint e;
  assert_true(smtpkit_doctor_recommended(r, &e));
  assert_string_equal(e.host, "127.0.0.1");
  assert_int_equal(e.tls, SMTPKIT_TLS_STARTTLS);
  assert_non_null(e.auth_mechanism);
  const smtpkit_doctor_auth *a = smtpkit_doctor_auth_of(r);
  assert_true(a->attempted && a->ok);
  assert_int_equal(a->reply.code, 235);
  assert_string_equal(smtpkit_doctor_target_of(r)->input, "127.0.0.1");
  assert_string_equal(smtpkit_doctor_target_of(r)->source, "input");
  assert_string_equal(smtpkit_doctor_user(r), "alice");
  assert_int_equal(c.progress_done, 1);
  assert_int_equal(c.may_login, 1);
  assert_int_equal(c.login_done, 1);
  assert_int_equal(c.login_ok, 1);
  smtpkit_doctor_report_free(r);
  lab_down(&l);
}

static void test_wrong_mode(void **state) {
  (void)state;
  running_lab l;
  lab_up(&l, "implicit-tls-only");
  calls c = {0};
  smtpkit_doctor_report *r = diagnose(&l, SMTPKIT_TLS_STARTTLS, NULL, &c);
  const smtpkit_error *err = smtpkit_doctor_error(r);
  assert_int_equal(err->cause, SMTPKIT_CAUSE_plaintext_on_tls_port);
  assert_int_equal(smtpkit_doctor_exit_code(r), 78);
  const char *const *ev;
  assert_true(smtpkit_doctor_evidence(r, &ev) >= 2);
  smtpkit_advice adv;
  smtpkit_doctor_advice(r, &adv);
  assert_true(adv.n_fix > 0);
  smtpkit_doctor_endpoint e;
  assert_true(smtpkit_doctor_recommended(r, &e));
  assert_int_equal(e.tls, SMTPKIT_TLS_IMPLICIT); /* verified by a login */
  assert_int_equal(c.login_ok, 1);
  smtpkit_doctor_report_free(r);
  lab_down(&l);
}

static void test_intercepted(void **state) {
  (void)state;
  running_lab l;
  lab_up(&l, "smtp-intercepted");
  calls c = {0};
  smtpkit_doctor_report *r = diagnose(&l, SMTPKIT_TLS_AUTO, "google", &c);
  assert_int_equal(smtpkit_doctor_error(r)->cause,
                   SMTPKIT_CAUSE_smtp_intercepted);
  /* The secret never went to the server that answered. */
  assert_int_equal(c.may_login, 0);
  assert_false(smtpkit_doctor_auth_of(r)->attempted);
  assert_non_null(smtpkit_doctor_auth_of(r)->skipped);
  assert_false(smtpkit_doctor_recommended(r, NULL));
  smtpkit_doctor_report_free(r);
  lab_down(&l);
}

static void test_bad_credentials(void **state) {
  (void)state;
  running_lab l;
  lab_up(&l, "bad-credentials");
  calls c = {0};
  smtpkit_doctor_report *r = diagnose(&l, SMTPKIT_TLS_AUTO, NULL, &c);
  assert_int_equal(smtpkit_doctor_error(r)->cause,
                   SMTPKIT_CAUSE_bad_credentials);
  assert_int_equal(smtpkit_doctor_exit_code(r), 77);
  const smtpkit_doctor_auth *a = smtpkit_doctor_auth_of(r);
  assert_true(a->attempted);
  assert_false(a->ok);
  assert_true(a->n_attempts >= 1);
  assert_int_equal(a->attempts[a->n_attempts - 1].reply.code, 535);
  /* A judged secret is not sent again to verify an alternative. */
  assert_int_equal(c.may_login, 1);
  assert_false(smtpkit_doctor_recommended(r, NULL));
  smtpkit_doctor_report_free(r);
  lab_down(&l);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ok),
      cmocka_unit_test(test_wrong_mode),
      cmocka_unit_test(test_intercepted),
      cmocka_unit_test(test_bad_credentials),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
