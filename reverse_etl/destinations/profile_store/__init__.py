"""The profile_store destination (destination.py) and its stand-in for tests and the demo
(emulator.py)."""
