"""Adapters: every SDK and file-system detail behind the controller's ports."""
