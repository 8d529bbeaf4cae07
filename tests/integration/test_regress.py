"""Regression tests: JSON edge cases, CONNECT framing and drain behaviour that once failed."""
import os, signal, unittest
from mhtest import RawConnection, ServerTestCase, build_request, pipeline

class TestRegressions(ServerTestCase):
    def post_json(self, srv, body):
        with RawConnection(srv.port) as c:
            return c.request("POST", "/echo/json", body)

    def test_json_depth_equal_to_limit_is_accepted(self):
        srv = self.start_server(limits={"max_json_depth": 4})
        resp = self.post_json(srv, b"[[[[1]]]]")
        self.assertEqual(resp.status, 200, resp)

    def test_json_depth_limit_1_accepts_flat_array(self):
        srv = self.start_server(limits={"max_json_depth": 1})
        resp = self.post_json(srv, b"[1, 2]")
        self.assertEqual(resp.status, 200, resp)

    def test_top_level_number_and_literal_without_trailing_whitespace(self):
        srv = self.start_server()
        for text in (b"42", b"-1.5", b"true", b"false"):
            with self.subTest(text=text):
                resp = self.post_json(srv, text)
                self.assertEqual(resp.status, 200, resp)

    def test_null_document_is_valid(self):
        srv = self.start_server()
        for text in (b"null", b"null\n"):
            with self.subTest(text=text):
                resp = self.post_json(srv, text)
                self.assertEqual((resp.status, resp.body), (200, b"null"), resp)

    def test_connect_response_is_framed(self):
        srv = self.start_server()
        with RawConnection(srv.port, timeout=5) as c:
            c.send(b"CONNECT /echo HTTP/1.1\r\nHost: t\r\n\r\n" + build_request("GET", "/hello/x"))
            first = c.read_head()
            self.assertIn(first[1], (405, 501), first)
            self.assertTrue(any(k.lower() == "content-length" for k, _ in first[3]), first)

    def test_client_gone_mid_response_does_not_hold_shutdown(self):
        size = 8 << 20
        srv = self.start_server(limits={"max_body_bytes": 2 * size}, shutdown_timeout_ms=30000)
        c = RawConnection(srv.port, rcvbuf=32 * 1024)
        c.send(build_request("POST", "/echo", os.urandom(size)))
        self.assertEqual(c.read_head()[1], 200)
        c.close()
        srv.send_signal(signal.SIGTERM)
        rc = srv.wait(5)
        self.assertEqual(rc, 0, "still draining 5 s after SIGTERM (deadline 30 s)")

if __name__ == "__main__":
    unittest.main()


class TestDrainIdleOtherLoop(ServerTestCase):
    def test_idle_connection_on_finished_loop_is_closed_while_other_loop_drains(self):
        import re, socket
        size = 16 << 20
        srv = self.start_server(limits={"max_body_bytes": 2 * size}, shutdown_timeout_ms=30000)
        by_loop = {}
        for i in range(40):
            c = RawConnection(srv.port)
            self.addCleanup(c.close)
            self.assertEqual(c.request("GET", "/hello/p%d" % i).status, 200)
            m = srv.wait_log(r"GET /hello/p%d 200 \d+ \d+us req=(\d+)" % i)
            by_loop.setdefault(int(m.group(1)) & 0xff, []).append(c)
            if len(by_loop) == 2 and all(len(v) >= 2 for v in by_loop.values()):
                break
        big = by_loop[0][0]
        big.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
        big.send(build_request("POST", "/echo", os.urandom(size)))
        self.assertEqual(big.read_head()[1], 200)
        srv.send_signal(signal.SIGTERM)
        self.assertTrue(srv.wait_log("SIGTERM received"))
        idle = by_loop[1][0]
        self.assertTrue(idle.is_closed(5), "idle connection on the drained loop left open")
        big.close()


class TestStrictInput(ServerTestCase):
    """JSON bodies are held to RFC 8259; unknown methods still learn what the path allows."""

    def test_non_json_that_json_c_would_accept_is_400(self):
        srv = self.start_server()
        for text in (b"{'a': 1}", b"[1,]", b'{"a":1,}', b"[NaN]", b"[Infinity]", b"[01]",
                     b'["a\tb"]', b'"\xff"', b'"\\x"', b"[1] [2]"):
            with self.subTest(text=text):
                resp = self.post_json(srv, text)
                self.assertEqual(resp.status, 400, resp)
                self.assertIn(b"invalid JSON", resp.body)

    def test_valid_json_round_trips(self):
        srv = self.start_server()
        for text in (b'{"a":[1,-2.5e3,"\\u00e9",true,false,null,{}]}', b" [1] ", b'"\xc3\xa9"'):
            with self.subTest(text=text):
                self.assertEqual(self.post_json(srv, text).status, 200)

    def test_unknown_method_on_existing_path_is_405_with_allow(self):
        srv = self.start_server()
        with RawConnection(srv.port) as c:
            resp = c.request("TRACE", "/echo")
        self.assertEqual(resp.status, 405, resp)
        self.assertEqual(resp.header("Allow"), "POST, OPTIONS")

    def post_json(self, srv, body):
        with RawConnection(srv.port) as c:
            return c.request("POST", "/echo/json", body)
