"""A raw WebSocket (RFC 6455) client for the integration tests, on the standard library only.

It builds any frame on purpose, valid or not: FIN and RSV bits, any opcode, masked or not, the
length in the 7-bit, 16-bit or 64-bit form of the caller's choice (so a small length can be sent
in a non-minimal 64-bit form), a declared length that differs from the payload (to stop
mid-frame), fragments with control frames between them. It parses what the server sends into
Frame objects (remembering the length form and whether the frame was masked, so tests can check
the server's encoding) and tells a close frame from the TCP connection closing.

WSConnection is a blocking client on top of mhtest.RawConnection (the HTTP handshake is plain
HTTP/1.1); FrameParser and handshake_request() also serve non-blocking clients (selectors).
ws_module_conf() writes a module file with `websockets` endpoints for a test's conf.d.
"""

import base64
import hashlib
import os
import socket
import struct
import time

from mhtest import IO_TIMEOUT_S, ConnectionClosed, RawConnection, _conf_value, build_request

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA
CONTROL_OPCODES = (OP_CLOSE, OP_PING, OP_PONG)

# Close codes the tests name.
NORMAL = 1000
GOING_AWAY = 1001
PROTOCOL_ERROR = 1002
UNSUPPORTED_DATA = 1003
INVALID_DATA = 1007
POLICY = 1008
TOO_BIG = 1009


def new_key():
    """A fresh Sec-WebSocket-Key: base64 of 16 random bytes."""
    return base64.b64encode(os.urandom(16)).decode("ascii")


def accept_for(key):
    """The Sec-WebSocket-Accept a server must answer to @key."""
    digest = hashlib.sha1((key + GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


def mask_payload(key, data):
    """XORs @data with the 4-byte @key repeated (masking and unmasking are the same)."""
    n = len(data)
    if n == 0:
        return b""
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")


def encode_frame(opcode, payload=b"", fin=True, rsv=0, mask=True, mask_key=None,
                 length_form=None, declared_length=None):
    """Bytes of one frame.

    @rsv holds the three RSV bits as 0..7 (4 = RSV1, 2 = RSV2, 1 = RSV3); @opcode may be any
    value 0..15. @length_form is 7, 16 or 64 to force an encoding (None: the minimal one); a
    form too small for the length raises ValueError. @declared_length puts another length in
    the header than len(@payload) (the payload is still sent as given, masked with the key).
    """
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    n = len(payload) if declared_length is None else declared_length
    if length_form is None:
        length_form = 7 if n < 126 else 16 if n <= 0xFFFF else 64
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0x0F)
    mbit = 0x80 if mask else 0
    if length_form == 7:
        if n > 125:
            raise ValueError("%d does not fit the 7-bit length" % n)
        head = struct.pack("!BB", b0, mbit | n)
    elif length_form == 16:
        if n > 0xFFFF:
            raise ValueError("%d does not fit the 16-bit length" % n)
        head = struct.pack("!BBH", b0, mbit | 126, n)
    elif length_form == 64:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    else:
        raise ValueError("length_form must be 7, 16 or 64")
    if not mask:
        return head + payload
    key = mask_key if mask_key is not None else os.urandom(4)
    return head + key + mask_payload(key, payload)


def close_payload(code=None, reason=b""):
    """Payload of a close frame: nothing, or the 2-byte code and the reason bytes."""
    if isinstance(reason, str):
        reason = reason.encode("utf-8")
    if code is None:
        return reason
    return struct.pack("!H", code) + reason


class Frame:
    """One frame as received."""

    def __init__(self, fin, rsv, opcode, masked, payload, length_form):
        self.fin = fin
        self.rsv = rsv
        self.opcode = opcode
        self.masked = masked
        self.payload = payload
        self.length_form = length_form  # 7, 16 or 64: how the sender encoded the length

    @property
    def close_code(self):
        """The status code of a close frame, or None if it has none."""
        if self.opcode != OP_CLOSE or len(self.payload) < 2:
            return None
        return struct.unpack("!H", self.payload[:2])[0]

    @property
    def close_reason(self):
        return self.payload[2:] if self.opcode == OP_CLOSE else b""

    def __repr__(self):
        return "<Frame fin=%d rsv=%d op=0x%x%s len=%d %r>" % (
            self.fin, self.rsv, self.opcode, " masked" if self.masked else "",
            len(self.payload), self.payload[:60])


class FrameParser:
    """Incremental parser of a byte stream into Frames (masked or not)."""

    def __init__(self):
        self.buf = bytearray()

    def feed(self, data):
        self.buf += data

    def next(self):
        """The next complete frame, or None if more bytes are needed."""
        buf = self.buf
        if len(buf) < 2:
            return None
        b0, b1 = buf[0], buf[1]
        n = b1 & 0x7F
        pos = 2
        form = 7
        if n == 126:
            if len(buf) < 4:
                return None
            n = struct.unpack_from("!H", buf, 2)[0]
            pos, form = 4, 16
        elif n == 127:
            if len(buf) < 10:
                return None
            n = struct.unpack_from("!Q", buf, 2)[0]
            pos, form = 10, 64
        masked = bool(b1 & 0x80)
        key = None
        if masked:
            if len(buf) < pos + 4:
                return None
            key = bytes(buf[pos:pos + 4])
            pos += 4
        if len(buf) < pos + n:
            return None
        payload = bytes(buf[pos:pos + n])
        del buf[:pos + n]
        if masked:
            payload = mask_payload(key, payload)
        return Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0x0F, masked, payload, form)

    def frames(self):
        """Every complete frame buffered now."""
        out = []
        while True:
            f = self.next()
            if f is None:
                return out
            out.append(f)


def handshake_request(path="/ws/echo", key=None, headers=None, method="GET", version="13",
                      protocols=None, omit=()):
    """Bytes of an upgrade request. @headers (pairs or dict) come after the standard ones;
    @omit names standard headers to leave out ("Upgrade", "Connection", "Sec-WebSocket-Key",
    "Sec-WebSocket-Version")."""
    std = [("Upgrade", "websocket"), ("Connection", "Upgrade"),
           ("Sec-WebSocket-Key", key if key is not None else new_key()),
           ("Sec-WebSocket-Version", version)]
    hdrs = [(k, v) for k, v in std if k not in omit and v is not None]
    if protocols is not None:
        hdrs.append(("Sec-WebSocket-Protocol", protocols))
    extra = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    return build_request(method, path, headers=hdrs + extra)


class WSConnection(RawConnection):
    """A blocking WebSocket client on one TCP connection.

    Use handshake() (or send raw bytes with send()); then the send_* methods and recv_frame(),
    recv_message(), expect_close(), is_closed(). Bytes after the 101 response stay buffered for
    the frame reader.
    """

    def __init__(self, port, host="127.0.0.1", timeout=IO_TIMEOUT_S, rcvbuf=None, sndbuf=None):
        super().__init__(port, host=host, timeout=timeout, rcvbuf=rcvbuf)
        if sndbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.key = None
        self.response = None
        self.parser = FrameParser()
        self.received = []  # every frame recv_frame returned, in order

    # --- Handshake ---

    def handshake(self, path="/ws/echo", key=None, headers=None, method="GET", version="13",
                  protocols=None, omit=(), trailing=b""):
        """Sends an upgrade request (followed by @trailing bytes in the same write) and reads
        the response; returns the mhtest Response. A 101 has no body; others are read whole."""
        self.key = key if key is not None else new_key()
        self.send(handshake_request(path, self.key, headers, method, version, protocols, omit)
                  + trailing)
        self.response = self.read_response(method)
        return self.response

    def open(self, path="/ws/echo", **kwargs):
        """handshake() that must succeed: raises AssertionError unless the answer is a 101
        with the right Sec-WebSocket-Accept."""
        resp = self.handshake(path, **kwargs)
        if resp.status != 101 or resp.header("Sec-WebSocket-Accept") != accept_for(self.key):
            raise AssertionError("WebSocket handshake on %s refused: %r" % (path, resp))
        return resp

    # --- Sending ---

    def send_frame(self, opcode, payload=b"", **kwargs):
        """Sends one frame; keyword arguments as for encode_frame()."""
        self.send(encode_frame(opcode, payload, **kwargs))

    def send_text(self, text, **kwargs):
        self.send_frame(OP_TEXT, text.encode("utf-8") if isinstance(text, str) else text,
                        **kwargs)

    def send_binary(self, data, **kwargs):
        self.send_frame(OP_BINARY, data, **kwargs)

    def send_ping(self, data=b"", **kwargs):
        self.send_frame(OP_PING, data, **kwargs)

    def send_pong(self, data=b"", **kwargs):
        self.send_frame(OP_PONG, data, **kwargs)

    def send_close(self, code=None, reason=b"", **kwargs):
        self.send_frame(OP_CLOSE, close_payload(code, reason), **kwargs)

    def abort(self, reset=False):
        """Drops the connection without a close frame; @reset sends a TCP RST (SO_LINGER 0)."""
        if reset:
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                     struct.pack("ii", 1, 0))
            except OSError:
                pass
        self.close()

    # --- Receiving ---

    def _take_buffered(self):
        if self.buf:
            self.parser.feed(self.buf)
            self.buf = b""

    def recv_frame(self, timeout=None):
        """The next frame; ConnectionClosed if TCP closes first, socket.timeout after
        @timeout seconds (default: the connection's timeout)."""
        self._take_buffered()
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            frame = self.parser.next()
            if frame is not None:
                self.received.append(frame)
                return frame
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("no complete frame within the timeout")
            self.sock.settimeout(left)
            try:
                got = self._fill()
            finally:
                self.sock.settimeout(self.timeout)
            if not got:
                raise ConnectionClosed("TCP closed with %d bytes of an incomplete frame"
                                       % (len(self.parser.buf) + len(self.buf)))
            self._take_buffered()

    def recv_message(self, timeout=None, answer_pings=True):
        """The next data message as (opcode, payload bytes), fragments joined. Control frames
        on the way are kept in self.received; pings are answered unless @answer_pings is
        false; a close frame raises ConnectionClosed naming its code."""
        opcode, parts = None, []
        while True:
            f = self.recv_frame(timeout)
            if f.opcode == OP_PING:
                if answer_pings:
                    self.send_pong(f.payload)
                continue
            if f.opcode == OP_PONG:
                continue
            if f.opcode == OP_CLOSE:
                raise ConnectionClosed("close frame %s %r while waiting for a message"
                                       % (f.close_code, f.close_reason))
            if opcode is None:
                if f.opcode == OP_CONT:
                    raise AssertionError("continuation frame without a message: %r" % f)
                opcode = f.opcode
            elif f.opcode != OP_CONT:
                raise AssertionError("new message %r inside a fragmented one" % f)
            parts.append(f.payload)
            if f.fin:
                return opcode, b"".join(parts)

    def expect_close(self, timeout=None):
        """Reads until the server's close frame and returns it; data and control frames before
        it are kept in self.received. ConnectionClosed if TCP closes without one."""
        while True:
            f = self.recv_frame(timeout)
            if f.opcode == OP_CLOSE:
                return f

    def is_closed(self, timeout=IO_TIMEOUT_S):
        """Waits up to @timeout for TCP to close (bytes that arrive are kept for the parser)."""
        return super().is_closed(timeout)

    def roundtrip(self, data, binary=False):
        """Sends one message and returns the payload of the next message (the echo)."""
        if binary:
            self.send_binary(data)
        else:
            self.send_text(data)
        return self.recv_message()[1]


def ws_module_conf(name, file, endpoints, routes=(), settings=None, stores=None):
    """Text of a module file with WebSocket endpoints: each of @endpoints is a dict of the
    endpoint keys (path, on_open, on_message, on_close, subprotocols, max_message_bytes,
    max_outbound_bytes, ping_interval_ms, idle_timeout_ms). @routes holds (method, path,
    handler) triples, @stores a list of store names."""
    lines = ["module: {", "  name = %s;" % _conf_value(name), "  file = %s;" % _conf_value(file)]
    if stores is not None:
        lines.append("  stores = [%s];" % ", ".join(_conf_value(s) for s in stores))
    if settings is not None:
        body = " ".join("%s = %s;" % (k, _conf_value(v)) for k, v in settings.items())
        lines.append("  settings: { %s };" % body)
    if routes:
        lines.append("  routes = (")
        lines.append(",\n".join(
            "    { method = %s; path = %s; handler = %s; }"
            % (_conf_value(m), _conf_value(p), _conf_value(h)) for m, p, h in routes))
        lines.append("  );")
    entries = []
    for ep in endpoints:
        parts = []
        for k, v in ep.items():
            if isinstance(v, (list, tuple)):
                parts.append("%s = [%s];" % (k, ", ".join(_conf_value(x) for x in v)))
            else:
                parts.append("%s = %s;" % (k, _conf_value(v)))
        entries.append("    { %s }" % " ".join(parts))
    lines.append("  websockets = (")
    lines.append(",\n".join(entries))
    lines.append("  );")
    lines.append("};")
    return "\n".join(lines) + "\n"


def fd_count(pid):
    """How many file descriptors process @pid has open (Linux /proc)."""
    return len(os.listdir("/proc/%d/fd" % pid))


def rss_kb(pid):
    """Resident set size of process @pid in KiB (VmRSS in /proc/PID/status)."""
    with open("/proc/%d/status" % pid, encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for pid %d" % pid)
