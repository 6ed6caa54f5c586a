"""Tiny fake plugins for the plugin-manager and hook tests, loaded via ``[plugins] modules``."""
