"""Starts moto's server with DynamoDB's item operations serialized.

moto 5.2.5 runs each request on its own thread. Its TransactWriteItems
snapshots whole tables when it starts and, if a condition fails, restores
that snapshot, which silently undoes any write another request made in the
meantime (a committed transaction can lose some of its items). Real DynamoDB
isolates transactions, so we make moto behave: one lock around every item
read and write. Everything else about moto is unchanged.

Its snapshot also deep-copies the table's stream, every record since the
table was made (old and new images of every write). A test that writes
one item thousands of times then spends minutes copying history on each
transaction. The snapshot now shares the records (moto never changes a
record once made) and copies only their list: a cancelled transaction
still leaves the stream as it was, as DynamoDB does.

Usage: python scripts/moto_server.py [moto_server arguments]
"""
import functools
import sys
import threading

from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import StreamShard
from moto.server import main

_lock = threading.RLock()

_ITEM_OPERATIONS = [
    "put_item",
    "update_item",
    "delete_item",
    "get_item",
    "query",
    "scan",
    "batch_get_item",
    "transact_write_items",
    "transact_get_items",
]


def _serialized(method):
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with _lock:
            return method(*args, **kwargs)

    return wrapper


for _name in _ITEM_OPERATIONS:
    if hasattr(DynamoDBBackend, _name):
        setattr(DynamoDBBackend, _name, _serialized(getattr(DynamoDBBackend, _name)))

def _stream_snapshot(self, memo):
    copied = self.__class__.__new__(self.__class__)
    memo[id(self)] = copied
    copied.__dict__.update(self.__dict__)
    # The table being copied (already in the memo), else the same one.
    copied.table = memo.get(id(self.table), self.table)
    copied.items = list(self.items)
    return copied


StreamShard.__deepcopy__ = _stream_snapshot

if __name__ == "__main__":
    main(sys.argv[1:])
