"""Parsing the agent API's queue-metrics body: strict on counts, lenient on extra fields."""

from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any

import pytest
from buildkite_api import MalformedResponseError, QueueMetrics
from buildkite_api.metrics import parse_poll_duration, parse_queue_metrics
from hypothesis import given
from hypothesis import strategies as st

DOCUMENTED_BODY: dict[str, Any] = {
    "agents": {"idle": 3, "busy": 2, "total": 5},
    "jobs": {"scheduled": 4, "running": 2, "waiting": 7, "total": 6},
    "organization": {"slug": "acme"},
    "cluster": {"name": "default"},
}
REQUIRED_COUNTS = [
    ("agents", "idle"),
    ("agents", "busy"),
    ("agents", "total"),
    ("jobs", "scheduled"),
    ("jobs", "running"),
    ("jobs", "waiting"),
]


def parse(document: Any, poll_duration: str | None = "10") -> QueueMetrics:
    return parse_queue_metrics(json.dumps(document), poll_duration=poll_duration, fetched_at=1.5)


def test_documented_body_gives_every_field() -> None:
    assert parse(DOCUMENTED_BODY) == QueueMetrics(
        scheduled_jobs=4,
        running_jobs=2,
        waiting_jobs=7,
        idle_agents=3,
        busy_agents=2,
        total_agents=5,
        organization_slug="acme",
        cluster_name="default",
        poll_interval_s=10.0,
        fetched_at=1.5,
    )


def test_metrics_are_frozen() -> None:
    metrics = parse(DOCUMENTED_BODY)
    with pytest.raises(dataclasses.FrozenInstanceError):
        metrics.scheduled_jobs = 0  # type: ignore[misc]


@pytest.mark.parametrize("cluster", [None, "absent"])
def test_missing_or_null_cluster_is_none(cluster: str | None) -> None:
    document = copy.deepcopy(DOCUMENTED_BODY)
    if cluster == "absent":
        del document["cluster"]
    else:
        document["cluster"] = None
    assert parse(document).cluster_name is None


def test_unknown_fields_at_every_level_are_ignored() -> None:
    document = copy.deepcopy(DOCUMENTED_BODY)
    document["pipelines"] = [1, 2]
    document["agents"]["queues"] = {"other": {"idle": "x"}}
    document["jobs"]["blocked"] = "many"
    document["organization"]["name"] = "Acme Inc"
    document["cluster"]["id"] = 42
    assert parse(document) == parse(DOCUMENTED_BODY)


@pytest.mark.parametrize(("section", "key"), REQUIRED_COUNTS)
def test_a_missing_count_is_malformed_never_zero(section: str, key: str) -> None:
    document = copy.deepcopy(DOCUMENTED_BODY)
    del document[section][key]
    with pytest.raises(MalformedResponseError, match=rf"'{section}\.{key}'") as raised:
        parse(document)
    assert raised.value.status == 200


@pytest.mark.parametrize(("section", "key"), REQUIRED_COUNTS)
@pytest.mark.parametrize("value", ["3", 3.0, True, False, None, [3], {"n": 3}])
def test_a_count_of_the_wrong_type_is_malformed(section: str, key: str, value: Any) -> None:
    document = copy.deepcopy(DOCUMENTED_BODY)
    document[section][key] = value
    with pytest.raises(MalformedResponseError, match=rf"'{section}\.{key}'"):
        parse(document)


@pytest.mark.parametrize(("section", "key"), REQUIRED_COUNTS)
def test_a_negative_count_is_malformed(section: str, key: str) -> None:
    document = copy.deepcopy(DOCUMENTED_BODY)
    document[section][key] = -1
    with pytest.raises(MalformedResponseError, match="negative"):
        parse(document)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<html>502 Bad Gateway</html>",
        b'{"agents": {"idle": 1',
        b"\xff\xfe not utf-8",
        b"[]",
        b"null",
        b'"text"',
        b"42",
    ],
)
def test_a_body_that_is_not_a_json_object_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedResponseError):
        parse_queue_metrics(body, poll_duration="10", fetched_at=0.0)


@pytest.mark.parametrize("section", ["agents", "jobs", "organization"])
@pytest.mark.parametrize("value", ["absent", None, [], "x", 1])
def test_a_missing_or_non_object_section_is_malformed(section: str, value: Any) -> None:
    document = copy.deepcopy(DOCUMENTED_BODY)
    if value == "absent":
        del document[section]
    else:
        document[section] = value
    with pytest.raises(MalformedResponseError, match=section):
        parse(document)


@pytest.mark.parametrize("slug", ["absent", None, 7, ["acme"]])
def test_organization_slug_is_required_text(slug: Any) -> None:
    document = copy.deepcopy(DOCUMENTED_BODY)
    if slug == "absent":
        del document["organization"]["slug"]
    else:
        document["organization"]["slug"] = slug
    with pytest.raises(MalformedResponseError, match=r"organization\.slug"):
        parse(document)


@pytest.mark.parametrize("cluster", ["default", 3, ["x"], {"name": 3}])
def test_a_cluster_of_the_wrong_shape_is_malformed(cluster: Any) -> None:
    document = copy.deepcopy(DOCUMENTED_BODY)
    document["cluster"] = cluster
    with pytest.raises(MalformedResponseError, match="cluster"):
        parse(document)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("10", 10.0),
        (" 30 ", 30.0),
        ("2.5", 2.5),
        (None, None),
        ("", None),
        ("abc", None),
        ("0", None),
        ("-5", None),
        ("nan", None),
        ("inf", None),
    ],
)
def test_poll_duration_header(header: str | None, expected: float | None) -> None:
    assert parse_poll_duration(header) == expected
    assert parse(DOCUMENTED_BODY, poll_duration=header).poll_interval_s == expected


counts = st.integers(min_value=0, max_value=2**40)
extras = st.dictionaries(
    st.text(min_size=1, max_size=8).filter(
        lambda key: key not in {"idle", "busy", "total", "scheduled", "running", "waiting"}
    ),
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    max_size=3,
)


@given(
    idle=counts,
    busy=counts,
    total=counts,
    scheduled=counts,
    running=counts,
    waiting=counts,
    slug=st.text(max_size=20),
    agents_extra=extras,
    jobs_extra=extras,
)
def test_any_valid_body_round_trips(
    idle: int,
    busy: int,
    total: int,
    scheduled: int,
    running: int,
    waiting: int,
    slug: str,
    agents_extra: dict[str, Any],
    jobs_extra: dict[str, Any],
) -> None:
    document = {
        "agents": {**agents_extra, "idle": idle, "busy": busy, "total": total},
        "jobs": {**jobs_extra, "scheduled": scheduled, "running": running, "waiting": waiting},
        "organization": {"slug": slug},
    }
    metrics = parse(document)
    assert (metrics.idle_agents, metrics.busy_agents, metrics.total_agents) == (idle, busy, total)
    assert (metrics.scheduled_jobs, metrics.running_jobs, metrics.waiting_jobs) == (
        scheduled,
        running,
        waiting,
    )
    assert metrics.organization_slug == slug


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["agents", "jobs", "organization", "cluster", "idle", "busy", "total"])
            | st.sampled_from(["scheduled", "running", "waiting", "slug", "name"])
            | st.text(max_size=4),
            children,
            max_size=6,
        )
    ),
    max_leaves=30,
)


@given(document=json_values)
def test_any_json_either_parses_to_valid_counts_or_is_malformed(document: Any) -> None:
    try:
        metrics = parse(document)
    except MalformedResponseError:
        return
    for field in (
        "scheduled_jobs",
        "running_jobs",
        "waiting_jobs",
        "idle_agents",
        "busy_agents",
        "total_agents",
    ):
        value = getattr(metrics, field)
        assert type(value) is int
        assert value >= 0
