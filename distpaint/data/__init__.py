"""Mask data: the Zarr mask store, synthetic thin structures, gap generators, patch sampling."""
