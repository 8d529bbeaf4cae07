"""The kv module end to end over HTTP, once over the SQLite store and once over the memory store.

Covers versions and ETags, If-Match / If-None-Match, DELETE, paging with cursors, key and value
limits and key encoding. The configuration helpers at the top are shared with test_durability.py
and test_pool.py (import the functions, never the test classes).
"""

import json
import os
import tempfile
import shutil
import unittest
from urllib.parse import quote

from mhtest import HELLO_CONF, RawConnection, ServerTestCase, _conf_value

# --- Configuration helpers ------------------------------------------------------------------


def module_text(name, file=None, routes=(), settings=None, stores=None):
    """A module file. @routes holds (method, path, handler) or (method, path, handler,
    timeout_ms) tuples; @stores lists store names."""
    lines = ["module: {", "  name = %s;" % _conf_value(name)]
    if file is not None:
        lines.append("  file = %s;" % _conf_value(file))
    if stores is not None:
        lines.append("  stores = [%s];" % ", ".join(_conf_value(s) for s in stores))
    if settings:
        body = " ".join("%s = %s;" % (k, _conf_value(v)) for k, v in settings.items())
        lines.append("  settings: { %s };" % body)
    if routes:
        entries = []
        for r in routes:
            text = "method = %s; path = %s; handler = %s;" % tuple(_conf_value(x) for x in r[:3])
            if len(r) > 3:
                text += " timeout_ms = %s;" % _conf_value(r[3])
            entries.append("    { %s }" % text)
        lines += ["  routes = (", ",\n".join(entries), "  );"]
    lines.append("};")
    return "\n".join(lines) + "\n"


def store_text(kind, db_path=None, synchronous="full"):
    """The driver module plus one store named "main": kind "sqlite" (at @db_path) or "memory"."""
    if kind == "sqlite":
        settings = "path = %s; synchronous = %s;" % (_conf_value(db_path),
                                                      _conf_value(synchronous))
        driver = module_text("store_sqlite", "store_sqlite.so")
    elif kind == "memory":
        settings = ""
        driver = module_text("store_memory", "store_memory.so")
    else:
        raise ValueError(kind)
    return driver + ('stores = (\n  { name = "main"; driver = %s; settings: { %s }; }\n);\n'
                     % (_conf_value(kind), settings))


KV_ROUTES = (("GET", "/kv", "list", 10000), ("GET", "/kv/{key}", "get", 10000),
             ("PUT", "/kv/{key}", "put", 10000), ("DELETE", "/kv/{key}", "delete", 10000))


def kv_files(kind, db_path=None, settings=None):
    """conf.d files (besides 00-server.conf) for kv over a store of @kind, plus hello."""
    return {"05-stores.conf": store_text(kind, db_path),
            "10-hello.conf": HELLO_CONF,
            "40-kv.conf": module_text("kv", "kv.so", KV_ROUTES, settings, stores=["main"])}


def new_db_dir(test):
    """A temporary directory for a database file, removed after @test."""
    path = tempfile.mkdtemp(prefix="modhost-kvdb-")
    test.addCleanup(shutil.rmtree, path, True)
    return path


def kpath(key):
    """The request target for @key (str or bytes), every reserved byte percent-encoded."""
    return "/kv/" + quote(key, safe="")


def etag_version(resp):
    """The version in a strong ETag "N"; fails on anything else."""
    tag = resp.header("ETag")
    if tag is None or len(tag) < 3 or tag[0] != '"' or tag[-1] != '"' or not tag[1:-1].isdigit():
        raise AssertionError("ETag %r is not a strong tag \"N\" in %r" % (tag, resp))
    return int(tag[1:-1])


# --- Tests -------------------------------------------------------------------------------

KV_SETTINGS = {"max_key_bytes": 32, "max_value_bytes": 64, "max_page": 50, "default_page": 20}


class KvApiTests:
    """Mixed into one TestCase per store; subclasses set STORE."""

    STORE = None

    def setUp(self):
        super().setUp()
        db = os.path.join(new_db_dir(self), "kv.db") if self.STORE == "sqlite" else None
        self.srv = self.start_server(files=kv_files(self.STORE, db, KV_SETTINGS))
        self.conn = RawConnection(self.srv.port)
        self.addCleanup(self.conn.close)

    def req(self, method, target, body=None, headers=None):
        return self.conn.request(method, target, body, headers)

    def assert_problem(self, resp, status):
        self.assertEqual(resp.status, status, resp)
        self.assertEqual(resp.header("Content-Type"), "application/problem+json", resp)
        doc = resp.json()
        self.assertEqual(doc["status"], status, doc)
        self.assertIsInstance(doc.get("detail"), str, doc)
        return doc

    def assert_value(self, key, body, version=None):
        resp = self.req("GET", kpath(key))
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.body, body)
        self.assertEqual(resp.header("Content-Type"), "application/json", resp)
        if version is not None:
            self.assertEqual(etag_version(resp), version, resp)
        return resp

    def put(self, key, body, status=None, headers=None):
        resp = self.req("PUT", kpath(key), body, headers)
        if status is not None:
            self.assertEqual(resp.status, status, resp)
        return resp

    # -- basic CRUD --

    def test_create_update_read(self):
        resp = self.put("alpha", b'{"n": 1}', 201)
        self.assertEqual(resp.header("Content-Type"), "application/json", resp)
        v1 = etag_version(resp)
        self.assertEqual(resp.json(), {"key": "alpha", "version": v1})

        resp = self.put("alpha", b'[1, 2,  3]', 200)
        v2 = etag_version(resp)
        self.assertEqual(resp.json(), {"key": "alpha", "version": v2})
        self.assertGreater(v2, v1)

        # The exact bytes stored, not a re-serialization.
        self.assert_value("alpha", b'[1, 2,  3]', v2)

        resp = self.put("beta", b'"x"', 201)
        self.assertGreater(etag_version(resp), v2, "versions increase across keys too")

    def test_head_returns_headers_only(self):
        v = etag_version(self.put("h", b'{"a": "bcd"}', 201))
        resp = self.req("HEAD", kpath("h"))
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.body, b"")
        self.assertEqual(resp.header("Content-Length"), str(len(b'{"a": "bcd"}')), resp)
        self.assertEqual(etag_version(resp), v)
        # The connection is still in sync: no body bytes followed the HEAD answer.
        self.assertEqual(self.conn.pending(), b"")
        self.assert_value("h", b'{"a": "bcd"}', v)

    def test_get_missing_is_404_problem(self):
        self.assert_problem(self.req("GET", kpath("nope")), 404)
        resp = self.req("HEAD", kpath("nope"))
        self.assertEqual(resp.status, 404, resp)
        self.assertEqual(resp.header("Content-Type"), "application/problem+json", resp)
        self.assertEqual(self.conn.pending(), b"", "a body followed the HEAD answer")
        self.assert_problem(self.req("GET", kpath("nope")), 404)

    def test_put_non_json_is_400_and_stores_nothing(self):
        for body in (b"not json", b'{"a": 1', b"", b'{"a": 1} x'):
            with self.subTest(body=body):
                self.assert_problem(self.put("bad", body), 400)
        self.assert_problem(self.req("GET", kpath("bad")), 404)
        self.put("good", b"1", 201)
        self.assert_problem(self.put("good", b"nope"), 400)
        self.assert_value("good", b"1")

    def test_versions_differ_per_write_and_increase(self):
        seen = []
        for i in range(6):
            resp = self.put("k%d" % (i % 2), json.dumps({"i": i}))
            self.assertIn(resp.status, (200, 201), resp)
            seen.append(etag_version(resp))
        self.assertEqual(seen, sorted(seen))
        self.assertEqual(len(set(seen)), len(seen), seen)

    # -- preconditions --

    def test_if_match(self):
        v1 = etag_version(self.put("c", b"1", 201))
        resp = self.put("c", b"2", 200, {"If-Match": '"%d"' % v1})
        v2 = etag_version(resp)
        self.assertGreater(v2, v1)

        # Stale: refused, value unchanged.
        self.assert_problem(self.put("c", b"3", headers={"If-Match": '"%d"' % v1}), 412)
        self.assert_value("c", b"2", v2)

        # * matches any existing version.
        v3 = etag_version(self.put("c", b"4", 200, {"If-Match": "*"}))
        self.assertGreater(v3, v2)
        self.assert_value("c", b"4", v3)

    def test_if_match_star_on_missing_is_412(self):
        self.assert_problem(self.put("ghost", b"1", headers={"If-Match": "*"}), 412)
        self.assert_problem(self.put("ghost", b"1", headers={"If-Match": '"1"'}), 412)
        self.assert_problem(self.req("GET", kpath("ghost")), 404)

    def test_if_none_match_star(self):
        v1 = etag_version(self.put("once", b"1", 201, {"If-None-Match": "*"}))
        self.assert_problem(self.put("once", b"2", headers={"If-None-Match": "*"}), 412)
        self.assert_value("once", b"1", v1)

    def test_malformed_preconditions_are_400(self):
        v = etag_version(self.put("m", b"1", 201))
        for header in ({"If-Match": "%d" % v},                  # unquoted
                       {"If-Match": '"'},                        # unterminated
                       {"If-Match": '"%d' % v},
                       {"If-Match": 'w/"%d"' % v},               # W/ is case-sensitive
                       {"If-Match": 'W/ "%d"' % v},
                       {"If-Match": '"%d" "%d"' % (v, v)},       # no comma
                       {"If-Match": '*, "%d"' % v},              # * stands alone
                       {"If-Match": '"a"b'},
                       {"If-None-Match": "**"},
                       {"If-None-Match": '"%d", x' % v},
                       {"If-Match": '"%d"' % v, "If-None-Match": "%d" % v},
                       {"If-Match": ", ".join(['"x"'] * 33)}):  # more tags than kept
            with self.subTest(header=header):
                doc = self.assert_problem(self.put("m", b"2", headers=header), 400)
                self.assertIn("entity tag", doc["detail"])
                self.assert_problem(self.req("DELETE", kpath("m"), headers=header), 400)
                self.assert_problem(self.req("GET", kpath("m"), headers=header), 400)
        self.assert_value("m", b"1", v)

    def test_well_formed_tags_that_do_not_match_are_412(self):
        v = etag_version(self.put("w", b"1", 201))
        for header in ({"If-Match": '"nope-999"'},
                       {"If-Match": 'W/"%d"' % v},               # If-Match compares strongly
                       {"If-Match": '"0"'},
                       {"If-Match": '"0%d"' % v},                # not the same characters
                       {"If-Match": '"%d"' % (v + 1000)},
                       {"If-Match": '"18446744073709551615"'},
                       {"If-Match": '"1x", "2y", ""'},
                       {"If-Match": ""},                         # an empty list matches nothing
                       {"If-None-Match": '"%d"' % v},
                       {"If-None-Match": 'W/"%d"' % v},          # If-None-Match compares weakly
                       {"If-None-Match": '"a", W/"%d"' % v},
                       {"If-Match": '"%d"' % v, "If-None-Match": "*"}):
            with self.subTest(header=header):
                self.assert_problem(self.put("w", b"2", headers=header), 412)
                self.assert_problem(self.req("DELETE", kpath("w"), headers=header), 412)
        self.assert_value("w", b"1", v)
        for header in ({"If-Match": '"nope-999"'}, {"If-Match": 'W/"%d"' % v}):
            with self.subTest(get=header):
                self.assert_problem(self.req("GET", kpath("w"), headers=header), 412)

    def test_tag_lists_that_match(self):
        v1 = etag_version(self.put("l", b"1", 201))
        v2 = etag_version(self.put("l", b"2", 200, {"If-Match": '"nope", "%d", W/"x"' % v1}))
        v3 = etag_version(self.put("l", b"3", 200, {"If-Match": ' "%d" ,, "%d" ' % (v1, v2)}))
        v4 = etag_version(self.put("l", b"4", 200, {"If-None-Match": '"%d", W/"%d"' % (v1, v2)}))
        v5 = etag_version(self.put("l", b"5", 200, {"If-Match": '"%d"' % v4,
                                                    "If-None-Match": '"nope"'}))
        self.assertEqual(sorted({v1, v2, v3, v4, v5}), [v1, v2, v3, v4, v5])
        self.assert_value("l", b"5", v5)
        # A list on a missing key: If-Match fails, If-None-Match holds (creates).
        self.assert_problem(self.put("l2", b"1", headers={"If-Match": '"1", "2"'}), 412)
        self.put("l2", b"1", 201, {"If-None-Match": '"1", "2"'})
        resp = self.req("DELETE", kpath("l"), headers={"If-Match": '"1", "%d"' % v5})
        self.assertEqual(resp.status, 204, resp)
        self.assert_problem(self.req("GET", kpath("l")), 404)

    def test_conditional_get(self):
        v = etag_version(self.put("g", b'{"x": 1}', 201))
        for tags in ('"%d"' % v, 'W/"%d"' % v, '"a", "%d"' % v, "*"):
            with self.subTest(tags=tags):
                resp = self.req("GET", kpath("g"), headers={"If-None-Match": tags})
                self.assertEqual(resp.status, 304, resp)
                self.assertEqual(resp.body, b"")
                self.assertEqual(etag_version(resp), v)
        resp = self.req("GET", kpath("g"), headers={"If-None-Match": '"other"'})
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.body, b'{"x": 1}')
        resp = self.req("GET", kpath("g"), headers={"If-Match": '"other", "%d"' % v})
        self.assertEqual(resp.status, 200, resp)
        self.assert_problem(self.req("GET", kpath("nobody"), headers={"If-Match": "*"}), 412)
        self.assert_problem(self.req("GET", kpath("nobody"), headers={"If-None-Match": "*"}),
                            404)

    def test_delete_if_none_match(self):
        v = etag_version(self.put("dn", b"1", 201))
        self.assert_problem(self.req("DELETE", kpath("dn"), headers={"If-None-Match": "*"}), 412)
        self.assert_value("dn", b"1", v)
        self.assert_problem(self.req("DELETE", kpath("gone"), headers={"If-None-Match": "*"}),
                            404)
        resp = self.req("DELETE", kpath("dn"), headers={"If-None-Match": '"nope"'})
        self.assertEqual(resp.status, 204, resp)

    # -- DELETE --

    def test_delete(self):
        v1 = etag_version(self.put("d", b"1", 201))
        v2 = etag_version(self.put("d", b"2", 200))
        self.assert_problem(self.req("DELETE", kpath("d"), headers={"If-Match": '"%d"' % v1}),
                            412)
        self.assert_value("d", b"2", v2)

        resp = self.req("DELETE", kpath("d"), headers={"If-Match": '"%d"' % v2})
        self.assertEqual(resp.status, 204, resp)
        self.assertEqual(resp.body, b"")
        self.assert_problem(self.req("GET", kpath("d")), 404)
        self.assert_problem(self.req("DELETE", kpath("d")), 404)

        # Re-created: a fresh record (201) with a version above anything it had.
        v3 = etag_version(self.put("d", b"3", 201))
        self.assertGreater(v3, v2)
        resp = self.req("DELETE", kpath("d"))
        self.assertEqual(resp.status, 204, resp)
        self.assert_problem(self.req("DELETE", kpath("d"), headers={"If-Match": "*"}), 412)

    # -- listing --

    def list_page(self, **query):
        target = "/kv"
        if query:
            target += "?" + "&".join("%s=%s" % (k, quote(str(v), safe="")) for k, v in
                                     query.items())
        return self.req("GET", target)

    def test_paging_follows_cursor_to_the_end(self):
        wanted = set()
        for i in range(25):
            key = "pre/%02d-%s" % ((i * 7) % 25, "x" * (i % 3))
            wanted.add(key)
        # Unicode keys sort by their UTF-8 bytes, not by code point in UTF-16 or by locale.
        wanted |= {"pre/\u00e9t\u00e9", "pre/\U0001f600", "pre/Z", "pre/ sp"}
        others = ["pra", "pre", "prf/0", "a", "zzz", "pre-0", "PRE/0"]
        for key in sorted(wanted) + others:
            self.put(key, b"0", 201)

        got, cursor, pages = [], None, 0
        while True:
            query = {"prefix": "pre/", "limit": 10}
            if cursor is not None:
                query["cursor"] = cursor
            resp = self.list_page(**query)
            self.assertEqual(resp.status, 200, resp)
            self.assertEqual(resp.header("Content-Type"), "application/json", resp)
            doc = resp.json()
            self.assertEqual(set(doc), {"keys", "next_cursor"}, doc)
            self.assertLessEqual(len(doc["keys"]), 10, doc)
            got += doc["keys"]
            pages += 1
            cursor = doc["next_cursor"]
            if cursor is None:
                break
            self.assertIsInstance(cursor, str, doc)
            self.assertLess(pages, 10, "paging does not end: %r" % got)
        self.assertEqual(got, sorted(wanted, key=lambda k: k.encode("utf-8")))
        self.assertEqual(pages, 3)

    def test_page_defaults_and_exact_fit(self):
        for i in range(20):
            self.put("e%02d" % i, b"0", 201)
        doc = self.list_page().json()  # default_page is 20 and there are exactly 20 keys
        self.assertEqual(doc, {"keys": ["e%02d" % i for i in range(20)], "next_cursor": None})
        doc = self.list_page(prefix="e1", limit=10).json()
        self.assertEqual(doc, {"keys": ["e%02d" % i for i in range(10, 20)],
                               "next_cursor": None})
        doc = self.list_page(prefix="e0", limit=5).json()
        self.assertEqual(doc["keys"], ["e%02d" % i for i in range(5)])
        doc = self.list_page(prefix="e0", limit=5, cursor=doc["next_cursor"]).json()
        self.assertEqual(doc, {"keys": ["e%02d" % i for i in range(5, 10)], "next_cursor": None})
        self.assertEqual(self.list_page(prefix="nothing").json(),
                         {"keys": [], "next_cursor": None})

    def test_bad_limits_are_400(self):
        self.put("x", b"0", 201)
        for limit in ("0", "abc", "-1", "51", "10x", "", "99999999999999999999"):
            with self.subTest(limit=limit):
                self.assert_problem(self.req("GET", "/kv?limit=%s" % limit), 400)
        self.assertEqual(self.list_page(limit=50).status, 200)

    # -- keys and values --

    def test_unicode_and_space_keys_round_trip(self):
        for key in ("caf\u00e9 ol\u00e9", "a b", "\u65e5\u672c", "\U0001f600/slash?q#h%",
                    "plus+sign"):
            with self.subTest(key=key):
                body = json.dumps({"k": key}).encode()
                resp = self.put(key, body, 201)
                self.assertEqual(resp.json()["key"], key)
                self.assert_value(key, body, etag_version(resp))
                keys = self.list_page(prefix=key).json()["keys"]
                self.assertEqual(keys, [key])

    def test_key_limits(self):
        self.put("k" * 32, b"1", 201)
        doc = self.assert_problem(self.put("k" * 33, b"1"), 400)
        self.assertIn("32", doc["detail"])
        # Multi-byte characters count as bytes: 11 x 3 bytes = 33.
        self.assert_problem(self.put("\u65e5" * 11, b"1"), 400)
        self.assert_problem(self.req("GET", kpath("k" * 33)), 400)

    def test_bad_key_text_is_400(self):
        for target in ("/kv/a%01b", "/kv/%7f", "/kv/a%0Ab", "/kv/%ff", "/kv/%C3",
                       "/kv/%ED%A0%80", "/kv/%C0%AF", "/kv/a%00b", "/kv/%zz"):
            with self.subTest(target=target):
                self.assert_problem(self.req("PUT", target, b"1"), 400)
                self.assert_problem(self.req("GET", target), 400)
        self.assertEqual(self.list_page().json(), {"keys": [], "next_cursor": None})

    def test_value_limit_is_413(self):
        fits = b'"' + b"v" * 62 + b'"'
        self.put("big", fits, 201)
        doc = self.assert_problem(self.put("big", b'"' + b"v" * 63 + b'"'), 413)
        self.assertIn("64", doc["detail"])
        self.assert_value("big", fits)
        self.assert_problem(self.put("new", b"[" + b"1," * 40 + b"1]"), 413)
        self.assert_problem(self.req("GET", kpath("new")), 404)


class TestKvSqlite(KvApiTests, ServerTestCase):
    STORE = "sqlite"


class TestKvMemory(KvApiTests, ServerTestCase):
    STORE = "memory"


class TestKvConfig(ServerTestCase):
    def test_sqlite_values_survive_a_restart(self):
        db = os.path.join(new_db_dir(self), "kv.db")
        conf = self.make_conf(files=kv_files("sqlite", db, KV_SETTINGS))
        srv = self.start_server(conf=conf)
        with RawConnection(srv.port) as c:
            v = etag_version(c.request("PUT", kpath("kept"), b'{"a": 1}'))
            # The record with the highest version is deleted: its version must not come back.
            top = etag_version(c.request("PUT", kpath("gone"), b"1"))
            self.assertEqual(c.request("DELETE", kpath("gone")).status, 204)
        self.stop_server(srv)
        srv = self.start_server(conf=conf)
        with RawConnection(srv.port) as c:
            resp = c.request("GET", kpath("kept"))
            self.assertEqual((resp.status, resp.body), (200, b'{"a": 1}'), resp)
            self.assertEqual(etag_version(resp), v)
            self.assert_problem_status(c.request("GET", kpath("gone")), 404)
            resp = c.request("PUT", kpath("gone"), b"2")
            self.assertEqual(resp.status, 201, resp)
            self.assertGreater(etag_version(resp), top, "versions keep increasing after a restart")

    def assert_problem_status(self, resp, status):
        self.assertEqual(resp.status, status, resp)
        self.assertEqual(resp.header("Content-Type"), "application/problem+json", resp)


if __name__ == "__main__":
    unittest.main()
