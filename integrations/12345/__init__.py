"""Connector to the 12345 government hotline (imported via integrations.hotline12345)."""
