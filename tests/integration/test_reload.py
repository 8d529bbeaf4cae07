"""Configuration reload (SIGHUP, `modhost reload`): requests under load never fail while the
routes change, a module file rebuilt in place is mapped anew (and an unchanged one never is),
a bad configuration is refused with every error and the old one keeps serving, WebSockets and
long requests finish on the generation they started on, repeated reloads do not grow the
process, and the operator safety checks (file permissions, privilege drop, `modhost stop`).

The fixture module `ver` (tests/modules) is built twice: ver_a.so answers "A", ver_b.so "B".
"""

import base64
import hashlib
import os
import pwd
import re
import shutil
import signal
import struct
import subprocess
import tempfile
import threading
import unittest

from mhtest import (BIN, ECHO_CONF, IO_TIMEOUT_S, MODULE_DIR, STOP_TIMEOUT_S, ConnectionClosed,
                    RawConnection, Server, ServerTestCase, build_request, fixture_path,
                    have_fixture, module_conf, run_cli, server_conf, wait_until)

RELOAD_FIXTURE_DIR = os.path.abspath(
    os.environ.get("MODHOST_RELOAD_FIXTURE_DIR")
    or os.path.join(os.path.dirname(BIN), "tests", "modules"))
VER_A = os.path.join(RELOAD_FIXTURE_DIR, "ver_a.so")
VER_B = os.path.join(RELOAD_FIXTURE_DIR, "ver_b.so")

# Bounds for waits; they only decide how long a broken server may hang a test.
RELOAD_TIMEOUT_S = 30.0
LOAD_CLIENTS_KEEPALIVE = 2
LOAD_CLIENTS_NEW_CONN = 2
LOAD_RELOADS = 24
UNCHANGED_RELOADS = 100
UNCHANGED_BASELINE_AT = 5
RSS_TOLERANCE_KIB = 2048

GOING_AWAY = 1001
NORMAL_CLOSURE = 1000


def install_module(src, dest):
    """Puts a copy of @src at @dest the way a build or a package manager does: write a new
    file beside it, then rename it over the old one. The old file keeps its inode (and the
    server's mapping of it stays intact); the path now names a new inode.

    Copying over the old file in place (`cp new.so old.so`, same inode) is not tested: it
    rewrites the pages the running server has mapped as code, so the old generation would run
    a mix of old and new bytes and may crash; the loader can only see such a file as unchanged.
    Replacing by rename is the supported way, and the one this file exercises."""
    tmp = dest + ".tmp"
    shutil.copyfile(src, tmp)
    os.chmod(tmp, 0o755)
    os.rename(tmp, dest)


def ver_conf(path, routes=(("GET", "/v", "v"), ("GET", "/slow", "slow")), websockets=()):
    """Text of a module file for `ver` at @path; @websockets holds (path, extra) pairs."""
    text = module_conf("ver", path, list(routes))
    if websockets:
        body = ",\n".join('    { path = "%s"; on_message = "ws"; on_close = "ws_gone";%s }'
                          % (p, extra) for p, extra in websockets)
        text = text.replace("};\n", "  websockets = (\n%s\n  );\n};\n" % body)
    return text


def hello_conf(paths):
    return module_conf("hello", "hello.so", [("GET", p, "hello") for p in paths],
                       {"greeting": "Hello"})


def parse_routes(text):
    """`modhost routes` output as a set of (method, path, module, handler)."""
    lines = text.strip().splitlines()
    if not lines or lines[0].split() != ["METHOD", "PATH", "MODULE", "HANDLER"]:
        raise AssertionError("unexpected `modhost routes` output:\n" + text)
    return {tuple(line.split(None, 3)) for line in lines[1:]}


def vm_rss_kib(pid):
    with open("/proc/%d/status" % pid, encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/%d/status" % pid)


def status_ids(pid, key):
    with open("/proc/%d/status" % pid, encoding="ascii") as f:
        for line in f:
            if line.startswith(key + ":"):
                return [int(x) for x in line.split()[1:]]
    raise AssertionError("no %s in /proc/%d/status" % (key, pid))


def mapped_module_files(pid, dirs):
    """Distinct module files mapped by @pid from one of @dirs. The server maps a private copy
    of each file (a memfd named "/memfd:PATH", always " (deleted)"); each copy has an inode
    of its own, so a file replaced on disk still counts as the mapping it is."""
    prefixes = tuple(os.path.join(os.path.realpath(d), "") for d in dirs)
    files = set()
    with open("/proc/%d/maps" % pid, encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.split(None, 5)
            if len(parts) < 6:
                continue
            path = parts[5].strip()
            if path.endswith(" (deleted)"):
                path = path[:-len(" (deleted)")]
            if path.startswith("/memfd:"):
                path = path[len("/memfd:"):]
            if path.endswith(".so") and path.startswith(prefixes):
                files.add((parts[3], parts[4]))
    return files


def has_sanitizer(pid):
    with open("/proc/%d/maps" % pid, encoding="utf-8", errors="replace") as f:
        return any("libasan" in line or "libtsan" in line for line in f)


def log_index(log, pattern, start=0):
    """Index of the first log line from @start that matches the regex @pattern, or -1."""
    rx = re.compile(pattern)
    lines = log.splitlines()
    for i in range(start, len(lines)):
        if rx.search(lines[i]):
            return i
    return -1


# --- A minimal WebSocket client (RFC 6455) on the harness's raw connection -----------------

class WebSocket:
    """A blocking client: the handshake, masked text frames out, frames in, the close
    handshake. Pings from the server are answered and not returned."""

    def __init__(self, port, path):
        self.conn = RawConnection(port)
        key = base64.b64encode(os.urandom(16)).decode("ascii")
        self.conn.send(build_request("GET", path, headers=[
            ("Upgrade", "websocket"), ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", key), ("Sec-WebSocket-Version", "13")]))
        _, status, _, headers = self.conn.read_head()
        if status != 101:
            raise AssertionError("WebSocket handshake on %s answered %d" % (path, status))
        accept = base64.b64encode(hashlib.sha1(
            (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode("ascii")).digest()).decode()
        if dict((k.lower(), v) for k, v in headers).get("sec-websocket-accept") != accept:
            raise AssertionError("bad Sec-WebSocket-Accept in %r" % headers)

    def close_socket(self):
        self.conn.close()

    def send_frame(self, opcode, payload):
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        else:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.conn.send(head + mask + masked)

    def send_text(self, text):
        self.send_frame(0x1, text.encode("utf-8"))

    def recv_frame(self):
        """(opcode, payload) of the next data or close frame."""
        while True:
            b0, b1 = self.conn.read_exact(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self.conn.read_exact(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self.conn.read_exact(8))[0]
            mask = self.conn.read_exact(4) if b1 & 0x80 else None
            payload = self.conn.read_exact(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            opcode = b0 & 0x0F
            if opcode == 0x9:
                self.send_frame(0xA, payload)
                continue
            if opcode == 0xA:
                continue
            return opcode, payload

    def echo(self, text):
        """Sends @text and returns the text message that comes back."""
        self.send_text(text)
        opcode, payload = self.recv_frame()
        if opcode != 0x1:
            raise AssertionError("expected a text message, got opcode 0x%x %r" % (opcode, payload))
        return payload.decode("utf-8")

    def expect_close(self):
        """Waits for the server's close frame; returns its code (None if it has none)."""
        opcode, payload = self.recv_frame()
        if opcode != 0x8:
            raise AssertionError("expected a close frame, got opcode 0x%x %r" % (opcode, payload))
        return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None

    def close(self, code=NORMAL_CLOSURE):
        """Our side of a clean close: our frame, the server's answer; returns its code."""
        self.send_frame(0x8, struct.pack("!H", code))
        return self.expect_close()

    def answer_close(self, code):
        self.send_frame(0x8, struct.pack("!H", code))

    def closed(self, timeout=IO_TIMEOUT_S):
        """True once the server has closed the TCP connection."""
        return self.conn.is_closed(timeout)


# --- Continuous client load ----------------------------------------------------------------

class LoadClients:
    """Threads that request routes present in every configuration until stopped: some on one
    kept-alive connection each, some on a new connection per request. Any error, reset,
    timeout, unexpected answer or `Connection: close` is recorded as a failure."""

    TARGETS = (
        ("GET", "/greet/w", lambda r: r.json() == {"message": "Hello, w!"}),
        ("GET", "/v", lambda r: r.body == b"A"),
        ("GET", "/slow?ms=0", lambda r: r.json() == {"version": "A", "slept_ms": 0}),
    )

    def __init__(self, port, keepalive=LOAD_CLIENTS_KEEPALIVE, new_conn=LOAD_CLIENTS_NEW_CONN):
        self.port = port
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.failures = []
        self.counts = [0] * (keepalive + new_conn)
        self.threads = [threading.Thread(target=self._keepalive, args=(i,), daemon=True)
                        for i in range(keepalive)]
        self.threads += [threading.Thread(target=self._new_conn, args=(keepalive + i,),
                                          daemon=True) for i in range(new_conn)]

    def start(self):
        for t in self.threads:
            t.start()

    def stop(self):
        self.stop_event.set()
        for t in self.threads:
            t.join(IO_TIMEOUT_S + 5)
        return [t for t in self.threads if t.is_alive()]

    def total(self):
        with self.lock:
            return sum(self.counts)

    def snapshot(self):
        with self.lock:
            return list(self.counts)

    def progressed_since(self, snap):
        """True once every client completed a request after @snap."""
        with self.lock:
            return all(c > s for c, s in zip(self.counts, snap))

    def _fail(self, who, what):
        with self.lock:
            self.failures.append("%s: %s" % (who, what))

    def _check(self, who, index, method, target, check, resp, keepalive):
        if resp.status != 200 or not check(resp):
            self._fail(who, "%s %s -> %r" % (method, target, resp))
            return
        if keepalive and (resp.header("Connection") or "").lower() == "close":
            self._fail(who, "%s %s answered with Connection: close" % (method, target))
            return
        with self.lock:
            self.counts[index] += 1

    def _keepalive(self, index):
        who = "keep-alive client %d" % index
        conn, n = None, 0
        while not self.stop_event.is_set():
            method, target, check = self.TARGETS[n % len(self.TARGETS)]
            n += 1
            try:
                if conn is None:
                    conn = RawConnection(self.port)
                resp = conn.request(method, target)
            except (OSError, ConnectionClosed, AssertionError, ValueError) as e:
                self._fail(who, "%s %s: %r" % (method, target, e))
                if conn:
                    conn.close()
                conn = None
                continue
            self._check(who, index, method, target, check, resp, True)
        if conn:
            conn.close()

    def _new_conn(self, index):
        who = "new-connection client %d" % index
        n = 0
        while not self.stop_event.is_set():
            method, target, check = self.TARGETS[n % len(self.TARGETS)]
            n += 1
            try:
                with RawConnection(self.port) as conn:
                    # Every other request asks the server to close: both sides close first.
                    headers = [("Connection", "close")] if n % 2 else []
                    resp = conn.request(method, target, headers=headers)
            except (OSError, ConnectionClosed, AssertionError, ValueError) as e:
                self._fail(who, "%s %s: %r" % (method, target, e))
                continue
            self._check(who, index, method, target, check, resp, False)


# --- Test cases ----------------------------------------------------------------------------

@unittest.skipUnless(os.path.isfile(VER_A) and os.path.isfile(VER_B),
                     "the reload fixtures (tests/modules) are not built")
class ReloadCase(ServerTestCase):
    def setUp(self):
        super().setUp()
        self.generation = 1
        self.failed_reloads = 0

    def make_dir(self, mode=0o700):
        path = tempfile.mkdtemp(prefix="modhost-rl-")
        os.chmod(path, mode)
        self.addCleanup(shutil.rmtree, path, True)
        return path

    def start_custom(self, conf, prepare=None):
        """As start_server for @conf, with a chance to adjust the Server before it starts."""
        srv = Server(conf.path)
        self.servers.append(srv)
        self.addCleanup(self._finish_server, srv)
        if prepare:
            prepare(srv)
        srv.start()
        return srv

    def reload(self, srv):
        """SIGHUP, then waits for the next generation; returns its "module files mapped"."""
        self.generation += 1
        srv.send_signal(signal.SIGHUP)
        m = srv.wait_log(r"info  reload: generation %d serving: .* (\d+) module files mapped"
                         % self.generation, RELOAD_TIMEOUT_S)
        self.assertTrue(m, "no 'reload: generation %d serving' line" % self.generation)
        return int(m.group(1))

    def reload_refused(self, srv):
        """SIGHUP with a bad configuration; returns the error lines logged for it."""
        self.failed_reloads += 1
        srv.send_signal(signal.SIGHUP)
        m = srv.wait_log(r"reload failed with (\d+) errors? \(%d failed so far\); still serving "
                         r"generation %d" % (self.failed_reloads, self.generation),
                         RELOAD_TIMEOUT_S)
        self.assertTrue(m, "no 'reload failed' line for failed reload %d" % self.failed_reloads)
        lines = srv.log().splitlines()
        end = log_index(srv.log(), re.escape(m.group(0)))
        start = end
        while start > 0 and "reload: reading" not in lines[start]:
            start -= 1
        return [line for line in lines[start + 1:end] if " error reload: " in line]

    def drained(self, srv, gen):
        """Waits for generation @gen to be freed; returns the "module files mapped" after it."""
        m = srv.wait_log(r"reload: generation %d drained: [^\n]*\n(?:[^\n]*\n)*?[^\n]*reload: "
                         r"\d+ generations live, (\d+) module files mapped" % gen, RELOAD_TIMEOUT_S)
        self.assertTrue(m, "generation %d was not freed" % gen)
        return int(m.group(1))

    def get(self, port, target):
        with RawConnection(port) as c:
            return c.request("GET", target)

    def routes(self, conf):
        r = run_cli("routes", "-c", conf.path)
        self.assertEqual(r.returncode, 0, r.stderr)
        return parse_routes(r.stdout)


class TestReloadUnderLoad(ReloadCase):
    def write_variant(self, conf, i):
        """Configuration @i: echo present for odd i; hello's second route at /hi/{name} when
        i // 2 is odd, else /hello/{name}. Returns (expected routes, echo on, hello path)."""
        with_echo = i % 2 == 1
        hello_path = "/hi/{name}" if (i // 2) % 2 == 1 else "/hello/{name}"
        conf.write("10-hello.conf", hello_conf(["/greet/{name}", hello_path]))
        if with_echo:
            conf.write("20-echo.conf", ECHO_CONF)
        elif os.path.exists(conf.file("20-echo.conf")):
            os.unlink(conf.file("20-echo.conf"))
        expected = {("GET", "/greet/{name}", "hello", "hello"),
                    ("GET", hello_path, "hello", "hello"),
                    ("GET", "/v", "ver", "v"), ("GET", "/slow", "ver", "slow")}
        if with_echo:
            expected |= {("POST", "/echo", "echo", "echo"),
                         ("POST", "/echo/json", "echo", "echo_json")}
        return expected, with_echo, hello_path

    def assert_serves_variant(self, port, with_echo, hello_path):
        with RawConnection(port) as c:
            r = c.request("POST", "/echo", b"ping")
            if with_echo:
                self.assertEqual((r.status, r.body), (200, b"ping"), "POST /echo, echo added")
            else:
                self.assertEqual(r.status, 404, "POST /echo, echo removed")
            on, off = (("/hi/x", "/hello/x") if hello_path == "/hi/{name}"
                       else ("/hello/x", "/hi/x"))
            r = c.request("GET", on)
            self.assertEqual((r.status, r.json()), (200, {"message": "Hello, x!"}), on)
            self.assertEqual(c.request("GET", off).status, 404, off)

    def test_reloads_under_load_fail_no_request(self):
        conf = self.make_conf(server=server_conf(access=False), files={
            "30-ver.conf": ver_conf(VER_A)})
        self.write_variant(conf, 0)
        srv = self.start_custom(conf)
        load = LoadClients(srv.port)
        self.addCleanup(load.stop)
        load.start()
        self.assertTrue(wait_until(lambda: load.progressed_since([0] * len(load.counts)),
                                   IO_TIMEOUT_S), "the clients made no progress")
        for i in range(1, LOAD_RELOADS + 1):
            expected, with_echo, hello_path = self.write_variant(conf, i)
            snap = load.snapshot()
            self.reload(srv)
            self.assertEqual(self.routes(conf), expected, "routes after reload %d" % i)
            self.assert_serves_variant(srv.port, with_echo, hello_path)
            # Every client got answers from the new generation too, not only around it.
            self.assertTrue(wait_until(lambda s=snap: load.progressed_since(s), IO_TIMEOUT_S),
                            "a client made no progress after reload %d" % i)
            self.assertEqual(load.failures, [], "failed requests by reload %d" % i)
        stuck = load.stop()
        self.assertEqual(stuck, [], "client threads still running")
        self.assertEqual(load.failures, [])
        self.assertGreater(load.total(), LOAD_RELOADS)
        print("\n  %d requests answered across %d reloads" % (load.total(), LOAD_RELOADS))
        self.assertTrue(srv.running())
        self.stop_server(srv)
        self.assertIn("stopped after %d reloads (0 failed)" % LOAD_RELOADS, srv.log())


class TestModuleRebuilt(ReloadCase):
    def test_module_replaced_by_rename_is_mapped_anew(self):
        mods = self.make_dir()
        so = os.path.join(mods, "ver.so")
        install_module(VER_A, so)
        conf = self.make_conf(files={"30-ver.conf": ver_conf(so)})
        srv = self.start_custom(conf)
        self.assertEqual(self.get(srv.port, "/v").body, b"A")
        self.assertEqual(len(mapped_module_files(srv.worker_pid, [mods])), 1)

        install_module(VER_B, so)
        mapped = self.reload(srv)
        self.assertEqual(self.get(srv.port, "/v").body, b"B")
        after_drain = self.drained(srv, 1)
        # ver_a does not declare MH_MODULE_UNLOAD_SAFE: its (now deleted) file stays mapped.
        self.assertEqual(after_drain, mapped)
        self.assertEqual(len(mapped_module_files(srv.worker_pid, [mods])), 2)
        log = srv.log()
        self.assertLess(log_index(log, r"ver: ver B init"), log_index(log, r"ver: ver A fini"))

        # Nothing changed: the same file is not mapped again.
        self.assertEqual(self.reload(srv), mapped)
        self.assertEqual(self.get(srv.port, "/v").body, b"B")
        self.assertEqual(self.drained(srv, 2), mapped)
        self.assertEqual(len(mapped_module_files(srv.worker_pid, [mods])), 2)
        self.assertEqual(srv.log().count("ver: ver B init"), 2)

        # ver_b is unload-safe: once its last generation is gone, its mapping goes too.
        install_module(VER_A, so)
        self.assertEqual(self.reload(srv), mapped + 1)
        self.assertEqual(self.get(srv.port, "/v").body, b"A")
        self.assertEqual(self.drained(srv, 3), mapped)
        self.stop_server(srv)
        log = srv.log()
        self.assertEqual(log.count("ver: ver A init"), 2)
        self.assertEqual(log.count("ver: ver A fini"), 2)
        self.assertEqual(log.count("ver: ver B fini"), 2)


def memfd_rss_kib(pid):
    """Resident KiB of the private module copies (mappings named /memfd:PATH) of @pid, by
    path."""
    sizes = {}
    current = None
    with open("/proc/%d/smaps" % pid, encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.split(None, 5)
            if len(parts) >= 5 and "-" in parts[0] and ":" in parts[3]:
                name = parts[5].strip() if len(parts) == 6 else ""
                current = (name[len("/memfd:"):].replace(" (deleted)", "")
                           if name.startswith("/memfd:") else None)
            elif current and line.startswith("Rss:"):
                sizes[current] = sizes.get(current, 0) + int(line.split()[1])
    return sizes


class TestModuleOverwritten(ReloadCase):
    """The loader maps a private copy of each module file: writing into the file in place
    (`cp new.so old.so`, same inode), truncating it or deleting it never changes the code that
    runs; the file as it is at the next reload is loaded then."""

    def overwrite_in_place(self, src, dest):
        with open(src, "rb") as f:
            data = f.read()
        with open(dest, "r+b") as f:
            f.truncate(0)
            f.write(data)

    def test_overwrite_truncate_delete_while_serving(self):
        mods = self.make_dir()
        so = os.path.join(mods, "ver.so")
        install_module(VER_A, so)
        conf = self.make_conf(files={"30-ver.conf": ver_conf(so)})
        srv = self.start_custom(conf)
        keep = RawConnection(srv.port)
        self.addCleanup(keep.close)
        self.assertEqual(keep.request("GET", "/v").body, b"A")
        ino = os.stat(so).st_ino

        self.overwrite_in_place(VER_B, so)
        self.assertEqual(os.stat(so).st_ino, ino)
        for _ in range(20):
            self.assertEqual(keep.request("GET", "/v").body, b"A")
        self.assertEqual(self.get(srv.port, "/v").body, b"A")
        with open(so, "r+b") as f:
            f.truncate(0)
        self.assertEqual(keep.request("GET", "/v").body, b"A")

        # The truncated file is refused at a reload; the running code stays.
        self.reload_refused(srv)
        self.assertEqual(keep.request("GET", "/v").body, b"A")

        # The file written again in place (same inode, new contents) is loaded at the reload.
        self.overwrite_in_place(VER_B, so)
        self.reload(srv)
        self.assertEqual(self.get(srv.port, "/v").body, b"B")
        os.unlink(so)
        self.assertEqual(self.get(srv.port, "/v").body, b"B")
        copies = memfd_rss_kib(srv.worker_pid)
        print("\n  private module copies, resident KiB by file: %r (file size %d KiB)"
              % (copies, os.path.getsize(VER_B) // 1024))
        self.assertIn(so, copies)
        self.stop_server(srv)


class TestBadConfigReload(ReloadCase):
    def write_good(self, conf, hello_path="/hello/{name}"):
        conf.write("10-hello.conf", hello_conf([hello_path]))
        conf.write("20-echo.conf", ECHO_CONF)

    def break_config(self, conf, pid_file):
        """Three mistakes in three files; returns the (file, line, text) each must report."""
        server = server_conf(extra='  pid_file = "%s";\n  threds = 4;' % pid_file)
        hello = hello_conf(["/hello/{name}"]).replace('name = "hello";', 'name = = "hello";')
        echo = ECHO_CONF.replace('handler = "echo_json"', 'handler = "echo_jsn"')
        expected = []
        for name, text, needle, message in (
                ("00-server.conf", server, "threds", "unknown"),
                ("10-hello.conf", hello, "name = =", "syntax error"),
                ("20-echo.conf", echo, "echo_jsn", "has no handler 'echo_jsn'")):
            conf.write(name, text)
            line = next(n for n, t in enumerate(text.splitlines(), 1) if needle in t)
            expected.append((conf.file(name), line, message))
        return expected

    def assert_errors_listed(self, text, expected):
        for path, line, message in expected:
            self.assertRegex(text, r"%s:%d: [^\n]*%s" % (re.escape(path), line, re.escape(message)))

    def test_bad_config_is_refused_and_old_one_keeps_serving(self):
        run = self.make_dir()
        pid_file = os.path.join(run, "modhost.pid")
        conf = self.make_conf(server=server_conf(extra='  pid_file = "%s";' % pid_file))
        self.write_good(conf)
        srv = self.start_custom(conf)
        expected = self.break_config(conf, pid_file)

        # The configuration's errors are logged with file:line. The unknown handler shows only
        # once modules are loaded, which the server currently skips when the files have
        # errors; `modhost reload` (below) reports all three.
        errors = self.reload_refused(srv)
        self.assert_errors_listed("\n".join(errors), expected[:2])
        self.assertTrue(srv.running())
        with RawConnection(srv.port) as c:
            self.assertEqual(c.request("GET", "/hello/old").json(), {"message": "Hello, old!"})
            self.assertEqual(c.request("POST", "/echo/json", b"[1]").json(), [1])

        reads = srv.log().count("reload: reading")
        r = run_cli("reload", "-c", conf.path)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assert_errors_listed(r.stderr, expected)
        self.assertIn("the server was not signalled", r.stderr)
        self.assertEqual(srv.log().count("reload: reading"), reads, "the server was signalled")

        with open(pid_file, encoding="ascii") as f:
            self.assertEqual(int(f.read()), srv.pid)
        conf.write("00-server.conf", server_conf(extra='  pid_file = "%s";' % pid_file))
        self.write_good(conf, "/hi/{name}")
        r = run_cli("reload", "-c", conf.path)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r"reloaded: now serving generation 2\b")
        self.assertTrue(srv.wait_log(r"info  reload: generation 2 serving"))
        with RawConnection(srv.port) as c:
            self.assertEqual(c.request("GET", "/hi/new").json(), {"message": "Hello, new!"})
            self.assertEqual(c.request("GET", "/hello/new").status, 404)
        self.stop_server(srv)
        self.assertIn("stopped after 1 reloads (1 failed)", srv.log())
        self.assertFalse(os.path.exists(pid_file), "pid file left behind")

    @unittest.skipUnless(have_fixture("fx_initfail.so"), "tests/modules fixtures not built")
    def test_module_init_failure_refuses_reload(self):
        mods = self.make_dir()
        so = os.path.join(mods, "ver.so")
        install_module(VER_A, so)
        conf = self.make_conf(files={"30-ver.conf": ver_conf(so)})
        srv = self.start_custom(conf)
        install_module(VER_B, so)
        conf.write("40-fail.conf", module_conf("fx_initfail", fixture_path("fx_initfail.so")))

        errors = self.reload_refused(srv)
        self.assertEqual(len(errors), 1, errors)
        self.assertRegex(errors[0], r"%s:1: module 'fx_initfail' \(.*\): init failed: "
                         % re.escape(conf.file("40-fail.conf")))
        # The instance of the new ver the refused generation started was finalised with it.
        log = srv.log()
        self.assertLess(log_index(log, r"ver: ver B init"), log_index(log, r"ver: ver B fini"))
        self.assertLess(log_index(log, r"ver: ver B fini"), log_index(log, r"reload failed"))
        self.assertEqual(self.get(srv.port, "/v").body, b"A")

        os.unlink(conf.file("40-fail.conf"))
        self.reload(srv)
        self.assertEqual(self.get(srv.port, "/v").body, b"B")
        self.stop_server(srv)


class TestWebSocketAcrossReload(ReloadCase):
    def test_old_connection_keeps_old_code_new_one_gets_new(self):
        mods = self.make_dir()
        so = os.path.join(mods, "ver.so")
        install_module(VER_A, so)
        conf = self.make_conf(server=server_conf(extra="  reload_drain_ms = 60000;"),
                              files={"30-ver.conf": ver_conf(so, websockets=[("/ws/ver", "")])})
        srv = self.start_custom(conf)
        old = WebSocket(srv.port, "/ws/ver")
        self.addCleanup(old.close_socket)
        self.assertEqual(old.echo("one"), "A:one")

        install_module(VER_B, so)
        self.reload(srv)
        self.assertEqual(old.echo("two"), "A:two")
        new = WebSocket(srv.port, "/ws/ver")
        self.addCleanup(new.close_socket)
        self.assertEqual(new.echo("three"), "B:three")
        self.assertEqual(old.echo("four"), "A:four")
        # One more reload runs the reaper when only the old WebSocket holds generation 1.
        self.reload(srv)
        self.assertEqual(old.echo("five"), "A:five")
        log = srv.log()
        self.assertNotIn("generation 1 drained", log)
        self.assertNotIn("ver A fini", log)

        self.assertEqual(old.close(), NORMAL_CLOSURE)
        self.assertTrue(old.closed(), "the server left the closed WebSocket's TCP open")
        self.drained(srv, 1)
        self.assertTrue(srv.wait_log(r"ver: ver A fini"))
        log = srv.log()
        self.assertLess(log_index(log, r"ver: ver A ws \d+ closed 1000"),
                        log_index(log, r"ver: ver A fini"))
        self.assertEqual(new.echo("six"), "B:six")
        self.assertEqual(new.close(), NORMAL_CLOSURE)
        self.assertTrue(new.closed())
        self.stop_server(srv)

    def test_connection_past_drain_deadline_gets_1001(self):
        # The endpoint's settings change (a larger message limit): its connections cannot move
        # to the new generation, and are closed at the old one's drain deadline.
        conf = self.make_conf(server=server_conf(extra="  reload_drain_ms = 500;"),
                              files={"30-ver.conf": ver_conf(VER_B, websockets=[("/ws/ver", "")])})
        srv = self.start_custom(conf)
        old = WebSocket(srv.port, "/ws/ver")
        self.addCleanup(old.close_socket)
        self.assertEqual(old.echo("one"), "B:one")
        conf.write("30-ver.conf", ver_conf(VER_B, websockets=[
            ("/ws/ver", " max_message_bytes = 100000;")]))
        self.reload(srv)
        new = WebSocket(srv.port, "/ws/ver")
        self.addCleanup(new.close_socket)
        self.assertEqual(new.echo("two"), "B:two")

        self.assertEqual(old.expect_close(), GOING_AWAY)
        old.answer_close(GOING_AWAY)
        self.assertTrue(old.closed(), "TCP left open after the close handshake")
        self.drained(srv, 1)
        log = srv.log()
        self.assertRegex(log, r"generation 1: drain deadline passed with \d+ references; "
                              r"closing its WebSockets \(1001\)")
        self.assertLess(log_index(log, r"ver: ver B ws \d+ closed 1001"),
                        log_index(log, r"reload: generation 1 drained"))
        # Only the old generation's connections were closed.
        self.assertEqual(new.echo("three"), "B:three")
        self.assertEqual(new.close(), NORMAL_CLOSURE)
        self.stop_server(srv)


class TestWebSocketsOfUnchangedModules(ReloadCase):
    """A WebSocket whose module file and endpoint settings are unchanged moves to the new
    generation on a reload and stays open; one of a removed module gets 1001 at the drain
    deadline. Old generations still drain: nothing keeps them once their sockets moved."""

    RELOADS = 20
    REMOVE_ECHO_AT = 10

    def test_unchanged_stay_over_20_reloads_removed_module_gets_1001(self):
        mods = self.make_dir()
        so = os.path.join(mods, "ver.so")
        install_module(VER_A, so)
        echo = module_conf("echo", "echo.so", [("POST", "/echo", "echo")]).replace(
            "};\n", '  websockets = ({ path = "/ws/echo"; on_message = "ws_echo"; });\n};\n')
        conf = self.make_conf(server=server_conf(extra="  reload_drain_ms = 300;"),
                              files={"20-echo.conf": echo,
                                     "30-ver.conf": ver_conf(so, websockets=[("/ws/ver", "")])})
        srv = self.start_custom(conf)
        vers = [WebSocket(srv.port, "/ws/ver") for _ in range(3)]
        echoes = [WebSocket(srv.port, "/ws/echo") for _ in range(2)]
        for c in vers + echoes:
            self.addCleanup(c.close_socket)
        for i in range(1, self.RELOADS + 1):
            if i == self.REMOVE_ECHO_AT:
                os.unlink(conf.file("20-echo.conf"))
            self.reload(srv)
            for k, c in enumerate(vers):
                self.assertEqual(c.echo("r%d-%d" % (i, k)), "A:r%d-%d" % (i, k))
            if i < self.REMOVE_ECHO_AT:
                for c in echoes:
                    c.send_text("e%d" % i)
                    self.assertEqual(c.recv_frame(), (0x1, b"e%d" % i))
            if i == self.REMOVE_ECHO_AT:
                for c in echoes:
                    self.assertEqual(c.expect_close(), GOING_AWAY)
                    c.answer_close(GOING_AWAY)
                    self.assertTrue(c.closed())
        # Every generation but the last drained, although its WebSockets are still open.
        self.drained(srv, self.RELOADS)
        log = srv.log()
        self.assertEqual(len(re.findall(r"WebSockets of unchanged endpoints moved", log)) > 0,
                         True)
        self.assertNotRegex(log, r"ver: ver A ws \d+ closed")
        for c in vers:
            self.assertEqual(c.close(), NORMAL_CLOSURE)
        self.stop_server(srv)


class TestLongRequestAcrossReload(ReloadCase):
    def test_request_in_flight_completes_on_old_generation(self):
        mods = self.make_dir()
        so = os.path.join(mods, "ver.so")
        gate = os.path.join(mods, "gate")
        install_module(VER_A, so)
        conf = self.make_conf(files={"30-ver.conf": ver_conf(so)})
        srv = self.start_custom(conf)
        slow = RawConnection(srv.port)
        self.addCleanup(slow.close)
        slow.send(build_request("GET", "/slow?ms=1500&gate=%s" % gate))
        self.assertTrue(srv.wait_log(r"ver: ver A slow 1500 ms"), "the slow request never ran")

        install_module(VER_B, so)
        self.reload(srv)
        self.assertEqual(self.get(srv.port, "/v").body, b"B")
        self.assertNotIn("ver A fini", srv.log(), "finalised with a request in flight")
        with open(gate, "w", encoding="ascii"):
            pass  # the request may finish now
        resp = slow.read_response()
        self.assertEqual((resp.status, resp.json()), (200, {"version": "A", "slept_ms": 1500}))
        self.drained(srv, 1)
        self.assertTrue(srv.wait_log(r"ver: ver A fini"))
        self.assertTrue(srv.wait_log(r"access: GET /slow\?ms=1500&gate=\S+ 200 "))
        log = srv.log()
        done = log_index(log, r"access: GET /slow\?ms=1500&gate=\S+ 200 ")
        self.assertGreater(done, log_index(log, r"reload: generation 2 serving"))
        self.assertGreater(log_index(log, r"ver: ver A fini"), done)
        self.stop_server(srv)


class TestRepeatedReloads(ReloadCase):
    def test_unchanged_reloads_do_not_grow_the_process(self):
        conf = self.make_conf(server=server_conf(access=False),
                              files={"10-hello.conf": hello_conf(["/hello/{name}"]),
                                     "20-echo.conf": ECHO_CONF, "30-ver.conf": ver_conf(VER_A)})
        srv = self.start_custom(conf)
        dirs = [MODULE_DIR, RELOAD_FIXTURE_DIR]
        keep = RawConnection(srv.port)
        self.addCleanup(keep.close)
        baseline = None
        samples = []
        for i in range(1, UNCHANGED_RELOADS + 1):
            mapped = self.reload(srv)
            self.assertEqual(keep.request("GET", "/v").body, b"A")
            if i == UNCHANGED_BASELINE_AT or i == UNCHANGED_RELOADS:
                self.assertEqual(self.drained(srv, self.generation - 1), mapped)
                sample = (vm_rss_kib(srv.worker_pid), mapped, len(mapped_module_files(srv.worker_pid, dirs)))
                samples.append((i, sample))
                if baseline is None:
                    baseline = sample
        print("\n  VmRSS KiB, module files mapped (log), mapped in /proc (by reload): %r"
              % samples)
        rss, mapped, in_maps = samples[-1][1]
        self.assertEqual(mapped, baseline[1], "module files mapped grew")
        self.assertEqual(in_maps, baseline[2], "mappings in /proc/PID/maps grew")
        self.assertEqual(in_maps, 3)
        # A sanitizer's allocator keeps freed memory in quarantine and grows its caches for
        # hundreds of reloads: there, LeakSanitizer at exit is the check (see _finish_server).
        if not has_sanitizer(srv.worker_pid):
            self.assertLessEqual(rss, baseline[0] + RSS_TOLERANCE_KIB, "VmRSS grew")
        self.stop_server(srv)


class TestPermissions(ReloadCase):
    def permission_setup(self, insecure=False):
        """A conf dir with ver.so in its own module dir; returns (conf, mods, so)."""
        mods = self.make_dir(0o755)
        so = os.path.join(mods, "ver.so")
        install_module(VER_A, so)
        extra = "  insecure_permissions = true;" if insecure else ""
        conf = self.make_conf(server=server_conf(extra=extra),
                              files={"30-ver.conf": ver_conf(so)})
        return conf, mods, so

    def assert_refused(self, conf, path, what):
        r = run_cli("check", "-c", conf.path)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertRegex(r.stderr, r"refusing %s[^\n]*writable by users other than its owner"
                         % re.escape(what))
        self.assertIn("chmod go-w %s" % path, r.stderr)
        return r.stderr

    def test_writable_conf_file_is_refused(self):
        conf, _, _ = self.permission_setup()
        os.chmod(conf.file("30-ver.conf"), 0o666)
        err = self.assert_refused(conf, conf.file("30-ver.conf"), "configuration file")
        self.assertIn(conf.file("30-ver.conf") + ":", err)
        self.assertIn("(mode 0666)", err)

    def test_writable_conf_dir_is_refused(self):
        conf, _, _ = self.permission_setup()
        os.chmod(conf.path, 0o777)
        self.assert_refused(conf, conf.path, "configuration file's directory")

    def test_writable_module_file_is_refused(self):
        conf, _, so = self.permission_setup()
        os.chmod(so, 0o666)
        err = self.assert_refused(conf, so, "module file")
        line = next(n for n, t in enumerate(ver_conf(so).splitlines(), 1) if "name =" in t)
        self.assertIn("%s:%d: module 'ver' (%s)" % (conf.file("30-ver.conf"), line - 1, so), err)

    def test_writable_module_dir_is_refused_unless_sticky(self):
        conf, mods, _ = self.permission_setup()
        os.chmod(mods, 0o777)
        self.assert_refused(conf, mods, "module file's directory")
        os.chmod(mods, 0o1777)  # like /tmp: others cannot replace our file
        r = run_cli("check", "-c", conf.path)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_serve_and_reload_refuse_writable_module(self):
        conf, _, so = self.permission_setup()
        os.chmod(so, 0o666)
        srv = Server(conf.path)
        self.addCleanup(srv.cleanup)
        with self.assertRaises(AssertionError):
            srv.start()
        self.assertEqual(srv.proc.returncode, 1)
        self.assertIn("chmod go-w %s" % so, srv.log())
        os.chmod(so, 0o755)
        srv = self.start_custom(conf)
        os.chmod(so, 0o646)
        errors = self.reload_refused(srv)
        self.assertTrue(any("chmod go-w %s" % so in e for e in errors), errors)
        self.assertEqual(self.get(srv.port, "/v").body, b"A")

    def test_insecure_permissions_accepts_all_of_it(self):
        conf, mods, so = self.permission_setup(insecure=True)
        os.chmod(conf.file("30-ver.conf"), 0o666)
        os.chmod(so, 0o666)
        os.chmod(mods, 0o777)
        r = run_cli("check", "-c", conf.path)
        self.assertEqual(r.returncode, 0, r.stderr)
        srv = self.start_custom(conf)
        self.assertEqual(self.get(srv.port, "/v").body, b"A")


class TestPrivilegesAndStop(ReloadCase):
    @unittest.skipUnless(os.geteuid() == 0, "dropping privileges needs root")
    def test_serve_drops_to_user(self):
        nobody = pwd.getpwnam("nobody")
        run = self.make_dir(0o755)
        pid_file = os.path.join(run, "modhost.pid")
        conf = self.make_conf(server=server_conf(
            extra='  user = "nobody";\n  pid_file = "%s";' % pid_file))
        os.chmod(conf.path, 0o755)  # the configuration is read again as nobody on reload

        def writable_work(srv):
            os.chmod(srv.work, 0o777)  # the port file is written after the drop

        srv = self.start_custom(conf, writable_work)
        self.assertTrue(srv.wait_log(r"server: running as uid %d gid %d"
                                     % (nobody.pw_uid, nobody.pw_gid)))
        self.assertEqual(status_ids(srv.pid, "Uid"), [nobody.pw_uid] * 4)
        self.assertEqual(status_ids(srv.pid, "Gid"), [nobody.pw_gid] * 4)
        self.assertEqual(status_ids(srv.pid, "Groups"), [])
        self.assertEqual(self.get(srv.port, "/hello/n").json(), {"message": "Hello, n!"})
        conf.write("20-echo.conf", ECHO_CONF.replace('"/echo"', '"/echo2"'))
        self.reload(srv)
        with RawConnection(srv.port) as c:
            self.assertEqual(c.request("POST", "/echo2", b"x").body, b"x")

        # A file root can read but nobody cannot: `modhost reload` (as root) finds no error,
        # the server does; the command reports the server's refusal.
        secret = conf.write("30-secret.conf", hello_conf(["/secret/{name}"]))
        os.unlink(conf.file("10-hello.conf"))
        os.chmod(secret, 0o600)
        r = run_cli("reload", "-c", conf.path)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("the server refused the configuration", r.stderr)
        self.assertIn("%s: cannot read file: Permission denied" % secret, r.stderr)
        self.assertTrue(srv.wait_log(r"reload failed with 1 error \(1 failed so far\); still "
                                     r"serving generation 2"))
        self.assertEqual(self.get(srv.port, "/hello/n").status, 200)
        self.stop_server(srv)

    def test_unknown_user_is_refused(self):
        conf = self.make_conf(server=server_conf(extra='  user = "no-such-user-mh";'))
        srv = Server(conf.path)
        self.addCleanup(srv.cleanup)
        with self.assertRaises(AssertionError):
            srv.start()
        self.assertEqual(srv.proc.returncode, 1)
        # refused while the configuration is read, with its file and line
        self.assertRegex(srv.log(), r"00-server\.conf:\d+: 'server\.user' = "
                                    r"\"no-such-user-mh\": no such user")
        self.assertEqual([line for line in srv.log().splitlines() if "Sanitizer" in line], [])

    def test_stop_by_pid_file(self):
        run = self.make_dir()
        pid_file = os.path.join(run, "modhost.pid")
        conf = self.make_conf(server=server_conf(extra='  pid_file = "%s";' % pid_file))
        srv = self.start_custom(conf)
        # We are the server's parent: reap it while `modhost stop` waits for it to be gone.
        stop = subprocess.Popen([BIN, "stop", "-c", conf.path], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, encoding="utf-8")
        try:
            self.assertEqual(srv.wait(STOP_TIMEOUT_S), 0)
            out, err = stop.communicate(timeout=STOP_TIMEOUT_S)
        finally:
            if stop.poll() is None:
                stop.kill()
                stop.wait()
        self.assertEqual(stop.returncode, 0, out + err)
        self.assertIn("pid %d stopped" % srv.pid, out)
        self.assertIn("server: SIGTERM received: stopping", srv.log())
        self.assertFalse(os.path.exists(pid_file))
        self.assert_log_clean(srv)

    def test_stop_without_pid_file(self):
        conf = self.make_conf()
        r = run_cli("stop", "-c", conf.path)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("no pid file: set server.pid_file in %s or pass --pid-file" % conf.path,
                      r.stderr)
        missing = os.path.join(self.make_dir(), "none.pid")
        conf.write("00-server.conf", server_conf(extra='  pid_file = "%s";' % missing))
        r = run_cli("stop", "-c", conf.path)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("cannot read a pid from %s" % missing, r.stderr)


if __name__ == "__main__":
    unittest.main()
