"""Warm start: a per-user cluster template (a committed, stopped kind node and a copy of its
/var) and clones of it, each with a fresh cluster identity.

- template: the key from the inputs, the record with its checksum, the store (one user's)
- build: make a template (`ksi warm`, or a run with warm=build)
- clone: start one clone for a run (ksi.provision.providers.noderun runs the container)
- identity: the script that gives each clone its own CA, keys, accounts and kubeconfigs
"""
