"""Review repro: pruning old journal files is inside the journal write: a file another run removed between this
run's listdir and lstat (two runs' first transfers at once, after a quiet weekend) makes the transfer 'unjournalable':
StateError, nothing sent, the run halts with exit 2."""
from __future__ import annotations

import os

import transfer_call
from test_bulk import evacuation_org


def test_an_old_journal_removed_by_another_run_meanwhile_does_not_stop_the_transfer(run_inprocess, monkeypatch):
    org, support, overflow, [call] = evacuation_org(1)
    real_listdir = os.listdir

    def listdir(path):  # as listed a moment before another run's _forget_old_journals removed it
        names = real_listdir(path)
        return names + ["0123456789abcdef01234567.transfers"] if path.endswith("transfer_call") else names

    monkeypatch.setattr(transfer_call.os, "listdir", listdir)
    result = run_inprocess(org, "--conversation-id", call, "--queue-id", overflow)
    print(result.err)
    assert org.queue_of(call) == overflow, (result.code, result.err)
