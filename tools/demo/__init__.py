"""The local demo: the fleet's control loop on an emulated account, in one command.

``python -m tools.demo`` (``make demo``) starts moto in server mode and the Buildkite agent API
emulator on 127.0.0.1, creates the project's own nested templates in moto's CloudFormation,
replays a short workload against the real ``agent_scaler`` handler over real HTTP, and prints a
live table, a summary and the path of a timeline PNG. No AWS account and no Docker needed.

Modules: ``endpoints`` (the two servers), ``stacks`` (the templates in moto, and the nearest
equivalents of what moto cannot create), ``workload`` (the jobs), ``fleet`` (instances that
boot, run agents, idle out and terminate themselves), ``replay`` (the virtual clock and the
scaler's schedule), ``report`` (table, summary, plot), ``cli`` (options and the run).
"""
