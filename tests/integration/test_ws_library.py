"""A standard client library (Debian's python3-websockets) talks to modhost: chat between two
clients in one room, and echo of text and binary messages of every length encoding."""
import asyncio
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "browser"))

from mhtest import ServerTestCase  # noqa: E402
from test_chat_browser import chat_files  # noqa: E402
from ws_client import ws_module_conf  # noqa: E402

try:
    import websockets
except ImportError:  # pragma: no cover - the package is in scripts/install-deps --test
    websockets = None


def run(coro, timeout=30):
    return asyncio.run(asyncio.wait_for(coro, timeout))


@unittest.skipUnless(websockets, "python3-websockets is not installed")
class TestWebSocketsLibrary(ServerTestCase):
    def test_two_clients_chat_through_modhost(self):
        srv = self.start_server(files=chat_files(history=False), threads=2)
        base = "ws://127.0.0.1:%d/ws/chat/lib" % srv.port

        async def chat():
            async with websockets.connect(base + "?name=ann") as ann, \
                    websockets.connect(base + "?name=bob") as bob:
                async def next_of(ws, kind):
                    while True:
                        m = json.loads(await ws.recv())
                        if m["type"] == kind:
                            return m

                await next_of(bob, "join")  # bob's own join: he is in the room
                await ann.send(json.dumps({"text": "hi bob"}))
                got = await next_of(bob, "message")
                mine = await next_of(ann, "message")
                return got, mine

        got, mine = run(chat())
        self.assertEqual((got["user"], got["room"], got["text"]), ("ann", "lib", "hi bob"))
        self.assertRegex(got["ts"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.assertEqual(mine, got)

    def test_echo_of_every_length_encoding(self):
        srv = self.start_server(files={"20-echo.conf": ws_module_conf(
            "echo", "echo.so", [dict(path="/ws/echo", on_message="ws_echo")])})

        async def echo():
            async with websockets.connect("ws://127.0.0.1:%d/ws/echo" % srv.port,
                                          max_size=1 << 20) as ws:
                out = []
                for msg in ("", "héllo", "x" * 125, "y" * 126, "z" * 65535, b"\x00\xff" * 40000):
                    await ws.send(msg)
                    out.append(await ws.recv() == msg)
                return out, ws

        results, ws = run(echo())
        self.assertEqual(results, [True] * 6)
        self.assertEqual(ws.close_code, 1000)


if __name__ == "__main__":
    unittest.main()
