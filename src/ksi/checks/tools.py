"""Tool checks: kind, the runtime (and containerd), kubectl, liqoctl are on PATH and new
enough. `cheap_checks` is the subset a run does first (one exec of kind)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

from ksi.checks.model import FAIL, PASS, SKIP, WARN, Check, Context, fmt_version, parse_version
from ksi.errors import Exit, KsiError

if TYPE_CHECKING:
    from ksi.runner import Runner

MIN_KIND_NERDCTL = (0, 23)   # kind's nerdctl provider
MIN_KIND = (0, 20)
MIN_NERDCTL = (1, 7)
MIN_CONTAINERD = (1, 7)
MIN_PODMAN = (4, 0)
KIND_FIX = "install kind >= 0.23 (a single binary) or load its module; see 'ksi doctor'"
KUBECTL_FIX = "install kubectl or load its module; see 'ksi doctor'"
PROVIDER_FIX = {"nerdctl": "install rootless nerdctl (nerdctl-full) and run "
                           "'containerd-rootless-setuptool.sh install'",
                "podman": "install podman (rootless) or pick another --provider",
                "docker": "install rootless docker or pick another --provider"}
# packaged runtimes an admin can install (nerdctl-full and docker's rootless kit are not)
INSTALL_PODMAN = ("if command -v dnf >/dev/null; then dnf install -y podman slirp4netns; "
                  "elif command -v apt-get >/dev/null; then\n"
                  "  apt-get install -y podman slirp4netns uidmap\nfi")


def tool_output(ctx: Context, argv: list[str]) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of a tool; 127 when it cannot be run."""
    try:
        res = ctx.runner.run(argv, timeout=30, check=False)
    except KsiError as exc:  # not installed / not executable
        return 127, "", exc.cause
    return res.returncode, res.stdout, res.stderr


def resolve_provider(runner: Runner, name: str, environ: dict[str, str]) -> Optional[str]:
    """The provider 'auto' stands for (the first runtime on PATH; None: none), or name."""
    if name != "auto":
        return name
    from ksi.provision.providers import resolve

    try:
        return resolve(name, lambda binary: runner.which(binary, environ))
    except KsiError:
        return None


def check_present(ctx: Context, binary: str, fix: str, *, name: str = "",
                  required: bool = True, code: Exit = Exit.TOOL_MISSING,
                  cause: str = "", admin: tuple[str, ...] = ()) -> Check:
    name = name or binary
    path = ctx.runner.which(binary, ctx.environ)
    if path:
        return Check(name, PASS, f"{binary} at {path}")
    if not required:
        return Check(name, WARN, f"'{binary}' is not on PATH (needed for multi-node runs)",
                     fix)
    return Check(name, FAIL, cause or f"'{binary}' is not on PATH", fix, int(code),
                 admin=admin)


def check_version(ctx: Context, name: str, argv: list[str], minimum: Optional[tuple[int, ...]],
                  fix: str, *, why: str = "") -> Check:
    if not ctx.runner.which(argv[0], ctx.environ):
        return Check(name, SKIP, f"'{argv[0]}' not found")
    rc, out, err = tool_output(ctx, argv)
    return version_check(name, out if rc == 0 else out + err, minimum, fix, why=why,
                         source=f"'{' '.join(argv)}' (exit {rc})")


def version_check(name: str, text: str, minimum: Optional[tuple[int, ...]], fix: str, *,
                  why: str = "", source: str) -> Check:
    """The version in text against minimum (source: where text came from)."""
    v = parse_version(text)
    if v is None:
        return Check(name, WARN, f"could not read the version from {source}", fix)
    tool = name.removesuffix(" version")
    if minimum and v < minimum:
        return Check(name, FAIL, f"{tool} {fmt_version(v)} is older than "
                     f"{fmt_version(minimum)}" + (f" ({why})" if why else ""), fix)
    return Check(name, PASS, f"{tool} {fmt_version(v)}")


def check_kind(ctx: Context) -> list[Check]:
    """kind on PATH and, if so, new enough for the provider."""
    out = [check_present(ctx, "kind", KIND_FIX)]
    if out[-1].status == PASS:
        nerd = ctx.provider == "nerdctl"
        out.append(check_version(
            ctx, "kind version", ["kind", "version"], MIN_KIND_NERDCTL if nerd else MIN_KIND,
            "install a newer kind (https://kind.sigs.k8s.io/docs/user/quick-start/)",
            why="kind's nerdctl provider needs kind >= 0.23" if nerd else ""))
    return out


def check_provider(ctx: Context, fix: str) -> Check:
    binary = ctx.provider
    return check_present(ctx, binary, fix, name=f"provider {binary}",
                         code=Exit.PROVIDER_MISSING,
                         cause=f"provider {binary}: '{binary}' is not on PATH",
                         admin=(INSTALL_PODMAN,) if binary == "podman" else ())


def runtime_versions(ctx: Context) -> list[Check]:
    """nerdctl and containerd, or podman, new enough for kind (`version --format json`)."""
    provider = ctx.runtime()
    if ctx.provider not in ("nerdctl", "podman") or provider is None:
        return []
    v = provider.versions(timeout=30)
    source = f"'{ctx.provider} version --format json'"
    client = v.client if v is not None else ""
    if ctx.provider == "podman":
        return [version_check("podman version", client, MIN_PODMAN, "install podman >= 4",
                              source=source)]
    nerdctl = version_check("nerdctl version", client, MIN_NERDCTL,
                            "install nerdctl >= 1.7 (nerdctl-full)",
                            why="kind needs nerdctl >= 1.7", source=source)
    containerd = v.server.get("containerd", "") if v is not None else ""
    if not containerd:  # no server part: the daemon is down (reported elsewhere)
        return [nerdctl, Check("containerd version", SKIP, "containerd not reachable")]
    return [nerdctl, version_check("containerd version", containerd, MIN_CONTAINERD,
                                   "install containerd >= 1.7 (nerdctl-full)",
                                   why="kind needs containerd >= 1.7", source=source)]


def tool_checks(ctx: Context) -> list[Check]:
    """Presence and versions of kind, the runtime (and containerd), kubectl, liqoctl."""
    out = check_kind(ctx)
    out.append(check_provider(ctx, PROVIDER_FIX.get(ctx.provider,
                                                    f"install {ctx.provider}")))
    if out[-1].status == PASS:
        out += runtime_versions(ctx)
    out.append(check_present(ctx, "kubectl", KUBECTL_FIX))
    out.append(check_present(ctx, "liqoctl", "install liqoctl (https://docs.liqo.io) for "
                             "multi-node runs", required=False))
    if out[-1].status == PASS:
        out.append(check_liqo(ctx))
    return out


def check_liqo(ctx: Context) -> Check:
    """liqoctl's version against liqo_version, and the local chart (offline nodes)."""
    rc, stdout, _ = tool_output(ctx, ["liqoctl", "version", "--client"])
    have = parse_version(stdout) if rc == 0 else None
    want = parse_version(ctx.liqo_version) if ctx.liqo_version else None
    where = f"chart {ctx.liqo_chart}" if ctx.liqo_chart else "chart fetched by liqoctl"
    if ctx.liqo_chart and not Path(ctx.liqo_chart, "Chart.yaml").is_file():
        return Check("Liqo", FAIL, f"liqo_chart {ctx.liqo_chart} has no Chart.yaml",
                     "point liqo_chart at the release's deployments/liqo directory, or unset "
                     "it", code=Exit.CONFIG_INVALID)
    if have is None:
        return Check("Liqo", WARN, "'liqoctl version --client' printed no version", "")
    if want is not None and want != have:
        return Check("Liqo", WARN, f"liqoctl is v{fmt_version(have)} but liqo_version is "
                     f"{ctx.liqo_version}: Liqo wants the same version on both sides",
                     f"install liqoctl {ctx.liqo_version}, or set liqo_version = "
                     f"'v{fmt_version(have)}'")
    return Check("Liqo", PASS, f"liqoctl v{fmt_version(have)}, {where}, networking module "
                 f"{'on' if ctx.liqo_networking else 'off'}")


def cheap_checks(runner: Runner, provider: str, *, environ: Optional[dict[str, str]] = None
                 ) -> list[Check]:
    """What `ksi run` checks first: the tools are there and new enough (one exec of kind)."""
    import os

    from ksi.provision.providers import resolve

    env = dict(os.environ if environ is None else environ)
    if provider == "auto":
        try:
            resolved = resolve(provider, lambda binary: runner.which(binary, env))
        except KsiError as exc:
            return [Check("provider", FAIL, exc.cause, exc.fix, int(exc.code))]
    else:
        resolved = provider
    ctx = Context(runner=runner, provider=resolved, environ=env)
    return [check_provider(ctx, f"install {resolved} (or load its module), or pick another "
                                "--provider"),
            *check_kind(ctx), check_present(ctx, "kubectl", KUBECTL_FIX)]
