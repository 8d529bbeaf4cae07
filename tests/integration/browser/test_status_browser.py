"""The admin listener's status page in headless Chromium (driven over CDP as the chat page
test does): the page loads from the binary, its table lists the loaded modules, and while a
thread drives traffic the request-rate chart and the module's row change. A screenshot is kept
as a test artifact (status-page.png in MODHOST_ARTIFACT_DIR).

Skipped, saying why, when no Chromium is installed (Debian package `chromium`)."""

import os
import sys
import threading
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from mhtest import (ConnectionClosed, ECHO_CONF, HELLO_CONF, RawConnection, ServerTestCase,  # noqa: E402
                    server_conf, ConfDir, wait_until)
from test_chat_browser import (NO_CHROMIUM, Chromium, artifact_dir,  # noqa: E402
                               find_chromium)
from test_admin import admin_extra, admin_port  # noqa: E402

ROWS = "Array.from(document.querySelectorAll('#modules tbody tr')).map(r => r.dataset.module)"
RATE_POINTS = "document.getElementById('c-rate').dataset.points || ''"
HELLO_RATE = ("(() => { const r = document.querySelector('tr[data-module=\"hello\"]');"
              " return r ? r.children[3].textContent : ''; })()")


class Traffic(threading.Thread):
    """Requests to /hello until stopped: the load the page must show."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.stop = threading.Event()
        self.count = 0

    def run(self):
        while not self.stop.is_set():
            try:  # a new connection when the server closes one (max_requests_per_connection)
                with RawConnection(self.port) as c:
                    while not self.stop.is_set():
                        if c.request("GET", "/hello/page").status == 200:
                            self.count += 1
            except (ConnectionClosed, OSError):
                continue


class TestStatusPage(ServerTestCase):
    def setUp(self):
        super().setUp()
        binary = find_chromium()
        if not binary:
            self.skipTest(NO_CHROMIUM)
        conf = ConfDir(files={"10-hello.conf": HELLO_CONF, "20-echo.conf": ECHO_CONF},
                       server=server_conf(extra=admin_extra()))
        self.addCleanup(conf.cleanup)
        self.srv = self.start_server(conf=conf)
        self.admin = admin_port(self.srv)
        self.browser = Chromium(binary)
        self.addCleanup(self.browser.close)

    def test_page_lists_modules_and_charts_move(self):
        b = self.browser
        session = b.open_page("http://127.0.0.1:%d/" % self.admin)
        rows = b.wait_for(session, "(%s).length >= 2 ? %s : null" % (ROWS, ROWS),
                          "the module table")
        self.assertEqual(sorted(rows), ["echo", "hello"])
        quiet = b.evaluate(session, RATE_POINTS)
        traffic = Traffic(self.srv.port)
        traffic.start()
        self.addCleanup(traffic.stop.set)
        # The chart's points come from the page's once-a-second fetch: wait until it has drawn
        # a line (three points) with a non-zero request rate, and hello's row shows a rate.
        moved = b.wait_for(session, "(() => { const p = %s; return p !== %r && "
                                    "p.split(',').length >= 3 && "
                                    "p.split(',').some(v => parseFloat(v) > 0) ? p : ''; })()"
                           % (RATE_POINTS, quiet), "a moving request-rate chart")
        self.assertTrue(moved)
        b.wait_for(session, "parseFloat(%s) > 0" % HELLO_RATE, "a request rate for hello")
        self.assertTrue(wait_until(lambda: traffic.count > 0, 10))
        shot = b.screenshot(session, os.path.join(artifact_dir(), "status-page.png"))
        self.assertGreater(os.path.getsize(shot), 1000)
        traffic.stop.set()
        traffic.join(10)


if __name__ == "__main__":
    unittest.main()
