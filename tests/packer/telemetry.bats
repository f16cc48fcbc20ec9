#!/usr/bin/env bats
# bk-telemetry (EMF lines about boots and drains) on its own and where the instance scripts call
# it, against fakes on PATH. tests/templates/test_monitoring_template.py parses the same lines
# as JSON and checks the alarms against them.

load helpers/common

setup() {
  setup_fakes
  TELEMETRY="$BIN_DIR/bk-telemetry"
  mkdir -p "$ROOT/proc"
  printf '83.47 150.02\n' >"$ROOT/proc/uptime"
  STAMP_MS="${START_CLOCK}000"
}

# advance_clock SECONDS: move the fake clock on.
advance_clock() {
  printf '%s\n' "$(($(clock) + $1))" >"$FAKE_STATE/clock"
}

# emf_lines TEXT: the lines of TEXT that are EMF documents.
emf_lines() {
  grep -F '"_aws":' <<<"$1" || true
}

@test "boot-completed: BootDuration is the instance's uptime, by queue" {
  run_script "$TELEMETRY" boot-completed
  assert_success
  expected='{"_aws":{"Timestamp":'"$STAMP_MS"',"CloudWatchMetrics":[{"Namespace":"Buildkite","Dimensions":[["Queue"]],"Metrics":[{"Name":"BootDuration","Unit":"Seconds"}]}]},"Queue":"default","Event":"boot-completed","BootDuration":83}'
  [[ "$(emf_lines "$output")" == "$expected" ]] || fail_with "unexpected EMF line"
}

@test "boot-failed: one BootFailures count, by queue" {
  set_setting BUILDKITE_QUEUE=builds/large.v2
  run_script "$TELEMETRY" boot-failed
  assert_success
  expected='{"_aws":{"Timestamp":'"$STAMP_MS"',"CloudWatchMetrics":[{"Namespace":"Buildkite","Dimensions":[["Queue"]],"Metrics":[{"Name":"BootFailures","Unit":"Count"}]}]},"Queue":"builds/large.v2","Event":"boot-failed","BootFailures":1}'
  [[ "$(emf_lines "$output")" == "$expected" ]] || fail_with "unexpected EMF line"
}

@test "a drain reports its duration since it started and its outcome" {
  run_script "$TELEMETRY" drain-started
  assert_success
  [[ -z "$(emf_lines "$output")" ]] || fail_with "drain-started printed a metric"
  advance_clock 754
  run_script "$TELEMETRY" drain-finished cancelled
  assert_success
  expected='{"_aws":{"Timestamp":'"$((START_CLOCK + 754))"'000,"CloudWatchMetrics":[{"Namespace":"Buildkite","Dimensions":[["Outcome","Queue"]],"Metrics":[{"Name":"DrainDuration","Unit":"Seconds"},{"Name":"Drains","Unit":"Count"}]}]},"Outcome":"cancelled","Queue":"default","Event":"drain-finished","DrainDuration":754,"Drains":1}'
  [[ "$(emf_lines "$output")" == "$expected" ]] || fail_with "unexpected EMF line"
}

@test "a second drain start (spot notice, then the lifecycle hook) keeps the first" {
  run_script "$TELEMETRY" drain-started
  advance_clock 30
  run_script "$TELEMETRY" drain-started
  advance_clock 60
  run_script "$TELEMETRY" drain-finished spot
  assert_success
  [[ "$(emf_lines "$output")" == *'"Outcome":"spot"'*'"DrainDuration":90,'* ]] ||
    fail_with "expected a 90 s spot drain"
}

@test "drain-finished without a recorded start reports nothing and does not fail" {
  run_script "$TELEMETRY" drain-finished finished
  assert_success
  [[ -z "$(emf_lines "$output")" ]] || fail_with "a duration was made up"
  [[ "$output" == *"no drain start recorded"* ]] || fail_with "the gap is not logged"
}

@test "an unreadable uptime reports nothing and does not fail the boot" {
  rm "$ROOT/proc/uptime"
  run_script "$TELEMETRY" boot-completed
  assert_success
  [[ -z "$(emf_lines "$output")" ]] || fail_with "a duration was made up"
}

@test "a queue that is not a queue name is reported as unknown (no JSON injection)" {
  set_setting 'BUILDKITE_QUEUE=default","Org":"x'
  run_script "$TELEMETRY" boot-failed
  assert_success
  [[ "$(emf_lines "$output")" == *'"Queue":"unknown"'* ]] || fail_with "queue not replaced"
  [[ "$(emf_lines "$output")" != *'"Org"'* ]] || fail_with "the queue value reached the JSON"
}

@test "an unknown event or outcome is a usage error" {
  run_script "$TELEMETRY" drain-finished killed
  [[ "$status" -eq 2 ]] || fail_with "expected exit status 2, got $status"
  run_script "$TELEMETRY" reboot
  [[ "$status" -eq 2 ]] || fail_with "expected exit status 2, got $status"
}

# --- where the instance scripts call it ---------------------------------------------------------

@test "a completed boot writes its duration into the shipped boot log" {
  respond aws-ssm-get-parameter 0 "bkua_0123456789abcdefSECRETtoken"
  run_script "$BIN_DIR/bk-install-elastic-stack.sh"
  assert_success
  log="$(<"$ROOT/var/log/elastic-stack.log")"
  [[ "$(emf_lines "$log")" == *'"Queue":"default","Event":"boot-completed","BootDuration":83}' ]] ||
    fail_with "no boot duration in the boot log"
  [[ "$(emf_lines "$log" | grep -c .)" == 1 ]] || fail_with "expected one EMF line"
}

@test "a failed boot counts itself in the shipped boot log" {
  respond aws-ssm-get-parameter 254 "" "An error occurred (AccessDeniedException)"
  run_script "$BIN_DIR/bk-install-elastic-stack.sh"
  assert_failure
  log="$(<"$ROOT/var/log/elastic-stack.log")"
  [[ "$(emf_lines "$log")" == *'"Event":"boot-failed","BootFailures":1}' ]] ||
    fail_with "no boot failure in the boot log"
  [[ "$log" != *'"BootDuration"'* ]] || fail_with "a failed boot reported a duration"
}

@test "a booting warm-pool instance reports no boot duration yet" {
  respond aws-ssm-get-parameter 0 "bkua_0123456789abcdefSECRETtoken"
  imds autoscaling/target-lifecycle-state Warmed:Stopped
  run_script "$BIN_DIR/bk-install-elastic-stack.sh"
  assert_success
  [[ -z "$(emf_lines "$(<"$ROOT/var/log/elastic-stack.log")")" ]] || fail_with "unexpected EMF line"
}

@test "a lifecycle drain reports how long the job took to finish" {
  write_settings_file
  mkdir -p "$ROOT/var/lib/bk-elastic-stack"
  respond_default aws-autoscaling-describe-auto-scaling-instances 0 ci-fleet-AgentAutoScaleGroup-1A2B
  imds autoscaling/target-lifecycle-state Terminated
  for _ in 1 2 3; do
    respond systemctl-is-active 3 deactivating
  done
  respond_default systemctl-is-active 3 inactive
  run_systemd_script "$BIN_DIR/bk-lifecycle-handler"
  assert_success
  # Three polls of 10 s while the agent was still stopping.
  [[ "$(emf_lines "$output")" == *'"Outcome":"finished","Queue":"default","Event":"drain-finished","DrainDuration":30,"Drains":1}' ]] ||
    fail_with "no finished drain of 30 s"
}

@test "a spot interruption reports a spot drain once the cancelled job has stopped" {
  write_settings_file
  mkdir -p "$ROOT/var/lib/bk-elastic-stack"
  notice_at=$((START_CLOCK + 120))
  imds spot/instance-action "{\"action\": \"terminate\", \"time\": \"$(date -u -d "@$notice_at" +%Y-%m-%dT%H:%M:%SZ)\"}"
  respond_default systemctl-is-active 0 active
  # The agent stops once it was told to cancel (SIGQUIT, 20 s before the termination time);
  # the handler runs until the instance is gone.
  on_sleep "if grep -q -- '--signal=SIGQUIT' '$CALLS'; then
  printf '3\n' >'$FAKE_STATE/responses/systemctl-is-active/default.rc'
  printf 'inactive\n' >'$FAKE_STATE/responses/systemctl-is-active/default.out'
fi"
  instance_gone_at "$notice_at"
  run_systemd_script "$BIN_DIR/bk-lifecycle-handler"
  assert_killed_by_instance_end
  lines="$(emf_lines "$output")"
  [[ "$(grep -c '"Event":"drain-finished"' <<<"$lines")" == 1 ]] || fail_with "expected one drain report"
  # From the notice to the agent stopping: SIGQUIT at 100 s, seen stopped at the next look.
  [[ "$lines" =~ \"Outcome\":\"spot\",\"Queue\":\"default\",\"Event\":\"drain-finished\",\"DrainDuration\":(1[01][0-9]),\"Drains\":1\} ]] ||
    fail_with "no spot drain of 100-119 s: $lines"
}
