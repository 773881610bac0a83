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

# Marks every process this run starts (the variable is inherited: tests,
# the local runners they start, ChromeDriver and the Chromium it starts,
# moto), so that what outlives the run can be found afterwards.
mark_run() {
  VISITPAY_TEST_RUN="run-$$-$(date +%s%N)"
  export VISITPAY_TEST_RUN
}

# Fails when a process of this run outlived it (a browser, a driver, moto,
# a local runner): lists them, ends them, and returns 1. This script and
# what it is running right now are not leftovers.
nothing_left_running() {
  python3 - "$VISITPAY_TEST_RUN" "$$" <<'PY'
import os, signal, sys
marker, me = ("VISITPAY_TEST_RUN=" + sys.argv[1]).encode(), int(sys.argv[2])
def parent(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0
def ours(pid):
    while pid > 1:
        if pid == me:
            return True
        pid = parent(pid)
    return False
left = []
for entry in os.listdir("/proc"):
    if not entry.isdigit() or int(entry) == os.getpid() or ours(int(entry)):
        continue
    try:
        with open(f"/proc/{entry}/environ", "rb") as f:
            if marker not in f.read().split(b"\0"):
                continue
        with open(f"/proc/{entry}/cmdline", "rb") as f:
            left.append((int(entry), f.read().replace(b"\0", b" ").decode(errors="replace")[:120]))
    except OSError:
        continue
for pid, command in left:
    print(f"left running by the test run: {pid} {command}", file=sys.stderr)
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
sys.exit(1 if left else 0)
PY
}

cleanup_files=()

# Chromium and ChromeDriver from Debian, for the browser tests (as scripts/bench
# installs wrk), and poppler-utils' pdftotext to read the receipt's PDF:
# installed with apt-get when missing, as root or through sudo. Exports
# VISITPAY_CHROMIUM, VISITPAY_CHROMEDRIVER and VISITPAY_PDFTOTEXT. Fails with
# the reason when they cannot be installed: those tests never silently skip.
ensure_browser() {
  local chromium=/usr/bin/chromium driver=/usr/bin/chromedriver pdftotext=/usr/bin/pdftotext pdffonts=/usr/bin/pdffonts
  if [ ! -x "$chromium" ] || [ ! -x "$driver" ] || [ ! -x "$pdftotext" ] || [ ! -x "$pdffonts" ]; then
    echo "==> installing Chromium, ChromeDriver and poppler-utils from Debian (apt-get)"
    debian_install chromium chromium-driver poppler-utils
  fi
  export VISITPAY_CHROMIUM="$chromium" VISITPAY_CHROMEDRIVER="$driver" VISITPAY_PDFTOTEXT="$pdftotext"
  export VISITPAY_PDFFONTS="$pdffonts"
}

# The fonts the receipt's PDF embeds (shared/pdf/build.rs reads them at build
# time): Noto (Latin, Greek, Cyrillic, Arabic, Devanagari, Gurmukhi) and
# WenQuanYi Micro Hei (Chinese, Japanese, Korean), from Debian.
ensure_fonts() {
  if [ -n "${VISITPAY_FONTS_DIR:-}" ]; then return; fi
  if [ ! -f /usr/share/fonts/truetype/noto/NotoSansGurmukhi-Regular.ttf ] || [ ! -f /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ]; then
    echo "==> installing the receipt's fonts from Debian (fonts-noto-core, fonts-wqy-microhei)"
    debian_install fonts-noto-core fonts-wqy-microhei
  fi
}

# apt-get install, as root or through sudo; fails with the reason.
debian_install() {
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "installing $* needs root or sudo (apt-get)" >&2; exit 1; }
    sudo=sudo
  fi
  $sudo apt-get update -qq || true
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
    || { echo "apt-get could not install $*; the tests that need them cannot run" >&2; exit 1; }
}

# axe-core from npm, pinned, into $venv/npm (beside the Python tools):
# exports VISITPAY_AXE_JS, the script the browser tests inject into each page.
ensure_axe() {
  local version=4.14.1 dir="$venv/npm"
  local axe="$dir/node_modules/axe-core/axe.min.js"
  if [ ! -f "$axe" ] || [ "$(cat "$dir/.axe-version" 2>/dev/null)" != "$version" ]; then
    command -v npm >/dev/null || { echo "the accessibility checks need npm (Node.js) to install axe-core" >&2; exit 1; }
    echo "==> installing axe-core $version from npm into $dir"
    mkdir -p "$dir"
    npm install --silent --no-audit --no-fund --prefix "$dir" "axe-core@$version" >/dev/null
    echo "$version" > "$dir/.axe-version"
  fi
  VISITPAY_AXE_JS="$(cd "$(dirname "$axe")" && pwd)/axe.min.js"
  export VISITPAY_AXE_JS
}

# cargo-machete (crates.io, pinned), for the check that no crate declares a
# dependency it does not use: installed once per machine beside the build
# cache, again only when the pin changes.
ensure_machete() {
  local version=0.9.2 root="$HOME/.cache/visitpay/tools"
  machete="$root/bin/cargo-machete"
  if [ ! -x "$machete" ] || [ "$("$machete" --version 2>/dev/null)" != "$version" ]; then
    echo "==> installing cargo-machete $version from crates.io"
    cargo install --quiet --locked --version "$version" cargo-machete --root "$root" \
      || { echo "cargo-machete could not be installed: the unused-dependency check cannot run" >&2; exit 1; }
  fi
}
