/* cmd_demo.c — `smtpkit demo`: every lab scenario, diagnosed, locally.
 *
 * Starts one lab per scenario on free loopback ports (each in its own
 * thread: one poll loop per lab, never a thread per client), runs the
 * client — the same session code `smtpkit send` uses — against each with
 * the settings SPEC §5 checks it with, and prints what the client saw, the
 * cause it diagnosed, the cause expected and the fix. No network beyond
 * loopback, no account. Until `smtpkit doctor` exists, the doctor-level
 * checks (--provider, probing several ports) are approximated by one
 * session that logs in and submits a test message. */
#define _GNU_SOURCE
#include "args.h"
#include "commands.h"
#include "json.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>

void help_demo(void) {
  puts("Usage: smtpkit demo [--scenario NAME]... [--json] [-v]\n"
       "\n"
       "Shows what smtpkit diagnoses, with no account and no network beyond\n"
       "loopback: it starts the lab (smtpkit lab) for every scenario on free\n"
       "127.0.0.1 ports, runs the client against each one the way SPEC §5\n"
       "checks it, and prints a table: the scenario, the key reply the client\n"
       "saw, the cause smtpkit diagnosed, the cause expected, and the fix.\n"
       "It takes a few seconds (the slow-greeting scenario waits for its\n"
       "time-out).\n"
       "\n"
       "Options:\n"
       "      --scenario NAME   only this scenario (repeatable); see\n"
       "                        smtpkit lab --list\n"
       "      --json            the results as JSON on stdout\n"
       "  -v, --verbose         each session's SMTP conversation on stderr\n"
       "                        (credentials redacted)\n"
       "\n"
       "Exit status: 0 when every scenario was diagnosed as expected, 70\n"
       "otherwise.\n"
       "\n"
       "Examples:\n"
       "  smtpkit demo\n"
       "  smtpkit demo --scenario app-password-required -v\n"
       "  smtpkit demo --json | jq '.results[] | select(.match == false)'");
}

enum { OPT_SCENARIO = 3000, OPT_DEMO_JSON };

#define LAB_PASSWORD "correct horse"

typedef struct demo_run {
  const smtpkit_lab_scenario *sc;
  smtpkit_lab *lab;
  pthread_t thread;
  bool running;
  smtpkit_cause got;
  bool transient;
  char saw[200];
  char stage[16];
  const char *fix;
  long long ms;
  char error[300]; /* the lab could not start */
} demo_run;

static int secret_const(void *ctx, char *buf, size_t cap) {
  const char *s = ctx;
  size_t n = strlen(s);
  if (n >= cap)
    return -1;
  memcpy(buf, s, n + 1);
  return (int)n;
}

typedef struct body_src {
  char *text;
  size_t len, off;
} body_src;

static long body_read(void *ctx, char *buf, size_t cap) {
  body_src *b = ctx;
  size_t n = b->len - b->off < cap ? b->len - b->off : cap;
  memcpy(buf, b->text + b->off, n);
  b->off += n;
  return (long)n;
}

/* A plain test message of about size bytes (lines of 76 characters). */
static body_src make_body(unsigned size) {
  body_src b = {0};
  const char *head = "From: alice@example.test\r\nTo: bob@example.test\r\n"
                     "Subject: smtpkit demo\r\n\r\n";
  size_t target = size > strlen(head) + 40 ? size : strlen(head) + 40;
  b.text = malloc(target + 80);
  if (!b.text)
    return b;
  strcpy(b.text, head);
  b.len = strlen(head);
  strcpy(b.text + b.len, "This message comes from smtpkit demo.\r\n");
  b.len += strlen(b.text + b.len);
  while (b.len + 78 <= target) {
    memset(b.text + b.len, 'x', 76);
    memcpy(b.text + b.len + 76, "\r\n", 2);
    b.len += 78;
  }
  return b;
}

static void *lab_thread(void *arg) {
  smtpkit_lab_run(arg);
  return NULL;
}

static void verbose_line(void *ctx, char dir, const char *line, size_t len) {
  fprintf(stderr, "[%s] %c: %.*s\n", (const char *)ctx, dir, (int)len, line);
}

static long long now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000LL + t.tv_nsec / 1000000;
}

/* First line of a reply or detail, cut to fit the table. */
static void short_text(char *out, size_t cap, const smtpkit_error *e,
                       const smtpkit_reply *ok_reply) {
  const smtpkit_reply *r = e->reply.code ? &e->reply : ok_reply;
  if (r && r->code) {
    int n = snprintf(out, cap, "%d%s%s ", r->code, r->enhanced[0] ? " " : "",
                     r->enhanced);
    size_t line = strcspn(r->text ? r->text : "", "\n");
    snprintf(out + n, cap - (size_t)n, "%.*s", (int)line,
             r->text ? r->text : "");
  } else {
    snprintf(out, cap, "%.*s", (int)(cap - 1),
             e->detail[0] ? e->detail : "(nothing)");
  }
  for (char *p = out; *p; p++)
    if ((unsigned char)*p < 0x20 || *p == 0x7f)
      *p = '?';
}

/* The client settings SPEC §5 checks a scenario with. */
static void check_settings(const demo_run *d, smtpkit_settings *set,
                           bool verbose) {
  const smtpkit_lab_check *k = &d->sc->check;
  smtpkit_settings_init(set);
  set->host = "127.0.0.1";
  set->port = smtpkit_lab_port(d->lab, false);
  set->tls = k->tls;
  set->ca_file = smtpkit_lab_ca_file(d->lab);
  set->helo = k->helo;
  set->timeout_ms = 1000 * (k->timeout_s ? k->timeout_s : 3);
  set->user = "alice";
  if (k->bad_token) {
    set->oauth2_token = secret_const;
    set->oauth2_token_ctx = "expired-token";
  } else {
    set->password = secret_const;
    set->password_ctx = LAB_PASSWORD;
  }
  set->mechanisms = k->mechanisms;
  set->allow_plaintext_auth = k->allow_plaintext_auth;
  if (verbose) {
    set->transcript = verbose_line;
    set->transcript_ctx = (void *)d->sc->name;
  }
}

/* What the run found: the cause, a short "what the client saw", the fix. */
static void take_result(demo_run *d, const smtpkit_error *e, bool ok,
                        const smtpkit_reply *ok_reply) {
  d->got = ok && e->cause == SMTPKIT_CAUSE_ok ? SMTPKIT_CAUSE_ok : e->cause;
  d->transient = d->got != SMTPKIT_CAUSE_ok && e->transient;
  snprintf(d->stage, sizeof d->stage, "%s",
           d->got == SMTPKIT_CAUSE_ok ? "" : smtpkit_stage_name(e->stage));
  short_text(d->saw, sizeof d->saw, e, ok_reply);
  smtpkit_advice adv;
  smtpkit_error_advice(e, &adv);
  d->fix = d->got != SMTPKIT_CAUSE_ok && adv.n_fix ? adv.fix[0] : d->sc->fix;
}

/* Scenarios SPEC §5 checks with doctor: the diagnosis, in-process. */
static void run_doctor(demo_run *d, bool verbose) {
  smtpkit_doctor_options o;
  smtpkit_doctor_options_init(&o);
  check_settings(d, &o.settings, verbose);
  o.provider = d->sc->check.provider;
  if (d->sc->check.options && strstr(d->sc->check.options, "--send-test")) {
    o.send_test_to = "bob@example.test";
    o.send_test_from = "alice@example.test";
  }
  long long t0 = now_ms();
  smtpkit_doctor_report *r = smtpkit_doctor_run(&o);
  d->ms = now_ms() - t0;
  if (!r) {
    d->got = SMTPKIT_CAUSE_unknown;
    snprintf(d->saw, sizeof d->saw, "out of memory");
    return;
  }
  const smtpkit_error *e = smtpkit_doctor_error(r);
  take_result(d, e, e->cause == SMTPKIT_CAUSE_ok, NULL);
  if (e->cause == SMTPKIT_CAUSE_ok)
    snprintf(d->saw, sizeof d->saw, "login and submission work");
  smtpkit_doctor_report_free(r);
}

/* Scenarios SPEC §5 checks with send: one message through the session. */
static void run_send(demo_run *d, bool verbose) {
  smtpkit_settings set;
  check_settings(d, &set, verbose);
  body_src body = make_body(d->sc->check.message_size);
  const char *to[] = {"bob@example.test"};
  smtpkit_envelope env = {.from = "alice@example.test",
                          .to = to,
                          .n_to = 1,
                          .size = (long long)body.len};
  long long t0 = now_ms();
  smtpkit_session *s = smtpkit_session_new(&set);
  bool ok = s && body.text && smtpkit_session_open(s) &&
            smtpkit_session_send(s, &env, body_read, &body);
  if (s)
    smtpkit_session_close(s);
  d->ms = now_ms() - t0;
  if (!s || !body.text) {
    d->got = SMTPKIT_CAUSE_unknown;
    snprintf(d->saw, sizeof d->saw, "out of memory");
  } else
    take_result(d, smtpkit_session_error(s), ok, smtpkit_session_data_reply(s));
  smtpkit_session_free(s);
  free(body.text);
}

static void run_client(demo_run *d, bool verbose) {
  if (d->sc->check.tool && !strcmp(d->sc->check.tool, "doctor"))
    run_doctor(d, verbose);
  else
    run_send(d, verbose);
}

static bool start_lab(demo_run *d) {
  smtpkit_lab_options o;
  smtpkit_lab_options_init(&o);
  o.scenario = d->sc->name;
  o.password = LAB_PASSWORD;
  o.idle_timeout_ms = 30000;
  d->lab = smtpkit_lab_new(&o, d->error, sizeof d->error);
  if (!d->lab)
    return false;
  if (!smtpkit_lab_start(d->lab, d->error, sizeof d->error)) {
    smtpkit_lab_free(d->lab);
    d->lab = NULL;
    return false;
  }
  d->running = pthread_create(&d->thread, NULL, lab_thread, d->lab) == 0;
  if (!d->running)
    snprintf(d->error, sizeof d->error, "cannot start a thread");
  return d->running;
}

static void stop_lab(demo_run *d) {
  if (d->running) {
    smtpkit_lab_stop(d->lab);
    pthread_join(d->thread, NULL);
  }
  smtpkit_lab_free(d->lab);
  d->lab = NULL;
}

static void cut(char *out, size_t width, const char *s) {
  size_t n = strlen(s);
  if (n <= width) {
    snprintf(out, width + 1, "%s", s);
    return;
  }
  snprintf(out, width + 1, "%.*s...", (int)(width - 3), s);
}

static void print_table(const demo_run *runs, size_t n, size_t matched,
                        long long ms) {
  printf("  %-23s | %-44s | %-23s | %-23s | %s\n", "scenario",
         "what the client saw", "diagnosed", "expected", "fix");
  printf("  %.23s-+-%.44s-+-%.23s-+-%.23s-+-%.30s\n",
         "------------------------------------------------",
         "------------------------------------------------",
         "------------------------------------------------",
         "------------------------------------------------",
         "------------------------------------------------");
  for (size_t i = 0; i < n; i++) {
    const demo_run *d = &runs[i];
    char saw[48], got[32], want[32];
    cut(saw, 44, d->error[0] ? d->error : d->saw);
    cut(got, 23, d->error[0] ? "(lab failed)" : smtpkit_cause_name(d->got));
    cut(want, 23, smtpkit_cause_name(d->sc->cause));
    bool match = !d->error[0] && d->got == d->sc->cause;
    printf("%s %-23s | %-44s | %-23s | %-23s | %s\n", match ? " " : "!",
           d->sc->name, saw, got, want, d->fix ? d->fix : d->sc->fix);
  }
  printf("\n%zu of %zu scenarios diagnosed as expected in %.1f s%s\n", matched,
         n, ms / 1000.0, matched == n ? "" : " ('!' marks the others)");
}

static void print_json(const demo_run *runs, size_t n, size_t matched,
                       long long ms) {
  jw w;
  jw_begin(&w, stdout);
  jw_bool(&w, "ok", matched == n);
  jw_int(&w, "scenarios", (long long)n);
  jw_int(&w, "matched", (long long)matched);
  jw_arr(&w, "results");
  for (size_t i = 0; i < n; i++) {
    const demo_run *d = &runs[i];
    jw_obj(&w, NULL);
    jw_str(&w, "scenario", d->sc->name);
    jw_str(&w, "expected", smtpkit_cause_name(d->sc->cause));
    jw_str(&w, "cause", d->error[0] ? NULL : smtpkit_cause_name(d->got));
    jw_bool(&w, "match", !d->error[0] && d->got == d->sc->cause);
    jw_bool(&w, "transient", d->transient);
    jw_str(&w, "stage", d->stage[0] ? d->stage : NULL);
    jw_str(&w, "saw", d->error[0] ? d->error : d->saw);
    jw_str(&w, "fix", d->fix ? d->fix : d->sc->fix);
    jw_int(&w, "elapsed_ms", d->ms);
    jw_obj_end(&w);
  }
  jw_arr_end(&w);
  jw_int(&w, "elapsed_ms", ms);
  jw_end(&w);
}

static int parse(int argc, char **argv, const char **only, size_t *n_only,
                 bool *json, bool *verbose) {
  static const struct option longs[] = {
      {"scenario", required_argument, 0, OPT_SCENARIO},
      {"json", no_argument, 0, OPT_DEMO_JSON},
      {"verbose", no_argument, 0, 'v'},
      {"help", no_argument, 0, 'h'},
      {0, 0, 0, 0}};
  optind = 1;
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, "+vh", longs, NULL)) != -1) {
    switch (c) {
    case 'h':
      help_demo();
      exit(0);
    case 'v':
      *verbose = true;
      break;
    case OPT_DEMO_JSON:
      *json = true;
      break;
    case OPT_SCENARIO:
      if (!smtpkit_lab_scenario_find(optarg))
        return usage_error("demo",
                           "no scenario named '%s' (smtpkit lab "
                           "--list names them)",
                           optarg);
      if (*n_only < smtpkit_lab_scenario_count())
        only[(*n_only)++] = optarg;
      break;
    default:
      return usage_error("demo", "unknown option or missing value: '%s'",
                         argv[optind - 1]);
    }
  }
  if (optind < argc)
    return usage_error("demo", "unexpected argument '%s'", argv[optind]);
  return 0;
}

static bool selected(const char *name, const char **only, size_t n_only) {
  for (size_t i = 0; i < n_only; i++)
    if (!strcmp(only[i], name))
      return true;
  return n_only == 0;
}

int cmd_demo(int argc, char **argv) {
  size_t total = smtpkit_lab_scenario_count();
  const char **only = calloc(total, sizeof *only);
  demo_run *runs = calloc(total, sizeof *runs);
  size_t n_only = 0, n = 0, matched = 0;
  bool json = false, verbose = false;
  int rc = only && runs ? parse(argc, argv, only, &n_only, &json, &verbose)
                        : EX_SOFTWARE;
  if (rc)
    goto out;
  signal(SIGPIPE, SIG_IGN);
  long long t0 = now_ms();
  for (size_t i = 0; i < total; i++) {
    const smtpkit_lab_scenario *sc = smtpkit_lab_scenario_at(i);
    if (selected(sc->name, only, n_only))
      runs[n++].sc = sc;
  }
  if (!json)
    fprintf(stderr,
            "smtpkit demo: %zu lab scenarios on 127.0.0.1; this "
            "takes a few seconds\n\n",
            n);
  for (size_t i = 0; i < n; i++)
    start_lab(&runs[i]);
  for (size_t i = 0; i < n; i++) {
    if (runs[i].lab)
      run_client(&runs[i], verbose);
    matched += !runs[i].error[0] && runs[i].got == runs[i].sc->cause;
  }
  for (size_t i = 0; i < n; i++)
    stop_lab(&runs[i]);
  if (json)
    print_json(runs, n, matched, now_ms() - t0);
  else
    print_table(runs, n, matched, now_ms() - t0);
  rc = matched == n ? 0 : EX_SOFTWARE;
out:
  free(only);
  free(runs);
  return rc;
}
