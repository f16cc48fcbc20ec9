#!/usr/bin/env bats
# The agent hooks (environment, pre-command, pre-exit) against fakes on PATH.

load helpers/common

GIB_KIB=1048576

setup() {
  setup_fakes
  write_settings_file
  PLUGINS="$ROOT/usr/local/buildkite-aws-stack/plugins"
  respond_default docker-info 0 /var/lib/docker
}

# free_space GIB INODES: the next `df` answer for the docker data root.
free_space() {
  respond df 0 "$(printf 'Avail IFree\n%s %s' "$(($1 * GIB_KIB))" "$2")"
}

# fake_plugin NAME HOOK: a built-in plugin hook that records the plugin variables it saw.
fake_plugin() {
  mkdir -p "$PLUGINS/$1/hooks"
  printf 'systemctl %s-%s "${BUILDKITE_PLUGIN_DOCKER_LOGIN_USERNAME:-}" "${BUILDKITE_PLUGIN_DOCKER_LOGIN_PASSWORD_ENV:-}" "${BUILDKITE_PLUGIN_DOCKER_LOGIN_SERVER:-}"\n' \
    "$1" "$2" >"$PLUGINS/$1/hooks/$2"
}

@test "environment hook: a full disk fails the job before plugins run" {
  mkdir -p "$ROOT/usr/local/buildkite-aws-stack/plugins/secrets/hooks"
  echo 'systemctl secrets-plugin-sourced' >"$ROOT/usr/local/buildkite-aws-stack/plugins/secrets/hooks/environment"
  free_space 1 10
  free_space 1 10
  run_systemd_script "$HOOKS_DIR/environment"
  assert_failure
  [[ "$output" == *"out of disk space or inodes"* ]] || fail_with "no reason given to the job"
  refute_called "secrets-plugin-sourced"
}

@test "environment hook: with room, the enabled plugins load with the stack's settings" {
  set_setting BUILDKITE_ARTIFACTS_BUCKET=ci-artifacts
  write_settings_file
  plugins="$ROOT/usr/local/buildkite-aws-stack/plugins"
  mkdir -p "$plugins/secrets/hooks" "$plugins/ecr/hooks"
  echo 'systemctl secrets-plugin "$BUILDKITE_PLUGIN_S3_SECRETS_BUCKET" "$BUILDKITE_PLUGIN_S3_SECRETS_REGION"' \
    >"$plugins/secrets/hooks/environment"
  echo 'systemctl ecr-plugin "$BUILDKITE_PLUGIN_ECR_LOGIN"' >"$plugins/ecr/hooks/environment"
  free_space 40 900000
  run env -i PATH="$FAKE_BIN:$BIN_DIR:/usr/bin:/bin" BK_TEST_ROOT="$ROOT" FAKE_STATE="$FAKE_STATE" \
    BUILDKITE_PIPELINE_ID=p1 BUILDKITE_BUILD_ID=b1 BUILDKITE_JOB_ID=j1 \
    bash -c '. "$0" && printf "destination=%s\n" "$BUILDKITE_ARTIFACT_UPLOAD_DESTINATION"' \
    "$HOOKS_DIR/environment"
  assert_success
  assert_order "df --output" "systemctl secrets-plugin ci-fleet-secrets us-east-1" "systemctl ecr-plugin 1"
  [[ "$output" == *"destination=s3://ci-artifacts/p1/b1/j1"* ]] || fail_with "artifact destination not set"
}

@test "environment hook: disabled plugins stay off" {
  set_setting BUILDKITE_SECRETS_PLUGIN_ENABLED=false
  set_setting BUILDKITE_ECR_PLUGIN_ENABLED=false
  write_settings_file
  free_space 40 900000
  run_systemd_script "$HOOKS_DIR/environment"
  assert_success
  refute_called "plugin"
}

@test "pre-command: docker-login runs when enabled and the job has credentials" {
  set_setting BUILDKITE_DOCKER_LOGIN_PLUGIN_ENABLED=true
  write_settings_file
  fake_plugin docker-login pre-command
  run env -i PATH="$FAKE_BIN:$BIN_DIR:/usr/bin:/bin" BK_TEST_ROOT="$ROOT" FAKE_STATE="$FAKE_STATE" \
    DOCKER_LOGIN_USER=robot DOCKER_LOGIN_PASSWORD=hunter2 DOCKER_LOGIN_SERVER=registry.example.com \
    "$HOOKS_DIR/pre-command"
  assert_success
  assert_called "systemctl docker-login-pre-command robot DOCKER_LOGIN_PASSWORD registry.example.com"
  refute_called "hunter2"
}

@test "pre-command: docker-login stays off without credentials or when disabled" {
  fake_plugin docker-login pre-command
  set_setting BUILDKITE_DOCKER_LOGIN_PLUGIN_ENABLED=true
  write_settings_file
  run_systemd_script "$HOOKS_DIR/pre-command"
  assert_success
  set_setting BUILDKITE_DOCKER_LOGIN_PLUGIN_ENABLED=false
  write_settings_file
  run env -i PATH="$FAKE_BIN:$BIN_DIR:/usr/bin:/bin" BK_TEST_ROOT="$ROOT" FAKE_STATE="$FAKE_STATE" \
    DOCKER_LOGIN_USER=robot DOCKER_LOGIN_PASSWORD=hunter2 "$HOOKS_DIR/pre-command"
  assert_success
  refute_called "docker-login"
}

@test "pre-exit: enabled plugins clean up, disabled ones are left alone" {
  set_setting BUILDKITE_SECRETS_PLUGIN_ENABLED=true
  set_setting BUILDKITE_DOCKER_LOGIN_PLUGIN_ENABLED=false
  write_settings_file
  fake_plugin secrets pre-exit
  fake_plugin docker-login pre-exit
  run_systemd_script "$HOOKS_DIR/pre-exit"
  assert_success
  assert_called "systemctl secrets-pre-exit"
  refute_called "docker-login-pre-exit"
}
