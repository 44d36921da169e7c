/* cmd_lab.c — `smtpkit lab`: run the failure-scenario server (SPEC §5). */
#define _GNU_SOURCE
#include "args.h"
#include "commands.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sysexits.h>
#include <unistd.h>

void help_lab(void) {
  puts(
      "Usage: smtpkit lab [--scenario NAME] [options]\n"
      "       smtpkit lab --list\n"
      "\n"
      "Runs a local SMTP server that fails the way a real provider fails, so\n"
      "you can watch smtpkit (or your own mail code) meet that failure on\n"
      "demand. It is a test double, not a mail server. On start it prints on\n"
      "stdout:\n"
      "  listening plain=ADDR:PORT tls=ADDR:PORT\n"
      "  ca=FILE      (the CA that signed its certificate: give it to\n"
      "               clients with --ca-file)\n"
      "It runs until Ctrl-C (SIGINT) or SIGTERM.\n"
      "\n"
      "Options:\n"
      "      --scenario NAME     how to behave (default: ok); see --list\n"
      "      --list              every scenario, one line each, with the\n"
      "                          source of its replies\n"
      "      --listen ADDR:PORT  plain listener: SMTP, STARTTLS where the\n"
      "                          scenario offers it (default 127.0.0.1:0;\n"
      "                          port 0 picks a free port; '' for none)\n"
      "      --tls-listen ADDR:PORT  implicit-TLS listener (default "
      "127.0.0.1:0)\n"
      "      --user NAME         the login the lab accepts (default alice)\n"
      "      --password TEXT     its password (default 'correct horse'). This\n"
      "                          is the lab's own test fixture, not anyone's\n"
      "                          real credential, so the command line is fine\n"
      "                          here (smtpkit send never takes one there)\n"
      "      --token TEXT        the OAuth2 bearer token it accepts for "
      "XOAUTH2\n"
      "                          and OAUTHBEARER (default good-token)\n"
      "      --cert FILE --key FILE  serve this certificate (PEM, chain) "
      "instead\n"
      "                          of generating a CA and a certificate for\n"
      "                          localhost, 127.0.0.1 and ::1; ca= then names\n"
      "                          the --cert file\n"
      "      --ca-out FILE       write the generated CA here (default: a\n"
      "                          temporary file, removed on exit)\n"
      "      --maildir DIR       store each accepted message in DIR (Maildir:\n"
      "                          tmp/ then new/), exactly as received after\n"
      "                          un-dot-stuffing, with CRLF line ends\n"
      "      --mechanisms LIST   offer these SASL mechanisms after TLS\n"
      "                          instead of the scenario's, e.g.\n"
      "                          'SCRAM-SHA-256-PLUS SCRAM-SHA-256 PLAIN'\n"
      "                          (-PLUS: channel binding to the TLS session)\n"
      "      --tls-max 1.2|1.3   highest TLS version (1.2 tests tls-unique)\n"
      "      --idle-timeout SECONDS  drop silent clients (default 120)\n"
      "      --max-connections N     at most N clients at once (default "
      "1000)\n"
      "  -v, --verbose           one line per connection event on stderr\n"
      "\n"
      "Examples:\n"
      "  smtpkit lab --scenario app-password-required --listen "
      "127.0.0.1:2525\n"
      "  smtpkit send -s 127.0.0.1:2525 --ca-file CA -u alice "
      "--password-env PW \\\n"
      "      -f alice@example.test --to bob@example.test --subject hi --body "
      "hi\n"
      "  smtpkit lab --scenario ok --maildir /tmp/lab-mail "
      "--tls-listen 127.0.0.1:4650\n"
      "  smtpkit lab --list");
}

enum {
  OPT_SCENARIO = 2000,
  OPT_LIST,
  OPT_LISTEN,
  OPT_TLS_LISTEN,
  OPT_USER,
  OPT_PASSWORD,
  OPT_TOKEN,
  OPT_MECHS,
  OPT_TLS_MAX,
  OPT_CERT,
  OPT_KEY,
  OPT_CA_OUT,
  OPT_MAILDIR,
  OPT_IDLE,
  OPT_MAX_CONN
};

static smtpkit_lab *running; /* for the signal handler */

static void on_signal(int sig) {
  (void)sig;
  smtpkit_lab_stop(running); /* async-signal-safe: one write() */
}

static void list_scenarios(void) {
  for (size_t i = 0; i < smtpkit_lab_scenario_count(); i++) {
    const smtpkit_lab_scenario *s = smtpkit_lab_scenario_at(i);
    printf("%-24s %s (source: %s)\n", s->name, s->description, s->source);
  }
}

static int parse_count(const char *opt, const char *arg, unsigned max,
                       unsigned *out) {
  char *end;
  unsigned long v = strtoul(arg, &end, 10);
  if (!*arg || *end || v == 0 || v > max || arg[0] == '-')
    return usage_error("lab", "%s wants a number from 1 to %u, not '%s'", opt,
                       max, arg);
  *out = (unsigned)v;
  return 0;
}

static int parse(int argc, char **argv, smtpkit_lab_options *o, bool *list,
                 bool *verbose) {
  static const struct option longs[] = {
      {"scenario", required_argument, 0, OPT_SCENARIO},
      {"list", no_argument, 0, OPT_LIST},
      {"listen", required_argument, 0, OPT_LISTEN},
      {"tls-listen", required_argument, 0, OPT_TLS_LISTEN},
      {"user", required_argument, 0, OPT_USER},
      {"password", required_argument, 0, OPT_PASSWORD},
      {"token", required_argument, 0, OPT_TOKEN},
      {"mechanisms", required_argument, 0, OPT_MECHS},
      {"tls-max", required_argument, 0, OPT_TLS_MAX},
      {"cert", required_argument, 0, OPT_CERT},
      {"key", required_argument, 0, OPT_KEY},
      {"ca-out", required_argument, 0, OPT_CA_OUT},
      {"maildir", required_argument, 0, OPT_MAILDIR},
      {"idle-timeout", required_argument, 0, OPT_IDLE},
      {"max-connections", required_argument, 0, OPT_MAX_CONN},
      {"verbose", no_argument, 0, 'v'},
      {"help", no_argument, 0, 'h'},
      {0, 0, 0, 0}};
  optind = 1;
  opterr = 0;
  int c, rc = 0;
  unsigned secs;
  while ((c = getopt_long(argc, argv, "+vh", longs, NULL)) != -1 && !rc) {
    switch (c) {
    case 'h':
      help_lab();
      exit(0);
    case 'v':
      *verbose = true;
      break;
    case OPT_SCENARIO:
      o->scenario = optarg;
      if (!smtpkit_lab_scenario_find(optarg))
        rc = usage_error("lab",
                         "no scenario named '%s' (smtpkit lab --list "
                         "names them)",
                         optarg);
      break;
    case OPT_LIST:
      *list = true;
      break;
    case OPT_LISTEN:
      o->listen = optarg;
      break;
    case OPT_TLS_LISTEN:
      o->tls_listen = optarg;
      break;
    case OPT_USER:
      o->user = optarg;
      rc = check_clean("--user", optarg);
      break;
    case OPT_PASSWORD:
      o->password = optarg;
      break;
    case OPT_TOKEN:
      o->token = optarg;
      break;
    case OPT_MECHS:
      o->mechanisms = optarg;
      rc = check_clean("--mechanisms", optarg);
      break;
    case OPT_TLS_MAX:
      if (strcmp(optarg, "1.2") && strcmp(optarg, "1.3"))
        rc = usage_error("lab", "--tls-max wants 1.2 or 1.3, not '%s'", optarg);
      o->tls_max_version = strcmp(optarg, "1.2") ? 0 : 12;
      break;
    case OPT_CERT:
      o->cert_file = optarg;
      break;
    case OPT_KEY:
      o->key_file = optarg;
      break;
    case OPT_CA_OUT:
      o->ca_out = optarg;
      break;
    case OPT_MAILDIR:
      o->maildir = optarg;
      break;
    case OPT_IDLE:
      if (!(rc = parse_count("--idle-timeout", optarg, 86400, &secs)))
        o->idle_timeout_ms = secs * 1000;
      break;
    case OPT_MAX_CONN:
      rc =
          parse_count("--max-connections", optarg, 100000, &o->max_connections);
      break;
    default:
      rc = usage_error("lab", "unknown option or missing value: '%s'",
                       argv[optind - 1]);
    }
  }
  if (!rc && optind < argc)
    rc = usage_error("lab", "unexpected argument '%s'", argv[optind]);
  if (!rc && o->key_file && !o->cert_file)
    rc = usage_error("lab", "--key needs --cert");
  for (const char *f = o->cert_file; !rc && f;
       f = f == o->cert_file ? o->key_file : NULL)
    if (access(f, R_OK) != 0) {
      fprintf(stderr, "smtpkit: cannot read %s\n", f);
      rc = EX_NOINPUT;
    }
  return rc;
}

/* Many clients at once need many descriptors: use what the hard limit
 * allows. */
static void raise_fd_limit(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max > 65536 ? 65536 : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

int cmd_lab(int argc, char **argv) {
  smtpkit_lab_options o;
  smtpkit_lab_options_init(&o);
  bool list = false, verbose = false;
  int rc = parse(argc, argv, &o, &list, &verbose);
  if (rc)
    return rc;
  if (list) {
    list_scenarios();
    return 0;
  }
  o.log = verbose ? stderr : NULL;
  signal(SIGPIPE, SIG_IGN);
  raise_fd_limit();
  char err[512] = "";
  smtpkit_lab *lab = smtpkit_lab_new(&o, err, sizeof err);
  if (!lab) {
    fprintf(stderr, "smtpkit: lab: %s\n", err);
    return EX_SOFTWARE;
  }
  if (!smtpkit_lab_start(lab, err, sizeof err)) {
    fprintf(stderr, "smtpkit: lab: %s\n", err);
    smtpkit_lab_free(lab);
    return EX_UNAVAILABLE;
  }
  running = lab;
  struct sigaction sa = {0};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);

  const char *plain = smtpkit_lab_address(lab, false);
  const char *tls = smtpkit_lab_address(lab, true);
  printf("listening plain=%s tls=%s\n", plain ? plain : "-", tls ? tls : "-");
  printf("ca=%s\n", smtpkit_lab_ca_file(lab));
  fflush(stdout);
  const smtpkit_lab_scenario *s =
      smtpkit_lab_scenario_find(o.scenario ? o.scenario : "ok");
  fprintf(stderr,
          "smtpkit lab: scenario %s: %s\n"
          "smtpkit lab: login %s / the lab's password, OAuth2 token from "
          "--token; Ctrl-C stops\n",
          s->name, s->description, o.user ? o.user : "alice");

  smtpkit_lab_run(lab);

  smtpkit_lab_stats st;
  smtpkit_lab_get_stats(lab, &st);
  if (verbose)
    fprintf(stderr,
            "smtpkit lab: stopped: %lu connections (at most %lu at once), "
            "%lu messages, %lu logins ok, %lu refused, %lu dropped\n",
            st.connections, st.peak, st.messages, st.auth_ok, st.auth_failed,
            st.dropped);
  running = NULL;
  smtpkit_lab_free(lab);
  return 0;
}
