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

# agent_never_stops: the agent unit stays deactivating (a job that ignores SIGTERM, a stuck agent).
agent_never_stops() {
  respond_default systemctl-is-active 0 deactivating
}

# agent_stops_after_cancel: the agent runs its job until it is cancelled (SIGQUIT), then stops.
agent_stops_after_cancel() {
  agent_never_stops
  on_sleep "if grep -q -- '--signal=SIGQUIT' '$CALLS'; then
  printf '3\n' >'$FAKE_STATE/responses/systemctl-is-active/default.rc'
  printf 'inactive\n' >'$FAKE_STATE/responses/systemctl-is-active/default.out'
fi"
}

# grace_period SECONDS: the stack's InstanceTerminationGracePeriod, as the boot script left it.
grace_period() {
  set_setting "BUILDKITE_TERMINATION_GRACE_PERIOD=$1"
  write_settings_file
}

# assert_hook_kept_alive TIMEOUT: from the drain's start to the completion, the hook (heartbeat
# timeout TIMEOUT seconds) never went TIMEOUT seconds without a heartbeat.
assert_hook_kept_alive() {
  local timeout=$1 previous=$START_CLOCK at
  for at in $(clocks_at record-lifecycle-action-heartbeat) $(clock_at complete-lifecycle-action); do
    ((at - previous < timeout)) ||
      fail_with "no heartbeat between $previous and $at (hook timeout ${timeout}s)" || return 1
    previous=$at
  done
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

@test "a stuck agent: the job is cancelled at the grace period, then the action is completed" {
  grace_period 600
  imds autoscaling/target-lifecycle-state Terminated
  agent_never_stops
  instance_gone_at $((START_CLOCK + 7200)) # the old handler heartbeated until the hook's 48 h limit
  run_systemd_script "$HANDLER"
  assert_success

  assert_order \
    "systemctl stop --no-block buildkite-agent.service" \
    "record-lifecycle-action-heartbeat" \
    "systemctl kill --kill-whom=main --signal=SIGQUIT buildkite-agent.service" \
    "aws autoscaling complete-lifecycle-action $HOOK_ARGS --lifecycle-action-result CONTINUE"
  [[ "$(clock_at "--signal=SIGQUIT")" == $((START_CLOCK + 600)) ]] ||
    fail_with "cancelled at $(clock_at "--signal=SIGQUIT"), expected at the grace period"
  [[ "$(clock_at complete-lifecycle-action)" == $((START_CLOCK + 625)) ]] ||
    fail_with "completed at $(clock_at complete-lifecycle-action), expected 25 s after the cancel"
  for at in $(clocks_at record-lifecycle-action-heartbeat); do
    ((at <= START_CLOCK + 600)) || fail_with "heartbeat at $at, after the grace period"
  done
  assert_hook_kept_alive 600
  [[ "$(count_calls complete-lifecycle-action)" == 1 ]] || fail_with "expected one completion"
  [[ "$(count_calls "--signal=")" == 1 ]] || fail_with "expected the one SIGQUIT (no second SIGTERM, no SIGKILL)"
  [[ "$output" == *"drain outcome: cancel-timed-out"* ]] || fail_with "no drain outcome in the log"
}

@test "a job cancelled at the grace period: the action completes as soon as the agent stops" {
  grace_period 600
  imds autoscaling/target-lifecycle-state Terminated
  agent_stops_after_cancel
  instance_gone_at $((START_CLOCK + 7200))
  run_systemd_script "$HANDLER"
  assert_success
  [[ "$(clock_at "--signal=SIGQUIT")" == $((START_CLOCK + 600)) ]] || fail_with "SIGQUIT at $(clock_at "--signal=SIGQUIT")"
  [[ "$(clock_at complete-lifecycle-action)" == $((START_CLOCK + 610)) ]] ||
    fail_with "completed at $(clock_at complete-lifecycle-action)"
  [[ "$output" == *"drain outcome: cancelled-at-limit"* ]] || fail_with "no drain outcome in the log"
}

@test "a 30 s grace period: heartbeats every 10 s keep the hook alive until the cancel" {
  grace_period 30
  imds autoscaling/target-lifecycle-state Terminated
  agent_never_stops
  instance_gone_at $((START_CLOCK + 3600))
  run_systemd_script "$HANDLER"
  assert_success
  assert_hook_kept_alive 30
  [[ "$(clocks_at record-lifecycle-action-heartbeat | tr '\n' ' ')" == "$((START_CLOCK + 10)) $((START_CLOCK + 20)) $((START_CLOCK + 30)) " ]] ||
    fail_with "heartbeats at $(clocks_at record-lifecycle-action-heartbeat | tr '\n' ' ')"
  [[ "$(clock_at "--signal=SIGQUIT")" == $((START_CLOCK + 30)) ]] || fail_with "SIGQUIT at $(clock_at "--signal=SIGQUIT")"
  [[ "$(clock_at complete-lifecycle-action)" == $((START_CLOCK + 55)) ]] ||
    fail_with "completed at $(clock_at complete-lifecycle-action)"
}

@test "a restarted handler keeps the drain's first deadline and heartbeats at once" {
  grace_period 600
  imds autoscaling/target-lifecycle-state Terminated
  printf '%s\n' $((START_CLOCK - 500)) >"$ROOT/var/lib/bk-elastic-stack/drain-started"
  agent_never_stops
  instance_gone_at $((START_CLOCK + 7200))
  run_systemd_script "$HANDLER"
  assert_success
  [[ "$(clock_at record-lifecycle-action-heartbeat)" == "$START_CLOCK" ]] || fail_with "no heartbeat on resuming"
  [[ "$(clock_at "--signal=SIGQUIT")" == $((START_CLOCK + 100)) ]] || fail_with "SIGQUIT at $(clock_at "--signal=SIGQUIT")"
  [[ "$(clock_at complete-lifecycle-action)" == $((START_CLOCK + 125)) ]] ||
    fail_with "completed at $(clock_at complete-lifecycle-action)"
}

# spot_notice_at EPOCH [ACTION]: IMDS serves a spot interruption notice for EPOCH.
spot_notice_at() {
  imds spot/instance-action "{\"action\": \"${2:-terminate}\", \"time\": \"$(date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ)\"}"
}

@test "spot notice: SIGTERM at once, SIGQUIT 20 seconds before the termination time" {
  imds autoscaling/target-lifecycle-state InService
  notice_at=$((START_CLOCK + 120))
  spot_notice_at "$notice_at"
  respond_default systemctl-is-active 0 active
  instance_gone_at "$notice_at"
  run_systemd_script "$HANDLER"
  assert_killed_by_instance_end

  [[ -e "$MARKER" ]] || fail_with "no leaving marker"
  assert_order \
    "systemctl kill --kill-whom=main --signal=SIGTERM buildkite-agent.service" \
    "systemctl kill --kill-whom=main --signal=SIGQUIT buildkite-agent.service"
  [[ "$(clock_at "--signal=SIGTERM")" == "$START_CLOCK" ]] || fail_with "SIGTERM at $(clock_at "--signal=SIGTERM")"
  [[ "$(clock_at "--signal=SIGQUIT")" == $((notice_at - 20)) ]] ||
    fail_with "SIGQUIT at $(clock_at "--signal=SIGQUIT"), expected $((notice_at - 20))"
  [[ "$(count_calls "--signal=")" == 2 ]] || fail_with "expected one SIGTERM and one SIGQUIT"
  refute_called "terminate-instance-in-auto-scaling-group"
}

@test "spot notice closer than 20 seconds: SIGQUIT without waiting" {
  notice_at=$((START_CLOCK + 15))
  spot_notice_at "$notice_at" stop
  respond_default systemctl-is-active 0 active
  instance_gone_at "$notice_at"
  run_systemd_script "$HANDLER"
  assert_killed_by_instance_end
  assert_order "--signal=SIGTERM" "--signal=SIGQUIT" "sleep"
  [[ "$(clock_at "--signal=SIGQUIT")" == "$START_CLOCK" ]] || fail_with "SIGQUIT at $(clock_at "--signal=SIGQUIT")"
}

@test "spot notice after the agent already finished: no SIGQUIT" {
  notice_at=$((START_CLOCK + 120))
  spot_notice_at "$notice_at"
  respond_default systemctl-is-active 3 inactive
  instance_gone_at "$notice_at"
  run_systemd_script "$HANDLER"
  assert_killed_by_instance_end
  assert_called "--signal=SIGTERM"
  refute_called "--signal=SIGQUIT"
}

@test "spot notice during a drain: the job is cancelled before the interruption, then the action is completed" {
  imds autoscaling/target-lifecycle-state Terminated
  agent_stops_after_cancel
  # A rebalance drain is running; a minute later the two-minute notice arrives.
  notice_at=$((START_CLOCK + 180))
  on_sleep "if ((CLOCK >= $START_CLOCK + 60)) && [[ ! -e '$FAKE_STATE/imds/spot/instance-action' ]]; then
  mkdir -p '$FAKE_STATE/imds/spot'
  printf '{\"action\": \"terminate\", \"time\": \"%s\"}' '$(date -u -d "@$notice_at" +%Y-%m-%dT%H:%M:%SZ)' >'$FAKE_STATE/imds/spot/instance-action'
fi"
  instance_gone_at "$notice_at"
  run_systemd_script "$HANDLER"
  assert_success

  [[ "$(clock_at "--signal=SIGQUIT")" == $((notice_at - 20)) ]] ||
    fail_with "SIGQUIT at $(clock_at "--signal=SIGQUIT"), expected 20 s before the interruption"
  refute_called "--signal=SIGTERM" # the drain's stop already asked; a second SIGTERM cancels at once
  [[ "$(count_calls "systemctl stop")" == 1 ]] || fail_with "expected one stop"
  assert_order "--signal=SIGQUIT" "complete-lifecycle-action $HOOK_ARGS --lifecycle-action-result CONTINUE"
  (($(clock_at complete-lifecycle-action) < notice_at)) || fail_with "completed after the interruption"
}

@test "drain after a spot notice: the handler stays up and completes the lifecycle action" {
  imds autoscaling/target-lifecycle-state InService
  notice_at=$((START_CLOCK + 120))
  spot_notice_at "$notice_at"
  agent_stops_after 3 # the job finishes 30 s after the SIGTERM
  # The group then terminates the interrupted instance through its lifecycle hook.
  on_sleep "if ((CLOCK >= $START_CLOCK + 40)); then printf Terminated >'$FAKE_STATE/imds/autoscaling/target-lifecycle-state'; fi"
  instance_gone_at "$notice_at"
  run_systemd_script "$HANDLER"
  assert_success

  assert_order "--signal=SIGTERM" "aws autoscaling complete-lifecycle-action $HOOK_ARGS --lifecycle-action-result CONTINUE"
  refute_called "systemctl stop" # the agent was already asked to stop
  refute_called "--signal=SIGQUIT"
  (($(clock_at complete-lifecycle-action) < notice_at)) || fail_with "completed after the interruption"
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
  assert_called "systemctl enable --now buildkite-agent.service"
  [[ ! -e "$ROOT/var/lib/bk-elastic-stack/warm-pool" ]] || fail_with "warm-pool marker left behind"
  refute_called "lifecycle-action" # no launching hook (no warm pool): nothing to complete
}

@test "a spot notice on an instance whose agent is not running keeps the handler up" {
  notice_at=$((START_CLOCK + 120))
  spot_notice_at "$notice_at"
  respond systemctl-kill 1 "" "Failed to kill unit buildkite-agent.service: No main process to kill"
  respond_default systemctl-is-active 3 inactive
  instance_gone_at "$notice_at"
  run_systemd_script "$HANDLER"
  assert_killed_by_instance_end
  assert_called "--signal=SIGTERM"
}
