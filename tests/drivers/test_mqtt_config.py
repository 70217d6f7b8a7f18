"""The ``mqtt`` driver's config: its YAML example, what it refuses, topic filters and
the templates that take an event's source and name from a topic."""

from __future__ import annotations

import re
from typing import Any

import paho.mqtt.client as paho
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidegate.config.loader import load_config_text
from tidegate.drivers.mqtt import config as config_module
from tidegate.drivers.mqtt.config import MqttInputConfig
from tidegate.drivers.mqtt.topics import TopicError, TopicTemplate, clean_name
from tidegate.mqtt.topic_filter import filter_matches


def test_module_docstring_yaml_loads_through_the_config_loader() -> None:
    (block,) = re.findall(r"```yaml\n(.*?)```", config_module.__doc__ or "", re.S)
    config = load_config_text(block, "mqtt.py docstring")
    (driver,) = config.drivers
    assert isinstance(driver, MqttInputConfig)
    assert [s.topic for s in driver.subscriptions] == [
        "tele/+/SENSOR", "zigbee2mqtt/+", "home/+/+", "meters/+/raw"
    ]
    assert driver.persistent_session and driver.effective_port == 1883
    assert (driver.host, driver.protocol) == ("127.0.0.1", "3.1.1")
    assert (driver.reconnect.initial_delay, driver.reconnect.max_delay) == (0.5, 30.0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"subscriptions": [{"topic": "a/#/b", "parse": {"format": "raw"}}]}, "last one"),
        ({"subscriptions": [{"topic": "a/b+", "parse": {"format": "raw"}}]}, "whole level"),
        ({"subscriptions": [{"topic": "a/+", "source": "{topic[2]}",
                             "parse": {"format": "raw"}}]}, r"have 2 levels"),
        ({"subscriptions": [{"topic": "a/+", "source": "{field}",
                             "parse": {"format": "raw"}}]}, "for `name`"),
        ({"subscriptions": [{"topic": "a/+", "name": "{topic[x]}",
                             "parse": {"format": "raw"}}]}, "unknown placeholder"),
        ({"subscriptions": [{"topic": "a/+", "parse": {"format": "raw"}},
                            {"topic": "a/+", "parse": {"format": "raw"}}]}, "listed twice"),
        ({"password_env": "X"}, "needs a `username`"),
        ({"reconnect": {"initial_delay": "10s", "max_delay": "1s"}}, "must not exceed"),
        ({"reconnect_min": "1s"}, "Extra inputs"),  # the old key
        ({"subscriptions": []}, "at least 1"),
        ({"hots": "x"}, "Extra inputs"),
    ],
)
def test_bad_config_is_refused(change: dict[str, Any], message: str) -> None:
    base = {"name": "m", "subscriptions": [{"topic": "a/+", "parse": {"format": "raw"}}]}
    with pytest.raises(ValueError, match=message):
        MqttInputConfig.model_validate({**base, **change})


def test_template_levels_beyond_a_hash_are_checked_per_message() -> None:
    template = TopicTemplate("{topic[3]}", driver="d", filter_levels=["a", "#"],
                             allow_field=False)
    assert template.render(["a", "b", "c", "d"], "a/b/c/d") == "d"
    with pytest.raises(TopicError, match="have 2 levels"):
        TopicTemplate("{topic[-3]}", driver="d", filter_levels=["a", "+"], allow_field=False)


@pytest.mark.parametrize(
    ("text", "cleaned"),
    [("kitchen", "kitchen"), ("Living Room", "Living_Room"), ("_x/y#z", "x_y_z"),
     ("--", None), ("é", None), ("a" * 80, "a" * 64)],
)
def test_clean_name(text: str, cleaned: str | None) -> None:
    assert clean_name(text) == cleaned


_level = st.sampled_from(["a", "b", "$s", "", "c d"])


@given(
    st.lists(st.sampled_from(["a", "b", "+", "$s", ""]), min_size=1, max_size=4),
    st.booleans(),
    st.lists(_level, min_size=1, max_size=5),
)
def test_filter_matching_agrees_with_paho(
    filter_levels: list[str], hash_tail: bool, topic_levels: list[str]
) -> None:
    levels = [*filter_levels, "#"] if hash_tail else filter_levels
    topic_filter, topic = "/".join(levels), "/".join(topic_levels)
    assert filter_matches(levels, topic_levels) == paho.topic_matches_sub(topic_filter, topic)
