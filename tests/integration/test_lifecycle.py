"""Start-up and shutdown: SIGTERM while a response is being written (the client still gets all
of it), SIGINT, refusing new connections while draining, closing idle keep-alive connections
without waiting for the drain deadline, SIGHUP, and module fini at exit."""

import os
import signal
import subprocess
import time
import unittest

from mhtest import (BIN, ECHO_CONF, HELLO_CONF, STOP_TIMEOUT_S, RawConnection, ServerTestCase,
                    build_request, connect_refused, module_conf, probe_path, run_cli,
                    sanitizer_lines, wait_until)

# Bounds for waits that must end long before the drain deadline (shutdown_timeout_ms below).
# They are generous on purpose: they catch a server that waits for the deadline, not speed.
PROMPT_EXIT_S = 5.0
DRAIN_DEADLINE_MS = 30000


def tcp_wmem_max():
    try:
        with open("/proc/sys/net/ipv4/tcp_wmem", encoding="ascii") as f:
            return int(f.read().split()[2])
    except (OSError, ValueError, IndexError):
        return 4 << 20


class LifecycleCase(ServerTestCase):
    def assert_exits_cleanly(self, srv, timeout=STOP_TIMEOUT_S):
        rc = srv.wait(timeout)
        self.assertIsNotNone(rc, "modhost still running %.0f s after the signal" % timeout)
        self.assertEqual(rc, 0, "modhost exited with status %s" % rc)
        self.assert_log_clean(srv)
        self.assertIn("info  server: stopped", srv.log())


class TestSignals(LifecycleCase):
    def test_sigterm_completes_response_in_flight(self):
        # More than the kernel can buffer on both sides, so part of the response is still in
        # the server when the signal arrives and only our reads let it finish.
        size = max(8 << 20, 2 * tcp_wmem_max() + (1 << 20))
        srv = self.start_server(limits={"max_body_bytes": 2 * size},
                                shutdown_timeout_ms=DRAIN_DEADLINE_MS)
        body = os.urandom(size)
        c = RawConnection(srv.port, rcvbuf=32 * 1024)
        self.addCleanup(c.close)
        c.send(build_request("POST", "/echo", body, {"Content-Type": "application/x-big"}))
        _, status, _, headers = c.read_head()
        self.assertEqual(status, 200)
        self.assertIn(("Content-Length", str(size)), headers)
        self.assertLess(len(c.pending()), size)

        srv.send_signal(signal.SIGTERM)
        self.assertTrue(srv.wait_log(r"server: SIGTERM received: stopping"),
                        "no shutdown line in the log")
        # The listeners close when draining starts, while our response is still unfinished.
        self.assertTrue(_wait_refused(srv.port), "new connections still accepted while draining")
        self.assertTrue(srv.running(), "modhost exited before the response was read")

        received = bytearray(c.pending())
        c.buf = b""
        reads = 0
        while len(received) < size:
            chunk = c.sock.recv(16 * 1024)
            if not chunk:
                break
            received += chunk
            reads += 1
            if reads % 16 == 0:
                time.sleep(0.002)  # pace the reader; nothing waits on this
        self.assertEqual(len(received), size, "response cut short after SIGTERM")
        self.assertTrue(bytes(received) == body, "response body differs from the request body")
        self.assertTrue(c.is_closed(), "connection left open after the drained response")
        self.assert_exits_cleanly(srv)
        log = srv.log()
        self.assertNotIn("drain deadline passed", log)
        self.assertRegex(log, r"access: POST /echo 200 %d " % size)

    def test_client_gone_mid_response_does_not_hold_shutdown(self):
        # A response whose client vanished is no longer in flight: the drain must not wait
        # for it until the deadline.
        size = max(8 << 20, 2 * tcp_wmem_max() + (1 << 20))
        srv = self.start_server(limits={"max_body_bytes": 2 * size},
                                shutdown_timeout_ms=DRAIN_DEADLINE_MS)
        c = RawConnection(srv.port, rcvbuf=32 * 1024)
        self.addCleanup(c.close)
        c.send(build_request("POST", "/echo", os.urandom(size)))
        self.assertEqual(c.read_head()[1], 200)
        c.close()  # with unread data: the server sees a reset while writing
        srv.send_signal(signal.SIGTERM)
        self.assert_exits_cleanly(srv, PROMPT_EXIT_S)
        self.assertNotIn("drain deadline passed", srv.log())

    def test_sigint_exits_0(self):
        srv = self.start_server()
        with RawConnection(srv.port) as c:
            self.assertEqual(c.request("GET", "/hello/x").status, 200)
        srv.send_signal(signal.SIGINT)
        self.assert_exits_cleanly(srv)
        self.assertIn("server: SIGINT received: stopping", srv.log())

    def test_sigterm_when_idle_exits_0_and_refuses_connections(self):
        srv = self.start_server(shutdown_timeout_ms=DRAIN_DEADLINE_MS)
        port = srv.port
        srv.send_signal(signal.SIGTERM)
        self.assert_exits_cleanly(srv, PROMPT_EXIT_S)
        self.assertIn("server: SIGTERM received: stopping (draining for up to %d ms)"
                      % DRAIN_DEADLINE_MS, srv.log())
        self.assertTrue(connect_refused(port))

    def test_sighup_reloads_and_keeps_serving(self):
        srv = self.start_server()
        srv.send_signal(signal.SIGHUP)
        self.assertTrue(srv.wait_log(r"info  reload: generation 2 serving"))
        self.assertTrue(srv.running())
        with RawConnection(srv.port) as c:
            self.assertEqual(c.request("GET", "/hello/still").json(),
                             {"message": "Hello, still!"})

    def test_sigusr1_keeps_serving(self):
        # logrotate's postrotate sends SIGUSR1: it must never stop the server.
        srv = self.start_server()
        srv.send_signal(signal.SIGUSR1)
        self.assertTrue(srv.wait_log(r"SIGUSR1: access lines go to stderr; nothing to reopen"),
                        srv.log())
        self.assertTrue(srv.running())
        with RawConnection(srv.port) as c:
            self.assertEqual(c.request("GET", "/hello/again").status, 200)
        srv.send_signal(signal.SIGTERM)
        self.assert_exits_cleanly(srv)

    def test_idle_keepalive_connections_are_closed_at_shutdown(self):
        srv = self.start_server(shutdown_timeout_ms=DRAIN_DEADLINE_MS)
        idle = []
        for i in range(6):
            c = RawConnection(srv.port)
            self.addCleanup(c.close)
            resp = c.request("GET", "/hello/k%d" % i)
            self.assertEqual(resp.status, 200)
            self.assertIsNone(resp.header("Connection"))
            idle.append(c)
        silent = RawConnection(srv.port)  # connected, never sent a byte
        self.addCleanup(silent.close)
        idle.append(silent)
        # Both loops have answered on kept-alive connections before the signal.
        self.assertTrue(srv.wait_log(r"access: GET /hello/k5 200"))

        srv.send_signal(signal.SIGTERM)
        # Far less than the 30 s drain deadline: idle connections are not waited for.
        self.assert_exits_cleanly(srv, PROMPT_EXIT_S)
        for i, c in enumerate(idle):
            self.assertTrue(c.is_closed(timeout=PROMPT_EXIT_S), "connection %d still open" % i)
            self.assertEqual(c.pending(), b"", "unexpected bytes on idle connection %d" % i)
        self.assertNotIn("drain deadline passed", srv.log())


@unittest.skipUnless(os.path.isfile(probe_path()), "it_probe.so is not built")
class TestModuleLifecycle(LifecycleCase):
    def probe_files(self):
        probe = module_conf("it_probe", probe_path(), [("GET", "/ping", "ping")])
        return {"10-hello.conf": HELLO_CONF, "20-echo.conf": ECHO_CONF, "30-probe.conf": probe}

    def test_module_fini_runs_at_shutdown(self):
        srv = self.start_server(files=self.probe_files())
        self.assertIn("it_probe: probe init", srv.log())
        with RawConnection(srv.port) as c:
            for _ in range(3):
                resp = c.request("GET", "/ping")
                self.assertEqual((resp.status, resp.body), (200, b"pong"))
        srv.send_signal(signal.SIGTERM)
        self.assert_exits_cleanly(srv)
        lines = srv.log().splitlines()

        def index(text):
            hits = [i for i, line in enumerate(lines) if text in line]
            self.assertEqual(len(hits), 1, "%r should be logged once:\n%s"
                             % (text, "\n".join(lines)))
            return hits[0]

        # init before listening; fini once, after the signal, with the state init made, and
        # before the server's last line.
        self.assertLess(index("it_probe: probe init"), index("listening on"))
        self.assertLess(index("SIGTERM received"), index("it_probe: probe fini requests=3"))
        self.assertLess(index("it_probe: probe fini"), index("server: stopped"))

    def test_check_runs_init_and_fini_without_serving(self):
        # `check` loads modules (init and fini run) and must leave nothing behind.
        conf = self.make_conf(files=self.probe_files())
        r = run_cli("check", "-c", conf.path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sanitizer_lines(r.stderr), [])
        self.assertEqual(r.stdout, "%s: OK: 4 files, 3 modules, 4 routes\n" % conf.path)


class TestOneServerPerAddress(LifecycleCase):
    """A second `serve` on the address or the pid file of a running one exits 1 naming the
    running pid; the first keeps serving and can still be stopped through its pid file."""

    def start_first(self, pid_file):
        conf = self.make_conf(extra='  pid_file = "%s";' % pid_file,
                              files={"10-hello.conf": HELLO_CONF})
        return conf, self.start_server(conf)

    def assert_first_unharmed(self, srv, pid_file):
        with RawConnection(srv.port) as c:
            self.assertEqual(c.request("GET", "/hello/one").status, 200)
        with open(pid_file, encoding="ascii") as f:
            self.assertEqual(int(f.read()), srv.pid)
        # `stop` waits until the pid is gone, so the server (this test's child) is reaped here.
        stop = subprocess.Popen([BIN, "stop", "--pid-file", pid_file], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, encoding="utf-8")
        self.assert_exits_cleanly(srv)
        out, err = stop.communicate(timeout=STOP_TIMEOUT_S)
        self.assertEqual(stop.returncode, 0, err)
        self.assertFalse(os.path.exists(pid_file))

    def test_second_serve_on_the_same_address_exits_1(self):
        run = self.make_conf(files={}, server=False).path
        pid_file = os.path.join(run, "a.pid")
        _, first = self.start_first(pid_file)
        other = self.make_conf(extra='  pid_file = "%s";' % os.path.join(run, "b.pid"),
                               files={"10-hello.conf": HELLO_CONF})
        r = run_cli("serve", "-c", other.path, "--listen", "127.0.0.1:%d" % first.port)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("127.0.0.1:%d: the address is already served by pid %d"
                      % (first.port, first.pid), r.stderr)
        self.assertFalse(os.path.exists(os.path.join(run, "b.pid")))
        self.assert_first_unharmed(first, pid_file)

    def test_second_serve_with_the_same_pid_file_exits_1(self):
        run = self.make_conf(files={}, server=False).path
        pid_file = os.path.join(run, "a.pid")
        conf, first = self.start_first(pid_file)
        r = run_cli("serve", "-c", conf.path, "--listen", "127.0.0.1:0")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("pid file %s is locked: modhost already runs as pid %d"
                      % (pid_file, first.pid), r.stderr)
        self.assert_first_unharmed(first, pid_file)

    def test_pid_file_left_by_a_killed_server_does_not_block(self):
        run = self.make_conf(files={}, server=False).path
        pid_file = os.path.join(run, "a.pid")
        conf, first = self.start_first(pid_file)
        first.stop(signal.SIGKILL)
        self.assertTrue(os.path.exists(pid_file))
        second = self.start_server(conf)
        self.assert_first_unharmed(second, pid_file)


def _wait_refused(port, timeout=STOP_TIMEOUT_S):
    return wait_until(lambda: connect_refused(port), timeout)


if __name__ == "__main__":
    unittest.main()
