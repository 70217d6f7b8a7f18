"""``tidegate rules …``: try rules before deploying them.

``tidegate rules test RULES EVENTS.jsonl`` runs a rule set over recorded
events and prints what would be published, one JSON object per line, in
order. RULES is a rule file (a YAML list of rules), a folder of them, or a
config file (its ``rules:`` and ``rules_dir``, and its default route). The
events' own timestamps are the clock (``tidegate.rules.replay``), so the same
input always gives the same output. A summary per rule goes to stderr.

Exit codes: 0; 1 when some input lines could not be read (they are reported
and skipped, the rest is processed); 2 when the rules are invalid.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tidegate.cli.options import command_group

rules_app = command_group("rules", "Try rules on recorded events before deploying them.")


@rules_app.callback()
def rules_group() -> None:
    """Try rules on recorded events before deploying them."""


@rules_app.command("test")
def test_rules(
    rules: Annotated[
        Path,
        typer.Argument(
            metavar="RULES",
            help="A rule file (YAML list of rules), a folder of them, or a config.",
        ),
    ],
    events: Annotated[
        Path,
        typer.Argument(
            metavar="EVENTS", help="Recorded events, one JSON object per line ('-': stdin)."
        ),
    ],
    *,
    gateway_id: Annotated[
        str | None,
        typer.Option("--gateway-id", help="The `{gateway}` of topics; default: the config's."),
    ] = None,
    topic: Annotated[
        str | None,
        typer.Option("--topic", help="Default route's topic template; default: the config's."),
    ] = None,
    flush: Annotated[
        bool,
        typer.Option(
            "--flush/--no-flush", help="At the end, emit what rules hold (as at a shutdown)."
        ),
    ] = True,
    ids: Annotated[bool, typer.Option("--ids", help="Include event ids in the output.")] = False,
    dead_letters: Annotated[
        Path | None,
        typer.Option("--dead-letters", help="Write dead-lettered events here as JSON lines."),
    ] = None,
) -> None:
    """Run RULES over recorded EVENTS; print the routed events as JSON lines."""
    from tidegate.cli.rule_trial import run_rules  # noqa: PLC0415 - the rule engine

    run_rules(
        rules,
        events,
        gateway_id=gateway_id,
        topic=topic,
        flush=flush,
        ids=ids,
        dead_letters=dead_letters,
    )
