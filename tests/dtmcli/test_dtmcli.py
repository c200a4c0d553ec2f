"""DTM's Python SDK, dtmcli 1.7.7.0 unmodified, against dtmd's HTTP API with
Python HTTP branch services: sagas, TCC, a msg with QueryPrepared, and the
SDK's barrier keeping a saga exactly-once when its answers are lost."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
from dtmcli import msg, saga, tcc, utils


def query(dtm: str, gid: str) -> dict:
    with urllib.request.urlopen(f"{dtm}/query?gid={gid}", timeout=5) as r:
        return json.loads(r.read())


def wait_status(dtm: str, gid: str, statuses: tuple, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        trans = query(dtm, gid)["transaction"]
        if trans and trans["status"] in statuses:
            return trans
        if time.monotonic() > deadline:
            raise AssertionError(f"{gid}: still {trans and trans['status']}")
        time.sleep(0.1)


def balance(busi, user: int) -> float:
    conn = busi.connect()
    try:
        with conn.cursor() as cursor:
            cursor.execute("select balance from busi.user_account where user_id = %s", (user,))
            return float(cursor.fetchone()[0])
    finally:
        conn.close()


def set_balance(busi, user: int, amount: float) -> None:
    conn = busi.connect()
    try:
        with conn.cursor() as cursor:
            cursor.execute(
                "insert into busi.user_account values (%s, %s) "
                "on duplicate key update balance = values(balance)", (user, amount))
        conn.commit()
    finally:
        conn.close()


def test_new_gid(dtm):
    gid = utils.gen_gid(dtm)
    assert gid and gid != utils.gen_gid(dtm)


def test_saga_succeeds(dtm, busi):
    gid = utils.gen_gid(dtm)
    req = {"amount": 30}
    s = saga.Saga(dtm, gid)
    s.add(req, busi.url + "/TransOut", busi.url + "/TransOutCompensate")
    s.add(req, busi.url + "/TransIn", busi.url + "/TransInCompensate")
    s.submit()
    wait_status(dtm, gid, ("succeed",))
    calls = busi.calls_of(gid)
    assert [c["route"] for c in calls] == ["TransOut", "TransIn"]
    for call, branch_id in zip(calls, ("01", "02")):
        assert call["method"] == "POST"
        assert call["body"] == req
        assert call["query"] == {"gid": gid, "trans_type": "saga",
                                 "branch_id": branch_id, "op": "action"}


def test_saga_rolls_back(dtm, busi):
    gid = utils.gen_gid(dtm)
    busi.script(gid, "TransIn", [(409, {"dtm_result": "FAILURE"})])
    s = saga.Saga(dtm, gid)
    s.add({"amount": 30}, busi.url + "/TransOut", busi.url + "/TransOutCompensate")
    s.add({"amount": 30}, busi.url + "/TransIn", busi.url + "/TransInCompensate")
    s.submit()
    trans = wait_status(dtm, gid, ("failed",))
    assert trans["status"] == "failed"
    routes = [c["route"] for c in busi.calls_of(gid)]
    assert routes[:2] == ["TransOut", "TransIn"]
    assert sorted(routes[2:]) == ["TransInCompensate", "TransOutCompensate"]


def test_saga_retries_until_the_branch_answers(dtm, busi):
    gid = utils.gen_gid(dtm)
    busi.script(gid, "TransIn", [(500, {"error": "down"}),
                                 (425, {"dtm_result": "ONGOING"})])
    s = saga.Saga(dtm, gid)
    s.add({"amount": 1}, busi.url + "/TransIn", busi.url + "/TransInCompensate")
    s.submit()
    wait_status(dtm, gid, ("succeed",))
    assert [c["route"] for c in busi.calls_of(gid)] == ["TransIn"] * 3


def test_tcc_confirms(dtm, busi):
    gid = utils.gen_gid(dtm)

    def body(t):
        t.call_branch({"amount": 30}, busi.url + "/TransOutTry",
                      busi.url + "/TransOutConfirm", busi.url + "/TransOutCancel")
        t.call_branch({"amount": 30}, busi.url + "/TransInTry",
                      busi.url + "/TransInConfirm", busi.url + "/TransInCancel")

    assert tcc.tcc_global_transaction(dtm, gid, body) == gid
    wait_status(dtm, gid, ("succeed",))
    routes = [c["route"] for c in busi.calls_of(gid)]
    assert routes[:2] == ["TransOutTry", "TransInTry"]
    assert sorted(routes[2:]) == ["TransInConfirm", "TransOutConfirm"]
    for c in busi.calls_of(gid)[2:]:
        assert c["body"] == {"amount": 30}
        assert c["query"]["op"] == "confirm"


def test_tcc_cancels(dtm, busi):
    gid = utils.gen_gid(dtm)
    busi.script(gid, "TransInTry", [(409, {"dtm_result": "FAILURE"})])

    def body(t):
        t.call_branch({"amount": 30}, busi.url + "/TransOutTry",
                      busi.url + "/TransOutConfirm", busi.url + "/TransOutCancel")
        t.call_branch({"amount": 30}, busi.url + "/TransInTry",
                      busi.url + "/TransInConfirm", busi.url + "/TransInCancel")

    # The second try fails: the SDK aborts the global transaction.
    assert tcc.tcc_global_transaction(dtm, gid, body) == ""
    wait_status(dtm, gid, ("failed",))
    routes = [c["route"] for c in busi.calls_of(gid)]
    assert routes[:2] == ["TransOutTry", "TransInTry"]
    assert sorted(routes[2:]) == ["TransInCancel", "TransOutCancel"]


def test_msg_with_query_prepared(dtm, busi):
    """DoAndSubmitDB: the local transaction and the barrier commit together;
    dtmd then delivers the actions."""
    gid = utils.gen_gid(dtm)
    m = msg.Msg(dtm, gid)
    m.add({"amount": 30}, busi.url + "/TransIn")
    m.add({"amount": 30}, busi.url + "/TransOut")
    conn = busi.connect()
    try:
        def local(cursor):
            cursor.execute("insert into busi.msg_outbox values (%s)", (gid,))
        m.do_and_submit_db(busi.url + "/QueryPrepared", conn.cursor(), local)
    finally:
        conn.close()
    wait_status(dtm, gid, ("succeed",))
    assert [c["route"] for c in busi.calls_of(gid)] == ["TransIn", "TransOut"]


def test_msg_checked_back_through_query_prepared(dtm, busi):
    """A prepared msg whose submit never came: dtmd asks QueryPrepared after
    its timeout; the barrier says the local transaction never committed
    (it inserts 'rollback'), so the msg fails and no action is sent."""
    gid = utils.gen_gid(dtm)
    m = msg.Msg(dtm, gid)
    m.trans_base.timeout_to_fail = 1
    m.add({"amount": 30}, busi.url + "/TransIn")
    m.prepare(busi.url + "/QueryPrepared")
    wait_status(dtm, gid, ("failed",))
    routes = [c["route"] for c in busi.calls_of(gid)]
    assert "QueryPrepared" in routes and "TransIn" not in routes


def test_barrier_keeps_a_saga_exactly_once_when_answers_are_lost(dtm, busi):
    """The action commits its work and its barrier, then the answer is lost
    (500) twice: dtmd calls again, the barrier skips the repeats, and the
    money moves once."""
    user = 7
    set_balance(busi, user, 100)
    gid = utils.gen_gid(dtm)
    busi.script(gid, "BarrierTransIn", ["commit-then-500", "commit-then-500"])
    s = saga.Saga(dtm, gid)
    s.add({"amount": 30, "user_id": user}, busi.url + "/BarrierTransIn",
          busi.url + "/BarrierTransInCompensate")
    s.submit()
    wait_status(dtm, gid, ("succeed",))
    assert len(busi.calls_of(gid, "BarrierTransIn")) == 3
    assert balance(busi, user) == 130


def test_barrier_skips_the_compensation_of_a_failed_action(dtm, busi):
    """The action fails (its work rolled back with its barrier): the
    compensation dtmd sends finds no action to undo (an empty compensation)
    and changes nothing, however often it is called."""
    user = 8
    set_balance(busi, user, 100)
    gid = utils.gen_gid(dtm)
    s = saga.Saga(dtm, gid)
    s.add({"amount": 30, "user_id": user, "fail": True},
          busi.url + "/BarrierTransIn", busi.url + "/BarrierTransInCompensate")
    s.submit()
    wait_status(dtm, gid, ("failed",))
    assert len(busi.calls_of(gid, "BarrierTransInCompensate")) == 1
    assert balance(busi, user) == 100


@pytest.mark.parametrize("bad", ["{", '{"gid": 5, "trans_type": "saga"}'])
def test_bad_bodies_are_refused_with_a_4xx(dtm, bad):
    req = urllib.request.Request(f"{dtm}/submit", data=bad.encode(),
                                 headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=5)
    assert 400 <= err.value.code < 500


def test_workflow_prepared_over_http_is_resumed_with_its_raw_data(dtm, busi):
    """DTM's HTTP workflow clients: prepareWorkflow over HTTP, the resume
    call (QueryPrepared, op = the workflow's name) gets the data itself as
    its body, not the gRPC WorkflowData message."""
    import base64

    import requests

    gid = utils.gen_gid(dtm)
    data = {"amount": 30}
    busi.script(gid, "WfResume", [(503, {"error": "busy"})])
    r = requests.post(dtm + "/prepareWorkflow", json={
        "gid": gid, "trans_type": "workflow",
        "custom_data": json.dumps({"name": "wf_http",
                                   "data": base64.b64encode(json.dumps(data).encode()).decode()}),
        "query_prepared": busi.url + "/WfResume", "retry_interval": 1})
    assert r.status_code == 200, r.text
    deadline = time.monotonic() + 20
    while not busi.calls_of(gid, "WfResume"):
        assert time.monotonic() < deadline, "no resume call"
        time.sleep(0.1)
    call = busi.calls_of(gid, "WfResume")[0]
    assert call["body"] == data
    assert call["query"]["op"] == "wf_http" and call["query"]["branch_id"] == "00"
    r = requests.post(dtm + "/submit", json={"gid": gid, "trans_type": "workflow",
                                            "req_extra": {"status": "succeed"}})
    assert r.status_code == 200, r.text
    wait_status(dtm, gid, ("succeed",))
