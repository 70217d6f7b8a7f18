"""The built-in operators: importing each module declares its operator.

Like Telegraf's ``plugins/processors/all``: a new operator module adds its
line here, and nothing else lists operators. Window kinds declare themselves
to the ``window`` operator the same way, listed in ``window/__init__.py``.
"""

import tidegate.rules.operators.absence
import tidegate.rules.operators.alarm
import tidegate.rules.operators.deadband
import tidegate.rules.operators.dedup
import tidegate.rules.operators.on_change
import tidegate.rules.operators.range_check
import tidegate.rules.operators.throttle
import tidegate.rules.operators.window  # noqa: F401 - all bind one name, `tidegate`
