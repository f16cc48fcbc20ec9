#!/usr/bin/env bats
# bk-lifecycle-handler (terminating lifecycle hook and spot notices) against fakes on PATH.

load helpers/common

setup() {
  setup_fakes
  write_settings_file
  HANDLER="$BIN_DIR/bk-lifecycle-handler"
  MARKER="$ROOT/var/lib/bk-elastic-stack/leaving"
  mkdir -p "$ROOT/var/lib/bk-elastic-stack"
  respond_default aws-autoscaling-describe-auto-scaling-instances 0 ci-fleet-AgentAutoScaleGroup-1A2B
  HOOK_ARGS="--lifecycle-hook-name instance_terminating --auto-scaling-group-name ci-fleet-AgentAutoScaleGroup-1A2B --instance-id $INSTANCE_ID"
}

# agent_stops_after N: the agent unit reports deactivating N times, then inactive.
agent_stops_after() {
  local answer
  for ((answer = 1; answer <= $1; answer++)); do
    respond systemctl-is-active 3 deactivating
  done
  respond_default systemctl-is-active 3 inactive
}

@test "drain: stop the agent gracefully, heartbeat while the job runs, then complete the action" {
  imds autoscaling/target-lifecycle-state Terminated
  agent_stops_after 15 # 15 polls of 10 s: the job needs 150 s more
  run_systemd_script "$HANDLER"
  assert_success

  [[ -e "$MARKER" ]] || fail_with "no leaving marker"
  assert_called "aws autoscaling describe-auto-scaling-instances --instance-ids $INSTANCE_ID"
  assert_order \
    "systemctl stop --no-block buildkite-agent.service" \
    "aws autoscaling record-lifecycle-action-heartbeat $HOOK_ARGS" \
    "aws autoscaling complete-lifecycle-action $HOOK_ARGS --lifecycle-action-result CONTINUE"
  [[ "$(count_calls record-lifecycle-action-heartbeat)" == 2 ]] || fail_with "expected heartbeats at 60 s and 120 s"
  [[ "$(count_calls complete-lifecycle-action)" == 1 ]] || fail_with "expected one completion"
  last_call="$(tail -n 1 "$CALLS")"
  [[ "$last_call" == *"complete-lifecycle-action"* ]] || fail_with "completed before the agent stopped"
  refute_called "terminate-instance-in-auto-scaling-group"
  refute_called "set-instance-health"
}

@test "drain: the agent's ExecStopPost then leaves the instance to the hook" {
  imds autoscaling/target-lifecycle-state Terminated
  agent_stops_after 1
  run_systemd_script "$HANDLER"
  assert_success
  # systemd runs ExecStopPost when the agent exits; the drain left its marker.
  run_systemd_script "$BIN_DIR/bk-terminate-instance"
  assert_success
  refute_called "terminate-instance-in-auto-scaling-group"
  refute_called "set-instance-health"
  assert_called "complete-lifecycle-action"
}

@test "drain of an idle agent completes without heartbeats" {
  imds autoscaling/target-lifecycle-state Terminated
  agent_stops_after 0
  run_systemd_script "$HANDLER"
  assert_success
  refute_called "record-lifecycle-action-heartbeat"
  assert_called "aws autoscaling complete-lifecycle-action $HOOK_ARGS --lifecycle-action-result CONTINUE"
}

@test "a failed completion exits non-zero so systemd restarts the handler" {
  imds autoscaling/target-lifecycle-state Terminated
  agent_stops_after 0
  respond aws-autoscaling-complete-lifecycle-action 254 "" "An error occurred (ValidationError)"
  run_systemd_script "$HANDLER"
  assert_failure
}

@test "without a lifecycle hook the drain still stops the agent but calls no hook API" {
  set_setting BUILDKITE_LIFECYCLE_HOOK_NAME=
  write_settings_file
  imds autoscaling/target-lifecycle-state Terminated
  agent_stops_after 8
  run_systemd_script "$HANDLER"
  assert_success
  assert_called "systemctl stop --no-block buildkite-agent.service"
  refute_called "lifecycle-action"
}

@test "spot notice: SIGTERM at once, SIGQUIT 20 seconds before the termination time" {
  imds autoscaling/target-lifecycle-state InService
  notice_at=$((START_CLOCK + 120))
  imds spot/instance-action "{\"action\": \"terminate\", \"time\": \"$(date -u -d "@$notice_at" +%Y-%m-%dT%H:%M:%SZ)\"}"
  respond_default systemctl-is-active 0 active
  run_systemd_script "$HANDLER"
  assert_success

  [[ -e "$MARKER" ]] || fail_with "no leaving marker"
  assert_order \
    "systemctl kill --kill-whom=main --signal=SIGTERM buildkite-agent.service" \
    "sleep 100" \
    "systemctl kill --kill-whom=main --signal=SIGQUIT buildkite-agent.service"
  [[ "$(clock)" == $((notice_at - 20)) ]] || fail_with "SIGQUIT at $(clock), expected $((notice_at - 20))"
  refute_called "terminate-instance-in-auto-scaling-group"
}

@test "spot notice closer than 20 seconds: SIGQUIT without waiting" {
  notice_at=$((START_CLOCK + 15))
  imds spot/instance-action "{\"action\": \"stop\", \"time\": \"$(date -u -d "@$notice_at" +%Y-%m-%dT%H:%M:%SZ)\"}"
  respond_default systemctl-is-active 0 active
  run_systemd_script "$HANDLER"
  assert_success
  refute_called "sleep"
  assert_order "--signal=SIGTERM" "--signal=SIGQUIT"
}

@test "spot notice after the agent already finished: no SIGQUIT" {
  notice_at=$((START_CLOCK + 120))
  imds spot/instance-action "{\"action\": \"terminate\", \"time\": \"$(date -u -d "@$notice_at" +%Y-%m-%dT%H:%M:%SZ)\"}"
  respond_default systemctl-is-active 3 inactive
  run_systemd_script "$HANDLER"
  assert_success
  assert_called "--signal=SIGTERM"
  refute_called "--signal=SIGQUIT"
}

@test "in service with no notice: the handler does nothing" {
  imds autoscaling/target-lifecycle-state InService
  run_systemd_script "$HANDLER" --once
  assert_success
  refute_called "systemctl"
  refute_called "aws "
  [[ ! -e "$MARKER" ]] || fail_with "leaving marker written"
}

@test "the handler keeps polling until the group starts terminating the instance" {
  imds autoscaling/target-lifecycle-state InService
  agent_stops_after 0
  # The group moves the instance to Terminating:Wait during the third wait between polls.
  cat >"$FAKE_STATE/on-sleep" <<HOOK
if [[ \$(grep -c '^sleep 5\$' "$CALLS") == 3 ]]; then
  printf Terminated >"$FAKE_STATE/imds/autoscaling/target-lifecycle-state"
fi
HOOK
  run_systemd_script "$HANDLER"
  assert_success
  [[ "$(count_calls "sleep 5")" == 3 ]] || fail_with "expected three polls before the drain"
  assert_order "sleep 5" "systemctl stop --no-block buildkite-agent.service" "complete-lifecycle-action"
}

@test "an instance leaving the warm pool starts its agent" {
  imds autoscaling/target-lifecycle-state InService
  touch "$ROOT/var/lib/bk-elastic-stack/warm-pool"
  run_systemd_script "$HANDLER" --once
  assert_success
  assert_called "systemctl start buildkite-agent.service"
  [[ ! -e "$ROOT/var/lib/bk-elastic-stack/warm-pool" ]] || fail_with "warm-pool marker left behind"
}
