/* test_lab_server.c — the lab server on the wire (src/lab.c).
 *
 * The lab runs in a thread of this process; a raw client (blocking socket,
 * OpenSSL for STARTTLS, GNU SASL for the client side of the mechanisms)
 * speaks SMTP to it byte by byte. Covers the sans-I/O pieces, every server
 * mechanism, PIPELINING, dot-stuffing into the Maildir, STARTTLS command
 * injection, SIZE, hostile clients (long lines, floods, errors, idle) and
 * many connections at once. Every read has a 5 s time-out. */
#define _GNU_SOURCE
#include "lab.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka.h needs the four above first */
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <gsasl.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

/* ---- a lab in a thread ---- */

typedef struct fixture {
  smtpkit_lab *lab;
  pthread_t thread;
  char maildir[256];
} fixture;

static void *serve(void *lab) {
  smtpkit_lab_run(lab);
  return NULL;
}

static fixture *lab_up(const char *scenario, unsigned idle_ms) {
  fixture *f = calloc(1, sizeof *f);
  assert_non_null(f);
  snprintf(f->maildir, sizeof f->maildir, "%s/smtpkit-lab-md.XXXXXX",
           getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  assert_non_null(mkdtemp(f->maildir));
  strcat(f->maildir, "/Maildir");
  smtpkit_lab_options o;
  smtpkit_lab_options_init(&o);
  o.scenario = scenario;
  o.maildir = f->maildir;
  o.idle_timeout_ms = idle_ms;
  char err[512] = "";
  f->lab = smtpkit_lab_new(&o, err, sizeof err);
  if (!f->lab)
    fail_msg("lab: %s", err);
  if (!smtpkit_lab_start(f->lab, err, sizeof err))
    fail_msg("lab: %s", err);
  assert_int_equal(pthread_create(&f->thread, NULL, serve, f->lab), 0);
  return f;
}

static void lab_down(fixture *f) {
  smtpkit_lab_stop(f->lab);
  pthread_join(f->thread, NULL);
  smtpkit_lab_free(f->lab);
  char cmd[600];
  char *slash = strrchr(f->maildir, '/');
  *slash = '\0';
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->maildir);
  assert_int_equal(system(cmd), 0);
  free(f);
}

/* ---- a raw client ---- */

typedef struct raw {
  int fd;
  SSL_CTX *ctx;
  SSL *ssl;
  sk_reply_parser rp;
} raw;

static void raw_open(raw *r, fixture *f) {
  memset(r, 0, sizeof *r);
  sk_reply_parser_init(&r->rp);
  r->fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(r->fd >= 0);
  struct timeval tv = {.tv_sec = 5};
  setsockopt(r->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(r->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons(smtpkit_lab_port(f->lab, false))};
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  assert_int_equal(connect(r->fd, (struct sockaddr *)&sa, sizeof sa), 0);
}

static void raw_close(raw *r) {
  if (r->ssl)
    SSL_free(r->ssl);
  if (r->ctx)
    SSL_CTX_free(r->ctx);
  if (r->fd >= 0)
    close(r->fd);
  sk_reply_parser_free(&r->rp);
}

static void raw_write(raw *r, const char *p, size_t n) {
  if (r->ssl) {
    assert_int_equal(SSL_write(r->ssl, p, (int)n), (int)n);
    return;
  }
  while (n) {
    ssize_t k = send(r->fd, p, n, MSG_NOSIGNAL);
    if (k <= 0)
      return; /* the lab may have closed: the next read says so */
    p += k;
    n -= (size_t)k;
  }
}

static void raw_send(raw *r, const char *s) { raw_write(r, s, strlen(s)); }

/* Next reply's code (text into *text if not NULL), 0 when the connection
 * closed, -1 on a time-out or garbage. */
static int raw_reply(raw *r, char **text) {
  for (int i = 0; i < 1000; i++) {
    smtpkit_reply rep = {0};
    int st = sk_reply_parser_next(&r->rp, &rep, NULL);
    if (st == SK_RP_REPLY) {
      int code = rep.code;
      if (text)
        *text = strdup(rep.text);
      sk_reply_clear(&rep);
      return code;
    }
    if (st == SK_RP_ERROR)
      return -1;
    char buf[4096];
    int n = r->ssl ? SSL_read(r->ssl, buf, sizeof buf)
                   : (int)recv(r->fd, buf, sizeof buf, 0);
    if (n == 0 || (n < 0 && (r->ssl || errno == ECONNRESET)))
      return 0; /* closed (a reset when our input was left unread) */
    if (n < 0)
      return -1;
    sk_reply_parser_feed(&r->rp, buf, (size_t)n);
  }
  return -1;
}

static void expect(raw *r, int code) {
  char *t = NULL;
  int got = raw_reply(r, &t);
  if (got != code)
    fail_msg("want %d, got %d %s", code, got, t ? t : "");
  free(t);
}

/* True when the lab closed the connection (within 5 s). */
static bool raw_closed(raw *r) {
  for (int i = 0; i < 100; i++) {
    int c = raw_reply(r, NULL);
    if (c == 0)
      return true;
    if (c < 0)
      return false;
  }
  return false;
}

static void raw_starttls(raw *r, fixture *f) {
  raw_send(r, "STARTTLS\r\n");
  expect(r, 220);
  r->ctx = SSL_CTX_new(TLS_client_method());
  assert_int_equal(
      SSL_CTX_load_verify_locations(r->ctx, smtpkit_lab_ca_file(f->lab), NULL),
      1);
  SSL_CTX_set_verify(r->ctx, SSL_VERIFY_PEER, NULL);
  r->ssl = SSL_new(r->ctx);
  SSL_set_fd(r->ssl, r->fd);
  X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(r->ssl), "127.0.0.1");
  assert_int_equal(SSL_connect(r->ssl), 1);
}

/* Greeting, EHLO, STARTTLS, EHLO. */
static void raw_ready(raw *r, fixture *f) {
  raw_open(r, f);
  expect(r, 220);
  raw_send(r, "EHLO client.example.test\r\n");
  expect(r, 250);
  raw_starttls(r, f);
  raw_send(r, "EHLO client.example.test\r\n");
  expect(r, 250);
}

static char *b64(const char *s, size_t n) { return sk_base64_encode(s, n); }

static void auth_plain(raw *r, const char *user, const char *pw, int want) {
  char msg[256], line[400];
  int n = snprintf(msg, sizeof msg, "%c%s%c%s", 0, user, 0, pw);
  char *e = b64(msg, (size_t)n);
  snprintf(line, sizeof line, "AUTH PLAIN %s\r\n", e);
  free(e);
  raw_send(r, line);
  expect(r, want);
}

/* ---- sans-I/O ---- */

static void test_next_line(void **st) {
  (void)st;
  size_t used = 0;
  assert_int_equal(sk_lab_next_line("EHLO x\r\nQUIT", 12, &used), 6);
  assert_int_equal(used, 8);
  assert_int_equal(sk_lab_next_line("EHLO x\n", 7, &used), 6);
  assert_int_equal(sk_lab_next_line("EHLO", 4, &used), -1);
  char big[5000];
  memset(big, 'A', sizeof big);
  assert_int_equal(sk_lab_next_line(big, sizeof big, &used), -2);
  big[4094] = '\r';
  big[4095] = '\n';
  assert_int_equal(sk_lab_next_line(big, sizeof big, &used), 4094);
  big[4095] = 'A';
  big[4096] = '\n';
  assert_int_equal(sk_lab_next_line(big, sizeof big, &used), -2);
}

/* Feeds in one chunk or byte by byte; returns the message and the bytes
 * consumed. */
static size_t scan(const char *in, size_t n, bool bytewise, char *msg,
                   size_t *msg_n) {
  sk_lab_data d;
  sk_lab_data_init(&d);
  size_t used = 0, o = 0;
  bool done = false;
  while (used < n && !done) {
    size_t take = bytewise ? 1 : n - used, k;
    char out[4096 + 2];
    used += sk_lab_data_scan(&d, in + used, take, out, &k, &done);
    memcpy(msg + o, out, k);
    o += k;
  }
  assert_true(done);
  assert_int_equal(d.size, o);
  *msg_n = o;
  return used;
}

static void test_data_scan(void **st) {
  (void)st;
  static const struct {
    const char *in, *msg;
    size_t used;
  } cases[] = {
      {"a\r\n..b\r\n.\r\nQUIT\r\n", "a\r\n.b\r\n", 11},
      {".\r\n", "", 3},
      {"..\r\n.\r\n", ".\r\n", 7},
      {"x.\r\n.y\r\n.\r\n", "x.\r\ny\r\n", 11},
      {"a\r\n.\rX\r\n.\r\n", "a\r\n\rX\r\n", 11},
      {"a\r\r\n.\r\n", "a\r\r\n", 7},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
    for (int bytewise = 0; bytewise < 2; bytewise++) {
      char msg[256];
      size_t n;
      size_t used = scan(cases[i].in, strlen(cases[i].in), bytewise, msg, &n);
      assert_int_equal(used, cases[i].used);
      assert_int_equal(n, strlen(cases[i].msg));
      assert_memory_equal(msg, cases[i].msg, n);
    }
}

static void test_scenario_table(void **st) {
  (void)st;
  assert_true(smtpkit_lab_scenario_count() >= 30);
  for (size_t i = 0; i < smtpkit_lab_scenario_count(); i++) {
    const smtpkit_lab_scenario *s = smtpkit_lab_scenario_at(i);
    assert_non_null(s->description);
    assert_non_null(s->fix);
    assert_true(strncmp(s->source, "http", 4) == 0);
    assert_ptr_equal(smtpkit_lab_scenario_find(s->name), s);
  }
  assert_null(smtpkit_lab_scenario_find("no-such-scenario"));
}

/* ---- mechanisms ---- */

static int client_cb(Gsasl *ctx, Gsasl_session *s, Gsasl_property p) {
  (void)ctx;
  (void)s;
  (void)p;
  return GSASL_NO_CALLBACK;
}

/* Runs mech with GNU SASL's client side; returns the final reply code. */
static int gsasl_login(raw *r, Gsasl *g, const char *mech, const char *pw) {
  Gsasl_session *s;
  assert_int_equal(gsasl_client_start(g, mech, &s), GSASL_OK);
  gsasl_property_set(s, GSASL_AUTHID, "alice");
  gsasl_property_set(s, GSASL_PASSWORD, pw);
  char line[8192];
  snprintf(line, sizeof line, "AUTH %s\r\n", mech);
  raw_send(r, line);
  int code = 0;
  for (int steps = 0; steps < 10; steps++) {
    char *text = NULL;
    code = raw_reply(r, &text);
    if (code != 334) {
      free(text);
      break;
    }
    char *out = NULL;
    int rc = gsasl_step64(s, text, &out);
    free(text);
    if (rc != GSASL_OK && rc != GSASL_NEEDS_MORE) {
      raw_send(r, "*\r\n"); /* e.g. a wrong server signature */
      continue;
    }
    snprintf(line, sizeof line, "%s\r\n", out ? out : "");
    gsasl_free(out);
    raw_send(r, line);
  }
  gsasl_finish(s);
  return code;
}

static void test_mechanisms(void **st) {
  (void)st;
  fixture *f = lab_up("ok", 0);
  Gsasl *g;
  assert_int_equal(gsasl_init(&g), GSASL_OK);
  gsasl_callback_set(g, client_cb);
  static const char *const mechs[] = {"PLAIN", "LOGIN", "CRAM-MD5",
                                      "SCRAM-SHA-256"};
  for (size_t i = 0; i < 4; i++) {
    for (int good = 0; good < 2; good++) {
      raw r;
      raw_ready(&r, f);
      int code =
          gsasl_login(&r, g, mechs[i], good ? "correct horse" : "wrong horse");
      if (code != (good ? 235 : 535))
        fail_msg("%s with a %s password: %d", mechs[i], good ? "good" : "bad",
                 code);
      raw_send(&r, "QUIT\r\n");
      expect(&r, 221);
      raw_close(&r);
    }
  }
  gsasl_done(g);

  /* XOAUTH2 and OAUTHBEARER, good and bad token. */
  static const char *const head[] = {"user=alice\001auth=Bearer ",
                                     "n,a=alice,\001auth=Bearer "};
  static const char *const tok_mech[] = {"XOAUTH2", "OAUTHBEARER"};
  for (int m = 0; m < 2; m++)
    for (int good = 0; good < 2; good++) {
      raw r;
      raw_ready(&r, f);
      char msg[200], line[400];
      int n = snprintf(msg, sizeof msg, "%s%s\001\001", head[m],
                       good ? "good-token" : "expired-token");
      char *e = b64(msg, (size_t)n);
      snprintf(line, sizeof line, "AUTH %s %s\r\n", tok_mech[m], e);
      free(e);
      raw_send(&r, line);
      char *text = NULL;
      int code = raw_reply(&r, &text);
      if (good) {
        assert_int_equal(code, 235);
      } else {
        assert_int_equal(code, 334);
        size_t jn;
        unsigned char *json = sk_base64_decode(text, strlen(text), &jn);
        assert_non_null(json);
        assert_non_null(strstr((char *)json, "\"status\":\"401\""));
        free(json);
        raw_send(&r, "\r\n");
        expect(&r, 535);
      }
      free(text);
      raw_close(&r);
    }
  lab_down(f);
}

/* ---- pipelining, dot-stuffing, Maildir ---- */

static char *read_maildir_message(const char *maildir) {
  char dir[400];
  snprintf(dir, sizeof dir, "%s/new", maildir);
  for (int tries = 0; tries < 50; tries++) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    char path[800] = "";
    while ((e = readdir(d)))
      if (e->d_name[0] != '.')
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    closedir(d);
    if (path[0]) {
      FILE *fp = fopen(path, "rb");
      assert_non_null(fp);
      char *buf = calloc(1, 65536);
      size_t n = fread(buf, 1, 65535, fp);
      buf[n] = '\0';
      fclose(fp);
      return buf;
    }
    usleep(100000);
  }
  return NULL;
}

static void test_pipelining_maildir(void **st) {
  (void)st;
  fixture *f = lab_up("ok", 0);
  raw r;
  raw_ready(&r, f);
  auth_plain(&r, "alice", "correct horse", 235);
  raw_send(&r, "MAIL FROM:<alice@example.test> BODY=8BITMIME SIZE=100\r\n"
               "RCPT TO:<bob@example.test>\r\nRCPT TO:<carol@example.test>\r\n"
               "DATA\r\n");
  expect(&r, 250);
  expect(&r, 250);
  expect(&r, 250);
  expect(&r, 354);
  static const char body[] = "Subject: dots\r\n\r\n..leading dot\r\n"
                             "...two\r\n.\r\nQUIT\r\n";
  raw_send(&r, body);
  char *t = NULL;
  assert_int_equal(raw_reply(&r, &t), 250);
  assert_non_null(strstr(t, "queued as"));
  free(t);
  expect(&r, 221);
  assert_true(raw_closed(&r));
  raw_close(&r);
  char *msg = read_maildir_message(f->maildir);
  assert_non_null(msg);
  assert_string_equal(msg, "Subject: dots\r\n\r\n.leading dot\r\n..two\r\n");
  free(msg);
  lab_down(f);
}

/* RFC 3207 §5 / CVE-2011-0411: plaintext after STARTTLS is dropped. */
static void test_starttls_injection(void **st) {
  (void)st;
  fixture *f = lab_up("ok", 0);
  raw r;
  raw_open(&r, f);
  expect(&r, 220);
  raw_send(&r, "EHLO client.example.test\r\n");
  expect(&r, 250);
  raw_send(&r, "STARTTLS\r\nNOOP\r\n");
  expect(&r, 220);
  r.ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_load_verify_locations(r.ctx, smtpkit_lab_ca_file(f->lab), NULL);
  SSL_CTX_set_verify(r.ctx, SSL_VERIFY_PEER, NULL);
  r.ssl = SSL_new(r.ctx);
  SSL_set_fd(r.ssl, r.fd);
  assert_int_equal(SSL_connect(r.ssl), 1);
  raw_send(&r, "EHLO client.example.test\r\n");
  char *t = NULL;
  assert_int_equal(raw_reply(&r, &t), 250);
  assert_non_null(strstr(t, "Hello")); /* EHLO's answer, not NOOP's */
  free(t);
  raw_close(&r);
  lab_down(f);
}

/* SIZE: refused at MAIL when declared, after the data when not. */
static void test_size(void **st) {
  (void)st;
  fixture *f = lab_up("message-too-big", 0);
  raw r;
  raw_ready(&r, f);
  auth_plain(&r, "alice", "correct horse", 235);
  raw_send(&r, "MAIL FROM:<a@example.test> SIZE=20000\r\n");
  char *t = NULL;
  assert_int_equal(raw_reply(&r, &t), 552);
  assert_non_null(strstr(t, "exceeds"));
  free(t);
  raw_send(&r, "MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\n"
               "DATA\r\n");
  expect(&r, 250);
  expect(&r, 250);
  expect(&r, 354);
  char line[80];
  memset(line, 'x', 78);
  line[78] = '\r';
  line[79] = '\n';
  for (int i = 0; i < 200; i++)
    raw_write(&r, line, sizeof line);
  raw_send(&r, ".\r\n");
  expect(&r, 552);
  raw_close(&r);
  lab_down(f);
}

/* ---- hostile clients ---- */

static void test_long_line(void **st) {
  (void)st;
  fixture *f = lab_up("ok", 0);
  raw r;
  raw_open(&r, f);
  expect(&r, 220);
  char big[5002];
  memset(big, 'A', 5000);
  memcpy(big + 5000, "\r\n", 2);
  raw_write(&r, big, sizeof big);
  expect(&r, 500);
  assert_true(raw_closed(&r));
  raw_close(&r);

  /* 64 KB without a line break */
  raw_open(&r, f);
  expect(&r, 220);
  char *flood = malloc(65536);
  memset(flood, 'B', 65536);
  raw_write(&r, flood, 65536);
  free(flood);
  assert_true(raw_closed(&r));
  raw_close(&r);
  lab_down(f);
}

static void test_errors_and_nul(void **st) {
  (void)st;
  fixture *f = lab_up("ok", 0);
  raw r;
  raw_open(&r, f);
  expect(&r, 220);
  raw_write(&r, "EH\0LO x\r\n", 9);
  expect(&r, 500);
  for (int i = 0; i < 8; i++) {
    raw_send(&r, "BOGUS\r\n");
    expect(&r, 502);
  }
  raw_send(&r, "BOGUS\r\n");
  expect(&r, 421);
  assert_true(raw_closed(&r));
  raw_close(&r);
  lab_down(f);
}

static void test_idle_timeout(void **st) {
  (void)st;
  fixture *f = lab_up("ok", 500);
  raw r;
  raw_open(&r, f);
  expect(&r, 220);
  char *t = NULL;
  assert_int_equal(raw_reply(&r, &t), 421); /* no command for 0.5 s */
  assert_non_null(strstr(t, "timeout"));
  free(t);
  assert_true(raw_closed(&r));
  raw_close(&r);
  lab_down(f);
}

/* 554 at connect: only QUIT is answered with anything but 503. */
static void test_refused_at_connect(void **st) {
  (void)st;
  fixture *f = lab_up("ip-blocked", 0);
  raw r;
  raw_open(&r, f);
  char *t = NULL;
  assert_int_equal(raw_reply(&r, &t), 554);
  assert_non_null(strstr(t, "[127.0.0.1] blocked using zen.spamhaus.org"));
  free(t);
  raw_send(&r, "EHLO x.example\r\n");
  expect(&r, 503);
  raw_send(&r, "QUIT\r\n");
  expect(&r, 221);
  assert_true(raw_closed(&r));
  raw_close(&r);
  lab_down(f);
}

/* Reply texts stay on their lines whatever the client sends. */
static void test_no_reply_injection(void **st) {
  (void)st;
  fixture *f = lab_up("recipient-rejected", 0);
  raw r;
  raw_ready(&r, f);
  auth_plain(&r, "alice", "correct horse", 235);
  raw_send(&r, "MAIL FROM:<a@example.test>\r\n");
  expect(&r, 250);
  raw_send(&r, "RCPT TO:<b\r250 injected@example.test>\r\n");
  char *t = NULL;
  assert_int_equal(raw_reply(&r, &t), 550);
  assert_null(strchr(t, '\n'));
  assert_non_null(strstr(t, "User unknown"));
  free(t);
  raw_send(&r, "NOOP\r\n");
  expect(&r, 250);
  raw_close(&r);
  lab_down(f);
}

/* Silent clients do not hold up anyone: 300 connections that never speak,
 * and a full session still goes through at once. */
static void test_many_silent_connections(void **st) {
  (void)st;
  fixture *f = lab_up("ok", 0);
  enum { N = 300 };
  raw *many = calloc(N, sizeof *many);
  for (int i = 0; i < N; i++)
    raw_open(&many[i], f);
  raw r;
  raw_ready(&r, f);
  auth_plain(&r, "alice", "correct horse", 235);
  raw_send(&r, "QUIT\r\n");
  expect(&r, 221);
  raw_close(&r);
  for (int i = 0; i < N; i++) {
    expect(&many[i], 220);
    raw_close(&many[i]);
  }
  free(many);
  lab_down(f);
}

static void test_options(void **st) {
  (void)st;
  smtpkit_lab_options o;
  smtpkit_lab_options_init(&o);
  char err[256] = "";
  o.scenario = "no-such-scenario";
  assert_null(smtpkit_lab_new(&o, err, sizeof err));
  assert_non_null(strstr(err, "no-such-scenario"));
  o.scenario = "ok";
  o.listen = "not an address";
  smtpkit_lab *lab = smtpkit_lab_new(&o, err, sizeof err);
  assert_non_null(lab);
  assert_false(smtpkit_lab_start(lab, err, sizeof err));
  smtpkit_lab_free(lab);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_next_line),
      cmocka_unit_test(test_data_scan),
      cmocka_unit_test(test_scenario_table),
      cmocka_unit_test(test_options),
      cmocka_unit_test(test_mechanisms),
      cmocka_unit_test(test_pipelining_maildir),
      cmocka_unit_test(test_starttls_injection),
      cmocka_unit_test(test_size),
      cmocka_unit_test(test_long_line),
      cmocka_unit_test(test_errors_and_nul),
      cmocka_unit_test(test_idle_timeout),
      cmocka_unit_test(test_refused_at_connect),
      cmocka_unit_test(test_no_reply_injection),
      cmocka_unit_test(test_many_silent_connections),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
