"""python -m tools.migrate: every reference parameter handled, the report, the formats.

The reference stack's parameter list is read from the shared reference notes
(../shared/reference/reference-parameters.md beside the clone), so a name added there and not
handled here fails these tests.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from samcli.cli.types import CfnParameterOverridesType

from tools.cfn_template import constraint_violations, load_template
from tools.migrate.__main__ import main
from tools.migrate.convert import our_defaults, same_value
from tools.migrate.reference import REFERENCE_DEFAULTS
from tools.migrate.rules import RULES, Drop, Keep

ROOT = Path(__file__).resolve().parents[2]
REFERENCE_LIST = Path("reference") / "reference-parameters.md"
SHARED_CANDIDATES = [ROOT.parent / "shared", ROOT.parent.parent / "shared"]
TOKEN = "bkua_0123456789abcdefNEVERPRINTED"


def reference_parameters() -> dict[str, str]:
    """name -> default, from the reference parameter table."""
    for shared in SHARED_CANDIDATES:
        path = shared / REFERENCE_LIST
        if path.is_file():
            break
    else:
        pytest.fail(
            f"the reference parameter list is missing: looked for {REFERENCE_LIST} in "
            f"{', '.join(str(s) for s in SHARED_CANDIDATES)} (CI copies shared/ beside the clone)"
        )
    table = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.split("|")]
        if len(cells) > 5 and re.fullmatch(r"\d+", cells[1]):
            default = cells[5]
            table[cells[2]] = "" if default == '""' else default.strip("`")
    return table


@pytest.fixture(scope="module")
def reference() -> dict[str, str]:
    return reference_parameters()


@pytest.fixture(scope="module")
def root_template() -> dict:
    return load_template(ROOT / "template.yaml")


def run(capsys, *arguments: str) -> tuple[int, str, str]:
    code = main([str(argument) for argument in arguments])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def parameter_file(tmp_path: Path, values: dict[str, str], name: str = "params.json") -> Path:
    path = tmp_path / name
    items = [{"ParameterKey": key, "ParameterValue": value} for key, value in values.items()]
    path.write_text(json.dumps(items))
    return path


def report(err: str) -> dict[str, tuple[str, str]]:
    """name -> (kind, text) of each report line."""
    lines = {}
    for line in err.splitlines():
        match = re.match(r"^(\w+)\s+(\w+): (.*)$", line)
        if match:
            lines[match.group(2)] = (match.group(1), match.group(3))
    return lines


# --- every reference parameter is handled ---------------------------------------------------
def test_the_reference_list_has_all_126_parameters(reference):
    assert len(reference) == 126


def test_every_reference_parameter_has_a_rule(reference):
    assert set(reference) == set(RULES), "add a rule in tools/migrate/rules.py"


def test_the_command_knows_the_reference_defaults(reference):
    assert reference == REFERENCE_DEFAULTS


def test_every_kept_parameter_exists_in_our_root_template(root_template):
    missing = {
        rule.target or name
        for name, rule in RULES.items()
        if isinstance(rule, Keep) and (rule.target or name) not in root_template["Parameters"]
    }
    assert not missing


# A reference stack with every parameter set to something other than its default.
NON_DEFAULT = {
    "KeyName": "ops-key",
    "BuildkiteAgentRelease": "beta",
    "BuildkiteAgentToken": "****",
    "BuildkiteAgentTokenParameterStorePath": "/ci/buildkite/token",
    "BuildkiteAgentTokenParameterStoreKMSKey": "1234abcd-12ab-34cd-56ef-1234567890ab",
    "AgentEndpoint": "https://agent.buildkite.com/v3",
    "BuildkiteAgentTags": "team=platform,size=large",
    "BuildkiteAgentTimestampLines": "true",
    "BuildkiteAgentExperiments": "normalised-upload-paths",
    "BuildkiteAgentScalerServerlessARN": (
        "arn:aws:serverlessrepo:us-east-1:123456789012:applications/my-scaler"
    ),
    "ScalerEnableExperimentalElasticCIMode": "true",
    "DisableScaleIn": "false",
    "InstanceScaleInProtection": "false",
    "EnableScheduledScaling": "true",
    "ScheduleTimezone": "Europe/Berlin",
    "ScaleUpSchedule": "0 7 * * MON-FRI",
    "ScaleUpMinSize": "2",
    "ScaleDownSchedule": "0 19 * * MON-FRI",
    "ScaleDownMinSize": "1",
    "ScaleOutCooldownPeriod": "120",
    "ScaleInCooldownPeriod": "1800",
    "EnableEC2LogRetentionPolicy": "true",
    "EC2LogRetentionDays": "90",
    "LogRetentionDays": "14",
    "BuildkiteAgentEnableGracefulShutdown": "true",
    "BuildkiteAgentTracingBackend": "datadog",
    "BuildkiteAgentSigningKeySSMParameter": "/ci/jwks/signing",
    "BuildkiteAgentSigningKeyID": "signer-1",
    "BuildkiteAgentVerificationKeySSMParameter": "/ci/jwks/verification",
    "BuildkiteAgentCancelGracePeriod": "120",
    "BuildkiteAgentSignalGracePeriod": "30",
    "BuildkiteTerminateInstanceAfterJob": "true",
    "BuildkiteTerminateInstanceOnDiskFull": "true",
    "BuildkitePurgeBuildsOnDiskFull": "true",
    "BuildkiteAgentDisconnectAfterUptime": "86400",
    "ExperimentalEnableResourceLimits": "true",
    "ResourceLimitsMemoryHigh": "80%",
    "ResourceLimitsMemoryMax": "95%",
    "ResourceLimitsMemorySwapMax": "0",
    "ResourceLimitsCPUWeight": "200",
    "ResourceLimitsCPUQuota": "150%",
    "ResourceLimitsIOWeight": "100",
    "BuildkiteAdditionalSudoPermissions": "/usr/bin/systemctl restart docker, /usr/bin/dnf",
    "BuildkiteWindowsAdministrator": "false",
    "BuildkiteQueue": "builds",
    "AgentsPerInstance": "2",
    "SecretsBucket": "ci-secrets",
    "SecretsBucketRegion": "eu-west-1",
    "SecretsBucketEncryption": "true",
    "SecretsPluginSkipSSHKeyNotFoundWarning": "true",
    "ArtifactsBucket": "ci-artifacts",
    "ArtifactsBucketRegion": "eu-west-2",
    "ArtifactsS3ACL": "bucket-owner-full-control",
    "BootstrapScriptUrl": "s3://ci-config/bootstrap.sh",
    "AgentEnvFileUrl": "ssm:/ci/agent-env",
    "AuthorizedUsersUrl": "https://keys.example.com/authorized_keys",
    "VpcId": "vpc-0123456789abcdef0",
    "Subnets": "subnet-0123456789abcdef0,subnet-0123456789abcdef1",
    "AvailabilityZones": "eu-west-1a,eu-west-1b",
    "InstanceTypes": "m7g.large,m6g.large",
    "CpuCredits": "standard",
    "NestedVirtualizationEnabled": "true",
    "MaxSize": "20",
    "MinSize": "1",
    "InstanceBuffer": "1",
    "ScalerEventSchedulePeriod": "30 seconds",
    "ScalerEventScheduleJitter": "30s",
    "ScalerMinPollInterval": "30s",
    "OnDemandBaseCapacity": "1",
    "OnDemandPercentage": "50",
    "SpotAllocationStrategy": "price-capacity-optimized",
    "ScaleOutFactor": "1.5",
    "ScaleInIdlePeriod": "900",
    "ScaleOutForWaitingJobs": "true",
    "InstanceCreationTimeout": "PT20M",
    "RootVolumeSize": "500",
    "RootVolumeName": "/dev/sda1",
    "RootVolumeType": "io2",
    "RootVolumeThroughput": "250",
    "RootVolumeIops": "6000",
    "RootVolumeEncrypted": "true",
    "RootVolumeDeleteOnTermination": "false",
    "SecurityGroupIds": "sg-0123456789abcdef0",
    "ImageId": "ami-0123456789abcdef0",
    "ImageIdParameter": "/ci/ami",
    "ManagedPolicyARNs": "arn:aws:iam::123456789012:policy/ci-extra",
    "ScalerManagedPolicyARNs": "arn:aws:iam::123456789012:policy/scaler-extra",
    "IMDSv2Tokens": "required",
    "InstanceRoleName": "ci-agents",
    "InstanceRolePermissionsBoundaryARN": "arn:aws:iam::123456789012:policy/boundary",
    "InstanceRoleTags": "Team=platform,Purpose=ci",
    "InstanceRoleARN": "arn:aws:iam::123456789012:role/ci/agents",
    "InstanceOperatingSystem": "windows",
    "LinuxDistribution": "ubuntu2404",
    "ECRAccessPolicy": "readonly-pullthrough",
    "AssociatePublicIpAddress": "false",
    "EnableVpcEndpoints": "true",
    "DockerNetworkingProtocol": "dualstack",
    "DockerIPv4AddressPool1": "172.20.0.0/14",
    "DockerIPv4AddressPool2": "192.168.128.0/17",
    "DockerIPv6AddressPool": "2001:db8:3::/104",
    "DockerFixedCidrV4": "172.20.1.0/24",
    "DockerFixedCidrV6": "2001:db8:4::/64",
    "EnableSecretsPlugin": "false",
    "EnableECRPlugin": "false",
    "EnableECRCredentialHelper": "true",
    "EnableDockerLoginPlugin": "false",
    "EnableDockerUserNamespaceRemap": "false",
    "EnableDockerExperimental": "true",
    "DockerPruneUntil": "1h30m",
    "EnablePreExitDiskCleanup": "true",
    "DockerBuilderPruneEnabled": "true",
    "EnableInstanceStorage": "true",
    "MountTmpfsAtTmp": "false",
    "EnableCostAllocationTags": "true",
    "CostAllocationTagName": "CostCenter",
    "CostAllocationTagValue": "ci",
    "BuildkiteAgentEnableGitMirrors": "true",
    "GitMirrorSeedBucket": "ci-git-seeds",
    "EnableDetailedMonitoring": "true",
    "InstanceName": "ci-agent",
    "PipelineSigningKMSKeyId": "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab",
    "PipelineSigningKMSKeySpec": "ECC_NIST_P256",
    "PipelineSigningKMSAccess": "verify",
    "PipelineSigningVerificationFailureBehavior": "warn",
    "LambdaArchitecture": "arm64",
}


def test_the_non_default_stack_sets_every_reference_parameter(reference):
    assert set(NON_DEFAULT) == set(reference)
    assert [name for name, value in NON_DEFAULT.items() if value == reference[name]] == []


def test_a_stack_with_every_parameter_set_converts_and_passes_our_constraints(
    capsys, tmp_path, root_template
):
    path = parameter_file(tmp_path, NON_DEFAULT)
    code, out, err = run(capsys, path, "--format", "json", "--accept-changes")
    assert code == 0, err
    parameters = {item["ParameterKey"]: item["ParameterValue"] for item in json.loads(out)}
    assert constraint_violations(root_template, parameters) == []
    noted = report(err)
    ours = our_defaults(root_template)
    # Every set parameter is carried over unchanged (left out when it is our default) or reported.
    for name, value in NON_DEFAULT.items():
        assert parameters.get(name, ours.get(name)) == value or name in noted, name


def test_without_accept_changes_decisions_stop_the_command(capsys, tmp_path):
    code, out, err = run(capsys, parameter_file(tmp_path, NON_DEFAULT))
    assert code == 2
    assert out == ""
    decisions = {name for name, (kind, _) in report(err).items() if kind == "decide"}
    assert {
        "InstanceOperatingSystem",
        "LinuxDistribution",
        "KeyName",
        "AuthorizedUsersUrl",
        "ScalerManagedPolicyARNs",
        "RootVolumeDeleteOnTermination",
        "EnableDockerExperimental",
        "NestedVirtualizationEnabled",
        "ExperimentalEnableResourceLimits",
        "PipelineSigningKMSKeySpec",
    } <= decisions
    assert "--accept-changes" in err.splitlines()[-1]


# --- the report -------------------------------------------------------------------------------
def test_unchanged_parameters_are_carried_over_silently(capsys, tmp_path):
    values = {"BuildkiteAgentToken": "", "BuildkiteAgentTokenParameterStorePath": "/bk/token"}
    values |= {"BuildkiteQueue": "builds", "MaxSize": "25", "ArtifactsS3ACL": "public-read"}
    code, out, err = run(capsys, parameter_file(tmp_path, values))
    assert code == 0, err
    assert 'BuildkiteQueue="builds"' in out
    assert 'MaxSize="25"' in out
    assert 'ArtifactsS3ACL="public-read"' in out
    assert not {"BuildkiteQueue", "MaxSize", "ArtifactsS3ACL"} & set(report(err))


def test_renamed_and_translated_values_are_reported(capsys, tmp_path):
    values = {
        "BuildkiteAgentTokenParameterStorePath": "/bk/token",
        "ScalerMinPollInterval": "1m30s",
        "InstanceTypes": "c7i.large, c6i.large,",
    }
    code, out, err = run(capsys, parameter_file(tmp_path, values))
    assert code == 0, err
    assert 'PollInterval="60"' in out
    assert 'InstanceTypes="c7i.large,c6i.large"' in out
    noted = report(err)
    assert noted["ScalerMinPollInterval"][0] == "renamed"
    assert "-> PollInterval = 60 (from 1m30s" in noted["ScalerMinPollInterval"][1]
    assert noted["InstanceTypes"][0] == "translated"


def test_dropped_parameters_say_why_and_what_replaces_them(capsys, tmp_path):
    values = {
        "BuildkiteAgentTokenParameterStorePath": "/bk/token",
        "LambdaArchitecture": "arm64",
        "SecretsPluginSkipSSHKeyNotFoundWarning": "true",
    }
    code, _, err = run(capsys, parameter_file(tmp_path, values))
    assert code == 0, err
    noted = report(err)
    assert noted["LambdaArchitecture"][0] == "dropped"
    kind, text = noted["SecretsPluginSkipSSHKeyNotFoundWarning"]
    assert kind == "dropped"
    assert "instead: BUILDKITE_PLUGIN_S3_SECRETS_SKIP_SSH_KEY_NOT_FOUND_WARNING" in text


def test_unset_parameters_take_our_defaults_and_differences_are_reported(capsys, tmp_path):
    code, out, err = run(
        capsys, parameter_file(tmp_path, {"BuildkiteAgentTokenParameterStorePath": "/bk/t"})
    )
    assert code == 0, err
    noted = report(err)
    for name, ours in [
        ("IMDSv2Tokens", "required"),
        ("LogRetentionDays", "30"),
        ("ScaleOutCooldownPeriod", "0"),
        ("InstanceCreationTimeout", "PT10M"),
    ]:
        kind, text = noted[name]
        assert kind == "default"
        assert f"our default {ours} replaces the reference's" in text
    assert "IMDSv2Tokens" not in out  # our default applies by itself
    # Where the defaults agree nothing is said.
    assert "BuildkiteQueue" not in noted
    assert "CostAllocationTagValue" not in noted


def test_log_groups_are_this_stacks_own_so_none_is_skipped(capsys, tmp_path):
    # The reference's instances created fixed-name /buildkite/* groups; ours are
    # /buildkite/<stack name>/*, so both can live in one region and ours are created.
    code, out, err = run(
        capsys, parameter_file(tmp_path, {"BuildkiteAgentTokenParameterStorePath": "/bk/t"})
    )
    assert code == 0, err
    assert "SkipEC2LogGroupCreation" not in out
    assert (
        "our default true replaces the reference's false"
        in (report(err)["EnableEC2LogRetentionPolicy"][1])
    )


def test_unknown_parameters_are_reported_not_lost(capsys, tmp_path):
    values = {"BuildkiteAgentTokenParameterStorePath": "/bk/t", "SomethingNew": "1"}
    code, out, err = run(capsys, parameter_file(tmp_path, values))
    assert code == 0, err
    assert report(err)["SomethingNew"][0] == "unknown"
    assert "SomethingNew" not in out


# --- the token --------------------------------------------------------------------------------
@pytest.mark.parametrize("output_format", ["overrides", "samconfig", "json"])
def test_the_token_is_never_printed_and_its_ssm_path_is_written(capsys, tmp_path, output_format):
    values = {"BuildkiteAgentToken": TOKEN, "BuildkiteQueue": "builds"}
    code, out, err = run(
        capsys,
        parameter_file(tmp_path, values),
        "--format",
        output_format,
        "--accept-changes",
        "--token-parameter",
        "/ci/agent-token",
    )
    assert code == 0, err
    assert TOKEN not in out
    assert TOKEN not in err
    assert "BuildkiteAgentToken=" not in out
    assert '"BuildkiteAgentToken"' not in out
    assert "BuildkiteAgentTokenParameterStorePath" in out
    assert "/ci/agent-token" in out
    kind, text = report(err)["BuildkiteAgentToken"]
    assert kind == "decide"
    assert "aws ssm put-parameter --name /ci/agent-token --type SecureString" in text


def test_a_token_behind_a_given_parameter_path_is_simply_dropped(capsys, tmp_path):
    values = {"BuildkiteAgentToken": "****", "BuildkiteAgentTokenParameterStorePath": "/x/t"}
    code, out, err = run(capsys, parameter_file(tmp_path, values))
    assert code == 0, err
    assert report(err)["BuildkiteAgentToken"][0] == "dropped"
    assert 'BuildkiteAgentTokenParameterStorePath="/x/t"' in out


def test_the_describe_stacks_token_placeholder_names_the_old_parameter(capsys, tmp_path):
    path = tmp_path / "stack.json"
    path.write_text(
        json.dumps(
            {
                "Stacks": [
                    {
                        "StackName": "ci-agents",
                        "Parameters": [
                            {"ParameterKey": "BuildkiteAgentToken", "ParameterValue": "****"},
                            {"ParameterKey": "BuildkiteQueue", "ParameterValue": "builds"},
                        ],
                    }
                ]
            }
        )
    )
    code, _, err = run(capsys, path, "--accept-changes")
    assert code == 0, err
    assert "/ci-agents/buildkite/agent-token" in report(err)["BuildkiteAgentToken"][1]


# --- SSH ---------------------------------------------------------------------------------------
def test_a_key_pair_is_kept_only_with_a_narrow_ssh_cidr(capsys, tmp_path):
    values = {"BuildkiteAgentTokenParameterStorePath": "/bk/t", "KeyName": "ops"}
    code, out, err = run(capsys, parameter_file(tmp_path, values), "--accept-changes")
    assert code == 0, err
    assert "KeyName" not in out
    code, out, err = run(
        capsys, parameter_file(tmp_path, values), "--ssh-ingress-cidr", "192.0.2.0/24"
    )
    assert code == 0, err
    assert 'KeyName="ops"' in out
    assert 'SshIngressCidr="192.0.2.0/24"' in out


# --- formats -----------------------------------------------------------------------------------
TRICKY = {
    "BuildkiteAgentTokenParameterStorePath": "/bk/t",
    "ScaleUpSchedule": "0 7 * * MON-FRI",
    "BuildkiteAgentTags": "team=platform,owner=Ops Team,build=a=b",
    "Subnets": "subnet-0123456789abcdef0,subnet-0123456789abcdef1",
    "VpcId": "vpc-0123456789abcdef0",
    "InstanceRoleName": "ci-agents",
}


def test_a_value_our_instances_would_refuse_stops_the_command_and_says_why(capsys, tmp_path):
    # The reference accepted a quote in the agent tags; our boot script refuses it, and so
    # does our template, so the command stops rather than write a stack that never boots.
    tags = {**TRICKY, "BuildkiteAgentTags": 'team=platform,quote="yes"'}
    code, out, err = run(capsys, parameter_file(tmp_path, tags), "--accept-changes")
    assert code == 1
    assert out == ""
    assert "BuildkiteAgentTags" in err
    assert "does not pass the template's parameter constraints" in err


def test_overrides_parse_back_with_sams_own_parser(capsys, tmp_path):
    code, out, err = run(capsys, parameter_file(tmp_path, TRICKY))
    assert code == 0, err
    parsed = CfnParameterOverridesType().convert((out.strip(),), None, None)
    for name, value in TRICKY.items():
        assert parsed[name] == value


def test_samconfig_section_parses_and_asks_for_named_iam_when_the_role_is_named(capsys, tmp_path):
    code, out, err = run(
        capsys, parameter_file(tmp_path, TRICKY), "--format", "samconfig", "--config-env", "prod"
    )
    assert code == 0, err
    section = tomllib.loads(out)["prod"]["deploy"]["parameters"]
    assert section["capabilities"].split() == [
        "CAPABILITY_IAM",
        "CAPABILITY_AUTO_EXPAND",
        "CAPABILITY_NAMED_IAM",
    ]
    parsed = CfnParameterOverridesType().convert((section["parameter_overrides"],), None, None)
    assert parsed["BuildkiteAgentTags"] == "team=platform,owner=Ops Team,build=a=b"


def test_json_is_a_cloudformation_parameter_file(capsys, tmp_path, root_template):
    code, out, err = run(capsys, parameter_file(tmp_path, TRICKY), "--format", "json")
    assert code == 0, err
    items = json.loads(out)
    assert all(set(item) == {"ParameterKey", "ParameterValue"} for item in items)
    parameters = {item["ParameterKey"]: item["ParameterValue"] for item in items}
    assert parameters == TRICKY
    assert constraint_violations(root_template, parameters) == []


# --- bad input and invalid results ----------------------------------------------------------
@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "is not JSON"),
        ('{"Stacks": []}', "describe one stack"),
        ('{"Something": 1}', "expected describe-stacks output"),
        ('[{"ParameterValue": "x"}]', "has no ParameterKey"),
        ('[{"ParameterKey": "MinSize", "UsePreviousValue": true}]', "give the value"),
    ],
)
def test_bad_input_fails_clearly(capsys, tmp_path, content, message):
    path = tmp_path / "input.json"
    path.write_text(content)
    code, out, err = run(capsys, path)
    assert code == 1
    assert out == ""
    assert message in err


def test_a_missing_file_fails_clearly(capsys, tmp_path):
    code, _, err = run(capsys, tmp_path / "nope.json")
    assert code == 1
    assert "cannot read" in err


def test_results_our_template_would_refuse_are_not_written(capsys, tmp_path):
    values = {"BuildkiteAgentTokenParameterStorePath": "/bk/t", "BuildkiteQueue": "my queue"}
    code, out, err = run(capsys, parameter_file(tmp_path, values))
    assert code == 1
    assert out == ""
    assert "invalid  BuildkiteQueue" in err


def test_a_stack_without_a_token_breaks_our_rules(capsys, tmp_path):
    code, _out, err = run(capsys, parameter_file(tmp_path, {"BuildkiteQueue": "builds"}))
    assert code == 1
    assert "Give exactly one of BuildkiteAgentToken" in err


# --- a deployed stack, read through boto3 (moto) --------------------------------------------
REFERENCE_LIKE_TEMPLATE = {
    "AWSTemplateFormatVersion": "2010-09-09",
    "Parameters": {
        "BuildkiteAgentToken": {"Type": "String", "Default": "", "NoEcho": True},
        "BuildkiteQueue": {"Type": "String", "Default": "default"},
        "MaxSize": {"Type": "Number", "Default": 10},
    },
    "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
}


@mock_aws
def test_stack_parameters_are_read_with_describe_stacks(capsys, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    boto3.client("cloudformation", region_name="eu-west-1").create_stack(
        StackName="ci-agents",
        TemplateBody=json.dumps(REFERENCE_LIKE_TEMPLATE),
        Parameters=[
            {"ParameterKey": "BuildkiteAgentToken", "ParameterValue": TOKEN},
            {"ParameterKey": "BuildkiteQueue", "ParameterValue": "builds"},
            {"ParameterKey": "MaxSize", "ParameterValue": "30"},
        ],
    )
    code, out, err = run(
        capsys, "--stack", "ci-agents", "--region", "eu-west-1", "--accept-changes"
    )
    assert code == 0, err
    assert 'BuildkiteQueue="builds"' in out
    assert 'MaxSize="30"' in out
    assert TOKEN not in out
    assert TOKEN not in err
    assert "/ci-agents/buildkite/agent-token" in report(err)["BuildkiteAgentToken"][1]


@mock_aws
def test_a_missing_stack_fails_clearly(capsys, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    code, _out, err = run(capsys, "--stack", "nope", "--region", "eu-west-1")
    assert code == 1
    assert "cannot describe stack nope" in err


# --- the README's table of deliberate differences ----------------------------------------------
README = ROOT / "README.md"


def readme_differences() -> dict[str, tuple[str, str]]:
    """parameter -> (reference default, ours) from the README's table of deliberate differences."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Moving from the Elastic CI Stack for AWS", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = (cells[1], cells[2])
    return rows


def test_every_default_that_differs_from_the_reference_is_in_the_readme_table(root_template):
    table = readme_differences()
    ours = {
        name: str(spec["Default"])
        for name, spec in root_template["Parameters"].items()
        if "Default" in spec
    }
    differing = set()
    for name, rule in RULES.items():
        if isinstance(rule, Keep):
            target = rule.target or name
            theirs = (rule.translate or str)(REFERENCE_DEFAULTS[name])
            if target in ours and not same_value(ours[target], theirs):
                differing.add(name)
        elif isinstance(rule, Drop) and rule.unset:
            differing.add(name)
    assert differing, "the comparison found nothing: it cannot be working"
    assert differing <= set(table), f"add to the README table: {sorted(differing - set(table))}"


def test_the_readme_table_states_the_reference_defaults(root_template):
    for name, (theirs, ours) in readme_differences().items():
        assert name in REFERENCE_DEFAULTS, name
        if theirs.startswith("`"):
            assert theirs.strip("`") == REFERENCE_DEFAULTS[name], name
        if ours.startswith("`"):
            assert same_value(ours.strip("`"), root_template["Parameters"][name]["Default"]), name


def test_the_report_names_only_differences_the_readme_lists(capsys, tmp_path):
    code, _, err = run(
        capsys, parameter_file(tmp_path, {"BuildkiteAgentTokenParameterStorePath": "/t"})
    )
    assert code == 0, err
    defaults = {name for name, (kind, _) in report(err).items() if kind == "default"}
    assert defaults
    assert defaults <= set(readme_differences())
