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
echo "PASS"
