"""``python -m privpkg`` runs the CLI."""

from privpkg.cli import main

raise SystemExit(main())
