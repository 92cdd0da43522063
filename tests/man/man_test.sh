#!/bin/sh
# The man pages (man/*.1) against the `mpt` they describe: every subcommand `mpt --help` lists has
# a page, every long option `mpt SUB --help` lists is an item of that page's OPTIONS, every page
# has the sections an operator looks for, and groff renders every page with no warning.
#   man_test.sh MPT MAN_DIR
set -eu
mpt=$1 dir=$2
work=$(mktemp -d /tmp/mpt-man-test.XXXXXX)
trap 'rm -rf "$work"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# The OPTIONS section of a page with roff's \- as -, one line per source line.
options_of() {  # options_of PAGE
  sed -n '/^\.SH OPTIONS/,/^\.SH /p' "$1" | sed 's/\\-/-/g'
}
# Long options as CLI11 prints them: an option line starts with two spaces then the flag(s);
# descriptions continue further right.
long_options() {  # long_options HELP-TEXT-FILE
  sed -nE 's/^  (-[A-Za-z0-9],)?(--[A-Za-z0-9][A-Za-z0-9_-]*).*/\2/p' "$1"
}

"$mpt" --help >"$work/help"
subs=$(sed -n '/^Subcommands:/,$p' "$work/help" | sed -nE 's/^  ([a-z][a-z0-9-]*) .*/\1/p')
[ -n "$subs" ] || { echo "FAIL: no subcommand found in 'mpt --help'"; exit 1; }
echo "subcommands:" $subs

for page in mpt $(for s in $subs; do echo "mpt-$s"; done); do
  f=$dir/$page.1
  [ -f "$f" ] || { fail "$page: no man page $f"; continue; }
  for section in NAME SYNOPSIS DESCRIPTION OPTIONS "EXIT STATUS" EXAMPLES "SEE ALSO"; do
    grep -q "^\.SH \"*$section\"*\$" "$f" || fail "$page: no $section section"
  done
done

for s in $subs; do
  f=$dir/mpt-$s.1
  [ -f "$f" ] || continue
  "$mpt" "$s" --help >"$work/help.$s"
  opts=$(long_options "$work/help.$s")
  [ -n "$opts" ] || fail "mpt $s --help lists no long option (not even --help)"
  options_of "$f" >"$work/options.$s"
  n=0
  for o in $opts; do
    n=$((n + 1))
    # An item head of OPTIONS (.TP then a line naming it), the name ending where the option ends.
    grep -Eq -- "^\.[A-Z]+ (.* )?\"?$o([^A-Za-z0-9_-]|\$)" "$work/options.$s" ||
      fail "mpt-$s.1: OPTIONS does not describe $o (listed by 'mpt $s --help')"
  done
  echo "mpt-$s.1: $n long options checked"
  grep -q "mpt-$s (1)\|mpt\\\\-$s (1)" "$dir/mpt.1" || fail "mpt.1 does not refer to mpt-$s(1)"
done

# Every page renders with no warning, by groff and by man (which runs the preprocessors too).
for f in "$dir"/*.1; do
  groff -man -ww -z "$f" 2>"$work/groff.err" || fail "$(basename "$f"): groff failed"
  [ -s "$work/groff.err" ] && fail "$(basename "$f"): groff warns: $(cat "$work/groff.err")"
  MANWIDTH=80 man --warnings -l "$f" >"$work/rendered" 2>"$work/man.err" ||
    fail "$(basename "$f"): man -l failed"
  [ -s "$work/man.err" ] && fail "$(basename "$f"): man warns: $(cat "$work/man.err")"
  [ -s "$work/rendered" ] || fail "$(basename "$f"): renders empty"
done

if [ "$failures" -ne 0 ]; then
  echo "$failures failure(s)"
  exit 1
fi
echo "PASS"
