"""Device telemetry over MQTT: per-device behavioural baselines learned online, anomalies raised as alerts.

>>> detector = TelemetryDetector(config.telemetry, config.devices)
>>> for alert in detector.process(TelemetryMessage(topic, payload, timestamp)): ...

:class:`MqttSubscriber` feeds a bounded queue of :class:`TelemetryMessage` from a real broker;
:class:`MqttTap` reads them off captured packets instead.
"""

from iotguard.telemetry.detector import KINDS, TelemetryDetector, TelemetryMessage
from iotguard.telemetry.mqtt import MqttSubscriber
from iotguard.telemetry.tap import MqttTap

__all__ = ["KINDS", "MqttSubscriber", "MqttTap", "TelemetryDetector", "TelemetryMessage"]
