/* guard.h — the lock-out guard: a secret a server refused as a bad
 * credential is not sent to it again for 15 minutes (unless --force-auth).
 * Cron jobs that retry a wrong password every minute are how accounts get
 * locked ("too many login attempts"). */
#ifndef SMTPKIT_CLI_GUARD_H
#define SMTPKIT_CLI_GUARD_H

#include <stdbool.h>
#include <stddef.h>

#define GUARD_SECONDS (15 * 60)

/* Seconds since this secret was refused for (host, port, user), or -1 when
 * it was not (or long enough ago). */
long guard_refused_ago(const char *host, unsigned port, const char *user,
                       const char *secret, size_t len);
/* Remembers a refusal (salted hash only; the file is 0600). */
void guard_record(const char *host, unsigned port, const char *user,
                  const char *secret, size_t len);
/* Forgets refusals for (host, port, user) after a successful login. */
void guard_forget(const char *host, unsigned port, const char *user);

#endif
