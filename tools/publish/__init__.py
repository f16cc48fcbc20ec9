"""Publish the application to the Serverless Application Repository (SAR).

`python -m tools.publish --region R --version V [--dry-run] [--bucket B]` publishes each nested
application, then the root whose nested Locations reference them by ApplicationId.
`python -m tools.publish.launch_stack` uploads a packaged root template (`make package`) and
prints a CloudFormation "Launch stack" URL: the deploy path that needs no SAR.
"""
