"""WebSocket connection lifetimes on a server with two loop threads: thousands of open/close
cycles ending every way a client can end (close handshake, FIN, RST, mid-frame, before reading
the 101) must give every file descriptor back; SIGTERM sends 1001 to every open WebSocket and
the server exits 0 without waiting for its drain deadline; a chat room spread over both loops
delivers every message to every member, each publisher's messages in the order it sent them.
"""

import json
import os
import re
import signal
import socket
import unittest

from mhtest import (HELLO_CONF, IO_TIMEOUT_S, STOP_TIMEOUT_S, ConnectionClosed, RawConnection,
                    ServerTestCase, wait_until)
from ws_client import (GOING_AWAY, NORMAL, OP_TEXT, WSConnection, encode_frame,
                       fd_count, handshake_request, ws_module_conf)

QUIET = {"ping_interval_ms": 0, "idle_timeout_ms": 0}
ECHO_FILE = ws_module_conf("echo", "echo.so",
                           [dict(path="/ws/echo", on_message="ws_echo",
                                 max_message_bytes=65536, **QUIET)],
                           routes=[("POST", "/echo", "echo")])
# No `stores`: the chat module keeps no history here.
CHAT_FILE = ws_module_conf("chat", "chat.so",
                           [dict(path="/ws/chat/{room}", on_open="chat_open",
                                 on_message="chat_message", on_close="chat_close",
                                 max_message_bytes=8192, max_outbound_bytes=1 << 22, **QUIET)],
                           routes=[("GET", "/chat/", "page")],
                           settings={"max_text_bytes": 4096})
FILES = {"10-hello.conf": HELLO_CONF, "20-echo.conf": ECHO_FILE, "30-chat.conf": CHAT_FILE}

# Bounds, not timings: they only decide how long a broken server may hang a test.
SETTLE_S = 30.0        # for the server's fds to come back after the clients are gone
PROMPT_EXIT_S = 5.0    # far below the drain deadline below
DRAIN_DEADLINE_MS = 30000


def settle_fds(pid, base, timeout=SETTLE_S):
    """Polls until process @pid has @base fds; returns the last count."""
    return wait_until(lambda: fd_count(pid) == base and base, timeout) or fd_count(pid)


def fd_targets(pid):
    out = []
    for name in sorted(os.listdir("/proc/%d/fd" % pid), key=int):
        try:
            out.append("%s -> %s" % (name, os.readlink("/proc/%d/fd/%s" % (pid, name))))
        except OSError:
            pass
    return out


class WSLifecycleCase(ServerTestCase):
    def start(self, **kwargs):
        kwargs.setdefault("threads", 2)
        return self.start_server(files=FILES, **kwargs)

    def ws(self, srv, path="/ws/echo", **kwargs):
        c = WSConnection(srv.port)
        self.addCleanup(c.close)
        c.open(path, **kwargs)
        return c

    def assert_healthy(self, srv):
        with RawConnection(srv.port) as h:
            self.assertEqual(h.request("GET", "/hello/x").status, 200)

    def baseline_fds(self, srv):
        """The server's fd count before any client connected; then one WebSocket and one HTTP
        exchange, so a later count that differs cannot come from a first-use allocation
        alone being missed."""
        base = fd_count(srv.worker_pid)
        c = WSConnection(srv.port)
        c.open()
        self.assertEqual(c.roundtrip("warm"), b"warm")
        c.send_close(NORMAL)
        self.assertEqual(c.expect_close().close_code, NORMAL)
        self.assertTrue(c.is_closed())
        c.close()
        self.assert_healthy(srv)
        return base

    def assert_fds_back(self, srv, base):
        now = settle_fds(srv.worker_pid, base)
        self.assertEqual(now, base, "server fds did not return to the baseline:\n"
                         + "\n".join(fd_targets(srv.worker_pid)))


# --- Ways a client session ends ------------------------------------------------------------

def end_clean(c):
    c.send_close(NORMAL, "done")
    f = c.expect_close()
    if f.close_code != NORMAL:
        raise AssertionError("close answered with %r" % f)
    if not c.is_closed():
        raise AssertionError("TCP open after the close handshake")
    c.close()


def end_fin(c):
    c.close()  # no close frame


def end_rst(c):
    c.abort(reset=True)


def end_mid_frame(c):
    c.send(encode_frame(OP_TEXT, b"m" * 200)[:57])
    c.close()


def end_close_and_go(c):
    c.send_close(NORMAL)  # and do not wait for the answer
    c.close()


ENDINGS = [end_clean, end_fin, end_rst, end_mid_frame, end_close_and_go]


class TestOpenCloseCycles(WSLifecycleCase):
    def test_thousands_of_cycles_leave_no_fd_behind(self):
        srv = self.start()
        base = self.baseline_fds(srv)
        done = 0
        # Sequential: open, one echo, end one of the ways above; every 7th never reads its 101.
        for i in range(1000):
            if i % 7 == 6:
                s = socket.create_connection(("127.0.0.1", srv.port), timeout=IO_TIMEOUT_S)
                s.sendall(handshake_request())
                if i % 2:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
                s.close()
            else:
                c = WSConnection(srv.port)
                c.open()
                if c.roundtrip(b"seq %d" % i) != b"seq %d" % i:
                    raise AssertionError("wrong echo in cycle %d" % i)
                ENDINGS[i % len(ENDINGS)](c)
            done += 1
        # Parallel batches: 20 connections open at once, messages in flight on all of them.
        for batch in range(50):
            conns = []
            for j in range(20):
                c = WSConnection(srv.port)
                c.send(handshake_request())  # all requests out before any answer is read
                conns.append(c)
            for j, c in enumerate(conns):
                resp = c.read_response()
                self.assertEqual(resp.status, 101, resp)
                c.send_text(b"batch %d.%d" % (batch, j))
            for j, c in enumerate(conns):
                self.assertEqual(c.recv_message(), (OP_TEXT, b"batch %d.%d" % (batch, j)))
                ENDINGS[(batch + j) % len(ENDINGS)](c)
                done += 1
        self.assertEqual(done, 2000)
        self.assert_healthy(srv)
        self.assert_fds_back(srv, base)
        self.assertNotRegex(srv.log(), r"\b(warn|error)\b")


class TestShutdown(WSLifecycleCase):
    def _open_mixed(self, srv, echo=12, chat=6):
        conns = [self.ws(srv) for _ in range(echo)]
        conns += [self.ws(srv, "/ws/chat/stop?name=u%d" % i) for i in range(chat)]
        for i, c in enumerate(conns[:echo]):
            self.assertEqual(c.roundtrip("before %d" % i), b"before %d" % i)
        return conns

    def test_sigterm_closes_every_websocket_with_1001(self):
        srv = self.start(shutdown_timeout_ms=DRAIN_DEADLINE_MS)
        conns = self._open_mixed(srv)
        srv.send_signal(signal.SIGTERM)
        for i, c in enumerate(conns):
            f = c.expect_close()  # chat members may see join/leave notices first
            self.assertEqual(f.close_code, GOING_AWAY, "client %d got %r" % (i, f))
            c.send_close(GOING_AWAY)
        for i, c in enumerate(conns):
            self.assertTrue(c.is_closed(), "client %d: TCP open after the close handshake" % i)
        rc = srv.wait(PROMPT_EXIT_S)
        self.assertEqual(rc, 0, "modhost exit status %s within %.0f s of SIGTERM"
                         % (rc, PROMPT_EXIT_S))
        self.assert_log_clean(srv)
        self.assertNotIn("drain deadline passed", srv.log())
        self.assertIn("server: stopped", srv.log())

    def test_sigterm_with_clients_that_never_answer(self):
        # The clients neither read nor answer the close: the server gives up on them on its
        # own (well before the drain deadline) and exits 0.
        srv = self.start(shutdown_timeout_ms=DRAIN_DEADLINE_MS)
        conns = self._open_mixed(srv, echo=8, chat=4)
        srv.send_signal(signal.SIGTERM)
        rc = srv.wait(STOP_TIMEOUT_S)
        self.assertEqual(rc, 0, "modhost exit status %s within %.0f s of SIGTERM"
                         % (rc, STOP_TIMEOUT_S))
        self.assert_log_clean(srv)
        self.assertNotIn("drain deadline passed", srv.log())
        for i, c in enumerate(conns):
            try:
                f = c.expect_close()
            except (ConnectionClosed, ConnectionResetError):
                continue  # gone without a readable close frame is allowed here
            self.assertEqual(f.close_code, GOING_AWAY, "client %d got %r" % (i, f))
            self.assertTrue(c.is_closed())

    def test_sigterm_right_after_upgrades_in_flight(self):
        # Upgrade requests sent but not yet answered when the signal lands: every client ends
        # with a 101 then a 1001, a refusal, or a closed connection; the server exits 0.
        srv = self.start(shutdown_timeout_ms=DRAIN_DEADLINE_MS)
        conns = []
        for _ in range(30):
            c = WSConnection(srv.port)
            self.addCleanup(c.close)
            c.send(handshake_request())
            conns.append(c)
        srv.send_signal(signal.SIGTERM)
        for i, c in enumerate(conns):
            try:
                resp = c.read_response()
            except (ConnectionClosed, ConnectionResetError):
                continue
            if resp.status == 101:
                self.assertEqual(c.expect_close().close_code, GOING_AWAY)
                c.send_close(GOING_AWAY)
            else:
                self.assertEqual(resp.status, 503, resp)
        rc = srv.wait(STOP_TIMEOUT_S)
        self.assertEqual(rc, 0)
        self.assert_log_clean(srv)
        self.assertNotIn("drain deadline passed", srv.log())


class TestReload(WSLifecycleCase):
    RELOAD_DRAIN_MS = 500

    def test_sighup_moves_unchanged_websockets_and_closes_changed_ones(self):
        # A reload moves the WebSockets of unchanged endpoints (echo) to the new generation:
        # they stay open. Those of an endpoint whose settings changed (chat) stay on the old
        # generation and are closed with 1001 at reload_drain_ms, and that generation is
        # finalised; connections opened after the reload stay open.
        srv = self.start(extra="  reload_drain_ms = %d;" % self.RELOAD_DRAIN_MS)
        echoes = [self.ws(srv) for _ in range(4)]
        chats = [self.ws(srv, "/ws/chat/reload?name=old%d" % i) for i in range(2)]
        conf_dir = srv.conf_dir
        with open(os.path.join(conf_dir, "30-chat.conf"), "w", encoding="utf-8") as f:
            f.write(CHAT_FILE.replace("max_message_bytes = 8192", "max_message_bytes = 4096"))
        srv.send_signal(signal.SIGHUP)
        self.assertTrue(srv.wait_log(r"info  reload: generation 2 serving"), "no reload")
        self.assertEqual(echoes[0].roundtrip("after reload"), b"after reload")
        new = self.ws(srv)
        self.assertEqual(new.roundtrip("new generation"), b"new generation")
        for i, c in enumerate(chats):
            f = c.expect_close()
            self.assertEqual(f.close_code, GOING_AWAY, "old chat connection %d got %r" % (i, f))
            c.send_close(GOING_AWAY)
            self.assertTrue(c.is_closed(), "old chat connection %d still open" % i)
        self.assertTrue(srv.wait_log(r"reload: generation 1 drained"),
                        "the old generation was never finalised")
        for c in echoes + [new]:
            self.assertEqual(c.roundtrip("still open"), b"still open")
            self.assertEqual(c.received[-1].opcode, OP_TEXT)
        self.assert_healthy(srv)


def chat_events(c, want, kinds=("message",)):
    """Reads chat events from @c until @want of the given types arrived; returns them."""
    got = []
    while len(got) < want:
        _, data = c.recv_message()
        ev = json.loads(data.decode("utf-8"))
        if ev.get("type") in kinds:
            got.append(ev)
    return got


class TestBroadcast(WSLifecycleCase):
    MEMBERS = 24
    PER_SENDER = 150

    def test_every_member_gets_every_message_in_publish_order(self):
        srv = self.start()
        room = "cross"
        members = [self.ws(srv, "/ws/chat/%s?name=u%d" % (room, i)) for i in range(self.MEMBERS)]
        # The request id's low byte is the loop index: the room must span both loops.
        loops = {int(m, 16) & 0xFF for m in srv.wait_log_count(
            r"access: GET /ws/chat/%s\?name=u\d+ 101 .* req=[0-9a-f]{8}([0-9a-f]{12})" % room,
            self.MEMBERS)}
        self.assertEqual(loops, {0, 1}, "members all on one loop; the test needs both")
        senders = members[:2]
        # Interleave the two senders' messages; each sender's own order must be kept.
        for k in range(self.PER_SENDER):
            for s, c in enumerate(senders):
                c.send_text(json.dumps({"text": "s%d-%d" % (s, k)}))
        for i, c in enumerate(members):
            events = chat_events(c, 2 * self.PER_SENDER)
            for s in range(2):
                texts = [e["text"] for e in events if e["user"] == "u%d" % s]
                self.assertEqual(texts, ["s%d-%d" % (s, k) for k in range(self.PER_SENDER)],
                                 "member u%d: sender u%d's messages lost or reordered" % (i, s))
            for e in events:
                self.assertEqual(e["room"], room)
                self.assertEqual(e["type"], "message")
                self.assertRegex(e["ts"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
                self.assertNotIn("history", e)
        # A member leaving is announced to everyone left, on both loops.
        members[-1].send_close(NORMAL)
        self.assertEqual(members[-1].expect_close().close_code, NORMAL)
        for i, c in enumerate(members[:-1]):
            (ev,) = chat_events(c, 1, kinds=("leave",))
            self.assertEqual((ev["user"], ev["room"]), ("u%d" % (self.MEMBERS - 1), room))

    def test_join_notices_reach_earlier_members(self):
        srv = self.start()
        first = self.ws(srv, "/ws/chat/j?name=first")
        (ev,) = chat_events(first, 1, kinds=("join",))
        self.assertEqual(ev["user"], "first")  # its own join
        others = [self.ws(srv, "/ws/chat/j?name=n%d" % i) for i in range(6)]
        joins = chat_events(first, 6, kinds=("join",))
        self.assertEqual(sorted(e["user"] for e in joins), ["n%d" % i for i in range(6)])
        for c in others:
            c.send_close(NORMAL)
        leaves = chat_events(first, 6, kinds=("leave",))
        self.assertEqual(sorted(e["user"] for e in leaves), ["n%d" % i for i in range(6)])

    def test_rooms_are_separate(self):
        srv = self.start()
        a = self.ws(srv, "/ws/chat/a?name=alice")
        b = self.ws(srv, "/ws/chat/b?name=bob")
        a.send_text(json.dumps({"text": "only for a"}))
        b.send_text(json.dumps({"text": "only for b"}))
        self.assertEqual([e["text"] for e in chat_events(a, 1)], ["only for a"])
        self.assertEqual([e["text"] for e in chat_events(b, 1)], ["only for b"])


if __name__ == "__main__":
    unittest.main()
