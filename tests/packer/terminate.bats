#!/usr/bin/env bats
# bk-terminate-instance (the agent unit's ExecStopPost) against fakes on PATH.

load helpers/common

setup() {
  setup_fakes
  write_settings_file
  TERMINATE="$BIN_DIR/bk-terminate-instance"
  DECREMENT="aws autoscaling terminate-instance-in-auto-scaling-group --instance-id $INSTANCE_ID --should-decrement-desired-capacity"
  NO_DECREMENT="aws autoscaling terminate-instance-in-auto-scaling-group --instance-id $INSTANCE_ID --no-should-decrement-desired-capacity"
  UNHEALTHY="aws autoscaling set-instance-health --instance-id $INSTANCE_ID --health-status Unhealthy"
}

@test "an agent that leaves on its own takes the instance with it, lowering the capacity" {
  run_systemd_script "$TERMINATE"
  assert_success
  assert_order "sleep 10" "$DECREMENT"
  refute_called "$NO_DECREMENT"
  refute_called "set-instance-health"
}

@test "terminate falls back to no decrement, then to marking the instance unhealthy" {
  respond aws-autoscaling-terminate-instance-in-auto-scaling-group 254 "" \
    "An error occurred (ValidationError) when calling the TerminateInstanceInAutoScalingGroup operation: Currently, desiredSize equals minSize (1). Terminating instance without replacement will violate group's min size constraint."
  respond aws-autoscaling-terminate-instance-in-auto-scaling-group 254 "" \
    "An error occurred (ValidationError) when calling the TerminateInstanceInAutoScalingGroup operation: The instance is not in an Auto Scaling group."
  run_systemd_script "$TERMINATE"
  assert_success
  assert_order "$DECREMENT" "$NO_DECREMENT" "$UNHEALTHY"
  [[ "$(count_calls "terminate-instance-in-auto-scaling-group")" == 2 ]] || fail_with "retried a non-throttling error"
}

@test "terminate reports failure when every fallback fails" {
  respond_default aws-autoscaling-terminate-instance-in-auto-scaling-group 254 "" "AccessDenied"
  respond aws-autoscaling-set-instance-health 254 "" "AccessDenied"
  run_systemd_script "$TERMINATE"
  assert_failure
  assert_order "$DECREMENT" "$NO_DECREMENT" "$UNHEALTHY"
}

@test "a throttled terminate call is retried with backoff before falling back" {
  respond aws-autoscaling-terminate-instance-in-auto-scaling-group 254 "" \
    "An error occurred (Throttling) when calling the TerminateInstanceInAutoScalingGroup operation: Rate exceeded"
  respond aws-autoscaling-terminate-instance-in-auto-scaling-group 254 "" \
    "An error occurred (Throttling) when calling the TerminateInstanceInAutoScalingGroup operation: Rate exceeded"
  run_systemd_script "$TERMINATE"
  assert_success
  [[ "$(count_calls "$DECREMENT")" == 3 ]] || fail_with "expected three attempts with a decrement"
  refute_called "$NO_DECREMENT"
  # 10 s pause for the logs, then 2 s and 4 s of backoff.
  [[ "$(clock)" == $((START_CLOCK + 16)) ]] || fail_with "clock at $(clock)"
  assert_order "sleep 10" "$DECREMENT" "sleep 2" "sleep 4"
}

@test "a lifecycle drain or spot notice (leaving marker) does not terminate the instance" {
  mkdir -p "$ROOT/var/lib/bk-elastic-stack"
  echo "lifecycle drain" >"$ROOT/var/lib/bk-elastic-stack/leaving"
  run_systemd_script "$TERMINATE"
  assert_success
  refute_called "aws "
  grep -q "stopped on purpose (lifecycle drain)" "$ROOT/var/log/elastic-stack.log"
}

@test "a group already terminating the instance is left to its lifecycle hook" {
  imds autoscaling/target-lifecycle-state Terminated
  run_systemd_script "$TERMINATE"
  assert_success
  refute_called "aws "
}

@test "a warm-pool stop does not terminate the instance" {
  imds autoscaling/target-lifecycle-state Warmed:Stopped
  run_systemd_script "$TERMINATE"
  assert_success
  refute_called "aws "
}

@test "a system shutdown does not terminate the instance" {
  imds autoscaling/target-lifecycle-state InService
  respond systemctl-is-system-running 0 stopping
  run_systemd_script "$TERMINATE"
  assert_success
  refute_called "aws "
}

# group_busy ERROR: TerminateInstanceInAutoScalingGroup answers once with Auto Scaling's ERROR.
group_busy() {
  respond aws-autoscaling-terminate-instance-in-auto-scaling-group 254 "" \
    "An error occurred ($1) when calling the TerminateInstanceInAutoScalingGroup operation: the group is busy"
}

@test "a scaling activity in progress is waited out: the instance still leaves with a decrement" {
  group_busy ScalingActivityInProgress
  group_busy ScalingActivityInProgress
  group_busy ScalingActivityInProgress
  run_systemd_script "$TERMINATE"
  assert_success
  [[ "$(count_calls "$DECREMENT")" == 4 ]] || fail_with "expected four attempts with a decrement"
  refute_called "$NO_DECREMENT"
  refute_called "set-instance-health"
  assert_order "sleep 10" "$DECREMENT" "sleep 2" "sleep 4" "sleep 8"
}

@test "resource contention is retried: the instance still leaves with a decrement" {
  group_busy ResourceContention
  run_systemd_script "$TERMINATE"
  assert_success
  [[ "$(count_calls "$DECREMENT")" == 2 ]] || fail_with "expected two attempts with a decrement"
  refute_called "$NO_DECREMENT"
}

@test "a group busy for three minutes: only then the instance leaves without a decrement" {
  for ((attempt = 1; attempt <= 10; attempt++)); do
    group_busy ScalingActivityInProgress
  done
  run_systemd_script "$TERMINATE"
  assert_success
  [[ "$(count_calls "$DECREMENT")" == 10 ]] || fail_with "expected ten attempts with a decrement"
  assert_called "$NO_DECREMENT"
  # 10 s for the logs, then 2 + 4 + 8 + 16 + 5 x 30 s of backoff: bounded.
  [[ "$(clock)" == $((START_CLOCK + 10 + 180)) ]] || fail_with "clock at $(clock)"
}
