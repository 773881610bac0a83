# Shared by scripts/test and scripts/bench (sourced, from the repo root).

venv="${VISITPAY_VENV:-.venv}"

# Installs the pinned Python tools into $venv, again only when the pins change.
ensure_venv() {
  local requirements=scripts/requirements-test.txt
  local stamp="$venv/.requirements.sha256"
  local want
  want="$(sha256sum "$requirements" | cut -d' ' -f1)"
  if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "==> installing test tools into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
    echo "$want" > "$stamp"
  fi
}

# Starts moto (with DynamoDB item operations serialized: see
# scripts/moto_server.py) on a free loopback port, sets $port, waits until it
# answers, and stops it when the script exits. Fails if moto cannot start.
start_moto() {
  port="$("$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  moto_log="$(mktemp -t visitpay-moto.XXXXXX)"
  "$venv/bin/python" scripts/moto_server.py -H 127.0.0.1 -p "$port" >"$moto_log" 2>&1 &
  moto_pid=$!
  trap stop_moto EXIT
  echo "==> starting moto on 127.0.0.1:$port"
  local ready=""
  for _ in $(seq 1 120); do
    if ! kill -0 "$moto_pid" 2>/dev/null; then
      break
    fi
    if "$venv/bin/python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/', timeout=1)" 2>/dev/null; then
      ready=yes
      break
    fi
    sleep 0.5
  done
  if [ -z "$ready" ]; then
    echo "moto did not start; its log follows" >&2
    cat "$moto_log" >&2
    exit 1
  fi
}

stop_moto() {
  kill "$moto_pid" 2>/dev/null || true
  wait "$moto_pid" 2>/dev/null || true
  rm -f "$moto_log" "${cleanup_files[@]}"
}

cleanup_files=()
