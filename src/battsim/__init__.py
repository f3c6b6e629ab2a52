"""battsim: a discrete-event simulator of stationary VRLA battery fleets.

    import battsim
    with battsim.simulate(preset="single-string", days=1, timeline="daily-outage") as rec:
        rec.readings().collect()

The simulation and the recording load on first use, so ``import battsim`` (and the pytest plugin,
which pytest imports in every session) stays cheap.
"""

__version__ = "0.1.0"
__all__ = ["Recording", "__version__", "open_recording", "simulate"]


def __getattr__(name: str):
    if name in ("simulate", "open_recording", "Recording"):
        from battsim import api

        return getattr(api, name)
    raise AttributeError(f"module 'battsim' has no attribute {name!r}")
