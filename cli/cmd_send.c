/* cmd_send.c — `smtpkit send`: submit one message (SPEC §1). */
#define _GNU_SOURCE
#include "args.h"
#include "batch.h"
#include "commands.h"
#include "guard.h"
#include "message.h"
#include "msg_input.h"
#include "output.h"

#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

void help_send(void) {
  puts(
      "Usage: smtpkit send -s HOST[:PORT] [options] [RECIPIENT...]\n"
      "\n"
      "Submits one message. The message is RFC 5322 text on stdin, or built\n"
      "from --subject, --body/--body-file and --attach. A message counts as\n"
      "sent only after the server's final 250 to the end of data.\n"
      "\n"
      "Server and TLS:\n"
      "  -s, --server HOST[:PORT]  the submission server ([IPv6]:PORT works)\n"
      "  -p, --port N              port (default 587; 465 with --tls "
      "implicit)\n"
      "      --tls MODE            auto (default): implicit TLS on 465, "
      "STARTTLS\n"
      "                            required on any other port; starttls; "
      "implicit;\n"
      "                            none (no TLS: credentials are then refused\n"
      "                            unless --allow-plaintext-auth)\n"
      "      --ca-file FILE        also trust these CA certificates (PEM)\n"
      "      --insecure            do not verify the certificate (warns every "
      "time)\n"
      "      --helo NAME           EHLO name (default: this machine's FQDN, "
      "else\n"
      "                            the address literal of the connection; "
      "never\n"
      "                            'localhost', which some providers refuse)\n"
      "      --timeout SECONDS     per network operation (default 30)\n"
      "\n"
      "Authentication (never a password on the command line):\n"
      "  -u, --user NAME           login name; without a secret source below "
      "and\n"
      "                            with a terminal, the password is asked "
      "for\n"
      "      --password-file FILE  read the password from FILE (one trailing\n"
      "                            newline is removed)\n"
      "      --password-env VAR    take it from environment variable VAR\n"
      "      --password-cmd CMD    run CMD (sh -c) and use its output, e.g.\n"
      "                            --password-cmd 'pass show mail/smtp'\n"
      "      --oauth2-token-file FILE, --oauth2-token-env VAR,\n"
      "      --oauth2-token-cmd CMD   an OAuth2 bearer token instead\n"
      "      --auth MECH[,MECH...] use only these SASL mechanisms, in this "
      "order\n"
      "                            (default: SCRAM-SHA-256, SCRAM-SHA-1, "
      "PLAIN,\n"
      "                            LOGIN, CRAM-MD5 — strongest the server "
      "offers)\n"
      "      --allow-plaintext-auth  allow credentials without TLS (off by "
      "default)\n"
      "      --force-auth          send a secret even if the lock-out guard "
      "would\n"
      "                            hold it back\n"
      "\n"
      "Message:\n"
      "  -f, --from ADDR           envelope sender (default: the From: "
      "header)\n"
      "      --to ADDR             a recipient (repeatable; positional "
      "arguments\n"
      "                            are recipients too)\n"
      "  -t                        recipients from To:, Cc: and Bcc: (Bcc "
      "removed)\n"
      "      --subject TEXT        build a message with this subject "
      "(UTF-8 ok)\n"
      "      --body TEXT           ... and this text\n"
      "      --body-file FILE      ... or the text in FILE\n"
      "      --attach FILE         ... with FILE attached (repeatable, "
      "streamed)\n");
  batch_help();
  puts(
      "Output:\n"
      "      --transcript FILE     write the SMTP conversation to FILE (- for\n"
      "                            stderr); credentials appear as <redacted>\n"
      "      --json                the result as JSON on stdout (SPEC shape)\n"
      "  -v, --verbose             connection events on stderr; -vv the whole\n"
      "                            conversation\n"
      "\n"
      "Exit codes: 0 sent; 65 bad address or message; 66 file missing; 67 a\n"
      "recipient refused; 68 unknown host; 69 refused; 74 connection lost; 75\n"
      "temporary (retry later; also when delivery is unknown); 76 protocol\n"
      "error; 77 authentication refused; 78 settings do not fit the server.\n"
      "\n"
      "Examples:\n"
      "  smtpkit send -s smtp.gmail.com -u me@gmail.com --password-env "
      "APP_PW \\\n"
      "      -f me@gmail.com --to you@example.org --subject Hi --body 'Hello'\n"
      "  smtpkit send -s mail.example.com:465 -u me --password-file ~/.pw -t "
      "< msg.eml\n"
      "  smtpkit send -s 127.0.0.1:2525 --tls none -f a@x.test b@y.test < "
      "msg.eml");
}

enum {
  OPT_TO = OPT_LAST_COMMON + 1,
  OPT_SUBJECT,
  OPT_BODY,
  OPT_BODY_FILE,
  OPT_ATTACH,
  OPT_HELP,
  OPT_BATCH,
  OPT_CONNECTIONS
};

typedef struct send_opts {
  conn_opts c;
  const char *from;
  addr_list to;
  bool from_headers; /* -t */
  const char *subject, *body, *body_file;
  const char **attach;
  size_t n_attach;
  const char *batch;    /* --batch PATH (batch.c) */
  unsigned connections; /* --connections N */
} send_opts;

static int parse(send_opts *o, int argc, char **argv) {
  static const struct option longs[] = {
      CONN_LONG_OPTIONS,
      {"from", required_argument, 0, 'f'},
      {"to", required_argument, 0, OPT_TO},
      {"subject", required_argument, 0, OPT_SUBJECT},
      {"body", required_argument, 0, OPT_BODY},
      {"body-file", required_argument, 0, OPT_BODY_FILE},
      {"attach", required_argument, 0, OPT_ATTACH},
      {"batch", required_argument, 0, OPT_BATCH},
      {"connections", required_argument, 0, OPT_CONNECTIONS},
      {"help", no_argument, 0, 'h'},
      {0, 0, 0, 0}};
  optind = 1;
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, "+" CONN_SHORT_OPTIONS "f:th", longs,
                          NULL)) != -1) {
    int rc = conn_opt(&o->c, c, optarg);
    if (rc > 1)
      return rc;
    if (rc == 1)
      continue;
    switch (c) {
    case 'h':
      help_send();
      exit(0);
    case 'f':
      o->from = optarg;
      break;
    case 't':
      o->from_headers = true;
      break;
    case OPT_TO:
      if (check_clean("--to", optarg))
        return EX_DATAERR;
      addr_add(&o->to, optarg, strlen(optarg));
      break;
    case OPT_SUBJECT:
      o->subject = optarg;
      break;
    case OPT_BODY:
      o->body = optarg;
      break;
    case OPT_BODY_FILE:
      o->body_file = optarg;
      break;
    case OPT_ATTACH:
      o->attach = realloc(o->attach, (o->n_attach + 1) * sizeof *o->attach);
      o->attach[o->n_attach++] = optarg;
      break;
    case OPT_BATCH:
      o->batch = optarg;
      break;
    case OPT_CONNECTIONS: {
      char *end;
      unsigned long v = strtoul(optarg, &end, 10);
      if (!*optarg || *end || v == 0 || v > 64)
        return usage_error("send", "--connections wants 1 to 64, not '%s'",
                           optarg);
      o->connections = (unsigned)v;
      break;
    }
    case ':':
      return usage_error("send", "option %s needs a value", argv[optind - 1]);
    default:
      return usage_error("send", "unknown option '%s'", argv[optind - 1]);
    }
  }
  for (int i = optind; i < argc; i++) {
    if (check_clean("a recipient", argv[i]))
      return EX_DATAERR;
    addr_add(&o->to, argv[i], strlen(argv[i]));
  }
  return 0;
}

/* An address for MAIL/RCPT: "<a@b>" or "a@b", no spaces or brackets. */
static int check_address(const char *what, const char *a) {
  if (check_clean(what, a))
    return EX_DATAERR;
  if (strpbrk(a, " <>\t") || (!*a && strcmp(what, "--from") != 0)) {
    fprintf(stderr,
            "smtpkit: %s '%s' is not a plain address (want "
            "user@example.com)\n",
            what, a);
    return EX_DATAERR;
  }
  return 0;
}

static char *strip_angles(const char *a) {
  size_t n = strlen(a);
  if (n >= 2 && a[0] == '<' && a[n - 1] == '>')
    return strndup(a + 1, n - 2);
  return strdup(a);
}

static long long elapsed_ms(const struct timespec *t0) {
  struct timespec t1;
  clock_gettime(CLOCK_MONOTONIC, &t1);
  return (t1.tv_sec - t0->tv_sec) * 1000LL +
         (t1.tv_nsec - t0->tv_nsec) / 1000000;
}

typedef struct result_ctx {
  smtpkit_session *s;
  const smtpkit_error *err;
  bool ok;
  const warnings *w;
  long long ms;
} result_ctx;

static void print_json(const result_ctx *r, const smtpkit_settings *set) {
  jw w;
  jw_begin(&w, stdout);
  const smtpkit_error *e = r->err;
  smtpkit_cause cause =
      r->ok && e->cause == SMTPKIT_CAUSE_ok ? SMTPKIT_CAUSE_ok : e->cause;
  jw_bool(&w, "ok", r->ok && cause == SMTPKIT_CAUSE_ok);
  jw_str(&w, "cause", smtpkit_cause_name(cause));
  jw_bool(&w, "transient", cause != SMTPKIT_CAUSE_ok && e->transient);
  if (cause != SMTPKIT_CAUSE_ok)
    jw_str(&w, "stage", smtpkit_stage_name(e->stage));
  jw_obj(&w, "server");
  jw_str(&w, "host", set->host);
  jw_int(&w, "port", smtpkit_session_port(r->s));
  jw_str(&w, "tls", smtpkit_tls_mode_name(smtpkit_session_tls_mode(r->s)));
  jw_str(&w, "tls_version", smtpkit_session_tls_version(r->s));
  jw_str(&w, "auth_mechanism", smtpkit_session_auth_mechanism(r->s));
  jw_obj_end(&w);
  const smtpkit_rcpt_result *rr;
  size_t n = smtpkit_session_rcpt_results(r->s, &rr);
  jw_arr(&w, "accepted");
  for (size_t i = 0; i < n; i++)
    if (rr[i].accepted && r->ok)
      jw_str(&w, NULL, rr[i].address);
  jw_arr_end(&w);
  jw_arr(&w, "rejected");
  for (size_t i = 0; i < n; i++)
    if (!rr[i].accepted) {
      jw_obj(&w, NULL);
      jw_str(&w, "address", rr[i].address);
      jw_reply(&w, "reply", &rr[i].reply);
      jw_obj_end(&w);
    }
  jw_arr_end(&w);
  const smtpkit_auth_attempt *aa;
  size_t na = smtpkit_session_auth_attempts(r->s, &aa);
  json_auth_attempts(&w, "auth_attempts", aa, na);
  json_warnings(&w, r->w);
  jw_str(&w, "queue_id", r->ok ? smtpkit_session_queue_id(r->s) : NULL);
  const smtpkit_reply *dr = smtpkit_session_data_reply(r->s);
  jw_reply(&w, "reply",
           cause == SMTPKIT_CAUSE_ok || !e->reply.code ? dr : &e->reply);
  if (e->detail[0] && cause != SMTPKIT_CAUSE_ok)
    jw_str(&w, "detail", e->detail);
  if (cause != SMTPKIT_CAUSE_ok) {
    smtpkit_advice a;
    smtpkit_error_advice(e, &a);
    json_advice(&w, &a);
  }
  jw_int(&w, "elapsed_ms", r->ms);
  jw_end(&w);
}

static void print_human(const result_ctx *r, const smtpkit_settings *set) {
  const smtpkit_rcpt_result *rr;
  size_t n = smtpkit_session_rcpt_results(r->s, &rr);
  if (r->ok) {
    const smtpkit_reply *dr = smtpkit_session_data_reply(r->s);
    printf("sent via %s:%u (%s%s%s%s%s): ", set->host,
           smtpkit_session_port(r->s),
           smtpkit_tls_mode_name(smtpkit_session_tls_mode(r->s)),
           smtpkit_session_tls_version(r->s) ? " " : "",
           smtpkit_session_tls_version(r->s) ? smtpkit_session_tls_version(r->s)
                                             : "",
           smtpkit_session_auth_mechanism(r->s) ? ", AUTH " : "",
           smtpkit_session_auth_mechanism(r->s)
               ? smtpkit_session_auth_mechanism(r->s)
               : "");
    for (size_t i = 0, k = 0; i < n; i++)
      if (rr[i].accepted)
        printf("%s%s", k++ ? ", " : "", rr[i].address);
    printf("\n");
    if (dr && dr->code) {
      printf("  server: %d%s%s ", dr->code, dr->enhanced[0] ? " " : "",
             dr->enhanced);
      print_escaped(stdout, dr->text, strlen(dr->text));
      printf("\n");
    }
  }
  for (size_t i = 0; i < n; i++)
    if (!rr[i].accepted) {
      fprintf(stderr, "smtpkit: recipient %s refused: %d%s%s ", rr[i].address,
              rr[i].reply.code, rr[i].reply.enhanced[0] ? " " : "",
              rr[i].reply.enhanced);
      print_escaped(stderr, rr[i].reply.text, strlen(rr[i].reply.text));
      fputc('\n', stderr);
    }
  if (!r->ok || r->err->cause != SMTPKIT_CAUSE_ok) {
    const smtpkit_auth_attempt *aa;
    size_t na = smtpkit_session_auth_attempts(r->s, &aa);
    report_error(r->ok ? "sent, but not to every recipient" : "sending failed",
                 r->err, aa, na);
  }
}

/* The message source: built from parts, or stdin. */
typedef struct source {
  sk_mime *mime;
  msg_input in;
  bool use_mime;
} source;

static long source_read(void *ctx, char *buf, size_t cap) {
  source *s = ctx;
  return s->use_mime ? sk_mime_read(s->mime, buf, cap)
                     : msg_input_read(&s->in, buf, cap);
}

static void source_rewind(source *s) {
  if (s->use_mime)
    sk_mime_rewind(s->mime);
  else
    msg_input_rewind(&s->in);
}

static int prepare_source(send_opts *o, source *src, char **from) {
  src->use_mime = o->subject || o->body || o->body_file || o->n_attach;
  if (o->subject && check_clean("--subject", o->subject))
    return EX_DATAERR;
  if (src->use_mime) {
    if (o->body && o->body_file)
      return usage_error("send", "give --body or --body-file, not both");
    if (o->from_headers)
      return usage_error("send", "-t reads recipients from a message on "
                                 "stdin; it does not go with --subject/--body");
    sk_mime_spec spec = {.from = o->from,
                         .to = (const char *const *)o->to.v,
                         .n_to = o->to.n,
                         .subject = o->subject,
                         .body = o->body,
                         .body_file = o->body_file,
                         .attach = o->attach,
                         .n_attach = o->n_attach};
    char err[300];
    bool missing;
    src->mime = sk_mime_new(&spec, err, sizeof err, &missing);
    if (!src->mime) {
      fprintf(stderr, "smtpkit: %s\n", err);
      return missing ? EX_NOINPUT : EX_SOFTWARE;
    }
    *from = strip_angles(o->from ? o->from : "");
    return 0;
  }
  if (isatty(0))
    return usage_error("send", "no message: pipe one on stdin, or give "
                               "--subject and --body");
  int rc = msg_input_open(&src->in, stdin, o->from_headers);
  if (rc)
    return rc;
  if (fseeko(src->in.f, 0, SEEK_END) == 0 && ftello(src->in.f) == 0)
    return usage_error("send", "the message on stdin is empty: pipe an RFC "
                               "5322 message, or give --subject and --body");
  msg_input_rewind(&src->in);
  if (o->from_headers)
    for (size_t i = 0; i < src->in.to_cc_bcc.n; i++)
      addr_add(&o->to, src->in.to_cc_bcc.v[i], strlen(src->in.to_cc_bcc.v[i]));
  const char *f = o->from ? o->from : src->in.from;
  if (!f)
    return usage_error("send", "no sender: give --from, or a From: header");
  *from = strip_angles(f);
  return 0;
}

static int validate(send_opts *o, const char *from) {
  if (!o->c.host[0])
    return usage_error("send", "no server: give -s HOST[:PORT]");
  if (o->to.n == 0)
    return usage_error("send", "no recipients: give --to ADDR (or -t)");
  int rc = check_address("--from", from);
  for (size_t i = 0; !rc && i < o->to.n; i++) {
    char *a = strip_angles(o->to.v[i]);
    free(o->to.v[i]);
    o->to.v[i] = a;
    rc = check_address("recipient", a);
  }
  return rc;
}

static int run(send_opts *o) {
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  source src = {0};
  char *from = NULL;
  warnings w = {0};
  transcript tr;
  smtpkit_settings set;
  int rc = prepare_source(o, &src, &from);
  if (!rc)
    rc = validate(o, from);
  if (!rc)
    rc = transcript_open(&tr, o->c.transcript, o->c.verbose);
  else
    memset(&tr, 0, sizeof tr);
  if (!rc)
    rc = conn_settings(&o->c, &set, 30, &w);
  if (rc)
    goto out;
  if (!o->c.json)
    print_warnings(&w);
  set.transcript = transcript_line;
  set.transcript_ctx = &tr;

  /* First pass: size and 8-bit content, for SIZE= and BODY=8BITMIME. */
  sk_measure meas;
  sk_measure_init(&meas);
  char buf[65536];
  for (long n; (n = source_read(&src, buf, sizeof buf)) != 0;) {
    if (n < 0) {
      fprintf(stderr, "smtpkit: cannot read the message\n");
      rc = EX_NOINPUT;
      goto out;
    }
    sk_measure_feed(&meas, buf, (size_t)n);
  }
  sk_measure_finish(&meas);
  source_rewind(&src);

  smtpkit_session *s = smtpkit_session_new(&set);
  smtpkit_envelope env = {.from = from,
                          .to = (const char *const *)o->to.v,
                          .n_to = o->to.n,
                          .size = meas.size,
                          .eight_bit = meas.eight_bit};
  smtpkit_error held = {0};
  bool ok = false;
  char why[sizeof held.detail];
  if (guard_holds(&o->c, o->c.host, smtpkit_session_port(s), why, sizeof why))
    guard_error(&held, why);
  else {
    ok = smtpkit_session_open(s) &&
         smtpkit_session_send(s, &env, source_read, &src);
    smtpkit_session_close(s);
    guard_learn(&o->c, o->c.host, smtpkit_session_port(s),
                smtpkit_session_auth_mechanism(s) != NULL,
                guard_is_refusal(smtpkit_session_error(s)));
  }
  result_ctx r = {.s = s,
                  .err = held.cause ? &held : smtpkit_session_error(s),
                  .ok = ok,
                  .w = &w,
                  .ms = elapsed_ms(&t0)};
  if (o->c.json)
    print_json(&r, &set);
  else
    print_human(&r, &set);
  rc = ok && r.err->cause == SMTPKIT_CAUSE_ok
           ? 0
           : smtpkit_cause_exit_code(r.err->cause, r.err->transient);
  smtpkit_session_free(s);
out:
  transcript_close(&tr);
  if (src.mime)
    sk_mime_free(src.mime);
  else if (src.in.f)
    msg_input_close(&src.in);
  free(from);
  return rc;
}

int cmd_send(int argc, char **argv) {
  send_opts o = {0};
  conn_opts_init(&o.c);
  int rc = parse(&o, argc, argv);
  if (!rc && o.batch && (o.subject || o.body || o.body_file || o.n_attach))
    rc = usage_error("send", "--batch sends existing messages; it does not "
                             "go with --subject/--body/--attach");
  else if (!rc && o.batch)
    rc = batch_send(&(batch_request){.c = &o.c,
                                     .path = o.batch,
                                     .connections = o.connections,
                                     .from = o.from,
                                     .to = &o.to});
  else if (!rc)
    rc = run(&o);
  conn_opts_free(&o.c);
  addr_free(&o.to);
  free(o.attach);
  return rc;
}
