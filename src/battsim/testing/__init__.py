"""battsim in your own test suite: the pytest plugin (fixtures ``battsim_recording`` and ``battsim_golden``,
:mod:`battsim.testing.plugin`) and :func:`virtual_time` for code that reads the wall clock.

Nothing heavy is imported until it is used: pytest imports the plugin in every session of every project
that has battsim installed.
"""

__all__ = ["Frame", "virtual_time"]


def __getattr__(name: str):
    if name in __all__:
        from battsim.testing import clock

        return getattr(clock, name)
    raise AttributeError(f"module 'battsim.testing' has no attribute {name!r}")
