"""``echo``: emits each of ``words`` in turn, every ``every``.

```yaml
drivers:
  - name: parrot
    type: echo
    words: [hello, world]
    every: 10ms
```
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tidegate.config.types import Duration
from tidegate.driver import DriverConfig


class EchoConfig(DriverConfig, runtime="tidegate_echo.driver:EchoDriver"):
    type: Literal["echo"] = Field("echo", description="Driver kind.")
    words: list[str] = Field(min_length=1, description="What to say, in turn.")
    every: Duration = Field(1.0, gt=0, description="Seconds between words.")
