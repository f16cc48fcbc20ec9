"""Fixtures for the custom-resource tests: CloudFormation's response URL, moto, the handler.

The helpers they wrap, and those the tests call directly (`assert_cloudformation_response`,
`FakeLambdaContext`, `invoke_handler`, ...), are in the `tools.testing` package.

- `endpoint`: a fresh HTTPS response URL on 127.0.0.1 for each test, trusted via SSL_CERT_FILE.
- `mocked_aws`: fake credentials and region in the environment, AWS served by moto in-process.
- `handler`: the handler module named by the `handler_module` fixture, which a test module that
  uses `handler` defines (e.g. `return "agent_token.handler"`); imported under `mocked_aws`.
- `autoscaling`: an Auto Scaling client on moto.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tools.testing.cloudformation import (
    REGION,
    ResponseEndpoint,
    self_signed_certificate,
    serve_responses,
)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The response URL's certificate and key files (one pair per test module)."""
    return self_signed_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def endpoint(
    certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> Iterator[ResponseEndpoint]:
    """CloudFormation's pre-signed response URL, recording every PUT made during the test."""
    cert_file, key_file = certificate
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
    with serve_responses(cert_file, key_file) as served:
        yield served


@pytest.fixture
def mocked_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Test credentials and region, no SAM-local switch, and moto answering every AWS call."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_SAM_LOCAL", raising=False)
    with mock_aws():
        yield


@pytest.fixture
def handler(handler_module: str, mocked_aws: None) -> ModuleType:
    """The function's handler module, imported once moto and the AWS settings exist.

    crhelper creates its boto3 clients at import, as it does in Lambda.
    """
    return importlib.import_module(handler_module)


@pytest.fixture
def autoscaling(mocked_aws: None) -> Any:
    """An Auto Scaling client on moto, for arranging and inspecting groups."""
    return boto3.client("autoscaling", region_name=REGION)
