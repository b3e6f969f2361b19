from iotguard.core.errors import DataError, location
from iotguard.core.records import Alert
from iotguard.core.schema import CIC_CNS2022_NAMES, CIC_ORIGINAL_NAMES, FLOW_FEATURES


def test_schema_has_cicflowmeter_features():
    assert len(FLOW_FEATURES) == 78
    assert len(set(FLOW_FEATURES)) == 78
    assert set(CIC_ORIGINAL_NAMES.values()) == set(FLOW_FEATURES)
    assert set(FLOW_FEATURES) <= set(CIC_CNS2022_NAMES.values())


def test_error_message_names_place():
    err = DataError(
        "text in numeric column", where=location("a.csv", line=3, column="dur"), expected="a number"
    )
    assert str(err) == "a.csv:3 column 'dur': text in numeric column (expected a number)"


def test_alert_to_eve():
    alert = Alert(
        timestamp=0.5,
        src_ip="10.0.0.2",
        dest_ip="10.0.0.1",
        family="DoS",
        severity=1,
        score=0.99,
        confidence=0.9,
        model="rf",
        signature_id=9000001,
        signature="iotguard DoS",
        flow_id=7,
        src_port=1234,
        dest_port=80,
        proto="TCP",
        top_features=[("syn_flag_count", 0.4)],
    )
    eve = alert.to_eve()
    assert eve["timestamp"] == "1970-01-01T00:00:00.500000+0000"
    assert eve["event_type"] == "alert"
    assert eve["alert"]["severity"] == 1 and eve["alert"]["category"] == "DoS"
    assert eve["iotguard"]["top_features"] == [{"feature": "syn_flag_count", "weight": 0.4}]


def test_episodes_round_trip_and_errors(tmp_path):
    import pytest

    from iotguard.core.episodes import Episode, read_episodes, write_episodes

    episodes = [Episode(10.0, 20.5, "10.0.0.66", "10.0.0.0/24", "syn-flood", "DoS")]
    path = tmp_path / "episodes.csv"
    write_episodes(path, episodes)
    assert read_episodes(path) == episodes

    path.write_text("start,end,attacker,victim,label,category\n10,5,*,*,x,DoS\n")
    with pytest.raises(DataError, match=r"episodes.csv:2 column 'end'"):
        read_episodes(path)
    path.write_text("start,end,attacker,victim,label,category\n10,20,not-an-ip,*,x,DoS\n")
    with pytest.raises(DataError, match="bad address"):
        read_episodes(path)


def test_eve_timestamp_survives_absurd_times():
    from iotguard.core.records import eve_timestamp

    assert eve_timestamp(-5.9e12) == "1970-01-01T00:00:00.000000+0000"
    assert eve_timestamp(float("nan")) == "1970-01-01T00:00:00.000000+0000"
    assert eve_timestamp(1e300).startswith("9999-12-31T23:59:59")
