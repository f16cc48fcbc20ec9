"""Session-wide test set-up: the recording of the functions' AWS calls for the IAM contract.

Every boto3 call the function packages make while the tests run is recorded
(tools/testing/aws_calls.py), and the IAM contract (tests/templates/test_iam_contract.py) runs
after every other test of the session, so it checks the whole recording.
"""

from __future__ import annotations

import pytest

from tools.testing.aws_calls import AwsCallRecorder

RECORDER = pytest.StashKey[AwsCallRecorder]()
CONTRACT_MODULE = "test_iam_contract.py"


def pytest_configure(config: pytest.Config) -> None:
    recorder = AwsCallRecorder()
    recorder.start()
    config.stash[RECORDER] = recorder


def pytest_unconfigure(config: pytest.Config) -> None:
    recorder = config.stash.get(RECORDER, None)
    if recorder is not None:
        recorder.stop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The contract's tests last, after every test whose calls they check."""
    items.sort(key=lambda item: item.path.name == CONTRACT_MODULE)


@pytest.fixture(scope="session")
def recorded_aws_calls(pytestconfig: pytest.Config) -> AwsCallRecorder:
    """Every AWS call the function packages made so far in this session."""
    return pytestconfig.stash[RECORDER]
