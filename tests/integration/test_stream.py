"""Streamed answers (SDK 1.2, mh_stream_*): chunked to HTTP/1.1 clients, until the close to
HTTP/1.0 ones, Server-Sent Events, pieces written from a worker thread, backpressure against a
client that reads slowly, a handler that fails mid-stream, and a client that leaves."""
import socket
import time
import unittest

from mhtest import RawConnection, ServerTestCase, fixture_path, have_fixture, module_conf


@unittest.skipUnless(have_fixture("fx_stream.so"), "fixture modules are not built")
class TestStream(ServerTestCase):
    def start(self):
        files = {"10-stream.conf": module_conf("fx_stream", fixture_path("fx_stream.so"), [
            ("GET", "/big", "big"), ("GET", "/worker", "worker"), ("GET", "/events", "events"),
            ("GET", "/fail", "fail")])}
        return self.start_server(files=files)

    @staticmethod
    def expected(n):
        return bytes(ord("a") + i % 26 for i in range(n))

    def test_chunked_body_then_keep_alive(self):
        srv = self.start()
        with RawConnection(srv.port) as c:
            resp = c.request("GET", "/big?bytes=100000")
            self.assertEqual(resp.status, 200, resp)
            self.assertEqual(resp.header("Transfer-Encoding"), "chunked")
            self.assertIsNone(resp.header("Content-Length"))
            self.assertEqual(resp.body, self.expected(100000))
            # The connection is in step for the next request.
            self.assertEqual(c.request("GET", "/big?bytes=3").body, b"abc")
        self.assertTrue(srv.wait_log(r"access: GET /big\?bytes=100000 200 100000 "))

    def test_pieces_from_a_worker_thread_keep_their_order(self):
        srv = self.start()
        with RawConnection(srv.port) as c:
            resp = c.request("GET", "/worker?n=200")
            self.assertEqual(resp.status, 200, resp)
            self.assertEqual(resp.body, b"".join(b"piece %d\n" % i for i in range(200)))

    def test_server_sent_events(self):
        srv = self.start()
        with RawConnection(srv.port) as c:
            resp = c.request("GET", "/events")
            self.assertEqual(resp.header("Content-Type"), "text/event-stream")
            self.assertEqual(resp.header("Cache-Control"), "no-cache")
            self.assertEqual(resp.body, b"id: 1\ndata: tick 1\n\nid: 2\ndata: tick 2\n\n"
                                        b"id: 3\ndata: tick 3\n\n")

    def test_http_10_body_ends_with_the_close(self):
        srv = self.start()
        with RawConnection(srv.port) as c:
            c.send(b"GET /big?bytes=5000 HTTP/1.0\r\n\r\n")
            resp = c.read_response("GET")
            self.assertIsNone(resp.header("Transfer-Encoding"))
            self.assertEqual(resp.header("Connection"), "close")
            self.assertEqual(resp.body, self.expected(5000))
            self.assertTrue(c.is_closed())

    def test_head_has_no_body(self):
        srv = self.start()
        with RawConnection(srv.port) as c:
            resp = c.request("HEAD", "/big?bytes=5000")
            self.assertEqual(resp.status, 200)
            self.assertEqual(c.request("GET", "/big?bytes=2").body, b"ab")

    def test_backpressure_with_a_slow_reader(self):
        # 8 MiB through a client with a small receive buffer that reads in small steps: the
        # server keeps at most its window queued (it waits for the drain callback) and every
        # byte arrives in order.
        srv = self.start()
        size = 8 * 1024 * 1024
        with RawConnection(srv.port, rcvbuf=8192) as c:
            c.send(b"GET /big?bytes=%d HTTP/1.1\r\nHost: a\r\n\r\n" % size)
            resp = c.read_response("GET")
            self.assertEqual(len(resp.body), size)
            self.assertEqual(resp.body, self.expected(size))
        self.assertTrue(srv.wait_log(r"access: GET /big\?bytes=%d 200 %d " % (size, size)))

    def test_failed_handler_closes_the_connection(self):
        srv = self.start()
        with RawConnection(srv.port) as c:
            c.send(b"GET /fail HTTP/1.1\r\nHost: a\r\n\r\n")
            self.assertTrue(c.is_closed(), "connection open after a handler failed mid-stream")
            self.assertIn(b"HTTP/1.1 200 OK", c.pending())
            self.assertNotIn(b"0\r\n\r\n", c.pending(), "a failed stream must not look complete")
        self.assertTrue(srv.wait_log(r"handler 'fail' failed after starting a stream"))

    def test_client_leaving_mid_stream(self):
        srv = self.start()
        s = socket.create_connection(("127.0.0.1", srv.port))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(b"GET /big?bytes=50000000 HTTP/1.1\r\nHost: a\r\n\r\n")
        s.recv(4096)
        s.close()
        self.assertTrue(srv.wait_log(r"access: GET /big\?bytes=50000000 499 \d+ "))
        with RawConnection(srv.port) as c:  # the server goes on
            self.assertEqual(c.request("GET", "/big?bytes=1").body, b"a")
        self.stop_server(srv)


if __name__ == "__main__":
    unittest.main()
