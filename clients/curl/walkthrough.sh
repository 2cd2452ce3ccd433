#!/usr/bin/env bash
# A walk-through of the tuneforge REST API with nothing but curl and python3.
#
#   bash clients/curl/walkthrough.sh http://127.0.0.1:8000
#
# It creates a study, asks for trials, reports measurements, completes the
# trials, reads the best one, and shows what an error looks like. Every
# response is printed. Any unexpected status makes the script exit non-zero.
# docs/curl.md explains each step.
#
# Environment (all optional):
#   TUNEFORGE_URL       server address when no argument is given (default http://127.0.0.1:8000)
#   TUNEFORGE_API_KEY   sent as "Authorization: Bearer ..." when set
#   STUDY_NAME          the study's name (default: curl-walkthrough-<time>-<pid>, new every run)
set -euo pipefail

BASE=${1:-${TUNEFORGE_URL:-http://127.0.0.1:8000}}
BASE=${BASE%/}
API=${BASE%/api/v1}/api/v1
STUDY_NAME=${STUDY_NAME:-curl-walkthrough-$(date +%Y%m%d%H%M%S)-$$}
CLIENT_ID="curl-$(hostname 2>/dev/null || echo host)-$$"

for tool in curl python3; do
  command -v "$tool" >/dev/null || { echo "walkthrough: $tool is required" >&2; exit 2; }
done

BODY_FILE=$(mktemp)
trap 'rm -f "$BODY_FILE"' EXIT

# call EXPECTED_STATUS METHOD PATH [JSON_BODY]
# Sends one request, prints it and the response, and fails unless the status
# is the expected one. The response body is left in $BODY_FILE (see `field`).
call() {
  local expected=$1 method=$2 path=$3 data=${4:-}
  local args=(-sS -X "$method" -o "$BODY_FILE" -w '%{http_code}'
    --connect-timeout 5 --max-time 30
    -H 'accept: application/json')
  [[ -n ${TUNEFORGE_API_KEY:-} ]] && args+=(-H "authorization: Bearer $TUNEFORGE_API_KEY")
  [[ -n $data ]] && args+=(-H 'content-type: application/json' --data-binary "$data")
  local shown="\$ curl -X $method $API$path"
  [[ -n $data ]] && shown+=" -d '$(compact "$data")'"
  echo "$shown"
  local status
  status=$(curl "${args[@]}" "$API$path") || { echo "walkthrough: curl failed for $method $path" >&2; return 1; }
  echo "<- HTTP $status"
  python3 -m json.tool --indent 2 "$BODY_FILE" 2>/dev/null || cat "$BODY_FILE"
  echo
  if [[ $status != "$expected" ]]; then
    echo "walkthrough: expected HTTP $expected from $method $path, got $status" >&2
    return 1
  fi
}

# compact JSON: one line, for the echoed command
compact() { python3 -c 'import json, sys; print(json.dumps(json.loads(sys.argv[1])))' "$1"; }

# field EXPRESSION: evaluate a Python expression over the last response body,
# bound to `r`; e.g. field 'r["id"]' or field 'r["trials"][0]["number"]'.
field() {
  python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
v = eval(sys.argv[2], {"r": r})
print(json.dumps(v) if isinstance(v, (dict, list, bool)) or v is None else v)
' "$BODY_FILE" "$1"
}

step() { printf '\n=== %s\n' "$*"; }

step "0. Is the server up? (/healthz is outside /api/v1)"
curl -sSf --max-time 10 "${API%/api/v1}/healthz"
echo

# 1. Create a study: two parameters, one metric to minimize, at most 4 trials.
#    The reply is the Study: the spec with defaults filled in, plus id, state,
#    trial_counts and best_trial. A second create with the same name is a 409
#    unless ?if_exists=return and the spec is identical.
step "1. Create a study"
call 201 POST /studies "{
  \"name\": \"$STUDY_NAME\",
  \"parameters\": [
    {\"name\": \"lr\", \"type\": \"float\", \"low\": 0.0001, \"high\": 0.1, \"scale\": \"log\"},
    {\"name\": \"layers\", \"type\": \"int\", \"low\": 1, \"high\": 4}
  ],
  \"metrics\": [{\"name\": \"loss\", \"goal\": \"minimize\"}],
  \"max_trials\": 4
}"
STUDY=$(field 'r["id"]')
echo "study id: $STUDY"

# 2-4. Work through the trials like a worker would, until suggest has none.
n=0
while :; do
  # 2. Suggest. The client_id makes it idempotent: asking again before the
  #    trial is finished returns the same trial, so a lost reply never leaks one.
  step "2. Suggest a trial (client_id $CLIENT_ID)"
  call 200 POST "/studies/$STUDY/trials/suggest" "{\"count\": 1, \"client_id\": \"$CLIENT_ID\"}"
  if [[ $(field 'len(r["trials"])') == 0 ]]; then
    echo "no more trials: study_state is $(field 'r["study_state"]')"
    break
  fi
  TRIAL=$(field 'r["trials"][0]["number"]')
  LR=$(field 'r["trials"][0]["params"]["lr"]')
  LAYERS=$(field 'r["trials"][0]["params"]["layers"]')
  echo "trial $TRIAL: lr=$LR layers=$LAYERS"

  # 3. Report a measurement per "epoch". The reply carries the early-stopping
  #    decision: should_stop true means stop training and complete now.
  #    Re-sending the same step is a no-op, so a worker may retry freely.
  LOSS=""
  for epoch in 1 2; do
    LOSS=$(python3 -c 'import math, sys; lr, layers, e = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]); print(round((math.log10(lr) + 2.5) ** 2 + 0.1 * layers + 1.0 / e, 6))' "$LR" "$LAYERS" "$epoch")
    step "3. Report step $epoch of trial $TRIAL: loss=$LOSS"
    call 200 POST "/studies/$STUDY/trials/$TRIAL/measurements" "{\"step\": $epoch, \"values\": {\"loss\": $LOSS}, \"elapsed_seconds\": $epoch.5}"
    if [[ $(field 'r["should_stop"]') == true ]]; then
      echo "the server says stop"
      break
    fi
  done

  # 4. Complete with the final value; the reply is the finished Trial.
  step "4. Complete trial $TRIAL"
  call 200 POST "/studies/$STUDY/trials/$TRIAL/complete" "{\"values\": {\"loss\": $LOSS}}"
  n=$((n + 1))
  if ((n > 20)); then
    echo "walkthrough: the study should have completed after 4 trials" >&2
    exit 1
  fi
done

# 5. The best trial: {"trials": [one trial]} (the Pareto front for several goals).
step "5. The best trial"
call 200 GET "/studies/$STUDY/best"
echo "best: trial $(field 'r["trials"][0]["number"]') with loss $(field 'r["trials"][0]["values"]["loss"]')"

# The study itself: state completed (its max_trials budget is spent), trial counts.
step "5b. The study"
call 200 GET "/studies/$STUDY"
echo "state=$(field 'r["state"]') completion_reason=$(field 'r["completion_reason"]') trial_counts=$(field 'r["trial_counts"]')"

# 6. Errors all have one shape: {"error": {"code", "message", "details"}}, the
#    message starting with the offending field. Here: writing to a finished
#    trial (409), an unknown study (404), and an invalid spec (422).
step "6. Errors: a write to a finished trial"
call 409 POST "/studies/$STUDY/trials/0/complete" '{"values": {"loss": 0.0}}'
echo "code=$(field 'r["error"]["code"]')"

step "6b. Errors: an unknown study"
call 404 GET "/studies/999999999"

step "6c. Errors: an invalid spec (log scale needs low > 0)"
call 422 POST /studies '{"name": "broken", "parameters": [{"name": "lr", "type": "float", "low": 0, "high": 1, "scale": "log"}], "metrics": [{"name": "loss", "goal": "minimize"}]}'
echo "field=$(field 'r["error"]["details"]["field"]')"

step "done: study $STUDY ($STUDY_NAME) completed $n trials"
