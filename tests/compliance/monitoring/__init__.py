"""Transaction monitoring tests."""
