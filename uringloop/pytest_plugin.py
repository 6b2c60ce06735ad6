"""pytest plugin (entry point `pytest11`): run pytest-asyncio tests on uringloop loops.

Inactive unless asked for. Being written (issue 6).
"""
