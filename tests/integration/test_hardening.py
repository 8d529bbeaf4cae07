"""The guard in front of evhttp (core/guard.c, core/http_scan.c), from a raw socket.

Every rule is checked with the exact bytes sent and the exact answer expected. A valid request
is pipelined after each one (PIPELINED) so that no rule can desynchronise the connection: after
a refusal exactly one response arrives (problem+json, Connection: close), the connection
closes and the pipelined request is never answered; after an accepted request the pipelined
one is answered as the second response. Each refusal also leaves an access-log line with
`refused=REASON (detail)`, and the server keeps answering other clients.

Slow clients (whole head and body deadlines, 408) and thousands of idle connections (caps,
503, file descriptors back to baseline) have their own servers further down.
"""

import os
import re
import resource
import select
import socket
import sys
import time
import unittest

from mhtest import (ECHO_CONF, HELLO_CONF, IO_TIMEOUT_S, ConfDir, RawConnection, Server,
                    ServerTestCase, build_request, sanitizer_lines, wait_until)

PROBLEM = "application/problem+json"
PIPELINED = b"GET /hello/p HTTP/1.1\r\nHost: a\r\n\r\n"
PIPELINED_BODY = b'{"message":"Hello, p!"}'

# Small limits, so that each one is cheap to reach.
LIMITS = {
    "max_request_line_bytes": 256,
    "max_headers": 8,
    "max_header_bytes": 1024,
    "max_body_bytes": 64,
}
REQUEST_LINE_MAX = LIMITS["max_request_line_bytes"]
HEADERS_MAX = LIMITS["max_headers"]
HEAD_MAX = LIMITS["max_header_bytes"]
BODY_MAX = LIMITS["max_body_bytes"]

# echo also serves a WebSocket endpoint, so that a failed handshake can be pipelined after.
ECHO_WS_CONF = ECHO_CONF.replace(
    "};\n", '  websockets = ( { path = "/ws"; on_message = "ws_echo"; } );\n};\n')
FILES = {"10-hello.conf": HELLO_CONF, "20-echo.conf": ECHO_WS_CONF}

CHUNKED_POST = b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"


def post_cl(body, *extra):
    """POST /echo with @body and a matching Content-Length, plus @extra header lines."""
    return (b"POST /echo HTTP/1.1\r\nHost: a\r\n" + b"".join(h + b"\r\n" for h in extra)
            + b"Content-Length: %d\r\n\r\n" % len(body) + body)


def get_with(*lines, target=b"/hello/x", version=b"HTTP/1.1"):
    """GET @target with exactly the header lines given (no Host unless given)."""
    return (b"GET " + target + b" " + version + b"\r\n" + b"".join(h + b"\r\n" for h in lines)
            + b"\r\n")


def request_line_of(length):
    """A GET /hello/aaa... request line of exactly @length bytes (without CRLF)."""
    fixed = len(b"GET /hello/ HTTP/1.1")
    return b"GET /hello/" + b"a" * (length - fixed) + b" HTTP/1.1"


def head_of(length):
    """A GET head of exactly @length bytes, CRLFs and the final empty line included."""
    start = b"GET /hello/h HTTP/1.1\r\nHost: a\r\n"
    pad = length - len(start) - len(b"X-Pad: \r\n\r\n")
    return start + b"X-Pad: " + b"p" * pad + b"\r\n\r\n"


# --- The refusals: (name, bytes, status, reason in the access log, detail) --------------------

REFUSALS = [
    # Host
    ("host_missing_http11", get_with(), 400, "host", "HTTP/1.1 requests need a Host header"),
    ("host_twice", get_with(b"Host: a", b"Host: a"), 400, "host", "Host given more than once"),
    ("host_with_space", get_with(b"Host: a b"), 400, "host", "invalid Host"),
    ("host_with_slash", get_with(b"Host: a/b"), 400, "host", "invalid Host"),
    ("host_bad_ipv6_literal", get_with(b"Host: [zz]"), 400, "host", "invalid Host"),
    ("host_empty", get_with(b"Host:"), 400, "host", "invalid Host"),
    # Transfer-Encoding
    ("te_gzip_chunked",
     b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
     b"5\r\nhello\r\n0\r\n\r\n",
     501, "coding", "transfer codings other than chunked are not implemented"),
    ("te_chunked_identity",
     b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n"
     b"5\r\nhello\r\n0\r\n\r\n",
     400, "framing", "chunked must be the final transfer coding"),
    ("te_chunked_twice",
     b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
     400, "framing", "chunked must be the final transfer coding"),
    ("te_chunked_http10",
     b"POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
     400, "framing", "Transfer-Encoding needs HTTP/1.1"),
    ("te_and_cl",
     b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n"
     b"\r\n5\r\nhello\r\n0\r\n\r\n",
     400, "framing", "both Content-Length and Transfer-Encoding"),
    ("cl_and_te",
     b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n"
     b"\r\n5\r\nhello\r\n0\r\n\r\n",
     400, "framing", "both Content-Length and Transfer-Encoding"),
    # Content-Length
    ("cl_two_different",
     b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
     400, "framing", "Content-Length given twice with different values"),
    ("cl_list", post_cl(b"hello!").replace(b"Content-Length: 6", b"Content-Length: 5, 6"),
     400, "framing", "Content-Length must be one decimal number"),
    ("cl_plus", post_cl(b"hello").replace(b"Content-Length: 5", b"Content-Length: +5"),
     400, "framing", "Content-Length must be one decimal number"),
    ("cl_negative", post_cl(b"").replace(b"Content-Length: 0", b"Content-Length: -1"),
     400, "framing", "Content-Length must be one decimal number"),
    ("cl_hex", post_cl(b"hello").replace(b"Content-Length: 5", b"Content-Length: 0x5"),
     400, "framing", "Content-Length must be one decimal number"),
    ("cl_empty", post_cl(b"").replace(b"Content-Length: 0", b"Content-Length:"),
     400, "framing", "empty Content-Length"),
    # Header syntax
    ("space_before_colon", get_with(b"Host : a"), 400, "header_syntax",
     "invalid character in a header name"),
    ("tab_before_colon", get_with(b"Host: a", b"X-A\t: 1"), 400, "header_syntax",
     "invalid character in a header name"),
    ("name_not_a_token", get_with(b"Host: a", b"X(y): 1"), 400, "header_syntax",
     "invalid character in a header name"),
    ("name_with_slash", get_with(b"Host: a", b"X/y: 1"), 400, "header_syntax",
     "invalid character in a header name"),
    ("line_without_colon", get_with(b"Host: a", b"X-A 1"), 400, "header_syntax",
     "header field without a name"),
    ("empty_name", get_with(b"Host: a", b": 1"), 400, "header_syntax",
     "header field without a name"),
    ("obs_fold", get_with(b"Host: a", b"X-A: 1", b"  folded"), 400, "header_syntax",
     "obsolete line folding in a header field"),
    ("obs_fold_tab", get_with(b"Host: a", b"X-A: 1", b"\tfolded"), 400, "header_syntax",
     "obsolete line folding in a header field"),
    ("nul_in_value", get_with(b"Host: a", b"X-A: a\x00b"), 400, "header_syntax",
     "control character in a header value"),
    ("ctl_in_value", get_with(b"Host: a", b"X-A: a\x01b"), 400, "header_syntax",
     "control character in a header value"),
    ("del_in_value", get_with(b"Host: a", b"X-A: a\x7fb"), 400, "header_syntax",
     "control character in a header value"),
    ("escape_in_host", get_with(b"Host: a\x1bb"), 400, "header_syntax",
     "control character in a header value"),
    ("bare_cr_in_value", get_with(b"Host: a", b"X-A: a\rb"), 400, "header_syntax",
     "bare CR in the request head"),
    ("bare_cr_line_end", b"GET /hello/x HTTP/1.1\r\nHost: a\rX-A: 1\r\n\r\n", 400,
     "header_syntax", "bare CR in the request head"),
    ("bare_cr_in_request_line", b"GET /hello/x\rHTTP/1.1\r\nHost: a\r\n\r\n", 400,
     "header_syntax", "bare CR in the request head"),
    # Request line
    ("double_space_before_target", b"GET  /hello/x HTTP/1.1\r\nHost: a\r\n\r\n", 400,
     "request_line", "malformed request target"),
    ("double_space_before_version", b"GET /hello/x  HTTP/1.1\r\nHost: a\r\n\r\n", 400,
     "request_line", "malformed HTTP version"),
    ("tab_separator", b"GET\t/hello/x HTTP/1.1\r\nHost: a\r\n\r\n", 400, "request_line",
     "malformed request line"),
    ("no_version", b"GET /hello/x\r\nHost: a\r\n\r\n", 400, "request_line",
     "malformed request target"),
    ("lower_case_version", b"GET /hello/x http/1.1\r\nHost: a\r\n\r\n", 400, "request_line",
     "malformed HTTP version"),
    ("empty_request_line", b"\r\nGET /hello/x HTTP/1.1\r\nHost: a\r\n\r\n", 400,
     "request_line", "empty request line"),
    ("http_2_0", b"GET /hello/x HTTP/2.0\r\nHost: a\r\n\r\n", 505, "version",
     "only HTTP/1.0 and HTTP/1.1 are supported"),
    ("http_9_9", b"GET /hello/x HTTP/9.9\r\nHost: a\r\n\r\n", 505, "version",
     "only HTTP/1.0 and HTTP/1.1 are supported"),
    ("unknown_method", b"BREW /hello/x HTTP/1.1\r\nHost: a\r\n\r\n", 501, "method",
     "this server does not serve that method"),
    ("lower_case_method", b"get /hello/x HTTP/1.1\r\nHost: a\r\n\r\n", 501, "method",
     "this server does not serve that method"),
    # Sizes
    ("request_line_too_long",
     request_line_of(REQUEST_LINE_MAX + 1) + b"\r\nHost: a\r\n\r\n", 414, "line_too_long",
     "request line too long"),
    ("request_line_too_long_unterminated",
     b"GET /" + b"a" * (REQUEST_LINE_MAX + 10), 414, "line_too_long", "request line too long"),
    ("too_many_headers",
     get_with(b"Host: a", *[b"X-%d: 1" % i for i in range(HEADERS_MAX)]), 431,
     "headers_too_big", "too many header fields"),
    ("head_too_big", head_of(HEAD_MAX + 1), 431, "headers_too_big",
     "request head larger than the limit"),
    ("head_too_big_unterminated",
     b"GET /hello/x HTTP/1.1\r\nHost: a\r\nX-Pad: " + b"p" * HEAD_MAX, 431, "headers_too_big",
     "request head larger than the limit"),
    ("body_too_big_cl", post_cl(b"b" * (BODY_MAX + 1)), 413, "body_too_big",
     "request body larger than the limit"),
    ("body_too_big_chunked",
     CHUNKED_POST + b"%x\r\n" % BODY_MAX + b"c" * BODY_MAX + b"\r\n1\r\nc\r\n0\r\n\r\n", 413,
     "body_too_big", "request body larger than the limit"),
    ("body_too_big_one_chunk",
     CHUNKED_POST + b"%x\r\n" % (BODY_MAX + 1) + b"c" * (BODY_MAX + 1) + b"\r\n0\r\n\r\n", 413,
     "body_too_big", "request body larger than the limit"),
    # Chunked bodies. A size of 16 hex digits or more is refused as too large before it is
    # read (http_scan.c: chunk_size), whatever its value.
    ("chunk_size_not_hex", CHUNKED_POST + b"zz\r\nhello\r\n0\r\n\r\n", 400, "chunk",
     "malformed chunk size"),
    ("chunk_size_negative", CHUNKED_POST + b"-5\r\nhello\r\n0\r\n\r\n", 400, "chunk",
     "malformed chunk size"),
    ("chunk_size_0x", CHUNKED_POST + b"0x5\r\nhello\r\n0\r\n\r\n", 400, "chunk",
     "malformed chunk size"),
    ("chunk_size_plus", CHUNKED_POST + b"+5\r\nhello\r\n0\r\n\r\n", 400, "chunk",
     "malformed chunk size"),
    ("chunk_size_leading_space", CHUNKED_POST + b" 5\r\nhello\r\n0\r\n\r\n", 400, "chunk",
     "malformed chunk size"),
    ("chunk_size_empty", CHUNKED_POST + b"\r\nhello\r\n0\r\n\r\n", 400, "chunk",
     "malformed chunk size"),
    ("chunk_size_junk_after", CHUNKED_POST + b"5 x\r\nhello\r\n0\r\n\r\n", 400, "chunk",
     "malformed chunk size"),
    ("chunk_size_bare_cr", CHUNKED_POST + b"5\r;a\r\nhello\r\n0\r\n\r\n", 400, "chunk",
     "bare CR in a chunk size line"),
    ("chunk_size_17_hex_digits", CHUNKED_POST + b"00000000000000005\r\nhello\r\n0\r\n\r\n",
     413, "body_too_big", "chunk larger than the body limit"),
    ("chunk_size_16_hex_digits", CHUNKED_POST + b"0000000000000005\r\nhello\r\n0\r\n\r\n",
     413, "body_too_big", "chunk larger than the body limit"),
    ("chunk_size_huge", CHUNKED_POST + b"ffffffffffffffffff\r\nhello\r\n0\r\n\r\n", 413,
     "body_too_big", "chunk larger than the body limit"),
    ("chunk_data_without_crlf", CHUNKED_POST + b"5\r\nhelloXY0\r\n\r\n", 400, "chunk",
     "chunk data not followed by CRLF"),
    ("chunk_data_with_bare_cr", CHUNKED_POST + b"5\r\nhello\r0\r\n\r\n", 400, "chunk",
     "chunk data not followed by CRLF"),
    ("chunk_data_too_long", CHUNKED_POST + b"3\r\nhello\r\n0\r\n\r\n", 400, "chunk",
     "chunk data not followed by CRLF"),
    ("trailer_content_length",
     CHUNKED_POST + b"5\r\nhello\r\n0\r\nContent-Length: 5\r\n\r\n", 400, "chunk",
     "framing or Host fields are not allowed in trailers"),
    ("trailer_transfer_encoding",
     CHUNKED_POST + b"5\r\nhello\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "chunk",
     "framing or Host fields are not allowed in trailers"),
    ("trailer_host", CHUNKED_POST + b"5\r\nhello\r\n0\r\nHost: b\r\n\r\n", 400, "chunk",
     "framing or Host fields are not allowed in trailers"),
    ("trailer_obs_fold", CHUNKED_POST + b"5\r\nhello\r\n0\r\nX-T: 1\r\n folded\r\n\r\n", 400,
     "header_syntax", "obsolete line folding in a header field"),
    # Bodies on methods that cannot have one
    ("head_with_body", b"HEAD /hello/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
     400, "framing", "HEAD and TRACE requests cannot have a body"),
    ("trace_with_body",
     b"TRACE /hello/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello", 400, "framing",
     "HEAD and TRACE requests cannot have a body"),
    ("head_with_chunked_body",
     b"HEAD /hello/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400,
     "framing", "HEAD and TRACE requests cannot have a body"),
]


class SharedServerCase(unittest.TestCase):
    """One server for a whole class: the rules share it, which also shows that it keeps
    answering after every refusal. Its log is printed when a test fails; sanitizer reports
    and a non-zero exit status fail the class."""

    maxDiff = None
    limits = LIMITS
    files = FILES

    @classmethod
    def setUpClass(cls):
        cls.conf = ConfDir(files=cls.files, limits=cls.limits)
        cls.srv = Server(cls.conf.path)
        try:
            cls.srv.start()
        except BaseException:
            cls.srv.cleanup()
            cls.conf.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            rc = cls.srv.stop()
            bad = sanitizer_lines(cls.srv.log())
            if rc != 0 or bad:
                raise AssertionError("modhost exited with status %s; sanitizer reports: %s\n"
                                     "--- server log ---\n%s" % (rc, bad, cls.srv.log()))
        finally:
            cls.srv.cleanup()
            cls.conf.cleanup()

    def run(self, result=None):
        if result is None:
            result = self.defaultTestResult()
        before = len(result.failures) + len(result.errors)
        try:
            return super().run(result)
        finally:
            if len(result.failures) + len(result.errors) > before:
                sys.stderr.write("\n--- modhost log (%s) ---\n%s--- end of log ---\n"
                                 % (self.id(), self.srv.log()))

    # --- helpers ---

    def connect(self, timeout=IO_TIMEOUT_S):
        return RawConnection(self.srv.port, timeout=timeout)

    def assert_problem(self, resp, status, detail):
        """problem+json with exactly type, title, status and a detail holding @detail."""
        self.assertEqual(resp.status, status, resp)
        self.assertEqual(resp.header("Content-Type"), PROBLEM, resp)
        self.assertEqual(resp.header("Content-Length"), str(len(resp.body)), resp)
        doc = resp.json()
        self.assertEqual(sorted(doc), ["detail", "status", "title", "type"], doc)
        self.assertEqual(doc["type"], "about:blank")
        self.assertEqual(doc["status"], status)
        self.assertEqual(doc["title"], resp.reason)
        self.assertIn(detail, doc["detail"])
        return doc

    def assert_pipelined_answer(self, c):
        resp = c.read_response()
        self.assertEqual((resp.status, resp.body), (200, PIPELINED_BODY), resp)
        return resp

    def assert_serving(self):
        with self.connect() as c:
            resp = c.request("GET", "/hello/ok")
            self.assertEqual((resp.status, resp.body), (200, b'{"message":"Hello, ok!"}'), resp)

    def assert_refused(self, data, status, reason, detail, pipeline=PIPELINED):
        """Sends @data with a valid request pipelined after it; exactly one response comes
        back, the refusal, and the connection closes. Returns the response."""
        mark = len(self.srv.log())
        with self.connect() as c:
            c.send(data + pipeline)
            resp = c.read_response()
            doc = self.assert_problem(resp, status, detail)
            self.assertEqual(resp.header("Connection"), "close", resp)
            self.assertTrue(c.is_closed(), "connection still open after a %d refusal" % status)
            self.assertEqual(c.pending(), b"", "bytes after the refusal (the pipelined request "
                                               "was answered as a request of its own)")
        rx = re.compile(r"access: - - %d %d 0us refused=%s \((.*)\)"
                        % (status, len(resp.body), re.escape(reason)))
        m = wait_until(lambda: rx.search(self.srv.log(), mark), IO_TIMEOUT_S)
        self.assertIsNotNone(m, "no access-log line with refused=%s" % reason)
        self.assertEqual(m.group(1), doc["detail"])
        self.assert_serving()
        return resp

    def exchange(self, data, method="GET"):
        """Sends @data + PIPELINED on one connection; returns the first response after checking
        that the pipelined request is answered as the second."""
        with self.connect() as c:
            c.send(data + PIPELINED)
            first = c.read_response(method)
            self.assert_pipelined_answer(c)
            self.assertEqual(c.pending(), b"", "bytes after the second response")
            return first


def _refusal_test(name, data, status, reason, detail):
    # An unterminated line must stay unterminated: no pipelined request (and its LF) after it.
    pipeline = b"" if name.endswith("_unterminated") else PIPELINED

    def test(self):
        self.assert_refused(data, status, reason, detail, pipeline)
    test.__doc__ = "%r -> %d refused=%s" % (data[:80], status, reason)
    return test


class TestRefusals(SharedServerCase):
    """One test per rule: exact bytes in, one problem+json out, the connection closed."""


for _name, _data, _status, _reason, _detail in REFUSALS:
    setattr(TestRefusals, "test_" + _name,
            _refusal_test(_name, _data, _status, _reason, _detail))


class TestRefusalDetails(SharedServerCase):
    def test_huge_content_length_is_413_before_any_100_continue(self):
        data = (b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775000\r\n"
                b"Expect: 100-continue\r\n\r\n")
        with self.connect() as c:
            c.send(data)
            first = c.read_head()  # a 100 Continue would come first
            self.assertEqual(first[1], 413, first)
        self.assert_refused(data, 413, "body_too_big", "request body larger than the limit")

    def test_content_length_beyond_uint64_is_413(self):
        self.assert_refused(
            post_cl(b"").replace(b"Content-Length: 0", b"Content-Length: " + b"9" * 40),
            413, "body_too_big", "request body larger than the limit")

    def test_refusal_arriving_byte_by_byte(self):
        """The scanner sees a head in pieces: the verdict does not depend on the split."""
        data = b"GET /hello/x HTTP/1.1\r\nHost: a\r\nX-A: a\x01b\r\n\r\n"
        with self.connect() as c:
            for i in range(len(data)):
                try:
                    c.send(data[i:i + 1])
                except OSError:
                    break
            resp = c.read_response()
            self.assert_problem(resp, 400, "control character in a header value")
            self.assertTrue(c.is_closed())

    def test_refusal_http10_keepalive(self):
        """An HTTP/1.0 client is refused the same way (the status line says HTTP/1.1)."""
        self.assert_refused(b"GET /hello/x HTTP/1.0\r\nConnection: keep-alive\r\nX(: 1\r\n\r\n",
                            400, "header_syntax", "invalid character in a header name")


class TestAccepted(SharedServerCase):
    """What the rules let through is served, and the pipelined request after it too."""

    def test_http10_without_host(self):
        resp = self.exchange(b"GET /hello/x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        self.assertEqual((resp.status, resp.body), (200, b'{"message":"Hello, x!"}'), resp)
        with self.connect() as c:  # without keep-alive: answered, then closed
            c.send(b"GET /hello/x HTTP/1.0\r\n\r\n" + PIPELINED)
            resp = c.read_response()
            self.assertEqual((resp.status, resp.body), (200, b'{"message":"Hello, x!"}'), resp)
            self.assertTrue(c.is_closed())

    def test_valid_host_forms(self):
        for host in (b"a", b"example.com:8080", b"127.0.0.1", b"[::1]", b"[::1]:80",
                     b"xn--bcher-kva.example", b"a_b~c%41"):
            with self.subTest(host=host):
                resp = self.exchange(get_with(b"Host: " + host))
                self.assertEqual(resp.status, 200, resp)

    def test_head_has_no_body_and_the_length_of_get(self):
        with self.connect() as c:
            get = c.request("GET", "/hello/x")
        self.assertEqual(get.status, 200)
        resp = self.exchange(b"HEAD /hello/x HTTP/1.1\r\nHost: a\r\n\r\n", method="HEAD")
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.header("Content-Length"), str(len(get.body)), resp)
        self.assertEqual(resp.body, b"")

    def test_head_with_content_length_zero(self):
        resp = self.exchange(b"HEAD /hello/x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
                             method="HEAD")
        self.assertEqual(resp.status, 200, resp)

    def test_same_content_length_twice(self):
        resp = self.exchange(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
                             b"Content-Length: 5\r\n\r\nhello")
        self.assertEqual((resp.status, resp.body), (200, b"hello"), resp)

    def test_content_length_with_leading_zeros_and_ows(self):
        resp = self.exchange(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length:  005 \r\n\r\n"
                             b"hello")
        self.assertEqual((resp.status, resp.body), (200, b"hello"), resp)

    def test_transfer_encoding_is_case_insensitive(self):
        resp = self.exchange(b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n"
                             b"\r\n5\r\nhello\r\n0\r\n\r\n")
        self.assertEqual((resp.status, resp.body), (200, b"hello"), resp)

    def test_chunk_extensions_are_ignored(self):
        resp = self.exchange(CHUNKED_POST + b"5;name=value\r\nhello\r\n"
                             b"6 ; a=b;c=\"d;e\"\r\n world\r\n0;last\r\n\r\n")
        self.assertEqual((resp.status, resp.body), (200, b"hello world"), resp)

    def test_chunk_size_with_15_hex_digits(self):
        resp = self.exchange(CHUNKED_POST + b"000000000000005\r\nhello\r\n0\r\n\r\n")
        self.assertEqual((resp.status, resp.body), (200, b"hello"), resp)

    def test_chunk_size_upper_case_hex_and_lf_only(self):
        body = b"x" * 0x1A
        resp = self.exchange(CHUNKED_POST + b"1A\n" + body + b"\n0\n\n")
        self.assertEqual((resp.status, resp.body), (200, body), resp)

    def test_valid_trailers(self):
        resp = self.exchange(CHUNKED_POST + b"5\r\nhello\r\n0\r\nX-Checksum: abc\r\n"
                             b"X-Other: 1\r\n\r\n")
        self.assertEqual((resp.status, resp.body), (200, b"hello"), resp)

    def test_get_delete_options_bodies_are_read_as_bodies(self):
        cases = ((b"GET", 200), (b"DELETE", 405), (b"OPTIONS", 204))
        for method, status in cases:
            with self.subTest(method=method):
                # The body looks like a request: it must not be answered as one.
                body = b"GET /hello/smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
                data = (method + b" /hello/x HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n"
                        % len(body) + body)
                resp = self.exchange(data)
                self.assertEqual(resp.status, status, resp)

    def test_get_with_chunked_body(self):
        resp = self.exchange(b"GET /hello/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked"
                             b"\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
        self.assertEqual(resp.status, 200, resp)

    def test_limits_are_inclusive(self):
        line = request_line_of(REQUEST_LINE_MAX)
        cases = {
            "request line": line + b"\r\nHost: a\r\n\r\n",
            "header count": get_with(b"Host: a", *[b"X-%d: 1" % i for i in range(HEADERS_MAX - 1)]),
            "head size": head_of(HEAD_MAX),
            "body": post_cl(b"b" * BODY_MAX),
            "chunked body": CHUNKED_POST + b"%x\r\n" % (BODY_MAX - 1) + b"c" * (BODY_MAX - 1)
                            + b"\r\n1\r\nc\r\n0\r\n\r\n",
        }
        for name, data in cases.items():
            with self.subTest(limit=name):
                resp = self.exchange(data)
                self.assertEqual(resp.status, 200, resp)

    def test_upgrade_to_a_plain_route_is_answered_and_scanning_resumes(self):
        upgrade = (b"GET /hello/x HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
                   b"Connection: Upgrade\r\n\r\n")
        resp = self.exchange(upgrade)
        self.assertEqual((resp.status, resp.body), (200, b'{"message":"Hello, x!"}'), resp)
        # What follows the answered upgrade request is scanned again: a bad request is refused.
        with self.connect() as c:
            c.send(upgrade + b"GET /hello/y HTTP/1.1\r\n\r\n" + PIPELINED)
            self.assertEqual(c.read_response().status, 200)
            resp = c.read_response()
            self.assert_problem(resp, 400, "HTTP/1.1 requests need a Host header")
            self.assertTrue(c.is_closed())
            self.assertEqual(c.pending(), b"")

    def test_failed_websocket_handshake_keeps_the_connection_in_sync(self):
        data = (b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"\r\n")
        resp = self.exchange(data)
        self.assertEqual(resp.status, 426, resp)

    def test_upgrade_with_a_body(self):
        data = (b"POST /echo HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nContent-Length: 5\r\n\r\n"
                b"hello")
        resp = self.exchange(data)
        self.assertEqual((resp.status, resp.body), (200, b"hello"), resp)


class TestRequestsPerConnection(SharedServerCase):
    limits = dict(LIMITS, max_requests_per_connection=3)

    def test_third_response_closes(self):
        with self.connect() as c:
            for i in range(3):
                resp = c.request("GET", "/hello/r%d" % i)
                self.assertEqual(resp.status, 200, resp)
                self.assertEqual(resp.header("Connection"), "close" if i == 2 else None, resp)
            self.assertTrue(c.is_closed(), "connection open after the third response")
            self.assertEqual(c.pending(), b"")

    def test_pipelined_fourth_is_not_answered(self):
        with self.connect() as c:
            c.send(b"".join(build_request("GET", "/hello/r%d" % i) for i in range(4)))
            for i in range(3):
                resp = c.read_response()
                self.assertEqual((resp.status, resp.body),
                                 (200, b'{"message":"Hello, r%d!"}' % i), resp)
            self.assertEqual(resp.header("Connection"), "close", resp)
            self.assertTrue(c.is_closed())
            self.assertEqual(c.pending(), b"")


# --- Slow clients ---------------------------------------------------------------------------

DEADLINE_MS = 1000
TRICKLE_S = 0.2
CLOSE_BOUND_S = 5.0  # a bound on how long a broken deadline may hold the test, not a speed test


class TestSlowClients(ServerTestCase):
    def start(self):
        return self.start_server(files=FILES, limits={"head_timeout_ms": DEADLINE_MS,
                                                      "body_timeout_ms": DEADLINE_MS})

    def trickle(self, srv, prefix, data):
        """Sends @prefix, then @data one byte every TRICKLE_S while a normal client is served
        on another connection; returns (seconds from the first byte to the close, response)."""
        c = RawConnection(srv.port)
        self.addCleanup(c.close)
        start = time.monotonic()
        c.send(prefix)
        served = 0
        for i in range(len(data)):
            readable, _, _ = select.select([c.sock], [], [], TRICKLE_S)
            if readable:
                break
            self.assertLess(time.monotonic() - start, CLOSE_BOUND_S, "no answer by the bound")
            try:
                c.send(data[i:i + 1])
            except OSError:
                break
            with RawConnection(srv.port) as other:
                resp = other.request("GET", "/hello/meanwhile")
                self.assertEqual(resp.status, 200, resp)
                served += 1
        else:
            self.fail("the whole request was sent slowly without a 408")
        resp = c.read_response()
        self.assertTrue(c.is_closed(CLOSE_BOUND_S))
        elapsed = time.monotonic() - start
        self.assertGreater(served, 0)
        return elapsed, resp

    def check_408(self, srv, resp, elapsed, detail):
        self.assertEqual(resp.status, 408, resp)
        self.assertEqual(resp.header("Content-Type"), PROBLEM)
        self.assertEqual(resp.header("Connection"), "close")
        self.assertEqual(resp.json()["detail"], detail)
        self.assertLess(elapsed, CLOSE_BOUND_S)
        self.assertGreaterEqual(elapsed, DEADLINE_MS / 1000.0 * 0.9, "answered before the deadline")
        self.assertIsNotNone(srv.wait_log(r"access: - - 408 \d+ 0us refused=timeout \(%s\)"
                                          % re.escape(detail)))

    def test_slow_head_is_408(self):
        srv = self.start()
        head = b"GET /hello/x HTTP/1.1\r\nHost: a\r\n" + b"X-Slow: " + b"s" * 100 + b"\r\n\r\n"
        elapsed, resp = self.trickle(srv, b"", head)
        self.check_408(srv, resp, elapsed, "the request head did not arrive in time")

    def test_slow_body_is_408(self):
        srv = self.start()
        body = b"b" * 100
        head = b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % len(body)
        elapsed, resp = self.trickle(srv, head, body)
        self.check_408(srv, resp, elapsed, "the request body did not arrive in time")

    def test_slow_chunked_body_is_408(self):
        srv = self.start()
        elapsed, resp = self.trickle(srv, CHUNKED_POST, b"1\r\nx\r\n" * 40 + b"0\r\n\r\n")
        self.check_408(srv, resp, elapsed, "the request body did not arrive in time")

    def test_silent_connection_is_408(self):
        srv = self.start()
        with RawConnection(srv.port) as c:
            start = time.monotonic()
            resp = c.read_response()
            self.assertTrue(c.is_closed(CLOSE_BOUND_S))
            self.check_408(srv, resp, time.monotonic() - start,
                           "the request head did not arrive in time")

    def test_idle_keepalive_connection_is_not_408(self):
        """Between requests no head deadline runs (keep-alive idle time applies instead)."""
        srv = self.start()
        with RawConnection(srv.port) as c:
            self.assertEqual(c.request("GET", "/hello/a").status, 200)
            self.assertFalse(c.is_closed(DEADLINE_MS / 1000.0 * 2))
            self.assertEqual(c.pending(), b"")
            self.assertEqual(c.request("GET", "/hello/b").status, 200)


# --- Many idle connections ------------------------------------------------------------------

IDLE_CONNECTIONS = 10000
PARTIAL_HEAD = b"GET /hello/x HTTP/1.1\r\nHo"


def open_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def local_ports():
    with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as f:
        low, high = (int(x) for x in f.read().split())
    return high - low + 1


def raise_nofile(need):
    """Raises RLIMIT_NOFILE (the server inherits it) up to the hard limit; False if too low."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < need:
        return False
    if soft == resource.RLIM_INFINITY or soft >= need:
        return True
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else need,
                                                hard))
    return True


class TestManyConnections(ServerTestCase):
    def setUp(self):
        super().setUp()
        need = IDLE_CONNECTIONS + 512  # in this process and in the server, each
        if not raise_nofile(need):
            self.skipTest("needs RLIMIT_NOFILE >= %d (hard limit %d)"
                          % (need, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
        if local_ports() < IDLE_CONNECTIONS + 2000:
            self.skipTest("ip_local_port_range has %d ports; %d connections need more"
                          % (local_ports(), IDLE_CONNECTIONS))
        self.socks = []
        self.addCleanup(self.close_all)

    def close_all(self):
        for s in self.socks:
            s.close()
        self.socks = []

    def open_idle(self, srv, n):
        """Opens @n connections; every other one sends a partial head. Returns them."""
        opened = []
        for i in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(IO_TIMEOUT_S)
            s.connect(("127.0.0.1", srv.port))
            if i % 2:
                s.sendall(PARTIAL_HEAD)
            opened.append(s)
            self.socks.append(s)
        return opened

    def wait_held(self, srv, baseline, n):
        """Waits until the server holds @n more connections than at @baseline: connect()
        returns once the kernel has the connection, before the server accepted it."""
        ok = wait_until(lambda: open_fds(srv.worker_pid) >= baseline + n, 30, 0.05)
        self.assertTrue(ok, "the server holds %d of %d connections"
                        % (open_fds(srv.worker_pid) - baseline, n))

    def wait_fds(self, srv, baseline):
        ok = wait_until(lambda: open_fds(srv.worker_pid) <= baseline, 30, 0.1)
        self.assertTrue(ok, "server holds %d fds, %d before" % (open_fds(srv.worker_pid), baseline))

    def test_ten_thousand_idle_connections(self):
        srv = self.start_server(files=FILES, limits={
            "max_connections": IDLE_CONNECTIONS + 1000,
            "max_connections_per_client": IDLE_CONNECTIONS + 1000,
            "head_timeout_ms": 120000})
        baseline = open_fds(srv.worker_pid)  # before any connection: none is half-closed
        self.open_idle(srv, IDLE_CONNECTIONS)
        self.wait_held(srv, baseline, IDLE_CONNECTIONS)
        with RawConnection(srv.port) as c:
            resp = c.request("GET", "/hello/busy")
            self.assertEqual((resp.status, resp.body), (200, b'{"message":"Hello, busy!"}'))
        self.close_all()
        self.wait_fds(srv, baseline)
        with RawConnection(srv.port) as c:
            self.assertEqual(c.request("GET", "/hello/after").status, 200)

    def test_connection_cap_is_503_until_others_close(self):
        cap = 1000
        srv = self.start_server(files=FILES, limits={
            "max_connections": cap, "max_connections_per_client": IDLE_CONNECTIONS,
            "head_timeout_ms": 120000})
        baseline = open_fds(srv.worker_pid)
        held = self.open_idle(srv, cap)
        self.wait_held(srv, baseline, cap)
        mark = len(srv.log())
        with RawConnection(srv.port) as c:
            c.send(build_request("GET", "/hello/x"))
            resp = c.read_response()
            self.assertEqual(resp.status, 503, resp)
            self.assertEqual(resp.header("Content-Type"), PROBLEM)
            self.assertEqual(resp.header("Connection"), "close")
            self.assertEqual(resp.json()["detail"], "too many connections to the server")
            self.assertTrue(c.is_closed())
        self.assertTrue(wait_until(lambda: "refused=connections (too many connections to the "
                                           "server)" in srv.log()[mark:], IO_TIMEOUT_S))
        for s in held[:10]:
            s.close()
        resp = wait_until(lambda: self.try_get(srv), 10, 0.05)
        self.assertEqual(resp.status, 200, resp)
        self.close_all()
        self.wait_fds(srv, baseline)

    def test_per_client_cap_is_503(self):
        srv = self.start_server(files=FILES, limits={"max_connections_per_client": 5})
        baseline = open_fds(srv.worker_pid)
        held = self.open_idle(srv, 5)
        self.wait_held(srv, baseline, 5)  # accepted (and counted) before the sixth connects
        with RawConnection(srv.port) as c:
            c.send(build_request("GET", "/hello/x"))
            resp = c.read_response()
            self.assertEqual(resp.status, 503, resp)
            self.assertEqual(resp.json()["detail"], "too many connections from this address")
            self.assertTrue(c.is_closed())
        held[0].close()
        resp = wait_until(lambda: self.try_get(srv), 10, 0.05)
        self.assertEqual(resp.status, 200, resp)

    @staticmethod
    def try_get(srv):
        """A GET on a new connection: the response if it is a 200, else None."""
        try:
            with RawConnection(srv.port, timeout=5) as c:
                resp = c.request("GET", "/hello/x")
                return resp if resp.status == 200 else None
        except OSError:
            return None


if __name__ == "__main__":
    unittest.main()
