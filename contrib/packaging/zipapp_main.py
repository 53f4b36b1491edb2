# ksi.pyz's __main__: KSI and its pure-Python dependencies are in this archive.
# Kept syntax-compatible with old Pythons (no f-strings, no annotations), so that an
# interpreter too old for KSI says so in one line instead of a SyntaxError.
import sys

MIN_PYTHON = (3, 9)
EXIT_TOOL_MISSING = 75  # KSI's exit code for a missing tool (src/ksi/errors.py)


def too_old(version_info):
    """The one-line message for an interpreter older than MIN_PYTHON, else None."""
    if tuple(version_info[:2]) >= MIN_PYTHON:
        return None
    fmt = ("ksi: needs Python 3.9 or later, this is Python %d.%d (%s): run the zipapp with "
           "a newer python3 (e.g. 'python3.11 ksi.pyz', or 'module load python')")
    return fmt % (version_info[0], version_info[1], sys.executable or "python")  # noqa: UP031


def main():
    msg = too_old(sys.version_info)
    if msg:
        sys.stderr.write(msg + "\n")
        sys.exit(EXIT_TOOL_MISSING)
    from ksi.cli import main as ksi_main

    ksi_main()


if __name__ == "__main__":
    main()
