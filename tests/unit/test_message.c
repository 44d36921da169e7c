/* Tests for src/message.c (wire encoding) and src/mime.c (MIME builder). */
#include "message.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Encodes in with the given chunk size; returns malloc'd output. */
static char *encode(const char *in, size_t n, size_t chunk, size_t *outlen) {
  sk_encoder e;
  sk_encoder_init(&e);
  char *out = malloc(2 * n + 16);
  size_t o = 0;
  for (size_t i = 0; i < n; i += chunk) {
    size_t k = n - i < chunk ? n - i : chunk;
    o += sk_encode(&e, in + i, k, out + o);
  }
  o += sk_encode_finish(&e, out + o);
  out[o] = '\0';
  *outlen = o;
  return out;
}

/* The SMTP-smuggling invariant: every CR is followed by LF, every LF
 * preceded by CR, and CRLF.CRLF appears only at the very end. */
static void assert_wire_safe(const char *w, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (w[i] == '\r')
      assert_true(i + 1 < n && w[i + 1] == '\n');
    if (w[i] == '\n')
      assert_true(i > 0 && w[i - 1] == '\r');
  }
  assert_true(n >= 3 && memcmp(w + n - 3, ".\r\n", 3) == 0);
  for (size_t i = 0; i + 5 <= n - 3; i++)
    assert_false(memcmp(w + i, "\r\n.\r\n", 5) == 0);
  assert_false(n > 3 && memcmp(w, ".\r\n", 3) == 0);
}

static void line_endings(void **state) {
  (void)state;
  size_t n;
  char *o = encode("a\nb\r\nc\rd", 8, 100, &n);
  assert_string_equal(o, "a\r\nb\r\nc\r\nd\r\n.\r\n");
  assert_wire_safe(o, n);
  free(o);
}

static void dot_stuffing(void **state) {
  (void)state;
  size_t n;
  char *o = encode(".\n..x\nok.\n.", 11, 100, &n);
  assert_string_equal(o, "..\r\n...x\r\nok.\r\n..\r\n.\r\n");
  assert_wire_safe(o, n);
  free(o);
}

static void smuggling_sequences(void **state) {
  (void)state;
  const char *in = "x\r\n.\r\nMAIL FROM:<evil>\n.\n\r.\r\r\n.\n";
  for (size_t chunk = 1; chunk <= 8; chunk++) {
    size_t n;
    char *o = encode(in, strlen(in), chunk, &n);
    assert_wire_safe(o, n);
    free(o);
  }
}

static void chunking_is_invisible(void **state) {
  (void)state;
  const char *in = ".a\r\n\r\r\n.\n\nb.\r";
  size_t n1, n2;
  char *whole = encode(in, strlen(in), 1000, &n1);
  for (size_t c = 1; c < 7; c++) {
    char *pieces = encode(in, strlen(in), c, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(whole, pieces, n1);
    free(pieces);
  }
  free(whole);
}

static void empty_message(void **state) {
  (void)state;
  size_t n;
  char *o = encode("", 0, 1, &n);
  assert_string_equal(o, ".\r\n");
  free(o);
}

static void measure(void **state) {
  (void)state;
  sk_measure m;
  sk_measure_init(&m);
  sk_measure_feed(&m, "ab\ncd\r", 6);
  sk_measure_feed(&m, "\né", 3);
  sk_measure_finish(&m);
  assert_int_equal(m.size, 2 + 2 + 2 + 2 + 2 + 2); /* ab CRLF cd CRLF é CRLF */
  assert_true(m.eight_bit);
}

static char *read_all(sk_mime *m, size_t *n) {
  size_t cap = 1 << 16, len = 0;
  char *buf = malloc(cap);
  for (long k; (k = sk_mime_read(m, buf + len, 997)) > 0;) {
    len += (size_t)k;
    if (cap - len < 1000)
      buf = realloc(buf, cap *= 2);
  }
  buf[len] = '\0';
  *n = len;
  return buf;
}

static void mime_attachment_roundtrip(void **state) {
  (void)state;
  char path[] = "/tmp/smtpkit-test-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  unsigned char data[100001];
  for (size_t i = 0; i < sizeof data; i++)
    data[i] = (unsigned char)(i * 7 + 3);
  assert_int_equal(write(fd, data, sizeof data), sizeof data);
  close(fd);
  const char *to[] = {"b@example.test"};
  const char *att[] = {path};
  sk_mime_spec spec = {.from = "a@example.test",
                       .to = to,
                       .n_to = 1,
                       .subject = "Grüße",
                       .body = "Grüße\n.line\n",
                       .attach = att,
                       .n_attach = 1};
  char err[200];
  bool missing;
  sk_mime *m = sk_mime_new(&spec, err, sizeof err, &missing);
  assert_non_null(m);
  size_t n1, n2;
  char *a = read_all(m, &n1);
  sk_mime_rewind(m);
  char *b = read_all(m, &n2);
  assert_int_equal(n1, n2);
  assert_memory_equal(a, b, n1); /* the measure pass sees the same bytes */
  assert_non_null(strstr(a, "Subject: =?UTF-8?B?R3LDvMOfZQ==?="));
  assert_non_null(strstr(a, "Content-Transfer-Encoding: quoted-printable"));
  assert_non_null(strstr(a, "Gr=C3=BC=C3=9Fe\r\n.line\r\n"));
  /* Decode the base64 part and compare with the file. */
  const char *p = strstr(a, "Content-Transfer-Encoding: base64\r\n\r\n");
  assert_non_null(p);
  p += strlen("Content-Transfer-Encoding: base64\r\n\r\n");
  const char *end = strstr(p, "\r\n--");
  assert_non_null(end);
  char *joined = malloc((size_t)(end - p) + 1);
  size_t j = 0;
  for (const char *q = p; q < end; q++) {
    if (*q != '\r' && *q != '\n')
      joined[j++] = *q;
    else if (*q == '\r' && q + 2 < end)
      assert_int_equal((q - p) % 78, 76); /* 76-character lines */
  }
  size_t dn;
  unsigned char *dec = sk_base64_decode(joined, j, &dn);
  assert_non_null(dec);
  assert_int_equal(dn, sizeof data);
  assert_memory_equal(dec, data, sizeof data);
  free(dec);
  free(joined);
  free(a);
  free(b);
  sk_mime_free(m);
  unlink(path);
}

static void mime_missing_attachment(void **state) {
  (void)state;
  const char *att[] = {"/nonexistent/file.pdf"};
  sk_mime_spec spec = {
      .from = "a@x", .subject = "s", .body = "b", .attach = att, .n_attach = 1};
  char err[200];
  bool missing;
  assert_null(sk_mime_new(&spec, err, sizeof err, &missing));
  assert_true(missing);
  assert_non_null(strstr(err, "/nonexistent/file.pdf"));
}

static void qp_trailing_space(void **state) {
  (void)state;
  sk_mime_spec spec = {
      .from = "a@x", .subject = "s", .body = "caf\xc3\xa9 \nend\t"};
  char err[200];
  bool missing;
  sk_mime *m = sk_mime_new(&spec, err, sizeof err, &missing);
  size_t n;
  char *a = read_all(m, &n);
  assert_non_null(strstr(a, "caf=C3=A9=20\r\nend=09"));
  free(a);
  sk_mime_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(line_endings),
      cmocka_unit_test(dot_stuffing),
      cmocka_unit_test(smuggling_sequences),
      cmocka_unit_test(chunking_is_invisible),
      cmocka_unit_test(empty_message),
      cmocka_unit_test(measure),
      cmocka_unit_test(mime_attachment_roundtrip),
      cmocka_unit_test(mime_missing_attachment),
      cmocka_unit_test(qp_trailing_space),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
