"""Configuration: where sessions live and how, from arguments, the environment and config files.

* :mod:`.settings` — ``StorageSettings`` and ``load_settings`` (the public entry points; the
  precedence of the sources is in its docstring);
* :mod:`.files` — config files in three formats read into settings layers, and rewritten in the
  new one (``convert_to_new_format``); :mod:`.documents`, :mod:`.formats`, :mod:`.layers` do
  the reading and merging;
* :mod:`.urls` — connection parts (``provider``, ``host``, ...) to a storage URL, per the
  backend table (:mod:`serverless_sessions.backends`);
* :mod:`.legacy` — the original module's backend configs and ``legacy+...`` URLs;
* :mod:`.selection` — the settings a front end chooses (CLI global options, MCP configure);
* :mod:`.compat` — the original module's deprecated ``ServerlessConfigManager``.

Nothing here builds a storage except ``compat``'s legacy storages (through the backend table);
:mod:`serverless_sessions.factory` builds them from settings.
"""
