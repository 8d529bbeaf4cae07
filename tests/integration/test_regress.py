"""Regression tests: JSON edge cases, CONNECT framing and drain behaviour that once failed."""
import os, signal, unittest
from mhtest import RawConnection, ServerTestCase, build_request, pipeline

class TestRegressions(ServerTestCase):
    def post_json(self, srv, body):
        with RawConnection(srv.port) as c:
            return c.request("POST", "/echo/json", body)

    def test_json_depth_equal_to_limit_is_accepted(self):
        srv = self.start_server(limits={"max_json_depth": 4})
        resp = self.post_json(srv, b"[[[[1]]]]")
        self.assertEqual(resp.status, 200, resp)

    def test_json_depth_limit_1_accepts_flat_array(self):
        srv = self.start_server(limits={"max_json_depth": 1})
        resp = self.post_json(srv, b"[1, 2]")
        self.assertEqual(resp.status, 200, resp)

    def test_top_level_number_and_literal_without_trailing_whitespace(self):
        srv = self.start_server()
        for text in (b"42", b"-1.5", b"true", b"false"):
            with self.subTest(text=text):
                resp = self.post_json(srv, text)
                self.assertEqual(resp.status, 200, resp)

    def test_null_document_is_valid(self):
        srv = self.start_server()
        for text in (b"null", b"null\n"):
            with self.subTest(text=text):
                resp = self.post_json(srv, text)
                self.assertEqual((resp.status, resp.body), (200, b"null"), resp)

    def test_connect_response_is_framed(self):
        srv = self.start_server()
        with RawConnection(srv.port, timeout=5) as c:
            c.send(b"CONNECT /echo HTTP/1.1\r\nHost: t\r\n\r\n" + build_request("GET", "/hello/x"))
            first = c.read_head()
            self.assertIn(first[1], (405, 501), first)
            self.assertTrue(any(k.lower() == "content-length" for k, _ in first[3]), first)

    def test_client_gone_mid_response_does_not_hold_shutdown(self):
        size = 8 << 20
        srv = self.start_server(limits={"max_body_bytes": 2 * size}, shutdown_timeout_ms=30000)
        c = RawConnection(srv.port, rcvbuf=32 * 1024)
        c.send(build_request("POST", "/echo", os.urandom(size)))
        self.assertEqual(c.read_head()[1], 200)
        c.close()
        srv.send_signal(signal.SIGTERM)
        rc = srv.wait(5)
        self.assertEqual(rc, 0, "still draining 5 s after SIGTERM (deadline 30 s)")

if __name__ == "__main__":
    unittest.main()


class TestDrainIdleOtherLoop(ServerTestCase):
    def test_idle_connection_on_finished_loop_is_closed_while_other_loop_drains(self):
        import re, socket
        size = 16 << 20
        srv = self.start_server(limits={"max_body_bytes": 2 * size}, shutdown_timeout_ms=30000)
        by_loop = {}
        for i in range(40):
            c = RawConnection(srv.port)
            self.addCleanup(c.close)
            self.assertEqual(c.request("GET", "/hello/p%d" % i).status, 200)
            m = srv.wait_log(r"GET /hello/p%d 200 \d+ \d+us req=[0-9a-f]{8}([0-9a-f]{12})" % i)
            by_loop.setdefault(int(m.group(1), 16) & 0xff, []).append(c)
            if len(by_loop) == 2 and all(len(v) >= 2 for v in by_loop.values()):
                break
        big = by_loop[0][0]
        big.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
        big.send(build_request("POST", "/echo", os.urandom(size)))
        self.assertEqual(big.read_head()[1], 200)
        srv.send_signal(signal.SIGTERM)
        self.assertTrue(srv.wait_log("SIGTERM received"))
        idle = by_loop[1][0]
        self.assertTrue(idle.is_closed(5), "idle connection on the drained loop left open")
        big.close()


class TestStrictInput(ServerTestCase):
    """JSON bodies are held to RFC 8259; unknown methods still learn what the path allows."""

    def test_non_json_that_json_c_would_accept_is_400(self):
        srv = self.start_server()
        for text in (b"{'a': 1}", b"[1,]", b'{"a":1,}', b"[NaN]", b"[Infinity]", b"[01]",
                     b'["a\tb"]', b'"\xff"', b'"\\x"', b"[1] [2]"):
            with self.subTest(text=text):
                resp = self.post_json(srv, text)
                self.assertEqual(resp.status, 400, resp)
                self.assertIn(b"invalid JSON", resp.body)

    def test_valid_json_round_trips(self):
        srv = self.start_server()
        for text in (b'{"a":[1,-2.5e3,"\\u00e9",true,false,null,{}]}', b" [1] ", b'"\xc3\xa9"'):
            with self.subTest(text=text):
                self.assertEqual(self.post_json(srv, text).status, 200)

    def test_unknown_method_on_existing_path_is_405_with_allow(self):
        srv = self.start_server()
        with RawConnection(srv.port) as c:
            resp = c.request("TRACE", "/echo")
        self.assertEqual(resp.status, 405, resp)
        self.assertEqual(resp.header("Allow"), "POST, OPTIONS")

    def post_json(self, srv, body):
        with RawConnection(srv.port) as c:
            return c.request("POST", "/echo/json", body)


# --- Reload: every error is reported, restart-only settings warn, check knows users ---
from mhtest import RawConnection, ServerTestCase
from mhtest import run_cli, server_conf
from test_kv import kv_files, kpath, new_db_dir
from test_reload import ReloadCase, TestBadConfigReload
import os
import os, threading, unittest
import re




class TestSighupListsEveryError(TestBadConfigReload):
    def test_sighup_logs_module_errors_beside_config_errors(self):
        # core/server.c reload() once skipped the module build after configuration errors, so
        # mh_gen_build_next, so module errors (unknown handler) are never logged, unlike
        # `modhost check` / `modhost reload` (core/main.c load(), which builds anyway).
        run = self.make_dir()
        pid_file = os.path.join(run, "modhost.pid")
        conf = self.make_conf(server=server_conf(extra='  pid_file = "%s";' % pid_file))
        self.write_good(conf)
        srv = self.start_custom(conf)
        expected = self.break_config(conf, pid_file)
        errors = self.reload_refused(srv)
        self.assert_errors_listed("\n".join(errors), expected)


class TestRestartOnlySettings(ReloadCase):
    def test_reload_warns_when_pid_file_user_or_group_change(self):
        # docs/operating.md: "Changes to listen, threads, workers, worker_queue, user, group and
        # pid_file need a restart; a reload keeps the running values and logs a warning."
        # core/server.c warn_fixed() compares only host, port, threads, workers, worker_queue.
        run = self.make_dir()
        conf = self.make_conf(server=server_conf(
            extra='  pid_file = "%s";' % os.path.join(run, "a.pid")))
        srv = self.start_custom(conf)
        conf.write("00-server.conf", server_conf(
            extra='  pid_file = "%s";\n  group = "nogroup";' % os.path.join(run, "b.pid")))
        self.reload(srv)
        self.assertRegex(srv.log(), r"warn  reload: .*(pid_file|group)")


class TestCheckUnknownUser(ReloadCase):
    def test_check_refuses_unknown_user(self):
        # `modhost serve` exits 1 ("server.user '...' does not exist"), `modhost check` says OK,
        # and so `modhost reload` would pass a configuration the server cannot start with.
        conf = self.make_conf(server=server_conf(extra='  user = "no-such-user-mh";'))
        r = run_cli("check", "-c", conf.path)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertTrue(re.search(r"no-such-user-mh", r.stderr))


# --- kv preconditions: no wildcard version, If-Match: * is atomic ---

UINT64_MAX_TAG = '"18446744073709551615"'


class TestKvBugs(ServerTestCase):
    def test_if_match_uint64_max_is_not_a_wildcard(self):
        for kind in ("sqlite", "memory"):
            srv = self.start_server(files=kv_files(kind, os.path.join(new_db_dir(self), "kv.db")))
            with RawConnection(srv.port) as c:
                self.assertEqual(c.request("PUT", kpath("x"), b"1").status, 201)
                # No record has this version: a precondition failure is the only right answer.
                self.assertEqual(c.request("PUT", kpath("x"), b"2",
                                           {"If-Match": UINT64_MAX_TAG}).status, 412, kind)
                self.assertEqual(c.request("PUT", kpath("new"), b"2",
                                           {"If-Match": UINT64_MAX_TAG}).status, 412, kind)
                self.assertEqual(c.request("DELETE", kpath("x"),
                                           headers={"If-Match": UINT64_MAX_TAG}).status, 412, kind)

    def test_if_match_star_never_fails_on_an_existing_key(self):
        srv = self.start_server(files=kv_files("sqlite", os.path.join(new_db_dir(self), "kv.db")),
                                extra="  workers = 4;")
        with RawConnection(srv.port) as c:
            self.assertEqual(c.request("PUT", kpath("s"), b"0").status, 201)
        stop = threading.Event()

        def churn():
            with RawConnection(srv.port) as c:
                while not stop.is_set():
                    c.request("PUT", kpath("s"), b"1")
        ts = [threading.Thread(target=churn) for _ in range(2)]
        for t in ts:
            t.start()
        try:
            with RawConnection(srv.port) as c:
                codes = [c.request("PUT", kpath("s"), b"2", {"If-Match": "*"}).status
                         for _ in range(100)]
        finally:
            stop.set()
            for t in ts:
                t.join()
        self.assertEqual(set(codes), {200}, "the key existed throughout: %r" % (
            {s: codes.count(s) for s in set(codes)},))


if __name__ == "__main__":
    unittest.main()


# --- WebSocket: one large message is not a slow consumer, history order, HTTP/1.1 only ---
import json, os, sys, unittest
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "browser"))
ECHO_CONF_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "modules",
                              "echo", "echo.conf")
from mhtest import HELLO_CONF, ServerTestCase, build_request
from ws_client import OP_BINARY, WSConnection, handshake_request, new_key
from test_chat_browser import chat_files, wait_stored

class Bugs(ServerTestCase):
    def test_1_max_size_echo_on_stock_echo_conf_is_not_closed(self):
        with open(ECHO_CONF_PATH) as f:
            srv = self.start_server(files={"10-hello.conf": HELLO_CONF, "20-echo.conf": f.read()})
        c = WSConnection(srv.port); self.addCleanup(c.close); c.open()
        data = os.urandom(1 << 20)           # == max_message_bytes: allowed
        c.send_binary(data)
        self.assertEqual(c.recv_message(), (OP_BINARY, data))
        self.assertEqual(c.roundtrip("next"), b"next")   # actual: close 1008 "too much unsent data"

    def test_2_history_replay_in_broadcast_order(self):
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

    def test_3_http10_upgrade_is_refused(self):
        srv = self.start_server(files={"10-hello.conf": HELLO_CONF, "20-echo.conf": open(ECHO_CONF_PATH).read()})
        c = WSConnection(srv.port); self.addCleanup(c.close)
        c.send(handshake_request(key=new_key()).replace(b"HTTP/1.1", b"HTTP/1.0", 1))
        self.assertNotEqual(c.read_response().status, 101)

if __name__ == "__main__":
    unittest.main()


# --- Guard: ordering of answers and refusals, arrival-independent verdicts ---
import time  # noqa: E402
PIPELINED = b"GET /hello/p HTTP/1.1\r\nHost: a\r\n\r\n"

class TestGuardOrdering(ServerTestCase):
    """A checked request before a bad one is answered; verdicts do not depend on how bytes
    arrive; targets evhttp cannot parse and unknown expectations are the guard's refusals."""
    def test_good_request_before_a_bad_one_in_the_same_read_is_answered(self):
        srv = self.start_server()
        with RawConnection(srv.port) as c:
            c.send(b"GET /hello/a HTTP/1.1\r\nHost: a\r\n\r\nBREW / HTTP/1.1\r\nHost: a\r\n\r\n")
            first = c.read_response()
            self.assertEqual(first.status, 200, first)  # actual: 501 for the GET

    def test_after_an_answered_upgrade_good_then_bad(self):
        srv = self.start_server()
        with RawConnection(srv.port) as c:
            c.send(b"GET /hello/x HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
                   b"GET /hello/y HTTP/1.1\r\nHost: a\r\n\r\nGET /hello/z HTTP/1.1\r\n\r\n")
            self.assertEqual(c.read_response().status, 200)
            second = c.read_response()
            self.assertEqual(second.status, 200, second)  # actual: 400 (for the missing Host of z)

    def test_request_line_at_the_limit_split_between_cr_and_lf(self):
        srv = self.start_server(limits={"max_request_line_bytes": 256})
        line = b"GET /hello/" + b"a" * (256 - len(b"GET /hello/ HTTP/1.1")) + b" HTTP/1.1"
        with RawConnection(srv.port) as c:
            # Two writes: the server may read them apart (the split itself is tested
            # deterministically by the fuzz corpus input regress-A-line-at-limit-then-CR).
            c.send(line + b"\r")
            c.send(b"\nHost: a\r\n\r\n")
            resp = c.read_response()
            self.assertEqual(resp.status, 200, resp)  # actual: 414 (200 when sent in one piece)

    def test_long_chunk_size_line_refused_however_it_arrives(self):
        # chunk-size lines (extensions included) are limited to 1024 bytes, in one piece or not
        srv = self.start_server()
        head = b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        ext = b"5;x=" + b"v" * 1100 + b"\r\n"
        for cut in (None, 1050):
            with RawConnection(srv.port) as c:
                if cut is None:
                    c.send(head + ext + b"hello\r\n0\r\n\r\n")
                else:
                    c.send(head + ext[:cut])
                    c.send(ext[cut:] + b"hello\r\n0\r\n\r\n")
                resp = c.read_response()
                self.assertEqual(resp.status, 400, resp)

    def test_target_evhttp_rejects_is_refused_with_problem_json(self):
        srv = self.start_server()
        for target in (b"http://[zz/", b"//[", b"http://a:99999999/hello/x"):
            with self.subTest(target=target), RawConnection(srv.port) as c:
                c.send(b"GET " + target + b" HTTP/1.1\r\nHost: a\r\n\r\n")
                resp = c.read_response()
                self.assertEqual(resp.header("Content-Type"), "application/problem+json", resp)  # actual: text/html from evhttp

    def test_unsupported_expectation_is_refused_with_problem_json(self):
        srv = self.start_server()
        with RawConnection(srv.port) as c:
            c.send(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: foo\r\n\r\nhello")
            resp = c.read_response()
            self.assertEqual(resp.status, 417, resp)
            self.assertEqual(resp.header("Content-Type"), "application/problem+json", resp)  # actual: text/html

if __name__ == "__main__":
    import unittest; unittest.main()
