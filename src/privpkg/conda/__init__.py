"""privpkg inside conda: the conda plugin and what its hooks do.

``plugin.py`` is the only module here that imports conda: it declares the hooks (entry point
group ``conda``) and imports their implementation inside each hook body. The other modules take
and return plain values and never import conda, so the test run without conda covers them:

- ``pipstep``: the environment conda's pip step runs in (keyring provider, no prompt, privpkg's
  ``keyring`` launcher first on PATH), and the wrapper around conda's pip subprocess that puts
  the pip shim into the new environment when its pip section needs it and explains a failure;
- ``health``: privpkg's checks in ``conda doctor``;
- ``envs``: which conda environments carry the pip shim (``privpkg doctor`` lists them);
- ``channelauth``: the header a private channel's request gets (the CondaChannel connection that
  answers its URL) and the one line naming the connection to fix on a 401 or 403;
- ``condarc``: ``privpkg setup conda``, its ``--undo`` and keeping condarc's ``channel_settings``
  entries in step with the CondaChannel connections;
- ``doctor``: ``privpkg doctor``'s conda section (the plugin in the conda that would run,
  condarc's routing, which connection answers a channel URL).
"""
