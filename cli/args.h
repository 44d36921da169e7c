/* args.h — command-line options shared by send and doctor (SPEC §1). */
#ifndef SMTPKIT_CLI_ARGS_H
#define SMTPKIT_CLI_ARGS_H

#include "secret.h"
#include "smtpkit.h"

#include <getopt.h>

enum {
  OPT_TLS = 1000,
  OPT_CA_FILE,
  OPT_INSECURE,
  OPT_PASSWORD_FILE,
  OPT_PASSWORD_ENV,
  OPT_PASSWORD_CMD,
  OPT_TOKEN_FILE,
  OPT_TOKEN_ENV,
  OPT_TOKEN_CMD,
  OPT_AUTH,
  OPT_ALLOW_PLAIN,
  OPT_FORCE_AUTH,
  OPT_HELO,
  OPT_TIMEOUT,
  OPT_TRANSCRIPT,
  OPT_JSON,
  OPT_PASSWORD_PLAIN, /* refused: explains why */
  OPT_LAST_COMMON
};

#define CONN_LONG_OPTIONS                                                      \
  {"server", required_argument, 0, 's'}, {"port", required_argument, 0, 'p'},  \
      {"tls", required_argument, 0, OPT_TLS},                                  \
      {"ca-file", required_argument, 0, OPT_CA_FILE},                          \
      {"insecure", no_argument, 0, OPT_INSECURE},                              \
      {"user", required_argument, 0, 'u'},                                     \
      {"password-file", required_argument, 0, OPT_PASSWORD_FILE},              \
      {"password-env", required_argument, 0, OPT_PASSWORD_ENV},                \
      {"password-cmd", required_argument, 0, OPT_PASSWORD_CMD},                \
      {"oauth2-token-file", required_argument, 0, OPT_TOKEN_FILE},             \
      {"oauth2-token-env", required_argument, 0, OPT_TOKEN_ENV},               \
      {"oauth2-token-cmd", required_argument, 0, OPT_TOKEN_CMD},               \
      {"auth", required_argument, 0, OPT_AUTH},                                \
      {"allow-plaintext-auth", no_argument, 0, OPT_ALLOW_PLAIN},               \
      {"force-auth", no_argument, 0, OPT_FORCE_AUTH},                          \
      {"helo", required_argument, 0, OPT_HELO},                                \
      {"timeout", required_argument, 0, OPT_TIMEOUT},                          \
      {"transcript", required_argument, 0, OPT_TRANSCRIPT},                    \
      {"json", no_argument, 0, OPT_JSON}, {"verbose", no_argument, 0, 'v'}, {  \
    "password", required_argument, 0, OPT_PASSWORD_PLAIN                       \
  }

#define CONN_SHORT_OPTIONS "s:p:u:v"

typedef struct conn_opts {
  char host[256];
  unsigned port; /* 0: default */
  smtpkit_tls_mode tls;
  const char *ca_file;
  bool insecure;
  const char *user;
  secret password, token;
  const char *auth;
  bool allow_plain, force_auth;
  const char *helo;
  unsigned timeout_s; /* 0: the command's default */
  const char *transcript;
  bool json;
  int verbose;
} conn_opts;

void conn_opts_init(conn_opts *o);
/* Handles one option. Returns 1 if it was a connection option, 0 if not,
 * or an exit code (> 1) after printing why it is wrong. */
int conn_opt(conn_opts *o, int opt, const char *arg);
/* Parses "HOST", "HOST:PORT" or "[V6]:PORT" into o. Returns 0 or EX_USAGE. */
int parse_server(conn_opts *o, const char *arg);
/* Refuses CR, LF (and other controls) in a value going into the protocol
 * or a header: returns 0 or EX_DATAERR after printing why. */
int check_clean(const char *what, const char *value);
/* Loads secrets, fills settings. Returns 0 or an exit code. */
int conn_settings(conn_opts *o, smtpkit_settings *s, unsigned default_timeout,
                  warnings *w);
void conn_opts_free(conn_opts *o);

/* Prints "smtpkit: MSG\nTry 'smtpkit CMD --help'." and returns EX_USAGE. */
int usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
