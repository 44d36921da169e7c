/* libFuzzer target: the reply parser, fed in chunks the input chooses. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  sk_reply_parser p;
  sk_reply_parser_init(&p);
  size_t i = 0;
  while (i < size) {
    /* The first byte of each chunk says how long the chunk is. */
    size_t n = 1 + data[i] % 64;
    i++;
    if (n > size - i)
      n = size - i;
    if (!sk_reply_parser_feed(&p, (const char *)data + i, n))
      break;
    i += n;
    for (int k = 0; k < 64; k++) {
      smtpkit_reply r = {0};
      char *raw = NULL;
      int st = sk_reply_parser_next(&p, &r, &raw);
      if (st == SK_RP_REPLY) {
        if (r.code < 200 || r.code > 599 || !r.text || !raw)
          abort();
        if (strlen(r.text) > SK_REPLY_MAX_TEXT)
          abort();
        free(raw);
        sk_reply_clear(&r);
        continue;
      }
      if (st == SK_RP_ERROR)
        goto done;
      break;
    }
  }
done:
  sk_reply_parser_free(&p);
  return 0;
}
