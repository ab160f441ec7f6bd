"""Deployment targets (device bundles): see DESIGN.md."""
