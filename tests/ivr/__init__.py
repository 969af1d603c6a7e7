"""IVR flows, engine and Asterisk configuration rendering."""
