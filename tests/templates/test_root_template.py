"""The root template: SAM transform, the reference stack's parameters, and its rules."""

import pytest

from tools.cfn_template import rule_violations

TOKEN = {"BuildkiteAgentToken": "not-a-real-token"}
REFERENCE_PARAMETERS = {
    # name: default, as the reference stack users migrate from has it
    "BuildkiteQueue": "default",
    "AgentEndpoint": "https://agent-edge.buildkite.com/v3",
    "InstanceTypes": "t3.large",
    "AgentsPerInstance": 1,
    "RootVolumeSize": 250,
    "MinSize": 0,
    "MaxSize": 10,
    "InstanceBuffer": 0,
    "ScaleOutFactor": 1.0,
    "ScaleInCooldownPeriod": 3600,
    "ScaleInIdlePeriod": 600,
    "DisableScaleIn": "true",
    "InstanceScaleInProtection": "true",
    "ScaleOutForWaitingJobs": "false",
    "OnDemandBaseCapacity": 0,
    "OnDemandPercentage": 100,
    "SpotAllocationStrategy": "capacity-optimized",
    "EnableScheduledScaling": "false",
    "ScheduleTimezone": "UTC",
    "ScaleUpSchedule": "0 8 * * MON-FRI",
    "ScaleUpMinSize": 1,
    "ScaleDownSchedule": "0 18 * * MON-FRI",
    "ScaleDownMinSize": 0,
    "EnableSecretsPlugin": "true",
    "EnableECRPlugin": "true",
    "EnableDockerLoginPlugin": "true",
    "PipelineSigningKMSAccess": "sign-and-verify",
    "EnableCostAllocationTags": "false",
}


def test_is_a_sam_template(root_template):
    assert root_template["Transform"] == "AWS::Serverless-2016-10-31"


@pytest.mark.parametrize(("name", "default"), sorted(REFERENCE_PARAMETERS.items()))
def test_reference_parameters_keep_their_defaults(root_template, name, default):
    # CloudFormation hands every value over as a string: "1" for a String with a whole-number
    # pattern is the same default as 1 for a Number.
    assert str(root_template["Parameters"][name]["Default"]) == str(default)


def test_token_is_never_echoed(root_template):
    assert root_template["Parameters"]["BuildkiteAgentToken"]["NoEcho"] is True


def test_imdsv2_is_required_by_default(root_template):
    assert root_template["Parameters"]["IMDSv2Tokens"]["Default"] == "required"


def test_min_size_limit_is_documented(root_template):
    assert "MaxSize" in root_template["Parameters"]["MinSize"]["Description"]


@pytest.mark.parametrize(
    ("parameters", "broken"),
    [
        (
            {},
            ["Give exactly one of BuildkiteAgentToken and BuildkiteAgentTokenParameterStorePath."],
        ),
        (
            {**TOKEN, "BuildkiteAgentTokenParameterStorePath": "/bk/token"},
            ["Give exactly one of BuildkiteAgentToken and BuildkiteAgentTokenParameterStorePath."],
        ),
        (TOKEN, []),
        ({"BuildkiteAgentTokenParameterStorePath": "/bk/token"}, []),
        ({**TOKEN, "PipelineSigningKMSKeyId": "key-1"}, []),
        ({**TOKEN, "PipelineSigningKMSKeySpec": "ECC_NIST_P256"}, []),
        ({**TOKEN, "KeyName": "ops", "SshIngressCidr": "192.0.2.0/24"}, []),
        ({**TOKEN, "VpcId": "vpc-1", "Subnets": "subnet-1"}, []),
    ],
)
def test_rules(root_template, parameters, broken):
    assert rule_violations(root_template, parameters) == broken


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        (
            {"PipelineSigningKMSKeyId": "key-1", "PipelineSigningKMSKeySpec": "ECC_NIST_P256"},
            "not both",
        ),
        ({"KeyName": "ops"}, "SshIngressCidr must be given"),
        ({"VpcId": "vpc-1"}, "Subnets must be given"),
    ],
)
def test_rules_refuse_contradictions(root_template, parameters, message):
    (broken,) = rule_violations(root_template, {**TOKEN, **parameters})
    assert message in broken


def test_stack_version_matches_the_published_version(root_template):
    published = root_template["Metadata"]["AWS::ServerlessRepo::Application"]["SemanticVersion"]
    assert root_template["Mappings"]["Application"]["Version"]["Semantic"] == published


def functions_of(template):
    return {
        name: resource
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


def test_every_function_has_its_own_least_privilege_role(root_template):
    """No SAM-generated role: that would attach AWSLambdaBasicExecutionRole (logs on *)."""
    functions = functions_of(root_template)
    assert len(functions) == 5
    for name, function in functions.items():
        properties = function["Properties"]
        assert "Policies" not in properties, name
        role_name = properties["Role"]["Fn::GetAtt"][0]
        role = root_template["Resources"][role_name]
        assert role["Type"] == "AWS::IAM::Role"
        assert role.get("Condition") == function.get("Condition"), name
        assert "ManagedPolicyArns" not in role["Properties"], name
        (policy,) = role["Properties"]["Policies"]
        statements = policy["PolicyDocument"]["Statement"]
        logs = next(s for s in statements if s.get("Sid") == "WriteItsOwnLogs")
        log_group = properties["LoggingConfig"]["LogGroup"]["Ref"]
        assert logs["Resource"] == {"Fn::GetAtt": [log_group, "Arn"]}, name
        for statement in statements:
            if isinstance(statement, dict) and statement.get("Resource") == "*":
                actions = statement["Action"]
                actions = [actions] if isinstance(actions, str) else actions
                assert all(
                    action.startswith("xray:") or action.split(":")[1].startswith("Describe")
                    for action in actions
                ), f"{name}: {actions} on *"


def test_no_function_reserves_concurrency(root_template):
    """Any reservation fails the deploy where the account's limit is low (new accounts: 10)."""
    for name, function in functions_of(root_template).items():
        assert "ReservedConcurrentExecutions" not in function["Properties"], name


def test_the_push_trigger_is_bounded_by_its_event_source(root_template):
    events = root_template["Resources"]["AgentScalerPushFunction"]["Properties"]["Events"]
    assert events["JobScheduled"]["Properties"]["ScalingConfig"] == {"MaximumConcurrency": 2}


def test_the_scheduled_scaler_holds_a_lease_in_the_stacks_own_table(root_template):
    resources = root_template["Resources"]
    scaler = resources["AgentScalerFunction"]["Properties"]
    assert scaler["Environment"]["Variables"]["SCALER_LEASE_TABLE"] == {"Ref": "ScalerLeaseTable"}
    table = resources["ScalerLeaseTable"]["Properties"]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["KeySchema"] == [{"AttributeName": "lease", "KeyType": "HASH"}]
    (policy,) = resources["AgentScalerRole"]["Properties"]["Policies"]
    (lease,) = [
        s for s in policy["PolicyDocument"]["Statement"] if "dynamodb" in str(s.get("Action"))
    ]
    assert lease["Resource"] == {"Fn::GetAtt": ["ScalerLeaseTable", "Arn"]}
    assert set(lease["Action"]) == {"dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:DeleteItem"}
    push = resources["AgentScalerPushFunction"]["Properties"]["Environment"]["Variables"]
    assert "SCALER_LEASE_TABLE" not in push  # it only scales out; overlapping it is safe
