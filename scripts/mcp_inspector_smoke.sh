#!/usr/bin/env bash
# Smoke run of the MCP server with the MCP Inspector's CLI mode (npx, from the npm registry): over
# stdio and over streamable HTTP with a bearer token, list the tools, create a session, append a
# message to it and read it back; over HTTP also check that a wrong token is refused and that the token never reaches the
# server's log. Exits non-zero on the first failure, saying which step failed.
#
# 0.16.8 is the last 0.x Inspector: it declares Node >= 22.7.5 but runs on Node 20 (npm prints an
# EBADENGINE warning); 0.15.0, the last that declares Node 20, has no --header option for a token.
# Override with MCP_INSPECTOR_VERSION.
source "$(dirname "$0")/_venv.sh"
ensure_venv dev
INSPECTOR="@modelcontextprotocol/inspector@${MCP_INSPECTOR_VERSION:-0.16.8}"
PY="$VENV/bin/python"
SERVE="$VENV/bin/serverless-sessions"

work="$(mktemp -d)"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
export SERVERLESS_SESSIONS_URL="sqlite://$work/sessions.db"

fail() { echo "mcp-inspector smoke: FAILED: $*" >&2; exit 1; }

# inspect STEP ARGS...: run the Inspector CLI; its JSON answer goes to $work/out.json.
inspect() {
    local step="$1"; shift
    if ! npx -y "$INSPECTOR" --cli "$@" >"$work/out.json" 2>"$work/npx.err"; then
        cat "$work/npx.err" "$work/out.json" >&2
        fail "$step: the Inspector exited non-zero"
    fi
}

# expect STEP PYTHON-EXPRESSION: the expression, over `r` (the last JSON answer), must be true.
expect() {
    "$PY" - "$work/out.json" "$2" <<'EOF' || fail "$1: unexpected answer: $(cat "$work/out.json")"
import json, sys
r = json.load(open(sys.argv[1]))
sys.exit(0 if eval(sys.argv[2], {"r": r}) else 1)
EOF
}

# round_trip LABEL USER CREATE-ARGS... -- TARGET...: tools/list, create, append, get over one transport.
round_trip() {
    local label="$1" user="$2"; shift 2
    local create_args=()
    while [ "$1" != "--" ]; do create_args+=("$1"); shift; done
    shift
    inspect "$label tools/list" "$@" --method tools/list
    expect "$label tools/list" '{"create_serverless_session", "append_to_serverless_session", "get_serverless_session"} <= {t["name"] for t in r["tools"]}'
    inspect "$label create" "$@" --method tools/call --tool-name create_serverless_session \
        --tool-arg project_id=smoke "${create_args[@]}"
    expect "$label create" 'not r["isError"] and r["structuredContent"]["user_id"] == "'"$user"'"'
    local id
    id="$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["structuredContent"]["session_id"])' "$work/out.json")"
    inspect "$label append" "$@" --method tools/call --tool-name append_to_serverless_session \
        --tool-arg "session_id=$id" --tool-arg 'messages=[{"role": "user", "content": "hi"}]'
    expect "$label append" 'not r["isError"] and r["structuredContent"]["message_count"] == 1'
    inspect "$label get" "$@" --method tools/call --tool-name get_serverless_session --tool-arg "session_id=$id" \
        --tool-arg last=1
    expect "$label get" 'not r["isError"] and r["structuredContent"]["session"]["session_id"] == "'"$id"'" and r["structuredContent"]["session"]["conversation_history"] == [{"role": "user", "content": "hi"}]'
    echo "mcp-inspector smoke: $label ok (tools listed, session $id created, appended to and read back)"
}

round_trip stdio smoke-user --tool-arg user_id=smoke-user -- "$SERVE" serve

token="$("$PY" -c 'import secrets; print(secrets.token_urlsafe(32))')"
port="$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
(umask 077 && printf '{"%s": {"principal": "smoke-principal"}}\n' "$token" >"$work/tokens.json")
"$SERVE" serve --transport http --port "$port" --tokens-file "$work/tokens.json" 2>"$work/serve.err" &
server_pid=$!
for _ in $(seq 1 300); do
    grep -q "MCP server at" "$work/serve.err" && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/serve.err" >&2; fail "serve --transport http exited"; }
    sleep 0.1
done
grep -q "MCP server at" "$work/serve.err" || { cat "$work/serve.err" >&2; fail "serve did not start in 30 s"; }
url="http://127.0.0.1:$port/mcp"

round_trip http smoke-principal -- "$url" --transport http --header "Authorization: Bearer $token"
if npx -y "$INSPECTOR" --cli "$url" --transport http --header "Authorization: Bearer wrong-$token" \
    --method tools/list >"$work/out.json" 2>"$work/npx.err"; then
    fail "http: a wrong token was accepted"
fi
grep -q "invalid_token" "$work/npx.err" "$work/out.json" || fail "http: a wrong token failed without a 401 invalid_token"
if grep -qF "$token" "$work/serve.err"; then fail "http: the token appears in the server's log"; fi
echo "mcp-inspector smoke: http wrong token refused; token absent from the server log"
