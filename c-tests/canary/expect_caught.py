#!/usr/bin/env python3
"""expect_caught.py TEXT -- COMMAND [ARG...]

Runs a canary under its checker and passes only when the checker caught the canary's fault:
the command exits non-zero and its output holds TEXT, the checker's own report of that fault.
A canary that fails for any other reason (it cannot load, the checker is missing, a crash of
another kind) fails this test, so it cannot stand in for a checker that stopped working.
"""
import subprocess
import sys


def main():
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        sys.exit(__doc__)
    want, cmd = sys.argv[1], sys.argv[3:]
    run = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=600)
    output = run.stdout + run.stderr
    if run.returncode == 0:
        print(output)
        sys.exit(f"not caught: {' '.join(cmd)} exited 0")
    if want not in output:
        print(output)
        sys.exit(f"{' '.join(cmd)} failed (status {run.returncode}) without the report {want!r}")
    print(f"caught: {want!r} (status {run.returncode})")


if __name__ == "__main__":
    main()
