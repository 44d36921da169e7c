/* args.c — parsing and checking the connection options. */
#include "args.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

int usage_error(const char *cmd, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("smtpkit: ", stderr);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\nTry 'smtpkit %s%s--help' for the options.\n",
          cmd ? cmd : "", cmd ? " " : "");
  return EX_USAGE;
}

void conn_opts_init(conn_opts *o) {
  memset(o, 0, sizeof *o);
  o->tls = SMTPKIT_TLS_AUTO;
  o->password.what = "password";
  o->token.what = "OAuth2 token";
}

void conn_opts_free(conn_opts *o) {
  secret_free(&o->password);
  secret_free(&o->token);
}

int check_clean(const char *what, const char *value) {
  for (const unsigned char *p = (const unsigned char *)value; p && *p; p++)
    if (*p == '\r' || *p == '\n' || (*p < 0x20 && *p != '\t')) {
      fprintf(stderr,
              "smtpkit: %s contains a line break or control character; "
              "refused (it could inject SMTP commands or header lines)\n",
              what);
      return EX_DATAERR;
    }
  return 0;
}

static int parse_uint(const char *arg, unsigned long max, unsigned *out) {
  char *end;
  unsigned long v = strtoul(arg, &end, 10);
  if (!*arg || *end || v == 0 || v > max || arg[0] == '-')
    return -1;
  *out = (unsigned)v;
  return 0;
}

int parse_server(conn_opts *o, const char *arg) {
  const char *host = arg, *port = NULL;
  size_t hlen;
  if (arg[0] == '[') {
    const char *close = strchr(arg, ']');
    if (!close)
      return usage_error(NULL, "bad server '%s': missing ']'", arg);
    host = arg + 1;
    hlen = (size_t)(close - host);
    if (close[1] == ':')
      port = close + 2;
    else if (close[1])
      return usage_error(NULL, "bad server '%s'", arg);
  } else {
    const char *colon = strchr(arg, ':');
    if (colon && strchr(colon + 1, ':'))
      colon = NULL; /* a bare IPv6 address */
    hlen = colon ? (size_t)(colon - arg) : strlen(arg);
    port = colon ? colon + 1 : NULL;
  }
  if (hlen == 0 || hlen >= sizeof o->host)
    return usage_error(NULL, "bad server '%s'", arg);
  memcpy(o->host, host, hlen);
  o->host[hlen] = '\0';
  if (port && parse_uint(port, 65535, &o->port) != 0)
    return usage_error(NULL, "bad port in '%s'", arg);
  return check_clean("--server", o->host);
}

static int set_secret(secret *s, secret_kind k, const char *arg,
                      const char *opt) {
  if (s->kind != SECRET_NONE)
    return usage_error(NULL, "%s: give only one source for the %s", opt,
                       s->what);
  s->kind = k;
  s->arg = arg;
  return 1;
}

int conn_opt(conn_opts *o, int opt, const char *arg) {
  int rc;
  switch (opt) {
  case 's':
    return (rc = parse_server(o, arg)) ? rc : 1;
  case 'p':
    if (parse_uint(arg, 65535, &o->port) != 0)
      return usage_error(
          NULL, "--port wants a number from 1 to 65535, not '%s'", arg);
    return 1;
  case OPT_TLS:
    if (!strcmp(arg, "auto"))
      o->tls = SMTPKIT_TLS_AUTO;
    else if (!strcmp(arg, "starttls"))
      o->tls = SMTPKIT_TLS_STARTTLS;
    else if (!strcmp(arg, "implicit"))
      o->tls = SMTPKIT_TLS_IMPLICIT;
    else if (!strcmp(arg, "none"))
      o->tls = SMTPKIT_TLS_NONE;
    else
      return usage_error(
          NULL, "--tls wants auto, starttls, implicit or none, not '%s'", arg);
    return 1;
  case OPT_CA_FILE:
    o->ca_file = arg;
    return 1;
  case OPT_INSECURE:
    o->insecure = true;
    return 1;
  case 'u':
    o->user = arg;
    return (rc = check_clean("--user", arg)) ? rc : 1;
  case OPT_PASSWORD_FILE:
    return set_secret(&o->password, SECRET_FILE, arg, "--password-file");
  case OPT_PASSWORD_ENV:
    return set_secret(&o->password, SECRET_ENV, arg, "--password-env");
  case OPT_PASSWORD_CMD:
    return set_secret(&o->password, SECRET_CMD, arg, "--password-cmd");
  case OPT_TOKEN_FILE:
    return set_secret(&o->token, SECRET_FILE, arg, "--oauth2-token-file");
  case OPT_TOKEN_ENV:
    return set_secret(&o->token, SECRET_ENV, arg, "--oauth2-token-env");
  case OPT_TOKEN_CMD:
    return set_secret(&o->token, SECRET_CMD, arg, "--oauth2-token-cmd");
  case OPT_PASSWORD_PLAIN:
    return usage_error(NULL,
                       "passwords are not accepted on the command line (other "
                       "users can read it in the process list, and it stays in "
                       "shell history); use --password-file, --password-env or "
                       "--password-cmd");
  case OPT_AUTH:
    o->auth = arg;
    return (rc = check_clean("--auth", arg)) ? rc : 1;
  case OPT_ALLOW_PLAIN:
    o->allow_plain = true;
    return 1;
  case OPT_FORCE_AUTH:
    o->force_auth = true;
    return 1;
  case OPT_HELO:
    o->helo = arg;
    return (rc = check_clean("--helo", arg)) ? rc : 1;
  case OPT_TIMEOUT:
    if (parse_uint(arg, 3600, &o->timeout_s) != 0)
      return usage_error(
          NULL, "--timeout wants seconds from 1 to 3600, not '%s'", arg);
    return 1;
  case OPT_TRANSCRIPT:
    o->transcript = arg;
    return 1;
  case OPT_JSON:
    o->json = true;
    return 1;
  case 'v':
    o->verbose++;
    return 1;
  default:
    return 0;
  }
}

int conn_settings(conn_opts *o, smtpkit_settings *s, unsigned default_timeout,
                  warnings *w) {
  smtpkit_settings_init(s);
  s->host = o->host;
  s->port = o->port;
  s->tls = o->tls;
  s->ca_file = o->ca_file;
  s->insecure = o->insecure;
  s->helo = o->helo;
  s->timeout_ms = 1000 * (o->timeout_s ? o->timeout_s : default_timeout);
  s->mechanisms = o->auth;
  s->allow_plaintext_auth = o->allow_plain;
  if (o->ca_file && access(o->ca_file, R_OK) != 0) {
    fprintf(stderr, "smtpkit: cannot read --ca-file %s: %s\n", o->ca_file,
            strerror(errno));
    return EX_NOINPUT;
  }
  if (o->insecure)
    fprintf(stderr, "smtpkit: warning: --insecure: the server's certificate "
                    "is NOT verified; anyone on the path can read the "
                    "password\n");
  if (!o->user && (o->password.kind || o->token.kind))
    return usage_error(NULL, "a password or token was given without --user");
  if (o->user) {
    if (!o->password.kind && !o->token.kind)
      o->password.kind = SECRET_PROMPT;
    int rc = secret_load(&o->password, w);
    if (!rc)
      rc = secret_load(&o->token, w);
    if (rc)
      return rc;
    s->user = o->user;
    if (o->password.loaded) {
      s->password = secret_fetch;
      s->password_ctx = &o->password;
    }
    if (o->token.loaded) {
      s->oauth2_token = secret_fetch;
      s->oauth2_token_ctx = &o->token;
    }
  }
  return 0;
}
