"""Connector to the 12345 government hotline (loaded by import path: see integrations.hotline12345)."""
