"""The problems: one module per registered Task (``task:`` in a recipe)."""
