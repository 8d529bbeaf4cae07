"""10,000 concurrent idle WebSocket connections on loopback to the echo endpoint, driven from
one thread with non-blocking sockets and a selector: every handshake is answered 101, a sample
of the connections echoes a message, all of them close with the close handshake, and the
server's file descriptors return to their count before the test. The server's resident memory
per idle connection is printed (VmRSS after opening minus before, over the count).

The test raises its own RLIMIT_NOFILE soft limit to the hard limit before it starts the server,
which inherits it; it is skipped if the hard limit (or the local port range) is too small.
"""

import errno
import os
import resource
import selectors
import socket
import sys
import time
import unittest

from mhtest import HELLO_CONF, RawConnection, ServerTestCase, wait_until
from ws_client import (NORMAL, OP_CLOSE, OP_TEXT, FrameParser, accept_for, close_payload,
                       encode_frame, fd_count, handshake_request, new_key, rss_kb,
                       ws_module_conf)

CONNECTIONS = int(os.environ.get("MODHOST_WS_SCALE_CONNECTIONS", "10000"))
SAMPLE = 200            # connections that echo a message
IN_FLIGHT = 256         # handshakes under way at once (below the listen backlog)
FD_MARGIN = 256         # fds a process needs besides the connections
PHASE_TIMEOUT_S = 60.0  # bound for each phase; the whole test normally takes seconds

FILES = {
    "10-hello.conf": HELLO_CONF,
    "20-echo.conf": ws_module_conf(
        "echo", "echo.so",
        [dict(path="/ws/echo", on_message="ws_echo", max_message_bytes=65536,
              ping_interval_ms=0, idle_timeout_ms=0)]),
}


def local_port_count():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as f:
            low, high = (int(x) for x in f.read().split())
        return high - low + 1
    except (OSError, ValueError):
        return 28232  # Linux's default range


def raise_nofile(need):
    """Raises the soft RLIMIT_NOFILE to at least @need if the hard limit allows; returns
    (ok, soft, hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < need:
        return False, soft, hard
    if soft != resource.RLIM_INFINITY and soft < need:
        target = hard if hard != resource.RLIM_INFINITY else need
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return True, soft, hard


class Conn:
    __slots__ = ("sock", "key", "buf", "parser", "state")

    def __init__(self, sock):
        self.sock = sock
        self.key = new_key()
        self.buf = b""
        self.parser = None
        self.state = "connecting"


class TestTenThousandConnections(ServerTestCase):
    def setUp(self):
        super().setUp()
        need = CONNECTIONS + FD_MARGIN
        ok, soft, hard = raise_nofile(need)
        if not ok:
            self.skipTest("needs RLIMIT_NOFILE of %d for %d connections; the hard limit is %d "
                          "(raise it with `ulimit -Hn` or limits.conf)" % (need, CONNECTIONS, hard))
        if local_port_count() < CONNECTIONS + 1000:
            self.skipTest("ip_local_port_range has %d ports; %d connections need more"
                          % (local_port_count(), CONNECTIONS))
        # Started after the limit was raised: the server inherits it.
        # every connection comes from 127.0.0.1: lift the per-client cap above the test's count
        self.srv = self.start_server(files=FILES, threads=2, level="warn", access=False,
                                     limits={"max_connections": 2 * CONNECTIONS,
                                             "max_connections_per_client": 2 * CONNECTIONS})
        with open("/proc/%d/limits" % self.srv.worker_pid, encoding="ascii") as f:
            line = next(x for x in f if x.startswith("Max open files"))
        self.assertGreaterEqual(int(line.split()[3]), need, line)
        self.sel = selectors.DefaultSelector()
        self.conns = []
        self.addCleanup(self._close_all)

    def _close_all(self):
        self.sel.close()
        for c in self.conns:
            c.sock.close()

    def _deadline_passed(self, deadline, what, done):
        if time.monotonic() > deadline:
            self.fail("%s: %d of %d done after %.0f s" % (what, done, CONNECTIONS,
                                                          PHASE_TIMEOUT_S))

    def open_all(self):
        """Opens CONNECTIONS WebSockets, IN_FLIGHT handshakes at a time."""
        sel, port = self.sel, self.srv.port
        started = opened = 0
        deadline = time.monotonic() + PHASE_TIMEOUT_S
        while opened < CONNECTIONS:
            self._deadline_passed(deadline, "handshakes", opened)
            while started < CONNECTIONS and started - opened < IN_FLIGHT:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                err = s.connect_ex(("127.0.0.1", port))
                if err not in (0, errno.EINPROGRESS):
                    s.close()
                    self.fail("connect %d: %s" % (started, os.strerror(err)))
                c = Conn(s)
                self.conns.append(c)
                sel.register(s, selectors.EVENT_WRITE, c)
                started += 1
            for key, _ in sel.select(timeout=1.0):
                c = key.data
                if c.state == "connecting":
                    err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        self.fail("connect: %s" % os.strerror(err))
                    c.sock.send(handshake_request(key=c.key))  # small: fits the empty buffer
                    c.state = "handshake"
                    sel.modify(c.sock, selectors.EVENT_READ, c)
                    continue
                data = c.sock.recv(4096)
                if not data:
                    self.fail("connection closed during the handshake after %r" % c.buf)
                c.buf += data
                head, sep, rest = c.buf.partition(b"\r\n\r\n")
                if not sep:
                    continue
                lines = head.decode("latin-1").split("\r\n")
                self.assertTrue(lines[0].startswith("HTTP/1.1 101 "), lines[0])
                accept = [ln.split(":", 1)[1].strip() for ln in lines[1:]
                          if ln.lower().startswith("sec-websocket-accept:")]
                self.assertEqual(accept, [accept_for(c.key)])
                self.assertEqual(rest, b"", "frames before any message was sent")
                c.buf = b""
                c.state = "open"
                sel.unregister(c.sock)
                opened += 1
        return opened

    def echo_sample(self):
        """Sends a message on SAMPLE connections spread over all of them; checks the echoes."""
        step = max(1, CONNECTIONS // SAMPLE)
        sample = self.conns[::step][:SAMPLE]
        expect = {}
        for i, c in enumerate(sample):
            msg = b"sample %d" % i
            c.sock.send(encode_frame(OP_TEXT, msg))
            c.parser = FrameParser()
            expect[c] = msg
            self.sel.register(c.sock, selectors.EVENT_READ, c)
        deadline = time.monotonic() + PHASE_TIMEOUT_S
        done = 0
        while expect:
            self._deadline_passed(deadline, "echoes", done)
            for key, _ in self.sel.select(timeout=1.0):
                c = key.data
                data = c.sock.recv(4096)
                self.assertTrue(data, "connection closed before its echo")
                c.parser.feed(data)
                f = c.parser.next()
                if f is None:
                    continue
                self.assertEqual((f.opcode, f.payload), (OP_TEXT, expect.pop(c)))
                self.sel.unregister(c.sock)
                done += 1
        return done

    def close_all(self):
        """Close handshake on every connection: close frame out, 1000 back, then EOF."""
        for c in self.conns:
            c.sock.send(encode_frame(OP_CLOSE, close_payload(NORMAL)))
            c.parser = FrameParser()
            c.state = "closing"
            self.sel.register(c.sock, selectors.EVENT_READ, c)
        deadline = time.monotonic() + PHASE_TIMEOUT_S
        closed = 0
        while closed < CONNECTIONS:
            self._deadline_passed(deadline, "closes", closed)
            for key, _ in self.sel.select(timeout=1.0):
                c = key.data
                try:
                    data = c.sock.recv(4096)
                except ConnectionResetError:
                    data = b""
                if data:
                    c.parser.feed(data)
                    f = c.parser.next()
                    if f is not None:
                        self.assertEqual((f.opcode, f.close_code), (OP_CLOSE, NORMAL))
                        c.state = "answered"
                    continue
                self.assertEqual(c.state, "answered", "TCP closed without a close frame")
                self.sel.unregister(c.sock)
                c.sock.close()
                closed += 1
        self.conns = []
        return closed

    def test_ten_thousand_idle_connections(self):
        srv = self.srv
        t0 = time.monotonic()
        base_fds = fd_count(srv.worker_pid)  # before any client connected
        with RawConnection(srv.port) as h:
            self.assertEqual(h.request("GET", "/hello/x").status, 200)
        rss_before = rss_kb(srv.worker_pid)

        self.assertEqual(self.open_all(), CONNECTIONS)
        t_open = time.monotonic()
        # The server has answered every handshake; its connection state is allocated.
        self.assertGreaterEqual(fd_count(srv.worker_pid), base_fds + CONNECTIONS)
        rss_open = rss_kb(srv.worker_pid)
        per_conn = (rss_open - rss_before) / CONNECTIONS
        sys.stdout.write(
            "\nserver memory per idle WebSocket: %.1f KB (VmRSS %d -> %d KiB over %d "
            "connections%s)\n" % (per_conn, rss_before, rss_open, CONNECTIONS,
                                  ", sanitizer build" if _sanitized() else ""))
        sys.stdout.flush()

        self.assertEqual(self.echo_sample(), min(SAMPLE, CONNECTIONS))
        with RawConnection(srv.port) as h:
            self.assertEqual(h.request("GET", "/hello/x").status, 200)

        self.assertEqual(self.close_all(), CONNECTIONS)
        wait_until(lambda: fd_count(srv.worker_pid) == base_fds, PHASE_TIMEOUT_S)
        self.assertEqual(fd_count(srv.worker_pid), base_fds,
                         "server fds not back to the count before the test")
        sys.stdout.write("opened %d in %.1f s, whole test %.1f s; server RSS after closing "
                         "%d KiB\n" % (CONNECTIONS, t_open - t0, time.monotonic() - t0,
                                       rss_kb(srv.worker_pid)))
        sys.stdout.flush()


def _sanitized():
    """Whether CTest set the sanitizer environment (a sanitizer build's memory differs)."""
    return bool(os.environ.get("ASAN_OPTIONS") or os.environ.get("UBSAN_OPTIONS"))


if __name__ == "__main__":
    unittest.main()
