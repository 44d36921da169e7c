/*
 * tls_server.c — server-side TLS for the lab (OpenSSL 3).
 *
 * RFC 5280 (X.509 profile: basicConstraints, keyUsage, subjectAltName),
 * RFC 6125 (the names a client checks: DNS localhost, IP 127.0.0.1 and ::1),
 * RFC 8996 (TLS 1.2 minimum).
 *
 * Without a certificate from the user, the lab makes its own small PKI at
 * start: a CA (EC P-256, fast to generate) and a leaf certificate signed by
 * it. Clients trust the CA file (--ca-file), so certificate verification
 * stays on in every test — the lab never asks a client to be --insecure.
 */
#include "lab.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

static void ssl_error(char *err, size_t errlen, const char *what) {
  unsigned long e = ERR_get_error();
  char msg[160] = "";
  if (e)
    ERR_error_string_n(e, msg, sizeof msg);
  snprintf(err, errlen, "%s%s%s", what, e ? ": " : "", msg);
  ERR_clear_error();
}

static bool add_ext(X509 *cert, X509 *issuer, int nid, const char *value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
  X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, &ctx, nid, value);
  if (!ext)
    return false;
  bool ok = X509_add_ext(cert, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  return ok;
}

/* A certificate for key, named cn, signed by issuer_key (issuer NULL:
 * self-signed). Valid from an hour ago for 30 days. */
static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer,
                       EVP_PKEY *issuer_key, bool ca) {
  X509 *x = X509_new();
  if (!x)
    return NULL;
  unsigned char serial[16];
  BIGNUM *bn = NULL;
  bool ok =
      X509_set_version(x, 2) == 1 && RAND_bytes(serial, sizeof serial) == 1;
  if (ok) {
    serial[0] &= 0x7f; /* a positive serial number */
    bn = BN_bin2bn(serial, sizeof serial, NULL);
    ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
  }
  BN_free(bn);
  X509_NAME *name = X509_get_subject_name(x);
  ok = ok &&
       X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                                  (const unsigned char *)"smtpkit lab", -1, -1,
                                  0) == 1 &&
       X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                  (const unsigned char *)cn, -1, -1, 0) == 1 &&
       X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name) ==
           1 &&
       X509_gmtime_adj(X509_getm_notBefore(x), -3600) &&
       X509_gmtime_adj(X509_getm_notAfter(x), 30L * 24 * 3600) &&
       X509_set_pubkey(x, key) == 1;
  X509 *iss = issuer ? issuer : x;
  if (ok && ca)
    ok = add_ext(x, iss, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") &&
         add_ext(x, iss, NID_key_usage, "critical,keyCertSign,cRLSign") &&
         add_ext(x, iss, NID_subject_key_identifier, "hash");
  if (ok && !ca)
    ok = add_ext(x, iss, NID_basic_constraints, "critical,CA:FALSE") &&
         add_ext(x, iss, NID_key_usage, "critical,digitalSignature") &&
         add_ext(x, iss, NID_ext_key_usage, "serverAuth") &&
         add_ext(x, iss, NID_subject_alt_name,
                 "DNS:localhost,IP:127.0.0.1,IP:::1") &&
         add_ext(x, iss, NID_authority_key_identifier, "keyid:always");
  if (ok)
    ok = X509_sign(x, issuer_key, EVP_sha256()) > 0;
  if (!ok) {
    X509_free(x);
    return NULL;
  }
  return x;
}

static bool write_ca(X509 *ca, const char *path, char *err, size_t errlen) {
  FILE *f = fopen(path, "w");
  if (!f) {
    snprintf(err, errlen, "cannot write the CA certificate to %s", path);
    return false;
  }
  bool ok = PEM_write_X509(f, ca) == 1;
  ok = fclose(f) == 0 && ok;
  if (!ok)
    snprintf(err, errlen, "cannot write the CA certificate to %s", path);
  return ok;
}

/* Generates the CA and the leaf, installs the leaf in ctx. */
static bool generate(SSL_CTX *ctx, const char *ca_out, char *err,
                     size_t errlen) {
  EVP_PKEY *ca_key = EVP_EC_gen("P-256");
  EVP_PKEY *leaf_key = EVP_EC_gen("P-256");
  X509 *ca = NULL, *leaf = NULL;
  bool ok = false;
  if (!ca_key || !leaf_key) {
    ssl_error(err, errlen, "cannot generate keys");
    goto out;
  }
  ca = make_cert(ca_key, "smtpkit lab CA", NULL, ca_key, true);
  leaf = ca ? make_cert(leaf_key, "localhost", ca, ca_key, false) : NULL;
  if (!ca || !leaf) {
    ssl_error(err, errlen, "cannot make the lab's certificates");
    goto out;
  }
  if (SSL_CTX_use_certificate(ctx, leaf) != 1 ||
      SSL_CTX_use_PrivateKey(ctx, leaf_key) != 1) {
    ssl_error(err, errlen, "cannot use the lab's certificate");
    goto out;
  }
  ok = write_ca(ca, ca_out, err, errlen);
out:
  X509_free(ca);
  X509_free(leaf);
  EVP_PKEY_free(ca_key);
  EVP_PKEY_free(leaf_key);
  return ok;
}

SSL_CTX *sk_tls_server_ctx(const char *cert_file, const char *key_file,
                           const char *ca_out, char *err, size_t errlen) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) {
    ssl_error(err, errlen, "cannot create a TLS context");
    return NULL;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  /* Each connection is short and talks to one client: no session cache. */
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  bool ok;
  if (cert_file) {
    ok = SSL_CTX_use_certificate_chain_file(ctx, cert_file) == 1 &&
         SSL_CTX_use_PrivateKey_file(ctx, key_file ? key_file : cert_file,
                                     SSL_FILETYPE_PEM) == 1 &&
         SSL_CTX_check_private_key(ctx) == 1;
    if (!ok)
      ssl_error(err, errlen, "cannot load the certificate and key");
  } else {
    ok = generate(ctx, ca_out, err, errlen);
  }
  if (!ok) {
    SSL_CTX_free(ctx);
    return NULL;
  }
  return ctx;
}
