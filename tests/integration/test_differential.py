"""The engine against the answers the docs promise: 200 raw request sequences (valid,
pipelined, split at random points or at every byte, malformed) sent to the real binary; each
answer's status, the headers that matter, the body, and whether the connection stays open are
compared with what docs/http.md and the modules' contracts say. The sequences come from a fixed
seed, so a failure names a sequence that can be replayed."""
import json
import random
import unittest

from mhtest import RawConnection, ServerTestCase

HELLO = b'{"message":"Hello, x!"}'


def hello(version=b"HTTP/1.1", extra=b""):
    host = b"Host: a\r\n" if version == b"HTTP/1.1" else b""
    return b"GET /hello/x " + version + b"\r\n" + host + extra + b"\r\n"


# Each atom: (bytes, method, expected status, expected body or None, headers, closes after).
VALID = [
    (hello(), "GET", 200, HELLO, {"Content-Type": "application/json"}, False),
    (b"HEAD /hello/x HTTP/1.1\r\nHost: a\r\n\r\n", "HEAD", 200, b"",
     {"Content-Length": str(len(HELLO))}, False),
    (b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nabc",
     "POST", 200, b"abc", {"Content-Type": "text/plain"}, False),
    (b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
     "POST", 200, b"hello world", {}, False),
    (b"POST /echo/json HTTP/1.1\r\nHost: a\r\nContent-Length: 13\r\n\r\n{ \"a\" : [1] }",
     "POST", 200, b'{"a":[1]}', {"Content-Type": "application/json"}, False),
    (b"OPTIONS /hello/x HTTP/1.1\r\nHost: a\r\n\r\n", "OPTIONS", 204, b"", {"Allow": None},
     False),
    (b"GET /nope HTTP/1.1\r\nHost: a\r\n\r\n", "GET", 404, None,
     {"Content-Type": "application/problem+json"}, False),
    (b"DELETE /hello/x HTTP/1.1\r\nHost: a\r\n\r\n", "DELETE", 405, None, {"Allow": None}, False),
    (b"GET http://a/hello/x HTTP/1.1\r\nHost: a\r\n\r\n", "GET", 200, HELLO, {}, False),
    (b"GET /hello/x%2Fy HTTP/1.1\r\nHost: a\r\n\r\n", "GET", 200, b'{"message":"Hello, x/y!"}',
     {}, False),
    (hello(b"HTTP/1.0", b"Connection: keep-alive\r\n"), "GET", 200, HELLO,
     {"Connection": "keep-alive"}, False),
]
CLOSING = [
    (hello(b"HTTP/1.0"), "GET", 200, HELLO, {}, True),
    (hello(extra=b"Connection: close\r\n"), "GET", 200, HELLO, {"Connection": "close"}, True),
]
MALFORMED = [
    (b"GET /hello/x HTTP/1.1\r\n\r\n", 400),
    (b"GET /hello/x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    (b"GET /hello/x HTTP/2.0\r\nHost: a\r\n\r\n", 505),
    (b"BREW /hello/x HTTP/1.1\r\nHost: a\r\n\r\n", 501),
    (b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
     400),
    (b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    (b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc", 400),
    (b"GET /hello/x HTTP/1.1\r\nHost : a\r\n\r\n", 400),
    (b"GET /hello/x HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400),
    (b"HEAD /hello/x HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx", 400),
    (b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
    (b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999\r\n\r\n", 413),
    (b"POST /echo HTTP/1.1\r\nHost: a\r\nExpect: lunch\r\nContent-Length: 1\r\n\r\nx", 417),
]
END = (hello(), "GET", 200, HELLO, {}, False)  # proves the connection is open and in step


def sequences(count=200, seed=20261202):
    rng = random.Random(seed)
    out = []
    for i in range(count):
        atoms = [rng.choice(VALID) for _ in range(rng.randint(0, 3))]
        tail = rng.random()
        if tail < 0.3:
            bad, status = rng.choice(MALFORMED)
            atoms.append((bad + rng.choice([b"", hello()]), None, status, None,
                          {"Content-Type": "application/problem+json", "Connection": "close"},
                          True))
        elif tail < 0.45:
            atoms.append(rng.choice(CLOSING))
        else:
            atoms.append(END)
        split = rng.choice(["one write", "random", "every byte"] if i % 10 == 0
                           else ["one write", "random"])
        out.append((i, atoms, split))
    return out


def pieces(data, split, rng):
    if split == "one write":
        return [data]
    if split == "every byte":
        return [data[k:k + 1] for k in range(len(data))]
    cuts = sorted(rng.sample(range(1, len(data)), min(4, len(data) - 1)))
    return [data[a:b] for a, b in zip([0] + cuts, cuts + [len(data)])]


class TestDifferential(ServerTestCase):
    def test_200_sequences_get_the_documented_answers(self):
        srv = self.start_server(limits={"max_body_bytes": 4096})
        rng = random.Random(7)
        for i, atoms, split in sequences():
            data = b"".join(a[0] for a in atoms)
            with self.subTest(sequence=i, split=split), RawConnection(srv.port) as c:
                for piece in pieces(data, split, rng):
                    c.send(piece)
                for raw, method, status, body, headers, closes in atoms:
                    resp = c.read_response(method or "GET")
                    self.assertEqual(resp.status, status, (raw, resp))
                    if body is not None:
                        if headers.get("Content-Type") == "application/json" and body.startswith(b"{"):
                            self.assertEqual(json.loads(resp.body), json.loads(body), raw)
                        else:
                            self.assertEqual(resp.body, body, raw)
                    if status >= 400:
                        doc = json.loads(resp.body)
                        self.assertEqual(doc["status"], status, raw)
                    for name, value in headers.items():
                        got = resp.header(name)
                        self.assertIsNotNone(got, (name, raw, resp))
                        if value is not None:
                            self.assertEqual(got, value, (name, raw, resp))
                    if closes:
                        self.assertTrue(c.is_closed(), "connection left open after %r" % raw)
                        self.assertEqual(c.pending(), b"", "bytes after a closing answer")
                        break
        self.stop_server(srv)


if __name__ == "__main__":
    unittest.main()
