/*
 * lab.c — the lab server: a local SMTP submission server that fails the
 * way a named real-world case fails (SPEC §5, scenarios in
 * lab_scenarios.def).
 *
 * RFC 5321 (SMTP server side: greeting, EHLO/HELO, MAIL, RCPT, DATA, RSET,
 * NOOP, QUIT; dot-stuffing §4.5.2), RFC 3207 (STARTTLS; pipelined plaintext
 * after STARTTLS is discarded, cf. CVE-2011-0411), RFC 8314 (implicit TLS),
 * RFC 4954 (AUTH and its replies), RFC 2920 (PIPELINING: commands are taken
 * in order from the input buffer), RFC 1870 (SIZE), RFC 6152 (8BITMIME),
 * RFC 2034 (ENHANCEDSTATUSCODES), RFC 4616 / RFC 2195 / RFC 7677 through
 * GNU SASL (PLAIN, LOGIN, CRAM-MD5, SCRAM-SHA-256), RFC 7628 (OAUTHBEARER)
 * and Google's XOAUTH2, parsed here.
 *
 * One thread, poll() over non-blocking sockets. TLS runs over memory BIOs
 * like the client's (tls.c): this file moves every byte itself, so a
 * handshake never blocks the loop and a write never raises SIGPIPE. Every
 * buffer has a bound; a client that exceeds one is dropped.
 */
#define _GNU_SOURCE
#include "lab.h"
#include "conn.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <gsasl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

static const lab_scenario_def scenarios[] = {
#include "lab_scenarios.def"
};

#define N_SCENARIOS (sizeof scenarios / sizeof *scenarios)

#define DEFAULT_BANNER "220 lab.smtpkit.test ESMTP smtpkit lab"
#define DEFAULT_EHLO "lab.smtpkit.test Hello {helo} [{ip}]"
#define DEFAULT_MECHS "PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256 XOAUTH2 OAUTHBEARER"
#define DEFAULT_FAIL "535 5.7.8 Authentication credentials invalid"
#define DEFAULT_SIZE 35882577UL

enum {
  IN_CAP = 32768,   /* plaintext input waiting to be handled */
  OUT_CAP = 262144, /* output waiting for the client: stop reading */
  RAW_CAP = 65536,  /* TLS records waiting for OpenSSL */
  MAX_ERRORS = 10,  /* bad commands before 421 (hostile clients) */
  MAX_RCPT = 100,
  ACCEPTS_PER_ROUND = 64,
  READ_CHUNK = 8192 /* bytes read from a client at a time */
};

/* ---- scenario table ---- */

size_t smtpkit_lab_scenario_count(void) { return N_SCENARIOS; }

const smtpkit_lab_scenario *smtpkit_lab_scenario_at(size_t i) {
  return i < N_SCENARIOS ? &scenarios[i].info : NULL;
}

const lab_scenario_def *sk_lab_scenario_def(const char *name) {
  for (size_t i = 0; name && i < N_SCENARIOS; i++)
    if (strcmp(scenarios[i].info.name, name) == 0)
      return &scenarios[i];
  return NULL;
}

const smtpkit_lab_scenario *smtpkit_lab_scenario_find(const char *name) {
  const lab_scenario_def *d = sk_lab_scenario_def(name);
  return d ? &d->info : NULL;
}

/* ---- sans-I/O pieces ---- */

long sk_lab_next_line(const char *buf, size_t len, size_t *used) {
  size_t lim = len < SK_LAB_MAX_LINE ? len : SK_LAB_MAX_LINE;
  const char *nl = lim ? memchr(buf, '\n', lim) : NULL;
  if (!nl)
    return len >= SK_LAB_MAX_LINE ? -2 : -1;
  size_t n = (size_t)(nl - buf);
  *used = n + 1;
  if (n && buf[n - 1] == '\r')
    n--;
  return (long)n;
}

enum { DS_LINE_START, DS_MID, DS_CR, DS_DOT, DS_DOT_CR };

void sk_lab_data_init(sk_lab_data *d) {
  d->state = DS_LINE_START;
  d->size = 0;
}

static void emit(sk_lab_data *d, char *out, size_t *o, char ch) {
  out[(*o)++] = ch;
  d->size++;
  d->state = ch == '\r' ? DS_CR : DS_MID;
}

size_t sk_lab_data_scan(sk_lab_data *d, const char *in, size_t n, char *out,
                        size_t *out_n, bool *done) {
  size_t o = 0, i = 0;
  *done = false;
  for (; i < n && !*done; i++) {
    char ch = in[i];
    switch (d->state) {
    case DS_LINE_START:
      if (ch == '.')
        d->state = DS_DOT; /* either stuffing or the end of data */
      else
        emit(d, out, &o, ch);
      break;
    case DS_DOT:
      if (ch == '\r')
        d->state = DS_DOT_CR;
      else
        emit(d, out, &o, ch); /* the stuffed dot is dropped */
      break;
    case DS_DOT_CR:
      if (ch == '\n') {
        *done = true;
        d->state = DS_LINE_START;
        break;
      }
      emit(d, out, &o, '\r'); /* ".\rX": a lone dot, then a bare CR */
      if (ch != '\r')
        emit(d, out, &o, ch);
      break;
    case DS_CR:
      emit(d, out, &o, ch);
      if (ch == '\n')
        d->state = DS_LINE_START;
      break;
    default:
      emit(d, out, &o, ch);
      break;
    }
  }
  *out_n = o;
  return i;
}

/* ---- the server ---- */

typedef enum conn_phase {
  PH_GREETING,      /* waiting to greet (greet-pause) */
  PH_TLS_HANDSHAKE, /* implicit TLS, or after STARTTLS */
  PH_COMMAND,
  PH_AUTH,    /* reading SASL responses */
  PH_DATA,    /* reading the message */
  PH_REFUSED, /* refused at connect: only QUIT */
  PH_SILENT,  /* said garbage: input is ignored */
  PH_CLOSING  /* flushing, then closed */
} conn_phase;

typedef enum auth_kind { AK_GSASL, AK_XOAUTH2, AK_OAUTHBEARER } auth_kind;

typedef struct lab_conn {
  smtpkit_lab *lab;
  int fd;
  SSL *ssl;
  BIO *rbio, *wbio;
  bool tls;       /* handshake done */
  bool tls_first; /* accepted on a listener that speaks TLS at once */
  bool greeted, eof, dead, close_after_flush;
  conn_phase phase;
  long long deadline; /* idle: dropped after it */
  long long greet_at;
  sk_buf in;  /* plaintext received, not yet handled */
  sk_buf out; /* bytes for the socket (TLS records once TLS is on) */
  char ip[64];
  char id[32];
  char helo[256];
  bool helo_done;
  unsigned errors;
  /* authentication */
  bool authed;
  char user[256];
  char mech[32];
  auth_kind ak;
  Gsasl_session *sasl;
  bool auth_final;    /* server-final sent in a 334; waiting for "" */
  bool token_refused; /* error challenge sent; waiting for the client */
  /* transaction */
  bool has_mail;
  char from[256], rcpt[256];
  unsigned n_rcpt;
  sk_lab_data data;
  int msg_fd;
  char msg_name[128];
  bool msg_error;
} lab_conn;

typedef struct listener {
  int fd;
  bool tls_first;
  char addr[96];
  unsigned port;
  long long paused_until; /* out of file descriptors: retry later */
} listener;

struct smtpkit_lab {
  const lab_scenario_def *sc;
  const lab_behaviour *b;
  char *user, *password, *token, *maildir, *listen, *tls_listen;
  char *mechs; /* --mechanisms: replaces the scenario's list after TLS */
  char ca_path[PATH_MAX], tmpdir[PATH_MAX - 16];
  SSL_CTX *ssl_ctx;
  Gsasl *gsasl;
  int pipe[2];
  listener lis[2];
  lab_conn **conns;
  size_t n_conns, cap_conns;
  struct pollfd *pfds;
  size_t cap_pfds;
  unsigned idle_ms, max_conns;
  FILE *log;
  unsigned long seq;
  smtpkit_lab_stats st;
  bool started, stopping;
};

static void lab_log(smtpkit_lab *L, const lab_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void lab_log(smtpkit_lab *L, const lab_conn *c, const char *fmt, ...) {
  if (!L->log)
    return;
  va_list ap;
  va_start(ap, fmt);
  fprintf(L->log, "lab[%s] %s%s", L->sc->info.name, c ? c->ip : "",
          c ? ": " : "");
  vfprintf(L->log, fmt, ap);
  fputc('\n', L->log);
  fflush(L->log);
  va_end(ap);
}

/* ---- output ---- */

/* Moves what OpenSSL wrote into the socket buffer. */
static void tls_drain(lab_conn *c) {
  for (int rounds = 0; rounds < 4096 && BIO_ctrl_pending(c->wbio) > 0;
       rounds++) {
    size_t want = BIO_ctrl_pending(c->wbio);
    if (!sk_buf_reserve(&c->out, want)) {
      c->dead = true;
      return;
    }
    int n = BIO_read(c->wbio, c->out.data + c->out.len, (int)want);
    if (n <= 0)
      break;
    c->out.len += (size_t)n;
    c->out.data[c->out.len] = '\0';
  }
}

static void conn_send(lab_conn *c, const void *p, size_t n) {
  if (c->dead || c->close_after_flush)
    return;
  if (c->ssl && c->tls) {
    if (SSL_write(c->ssl, p, (int)n) <= 0) {
      ERR_clear_error();
      c->dead = true;
      return;
    }
    tls_drain(c);
    return;
  }
  if (!sk_buf_append(&c->out, p, n))
    c->dead = true;
}

static const char *var(const lab_conn *c, const char *name, size_t n) {
  static const struct {
    const char *name;
    size_t off;
  } vars[] = {
      {"ip", offsetof(lab_conn, ip)},     {"id", offsetof(lab_conn, id)},
      {"helo", offsetof(lab_conn, helo)}, {"user", offsetof(lab_conn, user)},
      {"from", offsetof(lab_conn, from)}, {"rcpt", offsetof(lab_conn, rcpt)}};
  for (size_t i = 0; i < sizeof vars / sizeof *vars; i++)
    if (strlen(vars[i].name) == n && memcmp(vars[i].name, name, n) == 0)
      return (const char *)c + vars[i].off;
  return NULL;
}

/* Sends a reply written as in lab_scenarios.def: lines separated by '\n',
 * {name} filled in. Values the client chose lose control characters, so a
 * client cannot inject reply lines. */
static void reply(lab_conn *c, const char *tmpl) {
  sk_buf o = {0};
  for (const char *p = tmpl; *p; p++) {
    const char *e = *p == '{' ? strchr(p, '}') : NULL;
    const char *v = e ? var(c, p + 1, (size_t)(e - p - 1)) : NULL;
    if (v) {
      for (; *v; v++) {
        char ch = (unsigned char)*v < 0x20 || *v == 0x7f ? '?' : *v;
        sk_buf_append(&o, &ch, 1);
      }
      p = e;
      continue;
    }
    if (*p == '\n')
      sk_buf_append(&o, "\r\n", 2);
    else
      sk_buf_append(&o, p, 1);
  }
  sk_buf_append(&o, "\r\n", 2);
  if (o.data)
    conn_send(c, o.data, o.len);
  sk_buf_free(&o);
}

static void conn_close_after_flush(lab_conn *c) {
  if (c->ssl && c->tls) {
    SSL_shutdown(c->ssl); /* close_notify */
    ERR_clear_error();
    tls_drain(c);
  }
  c->close_after_flush = true;
  c->phase = PH_CLOSING;
}

/* ---- lists of words ("PLAIN LOGIN") ---- */

static bool has_word(const char *list, const char *word) {
  size_t n = strlen(word);
  for (const char *p = list; p && *p;) {
    while (*p == ' ')
      p++;
    size_t k = strcspn(p, " ");
    if (k == n && strncasecmp(p, word, n) == 0)
      return true;
    p += k;
  }
  return false;
}

static const char *offered_mechs(const lab_conn *c) {
  const lab_behaviour *b = c->lab->b;
  if (c->tls && c->lab->mechs)
    return c->lab->mechs;
  if (c->tls)
    return b->auth_tls ? b->auth_tls : DEFAULT_MECHS;
  return b->auth_plain ? b->auth_plain : "";
}

static bool starttls_offered(const lab_conn *c) {
  return !c->tls && !c->lab->b->no_starttls && c->lab->ssl_ctx;
}

/* ---- message storage (Maildir) ---- */

static void msg_open(lab_conn *c) {
  smtpkit_lab *L = c->lab;
  c->msg_fd = -1;
  c->msg_error = false;
  if (!L->maildir)
    return;
  struct timeval tv;
  gettimeofday(&tv, NULL);
  snprintf(c->msg_name, sizeof c->msg_name, "%lld.M%06ldP%dQ%lu.smtpkit-lab",
           (long long)tv.tv_sec, (long)tv.tv_usec, (int)getpid(), ++L->seq);
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/tmp/%s", L->maildir, c->msg_name);
  c->msg_fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (c->msg_fd < 0) {
    c->msg_error = true;
    lab_log(L, c, "cannot create %s: %s", path, strerror(errno));
  }
}

static void msg_write(lab_conn *c, const char *p, size_t n) {
  while (c->msg_fd >= 0 && n) {
    ssize_t k = write(c->msg_fd, p, n);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0) {
      c->msg_error = true;
      close(c->msg_fd);
      c->msg_fd = -1;
      return;
    }
    p += k;
    n -= (size_t)k;
  }
}

/* Closes the message file; keeps it (tmp/ -> new/) or removes it. */
static bool msg_finish(lab_conn *c, bool keep) {
  smtpkit_lab *L = c->lab;
  if (!L->maildir || !c->msg_name[0])
    return true;
  char tmp[PATH_MAX], dst[PATH_MAX];
  snprintf(tmp, sizeof tmp, "%s/tmp/%s", L->maildir, c->msg_name);
  snprintf(dst, sizeof dst, "%s/new/%s", L->maildir, c->msg_name);
  bool ok = c->msg_fd >= 0 && !c->msg_error;
  if (c->msg_fd >= 0)
    ok = close(c->msg_fd) == 0 && ok;
  c->msg_fd = -1;
  if (keep && ok)
    ok = rename(tmp, dst) == 0;
  if (!keep || !ok)
    unlink(tmp);
  c->msg_name[0] = '\0';
  return ok;
}

/* ---- transaction ---- */

static void reset_txn(lab_conn *c) {
  if (c->phase == PH_DATA)
    msg_finish(c, false);
  c->has_mail = false;
  c->n_rcpt = 0;
  c->from[0] = c->rcpt[0] = '\0';
}

static unsigned long size_limit(const smtpkit_lab *L) {
  return L->b->size_limit ? L->b->size_limit : DEFAULT_SIZE;
}

/* "FROM:<a@b> SIZE=12" → address copied to addr, *params after it.
 * Returns false on a syntax error. */
static bool parse_path(const char *arg, const char *kw, char *addr, size_t cap,
                       const char **params) {
  size_t k = strlen(kw);
  if (strncasecmp(arg, kw, k) != 0)
    return false;
  arg += k;
  while (*arg == ' ')
    arg++;
  if (*arg != '<')
    return false;
  const char *e = strchr(arg, '>');
  if (!e || (size_t)(e - arg - 1) >= cap)
    return false;
  memcpy(addr, arg + 1, (size_t)(e - arg - 1));
  addr[e - arg - 1] = '\0';
  *params = e + 1;
  return true;
}

static bool tls_gate(lab_conn *c) {
  if (!c->tls && c->lab->b->tls_first_reply) {
    reply(c, c->lab->b->tls_first_reply);
    return true;
  }
  return false;
}

static void cmd_mail(lab_conn *c, const char *arg) {
  smtpkit_lab *L = c->lab;
  const char *params;
  if (!c->helo_done)
    return reply(c, "503 5.5.1 Error: send HELO/EHLO first");
  if (c->has_mail)
    return reply(c, "503 5.5.1 Error: nested MAIL command");
  if (tls_gate(c))
    return;
  if (!c->authed && !L->b->mail_without_auth)
    return reply(c, "530 5.7.0 Authentication required");
  if (!parse_path(arg, "FROM:", c->from, sizeof c->from, &params))
    return reply(c, "501 5.5.4 Syntax: MAIL FROM:<address>");
  for (const char *p = params; *p;) {
    while (*p == ' ')
      p++;
    size_t k = strcspn(p, " ");
    if (!k)
      break;
    if (strncasecmp(p, "SIZE=", 5) == 0) {
      if (strtoull(p + 5, NULL, 10) > size_limit(L))
        return reply(c, "552 5.3.4 Message size exceeds fixed limit");
    } else if (strncasecmp(p, "BODY=", 5) != 0) {
      return reply(c, "555 5.5.4 Unsupported option");
    }
    p += k;
  }
  if (c->authed && L->b->mail_reply)
    return reply(c, L->b->mail_reply);
  c->has_mail = true;
  reply(c, "250 2.1.0 Ok");
}

static void cmd_rcpt(lab_conn *c, const char *arg) {
  smtpkit_lab *L = c->lab;
  const char *params;
  if (!c->has_mail)
    return reply(c, "503 5.5.1 Error: need MAIL command");
  if (tls_gate(c))
    return;
  if (!parse_path(arg, "TO:", c->rcpt, sizeof c->rcpt, &params) || !c->rcpt[0])
    return reply(c, "501 5.1.3 Bad recipient address syntax");
  if (c->n_rcpt >= MAX_RCPT)
    return reply(c, "452 4.5.3 Error: too many recipients");
  if (!c->authed && L->b->rcpt_unauth_reply)
    return reply(c, L->b->rcpt_unauth_reply);
  if (L->b->rcpt_reply)
    return reply(c, L->b->rcpt_reply);
  c->n_rcpt++;
  reply(c, "250 2.1.5 Ok");
}

static void cmd_data(lab_conn *c, const char *arg) {
  if (!c->has_mail)
    return reply(c, "503 5.5.1 Error: need RCPT command");
  if (tls_gate(c))
    return;
  if (c->n_rcpt == 0)
    return reply(c, "554 5.5.1 Error: no valid recipients");
  if (*arg)
    return reply(c, "501 5.5.4 Syntax: DATA");
  reply(c, "354 End data with <CR><LF>.<CR><LF>");
  sk_lab_data_init(&c->data);
  msg_open(c);
  c->phase = PH_DATA;
}

static void end_of_data(lab_conn *c) {
  smtpkit_lab *L = c->lab;
  c->phase = PH_COMMAND;
  if (L->b->drop_after_data) {
    msg_finish(c, false);
    lab_log(L, c, "end of data: closing without a reply (drop-after-data)");
    c->dead = true; /* no reply, no close_notify: the line just drops */
    return;
  }
  if (c->data.size > size_limit(L)) {
    msg_finish(c, false);
    reply(c, "552 5.3.4 Message size exceeds fixed limit");
  } else if (!msg_finish(c, true)) {
    reply(c, "451 4.3.0 Error: queue file write error");
  } else {
    char r[128];
    snprintf(r, sizeof r, "250 2.0.0 Ok: queued as LAB%06lX%s", ++L->seq,
             c->id);
    reply(c, r);
    L->st.messages++;
    lab_log(L, c, "message accepted: %llu bytes", c->data.size);
  }
  reset_txn(c);
}

/* ---- authentication ---- */

static const char *login_user(const smtpkit_lab *L) {
  return L->b->login_user ? L->b->login_user : L->user;
}

static void auth_reset(lab_conn *c) {
  if (c->sasl)
    gsasl_finish(c->sasl);
  c->sasl = NULL;
  c->auth_final = c->token_refused = false;
  c->phase = PH_COMMAND;
}

/* Ends an exchange: the scenario's reply wins over the verdict. */
static void auth_done(lab_conn *c, bool ok) {
  smtpkit_lab *L = c->lab;
  const char *forced = L->b->auth_reply;
  if (!forced && c->ak == AK_GSASL)
    forced = L->b->password_auth_reply;
  if (c->sasl) {
    const char *u = gsasl_property_fast(c->sasl, GSASL_AUTHID);
    if (u)
      sk_strlcpy(c->user, u, sizeof c->user);
  }
  auth_reset(c);
  if (ok && !forced) {
    c->authed = true;
    L->st.auth_ok++;
    lab_log(L, c, "AUTH %s as %s: ok", c->mech, c->user);
    return reply(c, "235 2.7.0 Authentication successful");
  }
  L->st.auth_failed++;
  lab_log(L, c, "AUTH %s as %s: refused", c->mech, c->user);
  reply(c, forced                  ? forced
           : L->b->auth_fail_reply ? L->b->auth_fail_reply
                                   : DEFAULT_FAIL);
}

static void sasl_step(lab_conn *c, const char *b64) {
  char *out = NULL;
  int rc = gsasl_step64(c->sasl, b64, &out);
  if (rc == GSASL_NEEDS_MORE || (rc == GSASL_OK && out && *out)) {
    /* A SCRAM server-final on success goes in a 334 (RFC 4954 §4); the
     * client's empty answer completes the exchange. */
    c->auth_final = rc == GSASL_OK;
    char line[8192];
    snprintf(line, sizeof line, "334 %s", out ? out : "");
    reply(c, line);
    c->phase = PH_AUTH;
  } else if (rc == GSASL_BASE64_ERROR) {
    auth_reset(c);
    reply(c, "501 5.5.2 Cannot decode response");
  } else {
    auth_done(c, rc == GSASL_OK);
  }
  if (out) {
    smtpkit_wipe(out, strlen(out));
    gsasl_free(out);
  }
}

/* Finds key=value in \x01-separated fields ("auth=Bearer t"). */
static bool field(const char *s, size_t n, const char *key, char *out,
                  size_t cap) {
  size_t k = strlen(key);
  for (size_t i = 0; i < n;) {
    const char *f = s + i;
    const char *e = memchr(f, '\x01', n - i);
    size_t len = e ? (size_t)(e - f) : n - i;
    if (len > k && memcmp(f, key, k) == 0 && len - k < cap) {
      memcpy(out, f + k, len - k);
      out[len - k] = '\0';
      return true;
    }
    i += len + 1;
  }
  return false;
}

/* XOAUTH2 ("user=U\x01auth=Bearer T\x01\x01") and OAUTHBEARER (RFC 7628
 * §3.1: "n,a=U,\x01auth=Bearer T\x01\x01"). */
static bool token_ok(lab_conn *c, const char *msg, size_t n) {
  smtpkit_lab *L = c->lab;
  char user[256] = "", auth[4096] = "";
  if (c->ak == AK_XOAUTH2) {
    field(msg, n, "user=", user, sizeof user);
  } else {
    const char *sep = memchr(msg, '\x01', n);
    size_t hlen = sep ? (size_t)(sep - msg) : n;
    const char *a = memmem(msg, hlen, ",a=", 3);
    if (a) {
      a += 3;
      size_t ulen = strcspn(a, ",\x01");
      if (ulen < sizeof user && a + ulen <= msg + hlen) {
        memcpy(user, a, ulen);
        user[ulen] = '\0';
      }
    }
    if (sep) {
      msg = sep + 1;
      n -= hlen + 1;
    }
  }
  field(msg, n, "auth=", auth, sizeof auth);
  sk_strlcpy(c->user, user, sizeof c->user);
  bool user_ok = c->ak == AK_OAUTHBEARER && !user[0]
                     ? true
                     : strcmp(user, login_user(L)) == 0;
  bool ok = user_ok && strncasecmp(auth, "Bearer ", 7) == 0 &&
            strcmp(auth + 7, L->token) == 0;
  smtpkit_wipe(auth, sizeof auth);
  return ok;
}

static void token_step(lab_conn *c, const char *b64) {
  if (c->token_refused) { /* the client answered the error challenge */
    c->token_refused = false;
    return auth_done(c, false);
  }
  size_t n = 0;
  unsigned char *msg = sk_base64_decode(b64, strlen(b64), &n);
  if (!msg) {
    auth_reset(c);
    return reply(c, "501 5.5.2 Cannot decode response");
  }
  bool ok = token_ok(c, (const char *)msg, n);
  smtpkit_wipe(msg, n);
  free(msg);
  if (ok || c->lab->b->auth_reply)
    return auth_done(c, ok);
  /* Google's and RFC 7628's way: the error as base64 JSON in a 334, then
   * the final failure after the client's (empty) answer. */
  static const char json[] = "{\"status\":\"401\",\"schemes\":\"bearer\","
                             "\"scope\":\"https://mail.google.com/\"}";
  char *enc = sk_base64_encode(json, sizeof json - 1);
  char line[256];
  snprintf(line, sizeof line, "334 %s", enc ? enc : "");
  free(enc);
  c->token_refused = true;
  c->phase = PH_AUTH;
  reply(c, line);
}

/* SCRAM-*-PLUS: the server side of channel binding, from this TLS
 * session — tls-exporter (RFC 9266) on TLS 1.3, tls-unique (RFC 5929, the
 * client's Finished message) on TLS 1.2. Only -PLUS sessions get it. */
static bool set_channel_binding(lab_conn *c) {
  size_t n = strlen(c->mech);
  if (n < 5 || strcmp(c->mech + n - 5, "-PLUS") != 0)
    return true;
  if (!c->ssl)
    return false;
  unsigned char cb[64];
  size_t len = 0;
  bool exporter = SSL_version(c->ssl) >= TLS1_3_VERSION;
  if (exporter) {
    static const char label[] = "EXPORTER-Channel-Binding";
    if (SSL_export_keying_material(c->ssl, cb, 32, label, sizeof label - 1,
                                   NULL, 0, 0) != 1)
      return false;
    len = 32;
  } else {
    len = SSL_get_peer_finished(c->ssl, cb, sizeof cb);
    if (len == 0 || len > sizeof cb)
      return false;
  }
  char *b64 = sk_base64_encode(cb, len);
  if (!b64)
    return false;
  gsasl_property_set(
      c->sasl, exporter ? GSASL_CB_TLS_EXPORTER : GSASL_CB_TLS_UNIQUE, b64);
  free(b64);
  return true;
}

static void cmd_auth(lab_conn *c, const char *arg) {
  smtpkit_lab *L = c->lab;
  if (!c->helo_done)
    return reply(c, "503 5.5.1 Error: send HELO/EHLO first");
  if (c->authed)
    return reply(c, "503 5.5.1 Error: already authenticated");
  if (c->has_mail)
    return reply(c, "503 5.5.1 Error: MAIL transaction in progress");
  if (tls_gate(c))
    return;
  const char *mechs = offered_mechs(c);
  if (!*mechs)
    return reply(c, "503 5.5.1 Error: authentication not enabled");
  size_t k = strcspn(arg, " ");
  if (!k || k >= sizeof c->mech)
    return reply(c, "501 5.5.4 Syntax: AUTH mechanism");
  memcpy(c->mech, arg, k);
  c->mech[k] = '\0';
  for (char *p = c->mech; *p; p++)
    *p = (char)toupper((unsigned char)*p);
  const char *ir = arg[k] ? arg + k + 1 : NULL;
  if (ir && strcmp(ir, "=") == 0)
    ir = ""; /* RFC 4954 §4: "=" is an empty initial response */
  if (!has_word(mechs, c->mech))
    return reply(c, "504 5.5.4 Unrecognized authentication type");
  if (!c->tls && L->b->auth_cleartext_reply)
    return reply(c, L->b->auth_cleartext_reply);
  if (L->b->weak_mechs && has_word(L->b->weak_mechs, c->mech))
    return reply(c, L->b->weak_reply);
  c->user[0] = '\0';
  if (!strcmp(c->mech, "XOAUTH2") || !strcmp(c->mech, "OAUTHBEARER")) {
    c->ak = !strcmp(c->mech, "XOAUTH2") ? AK_XOAUTH2 : AK_OAUTHBEARER;
    c->phase = PH_AUTH;
    if (!ir)
      return reply(c, "334 ");
    return token_step(c, ir);
  }
  c->ak = AK_GSASL;
  if (gsasl_server_start(L->gsasl, c->mech, &c->sasl) != GSASL_OK) {
    c->sasl = NULL;
    return reply(c, "454 4.7.0 Temporary authentication failure");
  }
  gsasl_session_hook_set(c->sasl, c);
  if (!set_channel_binding(c)) {
    auth_reset(c);
    return reply(c, "454 4.7.0 Temporary authentication failure");
  }
  c->phase = PH_AUTH;
  sasl_step(c, ir ? ir : "");
}

static void auth_response(lab_conn *c, const char *line) {
  if (strcmp(line, "*") == 0) {
    auth_reset(c);
    return reply(c, "501 5.7.0 Authentication aborted");
  }
  if (c->ak != AK_GSASL)
    return token_step(c, line);
  if (c->auth_final)
    return auth_done(c, true);
  sasl_step(c, line);
}

/* GNU SASL asks for what it needs to check a login. */
static int sasl_callback(Gsasl *ctx, Gsasl_session *s, Gsasl_property prop) {
  (void)ctx;
  lab_conn *c = gsasl_session_hook_get(s);
  if (!c)
    return GSASL_NO_CALLBACK;
  if (prop == GSASL_PASSWORD) {
    const char *authid = gsasl_property_fast(s, GSASL_AUTHID);
    if (!authid || strcmp(authid, login_user(c->lab)) != 0)
      return GSASL_NO_CALLBACK; /* unknown user: the check fails */
    return gsasl_property_set(s, GSASL_PASSWORD, c->lab->password);
  }
  return GSASL_NO_CALLBACK;
}

/* ---- greeting, EHLO, STARTTLS ---- */

static void greet(lab_conn *c) {
  smtpkit_lab *L = c->lab;
  const lab_behaviour *b = L->b;
  c->greeted = true;
  c->phase = PH_COMMAND;
  if (b->garbage_greeting) {
    static const char junk[] = "\xff\xfb\x01\xff\xfb\x03\x00\x1b[0m\x80\x9c"
                               "\x01\x02garbage\xfe\r\n";
    conn_send(c, junk, sizeof junk - 1);
    c->phase = PH_SILENT;
    return;
  }
  reply(c, b->banner ? b->banner : DEFAULT_BANNER);
  if (b->greeting_closes)
    conn_close_after_flush(c);
  else if (b->greeting_refuses)
    c->phase = PH_REFUSED;
}

static void ehlo_reply(lab_conn *c) {
  smtpkit_lab *L = c->lab;
  char line[600];
  sk_buf r = {0};
  const char *first = L->b->ehlo_name ? L->b->ehlo_name : DEFAULT_EHLO;
  sk_buf_appendf(&r, "250-%s\n250-PIPELINING\n250-SIZE %lu\n250-8BITMIME\n",
                 first, size_limit(L));
  if (starttls_offered(c))
    sk_buf_appendf(&r, "250-STARTTLS\n");
  const char *mechs = offered_mechs(c);
  if (*mechs) {
    snprintf(line, sizeof line, "250-AUTH %s\n", mechs);
    sk_buf_append(&r, line, strlen(line));
  }
  sk_buf_appendf(&r, "250 ENHANCEDSTATUSCODES");
  reply(c, r.data);
  sk_buf_free(&r);
}

static void cmd_helo(lab_conn *c, const char *arg, bool extended) {
  smtpkit_lab *L = c->lab;
  if (!*arg)
    return reply(c, extended ? "501 5.5.4 Syntax: EHLO hostname"
                             : "501 5.5.4 Syntax: HELO hostname");
  sk_strlcpy(c->helo, arg, sizeof c->helo);
  c->helo[strcspn(c->helo, " ")] = '\0';
  if (L->b->ehlo_nodot_reply && !strchr(c->helo, '.')) {
    lab_log(L, c, "EHLO name '%s' refused", c->helo);
    reply(c, L->b->ehlo_nodot_reply);
    return conn_close_after_flush(c);
  }
  reset_txn(c);
  c->helo_done = true;
  if (extended)
    return ehlo_reply(c);
  char line[600];
  snprintf(line, sizeof line, "250 %s",
           L->b->ehlo_name ? L->b->ehlo_name : DEFAULT_EHLO);
  reply(c, line);
}

static bool tls_begin(lab_conn *c) {
  c->ssl = SSL_new(c->lab->ssl_ctx);
  c->rbio = BIO_new(BIO_s_mem());
  c->wbio = BIO_new(BIO_s_mem());
  if (!c->ssl || !c->rbio || !c->wbio) {
    BIO_free(c->rbio);
    BIO_free(c->wbio);
    c->rbio = c->wbio = NULL;
    c->dead = true;
    return false;
  }
  BIO_set_mem_eof_return(c->rbio, -1);
  SSL_set_bio(c->ssl, c->rbio, c->wbio);
  SSL_set_accept_state(c->ssl);
  c->phase = PH_TLS_HANDSHAKE;
  return true;
}

static void cmd_starttls(lab_conn *c, const char *arg) {
  if (c->tls)
    return reply(c, "554 5.5.1 Error: TLS already active");
  if (!starttls_offered(c))
    return reply(c, "502 5.5.1 Error: command not implemented");
  if (*arg)
    return reply(c, "501 5.5.4 Syntax: STARTTLS");
  reply(c, "220 2.0.0 Ready to start TLS");
  if (c->in.len) {
    /* Plaintext pipelined after STARTTLS would be taken as if it came
     * over TLS: drop it (CVE-2011-0411, "NO STARTTLS"). */
    lab_log(c->lab, c, "discarded %zu bytes sent after STARTTLS", c->in.len);
    sk_buf_consume(&c->in, c->in.len);
  }
  tls_begin(c);
}

/* After a TLS handshake: greet (implicit TLS), or start over (STARTTLS). */
static void tls_ready(lab_conn *c) {
  c->tls = true;
  if (!c->greeted) {
    long long delay = c->lab->b->greeting_delay_ms;
    c->phase = PH_GREETING;
    c->greet_at = sk_now_ms() + delay;
    if (!delay)
      greet(c);
    return;
  }
  /* RFC 3207 §4.2: everything learnt before TLS is forgotten. */
  c->phase = PH_COMMAND;
  c->helo_done = false;
  c->helo[0] = '\0';
  reset_txn(c);
}

/* ---- commands ---- */

static void bad_command(lab_conn *c, const char *r) {
  if (++c->errors >= MAX_ERRORS) {
    lab_log(c->lab, c, "too many errors: closing");
    c->lab->st.dropped++;
    reply(c, "421 4.7.0 lab.smtpkit.test Error: too many errors");
    return conn_close_after_flush(c);
  }
  reply(c, r);
}

static void command(lab_conn *c, char *line, size_t n) {
  if (memchr(line, '\0', n))
    return bad_command(c, "500 5.5.2 Error: NUL byte in command");
  size_t k = strcspn(line, " ");
  const char *arg = line[k] ? line + k + 1 : "";
  while (*arg == ' ')
    arg++;
  line[k] = '\0';
  if (c->phase == PH_REFUSED) {
    if (strcasecmp(line, "QUIT") == 0) {
      reply(c, "221 2.0.0 Bye");
      return conn_close_after_flush(c);
    }
    return bad_command(c, "503 5.5.1 Bad sequence of commands");
  }
  if (!strcasecmp(line, "EHLO") || !strcasecmp(line, "HELO"))
    return cmd_helo(c, arg, toupper((unsigned char)line[0]) == 'E');
  if (!strcasecmp(line, "STARTTLS"))
    return cmd_starttls(c, arg);
  if (!strcasecmp(line, "AUTH"))
    return cmd_auth(c, arg);
  if (!strcasecmp(line, "MAIL"))
    return cmd_mail(c, arg);
  if (!strcasecmp(line, "RCPT"))
    return cmd_rcpt(c, arg);
  if (!strcasecmp(line, "DATA"))
    return cmd_data(c, arg);
  if (!strcasecmp(line, "RSET")) {
    reset_txn(c);
    return reply(c, "250 2.0.0 Ok");
  }
  if (!strcasecmp(line, "NOOP"))
    return reply(c, "250 2.0.0 Ok");
  if (!strcasecmp(line, "VRFY"))
    return reply(c, "252 2.5.2 Cannot VRFY user");
  if (!strcasecmp(line, "QUIT")) {
    reply(c, "221 2.0.0 Bye");
    return conn_close_after_flush(c);
  }
  bad_command(c, "502 5.5.2 Error: command not recognized");
}

/* Handles what is in c->in, in order. Returns true if it consumed any. */
static bool process(lab_conn *c) {
  bool progress = false;
  char line[SK_LAB_MAX_LINE + 1];
  while (!c->dead && c->in.len && c->out.len < OUT_CAP) {
    if (c->phase == PH_SILENT || c->phase == PH_CLOSING) {
      sk_buf_consume(&c->in, c->in.len);
      return true;
    }
    if (c->phase == PH_DATA) {
      char out[16384 + 2];
      size_t take = c->in.len < 16384 ? c->in.len : 16384, n;
      bool done;
      size_t used =
          sk_lab_data_scan(&c->data, c->in.data, take, out, &n, &done);
      if (c->data.size <= size_limit(c->lab))
        msg_write(c, out, n);
      sk_buf_consume(&c->in, used);
      progress = true;
      if (done)
        end_of_data(c);
      continue;
    }
    if (c->phase != PH_COMMAND && c->phase != PH_AUTH && c->phase != PH_REFUSED)
      break; /* greeting or handshake pending: keep the input */
    size_t used = 0;
    long n = sk_lab_next_line(c->in.data, c->in.len, &used);
    if (n == -1)
      break;
    if (n == -2) {
      lab_log(c->lab, c, "line longer than %d bytes: closing", SK_LAB_MAX_LINE);
      c->lab->st.dropped++;
      reply(c, "500 5.5.0 Error: line too long");
      conn_close_after_flush(c);
      return true;
    }
    memcpy(line, c->in.data, (size_t)n);
    line[n] = '\0';
    sk_buf_consume(&c->in, used);
    progress = true;
    if (c->phase == PH_AUTH)
      auth_response(c, line);
    else
      command(c, line, (size_t)n);
    smtpkit_wipe(line, (size_t)n); /* AUTH lines carry secrets */
  }
  return progress;
}

/* ---- socket I/O ---- */

static void tls_handshake(lab_conn *c) {
  ERR_clear_error();
  int r = SSL_do_handshake(c->ssl);
  tls_drain(c);
  if (r == 1)
    return tls_ready(c);
  int e = SSL_get_error(c->ssl, r);
  if (e == SSL_ERROR_WANT_READ)
    return;
  char msg[160] = "closed";
  unsigned long err = ERR_get_error();
  if (err)
    ERR_error_string_n(err, msg, sizeof msg);
  ERR_clear_error();
  lab_log(c->lab, c, "TLS handshake failed: %s", msg);
  c->close_after_flush = true; /* send the alert, then close */
  c->phase = PH_CLOSING;
}

/* Moves decrypted bytes into c->in while there is room. */
static void tls_pull(lab_conn *c) {
  if (c->phase == PH_TLS_HANDSHAKE)
    tls_handshake(c);
  if (!c->tls || c->dead)
    return;
  while (c->in.len < IN_CAP) {
    size_t room = IN_CAP - c->in.len;
    if (room > READ_CHUNK)
      room = READ_CHUNK;
    if (!sk_buf_reserve(&c->in, room)) {
      c->dead = true;
      return;
    }
    int n = SSL_read(c->ssl, c->in.data + c->in.len, (int)room);
    if (n > 0) {
      c->in.len += (size_t)n;
      c->in.data[c->in.len] = '\0';
      continue;
    }
    int e = SSL_get_error(c->ssl, n);
    ERR_clear_error();
    if (e != SSL_ERROR_WANT_READ)
      c->eof = true; /* close_notify or a TLS error */
    break;
  }
  tls_drain(c); /* SSL_read may answer (key updates) */
}

static void conn_read(lab_conn *c) {
  smtpkit_lab *L = c->lab;
  char buf[16384];
  for (int rounds = 0; rounds < 8; rounds++) {
    /* A few KB at a time: buffers grow with what clients send, not with
     * how many clients there are. */
    size_t room = c->ssl ? sizeof buf : IN_CAP - c->in.len;
    if (room > READ_CHUNK)
      room = READ_CHUNK;
    if (c->ssl && BIO_ctrl_pending(c->rbio) >= RAW_CAP)
      break;
    if (!room)
      break;
    ssize_t n;
    if (c->ssl) {
      n = recv(c->fd, buf, room, MSG_DONTWAIT);
    } else {
      if (!sk_buf_reserve(&c->in, room)) {
        c->dead = true;
        return;
      }
      n = recv(c->fd, c->in.data + c->in.len, room, MSG_DONTWAIT);
    }
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      break;
    if (n <= 0) {
      c->eof = true;
      break;
    }
    c->deadline = sk_now_ms() + L->idle_ms;
    if (c->greet_at > sk_now_ms())
      c->deadline = c->greet_at + L->idle_ms;
    if (c->ssl) {
      BIO_write(c->rbio, buf, (int)n);
    } else {
      c->in.len += (size_t)n;
      c->in.data[c->in.len] = '\0';
    }
    if ((size_t)n < room)
      break;
  }
}

static void conn_flush(lab_conn *c) {
  while (c->out.len && !c->dead) {
    ssize_t n =
        send(c->fd, c->out.data, c->out.len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      sk_buf_consume(&c->out, (size_t)n);
      continue;
    }
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return;
    c->dead = true;
  }
  if (!c->out.len && c->close_after_flush)
    c->dead = true;
}

/* Reads, handles and answers until nothing more can be done now. */
static void conn_pump(lab_conn *c) {
  for (int rounds = 0; rounds < 64 && !c->dead; rounds++) {
    if (c->ssl)
      tls_pull(c);
    bool progress = process(c);
    if (!progress || !c->ssl || !c->tls)
      break;
    if (!SSL_pending(c->ssl) && !BIO_ctrl_pending(c->rbio))
      break;
  }
  if (!c->dead && c->in.len >= IN_CAP && c->phase != PH_DATA) {
    /* Input nobody will read: greeting pending, or a flood. */
    lab_log(c->lab, c, "too much input without an answer: closing");
    c->lab->st.dropped++;
    c->dead = true;
  }
  if (c->eof && !c->dead) {
    c->close_after_flush = true;
    c->phase = PH_CLOSING;
  }
  conn_flush(c);
}

static void conn_free(smtpkit_lab *L, lab_conn *c) {
  if (c->sasl)
    gsasl_finish(c->sasl);
  if (c->msg_name[0]) {
    c->msg_error = true;
    msg_finish(c, false);
  }
  if (c->ssl)
    SSL_free(c->ssl); /* and both BIOs */
  if (c->fd >= 0)
    close(c->fd);
  sk_buf_free(&c->in);
  sk_buf_free(&c->out);
  free(c);
  L->st.active--;
}

static void conn_new(smtpkit_lab *L, int fd, const struct sockaddr *sa,
                     bool tls_first) {
  lab_conn *c = calloc(1, sizeof *c);
  if (!c ||
      (L->n_conns == L->cap_conns &&
       !(L->conns = realloc(L->conns, (L->cap_conns = L->cap_conns * 2 + 16) *
                                          sizeof *L->conns)))) {
    free(c);
    close(fd);
    return;
  }
  L->conns[L->n_conns++] = c;
  L->st.connections++;
  if (++L->st.active > L->st.peak)
    L->st.peak = L->st.active;
  c->lab = L;
  c->fd = fd;
  c->msg_fd = -1;
  c->tls_first = tls_first;
  if (sa->sa_family == AF_INET)
    inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, c->ip,
              sizeof c->ip);
  else if (sa->sa_family == AF_INET6)
    inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, c->ip,
              sizeof c->ip);
  unsigned char rnd[6];
  if (RAND_bytes(rnd, sizeof rnd) != 1)
    memset(rnd, 0, sizeof rnd);
  snprintf(c->id, sizeof c->id, "%02x%02x%02x%02x%02x%02xsm%lu", rnd[0], rnd[1],
           rnd[2], rnd[3], rnd[4], rnd[5], L->st.connections);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  long long now = sk_now_ms();
  c->deadline = now + L->idle_ms;
  lab_log(L, c, "connected (%s)", tls_first ? "TLS" : "plain");
  if (tls_first) {
    tls_begin(c);
    return;
  }
  c->phase = PH_GREETING;
  c->greet_at = now + L->b->greeting_delay_ms;
  c->deadline = c->greet_at + L->idle_ms;
  if (!L->b->greeting_delay_ms) {
    greet(c);
    conn_flush(c);
  }
}

static void accept_some(smtpkit_lab *L, listener *l) {
  for (int i = 0; i < ACCEPTS_PER_ROUND; i++) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int fd = accept4(l->fd, (struct sockaddr *)&ss, &sl,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
          errno == ENOMEM)
        l->paused_until = sk_now_ms() + 200;
      return;
    }
    if (L->n_conns >= L->max_conns) {
      static const char full[] = "421 4.7.0 Too many connections, try again "
                                 "later\r\n";
      if (!l->tls_first)
        (void)!send(fd, full, sizeof full - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
      close(fd);
      L->st.dropped++;
      continue;
    }
    conn_new(L, fd, (struct sockaddr *)&ss, l->tls_first);
  }
}

/* ---- timers ---- */

static void conn_timers(smtpkit_lab *L, lab_conn *c, long long now) {
  if (c->dead)
    return;
  if (!c->greeted && c->phase == PH_GREETING && now >= c->greet_at) {
    greet(c);
    conn_pump(c);
    return;
  }
  if (now >= c->deadline) {
    lab_log(L, c, "idle: closing");
    L->st.dropped++;
    if (c->phase == PH_COMMAND || c->phase == PH_AUTH || c->phase == PH_DATA)
      reply(c, "421 4.4.2 lab.smtpkit.test Error: timeout exceeded");
    conn_close_after_flush(c);
    conn_flush(c);
    c->dead = true;
  }
}

static long long next_timer(const lab_conn *c) {
  if (!c->greeted && c->phase == PH_GREETING && c->greet_at < c->deadline)
    return c->greet_at;
  return c->deadline;
}

/* ---- the loop ---- */

bool smtpkit_lab_run_once(smtpkit_lab *L, int timeout_ms) {
  if (L->stopping || !L->started)
    return false;
  long long now = sk_now_ms();
  long long wake = now + (timeout_ms < 0 ? 3600000 : timeout_ms);
  size_t n = L->n_conns;
  if (L->cap_pfds < n + 3) {
    struct pollfd *p = realloc(L->pfds, (n + 3) * 2 * sizeof *p);
    if (!p)
      return true;
    L->pfds = p;
    L->cap_pfds = (n + 3) * 2;
  }
  struct pollfd *pf = L->pfds;
  pf[0] = (struct pollfd){.fd = L->pipe[0], .events = POLLIN};
  for (int i = 0; i < 2; i++) {
    listener *l = &L->lis[i];
    bool paused = l->paused_until > now;
    pf[1 + i] = (struct pollfd){.fd = paused ? -1 : l->fd, .events = POLLIN};
    if (paused && l->paused_until < wake)
      wake = l->paused_until;
  }
  for (size_t i = 0; i < n; i++) {
    lab_conn *c = L->conns[i];
    short ev = 0;
    if (!c->close_after_flush && c->in.len < IN_CAP && c->out.len < OUT_CAP &&
        (!c->ssl || BIO_ctrl_pending(c->rbio) < RAW_CAP))
      ev |= POLLIN;
    if (c->out.len)
      ev |= POLLOUT;
    pf[3 + i] = (struct pollfd){.fd = c->fd, .events = ev};
    long long t = next_timer(c);
    if (t < wake)
      wake = t;
  }
  long long wait = wake - now;
  int rc = poll(pf, n + 3, wait < 0 ? 0 : (int)wait);
  if (rc < 0 && errno != EINTR)
    return true;
  if (rc > 0 && (pf[0].revents & POLLIN)) {
    char b[64];
    while (read(L->pipe[0], b, sizeof b) > 0) {
    }
    L->stopping = true;
    return false;
  }
  for (size_t i = 0; rc > 0 && i < n; i++) {
    lab_conn *c = L->conns[i];
    short re = pf[3 + i].revents;
    if (!re)
      continue;
    if (re & POLLOUT)
      conn_flush(c);
    if (re & (POLLIN | POLLHUP | POLLERR))
      conn_read(c);
    conn_pump(c);
  }
  for (int i = 0; rc > 0 && i < 2; i++)
    if (pf[1 + i].revents & POLLIN)
      accept_some(L, &L->lis[i]);
  now = sk_now_ms();
  size_t k = 0;
  for (size_t i = 0; i < L->n_conns; i++) {
    lab_conn *c = L->conns[i];
    conn_timers(L, c, now);
    if (c->dead) {
      lab_log(L, c, "closed");
      conn_free(L, c);
    } else {
      L->conns[k++] = c;
    }
  }
  L->n_conns = k;
  return true;
}

void smtpkit_lab_run(smtpkit_lab *L) {
  while (smtpkit_lab_run_once(L, 1000)) {
  }
}

void smtpkit_lab_stop(smtpkit_lab *L) {
  int saved = errno;
  if (L && L->pipe[1] >= 0)
    (void)!write(L->pipe[1], "x", 1);
  errno = saved;
}

/* ---- set-up ---- */

void smtpkit_lab_options_init(smtpkit_lab_options *o) {
  memset(o, 0, sizeof *o);
}

static bool make_maildir(const char *dir, char *err, size_t errlen) {
  static const char *const subs[] = {"", "/tmp", "/new", "/cur"};
  for (size_t i = 0; i < 4; i++) {
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s%s", dir, subs[i]);
    if (mkdir(p, 0700) != 0 && errno != EEXIST) {
      snprintf(err, errlen, "cannot create Maildir %s: %s", p, strerror(errno));
      return false;
    }
  }
  return true;
}

smtpkit_lab *smtpkit_lab_new(const smtpkit_lab_options *o, char *err,
                             size_t errlen) {
  const char *name = o->scenario ? o->scenario : "ok";
  const lab_scenario_def *sc = sk_lab_scenario_def(name);
  if (!sc) {
    snprintf(err, errlen, "no scenario named '%s' (see --list)", name);
    return NULL;
  }
  if ((o->cert_file == NULL) != (o->key_file == NULL) && !o->cert_file) {
    snprintf(err, errlen, "a key file needs its certificate file");
    return NULL;
  }
  smtpkit_lab *L = calloc(1, sizeof *L);
  if (!L) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  L->sc = sc;
  L->b = &sc->b;
  L->pipe[0] = L->pipe[1] = -1;
  L->lis[0].fd = L->lis[1].fd = -1;
  L->user = sk_strdup(o->user ? o->user : "alice");
  L->password = sk_strdup(o->password ? o->password : "correct horse");
  L->token = sk_strdup(o->token ? o->token : "good-token");
  L->maildir = sk_strdup(o->maildir);
  L->listen = sk_strdup(o->listen ? o->listen : "127.0.0.1:0");
  L->tls_listen = sk_strdup(o->tls_listen ? o->tls_listen : "127.0.0.1:0");
  L->idle_ms = o->idle_timeout_ms ? o->idle_timeout_ms : 120000;
  L->max_conns = o->max_connections ? o->max_connections : 1000;
  L->log = o->log;
  if (!L->user || !L->password || !L->token || !L->listen || !L->tls_listen) {
    snprintf(err, errlen, "out of memory");
    smtpkit_lab_free(L);
    return NULL;
  }
  if (o->ca_out) {
    sk_strlcpy(L->ca_path, o->ca_out, sizeof L->ca_path);
  } else if (!o->cert_file) {
    const char *t = getenv("TMPDIR");
    snprintf(L->tmpdir, sizeof L->tmpdir, "%s/smtpkit-lab-XXXXXX",
             t && *t ? t : "/tmp");
    if (!mkdtemp(L->tmpdir)) {
      snprintf(err, errlen, "cannot create a temporary directory: %s",
               strerror(errno));
      L->tmpdir[0] = '\0';
      smtpkit_lab_free(L);
      return NULL;
    }
    snprintf(L->ca_path, sizeof L->ca_path, "%s/ca.pem", L->tmpdir);
  }
  if (o->cert_file)
    sk_strlcpy(L->ca_path, o->cert_file, sizeof L->ca_path);
  L->ssl_ctx =
      sk_tls_server_ctx(o->cert_file, o->key_file, L->ca_path, err, errlen);
  if (!L->ssl_ctx)
    goto fail;
  if (o->tls_max_version == 12)
    SSL_CTX_set_max_proto_version(L->ssl_ctx, TLS1_2_VERSION);
  if (o->mechanisms && !(L->mechs = sk_strdup(o->mechanisms)))
    goto fail;
  if (L->maildir && !make_maildir(L->maildir, err, errlen))
    goto fail;
  if (gsasl_init(&L->gsasl) != GSASL_OK) {
    L->gsasl = NULL;
    snprintf(err, errlen, "cannot initialise GNU SASL");
    goto fail;
  }
  gsasl_callback_set(L->gsasl, sasl_callback);
  if (pipe2(L->pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
    snprintf(err, errlen, "pipe: %s", strerror(errno));
    goto fail;
  }
  return L;
fail:
  smtpkit_lab_free(L);
  return NULL;
}

/* "127.0.0.1:25", "[::1]:25", ":25" or "25". */
static bool split_addr(const char *s, char *host, size_t hcap, char *port,
                       size_t pcap) {
  const char *colon = strrchr(s, ':');
  const char *h = s, *p = colon ? colon + 1 : s;
  size_t hn = colon ? (size_t)(colon - s) : 0;
  if (colon && s[0] == '[') {
    if (colon == s || colon[-1] != ']')
      return false;
    h = s + 1;
    hn = (size_t)(colon - s - 2);
  } else if (colon && memchr(s, ':', hn)) {
    return false; /* IPv6 without brackets */
  }
  if (hn >= hcap || strlen(p) >= pcap || !*p ||
      strspn(p, "0123456789") != strlen(p))
    return false;
  memcpy(host, h, hn);
  host[hn] = '\0';
  if (!hn)
    snprintf(host, hcap, "127.0.0.1");
  snprintf(port, pcap, "%s", p);
  return true;
}

static bool bind_listener(listener *l, const char *spec, char *err,
                          size_t errlen) {
  char host[256], port[16];
  if (!split_addr(spec, host, sizeof host, port, sizeof port)) {
    snprintf(err, errlen, "bad address '%s' (want ADDR:PORT)", spec);
    return false;
  }
  struct addrinfo hints = {.ai_family = AF_UNSPEC,
                           .ai_socktype = SOCK_STREAM,
                           .ai_flags = AI_PASSIVE};
  struct addrinfo *res = NULL;
  int rc = getaddrinfo(host, port, &hints, &res);
  if (rc != 0) {
    snprintf(err, errlen, "cannot resolve '%s': %s", host, gai_strerror(rc));
    return false;
  }
  int e = 0;
  for (struct addrinfo *ai = res; ai && l->fd < 0; ai = ai->ai_next) {
    int fd = socket(ai->ai_family,
                    ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0) {
      e = errno;
      continue;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 1024) == 0) {
      l->fd = fd;
      break;
    }
    e = errno;
    close(fd);
  }
  freeaddrinfo(res);
  if (l->fd < 0) {
    snprintf(err, errlen, "cannot listen on %s: %s", spec, strerror(e));
    return false;
  }
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  char ip[INET6_ADDRSTRLEN] = "?";
  getsockname(l->fd, (struct sockaddr *)&ss, &sl);
  if (ss.ss_family == AF_INET6) {
    const struct sockaddr_in6 *in = (const void *)&ss;
    inet_ntop(AF_INET6, &in->sin6_addr, ip, sizeof ip);
    l->port = ntohs(in->sin6_port);
    snprintf(l->addr, sizeof l->addr, "[%s]:%u", ip, l->port);
  } else {
    const struct sockaddr_in *in = (const void *)&ss;
    inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
    l->port = ntohs(in->sin_port);
    snprintf(l->addr, sizeof l->addr, "%s:%u", ip, l->port);
  }
  return true;
}

bool smtpkit_lab_start(smtpkit_lab *L, char *err, size_t errlen) {
  if (L->started)
    return true;
  const char *specs[2] = {L->listen, L->tls_listen};
  L->lis[0].tls_first = L->b->plain_speaks == LAB_SPEAK_TLS;
  L->lis[1].tls_first = L->b->tls_speaks != LAB_SPEAK_SMTP;
  for (int i = 0; i < 2; i++)
    if (*specs[i] && !bind_listener(&L->lis[i], specs[i], err, errlen))
      return false;
  L->started = true;
  lab_log(L, NULL, "listening plain=%s tls=%s",
          L->lis[0].fd >= 0 ? L->lis[0].addr : "-",
          L->lis[1].fd >= 0 ? L->lis[1].addr : "-");
  return true;
}

const char *smtpkit_lab_address(const smtpkit_lab *L, bool tls) {
  const listener *l = &L->lis[tls ? 1 : 0];
  return l->fd >= 0 ? l->addr : NULL;
}

unsigned smtpkit_lab_port(const smtpkit_lab *L, bool tls) {
  const listener *l = &L->lis[tls ? 1 : 0];
  return l->fd >= 0 ? l->port : 0;
}

const char *smtpkit_lab_ca_file(const smtpkit_lab *L) {
  return L->ca_path[0] ? L->ca_path : NULL;
}

void smtpkit_lab_get_stats(const smtpkit_lab *L, smtpkit_lab_stats *out) {
  *out = L->st;
}

void smtpkit_lab_free(smtpkit_lab *L) {
  if (!L)
    return;
  for (size_t i = 0; i < L->n_conns; i++)
    conn_free(L, L->conns[i]);
  free(L->conns);
  free(L->pfds);
  for (int i = 0; i < 2; i++)
    if (L->lis[i].fd >= 0)
      close(L->lis[i].fd);
  for (int i = 0; i < 2; i++)
    if (L->pipe[i] >= 0)
      close(L->pipe[i]);
  if (L->gsasl)
    gsasl_done(L->gsasl);
  if (L->ssl_ctx)
    SSL_CTX_free(L->ssl_ctx);
  if (L->tmpdir[0]) {
    unlink(L->ca_path);
    rmdir(L->tmpdir);
  }
  if (L->password)
    smtpkit_wipe(L->password, strlen(L->password));
  if (L->token)
    smtpkit_wipe(L->token, strlen(L->token));
  free(L->user);
  free(L->password);
  free(L->token);
  free(L->mechs);
  free(L->maildir);
  free(L->listen);
  free(L->tls_listen);
  free(L);
}
