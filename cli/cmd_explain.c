/* cmd_explain.c — `smtpkit explain [TEXT...]`: reads an error text (a
 * server reply, a library exception, a log line; stdin without TEXT) and
 * says what it means, why it happens with correct credentials and how to
 * fix it. Exit 0 when a cause was found, 1 when not (SPEC §1, §4). */
#include "args.h"
#include "commands.h"
#include "json.h"
#include "output.h"
#include "smtpkit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#define MAX_INPUT (4u << 20) /* a pasted log, not a mailbox */
#define LABEL 12             /* width of the label column */

void help_explain(void) {
  puts("Usage: smtpkit explain [--json] [--provider ID] [TEXT...]\n"
       "\n"
       "Explains an SMTP error: finds the server's reply (or a socket/TLS\n"
       "error) in TEXT, or in standard input when no TEXT is given, and\n"
       "prints the cause, what it means, why it happens even with a correct\n"
       "password, and the fix (the provider's own steps when the provider is\n"
       "known from the text or from --provider).\n"
       "\n"
       "Options:\n"
       "      --json          machine-readable result on stdout (SPEC §4)\n"
       "      --provider ID   the provider you meant to reach (google,\n"
       "                      microsoft, sendgrid, ...): selects its "
       "knowledge;\n"
       "                      a banner of another server then means your\n"
       "                      connection was intercepted\n"
       "  -h, --help          this text\n"
       "Put -- before a TEXT that starts with '-'.\n"
       "\n"
       "Exit status: 0 when a cause was found; 1 when the text holds no SMTP\n"
       "reply or known error, or nothing more specific than 'unknown' fits;\n"
       "64 for a bad command line.\n"
       "\n"
       "Accepted input, with an example of each:\n"
       "  a reply, one line or several (stdin keeps the line breaks):\n"
       "    smtpkit explain '535 5.7.8 Authentication credentials invalid'\n"
       "    printf '534-5.7.9 Application-specific password required.\\n534 "
       "5.7.9 https://support.google.com/mail/?p=InvalidSecondFactor - "
       "gsmtp\\n' | smtpkit explain\n"
       "  Python smtplib (bytes repr, literal \\n inside):\n"
       "    smtpkit explain \"smtplib.SMTPAuthenticationError: (534, b'5.7.9 "
       "Application-specific password required. Learn more at\\n5.7.9 "
       "https://support.google.com/mail/?p=InvalidSecondFactor - gsmtp')\"\n"
       "  Java / Jakarta Mail:\n"
       "    smtpkit explain 'javax.mail.AuthenticationFailedException: 535 "
       "5.7.139 Authentication unsuccessful, basic authentication is "
       "disabled.'\n"
       "  Node.js nodemailer:\n"
       "    smtpkit explain 'Error: Invalid login: 535-5.7.8 Username and "
       "Password not accepted. - gsmtp'\n"
       "  .NET SmtpException (only the enhanced code survives):\n"
       "    smtpkit explain 'The SMTP server requires a secure connection or "
       "the client was not authenticated. The server response was: 5.7.57 "
       "Client not authenticated to send mail.'\n"
       "  PHPMailer debug output:\n"
       "    smtpkit explain 'SERVER -> CLIENT: 535 5.7.0 (#AUTH005) Too many "
       "bad auth attempts.'\n"
       "  PHP PEAR Net_SMTP:\n"
       "    smtpkit explain '(code: 535, response: Incorrect authentication "
       "data)'\n"
       "  Ruby Net::SMTP:\n"
       "    smtpkit explain 'Net::SMTPAuthenticationError: 435 4.7.8 Error: "
       "authentication failed:'\n"
       "  Go (net/smtp, gomail):\n"
       "    smtpkit explain 'gomail: could not send email 1: 535 "
       "Authentication Credentials Invalid'\n"
       "  curl -v:\n"
       "    smtpkit explain '< 535 5.7.8 Authentication credentials invalid'\n"
       "  msmtp:\n"
       "    smtpkit explain 'msmtp: server message: 535 5.7.8 Error: "
       "authentication failed: UGFzc3dvcmQ6'\n"
       "  swaks:\n"
       "    smtpkit explain '<~* 454 4.7.0 Temporary authentication "
       "failure'\n"
       "  Postfix log lines (client and server side):\n"
       "    smtpkit explain 'postfix/smtp[17059]: 9BDCBA19EA: SASL "
       "authentication failed; server smtp.office365.com[40.99.150.50] "
       "said: 535 5.7.3 Authentication unsuccessful'\n"
       "    smtpkit explain 'postfix/smtpd[1234]: warning: unknown[192.0.2.10]:"
       " SASL LOGIN authentication failed: UGFzc3dvcmQ6'\n"
       "  Exim log line:\n"
       "    smtpkit explain 'dovecot_login authenticator failed for (x) "
       "[192.0.2.1]:35686: 535 Incorrect authentication data (set_id=u)'\n"
       "  socket, DNS and TLS errors:\n"
       "    smtpkit explain 'ssl.SSLError: [SSL: WRONG_VERSION_NUMBER] wrong "
       "version number'\n"
       "  a whole log or transcript:\n"
       "    smtpkit explain < error.log");
}

/* Reads all of f, up to MAX_INPUT bytes. */
static char *slurp(FILE *f, size_t *len) {
  size_t cap = 65536, n = 0;
  char *buf = malloc(cap);
  while (buf) {
    if (n == cap) {
      char *more = cap < MAX_INPUT ? realloc(buf, cap * 2) : NULL;
      if (!more)
        break;
      buf = more, cap *= 2;
    }
    size_t r = fread(buf + n, 1, cap - n, f);
    n += r;
    if (r == 0)
      break;
  }
  *len = n;
  return buf;
}

static char *join_args(int argc, char **argv, size_t *len) {
  size_t n = 0;
  for (int i = 0; i < argc; i++)
    n += strlen(argv[i]) + 1;
  char *buf = malloc(n + 1), *p = buf;
  for (int i = 0; buf && i < argc; i++) {
    size_t k = strlen(argv[i]);
    memcpy(p, argv[i], k);
    p += k;
    *p++ = ' ';
  }
  if (buf)
    *p = '\0';
  *len = buf && n ? n - 1 : 0;
  return buf;
}

/* "label" in the label column, s beside it, wrapped (output.c). */
static void field(const char *label, const char *s) {
  print_field(stdout, label, s);
}

/* The server's reply, one line of it per output line, bytes escaped. */
static void reply_lines(const smtpkit_explanation *e) {
  const char *t = e->text;
  bool first = true;
  do {
    const char *nl = strchr(t, '\n');
    size_t n = nl ? (size_t)(nl - t) : strlen(t);
    printf("%-*s", LABEL, first ? "reply" : "");
    if (first && e->code)
      printf("%d ", e->code);
    if (first && e->enhanced[0])
      printf("%s ", e->enhanced);
    print_escaped(stdout, t, n);
    putchar('\n');
    first = false;
    t += n + (nl ? 1 : 0);
  } while (*t);
}

static void human(const smtpkit_explanation *e) {
  if (!e->found) {
    puts(e->success_only
             ? "No SMTP error found: the text holds only success replies."
             : "No SMTP reply or known error found in the text.");
    puts("Paste the server's reply (a line starting with a code such as 535),"
         "\nor the whole error output of your program.");
    return;
  }
  const smtpkit_advice *a = &e->advice;
  char line[160];
  snprintf(line, sizeof line, "%s (%s)", smtpkit_cause_name(e->cause),
           e->transient ? "temporary: retrying later may work"
                        : "permanent: retrying will not help");
  field("cause", line);
  if (a->provider) {
    snprintf(line, sizeof line, "%s (%s)", a->provider_name, a->provider);
    field("provider", line);
  }
  if (e->server)
    field("server", e->server);
  if (e->reply_found && e->text[0])
    reply_lines(e);
  else if (e->text[0])
    field("error", e->text);
  if (e->stage != SMTPKIT_STAGE_NONE)
    field("stage", smtpkit_stage_name(e->stage));
  putchar('\n');
  print_advice(stdout, a, e->reply_found ? "this reply" : "this error");
}

static void json(const smtpkit_explanation *e) {
  const smtpkit_advice *a = &e->advice;
  jw w;
  jw_begin(&w, stdout);
  jw_str(&w, "cause", smtpkit_cause_name(e->cause));
  jw_bool(&w, "transient", e->transient);
  if (e->code)
    jw_int(&w, "code", e->code);
  else
    jw_null(&w, "code");
  jw_str(&w, "enhanced", e->enhanced[0] ? e->enhanced : NULL);
  jw_str(&w, "provider", a->provider);
  jw_str(&w, "summary",
         e->found ? a->summary
                  : "No SMTP reply or known error was found in the text.");
  jw_arr(&w, "fix");
  for (size_t i = 0; e->found && i < a->n_fix; i++)
    jw_str(&w, NULL, a->fix[i]);
  jw_arr_end(&w);
  jw_arr(&w, "references");
  for (size_t i = 0; e->found && i < a->n_references; i++)
    jw_str(&w, NULL, a->references[i]);
  jw_arr_end(&w);
  /* Additions to the SPEC §4 shape. */
  jw_bool(&w, "found", e->found);
  jw_bool(&w, "reply_found", e->reply_found);
  jw_bool(&w, "success_only", e->success_only);
  jw_str(&w, "stage",
         e->stage != SMTPKIT_STAGE_NONE ? smtpkit_stage_name(e->stage) : NULL);
  jw_str(&w, "text", e->found ? e->text : NULL);
  jw_str(&w, "provider_name", a->provider_name);
  jw_str(&w, "server", e->server);
  jw_str(&w, "why", e->found && a->why && a->why[0] ? a->why : NULL);
  jw_str(&w, "note", e->found ? a->note : NULL);
  jw_end(&w);
}

static int bad_provider(const char *id) {
  fprintf(stderr, "smtpkit: unknown provider '%s'; known:", id);
  for (size_t i = 0; smtpkit_provider_id(i); i++)
    fprintf(stderr, "%s %s", i ? "," : "", smtpkit_provider_id(i));
  fputc('\n', stderr);
  return usage_error("explain", "choose one of the providers above");
}

int cmd_explain(int argc, char **argv) {
  enum { O_JSON = 1, O_PROVIDER };
  static const struct option longs[] = {
      {"json", no_argument, 0, O_JSON},
      {"provider", required_argument, 0, O_PROVIDER},
      {"help", no_argument, 0, 'h'},
      {0, 0, 0, 0}};
  bool as_json = false;
  const char *provider = NULL;
  int opt;
  optind = 1;
  opterr = 0;
  /* "+": stop at the first TEXT word, which may well start with '-'. */
  while ((opt = getopt_long(argc, argv, "+:h", longs, NULL)) != -1) {
    switch (opt) {
    case O_JSON:
      as_json = true;
      break;
    case O_PROVIDER:
      provider = optarg;
      break;
    case 'h':
      help_explain();
      return 0;
    case ':':
      return usage_error("explain", "option %s needs a value",
                         argv[optind - 1]);
    default:
      return usage_error("explain", "unknown option '%s'", argv[optind - 1]);
    }
  }
  if (provider && !smtpkit_provider_name(provider))
    return bad_provider(provider);
  size_t len = 0;
  char *text;
  if (optind < argc) {
    text = join_args(argc - optind, argv + optind, &len);
  } else {
    if (isatty(STDIN_FILENO))
      fputs("smtpkit: paste the error text, then press Ctrl-D\n", stderr);
    text = slurp(stdin, &len);
  }
  if (!text) {
    fputs("smtpkit: out of memory\n", stderr);
    return EX_SOFTWARE;
  }
  smtpkit_explanation e;
  smtpkit_explain_text(text, len, provider, &e);
  free(text);
  if (as_json)
    json(&e);
  else
    human(&e);
  return e.found && e.cause != SMTPKIT_CAUSE_unknown ? 0 : 1;
}
