"""What happens to each reference parameter here: one rule per name.

- `Keep`: the same setting here, under the same name or a new one (`target`), the value as is
  or translated (`translate`, with `why`).
- `Drop`: no such setting here; `why` says so and `instead` what replaces it. Values in
  `fine` (every value when it is None) need nothing from the user; any other value needs a
  decision (the command stops unless changes are accepted). `unset` is reported when the
  parameter was left at the reference default but our behaviour differs from that default's.
- `Special`: rules that look at more than one value (the token, SSH, signing keys...).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Note:
    """One line of the report."""

    kind: str  # renamed | translated | dropped | decide | default | unknown
    name: str
    text: str

    def line(self) -> str:
        return f"{self.kind:<10} {self.name}: {self.text}"


@dataclass
class Outcome:
    """What one rule contributes: our parameters and report lines."""

    parameters: dict[str, str] = field(default_factory=dict)
    notes: list[Note] = field(default_factory=list)


@dataclass(frozen=True)
class Context:
    """The whole reference stack's values (defaults filled in) and the user's options."""

    values: Mapping[str, str]
    given: frozenset[str]  # names whose value differs from the reference default
    our_defaults: Mapping[str, str]
    token_parameter: str
    ssh_ingress_cidr: str
    stack_name: str

    def is_set(self, name: str) -> bool:
        return name in self.given


@dataclass(frozen=True)
class Keep:
    target: str = ""
    translate: Callable[[str], str] | None = None
    why: str = ""


@dataclass(frozen=True)
class Drop:
    why: str
    instead: str = ""
    fine: tuple[str, ...] | None = ()
    unset: str = ""


@dataclass(frozen=True)
class Special:
    apply: Callable[[str, str, Context], Outcome]
    always: bool = False  # also applied when the parameter was not set


Rule = Keep | Drop | Special


# --- translations -----------------------------------------------------------------------------
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|m|s|ms)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def go_duration_seconds(text: str) -> float:
    """Seconds in a Go duration such as 10s, 1m30s or 500ms."""
    parts = _DURATION.findall(text)
    if not text or "".join(number + unit for number, unit in parts) != text:
        raise ValueError(f"{text!r} is not a duration such as 10s or 1m")
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)


def poll_interval(text: str) -> str:
    seconds = round(go_duration_seconds(text))
    return str(min(max(seconds, 1), 60))


def comma_list(text: str) -> str:
    """A comma-separated list without blanks or empty items."""
    return ",".join(item.strip() for item in text.split(",") if item.strip())


# --- special rules ----------------------------------------------------------------------------
def _token(name: str, value: str, context: Context) -> Outcome:
    if context.is_set("BuildkiteAgentTokenParameterStorePath"):
        return Outcome(
            notes=[
                Note(
                    "dropped",
                    name,
                    "not carried over: BuildkiteAgentTokenParameterStorePath is set, and the "
                    "agents read the token from there (as the reference stack did)",
                )
            ]
        )
    path = context.token_parameter
    kept_at = f"/{context.stack_name}/buildkite/agent-token" if context.stack_name else ""
    where = (
        f" (the reference stack keeps it, as a plain String, in {kept_at}, which is deleted "
        "with that stack)"
        if kept_at
        else ""
    )
    return Outcome(
        parameters={"BuildkiteAgentTokenParameterStorePath": path},
        notes=[
            Note(
                "decide",
                name,
                "a secret, never printed or carried over. Store the token in SSM before you "
                f"deploy{where}: aws ssm put-parameter --name {path} --type SecureString "
                '--value "$BUILDKITE_AGENT_TOKEN"; BuildkiteAgentTokenParameterStorePath='
                f"{path} is written instead (choose the path with --token-parameter)",
            )
        ],
    )


def _key_name(name: str, value: str, context: Context) -> Outcome:
    if context.ssh_ingress_cidr:
        return Outcome(
            parameters={name: value, "SshIngressCidr": context.ssh_ingress_cidr},
            notes=[
                Note(
                    "translated",
                    name,
                    f"SSH is opened to {context.ssh_ingress_cidr} (--ssh-ingress-cidr) only; "
                    "the reference stack opened port 22 to 0.0.0.0/0",
                )
            ],
        )
    return Outcome(
        notes=[
            Note(
                "decide",
                name,
                "dropped: the reference stack opened SSH to 0.0.0.0/0, this stack opens it only "
                "to SshIngressCidr. Rerun with --ssh-ingress-cidr CIDR to keep the key pair, or "
                "use Session Manager (aws ssm start-session), which needs no SSH",
            )
        ]
    )


def _key_spec(name: str, value: str, context: Context) -> Outcome:
    if context.is_set("PipelineSigningKMSKeyId"):
        return Outcome(
            notes=[
                Note(
                    "decide",
                    name,
                    f"dropped ({value}): PipelineSigningKMSKeyId is also set and this stack "
                    "takes one or the other; the given key is used",
                )
            ]
        )
    return Outcome(parameters={name: value})


def _max_size(name: str, value: str, context: Context) -> Outcome:
    if float(value) >= 1:
        return Outcome(parameters={name: value})
    return Outcome(
        parameters={name: "1"},
        notes=[
            Note(
                "decide",
                name,
                f"{value} -> 1: MaxSize is at least 1 here (an empty fleet is MinSize 0, which "
                "it reaches when idle); delete the stack to have no agents at all",
            )
        ],
    )


def _root_volume_type(name: str, value: str, context: Context) -> Outcome:
    if value in {"gp3", "gp2", "io1", "io2"}:
        return Outcome(parameters={name: value})
    return Outcome(
        notes=[
            Note(
                "decide",
                name,
                f"{value} -> gp3 (our default): the root volume is gp3, gp2, io1 or io2 here",
            )
        ]
    )


def _bootstrap_script(name: str, value: str, context: Context) -> Outcome:
    if value.startswith(("s3://", "https://", "file://")):
        return Outcome(parameters={name: value})
    return Outcome(
        notes=[
            Note(
                "decide",
                name,
                f"dropped ({value}): only s3://, https:// and file:// scripts run at boot "
                "(plain http can be tampered with on the way); host it on S3 or HTTPS",
            )
        ]
    )


def _env_file(name: str, value: str, context: Context) -> Outcome:
    if value.startswith(("s3://", "https://", "file://")) or re.fullmatch(r"ssm:/.+", value):
        return Outcome(parameters={name: value})
    return Outcome(
        notes=[
            Note(
                "decide",
                name,
                f"dropped ({value}): the agent environment comes from s3://, https://, "
                "file:// or ssm:/path here; host it there",
            )
        ]
    )


def _token_key(name: str, value: str, context: Context) -> Outcome:
    if value == "alias/aws/ssm":
        return Outcome(
            notes=[
                Note(
                    "translated",
                    name,
                    "alias/aws/ssm -> empty: the AWS managed key is what empty means here",
                )
            ]
        )
    return Outcome(parameters={name: value})


def _vpc_endpoints(name: str, value: str, context: Context) -> Outcome:
    return Outcome(
        parameters={name: value},
        notes=[
            Note(
                "translated",
                name,
                "true: the created VPC gets S3, SSM, ssmmessages and ec2messages endpoints; "
                "the reference's ECR, Secrets Manager and KMS endpoints are not created",
            )
        ],
    )


# --- the rules ---------------------------------------------------------------------------------
_AGENT_ENV = "set it in the agent's environment with AgentEnvFileUrl"
_ONLY_LINUX = "this stack runs Amazon Linux 2023 agents only"

RULES: dict[str, Rule] = {
    # Base
    "BuildkiteAgentToken": Special(_token),
    "BuildkiteAgentTokenParameterStorePath": Keep(),
    "BuildkiteAgentTokenParameterStoreKMSKey": Special(_token_key),
    "BuildkiteQueue": Keep(),
    "AgentEndpoint": Keep(),
    "BuildkiteAgentTags": Keep(),
    "BuildkiteTerminateInstanceAfterJob": Keep(),
    "BuildkiteAgentRelease": Keep(),
    # Agent
    "BuildkiteAgentTimestampLines": Keep(),
    "BuildkiteAgentExperiments": Keep(),
    "BuildkiteAgentTracingBackend": Keep(),
    "BuildkiteAgentCancelGracePeriod": Keep(),
    "BuildkiteAgentSignalGracePeriod": Keep(),
    "BuildkiteAgentDisconnectAfterUptime": Keep(),
    "BuildkiteAdditionalSudoPermissions": Keep(),
    "BuildkiteTerminateInstanceOnDiskFull": Keep(),
    "BuildkitePurgeBuildsOnDiskFull": Keep(),
    "BuildkiteAgentEnableGitMirrors": Keep(),
    "GitMirrorSeedBucket": Keep(),
    "BuildkiteAgentEnableGracefulShutdown": Drop(
        "replaced groups are always drained gracefully here (StopBuildkiteAgents), and the "
        "terminating lifecycle hook lets running jobs finish",
        fine=("true", "false"),
        unset="running agents always finish their jobs when a stack update replaces the group",
    ),
    "BuildkiteWindowsAdministrator": Drop(_ONLY_LINUX, fine=("true", "false")),
    # Signed pipelines
    "BuildkiteAgentSigningKeySSMParameter": Keep(),
    "BuildkiteAgentSigningKeyID": Keep(),
    "BuildkiteAgentVerificationKeySSMParameter": Keep(),
    "PipelineSigningKMSKeyId": Keep(),
    "PipelineSigningKMSKeySpec": Special(_key_spec),
    "PipelineSigningKMSAccess": Keep(),
    "PipelineSigningVerificationFailureBehavior": Keep(),
    # Scaling
    "BuildkiteAgentScalerServerlessARN": Drop(
        "deprecated and unused in the reference stack too; the scaler is part of this stack",
        fine=None,
    ),
    "ScalerEnableExperimentalElasticCIMode": Drop(
        "what that mode adds is how this stack always works: busy agents are never killed "
        "(terminating lifecycle hook, scale-in protection) and idle instances leave on their own",
        fine=("true", "false"),
    ),
    "DisableScaleIn": Keep(),
    "InstanceScaleInProtection": Keep(),
    "EnableScheduledScaling": Keep(),
    "ScheduleTimezone": Keep(),
    "ScaleUpSchedule": Keep(),
    "ScaleUpMinSize": Keep(),
    "ScaleDownSchedule": Keep(),
    "ScaleDownMinSize": Keep(),
    "ScaleOutCooldownPeriod": Keep(),
    "ScaleInCooldownPeriod": Keep(),
    "MaxSize": Special(_max_size),
    "MinSize": Keep(),
    "InstanceBuffer": Keep(),
    "ScalerEventSchedulePeriod": Drop(
        "the scaler runs every minute and evaluates every PollInterval seconds within it",
        instead="PollInterval",
        fine=None,
    ),
    "ScalerEventScheduleJitter": Drop(
        "each stack's scaler reads only its own queue's metrics; there is nothing to stagger",
        fine=None,
    ),
    "ScalerMinPollInterval": Keep(
        target="PollInterval",
        translate=poll_interval,
        why="seconds between evaluations within the scaler's minute (1 to 60)",
    ),
    "OnDemandBaseCapacity": Keep(),
    "OnDemandPercentage": Keep(),
    "SpotAllocationStrategy": Keep(),
    "ScaleOutFactor": Keep(),
    "ScaleInIdlePeriod": Keep(),
    "ScaleOutForWaitingJobs": Keep(),
    "LambdaArchitecture": Drop(
        "the stack's functions always run on arm64 (Graviton), the cheaper architecture",
        fine=("x86_64", "arm64"),
        unset="the functions run on arm64 (the reference's default was x86_64)",
    ),
    "ScalerManagedPolicyARNs": Drop(
        "the scaler's role grants exactly the calls it makes and takes no extra policies",
        instead="attach policies to the function's role after deploying if you must",
    ),
    # Logs
    "EnableEC2LogRetentionPolicy": Keep(),
    "EC2LogRetentionDays": Keep(),
    "LogRetentionDays": Keep(),
    # Instances
    "ExperimentalEnableResourceLimits": Drop(
        "the agents run without a systemd resource slice here",
        instead="size instances per job (AgentsPerInstance) instead",
        fine=("false",),
    ),
    **{
        name: Drop(
            "resource limits are not applied here (see ExperimentalEnableResourceLimits)",
            fine=None,
        )
        for name in (
            "ResourceLimitsMemoryHigh",
            "ResourceLimitsMemoryMax",
            "ResourceLimitsMemorySwapMax",
            "ResourceLimitsCPUWeight",
            "ResourceLimitsCPUQuota",
            "ResourceLimitsIOWeight",
        )
    },
    "AgentsPerInstance": Keep(),
    "SecretsBucket": Keep(),
    "SecretsBucketRegion": Keep(),
    "SecretsBucketEncryption": Drop(
        "a bucket this stack creates always enforces encryption at rest and TLS",
        fine=("true", "false"),
        unset="the created secrets bucket enforces encryption at rest and TLS",
    ),
    "SecretsPluginSkipSSHKeyNotFoundWarning": Drop(
        "the secrets plugin keeps its warning about a missing SSH key",
        instead=f"BUILDKITE_PLUGIN_S3_SECRETS_SKIP_SSH_KEY_NOT_FOUND_WARNING=true; {_AGENT_ENV}",
        fine=None,
    ),
    "ArtifactsBucket": Keep(),
    "ArtifactsBucketRegion": Keep(),
    "ArtifactsS3ACL": Keep(),
    "BootstrapScriptUrl": Special(_bootstrap_script),
    "AgentEnvFileUrl": Special(_env_file),
    "AuthorizedUsersUrl": Drop(
        "no periodic authorized_keys download (and no SSH opened for it)",
        instead="Session Manager (aws ssm start-session), or KeyName with SshIngressCidr",
    ),
    "InstanceTypes": Keep(translate=comma_list, why="blanks and empty items removed"),
    "CpuCredits": Keep(),
    "NestedVirtualizationEnabled": Drop(
        "nested virtualization is not turned on here", fine=("false",)
    ),
    "InstanceCreationTimeout": Keep(
        translate=lambda value: value or "PT5M",
        why="the reference's empty default meant PT5M on Linux",
    ),
    "RootVolumeSize": Keep(),
    "RootVolumeName": Keep(
        translate=lambda value: value or "/dev/xvda",
        why="the reference's empty default meant the Amazon Linux root device, /dev/xvda",
    ),
    "RootVolumeType": Special(_root_volume_type),
    "RootVolumeThroughput": Keep(),
    "RootVolumeIops": Keep(),
    "RootVolumeEncrypted": Drop(
        "root volumes are always encrypted here",
        fine=("true", "false"),
        unset="root volumes are encrypted (the reference's default left them unencrypted)",
    ),
    "RootVolumeDeleteOnTermination": Drop(
        "root volumes are always deleted with their instance here (kept volumes of a "
        "self-terminating fleet pile up cost)",
        fine=("true",),
    ),
    "ImageId": Keep(),
    "ImageIdParameter": Keep(),
    "ManagedPolicyARNs": Keep(),
    "IMDSv2Tokens": Keep(),
    "InstanceRoleName": Keep(),
    "InstanceRolePermissionsBoundaryARN": Keep(),
    "InstanceRoleTags": Keep(),
    "InstanceRoleARN": Keep(),
    "InstanceOperatingSystem": Drop(_ONLY_LINUX, fine=("linux",)),
    "LinuxDistribution": Drop(
        f"{_ONLY_LINUX} (the project's own image)", fine=("amazonlinux2023",)
    ),
    "ECRAccessPolicy": Keep(),
    "EnableDetailedMonitoring": Keep(),
    "InstanceName": Keep(),
    "EnableInstanceStorage": Keep(),
    "MountTmpfsAtTmp": Keep(),
    # Network
    "VpcId": Keep(),
    "Subnets": Keep(translate=comma_list, why="blanks and empty items removed"),
    "AvailabilityZones": Keep(translate=comma_list, why="blanks and empty items removed"),
    "SecurityGroupIds": Keep(translate=comma_list, why="blanks and empty items removed"),
    "AssociatePublicIpAddress": Keep(),
    "EnableVpcEndpoints": Special(_vpc_endpoints),
    "KeyName": Special(_key_name),
    # Docker
    "DockerNetworkingProtocol": Keep(),
    "DockerIPv4AddressPool1": Keep(),
    "DockerIPv4AddressPool2": Keep(),
    "DockerIPv6AddressPool": Keep(),
    "DockerFixedCidrV4": Keep(),
    "DockerFixedCidrV6": Keep(),
    "EnableDockerUserNamespaceRemap": Keep(),
    "EnableDockerExperimental": Drop(
        "the Docker daemon's experimental features stay off (buildx and compose are installed)",
        fine=("false",),
    ),
    "DockerPruneUntil": Keep(),
    "EnablePreExitDiskCleanup": Keep(),
    "DockerBuilderPruneEnabled": Keep(),
    # Plugins
    "EnableSecretsPlugin": Keep(),
    "EnableECRPlugin": Keep(),
    "EnableECRCredentialHelper": Keep(),
    "EnableDockerLoginPlugin": Keep(),
    # Cost tags
    "EnableCostAllocationTags": Keep(),
    "CostAllocationTagName": Keep(),
    "CostAllocationTagValue": Keep(),
}

# Why our default differs where it does (the README's table says the same).
DEFAULT_REASONS: dict[str, str] = {
    "IMDSv2Tokens": "instance metadata without session tokens is open to SSRF; containers "
    "still reach it (hop limit 2)",
    "ScaleOutCooldownPeriod": "instances still booting count as capacity on the way, so "
    "repeated evaluations do not over-provision; a cooldown only delays jobs",
    "LogRetentionDays": "one day of scaler logs is too little to explain yesterday's scaling",
    "EnableEC2LogRetentionPolicy": "the instance log groups are created with a retention, so "
    "their cost is bounded instead of growing forever",
    "EC2LogRetentionDays": "a month of instance logs covers a release cycle's investigations",
    "InstanceCreationTimeout": "leaves room for slow instance types and bootstrap scripts "
    "before stack creation gives up",
}
