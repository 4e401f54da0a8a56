"""Issue 10: this module is being written (see privpkg.environments)."""
