"""JSON request bodies (mh_req_json): held to RFC 8259 (what json-c would also accept is 400),
the depth limit at its edge, top-level scalars and the null document."""
import unittest

from mhtest import RawConnection, ServerTestCase


class TestJsonBody(ServerTestCase):
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


if __name__ == "__main__":
    unittest.main()
