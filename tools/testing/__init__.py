"""Test support shared by the project's test suites: plain helpers, no pytest fixtures.

- `cloudformation`: a stand-in for a custom resource's response URL, the checks on what a
  function sends to it, a fake Lambda context.
- `autoscaling`: Auto Scaling groups in moto for the resources that name one.
- `faults`: AWS calls that fail or hang, injected into a boto3 client.

The fixtures that wrap them are in the conftest.py of the suite that uses them
(tests/unit/conftest.py).
"""
