"""Many instances, one state: modhost over private PostgreSQL and Redis servers.

Three instances configured from the repository's example (packaging/scale-out: kv and chat
history in PostgreSQL, channels over Redis) share kv records and chat rooms, with nginx in
front as packaging/scale-out/nginx.conf shows; one instance is killed with -9 and the others
go on; the database is restarted under load and service comes back with every acknowledged
write. The same example without Redis carries the chat rooms over PostgreSQL LISTEN/NOTIFY. Single-instance cases cover each fault: a store that is down, restarting, or answers
nothing gets 503 problem+json with Retry-After before the route's deadline, other stores keep
working, the outage is logged once, and a kill -9 of modhost loses no acknowledged write.

The servers come from tests/support/services.py. Without PostgreSQL, Redis or nginx
installed, the cases that need them are skipped with a message naming the package, unless
MH_REQUIRE_SERVICES=1 (CI), where that is a failure.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from mhtest import (MODULE_DIR, SOURCE_DIR, ConfDir, RawConnection, Server, ServerTestCase,
                    wait_until)
from test_kv import kpath
from ws_client import OP_TEXT, WSConnection

sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "support"))
import services  # noqa: E402  (tests/support, found through the path above)

EXAMPLE = os.path.join(SOURCE_DIR, "packaging", "scale-out")
BOUND_S = 30.0  # how long a broken setup may take before a case gives up


def need(what):
    """Skips (or, with MH_REQUIRE_SERVICES, fails) for a missing server binary."""
    if services.required():
        raise AssertionError("%s, and MH_REQUIRE_SERVICES is set" % what)
    raise unittest.SkipTest(what)


_shared = {}


def shared_servers():
    """One PostgreSQL and one Redis for the whole file (each case uses its own table and key
    prefix); started on first use, stopped at exit of the module."""
    if "error" in _shared:
        need(_shared["error"])
    if not _shared:
        try:
            _shared["pg"] = services.Postgres().start()
            _shared["redis"] = services.Redis().start()
        except services.Missing as e:
            _shared["error"] = str(e)
            need(str(e))
    return _shared["pg"], _shared["redis"]


def tearDownModule():
    for s in ("pg", "redis"):
        if s in _shared:
            _shared[s].cleanup()


def read_example(name):
    with open(os.path.join(EXAMPLE, name), encoding="utf-8") as f:
        return f.read()


def set_key(text, key, value):
    """@text with the first `key = ...;` setting replaced by @value (a libconfig literal)."""
    new, n = re.subn(r"(\b%s\s*=\s*)[^;]*;" % re.escape(key), lambda m: m.group(1) + value + ";",
                     text, count=1)
    if n != 1:
        raise AssertionError("the example has no setting %r" % key)
    return new


def example_conf(pg, redis, name, pg_timeout_ms=None):
    """The example conf.d, pointed at the test's servers, with table and prefix @name."""
    files = {}
    for f in sorted(os.listdir(os.path.join(EXAMPLE, "conf.d"))):
        files[f] = read_example("conf.d/" + f)
    srv = files["00-server.conf"]
    srv = set_key(srv, "module_dir", json.dumps(MODULE_DIR))
    srv = set_key(srv, "threads", "2")
    files["00-server.conf"] = srv
    p = files["05-postgres.conf"]
    for key, value in (("port", str(pg.port)), ("dbname", '"postgres"'),
                       ("password_file", json.dumps(pg.passfile)), ("table", json.dumps(name))):
        p = set_key(p, key, value)
    if pg_timeout_ms:
        p = set_key(p, "timeout_ms", str(pg_timeout_ms))
    files["05-postgres.conf"] = p
    r = files["06-redis.conf"]
    for key, value in (("port", str(redis.port)), ("password_file", json.dumps(redis.passfile)),
                       ("prefix", json.dumps(name + ":"))):
        r = set_key(r, key, value)
    files["06-redis.conf"] = r
    return files


class Nginx:
    """nginx on a free loopback port with packaging/scale-out/nginx.conf's site, pointed at
    @ports."""

    def __init__(self, ports):
        self.binary = shutil.which("nginx") or ("/usr/sbin/nginx"
                                                if os.path.exists("/usr/sbin/nginx") else None)
        if not self.binary:
            raise services.Missing("nginx is not installed (Debian package `nginx`)")
        self.work = tempfile.mkdtemp(prefix="mh-nginx-")
        self.port = services.free_port()
        site = read_example("nginx.conf")
        servers = iter(ports)
        site = re.sub(r"server 127\.0\.0\.1:\d+", lambda m: "server 127.0.0.1:%d" % next(servers),
                      site)
        site = re.sub(r"listen 127\.0\.0\.1:\d+;", "listen 127.0.0.1:%d;" % self.port, site)
        w = self.work
        user = "user root root;\n" if os.geteuid() == 0 else ""
        conf = (user + "daemon off;\nworker_processes 1;\npid %s/nginx.pid;\n"
                "error_log %s/error.log warn;\nevents { worker_connections 256; }\n"
                "http {\n access_log off;\n client_body_temp_path %s/body;\n"
                " proxy_temp_path %s/proxy;\n fastcgi_temp_path %s/fcgi;\n"
                " uwsgi_temp_path %s/uwsgi;\n scgi_temp_path %s/scgi;\n%s\n}\n"
                % (w, w, w, w, w, w, w, site))
        self.conf = os.path.join(w, "nginx.conf")
        with open(self.conf, "w", encoding="utf-8") as f:
            f.write(conf)
        self.proc = subprocess.Popen([self.binary, "-c", self.conf, "-p", w, "-e",
                                      os.path.join(w, "error.log")],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        if not wait_until(lambda: self.proc.poll() is not None or services.port_open(self.port),
                          BOUND_S) or self.proc.poll() is not None:
            raise AssertionError("nginx did not start:\n" + self.log())

    def log(self):
        try:
            with open(os.path.join(self.work, "error.log"), encoding="utf-8",
                      errors="replace") as f:
                return f.read()[-4000:]
        except FileNotFoundError:
            return ""

    def cleanup(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(timeout=BOUND_S)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        shutil.rmtree(self.work, ignore_errors=True)


# --- Clients ---------------------------------------------------------------------------------


def http(port, method, target, body=None, headers=None):
    with RawConnection(port) as c:
        return c.request(method, target, body, headers)


def etag(resp):
    tag = resp.header("ETag")
    assert tag and tag[0] == '"' and tag[-1] == '"', resp
    return int(tag[1:-1])


class ChatClient:
    def __init__(self, test, port, room, name):
        self.ws = WSConnection(port)
        test.addCleanup(self.ws.close)
        resp = self.ws.handshake("/ws/chat/%s?name=%s" % (room, name))
        test.assertEqual(resp.status, 101, resp)
        self.name = name

    def say(self, text):
        self.ws.send_text(json.dumps({"text": text}))

    def events(self, want, kinds=("message",), history=False):
        """The next @want live events of @kinds (others skipped), or replayed ones if
        @history."""
        out = []
        while len(out) < want:
            opcode, data = self.ws.recv_message()
            assert opcode == OP_TEXT, data
            ev = json.loads(data.decode("utf-8"))
            if ev.get("type") in kinds and bool(ev.get("history")) == history:
                out.append(ev)
        return out

    def own_join(self):
        """Waits for this client's own join announcement: it went out through the bus and
        came back, so this client's instance is subscribed."""
        while True:
            ev = self.events(1, kinds=("join",))[0]
            if ev["user"] == self.name:
                return


# --- Three instances ---------------------------------------------------------------------------


class ScaleOutCase(ServerTestCase):
    NAME_SEQ = [0]

    def unique(self, what):
        self.NAME_SEQ[0] += 1
        return "%s_%d_%d" % (what, os.getpid(), self.NAME_SEQ[0])

    def start_instances(self, n=3, **kwargs):
        self.pg, self.redis = shared_servers()
        self.name = self.unique("t")
        conf = ConfDir(files=example_conf(self.pg, self.redis, self.name, **kwargs), server=False)
        self.addCleanup(conf.cleanup)
        self.conf = conf
        return [self.start_server(conf=conf) for _ in range(n)]

    def start_nginx(self, servers):
        try:
            ngx = Nginx([s.port for s in servers])
        except services.Missing as e:
            need(str(e))
        self.addCleanup(ngx.cleanup)
        return ngx

    def outages_logged(self, srv, what):
        return len(re.findall(r"%s[^\n]* is unavailable" % re.escape(what), srv.log()))


class TestScaleOut(ScaleOutCase):
    def test_kv_written_through_one_is_read_through_the_others(self):
        a, b, c = self.start_instances()
        resp = http(a.port, "PUT", kpath("shared"), b'{"n": 1}')
        self.assertEqual(resp.status, 201, resp)
        v1 = etag(resp)
        for srv in (b, c):
            resp = http(srv.port, "GET", kpath("shared"))
            self.assertEqual((resp.status, resp.body, etag(resp)), (200, b'{"n": 1}', v1))
        resp = http(c.port, "GET", "/kv?prefix=sh")
        self.assertEqual(resp.json()["keys"], ["shared"])

    def test_if_match_conflicts_across_instances(self):
        a, b, c = self.start_instances()
        v1 = etag(http(a.port, "PUT", kpath("doc"), b'"one"'))
        resp = http(b.port, "PUT", kpath("doc"), b'"two"', {"If-Match": '"%d"' % v1})
        self.assertEqual(resp.status, 200, resp)
        v2 = etag(resp)
        resp = http(c.port, "PUT", kpath("doc"), b'"stale"', {"If-Match": '"%d"' % v1})
        self.assertEqual(resp.status, 412, resp)
        self.assertEqual(resp.header("Content-Type"), "application/problem+json")
        resp = http(a.port, "PUT", kpath("doc"), b'"again"', {"If-None-Match": "*"})
        self.assertEqual(resp.status, 412, resp)
        resp = http(a.port, "GET", kpath("doc"))
        self.assertEqual((resp.body, etag(resp)), (b'"two"', v2))
        # Racing compare-and-set from all three: exactly one wins.
        results = {}

        def racer(srv):
            results[srv.port] = http(srv.port, "PUT", kpath("doc"), b'"race"',
                                     {"If-Match": '"%d"' % v2}).status

        threads = [threading.Thread(target=racer, args=(s,)) for s in (a, b, c)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(sorted(results.values()), [200, 412, 412], results)

    def test_chat_clients_on_different_instances_see_each_other_in_order(self):
        servers = self.start_instances()
        ngx = self.start_nginx(servers)
        ports = [s.port for s in servers] + [ngx.port]
        clients = []
        for i, p in enumerate(ports):
            clients.append(ChatClient(self, p, "lobby", "u%d" % i))
            clients[-1].own_join()
        # The first client sees the others join, wherever they are.
        self.assertEqual([e["user"] for e in clients[0].events(3, kinds=("join",))],
                         ["u1", "u2", "u3"])
        per_client = 20
        for i in range(per_client):
            for c in clients:
                c.say("%s-%03d" % (c.name, i))
        for c in clients:
            got = c.events(per_client * len(clients))
            for sender in clients:
                texts = [e["text"] for e in got if e["user"] == sender.name]
                self.assertEqual(texts, ["%s-%03d" % (sender.name, i) for i in range(per_client)],
                                 "as seen by %s" % c.name)
        # History lives in PostgreSQL: a newcomer on another instance gets the latest.
        late = ChatClient(self, servers[2].port, "lobby", "late")
        self.assertIn(late.events(1, history=True)[0]["text"][:2], ("u0", "u1", "u2", "u3"))

    def test_kill_9_of_one_instance_and_the_others_go_on(self):
        servers = self.start_instances()
        ngx = self.start_nginx(servers)
        a, b, c = servers
        for i in range(10):
            self.assertIn(http(ngx.port, "PUT", kpath("k%d" % i), b"%d" % i).status, (200, 201))
        watcher = ChatClient(self, c.port, "room", "watch")
        watcher.own_join()
        a.proc.kill()
        a.proc.wait()
        a.returncode = 0  # killed on purpose: no exit status to check
        for i in range(10):
            resp = http(ngx.port, "GET", kpath("k%d" % i))
            self.assertEqual((resp.status, resp.body), (200, b"%d" % i), resp)
            resp = http(ngx.port, "PUT", kpath("after%d" % i), b"1")
            self.assertEqual(resp.status, 201, resp)
        speaker = ChatClient(self, b.port, "room", "speak")
        speaker.say("still here")
        self.assertEqual(watcher.events(1)[0]["text"], "still here")

    def test_database_restart_under_load(self):
        servers = self.start_instances(pg_timeout_ms=1000)
        ngx = self.start_nginx(servers)
        acked = {}
        statuses = []
        bad = []
        stop = threading.Event()

        def writer(n):
            i = 0
            while not stop.is_set():
                key = "w%d-%d" % (n, i)
                try:
                    resp = http(ngx.port, "PUT", kpath(key), b"%d" % i)
                except Exception as e:  # a hang or a dropped connection fails the test
                    bad.append(repr(e))
                    return
                statuses.append(resp.status)
                if resp.status in (200, 201):
                    acked[key] = b"%d" % i
                elif (resp.status != 503 or resp.header("Retry-After") != "1"
                      or resp.header("Content-Type") != "application/problem+json"):
                    bad.append(resp)
                i += 1

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        self.addCleanup(stop.set)
        wait_until(lambda: len(acked) >= 20, BOUND_S)
        self.pg.stop()
        self.assertTrue(wait_until(lambda: 503 in statuses, BOUND_S), "no 503 during the outage")
        self.pg.start()
        before = len(acked)
        self.assertTrue(wait_until(lambda: len(acked) > before + 20, BOUND_S),
                        "service did not come back")
        stop.set()
        for t in threads:
            t.join()
        self.assertEqual(bad, [])
        probe = next(iter(acked))
        for srv in servers:  # each instance reconnects by itself, after its own backoff
            self.assertTrue(wait_until(
                lambda: http(srv.port, "GET", kpath(probe)).status == 200, BOUND_S), srv.log())
        for key, value in acked.items():
            resp = http(servers[0].port, "GET", kpath(key))
            self.assertEqual((resp.status, resp.body), (200, value), key)
        for srv in servers:  # one line per outage, however many requests failed
            self.assertLessEqual(self.outages_logged(srv, "postgres store"), 1, srv.log())
        self.assertTrue(any(self.outages_logged(s, "postgres store") for s in servers))

    def test_redis_restart_and_channels_come_back(self):
        a, b, c = self.start_instances()
        alice = ChatClient(self, a.port, "r", "alice")
        alice.own_join()
        bob = ChatClient(self, b.port, "r", "bob")
        bob.own_join()
        self.redis.restart()
        # Resubscribed: bob's messages reach alice again (each attempt is a new message).
        seen = []

        def arrives():
            bob.say("ping-%d" % len(seen))
            seen.append(1)
            try:
                ev = alice.ws.recv_message(timeout=0.5)
            except Exception:
                return False
            return ev and b"ping-" in ev[1]

        self.assertTrue(wait_until(arrives, BOUND_S, interval=0.1))
        self.assertLessEqual(len(re.findall(r"channels in\) is unavailable", a.log())), 1)


# --- Channels over PostgreSQL LISTEN/NOTIFY ---------------------------------------------------


class TestChannelsOverPostgres(ScaleOutCase):
    """server.channels naming the postgres store: the same example without Redis."""

    def start_pg_bus_instances(self, n=3):
        self.pg, _ = shared_servers()
        self.name = self.unique("t")
        files = example_conf(self.pg, _shared["redis"], self.name)
        del files["06-redis.conf"]
        files["00-server.conf"] = set_key(files["00-server.conf"], "channels", '"main"')
        chat = set_key(files["50-chat.conf"], "max_text_bytes", "65536")
        files["50-chat.conf"] = set_key(chat, "max_message_bytes", "131072")
        conf = ConfDir(files=files, server=False)
        self.addCleanup(conf.cleanup)
        return [self.start_server(conf=conf) for _ in range(n)]

    def test_chat_clients_on_different_instances_see_each_other_in_order(self):
        servers = self.start_pg_bus_instances()
        clients = []
        for i, srv in enumerate(servers):
            clients.append(ChatClient(self, srv.port, "lobby", "u%d" % i))
            clients[-1].own_join()
        per_client = 20
        for i in range(per_client):
            for c in clients:
                c.say("%s-%03d" % (c.name, i))
        for c in clients:
            got = c.events(per_client * len(clients))
            for sender in clients:
                texts = [e["text"] for e in got if e["user"] == sender.name]
                self.assertEqual(texts, ["%s-%03d" % (sender.name, i) for i in range(per_client)],
                                 "as seen by %s" % c.name)
        # More than one notification holds (8000 bytes): it arrives whole, once, everywhere.
        big = "".join(chr(ord("a") + i % 26) for i in range(20000)) + "-end"
        clients[1].say(big)
        clients[1].say("after")
        for c in clients:
            self.assertEqual([e["text"] for e in c.events(2)], [big, "after"], c.name)
        for srv in servers:
            self.assertIn("(channels in): listening", srv.log())

    def test_postgres_restart_and_channels_come_back(self):
        a, b, _ = self.start_pg_bus_instances()
        alice = ChatClient(self, a.port, "r", "alice")
        alice.own_join()
        bob = ChatClient(self, b.port, "r", "bob")
        bob.own_join()
        self.pg.restart()
        # Listening again: bob's messages reach alice (each attempt is a new message).
        seen = []

        def arrives():
            bob.say("ping-%d" % len(seen))
            seen.append(1)
            try:
                ev = alice.ws.recv_message(timeout=0.5)
            except Exception:
                return False
            return ev and b"ping-" in ev[1]

        self.assertTrue(wait_until(arrives, BOUND_S, interval=0.1))
        self.assertLessEqual(len(re.findall(r"channels in\) is unavailable", a.log())), 1)


# --- Faults on one instance ------------------------------------------------------------------


class TestFaults(ScaleOutCase):
    def one_instance(self, driver, settings, db_dir):
        from test_kv import module_text
        from mhtest import HELLO_CONF, server_conf
        module = {"postgres": "store_postgres", "redis": "store_redis"}[driver]
        stores = (module_text(module, module + ".so")
                  + 'stores = (\n  { name = "main"; driver = "%s"; settings: { %s }; },\n'
                  '  { name = "side"; driver = "sqlite"; settings: { path = "%s/side.db"; }; }\n);\n'
                  % (driver, settings, db_dir))
        files = {"00-server.conf": server_conf(threads=2),
                 "05-stores.conf": stores,
                 "06-sqlite.conf": module_text("store_sqlite", "store_sqlite.so"),
                 "10-hello.conf": HELLO_CONF,
                 "40-kv.conf": module_text("kv", "kv.so", [
                     ("GET", "/kv/{key}", "get", 10000), ("PUT", "/kv/{key}", "put", 10000)],
                     stores=["main"]),
                 "50-chat.conf": read_example("conf.d/50-chat.conf").replace('["main"]',
                                                                              '["side"]')}
        conf = ConfDir(files=files, server=False)
        self.addCleanup(conf.cleanup)
        return self.start_server(conf=conf)

    def pg_settings(self, pg, port=None, timeout_ms=700):
        return ('host = "127.0.0.1"; port = %d; dbname = "postgres"; user = "modhost"; '
                'password_file = "%s"; table = "%s"; timeout_ms = %d;'
                % (port or pg.port, pg.passfile, self.unique("f"), timeout_ms))

    def redis_settings(self, redis, port=None, timeout_ms=700):
        return ('port = %d; password_file = "%s"; prefix = "%s:"; timeout_ms = %d;'
                % (port or redis.port, redis.passfile, self.unique("f"), timeout_ms))

    def assert_unavailable(self, srv, key):
        resp = http(srv.port, "PUT", kpath(key), b"1")
        self.assertEqual(resp.status, 503, resp)  # not the route's 504: within its deadline
        self.assertEqual(resp.header("Retry-After"), "1")
        self.assertEqual(resp.header("Content-Type"), "application/problem+json")
        self.assertEqual(resp.json()["status"], 503)
        resp = http(srv.port, "GET", kpath(key))
        self.assertEqual(resp.status, 503, resp)

    def assert_others_work(self, srv):
        self.assertEqual(http(srv.port, "GET", "/hello/x").status, 200)
        # The chat's history is in another store (SQLite): a message is kept and replayed.
        a = ChatClient(self, srv.port, "side", "a")
        a.say("kept")
        a.events(1)

        def replayed():  # history is written by a task: a newcomer sees it once written
            b = ChatClient(self, srv.port, "side", "b")
            try:
                while True:
                    opcode, data = b.ws.recv_message(timeout=1.0)
                    ev = json.loads(data.decode("utf-8"))
                    if ev.get("history") and ev.get("text") == "kept":
                        return True
            except (socket.timeout, TimeoutError):
                return False
            finally:
                b.ws.close()

        self.assertTrue(wait_until(replayed, BOUND_S))

    def outage_cycle(self, driver, server):
        tmp = tempfile.mkdtemp(prefix="mh-faults-")
        self.addCleanup(shutil.rmtree, tmp, True)
        settings = (self.pg_settings(server) if driver == "postgres"
                    else self.redis_settings(server))
        srv = self.one_instance(driver, settings, tmp)
        self.assertEqual(http(srv.port, "PUT", kpath("before"), b'"b"').status, 201)
        server.stop()
        for i in range(5):
            self.assert_unavailable(srv, "during%d" % i)
        self.assert_others_work(srv)
        server.start()
        self.assertTrue(wait_until(
            lambda: http(srv.port, "PUT", kpath("after"), b'"a"').status in (200, 201), BOUND_S))
        resp = http(srv.port, "GET", kpath("before"))
        self.assertEqual((resp.status, resp.body), (200, b'"b"'))
        self.assertEqual(self.outages_logged(srv, "%s store" % driver), 1, srv.log())
        self.assertEqual(len(re.findall(r"is reachable again", srv.log())), 1, srv.log())

    def test_postgres_down_then_back(self):
        pg, _ = shared_servers()
        self.outage_cycle("postgres", pg)

    def test_redis_down_then_back(self):
        _, redis = shared_servers()
        self.outage_cycle("redis", redis)

    def silent_listener(self):
        """A port that accepts connections and never answers: an unreachable server."""
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        self.addCleanup(s.close)
        return s.getsockname()[1]

    def test_a_server_that_never_answers_is_503_within_the_deadline(self):
        pg, redis = shared_servers()
        tmp = tempfile.mkdtemp(prefix="mh-faults-")
        self.addCleanup(shutil.rmtree, tmp, True)
        for driver, settings in (
                ("postgres", self.pg_settings(pg, port=self.silent_listener(), timeout_ms=300)),
                ("redis", self.redis_settings(redis, port=self.silent_listener(),
                                              timeout_ms=300))):
            with self.subTest(driver=driver):
                os.makedirs(os.path.join(tmp, driver))
                srv = self.one_instance(driver, settings, os.path.join(tmp, driver))
                self.assert_unavailable(srv, "x")
                self.assert_others_work(srv)
                self.stop_server(srv)

    def test_kill_9_of_modhost_loses_no_acknowledged_write(self):
        pg, redis = shared_servers()
        for driver, settings in (("postgres", self.pg_settings(pg)),
                                 ("redis", self.redis_settings(redis))):
            with self.subTest(driver=driver):
                tmp = tempfile.mkdtemp(prefix="mh-faults-")
                self.addCleanup(shutil.rmtree, tmp, True)
                srv = self.one_instance(driver, settings, tmp)
                acked = {}
                done = threading.Event()

                def writer():
                    i = 0
                    while not done.is_set():
                        try:
                            resp = http(srv.port, "PUT", kpath("k%d" % i), b"%d" % i)
                        except Exception:
                            return  # the server died under this request: not acknowledged
                        if resp.status == 201:
                            acked["k%d" % i] = b"%d" % i
                        i += 1

                t = threading.Thread(target=writer)
                t.start()
                wait_until(lambda: len(acked) >= 50, BOUND_S)
                srv.proc.kill()
                srv.proc.wait()
                done.set()
                t.join()
                srv.returncode = 0
                # Restarted on the same configuration, then killed the database too.
                (pg if driver == "postgres" else redis).kill()
                (pg if driver == "postgres" else redis).start()
                again = self.start_server(conf=self._conf_of(srv))
                for key, value in acked.items():
                    resp = http(again.port, "GET", kpath(key))
                    self.assertEqual((resp.status, resp.body), (200, value), key)
                self.stop_server(again)

    def _conf_of(self, srv):
        conf = ConfDir.__new__(ConfDir)
        conf.path = srv.conf_dir
        return conf


if __name__ == "__main__":
    unittest.main()
