"""fetchcore over a hub's existing schema and storage backend: a worked example.

- :mod:`.tables`: the hub's own tables, as its models already declare them.
- :mod:`.index`: :class:`~.index.HubFetchIndex`, fetchcore's read port over those tables,
  on the request's own ``AsyncSession``.
- :mod:`.store`: :class:`~.store.HubStore`, fetchcore's fetch and push store ports over a
  backend that has only ``get``, ``get_mpack``, ``put_mpack`` and ``presign_mpack_get``.

Pushes keep going through the hub's own code; fetchcore only serves fetches.
"""
