"""Shared harness for the integration tests: temp conf.d, the real modhost binary, raw HTTP.

The binary, module and fixture directories come from the environment CTest sets (MODHOST_BIN,
MODHOST_MODULE_DIR, MODHOST_FIXTURE_DIR, MODHOST_PROBE_DIR, MODHOST_SOURCE_DIR); without it the
defaults assume a build in SOURCE/build, so `python3 -m unittest` works from this folder.
Every wait is a poll with a deadline; nothing sleeps to wait for a condition.
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
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.abspath(
    os.environ.get("MODHOST_SOURCE_DIR") or os.path.join(HERE, "..", ".."))
BIN = os.path.abspath(
    os.environ.get("MODHOST_BIN") or os.path.join(SOURCE_DIR, "build", "modhost"))
MODULE_DIR = os.path.abspath(
    os.environ.get("MODHOST_MODULE_DIR") or os.path.join(os.path.dirname(BIN), "modules"))
FIXTURE_DIR = os.path.abspath(
    os.environ.get("MODHOST_FIXTURE_DIR")
    or os.path.join(os.path.dirname(BIN), "tests", "modules"))
PROBE_DIR = os.path.abspath(
    os.environ.get("MODHOST_PROBE_DIR")
    or os.path.join(os.path.dirname(BIN), "tests", "modules"))

# Generous bounds: they only decide how long a broken server may hang a test.
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0
IO_TIMEOUT_S = 20.0

SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error:", "ThreadSanitizer")


def fixture_path(name):
    """Path of a fixture module (tests/modules) in the build tree."""
    return os.path.join(FIXTURE_DIR, name)


def have_fixture(name):
    return os.path.isfile(fixture_path(name))


def probe_path():
    """Path of it_probe.so, the module built next to these tests (logs its init and fini)."""
    return os.path.join(PROBE_DIR, "it_probe.so")


def wait_until(predicate, timeout, interval=0.01):
    """Polls @predicate until it returns a true value or @timeout seconds pass; returns it."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)  # the poll's pace, bounded by the deadline above


def sanitizer_lines(text):
    return [line for line in text.splitlines() if any(m in line for m in SANITIZER_MARKERS)]


# --- Configuration -------------------------------------------------------------------------

def _conf_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return "%d" % value if -2**31 <= value < 2**31 else "%dL" % value
    if isinstance(value, str):
        return json.dumps(value)
    raise TypeError("no libconfig form for %r" % (value,))


def server_conf(module_dir=None, threads=2, level="info", access=True, limits=None,
                shutdown_timeout_ms=None, listen=None, extra=""):
    """Text of a 00-server.conf; @limits maps server.limits keys to values."""
    lines = ["server: {"]
    if listen is not None:
        lines.append("  listen = %s;" % _conf_value(listen))
    lines.append("  threads = %d;" % threads)
    lines.append("  module_dir = %s;" % _conf_value(module_dir or MODULE_DIR))
    if shutdown_timeout_ms is not None:
        lines.append("  shutdown_timeout_ms = %s;" % _conf_value(shutdown_timeout_ms))
    lines.append("  log: { level = %s; access = %s; };"
                 % (_conf_value(level), _conf_value(access)))
    if limits:
        body = " ".join("%s = %s;" % (k, _conf_value(v)) for k, v in limits.items())
        lines.append("  limits: { %s };" % body)
    if extra:
        lines.append(extra)
    lines.append("};")
    return "\n".join(lines) + "\n"


def module_conf(name, file=None, routes=(), settings=None):
    """Text of a module file; @routes holds (method, path, handler) triples."""
    lines = ["module: {", "  name = %s;" % _conf_value(name)]
    if file is not None:
        lines.append("  file = %s;" % _conf_value(file))
    if settings is not None:
        body = " ".join("%s = %s;" % (k, _conf_value(v)) for k, v in settings.items())
        lines.append("  settings: { %s };" % body)
    if routes:
        lines.append("  routes = (")
        lines.append(",\n".join(
            "    { method = %s; path = %s; handler = %s; }"
            % (_conf_value(m), _conf_value(p), _conf_value(h)) for m, p, h in routes))
        lines.append("  );")
    lines.append("};")
    return "\n".join(lines) + "\n"


HELLO_CONF = module_conf("hello", "hello.so", [("GET", "/hello/{name}", "hello")],
                         {"greeting": "Hello"})
ECHO_CONF = module_conf("echo", "echo.so", [("POST", "/echo", "echo"),
                                            ("POST", "/echo/json", "echo_json")])
DEFAULT_MODULES = {"10-hello.conf": HELLO_CONF, "20-echo.conf": ECHO_CONF}


class ConfDir:
    """A temporary configuration directory; removed by cleanup()."""

    def __init__(self, files=None, server=None, **server_kwargs):
        self.path = tempfile.mkdtemp(prefix="modhost-it-")
        if server is None:
            server = server_conf(**server_kwargs)
        if server is not False:
            self.write("00-server.conf", server)
        for name, text in (files if files is not None else DEFAULT_MODULES).items():
            self.write(name, text)

    def write(self, name, text):
        path = os.path.join(self.path, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def file(self, name):
        return os.path.join(self.path, name)

    def cleanup(self):
        shutil.rmtree(self.path, ignore_errors=True)


def run_cli(*args, timeout=60, env=None):
    """Runs the binary to completion; returns CompletedProcess with text stdout/stderr."""
    return subprocess.run([BIN] + [str(a) for a in args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout, env=env,
                          encoding="utf-8", errors="replace")


# --- The server process --------------------------------------------------------------------

class Server:
    """One `modhost serve` process on 127.0.0.1 with its stderr in a file."""

    def __init__(self, conf_dir, listen="127.0.0.1:0", args=()):
        self.conf_dir = conf_dir
        self.work = tempfile.mkdtemp(prefix="modhost-run-")
        self.port_file = os.path.join(self.work, "port")
        self.log_path = os.path.join(self.work, "server.log")
        self.listen = listen
        self.args = list(args)
        self.proc = None
        self.port = None
        self.ports = []  # every listener's port, in configuration order
        self.returncode = None
        self.start_failed = False

    def start(self, timeout=START_TIMEOUT_S):
        cmd = [BIN, "serve", "-c", self.conf_dir, "--port-file", self.port_file]
        if self.listen is not None:
            cmd += ["--listen", self.listen]
        cmd += self.args
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log)

        def ready():
            if self.proc.poll() is not None:
                return "exited"
            try:
                with open(self.port_file, encoding="ascii") as f:
                    text = f.read().strip()
            except FileNotFoundError:
                return None
            lines = text.split()  # one port per listener, in order (the file is renamed in)
            return lines if lines and all(p.isdigit() for p in lines) else None

        state = wait_until(ready, timeout)
        if state == "exited" or not state:
            self.start_failed = True
            why = ("exited with status %s" % self.proc.returncode if state == "exited"
                   else "wrote no port file within %.0f s" % timeout)
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            raise AssertionError("modhost serve %s\n--- server log ---\n%s"
                                 % (why, self.log()))
        self.ports = [int(p) for p in state]
        self.port = self.ports[0]
        return self.port

    @property
    def pid(self):
        """The master's pid: the one signals go to."""
        return self.proc.pid

    def worker_pids(self):
        """Pids of the master's worker processes (they serve; the master loads no module)."""
        try:
            with open("/proc/%d/task/%d/children" % (self.pid, self.pid),
                      encoding="ascii") as f:
                return [int(x) for x in f.read().split()]
        except OSError:
            return []

    @property
    def worker_pid(self):
        """The pid of the (first) worker process, waiting for one to run."""
        pids = wait_until(self.worker_pids, START_TIMEOUT_S)
        if not pids:
            raise AssertionError("modhost pid %d has no worker process" % self.pid)
        return pids[0]

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig):
        if self.running():
            self.proc.send_signal(sig)

    def wait(self, timeout):
        """Waits for exit; returns the status, or None if still running after @timeout."""
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.returncode

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT_S):
        """Signals the process and waits; SIGKILL and AssertionError if it does not exit."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            if self.wait(timeout) is None:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("modhost did not exit within %.0f s of signal %d; killed"
                                     % (timeout, sig))
        self.returncode = self.proc.returncode
        return self.returncode

    def log(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def wait_log(self, pattern, timeout=IO_TIMEOUT_S):
        """Polls the log for a regex; returns the match or None. Access lines are buffered
        by the server and written at least once a second: wait for them, never read once."""
        rx = re.compile(pattern)
        return wait_until(lambda: rx.search(self.log()), timeout)

    def wait_log_count(self, pattern, count, timeout=IO_TIMEOUT_S):
        """Polls until the log holds at least @count matches of a regex; returns them all."""
        rx = re.compile(pattern)
        found = wait_until(lambda: len(rx.findall(self.log())) >= count or None, timeout)
        return rx.findall(self.log()) if found else rx.findall(self.log())

    def cleanup(self):
        if self.running():
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.work, ignore_errors=True)


# --- Raw HTTP/1.1 ----------------------------------------------------------------------------

class Response:
    def __init__(self, version, status, reason, headers, body):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers  # [(name, value)] in order
        self.body = body

    def header(self, name):
        """The last value of header @name (case-insensitive), or None."""
        value = None
        for k, v in self.headers:
            if k.lower() == name.lower():
                value = v
        return value

    def header_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return "<Response %d %r headers=%r body=%r>" % (self.status, self.reason, self.headers,
                                                        self.body[:200])


class ConnectionClosed(Exception):
    """The peer closed the connection before a complete response arrived."""


def build_request(method, target, body=None, headers=None, host="127.0.0.1", chunks=None):
    """Request bytes. @headers is a list of pairs (or a dict); @chunks sends a chunked body."""
    hdrs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    names = {k.lower() for k, _ in hdrs}
    if "host" not in names:
        hdrs.insert(0, ("Host", host))
    payload = b""
    if chunks is not None:
        hdrs.append(("Transfer-Encoding", "chunked"))
        for c in chunks:
            payload += b"%x\r\n" % len(c) + c + b"\r\n"
        payload += b"0\r\n\r\n"
    elif body is not None:
        if isinstance(body, str):
            body = body.encode("utf-8")
        if "content-length" not in names:
            hdrs.append(("Content-Length", str(len(body))))
        payload = body
    head = "%s %s HTTP/1.1\r\n" % (method, target)
    head += "".join("%s: %s\r\n" % (k, v) for k, v in hdrs)
    return head.encode("latin-1") + b"\r\n" + payload


class RawConnection:
    """One TCP connection speaking HTTP/1.1 by hand: exact bytes out, parsed responses in."""

    def __init__(self, port, host="127.0.0.1", timeout=IO_TIMEOUT_S, rcvbuf=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.timeout = timeout
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.buf = b""
        self.eof = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        self.sock.sendall(data)

    def request(self, method, target, body=None, headers=None, chunks=None):
        """Sends one request and reads its response."""
        self.send(build_request(method, target, body, headers, chunks=chunks))
        return self.read_response(method)

    def _fill(self, size=65536):
        if self.eof:
            return False
        try:
            data = self.sock.recv(size)
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def _read_line(self):
        while b"\r\n" not in self.buf:
            if not self._fill():
                raise ConnectionClosed("connection closed while reading a line; have %r"
                                       % self.buf[:200])
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read_exact(self, n):
        while len(self.buf) < n:
            if not self._fill(max(65536, n - len(self.buf))):
                raise ConnectionClosed("connection closed after %d of %d body bytes"
                                       % (len(self.buf), n))
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_head(self):
        """Status line and headers: (version, status, reason, [(name, value)])."""
        line = self._read_line()
        m = re.match(rb"^(HTTP/\d\.\d) (\d{3})(?: (.*))?$", line)
        if not m:
            raise AssertionError("bad status line %r" % line)
        headers = []
        while True:
            h = self._read_line()
            if not h:
                break
            name, sep, value = h.partition(b":")
            if not sep:
                raise AssertionError("bad header line %r" % h)
            headers.append((name.decode("latin-1"), value.strip().decode("latin-1")))
        return (m.group(1).decode(), int(m.group(2)), (m.group(3) or b"").decode("latin-1"),
                headers)

    def read_response(self, method="GET"):
        version, status, reason, headers = self.read_head()
        resp = Response(version, status, reason, headers, b"")
        te = (resp.header("Transfer-Encoding") or "").lower()
        cl = resp.header("Content-Length")
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return resp
        if "chunked" in te:
            body = b""
            while True:
                size = int(self._read_line().split(b";")[0], 16)
                if size == 0:
                    while self._read_line():  # trailers
                        pass
                    break
                body += self.read_exact(size)
                if self.read_exact(2) != b"\r\n":
                    raise AssertionError("chunk not followed by CRLF")
            resp.body = body
        elif cl is not None:
            resp.body = self.read_exact(int(cl))
        else:
            while self._fill():
                pass
            resp.body, self.buf = self.buf, b""
        return resp

    def is_closed(self, timeout=IO_TIMEOUT_S):
        """Waits up to @timeout for the peer to close; True on EOF/reset, False if it stays open.
        Bytes that arrive meanwhile are kept in the buffer."""
        if self.eof:
            return True
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.sock.settimeout(min(left, 1.0))
            try:
                if not self._fill():
                    return True
            except socket.timeout:
                continue
            except OSError:
                return True
            finally:
                self.sock.settimeout(self.timeout)

    def pending(self):
        """Bytes received but not parsed yet."""
        return self.buf


def keepalive_sequence(port, requests):
    """Sends each (method, target, body) on one connection, waiting for each response."""
    with RawConnection(port) as c:
        return [c.request(m, t, b) for m, t, b in requests]


def pipeline(port, requests):
    """Sends every (method, target, body) in one write, then reads the responses in order."""
    with RawConnection(port) as c:
        c.send(b"".join(build_request(m, t, b) for m, t, b in requests))
        return [c.read_response(m) for m, _, _ in requests]


def connect_refused(port, host="127.0.0.1"):
    """True if a TCP connect to @port is refused right now."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect((host, port))
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
    finally:
        s.close()
    return False


# --- Test case base -------------------------------------------------------------------------

class ServerTestCase(unittest.TestCase):
    """Starts servers for a test, stops them after it, checks exit status and log."""

    maxDiff = None

    def setUp(self):
        self.servers = []

    def make_conf(self, **kwargs):
        conf = ConfDir(**kwargs)
        self.addCleanup(conf.cleanup)
        return conf

    def start_server(self, conf=None, listen="127.0.0.1:0", **conf_kwargs):
        """Writes a conf.d (unless @conf is given), starts modhost, returns the Server.
        @listen None leaves the address to the configuration.
        It is stopped with SIGTERM after the test (exit status must be 0) unless the test
        has stopped it already."""
        if conf is None:
            conf = self.make_conf(**conf_kwargs)
        srv = Server(conf.path, listen=listen)
        self.servers.append(srv)
        self.addCleanup(self._finish_server, srv)
        srv.start()
        return srv

    def stop_server(self, srv, sig=signal.SIGTERM, timeout=STOP_TIMEOUT_S):
        """Stops @srv now and asserts a clean exit."""
        rc = srv.stop(sig, timeout)
        self.assertEqual(rc, 0, "modhost exited with status %s" % rc)
        self.assert_log_clean(srv)

    def assert_log_clean(self, srv):
        bad = sanitizer_lines(srv.log())
        self.assertEqual(bad, [], "sanitizer reports in the server log")

    def _finish_server(self, srv):
        if srv.proc is None or srv.start_failed:
            return  # start() has reported it
        if srv.returncode is None:
            rc = srv.stop()
            if rc != 0:
                raise AssertionError("modhost exited with status %s" % rc)
        bad = sanitizer_lines(srv.log())
        if bad:
            raise AssertionError("sanitizer reports in the server log:\n" + "\n".join(bad))

    def run(self, result=None):
        """Prints the logs of this test's servers when it fails or errors."""
        if result is None:
            result = self.defaultTestResult()
        before = len(result.failures) + len(result.errors)
        try:
            return super().run(result)
        finally:
            failed = len(result.failures) + len(result.errors) > before
            for srv in getattr(self, "servers", []):
                if failed:
                    sys.stderr.write("\n--- modhost log (%s, pid %s) ---\n%s--- end of log ---\n"
                                     % (self.id(), srv.pid if srv.proc else "-", srv.log()))
                srv.cleanup()
