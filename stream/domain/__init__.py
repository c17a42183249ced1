"""contact-stream."""
