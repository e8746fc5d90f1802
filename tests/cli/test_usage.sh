#!/usr/bin/env bash
#
# test_usage.sh - the strict command line of every scomm subcommand.
#
# A bad value of any numeric or enum option, an unknown option, a missing
# value or a stray argument must exit 2 with exactly one line on stderr and
# nothing on stdout; a bad value's line names the option and the value as
# typed ('VALUE'), the others name the option or argument and point at
# --help. Good values still work: every --help (exit 0, usage on stdout),
# `presets list`, and tiny runs of bench, bench p2p and kv-bench.
#
# Usage: test_usage.sh /path/to/scomm
# Exits 0 when every check passes, 1 when one fails, 2 on bad usage.

set -u

SCOMM=${1:-}
if [ -z "$SCOMM" ] || [ ! -x "$SCOMM" ]; then
    echo "usage: $0 /path/to/scomm" >&2
    exit 2
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/scomm-usage-test.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
OUT=$TMP/stdout
ERR=$TMP/stderr
CHECKS=0
FAILS=0

fail()
{
    # fail WHAT: report one failed check with what the command printed
    echo "FAIL $1"
    sed 's/^/       stderr: /' "$ERR" | head -5
    sed 's/^/       stdout: /' "$OUT" | head -3
    FAILS=$((FAILS + 1))
}

run()
{
    # run ARGS...: scomm ARGS with a time limit; sets RC
    timeout 60 "$SCOMM" "$@" > "$OUT" 2> "$ERR" < /dev/null
    RC=$?
}

# The checks below use shell built-ins only (no wc, grep or tr per check):
# some 140 checks, each a process of its own already, on a loaded CI box.

# describe ARGS...: "scomm ARGS" with newlines shown as '?', in DESC
describe()
{
    DESC="scomm $*"
    DESC=${DESC//$'\n'/?}
}

# one_line DESC: exit 2, one line on stderr starting "scomm", no stdout;
# the line is left in LINE
one_line()
{
    local nl
    LINE=
    IFS= read -r -d '' LINE < "$ERR"
    nl=${LINE//[!$'\n']/}
    if [ "$RC" -ne 2 ]; then
        fail "$1: exit $RC, want 2"
    elif [ "${#nl}" -ne 1 ] || [ -z "$LINE" ]; then
        fail "$1: ${#nl} lines on stderr, want 1"
    elif [ -s "$OUT" ]; then
        fail "$1: printed on stdout"
    elif [[ $LINE != scomm* ]]; then
        fail "$1: the line does not start with 'scomm'"
    else
        return 0
    fi
    return 1
}

rejected()
{
    # rejected NEEDLE HINT ARGS...: scomm ARGS is a usage error whose line
    # holds NEEDLE and, when HINT is 1, points at --help
    local needle=$1 hint=$2
    shift 2
    describe "$@"
    CHECKS=$((CHECKS + 1))
    run "$@"
    one_line "$DESC" || return
    if [[ $LINE != *"$needle"* ]]; then
        fail "$DESC: the line does not name $needle"
    elif [ "$hint" -eq 1 ] && [[ $LINE != *"--help' for usage"* ]]; then
        fail "$DESC: the line does not point at --help"
    else
        echo "ok   $DESC"
    fi
}

# bad OPTION VALUE ARGS...: rejected, naming OPTION and 'VALUE'
bad()
{
    local opt=$1 val=$2
    shift 2
    rejected "$opt '$val'" 0 "$@"
}

# usage WORD ARGS...: rejected, naming WORD and pointing at --help
usage()
{
    local word=$1
    shift
    rejected "$word" 1 "$@"
}

good()
{
    # good PATTERN ARGS...: scomm ARGS exits 0 and stdout matches PATTERN
    local pat=$1
    shift
    describe "$@"
    CHECKS=$((CHECKS + 1))
    run "$@"
    if [ "$RC" -ne 0 ]; then
        fail "$DESC: exit $RC, want 0"
    elif ! grep -q -E -e "$pat" "$OUT"; then
        fail "$DESC: stdout does not match /$pat/"
    else
        echo "ok   $DESC"
    fi
}

# ---- the cases of issue 17 ------------------------------------------------
bad --wire bogus kv-bench --wire bogus
bad --compress bogus kv-bench --compress bogus
bad --transport ib kv-bench --transport ib
bad --streams -5 kv-bench --streams -5
bad --tokens foo kv-bench --tokens foo
bad -n foo bench p2p -n foo

# ---- kv-bench -------------------------------------------------------------
bad --shape 70b kv-bench --shape 70b
bad --tokens 0 kv-bench --tokens 0
bad --tokens 17m kv-bench --tokens 17m
bad --tokens 4096x kv-bench --tokens 4096x
bad --tokens 99999999999999999999 kv-bench --tokens 99999999999999999999
bad --layers 0 kv-bench --layers 0
bad --layers 257 kv-bench --layers 257
bad --heads 0 kv-bench --heads 0
bad --dim 70000 kv-bench --dim 70000
bad --block 0 kv-bench --block 0
bad --hidden x kv-bench --hidden x
bad --streams 17 kv-bench --streams 17
bad --streams 2.5 kv-bench --streams 2.5
bad --streams '' kv-bench --streams ''
bad --streams ' 2' kv-bench --streams ' 2'
bad --depth 0 kv-bench --depth 0
bad --iters 0 kv-bench --iters 0
bad --iters 3x kv-bench --iters 3x
bad --chunk 1k kv-bench --chunk 1k
bad --chunk 1g kv-bench --chunk 1g
bad --thp maybe kv-bench --thp maybe
bad --serve localhost kv-bench --serve localhost
bad --connect 127.0.0.1:0 kv-bench --connect 127.0.0.1:0
bad --connect :7000 kv-bench --connect :7000
bad --connect 127.0.0.1:x kv-bench --connect 127.0.0.1:x
bad --wire 'a\x0ab' kv-bench --wire "$(printf 'a\nb')"

# ---- bench p2p --------------------------------------------------------------
bad -n 0 bench p2p -n 0
bad -n 1000001 bench p2p -n 1000001
bad -b x bench p2p -b x
bad -e 65g bench p2p -e 65g
bad -f 1 bench p2p -f 1
bad -f 2x bench p2p -f 2x
bad -w -1 bench p2p -w -1

# ---- bench <op> -------------------------------------------------------------
bad operation bogus bench bogus
bad operation all_reduce,bogus bench all_reduce,bogus
bad -b x bench all_reduce -b x
bad -e 1t bench all_reduce -e 1t
bad -f 1 bench all_reduce -f 1
bad --sizes 1,,2 bench all_reduce --sizes 1,,2
bad --sizes 8,x bench all_reduce --sizes 8,x
bad -d bogus bench all_reduce -d bogus
bad -o bogus bench all_reduce -o bogus
bad -r -1 bench broadcast -r -1
bad -w -1 bench all_reduce -w -1
bad -n 0 bench all_reduce -n 0
bad -n 1000001 bench all_reduce -n 1000001
bad --target 0 bench all_reduce --target 0
bad --target abc bench all_reduce --target abc
bad --target nan bench all_reduce --target nan
bad --target 3601 bench all_reduce --target 3601
bad --algo nope bench all_reduce --algo nope
peers=()
for i in $(seq 1 17); do
    peers+=(--peer-csv "p$i.csv")
done
bad --peer-csv p17.csv bench all_reduce "${peers[@]}"

# ---- bench --overlap --------------------------------------------------------
bad -n 0 bench --overlap -n 0
bad -n 1001 bench --overlap -n 1001
bad --ops 0 bench --overlap --ops 0
bad --op-bytes 2 bench --overlap --op-bytes 2
bad --sizes 1 bench --overlap --sizes 1
bad --ratios 0 bench --overlap --ratios 0
bad --ratios 1,x bench --overlap --ratios 1,x

# ---- launch -----------------------------------------------------------------
bad -n 0 launch -n 0 true
bad -n 1025 launch -n 1025 true
bad -n x launch -n x true
bad --timeout 0 launch -n 1 --timeout 0 true
bad --timeout -3 launch -n 1 --timeout -3 true
bad --timeout x launch -n 1 --timeout x true
bad --master-port 70000 launch -n 1 --master-port 70000 true
bad --master-port 0 launch -n 1 --master-port 0 true
bad --bind-to socket launch -n 1 --bind-to socket true
bad --nnodes 0 launch --nnodes 0 -n 1 true
bad --nproc-per-node 0 launch --nproc-per-node 0 true
bad --node-rank 2 launch --nnodes 2 --node-rank 2 -n 1 true
bad --node-rank 1 launch --node-rank 1 -n 1 true
bad --master-port 65535 launch --nnodes 2 --node-rank 0 --master-addr \
    127.0.0.1 --master-port 65535 -n 1 true
bad --join-timeout 0 launch --join-timeout 0 -n 1 true
bad --master-addr "" launch --master-addr "" -n 1 true

bad --max-size 7 tune --max-size 7
bad --max-size 1x tune -e 1x
bad --out "" tune --out ""

# ---- presets ----------------------------------------------------------------
bad command bogus presets bogus

# ---- unknown options, missing values, stray arguments -----------------------
usage "'--bogus'" kv-bench --bogus
usage "--wire" kv-bench --wire
usage "'extra'" kv-bench extra
usage "'--json=1'" kv-bench --json=1
usage "--shape, --streams" kv-bench --s 8b
usage "'-x'" bench all_reduce -x
usage "-n" bench all_reduce -n
usage "'--bogus'" bench p2p --bogus
usage "'--bogus'" bench --overlap --bogus
usage "'--bogus'" probe --bogus
usage "--topo-file" probe --topo-file
usage "'--bogus'" demo --bogus
usage "'x'" demo x
usage "'--bogus'" tune --bogus
usage "'x'" tune x
usage "'--bogus'" presets list --bogus
usage "presets" presets
usage "'x'" version x
usage "'--bogus'" launch --bogus -n 1 true
usage "-n" launch
usage "program" launch -n 2
usage "--node-rank R is required" launch --nnodes 2 -n 1 true
usage "--master-addr A is required" launch --nnodes 2 --node-rank 1 -n 1 true
usage "--master-port P is required" launch --nnodes 2 --node-rank 1 \
    --master-addr 127.0.0.1 -n 1 true
SCOMM_JOB_TOKEN= usage "SCOMM_JOB_TOKEN" launch --nnodes 2 --node-rank 1 \
    --master-addr 127.0.0.1 --master-port 29400 -n 1 true
SCOMM_JOB_TOKEN=short usage "too short" launch --nnodes 2 --node-rank 1 \
    --master-addr 127.0.0.1 --master-port 29400 -n 1 true
usage "'bogus'" bogus
usage "missing the command"

# the --opt=value and -kVALUE forms of a bad value
bad --wire fp16 kv-bench --wire=fp16
bad -n 0 bench p2p -n0

# ---- good values ------------------------------------------------------------
good '^usage: scomm <command>' --help
good '^usage: scomm <command>' help
for c in launch demo probe presets tune kv-bench version help; do
    good '^usage: scomm' "$c" --help
done
good '^usage: scomm bench <op' bench --help
good '^usage: scomm bench <op' bench all_reduce --help
good '^usage: scomm bench p2p' bench p2p --help
good '^usage: scomm bench --overlap' bench --overlap --help
good '^usage: scomm kv-bench' help kv-bench
good '^scomm [0-9]' version
good '^name ' presets list
good 'high-bw' presets show high-bw --env
good '0 wrong elements' launch -n 2 --timeout 50 -- "$SCOMM" bench \
    all_reduce,broadcast -b 1k -e 4K -f 4 -n 2 -w 0 -d float16 -o max \
    --target 0.01 --check --out none --quiet
good '0 wrong elements' launch -n 2 --timeout 50 -- "$SCOMM" bench \
    all_reduce --sizes 8,1k,2K --check -n 2 --out none --quiet
good 'stream_GB/s' launch -n 2 --timeout 50 -- "$SCOMM" bench p2p \
    -b 8 -e 1k -f 8 -n 5 -w 1
good '"bench":"kv"' kv-bench --shape 1b --tokens 64 --iters 1 --wire fp8 \
    --compress none --transport tcp --streams 2 --chunk 64k --depth 2 \
    --thp off --json

echo "$((CHECKS - FAILS))/$CHECKS checks passed"
[ "$FAILS" -eq 0 ]
