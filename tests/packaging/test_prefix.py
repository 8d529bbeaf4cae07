"""`cmake --install` of the build tree to a temporary prefix: the installed conf.d, module
conf files, unit and logrotate snippet point into that prefix (none at /usr, /etc or /var),
the default modules are linked, and the installed binary checks and serves that conf.d
(a kv write and read in the SQLite store under PREFIX/var/lib/modhost)."""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import mhtest  # noqa: E402  (after the path is set)
from mhtest import RawConnection, ServerTestCase, sanitizer_lines  # noqa: E402

BUILD_DIR = os.environ.get("MODHOST_BUILD_DIR") or os.path.join(mhtest.SOURCE_DIR, "build")
CMAKE = os.environ.get("MODHOST_CMAKE") or "cmake"


class TestPrefixInstall(ServerTestCase):
    @classmethod
    def setUpClass(cls):
        cls.prefix = tempfile.mkdtemp(prefix="modhost-prefix-")
        os.chmod(cls.prefix, 0o755)
        r = subprocess.run([CMAKE, "--install", BUILD_DIR, "--prefix", cls.prefix],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, encoding="utf-8")
        if r.returncode != 0:
            shutil.rmtree(cls.prefix, ignore_errors=True)
            raise AssertionError("cmake --install failed:\n" + r.stdout)
        cls.conf = os.path.join(cls.prefix, "etc", "modhost", "conf.d")
        cls.bin = os.path.join(cls.prefix, "bin", "modhost")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.prefix, ignore_errors=True)

    def path(self, *parts):
        return os.path.join(self.prefix, *parts)

    def read(self, *parts):
        with open(self.path(*parts), encoding="utf-8") as f:
            return f.read()

    def cli(self, *args):
        r = subprocess.run([self.bin] + list(args), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, encoding="utf-8", timeout=60)
        self.assertEqual(sanitizer_lines(r.stderr), [], r.stderr)
        return r

    def test_paths_point_into_the_prefix(self):
        server = self.read("etc", "modhost", "conf.d", "00-server.conf")
        self.assertIn('module_dir = "%s";' % self.path("lib", "modhost", "modules"), server)
        self.assertIn('pid_file = "%s";' % self.path("var", "run", "modhost", "modhost.pid"),
                      server)
        sqlite = self.read("etc", "modhost", "modules-available", "store_sqlite.conf")
        self.assertIn('path = "%s";' % self.path("var", "lib", "modhost", "kv.db"), sqlite)
        unit = self.read("lib", "systemd", "system", "modhost.service")
        self.assertIn("ExecStart=%s serve -c %s\n" % (self.bin, self.conf), unit)
        self.assertIn("ExecReload=%s reload -c %s\n" % (self.bin, self.conf), unit)
        logrotate = self.read("etc", "logrotate.d", "modhost")
        self.assertIn(self.path("var", "log", "modhost") + "/*.log {", logrotate)
        # No path outside the prefix in anything installed to configure or run the server.
        outside = re.compile(r'(?<![\w/.-])/(usr|etc|var|run)/[\w/.-]*modhost')
        for rel in ("etc/modhost/conf.d/00-server.conf", "lib/systemd/system/modhost.service",
                    "etc/logrotate.d/modhost") + tuple(
                        "etc/modhost/modules-available/" + n
                        for n in os.listdir(self.path("etc", "modhost", "modules-available"))):
            with self.subTest(file=rel):
                text = "\n".join(line for line in self.read(rel).splitlines()
                                 if not line.lstrip().startswith("#"))
                self.assertEqual([m.group(0) for m in outside.finditer(text)], [])

    def test_default_modules_are_linked_and_state_dirs_exist(self):
        for name in ("hello", "store_sqlite", "kv"):
            with self.subTest(name=name):
                self.assertEqual(os.readlink(os.path.join(self.conf, "50-%s.conf" % name)),
                                 "../modules-available/%s.conf" % name)
        for d in (("var", "lib", "modhost"), ("var", "log", "modhost"), ("var", "run", "modhost")):
            self.assertTrue(os.path.isdir(self.path(*d)), d)

    def test_installed_server_checks_and_serves_kv(self):
        r = self.cli("check", "-c", self.conf)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("OK: 4 files, 3 modules", r.stdout)
        saved = mhtest.BIN
        mhtest.BIN = self.bin
        self.addCleanup(setattr, mhtest, "BIN", saved)
        srv = self.start_server(conf=_Conf(self.conf))
        with RawConnection(srv.port) as c:
            self.assertEqual(c.request("PUT", "/kv/prefix", b'{"at":"prefix"}').status, 201)
            resp = c.request("GET", "/kv/prefix")
        self.assertEqual((resp.status, resp.json()), (200, {"at": "prefix"}))
        self.assertTrue(os.path.isfile(self.path("var", "lib", "modhost", "kv.db")))
        with open(self.path("var", "run", "modhost", "modhost.pid"), encoding="ascii") as f:
            self.assertEqual(int(f.read()), srv.pid)

    def test_enable_finds_modules_available_beside_the_installed_conf_d(self):
        r = self.cli("enable", "echo", "-c", self.conf)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.addCleanup(self.cli, "disable", "echo", "-c", self.conf)
        self.assertEqual(os.readlink(os.path.join(self.conf, "50-echo.conf")),
                         "../modules-available/echo.conf")


class _Conf:
    def __init__(self, path):
        self.path = path


if __name__ == "__main__":
    unittest.main()
