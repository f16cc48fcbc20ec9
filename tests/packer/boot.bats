#!/usr/bin/env bats
# bk-install-elastic-stack.sh (the boot script) against fakes on PATH.

load helpers/common

TOKEN=bkua_0123456789abcdefSECRETtoken

setup() {
  setup_fakes
  BOOT="$BIN_DIR/bk-install-elastic-stack.sh"
  CFG="$ROOT/etc/buildkite-agent/buildkite-agent.cfg"
  LOG="$ROOT/var/log/elastic-stack.log"
  STATUS="$ROOT/var/lib/bk-elastic-stack/boot-status"
}

given_token() {
  respond aws-ssm-get-parameter 0 "$TOKEN"
}

@test "boot writes the agent config from the settings and the SSM token" {
  given_token
  run_script "$BOOT"
  assert_success

  expected='name="ci-fleet-i-0123456789abcdef0-%spawn"
token="bkua_0123456789abcdefSECRETtoken"
tags="queue=default,docker=25.0.8,stack=ci-fleet,buildkite-aws-stack=1.4.0,team=platform,size=large"
tags-from-ec2-meta-data=true
spawn=2
disconnect-after-idle-timeout=600
endpoint="https://agent.buildkite.com/v3"
build-path="/var/lib/buildkite-agent/builds"
hooks-path="/etc/buildkite-agent/hooks"
plugins-path="/var/lib/buildkite-agent/plugins"
priority=%n
no-color=true
cancel-grace-period=60
signal-grace-period-seconds=-1'
  [[ "$(<"$CFG")" == "$expected" ]] || fail_with "unexpected agent config:
$(<"$CFG")"
  assert_called "aws ssm get-parameter --name /ci-fleet/agent-token --with-decryption --query Parameter.Value --output text"
}

@test "boot keeps the token out of output, logs, command lines and every other file" {
  given_token
  run_script "$BOOT"
  assert_success

  [[ "$output" != *"$TOKEN"* ]] || fail_with "the token was printed"
  refute_called "$TOKEN"
  [[ -s "$LOG" ]] || fail_with "no boot log"
  files_with_token="$(grep -rlF -- "$TOKEN" "$ROOT")"
  [[ "$files_with_token" == "$CFG" ]] || fail_with "files holding the token: $files_with_token"
  [[ "$(stat -c %a "$CFG")" == 640 ]] || fail_with "agent config mode $(stat -c %a "$CFG")"
  assert_called "chown root:buildkite-agent $CFG."
}

@test "boot starts the lifecycle handler, waits for docker, starts the agent, then signals success" {
  given_token
  respond docker-info 1
  respond docker-info 1
  run_script "$BOOT"
  assert_success

  assert_order \
    "amazon-cloudwatch-agent-ctl -a fetch-config -m ec2 -s -c file:$ROOT/var/lib/bk-elastic-stack/cloudwatch-agent.json" \
    "aws ssm get-parameter" \
    "systemctl enable --now bk-lifecycle-handler.service" \
    "systemctl start docker.service" \
    "sleep 2" \
    "systemctl enable --now buildkite-agent.service" \
    "cfn-signal --region us-east-1 --stack ci-fleet-Fleet-1A2B3C --resource AgentAutoScaleGroup --exit-code 0"
  [[ "$(count_calls "docker info")" == 3 ]] || fail_with "expected three docker readiness checks"
  [[ "$(<"$STATUS")" == Completed ]] || fail_with "status: $(<"$STATUS")"
  refute_called "set-instance-health"
  refute_called "poweroff"
}

@test "boot writes a settings file for hooks and instance scripts without secrets" {
  given_token
  run_script "$BOOT"
  assert_success

  settings="$ROOT/etc/buildkite-agent/cfn-env"
  [[ "$(stat -c %a "$settings")" == 640 ]] || fail_with "settings mode $(stat -c %a "$settings")"
  run env -i bash -c ". '$settings' && printf '%s|%s|%s|%s' \"\$AWS_REGION\" \
    \"\$BUILDKITE_LIFECYCLE_HOOK_NAME\" \"\$BUILDKITE_SECRETS_BUCKET\" \"\$BUILDKITE_DISK_MIN_FREE_GB\""
  [[ "$output" == "us-east-1|instance_terminating|ci-fleet-secrets|5" ]] || fail_with "sourced: $output"
  run env -i AWS_REGION=eu-west-1 bash -c ". '$settings' && printf '%s' \"\$AWS_REGION\""
  [[ "$output" == eu-west-1 ]] || fail_with "a job's own region was overridden: $output"
  if grep -qF -- "$TOKEN" "$settings"; then
    fail_with "the token is in the settings file"
  fi
}

@test "second boot is a no-op" {
  given_token
  run_script "$BOOT"
  assert_success
  cp "$CFG" "$BATS_TEST_TMPDIR/first.cfg"
  : >"$CALLS"

  run_script "$BOOT"
  assert_success
  [[ ! -s "$CALLS" ]] || fail_with "the second boot called commands"
  cmp -s "$CFG" "$BATS_TEST_TMPDIR/first.cfg" || fail_with "the second boot changed the config"
  grep -q "boot already completed" "$LOG" || fail_with "no no-op line in the log"
}

@test "SSM failure marks the instance unhealthy, signals failure and starts no agent" {
  respond aws-ssm-get-parameter 254 "" \
    "An error occurred (AccessDeniedException) when calling the GetParameter operation"
  run_script "$BOOT"
  assert_failure

  assert_called "aws autoscaling set-instance-health --instance-id $INSTANCE_ID --health-status Unhealthy"
  assert_called "cfn-signal --region us-east-1 --stack ci-fleet-Fleet-1A2B3C --resource AgentAutoScaleGroup --exit-code 1"
  assert_order "set-instance-health" "cfn-signal" "systemctl poweroff --no-block"
  refute_called "buildkite-agent.service"
  refute_called "--exit-code 0"
  [[ ! -e "$CFG" ]] || fail_with "an agent config was written"
  [[ "$(<"$STATUS")" == Failed ]] || fail_with "status: $(<"$STATUS")"
  grep -q "AccessDeniedException" "$LOG" || fail_with "the cause is not in the log"
}

@test "an empty token parameter fails the boot" {
  respond aws-ssm-get-parameter 0 "None"
  run_script "$BOOT"
  assert_failure
  assert_called "--exit-code 1"
  refute_called "buildkite-agent.service"
}

@test "IMDS down: the boot fails and still signals CloudFormation" {
  given_token
  touch "$FAKE_STATE/imds-down"
  run_script "$BOOT"
  assert_failure
  refute_called "set-instance-health"
  assert_called "cfn-signal --region us-east-1 --stack ci-fleet-Fleet-1A2B3C --resource AgentAutoScaleGroup --exit-code 1"
  refute_called "buildkite-agent.service"
}

@test "a boot that never completed is not resumed" {
  given_token
  mkdir -p "$(dirname "$STATUS")"
  echo Started >"$STATUS"
  run_script "$BOOT"
  assert_failure
  assert_called "set-instance-health --instance-id $INSTANCE_ID --health-status Unhealthy"
  refute_called "aws ssm get-parameter"
}

@test "a malformed agent count fails the boot before the token is read" {
  given_token
  set_setting BUILDKITE_AGENTS_PER_INSTANCE=0
  run_script "$BOOT"
  assert_failure
  refute_called "aws ssm get-parameter"
  assert_called "--exit-code 1"
  grep -q "BUILDKITE_AGENTS_PER_INSTANCE must be a whole number" "$LOG"
}

@test "a quote in the agent tags fails the boot (no config injection)" {
  given_token
  set_setting 'BUILDKITE_AGENT_TAGS=team="x"'
  run_script "$BOOT"
  assert_failure
  refute_called "aws ssm get-parameter"
  grep -q "BUILDKITE_AGENT_TAGS contains a quote" "$LOG"
}

@test "an empty required setting fails the boot" {
  given_token
  set_setting BUILDKITE_QUEUE=
  run_script "$BOOT"
  assert_failure
  refute_called "aws ssm get-parameter"
  grep -q "required setting BUILDKITE_QUEUE is empty" "$LOG"
}

@test "boot fetches the env file and runs the bootstrap script before starting the agent" {
  given_token
  mkdir -p "$FAKE_STATE/web/config.example.com" "$ROOT/srv"
  printf 'FOO=bar\n' >"$FAKE_STATE/web/config.example.com/agent.env"
  cat >"$ROOT/srv/bootstrap.sh" <<'SCRIPT'
systemctl restart bootstrap-marker.service
SCRIPT
  set_setting BUILDKITE_ENV_FILE_URL=https://config.example.com/agent.env
  set_setting "BUILDKITE_BOOTSTRAP_SCRIPT_URL=file://$ROOT/srv/bootstrap.sh"
  run_script "$BOOT"
  assert_success

  env_file="$ROOT/etc/buildkite-agent/env"
  [[ "$(<"$env_file")" == FOO=bar ]] || fail_with "env file: $(<"$env_file")"
  [[ "$(stat -c %a "$env_file")" == 640 ]] || fail_with "env file mode $(stat -c %a "$env_file")"
  assert_order "systemctl restart bootstrap-marker.service" "systemctl enable --now buildkite-agent.service"
}

@test "the bootstrap script can come from S3, and its failure fails the boot" {
  given_token
  mkdir -p "$FAKE_STATE/s3/ci-bucket"
  printf 'exit 3\n' >"$FAKE_STATE/s3/ci-bucket/boot.sh"
  set_setting BUILDKITE_BOOTSTRAP_SCRIPT_URL=s3://ci-bucket/boot.sh
  run_script "$BOOT"
  assert_failure
  assert_called "aws s3 cp --only-show-errors s3://ci-bucket/boot.sh"
  refute_called "buildkite-agent.service"
  assert_called "--exit-code 1"
}

@test "plain http bootstrap URLs are refused before anything is done" {
  given_token
  set_setting BUILDKITE_BOOTSTRAP_SCRIPT_URL=http://example.com/boot.sh
  run_script "$BOOT"
  assert_failure
  refute_called "curl --silent --show-error --fail --location"
  refute_called "aws ssm get-parameter"
  grep -q "BUILDKITE_BOOTSTRAP_SCRIPT_URL must be an s3://, https:// or file:/// URL" "$LOG"
}

@test "one job per instance and pipeline signing reach the agent config" {
  given_token
  set_setting BUILDKITE_TERMINATE_INSTANCE_AFTER_JOB=true
  set_setting BUILDKITE_PIPELINE_SIGNING_KMS_KEY=arn:aws:kms:us-east-1:123456789012:key/abcd
  set_setting BUILDKITE_AGENT_ENDPOINT=
  run_script "$BOOT"
  assert_success
  grep -qx 'disconnect-after-job=true' "$CFG"
  grep -qx 'signing-aws-kms-key="arn:aws:kms:us-east-1:123456789012:key/abcd"' "$CFG"
  grep -qx 'verification-failure-behavior=block' "$CFG"
  if grep -q '^endpoint=' "$CFG"; then
    fail_with "an empty endpoint was written"
  fi
}

@test "an instance booting into a warm pool prepares the agent but does not start it" {
  given_token
  imds autoscaling/target-lifecycle-state Warmed:Stopped
  run_script "$BOOT"
  assert_success
  # Disabled: a resume boot must not start it before the lifecycle handler says so.
  refute_called "buildkite-agent.service"
  [[ -e "$ROOT/var/lib/bk-elastic-stack/warm-pool" ]] || fail_with "no warm-pool marker"
  assert_called "--exit-code 0"
}

@test "a refused success signal (nobody waiting) does not fail the boot" {
  given_token
  respond cfn-signal 1 "" "ValidationError: Signal not accepted"
  run_script "$BOOT"
  assert_success
  [[ "$(<"$STATUS")" == Completed ]]
  refute_called "set-instance-health"
}

@test "a signing key with an unknown access level fails the boot" {
  given_token
  set_setting BUILDKITE_PIPELINE_SIGNING_KMS_KEY=alias/pipeline-signing
  set_setting BUILDKITE_PIPELINE_SIGNING_KMS_ACCESS=sign-only
  run_script "$BOOT"
  assert_failure
  refute_called "aws ssm get-parameter"
  grep -q "BUILDKITE_PIPELINE_SIGNING_KMS_ACCESS must be sign-and-verify or verify" "$LOG"
}

# --- the agent settings the reference stack's users rely on -----------------------------------

@test "agent settings arrive in the agent config" {
  given_token
  set_setting BUILDKITE_AGENT_EXPERIMENTS=normalised-upload-paths,resolve-commit-after-checkout
  set_setting BUILDKITE_AGENT_TIMESTAMP_LINES=true
  set_setting BUILDKITE_AGENT_TRACING_BACKEND=opentelemetry
  set_setting BUILDKITE_AGENT_CANCEL_GRACE_PERIOD=120
  set_setting BUILDKITE_AGENT_SIGNAL_GRACE_PERIOD=30
  set_setting BUILDKITE_AGENT_DISCONNECT_AFTER_UPTIME=86400
  run_script "$BOOT"
  assert_success

  for line in 'cancel-grace-period=120' 'signal-grace-period-seconds=30' \
    'disconnect-after-uptime=86400' 'timestamp-lines=true' 'no-ansi-timestamps=true' \
    'experiment="normalised-upload-paths,resolve-commit-after-checkout"' \
    'tracing-backend="opentelemetry"'; do
    grep -qxF -- "$line" "$CFG" || fail_with "missing '$line' in:
$(<"$CFG")"
  done
}

@test "default agent settings leave the optional lines out" {
  given_token
  run_script "$BOOT"
  assert_success
  for key in disconnect-after-uptime timestamp-lines experiment tracing-backend \
    signing-jwks-file verification-jwks-file verification-failure-behavior; do
    if grep -q "^$key=" "$CFG"; then
      fail_with "unexpected $key in the default config"
    fi
  done
}

@test "JWKS key sets are copied from SSM into agent-only files and configured" {
  given_token
  respond aws-ssm-get-parameter 0 '{"keys":[{"kid":"signer","kty":"EC","d":"SIGNINGSECRET"}]}'
  respond aws-ssm-get-parameter 0 '{"keys":[{"kid":"signer","kty":"EC"}]}'
  set_setting BUILDKITE_AGENT_SIGNING_KEY_PATH=/ci/jwks/signing
  set_setting BUILDKITE_AGENT_SIGNING_KEY_ID=signer
  set_setting BUILDKITE_AGENT_VERIFICATION_KEY_PATH=/ci/jwks/verification
  set_setting BUILDKITE_VERIFICATION_FAILURE_BEHAVIOR=warn
  run_script "$BOOT"
  assert_success

  signing="$ROOT/etc/buildkite-agent/signing-key.json"
  verification="$ROOT/etc/buildkite-agent/verification-key.json"
  assert_called "aws ssm get-parameter --name /ci/jwks/signing --with-decryption"
  assert_called "aws ssm get-parameter --name /ci/jwks/verification --with-decryption"
  grep -qF SIGNINGSECRET "$signing" || fail_with "signing key set not written"
  [[ "$(stat -c %a "$signing")" == 640 ]] || fail_with "signing key mode $(stat -c %a "$signing")"
  assert_called "chown root:buildkite-agent $signing."
  for line in "signing-jwks-file=\"$signing\"" 'signing-jwks-key-id="signer"' \
    "verification-jwks-file=\"$verification\"" 'verification-failure-behavior=warn'; do
    grep -qxF -- "$line" "$CFG" || fail_with "missing '$line' in:
$(<"$CFG")"
  done
  files_with_key="$(grep -rlF -- SIGNINGSECRET "$ROOT")"
  [[ "$files_with_key" == "$signing" ]] || fail_with "files holding the signing key: $files_with_key"
  refute_called SIGNINGSECRET
}

@test "an empty key set parameter fails the boot" {
  given_token
  respond aws-ssm-get-parameter 0 ""
  set_setting BUILDKITE_AGENT_VERIFICATION_KEY_PATH=/ci/jwks/verification
  run_script "$BOOT"
  assert_failure
  assert_called "--exit-code 1"
  refute_called "buildkite-agent.service"
}

@test "a KMS-signing agent blocks unverifiable jobs unless told to warn" {
  given_token
  set_setting BUILDKITE_PIPELINE_SIGNING_KMS_KEY=arn:aws:kms:us-east-1:123456789012:key/abcd
  run_script "$BOOT"
  assert_success
  grep -qxF 'verification-failure-behavior=block' "$CFG" || fail_with "$(<"$CFG")"
}

@test "additional sudo permissions are checked with visudo and installed read-only" {
  given_token
  set_setting "BUILDKITE_ADDITIONAL_SUDO_PERMISSIONS=/usr/bin/systemctl restart docker, /usr/bin/dnf"
  run_script "$BOOT"
  assert_success
  sudoers="$ROOT/etc/sudoers.d/buildkite-agent-additional"
  [[ "$(<"$sudoers")" == "buildkite-agent ALL=NOPASSWD: /usr/bin/systemctl restart docker, /usr/bin/dnf" ]] ||
    fail_with "sudoers: $(<"$sudoers")"
  [[ "$(stat -c %a "$sudoers")" == 440 ]] || fail_with "sudoers mode $(stat -c %a "$sudoers")"
  assert_order "visudo -c -q -f" "systemctl enable --now buildkite-agent.service"
}

@test "no sudoers file without additional sudo permissions" {
  given_token
  run_script "$BOOT"
  assert_success
  [[ ! -e "$ROOT/etc/sudoers.d/buildkite-agent-additional" ]] || fail_with "a sudoers file was written"
  refute_called visudo
}

@test "sudo permissions visudo rejects fail the boot and are not installed" {
  given_token
  respond visudo 1 "" "syntax error"
  set_setting "BUILDKITE_ADDITIONAL_SUDO_PERMISSIONS=/usr/bin/true"
  run_script "$BOOT"
  assert_failure
  [[ -z "$(ls -A "$ROOT/etc/sudoers.d")" ]] || fail_with "left: $(ls -A "$ROOT/etc/sudoers.d")"
  refute_called "buildkite-agent.service"
}

@test "artifact upload region and ACL reach the jobs through the settings file" {
  given_token
  set_setting BUILDKITE_S3_DEFAULT_REGION=eu-west-2
  set_setting BUILDKITE_S3_ACL=bucket-owner-full-control
  run_script "$BOOT"
  assert_success
  run env -i bash -c ". '$ROOT/etc/buildkite-agent/cfn-env' && printf '%s|%s' \"\$BUILDKITE_S3_DEFAULT_REGION\" \"\$BUILDKITE_S3_ACL\""
  [[ "$output" == "eu-west-2|bucket-owner-full-control" ]] || fail_with "sourced: $output"
}

@test "the agents carry the root stack's name; cfn-signal goes to the fleet stack" {
  given_token
  run_script "$BOOT"
  assert_success
  grep -qF 'name="ci-fleet-i-0123456789abcdef0-%spawn"' "$CFG" || fail_with "$(<"$CFG")"
  grep -qF ',stack=ci-fleet,' "$CFG" || fail_with "$(<"$CFG")"
  assert_called "cfn-signal --region us-east-1 --stack ci-fleet-Fleet-1A2B3C --resource AgentAutoScaleGroup --exit-code 0"
}

@test "invalid agent settings fail the boot before anything is configured" {
  local bad
  for bad in BUILDKITE_AGENT_CANCEL_GRACE_PERIOD=0 BUILDKITE_AGENT_SIGNAL_GRACE_PERIOD=-2 \
    BUILDKITE_AGENT_TRACING_BACKEND=zipkin BUILDKITE_VERIFICATION_FAILURE_BEHAVIOR=ignore \
    'BUILDKITE_AGENT_EXPERIMENTS=a"b'; do
    rm -rf "$ROOT" "$FAKE_STATE" "$FAKE_BIN"
    setup_fakes
    given_token
    set_setting "$bad"
    run_script "$BOOT"
    assert_failure
    refute_called "aws ssm get-parameter"
  done
}

@test "an ssm: env file URL writes the parameters under the path as the agent's environment" {
  given_token
  respond aws-ssm-get-parameters-by-path 0 '{"Parameters": [
    {"Name": "/ci/agent-env/http_proxy", "Value": "http://proxy.internal:3128"},
    {"Name": "/ci/agent-env/nested/Api_Key", "Value": "s3cr\"et\\x"}]}'
  set_setting BUILDKITE_ENV_FILE_URL=ssm:/ci/agent-env
  run_script "$BOOT"
  assert_success

  assert_called "aws ssm get-parameters-by-path --path /ci/agent-env --recursive --with-decryption --output json"
  env_file="$ROOT/etc/buildkite-agent/env"
  expected='HTTP_PROXY="http://proxy.internal:3128"
API_KEY="s3cr\"et\\x"'
  [[ "$(<"$env_file")" == "$expected" ]] || fail_with "env file: $(<"$env_file")"
  [[ "$(stat -c %a "$env_file")" == 640 ]] || fail_with "env file mode $(stat -c %a "$env_file")"
  if grep -qF 's3cr' "$LOG"; then
    fail_with "a parameter value reached the boot log"
  fi
}

@test "an ssm: parameter that is no variable name fails the boot and names only the parameter" {
  given_token
  respond aws-ssm-get-parameters-by-path 0 \
    '{"Parameters": [{"Name": "/ci/agent-env/not-a-name", "Value": "hidden-value"}]}'
  set_setting BUILDKITE_ENV_FILE_URL=ssm:/ci/agent-env
  run_script "$BOOT"
  assert_failure
  grep -qF "/ci/agent-env/not-a-name" "$LOG" || fail_with "the parameter is not named in the log"
  if grep -qF hidden-value "$LOG"; then
    fail_with "the value reached the log"
  fi
  refute_called "buildkite-agent.service"
}

@test "an instance the group is already terminating does not start its agent" {
  given_token
  imds autoscaling/target-lifecycle-state Terminated
  run_script "$BOOT"
  assert_success
  refute_called "systemctl enable --now buildkite-agent.service"
  refute_called "systemctl enable buildkite-agent.service"
  refute_called "systemctl start buildkite-agent.service"
  # The lifecycle handler runs, to complete the lifecycle action.
  assert_called "systemctl enable --now bk-lifecycle-handler.service"
  [[ ! -e "$ROOT/var/lib/bk-elastic-stack/warm-pool" ]] || fail_with "the agent was left to start later"
  [[ "$(<"$STATUS")" == Completed ]] || fail_with "status: $(<"$STATUS")"
  grep -q "already terminating this instance: not starting the agent" "$LOG"
}

@test "an instance drained while it boots does not start its agent" {
  given_token
  respond docker-info 1
  # The group puts the instance into Terminating:Wait while the boot waits for docker.
  on_sleep "printf Terminated >'$FAKE_STATE/imds/autoscaling/target-lifecycle-state'"
  run_script "$BOOT"
  assert_success
  assert_called "sleep 2"
  refute_called "systemctl enable --now buildkite-agent.service"
  refute_called "systemctl enable buildkite-agent.service"
}

@test "an instance not yet headed for InService leaves the agent to the lifecycle handler" {
  given_token
  rm "$FAKE_STATE/imds/autoscaling/target-lifecycle-state"
  run_script "$BOOT"
  assert_success
  refute_called "buildkite-agent.service"
  [[ -e "$ROOT/var/lib/bk-elastic-stack/warm-pool" ]] || fail_with "no start-on-service marker"

  imds autoscaling/target-lifecycle-state InService
  run_systemd_script "$BIN_DIR/bk-lifecycle-handler" --once
  assert_success
  assert_called "systemctl enable --now buildkite-agent.service"
}

@test "the grace period reaches the settings file the lifecycle handler reads" {
  given_token
  set_setting BUILDKITE_TERMINATION_GRACE_PERIOD=45
  run_script "$BOOT"
  assert_success
  grep -qx "export BUILDKITE_TERMINATION_GRACE_PERIOD=45" "$ROOT/etc/buildkite-agent/cfn-env"
}

@test "a grace period below the hook's 30 s minimum fails the boot" {
  given_token
  set_setting BUILDKITE_TERMINATION_GRACE_PERIOD=29
  run_script "$BOOT"
  assert_failure
  refute_called "aws ssm get-parameter"
  grep -q "BUILDKITE_TERMINATION_GRACE_PERIOD must be a whole number >= 30" "$LOG"
}

@test "an idle period of 0 (the agent's never) fails the boot" {
  given_token
  set_setting BUILDKITE_SCALE_IN_IDLE_PERIOD=0
  run_script "$BOOT"
  assert_failure
  refute_called "aws ssm get-parameter"
  grep -q "BUILDKITE_SCALE_IN_IDLE_PERIOD must be a whole number >= 1" "$LOG"
}

@test "a control character in a setting fails the boot (no config injection)" {
  given_token
  set_setting "BUILDKITE_AGENT_ENDPOINT=https://agent.example.com/v3"$'\r'"tags=\"x\""
  run_script "$BOOT"
  assert_failure
  refute_called "aws ssm get-parameter"
  grep -q "BUILDKITE_AGENT_ENDPOINT contains a quote, backslash or control character" "$LOG"
}
