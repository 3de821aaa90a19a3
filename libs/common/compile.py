"""Compile the hot modules listed in libs/common/native.py with mypyc into build/native.

    python -m libs.common.compile           # build when the sources changed
    python -m libs.common.compile --force   # rebuild
    python -m libs.common.compile --status  # only say which modules are loaded

Needs mypy (mypyc), setuptools and a C compiler with the Python headers: the dev extras
and the image's build stage have them; nothing at run time does.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

from libs.common.native import GROUP, NATIVE_ROOT, ROOT, STAMP, describe, source_files
from libs.common.native import sources_digest as digest


def build(force: bool = False) -> bool:
    """Compile into build/native; False when the build there is already up to date."""
    want = digest()
    if not force and STAMP.is_file() and STAMP.read_text().strip() == want:
        return False
    from mypyc.build import mypycify
    from setuptools import setup

    cwd = Path.cwd()
    os.chdir(ROOT)  # mypy resolves module names and reads its configuration from here
    try:
        shutil.rmtree(NATIVE_ROOT, ignore_errors=True)
        work = ROOT / "build" / "native-work"
        extensions = mypycify(
            source_files(), opt_level="3", target_dir=str(work / "c"), group_name=GROUP
        )
        setup(
            name="exchange-native",
            ext_modules=extensions,
            script_args=[
                "--quiet",
                "build_ext",
                "--build-lib",
                str(NATIVE_ROOT),
                "--build-temp",
                str(work / "obj"),
            ],
        )
    finally:
        os.chdir(cwd)
    STAMP.write_text(want + "\n")
    return True


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    parser.add_argument("--status", action="store_true", help="only say what is loaded")
    args = parser.parse_args()
    if args.status:
        print(f"hot modules: {describe()}")
        return
    built = build(args.force)
    print(f"native build in {NATIVE_ROOT}: {'built' if built else 'up to date'}")


if __name__ == "__main__":
    main()
