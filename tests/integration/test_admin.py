"""The admin listener: /healthz, /readyz (stores probed; draining), /metrics checked with
promtool and driven until every family moves, /modules, /routes, /generations, its own
connection cap, request ids end to end, and the access log reopened after a rename (SIGUSR1).
Nothing here waits a fixed time: every wait polls for the state it needs."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import unittest

from mhtest import (HELLO_CONF, ConnectionClosed, run_cli, IO_TIMEOUT_S, RawConnection, ServerTestCase, build_request,
                    server_conf, wait_until, ConfDir)
from test_kv import KV_ROUTES, module_text, store_text
from test_pool import Pending, hash_body, slow_iterations
from ws_client import WSConnection

SOURCE = os.environ.get("MODHOST_SOURCE_DIR",
                        os.path.join(os.path.dirname(__file__), "..", ".."))


def admin_extra(cap=4, probe_ms=2000, more=""):
    return ('  admin: { listen = "127.0.0.1:0"; max_connections = %d; probe_timeout_ms = %d; };\n'
            '%s' % (cap, probe_ms, more))


def admin_port(srv):
    path = srv.port_file + ".admin"
    def read():
        try:
            with open(path, encoding="ascii") as f:
                return f.read().strip() or None
        except FileNotFoundError:
            return None
    return int(wait_until(read, IO_TIMEOUT_S))


def get(port, path, headers=None):
    with RawConnection(port) as c:
        return c.request("GET", path, headers=headers)


def parse_metrics(text):
    """{(name, ((label, value), ...)): float} and {family: type}."""
    samples, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind
            continue
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$', line)
        assert m, "unparsable sample line %r" % line
        labels = tuple(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        samples[(m.group(1), labels)] = float(m.group(3))
    return samples, types


def family_total(samples, types, family):
    """The sum of a counter family, or of a histogram's _count samples."""
    name = family + "_count" if types[family] == "histogram" else family
    return sum(v for (n, _), v in samples.items() if n == name)


def gauge(samples, name, **labels):
    return sum(v for (n, ls), v in samples.items()
               if n == name and all((k, v2) in ls for k, v2 in labels.items()))


def read_example(rel):
    with open(os.path.join(SOURCE, rel), encoding="utf-8") as f:
        return f.read()


class AdminCase(ServerTestCase):
    def scrape(self, srv):
        resp = get(self.admin, "/metrics")
        self.assertEqual(resp.status, 200, resp)
        return resp.body.decode("utf-8")

    def metrics(self, srv):
        return parse_metrics(self.scrape(srv))


class TestAdminBasics(AdminCase):
    def setUp(self):
        super().setUp()
        files = {"10-hello.conf": HELLO_CONF, "05-stores.conf": store_text("memory"),
                 "40-kv.conf": module_text("kv", "kv.so", KV_ROUTES, stores=["main"])}
        conf = ConfDir(files=files, server=server_conf(extra=admin_extra()))
        self.addCleanup(conf.cleanup)
        self.srv = self.start_server(conf=conf)
        self.admin = admin_port(self.srv)

    def test_health_and_ready(self):
        r = get(self.admin, "/healthz")
        self.assertEqual((r.status, r.body), (200, b"ok\n"))
        r = get(self.admin, "/readyz")
        self.assertEqual((r.status, r.body), (200, b"ready\n"))

    def test_admin_never_reaches_modules_and_is_not_counted(self):
        before, _ = self.metrics(self.srv)
        for _ in range(5):
            r = get(self.admin, "/hello/x")
            self.assertEqual(r.status, 404, r)
            self.assertEqual(r.header("Content-Type"), "application/problem+json")
        after, _ = self.metrics(self.srv)
        for name in ("modhost_requests_total", "modhost_connections_accepted_total",
                     "modhost_received_bytes_total"):
            self.assertEqual(gauge(before, name), gauge(after, name), name)
        r = RawConnection(self.admin).request("POST", "/metrics", b"x")
        self.assertEqual(r.status, 405)

    def test_json_endpoints(self):
        mods = get(self.admin, "/modules").json()
        names = {m["name"] for m in mods}
        self.assertEqual(names, {"hello", "kv", "store_memory"})
        hello = [m for m in mods if m["name"] == "hello"][0]
        self.assertEqual(hello["file"], os.path.join(os.environ["MODHOST_MODULE_DIR"], "hello.so"))
        self.assertEqual(hello["inode"], os.stat(hello["file"]).st_ino)
        self.assertRegex(hello["abi"], r"^1\.\d+$")
        routes = get(self.admin, "/routes").json()
        self.assertIn({"method": "GET", "path": "/hello/{name}", "module": "hello"},
                      [{k: r[k] for k in ("method", "path", "module")} for r in routes])
        self.assertTrue(all("defined_at" in r for r in routes))
        gens = get(self.admin, "/generations").json()
        self.assertEqual([g["state"] for g in gens], ["serving"])

    def test_generations_show_a_draining_one(self):
        # A WebSocket-free request in flight keeps nothing; a reload leaves the old generation
        # until its references are gone: /generations lists both or, once drained, one.
        self.srv.send_signal(signal.SIGHUP)
        self.assertTrue(self.srv.wait_log(r"generation 2 serving"))
        gens = get(self.admin, "/generations").json()
        self.assertEqual(gens[0]["id"], 2)
        self.assertEqual(gens[0]["state"], "serving")
        samples, _ = self.metrics(self.srv)
        self.assertEqual(gauge(samples, "modhost_reloads_total", result="ok"), 1)

    def test_modhost_status(self):
        out = run_cli("status", "--admin", "127.0.0.1:%d" % self.admin)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("ready: yes", out.stdout)
        self.assertRegex(out.stdout, r"(?m)^hello\s+1\.0\.0\s+1\s")
        self.assertRegex(out.stdout, r"(?m)^kv\s")
        # From the configuration's server.admin.listen (port 0 there: nothing to ask).
        out = run_cli("status", "--admin", "127.0.0.1:1")
        self.assertEqual(out.returncode, 3)
        self.assertIn("no answer", out.stderr)

    def test_own_connection_cap(self):
        held = []
        self.addCleanup(lambda: [c.close() for c in held])
        refused = None
        for _ in range(8):
            c = RawConnection(self.admin)
            held.append(c)
            c.send(build_request("GET", "/healthz"))
            r = c.read_response()
            if r.status == 503:
                refused = r
                break
        self.assertIsNotNone(refused, "the admin listener took more than its cap")
        self.assertEqual(len(held), 5)  # max_connections = 4
        # The application is not affected by the admin listener's cap.
        self.assertEqual(get(self.srv.port, "/hello/x").status, 200)

    def test_request_id_round_trip(self):
        r = get(self.srv.port, "/hello/rid", headers={"X-Request-Id": "trace-42.a:b"})
        self.assertEqual(r.header("X-Request-Id"), "trace-42.a:b")
        self.assertTrue(self.srv.wait_log(r"access: GET /hello/rid 200 .* req=trace-42\.a:b "
                                          r"client=127\.0\.0\.1 module=hello "
                                          r"route=/hello/\{name\}"))
        # Not sane (too long, or a character outside the set): the server makes one.
        for bad in ("x" * 65, "a b", "<script>"):
            r = get(self.srv.port, "/hello/gen", headers={"X-Request-Id": bad})
            self.assertRegex(r.header("X-Request-Id"), r"^[0-9a-f]{20}$")
        made = get(self.srv.port, "/hello/mine").header("X-Request-Id")
        self.assertTrue(self.srv.wait_log(r"GET /hello/mine 200 .* req=%s " % made))
        # Errors the core answers carry one too.
        self.assertRegex(get(self.srv.port, "/nope").header("X-Request-Id") or "", r"\S+")


class TestMetricsMove(AdminCase):
    """promtool accepts /metrics, and traffic moves every counter and histogram family."""

    def test_promtool_and_every_family_moves(self):
        promtool = shutil.which("promtool")
        if not promtool:
            self.skipTest("promtool is not installed (Debian package `prometheus`)")
        echo = read_example("conf.d/20-echo.conf").replace(
            "max_outbound_bytes = 1048576", "max_outbound_bytes = 65536")
        files = {"10-hello.conf": HELLO_CONF, "05-stores.conf": store_text("memory"),
                 "20-echo.conf": echo,
                 "30-hash.conf": module_text(
                     "hash", "hash.so", [("POST", "/hash", "hash", 60000),
                                         ("POST", "/hash/slow", "hash", 60000),
                                         ("POST", "/hash/short", "hash", 100)],
                     {"max_iterations": 100000000}),
                 "40-kv.conf": module_text("kv", "kv.so", KV_ROUTES, stores=["main"]),
                 "50-chat.conf": read_example("conf.d/50-chat.conf")}
        extra = admin_extra(more="  workers = 1;\n  worker_queue = 1;\n")
        conf = ConfDir(files=files, server=server_conf(
            extra=extra, limits={"max_connections": 24}))
        self.addCleanup(conf.cleanup)
        srv = self.start_server(conf=conf)
        self.admin = admin_port(srv)
        text = self.scrape(srv)
        out = subprocess.run([promtool, "check", "metrics"], input=text, encoding="utf-8",
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.assertEqual(out.returncode, 0, out.stdout)
        before, types = parse_metrics(text)

        # Plain requests, a 404, kv through the store, a refused request line.
        self.assertEqual(get(srv.port, "/hello/m").status, 200)
        self.assertEqual(get(srv.port, "/nope").status, 404)
        with RawConnection(srv.port) as c:
            self.assertEqual(c.request("PUT", "/kv/a", b'{"v":1}').status, 201)
            self.assertEqual(c.request("GET", "/kv/a").status, 200)
        with RawConnection(srv.port) as c:
            c.send(b"BOGUS\r\n\r\n")
            self.assertEqual(c.read_response().status, 400)

        # The pool: one worker busy, one request queued, one refused, one that leaves (499),
        # then one past its deadline (504).
        slow = slow_iterations(srv)
        a = Pending(srv.port, "POST", "/hash/slow", hash_body(iterations=slow))
        a.start()
        self.assertTrue(wait_until(lambda: gauge(self.metrics(srv)[0],
                                                 "modhost_pool_busy_workers") == 1, IO_TIMEOUT_S))
        leaver = RawConnection(srv.port)
        leaver.send(build_request("POST", "/hash", hash_body()))
        self.assertTrue(wait_until(lambda: gauge(self.metrics(srv)[0],
                                                 "modhost_pool_queue_depth") == 1, IO_TIMEOUT_S))
        self.assertTrue(wait_until(lambda: gauge(self.metrics(srv)[0],
                                                 "modhost_requests_in_flight") >= 2, IO_TIMEOUT_S))
        with RawConnection(srv.port) as c:
            self.assertEqual(c.request("POST", "/hash", hash_body()).status, 503)
        leaver.close()
        self.assertTrue(wait_until(lambda: gauge(self.metrics(srv)[0],
                                                 "modhost_requests_cancelled_total") >= 1,
                                   IO_TIMEOUT_S))
        a.join(IO_TIMEOUT_S * 3)
        self.assertEqual(a.resp.status, 200)
        self.assertTrue(wait_until(  # the leaver's task leaves the queue without running
            lambda: gauge(self.metrics(srv)[0], "modhost_pool_queue_depth") == 0 and
            gauge(self.metrics(srv)[0], "modhost_pool_busy_workers") == 0, IO_TIMEOUT_S))
        with RawConnection(srv.port, timeout=IO_TIMEOUT_S * 3) as c:
            self.assertEqual(c.request("POST", "/hash/short",
                                       hash_body(iterations=slow)).status, 504)

        # WebSockets: a chat member (a channel, a publish), and an echo client that never
        # reads until it is closed as a slow consumer.
        chat = WSConnection(srv.port)
        self.addCleanup(chat.close)
        chat.open("/ws/chat/room1?name=m")
        chat.send_text(json.dumps({"text": "hello"}))
        self.assertTrue(wait_until(lambda: gauge(self.metrics(srv)[0],
                                                 "modhost_channel_publishes_total") >= 1,
                                   IO_TIMEOUT_S))
        held, _ = self.metrics(srv)
        self.assertGreaterEqual(gauge(held, "modhost_channel_members"), 1)
        self.assertGreaterEqual(gauge(held, "modhost_websocket_connections_open",
                                      endpoint="/ws/chat/{room}"), 1)
        self.assertGreaterEqual(gauge(held, "modhost_connections_open"), 1)
        slowc = WSConnection(srv.port, rcvbuf=4096)
        self.addCleanup(slowc.close)
        slowc.open("/ws/echo")
        chunk = os.urandom(32768)

        def closed_slow():
            for _ in range(32):
                try:
                    slowc.send_binary(chunk)
                except OSError:
                    break
            return gauge(self.metrics(srv)[0],
                         "modhost_websocket_slow_consumer_closes_total") >= 1
        self.assertTrue(wait_until(closed_slow, IO_TIMEOUT_S * 3))

        # The connection cap of the application listener.
        conns = []
        self.addCleanup(lambda: [c.close() for c in conns])
        for _ in range(40):
            c = RawConnection(srv.port)
            conns.append(c)
            c.send(build_request("GET", "/hello/cap"))
            if c.read_response().status == 503:
                break
        for c in conns:
            c.close()

        # Reloads: one that works, one that is refused.
        srv.send_signal(signal.SIGHUP)
        self.assertTrue(srv.wait_log(r"generation 2 serving"))
        conf.write("99-bad.conf", "server: { threads = \"x\"; };\n")
        srv.send_signal(signal.SIGHUP)
        self.assertTrue(srv.wait_log(r"reload failed"))
        os.unlink(conf.file("99-bad.conf"))

        text = self.scrape(srv)
        out = subprocess.run([promtool, "check", "metrics"], input=text, encoding="utf-8",
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.assertEqual(out.returncode, 0, out.stdout)
        after, types = parse_metrics(text)
        # Families that only failures move: no handler here fails, no store breaks and no
        # listener speaks TLS (the store test below moves modhost_store_errors_total, and
        # test_tls.TestFailureMetrics each reason of modhost_tls_handshake_failures_total).
        only_on_failure = {"modhost_handler_errors_total", "modhost_store_errors_total",
                           "modhost_tls_handshake_failures_total"}
        still = [f for f, kind in types.items()
                 if kind in ("counter", "histogram") and f not in only_on_failure
                 and family_total(after, types, f) <= family_total(before, types, f)]
        self.assertEqual(still, [], "families that did not move under traffic")
        # Each module's time inside its handlers: hello runs on a loop, hash on a worker.
        self.assertGreater(gauge(after, "modhost_handler_seconds_total", module="hello",
                                 where="loop"), 0)
        self.assertEqual(gauge(after, "modhost_handler_seconds_total", module="hello",
                               where="pool"), 0)
        self.assertGreater(gauge(after, "modhost_handler_seconds_total", module="hash",
                                 where="pool"), 0)
        for g in ("modhost_pool_workers", "modhost_pool_queue_capacity",
                  "modhost_modules_loaded", "modhost_generations_live", "modhost_build_info"):
            self.assertGreaterEqual(gauge(after, g), 1, g)
        self.assertEqual(gauge(after, "modhost_reloads_total", result="failed"), 1)
        self.assertGreaterEqual(gauge(after, "modhost_refusals_total", reason="connections"), 1)
        self.assertGreaterEqual(gauge(after, "modhost_requests_total", module="hello",
                                      route="/hello/{name}", method="GET", **{"class": "2xx"}),
                                1)


class TestReadiness(AdminCase):
    def test_store_down_is_not_ready_and_names_it(self):
        sys_path = os.path.join(os.path.dirname(__file__), "..", "support")
        import sys
        sys.path.insert(0, sys_path)
        import services
        try:
            redis = services.Redis().start()
        except services.Missing as e:
            if services.required():
                raise
            self.skipTest(str(e))
        self.addCleanup(redis.cleanup)
        stores = (module_text("store_redis", "store_redis.so")
                  + 'stores = (\n  { name = "cache"; driver = "redis"; settings: { port = %d; '
                  'password_file = "%s"; prefix = "rz:"; timeout_ms = 500; }; }\n);\n'
                  % (redis.port, redis.passfile))
        files = {"05-stores.conf": stores, "10-hello.conf": HELLO_CONF}
        conf = ConfDir(files=files, server=server_conf(extra=admin_extra(probe_ms=3000)))
        self.addCleanup(conf.cleanup)
        srv = self.start_server(conf=conf)
        self.admin = admin_port(srv)
        self.assertEqual(get(self.admin, "/readyz").status, 200)
        redis.stop()
        r = get(self.admin, "/readyz")
        self.assertEqual(r.status, 503, r)
        self.assertEqual(r.header("Content-Type"), "application/problem+json")
        self.assertIn("cache", r.json()["detail"])
        samples, _ = self.metrics(srv)
        self.assertGreaterEqual(gauge(samples, "modhost_store_errors_total", store="cache",
                                      driver="redis", op="get"), 1)
        redis.start()
        self.assertTrue(wait_until(lambda: get(self.admin, "/readyz").status == 200,
                                   IO_TIMEOUT_S * 3))

    def test_draining_is_not_ready(self):
        files = {"10-hello.conf": HELLO_CONF,
                 "30-hash.conf": module_text("hash", "hash.so",
                                             [("POST", "/hash/slow", "hash", 60000)],
                                             {"max_iterations": 100000000})}
        conf = ConfDir(files=files, server=server_conf(extra=admin_extra(),
                                                       shutdown_timeout_ms=30000))
        self.addCleanup(conf.cleanup)
        srv = self.start_server(conf=conf)
        self.admin = admin_port(srv)
        self.assertEqual(get(self.admin, "/readyz").status, 200)
        a = Pending(srv.port, "POST", "/hash/slow", hash_body(iterations=slow_iterations(srv)))
        a.start()
        self.assertTrue(wait_until(lambda: gauge(self.metrics(srv)[0],
                                                 "modhost_pool_busy_workers") >= 1, IO_TIMEOUT_S))
        srv.send_signal(signal.SIGTERM)
        self.assertTrue(srv.wait_log("SIGTERM received"))
        def probe():  # the admin listener still accepts while draining; a loop that has
            try:      # finished closes its socket, and a probe queued there is reset
                return get(self.admin, "/readyz")
            except (ConnectionClosed, OSError):
                return None
        r = wait_until(probe, IO_TIMEOUT_S)
        self.assertEqual(r.status, 503, r)
        self.assertIn("draining", r.json()["detail"])
        a.join(IO_TIMEOUT_S * 3)


class TestAccessLog(ServerTestCase):
    def start_with(self, fmt, path):
        extra = '  log: { access = true; access_format = "%s"; access_file = "%s"; };' % (fmt, path)
        text = server_conf(access=True).replace("  log: { level = \"info\"; access = true; };\n", "")
        text = text.replace("};\n", extra + "\n};\n") if text.endswith("};\n") else text
        conf = ConfDir(files={"10-hello.conf": HELLO_CONF}, server=text)
        self.addCleanup(conf.cleanup)
        return self.start_server(conf=conf)

    def read(self, path):
        try:
            with open(path, encoding="utf-8") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def test_json_lines_and_reopen_after_rename(self):
        work = tempfile.mkdtemp(prefix="mh-access-")
        self.addCleanup(shutil.rmtree, work, True)
        path = os.path.join(work, "access.log")
        srv = self.start_with("json", path)
        r = get(srv.port, "/hello/one", headers={"X-Request-Id": "one-1", "User-Agent": "t/1"})
        self.assertEqual(r.status, 200)
        self.assertTrue(wait_until(lambda: "one-1" in self.read(path), IO_TIMEOUT_S))
        line = json.loads(self.read(path).splitlines()[0])
        self.assertEqual((line["method"], line["path"], line["status"], line["module"],
                          line["route"], line["request_id"], line["user_agent"],
                          line["client"]),
                         ("GET", "/hello/one", 200, "hello", "/hello/{name}", "one-1", "t/1",
                          "127.0.0.1"))
        self.assertIsInstance(line["duration_us"], int)
        os.rename(path, path + ".1")  # what logrotate does
        srv.send_signal(signal.SIGUSR1)
        self.assertTrue(srv.wait_log(r"SIGUSR1: access log .* reopened"))
        self.assertEqual(get(srv.port, "/hello/two", headers={"X-Request-Id": "two-2"}).status, 200)
        self.assertTrue(wait_until(lambda: "two-2" in self.read(path), IO_TIMEOUT_S))
        self.assertNotIn("two-2", self.read(path + ".1"))
        self.assertIn("one-1", self.read(path + ".1"))
        self.assertTrue(srv.running())

    def test_combined_format(self):
        work = tempfile.mkdtemp(prefix="mh-access-")
        self.addCleanup(shutil.rmtree, work, True)
        path = os.path.join(work, "access.log")
        srv = self.start_with("combined", path)
        get(srv.port, "/hello/c?x=1", headers={"X-Request-Id": "c-3", "Referer": "http://r/",
                                               "User-Agent": "agent \"q\""})
        self.assertTrue(wait_until(lambda: "c-3" in self.read(path), IO_TIMEOUT_S))
        self.assertRegex(self.read(path),
                         r'^127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d \+0000\] '
                         r'"GET /hello/c\?x=1 HTTP/1\.1" 200 \d+ "http://r/" "agent \\"q\\"" '
                         r'module=hello route=/hello/\{name\} req=c-3 us=\d+\n')


if __name__ == "__main__":
    unittest.main()
