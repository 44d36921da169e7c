/*
 * doctor.c — one root cause, from evidence, in seconds.
 *
 * RFC 6409 (submission), RFC 8314 §5.1 and RFC 6186 (SRV records for
 * submission), RFC 5321 §5.1 (MX), RFC 4954 (AUTH).
 *
 * smtpkit_doctor_run() goes through these steps, one function each:
 *   target    the input (host, host:port or an address) becomes a host and
 *             ports: the knowledge base, then SRV, then MX, then a guess;
 *             and the provider the user expects there
 *   probe     every port, both as plain SMTP + STARTTLS and as implicit
 *             TLS, at once (probe.c), within the time-out
 *   who       an MX or relay host used for submission (wrong_endpoint);
 *             another server than the expected one answering
 *             (smtp_intercepted) — decided before any secret is sent
 *   asked     the user's --port/--tls/--auth/--helo as given; without
 *             --port and --tls, the best port that works
 *   login     once, through the session API (the code send uses), behind
 *             the caller's lock-out guard
 *   verify    when the user's settings fail for a reason that is not a
 *             judgement of the secret, the fixed settings get one login,
 *             so that `recommended` is always something that worked.
 * Every cause comes from the classifier (classify.c), fed what the probes
 * and sessions saw.
 */
#define _GNU_SOURCE
#include "doctor.h"

#include "conn.h"
#include "dns.h"
#include "kb.h"
#include "probe.h"
#include "sasl.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <time.h>

#define MAX_PROBES 12
#define MAX_NOTES 40
#define MAX_ATTEMPTS 24
#define DEFAULT_TIMEOUT_MS 8000

typedef struct notes {
  char *v[MAX_NOTES];
  size_t n;
} notes;

struct smtpkit_doctor_report {
  const smtpkit_doctor_options *o; /* the caller's: valid during the run */
  smtpkit_settings set;            /* o->settings with defaults */

  char input[512], host[256], domain[256], source[16];
  bool is_address;
  const char *expected; /* provider id (static), or NULL */
  smtpkit_doctor_target target;
  notes lookups;
  sk_dns *dns;

  sk_probe probes[MAX_PROBES];
  smtpkit_probe pub[MAX_PROBES];
  char pub_before[MAX_PROBES][520], pub_after[MAX_PROBES][520];
  size_t n_probes;

  bool asked; /* --port or --tls given */
  unsigned asked_port;
  smtpkit_tls_mode asked_mode;
  bool creds, need_auth, judged;

  smtpkit_error err;
  notes evidence, warnings;
  const char *server_id; /* server program that answered */

  smtpkit_doctor_auth auth;
  smtpkit_auth_attempt attempts[MAX_ATTEMPTS];
  char auth_host[256], auth_mech[32], skipped[400];

  smtpkit_doctor_send_test st;
  char st_from[320], st_to[320], st_qid[128];

  bool has_rec;
  smtpkit_doctor_endpoint rec;
  char rec_host[256], rec_mech[32], rec_helo[256];

  char *user, *ca_file;
  long long t0, elapsed;
  long long deadline; /* look-ups and probes: t0 + the time-out */
};

/* ---- small helpers ---- */

static void note(notes *l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void note(notes *l, const char *fmt, ...) {
  if (l->n >= MAX_NOTES)
    return;
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n < 0)
    return;
  for (size_t i = 0; i < l->n; i++)
    if (!strcmp(l->v[i], buf))
      return; /* each observation once */
  l->v[l->n] = sk_strdup(buf);
  if (l->v[l->n])
    l->n++;
}

static void notes_free(notes *l) {
  for (size_t i = 0; i < l->n; i++)
    free(l->v[i]);
  l->n = 0;
}

/* A reply on one line: "535 5.7.8 text / more text", printable, cut. */
static void reply_line(const smtpkit_reply *r, char *out, size_t cap) {
  size_t k = 0;
  int n = snprintf(out, cap, "%d%s%s ", r->code, r->enhanced[0] ? " " : "",
                   r->enhanced);
  k = n > 0 && (size_t)n < cap ? (size_t)n : 0;
  for (const unsigned char *t = (const unsigned char *)(r->text ? r->text : "");
       *t && k + 8 < cap; t++) {
    if (*t == '\n') {
      memcpy(out + k, " / ", 3);
      k += 3;
    } else if (*t < 0x20 || *t == 0x7f) {
      k += (size_t)snprintf(out + k, cap - k, "\\x%02X", *t);
    } else {
      out[k++] = (char)*t;
    }
  }
  if (k + 8 >= cap && cap > 4)
    memcpy(out + cap - 4, "...", 3), k = cap - 1;
  out[k] = '\0';
}

static void err_copy(smtpkit_error *dst, const smtpkit_error *src) {
  sk_error_clear(dst);
  *dst = *src;
  dst->reply.text = NULL;
  sk_reply_copy(&dst->reply, &src->reply);
}

static const char *mode_word(smtpkit_tls_mode m) {
  switch (m) {
  case SMTPKIT_TLS_IMPLICIT:
    return "implicit TLS";
  case SMTPKIT_TLS_STARTTLS:
    return "STARTTLS";
  case SMTPKIT_TLS_NONE:
    return "no TLS";
  default:
    return "auto";
  }
}

static bool is_ip_literal(const char *h) {
  return strspn(h, "0123456789.") == strlen(h) || strchr(h, ':');
}

/* ---- options and report basics ---- */

void smtpkit_doctor_options_init(smtpkit_doctor_options *o) {
  memset(o, 0, sizeof *o);
  smtpkit_settings_init(&o->settings);
}

void smtpkit_doctor_report_free(smtpkit_doctor_report *r) {
  if (!r)
    return;
  for (size_t i = 0; i < r->n_probes; i++) {
    sk_probe_free(&r->probes[i]);
    sk_error_clear(&r->pub[i].result);
  }
  for (size_t i = 0; i < r->auth.n_attempts; i++)
    sk_reply_clear(&r->attempts[i].reply);
  sk_reply_clear(&r->auth.reply);
  sk_reply_clear(&r->st.reply);
  sk_error_clear(&r->err);
  notes_free(&r->lookups);
  notes_free(&r->evidence);
  notes_free(&r->warnings);
  sk_dns_free(r->dns);
  free(r->user);
  free(r->ca_file);
  free(r);
}

static void set_cause(smtpkit_doctor_report *r, smtpkit_cause c) {
  sk_error_clear(&r->err);
  r->err.cause = c;
  r->err.transient = sk_cause_default_transient(c);
}

/* ---- step 1: target ---- */

static bool parse_input(smtpkit_doctor_report *r, const char *in,
                        unsigned *port) {
  *port = 0;
  sk_strlcpy(r->input, in, sizeof r->input);
  const char *at = strrchr(in, '@');
  if (at) {
    r->is_address = true;
    sk_strlcpy(r->domain, at + 1, sizeof r->domain);
    for (char *p = r->domain; *p; p++)
      *p = (char)tolower((unsigned char)*p);
    return r->domain[0] && !strpbrk(r->domain, " \t\r\n/<>[]:@");
  }
  const char *h = in, *ps = NULL;
  size_t hl = strlen(in);
  if (in[0] == '[') {
    const char *close = strchr(in, ']');
    if (!close)
      return false;
    h = in + 1;
    hl = (size_t)(close - h);
    ps = close[1] == ':' ? close + 2 : NULL;
  } else {
    const char *colon = strchr(in, ':');
    if (colon && !strchr(colon + 1, ':')) {
      hl = (size_t)(colon - in);
      ps = colon + 1;
    }
  }
  if (!hl || hl >= sizeof r->host)
    return false;
  memcpy(r->host, h, hl);
  r->host[hl] = '\0';
  if (ps) {
    char *end;
    unsigned long v = strtoul(ps, &end, 10);
    if (*end || !v || v > 65535)
      return false;
    *port = (unsigned)v;
  }
  return true;
}

static const char *first_submit_host(const char *id) {
  const sk_kb_submit *s[16];
  size_t n = sk_kb_submits(id, s, 16);
  for (size_t i = 0; i < n && i < 16; i++)
    if (!strstr(s[i]->host, "REGION"))
      return s[i]->host;
  return NULL;
}

/* SRV (RFC 8314 §5.1 prefers implicit TLS, so _submissions first). */
static int target_srv(smtpkit_doctor_report *r, long long deadline,
                      sk_dns_srv *found, size_t max, bool *implicit) {
  static const char *const svc[] = {"_submissions._tcp", "_submission._tcp"};
  size_t n = 0;
  for (int s = 0; s < 2; s++) {
    char name[300];
    snprintf(name, sizeof name, "%s.%s", svc[s], r->domain);
    sk_dns_srv recs[8];
    int k = sk_dns_srv_lookup(r->dns, name, deadline, recs, 8);
    if (k <= 0) {
      note(&r->lookups, "SRV %s: %s", name,
           k == 0 ? "none" : sk_dns_error(r->dns));
      continue;
    }
    for (int i = 0; i < k && n < max; i++) {
      /* RFC 2782: a target of "." means "not offered here". */
      if (!recs[i].target[0] || !strcmp(recs[i].target, ".")) {
        note(&r->lookups, "SRV %s: the service is not offered", name);
        continue;
      }
      note(&r->lookups, "SRV %s: %s port %u (priority %u)", name,
           recs[i].target, recs[i].port, recs[i].priority);
      implicit[n] = s == 0;
      found[n++] = recs[i];
    }
  }
  return (int)n;
}

static bool target_mx(smtpkit_doctor_report *r, long long deadline) {
  sk_dns_mx mx[8];
  int k = sk_dns_mx_lookup(r->dns, r->domain, deadline, mx, 8);
  if (k <= 0) {
    note(&r->lookups, "MX %s: %s", r->domain,
         k == 0 ? "none" : sk_dns_error(r->dns));
    return false;
  }
  for (int i = 0; i < k; i++) {
    sk_host_kind kind;
    const char *p = sk_kb_provider_from_host(mx[i].host, &kind);
    const char *h = p ? first_submit_host(p) : NULL;
    note(&r->lookups, "MX %s: %s%s%s", r->domain, mx[i].host,
         p ? " — a host of " : " (no known provider)",
         p ? (sk_kb_provider_name(p) ? sk_kb_provider_name(p) : p) : "");
    if (h) {
      sk_strlcpy(r->host, h, sizeof r->host);
      if (!r->expected)
        r->expected = p;
      return true;
    }
  }
  return false;
}

static bool target_guess(smtpkit_doctor_report *r, long long deadline) {
  static const char *const prefix[] = {"smtp.", "mail."};
  for (int i = 0; i < 2; i++) {
    char name[300], addrs[1][64];
    snprintf(name, sizeof name, "%s%s", prefix[i], r->domain);
    int k = sk_dns_addresses(r->dns, name, deadline, addrs, 1);
    note(&r->lookups, "%s: %s", name,
         k > 0    ? addrs[0]
         : k == 0 ? "does not resolve"
                  : sk_dns_error(r->dns));
    if (k > 0) {
      sk_strlcpy(r->host, name, sizeof r->host);
      return true;
    }
  }
  return false;
}

static void add_probe(smtpkit_doctor_report *r, const char *host, unsigned port,
                      bool asked) {
  for (size_t i = 0; i < r->n_probes; i++)
    if (r->probes[i].port == port &&
        !sk_strcasecmp_ascii(r->probes[i].host, host)) {
      r->probes[i].asked = r->probes[i].asked || asked;
      return;
    }
  if (r->n_probes >= MAX_PROBES || !port)
    return;
  sk_probe_init(&r->probes[r->n_probes], host, port);
  r->probes[r->n_probes++].asked = asked;
}

/* The provider's documented ports on this very host. */
static void add_kb_ports(smtpkit_doctor_report *r, const char *host) {
  const char *id = sk_kb_provider_from_host(host, NULL);
  const sk_kb_submit *s[16];
  size_t n = id ? sk_kb_submits(id, s, 16) : 0;
  for (size_t i = 0; i < n && i < 16; i++)
    if (!sk_strcasecmp_ascii(s[i]->host, host))
      add_probe(r, host, s[i]->port, false);
}

/* Finds the host and the ports to probe. False: nothing to probe (the
 * error is set). */
static bool find_target(smtpkit_doctor_report *r, unsigned input_port) {
  const smtpkit_doctor_options *o = r->o;
  long long deadline = r->deadline;
  unsigned port = r->set.port ? r->set.port : input_port;
  r->asked = port || r->set.tls != SMTPKIT_TLS_AUTO;
  r->asked_port = port ? port : r->set.tls == SMTPKIT_TLS_IMPLICIT ? 465 : 587;
  r->asked_mode = r->set.tls != SMTPKIT_TLS_AUTO ? r->set.tls
                  : r->asked_port == 465         ? SMTPKIT_TLS_IMPLICIT
                                                 : SMTPKIT_TLS_STARTTLS;
  r->expected = sk_kb_provider(o->provider);
  sk_dns_srv srv[8];
  bool srv_implicit[8];
  int n_srv = 0;
  if (!r->is_address) {
    snprintf(r->source, sizeof r->source, "input");
  } else if (sk_kb_provider_from_domain(r->domain) &&
             first_submit_host(sk_kb_provider_from_domain(r->domain))) {
    const char *id = sk_kb_provider_from_domain(r->domain);
    sk_strlcpy(r->host, first_submit_host(id), sizeof r->host);
    if (!r->expected)
      r->expected = id;
    note(&r->lookups, "%s: %s, submission host %s (knowledge base)", r->domain,
         sk_kb_provider_name(id) ? sk_kb_provider_name(id) : id, r->host);
    snprintf(r->source, sizeof r->source, "provider-db");
  } else if ((n_srv = target_srv(r, deadline, srv, 8, srv_implicit)) > 0) {
    sk_strlcpy(r->host, srv[0].target, sizeof r->host);
    snprintf(r->source, sizeof r->source, "srv");
  } else if (target_mx(r, deadline)) {
    snprintf(r->source, sizeof r->source, "mx");
  } else if (target_guess(r, deadline)) {
    snprintf(r->source, sizeof r->source, "guess");
  } else {
    set_cause(r, SMTPKIT_CAUSE_dns_failure);
    r->err.stage = SMTPKIT_STAGE_CONNECT;
    sk_error_detail(&r->err,
                    "no submission server found for %s: no provider known "
                    "for it, no SRV records, no MX host of a known provider, "
                    "and neither smtp.%s nor mail.%s resolves",
                    r->domain, r->domain, r->domain);
    for (size_t i = 0; i < r->lookups.n; i++)
      note(&r->evidence, "%s", r->lookups.v[i]);
    return false;
  }
  if (!r->expected)
    r->expected = sk_kb_provider_from_host(r->host, NULL);
  if (!r->expected && r->is_address)
    r->expected = sk_kb_provider_from_domain(r->domain);

  if (n_srv > 0 && !port) {
    for (int i = 0; i < n_srv; i++)
      add_probe(r, srv[i].target, srv[i].port, false);
    if (r->asked)
      add_probe(r, r->host, r->asked_port, true);
  } else if (port) {
    add_probe(r, r->host, port, true);
    add_kb_ports(r, r->host);
  } else {
    static const unsigned std_ports[] = {587, 465, 25, 2525};
    for (size_t i = 0; i < 4; i++)
      add_probe(r, r->host, std_ports[i],
                r->asked && std_ports[i] == r->asked_port);
    add_kb_ports(r, r->host);
  }
  /* An MX or relay host: probe the provider's submission host too. */
  sk_host_kind kind = SK_HOST_UNKNOWN;
  const char *owner = sk_kb_provider_from_host(r->host, &kind);
  const char *sub = owner && (kind == SK_HOST_MX || kind == SK_HOST_RELAY)
                        ? first_submit_host(owner)
                        : NULL;
  if (sub)
    add_kb_ports(r, sub);
  return true;
}

static void resolve_probes(smtpkit_doctor_report *r) {
  long long deadline = r->deadline;
  for (size_t i = 0; i < r->n_probes; i++) {
    sk_probe *p = &r->probes[i];
    const sk_probe *same = NULL;
    for (size_t j = 0; j < i && !same; j++)
      if (!strcmp(r->probes[j].host, p->host))
        same = &r->probes[j];
    if (same) {
      memcpy(p->addrs, same->addrs, sizeof p->addrs);
      p->n_addrs = same->n_addrs;
      p->addr_ev = same->addr_ev;
      sk_strlcpy(p->addr_error, same->addr_error, sizeof p->addr_error);
      continue;
    }
    int k = sk_dns_addresses(r->dns, p->host, deadline, p->addrs,
                             SK_PROBE_MAX_ADDRS);
    if (k > 0) {
      p->n_addrs = (size_t)k;
    } else {
      char why[sizeof p->addr_error];
      snprintf(why, sizeof why, "cannot resolve %.180s", sk_dns_error(r->dns));
      p->addr_ev = SK_EV_DNS;
      sk_strlcpy(p->addr_error, why, sizeof p->addr_error);
    }
  }
}

/* ---- step 2: probes ---- */

static void progress_relay(void *ctx, size_t index, size_t count,
                           const sk_probe *p, const char *status, bool done) {
  const smtpkit_doctor_options *o = ctx;
  o->progress(o->progress_ctx, index, count, p->host, p->port, status, done);
}

/* " PLAIN LOGIN " -> "PLAIN LOGIN" */
static void mechs_text(const sk_caps *c, char *out, size_t cap) {
  out[0] = '\0';
  if (!c || !c->has_auth)
    return;
  const char *a = c->auth + strspn(c->auth, " ");
  sk_strlcpy(out, a, cap);
  size_t n = strlen(out);
  while (n && out[n - 1] == ' ')
    out[--n] = '\0';
}

static void fill_public(smtpkit_doctor_report *r) {
  for (size_t i = 0; i < r->n_probes; i++) {
    const sk_probe *p = &r->probes[i];
    smtpkit_probe *v = &r->pub[i];
    memset(v, 0, sizeof *v);
    v->host = p->host;
    v->port = p->port;
    v->mode = sk_probe_mode(p);
    v->reachable = p->plain.connected || p->tls.connected;
    long long end =
        p->plain.t_end > p->tls.t_end ? p->plain.t_end : p->tls.t_end;
    long long start = p->plain.t_start ? p->plain.t_start : p->tls.t_start;
    v->elapsed_ms = end && start ? end - start : 0;
    const smtpkit_reply *g = sk_probe_greeting(p);
    if (g)
      v->greeting = *g; /* shares the probe's text */
    const char *ver = NULL;
    const sk_tls_peer *peer = sk_probe_peer(p, &ver);
    v->tls.ok = peer != NULL || p->tls.tls_ok || p->plain.tls_ok;
    if (ver)
      sk_strlcpy(v->tls.version, ver, sizeof v->tls.version);
    if (peer) {
      v->tls.verified = peer->verified;
      sk_strlcpy(v->tls.error, peer->verify_error, sizeof v->tls.error);
      sk_strlcpy(v->tls.subject, peer->subject, sizeof v->tls.subject);
      sk_strlcpy(v->tls.issuer, peer->issuer, sizeof v->tls.issuer);
      sk_strlcpy(v->tls.names, peer->names, sizeof v->tls.names);
      sk_strlcpy(v->tls.not_after, peer->not_after, sizeof v->tls.not_after);
    } else if (p->plain.starttls_done) {
      sk_strlcpy(v->tls.error, p->plain.detail, sizeof v->tls.error);
    } else if (p->tls.connected) {
      sk_strlcpy(v->tls.error, p->tls.detail, sizeof v->tls.error);
    }
    mechs_text(sk_probe_caps(p, false), r->pub_before[i],
               sizeof r->pub_before[i]);
    mechs_text(sk_probe_caps(p, true), r->pub_after[i], sizeof r->pub_after[i]);
    v->auth_before_tls = r->pub_before[i];
    v->auth_after_tls = r->pub_after[i];
    const sk_caps *c = sk_probe_caps(p, true);
    if (!c)
      c = sk_probe_caps(p, false);
    v->extensions = c && c->lines ? c->lines : "";
    v->ehlo_name = c ? c->server_name : "";
    v->tls_met_banner = p->tls.banner_on_tls;
    v->no_plain_greeting = p->plain.connected && !p->plain.greeting.code;
    sk_probe_judge(p, SMTPKIT_TLS_AUTO, r->set.insecure, true, &v->result);
  }
}

static void run_probes(smtpkit_doctor_report *r) {
  char err[300] = "";
  SSL_CTX *ctx = sk_tls_ctx_new(r->set.ca_file, true, err, sizeof err);
  if (!ctx) {
    for (size_t i = 0; i < r->n_probes; i++) {
      r->probes[i].n_addrs = 0;
      r->probes[i].addr_ev = SK_EV_INTERNAL;
      sk_strlcpy(r->probes[i].addr_error, err, sizeof r->probes[i].addr_error);
    }
    note(&r->warnings, "%s", err);
  }
  sk_probe_conf conf = {.tls_ctx = ctx,
                        .helo = r->set.helo,
                        .insecure = r->set.insecure,
                        .deadline = r->deadline > sk_now_ms() + 1000
                                        ? r->deadline
                                        : sk_now_ms() + 1000,
                        .transcript = r->set.transcript,
                        .transcript_ctx = r->set.transcript_ctx,
                        .progress = r->o->progress ? progress_relay : NULL,
                        .progress_ctx = (void *)r->o};
  if (ctx)
    sk_probe_run(r->probes, r->n_probes, &conf);
  if (ctx)
    SSL_CTX_free(ctx);
  fill_public(r);
}

/* ---- evidence ---- */

static void cert_line(smtpkit_doctor_report *r, const char *where,
                      const sk_leg *l) {
  if (!l->got_peer)
    return;
  const sk_tls_peer *c = &l->peer;
  note(&r->evidence,
       "%s: %s, certificate %s%s%s (subject %s; names %s; "
       "expires %s)",
       where, l->tls_version, c->verified ? "verified" : "NOT verified",
       c->verified ? "" : ": ", c->verify_error,
       c->subject[0] ? c->subject : "-", c->names[0] ? c->names : "-",
       c->not_after[0] ? c->not_after : "-");
}

static void caps_line(smtpkit_doctor_report *r, const char *where,
                      const sk_caps *c, bool show_starttls) {
  char mechs[520];
  mechs_text(c, mechs, sizeof mechs);
  note(&r->evidence, "%s: %s%sAUTH%s%s", where,
       show_starttls
           ? (c->starttls ? "STARTTLS offered, " : "STARTTLS not offered, ")
           : "",
       c->has_auth ? "" : "no ", c->has_auth ? " " : "", mechs);
}

static void plain_evidence(smtpkit_doctor_report *r, const sk_probe *p) {
  const sk_leg *l = &p->plain;
  char where[320], rl[400];
  snprintf(where, sizeof where, "%s:%u, plain connection", p->host, p->port);
  if (!l->connected) {
    note(&r->evidence, "%s: %s", where, l->detail);
    return;
  }
  if (!l->greeting.code) {
    note(&r->evidence, "%s: no greeting (%s)", where, l->detail);
    return;
  }
  reply_line(&l->greeting, rl, sizeof rl);
  note(&r->evidence, "%s: greeting \"%s\"", where, rl);
  if (l->got_caps_before)
    caps_line(r, "EHLO before TLS", &l->caps_before, true);
  if (l->refusal.code) {
    reply_line(&l->refusal, rl, sizeof rl);
    note(&r->evidence, "%s refused: \"%s\"",
         l->refusal_stage == SMTPKIT_STAGE_STARTTLS ? "STARTTLS" : "EHLO", rl);
  } else if (l->starttls_done && !l->tls_ok) {
    note(&r->evidence, "STARTTLS: %s", l->detail);
  } else if (l->ev && l->ev != SK_EV_NONE && !l->got_caps_after) {
    note(&r->evidence, "%s: %s", where, l->detail);
  }
  cert_line(r, "STARTTLS", l);
  if (l->got_caps_after)
    caps_line(r, "EHLO after STARTTLS", &l->caps_after, false);
}

static void tls_evidence(smtpkit_doctor_report *r, const sk_probe *p) {
  const sk_leg *l = &p->tls;
  char where[320], rl[400];
  snprintf(where, sizeof where, "%s:%u, TLS handshake at connect", p->host,
           p->port);
  if (!l->connected) {
    if (p->plain.connected || !p->plain.detail[0])
      note(&r->evidence, "%s: %s", where, l->detail);
    return;
  }
  if (l->banner_on_tls) {
    note(&r->evidence,
         "%s:%u, TLS at connect: not spoken there (the server "
         "sent a plain SMTP banner, \"%s...\")",
         p->host, p->port, l->banner_start);
    return;
  }
  if (!l->tls_ok) {
    note(&r->evidence, "%s: %s", where, l->detail);
    return;
  }
  cert_line(r, where, l);
  if (l->greeting.code) {
    reply_line(&l->greeting, rl, sizeof rl);
    note(&r->evidence, "greeting over TLS: \"%s\"", rl);
  } else {
    note(&r->evidence, "no greeting over TLS (%s)", l->detail);
  }
  if (l->refusal.code) {
    reply_line(&l->refusal, rl, sizeof rl);
    note(&r->evidence, "EHLO refused: \"%s\"", rl);
  }
  if (l->got_caps_after)
    caps_line(r, "EHLO over TLS", &l->caps_after, false);
}

/* What the port showed, the leg the mode uses first. */
static void probe_evidence(smtpkit_doctor_report *r, const sk_probe *p,
                           smtpkit_tls_mode mode) {
  if (p->n_addrs == 0) {
    note(&r->evidence, "%s", p->addr_error);
    return;
  }
  if (mode == SMTPKIT_TLS_AUTO)
    mode = !strcmp(sk_probe_mode(p), "implicit") ? SMTPKIT_TLS_IMPLICIT
                                                 : SMTPKIT_TLS_STARTTLS;
  if (mode == SMTPKIT_TLS_IMPLICIT) {
    tls_evidence(r, p);
    plain_evidence(r, p);
  } else {
    plain_evidence(r, p);
    tls_evidence(r, p);
  }
}

/* ---- step 3: who answered ---- */

static bool check_endpoint(smtpkit_doctor_report *r) {
  smtpkit_error e = {0};
  const char *owner = NULL;
  if (!sk_classify_endpoint(&e, r->host, &owner))
    return false;
  err_copy(&r->err, &e);
  sk_host_kind kind;
  sk_kb_provider_from_host(r->host, &kind);
  const char *sub = first_submit_host(owner);
  sk_error_detail(
      &r->err, "%s is %s's %s host, not its submission service%s%s", r->host,
      sk_kb_provider_name(owner) ? sk_kb_provider_name(owner) : owner,
      sk_host_kind_name(kind), sub ? " — that is " : "", sub ? sub : "");
  note(&r->evidence, "%s", r->err.detail);
  for (size_t i = 0; i < r->n_probes; i++)
    if (!strcmp(r->probes[i].host, r->host) && r->probes[i].asked)
      probe_evidence(r, &r->probes[i], r->asked_mode);
  return true;
}

static bool check_intercepted(smtpkit_doctor_report *r) {
  if (!r->expected)
    return false;
  for (size_t i = 0; i < r->n_probes; i++) {
    const sk_probe *p = &r->probes[i];
    const smtpkit_reply *g = sk_probe_greeting(p);
    if (strcmp(p->host, r->host) != 0 || !g)
      continue;
    const sk_leg *l = p->plain.ehlo_line[0] ? &p->plain : &p->tls;
    const sk_tls_peer *peer = sk_probe_peer(p, NULL);
    char names[800] = "";
    if (peer)
      snprintf(names, sizeof names, "%s %s", peer->subject, peer->names);
    sk_context ctx = {
        .provider = r->expected, .host = r->host, .banner = g->text};
    smtpkit_error e = {0};
    const char *who = NULL;
    if (!sk_classify_answered_by(&e, &ctx, l->ehlo_line, names, &who))
      continue;
    err_copy(&r->err, &e);
    r->server_id = who;
    char rl[400];
    reply_line(g, rl, sizeof rl);
    const char *exp_name = sk_kb_provider_name(r->expected);
    const char *who_name = sk_kb_provider_name(who);
    sk_error_detail(&r->err,
                    "%s:%u is answered by %s, not by %s: the connection does "
                    "not reach the server you expect",
                    p->host, p->port, who_name ? who_name : who,
                    exp_name ? exp_name : r->expected);
    note(&r->evidence, "%s:%u greeting: \"%s\"", p->host, p->port, rl);
    if (l->ehlo_line[0])
      note(&r->evidence, "EHLO reply: \"%s\"", l->ehlo_line);
    if (peer)
      note(&r->evidence, "certificate: subject %s; names %s",
           peer->subject[0] ? peer->subject : "-",
           peer->names[0] ? peer->names : "-");
    note(&r->evidence,
         "these carry the fingerprint of %s, and none of %s, the provider "
         "expected%s",
         who_name ? who_name : who, exp_name ? exp_name : r->expected,
         r->o->provider ? " (--provider)" : "");
    if (r->need_auth) {
      snprintf(r->skipped, sizeof r->skipped,
               "not sent: the server that answered is not %s, and your "
               "credentials are not for it",
               exp_name ? exp_name : r->expected);
      note(&r->evidence, "credentials were not sent to it");
    }
    return true;
  }
  return false;
}

/* ---- step 5: login through the session API ---- */

typedef struct variant {
  const sk_probe *p;
  smtpkit_tls_mode mode;
  const char *mechs;
  const char *helo;
} variant;

typedef struct body_src {
  char text[2048];
  size_t len, off;
} body_src;

static long body_read(void *ctx, char *buf, size_t cap) {
  body_src *b = ctx;
  size_t n = b->len - b->off < cap ? b->len - b->off : cap;
  memcpy(buf, b->text + b->off, n);
  b->off += n;
  return (long)n;
}

static void test_from(smtpkit_doctor_report *r, char *out, size_t cap) {
  const char *u = r->set.user;
  if (r->o->send_test_from)
    sk_strlcpy(out, r->o->send_test_from, cap);
  else if (u && strchr(u, '@'))
    sk_strlcpy(out, u, cap);
  else {
    const char *dom = r->is_address ? r->domain : r->host;
    snprintf(out, cap, is_ip_literal(dom) ? "%s@[%s]" : "%s@%s",
             u ? u : "postmaster", dom);
    note(&r->warnings,
         "the test message's sender is %s (the user name is not an "
         "address; give --from to choose one)",
         out);
  }
}

static void send_test(smtpkit_doctor_report *r, smtpkit_session *s,
                      smtpkit_error *out) {
  test_from(r, r->st_from, sizeof r->st_from);
  sk_strlcpy(r->st_to, r->o->send_test_to, sizeof r->st_to);
  r->st.from = r->st_from;
  r->st.to = r->st_to;
  r->st.attempted = true;
  body_src b = {.len = 0};
  char date[64];
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
  int n = snprintf(
      b.text, sizeof b.text,
      "From: <%s>\r\nTo: <%s>\r\nSubject: smtpkit doctor test\r\n"
      "Date: %s\r\nMessage-ID: <doctor.%lld.%u@smtpkit.invalid>\r\n"
      "MIME-Version: 1.0\r\n"
      "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
      "This test message was sent by smtpkit doctor to check "
      "that\r\nsubmission works end to end. No reply is "
      "needed.\r\n",
      r->st_from, r->st_to, date, (long long)now, (unsigned)sk_now_ms());
  b.len = n > 0 && (size_t)n < sizeof b.text ? (size_t)n : 0;
  const char *to[1] = {r->st_to};
  smtpkit_envelope env = {
      .from = r->st_from, .to = to, .n_to = 1, .size = (long long)b.len};
  bool ok = smtpkit_session_send(s, &env, body_read, &b);
  const smtpkit_error *e = smtpkit_session_error(s);
  r->st.ok = ok && e->cause == SMTPKIT_CAUSE_ok;
  const smtpkit_reply *dr = smtpkit_session_data_reply(s);
  sk_reply_clear(&r->st.reply);
  sk_reply_copy(&r->st.reply, r->st.ok && dr ? dr : &e->reply);
  if (smtpkit_session_queue_id(s))
    sk_strlcpy(r->st_qid, smtpkit_session_queue_id(s), sizeof r->st_qid);
  r->st.queue_id = r->st_qid[0] ? r->st_qid : NULL;
  if (!r->st.ok)
    err_copy(out, e);
}

/* The classifier again, with what doctor knows and the session did not:
 * the provider the user expects (--provider, the address's domain). */
static void reclassify(smtpkit_doctor_report *r, smtpkit_error *e,
                       const variant *v, const char *mech) {
  if (e->stage != SMTPKIT_STAGE_AUTH || !e->reply.code || !r->expected ||
      e->cause == SMTPKIT_CAUSE_oauth_token_invalid ||
      (e->provider && !strcmp(e->provider, r->expected)))
    return;
  const smtpkit_reply *g = sk_probe_greeting(v->p);
  sk_context ctx = {.provider = r->expected,
                    .host = v->p->host,
                    .banner = g ? g->text : NULL,
                    .user = r->set.user,
                    .mechanism = mech,
                    .tls = v->mode != SMTPKIT_TLS_NONE};
  smtpkit_error n = {0};
  sk_classify_reply(&n, SMTPKIT_STAGE_AUTH, &e->reply, &ctx);
  sk_strlcpy(n.detail, e->detail, sizeof n.detail);
  err_copy(e, &n);
  sk_error_clear(&n);
}

static void record_session(smtpkit_doctor_report *r, const variant *v,
                           smtpkit_session *s, bool authed) {
  const smtpkit_auth_attempt *aa = NULL;
  size_t na = smtpkit_session_auth_attempts(s, &aa);
  for (size_t i = 0; i < na && r->auth.n_attempts < MAX_ATTEMPTS; i++) {
    smtpkit_auth_attempt *d = &r->attempts[r->auth.n_attempts++];
    sk_strlcpy(d->mechanism, aa[i].mechanism, sizeof d->mechanism);
    sk_reply_copy(&d->reply, &aa[i].reply);
  }
  r->auth.attempts = r->attempts;
  if (na == 0 && !authed)
    return;
  r->auth.attempted = true;
  sk_strlcpy(r->auth_host, v->p->host, sizeof r->auth_host);
  r->auth.host = r->auth_host;
  r->auth.port = v->p->port;
  r->auth.tls = v->mode;
  r->auth.ok = authed;
  if (na) {
    sk_strlcpy(r->auth_mech, aa[na - 1].mechanism, sizeof r->auth_mech);
    r->auth.mechanism = r->auth_mech;
    sk_reply_clear(&r->auth.reply);
    sk_reply_copy(&r->auth.reply, &aa[na - 1].reply);
  }
}

static void attempt_evidence(smtpkit_doctor_report *r, const variant *v,
                             size_t from) {
  for (size_t i = from; i < r->auth.n_attempts; i++) {
    char rl[400];
    reply_line(&r->attempts[i].reply, rl, sizeof rl);
    note(&r->evidence, "AUTH %s on %s:%u (%s): \"%s\"",
         r->attempts[i].mechanism, v->p->host, v->p->port, mode_word(v->mode),
         rl);
  }
}

/* One login (the session's own policy may try up to three mechanisms);
 * with send_test, then the test message. out gets the result. */
static bool login(smtpkit_doctor_report *r, const variant *v, bool test,
                  smtpkit_error *out) {
  const smtpkit_doctor_options *o = r->o;
  sk_error_clear(out);
  char why[400] = "";
  if (o->may_login &&
      !o->may_login(o->login_ctx, v->p->host, v->p->port, why, sizeof why)) {
    sk_classify_event(out, SK_EV_HELD_BACK, SMTPKIT_STAGE_AUTH);
    sk_error_detail(out, "%s",
                    why[0] ? why
                           : "held back by the lock-out "
                             "guard");
    sk_strlcpy(r->skipped, out->detail, sizeof r->skipped);
    r->judged = true;
    return false;
  }
  smtpkit_settings s = r->set;
  s.host = v->p->host;
  s.port = v->p->port;
  s.tls = v->mode;
  s.mechanisms = v->mechs;
  s.helo = v->helo;
  smtpkit_session *ss = smtpkit_session_new(&s);
  if (!ss) {
    sk_classify_event(out, SK_EV_INTERNAL, SMTPKIT_STAGE_CONNECT);
    sk_error_detail(out, "out of memory");
    return false;
  }
  size_t before = r->auth.n_attempts;
  bool opened = smtpkit_session_open(ss);
  bool authed = smtpkit_session_auth_mechanism(ss) != NULL;
  record_session(r, v, ss, authed);
  attempt_evidence(r, v, before);
  if (!opened) {
    err_copy(out, smtpkit_session_error(ss));
    reclassify(r, out, v, r->auth.mechanism);
    if (out->cause == SMTPKIT_CAUSE_dns_failure && v->p->n_addrs)
      note(&r->evidence,
           "%s resolves through --dns-server but not through "
           "the system's resolver, which the login uses",
           v->p->host);
    if (r->auth.n_attempts > before &&
        smtpkit_cause_exit_code(out->cause, out->transient) != EX_CONFIG)
      r->judged = true;
  } else {
    out->cause = SMTPKIT_CAUSE_ok;
  }
  if (o->login_done && (r->auth.n_attempts > before || authed))
    o->login_done(o->login_ctx, v->p->host, v->p->port, out, authed);
  if (opened && authed && test)
    send_test(r, ss, out);
  smtpkit_session_close(ss);
  smtpkit_session_free(ss);
  return opened && out->cause == SMTPKIT_CAUSE_ok;
}

/* Only what worked with TLS is recommended: a login that worked without
 * it works for anyone on the path too. */
static void recommend(smtpkit_doctor_report *r, const variant *v) {
  if (v->mode == SMTPKIT_TLS_NONE) {
    note(&r->warnings,
         "%s:%u works without TLS: the password crosses the "
         "network readable by anyone on the path",
         v->p->host, v->p->port);
    return;
  }
  r->has_rec = true;
  sk_strlcpy(r->rec_host, v->p->host, sizeof r->rec_host);
  r->rec.host = r->rec_host;
  r->rec.port = v->p->port;
  r->rec.tls = v->mode;
  r->rec.auth_mechanism = NULL;
  if (r->auth.ok && r->auth.mechanism) {
    sk_strlcpy(r->rec_mech, r->auth.mechanism, sizeof r->rec_mech);
    r->rec.auth_mechanism = r->rec_mech;
  }
  r->rec.helo = NULL;
  if (r->set.helo && !v->helo) {
    sk_probe_default_helo(v->p->plain.local_literal, r->rec_helo,
                          sizeof r->rec_helo);
    r->rec.helo = r->rec_helo;
  }
}

/* The mode a fit probe is used in. */
static smtpkit_tls_mode fit_mode(const sk_probe *p) {
  return p->tls.tls_ok ? SMTPKIT_TLS_IMPLICIT : SMTPKIT_TLS_STARTTLS;
}

static bool fit_in(const smtpkit_doctor_report *r, const sk_probe *p,
                   smtpkit_tls_mode mode) {
  smtpkit_error e;
  sk_probe_judge(p, mode, r->set.insecure, true, &e);
  bool ok = e.cause == SMTPKIT_CAUSE_ok;
  sk_error_clear(&e);
  return ok;
}

/* Preference among fit ports: the order found (knowledge base, SRV, or
 * 587 465 2525), port 25 last (often blocked, and meant for relaying),
 * the target host before others. */
static const sk_probe *best_fit(const smtpkit_doctor_report *r,
                                const sk_probe *except) {
  const sk_probe *best = NULL;
  int best_rank = 1 << 30;
  for (size_t i = 0; i < r->n_probes; i++) {
    const sk_probe *p = &r->probes[i];
    if (p == except || !fit_in(r, p, SMTPKIT_TLS_AUTO))
      continue;
    int rank = (int)i + (p->port == 25 ? 100 : 0) +
               (strcmp(p->host, r->host) ? 50 : 0);
    if (rank < best_rank)
      best = p, best_rank = rank;
  }
  return best;
}

/* Is mech in the comma-separated list (case-insensitive)? */
static bool in_list(const char *list, const char *mech) {
  size_t n = strlen(mech);
  for (const char *p = list; p && *p;) {
    const char *e = strchr(p, ',');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    if (len == n && !strncasecmp(p, mech, n))
      return true;
    p = e ? e + 1 : NULL;
  }
  return false;
}

/* --try-all-mechanisms: one session per offered mechanism, in the
 * policy's order. True when the user's choice (--auth, else any) worked;
 * out gets the result that counts: the first of the user's mechanisms,
 * else the first tried. The first that worked is recommended. */
static bool login_each_mechanism(smtpkit_doctor_report *r, const variant *v,
                                 smtpkit_error *out) {
  bool tls = v->mode != SMTPKIT_TLS_NONE;
  const sk_caps *c = sk_probe_caps(v->p, tls);
  char plan[12][32];
  size_t n = c ? sk_sasl_plan(c, tls, tls, r->set.password != NULL,
                              r->set.oauth2_token != NULL,
                              r->set.allow_plaintext_auth, NULL, plan, 12)
               : 0;
  smtpkit_error first_mine = {0}, first_any = {0};
  bool have_mine = false, have_any = false, mine_ok = false, any_ok = false;
  variant each[12];
  for (size_t i = 0; i < n; i++) {
    each[i] = *v;
    each[i].mechs = plan[i];
    smtpkit_error e = {0};
    bool ok = login(r, &each[i], false, &e);
    bool mine = !v->mechs || in_list(v->mechs, plan[i]);
    if (ok && !any_ok)
      recommend(r, &each[i]);
    any_ok = any_ok || ok;
    mine_ok = mine_ok || (ok && mine);
    if (mine && !have_mine)
      err_copy(&first_mine, &e), have_mine = true;
    if (!have_any)
      err_copy(&first_any, &e), have_any = true;
    sk_error_clear(&e);
    if (r->skipped[0])
      break; /* the guard holds the secret back */
  }
  if (any_ok) {
    /* The login that is reported is the one recommended. */
    r->auth.ok = true;
    r->auth.mechanism = r->rec.auth_mechanism;
    r->auth.port = r->rec.port;
    r->auth.tls = r->rec.tls;
  }
  if (mine_ok) {
    out->cause = SMTPKIT_CAUSE_ok;
  } else if (have_mine) {
    err_copy(out, &first_mine);
  } else if (have_any && !v->mechs) {
    err_copy(out, &first_any);
  } else {
    sk_classify_event(out, SK_EV_NO_COMMON_MECH, SMTPKIT_STAGE_AUTH);
    sk_error_detail(out,
                    "the server offers no mechanism that smtpkit can "
                    "use here%s%s",
                    v->mechs ? " among " : "", v->mechs ? v->mechs : "");
  }
  sk_error_clear(&first_mine);
  sk_error_clear(&first_any);
  return mine_ok;
}

/* ---- step 6: the fixed settings, verified ---- */

static bool channel_cause(smtpkit_cause c) {
  switch (c) {
  case SMTPKIT_CAUSE_certificate_untrusted:
  case SMTPKIT_CAUSE_certificate_name_mismatch:
  case SMTPKIT_CAUSE_certificate_expired:
  case SMTPKIT_CAUSE_smtp_intercepted:
  case SMTPKIT_CAUSE_wrong_endpoint:
    return false;
  default:
    return true;
  }
}

/* What would fix the user's settings, on a port shown to work. */
static bool fixed_variant(const smtpkit_doctor_report *r, const variant *asked,
                          smtpkit_cause c, variant *out) {
  *out = *asked;
  const sk_probe *p = asked->p;
  switch (c) {
  case SMTPKIT_CAUSE_plaintext_on_tls_port:
    out->mode = SMTPKIT_TLS_IMPLICIT;
    return fit_in(r, p, out->mode);
  case SMTPKIT_CAUSE_tls_on_plaintext_port:
  case SMTPKIT_CAUSE_starttls_required:
  case SMTPKIT_CAUSE_encryption_required:
    out->mode = fit_mode(p);
    if (fit_in(r, p, out->mode))
      return true;
    break;
  case SMTPKIT_CAUSE_ehlo_rejected:
    if (!r->set.helo)
      return false;
    out->helo = NULL;
    return true;
  case SMTPKIT_CAUSE_mech_too_weak:
  case SMTPKIT_CAUSE_mech_not_supported:
  case SMTPKIT_CAUSE_no_common_mechanism:
    if (!asked->mechs)
      return false;
    out->mechs = NULL;
    return true;
  default:
    if (!channel_cause(c))
      return false;
    break;
  }
  const sk_probe *other = best_fit(r, p);
  if (!other)
    return false;
  out->p = other;
  out->mode = fit_mode(other);
  return true;
}

/* Verifies the fixed settings with one more login when the secret has not
 * been judged yet (a refusal of the channel or mechanism is no judgement
 * of the password, so it does not count toward a lock-out). */
static void verify_fix(smtpkit_doctor_report *r, const variant *asked,
                       smtpkit_cause c) {
  variant fix;
  if (!fixed_variant(r, asked, c, &fix))
    return;
  if (!r->need_auth) {
    if (fit_in(r, fix.p, fix.mode) && !fix.mechs && fix.helo == asked->helo)
      recommend(r, &fix);
    return;
  }
  if (r->judged || r->skipped[0])
    return;
  smtpkit_error e = {0};
  if (login(r, &fix, false, &e)) {
    recommend(r, &fix);
  } else {
    char rl[400] = "";
    if (e.reply.code)
      reply_line(&e.reply, rl, sizeof rl);
    note(&r->evidence, "the alternative (%s:%u, %s%s%s) fails too: %s%s%s%s",
         fix.p->host, fix.p->port, mode_word(fix.mode),
         fix.mechs ? ", AUTH " : "", fix.mechs ? fix.mechs : "",
         smtpkit_cause_name(e.cause), rl[0] ? " (\"" : "", rl,
         rl[0] ? "\")" : "");
  }
  sk_error_clear(&e);
}

/* ---- step 4: the user's settings, or the best port ---- */

static void take(smtpkit_doctor_report *r, smtpkit_error *e) {
  err_copy(&r->err, e);
  sk_error_clear(e);
}

static void conclude_login(smtpkit_doctor_report *r, const variant *v) {
  smtpkit_error e = {0};
  bool test = r->o->send_test_to != NULL, ok;
  if (r->o->try_all_mechanisms) {
    ok = login_each_mechanism(r, v, &e);
    if (ok && test && r->has_rec) {
      /* The test message over a session of its own, with the mechanism
       * that worked. */
      variant t = *v;
      t.mechs = r->rec.auth_mechanism;
      sk_error_clear(&e);
      ok = login(r, &t, true, &e);
    }
  } else {
    ok = login(r, v, test, &e);
    if (r->auth.ok)
      recommend(r, v);
  }
  if (r->st.attempted) {
    char rl[400] = "";
    reply_line(&r->st.reply, rl, sizeof rl);
    note(&r->evidence, "test message from %s to %s: \"%s\"", r->st_from,
         r->st_to, r->st.reply.code ? rl : e.detail);
  } else if (!ok && e.detail[0] && !e.reply.code) {
    note(&r->evidence, "login on %s:%u (%s): %s", v->p->host, v->p->port,
         mode_word(v->mode), e.detail);
  }
  take(r, &e);
  if (!ok && !r->auth.ok)
    verify_fix(r, v, r->err.cause);
  else if (ok && v->mode == SMTPKIT_TLS_NONE)
    verify_fix(r, v, SMTPKIT_CAUSE_starttls_required); /* a TLS mode too */
}

static void diagnose_asked(smtpkit_doctor_report *r) {
  const sk_probe *p = NULL;
  for (size_t i = 0; i < r->n_probes && !p; i++)
    if (r->probes[i].asked)
      p = &r->probes[i];
  if (!p)
    p = &r->probes[0];
  variant v = {.p = p,
               .mode = r->asked_mode,
               .mechs = r->set.mechanisms,
               .helo = r->set.helo};
  note(&r->evidence, "your settings: %s on %s port %u%s%s%s%s%s%s",
       mode_word(v.mode), p->host, p->port,
       r->set.tls == SMTPKIT_TLS_AUTO ? " (--tls auto: implicit TLS on 465, "
                                        "STARTTLS elsewhere)"
                                      : "",
       v.mechs ? ", AUTH " : "", v.mechs ? v.mechs : "", v.mechs ? " only" : "",
       v.helo ? ", EHLO " : "", v.helo ? v.helo : "");
  smtpkit_error e;
  sk_probe_judge(p, r->asked_mode, r->set.insecure, r->need_auth, &e);
  probe_evidence(r, p, r->asked_mode);
  if (e.cause != SMTPKIT_CAUSE_ok) {
    take(r, &e);
    verify_fix(r, &v, r->err.cause);
    return;
  }
  sk_error_clear(&e);
  if (r->need_auth) {
    conclude_login(r, &v);
    return;
  }
  set_cause(r, SMTPKIT_CAUSE_ok);
  if (r->asked_mode != SMTPKIT_TLS_NONE && fit_in(r, p, r->asked_mode))
    recommend(r, &v);
  else
    verify_fix(r, &v, SMTPKIT_CAUSE_starttls_required);
}

static void diagnose_found(smtpkit_doctor_report *r) {
  const sk_probe *best = best_fit(r, NULL);
  if (!best) {
    /* Nothing fit: the port that got furthest tells the most. */
    const sk_probe *top = &r->probes[0];
    for (size_t i = 1; i < r->n_probes; i++)
      if (sk_probe_progress(&r->probes[i], r->set.insecure) >
          sk_probe_progress(top, r->set.insecure))
        top = &r->probes[i];
    smtpkit_error e;
    sk_probe_judge(top, SMTPKIT_TLS_AUTO, r->set.insecure, true, &e);
    probe_evidence(r, top, SMTPKIT_TLS_AUTO);
    for (size_t i = 0; i < r->n_probes; i++)
      if (&r->probes[i] != top)
        note(&r->evidence, "%s:%u: %s", r->probes[i].host, r->probes[i].port,
             smtpkit_cause_name(r->pub[i].result.cause));
    take(r, &e);
    return;
  }
  variant v = {.p = best,
               .mode = fit_mode(best),
               .mechs = r->set.mechanisms,
               .helo = r->set.helo};
  probe_evidence(r, best, v.mode);
  if (r->need_auth) {
    conclude_login(r, &v);
    return;
  }
  set_cause(r, SMTPKIT_CAUSE_ok);
  recommend(r, &v);
}

/* ---- the run ---- */

static void copy_settings(smtpkit_doctor_report *r,
                          const smtpkit_doctor_options *o) {
  r->set = o->settings;
  if (!r->set.timeout_ms)
    r->set.timeout_ms = DEFAULT_TIMEOUT_MS;
  r->creds = r->set.user && (r->set.password || r->set.oauth2_token);
  r->need_auth = r->creds && !o->no_auth;
  r->user = sk_strdup(r->set.user);
  r->ca_file = sk_strdup(r->set.ca_file);
  if (!r->creds && !o->no_auth)
    note(&r->warnings, "no credentials given (--user and a password or "
                       "token source): the login was not tested");
  if (r->set.insecure)
    note(&r->warnings, "--insecure: certificates are not required to "
                       "verify");
  if (o->try_all_mechanisms && r->need_auth)
    note(&r->warnings, "--try-all-mechanisms: one login per offered "
                       "mechanism; failed attempts can count toward a "
                       "lock-out");
  if (o->send_test_to && !r->need_auth)
    note(&r->warnings, "--send-test needs a login: no test message sent");
}

static void diagnose(smtpkit_doctor_report *r) {
  if (check_endpoint(r)) {
    const sk_probe *alt = best_fit(r, NULL);
    if (alt && strcmp(alt->host, r->host) != 0) {
      variant v = {.p = alt,
                   .mode = fit_mode(alt),
                   .mechs = r->set.mechanisms,
                   .helo = r->set.helo};
      smtpkit_error e = {0};
      if (!r->need_auth || login(r, &v, false, &e))
        recommend(r, &v);
      sk_error_clear(&e);
    }
    return;
  }
  bool any_address = false;
  for (size_t i = 0; i < r->n_probes; i++)
    any_address = any_address || r->probes[i].n_addrs > 0;
  if (!any_address) {
    smtpkit_error e;
    sk_probe_judge(&r->probes[0], SMTPKIT_TLS_AUTO, r->set.insecure, false, &e);
    probe_evidence(r, &r->probes[0], SMTPKIT_TLS_AUTO);
    take(r, &e);
    return;
  }
  if (check_intercepted(r))
    return;
  if (r->asked)
    diagnose_asked(r);
  else
    diagnose_found(r);
  if (!r->err.provider && r->expected && r->err.cause != SMTPKIT_CAUSE_ok)
    r->err.provider = r->expected;
}

smtpkit_doctor_report *smtpkit_doctor_run(const smtpkit_doctor_options *o) {
  smtpkit_doctor_report *r = calloc(1, sizeof *r);
  if (!r)
    return NULL;
  r->t0 = sk_now_ms();
  r->o = o;
  copy_settings(r, o);
  r->deadline = r->t0 + r->set.timeout_ms;
  unsigned input_port = 0;
  const char *in = o->input ? o->input : o->settings.host;
  char err[300] = "";
  if (!in || !*in || !parse_input(r, in, &input_port)) {
    set_cause(r, SMTPKIT_CAUSE_dns_failure);
    sk_error_detail(&r->err, "no server to probe in '%s'", in ? in : "");
  } else if (!(r->dns = sk_dns_new(o->dns_server, err, sizeof err))) {
    set_cause(r, SMTPKIT_CAUSE_dns_failure);
    sk_error_detail(&r->err, "%s", err);
  } else if (find_target(r, input_port)) {
    resolve_probes(r);
    run_probes(r);
    diagnose(r);
  }
  if (r->err.cause == SMTPKIT_CAUSE_ok && r->err.detail[0] == '\0' &&
      r->has_rec)
    sk_error_detail(&r->err, "%s:%u with %s works", r->rec.host, r->rec.port,
                    mode_word(r->rec.tls));
  r->target.input = r->input;
  r->target.host = r->host[0] ? r->host : NULL;
  r->target.provider = r->expected;
  r->target.source = r->source[0] ? r->source : r->host[0] ? "input" : NULL;
  r->target.n_lookups = r->lookups.n;
  r->target.lookups = (const char *const *)r->lookups.v;
  if (!r->auth.attempted && !r->skipped[0])
    snprintf(r->skipped, sizeof r->skipped, "%s",
             o->no_auth  ? "--no-auth: probe only"
             : !r->creds ? "no credentials given"
             : r->err.cause != SMTPKIT_CAUSE_ok
                 ? "credentials were not sent: the server failed before a "
                   "login was possible"
                 : "no login was needed");
  r->auth.skipped = r->auth.attempted ? NULL : r->skipped;
  r->auth.attempts = r->attempts;
  r->o = NULL;
  r->elapsed = sk_now_ms() - r->t0;
  return r;
}

/* ---- accessors ---- */

const smtpkit_error *smtpkit_doctor_error(const smtpkit_doctor_report *r) {
  return &r->err;
}

int smtpkit_doctor_exit_code(const smtpkit_doctor_report *r) {
  return r->err.cause == SMTPKIT_CAUSE_ok
             ? 0
             : smtpkit_cause_exit_code(r->err.cause, r->err.transient);
}

size_t smtpkit_doctor_evidence(const smtpkit_doctor_report *r,
                               const char *const **out) {
  *out = (const char *const *)r->evidence.v;
  return r->evidence.n;
}

void smtpkit_doctor_advice(const smtpkit_doctor_report *r,
                           smtpkit_advice *out) {
  if (r->server_id)
    sk_advice_fill(out, r->err.cause, r->err.provider, r->server_id, NULL);
  else
    smtpkit_error_advice(&r->err, out);
}

const smtpkit_doctor_target *
smtpkit_doctor_target_of(const smtpkit_doctor_report *r) {
  return &r->target;
}

size_t smtpkit_doctor_probes(const smtpkit_doctor_report *r,
                             const smtpkit_probe **out) {
  *out = r->pub;
  return r->n_probes;
}

const smtpkit_doctor_auth *
smtpkit_doctor_auth_of(const smtpkit_doctor_report *r) {
  return &r->auth;
}

const smtpkit_doctor_send_test *
smtpkit_doctor_send_test_of(const smtpkit_doctor_report *r) {
  return &r->st;
}

bool smtpkit_doctor_recommended(const smtpkit_doctor_report *r,
                                smtpkit_doctor_endpoint *out) {
  if (r->has_rec && out)
    *out = r->rec;
  return r->has_rec;
}

const char *smtpkit_doctor_user(const smtpkit_doctor_report *r) {
  return r->user;
}

const char *smtpkit_doctor_ca_file(const smtpkit_doctor_report *r) {
  return r->ca_file;
}

size_t smtpkit_doctor_warnings(const smtpkit_doctor_report *r,
                               const char *const **out) {
  *out = (const char *const *)r->warnings.v;
  return r->warnings.n;
}

long long smtpkit_doctor_elapsed_ms(const smtpkit_doctor_report *r) {
  return r->elapsed;
}
