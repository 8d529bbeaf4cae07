"""WebSocket edges: a message as large as the limit is no slow consumer, a room's history
replays in broadcast order, and an HTTP/1.0 upgrade is refused."""
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "browser"))
from mhtest import HELLO_CONF, ServerTestCase  # noqa: E402
from test_chat_browser import chat_files, wait_stored  # noqa: E402
from ws_client import OP_BINARY, WSConnection, handshake_request, new_key  # noqa: E402

ECHO_CONF_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "modules",
                              "echo", "echo.conf")


class TestWebSocketEdges(ServerTestCase):
    def test_max_size_message_on_stock_echo_conf_is_not_a_slow_consumer(self):
        with open(ECHO_CONF_PATH) as f:
            srv = self.start_server(files={"10-hello.conf": HELLO_CONF, "20-echo.conf": f.read()})
        c = WSConnection(srv.port); self.addCleanup(c.close); c.open()
        data = os.urandom(1 << 20)           # == max_message_bytes: allowed
        c.send_binary(data)
        self.assertEqual(c.recv_message(), (OP_BINARY, data))
        self.assertEqual(c.roundtrip("next"), b"next")

    def test_history_replays_in_broadcast_order(self):
        srv = self.start_server(files=chat_files(True))
        for trial in range(10):
            room = "h%d" % trial
            bob = WSConnection(srv.port); self.addCleanup(bob.close); bob.open("/ws/chat/%s?name=bob" % room)
            for i in range(20):
                bob.send_text(json.dumps({"text": "m%02d" % i}))
            self.assertTrue(wait_stored(srv.port, room, 20))
            carol = WSConnection(srv.port); self.addCleanup(carol.close); carol.open("/ws/chat/%s?name=carol" % room)
            got = []
            while len(got) < 20:
                e = json.loads(carol.recv_message()[1])
                if e["type"] == "message":
                    got.append(e["text"])
            self.assertEqual(got, ["m%02d" % i for i in range(20)], "room %s" % room)

    def test_http10_upgrade_is_refused(self):
        srv = self.start_server(files={"10-hello.conf": HELLO_CONF, "20-echo.conf": open(ECHO_CONF_PATH).read()})
        c = WSConnection(srv.port); self.addCleanup(c.close)
        c.send(handshake_request(key=new_key()).replace(b"HTTP/1.1", b"HTTP/1.0", 1))
        self.assertNotEqual(c.read_response().status, 101)


if __name__ == "__main__":
    unittest.main()
