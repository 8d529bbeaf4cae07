"""TLS listeners: a test CA made here with the openssl command line; HTTPS from curl and
Python's ssl, refusals proven with `openssl s_client` (old protocols, weak ciphers), SNI,
resumption, plain HTTP on the TLS port, handshakes split at every byte, a stalled handshake,
1,000 concurrent handshakes, wss:// with python3-websockets, certificates replaced by a reload
under load, `modhost check` on bad certificates and keys, and every failure reason a client can
cause counted in the admin listener's /metrics (checked with promtool)."""

import asyncio
import http.client
import json
import os
import re
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import unittest

from mhtest import (ECHO_CONF, HELLO_CONF, IO_TIMEOUT_S, RawConnection, ServerTestCase,
                    build_request, run_cli, server_conf, wait_until)
from test_admin import admin_extra, admin_port, get, parse_metrics
from ws_client import ws_module_conf

try:
    import websockets
except ImportError:  # Debian package python3-websockets
    websockets = None

OPENSSL = shutil.which("openssl")
CURL = shutil.which("curl")


def openssl(*args, cwd):
    subprocess.run([OPENSSL] + list(args), cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=60)


class TestCA:
    """A CA and server certificates signed by it, in a temporary directory."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="modhost-tls-")
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
                "-subj", "/CN=modhost test CA", cwd=self.dir)
        self.ca = self.path("ca.pem")

    def path(self, name):
        return os.path.join(self.dir, name)

    def issue(self, name, cn, sans):
        """Makes NAME.pem (certificate) and NAME.key for @cn with DNS/IP @sans."""
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + cn,
                cwd=self.dir)
        with open(self.path(name + ".ext"), "w", encoding="ascii") as f:
            f.write("subjectAltName=%s\n" % ",".join(sans))
        openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", name + ".pem", "-days", "2", "-extfile",
                name + ".ext", cwd=self.dir)
        os.chmod(self.path(name + ".key"), 0o600)
        return self.path(name + ".pem"), self.path(name + ".key")

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def tls_server_conf(cert, key, sni=(), limits=None, extra="", tls_extra=""):
    """A 00-server.conf with a plain and a TLS listener, both on free loopback ports."""
    sni_text = ""
    if sni:
        sni_text = " sni = (%s);" % ", ".join(
            '{ certificate = "%s"; key = "%s"; }' % pair for pair in sni)
    listeners = ('  listeners = (\n    { listen = "127.0.0.1:0"; },\n'
                 '    { listen = "127.0.0.1:0"; tls: { certificate = "%s"; key = "%s";%s%s }; }\n'
                 '  );' % (cert, key, sni_text, tls_extra))
    return server_conf(limits=limits, extra=listeners + ("\n" + extra if extra else ""))


class TlsCase(ServerTestCase):
    @classmethod
    def setUpClass(cls):
        if not OPENSSL:
            raise unittest.SkipTest("openssl is not installed")
        cls.ca = TestCA()
        cls.cert, cls.key = cls.ca.issue("localhost", "localhost",
                                         ["DNS:localhost", "IP:127.0.0.1"])
        cls.other_cert, cls.other_key = cls.ca.issue("other", "other.test",
                                                     ["DNS:other.test", "DNS:*.other.test"])

    @classmethod
    def tearDownClass(cls):
        cls.ca.cleanup()

    def start_tls(self, files=None, **kw):
        conf = self.make_conf(server=tls_server_conf(self.cert, self.key, **kw),
                              files=files)
        srv = self.start_server(conf, listen=None)
        self.assertEqual(len(srv.ports), 2, srv.ports)
        srv.tls_port = srv.ports[1]
        return srv

    def client_context(self):
        ctx = ssl.create_default_context(cafile=self.ca.ca)
        ctx.set_alpn_protocols(["http/1.1"])
        return ctx

    def https(self, srv, ctx=None):
        return http.client.HTTPSConnection("localhost", srv.tls_port, timeout=IO_TIMEOUT_S,
                                           context=ctx or self.client_context())

    def s_client(self, srv, *args, data=b""):
        """Runs openssl s_client against the TLS port; returns its combined output."""
        r = subprocess.run([OPENSSL, "s_client", "-connect", "127.0.0.1:%d" % srv.tls_port,
                            "-CAfile", self.ca.ca] + list(args),
                           input=data, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=IO_TIMEOUT_S)
        return r.stdout.decode("utf-8", "replace")

    def stop_and_failures(self, srv):
        """Stops the server; returns its logged totals of failed handshakes by reason."""
        self.stop_server(srv)
        m = re.search(r"tls: handshakes failed since start: \d+:(.*)", srv.log())
        if not m:
            return {}
        return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(1))}


class TestHttps(TlsCase):
    def test_curl_over_https_and_plain_beside_it(self):
        if not CURL:
            self.skipTest("curl is not installed")
        srv = self.start_tls()
        r = subprocess.run([CURL, "-sS", "--cacert", self.ca.ca, "-w", "\n%{http_version}",
                            "https://localhost:%d/hello/tls" % srv.tls_port],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=IO_TIMEOUT_S)
        self.assertEqual(r.returncode, 0, r.stderr)
        body, version = r.stdout.decode().rsplit("\n", 1)
        self.assertEqual(json.loads(body), {"message": "Hello, tls!"})
        self.assertEqual(version, "1.1")
        with RawConnection(srv.port) as c:  # the plain listener serves the same routes
            self.assertEqual(c.request("GET", "/hello/plain").json(),
                             {"message": "Hello, plain!"})

    def test_python_ssl_keepalive_large_bodies_and_alpn(self):
        srv = self.start_tls()
        conn = self.https(srv)
        try:
            for i in range(5):
                conn.request("GET", "/hello/n%d" % i)
                resp = conn.getresponse()
                self.assertEqual(resp.status, 200)
                self.assertEqual(json.loads(resp.read()), {"message": "Hello, n%d!" % i})
            self.assertEqual(conn.sock.selected_alpn_protocol(), "http/1.1")
            self.assertEqual(conn.sock.version(), "TLSv1.3")
            body = os.urandom(900 * 1024)  # many records each way
            conn.request("POST", "/echo", body=body)
            resp = conn.getresponse()
            self.assertEqual(resp.status, 200)
            self.assertEqual(resp.read(), body)
        finally:
            conn.close()

    def test_tls12_and_session_resumption(self):
        srv = self.start_tls()
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            ctx = self.client_context()
            ctx.maximum_version = version
            first = self.https(srv, ctx)
            first.request("GET", "/hello/one")
            self.assertEqual(first.getresponse().read(), b'{"message":"Hello, one!"}')
            session = first.sock.session
            self.assertFalse(first.sock.session_reused)
            first.close()
            for i in range(3):  # each resumption hands out the ticket for the next one
                raw = socket.create_connection(("127.0.0.1", srv.tls_port), timeout=IO_TIMEOUT_S)
                again = ctx.wrap_socket(raw, server_hostname="localhost", session=session)
                try:
                    self.assertTrue(again.session_reused, (version, i))
                    again.sendall(build_request("GET", "/hello/two"))
                    self.assertIn(b"Hello, two!", read_response(again))
                    if version == ssl.TLSVersion.TLSv1_3:  # a fresh ticket for the next time
                        self.assertNotEqual(again.session.id, session.id)
                    session = again.session
                finally:
                    again.close()

    def test_old_protocols_and_weak_ciphers_are_refused(self):
        srv = self.start_tls()
        for flag in ("-tls1", "-tls1_1"):
            out = self.s_client(srv, flag, "-cipher", "DEFAULT@SECLEVEL=0")
            self.assertIn("alert protocol version", out, flag)
            self.assertNotRegex(out, r"Cipher is (?!\(NONE\))", flag)
        for cipher in ("AES128-SHA", "ECDHE-RSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA384",
                       "ECDHE-ECDSA-AES128-SHA", "AES256-GCM-SHA384"):
            out = self.s_client(srv, "-tls1_2", "-cipher", cipher + "@SECLEVEL=0")
            self.assertNotRegex(out, r"Cipher is (?!\(NONE\))", cipher)
        out = self.s_client(srv, "-tls1_2")
        self.assertIn("Cipher is ECDHE-ECDSA-AES128-GCM-SHA256", out)
        out = self.s_client(srv)
        self.assertIn("New, TLSv1.3, Cipher is TLS_AES_128_GCM_SHA256", out)
        failures = self.stop_and_failures(srv)
        self.assertEqual(failures.get("protocol"), 2, failures)
        self.assertEqual(failures.get("cipher"), 5, failures)

    def test_sni_picks_the_certificate(self):
        srv = self.start_tls(sni=[(self.other_cert, self.other_key)])
        for name, cn in (("localhost", "localhost"), ("other.test", "other.test"),
                         ("a.other.test", "other.test"), ("unknown.test", "localhost")):
            out = self.s_client(srv, "-servername", name)
            self.assertRegex(out, r"subject=CN ?= ?%s\n" % re.escape(cn), name)
        ctx = self.client_context()
        raw = socket.create_connection(("127.0.0.1", srv.tls_port), timeout=IO_TIMEOUT_S)
        with ctx.wrap_socket(raw, server_hostname="www.other.test") as s:  # verified by name
            s.sendall(build_request("GET", "/hello/sni"))
            self.assertIn(b"Hello, sni!", read_response(s))

    def test_openssl_is_mapped_only_with_a_tls_listener(self):
        def crypto_mapped(srv):
            with open("/proc/%d/maps" % srv.pid, encoding="ascii", errors="replace") as f:
                return any(re.search(r"/lib(ssl|crypto)\.so", line) for line in f)

        plain = self.start_server()
        self.assertFalse(crypto_mapped(plain))
        srv = self.start_tls()
        self.assertTrue(crypto_mapped(srv))

    def test_plain_http_on_the_tls_port_gets_400(self):
        srv = self.start_tls()
        with RawConnection(srv.tls_port) as c:
            resp = c.request("GET", "/hello/x")
            self.assertEqual(resp.status, 400)
            self.assertEqual(resp.header("Connection"), "close")
            self.assertIn("HTTPS", resp.json()["detail"])
            self.assertTrue(c.is_closed())
        with RawConnection(srv.tls_port) as c:  # not TLS and not HTTP: closed
            c.send(b"\x00\x01\x02garbage")
            self.assertTrue(c.is_closed())
        failures = self.stop_and_failures(srv)
        self.assertEqual(failures.get("plain_http"), 1, failures)
        self.assertEqual(failures.get("not_tls"), 1, failures)


def read_response(sock):
    """Reads one response with Content-Length from a blocking socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    m = re.search(rb"(?i)content-length: (\d+)", head)
    n = int(m.group(1)) if m else 0
    while len(body) < n:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


class MemoryClient:
    """A TLS client over a socket with memory BIOs: the test decides how bytes are cut."""

    def __init__(self, ctx, port):
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_hostname="localhost")
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT_S)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def first_flight(self):
        try:
            self.obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        return self.out.read()

    def finish_handshake(self, send=None):
        send = send or self.sock.sendall
        while True:
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                pending = self.out.read()
                if pending:
                    send(pending)
                data = self.sock.recv(65536)
                if not data:
                    raise ConnectionError("closed during the handshake")
                self.inc.write(data)
        pending = self.out.read()
        if pending:
            send(pending)

    def request(self, target, send=None):
        send = send or self.sock.sendall
        self.obj.write(build_request("GET", target))
        send(self.out.read())
        data = b""
        while True:
            try:
                data += self.obj.read(65536)
            except ssl.SSLWantReadError:
                more = self.sock.recv(65536)
                if not more:
                    return data
                self.inc.write(more)
                continue
            if b"\r\n\r\n" in data:
                head, _, body = data.partition(b"\r\n\r\n")
                m = re.search(rb"(?i)content-length: (\d+)", head)
                if m and len(body) >= int(m.group(1)):
                    return data

    def close(self):
        self.sock.close()


class TestHandshakeShapes(TlsCase):
    def test_client_hello_split_at_every_byte(self):
        srv = self.start_tls()
        ctx = self.client_context()
        probe = MemoryClient(ctx, srv.tls_port)
        size = len(probe.first_flight())
        probe.close()
        self.assertGreater(size, 100)
        for cut in range(1, size):
            c = MemoryClient(ctx, srv.tls_port)
            try:
                hello = c.first_flight()
                c.sock.sendall(hello[:cut])
                c.sock.sendall(hello[cut:])
                c.finish_handshake()
                self.assertIn(b"Hello, cut%d!" % cut, c.request("/hello/cut%d" % cut))
            finally:
                c.close()

    def test_every_client_byte_sent_alone(self):
        srv = self.start_tls()
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            ctx = self.client_context()
            ctx.maximum_version = version
            c = MemoryClient(ctx, srv.tls_port)

            def bytewise(data, sock=c.sock):
                for i in range(len(data)):
                    sock.sendall(data[i:i + 1])

            try:
                bytewise(c.first_flight())
                c.finish_handshake(bytewise)
                self.assertIn(b"Hello, bytes!", c.request("/hello/bytes", bytewise))
            finally:
                c.close()

    def test_stalled_handshake_hits_the_head_deadline(self):
        srv = self.start_tls(limits={"head_timeout_ms": 300})
        c = MemoryClient(self.client_context(), srv.tls_port)
        hello = c.first_flight()
        c.sock.sendall(hello[:len(hello) // 2])  # and nothing more
        silent = socket.create_connection(("127.0.0.1", srv.tls_port), timeout=IO_TIMEOUT_S)
        try:
            for s in (c.sock, silent):
                try:
                    self.assertEqual(s.recv(100), b"")  # closed by the server, no bytes
                except ConnectionResetError:
                    pass
        finally:
            c.close()
            silent.close()
        failures = self.stop_and_failures(srv)
        self.assertEqual(failures.get("unfinished"), 2, failures)

    def test_thousand_concurrent_handshakes(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard != resource.RLIM_INFINITY and hard < 2400:
            self.skipTest("needs RLIMIT_NOFILE >= 2400 (hard limit %d)" % hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 2400), hard))
        self.addCleanup(resource.setrlimit, resource.RLIMIT_NOFILE, (soft, hard))
        srv = self.start_tls()
        ctx = self.client_context()
        n = 1000

        async def run_all():
            ready, gate = [0], asyncio.Event()

            async def one(i):
                reader, writer = await asyncio.open_connection(
                    "127.0.0.1", srv.tls_port, ssl=ctx, server_hostname="localhost")
                ready[0] += 1
                if ready[0] == n:
                    gate.set()
                await gate.wait()  # all n handshakes done and open before any request
                writer.write(build_request("GET", "/hello/c%d" % i))
                await writer.drain()
                head = await reader.readuntil(b"\r\n\r\n")
                size = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))
                body = await reader.readexactly(size)
                writer.close()
                return json.loads(body)["message"]

            return await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(n))), 300)

        got = asyncio.run(run_all())
        self.assertEqual(got, ["Hello, c%d!" % i for i in range(n)])


FAILURE_REASONS = ("protocol", "cipher", "certificate", "plain_http", "not_tls", "closed",
                   "unfinished", "other")


class TestFailureMetrics(TlsCase):
    """Each way a client can fail a handshake moves modhost_tls_handshake_failures_total for its
    reason by one and no other reason, with one worker process and summed over two; promtool
    accepts the exposition before and after; the totals logged at the stop agree."""

    def setUp(self):
        super().setUp()
        self.promtool = shutil.which("promtool")
        if not self.promtool:
            self.skipTest("promtool is not installed (Debian package `prometheus`)")

    def scrape(self):
        resp = get(self.admin, "/metrics")
        self.assertEqual(resp.status, 200, resp)
        return resp.body.decode("utf-8")

    def failures(self):
        samples, types = parse_metrics(self.scrape())
        self.assertEqual(types.get("modhost_tls_handshake_failures_total"), "counter")
        return {r: samples.get(("modhost_tls_handshake_failures_total", (("reason", r),)))
                for r in FAILURE_REASONS}

    def promtool_accepts(self):
        out = subprocess.run([self.promtool, "check", "metrics"], input=self.scrape(),
                             encoding="utf-8", stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             timeout=IO_TIMEOUT_S)
        self.assertEqual(out.returncode, 0, out.stdout)

    def provoke_every_reason(self, processes, more_plain=0):
        """Starts a server, causes each reason once in turn (and plain HTTP @more_plain times
        more), and after each polls /metrics until the counts are exactly those caused so far.
        With several workers a scrape adds the others' counts as they pinned them up to a second
        ago, so a poll may see fewer, never more; the totals each worker logs at the stop are
        exact, and the caller compares them. Returns them, summed over the workers."""
        # The stalled client below waits for this deadline; the other clients finish their
        # handshakes (or fail them) long before it.
        srv = self.start_tls(limits={"head_timeout_ms": 2000},
                             extra=admin_extra(more="  processes = %d;\n" % processes))
        self.admin = admin_port(srv)
        expected = {r: 0 for r in FAILURE_REASONS}
        self.assertEqual(self.failures(), expected)
        self.promtool_accepts()

        def old_protocol():
            self.assertIn("alert protocol version",
                          self.s_client(srv, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"))

        def weak_cipher():
            out = self.s_client(srv, "-tls1_2", "-cipher", "AES128-SHA@SECLEVEL=0")
            self.assertNotRegex(out, r"Cipher is (?!\(NONE\))")

        def untrusted_certificate():  # a client without the test CA refuses the certificate
            raw = socket.create_connection(("127.0.0.1", srv.tls_port), timeout=IO_TIMEOUT_S)
            with self.assertRaises(ssl.SSLCertVerificationError):
                ssl.create_default_context().wrap_socket(raw, server_hostname="localhost")
            raw.close()

        def plain_http():
            with RawConnection(srv.tls_port) as c:
                self.assertEqual(c.request("GET", "/hello/x").status, 400)

        def not_tls():
            with RawConnection(srv.tls_port) as c:
                c.send(b"\x00\x01\x02garbage")
                self.assertTrue(c.is_closed())

        def closed_mid_handshake():  # half a ClientHello, then the client goes
            c = MemoryClient(self.client_context(), srv.tls_port)
            hello = c.first_flight()
            c.sock.sendall(hello[:len(hello) // 2])
            c.close()

        def stalled():  # half a ClientHello and nothing more: closed at the head deadline
            c = MemoryClient(self.client_context(), srv.tls_port)
            try:
                hello = c.first_flight()
                c.sock.sendall(hello[:len(hello) // 2])
                try:
                    self.assertEqual(c.sock.recv(100), b"")  # until the server closes it
                except ConnectionResetError:
                    pass
            finally:
                c.close()

        def counted_until_deadline(reason):
            seen = []

            def counted():
                seen[:] = [self.failures()]
                return seen[0] == expected

            self.assertTrue(wait_until(counted, IO_TIMEOUT_S), (reason, seen, expected))

        for reason, provoke in (("protocol", old_protocol), ("cipher", weak_cipher),
                                ("certificate", untrusted_certificate),
                                ("plain_http", plain_http), ("not_tls", not_tls),
                                ("closed", closed_mid_handshake), ("unfinished", stalled)) + \
                ((("plain_http", plain_http),) * more_plain):
            provoke()
            expected[reason] += 1
            counted_until_deadline(reason)
        self.promtool_accepts()
        conn = self.https(srv)  # a handshake that works is no failure
        try:
            conn.request("GET", "/hello/ok")
            self.assertEqual(conn.getresponse().status, 200)
        finally:
            conn.close()
        counted_until_deadline("none")
        self.stop_server(srv)
        totals = {}
        for line in re.findall(r"tls: handshakes failed since start: \d+:(.*)", srv.log()):
            for k, v in re.findall(r"(\w+)=(\d+)", line):
                totals[k] = totals.get(k, 0) + int(v)
        return totals

    def test_every_reason_a_client_can_cause_moves_its_counter(self):
        self.assertEqual(self.provoke_every_reason(1), {r: 1 for r in FAILURE_REASONS[:-1]})

    def test_counts_are_summed_over_worker_processes(self):
        # 17 plain requests: the kernel spreads connections over both workers, so a scrape that
        # did not add the other worker's counts would see fewer (all 17 on one: about 2^-16).
        want = dict({r: 1 for r in FAILURE_REASONS[:-1]}, plain_http=17)
        self.assertEqual(self.provoke_every_reason(2, more_plain=16), want)


@unittest.skipUnless(websockets, "python3-websockets is not installed")
class TestWss(TlsCase):
    def test_websocket_echo_over_wss(self):
        files = {"20-echo.conf": ws_module_conf(
            "echo", "echo.so", [dict(path="/ws/echo", on_message="ws_echo")])}
        srv = self.start_tls(files=files)
        ctx = self.client_context()

        async def echo():
            async with websockets.connect("wss://localhost:%d/ws/echo" % srv.tls_port, ssl=ctx,
                                          max_size=1 << 21) as ws:
                out = []
                for msg in ("", "héllo", "x" * 70000, b"\x00\xff" * 300000):
                    await ws.send(msg)
                    out.append(await ws.recv())
                return out

        self.assertEqual(asyncio.run(echo()),
                         ["", "héllo", "x" * 70000, b"\x00\xff" * 300000])


class TestReloadAndCheck(TlsCase):
    def write_pair(self, conf, cert, key):
        """Copies a certificate and key into the conf dir (renamed in, as an operator would)."""
        for src, name in ((cert, "server.pem"), (key, "server.key")):
            tmp = conf.file(name + ".new")
            shutil.copyfile(src, tmp)
            os.chmod(tmp, 0o600)
            os.rename(tmp, conf.file(name))

    def start_with_files(self):
        conf = self.make_conf(server=False, files={})
        self.write_pair(conf, self.cert, self.key)
        conf.write("00-server.conf", tls_server_conf(conf.file("server.pem"),
                                                     conf.file("server.key")))
        conf.write("10-hello.conf", HELLO_CONF)
        conf.write("20-echo.conf", ECHO_CONF)
        srv = self.start_server(conf, listen=None)
        srv.tls_port = srv.ports[1]
        return conf, srv

    def peer_cn(self, srv, name="localhost"):
        raw = socket.create_connection(("127.0.0.1", srv.tls_port), timeout=IO_TIMEOUT_S)
        ctx = self.client_context()
        ctx.check_hostname = False
        with ctx.wrap_socket(raw, server_hostname=name) as s:
            subject = dict(x[0] for x in s.getpeercert()["subject"])
            s.sendall(build_request("GET", "/hello/cn"))
            self.assertIn(b"Hello, cn!", read_response(s))
            return subject["commonName"]

    def test_certificates_change_on_reload_under_load_without_a_failure(self):
        conf, srv = self.start_with_files()
        self.assertEqual(self.peer_cn(srv), "localhost")
        stop = threading.Event()
        errors, counts = [], [0, 0]

        def new_connections():
            ctx = self.client_context()
            ctx.check_hostname = False
            while not stop.is_set():
                try:
                    conn = self.https(srv, ctx)
                    conn.request("GET", "/hello/new")
                    if conn.getresponse().read() != b'{"message":"Hello, new!"}':
                        errors.append("bad body")
                    conn.close()
                    counts[0] += 1
                except Exception as e:  # noqa: BLE001 - every failure counts
                    errors.append(repr(e))

        def keepalive():
            ctx = self.client_context()
            ctx.check_hostname = False
            conn = self.https(srv, ctx)
            while not stop.is_set():
                try:
                    conn.request("GET", "/hello/kept")
                    if conn.getresponse().read() != b'{"message":"Hello, kept!"}':
                        errors.append("bad body")
                    counts[1] += 1
                except Exception as e:  # noqa: BLE001
                    errors.append(repr(e))
                    return
            conn.close()

        threads = [threading.Thread(target=f) for f in (new_connections, new_connections,
                                                        keepalive)]
        for t in threads:
            t.start()
        try:
            # Another certificate (other.test), then a broken key, then the first again.
            self.write_pair(conf, self.other_cert, self.other_key)
            srv.send_signal(signal.SIGHUP)
            self.assertTrue(srv.wait_log(r"reload: generation 2 serving"))
            self.assertEqual(self.peer_cn(srv, "other.test"), "other.test")
            with open(conf.file("server.key"), "w", encoding="ascii") as f:
                f.write("-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n")
            srv.send_signal(signal.SIGHUP)
            self.assertTrue(srv.wait_log(r"reload failed with \d+ errors? \(1 failed so far\)"))
            self.assertIn("server.key", srv.log())
            self.assertEqual(self.peer_cn(srv, "other.test"), "other.test")  # old ones stay
            self.write_pair(conf, self.cert, self.key)
            srv.send_signal(signal.SIGHUP)
            self.assertTrue(srv.wait_log(r"reload: generation 3 serving"))
            self.assertEqual(self.peer_cn(srv), "localhost")
        finally:
            stop.set()
            for t in threads:
                t.join()
        self.assertEqual(errors, [])
        self.assertGreater(counts[0], 0)
        self.assertGreater(counts[1], 0)

    def test_several_processes_share_the_listener_and_a_replacement_has_the_new_certificate(self):
        """The master builds the TLS contexts and every worker inherits them; a reload gives
        the workers and the master the new certificate, so a worker that replaces a dead one
        serves it too."""
        conf = self.make_conf(server=False, files={})
        self.write_pair(conf, self.cert, self.key)
        conf.write("00-server.conf", tls_server_conf(
            conf.file("server.pem"), conf.file("server.key"),
            extra='  processes = 2;\n  pid_file = "%s";' % conf.file("modhost.pid")))
        conf.write("10-hello.conf", HELLO_CONF)
        srv = self.start_server(conf, listen=None)
        srv.tls_port = srv.ports[1]
        pids = srv.worker_pids()
        self.assertEqual(len(pids), 2, pids)
        for _ in range(8):
            self.assertEqual(self.peer_cn(srv), "localhost")
        self.write_pair(conf, self.other_cert, self.other_key)
        r = run_cli("reload", "-c", conf.path)  # returns once the master decided
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("now serving generation 2", r.stdout)
        os.kill(pids[0], signal.SIGKILL)
        self.assertTrue(srv.wait_log(r"worker \d+ replaced by pid \d+"))
        self.assertTrue(wait_until(lambda: len(srv.worker_pids()) == 2 and
                                   pids[0] not in srv.worker_pids(), IO_TIMEOUT_S))
        # New connections go to either worker (SO_REUSEPORT spreads them): all get the new one.
        for _ in range(16):
            self.assertEqual(self.peer_cn(srv, "other.test"), "other.test")

    def test_tickets_resume_on_every_worker_across_key_rotations(self):
        """Every worker process derives the same ticket keys, period by period, from a seed
        the master made: a ticket one worker issued after a rotation resumes on the other."""
        from test_workers import server_side_owner
        conf = self.make_conf(server=tls_server_conf(
            self.cert, self.key, extra="  processes = 2;",
            tls_extra=" ticket_key_rotate_s = 2;"), files={"10-hello.conf": HELLO_CONF})
        srv = self.start_server(conf, listen=None)
        srv.tls_port = srv.ports[1]
        self.assertTrue(wait_until(lambda: len(srv.worker_pids()) == 2, IO_TIMEOUT_S))
        pids = srv.worker_pids()
        # Pace past the first rotation period, so that no key is the one made at start.
        pace = threading.Event()
        pace.wait(2.5)
        ctx = self.client_context()
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2  # one ticket, reusable
        first = self.https(srv, ctx)
        first.request("GET", "/hello/one")
        self.assertEqual(first.getresponse().read(), b'{"message":"Hello, one!"}')
        session = first.sock.session
        first.close()
        owners = set()
        for i in range(16):
            raw = socket.create_connection(("127.0.0.1", srv.tls_port), timeout=IO_TIMEOUT_S)
            again = ctx.wrap_socket(raw, server_hostname="localhost", session=session)
            try:
                again.sendall(build_request("GET", "/hello/two"))
                self.assertIn(b"Hello, two!", read_response(again))
                owners.add(server_side_owner(srv.tls_port, again, pids))
                self.assertTrue(again.session_reused, "resumption %d failed" % i)
            finally:
                again.close()
        print("\n  resumed on workers %r" % sorted(p for p in owners if p))
        if len(owners - {None}) < 2:
            self.skipTest("every connection landed on one worker")

    def test_check_names_bad_certificates_and_keys(self):
        conf = self.make_conf(server=tls_server_conf(self.cert, self.other_key))
        r = run_cli("check", "-c", conf.path)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertRegex(r.stderr, r"00-server\.conf:\d+: cannot use private key .*other\.key: "
                                   r"it does not belong to the certificate")
        conf = self.make_conf(server=tls_server_conf(self.cert, "/nonexistent/key.pem"))
        r = run_cli("check", "-c", conf.path)
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot read private key file /nonexistent/key.pem", r.stderr)
        loose = os.path.join(self.ca.dir, "loose.key")
        shutil.copyfile(self.key, loose)
        os.chmod(loose, 0o666)
        conf = self.make_conf(server=tls_server_conf(self.cert, loose))
        r = run_cli("check", "-c", conf.path)
        self.assertEqual(r.returncode, 1)
        self.assertIn("refusing private key file", r.stderr)
        conf = self.make_conf(server=tls_server_conf(self.cert, self.key,
                                                     tls_extra=' min_protocol = "TLSv1.1";'))
        r = run_cli("check", "-c", conf.path)
        self.assertEqual(r.returncode, 1)
        self.assertIn("min_protocol", r.stderr)
        conf = self.make_conf(server=tls_server_conf(self.cert, self.key))
        r = run_cli("check", "-c", conf.path)
        self.assertEqual(r.returncode, 0, r.stderr)


if __name__ == "__main__":
    unittest.main()
