"""The embedded AWS and its state directory (local/state.py): at start, every table saved
there is filled again (a table template.yaml no longer declares is recreated from its saved key
schema); at the end, every DynamoDB table of the embedded account — whatever its name, so that
a table added to template.yaml is kept with no change here — and the executions of the state
machine are saved. Executions cannot be put back into Step Functions: they are only carried
forward in the state file, for `status`/`list`; one still running when the embedded AWS goes
away is saved as ABORTED (its process is ending).

The jobs table (role ``jobs``) is not loaded either: it holds one item per job of every earlier
run, which `status` reads from the file and nothing a later run does reads (run ids are unique
and the reconciler looks only at runs Step Functions has running), so its saved items are
carried forward as they are and a run's start does not grow with the history."""

from __future__ import annotations

import time
from typing import Any

from miniwdl_serverless.core.store_rules import FINISHED_RUN_TTL_SECONDS
from miniwdl_serverless.local.memory_tables import Tables
from miniwdl_serverless.local.state import (
    TTL_ATTRIBUTE,
    Collection,
    Item,
    Snapshot,
    StateDir,
    paused_gc,
)

TABLE_PREFIX = "dynamodb/"
EXECUTIONS = "stepfunctions/executions"
EXECUTION_KEY = ["executionArn"]
HELD_ROLE = "jobs"  # the table whose saved items are not loaded (see above)


def table_collection(table_name: str) -> str:
    return TABLE_PREFIX + table_name


class Persistence:
    """One embedded AWS's link to its state directory; ``tables``: where its tables are held
    (local/memory_tables.py: moto's DynamoDB, or the in-memory store)."""

    def __init__(self, state: StateDir, tables: Tables):
        self.state, self.tables = state, tables
        self.base = Snapshot()  # what was loaded (then saved): the merge's common ancestor

    def load(self) -> int:
        """Fill the embedded account's tables from the state directory; returns the number of
        items loaded. Raises StateError if the directory cannot be used."""
        with paused_gc():
            return self._load()

    def _load(self) -> int:
        snapshot = self.state.read().live()
        live = self.tables.shapes()
        loaded = 0
        for name, collection in snapshot.collections.items():
            if not name.startswith(TABLE_PREFIX):
                continue
            table = name[len(TABLE_PREFIX) :]
            if table not in live:
                self.tables.create(table, collection)
            elif live[table].key_names != collection.key_names:
                self.state.warn(
                    f"table {table}'s key is now {live[table].key_names}, not "
                    f"{collection.key_names}: its saved items are dropped"
                )
                continue
            if name == snapshot.roles.get(HELD_ROLE):
                continue  # carried forward by current()
            items = list(collection.items.values())
            self.tables.put_items(table, items)
            loaded += len(items)
        self.base = snapshot
        return loaded

    def save(self, sfn: Any, state_machine_arn: str, roles: dict[str, str]) -> Snapshot:
        """Save every table and the state machine's executions (merged with what other
        processes saved meanwhile); returns what was saved."""
        with paused_gc():
            ours = self.current(sfn, state_machine_arn)
            ours.roles = {role: table_collection(name) for role, name in roles.items()}
            self.base = self.state.save(ours, self.base)
        return self.base

    def current(self, sfn: Any, state_machine_arn: str) -> Snapshot:
        """Everything the embedded AWS holds now, as a snapshot."""
        snapshot = Snapshot()
        held = self.base.roles.get(HELD_ROLE)
        for table, shape in self.tables.shapes().items():
            name = table_collection(table)
            items = self.tables.items(table)
            collection = Collection.of(shape.key_names, items, shape.meta)
            collection.ttl_attribute = shape.ttl_attribute
            saved = self.base.collections.get(name)
            if name == held and saved is not None and saved.key_names == shape.key_names:
                collection.items = {**saved.items, **collection.items}
            snapshot.collections[name] = collection
        executions = self.base.collections.get(EXECUTIONS)
        known = dict(executions.items) if executions is not None else {}
        current = Collection.of(EXECUTION_KEY, _executions(sfn, state_machine_arn))
        snapshot.collections[EXECUTIONS] = Collection(EXECUTION_KEY, {**known, **current.items})
        return snapshot


def _executions(sfn: Any, state_machine_arn: str) -> list[Item]:
    """The state machine's executions as items; those still running are ending now."""
    now = time.time()
    items = []
    pages = sfn.get_paginator("list_executions").paginate(stateMachineArn=state_machine_arn)
    for execution in (e for page in pages for e in page["executions"]):
        status = execution["status"]
        stopped = execution.get("stopDate")
        stop = stopped.timestamp() if stopped is not None else now
        if status == "RUNNING":
            status = "ABORTED"
        items.append(
            {
                "executionArn": {"S": execution["executionArn"]},
                "name": {"S": execution["name"]},
                "stateMachineArn": {"S": state_machine_arn},
                "status": {"S": status},
                "startDate": {"N": repr(execution["startDate"].timestamp())},
                "stopDate": {"N": repr(stop)},
                TTL_ATTRIBUTE: {"N": str(int(stop) + FINISHED_RUN_TTL_SECONDS)},
            }
        )
    return items
