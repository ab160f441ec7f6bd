"""Deployment targets (mobile bundles, Lite architectures): see the open issues."""
