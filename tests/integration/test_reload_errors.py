"""What a reload and `modhost check` report: every error in one go, warnings for settings that
need a restart, and users that do not exist."""
import os
import re
import unittest

from mhtest import run_cli, server_conf
from test_reload import ReloadCase, TestBadConfigReload


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


if __name__ == "__main__":
    unittest.main()
