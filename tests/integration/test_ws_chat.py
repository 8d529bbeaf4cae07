"""The chat module's own rules over a raw WebSocket: room and user names checked at the
handshake, the message format ({"text": ...} in, {"type":"message","room","user","ts","text"}
out), errors for bad input that keep the connection, 1003 for binary messages, 1009 over the
endpoint's max_message_bytes, a guest name when none is given, and the page at /chat/. No store
is configured, so there is no history here (see browser/test_chat_browser.py for that).
"""

import json
import unittest

from mhtest import HELLO_CONF, RawConnection, ServerTestCase
from ws_client import (NORMAL, OP_CLOSE, OP_TEXT, TOO_BIG, UNSUPPORTED_DATA, WSConnection,
                       ws_module_conf)

MAX_TEXT = 100
MAX_MESSAGE = 1024
FILES = {
    "10-hello.conf": HELLO_CONF,
    "30-chat.conf": ws_module_conf(
        "chat", "chat.so",
        [dict(path="/ws/chat/{room}", on_open="chat_open", on_message="chat_message",
              on_close="chat_close", max_message_bytes=MAX_MESSAGE, ping_interval_ms=0,
              idle_timeout_ms=0)],
        routes=[("GET", "/chat/", "page")], settings={"max_text_bytes": MAX_TEXT}),
}


class ChatCase(ServerTestCase):
    def setUp(self):
        super().setUp()
        self.srv = self.start_server(files=FILES)

    def client(self, target, expect=101):
        c = WSConnection(self.srv.port)
        self.addCleanup(c.close)
        resp = c.handshake(target)
        self.assertEqual(resp.status, expect, resp)
        return c

    @staticmethod
    def next_event(c, skip=("join", "leave")):
        while True:
            opcode, data = c.recv_message()
            if opcode != OP_TEXT:
                raise AssertionError("binary message from chat: %r" % data[:100])
            ev = json.loads(data.decode("utf-8"))
            if ev.get("type") not in skip:
                return ev

    def assert_error_and_still_open(self, c, error):
        self.assertEqual(self.next_event(c), {"type": "error", "error": error})
        c.send_text(json.dumps({"text": "after the error"}))
        self.assertEqual(self.next_event(c)["text"], "after the error")


class TestChatHandshake(ChatCase):
    def test_join_announces_the_user(self):
        c = self.client("/ws/chat/lobby?name=ann")
        ev = self.next_event(c, skip=())
        self.assertEqual((ev["type"], ev["room"], ev["user"]), ("join", "lobby", "ann"))
        self.assertRegex(ev["ts"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

    def test_no_name_gets_a_guest_name(self):
        c = self.client("/ws/chat/lobby")
        ev = self.next_event(c, skip=())
        self.assertEqual(ev["type"], "join")
        self.assertRegex(ev["user"], r"^guest-\d+$")

    def test_bad_room_or_user_is_400(self):
        for target in ("/ws/chat/a%20b", "/ws/chat/" + "r" * 65, "/ws/chat/%C3%A9",
                       "/ws/chat/ok?name=" + "n" * 33, "/ws/chat/ok?name=a%2Fb",
                       "/ws/chat/ok?name="):
            with self.subTest(target=target):
                c = self.client(target, expect=400)
                self.assertEqual(c.response.header("Content-Type"), "application/problem+json")
        c = self.client("/ws/chat/" + "r" * 64 + "?name=" + "n" * 32)  # both at their limit
        self.assertEqual(self.next_event(c, skip=())["type"], "join")

    def test_page_is_served(self):
        with RawConnection(self.srv.port) as h:
            resp = h.request("GET", "/chat/")
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.header("Content-Type"), "text/html; charset=utf-8")
        self.assertIn(b"new WebSocket(", resp.body)
        self.assertIn(b'id="log"', resp.body)


class TestChatMessages(ChatCase):
    def test_message_is_broadcast_with_sender_and_time(self):
        c = self.client("/ws/chat/r1?name=ann")
        c.send_text(json.dumps({"text": "hi \u00e9\u20ac", "extra": 1}))
        ev = self.next_event(c)
        self.assertEqual(sorted(ev), ["room", "text", "ts", "type", "user"])
        self.assertEqual((ev["type"], ev["room"], ev["user"], ev["text"]),
                         ("message", "r1", "ann", "hi \u00e9\u20ac"))

    def test_bad_messages_get_an_error_and_keep_the_connection(self):
        c = self.client("/ws/chat/r2?name=ann")
        shape = 'messages are JSON objects with a "text" string'
        for bad in ("not json", "[1]", '{"text": 5}', '{"no": "text"}', '{"text": "a"} x',
                    '"text"', ""):
            with self.subTest(message=bad):
                c.send_text(bad)
                self.assert_error_and_still_open(c, shape)
        with self.subTest(message="text too long"):
            c.send_text(json.dumps({"text": "x" * (MAX_TEXT + 1)}))
            self.assert_error_and_still_open(c, "text too long")
        c.send_text(json.dumps({"text": "x" * MAX_TEXT}))
        self.assertEqual(self.next_event(c)["text"], "x" * MAX_TEXT)

    def test_binary_message_is_closed_with_1003(self):
        c = self.client("/ws/chat/r3?name=ann")
        c.send_binary(b'{"text": "binary"}')
        f = c.expect_close()
        self.assertEqual(f.close_code, UNSUPPORTED_DATA, f)
        self.assertEqual([x.opcode for x in c.received if x.opcode != OP_TEXT], [OP_CLOSE])
        c.send_close(UNSUPPORTED_DATA)
        self.assertTrue(c.is_closed())

    def test_message_over_max_message_bytes_is_1009(self):
        c = self.client("/ws/chat/r4?name=ann")
        c.send_text(json.dumps({"text": "y" * MAX_MESSAGE}))
        self.assertEqual(c.expect_close().close_code, TOO_BIG)
        self.assertTrue(c.is_closed())

    def test_leaving_is_announced(self):
        stay = self.client("/ws/chat/r5?name=stay")
        go = self.client("/ws/chat/r5?name=go")
        go.send_close(NORMAL)
        self.assertEqual(go.expect_close().close_code, NORMAL)
        ev = self.next_event(stay, skip=("join",))
        self.assertEqual((ev["type"], ev["user"], ev["room"]), ("leave", "go", "r5"))


if __name__ == "__main__":
    unittest.main()
