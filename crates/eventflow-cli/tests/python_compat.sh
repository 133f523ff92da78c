#!/usr/bin/env bash
# LlamaIndex's Python client (llama-agents-client 0.4.1) against `eventflow serve --demo`.
#
#   bash crates/eventflow-cli/tests/python_compat.sh VENV_DIR
#
# Creates (or reuses) a venv in VENV_DIR with llama-agents-client==0.4.1, builds the `eventflow`
# binary (or uses $EVENTFLOW), starts `eventflow serve --demo` on a free loopback port with a
# SQLite file in a temporary directory, runs python_compat.py against it, and stops the server.
# Exits non-zero, printing the server's log, when a check fails.
set -euo pipefail

venv="${1:?usage: python_compat.sh VENV_DIR}"
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import llama_agents.client' 2>/dev/null \
    || [ "$("$venv/bin/python" -m pip show llama-agents-client 2>/dev/null | sed -n 's/^Version: //p')" != "0.4.1" ]; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "llama-agents-client==0.4.1"
fi

if [ -z "${EVENTFLOW:-}" ]; then
    (cd "$repo" && cargo build --quiet -p eventflow-cli)
    EVENTFLOW="${CARGO_TARGET_DIR:-$repo/target}/debug/eventflow"
fi
export EVENTFLOW

work="$(mktemp -d)"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

env -u EVENTFLOW_TOKEN -u EVENTFLOW_URL -u EVENTFLOW_DATABASE_URL \
    "$EVENTFLOW" --json serve --demo --port 0 --database-url "sqlite:$work/compat.db" \
    >"$work/ready.json" 2>"$work/server.log" </dev/null &
server_pid=$!

url=""
for _ in $(seq 1 600); do
    url="$(sed -n 's/.*"url":"\([^"]*\)".*/\1/p' "$work/ready.json" | head -n 1)"
    [ -n "$url" ] && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$url" ]; then
    echo "eventflow serve --demo did not start; its log:" >&2
    cat "$work/server.log" >&2
    exit 1
fi
echo "eventflow serve --demo on $url (llama-agents-client $("$venv/bin/python" -m pip show llama-agents-client | sed -n 's/^Version: //p'))"

if ! "$venv/bin/python" "$here/python_compat.py" "$url"; then
    echo "python_compat.py failed; the server's log:" >&2
    cat "$work/server.log" >&2
    exit 1
fi
