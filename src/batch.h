/* batch.h — what batch.c needs from client.c beyond the public API. */
#ifndef SMTPKIT_BATCH_H
#define SMTPKIT_BATCH_H

#include "smtpkit.h"

/* fn(ctx) is called once per message, right after its end of data (and
 * the next message's commands) went out and before its reply is awaited:
 * work done there (reading the message after next) overlaps the server's
 * instead of following it. NULL to stop. */
void sk_session_set_idle(smtpkit_session *s, void (*fn)(void *), void *ctx);

#endif
