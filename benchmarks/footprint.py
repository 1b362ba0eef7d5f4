"""What installing Tiny Diffusion costs: packages, disk, and the time `tiny-diffusion --help` takes to answer.

    python benchmarks/footprint.py                          # this checkout, as it is (uncommitted edits included)
    python benchmarks/footprint.py /tmp/td-before           # another checkout, e.g. `git archive 2550935` unpacked
    python benchmarks/footprint.py --extras images,test     # with optional extras
    python benchmarks/footprint.py --importtime 15          # also the 15 slowest imports of --help, by package

In a fresh virtual environment (in a temporary directory, deleted afterwards) it installs, in three stages, a bare
venv, then torch (default torch==2.13.0, which pip finds locally), then the project non-editable
(`pip install <copy of the repo>[extras]`), and prints a Markdown table: distributions installed and the size of
site-packages after each stage, what the project adds beyond venv + torch, the biggest of those additions, and
the median wall time of `tiny-diffusion --help` and of `python -c "import tiny_diffusion"` (one warm-up run, then
--runs runs). Needs only pip's usual index (works offline where the index is local).

The repo is copied first (its git-tracked and untracked-but-not-ignored files), so the build never writes into
the checkout and uncommitted edits are measured too.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

MB = 1e6

# Run inside the venv: every installed distribution -> (version, bytes on disk of the files in its RECORD).
_INVENTORY = r"""
import importlib.metadata as md, json, os
out = {}
for d in md.distributions():
    size = 0
    for f in d.files or ():
        p = d.locate_file(f)
        try:
            size += os.lstat(p).st_size
        except OSError:
            pass
    out[d.metadata["Name"].lower().replace("_", "-")] = [d.version, size]
print(json.dumps(out))
"""


@dataclass(frozen=True)
class Stage:
    """The venv after one install step."""

    name: str
    dists: dict[str, tuple[str, int]]  # name -> (version, bytes)
    site_bytes: int  # everything under site-packages, RECORD or not (.pyc written later included)


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)
    if result.returncode != 0:
        sys.exit(f"failed ({result.returncode}): {' '.join(cmd)}\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    return result


def _tree_bytes(root: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(root):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


def _copy_checkout(repo: Path, dest: Path) -> Path:
    """The repo's files as git sees them (tracked + untracked, not ignored); a plain copy if it is no git repo."""
    listed = subprocess.run(
        ["git", "-C", str(repo), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=False,
    )
    if listed.returncode != 0:
        shutil.copytree(repo, dest, ignore=shutil.ignore_patterns(".git", "build", "*.egg-info", "__pycache__"))
        return dest
    for rel in filter(None, listed.stdout.decode().split("\0")):
        src = repo / rel
        if src.is_file():  # a deleted-but-tracked file is listed too
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def _stage(name: str, python: Path, site: Path) -> Stage:
    inventory = json.loads(_run([str(python), "-c", _INVENTORY]).stdout)
    return Stage(name, {k: (v[0], v[1]) for k, v in inventory.items()}, _tree_bytes(site))


def _median_seconds(cmd: list[str], runs: int) -> tuple[float, float]:
    """Median (wall, CPU) seconds of `cmd`; CPU (user + system of the child) suffers less when the machine is busy."""
    _run(cmd)  # warm-up: the page cache, and any .pyc not yet written
    wall, cpu = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        _run(cmd)
        wall.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(wall), statistics.median(cpu)


def _slowest_imports(python: Path, top: int) -> tuple[float, list[tuple[float, str, str]]]:
    """What `python -m tiny_diffusion --help` spends importing: the total, and the `top` slowest packages as
    (seconds, package, the tiny_diffusion modules whose imports pulled it in, costliest first)."""
    result = _run([str(python), "-X", "importtime", "-m", "tiny_diffusion", "--help"])
    rows = []  # (depth, cumulative us, module), in the order printed: children before their parent
    for line in result.stderr.splitlines():  # "import time: self [us] | cumulative | imported package"
        if line.startswith("import time:") and "imported package" not in line:
            _, cum_us, name = line[len("import time:") :].split("|")
            rows.append(((len(name) - len(name.lstrip()) - 1) // 2, int(cum_us), name.strip()))
    total = sum(cum for depth, cum, _ in rows if depth == 0) / 1e6
    # Walking backwards, a module's parent is the nearest line one level up. An "entry" is an import whose
    # top-level package differs from its parent's (torch imported by tiny_diffusion.schedule, numpy by torch):
    # a package's cost is the sum of its entries, which never nest inside one another.
    open_at: dict[int, str] = {}  # depth -> the module whose subtree we are in at that depth
    cost: dict[str, float] = {}
    by: dict[str, dict[str, float]] = {}  # package -> tiny_diffusion module -> seconds
    for depth, cum, name in reversed(rows):
        open_at[depth] = name
        ancestors = [open_at[d] for d in range(depth - 1, -1, -1)]
        package = name.split(".")[0]
        if package == "tiny_diffusion" or (ancestors and ancestors[0].split(".")[0] == package):
            continue
        cost[package] = cost.get(package, 0.0) + cum / 1e6
        ours = next((m for m in ancestors if m.startswith("tiny_diffusion")), "-")
        by.setdefault(package, {})[ours] = by.get(package, {}).get(ours, 0.0) + cum / 1e6
    slowest = sorted(cost.items(), key=lambda kv: -kv[1])[:top]
    return total, [
        (seconds, package, ", ".join(sorted(by[package], key=lambda m: -by[package][m])))
        for package, seconds in slowest
    ]


def measure(repo: Path, *, extras: str, torch: str, runs: int, importtime: int, biggest: int) -> str:
    """The Markdown report for one checkout."""
    with tempfile.TemporaryDirectory(prefix="td-footprint-") as work:
        work_path = Path(work)
        source = _copy_checkout(repo, work_path / "src")
        venv = work_path / "venv"
        _run([sys.executable, "-m", "venv", str(venv)])
        python = venv / "bin" / "python"
        site = Path(
            _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
        )
        pip = [str(python), "-m", "pip", "install", "--quiet", "--no-input"]

        bare = _stage("bare venv", python, site)
        start = time.perf_counter()
        _run([*pip, torch])
        torch_seconds = time.perf_counter() - start
        with_torch = _stage(f"+ {torch}", python, site)
        target = f"{source}[{extras}]" if extras else str(source)
        start = time.perf_counter()
        _run([*pip, target])
        project_seconds = time.perf_counter() - start
        full = _stage("+ tiny-diffusion" + (f"[{extras}]" if extras else ""), python, site)

        cli = venv / "bin" / "tiny-diffusion"
        help_s = _median_seconds([str(cli), "--help"], runs)
        import_s = _median_seconds([str(python), "-c", "import tiny_diffusion"], runs)
        import_total, slow = _slowest_imports(python, importtime) if importtime else (0.0, [])

    added = {k: v for k, v in full.dists.items() if k not in with_torch.dists}
    added_bytes = full.site_bytes - with_torch.site_bytes
    lines = [
        f"checkout: {repo}" + (f" (extras: {extras})" if extras else ""),
        f"install: torch {torch_seconds:.0f} s, project {project_seconds:.0f} s",
        "",
        "| stage | distributions | site-packages (MB) |",
        "|---|---:|---:|",
    ]
    for stage in (bare, with_torch, full):
        lines.append(f"| {stage.name} | {len(stage.dists)} | {stage.site_bytes / MB:.0f} |")
    lines += [
        f"| **the project adds** (beyond venv + torch) | **{len(added)}** | **{added_bytes / MB:.0f}** |",
        f"| all but the bare venv (torch and its deps included) | {len(full.dists) - len(bare.dists)} "
        f"| {(full.site_bytes - bare.site_bytes) / MB:.0f} |",
        "",
        f"| median of {runs} runs, after one warm-up | wall (s) | CPU (s) |",
        "|---|---:|---:|",
        f"| `tiny-diffusion --help` | {help_s[0]:.2f} | {help_s[1]:.2f} |",
        '| `python -c "import tiny_diffusion"` | ' + f"{import_s[0]:.2f} | {import_s[1]:.2f} |",
        "",
        f"the {len(added)} distributions the project adds: {', '.join(sorted(added))}",
    ]
    if biggest:
        lines += ["", "| the biggest | version | MB (its RECORD) |", "|---|---|---:|"]
        lines += [
            f"| {name} | {version} | {size / MB:.1f} |"
            for name, (version, size) in sorted(added.items(), key=lambda kv: -kv[1][1])[:biggest]
        ]
    if slow:
        lines += [
            "",
            f"`python -X importtime -m tiny_diffusion --help`: {import_total:.2f} s of imports; the {len(slow)} "
            "slowest packages (a package's time includes what it imports in turn, so rows overlap):",
            "",
            "| package | seconds | imported (directly or through others) by |",
            "|---|---:|---|",
        ]
        lines += [f"| {name} | {cum:.3f} | {by} |" for cum, name, by in slow]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument(
        "repo",
        nargs="?",
        type=Path,
        default=Path(__file__).resolve().parents[1],
        help="the checkout to install (its working tree, uncommitted edits included)",
    )
    parser.add_argument("--extras", default="", help="optional extras to install, comma-separated (e.g. images)")
    parser.add_argument("--torch", default="torch==2.13.0", help="the torch requirement installed first")
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each command (after one warm-up)")
    parser.add_argument(
        "--importtime",
        type=int,
        default=0,
        metavar="N",
        help="also list the N slowest packages `tiny-diffusion --help` imports (0: none)",
    )
    parser.add_argument("--biggest", type=int, default=10, help="list this many of the largest added packages")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if not (args.repo / "pyproject.toml").is_file():
        parser.error(f"{args.repo} has no pyproject.toml")
    print(
        measure(
            args.repo.resolve(),
            extras=args.extras,
            torch=args.torch,
            runs=args.runs,
            importtime=args.importtime,
            biggest=args.biggest,
        )
    )


if __name__ == "__main__":
    main()
