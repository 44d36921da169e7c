/* libFuzzer target: the explain text extractor and classifier, fed any
 * pasted text (tracebacks, logs, garbage). */
#include "smtpkit.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  smtpkit_explanation e;
  const char *provider = size && (data[0] & 1) ? "google" : NULL;
  smtpkit_explain_text((const char *)data, size, provider, &e);
  if ((unsigned)e.cause >= SMTPKIT_CAUSE_COUNT)
    abort();
  if (strnlen(e.text, sizeof e.text) >= sizeof e.text)
    abort();
  if (e.advice.n_fix > SMTPKIT_ADVICE_MAX_FIX)
    abort();
  return 0;
}
