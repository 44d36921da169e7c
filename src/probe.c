/*
 * probe.c — what an SMTP port really speaks, found by two connections at
 * once (doctor's probes).
 *
 * RFC 5321 §3.1 and §4.1.1.1 (greeting, EHLO, HELO fallback), RFC 3207
 * (STARTTLS; capabilities read again after it, bytes after its 220 are an
 * injection), RFC 8314 §3 (implicit TLS on 465), RFC 4954 §3 (AUTH
 * advertised), RFC 6125 (host-name check, done by tls.c).
 *
 * Each probe runs a "plain" leg (greeting, EHLO, STARTTLS, EHLO) and a
 * "tls" leg (handshake, greeting, EHLO) in two threads. The calling thread
 * monitors them: it reports progress, stops a plain leg that still waits
 * for a greeting one second after the TLS leg was greeted (the port speaks
 * TLS at once), and, once some port is fit for submission, gives ports
 * still silent two more seconds. Every wait is bounded by the run's
 * deadline; a cancelled leg is woken by shutdown() on its socket.
 *
 * Judging a probe (sk_probe_judge) turns what the legs saw into a cause
 * through the classifier (classify.c); nothing here decides a cause.
 */
#define _GNU_SOURCE
#include "probe.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PLAIN_GRACE_MS 1000  /* plain greeting wait once TLS greeted */
#define SILENT_GRACE_MS 2000 /* other ports, once one port works */
#define QUIT_WAIT_MS 1000

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static void leg_init(sk_leg *l, bool tls_first) {
  memset(l, 0, sizeof *l);
  l->tls_first = tls_first;
  l->fd = -1;
  atomic_init(&l->phase, SK_LEG_IDLE);
  atomic_init(&l->cancel, false);
  pthread_mutex_init(&l->fd_lock, NULL);
}

static void leg_free(sk_leg *l) {
  sk_reply_clear(&l->greeting);
  sk_reply_clear(&l->refusal);
  sk_caps_free(&l->caps_before);
  sk_caps_free(&l->caps_after);
  pthread_mutex_destroy(&l->fd_lock);
}

void sk_probe_init(sk_probe *p, const char *host, unsigned port) {
  memset(p, 0, sizeof *p);
  sk_strlcpy(p->host, host, sizeof p->host);
  p->port = port;
  leg_init(&p->plain, false);
  leg_init(&p->tls, true);
}

void sk_probe_free(sk_probe *p) {
  leg_free(&p->plain);
  leg_free(&p->tls);
}

void sk_probe_default_helo(const char *local_literal, char *out, size_t cap) {
  char name[256] = "";
  if (gethostname(name, sizeof name - 1) == 0 && strchr(name, '.') &&
      strncmp(name, "localhost", 9) != 0) {
    sk_strlcpy(out, name, cap);
    return;
  }
  /* No canonical-name look-up here: it could block past the deadline. */
  sk_strlcpy(out,
             local_literal && *local_literal ? local_literal : "[127.0.0.1]",
             cap);
}

/* ---- one leg ---- */

typedef struct leg_run {
  sk_probe *p;
  sk_leg *leg;
  const sk_probe_conf *conf;
  sk_conn c;
  sk_reply_parser rp;
} leg_run;

static void leg_log(leg_run *r, char dir, const char *text, size_t n) {
  if (!r->conf->transcript)
    return;
  char line[700];
  int k = snprintf(line, sizeof line, "[%s port %u, %s] %.*s", r->p->host,
                   r->p->port, r->leg->tls_first ? "TLS first" : "plain",
                   (int)(n > 600 ? 600 : n), text);
  if (k < 0)
    return;
  pthread_mutex_lock(&log_lock);
  r->conf->transcript(r->conf->transcript_ctx, dir, line,
                      (size_t)k < sizeof line ? (size_t)k : sizeof line - 1);
  pthread_mutex_unlock(&log_lock);
}

static void leg_logf(leg_run *r, char dir, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void leg_logf(leg_run *r, char dir, const char *fmt, ...) {
  char text[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  if (n > 0)
    leg_log(r, dir, text, strlen(text));
}

static void log_lines(leg_run *r, char dir, const char *text) {
  for (int i = 0; text && *text && i < 64; i++) {
    size_t n = strcspn(text, "\n");
    leg_log(r, dir, text, n);
    text += n + (text[n] == '\n');
  }
}

static bool cancelled(leg_run *r) { return atomic_load(&r->leg->cancel); }

static void set_phase(leg_run *r, sk_leg_phase ph) {
  atomic_store(&r->leg->phase, ph);
}

/* Records why the leg stops; a cancelled leg says why it was stopped. */
static void stop(leg_run *r, sk_event ev, smtpkit_stage stage,
                 const char *detail) {
  sk_leg *l = r->leg;
  if (cancelled(r)) {
    l->cancelled = true;
    pthread_mutex_lock(&l->fd_lock);
    sk_strlcpy(l->detail, l->cancel_reason, sizeof l->detail);
    pthread_mutex_unlock(&l->fd_lock);
    ev = !l->connected                     ? SK_EV_CONNECT_TIMEOUT
         : stage == SMTPKIT_STAGE_GREETING ? SK_EV_GREETING_TIMEOUT
                                           : SK_EV_TIMEOUT;
  } else if (detail) {
    sk_strlcpy(l->detail, detail, sizeof l->detail);
  }
  l->ev = ev;
  l->ev_stage = stage;
  leg_logf(r, '*', "stopped at %s: %s", smtpkit_stage_name(stage), l->detail);
}

static bool fill_addr(const char *addr, unsigned port,
                      struct sockaddr_storage *ss, socklen_t *len) {
  memset(ss, 0, sizeof *ss);
  struct sockaddr_in *in4 = (void *)ss;
  struct sockaddr_in6 *in6 = (void *)ss;
  if (inet_pton(AF_INET, addr, &in4->sin_addr) == 1) {
    in4->sin_family = AF_INET;
    in4->sin_port = htons((uint16_t)port);
    *len = sizeof *in4;
    return true;
  }
  if (inet_pton(AF_INET6, addr, &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons((uint16_t)port);
    *len = sizeof *in6;
    return true;
  }
  return false;
}

static void register_fd(leg_run *r, int fd) {
  pthread_mutex_lock(&r->leg->fd_lock);
  r->leg->fd = fd;
  if (atomic_load(&r->leg->cancel) && fd >= 0)
    shutdown(fd, SHUT_RDWR);
  pthread_mutex_unlock(&r->leg->fd_lock);
}

/* A non-blocking connect to one address, waiting in short slices so a
 * cancel is noticed. Returns 0 or an errno value. */
static int connect_addr(leg_run *r, const char *addr) {
  struct sockaddr_storage ss;
  socklen_t len;
  if (!fill_addr(addr, r->p->port, &ss, &len))
    return EINVAL;
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return errno;
  register_fd(r, fd);
  int err = 0;
  if (connect(fd, (struct sockaddr *)&ss, len) != 0) {
    err = errno == EINPROGRESS ? ETIMEDOUT : errno;
    for (int i = 0; err == ETIMEDOUT && i < 100000; i++) {
      long long left = r->conf->deadline - sk_now_ms();
      if (left <= 0 || cancelled(r))
        break;
      struct pollfd pf = {.fd = fd, .events = POLLOUT};
      int n = poll(&pf, 1, left < 100 ? (int)left : 100);
      if (n > 0) {
        socklen_t el = sizeof err;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0)
          err = errno;
      } else if (n < 0 && errno != EINTR) {
        err = errno;
      }
    }
  }
  if (err) {
    register_fd(r, -1);
    close(fd);
    return err;
  }
  r->c.fd = fd;
  snprintf(r->c.peer, sizeof r->c.peer,
           ss.ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u", addr, r->p->port);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct sockaddr_storage me;
  socklen_t ml = sizeof me;
  char ip[INET6_ADDRSTRLEN] = "";
  if (getsockname(fd, (struct sockaddr *)&me, &ml) == 0) {
    bool v6 = me.ss_family == AF_INET6;
    inet_ntop(me.ss_family,
              v6 ? (void *)&((struct sockaddr_in6 *)&me)->sin6_addr
                 : (void *)&((struct sockaddr_in *)&me)->sin_addr,
              ip, sizeof ip);
    snprintf(r->leg->local_literal, sizeof r->leg->local_literal,
             v6 ? "[IPv6:%s]" : "[%s]", ip);
  }
  return 0;
}

static bool leg_connect(leg_run *r) {
  set_phase(r, SK_LEG_CONNECTING);
  int err = ENOENT;
  for (size_t i = 0; i < r->p->n_addrs; i++) {
    err = connect_addr(r, r->p->addrs[i]);
    if (err == 0 || cancelled(r) || sk_now_ms() >= r->conf->deadline)
      break;
  }
  if (err == 0) {
    r->leg->connected = true;
    leg_logf(r, '*', "connected to %s", r->c.peer);
    return true;
  }
  char d[400];
  snprintf(d, sizeof d, "connect to %s port %u: %s", r->p->host, r->p->port,
           err == ETIMEDOUT ? "no answer (timed out)" : strerror(err));
  stop(r, err == ECONNREFUSED ? SK_EV_REFUSED : SK_EV_CONNECT_TIMEOUT,
       SMTPKIT_STAGE_CONNECT, d);
  return false;
}

/* Reads one reply before the deadline. */
static sk_event read_reply(leg_run *r, smtpkit_reply *out, const char **why) {
  r->c.deadline = r->conf->deadline;
  for (int reads = 0; reads < 4096; reads++) {
    char *raw = NULL;
    int st = sk_reply_parser_next(&r->rp, out, &raw);
    if (st == SK_RP_REPLY) {
      log_lines(r, 'S', raw);
      free(raw);
      return SK_EV_NONE;
    }
    if (st == SK_RP_ERROR) {
      snprintf(r->c.detail, sizeof r->c.detail, "malformed reply: %s",
               r->rp.error);
      *why = r->c.detail;
      return SK_EV_GARBLED;
    }
    char buf[8192];
    long n = sk_conn_read(&r->c, buf, sizeof buf);
    if (n > 0 && !sk_reply_parser_feed(&r->rp, buf, (size_t)n)) {
      snprintf(r->c.detail, sizeof r->c.detail, "malformed reply: %s",
               r->rp.error);
      *why = r->c.detail;
      return SK_EV_GARBLED;
    }
    if (n > 0)
      continue;
    *why = n == -1 ? "no reply in time" : "the server closed the connection";
    return n == -1 ? SK_EV_TIMEOUT : SK_EV_CLOSED;
  }
  *why = "reply too long";
  return SK_EV_GARBLED;
}

static bool send_line(leg_run *r, const char *line) {
  char buf[600];
  int n = snprintf(buf, sizeof buf, "%s\r\n", line);
  leg_log(r, 'C', line, strlen(line));
  r->c.deadline = r->conf->deadline;
  return n > 0 && sk_conn_write(&r->c, buf, (size_t)n);
}

/* Sends a command and reads its reply; false (leg stopped) on failure. */
static bool command(leg_run *r, const char *line, smtpkit_reply *out,
                    smtpkit_stage stage) {
  if (!send_line(r, line)) {
    stop(r, SK_EV_CLOSED, stage, r->c.detail);
    return false;
  }
  const char *why = NULL;
  sk_event ev = read_reply(r, out, &why);
  if (ev != SK_EV_NONE) {
    stop(r, ev, stage, why);
    return false;
  }
  return true;
}

static bool greeting(leg_run *r) {
  set_phase(r, SK_LEG_GREETING);
  const char *why = NULL;
  sk_event ev = read_reply(r, &r->leg->greeting, &why);
  if (ev == SK_EV_TIMEOUT) {
    ev = SK_EV_GREETING_TIMEOUT;
    why = "connected, but no greeting arrived in time";
  }
  if (ev != SK_EV_NONE) {
    stop(r, ev, SMTPKIT_STAGE_GREETING, why);
    return false;
  }
  return r->leg->greeting.code == 220;
}

/* EHLO (HELO when EHLO is not known); keeps the capabilities. */
static bool ehlo(leg_run *r, bool after_tls) {
  set_phase(r, SK_LEG_EHLO);
  char name[256], line[300];
  if (r->conf->helo)
    sk_strlcpy(name, r->conf->helo, sizeof name);
  else
    sk_probe_default_helo(r->leg->local_literal, name, sizeof name);
  snprintf(line, sizeof line, "EHLO %s", name);
  smtpkit_reply rep = {0};
  if (!command(r, line, &rep, SMTPKIT_STAGE_EHLO))
    return false;
  sk_caps *caps = after_tls ? &r->leg->caps_after : &r->leg->caps_before;
  if (rep.code == 500 || rep.code == 502) {
    sk_reply_clear(&rep);
    snprintf(line, sizeof line, "HELO %s", name);
    if (!command(r, line, &rep, SMTPKIT_STAGE_EHLO))
      return false;
    if (rep.code == 250) {
      sk_reply_clear(&rep);
      memset(caps, 0, sizeof *caps);
      *(after_tls ? &r->leg->got_caps_after : &r->leg->got_caps_before) = true;
      return true;
    }
  }
  if (rep.code != 250) {
    r->leg->refusal = rep;
    r->leg->refusal_stage = SMTPKIT_STAGE_EHLO;
    stop(r, SK_EV_NONE, SMTPKIT_STAGE_EHLO, "EHLO refused");
    return false;
  }
  size_t first = strcspn(rep.text ? rep.text : "", "\n");
  snprintf(r->leg->ehlo_line, sizeof r->leg->ehlo_line, "%.*s", (int)first,
           rep.text ? rep.text : "");
  sk_caps_parse(caps, &rep);
  sk_reply_clear(&rep);
  *(after_tls ? &r->leg->got_caps_after : &r->leg->got_caps_before) = true;
  return true;
}

static bool handshake(leg_run *r, smtpkit_stage stage) {
  set_phase(r, SK_LEG_HANDSHAKE);
  r->c.deadline = r->conf->deadline;
  sk_event ev = sk_tls_start(&r->c, r->conf->tls_ctx, r->p->host, false);
  if (ev != SK_EV_NONE) {
    sk_leg *l = r->leg;
    if (ev == SK_EV_TLS_PLAIN_BANNER) {
      l->banner_on_tls = true;
      size_t k = 0;
      for (size_t i = 0;
           i < r->c.first_raw_len && k + 1 < sizeof l->banner_start; i++) {
        unsigned char ch = r->c.first_raw[i];
        if (ch == '\r' || ch == '\n')
          break;
        l->banner_start[k++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
      }
      l->banner_start[k] = '\0';
    }
    stop(r, ev, stage, r->c.detail);
    return false;
  }
  r->leg->tls_ok = true;
  sk_strlcpy(r->leg->tls_version, r->c.tls_version, sizeof r->leg->tls_version);
  r->leg->got_peer = sk_tls_peer_info(&r->c, &r->leg->peer);
  leg_logf(r, '*', "TLS established: %s; certificate %s%s%s", r->c.tls_version,
           r->leg->peer.verified ? "verified" : "NOT verified",
           r->leg->peer.verified ? "" : ": ", r->leg->peer.verify_error);
  return true;
}

static bool starttls(leg_run *r) {
  set_phase(r, SK_LEG_STARTTLS);
  smtpkit_reply rep = {0};
  if (!command(r, "STARTTLS", &rep, SMTPKIT_STAGE_STARTTLS))
    return false;
  if (rep.code != 220) {
    r->leg->refusal = rep;
    r->leg->refusal_stage = SMTPKIT_STAGE_STARTTLS;
    stop(r, SK_EV_NONE, SMTPKIT_STAGE_STARTTLS, "STARTTLS refused");
    return false;
  }
  sk_reply_clear(&rep);
  if (sk_reply_parser_pending(&r->rp) || sk_conn_has_unread(&r->c)) {
    stop(r, SK_EV_INJECTION, SMTPKIT_STAGE_STARTTLS,
         "the server sent data after its 220 to STARTTLS and before the "
         "TLS handshake (response injection)");
    return false;
  }
  r->leg->starttls_done = true;
  return handshake(r, SMTPKIT_STAGE_STARTTLS);
}

static void quit(leg_run *r) {
  long long saved = r->conf->deadline, soon = sk_now_ms() + QUIT_WAIT_MS;
  char buf[] = "QUIT\r\n";
  leg_log(r, 'C', "QUIT", 4);
  r->c.deadline = soon < saved ? soon : saved;
  if (!sk_conn_write(&r->c, buf, sizeof buf - 1))
    return;
  for (int i = 0; i < 8; i++) {
    smtpkit_reply rep = {0};
    char *raw = NULL;
    if (sk_reply_parser_next(&r->rp, &rep, &raw) == SK_RP_REPLY) {
      log_lines(r, 'S', raw);
      free(raw);
      sk_reply_clear(&rep);
      return;
    }
    char tmp[1024];
    long n = sk_conn_read(&r->c, tmp, sizeof tmp);
    if (n <= 0 || !sk_reply_parser_feed(&r->rp, tmp, (size_t)n))
      return;
  }
}

static void run_plain(leg_run *r) {
  if (!greeting(r) || !ehlo(r, false))
    return;
  if (r->leg->caps_before.starttls) {
    if (!starttls(r) || !ehlo(r, true))
      return;
  }
  quit(r);
}

static void run_tls_first(leg_run *r) {
  if (!handshake(r, SMTPKIT_STAGE_CONNECT) || !greeting(r) || !ehlo(r, true))
    return;
  quit(r);
}

static void *leg_thread(void *arg) {
  leg_run *r = arg;
  sk_leg *l = r->leg;
  l->t_start = sk_now_ms();
  sk_conn_init(&r->c);
  sk_reply_parser_init(&r->rp);
  if (leg_connect(r)) {
    if (l->tls_first)
      run_tls_first(r);
    else
      run_plain(r);
  }
  register_fd(r, -1);
  sk_conn_close(&r->c);
  sk_reply_parser_free(&r->rp);
  l->t_end = sk_now_ms();
  set_phase(r, SK_LEG_DONE);
  return NULL;
}

/* ---- the monitor ---- */

static void leg_cancel(sk_leg *l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void leg_cancel(sk_leg *l, const char *fmt, ...) {
  pthread_mutex_lock(&l->fd_lock);
  if (!atomic_load(&l->cancel)) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->cancel_reason, sizeof l->cancel_reason, fmt, ap);
    va_end(ap);
    atomic_store(&l->cancel, true);
    if (l->fd >= 0)
      shutdown(l->fd, SHUT_RDWR);
  }
  pthread_mutex_unlock(&l->fd_lock);
}

static bool leg_done(const sk_leg *l) {
  return atomic_load(&((sk_leg *)l)->phase) == SK_LEG_DONE;
}

/* Fit for submission: greeted, TLS with a good certificate, AUTH. Only
 * for a finished leg. */
static bool leg_fit(const sk_leg *l, bool insecure) {
  return leg_done(l) && l->tls_ok && (insecure || l->peer.verified) &&
         l->greeting.code == 220 && l->got_caps_after && l->caps_after.has_auth;
}

static const char *phase_name(int ph) {
  static const char *const names[] = {"waiting",  "connecting", "TLS handshake",
                                      "greeting", "EHLO",       "STARTTLS",
                                      "done"};
  return ph >= 0 && ph <= SK_LEG_DONE ? names[ph] : "?";
}

static void status_text(const sk_probe *p, char *out, size_t cap) {
  if (!leg_done(&p->plain) || !leg_done(&p->tls)) {
    snprintf(out, cap, "plain: %s, TLS first: %s",
             phase_name(atomic_load(&((sk_leg *)&p->plain)->phase)),
             phase_name(atomic_load(&((sk_leg *)&p->tls)->phase)));
    return;
  }
  const char *mode = sk_probe_mode(p);
  const char *ver = NULL;
  const sk_tls_peer *peer = sk_probe_peer(p, &ver);
  const sk_caps *caps = sk_probe_caps(p, true);
  if (!strcmp(mode, "none")) {
    const sk_leg *l =
        p->plain.connected || !p->tls.connected ? &p->plain : &p->tls;
    sk_strlcpy(out, p->addr_ev ? p->addr_error : l->detail, cap);
    return;
  }
  snprintf(out, cap, "%s%s%s%s%s%.100s", mode, ver ? ", " : "", ver ? ver : "",
           peer && !peer->verified ? " (certificate not verified)" : "",
           caps && caps->has_auth ? ", AUTH" : "",
           caps && caps->has_auth ? caps->auth : "");
}

typedef struct monitor {
  long long tls_greeted_at; /* when the TLS leg was seen greeted */
  char last[200];
  bool reported_done;
} monitor;

static void monitor_step(sk_probe *probes, size_t n, monitor *m,
                         const sk_probe_conf *conf, long long *fit_at,
                         long long t0) {
  long long now = sk_now_ms();
  for (size_t i = 0; i < n && *fit_at == 0; i++)
    if (leg_fit(&probes[i].plain, conf->insecure) ||
        leg_fit(&probes[i].tls, conf->insecure))
      *fit_at = now;
  for (size_t i = 0; i < n; i++) {
    sk_probe *p = &probes[i];
    if (!m[i].tls_greeted_at && leg_done(&p->tls) && p->tls.greeting.code)
      m[i].tls_greeted_at = now;
    if (m[i].tls_greeted_at && !leg_done(&p->plain) &&
        now - m[i].tls_greeted_at >= PLAIN_GRACE_MS &&
        atomic_load(&p->plain.phase) <= SK_LEG_GREETING)
      leg_cancel(&p->plain,
                 "waited %.1f s; meanwhile a TLS handshake on this port was "
                 "answered and greeted",
                 (double)(now - t0) / 1000.0);
    for (int k = 0; k < 2 && *fit_at && !p->asked; k++) {
      sk_leg *l = k ? &p->tls : &p->plain;
      if (!leg_done(l) && now - *fit_at >= SILENT_GRACE_MS)
        leg_cancel(l,
                   "stopped waiting after %.1f s: another port already "
                   "works",
                   (double)(now - t0) / 1000.0);
    }
    if (now > conf->deadline + 1500) {
      leg_cancel(&p->plain, "past the deadline");
      leg_cancel(&p->tls, "past the deadline");
    }
  }
}

static void report_progress(sk_probe *probes, size_t n, monitor *m,
                            const sk_probe_conf *conf) {
  if (!conf->progress)
    return;
  for (size_t i = 0; i < n; i++) {
    if (m[i].reported_done)
      continue;
    char s[200];
    status_text(&probes[i], s, sizeof s);
    bool done = leg_done(&probes[i].plain) && leg_done(&probes[i].tls);
    if (strcmp(s, m[i].last) != 0 || done) {
      sk_strlcpy(m[i].last, s, sizeof m[i].last);
      conf->progress(conf->progress_ctx, i, n, &probes[i], s, done);
      m[i].reported_done = done;
    }
  }
}

void sk_probe_run(sk_probe *probes, size_t n, const sk_probe_conf *conf) {
  size_t legs = n ? 2 * n : 1;
  leg_run *runs = calloc(legs, sizeof *runs);
  pthread_t *th = calloc(legs, sizeof *th);
  bool *started = calloc(legs, sizeof *started);
  monitor *m = calloc(n ? n : 1, sizeof *m);
  if (!runs || !th || !started || !m) {
    free(runs), free(th), free(started), free(m);
    return;
  }
  for (size_t i = 0; i < 2 * n; i++) {
    sk_probe *p = &probes[i / 2];
    leg_run *r = &runs[i];
    r->p = p;
    r->leg = i % 2 ? &p->tls : &p->plain;
    r->conf = conf;
    if (p->n_addrs == 0) {
      r->leg->ev = p->addr_ev ? p->addr_ev : SK_EV_DNS;
      r->leg->ev_stage = SMTPKIT_STAGE_CONNECT;
      sk_strlcpy(r->leg->detail, p->addr_error, sizeof r->leg->detail);
      atomic_store(&r->leg->phase, SK_LEG_DONE);
      continue;
    }
    started[i] = pthread_create(&th[i], NULL, leg_thread, r) == 0;
    if (!started[i]) {
      r->leg->ev = SK_EV_INTERNAL;
      sk_strlcpy(r->leg->detail, "cannot start a thread",
                 sizeof r->leg->detail);
      atomic_store(&r->leg->phase, SK_LEG_DONE);
    }
  }
  long long fit_at = 0, t0 = sk_now_ms();
  /* Bounded: the legs end by the deadline; cancels follow 1.5 s later. */
  for (int rounds = 0; rounds < 20 * 3600; rounds++) {
    bool all = true;
    for (size_t i = 0; i < n; i++)
      all = all && leg_done(&probes[i].plain) && leg_done(&probes[i].tls);
    monitor_step(probes, n, m, conf, &fit_at, t0);
    report_progress(probes, n, m, conf);
    if (all)
      break;
    struct timespec ts = {.tv_sec = 0, .tv_nsec = 50 * 1000000L};
    nanosleep(&ts, NULL);
  }
  for (size_t i = 0; i < 2 * n; i++)
    if (started[i])
      pthread_join(th[i], NULL);
  free(runs);
  free(th);
  free(started);
  free(m);
}

/* ---- judging what a probe saw ---- */

const char *sk_probe_mode(const sk_probe *p) {
  if (p->tls.tls_ok)
    return "implicit";
  if (p->plain.greeting.code)
    return p->plain.got_caps_before && p->plain.caps_before.starttls
               ? "starttls"
               : "plain";
  return "none";
}

const smtpkit_reply *sk_probe_greeting(const sk_probe *p) {
  if (p->plain.greeting.code)
    return &p->plain.greeting;
  return p->tls.greeting.code ? &p->tls.greeting : NULL;
}

const sk_caps *sk_probe_caps(const sk_probe *p, bool after_tls) {
  const sk_leg *l = p->tls.tls_ok ? &p->tls : &p->plain;
  if (after_tls)
    return l->got_caps_after ? &l->caps_after : NULL;
  return p->plain.got_caps_before ? &p->plain.caps_before : NULL;
}

const sk_tls_peer *sk_probe_peer(const sk_probe *p, const char **version) {
  const sk_leg *l = p->tls.got_peer     ? &p->tls
                    : p->plain.got_peer ? &p->plain
                                        : NULL;
  if (version)
    *version = l ? l->tls_version : NULL;
  return l ? &l->peer : NULL;
}

static int leg_score(const sk_probe *p, const sk_leg *l, bool insecure) {
  if (p->n_addrs == 0)
    return 0;
  if (!l->connected)
    return l->ev == SK_EV_REFUSED ? 1 : 2;
  const sk_caps *after = l->got_caps_after ? &l->caps_after : NULL;
  int s = l->greeting.code || l->banner_on_tls || l->ev == SK_EV_GARBLED ||
                  l->refusal.code
              ? 4
              : 3;
  s += l->greeting.code == 220;
  s += l->got_caps_before || l->got_caps_after;
  s += l->tls_ok;
  s += l->tls_ok && (insecure || l->peer.verified);
  s += after && after->has_auth;
  return s;
}

int sk_probe_progress(const sk_probe *p, bool insecure) {
  int a = leg_score(p, &p->plain, insecure),
      b = leg_score(p, &p->tls, insecure);
  return a > b ? a : b;
}

static void with_event(smtpkit_error *e, sk_event ev, smtpkit_stage stage,
                       const char *detail) {
  sk_classify_event(e, ev, stage);
  if (detail && *detail)
    sk_error_detail(e, "%s", detail);
}

static void with_reply(smtpkit_error *e, const sk_probe *p, smtpkit_stage stage,
                       const smtpkit_reply *r, bool tls) {
  const smtpkit_reply *g = sk_probe_greeting(p);
  sk_context ctx = {
      .host = p->host, .banner = g && g->text ? g->text : NULL, .tls = tls};
  sk_classify_reply(e, stage, r, &ctx);
}

/* What stopped a leg before it got its capabilities. */
static void leg_failure(smtpkit_error *e, const sk_probe *p, const sk_leg *l,
                        smtpkit_stage stage) {
  if (l->refusal.code)
    with_reply(e, p, l->refusal_stage, &l->refusal, l->tls_ok);
  else
    with_event(e, l->ev ? l->ev : SK_EV_INTERNAL, l->ev ? l->ev_stage : stage,
               l->detail);
}

static void judge_cert(smtpkit_error *e, const sk_leg *l, smtpkit_stage st) {
  char d[200];
  snprintf(d, sizeof d, "certificate verification failed: %s",
           l->peer.verify_error);
  with_event(e, l->peer.verify_event, st, d);
}

/* Plain leg: greeting, EHLO, then STARTTLS unless mode is NONE. */
static void judge_plain(const sk_probe *p, smtpkit_tls_mode mode, bool insecure,
                        bool need_auth, smtpkit_error *e) {
  const sk_leg *l = &p->plain;
  if (!l->connected) {
    with_event(e, l->ev, SMTPKIT_STAGE_CONNECT, l->detail);
    return;
  }
  if (!l->greeting.code) {
    if (mode != SMTPKIT_TLS_NONE && p->tls.tls_ok && p->tls.greeting.code) {
      char d[300];
      snprintf(d, sizeof d,
               "no greeting on a plain connection, but a TLS handshake on "
               "port %u works (%s) and the server then greets: the port "
               "expects TLS at once (implicit TLS)",
               p->port, p->tls.tls_version);
      with_event(e, SK_EV_TLS_ON_TLS_PORT, SMTPKIT_STAGE_GREETING, d);
      return;
    }
    leg_failure(e, p, l, SMTPKIT_STAGE_GREETING);
    return;
  }
  if (l->greeting.code != 220) {
    with_reply(e, p, SMTPKIT_STAGE_GREETING, &l->greeting, false);
    return;
  }
  if (!l->got_caps_before) {
    leg_failure(e, p, l, SMTPKIT_STAGE_EHLO);
    return;
  }
  const sk_caps *before = &l->caps_before;
  if (mode == SMTPKIT_TLS_NONE) {
    if (need_auth && !before->has_auth)
      with_event(e,
                 before->starttls && l->got_caps_after && l->caps_after.has_auth
                     ? SK_EV_TLS_FIRST
                     : SK_EV_NO_AUTH,
                 SMTPKIT_STAGE_EHLO,
                 before->starttls ? "AUTH is offered only after STARTTLS"
                                  : "the server does not offer AUTH");
    return;
  }
  if (!before->starttls) {
    with_event(e, SK_EV_NO_STARTTLS, SMTPKIT_STAGE_EHLO,
               "the server does not offer STARTTLS");
    return;
  }
  if (!l->tls_ok || !l->got_caps_after) {
    if (l->tls_ok && !insecure && !l->peer.verified) {
      judge_cert(e, l, SMTPKIT_STAGE_STARTTLS);
      return;
    }
    leg_failure(e, p, l, SMTPKIT_STAGE_STARTTLS);
    return;
  }
  if (!insecure && !l->peer.verified) {
    judge_cert(e, l, SMTPKIT_STAGE_STARTTLS);
    return;
  }
  if (need_auth && !l->caps_after.has_auth)
    with_event(e, SK_EV_NO_AUTH, SMTPKIT_STAGE_EHLO,
               "the server does not offer AUTH, not even after STARTTLS");
}

/* TLS leg: handshake, greeting, EHLO. */
static void judge_tls(const sk_probe *p, bool insecure, bool need_auth,
                      smtpkit_error *e) {
  const sk_leg *l = &p->tls;
  if (!l->connected) {
    with_event(e, l->ev, SMTPKIT_STAGE_CONNECT, l->detail);
    return;
  }
  if (!l->tls_ok) {
    const smtpkit_reply *g = &p->plain.greeting;
    if (l->banner_on_tls && g->code == 220) {
      char d[300];
      snprintf(d, sizeof d,
               "the TLS handshake was answered by a plain SMTP banner "
               "(\"%s\"): port %u speaks plain SMTP first and offers "
               "%s",
               l->banner_start, p->port,
               sk_probe_caps(p, false) && sk_probe_caps(p, false)->starttls
                   ? "STARTTLS"
                   : "no TLS at all");
      with_event(e, SK_EV_TLS_PLAIN_BANNER, SMTPKIT_STAGE_CONNECT, d);
    } else if (l->banner_on_tls && g->code) {
      with_reply(e, p, SMTPKIT_STAGE_GREETING, g, false);
    } else {
      with_event(e, l->banner_on_tls ? SK_EV_TLS_HANDSHAKE : l->ev, l->ev_stage,
                 l->detail);
    }
    return;
  }
  if (!insecure && !l->peer.verified) {
    judge_cert(e, l, SMTPKIT_STAGE_CONNECT);
    return;
  }
  if (l->greeting.code != 220 || !l->got_caps_after) {
    if (l->greeting.code && l->greeting.code != 220)
      with_reply(e, p, SMTPKIT_STAGE_GREETING, &l->greeting, true);
    else
      leg_failure(e, p, l,
                  l->greeting.code ? SMTPKIT_STAGE_EHLO
                                   : SMTPKIT_STAGE_GREETING);
    return;
  }
  if (need_auth && !l->caps_after.has_auth)
    with_event(e, SK_EV_NO_AUTH, SMTPKIT_STAGE_EHLO,
               "the server does not offer AUTH");
}

void sk_probe_judge(const sk_probe *p, smtpkit_tls_mode mode, bool insecure,
                    bool need_auth, smtpkit_error *err) {
  memset(err, 0, sizeof *err);
  err->cause = SMTPKIT_CAUSE_ok;
  if (p->n_addrs == 0) {
    with_event(err, p->addr_ev ? p->addr_ev : SK_EV_DNS, SMTPKIT_STAGE_CONNECT,
               p->addr_error);
    return;
  }
  if (mode == SMTPKIT_TLS_AUTO) {
    const char *m = sk_probe_mode(p);
    if (!strcmp(m, "implicit"))
      mode = SMTPKIT_TLS_IMPLICIT;
    else if (strcmp(m, "none") != 0 || leg_score(p, &p->plain, insecure) >=
                                           leg_score(p, &p->tls, insecure))
      mode = SMTPKIT_TLS_STARTTLS;
    else
      mode = SMTPKIT_TLS_IMPLICIT;
  }
  if (mode == SMTPKIT_TLS_IMPLICIT)
    judge_tls(p, insecure, need_auth, err);
  else
    judge_plain(p, mode, insecure, need_auth, err);
}
