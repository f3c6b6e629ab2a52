"""What the simulated world is made of: sites, strings of jars, and the jars themselves.

A fleet is described by a :class:`FleetSpec` (a preset or a TOML file) and expanded by
:func:`build_fleet` into flat tables of sites, strings and batteries with stable, readable ids
(``BKK_DC1_SYS01_STR01_BAT001``) and per-jar random draws (profile, manufacturing spread, age,
ageing rates and knee, the air beside it in the rack) taken from each jar's own random streams, so a
jar is the same whatever fleet it is part of.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from battsim.engine import ageing, rack
from battsim.engine.battery import PROFILE_FADE_MULTIPLIER, PROFILE_NAMES, PROFILE_RESISTANCE_RISE
from battsim.engine.models import (
    BUILT_IN_MODELS,
    BatteryModel,
    ModelFileError,
    describe_validation_error,
    read_toml,
)


class FleetFileError(ValueError):
    """A fleet file that cannot be used; the message names the file and the key."""


class ClimateSpec(BaseModel):
    """Outdoor climate of a site relative to Bangkok's monthly normals."""

    model_config = ConfigDict(extra="forbid")
    offset_c: float = Field(default=0.0, ge=-20, le=20, description="Added to Bangkok's monthly mean, °C.")
    seasonal_scale: float = Field(default=1.0, ge=0, le=5, description="Scales the seasonal swing.")
    diurnal_range_c: float = Field(default=8.0, ge=0, le=30, description="Daily max minus min, °C.")


class JarSpec(BaseModel):
    """A named jar on its own single-jar string: how the original service listed its batteries."""

    model_config = ConfigDict(extra="forbid")
    # Any printable text, as the original service took (spaces, dots, long names); control characters never.
    battery_id: str = Field(pattern=r"^[^\x00-\x1f\x7f]{1,100}$")
    profile: Literal["healthy", "accelerated", "failing"] | None = Field(
        default=None, description="Degradation profile; default drawn from the fleet's profile_mix."
    )
    initial_soh_pct: float | None = Field(
        default=None, gt=0, le=100, description="State of health at the start, %; default from the jar's age."
    )


class SiteSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    site_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,40}$")
    name: str = ""
    longitude_deg: float = Field(default=100.5, ge=-180, le=180, description="Sets solar time of the daily cycle.")
    timezone: str = "Asia/Bangkok"
    climate: ClimateSpec = ClimateSpec()
    strings: int = Field(default=1, ge=1, le=100, description="Strings of jars at the site.")
    jars_per_string: int = Field(default=24, ge=1, le=400)
    model: str = Field(default="CSB HX12-120", description="Battery model of every jar at the site.")
    load_kw_per_string: float = Field(default=8.0, gt=0, le=10_000, description="UPS load a string carries.")
    room_setpoint_c: float = Field(default=24.0, ge=10, le=40)
    outages_per_year: float = Field(default=4.0, ge=0, le=365, description="Regional grid-outage rate.")
    # The monitor (engine/monitoring.py): manuals schedule the ohmic test daily to monthly, at a quiet hour.
    ohmic_test_every_days: int = Field(default=1, ge=1, le=365, description="Days between the monitor's ohmic "
                                       "tests of the site's strings (run on float only).")
    ohmic_test_local_hour: int = Field(default=3, ge=0, le=23, description="Local hour of the ohmic test.")
    comm_gaps_per_module_year: float = Field(default=6.0, ge=0, le=10_000, description="How often a monitor "
                                             "module (4 jars) stops answering, per module per year.")
    comm_gap_mean_minutes: float = Field(default=30.0, gt=0, le=10_080, description="Mean length of a gap, min.")
    jars: list[JarSpec] = Field(
        default_factory=list, max_length=1000,
        description="Named jars, each on its own string; when given, replaces strings × jars_per_string.",
    )

    @field_validator("timezone")
    @classmethod
    def _timezone_known(cls, timezone: str) -> str:
        # Checked here, not when the world starts, so a bad zone is refused before anything is written.
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{timezone!r} is not an IANA time zone (e.g. Asia/Bangkok, Europe/London, UTC)") from None
        return timezone


# Most sites one fleet may describe (a template's count included): 200,000 sites of 4-jar strings is
# well past a national operator's, and the parent of a sharded run holds every SiteSpec.
MAX_SITES = 200_000


class SiteTemplate(SiteSpec):
    """``count`` sites alike but for their ids, ``{id_prefix}{n}`` (n from 1, zero-padded to count's width)."""

    site_id: str = Field(default="", max_length=0, description="Not given: each site's id is id_prefix + its number.")
    id_prefix: str = Field(pattern=r"^[A-Za-z0-9_-]{1,30}$", description="Start of each site's id, e.g. 'BTS-'.")
    count: int = Field(ge=1, le=MAX_SITES, description="How many sites the template stands for.")
    jars: list[JarSpec] = Field(default_factory=list, max_length=0, description="Not for templates (ids are per jar).")

    def expand(self) -> list[SiteSpec]:
        # Validated once, as the template; its sites share its values (nothing changes a spec once read).
        fields = {name: getattr(self, name) for name in SiteSpec.model_fields if name not in ("site_id", "jars")}
        width = len(str(self.count))
        return [SiteSpec.model_construct(site_id=f"{self.id_prefix}{n:0{width}d}", jars=[], **fields)
                for n in range(1, self.count + 1)]


class FleetSpec(BaseModel):
    """A whole fleet: sites (each with its strings) plus any custom battery models.

    ``site_templates`` stand for many like sites each (:class:`SiteTemplate`); they are expanded into
    ``sites`` (after the listed ones) when the spec is read, so everything downstream sees sites only.
    """

    model_config = ConfigDict(extra="forbid")
    name: str = "custom"
    description: str = ""
    sites: list[SiteSpec] = Field(default_factory=list)
    site_templates: list[SiteTemplate] = Field(default_factory=list, description="Sites as templates × counts.")
    profile_mix: tuple[float, float, float] = Field(
        default=(0.85, 0.12, 0.03), description="Share of healthy, accelerated and failing jars."
    )
    capacity_spread_pct: float = Field(default=3.0, ge=0, le=30, description="1 σ manufacturing spread.")
    resistance_spread_pct: float = Field(default=5.0, ge=0, le=30, description="1 σ manufacturing spread.")
    max_initial_age_years: float = Field(default=0.0, ge=0, le=30, description="Jars installed up to this long ago.")
    models: list[BatteryModel] = Field(default_factory=list, description="Custom battery models.")

    @property
    def jar_count(self) -> int:
        """Jars the fleet will have, from the spec alone (without building it)."""
        return sum(len(site.jars) or site.strings * site.jars_per_string for site in self.sites)

    @field_validator("profile_mix")
    @classmethod
    def _mix_sums_to_one(cls, mix):
        if any(share < 0 for share in mix) or abs(sum(mix) - 1.0) > 1e-6:
            raise ValueError("profile_mix must be three non-negative shares that sum to 1")
        return mix

    @model_validator(mode="after")
    def _templates_expanded(self):
        # A validator may not reassign fields through __setattr__ hooks here; the lists are replaced in place.
        if self.site_templates:
            total = len(self.sites) + sum(template.count for template in self.site_templates)
            if total > MAX_SITES:
                raise ValueError(f"site_templates: {total:,} sites in all; a fleet has at most {MAX_SITES:,}")
            expanded = [site for template in self.site_templates for site in template.expand()]
            self.sites.extend(expanded)
            self.site_templates.clear()
        if not self.sites:
            raise ValueError("sites: give at least one site (or [[site_templates]] with a count)")
        if len(self.sites) > MAX_SITES:
            raise ValueError(f"sites: {len(self.sites):,} sites; a fleet has at most {MAX_SITES:,}")
        return self

    @model_validator(mode="after")
    def _ids_unique_and_models_known(self):
        seen, named_jars = set(), set()
        known = set(BUILT_IN_MODELS) | {model.name for model in self.models}
        for index, site in enumerate(self.sites):
            if site.site_id in seen:
                raise ValueError(f"sites[{index}].site_id {site.site_id!r} is used twice")
            seen.add(site.site_id)
            if site.model not in known:
                raise ValueError(f"sites[{index}].model {site.model!r} is unknown; known: {', '.join(sorted(known))}")
            for jar_index, jar in enumerate(site.jars):
                if jar.battery_id in named_jars:
                    raise ValueError(f"sites[{index}].jars[{jar_index}].battery_id {jar.battery_id!r} is used twice")
                named_jars.add(jar.battery_id)
        return self

    def model_named(self, name: str) -> BatteryModel:
        custom = {model.name: model for model in self.models}
        return custom.get(name) or BUILT_IN_MODELS[name]


# The nine Thai data-centre sites (vrla-facts.md). Climate offsets from Thai Meteorological
# Department normals: the north has a larger seasonal swing and cool nights, the south is milder.
THAI_SITES = (
    # (site id, longitude °E, name, climate, grid outages a year)
    ("CNX_DC1", 98.98, "Chiang Mai", ClimateSpec(offset_c=-1.5, seasonal_scale=2.2, diurnal_range_c=12.0), 2.0),
    ("KKC_DC1", 102.83, "Khon Kaen", ClimateSpec(offset_c=-0.5, seasonal_scale=1.8, diurnal_range_c=10.0), 4.0),
    ("NBI_DC1", 100.51, "Nonthaburi", ClimateSpec(offset_c=0.0, seasonal_scale=1.0, diurnal_range_c=8.0), 3.0),
    ("BKK_DC1", 100.52, "Bangkok (Bangrak)", ClimateSpec(offset_c=0.3, seasonal_scale=1.0, diurnal_range_c=7.0), 2.0),
    ("BKK_DC2", 100.6, "Bangkok (Phra Khanong)", ClimateSpec(offset_c=0.2, seasonal_scale=1.0, diurnal_range_c=7.5), 2.0),
    ("SRC_DC1", 100.93, "Sriracha", ClimateSpec(offset_c=-0.2, seasonal_scale=0.7, diurnal_range_c=7.0), 4.0),
    ("URT_DC1", 99.33, "Surat Thani", ClimateSpec(offset_c=-0.8, seasonal_scale=0.5, diurnal_range_c=8.0), 6.0),
    ("HKT_DC1", 98.39, "Phuket", ClimateSpec(offset_c=-0.6, seasonal_scale=0.4, diurnal_range_c=6.0), 8.0),
    ("HDY_DC1", 100.47, "Hat Yai", ClimateSpec(offset_c=-0.7, seasonal_scale=0.4, diurnal_range_c=7.0), 6.0),
)


def _thai_fleet(name: str, description: str, strings: int, sites=THAI_SITES) -> FleetSpec:
    return FleetSpec(
        name=name,
        description=description,
        max_initial_age_years=3.0,
        sites=[
            SiteSpec(
                site_id=site_id,
                name=site_name,
                longitude_deg=longitude,
                climate=climate,
                strings=strings,
                model="CSB HX12-120" if index % 2 == 0 else "GS GPL12-100",
                outages_per_year=outages,
            )
            for index, (site_id, longitude, site_name, climate, outages) in enumerate(sites)
        ],
    )


class _Presets(Mapping[str, FleetSpec]):
    """The presets by name, each made on first use: national-telecom's 2,000 sites take 0.1 s, which every
    ``battsim`` command and worker process would otherwise pay at start-up."""

    def __init__(self, makers: dict[str, Callable[[], FleetSpec]]):
        self._makers = makers
        self._made: dict[str, FleetSpec] = {}

    def __getitem__(self, name: str) -> FleetSpec:
        if name not in self._made:
            self._made[name] = self._makers[name]()
        return self._made[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._makers)

    def __len__(self) -> int:
        return len(self._makers)


PRESETS: Mapping[str, FleetSpec] = _Presets({
    "thailand-9x24": lambda: _thai_fleet("thailand-9x24", "The 9 Thai sites, one string of 24 jars each (216 jars).", 1),
    "thailand-full": lambda: _thai_fleet(
        "thailand-full", "9 Thai sites × 9 strings × 24 jars (1,944 jars), fleet mix 85/12/3 %.", 9
    ),
    "single-string": lambda: _thai_fleet("single-string", "One Bangkok site, one string of 24 jars.", 1, THAI_SITES[3:4]),
    "national-telecom": lambda: national_telecom(),
})


def get_preset(name: str) -> FleetSpec:
    try:
        return PRESETS[name]
    except KeyError:
        raise FleetFileError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}") from None


def load_fleet_file(path: str | Path) -> FleetSpec:
    """Read a fleet from TOML: top-level keys of :class:`FleetSpec`, ``[[sites]]`` and ``[[models]]``."""
    path = Path(path)
    try:
        data = read_toml(path)
    except ModelFileError as error:
        raise FleetFileError(str(error)) from None
    try:
        return FleetSpec.model_validate(data)
    except ValidationError as error:
        raise FleetFileError(describe_validation_error(error, str(path))) from None


# --------------------------------------------------------------------------------------------
def stable_key(text: str) -> int:
    """A 64-bit integer from an id, the same in every process and Python version (unlike hash())."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def entity_rng(seed: int, entity_id: str, purpose: str) -> np.random.Generator:
    """The random stream of one entity (site, jar) for one purpose, independent of all others."""
    sequence = np.random.SeedSequence(entropy=seed, spawn_key=(stable_key(entity_id), stable_key(purpose)))
    return np.random.default_rng(sequence)


@dataclass(frozen=True)
class FleetLayout:
    """Which jars make up a fleet, in order, with no random draw: the ids and where each jar sits.
    Jars of a string and strings of a site are contiguous. Cheap to build for any fleet size, so a
    timeline's targets can be checked against a million jars without expanding them."""

    site_ids: list[str]
    string_ids: list[str]
    string_site: np.ndarray  # site index of each string
    battery_ids: list[str]
    battery_string: np.ndarray  # string index of each jar
    battery_site: np.ndarray  # site index of each jar
    battery_position: np.ndarray  # 1-based position of the jar in its string

    @property
    def size(self) -> int:
        return len(self.battery_ids)

    def site_slices(self) -> list[slice]:
        """The jars of each site, in site order (a site's jars are contiguous)."""
        bounds = np.append(np.flatnonzero(np.diff(self.battery_site, prepend=-1)), self.size)
        return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


@dataclass(frozen=True)
class Fleet(FleetLayout):
    """A fleet expanded into flat, ordered tables: its layout and each jar's model and random draws."""

    spec: FleetSpec
    models: list[BatteryModel]
    battery_model: np.ndarray  # index into ``models``
    profile: np.ndarray
    capacity_spread: np.ndarray
    resistance_spread: np.ndarray
    initial_age_years: np.ndarray
    initial_soh_pct: np.ndarray
    ageing: ageing.AgeingPopulation  # each jar's fade rate, knee and resistance coupling (engine/ageing.py)
    rack_offset_c: np.ndarray  # air beside each jar minus the room's, by its place in the rack, K

    def site(self, index: int) -> SiteSpec:
        return self.spec.sites[index]


def _string_counts(site: SiteSpec) -> tuple[int, int]:
    """(strings, jars per string) of a site; a site listing its jars has one jar per string."""
    return (len(site.jars), 1) if site.jars else (site.strings, site.jars_per_string)


def fleet_layout(spec: FleetSpec) -> FleetLayout:
    """The ids and places of a spec's jars (``BKK_DC1_SYS01_STR01_BAT001``), without expanding their draws."""
    site_ids, string_ids, string_site = [], [], []
    battery_ids, battery_string, battery_site, battery_position = [], [], [], []
    for site_index, site in enumerate(spec.sites):
        site_ids.append(site.site_id)
        strings, jars_per_string = _string_counts(site)
        for string_number in range(1, strings + 1):
            string_id = f"{site.site_id}_SYS01_STR{string_number:02d}"
            string_site.append(site_index)
            for position in range(1, jars_per_string + 1):
                battery_ids.append(site.jars[string_number - 1].battery_id if site.jars
                                   else f"{string_id}_BAT{position:03d}")
                battery_string.append(len(string_ids))
                battery_site.append(site_index)
                battery_position.append(position)
            string_ids.append(string_id)
    return FleetLayout(
        site_ids=site_ids,
        string_ids=string_ids,
        string_site=np.array(string_site, dtype=np.int32),
        battery_ids=battery_ids,
        battery_string=np.array(battery_string, dtype=np.int32),
        battery_site=np.array(battery_site, dtype=np.int32),
        battery_position=np.array(battery_position, dtype=np.int32),
    )


def build_fleet(spec: FleetSpec, seed: int) -> Fleet:
    """Expand a spec into jars; every random draw of a jar comes from that jar's own stream."""
    layout = fleet_layout(spec)
    model_names = sorted({site.model for site in spec.sites})
    models = [spec.model_named(name) for name in model_names]
    battery_model, draws, named = [], [], []  # named: (profile index or -1, initial SOH or NaN) given by JarSpecs
    ageing_normals, rack_offset_c = [], []
    for site, jars in zip(spec.sites, layout.site_slices()):
        strings, jars_in_string = _string_counts(site)
        site_rack_offset_c = rack.jar_ambient_offset_c(np.arange(1, jars_in_string + 1), jars_in_string)
        for battery_id, position, string_number in zip(
                layout.battery_ids[jars], layout.battery_position[jars].tolist(),
                (layout.battery_string[jars] - layout.battery_string[jars.start] + 1).tolist()):
            jar = site.jars[string_number - 1] if site.jars else None
            named.append((PROFILE_NAMES.index(jar.profile) if jar and jar.profile else -1,
                          jar.initial_soh_pct if jar and jar.initial_soh_pct is not None else np.nan))
            battery_model.append(model_names.index(site.model))
            rng = entity_rng(seed, battery_id, "manufacture")
            draws.append((rng.random(), *rng.standard_normal(2), rng.random()))
            ageing_normals.append(entity_rng(seed, battery_id, "ageing").standard_normal(ageing.NORMALS_PER_JAR))
            # A jar alone on its string (the original service's) has no rack neighbours: the room's air.
            local_c = 0.0
            if jars_in_string > 1:
                local_c = rack.local_offset_c(entity_rng(seed, battery_id, "rack").standard_normal())
            rack_offset_c.append(site_rack_offset_c[position - 1] + local_c)
    profile_draw, capacity_z, resistance_z, age_draw = np.array(draws, dtype=np.float64).T
    healthy_share, accelerated_share, _ = spec.profile_mix
    profile = np.where(
        profile_draw < healthy_share, 0, np.where(profile_draw < healthy_share + accelerated_share, 1, 2)
    ).astype(np.int8)
    named_profile, named_soh_pct = np.array(named, dtype=np.float64).reshape(-1, 2).T
    profile = np.where(named_profile >= 0, named_profile, profile).astype(np.int8)
    design_life_years = np.array([models[m].design_life_years for m in battery_model])
    population = ageing.population_from_normals(
        np.array(ageing_normals), PROFILE_FADE_MULTIPLIER[profile], PROFILE_RESISTANCE_RISE[profile])
    # Jars still in service: a jar that would have passed end of life by now was replaced, so a
    # faster-ageing jar is younger (at most 90 % of its life to end of life).
    years_to_end_of_life = design_life_years / population.fade_rate_multiplier
    initial_age_years = age_draw * np.minimum(spec.max_initial_age_years, 0.9 * years_to_end_of_life)
    return Fleet(
        **vars(layout),
        spec=spec,
        models=models,
        battery_model=np.array(battery_model, dtype=np.int32),
        profile=profile,
        capacity_spread=np.clip(1.0 + spec.capacity_spread_pct / 100.0 * capacity_z, 0.8, 1.2),
        resistance_spread=np.clip(1.0 + spec.resistance_spread_pct / 100.0 * resistance_z, 0.7, 1.3),
        initial_age_years=initial_age_years,
        initial_soh_pct=np.where(np.isnan(named_soh_pct),
                                 initial_soh_pct(initial_age_years, design_life_years, population), named_soh_pct),
        ageing=population,
        rack_offset_c=np.array(rack_offset_c, dtype=np.float64),
    )


def initial_soh_pct(age_years: np.ndarray, design_life_years: np.ndarray,
                    population: ageing.AgeingPopulation) -> np.ndarray:
    """State of health of jars that have aged ``age_years`` on float at 25 °C, each at its own fade
    rate along its own trajectory (engine/ageing.py)."""
    linear_fade_pct = ageing.LIFE_POINTS * age_years / design_life_years * population.fade_rate_multiplier
    return np.clip(ageing.soh_after_fade_pct(100.0, linear_fade_pct, population.knee_soh_pct), 60.0, 100.0)


# ---------------------------------------------------------------------------------- national-telecom
# A procedural fleet of a national telecom operator's 48 V DC plants across Thailand's regions.
# Regions: (site-id prefix, longitude °E, climate, grid outages a year). Rural grids fail more often
# than Bangkok's (vrla-facts.md: 2-8 a year by region); the climates are THAI_SITES' by region.
TELECOM_REGIONS = (
    ("N", 99.0, ClimateSpec(offset_c=-1.5, seasonal_scale=2.2, diurnal_range_c=12.0), 6.0),
    ("NE", 102.8, ClimateSpec(offset_c=-0.5, seasonal_scale=1.8, diurnal_range_c=10.0), 8.0),
    ("C", 100.5, ClimateSpec(offset_c=0.0, seasonal_scale=1.0, diurnal_range_c=8.0), 4.0),
    ("BKK", 100.55, ClimateSpec(offset_c=0.3, seasonal_scale=1.0, diurnal_range_c=7.0), 2.0),
    ("E", 100.9, ClimateSpec(offset_c=-0.2, seasonal_scale=0.7, diurnal_range_c=7.0), 4.0),
    ("S", 99.3, ClimateSpec(offset_c=-0.7, seasonal_scale=0.45, diurnal_range_c=7.0), 7.0),
)
# A 2 V 500 Ah AGM cell, 24 of which make a 48 V string: 0.22 mΩ (vrla-facts.md, 2 V cells); 15 years'
# design life, the middle of the 12-20 years 2 V telecom cells are sold with; discharge constants those of
# the USF12-100A per Ah (the defaults), as no 2 V table is in the reference data.
TELECOM_CELL = BatteryModel(name="Telecom 2V-500 AGM cell", cells=1, capacity_ah_c10=500.0,
                            internal_resistance_mohm=0.22, design_life_years=15.0)
# The mix of 48 V plants, by share of sites: (kind, share, strings, jars a string, model, kW a string,
# room setpoint °C). A cell site runs two strings of four 12 V blocks in an outdoor cabinet kept warmer
# (27 °C) to save cooling; a hub four; an exchange two strings of 24 2 V cells in a cooled room. Loads
# give the autonomy such plants are built for: about 4 h at a cell site (1 kW on 48 V × 100 Ah),
# 6-8 h at an exchange (3 kW on 48 V × 500 Ah).
TELECOM_PLANTS = (
    ("cell", 0.80, 2, 4, "GS GPL12-100", 1.0, 27.0),
    ("hub", 0.15, 4, 4, "CSB HX12-120", 1.5, 25.0),
    ("exchange", 0.05, 2, 24, TELECOM_CELL.name, 3.0, 24.0),
)
NATIONAL_TELECOM_SITES = 2_000


def _telecom_site(number: int) -> SiteSpec:
    """Site ``number`` of the national-telecom fleet: its region and plant follow from its number alone
    (a stable hash), so the first N sites are the same whatever N the fleet is scaled to."""
    draw = stable_key(f"national-telecom:{number}")
    prefix, longitude, climate, outages = TELECOM_REGIONS[draw % len(TELECOM_REGIONS)]
    share, plant = (draw >> 8) % 1000 / 1000.0, TELECOM_PLANTS[-1]
    for candidate in TELECOM_PLANTS:
        if share < candidate[1]:
            plant = candidate
            break
        share -= candidate[1]
    kind, _, strings, jars_per_string, model, load_kw, setpoint_c = plant
    return SiteSpec.model_construct(
        site_id=f"{prefix}-{kind[:2].upper()}{number:06d}", name=f"{kind} {number}", timezone="Asia/Bangkok",
        longitude_deg=longitude + ((draw >> 20) % 100 - 50) / 100.0, climate=climate, strings=strings,
        jars_per_string=jars_per_string, model=model, load_kw_per_string=load_kw, room_setpoint_c=setpoint_c,
        outages_per_year=outages, ohmic_test_every_days=7, ohmic_test_local_hour=3, comm_gaps_per_module_year=6.0,
        comm_gap_mean_minutes=30.0, jars=[])


def national_telecom(sites: int = NATIONAL_TELECOM_SITES) -> FleetSpec:
    """The ``national-telecom`` preset with ``sites`` sites (about 11 jars a site on average)."""
    if not 1 <= sites <= MAX_SITES:
        raise FleetFileError(f"sites must be 1-{MAX_SITES:,}, not {sites:,}")
    return FleetSpec(
        name="national-telecom",
        description=f"{sites:,} 48 V telecom plants across 6 Thai regions: 80 % cell sites (2 × 4 12 V blocks), "
                    "15 % hubs (4 × 4), 5 % exchanges (2 × 24 2 V cells).",
        max_initial_age_years=5.0,
        models=[TELECOM_CELL],
        sites=[_telecom_site(number) for number in range(1, sites + 1)],
    )


# Presets made by a function of the number of sites: --sites N makes them with N sites.
PROCEDURAL_PRESETS = {"national-telecom": national_telecom}


def with_sites(spec: FleetSpec, sites: int) -> FleetSpec:
    """``spec`` scaled to ``sites`` sites: a procedural preset made with that many; any other fleet its own
    sites repeated in order (the k-th repeat's ids suffixed ``-k``, from 2), or its first ``sites``."""
    if not 1 <= sites <= MAX_SITES:
        raise FleetFileError(f"sites must be 1-{MAX_SITES:,}, not {sites:,}")
    if spec.name in PROCEDURAL_PRESETS and spec == PRESETS.get(spec.name):
        return PROCEDURAL_PRESETS[spec.name](sites)
    base = spec.sites
    if any(site.jars for site in base) and sites > len(base):
        raise FleetFileError("sites: a fleet with named jars ([[sites.jars]]) cannot be repeated (jar ids are unique)")
    scaled = [base[i % len(base)] if i < len(base) else
              base[i % len(base)].model_copy(update={"site_id": f"{base[i % len(base)].site_id}-{i // len(base) + 1}"})
              for i in range(sites)]
    return spec.model_copy(update={"sites": scaled})
