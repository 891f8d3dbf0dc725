#!/usr/bin/env bash
# Runs test suites and prints one closing line "N passed, N failed".
#   unit  — cmocka unit tests (build/)
#   fuzz  — libFuzzer corpus replays (build/)
#   asan  — unit tests and corpus replays built with ASan+UBSan (build-asan/)
#   lab   — end-to-end tests in network namespaces (tests/lab/*.sh), when present
set -u
cd "$(dirname "$0")/.."
passed=0; failed=0; failures=()
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# run_cmocka BIN: adds the binary's test counts (cmocka prints them) to the totals.
run_cmocka() {
  local bin=$1 out rc p f
  out=$("$bin" 2>&1); rc=$?
  printf '%s\n' "$out" | grep -E '^\[ *(RUN|  OK|FAILED|PASSED|ERROR|==========) ' | grep -vE '^\[ *(RUN|       OK) ' | sed "s|^|  $(basename "$bin"): |"
  p=$(printf '%s\n' "$out" | sed -nE 's/^\[  PASSED  \] ([0-9]+) test.*/\1/p' | awk '{s+=$1} END {print s+0}')
  f=$(printf '%s\n' "$out" | sed -nE 's/^\[  FAILED  \] ([0-9]+) test.*/\1/p' | awk '{s+=$1} END {print s+0}')
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    f=1; printf '%s\n' "$out" | tail -30
  elif [ "$f" -ne 0 ]; then
    printf '%s\n' "$out" | grep -E '^\[  (FAILED|ERROR) |Assert|error' | head -40
  fi
  passed=$((passed + p)); failed=$((failed + f))
  [ "$f" -eq 0 ] || failures+=("$bin")
}

# run_replay BIN DIR: replays a fuzz corpus; one test per target.
run_replay() {
  local bin=$1 dir=$2 out
  if out=$("$bin" "$dir" 2>&1); then
    passed=$((passed + 1)); echo "  replay $(basename "$bin"): $(printf '%s' "$out" | tail -1)"
  else
    failed=$((failed + 1)); failures+=("$bin $dir"); printf '%s\n' "$out" | tail -30
  fi
}

suite_unit() {
  local b=${1:-build}
  for t in "$b"/tests/*/test_*; do [ -x "$t" ] && run_cmocka "$t"; done
}
suite_fuzz() {
  local b=${1:-build} bin tgt
  for bin in "$b"/fuzz-replay/*/fuzz_*; do
    [ -x "$bin" ] || continue
    tgt=$(basename "$(dirname "$bin")")
    run_replay "$bin" "fuzz/$tgt/corpus"
  done
}
# suite_lab: every tests/lab/test_*.sh, each bounded in time. A lab script prints one line per
# check ("ok - NAME", "not ok - NAME: why", "ok - NAME # SKIP why"); the checks are what is
# counted (skips count as neither). A script that fails without a "not ok" line counts as one
# failure, and its last lines are shown.
suite_lab() {
  local t out rc p f s t0
  if [ "$(id -u)" -ne 0 ]; then
    echo "== lab: needs root (network namespaces); not run"
    failed=$((failed + 1)); failures+=("lab (not root)")
    return
  fi
  for t in tests/lab/test_*.sh; do
    [ -f "$t" ] || continue
    echo "== lab: $t"
    t0=$SECONDS
    out=$(timeout -k 10 "${LAB_SCRIPT_TIMEOUT:-600}" bash "$t" 2>&1); rc=$?
    p=$(printf '%s\n' "$out" | grep -E '^ok - ' | grep -vcE '# SKIP')
    s=$(printf '%s\n' "$out" | grep -E '^ok - ' | grep -cE '# SKIP')
    f=$(printf '%s\n' "$out" | grep -cE '^not ok - ')
    printf '%s\n' "$out" | grep -E '^not ok - |# SKIP' | sed 's/^/  /'
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
      f=1
      echo "  $t exited with status $rc without a failed check; last lines:"
      printf '%s\n' "$out" | tail -15 | sed 's/^/    /'
    fi
    echo "  $(basename "$t"): $p passed, $f failed, $s skipped ($((SECONDS - t0)) s)"
    passed=$((passed + p)); failed=$((failed + f))
    [ "$f" -eq 0 ] || failures+=("$t")
  done
}

for s in "${@:-unit}"; do
  case "$s" in
    unit) echo "== unit tests"; suite_unit build ;;
    fuzz) echo "== fuzz corpus replay"; suite_fuzz build ;;
    asan) echo "== unit tests and corpus replay under ASan+UBSan"; suite_unit build-asan; suite_fuzz build-asan ;;
    lab)  suite_lab ;;
    *) echo "run-tests: unknown suite '$s' (unit, fuzz, asan, lab)" >&2; exit 2 ;;
  esac
done

if [ ${#failures[@]} -gt 0 ]; then
  echo "failed:"; printf '  %s\n' "${failures[@]}"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
