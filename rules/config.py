"""The schema of one rule (the ``rules:`` list of the config).

```yaml
rules:
  - name: alarms-high
    match: {name: "*_alarm"}
    publish: {topic: "site/{gateway}/alarms/{source}", qos: 1, retain: true}
  - name: no-debug
    match: {name: "debug*"}
    drop: true
```
Rules are tried in order; the first rule whose ``match`` matches an event
decides it: ``publish`` sends it to that rule's topic, ``drop`` stops it.
An event no rule matches follows the default route (``mqtt.topic``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from tidegate.rules.match import MatchSpec
from tidegate.rules.topic import TopicTemplateError, check_template
from tidegate.schema_types import Name, Section


class PublishSpec(Section):
    topic: str | None = Field(
        None,
        description="Topic template, e.g. `site/{gateway}/{source}/{name}`; "
        "default: the mqtt.topic template.",
    )
    qos: Literal[0, 1] | None = Field(None, description="MQTT QoS; default: mqtt.qos.")
    retain: bool = Field(False, description="Publish with the MQTT retain flag.")

    @field_validator("topic")
    @classmethod
    def _check_topic(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                check_template(value)
            except TopicTemplateError as exc:
                raise ValueError(str(exc)) from None
        return value


class RuleConfig(Section):
    name: Name = Field(description="Unique rule name (shown in status and logs).")
    match: MatchSpec = Field(default_factory=MatchSpec, description="Which events the rule takes.")
    publish: PublishSpec | None = Field(None, description="Route matched events to a topic.")
    drop: bool = Field(False, description="Stop matched events (counted as dropped by the rule).")

    @model_validator(mode="after")
    def _one_outcome(self) -> RuleConfig:
        if self.drop and self.publish is not None:
            raise ValueError("a rule can `publish` or `drop`, not both")
        if not self.drop and self.publish is None:
            raise ValueError("a rule needs `publish: {...}` or `drop: true`")
        return self
