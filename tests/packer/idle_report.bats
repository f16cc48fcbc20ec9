#!/usr/bin/env bats
# Idle instances report themselves: bk-lifecycle-handler keeps the instance's scale-in protection
# equal to "a job is running or finished less than 30 s ago" while the instance is in service, so
# the scaler drains only idle instances. Against fakes on PATH: the agent's main process comes
# from `systemctl show`, its job processes from `pgrep --parent`.

load helpers/common

GROUP=ci-fleet-AgentAutoScaleGroup-1A2B
AGENT_PID=4242

setup() {
  setup_fakes
  write_settings_file
  HANDLER="$BIN_DIR/bk-lifecycle-handler"
  STATE_DIR="$ROOT/var/lib/bk-elastic-stack"
  mkdir -p "$STATE_DIR"
  printf 'Completed\n' >"$STATE_DIR/boot-status"
  respond_default aws-autoscaling-describe-auto-scaling-instances 0 "$GROUP"
  respond_default systemctl-show 0 "$AGENT_PID"
  PROTECT="aws autoscaling set-instance-protection --instance-ids $INSTANCE_ID --auto-scaling-group-name $GROUP --protected-from-scale-in"
  UNPROTECT="aws autoscaling set-instance-protection --instance-ids $INSTANCE_ID --auto-scaling-group-name $GROUP --no-protected-from-scale-in"
}

# jobs_at_looks PATTERN...: at each look in turn, whether the agent runs a job (busy: its main
# process has a child) or not (idle); the last answer holds from then on.
jobs_at_looks() {
  local look
  for look in "${@:1:$#-1}"; do
    if [[ "$look" == busy ]]; then
      respond pgrep 0 5150
    else
      respond pgrep 1
    fi
  done
  if [[ "${*: -1}" == busy ]]; then
    respond_default pgrep 0 5150
  else
    respond_default pgrep 1
  fi
}

# assert_calls_at TEXT EPOCH...: the calls containing TEXT were made at exactly these times.
assert_calls_at() {
  local text=$1 expected actual
  shift
  expected="$(printf '%s ' "$@")"
  actual="$(clocks_at "$text" | tr '\n' ' ')"
  [[ "$actual" == "$expected" ]] || fail_with "calls containing '$text' at '$actual', expected at '$expected'"
}

@test "a job starting: protected at the first look that sees it, with no idle report before" {
  jobs_at_looks idle idle idle busy # looks at +0, +5, +10: idle for less than 30 s
  instance_gone_at $((START_CLOCK + 300))
  run_systemd_script "$HANDLER"
  assert_killed_by_instance_end
  assert_called "pgrep --parent $AGENT_PID"
  assert_calls_at "$PROTECT" $((START_CLOCK + 15))
  refute_called "$UNPROTECT"
}

@test "a job finishing: unprotected only once no job was seen for 30 s; each change is one call" {
  jobs_at_looks busy busy busy busy busy idle # the job is last seen at +20
  instance_gone_at $((START_CLOCK + 600))
  run_systemd_script "$HANDLER"
  assert_killed_by_instance_end
  assert_calls_at "$PROTECT" "$START_CLOCK"
  assert_calls_at "$UNPROTECT" $((START_CLOCK + 50))
  [[ "$(count_calls set-instance-protection)" == 2 ]] || fail_with "expected one call per change"
  [[ "$output" == *"scale-in protection no-protected-from-scale-in: no job for 30s"* ]] ||
    fail_with "the idle report is not logged"
}

@test "a job starting within the idle delay keeps the protection with no call" {
  jobs_at_looks busy idle idle idle busy idle # a second job at +20, 15 s after the first
  instance_gone_at $((START_CLOCK + 120))
  run_systemd_script "$HANDLER"
  assert_killed_by_instance_end
  assert_calls_at "$PROTECT" "$START_CLOCK"
  assert_calls_at "$UNPROTECT" $((START_CLOCK + 50)) # 30 s after the second job was last seen
}

@test "an idle instance: one report after the idle delay, then no call while nothing changes" {
  jobs_at_looks idle
  instance_gone_at $((START_CLOCK + 3600))
  run_systemd_script "$HANDLER"
  assert_killed_by_instance_end
  assert_calls_at "set-instance-protection" $((START_CLOCK + 30))
  assert_called "$UNPROTECT"
}

@test "an agent that is not running runs no job: the instance reports itself idle" {
  respond_default systemctl-show 0 0
  instance_gone_at $((START_CLOCK + 120))
  run_systemd_script "$HANDLER"
  assert_killed_by_instance_end
  refute_called "pgrep"
  assert_calls_at "$UNPROTECT" $((START_CLOCK + 30))
}

@test "an unreadable process table changes nothing: the last reported state holds" {
  respond pgrep 0 5150
  respond_default pgrep 2 "" "pgrep: cannot read /proc"
  instance_gone_at $((START_CLOCK + 300))
  run_systemd_script "$HANDLER"
  assert_killed_by_instance_end
  assert_calls_at "$PROTECT" "$START_CLOCK"
  refute_called "$UNPROTECT"
}

@test "a failed call is logged, not fatal, and retried at the next look until it succeeds" {
  jobs_at_looks busy
  respond aws-autoscaling-set-instance-protection 254 "" "An error occurred (AccessDenied) when calling the SetInstanceProtection operation"
  respond aws-autoscaling-set-instance-protection 254 "" "An error occurred (Throttling) when calling the SetInstanceProtection operation: Rate exceeded"
  # The group starts terminating the instance later: the handler is still at work.
  on_sleep "if ((CLOCK >= $((START_CLOCK + 60)))); then printf Terminated >'$FAKE_STATE/imds/autoscaling/target-lifecycle-state'; fi"
  respond_default systemctl-is-active 3 inactive
  run_systemd_script "$HANDLER"
  assert_success
  assert_calls_at "$PROTECT" "$START_CLOCK" $((START_CLOCK + 5)) $((START_CLOCK + 10))
  [[ "$(grep -c "could not set scale-in protection" <<<"$output")" == 1 ]] ||
    fail_with "expected the failure logged once while it keeps failing"
  [[ "$output" == *"AccessDenied"* ]] || fail_with "the error is not in the log"
  assert_called "complete-lifecycle-action"
}

@test "draining (target state Terminated): protection is left alone" {
  imds autoscaling/target-lifecycle-state Terminated
  jobs_at_looks busy
  respond systemctl-is-active 3 deactivating
  respond_default systemctl-is-active 3 inactive
  run_systemd_script "$HANDLER"
  assert_success
  assert_called "complete-lifecycle-action"
  refute_called "set-instance-protection"
}

@test "a drain that begins while the instance is protected: no call during the drain" {
  jobs_at_looks busy
  on_sleep "if ((CLOCK >= $((START_CLOCK + 10)))); then printf Terminated >'$FAKE_STATE/imds/autoscaling/target-lifecycle-state'; fi"
  agent_stops_at=$((START_CLOCK + 100))
  on_sleep "if ((CLOCK >= $agent_stops_at)); then printf '3\n' >'$FAKE_STATE/responses/systemctl-is-active/default.rc'; printf 'inactive\n' >'$FAKE_STATE/responses/systemctl-is-active/default.out'; fi"
  respond_default systemctl-is-active 0 deactivating
  run_systemd_script "$HANDLER"
  assert_success
  assert_calls_at "set-instance-protection" "$START_CLOCK"
  assert_called "complete-lifecycle-action"
}

@test "a spot notice: protection is left alone" {
  imds spot/instance-action "{\"action\": \"terminate\", \"time\": \"$(date -u -d "@$((START_CLOCK + 120))" +%Y-%m-%dT%H:%M:%SZ)\"}"
  jobs_at_looks idle
  respond_default systemctl-is-active 0 active
  instance_gone_at $((START_CLOCK + 120))
  run_systemd_script "$HANDLER"
  assert_killed_by_instance_end
  refute_called "set-instance-protection"
}

@test "a leaving marker (the instance is on its way out): protection is left alone" {
  printf 'lifecycle drain\n' >"$STATE_DIR/leaving"
  jobs_at_looks idle
  instance_gone_at $((START_CLOCK + 120))
  run_systemd_script "$HANDLER"
  assert_killed_by_instance_end
  refute_called "set-instance-protection"
}

@test "warming or parked in the warm pool (Warmed:*): protection is left alone" {
  imds autoscaling/target-lifecycle-state Warmed:Stopped
  : >"$STATE_DIR/warm-pool"
  jobs_at_looks idle
  instance_gone_at $((START_CLOCK + 120))
  run_systemd_script "$HANDLER"
  assert_killed_by_instance_end
  refute_called "set-instance-protection"
}

@test "a boot still at work: protection is left alone" {
  printf 'Started\n' >"$STATE_DIR/boot-status"
  jobs_at_looks idle
  instance_gone_at $((START_CLOCK + 120))
  run_systemd_script "$HANDLER"
  assert_killed_by_instance_end
  refute_called "set-instance-protection"
}

@test "resumed from the warm pool: reported afresh once the agent is started" {
  set_setting BUILDKITE_LAUNCHING_HOOK_NAME=instance_launching
  write_settings_file
  : >"$STATE_DIR/warm-pool"
  jobs_at_looks idle idle busy
  instance_gone_at $((START_CLOCK + 120))
  run_systemd_script "$HANDLER"
  assert_killed_by_instance_end
  assert_order \
    "complete-lifecycle-action --lifecycle-hook-name instance_launching" \
    "systemctl enable --now buildkite-agent.service" \
    "$PROTECT"
  assert_calls_at "$PROTECT" $((START_CLOCK + 10))
  refute_called "$UNPROTECT"
}

@test "back in the pool and out again: the protection is set again after the resume" {
  set_setting BUILDKITE_LAUNCHING_HOOK_NAME=instance_launching
  write_settings_file
  jobs_at_looks busy
  # In service and busy at first; the group returns the instance to the pool (hibernation), and
  # it resumes once the terminating hook is completed.
  on_sleep "if ((CLOCK == $((START_CLOCK + 10)))); then printf Warmed:Hibernated >'$FAKE_STATE/imds/autoscaling/target-lifecycle-state'; fi"
  on_sleep "if grep -qF -- 'complete-lifecycle-action --lifecycle-hook-name instance_terminating' '$CALLS'; then printf InService >'$FAKE_STATE/imds/autoscaling/target-lifecycle-state'; fi"
  respond systemctl-is-active 3 inactive
  respond_default systemctl-is-active 0 active
  instance_gone_at $((START_CLOCK + 120))
  run_systemd_script "$HANDLER"
  assert_killed_by_instance_end
  assert_order \
    "$PROTECT" \
    "complete-lifecycle-action --lifecycle-hook-name instance_terminating" \
    "complete-lifecycle-action --lifecycle-hook-name instance_launching" \
    "systemctl enable --now buildkite-agent.service"
  [[ "$(count_calls "$PROTECT")" == 2 ]] || fail_with "expected the protection set again after the resume"
  last_protect="$(clocks_at "$PROTECT" | tail -n 1)"
  (($(clock_at "systemctl enable --now") <= last_protect)) || fail_with "protected again before the resume"
}
