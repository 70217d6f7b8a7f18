"""Rule operators: one module per operator, each declaring itself on its class.

An operator module defines the schema of its rule key (a ``Section``) and the
operator class, which declares its key, its place in a rule's order, whether
it is a detector, and that schema (``tidegate.rules.operator``). ``builtins``
imports the built-in ones; ``registry`` is where they land. Adding an operator
is adding its module, its line in ``builtins`` and its tests.
"""
