"""Module configuration as an operator writes it: the module templates installed with the
package work together, `modhost check` reports every error in one run, and a module enabled
twice under two instance names."""

import glob
import os
import re
import unittest

from mhtest import MODULE_DIR, SOURCE_DIR, ServerTestCase, run_cli, sanitizer_lines, server_conf


class ConfCase(ServerTestCase):
    def cli(self, *args):
        r = run_cli(*args)
        self.assertEqual(sanitizer_lines(r.stderr), [], r.stderr)
        return r


class TestTemplates(ConfCase):
    """modules/*/*.conf are installed as templates (share/modhost/modules)."""

    def template_dir(self):
        """A conf.d holding every template, with the SQLite file moved into it."""
        conf = self.make_conf(files={})
        for path in sorted(glob.glob(os.path.join(SOURCE_DIR, "modules", "*", "*.conf"))):
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


if __name__ == "__main__":
    unittest.main()
