# shellcheck shell=bash disable=SC2034,SC2154 # variables shared with the .bats files and bats' own
# Shared setup for the instance-script bats tests: fakes on PATH, a scratch root for every path
# the scripts write (BK_TEST_ROOT), a scripted clock, and small assertions on the recorded calls.

HELPERS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$HELPERS_DIR/../../.." && pwd)"
BIN_DIR="$REPO_ROOT/packer/conf/bin"
HOOKS_DIR="$REPO_ROOT/packer/conf/buildkite-agent/hooks"
FAKED_COMMANDS=(aws curl systemctl cfn-signal buildkite-agent docker chown sleep date df
  amazon-cloudwatch-agent-ctl git visudo pgrep)
START_CLOCK=1700000000
INSTANCE_ID=i-0123456789abcdef0

setup_fakes() {
  ROOT="$BATS_TEST_TMPDIR/root"
  FAKE_STATE="$BATS_TEST_TMPDIR/state"
  FAKE_BIN="$BATS_TEST_TMPDIR/fakebin"
  CALLS="$FAKE_STATE/calls.log"
  mkdir -p "$ROOT" "$FAKE_STATE/imds" "$FAKE_STATE/web" "$FAKE_STATE/s3" "$FAKE_BIN"
  local command
  for command in "${FAKED_COMMANDS[@]}"; do
    ln -s "$HELPERS_DIR/fake" "$FAKE_BIN/$command"
  done
  printf '%s\n' "$START_CLOCK" >"$FAKE_STATE/clock"
  : >"$CALLS"
  imds instance-id "$INSTANCE_ID"
  # An instance the group launches is headed for InService; tests change it.
  imds autoscaling/target-lifecycle-state InService
  respond_default docker-version 0 "25.0.8"
  # The settings the fleet's user data exports (packer/boot-settings.txt); tests change them.
  SETTINGS=(
    AWS_REGION=us-east-1
    BUILDKITE_STACK_NAME=ci-fleet
    BUILDKITE_CFN_STACK=ci-fleet-Fleet-1A2B3C
    BUILDKITE_STACK_VERSION=1.4.0
    BUILDKITE_CFN_RESOURCE=AgentAutoScaleGroup
    BUILDKITE_QUEUE=default
    "BUILDKITE_AGENT_TAGS=team=platform,size=large"
    BUILDKITE_AGENTS_PER_INSTANCE=2
    BUILDKITE_AGENT_ENDPOINT=https://agent.buildkite.com/v3
    BUILDKITE_AGENT_TOKEN_PATH=/ci-fleet/agent-token
    BUILDKITE_SCALE_IN_IDLE_PERIOD=600
    BUILDKITE_TERMINATE_INSTANCE_AFTER_JOB=false
    BUILDKITE_LIFECYCLE_HOOK_NAME=instance_terminating
    # Empty unless the warm pool is on (warm_pool.bats sets it).
    BUILDKITE_LAUNCHING_HOOK_NAME=
    BUILDKITE_TERMINATION_GRACE_PERIOD=3600
    BUILDKITE_SECRETS_BUCKET=ci-fleet-secrets
    BUILDKITE_SECRETS_BUCKET_REGION=us-east-1
    BUILDKITE_ARTIFACTS_BUCKET=
    BUILDKITE_ECR_PLUGIN_ENABLED=true
    BUILDKITE_DOCKER_LOGIN_PLUGIN_ENABLED=false
    BUILDKITE_SECRETS_PLUGIN_ENABLED=true
    BUILDKITE_BOOTSTRAP_SCRIPT_URL=
    BUILDKITE_ENV_FILE_URL=
    BUILDKITE_PIPELINE_SIGNING_KMS_KEY=
    BUILDKITE_PIPELINE_SIGNING_KMS_ACCESS=sign-and-verify
    BUILDKITE_DISK_MIN_FREE_GB=5
    BUILDKITE_DISK_MIN_FREE_INODES=250000
    BUILDKITE_AGENT_EXPERIMENTS=
    BUILDKITE_AGENT_TIMESTAMP_LINES=false
    BUILDKITE_AGENT_TRACING_BACKEND=
    BUILDKITE_AGENT_CANCEL_GRACE_PERIOD=60
    BUILDKITE_AGENT_SIGNAL_GRACE_PERIOD=-1
    BUILDKITE_AGENT_DISCONNECT_AFTER_UPTIME=0
    BUILDKITE_ADDITIONAL_SUDO_PERMISSIONS=
    BUILDKITE_AGENT_SIGNING_KEY_PATH=
    BUILDKITE_AGENT_SIGNING_KEY_ID=
    BUILDKITE_AGENT_VERIFICATION_KEY_PATH=
    BUILDKITE_VERIFICATION_FAILURE_BEHAVIOR=block
    BUILDKITE_S3_DEFAULT_REGION=us-east-1
    BUILDKITE_S3_ACL=private
    BUILDKITE_LOG_GROUP_PREFIX=/buildkite/ci
    BUILDKITE_LOG_RETENTION_DAYS=30
    BUILDKITE_AGENT_RELEASE=stable
    BUILDKITE_ENABLE_INSTANCE_STORAGE=false
    BUILDKITE_MOUNT_TMPFS_AT_TMP=true
    BUILDKITE_DOCKER_USERNS_REMAP=false
    BUILDKITE_DOCKER_NETWORKING_PROTOCOL=ipv4
    BUILDKITE_DOCKER_IPV4_ADDRESS_POOL_1=172.17.0.0/12
    BUILDKITE_DOCKER_IPV4_ADDRESS_POOL_2=192.168.0.0/16
    BUILDKITE_DOCKER_IPV6_ADDRESS_POOL=2001:db8:2::/104
    BUILDKITE_DOCKER_FIXED_CIDR_V4=
    BUILDKITE_DOCKER_FIXED_CIDR_V6=2001:db8:1::/64
    BUILDKITE_DOCKER_PRUNE_UNTIL=4h
    BUILDKITE_DOCKER_BUILDER_PRUNE_ENABLED=false
    BUILDKITE_ENABLE_PRE_EXIT_DISK_CLEANUP=false
    BUILDKITE_TERMINATE_INSTANCE_ON_DISK_FULL=false
    BUILDKITE_PURGE_BUILDS_ON_DISK_FULL=false
    BUILDKITE_AGENT_ENABLE_GIT_MIRRORS=false
    BUILDKITE_GIT_MIRROR_SEED_BUCKET=
    BUILDKITE_ECR_CREDENTIAL_HELPER_ENABLED=false
  )
  # The AMI's CloudWatch agent configuration, where the boot script finds it.
  mkdir -p "$ROOT/opt/aws/amazon-cloudwatch-agent/etc"
  cp "$REPO_ROOT/packer/conf/cloudwatch-agent/buildkite-agent.json" \
    "$ROOT/opt/aws/amazon-cloudwatch-agent/etc/buildkite-agent.json"
}

# set_setting NAME=VALUE: replace one of SETTINGS.
set_setting() {
  local name="${1%%=*}" index
  for index in "${!SETTINGS[@]}"; do
    if [[ "${SETTINGS[$index]%%=*}" == "$name" ]]; then
      SETTINGS[index]="$1"
      return 0
    fi
  done
  SETTINGS+=("$1")
}

# run_script PATH ARGS...: run an instance script (bats `run`) with an empty environment apart
# from PATH, the test hooks and the settings: what it reads beyond those it does not get.
run_script() {
  run env -i PATH="$FAKE_BIN:$BIN_DIR:/usr/bin:/bin" BK_TEST_ROOT="$ROOT" \
    FAKE_STATE="$FAKE_STATE" "${SETTINGS[@]}" "$@"
}

# run_systemd_script PATH ARGS...: like run_script, but with the environment a systemd unit or
# the agent gives a script: no user-data settings (they come from the settings file).
run_systemd_script() {
  run env -i PATH="$FAKE_BIN:$BIN_DIR:/usr/bin:/bin" BK_TEST_ROOT="$ROOT" \
    FAKE_STATE="$FAKE_STATE" "$@"
}

# imds PATH VALUE: serve VALUE at IMDS meta-data/PATH.
imds() {
  mkdir -p "$(dirname "$FAKE_STATE/imds/$1")"
  printf '%s' "$2" >"$FAKE_STATE/imds/$1"
}

# respond KEY RC [STDOUT] [STDERR]: queue the next answer of a faked command for KEY
# (aws-<service>-<operation>, systemctl-<verb>, docker-<verb>, df, cfn-signal, ...).
respond() {
  local dir="$FAKE_STATE/responses/$1" count=1
  mkdir -p "$dir"
  while [[ -e "$dir/$count.rc" ]]; do
    count=$((count + 1))
  done
  _write_answer "$dir/$count" "$2" "${3-}" "${4-}"
}

# respond_default KEY RC [STDOUT] [STDERR]: the answer once the queued ones are used up.
respond_default() {
  mkdir -p "$FAKE_STATE/responses/$1"
  _write_answer "$FAKE_STATE/responses/$1/default" "$2" "${3-}" "${4-}"
}

_write_answer() {
  printf '%s\n' "$2" >"$1.rc"
  [[ -z "$3" ]] || printf '%s\n' "$3" >"$1.out"
  [[ -z "$4" ]] || printf '%s\n' "$4" >"$1.err"
}

# clock: the fake clock's current time.
clock() {
  cat "$FAKE_STATE/clock"
}

# clock_at TEXT: the fake clock's time at the first recorded call containing TEXT (empty if none).
clock_at() {
  grep -F -- "$1" "$FAKE_STATE/calls-at.log" | head -n 1 | cut -d' ' -f1
}

# clocks_at TEXT: the fake clock's time at every recorded call containing TEXT, one a line.
clocks_at() {
  grep -F -- "$1" "$FAKE_STATE/calls-at.log" | cut -d' ' -f1
}

# on_sleep SHELL-TEXT: run SHELL-TEXT after each fake sleep (added to what is there already).
# It sees CLOCK (the time after the sleep), FAKE_STATE and FAKE_CALLER_PID.
on_sleep() {
  {
    # shellcheck disable=SC2016 # expanded when the hook runs
    printf 'CLOCK="$(<"%s/clock")"\n' "$FAKE_STATE"
    printf '%s\n' "$1"
  } >>"$FAKE_STATE/on-sleep"
}

# instance_gone_at EPOCH: the instance goes away at EPOCH: a script still sleeping then is killed
# (SIGTERM, exit status 143), as on a terminated instance. It also bounds a test of a script that
# would otherwise wait forever.
instance_gone_at() {
  on_sleep "if ((CLOCK >= $1)); then kill -TERM \"\$FAKE_CALLER_PID\"; fi"
}

# assert_killed_by_instance_end: the script ran until the instance went away (instance_gone_at).
assert_killed_by_instance_end() {
  [[ "$status" -eq 143 ]] || fail_with "expected the script to run until the instance went away, got exit status $status"
}

fail_with() {
  {
    printf '%s\n' "$1"
    printf -- '--- output:\n%s\n' "${output-}"
    printf -- '--- calls:\n'
    cat "$CALLS"
  } >&2
  return 1
}

# assert_called TEXT: some recorded call contains TEXT.
assert_called() {
  grep -qF -- "$1" "$CALLS" || fail_with "expected a call containing: $1"
}

# refute_called TEXT: no recorded call contains TEXT.
refute_called() {
  if grep -qF -- "$1" "$CALLS"; then
    fail_with "expected no call containing: $1"
  fi
}

# count_calls TEXT: how many recorded calls contain TEXT.
count_calls() {
  grep -cF -- "$1" "$CALLS" || true
}

# assert_order TEXT...: the first calls containing each TEXT happened in this order.
assert_order() {
  local previous=0 line text
  for text in "$@"; do
    line="$(grep -nF -- "$text" "$CALLS" | head -n 1 | cut -d: -f1)"
    [[ -n "$line" ]] || fail_with "expected a call containing: $text" || return 1
    ((line > previous)) || fail_with "expected '$text' after the call on line $previous" || return 1
    previous=$line
  done
}

# assert_success / assert_failure: bats `run` status checks that show the output on failure.
assert_success() {
  [[ "$status" -eq 0 ]] || fail_with "expected success, got exit status $status"
}

assert_failure() {
  [[ "$status" -ne 0 ]] || fail_with "expected failure, got exit status 0"
}

# write_settings_file: the settings file as the boot script leaves it, for scripts that run
# later under systemd or the agent.
write_settings_file() {
  local setting
  mkdir -p "$ROOT/etc/buildkite-agent"
  for setting in "${SETTINGS[@]}"; do
    printf 'export %s=%q\n' "${setting%%=*}" "${setting#*=}"
  done >"$ROOT/etc/buildkite-agent/cfn-env"
}
