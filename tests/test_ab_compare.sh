#!/bin/sh
# test_ab_compare.sh - bench/ab_compare.py on two stand-in benchmarks (shell scripts that
# print the JSON lines the real ones print, with known figures): the verdicts of a faster,
# a slower and an identical build, the alternating order, and a bad argument's message.
#
# Without python3 the test is SKIPPED and counts as 0 passed, 0 failed. Run alone:
# sh tests/test_ab_compare.sh
here=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$(command -v python3 2>/dev/null)}
if [ -z "$python" ]; then
  echo "SKIP test_ab_compare: python3 is not on PATH (counted as 0 passed, 0 failed)"
  echo "# RESULT 0 0"
  exit 0
fi
dir=$(mktemp -d) || exit 1
trap 'rm -rf "$dir"' EXIT
passed=0
failed=0
check() { # name, command's output, expected fixed string
  if printf '%s\n' "$2" | grep -F -q -- "$3"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL test_ab_compare: $1: no \"$3\" in:"
    printf '%s\n' "$2"
  fi
}
# bench NAME MS IMG_S RSS_MB: prints a kernel record and a training record, logs its name
bench() {
  cat >"$dir/$1" <<EOF
#!/bin/sh
echo $1 >>"$dir/order"
echo '# a comment line the script skips'
echo '{"kernel": "pw_16to96_36", "threads": 1, "mode": "fwd", "median_ms": $2, "gflops": 1.0}'
echo '{"bench": "train", "net": "MBV2-9", "threads": 2, "train_img_s": $3, "peak_rss_mb": $4}'
EOF
  chmod +x "$dir/$1"
}
bench base 2.0 100.0 400.0
bench fast 1.0 150.0 300.0
bench slow 3.0 50.0 500.0
ab() { "$python" "$here/bench/ab_compare.py" "$@" 2>&1; }

out=$(ab --a "$dir/base" --b "$dir/fast" --rounds 8 -- --threads 1)
check "faster kernel" "$out" "pw_16to96_36 fwd t1	median_ms	2	1	0.500	0.500-0.500	8/8	0.008	B better"
check "faster training" "$out" "train MBV2-9 t2	train_img_s	100	150	1.500	1.500-1.500	8/8	0.008	B better"
check "less memory" "$out" "train MBV2-9 t2	peak_rss_mb	400	300	0.750	0.750-0.750	8/8	0.008	B better"
check "rounds alternate A B, B A" "$(tr '\n' ' ' <"$dir/order")" \
  "base fast fast base base fast fast base base fast fast base base fast fast base"
out=$(ab --a "$dir/base" --b "$dir/slow" --rounds 8 --markdown -- --threads 1)
check "slower, markdown" "$out" "| pw_16to96_36 fwd t1 | median_ms | 2 | 3 | 1.500 | 1.500-1.500 | 0/8 | 0.008 | B worse |"
out=$(ab --a "$dir/base" --b "$dir/base" --rounds 4 --field train_img_s -- --threads 1)
check "identical builds" "$out" "train MBV2-9 t2	train_img_s	100	100	1.000	1.000-1.000	0/4	1.000	no difference"
if printf '%s\n' "$out" | grep -q median_ms; then
  failed=$((failed + 1))
  echo "FAIL test_ab_compare: --field train_img_s still compared median_ms"
else
  passed=$((passed + 1))
fi
# 3 wins of 3 cannot reach p <= 0.05 (p = 0.25): too few rounds say no difference
out=$(ab --a "$dir/base" --b "$dir/fast" --rounds 3 -- --threads 1)
check "too few rounds" "$out" "3/3	0.250	no difference"
out=$(ab --a "$dir/base" --b "$dir/fast" --rounds 0)
check "bad --rounds" "$out" "--rounds must be at least 1"
out=$(ab --a "$dir/base" --b "$dir/missing" --rounds 1)
check "missing binary" "$out" "ab_compare.py: cannot run $dir/missing: No such file or directory"
printf '#!/bin/sh\necho no json here\n' >"$dir/nojson" && chmod +x "$dir/nojson"
out=$(ab --a "$dir/nojson" --b "$dir/base" --rounds 1)
check "no JSON" "$out" "printed no JSON record (does it take --json?)"
printf '#!/bin/sh\necho broken >&2\nexit 3\n' >"$dir/broken" && chmod +x "$dir/broken"
out=$(ab --a "$dir/base" --b "$dir/broken" --rounds 1)
check "failing benchmark" "$out" "exited with status 3: broken"
echo "# RESULT $passed $failed"
[ "$failed" -eq 0 ]
