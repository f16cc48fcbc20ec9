"""A stand-in for CloudFormation when testing a custom resource's Lambda function in-process.

CloudFormation gives a custom resource a pre-signed S3 URL (the event's ResponseURL) and waits
for one PUT of a JSON body to it. crhelper always answers with `http.client.HTTPSConnection`, so
the stand-in is an HTTPS server on 127.0.0.1 with a throwaway self-signed certificate, which the
test trusts by pointing SSL_CERT_FILE at it (read by OpenSSL's default verify paths; the
functions have no test seam for it). The server records every PUT.

Used through the fixtures in tests/unit/conftest.py (`certificate`, `endpoint`, `mocked_aws`);
the helpers here are imported by the test modules:

- `ResponseEndpoint` / `CapturedResponse`: what the server recorded.
- `assert_cloudformation_response`: the body is one CloudFormation accepts for this request.
- `FakeLambdaContext`: a Lambda context, named after the function under test.
- `load_event` / `invoke_handler`: run a handler on a stored event and get its answer.
"""

from __future__ import annotations

import copy
import datetime
import ipaddress
import json
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
EVENTS = Path(__file__).resolve().parents[2] / "events"
RESPONSE_FIELDS = frozenset(
    {"Status", "Reason", "PhysicalResourceId", "StackId", "RequestId", "LogicalResourceId"}
)
MAX_RESPONSE_BYTES = 4096


# --- the response URL -------------------------------------------------------------------------
@dataclass(frozen=True)
class CapturedResponse:
    """One PUT to the response URL."""

    raw: bytes
    content_type: str | None
    seconds_after_start: float

    @property
    def body(self) -> dict[str, Any]:
        return json.loads(self.raw)


@dataclass
class ResponseEndpoint:
    """HTTPS server on 127.0.0.1 that records every PUT to it, in arrival order.

    `started` is when the current invocation began (reset it before invoking);
    `CapturedResponse.seconds_after_start` is measured from it.
    """

    url: str
    cert_file: Path
    responses: list[CapturedResponse] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A one-hour certificate and key for 127.0.0.1, written to `directory`; returns both paths.

    It is its own CA (so it can be the whole of SSL_CERT_FILE) and carries the key identifiers
    and server-auth usage that strict verification asks for.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    public_key = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "endpoint.pem", directory / "endpoint.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@contextmanager
def serve_responses(cert_file: Path, key_file: Path) -> Iterator[ResponseEndpoint]:
    """Runs the response URL on a free port for the duration of the `with` block.

    The caller makes clients trust `cert_file` (SSL_CERT_FILE); the server is stopped on exit.
    """
    endpoint = ResponseEndpoint(url="", cert_file=cert_file)

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            endpoint.responses.append(
                CapturedResponse(
                    raw, self.headers.get("Content-Type"), time.monotonic() - endpoint.started
                )
            )
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert_file, key_file)
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    endpoint.url = f"https://127.0.0.1:{server.server_address[1]}/cfn-response?X-Amz-Signature=x"
    try:
        yield endpoint
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def assert_cloudformation_response(
    response: CapturedResponse, event: dict[str, Any], status: str
) -> None:
    """The PUT body is one CloudFormation accepts, answering this very request."""
    body = response.body
    assert set(body) >= RESPONSE_FIELDS, f"missing fields: {RESPONSE_FIELDS - set(body)}"
    assert body["Status"] == status, body.get("Reason")
    assert body["StackId"] == event["StackId"]
    assert body["RequestId"] == event["RequestId"]
    assert body["LogicalResourceId"] == event["LogicalResourceId"]
    assert isinstance(body["PhysicalResourceId"], str)
    assert 1 <= len(body["PhysicalResourceId"]) <= 1024
    assert isinstance(body["Reason"], str)
    if status == "FAILED":
        assert body["Reason"], "a FAILED response must say why"
    assert len(response.raw) <= MAX_RESPONSE_BYTES, (
        "CloudFormation rejects response bodies over 4 KiB"
    )
    # The pre-signed URL is signed for an empty content type.
    assert not response.content_type


# --- the Lambda side --------------------------------------------------------------------------
@dataclass(frozen=True)
class FakeLambdaContext:
    """The parts of a Lambda context that crhelper and Powertools read.

    `dataclasses.replace(context, remaining_ms=...)` gives one that is about to time out.
    """

    function_name: str
    aws_request_id: str = "00000000-0000-4000-8000-000000000000"
    remaining_ms: int = 60_000
    memory_limit_in_mb: int = 128
    region: str = REGION
    account: str = ACCOUNT

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account}:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def load_event(name: str, endpoint: ResponseEndpoint) -> dict[str, Any]:
    """The stored event events/<name>, answering to `endpoint`."""
    event = json.loads((EVENTS / name).read_text())
    event["ResponseURL"] = endpoint.url
    return event


def invoke_handler(
    handler: ModuleType,
    event: dict[str, Any],
    endpoint: ResponseEndpoint,
    context: FakeLambdaContext,
) -> CapturedResponse:
    """Runs `handler.lambda_handler` on a copy of `event`; returns the first answer it sent."""
    endpoint.started = time.monotonic()
    handler.lambda_handler(copy.deepcopy(event), context)
    assert endpoint.responses, "the function did not answer CloudFormation"
    return endpoint.responses[0]
