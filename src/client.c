/*
 * client.c — the public session API: drives the state machine (session.c)
 * over a connection (transport.c, tls.c), streams the message through the
 * encoder (message.c) and keeps the transcript.
 *
 * RFC 3207 §5 / "NO STARTTLS" (USENIX Security 2021): bytes that arrive
 * with or right after the 220 to STARTTLS, before our ClientHello, were
 * sent in plaintext by someone; they are never read as part of the TLS
 * session — the connection is dropped as a protocol error.
 *
 * One connection, many messages: after each message the session is ready
 * for the next; after a refused transaction the next starts with RSET; with
 * PIPELINING the next message's MAIL/RCPT/DATA follow the end of data in
 * the same flight (RFC 2920 §3.1), so a message costs one round trip. A
 * failed write of the end of data means it did not leave this host (not
 * delivered, safe to send again): it shares a write with what follows only
 * when that write is too small to go in part (send_tail). Once it is
 * written, a missing reply is delivery_unknown (RFC 1047) and the message
 * is not sent again automatically — unless the server reset the connection
 * with the end of data as the last thing sent: it never read it.
 */
#define _GNU_SOURCE
#include "batch.h"
#include "conn.h"
#include "kb.h"
#include "message.h"
#include "session.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct smtpkit_session {
  smtpkit_settings set;
  char *host, *ca_file, *helo, *user, *mechanisms; /* owned copies */
  unsigned port;
  smtpkit_tls_mode mode; /* resolved: IMPLICIT, STARTTLS or NONE */
  SSL_CTX *tls_ctx;
  sk_conn conn;
  sk_reply_parser rp;
  sk_sm sm;
  bool sm_ready, connected;
  smtpkit_error err;
  char queue_id[128];
  const smtpkit_envelope *next_env; /* to pipeline after this end of data */
  char *chunk_in, *chunk_out;       /* body buffers, kept across messages */
  void (*idle_fn)(void *);          /* batch.h */
  void *idle_ctx;
  size_t tail_len; /* a one-piece message, encoded, not yet written */
  bool reset;      /* the last read failed with a connection reset */
  bool after_dot;  /* bytes went out after this message's end of data */
};

void sk_session_set_idle(smtpkit_session *s, void (*fn)(void *), void *ctx) {
  s->idle_fn = fn;
  s->idle_ctx = ctx;
}

void smtpkit_settings_init(smtpkit_settings *s) {
  memset(s, 0, sizeof *s);
  s->tls = SMTPKIT_TLS_AUTO;
}

smtpkit_session *smtpkit_session_new(const smtpkit_settings *settings) {
  smtpkit_session *s = calloc(1, sizeof *s);
  if (!s)
    return NULL;
  s->set = *settings;
  s->set.host = s->host = sk_strdup(settings->host);
  s->set.ca_file = s->ca_file = sk_strdup(settings->ca_file);
  s->set.helo = s->helo = sk_strdup(settings->helo);
  s->set.user = s->user = sk_strdup(settings->user);
  s->set.mechanisms = s->mechanisms = sk_strdup(settings->mechanisms);
  if (!s->set.timeout_ms)
    s->set.timeout_ms = 30000;
  s->mode = s->set.tls;
  if (s->mode == SMTPKIT_TLS_AUTO)
    s->mode =
        settings->port == 465 ? SMTPKIT_TLS_IMPLICIT : SMTPKIT_TLS_STARTTLS;
  s->port = settings->port ? settings->port
                           : (s->mode == SMTPKIT_TLS_IMPLICIT ? 465 : 587);
  sk_conn_init(&s->conn);
  sk_reply_parser_init(&s->rp);
  return s;
}

void smtpkit_session_free(smtpkit_session *s) {
  if (!s)
    return;
  smtpkit_session_close(s);
  if (s->sm_ready)
    sk_sm_free(&s->sm);
  sk_reply_parser_free(&s->rp);
  if (s->tls_ctx)
    SSL_CTX_free(s->tls_ctx);
  sk_error_clear(&s->err);
  free(s->chunk_in);
  free(s->chunk_out);
  free(s->host);
  free(s->ca_file);
  free(s->helo);
  free(s->user);
  free(s->mechanisms);
  free(s);
}

const smtpkit_error *smtpkit_session_error(const smtpkit_session *s) {
  return &s->err;
}

/* ---- transcript ---- */

static void note(smtpkit_session *s, char dir, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void note(smtpkit_session *s, char dir, const char *fmt, ...) {
  if (!s->set.transcript)
    return;
  char line[600];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n < 0)
    return;
  s->set.transcript(s->set.transcript_ctx, dir, line,
                    (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

static void log_lines(smtpkit_session *s, char dir, const char *text,
                      size_t n) {
  if (!s->set.transcript)
    return;
  while (n) {
    const char *nl = memchr(text, '\n', n);
    size_t len = nl ? (size_t)(nl - text) : n;
    s->set.transcript(s->set.transcript_ctx, dir, text, len);
    if (!nl)
      break;
    n -= len + 1;
    text = nl + 1;
  }
}

/* ---- errors ---- */

static void fail_event(smtpkit_session *s, sk_event ev, smtpkit_stage stage,
                       const char *detail) {
  sk_error_clear(&s->err);
  sk_classify_event(&s->err, ev, stage);
  if (detail)
    sk_error_detail(&s->err, "%s", detail);
  note(s, '*', "error: %s", detail ? detail : smtpkit_cause_name(s->err.cause));
}

static void take_sm_error(smtpkit_session *s) {
  sk_error_clear(&s->err);
  s->err = s->sm.err;
  sk_reply_copy(&s->err.reply, &s->sm.err.reply);
}

/* ---- I/O around the state machine ---- */

static bool flush_out(smtpkit_session *s) {
  log_lines(s, 'C', s->sm.shown.data ? s->sm.shown.data : "", s->sm.shown.len);
  sk_buf_consume(&s->sm.shown, s->sm.shown.len);
  if (s->sm.out.len == 0)
    return true;
  if (s->sm.state == SK_ST_DOT)
    s->after_dot = true; /* the next message's pipelined commands */
  s->conn.deadline = sk_now_ms() + s->set.timeout_ms;
  bool ok = sk_conn_write(&s->conn, s->sm.out.data, s->sm.out.len);
  sk_buf_consume(&s->sm.out, s->sm.out.len); /* wipes: may hold AUTH data */
  return ok;
}

/* Reads one reply. Returns SK_EV_NONE or why it could not. */
static sk_event read_reply(smtpkit_session *s, smtpkit_reply *r) {
  s->conn.deadline = sk_now_ms() + s->set.timeout_ms;
  for (int reads = 0; reads < 1 << 20; reads++) {
    char *raw = NULL;
    int st = sk_reply_parser_next(&s->rp, r, &raw);
    if (st == SK_RP_REPLY) {
      log_lines(s, 'S', raw, strlen(raw));
      free(raw);
      return SK_EV_NONE;
    }
    if (st == SK_RP_ERROR) {
      snprintf(s->conn.detail, sizeof s->conn.detail, "malformed reply: %s",
               s->rp.error);
      return SK_EV_GARBLED;
    }
    char buf[16384];
    long n = sk_conn_read(&s->conn, buf, sizeof buf);
    s->reset = n == -2 && errno == ECONNRESET;
    if (n == 0) {
      snprintf(s->conn.detail, sizeof s->conn.detail,
               "the server closed the connection");
      return SK_EV_CLOSED;
    }
    if (n == -1)
      return SK_EV_TIMEOUT;
    if (n < 0)
      return SK_EV_CLOSED;
    if (!sk_reply_parser_feed(&s->rp, buf, (size_t)n)) {
      snprintf(s->conn.detail, sizeof s->conn.detail, "malformed reply: %s",
               s->rp.error);
      return SK_EV_GARBLED;
    }
  }
  return SK_EV_GARBLED;
}

static bool ensure_tls_ctx(smtpkit_session *s) {
  if (s->tls_ctx)
    return true;
  char err[300];
  s->tls_ctx = sk_tls_ctx_new(s->set.ca_file, s->set.insecure, err, sizeof err);
  if (!s->tls_ctx)
    fail_event(s, SK_EV_INTERNAL, SMTPKIT_STAGE_CONNECT, err);
  return s->tls_ctx != NULL;
}

static bool start_tls(smtpkit_session *s, smtpkit_stage stage) {
  if (!ensure_tls_ctx(s))
    return false;
  s->conn.deadline = sk_now_ms() + s->set.timeout_ms;
  sk_event ev =
      sk_tls_start(&s->conn, s->tls_ctx, s->set.host, s->set.insecure);
  if (ev != SK_EV_NONE) {
    fail_event(s, ev, stage, s->conn.detail);
    return false;
  }
  note(s, '*', "TLS established: %s%s", s->conn.tls_version,
       s->set.insecure ? " (certificate NOT verified: --insecure)" : "");
  return true;
}

/* After a silent plaintext connection: does the port speak TLS at once?
 * A TLS server answers a ClientHello at once, so a few seconds settle it:
 * the whole wait stays within the time-out plus 3 s. */
static bool port_speaks_tls(smtpkit_session *s) {
  if (!ensure_tls_ctx(s))
    return false;
  sk_conn probe;
  sk_conn_init(&probe);
  long long deadline =
      sk_now_ms() + (s->set.timeout_ms < 3000 ? s->set.timeout_ms : 3000);
  bool yes = false;
  if (sk_conn_open(&probe, s->set.host, s->port, deadline) == SK_EV_NONE) {
    probe.deadline = deadline;
    sk_event ev = sk_tls_start(&probe, s->tls_ctx, s->set.host, true);
    yes = ev == SK_EV_NONE;
  }
  sk_conn_close(&probe);
  return yes;
}

static void default_helo(smtpkit_session *s, char *out, size_t cap) {
  if (s->set.helo) {
    sk_strlcpy(out, s->set.helo, cap);
    return;
  }
  char name[256] = "";
  if (gethostname(name, sizeof name - 1) == 0 && strchr(name, '.') &&
      strncmp(name, "localhost", 9) != 0) {
    sk_strlcpy(out, name, cap);
    return;
  }
  struct addrinfo hints = {.ai_flags = AI_CANONNAME}, *res = NULL;
  if (name[0] && getaddrinfo(name, NULL, &hints, &res) == 0 && res &&
      res->ai_canonname && strchr(res->ai_canonname, '.') &&
      strncmp(res->ai_canonname, "localhost", 9) != 0) {
    sk_strlcpy(out, res->ai_canonname, cap);
    freeaddrinfo(res);
    return;
  }
  if (res)
    freeaddrinfo(res);
  /* Never "localhost": some providers refuse it (Gmail's "(EHLO)" 421). */
  sk_strlcpy(out,
             s->conn.local_literal[0] ? s->conn.local_literal : "[127.0.0.1]",
             cap);
}

static bool handle_read_failure(smtpkit_session *s, sk_event ev) {
  smtpkit_stage stage = sk_sm_stage(&s->sm);
  if (ev == SK_EV_TIMEOUT && s->sm.state == SK_ST_GREETING) {
    if (s->mode != SMTPKIT_TLS_IMPLICIT && port_speaks_tls(s)) {
      fail_event(s, SK_EV_TLS_ON_TLS_PORT, SMTPKIT_STAGE_GREETING,
                 "no greeting arrived, but a TLS handshake on this port "
                 "works: it expects TLS at once (implicit TLS)");
      return false;
    }
    fail_event(s, SK_EV_GREETING_TIMEOUT, SMTPKIT_STAGE_GREETING,
               "connected, but no greeting arrived in time");
    return false;
  }
  if (s->sm.state == SK_ST_DOT && ev == SK_EV_CLOSED && s->reset &&
      !s->after_dot) {
    /* A reset, not a close: the server closed with our data unread, and
     * the end of data was the last thing sent, so it never read it. */
    fail_event(s, SK_EV_CLOSED, stage,
               "the server reset the connection without reading the end of "
               "the message: it was not delivered");
    return false;
  }
  if (s->sm.state == SK_ST_DOT && (ev == SK_EV_CLOSED || ev == SK_EV_TIMEOUT)) {
    fail_event(s, SK_EV_CLOSED_AFTER_DATA, stage,
               "the connection ended after the message was sent but before "
               "the server confirmed it: it may or may not have been "
               "accepted");
    return false;
  }
  fail_event(s, ev, stage, s->conn.detail);
  return false;
}

/* While the message is being sent: has the server closed the connection
 * or already answered (an early rejection)? Looks without waiting. A close
 * before our end-of-data means the message was certainly not delivered. */
static bool peer_interrupted(smtpkit_session *s) {
  struct pollfd p = {.fd = s->conn.fd, .events = POLLIN};
  if (poll(&p, 1, 0) <= 0)
    return false;
  char buf[4096];
  s->conn.deadline = sk_now_ms() + 200;
  long n = sk_conn_read(&s->conn, buf, sizeof buf);
  if (n > 0) {
    sk_reply_parser_feed(&s->rp, buf, (size_t)n);
    return true;
  }
  return n == 0 || n == -2;
}

/* Runs the state machine until it is ready, done or failed. */
static bool drive(smtpkit_session *s, sk_action a, smtpkit_read_fn rd,
                  void *rd_ctx);

static void drop_connection(smtpkit_session *s) {
  sk_conn_close(&s->conn);
  s->connected = false;
}

/* The server answered or closed while the message was being sent. */
static bool body_interrupted(smtpkit_session *s, long long bytes) {
  note(s, 'C', "<message: %lld bytes, not finished>", bytes);
  smtpkit_reply r = {0};
  if (read_reply(s, &r) == SK_EV_NONE) {
    sk_action a = sk_sm_on_reply(&s->sm, &r);
    sk_reply_clear(&r);
    if (a == SK_ACT_FAIL)
      take_sm_error(s);
    else
      fail_event(s, SK_EV_GARBLED, SMTPKIT_STAGE_DATA,
                 "the server answered before the end of the message");
  } else
    fail_event(s, SK_EV_GARBLED, SMTPKIT_STAGE_DATA, s->conn.detail);
  drop_connection(s);
  return false;
}

/* Fills buf from the source (which may hand out a line at a time) until it
 * is full or the message ends: > 0, 0 at the end, -1 on error. */
static long fill(smtpkit_read_fn rd, void *ctx, char *buf, size_t cap) {
  size_t have = 0;
  for (int calls = 0; have < cap && calls < 1 << 20; calls++) {
    long n = rd(ctx, buf + have, cap - have);
    if (n < 0)
      return -1;
    if (n == 0)
      break;
    have += (size_t)n;
  }
  return (long)have;
}

/* Streams the message through the encoder, CHUNK bytes at a time (memory
 * does not depend on the message size); the last piece and the end of data
 * go out in one write. */
static bool stream_body(smtpkit_session *s, smtpkit_read_fn rd, void *ctx) {
  enum { CHUNK = 65536 };
  if (!s->chunk_in)
    s->chunk_in = malloc(CHUNK);
  if (!s->chunk_out)
    s->chunk_out = malloc(2 * CHUNK + 8);
  char *in = s->chunk_in, *out = s->chunk_out;
  if (!in || !out) {
    fail_event(s, SK_EV_INTERNAL, SMTPKIT_STAGE_DATA, "out of memory");
    drop_connection(s);
    return false;
  }
  sk_encoder enc;
  sk_encoder_init(&enc);
  bool ok = true, ended = false;
  long n = fill(rd, ctx, in, CHUNK);
  for (long chunks = 0; ok && !ended && chunks < (1L << 26); chunks++) {
    if (n < 0) {
      /* Never end a message we could not read whole: drop the connection
       * so the server discards what it got. */
      fail_event(s, SK_EV_INTERNAL, SMTPKIT_STAGE_DATA,
                 "could not read the message; nothing was delivered");
      drop_connection(s);
      return false;
    }
    size_t k = n ? sk_encode(&enc, in, (size_t)n, out) : 0;
    long next = n == CHUNK ? fill(rd, ctx, in, CHUNK) : 0;
    s->conn.deadline = sk_now_ms() + s->set.timeout_ms;
    if (next == 0 && chunks == 0) {
      /* A message of one piece: written by send_tail, with its end of
       * data and perhaps the next message's commands. */
      s->tail_len = k + sk_encode_finish(&enc, out + k);
      ended = true;
    } else if (next == 0) {
      /* The last piece, then, unless the server answered or closed while
       * the message went (then it was not delivered), the end of data. */
      ok = sk_conn_write(&s->conn, out, k) && !peer_interrupted(s);
      if (ok) {
        k = sk_encode_finish(&enc, out);
        ended = true;
        ok = sk_conn_write(&s->conn, out, k);
      }
    } else
      ok = sk_conn_write(&s->conn, out, k) && !peer_interrupted(s);
    n = next;
  }
  if (!ok && sk_reply_parser_pending(&s->rp))
    return body_interrupted(s, enc.bytes);
  note(s, 'C', "<message: %lld bytes>", enc.bytes);
  if (!ok || !ended) {
    fail_event(s, SK_EV_CLOSED, SMTPKIT_STAGE_DATA,
               "the connection was lost while the message was being sent, "
               "before its end: it was not delivered");
    return false;
  }
  return true;
}

/* A one-piece message with its end of data and, when all of it fits in
 * FLIGHT bytes, the next message's commands: one write, one segment, one
 * read for the server. A write that small goes whole or not at all — the
 * send buffer is empty (the server answered everything sent before) and
 * Linux's smallest is 4608 bytes — so a failed write still means the end
 * of data did not leave this host. */
static bool send_tail(smtpkit_session *s) {
  enum { FLIGHT = 4096 };
  size_t k = s->tail_len, cmds = s->sm.out.len;
  s->tail_len = 0;
  bool with_cmds = cmds && k + cmds <= FLIGHT;
  if (with_cmds)
    memcpy(s->chunk_out + k, s->sm.out.data, cmds);
  s->conn.deadline = sk_now_ms() + s->set.timeout_ms;
  if (!sk_conn_write(&s->conn, s->chunk_out, k + (with_cmds ? cmds : 0))) {
    fail_event(s, SK_EV_CLOSED, SMTPKIT_STAGE_DATA,
               "the connection was lost while the message was being sent, "
               "before its end: it was not delivered");
    return false;
  }
  if (with_cmds) {
    s->after_dot = true;
    log_lines(s, 'C', s->sm.shown.data ? s->sm.shown.data : "",
              s->sm.shown.len);
    sk_buf_consume(&s->sm.shown, s->sm.shown.len);
    sk_buf_consume(&s->sm.out, cmds);
  }
  return true;
}

static bool drive(smtpkit_session *s, sk_action a, smtpkit_read_fn rd,
                  void *rd_ctx) {
  for (int steps = 0; steps < 100000; steps++) {
    switch (a) {
    case SK_ACT_READY:
    case SK_ACT_DONE:
      return true;
    case SK_ACT_FAIL:
      take_sm_error(s);
      note(s, '*', "failed: %s", smtpkit_cause_name(s->err.cause));
      return false;
    case SK_ACT_STARTTLS:
      if (sk_reply_parser_pending(&s->rp) || sk_conn_has_unread(&s->conn)) {
        fail_event(s, SK_EV_INJECTION, SMTPKIT_STAGE_STARTTLS,
                   "the server sent data after its 220 to STARTTLS and "
                   "before the TLS handshake (response injection)");
        return false;
      }
      if (!start_tls(s, SMTPKIT_STAGE_STARTTLS))
        return false;
      sk_tls_channel_binding(&s->conn, s->sm.cb_type, s->sm.cb_data);
      a = sk_sm_tls_done(&s->sm);
      continue;
    case SK_ACT_BODY:
      if (!stream_body(s, rd, rd_ctx))
        return false;
      a = sk_sm_body_sent(&s->sm);
      if (s->next_env && sk_sm_queue_next(&s->sm, s->next_env))
        note(s, '*', "next message pipelined after the end of data");
      if (s->tail_len && !send_tail(s))
        return false;
      continue;
    case SK_ACT_WRITE_READ:
      break;
    }
    if (!flush_out(s)) {
      fail_event(
          s, s->sm.state == SK_ST_DOT ? SK_EV_CLOSED_AFTER_DATA : SK_EV_CLOSED,
          sk_sm_stage(&s->sm), s->conn.detail);
      return false;
    }
    if (s->sm.state == SK_ST_DOT && s->idle_fn)
      s->idle_fn(s->idle_ctx);
    smtpkit_reply r = {0};
    sk_event ev = read_reply(s, &r);
    if (ev != SK_EV_NONE)
      return handle_read_failure(s, ev);
    a = sk_sm_on_reply(&s->sm, &r);
    sk_reply_clear(&r);
  }
  fail_event(s, SK_EV_INTERNAL, sk_sm_stage(&s->sm), "too many steps");
  return false;
}

bool smtpkit_session_open(smtpkit_session *s) {
  if (!s->set.host || !*s->set.host) {
    fail_event(s, SK_EV_DNS, SMTPKIT_STAGE_CONNECT, "no server given");
    return false;
  }
  long long deadline = sk_now_ms() + s->set.timeout_ms;
  note(s, '*', "connecting to %s port %u (%s)", s->set.host, s->port,
       smtpkit_tls_mode_name(s->mode));
  sk_event ev = sk_conn_open(&s->conn, s->set.host, s->port, deadline);
  if (ev != SK_EV_NONE) {
    fail_event(s, ev, SMTPKIT_STAGE_CONNECT, s->conn.detail);
    return false;
  }
  s->connected = true;
  note(s, '*', "connected to %s from local port %u", s->conn.peer,
       s->conn.local_port);
  if (s->mode == SMTPKIT_TLS_IMPLICIT && !start_tls(s, SMTPKIT_STAGE_CONNECT))
    return false;
  char helo[256];
  default_helo(s, helo, sizeof helo);
  s->set.tls = s->mode;
  s->set.port = s->port;
  sk_sm_init(&s->sm, &s->set, helo, s->mode == SMTPKIT_TLS_IMPLICIT);
  s->sm_ready = true;
  /* The provider the host name points to lets the classifier use what is
   * known of its replies (and its user-name rules). */
  s->sm.provider = sk_kb_provider_from_host(s->set.host, NULL);
  if (s->mode == SMTPKIT_TLS_IMPLICIT)
    sk_tls_channel_binding(&s->conn, s->sm.cb_type, s->sm.cb_data);
  return drive(s, SK_ACT_WRITE_READ, NULL, NULL);
}

static void find_queue_id(smtpkit_session *s, const smtpkit_reply *r) {
  s->queue_id[0] = '\0';
  if (!r->text)
    return;
  static const char *const marks[] = {"queued as ", "id=", "OK id=", "Ok: "};
  for (size_t i = 0; i < sizeof marks / sizeof *marks; i++) {
    const char *p = sk_memcasestr(r->text, strlen(r->text), marks[i]);
    if (!p)
      continue;
    p += strlen(marks[i]);
    size_t n = strcspn(p, " \t\n;,)>");
    if (n && n < sizeof s->queue_id) {
      memcpy(s->queue_id, p, n);
      s->queue_id[n] = '\0';
      return;
    }
  }
}

bool smtpkit_session_ready(const smtpkit_session *s) {
  return s->connected && s->sm_ready && sk_sm_can_begin(&s->sm);
}

bool smtpkit_session_send_next(smtpkit_session *s, const smtpkit_envelope *env,
                               smtpkit_read_fn read, void *read_ctx,
                               const smtpkit_envelope *next) {
  s->queue_id[0] = '\0';
  if (!smtpkit_session_ready(s)) {
    fail_event(s, SK_EV_INTERNAL, SMTPKIT_STAGE_MAIL,
               "the session is not ready to send");
    return false;
  }
  if (s->sm.queued && s->sm.queued != env) {
    /* The server expects the pipelined message; nothing else can follow
     * its 354 but a message, so the connection cannot be used. */
    fail_event(s, SK_EV_INTERNAL, SMTPKIT_STAGE_MAIL,
               "the message pipelined after the previous one must be the "
               "next one sent");
    drop_connection(s);
    return false;
  }
  sk_error_clear(&s->err);
  s->next_env = next;
  s->after_dot = false;
  bool ok = drive(s, sk_sm_begin(&s->sm, env), read, read_ctx);
  s->next_env = NULL;
  if (!ok)
    return false;
  find_queue_id(s, &s->sm.data_reply);
  if (s->sm.err.cause != SMTPKIT_CAUSE_ok)
    take_sm_error(s); /* delivered, but some recipients were refused */
  return true;
}

bool smtpkit_session_send(smtpkit_session *s, const smtpkit_envelope *env,
                          smtpkit_read_fn read, void *read_ctx) {
  return smtpkit_session_send_next(s, env, read, read_ctx, NULL);
}

bool smtpkit_session_reset(smtpkit_session *s) {
  if (!smtpkit_session_ready(s) || s->sm.queued)
    return false;
  sk_error_clear(&s->err);
  return drive(s, sk_sm_rset(&s->sm), NULL, NULL);
}

void smtpkit_session_close(smtpkit_session *s) {
  if (!s->connected)
    return;
  /* A pipelined transaction is open: after its DATA, QUIT would be read as
   * message text. Closing the connection makes the server discard it. */
  if (s->sm_ready && !s->sm.queued &&
      (s->sm.state == SK_ST_READY ||
       (s->sm.state == SK_ST_FAILED && s->err.reply.code != 421 &&
        s->err.cause != SMTPKIT_CAUSE_protocol_error &&
        s->err.cause != SMTPKIT_CAUSE_connection_lost &&
        s->err.cause != SMTPKIT_CAUSE_delivery_unknown))) {
    unsigned saved = s->set.timeout_ms;
    s->set.timeout_ms = saved < 5000 ? saved : 5000;
    smtpkit_error keep = s->err;
    memset(&s->err, 0, sizeof s->err);
    sk_buf_consume(&s->sm.out, s->sm.out.len);
    sk_buf_consume(&s->sm.shown, s->sm.shown.len);
    if (sk_reply_parser_pending(&s->rp) == 0) {
      sk_sm_quit(&s->sm);
      if (flush_out(s)) {
        smtpkit_reply r = {0};
        if (read_reply(s, &r) == SK_EV_NONE)
          sk_reply_clear(&r);
      }
    }
    sk_error_clear(&s->err);
    s->err = keep;
    s->set.timeout_ms = saved;
  }
  sk_conn_close(&s->conn);
  s->connected = false;
}

const char *smtpkit_session_tls_version(const smtpkit_session *s) {
  return s->conn.tls_version[0] ? s->conn.tls_version : NULL;
}

const char *smtpkit_session_auth_mechanism(const smtpkit_session *s) {
  return s->sm_ready && s->sm.authed ? s->sm.mech : NULL;
}

unsigned smtpkit_session_port(const smtpkit_session *s) { return s->port; }

smtpkit_tls_mode smtpkit_session_tls_mode(const smtpkit_session *s) {
  return s->mode;
}

size_t smtpkit_session_auth_attempts(const smtpkit_session *s,
                                     const smtpkit_auth_attempt **out) {
  *out = s->sm_ready ? s->sm.attempts : NULL;
  return s->sm_ready ? s->sm.n_attempts : 0;
}

size_t smtpkit_session_rcpt_results(const smtpkit_session *s,
                                    const smtpkit_rcpt_result **out) {
  *out = s->sm_ready ? s->sm.rcpt : NULL;
  return s->sm_ready && s->sm.env && s->sm.rcpt ? s->sm.rcpt_replies : 0;
}

const smtpkit_reply *smtpkit_session_data_reply(const smtpkit_session *s) {
  return s->sm_ready && s->sm.data_reply.code ? &s->sm.data_reply : NULL;
}

const char *smtpkit_session_queue_id(const smtpkit_session *s) {
  return s->queue_id[0] ? s->queue_id : NULL;
}
