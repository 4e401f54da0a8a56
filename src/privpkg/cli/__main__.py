"""``python -m privpkg.cli`` runs the CLI, as ``python -m privpkg`` does."""

from privpkg.cli import main

raise SystemExit(main())
