#!/usr/bin/env bash
# The Debian package, installed for real: checks the .deb (name, Depends against the libraries its
# programs link, contents), snapshots the file system, installs it with apt-get, runs what it
# installed from outside the source tree with a clean environment (mpt, the Python module, C++
# programs built against the installed headers with pkg-config and with find_package, the man
# pages, the enabled unit, a benchmark program), removes it and checks that nothing is left but
# the calibration file, then purges it and checks that the calibration file went too (a
# calibration file that was there before is put back).
#   package_test.sh DEB      (root; exit 77 with the reason when not root)
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
[[ $# -eq 1 && -f $1 ]] || { echo "usage: package_test.sh DEB (a file)" >&2; exit 2; }
deb=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
if [[ $(id -u) -ne 0 ]]; then
  echo "package_test: not root: installing a package needs root (run it as root, as CI does)"
  exit 77
fi
status=$(dpkg-query -W -f='${Status}' mpthrottle 2>/dev/null || true)
case $status in
  "" | *not-installed | "deinstall ok config-files") ;;
  *) echo "FAIL: mpthrottle is already installed here ($status), not by this test; it is not" \
       "touched. Remove it (apt-get remove mpthrottle) to run this test." >&2
     exit 1 ;;
esac

work=$(mktemp -d /tmp/mpt-package-test.XXXXXX)
installed=0
cleanup() {
  if [[ $installed -eq 1 ]]; then
    echo "package_test: removing the package after a failure"
    DEBIAN_FRONTEND=noninteractive apt-get remove -y -q mpthrottle >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
calib=/var/lib/mpthrottle/calibration.json
apt_get() { DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -y -q "$@"; }

# The installed programs run from an empty directory outside the tree, with nothing in the
# environment but a PATH, a HOME, their own segment directory and no calibration file.
mkdir -p "$work/run" "$work/home" "$work/shm"
clean() {
  (cd "$work/run" && env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$work/home" \
     MPT_SHM_DIR="$work/shm" MPT_CALIBRATION="$work/no-calibration.json" "$@")
}

# --- The .deb itself -------------------------------------------------------------------------
field() { dpkg-deb -f "$deb" "$1"; }
check_name() {
  local want
  want=mpthrottle_$(field Version)_$(field Architecture).deb
  [[ $(field Package) == mpthrottle ]] || fail "Package is '$(field Package)'"
  [[ $(basename "$deb") == "$want" ]] || fail "file name $(basename "$deb"), expected $want"
  [[ $(field Architecture) == $(dpkg --print-architecture) ]] ||
    fail "Architecture $(field Architecture) is not this host's $(dpkg --print-architecture)"
  [[ $(field Version) == "$(sed -nE 's/^project\(mpthrottle VERSION ([0-9.]+).*/\1/p' \
        "$src/CMakeLists.txt")" ]] || fail "Version $(field Version) is not project()'s"
}

# The package that provides a shared library (soname) on this host.
package_of_soname() {
  local path p
  path=$(ldconfig -p | awk -v so="$1" '$1 == so && /x86-64|AArch64|64bit/ {print $NF; exit}')
  [[ -n $path ]] || path=$(ldconfig -p | awk -v so="$1" '$1 == so {print $NF; exit}')
  [[ -n $path ]] || return 1
  for p in "$path" "$(readlink -f "$path")" "/usr$path" "${path#/usr}"; do
    dpkg -S "$p" 2>/dev/null | sed -n '1s/:.*//p' | grep . && return 0
  done
  return 1
}

# Every library an ELF file of the package needs comes from a package named in Depends (or from
# this package: libmpthrottle.so.0).
check_depends() {
  local depends needed names so pkg own
  depends=$(field Depends)
  echo "Depends: $depends"
  own=$(find "$work/deb" -name 'lib*.so*' -printf '%f\n' | sort -u)
  needed=$(find "$work/deb" -type f -exec sh -c \
             'for f; do if readelf -h "$f" >/dev/null 2>&1; then printf "%s\0" "$f"; fi; done' sh {} + |
             xargs -0 -r objdump -p 2>/dev/null | awk '$1 == "NEEDED" {print $2}' | sort -u)
  names=$(tr ',|' '\n\n' <<<"$depends" | sed 's/(.*//; s/ //g' | grep .)
  [[ -n $needed ]] || fail "no ELF file of the package needs a shared library (objdump found none)"
  for so in $needed; do
    grep -qx "$so" <<<"$own" && continue
    pkg=$(package_of_soname "$so") || { fail "$so: no package on this host provides it"; continue; }
    if grep -qxF "$pkg" <<<"$names"; then
      echo "  $so: $pkg, in Depends"
    else
      fail "$so (package $pkg) is needed but Depends does not name $pkg"
    fi
  done
}

check_contents() {
  local multiarch f s subs
  multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
  for f in usr/bin/mpt "usr/lib/$multiarch/libmpthrottle.so" "usr/lib/$multiarch/libmpthrottle.so.0" \
           "usr/lib/$multiarch/libmpthrottle.a" usr/include/mpt/throttle.hpp usr/include/mpt/mpt.h \
           "usr/lib/$multiarch/cmake/mpthrottle/mpthrottleConfig.cmake" \
           "usr/lib/$multiarch/cmake/mpthrottle/mpthrottleConfigVersion.cmake" \
           "usr/lib/$multiarch/pkgconfig/mpthrottle.pc" \
           usr/lib/python3/dist-packages/mpthrottle/__init__.py \
           usr/share/doc/mpthrottle/copyright usr/share/doc/mpthrottle/changelog.gz \
           usr/share/doc/mpthrottle/README.md usr/share/doc/mpthrottle/docs/cli.md \
           usr/share/doc/mpthrottle/docs/install.md usr/share/man/man1/mpt.1.gz \
           lib/systemd/system/mpthrottle-calibrate.service; do
    [[ -e $work/deb/$f ]] || fail "the package lacks /$f"
  done
  compgen -G "$work/deb/usr/lib/python3/dist-packages/mpthrottle/_mpthrottle.cpython-*.so" >/dev/null ||
    fail "the package lacks the Python extension _mpthrottle"
  [[ -z $(find "$work/deb" -name __pycache__ -o -name '*.pyc') ]] || fail "the package holds byte code"
  s=$(find "$work/deb" -mindepth 1 -maxdepth 1 -printf '%f\n' | sort | tr '\n' ' ')
  [[ $s == "lib usr " ]] || fail "the package's top directories are '$s', expected 'lib usr'"
  # A page for every subcommand of the packaged mpt (which finds its library by its RPATH).
  subs=$("$work/deb/usr/bin/mpt" --help | sed -n '/^Subcommands:/,$p' | sed -nE 's/^  ([a-z-]+) .*/\1/p')
  for s in $subs; do
    [[ -e $work/deb/usr/share/man/man1/mpt-$s.1.gz ]] || fail "no man page mpt-$s.1.gz"
  done
  # Stripped, the library still carries its USDT probes (what mpt probe attaches to).
  readelf -n "$work/deb/usr/lib/$multiarch/libmpthrottle.so.0" | grep -q 'Provider: mpthrottle' ||
    fail "libmpthrottle.so.0 has lost its USDT notes (mpthrottle:emit)"
}

# --- The file system around the install --------------------------------------------------------
snapshot() {  # snapshot FILE: every path (with its type) outside the places that change anyway
  find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp \
    -o -path /var/tmp -o -path /var/lib/dpkg -o -path /var/lib/apt -o -path /var/cache \
    -o -path /var/log -o -path /work -o -path /root -o -path /home \) -prune \
    -o -printf '%y %p\n' | LC_ALL=C sort >"$1"
}

check_installed() {
  local v out
  [[ $(clean sh -c 'command -v mpt') == /usr/bin/mpt ]] || fail "mpt on PATH is not /usr/bin/mpt"
  v=$(clean mpt --version) || fail "mpt --version failed"
  [[ $v == *"$(field Version)"* ]] || fail "mpt --version says '$v', not $(field Version)"
  out=$(clean mpt run --rate 200 --workers 2 --seconds 0.5 --json) || fail "mpt run failed: $out"
  clean python3 -c 'import json, sys
d = json.loads(sys.argv[1])
assert d["summary"]["total"] > 0 and d["workers_exited_cleanly"] == 2, d' "$out" ||
    fail "mpt run's JSON: $out"
  clean python3 -c '
import mpthrottle
assert mpthrottle.__file__.startswith("/usr/lib/python3/dist-packages/mpthrottle/"), mpthrottle.__file__
t = mpthrottle.Throttle(1000, 1)
t.start()
n = sum(t.await_fuel(5) for _ in range(10))
assert n == 10 and t.stop()[1] >= 10
print("python3: import mpthrottle from", mpthrottle.__file__)' || fail "the installed Python module"
  check_consumers
  for page in mpt $(clean mpt --help | sed -n '/^Subcommands:/,$p' | sed -nE 's/^  ([a-z-]+) .*/mpt-\1/p'); do
    clean man -w "$page" >/dev/null 2>&1 || fail "man -w $page finds no page"
  done
  check_unit
  check_bench_programs
}

# C++ programs built against the installed headers: pkg-config by hand, then examples/consumer
# with find_package and with pkg-config; each run with no LD_LIBRARY_PATH.
check_consumers() {
  local c=$src/examples/consumer
  if clean sh -c "c++ -std=c++20 -o '$work/run/pc_consumer' '$c/consumer.cpp' \$(pkg-config --cflags --libs mpthrottle)"; then
    clean "$work/run/pc_consumer" || fail "the pkg-config consumer failed"
  else
    fail "cannot build a consumer with pkg-config --cflags --libs mpthrottle"
  fi
  if clean cmake -S "$c" -B "$work/fp" >/dev/null && clean cmake --build "$work/fp" >/dev/null; then
    if ! { clean "$work/fp/consumer" && clean "$work/fp/consumer_c" &&
           clean "$work/fp/consumer_static"; }; then
      fail "a find_package consumer failed"
    fi
  else
    fail "cannot build examples/consumer with find_package(mpthrottle)"
  fi
  if clean cmake -S "$c" -B "$work/pc" -DCONSUMER_USE_PKGCONFIG=ON >/dev/null &&
     clean cmake --build "$work/pc" >/dev/null; then
    clean "$work/pc/consumer" || fail "the CMake pkg-config consumer failed"
  else
    fail "cannot build examples/consumer with pkg-config (CONSUMER_USE_PKGCONFIG)"
  fi
}

check_unit() {
  local unit=mpthrottle-calibrate.service link flag help
  link=/etc/systemd/system/multi-user.target.wants/$unit
  [[ -f /lib/systemd/system/$unit ]] || fail "/lib/systemd/system/$unit is not installed"
  [[ $(readlink "$link") == /lib/systemd/system/$unit ]] || fail "$unit is not enabled ($link)"
  # (deb-systemd-helper answers only maintainer scripts: it is told it is one.)
  DPKG_MAINTSCRIPT_PACKAGE=mpthrottle deb-systemd-helper --quiet is-enabled "$unit" ||
    fail "deb-systemd-helper: $unit not enabled"
  # Every flag the unit gives mpt calibrate is one the installed mpt knows.
  help=$(clean mpt calibrate --help)
  for flag in $(sed -n 's/^ExecStart=\/usr\/bin\/mpt calibrate //p' "/lib/systemd/system/$unit"); do
    grep -Eq -- "^  $flag( |\$)" <<<"$help" ||
      fail "the unit runs 'mpt calibrate $flag', which 'mpt calibrate --help' does not list"
  done
}

check_bench_programs() {
  local p
  [[ -d /usr/lib/mpthrottle ]] || { fail "no /usr/lib/mpthrottle (the benchmark programs)"; return; }
  for p in bm_throttle bm_probe_none bm_queue mpt_scenario mpt_pipeline_bench; do
    [[ -x /usr/lib/mpthrottle/$p ]] || { fail "/usr/lib/mpthrottle/$p is missing"; continue; }
  done
  for p in /usr/lib/mpthrottle/bm_* /usr/lib/mpthrottle/mpt_*; do
    clean "$p" --help >/dev/null || fail "$p --help failed"
  done
  echo "benchmark programs: each of /usr/lib/mpthrottle/{bm,mpt}_* ran --help"
}

# What remove (then purge) left, against the snapshot; FILE lists what may remain.
check_left() {  # check_left WHEN [TYPE_PATH...]: TYPE_PATH may be new (f_/a/file, d_/a/dir)
  snapshot "$work/after"
  LC_ALL=C comm -3 "$work/before" "$work/after" | sed 's/^\t/+ /; t; s/^/- /' >"$work/diff"
  grep -vxF -f <(printf '%s\n' "${@:2}" | sed 's/^/+ /; s/_/ /') "$work/diff" >"$work/left" || true
  if [[ -s $work/left ]]; then
    fail "after $1 the file system differs from before the install (+ new, - gone):"
    cat "$work/left"
  else
    echo "after $1: nothing left but what may stay ($(wc -l <"$work/diff") path(s))"
  fi
}

echo "== the package: $deb"
mkdir -p "$work/deb"
dpkg-deb -x "$deb" "$work/deb"
check_name
check_depends
check_contents
echo "Installed-Size: $(field Installed-Size) KiB; .deb: $(stat -c %s "$deb") bytes"

echo "== snapshot, install"
had_calib=0
if [[ -e $calib ]]; then had_calib=1; cp -p "$calib" "$work/calibration.json.saved"; fi
snapshot "$work/before"
installed=1
apt_get install "$deb" >"$work/apt.log" 2>&1 || { cat "$work/apt.log"; fail "apt-get install failed"; exit 1; }
echo "installed $(dpkg-query -W -f='${Package} ${Version}' mpthrottle)"

echo "== run what was installed"
check_installed

echo "== remove"
apt_get remove mpthrottle >"$work/apt.log" 2>&1 || { cat "$work/apt.log"; fail "apt-get remove failed"; exit 1; }
installed=0
allowed=()
[[ -e $calib ]] && allowed+=("f_$calib")
[[ -e $calib && $had_calib -eq 0 ]] && allowed+=("d_/var/lib/mpthrottle")
check_left remove "${allowed[@]}"

echo "== purge"
apt_get purge mpthrottle >"$work/apt.log" 2>&1 || { cat "$work/apt.log"; fail "apt-get purge failed"; }
[[ ! -e /var/lib/mpthrottle ]] || fail "purge left /var/lib/mpthrottle"
if dpkg-query -W -f='${Status}\n' mpthrottle 2>/dev/null | grep -qv not-installed; then
  fail "dpkg still knows mpthrottle after purge"
fi
if [[ $had_calib -eq 1 ]]; then  # the host's own calibration, put back
  mkdir -p /var/lib/mpthrottle
  cp -p "$work/calibration.json.saved" "$calib"
fi
check_left purge

if [[ $failures -ne 0 ]]; then
  echo "$failures failure(s)"
  exit 1
fi
echo "PASS"
