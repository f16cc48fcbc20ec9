"""Upload a packaged root template and print its CloudFormation "Launch stack" URL.

`make package BUCKET=... REGION=...` runs `sam build` and `sam package` (the functions, the layer
and the nested templates go to the bucket, and build/packaged.yaml references them), then this
module puts build/packaged.yaml into the same bucket and prints a console link that opens
"Create stack" with that template: the deploy path that needs neither SAR nor the SAM CLI.

    python -m tools.publish.launch_stack --bucket B --region R [--template build/packaged.yaml]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import boto3

CONSOLE_HOSTS = {
    "aws": "console.aws.amazon.com",
    "aws-cn": "console.amazonaws.cn",
    "aws-us-gov": "console.amazonaws-us-gov.com",
}
DEFAULT_KEY = "buildkite-sam-fleet/packaged.yaml"
DEFAULT_STACK_NAME = "buildkite-agents"


def template_url(s3_client: Any, bucket: str, key: str) -> str:
    """The virtual-hosted HTTPS URL of an object, as CloudFormation's TemplateURL wants it."""
    host = urlsplit(s3_client.meta.endpoint_url).netloc
    return f"https://{bucket}.{host}/{quote(key)}"


def launch_stack_url(region: str, url: str, stack_name: str) -> str:
    """The console link that opens "Create stack" with the template at `url`."""
    partition = boto3.Session().get_partition_for_region(region)
    host = CONSOLE_HOSTS.get(partition, CONSOLE_HOSTS["aws"])
    return (
        f"https://{host}/cloudformation/home?region={region}#/stacks/create/review"
        f"?templateURL={quote(url, safe='')}&stackName={quote(stack_name, safe='')}"
    )


def upload_template(s3_client: Any, template: Path, bucket: str, key: str) -> str:
    """Put the packaged template into the bucket; return its template URL."""
    s3_client.put_object(
        Bucket=bucket, Key=key, Body=template.read_bytes(), ContentType="application/x-yaml"
    )
    return template_url(s3_client, bucket, key)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.publish.launch_stack", description=__doc__
    )
    parser.add_argument("--bucket", required=True, help="the bucket `sam package` uploaded to")
    parser.add_argument("--region", required=True, help="the bucket's region")
    parser.add_argument("--template", type=Path, default=Path("build/packaged.yaml"))
    parser.add_argument("--key", default=DEFAULT_KEY, help=f"object key (default: {DEFAULT_KEY})")
    parser.add_argument("--stack-name", default=DEFAULT_STACK_NAME)
    args = parser.parse_args(argv)
    if not args.template.is_file():
        print(f"error: {args.template} not found; run `make package` first", file=sys.stderr)
        return 2
    s3_client = boto3.client("s3", region_name=args.region)
    url = upload_template(s3_client, args.template, args.bucket, args.key)
    print(f"Template: {url}")
    print(f"Launch stack: {launch_stack_url(args.region, url, args.stack_name)}")
    print(
        "In the console, acknowledge that the stack creates IAM resources (CAPABILITY_IAM) and "
        "uses a transform and nested stacks (CAPABILITY_AUTO_EXPAND)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
