#!/usr/bin/env bash
# The pause / resume cycle of an ASHA study with nothing but curl and python3:
# a worker loop that trains by epochs, saves a checkpoint when the server says
# stop, completes the trial (recorded paused), and later gets it back from
# suggest with resume_from_step, loads the checkpoint and trains on.
#
#   bash clients/curl/pause_resume.sh http://127.0.0.1:8000
#
# docs/curl.md ("Pause and resume") explains it. Any unexpected status makes
# the script exit non-zero.
#
# Environment (all optional):
#   TUNEFORGE_URL       server address when no argument is given (default http://127.0.0.1:8000)
#   TUNEFORGE_API_KEY   sent as "Authorization: Bearer ..." when set
#   STUDY_NAME          the study's name (default: curl-asha-<time>-<pid>, new every run)
set -euo pipefail

BASE=${1:-${TUNEFORGE_URL:-http://127.0.0.1:8000}}
BASE=${BASE%/}
API=${BASE%/api/v1}/api/v1
STUDY_NAME=${STUDY_NAME:-curl-asha-$(date +%Y%m%d%H%M%S)-$$}
CLIENT_ID="curl-asha-$$"
EPOCHS=9

for tool in curl python3; do
  command -v "$tool" >/dev/null || { echo "pause_resume: $tool is required" >&2; exit 2; }
done
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# req EXPECTED METHOD PATH [curl options...]: one request; the reply body is left
# in $WORK/reply and the script stops unless the status is EXPECTED.
req() {
  local expected=$1 method=$2 path=$3
  shift 3
  local auth=()
  [[ -n ${TUNEFORGE_API_KEY:-} ]] && auth=(-H "authorization: Bearer $TUNEFORGE_API_KEY")
  local status
  status=$(curl -sS --connect-timeout 5 --max-time 30 "${auth[@]}" -X "$method" \
    -o "$WORK/reply" -w '%{http_code}' "$@" "$API$path")
  if [[ $status != "$expected" ]]; then
    echo "pause_resume: expected HTTP $expected from $method $path, got $status" >&2
    cat "$WORK/reply" >&2
    return 1
  fi
}
json() { req "$@" -H 'content-type: application/json'; }
# get EXPR: a Python expression over the last JSON reply, bound to `r`
get() { python3 -c 'import json, sys; r = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$WORK/reply" "$1"; }

json 201 POST /studies -d "{
  \"name\": \"$STUDY_NAME\",
  \"parameters\": [{\"name\": \"lr\", \"type\": \"float\", \"low\": 0.001, \"high\": 1, \"scale\": \"log\"}],
  \"metrics\": [{\"name\": \"accuracy\", \"goal\": \"maximize\"}],
  \"fidelity\": {\"name\": \"epochs\", \"min\": 1, \"max\": $EPOCHS},
  \"early_stopping\": {\"rule\": \"asha\", \"reduction_factor\": 3},
  \"max_trials\": 9
}"
SID=$(get 'r["id"]')
echo "study $SID ($STUDY_NAME): asha, epochs 1 to $EPOCHS, rungs at 1 and 3"

# A fresh trial has no checkpoint: 404 whose details name the field "checkpoint"
# (a 404 naming "number" would mean the trial does not exist).
json 200 POST "/studies/$SID/trials/suggest" -d "{\"count\": 1, \"client_id\": \"$CLIENT_ID\"}"
N=$(get 'r["trials"][0]["number"]')
req 404 GET "/studies/$SID/trials/$N/checkpoint"
echo "trial $N has no checkpoint yet: 404 with details.field=$(get 'r["error"]["details"]["field"]')"

# --- the worker loop (docs/curl.md)
trained=0
while :; do
  json 200 POST "/studies/$SID/trials/suggest" -d "{\"count\": 1, \"client_id\": \"$CLIENT_ID\"}"
  if [[ $(get 'len(r["trials"])') == 0 ]]; then
    [[ $(get 'r["study_state"]') != active ]] && break  # completed: every trial is finished
    sleep 0.5 && continue                                 # other workers still train
  fi
  N=$(get 'r["trials"][0]["number"]')
  LR=$(get 'r["trials"][0]["params"]["lr"]')
  FROM=$(get 'r["trials"][0]["resume_from_step"]')     # None, or the step it paused at
  EPOCH=0 ACC=0
  if [[ $FROM != None ]]; then                            # promoted: train on from the checkpoint
    req 200 GET "/studies/$SID/trials/$N/checkpoint"
    read -r EPOCH ACC <"$WORK/reply"
    echo "trial $N resumed at epoch $FROM from a checkpoint of epoch $EPOCH"
  fi
  while ((EPOCH < EPOCHS)); do
    EPOCH=$((EPOCH + 1)) trained=$((trained + 1))
    ACC=$(python3 -c 'import math, sys; lr, acc = map(float, sys.argv[1:])
print(round(acc + (1 - abs(math.log10(lr) + 1.5) / 3 - acc) / 2, 6))' "$LR" "$ACC")
    json 200 POST "/studies/$SID/trials/$N/measurements" \
      -d "{\"step\": $EPOCH, \"values\": {\"accuracy\": $ACC}}"
    if [[ $(get 'r["should_stop"]') == True ]]; then   # save what a promotion trains on from
      echo "$EPOCH $ACC" >"$WORK/state"
      req 200 PUT "/studies/$SID/trials/$N/checkpoint?step=$EPOCH" \
        -H 'content-type: application/octet-stream' --data-binary @"$WORK/state"
      break
    fi
  done
  json 200 POST "/studies/$SID/trials/$N/complete" -d "{\"values\": {\"accuracy\": $ACC}}"
  echo "trial $N $(get 'r["state"]') at epoch $EPOCH"   # paused (may come back) or completed
done
# --- end of the worker loop

req 200 GET "/studies/$SID/best"
echo "trained $trained epochs; best: trial $(get 'r["trials"][0]["number"]') accuracy $(get 'r["trials"][0]["values"]["accuracy"]')"
req 200 GET "/studies/$SID"
echo "state=$(get 'r["state"]') trial_counts=$(get 'r["trial_counts"]')"
