/* dns.h — DNS look-ups for doctor (dns.c, through c-ares): SRV records of
 * the submission services (RFC 6186, RFC 8314), MX records, and host
 * addresses, each bounded by a deadline and optionally sent to one given
 * server (--dns-server). Not installed. */
#ifndef SMTPKIT_DNS_H
#define SMTPKIT_DNS_H

#include "internal.h"

typedef struct sk_dns sk_dns;

/* server: "ADDR", "ADDR:PORT" or "[V6]:PORT"; NULL uses the system's
 * resolver configuration (/etc/resolv.conf, /etc/hosts). NULL with err on
 * failure. Call from one thread at a time. */
sk_dns *sk_dns_new(const char *server, char *err, size_t errlen);
void sk_dns_free(sk_dns *d);
/* Why the last look-up found nothing or failed ("NXDOMAIN", "timeout"). */
const char *sk_dns_error(const sk_dns *d);

typedef struct sk_dns_srv {
  char target[256];
  unsigned port, priority, weight;
} sk_dns_srv;

typedef struct sk_dns_mx {
  char host[256];
  unsigned preference;
} sk_dns_mx;

/* Each returns how many records were stored (at most max), sorted (SRV:
 * priority, then weight, highest first; MX: preference), 0 when the name
 * has none, -1 when the look-up failed (time-out, server failure). */
int sk_dns_srv_lookup(sk_dns *d, const char *name, long long deadline,
                      sk_dns_srv *out, size_t max);
int sk_dns_mx_lookup(sk_dns *d, const char *name, long long deadline,
                     sk_dns_mx *out, size_t max);
/* Numeric addresses of host ("127.0.0.1", "::1"), IPv4 and IPv6, as the
 * resolver orders them; an address literal is returned as is. */
int sk_dns_addresses(sk_dns *d, const char *host, long long deadline,
                     char out[][64], size_t max);

#endif
