"""The benchmarks' moto (scripts/moto_server_undo_log.py) keeps a transaction all-or-nothing.

Run by scripts/test.sh: a scale figure measured on a moto that half-applied cancelled
transactions would not be a figure of this system. Starts the patched moto in process on a free
port; fails (exit 1) on any difference from stock moto's answers.
"""

import logging
import os
import sys

import boto3

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import moto_server_undo_log  # noqa: E402,F401  (patches moto's DynamoDB backend on import)
from moto.server import ThreadedMotoServer  # noqa: E402

logging.getLogger("werkzeug").setLevel(logging.ERROR)  # not a line per request
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
host, port = server.get_host_and_port()
try:
    d = boto3.client("dynamodb", endpoint_url=f"http://{host}:{port}", region_name="ap-northeast-1",
                     aws_access_key_id="test", aws_secret_access_key="test")
    for name, keys in (("r", [("pk", "HASH"), ("sk", "RANGE")]), ("h", [("pk", "HASH")])):
        d.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                       KeySchema=[{"AttributeName": a, "KeyType": k} for a, k in keys],
                       AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a, _ in keys])
    d.put_item(TableName="r", Item={"pk": {"S": "t1"}, "sk": {"S": "a"}, "v": {"N": "1"}})
    d.put_item(TableName="h", Item={"pk": {"S": "x"}, "v": {"N": "1"}})

    def set_v(n):
        return {"Update": {"TableName": "r", "Key": {"pk": {"S": "t1"}, "sk": {"S": "a"}},
                           "UpdateExpression": "SET v = :v", "ExpressionAttributeValues": {":v": {"N": n}}}}

    # Four writes that would apply, then one whose condition fails: none of them may remain.
    try:
        d.transact_write_items(TransactItems=[
            set_v("2"),
            {"Put": {"TableName": "r", "Item": {"pk": {"S": "t1"}, "sk": {"S": "new"}}}},
            {"Put": {"TableName": "r", "Item": {"pk": {"S": "t2"}, "sk": {"S": "new"}}}},
            {"Delete": {"TableName": "h", "Key": {"pk": {"S": "x"}}}},
            {"Put": {"TableName": "h", "Item": {"pk": {"S": "y"}}, "ConditionExpression": "attribute_exists(pk)"}},
        ])
        sys.exit("FAIL: a transaction with a failed condition was not cancelled")
    except d.exceptions.TransactionCanceledException:
        pass
    r = sorted((i["pk"]["S"], i["sk"]["S"], i.get("v", {}).get("N")) for i in d.scan(TableName="r")["Items"])
    h = sorted((i["pk"]["S"], i.get("v", {}).get("N")) for i in d.scan(TableName="h")["Items"])
    if r != [("t1", "a", "1")] or h != [("x", "1")]:
        sys.exit(f"FAIL: a cancelled transaction left writes behind: {r} {h}")
    # A transaction that holds applies whole.
    d.transact_write_items(TransactItems=[set_v("2"), {"Put": {"TableName": "h", "Item": {"pk": {"S": "y"}}}}])
    v = d.get_item(TableName="r", Key={"pk": {"S": "t1"}, "sk": {"S": "a"}})["Item"]["v"]["N"]
    if v != "2" or "Item" not in d.get_item(TableName="h", Key={"pk": {"S": "y"}}):
        sys.exit("FAIL: a transaction that held was not applied whole")
    print("moto with the undo log: a cancelled transaction leaves nothing, one that holds applies whole")
finally:
    server.stop()
