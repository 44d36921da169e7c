/* sasl.h — SASL client mechanisms behind one interface (RFC 4422), and the
 * policy that picks and orders them. The session state machine sees only
 * this interface: a new mechanism never touches it. */
#ifndef SMTPKIT_SASL_H
#define SMTPKIT_SASL_H

#include "internal.h"

typedef struct sk_sasl sk_sasl;

typedef struct sk_sasl_creds {
  const char *user;
  const char *host;    /* for OAUTHBEARER's host= */
  unsigned port;       /* for OAUTHBEARER's port= */
  const char *cb_type; /* "tls-exporter", "tls-unique" or NULL */
  const char *cb_data; /* base64 channel-binding data */
  smtpkit_secret_fn password;
  void *password_ctx;
  smtpkit_secret_fn token;
  void *token_ctx;
} sk_sasl_creds;

/* Result of a step. */
enum { SK_SASL_ERROR = -1, SK_SASL_DONE = 0, SK_SASL_MORE = 1 };

/* Mechanism names this build can use. */
bool sk_sasl_known(const char *mech);
/* Does mech send the password itself (in clear or reversible form)? */
bool sk_sasl_exposes_password(const char *mech);
/* Does the mechanism use a bearer token rather than a password? */
bool sk_sasl_uses_token(const char *mech);

/* Starts mech. *initial receives the base64 initial response to send with
 * AUTH (possibly "" meaning an empty response), or NULL when the mechanism
 * waits for the server's first challenge. */
sk_sasl *sk_sasl_start(const char *mech, const sk_sasl_creds *creds,
                       char **initial, char *err, size_t errlen);
/* Answers a 334 challenge (base64 text after "334 "). *response receives
 * base64 text to send. */
int sk_sasl_step(sk_sasl *s, const char *challenge, char **response, char *err,
                 size_t errlen);
/* The error a token mechanism's server sent as a JSON challenge
 * (RFC 7628 §3.2.2; Google's and Microsoft's XOAUTH2 do the same):
 * "status=401 scope=... schemes=bearer", or NULL when none came. */
const char *sk_sasl_oauth_error(const sk_sasl *s);
/* Ends the exchange and wipes every secret it held. */
void sk_sasl_end(sk_sasl *s);
/* Frees and wipes a response string returned above. */
void sk_sasl_free_response(char *r);

/* Orders the mechanisms to try: the server's offer filtered by what we
 * have (password or token), by TLS, and by the user's restriction list
 * ("A,B", in that order). Writes up to max names into out; returns count. */
size_t sk_sasl_plan(const sk_caps *caps, bool tls, bool channel_binding,
                    bool have_password, bool have_token, bool allow_plaintext,
                    const char *restrict_list, char out[][32], size_t max);

/* After a failed attempt classified as cause: which of the remaining
 * mechanisms is worth one more attempt (RFC 4954 §6)? Returns its index in
 * remaining, or -1 to stop. */
int sk_sasl_fall_back_to(const char *mech, smtpkit_cause cause,
                         const smtpkit_reply *reply, bool tls,
                         char remaining[][32], size_t n_remaining);

#endif
