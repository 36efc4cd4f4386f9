#!/usr/bin/env bash
# Poll your events in a loop with curl (and jq): each answer's `next` is where the next request
# starts, and `wait=20` holds an empty poll open until an event comes (a long poll).
#
#   DISPATCHER_URL=http://127.0.0.1:3000 API_KEY=dk_… ./examples/poll.sh
#
# Keep the cursor somewhere that survives a restart (here, a file): start again from it and
# nothing is skipped or repeated. MAX_EVENTS stops after that many events (for trying it out).
set -euo pipefail
: "${DISPATCHER_URL:?set DISPATCHER_URL}" "${API_KEY:?set API_KEY}"
cursor_file="${CURSOR_FILE:-.cursor}"
after="$(cat "$cursor_file" 2>/dev/null || true)"
seen=0
while :; do
  page="$(curl -sS --fail-with-body -H "authorization: Bearer $API_KEY" \
    "$DISPATCHER_URL/v1/events?limit=100&wait=20${after:+&after=$after}")"
  # Handle each event: here, print it.
  jq -c '.data[]' <<<"$page"
  seen=$((seen + $(jq '.data | length' <<<"$page")))
  next="$(jq -r '.next // empty' <<<"$page")"
  if [ -n "$next" ]; then after="$next"; printf '%s' "$after" >"$cursor_file"; fi
  if [ -n "${MAX_EVENTS:-}" ] && [ "$seen" -ge "$MAX_EVENTS" ]; then break; fi
done
