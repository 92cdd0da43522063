#!/bin/sh
# Installs mpthrottle into a temporary prefix, then builds examples/consumer against it twice
# (find_package and pkg-config) and runs what it built, builds and runs the C example with
# pkg-config flags, and runs the Python ctypes example.
#   install_test.sh BUILD_DIR SOURCE_DIR LIBDIR
set -eu
build=$1 src=$2 libdir=$3
work=$(mktemp -d /tmp/mpt-install-test.XXXXXX)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix
export MPT_SHM_DIR=$work/shm
mkdir -p "$MPT_SHM_DIR"

cmake --install "$build" --prefix "$prefix" >/dev/null
for f in include/mpt/throttle.hpp include/mpt/mpt.h "$libdir/libmpthrottle.so" \
         "$libdir/libmpthrottle.a" "$libdir/cmake/mpthrottle/mpthrottleConfig.cmake" \
         "$libdir/cmake/mpthrottle/mpthrottleConfigVersion.cmake" "$libdir/pkgconfig/mpthrottle.pc" \
         bin/mpt; do
  test -e "$prefix/$f" || { echo "FAIL: $f not installed"; exit 1; }
done
# The installed mpt finds the installed library by its RPATH.
env -u LD_LIBRARY_PATH "$prefix/bin/mpt" ls --json | grep -q '"schema": 1' || { echo "FAIL: installed mpt"; exit 1; }
# The benchmark programs (when the build has them: MPT_BENCH) are installed in lib/mpthrottle and
# run from there by their RUNPATH.
if [ -e "$build/bench/mpt_scenario" ]; then
  env -u LD_LIBRARY_PATH "$prefix/lib/mpthrottle/mpt_scenario" --rate 100 --workers 1 --seconds 0.1 \
      --probe off --json | grep -q '"schema": 2' || { echo "FAIL: installed mpt_scenario"; exit 1; }
  env -u LD_LIBRARY_PATH "$prefix/lib/mpthrottle/bm_probe_none" --benchmark_list_tests >/dev/null \
      || { echo "FAIL: installed bm_probe_none"; exit 1; }
  test -e "$prefix/lib/mpthrottle/peers/mp_throttle_peer.py" || { echo "FAIL: peers not installed"; exit 1; }
fi

echo "== find_package"
cmake -S "$src/examples/consumer" -B "$work/fp" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$work/fp" >/dev/null
LD_LIBRARY_PATH="$prefix/$libdir" "$work/fp/consumer"
LD_LIBRARY_PATH="$prefix/$libdir" "$work/fp/consumer_c"
"$work/fp/consumer_static"

echo "== pkg-config"
export PKG_CONFIG_PATH="$prefix/$libdir/pkgconfig"
test "$(pkg-config --modversion mpthrottle)" = "$(grep -m1 '^Version:' "$PKG_CONFIG_PATH/mpthrottle.pc" | cut -d' ' -f2)"
cmake -S "$src/examples/consumer" -B "$work/pc" -DCONSUMER_USE_PKGCONFIG=ON >/dev/null
cmake --build "$work/pc" >/dev/null
LD_LIBRARY_PATH="$prefix/$libdir" "$work/pc/consumer"
LD_LIBRARY_PATH="$prefix/$libdir" "$work/pc/consumer_c"

echo "== C example"
# shellcheck disable=SC2046
cc -std=c11 -Wall -Wextra -Werror -o "$work/throttle_c" "$src/examples/c/throttle.c" \
  $(pkg-config --cflags --libs mpthrottle)
LD_LIBRARY_PATH="$prefix/$libdir" "$work/throttle_c" 10 2 >"$work/c.out"
cat "$work/c.out"
total=$(sed -n 's/^Total: //p' "$work/c.out")
test "$total" -ge 18 && test "$total" -le 22 || { echo "FAIL: C example total $total"; exit 1; }

if command -v python3 >/dev/null 2>&1; then
  echo "== Python ctypes example"
  MPT_LIB="$prefix/$libdir/libmpthrottle.so" python3 "$src/examples/python/throttle_ctypes.py" 10 2 >"$work/py.out"
  cat "$work/py.out"
  total=$(sed -n 's/^Total: //p' "$work/py.out")
  test "$total" -ge 18 && test "$total" -le 22 || { echo "FAIL: Python example total $total"; exit 1; }
fi
# The Python module (MPT_PYTHON): in the directory the configured prefix's Python searches, and
# working from the temporary prefix.
cache=$build/CMakeCache.txt
if grep -q '^MPT_PYTHON:BOOL=ON' "$cache"; then
  echo "== Python module"
  pydir=$(sed -n 's/^MPT_PYTHON_INSTALL_DIR:[A-Z]*=//p' "$cache")
  py=$(sed -n 's/^Python3_EXECUTABLE:[A-Z]*=//p' "$cache")
  configured=$(sed -n 's/^CMAKE_INSTALL_PREFIX:[A-Z]*=//p' "$cache")
  case $pydir in /*) echo "MPT_PYTHON_INSTALL_DIR is absolute: not checked"; echo "PASS"; exit 0;; esac
  for f in __init__.py _mpthrottle.pyi py.typed; do
    test -e "$prefix/$pydir/mpthrottle/$f" || { echo "FAIL: $pydir/mpthrottle/$f not installed"; exit 1; }
  done
  ls "$prefix/$pydir/mpthrottle"/_mpthrottle*.so >/dev/null || { echo "FAIL: no extension"; exit 1; }
  "$py" -c "import sys; sys.exit('$configured/$pydir' not in sys.path)" ||
    { echo "FAIL: $py does not search $configured/$pydir"; exit 1; }
  env -u LD_LIBRARY_PATH PYTHONPATH="$prefix/$pydir" "$py" -c "
import mpthrottle
assert mpthrottle.__file__.startswith('$prefix/'), mpthrottle.__file__
t = mpthrottle.Throttle(1000, 1)
t.start()
n = sum(t.await_fuel(5) for _ in range(10))
print('Total:', t.stop()[1])
assert n == 10
" || { echo "FAIL: the installed Python module"; exit 1; }
fi
echo "PASS"
