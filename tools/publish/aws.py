"""The two AWS calls the publisher makes itself (everything else is SAM CLI): who am I, and
share the published applications publicly. Clients are passed in, so tests use botocore's
Stubber and a dry run never creates one.
"""

from __future__ import annotations

from typing import Any

PUBLIC_DEPLOY_STATEMENT = {"Principals": ["*"], "Actions": ["Deploy"]}


def caller_account(sts_client: Any) -> str:
    """The account the credentials belong to (where `sam publish` creates the applications)."""
    return str(sts_client.get_caller_identity()["Account"])


def share_publicly(serverlessrepo_client: Any, application_ids: list[str]) -> None:
    """Let every AWS account deploy these applications (children first, then the root).

    SAR requires SemanticVersion and LicenseUrl for this; the root's nested applications must be
    public too, or nobody else can deploy the root.
    """
    for application_id in application_ids:
        serverlessrepo_client.put_application_policy(
            ApplicationId=application_id, Statements=[dict(PUBLIC_DEPLOY_STATEMENT)]
        )
