"""Typed settings generated from the option table: types, defaults, replace, origins."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from ksi.errors import Exit, KsiError
from ksi.settings import BY_NAME, OPTIONS, PortRange, Settings, load


def test_fields_are_the_option_table_with_real_types() -> None:
    fields = {f.name: f for f in dataclasses.fields(Settings) if f.name != "origins"}
    types = typing.get_type_hints(Settings)
    assert list(fields) == [o.name for o in OPTIONS]
    for o in OPTIONS:
        assert types[o.name] is o.kind
        assert fields[o.name].default == o.default
        assert isinstance(o.default, o.kind) and o.help
    assert types["port_range"] is PortRange and types["create_retries"] is int
    assert BY_NAME["gpus"].choices == ("auto", "none", "required")


def test_defaults_are_frozen_and_say_default() -> None:
    s = Settings.defaults()
    assert s.provider == "nerdctl" and s.gpus == "auto" and s.port_range == (30000, 32767)
    assert s.port_range() == (30000, 32767) and str(s.api_port_range) == "41000-41999"
    assert set(s.origins.values()) == {"default"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.provider = "podman"  # type: ignore[misc]


def test_replace_converts_validates_and_records_origin() -> None:
    s = Settings.defaults().replace(create_retries="4", port_range="30000-30009",
                                    systemd_scope="yes")
    assert s.create_retries == 4 and s.port_range == PortRange(30000, 30009)
    assert s.systemd_scope is True and s.origins["create_retries"] == "replace"
    assert Settings.defaults().create_retries == BY_NAME["create_retries"].default
    for bad in ({"gpus": "all"}, {"port_range": "9-1"}, {"bogus": 1}, {"ready_timeout": True}):
        with pytest.raises(KsiError) as exc:
            Settings.defaults().replace(**bad)
        assert exc.value.code == Exit.CONFIG_INVALID


def test_table_writes_values_as_config_files_do(tmp_path) -> None:
    s = load({"port_range": "31000-31999"}, {"KSI_SITE_CONFIG": str(tmp_path / "none"),
                                             "KSI_USER_CONFIG": str(tmp_path / "none")})
    rows = {n: (v, o) for n, v, o in s.table()}
    assert rows["port_range"] == ("31000-31999", "flag --port-range")
    assert rows["api_port_range"] == ("41000-41999", "default")
    assert s == Settings.defaults().replace(port_range="31000-31999")  # origins not compared
