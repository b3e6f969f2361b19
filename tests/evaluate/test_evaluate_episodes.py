"""Episodes matched against incidents: who counts as caught, and the detection delay."""

from __future__ import annotations

from iotguard.core.episodes import Episode
from iotguard.core.records import Alert, Incident
from iotguard.evaluate.episodes import match_episodes

SCAN_1 = Episode(100.0, 160.0, "10.0.0.9", "*", "syn-scan", "PortScan")
SCAN_2 = Episode(400.0, 460.0, "10.0.0.9", "10.0.0.5", "syn-scan", "PortScan")
FLOOD = Episode(500.0, 520.0, "10.0.0.7", "10.0.0.5", "syn-flood", "DoS")


def alert(ts: float, src: str, dst: str) -> Alert:
    return Alert(ts, src, dst, "PortScan", 3, 1.0, 1.0, "m", 1, "s")


def test_caught_by_an_incident_that_names_the_attacker_or_the_reply_direction():
    one = Incident("10.0.0.9", "PortScan", 3, 102.0, 450.0, 40, dest_ips=["10.0.0.5"], id=1)
    reply = Incident("10.0.0.5", "DoS", 2, 501.0, 510.0, 5, dest_ips=["10.0.0.7"], id=2)
    results = match_episodes([SCAN_1, SCAN_2, FLOOD], [one, reply])
    assert [r.incident_id for r in results] == [1, 1, 2]
    assert results[0].delay == 2.0
    # without alerts, the second scan inherits the incident opened by the first: a delay of -298 s
    assert results[1].delay == -298.0
    other = Incident("10.0.0.8", "PortScan", 3, 100.0, 160.0, 3, dest_ips=["10.0.0.5"], id=3)
    assert not match_episodes([SCAN_1], [other])[0].detected


def test_delay_from_the_first_alert_inside_the_episode_when_alerts_are_given():
    one = Incident("10.0.0.9", "PortScan", 3, 102.0, 450.0, 40, dest_ips=["10.0.0.5"], id=1)
    alerts = [alert(102.0, "10.0.0.9", "10.0.0.5"), alert(407.5, "10.0.0.9", "10.0.0.5"),
              alert(401.0, "10.0.0.9", "10.0.0.6")]  # fmt: skip
    results = match_episodes([SCAN_1, SCAN_2], [one], alerts=alerts)
    assert [r.delay for r in results] == [2.0, 7.5]  # the alert against another victim does not count


def test_an_arp_spoofer_named_by_its_mac_is_credited_through_the_host_table():
    spoof = Episode(600.0, 660.0, "10.0.0.66", "10.0.0.1", "arp-spoofing", "Spoofing")
    mac = "02:00:00:00:00:42"
    by_mac = Incident(mac, "Spoofing", 2, 605.0, 640.0, 3, dest_ips=["10.0.0.1"], id=4)
    spoofed = Alert(608.0, mac, "10.0.0.1", "Spoofing", 2, 1.0, 0.9, "inventory", 1, "s")
    assert not match_episodes([spoof], [by_mac])[0].detected
    result = match_episodes([spoof], [by_mac], alerts=[spoofed], macs={mac: "10.0.0.66"})[0]
    assert result.incident_id == 4 and result.delay == 8.0
