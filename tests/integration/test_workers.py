"""The master and its worker processes, with the fault-injection module fx_fault
(tests/modules): a handler that dereferences NULL on a loop or on the pool, aborts or never
returns costs only the requests of the worker it kills. The master reports what that worker
was running (module, handler, route, request), replaces it at once (the time from the death to
the first 200 from the replacement is printed, not asserted), keeps the listening sockets so
no connection is refused meanwhile, quarantines a module that keeps crashing until the next
reload, and the loop watchdog reports a stalled loop and replaces a stuck worker.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import socket
import threading
import time
import unittest

from mhtest import (HELLO_CONF, IO_TIMEOUT_S, ConnectionClosed, RawConnection, ServerTestCase,
                    fixture_path, have_fixture, module_conf, run_cli, server_conf, wait_until)
from test_kv import kv_files
from ws_client import OP_TEXT, WSConnection, ws_module_conf

# Under AddressSanitizer the faults must reach the server's own handler and end the worker
# with the signal, as in a production build: the sanitizer would report them and exit 1.
os.environ["ASAN_OPTIONS"] = ":".join(
    filter(None, [os.environ.get("ASAN_OPTIONS"),
                  "handle_segv=0:handle_sigbus=0:handle_sigfpe=0:handle_sigill=0:handle_abort=0"]))

FAULT_ROUTES = [("GET", "/ok", "ok"), ("GET", "/segv", "segv_loop"),
                ("GET", "/segv_pool", "segv_pool"), ("GET", "/abort", "abort"),
                ("GET", "/spin", "spin"), ("GET", "/sleep/{ms}", "sleep")]
FAULT_CONF = ws_module_conf(
    "fx_fault", fixture_path("fx_fault.so"),
    [dict(path="/ws/segv_open", on_open="ws_segv_open", on_message="ws_echo"),
     dict(path="/ws/segv_close", on_message="ws_echo", on_close="ws_segv_close")],
    routes=FAULT_ROUTES)
ECHO_WS_CONF = ws_module_conf("echo", "echo.so",
                              [dict(path="/ws/echo", on_message="ws_echo", ping_interval_ms=0,
                                    idle_timeout_ms=0)],
                              routes=[("POST", "/echo", "echo")])
FILES = {"10-hello.conf": HELLO_CONF, "20-echo.conf": ECHO_WS_CONF, "30-fault.conf": FAULT_CONF}


def server_text(processes=1, crash_limit=100, stall_ms=None, kill_ms=None, threads=2,
                extra=""):
    limits = {}
    if stall_ms is not None:
        limits["loop_stall_ms"] = stall_ms
    if kill_ms is not None:
        limits["loop_stall_kill_ms"] = kill_ms
    return server_conf(threads=threads, limits=limits or None,
                       extra="  processes = %d;\n  crash_limit = %d;\n%s"
                       % (processes, crash_limit, extra))


def crash(port, target):
    """Sends a request that kills its worker; True if the connection ended without answer."""
    with RawConnection(port) as c:
        try:
            c.request("GET", target)
        except (ConnectionClosed, ConnectionResetError):
            return True
    return False


def server_side_owner(server_port, client_sock, pids):
    """Which of @pids holds the server side of @client_sock (looked up in /proc)."""
    cport = client_sock.getsockname()[1]
    inode = None
    with open("/proc/net/tcp", encoding="ascii") as f:
        for line in f.readlines()[1:]:
            parts = line.split()
            lport = int(parts[1].split(":")[1], 16)
            rport = int(parts[2].split(":")[1], 16)
            if lport == server_port and rport == cport:
                inode = parts[9]
    for pid in pids:
        try:
            for fd in os.listdir("/proc/%d/fd" % pid):
                try:
                    if os.readlink("/proc/%d/fd/%s" % (pid, fd)) == "socket:[%s]" % inode:
                        return pid
                except OSError:
                    pass
        except OSError:
            pass
    return None


class HelloLoad(threading.Thread):
    """Loops GET /hello on a new connection each time; counts answers, lost requests (the
    connection ended without an answer) and refused connections."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.stop = threading.Event()
        self.ok = self.lost = self.refused = 0
        self.other = []
        self.last_ok = 0.0

    def run(self):
        while not self.stop.is_set():
            try:
                with RawConnection(self.port, timeout=IO_TIMEOUT_S) as c:
                    resp = c.request("GET", "/hello/load")
                if resp.status == 200:
                    self.ok += 1
                    self.last_ok = time.monotonic()
                else:
                    self.other.append(resp.status)
            except ConnectionRefusedError:
                self.refused += 1
            except (ConnectionClosed, ConnectionResetError):
                self.lost += 1


@unittest.skipUnless(have_fixture("fx_fault.so"), "fixture fx_fault.so is not built")
class WorkerCase(ServerTestCase):
    def start(self, **kwargs):
        conf = self.make_conf(server=server_text(**kwargs), files=FILES)
        return self.start_server(conf)

    def assert_report(self, srv, handler, route, signame):
        m = srv.wait_log(r"error master: worker \d+ pid \d+ died of signal \d+ \(%s\)[^\n]*: "
                         r"[^\n]*module fx_fault handler %s route \"%s\""
                         % (signame, handler, re.escape(route)))
        self.assertTrue(m, "no crash report naming fx_fault/%s/%s" % (handler, route))
        return m

    def load(self, srv):
        load = HelloLoad(srv.port)
        load.start()
        self.addCleanup(load.join, IO_TIMEOUT_S)
        self.addCleanup(load.stop.set)
        self.assertTrue(wait_until(lambda: load.ok >= 20, IO_TIMEOUT_S), "no load answered")
        return load


class TestCrashUnderLoad(WorkerCase):
    def test_segfault_on_a_loop_costs_only_its_requests(self):
        srv = self.start(processes=1)
        load = self.load(srv)
        before = srv.worker_pid
        self.assertTrue(crash(srv.port, "/segv"), "the crashing request got an answer")
        died = time.monotonic()
        self.assertTrue(wait_until(lambda: load.last_ok > died, IO_TIMEOUT_S),
                        "no 200 after the crash")
        print("\n  death to first 200 from the replacement: %.1f ms (master says: %s)"
              % ((load.last_ok - died) * 1000,
                 (srv.wait_log(r"serving (\d+) ms after its predecessor died") or [None, "?"])[1]))
        self.assertNotEqual(srv.worker_pid, before)
        self.assert_report(srv, "segv_loop", "/segv", "Segmentation fault")
        ok_at_crash = load.ok
        self.assertTrue(wait_until(lambda: load.ok >= ok_at_crash + 50, IO_TIMEOUT_S))
        load.stop.set()
        load.join(IO_TIMEOUT_S)
        print("  load: %d answered, %d lost with the dead worker, %d refused"
              % (load.ok, load.lost, load.refused))
        self.assertEqual(load.refused, 0, "connections were refused")
        self.assertLessEqual(load.lost, 1, "more requests lost than the one in flight")
        self.assertEqual(load.other, [])
        self.stop_server(srv)

    def test_pool_segfault_and_abort_are_reported_and_replaced(self):
        srv = self.start(processes=1)
        self.assertTrue(crash(srv.port, "/segv_pool"))
        self.assert_report(srv, "segv_pool", "/segv_pool", "Segmentation fault")
        with RawConnection(srv.port) as c:
            self.assertEqual(c.request("GET", "/hello/again").status, 200)
        self.assertTrue(crash(srv.port, "/abort"))
        self.assert_report(srv, "abort", "/abort", "Aborted")
        log = srv.log()
        self.assertRegex(log, r"pool thread \d+: module fx_fault handler segv_pool")
        with RawConnection(srv.port) as c:
            self.assertEqual(c.request("GET", "/ok").body, b"ok")
        self.stop_server(srv)

    def test_websocket_hooks_that_crash_are_reported(self):
        srv = self.start(processes=1)
        # on_open: the upgrade never gets its 101.
        with WSConnection(srv.port) as c:
            with self.assertRaises((ConnectionClosed, ConnectionResetError)):
                c.handshake("/ws/segv_open")
        self.assert_report(srv, "ws_segv_open", "/ws/segv_open", "Segmentation fault")
        self.assertRegex(srv.log(), r"loop thread \d+: module fx_fault handler ws_segv_open "
                                    r"route \"/ws/segv_open\" request WS /ws/segv_open")
        # on_close: the connection works until the client closes it.
        before = srv.worker_pid
        with WSConnection(srv.port) as c:
            c.open("/ws/segv_close")
            c.send_text("hi")
            self.assertEqual(c.recv_message(), (OP_TEXT, b"hi"))
            c.send_close(1000)
        self.assert_report(srv, "ws_segv_close", "/ws/segv_close", "Segmentation fault")
        self.assertTrue(wait_until(lambda: srv.worker_pids() and srv.worker_pid != before,
                                   IO_TIMEOUT_S))
        with RawConnection(srv.port) as c:
            self.assertEqual(c.request("GET", "/ok").body, b"ok")
        self.stop_server(srv)

    def test_two_workers_websockets_of_the_survivor_stay(self):
        srv = self.start(processes=2)
        self.assertTrue(wait_until(lambda: len(srv.worker_pids()) == 2, IO_TIMEOUT_S))
        clients = []
        owners = {}
        # Enough clients that both workers hold some (each accepts from the shared sockets).
        for i in range(40):
            c = WSConnection(srv.port)
            self.addCleanup(c.close)
            c.open("/ws/echo")
            self.assertEqual(c.roundtrip("hi %d" % i), b"hi %d" % i)
            clients.append(c)
        pids = srv.worker_pids()
        for c in clients:
            owners[c] = server_side_owner(srv.port, c.sock, pids)
        held = {pid: sum(1 for o in owners.values() if o == pid) for pid in pids}
        print("\n  WebSockets per worker: %r" % held)
        if min(held.values()) == 0:
            self.skipTest("every WebSocket landed on one worker")
        load = self.load(srv)
        victim = pids[0]
        os.kill(victim, signal.SIGKILL)  # as the kernel's OOM killer would
        self.assertTrue(wait_until(lambda: victim not in srv.worker_pids()
                                   and len(srv.worker_pids()) == 2, IO_TIMEOUT_S))
        for c in clients:
            if owners[c] == victim:
                self.assertTrue(c.is_closed(), "a WebSocket of the dead worker is still open")
            else:
                self.assertEqual(c.roundtrip("still"), b"still")
        load.stop.set()
        load.join(IO_TIMEOUT_S)
        self.assertEqual(load.refused, 0)
        # The load keeps the victim busy: the kill may find a loop thread inside the hello
        # handler, and then the report names that request instead.
        self.assertRegex(srv.log(), r"worker \d pid %d died of signal 9 \(Killed\): "
                                    r"(no thread was in a handler|loop thread \d+: module hello "
                                    r"handler hello route \"/hello/\{name\}\" request GET "
                                    r"/hello/load)" % victim)
        self.stop_server(srv)


class TestQuarantine(WorkerCase):
    def status_line(self, srv, admin):
        r = run_cli("status", "--admin", "127.0.0.1:%d" % admin)
        self.assertIn(r.returncode, (0, 1), r.stderr)
        return [line for line in r.stdout.splitlines() if line.startswith("fx_fault ")][0]

    def test_quarantined_after_the_limit_and_back_after_a_reload(self):
        from test_admin import admin_port
        srv = self.start(processes=1, crash_limit=2,
                         extra='  admin: { listen = "127.0.0.1:0"; };')
        admin = admin_port(srv)
        self.assertNotIn("QUARANTINED", self.status_line(srv, admin))
        self.assertTrue(crash(srv.port, "/segv"))
        self.assert_report(srv, "segv_loop", "/segv", "Segmentation fault")
        with RawConnection(srv.port) as c:
            self.assertEqual(c.request("GET", "/ok").status, 200)  # one crash: still served
        self.assertTrue(crash(srv.port, "/segv_pool"))
        self.assertTrue(srv.wait_log(r"error master: module 'fx_fault' crashed a worker 2 times "
                                     r"within \d+ ms \(server.crash_limit 2\): quarantined"))
        with RawConnection(srv.port) as c:
            resp = c.request("GET", "/ok")
            self.assertEqual(resp.status, 503)
            self.assertEqual(resp.header("Content-Type"), "application/problem+json")
            self.assertIn("module 'fx_fault' is out of service", resp.json()["detail"])
            self.assertEqual(c.request("GET", "/segv").status, 503)  # it cannot crash now
            self.assertEqual(c.request("GET", "/hello/x").status, 200)  # other modules serve
        self.assertIn("QUARANTINED", self.status_line(srv, admin))
        srv.send_signal(signal.SIGHUP)
        self.assertTrue(srv.wait_log(r"master: reload succeeded: quarantined modules are back"))
        with RawConnection(srv.port) as c:
            self.assertEqual(c.request("GET", "/ok").body, b"ok")
        self.assertNotIn("QUARANTINED", self.status_line(srv, admin))
        self.stop_server(srv)


class TestLoopWatchdog(WorkerCase):
    def test_stall_is_logged_and_a_stuck_worker_replaced(self):
        srv = self.start(processes=1, stall_ms=100, kill_ms=1000)
        with RawConnection(srv.port) as c:
            self.assertEqual(c.request("GET", "/sleep/400").body, b"slept")
        self.assertTrue(srv.wait_log(r"warn  master: worker 0 pid \d+: loop thread \d+ has been "
                                     r"in module fx_fault handler sleep \(GET /sleep/400\) for "
                                     r"\d+ ms"))
        before = srv.worker_pid
        self.assertTrue(crash(srv.port, "/spin"))
        self.assertTrue(srv.wait_log(r"past limits.loop_stall_kill_ms 1000: replacing the worker"))
        self.assert_report(srv, "spin", "/spin", "Killed")
        self.assertTrue(wait_until(lambda: srv.worker_pids() and srv.worker_pid != before,
                                   IO_TIMEOUT_S))
        with RawConnection(srv.port) as c:
            self.assertEqual(c.request("GET", "/hello/x").status, 200)
        self.stop_server(srv)

    def test_without_a_hard_limit_a_stall_is_only_logged(self):
        srv = self.start(processes=1, stall_ms=100, kill_ms=0)
        before = srv.worker_pid
        with RawConnection(srv.port) as c:
            self.assertEqual(c.request("GET", "/sleep/600").body, b"slept")
        self.assertTrue(srv.wait_log(r"handler sleep \(GET /sleep/600\) for \d+ ms"))
        self.assertEqual(srv.worker_pid, before)
        self.assertNotIn("replacing the worker", srv.log())
        self.stop_server(srv)


class TestChannelsAcrossWorkers(WorkerCase):
    MEMBERS = 24
    PER_SENDER = 100

    def test_a_room_spans_the_workers_in_order_per_publisher(self):
        from test_ws_lifecycle import CHAT_FILE, chat_events
        conf = self.make_conf(server=server_text(processes=2),
                              files={"10-hello.conf": HELLO_CONF, "30-chat.conf": CHAT_FILE})
        srv = self.start_server(conf)
        self.assertTrue(wait_until(lambda: len(srv.worker_pids()) == 2, IO_TIMEOUT_S))
        pids = srv.worker_pids()
        members = []
        for i in range(self.MEMBERS):
            c = WSConnection(srv.port)
            self.addCleanup(c.close)
            c.open("/ws/chat/span?name=u%d" % i)
            members.append(c)
        owners = [server_side_owner(srv.port, c.sock, pids) for c in members]
        print("\n  chat members per worker: %r" % {p: owners.count(p) for p in pids})
        if len(set(owners)) < 2:
            self.skipTest("every member landed on one worker")
        # One sender on each worker, their messages interleaved.
        senders = [members[owners.index(pids[0])], members[owners.index(pids[1])]]
        names = ["u%d" % members.index(c) for c in senders]
        for k in range(self.PER_SENDER):
            for s_i, c in enumerate(senders):
                c.send_text('{"text": "s%d-%d"}' % (s_i, k))
        for i, c in enumerate(members):
            events = chat_events(c, 2 * self.PER_SENDER)
            for s_i, name in enumerate(names):
                texts = [e["text"] for e in events if e["user"] == name]
                self.assertEqual(texts, ["s%d-%d" % (s_i, k) for k in range(self.PER_SENDER)],
                                 "member u%d (worker %s): %s's messages lost or reordered"
                                 % (i, owners[i], name))
        self.stop_server(srv)


class TestReloadAndStop(WorkerCase):
    def test_reload_reaches_every_worker_and_stop_drains_them(self):
        run = self.make_conf(files={}, server=False).path
        pid_file = os.path.join(run, "modhost.pid")
        conf = self.make_conf(server=server_text(processes=3, extra='  pid_file = "%s";'
                                                 % pid_file), files=FILES)
        srv = self.start_server(conf)
        self.assertTrue(wait_until(lambda: len(srv.worker_pids()) == 3, IO_TIMEOUT_S))
        conf.write("10-hello.conf", HELLO_CONF.replace("/hello/{name}", "/hi/{name}"))
        r = run_cli("reload", "-c", conf.path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("now serving generation 2", r.stdout)
        # New connections land on any worker: every one of them serves the new routes.
        for i in range(30):
            with RawConnection(srv.port) as c:
                self.assertEqual(c.request("GET", "/hi/n%d" % i).status, 200)
                self.assertEqual(c.request("GET", "/hello/n%d" % i).status, 404)
        self.assertEqual(len(re.findall(r"reload: generation 2 serving", srv.log())), 3)
        workers = srv.worker_pids()
        self.stop_server(srv)
        self.assertEqual(len(re.findall(r"info  server: stopped after 1 reloads", srv.log())), 3)
        for pid in workers:
            self.assertFalse(os.path.exists("/proc/%d/status" % pid))


class TestReloadCheckedFirst(WorkerCase):
    def test_a_bad_reload_never_reaches_the_workers(self):
        """With several workers the master checks the new configuration in a child process
        first: a bad one fails the reload before any worker is asked, so no two workers can
        end up on different generations."""
        run = self.make_conf(files={}, server=False).path
        pid_file = os.path.join(run, "modhost.pid")
        conf = self.make_conf(server=server_text(processes=2, extra='  pid_file = "%s";'
                                                 % pid_file), files=FILES)
        srv = self.start_server(conf)
        self.assertTrue(wait_until(lambda: len(srv.worker_pids()) == 2, IO_TIMEOUT_S))
        conf.write("10-hello.conf", HELLO_CONF.replace('handler = "hello"', 'handler = "helo"'))
        # SIGHUP itself: `modhost reload` would refuse to signal a configuration its own
        # check fails.
        srv.send_signal(signal.SIGHUP)
        self.assertTrue(srv.wait_log(r"reload: checking the new configuration in pid \d+"))
        self.assertTrue(srv.wait_log(r"error reload: [^\n]*10-hello\.conf:\d+: [^\n]*module "
                                     r"'hello' has no handler 'helo'"))
        self.assertTrue(srv.wait_log(r"reload failed with 1 error \(1 failed so far\); the "
                                     r"workers were not asked and still serve generation 1"))
        self.assertNotIn("reload: reading", srv.log())  # no worker read it
        with RawConnection(srv.port) as c:
            self.assertEqual(c.request("GET", "/hello/still").status, 200)
        # Fixed: the check passes and both workers switch.
        conf.write("10-hello.conf", HELLO_CONF.replace("/hello/{name}", "/hi/{name}"))
        r = run_cli("reload", "-c", conf.path)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("now serving generation 2", r.stdout)
        self.assertEqual(len(re.findall(r"reload: generation 2 serving", srv.log())), 2)
        self.stop_server(srv)


class TestMetricsOfEveryWorker(WorkerCase):
    def test_metrics_sum_every_worker(self):
        """With several workers, whichever one answers a scrape merges every worker's numbers
        (each pins a snapshot about once a second): the request count is the whole count."""
        from test_admin import admin_extra, admin_port, gauge, get, parse_metrics
        conf = self.make_conf(server=server_text(
            processes=2, threads=1, extra=admin_extra(more="  workers = 3;\n")), files=FILES)
        srv = self.start_server(conf)
        admin = admin_port(srv)
        self.assertTrue(wait_until(lambda: len(srv.worker_pids()) == 2, IO_TIMEOUT_S))
        pids = srv.worker_pids()
        owners = {}
        total = 40
        for i in range(total):
            with RawConnection(srv.port) as c:
                self.assertEqual(c.request("GET", "/hello/n%d" % i).status, 200)
                owner = server_side_owner(srv.port, c.sock, pids)
                owners[owner] = owners.get(owner, 0) + 1
        print("\n  requests per worker: %r" % owners)

        def hello_total(text):
            samples, _ = parse_metrics(text)
            return gauge(samples, "modhost_requests_total", route="/hello/{name}")

        # Every scrape sees all of them, whichever worker answers it, once the other
        # worker's snapshot is newer than the requests (poll until then).
        self.assertTrue(wait_until(
            lambda: all(hello_total(get(admin, "/metrics").body.decode()) == total
                        for _ in range(6)), IO_TIMEOUT_S), "the scrapes never added up")
        text = get(admin, "/metrics").body.decode()
        samples, types = parse_metrics(text)
        self.assertEqual(gauge(samples, "modhost_build_info"), 1)  # not one per worker
        self.assertEqual(gauge(samples, "modhost_generation"), 1)
        self.assertEqual(gauge(samples, "modhost_pool_workers"), 2 * 3)  # both pools
        self.assertEqual(types["modhost_requests_total"], "counter")
        promtool = shutil.which("promtool")
        if promtool:
            out = subprocess.run([promtool, "check", "metrics"], input=text, encoding="utf-8",
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            self.assertEqual(out.returncode, 0, out.stdout)
        # /status.json (the status page, `modhost status`) adds up the same way, per module.
        def status():
            return json.loads(get(admin, "/status.json").body)

        self.assertTrue(wait_until(lambda: all(status()["totals"]["requests"] == total
                                               for _ in range(6)), IO_TIMEOUT_S),
                        "the status documents never added up")
        st = status()
        self.assertEqual(st["workers"], 2)
        self.assertIn(st["pid"], pids)
        hello = [m for m in st["modules"] if m["name"] == "hello"][0]
        self.assertEqual(hello["requests"], total)
        self.assertEqual(sum(hello["latency"]), total)
        self.assertEqual(st["totals"]["pool_workers"], 2 * 3)
        self.assertGreater(hello["p99_us"], 0)
        r = run_cli("status", "--admin", "127.0.0.1:%d" % admin)
        self.assertIn(r.returncode, (0, 1), r.stderr)
        self.assertRegex(r.stdout, r"2 worker processes \(pid \d+ answered\)")
        self.assertRegex(r.stdout, r"requests %d " % total)
        if len([o for o in owners if o]) < 2:
            self.skipTest("every request landed on one worker")
        self.stop_server(srv)


class TestCheck(ServerTestCase):
    def test_check_warns_about_the_memory_store_with_several_processes(self):
        for processes, warned in ((1, False), (2, True)):
            conf = self.make_conf(server=server_text(processes=processes),
                                  files=kv_files("memory"))
            r = run_cli("check", "-c", conf.path)
            self.assertEqual(r.returncode, 0, r.stderr)
            found = re.search(r"05-stores.conf:\d+: warning: store 'main' uses the memory "
                              r"driver, which is per process: with server.processes = 2", r.stderr)
            self.assertEqual(bool(found), warned, r.stderr)


if __name__ == "__main__":
    unittest.main()
