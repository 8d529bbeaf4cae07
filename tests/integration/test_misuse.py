"""A module's misuse of the SDK is the server's error: 500 problem+json to the client and a log
line naming the module, the handler, the call and its argument (never a 4xx, never silence)."""
import json
import unittest

from mhtest import RawConnection, ServerTestCase, fixture_path, have_fixture, module_conf


@unittest.skipUnless(have_fixture("fx_req.so"), "fixture modules are not built")
class TestMisuse(ServerTestCase):
    def start(self):
        files = {"10-fx.conf": module_conf("fx_req", fixture_path("fx_req.so"), [
            ("GET", "/headers", "headers"), ("GET", "/noreply", "noreply")])}
        return self.start_server(files=files)

    def test_bad_calls_answer_500_and_name_the_call(self):
        srv = self.start()
        with RawConnection(srv.port) as c:
            resp = c.request("GET", "/headers?v=x")
            self.assertEqual(resp.status, 500, resp)
            self.assertEqual(resp.header("Content-Type"), "application/problem+json")
            doc = json.loads(resp.body)
            self.assertIn('mh_resp_header("Bad Name")', doc["detail"])
            self.assertIsNone(resp.header("X-Ok"), "a header the module recorded went out")
            # The connection stays usable after a module's bug.
            self.assertEqual(c.request("GET", "/headers?v=x&clean=1").status, 200)
        for line in (r"fx_req: SDK misuse in handler 'headers': mh_resp_header\(\"Bad Name\"\)",
                     r"mh_resp_header\(\"X-Inject\"\): the value holds a line break",
                     r"mh_resp_header\(\"content-length\"\): the core writes Content-Length",
                     r"reply with status 199 \(outside 200\.\.599\)",
                     r"reply with status 600 \(outside 200\.\.599\)",
                     r"a second reply \(status 200; the first was 200\)",
                     r"mh_resp_header\(\"X-Late\"\) after the reply"):
            self.assertTrue(srv.wait_log(line), "no log line like %s\n%s" % (line, srv.log()))

    def test_good_handler_has_no_misuse_line(self):
        srv = self.start()
        with RawConnection(srv.port) as c:
            self.assertEqual(c.request("GET", "/headers?clean=1").status, 200)
        self.stop_server(srv)
        self.assertNotIn("SDK misuse", srv.log())


if __name__ == "__main__":
    unittest.main()
