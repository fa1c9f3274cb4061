"""Several hosts on one study: the problem it tunes, who searches, who finalizes.

**One study, one problem.** The host that creates a study stores its identity on it
(``grutune:identity``, a study user attribute): the task and metric, a SHA-256 of the
prepared data (the split's row ids, every part's tensors and the fitted state: the
vocabulary, labels or scaling), the options that change the preparation, the seed, the
search space and the folds a trial is scored with (not ``--max-epochs``, ``--trials`` or
``--budget``: how long to search may change on a resume). Every host that opens the
study compares its own identity before it trains anything; one that differs (another
data file, ``--seed``, ``--sample``, ``--space``, ...) is refused with a ConfigError that
names what differs. A resumed run directory computes the same identity, so it resumes.

**Roles.** On a shared storage (``--storage``), every host keeps a record on the study
(``grutune:host:RUN_ID``: host name, run directory, state, a beat between trials and
epochs). When a host's search ends, it may claim the finalization: the claim is the
creation of a companion study, ``STUDY:finalizer:ID`` (ID the study's storage id), and
creating a study is atomic in every storage, so of any number of hosts exactly one wins.
The winner waits until no other host searches (records that stop beating for ``grace_s``
are dead hosts) and no trial runs (a killed host's trial is failed by its stale heartbeat
and queued again, and the winner runs what is queued while its budget lasts), then
builds the final model from every finished trial. Hosts that lose say who finalizes and
exit. ``grutune finalize`` finalizes whatever the claim says (a finalizer that died is
replaced this way); the claim records who finished last.

>>> differences({"seed": 0, "task": "text"}, {"seed": 1, "task": "text"})
['--seed 0 vs 1']
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import optuna
from rich.console import Console

from grutune import compat
from grutune.config import DataConfig, StudyConfig
from grutune.exceptions import ConfigError
from grutune.search_space import Space
from grutune.tasks import Prepared, Task

log = logging.getLogger("grutune")

IDENTITY = "grutune:identity"
HOST = "grutune:host:"
FINALIZER = ":finalizer:"
IDENTITY_FORMAT = 1

# DataConfig fields that change the prepared data, as the command line names them (the
# data's source, path or built-in name, is left out: the data's hash covers it, and a
# file lives at another path on each host)
PREPARATION = {"text_column": "--text", "target_column": "--target", "id_column": "--id",
               "time_column": "--time", "covariates": "--covariates", "horizon": "--horizon",
               "season": "--season", "scaling": "--scaling", "sample": "--sample",
               "stop_words": "--stop-words", "stem": "--stem", "min_count": "--min-count",
               "max_vocab": "--max-vocab", "max_len": "--max-len",
               "len_percentile": "len_percentile", "val_fraction": "val_fraction",
               "test_fraction": "test_fraction"}
_NAMES = {"task": "task", "metric": "--metric", "seed": "--seed", "folds": "--folds"}


def data_digest(prepared: Prepared) -> dict:
    """The prepared data's rows per part and one SHA-256 over the split's row ids, every
    part's tensors (their bytes, dtypes and shapes) and the fitted state."""
    digest = hashlib.sha256()
    digest.update(json.dumps(prepared.split, sort_keys=True, default=str).encode())
    digest.update(json.dumps(prepared.state, sort_keys=True, default=str).encode())
    rows = {}
    for part in ("train", "val", "test"):
        data = getattr(prepared, part)
        rows[part] = len(data)
        for tensor in (data.x, data.lengths, data.y):
            t = tensor.detach().cpu().contiguous()
            digest.update(f"{part}:{t.dtype}:{tuple(t.shape)}".encode())
            digest.update(t.numpy().tobytes())
    return {"rows": rows, "sha256": digest.hexdigest()}


def problem_identity(task: Task, prepared: Prepared, data_cfg: DataConfig,
                     study_cfg: StudyConfig, space: Space) -> dict:
    """What a study tunes, JSON-able: every field two hosts must share to add trials to
    one study."""
    return {"format": IDENTITY_FORMAT, "task": task.name, "metric": task.metric,
            "data": data_digest(prepared),
            "preparation": {k: getattr(data_cfg, k) for k in PREPARATION},
            "seed": data_cfg.seed, "space": space.describe(),
            "folds": int(prepared.summary.get("folds", 1))}


def differences(stored: dict, mine: dict) -> list[str]:
    """What differs between the study's identity and this command's, in words, the
    study's value first; [] when they agree."""
    out = []
    for key in ("task", "metric"):
        if stored.get(key) != mine.get(key):
            out.append(f"{_NAMES[key]} {stored.get(key)} vs {mine.get(key)}")
    old, new = stored.get("data") or {}, mine.get("data") or {}
    if old.get("sha256") != new.get("sha256"):
        rows = ""
        if old.get("rows") != new.get("rows"):
            def shown(r: dict | None) -> str:
                return "/".join(str((r or {}).get(p, "?")) for p in ("train", "val", "test"))
            rows = f"; train/val/test rows {shown(old.get('rows'))} vs {shown(new.get('rows'))}"
        out.append(f"the prepared data differs (another data file, --test file or preparation "
                   f"option?{rows})")
    prep_old, prep_new = stored.get("preparation") or {}, mine.get("preparation") or {}
    for key, flag in PREPARATION.items():
        if prep_old.get(key) != prep_new.get(key):
            out.append(f"{flag} {_value(prep_old.get(key))} vs {_value(prep_new.get(key))}")
    for key in ("seed", "folds"):
        if stored.get(key) != mine.get(key):
            out.append(f"{_NAMES[key]} {stored.get(key)} vs {mine.get(key)}")
    space_old, space_new = stored.get("space") or {}, mine.get("space") or {}
    if space_old != space_new:
        names = sorted(k for k in {*space_old, *space_new} if space_old.get(k) != space_new.get(k))
        out.append(f"the search space (--space, --sampler grid) differs in {', '.join(names)}")
    return out


def _value(value: object) -> str:
    return "(default)" if value is None else str(value)


def check_identity(study: optuna.Study, mine: dict, created: bool, where: str,
                   wait_s: float = 10.0) -> None:
    """Store ``mine`` on a study this host created; else compare it with the stored one
    and refuse a different problem (ConfigError naming what differs) before any trial.

    A study whose creator has not stored its identity yet (they are two writes) is
    waited for up to ``wait_s``; a study without one after that (made before grutune
    kept identities, or whose creator died between the writes) takes this host's.
    """
    stored = study.user_attrs.get(IDENTITY)
    if stored is None and not created and not study.get_trials(deepcopy=False):
        deadline = time.monotonic() + wait_s
        while stored is None and time.monotonic() < deadline:
            time.sleep(0.2)
            stored = study.user_attrs.get(IDENTITY)
    if stored is None:
        study.set_user_attr(IDENTITY, mine)
        return
    diffs = differences(stored, mine)
    if diffs:
        order = " (the study's value first)" if any(" vs " in d for d in diffs) else ""
        raise ConfigError(f"--study {study.study_name}: the study in {where} tunes another "
                          f"problem than this command: {'; '.join(diffs)}{order}; give the "
                          "data and options of the host that started it, or use another "
                          "--study")


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def origin_of(run_dir: Path, run_id: str) -> dict:
    """Who runs: this run's id, host name and run directory (recorded on every trial,
    on the host's record and on the claim)."""
    return {"run_id": run_id, "host": socket.gethostname(),
            "run_dir": str(Path(run_dir).resolve()), "pid": os.getpid()}


@dataclass
class Host:
    """This run's record on a shared study: its state and a beat, at most every
    ``every_s`` seconds unless the state changes."""

    study: optuna.Study
    origin: dict
    every_s: float
    state: str = "searching"
    _last: float = field(default=-1e18, repr=False)

    @property
    def key(self) -> str:
        return HOST + self.origin["run_id"]

    def beat(self, state: str | None = None) -> None:
        now = time.monotonic()
        if state is None and now - self._last < self.every_s:
            return
        self.state = state or self.state
        self._last = now
        self.study.set_user_attr(self.key, {**self.origin, "state": self.state,
                                            "beat": time.time()})


@dataclass
class Claim:
    """The finalization: who holds it (``holder``, an origin) and whether it is this run."""

    won: bool
    holder: dict

    def says(self, name: str) -> str:
        who = f"{self.holder.get('host')} ({self.holder.get('run_dir')})"
        if self.holder.get("finished"):
            return f"study '{name}' was finalized by {who} at {self.holder['finished']}"
        return f"{who} finalizes study '{name}'"


def _open_companion(study: optuna.Study) -> tuple[optuna.Study, bool]:
    """The study's finalization companion, and whether this call created it (atomic:
    of any number of callers exactly one creates it)."""
    store = compat.storage(study)
    name = f"{study.study_name}{FINALIZER}{store.get_study_id_from_name(study.study_name)}"
    try:
        return optuna.create_study(study_name=name, storage=store), True
    except optuna.exceptions.DuplicatedStudyError:
        return optuna.load_study(study_name=name, storage=store), False


def claim_finalization(study: optuna.Study, origin: dict, wait_s: float = 10.0) -> Claim:
    """Claim the study's finalization for ``origin``: won by the host that creates the
    companion study (atomic), or by the run that already holds it (a resumed run)."""
    companion, created = _open_companion(study)
    if not created:
        deadline = time.monotonic() + wait_s  # the winner writes its name just after
        while (holder := _holder(companion)) is None and time.monotonic() < deadline:
            time.sleep(0.2)
        if holder is not None:
            return Claim(holder.get("run_id") == origin["run_id"], holder)
        # the winner died between its two writes: the claim is free
    companion.set_user_attr("holder", origin)
    return Claim(True, origin)


def _holder(companion: optuna.Study) -> dict | None:
    attrs = companion.user_attrs
    holder = attrs.get("holder")
    return None if holder is None else {**holder, "finished": attrs.get("finished")}


def finished(study: optuna.Study, origin: dict) -> None:
    """Record that ``origin`` finalized the study (the claim is this run's from now on)."""
    companion, _ = _open_companion(study)
    companion.set_user_attr("holder", origin)
    companion.set_user_attr("finished", datetime.datetime.now(datetime.timezone.utc)
                            .isoformat(timespec="seconds"))


@dataclass
class _Seen:
    beat: float
    changed: float  # time.monotonic() when this run last saw the beat change


def wait_for_hosts(study: optuna.Study, origin: dict, grace_s: float, console: Console,
                   run_more: Callable[[], bool] = lambda: False, poll_s: float = 2.0) -> None:
    """Until no other host searches and no trial runs.

    Each poll fails trials whose heartbeat is stale (a killed host's; Optuna queues each
    again) and gives ``run_more`` the chance to run what is queued (True: it ran trials).
    A host whose record has not beaten for ``grace_s`` (by its clock, or by this one's
    since its beat last changed) is dead. On a storage without heartbeats (a journal
    file) a running trial counts only while the host that runs it beats.
    """
    seen: dict[str, _Seen] = {}
    beating = compat.heartbeat_enabled(study)
    with console.status("waiting for the other hosts") as status:
        while True:
            optuna.storages.fail_stale_trials(study)  # nothing without heartbeats
            if run_more():
                continue
            alive = _alive_hosts(study, origin, grace_s, seen)
            running = [t for t in study.get_trials(
                deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
                if beating or (t.user_attrs.get("origin") or {}).get("run_id") in alive]
            searching = [h for h in alive.values() if h.get("state") == "searching"]
            if not running and not searching:
                return
            where = sorted({h.get("host", "?") for h in searching} | {
                (t.user_attrs.get("origin") or {}).get("host", "?") for t in running})
            status.update(f"waiting for {len(running)} running trial(s) and {len(searching)} "
                          f"searching host(s) ({', '.join(where)}) before finalizing")
            time.sleep(poll_s)


def _alive_hosts(study: optuna.Study, origin: dict, grace_s: float,
                 seen: dict[str, _Seen]) -> dict[str, dict]:
    """The other hosts' records that still beat, by run id."""
    now, mono, out = time.time(), time.monotonic(), {}
    for key, record in study.user_attrs.items():
        if not key.startswith(HOST) or not isinstance(record, dict):
            continue
        run_id = key[len(HOST):]
        if run_id == origin["run_id"]:
            continue
        beat = float(record.get("beat", 0.0))
        last = seen.get(run_id)
        if last is None or last.beat != beat:
            # first sight: its clock is the only witness; later, a change is one too
            seen[run_id] = last = _Seen(beat, mono if last is not None else -1e18)
        if now - beat < grace_s or mono - last.changed < grace_s:
            out[run_id] = record
    return out
