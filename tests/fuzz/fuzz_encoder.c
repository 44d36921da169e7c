/* libFuzzer target: the wire encoder. Invariant: the output never holds a
 * bare CR or LF, and CRLF "." CRLF appears only as the final end of data
 * (SMTP smuggling needs exactly that to fail). */
#include "message.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  sk_encoder e;
  sk_encoder_init(&e);
  char *out = malloc(2 * size + 16);
  size_t o = 0, i = 0;
  while (i < size) {
    size_t n = 1 + (data[i] % 17);
    if (n > size - i)
      n = size - i;
    o += sk_encode(&e, (const char *)data + i, n, out + o);
    i += n;
  }
  o += sk_encode_finish(&e, out + o);
  for (size_t k = 0; k < o; k++) {
    if (out[k] == '\r' && (k + 1 >= o || out[k + 1] != '\n'))
      abort();
    if (out[k] == '\n' && (k == 0 || out[k - 1] != '\r'))
      abort();
  }
  if (o < 3 || memcmp(out + o - 3, ".\r\n", 3) != 0)
    abort();
  for (size_t k = 0; k + 5 <= o - 3; k++)
    if (memcmp(out + k, "\r\n.\r\n", 5) == 0)
      abort();
  if (o > 3 && memcmp(out, ".\r\n", 3) == 0)
    abort();
  free(out);
  return 0;
}
