"""Botnet is an external-only family: a C&C server is the attacker's machine on the internet, so a Botnet verdict
for a flow whose server is in the site's networks is re-labelled Anomaly and needs Anomaly's evidence.

Real packets, a stand-in model that calls every flow a botnet channel (only the model is faked): what raises
then depends on where each flow's server is.

* MQTTset's benign capture: ten sensors (192.168.0.x) on long connections to their broker (10.16.100.73). Each
  connection outlives the flow timeout, so each sensor shows two flows of a "channel": Botnet's own rule. With
  the broker inside the site nothing raises; with only the sensors' network configured as the site, the broker
  is a remote server and every sensor is a bot again (the rule reads the configuration, not the capture).
* The lab's showcase: Mirai bots keep a C&C channel to a server on the internet (and report to another, and
  download from a third); the site's own devices talk to their broker, gateway, cameras. Every bot is still
  named by a Botnet incident against its C&C, and no Botnet incident names only servers inside the site.
"""

from __future__ import annotations

import ipaddress

import numpy as np
import pytest

from iotguard.core.config import SITE_NETWORKS, Config
from iotguard.core.episodes import read_episodes
from iotguard.detect.detector import Calibration, Component, Detector
from iotguard.detect.engine import DetectionConfig, DetectionEngine, detection_config
from iotguard.flows import iter_flows


class _Flags:
    """A stand-in classifier artifact flagging every flow as ``family`` with certainty."""

    kind = "classifier"
    features = ["dst_port"]
    benign_index = 0

    def __init__(self, family: str) -> None:
        self.name = f"always-{family}"
        self.classes = ["Benign", family]

    def predict_array(self, x):
        class P:
            pass

        p = P()
        p.proba = np.tile([1e-9, 1 - 1e-9], (len(x), 1)).astype(np.float32)
        p.score = p.proba[:, 1]
        p.classes = self.classes
        return p


@pytest.fixture(scope="module")
def showcase(tmp_path_factory):
    """A short lab ``showcase`` capture (every attack the lab knows, Mirai's C&C among them) and its episodes."""
    from iotguard.lab import generate

    return generate("showcase", 120, None, 5, tmp_path_factory.mktemp("showcase"), flows=False)


def _run(capture, config: DetectionConfig | None = None) -> tuple[DetectionEngine, list]:
    comp = Component("classifier", _Flags("Botnet"), 0.0, Calibration("logistic", np.zeros(0), np.zeros(0)))
    engine = DetectionEngine(Detector(comp, None), config=config)
    events = []
    for batch in iter_flows(capture, early=10):
        events += engine.process(batch)
    engine.close()
    return engine, events


def _inside(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    nets = [ipaddress.ip_network(n) for n in SITE_NETWORKS]
    return any(ip.version == net.version and ip in net for net in nets)


def test_sensors_on_long_connections_to_their_broker_are_no_botnet(data_file):
    engine, events = _run(data_file("pcaps/mqttset_reduced/benign.pcap"))
    assert engine.stats.flagged == engine.stats.flows > 80
    assert engine.stats.inside_site == engine.stats.flagged  # every server is the site's own broker
    assert engine.stats.incidents == 0 and not events
    # held as Anomaly: one conversation per sensor is no pattern
    assert engine.stats.insufficient_evidence > 0


def test_the_rule_follows_the_configured_site_networks(data_file):
    capture = data_file("pcaps/mqttset_reduced/benign.pcap")
    # only the sensors' network is the site: the broker is a remote server, and a sensor's persistent
    # connection to it is a channel like a bot's (two flows each)
    engine, events = _run(capture, DetectionConfig(site_networks=["192.168.0.0/16"]))
    assert engine.stats.inside_site == 0
    assert engine.stats.incidents >= 8 and {e.alert.family for e in events} == {"Botnet"}
    assert {e.alert.dest_ip for e in events} == {"10.16.100.73"}
    off, events_off = _run(capture, DetectionConfig(external_families=[]))  # the rule off: the old behaviour
    assert off.stats.inside_site == 0 and off.stats.incidents == engine.stats.incidents


def test_bots_keep_their_internet_c2_channel_and_local_servers_are_no_c2(showcase):
    episodes = [e for e in read_episodes(showcase.episodes_path) if e.label == "mirai-cnc"]
    bots = {e.attacker for e in episodes}
    c2 = {e.victim for e in episodes if e.victim != "8.8.8.8"}
    assert bots and c2 and not any(_inside(a) for a in c2)
    engine, events = _run(showcase.capture)
    assert engine.stats.inside_site > 0
    botnet = [e for e in events if e.alert.family == "Botnet"]
    # never a site device's channel to a server of the site's own
    assert not any(_inside(e.alert.src_ip) and _inside(e.alert.dest_ip) for e in botnet)
    named = {e.alert.src_ip for e in botnet if e.alert.dest_ip in c2}
    assert named == bots  # every bot named, on its C&C channel
    for e in events:  # what was re-labelled says so
        if e.alert.family == "Anomaly" and _inside(e.alert.src_ip) and _inside(e.alert.dest_ip):
            assert e.alert.model == "always-Botnet" and "inside the site" in e.alert.signature


def test_the_sensor_configuration_sets_the_site_networks():
    config = Config.model_validate({"inventory": {"networks": ["10.20.0.0/16", "2001:db8::/32"]}})
    assert detection_config(config).site_networks == ["10.20.0.0/16", "2001:db8::/32"]
    assert detection_config(config).external_families == ["Botnet"]
    off = Config.model_validate({"detect": {"external_families": []}})
    assert detection_config(off).external_families == []
    assert DetectionConfig().site_networks == list(SITE_NETWORKS)
    assert DetectionConfig().external_families == ["Botnet"]


def test_a_bad_site_network_is_a_clear_error():
    with pytest.raises(ValueError, match="'10.0.0.300/8' is not an IP address or CIDR network"):
        DetectionConfig(site_networks=["10.0.0.300/8"])


def test_the_sensor_config_sets_and_turns_off_the_fixed_rule_checks():
    """Each fixed-rule check is one line of the sensor's configuration; null turns it off; a family name the
    project does not know is an error, not a silently disabled rule."""
    config = Config.model_validate({"detect": {"rfb_auth_failures": None, "elf_downloads": 2}})
    det = detection_config(config)
    assert det.rfb_auth_failures is None and det.elf_downloads == 2
    assert det.probe_packets == DetectionConfig().probe_packets  # the others keep the engine's defaults
    with pytest.raises(ValueError, match="botnet"):
        Config.model_validate({"detect": {"external_families": ["botnet"]}})


def test_a_channel_into_a_site_device_from_outside_keeps_its_verdict(data_file):
    """The rule is about a device's channel to its site's own server: with only the broker's network as the
    site, the sensors are outside hosts holding channels into it, and their Botnet verdicts stay."""
    capture = data_file("pcaps/mqttset_reduced/benign.pcap")
    engine, events = _run(capture, DetectionConfig(site_networks=["10.0.0.0/8"]))
    assert engine.stats.inside_site == 0
    assert engine.stats.incidents >= 8 and {e.alert.family for e in events} == {"Botnet"}
