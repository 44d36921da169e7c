/* batch.h — `smtpkit send --batch PATH`: every message of a Maildir, a
 * directory of .eml files or an mbox, over one connection or a few. */
#ifndef SMTPKIT_CLI_BATCH_H
#define SMTPKIT_CLI_BATCH_H

#include "args.h"
#include "msg_input.h"

typedef struct batch_request {
  conn_opts *c;
  const char *path;     /* --batch */
  unsigned connections; /* --connections; 0: 1 */
  const char *from;     /* --from, or NULL: each message's From: */
  const addr_list *to;  /* --to; empty: each message's To/Cc/Bcc */
} batch_request;

/* Sends the batch, prints one result per message (a JSON line each with
 * --json) and returns the exit code: 0 when every message went to every
 * recipient, else the code of the first message (in batch order) that
 * did not. */
int batch_send(const batch_request *req);

/* The --batch lines of `smtpkit send --help`. */
void batch_help(void);

#endif
