/*
 * batch.c — many messages over one or more connections.
 *
 * RFC 5321 §3.8 (421: the server is closing the channel; what was not
 * accepted must be sent again on a new connection), §4.1.1.4 (a message is
 * accepted only by the final 250 to its end of data), RFC 1047 (a reply
 * lost after the end of data: the message may have been delivered; sending
 * it again makes duplicates, so it is reported delivery_unknown and never
 * retried), RFC 2920 (the next message's commands follow each end of data:
 * smtpkit_session_send_next).
 *
 * Each connection is a worker holding at most three messages: the one
 * being sent, the one pipelined after it, and the one after that, read
 * while the server works on the first (sk_session_set_idle). Workers take
 * messages from one shared queue; a worker whose connection ends
 * reconnects and resumes with what it holds, in order. Every loop is bounded:
 * attempts per message, connection failures in a row, and the number of rounds.
 */
#define _GNU_SOURCE
#include "batch.h"
#include "internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A message held by a worker: its source, wrapped to notice read errors. */
typedef struct slot {
  bool used, opened;
  size_t index;
  smtpkit_batch_message m;
  smtpkit_read_fn read;
  void *read_ctx;
  bool read_failed;
} slot;

typedef struct runner {
  const smtpkit_settings *set;
  const smtpkit_batch *b;
  unsigned max_attempts, max_reconnects;
  pthread_mutex_t mu;
  size_t next;  /* first message never handed out */
  size_t *back; /* handed back by workers that gave up */
  size_t n_back;
  unsigned *attempts; /* per message */
  unsigned active;    /* workers that may still take messages */
  size_t sent;
} runner;

typedef struct worker {
  runner *r;
  unsigned id;
  smtpkit_session *s;
  slot slots[3];
  slot *q[3]; /* held, in order: being sent, pipelined after it, read ahead */
  unsigned fails;     /* connection failures in a row */
  smtpkit_error last; /* why the last connection failed */
  pthread_t thread;
} worker;

static void copy_error(smtpkit_error *dst, const smtpkit_error *src) {
  sk_error_clear(dst);
  *dst = *src;
  dst->reply.text = NULL;
  sk_reply_copy(&dst->reply, &src->reply);
}

/* ---- the shared queue (called with r->mu held) ---- */

static bool take_locked(runner *r, size_t *index) {
  if (r->n_back) {
    *index = r->back[--r->n_back];
    return true;
  }
  if (r->next < r->b->count) {
    *index = r->next++;
    return true;
  }
  return false;
}

static void result_locked(runner *r, worker *w, size_t index, bool sent,
                          const smtpkit_error *err, bool from_session) {
  smtpkit_batch_result res = {.index = index,
                              .sent = sent,
                              .error = err,
                              .attempts = r->attempts[index],
                              .connection = w->id,
                              .session = w->s};
  if (from_session && w->s) {
    res.n_rcpt = smtpkit_session_rcpt_results(w->s, &res.rcpt);
    res.data_reply = smtpkit_session_data_reply(w->s);
    res.queue_id = sent ? smtpkit_session_queue_id(w->s) : NULL;
  }
  if (sent)
    r->sent++;
  r->b->result(r->b->ctx, &res);
}

/* ---- messages held by a worker ---- */

static long slot_read(void *ctx, char *buf, size_t cap) {
  slot *sl = ctx;
  long n = sl->read(sl->read_ctx, buf, cap);
  if (n < 0)
    sl->read_failed = true;
  return n;
}

static void slot_close(worker *w, slot *sl) {
  if (sl->opened && w->r->b->close)
    w->r->b->close(w->r->b->ctx, sl->index, &sl->m);
  sl->opened = false;
}

static void slot_release(worker *w, slot *sl) {
  slot_close(w, sl);
  sl->used = false;
}

/* Reports the message and lets it go. */
static void finish(worker *w, slot *sl, bool sent, const smtpkit_error *err,
                   bool from_session) {
  pthread_mutex_lock(&w->r->mu);
  result_locked(w->r, w, sl->index, sent, err, from_session);
  pthread_mutex_unlock(&w->r->mu);
  slot_release(w, sl);
}

/* Opens (or reopens, from its first byte) a held message. False when it
 * cannot be read: it has then been reported failed. */
static bool slot_open(worker *w, slot *sl) {
  if (sl->opened)
    return true;
  smtpkit_error err = {0};
  memset(&sl->m, 0, sizeof sl->m);
  sl->m.env.size = -1;
  if (!w->r->b->open(w->r->b->ctx, sl->index, &sl->m, &err)) {
    if (err.cause == SMTPKIT_CAUSE_ok)
      sk_classify_event(&err, SK_EV_INTERNAL, SMTPKIT_STAGE_NONE);
    finish(w, sl, false, &err, false);
    sk_error_clear(&err);
    return false;
  }
  sl->opened = true;
  sl->read = sl->m.read;
  sl->read_ctx = sl->m.read_ctx;
  sl->read_failed = false;
  return true;
}

static bool take(worker *w, slot *sl) {
  pthread_mutex_lock(&w->r->mu);
  bool got = take_locked(w->r, &sl->index);
  pthread_mutex_unlock(&w->r->mu);
  sl->used = got;
  sl->opened = false;
  return got;
}

/* ---- connections ---- */

static void sleep_ms(long ms) {
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
  while (nanosleep(&ts, &ts) != 0)
    ;
}

static void drop_session(worker *w) {
  if (!w->s)
    return;
  smtpkit_session_close(w->s);
  smtpkit_session_free(w->s);
  w->s = NULL;
}

static void *worker_main(void *arg);

/* The first connection opens alone (one refused password is not tried N
 * times at once); the others start once it works. */
static void spawn_others(runner *r, worker *ws, unsigned n) {
  for (unsigned i = 1; i < n; i++) {
    pthread_mutex_lock(&r->mu);
    r->active++;
    pthread_mutex_unlock(&r->mu);
    if (pthread_create(&ws[i].thread, NULL, worker_main, &ws[i]) != 0) {
      pthread_mutex_lock(&r->mu);
      r->active--;
      pthread_mutex_unlock(&r->mu);
      ws[i].thread = 0;
    }
  }
}

/* Makes sure the worker has a connection that can take a message. False
 * when it gives up. */
static bool connect_ready(worker *w) {
  runner *r = w->r;
  if (w->s && smtpkit_session_ready(w->s))
    return true;
  for (unsigned tries = 0; tries <= r->max_reconnects; tries++) {
    drop_session(w);
    if (w->fails >= r->max_reconnects)
      return false;
    if (w->fails) /* 250 ms, 500 ms, 1 s, ... at most 4 s */
      sleep_ms(w->fails >= 5 ? 4000 : 125L << w->fails);
    w->s = smtpkit_session_new(r->set);
    if (!w->s)
      return false;
    if (smtpkit_session_open(w->s))
      return true;
    const smtpkit_error *e = smtpkit_session_error(w->s);
    copy_error(&w->last, e);
    w->fails++;
    /* Bad credentials, certificates, settings: another try only hurts. */
    if (!e->transient) {
      w->fails = r->max_reconnects;
      return false;
    }
  }
  return false;
}

/* The connection is given up: the held messages go back to the queue, and
 * the last worker to give up reports every message left as failed. */
static void give_up(worker *w) {
  runner *r = w->r;
  smtpkit_error err = {0};
  copy_error(&err, &w->last);
  if (err.cause == SMTPKIT_CAUSE_ok) {
    sk_classify_event(&err, SK_EV_INTERNAL, SMTPKIT_STAGE_CONNECT);
    snprintf(err.detail, sizeof err.detail, "no connection could be made");
  } else {
    char d[sizeof err.detail];
    snprintf(d, sizeof d, "not sent: the connection failed%s: %.400s",
             err.transient ? " again and again" : "", w->last.detail);
    memcpy(err.detail, d, sizeof d);
  }
  for (int i = 0; i < 3; i++)
    slot_close(w, w->q[i]);
  pthread_mutex_lock(&r->mu);
  for (int i = 2; i >= 0; i--) /* the queue hands back the last one first */
    if (w->q[i]->used) {
      r->back[r->n_back++] = w->q[i]->index;
      w->q[i]->used = false;
    }
  if (--r->active == 0)
    for (size_t index; take_locked(r, &index);)
      result_locked(r, w, index, false, &err, false);
  pthread_mutex_unlock(&r->mu);
  sk_error_clear(&err);
}

/* ---- one message ---- */

/* Moves the held messages to the front, in order (pointers only: the
 * envelope pipelined in the session keeps its address). */
static void compact(worker *w) {
  slot *used[3], *free_[3];
  int nu = 0, nf = 0;
  for (int i = 0; i < 3; i++)
    if (w->q[i]->used)
      used[nu++] = w->q[i];
    else
      free_[nf++] = w->q[i];
  for (int i = 0; i < nu; i++)
    w->q[i] = used[i];
  for (int i = 0; i < nf; i++)
    w->q[nu + i] = free_[i];
}

/* Takes and opens messages until `want` are held and open. */
static void fill(worker *w, int want) {
  for (int i = 0; i < want && i < 3; i++) {
    compact(w);
    if (!w->q[i]->used && !take(w, w->q[i]))
      return;
    if (!slot_open(w, w->q[i]))
      i--; /* reported failed: take another */
  }
}

/* While the server works on the message just ended: read the one after
 * the pipelined one. */
static void read_ahead(void *ctx) { fill(ctx, 3); }

static void send_one(worker *w) {
  runner *r = w->r;
  slot *cur = w->q[0], *nxt = w->q[1];
  unsigned att = ++r->attempts[cur->index]; /* only this worker holds it */
  bool ok =
      smtpkit_session_send_next(w->s, &cur->m.env, slot_read, cur,
                                nxt->used && nxt->opened ? &nxt->m.env : NULL);
  const smtpkit_error *e = smtpkit_session_error(w->s);
  if (ok) {
    w->fails = 0;
    finish(w, cur, true, e, true);
  } else if (cur->read_failed || e->cause == SMTPKIT_CAUSE_delivery_unknown) {
    /* Not the connection's fault / never to be sent twice. */
    finish(w, cur, false, e, true);
  } else if (smtpkit_session_ready(w->s)) {
    w->fails = 0; /* the server refused this message; it works */
    finish(w, cur, false, e, true);
  } else {
    /* 421, closed, time-out, garbled: not accepted; try again on a new
     * connection, unless it had its share of them. */
    copy_error(&w->last, e);
    w->fails++;
    if (att >= r->max_attempts)
      finish(w, cur, false, e, true);
    else
      slot_close(w, cur); /* reopened from its first byte */
  }
  compact(w);
}

static void run_worker(worker *w, worker *all, unsigned n) {
  runner *r = w->r;
  bool spawned = w->id != 0 || n <= 1;
  size_t rounds = r->b->count * (r->max_attempts + 2) + 64;
  for (size_t i = 0; i < rounds; i++) {
    compact(w);
    if (!w->q[0]->used && !take(w, w->q[0]))
      break;
    if (!connect_ready(w)) {
      give_up(w);
      drop_session(w);
      return;
    }
    sk_session_set_idle(w->s, read_ahead, w);
    if (!spawned) {
      spawn_others(r, all, n);
      spawned = true;
    }
    fill(w, 2);
    if (w->q[0]->used && w->q[0]->opened)
      send_one(w);
  }
  if (w->q[0]->used || w->q[1]->used || w->q[2]->used) {
    /* Out of rounds (it should not happen): report, never drop. */
    sk_error_clear(&w->last);
    sk_classify_event(&w->last, SK_EV_INTERNAL, SMTPKIT_STAGE_NONE);
    snprintf(w->last.detail, sizeof w->last.detail,
             "gave up after too many rounds");
    give_up(w);
  } else {
    pthread_mutex_lock(&r->mu);
    r->active--;
    pthread_mutex_unlock(&r->mu);
  }
  drop_session(w);
}

static void *worker_main(void *arg) {
  run_worker(arg, NULL, 0);
  return NULL;
}

size_t smtpkit_batch_send(const smtpkit_settings *settings,
                          const smtpkit_batch *batch) {
  unsigned n = batch->connections ? batch->connections : 1;
  if (n > 256)
    n = 256;
  if (batch->count && n > batch->count)
    n = (unsigned)batch->count;
  runner r = {.set = settings,
              .b = batch,
              .max_attempts = batch->max_attempts ? batch->max_attempts : 3,
              .max_reconnects =
                  batch->max_reconnects ? batch->max_reconnects : 3,
              .active = 1};
  pthread_mutex_init(&r.mu, NULL);
  r.attempts = calloc(batch->count ? batch->count : 1, sizeof *r.attempts);
  r.back = calloc(3 * (size_t)n + 3, sizeof *r.back);
  worker *ws = calloc(n, sizeof *ws);
  if (!r.attempts || !r.back || !ws) {
    free(r.attempts);
    free(r.back);
    free(ws);
    pthread_mutex_destroy(&r.mu);
    return 0;
  }
  for (unsigned i = 0; i < n; i++) {
    ws[i].r = &r;
    ws[i].id = i;
    for (int k = 0; k < 3; k++)
      ws[i].q[k] = &ws[i].slots[k];
  }
  run_worker(&ws[0], ws, n);
  for (unsigned i = 1; i < n; i++)
    if (ws[i].thread)
      pthread_join(ws[i].thread, NULL);
  for (unsigned i = 0; i < n; i++)
    sk_error_clear(&ws[i].last);
  size_t sent = r.sent;
  free(ws);
  free(r.attempts);
  free(r.back);
  pthread_mutex_destroy(&r.mu);
  return sent;
}
