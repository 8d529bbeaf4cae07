"""The connection engine's own promises (docs/http.md): 100 Continue before the body, idle
keep-alive connections closed after keepalive_timeout_ms, a client that stops reading dropped
after write_timeout_ms, a client's half-close not ending its last answer early, and reading paused (not buffered without end) while pipelined requests
wait behind one on the worker pool."""
import select
import socket
import threading
import time
import unittest

from mhtest import RawConnection, ServerTestCase, build_request
from test_pool import hash_body, pool_extra, pool_files, slow_iterations


class TestEngine(ServerTestCase):
    def test_100_continue_comes_before_the_body_is_sent(self):
        srv = self.start_server()
        with RawConnection(srv.port) as c:
            c.send(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
                   b"Expect: 100-continue\r\n\r\n")
            version, status, _, _ = c.read_head()  # nothing of the body was sent yet
            self.assertEqual(status, 100)
            c.send(b"hello")
            resp = c.read_response("POST")
            self.assertEqual((resp.status, resp.body), (200, b"hello"))

    def test_no_100_continue_for_http_10(self):
        srv = self.start_server()
        with RawConnection(srv.port) as c:
            c.send(b"POST /echo HTTP/1.0\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello")
            resp = c.read_response("POST")
            self.assertEqual((resp.status, resp.body), (200, b"hello"))

    def test_idle_keepalive_connection_is_closed(self):
        srv = self.start_server(limits={"keepalive_timeout_ms": 300})
        with RawConnection(srv.port) as c:
            self.assertEqual(c.request("GET", "/hello/a").status, 200)
            self.assertTrue(c.is_closed(timeout=10), "idle connection kept open")

    def test_busy_keepalive_connection_is_not_closed(self):
        # Requests keep coming, each well within the idle time: the idle deadline moves on.
        srv = self.start_server(limits={"keepalive_timeout_ms": 1000})
        with RawConnection(srv.port) as c:
            deadline = time.monotonic() + 2.5
            while time.monotonic() < deadline:
                self.assertEqual(c.request("GET", "/hello/a").status, 200)
                time.sleep(0.05)  # pace the client; nothing waits on this

    def test_client_that_stops_reading_is_dropped(self):
        srv = self.start_server(limits={"write_timeout_ms": 500, "max_body_bytes": 1 << 25})
        s = socket.create_connection(("127.0.0.1", srv.port))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        body = b"x" * (1 << 24)  # a 16 MiB echo, more than socket buffers hold, never read
        s.sendall(build_request("POST", "/echo", body))
        self.assertTrue(srv.wait_log(r"access: POST /echo 200 %d " % len(body)))
        # The server gives up on the connection: it resets it, so the client sees an error
        # without reading a byte of what was queued.
        p = select.poll()
        p.register(s, select.POLLERR | select.POLLHUP | select.POLLRDHUP)
        closed = bool(p.poll(20000))
        s.close()
        self.assertTrue(closed, "a client that never reads kept its connection")
        with RawConnection(srv.port) as c:
            self.assertEqual(c.request("GET", "/hello/a").status, 200)

    def test_a_client_that_half_closes_after_its_last_request_gets_the_whole_answer(self):
        # Connection: close, then the client's FIN right behind the request; the answer (24 MiB)
        # is far larger than the two socket buffers (the server's grows to 4 MiB at most, the
        # client's is held at 1 MiB: far above a loopback segment, or TCP would stall on its
        # own), so most of it waits. The FIN must not end the connection before the answer is
        # out (reading pauses while the last answer waits).
        srv = self.start_server(limits={"max_body_bytes": 1 << 25})
        s = socket.create_connection(("127.0.0.1", srv.port))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        body = b"y" * (24 << 20)
        s.sendall(build_request("POST", "/echo", body, headers={"Connection": "close"}))
        s.shutdown(socket.SHUT_WR)
        self.assertTrue(srv.wait_log(r"access: POST /echo 200 %d " % len(body)))
        s.settimeout(20)
        got = bytearray()
        while True:
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            got += chunk
        s.close()
        head, _, rest = bytes(got).partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 200 "), head[:80])
        self.assertIn(b"\r\nconnection: close", head.lower())
        self.assertEqual(len(rest), len(body), "the answer was cut short")

    def test_pipelined_requests_behind_a_pool_request_are_all_answered_in_order(self):
        # 300 KiB of pipelined requests behind one that runs on the pool: the server reads
        # ahead up to its limit, pauses, and answers everything in order.
        srv = self.start_server(files=pool_files(), threads=1, extra=pool_extra(1, 4))
        n = slow_iterations(srv, 0.3)
        count = 6000
        data = build_request("POST", "/hash", hash_body("p", "s", n)) + b"".join(
            build_request("GET", "/hello/r%d" % i) for i in range(count))
        self.assertGreater(len(data), 256 * 1024)
        with RawConnection(srv.port) as c:
            sender = threading.Thread(target=c.sock.sendall, args=(data,))
            sender.start()
            self.assertEqual(c.read_response("POST").status, 200)
            for i in range(count):
                resp = c.read_response("GET")
                self.assertEqual(resp.json(), {"message": "Hello, r%d!" % i})
            sender.join()


if __name__ == "__main__":
    unittest.main()
