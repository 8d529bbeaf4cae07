"""The chat page in a real browser: headless Chromium, driven over the DevTools protocol (CDP)
with the raw WebSocket client of the integration tests, opens /chat/?room=t&name=alice and
/chat/?room=t&name=bob as two tabs; bob types a message and sends it, and alice's page must
show it. A screenshot of alice's page is saved as a test artifact (MODHOST_ARTIFACT_DIR, which
CTest sets to the build directory of these tests).

When the module directory has the memory store driver (store_memory.so), the chat module keeps
history in it and a third page, carol's, opened after bob's message, must show the message as
replayed history; a raw-client test checks the replay messages carry "history": true.

Skipped, saying why, when no Chromium is installed (Debian package `chromium`).
"""

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from urllib.parse import quote

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # mhtest and ws_client live one folder up

from mhtest import (HELLO_CONF, IO_TIMEOUT_S, MODULE_DIR, RawConnection,  # noqa: E402
                    ServerTestCase, module_conf, wait_until)
from ws_client import NORMAL, OP_TEXT, WSConnection, ws_module_conf  # noqa: E402

ROOM = "t"
BROWSER_TIMEOUT_S = 60.0  # bound for the browser to start, load a page or show a message
NO_CHROMIUM = "chromium is not installed (Debian package `chromium`): browser test skipped"


def find_chromium():
    explicit = os.environ.get("MODHOST_CHROMIUM")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def have_memory_store():
    return os.path.isfile(os.path.join(MODULE_DIR, "store_memory.so"))


def artifact_dir():
    path = os.environ.get("MODHOST_ARTIFACT_DIR") or tempfile.gettempdir()
    os.makedirs(path, exist_ok=True)
    return path


def chat_files(history):
    """conf.d for the chat module; with @history, a memory store "main" shared by chat and kv
    (kv lets the test see when a message has been stored)."""
    files = {"10-hello.conf": HELLO_CONF}
    chat = dict(path="/ws/chat/{room}", on_open="chat_open", on_message="chat_message",
                on_close="chat_close", max_message_bytes=8192, ping_interval_ms=30000,
                idle_timeout_ms=300000)
    if history:
        files["05-store.conf"] = (module_conf("store_memory", "store_memory.so")
                                  + 'stores = ( { name = "main"; driver = "memory"; } );\n')
        files["40-kv.conf"] = ('module: { name = "kv"; file = "kv.so"; stores = ["main"];\n'
                               '  routes = ( { method = "GET"; path = "/kv/{key}";'
                               ' handler = "get"; } ); };\n')
    files["30-chat.conf"] = ws_module_conf(
        "chat", "chat.so", [chat], routes=[("GET", "/chat/", "page")],
        settings={"history": 50, "max_text_bytes": 4096} if history else None,
        stores=["main"] if history else None)
    return files


def wait_stored(port, room, count):
    """Polls the store (through kv) until history slots 0..@count-1 of @room all exist."""
    targets = ["/kv/" + quote("chat/%s/%d" % (room, i), safe="") for i in range(count)]

    def stored():
        with RawConnection(port) as h:
            return all(h.request("GET", t).status == 200 for t in targets)

    return wait_until(stored, IO_TIMEOUT_S, interval=0.05)


# --- A minimal DevTools protocol client ----------------------------------------------------

class CDPError(Exception):
    pass


class Chromium:
    """A headless Chromium process and a CDP connection to its browser target."""

    def __init__(self, binary, extra_args=()):
        self.profile = tempfile.mkdtemp(prefix="modhost-chromium-")
        self.log_path = os.path.join(self.profile, "chromium.log")
        args = [binary, "--headless", "--remote-debugging-port=0",
                "--user-data-dir=" + self.profile, "--no-sandbox", "--disable-gpu",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-extensions",
                "--window-size=900,600"] + list(extra_args) + ["about:blank"]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        self.conn = None
        self.next_id = 0
        port_file = os.path.join(self.profile, "DevToolsActivePort")

        def ready():
            if self.proc.poll() is not None:
                return "exited"
            try:
                with open(port_file, encoding="ascii") as f:
                    lines = f.read().split("\n")
            except FileNotFoundError:
                return None
            return lines if len(lines) >= 2 and lines[0].isdigit() and lines[1] else None

        got = wait_until(ready, BROWSER_TIMEOUT_S, interval=0.05)
        if not got or got == "exited":
            raise AssertionError("chromium did not start (%s)\n%s"
                                 % ("exited" if got else "no DevToolsActivePort", self.log()))
        self.conn = WSConnection(int(got[0]), timeout=BROWSER_TIMEOUT_S)
        self.conn.open(got[1])

    def log(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def call(self, method, params=None, session=None):
        """Sends one command and returns its result; events on the way are dropped."""
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self.conn.send_text(json.dumps(msg))
        while True:
            opcode, data = self.conn.recv_message()
            if opcode != OP_TEXT:
                continue
            reply = json.loads(data.decode("utf-8"))
            if reply.get("id") != self.next_id:
                continue
            if "error" in reply:
                raise CDPError("%s: %s" % (method, reply["error"]))
            return reply.get("result", {})

    def open_page(self, url):
        """A new tab at @url; returns its session id."""
        target = self.call("Target.createTarget", {"url": url})["targetId"]
        return self.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"]

    def evaluate(self, session, expression):
        result = self.call("Runtime.evaluate", {"expression": expression,
                                                "returnByValue": True}, session)
        if "exceptionDetails" in result:
            raise CDPError("%s: %s" % (expression, result["exceptionDetails"]))
        return result["result"].get("value")

    def wait_for(self, session, expression, what):
        """Polls @expression until it is truthy; returns its value."""
        value = wait_until(lambda: self.evaluate(session, expression), BROWSER_TIMEOUT_S,
                           interval=0.05)
        if not value:
            raise AssertionError("page never showed %s; last value %r"
                                 % (what, self.evaluate(session, expression)))
        return value

    def screenshot(self, session, path):
        self.call("Page.bringToFront", {}, session)
        data = self.call("Page.captureScreenshot", {"format": "png"}, session)["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
        return path

    def close(self):
        if self.conn is not None:
            try:
                self.call("Browser.close")
            except Exception:  # noqa: BLE001 - it may be gone already; kill below
                pass
            self.conn.close()
        if self.proc.poll() is None:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


LOG_TEXT = "document.getElementById('log').innerText"
# The status text once the page's WebSocket is open, else "" (also while still on about:blank).
CONNECTED = ("(() => { const s = document.getElementById('status');"
             " return s && s.textContent.startsWith('connected') ? s.textContent : ''; })()")


def send_js(text):
    """JavaScript that types @text into the page's input and presses its send button."""
    return ("(() => { const t = document.getElementById('text'); t.focus(); t.value = %s;"
            " t.dispatchEvent(new Event('input', {bubbles: true}));"
            " document.getElementById('send').click(); return true; })()" % json.dumps(text))


class TestChatInBrowser(ServerTestCase):
    def setUp(self):
        super().setUp()
        binary = find_chromium()
        if not binary:
            self.skipTest(NO_CHROMIUM)
        self.history = have_memory_store()
        self.srv = self.start_server(files=chat_files(self.history), threads=2)
        self.browser = Chromium(binary)
        self.addCleanup(self.browser.close)

    def page(self, name):
        url = "http://127.0.0.1:%d/chat/?room=%s&name=%s" % (self.srv.port, ROOM, name)
        session = self.browser.open_page(url)
        status = self.browser.wait_for(session, CONNECTED, "'connected' for %s" % name)
        self.assertEqual(status, "connected to " + ROOM)
        return session

    def test_bob_sends_alice_sees(self):
        b = self.browser
        alice = self.page("alice")
        bob = self.page("bob")
        # alice sees bob join (both are in the room before bob speaks).
        b.wait_for(alice, "%s.includes('bob joined')" % LOG_TEXT, "bob joining")
        text = "hello alice, it is bob %d" % os.getpid()
        self.assertTrue(b.evaluate(bob, send_js(text)))
        b.wait_for(alice, "%s.includes(%s)" % (LOG_TEXT, json.dumps(text)), "bob's message")
        line = b.evaluate(alice, "[...document.querySelectorAll('#log li.message')]"
                                 ".map(e => e.textContent).pop()")
        self.assertRegex(line, r"^\d\d:\d\d:\d\d bob: " + text + "$")
        self.assertEqual(b.evaluate(bob, "document.getElementById('text').value"), "",
                         "bob's input was not cleared after sending")
        # bob's page shows his own message too (it comes back from the room).
        b.wait_for(bob, "%s.includes(%s)" % (LOG_TEXT, json.dumps(text)), "bob's own message")
        shot = b.screenshot(alice, os.path.join(artifact_dir(), "chat-alice.png"))
        sys.stdout.write("\nscreenshot of alice's page: %s\n" % shot)
        sys.stdout.flush()
        with open(shot, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")

        if not self.history:
            sys.stdout.write("store_memory.so not in %s: history replay not tested\n"
                             % MODULE_DIR)
            return
        self.assertTrue(wait_stored(self.srv.port, ROOM, 1), "bob's message never stored")
        carol = self.page("carol")
        replayed = b.wait_for(
            carol, "[...document.querySelectorAll('#log li.message.history')]"
                   ".map(e => e.textContent)", "the replayed history")
        self.assertEqual(len(replayed), 1, replayed)
        self.assertRegex(replayed[0], r"bob: " + text + "$")
        b.wait_for(alice, "%s.includes('carol joined')" % LOG_TEXT, "carol joining")


def spki_pin(cert):
    """Chromium's pin of @cert's public key: base64 of SHA-256 over its SubjectPublicKeyInfo."""
    pem = subprocess.run(["openssl", "x509", "-in", cert, "-pubkey", "-noout"], check=True,
                         stdout=subprocess.PIPE).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pem, check=True,
                         stdout=subprocess.PIPE).stdout
    return base64.b64encode(hashlib.sha256(der).digest()).decode("ascii")


class TestChatOverHttps(ServerTestCase):
    """The chat page over https:// and its WebSocket over wss://, the test CA's server
    certificate trusted by Chromium through its public key pin."""

    def setUp(self):
        super().setUp()
        binary = find_chromium()
        if not binary:
            self.skipTest(NO_CHROMIUM)
        if not shutil.which("openssl"):
            self.skipTest("openssl is not installed")
        from test_tls import TestCA, tls_server_conf  # noqa: E402 - one folder up, like mhtest
        ca = TestCA()
        self.addCleanup(ca.cleanup)
        cert, key = ca.issue("localhost", "localhost", ["DNS:localhost", "IP:127.0.0.1"])
        conf = self.make_conf(server=tls_server_conf(cert, key), files=chat_files(False))
        self.srv = self.start_server(conf, listen=None)
        self.browser = Chromium(binary, ["--ignore-certificate-errors-spki-list=" + spki_pin(cert)])
        self.addCleanup(self.browser.close)

    def page(self, name):
        url = "https://localhost:%d/chat/?room=%s&name=%s" % (self.srv.ports[1], ROOM, name)
        session = self.browser.open_page(url)
        status = self.browser.wait_for(session, CONNECTED, "'connected' for %s" % name)
        self.assertEqual(status, "connected to " + ROOM)
        return session

    def test_chat_over_wss(self):
        b = self.browser
        alice = self.page("alice")
        bob = self.page("bob")
        self.assertEqual(b.evaluate(bob, "location.protocol"), "https:")
        b.wait_for(alice, "%s.includes('bob joined')" % LOG_TEXT, "bob joining")
        text = "over wss, bob %d" % os.getpid()
        self.assertTrue(b.evaluate(bob, send_js(text)))
        b.wait_for(alice, "%s.includes(%s)" % (LOG_TEXT, json.dumps(text)), "bob's message")


class TestHistoryReplay(ServerTestCase):
    """Without a browser: the replay a late joiner gets, message by message."""

    def setUp(self):
        super().setUp()
        if not have_memory_store():
            self.skipTest("store_memory.so not in %s: no store for history" % MODULE_DIR)
        self.srv = self.start_server(files=chat_files(True), threads=2)

    def ws(self, name):
        c = WSConnection(self.srv.port)
        self.addCleanup(c.close)
        c.open("/ws/chat/%s?name=%s" % (ROOM, name))
        return c

    @staticmethod
    def events(c, want, kinds=("message",)):
        got = []
        while len(got) < want:
            ev = json.loads(c.recv_message()[1].decode("utf-8"))
            if ev.get("type") in kinds:
                got.append(ev)
        return got

    def test_late_joiner_gets_the_history(self):
        bob = self.ws("bob")
        texts = ["first", "second", "third"]
        for t in texts:
            bob.send_text(json.dumps({"text": t}))
        live = self.events(bob, 3)
        self.assertEqual([e["text"] for e in live], texts)
        self.assertTrue(all("history" not in e for e in live), live)
        self.assertTrue(wait_stored(self.srv.port, ROOM, 3), "messages never stored")
        bob.send_close(NORMAL)
        self.assertEqual(bob.expect_close().close_code, NORMAL)

        carol = self.ws("carol")
        replay = self.events(carol, 3)
        # Every message comes back once, as sent and flagged. The order is not checked here:
        # chat.c stores each message from its own pool task, and concurrent tasks can take
        # the room's sequence numbers in another order than the messages were sent.
        key = lambda e: e["text"]  # noqa: E731
        self.assertEqual(sorted([e["text"] for e in replay]), sorted(texts))
        for e, orig in zip(sorted(replay, key=key), sorted(live, key=key)):
            self.assertIs(e["history"], True)
            self.assertEqual((e["user"], e["room"], e["ts"], e["type"]),
                             ("bob", ROOM, orig["ts"], "message"))
        # Live messages after the replay have no "history" flag.
        carol.send_text(json.dumps({"text": "now"}))
        (ev,) = self.events(carol, 1)
        self.assertEqual(ev["text"], "now")
        self.assertNotIn("history", ev)


if __name__ == "__main__":
    unittest.main()
