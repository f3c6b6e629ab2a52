import pytest

from battsim.engine.fleet import build_fleet, get_preset


@pytest.fixture
def single_string_fleet():
    return build_fleet(get_preset("single-string"), seed=7)
