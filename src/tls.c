/*
 * tls.c — TLS with OpenSSL 3 over memory BIOs.
 *
 * RFC 8314 (implicit TLS for submission), RFC 3207 (STARTTLS), RFC 6125
 * (host-name checks, done by OpenSSL's X509_VERIFY_PARAM), RFC 6066 (SNI).
 * TLS 1.2 is the minimum (RFC 8996 deprecates 1.0 and 1.1).
 *
 * OpenSSL reads and writes memory BIOs; this file moves the bytes over the
 * socket itself. That keeps every wait under the connection's deadline and
 * lets us see the raw bytes a failed handshake met: an SMTP banner
 * ("220 ...") means the port speaks plain SMTP first.
 */
#include "conn.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The system trust store, read lazily. SSL_CTX_set_default_verify_paths
 * parses the whole bundle file (~140 certificates) at once: measured with
 * callgrind, 90% of the instructions of a one-message `smtpkit send`. The
 * hashed directory (c_rehash / update-ca-certificates write it beside the
 * bundle, from the same certificates) lets OpenSSL read only the issuer a
 * chain needs, when it needs it. Without one, or when SSL_CERT_FILE names
 * a bundle, the default paths are loaded as before. */
static bool hashed_dir(const char *dir) {
  DIR *d = opendir(dir);
  if (!d)
    return false;
  bool found = false;
  struct dirent *e;
  for (int i = 0; !found && i < 8192 && (e = readdir(d)); i++)
    found = strlen(e->d_name) == 10 && e->d_name[8] == '.' &&
            e->d_name[9] == '0' && strspn(e->d_name, "0123456789abcdef") == 8;
  closedir(d);
  return found;
}

static bool same_file(const char *a, const char *b) {
  char ra[4096], rb[4096];
  return realpath(a, ra) && realpath(b, rb) && strcmp(ra, rb) == 0;
}

static void load_system_trust(SSL_CTX *ctx) {
  const char *dir = getenv(X509_get_default_cert_dir_env());
  const char *file = getenv(X509_get_default_cert_file_env());
  if (!dir)
    dir = X509_get_default_cert_dir();
  bool other_bundle = file && !same_file(file, X509_get_default_cert_file());
  if (other_bundle || !hashed_dir(dir) ||
      SSL_CTX_load_verify_dir(ctx, dir) != 1)
    SSL_CTX_set_default_verify_paths(ctx);
}

SSL_CTX *sk_tls_ctx_new(const char *ca_file, bool insecure, char *err,
                        size_t errlen) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) {
    snprintf(err, errlen, "cannot create a TLS context");
    return NULL;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_verify(ctx, insecure ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
  load_system_trust(ctx);
  if (ca_file && SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
    unsigned long e = ERR_get_error();
    snprintf(err, errlen, "cannot load CA certificates from %s: %s", ca_file,
             e ? ERR_reason_error_string(e) : "no certificates found");
    SSL_CTX_free(ctx);
    return NULL;
  }
  return ctx;
}

static bool is_ip_literal(const char *host) {
  for (const char *p = host; *p; p++)
    if (!isdigit((unsigned char)*p) && *p != '.' && *p != ':' &&
        !isxdigit((unsigned char)*p))
      return false;
  return strchr(host, ':') || strspn(host, "0123456789.") == strlen(host);
}

static bool flush_out(sk_conn *c) {
  char buf[16384];
  while (BIO_ctrl_pending(c->wbio) > 0) {
    int n = BIO_read(c->wbio, buf, sizeof buf);
    if (n <= 0)
      break;
    if (!sk_raw_write(c, buf, (size_t)n))
      return false;
  }
  return true;
}

/* Moves what the server sent into OpenSSL: >0, 0 (closed), -1, -2. */
static long fill_in(sk_conn *c) {
  char buf[16384];
  long n = sk_raw_read(c, buf, sizeof buf);
  if (n > 0)
    BIO_write(c->rbio, buf, (int)n);
  return n;
}

static bool looks_like_smtp_banner(const sk_conn *c) {
  const unsigned char *b = c->first_raw;
  return c->first_raw_len >= 4 && b[0] >= '2' && b[0] <= '5' && isdigit(b[1]) &&
         isdigit(b[2]) && (b[3] == ' ' || b[3] == '-');
}

/* The event for an X509_V_* verification result. */
static sk_event cert_event(long v) {
  switch (v) {
  case X509_V_OK:
    return SK_EV_NONE;
  case X509_V_ERR_HOSTNAME_MISMATCH:
  case X509_V_ERR_IP_ADDRESS_MISMATCH:
  case X509_V_ERR_EMAIL_MISMATCH:
    return SK_EV_CERT_NAME;
  case X509_V_ERR_CERT_HAS_EXPIRED:
  case X509_V_ERR_CERT_NOT_YET_VALID:
    return SK_EV_CERT_EXPIRED;
  default:
    return SK_EV_CERT_UNTRUSTED;
  }
}

static sk_event verify_event(sk_conn *c) {
  long v = SSL_get_verify_result(c->ssl);
  c->verify_error = (int)v;
  snprintf(c->detail, sizeof c->detail, "certificate verification failed: %s",
           X509_verify_cert_error_string(v));
  sk_event ev = cert_event(v);
  return ev == SK_EV_NONE ? SK_EV_CERT_UNTRUSTED : ev;
}

static sk_event handshake_event(sk_conn *c, unsigned long e) {
  if (looks_like_smtp_banner(c)) {
    snprintf(c->detail, sizeof c->detail,
             "TLS handshake answered by a plain SMTP banner (\"%.3s ...\")",
             (const char *)c->first_raw);
    return SK_EV_TLS_PLAIN_BANNER;
  }
  if (SSL_get_verify_result(c->ssl) != X509_V_OK)
    return verify_event(c);
  int reason = ERR_GET_REASON(e);
  char msg[160];
  ERR_error_string_n(e, msg, sizeof msg);
  snprintf(c->detail, sizeof c->detail, "TLS handshake failed: %s",
           e ? msg : "connection closed by the server");
  if (reason == SSL_R_TLSV1_ALERT_PROTOCOL_VERSION ||
      reason == SSL_R_UNSUPPORTED_PROTOCOL ||
      reason == SSL_R_NO_PROTOCOLS_AVAILABLE || reason == SSL_R_VERSION_TOO_LOW)
    return SK_EV_TLS_VERSION;
  return SK_EV_TLS_HANDSHAKE;
}

sk_event sk_tls_start(sk_conn *c, SSL_CTX *ctx, const char *host,
                      bool insecure) {
  c->ssl = SSL_new(ctx);
  c->rbio = BIO_new(BIO_s_mem());
  c->wbio = BIO_new(BIO_s_mem());
  if (!c->ssl || !c->rbio || !c->wbio) {
    snprintf(c->detail, sizeof c->detail, "out of memory starting TLS");
    return SK_EV_INTERNAL;
  }
  BIO_set_mem_eof_return(c->rbio, -1);
  SSL_set_bio(c->ssl, c->rbio, c->wbio);
  if (!is_ip_literal(host))
    SSL_set_tlsext_host_name(c->ssl, host);
  if (!insecure) {
    if (is_ip_literal(host))
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), host);
    else
      SSL_set1_host(c->ssl, host);
  }
  ERR_clear_error();
  c->handshaking = true;
  c->first_raw_len = 0;
  sk_event ev = SK_EV_NONE;
  for (int rounds = 0; rounds < 64; rounds++) {
    int r = SSL_connect(c->ssl);
    if (!flush_out(c)) {
      ev = SK_EV_CLOSED;
      break;
    }
    if (r == 1)
      break;
    int err = SSL_get_error(c->ssl, r);
    if (err != SSL_ERROR_WANT_READ) {
      ev = handshake_event(c, ERR_peek_last_error());
      break;
    }
    long n = fill_in(c);
    if (n == -1) {
      snprintf(c->detail, sizeof c->detail,
               "TLS handshake: no answer from the server in time");
      ev = SK_EV_TIMEOUT;
      break;
    }
    if (n <= 0) {
      ev = handshake_event(c, ERR_peek_last_error());
      break;
    }
  }
  c->handshaking = false;
  ERR_clear_error();
  if (ev == SK_EV_NONE)
    snprintf(c->tls_version, sizeof c->tls_version, "%s",
             SSL_get_version(c->ssl));
  return ev;
}

long sk_tls_read(sk_conn *c, char *buf, size_t cap) {
  for (int rounds = 0; rounds < 1024; rounds++) {
    int n = SSL_read(c->ssl, buf, (int)(cap > 1 << 30 ? 1 << 30 : cap));
    if (n > 0)
      return n;
    int err = SSL_get_error(c->ssl, n);
    if (err == SSL_ERROR_ZERO_RETURN)
      return 0;
    if (err != SSL_ERROR_WANT_READ) {
      snprintf(c->detail, sizeof c->detail, "TLS error while reading");
      ERR_clear_error();
      return -2;
    }
    if (!flush_out(c))
      return -2;
    long k = fill_in(c);
    if (k <= 0)
      return k;
  }
  return -2;
}

bool sk_tls_write(sk_conn *c, const void *p, size_t n) {
  const char *s = p;
  while (n) {
    int chunk = n > 65536 ? 65536 : (int)n;
    int k = SSL_write(c->ssl, s, chunk);
    if (k <= 0) {
      snprintf(c->detail, sizeof c->detail, "TLS error while writing");
      ERR_clear_error();
      return false;
    }
    s += k;
    n -= (size_t)k;
    if (!flush_out(c))
      return false;
  }
  return true;
}

void sk_tls_free(sk_conn *c) {
  if (c->ssl)
    SSL_free(c->ssl); /* frees both BIOs */
  c->ssl = NULL;
  c->rbio = c->wbio = NULL;
}

bool sk_tls_channel_binding(sk_conn *c, char type[16], char data_b64[128]) {
  unsigned char cb[64];
  size_t n = 0;
  if (!c->ssl)
    return false;
  if (SSL_version(c->ssl) >= TLS1_3_VERSION) {
    /* RFC 9266 §2: 32 bytes, label "EXPORTER-Channel-Binding", no context */
    static const char label[] = "EXPORTER-Channel-Binding";
    if (SSL_export_keying_material(c->ssl, cb, 32, label, sizeof label - 1,
                                   NULL, 0, 0) != 1)
      return false;
    n = 32;
    snprintf(type, 16, "tls-exporter");
  } else {
    /* RFC 5929 §3.1: the first Finished message of the handshake; for a
     * full handshake (we never resume) that is the client's. */
    n = SSL_get_finished(c->ssl, cb, sizeof cb);
    if (n == 0 || n > sizeof cb)
      return false;
    snprintf(type, 16, "tls-unique");
  }
  char *b = sk_base64_encode(cb, n);
  smtpkit_wipe(cb, sizeof cb);
  if (!b)
    return false;
  sk_strlcpy(data_b64, b, 128);
  free(b);
  return true;
}

/* ---- certificate details, for doctor's probes (probe.c) ---- */

static void name_text(const X509_NAME *n, char *out, size_t cap) {
  out[0] = '\0';
  BIO *b = BIO_new(BIO_s_mem());
  if (!b || !n) {
    BIO_free(b);
    return;
  }
  X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
  int k = BIO_read(b, out, (int)cap - 1);
  out[k > 0 ? k : 0] = '\0';
  BIO_free(b);
}

static void time_text(const ASN1_TIME *t, char *out, size_t cap) {
  struct tm tm;
  out[0] = '\0';
  if (t && ASN1_TIME_to_tm(t, &tm) == 1)
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void san_text(X509 *cert, char *out, size_t cap) {
  out[0] = '\0';
  GENERAL_NAMES *names =
      X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
  size_t len = 0;
  for (int i = 0; names && i < sk_GENERAL_NAME_num(names) && len + 1 < cap;
       i++) {
    const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
    char one[80] = "";
    if (g->type == GEN_DNS) {
      const unsigned char *s = ASN1_STRING_get0_data(g->d.dNSName);
      snprintf(one, sizeof one, "DNS:%.*s", ASN1_STRING_length(g->d.dNSName),
               (const char *)s);
    } else if (g->type == GEN_IPADD) {
      const unsigned char *ip = ASN1_STRING_get0_data(g->d.iPAddress);
      int n = ASN1_STRING_length(g->d.iPAddress);
      char txt[64] = "?";
      if (n == 4 || n == 16)
        inet_ntop(n == 4 ? AF_INET : AF_INET6, ip, txt, sizeof txt);
      snprintf(one, sizeof one, "IP:%s", txt);
    } else {
      continue;
    }
    int w = snprintf(out + len, cap - len, "%s%s", len ? ", " : "", one);
    if (w < 0 || (size_t)w >= cap - len)
      break;
    len += (size_t)w;
  }
  GENERAL_NAMES_free(names);
}

bool sk_tls_peer_info(sk_conn *c, sk_tls_peer *out) {
  memset(out, 0, sizeof *out);
  X509 *cert = c->ssl ? SSL_get1_peer_certificate(c->ssl) : NULL;
  if (!cert)
    return false;
  name_text(X509_get_subject_name(cert), out->subject, sizeof out->subject);
  name_text(X509_get_issuer_name(cert), out->issuer, sizeof out->issuer);
  san_text(cert, out->names, sizeof out->names);
  time_text(X509_get0_notBefore(cert), out->not_before, sizeof out->not_before);
  time_text(X509_get0_notAfter(cert), out->not_after, sizeof out->not_after);
  X509_free(cert);
  long v = SSL_get_verify_result(c->ssl);
  out->verify_event = cert_event(v);
  out->verified = v == X509_V_OK;
  if (!out->verified)
    snprintf(out->verify_error, sizeof out->verify_error, "%s",
             X509_verify_cert_error_string(v));
  return true;
}
