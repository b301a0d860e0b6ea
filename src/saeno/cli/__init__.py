"""The ``saeno`` command line: one small module per verb, parsing and printing only."""
