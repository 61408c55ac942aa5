"""The CrossGuard policy pack (rules in rules.py; __main__.py only builds the pack)."""
