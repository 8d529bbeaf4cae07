"""Request framing at the edges (docs/http.md): answers in order before a refusal, verdicts that
do not depend on how the bytes arrive, and refusals that are problem+json."""
import unittest

from mhtest import RawConnection, ServerTestCase, build_request


class TestFraming(ServerTestCase):
    """A checked request before a bad one is answered; verdicts do not depend on how bytes
    arrive; unreadable targets and unknown expectations are refused with problem+json; a
    CONNECT or an unknown method still gets a framed answer."""
    def test_good_request_before_a_bad_one_in_the_same_read_is_answered(self):
        srv = self.start_server()
        with RawConnection(srv.port) as c:
            c.send(b"GET /hello/a HTTP/1.1\r\nHost: a\r\n\r\nBREW / HTTP/1.1\r\nHost: a\r\n\r\n")
            first = c.read_response()
            self.assertEqual(first.status, 200, first)

    def test_after_an_answered_upgrade_good_then_bad(self):
        srv = self.start_server()
        with RawConnection(srv.port) as c:
            c.send(b"GET /hello/x HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
                   b"GET /hello/y HTTP/1.1\r\nHost: a\r\n\r\nGET /hello/z HTTP/1.1\r\n\r\n")
            self.assertEqual(c.read_response().status, 200)
            second = c.read_response()
            self.assertEqual(second.status, 200, second)

    def test_request_line_at_the_limit_split_between_cr_and_lf(self):
        srv = self.start_server(limits={"max_request_line_bytes": 256})
        line = b"GET /hello/" + b"a" * (256 - len(b"GET /hello/ HTTP/1.1")) + b" HTTP/1.1"
        with RawConnection(srv.port) as c:
            # Two writes: the server may read them apart (the split itself is tested
            # deterministically by the fuzz corpus input regress-A-line-at-limit-then-CR).
            c.send(line + b"\r")
            c.send(b"\nHost: a\r\n\r\n")
            resp = c.read_response()
            self.assertEqual(resp.status, 200, resp)

    def test_long_chunk_size_line_refused_however_it_arrives(self):
        # chunk-size lines (extensions included) are limited to 1024 bytes, in one piece or not
        srv = self.start_server()
        head = b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        ext = b"5;x=" + b"v" * 1100 + b"\r\n"
        for cut in (None, 1050):
            with RawConnection(srv.port) as c:
                if cut is None:
                    c.send(head + ext + b"hello\r\n0\r\n\r\n")
                else:
                    c.send(head + ext[:cut])
                    c.send(ext[cut:] + b"hello\r\n0\r\n\r\n")
                resp = c.read_response()
                self.assertEqual(resp.status, 400, resp)

    def test_unreadable_target_is_refused_with_problem_json(self):
        srv = self.start_server()
        for target in (b"http://[zz/", b"//[", b"http://a:99999999/hello/x"):
            with self.subTest(target=target), RawConnection(srv.port) as c:
                c.send(b"GET " + target + b" HTTP/1.1\r\nHost: a\r\n\r\n")
                resp = c.read_response()
                self.assertEqual(resp.header("Content-Type"), "application/problem+json", resp)

    def test_unsupported_expectation_is_refused_with_problem_json(self):
        srv = self.start_server()
        with RawConnection(srv.port) as c:
            c.send(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: foo\r\n\r\nhello")
            resp = c.read_response()
            self.assertEqual(resp.status, 417, resp)
            self.assertEqual(resp.header("Content-Type"), "application/problem+json", resp)

    def test_connect_response_is_framed(self):
        srv = self.start_server()
        with RawConnection(srv.port, timeout=5) as c:
            c.send(b"CONNECT /echo HTTP/1.1\r\nHost: t\r\n\r\n" + build_request("GET", "/hello/x"))
            first = c.read_head()
            self.assertIn(first[1], (405, 501), first)
            self.assertTrue(any(k.lower() == "content-length" for k, _ in first[3]), first)

    def test_unknown_method_on_existing_path_is_405_with_allow(self):
        srv = self.start_server()
        with RawConnection(srv.port) as c:
            resp = c.request("TRACE", "/echo")
        self.assertEqual(resp.status, 405, resp)
        self.assertEqual(resp.header("Allow"), "POST, OPTIONS")


if __name__ == "__main__":
    unittest.main()
