/*
 * session.c — SMTP client state machine (sans-I/O).
 *
 * RFC 5321 (SMTP: greeting, EHLO/HELO, MAIL, RCPT, DATA, QUIT),
 * RFC 3207 (STARTTLS: a fresh EHLO after the handshake, earlier
 * capabilities forgotten), RFC 4954 (AUTH and its reply codes),
 * RFC 2920 (PIPELINING of MAIL/RCPT/DATA, and §3.1: message content may
 * be the first "command" of a group, so the next message's MAIL/RCPT/DATA
 * follow the end of data without waiting; RSET may lead a group),
 * RFC 1870 (SIZE),
 * RFC 6152 (8BITMIME), RFC 6531 (SMTPUTF8).
 *
 * set_state() is the only way the state changes. Each reply is handled by
 * the case for the state that expected it.
 */
#include "session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const state_names[] = {
#define SK_STATE_NAME(n) #n,
    SK_STATES(SK_STATE_NAME)
#undef SK_STATE_NAME
};

const char *sk_state_name(sk_state s) { return state_names[s]; }

static void set_state(sk_sm *m, sk_state s) {
#ifdef SMTPKIT_TRACE_STATES
  fprintf(stderr, "smtpkit: state %s -> %s\n", state_names[m->state],
          state_names[s]);
#endif
  m->state = s;
}

void sk_sm_init(sk_sm *m, const smtpkit_settings *set, const char *helo,
                bool implicit_tls) {
  memset(m, 0, sizeof *m);
  m->set = set;
  sk_strlcpy(m->helo, helo, sizeof m->helo);
  m->tls_active = implicit_tls;
  m->require_tls = !implicit_tls && set->tls != SMTPKIT_TLS_NONE;
  set_state(m, SK_ST_GREETING);
}

static void free_rcpt(sk_sm *m) {
  if (m->rcpt)
    for (size_t i = 0; i < m->n_rcpt; i++)
      sk_reply_clear(&m->rcpt[i].reply);
  free(m->rcpt);
  m->rcpt = NULL;
  m->n_rcpt = 0;
}

void sk_sm_free(sk_sm *m) {
  sk_sasl_end(m->sasl);
  m->sasl = NULL;
  sk_sasl_free_response(m->pending_ir);
  m->pending_ir = NULL;
  for (size_t i = 0; i < m->n_attempts; i++)
    sk_reply_clear(&m->attempts[i].reply);
  free_rcpt(m);
  sk_reply_clear(&m->data_reply);
  sk_caps_free(&m->caps);
  free(m->banner);
  m->banner = NULL;
  sk_buf_free(&m->out);
  sk_buf_free(&m->shown);
  sk_error_clear(&m->err);
}

smtpkit_stage sk_sm_stage(const sk_sm *m) {
  switch (m->state) {
  case SK_ST_GREETING:
    return SMTPKIT_STAGE_GREETING;
  case SK_ST_EHLO:
  case SK_ST_HELO:
    return SMTPKIT_STAGE_EHLO;
  case SK_ST_STARTTLS:
    return SMTPKIT_STAGE_STARTTLS;
  case SK_ST_AUTH:
    return SMTPKIT_STAGE_AUTH;
  case SK_ST_MAIL:
  case SK_ST_READY:
  case SK_ST_RSET:
    return SMTPKIT_STAGE_MAIL;
  case SK_ST_RCPT:
    return SMTPKIT_STAGE_RCPT;
  case SK_ST_DATA:
  case SK_ST_DOT:
  case SK_ST_ABORT_DOT:
    return SMTPKIT_STAGE_DATA;
  case SK_ST_QUIT:
  case SK_ST_CLOSED:
    return SMTPKIT_STAGE_QUIT;
  case SK_ST_FAILED:
    return m->err.stage;
  }
  return SMTPKIT_STAGE_NONE;
}

/* Queues a command. shown is what the transcript gets (NULL: the same). */
static void send_cmd(sk_sm *m, const char *wire, const char *shown) {
  sk_buf_append(&m->out, wire, strlen(wire));
  sk_buf_append(&m->out, "\r\n", 2);
  const char *s = shown ? shown : wire;
  sk_buf_append(&m->shown, s, strlen(s));
  sk_buf_append(&m->shown, "\n", 1);
}

sk_context sk_sm_context(const sk_sm *m) {
  sk_context c = {.provider = m->provider,
                  .host = m->set->host,
                  .banner = m->banner,
                  .user = m->set->user,
                  .mechanism = m->mech[0] ? m->mech : NULL,
                  .oauth_error = m->oauth_error[0] ? m->oauth_error : NULL,
                  .authed = m->authed,
                  .tls = m->tls_active};
  return c;
}

static bool in_transaction(const sk_sm *m) {
  return m->state == SK_ST_MAIL || m->state == SK_ST_RCPT ||
         m->state == SK_ST_DATA || m->state == SK_ST_DOT ||
         m->state == SK_ST_ABORT_DOT;
}

/* A transaction the server refused: the connection stays usable. */
static sk_action txn_fail(sk_sm *m) {
  set_state(m, SK_ST_FAILED);
  m->txn_refused = true;
  return SK_ACT_FAIL;
}

static sk_action fail_reply(sk_sm *m, const smtpkit_reply *r) {
  sk_context ctx = sk_sm_context(m);
  bool refused = in_transaction(m) && r->code != 421;
  sk_classify_reply(&m->err, sk_sm_stage(m), r, &ctx);
  set_state(m, SK_ST_FAILED);
  m->txn_refused = refused;
  return SK_ACT_FAIL;
}

sk_action sk_sm_fail_event(sk_sm *m, sk_event ev, const char *detail) {
  sk_classify_event(&m->err, ev, sk_sm_stage(m));
  if (detail)
    sk_error_detail(&m->err, "%s", detail);
  set_state(m, SK_ST_FAILED);
  m->txn_refused = ev == SK_EV_NO_RECIPIENTS || ev == SK_EV_TOO_BIG;
  return SK_ACT_FAIL;
}

static sk_action send_ehlo(sk_sm *m) {
  char cmd[300];
  snprintf(cmd, sizeof cmd, "EHLO %s", m->helo);
  send_cmd(m, cmd, NULL);
  set_state(m, SK_ST_EHLO);
  return SK_ACT_WRITE_READ;
}

static bool have_credentials(const sk_sm *m) {
  return m->set->user && (m->set->password || m->set->oauth2_token);
}

/* ---- authentication ---- */

static sk_action start_next_mech(sk_sm *m);

static void record_attempt(sk_sm *m, const smtpkit_reply *r) {
  if (m->n_attempts >= SK_MAX_AUTH_ATTEMPTS)
    return;
  smtpkit_auth_attempt *a = &m->attempts[m->n_attempts++];
  sk_strlcpy(a->mechanism, m->mech, sizeof a->mechanism);
  sk_reply_copy(&a->reply, r);
}

static sk_action send_auth_line(sk_sm *m, char *initial) {
  char shown[64];
  sk_buf line = {0};
  snprintf(shown, sizeof shown, "AUTH %s%s", m->mech,
           initial ? " <redacted>" : "");
  /* RFC 4954 §4: an initial response that would make the command longer
   * than 512 octets is sent after an empty challenge instead. */
  bool inline_ir = initial && strlen(initial) + strlen(m->mech) + 8 <= 512;
  sk_buf_appendf(&line, "AUTH %s%s%s", m->mech, inline_ir ? " " : "",
                 inline_ir ? (*initial ? initial : "=") : "");
  if (!inline_ir && initial)
    snprintf(shown, sizeof shown, "AUTH %s", m->mech);
  send_cmd(m, line.data, shown);
  sk_buf_free(&line);
  if (!inline_ir && initial)
    m->pending_ir = initial; /* sent when the server's empty 334 asks */
  else
    sk_sasl_free_response(initial);
  set_state(m, SK_ST_AUTH);
  return SK_ACT_WRITE_READ;
}

static sk_action start_next_mech(sk_sm *m) {
  if (m->next_mech >= m->n_plan || m->n_attempts >= SK_MAX_AUTH_ATTEMPTS)
    return SK_ACT_FAIL;
  sk_strlcpy(m->mech, m->plan[m->next_mech++], sizeof m->mech);
  m->oauth_error[0] = '\0';
  sk_sasl_creds creds = {.user = m->set->user,
                         .host = m->set->host,
                         .port = m->set->port,
                         .cb_type = m->cb_type[0] ? m->cb_type : NULL,
                         .cb_data = m->cb_data[0] ? m->cb_data : NULL,
                         .password = m->set->password,
                         .password_ctx = m->set->password_ctx,
                         .token = m->set->oauth2_token,
                         .token_ctx = m->set->oauth2_token_ctx};
  char *initial = NULL, err[160] = "";
  m->sasl = sk_sasl_start(m->mech, &creds, &initial, err, sizeof err);
  if (!m->sasl)
    return sk_sm_fail_event(m, SK_EV_INTERNAL, err);
  return send_auth_line(m, initial);
}

static sk_action begin_auth(sk_sm *m) {
  if (!have_credentials(m)) {
    set_state(m, SK_ST_READY);
    return SK_ACT_READY;
  }
  if (!m->tls_active && !m->set->allow_plaintext_auth)
    return sk_sm_fail_event(
        m, m->caps.starttls ? SK_EV_TLS_FIRST : SK_EV_NO_STARTTLS,
        "credentials are only sent over TLS: this connection is not "
        "encrypted (use STARTTLS or implicit TLS, or --allow-plaintext-auth)");
  if (!m->caps.has_auth)
    return sk_sm_fail_event(
        m, !m->tls_active && m->caps.starttls ? SK_EV_TLS_FIRST : SK_EV_NO_AUTH,
        !m->tls_active && m->caps.starttls
            ? "the server offers AUTH only after STARTTLS"
            : "the server does not offer AUTH; credentials were not sent");
  m->n_plan = sk_sasl_plan(
      &m->caps, m->tls_active, m->cb_type[0] != '\0', m->set->password != NULL,
      m->set->oauth2_token != NULL, m->set->allow_plaintext_auth,
      m->set->mechanisms, m->plan, SK_MAX_MECHS);
  if (m->n_plan == 0) {
    char d[600];
    snprintf(d, sizeof d, "server offers:%s; usable here: none", m->caps.auth);
    return sk_sm_fail_event(m, SK_EV_NO_COMMON_MECH, d);
  }
  set_state(m, SK_ST_AUTH);
  return start_next_mech(m);
}

static sk_action on_auth(sk_sm *m, const smtpkit_reply *r) {
  if (r->code == 334 && m->pending_ir) {
    send_cmd(m, *m->pending_ir ? m->pending_ir : "=", "<redacted>");
    sk_sasl_free_response(m->pending_ir);
    m->pending_ir = NULL;
    return SK_ACT_WRITE_READ;
  }
  if (r->code == 334) {
    char *resp = NULL, err[160] = "";
    int rc =
        sk_sasl_step(m->sasl, r->text ? r->text : "", &resp, err, sizeof err);
    if (sk_sasl_oauth_error(m->sasl))
      sk_strlcpy(m->oauth_error, sk_sasl_oauth_error(m->sasl),
                 sizeof m->oauth_error);
    if (rc == SK_SASL_ERROR) {
      sk_sasl_free_response(resp);
      /* RFC 4954 §4: "*" cancels the exchange; the server answers 501. */
      send_cmd(m, "*", NULL);
      return SK_ACT_WRITE_READ;
    }
    send_cmd(m, resp ? resp : "", "<redacted>");
    sk_sasl_free_response(resp);
    return SK_ACT_WRITE_READ;
  }
  record_attempt(m, r);
  sk_sasl_end(m->sasl);
  m->sasl = NULL;
  sk_sasl_free_response(m->pending_ir);
  m->pending_ir = NULL;
  if (r->code == 235) {
    m->authed = true;
    sk_error_clear(&m->err);
    set_state(m, SK_ST_READY);
    return SK_ACT_READY;
  }
  fail_reply(m, r);
  if (m->oauth_error[0])
    sk_error_detail(&m->err, "the server rejected the OAuth2 token: %s",
                    m->oauth_error);
  int next =
      sk_sasl_fall_back_to(m->mech, m->err.cause, r, m->tls_active,
                           m->plan + m->next_mech, m->n_plan - m->next_mech);
  if (next >= 0 && m->n_attempts < SK_MAX_AUTH_ATTEMPTS) {
    m->next_mech += (size_t)next;
    set_state(m, SK_ST_AUTH);
    sk_action a = start_next_mech(m);
    if (a != SK_ACT_FAIL)
      return a;
  }
  set_state(m, SK_ST_FAILED);
  return SK_ACT_FAIL;
}

/* ---- greeting, EHLO, STARTTLS ---- */

static sk_action after_ehlo(sk_sm *m) {
  if (m->require_tls && !m->tls_active) {
    if (!m->caps.starttls)
      return sk_sm_fail_event(m, SK_EV_NO_STARTTLS,
                              "the server does not offer STARTTLS");
    send_cmd(m, "STARTTLS", NULL);
    set_state(m, SK_ST_STARTTLS);
    return SK_ACT_WRITE_READ;
  }
  return begin_auth(m);
}

static sk_action on_ehlo(sk_sm *m, const smtpkit_reply *r) {
  if (r->code == 250) {
    sk_caps_parse(&m->caps, r);
    return after_ehlo(m);
  }
  if (r->code == 500 || r->code == 502) {
    /* Not an ESMTP server: HELO, with no extensions (so no STARTTLS). */
    char cmd[300];
    snprintf(cmd, sizeof cmd, "HELO %s", m->helo);
    send_cmd(m, cmd, NULL);
    set_state(m, SK_ST_HELO);
    return SK_ACT_WRITE_READ;
  }
  return fail_reply(m, r);
}

static sk_action on_helo(sk_sm *m, const smtpkit_reply *r) {
  if (r->code != 250)
    return fail_reply(m, r);
  sk_caps_free(&m->caps);
  memset(&m->caps, 0, sizeof m->caps);
  return after_ehlo(m);
}

sk_action sk_sm_tls_done(sk_sm *m) {
  m->tls_active = true;
  /* RFC 3207 §4.2: forget everything learnt before TLS. */
  sk_caps_free(&m->caps);
  memset(&m->caps, 0, sizeof m->caps);
  return send_ehlo(m);
}

/* ---- transaction ---- */

static void mail_cmd(sk_sm *m, const smtpkit_envelope *e) {
  sk_buf c = {0};
  sk_buf_appendf(&c, "MAIL FROM:<%s>", e->from ? e->from : "");
  if (m->caps.has_size && e->size >= 0)
    sk_buf_appendf(&c, " SIZE=%lld", e->size);
  if (e->eight_bit && m->caps.eightbitmime)
    sk_buf_appendf(&c, " BODY=8BITMIME");
  if (e->smtputf8 && m->caps.smtputf8)
    sk_buf_appendf(&c, " SMTPUTF8");
  send_cmd(m, c.data, NULL);
  sk_buf_free(&c);
}

static void rcpt_cmd(sk_sm *m, const smtpkit_envelope *e, size_t i) {
  sk_buf c = {0};
  sk_buf_appendf(&c, "RCPT TO:<%s>", e->to[i]);
  send_cmd(m, c.data, NULL);
  sk_buf_free(&c);
}

static bool too_big(const sk_sm *m, const smtpkit_envelope *env) {
  return m->caps.has_size && m->caps.size &&
         env->size > (long long)m->caps.size;
}

/* MAIL, and with PIPELINING every RCPT and DATA, in one group. */
static void queue_txn(sk_sm *m, const smtpkit_envelope *env) {
  mail_cmd(m, env);
  if (m->caps.pipelining) {
    for (size_t i = 0; i < env->n_to; i++)
      rcpt_cmd(m, env, i);
    send_cmd(m, "DATA", NULL);
  }
}

static void txn_setup(sk_sm *m, const smtpkit_envelope *env) {
  free_rcpt(m);
  sk_reply_clear(&m->data_reply);
  m->env = env;
  m->rcpt = calloc(env->n_to ? env->n_to : 1, sizeof *m->rcpt);
  m->n_rcpt = m->rcpt ? env->n_to : 0;
  for (size_t i = 0; i < m->n_rcpt; i++)
    m->rcpt[i].address = env->to[i];
  m->accepted = m->rcpt_replies = m->rcpt_next = 0;
  m->txn_failed = false;
  m->txn_refused = false;
  m->mail_after_rset = false;
  sk_error_clear(&m->err);
  m->pipelined = m->caps.pipelining;
  if (m->pipelined)
    m->rcpt_next = env->n_to;
}

bool sk_sm_can_begin(const sk_sm *m) {
  return m->state == SK_ST_READY ||
         (m->state == SK_ST_FAILED && m->txn_refused);
}

sk_action sk_sm_begin(sk_sm *m, const smtpkit_envelope *env) {
  bool after_refusal = m->state == SK_ST_FAILED && m->txn_refused;
  const smtpkit_envelope *queued = m->queued;
  m->queued = NULL;
  txn_setup(m, env);
  if (queued) {
    /* Its commands are on the wire already; their replies come next. */
    set_state(m, SK_ST_MAIL);
    if (queued != env) {
      m->txn_refused = false;
      return sk_sm_fail_event(m, SK_EV_INTERNAL,
                              "the message pipelined after the previous "
                              "one must be the next one sent");
    }
    return SK_ACT_WRITE_READ;
  }
  if (too_big(m, env)) {
    set_state(m, SK_ST_MAIL);
    char d[160];
    snprintf(d, sizeof d,
             "the message is %lld bytes; the server accepts at most %llu",
             env->size, m->caps.size);
    return sk_sm_fail_event(m, SK_EV_TOO_BIG, d);
  }
  if (after_refusal) {
    /* The refused transaction may still be open on the server. */
    send_cmd(m, "RSET", NULL);
    m->mail_after_rset = true;
    if (m->pipelined)
      queue_txn(m, env);
    set_state(m, SK_ST_RSET);
    return SK_ACT_WRITE_READ;
  }
  queue_txn(m, env);
  set_state(m, SK_ST_MAIL);
  return SK_ACT_WRITE_READ;
}

bool sk_sm_queue_next(sk_sm *m, const smtpkit_envelope *env) {
  if (!env || !m->caps.pipelining || m->state != SK_ST_DOT || m->queued ||
      too_big(m, env))
    return false;
  queue_txn(m, env);
  m->queued = env;
  return true;
}

sk_action sk_sm_rset(sk_sm *m) {
  send_cmd(m, "RSET", NULL);
  m->mail_after_rset = false;
  set_state(m, SK_ST_RSET);
  return SK_ACT_WRITE_READ;
}

static sk_action on_rset(sk_sm *m, const smtpkit_reply *r) {
  if (r->code / 100 != 2) {
    sk_context ctx = sk_sm_context(m);
    sk_classify_reply(&m->err, SMTPKIT_STAGE_MAIL, r, &ctx);
    set_state(m, SK_ST_FAILED);
    m->txn_refused = false; /* a server that refuses RSET: start afresh */
    return SK_ACT_FAIL;
  }
  if (!m->mail_after_rset) {
    set_state(m, SK_ST_READY);
    return SK_ACT_READY;
  }
  m->mail_after_rset = false;
  if (!m->pipelined)
    mail_cmd(m, m->env);
  set_state(m, SK_ST_MAIL);
  return SK_ACT_WRITE_READ;
}

static sk_action next_rcpt_or_data(sk_sm *m) {
  if (m->rcpt_replies < m->env->n_to) {
    if (!m->pipelined)
      rcpt_cmd(m, m->env, m->rcpt_next++);
    set_state(m, SK_ST_RCPT);
    return SK_ACT_WRITE_READ;
  }
  if (!m->pipelined) {
    if (m->accepted == 0)
      return sk_sm_fail_event(m, SK_EV_NO_RECIPIENTS, NULL);
    send_cmd(m, "DATA", NULL);
  }
  set_state(m, SK_ST_DATA);
  return SK_ACT_WRITE_READ;
}

static sk_action on_mail(sk_sm *m, const smtpkit_reply *r) {
  if (r->code != 250) {
    fail_reply(m, r);
    if (!m->pipelined)
      return SK_ACT_FAIL;
    /* The pipelined RCPTs and DATA still get replies: read them. */
    m->txn_failed = true;
    set_state(m, SK_ST_MAIL);
  }
  return next_rcpt_or_data(m);
}

static sk_action on_rcpt(sk_sm *m, const smtpkit_reply *r) {
  if (m->rcpt_replies >= m->n_rcpt)
    return sk_sm_fail_event(m, SK_EV_INTERNAL, "out of memory");
  smtpkit_rcpt_result *res = &m->rcpt[m->rcpt_replies++];
  res->accepted = r->code == 250 || r->code == 251;
  sk_reply_copy(&res->reply, r);
  if (res->accepted)
    m->accepted++;
  else if (!m->txn_failed && m->err.cause == SMTPKIT_CAUSE_ok) {
    sk_context ctx = sk_sm_context(m);
    sk_classify_reply(&m->err, SMTPKIT_STAGE_RCPT, r, &ctx);
  }
  return next_rcpt_or_data(m);
}

static sk_action on_data(sk_sm *m, const smtpkit_reply *r) {
  if (r->code == 354 && (m->txn_failed || m->accepted == 0)) {
    /* RFC 2920 §3.1 says the server should have refused DATA; end the
     * empty message at once so nothing is delivered. */
    sk_buf_append(&m->out, ".\r\n", 3);
    sk_buf_append(&m->shown, ".\n", 2);
    set_state(m, SK_ST_ABORT_DOT);
    return SK_ACT_WRITE_READ;
  }
  if (r->code == 354) {
    set_state(m, SK_ST_DATA);
    return SK_ACT_BODY;
  }
  if (m->txn_failed)
    return txn_fail(m);
  if (m->accepted == 0)
    return m->err.cause != SMTPKIT_CAUSE_ok
               ? txn_fail(m)
               : sk_sm_fail_event(m, SK_EV_NO_RECIPIENTS, NULL);
  return fail_reply(m, r);
}

sk_action sk_sm_body_sent(sk_sm *m) {
  set_state(m, SK_ST_DOT);
  return SK_ACT_WRITE_READ;
}

static sk_action on_dot(sk_sm *m, const smtpkit_reply *r) {
  sk_reply_clear(&m->data_reply);
  sk_reply_copy(&m->data_reply, r);
  if (r->code != 250)
    return fail_reply(m, r);
  set_state(m, SK_ST_READY);
  return SK_ACT_READY;
}

sk_action sk_sm_quit(sk_sm *m) {
  send_cmd(m, "QUIT", NULL);
  set_state(m, SK_ST_QUIT);
  return SK_ACT_WRITE_READ;
}

sk_action sk_sm_on_reply(sk_sm *m, const smtpkit_reply *r) {
  /* RFC 5321 §3.8: 421 means the server is closing the channel, whatever
   * was pipelined after the command it answers. */
  if (r->code == 421 && m->state != SK_ST_QUIT)
    return fail_reply(m, r);
  switch (m->state) {
  case SK_ST_GREETING:
    free(m->banner);
    m->banner = sk_strdup(r->text);
    return r->code == 220 ? send_ehlo(m) : fail_reply(m, r);
  case SK_ST_EHLO:
    return on_ehlo(m, r);
  case SK_ST_HELO:
    return on_helo(m, r);
  case SK_ST_STARTTLS:
    return r->code == 220 ? SK_ACT_STARTTLS : fail_reply(m, r);
  case SK_ST_AUTH:
    return on_auth(m, r);
  case SK_ST_MAIL:
    return on_mail(m, r);
  case SK_ST_RCPT:
    return on_rcpt(m, r);
  case SK_ST_DATA:
    return on_data(m, r);
  case SK_ST_ABORT_DOT:
    return txn_fail(m);
  case SK_ST_DOT:
    return on_dot(m, r);
  case SK_ST_RSET:
    return on_rset(m, r);
  case SK_ST_QUIT:
    set_state(m, SK_ST_CLOSED);
    return SK_ACT_DONE;
  case SK_ST_READY:
  case SK_ST_CLOSED:
  case SK_ST_FAILED:
    break;
  }
  return sk_sm_fail_event(m, SK_EV_GARBLED, "reply the client did not expect");
}
