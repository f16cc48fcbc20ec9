"""tools.publish.launch_stack: upload the packaged root template and link to "Create stack"."""

from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlsplit

import boto3
import pytest
from moto import mock_aws

from tools.publish.launch_stack import launch_stack_url, main, template_url

REGION = "eu-west-1"
BUCKET = "artifact-bucket"


@pytest.fixture
def s3(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        yield client


def test_main_uploads_the_template_and_prints_a_launch_stack_link(s3, tmp_path, capsys):
    packaged = tmp_path / "packaged.yaml"
    packaged.write_text("AWSTemplateFormatVersion: '2010-09-09'\nResources: {}\n")
    argv = ["--bucket", BUCKET, "--region", REGION, "--template", str(packaged)]
    assert main([*argv, "--key", "releases/1.0.0/packaged.yaml", "--stack-name", "ci agents"]) == 0
    stored = s3.get_object(Bucket=BUCKET, Key="releases/1.0.0/packaged.yaml")["Body"].read()
    assert stored == packaged.read_bytes()
    out = capsys.readouterr().out
    link = next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("Launch"))
    parts = urlsplit(link)
    assert parts.netloc == "console.aws.amazon.com"
    assert parse_qs(parts.query) == {"region": [REGION]}
    route, query = parts.fragment.split("?", 1)
    assert route == "/stacks/create/review"
    fields = {key: unquote(value) for key, value in (p.split("=", 1) for p in query.split("&"))}
    assert fields == {
        "templateURL": f"https://{BUCKET}.s3.{REGION}.amazonaws.com/releases/1.0.0/packaged.yaml",
        "stackName": "ci agents",
    }


def test_a_missing_template_is_reported(tmp_path, capsys):
    argv = ["--bucket", BUCKET, "--region", REGION, "--template", str(tmp_path / "none.yaml")]
    assert main(argv) == 2
    assert "run `make package` first" in capsys.readouterr().err


def test_console_host_follows_the_partition():
    url = launch_stack_url("cn-north-1", "https://b.s3.cn-north-1.amazonaws.com.cn/t.yaml", "s")
    assert url.startswith("https://console.amazonaws.cn/cloudformation/home?region=cn-north-1#")


def test_template_url_is_virtual_hosted_on_the_regional_endpoint():
    client = boto3.client("s3", region_name="us-west-2")
    assert template_url(client, BUCKET, "a b.yaml") == (
        f"https://{BUCKET}.s3.us-west-2.amazonaws.com/a%20b.yaml"
    )
