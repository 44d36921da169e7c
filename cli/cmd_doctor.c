/* cmd_doctor.c — `smtpkit doctor`: what the server really speaks, the one
 * root cause of a failure, and settings verified on the wire (SPEC §1,
 * §4). The diagnosis is the library's (smtpkit_doctor_run); this file
 * parses options, guards the secret, shows progress and prints. */
#define _GNU_SOURCE
#include "args.h"
#include "commands.h"
#include "guard.h"
#include "output.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sysexits.h>
#include <unistd.h>

void help_doctor(void) {
  puts(
      "Usage: smtpkit doctor HOST[:PORT] | ADDRESS [options]\n"
      "\n"
      "Finds out why sending or logging in fails, from evidence on the wire,\n"
      "in seconds. It probes the server's submission ports at once (each\n"
      "both as plain SMTP + STARTTLS and as implicit TLS), reads what the\n"
      "server offers before and after TLS, checks the certificate and who\n"
      "really answered, logs in once on the best port, and names ONE root\n"
      "cause with what showed it and how to fix it - plus settings for\n"
      "msmtp, Python, curl, Postfix and nodemailer that were verified to\n"
      "work. Your own --port/--tls/--auth are judged as given, and the\n"
      "alternatives are probed, so a wrong TLS mode is named as such.\n"
      "\n"
      "Target (first argument, or -s):\n"
      "  HOST, HOST:PORT, [IPv6]:PORT  the server\n"
      "  ADDRESS                 an e-mail address: its provider's server\n"
      "                          from the knowledge base, else DNS SRV\n"
      "                          (_submissions._tcp, _submission._tcp), else\n"
      "                          the MX hosts' provider, else smtp.DOMAIN or\n"
      "                          mail.DOMAIN. It is also the default --user\n"
      "                          when a password source is given.\n"
      "\n"
      "Server and TLS:\n"
      "  -s, --server HOST[:PORT]  the server (instead of the first argument)\n"
      "  -p, --port N              judge this port (default: probe 587, 465, "
      "25\n"
      "                            and 2525 at once and use the best)\n"
      "      --tls MODE            auto (default), starttls, implicit or "
      "none:\n"
      "                            the mode you use, judged as given\n"
      "      --ca-file FILE        also trust these CA certificates (PEM)\n"
      "      --insecure            accept a certificate that does not verify\n"
      "      --helo NAME           EHLO name (default: this machine's FQDN, "
      "else\n"
      "                            the address literal; never 'localhost')\n"
      "      --timeout SECONDS     look-ups and probing end within it (+ 2 "
      "s),\n"
      "                            however many ports are silent; also the\n"
      "                            limit per network operation of the login\n"
      "                            (default 8)\n"
      "      --dns-server ADDR[:PORT]  DNS server for SRV, MX and address\n"
      "                            look-ups (default: the system's)\n"
      "      --provider ID         the provider you expect (google, "
      "microsoft,\n"
      "                            sendgrid, ...): another server answering "
      "is\n"
      "                            smtp_intercepted\n"
      "\n"
      "Login (never a password on the command line):\n"
      "  -u, --user NAME           login name; then one login on the best "
      "port\n"
      "      --password-file FILE, --password-env VAR, --password-cmd CMD\n"
      "      --oauth2-token-file FILE, --oauth2-token-env VAR,\n"
      "      --oauth2-token-cmd CMD   where the secret comes from (as for "
      "send)\n"
      "      --auth MECH[,MECH...] the mechanisms you use, judged as given\n"
      "      --allow-plaintext-auth  allow credentials without TLS\n"
      "      --force-auth          send a secret the lock-out guard would "
      "hold\n"
      "                            back (it was refused less than 15 min ago)\n"
      "      --no-auth             probe only, no login\n"
      "      --try-all-mechanisms  one login per offered mechanism (warns:\n"
      "                            failed attempts can trigger a lock-out)\n"
      "      --send-test --to ADDR after a good login, submit a short test\n"
      "                            message to ADDR\n"
      "  -f, --from ADDR           its sender (default: the user name when it\n"
      "                            is an address)\n"
      "\n"
      "Output:\n"
      "      --json                the report as JSON on stdout (SPEC §4)\n"
      "      --transcript FILE     every conversation (- for stderr), "
      "credentials\n"
      "                            redacted\n"
      "  -v, --verbose             connection events on stderr; -vv all\n"
      "On a terminal, live progress per port goes to stderr.\n"
      "\n"
      "Exit status: 0 when a working configuration was found (and the login,\n"
      "if tried, worked); otherwise the code of the root cause, as for send:\n"
      "68 host not found, 69 refused, 75 temporary, 76 protocol error, 77\n"
      "authentication refused, 78 settings do not fit the server.\n"
      "\n"
      "Examples:\n"
      "  smtpkit doctor smtp.gmail.com\n"
      "  smtpkit doctor me@gmail.com --password-env APP_PW\n"
      "  smtpkit doctor mail.example.com --port 465 --tls starttls -u me "
      "--password-file ~/.pw\n"
      "  smtpkit doctor smtp.example.net --provider google -u me@gmail.com "
      "--password-env PW\n"
      "  smtpkit doctor me@example.org --dns-server 127.0.0.1:5353 --no-auth\n"
      "  smtpkit doctor smtp.example.com -u me --password-env PW --send-test "
      "--to me@example.com --json");
}

enum {
  OPT_NO_AUTH = OPT_LAST_COMMON + 100,
  OPT_TRY_ALL,
  OPT_SEND_TEST,
  OPT_TO,
  OPT_PROVIDER,
  OPT_DNS_SERVER
};

typedef struct doctor_opts {
  conn_opts c;
  const char *input;
  bool no_auth, try_all, send_test;
  const char *to, *from, *provider, *dns_server;
} doctor_opts;

static int parse(doctor_opts *o, int argc, char **argv) {
  static const struct option longs[] = {
      CONN_LONG_OPTIONS,
      {"no-auth", no_argument, 0, OPT_NO_AUTH},
      {"try-all-mechanisms", no_argument, 0, OPT_TRY_ALL},
      {"send-test", no_argument, 0, OPT_SEND_TEST},
      {"to", required_argument, 0, OPT_TO},
      {"from", required_argument, 0, 'f'},
      {"provider", required_argument, 0, OPT_PROVIDER},
      {"dns-server", required_argument, 0, OPT_DNS_SERVER},
      {"help", no_argument, 0, 'h'},
      {0, 0, 0, 0}};
  optind = 1;
  opterr = 0;
  bool server_opt = false;
  int c;
  while ((c = getopt_long(argc, argv, CONN_SHORT_OPTIONS "f:h", longs, NULL)) !=
         -1) {
    if (c == 's')
      server_opt = true;
    int rc = conn_opt(&o->c, c, optarg);
    if (rc > 1)
      return rc;
    if (rc == 1)
      continue;
    switch (c) {
    case 'h':
      help_doctor();
      exit(0);
    case OPT_NO_AUTH:
      o->no_auth = true;
      break;
    case OPT_TRY_ALL:
      o->try_all = true;
      break;
    case OPT_SEND_TEST:
      o->send_test = true;
      break;
    case OPT_TO:
      o->to = optarg;
      break;
    case 'f':
      o->from = optarg;
      break;
    case OPT_PROVIDER:
      o->provider = optarg;
      break;
    case OPT_DNS_SERVER:
      o->dns_server = optarg;
      break;
    case ':':
      return usage_error("doctor", "option %s needs a value", argv[optind - 1]);
    default:
      return usage_error("doctor", "unknown option '%s'", argv[optind - 1]);
    }
  }
  if (optind < argc) {
    if (server_opt)
      return usage_error("doctor", "give the server once: -s or the first "
                                   "argument, not both");
    o->input = argv[optind++];
  } else if (server_opt) {
    o->input = NULL; /* conn_opts.host */
  }
  if (optind < argc)
    return usage_error("doctor", "unexpected argument '%s'", argv[optind]);
  return 0;
}

static bool plain_address(const char *a) {
  const char *at = a ? strchr(a, '@') : NULL;
  return at && at != a && at[1] && !strpbrk(a, " <>\t\"") &&
         strchr(at + 1, '@') == NULL;
}

static int validate(doctor_opts *o) {
  if (!o->input && !o->c.host[0])
    return usage_error("doctor", "what should I diagnose? give a server "
                                 "(HOST[:PORT]) or an e-mail address");
  int rc = o->input ? check_clean("the target", o->input) : 0;
  if (!rc && o->input && strchr(o->input, '@')) {
    if (!plain_address(o->input))
      return usage_error("doctor",
                         "'%s' is not a plain address (want "
                         "user@example.com)",
                         o->input);
    /* An address is also the login name by default. */
    if (!o->c.user && (o->c.password.kind || o->c.token.kind))
      o->c.user = o->input;
  } else if (!rc && o->input) {
    conn_opts tmp;
    conn_opts_init(&tmp);
    rc = parse_server(&tmp, o->input);
    if (!rc && tmp.port && o->c.port && tmp.port != o->c.port)
      return usage_error("doctor", "two different ports: %s and --port %u",
                         o->input, o->c.port);
  }
  if (rc)
    return rc;
  if (o->send_test != (o->to != NULL))
    return usage_error("doctor", "--send-test and --to ADDR go together");
  if (o->to && (rc = check_clean("--to", o->to)))
    return rc;
  if (o->to && !plain_address(o->to))
    return usage_error("doctor", "--to '%s' is not a plain address", o->to);
  if (o->from && (check_clean("--from", o->from) || !plain_address(o->from)))
    return usage_error("doctor", "--from '%s' is not a plain address", o->from);
  if (o->no_auth && (o->try_all || o->send_test))
    return usage_error("doctor", "--no-auth does not go with "
                                 "--try-all-mechanisms or --send-test");
  if (o->provider && !smtpkit_provider_name(o->provider)) {
    fprintf(stderr, "smtpkit: unknown provider '%s'; known:", o->provider);
    for (size_t i = 0; smtpkit_provider_id(i); i++)
      fprintf(stderr, " %s", smtpkit_provider_id(i));
    fputc('\n', stderr);
    return EX_USAGE;
  }
  if (o->dns_server && (check_clean("--dns-server", o->dns_server) ||
                        strpbrk(o->dns_server, " ,")))
    return usage_error("doctor", "--dns-server wants ADDR or ADDR:PORT");
  if (o->c.ca_file && access(o->c.ca_file, R_OK) != 0) {
    fprintf(stderr, "smtpkit: cannot read --ca-file %s\n", o->c.ca_file);
    return EX_NOINPUT;
  }
  return 0;
}

/* ---- the lock-out guard, as send uses it ---- */

static bool may_login(void *ctx, const char *host, unsigned port, char *why,
                      size_t cap) {
  return !guard_holds(ctx, host, port, why, cap);
}

static void login_done(void *ctx, const char *host, unsigned port,
                       const smtpkit_error *e, bool ok) {
  guard_learn(ctx, host, port, ok, guard_is_refusal(e));
}

/* ---- live progress on a terminal ---- */

#define MAX_LIVE 16

typedef struct live {
  char line[MAX_LIVE][160];
  size_t n, drawn;
} live;

static void live_draw(live *l) {
  if (l->drawn)
    fprintf(stderr, "\033[%zuA", l->drawn);
  for (size_t i = 0; i < l->n; i++)
    fprintf(stderr, "\033[2K%s\n", l->line[i]);
  l->drawn = l->n;
  fflush(stderr);
}

static void live_progress(void *ctx, size_t index, size_t count,
                          const char *host, unsigned port, const char *status,
                          bool done) {
  live *l = ctx;
  if (index >= MAX_LIVE)
    return;
  if (count > l->n)
    l->n = count < MAX_LIVE ? count : MAX_LIVE;
  /* One terminal line each, or the redraw would count wrong. */
  struct winsize ws;
  int width = ioctl(2, TIOCGWINSZ, &ws) == 0 && ws.ws_col ? ws.ws_col : 80;
  int room = width - 38;
  snprintf(l->line[index], sizeof l->line[index], "  %s %-24.24s %5u  %.*s",
           done ? "+" : "-", host, port, room > 8 ? room : 8, status);
  live_draw(l);
}

static void live_clear(live *l) {
  if (!l->drawn)
    return;
  fprintf(stderr, "\033[%zuA\033[J", l->drawn);
  fflush(stderr);
  l->drawn = 0;
}

/* ---- ready-to-paste settings (never the secret itself) ---- */

typedef struct snip {
  char *text;
  size_t len, cap;
} snip;

static void sadd(snip *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void sadd(snip *s, const char *fmt, ...) {
  va_list ap;
  for (int tries = 0; tries < 2; tries++) {
    va_start(ap, fmt);
    int n = vsnprintf(s->text ? s->text + s->len : NULL,
                      s->text ? s->cap - s->len : 0, fmt, ap);
    va_end(ap);
    if (n < 0)
      return;
    if (s->text && s->len + (size_t)n < s->cap) {
      s->len += (size_t)n;
      return;
    }
    size_t cap = (s->cap + (size_t)n + 256) * 2;
    char *t = realloc(s->text, cap);
    if (!t)
      return;
    s->text = t;
    s->cap = cap;
  }
}

typedef struct rec_ctx {
  smtpkit_doctor_endpoint e;
  const char *user, *ca, *from;
  bool token, implicit;
  char mech_lower[32];
} rec_ctx;

/* The verified mechanism, when the tool can be told to use it (one of
 * names, space-separated); else NULL: the tool picks among what the
 * server offers. */
static const char *mech_for(const rec_ctx *c, const char *names) {
  const char *m = c->e.auth_mechanism;
  if (!m || c->token)
    return NULL;
  size_t n = strlen(m);
  for (const char *p = names; *p;) {
    size_t k = strcspn(p, " ");
    if (k == n && !strncmp(p, m, n))
      return m;
    p += k + (p[k] == ' ');
  }
  return NULL;
}

static void lower(const char *in, char *out, size_t cap) {
  size_t i = 0;
  for (; in && in[i] && i + 1 < cap; i++)
    out[i] = (char)(in[i] >= 'A' && in[i] <= 'Z' ? in[i] + 32 : in[i]);
  out[i] = '\0';
}

static void snip_msmtp(snip *s, const rec_ctx *c) {
  sadd(s,
       "# ~/.msmtprc (chmod 600)\naccount default\nhost %s\nport %u\n"
       "tls on\ntls_starttls %s\n",
       c->e.host, c->e.port, c->implicit ? "off" : "on");
  if (c->ca)
    sadd(s, "tls_trust_file %s\n", c->ca);
  char m[32];
  lower(mech_for(c, "PLAIN LOGIN CRAM-MD5 SCRAM-SHA-1 SCRAM-SHA-256"), m,
        sizeof m);
  if (c->token)
    lower(c->e.auth_mechanism ? c->e.auth_mechanism : "xoauth2", m, sizeof m);
  sadd(s,
       "auth %s\nuser %s\npasswordeval \"cat ~/.config/smtp-%s\"\n"
       "from %s\n",
       m[0] ? m : "on", c->user, c->token ? "token" : "password", c->from);
  if (c->e.helo)
    sadd(s, "domain %s\n", c->e.helo);
}

static void snip_python(snip *s, const rec_ctx *c) {
  const char *m = mech_for(c, "PLAIN LOGIN CRAM-MD5");
  char ml[32];
  lower(m, ml, sizeof ml);
  for (char *p = ml; *p; p++)
    if (*p == '-')
      *p = '_';
  sadd(s,
       "import os, smtplib, ssl\n\nctx = ssl.create_default_context(%s%s%s)\n",
       c->ca ? "cafile=\"" : "", c->ca ? c->ca : "", c->ca ? "\"" : "");
  if (c->implicit)
    sadd(s,
         "with smtplib.SMTP_SSL(\"%s\", %u, context=ctx, timeout=30) as s:\n",
         c->e.host, c->e.port);
  else
    sadd(s,
         "with smtplib.SMTP(\"%s\", %u, timeout=30) as s:\n"
         "    s.starttls(context=ctx)\n",
         c->e.host, c->e.port);
  if (c->e.helo)
    sadd(s, "    s.ehlo(\"%s\")\n", c->e.helo);
  if (c->token)
    sadd(s,
         "    tok = os.environ[\"SMTP_TOKEN\"]\n"
         "    s.auth(\"XOAUTH2\", lambda challenge=None: "
         "f\"user=%s\\1auth=Bearer {tok}\\1\\1\")\n",
         c->user);
  else if (m)
    sadd(s,
         "    s.user, s.password = \"%s\", os.environ[\"SMTP_PASSWORD\"]\n"
         "    s.auth(\"%s\", s.auth_%s)  # %s, as verified\n",
         c->user, m, ml, m);
  else
    sadd(s, "    s.login(\"%s\", os.environ[\"SMTP_PASSWORD\"])%s%s\n", c->user,
         c->e.auth_mechanism ? "  # smtplib cannot do " : "",
         c->e.auth_mechanism ? c->e.auth_mechanism : "");
  sadd(s,
       "    s.sendmail(\"%s\", [\"you@example.org\"], "
       "open(\"message.eml\", \"rb\").read())\n",
       c->from);
}

static void snip_curl(snip *s, const rec_ctx *c) {
  sadd(s, "curl --url 'smtp%s://%s%s%s:%u' %s\\\n", c->implicit ? "s" : "",
       strchr(c->e.host, ':') ? "[" : "", c->e.host,
       strchr(c->e.host, ':') ? "]" : "", c->e.port,
       c->implicit ? "" : "--ssl-reqd ");
  if (c->ca)
    sadd(s, "     --cacert %s \\\n", c->ca);
  if (c->token)
    sadd(s, "     --user '%s' --oauth2-bearer \"$SMTP_TOKEN\" \\\n", c->user);
  else
    sadd(s, "     --user \"%s:$SMTP_PASSWORD\" \\\n", c->user);
  if (mech_for(c, "PLAIN LOGIN CRAM-MD5"))
    sadd(s, "     --login-options 'AUTH=%s' \\\n", c->e.auth_mechanism);
  sadd(s,
       "     --mail-from '%s' --mail-rcpt 'you@example.org' "
       "--upload-file message.eml\n",
       c->from);
}

static void snip_postfix(snip *s, const rec_ctx *c) {
  sadd(s,
       "# /etc/postfix/main.cf\nrelayhost = [%s]:%u\n"
       "smtp_sasl_auth_enable = yes\n"
       "smtp_sasl_password_maps = hash:/etc/postfix/sasl_passwd\n"
       "smtp_sasl_security_options = noanonymous\n"
       "smtp_tls_security_level = encrypt\n",
       c->e.host, c->e.port);
  if (c->implicit)
    sadd(s, "smtp_tls_wrappermode = yes\n");
  if (c->ca)
    sadd(s, "smtp_tls_CAfile = %s\n", c->ca);
  if (mech_for(c, "PLAIN LOGIN CRAM-MD5"))
    sadd(s, "smtp_sasl_mechanism_filter = %s\n", c->mech_lower);
  if (c->e.helo)
    sadd(s, "smtp_helo_name = %s\n", c->e.helo);
  sadd(s,
       "# /etc/postfix/sasl_passwd (chmod 600; then postmap "
       "/etc/postfix/sasl_passwd)\n[%s]:%u %s:YOUR_%s\n",
       c->e.host, c->e.port, c->user, c->token ? "TOKEN" : "PASSWORD");
}

static void snip_nodemailer(snip *s, const rec_ctx *c) {
  sadd(s,
       "const transporter = nodemailer.createTransport({\n"
       "  host: \"%s\",\n  port: %u,\n  secure: %s,%s\n",
       c->e.host, c->e.port, c->implicit ? "true" : "false",
       c->implicit ? "           // implicit TLS" : "\n  requireTLS: true,");
  if (c->token)
    sadd(s,
         "  auth: { type: \"OAuth2\", user: \"%s\", accessToken: "
         "process.env.SMTP_TOKEN },\n",
         c->user);
  else
    sadd(s, "  auth: { user: \"%s\", pass: process.env.SMTP_PASSWORD },\n",
         c->user);
  if (mech_for(c, "PLAIN LOGIN CRAM-MD5"))
    sadd(s, "  authMethod: \"%s\",\n", c->e.auth_mechanism);
  if (c->e.helo)
    sadd(s, "  name: \"%s\",\n", c->e.helo);
  if (c->ca)
    sadd(s, "  tls: { ca: require(\"fs\").readFileSync(\"%s\") },\n", c->ca);
  sadd(s, "});\n");
}

typedef struct snippet_kind {
  const char *key, *title;
  void (*fn)(snip *, const rec_ctx *);
} snippet_kind;

static const snippet_kind snippets[] = {
    {"msmtp", "msmtp", snip_msmtp},
    {"python", "Python smtplib", snip_python},
    {"curl", "curl", snip_curl},
    {"postfix", "Postfix relayhost + sasl_passwd", snip_postfix},
    {"nodemailer", "nodemailer", snip_nodemailer},
};

static bool rec_context(const smtpkit_doctor_report *r, const doctor_opts *o,
                        rec_ctx *c) {
  memset(c, 0, sizeof *c);
  if (!smtpkit_doctor_recommended(r, &c->e))
    return false;
  const char *u = smtpkit_doctor_user(r);
  c->user = u ? u : "YOUR_USER_NAME";
  c->ca = smtpkit_doctor_ca_file(r);
  c->token = o->c.token.loaded && !o->c.password.loaded;
  c->implicit = c->e.tls == SMTPKIT_TLS_IMPLICIT;
  c->from = o->from                             ? o->from
            : u && strchr(u, '@')               ? u
            : o->input && strchr(o->input, '@') ? o->input
                                                : "you@example.com";
  const char *m = c->e.auth_mechanism ? c->e.auth_mechanism : "";
  size_t i = 0;
  for (; m[i] && i + 1 < sizeof c->mech_lower; i++)
    c->mech_lower[i] = (char)(m[i] >= 'A' && m[i] <= 'Z' ? m[i] + 32 : m[i]);
  c->mech_lower[i] = '\0';
  return true;
}

/* ---- JSON (SPEC §4) ---- */

static void jw_words(jw *w, const char *key, const char *text, char sep) {
  jw_arr(w, key);
  for (const char *p = text ? text : ""; *p;) {
    while (*p == sep || *p == ' ')
      p++;
    size_t n = strcspn(p, sep == ' ' ? " " : "\n");
    if (!n)
      break;
    char word[600];
    snprintf(word, sizeof word, "%.*s", (int)(n < 599 ? n : 599), p);
    jw_str(w, NULL, word);
    p += n;
  }
  jw_arr_end(w);
}

static void json_probe(jw *w, const smtpkit_probe *p) {
  jw_obj(w, NULL);
  jw_str(w, "host", p->host);
  jw_int(w, "port", p->port);
  jw_str(w, "mode", p->mode);
  jw_bool(w, "reachable", p->reachable);
  jw_int(w, "elapsed_ms", p->elapsed_ms);
  jw_reply(w, "greeting", &p->greeting);
  jw_obj(w, "tls");
  jw_bool(w, "ok", p->tls.ok);
  jw_str(w, "version", p->tls.version[0] ? p->tls.version : NULL);
  jw_bool(w, "verified", p->tls.verified);
  jw_str(w, "error", p->tls.error[0] ? p->tls.error : NULL);
  jw_str(w, "subject", p->tls.subject[0] ? p->tls.subject : NULL);
  jw_str(w, "issuer", p->tls.issuer[0] ? p->tls.issuer : NULL);
  jw_str(w, "names", p->tls.names[0] ? p->tls.names : NULL);
  jw_str(w, "not_after", p->tls.not_after[0] ? p->tls.not_after : NULL);
  jw_obj_end(w);
  jw_words(w, "auth_before_tls", p->auth_before_tls, ' ');
  jw_words(w, "auth_after_tls", p->auth_after_tls, ' ');
  jw_words(w, "extensions", p->extensions, '\n');
  jw_str(w, "ehlo_name", p->ehlo_name && *p->ehlo_name ? p->ehlo_name : NULL);
  jw_bool(w, "tls_met_banner", p->tls_met_banner);
  jw_bool(w, "no_plain_greeting", p->no_plain_greeting);
  jw_str(w, "cause", smtpkit_cause_name(p->result.cause));
  jw_str(w, "detail", p->result.detail[0] ? p->result.detail : NULL);
  jw_obj_end(w);
}

static void json_auth(jw *w, const smtpkit_doctor_auth *a) {
  jw_obj(w, "auth");
  jw_bool(w, "attempted", a->attempted);
  jw_str(w, "host", a->attempted ? a->host : NULL);
  if (a->attempted)
    jw_int(w, "port", a->port);
  else
    jw_null(w, "port");
  jw_str(w, "tls", a->attempted ? smtpkit_tls_mode_name(a->tls) : NULL);
  jw_str(w, "mechanism", a->mechanism);
  jw_bool(w, "ok", a->ok);
  jw_reply(w, "reply", &a->reply);
  json_auth_attempts(w, "attempts", a->attempts, a->n_attempts);
  jw_str(w, "skipped", a->skipped);
  jw_obj_end(w);
}

static void print_json(const smtpkit_doctor_report *r, const doctor_opts *o,
                       const warnings *cli_w) {
  jw w;
  jw_begin(&w, stdout);
  const smtpkit_doctor_target *t = smtpkit_doctor_target_of(r);
  jw_obj(&w, "target");
  jw_str(&w, "input", t->input);
  jw_str(&w, "host", t->host);
  jw_str(&w, "provider", t->provider);
  jw_str(&w, "source", t->source);
  jw_arr(&w, "lookups");
  for (size_t i = 0; i < t->n_lookups; i++)
    jw_str(&w, NULL, t->lookups[i]);
  jw_arr_end(&w);
  jw_obj_end(&w);
  const smtpkit_probe *pr;
  size_t n = smtpkit_doctor_probes(r, &pr);
  jw_arr(&w, "probes");
  for (size_t i = 0; i < n; i++)
    json_probe(&w, &pr[i]);
  jw_arr_end(&w);
  json_auth(&w, smtpkit_doctor_auth_of(r));
  const smtpkit_doctor_send_test *st = smtpkit_doctor_send_test_of(r);
  if (st->attempted) {
    jw_obj(&w, "send_test");
    jw_bool(&w, "ok", st->ok);
    jw_str(&w, "from", st->from);
    jw_str(&w, "to", st->to);
    jw_reply(&w, "reply", &st->reply);
    jw_str(&w, "queue_id", st->queue_id);
    jw_obj_end(&w);
  }
  const char *const *v;
  size_t nw = smtpkit_doctor_warnings(r, &v);
  jw_arr(&w, "warnings");
  for (size_t i = 0; i < cli_w->n; i++)
    jw_str(&w, NULL, cli_w->items[i]);
  for (size_t i = 0; i < nw; i++)
    jw_str(&w, NULL, v[i]);
  jw_arr_end(&w);

  const smtpkit_error *e = smtpkit_doctor_error(r);
  smtpkit_advice a;
  smtpkit_doctor_advice(r, &a);
  jw_obj(&w, "diagnosis");
  jw_str(&w, "cause", smtpkit_cause_name(e->cause));
  jw_bool(&w, "transient", e->cause != SMTPKIT_CAUSE_ok && e->transient);
  jw_int(&w, "exit_code", smtpkit_doctor_exit_code(r));
  jw_str(&w, "stage",
         e->cause != SMTPKIT_CAUSE_ok && e->stage ? smtpkit_stage_name(e->stage)
                                                  : NULL);
  jw_str(&w, "provider", e->provider);
  jw_str(&w, "summary", a.summary);
  jw_str(&w, "why", a.why && *a.why ? a.why : NULL);
  jw_str(&w, "note", a.note);
  jw_arr(&w, "fix");
  for (size_t i = 0; e->cause != SMTPKIT_CAUSE_ok && i < a.n_fix; i++)
    jw_str(&w, NULL, a.fix[i]);
  jw_arr_end(&w);
  size_t ne = smtpkit_doctor_evidence(r, &v);
  jw_arr(&w, "evidence");
  for (size_t i = 0; i < ne; i++)
    jw_str(&w, NULL, v[i]);
  jw_arr_end(&w);
  jw_arr(&w, "references");
  for (size_t i = 0; i < a.n_references; i++)
    jw_str(&w, NULL, a.references[i]);
  jw_arr_end(&w);
  jw_reply(&w, "reply", &e->reply);
  jw_str(&w, "detail", e->detail[0] ? e->detail : NULL);
  jw_obj_end(&w);

  rec_ctx rc;
  if (rec_context(r, o, &rc)) {
    jw_obj(&w, "recommended");
    jw_str(&w, "host", rc.e.host);
    jw_int(&w, "port", rc.e.port);
    jw_str(&w, "tls", smtpkit_tls_mode_name(rc.e.tls));
    jw_str(&w, "auth_mechanism", rc.e.auth_mechanism);
    if (rc.e.helo)
      jw_str(&w, "helo", rc.e.helo);
    jw_obj_end(&w);
    jw_obj(&w, "settings");
    for (size_t i = 0; i < sizeof snippets / sizeof *snippets; i++) {
      snip s = {0};
      snippets[i].fn(&s, &rc);
      jw_str(&w, snippets[i].key, s.text ? s.text : "");
      free(s.text);
    }
    jw_obj_end(&w);
  } else {
    jw_null(&w, "recommended");
  }
  jw_int(&w, "elapsed_ms", smtpkit_doctor_elapsed_ms(r));
  jw_end(&w);
}

/* ---- the human report ---- */

typedef struct style {
  const char *bold, *red, *green, *yellow, *dim, *off;
} style;

static style pick_style(void) {
  const char *nc = getenv("NO_COLOR");
  if (isatty(1) && !(nc && *nc))
    return (style){"\033[1m",  "\033[1;31m", "\033[1;32m",
                   "\033[33m", "\033[2m",    "\033[0m"};
  return (style){"", "", "", "", "", ""};
}

static void section(const style *s, const char *title) {
  printf("\n%s%s%s\n", s->bold, title, s->off);
}

static void one_line(const smtpkit_reply *r, char *out, size_t cap) {
  if (!r || !r->code) {
    snprintf(out, cap, "-");
    return;
  }
  size_t n = strcspn(r->text ? r->text : "", "\n");
  snprintf(out, cap, "%d%s%s %.*s", r->code, r->enhanced[0] ? " " : "",
           r->enhanced, (int)(n > 200 ? 200 : n), r->text ? r->text : "");
  for (char *p = out; *p; p++)
    if ((unsigned char)*p < 0x20 || *p == 0x7f)
      *p = '?';
}

static void print_target(const style *s, const smtpkit_doctor_report *r,
                         const doctor_opts *o) {
  const smtpkit_doctor_target *t = smtpkit_doctor_target_of(r);
  static const struct {
    const char *id, *text;
  } sources[] = {{"input", "as given"},
                 {"provider-db", "the provider's server, from the knowledge "
                                 "base"},
                 {"srv", "from DNS SRV records"},
                 {"mx", "the provider of the domain's MX hosts"},
                 {"guess", "a guess: no provider, SRV or known MX"}};
  const char *src = t->source ? t->source : "not found";
  for (size_t i = 0; i < sizeof sources / sizeof *sources; i++)
    if (t->source && !strcmp(sources[i].id, t->source))
      src = sources[i].text;
  printf("%ssmtpkit doctor:%s %s\n", s->bold, s->off, t->input);
  printf("  %-10s %s (%s)\n", "server", t->host ? t->host : "-", src);
  if (t->provider)
    printf("  %-10s %s%s\n", "provider", smtpkit_provider_name(t->provider),
           o->provider ? " (--provider)" : "");
  for (size_t i = 0; i < t->n_lookups; i++)
    printf("  %-10s %s\n", i ? "" : "looked up", t->lookups[i]);
}

static void print_probes(const style *s, const smtpkit_doctor_report *r,
                         unsigned timeout_s) {
  const smtpkit_probe *p;
  size_t n = smtpkit_doctor_probes(r, &p);
  if (!n)
    return;
  bool hosts = false;
  for (size_t i = 1; i < n; i++)
    hosts = hosts || strcmp(p[i].host, p[0].host) != 0;
  char title[120];
  snprintf(title, sizeof title,
           "Ports (each probed plain and TLS-first at "
           "once; limit %u s)",
           timeout_s);
  section(s, title);
  printf("  %s%s%-6s %-9s %-9s %-22s %-22s %s%s\n", s->dim,
         hosts ? "host                      " : "", "port", "speaks",
         "greeting", "TLS", "port check", "AUTH offered", s->off);
  for (size_t i = 0; i < n; i++) {
    char greet[16] = "-", tls[40] = "-", auth[200] = "-";
    if (p[i].greeting.code)
      snprintf(greet, sizeof greet, "%d", p[i].greeting.code);
    if (p[i].tls.version[0])
      snprintf(tls, sizeof tls, "%s %s", p[i].tls.version,
               p[i].tls.verified ? "verified" : "UNVERIFIED");
    else if (p[i].tls_met_banner)
      snprintf(tls, sizeof tls, "handshake met banner");
    const char *after = p[i].auth_after_tls, *before = p[i].auth_before_tls;
    if (*after || *before)
      snprintf(auth, sizeof auth, "%s%.80s%s%s%.80s",
               *before ? "before TLS: " : "", before,
               *before && *after ? "; " : "", *after ? "after TLS: " : "",
               after);
    bool good = p[i].result.cause == SMTPKIT_CAUSE_ok;
    if (hosts)
      printf("  %-25.25s", p[i].host);
    printf("  %-6u %-9s %-9s %-22s %s%-22s%s %s\n", p[i].port, p[i].mode, greet,
           tls, good ? s->green : s->yellow,
           smtpkit_cause_name(p[i].result.cause), s->off, auth);
  }
}

static void print_cert(const style *s, const smtpkit_doctor_report *r) {
  const smtpkit_probe *p;
  size_t n = smtpkit_doctor_probes(r, &p);
  smtpkit_doctor_endpoint rec;
  bool has = smtpkit_doctor_recommended(r, &rec);
  const smtpkit_probe *pick = NULL;
  for (size_t i = 0; i < n; i++) {
    if (!p[i].tls.subject[0] && !p[i].tls.names[0])
      continue;
    if (!pick || (has && p[i].port == rec.port && !strcmp(p[i].host, rec.host)))
      pick = &p[i];
  }
  if (!pick)
    return;
  char title[300];
  snprintf(title, sizeof title, "Certificate (%s port %u)", pick->host,
           pick->port);
  section(s, title);
  printf("  %-9s %s\n", "subject",
         pick->tls.subject[0] ? pick->tls.subject : "-");
  printf("  %-9s %s\n", "names", pick->tls.names[0] ? pick->tls.names : "-");
  printf("  %-9s %s\n", "issuer", pick->tls.issuer[0] ? pick->tls.issuer : "-");
  printf("  %-9s %s\n", "expires",
         pick->tls.not_after[0] ? pick->tls.not_after : "-");
  printf("  %-9s %s%s%s%s\n", "verified",
         pick->tls.verified ? s->green : s->red,
         pick->tls.verified ? "yes" : "NO: ", pick->tls.error, s->off);
}

static void print_login(const style *s, const smtpkit_doctor_report *r) {
  const smtpkit_doctor_auth *a = smtpkit_doctor_auth_of(r);
  const smtpkit_doctor_send_test *st = smtpkit_doctor_send_test_of(r);
  section(s, "Login");
  if (!a->attempted) {
    printf("  not tried: %s\n", a->skipped ? a->skipped : "-");
    return;
  }
  for (size_t i = 0; i < a->n_attempts; i++) {
    char rl[260];
    one_line(&a->attempts[i].reply, rl, sizeof rl);
    bool good = a->attempts[i].reply.code == 235;
    printf("  AUTH %-14s -> %s%s%s\n", a->attempts[i].mechanism,
           good ? s->green : s->red, rl, s->off);
  }
  printf("  %s%s port %u, %s%s\n", a->ok ? "logged in on " : "last try on ",
         a->host, a->port, smtpkit_tls_mode_name(a->tls),
         a->mechanism ? "" : "");
  if (st->attempted) {
    char rl[260];
    one_line(&st->reply, rl, sizeof rl);
    printf("  test message %s -> %s: %s%s%s\n", st->from, st->to,
           st->ok ? s->green : s->red, rl, s->off);
  }
}

static void print_diagnosis(const style *s, const smtpkit_doctor_report *r) {
  const smtpkit_error *e = smtpkit_doctor_error(r);
  smtpkit_advice a;
  smtpkit_doctor_advice(r, &a);
  bool ok = e->cause == SMTPKIT_CAUSE_ok;
  printf("\n%sDiagnosis:%s %s%s%s", s->bold, s->off, ok ? s->green : s->red,
         smtpkit_cause_name(e->cause), s->off);
  if (!ok)
    printf(" (exit %d%s)", smtpkit_doctor_exit_code(r),
           e->transient ? ", temporary: retrying later may work" : "");
  printf("\n  %s\n", ok ? (e->detail[0] ? e->detail : a.summary) : a.summary);
  if (!ok && a.why && *a.why)
    printf("  %s\n", a.why);
  if (!ok && e->detail[0]) {
    printf("  %sdetail:%s ", s->dim, s->off);
    print_escaped(stdout, e->detail, strlen(e->detail));
    putchar('\n');
  }
  if (a.note && !ok)
    printf("  %sabout this reply:%s %s\n", s->dim, s->off, a.note);
  const char *const *v;
  size_t n = smtpkit_doctor_evidence(r, &v);
  if (n) {
    section(s, "What showed it");
    for (size_t i = 0; i < n; i++) {
      fputs("  - ", stdout);
      print_escaped(stdout, v[i], strlen(v[i]));
      putchar('\n');
    }
  }
  if (!ok && a.n_fix) {
    char title[200];
    snprintf(title, sizeof title, "How to fix it%s%s",
             a.provider_name ? " - " : "",
             a.provider_name ? a.provider_name : "");
    section(s, title);
    for (size_t i = 0; i < a.n_fix; i++)
      printf("  %zu. %s\n", i + 1, a.fix[i]);
    for (size_t i = 0; i < a.n_references; i++)
      printf("  %ssee %s%s\n", s->dim, a.references[i], s->off);
  }
  smtpkit_doctor_endpoint rec;
  if (!ok && smtpkit_doctor_recommended(r, &rec))
    printf("\n  %sVerified on the wire:%s %s port %u with %s%s%s works "
           "(settings below).\n",
           s->green, s->off, rec.host, rec.port,
           rec.tls == SMTPKIT_TLS_IMPLICIT ? "implicit TLS" : "STARTTLS",
           rec.auth_mechanism ? " and AUTH " : "",
           rec.auth_mechanism ? rec.auth_mechanism : "");
}

static void print_settings(const style *s, const smtpkit_doctor_report *r,
                           const doctor_opts *o) {
  rec_ctx c;
  if (!rec_context(r, o, &c)) {
    if (smtpkit_doctor_error(r)->cause != SMTPKIT_CAUSE_ok)
      printf("\n%sNo working configuration was verified%s, so none is "
             "recommended.\n",
             s->bold, s->off);
    return;
  }
  char title[400];
  snprintf(title, sizeof title,
           "Working settings (verified on the wire): %s port %u, %s%s%s",
           c.e.host, c.e.port, c.implicit ? "implicit TLS" : "STARTTLS",
           c.e.auth_mechanism ? ", AUTH " : "",
           c.e.auth_mechanism ? c.e.auth_mechanism : "");
  section(s, title);
  if (c.e.helo)
    printf("  EHLO name: %s\n", c.e.helo);
  printf("  %s(the secret is never printed: put it where each snippet "
         "says)%s\n",
         s->dim, s->off);
  for (size_t i = 0; i < sizeof snippets / sizeof *snippets; i++) {
    snip t = {0};
    snippets[i].fn(&t, &c);
    printf("\n  %s%s%s\n", s->bold, snippets[i].title, s->off);
    for (const char *p = t.text ? t.text : ""; *p;) {
      size_t n = strcspn(p, "\n");
      printf("    %.*s\n", (int)n, p);
      p += n + (p[n] == '\n');
    }
    free(t.text);
  }
}

static void print_human(const smtpkit_doctor_report *r, const doctor_opts *o,
                        unsigned timeout_s) {
  style s = pick_style();
  print_target(&s, r, o);
  print_probes(&s, r, timeout_s);
  print_cert(&s, r);
  if (o->c.user || smtpkit_doctor_auth_of(r)->attempted)
    print_login(&s, r);
  const char *const *v;
  size_t nw = smtpkit_doctor_warnings(r, &v);
  for (size_t i = 0; i < nw; i++)
    printf("%s  note: %s%s\n", s.yellow, v[i], s.off);
  print_diagnosis(&s, r);
  print_settings(&s, r, o);
  printf("\n%s(%.1f s)%s\n", s.dim, smtpkit_doctor_elapsed_ms(r) / 1000.0,
         s.off);
}

/* ---- the command ---- */

static int run(doctor_opts *o) {
  warnings w = {0};
  transcript tr;
  smtpkit_settings set;
  int rc = transcript_open(&tr, o->c.transcript, o->c.verbose);
  if (rc)
    return rc;
  const char *user = o->c.user;
  if (o->no_auth)
    o->c.user = NULL; /* probe only: do not ask for a secret */
  rc = conn_settings(&o->c, &set, 8, &w);
  o->c.user = user;
  if (rc) {
    transcript_close(&tr);
    return rc;
  }
  if (!o->c.json)
    print_warnings(&w);
  if (o->try_all && o->c.user && !o->no_auth)
    fprintf(stderr,
            "smtpkit: warning: --try-all-mechanisms logs in once per "
            "mechanism the server offers; failed attempts can count toward "
            "a lock-out (\"too many login attempts\")\n");
  set.transcript = tr.f ? transcript_line : NULL;
  set.transcript_ctx = &tr;
  smtpkit_doctor_options d;
  smtpkit_doctor_options_init(&d);
  d.input = o->input;
  d.settings = set;
  d.provider = o->provider;
  d.dns_server = o->dns_server;
  d.no_auth = o->no_auth;
  d.try_all_mechanisms = o->try_all;
  d.send_test_to = o->send_test ? o->to : NULL;
  d.send_test_from = o->from;
  d.may_login = may_login;
  d.login_done = login_done;
  d.login_ctx = &o->c;
  live lv = {0};
  if (isatty(2) && tr.f != stderr) {
    d.progress = live_progress;
    d.progress_ctx = &lv;
  }
  smtpkit_doctor_report *r = smtpkit_doctor_run(&d);
  live_clear(&lv);
  transcript_close(&tr);
  if (!r) {
    fprintf(stderr, "smtpkit: out of memory\n");
    return EX_SOFTWARE;
  }
  if (o->c.json)
    print_json(r, o, &w);
  else
    print_human(r, o, o->c.timeout_s ? o->c.timeout_s : 8);
  rc = smtpkit_doctor_exit_code(r);
  smtpkit_doctor_report_free(r);
  return rc;
}

int cmd_doctor(int argc, char **argv) {
  doctor_opts o = {0};
  conn_opts_init(&o.c);
  int rc = parse(&o, argc, argv);
  if (!rc)
    rc = validate(&o);
  if (!rc)
    rc = run(&o);
  conn_opts_free(&o.c);
  return rc;
}
