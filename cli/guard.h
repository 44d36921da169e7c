/* guard.h — the lock-out guard: a secret a server refused as a bad
 * credential is not sent to it again for 15 minutes (unless --force-auth).
 * Cron jobs that retry a wrong password every minute are how accounts get
 * locked ("too many login attempts"). */
#ifndef SMTPKIT_CLI_GUARD_H
#define SMTPKIT_CLI_GUARD_H

#include "args.h"
#include "smtpkit.h"

#include <stdbool.h>
#include <stddef.h>

#define GUARD_SECONDS (15 * 60)

/* Seconds since this secret was refused for (host, port, user), or -1 when
 * it was not (or long enough ago). */
long guard_refused_ago(const char *host, unsigned port, const char *user,
                       const char *key_secret, size_t len);
/* Remembers a refusal (salted hash only; the file is 0600). */
void guard_record(const char *host, unsigned port, const char *user,
                  const char *key_secret, size_t len);
/* Forgets refusals for (host, port, user) after a successful login. */
void guard_forget(const char *host, unsigned port, const char *user);

/* ---- as send, batch and doctor use it ---- */

/* True when the guard holds the secret of c back from (host, port);
 * why then says so, for the user. False without --user or with
 * --force-auth. */
bool guard_holds(const conn_opts *c, const char *host, unsigned port, char *why,
                 size_t cap);
/* The failure of a held-back login: cause from the classifier. */
void guard_error(smtpkit_error *err, const char *why);
/* Is e a credential refusal the guard should remember (535 to AUTH)? */
bool guard_is_refusal(const smtpkit_error *e);
/* After a login: forget refusals when it worked, remember the secret
 * when it was refused. */
void guard_learn(const conn_opts *c, const char *host, unsigned port,
                 bool logged_in, bool refused);

#endif
