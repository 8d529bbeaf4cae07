#!/usr/bin/env bash
# The operator's path through the Debian packages, on this machine: build modhost and
# modhost-dev with CPack, install them with dpkg -i, then as the `modhost` user run the unit's
# check, start the server with the unit's command line, write and read a key in its SQLite
# store, enable a module and reload; verify the unit (systemd-analyze), the conffiles, the
# logrotate snippet and modhost-dev (an out-of-tree module builds with its pkg-config file);
# reinstall (edits kept), remove (data kept) and purge (data gone).
#
#   sudo tests/packaging/test_deb.sh        # as root on Debian 12; CI runs it after the suite
#
# Without a running systemd (CI, containers) the unit's ExecStartPre/ExecStart/ExecReload lines
# are run as its User= under setpriv, with its capability bounding set and no_new_privs, after
# creating /run/modhost as RuntimeDirectory= would. It leaves nothing installed, whether it
# passes or fails, and runs again on the same machine (the system user stays, as after any
# purge). MH_DEB_BUILD_DIR picks the build directory (default build-deb).
set -euo pipefail
cd "$(dirname "$0")/../.."
src=$PWD

if [ "$(id -u)" -ne 0 ]; then
  echo "test_deb: needs root (dpkg -i, a system user)" >&2
  exit 2
fi
export DEBIAN_FRONTEND=noninteractive
scripts/install-deps --package

build=${MH_DEB_BUILD_DIR:-build-deb}
unit=/lib/systemd/system/modhost.service
conf=/etc/modhost/conf.d
work=$(mktemp -d /tmp/modhost-deb-XXXXXX)
server_pid=
failures=0

say() { echo "test_deb: $*"; }
fail() { echo "test_deb: FAIL: $*" >&2; failures=$((failures + 1)); }
die() { echo "test_deb: FAIL: $*" >&2; exit 1; }
check() { # description command...: runs the command; its output is shown if it fails
  local what=$1; shift
  if "$@" >"$work/out" 2>&1; then
    say "ok: $what"
  else
    cat "$work/out" >&2
    fail "$what"
  fi
}

# Purges both packages, and first stops a server a killed run may have left behind.
purge() {
  local pid
  pid=$(cat /run/modhost/modhost.pid 2>/dev/null || true)
  if [ -n "$pid" ] && [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = /usr/bin/modhost ]; then
    kill -KILL "$pid" 2>/dev/null || true
  fi
  dpkg --purge modhost-dev modhost >/dev/null 2>&1 || true
}
installed() { # any trace of either package in dpkg's database
  dpkg-query -W -f='${Status}\n' modhost modhost-dev 2>/dev/null | grep -qv "not-installed$"
}

stop_server() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid"
    for _ in $(seq 1 400); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.05; done
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  if [ -n "$server_pid" ]; then
    wait "$server_pid" 2>/dev/null || true
  fi
  server_pid=
}

cleanup() {
  local rc=$?
  stop_server
  if [ "$rc" -ne 0 ] || [ "$failures" -ne 0 ]; then
    [ -f "$work/server.log" ] && { echo "--- server log ---"; cat "$work/server.log"; } >&2
  fi
  purge
  rm -rf "$work"
}
trap cleanup EXIT

# The unit's command line for KEY (ExecStart, ExecStartPre, ExecReload), as an array.
unit_cmd() {
  local line
  line=$(sed -n "s/^$1=//p" "$unit")
  [ -n "$line" ] || die "$unit has no $1="
  read -r -a cmd <<<"$line"
}
unit_value() { sed -n "s/^$1=//p" "$unit"; }

# Runs a command as the unit's user, with what the unit grants (and no more).
as_unit_user() {
  setpriv --reuid="$(unit_value User)" --regid="$(unit_value Group)" --init-groups \
    --no-new-privs --bounding-set=-all,+net_bind_service -- "$@"
}

# HTTP through Python's standard library: METHOD PATH [BODY] -> "STATUS BODY".
http() {
  python3 - "$port" "$@" <<'EOF'
import http.client, sys
port, method, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
body = sys.argv[4].encode() if len(sys.argv) > 4 else None
c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
c.request(method, path, body=body)
r = c.getresponse()
print(r.status, r.read().decode())
EOF
}

# --- Build --------------------------------------------------------------------------------
purge # a run that was killed may have left them
say "building the packages in $build"
cmake -S . -B "$build" -DCMAKE_INSTALL_PREFIX=/usr -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DMH_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" -j2 >/dev/null
rm -f "$build"/*.deb
(cd "$build" && cpack -G DEB >/dev/null)
debs=("$build"/modhost_*.deb "$build"/modhost-dev_*.deb)
for d in "${debs[@]}"; do [ -f "$d" ] || die "cpack made no $d"; done

# --- Install -------------------------------------------------------------------------------
say "installing ${debs[*]}"
dpkg -i "${debs[@]}" >/dev/null || apt-get install -f -y >/dev/null
check "both packages are installed" \
  test "$(dpkg-query -W -f='${Status} ' modhost modhost-dev)" = \
       "install ok installed install ok installed "

check "the modhost system user and group exist" getent passwd modhost
check "the user has no login shell" \
  test "$(getent passwd modhost | cut -d: -f7)" = /usr/sbin/nologin
for d in /var/lib/modhost /var/log/modhost; do
  check "$d is modhost's, 0750" test "$(stat -c '%U:%G %a' "$d")" = "modhost:modhost 750"
done

conffiles=$(dpkg-query -W -f='${Conffiles}\n' modhost)
for f in $conf/00-server.conf /etc/modhost/modules-available/hello.conf \
         /etc/modhost/modules-available/kv.conf /etc/modhost/modules-available/store_sqlite.conf \
         /etc/logrotate.d/modhost; do
  check "$f is a conffile" grep -q "^ $f [0-9a-f]\{32\}$" <<<"$conffiles"
done
for name in hello store_sqlite kv; do
  check "a first install enables $name" \
    test "$(readlink "$conf/50-$name.conf")" = "../modules-available/$name.conf"
done

# --- modhost-dev ----------------------------------------------------------------------------
check "modhost-dev has the SDK header" dpkg -S /usr/include/modhost/sdk.h
check "the SDK header is not in modhost" \
  bash -c '! dpkg -L modhost | grep -q "/usr/include/"'
check "modhost-dev has the pkg-config file" \
  bash -c 'dpkg -L modhost-dev | grep -q "/pkgconfig/modhost-sdk.pc$"'
# shellcheck disable=SC2046
check "a module builds out of tree with the installed SDK" \
  cc -std=c11 $(pkg-config --cflags modhost-sdk) -o "$work/hello.so" "$src/modules/hello/hello.c" \
    $(pkg-config --libs modhost-sdk) -ljson-c
# The .pc file is relocatable (paths follow its own location): compare the directory it names.
check "pkg-config names the package's module directory" \
  test "$(realpath -m "$(pkg-config --variable=moduledir modhost-sdk)")" = /usr/lib/modhost/modules
# The module author's whole path from the packages alone: scaffold, make, make test, make
# install, the CMake build, modhost check, and a request served (scripts/sdk-smoke).
check "a scaffolded module builds, tests, installs, checks and serves from modhost-dev" \
  "$src/scripts/sdk-smoke" /usr
rm -f /usr/lib/modhost/modules/notes.so

# --- The unit --------------------------------------------------------------------------------
check "systemd-analyze verify passes on the unit" systemd-analyze verify "$unit"
for want in User=modhost NoNewPrivileges=yes ProtectSystem=strict ProtectHome=yes \
            PrivateTmp=yes CapabilityBoundingSet=CAP_NET_BIND_SERVICE \
            AmbientCapabilities=CAP_NET_BIND_SERVICE Restart=on-failure StateDirectory=modhost \
            LogsDirectory=modhost RuntimeDirectory=modhost \
            "ExecReload=/usr/bin/modhost reload -c $conf"; do
  check "the unit has $want" grep -qx "$want" "$unit"
done
check "the logrotate snippet parses" logrotate -d /etc/logrotate.d/modhost

# --- The server, as the unit runs it -----------------------------------------------------------
install -d -o modhost -g modhost -m 0755 /run/modhost # RuntimeDirectory=modhost
unit_cmd ExecStartPre
check "ExecStartPre (modhost check) passes as modhost" as_unit_user "${cmd[@]}"
check "the store file the check created is modhost's" \
  test "$(stat -c %U /var/lib/modhost/kv.db)" = modhost

unit_cmd ExecStart
say "starting: ${cmd[*]} (as modhost; listening on a free loopback port)"
chmod 0777 "$work" # the server, running as modhost, writes its port file there
# setpriv execs the server, so $! is the server's pid (as_unit_user, a function, would fork).
setpriv --reuid="$(unit_value User)" --regid="$(unit_value Group)" --init-groups \
  --no-new-privs --bounding-set=-all,+net_bind_service -- \
  "${cmd[@]}" --listen 127.0.0.1:0 --port-file "$work/port" >"$work/server.log" 2>&1 </dev/null &
server_pid=$!
port=
for _ in $(seq 1 600); do # up to 30 s
  if [ -s "$work/port" ]; then port=$(cat "$work/port"); break; fi
  kill -0 "$server_pid" 2>/dev/null || die "the server exited at start"
  sleep 0.05
done
[ -n "$port" ] || die "the server wrote no port file within 30 s"

server_uid=$(awk '/^Uid:/ {print $2}' "/proc/$server_pid/status")
check "the server runs as modhost" test "$server_uid" = "$(id -u modhost)"
check "PUT /kv/greeting stores a value" test "$(http PUT /kv/greeting '{"n":1}' | cut -d' ' -f1)" = 201
check "GET /kv/greeting reads it back" test "$(http GET /kv/greeting)" = '200 {"n":1}'
check "GET /hello/deb answers" test "$(http GET /hello/deb | cut -d' ' -f1)" = 200
check "the pid file names the server" test "$(cat /run/modhost/modhost.pid)" = "$server_pid"

# An operator enables a module as root; the unit's ExecReload (as modhost) serves it.
check "modhost enable echo (as root)" modhost enable echo
check "the store file is still modhost's after root's check" \
  test "$(stat -c %U /var/lib/modhost/kv.db)" = modhost
unit_cmd ExecReload
check "ExecReload (a checked reload) as modhost" as_unit_user "${cmd[@]}"
check "POST /echo answers after the reload" test "$(http POST /echo ping)" = "200 ping"
check "the key survived the reload" test "$(http GET /kv/greeting)" = '200 {"n":1}'
check "modhost disable echo (as root)" modhost disable echo

kill -TERM "$server_pid"
status=0
wait "$server_pid" || status=$?
server_pid=
check "the server stops on SIGTERM with status 0" test "$status" -eq 0

# --- An upgrade (here a reinstall) keeps the operator's edits and choices ---------------------
echo "# edited by the operator" >>$conf/00-server.conf
check "modhost disable hello (as root)" modhost disable hello
dpkg -i "$build"/modhost_*.deb >/dev/null
check "a reinstall keeps an edited conffile" grep -qx "# edited by the operator" $conf/00-server.conf
check "a reinstall does not enable a disabled module again" test ! -e $conf/50-hello.conf
check "a reinstall keeps the enabled modules" test -L $conf/50-kv.conf

# --- Remove keeps the data, purge deletes it ---------------------------------------------------
dpkg -r modhost-dev modhost >/dev/null
check "remove keeps the store" test -f /var/lib/modhost/kv.db
check "remove keeps the configuration" test -f $conf/00-server.conf
check "remove keeps the user" getent passwd modhost
dpkg --purge modhost >/dev/null
check "purge deletes /var/lib/modhost" test ! -e /var/lib/modhost
check "purge deletes /var/log/modhost" test ! -e /var/log/modhost
check "purge deletes /etc/modhost" test ! -e /etc/modhost
if installed; then fail "purge leaves no package"; else say "ok: purge leaves no package"; fi

if [ "$failures" -ne 0 ]; then
  echo "test_deb: $failures check(s) failed" >&2
  exit 1
fi
say "all checks passed"
