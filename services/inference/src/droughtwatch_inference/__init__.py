"""droughtwatch."""
