"""`python -m lightning_digits` is the same as the `lightning-digits` command."""

from lightning_digits.cli import main

main()
