#!/usr/bin/env bash
# LlamaIndex's Python client (llama-agents-client 0.4.1) against the `serve` example.
#
#   bash crates/eventflow-server/scripts/python_client_compat.sh VENV_DIR
#
# Creates (or reuses) a venv in VENV_DIR with llama-agents-client==0.4.1, builds the `serve`
# example (or uses $EVENTFLOW_SERVE), starts it on a free loopback port with a SQLite file in a
# temporary directory, runs python_client_compat.py against it, and stops the server.
# Exits non-zero, printing the server's log, when a check fails.
set -euo pipefail

venv="${1:?usage: python_client_compat.sh VENV_DIR}"
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

if [ -z "${EVENTFLOW_SERVE:-}" ]; then
    (cd "$repo" && cargo build --quiet -p eventflow-server --example serve)
    EVENTFLOW_SERVE="${CARGO_TARGET_DIR:-$repo/target}/debug/examples/serve"
fi

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

# Port 0: the OS picks a free port; the example logs `listening addr=127.0.0.1:PORT`.
env -u EVENTFLOW_TOKEN RUST_LOG=eventflow_server=info NO_COLOR=1 \
    "$EVENTFLOW_SERVE" 127.0.0.1:0 "sqlite:$work/compat.db" \
    >"$work/server.log" 2>&1 </dev/null &
server_pid=$!

addr=""
for _ in $(seq 1 600); do
    addr="$(sed -n 's/.*listening.*addr=\(127\.0\.0\.1:[0-9][0-9]*\).*/\1/p' "$work/server.log" | head -n 1)"
    [ -n "$addr" ] && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$addr" ]; then
    echo "the serve example did not start; its log:" >&2
    cat "$work/server.log" >&2
    exit 1
fi
url="http://$addr"
echo "serve example on $url (llama-agents-client $("$venv/bin/python" -m pip show llama-agents-client | sed -n 's/^Version: //p'))"

if ! "$venv/bin/python" "$here/python_client_compat.py" "$url"; then
    echo "python_client_compat.py failed; the server's log:" >&2
    cat "$work/server.log" >&2
    exit 1
fi
