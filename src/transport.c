/*
 * transport.c — TCP connections with deadlines.
 *
 * getaddrinfo for IPv6 and IPv4, a non-blocking connect to each address in
 * turn, and reads and writes that wait with poll() until the connection's
 * deadline. Nothing here blocks without a bound.
 */
#define _GNU_SOURCE
#include "conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

long long sk_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sk_conn_init(sk_conn *c) {
  memset(c, 0, sizeof *c);
  c->fd = -1;
}

static int remaining(const sk_conn *c) {
  long long left = c->deadline - sk_now_ms();
  if (left < 0)
    return 0;
  return left > 0x7fffffff ? 0x7fffffff : (int)left;
}

/* Waits for events on fd until the deadline: 1 ready, 0 timed out. */
static int wait_fd(sk_conn *c, short events) {
  for (;;) {
    struct pollfd p = {.fd = c->fd, .events = events};
    int n = poll(&p, 1, remaining(c));
    if (n > 0)
      return 1;
    if (n == 0)
      return 0;
    if (errno != EINTR)
      return -1;
  }
}

static void describe_addr(const struct sockaddr *sa, char *out, size_t cap,
                          bool literal, unsigned *port) {
  char ip[INET6_ADDRSTRLEN] = "?";
  unsigned p = 0;
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const void *)sa;
    inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
    p = ntohs(in->sin_port);
    if (literal)
      snprintf(out, cap, "[%s]", ip);
  } else if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *in = (const void *)sa;
    inet_ntop(AF_INET6, &in->sin6_addr, ip, sizeof ip);
    p = ntohs(in->sin6_port);
    if (literal)
      snprintf(out, cap, "[IPv6:%s]", ip);
  }
  if (!literal)
    snprintf(out, cap, sa->sa_family == AF_INET6 ? "[%s]:%u" : "%s:%u", ip, p);
  if (port)
    *port = p;
}

/* One non-blocking connect; returns 0, or an errno value (ETIMEDOUT). */
static int connect_one(sk_conn *c, const struct addrinfo *ai) {
  int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                  ai->ai_protocol);
  if (fd < 0)
    return errno;
  c->fd = fd;
  if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
    return 0;
  if (errno != EINPROGRESS) {
    int e = errno;
    close(fd);
    c->fd = -1;
    return e;
  }
  int w = wait_fd(c, POLLOUT);
  int err = 0;
  socklen_t len = sizeof err;
  if (w == 0)
    err = ETIMEDOUT;
  else if (w < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
    err = errno ? errno : EIO;
  if (err) {
    close(fd);
    c->fd = -1;
  }
  return err;
}

sk_event sk_conn_open(sk_conn *c, const char *host, unsigned port,
                      long long deadline) {
  struct addrinfo hints = {.ai_family = AF_UNSPEC,
                           .ai_socktype = SOCK_STREAM,
                           .ai_flags = AI_ADDRCONFIG};
  struct addrinfo *res = NULL;
  char service[16];
  snprintf(service, sizeof service, "%u", port);
  c->deadline = deadline;
  int rc = getaddrinfo(host, service, &hints, &res);
  if (rc != 0) {
    snprintf(c->detail, sizeof c->detail, "cannot resolve %s: %s", host,
             gai_strerror(rc));
    return SK_EV_DNS;
  }
  int last = 0;
  for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
    describe_addr(ai->ai_addr, c->peer, sizeof c->peer, false, NULL);
    last = connect_one(c, ai);
    if (last == 0)
      break;
    if (sk_now_ms() >= deadline)
      break;
  }
  freeaddrinfo(res);
  if (last != 0) {
    snprintf(c->detail, sizeof c->detail, "connect to %s: %s", c->peer,
             last == ETIMEDOUT ? "no answer (timed out)" : strerror(last));
    return last == ECONNREFUSED ? SK_EV_REFUSED : SK_EV_CONNECT_TIMEOUT;
  }
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  if (getsockname(c->fd, (struct sockaddr *)&ss, &sl) == 0)
    describe_addr((struct sockaddr *)&ss, c->local_literal,
                  sizeof c->local_literal, true, &c->local_port);
  return SK_EV_NONE;
}

long sk_raw_read(sk_conn *c, char *buf, size_t cap) {
  for (;;) {
    ssize_t n = recv(c->fd, buf, cap, 0);
    if (n >= 0) {
      if (n > 0 && c->handshaking && c->first_raw_len < sizeof c->first_raw) {
        size_t k = sizeof c->first_raw - c->first_raw_len;
        if (k > (size_t)n)
          k = (size_t)n;
        memcpy(c->first_raw + c->first_raw_len, buf, k);
        c->first_raw_len += k;
      }
      return (long)n;
    }
    if (errno == EINTR)
      continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      snprintf(c->detail, sizeof c->detail, "read: %s", strerror(errno));
      return -2;
    }
    int w = wait_fd(c, POLLIN);
    if (w == 0) {
      snprintf(c->detail, sizeof c->detail, "no data from the server in time");
      return -1;
    }
    if (w < 0)
      return -2;
  }
}

bool sk_raw_write(sk_conn *c, const void *p, size_t n) {
  const char *s = p;
  while (n) {
    ssize_t k = send(c->fd, s, n, MSG_NOSIGNAL);
    if (k > 0) {
      s += k;
      n -= (size_t)k;
      continue;
    }
    if (k < 0 && errno == EINTR)
      continue;
    if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      snprintf(c->detail, sizeof c->detail, "write: %s", strerror(errno));
      return false;
    }
    if (wait_fd(c, POLLOUT) <= 0) {
      snprintf(c->detail, sizeof c->detail, "server did not take data in time");
      return false;
    }
  }
  return true;
}

long sk_conn_read(sk_conn *c, char *buf, size_t cap) {
  return c->ssl ? sk_tls_read(c, buf, cap) : sk_raw_read(c, buf, cap);
}

bool sk_conn_write(sk_conn *c, const void *p, size_t n) {
  return c->ssl ? sk_tls_write(c, p, n) : sk_raw_write(c, p, n);
}

bool sk_conn_has_unread(sk_conn *c) {
  char b;
  ssize_t n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
  return n > 0;
}

void sk_conn_close(sk_conn *c) {
  sk_tls_free(c);
  if (c->fd >= 0)
    close(c->fd);
  c->fd = -1;
}
