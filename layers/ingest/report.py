"""What a load did: counts and every skipped or rejected feature with its reason."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class LoadReport:
    layer: str
    source: str
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    skipped: list[dict] = field(default_factory=list)
    warnings: list[dict] = field(default_factory=list)
    already_loaded: bool = False

    def skip(self, row: object, reason: str) -> None:
        self.skipped.append({"row": _plain(row), "reason": reason})

    def warn(self, row: object, reason: str) -> None:
        self.warnings.append({"row": _plain(row), "reason": reason})

    @property
    def loaded(self) -> int:
        return self.inserted + self.updated + self.unchanged

    def to_json(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        if self.already_loaded:
            return f"{self.layer:<14} {self.source}: already loaded, nothing changed"
        head = (f"{self.layer:<14} {self.source}: {self.inserted} loaded, {self.updated} updated, "
                f"{self.unchanged} unchanged, {len(self.skipped)} skipped")
        if self.deleted:
            head += f", {self.deleted} removed"
        lines = [head]
        for item in self.skipped[:20]:
            lines.append(f"    skipped {item['row']}: {item['reason']}")
        if len(self.skipped) > 20:
            lines.append(f"    ... and {len(self.skipped) - 20} more skipped")
        for item in self.warnings[:10]:
            lines.append(f"    warning {item['row']}: {item['reason']}")
        if len(self.warnings) > 10:
            lines.append(f"    ... and {len(self.warnings) - 10} more warnings")
        return "\n".join(lines)


def _plain(value: object) -> object:
    """Row labels from pandas/numpy become plain JSON values."""
    if hasattr(value, "item"):
        return value.item()
    return value if isinstance(value, (int, float, str)) or value is None else str(value)
