"""Shared helpers: errors, registry, progress, seeding, devices."""
