#!/usr/bin/env python3
"""Private PostgreSQL and Redis servers for the tests, in a temporary directory, on loopback.

As a module: Postgres(dir).start() / .stop() / .restart() / .kill(), Redis(dir) the same; each
listens on 127.0.0.1 at a free port and on a Unix socket in its directory. PostgreSQL runs as
an unprivileged user when the tests run as root (initdb refuses root): `postgres` if it exists,
else `nobody`. Every wait is a poll with a deadline.

As a command, it wraps another one:
    services.py run [--postgres] [--redis] -- COMMAND ARGS...
starts the servers, exports where they are (MH_TEST_PG_HOST, MH_TEST_PG_PORT, MH_TEST_PG_USER,
MH_TEST_PG_DBNAME, MH_TEST_PG_PASSFILE, MH_TEST_PG_SOCKDIR, MH_TEST_REDIS_HOST,
MH_TEST_REDIS_PORT, MH_TEST_REDIS_SOCKET, MH_TEST_REDIS_PASSFILE, MH_TEST_REDIS_BAD_PASSFILE),
runs COMMAND, stops them and exits with COMMAND's status. A missing server binary is a skip
(exit 77, with a message naming the package) unless MH_REQUIRE_SERVICES=1 (CI), where it is a
failure (exit 1). Or it holds them for another program:
    services.py hold [--postgres] [--redis] ENVFILE
starts them, writes those variables to ENVFILE as shell `export` lines and keeps the servers
up until SIGTERM or SIGINT (bench/run).
"""

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

SKIP = 77
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0

PG_USER = "modhost"
PG_PASSWORD = "modhost-test-secret"
PG_DBNAME = "postgres"
REDIS_PASSWORD = "modhost-test-redis-secret"


class Missing(Exception):
    """A server binary is not installed; the message names the Debian package."""


def wait_until(predicate, timeout, interval=0.02):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)  # the poll's pace, bounded by the deadline above


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


def pg_bindir():
    """The directory of initdb/pg_ctl/postgres (Debian keeps them out of PATH)."""
    base = "/usr/lib/postgresql"
    versions = sorted((d for d in os.listdir(base) if d.isdigit()), key=int) \
        if os.path.isdir(base) else []
    for v in reversed(versions):
        path = os.path.join(base, v, "bin")
        if os.path.isfile(os.path.join(path, "pg_ctl")):
            return path
    found = shutil.which("initdb")
    if found and os.path.isfile(os.path.join(os.path.dirname(found), "pg_isready")):
        return os.path.dirname(found)
    raise Missing("PostgreSQL is not installed (initdb/pg_ctl not found; Debian package "
                  "`postgresql`)")


def _unprivileged():
    """(uid, gid, name) to run PostgreSQL as, or None when not root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            continue
        return pw.pw_uid, pw.pw_gid, name
    raise RuntimeError("running as root and neither `postgres` nor `nobody` exists")


class _Server:
    """What both servers share: a child process, its log, stop/kill/restart."""

    proc = None
    logfile = None
    stop_signal = signal.SIGTERM

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=None):
        """Stops the server (its own clean shutdown signal unless @sig), waiting for it."""
        if not self.running():
            return
        self.proc.send_signal(sig or self.stop_signal)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill(self):
        """SIGKILL to the server and its children (its own session): a crash, no shutdown."""
        if self.running():
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def restart(self):
        self.stop()
        return self.start()

    def log(self):
        try:
            with open(self.logfile, encoding="utf-8", errors="replace") as f:
                return f.read()[-4000:]
        except FileNotFoundError:
            return ""

    def cleanup(self):
        self.stop()
        if self.own_work:
            shutil.rmtree(self.work, ignore_errors=True)


class Postgres(_Server):
    """A private cluster: trust on its Unix socket, scram-sha-256 password on TCP."""

    stop_signal = signal.SIGINT  # fast shutdown: clients are disconnected, committed data stays

    def __init__(self, work=None):
        self.bindir = pg_bindir()
        self.own_work = work is None
        self.work = work or tempfile.mkdtemp(prefix="mh-pg-")
        self.data = os.path.join(self.work, "data")
        self.sockdir = os.path.join(self.work, "sock")
        self.passfile = os.path.join(self.work, "password")
        self.logfile = os.path.join(self.work, "postgres.log")
        self.port = None
        self.user = _unprivileged()
        self.proc = None

    def _demote(self):
        if self.user:
            os.setgid(self.user[1])
            os.setuid(self.user[0])

    def _run(self, *args):
        return subprocess.run([os.path.join(self.bindir, args[0])] + list(args[1:]),
                              preexec_fn=self._demote, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, encoding="utf-8", errors="replace",
                              timeout=START_TIMEOUT_S, check=False)

    def _chown(self, path):
        if self.user:
            os.chown(path, self.user[0], self.user[1])

    def start(self):
        os.makedirs(self.sockdir, exist_ok=True)
        self._chown(self.work)
        self._chown(self.sockdir)
        os.chmod(self.work, 0o755)
        if not os.path.isdir(self.data):
            pwfile = os.path.join(self.work, "initdb.pw")
            with open(pwfile, "w", encoding="utf-8") as f:
                f.write(PG_PASSWORD + "\n")
            self._chown(pwfile)
            out = self._run("initdb", "-D", self.data, "-U", PG_USER, "--pwfile", pwfile,
                            "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8",
                            "--no-instructions")
            os.unlink(pwfile)
            if out.returncode != 0:
                raise RuntimeError("initdb failed:\n" + out.stdout)
            # The password file modhost reads: private to the user running the tests.
            with open(self.passfile, "w", encoding="utf-8") as f:
                f.write(PG_PASSWORD + "\n")
            os.chmod(self.passfile, 0o600)
        if self.port is None:
            self.port = free_port()
        with open(self.logfile, "ab") as log:
            self.proc = subprocess.Popen(
                [os.path.join(self.bindir, "postgres"), "-D", self.data, "-p", str(self.port),
                 "-c", "listen_addresses=127.0.0.1",
                 "-c", "unix_socket_directories=" + self.sockdir,
                 "-c", "fsync=on", "-c", "max_connections=200", "-c", "shared_buffers=16MB"],
                preexec_fn=self._demote, stdin=subprocess.DEVNULL, start_new_session=True,
                stdout=log, stderr=subprocess.STDOUT)
        if not wait_until(self._ready, START_TIMEOUT_S):
            self.stop()
            raise RuntimeError("postgres did not accept connections within %.0f s:\n%s"
                               % (START_TIMEOUT_S, self.log()))
        return self

    def _ready(self):
        if self.proc.poll() is not None:
            raise RuntimeError("postgres exited with %s:\n%s" % (self.proc.returncode,
                                                                 self.log()))
        out = subprocess.run([os.path.join(self.bindir, "pg_isready"), "-q", "-h", "127.0.0.1",
                              "-p", str(self.port)], check=False)
        return out.returncode == 0

    def env(self):
        return {"MH_TEST_PG_HOST": "127.0.0.1", "MH_TEST_PG_PORT": str(self.port),
                "MH_TEST_PG_USER": PG_USER, "MH_TEST_PG_DBNAME": PG_DBNAME,
                "MH_TEST_PG_PASSFILE": self.passfile, "MH_TEST_PG_SOCKDIR": self.sockdir}



class Redis(_Server):
    """A private redis-server with a password: append-only file fsynced on every write."""

    def __init__(self, work=None):
        self.binary = shutil.which("redis-server")
        if not self.binary:
            raise Missing("Redis is not installed (redis-server not found; Debian package "
                          "`redis-server`)")
        self.own_work = work is None
        self.work = work or tempfile.mkdtemp(prefix="mh-redis-")
        self.socket = os.path.join(self.work, "redis.sock")
        self.passfile = os.path.join(self.work, "password")
        self.bad_passfile = os.path.join(self.work, "wrong-password")
        self.logfile = os.path.join(self.work, "redis.log")
        self.port = None
        self.proc = None

    def start(self):
        if self.port is None:
            self.port = free_port()
        for path, text in ((self.passfile, REDIS_PASSWORD), (self.bad_passfile, "not-it")):
            with open(path, "w", encoding="utf-8") as f:
                f.write(text + "\n")
            os.chmod(path, 0o600)
        self.proc = subprocess.Popen(
            [self.binary, "--requirepass", REDIS_PASSWORD, "--bind", "127.0.0.1", "--port", str(self.port),
             "--unixsocket", self.socket, "--dir", self.work, "--daemonize", "no",
             "--appendonly", "yes", "--appendfsync", "always", "--save", "",
             "--logfile", self.logfile],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)

        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError("redis-server exited with %s:\n%s"
                                   % (self.proc.returncode, self.log()))
            return port_open(self.port)

        if not wait_until(ready, START_TIMEOUT_S):
            self.stop()
            raise RuntimeError("redis-server did not listen within %.0f s" % START_TIMEOUT_S)
        return self

    def env(self):
        return {"MH_TEST_REDIS_HOST": "127.0.0.1", "MH_TEST_REDIS_PORT": str(self.port),
                "MH_TEST_REDIS_SOCKET": self.socket, "MH_TEST_REDIS_PASSFILE": self.passfile,
                "MH_TEST_REDIS_BAD_PASSFILE": self.bad_passfile}

    def cli(self, *args):
        """Runs redis-cli against the server; returns its output."""
        return subprocess.run(["redis-cli", "-p", str(self.port), "--no-auth-warning", "-a",
                               REDIS_PASSWORD] + list(args), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, encoding="utf-8", check=False).stdout


def required():
    return os.environ.get("MH_REQUIRE_SERVICES", "") not in ("", "0")


def missing(what):
    """Reports a missing server: a skip, or a failure where the servers are required."""
    if required():
        sys.stderr.write("FAILED: %s, and MH_REQUIRE_SERVICES is set\n" % what)
        return 1
    sys.stderr.write("SKIPPED: %s\n" % what)
    return SKIP


def hold(wanted, envfile):
    """Starts the servers, writes `export NAME=VALUE` lines to @envfile, and keeps them up
    until SIGTERM or SIGINT (bench/run uses this around its store workloads)."""
    servers = []

    def stop(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        try:
            if "--postgres" in wanted:
                servers.append(Postgres())
            if "--redis" in wanted:
                servers.append(Redis())
        except Missing as e:
            sys.stderr.write("services.py: %s\n" % e)
            return 1
        env = {}
        for s in servers:
            s.start()
            env.update(s.env())
        with open(envfile + ".tmp", "w", encoding="utf-8") as f:
            for k, v in sorted(env.items()):
                f.write("export %s=%s\n" % (k, v))
        os.rename(envfile + ".tmp", envfile)
        while True:
            signal.pause()
    finally:
        for s in servers:
            s.cleanup()


def main(argv):
    if len(argv) >= 3 and argv[1] == "hold":
        return hold(set(argv[2:-1]), argv[-1])
    if len(argv) < 3 or argv[1] != "run" or "--" not in argv:
        sys.stderr.write("usage: services.py run [--postgres] [--redis] -- COMMAND ARGS...\n"
                         "       services.py hold [--postgres] [--redis] ENVFILE\n")
        return 2
    sep = argv.index("--")
    wanted = set(argv[2:sep])
    command = argv[sep + 1:]
    servers = []
    try:
        try:
            if "--postgres" in wanted:
                servers.append(Postgres())
            if "--redis" in wanted:
                servers.append(Redis())
        except Missing as e:
            return missing(str(e))
        env = dict(os.environ)
        for s in servers:
            s.start()
            env.update(s.env())
        return subprocess.run(command, env=env, check=False).returncode
    finally:
        for s in servers:
            if s.proc is not None and s.proc.returncode not in (None, 0, -2, -15):
                sys.stderr.write("--- %s log ---\n%s\n" % (type(s).__name__, s.log()))
            s.cleanup()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
