"""Durability and compare-and-set over HTTP: acknowledged kv writes survive SIGKILL of the server
(SQLite store, synchronous = "full"), and If-Match read-modify-write loops from several clients
lose no update.
"""

import json
import os
import signal
import threading
import unittest
from urllib.parse import quote

from mhtest import (IO_TIMEOUT_S, STOP_TIMEOUT_S, ConnectionClosed, RawConnection,
                    ServerTestCase, wait_until)
from test_kv import etag_version, kpath, kv_files, new_db_dir

KEYS = 150          # distinct keys; later writes overwrite earlier ones
MIN_ACKED = 200     # acknowledged writes before the kill


class Writer(threading.Thread):
    """PUTs d0000.. on one keep-alive connection until the server dies or @stop is set,
    recording every acknowledged write; the one in flight when the connection drops is kept
    apart, since it may or may not have been committed."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.acked = {}        # key -> (body, version) of the last acknowledged write
        self.count = 0
        self.in_flight = None  # (key, body) sent but not acknowledged
        self.failure = None
        self.stop = threading.Event()

    def run(self):
        try:
            with RawConnection(self.port) as c:
                i = 0
                while not self.stop.is_set():
                    key = "d%04d" % (i % KEYS)
                    body = json.dumps({"i": i, "pad": "p" * (i % 50)}).encode()
                    self.in_flight = (key, body)
                    try:
                        resp = c.request("PUT", kpath(key), body)
                    except (ConnectionClosed, OSError):
                        return
                    expected = 201 if i < KEYS else 200
                    if resp.status != expected:
                        self.failure = "PUT %s -> %r, expected %d" % (key, resp, expected)
                        return
                    self.acked[key] = (body, etag_version(resp))
                    self.in_flight = None
                    self.count += 1
                    i += 1
        except Exception as e:  # reported by the test
            self.failure = repr(e)


class TestCrashDurability(ServerTestCase):
    def test_acknowledged_writes_survive_sigkill(self):
        db = os.path.join(new_db_dir(self), "kv.db")
        conf = self.make_conf(files=kv_files("sqlite", db))
        srv = self.start_server(conf=conf)

        writer = Writer(srv.port)
        writer.start()
        self.addCleanup(writer.stop.set)
        self.assertTrue(wait_until(lambda: writer.count >= MIN_ACKED or writer.failure
                                   or not writer.is_alive(), IO_TIMEOUT_S * 3),
                        "only %d writes acknowledged" % writer.count)
        self.assertIsNone(writer.failure)
        self.assertGreaterEqual(writer.count, MIN_ACKED)

        # SIGKILL while the writer keeps writing: no shutdown path runs.
        os.kill(srv.worker_pid, signal.SIGKILL)  # the worker that writes, then its master
        os.kill(srv.pid, signal.SIGKILL)
        self.assertEqual(srv.wait(STOP_TIMEOUT_S), -signal.SIGKILL)
        writer.join(IO_TIMEOUT_S)
        self.assertFalse(writer.is_alive(), "the writer did not notice the kill")
        self.assertIsNone(writer.failure)
        acked, in_flight = dict(writer.acked), writer.in_flight

        srv = self.start_server(conf=conf)
        with RawConnection(srv.port) as c:
            for key, (body, version) in sorted(acked.items()):
                resp = c.request("GET", kpath(key))
                if in_flight and key == in_flight[0]:
                    # Either the last acknowledged value or the unacknowledged one.
                    self.assertEqual(resp.status, 200, resp)
                    self.assertIn(resp.body, (body, in_flight[1]), key)
                    continue
                self.assertEqual(resp.status, 200, "acknowledged %s lost: %r" % (key, resp))
                self.assertEqual(resp.body, body, key)
                self.assertEqual(etag_version(resp), version, key)
            if in_flight and in_flight[0] not in acked:
                resp = c.request("GET", kpath(in_flight[0]))
                self.assertIn(resp.status, (200, 404), resp)
                if resp.status == 200:
                    self.assertEqual(resp.body, in_flight[1])

            # Versions keep increasing across the crash.
            top = max(v for _, v in acked.values())
            resp = c.request("PUT", kpath("after-crash"), b"true")
            self.assertEqual(resp.status, 201, resp)
            self.assertGreater(etag_version(resp), top)

            # Every acknowledged key is listed, in order.
            listed, cursor = [], None
            while True:
                target = "/kv?prefix=d&limit=100"
                if cursor:
                    target += "&cursor=" + quote(cursor, safe="")
                doc = c.request("GET", target).json()
                listed += doc["keys"]
                cursor = doc["next_cursor"]
                if cursor is None:
                    break
            self.assertTrue(set(acked) <= set(listed), sorted(set(acked) - set(listed)))
            self.assertEqual(listed, sorted(listed))


class CounterClient(threading.Thread):
    """Adds 1 to the JSON number at /kv/counter @n times: GET, then PUT with If-Match, retrying
    the read on 412."""

    def __init__(self, port, n):
        super().__init__(daemon=True)
        self.port, self.n = port, n
        self.done = 0
        self.conflicts = 0
        self.failure = None

    def run(self):
        try:
            with RawConnection(self.port) as c:
                while self.done < self.n:
                    resp = c.request("GET", kpath("counter"))
                    if resp.status != 200:
                        self.failure = "GET -> %r" % resp
                        return
                    value = resp.json()
                    resp = c.request("PUT", kpath("counter"), json.dumps(value + 1),
                                     {"If-Match": resp.header("ETag")})
                    if resp.status == 200:
                        self.done += 1
                    elif resp.status == 412:
                        self.conflicts += 1
                    else:
                        self.failure = "PUT -> %r" % resp
                        return
        except Exception as e:  # reported by the test
            self.failure = repr(e)


class TestNoLostUpdate(ServerTestCase):
    CLIENTS = 4
    EACH = 25

    def check_counter(self, files):
        srv = self.start_server(files=files, extra="  workers = 4;")
        with RawConnection(srv.port) as c:
            self.assertEqual(c.request("PUT", kpath("counter"), b"0").status, 201)
        clients = [CounterClient(srv.port, self.EACH) for _ in range(self.CLIENTS)]
        for t in clients:
            t.start()
        for t in clients:
            t.join(IO_TIMEOUT_S * 6)
            self.assertFalse(t.is_alive(), "a counter client hangs")
            self.assertIsNone(t.failure)
        with RawConnection(srv.port) as c:
            resp = c.request("GET", kpath("counter"))
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.json(), sum(t.done for t in clients),
                         "conflicts seen: %d" % sum(t.conflicts for t in clients))
        self.assertEqual(resp.json(), self.CLIENTS * self.EACH)

    def test_if_match_increments_sqlite(self):
        self.check_counter(kv_files("sqlite", os.path.join(new_db_dir(self), "kv.db")))

    def test_if_match_increments_memory(self):
        self.check_counter(kv_files("memory"))


if __name__ == "__main__":
    unittest.main()
