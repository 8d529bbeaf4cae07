"""The worker pool seen over HTTP, with POST /hash (PBKDF2 on the pool) as the slow job: a full
queue answers 503 with Retry-After while loop-thread routes keep answering, a route deadline
answers 504 without disturbing the connection, a client that leaves is logged as 499 and its
queued request never runs. Also the hash API's validation and its digests against hashlib.

Slow jobs are sized from how fast the server under test runs PBKDF2 (sanitizer builds are
slower), so that one takes about SLOW_S seconds; nothing asserts a duration.
"""

import hashlib
import json
import re
import threading
import time
import unittest

from mhtest import (HELLO_CONF, IO_TIMEOUT_S, ConnectionClosed, RawConnection, ServerTestCase,
                    build_request, wait_until)
from test_kv import KV_ROUTES, module_text, store_text

SLOW_S = 1.0
MAX_ITERATIONS = 100000000
_rate = None


def slow_iterations(srv, seconds=SLOW_S):
    """An iteration count that takes @srv about @seconds (measured once, on an idle pool)."""
    global _rate
    if _rate is None:
        n = 200000
        with RawConnection(srv.port) as c:
            t0 = time.monotonic()
            resp = c.request("POST", "/hash", hash_body(iterations=n))
            elapsed = time.monotonic() - t0
        if resp.status != 200:
            raise AssertionError("calibration request failed: %r" % resp)
        _rate = n / max(elapsed, 1e-3)
    return max(10000, min(MAX_ITERATIONS, int(_rate * seconds)))


def pbkdf2_hex(password, salt, iterations, length=32):
    return hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt.encode("utf-8"),
                               iterations, length).hex()


def hash_body(password="pw", salt="salt", iterations=1000, **extra):
    doc = {"password": password, "salt": salt, "iterations": iterations}
    doc.update(extra)
    return json.dumps(doc).encode()


def pool_files(hash_settings=None, with_kv=False):
    """hash and hello: POST /hash and /hash/slow (the slow jobs) with a long deadline,
    POST /hash/short with 100 ms. With @with_kv also kv over a memory store, plus
    PUT /kvshort/{key} with a 100 ms deadline."""
    settings = {"max_iterations": MAX_ITERATIONS}
    settings.update(hash_settings or {})
    files = {"10-hello.conf": HELLO_CONF,
             "30-hash.conf": module_text("hash", "hash.so",
                                         [("POST", "/hash", "hash", 60000),
                                          ("POST", "/hash/slow", "hash", 60000),
                                          ("POST", "/hash/short", "hash", 100)], settings)}
    if with_kv:
        files["05-stores.conf"] = store_text("memory")
        files["40-kv.conf"] = module_text(
            "kv", "kv.so", KV_ROUTES + (("PUT", "/kvshort/{key}", "put", 100),),
            stores=["main"])
    return files


def pool_extra(workers, queue):
    return "  workers = %d;\n  worker_queue = %d;" % (workers, queue)


class Pending(threading.Thread):
    """One request on its own connection, answered in the background."""

    def __init__(self, port, method, target, body=None):
        super().__init__(daemon=True)
        self.conn = RawConnection(port, timeout=IO_TIMEOUT_S * 3)
        self.method, self.target, self.body = method, target, body
        self.resp = None
        self.error = None

    def run(self):
        try:
            self.resp = self.conn.request(self.method, self.target, self.body)
        except (ConnectionClosed, OSError) as e:
            self.error = e
        finally:
            self.conn.close()

    def result(self, test):
        self.join(IO_TIMEOUT_S * 3)
        test.assertFalse(self.is_alive(), "no answer to %s %s" % (self.method, self.target))
        test.assertIsNone(self.error)
        return self.resp


class PoolTestCase(ServerTestCase):
    def assert_problem(self, resp, status):
        self.assertEqual(resp.status, status, resp)
        self.assertEqual(resp.header("Content-Type"), "application/problem+json", resp)
        doc = resp.json()
        self.assertEqual(doc["status"], status, doc)
        return doc

    def assert_digest(self, resp, password, salt, iterations, length=32):
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.header("Content-Type"), "application/json", resp)
        self.assertEqual(resp.json(), {"algorithm": "pbkdf2-sha256", "iterations": iterations,
                                       "length": length,
                                       "digest": pbkdf2_hex(password, salt, iterations, length)})

    def hello(self, srv, conn=None):
        """GET /hello/x on @conn or a new connection; asserts its answer."""
        if conn is None:
            with RawConnection(srv.port) as c:
                return self.hello(srv, c)
        resp = conn.request("GET", "/hello/x")
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.json(), {"message": "Hello, x!"})
        return resp


class TestSaturation(PoolTestCase):
    def test_full_queue_is_503_and_loop_routes_still_answer(self):
        srv = self.start_server(files=pool_files(), threads=2, extra=pool_extra(1, 1))
        n = slow_iterations(srv)
        clients = [Pending(srv.port, "POST", "/hash/slow", hash_body("p%d" % i, "s", n))
                   for i in range(6)]
        for c in clients:
            c.start()
        # One worker and one queue slot: at most two are accepted, so at least four are
        # refused at once. Wait for those, then ask a loop-thread route while the pool is busy.
        self.assertTrue(wait_until(lambda: sum(c.resp is not None for c in clients) >= 4,
                                   IO_TIMEOUT_S), "the refusals did not come")
        self.hello(srv)

        results = [c.result(self) for c in clients]
        refused = [r for r in results if r.status == 503]
        done = [(i, r) for i, r in enumerate(results) if r.status == 200]
        self.assertEqual(len(refused) + len(done), len(results), results)
        self.assertGreaterEqual(len(refused), 4, results)
        self.assertGreaterEqual(len(done), 1, results)
        for r in refused:
            self.assert_problem(r, 503)
            self.assertEqual(r.header("Retry-After"), "1", r)
        for i, r in done:
            self.assert_digest(r, "p%d" % i, "s", n)
        self.assertTrue(srv.wait_log(
            r"warn\s+hash: worker pool queue full: refusing POST /hash/slow req=\S+"))
        self.assertEqual(len(srv.wait_log_count(r"access: POST /hash/slow 503 ", len(refused))),
                         len(refused))

        # The load is over: the pool takes work again.
        with RawConnection(srv.port) as c:
            self.assert_digest(c.request("POST", "/hash", hash_body(iterations=10)),
                               "pw", "salt", 10)


class TestDeadline(PoolTestCase):
    def test_504_then_the_connection_carries_on(self):
        srv = self.start_server(files=pool_files(), threads=2, extra=pool_extra(1, 1))
        n = slow_iterations(srv)
        with RawConnection(srv.port) as c:
            resp = c.request("POST", "/hash/short", hash_body("late", "s", n))
            doc = self.assert_problem(resp, 504)
            self.assertIn("100 ms", doc["detail"])
            # The timed-out handler is still running; this one waits behind it on the single
            # worker, so the late digest is computed while this connection waits for its own.
            self.assert_digest(c.request("POST", "/hash", hash_body("own", "s2", 7)),
                               "own", "s2", 7)
            self.hello(srv, c)
            self.assert_digest(c.request("POST", "/hash", hash_body("again", "s3", 3, length=5)),
                               "again", "s3", 3, 5)
            self.assertEqual(c.pending(), b"")
        self.assertTrue(srv.wait_log(r"access: POST /hash/short 504 "))
        self.assertIsNone(re.search(r"access: POST /hash/short 200 ", srv.log()))
        self.stop_server(srv)  # exit status 0 and no sanitizer report

    def test_queued_request_past_its_deadline_never_runs(self):
        srv = self.start_server(files=pool_files(with_kv=True), threads=1,
                                extra=pool_extra(1, 1))
        n = slow_iterations(srv)
        with RawConnection(srv.port) as ctl, RawConnection(srv.port) as busy:
            busy.send(build_request("POST", "/hash/slow", hash_body("busy", "s", n)))
            self.hello(srv, ctl)  # the slow job has been read
            with RawConnection(srv.port) as late:
                # Until the worker has taken the slow job off the queue, the queue (of one) is
                # full and the PUT is refused (503, nothing queued): ask again until it queues.
                resp = late.request("PUT", "/kvshort/late", b'"too late"')
                deadline = time.monotonic() + IO_TIMEOUT_S  # a slow (sanitizer) build is slow
                while resp.status == 503 and time.monotonic() < deadline:
                    time.sleep(0.01)  # pace the retries; the verdict comes from the answer
                    resp = late.request("PUT", "/kvshort/late", b'"too late"')
                self.assert_problem(resp, 504)
                slow_done = re.search(r"access: POST /hash/slow \d{3} ", srv.log())
                self.assert_digest(busy.read_response("POST"), "busy", "s", n)
                # The worker is free: the same connection gets its own answer.
                resp = late.request("PUT", "/kvshort/on-time", b'"fine"')
                self.assertEqual(resp.status, 201, resp)
            if slow_done:
                self.skipTest("the slow job ended before the deadline: no verdict")
            # FIFO with one worker: this GET runs after the timed-out PUT was taken off the queue.
            self.assert_problem(ctl.request("GET", "/kv/late"), 404)
            resp = ctl.request("GET", "/kv/on-time")
            self.assertEqual((resp.status, resp.body), (200, b'"fine"'), resp)
        self.stop_server(srv)

    def test_504_on_pipelined_requests_keeps_order(self):
        srv = self.start_server(files=pool_files(), threads=2, extra=pool_extra(1, 1))
        n = slow_iterations(srv, SLOW_S / 2)
        with RawConnection(srv.port) as c:
            c.send(build_request("POST", "/hash/short", hash_body("late", "s", n)) +
                   build_request("GET", "/hello/x") +
                   build_request("POST", "/hash", hash_body("own", "s2", 9)))
            self.assert_problem(c.read_response("POST"), 504)
            resp = c.read_response("GET")
            self.assertEqual((resp.status, resp.json()), (200, {"message": "Hello, x!"}), resp)
            self.assert_digest(c.read_response("POST"), "own", "s2", 9)
        self.stop_server(srv)


class TestClientGone(PoolTestCase):
    """threads = 1, so that an answer on one connection proves the loop has read what was
    sent before it on another (one loop polls them all)."""

    def test_running_request_whose_client_left_is_499(self):
        srv = self.start_server(files=pool_files(), threads=1, extra=pool_extra(1, 1))
        n = slow_iterations(srv)
        gone = RawConnection(srv.port)
        gone.send(build_request("POST", "/hash/slow", hash_body("bye", "s", n)))
        with RawConnection(srv.port) as c:
            self.hello(srv, c)  # the slow request has been read and handed to the pool
            gone.close()
            self.assertTrue(srv.wait_log(r"access: POST /hash/slow 499 0 "), "no 499 logged")
            self.hello(srv, c)
            # The worker frees up once the abandoned job ends; then the pool answers again.
            self.assert_digest(c.request("POST", "/hash", hash_body(iterations=2)),
                               "pw", "salt", 2)
        self.stop_server(srv)  # every buffered access line is written by now
        # The abandoned request left its 499 and nothing else.
        self.assertEqual(re.findall(r"access: POST /hash/slow (\d{3}) ", srv.log()), ["499"])

    def test_queued_request_whose_client_left_never_runs(self):
        for attempt, seconds in enumerate((SLOW_S, SLOW_S * 3, SLOW_S * 6)):
            # queue of 3: the slow job may still wait there when the two PUTs arrive
            srv = self.start_server(files=pool_files(with_kv=True), threads=1,
                                    extra=pool_extra(1, 3))
            outcome = self.queued_scenario(srv, slow_iterations(srv, seconds), attempt)
            self.stop_server(srv)
            if outcome:
                return
        self.fail("the blocking job always finished before the queued client's close was seen")

    def queued_scenario(self, srv, n, attempt):
        """@return False when the slow job ended before the close was noticed (no verdict)."""
        gone_key, kept_key = "gone-%d" % attempt, "kept-%d" % attempt
        with RawConnection(srv.port) as ctl, RawConnection(srv.port) as busy, \
                RawConnection(srv.port) as kept:
            # Each hello proves that what was sent before it has been read: first the slow job
            # (now on the worker), then two PUTs queued behind it.
            busy.send(build_request("POST", "/hash/slow", hash_body("busy", "s", n)))
            self.hello(srv, ctl)
            gone = RawConnection(srv.port)
            gone.send(build_request("PUT", "/kv/" + gone_key, b'"should not be stored"'))
            kept.send(build_request("PUT", "/kv/" + kept_key, b'"stored"'))
            self.hello(srv, ctl)
            gone.close()
            seen = srv.wait_log(r"access: PUT /kv/%s 499 " % gone_key)
            slow_done = re.search(r"access: POST /hash/slow \d{3} ", srv.log())
            if not seen and slow_done:
                # The worker freed up before the close was noticed: the queued PUT ran
                # legitimately. No verdict; the caller retries with a slower job.
                busy.read_response("POST")
                kept.read_response("PUT")
                return False
            self.assertTrue(seen, "no 499 for the queued request")

            self.assert_digest(busy.read_response("POST"), "busy", "s", n)
            resp = kept.read_response("PUT")
            self.assertEqual(resp.status, 201, resp)
            if slow_done:
                return False
            # The queued PUT whose client left was skipped; the one after it ran.
            self.assert_problem(ctl.request("GET", "/kv/" + gone_key), 404)
            resp = ctl.request("GET", "/kv/" + kept_key)
            self.assertEqual((resp.status, resp.body), (200, b'"stored"'), resp)
            self.assertIsNone(re.search(r"access: PUT /kv/%s 2\d\d " % gone_key, srv.log()))
            self.hello(srv, ctl)
        return True


class TestHashApi(PoolTestCase):
    """Validation and results of POST /hash, on a server with small limits."""

    def setUp(self):
        super().setUp()
        self.srv = self.start_server(files=pool_files({"max_iterations": 5000,
                                                       "max_input_bytes": 16}))
        self.conn = RawConnection(self.srv.port)
        self.addCleanup(self.conn.close)

    def post(self, body):
        return self.conn.request("POST", "/hash", body)

    def test_digests_match_hashlib(self):
        cases = [("password", "salt", 1, None), ("password", "salt", 4096, None),
                 ("", "", 1, None), ("p\u00e4ss w\u00f6rd", "\u65e5\u672c", 100, 64),
                 ("a\u0000b", "s\u0000", 3, 20), ("x", "y", 5000, 1), ("k" * 16, "z" * 16, 2, 33)]
        for password, salt, iterations, length in cases:
            with self.subTest(password=password, iterations=iterations, length=length):
                extra = {} if length is None else {"length": length}
                resp = self.post(hash_body(password, salt, iterations, **extra))
                self.assert_digest(resp, password, salt, iterations, length or 32)
        # RFC 7914's PBKDF2-HMAC-SHA256 vector, independent of hashlib.
        resp = self.post(hash_body("passwd", "salt", 1, length=64))
        self.assertEqual(resp.json()["digest"],
                         "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
                         "49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783")

    def test_iterations_over_the_limit_name_it(self):
        for iterations in (5001, 10 ** 9, 2 ** 63 - 1, 10 ** 20):
            with self.subTest(iterations=iterations):
                doc = self.assert_problem(self.post(hash_body(iterations=iterations)), 400)
                self.assertIn("5000", doc["detail"])
                self.assertIn("iterations", doc["detail"])

    def test_bad_fields_are_400(self):
        bodies = [
            b"{}", b"[]", b'"password"', b"null", b"not json", b"", b'{"password": "a"',
            hash_body(iterations=0), hash_body(iterations=-1), hash_body(iterations=1.5),
            hash_body(iterations="10"), hash_body(iterations=True), hash_body(iterations=None),
            json.dumps({"salt": "s", "iterations": 1}).encode(),
            json.dumps({"password": "p", "iterations": 1}).encode(),
            json.dumps({"password": "p", "salt": "s"}).encode(),
            hash_body(password=5), hash_body(salt=["s"]), hash_body(password=None),
            hash_body(length=0), hash_body(length=65), hash_body(length="32"),
            hash_body(length=-1), hash_body(length=2.0),
            hash_body(password="p" * 17), hash_body(salt="s" * 17),
        ]
        for body in bodies:
            with self.subTest(body=body):
                doc = self.assert_problem(self.post(body), 400)
                self.assertTrue(doc.get("detail"), doc)
        self.assert_digest(self.post(hash_body()), "pw", "salt", 1000)


if __name__ == "__main__":
    unittest.main()
