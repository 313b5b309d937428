#!/bin/sh
# test_cli.sh - the mpnas command end to end (docs/CLI.md), on image folders made by
# tests/cli_fixture.c (PNG and JPEG of mixed sizes, a grey class, given and seeded test
# splits, an IDX domain) plus a corrupt PNG and a truncated JPEG made here:
#   help and usage errors, parameter names (against the Python package's, read from the library, when python3
#   is there), --set errors as the library words them, a whole search into a run folder,
#   eval (the same test split as the search), predict (class names), info, figures, train,
#   Ctrl-C during the search and SIGTERM during the training then --resume (the results
#   byte-identical to the uninterrupted run's), --skip-bad, bad-input exit codes.
#
# Prints "ok ..."/"FAIL ..." lines and "# RESULT passed failed" (tests/run.sh adds them
# up). SKIPPED (0 passed, 0 failed, a SKIP line says why) when the command was built
# without libpng or libjpeg. Run alone: sh tests/test_cli.sh after `make` and
# `make build/cc-omp/tests/cli_fixture` (BUILD defaults to build/cc-omp).
here=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-build/cc-omp}
case $build in /*) ;; *) build="$here/$build" ;; esac
mpnas="$build/cli/mpnas"
fixture="$build/tests/cli_fixture"
passed=0
failed=0

result() {
  echo "# RESULT $passed $failed"
  exit 0
}
if [ ! -x "$mpnas" ] || [ ! -x "$fixture" ]; then
  echo "FAIL test_cli: $mpnas or $fixture is missing (make test builds them)"
  failed=1
  result
fi
formats=$("$mpnas" --version | sed -n 's/^image formats: \([^;]*\).*/\1/p')
case $formats in
  *PNG*JPEG*) ;;
  *)
    echo "SKIP test_cli: this mpnas reads no PNG and JPEG ($formats): install libpng-dev and libjpeg-dev and rebuild (counted as 0 passed, 0 failed)"
    result
    ;;
esac

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp" || exit 1
"$fixture" data || { echo "FAIL test_cli: the fixture generator failed"; failed=1; result; }

ok() { passed=$((passed + 1)); echo "ok   $1"; }
bad() { failed=$((failed + 1)); echo "FAIL $1"; }
# check NAME CONDITION...: a condition (a command) that must hold.
check() {
  name=$1
  shift
  if "$@"; then ok "$name"; else bad "$name"; fi
}
# run WANT NAME ARGS...: mpnas ARGS, its stdout in out, stderr in err; the exit status
# must be WANT.
run() {
  want=$1 name=$2
  shift 2
  "$mpnas" "$@" >out 2>err
  got=$?
  if [ "$got" -eq "$want" ]; then
    ok "$name (exit $got)"
  else
    bad "$name: exit $got, $want expected; stderr:"
    sed 's/^/    /' err
  fi
}
has() { grep -q -- "$1" "$2"; }
tab=$(printf '\t')
cr=$(printf '\r')

# ---- Help, usage --------------------------------------------------------------------
for c in search train eval predict info figures params quantize; do
  run 0 "$c --help" "$c" --help
  check "$c --help prints its usage" has "usage: mpnas $c" out
done
run 1 "no command" 
run 1 "an unknown command" frobnicate
run 1 "an unknown option" search --frobnicate
run 1 "an option without its value" search --out
run 1 "search without --out" search --domain a=data/shapes

# ---- Parameters -----------------------------------------------------------------------
"$mpnas" params --names | sort >names.cli
# The Python package loads the build's shared library, which Python cannot load in a
# sanitizer build (the runtime must come first): compared in the other builds.
if nm "$mpnas" 2>/dev/null | grep -q __asan_init; then
  echo "(a sanitizer build: the names are compared with the Python package in the others)"
elif command -v python3 >/dev/null 2>&1; then
  # this build's library (lib/ holds whichever configuration was built last)
  MPNAS_LIBRARY="$here/${LIB_OUT:-lib}/libmpnas.so" python3 - "$here/python" >names.py <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
import mpnas
prefix = {"context": "context", "space": "space", "search": "search", "model": "train", "domain": "domain"}
for what in mpnas._HANDLE_KINDS:
    for name in mpnas.param_info(what):
        print("%s.%s" % (prefix[what], name))
PY
  sort -o names.py names.py
  check "the --set names are the Python package's (the library's)" cmp -s names.cli names.py
else
  echo "(python3 not found: the names are not compared with the Python package)"
fi
run 0 "params lists the defaults" params
check "params shows search.steps' default" has "search.steps  *integer 400" out
run 1 "an unknown --set" search --domain a=data/shapes --set bogus=1 --out r
check "  names it" has 'unknown parameter "bogus"' err
run 1 "an ambiguous --set" search --domain a=data/shapes --set steps=1 --out r
check "  says which" has "search.steps or train.steps" err
run 1 "a --set out of range" search --domain a=data/shapes --set search.steps=0 --out r
check "  shows the library's message" has "MPNAS_SEARCH_STEPS must be in 1..100000000, got 0" err
run 1 "a training --set out of range, before the search" search --domain a=data/shapes --set train.label_smoothing=2 --out r
run 1 "a --set of a read-only parameter" search --domain a=data/shapes --set train.params=3 --out r
run 1 "a bad enumeration value" search --domain a=data/shapes --set search.method=magic --out r
check "  lists the values" has "one of mpnas, independent, multi_head, single_path" err
check "a failed search leaves no run folder" test ! -e r

# ---- The whole pipeline ---------------------------------------------------------------
# 16x16 inputs and a narrow space keep a step short; 60 + 40 steps give a signal time
# to arrive before the end.
set -- --domain shapes=data/shapes --domain tones=data/tones --domain digits=data/digits \
  --steps 60 --train-steps 40 --threads 1 --seed 3 \
  --set space.input_height=16 --set space.input_width=16 --set space.stem_channels=8 \
  --set space.head_channels=64 --set search.train_batch=8 --set search.valid_batch=16 \
  --set train.batch=8 --set train.valid_every=4
start=$(date +%s)
run 0 "search (3 domains: class folders, train/test folders, IDX)" search "$@" --out runA --metrics m.jsonl
echo "    ($(($(date +%s) - start)) s)"
for f in run.conf search.ckpt model.mpnas classes.json search.jsonl train.jsonl architecture.svg jaccard.svg; do
  check "the run has $f" test -s "runA/$f"
done
check "the finished run has no training checkpoint" test ! -e runA/train.ckpt
check "no progress bar when stderr is not a terminal" sh -c "! grep -q '$cr' err"
check "the results table lists every domain" sh -c 'grep -q "^shapes " out && grep -q "^tones " out && grep -q "^digits " out'
check "classes.json has the folder names" has '"shapes": \["circle", "square", "stripes"\]' runA/classes.json
check "  and numbers for IDX" has '"digits": \["0", "1", "2"\]' runA/classes.json
check "metrics: 3 domains x 6 search reports, 3 x 4 training, 3 tests" test "$(wc -l <m.jsonl)" -eq 33
check "metrics lines have step, domain, loss, accuracy, weight" \
  has '"phase": "train", "step": 40, "total": 40, "domain": "digits", "loss": [0-9.e-]*, "accuracy": [0-9.e-]*, "weight": 1' m.jsonl
check "the run records its settings" has "set space.input_height=16" runA/run.conf
check "  with absolute domain paths" has "domain shapes=$tmp/data/shapes" runA/run.conf

run 0 "eval RUN (the run's domains)" eval runA
for d in shapes tones digits; do
  # The same images as the search's test split: the same top-1 as its metrics line.
  want=$(sed -n "s/.*\"phase\": \"test\", \"domain\": \"$d\".*\"top1\": \([0-9.e-]*\).*/\1/p" runA/train.jsonl |
    awk '{ printf "%.2f%%", 100 * $1 }')
  check "  $d: top-1 $want as in the search" sh -c "grep '^$d ' out | grep -q -- ' $want '"
done
idx_result=$(grep '^digits ' out | awk '{ print $3 "   " $4 }')
run 0 "eval of .npy arrays (the IDX digits saved by numpy's format)" eval runA --domain digits=data/digits_npy
check "  the same top-1 and loss as the IDX files ($idx_result)" sh -c "grep '^digits ' out | grep -q -- ' $idx_result'"
run 0 "eval MODEL --domain NAME=PATH" eval runA/model.mpnas --domain tones=data/tones
check "  one row" test "$(grep -c '%' out)" -eq 1
run 1 "eval of a domain the model lacks" eval runA --domain nope=data/tones

run 0 "predict (RGBA PNG, JPEG, grey 16-bit PNG, grey JPEG)" predict runA --domain tones \
  data/tones/test/red/100.png data/tones/test/blue/101.jpg data/tones/test/grey/100.png data/tones/test/grey/101.jpg
check "  one line per file" test "$(wc -l <out)" -eq 4
check "  class names and probabilities, top 3" \
  sh -c "grep -q '^data/tones/test/red/100.png$tab[a-z]* [01]\.[0-9]*$tab[a-z]* [01]\.[0-9]*$tab[a-z]* [01]\.[0-9]*\$' out"
check "  the names are the class folders'" sh -c "grep -q 'red' out && grep -q 'grey' out && grep -q 'blue' out"
run 0 "predict --top 1" predict runA --domain shapes --top 1 data/shapes/circle/000.png
check "  one class" sh -c "grep -q '^data/shapes/circle/000.png$tab[a-z]* [01]\.[0-9]*\$' out"
run 2 "predict of a file that is not an image" predict runA --domain shapes runA/run.conf
check "  names the file" has "runA/run.conf" err
run 2 "predict of a missing file" predict runA --domain shapes data/shapes/circle/nope.png
check "  says why" has "nope.png: cannot open (No such file or directory)" err
run 0 "predict of a folder and a file" predict runA --domain shapes data/shapes/circle data/shapes/square/000.png
check "  one line per file of the folder, in name order, then the file" sh -c \
  "cut -f1 out >got && (ls data/shapes/circle | sed 's|^|data/shapes/circle/|'; echo data/shapes/square/000.png) >want && cmp -s got want"
mkdir -p empty_folder
run 2 "predict of an empty folder" predict runA --domain shapes empty_folder
check "  says so" has "empty_folder: a folder without files" err
run 0 "predict --skip-bad" predict runA --domain shapes --skip-bad runA/run.conf data/shapes/circle/000.png
check "  skips it and counts it" sh -c "grep -q '1 bad file skipped' err && test \$(wc -l <out) -eq 1"
run 0 "predict of 16-bit and 8-bit grey PNGs of one picture (no gAMA chunk)" predict runA \
  --domain tones --top 1 data/png16/grey8.png data/png16/grey16.png
check "  the same class and probability (16-bit values are not taken as linear light)" \
  sh -c "test \"\$(cut -f2 out | sort -u | wc -l)\" -eq 1"
run 1 "predict with an unknown domain" predict runA --domain nope data/shapes/circle/000.png
run 2 "predict with a file that is not a model" predict runA/run.conf --domain shapes data/shapes/circle/000.png

# ---- int8 (docs/QUANTIZATION.md) ----------------------------------------------------------
run 0 "quantize RUN -o FILE (the run's domains)" quantize runA -o runA/model-int8.mpnas --calibration 32
check "  calibrates every domain" sh -c 'test "$(grep -c "calibrating on" out)" -eq 3'
run 0 "quantize --int8-only" quantize runA -o runA/model-int8only.mpnas --int8-only --calibration 32 --quiet
check "  the int8-only file is the smallest" sh -c \
  'test "$(wc -c <runA/model-int8only.mpnas)" -lt "$(wc -c <runA/model.mpnas)" && test "$(wc -c <runA/model.mpnas)" -lt "$(wc -c <runA/model-int8.mpnas)"'
run 0 "eval --int8" eval runA/model-int8.mpnas --int8
check "  every domain" sh -c 'grep -q "^shapes " out && grep -q "^tones " out && grep -q "^digits " out'
cp out int8.out
run 0 "eval of the int8-only file (its int8 form)" eval runA/model-int8only.mpnas
check "  the same results as eval --int8" cmp -s out int8.out
run 0 "predict --int8" predict runA/model-int8.mpnas --int8 --domain shapes --top 1 data/shapes/circle/000.png
check "  one class" sh -c "grep -q '^data/shapes/circle/000.png$tab[a-z]* [01]\.[0-9]*\$' out"
run 3 "eval --int8 of a float-only model" eval runA --int8
check "  says to quantise" has "quantize" err
run 1 "quantize without -o" quantize runA
run 3 "export --onnx of an int8-only model" export runA/model-int8only.mpnas --domain shapes --onnx x.onnx
check "  says int8 only" has "int8 only" err

run 0 "info" info runA
check "  domains, classes, paths, Jaccard" \
  sh -c 'grep -q "classes: circle square stripes" out && grep -q "^tones " out && grep -q "Jaccard" out && grep -q "parameters: " out'
run 0 "figures --out PREFIX" figures runA --out fig --title "A run"
check "  two SVG files" sh -c 'grep -q "<svg" fig-architecture.svg && grep -q "<svg" fig-jaccard.svg && grep -q "A run" fig-jaccard.svg'

# ---- Interrupting and resuming --------------------------------------------------------
# wait_for FILE: until it has a line (a step reported), at most 5 minutes (sanitizer
# builds on a loaded machine are slow).
wait_for() {
  i=0
  while [ ! -s "$1" ] && [ $i -lt 6000 ]; do sleep 0.05; i=$((i + 1)); done
}
# The same run, stopped by Ctrl-C (SIGINT) during the search.
"$mpnas" search "$@" --out runB --every 1 >out 2>err &
pid=$!
wait_for runB/search.jsonl
kill -INT $pid
wait $pid
got=$?
check "SIGINT during the search: exit 130 (got $got)" test $got -eq 130
check "  a search checkpoint" test -s runB/search.ckpt
check "  a message saying how to resume" has "resume with: mpnas search --resume --out runB" err
run 1 "--resume with a setting" search --resume --out runB --steps 9
run 1 "a new search into a run" search "$@" --out runB
run 0 "search --resume" search --resume --out runB --quiet
check "  no output with --quiet" test ! -s out
check "  the same search checkpoint as without the stop" cmp -s runA/search.ckpt runB/search.ckpt
check "  the same model" cmp -s runA/model.mpnas runB/model.mpnas
run 0 "--resume of a complete run" search --resume --out runB
check "  says there is nothing to resume" has "nothing to resume" err

# And by SIGTERM during the training.
"$mpnas" search "$@" --out runC --every 1 >out 2>err &
pid=$!
wait_for runC/train.jsonl
kill -TERM $pid
wait $pid
got=$?
check "SIGTERM during the training: exit 143 (got $got)" test $got -eq 143
check "  a training checkpoint" test -s runC/train.ckpt
run 0 "train RUN --resume" train runC --resume
check "  the same model as without the stop" cmp -s runA/model.mpnas runC/model.mpnas
check "  the checkpoint is gone" test ! -e runC/train.ckpt

# Training a run again with other settings: recorded, so --resume would use them.
run 0 "train RUN --train-steps 8 --set train.optimizer=adam" train runC --train-steps 8 --set train.optimizer=adam --quiet
check "  recorded in run.conf" sh -c 'tail -n 2 runC/run.conf | grep -q "set train.optimizer=adam"'
check "  another model" sh -c '! cmp -s runA/model.mpnas runC/model.mpnas'
run 1 "train with a search setting" train runC --set search.steps=3
run 1 "train with another seed (it chose the search's test split)" train runC --set context.seed=5
check "  says why" has "test split" err
mkdir runD && cp runA/model.mpnas runD/ && printf 'domain tones=%s/data/tones\nset x\n' "$tmp" >runD/run.conf
run 1 "a run.conf setting without =" eval runD
check "  says what is wrong" has "set x: KEY=VALUE expected" err
run 0 "export --c-array if.h (a C keyword)" export runA --c-array if.h
check "  names the array model_if" has "unsigned char model_if\[\]" if.h
# The command's own files are replaced whole: a write that fails part-way (here a 1 KiB
# file-size limit, SIGXFSZ ignored so that write() fails) leaves the old file as it was.
cp if.h if-old.h
(trap '' XFSZ; ulimit -f 1; "$mpnas" export runA --c-array if.h >out 2>err)
got=$?
check "export --c-array over a file, write fails: exit 2 (got $got)" test $got -eq 2
check "  says the file is unchanged" has "if.h: .*(left unchanged)" err
check "  the old file is intact" cmp -s if.h if-old.h
check "  no temporary file left" sh -c '! ls | grep -q "if.h.tmp"'
printf 'old figure\n' >fig-architecture.svg
(trap '' XFSZ; ulimit -f 1; "$mpnas" figures runA --out fig >out 2>err)
got=$?
check "figures over an old one, write fails: exit 2 (got $got)" test $got -eq 2
check "  the old figure is intact" sh -c 'test "$(cat fig-architecture.svg)" = "old figure"'
run 2 "train of a folder that is not a run" train data

# ---- Bad input ------------------------------------------------------------------------
set -- --steps 2 --train-steps 2 --set space.input_height=16 --set space.input_width=16 \
  --set space.stem_channels=8 --set space.head_channels=64 --set search.valid_batch=8
cp -R data/shapes bad
printf 'not an image' >bad/circle/notes.png
head -c 300 data/shapes/square/002.jpg >bad/square/cut.jpg
run 2 "a file that is not an image" search --domain a=bad "$@" --out r
check "  names the file" has "bad/circle/notes.png: not an image" err
check "  no run folder left" test ! -e r
run 0 "--skip-bad" search --domain a=bad "$@" --skip-bad --out r
check "  counts the bad files" has "2 bad files skipped" err
check "  and says which" sh -c 'grep -q "skipped .*notes.png" err && grep -q "skipped .*cut.jpg: .*ends early" err'
rm bad/circle/notes.png
run 2 "a truncated JPEG" search --domain a=bad "$@" --out r2
check "  names the file" has "bad/square/cut.jpg" err
mkdir -p one/only && cp data/shapes/circle/000.png one/only/
run 2 "a single class" search --domain a=one "$@" --out r3
check "  says so" has "needs at least 2" err
mkdir bad/empty
run 2 "an empty class" search --domain a=bad "$@" --skip-bad --out r4
check "  names it" has "class empty .* has no" err
run 2 "a domain folder that does not exist" search --domain a=nowhere "$@" --out r5
run 1 "two domains of one name" search --domain a=data/shapes --domain a=data/tones "$@" --out r6
run 1 "quantize with two domains of one name" quantize runA -o q.mpnas --domain shapes=data/shapes --domain shapes=data/shapes
run 1 "--domain without a path" search --domain a "$@" --out r7
check "  no run folder left" test ! -e r7
run 2 "--domain with a missing folder" search --domain a=data/shapes --domain b=nowhere "$@" --out r8
check "  no run folder left" test ! -e r8
run 1 "a domain name that is not printable ASCII" search --domain "$(printf 'caf\303\251')=data/shapes" "$@" --out r9
mkdir mine && echo "my notes" >mine/search.jsonl
run 1 "--out a folder of the user's (not empty, no run)" search --domain a=data/shapes "$@" --out mine
check "  leaves its files alone" sh -c 'test "$(cat mine/search.jsonl)" = "my notes" && test ! -e mine/run.conf'
mkdir empty_out
run 0 "--out an empty folder" search --domain a=data/shapes "$@" --out empty_out --quiet
cp -R data/shapes garbled
size=$(wc -c <garbled/square/002.jpg)
printf '\377\320\377\320' | dd of=garbled/square/002.jpg bs=1 seek=$((size - 60)) conv=notrunc 2>/dev/null
run 2 "a JPEG whose scan data is damaged" search --domain a=garbled "$@" --out r10
check "  names the file and libjpeg's finding" sh -c 'grep -q "002.jpg" err && grep -q "Corrupt JPEG data" err'
run 2 "info of a file that is not a model" info data/shapes/circle/000.png

result
