#!/usr/bin/env bash
# CI check of every way a site installs KSI (contrib/packaging/README.md), each step timed:
# wheel + sdist (python -m build) installed into a fresh venv outside the checkout, pipx,
# the ksi.pyz zipapp, the Lmod modulefile (`module load ksi` for real, Debian's lmod) and the
# EasyBuild easyconfig (`eb --dry-run --robot`, and a broken copy must fail). Each install
# runs `ksi --version` and an emulated `ksi run` (tests/emulator/bin on PATH), which catches
# missing package data. Needs network to PyPI and Debian's lmod package (.ci/run installs it).
#   contrib/packaging/ci-check.sh [WORKDIR]     (default: a new temp dir, removed at the end)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PKG=$ROOT/contrib/packaging
VERSION=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$ROOT/src/ksi/__init__.py")
if [[ -n ${1:-} ]]; then W=$1; mkdir -p "$W"; else W=$(mktemp -d /tmp/ksi-pkg.XXXXXX); trap 'rm -rf "$W"' EXIT; fi
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore PIP_NO_INPUT=1
unset PYTHONPATH   # every check runs the installed KSI, never the checkout's src/
T0=$SECONDS
ts=$SECONDS
lap() { echo "packaging: $1 ok in $((SECONDS - ts))s"; ts=$SECONDS; }
fail() { echo "packaging: FAILED: $*" >&2; exit 1; }

# An interpreter of version X.Y that runs (pyenv's shims exist for versions not selected).
find_python() {
  local v=$1 c
  for c in "python$v" "$(pyenv root 2>/dev/null || echo /nonexistent)"/versions/"$v".*/bin/"python$v"; do
    [[ -n $c ]] && "$c" -c '' >/dev/null 2>&1 && { command -v "$c" || echo "$c"; return 0; }
  done
  return 1
}
# python3's real directory: the emulator's `#!/usr/bin/env python3` without pyenv's shims
PY3DIR=$(dirname "$(python3 -c 'import sys; print(sys.executable)')")
PY39=$(find_python 3.9 || true)
PY38=$(find_python 3.8 || true)
echo "packaging: ksi $VERSION in $W; python3 $(python3 -V 2>&1); 3.9: ${PY39:-none}; 3.8: ${PY38:-none}"

# emulated `ksi run` of a workload with the ksi found first on PATH (or "$@" as the command)
emulated_run() { # LABEL CMD...
  local label=$1 d; shift
  d=$W/run-$label
  rm -rf "$d"; mkdir -p "$d"/{emu,state,locks,home,work}
  cat > "$d/work/wl.sh" <<'EOF'
#!/bin/bash
set -eu
kubectl --context "$K8S_CLUSTER_NAME" get nodes -o name > nodes.out
echo "$K8S_PORT" > port.out
EOF
  (cd "$d/work" && env -i PATH="$ROOT/tests/emulator/bin:$PY3DIR:$PATH" HOME="$d/home" \
     USER="$(id -un)" LANG=C.UTF-8 KSI_EMU_STATE="$d/emu" KSI_STATE_DIR="$d/state" KSI_LOCK_DIR="$d/locks" \
     KSI_SITE_CONFIG="$d/none.toml" KSI_USER_CONFIG="$d/none.toml" KSI_EMU_READY_AFTER=0 \
     KSI_GC_ON_START=false "$@" run wl.sh > "$d/out.log" 2>&1) \
    || { cat "$d/out.log"; fail "$label: emulated ksi run exited $?"; }
  grep -q '^node/' "$d/work/nodes.out" || { cat "$d/out.log"; fail "$label: the workload saw no node"; }
  grep -q 'done: exit 0' "$d/out.log" || { cat "$d/out.log"; fail "$label: no 'done: exit 0'"; }
}

check_version() { # LABEL CMD...
  local label=$1 out; shift
  out=$("$@" --version 2>&1) || fail "$label: ksi --version exited $?: $out"
  [[ $out == *"$VERSION"* ]] || fail "$label: ksi --version printed '$out', not $VERSION"
}

# ---------------------------------------------------------------- tools
# KSI_PKG_TOOLS=DIR keeps the tools' venv between runs (.ci/run: a CI cache); it is made
# again when it is missing or does not import them
TOOLS=${KSI_PKG_TOOLS:-$W/tools}
if [[ -x $TOOLS/bin/python ]] && "$TOOLS/bin/python" -c 'import build, pipx, easybuild' 2>/dev/null \
   && [[ -x $TOOLS/bin/eb && -x $TOOLS/bin/pipx ]]; then
  lap "tools (build pipx easybuild) cached in $TOOLS"
else
  rm -rf "$TOOLS"
  python3 -m venv "$TOOLS"
  "$TOOLS/bin/pip" install -q build pipx easybuild
  lap "tools (build pipx easybuild)"
fi

# ---------------------------------------------------------------- wheel + sdist
rm -rf "$W/dist"
(cd "$ROOT" && "$TOOLS/bin/python" -m build -q --outdir "$W/dist" . > "$W/build.log" 2>&1) \
  || { cat "$W/build.log"; fail "python -m build"; }
WHEEL=$(ls "$W"/dist/ksi-"$VERSION"-py3-none-any.whl)
SDIST=$(ls "$W"/dist/ksi-"$VERSION".tar.gz)
python3 - "$WHEEL" "$SDIST" "$ROOT/src/ksi" <<'EOF' || fail "wheel/sdist content"
import sys, tarfile, zipfile
from pathlib import Path
wheel, sdist, src = sys.argv[1], sys.argv[2], Path(sys.argv[3])
want = {"ksi/" + p.relative_to(src).as_posix() for p in src.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}
have = set(zipfile.ZipFile(wheel).namelist())
missing = sorted(want - have)
assert not missing, f"wheel lacks {missing}"
names = tarfile.open(sdist).getnames()
top = names[0].split("/")[0]
lacking = sorted(f for f in want if f"{top}/src/{f}" not in names)
assert not lacking, f"sdist lacks {lacking}"
print(f"packaging: wheel has all {len(want)} files of src/ksi; sdist too")
EOF
lap "python -m build ($(basename "$WHEEL"), $(basename "$SDIST"))"

# ---------------------------------------------------------------- wheel in a fresh venv
VPY=${PY39:-python3}
"$VPY" -m venv --without-pip "$W/venv"   # a bare venv, filled by the tools' (newer) pip
"$TOOLS/bin/pip" --python "$W/venv/bin/python" install -q "$WHEEL"
where=$(cd "$W" && "$W/venv/bin/python" -c 'import ksi; print(ksi.__file__)')
[[ $where == "$W/venv/"* ]] || fail "venv: ksi imported from $where, not the venv"
check_version venv "$W/venv/bin/ksi"
set +e
(cd "$W" && "$W/venv/bin/ksi" doctor --json > "$W/doctor.json" 2> "$W/doctor.err")
rc=$?
set -e
case $rc in 0|93|96) ;; *) cat "$W/doctor.err"; fail "venv: ksi doctor --json exited $rc (0, 93 or 96 expected)";; esac
! grep -q Traceback "$W/doctor.err" || { cat "$W/doctor.err"; fail "venv: ksi doctor: a traceback"; }
python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$W/doctor.json" \
  || fail "venv: ksi doctor --json did not print JSON"
emulated_run venv "$W/venv/bin/ksi"
lap "wheel in a fresh venv ($("$VPY" -V 2>&1); doctor exit $rc, emulated run)"

# ---------------------------------------------------------------- pipx
export PIPX_HOME=$W/pipx PIPX_BIN_DIR=$W/pipx/bin PIPX_MAN_DIR=$W/pipx/man
"$TOOLS/bin/pipx" install --quiet "$WHEEL" > "$W/pipx.log" 2>&1 \
  || { cat "$W/pipx.log"; fail "pipx install"; }
check_version pipx "$PIPX_BIN_DIR/ksi"
emulated_run pipx "$PIPX_BIN_DIR/ksi"
lap "pipx install"

# ---------------------------------------------------------------- zipapp
"$TOOLS/bin/python" "$PKG/build_zipapp.py" --out "$W/ksi.pyz"
for py in "$PY3DIR/python3" $PY39; do
  check_version "zipapp-$(basename "$py")" "$py" "$W/ksi.pyz"
  emulated_run "zipapp-$(basename "$py")" "$py" "$W/ksi.pyz"
done
if [[ -n $PY38 ]]; then
  set +e; out=$("$PY38" "$W/ksi.pyz" --version 2>&1); rc=$?; set -e
  [[ $rc == 75 && $out == "ksi: needs Python 3.9 or later"* && $(wc -l <<<"$out") == 1 ]] \
    || fail "zipapp on Python 3.8: exit $rc, '$out' (one line 'needs Python 3.9 or later', exit 75 expected)"
  echo "packaging: zipapp on $("$PY38" -V 2>&1): $out"
else
  echo "packaging: no Python 3.8 here: the zipapp's refusal is tested by tests/test_packaging.py"
fi
lap "zipapp ksi.pyz ($(( $(stat -c %s "$W/ksi.pyz") / 1024 )) KiB; python3${PY39:+ and 3.9})"

# ---------------------------------------------------------------- Lmod
LMOD_INIT=${LMOD_INIT:-/usr/share/lmod/lmod/init/bash}
[[ -r $LMOD_INIT ]] || fail "Lmod: $LMOD_INIT missing (apt-get install lmod)"
mkdir -p "$W/pyz-prefix/bin" "$W/old-python"
cp "$W/ksi.pyz" "$W/pyz-prefix/bin/ksi"; chmod 755 "$W/pyz-prefix/bin/ksi"
printf '#!/bin/sh\necho 3.8\n' > "$W/old-python/python3"; chmod 755 "$W/old-python/python3"
mkdir -p "$W/venv/modulefiles/ksi"
cp "$PKG/lmod/ksi/$VERSION.lua" "$W/venv/modulefiles/ksi/"
LMOD_ALLOW_ROOT_USE=yes W=$W PKG=$PKG VERSION=$VERSION LMOD_INIT=$LMOD_INIT bash -euo pipefail <<'EOF' \
  || fail "Lmod (see above)"
set +u; source "$LMOD_INIT"; set -u
fail() { echo "packaging: Lmod: $*" >&2; exit 1; }
# 1. the prefix from KSI_INSTALL_PREFIX (the venv), module from the checkout
export MODULEPATH=$PKG/lmod
KSI_INSTALL_PREFIX=$W/venv module load ksi && [[ $(command -v ksi) == "$W/venv/bin/ksi" ]] \
  || fail "module load ksi (KSI_INSTALL_PREFIX=venv) did not put $W/venv/bin/ksi first"
grep -q "$VERSION" <<<"$(ksi --version)" || fail "ksi --version after module load"
module unload ksi
# 2. the prefix from the modulefile's place: PREFIX/modulefiles/ksi/VERSION.lua
export MODULEPATH=$W/venv/modulefiles
module load ksi && [[ $(command -v ksi) == "$W/venv/bin/ksi" ]] || fail "relative prefix"
module unload ksi
# 3. the zipapp as PREFIX/bin/ksi, run by python3 on PATH
export MODULEPATH=$PKG/lmod
KSI_INSTALL_PREFIX=$W/pyz-prefix module load ksi && grep -q "$VERSION" <<<"$(ksi --version)" \
  || fail "zipapp prefix"
module unload ksi
# 4. python3 on PATH too old: load fails and says so
out=$(PATH=$W/old-python:$PATH KSI_INSTALL_PREFIX=$W/pyz-prefix module load ksi 2>&1) \
  && fail "module load ksi with Python 3.8 succeeded"
grep -q "ksi: needs Python 3.9 or later, found" <<<"$out" || fail "no 'needs Python 3.9' in: $out"
echo "packaging: module load ksi on Python 3.8: $(tr -s ' \n' ' ' <<<"$out" | sed 's/^.*error: //; s/ While processing.*//')"
EOF
lap "Lmod: module load ksi ($(LMOD_ALLOW_ROOT_USE=yes bash -c "source $LMOD_INIT; module --version 2>&1" | grep -o 'Version [0-9.]*'))"

# ---------------------------------------------------------------- EasyBuild
EC=$(ls "$PKG"/easybuild/ksi-"$VERSION"-*.eb)
LMOD_ALLOW_ROOT_USE=yes W=$W TOOLS=$TOOLS EC=$EC LMOD_INIT=$LMOD_INIT bash -euo pipefail <<'EOF' || fail "EasyBuild (see above)"
set +u; source "$LMOD_INIT"; set -u
export EB_PYTHON=$TOOLS/bin/python
eb() { "$TOOLS/bin/eb" --allow-use-as-root-and-accept-consequences --modules-tool=Lmod \
         --prefix="$W/eb" --sourcepath="$W/dist" --robot --dry-run "$@"; }
eb "$EC" > "$W/eb.log" 2>&1 || { cat "$W/eb.log"; exit 1; }
grep -q "module: ksi/" "$W/eb.log" || { cat "$W/eb.log"; echo "eb: ksi not in the plan"; exit 1; }
# a real check: a broken copy (a dependency that does not exist) must fail
sed 's/^\(    (.Python., .\)[0-9.]*/\199.9/' "$EC" > "$W/broken.eb"
grep -q "'Python', '99.9" "$W/broken.eb" || { echo "eb: could not break the copy"; exit 1; }
if eb "$W/broken.eb" > "$W/eb-broken.log" 2>&1; then
  echo "eb --dry-run accepted a broken easyconfig"; exit 1
fi
echo "packaging: eb --dry-run: $(grep -c '^ \* \[' "$W/eb.log") modules planned; broken copy refused: $(grep -m1 ERROR "$W/eb-broken.log")"
EOF
lap "EasyBuild: eb --dry-run --robot $(basename "$EC")"
echo "packaging: all checks passed in $((SECONDS - T0))s"
