"""The command line: version, help, exit statuses, `check` and `routes` on good and bad
configurations (every error as FILE:LINE: message, all of them in one run), loader refusals,
and `serve` failing before or while binding."""

import os
import re
import shutil
import socket
import tempfile
import unittest

from mhtest import (BIN, ECHO_CONF, HELLO_CONF, MODULE_DIR, SOURCE_DIR, RawConnection,
                    ServerTestCase, fixture_path, have_fixture, module_conf, run_cli,
                    sanitizer_lines)


def source_abi():
    """(major, minor) of the SDK header the binary was built from."""
    with open(os.path.join(SOURCE_DIR, "sdk", "include", "modhost", "sdk.h"),
              encoding="utf-8") as f:
        text = f.read()
    major = re.search(r"^#define MH_ABI_MAJOR (\d+)", text, re.M)
    minor = re.search(r"^#define MH_ABI_MINOR (\d+)", text, re.M)
    return int(major.group(1)), int(minor.group(1))


def source_version():
    with open(os.path.join(SOURCE_DIR, "CMakeLists.txt"), encoding="utf-8") as f:
        return re.search(r"project\(modhost VERSION ([0-9.]+)", f.read()).group(1)


def plain_listener():
    """A listening socket on a free loopback port, without SO_REUSEADDR/SO_REUSEPORT."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    return s, s.getsockname()[1]


class CliCase(ServerTestCase):
    def cli(self, *args, timeout=60):
        r = run_cli(*args, timeout=timeout)
        self.assertEqual(sanitizer_lines(r.stderr), [], r.stderr)
        return r

    def conf(self, files=None, server=None):
        """A temp conf.d; @files maps names to text (default: none besides 00-server.conf)."""
        return self.make_conf(files=files or {}, server=server)

    def assert_check_errors(self, conf_dir, expected):
        """`check` exits 1 and prints exactly the @expected errors, each given as
        (file, line, [substrings]), then the count line."""
        r = self.cli("check", "-c", conf_dir)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(r.stdout, "")
        lines = r.stderr.splitlines()
        n = len(expected)
        self.assertEqual(lines[-1], "modhost: %d error%s in %s" % (n, "" if n == 1 else "s",
                                                                    conf_dir), r.stderr)
        errors = lines[:-1]
        self.assertEqual(len(errors), n, r.stderr)
        for file, line, parts in expected:
            prefix = "%s:%d: " % (os.path.join(conf_dir, file), line)
            hits = [e for e in errors if e.startswith(prefix)]
            self.assertTrue(hits, "no error at %s in:\n%s" % (prefix, r.stderr))
            for part in parts:
                self.assertTrue(any(part in h for h in hits),
                                "%r not in the error at %s:\n%s" % (part, prefix, r.stderr))
        return r


class TestCommands(CliCase):
    def test_version(self):
        major, minor = source_abi()
        r = self.cli("version")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0], "modhost %s" % source_version())
        self.assertEqual(lines[1], "SDK ABI %d.%d" % (major, minor))
        self.assertRegex(lines[2], r"^libevent 2\.1\.")
        self.assertEqual(r.stderr, "")
        self.assertEqual(self.cli("--version").stdout, r.stdout)

    def test_sdk_abi_major_is_1(self):
        # The SDK this core provides is 1.x; the version line names it exactly.
        major, minor = source_abi()
        self.assertEqual(major, 1)
        self.assertIn("SDK ABI %d.%d\n" % (major, minor), self.cli("version").stdout)

    def test_help_on_each_command(self):
        for cmd in ("serve", "check", "routes", "version"):
            for flag in ("--help", "-h"):
                with self.subTest(cmd=cmd, flag=flag):
                    r = self.cli(cmd, flag)
                    self.assertEqual(r.returncode, 0, r.stderr)
                    self.assertTrue(r.stdout.startswith("usage: modhost %s" % cmd), r.stdout)
                    self.assertEqual(r.stderr, "")
        for args in (["--help"], ["-h"], ["help"]):
            with self.subTest(args=args):
                r = self.cli(*args)
                self.assertEqual(r.returncode, 0)
                self.assertTrue(r.stdout.startswith("usage: modhost COMMAND"), r.stdout)
                for cmd in ("serve", "check", "routes", "version"):
                    self.assertIn("  %s " % cmd, r.stdout)

    def test_unknown_command_exits_2(self):
        r = self.cli("frobnicate")
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown command 'frobnicate'", r.stderr)
        self.assertIn("usage: modhost COMMAND", r.stderr)
        self.assertEqual(r.stdout, "")
        r = self.cli()
        self.assertEqual(r.returncode, 2)
        self.assertIn("usage: modhost COMMAND", r.stderr)

    def test_bad_options_exit_2(self):
        conf = self.conf()
        for args in (["check", "--listen", "127.0.0.1:0", "-c", conf.path],
                     ["routes", "--bogus"], ["check", "-c", conf.path, "extra"],
                     ["version", "extra"], ["serve", "-c"]):
            with self.subTest(args=args):
                r = self.cli(*args)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn("usage: modhost", r.stderr)


class TestCheckGood(CliCase):
    def repo_conf_dir(self):
        """The repository's conf.d, or a temp copy pointing at this build's modules when the
        binary is not SOURCE/build/modhost (the repo's module_dir is ../build/modules)."""
        repo = os.path.join(SOURCE_DIR, "conf.d")
        build = os.path.realpath(os.path.join(SOURCE_DIR, "build"))
        if (os.path.realpath(os.path.dirname(BIN)) == build
                and os.path.realpath(MODULE_DIR) == os.path.join(build, "modules")):
            return repo
        tmp = tempfile.mkdtemp(prefix="modhost-repo-conf-")
        self.addCleanup(shutil.rmtree, tmp, True)
        for name in os.listdir(repo):
            with open(os.path.join(repo, name), encoding="utf-8") as f:
                text = f.read()
            text = re.sub(r'module_dir\s*=\s*"[^"]*"\s*;', 'module_dir = "%s";' % MODULE_DIR,
                          text)
            # the store file lives beside the build too: keep it in the temp copy instead
            text = re.sub(r'path\s*=\s*"\.\./build/([^"]*)"\s*;', r'path = "\1";', text)
            with open(os.path.join(tmp, name), "w", encoding="utf-8") as f:
                f.write(text)
        return tmp

    def test_check_repo_conf_d(self):
        conf_dir = self.repo_conf_dir()
        nfiles = len([n for n in os.listdir(conf_dir)
                      if n.endswith(".conf") and not n.startswith(".")])
        r = self.cli("check", "-c", conf_dir)
        self.assertEqual(r.returncode, 0, r.stderr)
        m = re.fullmatch(r"(.*): OK: (\d+) files?, (\d+) modules?, (\d+) routes?\n", r.stdout)
        self.assertTrue(m, r.stdout)
        self.assertEqual(m.group(1), conf_dir)
        self.assertEqual(int(m.group(2)), nfiles)
        routes = self.cli("routes", "-c", conf_dir)
        self.assertEqual(routes.returncode, 0, routes.stderr)
        rows = [line.split() for line in routes.stdout.splitlines()[1:]]
        self.assertEqual(int(m.group(4)), len(rows))
        for row in (["GET", "/hello/{name}", "hello", "hello"], ["POST", "/echo", "echo", "echo"],
                    ["POST", "/echo/json", "echo", "echo_json"]):
            self.assertIn(row, rows)
        self.assertGreaterEqual(int(m.group(3)), len({r[2] for r in rows}))

    def test_check_summary_counts(self):
        conf = self.make_conf()  # 00-server, hello, echo
        r = self.cli("check", "-c", conf.path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "%s: OK: 3 files, 2 modules, 3 routes\n" % conf.path)
        self.assertEqual(sanitizer_lines(r.stderr), [])
        one = self.conf({"10-echo.conf": module_conf("echo", "echo.so",
                                                     [("POST", "/e", "echo")])})
        r = self.cli("check", "-c", one.path)
        self.assertEqual(r.stdout, "%s: OK: 2 files, 1 module, 1 route\n" % one.path)

    def test_routes_table(self):
        conf = self.make_conf()
        r = self.cli("routes", "-c", conf.path)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0].split(), ["METHOD", "PATH", "MODULE", "HANDLER"])
        self.assertEqual(sorted(line.split() for line in lines[1:]),
                         [["GET", "/hello/{name}", "hello", "hello"],
                          ["POST", "/echo", "echo", "echo"],
                          ["POST", "/echo/json", "echo", "echo_json"]])
        # Columns line up under the header.
        for line in lines[1:]:
            self.assertEqual(line.index(line.split()[1]), lines[0].index("PATH"))

    def test_routes_with_bad_config_exits_1(self):
        conf = self.conf({"10-a.conf": "module: { name = \"nope\"; };\n"})
        r = self.cli("routes", "-c", conf.path)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stdout, "")
        self.assertIn("%s:1: module 'nope'" % conf.file("10-a.conf"), r.stderr)


class TestCheckErrors(CliCase):
    def test_missing_directory(self):
        missing = os.path.join(tempfile.gettempdir(), "modhost-no-such-dir-%d" % os.getpid())
        r = self.cli("check", "-c", missing)
        self.assertEqual(r.returncode, 1)
        self.assertIn(missing, r.stderr)
        self.assertIn("cannot open configuration directory", r.stderr)

    def test_directory_without_conf_files(self):
        conf = self.make_conf(files={}, server=False)
        conf.write("README", "not a conf file\n")
        r = self.cli("check", "-c", conf.path)
        self.assertEqual(r.returncode, 1)
        self.assertIn("no *.conf files", r.stderr)

    def test_syntax_error(self):
        conf = self.conf({"10-a.conf": 'module: {\n  name = "hello";\n  file = ;\n};\n'})
        self.assert_check_errors(conf.path, [("10-a.conf", 3, ["syntax error"])])

    def test_unknown_key_with_suggestion(self):
        server = 'server: {\n  thraeds = 2;\n  module_dir = "%s";\n};\n' % MODULE_DIR
        conf = self.conf(server=server)
        self.assert_check_errors(conf.path, [
            ("00-server.conf", 2, ["unknown key 'server.thraeds'", "did you mean 'threads'?"])])

    def test_unknown_key_without_suggestion_lists_keys(self):
        conf = self.conf({"10-a.conf": 'module: {\n  name = "echo";\n  zzzzzzzz = 1;\n};\n'})
        self.assert_check_errors(conf.path, [
            ("10-a.conf", 3, ["unknown key 'module.zzzzzzzz'", "name, file, settings, routes"])])

    def test_unknown_top_level_key(self):
        conf = self.conf({"10-a.conf": '# comment\nmodules: { name = "echo"; };\n'})
        self.assert_check_errors(conf.path, [
            ("10-a.conf", 2, ["unknown key 'modules'", "did you mean 'module'?"])])

    def test_wrong_type(self):
        server = ('server: {\n  threads = "two";\n  module_dir = "%s";\n'
                  '  log: { access = 1; };\n};\n' % MODULE_DIR)
        conf = self.conf(server=server)
        self.assert_check_errors(conf.path, [
            ("00-server.conf", 2, ["'server.threads' must be an integer, not a string"]),
            ("00-server.conf", 4, ["'server.log.access' must be a boolean", "not an integer"])])

    def test_out_of_range(self):
        server = ('server: {\n  threads = 2;\n  module_dir = "%s";\n'
                  '  limits: {\n    max_json_depth = 0;\n  };\n};\n' % MODULE_DIR)
        conf = self.conf(server=server)
        self.assert_check_errors(conf.path, [
            ("00-server.conf", 5, ["'server.limits.max_json_depth' = 0 is out of range 1..10000"])])

    def test_unknown_module_file(self):
        conf = self.conf({"10-a.conf": '# nothing here\nmodule: {\n  name = "nope";\n'
                                        '  file = "nope.so";\n};\n'})
        self.assert_check_errors(conf.path, [
            ("10-a.conf", 2, ["module 'nope'", os.path.join(MODULE_DIR, "nope.so"),
                              "cannot open file"])])

    def test_unknown_handler_lists_handlers(self):
        conf = self.conf({"10-a.conf": module_conf("echo", "echo.so",
                                                   [("POST", "/e", "echo"),
                                                    ("POST", "/f", "ehco")])})
        # Line 1 module, 2 name, 3 file, 4 "routes = (", 5 and 6 the routes.
        self.assert_check_errors(conf.path, [
            ("10-a.conf", 6, ["module 'echo' has no handler 'ehco'",
                              "(its handlers: echo, echo_json)"])])

    def test_conflicting_routes_name_both(self):
        conf = self.conf({
            "10-echo.conf": module_conf("echo", "echo.so", [("POST", "/u/{id}", "echo")]),
            "20-hello.conf": module_conf("hello", "hello.so", [("GET", "/u/{id}", "hello"),
                                                               ("POST", "/u/{uid}", "hello")]),
        })
        first = conf.file("10-echo.conf")
        self.assert_check_errors(conf.path, [
            ("20-hello.conf", 6, ["POST /u/{uid}", "POST /u/{id}", "module 'echo'",
                                  "%s:5" % first])])

    def test_conflicting_routes_in_one_module(self):
        conf = self.conf({"10-echo.conf": module_conf(
            "echo", "echo.so", [("POST", "/x/{a}/y", "echo"), ("POST", "/x/{b}/y", "echo_json")])})
        self.assert_check_errors(conf.path, [
            ("10-echo.conf", 6, ["/x/{b}/y", "/x/{a}/y",
                                 "%s:5" % conf.file("10-echo.conf")])])

    def test_duplicate_module_name(self):
        conf = self.conf({"10-a.conf": ECHO_CONF,
                          "20-b.conf": '# again\nmodule: {\n  name = "echo";\n};\n'})
        self.assert_check_errors(conf.path, [
            ("20-b.conf", 3, ["module 'echo' is already enabled at %s:1"
                              % conf.file("10-a.conf")])])

    def test_bad_listen(self):
        for value in ("localhost", "127.0.0.1:99999", ":80", "127.0.0.1:http", "[::1]80"):
            with self.subTest(value=value):
                server = ('server: {\n  threads = 2;\n  listen = "%s";\n  module_dir = "%s";\n};\n'
                          % (value, MODULE_DIR))
                conf = self.conf(server=server)
                self.assert_check_errors(conf.path, [
                    ("00-server.conf", 3, ["'server.listen' = \"%s\" is not HOST:PORT" % value])])

    def test_bad_route_method_and_path(self):
        conf = self.conf({"10-a.conf": module_conf("echo", "echo.so",
                                                   [("FETCH", "/a", "echo"),
                                                    ("POST", "no-slash", "echo")])})
        self.assert_check_errors(conf.path, [
            ("10-a.conf", 5, ["route method \"FETCH\""]),
            ("10-a.conf", 6, ["path 'no-slash' must start with '/'"]),
        ])

    def test_several_errors_in_one_run(self):
        server = ('server: {\n  thraeds = 2;\n  module_dir = "%s";\n'
                  '  limits: { max_json_depth = "deep"; };\n};\n' % MODULE_DIR)
        conf = self.conf({
            "10-a.conf": 'module: {\n  name = "nope";\n};\n',
            "20-b.conf": module_conf("echo", "echo.so", [("POST", "/e", "ehco")]),
            "30-c.conf": 'module: {\n  name = "hello"\n  file = ;\n};\n',
            "40-d.conf": module_conf("hello", "hello.so", [("GET", "/h/{n}", "hello")]),
        }, server=server)
        self.assert_check_errors(conf.path, [
            ("00-server.conf", 2, ["did you mean 'threads'?"]),
            ("00-server.conf", 4, ["'server.limits.max_json_depth' must be an integer"]),
            ("10-a.conf", 1, ["module 'nope'", "cannot open file"]),
            ("20-b.conf", 5, ["no handler 'ehco'"]),
            ("30-c.conf", 3, ["syntax error"]),
        ])


@unittest.skipUnless(have_fixture("fx_good.so"), "fixture modules are not built")
class TestCheckModuleSettings(CliCase):
    def good(self, settings, routes=(("GET", "/a", "a"),)):
        return module_conf("fx_good", fixture_path("fx_good.so"), list(routes), settings)

    def test_good_fixture_passes(self):
        conf = self.conf({"10-good.conf": self.good({"count": 3, "label": "x"},
                                                    [("GET", "/a", "a"), ("POST", "/b", "b")])})
        r = self.cli("check", "-c", conf.path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "%s: OK: 2 files, 1 module, 2 routes\n" % conf.path)

    def test_unknown_handler_lists_fixture_handlers(self):
        conf = self.conf({"10-good.conf": self.good({"count": 1}, [("GET", "/c", "c")])})
        self.assert_check_errors(conf.path, [
            ("10-good.conf", 6, ["module 'fx_good' has no handler 'c'", "(its handlers: a, b)"])])

    def test_unknown_setting_with_suggestion(self):
        conf = self.conf({"10-good.conf": self.good({"cuont": 1})})
        self.assert_check_errors(conf.path, [
            ("10-good.conf", 4, ["unknown setting 'cuont' for module 'fx_good'",
                                 "did you mean 'count'?"])])

    def test_wrong_setting_type(self):
        conf = self.conf({"10-good.conf": self.good({"count": "three"})})
        self.assert_check_errors(conf.path, [
            ("10-good.conf", 4, ["setting 'count' of module 'fx_good' must be an integer"])])

    def test_init_failure_includes_module_message(self):
        conf = self.conf({"10-good.conf": self.good({"count": 0})})
        self.assert_check_errors(conf.path, [
            ("10-good.conf", 1, ["module 'fx_good'", fixture_path("fx_good.so"),
                                 "init failed: count must be positive"])])


class TestLoaderRefusals(CliCase):
    def refused(self, name, *parts):
        path = fixture_path(name + ".so")
        conf = self.conf({"10-%s.conf" % name: '# %s\nmodule: {\n  name = "%s";\n'
                                                '  file = "%s";\n};\n' % (name, name, path)})
        return self.assert_check_errors(conf.path, [
            ("10-%s.conf" % name, 2, ["module '%s' (%s): " % (name, path)] + list(parts))])

    @unittest.skipUnless(have_fixture("fx_major.so"), "fixture fx_major.so is not built")
    def test_wrong_abi_major_names_both_versions(self):
        major, minor = source_abi()
        self.refused("fx_major", "built for SDK %d.%d" % (major + 1, minor),
                     "this core provides SDK %d.%d" % (major, minor))

    @unittest.skipUnless(have_fixture("fx_minor.so"), "fixture fx_minor.so is not built")
    def test_newer_abi_minor_names_both_versions(self):
        major, minor = source_abi()
        self.refused("fx_minor", "built for SDK %d.%d" % (major, minor + 1),
                     "newer than this core's SDK %d.%d" % (major, minor))

    @unittest.skipUnless(have_fixture("fx_nosym.so"), "fixture fx_nosym.so is not built")
    def test_no_entry_symbol(self):
        self.refused("fx_nosym", "no mh_module_v1 symbol")

    @unittest.skipUnless(have_fixture("fx_garbage.so"), "fixture fx_garbage.so is not built")
    def test_garbage_file(self):
        self.refused("fx_garbage", "cannot load")

    @unittest.skipUnless(have_fixture("fx_initfail.so"), "fixture fx_initfail.so is not built")
    def test_init_failure_includes_module_message(self):
        r = self.refused("fx_initfail", "init failed: ")
        # The module's own message, whatever it is, follows "init failed: ".
        msg = re.search(r"init failed: (.+)$", r.stderr, re.M).group(1)
        self.assertNotIn(msg.strip(), ("", "invalid argument"))

    @unittest.skipUnless(all(have_fixture(n + ".so") for n in
                             ("fx_major", "fx_minor", "fx_nosym", "fx_garbage", "fx_initfail")),
                         "fixture modules are not built")
    def test_all_refusals_in_one_run(self):
        names = ("fx_major", "fx_minor", "fx_nosym", "fx_garbage", "fx_initfail")
        files = {"1%d-%s.conf" % (i, n): '# %s\nmodule: {\n  name = "%s";\n  file = "%s";\n};\n'
                 % (n, n, fixture_path(n + ".so")) for i, n in enumerate(names)}
        files["50-echo.conf"] = ECHO_CONF
        conf = self.conf(files)
        self.assert_check_errors(conf.path, [
            ("1%d-%s.conf" % (i, n), 2, ["module '%s' (%s)" % (n, fixture_path(n + ".so"))])
            for i, n in enumerate(names)])


class TestServe(CliCase):
    def test_serve_with_bad_config_exits_1_without_binding(self):
        server = 'server: {\n  thraeds = 2;\n  module_dir = "%s";\n};\n' % MODULE_DIR
        conf = self.conf({"10-hello.conf": HELLO_CONF}, server=server)
        port_file = os.path.join(conf.path, "port")
        held, port = plain_listener()
        held.close()  # a port that was free a moment ago
        r = self.cli("serve", "-c", conf.path, "--listen", "127.0.0.1:%d" % port,
                     "--port-file", port_file)
        self.assertEqual(r.returncode, 1)
        self.assertIn("%s:2: unknown key 'server.thraeds'" % conf.file("00-server.conf"),
                      r.stderr)
        self.assertNotIn("listening on", r.stderr)
        self.assertFalse(os.path.exists(port_file))

    def test_serve_with_bad_listen_option_exits_1(self):
        conf = self.make_conf()
        r = self.cli("serve", "-c", conf.path, "--listen", "127.0.0.1")
        self.assertEqual(r.returncode, 1)
        self.assertIn("--listen \"127.0.0.1\" is not HOST:PORT", r.stderr)
        self.assertNotIn("listening on", r.stderr)

    def test_listen_option_overrides_config(self):
        held, busy = plain_listener()
        self.addCleanup(held.close)
        srv = self.start_server(listen="127.0.0.1:0",
                                conf=self.make_conf(listen="127.0.0.1:%d" % busy))
        self.assertNotEqual(srv.port, busy)
        with RawConnection(srv.port) as c:
            self.assertEqual(c.request("GET", "/hello/x").status, 200)
        self.assertIn("listening on 127.0.0.1:%d " % srv.port, srv.log())

    def test_listen_from_config_is_used(self):
        held, port = plain_listener()
        held.close()
        conf = self.make_conf(listen="127.0.0.1:%d" % port)
        srv = self.start_server(conf=conf, listen=None)
        self.assertEqual(srv.port, port)
        with RawConnection(port) as c:
            self.assertEqual(c.request("GET", "/hello/x").status, 200)

    def test_port_in_use_fails_with_clear_error(self):
        held, port = plain_listener()
        self.addCleanup(held.close)
        conf = self.make_conf()
        port_file = os.path.join(conf.path, "port")
        r = self.cli("serve", "-c", conf.path, "--listen", "127.0.0.1:%d" % port,
                     "--port-file", port_file)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertRegex(r.stderr, r"cannot listen on 127\.0\.0\.1:%d: the address is already "
                                   r"(served by pid %d|in use)" % (port, os.getpid()))
        self.assertFalse(os.path.exists(port_file))
        self.assertNotIn("listening on", r.stderr)


if __name__ == "__main__":
    unittest.main()
