"""Stopping while connections are in odd states: a client gone mid-response does not hold the
drain, and a loop that finished draining closes its idle connections while another drains."""
import os
import re
import signal
import socket
import unittest

from mhtest import RawConnection, ServerTestCase, build_request


class TestClientGone(ServerTestCase):
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


class TestDrainIdleOtherLoop(ServerTestCase):
    def test_idle_connection_on_finished_loop_is_closed_while_other_loop_drains(self):
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


if __name__ == "__main__":
    unittest.main()
