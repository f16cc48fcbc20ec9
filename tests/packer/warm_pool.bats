#!/usr/bin/env bats
# The warm pool's instance lifecycle, against fakes on PATH: the boot that warms an instance, the
# lifecycle handler that puts it in service (resume) and parks it again (return to the pool).
#
# AWS: the launching hook holds an instance at Warmed:Pending:Wait on its way into the pool and
# at Pending:Wait on its way out; an instance the reuse policy returns to the pool on scale-in
# waits at Warmed:Pending:Wait on the terminating hook. IMDS target-lifecycle-state reads
# Warmed:Stopped (or Warmed:Hibernated) into the pool and InService out of it.

load helpers/common

TOKEN=bkua_0123456789abcdefSECRETtoken
GROUP=ci-fleet-AgentAutoScaleGroup-1A2B

setup() {
  setup_fakes
  set_setting BUILDKITE_LAUNCHING_HOOK_NAME=instance_launching
  BOOT="$BIN_DIR/bk-install-elastic-stack.sh"
  HANDLER="$BIN_DIR/bk-lifecycle-handler"
  STATE_DIR="$ROOT/var/lib/bk-elastic-stack"
  WARM_MARKER="$STATE_DIR/warm-pool"
  LEAVING_MARKER="$STATE_DIR/leaving"
  DRAIN_STARTED="$STATE_DIR/drain-started"
  respond_default aws-autoscaling-describe-auto-scaling-instances 0 "$GROUP"
  LAUNCHING_ARGS="--lifecycle-hook-name instance_launching --auto-scaling-group-name $GROUP --instance-id $INSTANCE_ID"
  TERMINATING_ARGS="--lifecycle-hook-name instance_terminating --auto-scaling-group-name $GROUP --instance-id $INSTANCE_ID"
}

given_token() {
  respond aws-ssm-get-parameter 0 "$TOKEN"
}

# a_booted_instance [warm]: the boot completed; with warm, it left the agent for later (warming
# boot, or a return to the pool).
a_booted_instance() {
  write_settings_file
  mkdir -p "$STATE_DIR"
  printf 'Completed\n' >"$STATE_DIR/boot-status"
  if [[ "${1:-}" == warm ]]; then
    : >"$WARM_MARKER"
  fi
}

# agent_stops_after N: the agent unit reports deactivating N times (its job runs on), then inactive.
agent_stops_after() {
  local answer
  for ((answer = 1; answer <= $1; answer++)); do
    respond systemctl-is-active 3 deactivating
  done
  respond_default systemctl-is-active 3 inactive
}

# target_state_after TEXT STATE: once a call containing TEXT was made, IMDS reads STATE.
target_state_after() {
  on_sleep "if grep -qF -- '$1' '$CALLS'; then printf '%s' '$2' >'$FAKE_STATE/imds/autoscaling/target-lifecycle-state'; fi"
}

@test "warming: the boot does all its work, then completes the launching hook last, agent left off" {
  given_token
  imds autoscaling/target-lifecycle-state Warmed:Stopped
  run_script "$BOOT"
  assert_success

  assert_order \
    "systemctl restart docker.service" \
    "aws ssm get-parameter" \
    "systemctl enable --now bk-lifecycle-handler.service" \
    "docker info" \
    "cfn-signal --region us-east-1 --stack ci-fleet-Fleet-1A2B3C --resource AgentAutoScaleGroup --exit-code 0" \
    "aws autoscaling complete-lifecycle-action $LAUNCHING_ARGS --lifecycle-action-result CONTINUE"
  # The group stops the instance as soon as the hook completes: nothing may come after it.
  [[ "$(tail -n 1 "$CALLS")" == *"complete-lifecycle-action $LAUNCHING_ARGS --lifecycle-action-result CONTINUE" ]] ||
    fail_with "the launching hook was not completed last"
  [[ "$(<"$STATE_DIR/boot-status")" == Completed ]] || fail_with "status: $(<"$STATE_DIR/boot-status")"
  [[ -e "$WARM_MARKER" ]] || fail_with "no warm-pool marker"
  refute_called "buildkite-agent.service"
  [[ "$(count_calls "record-lifecycle-action-heartbeat $LAUNCHING_ARGS")" == 2 ]] ||
    fail_with "expected heartbeats after the instance preparation and the bootstrap script"
  grep -qx "export BUILDKITE_LAUNCHING_HOOK_NAME=instance_launching" "$ROOT/etc/buildkite-agent/cfn-env" ||
    fail_with "the launching hook's name is not in the settings file"
}

@test "a boot that cannot read the target state completes the launching hook; the handler starts the agent" {
  given_token
  rm "$FAKE_STATE/imds/autoscaling/target-lifecycle-state"
  run_script "$BOOT"
  assert_success
  [[ "$(tail -n 1 "$CALLS")" == *"complete-lifecycle-action $LAUNCHING_ARGS --lifecycle-action-result CONTINUE" ]] ||
    fail_with "the launching hook was not completed last"
  refute_called "buildkite-agent.service"

  # The group put the instance in service; the handler finds the action completed already.
  imds autoscaling/target-lifecycle-state InService
  respond_default aws-autoscaling-complete-lifecycle-action 254 "" \
    "An error occurred (ValidationError) when calling the CompleteLifecycleAction operation: No active Lifecycle Action found with instance ID $INSTANCE_ID"
  run_systemd_script "$HANDLER" --once
  assert_success
  [[ "$(count_calls "complete-lifecycle-action $LAUNCHING_ARGS")" == 2 ]] || fail_with "expected the handler to try"
  assert_called "systemctl enable --now buildkite-agent.service"
  [[ "$output" == *"holds no lifecycle action"* ]] || fail_with "the empty hook was not logged"
}

@test "warming: the lifecycle handler leaves a booting or warm instance alone" {
  write_settings_file
  mkdir -p "$STATE_DIR"
  printf 'Started\n' >"$STATE_DIR/boot-status"
  imds autoscaling/target-lifecycle-state Warmed:Stopped
  run_systemd_script "$HANDLER" --once
  assert_success
  refute_called "systemctl"
  refute_called "aws "

  a_booted_instance warm
  run_systemd_script "$HANDLER" --once
  assert_success
  refute_called "systemctl"
  refute_called "aws "
  [[ ! -e "$LEAVING_MARKER" ]] || fail_with "leaving marker written"
}

@test "a launch straight into service completes the launching hook, then starts the agent" {
  given_token
  run_script "$BOOT"
  assert_success
  assert_order \
    "docker info" \
    "aws autoscaling complete-lifecycle-action $LAUNCHING_ARGS --lifecycle-action-result CONTINUE" \
    "systemctl enable --now buildkite-agent.service"
  [[ ! -e "$WARM_MARKER" ]] || fail_with "warm-pool marker written"
}

@test "a failed warming boot abandons the launching hook: the group terminates the instance" {
  respond aws-ssm-get-parameter 254 "" "An error occurred (AccessDeniedException)"
  imds autoscaling/target-lifecycle-state Warmed:Stopped
  run_script "$BOOT"
  assert_failure
  assert_called "aws autoscaling complete-lifecycle-action $LAUNCHING_ARGS --lifecycle-action-result ABANDON"
  refute_called "--lifecycle-action-result CONTINUE"
  refute_called "buildkite-agent.service"
  [[ "$(<"$STATE_DIR/boot-status")" == Failed ]] || fail_with "status: $(<"$STATE_DIR/boot-status")"
}

@test "a launching hook that holds no action (timed out already) does not fail the boot" {
  given_token
  imds autoscaling/target-lifecycle-state Warmed:Stopped
  respond aws-autoscaling-complete-lifecycle-action 254 "" \
    "An error occurred (ValidationError) when calling the CompleteLifecycleAction operation: No active Lifecycle Action found with instance ID $INSTANCE_ID"
  run_script "$BOOT"
  assert_success
  [[ "$(<"$STATE_DIR/boot-status")" == Completed ]] || fail_with "status: $(<"$STATE_DIR/boot-status")"
  refute_called "ABANDON"
}

@test "without a launching hook (no warm pool) the boot makes no launching-hook call" {
  set_setting BUILDKITE_LAUNCHING_HOOK_NAME=
  given_token
  run_script "$BOOT"
  assert_success
  refute_called "lifecycle-action"
  refute_called "describe-auto-scaling-instances"
  assert_called "systemctl enable --now buildkite-agent.service"
}

@test "resume: the handler completes the launching hook and starts the agent at its first look" {
  a_booted_instance warm
  imds autoscaling/target-lifecycle-state InService
  run_systemd_script "$HANDLER" --once
  assert_success
  assert_order \
    "aws autoscaling complete-lifecycle-action $LAUNCHING_ARGS --lifecycle-action-result CONTINUE" \
    "systemctl enable --now buildkite-agent.service"
  refute_called "sleep" # nothing waits on this path
  [[ ! -e "$WARM_MARKER" ]] || fail_with "warm-pool marker left behind"
  refute_called "instance_terminating"
}

@test "resume: a failed launching completion exits non-zero before the agent starts" {
  a_booted_instance warm
  imds autoscaling/target-lifecycle-state InService
  respond aws-autoscaling-complete-lifecycle-action 254 "" "An error occurred (AccessDenied)"
  run_systemd_script "$HANDLER" --once
  assert_failure
  refute_called "buildkite-agent.service"
  [[ -e "$WARM_MARKER" ]] || fail_with "the warm-pool marker is gone: a restarted handler would not retry"
}

@test "resume without a launching hook (no warm pool) starts the agent with no hook call" {
  set_setting BUILDKITE_LAUNCHING_HOOK_NAME=
  a_booted_instance warm
  imds autoscaling/target-lifecycle-state InService
  run_systemd_script "$HANDLER" --once
  assert_success
  assert_called "systemctl enable --now buildkite-agent.service"
  refute_called "aws "
}

@test "return to the pool: the running job finishes, then the terminating hook completes and the agent is parked" {
  a_booted_instance
  imds autoscaling/target-lifecycle-state Warmed:Stopped
  agent_stops_after 150 # the job needs 1500 s more; the grace period is 3600 s
  instance_gone_at $((START_CLOCK + 7200)) # the group stops the instance
  run_systemd_script "$HANDLER"
  assert_killed_by_instance_end # the handler keeps watching after the return

  assert_order \
    "systemctl stop --no-block buildkite-agent.service" \
    "aws autoscaling record-lifecycle-action-heartbeat $TERMINATING_ARGS" \
    "systemctl disable buildkite-agent.service" \
    "aws autoscaling complete-lifecycle-action $TERMINATING_ARGS --lifecycle-action-result CONTINUE"
  refute_called "--signal=" # no job cancelled, no SIGTERM beyond the stop
  refute_called "instance_launching"
  refute_called "terminate-instance-in-auto-scaling-group"
  [[ "$(count_calls complete-lifecycle-action)" == 1 ]] || fail_with "expected one completion"
  [[ "$(clock_at complete-lifecycle-action)" == $((START_CLOCK + 1500)) ]] ||
    fail_with "completed at $(clock_at complete-lifecycle-action), expected when the job ended"
  [[ -e "$WARM_MARKER" ]] || fail_with "no warm-pool marker: the agent would not start on the next resume"
  [[ ! -e "$LEAVING_MARKER" ]] || fail_with "leaving marker left: the next idle exit would keep the instance"
  [[ ! -e "$DRAIN_STARTED" ]] || fail_with "drain start left: the next drain would start late"
}

@test "return to the pool: a job still running at the grace period is cancelled as in a drain" {
  set_setting BUILDKITE_TERMINATION_GRACE_PERIOD=600
  a_booted_instance
  imds autoscaling/target-lifecycle-state Warmed:Hibernated
  respond_default systemctl-is-active 0 deactivating
  on_sleep "if grep -q -- '--signal=SIGQUIT' '$CALLS'; then
  printf '3\n' >'$FAKE_STATE/responses/systemctl-is-active/default.rc'
  printf 'inactive\n' >'$FAKE_STATE/responses/systemctl-is-active/default.out'
fi"
  instance_gone_at $((START_CLOCK + 3600))
  run_systemd_script "$HANDLER"
  assert_killed_by_instance_end
  [[ "$(clock_at "--signal=SIGQUIT")" == $((START_CLOCK + 600)) ]] || fail_with "SIGQUIT at $(clock_at "--signal=SIGQUIT")"
  [[ "$(clock_at "complete-lifecycle-action $TERMINATING_ARGS")" == $((START_CLOCK + 610)) ]] ||
    fail_with "completed at $(clock_at complete-lifecycle-action)"
}

@test "return to the pool after an idle exit: the agent's exit leaves the instance to the group" {
  a_booted_instance
  # The agent idled out; bk-terminate-instance asked to leave with a decrement, and the group's
  # reuse policy sends the instance back to the pool instead.
  imds autoscaling/target-lifecycle-state Warmed:Stopped
  run_systemd_script "$BIN_DIR/bk-terminate-instance"
  assert_success
  refute_called "terminate-instance-in-auto-scaling-group"

  agent_stops_after 0
  run_systemd_script "$HANDLER" --once
  assert_success
  refute_called "record-lifecycle-action-heartbeat"
  assert_called "aws autoscaling complete-lifecycle-action $TERMINATING_ARGS --lifecycle-action-result CONTINUE"
  [[ -e "$WARM_MARKER" ]] || fail_with "no warm-pool marker"
}

@test "a hibernated instance: the same handler parks it, then puts it back in service" {
  a_booted_instance
  imds autoscaling/target-lifecycle-state Warmed:Hibernated
  agent_stops_after 3
  # Hibernation freezes the handler; on resume the instance is on its way to InService.
  target_state_after "complete-lifecycle-action $TERMINATING_ARGS" InService
  on_sleep "if grep -qF -- 'systemctl enable --now buildkite-agent.service' '$CALLS'; then kill -TERM \"\$FAKE_CALLER_PID\"; fi"
  instance_gone_at $((START_CLOCK + 3600))
  run_systemd_script "$HANDLER"
  assert_killed_by_instance_end
  assert_order \
    "systemctl stop --no-block buildkite-agent.service" \
    "systemctl disable buildkite-agent.service" \
    "aws autoscaling complete-lifecycle-action $TERMINATING_ARGS --lifecycle-action-result CONTINUE" \
    "aws autoscaling complete-lifecycle-action $LAUNCHING_ARGS --lifecycle-action-result CONTINUE" \
    "systemctl enable --now buildkite-agent.service"
  [[ ! -e "$WARM_MARKER" ]] || fail_with "warm-pool marker left behind"
}

@test "after a resume, the agent's idle exit takes the instance out again (no stale leaving marker)" {
  a_booted_instance warm
  # A return to the pool whose handler stopped before it could forget the drain.
  printf 'return to the warm pool\n' >"$LEAVING_MARKER"
  printf '%s\n' $((START_CLOCK - 86400)) >"$DRAIN_STARTED"
  imds autoscaling/target-lifecycle-state InService
  run_systemd_script "$HANDLER" --once
  assert_success
  assert_called "systemctl enable --now buildkite-agent.service"
  [[ ! -e "$LEAVING_MARKER" && ! -e "$DRAIN_STARTED" ]] || fail_with "the old drain's files are left"

  run_systemd_script "$BIN_DIR/bk-terminate-instance"
  assert_success
  assert_called "aws autoscaling terminate-instance-in-auto-scaling-group --instance-id $INSTANCE_ID --should-decrement-desired-capacity"
}
