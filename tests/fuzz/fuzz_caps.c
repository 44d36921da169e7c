/* libFuzzer target: EHLO capabilities from any reply text. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  char *text = malloc(size + 1);
  memcpy(text, data, size);
  text[size] = '\0';
  smtpkit_reply r = {.code = 250, .text = text};
  sk_caps c;
  memset(&c, 0, sizeof c);
  sk_caps_parse(&c, &r);
  if (strlen(c.auth) >= sizeof c.auth)
    abort();
  sk_caps_has_mech(&c, "PLAIN");
  sk_caps_free(&c);
  free(text);
  return 0;
}
