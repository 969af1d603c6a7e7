"""Alias for ``integrations/12345``: that folder name is not a Python identifier."""

import importlib

package = importlib.import_module("integrations.12345")
