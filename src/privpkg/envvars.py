"""The environment variables privpkg reads, named once for src, tests and benchmarks.

This module imports nothing: the keyring lookup reads it at every start. The pip shim package,
which ``setup pip --python`` copies into environments without privpkg, spells ``PRIVPKG_TTL``
and ``PRIVPKG_BROKER`` itself.
"""

#: Relocates the store, the key and the config (tests and CI use it).
HOME = "PRIVPKG_HOME"
#: Read-only connections as JSON.
CONNECTIONS = "PRIVPKG_CONNECTIONS"
#: Azure Artifacts' credential-provider variables, read-only connections.
AZURE_ENDPOINTS = ("ARTIFACTS_CREDENTIALPROVIDER_EXTERNAL_FEED_ENDPOINTS", "VSS_NUGET_EXTERNAL_FEED_ENDPOINTS")
#: The store's key (base64 or hex), instead of the key file.
MASTER_KEY = "PRIVPKG_MASTER_KEY"
#: Lifetime of a signed URL made by the pip shim, in seconds.
TTL = "PRIVPKG_TTL"
#: How long a writer waits for a lock, in seconds (30 by default).
LOCK_TIMEOUT = "PRIVPKG_LOCK_TIMEOUT"
#: Directories whose privpkg.toml is trusted although another user could change it.
TRUSTED_PROJECTS = "PRIVPKG_TRUSTED_PROJECTS"
#: Endpoints besides AWS's and Azure's own that may get ambient credentials (space-separated URLs).
TRUSTED_ENDPOINTS = "PRIVPKG_TRUSTED_ENDPOINTS"

#: Set by privpkg's conda plugin, never by users: the socket of the pip step's broker
#: (privpkg.conda.broker), which the pip shim and the keyring launcher ask.
BROKER = "PRIVPKG_BROKER"

#: Set by privpkg for a pip it runs (``pip lock``), never by users: the lookup log records it
#: with each lookup that pip and what it starts make, so privpkg names its own pip's lookup.
LOOKUP_TAG = "PRIVPKG_LOOKUP_TAG"

#: What a credential lookup's answer depends on besides the store file: the connection sources,
#: then what changes how the store decrypts.
LOOKUP_INPUTS = (CONNECTIONS, *AZURE_ENDPOINTS, MASTER_KEY)
#: Every variable that changes what privpkg reads or does: tests and benchmarks clear them all.
ALL = (HOME, CONNECTIONS, *AZURE_ENDPOINTS, MASTER_KEY, TTL, LOCK_TIMEOUT, TRUSTED_PROJECTS, TRUSTED_ENDPOINTS)
