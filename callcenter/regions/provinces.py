"""Province data files: parsing and validation (pure, no database)."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

DATA_DIR = Path(__file__).resolve().parent / "data"
_CODE = r"^\d{6}$"


class ProvinceDataError(Exception):
    """A province data file is missing or invalid; the message names the file and the field."""


class RegionEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    code: str = Field(pattern=_CODE)
    name: str = Field(min_length=1, max_length=64)
    name_en: str | None = Field(default=None, max_length=64)
    area_code: str | None = Field(default=None, pattern=r"^0\d{2,3}$")


class QueueEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")
    display_name: str = Field(min_length=1, max_length=64)


class ProvincialQueues(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    provincial: QueueEntry
    duty: QueueEntry


class ProvinceData(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    province: RegionEntry
    cities: list[RegionEntry] = Field(min_length=1)
    queues: ProvincialQueues

    @model_validator(mode="after")
    def _consistent(self) -> ProvinceData:
        prefix = self.province.code[:2]
        if not self.province.code.endswith("0000"):
            raise ValueError(f"province code {self.province.code} must end in 0000")
        seen: set[str] = set()
        for city in self.cities:
            if not city.code.startswith(prefix) or not city.code.endswith("00"):
                raise ValueError(f"city {city.name} code {city.code} is not a city of {prefix}0000")
            if city.code in seen:
                raise ValueError(f"city code {city.code} appears twice")
            if city.area_code is None:
                raise ValueError(f"city {city.name} has no area_code")
            seen.add(city.code)
        return self

    def city_queue_name(self, city_code: str) -> str:
        return f"city-{city_code}"


def province_file(code: str) -> Path:
    return DATA_DIR / f"{code}.yaml"


def load_province(path: Path) -> ProvinceData:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProvinceDataError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ProvinceDataError(f"{path}: not valid YAML: {exc}") from None
    try:
        return ProvinceData.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = str(err["msg"]).removeprefix("Value error, ")
        raise ProvinceDataError(f"{path}: {where}: {msg}") from None
