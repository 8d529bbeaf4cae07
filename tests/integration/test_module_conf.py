"""Module configuration as an operator writes it: the module templates installed with the
package work together, `modhost check` reports every error in one run, and a module enabled
twice under two instance names."""

import glob
import os
import re
import unittest

from mhtest import (SOURCE_DIR, RawConnection, ServerTestCase, module_conf, run_cli,
                    sanitizer_lines)


class ConfCase(ServerTestCase):
    def cli(self, *args):
        r = run_cli(*args)
        self.assertEqual(sanitizer_lines(r.stderr), [], r.stderr)
        return r


# Templates of drivers that connect to a database server: opening their stores needs one.
NETWORKED = {"store_postgres.conf", "store_redis.conf"}


class TestTemplates(ConfCase):
    """modules/*/*.conf are installed as templates (share/modhost/modules)."""

    def template_dir(self):
        """A conf.d holding every template, with the SQLite file moved into it."""
        conf = self.make_conf(files={})
        for path in sorted(glob.glob(os.path.join(SOURCE_DIR, "modules", "*", "*.conf"))):
            if os.path.basename(path) in NETWORKED:
                continue  # they need servers of their own: tests/stores and test_scale_out
            with open(path, encoding="utf-8") as f:
                text = f.read()
            text = re.sub(r'path = "[^"]*kv\.db"', 'path = "%s"' % conf.file("kv.db"), text)
            conf.write("10-" + os.path.basename(path), text)
        return conf

    def test_templates_agree_on_store_names(self):
        conf = self.template_dir()
        declared, used = set(), set()
        for path in glob.glob(os.path.join(conf.path, "10-*.conf")):
            with open(path, encoding="utf-8") as f:
                text = f.read()
            declared |= set(re.findall(r'^\s*name = "(\w+)";\s*\n\s*driver', text, re.M))
            for names in re.findall(r"stores = \[([^\]]*)\]", text):
                used |= set(re.findall(r'"(\w+)"', names))
        self.assertTrue(used, "no template uses a store")
        self.assertLessEqual(used, declared)

    def test_templates_pass_check_together(self):
        conf = self.template_dir()
        r = self.cli("check", "-c", conf.path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(": OK: ", r.stdout)


MEMORY_STORES = """module: { name = "store_memory"; };
stores = (
  { name = "one"; driver = "memory"; },
  { name = "two"; driver = "memory"; }
);
"""


def kv_instance(instance, store, prefix):
    return ("module: {\n  name = \"kv\";\n  instance = \"%s\";\n  stores = [\"%s\"];\n"
            "  routes = (\n"
            "    { method = \"GET\"; path = \"%s/{key}\"; handler = \"get\"; },\n"
            "    { method = \"PUT\"; path = \"%s/{key}\"; handler = \"put\"; }\n"
            "  );\n};\n" % (instance, store, prefix, prefix))


class TestCheckReportsEverything(ConfCase):
    """One run of `check` reports the errors after a bad setting, a failed init or a bad
    store too: handlers, route conflicts and WebSocket hooks."""

    def test_errors_past_settings_init_and_stores(self):
        conf = self.make_conf(files={
            "05-stores.conf": 'module: { name = "store_memory"; };\n'
                              'stores = ( { name = "main"; driver = "memory";\n'
                              '  settings: { max_bytes = "lots"; }; } );\n',
            "10-hello.conf": 'module: {\n  name = "hello";\n  settings: { greeting = 5; };\n'
                             '  routes = ( { method = "GET"; path = "/h/{n}"; handler = "hello"; },\n'
                             '    { method = "GET"; path = "/x"; handler = "helo"; } );\n'
                             '};\n',
            "20-hash.conf": 'module: {\n  name = "hash";\n  settings: { max_iterations = 0; };\n'
                            '  routes = ( { method = "GET"; path = "/h/{n}"; handler = "hash"; } );\n'
                            '};\n',
            "30-kv.conf": 'module: {\n  name = "kv";\n  stores = ["main"];\n'
                          '  routes = ( { method = "GET"; path = "/kv/{key}"; handler = "gett"; } );\n'
                          '};\n',
            "40-echo.conf": 'module: {\n  name = "echo";\n'
                            '  websockets = ( { path = "/ws"; on_message = "nope"; } );\n};\n',
        })
        r = self.cli("check", "-c", conf.path)
        self.assertEqual(r.returncode, 1, r.stderr)
        expected = [
            ("05-stores.conf", "setting 'max_bytes' of store 'main' must be an integer"),
            ("10-hello.conf", "setting 'greeting' of module 'hello' must be a string"),
            ("10-hello.conf", "module 'hello' has no handler 'helo'"),
            ("20-hash.conf", "init failed: max_iterations must be 1..100000000"),
            ("20-hash.conf", "route GET /h/{n}"),
            ("30-kv.conf", "module 'kv' has no handler 'gett'"),
            ("40-echo.conf", "module 'echo' has no on_message hook 'nope'"),
        ]
        for file, text in expected:
            self.assertTrue(any(line.startswith(conf.file(file)) and text in line
                                for line in r.stderr.splitlines()),
                            "%s: %r missing in:\n%s" % (file, text, r.stderr))
        self.assertIn("modhost: %d errors in" % len(expected), r.stderr)
        # kv's store failed: kv is not initialised, so no second error blames kv for it.
        self.assertNotIn("no store", r.stderr)


class TestInstances(ConfCase):
    """`instance` enables one module more than once, each with its stores and routes."""

    def conf_two_kv(self):
        return self.make_conf(files={
            "05-stores.conf": MEMORY_STORES,
            "10-kv-one.conf": kv_instance("kv_one", "one", "/one"),
            "20-kv-two.conf": kv_instance("kv_two", "two", "/two"),
        })

    def test_check_and_routes_name_the_instances(self):
        conf = self.conf_two_kv()
        r = self.cli("check", "-c", conf.path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("3 modules, 4 routes", r.stdout)
        r = self.cli("routes", "-c", conf.path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"GET\s+/one/\{key\}\s+kv_one\s+get")
        self.assertRegex(r.stdout, r"PUT\s+/two/\{key\}\s+kv_two\s+put")

    def test_each_instance_serves_its_own_store(self):
        srv = self.start_server(conf=self.conf_two_kv())
        with RawConnection(srv.port) as c:
            put = c.request("PUT", "/one/k", body=b'{"n": 1}',
                            headers={"Content-Type": "application/json"})
            self.assertEqual(put.status, 201, put.body)
            self.assertEqual(c.request("GET", "/one/k").status, 200)
            self.assertEqual(c.request("GET", "/two/k").status, 404)
            put = c.request("PUT", "/two/k", body=b'[2]',
                            headers={"Content-Type": "application/json"})
            self.assertEqual(put.status, 201, put.body)
            got = c.request("GET", "/two/k")
            self.assertEqual(got.body, b"[2]")
            self.assertEqual(c.request("GET", "/one/k").body, b'{"n": 1}')

    def test_duplicate_instance_is_an_error(self):
        conf = self.make_conf(files={
            "05-stores.conf": MEMORY_STORES,
            "10-a.conf": kv_instance("kv_one", "one", "/one"),
            "20-b.conf": kv_instance("kv_one", "two", "/two"),
        })
        r = self.cli("check", "-c", conf.path)
        self.assertEqual(r.returncode, 1)
        self.assertIn("%s:3: instance 'kv_one' is already enabled at %s:1"
                      % (conf.file("20-b.conf"), conf.file("10-a.conf")), r.stderr)


class TestNewModule(ConfCase):
    """`modhost new-module` writes a skeleton from a template (the build itself is proved
    against an installed SDK by scripts/sdk-smoke)."""

    TEMPLATE = os.path.join(SOURCE_DIR, "sdk", "template")

    def scratch(self):
        conf = self.make_conf(files={}, server=False)
        return conf.path

    def test_writes_every_file_with_the_name(self):
        dest = os.path.join(self.scratch(), "notes")
        r = self.cli("new-module", "notes", dest, "--template", self.TEMPLATE)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sorted(os.listdir(dest)),
                         ["CMakeLists.txt", "Makefile", "notes.c", "notes.conf", "test_notes.c"])
        for name in os.listdir(dest):
            with open(os.path.join(dest, name), encoding="utf-8") as f:
                text = f.read()
            self.assertNotIn("@NAME@", text, name)
        with open(os.path.join(dest, "notes.c"), encoding="utf-8") as f:
            self.assertIn('MH_MODULE(.name = "notes"', f.read())
        with open(os.path.join(dest, "notes.conf"), encoding="utf-8") as f:
            self.assertIn('name = "notes";', f.read())

    def test_refuses_a_bad_name(self):
        dest = os.path.join(self.scratch(), "x")
        r = self.cli("new-module", "Bad-Name", dest, "--template", self.TEMPLATE)
        self.assertEqual(r.returncode, 2)
        self.assertIn("must match [a-z0-9_]+", r.stderr)
        self.assertFalse(os.path.exists(dest))

    def test_never_overwrites_a_module(self):
        dest = os.path.join(self.scratch(), "notes")
        os.mkdir(dest)
        with open(os.path.join(dest, "notes.c"), "w", encoding="utf-8") as f:
            f.write("mine")
        r = self.cli("new-module", "notes", dest, "--template", self.TEMPLATE)
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot create %s" % dest, r.stderr)
        with open(os.path.join(dest, "notes.c"), encoding="utf-8") as f:
            self.assertEqual(f.read(), "mine")

    def test_a_missing_template_is_named(self):
        missing = os.path.join(self.scratch(), "none")
        r = self.cli("new-module", "notes", os.path.join(self.scratch(), "n"),
                     "--template", missing)
        self.assertEqual(r.returncode, 1)
        self.assertIn("%s (from --template) holds no module template" % missing, r.stderr)

    def test_usage(self):
        r = self.cli("new-module")
        self.assertEqual(r.returncode, 2)
        self.assertIn("usage: modhost new-module NAME [DIR]", r.stderr)
        r = self.cli("new-module", "--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("make test", r.stdout)


if __name__ == "__main__":
    unittest.main()
