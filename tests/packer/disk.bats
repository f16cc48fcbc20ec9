#!/usr/bin/env bats
# Disk hygiene: bk-check-disk-space and bk-docker-prune.

load helpers/common

GIB_KIB=1048576

setup() {
  setup_fakes
  write_settings_file
  CHECK="$BIN_DIR/bk-check-disk-space"
  respond_default docker-info 0 /var/lib/docker
}

# free_space GIB INODES: the next `df` answer for the docker data root.
free_space() {
  respond df 0 "$(printf 'Avail IFree\n%s %s' "$(($1 * GIB_KIB))" "$2")"
}

@test "enough space and inodes: no prune" {
  free_space 40 900000
  run_systemd_script "$CHECK"
  assert_success
  assert_called "df --output=avail,iavail -k /var/lib/docker"
  refute_called "prune"
}

@test "low space: prune everything, check again, and pass" {
  # The build cache is pruned too when DockerBuilderPruneEnabled (off by default).
  set_setting BUILDKITE_DOCKER_BUILDER_PRUNE_ENABLED=true
  write_settings_file
  free_space 2 900000
  free_space 30 900000
  run_systemd_script "$CHECK"
  assert_success
  assert_order "df --output" "docker container prune --force" "docker image prune --all --force" \
    "docker builder prune --all --force" "docker volume prune --force"
  [[ "$(count_calls "df --output")" == 2 ]] || fail_with "expected a second check after pruning"
  refute_called "until="
}

@test "low inodes after pruning: the check fails and says why" {
  free_space 40 1000
  free_space 40 2000
  run_systemd_script "$CHECK"
  assert_failure
  assert_called "docker image prune --all --force"
  [[ "$output" == *"still below 5 GiB or 250000 inodes free on /var/lib/docker after pruning"* ]] ||
    fail_with "no reason given"
}

@test "thresholds come from the stack's settings" {
  set_setting BUILDKITE_DISK_MIN_FREE_GB=50
  set_setting BUILDKITE_DISK_MIN_FREE_INODES=10
  write_settings_file
  free_space 40 900000
  free_space 60 900000
  run_systemd_script "$CHECK"
  assert_success
  assert_called "docker image prune --all --force"
}

@test "defaults are 5 GiB and 250000 inodes when the settings leave them empty" {
  set_setting BUILDKITE_DISK_MIN_FREE_GB=
  set_setting BUILDKITE_DISK_MIN_FREE_INODES=
  write_settings_file
  free_space 5 250000
  run_systemd_script "$CHECK"
  assert_success
  refute_called "prune"

  free_space 4 250000
  free_space 4 250000
  run_systemd_script "$CHECK"
  assert_failure
}

@test "a prune step that fails does not stop the others or the re-check" {
  # The build cache is pruned too when DockerBuilderPruneEnabled (off by default).
  set_setting BUILDKITE_DOCKER_BUILDER_PRUNE_ENABLED=true
  write_settings_file
  free_space 1 900000
  free_space 10 900000
  respond docker-image 1 "" "Error response from daemon: conflict"
  run_systemd_script "$CHECK"
  assert_success
  assert_order "docker image prune" "docker builder prune" "docker network prune"
  [[ "$(tail -n 1 "$CALLS")" == "df --output"* ]] || fail_with "no re-check after the prune"
}

@test "the hourly prune keeps recent resources" {
  # The build cache is pruned too when DockerBuilderPruneEnabled (off by default).
  set_setting BUILDKITE_DOCKER_BUILDER_PRUNE_ENABLED=true
  write_settings_file
  run_systemd_script "$BIN_DIR/bk-docker-prune"
  assert_success
  assert_called "docker image prune --all --force --filter until=4h"
  assert_called "docker builder prune --all --force --filter until=4h"
  assert_called "docker container prune --force --filter until=4h"
}
