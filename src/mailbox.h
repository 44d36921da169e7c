/* mailbox.h — the messages of a Maildir, a directory of .eml files or an
 * mbox, one stream per message, for batch sending. */
#ifndef SMTPKIT_MAILBOX_H
#define SMTPKIT_MAILBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

typedef enum sk_mailbox_kind {
  SK_MAILBOX_MAILDIR, /* a directory with cur/ and/or new/ */
  SK_MAILBOX_EMLDIR,  /* a directory of *.eml files */
  SK_MAILBOX_MBOX,    /* a file of messages, each after a From_ line */
  SK_MAILBOX_FILE     /* a file holding one message */
} sk_mailbox_kind;

/* How ">From " lines in an mbox were quoted. mboxrd (the default): every
 * line matching ^>*From got one more '>', so one is removed from ^>+From.
 * mboxo: only ^From got a '>', so only ^>From loses it. */
typedef enum sk_mbox_quoting { SK_MBOXRD, SK_MBOXO } sk_mbox_quoting;

typedef struct sk_mailbox sk_mailbox;

/* Lists the messages at path. NULL on failure, with err set and *missing
 * true when path cannot be read at all (EX_NOINPUT). */
sk_mailbox *sk_mailbox_open(const char *path, sk_mbox_quoting quoting,
                            char *err, size_t errlen, bool *missing);
void sk_mailbox_free(sk_mailbox *mb);
sk_mailbox_kind sk_mailbox_kind_of(const sk_mailbox *mb);
const char *sk_mailbox_kind_name(sk_mailbox_kind k);
size_t sk_mailbox_count(const sk_mailbox *mb);
/* The message's file ("box/new/1700000000.M1P2.host"), or for an mbox
 * "box.mbox#3" (numbered from 1). */
const char *sk_mailbox_name(const sk_mailbox *mb, size_t i);
/* The file that holds message i alone, or NULL for an mbox message. */
const char *sk_mailbox_path(const sk_mailbox *mb, size_t i);
/* Opens message i, positioned at its first byte: the file itself, or for
 * an mbox message a stream over its bytes without the From_ line and with
 * >From lines unquoted (it can be rewound). NULL with errno set on
 * failure. Different messages may be opened from different threads. */
FILE *sk_mailbox_fopen(const sk_mailbox *mb, size_t i);

/* The >From unquoting as a stream filter: state carries across calls. */
typedef struct sk_unquoter {
  sk_mbox_quoting quoting;
  bool bol;     /* at the beginning of a line */
  bool holding; /* a '>' at the beginning of the line, not yet written */
  int matched;  /* bytes of "From " seen after it */
} sk_unquoter;

void sk_unquote_init(sk_unquoter *u, sk_mbox_quoting q);
/* Filters n bytes of in into out (room for n + 8 bytes); returns the
 * count written. */
size_t sk_unquote(sk_unquoter *u, const char *in, size_t n, char *out);
/* At the end of the message: what is still held back (out: 8 bytes). */
size_t sk_unquote_finish(sk_unquoter *u, char *out);

#endif
