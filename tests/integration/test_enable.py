"""`modhost enable NAME` / `modhost disable NAME`: the shipped module conf files
(modules/NAME/NAME.conf, copied into a modules-available directory beside a temp conf.d) are
linked into conf.d and checked; every refusal leaves conf.d as it was."""

import glob
import os
import pwd
import shutil
import tempfile
import unittest

from mhtest import (MODULE_DIR, SOURCE_DIR, RawConnection, ServerTestCase, run_cli,
                    sanitizer_lines, server_conf)


class Tree:
    """ROOT/conf.d (with 00-server.conf) and ROOT/modules-available (the shipped module
    confs, the SQLite store pointed into ROOT/data)."""

    def __init__(self, server_extra="", available=True):
        self.root = tempfile.mkdtemp(prefix="modhost-enable-")
        self.conf = os.path.join(self.root, "conf.d")
        self.available = os.path.join(self.root, "modules-available")
        self.data = os.path.join(self.root, "data")
        os.mkdir(self.conf)
        os.mkdir(self.data)
        with open(os.path.join(self.conf, "00-server.conf"), "w", encoding="utf-8") as f:
            f.write(server_conf(extra=server_extra))
        if available:
            os.mkdir(self.available)
            for src in glob.glob(os.path.join(SOURCE_DIR, "modules", "*", "*.conf")):
                with open(src, encoding="utf-8") as f:
                    text = f.read().replace("/var/lib/modhost", self.data)
                self.write_available(os.path.basename(src), text)

    def write_available(self, name, text):
        with open(os.path.join(self.available, name), "w", encoding="utf-8") as f:
            f.write(text)

    def listing(self):
        """{name: link target or None for a file} of conf.d."""
        out = {}
        for name in sorted(os.listdir(self.conf)):
            path = os.path.join(self.conf, name)
            out[name] = os.readlink(path) if os.path.islink(path) else None
        return out

    def link(self, name):
        return os.path.join(self.conf, "50-%s.conf" % name)

    def cleanup(self):
        shutil.rmtree(self.root, ignore_errors=True)


class EnableCase(ServerTestCase):
    def tree(self, **kwargs):
        t = Tree(**kwargs)
        self.addCleanup(t.cleanup)
        return t

    def cli(self, *args):
        r = run_cli(*args)
        self.assertEqual(sanitizer_lines(r.stderr), [], r.stderr)
        return r

    def enable(self, tree, name, *extra):
        return self.cli("enable", name, "-c", tree.conf, *extra)

    def disable(self, tree, name, *extra):
        return self.cli("disable", name, "-c", tree.conf, *extra)

    def assert_enabled(self, tree, *names):
        r = None
        for name in names:
            r = self.enable(tree, name)
            self.assertEqual(r.returncode, 0, r.stderr)
        return r

    def assert_refused(self, r, tree, before, *parts, status=1):
        """Exit @status, nothing on stdout after the check, every part in stderr, conf.d as
        @before."""
        self.assertEqual(r.returncode, status, r.stdout + r.stderr)
        self.assertNotIn("enabled", r.stdout)
        for part in parts:
            self.assertIn(part, r.stderr)
        self.assertEqual(tree.listing(), before)


class TestEnable(EnableCase):
    def test_enable_links_checks_and_serves(self):
        t = self.tree()
        r = self.enable(t, "hello")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(t.listing(), {"00-server.conf": None,
                                       "50-hello.conf": "../modules-available/hello.conf"})
        self.assertIn("%s: OK: 2 files, 1 module, 1 route" % t.conf, r.stdout)
        self.assertIn("modhost: enabled hello: %s -> ../modules-available/hello.conf"
                      % t.link("hello"), r.stdout)
        self.assertIn("modhost reload", r.stdout)
        srv = self.start_server(conf=_Conf(t.conf))
        with RawConnection(srv.port) as c:
            resp = c.request("GET", "/hello/world")
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.json(), {"message": "Hello, world!"})

    def test_enable_store_and_kv_serve_a_write_and_a_read(self):
        t = self.tree()
        self.assert_enabled(t, "store_sqlite", "kv")
        srv = self.start_server(conf=_Conf(t.conf))
        with RawConnection(srv.port) as c:
            self.assertEqual(c.request("PUT", "/kv/k", b'{"n":1}').status, 201)
            resp = c.request("GET", "/kv/k")
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.json(), {"n": 1})
        self.assertTrue(os.path.exists(os.path.join(t.data, "kv.db")))

    def test_enable_with_available_option_links_absolute_path(self):
        t = self.tree()
        other = tempfile.mkdtemp(prefix="modhost-avail-")
        self.addCleanup(shutil.rmtree, other, True)
        shutil.copy(os.path.join(t.available, "echo.conf"), other)
        r = self.enable(t, "echo", "--available", other)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(os.readlink(t.link("echo")),
                         os.path.realpath(os.path.join(other, "echo.conf")))

    def test_enable_failing_check_removes_the_link(self):
        t = self.tree()
        before = t.listing()
        r = self.enable(t, "kv")  # its store "main" is declared by store_sqlite, not enabled
        self.assert_refused(r, t, before, "%s:2: module 'kv' uses store 'main'" % t.link("kv"),
                            "modhost: module 'kv' not enabled: the configuration with it does "
                            "not pass the check (above); %s is unchanged" % t.conf)

    def test_enable_broken_conf_file_removes_the_link(self):
        t = self.tree()
        t.write_available("broken.conf", 'module: {\n  name = "broken";\n  file = ;\n};\n')
        before = t.listing()
        r = self.enable(t, "broken")
        self.assert_refused(r, t, before, "%s:3: " % t.link("broken"), "syntax error",
                            "module 'broken' not enabled")

    def test_enable_unknown_name_lists_available(self):
        t = self.tree()
        before = t.listing()
        r = self.enable(t, "nope")
        self.assert_refused(r, t, before, "modhost: no module 'nope' in %s/../modules-available "
                            "(available: chat, echo, hash, hello, kv, store_memory, "
                            "store_postgres, store_redis, store_sqlite)" % t.conf)

    def test_enable_without_available_directory(self):
        t = self.tree(available=False)
        before = t.listing()
        r = self.enable(t, "hello")
        self.assert_refused(r, t, before, "no module 'hello'", "(available: cannot read ",
                            "No such file or directory")

    def test_enable_not_a_module_name(self):
        t = self.tree()
        before = t.listing()
        for name in ("../hello", "Hello", "hel lo", ""):
            with self.subTest(name=name):
                r = self.enable(t, name)
                self.assert_refused(r, t, before, "'%s' is not a module name" % name)

    def test_enable_already_enabled(self):
        t = self.tree()
        self.assert_enabled(t, "hello")
        before = t.listing()
        r = self.enable(t, "hello")
        self.assert_refused(r, t, before, "modhost: module 'hello' is already enabled: %s"
                            % t.link("hello"))

    def test_enable_already_enabled_under_another_prefix(self):
        t = self.tree()
        os.symlink("../modules-available/hello.conf", os.path.join(t.conf, "10-hello.conf"))
        before = t.listing()
        r = self.enable(t, "hello")
        self.assert_refused(r, t, before, "already enabled: %s"
                            % os.path.join(t.conf, "10-hello.conf"))

    def test_enable_module_configured_by_a_file(self):
        t = self.tree()
        shutil.copy(os.path.join(t.available, "hello.conf"), os.path.join(t.conf, "10-hello.conf"))
        before = t.listing()
        r = self.enable(t, "hello")
        self.assert_refused(r, t, before, "module 'hello' is already configured by %s (a file "
                            "of its own, not a link" % os.path.join(t.conf, "10-hello.conf"))

    def test_enable_missing_conf_dir(self):
        t = self.tree()
        missing = os.path.join(t.root, "no-such-dir")
        r = self.cli("enable", "hello", "-c", missing)
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot open configuration directory %s: No such file or directory"
                      % missing, r.stderr)

    def test_enable_bad_usage(self):
        t = self.tree()
        before = t.listing()
        for args in (("enable", "-c", t.conf), ("enable", "hello", "echo", "-c", t.conf),
                     ("enable", "hello", "--bogus", "-c", t.conf)):
            with self.subTest(args=args):
                r = self.cli(*args)
                self.assert_refused(r, t, before, "usage: modhost enable NAME", status=2)
        r = self.cli("enable", "-c", t.conf)
        self.assertIn("which module? NAME is missing", r.stderr)
        r = self.cli("enable", "hello", "echo", "-c", t.conf)
        self.assertIn("one module NAME at a time", r.stderr)

    def test_help(self):
        for cmd in ("enable", "disable"):
            with self.subTest(cmd=cmd):
                r = self.cli(cmd, "--help")
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertTrue(r.stdout.startswith("usage: modhost %s NAME" % cmd), r.stdout)
                self.assertIn("--available DIR", r.stdout)
        r = self.cli("--help")
        self.assertRegex(r.stdout, r"\n  enable +link a module's conf file")
        self.assertRegex(r.stdout, r"\n  disable +remove a module's link")

    @unittest.skipUnless(os.geteuid() == 0, "needs root: the check runs as server.user")
    def test_enable_as_root_checks_as_server_user(self):
        try:
            nobody = pwd.getpwnam("nobody")
        except KeyError:
            self.skipTest("no user nobody")
        t = self.tree(server_extra='  user = "nobody";')
        os.chmod(t.root, 0o755)
        os.chown(t.data, nobody.pw_uid, nobody.pw_gid)
        module_dir_readable = all(os.access(p, os.X_OK) for p in _parents(MODULE_DIR))
        if not module_dir_readable:
            self.skipTest("the module directory is not reachable by other users")
        r = self.enable(t, "store_sqlite")
        self.assertEqual(r.returncode, 0, r.stderr)
        # The store file the check created belongs to the server's user, not to root.
        self.assertEqual(os.stat(os.path.join(t.data, "kv.db")).st_uid, nobody.pw_uid)


class TestDisable(EnableCase):
    def test_disable_removes_the_link(self):
        t = self.tree()
        self.assert_enabled(t, "hello", "echo")
        r = self.disable(t, "hello")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(t.listing(), {"00-server.conf": None,
                                       "50-echo.conf": "../modules-available/echo.conf"})
        self.assertIn("%s: OK: 2 files, 1 module, 3 routes" % t.conf, r.stdout)
        self.assertIn("modhost: disabled hello: removed %s" % t.link("hello"), r.stdout)
        # The shipped file stays where it was, ready to be enabled again.
        self.assertTrue(os.path.isfile(os.path.join(t.available, "hello.conf")))
        self.assert_enabled(t, "hello")

    def test_disable_link_under_another_name(self):
        t = self.tree()
        os.symlink("../modules-available/hello.conf", os.path.join(t.conf, "zz-greeter.conf"))
        r = self.disable(t, "hello")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(t.listing(), {"00-server.conf": None})

    def test_disable_not_enabled(self):
        t = self.tree()
        before = t.listing()
        r = self.disable(t, "hello")
        self.assert_refused(r, t, before,
                            "modhost: module 'hello' is not enabled in %s" % t.conf)

    def test_disable_unknown_name(self):
        t = self.tree()
        before = t.listing()
        r = self.disable(t, "nope")
        self.assert_refused(r, t, before, "module 'nope' is not enabled in %s" % t.conf)

    def test_disable_refuses_a_file(self):
        t = self.tree()
        path = os.path.join(t.conf, "10-hello.conf")
        shutil.copy(os.path.join(t.available, "hello.conf"), path)
        before = t.listing()
        r = self.disable(t, "hello")
        self.assert_refused(r, t, before, "%s configures 'hello' but is a file, not a link "
                            "'modhost enable' made" % path)

    def test_disable_refused_when_another_module_needs_it(self):
        t = self.tree()
        self.assert_enabled(t, "store_sqlite", "kv")
        before = t.listing()
        r = self.disable(t, "store_sqlite")
        self.assert_refused(r, t, before, "module 'kv' uses store 'main', which no file declares",
                            "modhost: module 'store_sqlite' not disabled: the configuration "
                            "without it does not pass the check (above); %s is unchanged"
                            % t.conf)

    def test_disable_in_a_configuration_broken_either_way(self):
        t = self.tree()
        self.assert_enabled(t, "hello")
        with open(os.path.join(t.conf, "60-broken.conf"), "w", encoding="utf-8") as f:
            f.write("module: {\n  name = ;\n};\n")
        r = self.disable(t, "hello")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("60-broken.conf:2: ", r.stderr)
        self.assertIn("disabled hello, but the configuration has errors without it as with it",
                      r.stderr)
        self.assertEqual(t.listing(), {"00-server.conf": None, "60-broken.conf": None})

    def test_disable_bad_usage(self):
        t = self.tree()
        r = self.cli("disable", "-c", t.conf)
        self.assertEqual(r.returncode, 2)
        self.assertIn("usage: modhost disable NAME", r.stderr)
        r = self.cli("disable", "a/b", "-c", t.conf)
        self.assertEqual(r.returncode, 1)
        self.assertIn("'a/b' is not a module name", r.stderr)


class _Conf:
    """What start_server needs of a configuration: its path."""

    def __init__(self, path):
        self.path = path


def _parents(path):
    parts = []
    while True:
        parts.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            return parts
        path = parent


if __name__ == "__main__":
    unittest.main()
