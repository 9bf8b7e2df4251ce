"""Public API: select() and terms()."""
