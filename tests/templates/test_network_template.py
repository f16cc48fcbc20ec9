"""The network stack creates the right resources for a new VPC and for a user's existing VPC."""

import pytest

from tools.cfn_template import render, rule_violations

NEW_VPC_CORE = {
    "Vpc",
    "InternetGateway",
    "GatewayAttachment",
    "Subnet0",
    "Subnet1",
    "RouteTable",
    "DefaultRoute",
    "Subnet0RouteTableAssociation",
    "Subnet1RouteTableAssociation",
    "AgentSecurityGroup",
}
ENDPOINTS = {
    "EndpointSecurityGroup",
    "S3GatewayEndpoint",
    "SsmEndpoint",
    "SsmMessagesEndpoint",
    "Ec2MessagesEndpoint",
}


def test_new_vpc_by_default(network_template):
    rendered = render(network_template)
    assert set(rendered.resources) == NEW_VPC_CORE
    vpc = rendered.resources["Vpc"]["Properties"]
    assert vpc["CidrBlock"] == "10.0.0.0/16"
    assert vpc["EnableDnsSupport"] is True
    assert vpc["EnableDnsHostnames"] is True
    subnets = [rendered.resources[f"Subnet{i}"]["Properties"] for i in (0, 1)]
    assert [s["CidrBlock"] for s in subnets] == ["10.0.1.0/24", "10.0.2.0/24"]
    assert [s["AvailabilityZone"] for s in subnets] == [
        {"Fn::Select": [0, {"Fn::GetAZs": ""}]},
        {"Fn::Select": [1, {"Fn::GetAZs": ""}]},
    ]
    route = rendered.resources["DefaultRoute"]["Properties"]
    assert route["DestinationCidrBlock"] == "0.0.0.0/0"
    assert route["GatewayId"] == {"Ref": "InternetGateway"}
    associations = {
        rendered.resources[name]["Properties"]["SubnetId"]["Ref"]
        for name in ("Subnet0RouteTableAssociation", "Subnet1RouteTableAssociation")
    }
    assert associations == {"Subnet0", "Subnet1"}


def test_agent_security_group_has_all_egress_and_no_ingress_without_a_key(network_template):
    group = render(network_template).resources["AgentSecurityGroup"]["Properties"]
    assert "SecurityGroupIngress" not in group
    assert group["SecurityGroupEgress"] == [
        {
            "Description": group["SecurityGroupEgress"][0]["Description"],
            "IpProtocol": "-1",
            "CidrIp": "0.0.0.0/0",
        }
    ]
    assert group["VpcId"] == {"Ref": "Vpc"}


def test_ssh_is_opened_only_from_the_stated_cidr(network_template):
    rendered = render(network_template, {"KeyName": "ops", "SshIngressCidr": "192.0.2.0/24"})
    ingress = rendered.resources["AgentSecurityGroup"]["Properties"]["SecurityGroupIngress"]
    assert len(ingress) == 1
    rule = ingress[0]
    assert (rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) == ("tcp", 22, 22)
    assert rendered.evaluate(rule["CidrIp"]) == "192.0.2.0/24"


def test_ssh_without_a_cidr_is_refused(network_template):
    assert rule_violations(network_template, {"KeyName": "ops"}) == [
        "SshIngressCidr must be given when KeyName is set."
    ]
    assert network_template["Parameters"]["SshIngressCidr"]["Default"] == ""


def test_given_availability_zones_are_used(network_template):
    rendered = render(network_template, {"AvailabilityZones": "eu-west-1b,eu-west-1c"})
    zones = [
        rendered.evaluate(rendered.resources[f"Subnet{i}"]["Properties"]["AvailabilityZone"])
        for i in (0, 1)
    ]
    assert zones == ["eu-west-1b", "eu-west-1c"]


def test_vpc_endpoints_when_enabled(network_template):
    rendered = render(network_template, {"EnableVpcEndpoints": "true"})
    assert set(rendered.resources) == NEW_VPC_CORE | ENDPOINTS
    s3 = rendered.resources["S3GatewayEndpoint"]["Properties"]
    assert s3["VpcEndpointType"] == "Gateway"
    assert rendered.evaluate(s3["ServiceName"]) == "com.amazonaws.us-east-1.s3"
    assert s3["RouteTableIds"] == [{"Ref": "RouteTable"}]
    services = set()
    for name in ("SsmEndpoint", "SsmMessagesEndpoint", "Ec2MessagesEndpoint"):
        endpoint = rendered.resources[name]["Properties"]
        assert endpoint["VpcEndpointType"] == "Interface"
        assert endpoint["PrivateDnsEnabled"] is True
        assert endpoint["SecurityGroupIds"] == [{"Ref": "EndpointSecurityGroup"}]
        assert endpoint["SubnetIds"] == [{"Ref": "Subnet0"}, {"Ref": "Subnet1"}]
        services.add(rendered.evaluate(endpoint["ServiceName"]).rsplit(".", 1)[1])
    assert services == {"ssm", "ssmmessages", "ec2messages"}
    ingress = rendered.resources["EndpointSecurityGroup"]["Properties"]["SecurityGroupIngress"]
    assert [(r["FromPort"], r["ToPort"], r["CidrIp"]) for r in ingress] == [
        (443, 443, {"Fn::GetAtt": ["Vpc", "CidrBlock"]})
    ]


EXISTING = {"ExistingVpcId": "vpc-0abc", "ExistingSubnets": "subnet-1,subnet-2"}


def test_existing_vpc_creates_only_a_security_group(network_template):
    rendered = render(network_template, {**EXISTING, "EnableVpcEndpoints": "true"})
    assert set(rendered.resources) == {"AgentSecurityGroup"}
    group = rendered.resources["AgentSecurityGroup"]["Properties"]
    assert rendered.evaluate(group["VpcId"]) == "vpc-0abc"
    assert rendered.evaluate(rendered.outputs["VpcId"]["Value"]) == "vpc-0abc"
    assert rendered.evaluate(rendered.outputs["Subnets"]["Value"]) == "subnet-1,subnet-2"
    assert rendered.outputs["SecurityGroupId"]["Value"] == {"Ref": "AgentSecurityGroup"}


def test_existing_vpc_and_security_groups_pass_through(network_template):
    rendered = render(network_template, {**EXISTING, "ExistingSecurityGroupIds": "sg-1,sg-2"})
    assert set(rendered.resources) == {"NothingToCreate"}
    assert rendered.evaluate(rendered.outputs["SecurityGroupId"]["Value"]) == "sg-1,sg-2"
    assert rendered.evaluate(rendered.outputs["Subnets"]["Value"]) == "subnet-1,subnet-2"


def test_existing_vpc_needs_subnets(network_template):
    assert rule_violations(network_template, {"ExistingVpcId": "vpc-0abc"}) == [
        "ExistingSubnets must be given when ExistingVpcId is given."
    ]
    assert rule_violations(network_template, EXISTING) == []


@pytest.mark.parametrize("parameters", [{}, EXISTING])
def test_outputs_are_always_present(network_template, parameters):
    assert set(render(network_template, parameters).outputs) == {
        "VpcId",
        "Subnets",
        "SecurityGroupId",
    }
