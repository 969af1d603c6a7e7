"""AMI bridge: wire codec, normalized call events."""
