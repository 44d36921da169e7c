/*
 * kb.h — the knowledge base (kb.c) and the classifier's helpers
 * (classify.c) for explain, doctor and the SASL layer; not installed.
 *
 * The knowledge lives in data/kb/ (.def files) and is compiled into static
 * tables: replies.def    known server replies and the cause each one means;
 *   providers.def  providers: domains, hosts, submission settings,
 *                  mechanisms, login formats, fingerprints, fix steps;
 *   causes.def     what each cause means, why it happens with correct
 *                  credentials, generic fix steps, the defining document;
 *   errors.def     client-side error texts (socket, resolver, TLS) that
 *                  explain recognises when a text holds no server reply.
 * Every string returned here is static: never free it.
 */
#ifndef SMTPKIT_KB_H
#define SMTPKIT_KB_H

#include "internal.h"

/* ---- replies (replies.def) ---- */

typedef struct sk_kb_reply {
  const char *origin;   /* provider or server program; "=id": see below */
  const char *stage;    /* "auth", "mail", ... or "" for any stage */
  int code;             /* 0: any code */
  const char *enhanced; /* "5.7.8", or "" for any */
  const char *pattern;  /* substrings joined by "&&"; "" for none */
  smtpkit_cause cause;
  const char *note;   /* what this reply means, for the user */
  const char *source; /* where the reply text is documented or quoted */
} sk_kb_reply;

/* What is known around a reply when looking it up. */
typedef struct sk_kb_query {
  const char *provider; /* provider id known from context, or NULL */
  smtpkit_stage stage;  /* SMTPKIT_STAGE_NONE when unknown */
  bool stage_guessed;   /* stage inferred from words around a pasted reply:
                           a mismatch lowers the score instead of excluding */
  int code;             /* 0 when the text carried none */
  const char *enhanced; /* "5.7.8"; NULL or "" when absent */
  const char *text;     /* the reply text (or a whole pasted text) */
  size_t len;
  bool around; /* text is what surrounds a reply, not the reply:
                  only distinctive wording counts (entries for
                  any code, or patterns of 10 bytes or more) */
} sk_kb_query;

/* Which entries a lookup considers: entries that recognise the reply by
 * its wording, entries that give the meaning of a bare code, or both. */
enum { SK_KB_WORDING = 1, SK_KB_CODES = 2, SK_KB_ALL = 3 };

/* The most specific entry that matches q, or NULL. Specificity: origin
 * equal to the known provider, then the length of the matched wording,
 * then the reply code, enhanced code and stage agreeing. An entry whose
 * origin starts with '=' ("=netease") only matches when q->provider is
 * that provider: its wording is too generic to identify it alone.
 * *ambiguous (if not NULL) is set when an entry of another origin scores
 * the same: the wording is shared, so it does not identify a provider.
 * *score (if not NULL) receives the winner's specificity (-1: none). */
const sk_kb_reply *sk_kb_reply_lookup(const sk_kb_query *q, unsigned which,
                                      bool *ambiguous, int *score);
/* The origin without the '=' mark. */
const char *sk_kb_reply_origin(const sk_kb_reply *e);
size_t sk_kb_reply_count(void);
const sk_kb_reply *sk_kb_reply_at(size_t i);

/* ---- providers (providers.def) ---- */

typedef enum sk_host_kind {
  SK_HOST_UNKNOWN,
  SK_HOST_SUBMISSION, /* authenticated submission (587/465) */
  SK_HOST_MX,         /* receives mail for the provider's users only */
  SK_HOST_RELAY,      /* relays for registered IPs/domains, not a login */
  SK_HOST_OTHER       /* belongs to the provider, role unknown */
} sk_host_kind;

const char *sk_host_kind_name(sk_host_kind k);

/* The canonical (static) id when id names a provider of the knowledge
 * base (SPEC §3 list and more), else NULL. Case-insensitive. */
const char *sk_kb_provider(const char *id);
/* "Google (Gmail / Workspace)", or NULL. */
const char *sk_kb_provider_name(const char *id);
size_t sk_kb_provider_count(void);
const char *sk_kb_provider_at(size_t i); /* id of the i-th provider */

/* Provider of a host name (KB_HOST patterns, "*.x" = any subdomain of x,
 * and KB_SUBMIT hosts, where the label REGION stands for any label), or
 * NULL. *kind (if not NULL) receives the host's role. */
const char *sk_kb_provider_from_host(const char *host, sk_host_kind *kind);
/* Provider of an e-mail address or a bare domain (KB_DOMAIN), or NULL. */
const char *sk_kb_provider_from_domain(const char *addr_or_domain);

/* Where a fingerprint is looked for. */
enum {
  SK_FP_BANNER = 1, /* the 220 greeting */
  SK_FP_EHLO = 2,   /* the EHLO reply */
  SK_FP_REPLY = 4,  /* any reply text */
  SK_FP_CERT = 8,   /* certificate subject / names */
  SK_FP_ANY = 15
};
/* Ids (providers, or server programs such as "cpanel", "exchange") whose
 * fingerprints occur in text, in table order, each once. Returns how many
 * were found (at most max are stored). */
size_t sk_kb_fingerprints(const char *text, size_t n, unsigned where,
                          const char **ids, size_t max);
/* The one provider the fingerprints in text name, or NULL when they name
 * none or several. */
const char *sk_kb_provider_from_text(const char *text, size_t n,
                                     unsigned where);

/* Submission endpoints of a provider, in the order the data lists them.
 * host may contain the label REGION (Amazon SES: email-smtp.REGION...). */
typedef struct sk_kb_submit {
  const char *id, *host;
  unsigned port;
  const char *tls; /* "starttls" or "implicit" */
  const char *source;
} sk_kb_submit;
/* Fills out with up to max entries; returns how many exist. */
size_t sk_kb_submits(const char *id, const sk_kb_submit **out, size_t max);

/* Space-separated SASL mechanisms the provider offers ("LOGIN PLAIN
 * XOAUTH2"), or NULL. */
const char *sk_kb_mechanisms(const char *id);

/* How to log in: the user-name format, the kind of secret, and the page
 * where the user creates it (app password, API key, SMTP credentials). */
typedef struct sk_kb_login {
  const char *id, *username, *secret, *setup_url, *source;
} sk_kb_login;
const sk_kb_login *sk_kb_login_info(const char *id);

/* The provider's rule for the SMTP user name, or NULL: a literal name
 * that every account uses ("apikey"), or "address" when it must be a
 * full e-mail address. */
const char *sk_kb_username_rule(const char *id);
/* True when user breaks id's rule (false when there is no rule). */
bool sk_kb_username_wrong(const char *id, const char *user);

/* ---- fixes and cause texts (providers.def, causes.def) ---- */

typedef struct sk_kb_fix {
  const char *id, *cause, *step, *source;
} sk_kb_fix;
/* The provider's (or server program's) own fix steps for a cause, in
 * order; fills out with up to max; returns how many exist. */
size_t sk_kb_fixes(const char *id, smtpkit_cause cause, const sk_kb_fix **out,
                   size_t max);

#define SK_KB_MAX_STEPS 8
typedef struct sk_kb_cause {
  smtpkit_cause cause;
  const char *summary;   /* one sentence */
  const char *why;       /* why it happens with correct credentials, or "" */
  const char *reference; /* defining document, or "" */
  const char *steps[SK_KB_MAX_STEPS + 1]; /* generic fix steps, NULL-ended */
} sk_kb_cause;
/* Never NULL for a valid cause (every cause has a line in causes.def). */
const sk_kb_cause *sk_kb_cause_info(smtpkit_cause c);

/* ---- client-side error texts (errors.def) ---- */

typedef struct sk_kb_error {
  const char *pattern; /* substrings joined by "&&" */
  smtpkit_cause cause;
  const char *note, *source;
} sk_kb_error;
/* The most specific (longest pattern) entry found in text, or NULL. */
const sk_kb_error *sk_kb_error_lookup(const char *text, size_t n);
size_t sk_kb_error_count(void);
const sk_kb_error *sk_kb_error_at(size_t i);

/* True when every "&&"-separated part of pattern occurs in text (ASCII
 * case-insensitive); *len (if not NULL) gets the summed part lengths. */
bool sk_kb_pattern_match(const char *pattern, const char *text, size_t n,
                         size_t *len);

/* ---- classify.c: helpers for explain, doctor and the SASL layer ---- */

/* Decodes the base64 challenge a server sends after a refused XOAUTH2 or
 * OAUTHBEARER token (RFC 7628 §3.2.2; Google and Microsoft send JSON like
 * {"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}).
 * Returns true when it is JSON with a "status" member; copies status,
 * scope and schemes (each may be NULL / 0 to skip; "" when absent). */
bool sk_oauth_error_decode(const char *b64, size_t n, char *status,
                           size_t status_cap, char *scope, size_t scope_cap,
                           char *schemes, size_t schemes_cap);

/* The server that answered is not the one expected: the expected provider
 * is known (ctx->provider, else from ctx->host) and the banner carries the
 * fingerprint of a server program (e.g. a web host's cPanel Exim answering
 * for smtp.gmail.com) and none of the expected provider. Another
 * provider's banner alone is not taken as interception (AOL greets from
 * Yahoo's platform). *who (if not NULL) gets the server program's id. */
bool sk_classify_intercepted(const sk_context *ctx, const char **who);

/* What explain (or doctor) adds to sk_classify_reply(), and what it learns
 * back about the decision. */
typedef struct sk_classify_extra {
  bool stage_guessed; /* the stage was inferred from words around a
                         pasted reply: it only weighs, never excludes */
  const char *around; /* text around the reply (a pasted log), searched
                         for known wording when the reply text has none */
  size_t around_len;
  const sk_kb_reply *entry; /* out: the knowledge that decided, or NULL */
  bool ambiguous;           /* out: entry's wording is shared by other
                               origins, so it does not identify a provider */
  int score;                /* out: entry's specificity (-1: no entry) */
} sk_classify_extra;

void sk_classify_reply_ex(smtpkit_error *err, smtpkit_stage stage,
                          const smtpkit_reply *reply, const sk_context *ctx,
                          sk_classify_extra *x);

/* Classifies a client-side error text (socket, resolver, TLS, a client
 * library's own message; data/kb/errors.def). Returns the entry that
 * decided, or NULL (err untouched) when the text holds none. */
const sk_kb_error *sk_classify_client_error(smtpkit_error *err,
                                            const char *text, size_t n);

/* Fills a public advice record (smtpkit.h) for a cause: the provider's
 * steps where it has some, else the generic ones; server (e.g. "cpanel")
 * adds that server program's steps; entry adds its note and source. */
void sk_advice_fill(smtpkit_advice *a, smtpkit_cause cause,
                    const char *provider, const char *server,
                    const sk_kb_reply *entry);

#endif
