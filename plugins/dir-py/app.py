"""The `dir` storage backend in Python (componentize-py).

A repository in the directory the host mounts at /repo, in the native local layout (config,
keys/, snapshots/, index/, locks/, data/xx/). componentize-py takes the resource `store` of the
exported interface `store` from the module of that name: see store.py.
"""
