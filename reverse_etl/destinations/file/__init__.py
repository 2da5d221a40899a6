"""The file destination (destination.py) and its stand-in for tests and the demo
(emulator.py)."""
