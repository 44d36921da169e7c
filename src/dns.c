/*
 * dns.c — SRV, MX and address look-ups through c-ares, for doctor.
 *
 * RFC 2782 (SRV), RFC 6186 (_submission._tcp), RFC 8314 §5.1
 * (_submissions._tcp), RFC 5321 §5.1 (MX).
 *
 * c-ares rather than the libc resolver: every look-up is bounded by the
 * caller's deadline (getaddrinfo can block for resolv.conf's timeouts
 * times its attempts), and the server can be set per run, so tests point
 * doctor at a DNS server of their own on loopback.
 */
#include "dns.h"

#include "conn.h" /* sk_now_ms */

#include <ares.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sk_dns {
  ares_channel ch;
  char error[160];
};

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static int lib_status = ARES_SUCCESS;

static void lib_init(void) {
  lib_status = ares_library_init(ARES_LIB_INIT_ALL);
}

sk_dns *sk_dns_new(const char *server, char *err, size_t errlen) {
  pthread_once(&lib_once, lib_init);
  if (lib_status != ARES_SUCCESS) {
    snprintf(err, errlen, "cannot start the resolver: %s",
             ares_strerror(lib_status));
    return NULL;
  }
  sk_dns *d = calloc(1, sizeof *d);
  if (!d) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  /* Short tries: the caller's deadline is the real bound. */
  struct ares_options o = {.timeout = 1500, .tries = 2};
  int rc = ares_init_options(&d->ch, &o, ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
  if (rc == ARES_SUCCESS && server && *server)
    rc = ares_set_servers_ports_csv(d->ch, server);
  if (rc != ARES_SUCCESS) {
    snprintf(err, errlen, "%s%s: %s", server ? "bad DNS server " : "resolver",
             server ? server : "", ares_strerror(rc));
    if (d->ch)
      ares_destroy(d->ch);
    free(d);
    return NULL;
  }
  return d;
}

void sk_dns_free(sk_dns *d) {
  if (!d)
    return;
  ares_destroy(d->ch);
  free(d);
}

const char *sk_dns_error(const sk_dns *d) { return d->error; }

/* Runs the channel until *done or the deadline. False on time-out (the
 * pending queries are cancelled, which runs their callbacks). */
static bool run_until(sk_dns *d, const bool *done, long long deadline) {
  for (int rounds = 0; !*done && rounds < 100000; rounds++) {
    long long left = deadline - sk_now_ms();
    if (left <= 0)
      break;
    ares_socket_t socks[ARES_GETSOCK_MAXNUM];
    int bits = ares_getsock(d->ch, socks, ARES_GETSOCK_MAXNUM);
    struct pollfd p[ARES_GETSOCK_MAXNUM];
    nfds_t n = 0;
    /* c-ares' ARES_GETSOCK_WRITABLE shifts a signed 1 into the sign bit
     * for the last socket: test the bits unsigned instead. */
    unsigned ubits = (unsigned)bits;
    for (int i = 0; i < ARES_GETSOCK_MAXNUM; i++) {
      short ev =
          (short)((ubits >> i & 1u ? POLLIN : 0) |
                  (ubits >> (i + ARES_GETSOCK_MAXNUM) & 1u ? POLLOUT : 0));
      if (ev)
        p[n++] = (struct pollfd){.fd = socks[i], .events = ev};
    }
    struct timeval max = {.tv_sec = left / 1000,
                          .tv_usec = (left % 1000) * 1000},
                   tv;
    struct timeval *t = ares_timeout(d->ch, &max, &tv);
    int wait = (int)(t->tv_sec * 1000 + t->tv_usec / 1000);
    if (wait <= 0)
      wait = 1;
    int k = poll(p, n, wait);
    if (k <= 0) {
      ares_process_fd(d->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
      continue;
    }
    for (nfds_t i = 0; i < n; i++)
      ares_process_fd(d->ch,
                      p[i].revents & (POLLIN | POLLERR | POLLHUP)
                          ? p[i].fd
                          : ARES_SOCKET_BAD,
                      p[i].revents & POLLOUT ? p[i].fd : ARES_SOCKET_BAD);
  }
  if (!*done) {
    ares_cancel(d->ch);
    snprintf(d->error, sizeof d->error,
             "no answer from the DNS server in time");
    return false;
  }
  return true;
}

/* ---- SRV and MX ---- */

typedef struct query {
  sk_dns *d;
  bool done;
  int status;
  unsigned char *abuf;
  int alen;
} query;

static void query_cb(void *arg, int status, int timeouts, unsigned char *abuf,
                     int alen) {
  SK_UNUSED(timeouts);
  query *q = arg;
  q->done = true;
  q->status = status;
  if (status == ARES_SUCCESS && abuf && alen > 0) {
    q->abuf = malloc((size_t)alen);
    if (q->abuf) {
      memcpy(q->abuf, abuf, (size_t)alen);
      q->alen = alen;
    }
  }
}

/* 1 answer in q, 0 none (NXDOMAIN / no data), -1 failure. */
static int ask(sk_dns *d, const char *name, int type, long long deadline,
               query *q) {
  memset(q, 0, sizeof *q);
  q->d = d;
  d->error[0] = '\0';
  ares_query(d->ch, name, ns_c_in, type, query_cb, q);
  if (!run_until(d, &q->done, deadline))
    return -1;
  if (q->status == ARES_SUCCESS && q->abuf)
    return 1;
  snprintf(d->error, sizeof d->error, "%s: %s", name, ares_strerror(q->status));
  return q->status == ARES_ENOTFOUND || q->status == ARES_ENODATA ? 0 : -1;
}

static void copy_name(char *dst, size_t cap, const char *src) {
  sk_strlcpy(dst, src ? src : "", cap);
  size_t n = strlen(dst);
  if (n > 1 && dst[n - 1] == '.')
    dst[n - 1] = '\0';
}

static int srv_cmp(const void *a, const void *b) {
  const sk_dns_srv *x = a, *y = b;
  if (x->priority != y->priority)
    return x->priority < y->priority ? -1 : 1;
  return x->weight == y->weight ? 0 : x->weight > y->weight ? -1 : 1;
}

int sk_dns_srv_lookup(sk_dns *d, const char *name, long long deadline,
                      sk_dns_srv *out, size_t max) {
  query q;
  int rc = ask(d, name, ns_t_srv, deadline, &q);
  if (rc <= 0)
    return rc;
  struct ares_srv_reply *srv = NULL;
  int st = ares_parse_srv_reply(q.abuf, q.alen, &srv);
  free(q.abuf);
  if (st != ARES_SUCCESS) {
    snprintf(d->error, sizeof d->error, "%s: %s", name, ares_strerror(st));
    return st == ARES_ENODATA ? 0 : -1;
  }
  size_t n = 0;
  for (struct ares_srv_reply *r = srv; r && n < max; r = r->next) {
    copy_name(out[n].target, sizeof out[n].target, r->host);
    out[n].port = r->port;
    out[n].priority = r->priority;
    out[n].weight = r->weight;
    n++;
  }
  ares_free_data(srv);
  qsort(out, n, sizeof *out, srv_cmp);
  return (int)n;
}

static int mx_cmp(const void *a, const void *b) {
  const sk_dns_mx *x = a, *y = b;
  return x->preference == y->preference  ? 0
         : x->preference < y->preference ? -1
                                         : 1;
}

int sk_dns_mx_lookup(sk_dns *d, const char *name, long long deadline,
                     sk_dns_mx *out, size_t max) {
  query q;
  int rc = ask(d, name, ns_t_mx, deadline, &q);
  if (rc <= 0)
    return rc;
  struct ares_mx_reply *mx = NULL;
  int st = ares_parse_mx_reply(q.abuf, q.alen, &mx);
  free(q.abuf);
  if (st != ARES_SUCCESS) {
    snprintf(d->error, sizeof d->error, "%s: %s", name, ares_strerror(st));
    return st == ARES_ENODATA ? 0 : -1;
  }
  size_t n = 0;
  for (struct ares_mx_reply *r = mx; r && n < max; r = r->next) {
    copy_name(out[n].host, sizeof out[n].host, r->host);
    out[n].preference = r->priority;
    n++;
  }
  ares_free_data(mx);
  qsort(out, n, sizeof *out, mx_cmp);
  return (int)n;
}

/* ---- addresses ---- */

typedef struct addr_query {
  bool done;
  int status;
  char (*out)[64];
  size_t max, n;
} addr_query;

static void addr_cb(void *arg, int status, int timeouts,
                    struct ares_addrinfo *res) {
  SK_UNUSED(timeouts);
  addr_query *q = arg;
  q->done = true;
  q->status = status;
  for (struct ares_addrinfo_node *a = res ? res->nodes : NULL;
       a && q->n < q->max; a = a->ai_next) {
    const void *bytes =
        a->ai_family == AF_INET6
            ? (const void *)&((struct sockaddr_in6 *)(void *)a->ai_addr)
                  ->sin6_addr
            : (const void *)&((struct sockaddr_in *)(void *)a->ai_addr)
                  ->sin_addr;
    if (inet_ntop(a->ai_family, bytes, q->out[q->n], 64))
      q->n++;
  }
  if (res)
    ares_freeaddrinfo(res);
}

int sk_dns_addresses(sk_dns *d, const char *host, long long deadline,
                     char out[][64], size_t max) {
  unsigned char tmp[sizeof(struct in6_addr)];
  d->error[0] = '\0';
  if (max && (inet_pton(AF_INET, host, tmp) == 1 ||
              inet_pton(AF_INET6, host, tmp) == 1)) {
    sk_strlcpy(out[0], host, 64);
    return 1;
  }
  addr_query q = {.out = out, .max = max};
  struct ares_addrinfo_hints hints = {.ai_family = AF_UNSPEC,
                                      .ai_socktype = SOCK_STREAM};
  ares_getaddrinfo(d->ch, host, NULL, &hints, addr_cb, &q);
  if (!run_until(d, &q.done, deadline))
    return -1;
  if (q.status != ARES_SUCCESS || q.n == 0) {
    snprintf(d->error, sizeof d->error, "%s: %s", host,
             q.status == ARES_SUCCESS ? "no address" : ares_strerror(q.status));
    return q.status == ARES_ENOTFOUND || q.status == ARES_ENODATA ||
                   q.status == ARES_SUCCESS
               ? 0
               : -1;
  }
  return (int)q.n;
}
