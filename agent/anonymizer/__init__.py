"""The on-device anonymizer: people and vehicles removed from camera frames before anything leaves.

detect (SSD, int8 TFLite) → mask (dilated boxes, held over frames) → inpaint (learned, Telea, solid fill).
Models load only through the signed manifest; without a verified detector no frame goes out (fail-closed).
Layering: imports the core and security, never a driver, a northbound or the web; the app wires a camera's
frames to a `FrameAnonymizer`, and the `/image` API (agent.northbound.image_api) calls an `Anonymizer`.
"""

from .config import AnonymizerSection, ImageApiSection, load_section
from .detector import Detection
from .models import AnonymizerUnavailable
from .pipeline import AnonymizedFrame, Anonymizer, AnonymizerFactory, build_anonymizer
from .record import FORMAT, FrameRecord, frame_stream, parse_record
from .service import FrameAnonymizer

SECTION = "anonymizer"

__all__ = [
    "FORMAT",
    "SECTION",
    "AnonymizedFrame",
    "Anonymizer",
    "AnonymizerFactory",
    "AnonymizerSection",
    "AnonymizerUnavailable",
    "Detection",
    "FrameAnonymizer",
    "FrameRecord",
    "ImageApiSection",
    "build_anonymizer",
    "frame_stream",
    "load_section",
    "parse_record",
]
