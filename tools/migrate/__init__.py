"""Move from Buildkite's Elastic CI Stack for AWS: its stack parameters, converted to ours.

`python -m tools.migrate FILE` (or `--stack NAME [--region R]`) reads a reference stack's
parameters and prints the parameters of this application's root template, with a report on
stderr of every reference parameter that is not carried over unchanged.

- `reference`: the reference stack's 126 parameter names and their defaults;
- `rules`: what happens to each of them here;
- `convert`: applies the rules to one stack's values;
- `sources`: reads the values from a file or from CloudFormation;
- `formats`: writes the result for `sam deploy`, samconfig.toml or a CloudFormation file.
"""
