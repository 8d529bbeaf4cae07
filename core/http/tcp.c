/* The plain TCP transport (struct mh_transport in conn.h): the socket itself. */
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "http/conn.h"

static ssize_t tcp_read(struct mh_conn *c, void *buf, size_t len)
{
    return read(mh_conn_fd(c), buf, len);
}

static ssize_t tcp_writev(struct mh_conn *c, const struct iovec *iov, int n)
{
    return writev(mh_conn_fd(c), iov, n);
}

static void tcp_shutdown(struct mh_conn *c)
{
    (void)shutdown(mh_conn_fd(c), SHUT_WR); /* a peer already gone changes nothing */
}

static void tcp_close(struct mh_conn *c)
{
    (void)c; /* nothing of its own: the connection closes the socket */
}

const struct mh_transport mh_tcp_transport = {
    .open = NULL,
    .read = tcp_read,
    .writev = tcp_writev,
    .shutdown = tcp_shutdown,
    .close = tcp_close,
};
