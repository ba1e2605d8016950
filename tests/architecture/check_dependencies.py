#!/usr/bin/env python3
"""Fails when an #include runs against the dependency direction of
docs/architecture.md: every room may include its own headers and those of
the rooms listed for it below, nothing else of ours."""
import pathlib
import re
import sys

ROOT = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()

# room -> its folder (relative to the root)
ROOMS = {
    "transport": "transport",
    "storage": "storage",
    "actors": "actors",
    "security": "security",
    "observability": "observability",
    "log": "observability/log",
    "allocator": "runtime/allocator",
    "scheduler": "runtime/scheduler",
    "supervision": "runtime/supervision",
    "config": "runtime/config",
    "core": "runtime/core",
    "net": "runtime/net",
    "isolation": "runtime/isolation",
    "admin": "runtime/admin",
    "gateway": "gateway",
    "cluster": "cluster",
    "node": "runtime/node",
    "testing": "testing",
    "plugins": "plugins",
    "examples": "examples/services",
    "shop": "shop",
    "shop_app": "shop/app",
    "cli": "cli",
}

# room -> the rooms it may include (directly; keep in step with the CMakeLists)
ALLOWED = {
    "log": set(),
    "transport": {"log"},
    "storage": {"transport", "log"},
    "actors": {"transport"},
    "supervision": {"transport"},
    "scheduler": set(),
    "allocator": set(),
    "security": {"transport", "log"},
    "observability": {"transport", "log"},
    "config": {"supervision", "security", "storage", "actors", "observability", "log", "transport"},
    "core": {"config", "supervision", "storage", "actors", "observability", "log", "transport"},
    "net": {"core", "config", "security", "observability", "log", "transport"},
    "isolation": {"core", "config", "supervision", "log", "transport"},
    "admin": {"core", "storage", "observability", "log", "transport", "allocator"},
    "gateway": {"core", "config", "security", "observability", "log", "transport"},
    "cluster": {"core", "config", "storage", "log", "transport"},
    "node": {"scheduler", "net", "isolation", "admin", "gateway", "cluster", "core", "config", "security", "observability", "log", "supervision", "storage", "actors", "transport"},
    "testing": {"node", "actors", "config", "transport"},
    "plugins": {"actors", "config", "transport"},
    "examples": {"actors", "config", "transport"},
    "shop": {"actors", "transport"},
    "shop_app": {"shop", "node", "config", "security", "actors", "transport", "storage", "supervision", "core"},
    "cli": set(ROOMS),
}


# Headers CMake generates into the build tree (cmake/*.in): below every room.
GENERATED = {"cohort/version.hpp"}


def room_of(path: pathlib.Path) -> str:
    rel = path.relative_to(ROOT).as_posix()
    best = None
    for room, folder in ROOMS.items():
        if rel.startswith(folder + "/") and (best is None or len(folder) > len(ROOMS[best])):
            best = room
    return best


# Every header of ours, by the name it is included as.
header_room = {}
for room, folder in ROOMS.items():
    for h in (ROOT / folder).rglob("include/cohort/**/*.hpp"):
        if room_of(h) != room:
            continue
        name = h.as_posix().split("/include/", 1)[1]
        header_room[name] = room

include = re.compile(r'^\s*#\s*include\s+"(cohort/[^"]+)"', re.M)
problems = []
for room, folder in ROOMS.items():
    for f in sorted((ROOT / folder).rglob("*")):
        if f.suffix not in (".cpp", ".hpp") or room_of(f) != room:
            continue
        for name in include.findall(f.read_text(errors="replace")):
            target = header_room.get(name)
            if name in GENERATED:
                continue
            if target is None:
                problems.append(f"{f.relative_to(ROOT)}: includes {name}, which no room provides")
            elif target != room and target not in ALLOWED[room]:
                problems.append(f"{f.relative_to(ROOT)} ({room}) includes {name} ({target}): not allowed")

if len(header_room) < 20:
    problems.append(f"only {len(header_room)} headers found under {ROOT}: wrong root?")
for p in problems:
    print(p)
print(f"{len(header_room)} headers in {len(ROOMS)} rooms checked; {len(problems)} problem(s)")
sys.exit(1 if problems else 0)
