"""Test helpers privpkg ships, as ``keyring.testing`` does: used by ``privpkg demo``, the test
suite and the benchmarks, so there is one of each in the repository.

- :func:`make_wheel`: the one wheel maker (small valid wheels; ``payload_size`` for big ones);
- :func:`free_port`, :func:`start_server`, :func:`stop_process`: the one way to run a server
  process on a loopback port (a free port it is given, or one it picks and prints) and stop it
  by PID;
- :func:`write_config`, :func:`start_feed_server`: a PAT-protected PEP 503 feed on loopback
  (``python -m privpkg.testing.feedserver``) that answers 401 without the PAT.

Stdlib only (and nothing above privpkg's bottom layer); no pytest.
"""

from privpkg.testing.feedserver import Feed, RunningFeedServer, start_feed_server, write_config
from privpkg.testing.processes import free_port, port_accepts, start_server, stop_process
from privpkg.testing.wheels import make_wheel

__all__ = [
    "Feed",
    "RunningFeedServer",
    "free_port",
    "make_wheel",
    "port_accepts",
    "start_feed_server",
    "start_server",
    "stop_process",
    "write_config",
]
