"""The test suite's library: fixtures and helpers, loaded as pytest plugins by tests/conftest.py.

- ``env``: the clean subprocess environment, running programs, secret-leak checks, missing tools;
- ``builds``: the privpkg wheel and venvs, built once per run for all xdist workers;
- ``feeds``: the PAT-protected feed fixture and the in-thread fake-server helper;
- ``storage``: Azurite and moto's S3 server;
- ``channelserver``: the loopback conda channel that demands a PAT (Basic, Bearer or token);
- ``cli``: the privpkg CLI runner and the one rule for "one clear error line".
- ``netproxy`` (helpers, no fixtures): the loopback forward proxy, private CA and https feed of
  tests/test_network.py.

The benchmarks (bench/_common.py) import ``env``, ``builds`` and ``storage`` too, outside pytest
(the ``bench`` extra installs pytest, which these modules import).
"""
