"""privpkg inside conda (placeholder on branch i9-channels; helper A's ``__init__`` replaces it)."""
