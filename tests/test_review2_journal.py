"""A second review's repro: the journal read on from where the last look stopped notices a journal file removed
and made again (an inode is soon reused), and misses no other run's entry."""

import datetime as dt, glob, hashlib, os, time
from pathlib import Path
import transfer_call
from test_bulk import evacuation_org, transfers_per_call

inodes = []

def journal_path(day=None, base_url="https://api.fake.test"):
    day = day or dt.datetime.now(dt.timezone.utc).date()
    folder = Path(os.environ["HOME"]) / ".cache" / "transfer_call"
    return folder / (hashlib.sha256(f"{base_url} transfers {day}".encode()).hexdigest()[:24] + ".transfers")


def test_journal_removed_as_readme_says_then_rewritten_hides_another_runs_sent_entry(run_inprocess):
    """README: 'removing ~/.cache/transfer_call/*.transfers ends that'. A --follow run has read the journal up to
    offset N; the file is removed; another run (a --conversation-id move of call Z) writes its 'sent' line into a
    new file, which ext4 gives the same inode. The follow run reads on from N and never sees Z's entry."""
    org, support, overflow, first = evacuation_org(3)
    state = {}

    def other_run(o):
        path = journal_path()
        state["old_inode"], state["old_size"] = path.stat().st_ino, path.stat().st_size
        for name in glob.glob(str(path.parent / "*.transfers")):
            os.remove(name)
        z = o.add_waiting_call(support, caller="+15550777")
        state["z"] = z
        conversation = o.conversations[z]
        [leg] = o.live_participants(z, "acd")
        start = int(dt.datetime.fromisoformat(conversation["startTime"].replace("Z", "+00:00")).timestamp())
        with open(path, "a") as journal:  # Z's transfer first, then the other run's other transfers
            journal.write(f"{z} {leg['id']} {start} {time.time():.0f} sent {transfer_call.boot_id()} "
                          f"{transfer_call.boot_clock():.0f}\n")
            for i in range(20):
                journal.write(f"00000000-0000-4000-8000-0000000000{i:02d} 00000000-0000-4000-8000-000000000001 "
                              f"{start} {time.time():.0f} sent {transfer_call.boot_id()} "
                              f"{transfer_call.boot_clock():.0f}\n")
        state["new_inode"], state["new_size"] = path.stat().st_ino, path.stat().st_size

    org.at(1.5, other_run)
    result = run_inprocess(org, "--from-queue", "Support", "--queue-id", overflow, "--yes", "--follow", "4s",
                           real_sleep=True)
    print(state, result.code); print(result.out); print(result.err)
    assert state.get("z"), "the other run never came"
    assert state["new_inode"] == state["old_inode"]
    assert transfers_per_call(org)[state["z"]] == 0, ("a second transfer of a leg another run had journalled 'sent'",
                                                      result.out)
