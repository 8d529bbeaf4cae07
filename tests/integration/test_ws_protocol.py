"""WebSocket protocol rules (RFC 6455) on the echo module's endpoint, one test per rule: the
handshake and its refusals, subprotocols, echo with each length encoding, fragmentation and
control frames, the close handshake, every way a client can break the protocol (each must end
with the exact close code, then TCP closed), size limits, keepalive pings, the idle timeout, a
slow consumer and a client vanishing mid-frame. After a failure the server must still answer
HTTP.

The conf.d has several endpoints on the same echo hook with different limits, so each limit can
be tested without the others getting in the way (/ws/echo itself sends no pings and never
idles out).
"""

import os
import socket
import time
import unittest

from mhtest import (HELLO_CONF, IO_TIMEOUT_S, ConnectionClosed, RawConnection, ServerTestCase,
                    wait_until)
from ws_client import (GOING_AWAY, INVALID_DATA, NORMAL, OP_BINARY, OP_CLOSE, OP_CONT, OP_PING,
                       OP_PONG, OP_TEXT, POLICY, PROTOCOL_ERROR, TOO_BIG, WSConnection,
                       accept_for, close_payload, encode_frame, fd_count, ws_module_conf)

ECHO_MAX = 128 * 1024        # /ws/echo: room for the 16-bit and smallest 64-bit lengths
SMALL_MAX = 1000             # /ws/small
BIG_MAX = 2 * 1024 * 1024    # /ws/big: a 1 MiB message and its echo fit
SLOW_OUTBOUND = 64 * 1024    # /ws/slow
PING_MS = 100                # /ws/ping and /ws/keepalive
KEEPALIVE_IDLE_MS = 600      # /ws/keepalive: idles out unless the client answers pings
IDLE_MS = 300                # /ws/idle

QUIET = {"ping_interval_ms": 0, "idle_timeout_ms": 0}
ENDPOINTS = [
    dict(path="/ws/echo", on_message="ws_echo", subprotocols=["v2.chat", "v1.chat"],
         max_message_bytes=ECHO_MAX, **QUIET),
    dict(path="/ws/small", on_message="ws_echo", max_message_bytes=SMALL_MAX, **QUIET),
    dict(path="/ws/big", on_message="ws_echo", max_message_bytes=BIG_MAX,
         max_outbound_bytes=4 * BIG_MAX, **QUIET),
    dict(path="/ws/ping", on_message="ws_echo", ping_interval_ms=PING_MS, idle_timeout_ms=0),
    dict(path="/ws/keepalive", on_message="ws_echo", ping_interval_ms=PING_MS,
         idle_timeout_ms=KEEPALIVE_IDLE_MS),
    dict(path="/ws/idle", on_message="ws_echo", ping_interval_ms=0, idle_timeout_ms=IDLE_MS),
    dict(path="/ws/slow", on_message="ws_echo", max_outbound_bytes=SLOW_OUTBOUND, **QUIET),
]
FILES = {
    "10-hello.conf": HELLO_CONF,
    "20-echo.conf": ws_module_conf("echo", "echo.so", ENDPOINTS,
                                   routes=[("POST", "/echo", "echo")]),
}

RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
RFC_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


class WSCase(ServerTestCase):
    """A server with the endpoints above for each test, and helpers."""

    def setUp(self):
        super().setUp()
        self.srv = self.start_server(files=FILES)

    def ws(self, path="/ws/echo", open=True, **kwargs):
        """A client connection (opened unless @open is false), closed after the test."""
        c = WSConnection(self.srv.port, rcvbuf=kwargs.pop("rcvbuf", None),
                         sndbuf=kwargs.pop("sndbuf", None))
        self.addCleanup(c.close)
        if open:
            c.open(path, **kwargs)
        return c

    def assert_healthy(self):
        """The server still answers HTTP and WebSocket."""
        with RawConnection(self.srv.port) as h:
            resp = h.request("GET", "/hello/x")
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.json(), {"message": "Hello, x!"})
        c = self.ws()
        self.assertEqual(c.roundtrip("still here"), b"still here")
        c.send_close(NORMAL)
        self.assertEqual(c.expect_close().close_code, NORMAL)
        self.assertTrue(c.is_closed(), "TCP still open after the close handshake")

    def assert_server_frame(self, f):
        """Server frames are unmasked, have no RSV bits and use the minimal length form."""
        self.assertFalse(f.masked, f)
        self.assertEqual(f.rsv, 0, f)
        n = len(f.payload)
        self.assertEqual(f.length_form, 7 if n < 126 else 16 if n <= 0xFFFF else 64, f)

    def assert_fails_with(self, c, code, healthy=True):
        """The server sends a close frame with @code (and no data before it), then closes TCP."""
        f = c.expect_close()
        self.assert_server_frame(f)
        self.assertEqual(f.close_code, code, "close frame %r" % f)
        f.close_reason.decode("utf-8")  # a reason, if any, is UTF-8
        data = [x for x in c.received if x.opcode not in (OP_CLOSE, OP_PING, OP_PONG)]
        self.assertEqual(data, [], "data frames before the close")
        self.assertTrue(c.is_closed(), "TCP still open after the close frame")
        if healthy:
            self.assert_healthy()

    def assert_pong(self, f, payload, msg=None):
        self.assertEqual(f.opcode, OP_PONG, msg or f)  # a Frame's repr is short
        self.assertEqual(f.payload, payload, msg)

    def assert_echo(self, c, payload, binary=False):
        opcode, data = c.recv_message()
        self.assertEqual(opcode, OP_BINARY if binary else OP_TEXT, "echo %r" % data[:100])
        self.assertEqual(len(data), len(payload))
        self.assertTrue(data == payload, "echo differs from what was sent")
        self.assert_server_frame(c.received[-1])


class TestHandshake(WSCase):
    def test_rfc_sample_key_is_accepted_with_101(self):
        c = self.ws(open=False)
        resp = c.handshake(key=RFC_KEY)
        self.assertEqual(resp.status, 101, resp)
        self.assertEqual(resp.header("Sec-WebSocket-Accept"), RFC_ACCEPT)
        self.assertEqual(accept_for(RFC_KEY), RFC_ACCEPT)
        self.assertEqual((resp.header("Upgrade") or "").lower(), "websocket")
        self.assertIn("upgrade", (resp.header("Connection") or "").lower())
        self.assertIsNone(resp.header("Sec-WebSocket-Protocol"))
        self.assertEqual(c.roundtrip("hi"), b"hi")
        self.assertTrue(self.srv.wait_log(r"access: GET /ws/echo 101 "), self.srv.log())

    def test_header_tokens_are_case_insensitive_lists(self):
        c = self.ws(open=False)
        resp = c.handshake(omit=("Upgrade", "Connection"),
                           headers=[("Upgrade", "WebSocket"),
                                    ("Connection", "keep-alive, UPGRADE")])
        self.assertEqual(resp.status, 101, resp)
        self.assertEqual(resp.header("Sec-WebSocket-Accept"), accept_for(c.key))
        self.assertEqual(c.roundtrip("ok"), b"ok")

    def _refused(self, status, **kwargs):
        c = self.ws(open=False)
        resp = c.handshake(**kwargs)
        self.assertEqual(resp.status, status, resp)
        self.assertEqual(resp.header("Content-Type"), "application/problem+json")
        self.assertEqual(resp.json()["status"], status)
        self.assertIsNone(resp.header("Sec-WebSocket-Accept"))
        return resp

    def test_missing_upgrade_is_426(self):
        resp = self._refused(426, omit=("Upgrade",))
        self.assertEqual(resp.header("Upgrade"), "websocket")
        self.assert_healthy()

    def test_missing_connection_upgrade_is_426(self):
        self._refused(426, omit=("Connection",))
        self._refused(426, omit=("Connection",), headers=[("Connection", "keep-alive")])

    def test_plain_get_is_426(self):
        with RawConnection(self.srv.port) as h:
            resp = h.request("GET", "/ws/echo")
        self.assertEqual(resp.status, 426, resp)
        self.assertEqual(resp.header("Upgrade"), "websocket")

    def test_wrong_version_is_426_naming_13(self):
        for version in ("8", "14", "", None):
            with self.subTest(version=version):
                if version is None:
                    resp = self._refused(426, omit=("Sec-WebSocket-Version",))
                else:
                    resp = self._refused(426, version=version)
                self.assertEqual(resp.header("Sec-WebSocket-Version"), "13")
        self.assert_healthy()

    def test_bad_key_is_400(self):
        keys = {
            "short": "abc",
            "unpadded": RFC_KEY.rstrip("="),
            "17 bytes": "AAAAAAAAAAAAAAAAAAAAAAA=",
            "not base64": "!!!!!!!!!!!!!!!!!!!!!!==",
            "empty": "",
        }
        for what, key in keys.items():
            with self.subTest(key=what):
                self._refused(400, key=key)
        with self.subTest(key="missing"):
            self._refused(400, omit=("Sec-WebSocket-Key",))
        self.assert_healthy()

    def test_post_to_the_endpoint_is_405(self):
        resp = self._refused(405, method="POST")
        self.assertIn("GET", resp.header("Allow"))
        self.assert_healthy()


class TestSubprotocols(WSCase):
    def test_first_supported_offer_is_picked(self):
        c = self.ws(protocols="x, v1.chat")
        self.assertEqual(c.response.header_all("Sec-WebSocket-Protocol"), ["v1.chat"])
        self.assertEqual(c.roundtrip("sub"), b"sub")

    def test_no_offer_sends_no_header(self):
        c = self.ws()
        self.assertEqual(c.response.header_all("Sec-WebSocket-Protocol"), [])

    def test_only_unknown_offers_send_no_header(self):
        c = self.ws(protocols="x, v3.chat, V1.CHAT")
        self.assertEqual(c.response.status, 101)
        self.assertEqual(c.response.header_all("Sec-WebSocket-Protocol"), [])
        self.assertEqual(c.roundtrip("still open"), b"still open")

    def test_endpoint_without_subprotocols_ignores_offers(self):
        c = self.ws("/ws/small", protocols="v1.chat")
        self.assertEqual(c.response.header_all("Sec-WebSocket-Protocol"), [])


class TestEcho(WSCase):
    def test_text_and_binary_echo(self):
        c = self.ws()
        c.send_text("héllo wörld ✓")
        self.assert_echo(c, "héllo wörld ✓".encode("utf-8"))
        data = bytes(range(256))
        c.send_binary(data)
        self.assert_echo(c, data, binary=True)

    def test_all_length_encodings(self):
        c = self.ws()
        for n in (0, 1, 125, 126, 127, 65535, 65536, ECHO_MAX):
            with self.subTest(length=n):
                data = os.urandom(n)
                c.send_binary(data)
                self.assert_echo(c, data, binary=True)
                text = ("a" * n).encode()
                c.send_text(text)
                self.assert_echo(c, text)

    def test_one_mebibyte_message(self):
        c = self.ws("/ws/big")
        data = os.urandom(1 << 20)
        c.send_binary(data)
        self.assert_echo(c, data, binary=True)
        c.send_text(b"x" * (1 << 20))
        self.assert_echo(c, b"x" * (1 << 20))

    def test_forced_length_forms_are_read(self):
        # A receiver reads whatever form the length comes in; the minimal form is the
        # sender's duty (RFC 6455 5.2), and the server's frames use it (assert_echo checks).
        c = self.ws()
        for n, form in ((0, 16), (5, 16), (0, 64), (5, 64), (125, 64), (300, 64)):
            with self.subTest(length=n, form=form):
                data = os.urandom(n)
                c.send_binary(data, length_form=form)
                self.assert_echo(c, data, binary=True)

    def test_many_frames_in_one_write(self):
        c = self.ws()
        msgs = [("m%d" % i).encode() * (i % 50) for i in range(200)]
        c.send(b"".join(encode_frame(OP_TEXT, m) for m in msgs))
        for m in msgs:
            self.assertEqual(c.recv_message(), (OP_TEXT, m))

    def test_frame_written_a_byte_at_a_time(self):
        c = self.ws()
        frame = encode_frame(OP_TEXT, b"x" * 300)  # 16-bit length: split inside the header too
        for i in range(len(frame)):
            c.send(frame[i:i + 1])
        self.assertEqual(c.recv_message(), (OP_TEXT, b"x" * 300))

    def test_frames_in_the_upgrade_write_are_processed(self):
        c = self.ws(open=False)
        early = (encode_frame(OP_TEXT, b"early") + encode_frame(OP_PING, b"p")
                 + encode_frame(OP_BINARY, b"\x00\x01"))
        resp = c.handshake(trailing=early)
        self.assertEqual(resp.status, 101, resp)
        self.assertEqual(c.recv_message(), (OP_TEXT, b"early"))
        f = c.recv_frame()
        self.assert_pong(f, b"p")
        self.assertEqual(c.recv_message(), (OP_BINARY, b"\x00\x01"))

    def test_close_in_the_upgrade_write_is_answered(self):
        c = self.ws(open=False)
        resp = c.handshake(trailing=encode_frame(OP_CLOSE, close_payload(NORMAL)))
        self.assertEqual(resp.status, 101, resp)
        self.assertEqual(c.expect_close().close_code, NORMAL)
        self.assertTrue(c.is_closed())


class TestFragmentation(WSCase):
    def test_text_in_three_fragments_with_a_ping_between(self):
        c = self.ws()
        c.send_frame(OP_TEXT, b"Hel", fin=False)
        c.send_frame(OP_PING, b"mid")
        c.send_frame(OP_CONT, b"lo, ", fin=False)
        c.send_frame(OP_CONT, b"world")
        f = c.recv_frame()
        self.assert_pong(f, b"mid", "the pong comes first")
        self.assert_server_frame(f)
        f = c.recv_frame()
        self.assertEqual((f.opcode, f.fin, f.payload), (OP_TEXT, True, b"Hello, world"))

    def test_binary_fragments_and_empty_fragments(self):
        c = self.ws()
        c.send_frame(OP_BINARY, b"", fin=False)
        c.send_frame(OP_CONT, b"\x00\xff", fin=False)
        c.send_frame(OP_CONT, b"", fin=False)
        c.send_frame(OP_CONT, b"\x01")
        self.assert_echo(c, b"\x00\xff\x01", binary=True)
        c.send_frame(OP_TEXT, b"", fin=False)
        c.send_frame(OP_CONT, b"")
        self.assert_echo(c, b"")

    def test_fragments_in_one_write_with_pings_between(self):
        c = self.ws()
        parts = [os.urandom(1000) for _ in range(20)]
        wire = b""
        for i, p in enumerate(parts):
            wire += encode_frame(OP_BINARY if i == 0 else OP_CONT, p, fin=(i == len(parts) - 1))
            if i < len(parts) - 1:
                wire += encode_frame(OP_PING, b"%d" % i)
        c.send(wire)
        for i in range(len(parts) - 1):
            f = c.recv_frame()
            self.assert_pong(f, b"%d" % i)
        self.assert_echo(c, b"".join(parts), binary=True)

    def test_unsolicited_pong_is_ignored(self):
        c = self.ws()
        c.send_pong(b"nobody asked")
        c.send_pong()
        self.assertEqual(c.roundtrip("after pong"), b"after pong")
        self.assertEqual([f.opcode for f in c.received], [OP_TEXT])

    def test_ping_payload_up_to_125_bytes_is_returned(self):
        c = self.ws()
        for n in (0, 1, 125):
            payload = os.urandom(n)
            c.send_ping(payload)
            f = c.recv_frame()
            self.assert_pong(f, payload)
            self.assert_server_frame(f)

    def test_continuation_without_a_message_is_1002(self):
        c = self.ws()
        c.send_frame(OP_CONT, b"orphan")
        self.assert_fails_with(c, PROTOCOL_ERROR)

    def test_final_continuation_without_a_message_is_1002(self):
        c = self.ws()
        self.assertEqual(c.roundtrip("done"), b"done")
        c.received.clear()
        c.send_frame(OP_CONT, b"late", fin=True)
        self.assert_fails_with(c, PROTOCOL_ERROR)

    def test_new_message_inside_a_fragmented_one_is_1002(self):
        for opcode in (OP_TEXT, OP_BINARY):
            with self.subTest(opcode=opcode):
                c = self.ws()
                c.send_frame(OP_TEXT, b"start", fin=False)
                c.send_frame(opcode, b"intruder")
                self.assert_fails_with(c, PROTOCOL_ERROR, healthy=False)
        self.assert_healthy()


class TestUtf8(WSCase):
    INVALID = {
        "lone continuation": b"\x80",
        "0xff": b"abc\xff",
        "overlong slash": b"\xc0\xaf",
        "overlong 3-byte": b"\xe0\x80\xaf",
        "surrogate": b"\xed\xa0\x80",
        "above U+10FFFF": b"\xf4\x90\x80\x80",
        "0xf5": b"\xf5\x80\x80\x80",
        "truncated": b"ok \xe2\x82",
    }

    def test_valid_text_of_every_sequence_length(self):
        c = self.ws()
        text = "a\u00e9\u20ac\U0001F600\U0010FFFF\ud7ff\ue000".encode("utf-8", "surrogatepass")
        c.send_text(text)
        self.assert_echo(c, text)

    def test_invalid_text_is_1007(self):
        for what, data in self.INVALID.items():
            with self.subTest(what=what):
                c = self.ws()
                c.send_text(data)
                self.assert_fails_with(c, INVALID_DATA, healthy=False)
        self.assert_healthy()

    def test_binary_is_not_checked(self):
        c = self.ws()
        for data in self.INVALID.values():
            c.send_binary(data)
            self.assert_echo(c, data, binary=True)

    def test_sequence_split_across_fragments_is_valid(self):
        c = self.ws()
        euro = "€".encode()           # e2 82 ac
        grin = "\U0001F600".encode()  # f0 9f 98 80
        c.send_frame(OP_TEXT, b"x" + euro[:1], fin=False)
        c.send_frame(OP_CONT, euro[1:2], fin=False)
        c.send_frame(OP_CONT, euro[2:] + grin[:1], fin=False)
        c.send_frame(OP_PING, b"between")
        for b in grin[1:]:
            c.send_frame(OP_CONT, bytes([b]), fin=False)
        c.send_frame(OP_CONT, b"y")
        self.assertEqual(c.recv_frame().opcode, OP_PONG)
        self.assert_echo(c, b"x" + euro + grin + b"y")

    def test_invalid_sequence_across_fragments_is_1007(self):
        c = self.ws()
        c.send_frame(OP_TEXT, b"ok \xe2", fin=False)
        c.send_frame(OP_CONT, b"\x28\xa1", fin=False)  # 0x28 cannot continue e2
        self.assert_fails_with(c, INVALID_DATA)

    def test_text_ending_inside_a_sequence_is_1007(self):
        c = self.ws()
        c.send_frame(OP_TEXT, b"ok \xf0\x9f", fin=False)
        c.send_frame(OP_CONT, b"\x98")  # final fragment: one byte short
        self.assert_fails_with(c, INVALID_DATA)

    def test_text_ending_inside_a_sequence_at_an_empty_final_fragment_is_1007(self):
        c = self.ws()
        c.send_frame(OP_TEXT, b"ok \xe2\x82", fin=False)
        c.send_frame(OP_CONT, b"")
        self.assert_fails_with(c, INVALID_DATA)


class TestClose(WSCase):
    def test_close_1000_is_answered_and_tcp_closed(self):
        c = self.ws()
        c.send_close(NORMAL, "bye")
        f = c.expect_close()
        self.assert_server_frame(f)
        self.assertEqual(f.close_code, NORMAL)
        self.assertTrue(c.is_closed(), "server left TCP open after the close handshake")
        self.assertEqual([x.opcode for x in c.received], [OP_CLOSE])
        self.assert_healthy()

    def test_empty_close_is_answered(self):
        c = self.ws()
        c.send_close()
        f = c.expect_close()
        self.assertIn(f.close_code, (None, NORMAL), f)
        self.assertTrue(c.is_closed())

    def test_valid_codes_are_echoed(self):
        for code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4999):
            with self.subTest(code=code):
                c = self.ws()
                c.send_close(code, "r")
                self.assertEqual(c.expect_close().close_code, code)
                self.assertTrue(c.is_closed())

    def test_longest_close_payload_is_accepted(self):
        c = self.ws()
        c.send_close(NORMAL, "é" * 61 + "x")  # 2 + 123 = 125 bytes
        self.assertEqual(c.expect_close().close_code, NORMAL)
        self.assertTrue(c.is_closed())

    def test_invalid_codes_are_1002(self):
        for code in (0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535):
            with self.subTest(code=code):
                c = self.ws()
                c.send_close(code)
                self.assert_fails_with(c, PROTOCOL_ERROR, healthy=False)
        self.assert_healthy()

    def test_one_byte_close_payload_is_1002(self):
        c = self.ws()
        c.send_frame(OP_CLOSE, b"\x03")
        self.assert_fails_with(c, PROTOCOL_ERROR)

    def test_close_reason_not_utf8_is_1007(self):
        c = self.ws()
        c.send_close(NORMAL, b"bad \xc0\xaf")
        self.assert_fails_with(c, INVALID_DATA)

    def test_close_inside_a_fragmented_message_is_answered(self):
        c = self.ws()
        c.send_frame(OP_TEXT, b"never finished", fin=False)
        c.send_close(NORMAL)
        self.assertEqual(c.expect_close().close_code, NORMAL)
        self.assertTrue(c.is_closed())
        self.assertEqual([x.opcode for x in c.received], [OP_CLOSE])

    def test_frames_after_close_are_ignored(self):
        c = self.ws()
        c.send(encode_frame(OP_CLOSE, close_payload(NORMAL)) + encode_frame(OP_TEXT, b"late")
               + encode_frame(OP_PING, b"late"))
        self.assertEqual(c.expect_close().close_code, NORMAL)
        self.assertTrue(c.is_closed())
        self.assertEqual([x.opcode for x in c.received], [OP_CLOSE])


class TestFraming(WSCase):
    def test_rsv_bits_are_1002(self):
        for rsv in (4, 2, 1, 7):
            with self.subTest(rsv=rsv):
                c = self.ws()
                c.send_frame(OP_TEXT, b"rsv", rsv=rsv)
                self.assert_fails_with(c, PROTOCOL_ERROR, healthy=False)
        with self.subTest(rsv="on a ping"):
            c = self.ws()
            c.send_frame(OP_PING, b"", rsv=4)
            self.assert_fails_with(c, PROTOCOL_ERROR, healthy=False)
        self.assert_healthy()

    def test_reserved_opcodes_are_1002(self):
        for opcode in (3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF):
            with self.subTest(opcode=opcode):
                c = self.ws()
                c.send_frame(opcode, b"x")
                self.assert_fails_with(c, PROTOCOL_ERROR, healthy=False)
        self.assert_healthy()

    def test_unmasked_client_frame_is_1002(self):
        for opcode, payload in ((OP_TEXT, b"plain"), (OP_PING, b""),
                                (OP_CLOSE, close_payload(NORMAL))):
            with self.subTest(opcode=opcode):
                c = self.ws()
                c.send_frame(opcode, payload, mask=False)
                self.assert_fails_with(c, PROTOCOL_ERROR, healthy=False)
        self.assert_healthy()

    def test_control_frame_over_125_bytes_is_1002(self):
        for opcode in (OP_PING, OP_PONG, OP_CLOSE):
            with self.subTest(opcode=opcode):
                c = self.ws()
                payload = close_payload(NORMAL, "r" * 124) if opcode == OP_CLOSE else b"p" * 126
                c.send_frame(opcode, payload)
                self.assert_fails_with(c, PROTOCOL_ERROR, healthy=False)
        self.assert_healthy()

    def test_fragmented_control_frame_is_1002(self):
        for opcode in (OP_PING, OP_PONG, OP_CLOSE):
            with self.subTest(opcode=opcode):
                c = self.ws()
                c.send_frame(opcode, b"", fin=False)
                self.assert_fails_with(c, PROTOCOL_ERROR, healthy=False)
        self.assert_healthy()

    def test_length_with_top_bit_set_is_1002(self):
        c = self.ws()
        c.send(encode_frame(OP_BINARY, b"", declared_length=1 << 63, length_form=64))
        self.assert_fails_with(c, PROTOCOL_ERROR)


class TestLimits(WSCase):
    def test_message_at_the_limit_is_echoed(self):
        c = self.ws("/ws/small")
        c.send_text(b"a" * SMALL_MAX)
        self.assert_echo(c, b"a" * SMALL_MAX)
        c.send_frame(OP_BINARY, b"b" * (SMALL_MAX - 1), fin=False)
        c.send_frame(OP_CONT, b"c")
        self.assert_echo(c, b"b" * (SMALL_MAX - 1) + b"c", binary=True)

    def test_single_frame_over_the_limit_is_1009(self):
        c = self.ws("/ws/small")
        c.send_text(b"a" * (SMALL_MAX + 1))
        self.assert_fails_with(c, TOO_BIG)

    def test_fragments_over_the_limit_together_are_1009(self):
        c = self.ws("/ws/small")
        half = SMALL_MAX // 2 + 1
        c.send_frame(OP_TEXT, b"a" * half, fin=False)
        c.send_frame(OP_PING, b"still fine")
        f = c.recv_frame()
        self.assert_pong(f, b"still fine")
        c.send_frame(OP_CONT, b"b" * half)
        self.assert_fails_with(c, TOO_BIG)

    def test_huge_declared_length_fails_before_the_payload(self):
        # Only the header is sent: the server must not wait for 1 TiB.
        c = self.ws("/ws/small")
        c.send(encode_frame(OP_BINARY, b"", declared_length=1 << 40))
        self.assert_fails_with(c, TOO_BIG)


class TestTimers(WSCase):
    def test_server_sends_keepalive_pings(self):
        c = self.ws("/ws/ping")
        for _ in range(3):
            f = c.recv_frame(timeout=IO_TIMEOUT_S)
            self.assertEqual(f.opcode, OP_PING, f)
            self.assert_server_frame(f)
            c.send_pong(f.payload)
        self.assertEqual(c.roundtrip("between pings"), b"between pings")

    def test_answering_pings_keeps_a_quiet_client_open(self):
        c = self.ws("/ws/keepalive")
        pings = 0
        start = time.monotonic()
        # Enough pings to span the idle timeout twice over, answering each.
        while pings < 3 or time.monotonic() - start < 2 * KEEPALIVE_IDLE_MS / 1000.0:
            f = c.recv_frame(timeout=IO_TIMEOUT_S)
            self.assertEqual(f.opcode, OP_PING, "expected only pings, got %r" % f)
            c.send_pong(f.payload)
            pings += 1
        self.assertEqual(c.roundtrip("alive"), b"alive")

    def test_idle_client_is_closed_with_1001(self):
        c = self.ws("/ws/idle")
        f = c.expect_close(timeout=IO_TIMEOUT_S)
        self.assert_server_frame(f)
        self.assertEqual(f.close_code, GOING_AWAY)
        c.send_close(GOING_AWAY)
        self.assertTrue(c.is_closed(), "TCP still open after the client answered the close")
        self.assert_healthy()

    def test_idle_client_that_never_answers_is_dropped(self):
        c = self.ws("/ws/idle")
        self.assertEqual(c.expect_close(timeout=IO_TIMEOUT_S).close_code, GOING_AWAY)
        self.assertTrue(c.is_closed(), "TCP still open although the client never answered")
        self.assert_healthy()


class TestMisbehavingClients(WSCase):
    def test_slow_consumer_is_closed(self):
        # The client never reads while it keeps asking for echoes: the server's queue for it
        # passes max_outbound_bytes and it must let the client go, not buffer without end.
        c = self.ws("/ws/slow", rcvbuf=4096)
        frame = encode_frame(OP_BINARY, os.urandom(16 * 1024))
        c.sock.settimeout(2.0)
        sent = 0
        try:
            while sent < 256 * 1024 * 1024:
                c.sock.sendall(frame)
                sent += len(frame)
        except (socket.timeout, BrokenPipeError, ConnectionResetError):
            pass  # the server stopped reading (or is gone): stop writing too
        c.sock.settimeout(c.timeout)
        self.assertLess(sent, 256 * 1024 * 1024, "server kept reading; it never stopped echoing")
        self.assertTrue(self.srv.wait_log(r"closing a slow consumer"),
                        "no slow-consumer line in the log")
        # Now read: echoes, then maybe the 1008 close frame, then EOF or a reset.
        code = None
        deadline = time.monotonic() + IO_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                f = c.recv_frame(timeout=max(0.1, deadline - time.monotonic()))
            except (ConnectionClosed, ConnectionResetError):
                break
            if f.opcode == OP_CLOSE:
                code = f.close_code
                break
        if code is not None:
            self.assertEqual(code, POLICY)
        self.assertTrue(c.is_closed(), "slow consumer's connection still open")
        self.assert_healthy()

    def test_client_vanishing_mid_frame(self):
        base = fd_count(self.srv.worker_pid)  # no client has connected yet
        for reset in (False, True):
            for cut in (1, 5, 40):
                with self.subTest(reset=reset, cut=cut):
                    c = self.ws()
                    c.send(encode_frame(OP_TEXT, b"z" * 100)[:cut])
                    c.abort(reset=reset)
        with self.subTest(what="inside a fragmented message"):
            c = self.ws()
            c.send_frame(OP_TEXT, b"first", fin=False)
            c.send(encode_frame(OP_CONT, b"y" * 1000)[:500])
            c.abort()
        # Every one of those connections has ended on the server: its fds are back.
        self.assert_healthy()
        self.assertTrue(wait_until(lambda: fd_count(self.srv.worker_pid) == base, IO_TIMEOUT_S),
                        "server has %d fds, %d before the vanishing clients"
                        % (fd_count(self.srv.worker_pid), base))

if __name__ == "__main__":
    unittest.main()
