"""Configuration internals: files in three formats, connection parts, original layouts.

The public entry points are :mod:`serverless_sessions.settings` (``load_settings``) and
:mod:`serverless_sessions.config_files` (``read_config_files``, ``convert_to_new_format``);
:mod:`.compat` keeps the original module's deprecated ``ServerlessConfigManager``.
"""
