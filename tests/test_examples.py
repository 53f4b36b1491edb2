"""The example workloads under examples/, checked offline.

- every Kubernetes manifest validates (strictly) against the Kubernetes 1.34 schema;
- every script passes `bash -n` and shellcheck (when installed);
- a lint for the original KSI's faults in workload scripts (races of `kubectl wait`, Ready
  waits on pods that terminate, TLS switched off, the token echoed by `set -x`, fixed sleeps,
  kubectl without the cluster's context) finds nothing in our scripts and does find the
  original's snippets;
- each script runs to its end under `set -u` against a recording kubectl stub that behaves
  like a fresh cluster (objects exist only once created; selector waits find nothing), and
  a failed pod/Job ends the script with a non-zero status at once, not at the timeout.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

kubernetes_validate = pytest.importorskip("kubernetes_validate")

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
K8S_VERSION = "1.34.0"

# Our own examples: directory -> script (multinode/ belongs to someone else and is only
# covered by the generic manifest and script checks).
OWN = {
    "pod-sysbench": "pod-sysbench.sh",
    "job-pytorch": "job-pytorch.sh",
    "job-yaml": "job-yaml.sh",
    "kube-api": "kube-api.sh",
    "pod-nginx": "pod-nginx.sh",
}


def manifest_files() -> list[Path]:
    return sorted(p for p in EXAMPLES.rglob("*") if p.suffix in (".yaml", ".yml")
                  and p.is_file())


def script_files() -> list[Path]:
    return sorted(p for p in EXAMPLES.rglob("*.sh") if p.is_file())


def rel(p: Path) -> str:
    return str(p.relative_to(ROOT))


def load_docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def is_builtin_kind(doc: dict) -> bool:
    """A kind of Kubernetes itself (core, apps, batch, *.k8s.io) - not kind's own config
    (kind.x-k8s.io) or a CRD's group: only those have a schema to check against."""
    api = str(doc.get("apiVersion", ""))
    group = api.rpartition("/")[0]
    if not group:
        return True
    return "." not in group or (group.endswith(".k8s.io") and not group.endswith("x-k8s.io"))


# ----------------------------------------------------------------- manifests

def test_there_are_examples() -> None:
    for d, script in OWN.items():
        assert (EXAMPLES / d / script).is_file(), f"examples/{d}/{script} is missing"
    own_manifests = [p for p in manifest_files() if p.parent.name in OWN]
    assert len(own_manifests) >= 5, own_manifests


@pytest.mark.parametrize("path", manifest_files(), ids=rel)
def test_manifest_validates(path: Path) -> None:
    docs = load_docs(path)
    assert docs, f"{rel(path)} holds no YAML document"
    checked = 0
    for doc in docs:
        assert isinstance(doc, dict) and "apiVersion" in doc and "kind" in doc, \
            f"{rel(path)}: a document without apiVersion/kind"
        if not is_builtin_kind(doc):
            continue
        try:
            version = kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{rel(path)}: {doc['kind']} {doc.get('metadata', {}).get('name')}: "
                        f"{exc.message} at {'.'.join(map(str, exc.path))}")
        assert version == "1.34", f"validated against {version}, not 1.34"
        checked += 1
    if not checked:
        pytest.skip(f"{rel(path)}: no built-in Kubernetes kinds (nothing to check)")


def test_validation_can_fail() -> None:
    """The strict schema check rejects a misspelt field and a wrong type."""
    job = load_docs(EXAMPLES / "job-yaml" / "job-hello-world.yaml")[0]
    bad = json.loads(json.dumps(job))
    bad["spec"]["template"]["spec"]["restartpolicy"] = "Never"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSION, strict=True)
    bad = json.loads(json.dumps(job))
    bad["spec"]["backoffLimit"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSION, strict=True)


def containers(doc: dict) -> list[dict]:
    spec = doc.get("spec", {})
    if doc.get("kind") != "Pod":
        spec = spec.get("template", {}).get("spec", {})
    return list(spec.get("containers", [])) + list(spec.get("initContainers", []))


def test_images_documented_and_usable_offline() -> None:
    """Every image is named fully, pulled only if absent (so a preloaded copy is used on
    an offline node even for :latest), and listed in examples/README.md."""
    readme = (EXAMPLES / "README.md").read_text()
    for path in manifest_files():
        if path.parent.name not in OWN:
            continue
        for doc in load_docs(path):
            for c in containers(doc):
                img = c["image"]
                assert img.count("/") >= 2 and ":" in img.rsplit("/", 1)[1], \
                    f"{rel(path)}: image {img} is not registry/repo:tag"
                assert c.get("imagePullPolicy") == "IfNotPresent", \
                    f"{rel(path)}: {img} needs imagePullPolicy: IfNotPresent"
                assert f"`{img}`" in readme, f"{img} is not listed in examples/README.md"


def test_nginx_service_template_renders() -> None:
    """The script's placeholder is the one in service.yaml, and the Service rendered with
    a port from the K8S_PORT range is valid too."""
    script = (EXAMPLES / "pod-nginx" / "pod-nginx.sh").read_text()
    m = re.search(r"^PLACEHOLDER=(\d+)", script, re.M)
    assert m, "pod-nginx.sh has no PLACEHOLDER=<port>"
    template = (EXAMPLES / "pod-nginx" / "service.yaml").read_text()
    assert template.count(f"nodePort: {m.group(1)}\n") == 1
    for port in (30000, 32767):
        doc = yaml.safe_load(template.replace(f"nodePort: {m.group(1)}", f"nodePort: {port}"))
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        assert doc["spec"]["ports"][0]["nodePort"] == port


def test_pytorch_training_script_is_python() -> None:
    src = (EXAMPLES / "job-pytorch" / "train.py").read_text()
    tree = ast.parse(src)
    assert "model.pt" in src and "/app/out" in src
    assert not any(isinstance(n, (ast.Import, ast.ImportFrom)) and any(
        a.name.split(".")[0] in {"torchvision", "requests", "urllib"} for a in n.names)
        for n in ast.walk(tree)), "train.py must not download a data set"


# ------------------------------------------------------------------- scripts

@pytest.mark.parametrize("path", script_files(), ids=rel)
def test_script_syntax(path: Path) -> None:
    r = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("path", script_files(), ids=rel)
def test_script_shellcheck(path: Path) -> None:
    if not shutil.which("shellcheck"):
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    r = subprocess.run(["shellcheck", "-x", "-s", "bash", str(path)],
                       capture_output=True, text=True, cwd=path.parent)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("path", script_files(), ids=rel)
def test_script_references_exist(path: Path) -> None:
    """Files a script takes from beside itself ("$HERE/x") exist."""
    for name in re.findall(r'"\$HERE/([^"$]+)"', path.read_text()):
        assert (path.parent / name).is_file(), f"{rel(path)} uses missing {name}"


# --- lint for the original's faults -------------------------------------------------

CONTEXT_RE = re.compile(r'--context[= ]"\$(\{K8S_CLUSTER_NAME\}|K8S_CLUSTER_NAME)"')


def logical_lines(text: str) -> list[str]:
    """Lines with continuations joined and full-line comments dropped (heredoc bodies are
    kept: they are inspected as text only where a rule says so)."""
    out: list[str] = []
    buf = ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if not buf and line.lstrip().startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        out.append(buf + line)
        buf = ""
    if buf:
        out.append(buf)
    return out


def tokens(line: str) -> list[str]:
    try:
        return shlex.split(line, comments=True)
    except ValueError:
        return line.split()


def commands(line: str, prog: str) -> list[list[str]]:
    """The argument lists of each PROG invocation on a line (split at pipes, ;, &&, ||,
    and $( )."""
    parts = re.split(r"\|\||&&|[|;]|\$\(", line)
    found = []
    for part in parts:
        toks = tokens(part)
        for i, t in enumerate(toks):
            if t == prog:
                found.append(toks[i + 1:])
                break
    return found


def pod_restart_policies(manifests: list[dict]) -> dict[str, str]:
    return {d["metadata"]["name"]: d.get("spec", {}).get("restartPolicy", "Always")
            for d in manifests if d.get("kind") == "Pod"}


def wait_for_value(args: list[str]) -> str:
    for i, a in enumerate(args):
        if a.startswith("--for="):
            return a[len("--for="):]
        if a == "--for" and i + 1 < len(args):
            return args[i + 1]
    return ""


def lint_script(text: str, manifests: list[dict] | None = None) -> list[str]:
    """Findings of the original KSI's faults in a workload script (empty = clean)."""
    findings: list[str] = []
    pods = pod_restart_policies(manifests or [])
    lines = logical_lines(text)
    if not re.search(r"^set -(euo pipefail|eEuo pipefail)\b", text, re.M):
        findings.append("no 'set -euo pipefail'")
    if re.search(r"^\s*set -[a-zA-Z]*x", text, re.M) and "K8S_CLUSTER_API_TOKEN" in text:
        findings.append("'set -x' prints the token")
    for line in lines:
        for args in commands(line, "sleep"):
            if args and re.fullmatch(r"\d+(\.\d+)?[smh]?", args[0]):
                findings.append(f"fixed wait 'sleep {args[0]}': wait on a condition")
        for args in commands(line, "curl"):
            if "--insecure" in args or any(re.fullmatch(r"-[a-zA-Z]*k[a-zA-Z]*", a)
                                           for a in args):
                findings.append("curl with TLS verification off (-k/--insecure)")
        for args in commands(line, "kubectl"):
            if not CONTEXT_RE.search(line):
                findings.append(f"kubectl without --context \"$K8S_CLUSTER_NAME\": {line.strip()}")
            if "wait" not in args:
                continue
            if any(a in ("-l", "--selector", "--all", "-A", "--all-namespaces")
                   or a.startswith(("--selector=", "-l")) for a in args):
                findings.append("kubectl wait by selector/--all races the creation of the "
                                f"objects (no matching resources found): {line.strip()}")
            cond = wait_for_value(args)
            if re.fullmatch(r"(?i)condition=ready(=.*)?", cond):
                targets = [a for a in args if re.match(r"pods?/", a)]
                if "pod" in args or "pods" in args:
                    targets.append("pod/?")
                for t in targets:
                    name = t.split("/", 1)[1]
                    if cond.lower() != "condition=ready" or pods.get(name) != "Always":
                        findings.append(f"kubectl wait --for={cond} on {t}: a pod that "
                                        "terminates is never Ready; wait for its phase "
                                        "(or the Job's condition=complete)")
    return findings


def example_manifests(d: Path) -> list[dict]:
    return [doc for p in sorted(d.glob("*.y*ml")) for doc in load_docs(p)]


@pytest.mark.parametrize("path", script_files(), ids=rel)
def test_script_has_no_original_faults(path: Path) -> None:
    assert lint_script(path.read_text(), example_manifests(path.parent)) == []


ORIGINAL_SNIPPETS = {
    "ready wait on a terminating pod": (
        'set -euo pipefail\n'
        'kubectl create --context "$K8S_CLUSTER_NAME" namespace bench\n'
        'kubectl wait -n bench --context "$K8S_CLUSTER_NAME" --for condition=Ready '
        '--timeout=10m pod/sysbench-cpu\n', "never Ready"),
    "Ready=False workaround": (
        'set -euo pipefail\n'
        'kubectl wait -n bench --context "$K8S_CLUSTER_NAME" --for condition=Ready=False \\\n'
        '  --timeout=200h pod/sysbench-cpu\n', "never Ready"),
    "selector wait before the pods exist": (
        'set -euo pipefail\n'
        'kubectl --context "$K8S_CLUSTER_NAME" create -f job.yaml\n'
        'kubectl --context "$K8S_CLUSTER_NAME" wait --for=condition=Ready pod -l job-name=x\n',
        "races"),
    "selector wait, long flag": (
        'set -euo pipefail\n'
        'kubectl --context "$K8S_CLUSTER_NAME" wait pods --selector=app=nginx '
        '--for=condition=Ready\n', "races"),
    "TLS off": (
        'set -euo pipefail\n'
        'curl -X GET "$K8S_CLUSTER_API/api/v1/namespaces" '
        '--header "Authorization: Bearer $K8S_CLUSTER_API_TOKEN" --insecure\n', "TLS"),
    "TLS off, short flag": (
        'set -euo pipefail\ncurl -sk "$K8S_CLUSTER_API/version"\n', "TLS"),
    "token echoed": (
        'set -euo pipefail\nset -x\n'
        'curl -H "Authorization: Bearer $K8S_CLUSTER_API_TOKEN" "$K8S_CLUSTER_API"\n', "token"),
    "no context": ('set -euo pipefail\nkubectl create namespace bench\n', "--context"),
    "fixed sleep": ('set -euo pipefail\nsleep 60\n', "fixed wait"),
    "no strict mode": ('kubectl --context "$K8S_CLUSTER_NAME" get nodes\n', "set -euo"),
}


@pytest.mark.parametrize("name", sorted(ORIGINAL_SNIPPETS))
def test_lint_finds_the_original_faults(name: str) -> None:
    text, expect = ORIGINAL_SNIPPETS[name]
    findings = lint_script(text)
    assert any(expect in f for f in findings), findings


def test_lint_accepts_ready_wait_on_a_long_running_pod() -> None:
    server = {"kind": "Pod", "metadata": {"name": "web"}, "spec": {}}
    text = ('set -euo pipefail\n'
            'kubectl --context "$K8S_CLUSTER_NAME" wait --for=condition=Ready pod/web\n')
    assert lint_script(text, [server]) == []
    assert lint_script(text, []) != []   # unknown pod: may terminate


# --- the scripts against a recording kubectl stub ---------------------------------

STUB_KUBECTL = r'''#!PYTHON
"""kubectl for tests: a fresh, empty cluster that records every call.

Time is a logical clock (one tick per call, no sleeps): a workload object finishes
STUB_FINISH_AFTER ticks after its creation, and a `wait`/`rollout status` lets time pass
until then. Before it finishes its phase is Running, its conditions are unset and its logs
are partial; after, it Succeeded (STUB_OUTCOME=succeed) or Failed (fail)."""
import base64, json, os, sys
import yaml

argv = sys.argv[1:]
state = os.environ["STUB_STATE"]
log = os.path.join(state, "calls.jsonl")
objs_path = os.path.join(state, "objects.json")
objs = json.load(open(objs_path)) if os.path.exists(objs_path) else []
outcome = os.environ.get("STUB_OUTCOME", "succeed")
finish_after = int(os.environ.get("STUB_FINISH_AFTER", "3"))
clock_path = os.path.join(state, "clock.json")
clock = json.load(open(clock_path)) if os.path.exists(clock_path) else {"now": 0, "born": {}}
clock["now"] += 1
json.dump(clock, open(clock_path, "w"))
with open(log, "a") as fh:
    fh.write(json.dumps(argv) + "\n")

ctx = None
ns = "default"
rest = []
i = 0
while i < len(argv):
    a = argv[i]
    if a in ("--context", "-n", "--namespace") and i + 1 < len(argv):
        if a == "--context":
            ctx = argv[i + 1]
        else:
            ns = argv[i + 1]
        i += 2
        continue
    if a.startswith("--context="):
        ctx = a.split("=", 1)[1]
    elif a.startswith("--namespace="):
        ns = a.split("=", 1)[1]
    else:
        rest.append(a)
    i += 1

def die(msg):
    sys.stderr.write(msg + "\n")
    sys.exit(1)

if ctx != os.environ["K8S_CLUSTER_NAME"]:
    die(f'error: context "{ctx}" does not exist')

ALIASES = {"pod": "Pod", "pods": "Pod", "job": "Job", "jobs": "Job",
           "deployment": "Deployment", "deployments": "Deployment", "service": "Service",
           "namespace": "Namespace", "configmap": "ConfigMap"}

def save():
    json.dump(objs, open(objs_path, "w"))
    json.dump(clock, open(clock_path, "w"))

def key(kind, name, namespace):
    return f"{kind}/{namespace}/{name}"

def ref_key(ref):
    kind, _, name = ref.partition("/")
    return key(ALIASES.get(kind, kind), name, ns)

def finished(ref):
    return clock["now"] >= clock["born"].get(ref_key(ref), 0) + finish_after

def let_time_pass(ref):
    clock["now"] = max(clock["now"], clock["born"].get(ref_key(ref), 0) + finish_after)
    save()

def add(kind, name, namespace):
    if kind != "Namespace" and not any(o == ["Namespace", namespace, ""] for o in objs) \
            and namespace != "default":
        die(f'Error from server (NotFound): namespaces "{namespace}" not found')
    objs.append([kind, name, "" if kind == "Namespace" else namespace])
    clock["born"][key(kind, name, "" if kind == "Namespace" else namespace)] = clock["now"]
    save()

def exists(ref):
    kind, _, name = ref.partition("/")
    return [ALIASES.get(kind, kind), name, ns] in objs

def add_file(path):
    text = sys.stdin.read() if path == "-" else open(path).read()
    for d in yaml.safe_load_all(text):
        if d:
            add(d["kind"], d["metadata"]["name"], d["metadata"].get("namespace", ns))

verb = rest[0] if rest else ""
args = rest[1:]
if verb in ("create", "apply"):
    if "-f" in args:
        add_file(args[args.index("-f") + 1])
    elif args[:1] == ["namespace"]:
        add("Namespace", args[1], "")
    elif args[:1] == ["configmap"]:
        add("ConfigMap", args[1], ns)
    else:
        die("stub: unsupported create " + " ".join(args))
elif verb == "wait":
    if any(a in ("-l", "--all") or a.startswith(("--selector", "-l")) for a in args):
        die("error: no matching resources found")
    refs = [a for a in args if "/" in a and not a.startswith("-")]
    for ref in refs:
        if not exists(ref):
            die(f'Error from server (NotFound): {ref} not found')
        let_time_pass(ref)
    if outcome != "succeed":
        die(f"error: timed out waiting for the condition on {refs[0]}")
    print("condition met")
elif verb == "rollout":
    if not exists(args[1]):
        die(f'Error from server (NotFound): {args[1]} not found')
    let_time_pass(args[1])
    if outcome != "succeed":
        die(f'error: timed out waiting for the condition')
    print(f'{args[1]} successfully rolled out')
elif verb == "get":
    if not exists(args[0]):
        die(f'Error from server (NotFound): {args[0]} not found')
    jp = " ".join(args)
    done = finished(args[0])
    if "status.phase" in jp:
        print("Running" if not done else "Succeeded" if outcome == "succeed" else "Failed",
              end="")
    elif "Failed" in jp:
        print("True" if done and outcome != "succeed" else "", end="")
    save()
elif verb == "logs":
    if not exists(args[0]):
        die(f'Error from server (NotFound): {args[0]} not found')
    print(("stub logs of " if finished(args[0]) else "partial logs (still running) of ")
          + args[0])
elif verb == "delete":
    if args[:1] == ["namespace"]:
        objs[:] = [o for o in objs if o[2] != args[1] and o != ["Namespace", args[1], ""]]
        save()
elif verb == "config":
    if "certificate-authority-data" in " ".join(args):
        print(base64.b64encode(b"STUB CA\n").decode(), end="")
elif verb == "describe":
    pass
else:
    die("stub: unsupported verb " + verb)
'''

STUB_CURL = r'''#!/usr/bin/env bash
echo "$*" >> "$STUB_STATE/curl.log"
for a in "$@"; do
  case $a in -k|--insecure) echo "curl: TLS off" >&2; exit 60;; esac
done
case "${*: -1}" in
  */version) echo '{"major":"1","minor":"34"}';;
  */namespaces) echo '{"kind":"NamespaceList","items":['\
'{"metadata":{"name":"default"}},{"metadata":{"name":"kube-system"}}]}';;
  */pods) echo '{"kind":"PodList","items":[{"metadata":{"name":"etcd-x"}}]}';;
  http://127.0.0.1:*) echo '<h1>Welcome to nginx!</h1>';;
  *) echo "curl: unexpected URL ${*: -1}" >&2; exit 6;;
esac
'''


@pytest.fixture
def stub_env(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "kubectl").write_text(STUB_KUBECTL.replace("#!PYTHON", f"#!{sys.executable}"))
    (bin_dir / "curl").write_text(STUB_CURL)
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    state = tmp_path / "state"
    state.mkdir()
    (tmp_path / "work").mkdir()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    return {
        "PATH": f"{bin_dir}{os.pathsep}/usr/local/bin:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "STUB_STATE": str(state),
        "K8S_CLUSTER_NAME": "kind-ksi-test",
        "K8S_CLUSTER_API": "https://127.0.0.1:41234",
        "K8S_CLUSTER_API_TOKEN": "stub-token",
        "K8S_PORT": "31234",
        "KUBECONFIG": str(kubeconfig),
        "KSI_NODE_COUNT": "1",
    }


def run_example(d: str, env: dict[str, str], **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(EXAMPLES / d / OWN[d])], env={**env, **extra},
                          cwd=str(Path(env["HOME"]) / "work"), capture_output=True,
                          text=True, timeout=60)


def calls(env: dict[str, str]) -> list[list[str]]:
    path = Path(env["STUB_STATE"]) / "calls.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def namespaces_left(env: dict[str, str]) -> list[str]:
    path = Path(env["STUB_STATE"]) / "objects.json"
    objs = json.loads(path.read_text()) if path.exists() else []
    return [o[1] for o in objs if o[0] == "Namespace"]


@pytest.mark.parametrize("d", sorted(OWN))
def test_example_runs_against_a_fresh_cluster(d: str, stub_env: dict[str, str]) -> None:
    r = run_example(d, stub_env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert calls(stub_env) or d == "kube-api"
    assert namespaces_left(stub_env) == [], "the example left its namespace behind"
    out = r.stdout
    if d == "kube-api":
        assert "namespace kube-system" in out
        curl_log = (Path(stub_env["STUB_STATE"]) / "curl.log").read_text()
        assert "--cacert" in curl_log
        ca = re.search(r"--cacert (\S+)", curl_log)
        assert ca and not Path(ca.group(1)).exists(), "the CA temp file was not removed"
        assert "stub-token" not in out + r.stderr, "the token was printed"
    elif d == "pod-nginx":
        assert "Welcome to nginx" in out
        assert f":{stub_env['K8S_PORT']}/" in out
    elif d == "job-pytorch":
        assert (Path(stub_env["HOME"]) / "work" / "out").is_dir()
        assert "stub logs of job/pytorch-train" in out
    else:
        assert "stub logs of" in out


@pytest.mark.parametrize("d", ["pod-sysbench", "job-pytorch", "job-yaml", "pod-nginx"])
def test_example_fails_fast_when_its_workload_fails(d: str, stub_env: dict[str, str]) -> None:
    t0 = time.monotonic()
    r = run_example(d, stub_env, STUB_OUTCOME="fail")
    assert r.returncode != 0, r.stdout + r.stderr
    assert time.monotonic() - t0 < 30, "a failed workload should end the wait at once"
    assert namespaces_left(stub_env) == [], "the example left its namespace behind"


@pytest.mark.parametrize("d", sorted(OWN))
def test_example_refuses_to_run_outside_ksi(d: str, stub_env: dict[str, str]) -> None:
    env = {k: v for k, v in stub_env.items() if not k.startswith("K8S_")}
    r = run_example(d, env)
    assert r.returncode != 0
    assert "ksi run" in r.stderr
    assert calls(env) == []


def test_stub_catches_a_racy_script(stub_env: dict[str, str], tmp_path: Path) -> None:
    """The stub behaves like a fresh cluster: the original's selector wait fails."""
    script = tmp_path / "racy.sh"
    script.write_text(textwrap.dedent('''\
        set -euo pipefail
        kubectl --context "$K8S_CLUSTER_NAME" create namespace x
        kubectl --context "$K8S_CLUSTER_NAME" -n x wait --for=condition=Ready pod -l app=x
        '''))
    r = subprocess.run(["bash", str(script)], env=stub_env, capture_output=True, text=True,
                       timeout=30)
    assert r.returncode != 0 and "no matching resources" in r.stderr


def test_stub_does_not_answer_succeeded_before_the_pod_finished(stub_env: dict[str, str],
                                                               tmp_path: Path) -> None:
    """A script that reads the phase and the logs without waiting sees what a real cluster
    shows then (Running, partial logs), not the end: the example checks above can fail."""
    script = tmp_path / "nowait.sh"
    script.write_text(textwrap.dedent('''\
        set -euo pipefail
        k() { kubectl --context "$K8S_CLUSTER_NAME" "$@"; }
        k create -f - <<EOF
        {"kind": "Pod", "metadata": {"name": "p"}}
        EOF
        echo "phase=$(k get pod/p -o jsonpath='{.status.phase}')"
        k logs pod/p
        k wait pod/p --for=jsonpath='{.status.phase}'=Succeeded --timeout=10s
        echo "phase=$(k get pod/p -o jsonpath='{.status.phase}')"
        k logs pod/p
        '''))
    r = subprocess.run(["bash", str(script)], env=stub_env, capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["phase=Running", "partial logs (still running) of pod/p",
                                     "condition met", "phase=Succeeded", "stub logs of pod/p"]


# --- the e2e skip logic (tests/e2e/conftest.py), checked here without a real node -----

def test_e2e_skip_logic_rejects_the_emulator() -> None:
    from tests.e2e.conftest import EMULATOR, _rootless_stack

    stack, missing = _rootless_stack(str(EMULATOR / "bin"))
    assert stack is None
    assert any(m.startswith("a real kind (") and "test emulator" in m for m in missing), missing
    assert any(m.startswith("a real kubectl (") for m in missing), missing
    assert any(m.startswith("a reachable rootless runtime (") for m in missing), missing


def test_e2e_skip_logic_names_what_is_missing(tmp_path: Path) -> None:
    from tests.e2e.conftest import _rootless_stack, cgroup_fs

    stack, missing = _rootless_stack(str(tmp_path))   # an empty PATH
    assert stack is None
    assert "kind (not on PATH)" in missing and "kubectl (not on PATH)" in missing
    assert any("nerdctl not on PATH" in m and "podman not on PATH" in m for m in missing)
    assert any(m.startswith("cgroup v2") for m in missing) == (cgroup_fs() != "cgroup2fs")


def test_image_names_normalize() -> None:
    from tests.e2e.conftest import normalize_image

    assert normalize_image("busybox:1.36") == "docker.io/library/busybox:1.36"
    assert normalize_image("docker.io/library/busybox:1.36") == "docker.io/library/busybox:1.36"
    assert normalize_image("severalnines/sysbench") == "docker.io/severalnines/sysbench:latest"
    assert normalize_image("localhost/ksi-busybox:e2e") == "localhost/ksi-busybox:e2e"
    assert normalize_image("ghcr.io/liqotech/ipam:v1.0.1") == "ghcr.io/liqotech/ipam:v1.0.1"
