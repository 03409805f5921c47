"""Benchmarks that run from the CLI (`em3 bench ...`); thin scripts in bench/ call them too."""
