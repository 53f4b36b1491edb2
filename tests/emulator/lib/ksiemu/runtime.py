"""Emulated rootless container runtimes: ``nerdctl`` and ``podman``.

Containers are JSON records, not processes, kept per machine and per user:
``$KSI_EMU_STATE/hosts/<hostname>/<runtime>-<uid>/containers/<name>.json``
(a real runtime is per machine, a rootless one per user).

Sources for messages (cited next to each):
- nerdctl: containerd/nerdctl cmd/nerdctl (logrus ``FATA[0000] <err>``, exit 1),
  pkg/namestore (``name %q is already used by ID %q``), PR #4097 (port check
  ``bind for <ip>:<port> failed: port is already allocated``), PR #1236 (``rm -f``
  of a missing container exits 0), pkg/rootlessutil (``rootless containerd not running?``).
- podman: observed on podman 4.3.1 here and containers/podman cmd/podman
  (``Error: ...``, exit 125; ``rm`` of a missing container exit 1; ``rm -f`` 0;
  ``cannot listen on the TCP port: listen tcp4 ...: bind: address already in use``
  exit 126 rootful, ``rootlessport listen tcp ...`` rootless).
"""

from __future__ import annotations

import glob
import json
import os
import sys
import time

from . import cli, faults, gpus, state

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Tuple

NERDCTL_DEFAULT = "2.1.3"
CONTAINERD_DEFAULT = "2.1.4"
PODMAN_DEFAULT = "5.4.2"


class Runtime:
    def __init__(self, name: str) -> None:
        self.name = name
        self.podman = name == "podman"
        self.version = faults.version(name, PODMAN_DEFAULT if self.podman else NERDCTL_DEFAULT)

    # ------------------------------------------------------------------ errors
    def die(self, msg: str, code: Optional[int] = None) -> None:
        if self.podman:
            # containers/podman cmd/podman/main.go: "Error: %s", exit 125 by default
            state.err("Error: " + msg)
            raise state.EmuExit(125 if code is None else code)
        # nerdctl cmd/nerdctl/main.go: log.L.Fatal(err) -> "FATA[0000] <err>", exit 1
        state.err("FATA[0000] " + msg)
        raise state.EmuExit(1 if code is None else code)

    def flag_error(self, sub: str, e: Exception) -> None:
        if self.podman:
            # observed (podman 4.3.1): "Error: unknown flag: --foo\nSee 'podman run --help'", 125
            state.err(f"Error: {e}\nSee 'podman {sub} --help'")
            raise state.EmuExit(125)
        # nerdctl: cobra flag error reported through logrus Fatal
        state.err(f"FATA[0000] {e}")
        raise state.EmuExit(1)

    # ------------------------------------------------------------------ store
    def store_dir(self) -> str:
        return state.dir_path(
            "hosts", state.hostname(), f"{self.name}-{state.uid()}", shared_levels=2
        )

    def lock(self):
        return state.locked(os.path.join(self.store_dir(), ".lock"))

    def cdir(self) -> str:
        return state.ensure_dir(os.path.join(self.store_dir(), "containers"))

    def containers(self) -> List[Dict[str, Any]]:
        res = []
        for p in sorted(glob.glob(os.path.join(glob.escape(self.cdir()), "*.json"))):
            c = state.read_json(p)
            if c:
                res.append(c)
        res.sort(key=lambda c: c.get("created", 0), reverse=True)
        return res

    def find(self, ref: str) -> Optional[Dict[str, Any]]:
        c = state.read_json(os.path.join(self.cdir(), ref + ".json"))
        if c:
            return c
        if len(ref) >= 3:
            for c in self.containers():
                if c["id"].startswith(ref):
                    return c
        return None

    def save(self, c: Dict[str, Any]) -> None:
        state.write_json(os.path.join(self.cdir(), c["name"] + ".json"), c)

    def images_path(self) -> str:
        return os.path.join(self.store_dir(), "images.json")

    def images(self) -> Dict[str, Any]:
        return state.read_json(self.images_path(), {}) or {}

    def image_present(self, ref: str) -> bool:
        if os.environ.get("KSI_EMU_IMAGES_PRESENT", "1") != "0":
            return True
        return normalize_image(ref) in self.images()

    def add_images(self, refs: List[str]) -> None:
        def upd(cur: Optional[Dict[str, Any]]) -> Dict[str, Any]:
            cur = cur or {}
            for r in refs:
                cur[normalize_image(r)] = {
                    "id": "sha256:" + _hashlib().sha256(r.encode()).hexdigest(),
                    "created": time.time(),
                }
            return cur

        state.update_json(self.images_path(), upd, {})

    # ------------------------------------------------------------------ entry
    def main(self, argv: List[str]) -> int:
        # global flags before the subcommand
        args = list(argv)
        while (
            args and args[0].startswith("-") and args[0] not in ("-v", "--version", "-h", "--help")
        ):
            a = args.pop(0)
            if (
                "=" not in a
                and a
                in (
                    "--namespace",
                    "-n",
                    "--address",
                    "-a",
                    "--log-level",
                    "--cgroup-manager",
                    "--root",
                    "--runroot",
                    "--storage-driver",
                    "--host-gateway-ip",
                    "--data-root",
                    "--snapshotter",
                    "--storage-opt",
                )
                and args
            ):
                args.pop(0)
        if not args or args[0] in ("-h", "--help", "help"):
            state.out(f"Usage: {self.name} [flags] COMMAND")
            return 0
        if args[0] in ("-v", "--version"):
            # kind providers/*/util.go IsAvailable: first line must start with
            # "nerdctl version" / "podman version"
            state.out(f"{self.name} version {self.version}")
            return 0
        sub, rest = args[0], args[1:]
        if not self.podman:
            rest = _json_alias(rest)
        if sub == "version" and not self.podman:
            return self.cmd_version(rest)
        if self.podman and sub == "version" and "--format" not in " ".join(rest):
            return self.cmd_version(rest)
        if faults.should_fail("runtime", "daemon"):
            self.daemon_down()
        handler = {
            "version": self.cmd_version,
            "info": self.cmd_info,
            "run": self.cmd_run,
            "create": self.cmd_run,
            "ps": self.cmd_ps,
            "container": self.cmd_container,
            "rm": self.cmd_rm,
            "inspect": self.cmd_inspect,
            "logs": self.cmd_logs,
            "exec": self.cmd_exec,
            "load": self.cmd_load,
            "save": self.cmd_save,
            "images": self.cmd_images,
            "image": self.cmd_image,
            "pull": self.cmd_pull,
            "update": self.cmd_noop_names,
            "stop": self.cmd_stop,
            "wait": self.cmd_wait,
            "kill": self.cmd_stop,
            "start": self.cmd_start,
            "network": self.cmd_network,
            "volume": self.cmd_volume,
            "rmi": self.cmd_rmi,
        }.get(sub)
        if handler is None:
            if self.podman:
                state.err(
                    f"Error: unrecognized command `podman {sub}`\nTry 'podman --help' for more "
                    f"information"
                )
                return 125
            state.err(f'FATA[0000] unknown subcommand "{sub}" for "nerdctl"')
            return 1
        return handler(rest) or 0

    def daemon_down(self) -> None:
        if self.podman:
            # containers/podman pkg/bindings/connection.go (podman 4.x/5.x remote client)
            state.err(
                "Cannot connect to Podman. Please verify your connection to the Linux system using "
                "`podman system connection list`, or try `podman machine init` and `podman "
                "machine start` "
                "to manage a new Linux VM\nError: unable to connect to Podman socket: Get "
                f'"http://d/v5.0.0/libpod/_ping": dial unix '
                f"/run/user/{state.uid()}/podman/podman.sock: "
                "connect: "
                "no such file or directory"
            )
            raise state.EmuExit(125)
        # nerdctl pkg/rootlessutil/parent_linux.go ParentMain
        state.err(
            "FATA[0000] rootless containerd not running? (hint: use "
            "`containerd-rootless-setuptool.sh "
            f"install` to start rootless containerd): stat "
            f"/run/user/{state.uid()}/containerd-rootless: no "
            "such file "
            "or directory"
        )
        raise state.EmuExit(1)

    # ------------------------------------------------------------------ version / info
    def cmd_version(self, argv: List[str]) -> int:
        fmt = None
        for i, a in enumerate(argv):
            if a in ("--format", "-f") and i + 1 < len(argv):
                fmt = argv[i + 1]
            elif a.startswith("--format="):
                fmt = a.split("=", 1)[1]
        if self.podman:
            data = {
                "Client": {
                    "APIVersion": self.version,
                    "Version": self.version,
                    "GoVersion": "go1.23.6",
                    "OsArch": "linux/amd64",
                    "Os": "linux",
                },
                "Server": {"APIVersion": self.version, "Version": self.version},
            }
            if fmt:
                if faults.should_fail("runtime", "daemon") and ".Server" in fmt:
                    self.daemon_down()
                state.out(
                    _gotmpl().render(fmt, data) if fmt != "json" else json.dumps(data, indent=4)
                )
                return 0
            # podman version (podman 4.3.1 observed layout)
            state.out(
                f"Client:       Podman Engine\nVersion:      {self.version}\nAPI Version:  "
                f"{self.version}\nGo Version:   go1.23.6\n"
                "Built:        Tue Feb 11 00:00:00 2025\nOS/Arch:      linux/amd64"
            )
            return 0
        ctd = faults.version("containerd", CONTAINERD_DEFAULT)
        data = {
            "Client": {
                "Version": "v" + self.version,
                "GitCommit": "0123456789abcdef",
                "GoVersion": "go1.24.5",
                "Os": "linux",
                "Arch": "amd64",
                "Components": [{"Name": "buildctl", "Version": "v0.23.2"}],
            },
            "Server": {
                "Components": [
                    {"Name": "containerd", "Version": "v" + ctd},
                    {"Name": "runc", "Version": "1.3.0"},
                ]
            },
        }
        down = faults.should_fail("runtime", "daemon")
        if fmt:
            if down and "Server" in fmt:
                self.daemon_down()
            if down:
                # cmd/nerdctl/version.go versionAction: rootless without a running containerd,
                # the socket address is not found: a warning, Client only, exit 0
                state.err(
                    "WARN[0000] failed to inspect the rootless containerd socket address  "
                    f'error="stat /run/user/{state.uid()}/containerd-rootless: no such file or '
                    'directory"'
                )
                data["Server"] = None
            state.out(_gotmpl().render(fmt, data))
            return 0
        # nerdctl cmd/nerdctl/system/version.go layout
        state.out(
            f"Client:\n Version:\tv{self.version}\n OS/Arch:\tlinux/amd64\n Git "
            f"commit:\t0123456789abcdef\n"
            " buildctl:\n  Version:\tv0.23.2\n"
        )
        if down:
            self.daemon_down()
        state.out(
            f"Server:\n containerd:\n  Version:\tv{ctd}\n  GitCommit:\t0123456789abcdef\n runc:\n"
            "  Version:\t1.3.0\n  GitCommit:\tv1.3.0-0-g0000000"
        )
        return 0

    def cmd_info(self, argv: List[str]) -> int:
        fmt = None
        for i, a in enumerate(argv):
            if a in ("--format", "-f") and i + 1 < len(argv):
                fmt = argv[i + 1]
            elif a.startswith("--format="):
                fmt = a.split("=", 1)[1]
        rootless = os.environ.get("KSI_EMU_ROOTLESS", "1") != "0"
        cg = os.environ.get("KSI_EMU_CGROUP_VERSION", "2")
        ctrls = os.environ.get("KSI_EMU_CGROUP_CONTROLLERS", "cpuset,cpu,io,memory,pids").split(",")
        ctrls = [c for c in ctrls if c]
        driver = os.environ.get("KSI_EMU_CGROUP_DRIVER", "systemd" if cg == "2" else "cgroupfs")
        if self.podman:
            # kind providers/podman/provider.go podmanInfo: host.cgroupVersion "v2",
            # host.cgroupControllers, host.security.rootless
            data = {
                "host": {
                    "arch": "amd64",
                    "cgroupManager": driver,
                    "cgroupVersion": "v" + cg,
                    "cgroupControllers": ctrls if cg == "2" else [],
                    "hostname": state.hostname(),
                    "security": {"rootless": rootless},
                    "os": "linux",
                },
                "version": {"Version": self.version, "APIVersion": self.version},
                # libpod define.StoreInfo (store.graphRoot, store.graphDriverName)
                "store": {
                    "graphDriverName": "overlay",
                    "graphRoot": os.path.join(self.store_dir(), "storage"),
                },
            }
            if fmt in ("json", "{{json .}}"):
                state.out(json.dumps(data, indent=4))
            elif fmt:
                state.out(_gotmpl().render(fmt, data))
            else:
                state.out(
                    f"host:\n  cgroupVersion: v{cg}\n  security:\n    rootless: "
                    f"{str(rootless).lower()}\nversion:\n  Version: {self.version}"
                )
            return 0
        # kind providers/nerdctl/provider.go dockerInfo: CgroupDriver, CgroupVersion,
        # MemoryLimit, PidsLimit, CPUShares, SecurityOptions ("name=rootless")
        sec = ["name=seccomp,profile=default", "name=cgroupns"]
        if rootless:
            sec.append("name=rootless")
        data = {
            "ID": "emu",
            "Driver": "overlayfs",
            "Plugins": {},
            "LoggingDriver": "json-file",
            "CgroupDriver": driver,
            "CgroupVersion": cg,
            "MemoryLimit": "memory" in ctrls or cg == "1",
            "SwapLimit": True,
            "CpuCfsPeriod": True,
            "CpuCfsQuota": True,
            "CPUShares": "cpu" in ctrls or cg == "1",
            "CPUSet": True,
            "PidsLimit": "pids" in ctrls or cg == "1",
            "IPv4Forwarding": True,
            "KernelVersion": os.uname().release,
            "OperatingSystem": "Linux",
            "OSType": "linux",
            "Architecture": "x86_64",
            "NCPU": os.cpu_count() or 1,
            "MemTotal": 8 << 30,
            "Name": state.hostname(),
            "ServerVersion": faults.version("containerd", CONTAINERD_DEFAULT),
            "SecurityOptions": sec,
        }
        if fmt:
            state.out(_gotmpl().render(fmt, data))
        else:
            state.out(
                "Client:\n Namespace:\tdefault\n Debug Mode:\tfalse\n\nServer:\n Server Version: "
                "{}\n"
                " Storage Driver: overlayfs\n Logging Driver: json-file\n Cgroup Driver: {}\n"
                " Cgroup Version: {}\n Security Options:\n{}".format(
                    data["ServerVersion"], driver, cg, "\n".join("  " + s for s in sec)
                )
            )
        return 0

    # ------------------------------------------------------------------ run
    def run_spec(self) -> cli.Spec:
        s = cli.Spec()
        s.add("name", "--name")
        s.add("detach", "-d", "--detach", kind="bool")
        s.add("tty", "-t", "--tty", kind="bool")
        s.add("interactive", "-i", "--interactive", kind="bool")
        s.add("rm", "--rm", kind="bool")
        s.add("label", "-l", "--label", kind="list")
        if self.podman or faults.version_tuple(self.version) >= (2,):
            # nerdctl: `run --annotation` since v2.0.0-beta.3 (containerd/nerdctl f42ab2ff);
            # 1.x: "FATA[0000] unknown flag: --annotation" (seen with 1.7.7 in tests/vm)
            s.add("annotation", "--annotation", kind="list")
        s.add("net", "--net", "--network", kind="list")
        s.add("restart", "--restart")
        s.add("init", "--init", kind="bool")
        s.add("hostname", "-h", "--hostname")
        s.add("privileged", "--privileged", kind="bool")
        s.add("security_opt", "--security-opt", kind="list")
        s.add("tmpfs", "--tmpfs", kind="list")
        s.add("volume", "-v", "--volume", kind="list")
        s.add("env", "-e", "--env", kind="list")
        s.add("publish", "-p", "--publish", kind="list")
        s.add("device", "--device", kind="list")
        s.add("sysctl", "--sysctl", kind="list")
        s.add("cgroupns", "--cgroupns")
        s.add("entrypoint", "--entrypoint")
        s.add("user", "-u", "--user")
        s.add("workdir", "-w", "--workdir")
        s.add("mount", "--mount", kind="list")
        s.add("cap_add", "--cap-add", kind="list")
        s.add("ulimit", "--ulimit", kind="list")
        s.add("memory", "-m", "--memory")
        s.add("cpus", "--cpus")
        s.add("pids_limit", "--pids-limit")
        s.add("pull", "--pull")
        s.add("platform", "--platform")
        s.add("cgroup_parent", "--cgroup-parent")
        if self.podman:
            s.add("userns", "--userns")
            s.add("log_driver", "--log-driver")
            s.add("replace", "--replace", kind="bool")
        else:
            s.add("snapshotter", "--snapshotter")
            s.add("gpus", "--gpus", kind="list")
            s.add("log_driver", "--log-driver")
        return s

    def cmd_run(self, argv: List[str]) -> int:
        try:
            vals, pos = cli.parse(argv, self.run_spec(), interspersed=False)
        except cli.FlagError as e:
            self.flag_error("run", e)
            return 1
        if not pos:
            self.die(
                f'"{self.name} run" requires at least 1 argument.'
                if not self.podman
                else "requires at least 1 arg(s), only received 0"
            )
        image, cmd = pos[0], pos[1:]
        faults.delay("runtime", "run")
        name = cli.get_str(vals, "name") or (
            "emu_" + _hashlib().sha1(str(time.time()).encode()).hexdigest()[:8]
        )
        cid = (
            _hashlib()
            .sha256((f"{state.hostname()}/{self.name}/{name}/{time.time():f}").encode())
            .hexdigest()
        )
        labels = dict(_kv(x) for x in vals["label"])  # type: ignore[union-attr]
        annotations = dict(_kv(x) for x in vals.get("annotation") or [])  # type: ignore[union-attr]
        if not self.podman and faults.version_tuple(self.version) >= (2,):
            # nerdctl 2.x pkg/cmd/container/create.go withContainerLabels
            for k in labels:
                if k.startswith("nerdctl/bypass4netns"):
                    state.err(f'WARN[0000] Label "{k}" is deprecated, use an annotation instead')
        ports = []
        for p in vals["publish"]:  # type: ignore[union-attr]
            try:
                ports.append(parse_publish(p))
            except ValueError as e:
                self.die(str(e))
        if not self.image_present(image):
            self.pull_fail(image)
        with self.lock():
            existing = self.find(name) if name else None
            if existing and existing["name"] == name:
                if self.podman:
                    # observed podman 4.3.1 (exit 125)
                    self.die(
                        'creating container storage: the container name "{}" is already in use by '
                        "{}. "
                        "You have to remove that container to be able to reuse that name: that "
                        "name is "
                        "already in use".format(name, existing["id"])
                    )
                # nerdctl pkg/namestore: name %q is already used by ID %q
                self.die('name "{}" is already used by ID "{}"'.format(name, existing["id"]))
            with state.locked(
                state.path("hosts", state.hostname(), ".ports.lock", shared_levels=2)
            ):
                used = host_ports()
                for pm in ports:
                    if not pm["host_port"]:
                        pm["host_port"] = free_port(pm["host_ip"], pm["proto"], used)
                for pm in ports:
                    if port_clash(pm, used) or not real_bind_ok(
                        pm["host_ip"], pm["host_port"], pm["proto"]
                    ):
                        self.port_in_use(pm)
                    used.append(dict(pm))
                n = len(self.containers())
                c = {
                    "id": cid,
                    "name": name,
                    "hostname": cli.get_str(vals, "hostname") or cid[:12],
                    "image": image,
                    "cmd": cmd,
                    "labels": labels,
                    "annotations": annotations,
                    "ports": ports,
                    "volumes": list(vals["volume"]),
                    "tmpfs": list(vals["tmpfs"]),  # type: ignore
                    "env": list(vals["env"]),
                    "privileged": bool(vals["privileged"]),  # type: ignore
                    "networks": list(vals["net"]) or ["bridge"],
                    "restart": vals.get("restart"),  # type: ignore
                    "security_opt": list(vals["security_opt"]),
                    "devices": list(vals["device"]),  # type: ignore
                    "created": time.time(),
                    "running": True,
                    "pid": 10000 + (int(cid[:6], 16) % 50000),
                    "ip": f"10.89.0.{2 + n % 250}" if self.podman else f"10.4.0.{2 + n % 250}",
                    "uid": state.uid(),
                    "host": state.hostname(),
                    "runtime": self.name,
                    "argv": ["run"] + list(argv),
                    "images": [],
                    "execs": [],
                }
                self.save(c)
        if vals["detach"]:
            state.out(cid)
        return 0

    def pull_fail(self, image: str) -> None:
        ref = normalize_image(image)
        if self.podman:
            self.die(
                f"initializing source docker://{ref}: pinging container registry "
                f'{_registry(ref)}: Get "https://{_registry_host(ref)}/v2/": '
                f"dial tcp: lookup {_registry_host(ref)}: no such host"
            )
        self.die(
            f'failed to resolve reference "{ref}": failed to do request: Head '
            f'"https://{_registry_host(ref)}/v2/{_repo(ref)}/manifests/{_tag(ref)}": '
            f"dial tcp: lookup {_registry_host(ref)}: no such host"
        )

    def port_in_use(self, pm: Dict[str, Any]) -> None:
        ip = pm["host_ip"] or "0.0.0.0"
        if self.podman:
            rootless = os.environ.get("KSI_EMU_ROOTLESS", "1") != "0"
            if rootless:
                # podman rootlessport (pkg/rootlessport):
                # "rootlessport listen tcp 0.0.0.0:8080: bind: address already in use"
                self.die(
                    "rootlessport listen {} {}:{}: bind: address already in use".format(
                        pm["proto"], ip, pm["host_port"]
                    ),
                    126,
                )
            # observed podman 4.3.1 rootful (exit 126):
            # "cannot listen on the TCP port: listen tcp4 :43737: bind: ..."
            shown = "" if ip in ("0.0.0.0", "") else ip
            self.die(
                "cannot listen on the {} port: listen {}4 {}:{}: bind: address already in "
                "use".format(pm["proto"].upper(), pm["proto"], shown, pm["host_port"]),
                126,
            )
        # nerdctl PR #4097 (2.1):
        # "failed to load networking flags: bind for :8080 failed: port is already allocated"
        shown = "" if ip in ("0.0.0.0", "") else ip
        self.die(
            "failed to load networking flags: bind for {}:{} failed: port is already "
            "allocated".format(shown, pm["host_port"])
        )

    # ------------------------------------------------------------------ ps
    def cmd_container(self, argv: List[str]) -> int:
        if not argv:
            return 0
        m = {
            "ls": self.cmd_ps,
            "list": self.cmd_ps,
            "rm": self.cmd_rm,
            "inspect": self.cmd_inspect,
            "run": self.cmd_run,
            "create": self.cmd_run,
            "logs": self.cmd_logs,
            "exec": self.cmd_exec,
            "stop": self.cmd_stop,
            "start": self.cmd_start,
        }
        h = m.get(argv[0])
        if h is None:
            self.die(f'unknown subcommand "{argv[0]}"')
            return 1
        return h(argv[1:])

    def ps_item(self, c: Dict[str, Any]) -> Dict[str, Any]:
        labels = dict(c.get("labels", {}))
        ports = ", ".join(
            "{}:{}->{}/{}".format(
                p["host_ip"] or "0.0.0.0", p["host_port"], p["container_port"], p["proto"]
            )
            for p in c.get("ports", [])
        )
        item: Dict[str, Any] = {
            "ID": c["id"][:12] if not self.podman else c["id"],
            "Names": c["name"],
            "Image": c["image"],
            "Labels": labels,
            "Ports": ports,
            "Status": "Up" if c.get("running") else "Exited (0)",
            "State": "running" if c.get("running") else "exited",
            "CreatedAt": time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(c["created"])),
            "Command": " ".join(c.get("cmd", [])),
        }
        if self.podman:
            item["Names"] = [c["name"]]
            item["Id"] = c["id"]
        if not self.podman or faults.version_tuple(self.version) >= (5,):
            item["__m_Label"] = lambda k: labels.get(k, "")
        return item

    def nerdctl_list_item(self, c: Dict[str, Any]) -> Dict[str, Any]:
        it = self.ps_item(c)
        return {
            "Command": json.dumps(it["Command"]),
            "CreatedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(c["created"])),
            "ID": it["ID"],
            "Image": c["image"],
            "Platform": "linux/amd64",
            "Names": c["name"],
            "Ports": it["Ports"],
            "Status": it["Status"],
            "Runtime": "io.containerd.runc.v2",
            "Size": "",
            "Labels": ",".join(f"{k}={v}" for k, v in it["Labels"].items()),
        }

    def podman_ps_json(self, c: Dict[str, Any]) -> Dict[str, Any]:
        """One item of `podman ps --format json` as real podman 4.3.1 prints it here (recorded:
        tests/emulator/recorded/podman-ps-json.json): lists for Names, Command, Ports."""
        item = _strip(self.ps_item(c))
        item.pop("ID", None)
        item.update({
            "Command": list(c.get("cmd", [])),
            "Ports": [{"host_ip": p["host_ip"] or "", "container_port": p["container_port"],
                       "host_port": p["host_port"], "range": 1, "protocol": p["proto"]}
                      for p in c.get("ports", [])],
            "Exited": not c.get("running"), "ExitCode": 0, "Pid": 0, "Pod": "",
            "Created": int(c["created"]), "Status": "Up" if c.get("running") else "Exited",
        })
        return item

    def cmd_ps(self, argv: List[str]) -> int:
        s = cli.Spec()
        s.add("all", "-a", "--all", kind="bool")
        s.add("filter", "-f", "--filter", kind="list")
        s.add("format", "--format")
        s.add("quiet", "-q", "--quiet", kind="bool")
        s.add("notrunc", "--no-trunc", kind="bool")
        s.add("size", "-s", "--size", kind="bool")
        try:
            vals, _ = cli.parse(argv, s)
        except cli.FlagError as e:
            self.flag_error("ps", e)
            return 1
        items = []
        for c in self.containers():
            if not vals["all"] and not c.get("running"):
                continue
            ok = True
            for f in vals["filter"]:  # type: ignore[union-attr]
                k, _, v = f.partition("=")
                if k == "label":
                    lk, eq, lv = v.partition("=")
                    if lk not in c.get("labels", {}) or (eq and c["labels"][lk] != lv):
                        ok = False
                elif k == "name":
                    if v not in c["name"]:
                        ok = False
                elif k == "id":
                    if not c["id"].startswith(v):
                        ok = False
                elif k == "status" and (v == "running") != bool(c.get("running")):
                    ok = False
            if ok:
                items.append(c)
        fmt = cli.opt(vals, "format")
        if vals["quiet"]:
            for c in items:
                state.out(c["id"][:12])
            return 0
        if fmt:
            if not self.podman and fmt.replace(" ", "") == "{{json.}}":
                # pkg/cmd/container/list.go ListItem: one object per line, Names and Labels
                # strings (formatter.FormatLabels: k=v joined by ","), LabelsMap not shown
                for c in items:
                    state.out(json.dumps(self.nerdctl_list_item(c), separators=(",", ":")))
                return 0
            if fmt in ("json", "{{json .}}") and self.podman and fmt == "json":
                state.out(json.dumps([self.podman_ps_json(c) for c in items], indent=4))
                return 0
            for c in items:
                item = self.ps_item(c)
                if self.podman:
                    item = dict(item)
                    item["Names"] = c["name"]  # podman's template .Names renders the first name
                try:
                    line = _gotmpl().render(
                        fmt, _json_ready(item), methods_err=self._tmpl_method_err
                    )
                except _gotmpl().TemplateError as e:
                    self.die(str(e))
                    return 1
                state.out(line)
            return 0
        state.out("CONTAINER ID    IMAGE    COMMAND    CREATED    STATUS    PORTS    NAMES")
        for c in items:
            it = self.ps_item(c)
            state.out(
                '{}    {}    "{}"    -    {}    {}    {}'.format(
                    c["id"][:12], c["image"], it["Command"], it["Status"], it["Ports"], c["name"]
                )
            )
        return 0

    def _tmpl_method_err(self, field: str) -> Optional[str]:
        if field == "Label" and self.podman and faults.version_tuple(self.version) < (5,):
            # observed podman 4.3.1
            return (
                'template: ps:1:24: executing "ps" at <.Label>: can\'t evaluate field Label in '
                "type "
                "containers.psReporter"
            )
        return None

    # ------------------------------------------------------------------ rm / stop
    def cmd_rm(self, argv: List[str]) -> int:
        s = cli.Spec()
        s.add("force", "-f", "--force", kind="bool")
        s.add("volumes", "-v", "--volumes", kind="bool")
        s.add("all", "-a", "--all", kind="bool")
        if self.podman:  # podman rm --time; nerdctl rm has no such flag (nerdctl docs)
            s.add("time", "-t", "--time")
        try:
            vals, names = cli.parse(argv, s)
        except cli.FlagError as e:
            self.flag_error("rm", e)
            return 1
        faults.delay("runtime", "rm")
        if names and faults.should_fail("runtime", "rm"):
            # a runtime that cannot remove a container (seen with podman + runc under load:
            # "cleaning up container …: runc delete --force … failed: exit status 1")
            self.die(
                f"cleaning up container {names[0]}: removing container {names[0]} from "
                "runtime: `runc delete --force` failed: exit status 1 (KSI_EMU_FAIL=runtime:rm)"
            )
            return 1
        missing = []
        with self.lock():
            for n in names:
                c = self.find(n)
                if not c:
                    missing.append(n)
                    continue
                if c.get("running") and not vals["force"]:
                    if self.podman:
                        state.err(
                            "Error: cannot remove container {} as it is running - running or "
                            "paused "
                            "containers cannot be removed without force: container state "
                            "improper".format(c["id"])
                        )
                        raise state.EmuExit(2)
                    self.die(
                        "1 errors:\ncontainer {} is in running status. unpause/stop container "
                        "first or "
                        "force removal".format(c["id"])
                    )
                state.remove(os.path.join(self.cdir(), c["name"] + ".json"))
                state.out(n)
        if missing and not vals["force"]:
            if self.podman:
                for n in missing:
                    # observed podman 4.3.1: exit 1
                    state.err(f'Error: no container with name or ID "{n}" found: no such container')
                raise state.EmuExit(1)
            self.die(
                "{} errors:\n{}".format(
                    len(missing), "\n".join(f"no such container: {n}" for n in missing)
                )
            )
        return 0

    def cmd_noop_names(self, argv: List[str]) -> int:
        names = [a for a in argv if not a.startswith("-")]
        for n in names:
            if not self.find(n):
                self.die(
                    f"1 errors:\nno such container: {n}"
                    if not self.podman
                    else f'no container with name or ID "{n}" found: no such container'
                )
        return 0

    def cmd_stop(self, argv: List[str]) -> int:
        names = [a for a in argv if not a.startswith("-")]
        with self.lock():
            for n in names:
                c = self.find(n)
                if not c:
                    self.die(
                        f"1 errors:\nno such container: {n}"
                        if not self.podman
                        else f'no container with name or ID "{n}" found: no such container'
                    )
                    return 1
                c["running"] = False
                self.save(c)
                state.out(n)
        return 0

    def cmd_start(self, argv: List[str]) -> int:
        names = [a for a in argv if not a.startswith("-")]
        with self.lock():
            for n in names:
                c = self.find(n)
                if not c:
                    self.die(
                        f'no container with name or ID "{n}" found: no such container'
                        if self.podman
                        else f"1 errors:\nno such container: {n}"
                    )
                    return 1
                c["running"] = True
                self.save(c)
                state.out(n)
        return 0

    def cmd_wait(self, argv: List[str]) -> int:
        names = [a for a in argv if not a.startswith("-")]
        for n in names:
            if not self.find(n):
                self.die(
                    f"1 errors:\nno such container: {n}"
                    if not self.podman
                    else f'no container with name or ID "{n}" found: no such container'
                )
            state.out("0")
        return 0

    # ------------------------------------------------------------------ inspect
    def inspect_obj(self, c: Dict[str, Any]) -> Dict[str, Any]:
        ports: Dict[str, List[Dict[str, str]]] = {}
        for p in c.get("ports", []):
            ports.setdefault("{}/{}".format(p["container_port"], p["proto"]), []).append(
                {"HostIp": p["host_ip"] or "0.0.0.0", "HostPort": str(p["host_port"])}
            )
        return {
            "Id": c["id"],
            "ID": c["id"],
            "Name": c["name"] if self.podman else c["name"],
            "Created": state.rfc3339(c["created"]),
            "Image": c["image"],
            "ImageName": c["image"],
            "State": {
                "Status": "running" if c.get("running") else "exited",
                "Running": bool(c.get("running")),
                "Pid": c["pid"] if c.get("running") else 0,
                "ExitCode": 0,
            },
            "Config": {
                "Hostname": c.get("hostname"),
                "Labels": dict(c.get("labels", {})),
                "Annotations": dict(c.get("annotations", {})),
                "Env": list(c.get("env", [])),
                "Image": c["image"],
            },
            "HostConfig": {"Privileged": c.get("privileged", False), "Binds": c.get("volumes", [])},
            "Mounts": [
                {"Type": "bind", "Source": v.split(":")[0], "Destination": (v.split(":") + [""])[1]}
                for v in c.get("volumes", [])
                if ":" in v
            ],
            "NetworkSettings": {
                "Ports": ports,
                "IPAddress": c.get("ip", ""),
                "Networks": {n: {"IPAddress": c.get("ip", "")} for n in c.get("networks", [])},
            },
        }

    def cmd_inspect(self, argv: List[str]) -> int:
        s = cli.Spec()
        s.add("format", "-f", "--format")
        s.add("type", "--type", "-t")
        s.add("size", "-s", "--size", kind="bool")
        s.add("mode", "--mode")
        try:
            vals, names = cli.parse(argv, s)
        except cli.FlagError as e:
            self.flag_error("inspect", e)
            return 1
        typ = cli.get_str(vals, "type")
        fmt = cli.opt(vals, "format")
        if typ == "image":
            return self.image_inspect(names, fmt)
        objs = []
        for n in names:
            c = self.find(n)
            if c is None:
                if typ != "container" and self.image_known(n):
                    objs.append(self.image_obj(n))
                    continue
                if self.podman:
                    if not fmt:
                        state.out("[]")
                    old = faults.version_tuple(self.version) < (5,)
                    # observed podman 4.3.1: 'inspecting object: no such object: "x"';
                    # 5.x drops the prefix
                    self.die(("inspecting object: " if old else "") + f'no such object: "{n}"')
                self.die(f"1 errors:\nno such object: {n}")
            objs.append(self.inspect_obj(c))
        return self.print_objs(objs, fmt)

    def print_objs(self, objs: List[Dict[str, Any]], fmt: Optional[str]) -> int:
        """inspect's output: each object through the --format template, else a JSON list."""
        if fmt:
            for o in objs:
                try:
                    state.out(_gotmpl().render(fmt, o))
                except _gotmpl().TemplateError as e:
                    self.die(str(e))
        else:
            state.out(json.dumps(objs, indent=4))
        return 0

    def image_known(self, ref: str) -> bool:
        return normalize_image(ref) in self.images()

    def image_obj(self, ref: str) -> Dict[str, Any]:
        info = self.images().get(normalize_image(ref)) or {
            "id": "sha256:" + _hashlib().sha256(ref.encode()).hexdigest()
        }
        return {"Id": info["id"], "RepoTags": [normalize_image(ref)], "Size": 1 << 20}

    def image_inspect(self, names: List[str], fmt: Optional[str]) -> int:
        objs = []
        for n in names:
            if not self.image_present(n):
                if self.podman:
                    if not fmt:
                        state.out("[]")
                    old = faults.version_tuple(self.version) < (5,)
                    # observed podman 4.3.1: "inspecting object: nope: image not known"
                    self.die(("inspecting object: " if old else "") + f"{n}: image not known")
                self.die(f"1 errors:\nno such image: {n}")
            objs.append(self.image_obj(n))
        return self.print_objs(objs, fmt)

    # ------------------------------------------------------------------ logs / exec
    def cmd_logs(self, argv: List[str]) -> int:
        names = [a for a in argv if not a.startswith("-")]
        if not names:
            self.die('"logs" requires exactly 1 argument')
        c = self.find(names[0])
        if not c:
            if self.podman:
                self.die(f'no container with name or ID "{names[0]}" found: no such container')
            self.die(f"no such container: {names[0]}")
            return 1
        # kind common.NodeReachedCgroupsReadyRegexp waits for this line in the node's logs
        state.out("INFO: running in a user namespace (experimental)")
        state.out("INFO: ensuring we can execute mount/umount even with userns-remap")
        state.out("systemd 252.22-1~deb12u1 running in system mode (+PAM +AUDIT ...)")
        if not c.get("logline_stuck"):
            state.out("[  OK  ] Reached target multi-user.target - Multi-User System.")
        return 0

    def cmd_exec(self, argv: List[str]) -> int:
        s = cli.Spec()
        s.add("interactive", "-i", "--interactive", kind="bool")
        s.add("tty", "-t", "--tty", kind="bool")
        s.add("privileged", "--privileged", kind="bool")
        s.add("env", "-e", "--env", kind="list")
        s.add("workdir", "-w", "--workdir")
        s.add("user", "-u", "--user")
        s.add("detach", "-d", "--detach", kind="bool")
        try:
            vals, pos = cli.parse(argv, s, interspersed=False)
        except cli.FlagError as e:
            self.flag_error("exec", e)
            return 1
        if not pos:
            self.die('"exec" requires at least 2 arguments')
        name, cmd = pos[0], pos[1:]
        c = self.find(name)
        if not c:
            if self.podman:
                self.die(f'no container with name or ID "{name}" found: no such container')
            self.die(f"no such container: {name}")
            return 1
        if not c.get("running"):
            self.die(
                "container {} is not running".format(c["id"])
                if not self.podman
                else "can only create exec sessions on running containers: container state "
                "improper",
                255,
            )
        out_text = ""
        new_images: List[str] = []
        if cmd[:2] == ["cat", "/kind/version"]:
            out_text = "v" + faults.version("k8s", "1.34.0") + "\n"
        elif cmd and cmd[0] == "ctr" and "import" in cmd:
            data = sys.stdin.buffer.read() if vals["interactive"] else b""
            new_images = archive_tags(data)
            if not new_images:
                state.err("ctr: unrecognized image format")
                raise state.EmuExit(1)
            for t in new_images:
                out_text += (
                    f"unpacking {t} (sha256:{_hashlib().sha256(t.encode()).hexdigest()})...done\n"
                )
        elif cmd and cmd[0] == "ctr" and "images" in cmd and ("ls" in cmd or "list" in cmd):
            out_text = "".join(f"{i}\n" for i in c.get("images", []))
        elif cmd[:2] == ["nvidia-smi", "-L"]:  # the GPUs the host toolkit injected
            out_text, code = gpus.smi_list(c.get("volumes") or [])
            if code:
                sys.stdout.write(out_text)
                raise state.EmuExit(code)
        elif cmd and cmd[0] == "crictl" and "images" in cmd:
            out_text = "IMAGE TAG IMAGE ID SIZE\n" + "".join(f"{i}\n" for i in c.get("images", []))
        with self.lock():
            c = self.find(name) or c
            c.setdefault("execs", []).append(cmd)
            c["execs"] = c["execs"][-50:]
            for t in new_images:
                if t not in c.setdefault("images", []):
                    c["images"].append(t)
            self.save(c)
        sys.stdout.write(out_text)
        return 0

    # ------------------------------------------------------------------ images
    def cmd_load(self, argv: List[str]) -> int:
        s = cli.Spec()
        s.add("input", "-i", "--input")
        s.add("quiet", "-q", "--quiet", kind="bool")
        s.add("platform", "--platform", kind="list")
        s.add("all_platforms", "--all-platforms", kind="bool")
        try:
            vals, _ = cli.parse(argv, s)
        except cli.FlagError as e:
            self.flag_error("load", e)
            return 1
        src = cli.opt(vals, "input")
        try:
            if src:
                with open(src, "rb") as f:
                    data = f.read()
            else:
                data = sys.stdin.buffer.read()
        except OSError as e:
            self.die(f"open {src}: {e.strerror.lower() if e.strerror else e}")
            return 1
        tags = archive_tags(data)
        if not tags:
            if self.podman:
                self.die(
                    "payload does not match any of the supported image formats:\n * oci: "
                    "initializing "
                    "source oci:{}: open index.json: not a directory\n * docker-archive: loading "
                    "tar "
                    'component "manifest.json": file does not exist'.format(src or "/dev/stdin")
                )
            self.die("unrecognized image format")
        self.add_images(tags)
        for t in tags:
            state.out(f"Loaded image: {normalize_image(t)}")
        return 0

    def cmd_save(self, argv: List[str]) -> int:
        s = cli.Spec()
        s.add("output", "-o", "--output")
        s.add("format", "--format")
        s.add("platform", "--platform", kind="list")
        try:
            vals, imgs = cli.parse(argv, s)
        except cli.FlagError as e:
            self.flag_error("save", e)
            return 1
        for i in imgs:
            if not self.image_present(i):
                self.die(f"{i}: image not known" if self.podman else f"no such image: {i}")
        data = make_archive(imgs)
        o = cli.opt(vals, "output")
        if o:
            with open(o, "wb") as f:
                f.write(data)
        else:
            sys.stdout.buffer.write(data)
        return 0

    def cmd_images(self, argv: List[str]) -> int:
        fmt = None
        for i, a in enumerate(argv):
            if a == "--format" and i + 1 < len(argv):
                fmt = argv[i + 1]
        imgs = self.images()
        if fmt:
            for ref, info in sorted(imgs.items()):
                repo, tag = ref.rsplit(":", 1)
                state.out(
                    _gotmpl().render(fmt, {"Repository": repo, "Tag": tag, "ID": info["id"][7:19]})
                )
            return 0
        state.out("REPOSITORY    TAG    IMAGE ID    CREATED    PLATFORM    SIZE    BLOB SIZE")
        for ref, info in sorted(imgs.items()):
            repo, tag = ref.rsplit(":", 1)
            state.out(
                "{}    {}    {}    -    linux/amd64    1.0MiB    1.0MiB".format(
                    repo, tag, info["id"][7:19]
                )
            )
        return 0

    def cmd_image(self, argv: List[str]) -> int:
        if not argv:
            return 0
        sub, rest = argv[0], argv[1:]
        if sub == "inspect":
            fmt = None
            names = []
            i = 0
            while i < len(rest):
                if rest[i] in ("-f", "--format") and i + 1 < len(rest):
                    fmt = rest[i + 1]
                    i += 2
                    continue
                if rest[i].startswith("--format="):
                    fmt = rest[i].split("=", 1)[1]
                elif not rest[i].startswith("-"):
                    names.append(rest[i])
                i += 1
            return self.image_inspect(names, fmt)
        if sub in ("ls", "list"):
            return self.cmd_images(rest)
        if sub == "load":
            return self.cmd_load(rest)
        if sub == "save":
            return self.cmd_save(rest)
        if sub == "pull":
            return self.cmd_pull(rest)
        if sub == "rm":
            return self.cmd_rmi(rest)
        self.die(f'unknown subcommand "{sub}"')
        return 1

    def cmd_rmi(self, argv: List[str]) -> int:
        names = [a for a in argv if not a.startswith("-")]

        def upd(cur: Optional[Dict[str, Any]]) -> Dict[str, Any]:
            cur = cur or {}
            for n in names:
                cur.pop(normalize_image(n), None)
            return cur

        state.update_json(self.images_path(), upd, {})
        return 0

    def cmd_pull(self, argv: List[str]) -> int:
        imgs = [a for a in argv if not a.startswith("-")]
        faults.delay("runtime", "pull")
        for i in imgs:
            if self.image_known(i):
                continue
            if os.environ.get("KSI_EMU_PULL_OK", "0") == "1":
                self.add_images([i])
                continue
            self.pull_fail(i)
        return 0

    # ------------------------------------------------------------------ networks / volumes
    def cmd_network(self, argv: List[str]) -> int:
        if not argv:
            return 0
        p = os.path.join(self.store_dir(), "networks.json")
        nets = state.read_json(p, {}) or {}
        sub, rest = argv[0], [a for a in argv[1:]]
        names = [a for a in rest if not a.startswith("-")]
        if sub == "inspect":
            fmt = None
            for i, a in enumerate(rest):
                if a in ("-f", "--format") and i + 1 < len(rest):
                    fmt = rest[i + 1]
                elif a.startswith(("--format=", "-f=")):  # kind's nerdctl network.go form
                    fmt = a.split("=", 1)[1]
            names = [n for n in names if n != fmt]
            objs = []
            for n in names:
                if n not in nets:
                    if self.podman:
                        self.die(
                            f"network {n}: unable to find network with name or ID {n}: network "
                            f"not found"
                        )
                    self.die(f"1 errors:\nno network found matching: {n}")
                objs.append(nets[n])
            if fmt:
                for o in objs:
                    state.out(_gotmpl().render(fmt, o))
            else:
                state.out(json.dumps(objs, indent=4))
            return 0
        if sub == "create":
            name = names[-1] if names else "net"
            if self.podman and name in nets:
                # real podman 4.3.1, run here: exit 125
                self.die(f"network name {name} already used: network already exists")

            def upd(cur: Optional[Dict[str, Any]]) -> Dict[str, Any]:
                cur = cur or {}
                if name not in cur:
                    sub_net = (
                        f"10.89.{len(cur) + 1}.0/24" if self.podman else f"10.4.{len(cur) + 1}.0/24"
                    )
                    cur[name] = {
                        "Name": name,
                        "name": name,
                        "IPAM": {"Config": [{"Subnet": sub_net}]},
                        "subnets": [{"subnet": sub_net}],
                        "Labels": {},
                    }
                return cur

            state.update_json(p, upd, {})
            state.out(name)
            return 0
        if sub in ("ls", "list"):
            for n in sorted(nets):
                state.out(n)
            return 0
        if sub == "rm":
            return 0
        return 0

    def cmd_volume(self, argv: List[str]) -> int:
        if not argv:
            return 0
        p = os.path.join(self.store_dir(), "volumes.json")
        sub, rest = argv[0], argv[1:]
        if sub == "create":
            labels = []
            names = []
            i = 0
            while i < len(rest):
                if rest[i] in ("--label", "-l") and i + 1 < len(rest):
                    labels.append(rest[i + 1])
                    i += 2
                    continue
                if not rest[i].startswith("-"):
                    names.append(rest[i])
                i += 1
            name = names[0] if names else _hashlib().sha256(str(time.time()).encode()).hexdigest()
            state.update_json(
                p,
                lambda cur: dict(
                    cur or {}, **{name: {"Name": name, "Labels": dict(_kv(x) for x in labels)}}
                ),
                {},
            )
            state.out(name)
            return 0
        if sub in ("ls", "list"):
            vols = state.read_json(p, {}) or {}
            filt = [rest[i + 1] for i, a in enumerate(rest[:-1]) if a in ("--filter", "-f")]
            for n, v in sorted(vols.items()):
                ok = True
                for f in filt:
                    k, _, val = f.partition("=")
                    if k == "label":
                        lk, eq, lv = val.partition("=")
                        if lk not in v["Labels"] or (eq and v["Labels"][lk] != lv):
                            ok = False
                if ok:
                    state.out(n)
            return 0
        if sub == "rm":
            names = [a for a in rest if not a.startswith("-")]
            state.update_json(
                p, lambda cur: {k: v for k, v in (cur or {}).items() if k not in names}, {}
            )
            return 0
        return 0


# ---------------------------------------------------------------------- helpers


def _kv(s: str) -> Tuple[str, str]:
    k, _, v = s.partition("=")
    return k, v


def _json_alias(argv: List[str]) -> List[str]:
    """nerdctl pkg/formatter ParseTemplate: `--format json` means `{{json .}}`."""
    out = list(argv)
    for i, a in enumerate(out):
        if a in ("--format", "-f") and i + 1 < len(out) and out[i + 1] == "json":
            out[i + 1] = "{{json .}}"
        elif a == "--format=json":
            out[i] = "--format={{json .}}"
    return out


def _strip(d: Dict[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in d.items() if not k.startswith("__")}


def _json_ready(d: Dict[str, Any]) -> Dict[str, Any]:
    return d


def normalize_image(ref: str) -> str:
    if "@" in ref:
        name, _, digest = ref.partition("@")
        return _norm_name(name) + "@" + digest
    last = ref.rsplit("/", 1)[-1]
    if ":" not in last:
        ref = ref + ":latest"
    return _norm_name(ref)


def _norm_name(ref: str) -> str:
    first = ref.split("/", 1)[0]
    if "/" in ref and ("." in first or ":" in first or first == "localhost"):
        return ref
    if "/" not in ref:
        return "docker.io/library/" + ref
    return "docker.io/" + ref


def _registry_host(ref: str) -> str:
    h = ref.split("/", 1)[0]
    return "registry-1.docker.io" if h == "docker.io" else h


def _registry(ref: str) -> str:
    return _registry_host(ref)


def _repo(ref: str) -> str:
    rest = ref.split("/", 1)[1]
    return rest.rsplit(":", 1)[0]


def _tag(ref: str) -> str:
    return ref.rsplit(":", 1)[1] if ":" in ref.rsplit("/", 1)[-1] else "latest"


def parse_publish(p: str) -> Dict[str, Any]:
    """``[ip:][hostPort:]containerPort[/proto]`` (IPv6 ip in brackets)."""
    proto = "tcp"
    if "/" in p:
        p, proto = p.rsplit("/", 1)
        proto = proto.lower()
    ip = ""
    if p.startswith("["):
        end = p.index("]")
        ip = p[1:end]
        p = p[end + 2 :]
    parts = p.split(":")
    if len(parts) == 3:
        ip, hp, cp = parts
    elif len(parts) == 2:
        hp, cp = parts
    else:
        hp, cp = "", parts[0]
    try:
        return {
            "host_ip": ip or "0.0.0.0",
            "host_port": int(hp) if hp else 0,
            "container_port": int(cp),
            "proto": proto,
        }
    except ValueError:
        raise ValueError(f"invalid publish spec: {p}") from None


def host_ports() -> List[Dict[str, Any]]:
    """Ports held by emulated containers of every runtime and user on this host."""
    used = []
    base = state.path("hosts", state.hostname(), shared_levels=2)
    for p in glob.glob(os.path.join(glob.escape(base), "*", "containers", "*.json")):
        c = state.read_json(p)
        if c and c.get("running", True):
            used.extend(c.get("ports", []))
    return used


def _wild(ip: str) -> bool:
    return ip in ("", "0.0.0.0", "::")


def port_clash(pm: Dict[str, Any], used: List[Dict[str, Any]]) -> bool:
    for u in used:
        if u["proto"] != pm["proto"] or int(u["host_port"]) != int(pm["host_port"]):
            continue
        if _wild(u["host_ip"]) or _wild(pm["host_ip"]) or u["host_ip"] == pm["host_ip"]:
            return True
    return False


def real_bind_ok(ip: str, port: int, proto: str) -> bool:
    """Try a real bind of ``proto`` on ``ip:port`` and release it at once."""
    fam = _socket().AF_INET6 if ":" in (ip or "") else _socket().AF_INET
    typ = _socket().SOCK_DGRAM if proto == "udp" else _socket().SOCK_STREAM
    s = _socket().socket(fam, typ)
    try:
        if typ == _socket().SOCK_STREAM:
            s.setsockopt(_socket().SOL_SOCKET, _socket().SO_REUSEADDR, 1)
        s.bind((ip or ("::" if fam == _socket().AF_INET6 else "0.0.0.0"), int(port)))
        if typ == _socket().SOCK_STREAM:
            s.listen(1)
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_port(ip: str, proto: str, used: List[Dict[str, Any]]) -> int:
    for _ in range(200):
        fam = _socket().AF_INET6 if ":" in (ip or "") else _socket().AF_INET
        s = _socket().socket(fam, _socket().SOCK_DGRAM if proto == "udp" else _socket().SOCK_STREAM)
        try:
            s.bind(
                (
                    ip
                    if ip and not _wild(ip)
                    else ("::" if fam == _socket().AF_INET6 else "0.0.0.0"),
                    0,
                )
            )
            port = s.getsockname()[1]
        finally:
            s.close()
        if not port_clash({"host_ip": ip, "host_port": port, "proto": proto}, used):
            return port
    raise RuntimeError("no free port")


def make_archive(images: List[str]) -> bytes:
    """A small docker-archive tar: manifest.json with RepoTags."""
    buf = _io().BytesIO()
    with _tarfile().open(fileobj=buf, mode="w") as tf:
        manifest = json.dumps(
            [
                {
                    "Config": "config.json",
                    "RepoTags": [normalize_image(i) for i in images],
                    "Layers": [],
                }
            ]
        ).encode()
        for name, data in (("manifest.json", manifest), ("config.json", b"{}")):
            ti = _tarfile().TarInfo(name)
            ti.size = len(data)
            ti.mtime = 0
            tf.addfile(ti, _io().BytesIO(data))
    return buf.getvalue()


def archive_tags(data: bytes) -> List[str]:
    try:
        with _tarfile().open(fileobj=_io().BytesIO(data), mode="r:*") as tf:
            m = tf.extractfile("manifest.json")
            if m is None:
                return []
            man = json.loads(m.read().decode())
    except (_tarfile().TarError, KeyError, ValueError, OSError):
        return []
    tags: List[str] = []
    for ent in man or []:
        for t in ent.get("RepoTags") or []:
            tags.append(normalize_image(t))
    return tags


def main_for(name: str, argv: List[str]) -> None:
    rt = Runtime(name)
    state.run_tool(name, argv, rt.main)


def _gotmpl():
    from . import gotmpl

    return gotmpl


def _hashlib():
    import hashlib

    return hashlib


def _socket():
    import socket

    return socket


def _io():
    import io

    return io


def _tarfile():
    import tarfile

    return tarfile
