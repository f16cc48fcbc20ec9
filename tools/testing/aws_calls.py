"""Records every AWS call the Lambda functions' code makes while the tests run.

The IAM contract (tests/templates/test_iam_contract.py) checks each function's role against the
calls its code really makes, so the list of calls comes from here, not from a hand-written list.

`AwsCallRecorder` wraps botocore's `BaseClient._make_api_call`, the one method every boto3
client call goes through (Powertools' SSM provider and paginators included). A call is kept
when a frame of one of the function packages is on the caller's stack; it is attributed to the
innermost such package, and to the handler it ran under: the outermost frame in that package's
`handler` module (e.g. `agent_scaler.handler.push_handler`), which is what a function's
`Handler` setting names. Calls the tests make to arrange or inspect AWS have no function frame
and are not kept.

Only identifying parameters are kept: values that may carry a secret (an SSM parameter's
`Value`) are dropped at record time, and the recording stays in memory.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from types import FrameType
from typing import Any

from botocore.client import BaseClient

FUNCTION_PACKAGES = (
    "agent_scaler",
    "agent_token",
    "az_rebalancing_suspender",
    "stop_buildkite_agents",
)
_SECRET_PARAMETERS = frozenset({"Value"})


@dataclass(frozen=True)
class AwsCall:
    """One API call a function package made."""

    package: str
    entry_point: str | None  # "<package>.handler.<function>", None outside any handler
    service: str  # the IAM service prefix (botocore's signing name), e.g. "autoscaling"
    operation: str  # e.g. "SetDesiredCapacity"
    parameters: dict[str, Any]
    test: str  # the test that was running (PYTEST_CURRENT_TEST), or "" outside pytest

    @property
    def action(self) -> str:
        return f"{self.service}:{self.operation}"


class AwsCallRecorder:
    """Collects `AwsCall`s between `start()` and `stop()` (process-wide, thread-safe)."""

    def __init__(self, packages: Iterable[str] = FUNCTION_PACKAGES) -> None:
        self.packages = frozenset(packages)
        self.calls: list[AwsCall] = []
        self._lock = threading.Lock()
        self._original: Any = None

    def start(self) -> None:
        if self._original is not None:
            return
        original = BaseClient._make_api_call
        recorder = self

        def recording(client: BaseClient, operation_name: str, api_params: dict[str, Any]) -> Any:
            recorder._record(client, operation_name, api_params, sys._getframe(1))
            return original(client, operation_name, api_params)

        self._original = original
        BaseClient._make_api_call = recording  # type: ignore[method-assign]

    def stop(self) -> None:
        if self._original is not None:
            BaseClient._make_api_call = self._original  # type: ignore[method-assign]
            self._original = None

    def by_package(self, package: str) -> list[AwsCall]:
        return [call for call in self.calls if call.package == package]

    def _record(
        self, client: BaseClient, operation: str, params: dict[str, Any], frame: FrameType
    ) -> None:
        package, entry_point = self._origin(frame)
        if package is None:
            return
        call = AwsCall(
            package=package,
            entry_point=entry_point,
            service=client.meta.service_model.signing_name,
            operation=operation,
            parameters={k: v for k, v in params.items() if k not in _SECRET_PARAMETERS},
            test=os.environ.get("PYTEST_CURRENT_TEST", ""),
        )
        with self._lock:
            self.calls.append(call)

    def _origin(self, frame: FrameType | None) -> tuple[str | None, str | None]:
        package: str | None = None
        entry_point: str | None = None
        while frame is not None:
            module = str(frame.f_globals.get("__name__", ""))
            top = module.partition(".")[0]
            if top in self.packages:
                package = package or top
                if top == package and module == f"{package}.handler":
                    entry_point = f"{module}.{frame.f_code.co_name}"  # outermost one wins
            frame = frame.f_back
        return package, entry_point
