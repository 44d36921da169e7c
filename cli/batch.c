/*
 * batch.c — `smtpkit send --batch PATH` (SPEC §1): every message of a
 * Maildir, a directory of .eml files or an mbox, over one connection (or
 * --connections N), with one result per message.
 *
 * The envelope comes from --from/--to when given, else from each
 * message's header (From; To, Cc and Bcc, with Bcc removed, as -t does).
 * Each message is read twice through bounded buffers — once for SIZE= and
 * 8BITMIME, once to send — so memory does not depend on message size. The
 * sending, pipelining, reconnecting and retrying are the library's
 * (smtpkit_batch_send); this file reads messages and reports.
 */
#define _GNU_SOURCE
#include "batch.h"

#include "guard.h"
#include "mailbox.h"
#include "message.h"
#include "output.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

void batch_help(void) {
  puts("Batch:\n"
       "      --batch PATH          send every message of PATH: a Maildir "
       "(cur/ and\n"
       "                            new/), a directory of .eml files or an "
       "mbox\n"
       "                            (From_ lines; >From unquoted as mboxrd). "
       "The\n"
       "                            envelope is --from/--to when given, else "
       "each\n"
       "                            message's From: and To/Cc/Bcc (Bcc "
       "removed).\n"
       "                            One connection, commands pipelined; "
       "after a\n"
       "                            refusal RSET and on; after 421 or a lost\n"
       "                            connection, reconnect and resume (a "
       "message is\n"
       "                            tried on at most 3 connections). A "
       "message\n"
       "                            whose end of data got no reply is "
       "reported\n"
       "                            delivery_unknown and never sent again.\n"
       "      --connections N       N connections in parallel share the "
       "messages\n"
       "                            (default 1)\n"
       "  With --batch, --json prints one JSON line per message (the send "
       "shape\n"
       "  plus \"message\": its file, or mbox#N). Exit code: 0 when every "
       "message\n"
       "  went to every recipient; otherwise the code of the first message "
       "(in\n"
       "  batch order) that did not, by its cause as below.\n");
}

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- one message ---- */

typedef struct bmsg {
  FILE *f;
  msg_input in; /* when the envelope comes from the header */
  bool use_input;
  char *mem; /* a small message, read whole (at most SMALL bytes) */
  size_t mem_len, mem_off;
  char *from;
  addr_list to;
  const char **to_v;
} bmsg;

enum { SMALL = 65536 };

static long bmsg_read(void *ctx, char *buf, size_t cap) {
  bmsg *m = ctx;
  if (m->mem) {
    size_t k = m->mem_len - m->mem_off < cap ? m->mem_len - m->mem_off : cap;
    memcpy(buf, m->mem + m->mem_off, k);
    m->mem_off += k;
    return (long)k;
  }
  if (m->use_input)
    return msg_input_read(&m->in, buf, cap);
  size_t k = fread(buf, 1, cap, m->f);
  return k == 0 && ferror(m->f) ? -1 : (long)k;
}

static void bmsg_rewind(bmsg *m) {
  m->mem_off = 0;
  if (m->mem)
    return;
  if (m->use_input)
    msg_input_rewind(&m->in);
  else
    rewind(m->f);
}

static void bmsg_free(bmsg *m) {
  if (!m)
    return;
  if (m->use_input)
    msg_input_close(&m->in);
  if (m->f)
    fclose(m->f);
  free(m->mem);
  free(m->from);
  addr_free(&m->to);
  free(m->to_v);
  free(m);
}

/* ---- the run ---- */

typedef struct bctx {
  const batch_request *req;
  sk_mailbox *mb;
  smtpkit_settings set;
  const warnings *w;
  bmsg **msgs;        /* open messages, by index */
  int *codes;         /* exit code per message: 0 sent to all */
  long long *t0;      /* when each message was first opened */
  pthread_mutex_t mu; /* guards t0 and codes set by open */
  size_t done, sent, failed, unknown;
  long long start;
  bool auth_ok, auth_refused; /* for the lock-out guard */
  /* progress bar on a terminal */
  bool bar, bar_shown, out_tty;
  long long bar_at;
} bctx;

static bool fail_open(bctx *b, size_t i, smtpkit_error *err, int code,
                      const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* A message that cannot be read or has no usable envelope. */
static bool fail_open(bctx *b, size_t i, smtpkit_error *err, int code,
                      const char *fmt, ...) {
  err->cause = SMTPKIT_CAUSE_unknown;
  err->stage = SMTPKIT_STAGE_NONE;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->detail, sizeof err->detail, fmt, ap);
  va_end(ap);
  pthread_mutex_lock(&b->mu);
  b->codes[i] = code;
  pthread_mutex_unlock(&b->mu);
  return false;
}

static bool plain_address(const char *a) {
  for (const unsigned char *p = (const unsigned char *)a; *p; p++)
    if (*p < 0x20 || *p == 0x7f || *p == ' ' || *p == '<' || *p == '>')
      return false;
  return true;
}

static char *strip_angles(const char *a) {
  size_t n = strlen(a);
  return n >= 2 && a[0] == '<' && a[n - 1] == '>' ? strndup(a + 1, n - 2)
                                                  : strdup(a);
}

/* The envelope: options first, the header for what they leave out. */
static bool envelope(bctx *b, size_t i, bmsg *m, smtpkit_error *err) {
  const batch_request *q = b->req;
  const char *name = sk_mailbox_name(b->mb, i);
  const char *from = q->from ? q->from : m->use_input ? m->in.from : NULL;
  if (!from)
    return fail_open(b, i, err, EX_DATAERR,
                     "%s: no sender: no --from and no From: header", name);
  m->from = strip_angles(from);
  const addr_list *src = q->to->n ? q->to : &m->in.to_cc_bcc;
  for (size_t k = 0; k < src->n; k++)
    addr_add(&m->to, src->v[k], strlen(src->v[k]));
  if (m->to.n == 0)
    return fail_open(b, i, err, EX_DATAERR,
                     "%s: no recipients: no --to and no To/Cc/Bcc header",
                     name);
  m->to_v = calloc(m->to.n, sizeof *m->to_v);
  if (!m->from || !m->to_v)
    return fail_open(b, i, err, EX_SOFTWARE, "%s: out of memory", name);
  bool clean = plain_address(m->from);
  for (size_t k = 0; k < m->to.n; k++) {
    char *a = strip_angles(m->to.v[k]);
    free(m->to.v[k]);
    m->to.v[k] = a;
    m->to_v[k] = a;
    clean = clean && a && *a && plain_address(a);
  }
  if (!clean)
    return fail_open(b, i, err, EX_DATAERR,
                     "%s: an address is not a plain user@domain (space, "
                     "angle bracket or control character)",
                     name);
  return true;
}

/* A message file of at most SMALL bytes is read once, into memory: it is
 * then measured and sent without touching the file again. Larger ones are
 * streamed from the file (opened as m->f). 1: read whole, 0: not small,
 * -1: error. */
static int read_small(bmsg *m, const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  char *buf = malloc(SMALL + 1);
  if (!buf) {
    close(fd);
    return -1;
  }
  size_t have = 0;
  ssize_t n = 1;
  for (int k = 0; k < 1024 && have <= SMALL &&
                  (n = read(fd, buf + have, SMALL + 1 - have)) > 0;
       k++)
    have += (size_t)n;
  close(fd);
  if (n != 0) { /* an error, or more than SMALL bytes: stream it */
    free(buf);
    return n < 0 ? -1 : 0;
  }
  m->mem = buf;
  m->mem_len = have;
  return 1;
}

static bool open_message(void *ctx, size_t i, smtpkit_batch_message *out,
                         smtpkit_error *err) {
  bctx *b = ctx;
  const batch_request *q = b->req;
  const char *name = sk_mailbox_name(b->mb, i);
  pthread_mutex_lock(&b->mu);
  if (!b->t0[i])
    b->t0[i] = now_ms();
  pthread_mutex_unlock(&b->mu);
  bmsg *m = calloc(1, sizeof *m);
  if (!m)
    return fail_open(b, i, err, EX_SOFTWARE, "%s: out of memory", name);
  bool from_header = !q->from || q->to->n == 0;
  const char *path = sk_mailbox_path(b->mb, i);
  int small = !from_header && path ? read_small(m, path) : 0;
  if (small == 0)
    m->f = sk_mailbox_fopen(b->mb, i);
  if (small < 0 || (!small && !m->f)) {
    bmsg_free(m);
    return fail_open(b, i, err, EX_NOINPUT, "cannot read %s", name);
  }
  if (from_header) {
    /* msg_input reads the header; Bcc goes only when recipients come
     * from it (as with -t). */
    int rc = msg_input_open(&m->in, m->f, q->to->n == 0);
    m->use_input = true;
    if (rc) {
      bmsg_free(m);
      return fail_open(b, i, err, rc, "%s: cannot read its header", name);
    }
  }
  if (!envelope(b, i, m, err)) {
    bmsg_free(m);
    return false;
  }
  /* First pass: size and 8-bit content, for SIZE= and BODY=8BITMIME. */
  sk_measure meas;
  sk_measure_init(&meas);
  char buf[16384];
  long n;
  for (long k = 0; k < (1L << 30) && (n = bmsg_read(m, buf, sizeof buf)) > 0;
       k++)
    sk_measure_feed(&meas, buf, (size_t)n);
  sk_measure_finish(&meas);
  if (n < 0) {
    bmsg_free(m);
    return fail_open(b, i, err, EX_NOINPUT, "cannot read %s", name);
  }
  bmsg_rewind(m);
  out->env = (smtpkit_envelope){.from = m->from,
                                .to = m->to_v,
                                .n_to = m->to.n,
                                .size = meas.size,
                                .eight_bit = meas.eight_bit};
  out->read = bmsg_read;
  out->read_ctx = m;
  b->msgs[i] = m;
  return true;
}

static void close_message(void *ctx, size_t i, smtpkit_batch_message *msg) {
  bctx *b = ctx;
  (void)msg;
  bmsg_free(b->msgs[i]);
  b->msgs[i] = NULL;
}

/* ---- progress bar (stderr, only on a terminal) ---- */

static void bar_clear(bctx *b) {
  if (b->bar_shown)
    fputs("\r\033[K", stderr);
  b->bar_shown = false;
}

static void bar_draw(bctx *b, bool force) {
  long long t = now_ms();
  if (!b->bar || (!force && t - b->bar_at < 100))
    return;
  b->bar_at = t;
  size_t n = sk_mailbox_count(b->mb);
  int width = 30, fill = n ? (int)(width * b->done / n) : width;
  double secs = (double)(t - b->start) / 1000.0;
  fprintf(stderr, "\r[%.*s%*s] %zu/%zu  sent %zu  failed %zu  %.0f msg/s", fill,
          "##############################", width - fill, "", b->done, n,
          b->sent, b->failed + b->unknown,
          secs > 0 ? (double)b->done / secs : 0.0);
  fflush(stderr);
  b->bar_shown = true;
}

/* ---- results ---- */

static void json_result(bctx *b, const smtpkit_batch_result *r, bool ok,
                        smtpkit_cause cause) {
  const smtpkit_error *e = r->error;
  const smtpkit_session *s = r->session;
  jw w;
  jw_begin(&w, stdout);
  jw_bool(&w, "ok", ok);
  jw_str(&w, "cause", smtpkit_cause_name(cause));
  jw_bool(&w, "transient", !ok && e->transient);
  if (!ok)
    jw_str(&w, "stage", smtpkit_stage_name(e->stage));
  jw_obj(&w, "server");
  jw_str(&w, "host", b->set.host);
  smtpkit_tls_mode mode = s ? smtpkit_session_tls_mode(s) : b->set.tls;
  jw_int(&w, "port",
         s                              ? smtpkit_session_port(s)
         : b->set.port                  ? b->set.port
         : mode == SMTPKIT_TLS_IMPLICIT ? 465
                                        : 587);
  jw_str(&w, "tls", smtpkit_tls_mode_name(mode));
  jw_str(&w, "tls_version", s ? smtpkit_session_tls_version(s) : NULL);
  jw_str(&w, "auth_mechanism", s ? smtpkit_session_auth_mechanism(s) : NULL);
  jw_obj_end(&w);
  jw_arr(&w, "accepted");
  for (size_t i = 0; i < r->n_rcpt; i++)
    if (r->rcpt[i].accepted && r->sent)
      jw_str(&w, NULL, r->rcpt[i].address);
  jw_arr_end(&w);
  jw_arr(&w, "rejected");
  for (size_t i = 0; i < r->n_rcpt; i++)
    if (!r->rcpt[i].accepted) {
      jw_obj(&w, NULL);
      jw_str(&w, "address", r->rcpt[i].address);
      jw_reply(&w, "reply", &r->rcpt[i].reply);
      jw_obj_end(&w);
    }
  jw_arr_end(&w);
  const smtpkit_auth_attempt *aa = NULL;
  size_t na = s ? smtpkit_session_auth_attempts(s, &aa) : 0;
  json_auth_attempts(&w, "auth_attempts", aa, na);
  json_warnings(&w, b->w);
  jw_str(&w, "queue_id", r->sent ? r->queue_id : NULL);
  jw_reply(&w, "reply",
           cause == SMTPKIT_CAUSE_ok || !e->reply.code ? r->data_reply
                                                       : &e->reply);
  if (e->detail[0] && !ok)
    jw_str(&w, "detail", e->detail);
  jw_int(&w, "elapsed_ms",
         now_ms() - (b->t0[r->index] ? b->t0[r->index] : b->start));
  jw_str(&w, "message", sk_mailbox_name(b->mb, r->index));
  jw_int(&w, "index", (long long)r->index);
  jw_int(&w, "attempts", r->attempts);
  jw_int(&w, "connection", r->connection);
  jw_end(&w);
}

static void human_result(bctx *b, const smtpkit_batch_result *r, bool ok) {
  const smtpkit_error *e = r->error;
  const char *name = sk_mailbox_name(b->mb, r->index);
  if (r->sent) {
    if (b->out_tty)
      bar_clear(b);
    printf("sent %s:", name);
    for (size_t i = 0, k = 0; i < r->n_rcpt; i++)
      if (r->rcpt[i].accepted)
        printf("%s %s", k++ ? "," : "", r->rcpt[i].address);
    if (r->queue_id)
      printf(" (queued as %s)", r->queue_id);
    putchar('\n');
  }
  if (ok)
    return;
  bar_clear(b);
  for (size_t i = 0; i < r->n_rcpt; i++)
    if (!r->rcpt[i].accepted) {
      fprintf(stderr, "smtpkit: %s: recipient %s refused: %d%s%s ", name,
              r->rcpt[i].address, r->rcpt[i].reply.code,
              r->rcpt[i].reply.enhanced[0] ? " " : "",
              r->rcpt[i].reply.enhanced);
      print_escaped(stderr, r->rcpt[i].reply.text,
                    strlen(r->rcpt[i].reply.text));
      fputc('\n', stderr);
    }
  if (r->sent)
    return;
  fprintf(stderr, "smtpkit: %s: %s: %s%s at %s", name,
          e->cause == SMTPKIT_CAUSE_delivery_unknown
              ? "may or may not have been delivered (not sent again)"
              : "not sent",
          smtpkit_cause_name(e->cause), e->transient ? " (temporary)" : "",
          smtpkit_stage_name(e->stage));
  if (e->reply.code) {
    fprintf(stderr, ": %d%s%s ", e->reply.code, e->reply.enhanced[0] ? " " : "",
            e->reply.enhanced);
    print_escaped(stderr, e->reply.text, strlen(e->reply.text));
  }
  if (e->detail[0]) {
    fputs(" — ", stderr);
    print_escaped(stderr, e->detail, strlen(e->detail));
  }
  fputc('\n', stderr);
}

static void on_result(void *ctx, const smtpkit_batch_result *r) {
  bctx *b = ctx;
  const smtpkit_error *e = r->error;
  smtpkit_cause cause =
      r->sent && e->cause == SMTPKIT_CAUSE_ok ? SMTPKIT_CAUSE_ok : e->cause;
  bool ok = r->sent && cause == SMTPKIT_CAUSE_ok;
  pthread_mutex_lock(&b->mu);
  if (!ok && !b->codes[r->index])
    b->codes[r->index] = smtpkit_cause_exit_code(cause, e->transient);
  pthread_mutex_unlock(&b->mu);
  b->done++;
  if (r->sent)
    b->sent++;
  else if (cause == SMTPKIT_CAUSE_delivery_unknown)
    b->unknown++;
  else
    b->failed++;
  if (r->session && smtpkit_session_auth_mechanism(r->session))
    b->auth_ok = true;
  else if (guard_is_refusal(e))
    b->auth_refused = true;
  if (b->req->c->json) {
    if (b->out_tty)
      bar_clear(b);
    json_result(b, r, ok, cause);
  } else
    human_result(b, r, ok);
  bar_draw(b, !b->bar_shown);
}

/* ---- lock-out guard (as for one message) ---- */

static unsigned guard_port(const smtpkit_settings *set) {
  return set->port ? set->port : set->tls == SMTPKIT_TLS_IMPLICIT ? 465 : 587;
}

/* Every message is reported refused when the guard holds the secret. */
static bool guard_blocks(bctx *b, size_t n) {
  char why[sizeof((smtpkit_error *)0)->detail];
  if (!guard_holds(b->req->c, b->req->c->host, guard_port(&b->set), why,
                   sizeof why))
    return false;
  smtpkit_error err = {0};
  guard_error(&err, why);
  for (size_t i = 0; i < n; i++) {
    b->t0[i] = now_ms();
    smtpkit_batch_result r = {.index = i, .error = &err};
    on_result(b, &r);
  }
  return true;
}

static void guard_after(bctx *b) {
  guard_learn(b->req->c, b->req->c->host, guard_port(&b->set), b->auth_ok,
              b->auth_refused);
}

/* ---- summary ---- */

static int first_failure(const bctx *b, size_t n, size_t *at) {
  for (size_t i = 0; i < n; i++)
    if (b->codes[i]) {
      *at = i;
      return b->codes[i];
    }
  return 0;
}

static void summary(bctx *b, size_t n, unsigned connections) {
  FILE *f = b->req->c->json ? stderr : stdout;
  double secs = (double)(now_ms() - b->start) / 1000.0;
  fprintf(f,
          "batch: %zu message%s from %s (%s): %zu sent, %zu failed, %zu "
          "delivery unknown; %.2f s, %.0f msg/s, %u connection%s\n",
          n, n == 1 ? "" : "s", b->req->path,
          sk_mailbox_kind_name(sk_mailbox_kind_of(b->mb)), b->sent, b->failed,
          b->unknown, secs, secs > 0 ? (double)n / secs : 0.0, connections,
          connections == 1 ? "" : "s");
  size_t at;
  if (!b->req->c->json && first_failure(b, n, &at))
    fprintf(stderr,
            "smtpkit: not every message was sent; exit code from "
            "the first one: %s\n",
            sk_mailbox_name(b->mb, at));
}

int batch_send(const batch_request *q) {
  if (!q->c->host[0])
    return usage_error("send", "no server: give -s HOST[:PORT]");
  if (q->from && !plain_address(q->from))
    return usage_error("send", "--from '%s' is not a plain address", q->from);
  char err[600];
  bool missing;
  sk_mailbox *mb =
      sk_mailbox_open(q->path, SK_MBOXRD, err, sizeof err, &missing);
  if (!mb) {
    fprintf(stderr, "smtpkit: %s\n", err);
    return missing ? EX_NOINPUT : EX_DATAERR;
  }
  warnings w = {0};
  transcript tr;
  bctx b = {.req = q, .mb = mb, .w = &w};
  int rc = transcript_open(&tr, q->c->transcript, q->c->verbose);
  if (rc) {
    sk_mailbox_free(mb);
    return rc;
  }
  rc = conn_settings(q->c, &b.set, 30, &w);
  size_t n = sk_mailbox_count(mb);
  b.msgs = calloc(n ? n : 1, sizeof *b.msgs);
  b.codes = calloc(n ? n : 1, sizeof *b.codes);
  b.t0 = calloc(n ? n : 1, sizeof *b.t0);
  if (!rc && (!b.msgs || !b.codes || !b.t0))
    rc = EX_OSERR;
  if (rc)
    goto out;
  if (!q->c->json)
    print_warnings(&w);
  b.set.transcript = transcript_line;
  b.set.transcript_ctx = &tr;
  pthread_mutex_init(&b.mu, NULL);
  b.out_tty = isatty(1);
  b.bar = isatty(2) && !(tr.f == stderr && !tr.events_only);
  b.start = now_ms();
  unsigned conns = q->connections ? q->connections : 1;
  if (!guard_blocks(&b, n)) {
    smtpkit_batch batch = {.count = n,
                           .connections = conns,
                           .open = open_message,
                           .close = close_message,
                           .result = on_result,
                           .ctx = &b};
    smtpkit_batch_send(&b.set, &batch);
    guard_after(&b);
  }
  bar_clear(&b);
  summary(&b, n, conns);
  size_t at;
  rc = first_failure(&b, n, &at);
  pthread_mutex_destroy(&b.mu);
out:
  transcript_close(&tr);
  free(b.msgs);
  free(b.codes);
  free(b.t0);
  sk_mailbox_free(mb);
  return rc;
}
