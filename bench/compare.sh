#!/usr/bin/env bash
# Runs the six benchmark workloads on eventflow and on the Python engines (llama-index-workflows,
# LangGraph), interleaved, one process per measurement, and prints Markdown tables of medians.
#
#   bench/compare.sh [--rounds K] [--quick] [--no-peers] [--timeout SECS]
#
#   --rounds K      rounds per workload (default 3); each round runs every engine once, in turn
#   --quick         small N and 1 round (unless --rounds): a smoke run, not a measurement
#   --no-peers      eventflow only (no venv, no Python engines)
#   --timeout SECS  limit for one measurement process (default 900)
#
# It creates bench/.venv (if missing) and installs bench/peers/requirements.txt into it, builds
# `eventflow-bench` once with `cargo build --release`, then:
#   1. for each workload at the issue's N, runs eventflow, llama-index-workflows and langgraph
#      in turn (A B C A B C ...) for K rounds, and prints the medians and the ratio
#      peer/eventflow (time per item: how many times faster eventflow is);
#   2. runs eventflow alone for the scaling rows (w3 at N = 1e3 .. 1e6, w4 at N = 1e5 with
#      peak RSS per run).
# Every JSON line goes to bench/results/<date>.jsonl (with "phase" and "round" added in front);
# the tables are printed on stdout and saved next to it as <date>.md. Progress goes to stderr.
# Any failed measurement stops the script with a non-zero exit and the failing command.
# EVENTFLOW_BENCH=/path/to/binary measures that binary instead of target/release/eventflow-bench.
set -euo pipefail

ROUNDS=""
QUICK=0
PEERS=1
TIMEOUT=900

die() {
    echo "compare.sh: error: $*" >&2
    exit 1
}

while (($# > 0)); do
    case "$1" in
        --rounds)
            [[ $# -ge 2 && "$2" =~ ^[1-9][0-9]*$ ]] || die "--rounds needs a positive integer"
            ROUNDS="$2"
            shift 2
            ;;
        --rounds=*)
            ROUNDS="${1#--rounds=}"
            [[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "--rounds needs a positive integer"
            shift
            ;;
        --timeout)
            [[ $# -ge 2 && "$2" =~ ^[1-9][0-9]*$ ]] || die "--timeout needs a positive integer"
            TIMEOUT="$2"
            shift 2
            ;;
        --quick)
            QUICK=1
            shift
            ;;
        --no-peers)
            PEERS=0
            shift
            ;;
        -h | --help)
            sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            die "unknown option '$1' (see --help)"
            ;;
    esac
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

VENV="bench/.venv"
REQUIREMENTS="bench/peers/requirements.txt"
RESULTS_DIR="bench/results"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="${EVENTFLOW_BENCH:-$TARGET_DIR/release/eventflow-bench}"

# Workloads, in table order, with the N of the issue's measurement table.
WORKLOADS=(w1_chain w2_loop w3_fanout w4_concurrent w5_stream w6_state)
declare -A N_OF=([w1_chain]=1000 [w2_loop]=10000 [w3_fanout]=1000 [w4_concurrent]=1000
    [w5_stream]=10000 [w6_state]=10000)
SCALING=("w3_fanout 1000" "w3_fanout 10000" "w3_fanout 100000" "w3_fanout 1000000"
    "w4_concurrent 100000")
if ((QUICK)); then
    ROUNDS="${ROUNDS:-1}"
    N_OF=([w1_chain]=20 [w2_loop]=200 [w3_fanout]=50 [w4_concurrent]=50 [w5_stream]=200
        [w6_state]=200)
    SCALING=("w3_fanout 1000" "w3_fanout 10000" "w4_concurrent 1000")
fi

ROUNDS="${ROUNDS:-3}"

ENGINES=(eventflow)
((PEERS)) && ENGINES+=(llama-index-workflows langgraph)

log() { echo "[compare] $*" >&2; }

# --- the Python side ----------------------------------------------------------------------

if ((PEERS)); then
    command -v python3 >/dev/null || die "python3 not found (needed for the peers' venv)"
    if [[ ! -x "$VENV/bin/python" ]]; then
        log "creating $VENV"
        python3 -m venv "$VENV" || die "could not create the venv $VENV"
    fi
    STAMP="$VENV/.requirements-installed"
    if [[ ! -f "$STAMP" ]] || ! cmp -s "$REQUIREMENTS" "$STAMP"; then
        log "installing $REQUIREMENTS into $VENV"
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS" ||
            die "pip install -r $REQUIREMENTS failed"
        cp "$REQUIREMENTS" "$STAMP"
    fi
fi
# Python for the summary (standard library only): the venv's when there is one.
if [[ -x "$VENV/bin/python" ]]; then
    PY="$VENV/bin/python"
else
    PY="$(command -v python3)" || die "python3 not found (needed for the summary)"
fi

# --- the Rust side ------------------------------------------------------------------------

log "cargo build --release -p eventflow-bench"
cargo build --release --quiet -p eventflow-bench || die "cargo build --release -p eventflow-bench failed"
[[ -x "$BIN" ]] || die "built, but $BIN is not there (CARGO_TARGET_DIR?)"

# --- measuring ----------------------------------------------------------------------------

mkdir -p "$RESULTS_DIR"
STAMP_NAME="$(date -u +%Y-%m-%dT%H%M%SZ)"
RESULTS="$RESULTS_DIR/$STAMP_NAME.jsonl"
TABLES="$RESULTS_DIR/$STAMP_NAME.md"
: >"$RESULTS.partial"
ERR="$(mktemp)"
trap 'rm -f "$ERR"' EXIT

command_for() { # engine -> the command prefix for that engine
    case "$1" in
        eventflow) echo "$BIN" ;;
        llama-index-workflows) echo "$VENV/bin/python bench/peers/workflows_bench.py" ;;
        langgraph) echo "$VENV/bin/python bench/peers/langgraph_bench.py" ;;
    esac
}

# measure PHASE ROUND ENGINE WORKLOAD N: one process, one JSON line appended to $RESULTS.
measure() {
    local phase="$1" round="$2" engine="$3" workload="$4" n="$5"
    local cmd out rc=0
    cmd="$(command_for "$engine") $workload $n"
    log "$phase round $round: $engine $workload $n"
    # shellcheck disable=SC2086 # the command is split on purpose
    out="$(timeout "$TIMEOUT" $cmd 2>"$ERR")" || rc=$?
    if ((rc != 0)); then
        cat "$ERR" >&2
        ((rc == 124)) && die "measurement timed out after ${TIMEOUT}s: $cmd"
        die "measurement failed (exit $rc): $cmd (results so far: $RESULTS.partial)"
    fi
    if [[ "$out" == *$'\n'* || "$out" != "{"*"}" || "$out" != *"\"workload\":\"$workload\""* ||
        "$out" != *"\"engine\":\"$engine\""* || "$out" != *"\"n\":$n"[,\}]* ]]; then
        cat "$ERR" >&2
        die "measurement did not print one JSON line for engine $engine, workload $workload, n $n: $cmd
--- stdout ---
$out"
    fi
    echo "{\"phase\":\"$phase\",\"round\":$round,${out#\{}" >>"$RESULTS.partial"
}

log "results: $RESULTS"
for workload in "${WORKLOADS[@]}"; do
    for ((round = 1; round <= ROUNDS; round++)); do
        for engine in "${ENGINES[@]}"; do
            measure compare "$round" "$engine" "$workload" "${N_OF[$workload]}"
        done
    done
done
for row in "${SCALING[@]}"; do
    read -r workload n <<<"$row"
    for ((round = 1; round <= ROUNDS; round++)); do
        measure scaling "$round" eventflow "$workload" "$n"
    done
done

mv "$RESULTS.partial" "$RESULTS"

# --- the tables ---------------------------------------------------------------------------

rustc_version="$(rustc --version 2>/dev/null || echo unknown)"
cpu_model="$(grep -m1 '^model name' /proc/cpuinfo 2>/dev/null | sed 's/^model name[[:space:]]*:[[:space:]]*//')"
mem_kb="$(awk '/^MemTotal:/ {print $2}' /proc/meminfo 2>/dev/null || echo 0)"
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [[ -n "$(git status --porcelain 2>/dev/null)" ]]; then commit="$commit (with uncommitted changes)"; fi

"$PY" - "$RESULTS" "$ROUNDS" "$QUICK" "$PEERS" "$(nproc)" "${cpu_model:-unknown}" "$mem_kb" \
    "$rustc_version" "$commit" "$VENV/bin/python" >"$TABLES" <<'PY'
import json
import os
import statistics
import subprocess
import sys
from datetime import datetime, timezone

(results, rounds, quick, peers, nproc, cpu, mem_kb, rustc, commit, venv_py) = sys.argv[1:]
rounds, quick, peers = int(rounds), quick == "1", peers == "1"

rows = [json.loads(line) for line in open(results, encoding="utf-8") if line.strip()]
WORKLOADS = ["w1_chain", "w2_loop", "w3_fanout", "w4_concurrent", "w5_stream", "w6_state"]
PEERS = ["llama-index-workflows", "langgraph"] if peers else []
TARGETS = {
    "w1_chain": "≤ 30 µs",
    "w2_loop": "≤ 2 µs",
    "w3_fanout": "≤ 2 µs",
    "w4_concurrent": "≥ 100,000 runs/s (N=100000)",
    "w5_stream": "≤ 0.5 µs",
    "w6_state": "≤ 3 µs",
}
UNIT = {
    "w1_chain": "µs per 10-step run",
    "w2_loop": "µs per step",
    "w3_fanout": "µs per event",
    "w4_concurrent": "runs/s",
    "w5_stream": "µs per event",
    "w6_state": "µs per iteration",
}


def pick(phase, engine, workload, n=None):
    got = [r for r in rows if r["phase"] == phase and r["engine"] == engine
           and r["workload"] == workload and (n is None or r["n"] == n)]
    if not got:
        sys.exit(f"compare.sh: error: no result for {phase} {engine} {workload} {n}")
    return got


def median(got, key):
    return statistics.median(r[key] for r in got)


def us(value):
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def ratio(value):
    return f"{value:,.0f}×" if value >= 100 else f"{value:.1f}×"


def version(python, package):
    try:
        return subprocess.run(
            [python, "-c", f"import importlib.metadata as m; print(m.version({package!r}))"],
            capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def python_version(python):
    try:
        return subprocess.run([python, "--version"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


out = []
now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
out.append(f"## eventflow vs the Python engines — {now}" + (" (QUICK smoke run: small N, not a measurement)" if quick else ""))
out.append("")
out.append(f"- machine: {nproc} cores, {cpu}, {int(mem_kb) / 1024 / 1024:.1f} GiB memory")
out.append(f"- eventflow: commit {commit}, {rustc}, `cargo build --release`")
if peers:
    out.append(f"- {python_version(venv_py)}; llama-index-workflows {version(venv_py, 'llama-index-workflows')}, "
               f"langgraph {version(venv_py, 'langgraph')}")
out.append(f"- {rounds} round(s), engines interleaved, one process per measurement; medians; "
           f"raw lines: `{results}`")
out.append("")

header = ["workload", "N", "unit", "eventflow"]
for peer in PEERS:
    header += [peer, "×"]
header.append("eventflow target")
out.append("| " + " | ".join(header) + " |")
out.append("|" + "---|" * len(header))
for workload in WORKLOADS:
    ours = pick("compare", "eventflow", workload)
    n = ours[0]["n"]
    per_item = median(ours, "per_item_us")
    if workload == "w4_concurrent":
        cells = [f"{median(ours, 'runs_per_s'):,.0f}"]
    else:
        cells = [us(per_item)]
    for peer in PEERS:
        theirs = pick("compare", peer, workload, n)
        if workload == "w4_concurrent":
            cells.append(f"{median(theirs, 'runs_per_s'):,.0f}")
        else:
            cells.append(us(median(theirs, "per_item_us")))
        cells.append(ratio(median(theirs, "per_item_us") / per_item))
    out.append("| " + " | ".join([workload, f"{n:,}", UNIT[workload], *cells, TARGETS[workload]]) + " |")
out.append("")
if PEERS:
    out.append("× = the peer's median time per item / eventflow's (for w4: eventflow's runs/s / "
               "the peer's): how many times faster eventflow is.")
    out.append("")

out.append("### eventflow alone: scaling")
out.append("")
out.append("| workload | N | µs per item | per item vs smallest N | runs/s | peak RSS MB | peak RSS / N | target |")
out.append("|---|---|---|---|---|---|---|---|")
scaling = [r for r in rows if r["phase"] == "scaling"]
seen = []
for r in scaling:
    key = (r["workload"], r["n"])
    if key not in seen:
        seen.append(key)
base = {}
for workload, n in seen:
    got = pick("scaling", "eventflow", workload, n)
    per_item = median(got, "per_item_us")
    base.setdefault(workload, per_item)
    rss = median(got, "peak_rss_mb") if all(g.get("peak_rss_mb") is not None for g in got) else None
    runs = f"{median(got, 'runs_per_s'):,.0f}" if workload == "w4_concurrent" else ""
    per_run_kb = f"{rss * 1024 / n:.2f} KB" if rss is not None and workload == "w4_concurrent" else ""
    if workload == "w3_fanout":
        target = "≤ 2 µs, ≤ 2× of N=1000"
    elif workload == "w4_concurrent":
        target = "≥ 100,000 runs/s, ≤ 4 KB per run"
    else:
        target = ""
    out.append("| " + " | ".join([
        workload, f"{n:,}", us(per_item), f"{per_item / base[workload]:.2f}×" if workload == "w3_fanout" else "", runs,
        f"{rss:.1f}" if rss is not None else "?", per_run_kb, target]) + " |")
out.append("")
print("\n".join(out))
PY

cat "$TABLES"
log "tables saved to $TABLES"
