"""Detection: verdicts from model artifacts, alerts (EVE JSON), incidents, explanations.

``Detector`` scores flow records; ``DetectionEngine`` turns verdicts into stored alerts and incidents for a
file or a live stream. See ``docs/detection.md``.
"""

from iotguard.detect.detector import Detector, Verdicts
from iotguard.detect.engine import DetectionConfig, DetectionEngine, Event
from iotguard.detect.eve import EveWriter

__all__ = ["DetectionConfig", "DetectionEngine", "Detector", "Event", "EveWriter", "Verdicts"]
