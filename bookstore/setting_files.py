"""`NAME_FILE=path` for any setting NAME: its value is the file's content (one trailing newline
dropped), as Docker's and Kubernetes' secrets deliver it. A password then lives in a file only
its owner reads, not in the environment every child process inherits and `/proc` shows.

Given both NAME and NAME_FILE, the process refuses to start rather than guess which one counts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource


class SettingFileError(ValueError):
    """A NAME_FILE that cannot be used; the message names it (never the file's content)."""


class SettingFiles(PydanticBaseSettingsSource):
    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # all of it is read in __call__

    def __call__(self) -> dict[str, Any]:
        prefix = (self.config.get("env_prefix") or "").upper()
        values: dict[str, Any] = {}
        for field_name in self.settings_cls.model_fields:
            name = prefix + field_name.upper()
            path = os.environ.get(name + "_FILE", "")
            if not path:
                continue
            if os.environ.get(name, ""):
                raise SettingFileError(f"{name} and {name}_FILE are both set: keep one")
            try:
                text = Path(path).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as e:
                why = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
                raise SettingFileError(f"{name}_FILE={path!r}: {why}") from None
            values[field_name] = text.removesuffix("\n").removesuffix("\r")
        return values


def read_into_environment(*names: str) -> None:
    """Replace each NAME_FILE of the environment by NAME, the file's content: for a process
    that hands its children the setting as a value of its own (a namespace's store, another
    vhost's broker URL), where NAME and NAME_FILE side by side would be refused."""
    for name in names:
        if path := os.environ.pop(name + "_FILE", ""):
            os.environ[name] = Path(path).read_text(encoding="utf-8").removesuffix("\n")


def with_setting_files(
    cls: type[BaseSettings],
    settings_cls: type[BaseSettings],
    init_settings: PydanticBaseSettingsSource,
    env_settings: PydanticBaseSettingsSource,
    dotenv_settings: PydanticBaseSettingsSource,
    file_secret_settings: PydanticBaseSettingsSource,
) -> tuple[PydanticBaseSettingsSource, ...]:
    """The sources of a settings class, NAME_FILE among them: its `settings_customise_sources`
    (`settings_customise_sources = classmethod(with_setting_files)`)."""
    return (init_settings, env_settings, SettingFiles(settings_cls), dotenv_settings)
