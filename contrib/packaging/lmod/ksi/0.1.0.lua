-- -*- lua -*-
-- Lmod modulefile for KSI (Kubernetes workloads inside Slurm jobs).
-- Install and prefix: see contrib/packaging/README.md. The install prefix PREFIX holds
-- bin/ksi (a venv with the wheel, a pipx or `pip install --prefix` install, or ksi.pyz
-- copied to PREFIX/bin/ksi). It is found, in this order, from:
--   1. the environment variable KSI_INSTALL_PREFIX (e.g. set site-wide in /etc/profile.d),
--   2. site_prefix below (edit it in the site's copy of this file),
--   3. the place of this file: PREFIX/modulefiles/ksi/<version>.lua.
local site_prefix = nil   -- e.g. "/opt/ksi/" .. myModuleVersion()

local version = myModuleVersion()
local prefix = os.getenv("KSI_INSTALL_PREFIX") or site_prefix
    or myFileName():match("^(.*)/[^/]+/[^/]+/[^/]+$")

whatis("Name: ksi")
whatis("Version: " .. version)
whatis("Description: Kubernetes workloads inside Slurm jobs (a temporary kind cluster per job)")
help([[
KSI ]] .. version .. [[: `ksi run WORKLOAD.sh` in a Slurm job; `ksi doctor` checks the node.
Needs Python 3.9 or later. Installed in ]] .. tostring(prefix) .. "\n")

-- The python that will run ksi: the install's own (a venv), else python3 on PATH (the
-- zipapp's `#!/usr/bin/env python3`, pip --prefix). Checked on load: one line if too old.
if mode() == "load" then
  if prefix == nil or not isFile(pathJoin(prefix, "bin", "ksi")) then
    LmodError("ksi: no bin/ksi under '" .. tostring(prefix) .. "': set KSI_INSTALL_PREFIX"
      .. " or site_prefix in " .. myFileName() .. " to the install prefix")
  end
  local python = pathJoin(prefix, "bin", "python3")
  if not isFile(python) then python = "python3" end
  -- capture(): Lmod's sandboxed way to run a command from a modulefile
  local out = capture("'" .. python:gsub("'", "'\\''") .. "' -c 'import sys; "
    .. "print(\"%d.%d\" % sys.version_info[:2])' 2>/dev/null") or ""
  local major, minor = out:match("^%s*(%d+)%.(%d+)")
  local found = major and (major .. "." .. minor) or nil
  if not major or tonumber(major) < 3 or (tonumber(major) == 3 and tonumber(minor) < 9) then
    LmodError("ksi: needs Python 3.9 or later, found " .. (found and ("Python " .. found)
      or "no working python3") .. " (" .. python .. "): load a newer Python module first")
  end
end

prepend_path("PATH", pathJoin(prefix, "bin"))

-- Optional site defaults (any `ksi config` key as KSI_<KEY>; /etc/ksi/config.toml is the
-- usual place, these override it for users of this module):
-- setenv("KSI_PROVIDER", "podman")
-- setenv("KSI_IMAGE_ARCHIVE_DIR", "/shared/ksi/images")
-- setenv("KSI_SITE_CONFIG", "/shared/ksi/config.toml")
