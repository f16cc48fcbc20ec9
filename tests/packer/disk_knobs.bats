#!/usr/bin/env bats
# The disk clean-up parameters: DockerPruneUntil, DockerBuilderPruneEnabled,
# BuildkitePurgeBuildsOnDiskFull, BuildkiteTerminateInstanceOnDiskFull, EnablePreExitDiskCleanup
# and the DiskMinFree* thresholds, through the scripts and hooks that read them.

load helpers/common

GIB_KIB=1048576

setup() {
  setup_fakes
  # The built-in plugins have their own tests (hooks.bats); here they stay out of the way.
  set_setting BUILDKITE_SECRETS_PLUGIN_ENABLED=false
  set_setting BUILDKITE_ECR_PLUGIN_ENABLED=false
  write_settings_file
  respond_default docker-info 0 /var/lib/docker
  ln -s "$HELPERS_DIR/fake" "$FAKE_BIN/sudo"
}

free_space() {
  respond df 0 "$(printf 'Avail IFree\n%s %s' "$(($1 * GIB_KIB))" "$2")"
}

settings() {
  local setting
  for setting in "$@"; do
    set_setting "$setting"
  done
  write_settings_file
}

@test "hourly prune: images, containers and networks older than DockerPruneUntil" {
  settings BUILDKITE_DOCKER_PRUNE_UNTIL=30m
  run_systemd_script "$BIN_DIR/bk-docker-prune"
  assert_success
  assert_called "docker image prune --all --force --filter until=30m"
  assert_called "docker container prune --force --filter until=30m"
  assert_called "docker network prune --force --filter until=30m"
  refute_called "until=4h"
}

@test "DockerPruneUntil in days becomes hours for docker's filter; the default is 4h" {
  settings BUILDKITE_DOCKER_PRUNE_UNTIL=7d
  run_systemd_script "$BIN_DIR/bk-docker-prune"
  assert_called "docker image prune --all --force --filter until=168h"
  : >"$CALLS"
  settings BUILDKITE_DOCKER_PRUNE_UNTIL=
  run_systemd_script "$BIN_DIR/bk-docker-prune"
  assert_called "docker image prune --all --force --filter until=4h"
}

@test "DockerBuilderPruneEnabled decides whether the build cache is pruned" {
  run_systemd_script "$BIN_DIR/bk-docker-prune"
  refute_called "docker builder prune"
  settings BUILDKITE_DOCKER_BUILDER_PRUNE_ENABLED=true
  run_systemd_script "$BIN_DIR/bk-docker-prune"
  assert_called "docker builder prune --all --force --filter until=4h"
}

@test "thresholds DiskMinFreeGB and DiskMinFreeInodes decide when to clean up" {
  settings BUILDKITE_DISK_MIN_FREE_GB=100 BUILDKITE_DISK_MIN_FREE_INODES=1000
  free_space 60 900000
  free_space 120 900000
  run_systemd_script "$BIN_DIR/bk-check-disk-space"
  assert_success
  assert_called "docker image prune --all --force"
}

# job_environment [CHECKOUT]: what the agent gives a job checked out in builds/agent-1/acme/web.
job_environment() {
  printf '%s\n' "BUILDKITE_BUILD_PATH=$ROOT/builds" \
    "BUILDKITE_BUILD_CHECKOUT_PATH=${1:-$ROOT/builds/agent-1/acme/web}"
}

@test "BuildkitePurgeBuildsOnDiskFull deletes only this agent's checkouts, as a last resort" {
  mkdir -p "$ROOT/builds/agent-1/acme/web" "$ROOT/builds/agent-2/acme/web"
  free_space 1 900000
  free_space 1 900000
  run_systemd_script "$BIN_DIR/bk-check-disk-space" "$ROOT/builds/agent-1"
  assert_failure
  [[ -d "$ROOT/builds/agent-1/acme" ]] || fail_with "purged while the knob is off"

  settings BUILDKITE_PURGE_BUILDS_ON_DISK_FULL=true
  free_space 1 900000
  free_space 1 900000
  free_space 30 900000
  run_systemd_script "$BIN_DIR/bk-check-disk-space" "$ROOT/builds/agent-1"
  assert_success
  [[ ! -e "$ROOT/builds/agent-1/acme" ]] || fail_with "this agent's checkouts stayed"
  [[ -d "$ROOT/builds/agent-1" && -d "$ROOT/builds/agent-2/acme/web" ]] ||
    fail_with "another agent's checkouts were deleted"
}

@test "the hooks hand the purge this agent's directory, never one a checkout path escapes to" {
  settings BUILDKITE_PURGE_BUILDS_ON_DISK_FULL=true
  mkdir -p "$ROOT/builds/agent-1/acme/web" "$ROOT/builds/agent-2/acme/web" "$ROOT/keep/me"
  free_space 1 900000
  free_space 1 900000
  free_space 30 900000
  mapfile -t job < <(job_environment)
  run_systemd_script "${job[@]}" "$HOOKS_DIR/environment"
  assert_success
  [[ ! -e "$ROOT/builds/agent-1/acme" && -d "$ROOT/builds/agent-2/acme/web" ]] ||
    fail_with "the wrong checkouts were purged"

  free_space 1 900000
  free_space 1 900000
  mapfile -t job < <(job_environment "$ROOT/builds/../keep")
  run_systemd_script "${job[@]}" "$HOOKS_DIR/environment"
  assert_failure
  [[ -d "$ROOT/keep/me" && -d "$ROOT/builds/agent-2/acme/web" ]] || fail_with "purged outside this agent's builds"
}

@test "BuildkiteTerminateInstanceOnDiskFull: the agent is stopped gracefully so the instance leaves" {
  /bin/sleep 300 &
  agent_pid=$!
  respond_default systemctl-show 0 "$agent_pid"
  run_systemd_script "$BIN_DIR/bk-disk-full"
  assert_success
  kill -0 "$agent_pid" || fail_with "stopped while the knob is off"

  settings BUILDKITE_TERMINATE_INSTANCE_ON_DISK_FULL=true
  run_systemd_script "$BIN_DIR/bk-disk-full"
  assert_success
  assert_called "systemctl show --property MainPID --value buildkite-agent.service"
  wait "$agent_pid" || true
  ! kill -0 "$agent_pid" 2>/dev/null || fail_with "the agent was not stopped"
}

@test "environment hook: a full disk asks bk-disk-full whether the instance leaves" {
  settings BUILDKITE_TERMINATE_INSTANCE_ON_DISK_FULL=true
  respond_default systemctl-show 0 0
  free_space 1 10
  free_space 1 10
  run_systemd_script "$HOOKS_DIR/environment"
  assert_failure
  assert_called "systemctl show --property MainPID"
}

@test "EnablePreExitDiskCleanup: the pre-exit hook checks (and cleans) the disk after the job" {
  run_systemd_script "$HOOKS_DIR/pre-exit"
  assert_success
  refute_called "df"

  settings BUILDKITE_ENABLE_PRE_EXIT_DISK_CLEANUP=true
  free_space 2 900000
  free_space 40 900000
  run_systemd_script "$HOOKS_DIR/pre-exit"
  assert_success
  assert_called "docker image prune --all --force"
  [[ "$(count_calls "df --output")" == 2 ]] || fail_with "expected a check, a prune and a re-check"

  free_space 1 10
  free_space 1 10
  run_systemd_script "$HOOKS_DIR/pre-exit"
  assert_failure
  [[ "$output" == *"out of disk space"* ]] || fail_with "no reason"
}

@test "environment hook: remapping off hands the checkout back through sudo; on, it does not" {
  free_space 40 900000
  mapfile -t job < <(job_environment)
  run_systemd_script "${job[@]}" "$HOOKS_DIR/environment"
  assert_success
  assert_called "sudo -n /usr/local/bin/bk-fix-builds-permissions agent-1 acme web"

  : >"$CALLS"
  settings BUILDKITE_DOCKER_USERNS_REMAP=true
  free_space 40 900000
  run_systemd_script "${job[@]}" "$HOOKS_DIR/environment"
  assert_success
  refute_called "sudo"
}

@test "environment hook: EnableECRCredentialHelper reaches the ECR plugin unless the pipeline chose" {
  plugins="$ROOT/usr/local/buildkite-aws-stack/plugins"
  mkdir -p "$plugins/ecr/hooks"
  echo 'systemctl ecr-plugin "$BUILDKITE_PLUGIN_ECR_CREDENTIAL_HELPER"' >"$plugins/ecr/hooks/environment"
  settings BUILDKITE_ECR_PLUGIN_ENABLED=true BUILDKITE_ECR_CREDENTIAL_HELPER_ENABLED=true
  free_space 40 900000
  run_systemd_script "$HOOKS_DIR/environment"
  assert_success
  assert_called "systemctl ecr-plugin true"

  free_space 40 900000
  run_systemd_script BUILDKITE_PLUGIN_ECR_CREDENTIAL_HELPER=false "$HOOKS_DIR/environment"
  assert_called "systemctl ecr-plugin false"
}
