"""Compatibility shims for library builds that differ between GPU images and CPU machines."""
