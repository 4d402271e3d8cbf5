"""moto's server, with TransactWriteItems rolled back from an undo log of the items it touches.

For benchmarks at scale only (`scripts/moto-server.sh start --undo-log`); the tests run stock moto.

Why: moto (5.2.5) backs up every table a transaction names with `copy.deepcopy(table)`, once per
item of the transaction, before applying it, so one TransactWriteItems of 25 decisions costs 25
copies of the whole table. That makes moto quadratic in the table's size: in the 1,000-tenant
fetch cycle (BENCHMARKS.md, Scale) 10x the tenants took 42x the time, and the `mss` process was
idle for most of it. DynamoDB has no such cost. This keeps moto's semantics — all of a transaction
or none of it — by remembering, before the transaction, each touched item as it was (a copy of
that item, or "absent"), and putting those back if moto cancels the transaction.
"""

import copy
import sys

import moto.dynamodb.models as backend_models
from moto.dynamodb.exceptions import (
    MockValidationException,
    MultipleTransactionsException,
    TransactionCanceledException,
)
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table
from moto.server import main

_real_deepcopy = copy.deepcopy


class _CopyWithoutTables:
    """Stands for the `copy` module inside moto's DynamoDB backend: a table "copy" is the table
    itself (the undo log below does the rollback); everything else is copied for real."""

    def __getattr__(self, name):
        return getattr(copy, name)

    @staticmethod
    def deepcopy(x, memo=None):
        return x if isinstance(x, Table) else _real_deepcopy(x, memo)


def _key_of(table, op):
    attrs = op.get("Item") if "Item" in op else op.get("Key")
    if not attrs or table.hash_key_attr not in attrs:
        return None
    hash_value = DynamoType(attrs[table.hash_key_attr])
    range_value = None
    if table.range_key_attr is not None:
        if table.range_key_attr not in attrs:
            return None
        range_value = DynamoType(attrs[table.range_key_attr])
    return hash_value, range_value


def _undo(undo_log):
    for table, (hash_value, range_value), before in reversed(undo_log):
        if range_value is None:
            if before is None:
                table.items.pop(hash_value, None)
            else:
                table.items[hash_value] = before
        else:
            rows = table.items[hash_value]
            if before is None:
                rows.pop(range_value, None)
                if not rows:
                    table.items.pop(hash_value, None)
            else:
                rows[range_value] = before


_original_transact = backend_models.DynamoDBBackend.transact_write_items


def transact_write_items(self, transact_items):
    undo_log, seen = [], set()
    for entry in transact_items:
        try:
            _, op = next(iter(entry.items()))
            table = self.tables.get(op.get("TableName"))
            key = _key_of(table, op) if table is not None else None
        except Exception:  # a malformed item: moto itself answers the validation error
            key = None
        if key is None or (id(table), str(key)) in seen:
            continue
        seen.add((id(table), str(key)))
        before = table.get_item(*key)
        undo_log.append((table, key, _real_deepcopy(before)))
    try:
        return _original_transact(self, transact_items)
    except (TransactionCanceledException, MultipleTransactionsException, MockValidationException):
        _undo(undo_log)
        raise


backend_models.copy = _CopyWithoutTables()
backend_models.DynamoDBBackend.transact_write_items = transact_write_items

if __name__ == "__main__":
    sys.exit(main())
