#!/usr/bin/env python3
"""Fails on a duplicate mapping key in any YAML file the repository ships.

YAML says keys are unique, but most loaders (PyYAML, Go's yaml.v2 in Envoy and Helm,
serde_norway) keep the last of two equal keys without a word, so the first one silently
stops meaning anything (an Envoy access-log field was written twice that way). This
loader refuses them, and every file must also parse.

Usage: check_yaml.py [FILE...]   (default: every tracked *.yaml / *.yml except the Helm
templates, which are Go templates; check-chart.py checks what they render with the same
loader)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


class DuplicateKeyError(yaml.MarkedYAMLError):
    pass


class UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a mapping with two equal keys."""

    def construct_mapping(self, node, deep=False):
        seen: dict[object, yaml.Mark] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                continue
            if key in seen:
                first = seen[key]
                raise DuplicateKeyError(
                    f"while constructing a mapping (first `{key}` at line {first.line + 1})",
                    node.start_mark,
                    f"duplicate key `{key}`",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep)


UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, UniqueKeyLoader.construct_mapping
)


def load_all(text: str) -> list:
    """Every document of `text`, refusing duplicate keys."""
    return list(yaml.load_all(text, Loader=UniqueKeyLoader))


def shipped_files() -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", "-z", "--", "*.yaml", "*.yml"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode()
    return [
        ROOT / p for p in out.split("\0")
        if p and not p.startswith("helm/cedar-gate/templates/")
    ]


def main(argv: list[str]) -> int:
    files = [Path(a) for a in argv] or shipped_files()
    bad = 0
    for path in files:
        try:
            load_all(path.read_text())
        except yaml.YAMLError as err:
            bad += 1
            print(f"{path.relative_to(ROOT) if path.is_absolute() else path}: {err}", file=sys.stderr)
    print(f"check_yaml: {len(files)} files, {bad} with errors")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
