"""The acceptance run: the stack on a real account, real jobs through it, measured, cleaned up.

``python -m tools.acceptance --region R --buildkite-org ORG`` (see ``cli``). Modules: ``cli``
(options, tokens from the environment, exit status), ``run`` (the five steps and the
teardown), ``workload`` (the pipeline's jobs), ``measure`` (job and instance timings),
``report`` (report.md, report.json, verdicts, the simulator side by side), and the adapters
every outside call goes through: ``buildkite`` (REST API), ``aws`` (boto3), ``deploy``
(``sam``). ``emulated`` runs the same command against moto, the Buildkite emulator and a fake
fleet (the tests do).
"""
