"""distpaint: blind inpainting of thin structures at scale."""
__version__ = "0.1.0"
