"""moto in server mode that checks IAM: principals with the template's policies, and the switch.

moto authenticates and authorizes requests once its "initial no-auth action count" is used up
(INITIAL_NO_AUTH_ACTION_COUNT; the server's /moto-api/reset-auth sets it). Its authorization
checks only the Action element (see `tools.testing.iam.widened_for_moto`), so the principals
created here get the widened copy of each policy; resources and conditions are checked by the
IAM contract test.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from tools.testing.iam import widened_for_moto

ADMINISTRATOR = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}


def principal_with(iam: Any, name: str, documents: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """An IAM user holding `documents` (widened for moto); its credentials as environment."""
    iam.create_user(UserName=name)
    for index, document in enumerate(documents):
        iam.put_user_policy(
            UserName=name,
            PolicyName=f"{name}-{index}",
            PolicyDocument=json.dumps(widened_for_moto(document)),
        )
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {
        "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
    }


def administrator(iam: Any, name: str = "test-administrator") -> dict[str, str]:
    """A user allowed everything: the test's own arranging and inspecting."""
    return principal_with(iam, name, [ADMINISTRATOR])


@contextmanager
def enforcing_iam(endpoint: str) -> Iterator[None]:
    """Inside the block the moto server at `endpoint` authorizes every request.

    moto's authorizer logs each request body at DEBUG (a PutParameter's value included), so its
    logger stays at INFO meanwhile: the server runs in the test's process, under its log capture.
    """
    authorizer_log = logging.getLogger("moto.iam.access_control")
    level = authorizer_log.level
    authorizer_log.setLevel(logging.INFO)
    _reset_auth(endpoint, "0")
    try:
        yield
    finally:
        _reset_auth(endpoint, "inf")
        authorizer_log.setLevel(level)


def _reset_auth(endpoint: str, count: str) -> None:
    # Not form-encoded (urllib's default for a body), or the server reads no body at all.
    request = urllib.request.Request(  # noqa: S310 (the loopback moto server)
        f"{endpoint}/moto-api/reset-auth",
        data=count.encode(),
        headers={"Content-Type": "text/plain"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10):  # noqa: S310
        pass
