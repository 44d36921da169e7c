/* test_lab_concurrency.c — 200 clients at once against the lab's `ok`.
 *
 * The lab runs in this process (one thread, its poll loop). 200 child
 * processes each open a session (connect, STARTTLS, AUTH), then wait at a
 * barrier until all 200 are connected and logged in at the same time, then
 * each submits a message. Every one must succeed, and the lab must have
 * held all 200 connections at once. Everything is bounded: a watchdog
 * alarm ends the test after 120 s.
 *
 * AUTH uses PLAIN (over TLS): this test is about concurrency, not about
 * mechanisms; scenarios.tsv covers the default mechanism choice. */
#define _GNU_SOURCE
#include "smtpkit.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { CLIENTS = 200 };

static int secret(void *ctx, char *buf, size_t cap) {
  (void)ctx;
  return snprintf(buf, cap, "correct horse");
}

typedef struct body {
  const char *text;
  size_t off;
} body;

static long body_read(void *ctx, char *buf, size_t cap) {
  body *b = ctx;
  size_t n = strlen(b->text + b->off);
  if (n > cap)
    n = cap;
  memcpy(buf, b->text + b->off, n);
  b->off += n;
  return (long)n;
}

/* One client: open, say ready, wait for go, send. Exit 0 on success. */
static int client(unsigned port, const char *ca, int ready_w, int go_r, int i) {
  smtpkit_settings set;
  smtpkit_settings_init(&set);
  set.host = "127.0.0.1";
  set.port = port;
  set.tls = SMTPKIT_TLS_STARTTLS;
  set.ca_file = ca;
  set.helo = "client.example.test";
  set.timeout_ms = 60000;
  set.user = "alice";
  set.password = secret;
  set.mechanisms = "PLAIN";
  smtpkit_session *s = smtpkit_session_new(&set);
  bool ok = s && smtpkit_session_open(s);
  char c = ok ? 'r' : 'f';
  if (write(ready_w, &c, 1) != 1)
    ok = false;
  char b;
  while (read(go_r, &b, 1) > 0) { /* EOF is the "go" */
  }
  /* The session keeps a pointer to the envelope until it is freed. */
  char text[200];
  snprintf(text, sizeof text,
           "From: alice@example.test\r\nTo: bob@example.test\r\n"
           "Subject: client %d\r\n\r\nHello from client %d.\r\n",
           i, i);
  body bd = {text, 0};
  const char *to[] = {"bob@example.test"};
  smtpkit_envelope env = {.from = "alice@example.test",
                          .to = to,
                          .n_to = 1,
                          .size = (long long)strlen(text)};
  if (ok)
    ok = smtpkit_session_send(s, &env, body_read, &bd);
  if (!ok && s) {
    const smtpkit_error *e = smtpkit_session_error(s);
    fprintf(stderr, "client %d: %s at %s: %d %s %s\n", i,
            smtpkit_cause_name(e->cause), smtpkit_stage_name(e->stage),
            e->reply.code, e->reply.text ? e->reply.text : "", e->detail);
  }
  if (s)
    smtpkit_session_close(s);
  smtpkit_session_free(s);
  return ok ? 0 : 1;
}

static void *serve(void *lab) {
  smtpkit_lab_run(lab);
  return NULL;
}

static void on_alarm(int sig) {
  (void)sig;
  static const char msg[] = "test_lab_concurrency: watchdog: 120 s passed\n";
  (void)!write(2, msg, sizeof msg - 1);
  kill(0, SIGKILL); /* this test's process group: the children too */
}

int main(void) {
  setpgid(0, 0); /* the watchdog may kill only what this test started */
  signal(SIGALRM, on_alarm);
  signal(SIGPIPE, SIG_IGN);
  alarm(120);
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 2048 &&
      rl.rlim_max >= 2048) {
    rl.rlim_cur = 2048;
    setrlimit(RLIMIT_NOFILE, &rl);
  }

  smtpkit_lab_options o;
  smtpkit_lab_options_init(&o);
  o.scenario = "ok";
  char err[512];
  smtpkit_lab *lab = smtpkit_lab_new(&o, err, sizeof err);
  if (!lab || !smtpkit_lab_start(lab, err, sizeof err)) {
    fprintf(stderr, "lab: %s\n", err);
    return 1;
  }
  unsigned port = smtpkit_lab_port(lab, false);
  const char *ca = smtpkit_lab_ca_file(lab);

  /* Children first, before the lab thread has any connection to leak
   * into them. */
  int ready[2], go[2];
  if (pipe(ready) != 0 || pipe(go) != 0)
    return 1;
  pid_t pids[CLIENTS];
  for (int i = 0; i < CLIENTS; i++) {
    pids[i] = fork();
    if (pids[i] < 0) {
      perror("fork");
      return 1;
    }
    if (pids[i] == 0) {
      close(ready[0]);
      close(go[1]);
      _exit(client(port, ca, ready[1], go[0], i));
    }
  }
  close(ready[1]);
  close(go[0]);

  pthread_t t;
  if (pthread_create(&t, NULL, serve, lab) != 0)
    return 1;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);

  int opened = 0, failed_open = 0;
  char c;
  while (opened + failed_open < CLIENTS && read(ready[0], &c, 1) == 1)
    c == 'r' ? opened++ : failed_open++;
  close(go[1]); /* go */

  int ok = 0;
  for (int i = 0; i < CLIENTS; i++) {
    int st;
    while (waitpid(pids[i], &st, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
      ok++;
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  smtpkit_lab_stop(lab);
  pthread_join(t, NULL);
  smtpkit_lab_stats st;
  smtpkit_lab_get_stats(lab, &st);
  smtpkit_lab_free(lab);

  double secs =
      (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  printf("%d/%d sessions opened at once, %d/%d messages sent in %.2f s; "
         "lab: %lu connections, at most %lu at once, %lu messages, "
         "%lu logins, %lu dropped\n",
         opened, CLIENTS, ok, CLIENTS, secs, st.connections, st.peak,
         st.messages, st.auth_ok, st.dropped);
  bool pass = opened == CLIENTS && ok == CLIENTS && st.peak >= CLIENTS &&
              st.messages == CLIENTS && st.dropped == 0;
  printf("%s\n", pass ? "PASS" : "FAIL");
  return pass ? 0 : 1;
}
