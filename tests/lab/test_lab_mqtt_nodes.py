"""The ``mqtt-node`` devices: MQTT clients that behave as their client libraries do, checked packet by packet
with tshark's MQTT dissector against MQTT 3.1.1 and the libraries' documented defaults."""

from __future__ import annotations

import collections
import random
from dataclasses import replace

import pytest
from lab_helpers import tshark

from iotguard.lab import SCENARIOS, build
from iotguard.lab.devices import mqtt_node
from iotguard.lab.network import LINUX, Network
from iotguard.lab.pcap import Capture, write_pcap
from iotguard.lab.sim import Sim

BASE = 1_715_623_200.0
SECONDS = 400.0
LIB = {lib.name: lib for lib in mqtt_node.LIBRARIES}
# esp-mqtt's task sends PINGREQ once keepalive/2 passed since the last one (mqtt_client.c); PubSubClient and
# paho once a keep-alive passed without a packet sent or without one received
PINGS_EVERY_HALF = {"esp-mqtt"}
QUIET = {
    "clean": True,
    "commands_per_hour": 0.0,
    "drops_per_hour": 0.0,
    "will": None,
    "commands": [],
    "jitter": 0.0,
}
NODES = {  # name -> (library, settings over the drawn ones)
    # PubSubClient publishes QoS 0 every 5 s: it receives nothing, so it still pings every keep-alive
    "pubsub": ("pubsubclient", QUIET | {"keepalive": 15, "mode": "periodic", "period": 5.0, "qos": 0}),
    # esp-mqtt pings every half keep-alive whatever else it sends
    "espidf": ("esp-mqtt", QUIET | {"keepalive": 60, "mode": "periodic", "period": 7.0, "qos": 1}),
    # paho, idle for minutes between QoS 2 publishes: pings after a keep-alive of silence
    "paho-idle": ("paho", QUIET | {"keepalive": 30, "mode": "periodic", "period": 300.0, "qos": 2}),
    # paho publishing QoS 1 more often than its keep-alive hears and says enough: no ping at all
    "paho-busy": ("paho", QUIET | {"keepalive": 60, "mode": "periodic", "period": 10.0, "qos": 1}),
    # a persistent session with a will that loses its Wi-Fi and takes QoS 2 commands
    "persistent": (
        "esp-mqtt",
        QUIET
        | {
            "keepalive": 120,
            "qos": 1,
            "period": 20.0,
            "mode": "periodic",
            "clean": False,
            "drops_per_hour": 90.0,
            "will": ("esp/dev/status", b"offline", 1, True),
            "commands": [("esp/dev/set", 2)],
            "commands_per_hour": 60.0,
        },
    ),
    "tasmota": ("tasmota", {"drops_per_hour": 0.0, "period": 10.0}),
}


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    """Each node alone with the broker: (pcap path, node by address)."""
    net = Network("192.168.77.0/24", random.Random(1))
    broker = net.add_local("hub", "hub", "raspberrypi", LINUX)
    sim = Sim(seed=1, duration=SECONDS, base_unix=BASE, net=net, cap=Capture(round(BASE * 1e6), SECONDS))
    nodes = {}
    for i, (name, (lib_name, settings)) in enumerate(NODES.items()):
        lib = LIB[lib_name]
        dev = net.add_local(name, "mqtt-node", lib.vendor, lib.stack)
        node = replace(mqtt_node.node(random.Random(i), dev, lib, i), **settings)
        mqtt_node.run(sim, dev, broker, node, 1.0 + i, SECONDS, sim.rng("node", name))
        nodes[dev.ip] = node
    path = tmp_path_factory.mktemp("mqtt-nodes") / "nodes.pcap"
    write_pcap(path, sim.cap.build())
    return path, nodes


def _by_client(path, nodes):
    out = tshark("-r", str(path), "-Y", "mqtt", "-T", "fields", "-e", "frame.time_epoch", "-e", "ip.src",
                 "-e", "ip.dst", "-e", "tcp.stream", "-e", "mqtt.msgtype")  # fmt: skip
    seen = collections.defaultdict(list)  # client ip -> [(time, from_client, stream, msgtype)]
    for line in out.splitlines():
        when, src, dst, stream, types = line.split("\t")
        client = src if src in nodes else dst
        for msgtype in types.split(","):
            seen[client].append((float(when), src == client, int(stream), int(msgtype)))
    return seen


def test_captures_decode_without_warnings(capture):
    path, _ = capture
    out = tshark("-r", str(path), "-o", "tcp.check_checksum:TRUE",
                 "-Y", '_ws.malformed || (_ws.expert.severity >= warning && !(_ws.expert.message == "Connection reset (RST)")) || tcp.checksum.status == "Bad"',
                 "-T", "fields", "-e", "frame.number")  # fmt: skip
    assert out.strip() == ""


def test_connect_carries_each_librarys_keepalive_and_session_flags(capture):
    path, nodes = capture
    out = tshark("-r", str(path), "-Y", "mqtt.msgtype == 1", "-T", "fields", "-e", "ip.src", "-e", "mqtt.kalive",
                 "-e", "mqtt.conflag.cleansess", "-e", "mqtt.conflag.willflag", "-e", "mqtt.conflag.retain",
                 "-e", "mqtt.clientid")  # fmt: skip
    connects = collections.defaultdict(list)
    for line in out.splitlines():
        src, keepalive, clean, will, will_retain, client_id = line.split("\t")
        connects[src].append((int(keepalive), clean == "1", will == "1", will_retain == "1", client_id))
    assert set(connects) == set(nodes)
    for ip, node in nodes.items():
        for keepalive, clean, will, will_retain, client_id in connects[ip]:
            assert (keepalive, clean, will, client_id) == (
                node.keepalive,
                node.clean,
                node.will is not None,
                node.client_id,
            )
            assert will_retain == bool(node.will and node.will[3])
    tasmota = next(n for n in nodes.values() if n.lib.name == "tasmota")
    assert (
        tasmota.keepalive == 30 and tasmota.client_id.startswith("DVES_") and tasmota.will[0].endswith("/LWT")
    )


def test_pingreq_when_the_library_says(capture):
    path, nodes = capture
    seen = _by_client(path, nodes)
    for ip, node in nodes.items():
        if node.drops_per_hour:
            continue
        msgs = seen[ip]
        pings = [t for t, out, _, m in msgs if out and m == 12]
        answered = [t for t, out, _, m in msgs if not out and m == 13]
        assert len(pings) == len(answered), node.lib.name
        poll = node.lib.poll + 0.01
        sent = [t for t, out, _, _ in msgs if out]
        # MQTT 3.1.1 3.1.2.10: the client never stays silent longer than the keep-alive
        assert max(b - a for a, b in zip(sent, sent[1:], strict=False)) <= node.keepalive + poll
        if node.lib.name in PINGS_EVERY_HALF:  # every keepalive/2 although it publishes every 7 s
            gaps = [b - a for a, b in zip(pings, pings[1:], strict=False)]
            assert len(pings) >= SECONDS / node.keepalive * 2 - 2
            assert all(node.keepalive / 2 <= g <= node.keepalive / 2 + poll for g in gaps)
        elif node.qos == 0 and not node.commands:  # nothing received: a ping every keep-alive period
            gaps = [b - a for a, b in zip(pings, pings[1:], strict=False)]
            assert len(pings) >= SECONDS / node.keepalive - 2
            assert all(node.keepalive <= g <= node.keepalive + poll for g in gaps), node.lib.name
        elif node.period < node.keepalive and node.qos:  # QoS 1 every 10 s: both ways busy, no ping
            assert pings == [], node.lib.name
        else:  # a ping a keep-alive after the last packet sent or the last received, whichever is older
            assert pings
            for p in pings:
                last_out = max(t for t, out, _, _ in msgs if out and t < p)
                last_in = max(t for t, out, _, _ in msgs if not out and t < p)
                # (the library's clock starts when it hands a packet over, a moment before the wire)
                assert node.keepalive - 0.01 <= p - min(last_out, last_in) <= node.keepalive + poll


def test_qos_handshakes_follow_the_spec(capture):
    path, nodes = capture
    out = tshark("-r", str(path), "-Y", "mqtt.msgtype >= 3 && mqtt.msgtype <= 7", "-T", "fields",
                 "-e", "tcp.stream", "-e", "ip.src", "-e", "mqtt.msgtype", "-e", "mqtt.qos", "-e", "mqtt.msgid",
                 "-E", "occurrence=a", "-E", "aggregator=,")  # fmt: skip
    flows = collections.defaultdict(list)  # (stream, message id) -> [(from client, type, qos)]
    for line in out.splitlines():
        stream, src, types, qoss, ids = line.split("\t")
        qos_iter = iter(qoss.split(",") if qoss else [])
        id_iter = iter(ids.split(",") if ids else [])
        for m in map(int, types.split(",")):
            qos = int(next(qos_iter)) if m == 3 else None
            if m == 3 and qos == 0:
                continue
            flows[(stream, next(id_iter))].append((src in nodes, m, qos))
    kinds = collections.Counter()
    for sequence in flows.values():
        by_client = sequence[0][0]
        if sequence[0][2] == 1:
            assert [m for _, m, _ in sequence] == [3, 4]
            assert [c for c, _, _ in sequence] == [by_client, not by_client]
        else:
            assert [m for _, m, _ in sequence] == [3, 5, 6, 7] and sequence[0][2] == 2
            assert [c for c, _, _ in sequence] == [by_client, not by_client, by_client, not by_client]
        kinds[(by_client, sequence[0][2])] += 1
    # published QoS 1 and 2 by the devices, and QoS 2 commands from the broker acknowledged by a device
    assert kinds[(True, 1)] and kinds[(True, 2)] and kinds[(False, 2)], kinds


def test_persistent_session_resumes_after_a_drop(capture):
    path, nodes = capture
    ip, node = next((ip, n) for ip, n in nodes.items() if not n.clean)
    out = tshark("-r", str(path), "-Y", f"ip.addr == {ip} && (mqtt.msgtype == 1 || mqtt.msgtype == 2 || mqtt.msgtype == 3 || mqtt.msgtype == 8)", "-T", "fields",
                 "-e", "frame.time_epoch", "-e", "tcp.stream", "-e", "mqtt.msgtype", "-e", "mqtt.conack.flags.sp",
                 "-e", "mqtt.retain", "-e", "mqtt.topic", "-E", "occurrence=f")  # fmt: skip
    streams = collections.defaultdict(list)
    for line in out.splitlines():
        when, stream, types, sp, retain, topic = line.split("\t")
        streams[int(stream)].append((float(when), int(types.split(",")[0]), sp, retain, topic))
    assert len(streams) >= 2, "the Wi-Fi drops at least once in the capture"
    ordered = [streams[k] for k in sorted(streams)]
    for n, msgs in enumerate(ordered):
        types = [m for _, m, _, _, _ in msgs]
        connack = next(sp for _, m, sp, _, _ in msgs if m == 2)
        assert connack == ("0" if n == 0 else "1")  # the broker kept the session
        assert (8 in types) == (n == 0)  # subscribed once, never again
        birth = next(x for x in msgs if x[1] == 3)
        assert birth[3] == "1" and birth[4] == node.will[0]  # retained "online" right after CONNACK
    for previous, nxt in zip(ordered, ordered[1:], strict=False):
        assert nxt[0][0] - previous[-1][0] >= node.lib.retry  # the library's retry delay at least


def test_benign_and_site_hold_mqtt_nodes_train_and_test_none():
    assert "mqtt-node" not in SCENARIOS["train"].mix and "mqtt-node" not in SCENARIOS["test"].mix
    stacks = collections.Counter()
    for name, seed in (("benign", 101), ("site", 201)):
        nodes = [h for h in build(name, duration=60, devices=40, seed=seed).hosts if h.kind == "mqtt-node"]
        assert len(nodes) >= 5, name
        stacks.update(h.stack.name for h in nodes)
    assert {"lwip", "linux"} <= set(stacks)  # ESP firmware, and paho on a Raspberry Pi
