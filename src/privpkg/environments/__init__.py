"""Environments (issue 10): named, versioned, locked specs in a workspace, built locally with a
lock-keyed cache, and Docker images with no secret in any layer.

Modules (imports point down; pyproject's import-linter contract checks it):

- :mod:`.api`: ``privpkg.Environment``, azureml's names over the modules below;
- :mod:`.build` (a local venv or conda prefix from a lock, cached) and :mod:`.docker` (a
  Dockerfile and build context; :mod:`.dockerlint` checks one);
- :mod:`.fetch` (private artifacts fetched and hash-checked into a wheelhouse) and
  :mod:`.locking` (locks made with pip, uv or py-rattler);
- :mod:`.registry` (versions and labels in the workspace's storage), :mod:`.condalock`
  (CEP 23 explicit lists), :mod:`.cache` (the build cache's keys and pointers);
- :mod:`.pylock` (PEP 751 ``pylock.toml``: read, write, select for an interpreter) and
  :mod:`.sources` (a spec from a conda file, a requirements file, an existing env);
- :mod:`.spec` (the spec and its canonical definition), :mod:`.screen` (what a definition or a
  lock may never hold).
"""
