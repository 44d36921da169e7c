/*
 * kb.c — the knowledge base: data/kb/ files compiled into static tables,
 * and the look-ups the classifier, explain and doctor use.
 *
 * Knowledge is data: nothing here knows a provider or a reply text; it
 * only knows how to match. The .def files are X-macro lists; each table
 * below includes its file with only its own macro expanding to a row.
 * Matching is ASCII case-insensitive and 8-bit clean (QQ's GBK and UTF-8
 * Chinese patterns compare byte for byte).
 */
#include "kb.h"

#include <ctype.h>
#include <string.h>

/* ---- matching ---- */

static bool same_ci(const char *a, const char *b, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (tolower((unsigned char)a[i]) != tolower((unsigned char)b[i]))
      return false;
  return true;
}

static bool find_ci(const char *hay, size_t n, const char *needle, size_t m) {
  if (m == 0)
    return true;
  for (size_t i = 0; i + m <= n; i++)
    if (same_ci(hay + i, needle, m))
      return true;
  return false;
}

static bool eq_ci(const char *a, const char *b) {
  return a && b && strlen(a) == strlen(b) && same_ci(a, b, strlen(a));
}

bool sk_kb_pattern_match(const char *pattern, const char *text, size_t n,
                         size_t *len) {
  size_t total = 0;
  const char *p = pattern;
  for (;;) {
    const char *amp = strstr(p, "&&");
    size_t m = amp ? (size_t)(amp - p) : strlen(p);
    if (!text || !find_ci(text, n, p, m))
      return false;
    total += m;
    if (!amp)
      break;
    p = amp + 2;
  }
  if (len)
    *len = total;
  return true;
}

/* ---- tables ---- */

/* Every row macro of providers.def expands to nothing unless a table below
 * redefines it for the duration of one #include. */
#define ROW_NONE(...)
#define KB_PROVIDER(...) ROW_PROVIDER(__VA_ARGS__)
#define KB_DOMAIN(...) ROW_DOMAIN(__VA_ARGS__)
#define KB_HOST(...) ROW_HOST(__VA_ARGS__)
#define KB_SUBMIT(...) ROW_SUBMIT(__VA_ARGS__)
#define KB_MECHS(...) ROW_MECHS(__VA_ARGS__)
#define KB_LOGIN(...) ROW_LOGIN(__VA_ARGS__)
#define KB_FINGERPRINT(...) ROW_FINGERPRINT(__VA_ARGS__)
#define KB_FIX(...) ROW_FIX(__VA_ARGS__)
#define KB_USERNAME(...) ROW_USERNAME(__VA_ARGS__)
#define ROW_PROVIDER ROW_NONE
#define ROW_DOMAIN ROW_NONE
#define ROW_HOST ROW_NONE
#define ROW_SUBMIT ROW_NONE
#define ROW_MECHS ROW_NONE
#define ROW_LOGIN ROW_NONE
#define ROW_FINGERPRINT ROW_NONE
#define ROW_FIX ROW_NONE
#define ROW_USERNAME ROW_NONE

#define N(a) (sizeof(a) / sizeof *(a))

static const sk_kb_reply replies[] = {
#define KB_REPLY(origin, stage, code, enh, pattern, cause, note, source)       \
  {origin, stage, code, enh, pattern, SMTPKIT_CAUSE_##cause, note, source},
#include "kb/replies.def"
#undef KB_REPLY
};

struct provider_row {
  const char *id, *name, *source;
};
#undef ROW_PROVIDER
#define ROW_PROVIDER(id, name, source) {id, name, source},
static const struct provider_row providers[] = {
#include "kb/providers.def"
};
#undef ROW_PROVIDER
#define ROW_PROVIDER ROW_NONE

struct domain_row {
  const char *id, *domain;
};
#undef ROW_DOMAIN
#define ROW_DOMAIN(id, domain) {id, domain},
static const struct domain_row domains[] = {
#include "kb/providers.def"
};
#undef ROW_DOMAIN
#define ROW_DOMAIN ROW_NONE

struct host_row {
  const char *id, *pattern, *kind, *source;
};
#undef ROW_HOST
#define ROW_HOST(id, pattern, kind, source) {id, pattern, kind, source},
static const struct host_row hosts[] = {
#include "kb/providers.def"
};
#undef ROW_HOST
#define ROW_HOST ROW_NONE

#undef ROW_SUBMIT
#define ROW_SUBMIT(id, host, port, tls, source) {id, host, port, tls, source},
static const sk_kb_submit submits[] = {
#include "kb/providers.def"
};
#undef ROW_SUBMIT
#define ROW_SUBMIT ROW_NONE

struct mechs_row {
  const char *id, *mechs, *source;
};
#undef ROW_MECHS
#define ROW_MECHS(id, mechs, source) {id, mechs, source},
static const struct mechs_row mechs[] = {
#include "kb/providers.def"
};
#undef ROW_MECHS
#define ROW_MECHS ROW_NONE

#undef ROW_LOGIN
#define ROW_LOGIN(id, user, secret, url, source)                               \
  {id, user, secret, url, source},
static const sk_kb_login logins[] = {
#include "kb/providers.def"
};
#undef ROW_LOGIN
#define ROW_LOGIN ROW_NONE

struct fingerprint_row {
  const char *id, *where, *pattern, *source;
};
#undef ROW_FINGERPRINT
#define ROW_FINGERPRINT(id, where, pattern, source)                            \
  {id, where, pattern, source},
static const struct fingerprint_row fingerprints[] = {
#include "kb/providers.def"
};
#undef ROW_FINGERPRINT
#define ROW_FINGERPRINT ROW_NONE

#undef ROW_FIX
#define ROW_FIX(id, cause, step, source) {id, cause, step, source},
static const sk_kb_fix fixes[] = {
#include "kb/providers.def"
};
#undef ROW_FIX
#define ROW_FIX ROW_NONE

struct username_row {
  const char *id, *rule, *source;
};
#undef ROW_USERNAME
#define ROW_USERNAME(id, rule, source) {id, rule, source},
static const struct username_row usernames[] = {
#include "kb/providers.def"
};
#undef ROW_USERNAME
#define ROW_USERNAME ROW_NONE

static const sk_kb_cause causes[SMTPKIT_CAUSE_COUNT] = {
#define KB_CAUSE(c, summary, why, reference, ...)                              \
  [SMTPKIT_CAUSE_##                                                            \
      c] = {SMTPKIT_CAUSE_##c, summary, why, reference, {__VA_ARGS__}},
#include "kb/causes.def"
#undef KB_CAUSE
};

static const sk_kb_error errors[] = {
#define KB_ERROR(pattern, cause, note, source)                                 \
  {pattern, SMTPKIT_CAUSE_##cause, note, source},
#include "kb/errors.def"
#undef KB_ERROR
};

/* ---- replies ---- */

size_t sk_kb_reply_count(void) { return N(replies); }

const sk_kb_reply *sk_kb_reply_at(size_t i) {
  return i < N(replies) ? &replies[i] : NULL;
}

const char *sk_kb_reply_origin(const sk_kb_reply *e) {
  return e->origin[0] == '=' ? e->origin + 1 : e->origin;
}

static smtpkit_stage stage_named(const char *name) {
  for (int s = SMTPKIT_STAGE_NONE; s <= SMTPKIT_STAGE_QUIT; s++)
    if (!strcmp(smtpkit_stage_name((smtpkit_stage)s), name))
      return (smtpkit_stage)s;
  return SMTPKIT_STAGE_NONE;
}

/* Weights of the specificity score. A known provider outweighs wording
 * length: its own entry explains its reply best even when a server
 * program's entry quotes more of it. */
enum {
  W_WORDING = 100, /* any wording matched: beats a bare code meaning */
  W_CHAR = 2,      /* per matched pattern byte */
  W_PROVIDER = 150,
  W_CODE = 40,
  W_ENHANCED = 40,
  W_NO_ENHANCED = 10, /* both reply and entry lack an enhanced code */
  W_STAGE = 30,
  W_STAGE_GUESS_WRONG = -15
};

/* The entry's score for q, or -1 when it does not match. */
static int reply_score(const sk_kb_reply *e, const sk_kb_query *q) {
  const char *qe = q->enhanced ? q->enhanced : "";
  const char *origin = sk_kb_reply_origin(e);
  bool wording = e->pattern[0] != '\0';
  int score = 0;
  if (e->origin[0] == '=' && !eq_ci(origin, q->provider))
    return -1;
  if (!wording && !e->code && !e->enhanced[0])
    return -1;
  if (e->code && q->code && e->code != q->code)
    return -1;
  if (e->code && !q->code && !wording)
    return -1;
  score += e->code && q->code ? W_CODE : 0;
  if (e->enhanced[0] && qe[0] && strcmp(e->enhanced, qe))
    return -1;
  /* Wording carries the meaning even when the codes were lost on the way
   * (.NET keeps only the enhanced code) or disagree (Microsoft's "451
   * 5.7.3": its classes differ). */
  if (e->enhanced[0] && !qe[0] && !wording)
    return -1;
  score += e->enhanced[0] && qe[0]     ? W_ENHANCED
           : !e->enhanced[0] && !qe[0] ? W_NO_ENHANCED
                                       : 0;
  if (e->stage[0]) {
    smtpkit_stage es = stage_named(e->stage);
    /* A bare code means something only at its stage; wording carries
     * its meaning with it. */
    if (q->stage == SMTPKIT_STAGE_NONE && !wording)
      return -1;
    if (q->stage != SMTPKIT_STAGE_NONE && es != q->stage &&
        (!q->stage_guessed || !wording))
      return -1;
    if (q->stage != SMTPKIT_STAGE_NONE)
      score += es == q->stage ? W_STAGE : W_STAGE_GUESS_WRONG;
  }
  if (wording) {
    size_t len = 0;
    if (!sk_kb_pattern_match(e->pattern, q->text, q->len, &len))
      return -1;
    /* "Sorry" or "Denied" name a reply only when they are its text. */
    if (q->around && e->code && len < 10)
      return -1;
    score += W_WORDING + W_CHAR * (int)len;
  }
  if (q->provider && eq_ci(origin, q->provider))
    score += W_PROVIDER;
  return score;
}

/* Shared wording is explained best by the most general source: an RFC's
 * note fits any server, a server program's fits its installations, a
 * provider's only the provider. */
static int generality(const sk_kb_reply *e) {
  const char *o = sk_kb_reply_origin(e);
  return !strncmp(o, "rfc", 3)   ? 0
         : !strcmp(o, "generic") ? 1
         : !sk_kb_provider(o)    ? 2
                                 : 3;
}

const sk_kb_reply *sk_kb_reply_lookup(const sk_kb_query *q, unsigned which,
                                      bool *ambiguous, int *score) {
  const sk_kb_reply *best = NULL;
  int best_score = -1;
  bool tie = false;
  for (size_t i = 0; i < N(replies); i++) {
    const sk_kb_reply *e = &replies[i];
    bool wording = e->pattern[0] != '\0';
    if (!(which & (wording ? SK_KB_WORDING : SK_KB_CODES)))
      continue;
    int s = reply_score(e, q);
    if (s < 0)
      continue;
    if (s > best_score) {
      best = e, best_score = s, tie = false;
    } else if (s == best_score &&
               !eq_ci(sk_kb_reply_origin(e), sk_kb_reply_origin(best))) {
      tie = true;
      if (generality(e) < generality(best))
        best = e;
    }
  }
  if (ambiguous)
    *ambiguous = tie;
  if (score)
    *score = best_score;
  return best;
}

/* ---- providers ---- */

const char *sk_host_kind_name(sk_host_kind k) {
  static const char *const names[] = {"unknown", "submission", "mx", "relay",
                                      "other"};
  return (unsigned)k < N(names) ? names[k] : "unknown";
}

static sk_host_kind kind_named(const char *s) {
  return !strcmp(s, "submission") ? SK_HOST_SUBMISSION
         : !strcmp(s, "mx")       ? SK_HOST_MX
         : !strcmp(s, "relay")    ? SK_HOST_RELAY
         : !strcmp(s, "other")    ? SK_HOST_OTHER
                                  : SK_HOST_UNKNOWN;
}

const char *sk_kb_provider(const char *id) {
  for (size_t i = 0; id && i < N(providers); i++)
    if (eq_ci(providers[i].id, id))
      return providers[i].id;
  return NULL;
}

const char *sk_kb_provider_name(const char *id) {
  for (size_t i = 0; id && i < N(providers); i++)
    if (eq_ci(providers[i].id, id))
      return providers[i].name;
  return NULL;
}

size_t sk_kb_provider_count(void) { return N(providers); }

const char *sk_kb_provider_at(size_t i) {
  return i < N(providers) ? providers[i].id : NULL;
}

/* Label-wise comparison where the pattern label REGION matches any one
 * label (SES: email-smtp.REGION.amazonaws.com). */
static bool labels_match(const char *pat, const char *host, size_t hn) {
  size_t pn = strlen(pat), i = 0, j = 0;
  while (i < pn && j < hn) {
    size_t pe = i, he = j;
    while (pe < pn && pat[pe] != '.')
      pe++;
    while (he < hn && host[he] != '.')
      he++;
    bool any = pe - i == 6 && !strncmp(pat + i, "REGION", 6) && he > j;
    if (!any && (pe - i != he - j || !same_ci(pat + i, host + j, pe - i)))
      return false;
    i = pe + (pe < pn), j = he + (he < hn);
    if ((pe < pn) != (he < hn))
      return false;
  }
  return i >= pn && j >= hn;
}

/* Host pattern match: "*.x" means any name below x, never x itself. */
static bool host_match(const char *pat, const char *host, size_t hn) {
  if (pat[0] == '*' && pat[1] == '.') {
    size_t sn = strlen(pat + 1);
    return hn > sn && same_ci(host + hn - sn, pat + 1, sn);
  }
  return labels_match(pat, host, hn);
}

const char *sk_kb_provider_from_host(const char *host, sk_host_kind *kind) {
  const char *best = NULL;
  size_t best_len = 0;
  sk_host_kind best_kind = SK_HOST_UNKNOWN;
  size_t hn = host ? strlen(host) : 0;
  while (hn && host[hn - 1] == '.')
    hn--;
  for (size_t i = 0; hn && i < N(hosts); i++) {
    size_t pl = strlen(hosts[i].pattern);
    if (pl > best_len && host_match(hosts[i].pattern, host, hn))
      best = hosts[i].id, best_len = pl, best_kind = kind_named(hosts[i].kind);
  }
  for (size_t i = 0; hn && i < N(submits); i++) {
    size_t pl = strlen(submits[i].host);
    if (pl > best_len && host_match(submits[i].host, host, hn))
      best = submits[i].id, best_len = pl, best_kind = SK_HOST_SUBMISSION;
  }
  if (kind)
    *kind = best_kind;
  return best;
}

const char *sk_kb_provider_from_domain(const char *s) {
  if (!s)
    return NULL;
  const char *at = strrchr(s, '@');
  const char *dom = at ? at + 1 : s;
  size_t dn = strlen(dom);
  while (dn && dom[dn - 1] == '.')
    dn--;
  for (size_t i = 0; i < N(domains); i++)
    if (strlen(domains[i].domain) == dn && same_ci(domains[i].domain, dom, dn))
      return domains[i].id;
  return NULL;
}

static unsigned where_bit(const char *w) {
  return !strcmp(w, "banner")  ? SK_FP_BANNER
         : !strcmp(w, "ehlo")  ? SK_FP_EHLO
         : !strcmp(w, "reply") ? SK_FP_REPLY
         : !strcmp(w, "cert")  ? SK_FP_CERT
                               : 0;
}

size_t sk_kb_fingerprints(const char *text, size_t n, unsigned where,
                          const char **ids, size_t max) {
  size_t found = 0;
  for (size_t i = 0; text && i < N(fingerprints); i++) {
    const struct fingerprint_row *f = &fingerprints[i];
    if (!(where_bit(f->where) & where) ||
        !sk_kb_pattern_match(f->pattern, text, n, NULL))
      continue;
    bool seen = false;
    for (size_t k = 0; k < found && k < max; k++)
      seen = seen || !strcmp(ids[k], f->id);
    if (seen)
      continue;
    if (found < max)
      ids[found] = f->id;
    found++;
  }
  return found;
}

const char *sk_kb_provider_from_text(const char *text, size_t n,
                                     unsigned where) {
  const char *ids[16];
  size_t k = sk_kb_fingerprints(text, n, where, ids, N(ids));
  const char *only = NULL;
  for (size_t i = 0; i < k && i < N(ids); i++) {
    if (!sk_kb_provider(ids[i]))
      continue; /* a server program, not a provider */
    if (only)
      return NULL; /* several providers: the text does not tell */
    only = ids[i];
  }
  return only;
}

size_t sk_kb_submits(const char *id, const sk_kb_submit **out, size_t max) {
  size_t k = 0;
  for (size_t i = 0; id && i < N(submits); i++)
    if (eq_ci(submits[i].id, id)) {
      if (k < max)
        out[k] = &submits[i];
      k++;
    }
  return k;
}

const char *sk_kb_mechanisms(const char *id) {
  for (size_t i = 0; id && i < N(mechs); i++)
    if (eq_ci(mechs[i].id, id))
      return mechs[i].mechs;
  return NULL;
}

const sk_kb_login *sk_kb_login_info(const char *id) {
  for (size_t i = 0; id && i < N(logins); i++)
    if (eq_ci(logins[i].id, id))
      return &logins[i];
  return NULL;
}

const char *sk_kb_username_rule(const char *id) {
  for (size_t i = 0; id && i < N(usernames); i++)
    if (eq_ci(usernames[i].id, id))
      return usernames[i].rule;
  return NULL;
}

bool sk_kb_username_wrong(const char *id, const char *user) {
  const char *rule = sk_kb_username_rule(id);
  if (!rule || !user)
    return false;
  if (!strcmp(rule, "address"))
    return !strchr(user, '@');
  return !eq_ci(rule, user);
}

/* ---- fixes and causes ---- */

size_t sk_kb_fixes(const char *id, smtpkit_cause cause, const sk_kb_fix **out,
                   size_t max) {
  const char *name = smtpkit_cause_name(cause);
  size_t k = 0;
  for (size_t i = 0; id && name && i < N(fixes); i++)
    if (eq_ci(fixes[i].id, id) && !strcmp(fixes[i].cause, name)) {
      if (k < max)
        out[k] = &fixes[i];
      k++;
    }
  return k;
}

const sk_kb_cause *sk_kb_cause_info(smtpkit_cause c) {
  return (unsigned)c < SMTPKIT_CAUSE_COUNT && causes[c].summary ? &causes[c]
                                                                : NULL;
}

const char *smtpkit_cause_summary(smtpkit_cause cause) {
  const sk_kb_cause *c = sk_kb_cause_info(cause);
  return c ? c->summary : "";
}

const char *smtpkit_provider_name(const char *id) {
  return sk_kb_provider_name(id);
}

const char *smtpkit_provider_id(size_t i) { return sk_kb_provider_at(i); }

/* ---- client-side errors ---- */

const sk_kb_error *sk_kb_error_lookup(const char *text, size_t n) {
  for (size_t i = 0; text && i < N(errors); i++)
    if (sk_kb_pattern_match(errors[i].pattern, text, n, NULL))
      return &errors[i];
  return NULL;
}

size_t sk_kb_error_count(void) { return N(errors); }

const sk_kb_error *sk_kb_error_at(size_t i) {
  return i < N(errors) ? &errors[i] : NULL;
}

/* ---- advice ---- */

static void add_ref(smtpkit_advice *a, const char *ref) {
  if (!ref || !ref[0] || a->n_references >= SMTPKIT_ADVICE_MAX_REFS)
    return;
  for (size_t i = 0; i < a->n_references; i++)
    if (!strcmp(a->references[i], ref))
      return;
  a->references[a->n_references++] = ref;
}

/* Appends id's own steps for cause; returns how many were added. */
static size_t add_fixes(smtpkit_advice *a, const char *id,
                        smtpkit_cause cause) {
  const sk_kb_fix *f[SMTPKIT_ADVICE_MAX_FIX];
  size_t k = sk_kb_fixes(id, cause, f, N(f)), added = 0;
  for (size_t i = 0; i < k && i < N(f); i++) {
    if (a->n_fix >= SMTPKIT_ADVICE_MAX_FIX)
      break;
    a->fix[a->n_fix++] = f[i]->step;
    add_ref(a, f[i]->source);
    added++;
  }
  return added;
}

void sk_advice_fill(smtpkit_advice *a, smtpkit_cause cause,
                    const char *provider, const char *server,
                    const sk_kb_reply *entry) {
  memset(a, 0, sizeof *a);
  a->cause = cause;
  a->provider = sk_kb_provider(provider);
  a->provider_name = sk_kb_provider_name(provider);
  const sk_kb_cause *c = sk_kb_cause_info(cause);
  a->summary = c ? c->summary : "";
  a->why = c ? c->why : "";
  if (entry) {
    a->note = entry->note;
    add_ref(a, entry->source);
  }
  size_t own = a->provider ? add_fixes(a, a->provider, cause) : 0;
  if (server && (!a->provider || strcmp(server, a->provider)))
    own += add_fixes(a, server, cause);
  /* The provider's own steps replace the generic ones: they say the same
   * thing with the names, pages and hosts the user will see. */
  for (size_t i = 0; !own && c && i < SK_KB_MAX_STEPS && c->steps[i]; i++)
    if (c->steps[i][0] && a->n_fix < SMTPKIT_ADVICE_MAX_FIX)
      a->fix[a->n_fix++] = c->steps[i];
  if (c)
    add_ref(a, c->reference);
}

void smtpkit_cause_advice(smtpkit_cause cause, const char *provider,
                          smtpkit_advice *out) {
  sk_advice_fill(out, cause, provider, NULL, NULL);
}
