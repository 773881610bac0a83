#!/usr/bin/env bash
# Property-based tests of the HTTP API described by openapi.yaml, against the
# local run: starts visitpay-local on a free loopback port (fresh, in-memory
# store and Stripe emulator, demo clinic seeded), runs schemathesis as the
# demo clinic's staff, then the settings routes as support, and stops the
# server. Fails on any 5xx, any answer that does not match its documented
# schema, any undocumented status code and any undocumented content type.
#
#   scripts/schemathesis.sh <path-to-visitpay-local> <path-to-schemathesis>
#
# SCHEMATHESIS_MAX_EXAMPLES (default 200) bounds the cases per operation and
# phase; SCHEMATHESIS_SEED replays a run (each run prints its seed);
# SCHEMATHESIS_REPORT_DIR, when set, receives JUnit and HAR reports.
set -euo pipefail

if [ "$#" -ne 2 ]; then
  echo "usage: $0 <path-to-visitpay-local-binary> <path-to-schemathesis>" >&2
  exit 2
fi
binary="$1"
schemathesis="$2"
cd "$(dirname "$0")/.."
spec="$PWD/openapi.yaml"
[ -x "$binary" ] || { echo "$0: $binary is not an executable" >&2; exit 2; }
[ -x "$schemathesis" ] || { echo "$0: $schemathesis is not an executable" >&2; exit 2; }

work="$(mktemp -d -t visitpay-schemathesis.XXXXXX)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# No STRIPE_SECRET_KEY / AWS_ENDPOINT_URL: the embedded store and queue and the
# Stripe emulator, all in memory, so every run starts from the same seed data.
# The server's JSON logs go to a file, shown only if something fails.
env -u STRIPE_SECRET_KEY -u AWS_ENDPOINT_URL VISITPAY_ADDR=127.0.0.1:0 RUST_LOG="${RUST_LOG:-warn}" \
  "$binary" >"$work/server.out" 2>"$work/server.log" &
server_pid=$!

for _ in $(seq 1 300); do
  grep -qx ready "$work/server.out" 2>/dev/null && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
if ! grep -qx ready "$work/server.out" 2>/dev/null; then
  echo "visitpay-local did not become ready; its output follows" >&2
  cat "$work/server.out" "$work/server.log" >&2
  exit 1
fi
base="$(sed -n 's|^visitpay-local listening on \(http://[^ ]*\)$|\1|p' "$work/server.out")"
staff="$(sed -n 's/^staff token (clinic [^)]*): //p' "$work/server.out")"
support="$(sed -n 's/^support token: //p' "$work/server.out")"
if [ -z "$base" ] || [ -z "$staff" ] || [ -z "$support" ]; then
  echo "could not read the address and tokens from visitpay-local's output" >&2
  cat "$work/server.out" >&2
  exit 1
fi
echo "==> visitpay-local at $base"

# Known actions and patient links, so that generated requests also reach the
# success answers of the action and patient routes (random ids only find 404):
# one open action for staff to cancel, one open action for the patient to check
# out, and one the patient has paid (through the Stripe emulator's test call,
# as CONTRACT.md describes it) for staff to refund.
command -v curl >/dev/null || { echo "$0: curl is required" >&2; exit 2; }
api() { # METHOD PATH [JSON] -> the answer's body; fails on anything but 2xx
  curl -sS --fail-with-body -X "$1" "$base$2" -H "Authorization: Bearer $staff" \
    -H 'Content-Type: application/json' ${3:+--data "$3"}
}
field() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p" | head -n 1; }
token_of() { field patient_url | sed 's|.*/||'; }
patient=demo-patient
for i in 1 2 3; do
  api PUT "/patients/$patient/invoices/schemathesis-$i" \
    "{\"amount\":${i}500,\"currency\":\"cad\",\"description\":\"fixture $i\",\"service_date\":\"2026-11-20\"}" >/dev/null
done
api POST "/patients/$patient/invoices/select" \
  '{"invoice_ids":["schemathesis-1","schemathesis-2","schemathesis-3"]}' >/dev/null
assign() {
  api POST /visits/schemathesis-visit/actions "{\"patient_id\":\"$patient\",\"invoice_ids\":[\"schemathesis-$1\"]}"
}
to_cancel="$(assign 1 | field action_id)"
to_check_out="$(assign 2 | token_of)"
paid_answer="$(assign 3)"
paid="$(echo "$paid_answer" | field action_id)"
paid_token="$(echo "$paid_answer" | token_of)"
session="$(curl -sS --fail-with-body -X POST "$base/patient/actions/$paid_token/checkout" | field checkout_url | sed 's|.*/||')"
curl -sS --fail-with-body -X POST "$base/stripe/test/checkout_sessions/$session/pay" \
  -H 'Content-Type: application/json' -d '{"outcome":"succeeded","send_webhooks":true}' >/dev/null
for _ in $(seq 1 100); do
  [ "$(api GET "/actions/$paid" | sed -n 's/.*"status":"\([a-z_]*\)".*/\1/p')" = paid ] && break
  sleep 0.1
done
if [ "$(api GET "/actions/$paid" | sed -n 's/.*"status":"\([a-z_]*\)".*/\1/p')" != paid ]; then
  echo "the fixture payment was not applied; the server log follows" >&2
  cat "$work/server.log" >&2
  exit 1
fi
echo "==> fixtures: actions $to_cancel (open), $paid (paid); two patient links"

# Generated action ids and patient tokens are drawn from these known ones half
# of the time (patient ids: the demo patient, 30%), random otherwise.
# The stateful phase follows the links written in openapi.yaml only: import
# an invoice -> select it -> assign an action -> read, list, cancel, refund it,
# and the patient's view and checkout through the token in `patient_url`.
# (Links inferred by schemathesis would make cancel and refund the entry
# points, with random action ids that can only answer 404.)
# Schemathesis' cache (crashes to replay) goes with the reports, or is
# dropped with the temporary directory: nothing is written into the repository.
cat >"$work/schemathesis.toml" <<EOF
[cache]
directory = "${SCHEMATHESIS_REPORT_DIR:-$work}/cache"
[dictionaries.actions]
values = ["$to_cancel", "$paid"]
[dictionaries.tokens]
values = ["$to_check_out", "$paid_token"]
[dictionaries.patients]
values = ["$patient"]
[parameters]
"path.action_id" = { dictionary = "actions", probability = 0.5 }
"path.token" = { dictionary = "tokens", probability = 0.5 }
"path.patient_id" = { dictionary = "patients", probability = 0.3 }
[phases.stateful]
inference.algorithms = []
EOF

# Hypothesis keeps its own files (.hypothesis/) in the temporary directory too.
export HYPOTHESIS_STORAGE_DIRECTORY="$work/hypothesis"

seed="${SCHEMATHESIS_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}"
max_examples="${SCHEMATHESIS_MAX_EXAMPLES:-200}"

# Every phase (examples, coverage, fuzzing, stateful via the spec's links) in
# positive and negative mode. The four checks below are the whole contract:
# no 5xx, bodies match their schema, only documented statuses and content
# types. No check is excluded for any route. The example database is off.
# One worker: CPython 3.11's ast module keeps its recursion depth in state
# shared by threads, so two workers' Hypothesis parsing lambdas' sources at
# once fail at random with "SystemError: AST constructor recursion depth
# mismatch" (python/cpython#106905).
run() {
  local who="$1" token="$2"
  shift 2
  local report=()
  if [ -n "${SCHEMATHESIS_REPORT_DIR:-}" ]; then
    report=(--report junit,har --report-dir "$SCHEMATHESIS_REPORT_DIR/$who")
  fi
  echo "==> schemathesis as $who (seed $seed, at most $max_examples examples per operation)"
  timeout 600 "$schemathesis" --config-file "$work/schemathesis.toml" run "$spec" \
    --url "$base" \
    --header "Authorization: Bearer $token" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --mode all \
    --max-examples "$max_examples" \
    --seed "$seed" \
    --workers 1 \
    --request-timeout 10 \
    --generation-database none \
    --no-color \
    ${report[@]+"${report[@]}"} \
    "$@"
}

status=0
# Staff: every operation. The support-only PUT settings answers staff 403
# (documented); the patient and Stripe routes ignore the bearer token.
run staff "$staff" || status=1
# Support: the settings routes, so that PUT settings is exercised past its
# role check (and GET settings for any clinic).
# (No stateful phase: no link starts or ends at the settings routes.)
run support "$support" --include-path-regex '^/clinics/' --phases examples,coverage,fuzzing || status=1

if [ "$status" -ne 0 ]; then
  echo "schemathesis found problems; the last server log lines follow" >&2
  tail -n 50 "$work/server.log" >&2
fi
exit "$status"
