"""KSI contract emulator: stand-ins for kind, kubectl, nerdctl, podman and liqoctl.

Test-only code. The product (src/ksi) never imports this package; tests put
``tests/emulator/bin`` first on PATH. See tests/emulator/README.md.
"""
