"""The template renderer that the template tests rely on evaluates conditions correctly."""

import pytest

from tools.cfn_template import TemplateError, load_template, render, rule_violations

TEMPLATE = """
Parameters:
  VpcId: {Type: String, Default: ""}
  Mode: {Type: String, Default: a, AllowedValues: [a, b]}
  Zones: {Type: CommaDelimitedList, Default: "x,y"}
  Required: {Type: String}
Mappings:
  Sizes: {a: {size: small}, b: {size: large}}
Conditions:
  CreateVpc: !Equals [!Ref VpcId, ""]
  UseB: !Equals [!Ref Mode, b]
  Both: !And [!Condition CreateVpc, !Condition UseB]
  Either: !Or [!Condition CreateVpc, !Condition UseB]
  NotB: !Not [!Condition UseB]
  FirstZoneIsY: !Equals [!Select [0, !Ref Zones], y]
  JoinedIsXY: !Equals [!Join ["-", !Ref Zones], x-y]
  SubMatches: !Equals [!Sub "${Mode}-${AWS::Region}", a-us-east-1]
  SplitMatches: !Equals [!Select [1, !Split [",", "p,q"]], q]
  LargeFromMap: !Equals [!FindInMap [Sizes, !Ref Mode, size], large]
Resources:
  Vpc:
    Type: AWS::EC2::VPC
    Condition: CreateVpc
    Properties:
      CidrBlock: 10.0.0.0/16
      Tags: [!If [UseB, {Key: b, Value: "1"}, !Ref AWS::NoValue], {Key: k, Value: v}]
  Always:
    Type: AWS::SNS::Topic
    Properties:
      TopicName: !If [UseB, !Ref AWS::NoValue, plain]
      DisplayName: !Sub "${AWS::StackName}-${Required}"
Outputs:
  VpcId:
    Condition: CreateVpc
    Value: !Ref Vpc
"""


@pytest.fixture
def template(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text(TEMPLATE)
    return load_template(path)


def test_defaults_and_short_form_tags(template):
    rendered = render(template, {"Required": "r"})
    assert rendered.conditions == {
        "CreateVpc": True,
        "UseB": False,
        "Both": False,
        "Either": True,
        "NotB": True,
        "FirstZoneIsY": False,
        "JoinedIsXY": True,
        "SubMatches": True,
        "SplitMatches": True,
        "LargeFromMap": False,
    }
    assert set(rendered.resources) == {"Vpc", "Always"}
    assert rendered.resources["Vpc"]["Properties"]["Tags"] == [{"Key": "k", "Value": "v"}]
    assert rendered.resources["Always"]["Properties"]["TopicName"] == "plain"
    assert rendered.outputs["VpcId"]["Value"] == {"Ref": "Vpc"}
    assert rendered.evaluate(rendered.resources["Always"]["Properties"]["DisplayName"]) == (
        "test-stack-r"
    )


def test_given_values_switch_conditions(template):
    rendered = render(template, {"Required": "r", "VpcId": "vpc-1", "Mode": "b", "Zones": "y,z"})
    assert rendered.conditions["CreateVpc"] is False
    assert rendered.conditions["Both"] is False
    assert rendered.conditions["Either"] is True
    assert rendered.conditions["FirstZoneIsY"] is True
    assert rendered.conditions["LargeFromMap"] is True
    assert set(rendered.resources) == {"Always"}
    assert "TopicName" not in rendered.resources["Always"]["Properties"]
    assert rendered.outputs == {}


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({}, "Required has no default"),
        ({"Required": "r", "Nope": "1"}, "unknown parameters: Nope"),
        ({"Required": "r", "Mode": "c"}, "not in AllowedValues"),
    ],
)
def test_bad_parameter_values_are_rejected(template, given, message):
    with pytest.raises(TemplateError, match=message):
        render(template, given)


def test_values_that_need_a_deployment_are_reported(template):
    rendered = render(template, {"Required": "r"})
    with pytest.raises(TemplateError, match="Ref Vpc"):
        rendered.evaluate(rendered.outputs["VpcId"]["Value"])


def test_not_a_template_is_rejected(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("a: 1\n")
    with pytest.raises(TemplateError, match="no Resources"):
        load_template(path)


RULES = """
Parameters:
  Token: {Type: String, Default: ""}
  Path: {Type: String, Default: ""}
  Subnets: {Type: CommaDelimitedList, Default: ""}
  VpcId: {Type: String, Default: ""}
Rules:
  ExactlyOne:
    Assertions:
      - Assert: !Or
          - !And [!Equals [!Ref Token, ""], !Not [!Equals [!Ref Path, ""]]]
          - !And [!Not [!Equals [!Ref Token, ""]], !Equals [!Ref Path, ""]]
        AssertDescription: one of token and path
  SubnetsWithVpc:
    RuleCondition: !Not [!Equals [!Ref VpcId, ""]]
    Assertions:
      - Assert: !Not [!EachMemberEquals [!Ref Subnets, ""]]
        AssertDescription: subnets with vpc
      - Assert: !Not [!Contains [!Ref Subnets, bad]]
        AssertDescription: no bad subnet
Resources:
  T: {Type: AWS::SNS::Topic}
"""


@pytest.mark.parametrize(
    ("given", "broken"),
    [
        ({}, ["one of token and path"]),
        ({"Token": "t", "Path": "/p"}, ["one of token and path"]),
        ({"Token": "t"}, []),
        ({"Path": "/p", "VpcId": "vpc-1"}, ["subnets with vpc"]),
        ({"Path": "/p", "VpcId": "vpc-1", "Subnets": "a,bad"}, ["no bad subnet"]),
        ({"Path": "/p", "VpcId": "vpc-1", "Subnets": "a,b"}, []),
    ],
)
def test_rule_violations(tmp_path, given, broken):
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    assert rule_violations(load_template(path), given) == broken
