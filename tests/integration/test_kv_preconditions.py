"""kv's preconditions at their edges: no version is a wildcard, and If-Match: * holds on an
existing key while others write it."""
import os
import threading
import unittest

from mhtest import RawConnection, ServerTestCase
from test_kv import kpath, kv_files, new_db_dir

UINT64_MAX_TAG = '"18446744073709551615"'


class TestKvBugs(ServerTestCase):
    def test_if_match_uint64_max_is_not_a_wildcard(self):
        for kind in ("sqlite", "memory"):
            srv = self.start_server(files=kv_files(kind, os.path.join(new_db_dir(self), "kv.db")))
            with RawConnection(srv.port) as c:
                self.assertEqual(c.request("PUT", kpath("x"), b"1").status, 201)
                # No record has this version: a precondition failure is the only right answer.
                self.assertEqual(c.request("PUT", kpath("x"), b"2",
                                           {"If-Match": UINT64_MAX_TAG}).status, 412, kind)
                self.assertEqual(c.request("PUT", kpath("new"), b"2",
                                           {"If-Match": UINT64_MAX_TAG}).status, 412, kind)
                self.assertEqual(c.request("DELETE", kpath("x"),
                                           headers={"If-Match": UINT64_MAX_TAG}).status, 412, kind)

    def test_if_match_star_never_fails_on_an_existing_key(self):
        srv = self.start_server(files=kv_files("sqlite", os.path.join(new_db_dir(self), "kv.db")),
                                extra="  workers = 4;")
        with RawConnection(srv.port) as c:
            self.assertEqual(c.request("PUT", kpath("s"), b"0").status, 201)
        stop = threading.Event()

        def churn():
            with RawConnection(srv.port) as c:
                while not stop.is_set():
                    c.request("PUT", kpath("s"), b"1")
        ts = [threading.Thread(target=churn) for _ in range(2)]
        for t in ts:
            t.start()
        try:
            with RawConnection(srv.port) as c:
                codes = [c.request("PUT", kpath("s"), b"2", {"If-Match": "*"}).status
                         for _ in range(100)]
        finally:
            stop.set()
            for t in ts:
                t.join()
        self.assertEqual(set(codes), {200}, "the key existed throughout: %r" % (
            {s: codes.count(s) for s in set(codes)},))


if __name__ == "__main__":
    unittest.main()
