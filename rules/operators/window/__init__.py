"""Window operators: tumbling, hopping, sliding, session and count windows, and aggregates.

``operator`` documents windows and holds what every kind shares (the ``window``
operator); ``config`` holds one schema model per kind; each kind runs in its own
module and declares the models it runs.
"""

# The built-in window kinds, one line each: importing the window operator (from anywhere:
# the rule schema, `rules test`, a test) always brings every kind it can build.
import tidegate.rules.operators.window.aligned
import tidegate.rules.operators.window.count
import tidegate.rules.operators.window.session
import tidegate.rules.operators.window.sliding  # noqa: F401 - all bind one name, `tidegate`
