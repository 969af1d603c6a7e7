"""FastAGI: where Asterisk hands calls to the platform (IVR steps, routing)."""
