"""Applying and clearing scenarios on a running world.

:class:`Scenarios` is the one door through which anything (the HTTP API, a timeline, a random
process) changes what happens to a world. It validates the request, resolves the targets to the
sites, strings or jars the scenario acts on, starts its effect, keeps the list of active
applications, and writes every apply and clear to the world's events. Scenarios on different
targets, or of different kinds on the same targets, combine: per-site causes are folded from all
active applications, per-jar causes multiply, and outages are counted per string.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, timedelta

import numpy as np
from pydantic import ValidationError

from battsim.engine.world import EPOCH, World
from battsim.scenarios.catalogue import CATALOGUE, JarCauses, Params, ScenarioSpec, Scope, SiteCauses
from battsim.timeparse import MAX_DURATION_S

# Scenarios stop drifting a jar's ohmic resistance at 10 × its new value: far past the +50 % at which
# a jar is replaced (vrla-facts.md), a jar that is all but open. Without a ceiling, drifts stacked by
# repeated requests or a degradation left on for decades would grow it without bound, and the ohmic
# heat of a discharge with it (an overflow of the temperature laws).
MAX_RESISTANCE_MULTIPLIER = 10.0


class ScenarioError(ValueError):
    """A scenario request that cannot be carried out; the message says what is wrong and what is allowed."""


def check_duration_s(duration_s) -> float:
    """``duration_s`` as a float if it is a number of seconds in (0, MAX_DURATION_S]; ScenarioError otherwise."""
    if isinstance(duration_s, bool) or not isinstance(duration_s, (int, float)) or not math.isfinite(duration_s) \
            or not 0 < duration_s <= MAX_DURATION_S:
        raise ScenarioError(f"duration_s: {str(duration_s)[:40]} is not a number of seconds above 0 and at most "
                            f"{MAX_DURATION_S:.0f} (100 years)")
    return float(duration_s)


def known_scenarios() -> str:
    return ", ".join(CATALOGUE)


def validate_params(spec: ScenarioSpec, params: dict | None) -> Params:
    """The scenario's parameters, defaults filled in; ScenarioError naming the field otherwise."""
    if params is not None and not isinstance(params, dict):
        raise ScenarioError(f"params of {spec.name} must be a table of parameters, not {type(params).__name__}")
    try:
        return spec.params.model_validate(params or {})
    except ValidationError as error:
        allowed = ", ".join(spec.params.model_fields) or "none"
        problems = []
        for problem in error.errors():
            key = ".".join(str(part) for part in problem["loc"]) or "params"
            problems.append(f"params.{key}: {problem['msg']}")
        raise ScenarioError(f"{spec.name}: " + "; ".join(problems) + f" (parameters: {allowed})") from None


def get_spec(name: str) -> ScenarioSpec:
    try:
        return CATALOGUE[name]
    except (KeyError, TypeError):
        raise ScenarioError(f"unknown scenario {name!r}; known: {known_scenarios()}") from None


@dataclass
class Application:
    """One scenario acting on some units (site, string or jar indices) of the world."""

    id: int
    spec: ScenarioSpec
    params: Params
    units: np.ndarray
    jars: np.ndarray  # boolean mask over jars
    since_us: int
    until_us: int | None
    source: str
    drifting: bool


def _iso(timestamp_us: int) -> str:
    return (EPOCH + timedelta(microseconds=timestamp_us)).astimezone(UTC).isoformat()


class Targets:
    """Site, string and battery ids of a fleet, resolved to jars and back."""

    def __init__(self, fleet):
        self.fleet = fleet
        self.site_index = {site_id: i for i, site_id in enumerate(fleet.site_ids)}
        self.string_index = {string_id: i for i, string_id in enumerate(fleet.string_ids)}
        self.battery_index = {battery_id: i for i, battery_id in enumerate(fleet.battery_ids)}
        self._jars_per_site = np.bincount(fleet.battery_site, minlength=len(fleet.site_ids))
        self._jars_per_string = np.bincount(fleet.battery_string, minlength=len(fleet.string_ids))

    def resolve(self, sites=None, strings=None, batteries=None) -> np.ndarray:
        """Boolean mask of the jars named by site, string and battery ids (all None: the whole fleet).

        Each may be an id, a list of ids, or "all". Unknown ids raise ScenarioError naming them.
        """
        fleet = self.fleet
        if sites is None and strings is None and batteries is None:
            return np.ones(fleet.size, dtype=bool)
        mask = np.zeros(fleet.size, dtype=bool)
        for field, given, index, owner in (
            ("sites", sites, self.site_index, fleet.battery_site),
            ("strings", strings, self.string_index, fleet.battery_string),
            ("batteries", batteries, self.battery_index, None),
        ):
            if given is None:
                continue
            if isinstance(given, str):
                if given == "all":
                    mask[:] = True
                    continue
                given = [given]
            unknown = [str(item) for item in given if item not in index]
            if unknown:
                sample = ", ".join(list(index)[:5]) + (", ..." if len(index) > 5 else "")
                raise ScenarioError(f"{field}: unknown id(s) {', '.join(unknown)} (e.g. {sample})")
            chosen = np.array([index[item] for item in given], dtype=np.int64)
            if owner is None:
                mask[chosen] = True
            else:
                mask |= np.isin(owner, chosen)
        return mask

    def describe(self, jars: np.ndarray) -> dict:
        """The fewest ids that name a set of jars: whole sites, then whole strings, then jars."""
        fleet = self.fleet
        site_full = np.bincount(fleet.battery_site[jars], minlength=len(fleet.site_ids)) == self._jars_per_site
        string_full = (np.bincount(fleet.battery_string[jars], minlength=len(fleet.string_ids))
                       == self._jars_per_string) & ~site_full[fleet.string_site]
        loose = jars & ~site_full[fleet.battery_site] & ~string_full[fleet.battery_string]
        described = {}
        if site_full.any():
            described["sites"] = [fleet.site_ids[i] for i in np.flatnonzero(site_full)]
        if string_full.any():
            described["strings"] = [fleet.string_ids[i] for i in np.flatnonzero(string_full)]
        if loose.any():
            described["batteries"] = [fleet.battery_ids[i] for i in np.flatnonzero(loose)]
        return described


class Scenarios:
    """The scenario controller of one world."""

    def __init__(self, world: World):
        if world.scenarios is not None:
            raise ScenarioError("this world already has a scenario controller; use world.scenarios")
        world.scenarios = self
        self.world = world
        self.targets = Targets(world.fleet)
        self._active: list[Application] = []
        self._next_id = 1
        self.random_streams: dict[str, int] = {}  # random processes installed per kind (stream ordinals)
        # What the active scenarios multiply into the bank's per-jar causes now, so that refolding them
        # changes only the scenarios' share (failures change the same arrays).
        self._jar_causes = JarCauses.normal(world.fleet.size)
        self._cap_watch = 0  # generation of the process that stops drifts at the resistance ceiling

    def _units(self, scope: Scope, jars: np.ndarray) -> np.ndarray:
        fleet = self.world.fleet
        if scope is Scope.SITE:
            return np.unique(fleet.battery_site[jars])
        if scope is Scope.STRING:
            return np.unique(fleet.battery_string[jars])
        return np.flatnonzero(jars)

    def _unit_jars(self, scope: Scope, units: np.ndarray) -> np.ndarray:
        fleet = self.world.fleet
        if scope is Scope.SITE:
            return np.isin(fleet.battery_site, units)
        if scope is Scope.STRING:
            return np.isin(fleet.battery_string, units)
        mask = np.zeros(fleet.size, dtype=bool)
        mask[units] = True
        return mask

    # ------------------------------------------------------------------------------ apply / clear
    def apply(self, name: str, *, sites=None, strings=None, batteries=None, params: dict | None = None,
              duration_s: float | None = None, source: str = "api") -> int:
        """Start scenario ``name`` on the targets (None for all: the fleet) now; returns the jars affected.

        ``duration_s`` ends it by itself; without one it lasts until cleared. ``normal_operation``
        clears the targets instead.
        """
        spec = get_spec(name)
        validated = validate_params(spec, params)
        if duration_s is not None:
            duration_s = check_duration_s(duration_s)
        jars = self.targets.resolve(sites, strings, batteries)
        world = self.world
        if not jars.any():
            return 0
        if spec.name == "normal_operation":
            self._clear(jars, None, reason="normal_operation")
            self._emit_per_site(jars, "scenario_applied", scenario=spec.name, source=source)
            return int(jars.sum())

        units = self._units(spec.scope, jars)
        now_us = world.now_us()
        until_us = None if duration_s is None else now_us + int(round(duration_s * 1e6))
        app = Application(self._next_id, spec, validated, units, self._unit_jars(spec.scope, units), now_us,
                          until_us, source, drifting=spec.resistance_drift is not None)
        self._next_id += 1
        self._active.append(app)
        self._emit_per_site(app.jars, "scenario_applied", scenario=spec.name, application=app.id,
                            params=validated.model_dump(), source=source,
                            until=_iso(until_us) if until_us is not None else None)
        spec.start(world, units, validated)
        self._refresh()
        if duration_s is not None:
            world.env.process(self._expire(app, duration_s))
        if spec.ramp_hours is not None:
            world.env.process(self._end_ramp(app, spec.ramp_hours(validated) * 3600.0))
        return int(app.jars.sum())

    def clear(self, *, sites=None, strings=None, batteries=None, name: str | None = None) -> int:
        """End scenarios (all, or those called ``name``) on the targets (None: everywhere); returns the jars
        that had one cleared."""
        if name is not None:
            get_spec(name)
        return self._clear(self.targets.resolve(sites, strings, batteries), name, reason="cleared")

    def active(self) -> list[dict]:
        """The scenarios acting now, in the order they were applied."""
        return [
            {
                "id": app.id,
                "name": app.spec.name,
                "targets": self.targets.describe(app.jars),
                "jars": int(app.jars.sum()),
                "params": app.params.model_dump(),
                "since": _iso(app.since_us),
                "until": _iso(app.until_us) if app.until_us is not None else None,
                "source": app.source,
            }
            for app in self._active
        ]

    # ------------------------------------------------------------------------------ internals
    def _clear(self, jars: np.ndarray, name: str | None, reason: str) -> int:
        cleared = np.zeros(self.world.fleet.size, dtype=bool)
        for app in list(self._active):
            if name is not None and app.spec.name != name:
                continue
            hit = self._units(app.spec.scope, jars & app.jars)
            if len(hit):
                cleared |= self._end(app, hit, reason)
        return int(cleared.sum())

    def _end(self, app: Application, units: np.ndarray, reason: str) -> np.ndarray:
        """Stop ``app`` on ``units``; it ends when no units are left. Returns the jars it left."""
        spec, world = app.spec, self.world
        left = self._unit_jars(spec.scope, units)
        app.units = np.setdiff1d(app.units, units)
        app.jars = app.jars & ~left
        if not len(app.units):
            self._active.remove(app)
        spec.stop(world, units, app.params)
        if spec.name == "sensor_fault":
            # The fault of an earlier sensor_fault still covering these jars comes back.
            for other in self._active:
                if other.spec is spec and (overlap := other.jars & left).any():
                    spec.start(world, np.flatnonzero(overlap), other.params)
        self._emit_per_site(left, "scenario_cleared", scenario=spec.name, application=app.id, reason=reason,
                            source=app.source)
        self._refresh()
        return left

    def _expire(self, app: Application, duration_s: float):
        yield self.world.env.timeout(duration_s)
        yield self.world.env.timeout(0)  # after a tick due at this instant, which belongs to the scenario
        if app in self._active:
            self._end(app, app.units, reason="expired")

    def _end_ramp(self, app: Application, ramp_s: float):
        yield self.world.env.timeout(ramp_s)
        yield self.world.env.timeout(0)
        if app.drifting:
            app.drifting = False
            self._refresh()

    def _refresh(self) -> None:
        """Fold the causes of every active application into the world's cause arrays."""
        world = self.world
        mask = np.zeros(world.fleet.size, dtype=np.uint32)
        drift = np.zeros(world.fleet.size)
        causes = SiteCauses.normal(world.site_count)
        for app in self._active:
            mask[app.jars] |= np.uint32(1 << app.spec.bit)
            if app.spec.site_causes is not None:
                app.spec.site_causes(causes, app.units, app.params)
            if app.drifting and app.spec.resistance_drift is not None:
                drift[app.jars] += app.spec.resistance_drift(app.params)
        world.scenario_mask[:] = mask
        self._fold_jar_causes()
        self._drift(drift)

        was_cooling = world.hvac_capacity_fraction.copy()
        world.outdoor_offset_c[:] = causes.outdoor_offset_c
        world.hvac_capacity_fraction[:] = causes.hvac_capacity_fraction
        world.room_override_c[:] = causes.room_override_c
        for site in np.flatnonzero(was_cooling != causes.hvac_capacity_fraction):
            site = int(site)
            capacity_pct = round(float(causes.hvac_capacity_fraction[site]) * 100.0, 3)
            if was_cooling[site] == 1.0:
                world.emit("hvac_fault", site=site, capacity_pct=capacity_pct)
            elif causes.hvac_capacity_fraction[site] == 1.0:
                world.emit("hvac_restored", site=site, capacity_pct=capacity_pct)
            else:
                world.emit("hvac_capacity", site=site, capacity_pct=capacity_pct)

    def _fold_jar_causes(self) -> None:
        world, bank = self.world, self.world.bank
        causes = JarCauses.normal(world.fleet.size)
        for app in self._active:
            if app.spec.jar_causes is not None:
                app.spec.jar_causes(causes, app.jars, app.params)
        was = self._jar_causes
        if not any((getattr(causes, name) != getattr(was, name)).any() for name in causes.__dataclass_fields__):
            return
        world.catch_up()  # the physics up to now ran with the old causes
        bank.fade_multiplier = bank.fade_multiplier * (causes.fade_factor / was.fade_factor)
        bank.float_current_multiplier = bank.float_current_multiplier * (causes.float_current_factor
                                                                         / was.float_current_factor)
        bank.charge_cutoff_c = causes.charge_cutoff_c.copy()
        self._jar_causes = causes

    def _drift(self, drift_per_s: np.ndarray) -> None:
        """Drift resistances at ``drift_per_s`` (multiples of the new value per second), each up to the ceiling;
        a process stops a drift the instant it reaches it."""
        world = self.world
        room = MAX_RESISTANCE_MULTIPLIER - world.bank.resistance_multiplier
        drift_per_s = np.where(room > 1e-9, drift_per_s, 0.0)
        world.resistance_drift_per_s[:] = drift_per_s
        self._cap_watch += 1
        if drift_per_s.any():
            drifting = drift_per_s > 0
            world.env.process(self._stop_drift_at_ceiling(self._cap_watch, float((room[drifting] / drift_per_s[drifting]).min())))

    def _stop_drift_at_ceiling(self, generation: int, after_s: float):
        yield self.world.env.timeout(max(after_s, 0.0))
        if generation == self._cap_watch:
            bank = self.world.bank
            bank.resistance_multiplier = np.minimum(bank.resistance_multiplier, MAX_RESISTANCE_MULTIPLIER)
            self._refresh()

    def _emit_per_site(self, jars: np.ndarray, kind: str, **detail) -> None:
        """One event per site touched, naming the strings or jars when they are not the whole site."""
        fleet = self.world.fleet
        for site in np.flatnonzero(np.bincount(fleet.battery_site[jars], minlength=self.world.site_count)):
            site = int(site)
            in_site = jars & (fleet.battery_site == site)
            targets = self.targets.describe(in_site)
            string = battery = None
            if "strings" in targets and len(targets["strings"]) == 1 and len(targets) == 1:
                string = self.targets.string_index[targets["strings"][0]]
            if "batteries" in targets and len(targets["batteries"]) == 1 and len(targets) == 1:
                battery = self.targets.battery_index[targets["batteries"][0]]
            self.world.emit(kind, site=site, string=string, battery=battery, targets=targets,
                            jars=int(in_site.sum()), **detail)
