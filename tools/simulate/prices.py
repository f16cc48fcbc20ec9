"""Every price the simulator charges, in one place: change them here to price another setup.

All prices are published list prices for US East (N. Virginia), us-east-1, in US dollars,
read on 2026-12-02 (the date the sources below were consulted):

- EC2 compute: ``t3.large`` (the stack's default ``InstanceTypes``) Linux on-demand
  $0.0832 per instance-hour. Source: Amazon EC2 On-Demand Pricing,
  https://aws.amazon.com/ec2/pricing/on-demand/ (cross-checked against a public table
  quoting "$0.0832 hourly" for t3.large, https://gist.github.com/danjellesma/5cd0d048e97666c7a017a1bae927dd56).
  EC2 bills per second while an instance runs (pending to shutting down), nothing while it
  is stopped.
- EBS: gp3 storage $0.08 per GB-month; a volume is billed while it exists, whether its
  instance runs, is stopped (a warm pool's ``Stopped`` or ``Hibernated`` instances) or is
  shutting down. The stack's root volume is 250 GiB gp3 at the baseline 3000 IOPS and
  125 MB/s, which gp3 includes at no extra charge (``RootVolumeSize``/``RootVolumeType``/
  ``RootVolumeIops`` defaults in nested/fleet.yaml). Source: Amazon EBS pricing,
  https://aws.amazon.com/ebs/pricing/. A month is 730 hours, the convention the AWS pricing
  pages and the AWS Pricing Calculator use for per-month prices.
- Lambda: duration $0.0000166667 per GB-second on x86_64 and $0.0000133334 per GB-second
  on arm64; requests $0.20 per million. Source: AWS Lambda pricing,
  https://aws.amazon.com/lambda/pricing/ (tier 1 rates; cross-checked against the rate table
  of a public tool, https://app.unpkg.com/artillery@2.0.28/files/lib/platform/aws-lambda/prices.js,
  and a transcription of the page read 2026-09-20). The free tier is ignored: it is shared
  with everything else in the account. The reference scaler's function is x86_64 (its
  template.yaml in buildkite/buildkite-agent-scaler: ``Architectures: [x86_64]``,
  ``MemorySize: 128``); the project's functions are arm64 (``Globals.Function.Architectures``
  in template.yaml).

Hibernation stores the instance's RAM on its root volume, which must be large enough; the
250 GiB default is, so a hibernated warm instance costs the same EBS as a stopped one.
"""

from __future__ import annotations

from dataclasses import dataclass

HOURS_PER_MONTH = 730.0
SECONDS_PER_HOUR = 3600.0
GB_SECOND_X86_64_USD = 0.0000166667
GB_SECOND_ARM64_USD = 0.0000133334
REQUEST_USD = 0.20 / 1_000_000
DEFAULT_INSTANCE_TYPE = "t3.large"
ON_DEMAND_HOURLY_USD = {DEFAULT_INSTANCE_TYPE: 0.0832}
GP3_GB_MONTH_USD = 0.08
ROOT_VOLUME_GB = 250.0
REFERENCE_LAMBDA_ARCHITECTURE = "x86_64"
PROJECT_LAMBDA_ARCHITECTURE = "arm64"
GB_SECOND_USD = {"x86_64": GB_SECOND_X86_64_USD, "arm64": GB_SECOND_ARM64_USD}
SOURCES = (
    ("EC2 on-demand t3.large us-east-1", "$0.0832 per hour", "https://aws.amazon.com/ec2/pricing/on-demand/"),
    ("EBS gp3 storage us-east-1", "$0.08 per GB-month", "https://aws.amazon.com/ebs/pricing/"),
    ("Lambda duration x86_64", "$0.0000166667 per GB-s", "https://aws.amazon.com/lambda/pricing/"),
    ("Lambda duration arm64", "$0.0000133334 per GB-s", "https://aws.amazon.com/lambda/pricing/"),
    ("Lambda requests", "$0.20 per million", "https://aws.amazon.com/lambda/pricing/"),
)  # fmt: skip
PRICES_READ_ON = "2026-12-02"


@dataclass(frozen=True, slots=True)
class Prices:
    """The prices of one simulated setup (defaults: the stack's, see the module docstring)."""

    instance_hourly_usd: float = ON_DEMAND_HOURLY_USD[DEFAULT_INSTANCE_TYPE]
    ebs_gb_month_usd: float = GP3_GB_MONTH_USD
    root_volume_gb: float = ROOT_VOLUME_GB
    lambda_gb_second_usd: float = GB_SECOND_ARM64_USD
    lambda_request_usd: float = REQUEST_USD

    def compute_usd(self, running_seconds: float) -> float:
        """On-demand compute of ``running_seconds`` instance-seconds."""
        return running_seconds / SECONDS_PER_HOUR * self.instance_hourly_usd

    def ebs_usd(self, volume_seconds: float) -> float:
        """Root-volume storage of ``volume_seconds`` volume-seconds."""
        per_second = self.ebs_gb_month_usd * self.root_volume_gb / (HOURS_PER_MONTH * 3600.0)
        return volume_seconds * per_second

    def lambda_usd(self, gb_seconds: float, requests: int) -> float:
        """Lambda duration and request charges."""
        return gb_seconds * self.lambda_gb_second_usd + requests * self.lambda_request_usd


def for_architecture(architecture: str) -> Prices:
    """The default prices with the Lambda duration rate of ``architecture``."""
    return Prices(lambda_gb_second_usd=GB_SECOND_USD[architecture])


@dataclass(frozen=True, slots=True)
class CostUsd:
    """Dollars for a whole run: compute, EBS, Lambda and their total."""

    compute: float
    ebs: float
    lambda_: float

    @property
    def total(self) -> float:
        return self.compute + self.ebs + self.lambda_

    @property
    def ebs_share(self) -> float:
        """EBS as a fraction of the total (0 for a free run)."""
        return self.ebs / self.total if self.total > 0 else 0.0

    def as_json(self) -> dict[str, float]:
        return {
            "total": round(self.total, 6),
            "compute": round(self.compute, 6),
            "ebs": round(self.ebs, 6),
            "lambda": round(self.lambda_, 6),
        }
