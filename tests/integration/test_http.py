"""HTTP behaviour of a running modhost with the hello and echo modules: routing, percent
decoding, bodies, JSON errors and limits, methods, keep-alive, pipelining, concurrency and the
access log. Every response is checked for status, headers and body."""

import http.client
import json
import threading
import unittest

from mhtest import (ECHO_CONF, RawConnection, ServerTestCase, build_request, keepalive_sequence,
                    module_conf, pipeline)

PROBLEM = "application/problem+json"


class HttpCase(ServerTestCase):
    def assert_json_response(self, resp, status, doc):
        self.assertEqual(resp.status, status, resp)
        self.assertEqual(resp.header("Content-Type"), "application/json", resp)
        self.assertEqual(resp.header("Content-Length"), str(len(resp.body)), resp)
        self.assertEqual(resp.json(), doc)

    def assert_problem(self, resp, status, title, *detail_parts):
        """problem+json with exactly type, title, status and a detail holding @detail_parts."""
        self.assertEqual(resp.status, status, resp)
        self.assertEqual(resp.header("Content-Type"), PROBLEM, resp)
        self.assertEqual(resp.header("Content-Length"), str(len(resp.body)), resp)
        doc = resp.json()
        self.assertEqual(sorted(doc), ["detail", "status", "title", "type"], doc)
        self.assertEqual(doc["type"], "about:blank")
        self.assertEqual(doc["title"], title)
        self.assertEqual(doc["status"], status)
        for part in detail_parts:
            self.assertIn(part, doc["detail"])
        return doc

    def get(self, srv, target, **kw):
        with RawConnection(srv.port) as c:
            return c.request("GET", target, **kw)

    def post(self, srv, target, body, headers=None, chunks=None):
        with RawConnection(srv.port) as c:
            return c.request("POST", target, body, headers, chunks)


class TestHello(HttpCase):
    def test_get_hello_world(self):
        srv = self.start_server()
        resp = self.get(srv, "/hello/world")
        self.assert_json_response(resp, 200, {"message": "Hello, world!"})
        self.assertEqual(resp.version, "HTTP/1.1")
        self.assertEqual(resp.reason, "OK")

    def test_get_hello_with_http_client(self):
        srv = self.start_server()
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=20)
        try:
            conn.request("GET", "/hello/world")
            resp = conn.getresponse()
            body = resp.read()
            self.assertEqual(resp.status, 200)
            self.assertEqual(resp.getheader("Content-Type"), "application/json")
            self.assertEqual(resp.getheader("Content-Length"), str(len(body)))
            self.assertEqual(json.loads(body), {"message": "Hello, world!"})
        finally:
            conn.close()

    def test_greeting_setting_is_used(self):
        hello = module_conf("hello", "hello.so", [("GET", "/hello/{name}", "hello")],
                            {"greeting": "Servus"})
        srv = self.start_server(files={"10-hello.conf": hello, "20-echo.conf": ECHO_CONF})
        self.assert_json_response(self.get(srv, "/hello/Ana"), 200, {"message": "Servus, Ana!"})

    def test_percent_encoded_parameter_is_decoded(self):
        srv = self.start_server()
        resp = self.get(srv, "/hello/J%C3%BCrgen")
        self.assert_json_response(resp, 200, {"message": "Hello, J\u00fcrgen!"})
        resp = self.get(srv, "/hello/a%20b%2Fc")
        self.assert_json_response(resp, 200, {"message": "Hello, a b/c!"})

    def test_query_string_is_not_part_of_the_parameter(self):
        srv = self.start_server()
        resp = self.get(srv, "/hello/world?name=other&x=1")
        self.assert_json_response(resp, 200, {"message": "Hello, world!"})

    def test_bad_percent_escape_is_400(self):
        srv = self.start_server()
        for target in ("/hello/%zz", "/hello/abc%4", "/hello/%00"):
            with self.subTest(target=target):
                self.assert_problem(self.get(srv, target), 400, "Bad Request",
                                    "parameter 'name'", "percent escape")

    def test_unknown_path_is_404(self):
        srv = self.start_server()
        for target in ("/nope", "/hello", "/hello/", "/hello/a/b", "/"):
            with self.subTest(target=target):
                self.assert_problem(self.get(srv, target), 404, "Not Found",
                                    "no route for GET %s" % target)


class TestEcho(HttpCase):
    def test_echo_returns_exact_bytes_and_content_type(self):
        srv = self.start_server()
        body = bytes(range(256)) * 16 + b"\x00\x00end\x00"
        resp = self.post(srv, "/echo", body, {"Content-Type": "application/x-test; charset=bin"})
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.header("Content-Type"), "application/x-test; charset=bin")
        self.assertEqual(resp.header("Content-Length"), str(len(body)))
        self.assertEqual(resp.body, body)

    def test_echo_without_content_type_is_octet_stream(self):
        srv = self.start_server()
        resp = self.post(srv, "/echo", b"plain bytes")
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.header("Content-Type"), "application/octet-stream")
        self.assertEqual(resp.body, b"plain bytes")

    def test_echo_empty_body(self):
        srv = self.start_server()
        resp = self.post(srv, "/echo", b"", {"Content-Type": "text/plain"})
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.header("Content-Type"), "text/plain")
        self.assertEqual(resp.header("Content-Length"), "0")
        self.assertEqual(resp.body, b"")

    def test_echo_chunked_request_body(self):
        srv = self.start_server()
        chunks = [b"hello ", b"\x00\x01\x02", b"", b"world" * 1000]
        resp = self.post(srv, "/echo", None, {"Content-Type": "text/x-chunks"},
                         chunks=[c for c in chunks if c])
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.header("Content-Type"), "text/x-chunks")
        self.assertEqual(resp.header("Content-Length"), str(len(b"".join(chunks))))
        self.assertEqual(resp.body, b"".join(chunks))

    def test_echo_with_http_client(self):
        srv = self.start_server()
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=20)
        try:
            conn.request("POST", "/echo", body=b"\x00abc\xff",
                         headers={"Content-Type": "application/x-bin"})
            resp = conn.getresponse()
            self.assertEqual(resp.status, 200)
            self.assertEqual(resp.getheader("Content-Type"), "application/x-bin")
            self.assertEqual(resp.read(), b"\x00abc\xff")
        finally:
            conn.close()

    def test_get_on_echo_is_405_with_allow(self):
        srv = self.start_server()
        resp = self.get(srv, "/echo")
        self.assert_problem(resp, 405, "Method Not Allowed", "GET", "/echo")
        self.assertEqual(resp.header_all("Allow"), ["POST, OPTIONS"])


class TestEchoJson(HttpCase):
    DOC = {
        "s": "J\u00fcrgen \"quoted\" \\ / \n\t\u2603",
        "n": [0, 1, -2, 3000000000, 9007199254740993],
        "b": [True, False, None],
        "o": {"nested": [{"a": []}, {}], "": "empty key"},
    }

    def test_json_is_reserialized(self):
        srv = self.start_server()
        text = json.dumps(self.DOC, indent=4).encode("utf-8")
        resp = self.post(srv, "/echo/json", text, {"Content-Type": "application/json"})
        self.assert_json_response(resp, 200, self.DOC)
        self.assertNotEqual(resp.body, text)  # re-serialized, not copied

    def test_scalars_and_surrounding_whitespace_are_accepted(self):
        srv = self.start_server()
        for text, doc in ((b" 42 ", 42), (b'"x"', "x"), (b" true\n", True), (b"[]\r\n\t ", [])):
            with self.subTest(text=text):
                self.assert_json_response(self.post(srv, "/echo/json", text), 200, doc)

    def test_invalid_json_is_400_naming_the_error(self):
        srv = self.start_server()
        cases = (
            (b'{"a": x}', "unexpected character"),
            (b'{"a": ', "unexpected end of input"),
            (b'{"a" 1}', "invalid JSON"),
            (b"not json", "invalid JSON"),
        )
        for text, error in cases:
            with self.subTest(text=text):
                doc = self.assert_problem(self.post(srv, "/echo/json", text), 400,
                                          "Bad Request", error)
                self.assertTrue(doc["detail"].startswith("invalid JSON: "), doc)

    def test_empty_body_is_400(self):
        srv = self.start_server()
        self.assert_problem(self.post(srv, "/echo/json", b""), 400, "Bad Request",
                            "body is empty")

    def test_trailing_garbage_is_400(self):
        srv = self.start_server()
        for text in (b'{"a": 1} x', b"[1] [2]", b'{"a": 1}}'):
            with self.subTest(text=text):
                self.assert_problem(self.post(srv, "/echo/json", text), 400, "Bad Request",
                                    "invalid JSON", "after the value")

    def test_too_deep_json_is_413(self):
        srv = self.start_server(limits={"max_json_depth": 4})
        shallow = b"[[1]]"
        self.assert_json_response(self.post(srv, "/echo/json", shallow), 200, [[1]])
        for depth in (5, 6, 50, 5000):
            with self.subTest(depth=depth):
                deep = b"[" * depth + b"1" + b"]" * depth
                self.assert_problem(self.post(srv, "/echo/json", deep), 413,
                                    "Content Too Large", "too deep")
        deep_obj = b'{"a":' * 8 + b"1" + b"}" * 8
        self.assert_problem(self.post(srv, "/echo/json", deep_obj), 413, "Content Too Large",
                            "too deep")

    def test_json_over_max_json_bytes_is_413(self):
        srv = self.start_server(limits={"max_json_bytes": 64, "max_body_bytes": 4096})
        small = json.dumps({"k": "v" * 40}).encode()
        self.assertLessEqual(len(small), 64)
        self.assert_json_response(self.post(srv, "/echo/json", small), 200, {"k": "v" * 40})
        big = json.dumps({"k": "v" * 100}).encode()
        self.assert_problem(self.post(srv, "/echo/json", big), 413, "Content Too Large",
                            str(len(big)), "64")
        # The limit is the JSON parser's: /echo still takes the same body.
        self.assertEqual(self.post(srv, "/echo", big).body, big)


class TestLimits(HttpCase):
    def test_body_over_max_body_bytes_is_413_and_closes(self):
        srv = self.start_server(limits={"max_body_bytes": 1024})
        ok = self.post(srv, "/echo", b"x" * 1024)
        self.assertEqual((ok.status, len(ok.body)), (200, 1024))
        # Announced length over the limit: answered from the headers alone.
        with RawConnection(srv.port) as c:
            c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1025\r\n\r\n")
            resp = c.read_response()
            self.assertEqual(resp.status, 413, resp)
            self.assertTrue(c.is_closed(), "connection left open after 413")
        # Chunked body that grows over the limit.
        with RawConnection(srv.port) as c:
            c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"300\r\n" + b"y" * 0x300 + b"\r\n" + b"300\r\n" + b"y" * 0x300 + b"\r\n")
            resp = c.read_response()
            self.assertEqual(resp.status, 413, resp)
            self.assertTrue(c.is_closed(), "connection left open after 413")
        # The server is still fine.
        self.assertEqual(self.post(srv, "/echo", b"after").body, b"after")


class TestMethods(HttpCase):
    def test_head_has_get_length_and_no_body(self):
        srv = self.start_server()
        get = self.get(srv, "/hello/x")
        self.assertEqual(get.status, 200)
        with RawConnection(srv.port) as c:
            head = c.request("HEAD", "/hello/x")
            self.assertEqual(head.status, 200)
            self.assertEqual(head.header("Content-Type"), "application/json")
            self.assertEqual(head.header("Content-Length"), str(len(get.body)))
            # Nothing follows the HEAD response on the connection.
            self.assertFalse(c.is_closed(timeout=0.2))
            self.assertEqual(c.pending(), b"")

    def test_pipelined_get_after_head_is_answered(self):
        srv = self.start_server()
        resps = pipeline(srv.port, [("HEAD", "/hello/x", None), ("GET", "/hello/y", None),
                                    ("HEAD", "/hello/zz", None), ("GET", "/hello/x", None)])
        self.assertEqual([r.status for r in resps], [200, 200, 200, 200])
        self.assertEqual([r.body for r in resps][0::2], [b"", b""])
        self.assert_json_response(resps[1], 200, {"message": "Hello, y!"})
        self.assert_json_response(resps[3], 200, {"message": "Hello, x!"})
        self.assertEqual(resps[0].header("Content-Length"), str(len(resps[3].body)))
        self.assertEqual(resps[2].header("Content-Length"), str(len(resps[3].body) + 1))

    def test_head_on_error_sends_no_body(self):
        srv = self.start_server()
        resps = pipeline(srv.port, [("HEAD", "/nope", None), ("GET", "/hello/a", None)])
        self.assertEqual(resps[0].status, 404)
        self.assertEqual(resps[0].header("Content-Type"), PROBLEM)
        self.assertEqual(resps[0].body, b"")
        self.assert_json_response(resps[1], 200, {"message": "Hello, a!"})

    def test_options_is_204_with_allow(self):
        srv = self.start_server()
        for target, allow in (("/echo", "POST, OPTIONS"), ("/hello/x", "GET, HEAD, OPTIONS")):
            with self.subTest(target=target):
                with RawConnection(srv.port) as c:
                    resp = c.request("OPTIONS", target)
                    self.assertEqual(resp.status, 204, resp)
                    self.assertEqual(resp.header_all("Allow"), [allow])
                    self.assertIsNone(resp.header("Content-Type"))
                    self.assertIn(resp.header("Content-Length"), (None, "0"))
                    # A 204 has no body: the next response starts right after it.
                    self.assertEqual(c.request("GET", "/hello/o").status, 200)

    def test_options_on_unknown_path_is_404(self):
        srv = self.start_server()
        with RawConnection(srv.port) as c:
            self.assert_problem(c.request("OPTIONS", "/nope"), 404, "Not Found",
                                "OPTIONS /nope")

    def test_methods_without_route_are_405(self):
        srv = self.start_server()
        for method in ("PUT", "DELETE", "PATCH"):
            with self.subTest(method=method):
                with RawConnection(srv.port) as c:
                    resp = c.request(method, "/hello/x", b"{}")
                    self.assert_problem(resp, 405, "Method Not Allowed", method)
                    self.assertEqual(resp.header("Allow"), "GET, HEAD, OPTIONS")

    def test_trace_is_405_or_501_problem(self):
        srv = self.start_server()
        with RawConnection(srv.port) as c:
            resp = c.request("TRACE", "/echo")
            self.assert_problem(resp, 405, "Method Not Allowed", "TRACE")
            self.assertEqual(resp.header("Allow"), "POST, OPTIONS")
            resp = c.request("TRACE", "/nope")
            self.assert_problem(resp, 501, "Not Implemented", "TRACE")
            # Still in sync afterwards.
            self.assertEqual(c.request("GET", "/hello/t").status, 200)

    def test_method_unknown_to_http_parser_is_501(self):
        # evhttp refuses methods it does not know before any handler runs (its own HTML page).
        srv = self.start_server()
        with RawConnection(srv.port) as c:
            c.send(b"BREW /hello/x HTTP/1.1\r\nHost: t\r\n\r\n")
            resp = c.read_response()
            self.assertEqual(resp.status, 501, resp)
            self.assertTrue(c.is_closed(), "connection left open after 501")
        self.assertEqual(self.get(srv, "/hello/after").status, 200)


class TestConnections(HttpCase):
    def test_keepalive_100_sequential_requests(self):
        srv = self.start_server()
        with RawConnection(srv.port) as c:
            for i in range(100):
                if i % 2:
                    resp = c.request("POST", "/echo", b"body %d" % i,
                                     {"Content-Type": "text/plain"})
                    self.assertEqual((resp.status, resp.body), (200, b"body %d" % i))
                else:
                    resp = c.request("GET", "/hello/n%d" % i)
                    self.assert_json_response(resp, 200, {"message": "Hello, n%d!" % i})
                self.assertIsNone(resp.header("Connection"), resp)
            self.assertFalse(c.is_closed(timeout=0.1))

    def test_keepalive_sequence_helper(self):
        srv = self.start_server()
        resps = keepalive_sequence(srv.port, [("GET", "/hello/a", None),
                                              ("POST", "/echo", b"b"),
                                              ("GET", "/nope", None),
                                              ("POST", "/echo/json", b"[1]")])
        self.assertEqual([r.status for r in resps], [200, 200, 404, 200])
        self.assertEqual(resps[3].json(), [1])

    def test_pipelining_10_requests_in_one_write(self):
        srv = self.start_server()
        reqs = []
        for i in range(10):
            if i % 3 == 0:
                reqs.append(("POST", "/echo", b"\x00pipelined %d" % i))
            elif i % 3 == 1:
                reqs.append(("GET", "/hello/p%d" % i, None))
            else:
                reqs.append(("POST", "/echo/json", b'{"i": %d}' % i))
        resps = pipeline(srv.port, reqs)
        self.assertEqual(len(resps), 10)
        for i, resp in enumerate(resps):
            with self.subTest(i=i):
                self.assertEqual(resp.status, 200, resp)
                if i % 3 == 0:
                    self.assertEqual(resp.body, b"\x00pipelined %d" % i)
                elif i % 3 == 1:
                    self.assertEqual(resp.json(), {"message": "Hello, p%d!" % i})
                else:
                    self.assertEqual(resp.json(), {"i": i})

    def test_malformed_request_line_gets_error_and_server_stays_up(self):
        srv = self.start_server()
        for raw in (b"GARBAGE\r\n\r\n", b"GET\r\n\r\n", b"GET /hello/x HTTP/9.9\r\n\r\n",
                    b"GET /hello/x HTTP/1.1 extra\r\n\r\n", b"\x00\x01\x02 / HTTP/1.1\r\n\r\n"):
            with self.subTest(raw=raw):
                with RawConnection(srv.port) as c:
                    c.send(raw)
                    resp = c.read_response()
                    # a well-formed line of an HTTP version we do not speak is 505, not 4xx
                    self.assertEqual(resp.status // 100, 5 if b"HTTP/9.9" in raw else 4, resp)
                    self.assertTrue(c.is_closed(), "connection left open after %r" % raw)
                self.assert_json_response(self.get(srv, "/hello/ok"), 200,
                                          {"message": "Hello, ok!"})

    def test_connection_close_is_honoured(self):
        srv = self.start_server()
        with RawConnection(srv.port) as c:
            resp = c.request("GET", "/hello/bye", headers={"Connection": "close"})
            self.assert_json_response(resp, 200, {"message": "Hello, bye!"})
            self.assertEqual(resp.header("Connection"), "close")
            self.assertTrue(c.is_closed())

    def test_200_concurrent_connections(self):
        srv = self.start_server()
        conns = []
        try:
            # All connections are open at once before any request is sent.
            for _ in range(200):
                conns.append(RawConnection(srv.port))
            for i, c in enumerate(conns):
                c.send(build_request("GET", "/hello/c%d" % i))
            for i, c in enumerate(conns):
                resp = c.read_response()
                self.assert_json_response(resp, 200, {"message": "Hello, c%d!" % i})
        finally:
            for c in conns:
                c.close()

    def test_concurrent_clients_in_threads(self):
        srv = self.start_server()
        errors = []

        def client(n):
            try:
                with RawConnection(srv.port) as c:
                    for j in range(10):
                        body = b"%d-%d" % (n, j)
                        resp = c.request("POST", "/echo", body)
                        if resp.status != 200 or resp.body != body:
                            errors.append((n, j, resp))
            except Exception as e:  # reported below, with the thread's number
                errors.append((n, repr(e)))

        threads = [threading.Thread(target=client, args=(n,)) for n in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertFalse(any(t.is_alive() for t in threads), "client threads hung")
        self.assertEqual(errors, [])


class TestAccessLog(HttpCase):
    def test_access_lines_are_written(self):
        srv = self.start_server()
        self.assertEqual(self.get(srv, "/hello/world").status, 200)
        self.assertEqual(self.post(srv, "/echo?x=1&y=2", b"abc").status, 200)
        self.assertEqual(self.get(srv, "/nope").status, 404)
        self.assertTrue(srv.wait_log(r"access: GET /hello/world 200 27 \d+us req=\S+"),
                        "no access line for GET /hello/world")
        self.assertTrue(srv.wait_log(r"access: POST /echo\?x=1&y=2 200 3 \d+us req=\S+"))
        self.assertTrue(srv.wait_log(r"access: GET /nope 404 \d+ \d+us req=\S+"))

    def test_access_log_off(self):
        srv = self.start_server(access=False)
        self.assertEqual(self.get(srv, "/hello/world").status, 200)
        self.assertEqual(self.post(srv, "/echo", b"abc").status, 200)
        self.stop_server(srv)
        log = srv.log()
        self.assertIn("server: stopped", log)
        self.assertNotIn("access:", log)


if __name__ == "__main__":
    unittest.main()
