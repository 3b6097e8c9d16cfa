"""The ``dinoscope`` command line: thin commands that resolve config, call the library and print a summary."""
