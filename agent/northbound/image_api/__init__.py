"""`POST /image` (the seed's GANonymizer API): a still image in, the same image anonymized out."""

from .app import PROVIDER, SERVICE, create_image_app

__all__ = ["PROVIDER", "SERVICE", "create_image_app"]
