/* msg_input.h — a message given on stdin: spooled so it can be measured
 * and sent without holding it in memory, its header addresses read for
 * -t, and Bcc removed on the way out. */
#ifndef SMTPKIT_CLI_MSG_INPUT_H
#define SMTPKIT_CLI_MSG_INPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef struct addr_list {
  char **v;
  size_t n, cap;
} addr_list;

bool addr_add(addr_list *l, const char *a, size_t n);
void addr_free(addr_list *l);
/* Splits an address-list header value ("A <a@x>, b@y") into addresses.
 * Returns false if an address contains a control character. */
bool addr_parse_list(addr_list *l, const char *value);

typedef struct msg_input {
  FILE *f; /* spool (or stdin itself when it is a regular file) */
  bool own_f;
  bool strip_bcc;
  /* header scan results */
  addr_list to_cc_bcc; /* for -t */
  char *from;          /* address in From:, or NULL */
  /* reading state */
  bool in_headers, skipping;
  char *line;
  size_t line_cap;
} msg_input;

/* Spools stdin (if needed) and scans the header. Returns 0 or an exit
 * code after printing why. */
int msg_input_open(msg_input *m, FILE *in, bool strip_bcc);
/* smtpkit_read_fn; rewinds on msg_input_rewind. */
long msg_input_read(void *ctx, char *buf, size_t cap);
void msg_input_rewind(msg_input *m);
void msg_input_close(msg_input *m);

#endif
