#!/usr/bin/env bats
# Instance logs: the CloudWatch agent's configuration rendered for this stack at boot
# (bk-cloudwatch-config), so that each stack ships to log groups of its own and retention
# applies when the stack asks for it.

load helpers/common

setup() {
  setup_fakes
  BOOT="$BIN_DIR/bk-install-elastic-stack.sh"
  RENDER="$BIN_DIR/bk-cloudwatch-config"
  TEMPLATE="$REPO_ROOT/packer/conf/cloudwatch-agent/buildkite-agent.json"
  OUT="$BATS_TEST_TMPDIR/cloudwatch-agent.json"
  RENDERED="$ROOT/var/lib/bk-elastic-stack/cloudwatch-agent.json"
}

# groups FILE: the log group of every shipped file, one a line.
groups() {
  jq -r '.logs.logs_collected.files.collect_list[].log_group_name' "$1"
}

# retentions FILE: the distinct retention_in_days values ("null" when unset).
retentions() {
  jq -r '[.logs.logs_collected.files.collect_list[].retention_in_days] | unique | .[] | tostring' "$1"
}

@test "every shipped file goes to a group under the stack's prefix, with the asked retention" {
  run "$RENDER" "$TEMPLATE" "$OUT" /buildkite/ci 30
  assert_success

  [[ "$(groups "$OUT" | wc -l)" == 9 ]] || fail_with "expected nine groups: $(groups "$OUT")"
  if groups "$OUT" | grep -v '^/buildkite/ci/[a-z/-]*$'; then
    fail_with "a group outside /buildkite/ci/"
  fi
  groups "$OUT" | grep -qx /buildkite/ci/buildkite-agent || fail_with "no agent log group"
  [[ "$(retentions "$OUT")" == 30 ]] || fail_with "retention: $(retentions "$OUT")"
  # Everything else in the file is the AMI's configuration, unchanged.
  [[ "$(jq -S 'del(.logs.logs_collected.files.collect_list[] | .log_group_name, .retention_in_days)' "$OUT")" == \
    "$(jq -S 'del(.logs.logs_collected.files.collect_list[] | .log_group_name, .retention_in_days)' "$TEMPLATE")" ]] ||
    fail_with "the rendering changed more than the group names and retention"
}

@test "two stacks in one region ship to different groups" {
  "$RENDER" "$TEMPLATE" "$OUT" /buildkite/ci
  "$RENDER" "$TEMPLATE" "$OUT.prod" /buildkite/ci-prod
  shared="$(comm -12 <(groups "$OUT" | sort) <(groups "$OUT.prod" | sort))"
  [[ -z "$shared" ]] || fail_with "groups both stacks write: $shared"
}

@test "without a retention the agent leaves the groups' retention alone" {
  run "$RENDER" "$TEMPLATE" "$OUT" /buildkite/ci
  assert_success
  [[ "$(retentions "$OUT")" == null ]] || fail_with "retention set: $(retentions "$OUT")"
}

@test "an unusable prefix or retention writes nothing and says why" {
  local prefix days
  # shellcheck disable=SC2016 # a literal $(...) is the point
  for prefix in "" buildkite/ci /buildkite/ci/ '/buildkite/ci"x' '/buildkite/$(id)'; do
    run "$RENDER" "$TEMPLATE" "$OUT" "$prefix"
    [[ "$status" == 1 ]] || fail_with "prefix '$prefix' was accepted (status $status)"
    [[ "$output" == *"not a log group path"* ]] || fail_with "no reason given for '$prefix'"
  done
  for days in 0 7d -1 " 7"; do
    run "$RENDER" "$TEMPLATE" "$OUT" /buildkite/ci "$days"
    [[ "$status" == 1 ]] || fail_with "retention '$days' was accepted (status $status)"
    [[ "$output" == *"not a number of days"* ]] || fail_with "no reason given for '$days'"
  done
  [[ ! -e "$OUT" ]] || fail_with "something was written to $OUT"
}

@test "boot ships the logs with the stack's configuration" {
  respond aws-ssm-get-parameter 0 "bkua_token"
  set_setting BUILDKITE_LOG_GROUP_PREFIX=/buildkite/fleet-two
  set_setting BUILDKITE_LOG_RETENTION_DAYS=7
  run_script "$BOOT"
  assert_success

  assert_called "amazon-cloudwatch-agent-ctl -a fetch-config -m ec2 -s -c file:$RENDERED"
  groups "$RENDERED" | grep -qx /buildkite/fleet-two/elastic-stack || fail_with "$(groups "$RENDERED")"
  [[ "$(retentions "$RENDERED")" == 7 ]] || fail_with "retention: $(retentions "$RENDERED")"
}

@test "boot without a usable log setting still starts the agent, with logs kept on the instance" {
  respond aws-ssm-get-parameter 0 "bkua_token"
  set_setting BUILDKITE_LOG_GROUP_PREFIX=
  run_script "$BOOT"
  assert_success

  refute_called "amazon-cloudwatch-agent-ctl"
  assert_called "systemctl enable --now buildkite-agent.service"
  grep -q "no log shipping configuration" "$ROOT/var/log/elastic-stack.log" ||
    fail_with "the boot log does not say logs stay on the instance"
}
