"""Custom resource that drains a replaced Auto Scaling group of its Buildkite agents.

When a stack update replaces the fleet's group, the old group's capacity is pinned to
zero and its agents are told to stop gracefully: each finishes its running job, and its
instance then terminates itself.
"""
